/*
 * kvsub.c — the gateway follows the engines' KV events and routes on them.
 *
 * Purpose. With --kv-events BACKEND=PUB[,REPLAY] for every upstream, the
 * prefix-affinity policy stops guessing: it asks the index (src/kvindex.c)
 * how many leading blocks of the prompt each engine really holds, and
 * sends the request to the one holding most (with the router's load guard,
 * llmc_prefix_route_held). Two gateways that follow the same engines see
 * the same events, so they agree. Without events for every backend, or
 * before the prompt's tokens are known, routing falls back to the
 * approximate tree (src/prefix.c), exactly as without --kv-events.
 *
 * Threads (nothing here blocks an event loop):
 *   - the subscriber thread owns the ZeroMQ sockets: one SUB per backend
 *     (all topics) and, when given, one DEALER to its replay ROUTER. Each
 *     message [topic, seq, payload] is applied to the index. Sequence
 *     numbers are checked per backend: a gap is filled from the replay
 *     socket (batches expected..seq-1, within KVSUB_REPLAY_MS); when it
 *     cannot be filled (no replay socket, the engine's buffer no longer has
 *     them, no answer) the backend is cleared and relearned from the events
 *     that follow (a "resync"). A sequence that goes back means the engine
 *     restarted: cleared too. The first message from a backend whose seq is
 *     not 0 asks the replay socket for its history from 0.
 *   - the tokenizer thread calls POST {origin}/tokenize on a backend (vLLM
 *     and llmcached-engine both have it) for what the loops queued, and
 *     stores the tokens in a bounded cache.
 *   - the loops (kvsub_held) look a prompt prefix up in that cache, hash
 *     its blocks (llmc_kv_hash_chain: the engine's rule) and match them in
 *     the index. A prefix not in the cache is queued (bounded queue; a full
 *     queue drops it, counted) and the request takes the fallback, or,
 *     with --kv-tokenize-wait, waits for it: the flight parks on its loop
 *     (kvsub_pending, kvsub_wait: an event the tokenizer thread activates
 *     when a tokenization ends, and a timer) and is routed once the tokens
 *     are there. Without the wait, a prefix another gateway already placed
 *     went wherever this gateway's tree said on its first request here, and
 *     was then held twice.
 *
 * What is tokenized. A completion: {"prompt": the route key up to its last
 * line that starts a user turn ("User:"), else up to its last newline}
 * (for "System: ...\nUser: question\nAssistant:" that is the shared
 * system part, so one tokenization serves every question of a tenant),
 * without its last token (a token may straddle the cut). Those tokens are
 * a prefix of the whole prompt's tokens, so their full blocks hash as the
 * engine's do. A chat request: {"messages", "model",
 * "add_generation_prompt": true}, which the backend renders with its own
 * chat template, as its chat endpoint does: the whole prompt's tokens,
 * whatever the template (one tokenization per distinct conversation, kept
 * under its route key).
 *
 * Locking: mu guards the token cache, the queue and the counters; the
 * index has its own lock. Lock order: mu, then the index (kvsub_held
 * releases mu before matching).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <xxhash.h>
#include <zmq.h>

#include "server.h"

#define KVSUB_QUEUE 256
#define KVSUB_REPLAY_MS 1000
#define KVSUB_MAX_BLOCKS 4096 /* blocks of a prompt prefix considered */

typedef struct {
    uint64_t key;
    char *text;
    size_t len;
    int chat; /* text is a chat request's route key: tokens of its rendered messages */
    int32_t *tokens;
    size_t n;
    uint64_t used; /* LRU stamp */
} kvtok;

/* What is tokenized for a request, and what its tokens are cached under:
 * a completion's prompt up to the cut (kvsub_cut); a chat request's whole
 * route key, tokenized as its messages through the chat template. */
typedef struct {
    const char *text;
    size_t len;
    uint64_t hk;
    const char *chat; /* the chat request's JSON body, or NULL */
    size_t chat_len;
} kvwhat;

typedef struct {
    char *pub, *replay;
    void *sub, *dealer;
    long long expect; /* next seq, -1 = none seen */
    uint64_t gaps, replayed, resyncs, restarts, messages;
} kvsrc;

