/*
 * llmcached-guard-eval — measure the semantic false-hit guard (src/guard.c)
 * at the text level, on the pair files of ../shared/data/pairs/.
 *
 * For every pair the guard alone (no embedding: cosine unknown) is asked
 * whether the one question may answer the other:
 *   qqp_dev.jsonl            {"a","b","label"}: the share of duplicates
 *                            (label 1) accepted and of non-duplicates
 *                            (label 0, Quora's hard negatives) rejected;
 *   gptcache_mock_data.json  [{"origin","similar"}]: all positives; the
 *                            share accepted.
 * It also prints how often the default policy's text rules fire on the QQP
 * questions. With --sweep it prints the same for a range of min_overlap values and
 * entity tolerances, so the defaults can be chosen by measurement.
 *
 * Usage: llmcached-guard-eval [--data DIR] [--min-overlap X]
 *          [--entity-missing N] [--no-numbers] [--no-negation]
 *          [--no-entities] [--sweep] [--examples N] [--limit N]
 * DIR defaults to $LLMC_SHARED_DATA/pairs, else ../shared/data/pairs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "llmcache.h"

typedef struct {
    char *a, *b;
    int label;
} pair;

typedef struct {
    pair *v;
    size_t n, cap;
} pairs;

static int pairs_add(pairs *ps, const char *a, const char *b, int label)
{
    if (ps->n == ps->cap) {
        size_t nc = ps->cap ? ps->cap * 2 : 1024;
        pair *nv = realloc(ps->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        ps->v = nv;
        ps->cap = nc;
    }
    ps->v[ps->n].a = strdup(a);
    ps->v[ps->n].b = strdup(b);
    ps->v[ps->n].label = label;
    if (!ps->v[ps->n].a || !ps->v[ps->n].b)
        return -1;
    ps->n++;
    return 0;
}

static void pairs_free(pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->v[i].a);
        free(ps->v[i].b);
    }
    free(ps->v);
}

static int load_qqp(const char *path, pairs *ps, size_t limit)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0 && (!limit || ps->n < limit)) {
        json_error_t e;
        json_t *o = json_loadb(line, (size_t)n, 0, &e);
        if (!o)
            continue;
        const char *a = json_string_value(json_object_get(o, "a"));
        const char *b = json_string_value(json_object_get(o, "b"));
        json_t *l = json_object_get(o, "label");
        if (a && b && json_is_integer(l))
            pairs_add(ps, a, b, (int)json_integer_value(l));
        json_decref(o);
    }
    free(line);
    fclose(f);
    return 0;
}

static int load_gptcache(const char *path, pairs *ps)
{
    json_error_t e;
    json_t *arr = json_load_file(path, 0, &e);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return -1;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *a = json_string_value(json_object_get(o, "origin"));
        const char *b = json_string_value(json_object_get(o, "similar"));
        if (a && b)
            pairs_add(ps, a, b, 1);
    }
    json_decref(arr);
    return 0;
}

/* Pairs whose content words overlap at least this much (Dice) form the
 * "close" subset: a text-level stand-in for the pairs a cosine threshold
 * would let through, where the guard's other checks must do the work. */
#define CLOSE_OVERLAP 0.6

typedef struct {
    size_t n[2], acc[2];
    size_t cn[2], cacc[2]; /* the close subset */
    size_t why[2][5];      /* rejections by check: number, negation, entity, overlap, slot */
    double ns;
} result;

static int close_only;

