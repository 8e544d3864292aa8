/*
 * gateway.c — the prefix tier with the gateway in the path (make bench-prefix):
 * 4 real llmcached-engine processes behind one llmcached daemon that routes
 * every request itself (--upstream x4 --route-policy P), for round-robin,
 * least-loaded and prefix-affinity in the same run.
 *
 * This is bench/prefix/route.c (the routing decided in the client, the
 * policy in isolation) with the daemon between the clients and the engines:
 * the route is the daemon's (server/pool.c over src/prefix.c, keyed by the
 * canonical prompt text), the in-flight counts are the daemon's, and the
 * time to first token includes the daemon's request parsing, policy,
 * routing and the streamed relay. The workload is the same design and the
 * same seed: 20 tenants, each with its own system prompt of ~300 tokens,
 * short user questions drawn from a list of 12 by a Zipf law (s = 1), the
 * tenant of each request drawn uniformly, C concurrent clients, each
 * request a streamed completion of 4 tokens (so time to first token is
 * mostly prefill), engines with finite KV pools of NB blocks of 16 tokens.
 *
 * Every request carries "Cache-Control: no-store": the policy then BYPASSes
 * the exact and semantic tiers (no lookup, no store, no coalescing), so each
 * request reaches an engine and the only thing measured is the routing. The
 * benchmark checks this: every response must say X-LLM-Cache: BYPASS, and
 * the daemon's per-backend request counts must add up to the requests sent
 * (a retry on another backend would make them exceed it; both are printed
 * as errors/anomalies if they happen).
 *
 * Per policy, from fresh engines and a fresh daemon:
 *   hit rate   sum of the engines' vllm:prefix_cache_hits_total over the sum
 *              of vllm:prefix_cache_queries_total (tokens), scraped directly
 *              from the engines after the run;
 *   TTFT       p50/p99 of the time from sending the request to the first
 *              byte of the streamed body, as the client sees it;
 *   req/s      requests over the wall time of the replay;
 *   max/fair   the largest per-backend request count (the daemon's /stats
 *              "backends"[].requests, checked against each engine's
 *              vllm:request_success_total) over requests / 4.
 * Then the ratios the bar is about: affinity hit rate over
 * round-robin's, round-robin's TTFT p50 over affinity's, affinity max/fair.
 *
 * Usage: gateway ENGINE_BINARY DAEMON_BINARY MODELS_DIR [REQUESTS [CLIENTS
 *                [NUM_BLOCKS [BALANCE_ABS [BALANCE_REL]]]]]
 * (defaults 400 8 128 5 1.5; see the balance note in main()).
 *
 * Processes: every child is started by fork/exec, its stdout read through
 * a pipe for the "listening on"/"ready port=" line, and stopped with
 * SIGTERM + waitpid before the next policy starts; the daemon's stderr
 * goes to a log file in a temporary directory that is printed on failure.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llmcache.h"
#include "workload.h"
#include "../cpu.h"

#define NE 4
#define NT 20
#define TOKEN "bench-prefix-token"

static const char *policies[3] = {"round-robin", "least-loaded", "prefix-affinity"};

typedef struct {
    pid_t pid;
    int port;
    FILE *out; /* the child's stdout, kept open until it is stopped */
} child_t;

typedef struct {
    pthread_mutex_t mu;
    int gw_port;
    char **bodies;
    int n_reqs, next;
    double *ttft;
    int errors, not_bypass;
} run_t;

typedef struct {
    double hit, p50, p99, tput, split;
    long long count[NE];
    long long routed, affinity, balance, miss;
    int errors, anomalies;
} result_t;

static child_t start_child(char *const argv[], const char *marker, const char *errpath)
{
    child_t c = {-1, 0, NULL};
    int pfd[2];
    if (pipe(pfd))
        return c;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (errpath) {
            FILE *e = fopen(errpath, "a");
            if (e)
                dup2(fileno(e), 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    c.pid = pid;
    c.out = fdopen(pfd[0], "r");
    char line[512];
    while (c.out && fgets(line, sizeof line, c.out)) {
        char *p = strstr(line, marker);
        if (p) {
            c.port = atoi(p + strlen(marker));
            break;
        }
    }
    return c;
}

static void stop_child(child_t *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        waitpid(c->pid, NULL, 0);
        c->pid = -1;
    }
    if (c->out)
        fclose(c->out);
    c->out = NULL;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = sz * n;
    if (len >= 19 && !strncasecmp(p, "X-LLM-Cache: BYPASS", 19))
        x->bypass = 1;
    return len;
}

/* GET url (with the admin token) and return the body, malloc'd, or NULL. */
static char *http_get(const char *url)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    xfer x = {0, 0, calloc(1, 1), 0, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(x.buf);
        return NULL;
    }
    return x.buf;
}

