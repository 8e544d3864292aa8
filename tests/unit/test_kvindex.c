/*
 * test_kvindex.c — the index of which backend holds which block, fed with
 * KVEventBatch payloads built here with msgpack-c in both of vLLM's forms
 * (array_like tagged arrays, and maps), including malformed ones.
 */
#include <msgpack.h>

#include "llmcache.h"
#include "unit.h"

static void pstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* [ts, [ [tag, [h...], ...] ], 0] with one event of kind tag over hashes */
static void batch1(msgpack_sbuffer *sb, const char *tag, const uint64_t *h, int n)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_array(&pk, 1);
    if (!strcmp(tag, "AllBlocksCleared")) {
        msgpack_pack_array(&pk, 1);
        pstr(&pk, tag);
    } else if (!strcmp(tag, "BlockStored")) {
        msgpack_pack_array(&pk, 7);
        pstr(&pk, tag);
        msgpack_pack_array(&pk, (size_t)n);
        for (int i = 0; i < n; i++)
            msgpack_pack_uint64(&pk, h[i]);
        msgpack_pack_nil(&pk);
        msgpack_pack_array(&pk, 0);
        msgpack_pack_int(&pk, 16);
        msgpack_pack_nil(&pk);
        pstr(&pk, "GPU");
    } else {
        msgpack_pack_array(&pk, 3);
        pstr(&pk, tag);
        msgpack_pack_array(&pk, (size_t)n);
        for (int i = 0; i < n; i++)
            msgpack_pack_uint64(&pk, h[i]);
        pstr(&pk, "GPU");
    }
    msgpack_pack_int(&pk, 0);
}

static long apply1(llmc_kvindex *x, int b, const char *tag, const uint64_t *h, int n)
{
    msgpack_sbuffer sb;
    batch1(&sb, tag, h, n);
    long r = llmc_kvindex_apply(x, b, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static void test_store_remove_match(void)
{
    int err = 0;
    llmc_kvindex *x = llmc_kvindex_new(NULL, 3, &err);
    CHECK(x != NULL);
    uint64_t a[4] = {11, 12, 13, 14}, b[2] = {11, 99};
    CHECK_EQ_INT(apply1(x, 0, "BlockStored", a, 4), 1);
    CHECK_EQ_INT(apply1(x, 1, "BlockStored", a, 2), 1);
    CHECK_EQ_INT(apply1(x, 2, "BlockStored", b, 2), 1);
    size_t held[3];
    CHECK_EQ_INT(llmc_kvindex_match(x, a, 4, held), 4);
    CHECK_EQ_INT(held[0], 4);
    CHECK_EQ_INT(held[1], 2);
    CHECK_EQ_INT(held[2], 1); /* 11 then not 12: a run, not a count */
    /* backend 0 evicts block 13: its run stops at 2 */
    CHECK_EQ_INT(apply1(x, 0, "BlockRemoved", a + 2, 1), 1);
    CHECK_EQ_INT(llmc_kvindex_match(x, a, 4, held), 2);
    CHECK_EQ_INT(held[0], 2);
    llmc_kvindex_stats st;
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.held[0], 3);
    CHECK_EQ_INT(st.held[1], 2);
    CHECK_EQ_INT(st.entries, 4); /* 11 12 14 99: nobody holds 13 now */
    CHECK_EQ_INT(st.block_size[0], 16);
    /* a clear forgets only that backend */
    CHECK_EQ_INT(apply1(x, 1, "AllBlocksCleared", NULL, 0), 1);
    CHECK_EQ_INT(llmc_kvindex_match(x, a, 4, held), 2);
    CHECK_EQ_INT(held[1], 0);
    CHECK_EQ_INT(held[0], 2);
    CHECK_EQ_INT(llmc_kvindex_clear_backend(x, 0), 0);
    CHECK_EQ_INT(llmc_kvindex_match(x, a, 4, held), 1);
    CHECK_EQ_INT(held[2], 1);
    CHECK_EQ_INT(llmc_kvindex_clear_backend(x, 3), LLMC_EINVAL);
    llmc_kvindex_free(x);
}

static void test_forms_and_malformed(void)
{
    llmc_kvindex *x = llmc_kvindex_new(NULL, 2, NULL);
    /* map form (msgspec without array_like), bytes hashes: last 8 bytes BE */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pstr(&pk, "ts");
    msgpack_pack_double(&pk, 2.0);
    pstr(&pk, "events");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    pstr(&pk, "type");
    pstr(&pk, "BlockStored");
    pstr(&pk, "block_hashes");
    msgpack_pack_array(&pk, 1);
    uint8_t h32[32] = {0};
    h32[31] = 7;
    h32[24] = 1;
    msgpack_pack_bin(&pk, 32);
    msgpack_pack_bin_body(&pk, h32, 32);
    pstr(&pk, "block_size");
    msgpack_pack_int(&pk, 32);
    CHECK_EQ_INT(llmc_kvindex_apply(x, 1, sb.data, sb.size), 1);
    msgpack_sbuffer_destroy(&sb);
    uint64_t want = llmc_kvindex_hash64(h32);
    CHECK(want == ((1ull << 56) | 7));
    size_t held[2];
    CHECK_EQ_INT(llmc_kvindex_match(x, &want, 1, held), 1);
    CHECK_EQ_INT(held[1], 1);
    CHECK_EQ_INT(llmc_kvindex_block_size(x), 32);

    /* malformed: not msgpack, wrong shapes, a bad hash after a good event;
     * nothing of them is applied */
    llmc_kvindex_stats st0, st1;
    llmc_kvindex_get_stats(x, &st0);
    CHECK_EQ_INT(llmc_kvindex_apply(x, 0, "\xc1", 1), LLMC_ECORRUPT);
    CHECK_EQ_INT(llmc_kvindex_apply(x, 0, "", 0), LLMC_ECORRUPT);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1.0);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, 2); /* good */
    pstr(&pk, "BlockStored");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, 555);
    msgpack_pack_array(&pk, 2); /* bad: a hash that is a float */
    pstr(&pk, "BlockRemoved");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_double(&pk, 3.0);
    msgpack_pack_int(&pk, 0);
    CHECK_EQ_INT(llmc_kvindex_apply(x, 0, sb.data, sb.size), LLMC_ECORRUPT);
    msgpack_sbuffer_destroy(&sb);
    uint64_t h555 = 555;
    CHECK_EQ_INT(llmc_kvindex_match(x, &h555, 1, held), 0);
    llmc_kvindex_get_stats(x, &st1);
    CHECK_EQ_INT(st1.malformed, st0.malformed + 3);
    CHECK_EQ_INT(st1.entries, st0.entries);
    CHECK_EQ_INT(llmc_kvindex_apply(x, 2, "", 0), LLMC_EINVAL);
    llmc_kvindex_free(x);
}

