/* test_emit_nn.c — the IR written as .nn (compiler/ir/emit_nn.c, `nnc import`) builds the same
 * graph when the front end reads it back: every elementwise op of ops.def, with attributes
 * other than their defaults, written through its FUNCTION or SPELL row and read back as the
 * same op with the same attributes; and an op the language cannot express (iota) is an
 * error naming the node, with nothing written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "emit_nn.h"
#include "sema.h"

typedef struct Fixture {
  Arena *a;
  Model *m;
  Entry *e;
  INode *x[3];
} Fixture;

/* A model with one entry `forward(x0, x1, x2: f32[N, 3])` and no outputs yet. */
static void fixture_open(Fixture *f) {
  f->a = arena_new();
  assert_non_null(f->a);
  Model *m = f->m = arena_alloc(f->a, sizeof *m);
  m->arena = f->a;
  m->name = "t";
  m->entries = arena_alloc(f->a, sizeof *m->entries);
  m->entries_cap = m->nentries = 1;
  Entry *e = f->e = &m->entries[0];
  e->name = "forward";
  int n = model_sym(m, "N");
  Shape s = {.rank = 2, .d = {{1, 1u << n}, {3, 0}}};
  static const char *names[3] = {"x0", "x1", "x2"};
  e->inputs = arena_alloc(f->a, 3 * sizeof *e->inputs);
  e->in_names = names;
  for (int i = 0; i < 3; i++) f->x[i] = e->inputs[e->nin++] = ir_input(m, e, i, DT_F32, &s, (SrcLoc){0});
}

static void add_output(Fixture *f, INode *n, const char *name) {
  Entry *e = f->e;
  int k = e->nout++;
  INode **outs = arena_alloc(f->a, e->nout * sizeof *outs);
  const char **names = arena_alloc(f->a, e->nout * sizeof *names);
  Shape *shapes = arena_alloc(f->a, e->nout * sizeof *shapes);
  DType *dts = arena_alloc(f->a, e->nout * sizeof *dts);
  if (k) {
    memcpy(outs, e->outputs, k * sizeof *outs), memcpy(names, e->out_names, k * sizeof *names);
    memcpy(shapes, e->out_shapes, k * sizeof *shapes), memcpy(dts, e->out_dtypes, k * sizeof *dts);
  }
  outs[k] = n, names[k] = name, shapes[k] = n->shape, dts[k] = n->dtype;
  e->outputs = outs, e->out_names = names, e->out_shapes = shapes, e->out_dtypes = dts;
}

/* The text emit_nn writes for f's entry, or NULL with its message in err. */
static char *emit(Fixture *f, char *err, size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  NnWeight *w;
  int nw;
  NnEmitOptions opt = {.export_name = "forward"};
  bool ok = emit_nn(out, f->a, f->m, f->e, &opt, &w, &nw, err, errlen);
  fclose(out);
  if (ok) return text;
  free(text);
  return NULL;
}

/* Every elementwise op with a spelling, its attributes off their defaults, read back. */
static void test_elementwise_ops_read_back(void **state) {
  (void)state;
  Fixture f;
  fixture_open(&f);
  Diag d;
  SrcFile none = {.path = "t", .text = "", .len = 0};
  diag_init(&d, &none);
  int ops[OP_COUNT], nops = 0;
  for (int op = 0; op < OP_COUNT; op++) {
    const OpInfo *oi = &op_info[op];
    if (oi->kind != FK_ELEM || op == OP_CHECK_INDEX) continue;
    INode *n = oi->arity == 1 ? ir_unary(f.m, f.e, op, f.x[0], (SrcLoc){0}, &d)
             : oi->arity == 2 ? ir_binary(f.m, f.e, op, f.x[0], f.x[1], (SrcLoc){0}, &d)
                              : ir_where(f.m, f.e, f.x[0], f.x[1], f.x[2], (SrcLoc){0}, &d);
    assert_non_null(n);
    for (int k = 0; k < oi->attrs.n; k++) n->f[k] = oi->attrs.def[k] + 0.25 * (k + 1);
    char *name = arena_alloc(f.a, 32);
    snprintf(name, 32, "o_%s", oi->name);
    add_output(&f, n, name);
    ops[nops++] = op;
  }
  char err[512];
  char *text = emit(&f, err, sizeof err);
  if (!text) fail_msg("emit_nn: %s", err);
  SrcFile src = {.path = "emitted.nn", .text = text, .len = strlen(text)};
  Diag d2;
  diag_init(&d2, &src);
  Arena *a2 = arena_new();
  Node *prog = parse_program(a2, &src, &d2);
  Model *m2 = prog ? sema_program(a2, &src, prog, "t", NULL, 0, &d2) : NULL;
  if (!m2) fail_msg("the emitted .nn does not compile:\n%s\n%s", d2.text, text);
  const Entry *e2 = &m2->entries[0];
  assert_int_equal(e2->nout, nops);
  for (int i = 0; i < nops; i++) {
    const INode *got = e2->outputs[i];
    if ((int)got->op != ops[i] || memcmp(got->f, f.e->outputs[i]->f, sizeof got->f))
      fail_msg("%s reads back as %s (f %g, %g)\n%s", op_info[ops[i]].name, op_info[got->op].name, got->f[0], got->f[1],
               text);
  }
  free(text);
  arena_free(a2);
  arena_free(f.a);
}

/* An op without a spelling is an error naming the node, and nothing is written. */
static void test_unprintable_op(void **state) {
  (void)state;
  Fixture f;
  fixture_open(&f);
  Diag d;
  SrcFile none = {.path = "t", .text = "", .len = 0};
  diag_init(&d, &none);
  /* a gather along axis 1 by an index of the input's shape (torch.gather's form, which the
   * language builds with its index check: the bare gather has no spelling) */
  INode *check = ir_gather(f.m, f.e, f.x[0], f.x[1], 1, &f.x[0]->shape, (SrcLoc){0}, &d);
  assert_non_null(check);
  add_output(&f, ir_binary(f.m, f.e, OP_ADD, f.x[0], check, (SrcLoc){0}, &d), "y");
  char err[512];
  char *text = emit(&f, err, sizeof err);
  assert_null(text);
  char want[128];
  snprintf(want, sizeof want, "cannot write %%%d (%s) as .nn: ", check->id, op_info[check->op].name);
  if (strncmp(err, want, strlen(want))) fail_msg("message '%s', expected it to start with '%s'", err, want);
  arena_free(f.a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_elementwise_ops_read_back),
    cmocka_unit_test(test_unprintable_op),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
