/*
 * hnsw.c — the vector index: a Hierarchical Navigable Small World graph
 * (Malkov & Yashunin, 2016) with deletes, partitions, a byte budget and a
 * file format.
 *
 * Storage. Every item lives in a slot. Level 0 of all slots is one flat
 * array with a fixed stride (the layout hnswlib made standard), so a search
 * that reaches a node finds its links, flags, partition and vector in one
 * contiguous run of cache lines:
 *     u16 nlinks | u8 flags | u8 level | u32 links[M0] | pad to 8 |
 *     u64 label | u64 partition | vector
 * where the vector is dim float32 (quant F32) or a float32 scale followed by
 * dim int8 (quant I8, x ~= scale * q). Levels >= 1 exist for about 1/M of
 * the slots; they are separate arrays (upper[slot]) of `level` lists of
 * (u32 count, u32 links[M]). M0 = 2*M.
 *
 * Side tables: a label -> slot hash table (open addressing over u32 slot
 * numbers; the key is read from the slot, so an entry costs 4 bytes), a
 * partition table (partition -> head of a doubly linked list of its live
 * slots through pnext/pprev, and its count), and a free list of removed
 * slots (through pnext). Hashes are XXH3 (libxxhash).
 *
 * Search. Greedy descent on the upper levels, then the ef-bounded best-first
 * search on level 0 with epoch-tagged visited marks (u16). Per node popped,
 * the unvisited neighbours are first collected and their vectors prefetched,
 * then their distances computed, so that the memory fetches overlap. Removed
 * nodes are still walked through (they keep the graph connected) but never
 * enter the results. A partition search scans the partition's list exactly
 * when it is small (count^2 <= HNSW_EXACT_C * ef * live items: the cost of a
 * filtered graph search grows like ef / fraction), otherwise it runs the
 * graph search with the partition as a filter on the results only, so recall
 * stays up for every partition size (tests/unit/test_hnsw.c, bench/hnsw).
 *
 * Insert (standard HNSW with the neighbour-selection heuristic): a level
 * drawn from -ln(U)/ln(M), descent, then on each level an ef_construction
 * search, heuristic choice of M neighbours, and reverse links, pruned by the
 * same heuristic when a list is full. Removed nodes are never chosen as new
 * neighbours and are dropped from lists when those are pruned.
 *
 * Removal marks the slot, takes it out of the label table and its partition
 * list and pushes it on the free list. An add reuses the most recently
 * freed slot: the slot keeps its level (so upper-level links that point at
 * it stay within its arrays), its outgoing links are rebuilt, and the links
 * other nodes still hold to it simply lead to the new vector (the graph stays
 * navigable; the recall after heavy churn is tested). The entry point's slot
 * is not reused while it is the entry point (it stays parked, flag PARKED,
 * until a higher node replaces it).
 *
 * Locking. One writer-preferring pthread rwlock per index. Readers (search,
 * contains, count, bytes, save) hold it shared; add and remove hold it
 * exclusive, so a reader never sees a half-linked node or an array being
 * reallocated. Per-search scratch (visited marks, heaps, query copies) comes
 * from a pool guarded by its own mutex, taken only to pop/push a scratch.
 *
 * Byte budget. bytes() counts every allocation the index owns except the
 * scratch pool (bounded by the number of concurrent searches). An add that
 * would need to grow past max_bytes fails with LLMC_EFULL; reused slots need
 * no growth.
 *
 * File format (version 1, all integers little-endian, floats IEEE-754 bits
 * little-endian):
 *     0  8  magic "LLMCHNSW"
 *     8  4  version = 1
 *    12  4  dim
 *    16  4  metric (0 cosine, 1 inner product)
 *    20  4  quant (0 f32, 1 i8)
 *    24  4  M
 *    28  4  ef_construction
 *    32  4  ef_search
 *    36  4  max_level (int32, -1 when empty)
 *    40  4  entry slot (0xffffffff when empty)
 *    44  4  n_slots (records that follow)
 *    48  4  n_live
 *    52  4  model name length L (<= 1024)
 *    56  8  level generator state
 *    64  L  model name (UTF-8, no NUL)
 *   then n_slots records:
 *     u8 flags (bit0 removed, bit1 parked), u8 level, u16 n0,
 *     u64 label, u64 partition, u32 links[n0],
 *     for each level 1..level: u16 n, u32 links[n],
 *     vector: f32 x dim, or f32 scale + i8 x dim
 *   then u32 F and F u32 slots: the free list, head first (every removed
 *   slot except a parked entry point, once each);
 *   then u64 XXH3-64 of every byte before it.
 * Load checks the magic (LLMC_EFOREIGN), version (LLMC_EVERSION), checksum
 * and every count, level and link against its bounds (LLMC_ECORRUPT), then
 * the expected model and dimension (LLMC_EMISMATCH).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "llmcache.h"
#include "vec.h"

#define HNSW_NONE UINT32_MAX
#define HNSW_MAX_LEVEL 24
#define HNSW_MAX_SLOTS ((size_t)UINT32_MAX - 1)
#define HNSW_F_REMOVED 1u
#define HNSW_F_PARKED 2u
#define HNSW_EXACT_C 32.0
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
    const char *b = hnsw_vec(h, id);
    size_t n = h->stride - h->off_vec;
    for (size_t o = 128; o < n; o += 64)
        __builtin_prefetch(b + o);
}

/* ---- random levels -------------------------------------------------- */

static uint64_t hnsw_rand(llmc_hnsw *h)
{
    /* splitmix64 */
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int hnsw_random_level(llmc_hnsw *h)
{
    double u = ((double)(hnsw_rand(h) >> 11) + 1.0) / 9007199254740993.0; /* (0,1] */
    double l = -log(u) * h->level_mult;
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (int)l;
}

/* ---- heaps: cand is a min-heap on d, res a max-heap on d ------------- */

static inline void hnsw_heap_push(hnsw_cand *a, size_t *n, hnsw_cand x, int max)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (max ? !(a[p].d < x.d) : !(a[p].d > x.d))
            break;
        a[i] = a[p];
        i = p;
    }
    a[i] = x;
}

static inline hnsw_cand hnsw_heap_pop(hnsw_cand *a, size_t *n, int max)
{
    hnsw_cand top = a[0], x = a[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && (max ? a[c + 1].d > a[c].d : a[c + 1].d < a[c].d))
            c++;
        if (max ? !(a[c].d > x.d) : !(a[c].d < x.d))
            break;
        a[i] = a[c];
        i = c;
    }
    if (m)
        a[i] = x;
    return top;
}

