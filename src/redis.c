/*
 * redis.c — asynchronous Redis and Redis Cluster client on a libevent loop.
 *
 * Why it exists: a fleet of llmcached instances shares its entries in Redis,
 * and every Redis call is made from an event loop that also serves hits, so
 * no call may block and none may take longer than a miss would. hiredis 0.14
 * (Debian 12) gives the protocol, the async context and the libevent adapter;
 * it gives no connect timeout, no command timeout, no reconnection and no
 * cluster routing. This file adds those four, and nothing else.
 *
 * Design.
 *   - A node is one connection (host:port). A single Redis has one node; a
 *     cluster has the seeds plus every primary the slot map names. Nodes live
 *     until redis_free() (a map refresh re-points slots, it never frees a
 *     node), so a callback's node pointer is always valid.
 *   - Connecting: redisAsyncConnect, then AUTH (user+password, or password)
 *     and SELECT are queued first, so commands issued while connecting are
 *     sent behind them in order. A connect that has not completed within
 *     connect_timeout_ms is abandoned. A lost or failed connection is retried
 *     after a back-off that doubles from backoff_min_ms to backoff_max_ms and
 *     resets on success. While a node has no connection, commands for it are
 *     refused at once (the caller passes through to upstream): nothing queues
 *     behind a dead Redis.
 *   - A command (redis_req) carries its callback and a deadline timer armed
 *     when it is first issued. If the timer fires first, the caller is told
 *     LLMC_ETIMEDOUT and the request is marked done; hiredis still owns it
 *     and hands it back (reply or NULL on disconnect) later, when it is
 *     freed. So the caller's callback runs exactly once, and the request is
 *     freed exactly once, by the hiredis reply callback.
 *   - Cluster: slots[16384] maps a hash slot to a node. The map is loaded
 *     with CLUSTER SLOTS from any node that is up, at start, after a MOVED,
 *     and after a node is lost (rate-limited to one refresh in flight and one
 *     every REDIS_REFRESH_MS). MOVED re-points the slot at once and resends;
 *     ASK sends ASKING + the command to the named node without touching the
 *     map. At most REDIS_MAX_REDIRECTS redirections per command, all within
 *     the command's one deadline. In cluster mode a request keeps a copy of
 *     its arguments for the resend.
 *
 * Invariants.
 *   - node->ac is NULL exactly when the node has no usable context; it is
 *     cleared before a context is freed, so callbacks run during the free
 *     see a down node and are refused rather than queued on a dying context.
 *   - A request is in exactly one hiredis callback queue from issue to free.
 *   - The password is only ever sent to Redis: never logged, never in stats.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "llmcache.h"
#include "redis.h"
#include "util.h"

#define REDIS_MAX_NODES 64
#define REDIS_MAX_REDIRECTS 5
#define REDIS_REFRESH_MS 100

typedef struct redis_node redis_node;

struct redis_node {
    redis_client *r;
    char host[256];
    int port;
    redisAsyncContext *ac;
    int up;         /* connected (AUTH/SELECT may still be in flight) */
    int ever_up;    /* for counting reconnects */
    int backoff_ms; /* next reconnect delay */
    int pending;    /* commands in this node's hiredis queue */
    struct event *retry, *conn_to;
};

typedef struct redis_req {
    redis_client *r;
    redis_cb cb;
    void *arg;
    struct event *timer;
    struct timespec t0;
    int done;      /* the caller's callback has run */
    int redirects; /* MOVED/ASK followed so far */
    redis_node *node;
    /* cluster only: a copy of the command, for resending */
    int argc;
    char **argv;
    size_t *argvlen;
} redis_req;

struct redis_client {
    struct event_base *base;
    redis_params p;
    redis_url u;
    char *password; /* effective password, or NULL */
    redis_node *nodes[REDIS_MAX_NODES];
    int nnodes;
    int freeing;
    redis_stats st;
    /* cluster */
    int16_t slots[REDIS_SLOTS]; /* node index, -1 when unknown */
    int map_loaded;
    int refreshing;
    int refresh_rr;
    struct timespec last_refresh;
    struct event *refresh_timer;
    int nprimaries;
    int primaries[REDIS_MAX_NODES];
};

/* ---- small helpers ------------------------------------------------- */

double redis_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static double redis_ms_since(const struct timespec *t0)
{
    return redis_mono_ms() - ((double)t0->tv_sec * 1e3 + (double)t0->tv_nsec / 1e6);
}

