/*
 * test_hnsw.c — the HNSW index against brute force on fixed-seed data:
 * recall@10 floors (f32 and int8), removals never come back and their slots
 * are reused, the partition filter never leaks and keeps recall for every
 * partition size, the byte budget, and argument errors.
 */
#include "llmcache.h"
#include "test_hnsw_data.h"
#include "unit.h"

enum { N = 4000, D = 48, NQ = 200, K = 10 };

static int pmode; /* partition_search for make() */

static llmc_hnsw *make(int quant, size_t max_bytes)
{
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.partition_search = pmode;
    p.dim = D;
    p.quant = quant;
    p.max_bytes = max_bytes;
    p.model = "test-model";
    p.initial_capacity = 64; /* exercise growth */
    int err = 1;
    llmc_hnsw *h = llmc_hnsw_new(&p, &err);
    CHECK(h != NULL);
    return h;
}

/* Mean recall@K of h over queries q against rows of x that keep[] allows. */
static double recall(llmc_hnsw *h, const float *x, size_t n, const float *q, size_t nq,
                     uint64_t part, const unsigned char *keep, size_t ef)
{
    size_t hit = 0, tot = 0;
    for (size_t i = 0; i < nq; i++) {
        uint64_t truth[K], got[K];
        float sims[K];
        size_t nt = td_brute(x, n, D, q + i * D, keep, K, truth), ng = 0;
        CHECK_EQ_INT(llmc_hnsw_search(h, q + i * D, part, K, ef, got, sims, &ng), 0);
        for (size_t j = 1; j < ng; j++)
            CHECK(sims[j - 1] >= sims[j]);
        hit += td_overlap(truth, nt, got, ng);
        tot += nt;
    }
    return tot ? (double)hit / tot : 1.0;
}

static void test_recall(const float *x, const float *q)
{
    llmc_hnsw *h = make(LLMC_HNSW_F32, 0);
    for (size_t i = 0; i < N; i++)
        CHECK_EQ_INT(llmc_hnsw_add(h, i, 7, x + i * D), 0);
    CHECK_EQ_INT(llmc_hnsw_count(h), N);
    double r32 = recall(h, x, N, q, NQ, LLMC_HNSW_ANY, NULL, 64);
    double r_low = recall(h, x, N, q, NQ, LLMC_HNSW_ANY, NULL, 10);
    printf("hnsw: recall@10 f32 ef=64 %.4f, ef=10 %.4f (kernel %s)\n", r32, r_low,
           llmc_hnsw_kernel(h));
    CHECK(r32 >= 0.97);
    CHECK(r_low >= 0.70);
    CHECK(r32 >= r_low);
    /* an item's own vector finds it first with similarity ~1 */
    uint64_t lab[K];
    float sim[K];
    size_t n = 0;
    CHECK_EQ_INT(llmc_hnsw_search(h, x + 123 * D, LLMC_HNSW_ANY, K, 0, lab, sim, &n), 0);
    CHECK_EQ_INT(n, K);
    CHECK_EQ_INT(lab[0], 123);
    CHECK(sim[0] > 0.999f && sim[0] < 1.001f);
    llmc_hnsw_free(h);

    llmc_hnsw *h8 = make(LLMC_HNSW_I8, 0);
    for (size_t i = 0; i < N; i++)
        CHECK_EQ_INT(llmc_hnsw_add(h8, i, 7, x + i * D), 0);
    double r8 = recall(h8, x, N, q, NQ, LLMC_HNSW_ANY, NULL, 64);
    printf("hnsw: recall@10 int8 ef=64 %.4f\n", r8);
    CHECK(r8 >= 0.95);
    llmc_hnsw_free(h8);
}

