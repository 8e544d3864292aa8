/*
 * http.c — the gateway's request path.
 *
 * For the three cached endpoints (chat completions, completions,
 * embeddings; with or without the /v1 prefix): canonicalise, decide
 * (policy), look up the exact tier, and either answer from the entry —
 * as JSON or as an SSE replay, whichever the request asked — or hand the
 * request to a flight (flight.c) that calls upstream, coalescing identical
 * misses. Every other path is proxied unchanged and never cached; /health
 * is answered here and the admin paths go to admin.c.
 *
 * The rules (key, decision, age, what is stored) are llmc_cache's; replies
 * are written by reply.c. Errors are OpenAI-shaped JSON with a 4xx/5xx
 * status; nothing on this path can crash the daemon or touch the store on
 * bad input. At the top of server/ (server.h has the layers): it calls
 * down into admin, sem, flight, memo and reply, and nothing calls it but
 * libevent.
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

static llmc_endpoint http_endpoint(const char *path)
{
    if (!strncmp(path, "/v1/", 4))
        path += 3;
    if (!strcmp(path, "/chat/completions"))
        return LLMC_EP_CHAT;
    if (!strcmp(path, "/completions"))
        return LLMC_EP_COMPLETIONS;
    if (!strcmp(path, "/embeddings"))
        return LLMC_EP_EMBEDDINGS;
    return 0;
}

static int http_ns_shared(srv *s, const char *ns)
{
    return config_list_has(s->cfg.shared_namespaces, ns, 0);
}

/* Lay out everything the exact key and the decision depend on — endpoint,
 * the scoping and steering headers, the body — in l->raw. Returns its
 * length, or 0 when it could not be laid out (the slow path still works). */
static size_t http_raw_inputs(srv_loop *l, llmc_endpoint ep, struct evkeyvalq *ih, const char *auth,
                              const char *ns, const char *ph, const char *body, size_t len)
{
    enum { NPARTS = 7 };
    const char *parts[NPARTS] = {auth,
                                 ns,
                                 evhttp_find_header(ih, "Cache-Control"),
                                 ph ? evhttp_find_header(ih, ph) : NULL,
                                 evhttp_find_header(ih, "OpenAI-Organization"),
                                 evhttp_find_header(ih, "OpenAI-Project"),
                                 evhttp_find_header(ih, "OpenAI-Beta")};
    size_t need = 1 + len;
    for (int i = 0; i < NPARTS; i++)
        need += (parts[i] ? strlen(parts[i]) : 0) + 2;
    if (need > l->rawcap) {
        char *r = realloc(l->raw, need);
        if (!r)
            return 0;
        l->raw = r;
        l->rawcap = need;
    }
    size_t o = 0;
    l->raw[o++] = (char)ep;
    for (int i = 0; i < NPARTS; i++) {
        /* present-but-empty and absent differ: a marker byte says which */
        l->raw[o++] = parts[i] ? 1 : 0;
        if (parts[i]) {
            size_t n = strlen(parts[i]);
            memcpy(l->raw + o, parts[i], n);
            o += n;
        }
        l->raw[o++] = 0;
    }
    memcpy(l->raw + o, body, len);
    return o + len;
}

/* The value that tells callers apart (--tenant-from), or NULL when the
 * request has none (an anonymous caller; always so with "none"). */
static const char *http_tenant_value(srv *s, struct evkeyvalq *ih)
{
    const char *tf = s->cfg.tenant_from ? s->cfg.tenant_from : "authorization";
    const char *v = NULL;
    if (!strcmp(tf, "authorization"))
        v = evhttp_find_header(ih, "Authorization");
    else if (!strncmp(tf, "header:", 7))
        v = evhttp_find_header(ih, tf + 7);
    return v && *v ? v : NULL;
}

