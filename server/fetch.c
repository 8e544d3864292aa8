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
 *
 * Coalescing across the fleet (--store-coalesce, on by default). A miss
 * whose answer may be stored then takes a short lock in Redis,
 * llmc_cache_lock (SET PREFIX l:KEY <instance> NX PX --store-lock-ttl GET,
 * routed by the lock key's hash slot like every other command):
 *   - taken: the request goes on as a miss holding it (fr.fleet_lock); the
 *     flight calls upstream, stores (the store's SET and XADD tell the
 *     others), then releases it with llmc_cache_unlock — queued behind the
 *     put on the store's writer, so the answer is in Redis before the lock
 *     is gone, and deleted only while its value is still this instance's
 *     (a compare-and-delete Lua script via EVAL). A path that drops the
 *     request without an upstream call (a semantic hit, a client gone)
 *     releases it too; a holder that dies releases it by expiry.
 *   - already this instance's: another request of this instance is asking;
 *     go on as a miss, which joins that flight (flight.c).
 *   - another instance's: wait. Poll the entry key with back-off (5 ms
 *     doubling to 100 ms); found: served as HIT-EXACT with
 *     X-LLM-Cache-Reason "coalesced (fleet)" (SSE synthesised for a
 *     streaming client, as any hit); absent: try the lock again — taken
 *     means the holder died and its lock expired (or it released the lock
 *     as its request needed no upstream call): go upstream holding it. A
 *     holder whose answer could not be stored (an upstream error, an
 *     answer the policy refuses) marks the lock instead ("!" + its id,
 *     expiry kept): a request that finds that mark goes upstream at once,
 *     without the lock, so such answers are not asked one instance at a
 *     time. After
 *     --store-lock-ttl of waiting on one holder, go upstream without it
 *     (counted as timed out); a new holder (the lock changed hands) starts
 *     the wait anew, as it is a new upstream call.
 *   - Redis unavailable: go upstream at once (store_unavailable), as for a
 *     fetch. Each step is bounded by --store-timeout; the cache adds no
 *     delay beyond that except while another instance is known to be
 *     answering the same question.
 * A waiting request keeps its connection's close callback: a client that
 * leaves is dropped at the next step.
 *
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
    int waiting;         /* another instance holds the fleet lock: counted once */
    double wait_t0;      /* when the wait began (srv_now) */
    double delay_ms;     /* the next poll's delay */
    struct event *timer; /* the poll timer, or NULL */
    char holder[64];     /* the instance holding the lock we wait on */
} fetch_job;

