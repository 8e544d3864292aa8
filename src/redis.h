/*
 * redis.h — an asynchronous Redis / Redis Cluster client on a libevent loop
 * (internal to libllmcache; the store backend behind llmc_cache uses it, the
 * request path never sees it).
 *
 * One redis_client belongs to one event loop (one thread): it is not thread
 * safe, and its callbacks run on that loop. It is built on hiredis's async
 * API and its libevent adapter (Debian's libhiredis 0.14, which has no
 * cluster client, no connect timeout and no command timeout: the three are
 * done here). See redis.c for the design.
 *
 * A command is sent with redis_command(); its callback is called exactly
 * once, later, on the loop — never from inside redis_command() — with:
 *   0               and the reply (any type but an error reply);
 *   LLMC_EUPSTREAM  Redis answered an error (reply set: reply->str says
 *                   which), or the connection was lost (reply NULL);
 *   LLMC_ETIMEDOUT  no answer within the command's timeout (reply NULL).
 * The reply is owned by hiredis and valid only during the callback. When
 * redis_command() returns an error (the node is down and reconnecting, too
 * many commands in flight, bad arguments), the callback is never called.
 */
#ifndef LLMC_REDIS_H
#define LLMC_REDIS_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct event_base;

typedef struct redis_client redis_client;

typedef void (*redis_cb)(redis_client *r, int status, redisReply *reply, void *arg);

#define REDIS_SLOTS 16384
#define REDIS_MAX_SEEDS 16

/* A parsed store URL. Strings are NUL-terminated copies inside the struct. */
typedef struct {
    int cluster; /* redis-cluster:// */
    char user[128], password[256];
    int db; /* SELECT db (single Redis only; 0 in a cluster) */
    int nseeds;
    struct {
        char host[256];
        int port;
    } seeds[REDIS_MAX_SEEDS];
} redis_url;

/*
 * Parse "redis://[[USER]:PASS@]HOST[:PORT][/DB]" or
 * "redis-cluster://[[USER]:PASS@]HOST:PORT[,HOST:PORT...]" (user and
 * password percent-decoded). Returns 0 or LLMC_EINVAL / LLMC_ENOTSUP
 * (rediss://: this hiredis has no TLS) with a message in errbuf that never
 * contains the password.
 */
int redis_parse_url(const char *url, redis_url *out, char *errbuf, size_t errlen);

/* The URL with its password replaced by "***", for logs and /stats. Returns
 * out (always NUL-terminated). */
char *redis_url_redact(const char *url, char *out, size_t cap);

typedef struct {
    const char *url;        /* redis:// or redis-cluster:// (see above) */
    const char *password;   /* when set, overrides the URL's password */
    int timeout_ms;         /* per command, redirections included (5); 0: none */
    int connect_timeout_ms; /* 200 */
    int backoff_min_ms;     /* first reconnect delay (20); doubles ... */
    int backoff_max_ms;     /* ... up to this (2000) */
    int max_pending;        /* commands in flight per node before refusing (10000) */
    /* Log sink for connection events (never given a password); NULL: stderr. */
    void (*log)(void *arg, const char *msg);
    void *log_arg;
} redis_params;

#define REDIS_RTT_BUCKETS 24 /* bucket i counts round trips below 2^i us */

typedef struct {
    uint64_t commands;   /* accepted by redis_command() */
    uint64_t refused;    /* refused by redis_command() (node down, too many in flight) */
    uint64_t replies;    /* callbacks with status 0 */
    uint64_t errors;     /* callbacks with LLMC_EUPSTREAM */
    uint64_t timeouts;   /* callbacks with LLMC_ETIMEDOUT */
    uint64_t connects;   /* successful connections, first ones included */
    uint64_t reconnects; /* successful connections after a lost one */
    uint64_t disconnects, connect_failures, auth_failures;
    uint64_t moved, ask, slot_refreshes; /* cluster only */
    uint32_t nodes, nodes_up;
    uint64_t rtt_hist[REDIS_RTT_BUCKETS]; /* round trips of answered commands */
} redis_stats;

redis_params redis_default_params(void);

/*
 * A client on base. Connections start at once, asynchronously: commands
 * issued before they are up are queued in order behind AUTH and SELECT.
 * NULL on a bad URL (*err = LLMC_EINVAL/LLMC_ENOTSUP, message in errbuf)
 * or LLMC_ENOMEM. The params' strings are copied.
 */
redis_client *redis_new(struct event_base *base, const redis_params *p, int *err, char *errbuf,
                        size_t errlen);

/* Close every connection; callbacks of commands still in flight are called
 * with LLMC_EUPSTREAM before it returns. Never call it from a callback. */
void redis_free(redis_client *r);

/*
 * Send argv (argc strings of argvlen bytes) to the node that serves key
 * (keylen bytes; key NULL: any node — in a cluster only for keyless
 * commands). timeout_ms < 0 means the client's default; 0 means none (for
 * blocking reads such as XREAD BLOCK, whose own timeout bounds them).
 * Returns 0 (cb will be called once) or a negative LLMC_E* (it will not).
 */
int redis_command(redis_client *r, const char *key, size_t keylen, int argc, const char **argv,
                  const size_t *argvlen, int timeout_ms, redis_cb cb, void *arg);

/* The number of primaries (1 for a single Redis; in a cluster, those in the
 * current slot map, at least 1), and redis_command_node() to send a command
 * to primary i — for commands that must run on every primary (SCAN, a
 * flush). Same contract as redis_command(). */
int redis_primaries(redis_client *r);
int redis_command_node(redis_client *r, int i, int argc, const char **argv, const size_t *argvlen,
                       int timeout_ms, redis_cb cb, void *arg);

/* 1 when every primary has a connection up (and, in a cluster, the slot
 * map is loaded). */
int redis_ready(redis_client *r);

/* Redis Cluster's hash slot of a key: CRC16 (XMODEM) of the key, or of the
 * part between the first '{' and the next '}' when that part is not empty. */
unsigned redis_key_slot(const char *key, size_t len);

void redis_get_stats(redis_client *r, redis_stats *st);
/* Count a round trip of ms milliseconds in a REDIS_RTT_BUCKETS histogram. */
void redis_rtt_add(uint64_t *hist, double ms);
/* Format a log line and hand it to log(arg, msg), or print it on stderr
 * as "who: msg" when log is NULL (the client's and the store's logging). */
void redis_vlog(void (*log)(void *arg, const char *msg), void *arg, const char *who,
                const char *fmt, va_list ap);
/* CLOCK_MONOTONIC in milliseconds. */
double redis_mono_ms(void);
/* Quantile q (0..1) of the round-trip histogram, in milliseconds (upper
 * bound of the bucket it falls in); 0 with no data. */
double redis_rtt_quantile(const redis_stats *st, double q);

#endif