struct kvsub {
    srv *s;
    int n;
    kvsrc src[SRV_MAX_UPSTREAMS];
    char *origin[SRV_MAX_UPSTREAMS];
    llmc_kvindex *idx;
    void *zctx;
    pthread_t sub_th, tok_th;
    int started;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kvtok *cache;
    size_t n_cache, cap_cache;
    uint64_t clock;
    char *queue[KVSUB_QUEUE]; /* the cache text */
    size_t qlen[KVSUB_QUEUE];
    uint64_t qkey[KVSUB_QUEUE];
    char *qreq[KVSUB_QUEUE]; /* the /tokenize request body */
    int qchat[KVSUB_QUEUE];
    int qhead, qn;
    uint64_t busy_key; /* the text the tokenizer thread is on, when busy */
    int busy;
    struct event **waiters; /* activated when the next tokenization ends */
    size_t n_waiters, cap_waiters;
    uint64_t waits, wait_timeouts;
    /* counters (mu) */
    uint64_t lookups, cache_hits, queued, queue_full, tok_calls, tok_errors;
    double tok_sec, tok_max;
    uint64_t held_known, held_unknown;
    double hash_sec;
};

static double kvsub_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "B=PUB[,REPLAY]": B an index or one of the upstream URLs. */
static int kvsub_parse(kvsub *k, const char *spec)
{
    const srv_config *c = &k->s->cfg;
    const char *eq = strrchr(spec, '=');
    while (eq && eq > spec && strncmp(eq + 1, "tcp://", 6) && strncmp(eq + 1, "ipc://", 6)) {
        const char *p = eq - 1;
        while (p > spec && *p != '=')
            p--;
        eq = *p == '=' ? p : NULL;
    }
    if (!eq || eq == spec) {
        srv_log(LOG_ERROR, "--kv-events '%s': want BACKEND=tcp://HOST:PORT[,tcp://HOST:PORT]",
                spec);
        return -1;
    }
    size_t bl = (size_t)(eq - spec);
    int b = -1;
    char *end;
    long v = strtol(spec, &end, 10);
    if (end == eq && v >= 0 && v < k->n)
        b = (int)v;
    for (int i = 0; b < 0 && i < c->n_upstream; i++) {
        size_t ul = strlen(c->upstream[i]);
        while (ul && c->upstream[i][ul - 1] == '/')
            ul--;
        size_t sl = bl;
        while (sl && spec[sl - 1] == '/')
            sl--;
        if (ul == sl && !strncmp(c->upstream[i], spec, ul))
            b = i;
    }
    if (b < 0) {
        srv_log(LOG_ERROR,
                "--kv-events '%s': '%.*s' is neither an upstream's index (0..%d) nor its URL", spec,
                (int)bl, spec, k->n - 1);
        return -1;
    }
    if (k->src[b].pub) {
        srv_log(LOG_ERROR, "--kv-events: backend %d given twice", b);
        return -1;
    }
    const char *ep = eq + 1, *comma = strchr(ep, ',');
    k->src[b].pub = comma ? strndup(ep, (size_t)(comma - ep)) : strdup(ep);
    k->src[b].replay = comma ? strdup(comma + 1) : NULL;
    const char *eps[2] = {k->src[b].pub, k->src[b].replay};
    for (int i = 0; i < 2; i++)
        if (eps[i] && strncmp(eps[i], "tcp://", 6) && strncmp(eps[i], "ipc://", 6)) {
            srv_log(LOG_ERROR, "--kv-events '%s': '%s' is not a tcp:// or ipc:// endpoint", spec,
                    eps[i]);
            return -1;
        }
    return 0;
}

