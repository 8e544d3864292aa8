/*
 * config.c — the daemon's options: one table, three sources.
 *
 * Every option has one name used everywhere: `name value` in the file
 * (redis.conf style, '#' comments), `--name value` or `--name=value` on the
 * command line, and LLMCACHED_NAME (upper case, '-' as '_') in the
 * environment. Later sources override earlier ones: built-in defaults, then
 * the file (--config FILE, or LLMCACHED_CONFIG), then the environment, then
 * the command line. `--help` prints this table; nothing else documents the
 * options, so they cannot drift apart: the man page llmcached(8)
 * (`--help-man`) and the example configuration file with every option
 * commented (`--print-config`, which shows the values the other options on
 * its command line give) are printed from it too, by the build.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

typedef enum {
    OPT_STR,
    OPT_INT,
    OPT_SIZE,
    OPT_MS,
    OPT_SEC,
    OPT_BOOL,
    OPT_LIST,
    OPT_DOUBLE,
    OPT_APPEND /* repeatable: kv_events[] and n_kv_events */
} opt_type;

typedef struct {
    const char *name;
    opt_type type;
    size_t off;
    const char *defval;
    const char *help;
} opt;

#define O(f) offsetof(srv_config, f)
static const opt opts[] = {
    {"config", OPT_STR, O(config_file), NULL, "configuration file (key value lines)"},
    {"listen", OPT_STR, O(listen), "127.0.0.1:8080", "address the gateway listens on, HOST:PORT"},
    {"upstream", OPT_LIST, O(upstream), NULL,
     "upstream base URL, e.g. https://api.openai.com/v1 (none: the built-in demo upstream)"},
    {"upstream-key", OPT_STR, O(upstream_key), NULL,
     "API key sent upstream; unset: the caller's Authorization is forwarded"},
    {"data-dir", OPT_STR, O(data_dir), "./data", "directory of the cache's database file"},
    {"memory", OPT_SIZE, O(memory), "256mb", "memory budget for cached entries (k/m/g suffixes)"},
    {"ttl", OPT_SEC, O(ttl), "1d",
     "default time to live of an entry (2s, 10m, 2h, 1d; bare: seconds)"},
    {"upstream-connect-timeout", OPT_MS, O(connect_timeout_ms), "5s",
     "upstream connect timeout (500ms, 5s; bare: seconds)"},
    {"upstream-timeout", OPT_MS, O(upstream_timeout_ms), "10m",
     "upstream whole-call timeout (30s, 10m; bare: seconds)"},
    {"max-body", OPT_SIZE, O(max_body), "16mb", "largest request body accepted (413 beyond)"},
    {"admin-token", OPT_STR, O(admin_token), NULL,
     "token for /stats, /metrics and /admin (unset: a random one is generated and logged)"},
    {"threads", OPT_INT, O(threads), "0", "event-loop threads (0: one per CPU)"},
    {"persist", OPT_BOOL, O(persist), "yes", "keep entries in SQLite so a restart is warm"},
    {"persist-sync", OPT_BOOL, O(persist_sync), "no",
     "commit each new entry before answering (kill -9 loses nothing)"},
    {"flush-interval", OPT_MS, O(flush_interval_ms), "1s",
     "write-behind period (100ms, 1s; bare: seconds): kill -9 loses at most this much"},
    {"namespace-header", OPT_STR, O(namespace_header), "X-LLM-Cache-Namespace",
     "request header naming a cache namespace"},
    {"shared-namespaces", OPT_STR, O(shared_namespaces), "",
     "comma-separated namespaces shared by every API key"},
    {"scope-user", OPT_BOOL, O(scope_user), "yes",
     "requests with a 'user' field are cached in that user's own scope"},
    {"demo-delay", OPT_MS, O(demo_delay_ms), "400ms",
     "latency of the built-in demo upstream (bare: seconds)"},
    {"prices", OPT_STR, O(prices), "", "model=IN/OUT,... price per million tokens, for cost saved"},
    {"semantic", OPT_BOOL, O(semantic), "yes",
     "serve similar requests (semantic tier; needs the embedder)"},
    {"semantic-threshold", OPT_DOUBLE, O(semantic_threshold), "-1",
     "minimum cosine for a semantic hit (-1: the measured default)"},
    {"semantic-thresholds", OPT_STR, O(semantic_thresholds), "",
     "per-model thresholds: model=0.9,model2=0.95"},
    {"semantic-query", OPT_STR, O(semantic_query), "last-user",
     "what a chat request's semantic text is: last-user (earlier turns must be equal), "
     "user-turns or conversation (all turns are compared)"},
    {"verify-rate", OPT_DOUBLE, O(verify_rate), "0",
     "share of hits re-asked upstream in the background to measure stale and wrong answers "
     "(0: off; each is a real upstream call)"},
    {"verify-similarity", OPT_DOUBLE, O(verify_similarity), "0.9",
     "re-asked answers at least this similar (embedding cosine) to the one served count as the "
     "same"},
    {"semantic-lexicon", OPT_STR, O(semantic_lexicon), "/usr/share/wordnet",
     "WordNet directory giving the guard synonyms (\"\": none)"},
    {"embed-backend", OPT_STR, O(embed_backend), "use", "embedder: use (built in), bert or remote"},
    {"embed-model-path", OPT_STR, O(embed_model_path), "data/models/use-lite",
     "directory of the use/bert model files"},
    {"embed-url", OPT_STR, O(embed_url), NULL, "remote embedder base URL (…/v1)"},
    {"embed-model", OPT_STR, O(embed_model), NULL, "remote embedder model name"},
    {"embed-key", OPT_STR, O(embed_key), NULL, "remote embedder API key"},
    {"embed-query-prefix", OPT_STR, O(embed_query_prefix), NULL,
     "bert: text put before every embedded text (E5's \"query: \"; default: the model's "
     "config_sentence_transformers.json prompt; \"\": none)"},
    {"embed-threads", OPT_INT, O(embed_threads), "0",
     "embedding worker threads, off the event loops (0: one per CPU)"},
    {"semantic-budget", OPT_MS, O(semantic_budget_ms), "5ms",
     "longest a miss may queue for the encoder (5ms; bare: seconds); beyond it the semantic lookup "
     "is skipped and the answer is indexed later"},
    {"embed-precision", OPT_STR, O(embed_precision), "auto",
     "use encoder: auto (int8 where the CPU has VNNI, else fp16), int8, fp16 or fp32"},
    {"route-policy", OPT_STR, O(route_policy), "prefix-affinity",
     "several upstreams: prefix-affinity, least-loaded or round-robin"},
    {"route-balance-abs", OPT_INT, O(route_balance_abs), "0",
     "prefix-affinity yields when a backend has this many more requests in flight (0: 32)"},
    {"route-balance-rel", OPT_DOUBLE, O(route_balance_rel), "0",
     "...and this times the least loaded's (0: the router's default)"},
    {"kv-events", OPT_APPEND, O(kv_events), NULL,
     "BACKEND=tcp://HOST:PORT[,tcp://HOST:PORT]: subscribe to that upstream's KV events "
     "(vLLM format; BACKEND = its index from 0 or its URL; the second endpoint is its replay "
     "socket) and route on what it really holds; repeatable (environment: entries separated by "
     "spaces or ';')"},
    {"kv-index-max-blocks", OPT_INT, O(kv_index_max_blocks), "1048576",
     "block hashes the KV event index keeps, held or remembered (100-200 bytes each at most)"},
    {"kv-tokenize-cache", OPT_INT, O(kv_tokenize_cache), "4096",
     "prompt prefixes whose tokens (from the backends' /tokenize) are kept for KV routing"},
    {"kv-new-prefix", OPT_STR, O(kv_new_prefix), "tree",
     "with --kv-events, where a prompt no engine holds or held goes: tree (this gateway's "
     "tree, then the least loaded), homed (the engine the fleet placed the fewest blocks on, "
     "from the events) or smallest (the engine holding the fewest blocks)"},
    {"kv-tokenize-wait", OPT_MS, O(kv_tokenize_wait_ms), "50ms",
     "with --kv-events, how long a request whose prompt prefix this gateway has not tokenized yet "
     "waits for its tokens (one /tokenize call), so that it is routed on the events; beyond it, "
     "the fallback routes it (0: never wait; bare: seconds)"},
    {"health-interval", OPT_MS, O(health_interval_ms), "2s",
     "health check and metrics scrape period of several upstreams (bare: seconds)"},
    {"memo-memory", OPT_SIZE, O(memo_memory), "16mb",
     "per loop: raw requests remembered for the exact-hit fast path (0: off)"},
    {"shutdown-timeout", OPT_MS, O(shutdown_timeout_ms), "10s",
     "on SIGTERM/SIGINT, how long requests in flight may finish (bare: seconds)"},
    {"max-connections", OPT_INT, O(max_connections), "10000",
     "client connections at once, all loops (503 beyond; 0: no cap)"},
    {"max-header-size", OPT_SIZE, O(max_header_size), "64kb",
     "largest request line + headers of a request (431 beyond)"},
    {"max-headers", OPT_INT, O(max_headers), "100", "most header lines in a request (431 beyond)"},
    {"header-timeout", OPT_MS, O(header_timeout_ms), "10s",
     "a request's headers must arrive within this of its first byte (408 beyond)"},
    {"idle-timeout", OPT_MS, O(idle_timeout_ms), "60s",
     "a connection silent this long with no request being answered is closed"},
    {"tenant-from", OPT_STR, O(tenant_from), "authorization",
     "what tells callers apart: authorization (the API key), header:NAME, or none (one tenant)"},
    {"anonymous", OPT_STR, O(anonymous), "share",
     "requests without the --tenant-from value: share (one anonymous tenant), no-cache "
     "(go upstream, store nothing) or reject (401)"},
    {"forward-headers", OPT_STR, O(forward_headers), "",
     "extra client headers sent upstream besides the built-in allow-list (comma-separated; "
     "a trailing * matches a prefix)"},
    {"log-level", OPT_STR, O(log_level), "info", "debug, info, warn or error"},
    {"store", OPT_STR, O(store), "sqlite",
     "where entries live: sqlite (embedded, --data-dir), redis://[USER[:PASS]@]HOST:PORT[/DB] "
     "or redis-cluster://HOST:PORT,HOST:PORT (a fleet sharing one cache)"},
    {"store-password", OPT_STR, O(store_password), NULL,
     "Redis password (instead of putting it in --store); never logged"},
    {"store-prefix", OPT_STR, O(store_prefix),
     "llmc:", "prefix of this deployment's Redis keys (several caches can share a Redis)"},
    {"store-timeout", OPT_MS, O(store_timeout_ms), "5ms",
     "a Redis read slower than this is a miss (the request goes upstream; bare: seconds)"},
    {"store-coalesce", OPT_BOOL, O(store_coalesce), "yes",
     "with a Redis store: identical new questions asked of several instances at once make one "
     "upstream call (a short lock in Redis; the others wait for the stored answer)"},
    {"store-lock-ttl", OPT_MS, O(store_lock_ttl_ms), "30s",
     "the coalescing lock's lifetime, and how long a waiting instance waits on one holder "
     "before it goes upstream itself (bare: seconds)"},
    {"store-near-ttl", OPT_SEC, O(store_near_ttl), "30s",
     "an entry read from Redis is served from memory at most this long before it is read "
     "again, s: how stale a hit can be after a delete whose event was lost"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static const opt *config_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* "16mb" → bytes. */
static int config_size(const char *v, long long *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || d < 0)
        return -1;
    while (*end == ' ')
        end++;
    long long mul = 1;
    if (!*end || !strcasecmp(end, "b"))
        mul = 1;
    else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb"))
        mul = 1024;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb"))
        mul = 1024 * 1024;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb"))
        mul = 1024LL * 1024 * 1024;
    else
        return -1;
    if (!(d * (double)mul < 9.2e18))
        return -1; /* inf, nan or past long long (found by fuzz_config: "INFmb") */
    *out = (long long)(d * (double)mul);
    return 0;
}

/* Durations: a number with a unit (ms, s, m, h, d), or a bare number, which
 * means seconds for every duration option, whatever unit the option keeps
 * internally (issue 16: "--upstream-timeout 2" once meant 2 ms while "--ttl
 * 2" meant 2 s). */
static int config_duration(const char *v, int unit_ms, long long *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || d < 0)
        return -1;
    double ms;
    if (!*end || !strcmp(end, "s"))
        ms = d * 1000;
    else if (!strcmp(end, "ms"))
        ms = d;
    else if (!strcmp(end, "m"))
        ms = d * 60000;
    else if (!strcmp(end, "h"))
        ms = d * 3600000;
    else if (!strcmp(end, "d"))
        ms = d * 86400000;
    else
        return -1;
    if (!(ms <= 1e15) || (!unit_ms && ms > 0 && ms < 1000))
        return -1; /* nan, absurd, or finer than a seconds option can keep */
    *out = unit_ms ? (long long)ms : (long long)(ms / 1000);
    return 0;
}