static void test_bound(void)
{
    llmc_kvindex_params p = llmc_kvindex_default_params();
    p.max_entries = 1000;
    llmc_kvindex *x = llmc_kvindex_new(&p, 2, NULL);
    uint64_t h[500];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 500; i++)
            h[i] = (uint64_t)round * 1000 + (uint64_t)i + 1;
        CHECK_EQ_INT(apply1(x, round & 1, "BlockStored", h, 500), 1);
    }
    llmc_kvindex_stats st;
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.entries, 1000);
    CHECK_EQ_INT(st.dropped, 1500);
    CHECK(st.bytes < 96 * 1000 + 4096);
    /* removals free room (tombstones are reclaimed on growth or rebuild) */
    for (int i = 0; i < 500; i++)
        h[i] = (uint64_t)i + 1;
    CHECK_EQ_INT(apply1(x, 0, "BlockRemoved", h, 500), 1);
    for (int i = 0; i < 500; i++)
        h[i] = 90000 + (uint64_t)i;
    CHECK_EQ_INT(apply1(x, 1, "BlockStored", h, 500), 1);
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.entries, 1000);
    CHECK_EQ_INT(st.held[0], 0);
    CHECK_EQ_INT(st.held[1], 1000);
    size_t held[2];
    CHECK_EQ_INT(llmc_kvindex_match(x, h, 500, held), 500);
    llmc_kvindex_free(x);
}

/* A vLLM-shaped BlockStored: opaque engine hashes h[0..n), parent (0 = nil),
 * token_ids tok[0..ntok), block size bs. */
