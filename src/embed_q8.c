/*
 * embed_q8.c — int8 weight products for the CPU encoders (see embed_q8.h).
 *
 * Why. A short query is a dozen token rows against 4.9 M weights (USE
 * lite). In float32 with 8-lane FMAs that is ~60 M multiply-adds at 16 per
 * cycle: the float kernel in embed_math.c is compute-bound, not only
 * bandwidth-bound, at about 1.4 ms. The VNNI instruction vpdpbusd does 64
 * u8 x s8 multiply-adds (into 16 int32 sums) per instruction, and int8
 * weights are a quarter of the float bytes, so both limits move.
 *
 * Scheme (the usual "W8A8 dynamic" one, as in ONNX Runtime's and
 * oneDNN's int8 matmuls):
 *   - weights: symmetric, one scale per output column, s_j = max|W[:,j]| /
 *     127, q = round(W / s_j) in [-127, 127]; done once at load;
 *   - activations: one scale per row, computed per call. A row whose
 *     values are all >= 0 (after a ReLU) uses the full unsigned range,
 *     u = round(x / (max / 255)); any other row is quantised symmetrically
 *     to [-127, 127] and stored as u = q + 128 (vpdpbusd wants unsigned
 *     bytes), and the offset is taken back out with comp_j = 128 * sum_k
 *     q[k][j], precomputed per column;
 *   - y = (acc - comp_j [signed rows only]) * (s_row * s_j) + bias_j.
 * Rounding is to nearest-even everywhere (lrint semantics, the SIMD
 * default), the integer sums are exact (k <= 8191 keeps |acc| < 2^31), and
 * the float epilogue is the same sequence of IEEE operations (a product
 * then an fma) in every kernel, so all levels return the same bits; the
 * unit test checks AVX-512 and AVX-VNNI against the C loops bit for bit.
 *
 * Layout: W is stored in blocks of 64 output columns; inside a block, for
 * each group of 4 consecutive k, 64 columns x 4 bytes (256 bytes = four
 * zmm registers). One 32-bit broadcast of 4 activation bytes then feeds
 * four vpdpbusd. Columns are padded to 64 with zero weights and zero
 * scales, k to 4 with zero weights.
 *
 * Kernels: AVX-512 VNNI (tiles of 6 rows x 64 columns: 24 accumulators),
 * AVX-VNNI on 256-bit registers (2 rows x 32 columns), and portable C. The
 * level is chosen per matrix at pack time (embed_q8_detect() unless the
 * caller forces one), so there is no global dispatch state, as in vec.c.
 *
 * Invariants: every output row depends only on its own input row; no
 * allocation after embed_q8_pack / embed_q8_scratch_init.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "embed_q8.h"
#include "llmcache.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define Q8_X86 1
#endif

#define Q8_NB 64 /* columns per block */
#define Q8_MR 6  /* rows per AVX-512 tile */

int embed_q8_detect(void)
{
#ifdef Q8_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        return EMBED_Q8_VNNI512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni"))
        return EMBED_Q8_AVXVNNI;
#endif
    return EMBED_Q8_SCALAR;
}

int embed_q8_fast(int level)
{
    return level != EMBED_Q8_SCALAR;
}

const char *embed_q8_level_name(int level)
{
    switch (level) {
    case EMBED_Q8_VNNI512:
        return "avx512-vnni";
    case EMBED_Q8_AVXVNNI:
        return "avx-vnni";
    default:
        return "scalar";
    }
}

/* ---- packing -------------------------------------------------------- */