static int config_set(srv_config *c, const opt *o, const char *v, const char *where)
{
    void *p = (char *)c + o->off;
    long long n;
    char *end;
    switch (o->type) {
    case OPT_STR:
        free(*(char **)p);
        *(char **)p = strdup(v);
        return 0;
    case OPT_LIST:
        if (c->n_upstream >= SRV_MAX_UPSTREAMS) {
            fprintf(stderr, "llmcached: %s: too many --%s (at most %d)\n", where, o->name,
                    SRV_MAX_UPSTREAMS);
            return -1;
        }
        c->upstream[c->n_upstream++] = strdup(v);
        return 0;
    case OPT_APPEND:
        if (c->n_kv_events >= SRV_MAX_UPSTREAMS) {
            fprintf(stderr, "llmcached: %s: too many --%s (at most %d)\n", where, o->name,
                    SRV_MAX_UPSTREAMS);
            return -1;
        }
        c->kv_events[c->n_kv_events++] = strdup(v);
        return 0;
    case OPT_INT:
        errno = 0;
        n = strtoll(v, &end, 10);
        if (end == v || *end || errno || n < 0)
            goto bad;
        *(long long *)p = n;
        return 0;
    case OPT_DOUBLE: {
        errno = 0;
        double d = strtod(v, &end);
        if (end == v || *end || errno)
            goto bad;
        *(double *)p = d;
        return 0;
    }
    case OPT_SIZE:
        if (config_size(v, &n))
            goto bad;
        *(long long *)p = n;
        return 0;
    case OPT_MS:
    case OPT_SEC:
        if (config_duration(v, o->type == OPT_MS, &n))
            goto bad;
        *(long long *)p = n;
        return 0;
    case OPT_BOOL:
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1") ||
            !strcasecmp(v, "true"))
            *(int *)p = 1;
        else if (!strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0") ||
                 !strcasecmp(v, "false"))
            *(int *)p = 0;
        else
            goto bad;
        return 0;
    }