kvsub *kvsub_new(srv *s, int n, int *err)
{
    *err = 0;
    if (!s->cfg.n_kv_events)
        return NULL;
    *err = LLMC_EINVAL;
    if (n < 2) {
        srv_log(LOG_ERROR, "--kv-events needs several --upstream (it chooses between them)");
        return NULL;
    }
    kvsub *k = calloc(1, sizeof *k);
    if (!k) {
        *err = LLMC_ENOMEM;
        return NULL;
    }
    k->s = s;
    k->n = n;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    for (int i = 0; i < n; i++) {
        k->src[i].expect = -1;
        const char *u = s->cfg.upstream[i];
        const char *scheme = strstr(u, "://");
        const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
        k->origin[i] = slash ? strndup(u, (size_t)(slash - u)) : strdup(u);
    }
    for (int i = 0; i < s->cfg.n_kv_events; i++)
        if (kvsub_parse(k, s->cfg.kv_events[i])) {
            kvsub_free(k);
            return NULL;
        }
    llmc_kvindex_params ip = llmc_kvindex_default_params();
    if (s->cfg.kv_index_max_blocks > 0)
        ip.max_entries = (size_t)s->cfg.kv_index_max_blocks;
    k->cap_cache = s->cfg.kv_tokenize_cache > 0 ? (size_t)s->cfg.kv_tokenize_cache : 4096;
    k->cache = calloc(k->cap_cache, sizeof *k->cache);
    k->idx = llmc_kvindex_new(&ip, n, err);
    k->zctx = zmq_ctx_new();
    if (!k->idx || !k->cache || !k->zctx) {
        *err = LLMC_ENOMEM;
        kvsub_free(k);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        kvsrc *r = &k->src[i];
        if (!r->pub)
            continue;
        int linger = 0;
        r->sub = zmq_socket(k->zctx, ZMQ_SUB);
        if (!r->sub || zmq_connect(r->sub, r->pub) != 0) {
            srv_log(LOG_ERROR, "--kv-events: cannot connect to %s: %s", r->pub,
                    zmq_strerror(errno));
            kvsub_free(k);
            return NULL;
        }
        zmq_setsockopt(r->sub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(r->sub, ZMQ_SUBSCRIBE, "", 0);
        if (r->replay) {
            r->dealer = zmq_socket(k->zctx, ZMQ_DEALER);
            if (!r->dealer || zmq_connect(r->dealer, r->replay) != 0) {
                srv_log(LOG_ERROR, "--kv-events: cannot connect to %s: %s", r->replay,
                        zmq_strerror(errno));
                kvsub_free(k);
                return NULL;
            }
            zmq_setsockopt(r->dealer, ZMQ_LINGER, &linger, sizeof linger);
        }
    }
    *err = 0;
    return k;
}

/* ---- subscriber thread -------------------------------------------------------- */

/* Receive the rest of a multipart message into up to 4 frames. Returns the
 * number of frames (more are drained and make it 5). */
static int kvsub_recv(void *sock, zmq_msg_t *m, int flags)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sock, n ? 0 : flags) < 0) {
            zmq_msg_close(&x);
            return n ? n : -1;
        }
        more = zmq_msg_more(&x);
        if (n < 4)
            m[n] = x;
        else
            zmq_msg_close(&x);
        n++;
    }
    return n > 4 ? 5 : n;
}

static void kvsub_close(zmq_msg_t *m, int n)
{
    for (int i = 0; i < n && i < 4; i++)
        zmq_msg_close(&m[i]);
}

static long long kvsub_seq(zmq_msg_t *f)
{
    if (zmq_msg_size(f) != 8)
        return -2;
    const uint8_t *b = zmq_msg_data(f);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v == UINT64_MAX ? -1 : (long long)(v & 0x7fffffffffffffffull);
}

/* Ask backend b's replay socket for batches from..upto-1 and apply them.
 * Returns 0 when every one of them arrived in order, -1 otherwise. */
