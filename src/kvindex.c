/*
 * kvindex.c — which engine holds which KV block, learned from the engines'
 * own KV events (vLLM's format, decoded with msgpack-c).
 *
 * Purpose. The prefix router (prefix.c) guesses what each backend holds
 * from what it was sent; it never learns what the backend evicted, and two
 * gateways guess apart. Engines that publish KV events (vLLM
 * --kv-events-config, llmcached-engine --kv-events) say exactly which
 * blocks they store and evict. This index folds those events into one map
 * block hash -> set of backends, so a router can ask "how many leading
 * blocks of this prompt does each backend hold now?".
 *
 * Input: a KVEventBatch payload (the third frame of a ZeroMQ message),
 * either msgspec's array_like form [ts, [event...], dp_rank] with events
 * ["BlockStored", hashes, parent, token_ids, block_size, lora_id, medium,
 * ...], ["BlockRemoved", hashes, medium, ...], ["AllBlocksCleared"], or the
 * map form {"ts", "events", ...} with events {"type": "BlockStored",
 * "block_hashes": ..., ...}. Extra trailing fields are ignored. A hash is an
 * integer (vLLM's int hashes, our engine's) or bytes (vLLM's bytes hashes,
 * reduced to their last 8 bytes big-endian, the same reduction vLLM's int
 * form makes). A payload is checked whole before anything is applied: a
 * malformed one changes nothing.
 *
 * Re-hashing (what llm-d does). vLLM's block hashes are seeded (and
 * CBOR/SHA-based) and cannot be reproduced outside it, so a gateway cannot
 * compute them from a prompt. A BlockStored carries each block's token_ids,
 * though: the index re-hashes them with OUR chain rule (llmc_kv_block_hash,
 * the one the gateway's lookups use) and is keyed by that, whatever hash
 * function the engine uses. The chain needs our hash of the parent: a map
 * (backend, engine hash) -> our 32-byte hash, bounded by max_entries too,
 * gives it for parent_block_hash, and a BlockRemoved's engine hash maps
 * back to the entry to remove. A BlockStored without token_ids (or with a
 * count that is not block_size per hash) is indexed under the engine's own
 * hash, as is one whose parent we never saw (joined late; counted
 * "unchained": it matches nothing until the prefix is stored again). Our
 * engine's hashes are our rule already, so its events index the same
 * values either way. Not in the re-hash: vLLM's extra keys (LoRA id,
 * multimodal hashes, cache_salt) — a request with any of those is matched
 * as if it had none.
 *
 * Design. One open-addressing table of {hash, backend bitmask, last
 * backend to store it, when} (linear probing, hash 0 = empty). It grows by
 * doubling up to max_entries entries (held or remembered, below); beyond
 * that a newly stored hash is dropped and counted (dropped), so memory is
 * bounded: the table doubles while its entries fill more than a quarter of
 * it, so it has 4 to 8 slots of 24 bytes per entry, 100 to 200 bytes x
 * max_entries at most. The backends' counters (blocks held, events,
 * batches) live beside it.
 *
 * Remembered blocks. An entry whose mask fell to 0 (every holder evicted
 * it) keeps the backend that stored it last: a "remembered" entry. It
 * answers "where was this prompt's prefix last held?" when nobody holds it
 * any more (llmc_kvindex_match_ex's last), which is where a router sends
 * it again: the same stickiness as the gateway's tree of what it sent, but
 * learnt from the engines' events, so every gateway that follows them
 * agrees. They share max_entries with the held ones: when live +
 * remembered reaches it, a rebuild forgets the oldest remembered (by the
 * store stamp) down to 7/8 of it. An entry cleared (AllBlocksCleared, a
 * resync) forgets that backend. homed[b] counts the entries whose last
 * holder is b, held or remembered: how many blocks the fleet has placed on
 * b, the same on every gateway (a new prefix's placement can balance on it).
 *
 * Invariants: live == number of slots with mask != 0; remembered ==
 * number of slots with mask == 0 and last >= 0; for every backend b,
 * held[b] == number of slots whose mask has bit b and homed[b] == number
 * of slots whose last is b; a slot with mask != 0 has last >= 0 and its
 * bit set in mask; live + remembered <= max_entries; mlive == number of
 * map entries with b >= 0, mlive <= max_entries.
 *
 * Locking: one mutex; apply (the subscriber thread) and match (event
 * loops) may run at once. A match is O(blocks of the prompt).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "llmcache.h"

typedef struct {
    uint64_t hash;  /* 0 = empty slot */
    uint64_t mask;  /* backends holding it; 0 with hash != 0: remembered or a tombstone */
    int last;       /* the backend that stored it last; -1 = none (a tombstone) */
    uint32_t stamp; /* when, in stores (x->clock): the oldest remembered go first */
} kvslot;

