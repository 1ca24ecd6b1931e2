/* ort_graph: write the graph ONNX Runtime actually runs, for bench/zoo_bench.py's analysis.
 *
 *   cc -O2 -std=c11 -Wall -I /work/shared/ort-bench/include bench/ort_graph.c -o ort_graph -ldl
 *   ./ort_graph LIBONNXRUNTIME MODEL.onnx OUT.onnx [THREADS]
 *
 * Creates a session as /work/shared/ort-bench/ort_bench.c does (ORT_ENABLE_ALL, sequential,
 * CPU provider) with SetOptimizedModelFilePath, so OUT.onnx is the model after ORT's graph
 * transformers (fusions, NCHWc layout, constant folding): the kernels it runs, by op type.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "onnxruntime_c_api.h"

static const OrtApi *api;

static void check(OrtStatus *st, const char *what) {
  if (!st) return;
  fprintf(stderr, "ort_graph: %s: %s\n", what, api->GetErrorMessage(st));
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: ort_graph LIBONNXRUNTIME MODEL.onnx OUT.onnx [THREADS]\n");
    return 2;
  }
  void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    fprintf(stderr, "ort_graph: dlopen: %s\n", dlerror());
    return 1;
  }
  const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(so, "OrtGetApiBase");
  if (!get_base) return 1;
  for (int v = ORT_API_VERSION; v >= 10 && !(api = get_base()->GetApi((uint32_t)v)); v--) {
  }
  if (!api) return 1;
  OrtEnv *env;
  OrtSessionOptions *opts;
  OrtSession *sess;
  int threads = argc > 4 ? atoi(argv[4]) : 1;
  check(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "ort_graph", &env), "CreateEnv");
  check(api->CreateSessionOptions(&opts), "CreateSessionOptions");
  check(api->SetSessionGraphOptimizationLevel(opts, ORT_ENABLE_ALL), "SetSessionGraphOptimizationLevel");
  check(api->SetSessionExecutionMode(opts, ORT_SEQUENTIAL), "SetSessionExecutionMode");
  check(api->SetIntraOpNumThreads(opts, threads), "SetIntraOpNumThreads");
  check(api->SetOptimizedModelFilePath(opts, argv[3]), "SetOptimizedModelFilePath");
  check(api->CreateSession(env, argv[2], opts, &sess), "CreateSession");
  api->ReleaseSession(sess);
  api->ReleaseSessionOptions(opts);
  api->ReleaseEnv(env);
  return 0;
}