bad:
    if (o->type == OPT_MS || o->type == OPT_SEC)
        fprintf(stderr,
                "llmcached: %s: invalid duration '%s' for %s (expected e.g. 500ms, 2s, 10m, 1h, "
                "1d; a bare number is seconds%s)\n",
                where, v, o->name, o->type == OPT_SEC ? "; at least 1s" : "");
    else
        fprintf(stderr, "llmcached: %s: invalid value '%s' for %s\n", where, v, o->name);
    return -1;
}

int config_list_has(const char *list, const char *name, int icase)
{
    size_t nl = strlen(name);
    while (list && *list) {
        while (*list == ' ' || *list == ',')
            list++;
        const char *e = list;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - list);
        while (n && list[n - 1] == ' ')
            n--;
        int glob = icase && n && list[n - 1] == '*';
        size_t cmp = glob ? n - 1 : n;
        if (n && (glob ? nl >= cmp : nl == cmp) &&
            !(icase ? strncasecmp(name, list, cmp) : strncmp(name, list, cmp)))
            return 1;
        list = e;
    }
    return 0;
}

/* "policy.KEY": the policy module parses and explains its own keys. */
static int config_policy(srv_config *c, const char *key, size_t kl, const char *v,
                         const char *where)
{
    char k[128];
    snprintf(k, sizeof k, "%.*s", (int)kl, key);
    int rc = llmc_policy_set(&c->policy, k, v);
    if (rc == 0)
        return 0;
    const char *help = llmc_policy_key_help(k);
    if (rc == LLMC_ENOTFOUND)
        fprintf(stderr, "llmcached: %s: unknown policy key '%s' (see --help)\n", where, k);
    else
        fprintf(stderr, "llmcached: %s: invalid value '%s' for %s (expected %s)\n", where, v, k,
                help ? help : "see --help");
    return -1;
}

