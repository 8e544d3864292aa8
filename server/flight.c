/*
 * flight.c — one upstream call, any number of clients waiting on it.
 *
 * A flight is an upstream transfer plus the bytes it has received so far.
 * Identical cacheable misses (same exact key) that arrive while a flight is
 * open join it instead of calling upstream again (request coalescing); each
 * client is a subscriber (sub) on its own loop, woken by event_active()
 * whenever the flight has news. A streaming subscriber of a streaming
 * flight is sent each chunk as it arrives (time to first token unchanged);
 * everyone else is answered when the flight is done, from the raw body or,
 * when the client asked the other mode (stream vs not), from the assembled
 * answer rendered in that mode.
 *
 * The answer is stored only when the transfer completed (curl reports OK),
 * the status is 200, the body is a complete, well-formed answer (a stream
 * must have reached "data: [DONE]") and the policy allows it: a client that
 * disconnects, an upstream that drops mid-stream, an error status — none of
 * them can leave a partial entry behind. A 200 whose body is not a
 * well-formed answer (garbage, a broken SSE event) is not relayed as a
 * success either: a waiting client gets a 502 JSON error, and a stream
 * already passed through is cut before the upstream's "data: [DONE]",
 * which is held back until the answer has been read (sub_sendable).
 *
 * Lifetime: refs = 1 for the transfer + 1 per subscriber. When the last
 * subscriber leaves before the end, the owner loop aborts the transfer
 * (abort_ev), so nobody pays for an answer nobody waits for.
 * Locks: srv.flights_mu (table) is taken before a flight's mu, never after.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "server.h"
#include "util.h"

#define FLIGHT_BUCKETS 4096

struct sub {
    sub *next;
    flight *f;
    srv_loop *loop;
    struct evhttp_request *req;
    struct event *wake;
    size_t sent;
    int started;
    int client_stream;
    double t0;
};

typedef struct {
    char *name, *value;
} flight_hdr;

struct flight {
    upstream_xfer xfer; /* first: upstream.c hands the finished transfer back */
    pthread_mutex_t mu;
    atomic_int refs;
    srv *s;
    srv_loop *owner;
    flight_req fr;
    int in_table;
    flight *tnext;
    CURL *easy;
    struct curl_slist *hdrs;
    char *url;
    char *uri; /* the client's request URI, for a retry elsewhere */
    char *req_body;
    size_t req_len;
    int upstream_stream;
    double t_start;
    struct event *abort_ev;
    struct event *route_ev; /* parked for the prompt's tokens (flight_park) */
    double route_until;
    int parked;
    int backend, retried; /* backend -1: not routed yet */
    int pool_held;        /* counted in flight on backend (pool_pick), not yet ended */
    /* guarded by mu */
    int status, headers_done;
    flight_hdr *rh;
    int nrh, caprh;
    char *body;
    size_t len, cap;
    int done, failed, fail_status;
    int malformed; /* a 200 whose body is not a well-formed answer (flight_store) */
    const char *fail_msg, *fail_type;
    char *final_json;
    size_t final_len;
    sub *subs;
    int nsubs;
};

int flights_init(srv *s)
{
    pthread_mutex_init(&s->flights_mu, NULL);
    s->nflights_cap = FLIGHT_BUCKETS;
    s->flights = calloc(FLIGHT_BUCKETS, sizeof *s->flights);
    return s->flights ? 0 : -1;
}

void flights_free(srv *s)
{
    free(s->flights);
    pthread_mutex_destroy(&s->flights_mu);
}

static size_t flight_bucket(const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t)(h % FLIGHT_BUCKETS);
}

