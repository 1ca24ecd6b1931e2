/* test_target.c — target.c: JIT and shared-library paths on hand-built LLVM modules,
 * verifier errors, asm text, and JITs on several threads at once. */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"
#include "target.h"

typedef float (*AddMulFn)(float, float);
typedef float (*SumFn)(const float *, int);
typedef int (*CallCbFn)(int);
typedef float (*ExpPlusFn)(float);

static int test_cb(int x) { return x * 10; }

static LLVMValueRef add_fn(LLVMModuleRef m, const char *name, LLVMTypeRef ret,
                           LLVMTypeRef *params, unsigned n) {
  return LLVMAddFunction(m, name, LLVMFunctionType(ret, params, n, 0));
}

/* float add_mul(float a, float b) { return (a + b) * b; } */
static void build_add_mul(LLVMModuleRef m, LLVMBuilderRef b) {
  LLVMTypeRef f32 = LLVMFloatTypeInContext(LLVMGetModuleContext(m));
  LLVMTypeRef ps[] = {f32, f32};
  LLVMValueRef fn = add_fn(m, "add_mul", f32, ps, 2);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(LLVMGetModuleContext(m), fn, "e"));
  LLVMValueRef s = LLVMBuildFAdd(b, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), "s");
  LLVMBuildRet(b, LLVMBuildFMul(b, s, LLVMGetParam(fn, 1), "r"));
}

/* float sum(const float *x, int n) { float s = 0; for (i = 0; i < n; i++) s += x[i]; } */
static void build_sum(LLVMModuleRef m, LLVMBuilderRef b) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(c), i32 = LLVMInt32TypeInContext(c);
  LLVMTypeRef ps[] = {LLVMPointerTypeInContext(c, 0), i32};
  LLVMValueRef fn = add_fn(m, "sum", f32, ps, 2);
  LLVMValueRef x = LLVMGetParam(fn, 0), n = LLVMGetParam(fn, 1);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c, fn, "entry");
  LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c, fn, "loop");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c, fn, "body");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c, fn, "done");

  LLVMPositionBuilderAtEnd(b, entry);
  LLVMBuildBr(b, loop);

  LLVMPositionBuilderAtEnd(b, loop);
  LLVMValueRef i = LLVMBuildPhi(b, i32, "i");
  LLVMValueRef acc = LLVMBuildPhi(b, f32, "acc");
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, i, n, "more"), body, done);

  LLVMPositionBuilderAtEnd(b, body);
  LLVMValueRef p = LLVMBuildInBoundsGEP2(b, f32, x, &i, 1, "p");
  LLVMValueRef acc2 = LLVMBuildFAdd(b, acc, LLVMBuildLoad2(b, f32, p, "v"), "acc2");
  LLVMValueRef i2 = LLVMBuildAdd(b, i, LLVMConstInt(i32, 1, 0), "i2");
  LLVMBuildBr(b, loop);

  LLVMValueRef iv[] = {LLVMConstInt(i32, 0, 0), i2};
  LLVMValueRef av[] = {LLVMConstReal(f32, 0.0), acc2};
  LLVMBasicBlockRef from[] = {entry, body};
  LLVMAddIncoming(i, iv, from, 2);
  LLVMAddIncoming(acc, av, from, 2);

  LLVMPositionBuilderAtEnd(b, done);
  LLVMBuildRet(b, acc);
}

/* ret name(x) { return callee(x) + 1; } with callee external. */
static void build_call_plus1(LLVMModuleRef m, LLVMBuilderRef b, const char *name,
                             const char *callee, LLVMTypeRef ty) {
  LLVMValueRef ext = add_fn(m, callee, ty, &ty, 1);
  LLVMValueRef fn = add_fn(m, name, ty, &ty, 1);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(LLVMGetModuleContext(m), fn, "e"));
  LLVMValueRef arg = LLVMGetParam(fn, 0);
  LLVMValueRef r = LLVMBuildCall2(b, LLVMGlobalGetValueType(ext), ext, &arg, 1, "r");
  if (LLVMGetTypeKind(ty) == LLVMFloatTypeKind)
    LLVMBuildRet(b, LLVMBuildFAdd(b, r, LLVMConstReal(ty, 1.0), "r1"));
  else
    LLVMBuildRet(b, LLVMBuildAdd(b, r, LLVMConstInt(ty, 1, 0), "r1"));
}