static int kvsub_replay(kvsub *k, int b, long long from, long long upto)
{
    kvsrc *r = &k->src[b];
    if (!r->dealer)
        return -1;
    uint8_t q[8];
    for (int i = 0; i < 8; i++)
        q[i] = (uint8_t)((uint64_t)from >> (56 - 8 * i));
    if (zmq_send(r->dealer, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(r->dealer, q, 8, 0) < 0)
        return -1;
    long long want = from;
    double t0 = kvsub_now();
    for (;;) {
        zmq_pollitem_t it = {r->dealer, 0, ZMQ_POLLIN, 0};
        long left = KVSUB_REPLAY_MS - (long)((kvsub_now() - t0) * 1000);
        if (left <= 0 || zmq_poll(&it, 1, left) <= 0)
            return -1; /* no (complete) answer: a late one is drained next time */
        zmq_msg_t m[4];
        int n = kvsub_recv(r->dealer, m, ZMQ_DONTWAIT);
        if (n < 0)
            return -1;
        if (n != 3) { /* ["", seq, payload] */
            kvsub_close(m, n);
            continue;
        }
        long long seq = kvsub_seq(&m[1]);
        if (seq == -1) {
            kvsub_close(m, n);
            return want >= upto ? 0 : -1;
        }
        if (seq >= 0 && seq == want && seq < upto) {
            llmc_kvindex_apply(k->idx, b, zmq_msg_data(&m[2]), zmq_msg_size(&m[2]));
            r->replayed++;
            want++;
        } else if (seq >= 0 && seq < upto && seq > want) {
            want = -1000; /* the buffer no longer has want: cannot be filled */
        }
        kvsub_close(m, n);
    }
}

static void kvsub_drain_dealer(kvsrc *r)
{
    zmq_msg_t m[4];
    int n;
    while (r->dealer && (n = kvsub_recv(r->dealer, m, ZMQ_DONTWAIT)) > 0)
        kvsub_close(m, n);
}

static void kvsub_message(kvsub *k, int b)
{
    kvsrc *r = &k->src[b];
    zmq_msg_t m[4];
    int n = kvsub_recv(r->sub, m, ZMQ_DONTWAIT);
    if (n < 0)
        return;
    long long seq = n == 3 ? kvsub_seq(&m[1]) : -2;
    if (seq < 0) {                            /* not [topic, seq, payload] */
        llmc_kvindex_apply(k->idx, b, "", 0); /* counted as malformed */
        kvsub_close(m, n);
        return;
    }
    r->messages++;
    if (r->expect >= 0 && seq < r->expect) { /* the engine restarted */
        r->restarts++;
        llmc_kvindex_clear_backend(k->idx, b);
        r->expect = -1;
    }
    if (r->expect < 0 && seq > 0) { /* joined late: learn the history */
        kvsub_drain_dealer(r);
        if (kvsub_replay(k, b, 0, seq))
            r->resyncs++; /* what was stored before stays unknown until evicted */
    } else if (r->expect >= 0 && seq > r->expect) {
        r->gaps++;
        kvsub_drain_dealer(r);
        if (kvsub_replay(k, b, r->expect, seq)) {
            r->resyncs++;
            llmc_kvindex_clear_backend(k->idx, b);
        }
    }
    llmc_kvindex_apply(k->idx, b, zmq_msg_data(&m[2]), zmq_msg_size(&m[2]));
    r->expect = seq + 1;
    kvsub_close(m, n);
}

static void *kvsub_sub_main(void *arg)
{
    kvsub *k = arg;
    zmq_pollitem_t it[SRV_MAX_UPSTREAMS];
    int who[SRV_MAX_UPSTREAMS], n = 0;
    for (int i = 0; i < k->n; i++)
        if (k->src[i].sub) {
            it[n] = (zmq_pollitem_t){k->src[i].sub, 0, ZMQ_POLLIN, 0};
            who[n++] = i;
        }
    while (!atomic_load(&k->stop)) {
        if (zmq_poll(it, n, 100) <= 0)
            continue;
        for (int j = 0; j < n; j++)
            if (it[j].revents & ZMQ_POLLIN)
                kvsub_message(k, who[j]);
    }
    return NULL;
}

/* ---- tokenizer thread and the token cache -------------------------------------- */

/* POST body (a /tokenize request) to backend b; the tokens (malloc'd) in
 * *out and their count, or -1. */
static long kvsub_tokenize(kvsub *k, CURL *c, int b, const char *body, int32_t **out)
{
    char url[1200];
    snprintf(url, sizeof url, "%s/tokenize", k->origin[b]);
    char *resp = NULL;
    long code = 0;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, upstream_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    long n = -1;
    json_t *j = rc == CURLE_OK && code == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
    json_t *t = j ? json_object_get(j, "tokens") : NULL;
    if (json_is_array(t) && json_array_size(t) > 0) {
        size_t m = json_array_size(t);
        *out = malloc(m * sizeof **out);
        if (*out) {
            n = (long)m;
            for (size_t i = 0; i < m; i++) {
                json_t *v = json_array_get(t, i);
                if (!json_is_integer(v)) {
                    n = -1;
                    break;
                }
                (*out)[i] = (int32_t)json_integer_value(v);
            }
            if (n < 0) {
                free(*out);
                *out = NULL;
            }
        }
    }
    json_decref(j);
    free(resp);
    return n;
}

/* The cache key of a text (chat route keys hash apart from prompts). */
static uint64_t kvsub_key(const char *text, size_t len, int chat)
{
    return XXH3_64bits_withSeed(text, len, chat ? 0x63686174u : 0);
}

/* mu held: the cache entry for text, or NULL. */
static kvtok *kvsub_find(kvsub *k, uint64_t key, const char *text, size_t len, int chat)
{
    for (size_t i = 0; i < k->n_cache; i++) {
        kvtok *e = &k->cache[i];
        if (e->key == key && e->len == len && e->chat == chat && !memcmp(e->text, text, len))
            return e;
    }
    return NULL;
}

/* mu held: keep text's tokens (owning both), evicting the least recently used. */
static void kvsub_put(kvsub *k, char *text, size_t len, int chat, int32_t *tokens, size_t n)
{
    uint64_t key = kvsub_key(text, len, chat);
    kvtok *e = kvsub_find(k, key, text, len, chat);
    if (e) {
        free(text);
        free(tokens);
        return;
    }
    if (k->n_cache < k->cap_cache) {
        e = &k->cache[k->n_cache++];
    } else {
        e = &k->cache[0];
        for (size_t i = 1; i < k->n_cache; i++)
            if (k->cache[i].used < e->used)
                e = &k->cache[i];
        free(e->text);
        free(e->tokens);
    }
    *e = (kvtok){key, text, len, chat, tokens, n, ++k->clock};
}

static void *kvsub_tok_main(void *arg)
{
    kvsub *k = arg;
    CURL *c = curl_easy_init();
    int rr = 0;
    pthread_mutex_lock(&k->mu);
    while (!atomic_load(&k->stop)) {
        if (!k->qn) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&k->cv, &k->mu, &ts);
            continue;
        }
        char *text = k->queue[k->qhead], *req = k->qreq[k->qhead];
        size_t len = k->qlen[k->qhead];
        int chat = k->qchat[k->qhead];
        k->busy_key = k->qkey[k->qhead];
        k->busy = 1;
        k->qhead = (k->qhead + 1) % KVSUB_QUEUE;
        k->qn--;
        pthread_mutex_unlock(&k->mu);
        int32_t *tok = NULL;
        long n = -1;
        double t0 = kvsub_now();
        for (int a = 0; a < k->n && n < 0 && c; a++) /* any backend: they serve one model */
            n = kvsub_tokenize(k, c, (rr + a) % k->n, req, &tok);
        free(req);
        rr = (rr + 1) % k->n;
        double dt = kvsub_now() - t0;
        pthread_mutex_lock(&k->mu);
        k->tok_calls++;
        k->tok_sec += dt;
        if (dt > k->tok_max)
            k->tok_max = dt;
        if (chat && n > 0) /* the whole prompt, as the engine renders it */
            kvsub_put(k, text, len, 1, tok, (size_t)n);
        else if (!chat && n > 1)
            kvsub_put(k, text, len, 0, tok,
                      (size_t)n - 1); /* the last token may straddle the cut */
        else {
            k->tok_errors += n < 0;
            free(text);
            free(tok);
        }
        k->busy = 0;
        /* under mu: a waiter's kvsub_unwait (before it frees its event)
         * either ran already or waits for this */
        for (size_t i = 0; i < k->n_waiters; i++)
            event_active(k->waiters[i], EV_READ, 0);
        k->n_waiters = 0;
    }
    pthread_mutex_unlock(&k->mu);
    curl_easy_cleanup(c);
    return NULL;
}

