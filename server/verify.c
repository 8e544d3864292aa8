/*
 * verify.c — how often a served answer is no longer what the model says:
 * a sample of hits is asked upstream again, in the background, and the
 * fresh answer compared with the one served.
 *
 * Why. A hit rate says how much the cache saves, not whether what it served
 * was right. For an exact hit a different fresh answer means the entry had
 * gone stale (the world or the model changed); for a semantic hit it means
 * the similar question was not the same question after all. Both rates are
 * what an operator weighs against the savings (DESIGN.md: staleness).
 *
 * Design. On a loop, after a hit is served, verify_sample() draws from a
 * counter-based generator (splitmix64 over an atomic sequence: no per-loop
 * state, no lock) and with probability --verify-rate copies what a re-ask
 * needs: the upstream URL (routed like any call), the forwarded headers,
 * the body with "stream" set to false, and the served answer. One worker
 * thread takes the jobs in order (a bounded queue: a job that finds it full
 * is dropped and counted), makes the call with a blocking libcurl easy
 * handle, takes the answer text of both responses (llmc_resp_text: the
 * first choice's content; requests with n > 1 are never cached) and
 * compares: equal
 * bytes are "same"; otherwise, when the semantic tier's encoder is loaded,
 * "same" when the cosine of the two texts' embeddings reaches
 * --verify-similarity, else "changed". Without an encoder only equal bytes
 * are the same. Upstream errors and answers that cannot be read are counted
 * apart and change nothing. Answers are never written to the store; one
 * thing is learned: a semantic hit answered otherwise raises the served
 * entry's floor (llmc_entry_raise_semantic_floor) to that hit's similarity,
 * so the entry no longer answers queries that far from it — the vCache idea
 * of a threshold per entry, learned from the re-asks.
 *
 * Cost: the re-asks are real upstream calls, so the rate is 0 (off) unless
 * set; the worker's encoder is a second copy of the semantic tier's model.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "server.h"
#include "util.h"

#define VERIFY_QUEUE_MAX 64
#define VERIFY_BODY_MAX ((size_t)16 << 20) /* a fresh answer larger than this is an error */

typedef struct verify_job verify_job;
struct verify_job {
    verify_job *next;
    char *url;
    int backend;
    struct curl_slist *hdrs;
    char *body;
    size_t len;
    char *served;
    size_t served_len;
    int ep;                    /* LLMC_EP_CHAT or LLMC_EP_COMPLETIONS */
    int semantic;              /* the hit was semantic */
    double similarity;         /* of a semantic hit */
    uint8_t key[LLMC_KEY_LEN]; /* the entry served */
};

struct verify {
    srv *s;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    verify_job *head, *tail;
    int queued;
    atomic_int stop;   /* also read by a call in progress, which then gives up */
    llmc_embedder *em; /* the worker's own, when the semantic tier is on */
    atomic_uint_fast64_t seq;
    atomic_uint_fast64_t sampled, dropped, errors, same[2], changed[2];
};

static uint64_t verify_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void verify_job_free(verify_job *j)
{
    if (!j)
        return;
    free(j->url);
    curl_slist_free_all(j->hdrs);
    free(j->body);
    free(j->served);
    free(j);
}

/* The request body to re-ask: the client's, answered in one piece. */
static char *verify_body(const char *body, size_t len, size_t *out_len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "stream", json_false());
    json_object_del(o, "stream_options");
    char *d = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (d)
        *out_len = strlen(d);
    return d;
}

void verify_sample(srv *s, struct evhttp_request *req, const llmc_entry_info *e, double similarity,
                   const char *body, size_t len)
{
    int semantic = !isnan(similarity);
    struct verify *v = s->verify;
    if (!v || !req || !body || (e->endpoint != LLMC_EP_CHAT && e->endpoint != LLMC_EP_COMPLETIONS))
        return;
    uint64_t r = verify_mix(atomic_fetch_add(&v->seq, 1) ^ (uint64_t)s->started);
    if ((double)(r >> 11) * 0x1.0p-53 >= s->cfg.verify_rate)
        return;
    atomic_fetch_add(&v->sampled, 1);
    pthread_mutex_lock(&v->mu);
    int full = v->queued >= VERIFY_QUEUE_MAX || v->stop;
    pthread_mutex_unlock(&v->mu);
    if (full) {
        atomic_fetch_add(&v->dropped, 1);
        return;
    }
    verify_job *j = calloc(1, sizeof *j);
    if (!j)
        goto fail;
    j->ep = e->endpoint;
    j->semantic = semantic;
    j->similarity = similarity;
    memcpy(j->key, e->key, LLMC_KEY_LEN);
    j->body = verify_body(body, len, &j->len);
    j->served = malloc(e->body_len + 1);
    j->backend = pool_pick(s->upstreams, NULL, -1);
    j->url = pool_url(s->upstreams, j->backend, evhttp_request_get_uri(req));
    if (!j->body || !j->served || !j->url) {
        pool_end(s->upstreams, j->backend, 0);
        goto fail;
    }
    memcpy(j->served, e->body, e->body_len);
    j->served[e->body_len] = 0;
    j->served_len = e->body_len;
    j->hdrs = upstream_headers(s, req, 1);
    pthread_mutex_lock(&v->mu);
    if (v->stop) {
        pthread_mutex_unlock(&v->mu);
        pool_end(s->upstreams, j->backend, 0);
        goto fail;
    }
    if (v->tail)
        v->tail->next = j;
    else
        v->head = j;
    v->tail = j;
    v->queued++;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    return;
fail:
    verify_job_free(j);
    atomic_fetch_add(&v->dropped, 1);
}