static int config_is_policy(const char *k, size_t kl)
{
    return kl > 7 && !strncmp(k, "policy.", 7);
}

void config_defaults(srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->policy = llmc_policy_default_params();
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].defval)
            config_set(c, &opts[i], opts[i].defval, "default");
}

static int config_file(srv_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "llmcached: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        size_t l = strlen(s);
        while (l && isspace((unsigned char)s[l - 1]))
            s[--l] = 0;
        if (!*s || *s == '#')
            continue;
        char *k = s;
        while (*s && !isspace((unsigned char)*s))
            s++;
        size_t kl = (size_t)(s - k);
        while (isspace((unsigned char)*s))
            s++;
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (config_is_policy(k, kl)) {
            if (!*s || config_policy(c, k, kl, s, where))
                rc = -1;
            continue;
        }
        const opt *o = config_find(k, kl);
        if (!o || o->off == O(config_file)) {
            fprintf(stderr, "llmcached: %s: unknown option '%.*s' (see --help)\n", where, (int)kl,
                    k);
            rc = -1;
            continue;
        }
        if (!*s) {
            fprintf(stderr, "llmcached: %s: option '%s' needs a value\n", where, o->name);
            rc = -1;
            continue;
        }
        if (config_set(c, o, s, where))
            rc = -1;
    }
    fclose(f);
    return rc;
}

