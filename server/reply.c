/*
 * reply.c — writing replies, at the ground of server/.
 *
 * What every module that answers a client needs: the common headers, an
 * OpenAI-shaped error ({"error":{"message","type","param","code"}} with a
 * 4xx/5xx status), a cached entry served as a hit (as JSON or as an SSE
 * replay, whichever the client asked), and forgetting a request whose
 * client went away. It calls nothing above it: the hit hook (verify.c's
 * sampling) is a callback the daemon installs in srv.on_hit.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "server.h"

void reply_common_headers(srv *s, struct evhttp_request *req)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Server", "llmcached/" LLMC_VERSION);
    if (s->demo)
        evhttp_add_header(oh, "X-LLM-Cache-Upstream",
                          "demo (built-in demo upstream, not a language model)");
}

void reply_request_lost(struct evhttp_request **reqp)
{
    /* A client that went away before our reply was done leaves its request
     * detached from the connection (libevent 2.1: evcon == NULL); then it is
     * ours to free. Otherwise the connection frees it after its close
     * callback returns. */
    if (*reqp && !evhttp_request_get_connection(*reqp))
        evhttp_request_free(*reqp);
    *reqp = NULL;
}

void reply_unwatch(struct evhttp_request *req)
{
    struct evhttp_connection *c = req ? evhttp_request_get_connection(req) : NULL;
    if (c)
        evhttp_connection_set_closecb(c, NULL, NULL);
}

void reply_error(struct evhttp_request *req, int status, const char *type, const char *msg)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type", type, "param",
                          "code", type);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    struct evbuffer *b = evbuffer_new();
    if (js)
        evbuffer_add(b, js, strlen(js));
    free(js);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_remove_header(oh, "Content-Type");
    evhttp_add_header(oh, "Content-Type", "application/json");
    const char *reason = status == 400   ? "Bad Request"
                         : status == 401 ? "Unauthorized"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 408 ? "Request Timeout"
                         : status == 413 ? "Payload Too Large"
                         : status == 431 ? "Request Header Fields Too Large"
                         : status == 503 ? "Service Unavailable"
                         : status == 502 ? "Bad Gateway"
                         : status == 504 ? "Gateway Timeout"
                                         : "Error";
    evhttp_send_reply(req, status, reason, b);
    evbuffer_free(b);
}

static void reply_entry_cleanup(const void *data, size_t len, void *arg)
{
    llmc_entry_release(arg);
}

/* Serve a live entry: an exact hit (similarity NAN) or a semantic one.
 * Returns 0, or -1 when it cannot be rendered in the mode asked (the caller
 * then goes upstream). */
int reply_entry(srv *s, struct evhttp_request *req, const llmc_entry_info *e, int client_stream,
                double similarity, double t0, const char *body, size_t len)
{
    /* The reply goes straight into the request's own output buffer. */
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (client_stream && e->endpoint != LLMC_EP_EMBEDDINGS) {
        char *sse = NULL;
        size_t sl = 0;
        if (llmc_resp_to_sse((llmc_endpoint)e->endpoint, e->body, e->body_len, &sse, &sl))
            return -1;
        evbuffer_add(b, sse, sl);
        free(sse);
        evhttp_add_header(oh, "Content-Type", "text/event-stream");
        evhttp_add_header(oh, "Cache-Control", "no-cache");
    } else {
        if (e->body_len <= 16384) {
            evbuffer_add(b, e->body, e->body_len); /* a copy is cheaper than a reference */
        } else {
            llmc_entry_ref(e); /* large: sent from the entry itself, held until sent */
            evbuffer_add_reference(b, e->body, e->body_len, reply_entry_cleanup, (void *)e);
        }
        evhttp_add_header(oh, "Content-Type", "application/json");
    }
    int semantic = !isnan(similarity);
    char age[32], hex[2 * LLMC_KEY_LEN + 1];
    long long a = (long long)time(NULL) - e->created;
    snprintf(age, sizeof age, "%lld", a < 0 ? 0 : a);
    llmc_key_hex(e->key, hex);
    reply_common_headers(s, req);
    evhttp_add_header(oh, "X-LLM-Cache", semantic ? "HIT-SEMANTIC" : "HIT-EXACT");
    if (semantic) {
        char sim[32];
        snprintf(sim, sizeof sim, "%.4f", similarity);
        evhttp_add_header(oh, "X-LLM-Cache-Similarity", sim);
    }
    evhttp_add_header(oh, "X-LLM-Cache-Key", hex);
    evhttp_add_header(oh, "Age", age);
    if (s->on_hit)
        s->on_hit(s, req, e, similarity, body, len); /* reads req's headers: before the reply */
    evhttp_send_reply(req, 200, "OK", NULL);
    llmc_metrics_count(s->metrics, e->model, semantic ? LLMC_OUT_HIT_SEMANTIC : LLMC_OUT_HIT_EXACT);
    llmc_metrics_saved(s->metrics, e->model, e->prompt_tokens, e->completion_tokens);
    llmc_metrics_observe(s->metrics, LLMC_HIST_HIT, srv_now() - t0);
    return 0;
}