static void fetch_job_free(fetch_job *j)
{
    atomic_fetch_sub(&j->l->s->active, 1);
    if (j->timer)
        event_free(j->timer);
    if (j->fr.fleet_lock) /* taken but not handed on: the client left */
        llmc_cache_unlock(j->l->s->cache, j->fr.key, 1);
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

/* The request leaves the job: the close callback goes back to whoever
 * answers it next. */
static void fetch_detach(fetch_job *j)
{
    reply_unwatch(j->req);
}

/* The store could not answer: go on as a miss at once, counted. */
static void fetch_unavailable(fetch_job *j)
{
    atomic_fetch_add(&j->l->s->store_unavailable, 1);
    j->fr.reason = "store_unavailable";
    fetch_detach(j);
    fetch_go_on(j);
    fetch_job_free(j);
}

static void fetch_done(int rc, const llmc_entry_info *e, void *arg);
static void fetch_try_lock(fetch_job *j);

static void fetch_poll(evutil_socket_t fd, short what, void *arg)
{
    fetch_job *j = arg;
    srv *s = j->l->s;
    if (j->gone || !j->req) {
        fetch_job_free(j);
        return;
    }
    int rc =
        llmc_cache_fetch(s->cache, j->l->cache_loop, j->fr.key, j->fr.dec.max_age_s, fetch_done, j);
    if (rc == LLMC_ENOTFOUND)
        fetch_try_lock(j);
    else if (rc)
        fetch_unavailable(j);
}

static void fetch_locked(int rc, const char *holder, void *arg)
{
    fetch_job *j = arg;
    srv *s = j->l->s;
    if (j->gone || !j->req) {
        if (rc == 0)
            llmc_cache_unlock(s->cache, j->fr.key, 1);
        fetch_job_free(j);
        return;
    }
    if (rc == LLMC_EBUSY && holder && holder[0] == '!') {
        /* its holder's answer could not be stored: nothing to wait for */
        j->fr.reason = "coalescing: the fleet's answer was not storable";
    } else if (rc == LLMC_EBUSY) { /* another instance is asking upstream: wait */
        double now = srv_now();
        if (!j->waiting)
            atomic_fetch_add(&s->fleet_waits, 1);
        /* A new holder (the last one died and another took the lock) is a
         * new upstream call: wait for it anew. */
        if (!j->waiting || (holder && strcmp(holder, j->holder))) {
            j->waiting = 1;
            j->wait_t0 = now;
            j->delay_ms = 5;
            snprintf(j->holder, sizeof j->holder, "%s", holder ? holder : "");
        }
        if ((now - j->wait_t0) * 1e3 < (double)s->cfg.store_lock_ttl_ms) {
            if (!j->timer)
                j->timer = evtimer_new(j->l->base, fetch_poll, j);
            if (j->timer) {
                struct timeval tv = {0, (long)(j->delay_ms * 1000)};
                evtimer_add(j->timer, &tv);
                j->delay_ms = j->delay_ms * 2 > 100 ? 100 : j->delay_ms * 2;
                return;
            }
        } else {
            atomic_fetch_add(&s->fleet_waits_timed_out, 1);
            j->fr.reason = "coalescing wait timed out (fleet)";
        }
    } else if (rc == 0) { /* ours now: call upstream, store, release */
        j->fr.fleet_lock = 1;
        atomic_fetch_add(&s->fleet_locks, 1);
    } else if (rc != 1) {
        fetch_unavailable(j);
        return;
    }
    fetch_detach(j);
    fetch_go_on(j);
    fetch_job_free(j);
}

/* Not in Redis: may this miss take the fleet lock? Then take it (the job
 * goes on in fetch_locked); else go on as a miss. */
static void fetch_try_lock(fetch_job *j)
{
    srv *s = j->l->s;
    if (s->cfg.store_coalesce && j->fr.dec.store && !j->fr.fleet_lock) {
        int rc = llmc_cache_lock(s->cache, j->l->cache_loop, j->fr.key,
                                 (int)s->cfg.store_lock_ttl_ms, fetch_locked, j);
        if (rc == 0)
            return;
        if (rc != LLMC_ENOTSUP) {
            fetch_unavailable(j);
            return;
        }
    }
    fetch_detach(j);
    fetch_go_on(j);
    fetch_job_free(j);
}

static void fetch_done(int rc, const llmc_entry_info *e, void *arg)
{
    fetch_job *j = arg;
    srv *s = j->l->s;
    struct evhttp_request *req = j->req;
    if (j->gone || !req) {
        llmc_entry_release(e);
        fetch_job_free(j);
        return;
    }
    if (rc == 0) {
        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        fetch_detach(j);
        if (j->waiting)
            evhttp_add_header(oh, "X-LLM-Cache-Reason", "coalesced (fleet)");
        int served = reply_entry(s, req, e, j->fr.client_stream, NAN, j->t0, j->body, j->len) == 0;
        llmc_entry_release(e);
        if (served) {
            if (j->waiting)
                atomic_fetch_add(&s->fleet_waits_served, 1);
            fetch_job_free(j);
            return;
        }
        if (j->waiting)
            evhttp_remove_header(oh, "X-LLM-Cache-Reason");
    } else if (rc == LLMC_ENOTFOUND) {
        fetch_try_lock(j);
        return;
    } else {
        fetch_unavailable(j);
        return;
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
