# difftest.cmake — the differential tester (tests/difftest/README.md): random programs run
# through the JIT and AOT and compared with the reference interpreter, and the regression
# programs it found.  Included from tests/tests.cmake.
add_executable(difftest ${PROJECT_SOURCE_DIR}/tests/difftest/difftest.c
                        ${PROJECT_SOURCE_DIR}/tests/difftest/gen.c)
target_include_directories(difftest PRIVATE ${PROJECT_SOURCE_DIR}/tests/difftest)
target_link_libraries(difftest PRIVATE nnc_runtime m)
# The generator alone (programs as fuzz seeds, scripts/fuzz.sh): libc only.
add_executable(difftest_gen ${PROJECT_SOURCE_DIR}/tests/difftest/gen_main.c
                            ${PROJECT_SOURCE_DIR}/tests/difftest/gen.c)
target_include_directories(difftest_gen PRIVATE ${PROJECT_SOURCE_DIR}/tests/difftest)
target_link_libraries(difftest_gen PRIVATE m)

# A fixed-seed batch: 200 programs (~1 minute; under the sanitizers a smaller one).
if(NNC_SANITIZE)
  set(NNC_DIFFTEST_COUNT 40)
else()
  set(NNC_DIFFTEST_COUNT 200)
endif()
add_test(NAME difftest_batch
         COMMAND difftest --seed 1 --count ${NNC_DIFFTEST_COUNT} --no-reduce
                 --out ${PROJECT_BINARY_DIR}/difftest-out)
set_tests_properties(difftest_batch PROPERTIES TIMEOUT 900)

file(GLOB NNC_DIFFTEST_REGRESSIONS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/difftest/regressions/*.nn)
if(NNC_DIFFTEST_REGRESSIONS)
  add_test(NAME difftest_regressions COMMAND difftest ${NNC_DIFFTEST_REGRESSIONS})
  set_tests_properties(difftest_regressions PROPERTIES TIMEOUT 900)
endif()
