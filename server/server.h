/*
 * server.h — the daemon's types, its layers, and who owns what.
 *
 * Layers (a module calls only into its own layer's lower neighbours or
 * below, never up; what must come back up is a callback it was given —
 * nginx's upstream module knows nothing of its users):
 *
 *   top          main.c (start, run, stop)   http.c (the dispatcher)
 *   request path admin.c    fetch.c → sem.c → flight.c (fetch hands an
 *                exact miss on to sem or a flight; sem hands a miss on to
 *                a flight; flight never calls sem, sem never calls fetch)
 *   below it     pool.c → kvsub.c   verify.c   memo.c  demo.c
 *                upstream.c (curl on the loops, upstream_headers, upstream_sink)
 *   ground       reply.c (common headers, errors, serving an entry)
 *                log.c (srv_log, srv_now)   config.c (plain data)
 *                notify.c (sd_notify, for main)
 *   library      libllmcache (include/llmcache.h): llmc_cache holds the
 *                tiers, the store backend, persistence and the policy
 *
 * The two edges that used to point up are callbacks: upstream.c hands a
 * finished transfer back through the upstream_xfer its owner put in
 * CURLOPT_PRIVATE (flight.c's flight_xfer_done), and reply_entry tells
 * verify.c of a hit through srv.on_hit (verify_start installs it). The
 * declarations below follow the layers, ground first. To check: every
 * call from a file goes to its own prefix, a lower layer, or the library
 * (grep -oE "\b(http|flight|sem|...)_[a-z_]+\(" server/X.c).
 *
 * Threads (the one place this is written down):
 *   - The main thread reads the configuration, opens the store and its
 *     SQLite file, starts the loops, then waits for SIGINT/SIGTERM and shuts
 *     everything down in reverse order.
 *   - N loop threads (srv_loop), each with its own libevent event_base, its
 *     own evhttp on its own SO_REUSEPORT listening socket (the kernel spreads
 *     connections), and its own libcurl multi handle driven by the same
 *     event_base through the multi-socket API. A client request, and the
 *     upstream transfer it starts, live on one loop from start to end. No
 *     thread per request, no blocking call on a loop (except the SQLite
 *     commit in persist-sync mode, which is what that mode asks for).
 *   - The persistence writer thread (libllmcache's persist.c).
 *   - Shared between loops: the store (its own lock), the metrics (atomics)
 *     and the flight table (srv.flights_mu). A flight — one upstream call
 *     that N identical requests wait on — is driven by the loop that started
 *     it; subscribers on other loops are woken with event_active() on their
 *     own event (libevent is initialised with pthreads locking), and only
 *     ever touch their own evhttp request. Flight fields are guarded by the
 *     flight's mutex; refs keep it alive until the last subscriber and the
 *     transfer have let go.
 *   - There are no globals but the one `srv` pointer the signal handler uses.
 */
#ifndef SERVER_H
#define SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "llmcache.h"

#define SRV_MAX_UPSTREAMS 16

