/*
 * kvblock.c — the KV block pool and chained block hashes (vLLM semantics).
 *
 * Purpose. An inference engine stores the attention K/V of each sequence in
 * fixed-size blocks of B tokens. When a new prompt starts with the same
 * tokens as an earlier one, the engine can attach the earlier blocks instead
 * of recomputing them (prefix caching). This file decides which block ids a
 * sequence uses; the engine owns the memory behind the ids.
 *
 * Design.
 *   - blocks[N]: ref count, an optional hash (SHA-256 chain, layout in
 *     llmcache.h), free-queue links (prev/next block ids, -1 = none) and a
 *     hash-table chain link. All links are int32 indices, no pointers, so the
 *     pool is one allocation plus a bucket array.
 *   - The free queue is a doubly-linked list in LRU order: head = next to be
 *     reused. Allocation pops the head and evicts its hash; a finished
 *     sequence appends its blocks that reach ref 0 to the tail, last block
 *     first, so a sequence's tail blocks are reused before its head blocks
 *     (the shared system-prompt blocks outlive the per-request suffixes).
 *   - The hash table maps a block hash to the one block registered under it
 *     (separate chaining through blocks[].hnext, buckets = power of two
 *     >= 2N, bucket index from the hash's first 8 bytes).
 *   - A sequence (llmc_kvseq) keeps its token ids, its block table, the
 *     hashes of its full blocks, how many of those are registered, and its
 *     reservation. Blocks are registered only after the engine commits the
 *     positions they cover, so another request never attaches a block whose
 *     KV is still being written.
 *   - Reservations: begin() reserves every block the sequence may need up to
 *     its max_tokens, so a running request never starves mid-generation;
 *     pool->reserved counts blocks promised but not yet taken, and begin()
 *     only admits a sequence when free - reserved covers it.
 *
 * Invariants (checked by llmc_kvpool_check):
 *   - a block is in the free queue iff its ref count is 0;
 *   - n_free equals the length of the free queue;
 *   - a block has has_hash iff it is reachable in the hash table under that
 *     hash, and no two registered blocks share a hash;
 *   - 0 <= reserved <= n_free.
 *
 * Events. An optional listener (llmc_kvpool_set_listener) hears, under the
 * lock and in order, each block registered (stored), each cached block
 * evicted (removed) and a reset (cleared): what an engine publishes as
 * vLLM's KV events, so a router can know what the pool holds.
 *
 * Locking. One mutex (pool->mu) guards everything in the pool, including the
 * counters. A sequence's own fields are touched only by its owner thread;
 * functions that also touch the pool take the mutex. SHA-256 hashing is done
 * outside the lock.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "llmcache.h"
#include "util.h"

#define KV_TAG "LLMCKV1"

typedef struct {
    int32_t ref;
    int32_t prev, next; /* free queue links, -1 = none */
    int32_t hnext;      /* hash chain link, -1 = end */
    uint8_t in_free;
    uint8_t has_hash;
    uint8_t hash[LLMC_KV_HASH_LEN];
} kvblock;

struct llmc_kvpool {
    pthread_mutex_t mu;
    int block_size, num_blocks, caching;
    kvblock *blocks;
    int32_t *buckets;
    uint32_t bucket_mask;
    int32_t head, tail; /* free queue */
    int n_free, n_reserved, n_cached;
    uint64_t queries, hits, requests, evictions;
    llmc_kv_listener listener;
    void *listener_ud;
};

struct llmc_kvseq {
    llmc_kvpool *pool;
    int32_t *tokens;
    size_t len, cap_tokens, max_tokens;
    int32_t *blocks;
    size_t n_blocks, cap_blocks;
    uint8_t *hashes; /* hashes of the full blocks computed so far */
    size_t n_hashes, cap_hashes;
    size_t n_registered; /* full blocks already offered to the table */
    size_t cached_tokens;
    int reserved;
    char *salt, *adapter;
};

/* ---- hashing ------------------------------------------------------------- */

