/*
 * upstream.c — libcurl's multi-socket interface driven by a loop's
 * event_base.
 *
 * curl tells us which sockets to watch (socket callback) and when to call
 * it back (timer callback); we translate both into libevent events and hand
 * readiness back with curl_multi_socket_action(). Finished transfers are
 * collected with curl_multi_info_read() and handed back through the
 * callback their owner gave (an upstream_xfer as CURLOPT_PRIVATE): this
 * module knows nothing of flights. All of this runs on the loop's own
 * thread. It also builds the header list a request sends upstream
 * (upstream_headers), which flight.c and verify.c share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>

#include "server.h"
#include "util.h"

typedef struct {
    struct event *ev;
    srv_loop *l;
} upstream_sock;

static void upstream_check_done(srv_loop *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        upstream_xfer *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(l->multi, easy);
        x->done(x, rc);
    }
}

static void upstream_event_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_loop *l = arg;
    int running, flags = 0;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(l->multi, fd, flags, &running);
    upstream_check_done(l);
}

static void upstream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_loop *l = arg;
    int running;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    upstream_check_done(l);
}

static int upstream_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    srv_loop *l = userp;
    upstream_sock *us = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (us) {
            event_free(us->ev);
            free(us);
            curl_multi_assign(l->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (!us) {
        us = calloc(1, sizeof *us);
        if (!us)
            return -1;
        us->l = l;
        curl_multi_assign(l->multi, s, us);
    } else {
        event_free(us->ev);
    }
    us->ev = event_new(l->base, s, kind, upstream_event_cb, l);
    event_add(us->ev, NULL);
    return 0;
}

static int upstream_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    srv_loop *l = userp;
    if (timeout_ms < 0) {
        evtimer_del(l->curl_timer);
    } else {
        struct timeval tv = llmc_timeval_ms(timeout_ms);
        evtimer_add(l->curl_timer, &tv);
    }
    return 0;
}

int upstream_loop_init(srv_loop *l)
{
    l->multi = curl_multi_init();
    l->curl_timer = evtimer_new(l->base, upstream_timer_cb, l);
    if (!l->multi || !l->curl_timer)
        return -1;
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, upstream_socket_cb);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, upstream_timer_set);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return 0;
}

void upstream_loop_free(srv_loop *l)
{
    if (l->multi)
        curl_multi_cleanup(l->multi);
    if (l->curl_timer)
        event_free(l->curl_timer);
}

/* Client headers go upstream only from an allow-list (issue 16: forwarding
 * everything let a 64 KB or 10,000-header request through, and let headers
 * the key never saw change the answer): the credentials and the ones that
 * scope them (OpenAI-Organization, OpenAI-Project: part of the tenant),
 * OpenAI-Beta (part of the tenant too: it can change the answer), content
 * negotiation, User-Agent, trace headers — plus --forward-headers.
 * Authorization is replaced by --upstream-key when that is set. */
static int upstream_forward_header(srv *s, const char *name)
{
    static const char *const allow[] = {
        "authorization", "openai-organization", "openai-project",   "openai-beta", "user-agent",
        "accept",        "accept-language",     "content-type",     "traceparent", "tracestate",
        "baggage",       "x-request-id",        "x-correlation-id", NULL};
    if (s->cfg.upstream_key && *s->cfg.upstream_key && !strcasecmp(name, "authorization"))
        return 0;
    for (int i = 0; allow[i]; i++)
        if (!strcasecmp(name, allow[i]))
            return 1;
    return config_list_has(s->cfg.forward_headers, name, 1); /* "a,b,x-mock-*" */
}

struct curl_slist *upstream_headers(srv *s, struct evhttp_request *req, int plain_json)
{
    struct curl_slist *hdrs = NULL;
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    for (struct evkeyval *h = ih->tqh_first; h; h = h->next.tqe_next) {
        if (!upstream_forward_header(s, h->key))
            continue;
        if (plain_json && (!strcasecmp(h->key, "accept") || !strcasecmp(h->key, "content-type")))
            continue;
        size_t n = strlen(h->key) + strlen(h->value) + 3;
        char *line = malloc(n);
        if (!line)
            continue;
        snprintf(line, n, "%s: %s", h->key, h->value);
        hdrs = curl_slist_append(hdrs, line);
        free(line);
    }
    if (s->cfg.upstream_key && *s->cfg.upstream_key) {
        size_t n = strlen(s->cfg.upstream_key) + 32;
        char *line = malloc(n);
        if (line) {
            snprintf(line, n, "Authorization: Bearer %s", s->cfg.upstream_key);
            hdrs = curl_slist_append(hdrs, line);
            free(line);
        }
    }
    if (plain_json)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    return curl_slist_append(hdrs, "Expect:");
}

size_t upstream_sink(char *buf, size_t size, size_t n, void *arg)
{
    char **acc = arg;
    size_t len = size * n, cur = *acc ? strlen(*acc) : 0;
    if (cur + len > (1u << 20))
        return 0;
    char *nb = realloc(*acc, cur + len + 1);
    if (!nb)
        return 0;
    memcpy(nb + cur, buf, len);
    nb[cur + len] = 0;
    *acc = nb;
    return len;
}
