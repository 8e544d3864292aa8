/*
 * main.c — llmcached-engine: command line, model loading, then the server.
 *
 *   llmcached-engine --model FILE --tokenizer FILE [--listen HOST:PORT]
 *                    [--served-model-name NAME] [--workers N]
 *                    [--block-size B] [--num-blocks N] [--no-prefix-caching]
 *                    [--kv-events tcp://HOST:PORT [--kv-events-replay tcp://HOST:PORT]]
 *                    [--kv-events-topic TOPIC]
 *
 * PORT 0 picks a free port; the line printed at start says which. With
 * --kv-events the engine publishes its KV cache events in vLLM's format
 * (kvpub.c; port * = any free port, printed on a line "llmcached-engine: kv
 * events on ENDPOINT replay ENDPOINT" before the listening line).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvpub.h"
#include "server.h"

static void usage(void)
{
    fprintf(stderr, "usage: llmcached-engine --model FILE --tokenizer FILE [--listen HOST:PORT]\n"
                    "         [--served-model-name NAME] [--workers N] [--block-size B]\n"
                    "         [--num-blocks N] [--no-prefix-caching]\n"
                    "         [--kv-events tcp://HOST:PORT [--kv-events-replay tcp://HOST:PORT]]\n"
                    "         [--kv-events-topic TOPIC]\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    runner_params rp = runner_default_params();
    srv_params sp = {0};
    char host[256] = "127.0.0.1";
    const char *name = NULL;
    kvpub_params kp = {0};
    sp.port = 8000;
    sp.workers = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--no-prefix-caching")) {
            rp.enable_prefix_caching = 0;
            continue;
        }
        if (!strcmp(a, "--enable-prefix-caching")) {
            rp.enable_prefix_caching = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--model"))
            rp.model_path = v;
        else if (!strcmp(a, "--tokenizer"))
            rp.tokenizer_path = v;
        else if (!strcmp(a, "--served-model-name"))
            name = v;
        else if (!strcmp(a, "--workers"))
            bad = parse_int(v, 1, 256, &sp.workers);
        else if (!strcmp(a, "--block-size"))
            bad = parse_int(v, 1, 4096, &rp.block_size);
        else if (!strcmp(a, "--num-blocks"))
            bad = parse_int(v, 1, 1 << 24, &rp.num_blocks);
        else if (!strcmp(a, "--kv-events"))
            bad = strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6), kp.endpoint = v;
        else if (!strcmp(a, "--kv-events-replay"))
            bad = strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6), kp.replay_endpoint = v;
        else if (!strcmp(a, "--kv-events-topic"))
            kp.topic = v;
        else if (!strcmp(a, "--listen")) {
            const char *c = strrchr(v, ':');
            if (!c || (size_t)(c - v) >= sizeof host || parse_int(c + 1, 0, 65535, &sp.port))
                bad = 1;
            else if (c > v) {
                memcpy(host, v, (size_t)(c - v));
                host[c - v] = 0;
            }
        } else
            bad = 1;
        if (bad) {
            fprintf(stderr, "llmcached-engine: bad option %s %s\n", a, v);
            usage();
            return 2;
        }
    }
    if (!rp.model_path || !rp.tokenizer_path || (kp.replay_endpoint && !kp.endpoint)) {
        usage();
        return 2;
    }
    int err = 0;
    runner *r = runner_new(&rp, &err);
    if (!r) {
        fprintf(stderr, "llmcached-engine: cannot load %s / %s: %s\n", rp.model_path,
                rp.tokenizer_path, llmc_strerror(err));
        return 1;
    }
    char derived[256];
    if (!name) { /* the model file's base name without extension */
        const char *b = strrchr(rp.model_path, '/');
        snprintf(derived, sizeof derived, "%s", b ? b + 1 : rp.model_path);
        char *dot = strrchr(derived, '.');
        if (dot && dot != derived)
            *dot = 0;
        name = derived;
    }
    sp.host = host;
    sp.model_name = name;
    sp.r = r;
    sp.prefix_caching = rp.enable_prefix_caching;
    kvpub *kv = NULL;
    if (kp.endpoint) {
        char bound[256], rbound[256], why[320];
        kp.block_size = llmc_kvpool_block_size(runner_pool(r));
        kv = kvpub_new(&kp, bound, sizeof bound, rbound, sizeof rbound, why, sizeof why);
        if (!kv) {
            fprintf(stderr, "llmcached-engine: --kv-events: %s\n", why);
            runner_free(r);
            return 1;
        }
        llmc_kvpool_set_listener(runner_pool(r), kvpub_listener, kv);
        printf("llmcached-engine: kv events on %s replay %s\n", bound, rbound[0] ? rbound : "-");
    }
    int rc = srv_run(&sp);
    llmc_kvpool_set_listener(runner_pool(r), NULL, NULL);
    kvpub_free(kv);
    runner_free(r);
    return rc ? 1 : 0;
}