static void kvblock_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int kvblock_hash_raw(const uint8_t *parent, const int32_t *tokens, size_t n,
                            const char *salt, const char *adapter, uint8_t *out)
{
    static const uint8_t zero[LLMC_KV_HASH_LEN];
    uint8_t tag[8] = {0};
    uint8_t u[4];
    uint8_t buf[256];
    memcpy(tag, KV_TAG, sizeof KV_TAG); /* 7 chars + NUL = 8 bytes */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return LLMC_ENOMEM;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    ok = ok && EVP_DigestUpdate(ctx, tag, 8);
    ok = ok && EVP_DigestUpdate(ctx, parent ? parent : zero, LLMC_KV_HASH_LEN);
    kvblock_put_u32(u, (uint32_t)n);
    ok = ok && EVP_DigestUpdate(ctx, u, 4);
    /* token ids as int32 LE, in chunks of 64 through a small buffer */
    for (size_t i = 0; ok && i < n; i += 64) {
        size_t m = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < m; j++)
            kvblock_put_u32(buf + 4 * j, (uint32_t)tokens[i + j]);
        ok = EVP_DigestUpdate(ctx, buf, 4 * m);
    }
    const char *keys[2] = {salt, adapter};
    for (int k = 0; ok && k < 2; k++) {
        size_t l = keys[k] ? strlen(keys[k]) : 0;
        kvblock_put_u32(u, (uint32_t)l);
        ok = EVP_DigestUpdate(ctx, u, 4);
        if (ok && l)
            ok = EVP_DigestUpdate(ctx, keys[k], l);
    }
    unsigned int olen = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, out, &olen);
    EVP_MD_CTX_free(ctx);
    return ok && olen == LLMC_KV_HASH_LEN ? LLMC_OK : LLMC_ENOMEM;
}

int llmc_kv_block_hash(const uint8_t *parent, const int32_t *tokens, size_t n,
                       const llmc_kv_extra *extra, uint8_t out[LLMC_KV_HASH_LEN])
{
    if (!tokens || !n || !out || n > UINT32_MAX)
        return LLMC_EINVAL;
    return kvblock_hash_raw(parent, tokens, n, extra ? extra->cache_salt : NULL,
                            extra ? extra->adapter : NULL, out);
}

long llmc_kv_hash_chain(const int32_t *tokens, size_t n, int block_size, const llmc_kv_extra *extra,
                        uint8_t *out, size_t max_blocks)
{
    if ((!tokens && n) || block_size <= 0 || (!out && max_blocks))
        return LLMC_EINVAL;
    size_t nb = n / (size_t)block_size;
    if (nb > max_blocks)
        nb = max_blocks;
    for (size_t i = 0; i < nb; i++) {
        int e = llmc_kv_block_hash(i ? out + (i - 1) * LLMC_KV_HASH_LEN : NULL,
                                   tokens + i * (size_t)block_size, (size_t)block_size, extra,
                                   out + i * LLMC_KV_HASH_LEN);
        if (e)
            return e;
    }
    return (long)nb;
}

/* ---- pool internals (all under pool->mu) ---------------------------------- */

static uint32_t kvblock_bucket(const llmc_kvpool *p, const uint8_t *h)
{
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (uint32_t)(v ^ (v >> 29)) & p->bucket_mask;
}

static int32_t kvblock_table_get(const llmc_kvpool *p, const uint8_t *h)
{
    for (int32_t i = p->buckets[kvblock_bucket(p, h)]; i >= 0; i = p->blocks[i].hnext)
        if (memcmp(p->blocks[i].hash, h, LLMC_KV_HASH_LEN) == 0)
            return i;
    return -1;
}

static void kvblock_table_put(llmc_kvpool *p, int32_t id, const uint8_t *h)
{
    kvblock *b = &p->blocks[id];
    uint32_t k = kvblock_bucket(p, h);
    memcpy(b->hash, h, LLMC_KV_HASH_LEN);
    b->has_hash = 1;
    b->hnext = p->buckets[k];
    p->buckets[k] = id;
    p->n_cached++;
}

static void kvblock_table_del(llmc_kvpool *p, int32_t id)
{
    kvblock *b = &p->blocks[id];
    int32_t *link = &p->buckets[kvblock_bucket(p, b->hash)];
    while (*link >= 0 && *link != id)
        link = &p->blocks[*link].hnext;
    if (*link == id)
        *link = b->hnext;
    b->hnext = -1;
    b->has_hash = 0;
    p->n_cached--;
}

