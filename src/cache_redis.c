/*
 * cache_redis.c — the Redis (and Redis Cluster) store backend of llmc_cache:
 * a fleet of llmcached instances sharing one cache.
 *
 * It adapts redis_store (entries in Redis, changes through a stream) to the
 * backend seam with near_cache = 1: the memory store is a bounded near
 * cache in front of Redis, the semantic index follows the fleet's inserts
 * and deletes.
 *
 *   load         warm start: every live entry under the prefix into the
 *                near cache (the index is built from it when the semantic
 *                tier is turned on); Redis down at start = start cold
 *   loop_attach  one Redis connection per event loop, for fetches
 *   lock/unlock  the fleet's short lock (SET l:KEY NX PX on the loop's
 *                connection; the release queued behind the writes)
 *   fetch        GET on the loop's connection within --store-timeout; the
 *                copy handed back expires from the near cache after at most
 *                near_ttl_s (the bound on a stale near hit after a delete
 *                whose stream event was lost)
 *   put/del/flush  queued to redis_store's background thread (SET PXAT +
 *                XADD, DEL + XADD, SCAN + DEL + XADD): never block
 *   stream       other instances' stores come back as llmc_cache_notify_put
 *                (near cache + index), their deletes as _notify_delete;
 *                they start once llmc_redis_backend_start() binds the cache
 *
 * Redis unavailable: fetch fails (the caller counts store_unavailable and
 * goes upstream), writes are counted and dropped; the connections keep
 * reconnecting with back-off and caching resumes by itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmcache.h"
#include "redis_store.h"

struct llmc_redis_backend {
    redis_store *rs;
    llmc_cache *_Atomic cache; /* set by llmc_redis_backend_start */
    int load_deadline_ms;
    uint64_t loaded;
    void (*log)(void *arg, const char *msg);
    void *log_arg;
};

llmc_redis_backend_params llmc_redis_backend_default_params(void)
{
    redis_store_params d = redis_store_default_params();
    llmc_redis_backend_params p;
    memset(&p, 0, sizeof p);
    p.url = d.url;
    p.prefix = d.prefix;
    p.timeout_ms = d.timeout_ms;
    p.near_ttl_s = d.near_ttl_s;
    p.stream_maxlen = d.stream_maxlen;
    p.load_deadline_ms = 10000;
    return p;
}

static void crb_on_put(void *arg, const llmc_entry_info *e)
{
    llmc_redis_backend *b = arg;
    llmc_cache *c = b->cache;
    if (c)
        llmc_cache_notify_put(c, e, (int64_t)time(NULL));
}

static void crb_on_delete(void *arg, const uint8_t key[LLMC_KEY_LEN])
{
    llmc_redis_backend *b = arg;
    llmc_cache *c = b->cache;
    if (c)
        llmc_cache_notify_delete(c, key);
}

