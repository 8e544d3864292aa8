/*
 * server.c — llmcached-engine's OpenAI-compatible HTTP API over the runner.
 *
 * Endpoints: POST /v1/completions, POST /v1/chat/completions (streaming
 * with server-sent events, or not), POST /tokenize, POST /detokenize,
 * GET /v1/models, GET /health, GET /metrics (vLLM's metric names, so the
 * gateway's scraper and the same dashboards work on vLLM and on this).
 *
 * Threads and ownership.
 *   - The main thread runs the libevent loop and owns everything evhttp:
 *     requests, connections, replies. It parses and validates each request
 *     (JSON via jansson, tokenization, the context-length check) and answers
 *     errors itself, so a bad request never reaches a worker.
 *   - A valid generation request becomes a job, queued (s->mu, s->cv) for
 *     one of `workers` threads that run runner_generate. A worker never
 *     calls evhttp: it formats what the client must receive (SSE events, or
 *     the whole JSON body) into job->out under job->mu and activates
 *     job->ev (event_active is thread-safe with evthread_use_pthreads); the
 *     main thread's callback moves job->out to the client.
 *   - A worker sets job->done and activates job->ev while holding job->mu,
 *     and never touches the job afterwards; the main thread frees a job only
 *     after it has seen done under job->mu. So the job outlives every use.
 *   - If the client goes away (connection close callback), the main thread
 *     forgets the request (job->req = NULL) and sets job->cancel, which the
 *     runner polls between tokens.
 *   - Metrics live under s->mmu; the KV numbers come from the pool's stats.
 *
 * Chat template (plain): each message on its own line as "System: ...",
 * "User: ...", "Assistant: ..." (developer counts as system, tool as user),
 * then "Assistant:" for the model to continue. BOS is prepended to text
 * prompts, not to token-id prompts.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>

#include "server.h"

#define SRV_MAX_STOP 4
#define SRV_MAX_BODY (4 << 20)

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 256;
        while (c < b->len + n + 1)
            c *= 2;
        char *np = realloc(b->p, c);
        if (!np)
            return -1;
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

/* vLLM's bucket bounds for TTFT and for end-to-end latency */
static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                     0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                     20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double e2e_bounds[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                    5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
#define N_TTFT (sizeof ttft_bounds / sizeof *ttft_bounds)
#define N_E2E (sizeof e2e_bounds / sizeof *e2e_bounds)

typedef struct {
    uint64_t counts[32]; /* per bucket (non-cumulative), last = +Inf */
    double sum;
    uint64_t n;
} srv_hist;

typedef struct srv srv;

typedef struct job {
    struct job *next;                /* worker queue */
    struct job *all_prev, *all_next; /* live jobs (main thread) */
    srv *s;
    struct evhttp_request *req; /* main thread; NULL once answered */
    int gone;                   /* the client's connection closed */
    struct event *ev;
    int chat, stream, include_usage;
    int32_t *prompt;
    size_t n_prompt;
    int max_new;
    float temperature, top_p;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];
    size_t stop_len[SRV_MAX_STOP], max_stop;
    int n_stop;
    char *salt;
    char id[48];
    long created;
    double t_arrival;
    int cancel;
    /* shared with the worker, under mu */
    pthread_mutex_t mu;
    sbuf out;
    int done, status;
    /* worker-private */
    sbuf text;
    size_t emitted;
    int first_token, stop_hit;
} job;

struct srv {
    const srv_params *p;
    runner *r;
    const model_config *cfg;
    const tokenizer *tok;
    struct event_base *base;
    struct evhttp *http;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu; /* queue */
    pthread_cond_t cv;
    job *qhead, *qtail;
    int stopping;
    job *all; /* live jobs, main thread only */
    uint64_t next_id;
    pthread_mutex_t mmu; /* metrics */
    int waiting, running;
    uint64_t prompt_tokens, gen_tokens, ok_stop, ok_length, ok_abort, errors;
    srv_hist ttft, e2e;
};

static double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void srv_hist_add(srv_hist *h, const double *bounds, size_t nb, double v)
{
    size_t i = 0;
    while (i < nb && v > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->n++;
}

/* ---- replies ---------------------------------------------------------------- */

static void srv_send_json(struct evhttp_request *req, int code, const char *reason, json_t *body)
{
    char *txt = json_dumps(body, JSON_COMPACT);
    struct evbuffer *b = evbuffer_new();
    if (txt && b)
        evbuffer_add(b, txt, strlen(txt));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, b);
    if (b)
        evbuffer_free(b);
    free(txt);
    json_decref(body);
}

static json_t *srv_error_json(const char *msg, const char *type, const char *param,
                              const char *code)
{
    return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type", type, "param",
                     param, "code", code);
}

