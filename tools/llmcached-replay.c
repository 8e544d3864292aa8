/*
 * llmcached-replay — replay a workload through the cache and report what it
 * is worth: the design's KPIs in one run.
 *
 *   llmcached-replay WORKLOAD.jsonl --target URL [--direct URL] [options]
 *
 * A workload is JSON Lines. Each line is either an OpenAI request body
 * ({"model":..., "messages":[...]} → /chat/completions, {"prompt":...} →
 * /completions, {"input":...} → /embeddings), or a wrapper
 *   {"t": SECONDS, "tenant": "NAME", "kind": "faq", "endpoint": "/chat/completions",
 *    "request": {...}}
 * where t is the offset from the start (the recorded pace), tenant is sent
 * as the cache's namespace header (so tenants never share entries), and kind
 * groups the report (faq and creative have targets: > 30% and < 5% hits).
 *
 * Design. One libcurl multi handle drives every request of a run (no
 * threads): a request starts at its recorded time (--pace recorded, scaled
 * by --speed) or as soon as fewer than --concurrency are in flight (--pace
 * max), and its latency is wall time from start to last byte. The target
 * run reads X-LLM-Cache on every answer (HIT-EXACT, HIT-SEMANTIC, MISS,
 * BYPASS) and the usage of hits (tokens saved, priced with --prices). With
 * --direct, the same workload is replayed straight to the upstream: its
 * latencies are the "without the cache" column, and each hit's answer is
 * compared with the fresh answer to the same request (a staleness sample
 * of every hit). With --admin-token, /stats is read before and after: the
 * upstream calls the daemon really made, and its own --verify-rate sample.
 * Output: text (default), --json (stdout), --html FILE (self-contained,
 * inline SVG charts, no external load).
 *
 * Invariants: the workload is read and checked completely before the first
 * request (a bad line stops with its line number and exit status 2,
 * nothing is sent); URLs are parsed by libcurl's URL API before use; every
 * easy handle and buffer of a run is freed when the run ends. Exit status:
 * 0 done, 1 no request got an answer, 2 bad usage or input.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

enum { T_EXACT, T_SEMANTIC, T_MISS, T_BYPASS, T_OTHER, T_N };
static const char *const replay_tier_name[T_N] = {"hit_exact", "hit_semantic", "miss", "bypass",
                                                  "none"};

typedef struct {
    double t;       /* offset, seconds */
    char *endpoint; /* "/chat/completions" */
    char *body;     /* the request, compact JSON */
    char *model;
    char *tenant; /* NULL: none */
    char *kind;   /* NULL: "all" */
    /* results, per run */
    double lat[2]; /* seconds; <0: failed */
    int status[2];
    int tier;        /* target run */
    char *answer[2]; /* the answer's text, for the staleness comparison */
    long long ptok, ctok;
} replay_req;

typedef struct {
    replay_req *r;
    size_t n, cap;
} replay_workload;

typedef struct {
    const char *workload, *target, *direct, *admin_token, *api_key, *prices, *html, *ns_header;
    int json, concurrency, recorded, progress;
    double speed;
} replay_opts;

/* ---- small helpers ------------------------------------------------------ */

static void replay_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("llmcached-replay: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static double replay_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *replay_strdup(const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        replay_die(1, "out of memory");
    return d;
}

/* ---- the workload ------------------------------------------------------- */

static const char *replay_endpoint_of(json_t *req)
{
    if (json_object_get(req, "messages"))
        return "/chat/completions";
    if (json_object_get(req, "prompt"))
        return "/completions";
    if (json_object_get(req, "input"))
        return "/embeddings";
    return NULL;
}

/* Read and check every line; exits 2 with FILE:LINE on the first bad one. */
static void replay_load(const char *path, replay_workload *w)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f)
        replay_die(2, "cannot open workload %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#')
            continue;
        json_error_t je;
        json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &je);
        if (!o || !json_is_object(o))
            replay_die(2, "%s:%d: not a JSON object (%s)", path, lineno,
                       o ? "another JSON value" : je.text);
        json_t *req = json_object_get(o, "request");
        if (req && !json_is_object(req))
            replay_die(2, "%s:%d: \"request\" must be an object", path, lineno);
        if (!req)
            req = o;
        json_t *jt = json_object_get(o, "t"), *jten = json_object_get(o, "tenant"),
               *jk = json_object_get(o, "kind"), *je2 = json_object_get(o, "endpoint");
        if (jt && (!json_is_number(jt) || json_number_value(jt) < 0))
            replay_die(2, "%s:%d: \"t\" must be a number of seconds >= 0", path, lineno);
        if ((jten && !json_is_string(jten)) || (jk && !json_is_string(jk)) ||
            (je2 && !json_is_string(je2)))
            replay_die(2, "%s:%d: \"tenant\", \"kind\" and \"endpoint\" are strings", path, lineno);
        const char *ep = je2 ? json_string_value(je2) : replay_endpoint_of(req);
        if (!ep || ep[0] != '/')
            replay_die(2,
                       "%s:%d: not an OpenAI request: no \"messages\", \"prompt\" or \"input\" "
                       "(or give \"endpoint\")",
                       path, lineno);
        json_t *jm = json_object_get(req, "model");
        if (!json_is_string(jm))
            replay_die(2, "%s:%d: the request has no \"model\"", path, lineno);
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 64;
            w->r = realloc(w->r, w->cap * sizeof *w->r);
            if (!w->r)
                replay_die(1, "out of memory");
        }
        replay_req *r = &w->r[w->n++];
        memset(r, 0, sizeof *r);
        r->t = jt ? json_number_value(jt) : 0;
        r->endpoint = replay_strdup(ep);
        r->body = json_dumps(req, JSON_COMPACT);
        r->model = replay_strdup(json_string_value(jm));
        r->tenant = jten ? replay_strdup(json_string_value(jten)) : NULL;
        r->kind = jk ? replay_strdup(json_string_value(jk)) : NULL;
        r->tier = T_OTHER;
        if (!r->body)
            replay_die(1, "out of memory");
        json_decref(o);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (!w->n)
        replay_die(2, "%s: no requests in the workload", path);
}

