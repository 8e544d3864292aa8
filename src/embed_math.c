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
#include <stdlib.h>
#include <string.h>

#include "embed_math.h"
#include "llmcache.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define EMBED_MATH_X86 1
#endif

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

void embed_math_matmul_wt(const float *x, size_t ldx, const float *w, size_t ldw, const float *bias,
                          float *y, size_t ldy, size_t m, size_t k, size_t n)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                y[i * ldy + j] = bias[j];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)ldx,
                w, (int)ldw, beta, y, (int)ldy);
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

/* ---- packed weights and the small-M kernel -------------------------------- */

#define MATH_NR 16 /* strip width: two 8-float AVX registers */
#define MATH_MR 6  /* rows per micro-tile: 12 accumulators */
#define MATH_MC 96 /* rows per cache block of X */

#ifdef EMBED_MATH_X86
static __attribute__((target("avx2,f16c"))) void
math_pack_half(uint16_t *h, const float *w, size_t ldw, size_t k, size_t n, size_t n_pad)
{
    for (size_t j0 = 0; j0 < n_pad; j0 += 16) {
        uint16_t *dst = h + j0 * k;
        for (size_t kk = 0; kk < k; kk++) {
            float t[16];
            for (size_t c = 0; c < 16; c++)
                t[c] = j0 + c < n ? w[kk * ldw + j0 + c] : 0.0f;
            _mm_store_si128((__m128i *)(dst + kk * 16), _mm256_cvtps_ph(_mm256_loadu_ps(t), 0));
            _mm_store_si128((__m128i *)(dst + kk * 16 + 8),
                            _mm256_cvtps_ph(_mm256_loadu_ps(t + 8), 0));
        }
    }
}
#endif

int embed_math_pack(embed_math_packed *p, const float *w, size_t ldw, size_t k, size_t n, int half)
{
    memset(p, 0, sizeof *p);
    p->w = w;
    p->ldw = ldw;
    p->k = k;
    p->n = n;
    p->n_pad = (n + MATH_NR - 1) / MATH_NR * MATH_NR;
    (void)half;
#ifdef EMBED_MATH_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    unsigned ca, cb, cc, cd; /* F16C by CPUID: clang 14 has no "f16c" for __builtin_cpu_supports */
    if (half && __get_cpuid(1, &ca, &cb, &cc, &cd) && (cc & bit_F16C)) {
        uint16_t *h = aligned_alloc(64, (k * p->n_pad * 2 + 63) / 64 * 64);
        if (!h)
            return LLMC_ENOMEM;
        math_pack_half(h, w, ldw, k, n, p->n_pad);
        p->half = h;
        p->strips = (float *)h;
        return 0;
    }
    float *s = aligned_alloc(64, (k * p->n_pad * sizeof *s + 63) / 64 * 64);
    if (!s)
        return LLMC_ENOMEM;
    for (size_t j0 = 0; j0 < p->n_pad; j0 += MATH_NR) {
        float *dst = s + j0 * k;
        for (size_t kk = 0; kk < k; kk++)
            for (size_t c = 0; c < MATH_NR; c++)
                dst[kk * MATH_NR + c] = j0 + c < n ? w[kk * ldw + j0 + c] : 0.0f;
    }
    p->strips = s;
#endif
    return 0;
}

void embed_math_packed_free(embed_math_packed *p)
{
    if (p) {
        if (!p->half)
            free(p->strips);
        free(p->half);
        p->strips = NULL;
        p->half = NULL;
    }
}

