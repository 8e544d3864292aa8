/*
 * embed_remote.c — the "remote" embedding backend: any OpenAI-compatible
 * embeddings endpoint (OpenAI, vLLM, TEI, llama.cpp server, Ollama's /v1).
 *
 * Protocol. One request per batch of at most max_batch texts:
 *
 *     POST {url}/embeddings
 *     Authorization: Bearer {api_key}          (only when a key is given)
 *     Content-Type: application/json
 *     {"model": "...", "input": ["text 0", "text 1", ...]}
 *
 * answered by
 *
 *     {"object":"list","data":[{"object":"embedding","index":0,
 *       "embedding":[0.1, ...]}, ...], "model":"...", "usage":{...}}
 *
 * The answer is checked, not trusted: `data` must hold exactly one entry
 * for each index 0..n-1 (any order; a missing, duplicate or out-of-range
 * index is an error), every embedding must be an array of numbers of the
 * backend's dimension, and none may be all zeros. Each vector is then
 * normalised to unit length (servers differ on whether they normalise).
 *
 * Dimension. The backend contract fixes `dim` at construction, and the
 * public API exposes it before any text is embedded, so the constructor
 * embeds one probe text ("dimension probe") and takes the dimension from
 * the answer. A wrong URL, key or model therefore fails llmc_embedder_new()
 * at start-up with a clear code instead of failing the first lookup.
 *
 * Failures and retries. A request is retried (at most `retries` times,
 * with exponential back-off 100 ms, 200 ms, 400 ms ... capped at 2 s, or
 * the server's Retry-After when it is given and shorter than 10 s) when it
 * could not be sent or answered (connection refused or reset, DNS),
 * timed out, or got 429 or 5xx. Other 4xx answers are the caller's fault
 * and are not retried. Errors: LLMC_ETIMEDOUT when the last attempt timed
 * out, LLMC_EUPSTREAM for everything else the server did (HTTP error,
 * malformed JSON, wrong count, index or dimension), LLMC_EEMPTY for an
 * empty or whitespace-only text (never sent: OpenAI rejects it with 400).
 *
 * Text length. The model's window is the server's business; a text the
 * server refuses as too long comes back as LLMC_EUPSTREAM. max_tokens is 0
 * (unknown) for this backend.
 *
 * Threads and blocking. Calls block the calling thread for up to
 * (retries + 1) * timeout_ms plus back-off: call it off the event loop
 * (a worker thread). The backend keeps one libcurl easy handle so the
 * connection is reused between calls; like every embedder it is used by
 * one thread at a time. libcurl's global init is done by curl_easy_init()
 * (thread-safe since libcurl 7.84, Debian 12 has 7.88).
 *
 * Ownership: the backend copies url, model and key; the response buffer
 * is reused between calls and bounded (REMOTE_MAX_BODY).
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "embed_impl.h"
#include "util.h"

#define REMOTE_MAX_BODY (256u << 20) /* refuse answers larger than 256 MiB */
#define REMOTE_BACKOFF_MS 100
#define REMOTE_BACKOFF_CAP_MS 2000
#define REMOTE_RETRY_AFTER_CAP_MS 10000
#define REMOTE_MAX_DIM 65536

typedef struct {
    embed_backend base; /* must be first */
    char *endpoint;     /* {url}/embeddings */
    char *model;
    char *auth_header; /* "Authorization: Bearer ...", or NULL */
    long timeout_ms;
    int retries;
    size_t max_batch;
    CURL *curl;
    struct curl_slist *headers;
    char *body; /* response buffer, reused */
    size_t body_len, body_cap;
    int body_overflow;
    long retry_after_ms; /* from the last response's Retry-After, or -1 */
} remote_backend;

static char *remote_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static size_t remote_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    remote_backend *r = ud;
    size_t n = size * nmemb;
    if (r->body_len + n + 1 > REMOTE_MAX_BODY) {
        r->body_overflow = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (llmc_grow((void **)&r->body, &r->body_cap, r->body_len + n + 1, 1))
        return 0;
    memcpy(r->body + r->body_len, ptr, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

/* Retry-After: delta-seconds only (the HTTP-date form is rare for APIs). */
static size_t remote_header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    remote_backend *r = ud;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
        const char *v = buf + sizeof name - 1;
        const char *end = buf + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        long secs = 0;
        int digits = 0;
        while (v < end && isdigit((unsigned char)*v) && secs < 1000000) {
            secs = secs * 10 + (*v - '0');
            v++;
            digits++;
        }
        if (digits)
            r->retry_after_ms = secs * 1000;
    }
    return n;
}