static void kvblock_fq_remove(llmc_kvpool *p, int32_t id)
{
    kvblock *b = &p->blocks[id];
    if (b->prev >= 0)
        p->blocks[b->prev].next = b->next;
    else
        p->head = b->next;
    if (b->next >= 0)
        p->blocks[b->next].prev = b->prev;
    else
        p->tail = b->prev;
    b->prev = b->next = -1;
    b->in_free = 0;
    p->n_free--;
}

static void kvblock_fq_append(llmc_kvpool *p, int32_t id)
{
    kvblock *b = &p->blocks[id];
    b->prev = p->tail;
    b->next = -1;
    if (p->tail >= 0)
        p->blocks[p->tail].next = id;
    else
        p->head = id;
    p->tail = id;
    b->in_free = 1;
    p->n_free++;
}

/* Take the LRU free block, evicting its hash. Caller checked n_free > 0. */
static int32_t kvblock_alloc(llmc_kvpool *p)
{
    int32_t id = p->head;
    kvblock_fq_remove(p, id);
    if (p->blocks[id].has_hash) {
        if (p->listener) {
            llmc_kv_event ev = {LLMC_KV_REMOVED, p->blocks[id].hash, NULL, NULL, 0};
            p->listener(p->listener_ud, &ev);
        }
        kvblock_table_del(p, id);
        p->evictions++;
    }
    p->blocks[id].ref = 1;
    return id;
}

/* A hit: take a reference, leaving the free queue if it was there. */
static void kvblock_touch(llmc_kvpool *p, int32_t id)
{
    if (p->blocks[id].ref == 0)
        kvblock_fq_remove(p, id);
    p->blocks[id].ref++;
}

/* ---- public pool API ---------------------------------------------------------- */

llmc_kvpool_params llmc_kvpool_default_params(void)
{
    llmc_kvpool_params p;
    memset(&p, 0, sizeof p);
    p.block_size = 16;
    p.num_blocks = 1024;
    p.enable_prefix_caching = 1;
    return p;
}

llmc_kvpool *llmc_kvpool_new(const llmc_kvpool_params *pp, int *err)
{
    llmc_kvpool_params d = llmc_kvpool_default_params();
    if (!pp)
        pp = &d;
    int e = LLMC_EINVAL;
    llmc_kvpool *p = NULL;
    if (pp->block_size <= 0 || pp->block_size > (1 << 20) || pp->num_blocks <= 0 ||
        pp->num_blocks > (1 << 28))
        goto fail;
    e = LLMC_ENOMEM;
    p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    uint32_t nb = 1;
    while (nb < 2u * (uint32_t)pp->num_blocks)
        nb <<= 1;
    p->blocks = calloc((size_t)pp->num_blocks, sizeof *p->blocks);
    p->buckets = malloc(nb * sizeof *p->buckets);
    if (!p->blocks || !p->buckets)
        goto fail;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto fail;
    memset(p->buckets, 0xff, nb * sizeof *p->buckets); /* all -1 */
    p->bucket_mask = nb - 1;
    p->block_size = pp->block_size;
    p->num_blocks = pp->num_blocks;
    p->caching = pp->enable_prefix_caching != 0;
    p->head = p->tail = -1;
    for (int32_t i = 0; i < p->num_blocks; i++) {
        p->blocks[i].hnext = -1;
        kvblock_fq_append(p, i);
    }
    return p;
fail:
    if (p) {
        free(p->blocks);
        free(p->buckets);
        free(p);
    }
    if (err)
        *err = e;
    return NULL;
}

void llmc_kvpool_free(llmc_kvpool *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p->blocks);
    free(p->buckets);
    free(p);
}

int llmc_kvpool_block_size(const llmc_kvpool *p)
{
    return p->block_size;
}

int llmc_kvpool_num_blocks(const llmc_kvpool *p)
{
    return p->num_blocks;
}

/* Hashes of the full blocks of tokens that a hit may cover (those within the
 * first n_prompt - 1 tokens), into a fresh array. */
