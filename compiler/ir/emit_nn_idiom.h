/* emit_nn_idiom.h — subgraphs that one call of the language builds (conv2d, max_pool2d,
 * adaptive_avg_pool2d), recognised for emit_nn.c by building the call again and comparing. */
#ifndef NNC_EMIT_NN_IDIOM_H
#define NNC_EMIT_NN_IDIOM_H

#include "ir.h"

/* A call: fn(arg..., then kwargs text), e.g. conv2d(x, w, b, stride=2, padding=3). */
typedef struct NnIdiom {
  const char *fn;
  const INode *arg[3];  /* tensor arguments, in order */
  int narg;
  char kwargs[192];     /* the other arguments, each after ", " */
} NnIdiom;

/* Whether `root` is exactly what fn(args) builds, its inner nodes used by nothing else
 * (users: live users per node id); then marks those nodes in inner[] (by id). */
bool nn_idiom_find(const Model *m, const INode *root, const int *users, NnIdiom *out, bool *inner);

#endif