/* add_mul, sum, exp_plus (calls expf) and, if with_cb, call_cb (calls test_cb). */
static void build_module(LLVMModuleRef m, bool with_cb) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  build_add_mul(m, b);
  build_sum(m, b);
  build_call_plus1(m, b, "exp_plus", "expf", LLVMFloatTypeInContext(c));
  if (with_cb)
    build_call_plus1(m, b, "call_cb", "test_cb", LLVMInt32TypeInContext(c));
  LLVMDisposeBuilder(b);
}

/* A function whose only block has no terminator. */
static void build_broken(LLVMModuleRef m) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(c);
  LLVMValueRef fn = add_fn(m, "broken", i32, &i32, 1);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "e"));
  LLVMBuildAdd(b, LLVMGetParam(fn, 0), LLVMConstInt(i32, 1, 0), "x");
  LLVMDisposeBuilder(b);
}

static void check_functions(AddMulFn add_mul, SumFn sum, ExpPlusFn exp_plus) {
  assert_float_equal(add_mul(2.0f, 3.0f), 15.0f, 0.0f);
  float xs[37];
  float want = 0;
  for (int i = 0; i < 37; i++) {
    xs[i] = (float)i * 0.5f;
    want += xs[i];
  }
  assert_float_equal(sum(xs, 37), want, 1e-4f);
  assert_float_equal(sum(xs, 0), 0.0f, 0.0f);
  assert_float_equal(exp_plus(1.0f), expf(1.0f) + 1.0f, 1e-5f);
}

static Jit *new_test_jit(char *err, size_t errlen) {
  JitSymbol syms[] = {{"test_cb", (void *)test_cb}};
  return jit_new(syms, 1, err, errlen);
}

static void test_jit_functions(void **state) {
  char err[512] = "";
  Jit *j = new_test_jit(err, sizeof err);
  assert_non_null(j);
  LLVMModuleRef m = jit_module_new(j, "t");
  build_module(m, true);
  assert_int_equal(jit_add_module(j, m, err, sizeof err), 0);

  AddMulFn add_mul = (AddMulFn)jit_lookup(j, "add_mul", err, sizeof err);
  SumFn sum = (SumFn)jit_lookup(j, "sum", err, sizeof err);
  ExpPlusFn exp_plus = (ExpPlusFn)jit_lookup(j, "exp_plus", err, sizeof err);
  CallCbFn call_cb = (CallCbFn)jit_lookup(j, "call_cb", err, sizeof err);
  assert_non_null(add_mul);
  assert_non_null(sum);
  assert_non_null(exp_plus);
  assert_non_null(call_cb);
  check_functions(add_mul, sum, exp_plus);
  assert_int_equal(call_cb(4), 41);
  jit_free(j);
}

static void test_jit_two_modules(void **state) {
  char err[512] = "";
  Jit *j = jit_new(NULL, 0, err, sizeof err);
  assert_non_null(j);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(jit_context(j));
  LLVMModuleRef m1 = jit_module_new(j, "a");
  build_add_mul(m1, b);
  assert_int_equal(jit_add_module(j, m1, err, sizeof err), 0);
  LLVMModuleRef m2 = jit_module_new(j, "b");
  build_sum(m2, b);
  LLVMDisposeBuilder(b);
  assert_int_equal(jit_add_module(j, m2, err, sizeof err), 0);
  assert_non_null(jit_lookup(j, "add_mul", err, sizeof err));
  assert_non_null(jit_lookup(j, "sum", err, sizeof err));
  jit_free(j);
}

static void test_jit_lookup_missing(void **state) {
  char err[512] = "";
  Jit *j = jit_new(NULL, 0, err, sizeof err);
  assert_non_null(j);
  assert_null(jit_lookup(j, "no_such_function_xyz", err, sizeof err));
  assert_non_null(strstr(err, "no_such_function_xyz"));
  jit_free(j);
}

static void test_jit_broken_module(void **state) {
  char err[512] = "";
  Jit *j = jit_new(NULL, 0, err, sizeof err);
  assert_non_null(j);
  LLVMModuleRef m = jit_module_new(j, "broken");
  build_broken(m);
  assert_int_equal(jit_add_module(j, m, err, sizeof err), -1); /* m is gone either way */
  assert_non_null(strstr(err, "terminator"));
  jit_free(j);
}

/* A host Target and an empty module for it, in a context of its own; host_free frees all. */
typedef struct Host {
  Target *t;
  LLVMContextRef c;
  LLVMModuleRef m;
} Host;

