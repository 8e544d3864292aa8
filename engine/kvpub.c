/*
 * kvpub.c — the engine publishes its KV cache events as vLLM does.
 *
 * Purpose. A router in front of several engines routes best when it knows
 * which blocks each engine really holds. vLLM publishes that knowledge
 * (--kv-events-config) on a ZeroMQ PUB socket, and llm-d's precise
 * prefix-cache scorer and NVIDIA Dynamo's KV router consume it. This file
 * makes llmcached-engine publish the same stream, so the gateway (and any
 * of those routers) can consume either engine alike.
 *
 * Wire format (vLLM's vllm/distributed/kv_events.py, msgspec structs with
 * array_like=True, tag=True; written here with msgpack-c):
 *
 *   ZeroMQ multipart message  [topic, seq, payload]
 *     topic    bytes ("" by default; subscribers filter on it)
 *     seq      uint64 big-endian, 8 bytes: 0, 1, 2, ... one per batch
 *     payload  msgpack KVEventBatch = [ts (float64 seconds since the epoch),
 *                                      [event, ...], data_parallel_rank (0)]
 *   event (a tagged array: the class name first)
 *     ["BlockStored", [hash, ...], parent_hash | nil, [token_id, ...],
 *      block_size, lora_id (nil), medium ("GPU")]
 *     ["BlockRemoved", [hash, ...], medium ("GPU")]
 *     ["AllBlocksCleared"]
 *   hash     uint64: the last 8 bytes, big-endian, of the block's SHA-256
 *            chain hash (src/kvblock.c), as vLLM's int block hashes are
 *            the last 8 bytes of its own.
 *
 * One BlockStored carries a run of consecutive blocks of one chain (each
 * block's parent is the previous one); token_ids are the run's tokens, in
 * order, block_size per block. "medium" names the engine's one KV pool (GPU
 * in vLLM's terms: the device pool, not an offload tier).
 *
 * Replay. A ROUTER socket (--kv-events-replay) answers a request
 * [identity, "", start_seq (8 bytes big-endian)] with every buffered batch
 * whose seq >= start_seq as [identity, "", seq, payload], then the end
 * marker [identity, "", 0xffffffffffffffff (-1), ""]. The buffer keeps the
 * last KVPUB_REPLAY batches.
 *
 * Threads. The pool's listener (kvpub_listener) runs on generation threads
 * under the pool's lock: it only appends to a pending list under kvpub's
 * own mutex. One publisher thread owns both sockets: every KVPUB_TICK_MS it
 * serves replay requests, takes the pending list, encodes it as one batch
 * and sends it. Order is kept: the pool calls the listener in the order it
 * changed, and batches are numbered in the order they are sent.
 *
 * Invariants: seq increases by one per sent batch; a batch is never empty;
 * the replay ring holds batches seq - n + 1 .. seq in order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <zmq.h>

#include "kvpub.h"

#define KVPUB_TICK_MS 5
#define KVPUB_REPLAY 10000

typedef struct {
    int kind; /* LLMC_KV_* */
    int has_parent;
    uint64_t parent;
    uint64_t *hashes;
    size_t n_hashes, cap_hashes;
    int32_t *tokens;
    size_t n_tokens, cap_tokens;
} kvpub_event;

typedef struct {
    uint64_t seq;
    char *data;
    size_t len;
} kvpub_batch;

struct kvpub {
    void *ctx, *pub, *replay;
    int block_size;
    char *topic;
    pthread_mutex_t mu; /* pending */
    kvpub_event *pending;
    size_t n_pending, cap_pending;
    int oom; /* an event was lost to memory: the next batch starts with a clear */
    pthread_t th;
    atomic_int stop;
    uint64_t next_seq;
    kvpub_batch ring[KVPUB_REPLAY]; /* publisher thread only */
    size_t ring_n, ring_head;       /* oldest at ring_head */
    atomic_ullong batches, events;
};

static uint64_t kvpub_hash64(const uint8_t *h)
{
    uint64_t v = 0;
    for (int i = LLMC_KV_HASH_LEN - 8; i < LLMC_KV_HASH_LEN; i++)
        v = v << 8 | h[i];
    return v;
}

