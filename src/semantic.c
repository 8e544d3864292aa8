/*
 * semantic.c — the semantic tier: similar questions, same answer, safely.
 *
 * Design. The index (hnsw.c) holds one vector per stored entry, labelled by
 * the first 8 bytes of the entry's exact key (llmc_key_label) and filed
 * under the entry's partition, so a search never leaves the partition: two
 * requests whose tenant, model, system prompt, sampling or earlier turns
 * differ cannot meet. A lookup takes the k nearest candidates, walks them
 * best first while their cosine is at or above the threshold, fetches each
 * from the store (it may have expired or been evicted since), skips
 * exact-only entries and vectors of another model, and asks the guard
 * (guard.c) whether the candidate's question and the new one agree on
 * numbers, negation, named entities and content words. The first candidate
 * that passes is served.
 *
 * The default threshold is the one measured best for the built-in encoder
 * with the guard on the development pairs (tools/llmcached-semantic-eval;
 * README has the table): a cosine threshold alone cannot make a cache safe,
 * the guard carries the precision, the threshold the recall.
 *
 * Locking: the index has its own lock (hnsw.c); the store its own. A lookup
 * never holds the index lock while calling the store, and the store calls
 * llmc_semantic_remove with its lock held, so the order is store → index.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

#define SEMANTIC_MAX_K 16

struct llmc_semantic {
    llmc_semantic_params p;
    llmc_hnsw *index;
    char *model;
};

llmc_semantic_params llmc_semantic_default_params(void)
{
    llmc_semantic_params p;
    memset(&p, 0, sizeof p);
    p.threshold = 0.80;
    p.k = 4;
    p.ef = 64;
    p.guard = 1;
    p.guard_params = llmc_guard_default_params();
    p.index = llmc_hnsw_default_params();
    p.index.dim = 512;
    return p;
}

llmc_semantic *llmc_semantic_new(const llmc_semantic_params *p, int *err)
{
    llmc_semantic *sem = calloc(1, sizeof *sem);
    int e = LLMC_ENOMEM;
    if (!sem)
        goto fail;
    sem->p = p ? *p : llmc_semantic_default_params();
    if (sem->p.k == 0 || sem->p.k > SEMANTIC_MAX_K)
        sem->p.k = sem->p.k ? SEMANTIC_MAX_K : 4;
    sem->model = strdup(sem->p.index.model ? sem->p.index.model : "");
    if (!sem->model)
        goto fail;
    sem->index = llmc_hnsw_new(&sem->p.index, &e);
    if (!sem->index)
        goto fail;
    return sem;
fail:
    if (sem)
        free(sem->model);
    free(sem);
    if (err)
        *err = e;
    return NULL;
}

void llmc_semantic_free(llmc_semantic *sem)
{
    if (!sem)
        return;
    llmc_hnsw_free(sem->index);
    free(sem->model);
    free(sem);
}

int llmc_semantic_add(llmc_semantic *sem, const llmc_entry_info *e)
{
    if (!e->vec || !e->dim || (e->flags & LLMC_ENTRY_EXACT_ONLY))
        return LLMC_EINVAL;
    if (e->dim != llmc_hnsw_dim(sem->index) || strcmp(e->vec_model ? e->vec_model : "", sem->model))
        return LLMC_EMISMATCH;
    uint64_t part = e->partition == LLMC_HNSW_ANY ? e->partition - 1 : e->partition;
    return llmc_hnsw_add(sem->index, llmc_key_label(e->key), part, e->vec);
}

void llmc_semantic_remove(llmc_semantic *sem, const uint8_t key[LLMC_KEY_LEN])
{
    llmc_hnsw_remove(sem->index, llmc_key_label(key));
}

const llmc_entry_info *llmc_semantic_lookup(llmc_semantic *sem, llmc_store *s, uint64_t partition,
                                            const float *q, const char *query, size_t qlen,
                                            double threshold, int64_t now,
                                            llmc_semantic_result *res)
{
    llmc_semantic_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof *res);
    res->similarity = NAN;
    res->reason = "empty";
    if (threshold < 0)
        threshold = sem->p.threshold;
    if (partition == LLMC_HNSW_ANY)
        partition--;
    uint64_t labels[SEMANTIC_MAX_K];
    float sims[SEMANTIC_MAX_K];
    size_t n = 0;
    if (llmc_hnsw_search(sem->index, q, partition, sem->p.k, sem->p.ef, labels, sims, &n) || !n)
        return NULL;
    res->similarity = sims[0];
    res->reason = "below-threshold";
    for (size_t i = 0; i < n && sims[i] >= threshold; i++) {
        const llmc_entry_info *e = llmc_store_get_by_label(s, labels[i], now);
        if (!e)
            continue; /* expired or evicted since; its removal is on its way */
        if ((e->flags & LLMC_ENTRY_EXACT_ONLY) || strcmp(e->vec_model, sem->model) != 0) {
            llmc_entry_release(e);
            continue;
        }
        res->candidates++;
        if (sem->p.guard) {
            llmc_guard_result g;
            if (llmc_guard_check(&sem->p.guard_params, query, qlen, e->query, strlen(e->query),
                                 sims[i], &g) ||
                !g.accept) {
                res->guard_rejected++;
                res->reason = "guard";
                llmc_entry_release(e);
                continue;
            }
        }
        res->similarity = sims[i];
        res->reason = "hit";
        return e;
    }
    return NULL;
}

size_t llmc_semantic_count(llmc_semantic *sem)
{
    return llmc_hnsw_count(sem->index);
}

const char *llmc_semantic_model(llmc_semantic *sem)
{
    return sem->model;
}