/* "http://host:port/v1" → base without a trailing slash; exits 2 when it is
 * not an http(s) URL. */
static char *replay_base(const char *what, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        (strcmp(scheme, "http") && strcmp(scheme, "https")))
        replay_die(2, "%s: '%s' is not an http:// or https:// URL (e.g. http://127.0.0.1:8080/v1)",
                   what, url);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    char *b = replay_strdup(url);
    size_t l = strlen(b);
    while (l && b[l - 1] == '/')
        b[--l] = 0;
    return b;
}

/* ---- one run ------------------------------------------------------------ */

typedef struct {
    replay_req *r;
    CURL *easy;
    struct curl_slist *hdr;
    char *buf;
    size_t len;
    int tier;
    double start;
} replay_xfer;

static size_t replay_write(char *p, size_t sz, size_t n, void *arg)
{
    replay_xfer *x = arg;
    size_t add = sz * n;
    char *nb = realloc(x->buf, x->len + add + 1);
    if (!nb)
        return 0;
    x->buf = nb;
    memcpy(x->buf + x->len, p, add);
    x->len += add;
    x->buf[x->len] = 0;
    return add;
}

static size_t replay_header(char *p, size_t sz, size_t n, void *arg)
{
    replay_xfer *x = arg;
    size_t l = sz * n;
    if (l > 12 && !strncasecmp(p, "X-LLM-Cache:", 12)) {
        const char *v = p + 12;
        while (*v == ' ')
            v++;
        x->tier = !strncasecmp(v, "HIT-EXACT", 9)       ? T_EXACT
                  : !strncasecmp(v, "HIT-SEMANTIC", 12) ? T_SEMANTIC
                  : !strncasecmp(v, "MISS", 4)          ? T_MISS
                  : !strncasecmp(v, "BYPASS", 6)        ? T_BYPASS
                                                        : T_OTHER;
    }
    return l;
}

/* The answer's text and usage from a JSON body or an SSE stream. */
static void replay_parse_answer(replay_req *r, int run, const char *body)
{
    json_t *o = NULL;
    char *text = NULL;
    size_t tl = 0;
    FILE *tf = open_memstream(&text, &tl);
    if (!strncmp(body, "data:", 5) || strstr(body, "\ndata:")) {
        for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
            if (strncmp(p, "data:", 5))
                continue;
            const char *e = strchr(p, '\n');
            char *one = strndup(p + 5, e ? (size_t)(e - p - 5) : strlen(p + 5));
            json_t *c = one ? json_loads(one, 0, NULL) : NULL;
            free(one);
            if (!c)
                continue;
            json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
            json_t *d = json_object_get(json_object_get(ch, "delta"), "content");
            if (!d)
                d = json_object_get(ch, "text");
            if (json_is_string(d))
                fputs(json_string_value(d), tf);
            json_t *u = json_object_get(c, "usage");
            if (run == 0 && json_is_object(u)) {
                r->ptok = json_integer_value(json_object_get(u, "prompt_tokens"));
                r->ctok = json_integer_value(json_object_get(u, "completion_tokens"));
            }
            json_decref(c);
        }
    } else if ((o = json_loads(body, 0, NULL))) {
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        json_t *c = json_object_get(json_object_get(ch, "message"), "content");
        if (!c)
            c = json_object_get(ch, "text");
        if (json_is_string(c)) {
            fputs(json_string_value(c), tf);
        } else if (json_object_get(o, "data")) {
            char *d = json_dumps(json_object_get(o, "data"), JSON_COMPACT);
            if (d)
                fputs(d, tf);
            free(d);
        }
        json_t *u = json_object_get(o, "usage");
        if (run == 0 && json_is_object(u)) {
            r->ptok = json_integer_value(json_object_get(u, "prompt_tokens"));
            r->ctok = json_integer_value(json_object_get(u, "completion_tokens"));
        }
        json_decref(o);
    }
    fclose(tf);
    free(r->answer[run]);
    r->answer[run] = text;
}

static void replay_start(CURLM *m, replay_xfer *x, const char *base, const replay_opts *o)
{
    char url[4096];
    snprintf(url, sizeof url, "%s%s", base, x->r->endpoint);
    x->easy = curl_easy_init();
    if (!x->easy)
        replay_die(1, "out of memory");
    x->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char h[1024];
    snprintf(h, sizeof h, "Authorization: Bearer %s", o->api_key);
    x->hdr = curl_slist_append(x->hdr, h);
    if (x->r->tenant) {
        snprintf(h, sizeof h, "%s: %s", o->ns_header, x->r->tenant);
        x->hdr = curl_slist_append(x->hdr, h);
    }
    x->hdr = curl_slist_append(x->hdr, "Expect:");
    x->tier = T_OTHER;
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdr);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->r->body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, replay_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, replay_header);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    x->start = replay_now();
    curl_multi_add_handle(m, x->easy);
}