int embed_q8_pack(embed_q8_matrix *p, const float *w, size_t ldw, size_t k, size_t n, int level)
{
    memset(p, 0, sizeof *p);
    assert(k > 0 && k < 8192 && n > 0);
    p->k = k;
    p->n = n;
    p->k_pad = (k + 3) / 4 * 4;
    p->n_pad = (n + Q8_NB - 1) / Q8_NB * Q8_NB;
    p->level = level;
    size_t bytes = p->k_pad * p->n_pad;
    p->q = aligned_alloc(64, (bytes + 63) / 64 * 64);
    p->scale = aligned_alloc(64, (p->n_pad * sizeof(float) + 63) / 64 * 64);
    p->comp = aligned_alloc(64, (p->n_pad * sizeof(int32_t) + 63) / 64 * 64);
    if (!p->q || !p->scale || !p->comp) {
        embed_q8_free(p);
        return LLMC_ENOMEM;
    }
    memset(p->q, 0, bytes);
    for (size_t j = 0; j < p->n_pad; j++) {
        float amax = 0.0f;
        for (size_t kk = 0; j < n && kk < k; kk++)
            amax = fmaxf(amax, fabsf(w[kk * ldw + j]));
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        p->scale[j] = amax / 127.0f;
        int32_t sum = 0;
        int8_t *blk = p->q + (j / Q8_NB) * p->k_pad * Q8_NB;
        size_t col = j % Q8_NB;
        for (size_t kk = 0; j < n && kk < k; kk++) {
            float v = nearbyintf(w[kk * ldw + j] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            int8_t q = (int8_t)v;
            blk[(kk / 4) * Q8_NB * 4 + col * 4 + kk % 4] = q;
            sum += q;
        }
        p->comp[j] = 128 * sum;
    }
    return 0;
}

void embed_q8_free(embed_q8_matrix *p)
{
    if (!p)
        return;
    free(p->q);
    free(p->scale);
    free(p->comp);
    p->q = NULL;
    p->scale = NULL;
    p->comp = NULL;
}

int embed_q8_scratch_init(embed_q8_scratch *s, size_t rows, size_t k)
{
    memset(s, 0, sizeof *s);
    s->rows = rows;
    s->k_pad = (k + 3) / 4 * 4;
    s->xq = aligned_alloc(64, (rows * s->k_pad + 63) / 64 * 64);
    s->xs = malloc(rows * sizeof *s->xs);
    s->off = malloc(rows);
    if (!s->xq || !s->xs || !s->off) {
        embed_q8_scratch_free(s);
        return LLMC_ENOMEM;
    }
    return 0;
}

void embed_q8_scratch_free(embed_q8_scratch *s)
{
    if (!s)
        return;
    free(s->xq);
    free(s->xs);
    free(s->off);
    s->xq = NULL;
    s->xs = NULL;
    s->off = NULL;
}

/* ---- activation quantisation ------------------------------------------ */

/* One row: x[0..k) -> u[0..k_pad), *scale, *off (see the header comment). */
static inline float q8_in(const float *x, size_t j, int relu)
{
    return relu ? fmaxf(x[j], 0.0f) : x[j];
}

static void q8_quant_row_c(const float *x, size_t k, size_t k_pad, int relu, uint8_t *u,
                           float *scale, uint8_t *off)
{
    float amax = 0.0f, mn = 0.0f;
    for (size_t j = 0; j < k; j++) {
        amax = fmaxf(amax, fabsf(q8_in(x, j, relu)));
        mn = fminf(mn, q8_in(x, j, relu));
    }
    int sgn = mn < 0.0f;
    float lim = sgn ? 127.0f : 255.0f;
    float inv = amax > 0.0f ? lim / amax : 0.0f;
    *scale = amax / lim;
    *off = (uint8_t)sgn;
    for (size_t j = 0; j < k; j++) {
        float v = nearbyintf(q8_in(x, j, relu) * inv) + (sgn ? 128.0f : 0.0f);
        v = v > 255.0f ? 255.0f : v < 0.0f ? 0.0f : v;
        u[j] = (uint8_t)v;
    }
    for (size_t j = k; j < k_pad; j++)
        u[j] = sgn ? 128 : 0;
}

#ifdef Q8_X86
__attribute__((target("avx512f,avx512bw"))) static void q8_quant_row_512(const float *x, size_t k,
                                                                         size_t k_pad, int relu,
                                                                         uint8_t *u, float *scale,
                                                                         uint8_t *off)
{
    __m512 vmax = _mm512_setzero_ps(), vmin = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= k; j += 16) {
        __m512 v = _mm512_loadu_ps(x + j);
        if (relu)
            v = _mm512_max_ps(v, _mm512_setzero_ps());
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
        vmin = _mm512_min_ps(vmin, v);
    }
    float amax = _mm512_reduce_max_ps(vmax), mn = _mm512_reduce_min_ps(vmin);
    for (; j < k; j++) {
        amax = fmaxf(amax, fabsf(q8_in(x, j, relu)));
        mn = fminf(mn, q8_in(x, j, relu));
    }
    int sgn = mn < 0.0f;
    float lim = sgn ? 127.0f : 255.0f;
    float inv = amax > 0.0f ? lim / amax : 0.0f;
    *scale = amax / lim;
    *off = (uint8_t)sgn;
    __m512 vinv = _mm512_set1_ps(inv);
    __m512i vo = _mm512_set1_epi32(sgn ? 128 : 0), zero = _mm512_setzero_si512();
    for (j = 0; j < k; j += 16) {
        __mmask16 mk = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(mk, x + j);
        if (relu)
            v = _mm512_max_ps(v, _mm512_setzero_ps());
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, vinv)), vo);
        q = _mm512_max_epi32(q, zero); /* as the C path's clamp */
        _mm512_mask_cvtusepi32_storeu_epi8(u + j, mk, q);
    }
    for (j = k; j < k_pad; j++)
        u[j] = sgn ? 128 : 0;
}
#endif

