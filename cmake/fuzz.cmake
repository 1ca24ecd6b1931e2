# fuzz.cmake — fuzz targets (tests/fuzz/): the compiler on arbitrary .nn bytes, the compiler
# on token-level mutants of .nn programs, the safetensors reader, the .npy reader, the ONNX
# reader.
#
# Always: replay executables (fuzz_<target>_replay) that run a target's entry point on files
# without libFuzzer, and ctest tests running them on the committed crash regressions
# (tests/fuzz/regressions/<target>/) and on the seed inputs (examples, tests).
#
# With -DNNC_FUZZ=ON (needs clang, e.g. CC=clang-19; scripts/fuzz.sh does it all): libFuzzer
# executables fuzz_<target>, built with -fsanitize=fuzzer,address,undefined from their own
# instrumented copy of the compiler and support sources (the normal targets stay as they are).
option(NNC_FUZZ "Build the libFuzzer targets (needs clang)" OFF)

set(NNC_FUZZ_DIR ${PROJECT_SOURCE_DIR}/tests/fuzz)
set(NNC_FUZZ_TARGETS compile compile_tokens safetensors npy onnx)
# A target's entry point (LLVMFuzzerTestOneInput) is in fuzz_<entry>.c, <entry> being the
# target's name unless set here; a target with another's entry point adds its own mutator
# (LLVMFuzzerCustomMutator) in fuzz_<target>.c.
set(NNC_FUZZ_ENTRY_compile_tokens compile)
foreach(t ${NNC_FUZZ_TARGETS})
  if(NOT DEFINED NNC_FUZZ_ENTRY_${t})
    set(NNC_FUZZ_ENTRY_${t} ${t})
  endif()
endforeach()

# --- replay executables and their tests ---
foreach(t ${NNC_FUZZ_TARGETS})
  set(entry ${NNC_FUZZ_ENTRY_${t}})
  if(NOT TARGET fuzz_${entry}_replay)
    add_executable(fuzz_${entry}_replay ${NNC_FUZZ_DIR}/fuzz_${entry}.c ${NNC_FUZZ_DIR}/replay_main.c)
    target_link_libraries(fuzz_${entry}_replay PRIVATE nnc_runtime)
  endif()
  file(GLOB regressions CONFIGURE_DEPENDS ${NNC_FUZZ_DIR}/regressions/${t}/*)
  if(regressions)
    add_test(NAME fuzz_${t}_regressions COMMAND fuzz_${entry}_replay ${regressions})
  endif()
endforeach()
# The token mutator without libFuzzer: mutants of the examples through the compiler.  (Seeds
# from 1000: seed 110 makes realnvp.nn a legitimately slow program of 65,536 layers.)
add_executable(fuzz_compile_tokens_mutate ${NNC_FUZZ_DIR}/mutate_main.c
               ${NNC_FUZZ_DIR}/fuzz_compile_tokens.c ${NNC_FUZZ_DIR}/fuzz_compile.c)
target_link_libraries(fuzz_compile_tokens_mutate PRIVATE nnc_runtime)
file(GLOB NNC_FUZZ_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.nn)
add_test(NAME fuzz_compile_tokens_mutants
         COMMAND fuzz_compile_tokens_mutate -n 300 -s 1000 ${NNC_FUZZ_EXAMPLES})
add_test(NAME fuzz_compile_seeds
         COMMAND fuzz_compile_replay ${PROJECT_SOURCE_DIR}/examples ${PROJECT_SOURCE_DIR}/tests/compile)
file(GLOB_RECURSE NNC_FUZZ_ST_SEEDS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/golden/*.safetensors)
file(GLOB_RECURSE NNC_FUZZ_NPY_SEEDS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/golden/*.npy)
add_test(NAME fuzz_safetensors_seeds COMMAND fuzz_safetensors_replay ${NNC_FUZZ_ST_SEEDS})
add_test(NAME fuzz_npy_seeds COMMAND fuzz_npy_replay ${NNC_FUZZ_NPY_SEEDS})
add_test(NAME fuzz_onnx_seeds COMMAND fuzz_onnx_replay ${PROJECT_SOURCE_DIR}/tests/unit/onnx_models)
set_tests_properties(fuzz_compile_seeds fuzz_compile_tokens_mutants PROPERTIES TIMEOUT 600)

# --- libFuzzer executables ---
if(NNC_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "NNC_FUZZ needs clang (configure with -DCMAKE_C_COMPILER=clang-19)")
  endif()
  set(NNC_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                     -fno-omit-frame-pointer -g)
  # The compiler, front end and support code again, instrumented for coverage and sanitizers.
  add_library(nnc_fuzz_lib STATIC ${DSL_SRC} ${COMPILER_SRC} ${FLEX_nn_lexer_OUTPUTS}
              ${BISON_nn_parser_OUTPUTS} ${CMAKE_CURRENT_BINARY_DIR}/abi_text.c ${ONNX_PB_SRC}
              ${CMAKE_CURRENT_BINARY_DIR}/native_fingerprint.h
              ${CMAKE_CURRENT_BINARY_DIR}/build_fingerprint.h ${SUPPORT_SRC} ${RUNTIME_SRC})
  get_target_property(defs nnc_compiler COMPILE_DEFINITIONS)
  get_target_property(incs nnc_compiler INCLUDE_DIRECTORIES)
  target_compile_definitions(nnc_fuzz_lib PRIVATE ${defs})
  target_include_directories(nnc_fuzz_lib PUBLIC ${incs} ${PROJECT_SOURCE_DIR}/runtime/include
                             ${PROJECT_SOURCE_DIR}/runtime/support ${PROJECT_SOURCE_DIR}/runtime/src)
  target_compile_options(nnc_fuzz_lib PRIVATE ${NNC_FUZZ_FLAGS})
  target_link_libraries(nnc_fuzz_lib PUBLIC ${LLVM_LIB} ${OPENBLAS_LIB} ${PROTOBUFC_LIB} m dl)
  foreach(t ${NNC_FUZZ_TARGETS})
    set(src ${NNC_FUZZ_DIR}/fuzz_${NNC_FUZZ_ENTRY_${t}}.c)
    if(NOT t STREQUAL NNC_FUZZ_ENTRY_${t})
      list(APPEND src ${NNC_FUZZ_DIR}/fuzz_${t}.c)
    endif()
    add_executable(fuzz_${t} ${src})
    target_compile_options(fuzz_${t} PRIVATE ${NNC_FUZZ_FLAGS})
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${t} PRIVATE nnc_fuzz_lib)
  endforeach()
endif()