static int kvpub_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n)
        return -1;
    *p = n;
    *cap = c;
    return 0;
}

static void kvpub_event_clear(kvpub_event *e)
{
    free(e->hashes);
    free(e->tokens);
    memset(e, 0, sizeof *e);
}

/* Under the pool's lock: append to pending, merging a block that continues
 * the last stored run (or a removal that follows a removal). */
void kvpub_listener(void *ud, const llmc_kv_event *ev)
{
    kvpub *k = ud;
    pthread_mutex_lock(&k->mu);
    kvpub_event *last = k->n_pending ? &k->pending[k->n_pending - 1] : NULL;
    uint64_t h = ev->hash ? kvpub_hash64(ev->hash) : 0;
    int merge = 0;
    if (last && ev->kind == LLMC_KV_STORED && last->kind == LLMC_KV_STORED && ev->parent &&
        last->hashes[last->n_hashes - 1] == kvpub_hash64(ev->parent))
        merge = 1;
    if (last && ev->kind == LLMC_KV_REMOVED && last->kind == LLMC_KV_REMOVED)
        merge = 1;
    if (ev->kind == LLMC_KV_CLEARED) { /* everything before it is moot */
        for (size_t i = 0; i < k->n_pending; i++)
            kvpub_event_clear(&k->pending[i]);
        k->n_pending = 0;
        k->oom = 0;
        merge = 0;
    }
    kvpub_event *e = last;
    if (!merge) {
        if (kvpub_grow((void **)&k->pending, &k->cap_pending, k->n_pending + 1, sizeof *k->pending))
            goto oom;
        e = &k->pending[k->n_pending++];
        memset(e, 0, sizeof *e);
        e->kind = ev->kind;
        if (ev->kind == LLMC_KV_STORED && ev->parent) {
            e->has_parent = 1;
            e->parent = kvpub_hash64(ev->parent);
        }
    }
    if (ev->kind != LLMC_KV_CLEARED) {
        if (kvpub_grow((void **)&e->hashes, &e->cap_hashes, e->n_hashes + 1, sizeof *e->hashes))
            goto oom;
        e->hashes[e->n_hashes++] = h;
    }
    if (ev->kind == LLMC_KV_STORED) {
        if (kvpub_grow((void **)&e->tokens, &e->cap_tokens, e->n_tokens + ev->n_tokens,
                       sizeof *e->tokens))
            goto oom;
        memcpy(e->tokens + e->n_tokens, ev->tokens, ev->n_tokens * sizeof *ev->tokens);
        e->n_tokens += ev->n_tokens;
    }
    pthread_mutex_unlock(&k->mu);
    return;
oom:
    /* A consumer that misses an event would believe wrong things: say so
     * with a clear it must act on (it then relearns from later events). */
    if (k->n_pending && k->pending[k->n_pending - 1].n_hashes == 0 &&
        k->pending[k->n_pending - 1].kind != LLMC_KV_CLEARED)
        k->n_pending--;
    k->oom = 1;
    pthread_mutex_unlock(&k->mu);
}

static void kvpub_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void kvpub_pack_event(kvpub *k, msgpack_packer *pk, const kvpub_event *e)
{
    if (e->kind == LLMC_KV_CLEARED) {
        msgpack_pack_array(pk, 1);
        kvpub_pack_str(pk, "AllBlocksCleared");
        return;
    }
    int stored = e->kind == LLMC_KV_STORED;
    msgpack_pack_array(pk, stored ? 7 : 3);
    kvpub_pack_str(pk, stored ? "BlockStored" : "BlockRemoved");
    msgpack_pack_array(pk, e->n_hashes);
    for (size_t i = 0; i < e->n_hashes; i++)
        msgpack_pack_uint64(pk, e->hashes[i]);
    if (stored) {
        if (e->has_parent)
            msgpack_pack_uint64(pk, e->parent);
        else
            msgpack_pack_nil(pk);
        msgpack_pack_array(pk, e->n_tokens);
        for (size_t i = 0; i < e->n_tokens; i++)
            msgpack_pack_int32(pk, e->tokens[i]);
        msgpack_pack_int(pk, k->block_size);
        msgpack_pack_nil(pk); /* lora_id */
    }
    kvpub_pack_str(pk, "GPU");
}