static long kvblock_prompt_hashes(const llmc_kvpool *p, const int32_t *tokens, size_t n_prompt,
                                  const llmc_kv_extra *extra, uint8_t **out)
{
    size_t nb = n_prompt / (size_t)p->block_size;
    *out = malloc((nb ? nb : 1) * LLMC_KV_HASH_LEN);
    if (!*out)
        return LLMC_ENOMEM;
    if (!p->caching)
        return 0;
    return llmc_kv_hash_chain(tokens, n_prompt, p->block_size, extra, *out, nb);
}

static size_t kvblock_match(const llmc_kvpool *p, const uint8_t *hashes, size_t n_hashes,
                            size_t n_prompt)
{
    if (!p->caching || n_prompt == 0)
        return 0;
    size_t limit = (n_prompt - 1) / (size_t)p->block_size;
    if (limit > n_hashes)
        limit = n_hashes;
    size_t k = 0;
    while (k < limit && kvblock_table_get(p, hashes + k * LLMC_KV_HASH_LEN) >= 0)
        k++;
    return k;
}

static char *kvblock_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void kvblock_seq_destroy(llmc_kvseq *s)
{
    free(s->tokens);
    free(s->blocks);
    free(s->hashes);
    free(s->salt);
    free(s->adapter);
    free(s);
}

int llmc_kvpool_begin(llmc_kvpool *p, const int32_t *tokens, size_t n_prompt, size_t max_tokens,
                      const llmc_kv_extra *extra, llmc_kvseq **out)
{
    if (!p || !out || (!tokens && n_prompt))
        return LLMC_EINVAL;
    *out = NULL;
    if (n_prompt == 0)
        return LLMC_EEMPTY;
    if (max_tokens < n_prompt)
        max_tokens = n_prompt;
    size_t B = (size_t)p->block_size;
    size_t total_blocks = (max_tokens + B - 1) / B;
    if (total_blocks > (size_t)p->num_blocks)
        return LLMC_ETOOBIG;

    llmc_kvseq *s = calloc(1, sizeof *s);
    if (!s)
        return LLMC_ENOMEM;
    s->pool = p;
    s->max_tokens = max_tokens;
    s->cap_tokens = max_tokens;
    s->cap_blocks = total_blocks;
    s->tokens = malloc(s->cap_tokens * sizeof *s->tokens);
    s->blocks = malloc(s->cap_blocks * sizeof *s->blocks);
    s->salt = kvblock_strdup(extra ? extra->cache_salt : NULL);
    s->adapter = kvblock_strdup(extra ? extra->adapter : NULL);
    long nh = kvblock_prompt_hashes(p, tokens, n_prompt, extra, &s->hashes);
    if (!s->tokens || !s->blocks || nh < 0 || (extra && extra->cache_salt && !s->salt) ||
        (extra && extra->adapter && !s->adapter)) {
        kvblock_seq_destroy(s);
        return nh < 0 ? (int)nh : LLMC_ENOMEM;
    }
    s->n_hashes = (size_t)nh;
    s->cap_hashes = n_prompt / B ? n_prompt / B : 1;
    memcpy(s->tokens, tokens, n_prompt * sizeof *tokens);
    s->len = n_prompt;

    pthread_mutex_lock(&p->mu);
    size_t k = kvblock_match(p, s->hashes, s->n_hashes, n_prompt);
    int in_free = 0;
    for (size_t i = 0; i < k; i++)
        if (p->blocks[kvblock_table_get(p, s->hashes + i * LLMC_KV_HASH_LEN)].ref == 0)
            in_free++;
    size_t prompt_blocks = (n_prompt + B - 1) / B;
    long need = (long)(total_blocks - k);
    if (need > (long)(p->n_free - in_free - p->n_reserved)) {
        pthread_mutex_unlock(&p->mu);
        kvblock_seq_destroy(s);
        return LLMC_EBUSY;
    }
    for (size_t i = 0; i < k; i++) {
        int32_t id = kvblock_table_get(p, s->hashes + i * LLMC_KV_HASH_LEN);
        kvblock_touch(p, id);
        s->blocks[s->n_blocks++] = id;
    }
    for (size_t i = k; i < prompt_blocks; i++)
        s->blocks[s->n_blocks++] = kvblock_alloc(p);
    s->reserved = (int)(total_blocks - prompt_blocks);
    p->n_reserved += s->reserved;
    s->n_registered = k;
    s->cached_tokens = k * B;
    p->requests++;
    if (p->caching) {
        p->queries += n_prompt;
        p->hits += s->cached_tokens;
    }
    pthread_mutex_unlock(&p->mu);
    *out = s;
    return LLMC_OK;
}