typedef struct srv_config {
    char *config_file;
    char *listen;
    char *upstream[SRV_MAX_UPSTREAMS];
    int n_upstream;
    char *upstream_key;
    char *data_dir;
    long long memory;
    long long ttl;
    long long connect_timeout_ms;
    long long upstream_timeout_ms;
    long long max_body;
    char *admin_token;
    long long threads;
    int persist;
    int persist_sync;
    long long flush_interval_ms;
    char *namespace_header;
    char *shared_namespaces; /* comma-separated */
    int scope_user;
    llmc_policy_params policy; /* "policy.KEY value" lines and --policy.KEY flags */
    long long demo_delay_ms;
    char *log_level;
    char *prices; /* "model=in/out,model=in/out" per million tokens */
    int semantic;
    double semantic_threshold;    /* < 0: the library's measured default */
    char *semantic_thresholds;    /* "model=0.9,..." */
    char *semantic_lexicon;       /* WordNet directory; "" none */
    char *semantic_query;         /* last-user, user-turns or conversation */
    unsigned semantic_query_flag; /* its LLMC_CANON_QUERY_* bit (config_load) */
    char *embed_backend, *embed_model_path, *embed_url, *embed_model, *embed_key;
    char *embed_query_prefix;     /* NULL: the model's own prompt */
    long long embed_threads;      /* 0: one per CPU */
    long long semantic_budget_ms; /* queueing a lookup may cost before it is skipped */
    char *embed_precision;        /* use encoder: auto, int8, fp16 or fp32 */
    char *route_policy;
    long long route_balance_abs;
    double route_balance_rel;
    long long health_interval_ms;
    long long memo_memory;
    long long shutdown_timeout_ms;
    double verify_rate;          /* share of hits re-asked upstream (verify.c); 0 off */
    double verify_similarity;    /* answer cosine that counts as the same answer */
    long long max_connections;   /* conn.c: over it, 503 */
    long long max_header_size;   /* bytes of a request's header section; 431 beyond */
    long long max_headers;       /* header lines; 431 beyond */
    long long header_timeout_ms; /* first byte to end of headers; 408 beyond */
    long long idle_timeout_ms;   /* silence with no request being answered */
    char *tenant_from;           /* authorization, header:NAME or none */
    char *anonymous;             /* share, no-cache or reject */
    char *forward_headers;       /* extra client headers forwarded upstream */
    char *store;                 /* "sqlite", redis://... or redis-cluster://... */
    char *store_password, *store_prefix;
    long long store_timeout_ms, store_near_ttl;
    int store_coalesce;          /* fleet lock before a storable miss goes upstream */
    long long store_lock_ttl_ms; /* its lifetime = the longest wait for another's answer */
    /* KV events (kvsub.c): "BACKEND=PUB[,REPLAY]" per backend, repeatable */
    char *kv_events[SRV_MAX_UPSTREAMS];
    int n_kv_events;
    long long kv_index_max_blocks; /* distinct block hashes kept by the index */
    long long kv_tokenize_cache;   /* prompt prefixes whose tokens are kept */
    char *kv_new_prefix;           /* "tree" or "smallest": where a prefix nobody holds goes */
    long long kv_tokenize_wait_ms; /* a new prefix waits this long for its tokens (0: never) */
} srv_config;

/* ==== ground: config.c, log.c, reply.c ================================ */

/* config.c */
void config_defaults(srv_config *c);
/* Parse argv (and the file and environment); returns 0 to run, 1 when it
 * printed help/version and the daemon should exit 0, -1 on error (message
 * printed). */
int config_load(srv_config *c, int argc, char **argv);
void config_free(srv_config *c);
void config_print_help(FILE *f);
/* 1 when name is in list, a comma-separated option value ("a, b,c").
 * icase: names compare case-insensitively and an item ending in '*'
 * matches every name it prefixes (header names); otherwise exact. */
int config_list_has(const char *list, const char *name, int icase);
/* The embedder parameters the configuration asks for (strings borrowed
 * from c). */
void config_embed_params(const srv_config *c, llmc_embed_params *ep);
/* The man page llmcached(8) in roff, from the same option table. */
void config_print_man(FILE *f);
/* A configuration file with every option commented out at its value in c. */
void config_print_conf(FILE *f, const srv_config *c);

/* notify.c: systemd's Type=notify (no-ops without NOTIFY_SOCKET) */
/* READY=1 (and the port in STATUS=) once the listeners are up. */
void notify_ready(int port);
/* STOPPING=1 when the drain begins. */
void notify_stopping(void);

/* log.c — the log and the clock */
enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_log_set_level(const char *name);
double srv_now(void); /* monotonic seconds */

typedef struct srv srv;
typedef struct srv_loop srv_loop;
typedef struct flight flight;
typedef struct sub sub;
typedef struct pool pool;
typedef struct memo memo;

/* What a remembered request needs to be served from the store. */
typedef struct {
    uint8_t key[LLMC_KEY_LEN];
    int client_stream;
    long max_age_s; /* -1: any age */
} memo_val;

struct srv_loop {
    srv *s;
    int idx;
    pthread_t th;
    struct event_base *base;
    struct evhttp *http;
    int listen_fd;
    struct evhttp_bound_socket *listener;
    struct event *drain_ev; /* shutdown: wait for requests in flight */
    double drain_deadline;
    CURLM *multi;
    struct event *curl_timer;
    struct event *stop_ev;
    memo *memo;       /* raw request → exact key (memo.c) */
    void *cache_loop; /* the store backend's handle for this loop (llmc_cache_loop_attach):
                         what llmc_cache_fetch completes on; NULL for memory/SQLite */
    char *raw;        /* scratch for a request's raw inputs */
    size_t rawcap;
    struct conn *conns;       /* this loop's client connections (conn.c) */
    struct event *conn_sweep; /* closes the slow and the idle */
    /* demo upstream (loop 0 only) */
    struct evhttp *demo_http;
};

