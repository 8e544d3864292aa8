/* test_kvblock.c — the KV block pool: hash chaining and its byte layout,
 * extra keys, LRU order and eviction, reference counts, reservations, and
 * concurrent requests sharing blocks. */
#include <pthread.h>

#include <openssl/evp.h>

#include "llmcache.h"
#include "unit.h"

#define H LLMC_KV_HASH_LEN

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The documented layout, built byte by byte, must give the same digest. */
static void test_layout(void)
{
    int32_t toks[3] = {7, -1, 300};
    uint8_t parent[H], want[H], got[H];
    for (int i = 0; i < H; i++)
        parent[i] = (uint8_t)(i * 3);
    uint8_t buf[128];
    size_t o = 0;
    memcpy(buf, "LLMCKV1", 8);
    o = 8;
    memcpy(buf + o, parent, H);
    o += H;
    put32(buf + o, 3);
    o += 4;
    for (int i = 0; i < 3; i++, o += 4)
        put32(buf + o, (uint32_t)toks[i]);
    put32(buf + o, 4);
    o += 4;
    memcpy(buf + o, "salt", 4);
    o += 4;
    put32(buf + o, 2);
    o += 4;
    memcpy(buf + o, "lo", 2);
    o += 2;
    unsigned int l = 0;
    CHECK(EVP_Digest(buf, o, want, &l, EVP_sha256(), NULL) == 1);
    llmc_kv_extra ex = {"salt", "lo"};
    CHECK_EQ_INT(llmc_kv_block_hash(parent, toks, 3, &ex, got), 0);
    CHECK(memcmp(want, got, H) == 0);

    /* no parent, no extra keys: zero parent and two zero lengths */
    o = 8;
    memset(buf + o, 0, H);
    o += H;
    put32(buf + o, 3);
    o += 4;
    for (int i = 0; i < 3; i++, o += 4)
        put32(buf + o, (uint32_t)toks[i]);
    memset(buf + o, 0, 8);
    o += 8;
    CHECK(EVP_Digest(buf, o, want, &l, EVP_sha256(), NULL) == 1);
    CHECK_EQ_INT(llmc_kv_block_hash(NULL, toks, 3, NULL, got), 0);
    CHECK(memcmp(want, got, H) == 0);
    CHECK_EQ_INT(llmc_kv_block_hash(NULL, toks, 0, NULL, got), LLMC_EINVAL);
}

static void test_chain(void)
{
    int32_t a[40], b[40];
    for (int i = 0; i < 40; i++)
        a[i] = b[i] = i + 10;
    uint8_t ha[4 * H], hb[4 * H], one[H];
    CHECK_EQ_INT(llmc_kv_hash_chain(a, 40, 16, NULL, ha, 4), 2); /* only full blocks */
    CHECK_EQ_INT(llmc_kv_hash_chain(a, 40, 16, NULL, ha, 1), 1);
    CHECK_EQ_INT(llmc_kv_hash_chain(a, 40, 16, NULL, ha, 4), 2);
    /* block 1 chains block 0's hash */
    CHECK_EQ_INT(llmc_kv_block_hash(ha, a + 16, 16, NULL, one), 0);
    CHECK(memcmp(one, ha + H, H) == 0);
    /* the same 16 tokens without the parent hash differently */
    CHECK_EQ_INT(llmc_kv_block_hash(NULL, a + 16, 16, NULL, one), 0);
    CHECK(memcmp(one, ha + H, H) != 0);
    /* a change in block 0 changes every later hash */
    b[3] = 999;
    CHECK_EQ_INT(llmc_kv_hash_chain(b, 40, 16, NULL, hb, 4), 2);
    CHECK(memcmp(ha, hb, H) != 0);
    CHECK(memcmp(ha + H, hb + H, H) != 0);
    /* a change in block 1 leaves block 0 alone */
    b[3] = a[3];
    b[20] = 999;
    CHECK_EQ_INT(llmc_kv_hash_chain(b, 40, 16, NULL, hb, 4), 2);
    CHECK(memcmp(ha, hb, H) == 0);
    CHECK(memcmp(ha + H, hb + H, H) != 0);
    /* extra keys change every block */
    llmc_kv_extra t1 = {"tenant-1", NULL}, t2 = {"tenant-2", NULL}, ad = {NULL, "tenant-1"};
    uint8_t h1[2 * H], h2[2 * H], h3[2 * H];
    llmc_kv_hash_chain(a, 32, 16, &t1, h1, 2);
    llmc_kv_hash_chain(a, 32, 16, &t2, h2, 2);
    llmc_kv_hash_chain(a, 32, 16, &ad, h3, 2);
    CHECK(memcmp(h1, h2, H) != 0 && memcmp(h1 + H, h2 + H, H) != 0);
    CHECK(memcmp(h1, ha, H) != 0);
    CHECK(memcmp(h1, h3, H) != 0); /* salt and adapter are separate fields */
    CHECK_EQ_INT(llmc_kv_hash_chain(a, 32, 0, NULL, h1, 2), LLMC_EINVAL);
}

