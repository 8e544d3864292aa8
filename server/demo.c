/*
 * demo.c — the built-in demo upstream, for `make run` with nothing
 * configured.
 *
 * It is a real OpenAI-compatible HTTP server on 127.0.0.1 (an ephemeral
 * port, loop 0), so the gateway talks to it exactly as to a real one, and a
 * newcomer sees MISS (slow, demo-delay ms) then HIT (fast) with curl in the
 * first minute. It is no language model and says so: every answer's text
 * starts with "[llmcached demo upstream", the model is "llmcached-demo",
 * and the gateway adds X-LLM-Cache-Upstream: demo to every response.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "server.h"
#include "util.h"

typedef struct {
    struct evhttp_request *req;
    struct event *timer;
    srv_loop *l;
    int stream, chat, embeddings, step;
    char *text; /* the answer */
    char *model;
    long serial;
    json_t *input; /* embeddings input */
} demo_call;

static long demo_serial;

static void demo_free(demo_call *d)
{
    reply_unwatch(d->req);
    event_free(d->timer);
    free(d->text);
    free(d->model);
    json_decref(d->input);
    free(d);
}

static void demo_chunk(demo_call *d, const char *piece, const char *finish)
{
    json_t *c =
        d->chat ? json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:o}]}", "id", "chatcmpl-demo", "object",
                            "chat.completion.chunk", "created", (json_int_t)time(NULL), "model",
                            d->model, "choices", "index", 0, "delta",
                            piece ? json_pack("{s:s}", "content", piece) : json_object(),
                            "finish_reason", finish ? json_string(finish) : json_null())
                : json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:s,s:n,s:o}]}", "id", "cmpl-demo", "object",
                            "text_completion", "created", (json_int_t)time(NULL), "model", d->model,
                            "choices", "index", 0, "text", piece ? piece : "", "logprobs",
                            "finish_reason", finish ? json_string(finish) : json_null());
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "data: %s\n\n", s);
    free(s);
    evhttp_send_reply_chunk(d->req, b);
    evbuffer_free(b);
}

/* The gateway went away (it aborts a call nobody waits for). */
static void demo_closed(struct evhttp_connection *c, void *arg)
{
    demo_call *d = arg;
    reply_request_lost(&d->req);
    demo_free(d);
}

static void demo_tick(evutil_socket_t fd, short what, void *arg)
{
    demo_call *d = arg;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(d->req);
    if (!d->stream) {
        json_t *o;
        if (d->embeddings) {
            json_t *data = json_array();
            size_t n = json_is_array(d->input) ? json_array_size(d->input) : 1;
            for (size_t i = 0; i < n; i++) {
                json_t *it = json_is_array(d->input) ? json_array_get(d->input, i) : d->input;
                const char *t = json_is_string(it) ? json_string_value(it) : "";
                uint64_t h = 1469598103934665603ull;
                for (const char *p = t; *p; p++)
                    h = (h ^ (unsigned char)*p) * 1099511628211ull;
                json_t *v = json_array();
                for (int k = 0; k < 8; k++) {
                    h = h * 6364136223846793005ull + 1442695040888963407ull;
                    json_array_append_new(v, json_real((double)(h >> 40) / 16777216.0 - 0.5));
                }
                json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding",
                                                      "index", (json_int_t)i, "embedding", v));
            }
            o = json_pack("{s:s,s:o,s:s,s:{s:i,s:i}}", "object", "list", "data", data, "model",
                          d->model, "usage", "prompt_tokens", 4, "total_tokens", 4);
        } else if (d->chat) {
            o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:{s:i,s:i,s:i}}", "id",
                          "chatcmpl-demo", "object", "chat.completion", "created",
                          (json_int_t)time(NULL), "model", d->model, "choices", "index", 0,
                          "message", "role", "assistant", "content", d->text, "finish_reason",
                          "stop", "usage", "prompt_tokens", 12, "completion_tokens", 24,
                          "total_tokens", 36);
        } else {
            o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:s,s:n,s:s}],s:{s:i,s:i,s:i}}", "id",
                          "cmpl-demo", "object", "text_completion", "created",
                          (json_int_t)time(NULL), "model", d->model, "choices", "index", 0, "text",
                          d->text, "logprobs", "finish_reason", "stop", "usage", "prompt_tokens",
                          12, "completion_tokens", 24, "total_tokens", 36);
        }
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, s, strlen(s));
        free(s);
        struct evhttp_request *req = d->req;
        demo_free(d);
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    if (d->step == 0) {
        evhttp_remove_header(oh, "Content-Type");
        evhttp_add_header(oh, "Content-Type", "text/event-stream");
        evhttp_send_reply_start(d->req, 200, "OK");
    }
    /* one word a tick */
    const char *p = d->text;
    for (int i = 0; i < d->step && *p; i++) {
        p = strchr(p, ' ');
        p = p ? p + 1 : d->text + strlen(d->text);
    }
    if (*p) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        char *piece = strndup(p, n);
        demo_chunk(d, piece, NULL);
        free(piece);
        d->step++;
        struct timeval tv = {0, 30000};
        evtimer_add(d->timer, &tv);
        return;
    }
    demo_chunk(d, NULL, "stop");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "data: [DONE]\n\n");
    evhttp_send_reply_chunk(d->req, b);
    evbuffer_free(b);
    struct evhttp_request *req = d->req;
    demo_free(d);
    evhttp_send_reply_end(req);
}

