/*
 * embed_math.c — dense kernels shared by the CPU encoders (see embed_math.h).
 *
 * Design: matrix products are delegated to OpenBLAS's cblas_sgemm, which is
 * where nearly all of an encoder's time goes; the remaining element-wise
 * steps (layer norm, activations, softmax) are simple loops. Reductions are
 * accumulated in double where the row is short enough for it to be free, so
 * results stay close to TensorFlow's float32 kernels whatever the summation
 * order. No state, no allocation.
 */
#include <cblas.h>
#include <math.h>

#include "embed_math.h"

void embed_math_matmul(const float *x, size_t ldx, const float *w, size_t ldw, const float *bias,
                       float *y, size_t ldy, size_t m, size_t k, size_t n)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                y[i * ldy + j] = bias[j];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, x,
                (int)ldx, w, (int)ldw, beta, y, (int)ldy);
}

void embed_math_matmul_acc(const float *x, size_t ldx, const float *w, size_t ldw,
                           const float *bias, float *y, size_t ldy, size_t m, size_t k, size_t n)
{
    if (bias)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                y[i * ldy + j] += bias[j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, x,
                (int)ldx, w, (int)ldw, 1.0f, y, (int)ldy);
}

void embed_math_matmul_wt(const float *x, size_t ldx, const float *w, size_t ldw,
                          const float *bias, float *y, size_t ldy, size_t m, size_t k, size_t n)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                y[i * ldy + j] = bias[j];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x,
                (int)ldx, w, (int)ldw, beta, y, (int)ldy);
}

void embed_math_layer_norm(const float *x, float *y, size_t ld, size_t m, size_t n,
                           const float *gamma, const float *beta, float eps)
{
    for (size_t i = 0; i < m; i++) {
        const float *xr = x + i * ld;
        float *yr = y + i * ld;
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += xr[j];
        float mean = (float)(s / (double)n);
        double v = 0.0;
        for (size_t j = 0; j < n; j++) {
            double d = (double)(xr[j] - mean);
            v += d * d;
        }
        float rstd = (float)(1.0 / sqrt(v / (double)n + (double)eps));
        for (size_t j = 0; j < n; j++)
            yr[j] = (xr[j] - mean) * rstd * gamma[j] + beta[j];
    }
}

void embed_math_relu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void embed_math_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void embed_math_softmax_rows(float *x, size_t ld, size_t m, size_t n)
{
    for (size_t i = 0; i < m; i++) {
        float *r = x + i * ld;
        float mx = r[0];
        for (size_t j = 1; j < n; j++)
            mx = r[j] > mx ? r[j] : mx;
        double s = 0.0;
        for (size_t j = 0; j < n; j++) {
            r[j] = expf(r[j] - mx);
            s += r[j];
        }
        float inv = (float)(1.0 / s);
        for (size_t j = 0; j < n; j++)
            r[j] *= inv;
    }
}

void embed_math_l2_normalize(float *x, size_t n, float min_sq)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    if (s < (double)min_sq)
        s = (double)min_sq;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

void embed_math_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}