struct srv {
    srv_config cfg;
    srv_loop *loops;
    int nloops;
    llmc_cache *cache;         /* store, semantic index, persistence, policy */
    llmc_redis_backend *redis; /* --store redis://...: owned by cache; NULL otherwise */
    llmc_metrics *metrics;
    struct sem_pool *semq; /* NULL: semantic tier off */
    struct verify *verify; /* NULL: no re-asks (verify.c) */
    /* Called by reply_entry as each hit is served, before the reply goes
     * out (it may read the request's headers); NULL: none. verify.c
     * installs verify_sample: a callback, so reply.c calls nothing above. */
    void (*on_hit)(srv *s, struct evhttp_request *req, const llmc_entry_info *e, double similarity,
                   const char *body, size_t len);
    pool *upstreams;
    pthread_mutex_t flights_mu;
    flight **flights; /* open hash table on key */
    size_t nflights_cap, nflights;
    char upstream_base[1024]; /* effective upstream base URL (no trailing /) */
    int upstream_has_v1;
    int demo; /* serving from the built-in demo upstream */
    int demo_port;
    time_t started;
    atomic_uint_fast64_t requests, coalesced, upstream_calls;
    atomic_uint_fast64_t store_unavailable; /* lookups the shared store could not answer */
    /* coalescing across the fleet (fetch.c): locks taken, requests that
     * waited for another instance, of those served its answer / gone
     * upstream after the wait bound */
    atomic_uint_fast64_t fleet_locks, fleet_waits, fleet_waits_served, fleet_waits_timed_out;
    atomic_int active; /* client requests being answered (subs, semantic jobs) */
};

/* reply.c — answering a client */
/* A connection closed while *reqp was still being answered: forget the
 * request (sets *reqp to NULL), freeing it when libevent left it to us. */
void reply_request_lost(struct evhttp_request **reqp);
/* The request's answerer lets go of it: its connection's close callback no
 * longer points at the answerer (req may be NULL, or already detached). */
void reply_unwatch(struct evhttp_request *req);
void reply_error(struct evhttp_request *req, int status, const char *type, const char *msg);
void reply_common_headers(srv *s, struct evhttp_request *req);
/* Serve entry e to req as a hit (semantic when similarity is not NAN);
 * body/len are the client's request, for s->on_hit. Returns 0, or -1 when
 * it cannot be rendered in the mode asked (the caller then goes upstream). */
int reply_entry(srv *s, struct evhttp_request *req, const llmc_entry_info *e, int client_stream,
                double similarity, double t0, const char *body, size_t len);

/* ==== below the request path: upstream.c, pool.c, kvsub.c, memo.c, verify.c, demo.c ==== */

/* upstream.c — curl multi on a loop */
int upstream_loop_init(srv_loop *l);
void upstream_loop_free(srv_loop *l);
/* A transfer on a loop's multi handle carries one of these as
 * CURLOPT_PRIVATE; when curl finishes it, upstream.c removes the handle
 * from the multi and calls done(x, result) on the loop. */
typedef struct upstream_xfer upstream_xfer;
struct upstream_xfer {
    void (*done)(upstream_xfer *x, CURLcode rc);
};
/* The headers of req that go upstream (hop-by-hop, x-llm-cache-*, the
 * namespace header dropped; Authorization replaced by --upstream-key when
 * set). plain_json: for a request the daemon makes itself, without the
 * client's Accept and Content-Type, with Content-Type: application/json. */
struct curl_slist *upstream_headers(srv *s, struct evhttp_request *req, int plain_json);
/* libcurl write callback: appends to the NUL-terminated malloc'd string at
 * *(char **)arg (NULL to start), refusing bodies over 1 MiB. */
size_t upstream_sink(char *buf, size_t size, size_t n, void *arg);

