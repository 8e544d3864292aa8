/*
 * redis_store.c — a fleet's shared entries in Redis (or Redis Cluster).
 *
 * What it is for: several llmcached instances behind a load balancer share
 * one cache. Redis is the source of truth for entries and their TTLs; each
 * instance keeps its in-memory store as a bounded near cache in front of it
 * and its own HNSW index, and follows the others' inserts and deletes
 * through a Redis stream. This file is the Redis side of that; the cache
 * backend (cache_redis.c) plugs it into llmc_cache's seam.
 *
 * Data in Redis (PREFIX is --store-prefix, "llmc:" by default):
 *   PREFIX "e:" KEYHEX   one entry (redis_entry.c's record), with Redis's
 *                        expiry at the entry's absolute expiry (SET PXAT)
 *   PREFIX "stream"      the change stream: XADD ... MAXLEN ~ N * with
 *                        fields o (origin instance), t (p: stored, d:
 *                        deleted), k (KEYHEX). In a cluster the stream is
 *                        one key, so it lives on one primary.
 *
 * Threads and connections.
 *   - Fetches (the request path) run on the daemon's event loops: one
 *     redis_client per loop (redis_store_loop), each command bounded by
 *     timeout_ms, so a slow Redis makes a fetch fail fast and the request
 *     goes upstream instead of waiting.
 *   - Writes, deletes and flushes are queued (mutex + a pipe to wake) to one
 *     background thread with its own loop and two connections: `w` for
 *     writes, scans and the followers' reads, `rd` for XREAD BLOCK (a
 *     blocking read must have a connection to itself). A put is SET PXAT
 *     and, once Redis acknowledged it, XADD "p"; a delete is DEL and then
 *     XADD "d", so a follower that reads the event finds Redis already
 *     changed. A flush SCANs every primary (MATCH PREFIX "e:*"), reads the
 *     8 namespace bytes of each value (GETRANGE) when it flushes one
 *     namespace, and deletes as a delete does — one stream event per key, so
 *     that followers need only "delete this key".
 *   - The follower reads the stream from where the warm start's scan began
 *     (or from its end), skips its own events, GETs stored entries and
 *     hands them to on_put, hands deleted keys to on_delete.
 *
 * Staleness: an entry read from Redis (fetch, stream) is handed over with
 * its expiry bounded by near_ttl_s, so a near-cache copy of an entry whose
 * delete event was lost (stream trimmed or Redis restarted while we were
 * away) is served at most near_ttl_s after the delete; normally the delete
 * event arrives within one round trip of the DEL.
 *
 * Locking: mu guards the queue, the counters and the list of loop
 * handles; it is a leaf lock (never held while calling out). Each
 * redis_client is only touched on its own loop's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "redis_entry.h"
#include "redis_store.h"

enum { RS_PUT = 1, RS_DEL, RS_FLUSH, RS_UNLOCK };

typedef struct rs_op rs_op;
struct rs_op {
    rs_op *next;
    int type;
    const llmc_entry_info *e; /* RS_PUT: a held reference */
    uint8_t key[LLMC_KEY_LEN];
    uint64_t ns;
    int all;
};

struct redis_store_loop {
    redis_store *rs;
    redis_client *c;
    redis_store_loop *next;
    redis_stats cst; /* the client's counters, published under rs->mu */
};

struct redis_store {
    redis_store_params p;
    char *url, *password, *prefix;
    char stream_key[300];
    char origin[17];
    int cluster;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    rs_op *head, *tail;
    int queued;   /* ops in the queue */
    int inflight; /* ops taken by the thread and not finished */
    redis_store_stats st;
    redis_store_loop *loops;
    redis_stats wst, rst, lst; /* published counters of w, rd and the load's client */

    /* the background thread's */
    int wake[2];
    int started, stop;
    pthread_t th;
    struct event_base *base;
    struct event *wake_ev, *xread_ev;
    redis_client *w, *rd;
    char last_id[64];
    int xread_pending;
};

/* ---- helpers ------------------------------------------------------------ */

static double rs_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void rs_log(redis_store *rs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redis_vlog(rs->p.log, rs->p.log_arg, "redis store", fmt, ap);
    va_end(ap);
}

static void rs_hex(const uint8_t key[LLMC_KEY_LEN], char out[2 * LLMC_KEY_LEN + 1])
{
    static const char h[] = "0123456789abcdef";
    for (int i = 0; i < LLMC_KEY_LEN; i++) {
        out[2 * i] = h[key[i] >> 4];
        out[2 * i + 1] = h[key[i] & 15];
    }
    out[2 * LLMC_KEY_LEN] = 0;
}

/* The fleet lock's key name: PREFIX "l:" HEX. Its length. */
static int rs_lock_key(redis_store *rs, const uint8_t key[LLMC_KEY_LEN], char *out, size_t cap)
{
    char hex[2 * LLMC_KEY_LEN + 1];
    rs_hex(key, hex);
    return snprintf(out, cap, "%sl:%s", rs->prefix, hex);
}

/* The exact key inside a Redis key name PREFIX "e:" HEX: 0 or -1. */
static int rs_key_of(redis_store *rs, const char *name, size_t len, uint8_t key[LLMC_KEY_LEN])
{
    size_t pl = strlen(rs->prefix);
    if (len != pl + 2 + 2 * LLMC_KEY_LEN || memcmp(name, rs->prefix, pl) ||
        memcmp(name + pl, "e:", 2))
        return -1;
    return redis_entry_key_parse(name + pl + 2, 2 * LLMC_KEY_LEN, key) ? -1 : 0;
}

