# docs.cmake — tests of what users read and see (included by cmake/install.cmake):
#   dot_pictures   `nnc dump --format=dot` renders with Graphviz (tests/tools/test_dot.sh)
#   cli_docs       `nnc --help` / `nnc COMMAND --help` agree with docs/cli.md
#   language_docs  docs/language.md documents every layer and function the compiler knows
#   onnx_docs      docs/onnx.md's table of ONNX ops is the one the op rows of compiler/onnx give
#   walkthrough    README.md's "From PyTorch to nnc in five minutes", run verbatim: compile,
#                  call from C and Python, compare with PyTorch (NumPy weights without torch)
add_test(NAME dot_pictures
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/tools/test_dot.sh $<TARGET_FILE:nnc> ${PROJECT_SOURCE_DIR})
set_tests_properties(dot_pictures PROPERTIES TIMEOUT 300)

add_test(NAME cli_docs
         COMMAND ${NNC_PYTHON} ${PROJECT_SOURCE_DIR}/tests/docs/test_cli_docs.py
                 $<TARGET_FILE:nnc> ${PROJECT_SOURCE_DIR})

# The walkthrough builds a C program with plain `cc` against the .so nnc writes, as a user
# would; in a sanitizer build that .so carries instrumented support code, so the test runs in
# the normal build only (its code paths run under the sanitizers in the other tests).
if(NOT NNC_SANITIZE)
  add_test(NAME walkthrough
           COMMAND ${CMAKE_COMMAND} -E env NNC_LIBRARY=$<TARGET_FILE:nnc_shared>
                   ${NNC_PYTHON} ${PROJECT_SOURCE_DIR}/tests/docs/test_walkthrough.py
                   ${PROJECT_SOURCE_DIR}/README.md $<TARGET_FILE:nnc>)
  set_tests_properties(walkthrough PROPERTIES TIMEOUT 600)
endif()

# examples/nnc_call.c, the runtime-API example of docs/c-api.md, built against libnnc.so.
add_executable(nnc_call examples/nnc_call.c)
target_link_libraries(nnc_call PRIVATE nnc_shared)
add_test(NAME example_nnc_call
         COMMAND nnc_call ${PROJECT_SOURCE_DIR}/examples/realnvp.nn
                 ${PROJECT_SOURCE_DIR}/tests/golden/realnvp/weights.safetensors)
set_tests_properties(example_nnc_call PROPERTIES
  PASS_REGULAR_EXPRESSION "forward\\(x: f32\\[N, 2\\]\\) -> \\(z: f32\\[N, 2\\], logdet: f32\\[N\\]\\).*log_prob on ones")

# The runtime-API program shown in docs/c-api.md, extracted, built against libnnc.so and run.
add_test(NAME docs_c_api_example
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/docs/test_c_api_example.sh $<TARGET_FILE:nnc>
                 $<TARGET_FILE_DIR:nnc_shared> ${PROJECT_SOURCE_DIR} ${CMAKE_C_COMPILER}
                 "${NNC_CONSUMER_CFLAGS}")

# docs/language.md names every layer and function of the compiler's tables, with all of each
# layer's constructor arguments.
add_test(NAME language_docs
         COMMAND ${NNC_PYTHON} ${PROJECT_SOURCE_DIR}/tests/docs/test_language_docs.py ${PROJECT_SOURCE_DIR})

# docs/onnx.md's table of supported ONNX ops, generated from compiler/onnx/onnx_ops*.c, is current.
add_test(NAME onnx_docs
         COMMAND ${NNC_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/onnx_ops_table.py --check ${PROJECT_SOURCE_DIR}/docs/onnx.md)