static void replay_progress(const replay_opts *o, const char *what, size_t done, size_t n,
                            size_t hits, size_t failed)
{
    if (!o->progress)
        return;
    int width = 30, fill = (int)(width * done / (n ? n : 1));
    fprintf(stderr, "\r%-7s [%.*s%*s] %zu/%zu  hits %zu  errors %zu ", what, fill,
            "##############################", width - fill, "", done, n, hits, failed);
    if (done == n)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Replay the whole workload against base; run 0 is the target, 1 direct.
 * Returns the number of requests that got a 2xx answer. */
static size_t replay_run(replay_workload *w, int run, const char *base, const replay_opts *o)
{
    CURLM *m = curl_multi_init();
    replay_xfer *xs = calloc(w->n, sizeof *xs);
    if (!m || !xs)
        replay_die(1, "out of memory");
    size_t next = 0, done = 0, ok = 0, hits = 0, failed = 0;
    int inflight = 0;
    double t0 = replay_now();
    while (done < w->n) {
        double now = replay_now();
        while (next < w->n && inflight < o->concurrency &&
               (!o->recorded || now - t0 >= w->r[next].t / o->speed)) {
            xs[next].r = &w->r[next];
            replay_start(m, &xs[next], base, o);
            next++;
            inflight++;
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            replay_xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            long code = 0;
            curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
            replay_req *r = x->r;
            r->status[run] = (int)code;
            if (msg->data.result == CURLE_OK && code >= 200 && code < 300) {
                r->lat[run] = replay_now() - x->start;
                replay_parse_answer(r, run, x->buf ? x->buf : "");
                ok++;
            } else {
                r->lat[run] = -1;
                failed++;
                if (failed <= 3)
                    fprintf(stderr, "%sllmcached-replay: %s%s: %s\n", o->progress ? "\n" : "", base,
                            r->endpoint,
                            msg->data.result != CURLE_OK ? curl_easy_strerror(msg->data.result)
                            : x->buf                     ? x->buf
                                                         : "error status");
            }
            if (run == 0) {
                r->tier = x->tier;
                hits += x->tier == T_EXACT || x->tier == T_SEMANTIC;
            }
            curl_multi_remove_handle(m, x->easy);
            curl_easy_cleanup(x->easy);
            curl_slist_free_all(x->hdr);
            free(x->buf);
            x->buf = NULL;
            inflight--;
            done++;
            replay_progress(o, run ? "direct" : "target", done, w->n, hits, failed);
        }
        if (done == w->n)
            break;
        int wait_ms = 100;
        if (o->recorded && next < w->n && inflight < o->concurrency) {
            double due = (w->r[next].t / o->speed - (replay_now() - t0)) * 1000;
            wait_ms = due < 0 ? 0 : due < 100 ? (int)due : 100;
        }
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    curl_multi_cleanup(m);
    free(xs);
    return ok;
}

/* ---- /stats before and after ------------------------------------------- */

typedef struct {
    int ok;
    double upstream_calls, coalesced, verify_same, verify_changed;
} replay_stats;

static size_t replay_sink(char *p, size_t sz, size_t n, void *arg)
{
    return replay_write(p, sz, n, arg);
}

static replay_stats replay_get_stats(const char *base, const char *token)
{
    replay_stats st = {0};
    if (!token)
        return st;
    /* /stats sits at the daemon's root: strip a trailing /v1 */
    char url[4096];
    size_t bl = strlen(base);
    int v1 = bl >= 3 && !strcmp(base + bl - 3, "/v1");
    snprintf(url, sizeof url, "%.*s/stats", (int)(v1 ? bl - 3 : bl), base);
    replay_xfer x = {0};
    CURL *e = curl_easy_init();
    char h[1024];
    snprintf(h, sizeof h, "Authorization: Bearer %s", token);
    struct curl_slist *hdr = curl_slist_append(NULL, h);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, replay_sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
    long code = 0;
    if (curl_easy_perform(e) == CURLE_OK &&
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 && x.buf) {
        json_t *o = json_loads(x.buf, 0, NULL);
        if (o) {
            st.ok = 1;
            st.upstream_calls = json_number_value(json_object_get(o, "upstream_calls"));
            st.coalesced = json_number_value(json_object_get(o, "coalesced"));
            json_t *v = json_object_get(o, "verify");
            for (const char *t = "exact"; t; t = strcmp(t, "exact") ? NULL : "semantic") {
                json_t *vt = json_object_get(v, t);
                st.verify_same += json_number_value(json_object_get(vt, "same"));
                st.verify_changed += json_number_value(json_object_get(vt, "changed"));
            }
            json_decref(o);
        }
    } else {
        fprintf(stderr,
                "llmcached-replay: %s: HTTP %ld (is --admin-token right?); no daemon "
                "figures in the report\n",
                url, code);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(e);
    free(x.buf);
    return st;
}

/* ---- the report --------------------------------------------------------- */

static int replay_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank quantile of the answered requests of a run (tier < 0: all). */
static double replay_quantile(const replay_workload *w, int run, int tier, double q)
{
    double *v = malloc(w->n * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < w->n; i++) {
        int is_hit = w->r[i].tier == T_EXACT || w->r[i].tier == T_SEMANTIC;
        if (w->r[i].lat[run] >= 0 && (tier < 0 || (tier == 100   ? is_hit
                                                   : tier == 101 ? !is_hit
                                                                 : w->r[i].tier == tier)))
            v[k++] = w->r[i].lat[run];
    }
    double r = NAN;
    if (k) {
        qsort(v, k, sizeof *v, replay_cmp);
        size_t idx = (size_t)ceil(q * (double)k);
        r = v[idx ? idx - 1 : 0];
    }
    free(v);
    return r;
}

/* Price per million tokens of a model from "model=IN/OUT,...". */
static int replay_price(const char *prices, const char *model, double *in, double *out)
{
    if (!prices)
        return 0;
    size_t ml = strlen(model);
    for (const char *p = prices; p && *p; p = strchr(p, ','), p = p ? p + 1 : NULL) {
        const char *eq = strchr(p, '=');
        if (eq && (size_t)(eq - p) == ml && !strncmp(p, model, ml)) {
            char *end;
            *in = strtod(eq + 1, &end);
            *out = *end == '/' ? strtod(end + 1, NULL) : *in;
            return 1;
        }
    }
    return 0;
}

static void replay_check_prices(const char *prices)
{
    if (!prices)
        return;
    char *dup = replay_strdup(prices), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '='), *end = NULL;
        if (eq)
            strtod(eq + 1, &end);
        if (!eq || eq == t || end == eq + 1 || (*end && (*end != '/' || !end[1])))
            replay_die(2, "--prices: expected MODEL=IN/OUT per million tokens, got '%s'", t);
    }
    free(dup);
}

typedef struct {
    const char *kind;
    size_t n, tier[T_N];
} replay_kind;

/* The whole report as one JSON object (text and HTML are written from it). */
static json_t *replay_report(replay_workload *w, const replay_opts *o, size_t ok0, size_t ok1,
                             replay_stats *s0, replay_stats *s1, double secs)
{
    json_t *rep = json_object();
    size_t tier[T_N] = {0};
    long long ptok = 0, ctok = 0;
    double money = 0;
    int priced = 0;
    size_t compared = 0, differ = 0, cmp_tier[2] = {0}, differ_tier[2] = {0};
    replay_kind kinds[32];
    size_t nk = 0;
    for (size_t i = 0; i < w->n; i++) {
        replay_req *r = &w->r[i];
        tier[r->tier]++;
        const char *k = r->kind ? r->kind : "all";
        size_t j;
        for (j = 0; j < nk && strcmp(kinds[j].kind, k); j++)
            ;
        if (j == nk && nk < 32)
            kinds[nk++] = (replay_kind){.kind = k};
        if (j < nk) {
            kinds[j].n++;
            kinds[j].tier[r->tier]++;
        }
        double pin, pout;
        int has_price = replay_price(o->prices, r->model, &pin, &pout);
        priced |= has_price;
        if (r->tier == T_EXACT || r->tier == T_SEMANTIC) {
            ptok += r->ptok;
            ctok += r->ctok;
            if (has_price)
                money += ((double)r->ptok * pin + (double)r->ctok * pout) / 1e6;
            if (o->direct && r->lat[1] >= 0 && r->answer[0] && r->answer[1]) {
                int sem = r->tier == T_SEMANTIC;
                compared++;
                cmp_tier[sem]++;
                if (strcmp(r->answer[0], r->answer[1])) {
                    differ++;
                    differ_tier[sem]++;
                }
            }
        }
    }
    size_t hits = tier[T_EXACT] + tier[T_SEMANTIC];
    json_object_set_new(rep, "workload", json_string(o->workload));
    json_object_set_new(rep, "target", json_string(o->target));
    json_object_set_new(rep, "direct", o->direct ? json_string(o->direct) : json_null());
    json_object_set_new(rep, "requests", json_integer((json_int_t)w->n));
    json_object_set_new(rep, "answered", json_integer((json_int_t)ok0));
    json_object_set_new(rep, "seconds", json_real(secs));
    json_t *jt = json_object();
    for (int t = 0; t < T_N; t++)
        json_object_set_new(jt, replay_tier_name[t], json_integer((json_int_t)tier[t]));
    json_object_set_new(rep, "outcomes", jt);
    json_object_set_new(rep, "hit_rate", json_real((double)hits / (double)w->n));
    json_object_set_new(rep, "hit_rate_exact", json_real((double)tier[T_EXACT] / (double)w->n));
    json_object_set_new(rep, "hit_rate_semantic",
                        json_real((double)tier[T_SEMANTIC] / (double)w->n));
    json_t *jk = json_array();
    for (size_t j = 0; j < nk; j++) {
        json_t *k = json_object();
        size_t kh = kinds[j].tier[T_EXACT] + kinds[j].tier[T_SEMANTIC];
        double hr = (double)kh / (double)kinds[j].n;
        json_object_set_new(k, "kind", json_string(kinds[j].kind));
        json_object_set_new(k, "requests", json_integer((json_int_t)kinds[j].n));
        json_object_set_new(k, "hit_rate", json_real(hr));
        json_object_set_new(k, "hit_rate_exact",
                            json_real((double)kinds[j].tier[T_EXACT] / (double)kinds[j].n));
        json_object_set_new(k, "hit_rate_semantic",
                            json_real((double)kinds[j].tier[T_SEMANTIC] / (double)kinds[j].n));
        if (!strcmp(kinds[j].kind, "faq")) {
            json_object_set_new(k, "target", json_string("> 30%"));
            json_object_set_new(k, "meets_target", json_boolean(hr > 0.30));
        } else if (!strcmp(kinds[j].kind, "creative")) {
            json_object_set_new(k, "target", json_string("< 5%"));
            json_object_set_new(k, "meets_target", json_boolean(hr < 0.05));
        }
        json_array_append_new(jk, k);
    }
    json_object_set_new(rep, "kinds", jk);
    json_t *lat = json_object();
    struct {
        const char *name;
        int run, tier;
    } ls[] = {{"with_cache", 0, -1}, {"hits", 0, 100}, {"misses", 0, 101}, {"direct", 1, -1}};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) {
        if (ls[i].run == 1 && !o->direct)
            continue;
        json_t *q = json_object();
        double p50 = replay_quantile(w, ls[i].run, ls[i].tier, 0.5),
               p99 = replay_quantile(w, ls[i].run, ls[i].tier, 0.99);
        json_object_set_new(q, "p50", isnan(p50) ? json_null() : json_real(p50));
        json_object_set_new(q, "p99", isnan(p99) ? json_null() : json_real(p99));
        json_object_set_new(lat, ls[i].name, q);
    }
    json_object_set_new(rep, "latency_seconds", lat);
    if (o->direct)
        json_object_set_new(rep, "direct_answered", json_integer((json_int_t)ok1));
    /* Not sent to inference: the daemon's own count when we can read it. */
    double not_sent = (double)hits / (double)w->n;
    const char *src = "X-LLM-Cache hits";
    if (s0->ok && s1->ok) {
        double calls = s1->upstream_calls - s0->upstream_calls;
        not_sent = 1 - calls / (double)w->n;
        src = "daemon /stats upstream_calls";
        json_object_set_new(rep, "upstream_calls", json_real(calls));
    }
    json_object_set_new(rep, "not_sent_to_inference", json_real(not_sent));
    json_object_set_new(rep, "not_sent_source", json_string(src));
    json_object_set_new(rep, "tokens_saved_prompt", json_integer(ptok));
    json_object_set_new(rep, "tokens_saved_completion", json_integer(ctok));
    json_object_set_new(rep, "money_saved", priced ? json_real(money) : json_null());
    json_t *stale = json_object();
    json_object_set_new(stale, "hits_compared", json_integer((json_int_t)compared));
    json_object_set_new(stale, "hits_differing",
                        o->direct ? json_integer((json_int_t)differ) : json_null());
    json_object_set_new(stale, "rate",
                        compared ? json_real((double)differ / (double)compared) : json_null());
    /* exact hits that differ: stale; semantic ones: answered otherwise */
    json_object_set_new(stale, "exact_rate",
                        cmp_tier[0] ? json_real((double)differ_tier[0] / (double)cmp_tier[0])
                                    : json_null());
    json_object_set_new(stale, "semantic_rate",
                        cmp_tier[1] ? json_real((double)differ_tier[1] / (double)cmp_tier[1])
                                    : json_null());
    if (s0->ok && s1->ok) {
        double vs = s1->verify_same - s0->verify_same, vc = s1->verify_changed - s0->verify_changed;
        json_object_set_new(stale, "daemon_verified", json_real(vs + vc));
        json_object_set_new(stale, "daemon_rate",
                            vs + vc > 0 ? json_real(vc / (vs + vc)) : json_null());
    }
    json_object_set_new(rep, "staleness", stale);
    json_t *series = json_array(); /* per request, for the HTML charts */
    for (size_t i = 0; i < w->n; i++) {
        json_t *p = json_array();
        json_array_append_new(p, json_integer(w->r[i].tier));
        json_array_append_new(p, json_real(w->r[i].lat[0]));
        json_array_append_new(p, json_real(o->direct ? w->r[i].lat[1] : -1));
        json_array_append_new(series, p);
    }
    json_object_set_new(rep, "per_request", series);
    return rep;
}