/* An OpenAI-style error reply. */
static void srv_error(struct evhttp_request *req, int status, const char *type, const char *param,
                      const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void srv_error(struct evhttp_request *req, int status, const char *type, const char *param,
                      const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *reason = status == 400   ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 413 ? "Payload Too Large"
                                         : "Internal Server Error";
    srv_send_json(req, status, reason, srv_error_json(msg, type, param, code));
}

#define BAD(req, param, ...) srv_error(req, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

/* Replace invalid UTF-8 with U+FFFD so that jansson accepts the text. */
static char *srv_utf8_clean(const char *s, size_t n, size_t *outlen)
{
    char *o = malloc(n * 3 + 1);
    size_t k = 0;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        int ok = l > 0 && i + l <= n && !(l == 2 && c < 0xc2);
        for (size_t j = 1; ok && j < l; j++)
            ok = ((unsigned char)s[i + j] & 0xc0) == 0x80;
        if (ok && l == 3) {
            unsigned cp = (c & 0x0fu) << 12 | ((unsigned char)s[i + 1] & 0x3fu) << 6;
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && l == 4) {
            unsigned cp = (c & 0x07u) << 18 | ((unsigned char)s[i + 1] & 0x3fu) << 12;
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (ok) {
            memcpy(o + k, s + i, l);
            k += l;
            i += l;
        } else {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        }
    }
    o[k] = 0;
    *outlen = k;
    return o;
}

static json_t *srv_jstr(const char *s, size_t n)
{
    size_t l;
    char *c = srv_utf8_clean(s, n, &l);
    json_t *j = c ? json_stringn(c, l) : NULL;
    free(c);
    return j ? j : json_string("");
}

/* ---- jobs ------------------------------------------------------------------- */

static void job_destroy(job *j)
{
    srv *s = j->s;
    if (j->all_prev)
        j->all_prev->all_next = j->all_next;
    else if (s->all == j)
        s->all = j->all_next;
    if (j->all_next)
        j->all_next->all_prev = j->all_prev;
    if (j->ev)
        event_free(j->ev);
    pthread_mutex_destroy(&j->mu);
    free(j->prompt);
    for (int i = 0; i < j->n_stop; i++)
        free(j->stop[i]);
    free(j->salt);
    free(j->out.p);
    free(j->text.p);
    free(j);
}

/* The connection closed before our reply was done. libevent detaches an
 * unfinished request from its dying connection instead of freeing it: it is
 * ours to finish, and finishing (evhttp_send_reply / _reply_end) a request
 * without a connection frees it. */
static void job_on_close(struct evhttp_connection *c, void *arg)
{
    job *j = arg;
    j->gone = 1;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
}

static void job_forget_conn(job *j)
{
    struct evhttp_connection *c = evhttp_request_get_connection(j->req);
    if (c)
        evhttp_connection_set_closecb(c, NULL, NULL);
}

/* main thread: move what the worker produced to the client */
static void job_notify(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    struct evbuffer *b = evbuffer_new();
    pthread_mutex_lock(&j->mu);
    if (b && j->out.len)
        evbuffer_add(b, j->out.p, j->out.len);
    j->out.len = 0;
    int done = j->done, status = j->status;
    pthread_mutex_unlock(&j->mu);
    if (j->req) { /* (b NULL: out of memory; the reply still gets finished) */
        if (j->stream) {
            if (b && evbuffer_get_length(b) && !j->gone)
                evhttp_send_reply_chunk(j->req, b);
            if (done) {
                job_forget_conn(j);
                evhttp_send_reply_end(j->req);
                j->req = NULL;
            }
        } else if (done) {
            job_forget_conn(j);
            evhttp_add_header(evhttp_request_get_output_headers(j->req), "Content-Type",
                              "application/json");
            evhttp_send_reply(j->req, status, status == 200 ? "OK" : "Internal Server Error", b);
            j->req = NULL;
        }
    }
    if (b)
        evbuffer_free(b);
    if (done)
        job_destroy(j);
}

/* worker: append to job->out and wake the main thread */
static void job_push(job *j, const char *data, size_t n, int done, int status)
{
    pthread_mutex_lock(&j->mu);
    sbuf_add(&j->out, data, n);
    if (done) {
        j->done = 1;
        j->status = status;
    }
    event_active(j->ev, EV_READ, 0); /* under mu: see the file comment */
    pthread_mutex_unlock(&j->mu);
}

static void job_push_json(job *j, json_t *obj, int sse)
{
    char *t = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!t)
        return;
    if (sse) {
        sbuf e = {0};
        sbuf_add(&e, "data: ", 6);
        sbuf_add(&e, t, strlen(t));
        sbuf_add(&e, "\n\n", 2);
        if (e.p)
            job_push(j, e.p, e.len, 0, 0);
        free(e.p);
    } else {
        job_push(j, t, strlen(t), 0, 0);
    }
    free(t);
}

static json_t *job_chunk(job *j, const char *text, size_t n, const char *finish, int first)
{
    json_t *choice;
    if (j->chat) {
        json_t *delta = json_object();
        if (first)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (first || n)
            json_object_set_new(delta, "content", srv_jstr(text, n));
        choice = json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "delta", delta, "logprobs",
                           "finish_reason", finish);
    } else {
        choice = json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "text", srv_jstr(text, n), "logprobs",
                           "finish_reason", finish);
    }
    if (choice && !finish)
        json_object_set_new(choice, "finish_reason", json_null());
    return json_pack("{s:s,s:s,s:i,s:s,s:[o]}", "id", j->id, "object",
                     j->chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->s->p->model_name, "choices", choice);
}