static void http_cached(srv_loop *l, struct evhttp_request *req, llmc_endpoint ep, double t0)
{
    srv *s = l->s;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_common_headers(s, req);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_error(req, 405, "method_not_allowed", "this endpoint only accepts POST");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if ((long long)len > s->cfg.max_body) {
        reply_error(req, 413, "request_too_large", "request body exceeds max-body");
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    const char *auth = http_tenant_value(s, ih);
    const char *ns =
        s->cfg.namespace_header ? evhttp_find_header(ih, s->cfg.namespace_header) : NULL;
    const char *ph = llmc_cache_personal_header(s->cache);
    if (ph && !*ph)
        ph = NULL;
    /* --anonymous: what a caller without the --tenant-from value gets. */
    const char *anon = s->cfg.anonymous ? s->cfg.anonymous : "share";
    int anonymous = !auth && strcmp(s->cfg.tenant_from ? s->cfg.tenant_from : "", "none") != 0;
    if (anonymous && !strcmp(anon, "reject")) {
        reply_common_headers(s, req);
        reply_error(req, 401, "invalid_request_error",
                    "this cache serves identified callers only (--anonymous reject): send "
                    "the credentials --tenant-from names");
        return;
    }
    int no_cache = anonymous && !strcmp(anon, "no-cache");

    /* Fast path: a byte-identical request seen before on this loop. */
    size_t rawlen = no_cache ? 0 : http_raw_inputs(l, ep, ih, auth, ns, ph, body, len);
    const memo_val *mv = rawlen ? memo_get(l->memo, l->raw, rawlen) : NULL;
    if (mv) {
        const llmc_entry_info *e;
        if (llmc_cache_get_exact(s->cache, mv->key, mv->max_age_s, (int64_t)time(NULL), &e) == 0) {
            int served = reply_entry(s, req, e, mv->client_stream, NAN, t0, body, len) == 0;
            llmc_entry_release(e);
            if (served)
                return;
        }
    }
    llmc_cache_request cr = {.ep = ep,
                             .body = body,
                             .len = len,
                             .authorization = auth,
                             .ns = ns,
                             .ns_shared = ns && http_ns_shared(s, ns),
                             .personal = ph ? evhttp_find_header(ih, ph) : NULL,
                             .cache_control = evhttp_find_header(ih, "Cache-Control"),
                             .organization = evhttp_find_header(ih, "OpenAI-Organization"),
                             .project = evhttp_find_header(ih, "OpenAI-Project"),
                             .beta = evhttp_find_header(ih, "OpenAI-Beta")};
    llmc_cache_prep cp;
    const char *why = NULL;
    if (llmc_cache_prepare(s->cache, &cr, &cp, &why)) {
        reply_common_headers(s, req);
        reply_error(req, 400, "invalid_request_error",
                    why ? why : "request body could not be read");
        return;
    }
    flight_req fr;
    memset(&fr, 0, sizeof fr);
    fr.dec = cp.dec;
    if (no_cache) {
        fr.dec.lookup = fr.dec.store = 0;
        fr.dec.reason = "anonymous caller (--anonymous no-cache)";
    }
    fr.ep = ep;
    fr.client_stream = cp.stream;
    memcpy(fr.key, cp.key, LLMC_KEY_LEN);
    fr.partition = cp.partition;
    fr.ns_hash = cp.ns_hash;
    memcpy(fr.model, cp.model, sizeof fr.model);
    fr.ttl = cp.ttl_s;
    fr.entry_flags = cp.entry_flags;
    fr.reason = strcmp(fr.dec.reason, "default") ? fr.dec.reason : NULL;
    /* Kept for the semantic tier: the last user message, or the turns
     * --semantic-query asks for. */
    char *sem_query = cp.query;
    size_t sem_qlen = cp.query_len;
    fr.route_key = cp.prompt; /* the prefix router's key, owned by the flight */
    fr.route_len = cp.prompt_len;
    cp.query = cp.prompt = NULL;

    if (!fr.dec.lookup && !fr.dec.store) {
        free(sem_query);
        fr.cache_status = "BYPASS";
        llmc_metrics_count(s->metrics, fr.model, LLMC_OUT_BYPASS);
        flight_submit(l, req, &fr, body, len, t0);
        return;
    }
    if (fr.dec.lookup && rawlen) {
        memo_val v;
        memcpy(v.key, fr.key, LLMC_KEY_LEN);
        v.client_stream = fr.client_stream;
        v.max_age_s = fr.dec.max_age_s;
        memo_put(l->memo, l->raw, rawlen, &v);
    }
    if (fr.dec.lookup) {
        const llmc_entry_info *e;
        if (llmc_cache_get_exact(s->cache, fr.key, fr.dec.max_age_s, (int64_t)time(NULL), &e) ==
            0) {
            int served = reply_entry(s, req, e, fr.client_stream, NAN, t0, body, len) == 0;
            llmc_entry_release(e);
            if (served) {
                free(sem_query);
                free(fr.route_key);
                return;
            }
        }
    }
    /* Not in memory: the shared store (--store redis) when it may hold it,
     * then the semantic tier or the upstream. */
    fetch_submit(l, req, &fr, sem_query, sem_qlen, body, len, t0);
}

void http_handle(struct evhttp_request *req, void *arg)
{
    srv_loop *l = arg;
    srv *s = l->s;
    double t0 = srv_now();
    atomic_fetch_add(&s->requests, 1);
    if (conn_request_begin(req))
        return;
    const char *uri = evhttp_request_get_uri(req);
    char path[1024];
    size_t pl = strcspn(uri, "?#");
    if (pl >= sizeof path)
        pl = sizeof path - 1;
    memcpy(path, uri, pl);
    path[pl] = 0;

    if (!strcmp(path, "/health")) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"status\":\"ok\",\"demo_upstream\":%s}",
                            s->demo ? "true" : "false");
        reply_common_headers(s, req);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    if (admin_static(s, req, path))
        return;
    if (!strcmp(path, "/stats") || !strcmp(path, "/metrics") || !strncmp(path, "/admin/", 7) ||
        !strcmp(path, "/admin")) {
        admin_handle(s, req, path);
        return;
    }
    llmc_endpoint ep = http_endpoint(path);
    if (ep) {
        http_cached(l, req, ep, t0);
        return;
    }
    /* Anything else: proxied unchanged, never cached. */
    flight_req fr;
    memset(&fr, 0, sizeof fr);
    fr.cache_status = "BYPASS";
    fr.reason = "not a cached endpoint";
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    fr.client_stream = accept && strstr(accept, "text/event-stream") != NULL;
    flight_submit(l, req, &fr, body, len, t0);
}
