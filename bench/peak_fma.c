/* Fallback fp32 peak probe for bench/run.py when bench/cpp's peak_flops is not built:
 * each thread runs independent chains of 16-wide multiply-adds (enough chains to cover FMA
 * latency x ports), so the loop is bound by FMA throughput. Prints GFLOP/s (2 per FMA). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef float v16 __attribute__((vector_size(64)));
enum { CHAINS = 12 };
static long iters;

static void *work(void *out) {
  v16 acc[CHAINS], m, a;
  for (int i = 0; i < 16; ++i) { m[i] = 0.999999f; a[i] = 1e-7f; }
  for (int c = 0; c < CHAINS; ++c) acc[c] = m + (float)c;
  for (long n = 0; n < iters; ++n)
    for (int c = 0; c < CHAINS; ++c) acc[c] = acc[c] * m + a;
  float s = 0;
  for (int c = 0; c < CHAINS; ++c) s += acc[c][0];
  *(float *)out = s;  /* keeps the loop alive */
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  iters = argc > 2 ? atol(argv[2]) : 20000000L;
  pthread_t t[256];
  float sink[256];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < threads; ++i) pthread_create(&t[i], NULL, work, &sink[i]);
  for (int i = 0; i < threads; ++i) pthread_join(t[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  printf("%.3f %g\n", 2.0 * 16 * CHAINS * iters * threads / s / 1e9, (double)sink[0]);
  return 0;
}
