/*
 * conn.c — client connections: limits, timeouts, and libevent's own error
 * replies, so that a slow or hostile client costs a bounded amount and
 * every error the daemon sends is OpenAI-style JSON.
 *
 * libevent 2.1's evhttp has a header-size limit but no header-read timeout
 * (its timeout restarts on every byte, so one byte a second holds a
 * connection forever), no connection cap, and answers its own errors (bad
 * request line, body over the limit, unknown method) with an HTML page and
 * no hook to change it (evhttp_set_errorcb is 2.2). So:
 *
 *  - Every accepted connection gets, through evhttp_set_bevcb, a socket
 *    bufferevent we made, with a callback on its input buffer that watches
 *    the bytes evhttp is given (it changes nothing: evhttp still parses
 *    everything). It notes where a request's header section starts and
 *    ends (the blank line, nothing else), and the first bytes of its body.
 *    evhttp's own header-size limit is set to --max-header-size; the header
 *    count is checked when the request is complete (it is bounded by the
 *    size). We hold a reference on the bufferevent, so it outlives evhttp's
 *    free: a freed one has no event callback left, and the sweep then lets
 *    go.
 *  - A client that closes its connection while its request is being
 *    answered has given up: evhttp 2.1 does not read the socket then, so it
 *    would learn of it only when the answer is written, and the upstream
 *    call would run on for nobody. The sweep peeks at the socket of every
 *    connection with a request in progress; at its end (or on an error) it
 *    tells evhttp the input ended, which detaches the request and frees the
 *    connection, and the request's close callback (a flight, the semantic
 *    queue, a fetch) lets go: a flight nobody waits for is aborted. A
 *    client that half-closes after its request is taken as gone too, as
 *    nginx does.
 *  - A sweep timer per loop (every 250 ms) closes what has been too slow:
 *    a request whose header section is not complete --header-timeout after
 *    its first byte (408), a half-received body silent for --idle-timeout
 *    (408), a connection with no request being answered that sent nothing
 *    for --idle-timeout (closed quietly), and one over --max-connections
 *    (503 when it speaks).
 *  - These replies are written on the socket directly (they are tiny: one
 *    non-blocking send always takes them), the write side is shut, and evhttp
 *    is told the input ended, so it frees the connection.
 *  - evhttp_send_error, which libevent calls (through its PLT: ELF symbol
 *    interposition, checked by the tests) for the errors it finds itself,
 *    is defined here: the same status, with a JSON body (431 for headers
 *    over the limit, which evhttp calls 413). The malformed chunk size that
 *    evhttp also reports as "too long" is told apart by reading the first
 *    chunk-size line, which the input watcher kept.
 *
 * Invariants: a conn belongs to the loop whose evhttp accepted it and is
 * touched only on that loop's thread (the input watcher, the sweep,
 * http_handle and libevent's error path all run there); conn_by_fd[fd] is
 * the conn of socket fd from its first byte until the sweep lets it go. The one file-static state
 * (the srv, the fd table, the open count) exists because libevent's error
 * path gives evhttp_send_error no user pointer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "server.h"

enum { CONN_HEADERS, CONN_BODY, CONN_REFUSED };

struct conn {
    srv_loop *l;
    struct bufferevent *bev;  /* evhttp's, made by conn_bevcb; we hold a reference */
    struct conn *prev, *next; /* the loop's list */
    int fd;                   /* -1 until the first byte */
    int phase;
    int over_cap;   /* accepted beyond --max-connections */
    int busy;       /* requests handed to http_handle and not yet answered */
    int chunk_seen; /* bytes of the body's start kept in chunk_head */
    double opened, last_in, req_start;
    size_t hdr_bytes, line_len;
    unsigned hdr_lines;
    char chunk_head[40]; /* the body's first bytes: the first chunk-size line */
};

static srv *conn_srv;
static struct conn **conn_by_fd;
static size_t conn_by_fd_n;
static atomic_int conn_open;

int conn_count(void)
{
    return atomic_load(&conn_open);
}

/* The JSON error body every reply of this file carries. Caller frees. */
static char *conn_error_json(const char *type, const char *msg)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type", type, "param",
                          "code", type);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return js;
}

/* evhttp let go of c's connection: forget it. On c's loop, from the sweep. */
static void conn_release(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->fd >= 0 && (size_t)c->fd < conn_by_fd_n && conn_by_fd[c->fd] == c)
        conn_by_fd[c->fd] = NULL;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bufferevent_decref(c->bev); /* the last reference: closes the socket */
    atomic_fetch_sub(&conn_open, 1);
    free(c);
}

/* Answer on the socket itself, shut its write side, and tell evhttp the
 * input ended: it frees the connection (and the sweep then c). Only from
 * the sweep, never inside one of evhttp's callbacks. */
