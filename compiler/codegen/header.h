/* header.h — writes the C header of a generated library (header.c). */
#ifndef NNC_HEADER_H
#define NNC_HEADER_H
#include <stddef.h>
#include "ir.h"
int write_header(const char *path, const Model *m, char *err, size_t errlen);
#endif