void redis_rtt_add(uint64_t *hist, double ms)
{
    double us = ms * 1e3;
    int b = 0;
    while (b < REDIS_RTT_BUCKETS - 1 && us >= (double)(1u << b))
        b++;
    hist[b]++;
}

void redis_vlog(void (*log)(void *arg, const char *msg), void *arg, const char *who,
                const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (log)
        log(arg, msg);
    else
        fprintf(stderr, "%s: %s\n", who, msg);
}

static void redis_log(redis_client *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redis_vlog(r->p.log, r->p.log_arg, "redis", fmt, ap);
    va_end(ap);
}

redis_params redis_default_params(void)
{
    redis_params p;
    memset(&p, 0, sizeof p);
    p.url = "redis://127.0.0.1:6379/0";
    p.timeout_ms = 5;
    p.connect_timeout_ms = 200;
    p.backoff_min_ms = 20;
    p.backoff_max_ms = 2000;
    p.max_pending = 10000;
    return p;
}

/* ---- URL ------------------------------------------------------------ */

static int redis_fail(char *errbuf, size_t errlen, int code, const char *msg)
{
    if (errlen)
        snprintf(errbuf, errlen, "%s", msg);
    return code;
}

static int redis_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into out (cap bytes). 0 or -1. */
static int redis_pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = redis_hexval(s[i + 1]), l = redis_hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 0;
}

static int redis_parse_hostport(const char *s, size_t n, char *host, size_t hcap, int *port)
{
    const char *colon = memrchr(s, ':', n);
    size_t hl = colon ? (size_t)(colon - s) : n;
    if (hl == 0 || hl >= hcap)
        return -1;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = 6379;
    if (colon) {
        size_t pl = n - hl - 1;
        if (pl == 0 || pl > 5)
            return -1;
        int v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)colon[1 + i]))
                return -1;
            v = v * 10 + (colon[1 + i] - '0');
        }
        if (v < 1 || v > 65535)
            return -1;
        *port = v;
    }
    return 0;
}

int redis_parse_url(const char *url, redis_url *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!url)
        return redis_fail(errbuf, errlen, LLMC_EINVAL, "no store URL");
    const char *s;
    if (!strncmp(url, "redis://", 8)) {
        s = url + 8;
    } else if (!strncmp(url, "redis-cluster://", 16)) {
        s = url + 16;
        out->cluster = 1;
    } else if (!strncmp(url, "rediss://", 9) || !strncmp(url, "rediss-cluster://", 17)) {
        return redis_fail(errbuf, errlen, LLMC_ENOTSUP,
                          "TLS to Redis (rediss://) is not supported by this build (hiredis "
                          "0.14 has no TLS); use redis:// on a trusted network or a TLS tunnel");
    } else {
        return redis_fail(errbuf, errlen, LLMC_EINVAL,
                          "store URL must start with redis:// or redis-cluster://");
    }
    const char *at = strrchr(s, '@');
    if (at) {
        /* USER:PASS@, :PASS@ or USER@ (the password then comes from
         * --store-password), as URLs spell them. */
        const char *colon = memchr(s, ':', (size_t)(at - s));
        const char *ue = colon ? colon : at;
        if (redis_pct_decode(s, (size_t)(ue - s), out->user, sizeof out->user))
            return redis_fail(errbuf, errlen, LLMC_EINVAL, "bad user name in store URL");
        if (colon && redis_pct_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                                      sizeof out->password))
            return redis_fail(errbuf, errlen, LLMC_EINVAL, "bad password in store URL");
        s = at + 1;
    }
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (slash && slash[1]) {
        char *end;
        errno = 0;
        long db = strtol(slash + 1, &end, 10);
        if (*end || errno || db < 0 || db > 1000000)
            return redis_fail(errbuf, errlen, LLMC_EINVAL,
                              "bad database number in store URL (redis://HOST:PORT/DB)");
        if (out->cluster && db)
            return redis_fail(errbuf, errlen, LLMC_EINVAL, "Redis Cluster has only database 0");
        out->db = (int)db;
    }
    const char *p = s, *end = s + hl;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (out->nseeds == REDIS_MAX_SEEDS)
            return redis_fail(errbuf, errlen, LLMC_EINVAL, "too many hosts in store URL");
        if (redis_parse_hostport(p, (size_t)(e - p), out->seeds[out->nseeds].host,
                                 sizeof out->seeds[0].host, &out->seeds[out->nseeds].port))
            return redis_fail(errbuf, errlen, LLMC_EINVAL, "bad HOST:PORT in store URL");
        out->nseeds++;
        p = comma ? comma + 1 : end;
    }
    if (out->nseeds == 0)
        return redis_fail(errbuf, errlen, LLMC_EINVAL, "no host in store URL");
    if (!out->cluster && out->nseeds > 1)
        return redis_fail(errbuf, errlen, LLMC_EINVAL,
                          "several hosts need redis-cluster:// (redis:// names one Redis)");
    return 0;
}

