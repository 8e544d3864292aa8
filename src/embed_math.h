/*
 * embed_math.h — the few dense kernels the CPU encoders share (USE lite in
 * embed_use.c, BERT-family in embed_bert.c). Internal to the library.
 *
 * All matrices are row-major float32. Products go through OpenBLAS
 * (cblas_sgemm); the element-wise kernels are plain loops the compiler
 * vectorises. None of these functions allocate or keep state, so they are
 * safe to call from any number of threads on distinct buffers.
 */
#ifndef EMBED_MATH_H
#define EMBED_MATH_H

#include <stddef.h>

/* Y[m x n] = X[m x k] * W[k x n] (+ bias[n] on every row when bias != NULL).
 * ldx, ldw, ldy are the row strides of X, W and Y in floats. */
void embed_math_matmul(const float *x, size_t ldx, const float *w, size_t ldw, const float *bias,
                       float *y, size_t ldy, size_t m, size_t k, size_t n);

/* Y[m x n] += X[m x k] * W[k x n] (+ bias[n] on every row when bias != NULL):
 * a product added onto a residual stream. */
void embed_math_matmul_acc(const float *x, size_t ldx, const float *w, size_t ldw,
                           const float *bias, float *y, size_t ldy, size_t m, size_t k, size_t n);

/* Y[m x n] = X[m x k] * W^T where W is stored [n x k] (the PyTorch/HF layout),
 * plus bias[n] when bias != NULL. */
void embed_math_matmul_wt(const float *x, size_t ldx, const float *w, size_t ldw,
                          const float *bias, float *y, size_t ldy, size_t m, size_t k, size_t n);

/* Layer normalisation of each of the m rows of x (n floats each, row stride
 * ld) into y (same stride; y may equal x): (x - mean) / sqrt(var + eps) *
 * gamma + beta, variance without Bessel's correction. */
void embed_math_layer_norm(const float *x, float *y, size_t ld, size_t m, size_t n,
                           const float *gamma, const float *beta, float eps);

/* In place, n floats. */
void embed_math_relu(float *x, size_t n);
void embed_math_gelu(float *x, size_t n); /* exact erf form, as BERT uses */

/* Numerically stable softmax of each of the m rows (n floats, stride ld), in place. */
void embed_math_softmax_rows(float *x, size_t ld, size_t m, size_t n);

/* Scale x (n floats) to unit L2 norm; the squared norm is clamped below by
 * min_sq (TensorFlow's l2_normalize epsilon) so a zero vector stays finite. */
void embed_math_l2_normalize(float *x, size_t n, float min_sq);

/* Set OpenBLAS's thread count (process-wide: OpenBLAS has one pool). */
void embed_math_set_threads(int n);

#endif
