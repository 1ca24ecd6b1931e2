/* fuzz_compile.c — libFuzzer target: arbitrary bytes as a .nn program through the whole front
 * end and compiler up to LLVM IR (parse, sema, passes, fusion, lowering, codegen; the module
 * is printed to /dev/null).  Any input must give either a module or a diagnostic: no crash,
 * no leak, no sanitizer report, no exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "compile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *devnull;
  if (!devnull && !(devnull = fopen("/dev/null", "w"))) abort();
  char *msg = NULL;
  nnc_dump_source("fuzz.nn", (const char *)data, size, "llvm", devnull, &msg);
  free(msg);
  return 0;
}