char *redis_url_redact(const char *url, char *out, size_t cap)
{
    if (!cap)
        return out;
    const char *scheme = url ? strstr(url, "://") : NULL;
    const char *at = scheme ? strrchr(scheme, '@') : NULL;
    if (!at) {
        snprintf(out, cap, "%s", url ? url : "");
        return out;
    }
    const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
    if (!colon) /* USER@ only: no password in it */
        snprintf(out, cap, "%s", url);
    else
        snprintf(out, cap, "%.*s***%s", (int)(colon + 1 - url), url, at);
    return out;
}

/* ---- cluster key slot ------------------------------------------------ */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection,
 * as the Redis Cluster specification defines the key slot. */
static uint16_t redis_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return redis_crc16(open + 1, (size_t)(close - open - 1)) & (REDIS_SLOTS - 1);
    }
    return redis_crc16(key, len) & (REDIS_SLOTS - 1);
}

/* ---- nodes and connections ------------------------------------------ */

static void redis_node_connect(redis_node *n);
static void redis_refresh(redis_client *r);

static void redis_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_node_connect(arg);
}

static void redis_schedule_retry(redis_node *n)
{
    redis_client *r = n->r;
    if (r->freeing)
        return;
    struct timeval tv = llmc_timeval_ms(n->backoff_ms);
    evtimer_add(n->retry, &tv);
    n->backoff_ms *= 2;
    if (n->backoff_ms > r->p.backoff_max_ms)
        n->backoff_ms = r->p.backoff_max_ms;
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    redis_node *n = ac->data;
    redis_client *r = n->r;
    evtimer_del(n->conn_to);
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        r->st.connect_failures++;
        if (n->backoff_ms == r->p.backoff_min_ms) /* the first failure in a row */
            redis_log(r, "cannot connect to %s:%d: %s", n->host, n->port, ac->errstr);
        n->ac = NULL;
        n->up = 0;
        redis_schedule_retry(n);
        return;
    }
    n->up = 1;
    r->st.connects++;
    if (n->ever_up) {
        r->st.reconnects++;
        redis_log(r, "reconnected to %s:%d", n->host, n->port);
    }
    n->ever_up = 1;
    n->backoff_ms = r->p.backoff_min_ms;
    if (r->u.cluster && !r->map_loaded)
        redis_refresh(r);
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_node *n = ac->data;
    redis_client *r = n->r;
    if (n->ac == ac) {
        n->ac = NULL;
        n->up = 0;
    }
    if (r->freeing)
        return;
    r->st.disconnects++;
    redis_log(r, "lost connection to %s:%d%s%s", n->host, n->port, status == REDIS_OK ? "" : ": ",
              status == REDIS_OK ? "" : ac->errstr);
    redis_schedule_retry(n);
    if (r->u.cluster)
        redis_refresh(r);
}

/* The connect did not complete in time: abandon it (we are in a timer
 * callback, outside hiredis, so freeing the context here is allowed). */
static void redis_conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_node *n = arg;
    redis_client *r = n->r;
    redisAsyncContext *ac = n->ac;
    if (!ac || n->up)
        return;
    n->ac = NULL;
    r->st.connect_failures++;
    redis_log(r, "connect to %s:%d timed out after %d ms", n->host, n->port,
              r->p.connect_timeout_ms);
    redisAsyncFree(ac);
    redis_schedule_retry(n);
}

static void redis_on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_node *n = priv;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        /* Redis's message (WRONGPASS / NOAUTH / ERR ...) never echoes the
         * password; only the user name is ours to print. */
        n->r->st.auth_failures++;
        redis_log(n->r, "AUTH%s%s refused by %s:%d: %s", n->r->u.user[0] ? " as " : "",
                  n->r->u.user, n->host, n->port, rep->str);
        n->backoff_ms = n->r->p.backoff_max_ms;
        redisAsyncDisconnect(ac);
    }
}