static redis_client *rs_client(redis_store *rs, struct event_base *base, int timeout_ms)
{
    redis_params p = redis_default_params();
    p.url = rs->url;
    p.password = rs->password;
    p.timeout_ms = timeout_ms;
    p.log = rs->p.log;
    p.log_arg = rs->p.log_arg;
    char err[256];
    return redis_new(base, &p, NULL, err, sizeof err);
}

/* Decode a GET reply for key into *e (owned: free it). 0, LLMC_ENOTFOUND
 * (nil, or expired at now), or a decode error (counted by the caller). */
static int rs_decode(redis_store *rs, redisReply *rep, const uint8_t key[LLMC_KEY_LEN], int64_t now,
                     int clamp, llmc_entry_info *e, void **owned)
{
    *owned = NULL;
    if (!rep || rep->type == REDIS_REPLY_NIL)
        return LLMC_ENOTFOUND;
    if (rep->type != REDIS_REPLY_STRING)
        return LLMC_EFOREIGN;
    int rc = redis_entry_decode(rep->str, rep->len, key, e, owned);
    if (rc)
        return rc;
    if (e->expires <= now) {
        free(*owned);
        *owned = NULL;
        return LLMC_ENOTFOUND;
    }
    if (clamp && rs->p.near_ttl_s > 0 && e->expires > now + rs->p.near_ttl_s)
        e->expires = now + rs->p.near_ttl_s;
    return 0;
}

redis_store_params redis_store_default_params(void)
{
    redis_store_params p;
    memset(&p, 0, sizeof p);
    p.url = "redis://127.0.0.1:6379/0";
    p.prefix = "llmc:";
    p.timeout_ms = 5;
    p.bg_timeout_ms = 1000;
    p.stream_maxlen = 100000;
    p.stream_block_ms = 1000;
    p.near_ttl_s = 30;
    p.max_queue = 10000;
    return p;
}

/* ---- open --------------------------------------------------------------- */

redis_store *redis_store_open(const redis_store_params *p, int *err, char *errbuf, size_t errlen)
{
    redis_store_params d = p ? *p : redis_store_default_params();
    redis_url u;
    int e = redis_parse_url(d.url, &u, errbuf, errlen);
    if (e) {
        if (err)
            *err = e;
        return NULL;
    }
    memset(&u, 0, sizeof u); /* it held the password */
    redis_store *rs = calloc(1, sizeof *rs);
    if (!rs)
        goto nomem;
    rs->cluster = !strncmp(d.url, "redis-cluster://", 16);
    rs->url = strdup(d.url);
    rs->password = d.password && d.password[0] ? strdup(d.password) : NULL;
    rs->prefix = strdup(d.prefix ? d.prefix : "llmc:");
    if (!rs->url || !rs->prefix || (d.password && d.password[0] && !rs->password))
        goto nomem;
    if (strlen(rs->prefix) > 200) {
        if (errlen)
            snprintf(errbuf, errlen, "store prefix longer than 200 bytes");
        if (err)
            *err = LLMC_EINVAL;
        redis_store_close(rs);
        return NULL;
    }
    if (d.timeout_ms < 0)
        d.timeout_ms = 0;
    if (d.bg_timeout_ms < 1)
        d.bg_timeout_ms = 1000;
    if (d.stream_block_ms < 1)
        d.stream_block_ms = 1000;
    if (d.max_queue < 1)
        d.max_queue = 1;
    d.url = d.password = d.prefix = NULL;
    rs->p = d;
    snprintf(rs->stream_key, sizeof rs->stream_key, "%sstream", rs->prefix);
    uint64_t o = (uint64_t)redis_mono_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)rs;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&o, sizeof o, 1, f) != 1) {
        }
        fclose(f);
    }
    snprintf(rs->origin, sizeof rs->origin, "%016llx", (unsigned long long)o);
    snprintf(rs->last_id, sizeof rs->last_id, "$");
    rs->wake[0] = rs->wake[1] = -1;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    rs->st.cluster = rs->cluster;
    redis_url_redact(rs->url, rs->st.url, sizeof rs->st.url);
    return rs;
nomem:
    if (err)
        *err = LLMC_ENOMEM;
    if (rs) {
        free(rs->url);
        free(rs->password);
        free(rs->prefix);
        free(rs);
    }
    return NULL;
}

/* ---- scanning (warm start and flush) --------------------------------------- */

enum { SCAN_LOAD = 1, SCAN_FLUSH_NS, SCAN_FLUSH_ALL };

typedef struct scan_job {
    redis_store *rs;
    redis_client *c;
    int mode;
    int node, nodes;
    char cursor[32];
    char pattern[440];
    int scanning, outstanding, failed, done;
    uint64_t ns;
    int64_t now;
    void (*fn)(void *arg, const llmc_entry_info *e);
    void *arg;
    uint64_t count;
    void (*finished)(struct scan_job *j);
} scan_job;

typedef struct {
    scan_job *j;
    uint8_t key[LLMC_KEY_LEN];
    char name[300];
    size_t nlen;
} scan_key;

static void scan_step(scan_job *j);
static int rs_xadd(redis_store *rs, char type, const uint8_t key[LLMC_KEY_LEN]);

static void scan_maybe_next(scan_job *j)
{
    if (j->scanning || j->outstanding)
        return;
    if (j->failed || (!strcmp(j->cursor, "0") && j->node + 1 >= j->nodes)) {
        j->done = 1;
        if (j->finished)
            j->finished(j);
        return;
    }
    if (!strcmp(j->cursor, "0")) {
        j->node++;
        snprintf(j->cursor, sizeof j->cursor, "0");
    }
    scan_step(j);
}

