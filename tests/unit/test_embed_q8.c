/*
 * test_embed_q8.c — the int8 products (src/embed_q8.c).
 *
 * Checks: every SIMD level this CPU runs returns the same bits as the
 * portable C loops (the integer sums are exact and the epilogue is the same
 * IEEE operations), over shapes that hit every edge (rows 1..13 for the
 * 6-row tiles and the 2-row ones, k not a multiple of 4, n not a multiple of
 * 64, bias or none, overwrite or accumulate, rows all >= 0 and signed rows,
 * a zero row); the result is close to the float product (relative error of
 * a few 1e-3 of the output's scale, what 8-bit steps allow, and far below
 * what a wrong layout or offset would give); each output row depends only
 * on its own input row.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embed_q8.h"
#include "llmcache.h"
#include "unit.h"

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = frand() * scale;
}

/* y = x w + bias in double, the reference for the error bound */
static void ref_product(const float *x, const float *w, const float *bias, double *y, size_t m,
                        size_t k, size_t n)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = bias ? bias[j] : 0.0;
            for (size_t kk = 0; kk < k; kk++)
                s += (double)x[i * k + kk] * w[kk * n + j];
            y[i * n + j] = s;
        }
}

static void one_shape(size_t m, size_t k, size_t n, int with_bias, int accumulate, int relu_rows)
{
    float *w = malloc(k * n * sizeof *w), *x = malloc(m * k * sizeof *x);
    float *bias = malloc(n * sizeof *bias);
    float *y0 = malloc(m * n * sizeof *y0), *y1 = malloc(m * n * sizeof *y1);
    double *ref = malloc(m * n * sizeof *ref);
    fill(w, k * n, 0.05f);
    fill(x, m * k, 2.0f);
    fill(bias, n, 0.5f);
    if (relu_rows) /* odd rows all >= 0, as after a ReLU */
        for (size_t i = 1; i < m; i += 2)
            for (size_t kk = 0; kk < k; kk++)
                x[i * k + kk] = fabsf(x[i * k + kk]);
    if (m > 2)
        memset(x + 2 * k, 0, k * sizeof *x); /* a zero row */
    ref_product(x, w, with_bias ? bias : NULL, ref, m, k, n);

    embed_q8_scratch s;
    CHECK_EQ_INT(embed_q8_scratch_init(&s, m, k), 0);
    embed_q8_matrix ws;
    CHECK_EQ_INT(embed_q8_pack(&ws, w, n, k, n, EMBED_Q8_SCALAR), 0);
    for (size_t i = 0; i < m * n; i++)
        y0[i] = accumulate ? 1.0f : -7.0f;
    embed_q8_matmul(x, k, &ws, with_bias ? bias : NULL, y0, n, m, accumulate, &s);

    /* close to the exact product: the error of 8-bit steps, not more */
    double err = 0, mag = 0;
    for (size_t i = 0; i < m * n; i++) {
        double r = ref[i] + (accumulate ? 1.0 : 0.0);
        err = fmax(err, fabs(y0[i] - r));
        mag = fmax(mag, fabs(ref[i] - (with_bias ? bias[i % n] : 0.0)));
    }
    CHECK(err <= 0.02 * mag + 1e-6);

    /* every SIMD level this CPU runs: the same bits */
    for (int lv = EMBED_Q8_AVXVNNI; lv <= embed_q8_detect(); lv++) {
        embed_q8_matrix wl;
        CHECK_EQ_INT(embed_q8_pack(&wl, w, n, k, n, lv), 0);
        for (size_t i = 0; i < m * n; i++)
            y1[i] = accumulate ? 1.0f : 3.0f;
        embed_q8_matmul(x, k, &wl, with_bias ? bias : NULL, y1, n, m, accumulate, &s);
        int same = memcmp(y0, y1, m * n * sizeof *y0) == 0;
        if (!same)
            fprintf(stderr, "level %s differs: m=%zu k=%zu n=%zu bias=%d acc=%d\n",
                    embed_q8_level_name(lv), m, k, n, with_bias, accumulate);
        CHECK(same);
        /* row independence: the last row alone gives the same bits */
        float last[200];
        for (size_t j = 0; j < n; j++)
            last[j] = accumulate ? 1.0f : 0.0f;
        embed_q8_matmul(x + (m - 1) * k, k, &wl, with_bias ? bias : NULL, last, n, 1, accumulate,
                        &s);
        CHECK(memcmp(last, y1 + (m - 1) * n, n * sizeof *last) == 0);
        /* relu on the input: the same as a ReLU pass before */
        float *xr = malloc(m * k * sizeof *xr), *yr = malloc(m * n * sizeof *yr);
        for (size_t i = 0; i < m * k; i++)
            xr[i] = x[i] > 0.0f ? x[i] : 0.0f;
        embed_q8_matmul(xr, k, &wl, with_bias ? bias : NULL, y1, n, m, 0, &s);
        embed_q8_matmul_relu(x, k, &wl, with_bias ? bias : NULL, yr, n, m, 0, &s);
        CHECK(memcmp(y1, yr, m * n * sizeof *yr) == 0);
        free(xr);
        free(yr);
        embed_q8_free(&wl);
    }
    embed_q8_free(&ws);
    embed_q8_scratch_free(&s);
    free(w);
    free(x);
    free(bias);
    free(y0);
    free(y1);
    free(ref);
}

int main(void)
{
    int lv = embed_q8_detect();
    printf("embed_q8: this CPU runs %s\n", embed_q8_level_name(lv));
    CHECK(strcmp(embed_q8_level_name(EMBED_Q8_SCALAR), "scalar") == 0);
    CHECK(!embed_q8_fast(EMBED_Q8_SCALAR));
    static const size_t ks[] = {4, 7, 64, 256, 300};
    static const size_t ns[] = {1, 16, 64, 130, 200};
    for (size_t m = 1; m <= 13; m++)
        one_shape(m, ks[m % 5], ns[m % 5], (int)(m & 1), (int)((m >> 1) & 1), (int)(m % 3 == 0));
    one_shape(7, 1536, 64, 1, 1, 1); /* a long k: the int32 sums stay exact */
    one_shape(40, 512, 192, 1, 0, 0);
    return UNIT_DONE();
}
