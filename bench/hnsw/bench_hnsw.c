/*
 * bench_hnsw.c — our HNSW (src/hnsw.c) against hnswlib, same data, same
 * process, same M and ef_construction, one thread.
 *
 *   bench_hnsw [N] [NQ]        (make bench-hnsw N=100000)
 *
 * Data: N + NQ unit vectors of dimension 384 that look like sentence
 * embeddings: points drawn around 1000 cluster centres in a 48-dimensional
 * latent space, mapped to 384 dimensions by a fixed random linear map, plus
 * isotropic noise, normalised. Fixed seed. The exact top-10 of every query
 * comes from brute force (OpenBLAS sgemm).
 *
 * Prints, for each index: build time, memory (heap bytes in use after the
 * build minus before: resident set size after malloc_trim, for both sides), and for a sweep of ef
 * the recall@10 and queries/s (best of 3 passes over the queries, passes of
 * the two indexes interleaved so noise hits both alike; times are the CPU
 * time of the thread, see now()). Then queries/s of
 * each at recall 0.95 and 0.99 (interpolated along the sweep) and our/hnswlib
 * ratios; the int8 variant's recall cost; partition-restricted search with
 * exact scan vs filtered graph for partitions of several sizes. The last line
 * is the our/hnswlib queries/s ratio at recall 0.95.
 *
 * Both sides are compiled with -O3 -march=native (mk/hnsw.mk).
 * HNSW_BENCH_NO_I8=1 skips the int8 build.
 */
#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hnswlib_shim.h"
#include "llmcache.h"
#include "../cpu.h"

enum { DIM = 384, LAT = 48, NCLUST = 1000, K = 10, MM = 16, EFC = 100, NPARTS = 5 };

static const size_t part_sizes[NPARTS - 1] = {100, 1000, 5000, 20000}; /* the rest: last */

/* Timings are CPU time of the calling thread: the benchmark is single
 * threaded, and on a machine shared with other jobs wall time mostly
 * measures the others. (On an idle machine the two agree.) */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Resident memory of the process. Measured around each build after
 * malloc_trim, so that memory freed earlier is not counted as new. (Heap
 * statistics would miss our index's blocks, which are mmap-ed to get huge
 * pages.) */
static size_t rss_bytes(void)
{
    malloc_trim(0);
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t rs = 0x5eed;
static double unif(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return ((rs >> 11) + 0.5) / 9007199254740992.0;
}
static float gauss(void)
{
    return (float)(sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif()));
}

/* within-cluster spread (latent units; centres are N(0,1)) and isotropic
 * noise per output component (the mapped signal has about unit variance) */
static float bench_spread = 1.0f, bench_noise = 0.6f;

static void make_data(float *x, size_t n)
{
    float *cent = malloc((size_t)NCLUST * LAT * sizeof *cent);
    float *map = malloc((size_t)LAT * DIM * sizeof *map);
    float *lat = malloc(n * LAT * sizeof *lat);
    for (size_t i = 0; i < (size_t)NCLUST * LAT; i++)
        cent[i] = gauss();
    for (size_t i = 0; i < (size_t)LAT * DIM; i++)
        map[i] = gauss() / sqrtf(LAT);
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(unif() * NCLUST) % NCLUST;
        for (size_t j = 0; j < LAT; j++)
            lat[i * LAT + j] = cent[c * LAT + j] + bench_spread * gauss();
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, DIM, LAT, 1.0f, lat, LAT, map,
                DIM, 0.0f, x, DIM);
    for (size_t i = 0; i < n; i++) {
        float *v = x + i * DIM;
        double s = 0;
        for (size_t j = 0; j < DIM; j++) {
            v[j] += bench_noise * gauss();
            s += (double)v[j] * v[j];
        }
        float inv = (float)(1.0 / sqrt(s));
        for (size_t j = 0; j < DIM; j++)
            v[j] *= inv;
    }
    free(cent);
    free(map);
    free(lat);
}

static void topk_insert(uint64_t *lab, float *sc, float s, uint64_t id)
{
    if (s <= sc[K - 1])
        return;
    size_t j = K - 1;
    while (j > 0 && sc[j - 1] < s) {
        sc[j] = sc[j - 1];
        lab[j] = lab[j - 1];
        j--;
    }
    sc[j] = s;
    lab[j] = id;
}

