# python.cmake — the tests of the Python package python/nnc (pure Python: nothing to build).
# Included by cmake/install.cmake.  Each tests/python/test_*.py is one ctest test, run with
# Debian's /usr/bin/python3 (NumPy from python3-numpy; PyTorch used where installed) against
# this build's nnc and libnnc.so.  Exposes NNC_PYTHON and NNC_PYTHON_ENV for other tests.
if(EXISTS /usr/bin/python3)
  set(NNC_PYTHON /usr/bin/python3)
else()
  find_program(NNC_PYTHON NAMES python3 REQUIRED)
endif()

set(NNC_PYTHON_ENV
  PYTHONPATH=${PROJECT_SOURCE_DIR}/python:${PROJECT_SOURCE_DIR}/tests/python
  PYTHONDONTWRITEBYTECODE=1
  NNC_EXE=$<TARGET_FILE:nnc>
  NNC_LIBRARY=$<TARGET_FILE:nnc_shared>
  CC=${CMAKE_C_COMPILER})
if(NNC_SANITIZE)
  # The libraries Python loads (libnnc.so, and every .so the compiler links with the
  # instrumented support code) need the sanitizer runtimes loaded first; Python itself leaks
  # by design, so leak checking is off for these processes.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE _nnc_asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE _nnc_ubsan OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND NNC_PYTHON_ENV "LD_PRELOAD=${_nnc_asan}:${_nnc_ubsan}"
       "ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0")
endif()

file(GLOB NNC_PYTHON_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/python/test_*.py)
foreach(test ${NNC_PYTHON_TESTS})
  get_filename_component(name ${test} NAME_WE)
  string(REPLACE "test_" "python_" name ${name})
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -E env ${NNC_PYTHON_ENV}
                   ${NNC_PYTHON} -m unittest -v ${test}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/python)
  set_tests_properties(${name} PROPERTIES TIMEOUT 600)
endforeach()