#ifdef EMBED_MATH_X86
/* One MR x 16 tile: y[r][0..16) (+)= sum_k x[r][k] * strip[k][0..16) + bias. */
static inline __attribute__((always_inline, target("avx2,fma,f16c"))) void
math_tile(int half, int mr, size_t k, const float *x, size_t ldx, const float *strip,
          const float *bias, float *y, size_t ldy, size_t cols, int accumulate)
{
    __m256 a[MATH_MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MATH_MR; r++)
        a[r][0] = a[r][1] = _mm256_setzero_ps();
    const uint16_t *hs = (const uint16_t *)strip;
    for (size_t kk = 0; kk < k; kk++) {
        __m256 w0, w1;
        if (half) {
            w0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(hs + kk * MATH_NR)));
            w1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(hs + kk * MATH_NR + 8)));
        } else {
            w0 = _mm256_load_ps(strip + kk * MATH_NR);
            w1 = _mm256_load_ps(strip + kk * MATH_NR + 8);
        }
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + kk);
            a[r][0] = _mm256_fmadd_ps(xb, w0, a[r][0]);
            a[r][1] = _mm256_fmadd_ps(xb, w1, a[r][1]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float t[MATH_NR];
        _mm256_storeu_ps(t, a[r][0]);
        _mm256_storeu_ps(t + 8, a[r][1]);
        float *yr = y + (size_t)r * ldy;
        for (size_t c = 0; c < cols; c++) {
            float v = t[c] + (bias ? bias[c] : 0.0f);
            yr[c] = accumulate ? yr[c] + v : v;
        }
    }
}

static inline __attribute__((always_inline, target("avx2,fma,f16c"))) void
math_run(int half, const float *x, size_t ldx, const embed_math_packed *w, const float *bias,
         float *y, size_t ldy, size_t m, int accumulate)
{
    size_t k = w->k;
    for (size_t i0 = 0; i0 < m; i0 += MATH_MC) {
        size_t mc = m - i0 < MATH_MC ? m - i0 : MATH_MC;
        for (size_t j0 = 0; j0 < w->n_pad; j0 += MATH_NR) {
            const float *strip = w->half ? (const float *)(w->half + j0 * k) : w->strips + j0 * k;
            size_t cols = w->n - j0 < MATH_NR ? w->n - j0 : MATH_NR;
            const float *bj = bias ? bias + j0 : NULL;
            for (size_t i = i0; i < i0 + mc; i += MATH_MR) {
                const float *xi = x + i * ldx;
                float *yi = y + i * ldy + j0;
                switch (i0 + mc - i < MATH_MR ? (int)(i0 + mc - i) : MATH_MR) {
                case 6:
                    math_tile(half, 6, k, xi, ldx, strip, bj, yi, ldy, cols, accumulate);
                    break;
                case 5:
                    math_tile(half, 5, k, xi, ldx, strip, bj, yi, ldy, cols, accumulate);
                    break;
                case 4:
                    math_tile(half, 4, k, xi, ldx, strip, bj, yi, ldy, cols, accumulate);
                    break;
                case 3:
                    math_tile(half, 3, k, xi, ldx, strip, bj, yi, ldy, cols, accumulate);
                    break;
                case 2:
                    math_tile(half, 2, k, xi, ldx, strip, bj, yi, ldy, cols, accumulate);
                    break;
                default:
                    math_tile(half, 1, k, xi, ldx, strip, bj, yi, ldy, cols, accumulate);
                    break;
                }
            }
        }
    }
}
static __attribute__((target("avx2,fma,f16c"))) void
math_packed_avx2(const float *x, size_t ldx, const embed_math_packed *w, const float *bias,
                 float *y, size_t ldy, size_t m, int accumulate)
{
    if (w->half)
        math_run(1, x, ldx, w, bias, y, ldy, m, accumulate);
    else
        math_run(0, x, ldx, w, bias, y, ldy, m, accumulate);
}
#endif

void embed_math_matmul_packed(const float *x, size_t ldx, const embed_math_packed *w,
                              const float *bias, float *y, size_t ldy, size_t m, int accumulate)
{
#ifdef EMBED_MATH_X86
    if (w->strips && m <= 64) {
        math_packed_avx2(x, ldx, w, bias, y, ldy, m, accumulate);
        return;
    }
#endif
    if (accumulate)
        embed_math_matmul_acc(x, ldx, w->w, w->ldw, bias, y, ldy, m, w->k, w->n);
    else
        embed_math_matmul(x, ldx, w->w, w->ldw, bias, y, ldy, m, w->k, w->n);
}