/* Sum of a Prometheus metric's samples (any labels) on an engine's
 * /metrics; NAN when the metric is absent or the scrape failed. */
static double scrape(int port, const char *name)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    char *body = http_get(url);
    double v = llmc_prometheus_sum(body, name);
    free(body);
    return v;
}

static void *client(void *arg)
{
    run_t *r = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Cache-Control: no-store");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", r->gw_port);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int i = r->next++;
        pthread_mutex_unlock(&r->mu);
        if (i >= r->n_reqs)
            break;
        xfer x = {now_s(), 0, NULL, 0, 0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->bodies[i]);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        pthread_mutex_lock(&r->mu);
        if (rc != CURLE_OK || status != 200 || !x.first)
            r->errors++;
        if (!x.bypass)
            r->not_bypass++;
        r->ttft[i] = x.first ? x.first - x.t0 : 0;
        pthread_mutex_unlock(&r->mu);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* The daemon's /stats: per-backend request counts and router counters. */
static int read_gateway_stats(int port, result_t *res)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stats", port);
    char *body = http_get(url);
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    json_t *bk = j ? json_object_get(j, "backends") : NULL;
    if (!json_is_array(bk) || json_array_size(bk) != NE) {
        json_decref(j);
        return -1;
    }
    for (size_t i = 0; i < NE; i++)
        res->count[i] = jint(json_array_get(bk, i), "requests");
    json_t *rt = json_object_get(j, "router");
    res->routed = jint(rt, "routed");
    res->affinity = jint(rt, "affinity");
    res->balance = jint(rt, "balance");
    res->miss = jint(rt, "miss");
    json_decref(j);
    return 0;
}

typedef struct {
    const char *engine, *daemon, *models, *tmpdir;
    int nb, clients, bal_abs;
    double bal_rel;
} setup_t;