static void test_remove(const float *x, const float *q)
{
    llmc_hnsw *h = make(LLMC_HNSW_F32, 0);
    for (size_t i = 0; i < N; i++)
        CHECK_EQ_INT(llmc_hnsw_add(h, 1000000 + i, 1, x + i * D), 0);
    unsigned char *keep = malloc(N);
    size_t removed = 0;
    for (size_t i = 0; i < N; i++) {
        keep[i] = (i % 3) != 0;
        if (!keep[i]) {
            CHECK_EQ_INT(llmc_hnsw_remove(h, 1000000 + i), 0);
            removed++;
        }
    }
    CHECK_EQ_INT(llmc_hnsw_remove(h, 1000000), LLMC_ENOTFOUND);
    CHECK_EQ_INT(llmc_hnsw_count(h), N - removed);
    CHECK(!llmc_hnsw_contains(h, 1000000));
    CHECK(llmc_hnsw_contains(h, 1000001));
    /* no removed label ever comes back, even searching with its own vector */
    size_t leaks = 0;
    for (size_t i = 0; i < N; i += 3) {
        uint64_t lab[50];
        size_t n = 0;
        CHECK_EQ_INT(llmc_hnsw_search(h, x + i * D, LLMC_HNSW_ANY, 50, 100, lab, NULL, &n), 0);
        CHECK(n == 50);
        for (size_t j = 0; j < n; j++)
            leaks += (lab[j] - 1000000) % 3 == 0;
    }
    CHECK_EQ_INT(leaks, 0);
    /* recall among the survivors (labels are offset by 1000000) */
    size_t hit = 0, tot = 0;
    for (size_t i = 0; i < NQ; i++) {
        uint64_t truth[K], got[K];
        size_t nt = td_brute(x, N, D, q + i * D, keep, K, truth), ng = 0;
        llmc_hnsw_search(h, q + i * D, LLMC_HNSW_ANY, K, 64, got, NULL, &ng);
        for (size_t j = 0; j < ng; j++)
            got[j] -= 1000000;
        hit += td_overlap(truth, nt, got, ng);
        tot += nt;
    }
    double r = (double)hit / tot;
    printf("hnsw: recall@10 after removing 1/3: %.4f\n", r);
    CHECK(r >= 0.95);
    /* re-adding reuses the freed slots: the storage does not grow */
    size_t bytes = llmc_hnsw_bytes(h);
    for (size_t i = 0; i < N; i += 3) /* same vectors, new labels */
        CHECK_EQ_INT(llmc_hnsw_add(h, 5000000 + i, 1, x + i * D), 0);
    CHECK_EQ_INT(llmc_hnsw_bytes(h), bytes);
    CHECK_EQ_INT(llmc_hnsw_count(h), N);
    hit = tot = 0;
    for (size_t i = 0; i < NQ; i++) {
        uint64_t truth[K], got[K];
        size_t nt = td_brute(x, N, D, q + i * D, NULL, K, truth), ng = 0;
        llmc_hnsw_search(h, q + i * D, LLMC_HNSW_ANY, K, 64, got, NULL, &ng);
        for (size_t j = 0; j < ng; j++)
            got[j] -= got[j] >= 5000000 ? 5000000 : 1000000;
        hit += td_overlap(truth, nt, got, ng);
        tot += nt;
    }
    r = (double)hit / tot;
    printf("hnsw: recall@10 after re-adding into reused slots: %.4f\n", r);
    CHECK(r >= 0.95);
    /* remove everything, then add again: still found */
    for (size_t i = 0; i < N; i++)
        llmc_hnsw_remove(h, (i % 3) ? 1000000 + i : 5000000 + i);
    CHECK_EQ_INT(llmc_hnsw_count(h), 0);
    uint64_t lab[K];
    size_t n = 5;
    CHECK_EQ_INT(llmc_hnsw_search(h, q, LLMC_HNSW_ANY, K, 0, lab, NULL, &n), 0);
    CHECK_EQ_INT(n, 0);
    for (size_t i = 0; i < 300; i++)
        CHECK_EQ_INT(llmc_hnsw_add(h, 9000000 + i, 1, x + i * D), 0);
    size_t found = 0;
    for (size_t i = 0; i < 300; i++) {
        llmc_hnsw_search(h, x + i * D, LLMC_HNSW_ANY, 1, 32, lab, NULL, &n);
        found += n == 1 && lab[0] == 9000000 + i;
    }
    printf("hnsw: after remove-all and 300 re-adds, %zu/300 find themselves\n", found);
    CHECK(found >= 297);
    free(keep);
    llmc_hnsw_free(h);
}