static int config_env(srv_config *c)
{
    int rc = 0;
    for (size_t i = 0; i < NOPTS; i++) {
        char name[128] = "LLMCACHED_";
        size_t o = strlen(name);
        for (const char *p = opts[i].name; *p && o < sizeof name - 1; p++)
            name[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        name[o] = 0;
        const char *v = getenv(name);
        if (!v || opts[i].off == O(config_file))
            continue;
        if (opts[i].type == OPT_LIST) {
            /* comma-separated list in the environment */
            char *dup = strdup(v), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (config_set(c, &opts[i], t, name))
                    rc = -1;
            free(dup);
        } else if (opts[i].type == OPT_APPEND) {
            /* entries hold commas themselves (PUB,REPLAY): space or ';' separated */
            char *dup = strdup(v), *save = NULL;
            for (char *t = strtok_r(dup, " \t\n;", &save); t; t = strtok_r(NULL, " \t\n;", &save))
                if (config_set(c, &opts[i], t, name))
                    rc = -1;
            free(dup);
        } else if (config_set(c, &opts[i], v, name)) {
            rc = -1;
        }
    }
    return rc;
}

/* The policy module's keys, in the order --help and the man page list them. */
static const char *const config_policy_keys[] = {
    "enabled",   "cache-control", "temperature-max", "n",        "time-relative",
    "financial", "code",          "code-answer",     "personal", "personal-header",
    "tools",     "truncated"};
#define NPOLICY (sizeof config_policy_keys / sizeof config_policy_keys[0])

void config_print_help(FILE *f)
{
    fprintf(f,
            "llmcached %s — an LLM inference cache for OpenAI-compatible endpoints\n\n"
            "usage: llmcached [--option value]...\n\n"
            "Each option is also a line 'option value' in the --config file and an\n"
            "environment variable LLMCACHED_OPTION (upper case, '-' as '_'). Command-line\n"
            "flags override the environment, which overrides the file.\n\n",
            LLMC_VERSION);
    for (size_t i = 0; i < NOPTS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s", opts[i].name);
        fprintf(f, "  %-28s %s", left, opts[i].help);
        if (opts[i].defval && *opts[i].defval)
            fprintf(f, " [%s]", opts[i].defval);
        fputc('\n', f);
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "print this help and exit", "--version",
            "print the version and exit");
    fprintf(f,
            "\nWhen not to cache (file lines 'policy.KEY VALUE' or flags --policy.KEY VALUE):\n");
    for (size_t i = 0; i < NPOLICY; i++) {
        char left[64];
        snprintf(left, sizeof left, "--policy.%s", config_policy_keys[i]);
        const char *h = llmc_policy_key_help(config_policy_keys[i]);
        fprintf(f, "  %-28s %s\n", left, h ? h : "");
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--print-config",
            "print a configuration file of every option, commented, with the values the "
            "other options give, and exit",
            "--help-man", "print the man page llmcached(8) (roff) and exit");
}

/* roff: a backslash and a hyphen escaped, a leading '.' or '\'' guarded,
 * UTF-8 beyond ASCII as \[uXXXX] (troff reads bytes). */
static void config_roff(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\') {
            fputs("\\e", f);
        } else if (c == '-') {
            fputs("\\-", f);
        } else if (c >= 0xc0 && c < 0xf0) {
            int more = c >= 0xe0 ? 2 : 1;
            unsigned cp = c & (more == 2 ? 0x0f : 0x1f);
            for (int k = 0; k < more && (s[1] & 0xc0) == 0x80; k++)
                cp = (cp << 6) | ((unsigned char)*++s & 0x3f);
            fprintf(f, "\\[u%04X]", cp);
        } else if (c < 0x80) {
            fputc(c, f);
        }
    }
}