/* memo.c — the exact-hit fast path, one per loop (not thread-safe) */
memo *memo_new(size_t max_bytes);
void memo_free(memo *m);
const memo_val *memo_get(memo *m, const char *raw, size_t len);
void memo_put(memo *m, const char *raw, size_t len, const memo_val *v);

/* What the router is told of a request's prompt (pool_pick, kvsub). */
typedef struct {
    const char *key; /* the prompt as text (the tree's key; canon.c), or NULL */
    size_t len;
    const char *chat; /* a chat request: its JSON body, whose messages the backend's
                         /tokenize renders with the chat template; NULL otherwise */
    size_t chat_len;
} route_in;

/* pool.c — upstream backends, routing, health, scraped engine metrics */
pool *pool_new(srv *s, int *err);
int pool_start(pool *p);
void pool_free(pool *p);
int pool_count(pool *p);
/* Backend for a request (in: its prompt, may be NULL), never `avoid` when
 * another is usable; records the choice for prefix affinity. */
int pool_pick(pool *p, const route_in *in, int avoid);
/* --kv-tokenize-wait: 1 when a request for key should wait before
 * pool_pick, for its prompt's tokens (kvsub_pending); pool_wait and
 * pool_unwait are kvsub_wait and kvsub_unwait. */
int pool_route_pending(pool *p, const route_in *in);
int pool_wait(pool *p, struct event *ev);
void pool_unwait(pool *p, struct event *ev, int ended);
char *pool_url(pool *p, int backend, const char *uri);
void pool_begin(pool *p, int backend);
void pool_end(pool *p, int backend, int refused);
void pool_write_json(pool *p, FILE *f);
void pool_write_prometheus(pool *p, FILE *f);

/* kvsub.c — the engines' KV events, for precise prefix routing (used by
 * pool.c only). NULL from kvsub_new with *err 0 when none is configured. */
typedef struct kvsub kvsub;
kvsub *kvsub_new(srv *s, int n_backends, int *err);
int kvsub_start(kvsub *k);
void kvsub_free(kvsub *k);
/* What the backends' events say of the prompt in: fills h
 * (h->held, and h->total and h->homed when not NULL, point to caller
 * arrays of one slot per backend, filled; the tie is the hash of the
 * deepest block some backend holds, else the
 * first block's: a tie-breaker all gateways share). Returns the number of
 * blocks of the prompt hashed (> 0) when known, -1 when not (no tokens for
 * this prompt yet: queued for tokenization; or no events yet). Never
 * blocks on I/O. */
int kvsub_held(kvsub *k, const route_in *in, llmc_prefix_held *h);
/* Whether a request for key should wait for its tokens before it is
 * routed: 1 when they are being fetched (queued now if they were not), 0
 * when they are known or cannot be (no events yet, a backend without
 * events, the queue full). Never blocks. */
int kvsub_pending(kvsub *k, const route_in *in);
/* ev (an event of the caller's loop) is activated once, from the
 * tokenizer thread, when the next tokenization ends (or fails). 0, or -1
 * when out of memory. kvsub_unwait takes it back, whether it fired or
 * not: call it before freeing ev. */
int kvsub_wait(kvsub *k, struct event *ev);
/* ended: 0 = the caller waits on (it calls kvsub_wait again), 1 = the wait
 * ended with the tokens there, 2 = it ended on the caller's timer. */
void kvsub_unwait(kvsub *k, struct event *ev, int ended);
/* Backend i restarted: forget what it held. */
void kvsub_forget(kvsub *k, int backend);
void kvsub_write_json(kvsub *k, FILE *f);
void kvsub_write_prometheus(kvsub *k, FILE *f);

/* verify.c — a sample of hits re-asked upstream and compared */
int verify_start(srv *s); /* installs s->on_hit */
void verify_stop(srv *s);
/* On a loop, as hit e is served to req (semantic at similarity, exact when
 * it is NAN): maybe queue a re-ask of body. Copies what it needs; never
 * blocks. */
void verify_sample(srv *s, struct evhttp_request *req, const llmc_entry_info *e, double similarity,
                   const char *body, size_t len);
void verify_write_json(srv *s, FILE *f);
void verify_write_prometheus(srv *s, FILE *f);

/* demo.c */
int demo_start(srv_loop *l);

/* ==== the request path: flight.c, sem.c, fetch.c, admin.c ============== */

/* flight.c */
int flights_init(srv *s);
void flights_free(srv *s);