static void q8_quantize(const float *x, size_t ldx, size_t m, const embed_q8_matrix *w,
                        embed_q8_scratch *s, int relu)
{
    size_t k = w->k, k_pad = w->k_pad;
    for (size_t i = 0; i < m; i++) {
#ifdef Q8_X86
        if (w->level == EMBED_Q8_VNNI512) {
            q8_quant_row_512(x + i * ldx, k, k_pad, relu, s->xq + i * k_pad, &s->xs[i], &s->off[i]);
            continue;
        }
#endif
        q8_quant_row_c(x + i * ldx, k, k_pad, relu, s->xq + i * k_pad, &s->xs[i], &s->off[i]);
    }
}

/* ---- epilogue shared by the C kernel ---------------------------------- */

static void q8_store_c(const int32_t *acc, const embed_q8_matrix *w, size_t j0, float xs, int off,
                       const float *bias, float *y, int accumulate)
{
    size_t cols = w->n - j0 < Q8_NB ? w->n - j0 : Q8_NB;
    for (size_t c = 0; c < cols; c++) {
        float v = (float)(acc[c] - (off ? w->comp[j0 + c] : 0));
        float r = fmaf(v, xs * w->scale[j0 + c], bias ? bias[j0 + c] : 0.0f);
        y[c] = accumulate ? y[c] + r : r;
    }
}

static void q8_matmul_c(const embed_q8_matrix *w, const embed_q8_scratch *s, const float *bias,
                        float *y, size_t ldy, size_t m, int accumulate)
{
    size_t kg = w->k_pad / 4;
    for (size_t j0 = 0; j0 < w->n_pad; j0 += Q8_NB) {
        const int8_t *blk = w->q + j0 * w->k_pad;
        for (size_t i = 0; i < m; i++) {
            const uint8_t *u = s->xq + i * w->k_pad;
            int32_t acc[Q8_NB] = {0};
            for (size_t g = 0; g < kg; g++) {
                const int8_t *wg = blk + g * Q8_NB * 4;
                const uint8_t *ug = u + g * 4;
                for (size_t c = 0; c < Q8_NB; c++)
                    acc[c] += (int32_t)ug[0] * wg[c * 4] + (int32_t)ug[1] * wg[c * 4 + 1] +
                              (int32_t)ug[2] * wg[c * 4 + 2] + (int32_t)ug[3] * wg[c * 4 + 3];
            }
            if (j0 < w->n)
                q8_store_c(acc, w, j0, s->xs[i], s->off[i], bias, y + i * ldy + j0, accumulate);
        }
    }
}

#ifdef Q8_X86
/* ---- AVX-512 VNNI ------------------------------------------------------ */