static void flight_release(flight *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    if (f->pool_held) /* never started: uncount it */
        pool_end(f->s->upstreams, f->backend, 0);
    if (f->easy)
        curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->hdrs);
    if (f->abort_ev)
        event_free(f->abort_ev);
    if (f->route_ev)
        event_free(f->route_ev);
    for (int i = 0; i < f->nrh; i++) {
        free(f->rh[i].name);
        free(f->rh[i].value);
    }
    free(f->rh);
    free(f->url);
    free(f->uri);
    free(f->req_body);
    free(f->body);
    free(f->final_json);
    free(f->fr.vec);
    free(f->fr.query);
    free(f->fr.route_key);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* What the router is told of the flight's prompt: a chat request's body
 * too, so that precise routing can have its messages tokenized. */
static route_in flight_route_in(const flight *f)
{
    int chat = f->fr.ep == LLMC_EP_CHAT;
    return (route_in){f->fr.route_key, f->fr.route_len, chat ? f->req_body : NULL,
                      chat ? f->req_len : 0};
}

/* Wake every subscriber; f->mu held. */
static void flight_wake_all(flight *f)
{
    for (sub *u = f->subs; u; u = u->next)
        event_active(u->wake, EV_READ, 0);
}

/* ---- subscriber side (runs on the subscriber's loop) ---- */

static void sub_detach(sub *u)
{
    flight *f = u->f;
    int abort_now = 0;
    pthread_mutex_lock(&f->mu);
    for (sub **pp = &f->subs; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            f->nsubs--;
            break;
        }
    abort_now = f->nsubs == 0 && !f->done;
    pthread_mutex_unlock(&f->mu);
    if (abort_now)
        event_active(f->abort_ev, EV_READ, 0);
    event_free(u->wake);
    atomic_fetch_sub(&u->loop->s->active, 1);
    reply_unwatch(u->req);
    flight_release(f);
    free(u);
}

static void sub_closed(struct evhttp_connection *c, void *arg)
{
    sub *u = arg;
    reply_request_lost(&u->req);
    sub_detach(u);
}

static void sub_headers(sub *u, const char *cache_status)
{
    flight *f = u->f;
    reply_common_headers(f->s, u->req);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(u->req);
    evhttp_add_header(oh, "X-LLM-Cache", cache_status);
    if (f->fr.ep) {
        char hex[2 * LLMC_KEY_LEN + 1];
        llmc_key_hex(f->fr.key, hex);
        evhttp_add_header(oh, "X-LLM-Cache-Key", hex);
    }
    if (f->fr.reason_buf[0])
        evhttp_add_header(oh, "X-LLM-Cache-Reason", f->fr.reason_buf);
    else if (f->fr.reason)
        evhttp_add_header(oh, "X-LLM-Cache-Reason", f->fr.reason);
}

/* Copy upstream response headers; f->mu held. */
static void sub_copy_upstream_headers(sub *u, int with_ctype)
{
    flight *f = u->f;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(u->req);
    for (int i = 0; i < f->nrh; i++) {
        if (!with_ctype && !strcasecmp(f->rh[i].name, "Content-Type"))
            continue;
        evhttp_add_header(oh, f->rh[i].name, f->rh[i].value);
    }
}

/* Take the request for its final reply: from here on a client close must
 * not reach this sub (evhttp may free the request once the reply is out). */
static struct evhttp_request *sub_take(sub *u)
{
    struct evhttp_request *req = u->req;
    reply_unwatch(req);
    u->req = NULL;
    return req;
}

static void sub_observe(sub *u, double t_end)
{
    flight *f = u->f;
    if (f->fr.ep && !strcmp(f->fr.cache_status, "MISS"))
        llmc_metrics_observe(f->s->metrics, LLMC_HIST_MISS_TOTAL, t_end - u->t0);
}

/* How much of the body a streaming subscriber may be sent now. The
 * upstream's "data: [DONE]" (and a trailing prefix of it) is held back
 * until the flight is done and its answer read: a stream whose events
 * turned out not to be a well-formed answer is then cut before [DONE], so
 * the client never sees a broken answer end as a complete one. */