typedef struct {
    char *p;
    size_t n, cap;
    int over;
} verify_buf;

static size_t verify_on_body(char *data, size_t sz, size_t nm, void *arg)
{
    verify_buf *b = arg;
    size_t n = sz * nm;
    if (b->n + n + 1 > VERIFY_BODY_MAX) {
        b->over = 1;
        return 0;
    }
    if (llmc_grow((void **)&b->p, &b->cap, b->n + n + 1, 1))
        return 0;
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

/* curl's progress callback: a call in progress ends when the daemon stops. */
static int verify_on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct verify *v = arg;
    return atomic_load(&v->stop) != 0;
}

/* 1 same, 0 changed, -1 could not compare. */
static int verify_compare(struct verify *v, int ep, const char *served, size_t served_len,
                          const char *fresh, size_t fresh_len)
{
    char *a = llmc_resp_text((llmc_endpoint)ep, served, served_len);
    char *b = llmc_resp_text((llmc_endpoint)ep, fresh, fresh_len);
    int r = -1;
    if (a && b) {
        r = strcmp(a, b) == 0;
        if (!r && v->em) {
            size_t dim = llmc_embedder_dim(v->em);
            float *x = malloc(2 * dim * sizeof *x);
            if (x && !llmc_embed(v->em, a, strlen(a), x) &&
                !llmc_embed(v->em, b, strlen(b), x + dim)) {
                double cos = 0;
                for (size_t k = 0; k < dim; k++)
                    cos += (double)x[k] * x[dim + k];
                r = cos >= v->s->cfg.verify_similarity;
            }
            free(x);
        }
    }
    free(a);
    free(b);
    return r;
}

static void verify_run(struct verify *v, verify_job *j)
{
    srv *s = v->s;
    CURL *e = curl_easy_init();
    verify_buf b = {0};
    long status = 0;
    CURLcode cr = CURLE_FAILED_INIT;
    if (e) {
        curl_easy_setopt(e, CURLOPT_URL, j->url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, verify_on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, verify_on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, v);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->cfg.connect_timeout_ms);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->cfg.upstream_timeout_ms);
        pool_begin(s->upstreams, j->backend);
        cr = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(e);
    }
    pool_end(s->upstreams, j->backend, cr == CURLE_COULDNT_CONNECT);
    int r = -1;
    if (cr == CURLE_OK && status == 200 && !b.over && b.p)
        r = verify_compare(v, j->ep, j->served, j->served_len, b.p, b.n);
    free(b.p);
    if (r < 0) {
        atomic_fetch_add(&v->errors, 1);
        srv_log(LOG_DEBUG, "verify: %s: %s (HTTP %ld)", j->url,
                cr != CURLE_OK ? curl_easy_strerror(cr) : "answer not comparable", status);
    } else {
        atomic_fetch_add(r ? &v->same[j->semantic] : &v->changed[j->semantic], 1);
    }
    /* A semantic hit the model answers otherwise: this entry must not
     * answer queries this far from it again (its learned floor). */
    if (r == 0 && j->semantic) {
        const llmc_entry_info *served;
        if (llmc_cache_get_exact(s->cache, j->key, -1, (int64_t)time(NULL), &served) == 0) {
            llmc_entry_raise_semantic_floor(served, j->similarity);
            llmc_entry_release(served);
            srv_log(LOG_INFO,
                    "verify: a semantic hit at similarity %.4f was answered otherwise; "
                    "that entry now needs more",
                    j->similarity);
        }
    }
}

