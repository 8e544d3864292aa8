/*
 * test_embed_remote.c — the "remote" embedder against a mock
 * OpenAI-compatible embeddings server.
 *
 * The mock is a real HTTP server (libevent evhttp) on 127.0.0.1, on its own
 * thread, speaking the protocol: it parses the JSON request, checks the
 * model and that `input` is an array of strings, records the Authorization
 * header and the batch size, and answers with one deterministic, not
 * normalised vector per text, listed in reverse order so that the client
 * must use `index`. Scripted faults: the first N requests answer a given
 * status (500, 429 with Retry-After, 400), a slow answer (timeout),
 * malformed JSON, a duplicate index, a wrong count, a wrong dimension.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>

#include "llmcache.h"
#include "unit.h"

#define MOCK_DIM 16

enum { MOCK_OK, MOCK_MALFORMED, MOCK_DUP_INDEX, MOCK_SHORT, MOCK_BAD_DIM, MOCK_ZERO };

typedef struct {
    struct event_base *base;
    struct evhttp *http;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    /* script (set by the test between calls) */
    int mode;
    int fail_n;      /* the next fail_n requests answer fail_status */
    int fail_status; /* e.g. 500, 429, 400 */
    int delay_ms;    /* sleep before answering */
    /* observations */
    int requests;
    int max_batch_seen;
    int last_batch;
    char last_auth[128];
    char last_path[64];
} mock_server;

static uint64_t mock_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The mock's vector for a text (not unit length). */
static void mock_vector(const char *s, size_t n, float *v)
{
    uint64_t h = mock_hash(s, n);
    for (int j = 0; j < MOCK_DIM; j++) {
        v[j] = (float)((int)((h >> (j * 4)) & 0xf) - 7) + 0.25f * (float)j;
        h = h * 6364136223846793005ull + 1442695040888963407ull;
    }
}

static void mock_reply(struct evhttp_request *req, int code, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, "X", b);
    evbuffer_free(b);
}

static void mock_handle(struct evhttp_request *req, void *arg)
{
    mock_server *m = arg;
    pthread_mutex_lock(&m->mu);
    m->requests++;
    int mode = m->mode, delay = m->delay_ms, fail = 0;
    if (m->fail_n > 0) {
        m->fail_n--;
        fail = m->fail_status;
    }
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    snprintf(m->last_auth, sizeof m->last_auth, "%s", auth ? auth : "");
    snprintf(m->last_path, sizeof m->last_path, "%s", evhttp_request_get_uri(req));
    pthread_mutex_unlock(&m->mu);

    if (delay)
        usleep((useconds_t)delay * 1000);
    if (fail) {
        if (fail == 429)
            evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "0");
        mock_reply(req, fail, "{\"error\":{\"message\":\"scripted failure\"}}");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST ||
        strcmp(evhttp_request_get_uri(req), "/v1/embeddings") != 0) {
        mock_reply(req, 404, "{\"error\":{\"message\":\"not found\"}}");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    json_t *rq = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
    json_t *input = json_object_get(rq, "input");
    json_t *model = json_object_get(rq, "model");
    if (!json_is_array(input) || !json_is_string(model) ||
        strcmp(json_string_value(model), "mock-embed") != 0) {
        json_decref(rq);
        mock_reply(req, 400, "{\"error\":{\"message\":\"bad request\"}}");
        return;
    }
    size_t n = json_array_size(input);
    pthread_mutex_lock(&m->mu);
    m->last_batch = (int)n;
    if ((int)n > m->max_batch_seen)
        m->max_batch_seen = (int)n;
    pthread_mutex_unlock(&m->mu);
    if (mode == MOCK_MALFORMED) {
        json_decref(rq);
        mock_reply(req, 200, "{\"data\":[{\"index\":0,\"embedding\":[0.1,");
        return;
    }
    json_t *data = json_array();
    size_t emit = mode == MOCK_SHORT && n > 0 ? n - 1 : n;
    for (size_t k = 0; k < emit; k++) {
        size_t i = n - 1 - k; /* reverse order */
        json_t *t = json_array_get(input, i);
        if (!json_is_string(t)) {
            json_decref(data);
            json_decref(rq);
            mock_reply(req, 400, "{\"error\":{\"message\":\"input must be strings\"}}");
            return;
        }
        float v[MOCK_DIM];
        mock_vector(json_string_value(t), json_string_length(t), v);
        int dim = MOCK_DIM;
        if (mode == MOCK_BAD_DIM && k == emit - 1)
            dim = MOCK_DIM - 1;
        json_t *e = json_array();
        for (int j = 0; j < dim; j++)
            json_array_append_new(e, json_real(mode == MOCK_ZERO ? 0.0 : v[j]));
        json_t *it = json_object();
        json_object_set_new(it, "object", json_string("embedding"));
        json_object_set_new(it, "index",
                            json_integer(mode == MOCK_DUP_INDEX && n > 1 ? 0 : (json_int_t)i));
        json_object_set_new(it, "embedding", e);
        json_array_append_new(data, it);
    }
    json_t *resp = json_object();
    json_object_set_new(resp, "object", json_string("list"));
    json_object_set_new(resp, "data", data);
    json_object_set_new(resp, "model", json_string("mock-embed"));
    char *s = json_dumps(resp, JSON_COMPACT);
    mock_reply(req, 200, s);
    free(s);
    json_decref(resp);
    json_decref(rq);
}