static size_t sub_sendable(const flight *f, size_t from)
{
    static const char P[] = "data: [DONE]";
    const size_t pl = sizeof P - 1;
    if ((f->done && !f->malformed) || from >= f->len)
        return f->len;
    const char *hit = memmem(f->body + from, f->len - from, P, pl);
    if (hit)
        return (size_t)(hit - f->body);
    if (f->done)
        return f->len;
    for (size_t k = pl - 1; k > 0; k--)
        if (f->len - from >= k && !memcmp(f->body + f->len - k, P, k))
            return f->len - k;
    return f->len;
}

static void sub_wake(evutil_socket_t fd, short what, void *arg)
{
    sub *u = arg;
    flight *f = u->f;
    struct evhttp_request *req = u->req;
    struct evbuffer *out = evbuffer_new();
    pthread_mutex_lock(&f->mu);
    /* Pass a stream through as it arrives; but an upstream that broke before
     * we sent anything gets a clean error reply instead of a cut stream. */
    int passthrough = u->client_stream && f->upstream_stream && f->headers_done &&
                      f->status == 200 && !(f->done && (f->failed || f->malformed) && !u->started);
    if (passthrough) {
        if (!u->started) {
            sub_headers(u, f->fr.cache_status);
            sub_copy_upstream_headers(u, 1);
        }
        size_t upto = sub_sendable(f, u->sent);
        if (upto > u->sent) {
            evbuffer_add(out, f->body + u->sent, upto - u->sent);
            u->sent = upto;
        }
        int done = f->done, broken = f->failed || f->malformed;
        pthread_mutex_unlock(&f->mu);
        if (!u->started) {
            evhttp_send_reply_start(req, 200, "OK");
            u->started = 1;
        }
        if (evbuffer_get_length(out))
            evhttp_send_reply_chunk(req, out);
        evbuffer_free(out);
        if (done) {
            sub_observe(u, srv_now());
            /* detach first: ending the reply may free the request */
            sub_take(u);
            struct evhttp_connection *c = evhttp_request_get_connection(req);
            if (broken && c)
                evhttp_connection_free(c); /* cut, so the client sees a broken stream */
            else
                evhttp_send_reply_end(req);
            sub_detach(u);
        }
        return;
    }
    if (!f->done) {
        pthread_mutex_unlock(&f->mu);
        evbuffer_free(out);
        return;
    }
    /* Done: answer in one piece. */
    int code;
    sub_headers(u, f->fr.cache_status);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (f->malformed && !f->failed && f->status == 200) {
        pthread_mutex_unlock(&f->mu);
        evbuffer_free(out);
        sub_observe(u, srv_now());
        sub_take(u);
        reply_error(req, 502, "upstream_error",
                    "the upstream answered 200 with a body that is not a well-formed answer");
        sub_detach(u);
        return;
    }
    if (f->failed && (!f->status || f->status == 200)) {
        code = f->fail_status ? f->fail_status : 502;
        pthread_mutex_unlock(&f->mu);
        evbuffer_free(out);
        sub_observe(u, srv_now());
        sub_take(u);
        reply_error(req, code, f->fail_type ? f->fail_type : "upstream_error",
                    f->fail_msg ? f->fail_msg : "upstream failed");
        sub_detach(u);
        return;
    }
    code = f->status;
    if (code == 200 && f->final_json && u->client_stream != f->upstream_stream) {
        sub_copy_upstream_headers(u, 0);
        if (u->client_stream) {
            char *sse = NULL;
            size_t sl = 0;
            if (llmc_resp_to_sse(f->fr.ep, f->final_json, f->final_len, &sse, &sl) == 0) {
                evbuffer_add(out, sse, sl);
                free(sse);
            }
            evhttp_add_header(oh, "Content-Type", "text/event-stream");
        } else {
            evbuffer_add(out, f->final_json, f->final_len);
            evhttp_add_header(oh, "Content-Type", "application/json");
        }
    } else {
        sub_copy_upstream_headers(u, 1);
        evbuffer_add(out, f->body, f->len);
    }
    pthread_mutex_unlock(&f->mu);
    sub_observe(u, srv_now());
    sub_take(u);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Upstream", out);
    evbuffer_free(out);
    sub_detach(u);
}

