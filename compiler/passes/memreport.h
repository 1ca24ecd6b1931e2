/* memreport.h — the memory report of `nnc dump --stage=memory` (memreport.c). */
#ifndef NNC_MEMREPORT_H
#define NNC_MEMREPORT_H

#include <stdio.h>

#include "ir.h"

/* One line per entry, "memory NAME planned=P bound=B sum=S" (bytes), with the symbolic dims
 * bound by `dims` ("N=8,T=16"; unnamed ones are 1).  -1 with a message in err on bad dims. */
int memory_report(FILE *out, const Model *m, const char *dims, char *err, size_t errlen);

#endif