static int hnsw_cand_cmp(const void *a, const void *b)
{
    const hnsw_cand *x = a, *y = b;
    if (x->d < y->d)
        return -1;
    if (x->d > y->d)
        return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- scratch pool --------------------------------------------------- */

static void hnsw_scratch_free(hnsw_scratch *s)
{
    if (!s)
        return;
    free(s->visited);
    free(s->cand);
    free(s->res);
    free(s->sorted);
    free(s->batch);
    free(s->qf);
    free(s->qi);
    free(s);
}

static int hnsw_grow_arr(hnsw_cand **a, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    hnsw_cand *p = realloc(*a, nc * sizeof *p);
    if (!p)
        return LLMC_ENOMEM;
    *a = p;
    *cap = nc;
    return 0;
}

/* Take a scratch sized for the index as it is now (caller holds the lock,
 * shared or exclusive, so h->cap is stable). NULL when out of memory. */
static hnsw_scratch *hnsw_scratch_get(llmc_hnsw *h, size_t ef)
{
    pthread_mutex_lock(&h->pool_lock);
    hnsw_scratch *s = h->pool;
    if (s)
        h->pool = s->next;
    pthread_mutex_unlock(&h->pool_lock);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        s->batch = malloc(h->M0 * sizeof *s->batch);
        s->qf = malloc(h->dim * sizeof *s->qf);
        s->qi = malloc(h->dim);
        if (!s->batch || !s->qf || !s->qi) {
            hnsw_scratch_free(s);
            return NULL;
        }
    }
    if (s->vcap < h->cap) {
        uint16_t *v = calloc(h->cap, sizeof *v);
        if (!v) {
            hnsw_scratch_free(s);
            return NULL;
        }
        free(s->visited);
        s->visited = v;
        s->vcap = h->cap;
        s->epoch = 0;
    }
    if (hnsw_grow_arr(&s->res, &s->rcap, ef + 2) || hnsw_grow_arr(&s->cand, &s->ccap, 4 * ef + 64) ||
        hnsw_grow_arr(&s->sorted, &s->scap, ef + h->M0 + 2)) {
        hnsw_scratch_free(s);
        return NULL;
    }
    return s;
}

static void hnsw_scratch_put(llmc_hnsw *h, hnsw_scratch *s)
{
    pthread_mutex_lock(&h->pool_lock);
    s->next = h->pool;
    h->pool = s;
    pthread_mutex_unlock(&h->pool_lock);
}

static void hnsw_new_epoch(hnsw_scratch *s)
{
    if (++s->epoch == 0) {
        memset(s->visited, 0, s->vcap * sizeof *s->visited);
        s->epoch = 1;
    }
}

/* ---- hash tables ---------------------------------------------------- */

static inline size_t hnsw_hash64(uint64_t x)
{
    return (size_t)XXH3_64bits(&x, sizeof x);
}

/* Slot of label, or HNSW_NONE. */
static uint32_t hnsw_lmap_find(const llmc_hnsw *h, uint64_t label)
{
    size_t m = h->lmap_cap - 1;
    for (size_t i = hnsw_hash64(label) & m;; i = (i + 1) & m) {
        uint32_t s = h->lmap[i];
        if (s == HNSW_NONE)
            return HNSW_NONE;
        if (hnsw_label(h, s) == label)
            return s;
    }
}

/* The table always has room: lmap_cap >= 2 * cap (see hnsw_reserve). */
static void hnsw_lmap_insert(llmc_hnsw *h, uint32_t slot)
{
    size_t m = h->lmap_cap - 1;
    size_t i = hnsw_hash64(hnsw_label(h, slot)) & m;
    while (h->lmap[i] != HNSW_NONE)
        i = (i + 1) & m;
    h->lmap[i] = slot;
}

