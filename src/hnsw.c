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
 *     u64 label | u64 partition | pad | vector | pad to 64
 * where the vector is dim float32 (quant F32) or a float32 scale followed by
 * dim int8 (quant I8, x ~= scale * q); the float32 or int8 data starts on a
 * 64-byte boundary (for dim 384, M 16: 192 + 1536 = 1728 bytes a slot).
 * Levels >= 1 exist for about 1/M of the slots; they are separate arrays
 * (upper[slot]) of `level` lists of (u32 count, u32 links[M]). M0 = 2*M.
 *
 * Side tables: a label -> slot hash table (open addressing over u32 slot
 * numbers; the key is read from the slot, so an entry costs 4 bytes), a
 * partition table (partition -> head of a doubly linked list of its live
 * slots through pnext/pprev, and its count), and a free list of removed
 * slots (through pnext). Hashes are XXH3 (libxxhash).
 *
 * Search. Greedy descent on the upper levels, then the ef-bounded best-first
 * search on level 0 with epoch-tagged visited marks (u16). Per node popped,
 * the unvisited neighbours are first collected and their whole blocks
 * prefetched, then their distances computed (four at a time), so that the
 * memory fetches overlap: with 1.5 KiB per vector the search is bound by
 * memory, not arithmetic (bench/hnsw measures it). The blocks array is
 * mapped with transparent huge pages to spare a TLB miss per visited node.
 * Removed nodes are still walked through (they keep the graph connected)
 * but never enter the results.
 *
 * Partitions. A partition search scans the partition's list exactly when
 * the partition is small, otherwise runs the graph search with the
 * partition as a filter on the results only (every node is still walked),
 * so recall stays up for every partition size (tests/unit/test_hnsw.c). The
 * exact scan costs ~count vector reads; the filtered graph search about
 * ef / fraction = ef * live / count. bench/hnsw measured, 100k x 384, ef 64:
 * exact 0.30 ms vs graph 3.3 ms at 5,000 items, exact 3.4 ms vs graph
 * 0.98 ms at 20,000, so the crossover is near 10,000 and the rule is
 * count^2 <= HNSW_EXACT_C * ef * live with HNSW_EXACT_C = 16.
 *
 * Insert (standard HNSW with the neighbour-selection heuristic): a level
 * drawn from -ln(U)/ln(M), descent, then on each level an ef_construction
 * search, heuristic choice of M neighbours, and reverse links, pruned by the
 * same heuristic when a list is full. Removed nodes are never chosen as new
 * neighbours and are dropped from lists when those are pruned. (Choosing
 * 2*M on level 0, as FAISS does, was measured: recall per ef rises, time per
 * query rises as much; no gain at equal recall, so M as in hnswlib.)
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
 * contains, count, bytes, save) hold it shared. An add runs in two phases:
 * its expensive part, the descent and the ef_construction search of level
 * 0, under the shared lock (alongside searches and other adds' first
 * phases); then slot, vector and links under the exclusive lock, where the
 * phase-1 candidates are re-measured and removed ones dropped (a slot can
 * have been removed or reused in between). Remove holds the lock
 * exclusive. So a reader never sees a half-linked node or an array being
 * reallocated, and searches wait only for the short linking phase.
 * Per-search scratch (visited marks, heaps, query copies) comes from a pool
 * guarded by its own mutex, taken only to pop/push a scratch. Lock order:
 * rwlock, then pool mutex. Save holds the shared lock while it writes the
 * whole file: adds wait meanwhile, and since the lock prefers writers, new
 * searches queue behind a waiting add (0.3 s for 100k x 384 floats here).
 *
 * Byte budget. bytes() counts every allocation the index owns except the
 * scratch pool (bounded by the number of concurrent searches). An add that
 * would need to grow past max_bytes fails with LLMC_EFULL; reused slots need
 * no growth.
 *
 * The file format (save/load) is in hnsw_file.c.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "llmcache.h"
#include "vec.h"