int kvsub_start(kvsub *k)
{
    if (!k)
        return 0;
    if (pthread_create(&k->sub_th, NULL, kvsub_sub_main, k))
        return -1;
    if (pthread_create(&k->tok_th, NULL, kvsub_tok_main, k)) {
        atomic_store(&k->stop, 1);
        pthread_join(k->sub_th, NULL);
        return -1;
    }
    k->started = 1;
    return 0;
}

/* ---- the loops' side ------------------------------------------------------------- */

/* Where the shared part of a prompt ends: before its last line that starts
 * a user turn ("User:" / "user:"), else before its last newline, else the
 * whole prompt. */
static size_t kvsub_cut(const char *key, size_t len)
{
    size_t last_nl = 0;
    for (size_t i = len; i-- > 1;) {
        if (key[i - 1] != '\n')
            continue;
        if (!last_nl)
            last_nl = i - 1;
        if (len - i >= 5 && !strncasecmp(key + i, "user:", 5))
            return i - 1;
    }
    return last_nl ? last_nl : len;
}

/* What to tokenize for in; 0, or -1 when there is nothing (no prompt). */
static int kvsub_what(const route_in *in, kvwhat *w)
{
    if (!in || !in->key || !in->len)
        return -1;
    w->text = in->key;
    w->chat = in->chat;
    w->chat_len = in->chat ? in->chat_len : 0;
    w->len = in->chat ? in->len : kvsub_cut(in->key, in->len);
    w->hk = kvsub_key(w->text, w->len, in->chat != NULL);
    return 0;
}

