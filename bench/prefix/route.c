/*
 * route.c — prefix-affinity routing against round-robin and least-loaded,
 * with real engines: 4 llmcached-engine processes, a multi-tenant workload,
 * and the routing decision taken by the llmc_prefix router (src/prefix.c)
 * in this client, exactly as the gateway calls it (route with the in-flight
 * counts, then record). The gateway-in-the-path version of this benchmark
 * (make bench-prefix) belongs with the daemon; this one isolates the policy.
 *
 * Workload: 20 tenants, each with its own long system prompt (~300 tokens),
 * short user questions drawn from a list of 12 by a Zipf law (s = 1), the
 * tenant of each request drawn uniformly (TENANT_ZIPF = 0, the default) or
 * by a Zipf law of that exponent; C concurrent clients; each request streams a completion of a
 * few tokens, so time to first token is mostly prefill. The same seeded
 * request sequence is replayed for every policy, each on 4 fresh engines
 * whose KV pools hold NB blocks of 16 tokens (a finite KV cache, as on a
 * GPU: too small for every tenant's prefix on every engine, large enough for
 * a quarter of them).
 *
 * Prints per policy: prefix hit rate (from the engines' vllm:prefix_cache_*
 * counters), TTFT p50/p99, throughput, and the load split (max share over
 * fair share), then the ratios the bar is about.
 *
 * Usage: route ENGINE_BINARY MODELS_DIR [REQUESTS [CLIENTS [NUM_BLOCKS
 *              [TENANT_ZIPF [BALANCE_ABS [BALANCE_REL]]]]]]
 * (defaults 400 8 128 0 8 1.5: with 8 clients the in-flight counts are
 * small, so SGLang's default absolute gap of 32 is scaled down to 8)
 */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llmcache.h"

#include "workload.h"
#include "../cpu.h"

#define NE 4
#define NT 20

typedef struct {
    char *prompt;
    int tenant;
} req_t;

typedef struct {
    pid_t pid;
    int port;
} engine_t;

typedef struct {
    pthread_mutex_t mu;
    llmc_prefix_router *router;
    engine_t *eng;
    req_t *reqs;
    int n_reqs, next;
    int load[NE], count[NE];
    double *ttft;
    int errors;
} run_t;

static engine_t start_engine(const char *bin, const char *models, int nb)
{
    engine_t e = {-1, 0};
    int pfd[2];
    if (pipe(pfd))
        return e;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        char m[1024], t[1024], nbs[32];
        snprintf(m, sizeof m, "%s/stories260K.bin", models);
        snprintf(t, sizeof t, "%s/tok512.bin", models);
        snprintf(nbs, sizeof nbs, "%d", nb);
        execl(bin, bin, "--model", m, "--tokenizer", t, "--listen", "127.0.0.1:0", "--workers", "1",
              "--num-blocks", nbs, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[512];
    if (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "127.0.0.1:");
        if (p)
            e.port = atoi(p + 10);
    }
    if (f)
        fclose(f);
    e.pid = pid;
    return e;
}

static void stop_engine(engine_t *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
    }
}

static double scrape(int port, const char *name)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    CURL *c = curl_easy_init();
    xfer x = {0, 0, calloc(1, 1), 0, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    double v = 0;
    char *p = x.buf ? strstr(x.buf, name) : NULL;
    while (p && p > x.buf && p[-1] != '\n')
        p = strstr(p + 1, name);
    if (p) {
        char *sp = strchr(p, ' ');
        if (sp)
            v = atof(sp + 1);
    }
    free(x.buf);
    return v;
}

