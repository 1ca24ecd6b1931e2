# docs.cmake — tests of what users read and see (included by cmake/install.cmake):
#   dot_pictures   `nnc dump --format=dot` renders with Graphviz (tests/tools/test_dot.sh)
#   cli_docs       `nnc --help` / `nnc COMMAND --help` agree with docs/cli.md
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