void config_print_man(FILE *f)
{
    fprintf(f,
            ".\\\" Generated by `llmcached --help-man` from the option table of server/config.c.\n"
            ".TH LLMCACHED 8 \"\" \"llmcached %s\" \"System Administration\"\n"
            ".SH NAME\nllmcached \\- an LLM inference cache for OpenAI\\-compatible endpoints\n"
            ".SH SYNOPSIS\n.B llmcached\n[\\fB\\-\\-config\\fR \\fIFILE\\fR] "
            "[\\fB\\-\\-\\fR\\fIoption\\fR \\fIvalue\\fR]...\n"
            ".SH DESCRIPTION\n"
            "llmcached sits between clients and OpenAI\\-compatible model endpoints (a hosted "
            "API, vLLM, SGLang, llama.cpp). Clients change their base URL only; repeated "
            "requests (exact tier) and reworded ones (semantic tier) are answered from memory, "
            "the rest go upstream, routed for the engines' prefix caches.\n.PP\n"
            "Each option is a line \\fIoption value\\fR in the configuration file, an "
            "environment variable \\fBLLMCACHED_\\fR\\fIOPTION\\fR (upper case, '\\-' as "
            "'_'), and a flag \\fB\\-\\-\\fR\\fIoption value\\fR; flags override the "
            "environment, which overrides the file.\n"
            ".SH OPTIONS\n",
            LLMC_VERSION);
    for (size_t i = 0; i < NOPTS; i++) {
        fputs(".TP\n.B \\-\\-", f);
        config_roff(f, opts[i].name);
        fputc('\n', f);
        config_roff(f, opts[i].help);
        if (opts[i].defval && *opts[i].defval) {
            fputs(" (default: ", f);
            config_roff(f, opts[i].defval);
            fputc(')', f);
        }
        fputc('\n', f);
    }
    fputs(".TP\n.B \\-\\-help\nprint the options and exit\n"
          ".TP\n.B \\-\\-version\nprint the version and exit\n"
          ".TP\n.B \\-\\-print\\-config\nprint a configuration file with every option "
          "commented, with the values the other options on the command line give, and exit\n"
          ".TP\n.B \\-\\-help\\-man\nprint this page and exit\n"
          ".SH WHEN NOT TO CACHE\nFile lines \\fBpolicy.\\fR\\fIKEY VALUE\\fR or flags "
          "\\fB\\-\\-policy.\\fR\\fIKEY VALUE\\fR:\n",
          f);
    for (size_t i = 0; i < NPOLICY; i++) {
        const char *h = llmc_policy_key_help(config_policy_keys[i]);
        fputs(".TP\n.B \\-\\-policy.", f);
        config_roff(f, config_policy_keys[i]);
        fputc('\n', f);
        config_roff(f, h ? h : "");
        fputc('\n', f);
    }
    fputs(".SH ADMINISTRATION\nWith the admin token (\\fBAuthorization: Bearer\\fR "
          "\\fITOKEN\\fR): \\fBGET /stats\\fR (JSON), \\fBGET /metrics\\fR (Prometheus), "
          "\\fBDELETE /admin/keys/\\fR\\fIKEY\\fR, \\fBPOST /admin/flush\\fR. Without it: "
          "\\fBGET /health\\fR and \\fBGET /dashboard\\fR (the page asks for the token).\n"
          ".SH SIGNALS\n\\fBSIGTERM\\fR, \\fBSIGINT\\fR: stop accepting, let requests in "
          "flight finish (\\fB\\-\\-shutdown\\-timeout\\fR), flush the database, exit 0. Under "
          "systemd (\\fBType=notify\\fR) the daemon says READY=1 once it listens and STOPPING=1 "
          "when it begins to stop.\n"
          ".SH FILES\n.TP\n.I /etc/llmcached/llmcached.conf\nthe configuration file of the "
          "packaged service (every option, commented)\n"
          ".TP\n.I /var/lib/llmcached/llmcached.db\nthe cache's SQLite database (the service's "
          "\\fB\\-\\-data\\-dir\\fR)\n"
          ".SH EXIT STATUS\n0 after a clean stop or \\fB\\-\\-help\\fR; 1 when it cannot start "
          "(database, listener, model); 2 for a bad option or configuration.\n"
          ".SH SEE ALSO\n\\fBllmcached\\-replay\\fR (the KPI report: \\fBllmcached\\-replay "
          "\\-\\-help\\fR), \\fBsystemd.service\\fR(5)\n",
          f);
}

