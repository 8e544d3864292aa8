/*
 * server.h — the engine's OpenAI-compatible HTTP server (engine-internal).
 */
#ifndef ENGINE_SERVER_H
#define ENGINE_SERVER_H

#include "runner.h"

typedef struct {
    const char *host;       /* default 127.0.0.1 */
    int port;               /* 0 = any free port (printed at start) */
    const char *model_name; /* served model name */
    int workers;            /* generation threads (default 2) */
    runner *r;              /* borrowed; outlives the server */
    int prefix_caching;     /* for vllm:cache_config_info */
} srv_params;

/* Serve until SIGINT or SIGTERM. Prints one line
 * "llmcached-engine: listening on http://HOST:PORT" to stdout once bound.
 * Returns 0 after a clean shutdown, or a negative LLMC_E* code. */
int srv_run(const srv_params *p);

#endif