/* Remove by backward shift (linear probing keeps no tombstones). */
static void hnsw_lmap_delete(llmc_hnsw *h, uint32_t slot)
{
    size_t m = h->lmap_cap - 1;
    size_t i = hnsw_hash64(hnsw_label(h, slot)) & m;
    while (h->lmap[i] != slot)
        i = (i + 1) & m;
    size_t j = i;
    for (;;) {
        h->lmap[i] = HNSW_NONE;
        for (;;) {
            j = (j + 1) & m;
            if (h->lmap[j] == HNSW_NONE)
                return;
            size_t home = hnsw_hash64(hnsw_label(h, h->lmap[j])) & m;
            /* move j to i unless its home lies cyclically in (i, j] */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        h->lmap[i] = h->lmap[j];
        i = j;
    }
}

static hnsw_pent *hnsw_pmap_find(const llmc_hnsw *h, uint64_t part)
{
    size_t m = h->pmap_cap - 1;
    for (size_t i = hnsw_hash64(part) & m;; i = (i + 1) & m) {
        if (h->pmap[i].part == LLMC_HNSW_ANY)
            return NULL;
        if (h->pmap[i].part == part)
            return &h->pmap[i];
    }
}

static int hnsw_pmap_resize(llmc_hnsw *h, size_t ncap)
{
    hnsw_pent *n = malloc(ncap * sizeof *n);
    if (!n)
        return LLMC_ENOMEM;
    for (size_t i = 0; i < ncap; i++)
        n[i].part = LLMC_HNSW_ANY;
    for (size_t i = 0; i < h->pmap_cap; i++) {
        if (h->pmap[i].part == LLMC_HNSW_ANY)
            continue;
        size_t j = hnsw_hash64(h->pmap[i].part) & (ncap - 1);
        while (n[j].part != LLMC_HNSW_ANY)
            j = (j + 1) & (ncap - 1);
        n[j] = h->pmap[i];
    }
    free(h->pmap);
    h->pmap = n;
    h->pmap_cap = ncap;
    return 0;
}

/* Find or create the entry of part. NULL when out of memory. */
static hnsw_pent *hnsw_pmap_get(llmc_hnsw *h, uint64_t part)
{
    hnsw_pent *e = hnsw_pmap_find(h, part);
    if (e)
        return e;
    if ((h->pmap_n + 1) * 2 > h->pmap_cap && hnsw_pmap_resize(h, h->pmap_cap * 2))
        return NULL;
    size_t m = h->pmap_cap - 1, i = hnsw_hash64(part) & m;
    while (h->pmap[i].part != LLMC_HNSW_ANY)
        i = (i + 1) & m;
    h->pmap[i].part = part;
    h->pmap[i].head = HNSW_NONE;
    h->pmap[i].count = 0;
    h->pmap_n++;
    return &h->pmap[i];
}

static void hnsw_pmap_delete(llmc_hnsw *h, hnsw_pent *e)
{
    size_t m = h->pmap_cap - 1, i = (size_t)(e - h->pmap), j = i;
    for (;;) {
        h->pmap[i].part = LLMC_HNSW_ANY;
        for (;;) {
            j = (j + 1) & m;
            if (h->pmap[j].part == LLMC_HNSW_ANY)
                goto done;
            size_t home = hnsw_hash64(h->pmap[j].part) & m;
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        h->pmap[i] = h->pmap[j];
        i = j;
    }
done:
    h->pmap_n--;
}

/* Link a live slot into its partition's list. */
static int hnsw_part_link(llmc_hnsw *h, uint32_t s)
{
    hnsw_pent *e = hnsw_pmap_get(h, hnsw_part(h, s));
    if (!e)
        return LLMC_ENOMEM;
    h->pprev[s] = HNSW_NONE;
    h->pnext[s] = e->head;
    if (e->head != HNSW_NONE)
        h->pprev[e->head] = s;
    e->head = s;
    e->count++;
    return 0;
}

static void hnsw_part_unlink(llmc_hnsw *h, uint32_t s)
{
    hnsw_pent *e = hnsw_pmap_find(h, hnsw_part(h, s));
    if (h->pprev[s] != HNSW_NONE)
        h->pnext[h->pprev[s]] = h->pnext[s];
    else
        e->head = h->pnext[s];
    if (h->pnext[s] != HNSW_NONE)
        h->pprev[h->pnext[s]] = h->pprev[s];
    h->pnext[s] = h->pprev[s] = HNSW_NONE;
    if (--e->count == 0)
        hnsw_pmap_delete(h, e);
}

/* ---- sizes and growth ----------------------------------------------- */

static size_t hnsw_lmap_cap_for(size_t cap)
{
    size_t c = 16;
    while (c < 2 * cap)
        c *= 2;
    return c;
}

static size_t hnsw_bytes_for(const llmc_hnsw *h, size_t cap)
{
    return sizeof *h + strlen(h->model) + 1 + cap * (h->stride + sizeof(uint32_t *) + 8) +
           hnsw_lmap_cap_for(cap) * sizeof(uint32_t) + h->pmap_cap * sizeof(hnsw_pent) +
           h->upper_bytes;
}

/* Grow every per-slot array to ncap slots (exclusive lock held). */
static int hnsw_reserve(llmc_hnsw *h, size_t ncap)
{
    if (ncap <= h->cap)
        return 0;
    char *b = realloc(h->blocks, ncap * h->stride);
    if (!b)
        return LLMC_ENOMEM;
    h->blocks = b;
    uint32_t **u = realloc(h->upper, ncap * sizeof *u);
    if (!u)
        return LLMC_ENOMEM;
    h->upper = u;
    uint32_t *pn = realloc(h->pnext, ncap * sizeof *pn);
    if (!pn)
        return LLMC_ENOMEM;
    h->pnext = pn;
    uint32_t *pp = realloc(h->pprev, ncap * sizeof *pp);
    if (!pp)
        return LLMC_ENOMEM;
    h->pprev = pp;
    for (size_t i = h->cap; i < ncap; i++)
        h->upper[i] = NULL;
    size_t lc = hnsw_lmap_cap_for(ncap);
    if (lc != h->lmap_cap) {
        uint32_t *lm = malloc(lc * sizeof *lm);
        if (!lm)
            return LLMC_ENOMEM;
        uint32_t *old = h->lmap;
        size_t oldc = h->lmap_cap;
        memset(lm, 0xff, lc * sizeof *lm);
        h->lmap = lm;
        h->lmap_cap = lc;
        for (size_t i = 0; i < oldc; i++)
            if (old[i] != HNSW_NONE)
                hnsw_lmap_insert(h, old[i]);
        free(old);
    }
    h->cap = ncap;
    return 0;
}

/* Room for one more slot within the budget. */
static int hnsw_make_room(llmc_hnsw *h)
{
    if (h->n_slots < h->cap)
        return 0;
    if (h->cap >= HNSW_MAX_SLOTS)
        return LLMC_EFULL;
    size_t want = h->cap * 2;
    if (want > HNSW_MAX_SLOTS)
        want = HNSW_MAX_SLOTS;
    if (h->max_bytes) {
        while (want > h->cap && hnsw_bytes_for(h, want) > h->max_bytes)
            want = h->cap + (want - h->cap) / 2;
        if (want <= h->cap)
            return LLMC_EFULL;
    }
    return hnsw_reserve(h, want);
}

/* ---- search primitives ---------------------------------------------- */

/* Greedy walk on level lev from *cur towards q, never stepping onto skip. */
static void hnsw_greedy(const llmc_hnsw *h, const hnsw_query *q, uint32_t *cur, float *curd, int lev,
                        uint32_t skip)
{
    int changed = 1;
    while (changed) {
        changed = 0;
        uint32_t cnt;
        const uint32_t *l = hnsw_links(h, *cur, lev, &cnt);
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t n = l[j];
            if (n == skip)
                continue;
            float d = hnsw_dist_q(h, q, n);
            if (d < *curd) {
                *curd = d;
                *cur = n;
                changed = 1;
            }
        }
    }
}

/*
 * Best-first search of level lev from ep: leaves at most ef results in
 * s->res (a max-heap, *nres of them). A node enters the results only when
 * it is live and, unless part is LLMC_HNSW_ANY, in part; every node is
 * walked through. `skip` (the slot being inserted) is neither walked nor
 * returned. Returns 0 or LLMC_ENOMEM.
 */
static int hnsw_search_layer(const llmc_hnsw *h, hnsw_scratch *s, const hnsw_query *q, uint32_t ep,
                             float epd, int lev, size_t ef, uint64_t part, uint32_t skip,
                             size_t *nres)
{
    hnsw_cand *cand = s->cand, *res = s->res;
    size_t nc = 0, nr = 0;
    uint16_t *vis = s->visited, ep_ = s->epoch;
    hnsw_new_epoch(s);
    ep_ = s->epoch;
    if (skip != HNSW_NONE)
        vis[skip] = ep_;
    vis[ep] = ep_;
    hnsw_heap_push(cand, &nc, (hnsw_cand){epd, ep}, 0);
    if (!(*hnsw_flags(h, ep) & HNSW_F_REMOVED) && (part == LLMC_HNSW_ANY || hnsw_part(h, ep) == part))
        hnsw_heap_push(res, &nr, (hnsw_cand){epd, ep}, 1);
    uint32_t *batch = s->batch;
    while (nc) {
        hnsw_cand c = hnsw_heap_pop(cand, &nc, 0);
        if (nr >= ef && c.d > res[0].d)
            break;
        uint32_t cnt, nb = 0;
        const uint32_t *l = hnsw_links(h, c.id, lev, &cnt);
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t n = l[j];
            if (vis[n] == ep_)
                continue;
            vis[n] = ep_;
            batch[nb++] = n;
            hnsw_prefetch(h, n);
        }
        for (uint32_t j = 0; j < nb; j++) {
            uint32_t n = batch[j];
            if (j + 1 < nb)
                hnsw_prefetch_vec(h, batch[j + 1]);
            float d = hnsw_dist_q(h, q, n);
            if (nr < ef || d < res[0].d) {
                if (nc + 1 > s->ccap) {
                    if (hnsw_grow_arr(&s->cand, &s->ccap, nc + 1))
                        return LLMC_ENOMEM;
                    cand = s->cand;
                }
                hnsw_heap_push(cand, &nc, (hnsw_cand){d, n}, 0);
                if (!(*hnsw_flags(h, n) & HNSW_F_REMOVED) &&
                    (part == LLMC_HNSW_ANY || hnsw_part(h, n) == part)) {
                    hnsw_heap_push(res, &nr, (hnsw_cand){d, n}, 1);
                    if (nr > ef)
                        hnsw_heap_pop(res, &nr, 1);
                }
            }
        }
    }
    *nres = nr;
    return 0;
}