static void redis_on_select(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_node *n = priv;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        redis_log(n->r, "SELECT %d refused by %s:%d: %s", n->r->u.db, n->host, n->port, rep->str);
        n->backoff_ms = n->r->p.backoff_max_ms;
        redisAsyncDisconnect(ac);
    }
}

static void redis_node_connect(redis_node *n)
{
    redis_client *r = n->r;
    if (n->ac || r->freeing)
        return;
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err) {
        r->st.connect_failures++;
        if (n->backoff_ms == r->p.backoff_min_ms)
            redis_log(r, "cannot connect to %s:%d: %s", n->host, n->port,
                      ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        redis_schedule_retry(n);
        return;
    }
    ac->data = n;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        redis_schedule_retry(n);
        return;
    }
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    n->ac = ac;
    n->up = 0;
    if (r->password) {
        const char *av[3] = {"AUTH", r->u.user, r->password};
        size_t al[3] = {4, strlen(r->u.user), strlen(r->password)};
        if (r->u.user[0])
            redisAsyncCommandArgv(ac, redis_on_auth, n, 3, av, al);
        else {
            av[1] = r->password;
            al[1] = al[2];
            redisAsyncCommandArgv(ac, redis_on_auth, n, 2, av, al);
        }
    }
    if (r->u.db) {
        char db[16];
        int dl = snprintf(db, sizeof db, "%d", r->u.db);
        const char *av[2] = {"SELECT", db};
        size_t al[2] = {6, (size_t)dl};
        redisAsyncCommandArgv(ac, redis_on_select, n, 2, av, al);
    }
    if (r->p.connect_timeout_ms > 0) {
        struct timeval tv = llmc_timeval_ms(r->p.connect_timeout_ms);
        evtimer_add(n->conn_to, &tv);
    }
}

/* The node host:port, created (and connecting) if new; NULL when the table
 * is full. */
static redis_node *redis_node_get(redis_client *r, const char *host, int port, int *idx)
{
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && !strcmp(r->nodes[i]->host, host)) {
            if (idx)
                *idx = i;
            return r->nodes[i];
        }
    if (r->nnodes == REDIS_MAX_NODES || strlen(host) >= sizeof r->nodes[0]->host)
        return NULL;
    redis_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->r = r;
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->backoff_ms = r->p.backoff_min_ms;
    n->retry = evtimer_new(r->base, redis_retry_cb, n);
    n->conn_to = evtimer_new(r->base, redis_conn_timeout_cb, n);
    if (!n->retry || !n->conn_to) {
        if (n->retry)
            event_free(n->retry);
        if (n->conn_to)
            event_free(n->conn_to);
        free(n);
        return NULL;
    }
    if (idx)
        *idx = r->nnodes;
    r->nodes[r->nnodes++] = n;
    redis_node_connect(n);
    return n;
}

/* ---- requests --------------------------------------------------------- */

static void redis_req_free(redis_req *q)
{
    if (q->timer)
        event_free(q->timer);
    if (q->argv) {
        for (int i = 0; i < q->argc; i++)
            free(q->argv[i]);
        free(q->argv);
        free(q->argvlen);
    }
    free(q);
}

static void redis_finish(redis_req *q, int status, redisReply *rep)
{
    redis_client *r = q->r;
    if (q->done)
        return;
    q->done = 1;
    if (q->timer)
        evtimer_del(q->timer);
    if (status == 0) {
        r->st.replies++;
        redis_rtt_add(r->st.rtt_hist, redis_ms_since(&q->t0));
    } else if (status == LLMC_ETIMEDOUT) {
        r->st.timeouts++;
    } else {
        r->st.errors++;
    }
    q->cb(r, status, rep, q->arg);
}

static void redis_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_finish(arg, LLMC_ETIMEDOUT, NULL);
}

static void redis_on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Queue q on node n (with ASKING first when asking). 0 or LLMC_EUPSTREAM /
 * LLMC_EBUSY. */