/* Exact top-K of every query overall (gt) and inside each partition (gtp). */
static void brute(const float *x, size_t n, const float *q, size_t nq, const int *part,
                  uint64_t *gt, uint64_t *gtp)
{
    size_t chunk = 4096;
    float *s = malloc(nq * chunk * sizeof *s);
    float *sc = malloc(nq * K * sizeof *sc), *scp = malloc(nq * NPARTS * K * sizeof *scp);
    for (size_t i = 0; i < nq * K; i++)
        sc[i] = -INFINITY;
    for (size_t i = 0; i < nq * NPARTS * K; i++)
        scp[i] = -INFINITY;
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        size_t m = n - r0 < chunk ? n - r0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)m, DIM, 1.0f, q, DIM,
                    x + r0 * DIM, DIM, 0.0f, s, (int)m);
        for (size_t i = 0; i < nq; i++)
            for (size_t j = 0; j < m; j++) {
                float v = s[i * m + j];
                size_t id = r0 + j, p = (size_t)part[id];
                if (v > sc[i * K + K - 1])
                    topk_insert(gt + i * K, sc + i * K, v, id);
                if (v > scp[(i * NPARTS + p) * K + K - 1])
                    topk_insert(gtp + (i * NPARTS + p) * K, scp + (i * NPARTS + p) * K, v, id);
            }
    }
    free(s);
    free(sc);
    free(scp);
}

static size_t overlap(const uint64_t *a, const uint64_t *b, size_t nb)
{
    size_t c = 0;
    for (size_t i = 0; i < K; i++)
        for (size_t j = 0; j < nb; j++)
            if (a[i] == b[j]) {
                c++;
                break;
            }
    return c;
}

typedef struct {
    double recall, qps;
} point;

/* One pass of all queries; returns seconds, adds hits to *hit. */
static double pass_ours(llmc_hnsw *h, const float *q, size_t nq, size_t ef, const uint64_t *gt,
                        size_t *hit)
{
    uint64_t lab[K];
    size_t h_ = 0;
    double t = now();
    for (size_t i = 0; i < nq; i++) {
        size_t n = 0;
        llmc_hnsw_search(h, q + i * DIM, LLMC_HNSW_ANY, K, ef, lab, NULL, &n);
        h_ += overlap(gt + i * K, lab, n);
    }
    t = now() - t;
    *hit = h_;
    return t;
}

static double pass_hl(hl_index *h, const float *q, size_t nq, size_t ef, const uint64_t *gt,
                      size_t *hit)
{
    uint64_t lab[K];
    size_t h_ = 0;
    double t = now();
    for (size_t i = 0; i < nq; i++) {
        size_t n = hl_search(h, q + i * DIM, K, ef, lab);
        h_ += overlap(gt + i * K, lab, n);
    }
    t = now() - t;
    *hit = h_;
    return t;
}

/* queries/s at recall target, interpolated (log qps, linear recall) along a
 * sweep of increasing ef; NAN when the sweep never reaches the target. */
static double qps_at(const point *p, size_t n, double target)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].recall >= target) {
            if (i == 0 || p[i].recall == p[i - 1].recall)
                return p[i].qps;
            double f = (target - p[i - 1].recall) / (p[i].recall - p[i - 1].recall);
            return exp(log(p[i - 1].qps) + f * (log(p[i].qps) - log(p[i - 1].qps)));
        }
    }
    return NAN;
}