static sub *sub_new(srv_loop *l, struct evhttp_request *req, flight *f, int client_stream,
                    double t0)
{
    sub *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->f = f;
    u->loop = l;
    u->req = req;
    u->client_stream = client_stream;
    u->t0 = t0;
    u->wake = event_new(l->base, -1, 0, sub_wake, u);
    if (!u->wake) {
        free(u);
        return NULL;
    }
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (c)
        evhttp_connection_set_closecb(c, sub_closed, u);
    atomic_fetch_add(&l->s->active, 1);
    return u;
}

/* ---- transfer side (runs on the owner loop) ---- */

static size_t flight_on_header(char *buf, size_t size, size_t n, void *arg)
{
    flight *f = arg;
    size_t len = size * n;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        /* a new status line (after a 100 Continue, say): start over */
        pthread_mutex_lock(&f->mu);
        for (int i = 0; i < f->nrh; i++) {
            free(f->rh[i].name);
            free(f->rh[i].value);
        }
        f->nrh = 0;
        pthread_mutex_unlock(&f->mu);
        return len;
    }
    if (len <= 2) { /* blank line: headers complete */
        long code = 0;
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            pthread_mutex_lock(&f->mu);
            f->status = (int)code;
            f->headers_done = 1;
            flight_wake_all(f);
            pthread_mutex_unlock(&f->mu);
        }
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - buf);
    static const char *const skip[] = {"content-length",
                                       "transfer-encoding",
                                       "connection",
                                       "keep-alive",
                                       "date",
                                       "server",
                                       "content-encoding",
                                       "x-llm-cache",
                                       "x-llm-cache-key",
                                       "x-llm-cache-reason",
                                       "age",
                                       NULL};
    for (int i = 0; skip[i]; i++)
        if (strlen(skip[i]) == nl && !strncasecmp(buf, skip[i], nl))
            return len;
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    pthread_mutex_lock(&f->mu);
    if (f->nrh == f->caprh) {
        int cap = f->caprh ? f->caprh * 2 : 16;
        flight_hdr *nh = realloc(f->rh, (size_t)cap * sizeof *nh);
        if (!nh) {
            pthread_mutex_unlock(&f->mu);
            return len;
        }
        f->rh = nh;
        f->caprh = cap;
    }
    f->rh[f->nrh].name = strndup(buf, nl);
    f->rh[f->nrh].value = strndup(v, (size_t)(end - v));
    if (f->rh[f->nrh].name && f->rh[f->nrh].value)
        f->nrh++;
    pthread_mutex_unlock(&f->mu);
    return len;
}

static size_t flight_on_body(char *buf, size_t size, size_t n, void *arg)
{
    flight *f = arg;
    size_t len = size * n;
    pthread_mutex_lock(&f->mu);
    if (f->len + len > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        while (cap < f->len + len)
            cap *= 2;
        char *nb = realloc(f->body, cap);
        if (!nb) {
            pthread_mutex_unlock(&f->mu);
            return 0; /* curl fails the transfer: nothing is stored */
        }
        f->body = nb;
        f->cap = cap;
    }
    memcpy(f->body + f->len, buf, len);
    f->len += len;
    if (!f->headers_done) {
        long code = 0;
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
        f->status = (int)code;
        f->headers_done = 1;
    }
    flight_wake_all(f);
    pthread_mutex_unlock(&f->mu);
    return len;
}

/* Decide whether and what to store; 1 when stored; owner loop, f->mu not held (the body
 * is complete and no longer written). */