size_t llmc_kvseq_cached_tokens(const llmc_kvseq *s)
{
    return s->cached_tokens;
}

size_t llmc_kvseq_len(const llmc_kvseq *s)
{
    return s->len;
}

const int32_t *llmc_kvseq_blocks(const llmc_kvseq *s, size_t *n_blocks)
{
    if (n_blocks)
        *n_blocks = s->n_blocks;
    return s->blocks;
}

int llmc_kvseq_append(llmc_kvseq *s, int32_t token)
{
    llmc_kvpool *p = s->pool;
    size_t B = (size_t)p->block_size;
    void *t = s->tokens, *b = s->blocks;
    if (llmc_grow(&t, &s->cap_tokens, s->len + 1, sizeof *s->tokens))
        return LLMC_ENOMEM;
    s->tokens = t;
    if (s->len % B == 0) { /* the last block is full (or there is none) */
        if (llmc_grow(&b, &s->cap_blocks, s->n_blocks + 1, sizeof *s->blocks))
            return LLMC_ENOMEM;
        s->blocks = b;
        pthread_mutex_lock(&p->mu);
        if (s->reserved > 0) {
            s->reserved--;
            p->n_reserved--;
        } else if (p->n_free - p->n_reserved <= 0) {
            pthread_mutex_unlock(&p->mu);
            return LLMC_EFULL;
        }
        s->blocks[s->n_blocks++] = kvblock_alloc(p);
        pthread_mutex_unlock(&p->mu);
    }
    s->tokens[s->len++] = token;
    return LLMC_OK;
}

int llmc_kvseq_commit(llmc_kvseq *s, size_t n_computed)
{
    llmc_kvpool *p = s->pool;
    size_t B = (size_t)p->block_size;
    if (n_computed > s->len)
        return LLMC_EINVAL;
    if (!p->caching)
        return LLMC_OK;
    size_t full = n_computed / B;
    if (full <= s->n_registered)
        return LLMC_OK;
    /* hash the newly full blocks outside the lock */
    void *h = s->hashes;
    if (llmc_grow(&h, &s->cap_hashes, full, LLMC_KV_HASH_LEN))
        return LLMC_ENOMEM;
    s->hashes = h;
    llmc_kv_extra ex = {s->salt, s->adapter};
    for (size_t i = s->n_hashes; i < full; i++) {
        int e = llmc_kv_block_hash(i ? s->hashes + (i - 1) * LLMC_KV_HASH_LEN : NULL,
                                   s->tokens + i * B, B, &ex, s->hashes + i * LLMC_KV_HASH_LEN);
        if (e)
            return e;
        s->n_hashes = i + 1;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = s->n_registered; i < full; i++) {
        int32_t id = s->blocks[i];
        const uint8_t *hi = s->hashes + i * LLMC_KV_HASH_LEN;
        if (!p->blocks[id].has_hash && kvblock_table_get(p, hi) < 0) {
            kvblock_table_put(p, id, hi);
            if (p->listener) {
                llmc_kv_event ev = {LLMC_KV_STORED, hi,
                                    i ? s->hashes + (i - 1) * LLMC_KV_HASH_LEN : NULL,
                                    s->tokens + i * B, B};
                p->listener(p->listener_ud, &ev);
            }
        }
    }
    s->n_registered = full;
    pthread_mutex_unlock(&p->mu);
    return LLMC_OK;
}

void llmc_kvpool_end(llmc_kvpool *p, llmc_kvseq *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&p->mu);
    for (size_t i = s->n_blocks; i-- > 0;) {
        kvblock *b = &p->blocks[s->blocks[i]];
        if (--b->ref == 0)
            kvblock_fq_append(p, s->blocks[i]);
    }
    p->n_reserved -= s->reserved;
    pthread_mutex_unlock(&p->mu);
    kvblock_seq_destroy(s);
}