/* engine hash -> our chain hash, per backend (see "Re-hashing" above). */
typedef struct {
    uint64_t key;                   /* kvindex_mapkey(backend, engine hash); 0 = empty */
    int b;                          /* the backend; -1 = tombstone */
    uint8_t ours[LLMC_KV_HASH_LEN]; /* our chain hash of that block's tokens */
} kvmapent;

struct llmc_kvindex {
    pthread_mutex_t mu;
    llmc_kvindex_params p;
    int n;
    kvslot *slots;
    size_t cap, live, used; /* used = live + remembered + tombstones */
    size_t remembered;
    uint32_t clock; /* stores so far (wraps; only differences are used) */
    kvmapent *map;
    size_t mcap, mlive, mused;
    llmc_kvindex_stats st;
};

llmc_kvindex_params llmc_kvindex_default_params(void)
{
    llmc_kvindex_params p;
    memset(&p, 0, sizeof p);
    p.max_entries = 1u << 20;
    return p;
}

llmc_kvindex *llmc_kvindex_new(const llmc_kvindex_params *pp, int n_backends, int *err)
{
    llmc_kvindex_params d = llmc_kvindex_default_params();
    if (!pp)
        pp = &d;
    if (n_backends < 1 || n_backends > LLMC_PREFIX_MAX_BACKENDS || pp->max_entries < 1) {
        if (err)
            *err = LLMC_EINVAL;
        return NULL;
    }
    llmc_kvindex *x = calloc(1, sizeof *x);
    if (x) {
        x->cap = 1024;
        x->slots = calloc(x->cap, sizeof *x->slots);
    }
    if (!x || !x->slots) {
        free(x);
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&x->mu, NULL);
    x->p = *pp;
    x->n = n_backends;
    return x;
}

void llmc_kvindex_free(llmc_kvindex *x)
{
    if (!x)
        return;
    pthread_mutex_destroy(&x->mu);
    free(x->map);
    free(x->slots);
    free(x);
}

/* Where a probe for h starts in a power-of-two table of cap slots (the
 * block table and the engine-hash map both probe linearly from here). */
