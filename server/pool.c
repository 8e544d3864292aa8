/*
 * pool.c — several upstreams for one model, and which one gets a request.
 *
 * With one upstream this is a formality. With several (--upstream repeated)
 * each request is routed by the configured policy (route-policy):
 * round-robin, least-loaded, or prefix-affinity, where the prefix router
 * (src/prefix.c) remembers which backend recently served which prompt
 * prefix, so requests sharing a long prefix (a system prompt) land where
 * the engine's KV prefix cache already holds it, unless that backend is
 * overloaded.
 *
 * Health: a backend that refuses a connection is taken out for
 * health-interval and a background thread probes every backend each
 * health-interval (GET {origin}/health; any HTTP answer counts as alive,
 * since hosted APIs have no /health) and scrapes GET {origin}/metrics for
 * vLLM's prefix-cache and KV metrics, shown per backend in /metrics and
 * /stats. A request whose upstream refused it before any byte reached the
 * client is retried once on another backend (flight.c), so one dead backend
 * loses no request. A backend that comes back is forgotten by the router:
 * its KV cache restarted empty.
 *
 * KV events: with --kv-events for every backend (kvsub.c), prefix affinity
 * routes on the blocks each engine says it holds (llmc_prefix_route_held)
 * and falls back to the tree for prompts it cannot place yet.
 *
 * Locking: mu guards the router and the scraped figures; inflight and the
 * health flags are atomics read on the request path.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

enum { POOL_NEW_TREE, POOL_NEW_SMALLEST, POOL_NEW_HOMED };

typedef struct {
    char *base;   /* e.g. http://10.0.0.1:8000/v1 (no trailing /) */
    char *origin; /* scheme://host:port */
    int has_v1;
    atomic_int inflight;
    atomic_int alive;        /* last probe answered */
    atomic_llong down_until; /* ms (monotonic): out after a refused connection */
    atomic_ullong requests, failures;
    /* scraped (mu) */
    double prefix_queries, prefix_hits, kv_usage, running;
    int scraped;
} pool_backend;

struct pool {
    srv *s;
    int n;
    pool_backend b[SRV_MAX_UPSTREAMS];
    pthread_mutex_t mu;
    llmc_prefix_router *router;
    kvsub *kv;  /* the engines' KV events (--kv-events), or NULL */
    int kv_new; /* --kv-new-prefix: POOL_NEW_TREE, _SMALLEST or _HOMED */
    int policy;
    pthread_t th;
    int th_started;
    atomic_int stop;
};

static long long pool_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pool_count(pool *p)
{
    return p->n;
}

static void pool_probe(pool *p, int i, CURL *c)
{
    pool_backend *b = &p->b[i];
    char url[1200];
    char *body = NULL;
    long code = 0;
    long timeout = (long)(p->s->cfg.health_interval_ms > 0 ? p->s->cfg.health_interval_ms : 2000);
    snprintf(url, sizeof url, "%s/health", b->origin);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, upstream_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    free(body);
    body = NULL;
    int was = atomic_load(&b->alive);
    int now_alive = rc == CURLE_OK && code > 0 && code < 500;
    atomic_store(&b->alive, now_alive);
    if (now_alive && !was) {
        atomic_store(&b->down_until, 0);
        pthread_mutex_lock(&p->mu);
        llmc_prefix_forget_backend(p->router, i); /* a restart empties its KV cache */
        pthread_mutex_unlock(&p->mu);
        kvsub_forget(p->kv, i);
        srv_log(LOG_INFO, "upstream %s is back", b->base);
    } else if (!now_alive && was) {
        srv_log(LOG_WARN, "upstream %s failed its health check; routing around it", b->base);
    }
    if (!now_alive)
        return;
    snprintf(url, sizeof url, "%s/metrics", b->origin);
    curl_easy_setopt(c, CURLOPT_URL, url);
    rc = curl_easy_perform(c);
    code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code == 200 && body && strstr(body, "vllm:")) {
        double q = llmc_prometheus_sum(body, "vllm:prefix_cache_queries_total");
        double h = llmc_prometheus_sum(body, "vllm:prefix_cache_hits_total");
        double kv = llmc_prometheus_sum(body, "vllm:kv_cache_usage_perc");
        double run = llmc_prometheus_sum(body, "vllm:num_requests_running");
        pthread_mutex_lock(&p->mu);
        b->prefix_queries = q;
        b->prefix_hits = h;
        b->kv_usage = kv;
        b->running = run;
        b->scraped = 1;
        pthread_mutex_unlock(&p->mu);
    }
    free(body);
}