static json_t *job_usage(const runner_result *res)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", res->prompt_tokens,
                     "completion_tokens", res->completion_tokens, "total_tokens",
                     res->prompt_tokens + res->completion_tokens, "prompt_tokens_details",
                     "cached_tokens", res->cached_tokens);
}

/* Stream the part of the text that is final: not possibly the start of a
 * stop string, and not ending inside a UTF-8 character (unless final). */
static void job_emit(job *j, int final)
{
    size_t limit = j->text.len;
    if (!final) {
        size_t hold = j->max_stop ? j->max_stop - 1 : 0;
        limit = limit > hold ? limit - hold : 0;
        size_t k = limit, back = 0;
        while (k > j->emitted && back < 4 && ((unsigned char)j->text.p[k - 1] & 0xc0) == 0x80) {
            k--;
            back++;
        }
        if (k > j->emitted) {
            unsigned char c = (unsigned char)j->text.p[k - 1];
            size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (need > back + 1)
                limit = k - 1;
        }
    }
    if (limit <= j->emitted)
        return;
    job_push_json(j, job_chunk(j, j->text.p + j->emitted, limit - j->emitted, NULL, 0), 1);
    j->emitted = limit;
}

static int job_on_token(void *ud, int32_t id, const char *piece, size_t len)
{
    job *j = ud;
    srv *s = j->s;
    if (!j->first_token) {
        j->first_token = 1;
        double t = srv_now() - j->t_arrival;
        pthread_mutex_lock(&s->mmu);
        srv_hist_add(&s->ttft, ttft_bounds, N_TTFT, t);
        pthread_mutex_unlock(&s->mmu);
    }
    size_t before = j->text.len;
    sbuf_add(&j->text, piece, len);
    if (j->n_stop && j->text.p) {
        size_t from = before >= j->max_stop ? before - j->max_stop + 1 : 0;
        size_t best = SIZE_MAX;
        for (int i = 0; i < j->n_stop; i++) {
            char *hit = memmem(j->text.p + from, j->text.len - from, j->stop[i], j->stop_len[i]);
            if (hit && (size_t)(hit - j->text.p) < best)
                best = (size_t)(hit - j->text.p);
        }
        if (best != SIZE_MAX) {
            j->text.len = best;
            j->stop_hit = 1;
        }
    }
    if (j->stream)
        job_emit(j, j->stop_hit);
    return j->stop_hit;
}

static void job_run(job *j)
{
    srv *s = j->s;
    runner_gen g = {0};
    llmc_kv_extra ex = {j->salt, NULL};
    g.temperature = j->temperature;
    g.top_p = j->top_p;
    g.seed = j->seed;
    g.max_new_tokens = j->max_new;
    g.extra = &ex;
    g.on_token = job_on_token;
    g.ud = j;
    g.cancel = &j->cancel;
    if (j->stream && j->chat)
        job_push_json(j, job_chunk(j, "", 0, NULL, 1), 1);
    runner_result res;
    int e = runner_generate(s->r, j->prompt, j->n_prompt, &g, &res);
    int cancelled = __atomic_load_n(&j->cancel, __ATOMIC_RELAXED);
    const char *finish = res.finish == RUNNER_STOP_LENGTH ? "length" : "stop";
    pthread_mutex_lock(&s->mmu);
    s->running--; /* before the client can see the end of its reply */
    if (e) {
        s->errors++;
    } else {
        s->prompt_tokens += (uint64_t)res.prompt_tokens;
        s->gen_tokens += (uint64_t)res.completion_tokens;
        if (cancelled)
            s->ok_abort++;
        else if (res.finish == RUNNER_STOP_LENGTH)
            s->ok_length++;
        else
            s->ok_stop++;
        srv_hist_add(&s->e2e, e2e_bounds, N_E2E, srv_now() - j->t_arrival);
    }
    pthread_mutex_unlock(&s->mmu);
    if (e) {
        json_t *err = srv_error_json(llmc_strerror(e), "server_error", NULL, NULL);
        if (j->stream) {
            job_push_json(j, err, 1);
            job_push(j, "data: [DONE]\n\n", 14, 1, 200);
        } else {
            char *t = json_dumps(err, JSON_COMPACT);
            json_decref(err);
            job_push(j, t ? t : "{}", t ? strlen(t) : 2, 1, 500);
            free(t);
        }
        return;
    }
    if (j->stream) {
        job_emit(j, 1);
        job_push_json(j, job_chunk(j, "", 0, finish, 0), 1);
        if (j->include_usage) {
            json_t *u = json_pack("{s:s,s:s,s:i,s:s,s:[],s:o}", "id", j->id, "object",
                                  j->chat ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)j->created, "model", s->p->model_name, "choices",
                                  "usage", job_usage(&res));
            job_push_json(j, u, 1);
        }
        job_push(j, "data: [DONE]\n\n", 14, 1, 200);
        return;
    }
    json_t *text = srv_jstr(j->text.p ? j->text.p : "", j->text.len);
    json_t *choice =
        j->chat ? json_pack("{s:i,s:{s:s,s:o},s:n,s:s}", "index", 0, "message", "role", "assistant",
                            "content", text, "logprobs", "finish_reason", finish)
                : json_pack("{s:i,s:o,s:n,s:s}", "index", 0, "text", text, "logprobs",
                            "finish_reason", finish);
    json_t *body = json_pack("{s:s,s:s,s:i,s:s,s:[o],s:o}", "id", j->id, "object",
                             j->chat ? "chat.completion" : "text_completion", "created",
                             (json_int_t)j->created, "model", s->p->model_name, "choices", choice,
                             "usage", job_usage(&res));
    char *t = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    job_push(j, t ? t : "{}", t ? strlen(t) : 2, 1, t ? 200 : 500);
    free(t);
}