static void test_partitions(const float *x, const float *q)
{
    /* partition sizes 1, 3, 10, 40, 150, 600 and the rest (N - 804) */
    static const size_t sizes[] = {1, 3, 10, 40, 150, 600};
    enum { NP = 7 };
    uint64_t *part = malloc(N * sizeof *part);
    size_t b = 0;
    for (size_t p = 0; p < NP; p++) {
        size_t sz = p < 6 ? sizes[p] : N - b;
        for (size_t i = 0; i < sz; i++)
            part[b + i] = 0xabc000 + p;
        b += sz;
    }
    /* shuffle the assignment so partitions are spread over the clusters */
    td_state = 99;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)(td_uniform() * (i + 1)) % (i + 1);
        uint64_t t = part[i];
        part[i] = part[j];
        part[j] = t;
    }
    llmc_hnsw *h = make(LLMC_HNSW_F32, 0);
    for (size_t i = 0; i < N; i++)
        CHECK_EQ_INT(llmc_hnsw_add(h, i, part[i], x + i * D), 0);
    unsigned char *keep = malloc(N);
    for (size_t p = 0; p < NP; p++) {
        uint64_t pv = 0xabc000 + p;
        for (size_t i = 0; i < N; i++)
            keep[i] = part[i] == pv;
        size_t leaks = 0;
        for (size_t i = 0; i < NQ; i++) {
            uint64_t lab[K];
            size_t n = 0;
            llmc_hnsw_search(h, q + i * D, pv, K, 64, lab, NULL, &n);
            for (size_t j = 0; j < n; j++)
                leaks += part[lab[j]] != pv;
        }
        double r = recall(h, x, N, q, NQ, pv, keep, 64);
        printf("hnsw: partition of %zu items (%s): recall@10 %.4f, %zu leaks\n",
               p < 6 ? sizes[p] : N - 804, pmode == 0 ? "auto" : pmode == 1 ? "exact" : "graph",
               r, leaks);
        CHECK_EQ_INT(leaks, 0);
        CHECK(r >= 0.95);
    }
    /* a partition nobody used, and one emptied by removals */
    uint64_t lab[K];
    size_t n = 9;
    CHECK_EQ_INT(llmc_hnsw_search(h, q, 0x12345, K, 0, lab, NULL, &n), 0);
    CHECK_EQ_INT(n, 0);
    for (size_t i = 0; i < N; i++)
        if (part[i] == 0xabc000)
            CHECK_EQ_INT(llmc_hnsw_remove(h, i), 0);
    CHECK_EQ_INT(llmc_hnsw_search(h, q, 0xabc000, K, 0, lab, NULL, &n), 0);
    CHECK_EQ_INT(n, 0);
    free(keep);
    free(part);
    llmc_hnsw_free(h);
}

static void test_budget_and_errors(const float *x)
{
    int err = 0;
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = 0;
    CHECK(llmc_hnsw_new(&p, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
    p = llmc_hnsw_default_params();
    p.dim = D;
    p.max_bytes = 100;
    CHECK(llmc_hnsw_new(&p, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EFULL);

    llmc_hnsw *h = make(LLMC_HNSW_F32, 200000);
    size_t added = 0;
    int e = 0;
    for (size_t i = 0; i < N; i++) {
        e = llmc_hnsw_add(h, i, 1, x + i * D);
        if (e)
            break;
        added++;
        CHECK(llmc_hnsw_bytes(h) <= 200000);
    }
    printf("hnsw: a 200000-byte budget holds %zu vectors of %d floats\n", added, D);
    CHECK_EQ_INT(e, LLMC_EFULL);
    CHECK(added > 100 && added < N);
    CHECK(llmc_hnsw_bytes(h) <= 200000);
    CHECK_EQ_INT(llmc_hnsw_count(h), added);
    CHECK_EQ_INT(llmc_hnsw_remove(h, 5), 0);
    CHECK_EQ_INT(llmc_hnsw_add(h, 99999, 1, x + 5 * D), 0); /* the freed slot */
    CHECK_EQ_INT(llmc_hnsw_add(h, 99998, 1, x + 6 * D), LLMC_EFULL);

    CHECK_EQ_INT(llmc_hnsw_add(h, 99999, 1, x), LLMC_EEXIST);
    CHECK_EQ_INT(llmc_hnsw_add(h, 1, LLMC_HNSW_ANY, x), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_hnsw_add(h, 1, 1, NULL), LLMC_EINVAL);
    float zero[D] = {0}, nan_v[D];
    memcpy(nan_v, x, sizeof nan_v);
    nan_v[3] = NAN;
    CHECK_EQ_INT(llmc_hnsw_remove(h, 10), 0);
    CHECK_EQ_INT(llmc_hnsw_add(h, 123456, 1, zero), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_hnsw_add(h, 123456, 1, nan_v), LLMC_EINVAL);
    CHECK(!llmc_hnsw_contains(h, 123456));
    size_t n = 0;
    uint64_t lab[K];
    CHECK_EQ_INT(llmc_hnsw_search(h, zero, LLMC_HNSW_ANY, K, 0, lab, NULL, &n), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_hnsw_search(h, x, LLMC_HNSW_ANY, 0, 0, lab, NULL, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(llmc_hnsw_search(h, x, LLMC_HNSW_ANY, K, 0, NULL, NULL, &n), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_hnsw_dim(h), D);
    CHECK(strcmp(llmc_hnsw_model(h), "test-model") == 0);
    llmc_hnsw_free(h);
    llmc_hnsw_free(NULL);
}

int main(void)
{
    float *x = td_make(N, D, 60, 0.4f, 1);
    float *q = td_make(NQ, D, 60, 0.4f, 1); /* same centres (same seed), new noise below */
    float *q2 = td_make(N + NQ, D, 60, 0.4f, 1);
    memcpy(q, q2 + (size_t)N * D, (size_t)NQ * D * sizeof *q);
    free(q2);
    test_recall(x, q);
    test_remove(x, q);
    for (pmode = 0; pmode <= 2; pmode++)
        test_partitions(x, q);
    pmode = 0;
    test_budget_and_errors(x);
    free(x);
    free(q);
    return UNIT_DONE();
}