static llmc_kvpool *mkpool(int bs, int n, int caching)
{
    llmc_kvpool_params p = llmc_kvpool_default_params();
    CHECK_EQ_INT(p.block_size, 16);
    p.block_size = bs;
    p.num_blocks = n;
    p.enable_prefix_caching = caching;
    int err = 0;
    llmc_kvpool *pool = llmc_kvpool_new(&p, &err);
    CHECK(pool != NULL);
    return pool;
}

/* run a full request: begin, "compute", commit, end */
static int run_req(llmc_kvpool *pool, const int32_t *t, size_t n, const llmc_kv_extra *ex,
                   size_t *cached)
{
    llmc_kvseq *s = NULL;
    int e = llmc_kvpool_begin(pool, t, n, n, ex, &s);
    if (e)
        return e;
    *cached = llmc_kvseq_cached_tokens(s);
    e = llmc_kvseq_commit(s, n);
    llmc_kvpool_end(pool, s);
    return e;
}

static void test_hits_and_tenants(void)
{
    llmc_kvpool *pool = mkpool(4, 32, 1);
    int32_t t[18];
    for (int i = 0; i < 18; i++)
        t[i] = 100 + i;
    size_t c = 99;
    llmc_kv_extra a = {"A", NULL}, b = {"B", NULL};
    CHECK_EQ_INT(run_req(pool, t, 18, &a, &c), 0);
    CHECK_EQ_INT(c, 0);
    CHECK_EQ_INT(run_req(pool, t, 18, &a, &c), 0);
    CHECK_EQ_INT(c, 16); /* 4 full blocks within the first 17 tokens */
    CHECK_EQ_INT(run_req(pool, t, 18, &b, &c), 0);
    CHECK_EQ_INT(c, 0); /* another tenant never sees A's blocks */
    CHECK_EQ_INT(run_req(pool, t, 18, NULL, &c), 0);
    CHECK_EQ_INT(c, 0);
    /* the last prompt token is always recomputed: exactly 16 tokens hit 12 */
    CHECK_EQ_INT(llmc_kvpool_lookup(pool, t, 16, &a), 12);
    CHECK_EQ_INT(llmc_kvpool_lookup(pool, t, 17, &a), 16);
    /* a divergence inside block 2 keeps blocks 0-1 */
    int32_t u[18];
    memcpy(u, t, sizeof u);
    u[9] = 5;
    CHECK_EQ_INT(run_req(pool, u, 18, &a, &c), 0);
    CHECK_EQ_INT(c, 8);
    llmc_kvpool_stats st;
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.queries_tokens, 5 * 18);
    CHECK_EQ_INT(st.hits_tokens, 16 + 8);
    CHECK_EQ_INT(st.requests, 5);
    CHECK_EQ_INT(st.blocks_in_use, 0);
    CHECK_EQ_INT(llmc_kvpool_check(pool), 0);
    llmc_kvpool_free(pool);

    /* caching off: nothing is hashed or hit */
    pool = mkpool(4, 32, 0);
    CHECK_EQ_INT(run_req(pool, t, 18, &a, &c), 0);
    CHECK_EQ_INT(run_req(pool, t, 18, &a, &c), 0);
    CHECK_EQ_INT(c, 0);
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_cached, 0);
    CHECK_EQ_INT(st.hits_tokens, 0);
    llmc_kvpool_free(pool);
}