static void scan_on_del(redis_client *c, int status, redisReply *rep, void *arg)
{
    scan_key *k = arg;
    scan_job *j = k->j;
    j->outstanding--;
    if (status == 0) {
        j->count += rep->type == REDIS_REPLY_INTEGER ? (uint64_t)rep->integer : 0;
        rs_xadd(j->rs, 'd', k->key);
    }
    free(k);
    scan_maybe_next(j);
}

static void scan_del(scan_key *k)
{
    const char *av[2] = {"DEL", k->name};
    size_t al[2] = {3, k->nlen};
    if (redis_command(k->j->c, k->name, k->nlen, 2, av, al, -1, scan_on_del, k) == 0)
        k->j->outstanding++;
    else
        free(k);
}

static void scan_on_key(redis_client *c, int status, redisReply *rep, void *arg)
{
    scan_key *k = arg;
    scan_job *j = k->j;
    redis_store *rs = j->rs;
    j->outstanding--;
    if (status) {
        j->failed = 1;
        free(k);
    } else if (j->mode == SCAN_LOAD) {
        llmc_entry_info e;
        void *own;
        int rc = rs_decode(rs, rep, k->key, j->now, 0, &e, &own);
        if (rc == 0) {
            /* the warm start takes an entry with its own expiry: the index
             * needs it for as long as it lives */
            j->fn(j->arg, &e);
            j->count++;
            free(own);
        } else if (rc != LLMC_ENOTFOUND) {
            pthread_mutex_lock(&rs->mu);
            rs->st.bad_values++;
            rs->st.load_skipped++;
            pthread_mutex_unlock(&rs->mu);
        }
        free(k);
    } else if (rep->type == REDIS_REPLY_STRING && rep->len == 8 &&
               redis_entry_ns(rep->str) == j->ns) {
        scan_del(k);
    } else {
        free(k);
    }
    scan_maybe_next(j);
}

static void scan_on_scan(redis_client *c, int status, redisReply *rep, void *arg)
{
    scan_job *j = arg;
    redis_store *rs = j->rs;
    j->scanning = 0;
    if (status || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
        j->failed = 1;
        scan_maybe_next(j);
        return;
    }
    snprintf(j->cursor, sizeof j->cursor, "%s", rep->element[0]->str);
    redisReply *keys = rep->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *kr = keys->element[i];
        if (kr->type != REDIS_REPLY_STRING || kr->len >= sizeof((scan_key *)0)->name)
            continue;
        scan_key *k = calloc(1, sizeof *k);
        if (!k)
            continue;
        k->j = j;
        memcpy(k->name, kr->str, kr->len);
        k->nlen = kr->len;
        if (rs_key_of(rs, k->name, k->nlen, k->key)) {
            /* under our prefix but not our name: not ours, leave it */
            free(k);
            continue;
        }
        if (j->mode == SCAN_FLUSH_ALL) {
            scan_del(k);
            continue;
        }
        const char *av[4];
        size_t al[4];
        char a[16], b[16];
        int ac;
        if (j->mode == SCAN_LOAD) {
            av[0] = "GET", al[0] = 3;
            av[1] = k->name, al[1] = k->nlen;
            ac = 2;
        } else {
            int la = snprintf(a, sizeof a, "%d", REDIS_ENTRY_NS_OFF);
            int lb = snprintf(b, sizeof b, "%d", REDIS_ENTRY_NS_OFF + 7);
            av[0] = "GETRANGE", al[0] = 8;
            av[1] = k->name, al[1] = k->nlen;
            av[2] = a, al[2] = (size_t)la;
            av[3] = b, al[3] = (size_t)lb;
            ac = 4;
        }
        if (redis_command(j->c, k->name, k->nlen, ac, av, al, -1, scan_on_key, k) == 0)
            j->outstanding++;
        else {
            free(k);
            j->failed = 1;
        }
    }
    scan_maybe_next(j);
}

static void scan_step(scan_job *j)
{
    const char *av[6] = {"SCAN", j->cursor, "MATCH", j->pattern, "COUNT", "500"};
    size_t al[6] = {4, strlen(j->cursor), 5, strlen(j->pattern), 5, 3};
    j->nodes = redis_primaries(j->c);
    if (redis_command_node(j->c, j->node, 6, av, al, -1, scan_on_scan, j) == 0)
        j->scanning = 1;
    else
        j->failed = 1;
    if (!j->scanning)
        scan_maybe_next(j);
}

static void scan_init(scan_job *j, redis_store *rs, redis_client *c, int mode)
{
    memset(j, 0, sizeof *j);
    j->rs = rs;
    j->c = c;
    j->mode = mode;
    snprintf(j->cursor, sizeof j->cursor, "0");
    redis_entry_pattern(rs->prefix, j->pattern, sizeof j->pattern);
}

/* ---- warm start ---------------------------------------------------------- */

typedef struct {
    int done, status;
    char id[64];
} rs_sync;

static void rs_on_lastid(redis_client *c, int status, redisReply *rep, void *arg)
{
    rs_sync *s = arg;
    s->done = 1;
    s->status = status;
    if (status)
        return;
    /* XREVRANGE key + - COUNT 1: [] or [[id, [fields]]] */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 1 &&
        rep->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(s->id, sizeof s->id, "%s", rep->element[0]->element[0]->str);
    else
        snprintf(s->id, sizeof s->id, "0-0");
}

static void rs_tick(evutil_socket_t fd, short w, void *a)
{
}

