# docs.cmake — tests of what users read and see (included by cmake/install.cmake):
#   dot_pictures      `nnc dump --format=dot` renders with Graphviz (tests/tools/test_dot.sh)
add_test(NAME dot_pictures
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/tools/test_dot.sh $<TARGET_FILE:nnc> ${PROJECT_SOURCE_DIR})
set_tests_properties(dot_pictures PROPERTIES TIMEOUT 300)
