/*
 * test_hnsw_mt.c — concurrent use of one index (run under ASan/UBSan by
 * `make test`): one thread adds, one removes, three search at the same time.
 * Every search result must be live-or-recently-removed (never removed before
 * the search began), inside the partition asked for, and sorted; at the end
 * the count and the content are exactly what the writers did.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "llmcache.h"
#include "test_hnsw_data.h"
#include "unit.h"

enum { NA = 2500, ND = 1200, D = 32, K = 10, NPART = 4, DOOMED = 1000000 };

static llmc_hnsw *h;
static float *xa, *xd;
static atomic_size_t removed_upto; /* doomed[0..removed_upto) are gone */
static atomic_int writers_done;
static atomic_long violations, searches;

static void *adder(void *arg)
{
    for (size_t i = 0; i < NA; i++)
        if (llmc_hnsw_add(h, i, i % NPART, xa + i * D) != 0)
            atomic_fetch_add(&violations, 1);
    atomic_fetch_add(&writers_done, 1);
    return arg;
}

static void *remover(void *arg)
{
    for (size_t j = 0; j < ND; j++) {
        if (llmc_hnsw_remove(h, DOOMED + j) != 0)
            atomic_fetch_add(&violations, 1);
        atomic_store(&removed_upto, j + 1);
    }
    atomic_fetch_add(&writers_done, 1);
    return arg;
}

static void *searcher(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg, it = 0;
    while (atomic_load(&writers_done) < 2 || it < 50) {
        const float *q = xa + ((it * 7 + t * 13) % NA) * D;
        uint64_t part = (it % 3 == 0) ? LLMC_HNSW_ANY : (it + t) % NPART;
        size_t before = atomic_load(&removed_upto);
        uint64_t lab[K];
        float sim[K];
        size_t n = 0;
        if (llmc_hnsw_search(h, q, part, K, 32, lab, sim, &n) != 0)
            atomic_fetch_add(&violations, 1);
        for (size_t i = 0; i < n; i++) {
            uint64_t l = lab[i];
            int bad = 0;
            if (l >= DOOMED) {
                bad |= l - DOOMED < before;     /* removed before we looked */
                bad |= l - DOOMED >= ND;        /* never existed */
                bad |= part != LLMC_HNSW_ANY && (l - DOOMED) % NPART != part;
            } else {
                bad |= l >= NA;
                bad |= part != LLMC_HNSW_ANY && l % NPART != part;
            }
            if (i > 0 && sim[i] > sim[i - 1])
                bad = 1;
            if (bad)
                atomic_fetch_add(&violations, 1);
        }
        it++;
        atomic_fetch_add(&searches, 1);
    }
    return NULL;
}

int main(void)
{
    xa = td_make(NA + ND, D, 40, 0.4f, 5);
    xd = xa + (size_t)NA * D;
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = D;
    p.initial_capacity = 16; /* the arrays grow while searches run */
    p.ef_construction = 40;
    h = llmc_hnsw_new(&p, NULL);
    for (size_t j = 0; j < ND; j++)
        CHECK_EQ_INT(llmc_hnsw_add(h, DOOMED + j, j % NPART, xd + j * D), 0);
    pthread_t ta, tr, ts[3];
    pthread_create(&ta, NULL, adder, NULL);
    pthread_create(&tr, NULL, remover, NULL);
    for (size_t i = 0; i < 3; i++)
        pthread_create(&ts[i], NULL, searcher, (void *)(uintptr_t)i);
    pthread_join(ta, NULL);
    pthread_join(tr, NULL);
    for (size_t i = 0; i < 3; i++)
        pthread_join(ts[i], NULL);
    printf("hnsw mt: %ld searches during %d adds and %d removes, %ld violations\n",
           (long)atomic_load(&searches), NA, ND, (long)atomic_load(&violations));
    CHECK_EQ_INT(atomic_load(&violations), 0);
    CHECK(atomic_load(&searches) >= 150);
    CHECK_EQ_INT(llmc_hnsw_count(h), NA);
    size_t self = 0;
    for (size_t i = 0; i < NA; i += 5) {
        uint64_t lab[1];
        size_t n = 0;
        llmc_hnsw_search(h, xa + i * D, LLMC_HNSW_ANY, 1, 64, lab, NULL, &n);
        self += n == 1 && lab[0] == i;
    }
    printf("hnsw mt: %zu/%d items find themselves afterwards\n", self, NA / 5);
    CHECK(self >= (NA / 5) * 98 / 100);
    for (size_t j = 0; j < ND; j++)
        CHECK(!llmc_hnsw_contains(h, DOOMED + j));
    llmc_hnsw_free(h);
    free(xa);
    return UNIT_DONE();
}
