/*
 * redis_srv.h — real redis-server processes for the unit tests that need
 * Redis (test_redis, test_redis_store): started on free loopback ports in a
 * temporary directory, killed at exit. Header-only, like unit.h.
 */
#ifndef REDIS_SRV_H
#define REDIS_SRV_H
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#define MAXSRV 8
static pid_t srv_pid[MAXSRV];
static int srv_port[MAXSRV];
static char tmpdir[] = "/tmp/llmc-test-redis-XXXXXX";

static void kill_all(void)
{
    for (int i = 0; i < MAXSRV; i++)
        if (srv_pid[i] > 0) {
            kill(srv_pid[i], SIGKILL);
            waitpid(srv_pid[i], NULL, 0);
            srv_pid[i] = 0;
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    int p = ntohs(a.sin_port);
    /* cluster bus port is port + 10000 */
    return p < 55000 ? p : free_port();
}

static redisContext *sync_conn(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Start redis-server number i on port (0: a free one) with extra args;
 * waits until it answers PING. Returns the port or -1. */
static int start_server(int i, int port, const char *extra)
{
    if (!port)
        port = free_port();
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
             "--dir %s --dbfilename dump%d.rdb --enable-debug-command local %s >/dev/null 2>&1",
             port, tmpdir, port, extra ? extra : "");
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    srv_pid[i] = pid;
    srv_port[i] = port;
    for (int k = 0; k < 200; k++) {
        redisContext *c = sync_conn(port);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && (r->type == REDIS_REPLY_STATUS ||
                           (r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH")));
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return port;
        }
        usleep(20000);
    }
    fprintf(stderr, "FAIL could not start redis-server (%s)\n", cmd);
    return -1;
}

static void stop_server(int i)
{
    if (srv_pid[i] > 0) {
        kill(srv_pid[i], SIGKILL);
        waitpid(srv_pid[i], NULL, 0);
        srv_pid[i] = 0;
    }
}

/* ---- driving an event loop from a test ---------------------------------- */

static struct event_base *base;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void tick(evutil_socket_t fd, short w, void *a)
{
}

/* Run base until *flag (may be set by another thread) or ms pass. */
static void run_until(int *flag, int ms)
{
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 1000};
    event_add(t, &tv);
    double end = now_ms() + ms;
    while ((!flag || !__atomic_load_n(flag, __ATOMIC_ACQUIRE)) && now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

/* Make the temporary directory and kill every server at exit. 0 or -1. */
static int redis_srv_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return -1;
    }
    atexit(kill_all);
    return 0;
}

#endif
