/*
 * test_vec.c — the distance kernels: every SIMD level this CPU has agrees
 * with the scalar kernel for every length 0..300 and unaligned starts;
 * normalisation and int8 quantisation behave.
 */
#include <math.h>
#include <stdint.h>

#include "unit.h"
#include "vec.h"

static uint64_t rng = 12345;
static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

int main(void)
{
    enum { N = 300 };
    float a[N + 3], b[N + 3];
    int8_t qa[N + 3], qb[N + 3];
    for (int i = 0; i < N + 3; i++) {
        a[i] = frand();
        b[i] = frand();
        qa[i] = (int8_t)(frand() * 127);
        qb[i] = (int8_t)(frand() * 127);
    }
    qa[0] = -127;
    qb[0] = -127;
    vec_kernels ref;
    CHECK_EQ_INT(vec_kernels_select(&ref, VEC_SIMD_SCALAR), VEC_SIMD_SCALAR);
    int best = vec_simd_best();
    printf("vec: best kernel level %d\n", best);
    for (int lvl = VEC_SIMD_SCALAR; lvl <= VEC_SIMD_AVX512; lvl++) {
        vec_kernels k;
        int got = vec_kernels_select(&k, lvl);
        CHECK(got <= best && got <= lvl);
        if (got != lvl)
            continue;
        int bad_f = 0, bad_i = 0;
        for (size_t off = 0; off < 3; off++) {
            for (size_t n = 0; n <= N; n++) {
                float r = ref.dot_f32(a + off, b + off, n), g = k.dot_f32(a + off, b + off, n);
                if (fabsf(r - g) > 1e-4f * (1.0f + (float)n))
                    bad_f++;
                if (ref.dot_i8(qa + off, qb + off, n) != k.dot_i8(qa + off, qb + off, n))
                    bad_i++;
            }
        }
        if (bad_f || bad_i)
            fprintf(stderr, "level %s: %d float and %d int8 mismatches\n", k.name, bad_f, bad_i);
        CHECK_EQ_INT(bad_f, 0);
        CHECK_EQ_INT(bad_i, 0);
    }
    /* exact int8 sums at the extremes */
    int8_t m1[64], m2[64];
    for (int i = 0; i < 64; i++)
        m1[i] = m2[i] = -127;
    vec_kernels kb;
    vec_kernels_select(&kb, VEC_SIMD_AUTO);
    CHECK_EQ_INT(kb.dot_i8(m1, m2, 64), 64 * 127 * 127);
    CHECK_EQ_INT(kb.dot_i8(m1, m2, 0), 0);

    float v[N];
    for (int i = 0; i < N; i++)
        v[i] = a[i] * 3;
    float norm = vec_normalize(v, N);
    CHECK(norm > 0);
    CHECK(fabsf(ref.dot_f32(v, v, N) - 1.0f) < 1e-5f);
    float z[4] = {0, 0, 0, 0};
    CHECK(vec_normalize(z, 4) == 0);
    CHECK(z[0] == 0);

    int8_t q[N];
    float s = vec_quantize_i8(v, N, q);
    CHECK(s > 0);
    float maxerr = 0;
    int maxq = 0;
    for (int i = 0; i < N; i++) {
        float e = fabsf(s * q[i] - v[i]);
        if (e > maxerr)
            maxerr = e;
        if (abs(q[i]) > maxq)
            maxq = abs(q[i]);
    }
    CHECK(maxerr <= s * 0.5f + 1e-7f);
    CHECK_EQ_INT(maxq, 127);
    /* quantised inner product of a unit vector with itself stays near 1 */
    float ip = s * s * (float)ref.dot_i8(q, q, N);
    CHECK(fabsf(ip - 1.0f) < 0.01f);
    CHECK(vec_quantize_i8(z, 4, q) == 0);
    CHECK(q[0] == 0);
    return UNIT_DONE();
}