/* Move the result heap into s->sorted, best first. Returns the count. */
static size_t hnsw_take_sorted(hnsw_scratch *s, size_t nr)
{
    memcpy(s->sorted, s->res, nr * sizeof *s->res);
    qsort(s->sorted, nr, sizeof *s->sorted, hnsw_cand_cmp);
    return nr;
}

/*
 * The neighbour-selection heuristic: from c[0..n) (sorted best first by
 * distance to the base), keep a candidate only if it is closer to the base
 * than to every one kept so far; at most m. Compacts c in place, returns the
 * number kept.
 */
static size_t hnsw_select(const llmc_hnsw *h, hnsw_cand *c, size_t n, size_t m)
{
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        int good = 1;
        for (size_t j = 0; j < kept; j++) {
            if (hnsw_dist_ids(h, c[i].id, c[j].id) < c[i].d) {
                good = 0;
                break;
            }
        }
        if (good)
            c[kept++] = c[i];
    }
    return kept;
}

/* Add a link n -> s on level lev, pruning n's list by the heuristic when it
 * is full. tmp has room for M0 + 1 entries. */
static void hnsw_connect(llmc_hnsw *h, uint32_t n, uint32_t s, int lev, float d, hnsw_cand *tmp)
{
    uint32_t cnt, capn = (uint32_t)(lev == 0 ? h->M0 : h->M);
    uint32_t *l = hnsw_links(h, n, lev, &cnt);
    for (uint32_t j = 0; j < cnt; j++)
        if (l[j] == s)
            return;
    if (cnt < capn) {
        l[cnt] = s;
        hnsw_set_count(h, n, lev, cnt + 1);
        return;
    }
    size_t t = 0;
    tmp[t++] = (hnsw_cand){d, s};
    hnsw_query q;
    hnsw_query_of(h, n, &q);
    for (uint32_t j = 0; j < cnt; j++) {
        if (*hnsw_flags(h, l[j]) & HNSW_F_REMOVED)
            continue; /* forget removed nodes when pruning */
        tmp[t++] = (hnsw_cand){hnsw_dist_q(h, &q, l[j]), l[j]};
    }
    qsort(tmp, t, sizeof *tmp, hnsw_cand_cmp);
    size_t kept = hnsw_select(h, tmp, t, capn);
    for (size_t j = 0; j < kept; j++)
        l[j] = tmp[j].id;
    hnsw_set_count(h, n, lev, (uint32_t)kept);
}

/* ---- construction --------------------------------------------------- */

llmc_hnsw_params llmc_hnsw_default_params(void)
{
    llmc_hnsw_params p;
    memset(&p, 0, sizeof p);
    p.dim = 384;
    p.M = 16;
    p.ef_construction = 100;
    p.ef_search = 64;
    p.metric = LLMC_HNSW_COSINE;
    p.quant = LLMC_HNSW_F32;
    p.model = "";
    p.seed = 42;
    p.initial_capacity = 1024;
    return p;
}

static llmc_hnsw *hnsw_alloc(const llmc_hnsw_params *p, int *err)
{
    int e = LLMC_EINVAL;
    llmc_hnsw *h = NULL;
    const char *model = p->model ? p->model : "";
    if (p->dim == 0 || p->dim > 65536 || p->M < 2 || p->M > 1024 ||
        (p->metric != LLMC_HNSW_COSINE && p->metric != LLMC_HNSW_IP) ||
        (p->quant != LLMC_HNSW_F32 && p->quant != LLMC_HNSW_I8) || strlen(model) > HNSW_MODEL_MAX ||
        p->partition_search < 0 || p->partition_search > 2)
        goto fail;
    e = LLMC_ENOMEM;
    h = calloc(1, sizeof *h);
    if (!h)
        goto fail;
    h->model = strdup(model);
    if (!h->model) {
        free(h);
        h = NULL;
        goto fail;
    }
    h->dim = p->dim;
    h->M = p->M;
    h->M0 = 2 * p->M;
    h->efc = p->ef_construction ? p->ef_construction : 100;
    h->efs = p->ef_search ? p->ef_search : 64;
    h->metric = p->metric;
    h->quant = p->quant;
    h->max_bytes = p->max_bytes;
    h->pmode = p->partition_search;
    h->rng = p->seed;
    h->level_mult = 1.0 / log((double)p->M);
    vec_kernels_select(&h->k, p->simd);
    size_t off = 4 + 4 * h->M0;
    off = (off + 7) & ~(size_t)7;
    h->off_label = off;
    h->off_part = off + 8;
    h->off_vec = off + 16;
    size_t vb = h->quant == LLMC_HNSW_F32 ? 4 * h->dim : 4 + h->dim;
    h->stride = (h->off_vec + vb + 7) & ~(size_t)7;
    h->free_head = HNSW_NONE;
    h->entry = HNSW_NONE;
    h->max_level = -1;
    h->pmap_cap = 16;
    h->pmap = malloc(h->pmap_cap * sizeof *h->pmap);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&h->pool_lock, NULL);
    if (!h->pmap) {
        llmc_hnsw_free(h);
        h = NULL;
        goto fail;
    }
    for (size_t i = 0; i < h->pmap_cap; i++)
        h->pmap[i].part = LLMC_HNSW_ANY;
    return h;
fail:
    if (err)
        *err = e;
    return NULL;
}

llmc_hnsw *llmc_hnsw_new(const llmc_hnsw_params *p, int *err)
{
    llmc_hnsw_params d = llmc_hnsw_default_params();
    if (!p)
        p = &d;
    llmc_hnsw *h = hnsw_alloc(p, err);
    if (!h)
        return NULL;
    size_t ic = p->initial_capacity ? p->initial_capacity : 1024;
    if (ic > HNSW_MAX_SLOTS)
        ic = HNSW_MAX_SLOTS;
    int e = 0;
    if (h->max_bytes && hnsw_bytes_for(h, ic) > h->max_bytes) {
        while (ic > 1 && hnsw_bytes_for(h, ic) > h->max_bytes)
            ic /= 2;
        if (hnsw_bytes_for(h, ic) > h->max_bytes)
            e = LLMC_EFULL;
    }
    if (!e)
        e = hnsw_reserve(h, ic);
    if (e) {
        llmc_hnsw_free(h);
        if (err)
            *err = e;
        return NULL;
    }
    return h;
}

void llmc_hnsw_free(llmc_hnsw *h)
{
    if (!h)
        return;
    if (h->upper)
        for (size_t i = 0; i < h->n_slots; i++)
            free(h->upper[i]);
    free(h->upper);
    free(h->blocks);
    free(h->pnext);
    free(h->pprev);
    free(h->lmap);
    free(h->pmap);
    free(h->model);
    while (h->pool) {
        hnsw_scratch *s = h->pool;
        h->pool = s->next;
        hnsw_scratch_free(s);
    }
    pthread_rwlock_destroy(&h->lock);
    pthread_mutex_destroy(&h->pool_lock);
    free(h);
}