static int redis_send(redis_req *q, redis_node *n, int asking, int argc, const char **argv,
                      const size_t *argvlen)
{
    redis_client *r = q->r;
    if (!n->ac) {
        if (r->u.cluster)
            redis_refresh(r);
        return LLMC_EUPSTREAM;
    }
    if (n->pending >= r->p.max_pending)
        return LLMC_EBUSY;
    if (asking && redisAsyncCommand(n->ac, NULL, NULL, "ASKING") != REDIS_OK)
        return LLMC_EUPSTREAM;
    if (redisAsyncCommandArgv(n->ac, redis_on_reply, q, argc, argv, argvlen) != REDIS_OK)
        return LLMC_EUPSTREAM;
    n->pending++;
    q->node = n;
    return 0;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and the node. */
static int redis_parse_redirect(const char *s, int *slot, char *host, size_t hcap, int *port)
{
    const char *sp = strchr(s, ' ');
    if (!sp)
        return -1;
    char *end;
    long v = strtol(sp + 1, &end, 10);
    if (*end != ' ' || v < 0 || v >= REDIS_SLOTS)
        return -1;
    *slot = (int)v;
    return redis_parse_hostport(end + 1, strlen(end + 1), host, hcap, port);
}

static void redis_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_req *q = priv;
    redis_client *r = q->r;
    redisReply *rep = reply;
    q->node->pending--;
    if (q->done) {
        redis_req_free(q);
        return;
    }
    if (rep && rep->type == REDIS_REPLY_ERROR && r->u.cluster && q->argv &&
        (!strncmp(rep->str, "MOVED ", 6) || !strncmp(rep->str, "ASK ", 4))) {
        int ask = rep->str[0] == 'A', slot, port, idx;
        char host[256];
        redis_node *n;
        if (q->redirects < REDIS_MAX_REDIRECTS &&
            !redis_parse_redirect(rep->str, &slot, host, sizeof host, &port) &&
            (n = redis_node_get(r, host, port, &idx))) {
            q->redirects++;
            if (ask) {
                r->st.ask++;
            } else {
                r->st.moved++;
                r->slots[slot] = (int16_t)idx;
                redis_refresh(r);
            }
            if (redis_send(q, n, ask, q->argc, (const char **)q->argv, q->argvlen) == 0)
                return;
        }
        redis_finish(q, LLMC_EUPSTREAM, rep);
        redis_req_free(q);
        return;
    }
    if (!rep)
        redis_finish(q, LLMC_EUPSTREAM, NULL);
    else if (rep->type == REDIS_REPLY_ERROR)
        redis_finish(q, LLMC_EUPSTREAM, rep);
    else
        redis_finish(q, 0, rep);
    redis_req_free(q);
}

static redis_req *redis_req_new(redis_client *r, int argc, const char **argv, const size_t *argvlen,
                                int timeout_ms, redis_cb cb, void *arg)
{
    redis_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    clock_gettime(CLOCK_MONOTONIC, &q->t0);
    if (r->u.cluster) {
        q->argc = argc;
        q->argv = calloc((size_t)argc, sizeof *q->argv);
        q->argvlen = calloc((size_t)argc, sizeof *q->argvlen);
        if (!q->argv || !q->argvlen)
            goto fail;
        for (int i = 0; i < argc; i++) {
            q->argv[i] = malloc(argvlen[i] + 1);
            if (!q->argv[i])
                goto fail;
            memcpy(q->argv[i], argv[i], argvlen[i]);
            q->argvlen[i] = argvlen[i];
        }
    }
    if (timeout_ms < 0)
        timeout_ms = r->p.timeout_ms;
    if (timeout_ms > 0) {
        q->timer = evtimer_new(r->base, redis_timeout_cb, q);
        if (!q->timer)
            goto fail;
        struct timeval tv = llmc_timeval_ms(timeout_ms);
        evtimer_add(q->timer, &tv);
    }
    return q;
fail:
    redis_req_free(q);
    return NULL;
}

static int redis_issue(redis_client *r, redis_node *n, int argc, const char **argv,
                       const size_t *argvlen, int timeout_ms, redis_cb cb, void *arg)
{
    if (!n) {
        r->st.refused++;
        return LLMC_EUPSTREAM;
    }
    redis_req *q = redis_req_new(r, argc, argv, argvlen, timeout_ms, cb, arg);
    if (!q) {
        r->st.refused++;
        return LLMC_ENOMEM;
    }
    int rc = redis_send(q, n, 0, argc, argv, argvlen);
    if (rc) {
        r->st.refused++;
        redis_req_free(q);
        return rc;
    }
    r->st.commands++;
    return 0;
}