#include "hnsw_impl.h"

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
    free(s->dist);
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
        s->dist = malloc(h->M0 * sizeof *s->dist);
        s->qf = malloc(h->dim * sizeof *s->qf);
        s->qi = malloc(h->dim);
        if (!s->batch || !s->dist || !s->qf || !s->qi) {
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
    if (hnsw_grow_arr(&s->res, &s->rcap, ef + 2) ||
        hnsw_grow_arr(&s->cand, &s->ccap, 4 * ef + 64) ||
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
uint32_t hnsw_lmap_find(const llmc_hnsw *h, uint64_t label)
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
void hnsw_lmap_insert(llmc_hnsw *h, uint32_t slot)
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
int hnsw_part_link(llmc_hnsw *h, uint32_t s)
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

/*
 * The level-0 blocks live in their own anonymous mapping, advised to use
 * transparent huge pages: a search touches a few thousand blocks spread
 * over the whole array, and with 4 KiB pages nearly each of them costs a
 * TLB miss on top of the cache miss. Growth is mremap (the kernel moves the
 * page tables, not the bytes).
 */
static size_t hnsw_map_size(size_t want)
{
    size_t page = 2u << 20; /* round to the huge page size once past it */
    return want < page ? ((want + 4095) & ~(size_t)4095) : ((want + page - 1) & ~(page - 1));
}

static int hnsw_map_blocks(llmc_hnsw *h, size_t want)
{
    size_t page = 2u << 20, sz = hnsw_map_size(want);
    if (sz <= h->blocks_map)
        return 0;
    void *p;
    if (!h->blocks)
        p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    else
        p = mremap(h->blocks, h->blocks_map, sz, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        return LLMC_ENOMEM;
#ifdef MADV_HUGEPAGE
    if (sz >= page)
        madvise(p, sz, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    h->blocks = p;
    h->blocks_map = sz;
    return 0;
}

static size_t hnsw_lmap_cap_for(size_t cap)
{
    size_t c = 16;
    while (c < 2 * cap)
        c *= 2;
    return c;
}

size_t hnsw_bytes_for(const llmc_hnsw *h, size_t cap)
{
    return sizeof *h + strlen(h->model) + 1 + hnsw_map_size(cap * h->stride) +
           cap * (sizeof(uint32_t *) + 8) + hnsw_lmap_cap_for(cap) * sizeof(uint32_t) +
           h->pmap_cap * sizeof(hnsw_pent) + h->upper_bytes;
}

/* Grow every per-slot array to ncap slots (exclusive lock held). */
int hnsw_reserve(llmc_hnsw *h, size_t ncap)
{
    if (ncap <= h->cap)
        return 0;
    if (hnsw_map_blocks(h, ncap * h->stride))
        return LLMC_ENOMEM;
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
static void hnsw_greedy(const llmc_hnsw *h, const hnsw_query *q, uint32_t *cur, float *curd,
                        int lev, uint32_t skip)
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
    uint16_t *vis = s->visited;
    hnsw_new_epoch(s);
    uint16_t ep_ = s->epoch;
    if (skip != HNSW_NONE)
        vis[skip] = ep_;
    vis[ep] = ep_;
    hnsw_heap_push(cand, &nc, (hnsw_cand){epd, ep}, 0);
    if (!(*hnsw_flags(h, ep) & HNSW_F_REMOVED) &&
        (part == LLMC_HNSW_ANY || hnsw_part(h, ep) == part))
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
            hnsw_prefetch_vec(h, n);
        }
        /* all distances first (groups of four share the query's loads) */
        float *dist = s->dist;
        uint32_t j = 0;
        if (h->quant == LLMC_HNSW_F32) {
            for (; j + 4 <= nb; j += 4) {
                const float *vp[4];
                for (uint32_t g = 0; g < 4; g++)
                    vp[g] = (const float *)hnsw_vec(h, batch[j + g]);
                h->k.dot4_f32(q->f, vp, h->dim, dist + j);
                for (uint32_t g = 0; g < 4; g++)
                    dist[j + g] = -dist[j + g];
            }
        }
        for (; j < nb; j++)
            dist[j] = hnsw_dist_q(h, q, batch[j]);
        for (j = 0; j < nb; j++) {
            uint32_t n = batch[j];
            float d = dist[j];
            if (!(nr < ef || d < res[0].d))
                continue;
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
        if (nc) { /* the links of the node most likely expanded next */
            const char *nb0 = hnsw_blk(h, cand[0].id);
            __builtin_prefetch(nb0);
            __builtin_prefetch(nb0 + 64);
            __builtin_prefetch(nb0 + 128);
        }
    }
    *nres = nr;
    return 0;
}

/* Move the result heap into s->sorted, best first. Returns the count. */
static size_t hnsw_take_sorted(hnsw_scratch *s, size_t nr)
{
    size_t n = nr;
    while (nr) { /* the worst comes off the max-heap first: fill from the end */
        hnsw_cand c = hnsw_heap_pop(s->res, &nr, 1);
        s->sorted[nr] = c;
    }
    return n;
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

llmc_hnsw *hnsw_alloc(const llmc_hnsw_params *p, int *err)
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
    /* vector data on a cache-line boundary (blocks are 64-byte multiples in a
     * page-aligned mapping): 64-byte loads never straddle two lines. For I8
     * the scale sits just before the data. */
    size_t data = (off + 16 + 4 + 63) & ~(size_t)63;
    h->off_vec = h->quant == LLMC_HNSW_F32 ? data : data - 4;
    size_t vb = h->quant == LLMC_HNSW_F32 ? 4 * h->dim : 4 + h->dim;
    h->stride = (h->off_vec + vb + 63) & ~(size_t)63;
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
    if (h->blocks)
        munmap(h->blocks, h->blocks_map);
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

/*
 * Phase 1 of an add, under the shared lock (searches go on meanwhile): the
 * greedy descent and the ef_construction search of level 0 for vec, whose
 * best-first candidates go to w0 (*nw0 of them; 0 when the index is empty).
 * Returns 0, LLMC_EINVAL for a bad vector, LLMC_ENOMEM.
 */
static int hnsw_add_search(llmc_hnsw *h, const float *vec, size_t efc, hnsw_cand *w0, size_t *nw0)
{
    *nw0 = 0;
    hnsw_scratch *sc = hnsw_scratch_get(h, efc);
    if (!sc)
        return LLMC_ENOMEM;
    hnsw_query q;
    int e = hnsw_prepare(h, sc, vec, &q);
    if (!e && h->entry != HNSW_NONE) {
        if (h->quant == LLMC_HNSW_F32)
            q.i = NULL;
        uint32_t cur = h->entry;
        float curd = hnsw_dist_q(h, &q, cur);
        for (int l = h->max_level; l > 0; l--)
            hnsw_greedy(h, &q, &cur, &curd, l, HNSW_NONE);
        size_t nr;
        e = hnsw_search_layer(h, sc, &q, cur, curd, 0, efc, LLMC_HNSW_ANY, HNSW_NONE, &nr);
        if (!e) {
            *nw0 = hnsw_take_sorted(sc, nr);
            memcpy(w0, sc->sorted, *nw0 * sizeof *w0);
        }
    }
    hnsw_scratch_put(h, sc);
    return e;
}

/*
 * Phase 2, under the exclusive lock: take a slot, store the vector, link it.
 * On level 0 the phase-1 candidates w0 are used when there are any: their
 * distances are recomputed (a slot may have been removed or reused since)
 * and removed ones dropped; with none left, level 0 is searched here.
 */
static int hnsw_add_locked(llmc_hnsw *h, uint64_t label, uint64_t partition, const float *vec,
                           hnsw_cand *w0, size_t nw0)
{
    if (hnsw_lmap_find(h, label) != HNSW_NONE)
        return LLMC_EEXIST;
    size_t efc = h->efc > h->M0 ? h->efc : h->M0;
    uint32_t s = HNSW_NONE;
    int level;
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
            if (!sc) {
                e = LLMC_ENOMEM;
                goto out;
            }
            if ((e = hnsw_prepare(h, sc, vec, &q)))
                goto out;
        }
        level = hnsw_random_level(h);
        size_t ub = (size_t)level * (h->M + 1) * sizeof(uint32_t);
        if (h->max_bytes && hnsw_bytes_for(h, h->cap) + ub > h->max_bytes) {
            e = LLMC_EFULL;
            goto out;
        }
        uint32_t ns = (uint32_t)h->n_slots;
        h->upper[ns] = NULL;
        if (level > 0) {
            h->upper[ns] = calloc(1, ub);
            if (!h->upper[ns]) {
                e = LLMC_ENOMEM;
                goto out;
            }
            h->upper_bytes += ub;
        }
        h->n_slots++;
        s = ns;
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

    /* the phase-1 candidates, re-measured: live ones only, never s itself */
    size_t nw = 0;
    for (size_t i = 0; i < nw0; i++) {
        uint32_t id = w0[i].id;
        if (id == s || id >= h->n_slots || (*hnsw_flags(h, id) & HNSW_F_REMOVED))
            continue;
        w0[nw++] = (hnsw_cand){hnsw_dist_q(h, &qs, id), id};
    }
    qsort(w0, nw, sizeof *w0, hnsw_cand_cmp);

    if (h->entry != HNSW_NONE) {
        uint32_t cur = h->entry;
        float curd = 0;
        int top = level < h->max_level ? level : h->max_level;
        if (top > 0 || nw == 0) {
            curd = hnsw_dist_q(h, &qs, cur);
            for (int l = h->max_level; l > level; l--)
                hnsw_greedy(h, &qs, &cur, &curd, l, s);
        }
        hnsw_cand tmp[h->M0 + 1];
        for (int l = top; l >= 0; l--) {
            size_t n;
            if (l == 0 && nw > 0) {
                memcpy(sc->sorted, w0, nw * sizeof *w0);
                n = nw;
            } else {
                size_t nr;
                if ((e = hnsw_search_layer(h, sc, &qs, cur, curd, l, efc, LLMC_HNSW_ANY, s, &nr)))
                    goto out;
                n = hnsw_take_sorted(sc, nr);
            }
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
    if (e) {
        /* drop a partition entry made for this add and left empty */
        hnsw_pent *pe = hnsw_pmap_find(h, partition);
        if (pe && pe->count == 0)
            hnsw_pmap_delete(h, pe);
        if (s != HNSW_NONE) {
            /* failed half-way (out of memory while linking): the slot may be
             * linked already, so it becomes a removed slot, free for reuse */
            *hnsw_flags(h, s) |= HNSW_F_REMOVED;
            h->pnext[s] = h->free_head;
            h->free_head = s;
        }
    }
    if (sc)
        hnsw_scratch_put(h, sc);
    return e;
}

int llmc_hnsw_add(llmc_hnsw *h, uint64_t label, uint64_t partition, const float *vec)
{
    if (!h || !vec || partition == LLMC_HNSW_ANY)
        return LLMC_EINVAL;
    size_t efc = h->efc > h->M0 ? h->efc : h->M0, nw0 = 0;
    hnsw_cand *w0 = malloc((efc + 1) * sizeof *w0);
    if (!w0)
        return LLMC_ENOMEM;
    pthread_rwlock_rdlock(&h->lock);
    int e = hnsw_lmap_find(h, label) != HNSW_NONE ? LLMC_EEXIST : 0;
    if (!e)
        e = hnsw_add_search(h, vec, efc, w0, &nw0);
    pthread_rwlock_unlock(&h->lock);
    if (!e) {
        pthread_rwlock_wrlock(&h->lock);
        e = hnsw_add_locked(h, label, partition, vec, w0, nw0);
        pthread_rwlock_unlock(&h->lock);
    }
    free(w0);
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
    /* a second cursor runs HNSW_SCAN_AHEAD items in front, prefetching */
    uint32_t ahead = e->head;
    for (int i = 0; i < HNSW_SCAN_AHEAD && ahead != HNSW_NONE; i++) {
        hnsw_prefetch(h, ahead);
        hnsw_prefetch_vec(h, ahead);
        ahead = h->pnext[ahead];
    }
    for (uint32_t id = e->head; id != HNSW_NONE; id = h->pnext[id]) {
        if (ahead != HNSW_NONE) {
            hnsw_prefetch(h, ahead);
            hnsw_prefetch_vec(h, ahead);
            ahead = h->pnext[ahead];
        }
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
    /* no more results than items exist; this also bounds the scratch */
    if (k > h->n_live)
        k = h->n_live;
    if (ef > h->n_live)
        ef = h->n_live > k ? h->n_live : k;
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