/* An option's current value as it would be written in the file ("" when unset). */
static void config_value(FILE *f, const srv_config *c, const opt *o)
{
    const void *p = (const char *)c + o->off;
    switch (o->type) {
    case OPT_STR: {
        const char *v = *(char *const *)p;
        fputs(v ? v : "", f);
        break;
    }
    case OPT_LIST:
        for (int i = 0; i < c->n_upstream; i++)
            fprintf(f, "%s%s", i ? "," : "", c->upstream[i]);
        break;
    case OPT_INT:
    case OPT_SIZE:
        fprintf(f, "%lld", *(const long long *)p);
        break;
    case OPT_MS: /* with its unit: a bare number reads back as seconds */
        fprintf(f, "%lldms", *(const long long *)p);
        break;
    case OPT_SEC:
        fprintf(f, "%llds", *(const long long *)p);
        break;
    case OPT_DOUBLE:
        fprintf(f, "%g", *(const double *)p);
        break;
    case OPT_BOOL:
        fputs(*(const int *)p ? "yes" : "no", f);
        break;
    case OPT_APPEND: /* config_print_conf writes one line per value */
        for (int i = 0; i < c->n_kv_events; i++)
            fprintf(f, "%s%s", i ? " " : "", c->kv_events[i]);
        break;
    }
}

void config_print_conf(FILE *f, const srv_config *c)
{
    fprintf(f,
            "# llmcached.conf — llmcached %s configuration (generated by\n"
            "# `llmcached --print-config` from the daemon's option table).\n"
            "#\n"
            "# One option a line, 'option value'; '#' starts a comment. Every option is\n"
            "# here, commented out, with the value it has now: uncomment a line to set\n"
            "# it. Environment variables LLMCACHED_OPTION and --option flags override\n"
            "# this file. Policy keys are lines 'policy.KEY VALUE'. See llmcached(8).\n",
            LLMC_VERSION);
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].off == O(config_file))
            continue;
        fprintf(f, "\n# %s\n", opts[i].help);
        if (opts[i].type == OPT_LIST) {
            fprintf(f, "# (one line per upstream; several: routed by route-policy)\n");
            if (!c->n_upstream)
                fprintf(f, "#%s https://api.openai.com/v1\n", opts[i].name);
            for (int u = 0; u < c->n_upstream; u++)
                fprintf(f, "#%s %s\n", opts[i].name, c->upstream[u]);
            continue;
        }
        if (opts[i].type == OPT_APPEND) { /* repeatable: one line per value */
            if (!c->n_kv_events)
                fprintf(f, "#%s \n", opts[i].name);
            for (int k = 0; k < c->n_kv_events; k++)
                fprintf(f, "#%s %s\n", opts[i].name, c->kv_events[k]);
            continue;
        }
        fprintf(f, "#%s ", opts[i].name);
        config_value(f, c, &opts[i]);
        fputc('\n', f);
    }
    fputs("\n# When not to cache:\n", f);
    for (size_t i = 0; i < NPOLICY; i++) {
        const char *h = llmc_policy_key_help(config_policy_keys[i]);
        fprintf(f, "# policy.%s: %s\n", config_policy_keys[i], h ? h : "");
    }
}

/* Checked once all sources are read: ranges, and values with a closed set of spellings. */
static int config_check(srv_config *c)
{
    static const struct {
        const char *name;
        unsigned flag;
    } modes[] = {{"last-user", 0},
                 {"user-turns", LLMC_CANON_QUERY_USER_TURNS},
                 {"conversation", LLMC_CANON_QUERY_CONVERSATION}};
    if (!(c->verify_rate >= 0 && c->verify_rate <= 1)) {
        fprintf(stderr, "llmcached: invalid value '%g' for verify-rate (expected 0 to 1)\n",
                c->verify_rate);
        return -1;
    }
    if (!(c->verify_similarity >= -1 && c->verify_similarity <= 1)) {
        fprintf(stderr, "llmcached: invalid value '%g' for verify-similarity (expected -1 to 1)\n",
                c->verify_similarity);
        return -1;
    }
    const char *tf = c->tenant_from ? c->tenant_from : "authorization";
    if (strcmp(tf, "authorization") && strcmp(tf, "none") &&
        (strncmp(tf, "header:", 7) || !tf[7])) {
        fprintf(stderr,
                "llmcached: invalid value '%s' for tenant-from (expected authorization, "
                "header:NAME or none)\n",
                tf);
        return -1;
    }
    const char *an = c->anonymous ? c->anonymous : "share";
    if (strcmp(an, "share") && strcmp(an, "no-cache") && strcmp(an, "reject")) {
        fprintf(
            stderr,
            "llmcached: invalid value '%s' for anonymous (expected share, no-cache or reject)\n",
            an);
        return -1;
    }
    if (c->max_header_size < 1024) {
        fprintf(stderr, "llmcached: invalid value for max-header-size (at least 1kb)\n");
        return -1;
    }
    const char *st = c->store ? c->store : "sqlite";
    if (strcmp(st, "sqlite") && strncmp(st, "redis://", 8) && strncmp(st, "redis-cluster://", 16)) {
        fprintf(stderr, "llmcached: invalid value for store (expected sqlite, redis://HOST:PORT/DB "
                        "or redis-cluster://HOST:PORT,...)\n");
        return -1;
    }
    static const char *const precisions[] = {"auto", "int8", "fp16", "fp32"};
    const char *pr = c->embed_precision ? c->embed_precision : "auto";
    size_t pi = 0;
    while (pi < 4 && strcmp(pr, precisions[pi]))
        pi++;
    if (pi == 4) {
        fprintf(stderr,
                "llmcached: invalid value '%s' for embed-precision (expected auto, int8, fp16 or "
                "fp32)\n",
                pr);
        return -1;
    }
    const char *q = c->semantic_query ? c->semantic_query : "last-user";
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (!strcmp(q, modes[i].name)) {
            c->semantic_query_flag = modes[i].flag;
            return 0;
        }
    fprintf(stderr,
            "llmcached: invalid value '%s' for semantic-query (expected last-user, "
            "user-turns or conversation)\n",
            q);
    return -1;
}