/* The node serving a key: the slot map's, else (map not loaded, or a hole
 * during a reshard) any node that is up, whose MOVED will correct us. */
static redis_node *redis_route(redis_client *r, const char *key, size_t keylen)
{
    if (!r->u.cluster)
        return r->nodes[0];
    if (key) {
        int i = r->slots[redis_key_slot(key, keylen)];
        if (i >= 0)
            return r->nodes[i];
    }
    for (int k = 0; k < r->nnodes; k++)
        if (r->nodes[k]->up)
            return r->nodes[k];
    return r->nodes[0];
}

int redis_command(redis_client *r, const char *key, size_t keylen, int argc, const char **argv,
                  const size_t *argvlen, int timeout_ms, redis_cb cb, void *arg)
{
    if (!r || argc < 1 || !argv || !argvlen || !cb)
        return LLMC_EINVAL;
    return redis_issue(r, redis_route(r, key, keylen), argc, argv, argvlen, timeout_ms, cb, arg);
}

int redis_primaries(redis_client *r)
{
    if (!r->u.cluster || !r->map_loaded)
        return 1;
    return r->nprimaries > 0 ? r->nprimaries : 1;
}

int redis_command_node(redis_client *r, int i, int argc, const char **argv, const size_t *argvlen,
                       int timeout_ms, redis_cb cb, void *arg)
{
    if (!r || argc < 1 || !argv || !argvlen || !cb || i < 0 || i >= redis_primaries(r))
        return LLMC_EINVAL;
    redis_node *n = r->nodes[0];
    if (r->u.cluster && r->map_loaded && r->nprimaries > 0)
        n = r->nodes[r->primaries[i]];
    return redis_issue(r, n, argc, argv, argvlen, timeout_ms, cb, arg);
}

int redis_ready(redis_client *r)
{
    if (!r->u.cluster)
        return r->nodes[0]->up;
    if (!r->map_loaded)
        return 0;
    for (int i = 0; i < r->nprimaries; i++)
        if (!r->nodes[r->primaries[i]]->up)
            return 0;
    return 1;
}

/* ---- cluster slot map ------------------------------------------------- */

static void redis_on_slots(redis_client *r, int status, redisReply *rep, void *arg)
{
    r->refreshing = 0;
    clock_gettime(CLOCK_MONOTONIC, &r->last_refresh);
    if (status || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        /* No map from this node (down, or a cluster still forming): try
         * another one soon. */
        struct timeval tv = llmc_timeval_ms(REDIS_REFRESH_MS);
        evtimer_add(r->refresh_timer, &tv);
        return;
    }
    int16_t *slots = malloc(sizeof r->slots);
    if (!slots)
        return;
    for (int i = 0; i < REDIS_SLOTS; i++)
        slots[i] = -1;
    int prim[REDIS_MAX_NODES], np = 0;
    for (size_t k = 0; k < rep->elements; k++) {
        redisReply *e = rep->element[k];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        redisReply *m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long a = e->element[0]->integer, b = e->element[1]->integer;
        if (a < 0 || b >= REDIS_SLOTS || a > b)
            continue;
        /* An empty host means "the address you reached me on". */
        const char *host = m->element[0]->str[0] ? m->element[0]->str : r->u.seeds[0].host;
        int idx;
        if (!redis_node_get(r, host, (int)m->element[1]->integer, &idx))
            continue;
        for (long long s = a; s <= b; s++)
            slots[s] = (int16_t)idx;
        int seen = 0;
        for (int i = 0; i < np; i++)
            seen |= prim[i] == idx;
        if (!seen)
            prim[np++] = idx;
    }
    memcpy(r->slots, slots, sizeof r->slots);
    free(slots);
    memcpy(r->primaries, prim, sizeof(int) * (size_t)np);
    r->nprimaries = np;
    r->map_loaded = 1;
    r->st.slot_refreshes++;
}

static void redis_refresh_now(redis_client *r)
{
    if (r->refreshing || r->freeing)
        return;
    static const char *av[2] = {"CLUSTER", "SLOTS"};
    static const size_t al[2] = {7, 5};
    for (int k = 0; k < r->nnodes; k++) {
        redis_node *n = r->nodes[(r->refresh_rr + k) % r->nnodes];
        if (!n->up)
            continue;
        r->refresh_rr = (r->refresh_rr + k + 1) % r->nnodes;
        int t = r->p.timeout_ms > 0 && r->p.timeout_ms < 1000 ? 1000 : r->p.timeout_ms;
        if (redis_issue(r, n, 2, av, al, t, redis_on_slots, NULL) == 0) {
            r->refreshing = 1;
            return;
        }
    }
    /* Nobody is up yet: a connect callback will ask again; keep trying. */
    struct timeval tv = llmc_timeval_ms(REDIS_REFRESH_MS);
    evtimer_add(r->refresh_timer, &tv);
}

