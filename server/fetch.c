/*
 * fetch.c — after the exact tier missed in memory: the shared store
 * (--store redis), then the semantic tier or the upstream.
 *
 * With a Redis store, the memory store is a near cache: a request whose key
 * is not in memory may still be in Redis, written by another instance. The
 * request then waits (on its loop, never blocking it) for one GET through
 * llmc_cache_fetch, bounded by --store-timeout:
 *   - found and fresh: served as HIT-EXACT (and now in the near cache);
 *   - not there: the request goes on as any miss (semantic tier, upstream);
 *   - Redis unavailable (down, reconnecting, slower than --store-timeout):
 *     the request goes on as a miss too, with X-LLM-Cache-Reason
 *     store_unavailable, and is counted; the cache never makes it fail.
 * A client that leaves while the fetch is out is noticed by the
 * connection's close callback; the answer is then dropped. The job owns
 * its copy of the body, the semantic query and the flight_req's buffers
 * until it hands them on.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "server.h"

typedef struct {
    srv_loop *l;
    struct evhttp_request *req;
    flight_req fr;
    char *body;
    size_t len;
    char *sem_query;
    size_t sem_qlen;
    double t0;
    int gone;
} fetch_job;

static void fetch_job_free(fetch_job *j)
{
    atomic_fetch_sub(&j->l->s->active, 1);
    free(j->fr.route_key);
    free(j->fr.vec);
    free(j->fr.query);
    free(j->sem_query);
    free(j->body);
    free(j);
}

static void fetch_closed(struct evhttp_connection *c, void *arg)
{
    fetch_job *j = arg;
    reply_request_lost(&j->req);
    j->gone = 1;
}

/* A miss in every store: the semantic tier (when it applies) or the
 * upstream. Takes over sem_query and what flight_submit takes. */
static void fetch_miss(srv_loop *l, struct evhttp_request *req, flight_req *fr, char *sem_query,
                       size_t sem_qlen, const char *body, size_t len, double t0)
{
    srv *s = l->s;
    fr->cacheable = fr->dec.store;
    fr->shareable = 1;
    fr->cache_status = "MISS";
    /* The semantic tier: embed and search off the loop, then hit or go on. */
    if (s->semq && fr->dec.semantic && sem_query && sem_qlen && fr->ep != LLMC_EP_EMBEDDINGS &&
        (fr->dec.lookup || fr->dec.store)) {
        struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
        double th =
            sem_threshold_for(s, fr->model, evhttp_find_header(ih, "X-LLM-Cache-Threshold"));
        sem_submit(l, req, fr, sem_query, sem_qlen, th, body, len, t0);
        free(sem_query);
        return;
    }
    free(sem_query);
    flight_submit(l, req, fr, body, len, t0);
}

/* Give the request back to the miss path (ownership moves on). */
static void fetch_go_on(fetch_job *j)
{
    flight_req fr = j->fr;
    char *q = j->sem_query;
    memset(&j->fr, 0, sizeof j->fr);
    j->sem_query = NULL;
    fetch_miss(j->l, j->req, &fr, q, j->sem_qlen, j->body, j->len, j->t0);
}

static void fetch_done(int rc, const llmc_entry_info *e, void *arg)
{
    fetch_job *j = arg;
    srv *s = j->l->s;
    struct evhttp_request *req = j->req;
    if (req) {
        struct evhttp_connection *c = evhttp_request_get_connection(req);
        if (c)
            evhttp_connection_set_closecb(c, NULL, NULL);
    }
    if (j->gone || !req) {
        llmc_entry_release(e);
        fetch_job_free(j);
        return;
    }
    if (rc == 0) {
        int served = reply_entry(s, req, e, j->fr.client_stream, NAN, j->t0, j->body, j->len) == 0;
        llmc_entry_release(e);
        if (served) {
            fetch_job_free(j);
            return;
        }
    } else if (rc != LLMC_ENOTFOUND) {
        atomic_fetch_add(&s->store_unavailable, 1);
        j->fr.reason = "store_unavailable";
    }
    fetch_go_on(j);
    fetch_job_free(j);
}

void fetch_submit(srv_loop *l, struct evhttp_request *req, flight_req *fr, char *sem_query,
                  size_t sem_qlen, const char *body, size_t len, double t0)
{
    srv *s = l->s;
    if (!fr->dec.lookup || !s->redis) { /* nothing else to look in */
        fetch_miss(l, req, fr, sem_query, sem_qlen, body, len, t0);
        return;
    }
    fetch_job *j = calloc(1, sizeof *j);
    if (j)
        j->body = malloc(len + 1);
    if (!j || !j->body) {
        free(j);
        fetch_miss(l, req, fr, sem_query, sem_qlen, body, len, t0);
        return;
    }
    memcpy(j->body, body, len);
    j->len = len;
    j->l = l;
    j->req = req;
    j->fr = *fr;
    j->sem_query = sem_query;
    j->sem_qlen = sem_qlen;
    j->t0 = t0;
    atomic_fetch_add(&s->active, 1);
    int rc = llmc_cache_fetch(s->cache, l->cache_loop, fr->key, fr->dec.max_age_s, fetch_done, j);
    if (rc == 0) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), fetch_closed, j);
        return;
    }
    /* Not started: nothing to fetch, or Redis down (refused at once). */
    if (rc != LLMC_ENOTFOUND) {
        atomic_fetch_add(&s->store_unavailable, 1);
        j->fr.reason = "store_unavailable";
    }
    fetch_go_on(j);
    fetch_job_free(j);
}
