/*
 * test_hnsw_data.h — fixed-seed clustered unit vectors and brute force, for
 * the HNSW tests (included by tests/unit/test_hnsw*.c only).
 */
#ifndef TEST_HNSW_DATA_H
#define TEST_HNSW_DATA_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t td_state;
static inline double td_uniform(void)
{
    td_state = td_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((td_state >> 11) + 0.5) / 9007199254740992.0;
}
static inline float td_gauss(void)
{
    return (float)(sqrt(-2.0 * log(td_uniform())) * cos(6.283185307179586 * td_uniform()));
}
static inline void td_unit(float *v, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < d; i++)
        v[i] *= inv;
}
/* n unit vectors of dimension d around nc cluster centres (noise sigma per
 * component relative to a unit centre). Caller frees. */
static inline float *td_make(size_t n, size_t d, size_t nc, float noise, uint64_t seed)
{
    td_state = seed;
    float *c = malloc(nc * d * sizeof *c), *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < nc * d; i++)
        c[i] = td_gauss();
    for (size_t i = 0; i < nc; i++)
        td_unit(c + i * d, d);
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)(td_uniform() * nc) % nc;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = c[k * d + j] + noise * td_gauss() / sqrtf((float)d) * 4;
        td_unit(x + i * d, d);
    }
    free(c);
    return x;
}
static inline float td_dot(const float *a, const float *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += a[i] * b[i];
    return s;
}
/* Exact top-k labels (= row index) of q among rows with keep[i] != 0 (keep
 * NULL: all). Returns how many were found (<= k). */
static inline size_t td_brute(const float *x, size_t n, size_t d, const float *q, const unsigned char *keep,
                       size_t k, uint64_t *out)
{
    float best[k];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep && !keep[i])
            continue;
        float s = td_dot(x + i * d, q, d);
        if (m == k && s <= best[k - 1])
            continue;
        size_t j = m < k ? m++ : k - 1;
        while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = s;
        out[j] = i;
    }
    return m;
}
/* |a ∩ b| for two label lists. */
static inline size_t td_overlap(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t c = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (a[i] == b[j]) {
                c++;
                break;
            }
    return c;
}
#endif