/* What a cached request asks of the flight machinery. */
typedef struct {
    llmc_endpoint ep;  /* 0 for a plain proxied path */
    int cacheable;     /* store the answer when it qualifies */
    int shareable;     /* may join / be joined by identical requests */
    int client_stream; /* the client asked for SSE */
    uint8_t key[LLMC_KEY_LEN];
    uint64_t ns_hash, partition;
    char model[128];
    long long ttl;
    uint32_t entry_flags;
    llmc_policy_decision dec; /* the request's decision; the response check refines it */
    const char *cache_status; /* "MISS" or "BYPASS" (static) */
    const char *reason;       /* static, for X-LLM-Cache-Reason, or NULL */
    float *vec;               /* query vector to store with the answer (owned) */
    uint32_t dim;
    char *query;     /* query text to store with the answer (owned) */
    char *route_key; /* prompt text for the prefix router (owned), or NULL */
    size_t route_len;
    char reason_buf[112]; /* a formatted X-LLM-Cache-Reason; wins over reason */
    /* 1: this request holds the fleet's lock on key (fetch.c); whoever ends
     * the request's miss (the flight, or a path that drops fr) releases it
     * with llmc_cache_unlock */
    int fleet_lock;
    /* Called by the flight once the answer is stored (on the flight's loop),
     * with this request's key and query; NULL: nothing. How sem.c learns of
     * an answer whose semantic lookup it skipped, without flight calling up. */
    void (*on_stored)(srv *s, const uint8_t key[LLMC_KEY_LEN], const char *query);
} flight_req;

/* Start or join the upstream call for req on loop l. Takes over the reply
 * of req, and ownership of fr->vec, fr->query and fr->route_key. Body is the raw client
 * body (copied). */
void flight_submit(srv_loop *l, struct evhttp_request *req, const flight_req *fr, const char *body,
                   size_t len, double t0);

/* conn.c — client connections: caps, timeouts, libevent's errors as JSON */
int conn_init(srv *s);
void conn_free_all(void);
/* On loop l, after its evhttp exists: the per-connection filter, the
 * header limits and the sweep timer. */
int conn_loop_init(srv_loop *l);
void conn_loop_free(srv_loop *l);
/* First thing for every request http_handle gets: the connection's header
 * count restarts, and a request that must be refused whatever its path
 * (absolute-form target, Content-Length with Transfer-Encoding) is answered
 * 400. Returns 1 when it answered req. */
int conn_request_begin(struct evhttp_request *req);
/* Client connections open now, all loops. */
int conn_count(void);

/* sem.c — the semantic tier in the daemon: embedding off the loops */
int sem_start(srv *s);
void sem_stop(srv *s);
/* Embed and look up fr's query on a worker thread; then, on loop l, either
 * serve a semantic hit or flight_submit(). Takes ownership as
 * flight_submit does. */
void sem_submit(srv_loop *l, struct evhttp_request *req, flight_req *fr, const char *query,
                size_t qlen, double threshold, const char *body, size_t len, double t0);
double sem_threshold_for(srv *s, const char *model, const char *header);
/* The semantic tier's counters: outcomes by reason kind, skips, deferred
 * inserts, batches. */
void sem_write_prometheus(srv *s, FILE *f);
void sem_write_json(srv *s, FILE *f);

/* fetch.c — after the exact tier missed in memory: the shared store
 * (--store redis) when it may hold the key, then the semantic tier or the
 * upstream. Serves the entry when the store has it; else (not there, or
 * the store unavailable: counted, X-LLM-Cache-Reason store_unavailable)
 * goes on to sem_submit / flight_submit. Takes over req's reply, sem_query
 * (owned, may be NULL) and what flight_submit takes. */
void fetch_submit(srv_loop *l, struct evhttp_request *req, flight_req *fr, char *sem_query,
                  size_t sem_qlen, const char *body, size_t len, double t0);

/* admin.c */
void admin_handle(srv *s, struct evhttp_request *req, const char *path);
/* /dashboard and /dashboard.js: 1 when path was one of them (answered). */
int admin_static(srv *s, struct evhttp_request *req, const char *path);

/* ==== top: http.c (the dispatcher), main.c ============================== */

/* http.c */
void http_handle(struct evhttp_request *req, void *arg);

#endif
