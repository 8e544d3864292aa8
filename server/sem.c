/*
 * sem.c — the semantic tier inside the daemon.
 *
 * Embedding takes milliseconds of CPU, so it never runs on an event loop:
 * a request that missed the exact tier and may be answered semantically is
 * handed to a pool of worker threads (--embed-threads, one per CPU by
 * default, each with its own embedder, since an embedder is single-
 * threaded). A worker takes whatever is queued, up to SEM_BATCH texts, as
 * one batch (the encoder is faster per text in batches), embeds the
 * normalised texts (llmc_semantic_embed_batch), searches each request's
 * partition, runs the decision, and wakes each request's loop
 * (event_active) with its result: the loop then serves the entry found
 * (HIT-SEMANTIC) or passes the request, with its vector, to a flight so the
 * answer is stored with the vector. Exact hits never wait for any of this.
 *
 * A miss is never held hostage. Before queueing, sem_submit estimates how
 * long the request would wait for a worker: (texts queued + texts being
 * embedded) x the recent time per text (an exponential average over
 * batches) / workers. Beyond --semantic-budget (5 ms) the lookup is
 * skipped: the request goes upstream at once (X-LLM-Cache-Reason:
 * "semantic: skipped (overload)", counted as reason "skipped"), and its
 * answer is still stored; once stored, the entry is put on a second,
 * bounded queue (SEM_DEFER_MAX) of pending inserts that one indexer thread
 * (its own embedder, at nice 19: it gets only the CPU the loops and the
 * lookup workers leave) embeds in batches and indexes. A full queue drops
 * the insert (counted): the entry still serves exact hits. A burst of new questions
 * thus costs the semantic tier some hits, never the misses' latency.
 *
 * Every lookup's outcome is counted by its reason kind (a bounded label
 * set: llmc_semantic_kind_name) and told to the client in
 * X-LLM-Cache-Reason when it did not serve: "semantic: below threshold
 * (0.812 < 0.840)", "semantic: guard: number 2 vs 3", "semantic:
 * ambiguous", "semantic: empty partition", "semantic: skipped (overload)".
 *
 * A client that leaves while its job is queued or running is noticed by
 * the connection's close callback (job->gone); the worker's result is then
 * dropped on the loop. Ownership: the job owns its copies (body, query,
 * vector) until it hands them to a flight; a deferred insert owns its key
 * and query. The pool's mutex guards both queues, the in-flight count and
 * the per-text estimate; counters are atomics.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "server.h"

#define SEM_BATCH 32       /* texts a worker embeds at once, at most */
#define SEM_DEFER_BATCH 16 /* deferred inserts embedded at once */
#define SEM_DEFER_MAX 4096 /* pending inserts kept; more are dropped (counted) */
#define SEM_WORKERS_MAX 16
#define SEM_PER_TEXT0 0.003 /* seconds per text before anything is measured */

typedef struct sem_job sem_job;
struct sem_job {
    sem_job *next;
    srv_loop *l;
    struct evhttp_request *req;
    struct event *done;
    flight_req fr;
    char *body;
    size_t len;
    char *query;
    size_t qlen;
    double threshold, t0, t_lookup;
    int gone;
    /* results (worker → loop) */
    const llmc_entry_info *hit;
    llmc_semantic_result res;
    int looked; /* a lookup ran (res is meaningful) */
    float *vec;
};

/* An answer stored without a vector, waiting to be embedded and indexed. */
typedef struct sem_deferred sem_deferred;
struct sem_deferred {
    sem_deferred *next;
    uint8_t key[LLMC_KEY_LEN];
    char *query;
};

struct sem_pool {
    srv *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sem_job *head, *tail; /* lookups waiting */
    size_t queued;        /* jobs on head..tail */
    size_t embedding;     /* texts being embedded now (lookups and inserts) */
    sem_deferred *dhead, *dtail;
    size_t deferred; /* inserts on dhead..dtail */
    double per_text; /* recent seconds per text, per worker */
    double budget;   /* seconds a lookup may queue */
    int stop, n;
    pthread_t th[SEM_WORKERS_MAX];
    llmc_embedder *em[SEM_WORKERS_MAX];
    pthread_cond_t icv; /* the indexer waits here for deferred inserts */
    pthread_t ith;      /* the indexer (deferred inserts), at the lowest priority */
    llmc_embedder *iem; /* its own embedder */
    atomic_uint_fast64_t outcome[LLMC_SEM_KINDS]; /* lookups by reason kind */
    atomic_uint_fast64_t deferred_indexed, deferred_dropped, batches, batch_texts;
};