static int flight_store(flight *f)
{
    srv *s = f->s;
    llmc_cache_prep cp;
    memset(&cp, 0, sizeof cp);
    cp.ep = f->fr.ep;
    memcpy(cp.key, f->fr.key, LLMC_KEY_LEN);
    cp.partition = f->fr.partition;
    cp.ns_hash = f->fr.ns_hash;
    memcpy(cp.model, f->fr.model, sizeof cp.model);
    cp.dec = f->fr.dec;
    cp.dec.store = f->fr.cacheable && f->fr.dec.store;
    cp.ttl_s = f->fr.ttl;
    cp.entry_flags = f->fr.entry_flags;
    llmc_cache_answer ans;
    int rc = llmc_cache_put(s->cache, &cp, f->fr.vec, f->fr.dim, f->fr.query, f->status, f->body,
                            f->len, f->upstream_stream, (int64_t)time(NULL), &ans);
    if (ans.stored && f->fr.on_stored)
        f->fr.on_stored(s, f->fr.key, f->fr.query ? f->fr.query : "");
    if (rc)
        srv_log(ans.json ? LOG_WARN : LOG_DEBUG, "answer not stored: %s", llmc_strerror(rc));
    /* Not an answer (the client is told so, flight_store's caller stores
     * nothing); but a JSON error object is an upstream's own clear error,
     * relayed as it came. The transfer is over: body no longer changes. */
    int malformed = rc == LLMC_EINVAL;
    if (malformed && !f->upstream_stream) {
        json_t *o = json_loadb(f->body, f->len, 0, NULL);
        malformed = !(json_is_object(o) && json_is_object(json_object_get(o, "error")));
        json_decref(o);
    }
    pthread_mutex_lock(&f->mu);
    f->final_json = ans.json;
    f->final_len = ans.json_len;
    f->malformed = malformed;
    pthread_mutex_unlock(&f->mu);
    return ans.stored;
}

static void flight_unlink(flight *f)
{
    srv *s = f->s;
    if (!f->in_table)
        return;
    pthread_mutex_lock(&s->flights_mu);
    for (flight **pp = &s->flights[flight_bucket(f->fr.key)]; *pp; pp = &(*pp)->tnext)
        if (*pp == f) {
            *pp = f->tnext;
            s->nflights--;
            break;
        }
    f->in_table = 0;
    pthread_mutex_unlock(&s->flights_mu);
}