static Host host_new(const char *name, char *err, size_t errlen) {
  Host h = {target_new_host(err, errlen), LLVMContextCreate(), NULL};
  assert_non_null(h.t);
  h.m = LLVMModuleCreateWithNameInContext(name, h.c);
  target_configure_module(h.t, h.m);
  return h;
}

static void host_free(Host *h) {
  LLVMDisposeModule(h->m);
  LLVMContextDispose(h->c);
  target_free(h->t);
}

static void test_optimize_broken(void **state) {
  char err[512] = "";
  Host h = host_new("broken", err, sizeof err);
  build_broken(h.m);
  assert_int_equal(target_optimize(h.t, h.m, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not have terminator"));
  host_free(&h);
}

static void test_emit_asm(void **state) {
  char err[512] = "";
  Host h = host_new("asm", err, sizeof err);
  build_module(h.m, false);
  assert_int_equal(target_optimize(h.t, h.m, err, sizeof err), 0);
  char *s = target_emit_asm(h.t, h.m, err, sizeof err);
  assert_non_null(s);
  assert_non_null(strstr(s, "add_mul:"));
  assert_non_null(strstr(s, "sum:"));
  free(s);
  char *again = target_emit_asm(h.t, h.m, err, sizeof err); /* module left usable */
  assert_non_null(again);
  free(again);
  host_free(&h);
}

/* Builds, optimises and links the test module into dir/name; returns 0 / -1. */
static int emit_lib(const char *path, const char *const *args, int nargs, char *err,
                    size_t errlen) {
  Host h = host_new("lib", err, errlen);
  build_module(h.m, false);
  assert_int_equal(target_optimize(h.t, h.m, err, errlen), 0);
  int rc = target_emit_shared_lib(h.t, h.m, path, args, nargs, err, errlen);
  host_free(&h);
  return rc;
}

static void test_shared_lib(void **state) {
  char err[2048] = "";
  char path[256];
  snprintf(path, sizeof path, "%s/libt.so", tmp_dir);
  const char *args[] = {"-lm"};
  int rc = emit_lib(path, args, 1, err, sizeof err);
  if (rc)
    fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);

  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  assert_non_null(h);
  check_functions((AddMulFn)dlsym(h, "add_mul"), (SumFn)dlsym(h, "sum"),
                  (ExpPlusFn)dlsym(h, "exp_plus"));
  dlclose(h);
}

static void test_shared_lib_link_error(void **state) {
  char err[2048] = "";
  const char *args[] = {"-lnnc_no_such_library"};
  assert_int_equal(emit_lib("/tmp/nnc-never.so", args, 1, err, sizeof err), -1);
  assert_non_null(strstr(err, "exit"));
  assert_non_null(strstr(err, "nnc_no_such_library"));
}

static void *jit_thread(void *arg) {
  char err[512];
  for (int k = 0; k < 5; k++) {
    Jit *j = new_test_jit(err, sizeof err);
    if (!j)
      return "jit_new";
    LLVMModuleRef m = jit_module_new(j, "th");
    build_module(m, true);
    if (jit_add_module(j, m, err, sizeof err)) {
      jit_free(j);
      return "add";
    }
    CallCbFn call_cb = (CallCbFn)jit_lookup(j, "call_cb", err, sizeof err);
    AddMulFn add_mul = (AddMulFn)jit_lookup(j, "add_mul", err, sizeof err);
    bool ok = call_cb && add_mul && call_cb(k) == k * 10 + 1 && add_mul(1, 2) == 6.0f;
    jit_free(j);
    if (!ok)
      return "result";
  }
  return NULL;
}

static void test_jit_threads(void **state) {
  assert_int_equal(run_threads(4, jit_thread, NULL, 0), 0);
}

static void test_free_null(void **state) {
  target_free(NULL);
  jit_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jit_functions),     cmocka_unit_test(test_jit_two_modules),
      cmocka_unit_test(test_jit_lookup_missing), cmocka_unit_test(test_jit_broken_module),
      cmocka_unit_test(test_optimize_broken),   cmocka_unit_test(test_emit_asm),
      cmocka_unit_test(test_shared_lib),        cmocka_unit_test(test_shared_lib_link_error),
      cmocka_unit_test(test_jit_threads),       cmocka_unit_test(test_free_null),
  };
  return cmocka_run_group_tests(tests, tmp_make, tmp_remove);
}