double sem_threshold_for(srv *s, const char *model, const char *header)
{
    if (header) {
        char *end;
        double t = strtod(header, &end);
        if (end != header && !*end && t >= 0 && t <= 1)
            return t;
    }
    const char *list = s->cfg.semantic_thresholds;
    size_t ml = strlen(model);
    while (list && *list) {
        const char *e = strchr(list, ',');
        size_t n = e ? (size_t)(e - list) : strlen(list);
        const char *eq = memchr(list, '=', n);
        if (eq && (size_t)(eq - list) == ml && !strncmp(list, model, ml))
            return atof(eq + 1);
        list = e ? e + 1 : NULL;
    }
    return s->cfg.semantic_threshold; /* < 0: the library default */
}

static void sem_job_free(sem_job *j)
{
    if (j->l)
        atomic_fetch_sub(&j->l->s->active, 1);
    reply_unwatch(j->req);
    if (j->done)
        event_free(j->done);
    llmc_entry_release(j->hit);
    if (j->fr.fleet_lock) /* a semantic hit (or a client gone): no upstream call */
        llmc_cache_unlock(j->l->s->cache, j->fr.key, 1);
    free(j->vec);
    free(j->fr.vec);
    free(j->fr.query);
    free(j->fr.route_key);
    free(j->body);
    free(j->query);
    free(j);
}

static void sem_closed(struct evhttp_connection *c, void *arg)
{
    sem_job *j = arg;
    reply_request_lost(&j->req);
    j->gone = 1;
}

/* The X-LLM-Cache-Reason of a lookup that did not serve. */
static void sem_format_reason(const llmc_semantic_result *r, char *buf, size_t cap)
{
    switch (r->kind) {
    case LLMC_SEM_TOO_OLD:
        snprintf(buf, cap, "semantic: too old for max-age (%.3f)", r->similarity);
        break;
    case LLMC_SEM_EMPTY:
        snprintf(buf, cap, "semantic: empty partition");
        break;
    case LLMC_SEM_BELOW:
        snprintf(buf, cap, "semantic: below threshold (%.3f < %.3f)", r->similarity, r->needed);
        break;
    case LLMC_SEM_GUARD:
        snprintf(buf, cap, "semantic: guard: %s", r->guard_detail);
        break;
    case LLMC_SEM_AMBIGUOUS:
        snprintf(buf, cap, "semantic: ambiguous");
        break;
    case LLMC_SEM_FLOOR:
        snprintf(buf, cap,
                 "semantic: learned floor (%.3f): a similar entry answered such a "
                 "question differently before",
                 r->similarity);
        break;
    default:
        snprintf(buf, cap, "semantic: skipped (overload)");
        break;
    }
}

/* On the request's loop: act on the worker's result. */
static void sem_done(evutil_socket_t fd, short what, void *arg)
{
    sem_job *j = arg;
    srv *s = j->l->s;
    struct evhttp_request *req = j->req;
    reply_unwatch(req);
    /* The request leaves the job here: sem_job_free must not unwatch it
     * again, or it would clear the close callback the flight (or the
     * reply) has set since, and a client who leaves would go unnoticed. */
    j->req = NULL;
    llmc_metrics_observe(s->metrics, LLMC_HIST_SEMANTIC_LOOKUP, j->t_lookup);
    if (j->gone || !req) {
        sem_job_free(j);
        return;
    }
    if (j->hit && reply_entry(s, req, j->hit, j->fr.client_stream, j->res.similarity, j->t0,
                              j->body, j->len) == 0) {
        sem_job_free(j);
        return;
    }
    /* A miss: the answer will be stored with this query's vector. */
    if (j->vec && j->fr.cacheable) {
        j->fr.vec = j->vec;
        j->fr.dim = (uint32_t)llmc_embedder_dim(s->semq->em[0]);
        j->vec = NULL;
        j->fr.query = j->query;
        j->query = NULL;
    }
    if (j->fr.reason == NULL && j->looked)
        sem_format_reason(&j->res, j->fr.reason_buf, sizeof j->fr.reason_buf);
    flight_req fr = j->fr;
    memset(&j->fr, 0, sizeof j->fr); /* ownership of vec/query moves on */
    flight_submit(j->l, req, &fr, j->body, j->len, j->t0);
    sem_job_free(j);
}