/* Store vec into slot s in the index's format. */
static void hnsw_store_vec(llmc_hnsw *h, uint32_t s, const float *v)
{
    char *dst = hnsw_vec(h, s);
    if (h->quant == LLMC_HNSW_F32) {
        memcpy(dst, v, h->dim * sizeof(float));
    } else {
        float sc = vec_quantize_i8(v, h->dim, (int8_t *)(dst + 4));
        memcpy(dst, &sc, 4);
    }
}

/* Make q from a caller's vector: a normalised copy for cosine, quantised for
 * I8. Returns LLMC_EINVAL on a non-finite value or a zero vector (cosine). */
static int hnsw_prepare(const llmc_hnsw *h, hnsw_scratch *s, const float *v, hnsw_query *q)
{
    for (size_t i = 0; i < h->dim; i++)
        if (!isfinite(v[i]))
            return LLMC_EINVAL;
    memcpy(s->qf, v, h->dim * sizeof *v);
    if (h->metric == LLMC_HNSW_COSINE && vec_normalize(s->qf, h->dim) == 0)
        return LLMC_EINVAL;
    q->f = s->qf;
    q->i = s->qi;
    q->s = 0;
    if (h->quant == LLMC_HNSW_I8)
        q->s = vec_quantize_i8(s->qf, h->dim, s->qi);
    return 0;
}

static int hnsw_add_locked(llmc_hnsw *h, uint64_t label, uint64_t partition, const float *vec)
{
    if (hnsw_lmap_find(h, label) != HNSW_NONE)
        return LLMC_EEXIST;
    size_t efc = h->efc > h->M0 ? h->efc : h->M0;
    hnsw_scratch *sc = hnsw_scratch_get(h, efc);
    if (!sc)
        return LLMC_ENOMEM;
    hnsw_query q;
    int e = hnsw_prepare(h, sc, vec, &q);
    if (e)
        goto out;
    /* make sure the partition table has room before anything changes */
    if (!hnsw_pmap_get(h, partition)) {
        e = LLMC_ENOMEM;
        goto out;
    }
    uint32_t s;
    int level;
    if (h->free_head != HNSW_NONE) {
        s = h->free_head;
        h->free_head = h->pnext[s];
        level = *hnsw_level(h, s);
    } else {
        if ((e = hnsw_make_room(h)))
            goto out;
        if (sc->vcap < h->cap) { /* the array grew: resize this scratch */
            hnsw_scratch_put(h, sc);
            sc = hnsw_scratch_get(h, efc);
            if (!sc)
                return LLMC_ENOMEM;
            if ((e = hnsw_prepare(h, sc, vec, &q)))
                goto out;
        }
        level = hnsw_random_level(h);
        size_t ub = (size_t)level * (h->M + 1) * sizeof(uint32_t);
        if (h->max_bytes && hnsw_bytes_for(h, h->cap) + ub > h->max_bytes) {
            e = LLMC_EFULL;
            goto out;
        }
        s = (uint32_t)h->n_slots;
        h->upper[s] = NULL;
        if (level > 0) {
            h->upper[s] = calloc(1, ub);
            if (!h->upper[s]) {
                e = LLMC_ENOMEM;
                goto out;
            }
            h->upper_bytes += ub;
        }
        h->n_slots++;
    }
    char *b = hnsw_blk(h, s);
    memset(b, 0, 4);
    *hnsw_level(h, s) = (uint8_t)level;
    for (int l = 1; l <= level; l++)
        hnsw_set_count(h, s, l, 0);
    memcpy(b + h->off_label, &label, 8);
    memcpy(b + h->off_part, &partition, 8);
    hnsw_store_vec(h, s, q.f);
    /* distances during construction compare stored forms (as searches do) */
    hnsw_query qs = {NULL, NULL, 0};
    hnsw_query_of(h, s, &qs);

    if (h->entry != HNSW_NONE) {
        uint32_t cur = h->entry;
        float curd = hnsw_dist_q(h, &qs, cur);
        for (int l = h->max_level; l > level; l--)
            hnsw_greedy(h, &qs, &cur, &curd, l, s);
        hnsw_cand tmp[h->M0 + 1];
        for (int l = level < h->max_level ? level : h->max_level; l >= 0; l--) {
            size_t nr;
            if ((e = hnsw_search_layer(h, sc, &qs, cur, curd, l, efc, LLMC_HNSW_ANY, s, &nr)))
                goto out; /* only ENOMEM; the node stays linked as far as it got */
            size_t n = hnsw_take_sorted(sc, nr);
            if (n == 0) {
                /* nothing live was found (everything near is removed): link
                 * to where the descent stands so the node stays reachable */
                uint32_t cnt;
                hnsw_links(h, s, l, &cnt)[0] = cur;
                hnsw_set_count(h, s, l, 1);
                hnsw_connect(h, cur, s, l, curd, tmp);
                continue;
            }
            cur = sc->sorted[0].id;
            curd = sc->sorted[0].d;
            size_t capl = l == 0 ? h->M0 : h->M;
            size_t kept = hnsw_select(h, sc->sorted, n, h->M);
            uint32_t cnt;
            uint32_t *ls = hnsw_links(h, s, l, &cnt);
            for (size_t j = 0; j < kept && j < capl; j++)
                ls[j] = sc->sorted[j].id;
            hnsw_set_count(h, s, l, (uint32_t)kept);
            for (size_t j = 0; j < kept; j++)
                hnsw_connect(h, sc->sorted[j].id, s, l, sc->sorted[j].d, tmp);
        }
    }
    if (level > h->max_level) {
        uint32_t old = h->entry;
        h->entry = s;
        h->max_level = level;
        if (old != HNSW_NONE && (*hnsw_flags(h, old) & HNSW_F_PARKED)) {
            *hnsw_flags(h, old) &= (uint8_t)~HNSW_F_PARKED;
            h->pnext[old] = h->free_head;
            h->free_head = old;
        }
    }
    hnsw_lmap_insert(h, s);
    hnsw_part_link(h, s); /* cannot fail: the entry exists */
    h->n_live++;
out:
    if (e) { /* drop a partition entry made for this add and left empty */
        hnsw_pent *pe = hnsw_pmap_find(h, partition);
        if (pe && pe->count == 0)
            hnsw_pmap_delete(h, pe);
    }
    hnsw_scratch_put(h, sc);
    return e;
}

int llmc_hnsw_add(llmc_hnsw *h, uint64_t label, uint64_t partition, const float *vec)
{
    if (!h || !vec || partition == LLMC_HNSW_ANY)
        return LLMC_EINVAL;
    pthread_rwlock_wrlock(&h->lock);
    int e = hnsw_add_locked(h, label, partition, vec);
    pthread_rwlock_unlock(&h->lock);
    return e;
}

