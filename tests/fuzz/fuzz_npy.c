/* fuzz_npy.c — libFuzzer target: arbitrary bytes through the .npy reader (npy_read_memory);
 * an accepted array's data is read in full and its size checked against its shape. */
#include <stdint.h>
#include <string.h>
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  NpyArray a;
  char err[512];
  if (npy_read_memory(data, size, "fuzz.npy", &a, err, sizeof err) == 0) {
    size_t n = a.dtype == NPY_I64 ? 8 : 4;
    for (int i = 0; i < a.rank; i++) n *= (size_t)a.shape[i];
    if (n != a.nbytes) __builtin_trap();
    volatile unsigned char sum = 0;
    for (size_t k = 0; k < a.nbytes; k++) sum ^= ((const unsigned char *)a.data)[k];
    npy_free(&a);
  }
  return 0;
}