/* The /tokenize request for w (malloc'd JSON), or NULL: {"prompt"} for a
 * completion; for a chat request its messages (and model), rendered by
 * the backend with the generation prompt, as its chat endpoint does. */
static char *kvsub_request(const kvwhat *w)
{
    json_t *req = NULL;
    if (!w->chat) {
        req = json_pack("{s:s%}", "prompt", w->text, w->len);
    } else {
        json_t *body = json_loadb(w->chat, w->chat_len, JSON_ALLOW_NUL, NULL);
        json_t *msgs = body ? json_object_get(body, "messages") : NULL;
        json_t *model = body ? json_object_get(body, "model") : NULL;
        if (json_is_array(msgs)) {
            req = json_pack("{s:O,s:b}", "messages", msgs, "add_generation_prompt", 1);
            if (req && json_is_string(model))
                json_object_set(req, "model", model);
        }
        json_decref(body);
    }
    char *s = req ? json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(req);
    return s;
}

/* mu held: queue w for the tokenizer thread unless it is queued or being
 * tokenized already. 1 when it is (now or already) on its way, 0 when the
 * queue is full, the request has no messages, or memory ran out. */
static int kvsub_enqueue(kvsub *k, const kvwhat *w)
{
    if (k->busy && k->busy_key == w->hk)
        return 1;
    for (int i = 0; i < k->qn; i++)
        if (k->qkey[(k->qhead + i) % KVSUB_QUEUE] == w->hk)
            return 1;
    if (k->qn >= KVSUB_QUEUE) {
        k->queue_full++;
        return 0;
    }
    char *t = malloc(w->len + 1), *req = kvsub_request(w);
    if (!t || !req) {
        free(t);
        free(req);
        return 0;
    }
    memcpy(t, w->text, w->len);
    t[w->len] = 0;
    int at = (k->qhead + k->qn) % KVSUB_QUEUE;
    k->queue[at] = t;
    k->qlen[at] = w->len;
    k->qkey[at] = w->hk;
    k->qreq[at] = req;
    k->qchat[at] = w->chat != NULL;
    k->qn++;
    k->queued++;
    pthread_cond_signal(&k->cv);
    return 1;
}

/* Every backend publishes events (with one that does not, the tree
 * decides). */
static int kvsub_all_publish(const kvsub *k)
{
    for (int i = 0; i < k->n; i++)
        if (!k->src[i].pub)
            return 0;
    return 1;
}

/* Whether the events can answer for any prompt: every backend publishes
 * and a block size is known. */
static int kvsub_usable(kvsub *k)
{
    return kvsub_all_publish(k) && llmc_kvindex_block_size(k->idx) > 0;
}

int kvsub_pending(kvsub *k, const route_in *in)
{
    kvwhat w;
    if (!k || kvsub_what(in, &w) || !kvsub_usable(k))
        return 0;
    pthread_mutex_lock(&k->mu);
    int r = !kvsub_find(k, w.hk, w.text, w.len, w.chat != NULL) && kvsub_enqueue(k, &w);
    pthread_mutex_unlock(&k->mu);
    return r;
}

int kvsub_wait(kvsub *k, struct event *ev)
{
    pthread_mutex_lock(&k->mu);
    int rc = 0;
    if (k->n_waiters == k->cap_waiters) {
        size_t nc = k->cap_waiters ? k->cap_waiters * 2 : 16;
        struct event **nw = realloc(k->waiters, nc * sizeof *nw);
        if (nw) {
            k->waiters = nw;
            k->cap_waiters = nc;
        } else {
            rc = -1;
        }
    }
    if (!rc)
        k->waiters[k->n_waiters++] = ev;
    pthread_mutex_unlock(&k->mu);
    return rc;
}

void kvsub_unwait(kvsub *k, struct event *ev, int ended)
{
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->n_waiters; i++)
        if (k->waiters[i] == ev) {
            k->waiters[i] = k->waiters[--k->n_waiters];
            break;
        }
    k->waits += ended != 0;
    k->wait_timeouts += ended == 2;
    pthread_mutex_unlock(&k->mu);
}

