/* Peak-instruction test: the most multiply-accumulates per second these cores retire, per kernel.
 * Usage: peak fp32_avx512|int8_amx|bf16_amx THREADS SECONDS   -> prints GMAC/s of all threads together.
 * Each thread keeps several independent accumulators so the loop is bound by throughput, not latency. */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define CHUNK 4096

static double seconds;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((target("avx512f"))) static double fp32_avx512(void) {
    __m512 acc[12], b = _mm512_set1_ps(1.0f), c = _mm512_set1_ps(0.0f);
    for (int j = 0; j < 12; j++) acc[j] = _mm512_set1_ps((float)j);
    long chunks = 0;
    double start = now();
    while (now() - start < seconds) {
        for (int i = 0; i < CHUNK; i++)
            for (int j = 0; j < 12; j++) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
        chunks++;
    }
    double elapsed = now() - start;
    volatile float sink = _mm512_reduce_add_ps(acc[0]);  /* keeps the loop from being optimized away */
    (void)sink;
    return chunks * (double)CHUNK * 12 * 16 / elapsed;
}

typedef struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } tilecfg;

__attribute__((target("amx-tile"))) static int amx_setup(void) {
    static int8_t zeros[16 * 64] __attribute__((aligned(64)));
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) return -1;
    _tile_loadconfig(&cfg);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, zeros, 64); _tile_loadd(5, zeros, 64); _tile_loadd(6, zeros, 64); _tile_loadd(7, zeros, 64);
    return 0;
}

/* Four 16x16 accumulators from two A and two B tiles: 16*16*64 INT8 or 16*16*32 BF16 MACs per instruction. */
#define AMX_LOOP(op, macs)                                                         \
    if (amx_setup()) return -1;                                                    \
    long chunks = 0;                                                               \
    double start = now();                                                          \
    while (now() - start < seconds) {                                              \
        for (int i = 0; i < CHUNK / 16; i++) { op(0, 4, 6); op(1, 4, 7); op(2, 5, 6); op(3, 5, 7); } \
        chunks++;                                                                  \
    }                                                                              \
    double elapsed = now() - start;                                                \
    _tile_release();                                                               \
    return chunks * (double)(CHUNK / 16) * 4 * (macs) / elapsed;

__attribute__((target("amx-tile,amx-int8"))) static double int8_amx(void) { AMX_LOOP(_tile_dpbusd, 16 * 16 * 64) }
__attribute__((target("amx-tile,amx-bf16"))) static double bf16_amx(void) { AMX_LOOP(_tile_dpbf16ps, 16 * 16 * 32) }

static double (*kernel)(void);
static void *run(void *out) { *(double *)out = kernel(); return NULL; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s fp32_avx512|int8_amx|bf16_amx THREADS SECONDS\n", argv[0]); return 2; }
    kernel = !strcmp(argv[1], "fp32_avx512") ? fp32_avx512 : !strcmp(argv[1], "int8_amx") ? int8_amx
           : !strcmp(argv[1], "bf16_amx") ? bf16_amx : NULL;
    int threads = atoi(argv[2]);
    seconds = atof(argv[3]);
    if (!kernel || threads < 1 || threads > 256 || seconds <= 0) { fprintf(stderr, "bad arguments\n"); return 2; }
    pthread_t tid[256];
    double rate[256], total = 0;
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, run, &rate[t]);
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++) {
        if (rate[t] < 0) { fprintf(stderr, "the kernel could not get AMX tile permission\n"); return 3; }
        total += rate[t];
    }
    printf("%.1f\n", total / 1e9);
    return 0;
}