static double replay_num(json_t *o, const char *path)
{
    char key[128];
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        o = json_object_get(o, key);
        path = dot + 1;
    }
    json_t *v = json_object_get(o, path);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void replay_fmt_sec(char *b, size_t n, double s)
{
    if (isnan(s))
        snprintf(b, n, "n/a");
    else if (s < 1e-3)
        snprintf(b, n, "%.0f µs", s * 1e6);
    else if (s < 1)
        snprintf(b, n, "%.1f ms", s * 1e3);
    else
        snprintf(b, n, "%.2f s", s);
}

/* Money with two significant digits below a dollar ($0.0012, not $0.00). */
static void replay_fmt_money(char *b, size_t n, double x)
{
    if (isnan(x))
        snprintf(b, n, "n/a (no --prices for these models)");
    else if (x == 0 || fabs(x) >= 1)
        snprintf(b, n, "$%.2f", x);
    else {
        int d = 1 - (int)floor(log10(fabs(x)));
        snprintf(b, n, "$%.*f", d < 4 ? 4 : d > 8 ? 8 : d, x);
    }
}

static void replay_pct(char *b, size_t n, double x)
{
    if (isnan(x))
        snprintf(b, n, "n/a");
    else
        snprintf(b, n, "%.1f%%", 100 * x);
}