static void test_lru_eviction(void)
{
    llmc_kvpool *pool = mkpool(4, 8, 1);
    int32_t p1[17], p2[16], p3[4];
    for (int i = 0; i < 17; i++)
        p1[i] = i + 1;
    for (int i = 0; i < 16; i++)
        p2[i] = 1000 + i;
    for (int i = 0; i < 4; i++)
        p3[i] = 5000 + i;
    uint8_t h1[4 * H];
    CHECK_EQ_INT(llmc_kv_hash_chain(p1, 17, 4, NULL, h1, 4), 4);
    llmc_kvseq *s = NULL;
    CHECK_EQ_INT(llmc_kvpool_begin(pool, p1, 16, 16, NULL, &s), 0);
    size_t nb = 0;
    const int32_t *bt = llmc_kvseq_blocks(s, &nb);
    CHECK_EQ_INT(nb, 4);
    int32_t ids[4];
    memcpy(ids, bt, sizeof ids);
    CHECK_EQ_INT(ids[0], 0); /* a fresh pool hands out blocks from the head */
    CHECK_EQ_INT(ids[3], 3);
    /* nothing is visible before commit */
    CHECK_EQ_INT(llmc_kvpool_find(pool, h1), LLMC_ENOTFOUND);
    CHECK_EQ_INT(llmc_kvseq_commit(s, 8), 0);
    CHECK_EQ_INT(llmc_kvpool_find(pool, h1), ids[0]);
    CHECK_EQ_INT(llmc_kvpool_find(pool, h1 + 2 * H), LLMC_ENOTFOUND);
    CHECK_EQ_INT(llmc_kvseq_commit(s, 17), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_kvseq_commit(s, 16), 0);
    llmc_kvpool_end(pool, s);
    /* free queue now: 4 5 6 7 | 3 2 1 0 (the finished request, reversed) */
    llmc_kvpool_stats st;
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_free, 8);
    CHECK_EQ_INT(st.blocks_cached, 4);
    size_t c;
    CHECK_EQ_INT(run_req(pool, p2, 16, NULL, &c), 0); /* takes 4..7, evicts nothing */
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.evictions, 0);
    CHECK_EQ_INT(st.blocks_cached, 8);
    /* queue: 3 2 1 0 | 7 6 5 4. One new block evicts p1's LAST block. */
    CHECK_EQ_INT(run_req(pool, p3, 4, NULL, &c), 0);
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.evictions, 1);
    CHECK_EQ_INT(llmc_kvpool_find(pool, h1 + 3 * H), LLMC_ENOTFOUND);
    CHECK_EQ_INT(llmc_kvpool_find(pool, h1 + 2 * H), ids[2]);
    CHECK_EQ_INT(llmc_kvpool_lookup(pool, p1, 17, NULL), 12);
    /* a hit refreshes p1's blocks: they move out of the queue and come back
     * at the tail, so the next allocations evict p2's blocks instead */
    CHECK_EQ_INT(run_req(pool, p1, 13, NULL, &c), 0);
    CHECK_EQ_INT(c, 12);
    /* that request took block 7 (p2's last) for its partial 4th block; the
     * queue is now 6 5 4 3 | 7 2 1 0, so 4 fresh blocks evict p2 and p3 */
    int32_t p4[16];
    for (int i = 0; i < 16; i++)
        p4[i] = 9000 + i;
    CHECK_EQ_INT(run_req(pool, p4, 16, NULL, &c), 0);
    CHECK_EQ_INT(llmc_kvpool_lookup(pool, p1, 17, NULL), 12); /* p1 survived */
    CHECK_EQ_INT(llmc_kvpool_lookup(pool, p2, 16, NULL), 0);  /* p2 evicted */
    CHECK_EQ_INT(llmc_kvpool_check(pool), 0);
    llmc_kvpool_free(pool);
}

