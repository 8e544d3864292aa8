/*
 * bench_embed.c — throughput and latency of an llmcached embedder.
 *
 *   bench_embed [--model-path DIR] [--texts FILE] [--n N] [--threads T]
 *               [--precision auto|int8|fp16|fp32]
 *
 * Texts: one a line from --texts (default: the "a" questions of
 * $LLMC_SHARED_DATA/pairs/qqp_dev.jsonl, else a built-in list). Measures,
 * on one thread:
 *   single   one short query per call (texts of <= 16 tokens, the semantic
 *            tier's hot path): p50/p99 latency and sentences/s
 *   long     one text of 25-35 words per call (--long FILE, one a line):
 *            p50/p99 latency
 *   batch32  calls of 32 texts: p50/p99 per call and sentences/s
 *   seq32    the same 32-text groups, one llmc_embed call per text: per-text
 *            time beside batch32's, so the batch's gain is measured on the
 *            same texts
 * and with --threads T > 1 the batch32 run on T threads at once, each with
 * its own embedder (OpenBLAS single-threaded), aggregate sentences/s.
 * Prints one "RESULT name key=value ..." line per measurement for run.sh;
 * cpu_* figures are this thread's CPU time (the machine may be shared).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embed_tok.h"
#include "llmcache.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of this thread: on a shared machine wall time also counts the
 * time other processes held the core; both are reported. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmpd);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static const char *builtin[] = {
    "How do I reset my password?",
    "What is the capital of France?",
    "Best way to learn Python quickly",
    "How can I lose weight fast?",
    "Why is the sky blue?",
    "How does a cache work?",
    "What is machine learning?",
    "How to cook rice in a microwave",
    "Is coffee bad for you?",
    "Translate hello into Spanish",
};

typedef struct {
    const char *model_path;
    const char *precision;
    char **texts;
    size_t n;
    double secs; /* out */
    size_t done; /* out */
} job;

