/*
 * vec.c — inner-product kernels for the vector index, chosen at run time.
 *
 * Design. The HNSW search spends most of its time in one operation: the
 * inner product of the query with a stored vector (384 floats for a typical
 * sentence embedding). Three implementations exist, each compiled for its
 * own instruction set with __attribute__((target)) so that the library
 * itself needs no -march flag and runs on any x86-64 (and, through the
 * scalar path, anywhere):
 *   - AVX-512 (F+BW): four independent 16-lane FMA accumulators per 64
 *     floats, so the loop is bound by loads, not by the FMA latency chain
 *     (hnswlib's kernel uses one accumulator); masked loads for the tail.
 *   - AVX2+FMA: the same with four 8-lane accumulators.
 *   - scalar: plain C with four partial sums.
 * The int8 kernels widen to int16 and use the pairwise multiply-add
 * (vpmaddwd), which is exact: |q| <= 127, so each pair sum fits in int32
 * and n up to 65536 cannot overflow the int32 total.
 *
 * vec_kernels_select() fills a caller-owned table; the index keeps one per
 * object, so there is no global dispatch state.
 *
 * Invariants: every kernel returns the same value as the scalar kernel up
 * to float rounding (int8: exactly); tests/unit/test_vec.c checks each level
 * this CPU has against the scalar one for lengths 0..300.
 */
#include <math.h>
#include <string.h>

#include "vec.h"

#if defined(__x86_64__) || defined(__i386__)
#define VEC_X86 1
#include <immintrin.h>
#endif

/* ---- scalar --------------------------------------------------------- */

static float vec_dot_f32_scalar(const float *a, const float *b, size_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static int32_t vec_dot_i8_scalar(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

#ifdef VEC_X86
/* ---- AVX2 + FMA ----------------------------------------------------- */

__attribute__((target("avx2,fma"))) static float vec_dot_f32_avx2(const float *a, const float *b,
                                                                   size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

__attribute__((target("avx2"))) static int32_t vec_dot_i8_avx2(const int8_t *a, const int8_t *b,
                                                               size_t n)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i + 16)));
        __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i + 16)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
    }
    __m256i s = _mm256_add_epi32(s0, s1);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    int32_t r = _mm_cvtsi128_si32(h);
    for (; i < n; i++)
        r += (int32_t)a[i] * (int32_t)b[i];
    return r;
}

/* ---- AVX-512 F + BW ------------------------------------------------- */

__attribute__((target("avx512f,avx512bw"))) static float vec_dot_f32_avx512(const float *a,
                                                                            const float *b, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx512f,avx512bw"))) static int32_t vec_dot_i8_avx512(const int8_t *a,
                                                                             const int8_t *b,
                                                                             size_t n)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i a0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i b0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
        __m512i a1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i + 32)));
        __m512i b1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i + 32)));
        s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(a0, b0));
        s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(a1, b1));
    }
    for (; i + 32 <= n; i += 32) {
        __m512i a0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i b0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
        s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(a0, b0));
    }
    int32_t t = 0;
    for (; i < n; i++)
        t += (int32_t)a[i] * (int32_t)b[i];
    return t + _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}
#endif /* VEC_X86 */

int vec_simd_best(void)
{
#ifdef VEC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        return VEC_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return VEC_SIMD_AVX2;
#endif
    return VEC_SIMD_SCALAR;
}

int vec_kernels_select(vec_kernels *k, int want)
{
    int best = vec_simd_best();
    int lvl = (want == VEC_SIMD_AUTO || want > best) ? best : want;
    if (lvl < VEC_SIMD_SCALAR)
        lvl = VEC_SIMD_SCALAR;
    k->level = lvl;
    k->dot_f32 = vec_dot_f32_scalar;
    k->dot_i8 = vec_dot_i8_scalar;
    k->name = "scalar";
#ifdef VEC_X86
    if (lvl == VEC_SIMD_AVX2) {
        k->dot_f32 = vec_dot_f32_avx2;
        k->dot_i8 = vec_dot_i8_avx2;
        k->name = "avx2";
    } else if (lvl == VEC_SIMD_AVX512) {
        k->dot_f32 = vec_dot_f32_avx512;
        k->dot_i8 = vec_dot_i8_avx512;
        k->name = "avx512";
    }
#endif
    return lvl;
}

float vec_normalize(float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    if (s <= 0)
        return 0;
    double norm = sqrt(s);
    float inv = (float)(1.0 / norm);
    for (size_t i = 0; i < n; i++)
        v[i] *= inv;
    return (float)norm;
}

float vec_quantize_i8(const float *x, size_t n, int8_t *q)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m)
            m = a;
    }
    if (!(m > 0)) {
        memset(q, 0, n);
        return 0;
    }
    float s = m / 127.0f, inv = 127.0f / m;
    for (size_t i = 0; i < n; i++) {
        float r = nearbyintf(x[i] * inv);
        if (r > 127)
            r = 127;
        if (r < -127)
            r = -127;
        q[i] = (int8_t)r;
    }
    return s;
}