/* Write a whole error reply on socket fd and shut its write side. */
static void conn_write_error(int fd, int status, const char *phrase, const char *type,
                             const char *msg)
{
    char *js = status ? conn_error_json(type, msg) : NULL;
    if (fd >= 0 && js) {
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %d %s\r\nServer: llmcached/" LLMC_VERSION
                         "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n",
                         status, phrase, strlen(js));
        struct iovec iov[2] = {{head, (size_t)n}, {js, strlen(js)}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* a socket with nothing unsent always takes ~300 bytes */
        srv_log(LOG_DEBUG, "connection closed with %d: %s", status, msg);
    }
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    free(js);
}

static void conn_refuse(struct conn *c, int status, const char *phrase, const char *type,
                        const char *msg)
{
    conn_write_error(bufferevent_getfd(c->bev), status, phrase, type, msg);
    c->phase = CONN_REFUSED;
    bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

/* The client of a connection with a request in progress closed it (or the
 * socket failed): a peek finds its end. Pipelined bytes still unread hide
 * it until they are read. */
static int conn_peer_gone(struct conn *c)
{
    int fd = bufferevent_getfd(c->bev);
    char b;
    if (fd < 0)
        return 0;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Count the header section of the request being read in [p, p+n); returns
 * how many bytes belong to it (n when it has not ended). */
static size_t conn_scan_headers(struct conn *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        c->hdr_bytes++;
        if (ch == '\n') {
            if (c->line_len == 0 && c->hdr_lines > 0) { /* the blank line: headers end */
                c->phase = CONN_BODY;
                c->chunk_seen = 0;
                c->chunk_head[0] = 0;
                return i + 1;
            }
            if (c->line_len)
                c->hdr_lines++; /* blank lines before the request line are ignored */
            c->line_len = 0;
        } else if (ch != '\r') {
            c->line_len++;
        }
    }
    return n;
}

/* The input watcher: bytes were added to the connection's input buffer
 * (they are its last n_added bytes). Watches, changes nothing. */
static void conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (!info->n_added || c->phase == CONN_REFUSED)
        return;
    double now = srv_now();
    c->last_in = now;
    if (c->fd < 0) {
        c->fd = bufferevent_getfd(c->bev);
        if (c->fd >= 0 && (size_t)c->fd < conn_by_fd_n)
            conn_by_fd[c->fd] = c;
    }
    size_t len = evbuffer_get_length(buf);
    size_t off = len >= info->n_added ? len - info->n_added : 0;
    while (off < len) {
        struct evbuffer_ptr pos;
        struct evbuffer_iovec v;
        if (evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) ||
            evbuffer_peek(buf, (ev_ssize_t)(len - off), &pos, &v, 1) < 1)
            break;
        size_t n = v.iov_len < len - off ? v.iov_len : len - off;
        if (c->phase == CONN_HEADERS) {
            if (c->hdr_bytes == 0)
                c->req_start = now;
            off += conn_scan_headers(c, v.iov_base, n);
        } else { /* body: keep its first bytes for conn_chunk_error */
            size_t k = sizeof c->chunk_head - 1 - (size_t)c->chunk_seen;
            if (k > n)
                k = n;
            memcpy(c->chunk_head + c->chunk_seen, v.iov_base, k);
            c->chunk_seen += (int)k;
            c->chunk_head[c->chunk_seen] = 0;
            break; /* the rest of the body is evhttp's business */
        }
    }
}

static struct bufferevent *conn_bevcb(struct event_base *base, void *arg)
{
    srv_loop *l = arg;
    struct conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev || !evbuffer_add_cb(bufferevent_get_input(bev), conn_input_cb, c)) {
        if (bev)
            bufferevent_free(bev);
        free(c);
        return NULL; /* evhttp makes its own: this connection goes unwatched */
    }
    bufferevent_incref(bev); /* ours, dropped by conn_release */
    c->l = l;
    c->bev = bev;
    c->fd = -1;
    c->opened = c->last_in = srv_now();
    int n = atomic_fetch_add(&conn_open, 1) + 1;
    c->over_cap = l->s->cfg.max_connections > 0 && n > l->s->cfg.max_connections;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    return bev;
}