static void flight_transfer_done(flight *f, CURLcode rc)
{
    srv *s = f->s;
    long code = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    int refused = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                  ((rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) &&
                   code == 0);
    if (f->pool_held) /* not when it never left (aborted while parked) */
        pool_end(s->upstreams, f->backend, refused);
    f->pool_held = 0;
    /* One dead backend loses no request: nothing has reached a client yet
     * (no status, no byte), so try once more elsewhere. */
    if (refused && f->backend >= 0 && !f->retried && pool_count(s->upstreams) > 1) {
        pthread_mutex_lock(&f->mu);
        int untouched = !f->headers_done && f->len == 0;
        pthread_mutex_unlock(&f->mu);
        char *url = NULL;
        if (untouched) {
            /* the key too, so the backend that serves it is remembered */
            route_in ri = flight_route_in(f);
            int nb = pool_pick(s->upstreams, &ri, f->backend);
            url = nb != f->backend ? pool_url(s->upstreams, nb, f->uri) : NULL;
            if (url) {
                srv_log(LOG_INFO, "upstream %s refused; retrying on %s", f->url, url);
                f->backend = nb;
                f->pool_held = 1;
            } else {
                pool_end(s->upstreams, nb, 0); /* picked but not used */
            }
        }
        if (url) {
            free(f->url);
            f->url = url;
            f->retried = 1;
            curl_easy_setopt(f->easy, CURLOPT_URL, f->url);
            pool_begin(s->upstreams, f->backend);
            if (curl_multi_add_handle(f->owner->multi, f->easy) == CURLM_OK)
                return;
            pool_end(s->upstreams, f->backend, 0);
            f->pool_held = 0;
        }
    }
    llmc_metrics_observe(s->metrics, LLMC_HIST_UPSTREAM, srv_now() - f->t_start);
    pthread_mutex_lock(&f->mu);
    if (!f->headers_done && code >= 200) {
        f->status = (int)code;
        f->headers_done = 1;
    }
    if (rc != CURLE_OK) {
        f->failed = 1;
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            f->fail_status = 504;
            f->fail_type = "upstream_timeout";
            f->fail_msg = "the upstream did not answer in time";
            llmc_metrics_upstream_error(s->metrics, "timeout");
        } else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
            f->fail_status = 502;
            f->fail_type = "upstream_unreachable";
            f->fail_msg = "the upstream could not be reached";
            llmc_metrics_upstream_error(s->metrics, "connect");
        } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
            f->fail_status = 499;
            f->fail_type = "client_closed";
            f->fail_msg = "every client went away";
            llmc_metrics_upstream_error(s->metrics, "client");
        } else {
            f->fail_status = 502;
            f->fail_type = "upstream_error";
            f->fail_msg = "the upstream connection failed mid-answer";
            llmc_metrics_upstream_error(s->metrics, "protocol");
        }
        srv_log(LOG_INFO, "upstream %s: %s", f->url ? f->url : "(not routed)",
                curl_easy_strerror(rc));
    } else if (f->status != 200) {
        llmc_metrics_upstream_error(s->metrics, "status");
    }
    int store = !f->failed && f->status == 200 && f->fr.ep && f->fr.shareable;
    pthread_mutex_unlock(&f->mu);
    int stored = store && flight_store(f); /* before unlinking: a newcomer finds the flight or
                                              the entry */
    if (f->fr.fleet_lock) /* queued behind the put: the fleet sees the answer first */
        llmc_cache_unlock(s->cache, f->fr.key, stored);
    flight_unlink(f);
    pthread_mutex_lock(&f->mu);
    f->done = 1;
    flight_wake_all(f);
    pthread_mutex_unlock(&f->mu);
    flight_release(f); /* the transfer's reference */
}

/* upstream.c's callback: f->xfer is the flight's first member. */
static void flight_xfer_done(upstream_xfer *x, CURLcode rc)
{
    flight_transfer_done((flight *)x, rc);
}

static void flight_abort_cb(evutil_socket_t fd, short what, void *arg)
{
    flight *f = arg;
    pthread_mutex_lock(&f->mu);
    int abort_now = f->nsubs == 0 && !f->done && f->easy;
    pthread_mutex_unlock(&f->mu);
    if (!abort_now)
        return;
    curl_multi_remove_handle(f->owner->multi, f->easy);
    flight_transfer_done(f, CURLE_ABORTED_BY_CALLBACK);
}

static flight *flight_new(srv_loop *l, struct evhttp_request *req, const flight_req *fr,
                          const char *body, size_t len)
{
    srv *s = l->s;
    flight *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    atomic_init(&f->refs, 1);
    f->s = s;
    f->owner = l;
    f->fr = *fr;
    f->t_start = srv_now();
    f->backend = -1; /* routed when it starts (flight_start) */
    f->req_body = malloc(len + 1);
    f->easy = curl_easy_init();
    f->abort_ev = event_new(l->base, -1, 0, flight_abort_cb, f);
    f->uri = strdup(evhttp_request_get_uri(req));
    if (!f->uri || !f->req_body || !f->easy || !f->abort_ev) {
        flight_release(f);
        return NULL;
    }
    memcpy(f->req_body, body, len);
    f->req_len = len;
    f->upstream_stream = fr->client_stream;

    f->hdrs = upstream_headers(s, req, 0);
    CURL *e = f->easy;
    f->xfer.done = flight_xfer_done;
    curl_easy_setopt(e, CURLOPT_PRIVATE, &f->xfer);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, flight_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, flight_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->cfg.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->cfg.upstream_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *method = m == EVHTTP_REQ_POST     ? "POST"
                         : m == EVHTTP_REQ_GET    ? "GET"
                         : m == EVHTTP_REQ_DELETE ? "DELETE"
                         : m == EVHTTP_REQ_PUT    ? "PUT"
                         : m == EVHTTP_REQ_PATCH  ? "PATCH"
                         : m == EVHTTP_REQ_HEAD   ? "HEAD"
                                                  : "OPTIONS";
    if (m == EVHTTP_REQ_POST) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->req_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->req_len);
    } else if (m != EVHTTP_REQ_GET) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (f->req_len) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->req_body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->req_len);
        }
        if (m == EVHTTP_REQ_HEAD)
            curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    return f;
}

