/*
 * bench_bert.c — the BERT backend's benchmark, with PyTorch as the baseline
 * in the same run.
 *
 *     bench_bert OUT_DIR [THREADS]        (make bench-bert)
 *
 * For each thread count (1, then THREADS when > 1) it runs
 * tests/embed_bert/bench_torch.py (which writes a random-weight encoder of
 * all-MiniLM-L6-v2's shape to OUT_DIR/minilm-f32 and times PyTorch eager on
 * it), then times llmc_embed on the same model and texts, and prints both
 * and the ratios: one short query (p50/p99 latency over 200 calls) and
 * batches of 32 sentences (sentences/s). The machine (nproc, CPU model)
 * and the command are printed first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "llmcache.h"

static const char *QUERY = "what is the quick way to cache a semantic query for the lazy dog";
static const char *BATCH[8] = {
    "hello world",
    "the quick brown fox jumps over the lazy dog",
    "semantic cache tokens and lines",
    "unaffable naive resume",
    "don't stop the leading and trailing spaces",
    "is this the world of the brown dog",
    "emoji unknown zero width",
    "a cafe over the fox",
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? atof(p + strlen(key)) : 0;
}

static void machine(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    }
    if (f)
        fclose(f);
    printf("machine: nproc=%ld cpu=%s\n", sysconf(_SC_NPROCESSORS_ONLN), model);
}

static int run(const char *dir, int threads)
{
    char cmd[1200], line[512] = "";
    const char *py = getenv("LLMC_PYTHON");
    snprintf(cmd, sizeof cmd, "%s tests/embed_bert/bench_torch.py '%s' %d",
             py && py[0] ? py : "/usr/bin/python3", dir, threads);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(line, sizeof line, p)) {
        fprintf(stderr, "baseline failed: %s\n", cmd);
        if (p)
            pclose(p);
        return 1;
    }
    pclose(p);
    printf("%s", line);
    double t50 = field(line, "p50_ms="), t99 = field(line, "p99_ms=");
    double tsps = field(line, "batch_sps=");

    openblas_set_num_threads(threads);
    char path[1100];
    snprintf(path, sizeof path, "%s/minilm-f32", dir);
    llmc_embed_params prm = llmc_embed_default_params();
    prm.backend = "bert";
    prm.model_path = path;
    prm.max_batch = 32;
    int err = 0;
    llmc_embedder *e = llmc_embedder_new(&prm, &err);
    if (!e) {
        fprintf(stderr, "open %s: %s\n", path, llmc_strerror(err));
        return 1;
    }
    size_t dim = llmc_embedder_dim(e);
    float *out = malloc(32 * dim * sizeof *out);
    size_t ql = strlen(QUERY);
    double lat[200];
    for (int i = 0; i < 20; i++)
        llmc_embed(e, QUERY, ql, out);
    for (int i = 0; i < 200; i++) {
        double t0 = now_ms();
        llmc_embed(e, QUERY, ql, out);
        lat[i] = now_ms() - t0;
    }
    qsort(lat, 200, sizeof lat[0], cmp_d);
    const char *texts[32];
    size_t lens[32];
    for (int i = 0; i < 32; i++) {
        texts[i] = BATCH[i % 8];
        lens[i] = strlen(texts[i]);
    }
    for (int i = 0; i < 3; i++)
        llmc_embed_batch(e, texts, lens, 32, out);
    int reps = 20;
    double t0 = now_ms();
    for (int i = 0; i < reps; i++)
        llmc_embed_batch(e, texts, lens, 32, out);
    double sps = reps * 32 / ((now_ms() - t0) / 1e3);
    printf("llmc  threads=%d p50_ms=%.3f p99_ms=%.3f batch=32 batch_sps=%.1f\n", threads, lat[100],
           lat[198], sps);
    printf("ratio threads=%d query_p50 torch/llmc=%.2fx batch_sps llmc/torch=%.2fx\n", threads,
           t50 / lat[100], sps / tsps);
    (void)t99;
    free(out);
    llmc_embedder_free(e);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT_DIR [THREADS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    machine();
    printf("command: %s %s %d\n", argv[0], argv[1], threads);
    if (run(argv[1], 1))
        return 1;
    if (threads > 1 && run(argv[1], threads))
        return 1;
    return 0;
}