static void replay_text(json_t *rep, FILE *f)
{
    char a[64], b[64], c[64], d[64];
    fprintf(f, "llmcached-replay: %s → %s\n", json_string_value(json_object_get(rep, "workload")),
            json_string_value(json_object_get(rep, "target")));
    fprintf(f, "  requests            %lld (answered %lld) in %.1f s\n",
            (long long)replay_num(rep, "requests"), (long long)replay_num(rep, "answered"),
            replay_num(rep, "seconds"));
    replay_pct(a, sizeof a, replay_num(rep, "hit_rate"));
    replay_pct(b, sizeof b, replay_num(rep, "hit_rate_exact"));
    replay_pct(c, sizeof c, replay_num(rep, "hit_rate_semantic"));
    fprintf(f, "  hit rate            %s (exact %s, semantic %s)\n", a, b, c);
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(rep, "kinds"), i, k)
    {
        replay_pct(a, sizeof a, replay_num(k, "hit_rate"));
        json_t *t = json_object_get(k, "target");
        fprintf(f, "    %-16s  %s of %lld", json_string_value(json_object_get(k, "kind")), a,
                (long long)replay_num(k, "requests"));
        if (t)
            fprintf(f, "   target %s: %s", json_string_value(t),
                    json_is_true(json_object_get(k, "meets_target")) ? "met" : "NOT MET");
        fputc('\n', f);
    }
    replay_fmt_sec(a, sizeof a, replay_num(rep, "latency_seconds.with_cache.p50"));
    replay_fmt_sec(b, sizeof b, replay_num(rep, "latency_seconds.with_cache.p99"));
    fprintf(f, "  latency with cache  p50 %s  p99 %s\n", a, b);
    replay_fmt_sec(a, sizeof a, replay_num(rep, "latency_seconds.hits.p50"));
    replay_fmt_sec(b, sizeof b, replay_num(rep, "latency_seconds.hits.p99"));
    replay_fmt_sec(c, sizeof c, replay_num(rep, "latency_seconds.misses.p50"));
    replay_fmt_sec(d, sizeof d, replay_num(rep, "latency_seconds.misses.p99"));
    fprintf(f, "    hits              p50 %s  p99 %s;  misses p50 %s  p99 %s\n", a, b, c, d);
    if (json_object_get(json_object_get(rep, "latency_seconds"), "direct")) {
        replay_fmt_sec(a, sizeof a, replay_num(rep, "latency_seconds.direct.p50"));
        replay_fmt_sec(b, sizeof b, replay_num(rep, "latency_seconds.direct.p99"));
        fprintf(f, "  latency direct      p50 %s  p99 %s  (%s)\n", a, b,
                json_string_value(json_object_get(rep, "direct")));
    } else {
        fprintf(f, "  latency direct      n/a (give --direct UPSTREAM_URL)\n");
    }
    replay_pct(a, sizeof a, replay_num(rep, "not_sent_to_inference"));
    fprintf(f, "  not sent to inference %s (from %s)\n", a,
            json_string_value(json_object_get(rep, "not_sent_source")));
    replay_fmt_money(a, sizeof a, replay_num(rep, "money_saved"));
    fprintf(f, "  tokens saved        %lld prompt + %lld completion; money saved %s\n",
            (long long)replay_num(rep, "tokens_saved_prompt"),
            (long long)replay_num(rep, "tokens_saved_completion"), a);
    double sr = replay_num(rep, "staleness.rate"), dr = replay_num(rep, "staleness.daemon_rate");
    replay_pct(a, sizeof a, sr);
    replay_pct(b, sizeof b, replay_num(rep, "staleness.exact_rate"));
    replay_pct(c, sizeof c, replay_num(rep, "staleness.semantic_rate"));
    if (!isnan(sr))
        fprintf(f,
                "  staleness           %s of %lld hits differ from a fresh upstream answer "
                "(exact: %s, semantic: %s)\n",
                a, (long long)replay_num(rep, "staleness.hits_compared"), b, c);
    else if (json_is_null(json_object_get(rep, "direct")))
        fprintf(f,
                "  staleness           n/a (give --direct to compare hits with fresh answers)\n");
    else
        fprintf(f, "  staleness           n/a (no hit to compare)\n");
    if (!isnan(dr)) {
        replay_pct(a, sizeof a, dr);
        fprintf(f, "    daemon --verify-rate sample: %s of %.0f re-asked hits changed\n", a,
                replay_num(rep, "staleness.daemon_verified"));
    }
}

