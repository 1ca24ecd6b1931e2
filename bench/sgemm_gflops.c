/* Reference points for bench/bench.py, compiled on the fly:
 *
 *     cc -O2 bench/sgemm_gflops.c -o sgemm_gflops -lopenblas
 *     ./sgemm_gflops sgemm M N K [SECONDS]   ->  "M N K median_us gflops"
 *     ./sgemm_gflops copy MIB [SECONDS]      ->  "MIB median_us gbytes_per_s"
 *     ./sgemm_gflops roundtrip [TRIPS]       ->  "TRIPS ns_per_round_trip"
 *
 * sgemm: C[M,N] = A[M,K] * B[K,N], row-major, no transposes (the shape of a convolution as
 * im2col + GEMM: M = Cout/groups, N = OH*OW, K = Cin/groups*KH*KW), median of repeated calls,
 * 2*M*N*K flops.  The thread count is OpenBLAS's (OPENBLAS_NUM_THREADS, set by bench.py).
 * copy: STREAM-like copy bandwidth b[i] = a[i] over two MIB-MiB float arrays (memcpy), counted
 * as STREAM does: 2 * MIB MiB moved per copy (read + write), median of repeated copies.
 * roundtrip: two threads pass a cache line back and forth TRIPS times (default 100000); the
 * mean time of one round trip says how far apart the cores sit (this VM's two vCPUs: 50-80 ns
 * at times, 310-350 ns at others, which makes work split between threads cost more).
 */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Runs fn(arg) repeatedly for about `seconds` (at least 5 times); returns the median seconds. */
static double median_time(void (*fn)(void *), void *arg, double seconds) {
  enum { MAXS = 100000 };
  static double s[MAXS];
  int n = 0;
  for (int i = 0; i < 3; i++) fn(arg);
  double start = now_s();
  while (n < MAXS) {
    double t0 = now_s();
    fn(arg);
    double t1 = now_s();
    s[n++] = t1 - t0;
    if (n >= 5 && t1 - start >= seconds) break;
  }
  qsort(s, (size_t)n, sizeof s[0], cmp_double);
  return s[n / 2];
}

struct gemm { int m, n, k; float *a, *b, *c; };

static void run_gemm(void *p) {
  struct gemm *g = p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b,
              g->n, 0.0f, g->c, g->n);
}

struct copy { size_t n; float *a, *b; };

static void run_copy(void *p) {
  struct copy *c = p;
  memcpy(c->b, c->a, c->n * sizeof(float));
}

static float *filled(size_t n) {
  float *p = malloc(n * sizeof *p);
  if (!p) {
    fprintf(stderr, "sgemm_gflops: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  return p;
}

static _Atomic long ball __attribute__((aligned(64)));
static long trips;

static void *return_ball(void *unused) {
  (void)unused;
  for (long i = 1; i < 2 * trips; i += 2) {
    while (atomic_load(&ball) != i) {}
    atomic_store(&ball, i + 1);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "roundtrip") == 0) {
    trips = argc > 2 ? atol(argv[2]) : 100000;
    if (trips <= 0) return fprintf(stderr, "sgemm_gflops: bad trip count\n"), 2;
    pthread_t t;
    if (pthread_create(&t, NULL, return_ball, NULL)) return fprintf(stderr, "sgemm_gflops: no thread\n"), 1;
    double t0 = now_s();
    for (long i = 0; i < 2 * trips; i += 2) {
      atomic_store(&ball, i + 1);
      while (atomic_load(&ball) != i + 2) {}
    }
    double t1 = now_s();
    pthread_join(t, NULL);
    printf("%ld %.1f\n", trips, (t1 - t0) / (double)trips * 1e9);
    return 0;
  }
  if (argc >= 5 && strcmp(argv[1], "sgemm") == 0) {
    struct gemm g = {atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), 0, 0, 0};
    double secs = argc > 5 ? atof(argv[5]) : 0.5;
    if (g.m <= 0 || g.n <= 0 || g.k <= 0) return fprintf(stderr, "sgemm_gflops: bad shape\n"), 2;
    g.a = filled((size_t)g.m * g.k);
    g.b = filled((size_t)g.k * g.n);
    g.c = filled((size_t)g.m * g.n);
    double t = median_time(run_gemm, &g, secs);
    printf("%d %d %d %.3f %.3f\n", g.m, g.n, g.k, t * 1e6, 2.0 * g.m * g.n * g.k / t * 1e-9);
    free(g.a), free(g.b), free(g.c);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "copy") == 0) {
    int mib = atoi(argv[2]);
    double secs = argc > 3 ? atof(argv[3]) : 0.5;
    if (mib <= 0) return fprintf(stderr, "sgemm_gflops: bad size\n"), 2;
    struct copy c = {(size_t)mib * 1024 * 1024 / sizeof(float), 0, 0};
    c.a = filled(c.n);
    c.b = filled(c.n);
    double t = median_time(run_copy, &c, secs);
    printf("%d %.3f %.3f\n", mib, t * 1e6, 2.0 * (double)c.n * sizeof(float) / t * 1e-9);
    free(c.a), free(c.b);
    return 0;
  }
  fprintf(stderr, "usage: %s sgemm M N K [SECONDS] | copy MIB [SECONDS] | roundtrip [TRIPS]\n", argv[0]);
  return 2;
}
