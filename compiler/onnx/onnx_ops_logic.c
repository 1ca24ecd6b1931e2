/* onnx_ops_logic.c — comparisons, logic, Where and Cast.  nnc has no bool dtype: an ONNX
 * bool tensor is an f32 tensor of 1.0 (true) and 0.0 (false) inside the graph, as the IR's
 * comparison ops give and its `where` takes (any nonzero is true) — the same convention as
 * the .nn front end's masks.  Bool constants become such f32 data (onnx_import.c); bool
 * graph inputs and outputs are i64 0 / 1 in the library's signature (the ABI carries f32 and
 * i64 only), converted there. */
#include <string.h>

#include "onnx_import_internal.h"

#define S_ (&I->S)

/* Equal, Less, LessOrEqual, Greater, GreaterOrEqual (row->op), And, Or, Xor (NE of two
 * bools): f32 or i64 operands, broadcast; a bool result */
bool op_compare(Imp *I, const OpRow *row, INode **out) {
  int folded = row->op == OP_EQ ? fold_int_elementwise(I, OP_EQ, 2) : 0; /* of shapes */
  if (folded) return folded > 0;
  INode *a = imp_input(I, 0), *b = a ? imp_input(I, 1) : NULL;
  if (!b) return false;
  if (a->dtype != b->dtype) return imp_fail(I, "inputs 0 and 1 have different element types");
  return (out[0] = ir_binary(IM, IE, row->op, a, b, I->loc, ID)) != NULL;
}

bool op_not(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  return x && (out[0] = ir_unary(IM, IE, OP_NOT, x, I->loc, ID));
}

/* Where(condition, X, Y): X and Y of one element type (i64 stays i64) */
bool op_where(Imp *I, const OpRow *row, INode **out) {
  int folded = fold_int_elementwise(I, OP_WHERE, 3); /* of shapes */
  if (folded) return folded > 0;
  INode *c = imp_input(I, 0), *x = c ? imp_input(I, 1) : NULL, *y = x ? imp_input(I, 2) : NULL;
  if (!y) return false;
  if (x->dtype != y->dtype) return imp_fail(I, "inputs 1 and 2 have different element types");
  INode *r = ir_where(IM, IE, c, x, y, I->loc, ID);
  if (r && x->dtype == DT_I64) r = ir_convert(IM, IE, r, DT_I64, I->loc, ID);
  return (out[0] = r) != NULL;
}

/* Cast to FLOAT (1), INT32 (6) / INT64 (7) (truncation toward zero; nnc carries int32 as
 * i64) or BOOL (9: x != 0, as 1.0 / 0.0); other types are refused by name */
bool op_cast(Imp *I, const OpRow *row, INode **out) {
  int64_t to;
  if (!attr_int(I, "to", 0, &to)) return false;
  /* a folded shape stays one (Range reads it; to float, its f32 tensor is made too) */
  bool folded = (to == ONNX_I64 || to == ONNX_I32 || to == ONNX_F32) && imp_is_int_vector(I, 0);
  if (folded) {
    ShapeVal *v = arena_alloc(I->S.arena, sizeof *v);
    if (!imp_int_vector(I, 0, v)) return false;
    I->out_sv = v;
    if (to != ONNX_F32) return true;
  }
  INode *x = imp_input(I, 0);
  if (!x) return false;
  if (to == ONNX_F32) out[0] = ir_convert(IM, IE, x, DT_F32, I->loc, ID);
  else if (to == ONNX_I64 || to == ONNX_I32) out[0] = ir_convert(IM, IE, x, DT_I64, I->loc, ID);
  else if (to == ONNX_BOOL) out[0] = ir_binary(IM, IE, OP_NE, ir_convert(IM, IE, x, DT_F32, I->loc, ID), imp_scalar(I, 0), I->loc, ID);
  else return imp_fail(I, "attribute 'to' is %lld (%s): nnc casts to float, int64, int32 and bool only", (long long)to,
                       to > 0 && to < 17 ? onnx_dtype_name((OnnxDtype)to) : "unknown");
  return out[0] != NULL;
}
