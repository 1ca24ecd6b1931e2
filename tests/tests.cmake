# tests.cmake — tests beyond tests/unit/, included at the end of the top-level CMakeLists.txt
# (so the `nnc` target and the NNC_SANITIZE option are known here).

# The generated C header works on its own: examples/realnvp.nn -> realnvp.so + realnvp.h,
# examples/driver_realnvp.c built with the plain C compiler against them, round trip checked.
set(NNC_DRIVER_CFLAGS -O1)
if(NNC_SANITIZE)
  # In a sanitizer build the support code linked into the .so is instrumented too.
  list(APPEND NNC_DRIVER_CFLAGS -fsanitize=address,undefined -fno-omit-frame-pointer)
endif()
add_test(NAME aot_driver_realnvp
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/check_driver.sh $<TARGET_FILE:nnc>
                 ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/driver_realnvp
                 ${CMAKE_C_COMPILER} ${NNC_DRIVER_CFLAGS})
set_tests_properties(aot_driver_realnvp PROPERTIES TIMEOUT 600)

# test_cache runs `nnc` processes side by side (a cache filled by several at once).
add_dependencies(test_cache nnc)
add_dependencies(test_build_cache nnc) # runs a copy of the `nnc` command

# CLI contracts (docs/cli.md): --help succeeds, usage errors exit 2, every example checks.
add_test(NAME cli_help
         COMMAND bash -c "out=$(\"$0\" --help) && for w in run check dump --weights --header; do grep -q -e \"$w\" <<<\"$out\" || { echo \"--help does not mention $w\"; exit 1; }; done"
                 $<TARGET_FILE:nnc>)
add_test(NAME cli_usage_error
         COMMAND bash -c "\"$0\" --no-such-option; rc=$?; [ $rc -eq 2 ] || { echo \"expected exit 2, got $rc\"; exit 1; }"
                 $<TARGET_FILE:nnc>)
add_test(NAME cli_missing_file_is_user_error
         COMMAND bash -c "\"$0\" check /nonexistent/model.nn; rc=$?; [ $rc -eq 1 ] || { echo \"expected exit 1, got $rc\"; exit 1; }"
                 $<TARGET_FILE:nnc>)
file(GLOB NNC_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.nn)
foreach(example ${NNC_EXAMPLES})
  get_filename_component(model ${example} NAME_WE)
  add_test(NAME cli_check_${model} COMMAND nnc check ${example})
endforeach()

# CLI behaviour end to end: exit codes, messages, JIT / AOT / weights at run time.
add_test(NAME test_cli COMMAND sh ${PROJECT_SOURCE_DIR}/tests/unit/test_cli.sh $<TARGET_FILE:nnc>
                                  ${PROJECT_SOURCE_DIR})
set_tests_properties(test_cli PROPERTIES TIMEOUT 300)
add_test(NAME test_build_inputs COMMAND sh ${PROJECT_SOURCE_DIR}/tests/unit/test_build_inputs.sh
                                           ${PROJECT_SOURCE_DIR})

# Every generated C header compiles with -Wall -Wextra -pedantic -Werror (C11, and C++), state
# carried through a step and names C reserves included (an AOT compile of every example).
add_test(NAME test_headers COMMAND sh ${PROJECT_SOURCE_DIR}/tests/unit/test_headers.sh
                                      $<TARGET_FILE:nnc> ${PROJECT_SOURCE_DIR} ${CMAKE_C_COMPILER})
set_tests_properties(test_headers PROPERTIES TIMEOUT 900)
include(${PROJECT_SOURCE_DIR}/tests/difftest/difftest.cmake)
