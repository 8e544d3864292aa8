/*
 * log.c — the daemon's log and clock, at the ground of server/.
 *
 * Every module logs and reads the monotonic clock; both live here so that
 * nobody calls up into main.c for them. srv_log writes one line per event
 * to stderr: UTC time with milliseconds, level, message (journald and
 * docker both take stderr). The level is set once at start, before the
 * loops run, and only read afterwards.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "server.h"

static int log_min = LOG_INFO;

void srv_log_set_level(const char *name)
{
    if (!name)
        return;
    if (!strcmp(name, "debug"))
        log_min = LOG_DEBUG;
    else if (!strcmp(name, "warn"))
        log_min = LOG_WARN;
    else if (!strcmp(name, "error"))
        log_min = LOG_ERROR;
    else
        log_min = LOG_INFO;
}

void srv_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < log_min)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03dZ %-5s %s\n", ts, (int)(tv.tv_usec / 1000), names[level], msg);
}

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