static void *srv_worker(void *arg)
{
    srv *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->qhead && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->qhead) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        job *j = s->qhead;
        s->qhead = j->next;
        if (!s->qhead)
            s->qtail = NULL;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&s->mmu);
        s->waiting--;
        s->running++;
        pthread_mutex_unlock(&s->mmu);
        job_run(j); /* j may be freed by the main thread from here on */
    }
}

/* ---- request parsing ---------------------------------------------------------- */

static json_t *srv_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *data = n ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t err;
    json_t *j = json_loadb(data, n, 0, &err);
    if (!j) {
        BAD(req, NULL, "invalid JSON body: %s (line %d, column %d)", err.text, err.line,
            err.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        BAD(req, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Text of a message's content: a string, or an array of {"type":"text"}
 * parts; NULL content is empty. -1 when malformed. */
static int srv_content(json_t *c, sbuf *out)
{
    if (!c || json_is_null(c))
        return 0;
    if (json_is_string(c))
        return sbuf_add(out, json_string_value(c), json_string_length(c));
    if (!json_is_array(c))
        return -1;
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part)
    {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(text))
            return -1;
        if (sbuf_add(out, json_string_value(text), json_string_length(text)))
            return -1;
    }
    return 0;
}

/* The plain chat template (file comment). 0, or -1 with a message in err. */
static int srv_chat_prompt(json_t *msgs, sbuf *out, char *err, size_t errlen)
{
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        snprintf(err, errlen, "'messages' must be a non-empty array");
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *role = json_object_get(m, "role");
        const char *r = json_is_string(role) ? json_string_value(role) : NULL;
        const char *label = NULL;
        if (r && (!strcmp(r, "system") || !strcmp(r, "developer")))
            label = "System: ";
        else if (r && (!strcmp(r, "user") || !strcmp(r, "tool")))
            label = "User: ";
        else if (r && !strcmp(r, "assistant"))
            label = "Assistant: ";
        if (!label) {
            snprintf(err, errlen,
                     "messages[%zu].role must be one of system, developer, user, "
                     "assistant, tool",
                     i);
            return -1;
        }
        sbuf_add(out, label, strlen(label));
        if (srv_content(json_object_get(m, "content"), out)) {
            snprintf(err, errlen,
                     "messages[%zu].content must be a string or an array of text "
                     "parts",
                     i);
            return -1;
        }
        sbuf_add(out, "\n", 1);
    }
    sbuf_add(out, "Assistant:", 10);
    return 0;
}

/* Tokenize a completions prompt (string, [string], [ids] or [[ids]]).
 * Returns the count (>= 0) with *ids malloc'ed, or -1 after replying. */
static long srv_prompt_ids(srv *s, struct evhttp_request *req, json_t *prompt, int add_bos,
                           const char *param, int32_t **ids)
{
    size_t max = (size_t)s->cfg->seq_len * 8 + 16;
    *ids = NULL;
    if (json_is_array(prompt) && json_array_size(prompt) == 1 &&
        (json_is_string(json_array_get(prompt, 0)) || json_is_array(json_array_get(prompt, 0))))
        prompt = json_array_get(prompt, 0);
    if (json_is_string(prompt)) {
        const char *t = json_string_value(prompt);
        size_t len = json_string_length(prompt);
        size_t cap = (size_t)s->cfg->seq_len * tok_max_piece_len(s->tok);
        if (len > cap) {
            BAD(req, param,
                "This model's maximum context length is %d tokens. However, your prompt is "
                "%zu bytes long, which is more than %d tokens. Please reduce the length of the "
                "prompt.",
                s->cfg->seq_len, len, s->cfg->seq_len);
            return -1;
        }
        *ids = malloc((len + 2) * sizeof **ids);
        if (!*ids) {
            srv_error(req, 500, "server_error", NULL, NULL, "out of memory");
            return -1;
        }
        long n = tok_encode(s->tok, t, len, add_bos, *ids, len + 2);
        if (n < 0) {
            free(*ids);
            *ids = NULL;
            srv_error(req, 500, "server_error", NULL, NULL, "tokenizer: %s", llmc_strerror((int)n));
            return -1;
        }
        return n;
    }
    if (json_is_array(prompt) && json_array_size(prompt) > 0 && json_array_size(prompt) <= max) {
        size_t n = json_array_size(prompt), i;
        json_t *v;
        *ids = malloc(n * sizeof **ids);
        if (!*ids) {
            srv_error(req, 500, "server_error", NULL, NULL, "out of memory");
            return -1;
        }
        json_array_foreach(prompt, i, v)
        {
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (x < 0 || x >= s->cfg->vocab_size) {
                free(*ids);
                *ids = NULL;
                BAD(req, "prompt",
                    "'prompt' must be a string, or an array of token ids in [0, %d) "
                    "(batched prompts are not supported)",
                    s->cfg->vocab_size);
                return -1;
            }
            (*ids)[i] = (int32_t)x;
        }
        return (long)n;
    }
    BAD(req, "prompt",
        "'prompt' must be a string, or an array of token ids (batched prompts are not "
        "supported)");
    return -1;
}