static void remote_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int remote_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Build the request body. Returns a malloc'd string or NULL (ENOMEM). */
static char *remote_request_json(const remote_backend *r, const char *const *texts,
                                 const size_t *lens, size_t n)
{
    json_t *root = json_object();
    json_t *input = json_array();
    char *s = NULL;
    if (!root || !input)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_stringn(texts[i] ? texts[i] : "", lens[i]);
        if (!t || json_array_append_new(input, t))
            goto out;
    }
    if (json_object_set_new(root, "model", json_string(r->model)))
        goto out;
    if (json_object_set(root, "input", input))
        goto out;
    s = json_dumps(root, JSON_COMPACT);
out:
    json_decref(input);
    json_decref(root);
    return s;
}

/*
 * Parse an answer for n texts into out (n * dim floats, unit vectors).
 * When r->base.dim is 0 (the construction probe) the dimension is taken
 * from the first embedding. Returns 0 or LLMC_EUPSTREAM / LLMC_ENOMEM.
 */
static int remote_parse(remote_backend *r, size_t n, float *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body ? r->body : "", r->body_len, 0, &jerr);
    int rc = LLMC_EUPSTREAM;
    unsigned char *seen = NULL;
    if (!root)
        return LLMC_EUPSTREAM;
    json_t *data = json_object_get(root, "data");
    if (!json_is_array(data) || json_array_size(data) != n)
        goto out;
    seen = calloc(n ? n : 1, 1);
    if (!seen) {
        rc = LLMC_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *item = json_array_get(data, k);
        json_t *jidx = json_object_get(item, "index");
        json_t *emb = json_object_get(item, "embedding");
        if (!json_is_integer(jidx) || !json_is_array(emb))
            goto out;
        json_int_t idx = json_integer_value(jidx);
        if (idx < 0 || (size_t)idx >= n || seen[idx])
            goto out;
        seen[idx] = 1;
        size_t d = json_array_size(emb);
        if (r->base.dim == 0) {
            if (d == 0 || d > REMOTE_MAX_DIM)
                goto out;
            r->base.dim = d;
        }
        if (d != r->base.dim)
            goto out;
        float *v = out + (size_t)idx * d;
        double ss = 0;
        for (size_t j = 0; j < d; j++) {
            json_t *x = json_array_get(emb, j);
            if (!json_is_number(x))
                goto out;
            double f = json_number_value(x);
            if (!isfinite(f))
                goto out;
            v[j] = (float)f;
            ss += f * f;
        }
        if (!(ss > 0) || !isfinite(ss))
            goto out;
        float inv = (float)(1.0 / sqrt(ss));
        for (size_t j = 0; j < d; j++)
            v[j] *= inv;
    }
    rc = 0;
out:
    free(seen);
    json_decref(root);
    return rc;
}

/*
 * One request for n texts with retries. out: n * dim floats, or, for the
 * probe (dim == 0), room for REMOTE_MAX_DIM floats.
 */
static int remote_request(remote_backend *r, const char *const *texts, const size_t *lens, size_t n,
                          float *out)
{
    char *req = remote_request_json(r, texts, lens, n);
    if (!req)
        return LLMC_ENOMEM;
    int rc = LLMC_EUPSTREAM;
    long backoff = REMOTE_BACKOFF_MS;
    for (int attempt = 0;; attempt++) {
        int retryable = 0;
        r->body_len = 0;
        r->body_overflow = 0;
        r->retry_after_ms = -1;
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, req);
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req));
        CURLcode cc = curl_easy_perform(r->curl);
        long status = 0;
        if (cc == CURLE_OK) {
            curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
            if (status >= 200 && status < 300) {
                rc = remote_parse(r, n, out);
                break; /* a malformed 2xx answer is not retried */
            }
            rc = LLMC_EUPSTREAM;
            retryable = status == 429 || status >= 500;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            rc = LLMC_ETIMEDOUT;
            retryable = 1;
        } else if (cc == CURLE_WRITE_ERROR && r->body_overflow) {
            rc = LLMC_EUPSTREAM;
        } else if (cc == CURLE_OUT_OF_MEMORY) {
            rc = LLMC_ENOMEM;
        } else {
            /* couldn't connect/resolve, reset, empty reply, TLS... */
            rc = LLMC_EUPSTREAM;
            retryable = cc != CURLE_URL_MALFORMAT && cc != CURLE_UNSUPPORTED_PROTOCOL;
        }
        if (!retryable || attempt >= r->retries)
            break;
        long wait = backoff;
        if (r->retry_after_ms >= 0 && r->retry_after_ms <= REMOTE_RETRY_AFTER_CAP_MS)
            wait = r->retry_after_ms;
        remote_sleep_ms(wait);
        backoff = backoff * 2 > REMOTE_BACKOFF_CAP_MS ? REMOTE_BACKOFF_CAP_MS : backoff * 2;
    }
    free(req);
    return rc;
}

