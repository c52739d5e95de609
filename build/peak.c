/* Peak-instruction test: the most multiply-accumulates per second these cores retire, per kernel.
 * Usage: peak KERNEL THREADS SECONDS   -> prints GMAC/s of all threads together. KERNEL is one of
 *   fp32_avx512 (vfmadd zmm), fp32_avx2 (vfmadd ymm), int8_avx512_vnni (vpdpbusd zmm), int8_avx_vnni (VEX vpdpbusd
 *   ymm), bf16_avx512 (vdpbf16ps zmm), int8_amx (tdpbusd), bf16_amx (tdpbf16ps).
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

/* Twelve independent accumulators per thread, each updated by one instruction per step: enough to cover the
 * instruction's latency times its throughput on the cores seen so far (4 cycles x 2 ports). */
#define VEC_LOOP(type, init, op, macs_per_op)                                       \
    type acc[12], a = init, b = init;                                              \
    for (int j = 0; j < 12; j++) acc[j] = init;                                    \
    long chunks = 0;                                                               \
    double start = now();                                                          \
    while (now() - start < seconds) {                                              \
        for (int i = 0; i < CHUNK; i++)                                            \
            for (int j = 0; j < 12; j++) acc[j] = op;                              \
        chunks++;                                                                  \
    }                                                                              \
    double elapsed = now() - start;                                                \
    /* every accumulator is stored, so that none of the chains is dead code */  \
    volatile type sink[12] __attribute__((unused));                                \
    for (int j = 0; j < 12; j++) sink[j] = acc[j];                                 \
    return chunks * (double)CHUNK * 12 * (macs_per_op) / elapsed;

/* FP32 FMA: 16 (zmm) or 8 (ymm) MACs per instruction. */
__attribute__((target("avx512f"))) static double fp32_avx512(void) {
    VEC_LOOP(__m512, _mm512_set1_ps(0.0f), _mm512_fmadd_ps(acc[j], a, b), 16)
}
__attribute__((target("avx2,fma"))) static double fp32_avx2(void) {
    VEC_LOOP(__m256, _mm256_set1_ps(0.0f), _mm256_fmadd_ps(acc[j], a, b), 8)
}
/* u8 x s8 dot products into int32: 4 MACs per 32-bit lane, so 64 (zmm) or 32 (ymm) per instruction. */
__attribute__((target("avx512f,avx512vnni"))) static double int8_avx512_vnni(void) {
    VEC_LOOP(__m512i, _mm512_set1_epi32(0), _mm512_dpbusd_epi32(acc[j], a, b), 64)
}
__attribute__((target("avx2,avxvnni"))) static double int8_avx_vnni(void) {
    VEC_LOOP(__m256i, _mm256_set1_epi32(0), _mm256_dpbusd_avx_epi32(acc[j], a, b), 32)
}
/* bf16 pairs into fp32: 2 MACs per 32-bit lane, 32 per zmm instruction. */
__attribute__((target("avx512f,avx512bf16"))) static double bf16_avx512(void) {
    VEC_LOOP(__m512, _mm512_set1_ps(0.0f),
             _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b)),
             32)
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

static const struct { const char *name; double (*fn)(void); } KERNELS[] = {
    {"fp32_avx512", fp32_avx512}, {"fp32_avx2", fp32_avx2}, {"int8_avx512_vnni", int8_avx512_vnni},
    {"int8_avx_vnni", int8_avx_vnni}, {"bf16_avx512", bf16_avx512}, {"int8_amx", int8_amx}, {"bf16_amx", bf16_amx},
};

static double (*kernel)(void);
static void *run(void *out) { *(double *)out = kernel(); return NULL; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s KERNEL THREADS SECONDS\n", argv[0]); return 2; }
    kernel = NULL;
    for (size_t k = 0; k < sizeof KERNELS / sizeof KERNELS[0]; k++)
        if (!strcmp(argv[1], KERNELS[k].name)) kernel = KERNELS[k].fn;
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