static void *client(void *arg)
{
    run_t *r = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int i = r->next++;
        if (i >= r->n_reqs) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        const char *key = r->reqs[i].prompt;
        int b = llmc_prefix_route(r->router, key, strlen(key), r->load, NULL);
        if (b < 0)
            b = 0;
        llmc_prefix_record(r->router, b, key, strlen(key));
        r->load[b]++;
        r->count[b]++;
        pthread_mutex_unlock(&r->mu);

        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", r->eng[b].port);
        size_t bl = strlen(key) + 256;
        char *body = malloc(bl);
        snprintf(body, bl, "{\"prompt\":\"%s\",\"max_tokens\":4,\"temperature\":0,\"stream\":true}",
                 key);
        xfer x = {now_s(), 0, NULL, 0, 0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        free(body);
        pthread_mutex_lock(&r->mu);
        r->load[b]--;
        if (rc != CURLE_OK || status != 200 || !x.first)
            r->errors++;
        r->ttft[i] = x.first ? x.first - x.t0 : 0;
        pthread_mutex_unlock(&r->mu);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

typedef struct {
    double hit, p50, p99, tput, split;
    int errors;
} result_t;

static int g_abs = 8;
static double g_rel = 1.5;

static result_t run_policy(int policy, const char *bin, const char *models, req_t *reqs, int n_reqs,
                           int clients, int nb)
{
    result_t res = {0};
    run_t r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    llmc_prefix_params pp = llmc_prefix_default_params();
    pp.policy = policy;
    pp.balance_abs_threshold = g_abs;
    pp.balance_rel_threshold = g_rel;
    r.router = llmc_prefix_router_new(&pp, NE, NULL);
    engine_t eng[NE];
    for (int i = 0; i < NE; i++)
        eng[i] = start_engine(bin, models, nb);
    r.eng = eng;
    r.reqs = reqs;
    r.n_reqs = n_reqs;
    r.ttft = calloc((size_t)n_reqs, sizeof *r.ttft);
    double t0 = now_s();
    pthread_t th[64];
    for (int i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, client, &r);
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    double wall = now_s() - t0;
    double q = 0, h = 0;
    for (int i = 0; i < NE; i++) {
        q += scrape(eng[i].port, "vllm:prefix_cache_queries_total");
        h += scrape(eng[i].port, "vllm:prefix_cache_hits_total");
        stop_engine(&eng[i]);
    }
    qsort(r.ttft, (size_t)n_reqs, sizeof *r.ttft, cmpd);
    res.hit = q > 0 ? h / q : 0;
    res.p50 = r.ttft[n_reqs / 2];
    res.p99 = r.ttft[(n_reqs * 99) / 100];
    res.tput = n_reqs / wall;
    int mx = 0;
    for (int i = 0; i < NE; i++)
        if (r.count[i] > mx)
            mx = r.count[i];
    res.split = (double)mx / ((double)n_reqs / NE);
    res.errors = r.errors;
    printf("  load split:");
    for (int i = 0; i < NE; i++)
        printf(" %d", r.count[i]);
    llmc_prefix_stats ps;
    llmc_prefix_get_stats(r.router, &ps);
    if (policy == LLMC_ROUTE_PREFIX)
        printf(" (router: %llu affinity, %llu balance, %llu miss)", (unsigned long long)ps.affinity,
               (unsigned long long)ps.balance, (unsigned long long)ps.miss);
    printf("\n");
    free(r.ttft);
    llmc_prefix_router_free(r.router);
    pthread_mutex_destroy(&r.mu);
    return res;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ENGINE_BINARY MODELS_DIR [REQUESTS [CLIENTS [NUM_BLOCKS]]]\n",
                argv[0]);
        return 2;
    }
    int n_reqs = argc > 3 ? atoi(argv[3]) : 400, clients = argc > 4 ? atoi(argv[4]) : 8;
    int nb = argc > 5 ? atoi(argv[5]) : 128;
    double tz = argc > 6 ? atof(argv[6]) : 0.0;
    if (argc > 7)
        g_abs = atoi(argv[7]);
    if (argc > 8)
        g_rel = atof(argv[8]);
    if (n_reqs < 10 || clients < 1 || clients > 64 || nb < 40) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *sys[NT];
    double w[NT], tot = 0, qw[12], qtot = 0;
    for (int t = 0; t < NT; t++) {
        sys[t] = tenant_system(t);
        w[t] = pow(t + 1, -tz);
        tot += w[t];
    }
    for (int k = 0; k < 12; k++) {
        qw[k] = 1.0 / (k + 1);
        qtot += qw[k];
    }
    req_t *reqs = calloc((size_t)n_reqs, sizeof *reqs);
    uint64_t s = 42;
    for (int i = 0; i < n_reqs; i++) {
        double u = (double)(rng_next(&s) % 1000000) / 1e6 * tot, acc = 0;
        int t = 0;
        while (t < NT - 1 && (acc += w[t]) < u)
            t++;
        double uq = (double)(rng_next(&s) % 1000000) / 1e6 * qtot, aq = 0;
        int k = 0;
        while (k < 11 && (aq += qw[k]) < uq)
            k++;
        const char *q = questions[k];
        size_t l = strlen(sys[t]) + strlen(q) + 64;
        reqs[i].prompt = malloc(l);
        reqs[i].tenant = t;
        snprintf(reqs[i].prompt, l, "%s\\nUser: %s\\nAssistant:", sys[t], q);
    }
    char cpu[512];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench prefix routing: %d engines (stories260K, 1 worker, %d KV blocks of 16), "
           "%d tenants (%s, s=%g), questions Zipf s=1, %d requests, %d clients, 4 new tokens "
           "each; balance thresholds abs %d rel %g\n",
           NE, nb, NT, tz > 0 ? "Zipf" : "uniform", tz, n_reqs, clients, g_abs, g_rel);
    printf("machine: nproc %ld, %s\ncommand:", sysconf(_SC_NPROCESSORS_ONLN), cpu);
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n\n");
    const char *names[3] = {llmc_prefix_policy_name(0), llmc_prefix_policy_name(1),
                            llmc_prefix_policy_name(2)};
    result_t res[3];
    for (int p = 0; p < 3; p++) {
        printf("%s\n", names[p]);
        fflush(stdout);
        res[p] = run_policy(p, argv[1], argv[2], reqs, n_reqs, clients, nb);
    }
    printf("\n%-16s %9s %10s %10s %10s %12s %7s\n", "policy", "hit rate", "TTFT p50", "TTFT p99",
           "req/s", "max/fair", "errors");
    for (int p = 0; p < 3; p++)
        printf("%-16s %8.1f%% %8.1fms %8.1fms %10.1f %12.2f %7d\n", names[p], res[p].hit * 100,
               res[p].p50 * 1e3, res[p].p99 * 1e3, res[p].tput, res[p].split, res[p].errors);
    double hr = res[0].hit > 0 ? res[2].hit / res[0].hit : 0;
    double tr = res[2].p50 > 0 ? res[0].p50 / res[2].p50 : 0;
    printf("\nprefix-affinity vs round-robin: hit rate x%.2f (bar 2.5), TTFT p50 x%.2f better "
           "(bar 2), max/fair %.2f (bar 1.25), affinity hit rate %.1f%% (bar 60%%)\n",
           hr, tr, res[2].split, res[2].hit * 100);
    for (int i = 0; i < n_reqs; i++)
        free(reqs[i].prompt);
    free(reqs);
    for (int t = 0; t < NT; t++)
        free(sys[t]);
    curl_global_cleanup();
    return 0;
}
