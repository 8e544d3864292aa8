/*
 * prefill.c — how much prefill time a prefix hit removes in llmcached-engine.
 *
 * The bar (issue 6): a prefix hit of P tokens removes at least 90% of the
 * prefill time of those P tokens. For several prompt sizes, in one run:
 *   cold_full  prefill of the whole prompt (n tokens) with caching off
 *   cold_P     prefill of its first P tokens alone, caching off (the baseline:
 *              what those P tokens cost)
 *   warm_full  prefill of the whole prompt when its first P tokens are cached
 *              (P = what the pool reports cached: full blocks of n - 1)
 *   saved = cold_full - warm_full;  ratio = saved / cold_P  (want >= 0.90)
 * Each figure is the median of R runs. Usage: prefill MODELS_DIR [R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../engine/runner.h"
#include "../cpu.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_prefill(runner *r, const int32_t *p, size_t n, int reps, int *cached)
{
    double t[64];
    for (int i = 0; i < reps; i++) {
        runner_result res;
        if (runner_prefill(r, p, n, NULL, &res)) {
            fprintf(stderr, "prefill failed\n");
            exit(1);
        }
        t[i] = res.prefill_s;
        *cached = res.cached_tokens;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODELS_DIR [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 9;
    if (reps < 1 || reps > 64)
        reps = 9;
    char mp[1024], tp[1024];
    snprintf(mp, sizeof mp, "%s/stories260K.bin", argv[1]);
    snprintf(tp, sizeof tp, "%s/tok512.bin", argv[1]);
    runner_params p = runner_default_params();
    p.model_path = mp;
    p.tokenizer_path = tp;
    int err = 0;
    runner *on = runner_new(&p, &err);
    p.enable_prefix_caching = 0;
    runner *off = on ? runner_new(&p, &err) : NULL;
    if (!on || !off) {
        fprintf(stderr, "cannot load %s: %s\n", mp, llmc_strerror(err));
        return 1;
    }
    const char *story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park with her dog Max. One day, she saw a big red ball under a tall tree. She ran to get "
        "it, but a bird flew down and took it away. Lily was sad, so her mom gave her a hug and "
        "they went home to bake a cake together. ";
    char text[8192] = "";
    for (int i = 0; i < 12; i++)
        strcat(text, story);
    int32_t toks[4096];
    long nt = tok_encode(runner_tok(on), text, strlen(text), 1, toks, 4096);
    char cpu[512];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench prefill: stories260K, block size 16, median of %d runs\n", reps);
    printf("machine: nproc %ld, %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu);
    printf("command: %s %s %d\n\n", argv[0], argv[1], reps);
    printf("%8s %8s %12s %12s %12s %12s %8s\n", "n", "P", "cold_full_ms", "cold_P_ms",
           "warm_full_ms", "saved_ms", "ratio");
    const int sizes[] = {64, 128, 256, 384, 500};
    int ok = 1;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = (size_t)sizes[k];
        if ((long)n > nt)
            break;
        int c0, cP, cw;
        double cold_full = median_prefill(off, toks, n, reps, &c0);
        runner_result res;
        runner_prefill(on, toks, n, NULL, &res); /* warm the cache */
        double warm = median_prefill(on, toks, n, reps, &cw);
        double cold_p = median_prefill(off, toks, (size_t)cw, reps, &cP);
        double saved = cold_full - warm, ratio = saved / cold_p;
        if (ratio < 0.90)
            ok = 0;
        printf("%8zu %8d %12.3f %12.3f %12.3f %12.3f %8.3f\n", n, cw, cold_full * 1e3, cold_p * 1e3,
               warm * 1e3, saved * 1e3, ratio);
    }
    printf("\nbar: a hit of P tokens removes >= 90%% of their prefill time: %s\n",
           ok ? "met" : "NOT met");
    runner_free(on);
    runner_free(off);
    return ok ? 0 : 1;
}