static void conn_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_loop *l = arg;
    srv *s = l->s;
    double now = srv_now();
    double ht = (double)s->cfg.header_timeout_ms / 1000.0;
    double it = (double)s->cfg.idle_timeout_ms / 1000.0;
    struct conn *next;
    for (struct conn *c = l->conns; c; c = next) {
        next = c->next;
        bufferevent_event_cb ecb = NULL;
        bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
        if (!ecb) { /* evhttp freed it (it always sets an event callback while it
                     * uses one; the read callback is unset while it writes) */
            conn_release(c);
            continue;
        }
        if (c->phase == CONN_REFUSED)
            continue;
        if (c->busy) {
            if (conn_peer_gone(c)) {
                srv_log(LOG_DEBUG, "client closed its connection before the answer");
                c->phase = CONN_REFUSED;
                bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
            }
            continue;
        }
        if (c->over_cap) {
            /* A request is answered 503 by conn_request_begin; a client
             * over the cap that does not send one within --header-timeout
             * (or a second) is closed. */
            if (now - c->opened > (ht > 0 && ht < 1.0 ? ht : 1.0) && !c->hdr_bytes)
                conn_refuse(c, 0, NULL, NULL, NULL);
            else if (c->hdr_bytes && ht > 0 && now - c->req_start > ht)
                conn_refuse(c, 0, NULL, NULL, NULL);
        } else if (c->phase == CONN_HEADERS && c->hdr_bytes && ht > 0 && now - c->req_start > ht) {
            char msg[160];
            snprintf(msg, sizeof msg, "request headers not received within --header-timeout (%gs)",
                     ht);
            conn_refuse(c, 408, "Request Timeout", "timeout", msg);
        } else if (it > 0 && now - c->last_in > it) {
            if (c->phase == CONN_BODY) {
                char msg[160];
                snprintf(msg, sizeof msg, "request body stalled for --idle-timeout (%gs)", it);
                conn_refuse(c, 408, "Request Timeout", "timeout", msg);
            } else if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
                conn_refuse(c, 0, NULL, NULL, NULL); /* idle keep-alive connection */
            }
        }
    }
}

int conn_init(srv *s)
{
    conn_srv = s;
    struct rlimit rl;
    size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > n)
        n = rl.rlim_cur > (1u << 22) ? (1u << 22) : (size_t)rl.rlim_cur;
    conn_by_fd = calloc(n, sizeof *conn_by_fd);
    if (!conn_by_fd)
        return -1;
    conn_by_fd_n = n;
    return 0;
}

void conn_free_all(void)
{
    free(conn_by_fd);
    conn_by_fd = NULL;
    conn_by_fd_n = 0;
    conn_srv = NULL;
}

int conn_loop_init(srv_loop *l)
{
    srv *s = l->s;
    evhttp_set_bevcb(l->http, conn_bevcb, l);
    evhttp_set_max_headers_size(l->http, (ev_ssize_t)s->cfg.max_header_size);
    l->conn_sweep = event_new(l->base, -1, EV_PERSIST, conn_sweep_cb, l);
    struct timeval tv = {0, 250000};
    return l->conn_sweep ? event_add(l->conn_sweep, &tv) : -1;
}

void conn_loop_free(srv_loop *l)
{
    /* evhttp_free has freed every connection: let go of what we held. */
    while (l->conns)
        conn_release(l->conns);
    if (l->conn_sweep)
        event_free(l->conn_sweep);
    l->conn_sweep = NULL;
}

static struct conn *conn_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || (size_t)fd >= conn_by_fd_n)
        return NULL;
    struct conn *c = conn_by_fd[fd];
    return c && c->bev == bev ? c : NULL;
}

static void conn_request_done(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;
    if (c->busy > 0)
        c->busy--;
    c->last_in = srv_now(); /* idle time counts from the end of the answer */
}

int conn_request_begin(struct evhttp_request *req)
{
    struct conn *c = conn_of(req);
    if (c && c->over_cap) {
        char msg[160];
        snprintf(msg, sizeof msg, "too many connections (--max-connections %lld); retry later",
                 conn_srv ? conn_srv->cfg.max_connections : 0);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        reply_error(req, 503, "server_overloaded", msg);
        return 1;
    }
    if (c) {
        /* The request is read: the next bytes start another one. */
        c->phase = CONN_HEADERS;
        c->hdr_bytes = c->line_len = 0;
        c->hdr_lines = 0;
        c->busy++;
        evhttp_request_set_on_complete_cb(req, conn_request_done, c);
    }
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    srv *s = conn_srv;
    long long nh = 0;
    for (struct evkeyval *h = ih->tqh_first; h; h = h->next.tqe_next)
        nh++;
    if (s && s->cfg.max_headers > 0 && nh > s->cfg.max_headers) {
        char msg[160];
        snprintf(msg, sizeof msg, "request has more than --max-headers (%lld) headers",
                 s->cfg.max_headers);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        reply_error(req, 431, "invalid_request_error", msg);
        return 1;
    }
    const char *uri = evhttp_request_get_uri(req);
    if (!uri || uri[0] != '/') {
        /* absolute-form ("http://host/path") or '*': we are not a forward proxy */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        reply_error(req, 400, "invalid_request_error",
                    "request target must be a path starting with '/' (absolute-form and "
                    "'*' targets are not served)");
        return 1;
    }
    if (evhttp_find_header(ih, "Transfer-Encoding") && evhttp_find_header(ih, "Content-Length")) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        reply_error(req, 400, "invalid_request_error",
                    "request has both Content-Length and Transfer-Encoding (RFC 9112 6.3)");
        return 1;
    }
    return 0;
}