long llmc_kvpool_lookup(llmc_kvpool *p, const int32_t *tokens, size_t n_prompt,
                        const llmc_kv_extra *extra)
{
    if (!p || (!tokens && n_prompt))
        return LLMC_EINVAL;
    if (!n_prompt)
        return 0;
    uint8_t *h = NULL;
    long nh = kvblock_prompt_hashes(p, tokens, n_prompt, extra, &h);
    if (nh < 0) {
        free(h);
        return nh;
    }
    pthread_mutex_lock(&p->mu);
    size_t k = kvblock_match(p, h, (size_t)nh, n_prompt);
    pthread_mutex_unlock(&p->mu);
    free(h);
    return (long)(k * (size_t)p->block_size);
}

void llmc_kvpool_set_listener(llmc_kvpool *p, llmc_kv_listener fn, void *ud)
{
    pthread_mutex_lock(&p->mu);
    p->listener = fn;
    p->listener_ud = ud;
    pthread_mutex_unlock(&p->mu);
}

int llmc_kvpool_reset(llmc_kvpool *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_free != p->num_blocks) {
        pthread_mutex_unlock(&p->mu);
        return LLMC_EBUSY;
    }
    for (int32_t i = 0; i < p->num_blocks; i++)
        if (p->blocks[i].has_hash)
            kvblock_table_del(p, i);
    assert(p->n_cached == 0);
    if (p->listener) {
        llmc_kv_event ev = {LLMC_KV_CLEARED, NULL, NULL, NULL, 0};
        p->listener(p->listener_ud, &ev);
    }
    pthread_mutex_unlock(&p->mu);
    return LLMC_OK;
}

int llmc_kvpool_find(llmc_kvpool *p, const uint8_t hash[LLMC_KV_HASH_LEN])
{
    pthread_mutex_lock(&p->mu);
    int32_t id = kvblock_table_get(p, hash);
    pthread_mutex_unlock(&p->mu);
    return id >= 0 ? id : LLMC_ENOTFOUND;
}

void llmc_kvpool_get_stats(llmc_kvpool *p, llmc_kvpool_stats *st)
{
    pthread_mutex_lock(&p->mu);
    st->queries_tokens = p->queries;
    st->hits_tokens = p->hits;
    st->requests = p->requests;
    st->evictions = p->evictions;
    st->blocks_total = p->num_blocks;
    st->blocks_free = p->n_free;
    st->blocks_in_use = p->num_blocks - p->n_free;
    st->blocks_cached = p->n_cached;
    st->blocks_reserved = p->n_reserved;
    pthread_mutex_unlock(&p->mu);
}

int llmc_kvpool_check(llmc_kvpool *p)
{
    int bad = 0, n = 0, cached = 0;
    pthread_mutex_lock(&p->mu);
    int32_t prev = -1;
    for (int32_t i = p->head; i >= 0 && n <= p->num_blocks; i = p->blocks[i].next) {
        const kvblock *b = &p->blocks[i];
        bad |= b->prev != prev || !b->in_free || b->ref != 0;
        prev = i;
        n++;
    }
    bad |= prev != p->tail || n != p->n_free;
    for (int32_t i = 0; i < p->num_blocks; i++) {
        const kvblock *b = &p->blocks[i];
        bad |= b->ref < 0 || (b->ref == 0) != (b->in_free != 0);
        if (b->has_hash) {
            cached++;
            bad |= kvblock_table_get(p, b->hash) != i;
        }
    }
    for (uint32_t k = 0; k <= p->bucket_mask; k++)
        for (int32_t i = p->buckets[k]; i >= 0; i = p->blocks[i].hnext)
            bad |= !p->blocks[i].has_hash || kvblock_bucket(p, p->blocks[i].hash) != k;
    bad |= cached != p->n_cached || p->n_reserved < 0 || p->n_reserved > p->n_free;
    pthread_mutex_unlock(&p->mu);
    return bad ? LLMC_ECORRUPT : LLMC_OK;
}