/* Embed n texts with em (normalised, as one batch; should one text fail,
 * each on its own). ok[i] says which vectors in out are good. */
static void sem_embed(llmc_embedder *em, size_t dim, const char *const *texts, const size_t *lens,
                      size_t n, float *out, int *ok)
{
    if (llmc_semantic_embed_batch(em, texts, lens, n, out) == 0) {
        for (size_t i = 0; i < n; i++)
            ok[i] = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        ok[i] = llmc_semantic_embed_batch(em, texts + i, lens + i, 1, out + i * dim) == 0;
}

/* Worker: a batch of queued lookups; p->mu held on entry and on return. */
static void sem_run_lookups(struct sem_pool *p, llmc_embedder *em, size_t dim)
{
    srv *s = p->s;
    sem_job *jobs[SEM_BATCH];
    size_t m = 0;
    while (p->head && m < SEM_BATCH) {
        sem_job *j = p->head;
        p->head = j->next;
        p->queued--;
        if (!j->gone)
            jobs[m++] = j;
        else
            event_active(j->done, EV_READ, 0); /* its loop frees it */
    }
    if (!p->head)
        p->tail = NULL;
    p->embedding += m;
    pthread_mutex_unlock(&p->mu);

    double t = srv_now();
    const char *texts[SEM_BATCH];
    size_t lens[SEM_BATCH];
    int ok[SEM_BATCH];
    for (size_t i = 0; i < m; i++) {
        texts[i] = jobs[i]->query;
        lens[i] = jobs[i]->qlen;
    }
    float *vecs = m ? malloc(m * dim * sizeof(float)) : NULL;
    if (vecs)
        sem_embed(em, dim, texts, lens, m, vecs, ok);
    double t_embed = srv_now() - t;
    for (size_t i = 0; i < m; i++) {
        sem_job *j = jobs[i];
        double tl = srv_now();
        if (vecs && ok[i]) {
            j->vec = malloc(dim * sizeof(float));
            if (j->vec)
                memcpy(j->vec, vecs + i * dim, dim * sizeof(float));
        }
        if (j->vec && j->fr.dec.lookup) {
            llmc_cache_get_semantic(s->cache, j->fr.partition, j->vec, j->query, j->qlen,
                                    j->threshold, j->fr.dec.max_age_s, (int64_t)time(NULL), &j->res,
                                    &j->hit);
            j->looked = 1;
            atomic_fetch_add(&p->outcome[j->res.kind], 1);
        }
        /* Its share of the batch's encoder time, and its own search. */
        j->t_lookup = t_embed / (double)m + srv_now() - tl;
    }
    if (m) {
        atomic_fetch_add(&p->batches, 1);
        atomic_fetch_add(&p->batch_texts, m);
    }
    pthread_mutex_lock(&p->mu);
    p->embedding -= m;
    if (m && vecs)
        p->per_text = 0.8 * p->per_text + 0.2 * t_embed / (double)m;
    pthread_mutex_unlock(&p->mu);
    free(vecs);
    /* Wake the loops only now: a client that has its answer and asks again
     * must not find its own lookup still counted in the queue. A job may
     * be freed by its loop as soon as it is woken. */
    for (size_t i = 0; i < m; i++)
        event_active(jobs[i]->done, EV_READ, 0);
    pthread_mutex_lock(&p->mu);
}

/* Worker: a few deferred inserts (no lookup waits); p->mu held on entry
 * and on return. Each stored entry gets its vector (llmc_cache_attach_vector:
 * same key, same answer, same expiry, now indexed). */
static void sem_run_inserts(struct sem_pool *p, llmc_embedder *em, size_t dim)
{
    srv *s = p->s;
    sem_deferred *d[SEM_DEFER_BATCH];
    size_t m = 0;
    while (p->dhead && m < SEM_DEFER_BATCH) {
        d[m] = p->dhead;
        p->dhead = d[m]->next;
        p->deferred--;
        m++;
    }
    if (!p->dhead)
        p->dtail = NULL;
    pthread_mutex_unlock(&p->mu);

    const char *texts[SEM_DEFER_BATCH];
    size_t lens[SEM_DEFER_BATCH];
    int ok[SEM_DEFER_BATCH];
    for (size_t i = 0; i < m; i++) {
        texts[i] = d[i]->query;
        lens[i] = strlen(d[i]->query);
    }
    float *vecs = malloc(m * dim * sizeof(float));
    if (vecs)
        sem_embed(em, dim, texts, lens, m, vecs, ok);
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < m; i++) {
        if (vecs && ok[i] &&
            llmc_cache_attach_vector(s->cache, d[i]->key, d[i]->query, vecs + i * dim,
                                     (uint32_t)dim, now) == 0)
            atomic_fetch_add(&p->deferred_indexed, 1);
        free(d[i]->query);
        free(d[i]);
    }
    free(vecs);
    pthread_mutex_lock(&p->mu);
}

