/*
 * hnsw_impl.h — internal: the HNSW index's memory layout, shared by hnsw.c
 * (the graph: add, remove, search) and hnsw_file.c (its file format).
 * The design and the locking rules are in hnsw.c's header comment.
 */
#ifndef HNSW_IMPL_H
#define HNSW_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "llmcache.h"
#include "vec.h"

#define HNSW_NONE UINT32_MAX
#define HNSW_MAX_LEVEL 24
#define HNSW_MAX_SLOTS ((size_t)UINT32_MAX - 1)
#define HNSW_F_REMOVED 1u
#define HNSW_F_PARKED 2u
#define HNSW_EXACT_C 16.0 /* measured crossover, see the header comment */
#define HNSW_SCAN_AHEAD 6
#define HNSW_MAGIC "LLMCHNSW"
#define HNSW_VERSION 1u
#define HNSW_HDR 64u
#define HNSW_MODEL_MAX 1024u

typedef struct {
    float d;
    uint32_t id;
} hnsw_cand;

typedef struct hnsw_scratch {
    struct hnsw_scratch *next;
    uint16_t *visited;
    size_t vcap;
    uint16_t epoch;
    hnsw_cand *cand, *res, *sorted;
    size_t ccap, rcap, scap;
    uint32_t *batch;
    float *dist; /* M0 distances of one node's new neighbours */
    float *qf;
    int8_t *qi;
} hnsw_scratch;

typedef struct {
    uint64_t part; /* LLMC_HNSW_ANY = empty */
    uint32_t head;
    uint32_t count;
} hnsw_pent;

typedef struct {
    const float *f;
    const int8_t *i;
    float s;
} hnsw_query;

struct llmc_hnsw {
    size_t dim, M, M0, efc, efs, max_bytes, init_cap;
    int metric, quant, pmode;
    char *model;
    vec_kernels k;
    double level_mult;
    uint64_t rng;

    size_t stride, off_label, off_part, off_vec;
    char *blocks;
    size_t blocks_map; /* bytes mapped for blocks (a multiple of the page size) */
    uint32_t **upper;
    uint32_t *pnext, *pprev;
    size_t cap, n_slots, n_live, upper_bytes;
    uint32_t free_head, entry;
    int max_level;

    uint32_t *lmap;
    size_t lmap_cap; /* power of two */
    hnsw_pent *pmap;
    size_t pmap_cap, pmap_n; /* power of two */

    pthread_rwlock_t lock;
    pthread_mutex_t pool_lock;
    hnsw_scratch *pool;
};

/* ---- slot access ---------------------------------------------------- */

static inline char *hnsw_blk(const llmc_hnsw *h, uint32_t id)
{
    return h->blocks + (size_t)id * h->stride;
}
static inline uint16_t *hnsw_n0(const llmc_hnsw *h, uint32_t id)
{
    return (uint16_t *)hnsw_blk(h, id);
}
static inline uint8_t *hnsw_flags(const llmc_hnsw *h, uint32_t id)
{
    return (uint8_t *)hnsw_blk(h, id) + 2;
}
static inline uint8_t *hnsw_level(const llmc_hnsw *h, uint32_t id)
{
    return (uint8_t *)hnsw_blk(h, id) + 3;
}
static inline uint64_t hnsw_label(const llmc_hnsw *h, uint32_t id)
{
    uint64_t v;
    memcpy(&v, hnsw_blk(h, id) + h->off_label, 8);
    return v;
}
static inline uint64_t hnsw_part(const llmc_hnsw *h, uint32_t id)
{
    uint64_t v;
    memcpy(&v, hnsw_blk(h, id) + h->off_part, 8);
    return v;
}
static inline char *hnsw_vec(const llmc_hnsw *h, uint32_t id)
{
    return hnsw_blk(h, id) + h->off_vec;
}

/* Links of slot id at level lev: *cnt and the array (capacity M0 or M). */
static inline uint32_t *hnsw_links(const llmc_hnsw *h, uint32_t id, int lev, uint32_t *cnt)
{
    if (lev == 0) {
        *cnt = *hnsw_n0(h, id);
        return (uint32_t *)(hnsw_blk(h, id) + 4);
    }
    uint32_t *l = h->upper[id] + (size_t)(lev - 1) * (h->M + 1);
    *cnt = l[0];
    return l + 1;
}
static inline void hnsw_set_count(const llmc_hnsw *h, uint32_t id, int lev, uint32_t cnt)
{
    if (lev == 0)
        *hnsw_n0(h, id) = (uint16_t)cnt;
    else
        h->upper[id][(size_t)(lev - 1) * (h->M + 1)] = cnt;
}

static inline float hnsw_dist_q(const llmc_hnsw *h, const hnsw_query *q, uint32_t id)
{
    const char *v = hnsw_vec(h, id);
    if (h->quant == LLMC_HNSW_F32)
        return -h->k.dot_f32(q->f, (const float *)v, h->dim);
    float s;
    memcpy(&s, v, 4);
    return -(q->s * s) * (float)h->k.dot_i8(q->i, (const int8_t *)(v + 4), h->dim);
}

static inline void hnsw_query_of(const llmc_hnsw *h, uint32_t id, hnsw_query *q)
{
    const char *v = hnsw_vec(h, id);
    q->f = NULL;
    q->i = NULL;
    q->s = 0;
    if (h->quant == LLMC_HNSW_F32) {
        q->f = (const float *)v;
    } else {
        memcpy(&q->s, v, 4);
        q->i = (const int8_t *)(v + 4);
    }
}

static inline float hnsw_dist_ids(const llmc_hnsw *h, uint32_t a, uint32_t b)
{
    hnsw_query q;
    hnsw_query_of(h, a, &q);
    return hnsw_dist_q(h, &q, b);
}

static inline void hnsw_prefetch(const llmc_hnsw *h, uint32_t id)
{
    const char *b = hnsw_blk(h, id);
    __builtin_prefetch(b);
    __builtin_prefetch(b + h->off_vec);
    __builtin_prefetch(b + h->off_vec + 64);
}

static inline void hnsw_prefetch_vec(const llmc_hnsw *h, uint32_t id)
{
    /* the rest of the block after what hnsw_prefetch fetched */
    const char *b = hnsw_blk(h, id);
    __builtin_prefetch(b + 64);
    for (size_t o = h->off_vec + 128; o < h->stride; o += 64)
        __builtin_prefetch(b + o);
}

/* hnsw.c's helpers that the file format needs (hnsw.c has their
 * contracts). */
uint32_t hnsw_lmap_find(const llmc_hnsw *h, uint64_t label);
void hnsw_lmap_insert(llmc_hnsw *h, uint32_t slot);
int hnsw_part_link(llmc_hnsw *h, uint32_t s);
size_t hnsw_bytes_for(const llmc_hnsw *h, size_t cap);
int hnsw_reserve(llmc_hnsw *h, size_t ncap);
llmc_hnsw *hnsw_alloc(const llmc_hnsw_params *p, int *err);

#endif
