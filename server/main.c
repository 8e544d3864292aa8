/*
 * main.c — llmcached: start, run, stop.
 *
 * Start-up order: configuration → data directory → SQLite file (refused
 * with a clear message when foreign or corrupt: we never wipe a file we do
 * not understand) → warm load into the store → loops (each binds its own
 * SO_REUSEPORT socket) → demo upstream when none is configured → serve.
 * SIGINT/SIGTERM stop the loops, then the writer flushes what is queued.
 * Under systemd (Type=notify) READY=1 follows the ready line and
 * STOPPING=1 the signal (notify.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>
#include <openssl/rand.h>

#include "server.h"

static srv *the_srv; /* for the signal handler only */
static volatile sig_atomic_t stop_requested;

static int main_listen_socket(const char *hostport, int *port_out)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host) {
        srv_log(LOG_ERROR, "listen: expected HOST:PORT, got '%s'", hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    if (host[0] == '[') { /* [::1]:8080 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai) {
        srv_log(LOG_ERROR, "listen %s: %s", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        /* accepted sockets inherit it: small replies are not held by Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096)) {
        srv_log(LOG_ERROR, "listen %s: %s", hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    if (port_out) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

/* Shutdown, on each loop: accept nothing new, let what is in flight finish
 * (every loop waits for all: a flight on one may serve a waiter on
 * another), then stop — or at the deadline, whatever is left. */
static void main_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_loop *l = arg;
    if (atomic_load(&l->s->active) <= 0 || srv_now() >= l->drain_deadline) {
        event_base_loopbreak(l->base);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(l->drain_ev, &tv);
}

static void main_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_loop *l = arg;
    if (l->listener) {
        evhttp_del_accept_socket(l->http, l->listener);
        l->listener = NULL;
    }
    l->drain_deadline = srv_now() + (double)l->s->cfg.shutdown_timeout_ms / 1000.0;
    main_drain_cb(-1, 0, l);
}

static void *main_loop_thread(void *arg)
{
    srv_loop *l = arg;
    event_base_dispatch(l->base);
    return NULL;
}

static void main_on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Persistence failing (disk full, I/O error) and recovering: one line per
 * burst, not one per failed write. */
static void main_persist_error(int ok, const char *msg, uint64_t failures, void *arg)
{
    if (ok)
        srv_log(LOG_WARN, "persistence recovered after %llu failed write(s); kept entries written",
                (unsigned long long)failures);
    else
        srv_log(LOG_ERROR,
                "persistence failing: %s; entries are served from memory and kept "
                "for retry (see persist.* in /stats)",
                msg);
}

/* The Redis store's connection events (never holding a password). */
static void main_store_log(void *arg, const char *msg)
{
    srv_log(LOG_WARN, "store: %s", msg);
}

static int main_prices(srv *s)
{
    if (!s->cfg.prices || !*s->cfg.prices)
        return 0;
    char *dup = strdup(s->cfg.prices), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '='), *slash = eq ? strchr(eq, '/') : NULL;
        if (!eq || !slash) {
            srv_log(LOG_ERROR, "prices: expected model=IN/OUT, got '%s'", t);
            rc = -1;
            continue;
        }
        *eq = 0;
        llmc_metrics_set_price(s->metrics, t, atof(eq + 1), atof(slash + 1));
    }
    free(dup);
    return rc;
}