static void kvpub_seq_bytes(uint64_t seq, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--, seq >>= 8)
        out[i] = (uint8_t)seq;
}

/* Publisher thread: take the pending events, send them as one batch. */
static void kvpub_flush(kvpub *k)
{
    pthread_mutex_lock(&k->mu);
    kvpub_event *ev = k->pending;
    size_t n = k->n_pending;
    int oom = k->oom;
    k->pending = NULL;
    k->n_pending = k->cap_pending = 0;
    k->oom = 0;
    pthread_mutex_unlock(&k->mu);
    if (!n && !oom)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    msgpack_pack_array(&pk, n + (oom ? 1 : 0));
    if (oom) {
        kvpub_event clear = {.kind = LLMC_KV_CLEARED};
        kvpub_pack_event(k, &pk, &clear);
    }
    for (size_t i = 0; i < n; i++)
        kvpub_pack_event(k, &pk, &ev[i]);
    msgpack_pack_int(&pk, 0); /* data_parallel_rank */
    for (size_t i = 0; i < n; i++)
        kvpub_event_clear(&ev[i]);
    free(ev);
    if (!sb.data) { /* msgpack's buffer could not grow */
        msgpack_sbuffer_destroy(&sb);
        return;
    }

    uint64_t seq = k->next_seq++;
    uint8_t sq[8];
    kvpub_seq_bytes(seq, sq);
    zmq_send(k->pub, k->topic, strlen(k->topic), ZMQ_SNDMORE);
    zmq_send(k->pub, sq, 8, ZMQ_SNDMORE);
    zmq_send(k->pub, sb.data, sb.size, 0);
    atomic_fetch_add(&k->batches, 1);
    atomic_fetch_add(&k->events, n);

    kvpub_batch *slot;
    if (k->ring_n < KVPUB_REPLAY) {
        slot = &k->ring[(k->ring_head + k->ring_n++) % KVPUB_REPLAY];
    } else {
        slot = &k->ring[k->ring_head];
        free(slot->data);
        k->ring_head = (k->ring_head + 1) % KVPUB_REPLAY;
    }
    slot->seq = seq;
    slot->data = sb.data; /* the ring owns the payload now */
    slot->len = sb.size;
}

/* Answer one replay request waiting on the ROUTER socket. */
static void kvpub_replay(kvpub *k)
{
    zmq_msg_t part[4];
    int n = 0, more = 1;
    while (more && n < 4) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], k->replay, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n]);
        n++;
    }
    while (more) { /* drain an over-long request */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, k->replay, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&x);
            break;
        }
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        n = 4;
    }
    if (n == 3 && zmq_msg_size(&part[2]) == 8) {
        const uint8_t *b = zmq_msg_data(&part[2]);
        uint64_t start = 0;
        for (int i = 0; i < 8; i++)
            start = start << 8 | b[i];
        const void *id = zmq_msg_data(&part[0]);
        size_t idlen = zmq_msg_size(&part[0]);
        for (size_t i = 0; i < k->ring_n; i++) {
            const kvpub_batch *r = &k->ring[(k->ring_head + i) % KVPUB_REPLAY];
            if (r->seq < start)
                continue;
            uint8_t sq[8];
            kvpub_seq_bytes(r->seq, sq);
            zmq_send(k->replay, id, idlen, ZMQ_SNDMORE);
            zmq_send(k->replay, "", 0, ZMQ_SNDMORE);
            zmq_send(k->replay, sq, 8, ZMQ_SNDMORE);
            zmq_send(k->replay, r->data, r->len, 0);
        }
        static const uint8_t end[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        zmq_send(k->replay, id, idlen, ZMQ_SNDMORE);
        zmq_send(k->replay, "", 0, ZMQ_SNDMORE);
        zmq_send(k->replay, end, 8, ZMQ_SNDMORE);
        zmq_send(k->replay, "", 0, 0);
    }
    for (int i = 0; i < n && i < 4; i++)
        zmq_msg_close(&part[i]);
}

