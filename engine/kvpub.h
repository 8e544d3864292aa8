/*
 * kvpub.h — KV cache events in vLLM's format on ZeroMQ (engine-internal;
 * the wire format is written down in kvpub.c).
 */
#ifndef ENGINE_KVPUB_H
#define ENGINE_KVPUB_H

#include <stddef.h>
#include <stdint.h>

#include "llmcache.h"

typedef struct kvpub kvpub;

typedef struct {
    const char *endpoint;        /* PUB, bound: e.g. tcp://127.0.0.1:5557 (port * = any) */
    const char *replay_endpoint; /* ROUTER, bound, or NULL for none */
    const char *topic;           /* NULL = "" (vLLM's default) */
    int block_size;              /* the pool's, sent in BlockStored */
} kvpub_params;

/* Bind the sockets and start the publisher thread. bound / rbound receive
 * the endpoints actually bound (a port given as * resolved). NULL with a
 * message in err when a socket cannot be bound. */
kvpub *kvpub_new(const kvpub_params *p, char *bound, size_t bound_cap, char *rbound,
                 size_t rbound_cap, char *err, size_t errlen);
/* The pool listener (llmc_kvpool_set_listener(pool, kvpub_listener, k)). */
void kvpub_listener(void *ud, const llmc_kv_event *ev);
/* Batches and events sent so far. */
void kvpub_stats(kvpub *k, uint64_t *batches, uint64_t *events);
/* Send what is pending, stop the thread, close the sockets. NULL: no-op.
 * Remove the pool listener first. */
void kvpub_free(kvpub *k);

#endif