/* Route the flight and start its transfer (on its owner loop). */
static void flight_start(flight *f)
{
    srv *s = f->s;
    route_in ri = flight_route_in(f);
    f->backend = pool_pick(s->upstreams, &ri, -1);
    f->pool_held = 1;
    f->url = pool_url(s->upstreams, f->backend, f->uri);
    f->t_start = srv_now();
    if (f->url)
        curl_easy_setopt(f->easy, CURLOPT_URL, f->url);
    pool_begin(s->upstreams, f->backend);
    if (!f->url || curl_multi_add_handle(f->owner->multi, f->easy) != CURLM_OK)
        flight_transfer_done(f, CURLE_FAILED_INIT);
}

static void flight_park_for(flight *f, double seconds)
{
    struct timeval tv = llmc_timeval_ms((long long)ceil(seconds * 1e3)); /* never short */
    event_add(f->route_ev, &tv);
}

/* The parked flight's event: the tokenizer thread finished a prompt
 * (maybe another one), or the wait ran out. Route it now, or wait on. */
static void flight_route_cb(evutil_socket_t fd, short what, void *arg)
{
    flight *f = arg;
    srv *s = f->s;
    if (!f->parked)
        return;
    double left = f->route_until - srv_now();
    int timed_out = (what & EV_TIMEOUT) || left <= 0;
    pthread_mutex_lock(&f->mu);
    int gone = f->done || f->nsubs == 0; /* every client left: aborted */
    pthread_mutex_unlock(&f->mu);
    route_in ri = flight_route_in(f);
    if (!gone && !timed_out && pool_route_pending(s->upstreams, &ri)) {
        pool_unwait(s->upstreams, f->route_ev, 0);
        if (!pool_wait(s->upstreams, f->route_ev)) {
            flight_park_for(f, left);
            return;
        }
    }
    pool_unwait(s->upstreams, f->route_ev, gone ? 0 : timed_out ? 2 : 1);
    event_del(f->route_ev);
    f->parked = 0;
    if (!gone)
        flight_start(f);
    flight_release(f); /* the park's reference */
}

/* --kv-tokenize-wait: a prompt prefix this gateway has not tokenized yet
 * waits (off the loop: an event and a timer) for its tokens, so that the
 * KV events route it, instead of this gateway's tree, which cannot know
 * that another gateway already placed it. 1 when parked: flight_route_cb
 * starts it. */
static int flight_park(flight *f)
{
    srv *s = f->s;
    long long ms = s->cfg.kv_tokenize_wait_ms;
    route_in ri = flight_route_in(f);
    if (ms <= 0 || !pool_route_pending(s->upstreams, &ri))
        return 0;
    f->route_ev = event_new(f->owner->base, -1, 0, flight_route_cb, f);
    if (!f->route_ev || pool_wait(s->upstreams, f->route_ev))
        return 0; /* out of memory: route it now */
    f->route_until = srv_now() + (double)ms / 1e3;
    f->parked = 1;
    atomic_fetch_add(&f->refs, 1);
    flight_park_for(f, (double)ms / 1e3);
    return 1;
}