static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void
q8_tile_512(int mr, const int8_t *blk, size_t kg, const uint8_t *u, size_t ldu,
            const embed_q8_matrix *w, size_t j0, const float *xs, const uint8_t *off,
            const float *bias, float *y, size_t ldy, int accumulate)
{
    __m512i a[Q8_MR][4];
#pragma GCC unroll 6
    for (int r = 0; r < Q8_MR; r++)
        a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_si512();
    for (size_t g = 0; g < kg; g++) {
        const int8_t *wg = blk + g * Q8_NB * 4;
        __m512i w0 = _mm512_load_si512((const void *)wg);
        __m512i w1 = _mm512_load_si512((const void *)(wg + 64));
        __m512i w2 = _mm512_load_si512((const void *)(wg + 128));
        __m512i w3 = _mm512_load_si512((const void *)(wg + 192));
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            int32_t v;
            memcpy(&v, u + (size_t)r * ldu + g * 4, 4);
            __m512i b = _mm512_set1_epi32(v);
            a[r][0] = _mm512_dpbusd_epi32(a[r][0], b, w0);
            a[r][1] = _mm512_dpbusd_epi32(a[r][1], b, w1);
            a[r][2] = _mm512_dpbusd_epi32(a[r][2], b, w2);
            a[r][3] = _mm512_dpbusd_epi32(a[r][3], b, w3);
        }
    }
    size_t cols = w->n - j0 < Q8_NB ? w->n - j0 : Q8_NB;
    /* every index static, so the 24 accumulators stay in registers */
    __mmask16 mk[4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        size_t left = cols > (size_t)c * 16 ? cols - (size_t)c * 16 : 0;
        mk[c] = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        __m512 vs = _mm512_set1_ps(xs[r]);
        float *yr = y + (size_t)r * ldy;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i acc = a[r][c];
            if (off[r])
                acc =
                    _mm512_sub_epi32(acc, _mm512_load_si512((const void *)(w->comp + j0 + c * 16)));
            __m512 sc = _mm512_mul_ps(vs, _mm512_load_ps(w->scale + j0 + c * 16));
            __m512 bi =
                bias ? _mm512_maskz_loadu_ps(mk[c], bias + j0 + c * 16) : _mm512_setzero_ps();
            __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), sc, bi);
            if (accumulate)
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk[c], yr + c * 16), v);
            _mm512_mask_storeu_ps(yr + c * 16, mk[c], v);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
q8_matmul_512(const embed_q8_matrix *w, const embed_q8_scratch *s, const float *bias, float *y,
              size_t ldy, size_t m, int accumulate)
{
    size_t kg = w->k_pad / 4, ldu = w->k_pad;
    /* column blocks outer: a block's weights (<= 100 KB) stay in L1/L2
     * while every row tile reads them */
    for (size_t j0 = 0; j0 < w->n; j0 += Q8_NB) {
        const int8_t *blk = w->q + j0 * w->k_pad;
        for (size_t i = 0; i < m; i += Q8_MR) {
            const uint8_t *u = s->xq + i * ldu;
            float *yi = y + i * ldy + j0;
            const float *xs = s->xs + i;
            const uint8_t *off = s->off + i;
            switch (m - i < Q8_MR ? (int)(m - i) : Q8_MR) {
            case 6:
                q8_tile_512(6, blk, kg, u, ldu, w, j0, xs, off, bias, yi, ldy, accumulate);
                break;
            case 5:
                q8_tile_512(5, blk, kg, u, ldu, w, j0, xs, off, bias, yi, ldy, accumulate);
                break;
            case 4:
                q8_tile_512(4, blk, kg, u, ldu, w, j0, xs, off, bias, yi, ldy, accumulate);
                break;
            case 3:
                q8_tile_512(3, blk, kg, u, ldu, w, j0, xs, off, bias, yi, ldy, accumulate);
                break;
            case 2:
                q8_tile_512(2, blk, kg, u, ldu, w, j0, xs, off, bias, yi, ldy, accumulate);
                break;
            default:
                q8_tile_512(1, blk, kg, u, ldu, w, j0, xs, off, bias, yi, ldy, accumulate);
                break;
            }
        }
    }
}

/* ---- AVX-VNNI (256-bit) ------------------------------------------------ */

