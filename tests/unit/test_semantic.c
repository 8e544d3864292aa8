/* test_semantic.c — the semantic tier over a real index and store, with
 * hand-made vectors: partitions never leak, exact-only entries and other
 * models are never served, removed entries never come back, the threshold
 * and the guard both hold. */
#include <math.h>

#include "llmcache.h"
#include "unit.h"

#define DIM 8

static void unit_vec(float *v, int a, float noise)
{
    for (int i = 0; i < DIM; i++)
        v[i] = (i == a ? 1.0f : 0.0f) + (i == (a + 1) % DIM ? noise : 0.0f);
    float n = 0;
    for (int i = 0; i < DIM; i++)
        n += v[i] * v[i];
    for (int i = 0; i < DIM; i++)
        v[i] /= sqrtf(n);
}

static const llmc_entry_info *put(llmc_store *st, llmc_semantic *sem, int id, uint64_t part,
                                  const float *v, const char *query, uint32_t flags,
                                  const char *vmodel)
{
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    e.key[0] = (uint8_t)id;
    e.key[9] = 0x77;
    e.body = query;
    e.body_len = strlen(query);
    e.expires = 1000;
    e.partition = part;
    e.model = "m";
    e.vec = v;
    e.dim = DIM;
    e.vec_model = vmodel;
    e.query = query;
    e.flags = flags;
    const llmc_entry_info *ref = NULL;
    if (llmc_store_put(st, &e, 1, &ref))
        return NULL;
    llmc_semantic_add(sem, ref);
    return ref;
}

static llmc_semantic *g_sem;

static void on_rm(const llmc_entry_info *e, int reason, void *arg)
{
    llmc_semantic_remove(g_sem, e->key);
}

int main(void)
{
    llmc_semantic_params sp = llmc_semantic_default_params();
    sp.index.dim = DIM;
    sp.index.model = "test-model";
    sp.threshold = 0.9;
    sp.short_boost = 0; /* the mechanics first; the short-text rule below */
    llmc_semantic *sem = llmc_semantic_new(&sp, NULL);
    g_sem = sem;
    llmc_store_params stp = llmc_store_default_params();
    stp.on_remove = on_rm;
    llmc_store *st = llmc_store_new(&stp, NULL);
    CHECK(sem && st);
    float v[DIM], q[DIM];
    unit_vec(v, 0, 0.0f);
    const llmc_entry_info *a = put(st, sem, 1, 100, v, "How do I reset my password?", 0, "test-model");
    CHECK(a != NULL);
    CHECK_EQ_INT(llmc_semantic_count(sem), 1);

    /* Similar enough, same partition: served. */
    unit_vec(q, 0, 0.2f);
    llmc_semantic_result r;
    const char *qt = "How can I reset my password?";
    const llmc_entry_info *hit = llmc_semantic_lookup(sem, st, 100, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit == a);
    CHECK(r.similarity > 0.9 && r.similarity < 1.0);
    CHECK(strcmp(r.reason, "hit") == 0);
    llmc_entry_release(hit);
    /* Another partition: never. */
    CHECK(llmc_semantic_lookup(sem, st, 101, q, qt, strlen(qt), -1, 2, &r) == NULL);
    /* Below the threshold: no; a lower per-request threshold: yes. */
    unit_vec(q, 0, 0.8f);
    CHECK(llmc_semantic_lookup(sem, st, 100, q, qt, strlen(qt), -1, 2, &r) == NULL);
    CHECK(strcmp(r.reason, "below-threshold") == 0);
    hit = llmc_semantic_lookup(sem, st, 100, q, qt, strlen(qt), 0.5, 2, &r);
    CHECK(hit == a);
    llmc_entry_release(hit);
    /* The guard: a near vector but another number is refused. */
    unit_vec(q, 0, 0.05f);
    const char *other = "How do I reset my password 3 times?";
    CHECK(llmc_semantic_lookup(sem, st, 100, q, other, strlen(other), -1, 2, &r) == NULL);
    CHECK(r.guard_rejected == 1);

    /* Exact-only entries and vectors of another model are never served. */
    unit_vec(v, 3, 0.0f);
    const llmc_entry_info *x = put(st, sem, 2, 100, v, "write code", LLMC_ENTRY_EXACT_ONLY, "test-model");
    const llmc_entry_info *y = put(st, sem, 3, 100, v, "write code", 0, "other-model");
    CHECK_EQ_INT(llmc_semantic_count(sem), 1);
    unit_vec(q, 3, 0.0f);
    CHECK(llmc_semantic_lookup(sem, st, 100, q, "write code", 10, -1, 2, &r) == NULL);
    llmc_entry_release(x);
    llmc_entry_release(y);

    /* Deleted, expired or evicted: gone from the index too. */
    unit_vec(q, 0, 0.1f);
    CHECK_EQ_INT(llmc_store_delete(st, a->key), 0);
    CHECK_EQ_INT(llmc_semantic_count(sem), 0);
    CHECK(llmc_semantic_lookup(sem, st, 100, q, qt, strlen(qt), -1, 2, &r) == NULL);
    llmc_entry_release(a);
    unit_vec(v, 5, 0.0f);
    const llmc_entry_info *b = put(st, sem, 4, 100, v, "What is the capital of France?", 0, "test-model");
    CHECK_EQ_INT(llmc_semantic_count(sem), 1);
    CHECK_EQ_INT(llmc_store_expire(st, 5000, 10), 3); /* b and the two above */
    CHECK_EQ_INT(llmc_semantic_count(sem), 0);
    llmc_entry_release(b);

    /* Wrong dimension / model at add. */
    llmc_entry_info bad;
    memset(&bad, 0, sizeof bad);
    bad.vec = v;
    bad.dim = DIM - 1;
    bad.vec_model = "test-model";
    CHECK_EQ_INT(llmc_semantic_add(sem, &bad), LLMC_EMISMATCH);
    bad.dim = 0;
    CHECK_EQ_INT(llmc_semantic_add(sem, &bad), LLMC_EINVAL);
    llmc_store_free(st);
    llmc_semantic_free(sem);
    return UNIT_DONE();
}
