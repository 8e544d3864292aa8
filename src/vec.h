/*
 * vec.h — internal: distance kernels for the vector index (src/vec.c).
 *
 * The kernels compute inner products of float32 vectors and of int8
 * quantised vectors. Which instruction set they use is chosen at run time
 * (AVX-512, AVX2+FMA, scalar) by vec_kernels_select(), which fills a table
 * of function pointers that the caller keeps (in its own object: the library
 * has no globals). The library is compiled without -march flags; each SIMD
 * kernel carries its own __attribute__((target(...))).
 *
 * All kernels accept any n >= 0 and unaligned pointers.
 */
#ifndef LLMC_VEC_H
#define LLMC_VEC_H

#include <stddef.h>
#include <stdint.h>

enum {
    VEC_SIMD_AUTO = 0,   /* the best the CPU has */
    VEC_SIMD_SCALAR = 1, /* portable C */
    VEC_SIMD_AVX2 = 2,   /* AVX2 + FMA */
    VEC_SIMD_AVX512 = 3, /* AVX-512 F + BW */
};

typedef float (*vec_dot_f32_fn)(const float *a, const float *b, size_t n);
typedef int32_t (*vec_dot_i8_fn)(const int8_t *a, const int8_t *b, size_t n);

typedef struct {
    vec_dot_f32_fn dot_f32; /* sum a[i]*b[i] in float */
    vec_dot_i8_fn dot_i8;   /* sum a[i]*b[i] exactly in int32 (n <= 2^16 keeps it exact) */
    int level;              /* VEC_SIMD_* actually chosen */
    const char *name;       /* "avx512", "avx2", "scalar"; static */
} vec_kernels;

/* Fill *k with the kernels for `want` (VEC_SIMD_*), lowered to what this CPU
 * supports. Returns the level chosen. */
int vec_kernels_select(vec_kernels *k, int want);

/* The best level this CPU supports. */
int vec_simd_best(void);

/* Scale v (n floats) to unit length in place; returns the original norm.
 * A zero vector is left as is and 0 is returned. */
float vec_normalize(float *v, size_t n);

/* Symmetric per-vector int8 quantisation: q[i] = round(x[i] / s) with
 * s = max|x| / 127, so that x ~= s * q. Returns s (0 for a zero vector). */
float vec_quantize_i8(const float *x, size_t n, int8_t *q);

#endif