static size_t kvindex_home(uint64_t h, size_t cap)
{
    return (size_t)((h * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static size_t kvindex_slot(const llmc_kvindex *x, uint64_t h)
{
    return kvindex_home(h, x->cap);
}

/* The slot holding h, or -1. */
static long kvindex_find(const llmc_kvindex *x, uint64_t h)
{
    for (size_t i = kvindex_slot(x, h), k = 0; k < x->cap; i = (i + 1) & (x->cap - 1), k++) {
        if (x->slots[i].hash == 0)
            return -1;
        if (x->slots[i].hash == h)
            return (long)i;
    }
    return -1;
}

static int kvindex_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The age (in stores) of the keep-th youngest remembered entry: older
 * ones are forgotten. UINT32_MAX (keep all) when there are no more than
 * keep; 0 (none) when memory runs out. */
static uint32_t kvindex_age_cut(const llmc_kvindex *x, size_t keep)
{
    if (x->remembered <= keep)
        return UINT32_MAX;
    uint32_t *age = malloc(x->remembered * sizeof *age);
    if (!age)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < x->cap && n < x->remembered; i++)
        if (x->slots[i].hash && !x->slots[i].mask && x->slots[i].last >= 0)
            age[n++] = x->clock - x->slots[i].stamp;
    qsort(age, n, sizeof *age, kvindex_cmp_u32);
    uint32_t cut = keep ? age[keep - 1] : 0;
    free(age);
    return cut;
}

/* Rebuild into cap slots, dropping tombstones, and remembered entries
 * beyond the keep youngest. */
static int kvindex_rehash(llmc_kvindex *x, size_t cap, size_t keep)
{
    uint32_t cut = kvindex_age_cut(x, keep);
    kvslot *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return LLMC_ENOMEM;
    kvslot *old = x->slots;
    size_t oc = x->cap;
    x->slots = ns;
    x->cap = cap;
    x->used = 0;
    x->remembered = 0;
    for (size_t j = 0; j < oc; j++) {
        if (!old[j].hash)
            continue;
        if (!old[j].mask && old[j].last >= 0 &&
            (x->remembered >= keep || x->clock - old[j].stamp > cut)) {
            x->st.homed[old[j].last]--; /* forgotten */
            continue;
        }
        if (!old[j].mask && old[j].last < 0)
            continue; /* a tombstone */
        if (!old[j].mask)
            x->remembered++;
        size_t i = kvindex_slot(x, old[j].hash);
        while (x->slots[i].hash)
            i = (i + 1) & (cap - 1);
        x->slots[i] = old[j];
        x->used++;
    }
    free(old);
    return LLMC_OK;
}

static void kvindex_store(llmc_kvindex *x, int b, uint64_t h)
{
    if (!h)
        h = 1; /* 0 marks an empty slot */
    long at = kvindex_find(x, h);
    uint64_t bit = 1ull << b;
    if (at >= 0) {
        kvslot *s = &x->slots[at];
        if (!s->mask) {
            x->live++;
            if (s->last >= 0)
                x->remembered--;
        }
        if (!(s->mask & bit))
            x->st.held[b]++;
        s->mask |= bit;
        if (s->last != b) {
            if (s->last >= 0)
                x->st.homed[s->last]--;
            x->st.homed[b]++;
            s->last = b;
        }
        s->stamp = ++x->clock;
        return;
    }
    if (x->live >= x->p.max_entries) {
        x->st.dropped++;
        return;
    }
    size_t max = x->p.max_entries;
    if (x->live + x->remembered >= max || (x->used + 1) * 2 > x->cap) {
        /* forget the oldest remembered (to 7/8 of the bound), then grow
         * when what is left fills a quarter of the table */
        size_t room = max - x->live, keep = x->remembered;
        if (x->live + x->remembered >= max)
            keep = max / 8 * 7 > x->live ? max / 8 * 7 - x->live : 0;
        if (keep >= room)
            keep = room ? room - 1 : 0;
        size_t nc = (x->live + keep) * 4 > x->cap ? x->cap * 2 : x->cap;
        if (kvindex_rehash(x, nc, keep)) {
            x->st.dropped++;
            return;
        }
    }
    size_t i = kvindex_slot(x, h);
    while (x->slots[i].hash)
        i = (i + 1) & (x->cap - 1);
    x->slots[i].hash = h;
    x->slots[i].mask = bit;
    x->slots[i].last = b;
    x->slots[i].stamp = ++x->clock;
    x->st.homed[b]++;
    x->used++;
    x->live++;
    x->st.held[b]++;
}

static void kvindex_remove(llmc_kvindex *x, int b, uint64_t h)
{
    if (!h)
        h = 1;
    long at = kvindex_find(x, h);
    uint64_t bit = 1ull << b;
    if (at < 0 || !(x->slots[at].mask & bit))
        return;
    x->slots[at].mask &= ~bit;
    x->st.held[b]--;
    if (!x->slots[at].mask) {
        x->live--; /* remembered (last says where), until a rebuild needs the room */
        x->remembered++;
    }
}

/* ---- engine hash -> our hash (re-hashing) ------------------------------------ */

static uint64_t kvindex_mapkey(int b, uint64_t e)
{
    uint64_t k = e ^ ((uint64_t)(b + 1) * 0x9e3779b97f4a7c15ull); /* one-to-one for a backend */
    return k ? k : 1;
}

static kvmapent *kvindex_map_get(llmc_kvindex *x, int b, uint64_t e)
{
    if (!x->map)
        return NULL;
    uint64_t k = kvindex_mapkey(b, e);
    for (size_t i = kvindex_home(k, x->mcap), n = 0; n < x->mcap;
         i = (i + 1) & (x->mcap - 1), n++) {
        if (!x->map[i].key)
            return NULL;
        if (x->map[i].key == k && x->map[i].b == b)
            return &x->map[i];
    }
    return NULL;
}

static int kvindex_map_rehash(llmc_kvindex *x, size_t cap)
{
    kvmapent *nm = calloc(cap, sizeof *nm);
    if (!nm)
        return LLMC_ENOMEM;
    kvmapent *old = x->map;
    size_t oc = x->mcap;
    x->map = nm;
    x->mcap = cap;
    x->mused = 0;
    for (size_t j = 0; j < oc; j++) {
        if (!old[j].key || old[j].b < 0)
            continue;
        size_t i = kvindex_home(old[j].key, cap);
        while (x->map[i].key)
            i = (i + 1) & (cap - 1);
        x->map[i] = old[j];
        x->mused++;
    }
    free(old);
    return LLMC_OK;
}

/* Remember that backend b's block e is our hash ours. */
static void kvindex_map_put(llmc_kvindex *x, int b, uint64_t e, const uint8_t *ours)
{
    kvmapent *m = kvindex_map_get(x, b, e);
    if (m) {
        memcpy(m->ours, ours, LLMC_KV_HASH_LEN);
        return;
    }
    if (x->mlive >= x->p.max_entries) {
        x->st.dropped++;
        return;
    }
    if (!x->map || (x->mused + 1) * 2 > x->mcap) {
        size_t nc = !x->map ? 1024 : x->mlive * 4 > x->mcap ? x->mcap * 2 : x->mcap;
        if (kvindex_map_rehash(x, nc)) {
            x->st.dropped++;
            return;
        }
    }
    uint64_t k = kvindex_mapkey(b, e);
    size_t i = kvindex_home(k, x->mcap);
    while (x->map[i].key)
        i = (i + 1) & (x->mcap - 1);
    x->map[i].key = k;
    x->map[i].b = b;
    memcpy(x->map[i].ours, ours, LLMC_KV_HASH_LEN);
    x->mused++;
    x->mlive++;
}

static void kvindex_map_clear(llmc_kvindex *x, int b)
{
    for (size_t i = 0; x->map && i < x->mcap; i++)
        if (x->map[i].key && x->map[i].b == b) {
            x->map[i].b = -1;
            x->mlive--;
        }
}

static void kvindex_clear_locked(llmc_kvindex *x, int b)
{
    kvindex_map_clear(x, b);
    uint64_t bit = 1ull << b;
    for (size_t i = 0; i < x->cap; i++) {
        kvslot *s = &x->slots[i];
        if (!s->hash)
            continue;
        if (s->mask & bit) {
            s->mask &= ~bit;
            if (!s->mask)
                x->live--;
        } else if (!s->mask && s->last == b) {
            x->remembered--; /* b's memory of it is gone with its cache */
        }
        if (s->last == b) { /* the lowest other holder, or nobody: a tombstone */
            x->st.homed[b]--;
            s->last = s->mask ? __builtin_ctzll(s->mask) : -1;
            if (s->last >= 0)
                x->st.homed[s->last]++;
        }
    }
    x->st.held[b] = 0;
}

int llmc_kvindex_clear_backend(llmc_kvindex *x, int b)
{
    if (!x || b < 0 || b >= x->n)
        return LLMC_EINVAL;
    pthread_mutex_lock(&x->mu);
    kvindex_clear_locked(x, b);
    pthread_mutex_unlock(&x->mu);
    return LLMC_OK;
}

/* ---- decoding --------------------------------------------------------------- */

static int kvindex_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

static int kvindex_hash(const msgpack_object *o, uint64_t *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (uint64_t)o->via.i64;
        return 0;
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_STR: {
        const uint8_t *p = (const uint8_t *)o->via.bin.ptr;
        uint32_t n = o->via.bin.size, from = n > 8 ? n - 8 : 0;
        uint64_t v = 0;
        for (uint32_t i = from; i < n; i++)
            v = v << 8 | p[i];
        *out = v;
        return n ? 0 : -1;
    }
    default:
        return -1;
    }
}

/* A field of a map-form object by name, or NULL. */
static const msgpack_object *kvindex_get(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (kvindex_str_eq(&m->via.map.ptr[i].key, key))
            return &m->via.map.ptr[i].val;
    return NULL;
}

enum { KV_EV_STORED = 1, KV_EV_REMOVED = 2, KV_EV_CLEARED = 3 };

/* The event's kind and its hash list (NULL for a clear); -1 if malformed. */
typedef struct {
    const msgpack_object *hashes; /* NULL for a clear */
    const msgpack_object *parent; /* BlockStored: parent_block_hash (may be nil), or NULL */
    const msgpack_object *tokens; /* BlockStored: token_ids, or NULL */
    int bs;                       /* BlockStored: block_size, 0 if absent */
} kvevent;

static int kvindex_event(const msgpack_object *e, kvevent *ev)
{
    const msgpack_object *tag, *h = NULL, *b = NULL, *par = NULL, *tok = NULL;
    memset(ev, 0, sizeof *ev);
    if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size >= 1) {
        tag = &e->via.array.ptr[0];
        if (e->via.array.size >= 2)
            h = &e->via.array.ptr[1];
        if (e->via.array.size >= 4) {
            par = &e->via.array.ptr[2];
            tok = &e->via.array.ptr[3];
        }
        if (e->via.array.size >= 5)
            b = &e->via.array.ptr[4];
    } else if (e->type == MSGPACK_OBJECT_MAP) {
        tag = kvindex_get(e, "type");
        h = kvindex_get(e, "block_hashes");
        b = kvindex_get(e, "block_size");
        par = kvindex_get(e, "parent_block_hash");
        tok = kvindex_get(e, "token_ids");
        if (!tag)
            return -1;
    } else {
        return -1;
    }
    int kind;
    if (kvindex_str_eq(tag, "BlockStored"))
        kind = KV_EV_STORED;
    else if (kvindex_str_eq(tag, "BlockRemoved"))
        kind = KV_EV_REMOVED;
    else if (kvindex_str_eq(tag, "AllBlocksCleared"))
        return KV_EV_CLEARED;
    else
        return 0; /* an event kind we do not know: skipped */
    if (!h || h->type != MSGPACK_OBJECT_ARRAY)
        return -1;
    for (uint32_t i = 0; i < h->via.array.size; i++) {
        uint64_t v;
        if (kvindex_hash(&h->via.array.ptr[i], &v))
            return -1;
    }
    ev->hashes = h;
    if (kind != KV_EV_STORED)
        return kind;
    if (b && b->type == MSGPACK_OBJECT_POSITIVE_INTEGER && b->via.u64 > 0 &&
        b->via.u64 < (1u << 20))
        ev->bs = (int)b->via.u64;
    uint64_t v;
    if (par && par->type != MSGPACK_OBJECT_NIL && kvindex_hash(par, &v))
        return -1;
    ev->parent = par && par->type != MSGPACK_OBJECT_NIL ? par : NULL;
    if (tok && tok->type != MSGPACK_OBJECT_NIL) {
        if (tok->type != MSGPACK_OBJECT_ARRAY)
            return -1;
        for (uint32_t i = 0; i < tok->via.array.size; i++) {
            const msgpack_object *t = &tok->via.array.ptr[i];
            if (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || t->via.u64 > INT32_MAX)
                return -1;
        }
        ev->tokens = tok;
    }
    return kind;
}