/* An SVG bar chart of p50/p99 with and without the cache, and the hit rate
 * per request over the run (cumulative), both with labelled axes. */
static void replay_html(json_t *rep, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        replay_die(2, "--html %s: %s", path, strerror(errno));
    char *js = json_dumps(rep, JSON_COMPACT);
    /* "</" never appears raw inside the inline script */
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<title>llmcached replay report</title>"
          "<link rel=\"icon\" href=\"data:,\">"
          "<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;max-width:60em;color:#222}"
          "td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}"
          "td.n{text-align:right}svg text{font-size:11px;fill:#444}</style></head><body>\n"
          "<h1>llmcached replay report</h1>\n<pre id=\"summary\">",
          f);
    /* the text report, escaped */
    char *txt = NULL;
    size_t tl = 0;
    FILE *tf = open_memstream(&txt, &tl);
    replay_text(rep, tf);
    fclose(tf);
    for (char *p = txt; *p; p++)
        if (*p == '<')
            fputs("&lt;", f);
        else if (*p == '&')
            fputs("&amp;", f);
        else
            fputc(*p, f);
    free(txt);
    fputs("</pre>\n<h2>Latency, with the cache and straight to the upstream</h2>"
          "<div id=\"lat\"></div>\n<h2>Hit rate over the run (cumulative)</h2>"
          "<div id=\"hits\"></div>\n<script id=\"data\" type=\"application/json\">",
          f);
    for (char *p = js; *p; p++)
        if (*p == '<')
            fputs("\\u003c", f);
        else
            fputc(*p, f);
    free(js);
    fputs(
        "</script>\n<script>\n"
        "const R = JSON.parse(document.getElementById('data').textContent);\n"
        "const fmt = (s) => s == null ? 'n/a' : s < 1e-3 ? (s * 1e6).toFixed(0) + ' µs' : s < 1 ? "
        "(s * 1e3).toFixed(1) + ' ms' : s.toFixed(2) + ' s';\n"
        "function bars() {\n"
        "  const L = R.latency_seconds, rows = [['with cache', L.with_cache], ['hits', L.hits], "
        "['misses', L.misses]];\n"
        "  if (L.direct) rows.push(['direct (no cache)', L.direct]);\n"
        "  const vals = rows.flatMap(([, q]) => [q.p50, q.p99]).filter((v) => v > 0);\n"
        "  const lo = 10 ** Math.floor(Math.log10(Math.min(...vals))), hi = 10 ** "
        "Math.ceil(Math.log10(Math.max(...vals)));\n"
        "  const W = 640, X0 = 130, PW = W - X0 - 40, rh = 34;\n"
        "  const x = (v) => X0 + PW * (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - "
        "Math.log10(lo));\n"
        "  const H = rows.length * rh + 40;\n"
        "  let s = `<svg viewBox=\"0 0 ${W} ${H}\" width=\"${W}\" role=\"img\" "
        "aria-label=\"latency\">`;\n"
        "  for (let t = lo; t <= hi * 1.0001; t *= 10) s += `<line x1=\"${x(t)}\" x2=\"${x(t)}\" "
        "y1=\"0\" y2=\"${H - 30}\" stroke=\"#eee\"/><text class=\"xtick\" x=\"${x(t)}\" y=\"${H - "
        "16}\" text-anchor=\"middle\">${fmt(t)}</text>`;\n"
        "  s += `<text x=\"${X0 + PW / 2}\" y=\"${H - 2}\" text-anchor=\"middle\">seconds, log "
        "scale (bars: p50, whisker: p99)</text>`;\n"
        "  rows.forEach(([name, q], i) => {\n"
        "    const y = 6 + i * rh;\n"
        "    s += `<text x=\"${X0 - 6}\" y=\"${y + 15}\" text-anchor=\"end\">${name}</text>`;\n"
        "    if (q.p50 > 0) s += `<rect class=\"bar\" x=\"${X0}\" y=\"${y}\" width=\"${x(q.p50) - "
        "X0}\" height=\"20\" fill=\"${i === 3 ? '#999' : '#1a7f4b'}\"/>`;\n"
        "    if (q.p99 > 0) s += `<line x1=\"${x(q.p50 || lo)}\" x2=\"${x(q.p99)}\" y1=\"${y + "
        "10}\" "
        "y2=\"${y + 10}\" stroke=\"#d97706\" stroke-width=\"2\"/>`;\n"
        "    s += `<text x=\"${X0 + 4}\" y=\"${y + 32}\" font-size=\"10\">p50 ${fmt(q.p50)} · p99 "
        "${fmt(q.p99)}</text>`;\n"
        "  });\n"
        "  document.getElementById('lat').innerHTML = s + '</svg>';\n"
        "}\n"
        "function hits() {\n"
        "  const P = R.per_request, W = 640, H = 200, X0 = 50, PW = W - X0 - 20, PH = H - 40;\n"
        "  let h = 0, d = '';\n"
        "  P.forEach((p, i) => { h += p[0] <= 1 ? 1 : 0; const x = X0 + PW * (i + 1) / P.length, y "
        "= 10 + PH * (1 - h / (i + 1)); d += (i ? 'L' : 'M') + x.toFixed(1) + ',' + y.toFixed(1); "
        "});\n"
        "  let s = `<svg viewBox=\"0 0 ${W} ${H}\" width=\"${W}\" role=\"img\" aria-label=\"hit "
        "rate\">`;\n"
        "  for (let k = 0; k <= 4; k++) { const y = 10 + PH * (1 - k / 4); s += `<line "
        "x1=\"${X0}\" "
        "x2=\"${X0 + PW}\" y1=\"${y}\" y2=\"${y}\" stroke=\"#eee\"/><text class=\"ytick\" "
        "x=\"${X0 - 4}\" y=\"${y + 4}\" text-anchor=\"end\">${k * 25}%</text>`; }\n"
        "  s += `<text x=\"${X0 + PW / 2}\" y=\"${H - 4}\" text-anchor=\"middle\">requests "
        "replayed (1..${P.length})</text>`;\n"
        "  s += `<path class=\"line\" d=\"${d}\" fill=\"none\" stroke=\"#1a7f4b\" "
        "stroke-width=\"2\"/></svg>`;\n"
        "  document.getElementById('hits').innerHTML = s + `<div>final: <b id=\"final\">${(100 * "
        "R.hit_rate).toFixed(1)}%</b></div>`;\n"
        "}\n"
        "bars(); hits();\n"
        "</script>\n</body></html>\n",
        f);
    if (fclose(f))
        replay_die(2, "--html %s: %s", path, strerror(errno));
}