static long stored_tokens(llmc_kvindex *x, int b, const uint64_t *h, int n, uint64_t parent,
                          const int32_t *tok, int ntok, int bs)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 7);
    pstr(&pk, "BlockStored");
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_uint64(&pk, h[i]);
    if (parent)
        msgpack_pack_uint64(&pk, parent);
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, (size_t)ntok);
    for (int i = 0; i < ntok; i++)
        msgpack_pack_int32(&pk, tok[i]);
    msgpack_pack_int(&pk, bs);
    msgpack_pack_nil(&pk);
    pstr(&pk, "GPU");
    msgpack_pack_int(&pk, 0);
    long r = llmc_kvindex_apply(x, b, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* Engine hashes unrelated to our rule (vLLM's seeded ones): the index is
 * keyed by our chain hash of the token_ids, so a lookup computed from the
 * tokens matches; parents chain through the engine-hash map, and
 * BlockRemoved maps back. */
static void test_rehash(void)
{
    llmc_kvindex *x = llmc_kvindex_new(NULL, 2, NULL);
    CHECK(x != NULL);
    enum { BS = 4, NB = 6 };
    int32_t tok[BS * NB];
    for (int i = 0; i < BS * NB; i++)
        tok[i] = 1000 + i * 7;
    uint8_t ours[NB * LLMC_KV_HASH_LEN];
    CHECK_EQ_INT(llmc_kv_hash_chain(tok, BS * NB, BS, NULL, ours, NB), NB);
    uint64_t want[NB];
    for (int i = 0; i < NB; i++)
        want[i] = llmc_kvindex_hash64(ours + i * LLMC_KV_HASH_LEN);
    /* backend 1: blocks 0-2 in one event, 3-4 in a second whose parent is
     * engine hash of block 2 */
    uint64_t e1[NB] = {0xdead0001, 0xdead0002, 0xdead0003, 0xdead0004, 0xdead0005, 0xdead0006};
    CHECK_EQ_INT(stored_tokens(x, 1, e1, 3, 0, tok, 3 * BS, BS), 1);
    CHECK_EQ_INT(stored_tokens(x, 1, e1 + 3, 2, e1[2], tok + 3 * BS, 2 * BS, BS), 1);
    /* backend 0: other engine hashes for the same tokens, first 2 blocks */
    uint64_t e0[2] = {77, 78};
    CHECK_EQ_INT(stored_tokens(x, 0, e0, 2, 0, tok, 2 * BS, BS), 1);
    size_t held[2];
    CHECK_EQ_INT(llmc_kvindex_match(x, want, NB, held), 5);
    CHECK_EQ_INT(held[0], 2);
    CHECK_EQ_INT(held[1], 5);
    CHECK_EQ_INT(llmc_kvindex_match(x, e1, NB, held), 0); /* not keyed by the engine's */
    llmc_kvindex_stats st;
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.rehashed, 7);
    CHECK_EQ_INT(st.held[1], 5);
    CHECK_EQ_INT(st.block_size[1], BS);
    /* the engine evicts block 1 (by its own hash): the run stops at 1 */
    CHECK_EQ_INT(apply1(x, 1, "BlockRemoved", e1 + 1, 1), 1);
    CHECK_EQ_INT(llmc_kvindex_match(x, want, NB, held), 2);
    CHECK_EQ_INT(held[1], 1);
    CHECK_EQ_INT(held[0], 2);
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.held[1], 4);
    /* a parent never seen (joined late): not chained, counted, matches nothing */
    uint64_t e9 = 0xbeef;
    CHECK_EQ_INT(stored_tokens(x, 0, &e9, 1, 0x1234, tok + 5 * BS, BS, BS), 1);
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.unchained, 1);
    CHECK_EQ_INT(st.held[0], 3);
    /* the same tokens with a token count that is not block_size per hash:
     * malformed for re-hashing, indexed under the engine's hash instead */
    uint64_t e10 = 0xbeef10;
    CHECK_EQ_INT(stored_tokens(x, 0, &e10, 1, 0, tok, BS - 1, BS), 1);
    CHECK_EQ_INT(llmc_kvindex_match(x, &e10, 1, held), 1);
    /* token_ids that are not integers: the whole batch is refused */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_double(&pk, 1.0);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 5);
    pstr(&pk, "BlockStored");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, 5);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 1);
    pstr(&pk, "x");
    msgpack_pack_int(&pk, 1);
    llmc_kvindex_stats st0;
    llmc_kvindex_get_stats(x, &st0);
    CHECK_EQ_INT(llmc_kvindex_apply(x, 0, sb.data, sb.size), LLMC_ECORRUPT);
    msgpack_sbuffer_destroy(&sb);
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.entries, st0.entries);
    /* AllBlocksCleared forgets the map too: a later child of e1[0] is unchained */
    CHECK_EQ_INT(apply1(x, 1, "AllBlocksCleared", NULL, 0), 1);
    CHECK_EQ_INT(stored_tokens(x, 1, e1 + 1, 1, e1[0], tok + BS, BS, BS), 1);
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.unchained, 2);
    CHECK_EQ_INT(llmc_kvindex_match(x, want, NB, held), 2);
    CHECK_EQ_INT(held[1], 0);
    llmc_kvindex_free(x);
}