int llmc_hnsw_remove(llmc_hnsw *h, uint64_t label)
{
    if (!h)
        return LLMC_EINVAL;
    pthread_rwlock_wrlock(&h->lock);
    uint32_t s = hnsw_lmap_find(h, label);
    if (s == HNSW_NONE) {
        pthread_rwlock_unlock(&h->lock);
        return LLMC_ENOTFOUND;
    }
    hnsw_lmap_delete(h, s);
    hnsw_part_unlink(h, s);
    *hnsw_flags(h, s) |= HNSW_F_REMOVED;
    if (s == h->entry) {
        *hnsw_flags(h, s) |= HNSW_F_PARKED;
    } else {
        h->pnext[s] = h->free_head;
        h->free_head = s;
    }
    h->n_live--;
    pthread_rwlock_unlock(&h->lock);
    return 0;
}

int llmc_hnsw_set_partition_search(llmc_hnsw *h, int mode)
{
    if (!h || mode < 0 || mode > 2)
        return LLMC_EINVAL;
    pthread_rwlock_wrlock(&h->lock);
    h->pmode = mode;
    pthread_rwlock_unlock(&h->lock);
    return 0;
}

int llmc_hnsw_contains(llmc_hnsw *h, uint64_t label)
{
    if (!h)
        return 0;
    pthread_rwlock_rdlock(&h->lock);
    int r = hnsw_lmap_find(h, label) != HNSW_NONE;
    pthread_rwlock_unlock(&h->lock);
    return r;
}

/* ---- search --------------------------------------------------------- */

/* Exact top-k over the partition's list into s->res; returns the count. */
static size_t hnsw_scan_partition(const llmc_hnsw *h, hnsw_scratch *s, const hnsw_query *q,
                                  const hnsw_pent *e, size_t k)
{
    size_t nr = 0;
    for (uint32_t id = e->head; id != HNSW_NONE; id = h->pnext[id]) {
        if (h->pnext[id] != HNSW_NONE)
            hnsw_prefetch(h, h->pnext[id]);
        float d = hnsw_dist_q(h, q, id);
        if (nr < k || d < s->res[0].d) {
            hnsw_heap_push(s->res, &nr, (hnsw_cand){d, id}, 1);
            if (nr > k)
                hnsw_heap_pop(s->res, &nr, 1);
        }
    }
    return nr;
}

int llmc_hnsw_search(llmc_hnsw *h, const float *qv, uint64_t partition, size_t k, size_t ef,
                     uint64_t *labels, float *sims, size_t *n_out)
{
    if (!h || !qv || !n_out || (k && !labels))
        return LLMC_EINVAL;
    *n_out = 0;
    if (ef == 0)
        ef = h->efs;
    if (ef < k)
        ef = k;
    pthread_rwlock_rdlock(&h->lock);
    if (k == 0 || h->n_live == 0) {
        pthread_rwlock_unlock(&h->lock);
        return 0;
    }
    hnsw_scratch *s = hnsw_scratch_get(h, ef);
    if (!s) {
        pthread_rwlock_unlock(&h->lock);
        return LLMC_ENOMEM;
    }
    hnsw_query q;
    int e = hnsw_prepare(h, s, qv, &q);
    if (h->quant == LLMC_HNSW_F32)
        q.i = NULL;
    size_t nr = 0;
    if (e)
        goto out;
    const hnsw_pent *pe = NULL;
    if (partition != LLMC_HNSW_ANY) {
        pe = hnsw_pmap_find(h, partition);
        if (!pe)
            goto out;
    }
    int exact = pe && (h->pmode == 1 ||
                       (h->pmode == 0 && (double)pe->count * pe->count <=
                                             HNSW_EXACT_C * (double)ef * (double)h->n_live));
    if (exact) {
        nr = hnsw_scan_partition(h, s, &q, pe, k);
    } else {
        uint32_t cur = h->entry;
        float curd = hnsw_dist_q(h, &q, cur);
        for (int l = h->max_level; l > 0; l--)
            hnsw_greedy(h, &q, &cur, &curd, l, HNSW_NONE);
        if ((e = hnsw_search_layer(h, s, &q, cur, curd, 0, ef, partition, HNSW_NONE, &nr)))
            goto out;
    }
    nr = hnsw_take_sorted(s, nr);
    if (nr > k)
        nr = k;
    for (size_t i = 0; i < nr; i++) {
        labels[i] = hnsw_label(h, s->sorted[i].id);
        if (sims)
            sims[i] = -s->sorted[i].d;
    }
    *n_out = nr;
out:
    hnsw_scratch_put(h, s);
    pthread_rwlock_unlock(&h->lock);
    return e;
}

size_t llmc_hnsw_count(llmc_hnsw *h)
{
    if (!h)
        return 0;
    pthread_rwlock_rdlock(&h->lock);
    size_t n = h->n_live;
    pthread_rwlock_unlock(&h->lock);
    return n;
}

size_t llmc_hnsw_bytes(llmc_hnsw *h)
{
    if (!h)
        return 0;
    pthread_rwlock_rdlock(&h->lock);
    size_t n = hnsw_bytes_for(h, h->cap);
    pthread_rwlock_unlock(&h->lock);
    return n;
}

size_t llmc_hnsw_dim(const llmc_hnsw *h)
{
    return h ? h->dim : 0;
}

const char *llmc_hnsw_model(const llmc_hnsw *h)
{
    return h ? h->model : "";
}

const char *llmc_hnsw_kernel(const llmc_hnsw *h)
{
    return h ? h->k.name : "";
}

/* ---- save / load ---------------------------------------------------- */

static void hnsw_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void hnsw_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void hnsw_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t hnsw_rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t hnsw_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t hnsw_rd64(const unsigned char *p)
{
    return (uint64_t)hnsw_rd32(p) | (uint64_t)hnsw_rd32(p + 4) << 32;
}

typedef struct {
    FILE *f;
    XXH3_state_t *xs;
    int err;
} hnsw_writer;