static void *verify_worker(void *arg)
{
    struct verify *v = arg;
    for (;;) {
        pthread_mutex_lock(&v->mu);
        while (!v->head && !v->stop)
            pthread_cond_wait(&v->cv, &v->mu);
        verify_job *j = v->head;
        if (v->stop) {
            pthread_mutex_unlock(&v->mu);
            break;
        }
        v->head = j->next;
        if (!v->head)
            v->tail = NULL;
        pthread_mutex_unlock(&v->mu);
        verify_run(v, j);
        pthread_mutex_lock(&v->mu);
        v->queued--;
        pthread_mutex_unlock(&v->mu);
        verify_job_free(j);
    }
    return NULL;
}

int verify_start(srv *s)
{
    if (s->cfg.verify_rate <= 0)
        return 0;
    struct verify *v = calloc(1, sizeof *v);
    if (!v)
        return -1;
    v->s = s;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    if (llmc_cache_semantic_model(s->cache)) {
        llmc_embed_params ep;
        config_embed_params(&s->cfg, &ep);
        int err = 0;
        v->em = llmc_embedder_new(&ep, &err);
        if (!v->em)
            srv_log(LOG_WARN, "verify: no encoder (%s): only identical answers count as the same",
                    llmc_strerror(err));
    }
    if (pthread_create(&v->th, NULL, verify_worker, v)) {
        llmc_embedder_free(v->em);
        free(v);
        return -1;
    }
    s->verify = v;
    s->on_hit = verify_sample; /* reply.c calls it as each hit is served */
    srv_log(LOG_INFO, "verify: re-asking %.4g of hits upstream, answers compared %s",
            s->cfg.verify_rate, v->em ? "by embedding" : "byte for byte");
    return 0;
}

void verify_stop(srv *s)
{
    struct verify *v = s->verify;
    if (!v)
        return;
    pthread_mutex_lock(&v->mu);
    v->stop = 1;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    pthread_join(v->th, NULL); /* a call in progress gives up at its next progress tick */
    for (verify_job *j = v->head, *n; j; j = n) {
        n = j->next;
        pool_end(s->upstreams, j->backend, 0);
        verify_job_free(j);
    }
    llmc_embedder_free(v->em);
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cv);
    free(v);
    s->verify = NULL;
}

void verify_write_json(srv *s, FILE *f)
{
    struct verify *v = s->verify;
    if (!v)
        return;
    uint64_t se = atomic_load(&v->same[0]), ce = atomic_load(&v->changed[0]);
    uint64_t ss = atomic_load(&v->same[1]), cs = atomic_load(&v->changed[1]);
    fprintf(f,
            ",\"verify\":{\"rate\":%g,\"sampled\":%llu,\"dropped\":%llu,\"errors\":%llu,"
            "\"exact\":{\"same\":%llu,\"changed\":%llu,\"stale_rate\":%.4f},"
            "\"semantic\":{\"same\":%llu,\"changed\":%llu,\"changed_rate\":%.4f}}",
            s->cfg.verify_rate, (unsigned long long)atomic_load(&v->sampled),
            (unsigned long long)atomic_load(&v->dropped),
            (unsigned long long)atomic_load(&v->errors), (unsigned long long)se,
            (unsigned long long)ce, se + ce ? (double)ce / (double)(se + ce) : 0.0,
            (unsigned long long)ss, (unsigned long long)cs,
            ss + cs ? (double)cs / (double)(ss + cs) : 0.0);
}

void verify_write_prometheus(srv *s, FILE *f)
{
    struct verify *v = s->verify;
    if (!v)
        return;
    fprintf(f, "# HELP llmcached_verify_total Hits re-asked upstream and compared, by tier and "
               "outcome.\n# TYPE llmcached_verify_total counter\n");
    static const char *const tier[2] = {"exact", "semantic"};
    for (int t = 0; t < 2; t++) {
        fprintf(f, "llmcached_verify_total{tier=\"%s\",outcome=\"same\"} %llu\n", tier[t],
                (unsigned long long)atomic_load(&v->same[t]));
        fprintf(f, "llmcached_verify_total{tier=\"%s\",outcome=\"changed\"} %llu\n", tier[t],
                (unsigned long long)atomic_load(&v->changed[t]));
    }
    fprintf(f,
            "# HELP llmcached_verify_errors_total Re-asks that failed or gave no comparable "
            "answer.\n# TYPE llmcached_verify_errors_total counter\n"
            "llmcached_verify_errors_total %llu\n",
            (unsigned long long)atomic_load(&v->errors));
    fprintf(f,
            "# HELP llmcached_verify_dropped_total Sampled hits not re-asked (queue full).\n"
            "# TYPE llmcached_verify_dropped_total counter\nllmcached_verify_dropped_total "
            "%llu\n",
            (unsigned long long)atomic_load(&v->dropped));
}
