# onnx.cmake — the ONNX schema (third_party/onnx/onnx.proto) compiled to C by protoc-c at
# build time, for the ONNX reader (compiler/onnx/).  Needs protobuf-c: Debian 12
# libprotobuf-c-dev and protobuf-c-compiler (scripts/setup.sh installs them).
#
# Sets ONNX_PB_SRC (the generated .c, compiled into the compiler library), ONNX_PB_DIR (its
# header's folder) and PROTOBUFC_LIB.
find_program(PROTOC_C NAMES protoc-c)
find_path(PROTOBUFC_INCLUDE_DIR protobuf-c/protobuf-c.h)
find_library(PROTOBUFC_LIB NAMES protobuf-c)
if(NOT PROTOC_C OR NOT PROTOBUFC_INCLUDE_DIR OR NOT PROTOBUFC_LIB)
  message(FATAL_ERROR "protobuf-c is missing (protoc-c: ${PROTOC_C}; protobuf-c/protobuf-c.h: "
    "${PROTOBUFC_INCLUDE_DIR}; libprotobuf-c: ${PROTOBUFC_LIB}).  The ONNX reader needs it; on "
    "Debian 12: apt-get install libprotobuf-c-dev protobuf-c-compiler (or run scripts/setup.sh)")
endif()

set(ONNX_PROTO_DIR ${PROJECT_SOURCE_DIR}/third_party/onnx)
set(ONNX_PB_DIR ${CMAKE_CURRENT_BINARY_DIR}/onnx_pb)
set(ONNX_PB_SRC ${ONNX_PB_DIR}/onnx.pb-c.c)
add_custom_command(
  OUTPUT ${ONNX_PB_DIR}/onnx.pb-c.c ${ONNX_PB_DIR}/onnx.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${ONNX_PB_DIR}
  COMMAND ${PROTOC_C} --proto_path=${ONNX_PROTO_DIR} --c_out=${ONNX_PB_DIR} ${ONNX_PROTO_DIR}/onnx.proto
  DEPENDS ${ONNX_PROTO_DIR}/onnx.proto
  COMMENT "Generating the ONNX schema's C code with protoc-c"
  VERBATIM)