static void *batch_worker(void *arg)
{
    job *j = arg;
    llmc_embed_params p = llmc_embed_default_params();
    p.model_path = j->model_path;
    p.precision = j->precision;
    int err = 0;
    llmc_embedder *e = llmc_embedder_new(&p, &err);
    if (!e)
        return NULL;
    float *out = malloc(32 * 512 * sizeof *out);
    size_t lens[32];
    double t0 = now_ms();
    for (size_t i = 0; i + 32 <= j->n; i += 32) {
        for (int k = 0; k < 32; k++)
            lens[k] = strlen(j->texts[i + k]);
        if (llmc_embed_batch(e, (const char *const *)j->texts + i, lens, 32, out) == 0)
            j->done += 32;
    }
    j->secs = (now_ms() - t0) / 1e3;
    free(out);
    llmc_embedder_free(e);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *model = "data/models/use-lite", *texts_path = NULL;
    size_t n = 2048;
    int threads = 1;
    const char *precision = NULL, *long_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model-path"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--texts"))
            texts_path = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision"))
            precision = argv[i + 1];
        else if (!strcmp(argv[i], "--long"))
            long_path = argv[i + 1];
    }
    /* load texts */
    char **all = calloc(n, sizeof *all);
    size_t na = 0;
    char qqp[4096];
    const char *sd = getenv("LLMC_SHARED_DATA");
    snprintf(qqp, sizeof qqp, "%s/pairs/qqp_dev.jsonl", sd && *sd ? sd : "../shared/data");
    FILE *f = fopen(texts_path ? texts_path : qqp, "r");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        while (na < n && getline(&line, &cap, f) > 0) {
            line[strcspn(line, "\r\n")] = 0;
            if (texts_path) {
                if (*line)
                    all[na++] = strdup(line);
                continue;
            }
            json_t *o = json_loads(line, 0, NULL);
            const char *a = json_string_value(json_object_get(o, "a"));
            if (a && *a)
                all[na++] = strdup(a);
            json_decref(o);
        }
        free(line);
        fclose(f);
    }
    while (na < n) {
        all[na] = strdup(builtin[na % (sizeof builtin / sizeof *builtin)]);
        na++;
    }
    /* short queries: <= 16 tokens */
    char vocab[4096];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", model);
    int err = 0;
    embed_tok *tok = embed_tok_load(vocab, 6, &err);
    if (!tok) {
        fprintf(stderr, "bench_embed: cannot load %s: %s\n", vocab, llmc_strerror(err));
        return 1;
    }
    char **shortq = calloc(na, sizeof *shortq);
    size_t ns = 0, tok_total = 0;
    int32_t ids[256];
    for (size_t i = 0; i < na; i++) {
        size_t k = 0;
        if (embed_tok_encode(tok, all[i], strlen(all[i]), ids, 256, &k) == 0 && k <= 16) {
            shortq[ns++] = all[i];
            tok_total += k;
        }
    }
    embed_tok_free(tok);

    llmc_embed_params p = llmc_embed_default_params();
    p.model_path = model;
    p.precision = precision;
    llmc_embedder *e = llmc_embedder_new(&p, &err);
    if (!e) {
        fprintf(stderr, "bench_embed: cannot open USE lite in %s: %s\n", model, llmc_strerror(err));
        return 1;
    }
    float *out = malloc(32 * 512 * sizeof *out);
    /* warm-up */
    for (size_t i = 0; i < 50 && i < ns; i++)
        llmc_embed(e, shortq[i], strlen(shortq[i]), out);

    /* single short queries */
    double *lat = malloc((na + 1) * sizeof *lat);
    double *cpu = malloc((na + 1) * sizeof *cpu);
    double t0 = now_ms(), c0 = cpu_ms();
    for (size_t i = 0; i < ns; i++) {
        double a = now_ms(), ca = cpu_ms();
        llmc_embed(e, shortq[i], strlen(shortq[i]), out);
        lat[i] = now_ms() - a;
        cpu[i] = cpu_ms() - ca;
    }
    double secs = (now_ms() - t0) / 1e3, csecs = (cpu_ms() - c0) / 1e3;
    printf("RESULT single n=%zu avg_tokens=%.1f p50_ms=%.3f p99_ms=%.3f per_s=%.1f "
           "cpu_p50_ms=%.3f per_cpu_s=%.1f\n",
           ns, (double)tok_total / (double)ns, pct(lat, ns, 0.5), pct(lat, ns, 0.99),
           (double)ns / secs, pct(cpu, ns, 0.5), (double)ns / csecs);

    printf("RESULT precision name=%s\n", llmc_embedder_precision(e));
    /* 25-35-word texts, one a call */
    FILE *lf = long_path ? fopen(long_path, "r") : NULL;
    if (lf) {
        char *line = NULL;
        size_t cap = 0, nl = 0;
        double *ll = malloc(4096 * sizeof *ll), *lc = malloc(4096 * sizeof *lc);
        while (nl < 4096 && getline(&line, &cap, lf) > 0) {
            line[strcspn(line, "\r\n")] = 0;
            if (!*line)
                continue;
            llmc_embed(e, line, strlen(line), out); /* warm the line's path */
            double a = now_ms(), ca = cpu_ms();
            llmc_embed(e, line, strlen(line), out);
            ll[nl] = now_ms() - a;
            lc[nl++] = cpu_ms() - ca;
        }
        free(line);
        fclose(lf);
        if (nl)
            printf("RESULT long n=%zu p50_ms=%.3f p99_ms=%.3f cpu_p50_ms=%.3f\n", nl,
                   pct(ll, nl, 0.5), pct(ll, nl, 0.99), pct(lc, nl, 0.5));
        free(ll);
        free(lc);
    }

    /* the same 32-text groups one text per call, then as batches: per text */
    double seq_cpu = 0;
    size_t nseq = 0;
    for (size_t i = 0; i + 32 <= na; i += 32)
        for (int k = 0; k < 32; k++, nseq++) {
            double ca = cpu_ms();
            llmc_embed(e, all[i + k], strlen(all[i + k]), out);
            seq_cpu += cpu_ms() - ca;
        }
    printf("RESULT seq32 n=%zu per_text_cpu_ms=%.4f\n", nseq, seq_cpu / (double)nseq);

    /* batches of 32 (all texts, any length) */
    size_t nb = 0;
    size_t lens[32];
    t0 = now_ms();
    c0 = cpu_ms();
    for (size_t i = 0; i + 32 <= na; i += 32) {
        for (int k = 0; k < 32; k++)
            lens[k] = strlen(all[i + k]);
        double a = now_ms(), ca = cpu_ms();
        llmc_embed_batch(e, (const char *const *)all + i, lens, 32, out);
        lat[nb] = now_ms() - a;
        cpu[nb++] = cpu_ms() - ca;
    }
    secs = (now_ms() - t0) / 1e3;
    csecs = (cpu_ms() - c0) / 1e3;
    printf("RESULT batch32 n=%zu p50_ms=%.3f p99_ms=%.3f per_s=%.1f cpu_p50_ms=%.3f "
           "per_cpu_s=%.1f per_text_cpu_ms=%.4f\n",
           nb * 32, pct(lat, nb, 0.5), pct(lat, nb, 0.99), (double)(nb * 32) / secs,
           pct(cpu, nb, 0.5), (double)(nb * 32) / csecs, csecs * 1e3 / (double)(nb * 32));
    llmc_embedder_free(e);

    if (threads > 1) {
        pthread_t th[64];
        job jb[64];
        if (threads > 64)
            threads = 64;
        t0 = now_ms();
        for (int t = 0; t < threads; t++) {
            jb[t] = (job){model, precision, all, na, 0, 0};
            pthread_create(&th[t], NULL, batch_worker, &jb[t]);
        }
        size_t done = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            done += jb[t].done;
        }
        secs = (now_ms() - t0) / 1e3;
        printf("RESULT batch32_threads%d n=%zu per_s=%.1f\n", threads, done, (double)done / secs);
    }
    free(out);
    free(lat);
    free(cpu);
    free(shortq);
    for (size_t i = 0; i < na; i++)
        free(all[i]);
    free(all);
    return 0;
}