static void replay_usage(FILE *f)
{
    fputs("usage: llmcached-replay WORKLOAD.jsonl --target URL [--direct URL] [options]\n"
          "\n"
          "Replays a workload (one OpenAI request a line, or {\"t\":S,\"tenant\":T,\"kind\":K,\n"
          "\"request\":{...}}) through llmcached and prints the KPIs: hit rate by tier and\n"
          "kind (targets: faq > 30%, creative < 5%), p50/p99 with the cache and straight\n"
          "to the upstream, share not sent to inference, tokens and money saved, staleness.\n"
          "\n"
          "  --target URL        the cache's base URL, e.g. http://127.0.0.1:8080/v1\n"
          "  --direct URL        the upstream's base URL: replay again without the cache\n"
          "  --pace recorded|max recorded: each line at its \"t\" (default when lines have\n"
          "                      one); max: as fast as --concurrency allows\n"
          "  --speed X           recorded pace X times faster [1]\n"
          "  --concurrency N     requests in flight at most [8]\n"
          "  --prices M=IN/OUT,… price per million tokens, for money saved\n"
          "  --admin-token TOKEN read the daemon's /stats before and after (upstream calls,\n"
          "                      its --verify-rate sample)\n"
          "  --api-key KEY       sent as Authorization: Bearer KEY [sk-replay]\n"
          "  --namespace-header H the header that carries a line's tenant [X-LLM-Cache-Namespace]\n"
          "  --json              the report as JSON on stdout\n"
          "  --html FILE         a self-contained HTML report with SVG charts\n"
          "  --no-progress       no progress bar (default: shown when stderr is a terminal)\n",
          f);
}