/* Chunked body refused by evhttp as "too long": a first chunk-size line
 * that is not hex is malformed (400); one that is hex and over --max-body is
 * too long (413). A later chunk's line was not kept: the message says both. */
static int conn_chunk_error(struct conn *c, long long max_body, const char **msg)
{
    if (!c || !c->chunk_seen) {
        *msg = "chunked request body is malformed or larger than --max-body";
        return 400;
    }
    const char *p = c->chunk_head;
    const char *eol = strstr(p, "\r\n");
    if (!eol) {
        *msg = "malformed chunk size in the chunked request body";
        return 400;
    }
    char *end;
    errno = 0;
    long long n = strtoll(p, &end, 16);
    if (end == p || (end != eol && *end != ' ' && *end != ';') || n < 0) {
        *msg = "malformed chunk size in the chunked request body";
        return 400;
    }
    if (errno == ERANGE || n > max_body) {
        *msg = "request body exceeds --max-body";
        return 413;
    }
    *msg = "chunked request body is malformed or larger than --max-body";
    return 400;
}

/* libevent's evhttp_send_error, replaced (see the header): the errors evhttp
 * finds itself, answered in JSON with Connection: close. */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    srv *s = conn_srv;
    struct conn *c = conn_of(req);
    int status = error;
    const char *type = "invalid_request_error", *msg;
    char buf[160];
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    const char *te = evhttp_find_header(ih, "Transfer-Encoding");
    switch (error) {
    case 413:
        if (c && c->phase == CONN_HEADERS) {
            status = 431;
            msg = "request headers are too large";
        } else if (te && strcasestr(te, "chunked")) {
            status = conn_chunk_error(c, s ? s->cfg.max_body : 0, &msg);
        } else {
            snprintf(buf, sizeof buf, "request body exceeds --max-body (%lld bytes)",
                     s ? s->cfg.max_body : 0);
            msg = buf;
        }
        break;
    case 400:
        if (c && c->phase == CONN_HEADERS && s &&
            (long long)c->hdr_bytes >= s->cfg.max_header_size) {
            status = 431; /* evhttp's header-size limit */
            snprintf(buf, sizeof buf,
                     "request headers are larger than --max-header-size (%lld bytes)",
                     s->cfg.max_header_size);
            msg = buf;
        } else if (te && evhttp_find_header(ih, "Content-Length")) {
            msg = "request has both Content-Length and Transfer-Encoding (RFC 9112 6.3)";
        } else {
            msg = "malformed HTTP request (request line, headers or chunked body)";
        }
        break;
    case 501:
        type = "method_not_supported";
        msg = "HTTP method not supported";
        break;
    case 404:
        msg = "not found";
        break;
    default:
        type = "server_error";
        msg = reason ? reason : "request failed";
        break;
    }
    const char *phrase = status == 400   ? "Bad Request"
                         : status == 413 ? "Payload Too Large"
                         : status == 431 ? "Request Header Fields Too Large"
                         : status == 501 ? "Not Implemented"
                         : status == 404 ? "Not Found"
                                         : "Error";
    if (error == 400) {
        /* The request line may not have parsed: evhttp would answer
         * "HTTP/0.0". Answer on the socket and free the connection, as
         * libevent itself does here when it cannot allocate. */
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        conn_write_error(bev ? bufferevent_getfd(bev) : -1, status, phrase, type, msg);
        if (c)
            c->phase = CONN_REFUSED;
        if (evcon)
            evhttp_connection_free(evcon);
        return;
    }
    char *js = conn_error_json(type, msg);
    struct evbuffer *b = evbuffer_new();
    if (!b || !js) { /* as libevent does when it cannot allocate: drop the connection */
        free(js);
        if (b)
            evbuffer_free(b);
        evhttp_connection_free(evhttp_request_get_connection(req));
        return;
    }
    evbuffer_add(b, js, strlen(js));
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", strlen(js));
    free(js);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_clear_headers(oh);
    evhttp_add_header(oh, "Server", "llmcached/" LLMC_VERSION);
    evhttp_add_header(oh, "Content-Type", "application/json");
    evhttp_add_header(oh, "Content-Length", cl);
    evhttp_add_header(oh, "Connection", "close");
    evhttp_send_reply(req, status, phrase, b);
    evbuffer_free(b);
}