/* A request that goes upstream (or joins a call that does) is a miss; the
 * count is taken here, once the last look in the store has failed. */
static void flight_count_miss(srv *s, const flight_req *fr)
{
    if (fr->ep && !strcmp(fr->cache_status, "MISS"))
        llmc_metrics_count(s->metrics, fr->model, LLMC_OUT_MISS);
}

void flight_submit(srv_loop *l, struct evhttp_request *req, const flight_req *fr, const char *body,
                   size_t len, double t0)
{
    srv *s = l->s;
    flight *f = NULL;
    /* Look up and insert under one lock, so two identical misses arriving
     * together on two loops still make one upstream call. */
    if (fr->shareable) {
        pthread_mutex_lock(&s->flights_mu);
        for (flight *x = s->flights[flight_bucket(fr->key)]; x && !f; x = x->tnext) {
            if (memcmp(x->fr.key, fr->key, LLMC_KEY_LEN) != 0)
                continue;
            pthread_mutex_lock(&x->mu);
            if (!x->done) {
                sub *u = sub_new(l, req, x, fr->client_stream, t0);
                if (u) {
                    atomic_fetch_add(&x->refs, 1);
                    u->next = x->subs;
                    x->subs = u;
                    x->nsubs++;
                    event_active(u->wake, EV_READ, 0); /* catch up with what arrived */
                    f = x;
                }
            }
            pthread_mutex_unlock(&x->mu);
        }
        if (f) {
            pthread_mutex_unlock(&s->flights_mu);
            if (fr->fleet_lock) /* this flight answers; the lock is not needed */
                llmc_cache_unlock(s->cache, fr->key, 1);
            flight_count_miss(s, fr);
            atomic_fetch_add(&s->coalesced, 1);
            free(fr->vec); /* the leader's answer is stored with the leader's */
            free(fr->query);
            free(fr->route_key);
            return;
        }
        /* No flight: but one may have finished since the caller looked in the
         * store (a semantic lookup takes milliseconds). A flight stores its
         * answer before it leaves the table, so under this lock the answer is
         * either in flight or stored: look once more. */
        const llmc_entry_info *e = NULL;
        if (fr->dec.lookup)
            llmc_cache_get_exact(s->cache, fr->key, fr->dec.max_age_s, (int64_t)time(NULL), &e);
        if (e) {
            pthread_mutex_unlock(&s->flights_mu);
            int served = reply_entry(s, req, e, fr->client_stream, NAN, t0, body, len) == 0;
            llmc_entry_release(e);
            if (served) {
                if (fr->fleet_lock)
                    llmc_cache_unlock(s->cache, fr->key, 1);
                free(fr->vec);
                free(fr->query);
                free(fr->route_key);
                return;
            }
            pthread_mutex_lock(&s->flights_mu);
        }
    }
    f = flight_new(l, req, fr, body, len);
    sub *u = f ? sub_new(l, req, f, fr->client_stream, t0) : NULL;
    if (f && u) {
        atomic_fetch_add(&f->refs, 1);
        f->subs = u;
        f->nsubs = 1;
        if (fr->shareable) {
            size_t b = flight_bucket(fr->key);
            f->tnext = s->flights[b];
            s->flights[b] = f;
            s->nflights++;
            f->in_table = 1;
        }
    }
    if (fr->shareable)
        pthread_mutex_unlock(&s->flights_mu);
    if (!f || !u) {
        if (fr->fleet_lock)
            llmc_cache_unlock(s->cache, fr->key, 1);
        if (f)
            flight_release(f); /* frees the vector and query it took */
        else {
            free(fr->vec);
            free(fr->query);
            free(fr->route_key);
        }
        reply_error(req, 500, "server_error", "out of memory");
        return;
    }
    flight_count_miss(s, fr);
    atomic_fetch_add(&s->upstream_calls, 1);
    if (!flight_park(f))
        flight_start(f);
}