static void demo_handle(struct evhttp_request *req, void *arg)
{
    srv_loop *l = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/json");
    if (!strncmp(uri, "/v1/models", 10)) {
        evbuffer_add_printf(b,
                            "{\"object\":\"list\",\"data\":[{\"id\":\"llmcached-demo\",\"object\":"
                            "\"model\",\"owned_by\":\"llmcached demo upstream\"}]}");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    int chat = !strncmp(uri, "/v1/chat/completions", 20);
    int comp = !strncmp(uri, "/v1/completions", 15);
    int emb = !strncmp(uri, "/v1/embeddings", 14);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    json_t *o = json_loadb((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in), 0, NULL);
    if (!(chat || comp || emb) || !json_is_object(o)) {
        evbuffer_add_printf(b, "{\"error\":{\"message\":\"the demo upstream answers POST "
                               "/v1/chat/completions, /v1/completions and /v1/embeddings\","
                               "\"type\":\"invalid_request_error\"}}");
        evhttp_send_reply(req, (chat || comp || emb) ? 400 : 404, "Demo", b);
        evbuffer_free(b);
        json_decref(o);
        return;
    }
    evbuffer_free(b);
    demo_call *d = calloc(1, sizeof *d);
    d->req = req;
    d->l = l;
    d->chat = chat;
    d->embeddings = emb;
    d->stream = !emb && json_is_true(json_object_get(o, "stream"));
    json_t *m = json_object_get(o, "model");
    d->model = strdup(json_is_string(m) ? json_string_value(m) : "llmcached-demo");
    d->serial = __atomic_add_fetch(&demo_serial, 1, __ATOMIC_RELAXED);
    const char *q = "";
    if (chat) {
        json_t *msgs = json_object_get(o, "messages");
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        json_t *c = json_object_get(last, "content");
        q = json_is_string(c) ? json_string_value(c) : "(non-text content)";
    } else if (comp) {
        json_t *p = json_object_get(o, "prompt");
        q = json_is_string(p) ? json_string_value(p) : "(prompt)";
    } else {
        d->input = json_incref(json_object_get(o, "input"));
    }
    size_t n = strlen(q) + 256;
    d->text = malloc(n);
    snprintf(d->text, n,
             "[llmcached demo upstream, not a language model; answer #%ld] You asked: \"%.*s\". "
             "Start llmcached with --upstream URL to cache a real model.",
             d->serial, 200, q);
    json_decref(o);
    d->timer = evtimer_new(l->base, demo_tick, d);
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), demo_closed, d);
    struct timeval tv = llmc_timeval_ms(l->s->cfg.demo_delay_ms);
    evtimer_add(d->timer, &tv);
}

int demo_start(srv_loop *l)
{
    l->demo_http = evhttp_new(l->base);
    if (!l->demo_http)
        return -1;
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(l->demo_http, "127.0.0.1", 0);
    if (!h) {
        srv_log(LOG_ERROR, "demo upstream: cannot bind 127.0.0.1");
        return -1;
    }
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    l->s->demo_port = ntohs(sin.sin_port);
    evhttp_set_gencb(l->demo_http, demo_handle, l);
    return 0;
}