static void *kvpub_main(void *arg)
{
    kvpub *k = arg;
    while (!atomic_load(&k->stop)) {
        zmq_pollitem_t it = {k->replay, 0, ZMQ_POLLIN, 0};
        int r = zmq_poll(&it, k->replay ? 1 : 0, KVPUB_TICK_MS);
        if (r > 0 && (it.revents & ZMQ_POLLIN))
            kvpub_replay(k);
        kvpub_flush(k);
    }
    kvpub_flush(k);
    return NULL;
}

/* Bind sock to endpoint and write the resolved endpoint (port "*" or 0
 * picked by the system) to bound. */
static int kvpub_bind(void *sock, const char *endpoint, char *bound, size_t cap)
{
    if (zmq_bind(sock, endpoint) != 0)
        return -1;
    size_t len = cap;
    if (bound && cap && zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &len) != 0)
        snprintf(bound, cap, "%s", endpoint);
    return 0;
}

kvpub *kvpub_new(const kvpub_params *pp, char *bound, size_t bound_cap, char *rbound,
                 size_t rbound_cap, char *err, size_t errlen)
{
    kvpub *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&k->mu, NULL);
    k->block_size = pp->block_size;
    k->topic = strdup(pp->topic ? pp->topic : "");
    k->ctx = zmq_ctx_new();
    k->pub = k->ctx ? zmq_socket(k->ctx, ZMQ_PUB) : NULL;
    if (!k->topic || !k->pub) {
        snprintf(err, errlen, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int hwm = 100000, linger = 0;
    zmq_setsockopt(k->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(k->pub, ZMQ_LINGER, &linger, sizeof linger);
    if (kvpub_bind(k->pub, pp->endpoint, bound, bound_cap)) {
        snprintf(err, errlen, "cannot bind %s: %s", pp->endpoint, zmq_strerror(errno));
        goto fail;
    }
    if (pp->replay_endpoint) {
        k->replay = zmq_socket(k->ctx, ZMQ_ROUTER);
        if (!k->replay)
            goto fail;
        zmq_setsockopt(k->replay, ZMQ_LINGER, &linger, sizeof linger);
        if (kvpub_bind(k->replay, pp->replay_endpoint, rbound, rbound_cap)) {
            snprintf(err, errlen, "cannot bind %s: %s", pp->replay_endpoint, zmq_strerror(errno));
            goto fail;
        }
    } else if (rbound && rbound_cap) {
        rbound[0] = 0;
    }
    if (pthread_create(&k->th, NULL, kvpub_main, k)) {
        snprintf(err, errlen, "cannot start the publisher thread");
        goto fail;
    }
    return k;
fail:
    if (k->replay)
        zmq_close(k->replay);
    if (k->pub)
        zmq_close(k->pub);
    if (k->ctx)
        zmq_ctx_term(k->ctx);
    pthread_mutex_destroy(&k->mu);
    free(k->topic);
    free(k);
    return NULL;
}

void kvpub_stats(kvpub *k, uint64_t *batches, uint64_t *events)
{
    *batches = atomic_load(&k->batches);
    *events = atomic_load(&k->events);
}

void kvpub_free(kvpub *k)
{
    if (!k)
        return;
    atomic_store(&k->stop, 1);
    pthread_join(k->th, NULL);
    for (size_t i = 0; i < k->n_pending; i++)
        kvpub_event_clear(&k->pending[i]);
    free(k->pending);
    for (size_t i = 0; i < k->ring_n; i++)
        free(k->ring[(k->ring_head + i) % KVPUB_REPLAY].data);
    if (k->replay)
        zmq_close(k->replay);
    zmq_close(k->pub);
    zmq_ctx_term(k->ctx);
    pthread_mutex_destroy(&k->mu);
    free(k->topic);
    free(k);
}