static void *mock_thread(void *arg)
{
    mock_server *m = arg;
    event_base_dispatch(m->base);
    return NULL;
}

static int mock_start(mock_server *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->base = event_base_new();
    m->http = evhttp_new(m->base);
    if (!m->base || !m->http)
        return -1;
    evhttp_set_gencb(m->http, mock_handle, m);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(m->http, "127.0.0.1", 0);
    if (!bs)
        return -1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    m->port = ntohs(sa.sin_port);
    return pthread_create(&m->th, NULL, mock_thread, m);
}

static void mock_stop(mock_server *m)
{
    event_base_loopbreak(m->base);
    pthread_join(m->th, NULL);
    evhttp_free(m->http);
    event_base_free(m->base);
    pthread_mutex_destroy(&m->mu);
}

static void mock_script(mock_server *m, int mode, int fail_n, int fail_status, int delay_ms)
{
    pthread_mutex_lock(&m->mu);
    m->mode = mode;
    m->fail_n = fail_n;
    m->fail_status = fail_status;
    m->delay_ms = delay_ms;
    m->requests = 0;
    m->max_batch_seen = 0;
    pthread_mutex_unlock(&m->mu);
}

static int mock_requests(mock_server *m)
{
    pthread_mutex_lock(&m->mu);
    int r = m->requests;
    pthread_mutex_unlock(&m->mu);
    return r;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The vector the client must return for text s: the mock's, normalised. */
static int matches_mock(const char *s, const float *got)
{
    float v[MOCK_DIM];
    mock_vector(s, strlen(s), v);
    double ss = 0, dot = 0, gg = 0;
    for (int j = 0; j < MOCK_DIM; j++)
        ss += (double)v[j] * v[j];
    for (int j = 0; j < MOCK_DIM; j++) {
        double e = v[j] / sqrt(ss);
        if (fabs(e - got[j]) > 1e-5)
            return 0;
        dot += e * got[j];
        gg += (double)got[j] * got[j];
    }
    return fabs(gg - 1.0) < 1e-5 && dot > 0.99999;
}

static llmc_embedder *open_remote(mock_server *m, const char *url_suffix, int timeout_ms,
                                  int retries, int max_batch, int *err)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", m->port, url_suffix);
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "remote";
    p.url = url;
    p.model = "mock-embed";
    p.api_key = "sk-test-123";
    p.timeout_ms = timeout_ms;
    p.retries = retries;
    p.max_batch = max_batch;
    return llmc_embedder_new(&p, err);
}