static int srv_num(json_t *body, const char *key, double lo, double hi, double def, double *out,
                   struct evhttp_request *req)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        BAD(req, key, "'%s' must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static void srv_generate(srv *s, struct evhttp_request *req, int chat)
{
    json_t *body = srv_body(req);
    if (!body)
        return;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(body);
        srv_error(req, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->s = s;
    j->chat = chat;
    j->t_arrival = srv_now();
    json_t *v = json_object_get(body, "model");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), s->p->model_name) != 0)) {
        srv_error(req, 404, "invalid_request_error", "model", "model_not_found",
                  "The model `%s` does not exist.", json_is_string(v) ? json_string_value(v) : "?");
        goto fail;
    }
    long n;
    if (chat) {
        sbuf text = {0};
        char err[160];
        if (srv_chat_prompt(json_object_get(body, "messages"), &text, err, sizeof err)) {
            free(text.p);
            BAD(req, "messages", "%s", err);
            goto fail;
        }
        json_t *ps = json_stringn_nocheck(text.p, text.len);
        free(text.p);
        n = srv_prompt_ids(s, req, ps, 1, "messages", &j->prompt);
        json_decref(ps);
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (!p) {
            BAD(req, "prompt", "'prompt' is required");
            goto fail;
        }
        n = srv_prompt_ids(s, req, p, 1, "prompt", &j->prompt);
    }
    if (n < 0)
        goto fail;
    if (n == 0) {
        BAD(req, chat ? "messages" : "prompt", "the prompt is empty");
        goto fail;
    }
    j->n_prompt = (size_t)n;
    int ctx = s->cfg->seq_len;
    if (n >= ctx) {
        BAD(req, chat ? "messages" : "prompt",
            "This model's maximum context length is %d tokens. However, your prompt has %ld "
            "tokens, which leaves no room for the completion. Please reduce the length of the "
            "prompt.",
            ctx, n);
        goto fail;
    }
    v = json_object_get(body, "max_completion_tokens");
    if (!v || json_is_null(v))
        v = json_object_get(body, "max_tokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            BAD(req, "max_tokens", "'max_tokens' must be an integer >= 1");
            goto fail;
        }
        if (json_integer_value(v) > ctx - n) {
            BAD(req, "max_tokens",
                "This model's maximum context length is %d tokens. However, you requested %ld "
                "tokens (%ld in the prompt, %lld for the completion). Please reduce the length "
                "of the prompt or of the completion.",
                ctx, n + (long)json_integer_value(v), n, (long long)json_integer_value(v));
            goto fail;
        }
        j->max_new = (int)json_integer_value(v);
    } else {
        j->max_new = chat ? (int)(ctx - n) : (int)(16 < ctx - n ? 16 : ctx - n);
    }
    {
        llmc_kvpool *pool = runner_pool(s->r);
        long bs = llmc_kvpool_block_size(pool), need = (n + j->max_new + bs - 1) / bs;
        if (need > llmc_kvpool_num_blocks(pool)) {
            BAD(req, "max_tokens",
                "the prompt (%ld tokens) and the completion (%d tokens) need %ld KV blocks of %ld "
                "tokens; this engine has %d. Please reduce max_tokens or the prompt.",
                n, j->max_new, need, bs, llmc_kvpool_num_blocks(pool));
            goto fail;
        }
    }
    double d;
    if (srv_num(body, "temperature", 0.0, 2.0, 1.0, &d, req))
        goto fail;
    j->temperature = (float)d;
    if (srv_num(body, "top_p", 1e-9, 1.0, 1.0, &d, req))
        goto fail;
    j->top_p = (float)d;
    v = json_object_get(body, "n");
    if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != 1)) {
        BAD(req, "n", "only n = 1 is supported");
        goto fail;
    }
    v = json_object_get(body, "seed");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            BAD(req, "seed", "'seed' must be an integer");
            goto fail;
        }
        j->seed = (uint64_t)json_integer_value(v);
    } else {
        j->seed = (uint64_t)time(NULL) ^ (s->next_id * 0x9E3779B97F4A7C15ULL);
    }
    v = json_object_get(body, "logprobs");
    if (v && !json_is_null(v) && !json_is_false(v)) {
        BAD(req, "logprobs", "logprobs are not supported by this engine");
        goto fail;
    }
    v = json_object_get(body, "echo");
    if (v && !json_is_null(v) && !json_is_false(v)) {
        BAD(req, "echo", "echo is not supported by this engine");
        goto fail;
    }
    v = json_object_get(body, "stream");
    if (v && !json_is_null(v) && !json_is_boolean(v)) {
        BAD(req, "stream", "'stream' must be a boolean");
        goto fail;
    }
    j->stream = json_is_true(v);
    v = json_object_get(body, "stream_options");
    if (v && json_is_object(v))
        j->include_usage = json_is_true(json_object_get(v, "include_usage"));
    v = json_object_get(body, "stop");
    if (v && !json_is_null(v)) {
        json_t *one = json_is_string(v) ? v : NULL;
        size_t cnt = one ? 1 : json_is_array(v) ? json_array_size(v) : 99;
        if (cnt > SRV_MAX_STOP) {
            BAD(req, "stop", "'stop' must be a string or an array of up to %d strings",
                SRV_MAX_STOP);
            goto fail;
        }
        for (size_t i = 0; i < cnt; i++) {
            json_t *e = one ? one : json_array_get(v, i);
            if (!json_is_string(e) || json_string_length(e) == 0) {
                BAD(req, "stop", "'stop' entries must be non-empty strings");
                goto fail;
            }
            j->stop_len[j->n_stop] = json_string_length(e);
            j->stop[j->n_stop] = strdup(json_string_value(e));
            if (j->stop_len[j->n_stop] > j->max_stop)
                j->max_stop = j->stop_len[j->n_stop];
            j->n_stop++;
        }
    }
    v = json_object_get(body, "cache_salt");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            BAD(req, "cache_salt", "'cache_salt' must be a non-empty string");
            goto fail;
        }
        j->salt = strdup(json_string_value(v));
    }
    json_decref(body);
    body = NULL;

    j->ev = event_new(s->base, -1, 0, job_notify, j);
    if (!j->ev) {
        srv_error(req, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%016llx%08lx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)++s->next_id, (unsigned long)random());
    j->req = req;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), job_on_close, j);
    if (j->stream) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, "OK");
    }
    j->all_next = s->all;
    if (s->all)
        s->all->all_prev = j;
    s->all = j;
    pthread_mutex_lock(&s->mmu);
    s->waiting++;
    pthread_mutex_unlock(&s->mmu);
    pthread_mutex_lock(&s->mu);
    if (s->qtail)
        s->qtail->next = j;
    else
        s->qhead = j;
    s->qtail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return;