static int run_policy(const setup_t *su, int policy, char **bodies, int n_reqs, result_t *res)
{
    memset(res, 0, sizeof *res);
    child_t eng[NE], gw = {-1, 0, NULL};
    char m[1024], t[1024], nbs[32], errlog[1100];
    snprintf(m, sizeof m, "%s/stories260K.bin", su->models);
    snprintf(t, sizeof t, "%s/tok512.bin", su->models);
    snprintf(nbs, sizeof nbs, "%d", su->nb);
    snprintf(errlog, sizeof errlog, "%s/%s.log", su->tmpdir, policies[policy]);
    int ok = 1;
    for (int i = 0; i < NE; i++) {
        char *av[] = {(char *)su->engine, "--model",   m,   "--tokenizer",  t,   "--listen",
                      "127.0.0.1:0",      "--workers", "1", "--num-blocks", nbs, NULL};
        eng[i] = start_child(av, "127.0.0.1:", errlog);
        ok &= eng[i].port > 0;
    }
    char ups[NE][64], abs_s[32], rel_s[32];
    for (int i = 0; i < NE; i++)
        snprintf(ups[i], sizeof ups[i], "http://127.0.0.1:%d/v1", eng[i].port);
    snprintf(abs_s, sizeof abs_s, "%d", su->bal_abs);
    snprintf(rel_s, sizeof rel_s, "%g", su->bal_rel);
    if (ok) {
        char *av[] = {(char *)su->daemon,
                      "--listen",
                      "127.0.0.1:0",
                      "--upstream",
                      ups[0],
                      "--upstream",
                      ups[1],
                      "--upstream",
                      ups[2],
                      "--upstream",
                      ups[3],
                      "--route-policy",
                      (char *)policies[policy],
                      "--route-balance-abs",
                      abs_s,
                      "--route-balance-rel",
                      rel_s,
                      "--semantic",
                      "no",
                      "--persist",
                      "no",
                      "--data-dir",
                      (char *)su->tmpdir,
                      "--admin-token",
                      TOKEN,
                      "--log-level",
                      "warn",
                      NULL};
        gw = start_child(av, "ready port=", errlog);
        ok &= gw.port > 0;
    }
    if (!ok) {
        fprintf(stderr, "could not start the engines or the gateway; see %s\n", errlog);
        for (int i = 0; i < NE; i++)
            stop_child(&eng[i]);
        stop_child(&gw);
        return -1;
    }
    run_t r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    r.gw_port = gw.port;
    r.bodies = bodies;
    r.n_reqs = n_reqs;
    r.ttft = calloc((size_t)n_reqs, sizeof *r.ttft);
    double t0 = now_s();
    pthread_t th[64];
    for (int i = 0; i < su->clients; i++)
        pthread_create(&th[i], NULL, client, &r);
    for (int i = 0; i < su->clients; i++)
        pthread_join(th[i], NULL);
    double wall = now_s() - t0;
    double q = 0, h = 0, served[NE];
    for (int i = 0; i < NE; i++) {
        double qi = scrape(eng[i].port, "vllm:prefix_cache_queries_total");
        double hi = scrape(eng[i].port, "vllm:prefix_cache_hits_total");
        served[i] = scrape(eng[i].port, "vllm:request_success_total");
        if (isnan(qi) || isnan(hi))
            res->anomalies++;
        else
            q += qi, h += hi;
    }
    if (read_gateway_stats(gw.port, res))
        res->anomalies++;
    for (int i = 0; i < NE; i++) /* the engines' own counts must agree */
        if (isnan(served[i]) || (long long)served[i] != res->count[i]) {
            fprintf(stderr, "backend %d: gateway sent %lld, engine served %.0f\n", i, res->count[i],
                    served[i]);
            res->anomalies++;
        }
    stop_child(&gw);
    for (int i = 0; i < NE; i++)
        stop_child(&eng[i]);

    qsort(r.ttft, (size_t)n_reqs, sizeof *r.ttft, cmpd);
    res->hit = q > 0 ? h / q : 0;
    res->p50 = r.ttft[n_reqs / 2];
    res->p99 = r.ttft[(n_reqs * 99) / 100];
    res->tput = n_reqs / wall;
    long long mx = 0, sum = 0;
    for (int i = 0; i < NE; i++) {
        sum += res->count[i];
        if (res->count[i] > mx)
            mx = res->count[i];
    }
    res->split = (double)mx / ((double)n_reqs / NE);
    res->errors = r.errors;
    if (sum != n_reqs) /* a retry elsewhere, or requests that never reached an engine */
        res->anomalies++;
    if (r.not_bypass) {
        fprintf(stderr, "%d responses were not X-LLM-Cache: BYPASS\n", r.not_bypass);
        res->anomalies++;
    }
    printf("  load split (gateway's per-backend requests): %lld %lld %lld %lld", res->count[0],
           res->count[1], res->count[2], res->count[3]);
    if (policy == 2)
        printf("  router: %lld affinity, %lld balance, %lld miss", res->affinity, res->balance,
               res->miss);
    printf("\n  engines: %.0f of %.0f prompt tokens from the prefix cache, %.1f s\n", h, q, wall);
    fflush(stdout);
    free(r.ttft);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: %s ENGINE_BINARY DAEMON_BINARY MODELS_DIR [REQUESTS [CLIENTS "
                "[NUM_BLOCKS [BALANCE_ABS [BALANCE_REL]]]]]\n",
                argv[0]);
        return 2;
    }
    setup_t su = {argv[1], argv[2], argv[3], NULL, 128, 8, 5, 1.5};
    int n_reqs = argc > 4 ? atoi(argv[4]) : 400;
    if (argc > 5)
        su.clients = atoi(argv[5]);
    if (argc > 6)
        su.nb = atoi(argv[6]);
    /* Balance thresholds. The daemon's defaults are SGLang's (a backend is
     * overloaded when it has more than 32 requests in flight above the
     * least loaded one and 1.0001x its load); with 8 clients no backend can
     * ever have 32 more, so the fallback would be dead code here. Scaled to
     * the 8 requests in flight: overloaded at more than 5 above the least
     * loaded and 1.5x its load, i.e. 6 of the 8 in flight while another
     * backend is idle. Measured on the 2-core machine (400 requests, NB
     * 128): abs 4 spills a tenant 5 times a run and each spill costs hit
     * rate twice (a cold prefix on a second engine, whose finite pool then
     * evicts another tenant's blocks): hit 81.6-85.3%, max/fair 1.05-1.12;
     * abs 6 and 8 (the fallback all but off) keep 87-89% but leave the
     * split to where the 20 tenants' first requests landed: max/fair up to
     * 1.32; abs 5 spills 0-4 times: 87.2-89.2%, max/fair 1.04-1.24 over 6
     * runs. The split stays the weak side: a new prefix goes to the backend
     * with the fewest requests in flight at that instant, so 6 tenants can
     * land on one engine and 4 on another, and the in-flight fallback seldom
     * fires at 8 clients. */
    if (argc > 7)
        su.bal_abs = atoi(argv[7]);
    if (argc > 8)
        su.bal_rel = atof(argv[8]);
    if (n_reqs < 10 || su.clients < 1 || su.clients > 64 || su.nb < 40 || su.bal_abs < 1 ||
        su.bal_rel <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char tmpl[] = "/tmp/bench-prefix-XXXXXX";
    su.tmpdir = mkdtemp(tmpl);
    if (!su.tmpdir) {
        perror("mkdtemp");
        return 1;
    }

    /* The request sequence: route.c's generator, same seed. */
    char *sys[NT];
    double qw[NQ], qtot = 0;
    for (int t = 0; t < NT; t++)
        sys[t] = tenant_system(t);
    for (int k = 0; k < NQ; k++) {
        qw[k] = 1.0 / (k + 1);
        qtot += qw[k];
    }
    char **bodies = calloc((size_t)n_reqs, sizeof *bodies);
    uint64_t s = 42;
    for (int i = 0; i < n_reqs; i++) {
        double u = (double)(rng_next(&s) % 1000000) / 1e6 * NT, acc = 0;
        int t = 0;
        while (t < NT - 1 && (acc += 1.0) < u) /* route.c's walk, uniform weights */
            t++;
        double uq = (double)(rng_next(&s) % 1000000) / 1e6 * qtot, aq = 0;
        int k = 0;
        while (k < NQ - 1 && (aq += qw[k]) < uq)
            k++;
        size_t l = strlen(sys[t]) + strlen(questions[k]) + 256;
        bodies[i] = malloc(l);
        snprintf(bodies[i], l,
                 "{\"prompt\":\"%s\\nUser: %s\\nAssistant:\",\"max_tokens\":4,"
                 "\"temperature\":0,\"stream\":true}",
                 sys[t], questions[k]);
    }

    char cpu[512];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench prefix (gateway in the path): %d engines (stories260K, 1 worker, %d KV blocks "
           "of 16) behind llmcached, %d tenants (uniform, ~300-token system prompts), questions "
           "Zipf s=1, %d requests, %d clients, 4 new tokens each, Cache-Control: no-store; "
           "gateway balance thresholds abs %d rel %g\n",
           NE, su.nb, NT, n_reqs, su.clients, su.bal_abs, su.bal_rel);
    printf("machine: nproc %ld, %s\ncommand:", sysconf(_SC_NPROCESSORS_ONLN), cpu);
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n\n");
    fflush(stdout);

    result_t res[3];
    int rc = 0;
    for (int p = 0; p < 3 && !rc; p++) {
        printf("%s\n", policies[p]);
        fflush(stdout);
        rc = run_policy(&su, p, bodies, n_reqs, &res[p]);
    }
    if (!rc) {
        printf("\n%-16s %9s %10s %10s %8s %9s %7s %9s\n", "policy", "hit rate", "TTFT p50",
               "TTFT p99", "req/s", "max/fair", "errors", "anomalies");
        for (int p = 0; p < 3; p++)
            printf("%-16s %8.1f%% %8.1fms %8.1fms %8.1f %9.2f %7d %9d\n", policies[p],
                   res[p].hit * 100, res[p].p50 * 1e3, res[p].p99 * 1e3, res[p].tput, res[p].split,
                   res[p].errors, res[p].anomalies);
        double hr = res[0].hit > 0 ? res[2].hit / res[0].hit : 0;
        double tr = res[2].p50 > 0 ? res[0].p50 / res[2].p50 : 0;
        int met = res[2].hit >= 0.6 && hr >= 2.5 && res[2].split <= 1.25 && tr >= 2.0;
        printf("\nprefix-affinity vs round-robin through the gateway: hit rate x%.2f (bar 2.5), "
               "TTFT p50 x%.2f better (bar 2), max/fair %.2f (bar 1.25), affinity hit rate "
               "%.1f%% (bar 60%%): %s\n",
               hr, tr, res[2].split, res[2].hit * 100, met ? "bar met" : "bar NOT met");
        for (int p = 0; p < 3; p++)
            if (res[p].errors || res[p].anomalies)
                rc = 1;
    }
    for (int i = 0; i < n_reqs; i++)
        free(bodies[i]);
    free(bodies);
    for (int t = 0; t < NT; t++)
        free(sys[t]);
    /* the temporary directory holds the daemons' logs: kept on failure */
    if (!rc) {
        char path[1100];
        for (int p = 0; p < 3; p++) {
            snprintf(path, sizeof path, "%s/%s.log", su.tmpdir, policies[p]);
            unlink(path);
        }
        rmdir(su.tmpdir);
    } else {
        fprintf(stderr, "logs kept in %s\n", su.tmpdir);
    }
    curl_global_cleanup();
    return rc;
}
