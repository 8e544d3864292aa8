/*
 * embed_q8.h — int8 weight products for the CPU encoders (USE lite in
 * embed_use.c). Internal to the library. Design and invariants in
 * embed_q8.c.
 *
 * Y[m x n] (+)= X[m x k] * W[k x n] + bias, where W was quantised once to
 * int8 with one float scale per output column, and each row of X is
 * quantised on the fly to 8 bits with one scale per row. The integer dot
 * products are exact, so every kernel level (AVX-512 VNNI, AVX-VNNI,
 * portable C) returns the same bits for the same input.
 */
#ifndef EMBED_Q8_H
#define EMBED_Q8_H

#include <stddef.h>
#include <stdint.h>

/* Kernel levels, best first; embed_q8_detect() gives the best this CPU runs. */
enum {
    EMBED_Q8_SCALAR = 0,  /* portable C */
    EMBED_Q8_AVXVNNI = 1, /* AVX2 + AVX-VNNI (256-bit vpdpbusd) */
    EMBED_Q8_VNNI512 = 2, /* AVX-512 F/BW + VNNI */
};

/* The best level this CPU supports. */
int embed_q8_detect(void);
/* True when the level is a SIMD one (not the portable C loops). */
int embed_q8_fast(int level);
/* "avx512-vnni", "avx-vnni" or "scalar". */
const char *embed_q8_level_name(int level);

/* A quantised W [k x n]; opaque in use, fields for the kernels. */
typedef struct {
    int8_t *q;     /* blocks of 64 columns: [k_pad/4][64][4] bytes each */
    float *scale;  /* n_pad column scales (0 for padding columns) */
    int32_t *comp; /* n_pad: 128 * sum_k q[k][j] (undoes the +128 offset) */
    size_t k, n;   /* logical shape */
    size_t k_pad;  /* k rounded up to 4 */
    size_t n_pad;  /* n rounded up to 64 */
    int level;     /* kernel used by embed_q8_matmul */
} embed_q8_matrix;

/* Quantise w [k x n] (row stride ldw) for kernel `level` (a level this CPU
 * supports; embed_q8_detect() or EMBED_Q8_SCALAR). Returns 0 or LLMC_ENOMEM;
 * w is not kept. Free with embed_q8_free (safe on a zeroed struct). */
int embed_q8_pack(embed_q8_matrix *p, const float *w, size_t ldw, size_t k, size_t n, int level);

void embed_q8_free(embed_q8_matrix *p);

/* Scratch for the quantised rows of X: room for `rows` rows of up to k
 * columns. Allocated once by the caller so products allocate nothing. */
typedef struct {
    uint8_t *xq;  /* rows x k_pad bytes */
    float *xs;    /* per-row scale */
    uint8_t *off; /* per-row: 1 when the row was offset by 128 (signed data) */
    size_t rows, k_pad;
} embed_q8_scratch;

int embed_q8_scratch_init(embed_q8_scratch *s, size_t rows, size_t k);
void embed_q8_scratch_free(embed_q8_scratch *s);

/* Y[m x n] (+)= X[m x k] * W (+ bias[n] when bias != NULL); accumulate != 0
 * adds onto Y. x has row stride ldx, y ldy; m <= s->rows and w->k <=
 * s->k_pad. Each output row depends only on its own input row (a text gives
 * the same numbers alone or inside a batch). */
void embed_q8_matmul(const float *x, size_t ldx, const embed_q8_matrix *w, const float *bias,
                     float *y, size_t ldy, size_t m, int accumulate, embed_q8_scratch *s);

/* The same on relu(X) (max(x, 0) taken while quantising: no pass over X). */
void embed_q8_matmul_relu(const float *x, size_t ldx, const embed_q8_matrix *w, const float *bias,
                          float *y, size_t ldy, size_t m, int accumulate, embed_q8_scratch *s);

#endif