int main(int argc, char **argv)
{
    replay_opts o = {.concurrency = 8,
                     .speed = 1,
                     .api_key = "sk-replay",
                     .ns_header = "X-LLM-Cache-Namespace",
                     .progress = isatty(2),
                     .recorded = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (v || (replay_die(2, "%s needs a value", name), 0)) && ++i)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            replay_usage(stdout);
            return 0;
        } else if (ARG("--target"))
            o.target = v;
        else if (ARG("--direct"))
            o.direct = v;
        else if (ARG("--prices"))
            o.prices = v;
        else if (ARG("--admin-token"))
            o.admin_token = v;
        else if (ARG("--api-key"))
            o.api_key = v;
        else if (ARG("--namespace-header"))
            o.ns_header = v;
        else if (ARG("--html"))
            o.html = v;
        else if (ARG("--concurrency")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 10000)
                replay_die(2, "--concurrency: expected 1 to 10000, got '%s'", v);
            o.concurrency = (int)n;
        } else if (ARG("--speed")) {
            char *end;
            o.speed = strtod(v, &end);
            if (*end || !(o.speed > 0))
                replay_die(2, "--speed: expected a number > 0, got '%s'", v);
        } else if (ARG("--pace")) {
            if (!strcmp(v, "recorded"))
                o.recorded = 1;
            else if (!strcmp(v, "max"))
                o.recorded = 0;
            else
                replay_die(2, "--pace: expected recorded or max, got '%s'", v);
        } else if (!strcmp(a, "--json"))
            o.json = 1;
        else if (!strcmp(a, "--no-progress"))
            o.progress = 0;
        else if (a[0] == '-' && a[1])
            replay_die(2, "unknown option '%s' (see --help)", a);
        else if (!o.workload)
            o.workload = a;
        else
            replay_die(2, "one workload file only ('%s' and '%s')", o.workload, a);
#undef ARG
    }
    if (!o.workload || !o.target) {
        replay_usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_ALL))
        replay_die(1, "cannot initialise libcurl");
    char *target = replay_base("--target", o.target);
    char *direct = o.direct ? replay_base("--direct", o.direct) : NULL;
    replay_check_prices(o.prices);
    replay_workload w = {0};
    replay_load(o.workload, &w);
    if (o.recorded < 0) { /* recorded pace when the workload says when */
        o.recorded = 0;
        for (size_t i = 0; i < w.n; i++)
            o.recorded |= w.r[i].t > 0;
    }

    replay_stats s0 = replay_get_stats(target, o.admin_token);
    double t0 = replay_now();
    size_t ok0 = replay_run(&w, 0, target, &o);
    double secs = replay_now() - t0;
    /* the daemon counts a call when it ends: let the last ones land */
    replay_stats s1 = replay_get_stats(target, o.admin_token);
    size_t ok1 = direct ? replay_run(&w, 1, direct, &o) : 0;
    if (!ok0) {
        fprintf(stderr, "llmcached-replay: no request to %s got an answer\n", target);
        return 1;
    }
    json_t *rep = replay_report(&w, &o, ok0, ok1, &s0, &s1, secs);
    if (o.json) {
        json_dumpf(rep, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        replay_text(rep, stdout);
    }
    if (o.html)
        replay_html(rep, o.html);
    json_decref(rep);
    for (size_t i = 0; i < w.n; i++) {
        replay_req *r = &w.r[i];
        free(r->endpoint);
        free(r->body);
        free(r->model);
        free(r->tenant);
        free(r->kind);
        free(r->answer[0]);
        free(r->answer[1]);
    }
    free(w.r);
    free(target);
    free(direct);
    curl_global_cleanup();
    return 0;
}