static void redis_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_refresh_now(arg);
}

/* Ask for a new slot map: now, or when REDIS_REFRESH_MS has passed since the
 * last one (several MOVED in a burst make one CLUSTER SLOTS). */
static void redis_refresh(redis_client *r)
{
    if (r->refreshing || r->freeing || evtimer_pending(r->refresh_timer, NULL))
        return;
    double since = redis_ms_since(&r->last_refresh);
    if (r->last_refresh.tv_sec == 0 || since >= REDIS_REFRESH_MS) {
        redis_refresh_now(r);
        return;
    }
    struct timeval tv = llmc_timeval_ms(REDIS_REFRESH_MS - (int)since + 1);
    evtimer_add(r->refresh_timer, &tv);
}

/* ---- life cycle ------------------------------------------------------- */

redis_client *redis_new(struct event_base *base, const redis_params *p, int *err, char *errbuf,
                        size_t errlen)
{
    redis_params d = p ? *p : redis_default_params();
    int e = 0;
    redis_client *r = calloc(1, sizeof *r);
    if (!r) {
        e = LLMC_ENOMEM;
        goto fail;
    }
    e = redis_parse_url(d.url, &r->u, errbuf, errlen);
    if (e)
        goto fail;
    if (d.backoff_min_ms < 1)
        d.backoff_min_ms = 1;
    if (d.backoff_max_ms < d.backoff_min_ms)
        d.backoff_max_ms = d.backoff_min_ms;
    if (d.max_pending < 1)
        d.max_pending = 1;
    d.url = NULL; /* not kept: it may hold the password */
    r->p = d;
    r->base = base;
    const char *pw = p && p->password && p->password[0] ? p->password : r->u.password;
    if (pw[0] && !(r->password = strdup(pw))) {
        e = LLMC_ENOMEM;
        goto fail;
    }
    memset(r->u.password, 0, sizeof r->u.password);
    r->p.password = NULL;
    for (int i = 0; i < REDIS_SLOTS; i++)
        r->slots[i] = -1;
    r->refresh_timer = evtimer_new(base, redis_refresh_cb, r);
    if (!r->refresh_timer) {
        e = LLMC_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < r->u.nseeds; i++)
        if (!redis_node_get(r, r->u.seeds[i].host, r->u.seeds[i].port, NULL)) {
            e = LLMC_ENOMEM;
            goto fail;
        }
    return r;
fail:
    if (err)
        *err = e;
    redis_free(r);
    return NULL;
}

void redis_free(redis_client *r)
{
    if (!r)
        return;
    r->freeing = 1;
    for (int i = 0; i < r->nnodes; i++) {
        redis_node *n = r->nodes[i];
        redisAsyncContext *ac = n->ac;
        n->ac = NULL;
        n->up = 0;
        if (ac)
            redisAsyncFree(ac); /* runs pending callbacks with NULL replies */
    }
    for (int i = 0; i < r->nnodes; i++) {
        event_free(r->nodes[i]->retry);
        event_free(r->nodes[i]->conn_to);
        free(r->nodes[i]);
    }
    if (r->refresh_timer)
        event_free(r->refresh_timer);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r);
}

void redis_get_stats(redis_client *r, redis_stats *st)
{
    *st = r->st;
    st->nodes = (uint32_t)r->nnodes;
    st->nodes_up = 0;
    for (int i = 0; i < r->nnodes; i++)
        st->nodes_up += r->nodes[i]->up ? 1u : 0u;
}

double redis_rtt_quantile(const redis_stats *st, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < REDIS_RTT_BUCKETS; i++)
        total += st->rtt_hist[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.5), acc = 0;
    if (want < 1)
        want = 1;
    for (int i = 0; i < REDIS_RTT_BUCKETS; i++) {
        acc += st->rtt_hist[i];
        if (acc >= want)
            return (double)(1u << i) / 1e3;
    }
    return (double)(1u << (REDIS_RTT_BUCKETS - 1)) / 1e3;
}