int config_load(srv_config *c, int argc, char **argv)
{
    /* Pass 1: --help, --version, --help-man, --print-config and --config only. */
    const char *file = getenv("LLMCACHED_CONFIG");
    int print_conf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_print_help(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("llmcached %s\n", LLMC_VERSION);
            return 1;
        }
        if (!strcmp(argv[i], "--help-man")) {
            config_print_man(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--print-config"))
            print_conf = 1;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
    }
    int rc = 0;
    if (file) {
        free(c->config_file);
        c->config_file = strdup(file);
        if (config_file(c, file))
            return -1;
    }
    /* Environment and flags replace the file's upstream list, not extend it. */
    if (getenv("LLMCACHED_UPSTREAM")) {
        for (int i = 0; i < c->n_upstream; i++)
            free(c->upstream[i]);
        c->n_upstream = 0;
    }
    if (getenv("LLMCACHED_KV_EVENTS")) {
        for (int i = 0; i < c->n_kv_events; i++)
            free(c->kv_events[i]);
        c->n_kv_events = 0;
    }
    if (config_env(c))
        rc = -1;
    int flag_upstream = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "llmcached: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        a += 2;
        if (!strcmp(a, "print-config"))
            continue;
        const char *eq = strchr(a, '=');
        size_t kl = eq ? (size_t)(eq - a) : strlen(a);
        if (config_is_policy(a, kl)) {
            const char *pv = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!pv || config_policy(c, a, kl, pv, "command line"))
                rc = -1;
            continue;
        }
        const opt *o = config_find(a, kl);
        if (!o) {
            fprintf(stderr, "llmcached: unknown option '--%.*s' (see --help)\n", (int)kl, a);
            return -1;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "llmcached: option --%s needs a value\n", o->name);
            return -1;
        }
        if (o->off == O(config_file))
            continue;
        if (o->type == OPT_LIST && !flag_upstream) {
            flag_upstream = 1;
            for (int j = 0; j < c->n_upstream; j++)
                free(c->upstream[j]);
            c->n_upstream = 0;
        }
        if (config_set(c, o, v, "command line"))
            rc = -1;
    }
    if (!rc && config_check(c))
        rc = -1;
    if (!rc && print_conf) {
        config_print_conf(stdout, c);
        return 1;
    }
    return rc;
}

void config_free(srv_config *c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].type == OPT_STR)
            free(*(char **)((char *)c + opts[i].off));
    }
    for (int i = 0; i < c->n_upstream; i++)
        free(c->upstream[i]);
    for (int i = 0; i < c->n_kv_events; i++)
        free(c->kv_events[i]);
}

void config_embed_params(const srv_config *c, llmc_embed_params *ep)
{
    *ep = llmc_embed_default_params();
    ep->backend = c->embed_backend;
    ep->model_path = c->embed_model_path;
    ep->url = c->embed_url;
    ep->model = c->embed_model;
    ep->api_key = c->embed_key;
    ep->query_prefix = c->embed_query_prefix;
    ep->precision = c->embed_precision;
}
