/* fuzz_safetensors.c — libFuzzer target: arbitrary bytes through the strict safetensors
 * reader (st_read_memory); an accepted file is walked (every tensor's bytes read) and freed. */
#include <stdint.h>
#include <string.h>
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  StFile f;
  char err[512];
  if (st_read_memory(data, size, "fuzz.safetensors", &f, err, sizeof err) == 0) {
    volatile unsigned char sum = 0;
    for (int i = 0; i < f.count; i++) {
      const StTensor *t = &f.tensors[i];
      for (size_t k = 0; k < t->nbytes; k++) sum ^= ((const unsigned char *)t->data)[k];
      if (st_find(&f, t->name) == NULL) __builtin_trap();
    }
    st_free(&f);
  }
  return 0;
}
