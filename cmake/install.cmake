# install.cmake — the runtime as libraries other programs link, and `cmake --install`.
#
# Included at the end of the top-level CMakeLists.txt (after the nnc_* targets exist).
#
#   libnnc.so  (target nnc_shared)  the public API of runtime/include/nnc.h, with the compiler
#                                   (JIT) inside; exports only the nnc_* functions of nnc.h.
#                                   The Python package (python/nnc) loads it for nnc.compile.
#   libnnc.a   (target nnc_static)  the same as one static archive (runtime + compiler +
#                                   support objects); link it with LLVM, OpenBLAS, protobuf-c,
#                                   -ldl -lm.
#
# `cmake --install BUILD --prefix P` puts under P (GNUInstallDirs):
#   bin/nnc                         the command (serves cached builds; runs the compiler)
#   LIBEXECDIR/nnc/nnc-compiler     the compiler it runs
#   LIBDIR/libnnc.so*, libnnc.a     the runtime, shared and static
#   LIBDIR/libnnc_support.a         linked into every .so that `nnc -o` writes (the compiler
#                                   needs it at run time; see compiler/compile.c)
#   INCLUDEDIR/nnc.h, nnc_model.h   the public headers
#   LIBDIR/pkgconfig/nnc.pc         pkg-config --cflags --libs nnc
#   LIBDIR/cmake/nnc/               find_package(nnc): imported targets nnc::nnc (shared)
#                                   and nnc::nnc_static
#   lib/python3/dist-packages/nnc   the Python package (on Debian's sys.path for P=/usr/local)
#
# The tree is relocatable: the installed `nnc` finds its compiler and LIBDIR/libnnc_support.a
# relative to its own path (compiler/main/nnc_launch.c), and the Python package finds LIBDIR/libnnc.so relative
# to its own.  The install test at the end installs into a temporary prefix and builds a
# program against it from outside the source tree, through pkg-config and through CMake.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# --- libraries ---------------------------------------------------------------------------------
# One object set, linked twice: the runtime sources plus the objects of the compiler and the
# support library (all position-independent).
set(NNC_LIB_OBJECTS $<TARGET_OBJECTS:nnc_runtime> $<TARGET_OBJECTS:nnc_compiler>
                    $<TARGET_OBJECTS:nnc_support>)
set(NNC_LIB_DEPS ${LLVM_LIB} ${OPENBLAS_LIB} ${PROTOBUFC_LIB} dl m)

add_library(nnc_shared SHARED ${NNC_LIB_OBJECTS})
set_target_properties(nnc_shared PROPERTIES
  OUTPUT_NAME nnc EXPORT_NAME nnc VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  INSTALL_RPATH_USE_LINK_PATH ON)
target_link_libraries(nnc_shared PRIVATE ${NNC_LIB_DEPS})
# Only the API of nnc.h leaves the library; the compiler, LLVM glue and support code stay inside.
target_link_options(nnc_shared PRIVATE
  -Wl,--version-script=${CMAKE_CURRENT_LIST_DIR}/libnnc.map -Wl,--no-undefined)