int kvsub_held(kvsub *k, const route_in *in, llmc_prefix_held *h)
{
    kvwhat w;
    if (!k || kvsub_what(in, &w) || !kvsub_all_publish(k))
        return -1;
    int bs = llmc_kvindex_block_size(k->idx);
    pthread_mutex_lock(&k->mu);
    k->lookups++;
    kvtok *e = kvsub_find(k, w.hk, w.text, w.len, w.chat != NULL);
    if (!e) {
        k->held_unknown++;
        kvsub_enqueue(k, &w);
        pthread_mutex_unlock(&k->mu);
        return -1;
    }
    k->cache_hits++;
    e->used = ++k->clock;
    if (bs <= 0) { /* no BlockStored seen yet: the block size is unknown */
        k->held_unknown++;
        pthread_mutex_unlock(&k->mu);
        return -1;
    }
    double t0 = kvsub_now();
    size_t nb = e->n / (size_t)bs;
    if (nb > KVSUB_MAX_BLOCKS)
        nb = KVSUB_MAX_BLOCKS;
    uint8_t *hs = nb ? malloc(nb * LLMC_KV_HASH_LEN) : NULL;
    uint64_t *h64 = nb ? malloc(nb * sizeof *h64) : NULL;
    long got = hs && h64 ? llmc_kv_hash_chain(e->tokens, e->n, bs, NULL, hs, nb) : -1;
    pthread_mutex_unlock(&k->mu);
    int rc = -1;
    if (got > 0) {
        for (long i = 0; i < got; i++)
            h64[i] = llmc_kvindex_hash64(hs + i * LLMC_KV_HASH_LEN);
        size_t best =
            llmc_kvindex_match_ex(k->idx, h64, (size_t)got, h->held, &h->last, &h->last_depth);
        if (h->total || h->homed) { /* the index's counters: only for a rule that uses them */
            llmc_kvindex_stats st;
            llmc_kvindex_get_stats(k->idx, &st);
            for (int i = 0; h->total && i < k->n; i++)
                h->total[i] = st.held[i];
            for (int i = 0; h->homed && i < k->n; i++)
                h->homed[i] = st.homed[i];
        }
        h->n_blocks = (size_t)got;
        h->tie = h64[best ? best - 1 : 0];
        rc = (int)got;
    }
    free(hs);
    free(h64);
    pthread_mutex_lock(&k->mu);
    k->hash_sec += kvsub_now() - t0;
    if (rc > 0)
        k->held_known++;
    else
        k->held_unknown++;
    pthread_mutex_unlock(&k->mu);
    return rc;
}

void kvsub_forget(kvsub *k, int b)
{
    if (k && b >= 0 && b < k->n)
        llmc_kvindex_clear_backend(k->idx, b);
}

void kvsub_write_json(kvsub *k, FILE *f)
{
    if (!k)
        return;
    llmc_kvindex_stats st;
    llmc_kvindex_get_stats(k->idx, &st);
    pthread_mutex_lock(&k->mu);
    fprintf(f,
            ",\"kv_events\":{\"batches\":%llu,\"events\":%llu,\"blocks_stored\":%llu,"
            "\"blocks_removed\":%llu,\"rehashed\":%llu,\"unchained\":%llu,\"cleared\":%llu,"
            "\"malformed\":%llu,\"index_entries\":%zu,"
            "\"index_bytes\":%zu,\"index_dropped\":%llu,\"routed_on_events\":%llu,"
            "\"fallback\":%llu,\"tokenize\":{\"calls\":%llu,\"errors\":%llu,\"mean_ms\":%.3f,"
            "\"max_ms\":%.3f,\"cache_entries\":%zu,\"cache_hits\":%llu,\"lookups\":%llu,"
            "\"queue_full\":%llu,\"waits\":%llu,\"wait_timeouts\":%llu},"
            "\"hash_match_mean_us\":%.2f,\"index_remembered\":%zu,\"backends\":[",
            (unsigned long long)st.batches, (unsigned long long)st.events,
            (unsigned long long)st.stored, (unsigned long long)st.removed,
            (unsigned long long)st.rehashed, (unsigned long long)st.unchained,
            (unsigned long long)st.cleared, (unsigned long long)st.malformed, st.entries, st.bytes,
            (unsigned long long)st.dropped, (unsigned long long)k->held_known,
            (unsigned long long)k->held_unknown, (unsigned long long)k->tok_calls,
            (unsigned long long)k->tok_errors,
            k->tok_calls ? 1000.0 * k->tok_sec / (double)k->tok_calls : 0.0, 1000.0 * k->tok_max,
            k->n_cache, (unsigned long long)k->cache_hits, (unsigned long long)k->lookups,
            (unsigned long long)k->queue_full, (unsigned long long)k->waits,
            (unsigned long long)k->wait_timeouts,
            k->held_known ? 1e6 * k->hash_sec / (double)k->held_known : 0.0, st.remembered);
    pthread_mutex_unlock(&k->mu);
    for (int i = 0; i < k->n; i++) {
        const kvsrc *r = &k->src[i]; /* counters written by the subscriber: a snapshot */
        fprintf(f,
                "%s{\"endpoint\":\"%s\",\"blocks\":%zu,\"messages\":%llu,\"gaps\":%llu,"
                "\"replayed\":%llu,\"resyncs\":%llu,\"restarts\":%llu}",
                i ? "," : "", r->pub ? r->pub : "", st.held[i],
                (unsigned long long)__atomic_load_n(&r->messages, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&r->gaps, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&r->replayed, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&r->resyncs, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&r->restarts, __ATOMIC_RELAXED));
    }
    fputs("]}", f);
}