static void *sem_worker(void *arg)
{
    struct sem_pool *p = ((void **)arg)[0];
    llmc_embedder *em = ((void **)arg)[1];
    free(arg);
    size_t dim = llmc_embedder_dim(em);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head)
            break;
        sem_run_lookups(p, em, dim);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The indexer: embeds and indexes the answers whose lookup was skipped. It
 * runs at nice 19, so it takes only the CPU that the loops and the lookup
 * workers leave: a burst is answered first, indexed after. */
static void *sem_indexer(void *arg)
{
    struct sem_pool *p = arg;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0)
        srv_log(LOG_DEBUG, "semantic indexer: cannot lower its priority");
    size_t dim = llmc_embedder_dim(p->iem);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->dhead && !p->stop)
            pthread_cond_wait(&p->icv, &p->mu);
        if (p->stop)
            break;
        sem_run_inserts(p, p->iem, dim);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void sem_defer(srv *s, const uint8_t key[LLMC_KEY_LEN], const char *query);

void sem_submit(srv_loop *l, struct evhttp_request *req, flight_req *fr, const char *query,
                size_t qlen, double threshold, const char *body, size_t len, double t0)
{
    srv *s = l->s;
    struct sem_pool *p = s->semq;
    /* Would this lookup wait beyond the budget? Then go upstream now and
     * index the answer later. */
    pthread_mutex_lock(&p->mu);
    double wait = (double)(p->queued + p->embedding) * p->per_text / (double)p->n;
    int skip = wait > p->budget;
    pthread_mutex_unlock(&p->mu);
    if (skip) {
        if (fr->dec.lookup) {
            atomic_fetch_add(&p->outcome[LLMC_SEM_SKIPPED], 1);
            if (!fr->reason)
                snprintf(fr->reason_buf, sizeof fr->reason_buf, "semantic: skipped (overload)");
        }
        if (fr->cacheable) {
            fr->query = malloc(qlen + 1);
            if (fr->query) {
                memcpy(fr->query, query, qlen);
                fr->query[qlen] = 0;
                fr->on_stored = sem_defer;
            }
        }
        flight_submit(l, req, fr, body, len, t0);
        return;
    }
    sem_job *j = calloc(1, sizeof *j);
    if (j) {
        j->body = malloc(len + 1);
        j->query = malloc(qlen + 1);
        j->done = event_new(l->base, -1, 0, sem_done, j);
    }
    if (!j || !j->body || !j->query || !j->done) {
        if (j)
            sem_job_free(j);
        flight_submit(l, req, fr, body, len, t0);
        return;
    }
    memcpy(j->body, body, len);
    j->len = len;
    memcpy(j->query, query, qlen);
    j->query[qlen] = 0;
    j->qlen = qlen;
    j->fr = *fr;
    j->l = l;
    atomic_fetch_add(&s->active, 1);
    j->req = req;
    j->threshold = threshold;
    j->t0 = t0;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), sem_closed, j);
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int sem_start(srv *s)
{
    if (!s->cfg.semantic)
        return 0;
    llmc_embed_params ep;
    config_embed_params(&s->cfg, &ep);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = (int)(s->cfg.embed_threads > 0 ? s->cfg.embed_threads : cpus > 0 ? cpus : 1);
    if (n > SEM_WORKERS_MAX)
        n = SEM_WORKERS_MAX;
    struct sem_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->s = s;
    int err = 0;
    for (int i = 0; i < n; i++) {
        p->em[i] = llmc_embedder_new(&ep, &err);
        if (!p->em[i]) {
            srv_log(LOG_WARN, "semantic tier off: embedder '%s' (%s): %s", ep.backend,
                    ep.model_path ? ep.model_path : "", llmc_strerror(err));
            for (int k = 0; k < i; k++)
                llmc_embedder_free(p->em[k]);
            free(p);
            return 0;
        }
    }
    p->iem = llmc_embedder_new(&ep, &err);
    if (!p->iem) {
        srv_log(LOG_WARN, "semantic tier off: embedder '%s': %s", ep.backend, llmc_strerror(err));
        for (int k = 0; k < n; k++)
            llmc_embedder_free(p->em[k]);
        free(p);
        return 0;
    }
    llmc_semantic_params sp = llmc_semantic_default_params();
    sp.index.dim = llmc_embedder_dim(p->em[0]);
    sp.index.model = llmc_embedder_model(p->em[0]);
    if (s->cfg.semantic_threshold >= 0)
        sp.threshold = s->cfg.semantic_threshold;
    /* The guard weighs unmatched words by their rarity in the built-in
     * encoder's vocabulary; other backends get unweighted counts. */
    char vocab[4096];
    if (!strcmp(ep.backend, "use") && ep.model_path) {
        snprintf(vocab, sizeof vocab, "%s/vocab.json", ep.model_path);
        sp.vocab_path = vocab;
    } else {
        sp.vocab_path = NULL;
    }
    /* Synonyms for the guard: an absent directory means none (logged), a
     * present but unreadable one refuses to start. */
    const char *lex = s->cfg.semantic_lexicon;
    sp.lexicon_dir = lex && *lex ? lex : NULL;
    const char *synonyms = sp.lexicon_dir ? sp.lexicon_dir : "none";
    if (sp.lexicon_dir && !llmc_lexicon_present(sp.lexicon_dir)) {
        srv_log(LOG_WARN,
                "semantic guard without synonyms: no WordNet in %s "
                "(Debian package wordnet-base)",
                lex);
        synonyms = "none";
    }
    err = llmc_cache_enable_semantic(s->cache, &sp);
    if (err) {
        srv_log(LOG_ERROR, "semantic index (lexicon %s): %s", synonyms, llmc_strerror(err));
        for (int k = 0; k < n; k++)
            llmc_embedder_free(p->em[k]);
        llmc_embedder_free(p->iem);
        free(p);
        return -1;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->icv, NULL);
    p->n = n;
    p->per_text = SEM_PER_TEXT0;
    p->budget = (double)s->cfg.semantic_budget_ms / 1000.0;
    s->semq = p;
    for (int i = 0; i < n; i++) {
        void **arg = malloc(2 * sizeof *arg);
        arg[0] = p;
        arg[1] = p->em[i];
        pthread_create(&p->th[i], NULL, sem_worker, arg);
    }
    pthread_create(&p->ith, NULL, sem_indexer, p);
    llmc_cache_stats cst;
    llmc_cache_get_stats(s->cache, &cst);
    srv_log(LOG_INFO,
            "semantic tier on: embedder %s (%zu-d, %s), %d worker(s), budget %lld ms, "
            "threshold %.3f, query %s, guard synonyms %s, %zu entries indexed",
            llmc_cache_semantic_model(s->cache), sp.index.dim, llmc_embedder_precision(p->em[0]), n,
            s->cfg.semantic_budget_ms, sp.threshold,
            s->cfg.semantic_query ? s->cfg.semantic_query : "last-user", synonyms,
            cst.semantic_indexed);
    return 0;
}