static void test_refcounts_and_reservations(void)
{
    llmc_kvpool *pool = mkpool(4, 6, 1);
    int32_t t[9];
    for (int i = 0; i < 9; i++)
        t[i] = i * 7;
    llmc_kvseq *a = NULL, *b = NULL, *c = NULL;
    CHECK_EQ_INT(llmc_kvpool_begin(pool, t, 9, 12, NULL, &a), 0); /* 3 blocks */
    CHECK_EQ_INT(llmc_kvseq_commit(a, 9), 0);
    llmc_kvpool_stats st;
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_in_use, 3);
    CHECK_EQ_INT(st.blocks_reserved, 0);
    /* b shares a's 2 full blocks and reserves one for generation */
    CHECK_EQ_INT(llmc_kvpool_begin(pool, t, 9, 13, NULL, &b), 0);
    CHECK_EQ_INT(llmc_kvseq_cached_tokens(b), 8);
    size_t na, nb;
    const int32_t *ba = llmc_kvseq_blocks(a, &na), *bb = llmc_kvseq_blocks(b, &nb);
    CHECK(ba[0] == bb[0] && ba[1] == bb[1] && ba[2] != bb[2]);
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_in_use, 4);
    CHECK_EQ_INT(st.blocks_reserved, 1);
    /* too big for the pool, and too big for what is left now */
    CHECK_EQ_INT(llmc_kvpool_begin(pool, t, 9, 100, NULL, &c), LLMC_ETOOBIG);
    int32_t o[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_EQ_INT(llmc_kvpool_begin(pool, o, 8, 8, NULL, &c), LLMC_EBUSY);
    CHECK(c == NULL);
    /* b grows through its reservation into a new block */
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(llmc_kvseq_append(b, 50 + i), 0);
    CHECK_EQ_INT(llmc_kvseq_len(b), 13);
    llmc_kvseq_blocks(b, &nb);
    CHECK_EQ_INT(nb, 4);
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_reserved, 0);
    CHECK_EQ_INT(st.blocks_in_use, 5);
    /* past max_tokens it takes a free block, then runs out */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(llmc_kvseq_append(b, 60 + i), 0);
    CHECK_EQ_INT(llmc_kvseq_append(b, 70), 0); /* len 16 -> 17: the last free block */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(llmc_kvseq_append(b, 71 + i), 0);
    CHECK_EQ_INT(llmc_kvseq_append(b, 74), LLMC_EFULL);
    CHECK_EQ_INT(llmc_kvseq_len(b), 20);
    llmc_kvpool_end(pool, a);
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_in_use, 5); /* the shared blocks stay with b */
    llmc_kvpool_end(pool, b);
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_in_use, 0);
    CHECK_EQ_INT(st.blocks_free, 6);
    CHECK_EQ_INT(llmc_kvpool_begin(pool, o, 8, 8, NULL, &c), 0);
    llmc_kvpool_end(pool, c);
    CHECK_EQ_INT(llmc_kvpool_begin(pool, o, 0, 8, NULL, &c), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_kvpool_check(pool), 0);
    llmc_kvpool_free(pool);
}

/* ---- concurrency: a fake KV store whose slots hold the token written there;
 * a request that attaches a cached block must find its own prompt tokens in
 * it, whatever the other threads did meanwhile. */

#define CB 4
#define CN 40
typedef struct {
    llmc_kvpool *pool;
    int32_t *kv; /* CN * CB slots */
    unsigned seed;
    int errors, hits, done;
} cctx;

static void *worker(void *arg)
{
    cctx *c = arg;
    for (int it = 0; it < 300; it++) {
        int32_t t[32];
        c->seed = c->seed * 1103515245u + 12345u;
        int prefix = (int)(c->seed >> 16) % 4; /* 4 shared prefixes */
        int n = 13 + (int)((c->seed >> 8) % 8);
        for (int i = 0; i < n; i++)
            t[i] = i < 12 ? prefix * 100 + i : (int32_t)((c->seed >> (i % 16)) & 0xfff);
        llmc_kvseq *s = NULL;
        int e;
        while ((e = llmc_kvpool_begin(c->pool, t, (size_t)n, (size_t)n + 6, NULL, &s)) ==
               LLMC_EBUSY)
            sched_yield();
        if (e) {
            c->errors++;
            continue;
        }
        size_t cached = llmc_kvseq_cached_tokens(s), nb;
        const int32_t *bt = llmc_kvseq_blocks(s, &nb);
        if (cached)
            c->hits++;
        for (size_t i = 0; i < cached; i++)
            if (c->kv[bt[i / CB] * CB + i % CB] != t[i])
                c->errors++;
        for (size_t i = cached; i < (size_t)n; i++) /* "prefill" */
            c->kv[bt[i / CB] * CB + i % CB] = t[i];
        if (llmc_kvseq_commit(s, (size_t)n))
            c->errors++;
        for (int g = 0; g < 6; g++) { /* "decode" */
            if (llmc_kvseq_append(s, 7000 + g)) {
                c->errors++;
                break;
            }
            bt = llmc_kvseq_blocks(s, &nb);
            size_t pos = llmc_kvseq_len(s) - 1;
            c->kv[bt[pos / CB] * CB + pos % CB] = 7000 + g;
            llmc_kvseq_commit(s, pos + 1);
        }
        llmc_kvpool_end(c->pool, s);
        c->done++;
    }
    return NULL;
}

