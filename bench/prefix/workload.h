/*
 * workload.h — the prefix benchmarks' shared workload (route.c, gateway.c):
 * tenants' ~300-token system prompts built from a seeded word list, the
 * short user questions, the clock and the random generator, so both
 * benchmarks replay exactly the same requests.
 */
#ifndef BENCH_PREFIX_WORKLOAD_H
#define BENCH_PREFIX_WORKLOAD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NQ 12

static const char *const words[] = {
    "policy",  "refund",  "order",   "garden",  "ticket",  "flight",  "invoice", "doctor",
    "school",  "library", "account", "package", "kitchen", "planet",  "engine",  "music",
    "weather", "river",   "castle",  "bakery",  "rocket",  "forest",  "market",  "museum",
    "harbor",  "cinema",  "village", "bridge",  "island",  "theater", "station", "hotel"};
static const char *const questions[NQ] = {
    "How do I start?",  "What time is it open?", "Can you help me?",     "Where is my order?",
    "Is it free?",      "Who can I call?",       "What is the price?",   "How long does it take?",
    "Can I change it?", "Why is it late?",       "What should I bring?", "Do you have a map?"};

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Tenant t's system prompt, ~300 tokens (18 sentences of ~16 tokens).
 * malloc'd; NULL when out of memory. */
static inline char *tenant_system(int t)
{
    uint64_t s = 0x1234567ull + (uint64_t)t * 7919u;
    char *buf = malloc(4096);
    if (!buf)
        return NULL;
    int n = snprintf(buf, 4096, "System: You are the assistant of tenant %d. ", t);
    for (int i = 0; i < 18; i++) {
        const char *a = words[rng_next(&s) % 32], *b = words[rng_next(&s) % 32];
        n += snprintf(buf + n, 4096 - (size_t)n, "The %s has a %s. ", a, b);
    }
    return buf;
}

static inline int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A transfer's first-byte time and, when buf is set, its body (grown with
 * realloc, NUL-terminated): the libcurl write callback of both benchmarks. */
typedef struct {
    double t0, first;
    char *buf; /* NULL: body not kept */
    size_t len;
    int bypass; /* gateway.c: the response said X-LLM-Cache: BYPASS */
} xfer;

static inline size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    if (!x->first)
        x->first = now_s();
    if (x->buf) {
        char *nb = realloc(x->buf, x->len + sz * n + 1);
        if (!nb)
            return 0;
        x->buf = nb;
        memcpy(x->buf + x->len, p, sz * n);
        x->len += sz * n;
        x->buf[x->len] = 0;
    }
    return sz * n;
}

#endif