int redis_store_load(redis_store *rs, void (*fn)(void *arg, const llmc_entry_info *e), void *arg,
                     int64_t now, int deadline_ms)
{
    struct event_base *base = event_base_new();
    if (!base)
        return LLMC_ENOMEM;
    redis_client *c = rs_client(rs, base, rs->p.bg_timeout_ms);
    struct event *t = event_new(base, -1, EV_PERSIST, rs_tick, NULL);
    if (!c || !t) {
        if (t)
            event_free(t);
        redis_free(c);
        event_base_free(base);
        return LLMC_ENOMEM;
    }
    struct timeval tv = {0, 5000};
    event_add(t, &tv);
    double end = redis_mono_ms() + deadline_ms;
    /* wait for the connection (and, in a cluster, the slot map), at most
     * 2 s: a Redis that is down at start means a cold start, not a daemon
     * that takes the whole deadline to come up */
    double up_by = redis_mono_ms() + (deadline_ms < 2000 ? deadline_ms : 2000);
    while (!redis_ready(c) && redis_mono_ms() < up_by)
        event_base_loop(base, EVLOOP_ONCE);
    int rc = LLMC_ETIMEDOUT;
    rs_sync s = {0};
    const char *av[6] = {"XREVRANGE", rs->stream_key, "+", "-", "COUNT", "1"};
    size_t al[6] = {9, strlen(rs->stream_key), 1, 1, 5, 1};
    if (redis_ready(c) &&
        redis_command(c, rs->stream_key, al[1], 6, av, al, -1, rs_on_lastid, &s) == 0) {
        while (!s.done && redis_mono_ms() < end)
            event_base_loop(base, EVLOOP_ONCE);
    }
    scan_job j;
    scan_init(&j, rs, c, SCAN_LOAD);
    j.fn = fn;
    j.arg = arg;
    j.now = now;
    if (s.done && s.status == 0) {
        scan_step(&j);
        while (!j.done && redis_mono_ms() < end)
            event_base_loop(base, EVLOOP_ONCE);
        rc = !j.done ? LLMC_ETIMEDOUT : j.failed ? LLMC_EUPSTREAM : 0;
    } else if (s.done) {
        rc = LLMC_EUPSTREAM;
    }
    if (rc == 0)
        snprintf(rs->last_id, sizeof rs->last_id, "%s", s.id);
    pthread_mutex_lock(&rs->mu);
    rs->st.loaded += j.count;
    redis_get_stats(c, &rs->lst);
    pthread_mutex_unlock(&rs->mu);
    /* a job still running when the deadline passed is cut short here:
     * redis_free runs its callbacks (which only count), then we leave */
    redis_free(c);
    event_free(t);
    event_base_free(base);
    if (rc)
        rs_log(rs, "warm start from %s incomplete (%s): starting with %llu entries", rs->st.url,
               llmc_strerror(rc), (unsigned long long)j.count);
    return rc;
}

/* ---- the background thread: writes, deletes, flushes, stream ------------- */

static void rs_publish_bg(redis_store *rs)
{
    /* on the background thread, mu held by the caller */
    if (rs->w)
        redis_get_stats(rs->w, &rs->wst);
    if (rs->rd)
        redis_get_stats(rs->rd, &rs->rst);
}