/* Two rows x 32 columns (half a block, `half` 0 or 1). */
static inline __attribute__((always_inline, target("avx2,fma,avxvnni"))) void
q8_tile_256(int mr, const int8_t *blk, size_t kg, int half, const uint8_t *u, size_t ldu,
            int32_t (*out)[Q8_NB])
{
    __m256i a[2][4];
    for (int r = 0; r < 2; r++)
        a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm256_setzero_si256();
    for (size_t g = 0; g < kg; g++) {
        const int8_t *wg = blk + g * Q8_NB * 4 + half * 128;
        __m256i w0 = _mm256_load_si256((const __m256i *)wg);
        __m256i w1 = _mm256_load_si256((const __m256i *)(wg + 32));
        __m256i w2 = _mm256_load_si256((const __m256i *)(wg + 64));
        __m256i w3 = _mm256_load_si256((const __m256i *)(wg + 96));
        for (int r = 0; r < mr; r++) {
            int32_t v;
            memcpy(&v, u + (size_t)r * ldu + g * 4, 4);
            __m256i b = _mm256_set1_epi32(v);
            a[r][0] = _mm256_dpbusd_avx_epi32(a[r][0], b, w0);
            a[r][1] = _mm256_dpbusd_avx_epi32(a[r][1], b, w1);
            a[r][2] = _mm256_dpbusd_avx_epi32(a[r][2], b, w2);
            a[r][3] = _mm256_dpbusd_avx_epi32(a[r][3], b, w3);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < 4; c++)
            _mm256_storeu_si256((__m256i *)(out[r] + half * 32 + c * 8), a[r][c]);
}

__attribute__((target("avx2,fma,avxvnni"))) static void
q8_matmul_256(const embed_q8_matrix *w, const embed_q8_scratch *s, const float *bias, float *y,
              size_t ldy, size_t m, int accumulate)
{
    size_t kg = w->k_pad / 4, ldu = w->k_pad;
    int32_t acc[2][Q8_NB];
    for (size_t j0 = 0; j0 < w->n; j0 += Q8_NB) {
        const int8_t *blk = w->q + j0 * w->k_pad;
        for (size_t i = 0; i < m; i += 2) {
            int mr = m - i >= 2 ? 2 : 1;
            const uint8_t *u = s->xq + i * ldu;
            if (mr == 2) {
                q8_tile_256(2, blk, kg, 0, u, ldu, acc);
                q8_tile_256(2, blk, kg, 1, u, ldu, acc);
            } else {
                q8_tile_256(1, blk, kg, 0, u, ldu, acc);
                q8_tile_256(1, blk, kg, 1, u, ldu, acc);
            }
            for (int r = 0; r < mr; r++)
                q8_store_c(acc[r], w, j0, s->xs[i + (size_t)r], s->off[i + (size_t)r], bias,
                           y + (i + (size_t)r) * ldy + j0, accumulate);
        }
    }
}
#endif

static void q8_matmul(const float *x, size_t ldx, const embed_q8_matrix *w, const float *bias,
                      float *y, size_t ldy, size_t m, int accumulate, embed_q8_scratch *s, int relu)
{
    assert(m <= s->rows && w->k_pad <= s->k_pad);
    if (m == 0)
        return;
    /* the scratch rows are packed at the matrix's k_pad */
    q8_quantize(x, ldx, m, w, s, relu);
#ifdef Q8_X86
    if (w->level == EMBED_Q8_VNNI512) {
        q8_matmul_512(w, s, bias, y, ldy, m, accumulate);
        return;
    }
    if (w->level == EMBED_Q8_AVXVNNI) {
        q8_matmul_256(w, s, bias, y, ldy, m, accumulate);
        return;
    }
#endif
    q8_matmul_c(w, s, bias, y, ldy, m, accumulate);
}

void embed_q8_matmul(const float *x, size_t ldx, const embed_q8_matrix *w, const float *bias,
                     float *y, size_t ldy, size_t m, int accumulate, embed_q8_scratch *s)
{
    q8_matmul(x, ldx, w, bias, y, ldy, m, accumulate, s, 0);
}

void embed_q8_matmul_relu(const float *x, size_t ldx, const embed_q8_matrix *w, const float *bias,
                          float *y, size_t ldy, size_t m, int accumulate, embed_q8_scratch *s)
{
    q8_matmul(x, ldx, w, bias, y, ldy, m, accumulate, s, 1);
}