void sem_stop(srv *s)
{
    struct sem_pool *p = s->semq;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->icv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->th[i], NULL);
        llmc_embedder_free(p->em[i]);
    }
    pthread_join(p->ith, NULL);
    llmc_embedder_free(p->iem);
    while (p->head) { /* jobs never run: their loops are stopped too */
        sem_job *j = p->head;
        p->head = j->next;
        sem_job_free(j);
    }
    while (p->dhead) { /* inserts never made: the entries keep serving exact hits */
        sem_deferred *d = p->dhead;
        p->dhead = d->next;
        free(d->query);
        free(d);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->icv);
    free(p);
    s->semq = NULL;
}

/* The flight's on_stored callback for an answer whose lookup was skipped:
 * queue it to be embedded and indexed by the indexer (bounded; a full
 * queue drops it, counted). Copies what it needs; never blocks long. */
static void sem_defer(srv *s, const uint8_t key[LLMC_KEY_LEN], const char *query)
{
    struct sem_pool *p = s->semq;
    if (!p || !query || !*query)
        return;
    sem_deferred *d = malloc(sizeof *d);
    char *q = strdup(query);
    pthread_mutex_lock(&p->mu);
    int full = p->deferred >= SEM_DEFER_MAX || p->stop;
    if (!full && d && q) {
        memcpy(d->key, key, LLMC_KEY_LEN);
        d->query = q;
        d->next = NULL;
        if (p->dtail)
            p->dtail->next = d;
        else
            p->dhead = d;
        p->dtail = d;
        p->deferred++;
        pthread_cond_signal(&p->icv);
        d = NULL;
        q = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (d || q) {
        atomic_fetch_add(&p->deferred_dropped, 1);
        free(d);
        free(q);
    }
}

void sem_write_prometheus(srv *s, FILE *f)
{
    struct sem_pool *p = s->semq;
    if (!p)
        return;
    fprintf(f, "# HELP llmcached_semantic_lookups_total Semantic lookups by outcome (reason "
               "kind; skipped: not looked up, the encoder's queue was over budget).\n"
               "# TYPE llmcached_semantic_lookups_total counter\n");
    for (int k = 0; k < LLMC_SEM_KINDS; k++)
        fprintf(f, "llmcached_semantic_lookups_total{reason=\"%s\"} %llu\n",
                llmc_semantic_kind_name((llmc_semantic_kind)k),
                (unsigned long long)atomic_load(&p->outcome[k]));
    fprintf(f,
            "# HELP llmcached_semantic_skipped_total Misses that skipped the semantic "
            "lookup, by reason.\n# TYPE llmcached_semantic_skipped_total counter\n"
            "llmcached_semantic_skipped_total{reason=\"overload\"} %llu\n",
            (unsigned long long)atomic_load(&p->outcome[LLMC_SEM_SKIPPED]));
    pthread_mutex_lock(&p->mu);
    size_t queued = p->queued, deferred = p->deferred;
    double per_text = p->per_text;
    pthread_mutex_unlock(&p->mu);
    fprintf(f,
            "# HELP llmcached_semantic_deferred_total Answers stored while the lookup was "
            "skipped, embedded and indexed later (indexed) or not (dropped: queue full).\n"
            "# TYPE llmcached_semantic_deferred_total counter\n"
            "llmcached_semantic_deferred_total{outcome=\"indexed\"} %llu\n"
            "llmcached_semantic_deferred_total{outcome=\"dropped\"} %llu\n"
            "# HELP llmcached_semantic_queue Texts waiting for the encoder.\n"
            "# TYPE llmcached_semantic_queue gauge\n"
            "llmcached_semantic_queue{queue=\"lookup\"} %zu\n"
            "llmcached_semantic_queue{queue=\"deferred\"} %zu\n"
            "# HELP llmcached_semantic_embed_seconds Recent encoder time per text.\n"
            "# TYPE llmcached_semantic_embed_seconds gauge\n"
            "llmcached_semantic_embed_seconds %.6f\n"
            "# HELP llmcached_semantic_batches_total Encoder batches and the texts in them.\n"
            "# TYPE llmcached_semantic_batches_total counter\n"
            "llmcached_semantic_batches_total %llu\n"
            "llmcached_semantic_batch_texts_total %llu\n",
            (unsigned long long)atomic_load(&p->deferred_indexed),
            (unsigned long long)atomic_load(&p->deferred_dropped), queued, deferred, per_text,
            (unsigned long long)atomic_load(&p->batches),
            (unsigned long long)atomic_load(&p->batch_texts));
}

void sem_write_json(srv *s, FILE *f)
{
    struct sem_pool *p = s->semq;
    if (!p)
        return;
    llmc_cache_stats cst;
    llmc_cache_get_stats(s->cache, &cst);
    fprintf(f,
            ",\"semantic\":{\"model\":\"%s\",\"precision\":\"%s\",\"indexed\":%zu,"
            "\"workers\":%d,\"budget_ms\":%lld,\"lookups\":{",
            cst.semantic_model ? cst.semantic_model : "",
            p->n > 0 ? llmc_embedder_precision(p->em[0]) : "", cst.semantic_indexed, p->n,
            s->cfg.semantic_budget_ms);
    for (int k = 0; k < LLMC_SEM_KINDS; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", llmc_semantic_kind_name((llmc_semantic_kind)k),
                (unsigned long long)atomic_load(&p->outcome[k]));
    fprintf(f, "},\"deferred\":{\"indexed\":%llu,\"dropped\":%llu}}",
            (unsigned long long)atomic_load(&p->deferred_indexed),
            (unsigned long long)atomic_load(&p->deferred_dropped));
}