static void rs_op_done(redis_store *rs)
{
    pthread_mutex_lock(&rs->mu);
    rs->inflight--;
    rs_publish_bg(rs);
    if (!rs->queued && !rs->inflight)
        pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

static void rs_on_xadd(redis_client *c, int status, redisReply *rep, void *arg)
{
    redis_store *rs = arg;
    pthread_mutex_lock(&rs->mu);
    if (status)
        rs->st.stream_errors++;
    else
        rs->st.stream_out++;
    pthread_mutex_unlock(&rs->mu);
    rs_op_done(rs);
}

/* Tell the others (an in-flight op of its own). */
static int rs_xadd(redis_store *rs, char type, const uint8_t key[LLMC_KEY_LEN])
{
    char hex[2 * LLMC_KEY_LEN + 1], maxlen[24], t[2] = {type, 0};
    rs_hex(key, hex);
    snprintf(maxlen, sizeof maxlen, "%lld", rs->p.stream_maxlen);
    /* XADD STREAM MAXLEN ~ N * o ORIGIN t TYPE k HEX */
    const char *av[12] = {"XADD", rs->stream_key, "MAXLEN", "~", maxlen, "*",
                          "o",    rs->origin,     "t",      t,   "k",    hex};
    size_t al[12];
    for (int i = 0; i < 12; i++)
        al[i] = strlen(av[i]);
    pthread_mutex_lock(&rs->mu);
    rs->inflight++;
    pthread_mutex_unlock(&rs->mu);
    int rc = redis_command(rs->w, rs->stream_key, al[1], 12, av, al, -1, rs_on_xadd, rs);
    if (rc) {
        pthread_mutex_lock(&rs->mu);
        rs->st.stream_errors++;
        pthread_mutex_unlock(&rs->mu);
        rs_op_done(rs);
    }
    return rc;
}

typedef struct {
    redis_store *rs;
    uint8_t key[LLMC_KEY_LEN];
    int type;
} rs_wctx;

static void rs_on_write(redis_client *c, int status, redisReply *rep, void *arg)
{
    rs_wctx *x = arg;
    redis_store *rs = x->rs;
    pthread_mutex_lock(&rs->mu);
    if (x->type == RS_PUT && status)
        rs->st.put_errors++;
    pthread_mutex_unlock(&rs->mu);
    /* a delete is announced even when Redis had no such key: another
     * instance's near cache may still hold it */
    if (x->type != RS_UNLOCK && (status == 0 || x->type == RS_DEL))
        rs_xadd(rs, x->type == RS_PUT ? 'p' : 'd', x->key);
    free(x);
    rs_op_done(rs);
}

static void rs_flush_finished(scan_job *j)
{
    redis_store *rs = j->rs;
    pthread_mutex_lock(&rs->mu);
    rs->st.flushed_keys += j->count;
    pthread_mutex_unlock(&rs->mu);
    if (j->failed)
        rs_log(rs, "flush of %s stopped early: Redis unavailable",
               j->mode == SCAN_FLUSH_ALL ? "every entry" : "a namespace");
    free(j);
    rs_op_done(rs);
}

/* Issue one op on the background thread; it ends in rs_op_done. */
static void rs_run_op(redis_store *rs, rs_op *op)
{
    char name[300];
    int nl = redis_entry_key(rs->prefix, op->key, name, sizeof name);
    if (op->type == RS_FLUSH) {
        scan_job *j = malloc(sizeof *j);
        if (!j) {
            rs_op_done(rs);
            return;
        }
        scan_init(j, rs, rs->w, op->all ? SCAN_FLUSH_ALL : SCAN_FLUSH_NS);
        j->ns = op->ns;
        j->finished = rs_flush_finished;
        scan_step(j); /* may finish (and free j) at once */
        return;
    }
    rs_wctx *x = malloc(sizeof *x);
    int rc = LLMC_ENOMEM;
    if (x) {
        x->rs = rs;
        x->type = op->type;
        memcpy(x->key, op->key, LLMC_KEY_LEN);
    }
    if (x && op->type == RS_PUT) {
        const llmc_entry_info *e = op->e;
        size_t n = redis_entry_size(e);
        char *val = malloc(n);
        char pxat[24];
        int pl = snprintf(pxat, sizeof pxat, "%lld", (long long)e->expires * 1000);
        if (val) {
            redis_entry_encode(e, val);
            const char *av[5] = {"SET", name, val, "PXAT", pxat};
            size_t al[5] = {3, (size_t)nl, n, 4, (size_t)pl};
            rc = redis_command(rs->w, name, (size_t)nl, 5, av, al, -1, rs_on_write, x);
            free(val);
        }
    } else if (x && op->type == RS_UNLOCK) {
        static const char script[] = "if redis.call('GET',KEYS[1])~=ARGV[1] then return 0 end "
                                     "if ARGV[2]=='1' then return redis.call('DEL',KEYS[1]) end "
                                     "redis.call('SET',KEYS[1],'!'..ARGV[1],'KEEPTTL') return 1";
        char lk[300];
        int ll = rs_lock_key(rs, op->key, lk, sizeof lk);
        const char *av[6] = {"EVAL", script, "1", lk, rs->origin, op->all ? "1" : "0"};
        size_t al[6] = {4, sizeof script - 1, 1, (size_t)ll, strlen(rs->origin), 1};
        rc = redis_command(rs->w, lk, (size_t)ll, 6, av, al, -1, rs_on_write, x);
    } else if (x) {
        const char *av[2] = {"DEL", name};
        size_t al[2] = {3, (size_t)nl};
        rc = redis_command(rs->w, name, (size_t)nl, 2, av, al, -1, rs_on_write, x);
    }
    if (rc) {
        free(x);
        pthread_mutex_lock(&rs->mu);
        if (op->type == RS_PUT)
            rs->st.put_errors++;
        pthread_mutex_unlock(&rs->mu);
        rs_op_done(rs);
    }
}

static void rs_on_wake(evutil_socket_t fd, short what, void *arg)
{
    redis_store *rs = arg;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    for (;;) {
        pthread_mutex_lock(&rs->mu);
        rs_op *op = rs->head;
        if (op) {
            rs->head = op->next;
            if (!rs->head)
                rs->tail = NULL;
            rs->queued--;
            rs->inflight++;
        }
        pthread_mutex_unlock(&rs->mu);
        if (!op)
            break;
        rs_run_op(rs, op);
        if (op->e)
            llmc_entry_release(op->e);
        free(op);
    }
    if (__atomic_load_n(&rs->stop, __ATOMIC_ACQUIRE))
        event_base_loopexit(rs->base, NULL);
}

/* -- following the stream -- */

static void rs_xread(redis_store *rs);

typedef struct {
    redis_store *rs;
    uint8_t key[LLMC_KEY_LEN];
} rs_follow;

static void rs_on_follow_get(redis_client *c, int status, redisReply *rep, void *arg)
{
    rs_follow *f = arg;
    redis_store *rs = f->rs;
    llmc_entry_info e;
    void *own = NULL;
    int rc =
        status ? status : rs_decode(rs, rep, f->key, (int64_t)(rs_now_ms() / 1e3), 1, &e, &own);
    if (rc == 0 && rs->p.on_put)
        rs->p.on_put(rs->p.arg, &e);
    free(own);
    pthread_mutex_lock(&rs->mu);
    if (rc && rc != LLMC_ENOTFOUND) {
        if (status)
            rs->st.stream_errors++;
        else
            rs->st.bad_values++;
    }
    rs_publish_bg(rs);
    pthread_mutex_unlock(&rs->mu);
    free(f);
}

static void rs_on_event(redis_store *rs, redisReply *ev)
{
    /* [id, [field, value, ...]] */
    if (ev->type != REDIS_REPLY_ARRAY || ev->elements != 2 ||
        ev->element[0]->type != REDIS_REPLY_STRING || ev->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    const char *id = ev->element[0]->str;
    snprintf(rs->last_id, sizeof rs->last_id, "%s", id);
    redisReply *fv = ev->element[1];
    const char *o = NULL, *t = NULL, *k = NULL;
    size_t kl = 0;
    for (size_t i = 0; i + 1 < fv->elements; i += 2) {
        redisReply *f = fv->element[i], *v = fv->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (!strcmp(f->str, "o"))
            o = v->str;
        else if (!strcmp(f->str, "t"))
            t = v->str;
        else if (!strcmp(f->str, "k"))
            k = v->str, kl = v->len;
    }
    uint8_t key[LLMC_KEY_LEN];
    if (!o || !t || !k || redis_entry_key_parse(k, kl, key))
        return;
    if (!strcmp(o, rs->origin))
        return; /* our own change */
    double lag = rs_now_ms() - strtod(id, NULL);
    pthread_mutex_lock(&rs->mu);
    rs->st.stream_in++;
    rs->st.stream_lag_ms_last = lag;
    if (lag > rs->st.stream_lag_ms_max)
        rs->st.stream_lag_ms_max = lag;
    pthread_mutex_unlock(&rs->mu);
    if (t[0] == 'd') {
        if (rs->p.on_delete)
            rs->p.on_delete(rs->p.arg, key);
    } else if (t[0] == 'p' && rs->p.on_put) {
        rs_follow *f = malloc(sizeof *f);
        if (!f)
            return;
        f->rs = rs;
        memcpy(f->key, key, LLMC_KEY_LEN);
        char name[300];
        int nl = redis_entry_key(rs->prefix, key, name, sizeof name);
        const char *av[2] = {"GET", name};
        size_t al[2] = {3, (size_t)nl};
        if (redis_command(rs->w, name, (size_t)nl, 2, av, al, -1, rs_on_follow_get, f)) {
            free(f);
            pthread_mutex_lock(&rs->mu);
            rs->st.stream_errors++;
            pthread_mutex_unlock(&rs->mu);
        }
    }
}

static void rs_on_xread(redis_client *c, int status, redisReply *rep, void *arg)
{
    redis_store *rs = arg;
    rs->xread_pending = 0;
    pthread_mutex_lock(&rs->mu);
    rs_publish_bg(rs);
    pthread_mutex_unlock(&rs->mu);
    if (status) {
        pthread_mutex_lock(&rs->mu);
        rs->st.stream_errors++;
        pthread_mutex_unlock(&rs->mu);
        struct timeval tv = {0, 100000};
        evtimer_add(rs->xread_ev, &tv);
        return;
    }
    /* nil: BLOCK timed out; else [[stream, [events...]]] */
    if (rep->type == REDIS_REPLY_ARRAY)
        for (size_t s = 0; s < rep->elements; s++) {
            redisReply *st = rep->element[s];
            if (st->type == REDIS_REPLY_ARRAY && st->elements == 2 &&
                st->element[1]->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < st->element[1]->elements; i++)
                    rs_on_event(rs, st->element[1]->element[i]);
        }
    rs_xread(rs);
}

static void rs_xread(redis_store *rs)
{
    if (__atomic_load_n(&rs->stop, __ATOMIC_ACQUIRE) || rs->xread_pending)
        return;
    char block[16];
    int bl = snprintf(block, sizeof block, "%d", rs->p.stream_block_ms);
    const char *av[8] = {"XREAD", "COUNT",   "256",          "BLOCK",
                         block,   "STREAMS", rs->stream_key, rs->last_id};
    size_t al[8];
    for (int i = 0; i < 8; i++)
        al[i] = strlen(av[i]);
    al[4] = (size_t)bl;
    /* the command's own deadline: BLOCK plus the usual margin, so a
     * half-open connection is noticed */
    if (redis_command(rs->rd, rs->stream_key, al[6], 8, av, al,
                      rs->p.stream_block_ms + rs->p.bg_timeout_ms, rs_on_xread, rs) == 0) {
        rs->xread_pending = 1;
        return;
    }
    struct timeval tv = {0, 100000};
    evtimer_add(rs->xread_ev, &tv);
}

static void rs_on_start_id(redis_client *c, int status, redisReply *rep, void *arg)
{
    redis_store *rs = arg;
    rs_sync sy = {0};
    rs_on_lastid(c, status, rep, &sy);
    rs->xread_pending = 0;
    if (status) {
        struct timeval tv = {0, 100000};
        evtimer_add(rs->xread_ev, &tv);
        return;
    }
    snprintf(rs->last_id, sizeof rs->last_id, "%s", sy.id);
    rs_xread(rs);
}

static void rs_xread_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_store *rs = arg;
    if (rs->last_id[0] == '$') {
        /* no warm start told us where the stream was: from its end now
         * (an XREAD with "$" repeated would lose what arrives between two) */
        const char *av[6] = {"XREVRANGE", rs->stream_key, "+", "-", "COUNT", "1"};
        size_t al[6] = {9, strlen(rs->stream_key), 1, 1, 5, 1};
        if (redis_command(rs->rd, rs->stream_key, al[1], 6, av, al, -1, rs_on_start_id, rs) == 0)
            rs->xread_pending = 1;
        else {
            struct timeval tv = {0, 100000};
            evtimer_add(rs->xread_ev, &tv);
        }
    } else {
        rs_xread(rs);
    }
    pthread_mutex_lock(&rs->mu);
    rs_publish_bg(rs);
    pthread_mutex_unlock(&rs->mu);
}

static void *rs_main(void *arg)
{
    redis_store *rs = arg;
    struct timeval tv = {0, 0};
    evtimer_add(rs->xread_ev, &tv);
    event_base_dispatch(rs->base);
    return NULL;
}

int redis_store_start(redis_store *rs)
{
    if (rs->started)
        return 0;
    if (pipe2(rs->wake, O_NONBLOCK | O_CLOEXEC))
        return LLMC_EIO;
    rs->base = event_base_new();
    if (!rs->base)
        return LLMC_ENOMEM;
    rs->wake_ev = event_new(rs->base, rs->wake[0], EV_READ | EV_PERSIST, rs_on_wake, rs);
    rs->xread_ev = evtimer_new(rs->base, rs_xread_cb, rs);
    rs->w = rs_client(rs, rs->base, rs->p.bg_timeout_ms);
    rs->rd = rs_client(rs, rs->base, rs->p.bg_timeout_ms);
    if (!rs->wake_ev || !rs->xread_ev || !rs->w || !rs->rd)
        return LLMC_ENOMEM;
    event_add(rs->wake_ev, NULL);
    if (pthread_create(&rs->th, NULL, rs_main, rs))
        return LLMC_ENOMEM;
    rs->started = 1;
    return 0;
}

static int rs_enqueue(redis_store *rs, rs_op *op)
{
    pthread_mutex_lock(&rs->mu);
    if (!rs->started || rs->queued >= rs->p.max_queue) {
        rs->st.queue_dropped++;
        pthread_mutex_unlock(&rs->mu);
        if (op->e)
            llmc_entry_release(op->e);
        free(op);
        return LLMC_EFULL;
    }
    if (op->type == RS_PUT)
        rs->st.puts++;
    else if (op->type == RS_DEL)
        rs->st.deletes++;
    else if (op->type == RS_UNLOCK)
        rs->st.unlocks++;
    else
        rs->st.flushes++;
    op->next = NULL;
    if (rs->tail)
        rs->tail->next = op;
    else
        rs->head = op;
    rs->tail = op;
    rs->queued++;
    pthread_mutex_unlock(&rs->mu);
    char b = 1;
    if (write(rs->wake[1], &b, 1) < 0) {
        /* the pipe is full: the thread is already woken */
    }
    return 0;
}

int redis_store_put(redis_store *rs, const llmc_entry_info *e)
{
    rs_op *op = calloc(1, sizeof *op);
    if (!op)
        return LLMC_ENOMEM;
    op->type = RS_PUT;
    llmc_entry_ref(e);
    op->e = e;
    memcpy(op->key, e->key, LLMC_KEY_LEN);
    return rs_enqueue(rs, op);
}

int redis_store_unlock(redis_store *rs, const uint8_t key[LLMC_KEY_LEN], int answered)
{
    rs_op *op = calloc(1, sizeof *op);
    if (!op)
        return LLMC_ENOMEM;
    op->type = RS_UNLOCK;
    op->all = answered; /* RS_UNLOCK: delete (1) or mark unstored (0) */
    memcpy(op->key, key, LLMC_KEY_LEN);
    return rs_enqueue(rs, op);
}

int redis_store_del(redis_store *rs, const uint8_t key[LLMC_KEY_LEN])
{
    rs_op *op = calloc(1, sizeof *op);
    if (!op)
        return LLMC_ENOMEM;
    op->type = RS_DEL;
    memcpy(op->key, key, LLMC_KEY_LEN);
    return rs_enqueue(rs, op);
}

int redis_store_flush(redis_store *rs, uint64_t ns_hash, int all)
{
    rs_op *op = calloc(1, sizeof *op);
    if (!op)
        return LLMC_ENOMEM;
    op->type = RS_FLUSH;
    op->ns = ns_hash;
    op->all = all;
    return rs_enqueue(rs, op);
}

int redis_store_drain(redis_store *rs, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&rs->mu);
    while (rs->started && (rs->queued || rs->inflight) && rc == 0)
        if (pthread_cond_timedwait(&rs->cv, &rs->mu, &dl) == ETIMEDOUT)
            rc = LLMC_ETIMEDOUT;
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

/* ---- fetches on the daemon's loops ---------------------------------------- */

redis_store_loop *redis_store_loop_attach(redis_store *rs, struct event_base *base)
{
    redis_store_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->rs = rs;
    l->c = rs_client(rs, base, rs->p.timeout_ms);
    if (!l->c) {
        free(l);
        return NULL;
    }
    pthread_mutex_lock(&rs->mu);
    l->next = rs->loops;
    rs->loops = l;
    pthread_mutex_unlock(&rs->mu);
    return l;
}

void redis_store_loop_detach(redis_store_loop *l)
{
    if (!l)
        return;
    redis_store *rs = l->rs;
    pthread_mutex_lock(&rs->mu);
    for (redis_store_loop **pp = &rs->loops; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    /* keep what it counted */
    redis_get_stats(l->c, &l->cst);
    rs->lst.reconnects += l->cst.reconnects;
    rs->lst.timeouts += l->cst.timeouts;
    rs->lst.errors += l->cst.errors;
    rs->lst.refused += l->cst.refused;
    rs->lst.auth_failures += l->cst.auth_failures;
    rs->lst.moved += l->cst.moved;
    rs->lst.ask += l->cst.ask;
    pthread_mutex_unlock(&rs->mu);
    redis_free(l->c);
    free(l);
}

typedef struct {
    redis_store_loop *l;
    uint8_t key[LLMC_KEY_LEN];
    redis_store_fetch_cb done;
    void *arg;
    double t0;
} rs_fetch;

static void rs_on_fetch(redis_client *c, int status, redisReply *rep, void *arg)
{
    rs_fetch *f = arg;
    redis_store_loop *l = f->l;
    redis_store *rs = l->rs;
    llmc_entry_info e;
    void *own = NULL;
    int rc =
        status ? status : rs_decode(rs, rep, f->key, (int64_t)(rs_now_ms() / 1e3), 1, &e, &own);
    int bad = !status && rc && rc != LLMC_ENOTFOUND;
    pthread_mutex_lock(&rs->mu);
    if (rc == 0)
        rs->st.fetch_hits++;
    else if (status)
        rs->st.fetch_unavailable++;
    else
        rs->st.fetch_misses++;
    if (bad)
        rs->st.bad_values++;
    if (!status)
        redis_rtt_add(rs->st.fetch_rtt_hist, redis_mono_ms() - f->t0);
    redis_get_stats(c, &l->cst);
    pthread_mutex_unlock(&rs->mu);
    f->done(bad ? LLMC_ENOTFOUND : rc, rc == 0 ? &e : NULL, f->arg);
    free(own);
    free(f);
}

int redis_store_fetch(redis_store_loop *l, const uint8_t key[LLMC_KEY_LEN],
                      redis_store_fetch_cb done, void *arg)
{
    redis_store *rs = l->rs;
    rs_fetch *f = malloc(sizeof *f);
    if (!f)
        return LLMC_ENOMEM;
    f->l = l;
    memcpy(f->key, key, LLMC_KEY_LEN);
    f->done = done;
    f->arg = arg;
    f->t0 = redis_mono_ms();
    char name[300];
    int nl = redis_entry_key(rs->prefix, key, name, sizeof name);
    const char *av[2] = {"GET", name};
    size_t al[2] = {3, (size_t)nl};
    int rc = redis_command(l->c, name, (size_t)nl, 2, av, al, -1, rs_on_fetch, f);
    pthread_mutex_lock(&rs->mu);
    rs->st.fetches++;
    if (rc)
        rs->st.fetch_unavailable++;
    pthread_mutex_unlock(&rs->mu);
    if (rc)
        free(f);
    return rc;
}

typedef struct {
    redis_store_loop *l;
    void (*done)(int rc, const char *holder, void *arg);
    void *arg;
} rs_lockreq;

static void rs_on_lock(redis_client *c, int status, redisReply *rep, void *arg)
{
    rs_lockreq *q = arg;
    redis_store *rs = q->l->rs;
    int rc = status;
    char holder[64] = "";
    if (!rc) {
        if (rep->type == REDIS_REPLY_STRING)
            snprintf(holder, sizeof holder, "%.*s", (int)rep->len, rep->str);
        if (rep->type == REDIS_REPLY_NIL)
            rc = 0;
        else if (rep->type == REDIS_REPLY_STRING && rep->len == strlen(rs->origin) &&
                 !memcmp(rep->str, rs->origin, rep->len))
            rc = 1;
        else
            rc = LLMC_EBUSY;
    }
    pthread_mutex_lock(&rs->mu);
    if (rc == 0)
        rs->st.locks_taken++;
    else if (rc == LLMC_EBUSY)
        rs->st.locks_busy++;
    redis_get_stats(c, &q->l->cst);
    pthread_mutex_unlock(&rs->mu);
    q->done(rc, rc == LLMC_EBUSY ? holder : NULL, q->arg);
    free(q);
}

int redis_store_lock(redis_store_loop *l, const uint8_t key[LLMC_KEY_LEN], int ttl_ms,
                     void (*done)(int rc, const char *holder, void *arg), void *arg)
{
    redis_store *rs = l->rs;
    rs_lockreq *q = malloc(sizeof *q);
    if (!q)
        return LLMC_ENOMEM;
    q->l = l;
    q->done = done;
    q->arg = arg;
    char lk[300], px[24];
    int ll = rs_lock_key(rs, key, lk, sizeof lk);
    int pl = snprintf(px, sizeof px, "%d", ttl_ms > 0 ? ttl_ms : 1);
    const char *av[7] = {"SET", lk, rs->origin, "NX", "PX", px, "GET"};
    size_t al[7] = {3, (size_t)ll, strlen(rs->origin), 2, 2, (size_t)pl, 3};
    int rc = redis_command(l->c, lk, (size_t)ll, 7, av, al, -1, rs_on_lock, q);
    if (rc)
        free(q);
    return rc;
}

/* ---- stats and close ------------------------------------------------------ */

static void rs_sum(redis_store_stats *st, const redis_stats *c)
{
    st->reconnects += c->reconnects;
    st->timeouts += c->timeouts;
    st->errors += c->errors;
    st->refused += c->refused;
    st->auth_failures += c->auth_failures;
    st->redirects += c->moved + c->ask;
    st->nodes_up += c->nodes_up;
    st->nodes += c->nodes;
}

void redis_store_get_stats(redis_store *rs, redis_store_stats *st)
{
    pthread_mutex_lock(&rs->mu);
    *st = rs->st;
    rs_sum(st, &rs->wst);
    rs_sum(st, &rs->rst);
    rs_sum(st, &rs->lst);
    for (redis_store_loop *l = rs->loops; l; l = l->next)
        rs_sum(st, &l->cst);
    pthread_mutex_unlock(&rs->mu);
}

void redis_store_close(redis_store *rs)
{
    if (!rs)
        return;
    if (rs->started) {
        redis_store_drain(rs, 1000);
        __atomic_store_n(&rs->stop, 1, __ATOMIC_RELEASE);
        char b = 1;
        if (write(rs->wake[1], &b, 1) < 0) {
        }
        pthread_join(rs->th, NULL);
    }
    /* the thread has stopped: its clients are ours now */
    redis_free(rs->rd);
    redis_free(rs->w);
    if (rs->wake_ev)
        event_free(rs->wake_ev);
    if (rs->xread_ev)
        event_free(rs->xread_ev);
    if (rs->base)
        event_base_free(rs->base);
    for (int i = 0; i < 2; i++)
        if (rs->wake[i] >= 0)
            close(rs->wake[i]);
    while (rs->head) {
        rs_op *op = rs->head;
        rs->head = op->next;
        if (op->e)
            llmc_entry_release(op->e);
        free(op);
    }
    while (rs->loops)
        redis_store_loop_detach(rs->loops);
    pthread_mutex_destroy(&rs->mu);
    pthread_cond_destroy(&rs->cv);
    free(rs->url);
    if (rs->password) {
        memset(rs->password, 0, strlen(rs->password));
        free(rs->password);
    }
    free(rs->prefix);
    free(rs);
}