set_property(TARGET nnc_shared APPEND PROPERTY LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/libnnc.map)
target_include_directories(nnc_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/runtime/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

add_library(nnc_static STATIC ${NNC_LIB_OBJECTS})
set_target_properties(nnc_static PROPERTIES OUTPUT_NAME nnc)
target_link_libraries(nnc_static INTERFACE ${NNC_LIB_DEPS})
target_include_directories(nnc_static INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/runtime/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

add_library(nnc::nnc ALIAS nnc_shared)
add_library(nnc::nnc_static ALIAS nnc_static)

# compile.c falls back to NNC_SUPPORT_LIB_INSTALL when it finds neither $NNC_SUPPORT_LIB nor
# the build tree's archive.  CMakeLists.txt sets it to PREFIX/lib/libnnc_support.a; point it
# at where the archive is installed here (LIBDIR is lib/<multiarch> for the prefix /usr).
get_target_property(_nnc_defs nnc_compiler COMPILE_DEFINITIONS)
list(FILTER _nnc_defs EXCLUDE REGEX "^NNC_SUPPORT_LIB_INSTALL=")
list(APPEND _nnc_defs "NNC_SUPPORT_LIB_INSTALL=\"${CMAKE_INSTALL_FULL_LIBDIR}/libnnc_support.a\"")
set_property(TARGET nnc_compiler PROPERTY COMPILE_DEFINITIONS "${_nnc_defs}")
get_target_property(_nnc_defs nnc COMPILE_DEFINITIONS)
list(FILTER _nnc_defs EXCLUDE REGEX "^NNC_SUPPORT_LIB_INSTALL=")
list(APPEND _nnc_defs "NNC_SUPPORT_LIB_INSTALL=\"${CMAKE_INSTALL_FULL_LIBDIR}/libnnc_support.a\"")
set_property(TARGET nnc PROPERTY COMPILE_DEFINITIONS "${_nnc_defs}")
# ... and the installed `nnc` looks next to itself first: BINDIR/../LIBDIR/libnnc_support.a.
file(RELATIVE_PATH _nnc_bin_to_lib ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
# The nnc command finds its compiler in LIBEXECDIR/nnc (compiler/main/nnc_launch.c).
file(RELATIVE_PATH _nnc_bin_to_compiler ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_LIBEXECDIR}/nnc/nnc-compiler)
target_compile_definitions(nnc PRIVATE
  NNC_INSTALL_BINDIR_NAME="${CMAKE_INSTALL_BINDIR}"
  NNC_INSTALL_SUPPORT_REL="${_nnc_bin_to_lib}/libnnc_support.a"
  NNC_INSTALL_COMPILER_REL="${_nnc_bin_to_compiler}")
set_target_properties(nnc_compiler_cli PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

# --- install -----------------------------------------------------------------------------------
install(TARGETS nnc RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS nnc_compiler_cli RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/nnc)
install(TARGETS nnc_shared nnc_static EXPORT nncTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS nnc_support ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES runtime/include/nnc.h runtime/include/nnc_model.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# pkg-config: the shared library by default; `pkg-config --static` adds what libnnc.a needs.
get_filename_component(_nnc_llvm_dir ${LLVM_LIB} DIRECTORY)
get_filename_component(_nnc_blas_dir ${OPENBLAS_LIB} DIRECTORY)
get_filename_component(_nnc_protobufc_dir ${PROTOBUFC_LIB} DIRECTORY)
set(NNC_PC_LIBS_PRIVATE "-L${_nnc_llvm_dir} -lLLVM-19 -L${_nnc_blas_dir} -lopenblas -L${_nnc_protobufc_dir} -lprotobuf-c -ldl -lm")
file(RELATIVE_PATH NNC_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
configure_file(${CMAKE_CURRENT_LIST_DIR}/nnc.pc.in ${PROJECT_BINARY_DIR}/nnc.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nnc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package: find_package(nnc) -> nnc::nnc, nnc::nnc_static, NNC_EXECUTABLE.
set(NNC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/nnc)
install(EXPORT nncTargets NAMESPACE nnc:: DESTINATION ${NNC_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/nncConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nncConfig.cmake INSTALL_DESTINATION ${NNC_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nncConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nncConfig.cmake ${PROJECT_BINARY_DIR}/nncConfigVersion.cmake
        DESTINATION ${NNC_CMAKE_DIR})

# The Python package (pure Python: nothing to build).
install(DIRECTORY python/nnc DESTINATION lib/python3/dist-packages
        PATTERN __pycache__ EXCLUDE PATTERN "*.pyc" EXCLUDE)

# --- test: install into a temporary prefix, build and run a program against it -------------
set(NNC_CONSUMER_CFLAGS "")
if(NNC_SANITIZE)
  # the installed libraries are instrumented; the consumer must link the sanitizer runtimes
  set(NNC_CONSUMER_CFLAGS "-fsanitize=address,undefined")
endif()
add_test(NAME install_consumer
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/install/test_install.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_SOURCE_DIR} ${CMAKE_C_COMPILER} ${CMAKE_COMMAND} "${NNC_CONSUMER_CFLAGS}")
set_tests_properties(install_consumer PROPERTIES TIMEOUT 600)

include(${CMAKE_CURRENT_LIST_DIR}/python.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/docs.cmake)