/* Evicted everywhere: the entry is remembered with the backend that stored
 * it last, so match_ex says where the prompt was last held (and how
 * deep); a clear forgets that backend's memory; remembered entries never
 * make the table grow past what the live ones need. */
static void test_remembered(void)
{
    llmc_kvindex *x = llmc_kvindex_new(NULL, 3, NULL);
    uint64_t a[6] = {21, 22, 23, 24, 25, 26};
    size_t held[3], depth = 0;
    int last = 7;
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, a, 6, held, &last, &depth), 0);
    CHECK_EQ_INT(last, -1);
    CHECK_EQ_INT(depth, 0);
    CHECK_EQ_INT(apply1(x, 1, "BlockStored", a, 4), 1);
    CHECK_EQ_INT(apply1(x, 2, "BlockStored", a, 2), 1);
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, a, 6, held, &last, &depth), 4);
    CHECK_EQ_INT(last, 1);
    CHECK_EQ_INT(depth, 4);
    /* 1 evicts all four; 2 still holds two */
    CHECK_EQ_INT(apply1(x, 1, "BlockRemoved", a, 4), 1);
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, a, 6, held, &last, &depth), 2);
    CHECK_EQ_INT(held[1], 0);
    CHECK_EQ_INT(held[2], 2);
    CHECK_EQ_INT(last, 1); /* block 4 was last held by 1 */
    CHECK_EQ_INT(depth, 4);
    llmc_kvindex_stats st;
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.entries, 2);
    CHECK_EQ_INT(st.remembered, 2);
    CHECK_EQ_INT(st.homed[1], 2); /* blocks 3 and 4, remembered */
    CHECK_EQ_INT(st.homed[2], 2); /* 1 and 2: 2 stored them after 1 */
    CHECK_EQ_INT(st.homed[0], 0);
    /* 0 stores the first three: the deepest known block is still 1's */
    CHECK_EQ_INT(apply1(x, 0, "BlockStored", a, 3), 1);
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, a, 6, held, &last, &depth), 3);
    CHECK_EQ_INT(last, 1);
    CHECK_EQ_INT(depth, 4);
    /* 1 restarts (cleared): what only it remembered is forgotten */
    CHECK_EQ_INT(llmc_kvindex_clear_backend(x, 1), 0);
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, a, 6, held, &last, &depth), 3);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(depth, 3);
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.remembered, 0);
    CHECK_EQ_INT(st.homed[1], 0);
    CHECK_EQ_INT(st.homed[0] + st.homed[2], 3); /* 0 last stored 1-3 */
    /* match without asking for the last holder is unchanged */
    CHECK_EQ_INT(llmc_kvindex_match(x, a, 6, held), 3);
    llmc_kvindex_free(x);

    /* churn: 200 rounds of 300 blocks stored then evicted by one backend,
     * at most 1000 live: the table stays the size the live ones need */
    llmc_kvindex_params p = llmc_kvindex_default_params();
    p.max_entries = 1000;
    x = llmc_kvindex_new(&p, 2, NULL);
    uint64_t h[300];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 300; i++)
            h[i] = (uint64_t)round * 1000 + (uint64_t)i + 1;
        CHECK_EQ_INT(apply1(x, round & 1, "BlockStored", h, 300), 1);
        CHECK_EQ_INT(apply1(x, round & 1, "BlockRemoved", h, 300), 1);
    }
    llmc_kvindex_get_stats(x, &st);
    CHECK_EQ_INT(st.entries, 0);
    CHECK_EQ_INT(st.dropped, 0);
    CHECK(st.remembered > 0);
    CHECK(st.bytes < 96 * 1000 + 4096);
    CHECK(st.remembered <= 1000);
    /* the newest round is remembered, the oldest forgotten first */
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, h, 300, held, &last, &depth), 0);
    CHECK_EQ_INT(last, 1);
    CHECK_EQ_INT(depth, 300);
    for (int i = 0; i < 300; i++)
        h[i] = (uint64_t)i + 1; /* round 0 */
    CHECK_EQ_INT(llmc_kvindex_match_ex(x, h, 300, held, &last, &depth), 0);
    CHECK_EQ_INT(last, -1);
    /* homed: every remembered entry counted under its last holder */
    CHECK_EQ_INT(st.homed[0] + st.homed[1], st.remembered);
    CHECK(st.homed[0] > 0 && st.homed[1] > 0);
    llmc_kvindex_free(x);
}

int main(void)
{
    test_store_remove_match();
    test_forms_and_malformed();
    test_bound();
    test_rehash();
    test_remembered();
    return UNIT_DONE();
}