void kvsub_write_prometheus(kvsub *k, FILE *f)
{
    if (!k)
        return;
    llmc_kvindex_stats st;
    llmc_kvindex_get_stats(k->idx, &st);
    fputs("# HELP llmcached_kv_index_blocks Blocks each backend holds, from its KV events.\n"
          "# TYPE llmcached_kv_index_blocks gauge\n",
          f);
    for (int i = 0; i < k->n; i++)
        fprintf(f, "llmcached_kv_index_blocks{backend=\"%s\"} %zu\n", k->s->cfg.upstream[i],
                st.held[i]);
    pthread_mutex_lock(&k->mu);
    fprintf(f,
            "# HELP llmcached_kv_index_bytes Memory of the KV event index.\n"
            "# TYPE llmcached_kv_index_bytes gauge\nllmcached_kv_index_bytes %zu\n"
            "# HELP llmcached_kv_events_batches_total KV event batches applied.\n"
            "# TYPE llmcached_kv_events_batches_total counter\n"
            "llmcached_kv_events_batches_total %llu\n"
            "# HELP llmcached_kv_route_total Prefix routes decided on KV events (events) or by "
            "the approximate tree (fallback).\n"
            "# TYPE llmcached_kv_route_total counter\n"
            "llmcached_kv_route_total{by=\"events\"} %llu\n"
            "llmcached_kv_route_total{by=\"fallback\"} %llu\n"
            "# HELP llmcached_kv_tokenize_seconds_total Time in backends' /tokenize.\n"
            "# TYPE llmcached_kv_tokenize_seconds_total counter\n"
            "llmcached_kv_tokenize_seconds_total %.6f\n"
            "llmcached_kv_tokenize_calls_total %llu\n",
            st.bytes, (unsigned long long)st.batches, (unsigned long long)k->held_known,
            (unsigned long long)k->held_unknown, k->tok_sec, (unsigned long long)k->tok_calls);
    pthread_mutex_unlock(&k->mu);
}

void kvsub_free(kvsub *k)
{
    if (!k)
        return;
    if (k->started) {
        atomic_store(&k->stop, 1);
        pthread_mutex_lock(&k->mu);
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->sub_th, NULL);
        pthread_join(k->tok_th, NULL);
    }
    for (int i = 0; i < SRV_MAX_UPSTREAMS; i++) {
        kvsrc *r = &k->src[i];
        if (r->sub)
            zmq_close(r->sub);
        if (r->dealer)
            zmq_close(r->dealer);
        free(r->pub);
        free(r->replay);
        free(k->origin[i]);
    }
    if (k->zctx)
        zmq_ctx_term(k->zctx);
    for (size_t i = 0; i < k->n_cache; i++) {
        free(k->cache[i].text);
        free(k->cache[i].tokens);
    }
    free(k->cache);
    free(k->waiters);
    for (int i = 0; i < k->qn; i++) {
        free(k->queue[(k->qhead + i) % KVSUB_QUEUE]);
        free(k->qreq[(k->qhead + i) % KVSUB_QUEUE]);
    }
    llmc_kvindex_free(k->idx);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