static void test_success_and_batching(mock_server *m)
{
    mock_script(m, MOCK_OK, 0, 0, 0);
    int err = 0;
    llmc_embedder *e = open_remote(m, "/v1/", 2000, 2, 3, &err);
    CHECK(e != NULL);
    if (!e) {
        fprintf(stderr, "open: %s\n", llmc_strerror(err));
        return;
    }
    CHECK_EQ_INT(mock_requests(m), 1); /* the dimension probe */
    CHECK_EQ_INT(llmc_embedder_dim(e), MOCK_DIM);
    CHECK(strcmp(llmc_embedder_model(e), "mock-embed") == 0);
    CHECK(strcmp(m->last_auth, "Bearer sk-test-123") == 0);
    CHECK(strcmp(m->last_path, "/v1/embeddings") == 0);

    float out[10 * MOCK_DIM];
    const char *one = "hello world";
    mock_script(m, MOCK_OK, 0, 0, 0);
    CHECK_EQ_INT(llmc_embed(e, one, strlen(one), out), 0);
    CHECK(matches_mock(one, out));
    CHECK_EQ_INT(mock_requests(m), 1);

    /* 10 texts, max_batch 3 → 4 requests of at most 3; unicode and JSON
     * specials survive the round trip (the mock hashes what it decoded). */
    const char *texts[10] = {
        "a", "b \"quoted\"", "ünïcödé ✓ 日本", "tab\there", "new\nline", "f", "back\\slash", "h",
        "i", "the tenth"};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = strlen(texts[i]);
    mock_script(m, MOCK_OK, 0, 0, 0);
    CHECK_EQ_INT(llmc_embed_batch(e, texts, lens, 10, out), 0);
    CHECK_EQ_INT(mock_requests(m), 4);
    CHECK_EQ_INT(m->max_batch_seen, 3);
    for (int i = 0; i < 10; i++)
        CHECK(matches_mock(texts[i], out + i * MOCK_DIM));

    /* Empty and whitespace-only texts are refused without a request. */
    mock_script(m, MOCK_OK, 0, 0, 0);
    CHECK_EQ_INT(llmc_embed(e, "", 0, out), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, " \t\n ", 4, out), LLMC_EEMPTY);
    CHECK_EQ_INT(mock_requests(m), 0);
    /* Invalid UTF-8 is refused by the common layer. */
    CHECK_EQ_INT(llmc_embed(e, "\xff\xfe", 2, out), LLMC_EUTF8);
    CHECK_EQ_INT(mock_requests(m), 0);
    llmc_embedder_free(e);
}

static void test_retries(mock_server *m)
{
    int err = 0;
    mock_script(m, MOCK_OK, 0, 0, 0);
    llmc_embedder *e = open_remote(m, "/v1", 2000, 2, 32, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    float out[MOCK_DIM];
    const char *t = "retry me";

    /* 500 then success: retried once. */
    mock_script(m, MOCK_OK, 1, 500, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), 0);
    CHECK_EQ_INT(mock_requests(m), 2);
    CHECK(matches_mock(t, out));

    /* 429 (Retry-After: 0) twice then success: within retries = 2. */
    mock_script(m, MOCK_OK, 2, 429, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), 0);
    CHECK_EQ_INT(mock_requests(m), 3);

    /* 503 forever: 1 + 2 retries, then an upstream error. */
    mock_script(m, MOCK_OK, 100, 503, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), LLMC_EUPSTREAM);
    CHECK_EQ_INT(mock_requests(m), 3);

    /* 400: the caller's fault, not retried. */
    mock_script(m, MOCK_OK, 1, 400, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), LLMC_EUPSTREAM);
    CHECK_EQ_INT(mock_requests(m), 1);

    /* 401 likewise. */
    mock_script(m, MOCK_OK, 1, 401, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), LLMC_EUPSTREAM);
    CHECK_EQ_INT(mock_requests(m), 1);

    /* And it still works afterwards. */
    mock_script(m, MOCK_OK, 0, 0, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), 0);
    CHECK(matches_mock(t, out));
    llmc_embedder_free(e);
}