static void hnsw_put(hnsw_writer *w, const void *p, size_t n)
{
    if (w->err || n == 0)
        return;
    XXH3_64bits_update(w->xs, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        w->err = LLMC_EIO;
}

static size_t hnsw_vec_bytes(const llmc_hnsw *h)
{
    return h->quant == LLMC_HNSW_F32 ? 4 * h->dim : 4 + h->dim;
}

int llmc_hnsw_save(llmc_hnsw *h, const char *path)
{
    if (!h || !path)
        return LLMC_EINVAL;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    size_t rmax = 20 + 4 * h->M0 + (size_t)HNSW_MAX_LEVEL * (2 + 4 * h->M) + hnsw_vec_bytes(h);
    unsigned char *rec = malloc(rmax > HNSW_HDR ? rmax : HNSW_HDR);
    XXH3_state_t *xs = XXH3_createState();
    if (!tmp || !rec || !xs) {
        free(tmp);
        free(rec);
        XXH3_freeState(xs);
        return LLMC_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    hnsw_writer w = {fopen(tmp, "wb"), xs, 0};
    if (!w.f) {
        free(tmp);
        free(rec);
        XXH3_freeState(xs);
        return LLMC_EIO;
    }
    XXH3_64bits_reset(xs);
    pthread_rwlock_rdlock(&h->lock);
    unsigned char *p = rec;
    memset(p, 0, HNSW_HDR);
    memcpy(p, HNSW_MAGIC, 8);
    hnsw_le32(p + 8, HNSW_VERSION);
    hnsw_le32(p + 12, (uint32_t)h->dim);
    hnsw_le32(p + 16, (uint32_t)h->metric);
    hnsw_le32(p + 20, (uint32_t)h->quant);
    hnsw_le32(p + 24, (uint32_t)h->M);
    hnsw_le32(p + 28, (uint32_t)h->efc);
    hnsw_le32(p + 32, (uint32_t)h->efs);
    hnsw_le32(p + 36, (uint32_t)(int32_t)h->max_level);
    hnsw_le32(p + 40, h->entry);
    hnsw_le32(p + 44, (uint32_t)h->n_slots);
    hnsw_le32(p + 48, (uint32_t)h->n_live);
    size_t ml = strlen(h->model);
    hnsw_le32(p + 52, (uint32_t)ml);
    hnsw_le64(p + 56, h->rng);
    hnsw_put(&w, p, HNSW_HDR);
    hnsw_put(&w, h->model, ml);
    for (uint32_t s = 0; s < h->n_slots && !w.err; s++) {
        p = rec;
        uint32_t cnt;
        const uint32_t *l = hnsw_links(h, s, 0, &cnt);
        int level = *hnsw_level(h, s);
        p[0] = *hnsw_flags(h, s);
        p[1] = (unsigned char)level;
        hnsw_le16(p + 2, (uint16_t)cnt);
        hnsw_le64(p + 4, hnsw_label(h, s));
        hnsw_le64(p + 12, hnsw_part(h, s));
        p += 20;
        for (uint32_t j = 0; j < cnt; j++, p += 4)
            hnsw_le32(p, l[j]);
        for (int lv = 1; lv <= level; lv++) {
            l = hnsw_links(h, s, lv, &cnt);
            hnsw_le16(p, (uint16_t)cnt);
            p += 2;
            for (uint32_t j = 0; j < cnt; j++, p += 4)
                hnsw_le32(p, l[j]);
        }
        const char *v = hnsw_vec(h, s);
        size_t nf = h->quant == LLMC_HNSW_F32 ? h->dim : 1;
        for (size_t i = 0; i < nf; i++, p += 4) {
            uint32_t bits;
            memcpy(&bits, v + 4 * i, 4);
            hnsw_le32(p, bits);
        }
        if (h->quant == LLMC_HNSW_I8) {
            memcpy(p, v + 4, h->dim);
            p += h->dim;
        }
        hnsw_put(&w, rec, (size_t)(p - rec));
    }
    /* the free list, head first, so a loaded index reuses slots in the same order */
    uint32_t nfree = 0;
    for (uint32_t f = h->free_head; f != HNSW_NONE; f = h->pnext[f])
        nfree++;
    hnsw_le32(rec, nfree);
    hnsw_put(&w, rec, 4);
    for (uint32_t f = h->free_head; f != HNSW_NONE && !w.err; f = h->pnext[f]) {
        hnsw_le32(rec, f);
        hnsw_put(&w, rec, 4);
    }
    pthread_rwlock_unlock(&h->lock);
    unsigned char sum[8];
    hnsw_le64(sum, XXH3_64bits_digest(xs));
    if (!w.err && fwrite(sum, 1, 8, w.f) != 8)
        w.err = LLMC_EIO;
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0)
        w.err = LLMC_EIO;
    if (fclose(w.f) != 0)
        w.err = LLMC_EIO;
    if (!w.err && rename(tmp, path) != 0)
        w.err = LLMC_EIO;
    if (w.err)
        unlink(tmp);
    free(tmp);
    free(rec);
    XXH3_freeState(xs);
    return w.err;
}

/* Read the whole file; *len its size. NULL with *err set on failure. */
static unsigned char *hnsw_slurp(const char *path, size_t *len, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = LLMC_EIO;
        return NULL;
    }
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        *err = LLMC_EIO;
        return NULL;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        fclose(f);
        *err = LLMC_ENOMEM;
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        *err = LLMC_EIO;
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

typedef struct {
    const unsigned char *p, *end;
} hnsw_reader;

static const unsigned char *hnsw_take(hnsw_reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return NULL;
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}

llmc_hnsw *llmc_hnsw_load(const char *path, const char *expect_model, size_t expect_dim,
                          const llmc_hnsw_params *params, int *err)
{
    int e = 0;
    size_t len = 0;
    llmc_hnsw *h = NULL;
    char *model = NULL;
    if (!path) {
        e = LLMC_EINVAL;
        goto fail;
    }
    unsigned char *buf = hnsw_slurp(path, &len, &e);
    if (!buf)
        goto fail;
    if (len < 8 || memcmp(buf, HNSW_MAGIC, 8) != 0) {
        e = (len < 8 && memcmp(buf, HNSW_MAGIC, len) == 0) ? LLMC_ECORRUPT : LLMC_EFOREIGN;
        goto out;
    }
    if (len < 12) {
        e = LLMC_ECORRUPT;
        goto out;
    }
    if (hnsw_rd32(buf + 8) != HNSW_VERSION) {
        e = LLMC_EVERSION;
        goto out;
    }
    e = LLMC_ECORRUPT;
    if (len < HNSW_HDR + 8 || XXH3_64bits(buf, len - 8) != hnsw_rd64(buf + len - 8))
        goto out;
    uint32_t dim = hnsw_rd32(buf + 12), ml = hnsw_rd32(buf + 52);
    uint32_t n_slots = hnsw_rd32(buf + 44), n_live = hnsw_rd32(buf + 48);
    uint32_t entry = hnsw_rd32(buf + 40);
    int32_t max_level = (int32_t)hnsw_rd32(buf + 36);
    if (ml > HNSW_MODEL_MAX || len - 8 - HNSW_HDR < ml || n_live > n_slots || max_level < -1 ||
        max_level > HNSW_MAX_LEVEL || (n_slots == 0) != (max_level == -1) ||
        (n_slots == 0) != (entry == HNSW_NONE) || (n_slots && entry >= n_slots) ||
        n_slots > HNSW_MAX_SLOTS)
        goto out;
    model = malloc(ml + 1);
    if (!model) {
        e = LLMC_ENOMEM;
        goto out;
    }
    memcpy(model, buf + HNSW_HDR, ml);
    model[ml] = 0;
    if (strlen(model) != ml)
        goto out;
    if ((expect_dim && expect_dim != dim) || (expect_model && strcmp(expect_model, model) != 0)) {
        e = LLMC_EMISMATCH;
        goto out;
    }
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = dim;
    p.metric = (int)hnsw_rd32(buf + 16);
    p.quant = (int)hnsw_rd32(buf + 20);
    p.M = hnsw_rd32(buf + 24);
    p.ef_construction = hnsw_rd32(buf + 28);
    p.ef_search = hnsw_rd32(buf + 32);
    p.model = model;
    if (params) {
        p.max_bytes = params->max_bytes;
        p.simd = params->simd;
        p.partition_search = params->partition_search;
        if (params->ef_search)
            p.ef_search = params->ef_search;
    }
    int ae = 0;
    h = hnsw_alloc(&p, &ae);
    if (!h) {
        e = ae == LLMC_EINVAL ? LLMC_ECORRUPT : ae;
        goto out;
    }
    h->rng = hnsw_rd64(buf + 56);
    if ((uint64_t)n_slots * (20 + hnsw_vec_bytes(h)) > len - 8 - HNSW_HDR - ml)
        goto out; /* e is still LLMC_ECORRUPT: cannot hold that many records */
    size_t cap = n_slots > 16 ? n_slots : 16;
    if (h->max_bytes && hnsw_bytes_for(h, cap) > h->max_bytes) {
        e = LLMC_EFULL;
        goto out;
    }
    if ((e = hnsw_reserve(h, cap)))
        goto out;
    e = LLMC_ECORRUPT;
    hnsw_reader r = {buf + HNSW_HDR + ml, buf + len - 8};
    size_t vb = hnsw_vec_bytes(h);
    for (uint32_t s = 0; s < n_slots; s++) {
        const unsigned char *q = hnsw_take(&r, 20);
        if (!q)
            goto out;
        uint8_t flags = q[0], level = q[1];
        uint16_t n0 = hnsw_rd16(q + 2);
        if ((flags & ~(HNSW_F_REMOVED | HNSW_F_PARKED)) || level > max_level || n0 > h->M0 ||
            ((flags & HNSW_F_PARKED) && (s != entry || !(flags & HNSW_F_REMOVED))))
            goto out;
        char *b = hnsw_blk(h, s);
        memset(b, 0, h->stride);
        *hnsw_n0(h, s) = n0;
        *hnsw_flags(h, s) = flags;
        *hnsw_level(h, s) = level;
        uint64_t label = hnsw_rd64(q + 4), part = hnsw_rd64(q + 12);
        memcpy(b + h->off_label, &label, 8);
        memcpy(b + h->off_part, &part, 8);
        h->n_slots = s + 1;
        if (level > 0) {
            size_t ub = (size_t)level * (h->M + 1) * sizeof(uint32_t);
            h->upper[s] = calloc(1, ub);
            if (!h->upper[s]) {
                e = LLMC_ENOMEM;
                goto out;
            }
            h->upper_bytes += ub;
        }
        for (int lv = 0; lv <= level; lv++) {
            uint32_t cnt = n0;
            if (lv > 0) {
                const unsigned char *c = hnsw_take(&r, 2);
                if (!c)
                    goto out;
                cnt = hnsw_rd16(c);
                if (cnt > h->M)
                    goto out;
            }
            const unsigned char *lk = hnsw_take(&r, 4 * (size_t)cnt);
            if (!lk)
                goto out;
            uint32_t dummy;
            uint32_t *l = hnsw_links(h, s, lv, &dummy);
            for (uint32_t j = 0; j < cnt; j++) {
                l[j] = hnsw_rd32(lk + 4 * j);
                if (l[j] >= n_slots || l[j] == s)
                    goto out;
            }
            hnsw_set_count(h, s, lv, cnt);
        }
        const unsigned char *v = hnsw_take(&r, vb);
        if (!v)
            goto out;
        char *dst = hnsw_vec(h, s);
        size_t nf = h->quant == LLMC_HNSW_F32 ? h->dim : 1;
        for (size_t i = 0; i < nf; i++) {
            uint32_t bits = hnsw_rd32(v + 4 * i);
            float f;
            memcpy(&f, &bits, 4);
            if (!isfinite(f))
                goto out;
            memcpy(dst + 4 * i, &f, 4);
        }
        if (h->quant == LLMC_HNSW_I8)
            memcpy(dst + 4, v + 4, h->dim);
    }
    const unsigned char *fc = hnsw_take(&r, 4);
    if (!fc)
        goto out;
    uint32_t nfree = hnsw_rd32(fc);
    const unsigned char *fl = hnsw_take(&r, 4 * (size_t)nfree);
    if (!fl || r.p != r.end)
        goto out;
    /* links on level l must point at nodes that have level l */
    for (uint32_t s = 0; s < n_slots; s++) {
        int level = *hnsw_level(h, s);
        for (int lv = 1; lv <= level; lv++) {
            uint32_t cnt;
            const uint32_t *l = hnsw_links(h, s, lv, &cnt);
            for (uint32_t j = 0; j < cnt; j++)
                if (*hnsw_level(h, l[j]) < lv)
                    goto out;
        }
    }
    if (n_slots && *hnsw_level(h, entry) != max_level)
        goto out;
    h->entry = entry;
    h->max_level = max_level;
    /* rebuild the side tables: free list (as saved), labels, partitions */
    size_t live = 0, freeable = 0;
    for (uint32_t s = 0; s < n_slots; s++) {
        h->pnext[s] = h->pprev[s] = HNSW_NONE;
        uint8_t f = *hnsw_flags(h, s);
        freeable += (f & (HNSW_F_REMOVED | HNSW_F_PARKED)) == HNSW_F_REMOVED;
    }
    if (nfree != freeable)
        goto out;
    for (uint32_t i = nfree; i-- > 0;) {
        uint32_t s = hnsw_rd32(fl + 4 * (size_t)i);
        /* each freeable slot once: pprev marks the ones already listed */
        if (s >= n_slots || (*hnsw_flags(h, s) & (HNSW_F_REMOVED | HNSW_F_PARKED)) != HNSW_F_REMOVED ||
            h->pprev[s] != HNSW_NONE)
            goto out;
        h->pprev[s] = 0;
        h->pnext[s] = h->free_head;
        h->free_head = s;
    }
    for (uint32_t s = 0; s < n_slots; s++) {
        uint8_t f = *hnsw_flags(h, s);
        if (f & HNSW_F_REMOVED) {
            h->pprev[s] = HNSW_NONE;
            continue;
        }
        if (hnsw_part(h, s) == LLMC_HNSW_ANY || hnsw_lmap_find(h, hnsw_label(h, s)) != HNSW_NONE)
            goto out;
        hnsw_lmap_insert(h, s);
        if (hnsw_part_link(h, s)) {
            e = LLMC_ENOMEM;
            goto out;
        }
        live++;
    }
    if (live != n_live)
        goto out;
    h->n_live = live;
    if (h->max_bytes && hnsw_bytes_for(h, h->cap) > h->max_bytes) {
        e = LLMC_EFULL;
        goto out;
    }
    e = 0;
out:
    free(buf);
    free(model);
    if (!e)
        return h;
    llmc_hnsw_free(h);
fail:
    if (err)
        *err = e;
    return NULL;
}