static const size_t efs[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
enum { NEF = sizeof efs / sizeof *efs };

static llmc_hnsw *build_ours(const float *x, size_t n, const int *part, int quant, double *secs,
                             size_t *mem)
{
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = DIM;
    p.M = MM;
    p.ef_construction = EFC;
    p.quant = quant;
    p.model = "bench-clustered-384";
    p.initial_capacity = n;
    size_t m0 = rss_bytes();
    double t = now();
    int err = 0;
    llmc_hnsw *h = llmc_hnsw_new(&p, &err);
    if (!h) {
        fprintf(stderr, "llmc_hnsw_new: %s\n", llmc_strerror(err));
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        int e = llmc_hnsw_add(h, i, (uint64_t)part[i], x + i * DIM);
        if (e) {
            fprintf(stderr, "llmc_hnsw_add: %s\n", llmc_strerror(e));
            exit(1);
        }
    }
    *secs = now() - t;
    *mem = rss_bytes() - m0;
    return h;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    if (n < 1000 || nq < 10) {
        fprintf(stderr, "usage: %s [N >= 1000] [NQ >= 10]\n", argv[0]);
        return 2;
    }
    char cpu[512];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench-hnsw: %s %zu %zu\n", argv[0], n, nq);
    printf("machine: nproc %ld, %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu);
    printf("data: %zu base + %zu query unit vectors, dim %d, %d clusters in a %d-d latent space; "
           "M=%d efConstruction=%d, k=%d, one thread\n",
           n, nq, DIM, NCLUST, LAT, MM, EFC, K);
    fflush(stdout);

    if (getenv("HNSW_BENCH_SPREAD"))
        bench_spread = strtof(getenv("HNSW_BENCH_SPREAD"), NULL);
    if (getenv("HNSW_BENCH_NOISE"))
        bench_noise = strtof(getenv("HNSW_BENCH_NOISE"), NULL);
    printf("data spread %.2f noise %.2f\n", bench_spread, bench_noise);
    float *all = malloc((n + nq) * DIM * sizeof *all);
    make_data(all, n + nq);
    float *x = all, *q = all + n * DIM;
    /* partitions: sizes 100, 1000, 5000, 20000 and the rest, spread at random */
    int *part = malloc(n * sizeof *part);
    size_t b = 0;
    for (int p = 0; p < NPARTS; p++) {
        size_t sz = p < NPARTS - 1 ? part_sizes[p] : n - b;
        if (b + sz > n)
            sz = n - b;
        for (size_t i = 0; i < sz; i++)
            part[b + i] = p;
        b += sz;
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(unif() * (i + 1)) % (i + 1);
        int t = part[i];
        part[i] = part[j];
        part[j] = t;
    }
    uint64_t *gt = malloc(nq * K * sizeof *gt), *gtp = malloc(nq * NPARTS * K * sizeof *gtp);
    double t0 = now();
    brute(x, n, q, nq, part, gt, gtp);
    printf("ground truth by brute force: %.2f s\n", now() - t0);
    fflush(stdout);

    double bt_o, bt_h;
    size_t mem_o, mem_h;
    llmc_hnsw *ho = build_ours(x, n, part, LLMC_HNSW_F32, &bt_o, &mem_o);
    printf("ours:    build %.2f s (%.0f inserts/s), memory %.1f MiB (%.0f B/vector; "
           "llmc_hnsw_bytes %.0f B/vector), kernel %s\n",
           bt_o, n / bt_o, mem_o / 1048576.0, (double)mem_o / n, (double)llmc_hnsw_bytes(ho) / n,
           llmc_hnsw_kernel(ho));
    fflush(stdout);
    size_t m0 = rss_bytes();
    t0 = now();
    hl_index *hh = hl_new(DIM, n, MM, EFC, 100);
    for (size_t i = 0; i < n; i++)
        hl_add(hh, x + i * DIM, i);
    bt_h = now() - t0;
    mem_h = rss_bytes() - m0;
    printf("hnswlib: build %.2f s (%.0f inserts/s), memory %.1f MiB (%.0f B/vector)\n", bt_h,
           n / bt_h, mem_h / 1048576.0, (double)mem_h / n);
    fflush(stdout);

    point po[NEF], ph[NEF];
    printf("\n%5s | %8s %10s %9s | %8s %10s %9s\n", "ef", "ours R@10", "qps", "ms/query", "hnswlib",
           "qps", "ms/query");
    for (size_t e = 0; e < NEF; e++) {
        double best_o = 1e30, best_h = 1e30;
        size_t hit_o = 0, hit_h = 0;
        for (int rep = 0; rep < 3; rep++) {
            double t = pass_ours(ho, q, nq, efs[e], gt, &hit_o);
            if (t < best_o)
                best_o = t;
            t = pass_hl(hh, q, nq, efs[e], gt, &hit_h);
            if (t < best_h)
                best_h = t;
        }
        po[e] = (point){(double)hit_o / (nq * K), nq / best_o};
        ph[e] = (point){(double)hit_h / (nq * K), nq / best_h};
        printf("%5zu | %9.4f %10.0f %9.4f | %8.4f %10.0f %9.4f\n", efs[e], po[e].recall, po[e].qps,
               1e3 / po[e].qps, ph[e].recall, ph[e].qps, 1e3 / ph[e].qps);
        fflush(stdout);
    }
    double o95 = qps_at(po, NEF, 0.95), h95 = qps_at(ph, NEF, 0.95);
    double o99 = qps_at(po, NEF, 0.99), h99 = qps_at(ph, NEF, 0.99);
    printf("\nat recall 0.95: ours %.0f qps (%.4f ms), hnswlib %.0f qps (%.4f ms)\n", o95,
           1e3 / o95, h95, 1e3 / h95);
    printf("at recall 0.99: ours %.0f qps (%.4f ms), hnswlib %.0f qps (%.4f ms)\n", o99, 1e3 / o99,
           h99, 1e3 / h99);
    printf("build speed ratio ours/hnswlib: %.2f; memory per vector ours/hnswlib: %.3f\n",
           bt_h / bt_o, (double)mem_o / mem_h);

    /* partition-restricted search: exact scan vs filtered graph vs auto */
    printf("\npartition search, ef=64, k=10 (recall against the partition's exact top-10):\n");
    printf("%8s | %-22s | %-22s | %-22s\n", "size", "exact: R@10  ms/query",
           "graph: R@10  ms/query", "auto: R@10  ms/query");
    size_t pq = nq < 300 ? nq : 300;
    for (int p = 0; p < NPARTS; p++) {
        size_t sz = 0;
        for (size_t i = 0; i < n; i++)
            sz += part[i] == p;
        printf("%8zu |", sz);
        for (int mode = 1; mode <= 3; mode++) {
            llmc_hnsw_set_partition_search(ho, mode == 3 ? 0 : mode);
            size_t hit = 0, tot = 0;
            uint64_t lab[K];
            /* a filtered graph search of a tiny partition walks most of the
             * graph: fewer queries keep the run short */
            size_t nqp = (mode == 2 && sz * 20 < n) ? pq / 10 : pq;
            double t = now();
            for (size_t i = 0; i < nqp; i++) {
                size_t got = 0;
                llmc_hnsw_search(ho, q + i * DIM, (uint64_t)p, K, 64, lab, NULL, &got);
                const uint64_t *g = gtp + (i * NPARTS + (size_t)p) * K;
                size_t want = sz < K ? sz : K;
                for (size_t a = 0; a < want; a++)
                    for (size_t c = 0; c < got; c++)
                        if (g[a] == lab[c]) {
                            hit++;
                            break;
                        }
                tot += want;
            }
            t = now() - t;
            printf(" %10.4f %10.4f |", (double)hit / tot, t * 1e3 / nqp);
        }
        printf("\n");
        fflush(stdout);
    }
    llmc_hnsw_set_partition_search(ho, 0);

    if (!getenv("HNSW_BENCH_NO_I8")) {
        double bt_8;
        size_t mem_8;
        llmc_hnsw *h8 = build_ours(x, n, part, LLMC_HNSW_I8, &bt_8, &mem_8);
        point p8[NEF];
        printf("\nint8 variant: build %.2f s, memory %.1f MiB (%.0f B/vector, %.2fx of f32)\n",
               bt_8, mem_8 / 1048576.0, (double)mem_8 / n, (double)mem_8 / mem_o);
        printf("%5s | %9s %10s | %9s (f32, same ef)\n", "ef", "int8 R@10", "qps", "f32 R@10");
        for (size_t e = 0; e < NEF; e++) {
            double best = 1e30;
            size_t hit = 0;
            for (int rep = 0; rep < 3; rep++) {
                double t = pass_ours(h8, q, nq, efs[e], gt, &hit);
                if (t < best)
                    best = t;
            }
            p8[e] = (point){(double)hit / (nq * K), nq / best};
            printf("%5zu | %9.4f %10.0f | %9.4f\n", efs[e], p8[e].recall, p8[e].qps, po[e].recall);
        }
        double i95 = qps_at(p8, NEF, 0.95), i99 = qps_at(p8, NEF, 0.99);
        printf("int8 at recall 0.95: %.0f qps (%.2fx hnswlib); at 0.99: %.0f qps (%.2fx hnswlib)\n",
               i95, i95 / h95, i99, i99 / h99);
        llmc_hnsw_free(h8);
    }

    printf("\nratio ours/hnswlib queries/s at recall 0.99: %.3f\n", o99 / h99);
    printf("ratio ours/hnswlib queries/s at recall 0.95: %.3f\n", o95 / h95);
    llmc_hnsw_free(ho);
    hl_free(hh);
    free(all);
    free(part);
    free(gt);
    free(gtp);
    return 0;
}