static void run(const llmc_guard_params *p, const pairs *ps, result *r, int examples)
{
    memset(r, 0, sizeof *r);
    int shown[2] = {0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < ps->n; i++) {
        const pair *x = &ps->v[i];
        int l = x->label ? 1 : 0;
        llmc_guard_result g;
        llmc_guard_check(p, x->a, strlen(x->a), x->b, strlen(x->b), NAN, &g);
        r->n[l]++;
        r->acc[l] += g.accept;
        if (g.overlap >= CLOSE_OVERLAP) {
            r->cn[l]++;
            r->cacc[l] += g.accept;
        }
        for (int k = 0; k < 5; k++)
            if (g.rejected & (1u << k))
                r->why[l][k]++;
        /* Show the guard's mistakes: rejected duplicates, accepted negatives. */
        if (examples && shown[l] < examples && (l ? !g.accept : g.accept) &&
            (!close_only || g.overlap >= CLOSE_OVERLAP)) {
            shown[l]++;
            printf("  %s [%s ov=%.2f em=%d]\n    a: %s\n    b: %s\n",
                   l ? "rejected duplicate" : "accepted negative", g.reason, g.overlap,
                   g.entity_missing, x->a, x->b);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    r->ns = ps->n ? ns / ps->n : 0;
}

static double pct(size_t a, size_t b)
{
    return b ? 100.0 * a / b : 0.0;
}

static void print_params(const llmc_guard_params *p)
{
    printf("guard: numbers=%d negation=%d entities=%d max_entity_missing=%d max_slot_fill=%d "
           "min_overlap=%.2f\n",
           p->numbers, p->negation, p->entities, p->max_entity_missing, p->max_slot_fill,
           p->min_overlap);
}

static const char *const check_names[5] = {"number", "negation", "entity", "overlap",
                                           "substitution"};

static void report(const char *name, const result *r)
{
    if (r->n[0]) {
        printf("%-24s label1 n=%zu accepted %.1f%% | label0 n=%zu rejected %.1f%% | "
               "%.2f us/pair\n",
               name, r->n[1], pct(r->acc[1], r->n[1]), r->n[0], pct(r->n[0] - r->acc[0], r->n[0]),
               r->ns / 1000);
        printf("%-24s   rejections by check (label0/label1):", "");
        for (int k = 0; k < 5; k++)
            printf(" %s %.1f/%.1f%%", check_names[k], pct(r->why[0][k], r->n[0]),
                   pct(r->why[1][k], r->n[1]));
        printf("\n%-24s   close subset (content overlap >= %.1f): label1 n=%zu accepted %.1f%% | "
               "label0 n=%zu rejected %.1f%%\n",
               "", CLOSE_OVERLAP, r->cn[1], pct(r->cacc[1], r->cn[1]), r->cn[0],
               pct(r->cn[0] - r->cacc[0], r->cn[0]));
    } else {
        printf("%-24s positives n=%zu accepted %.1f%% | %.2f us/pair\n", name, r->n[1],
               pct(r->acc[1], r->n[1]), r->ns / 1000);
        printf("%-24s   rejections by check:", "");
        for (int k = 0; k < 5; k++)
            printf(" %s %.1f%%", check_names[k], pct(r->why[1][k], r->n[1]));
        printf("\n");
    }
}

/* How often the default policy's text rules fire on ordinary questions
 * (every "a" of the QQP file): the price of a false alarm is a lost hit. */
static void policy_rates(const pairs *ps)
{
    llmc_policy *pol = llmc_policy_new(NULL, NULL);
    if (!pol)
        return;
    size_t n = 0, time_n = 0, fin = 0, code = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < ps->n; i++) {
        llmc_policy_request r;
        memset(&r, 0, sizeof r);
        r.temperature = NAN;
        r.query_text = ps->v[i].a;
        r.query_len = strlen(ps->v[i].a);
        llmc_policy_decision d;
        llmc_policy_decide(pol, &r, &d);
        n++;
        time_n += !!(d.fired & LLMC_FIRED_TIME);
        fin += !!(d.fired & LLMC_FIRED_FINANCIAL);
        code += !!(d.fired & LLMC_FIRED_CODE);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("policy on %zu QQP questions: time-relative %.2f%%, financial %.2f%%, code %.2f%% | "
           "%.2f us/decision\n",
           n, pct(time_n, n), pct(fin, n), pct(code, n), n ? ns / n / 1000 : 0.0);
    llmc_policy_free(pol);
}

int main(int argc, char **argv)
{
    llmc_guard_params p = llmc_guard_default_params();
    const char *dir = NULL;
    int sweep = 0, examples = 0;
    size_t limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v)
            dir = argv[++i];
        else if (!strcmp(a, "--min-overlap") && v)
            p.min_overlap = atof(argv[++i]);
        else if (!strcmp(a, "--entity-missing") && v)
            p.max_entity_missing = atoi(argv[++i]);
        else if (!strcmp(a, "--examples") && v)
            examples = atoi(argv[++i]);
        else if (!strcmp(a, "--limit") && v)
            limit = (size_t)atol(argv[++i]);
        else if (!strcmp(a, "--slot") && v)
            p.max_slot_fill = atoi(argv[++i]);
        else if (!strcmp(a, "--no-numbers"))
            p.numbers = 0;
        else if (!strcmp(a, "--no-negation"))
            p.negation = 0;
        else if (!strcmp(a, "--no-entities"))
            p.entities = 0;
        else if (!strcmp(a, "--close-examples"))
            close_only = 1;
        else if (!strcmp(a, "--sweep"))
            sweep = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--data DIR] [--min-overlap X] [--entity-missing N] "
                    "[--no-numbers] [--no-negation] [--no-entities] [--sweep] [--examples N] "
                    "[--limit N]\n",
                    argv[0]);
            return 2;
        }
    }
    char dbuf[4096];
    if (!dir) {
        const char *env = getenv("LLMC_SHARED_DATA");
        snprintf(dbuf, sizeof dbuf, "%s/pairs", env && *env ? env : "../shared/data");
        dir = dbuf;
    }
    char path[4200];
    pairs qqp = {0}, gpt = {0};
    snprintf(path, sizeof path, "%s/qqp_dev.jsonl", dir);
    if (load_qqp(path, &qqp, limit) || !qqp.n) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/gptcache_mock_data.json", dir);
    if (load_gptcache(path, &gpt) || !gpt.n) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    result rq, rg;
    if (!sweep) {
        print_params(&p);
        if (examples)
            printf("qqp examples:\n");
        run(&p, &qqp, &rq, examples);
        if (examples)
            printf("gptcache examples:\n");
        run(&p, &gpt, &rg, examples);
        report("qqp_dev.jsonl", &rq);
        report("gptcache_mock_data.json", &rg);
        policy_rates(&qqp);
    } else {
        printf("%-6s %-6s | %-18s %-18s | %-18s\n", "ent", "minov", "qqp dup accepted",
               "qqp neg rejected", "gptcache accepted");
        for (int em = 0; em <= 2; em++) {
            for (int k = 0; k <= 12; k++) {
                llmc_guard_params q = p;
                q.max_entity_missing = em;
                q.min_overlap = 0.05 * k;
                run(&q, &qqp, &rq, 0);
                run(&q, &gpt, &rg, 0);
                printf("%-6d %-6.2f | %-18.1f %-18.1f | %-18.1f\n", em, q.min_overlap,
                       pct(rq.acc[1], rq.n[1]), pct(rq.n[0] - rq.acc[0], rq.n[0]),
                       pct(rg.acc[1], rg.n[1]));
            }
        }
    }
    pairs_free(&qqp);
    pairs_free(&gpt);
    return 0;
}