/* x->mu held: index a BlockStored. With its token_ids (block_size of them
 * per hash) and a parent that is either none or a block we re-hashed, each
 * block is indexed under OUR chain hash of its tokens (llmc_kv_block_hash,
 * the rule the gateway's lookups use) and the engine's hash is mapped to
 * it; otherwise under the engine's own hash (our engine's hashes are our
 * rule already; a vLLM block whose parent we never saw cannot be chained
 * and will match nothing). */
static void kvindex_stored(llmc_kvindex *x, int b, const kvevent *ev)
{
    const msgpack_object *h = ev->hashes;
    uint32_t nh = h->via.array.size;
    uint8_t par[LLMC_KV_HASH_LEN], ours[LLMC_KV_HASH_LEN];
    int have_par = 0, chain = ev->tokens && ev->bs > 0 && nh &&
                              ev->tokens->via.array.size == (uint64_t)nh * (uint64_t)ev->bs;
    if (chain && ev->parent) {
        uint64_t pe = 0;
        kvindex_hash(ev->parent, &pe);
        const kvmapent *m = kvindex_map_get(x, b, pe);
        if (m) {
            memcpy(par, m->ours, LLMC_KV_HASH_LEN);
            have_par = 1;
        } else {
            chain = 0;
            x->st.unchained += nh;
        }
    }
    int32_t *tok = chain ? malloc((size_t)ev->bs * sizeof *tok) : NULL;
    for (uint32_t j = 0; j < nh; j++) {
        uint64_t v = 0;
        kvindex_hash(&h->via.array.ptr[j], &v);
        if (!tok) {
            kvindex_store(x, b, v);
            continue;
        }
        const msgpack_object *t = ev->tokens->via.array.ptr + (size_t)j * (size_t)ev->bs;
        for (int i = 0; i < ev->bs; i++)
            tok[i] = (int32_t)t[i].via.u64;
        if (llmc_kv_block_hash(have_par ? par : NULL, tok, (size_t)ev->bs, NULL, ours)) {
            kvindex_store(x, b, v);
            continue;
        }
        kvindex_map_put(x, b, v, ours);
        kvindex_store(x, b, llmc_kvindex_hash64(ours));
        x->st.rehashed++;
        memcpy(par, ours, LLMC_KV_HASH_LEN);
        have_par = 1;
    }
    free(tok);
}