fail:
    json_decref(body);
    job_destroy(j);
}

/* ---- small endpoints ---------------------------------------------------------- */

static void srv_tokenize(srv *s, struct evhttp_request *req)
{
    json_t *body = srv_body(req);
    if (!body)
        return;
    json_t *v = json_object_get(body, "add_special_tokens");
    int bos = !v || !json_is_false(v);
    int32_t *ids = NULL;
    long n;
    json_t *msgs = json_object_get(body, "messages");
    if (msgs) {
        sbuf text = {0};
        char err[160];
        if (srv_chat_prompt(msgs, &text, err, sizeof err)) {
            free(text.p);
            json_decref(body);
            BAD(req, "messages", "%s", err);
            return;
        }
        json_t *ps = json_stringn_nocheck(text.p, text.len);
        free(text.p);
        n = srv_prompt_ids(s, req, ps, bos, "messages", &ids);
        json_decref(ps);
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (!json_is_string(p)) {
            json_decref(body);
            BAD(req, "prompt", "'prompt' (a string) or 'messages' is required");
            return;
        }
        n = srv_prompt_ids(s, req, p, bos, "prompt", &ids);
    }
    json_decref(body);
    if (n < 0)
        return;
    json_t *arr = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    srv_send_json(req, 200, "OK",
                  json_pack("{s:i,s:i,s:o}", "count", (json_int_t)n, "max_model_len",
                            s->cfg->seq_len, "tokens", arr));
}

static void srv_detokenize(srv *s, struct evhttp_request *req)
{
    json_t *body = srv_body(req);
    if (!body)
        return;
    json_t *t = json_object_get(body, "tokens");
    if (!json_is_array(t)) {
        json_decref(body);
        BAD(req, "tokens", "'tokens' must be an array of token ids");
        return;
    }
    sbuf out = {0};
    size_t i;
    json_t *v;
    int32_t prev = -1;
    json_array_foreach(t, i, v)
    {
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || x >= s->cfg->vocab_size) {
            free(out.p);
            json_decref(body);
            BAD(req, "tokens", "tokens[%zu] is not a token id in [0, %d)", i, s->cfg->vocab_size);
            return;
        }
        char b[2];
        size_t len;
        const char *p = tok_piece(s->tok, prev, (int32_t)x, b, &len);
        sbuf_add(&out, p, len);
        prev = (int32_t)x;
    }
    json_decref(body);
    json_t *txt = srv_jstr(out.p ? out.p : "", out.len);
    free(out.p);
    srv_send_json(req, 200, "OK", json_pack("{s:o}", "prompt", txt));
}