llmc_redis_backend *llmc_redis_backend_new(const llmc_redis_backend_params *p, int *err,
                                           char *errbuf, size_t errlen)
{
    llmc_redis_backend_params d = p ? *p : llmc_redis_backend_default_params();
    llmc_redis_backend *b = calloc(1, sizeof *b);
    if (!b) {
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    redis_store_params rp = redis_store_default_params();
    rp.url = d.url;
    rp.password = d.password;
    if (d.prefix)
        rp.prefix = d.prefix;
    rp.timeout_ms = d.timeout_ms;
    rp.near_ttl_s = d.near_ttl_s;
    if (d.stream_maxlen > 0)
        rp.stream_maxlen = d.stream_maxlen;
    rp.on_put = crb_on_put;
    rp.on_delete = crb_on_delete;
    rp.arg = b;
    rp.log = d.log;
    rp.log_arg = d.log_arg;
    b->rs = redis_store_open(&rp, err, errbuf, errlen);
    if (!b->rs) {
        free(b);
        return NULL;
    }
    b->load_deadline_ms = d.load_deadline_ms > 0 ? d.load_deadline_ms : 10000;
    return b;
}

static void crb_load_one(void *arg, const llmc_entry_info *e)
{
    llmc_store *near = arg;
    llmc_store_put(near, e, (int64_t)time(NULL), NULL);
}

static int crb_load(void *be, llmc_store *near, int64_t now)
{
    llmc_redis_backend *b = be;
    /* Redis unreachable at start: start cold (requests pass through,
     * counted as store_unavailable, until it answers). */
    redis_store_load(b->rs, crb_load_one, near, now, b->load_deadline_ms);
    return 0;
}

static void *crb_loop_attach(void *be, void *base)
{
    llmc_redis_backend *b = be;
    return redis_store_loop_attach(b->rs, base);
}

static void crb_loop_detach(void *be, void *loop)
{
    redis_store_loop_detach(loop);
}

static int crb_fetch(void *be, void *loop, const uint8_t key[LLMC_KEY_LEN],
                     llmc_cache_fetch_cb done, void *arg)
{
    if (!loop)
        return LLMC_ENOTFOUND;
    return redis_store_fetch(loop, key, done, arg);
}

static int crb_lock(void *be, void *loop, const uint8_t key[LLMC_KEY_LEN], int ttl_ms,
                    void (*done)(int rc, const char *holder, void *arg), void *arg)
{
    if (!loop)
        return LLMC_ENOTSUP;
    return redis_store_lock(loop, key, ttl_ms, done, arg);
}

static int crb_unlock(void *be, const uint8_t key[LLMC_KEY_LEN], int answered)
{
    llmc_redis_backend *b = be;
    return redis_store_unlock(b->rs, key, answered);
}

static int crb_put(void *be, const llmc_entry_info *e)
{
    llmc_redis_backend *b = be;
    return redis_store_put(b->rs, e);
}

static int crb_del(void *be, const uint8_t key[LLMC_KEY_LEN])
{
    llmc_redis_backend *b = be;
    return redis_store_del(b->rs, key);
}

static void crb_flush(void *be, uint64_t ns_hash, int all)
{
    llmc_redis_backend *b = be;
    redis_store_flush(b->rs, ns_hash, all);
}

static void crb_close(void *be)
{
    llmc_redis_backend *b = be;
    redis_store_close(b->rs);
    free(b);
}

static const llmc_cache_backend_ops crb_ops = {
    .name = "redis",
    .near_cache = 1,
    .load = crb_load,
    .loop_attach = crb_loop_attach,
    .loop_detach = crb_loop_detach,
    .fetch = crb_fetch,
    .lock = crb_lock,
    .unlock = crb_unlock,
    .put = crb_put,
    .del = crb_del,
    .flush = crb_flush,
    .close = crb_close,
};

const llmc_cache_backend_ops *llmc_redis_backend_ops(void)
{
    return &crb_ops;
}

int llmc_redis_backend_start(llmc_redis_backend *b, llmc_cache *c)
{
    b->cache = c;
    return redis_store_start(b->rs);
}

static double crb_quantile(const uint64_t *hist, double q)
{
    redis_stats tmp;
    memset(&tmp, 0, sizeof tmp);
    memcpy(tmp.rtt_hist, hist, sizeof tmp.rtt_hist);
    return redis_rtt_quantile(&tmp, q);
}

void llmc_redis_backend_get_stats(llmc_redis_backend *b, llmc_redis_backend_stats *st)
{
    redis_store_stats s;
    redis_store_get_stats(b->rs, &s);
    memset(st, 0, sizeof *st);
    snprintf(st->url, sizeof st->url, "%s", s.url);
    st->cluster = s.cluster;
    st->connections = s.nodes;
    st->connections_up = s.nodes_up;
    st->fetches = s.fetches;
    st->fetch_hits = s.fetch_hits;
    st->fetch_misses = s.fetch_misses;
    st->unavailable = s.fetch_unavailable;
    st->bad_values = s.bad_values;
    st->puts = s.puts;
    st->put_errors = s.put_errors + s.queue_dropped;
    st->deletes = s.deletes;
    st->flushes = s.flushes;
    st->loaded = s.loaded;
    st->stream_out = s.stream_out;
    st->stream_in = s.stream_in;
    st->stream_errors = s.stream_errors;
    st->stream_lag_ms = s.stream_lag_ms_last;
    st->stream_lag_ms_max = s.stream_lag_ms_max;
    st->rtt_p50_ms = crb_quantile(s.fetch_rtt_hist, 0.5);
    st->rtt_p99_ms = crb_quantile(s.fetch_rtt_hist, 0.99);
    st->reconnects = s.reconnects;
    st->timeouts = s.timeouts;
    st->errors = s.errors + s.refused;
    st->auth_failures = s.auth_failures;
    st->redirects = s.redirects;
}