static void *pool_main(void *arg)
{
    pool *p = arg;
    CURL *c = curl_easy_init();
    while (!atomic_load(&p->stop)) {
        for (int i = 0; i < p->n && !atomic_load(&p->stop); i++)
            pool_probe(p, i, c);
        pthread_mutex_lock(&p->mu);
        llmc_prefix_expire(p->router);
        pthread_mutex_unlock(&p->mu);
        long long wait = p->s->cfg.health_interval_ms > 0 ? p->s->cfg.health_interval_ms : 2000;
        for (long long t = 0; t < wait && !atomic_load(&p->stop); t += 50)
            usleep(50 * 1000);
    }
    curl_easy_cleanup(c);
    return NULL;
}

pool *pool_new(srv *s, int *err)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->s = s;
    pthread_mutex_init(&p->mu, NULL);
    int n = s->cfg.n_upstream;
    for (int i = 0; i < n; i++) {
        pool_backend *b = &p->b[i];
        b->base = strdup(s->cfg.upstream[i]);
        size_t bl = strlen(b->base);
        while (bl && b->base[bl - 1] == '/')
            b->base[--bl] = 0;
        b->has_v1 = bl >= 3 && !strcmp(b->base + bl - 3, "/v1");
        const char *scheme = strstr(b->base, "://");
        const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
        b->origin = slash ? strndup(b->base, (size_t)(slash - b->base)) : strdup(b->base);
        atomic_init(&b->alive, 1);
    }
    p->n = n;
    llmc_prefix_params pp = llmc_prefix_default_params();
    int pol = llmc_prefix_policy_parse(s->cfg.route_policy ? s->cfg.route_policy : "prefix");
    if (pol < 0) {
        srv_log(LOG_ERROR,
                "route-policy: '%s' is not round-robin, least-loaded or "
                "prefix-affinity",
                s->cfg.route_policy);
        *err = LLMC_EINVAL;
        pool_free(p);
        return NULL;
    }
    pp.policy = pol;
    p->policy = pol;
    if (s->cfg.route_balance_abs > 0)
        pp.balance_abs_threshold = (int)s->cfg.route_balance_abs;
    if (s->cfg.route_balance_rel > 0)
        pp.balance_rel_threshold = s->cfg.route_balance_rel;
    p->router = llmc_prefix_router_new(&pp, n > 0 ? n : 1, err);
    if (!p->router) {
        pool_free(p);
        return NULL;
    }
    p->kv = kvsub_new(s, n, err);
    if (!p->kv && *err) {
        pool_free(p);
        return NULL;
    }
    const char *np = s->cfg.kv_new_prefix ? s->cfg.kv_new_prefix : "tree";
    p->kv_new = !strcmp(np, "tree")       ? POOL_NEW_TREE
                : !strcmp(np, "smallest") ? POOL_NEW_SMALLEST
                : !strcmp(np, "homed")    ? POOL_NEW_HOMED
                                          : -1;
    if (p->kv_new < 0) {
        srv_log(LOG_ERROR, "kv-new-prefix: '%s' is not homed, tree or smallest", np);
        *err = LLMC_EINVAL;
        pool_free(p);
        return NULL;
    }
    return p;
}

int pool_start(pool *p)
{
    if (p->n < 2)
        return 0; /* one upstream: nothing to choose, nothing to route around */
    if (pthread_create(&p->th, NULL, pool_main, p))
        return -1;
    p->th_started = 1;
    return kvsub_start(p->kv);
}