static void srv_models(srv *s, struct evhttp_request *req)
{
    srv_send_json(req, 200, "OK",
                  json_pack("{s:s,s:[{s:s,s:s,s:i,s:s,s:i}]}", "object", "list", "data", "id",
                            s->p->model_name, "object", "model", "created", (json_int_t)0,
                            "owned_by", "llmcached", "max_model_len", s->cfg->seq_len));
}

static void srv_metric_hist(sbuf *o, const char *name, const char *help, const srv_hist *h,
                            const double *bounds, size_t nb, const char *mname)
{
    char line[256];
    int n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    sbuf_add(o, line, (size_t)n);
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        cum += h->counts[i];
        if (i < nb)
            n = snprintf(line, sizeof line, "%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", name,
                         bounds[i], mname, (unsigned long long)cum);
        else
            n = snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", name,
                         mname, (unsigned long long)cum);
        sbuf_add(o, line, (size_t)n);
    }
    n = snprintf(line, sizeof line,
                 "%s_sum{model_name=\"%s\"} %.9g\n%s_count{model_name=\"%s\"} %llu\n", name, mname,
                 h->sum, name, mname, (unsigned long long)h->n);
    sbuf_add(o, line, (size_t)n);
}

static void srv_metric(sbuf *o, const char *name, const char *type, const char *help,
                       const char *labels, const char *mname, double v)
{
    char line[512];
    char base[128];
    snprintf(base, sizeof base, "%s", name);
    size_t bl = strlen(base);
    if (!strcmp(type, "counter") && bl > 6 && !strcmp(base + bl - 6, "_total"))
        base[bl - 6] = 0; /* prometheus_client names the family without _total */
    int n =
        snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s{%smodel_name=\"%s\"} %.17g\n",
                 base, help, base, type, name, labels, mname, v);
    sbuf_add(o, line, (size_t)n);
}

static void srv_metrics(srv *s, struct evhttp_request *req)
{
    llmc_kvpool_stats ks;
    llmc_kvpool_get_stats(runner_pool(s->r), &ks);
    const char *m = s->p->model_name;
    sbuf o = {0};
    pthread_mutex_lock(&s->mmu);
    srv_metric(&o, "vllm:num_requests_running", "gauge",
               "Number of requests in model execution batches.", "", m, s->running);
    srv_metric(&o, "vllm:num_requests_waiting", "gauge",
               "Number of requests waiting to be processed.", "", m, s->waiting);
    srv_metric(&o, "vllm:kv_cache_usage_perc", "gauge",
               "KV-cache usage. 1 means 100 percent usage.", "", m,
               ks.blocks_total ? (double)ks.blocks_in_use / ks.blocks_total : 0.0);
    /* vLLM 0.x's name of the same gauge, so either generation's dashboards work */
    srv_metric(&o, "vllm:gpu_cache_usage_perc", "gauge",
               "GPU KV-cache usage. 1 means 100 percent usage.", "", m,
               ks.blocks_total ? (double)ks.blocks_in_use / ks.blocks_total : 0.0);
    {
        char lab[160];
        snprintf(lab, sizeof lab,
                 "block_size=\"%d\",enable_prefix_caching=\"%s\",num_gpu_blocks=\"%d\",",
                 llmc_kvpool_block_size(runner_pool(s->r)), s->p->prefix_caching ? "True" : "False",
                 ks.blocks_total);
        srv_metric(&o, "vllm:cache_config_info", "gauge",
                   "Information of the LLMEngine CacheConfig", lab, m, 1.0);
    }
    srv_metric(&o, "vllm:prefix_cache_queries_total", "counter",
               "Prefix cache queries, in terms of number of queried tokens.", "", m,
               (double)ks.queries_tokens);
    srv_metric(&o, "vllm:prefix_cache_hits_total", "counter",
               "Prefix cache hits, in terms of number of cached tokens.", "", m,
               (double)ks.hits_tokens);
    srv_metric(&o, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", "",
               m, (double)s->prompt_tokens);
    srv_metric(&o, "vllm:generation_tokens_total", "counter",
               "Number of generation tokens processed.", "", m, (double)s->gen_tokens);
    char line[256];
    int n = snprintf(line, sizeof line,
                     "# HELP vllm:request_success Count of successfully processed requests.\n"
                     "# TYPE vllm:request_success counter\n");
    sbuf_add(&o, line, (size_t)n);
    const char *reasons[3] = {"stop", "length", "abort"};
    uint64_t counts[3] = {s->ok_stop, s->ok_length, s->ok_abort};
    for (int i = 0; i < 3; i++) {
        n = snprintf(line, sizeof line,
                     "vllm:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} %llu\n",
                     reasons[i], m, (unsigned long long)counts[i]);
        sbuf_add(&o, line, (size_t)n);
    }
    srv_metric_hist(&o, "vllm:time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.", &s->ttft, ttft_bounds, N_TTFT,
                    m);
    srv_metric_hist(&o, "vllm:e2e_request_latency_seconds",
                    "Histogram of end to end request latency in seconds.", &s->e2e, e2e_bounds,
                    N_E2E, m);
    pthread_mutex_unlock(&s->mmu);
    srv_metric(&o, "llmcached_engine:kv_blocks_cached", "gauge",
               "KV blocks holding a reusable prefix (in use or free).", "", m, ks.blocks_cached);
    srv_metric(&o, "llmcached_engine:kv_block_evictions_total", "counter",
               "Cached KV blocks evicted for reuse.", "", m, (double)ks.evictions);
    struct evbuffer *b = evbuffer_new();
    if (b && o.p)
        evbuffer_add(b, o.p, o.len);
    free(o.p);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
}