static int remote_embed_batch(embed_backend *b, const char *const *texts, const size_t *lens,
                              size_t n, float *out)
{
    remote_backend *r = (remote_backend *)b;
    for (size_t i = 0; i < n; i++)
        if (remote_is_blank(texts[i], lens[i]))
            return LLMC_EEMPTY;
    for (size_t i = 0; i < n; i += r->max_batch) {
        size_t m = n - i < r->max_batch ? n - i : r->max_batch;
        int rc = remote_request(r, texts + i, lens + i, m, out + i * r->base.dim);
        if (rc)
            return rc;
    }
    return 0;
}

static void remote_free(embed_backend *b)
{
    remote_backend *r = (remote_backend *)b;
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    free(r->endpoint);
    free(r->model);
    free(r->auth_header);
    free(r->body);
    free(r);
}

/* Contract: see embed_impl.h. Needs p->url and p->model; embeds a probe
 * text to learn the dimension (see the file comment). */
embed_backend *embed_remote_new(const llmc_embed_params *p, int *err)
{
    int e = LLMC_ENOMEM;
    remote_backend *r = NULL;
    float *probe_out = NULL;
    if (!p || !p->url || !p->url[0] || !p->model || !p->model[0]) {
        e = LLMC_EINVAL;
        goto fail;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    size_t ul = strlen(p->url);
    while (ul > 0 && p->url[ul - 1] == '/')
        ul--;
    r->endpoint = malloc(ul + sizeof "/embeddings");
    if (!r->endpoint)
        goto fail;
    memcpy(r->endpoint, p->url, ul);
    memcpy(r->endpoint + ul, "/embeddings", sizeof "/embeddings");
    r->model = remote_strdup(p->model);
    if (!r->model)
        goto fail;
    r->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : 10000;
    r->retries = p->retries >= 0 ? p->retries : 0;
    r->max_batch = p->max_batch > 0 ? (size_t)p->max_batch : 32;
    r->base.model = r->model;
    r->base.dim = 0;
    r->base.max_tokens = 0;
    r->base.embed_batch = remote_embed_batch;
    r->base.free = remote_free;

    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h)
        goto fail;
    r->headers = h;
    if (!(h = curl_slist_append(r->headers, "Accept: application/json")))
        goto fail;
    if (p->api_key && p->api_key[0]) {
        static const char pre[] = "Authorization: Bearer ";
        size_t kl = strlen(p->api_key);
        if (memchr(p->api_key, '\r', kl) || memchr(p->api_key, '\n', kl)) {
            e = LLMC_EINVAL; /* would split the header */
            goto fail;
        }
        r->auth_header = malloc(sizeof pre + kl);
        if (!r->auth_header)
            goto fail;
        memcpy(r->auth_header, pre, sizeof pre - 1);
        memcpy(r->auth_header + sizeof pre - 1, p->api_key, kl + 1);
        if (!(h = curl_slist_append(r->headers, r->auth_header)))
            goto fail;
    }
    r->curl = curl_easy_init();
    if (!r->curl)
        goto fail;
    CURL *c = r->curl;
    if (curl_easy_setopt(c, CURLOPT_URL, r->endpoint) != CURLE_OK) {
        e = LLMC_EINVAL;
        goto fail;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, remote_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, remote_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we run on worker threads */
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "llmcached/" LLMC_VERSION);

    probe_out = malloc(REMOTE_MAX_DIM * sizeof *probe_out);
    if (!probe_out)
        goto fail;
    static const char probe[] = "dimension probe";
    const char *pt = probe;
    size_t pl = sizeof probe - 1;
    e = remote_request(r, &pt, &pl, 1, probe_out);
    if (e)
        goto fail;
    free(probe_out);
    return &r->base;
fail:
    free(probe_out);
    remote_free(r ? &r->base : NULL);
    if (err)
        *err = e;
    return NULL;
}