long llmc_kvindex_apply(llmc_kvindex *x, int b, const void *payload, size_t len)
{
    if (!x || b < 0 || b >= x->n || (!payload && len))
        return LLMC_EINVAL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    long rc = LLMC_ECORRUPT;
    if (msgpack_unpack_next(&u, payload, len, &off) != MSGPACK_UNPACK_SUCCESS)
        goto out;
    const msgpack_object *batch = &u.data, *evs = NULL;
    if (batch->type == MSGPACK_OBJECT_ARRAY && batch->via.array.size >= 2)
        evs = &batch->via.array.ptr[1];
    else if (batch->type == MSGPACK_OBJECT_MAP)
        evs = kvindex_get(batch, "events");
    if (!evs || evs->type != MSGPACK_OBJECT_ARRAY)
        goto out;
    /* check everything first: a malformed batch changes nothing */
    for (uint32_t i = 0; i < evs->via.array.size; i++) {
        kvevent ev;
        if (kvindex_event(&evs->via.array.ptr[i], &ev) < 0)
            goto out;
    }
    pthread_mutex_lock(&x->mu);
    for (uint32_t i = 0; i < evs->via.array.size; i++) {
        kvevent ev;
        int kind = kvindex_event(&evs->via.array.ptr[i], &ev);
        if (kind == KV_EV_CLEARED) {
            kvindex_clear_locked(x, b);
            x->st.cleared++;
            continue;
        }
        if (kind <= 0)
            continue;
        const msgpack_object *h = ev.hashes;
        if (kind == KV_EV_STORED) {
            if (ev.bs)
                x->st.block_size[b] = ev.bs;
            kvindex_stored(x, b, &ev);
            x->st.stored += h->via.array.size;
            continue;
        }
        for (uint32_t j = 0; j < h->via.array.size; j++) {
            uint64_t v = 0;
            kvindex_hash(&h->via.array.ptr[j], &v);
            kvmapent *m = kvindex_map_get(x, b, v);
            if (m) { /* indexed under our hash of its tokens */
                kvindex_remove(x, b, llmc_kvindex_hash64(m->ours));
                m->b = -1;
                x->mlive--;
            } else {
                kvindex_remove(x, b, v);
            }
        }
        x->st.removed += h->via.array.size;
    }
    x->st.batches++;
    x->st.events += evs->via.array.size;
    x->st.entries = x->live;
    x->st.bytes = x->cap * sizeof(kvslot) + x->mcap * sizeof(kvmapent) + sizeof *x;
    pthread_mutex_unlock(&x->mu);
    rc = (long)evs->via.array.size;
out:
    if (rc < 0) {
        pthread_mutex_lock(&x->mu);
        x->st.malformed++;
        pthread_mutex_unlock(&x->mu);
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

size_t llmc_kvindex_match_ex(llmc_kvindex *x, const uint64_t *hashes, size_t n, size_t *held,
                             int *last, size_t *last_depth)
{
    size_t best = 0;
    for (int b = 0; b < x->n; b++)
        held[b] = 0;
    if (last)
        *last = -1;
    if (last_depth)
        *last_depth = 0;
    pthread_mutex_lock(&x->mu);
    uint64_t alive = x->n >= 64 ? ~0ull : (1ull << x->n) - 1;
    /* past the holders' runs only to learn who stored the deepest block */
    for (size_t i = 0; i < n && (alive || last); i++) {
        long at = kvindex_find(x, hashes[i] ? hashes[i] : 1);
        if (at < 0 || x->slots[at].last < 0)
            break; /* never stored, or forgotten: the chain ends here */
        alive &= x->slots[at].mask;
        for (int b = 0; b < x->n; b++)
            if (alive & (1ull << b))
                held[b] = i + 1;
        if (alive)
            best = i + 1;
        if (last) {
            *last = x->slots[at].last;
            *last_depth = i + 1;
        }
    }
    x->st.matches++;
    pthread_mutex_unlock(&x->mu);
    return best;
}

size_t llmc_kvindex_match(llmc_kvindex *x, const uint64_t *hashes, size_t n, size_t *held)
{
    return llmc_kvindex_match_ex(x, hashes, n, held, NULL, NULL);
}

uint64_t llmc_kvindex_hash64(const uint8_t h[LLMC_KV_HASH_LEN])
{
    uint64_t v = 0;
    for (int i = LLMC_KV_HASH_LEN - 8; i < LLMC_KV_HASH_LEN; i++)
        v = v << 8 | h[i];
    return v;
}

int llmc_kvindex_block_size(llmc_kvindex *x)
{
    int bs = 0;
    pthread_mutex_lock(&x->mu);
    for (int b = 0; b < x->n && !bs; b++)
        bs = x->st.block_size[b];
    pthread_mutex_unlock(&x->mu);
    return bs;
}

void llmc_kvindex_get_stats(llmc_kvindex *x, llmc_kvindex_stats *st)
{
    pthread_mutex_lock(&x->mu);
    *st = x->st;
    st->entries = x->live;
    st->remembered = x->remembered;
    st->bytes = x->cap * sizeof(kvslot) + x->mcap * sizeof(kvmapent) + sizeof *x;
    pthread_mutex_unlock(&x->mu);
}
