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
#include <stdint.h>

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
void embed_math_matmul_wt(const float *x, size_t ldx, const float *w, size_t ldw, const float *bias,
                          float *y, size_t ldy, size_t m, size_t k, size_t n);

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

/*
 * Pre-packed weights for the encoders' hot path (one short query: a few
 * token rows against megabytes of weights, where a general sgemm spends
 * its time re-packing the weights on every call, and where the weights'
 * bytes, not the FLOPs, set the time once they fall out of cache).
 * embed_math_pack copies W [k x n] once into 16-column strips, as float32
 * or, with half != 0, as IEEE binary16 (half the bytes to stream; products
 * still accumulate in float32); embed_math_matmul_packed then runs an
 * AVX2/FMA(/F16C) kernel that streams each strip once per block of 6 rows,
 * for up to 64 rows. Above 64 rows (compute-bound batches), and on a CPU
 * without AVX2+FMA (where no packed copy is made), it calls cblas_sgemm on
 * the original float32 W, which must therefore outlive the packed copy.
 */
typedef struct {
    float *strips;  /* float32 strips (k x 16 each), or NULL */
    uint16_t *half; /* binary16 strips, or NULL */
    const float *w; /* the original W, row-major, row stride ldw */
    size_t ldw, k, n, n_pad;
} embed_math_packed;

/* Pack w (see above). Returns 0 or LLMC_ENOMEM; free with
 * embed_math_packed_free. */
int embed_math_pack(embed_math_packed *p, const float *w, size_t ldw, size_t k, size_t n, int half);
void embed_math_packed_free(embed_math_packed *p);

/* Y[m x n] (+)= X[m x k] * W (+ bias[n] when bias != NULL); accumulate != 0
 * adds onto Y instead of overwriting it. */
void embed_math_matmul_packed(const float *x, size_t ldx, const embed_math_packed *w,
                              const float *bias, float *y, size_t ldy, size_t m, int accumulate);

/* Set OpenBLAS's thread count (process-wide: OpenBLAS has one pool). */
void embed_math_set_threads(int n);

#endif