/* POST /reset_prefix_cache (vLLM's): drop every cached block; refused with
 * 409 while requests hold blocks, so nothing running loses its prefix. */
static void srv_reset(srv *s, struct evhttp_request *req)
{
    int e = llmc_kvpool_reset(runner_pool(s->r));
    if (e == LLMC_EBUSY) {
        srv_error(req, 409, "invalid_request_error", NULL, "busy",
                  "requests are running; retry when the engine is idle");
        return;
    }
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void srv_handle(struct evhttp_request *req, void *arg)
{
    srv *s = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || !*path)
        path = "/";
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    static const struct {
        const char *path;
        int post;
    } routes[] = {{"/v1/completions", 1}, {"/v1/chat/completions", 1}, {"/tokenize", 1},
                  {"/detokenize", 1},     {"/v1/models", 0},           {"/health", 0},
                  {"/metrics", 0},        {"/reset_prefix_cache", 1}};
    int r = -1;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!strcmp(path, routes[i].path))
            r = (int)i;
    if (r < 0) {
        srv_error(req, 404, "invalid_request_error", NULL, "not_found", "no route for %s", path);
        return;
    }
    int want = routes[r].post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET;
    if (!(cmd & want) && !(cmd == EVHTTP_REQ_HEAD && want == EVHTTP_REQ_GET)) {
        srv_error(req, 405, "invalid_request_error", NULL, "method_not_allowed", "%s needs %s",
                  path, routes[r].post ? "POST" : "GET");
        return;
    }
    switch (r) {
    case 0:
        srv_generate(s, req, 0);
        break;
    case 1:
        srv_generate(s, req, 1);
        break;
    case 2:
        srv_tokenize(s, req);
        break;
    case 3:
        srv_detokenize(s, req);
        break;
    case 4:
        srv_models(s, req);
        break;
    case 5:
        evhttp_send_reply(req, 200, "OK", NULL);
        break;
    case 6:
        srv_metrics(s, req);
        break;
    default:
        srv_reset(s, req);
        break;
    }
}

static void srv_on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(arg, NULL);
}

int srv_run(const srv_params *p)
{
    srv s;
    memset(&s, 0, sizeof s);
    s.p = p;
    s.r = p->r;
    s.cfg = runner_config(p->r);
    s.tok = runner_tok(p->r);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_mutex_init(&s.mmu, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = LLMC_ENOMEM;
    struct event *sigint = NULL, *sigterm = NULL;
    if (evthread_use_pthreads() != 0)
        goto out;
    s.base = event_base_new();
    s.http = s.base ? evhttp_new(s.base) : NULL;
    if (!s.http)
        goto out;
    evhttp_set_max_body_size(s.http, SRV_MAX_BODY);
    evhttp_set_allowed_methods(s.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s.http, srv_handle, &s);
    const char *host = p->host ? p->host : "127.0.0.1";
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(s.http, host, (uint16_t)p->port);
    if (!bs) {
        fprintf(stderr, "llmcached-engine: cannot listen on %s:%d\n", host, p->port);
        rc = LLMC_EIO;
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int port = p->port;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    sigint = evsignal_new(s.base, SIGINT, srv_on_signal, s.base);
    sigterm = evsignal_new(s.base, SIGTERM, srv_on_signal, s.base);
    if (!sigint || !sigterm)
        goto out;
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    s.n_threads = p->workers > 0 ? p->workers : 2;
    s.threads = calloc((size_t)s.n_threads, sizeof *s.threads);
    if (!s.threads)
        goto out;
    for (int i = 0; i < s.n_threads; i++)
        if (pthread_create(&s.threads[i], NULL, srv_worker, &s) != 0) {
            s.n_threads = i;
            goto out;
        }
    printf("llmcached-engine: listening on http://%s:%d model %s\n", host, port, p->model_name);
    fflush(stdout);
    event_base_dispatch(s.base);
    rc = 0;
out:
    /* cancel queued and running jobs, stop the workers */
    pthread_mutex_lock(&s.mu);
    s.stopping = 1;
    for (job *j = s.all; j; j = j->all_next)
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    for (int i = 0; i < s.n_threads; i++)
        pthread_join(s.threads[i], NULL);
    free(s.threads);
    while (s.all) {
        job *j = s.all;
        if (j->req && j->gone)
            evhttp_request_free(j->req); /* detached: nobody else frees it */
        else if (j->req)
            job_forget_conn(j); /* evhttp_free frees it with its connection */
        job_destroy(j);
    }
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (s.http)
        evhttp_free(s.http);
    if (s.base)
        event_base_free(s.base);
    libevent_global_shutdown();
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mmu);
    return rc;
}