void pool_free(pool *p)
{
    if (!p)
        return;
    if (p->th_started) {
        atomic_store(&p->stop, 1);
        pthread_join(p->th, NULL);
    }
    kvsub_free(p->kv);
    for (int i = 0; i < p->n; i++) {
        free(p->b[i].base);
        free(p->b[i].origin);
    }
    llmc_prefix_router_free(p->router);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int pool_pick(pool *p, const route_in *in, int avoid)
{
    const char *key = in ? in->key : NULL;
    size_t len = key ? in->len : 0;
    if (p->n <= 1) { /* nothing to choose; still counted, as pool_end uncounts it */
        if (p->n == 1)
            atomic_fetch_add(&p->b[0].inflight, 1);
        return 0;
    }
    int load[SRV_MAX_UPSTREAMS], ok[SRV_MAX_UPSTREAMS], any = 0;
    long long now = pool_ms();
    for (int i = 0; i < p->n; i++) {
        load[i] = atomic_load(&p->b[i].inflight);
        ok[i] =
            i != avoid && atomic_load(&p->b[i].alive) && atomic_load(&p->b[i].down_until) <= now;
        any |= ok[i];
    }
    if (!any) /* everyone looks down: try anyone but the one that just failed */
        for (int i = 0; i < p->n; i++)
            ok[i] = i != avoid || p->n == 1;
    /* precise: what the engines say they hold (hashing outside the lock) */
    size_t held[SRV_MAX_UPSTREAMS], total[SRV_MAX_UPSTREAMS], homed[SRV_MAX_UPSTREAMS];
    /* the sizes only --kv-new-prefix smallest or homed places by */
    llmc_prefix_held h = {held,
                          p->kv_new == POOL_NEW_SMALLEST ? total : NULL,
                          p->kv_new == POOL_NEW_HOMED ? homed : NULL,
                          0,
                          0,
                          -1,
                          0};
    int nb = p->kv && p->policy == LLMC_ROUTE_PREFIX && key && len ? kvsub_held(p->kv, in, &h) : -1;
    pthread_mutex_lock(&p->mu);
    int r = nb > 0 ? llmc_prefix_route_held(p->router, &h, load, ok) : LLMC_ENOTFOUND;
    if (r < 0) /* no events for this prompt, or nobody holds a block: the tree */
        r = llmc_prefix_route(p->router, key ? key : "", key ? len : 0, load, ok);
    if (r < 0)
        r = avoid >= 0 ? (avoid + 1) % p->n : 0;
    if (key && len)
        llmc_prefix_record(p->router, r, key, len);
    /* counted here, under the lock, so two loops routing at once see it */
    atomic_fetch_add(&p->b[r].inflight, 1);
    pthread_mutex_unlock(&p->mu);
    return r;
}

int pool_route_pending(pool *p, const route_in *in)
{
    return p->n > 1 && p->kv && p->policy == LLMC_ROUTE_PREFIX &&
           p->s->cfg.kv_tokenize_wait_ms > 0 && in && in->key && in->len &&
           kvsub_pending(p->kv, in);
}

int pool_wait(pool *p, struct event *ev)
{
    return kvsub_wait(p->kv, ev);
}

void pool_unwait(pool *p, struct event *ev, int ended)
{
    kvsub_unwait(p->kv, ev, ended);
}

/* The upstream URL for a client URI on backend i (malloc'd). pool_pick
 * counted the request in flight on i; pool_end uncounts it. */
char *pool_url(pool *p, int i, const char *uri)
{
    const char *base = p->n ? p->b[i].base : p->s->upstream_base;
    int has_v1 = p->n ? p->b[i].has_v1 : p->s->upstream_has_v1;
    const char *u = uri;
    if (has_v1 && !strncmp(u, "/v1/", 4))
        u += 3;
    size_t n = strlen(base) + strlen(u) + 1;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s%s", base, u);
    return r;
}

void pool_begin(pool *p, int i)
{
    if (i < p->n)
        atomic_fetch_add(&p->b[i].requests, 1);
}

void pool_end(pool *p, int i, int refused)
{
    if (i >= p->n)
        return;
    atomic_fetch_sub(&p->b[i].inflight, 1);
    if (refused) {
        atomic_fetch_add(&p->b[i].failures, 1);
        long long hi = p->s->cfg.health_interval_ms > 0 ? p->s->cfg.health_interval_ms : 2000;
        atomic_store(&p->b[i].down_until, pool_ms() + hi);
    }
}

void pool_write_json(pool *p, FILE *f)
{
    fprintf(f, "\"route_policy\":\"%s\",\"backends\":[", llmc_prefix_policy_name(p->policy));
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pool_backend *b = &p->b[i];
        fprintf(f,
                "%s{\"url\":\"%s\",\"healthy\":%s,\"inflight\":%d,\"requests\":%llu,"
                "\"failures\":%llu",
                i ? "," : "", b->base,
                atomic_load(&b->alive) && atomic_load(&b->down_until) <= pool_ms() ? "true"
                                                                                   : "false",
                atomic_load(&b->inflight), (unsigned long long)atomic_load(&b->requests),
                (unsigned long long)atomic_load(&b->failures));
        if (b->scraped) {
            double hr = b->prefix_queries > 0 ? b->prefix_hits / b->prefix_queries : 0;
            fprintf(f,
                    ",\"prefix_cache_queries\":%.0f,\"prefix_cache_hits\":%.0f,"
                    "\"prefix_cache_hit_rate\":%.4f,\"kv_cache_usage\":%.4f,"
                    "\"requests_running\":%.0f",
                    b->prefix_queries, b->prefix_hits, hr, isnan(b->kv_usage) ? 0 : b->kv_usage,
                    isnan(b->running) ? 0 : b->running);
        }
        fputc('}', f);
    }
    llmc_prefix_stats st;
    llmc_prefix_get_stats(p->router, &st);
    pthread_mutex_unlock(&p->mu);
    fprintf(f,
            "],\"router\":{\"routed\":%llu,\"affinity\":%llu,\"balance\":%llu,\"miss\":%llu,"
            "\"tree_bytes\":%zu,\"on_events\":%llu,\"remembered\":%llu}",
            (unsigned long long)st.routed, (unsigned long long)st.affinity,
            (unsigned long long)st.balance, (unsigned long long)st.miss, st.bytes,
            (unsigned long long)st.precise, (unsigned long long)st.remembered);
    kvsub_write_json(p->kv, f);
}