static void test_concurrent(void)
{
    llmc_kvpool *pool = mkpool(CB, CN, 1);
    int32_t *kv = calloc(CN * CB, sizeof *kv);
    pthread_t th[4];
    cctx cx[4];
    for (int i = 0; i < 4; i++) {
        cx[i] = (cctx){pool, kv, 17u * (unsigned)i + 1, 0, 0, 0};
        pthread_create(&th[i], NULL, worker, &cx[i]);
    }
    int errors = 0, hits = 0, done = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        errors += cx[i].errors;
        hits += cx[i].hits;
        done += cx[i].done;
    }
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(done, 1200);
    CHECK(hits > 600); /* 4 hot prefixes in a 40-block pool hit most of the time */
    llmc_kvpool_stats st;
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_in_use, 0);
    CHECK_EQ_INT(st.blocks_reserved, 0);
    CHECK_EQ_INT(st.requests, 1200);
    CHECK(st.hits_tokens > 0 && st.hits_tokens < st.queries_tokens);
    CHECK_EQ_INT(llmc_kvpool_check(pool), 0);
    free(kv);
    llmc_kvpool_free(pool);
}

/* The listener hears each registration (with its parent and tokens), each
 * eviction of a cached block, and a reset, in order; reset refuses while a
 * sequence holds blocks. */
typedef struct {
    int kind[64];
    uint8_t hash[64][H], parent[64][H];
    int has_parent[64];
    int32_t tok0[64];
    size_t n;
} evlog;

static void on_event(void *ud, const llmc_kv_event *ev)
{
    evlog *l = ud;
    if (l->n >= 64)
        return;
    l->kind[l->n] = ev->kind;
    if (ev->hash)
        memcpy(l->hash[l->n], ev->hash, H);
    l->has_parent[l->n] = ev->parent != NULL;
    if (ev->parent)
        memcpy(l->parent[l->n], ev->parent, H);
    l->tok0[l->n] = ev->tokens ? ev->tokens[0] : -1;
    l->n++;
}

static void test_events_and_reset(void)
{
    llmc_kvpool *pool = mkpool(4, 4, 1);
    evlog log;
    memset(&log, 0, sizeof log);
    llmc_kvpool_set_listener(pool, on_event, &log);
    int32_t p1[9], p2[16];
    for (int i = 0; i < 9; i++)
        p1[i] = i + 1;
    for (int i = 0; i < 16; i++)
        p2[i] = 100 + i;
    uint8_t h1[2 * H];
    CHECK_EQ_INT(llmc_kv_hash_chain(p1, 9, 4, NULL, h1, 2), 2);
    size_t c;
    CHECK_EQ_INT(run_req(pool, p1, 9, NULL, &c), 0); /* registers 2 full blocks */
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(log.kind[0], LLMC_KV_STORED);
    CHECK(!log.has_parent[0] && memcmp(log.hash[0], h1, H) == 0 && log.tok0[0] == 1);
    CHECK(log.has_parent[1] && memcmp(log.parent[1], h1, H) == 0);
    CHECK(memcmp(log.hash[1], h1 + H, H) == 0 && log.tok0[1] == 5);
    /* p2 needs all 4 blocks: both cached blocks of p1 are evicted */
    llmc_kvseq *s = NULL;
    CHECK_EQ_INT(llmc_kvpool_begin(pool, p2, 16, 16, NULL, &s), 0);
    int removed = 0;
    for (size_t i = 2; i < log.n; i++)
        removed += log.kind[i] == LLMC_KV_REMOVED;
    CHECK_EQ_INT(removed, 2);
    CHECK_EQ_INT(llmc_kvpool_reset(pool), LLMC_EBUSY); /* s holds blocks */
    CHECK_EQ_INT(llmc_kvseq_commit(s, 16), 0);
    llmc_kvpool_end(pool, s);
    size_t before = log.n;
    CHECK_EQ_INT(llmc_kvpool_reset(pool), 0);
    CHECK_EQ_INT(log.n, before + 1);
    CHECK_EQ_INT(log.kind[before], LLMC_KV_CLEARED);
    llmc_kvpool_stats st;
    llmc_kvpool_get_stats(pool, &st);
    CHECK_EQ_INT(st.blocks_cached, 0);
    CHECK_EQ_INT(llmc_kvpool_lookup(pool, p2, 16, NULL), 0);
    CHECK_EQ_INT(llmc_kvpool_check(pool), 0);
    llmc_kvpool_set_listener(pool, NULL, NULL);
    llmc_kvpool_free(pool);
}

int main(void)
{
    test_layout();
    test_chain();
    test_hits_and_tenants();
    test_lru_eviction();
    test_refcounts_and_reservations();
    test_concurrent();
    test_events_and_reset();
    return UNIT_DONE();
}
