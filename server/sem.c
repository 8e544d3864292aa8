/*
 * sem.c — the semantic tier inside the daemon.
 *
 * Embedding takes milliseconds of CPU, so it never runs on an event loop:
 * a request that missed the exact tier and may be answered semantically is
 * handed to a small pool of worker threads (embed-threads, each with its own
 * embedder, since an embedder is single-threaded). A worker embeds the
 * query, searches the request's partition, runs the decision, and wakes the
 * request's loop (event_active) with the result: the loop then serves the
 * entry found (HIT-SEMANTIC) or passes the request, with its vector, to a
 * flight so the answer is stored with the vector. Exact hits never wait for
 * any of this.
 *
 * A client that leaves while its job is queued or running is noticed by
 * the connection's close callback (job->gone); the worker's result is then
 * dropped on the loop. Ownership: the job owns its copies (body, query,
 * vector) until it hands them to a flight.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "server.h"

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
    float *vec;
};

struct sem_pool {
    srv *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sem_job *head, *tail;
    int stop, n;
    pthread_t th[16];
    llmc_embedder *em[16];
};

const char *sem_precision(srv *s)
{
    return (s->semq && s->semq->n > 0) ? llmc_embedder_precision(s->semq->em[0]) : NULL;
}

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
    struct evhttp_connection *c = j->req ? evhttp_request_get_connection(j->req) : NULL;
    if (c)
        evhttp_connection_set_closecb(c, NULL, NULL);
    if (j->done)
        event_free(j->done);
    llmc_entry_release(j->hit);
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

/* On the request's loop: act on the worker's result. */
static void sem_done(evutil_socket_t fd, short what, void *arg)
{
    sem_job *j = arg;
    srv *s = j->l->s;
    struct evhttp_request *req = j->req;
    if (req) {
        struct evhttp_connection *c = evhttp_request_get_connection(req);
        if (c)
            evhttp_connection_set_closecb(c, NULL, NULL);
    }
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
    if (j->fr.reason == NULL && j->res.guard_rejected)
        j->fr.reason = "semantic: guard refused a similar entry";
    else if (j->fr.reason == NULL && j->res.reason && !strcmp(j->res.reason, "learned-floor"))
        j->fr.reason = "semantic: a similar entry answered such a question differently before";
    flight_req fr = j->fr;
    memset(&j->fr, 0, sizeof j->fr); /* ownership of vec/query moves on */
    flight_submit(j->l, req, &fr, j->body, j->len, j->t0);
    sem_job_free(j);
}

static void *sem_worker(void *arg)
{
    struct sem_pool *p = ((void **)arg)[0];
    llmc_embedder *em = ((void **)arg)[1];
    free(arg);
    srv *s = p->s;
    size_t dim = llmc_embedder_dim(em);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        sem_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        double t = srv_now();
        if (!j->gone) {
            j->vec = malloc(dim * sizeof(float));
            if (j->vec && llmc_embed(em, j->query, j->qlen, j->vec) != 0) {
                free(j->vec);
                j->vec = NULL;
            }
            if (j->vec && j->fr.dec.lookup)
                llmc_cache_get_semantic(s->cache, j->fr.partition, j->vec, j->query, j->qlen,
                                        j->threshold, j->fr.dec.max_age_s, (int64_t)time(NULL),
                                        &j->res, &j->hit);
        }
        j->t_lookup = srv_now() - t;
        event_active(j->done, EV_READ, 0);
    }
}

void sem_submit(srv_loop *l, struct evhttp_request *req, flight_req *fr, const char *query,
                size_t qlen, double threshold, const char *body, size_t len, double t0)
{
    srv *s = l->s;
    struct sem_pool *p = s->semq;
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
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int sem_start(srv *s)
{
    if (!s->cfg.semantic)
        return 0;
    llmc_embed_params ep;
    config_embed_params(&s->cfg, &ep);
    int n = (int)(s->cfg.embed_threads > 0 ? s->cfg.embed_threads : 1);
    if (n > 16)
        n = 16;
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
        srv_log(LOG_WARN, "semantic guard without synonyms: no WordNet in %s "
                          "(Debian package wordnet-base)", lex);
        synonyms = "none";
    }
    err = llmc_cache_enable_semantic(s->cache, &sp);
    if (err) {
        srv_log(LOG_ERROR, "semantic index (lexicon %s): %s", synonyms, llmc_strerror(err));
        for (int k = 0; k < n; k++)
            llmc_embedder_free(p->em[k]);
        free(p);
        return -1;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->n = n;
    s->semq = p;
    for (int i = 0; i < n; i++) {
        void **arg = malloc(2 * sizeof *arg);
        arg[0] = p;
        arg[1] = p->em[i];
        pthread_create(&p->th[i], NULL, sem_worker, arg);
    }
    llmc_cache_stats cst;
    llmc_cache_get_stats(s->cache, &cst);
    srv_log(LOG_INFO,
            "semantic tier on: embedder %s (%zu-d, %s), %d worker(s), threshold %.3f, "
            "query %s, guard synonyms %s, %zu entries indexed",
            llmc_cache_semantic_model(s->cache), sp.index.dim, llmc_embedder_precision(p->em[0]), n,
            sp.threshold, s->cfg.semantic_query ? s->cfg.semantic_query : "last-user", synonyms,
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
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->th[i], NULL);
        llmc_embedder_free(p->em[i]);
    }
    while (p->head) { /* jobs never run: their loops are stopped too */
        sem_job *j = p->head;
        p->head = j->next;
        sem_job_free(j);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    s->semq = NULL;
}