static void test_timeout(mock_server *m)
{
    int err = 0;
    mock_script(m, MOCK_OK, 0, 0, 0);
    llmc_embedder *e = open_remote(m, "/v1", 200, 1, 32, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    float out[MOCK_DIM];
    const char *t = "slow";
    mock_script(m, MOCK_OK, 0, 0, 500);
    double t0 = now_ms();
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), LLMC_ETIMEDOUT);
    double dt = now_ms() - t0;
    CHECK(dt >= 2 * 200 - 20); /* two attempts, each waited for the timeout */
    CHECK(dt < 3000);
    /* Let the mock finish its sleeps before scripting it again (the
     * second attempt may or may not reach its handler: the client hung up). */
    usleep(1500 * 1000);
    CHECK(mock_requests(m) >= 1);
    mock_script(m, MOCK_OK, 0, 0, 0);
    CHECK_EQ_INT(llmc_embed(e, t, strlen(t), out), 0);
    CHECK(matches_mock(t, out));
    llmc_embedder_free(e);
}

static void test_bad_answers(mock_server *m)
{
    int err = 0;
    mock_script(m, MOCK_OK, 0, 0, 0);
    llmc_embedder *e = open_remote(m, "/v1", 2000, 2, 32, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    float out[3 * MOCK_DIM];
    const char *texts[3] = {"one", "two", "three"};
    size_t lens[3] = {3, 3, 5};
    static const int modes[] = {MOCK_MALFORMED, MOCK_DUP_INDEX, MOCK_SHORT, MOCK_BAD_DIM,
                                MOCK_ZERO};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        mock_script(m, modes[k], 0, 0, 0);
        CHECK_EQ_INT(llmc_embed_batch(e, texts, lens, 3, out), LLMC_EUPSTREAM);
        CHECK_EQ_INT(mock_requests(m), 1); /* a bad 2xx answer is not retried */
    }
    mock_script(m, MOCK_OK, 0, 0, 0);
    CHECK_EQ_INT(llmc_embed_batch(e, texts, lens, 3, out), 0);
    for (int i = 0; i < 3; i++)
        CHECK(matches_mock(texts[i], out + i * MOCK_DIM));
    llmc_embedder_free(e);
}

static void test_open_errors(mock_server *m)
{
    int err = 0;
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "remote";
    CHECK(llmc_embedder_new(&p, &err) == NULL); /* no url, no model */
    CHECK_EQ_INT(err, LLMC_EINVAL);

    /* Wrong path: the probe gets 404 → upstream error, no retry. */
    mock_script(m, MOCK_OK, 0, 0, 0);
    err = 0;
    CHECK(open_remote(m, "/nope", 2000, 2, 32, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EUPSTREAM);
    CHECK_EQ_INT(mock_requests(m), 1);

    /* Probe answered malformed JSON. */
    mock_script(m, MOCK_MALFORMED, 0, 0, 0);
    err = 0;
    CHECK(open_remote(m, "/v1", 2000, 2, 32, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EUPSTREAM);

    /* Nothing listening: connection refused, retried, then an error. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int port = 0;
    if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(s, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (s >= 0)
        close(s); /* bound but never listened: the port refuses */
    if (port) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
        llmc_embed_params q = llmc_embed_default_params();
        q.backend = "remote";
        q.url = url;
        q.model = "mock-embed";
        q.retries = 1;
        err = 0;
        double t0 = now_ms();
        CHECK(llmc_embedder_new(&q, &err) == NULL);
        CHECK_EQ_INT(err, LLMC_EUPSTREAM);
        CHECK(now_ms() - t0 >= 90); /* one back-off of 100 ms */
    }

    /* A key that would split the header is refused. */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", m->port);
    llmc_embed_params q = llmc_embed_default_params();
    q.backend = "remote";
    q.url = url;
    q.model = "mock-embed";
    q.api_key = "sk\r\nX-Evil: 1";
    err = 0;
    CHECK(llmc_embedder_new(&q, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
}

int main(void)
{
    mock_server m;
    evthread_use_pthreads();
    if (mock_start(&m) != 0) {
        fprintf(stderr, "cannot start the mock server\n");
        CHECK(0);
        return UNIT_DONE();
    }
    test_success_and_batching(&m);
    test_retries(&m);
    test_timeout(&m);
    test_bad_answers(&m);
    test_open_errors(&m);
    mock_stop(&m);
    libevent_global_shutdown();
    return UNIT_DONE();
}
