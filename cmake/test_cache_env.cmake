# test_cache_env.cmake — every test gets the compile cache of this build tree
# (NNC_CACHE_DIR=build/test-cache), emptied at the start of each ctest run by the fixture
# test `cache_reset`, so results never depend on a user's cache or an earlier run's entries.
# Included last by CMakeLists.txt, once every test exists.  Tests that need another cache
# (test_cache, test_compile_threads) set NNC_CACHE_DIR / NNC_CACHE themselves.
set(NNC_TEST_CACHE ${PROJECT_BINARY_DIR}/test-cache)
get_property(_nnc_tests DIRECTORY PROPERTY TESTS)
add_test(NAME cache_reset COMMAND ${CMAKE_COMMAND} -E rm -rf ${NNC_TEST_CACHE})
set_tests_properties(cache_reset PROPERTIES FIXTURES_SETUP nnc_test_cache)
foreach(_nnc_test ${_nnc_tests})
  set_property(TEST ${_nnc_test} APPEND PROPERTY ENVIRONMENT NNC_CACHE_DIR=${NNC_TEST_CACHE})
  set_property(TEST ${_nnc_test} APPEND PROPERTY FIXTURES_REQUIRED nnc_test_cache)
endforeach()