void pool_write_prometheus(pool *p, FILE *f)
{
    if (!p->n)
        return;
    fputs("# HELP llmcached_backend_healthy Upstream backend usable (1) or routed around (0).\n"
          "# TYPE llmcached_backend_healthy gauge\n"
          "# HELP llmcached_backend_inflight Requests in flight per backend.\n"
          "# TYPE llmcached_backend_inflight gauge\n"
          "# HELP llmcached_backend_requests_total Requests sent per backend.\n"
          "# TYPE llmcached_backend_requests_total counter\n"
          "# HELP llmcached_backend_prefix_cache_hit_rate Engine prefix-cache hit rate (scraped).\n"
          "# TYPE llmcached_backend_prefix_cache_hit_rate gauge\n"
          "# HELP llmcached_backend_kv_cache_usage Engine KV cache usage, 0..1 (scraped).\n"
          "# TYPE llmcached_backend_kv_cache_usage gauge\n"
          "# HELP llmcached_backend_requests_running Engine requests running (scraped).\n"
          "# TYPE llmcached_backend_requests_running gauge\n",
          f);
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pool_backend *b = &p->b[i];
        int h = atomic_load(&b->alive) && atomic_load(&b->down_until) <= pool_ms();
        fprintf(f, "llmcached_backend_healthy{backend=\"%s\"} %d\n", b->base, h);
        fprintf(f, "llmcached_backend_inflight{backend=\"%s\"} %d\n", b->base,
                atomic_load(&b->inflight));
        fprintf(f, "llmcached_backend_requests_total{backend=\"%s\"} %llu\n", b->base,
                (unsigned long long)atomic_load(&b->requests));
        if (b->scraped) {
            fprintf(f, "llmcached_backend_prefix_cache_hit_rate{backend=\"%s\"} %.4f\n", b->base,
                    b->prefix_queries > 0 ? b->prefix_hits / b->prefix_queries : 0.0);
            fprintf(f, "llmcached_backend_kv_cache_usage{backend=\"%s\"} %.4f\n", b->base,
                    isnan(b->kv_usage) ? 0 : b->kv_usage);
            fprintf(f, "llmcached_backend_requests_running{backend=\"%s\"} %.0f\n", b->base,
                    isnan(b->running) ? 0 : b->running);
        }
    }
    pthread_mutex_unlock(&p->mu);
    kvsub_write_prometheus(p->kv, f);
}