int main(int argc, char **argv)
{
    srv *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    config_defaults(&s->cfg);
    int crc = config_load(&s->cfg, argc, argv);
    if (crc) {
        config_free(&s->cfg);
        free(s);
        return crc > 0 ? 0 : 2;
    }
    srv_log_set_level(s->cfg.log_level);
    the_srv = s;
    s->started = time(NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Many slow streams need many descriptors: two per request. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!s->cfg.admin_token || !*s->cfg.admin_token) {
        unsigned char r[16];
        char hex[33];
        RAND_bytes(r, sizeof r);
        for (int i = 0; i < 16; i++)
            sprintf(hex + 2 * i, "%02x", r[i]);
        free(s->cfg.admin_token);
        s->cfg.admin_token = strdup(hex);
        srv_log(LOG_INFO, "no admin-token configured; generated one for this run: %s", hex);
    }

    int err = 0;
    s->metrics = llmc_metrics_new(&err);
    if (!s->metrics || flights_init(s)) {
        srv_log(LOG_ERROR, "out of memory at start");
        return 1;
    }
    if (main_prices(s))
        return 2;

    /* The cache: store, policy, and (persist on) the SQLite file, loaded. */
    llmc_cache_params cp = llmc_cache_default_params();
    cp.max_bytes = (size_t)s->cfg.memory;
    cp.ttl_s = s->cfg.ttl;
    cp.policy = s->cfg.policy;
    cp.canon_flags = (s->cfg.scope_user ? LLMC_CANON_SCOPE_USER : 0) | s->cfg.semantic_query_flag;
    char path[4096];
    if (s->cfg.persist) {
        if (mkdir(s->cfg.data_dir, 0755) && errno != EEXIST) {
            srv_log(LOG_ERROR, "data-dir %s: %s", s->cfg.data_dir, strerror(errno));
            return 1;
        }
        snprintf(path, sizeof path, "%s/llmcached.db", s->cfg.data_dir);
        cp.persist_path = path;
        cp.persist_sync = s->cfg.persist_sync;
        cp.flush_interval_ms = (int)s->cfg.flush_interval_ms;
        cp.persist_on_error = main_persist_error;
    }
    char msg[1024] = "";
    /* --store redis://...: a fleet's shared store behind the same seam. */
    llmc_redis_backend *rb = NULL;
    if (s->cfg.store && strcmp(s->cfg.store, "sqlite")) {
        llmc_redis_backend_params rp = llmc_redis_backend_default_params();
        rp.url = s->cfg.store;
        rp.password = s->cfg.store_password;
        rp.prefix = s->cfg.store_prefix;
        rp.timeout_ms = (int)s->cfg.store_timeout_ms;
        rp.near_ttl_s = s->cfg.store_near_ttl;
        rp.log = main_store_log;
        rb = llmc_redis_backend_new(&rp, &err, msg, sizeof msg);
        if (!rb) {
            srv_log(LOG_ERROR, "--store: %s", msg);
            return 2;
        }
        cp.backend = llmc_redis_backend_ops();
        cp.backend_state = rb;
    }
    double t = srv_now();
    s->cache = llmc_cache_new(&cp, &err, msg, sizeof msg);
    if (!s->cache) {
        if (rb)
            srv_log(LOG_ERROR, "cannot create the cache: %s (%s)", msg, llmc_strerror(err));
        else if (s->cfg.persist)
            srv_log(LOG_ERROR, "cannot use the cache database %s: %s (%s)", path, msg,
                    llmc_strerror(err));
        else
            srv_log(LOG_ERROR, "cannot create the cache: %s", llmc_strerror(err));
        return 1;
    }
    if (rb) {
        s->redis = rb;
        llmc_redis_backend_stats rs;
        llmc_redis_backend_get_stats(rb, &rs);
        srv_log(LOG_INFO, "store: %s %s, prefix \"%s\": warm start with %llu entries in %.0f ms",
                rs.cluster ? "Redis Cluster" : "Redis", rs.url, s->cfg.store_prefix,
                (unsigned long long)rs.loaded, (srv_now() - t) * 1000);
        if (llmc_redis_backend_start(rb, s->cache)) {
            srv_log(LOG_ERROR, "cannot start the Redis store's thread");
            return 1;
        }
    } else if (s->cfg.persist) {
        llmc_cache_stats cs;
        llmc_cache_get_stats(s->cache, &cs);
        srv_log(LOG_INFO,
                "warm start: %llu entries loaded from %s in %.0f ms (%llu expired, %llu "
                "failed their checksum and were skipped)",
                (unsigned long long)cs.persist.loaded, path, (srv_now() - t) * 1000,
                (unsigned long long)cs.persist.skipped_expired,
                (unsigned long long)cs.persist.skipped_corrupt);
    }

    if (sem_start(s))
        return 1;

    if (evthread_use_pthreads() || curl_global_init(CURL_GLOBAL_ALL)) {
        srv_log(LOG_ERROR, "cannot initialise libevent threads or libcurl");
        return 1;
    }
    long nthreads = s->cfg.threads > 0 ? (long)s->cfg.threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > 64)
        nthreads = 64;
    s->nloops = (int)nthreads;
    s->loops = calloc((size_t)s->nloops, sizeof *s->loops);
    if (!s->loops || conn_init(s))
        return 1;
    int port = 0;
    for (int i = 0; i < s->nloops; i++) {
        srv_loop *l = &s->loops[i];
        l->s = s;
        l->idx = i;
        l->base = event_base_new();
        l->http = l->base ? evhttp_new(l->base) : NULL;
        l->memo = memo_new((size_t)s->cfg.memo_memory);
        if (l->base)
            l->cache_loop = llmc_cache_loop_attach(s->cache, l->base);
        if (!l->http || upstream_loop_init(l))
            return 1;
        char lbuf[300];
        const char *addr = s->cfg.listen;
        if (i > 0 && port) { /* later loops bind the port the first one got (":0") */
            snprintf(lbuf, sizeof lbuf, "%.*s:%d", (int)(strrchr(addr, ':') - addr), addr, port);
            addr = lbuf;
        }
        l->listen_fd = main_listen_socket(addr, i == 0 ? &port : NULL);
        if (l->listen_fd < 0)
            return 1;
        l->listener = evhttp_accept_socket_with_handle(l->http, l->listen_fd);
        if (!l->listener)
            return 1;
        evhttp_set_max_body_size(l->http, (ev_ssize_t)s->cfg.max_body);
        evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
        evhttp_set_timeout(l->http, 3600);
        evhttp_set_gencb(l->http, http_handle, l);
        if (conn_loop_init(l))
            return 1;
        l->stop_ev = event_new(l->base, -1, 0, main_stop_cb, l);
        l->drain_ev = evtimer_new(l->base, main_drain_cb, l);
    }

    if (s->cfg.n_upstream == 0) {
        if (demo_start(&s->loops[0]))
            return 1;
        snprintf(s->upstream_base, sizeof s->upstream_base, "http://127.0.0.1:%d/v1", s->demo_port);
        s->demo = 1;
        srv_log(LOG_WARN,
                "no upstream configured: answering from the BUILT-IN DEMO UPSTREAM "
                "(not a language model) at %s; set --upstream URL for a real one",
                s->upstream_base);
    } else {
        snprintf(s->upstream_base, sizeof s->upstream_base, "%s", s->cfg.upstream[0]);
    }
    s->upstreams = pool_new(s, &err);
    if (!s->upstreams || pool_start(s->upstreams))
        return 2;
    if (s->cfg.n_upstream > 1)
        srv_log(LOG_INFO, "%d upstreams, route-policy %s", s->cfg.n_upstream, s->cfg.route_policy);
    size_t bl = strlen(s->upstream_base);
    while (bl && s->upstream_base[bl - 1] == '/')
        s->upstream_base[--bl] = 0;
    s->upstream_has_v1 = bl >= 3 && strcmp(s->upstream_base + bl - 3, "/v1") == 0;
    if (verify_start(s))
        return 2;

    signal(SIGINT, main_on_signal);
    signal(SIGTERM, main_on_signal);
    for (int i = 0; i < s->nloops; i++)
        pthread_create(&s->loops[i].th, NULL, main_loop_thread, &s->loops[i]);
    srv_log(LOG_INFO,
            "llmcached %s listening on %s (port %d), %d loop thread(s), upstream %s, "
            "memory budget %lld bytes, default ttl %llds",
            LLMC_VERSION, s->cfg.listen, port, s->nloops, s->upstream_base, s->cfg.memory,
            s->cfg.ttl);
    /* Ready line for scripts and tests: the real port (listen may say :0). */
    printf("llmcached ready port=%d\n", port);
    fflush(stdout);
    notify_ready(port);

    while (!stop_requested) {
        /* Expire in the background so the request path never sweeps. */
        usleep(200 * 1000);
        llmc_cache_expire(s->cache, (int64_t)time(NULL), 10000);
    }
    notify_stopping();
    srv_log(LOG_INFO, "shutting down: %d request(s) in flight, up to %lld ms to finish",
            atomic_load(&s->active), s->cfg.shutdown_timeout_ms);
    for (int i = 0; i < s->nloops; i++)
        event_active(s->loops[i].stop_ev, EV_READ, 0);
    for (int i = 0; i < s->nloops; i++)
        pthread_join(s->loops[i].th, NULL);
    sem_stop(s);    /* workers first: their results would wake stopped loops */
    verify_stop(s); /* the loops are gone: nothing samples any more */
    for (int i = 0; i < s->nloops; i++) {
        srv_loop *l = &s->loops[i];
        evhttp_free(l->http);
        conn_loop_free(l);
        if (l->demo_http)
            evhttp_free(l->demo_http);
        upstream_loop_free(l);
        memo_free(l->memo);
        llmc_cache_loop_detach(s->cache, l->cache_loop);
        free(l->raw);
        event_free(l->stop_ev);
        event_free(l->drain_ev);
        event_base_free(l->base);
    }
    pool_free(s->upstreams);
    llmc_cache_free(s->cache); /* finishes the backend's queued writes */
    flights_free(s);
    llmc_metrics_free(s->metrics);
    curl_global_cleanup();
    free(s->loops);
    conn_free_all();
    config_free(&s->cfg);
    free(s);
    the_srv = NULL;
    return 0;
}
