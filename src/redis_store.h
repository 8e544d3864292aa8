/*
 * redis_store.h — entries shared by a fleet in Redis or Redis Cluster
 * (internal; the Redis backend of llmc_cache adapts it to the store
 * backend seam). See redis_store.c for the design.
 */
#ifndef LLMC_REDIS_STORE_H
#define LLMC_REDIS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "llmcache.h"
#include "redis.h"

struct event_base;

typedef struct redis_store redis_store;
typedef struct redis_store_loop redis_store_loop;

typedef struct {
    const char *url;         /* redis://... or redis-cluster://... (redis.h) */
    const char *password;    /* overrides the URL's (--store-password); NULL */
    const char *prefix;      /* key prefix of this deployment ("llmc:") */
    int timeout_ms;          /* a fetch's deadline (5) */
    int bg_timeout_ms;       /* writes, stream, scans (1000) */
    long long stream_maxlen; /* XADD MAXLEN ~ (100000) */
    int stream_block_ms;     /* XREAD BLOCK (1000) */
    long long near_ttl_s;    /* an entry read from Redis stays in a near
                                cache at most this long (30; 0: its own TTL) */
    int max_queue;           /* writes queued for the background thread (10000) */
    /* Another instance stored / deleted an entry (from the change stream),
     * called on the store's background thread. e is borrowed for the call
     * (its expiry already bounded by near_ttl_s). May be NULL. */
    void (*on_put)(void *arg, const llmc_entry_info *e);
    void (*on_delete)(void *arg, const uint8_t key[LLMC_KEY_LEN]);
    void *arg;
    void (*log)(void *arg, const char *msg); /* NULL: stderr; never given a password */
    void *log_arg;
} redis_store_params;

typedef struct {
    uint64_t fetches, fetch_hits, fetch_misses;
    uint64_t fetch_unavailable; /* refused, timed out or failed: Redis unavailable */
    uint64_t bad_values;        /* values not ours, failing their checksum, or under a wrong key */
    uint64_t puts, put_errors, queue_dropped, deletes, flushes, flushed_keys;
    uint64_t locks_taken, locks_busy, unlocks; /* fleet locks (coalescing) */
    uint64_t loaded, load_skipped;
    uint64_t stream_out, stream_in, stream_errors;
    double stream_lag_ms_last, stream_lag_ms_max; /* XADD to our reading it */
    uint64_t fetch_rtt_hist[REDIS_RTT_BUCKETS];   /* answered fetches, as redis_stats */
    /* summed over every connection of the store */
    uint64_t reconnects, timeouts, errors, refused, auth_failures;
    uint64_t redirects;       /* cluster MOVED + ASK followed */
    uint32_t nodes_up, nodes; /* connections up / connections, over all of them */
    int cluster;
    char url[256]; /* the URL, password replaced by "***" */
} redis_store_stats;

redis_store_params redis_store_default_params(void);

/* Parse the URL and copy the params; connects nothing yet. NULL with *err
 * and a message in errbuf (never holding the password) on a bad URL. */
redis_store *redis_store_open(const redis_store_params *p, int *err, char *errbuf, size_t errlen);

/*
 * Warm start (blocking; before redis_store_start): call fn for every live
 * entry under the prefix (values that are not ours or fail their check are
 * skipped and counted), and note where the change stream is so that no
 * change after the scan is missed. Gives up after deadline_ms. 0, or
 * LLMC_EUPSTREAM / LLMC_ETIMEDOUT when Redis could not be read (the caller
 * may start cold: the store keeps reconnecting).
 */
int redis_store_load(redis_store *rs, void (*fn)(void *arg, const llmc_entry_info *e), void *arg,
                     int64_t now, int deadline_ms);

/* Start the background thread: writes, deletes, flushes, and following the
 * change stream. 0 or LLMC_ENOMEM. */
int redis_store_start(redis_store *rs);

/* A handle for fetches completing on base (one per event loop; use and
 * detach it on that loop's thread). NULL on LLMC_ENOMEM. */
redis_store_loop *redis_store_loop_attach(redis_store *rs, struct event_base *base);
void redis_store_loop_detach(redis_store_loop *l);

typedef void (*redis_store_fetch_cb)(int rc, const llmc_entry_info *e, void *arg);
/*
 * Read key from Redis. 0: done(rc, e, arg) will be called once, later, on
 * l's loop — rc 0 with e borrowed for the call (expiry bounded by
 * near_ttl_s), LLMC_ENOTFOUND (absent, expired, or a bad value), or
 * LLMC_EUPSTREAM / LLMC_ETIMEDOUT (Redis unavailable). A negative return
 * (Redis down, reconnecting) means done will not be called.
 */
int redis_store_fetch(redis_store_loop *l, const uint8_t key[LLMC_KEY_LEN],
                      redis_store_fetch_cb done, void *arg);

/*
 * The fleet's short lock on key (coalescing across instances): SET PREFIX
 * "l:" HEX <this store's origin> NX PX ttl_ms GET on l's connection, routed
 * by the lock key's own hash slot. 0: done(rc, holder, arg) will be called once,
 * later, on l's loop — rc 0 (taken: this instance holds it now), 1 (this
 * instance already held it), LLMC_EBUSY (another instance holds it), or
 * LLMC_EUPSTREAM / LLMC_ETIMEDOUT (Redis unavailable); holder is the
 * lock's value (NUL-terminated, borrowed for the call) with LLMC_EBUSY,
 * else NULL. A negative return (Redis down, reconnecting) means done will
 * not be called.
 */
int redis_store_lock(redis_store_loop *l, const uint8_t key[LLMC_KEY_LEN], int ttl_ms,
                     void (*done)(int rc, const char *holder, void *arg), void *arg);
/* Queue the release of key's lock behind the writes already queued (so an
 * answer put before it is in Redis first): the background thread deletes
 * the lock only while its value is still this store's origin (EVAL of a
 * compare-and-delete script); answered 0: instead of deleting it, set its
 * value to "!" + origin, expiry kept (KEEPTTL): the answer was not stored,
 * waiters should go upstream themselves. 0 or LLMC_EFULL. */
int redis_store_unlock(redis_store *rs, const uint8_t key[LLMC_KEY_LEN], int answered);

/* Queue a write of e (a reference is taken) / a delete / a flush of a
 * namespace (ns_hash) or of every entry (all): returns at once; the
 * background thread writes to Redis and tells the other instances through
 * the stream. 0, or LLMC_EFULL when the queue is full (counted). */
int redis_store_put(redis_store *rs, const llmc_entry_info *e);
int redis_store_del(redis_store *rs, const uint8_t key[LLMC_KEY_LEN]);
int redis_store_flush(redis_store *rs, uint64_t ns_hash, int all);

/* Wait until every queued write has been answered by Redis (or failed), at
 * most ms. 0 or LLMC_ETIMEDOUT. For tests and shutdown. */
int redis_store_drain(redis_store *rs, int ms);

void redis_store_get_stats(redis_store *rs, redis_store_stats *st);

/* Stop the thread (queued writes are attempted first, briefly) and free. */
void redis_store_close(redis_store *rs);

#endif
