/*
 * fuzz_hnsw_load.c — libFuzzer target: the HNSW index file loader
 * (llmc_hnsw_load in src/hnsw.c) on arbitrary file contents. A file that
 * loads must be searchable. The file lives in $TMPDIR, one per process.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char path[256];
    if (!path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/llmc-fuzz-hnsw-%d.idx", t ? t : "/tmp", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(d, 1, n, f);
    fclose(f);
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.max_bytes = 64u << 20; /* a hostile header must not make us allocate without bound */
    int err = 0;
    llmc_hnsw *h = llmc_hnsw_load(path, NULL, 0, &p, &err);
    if (h) {
        size_t dim = llmc_hnsw_dim(h);
        float *q = calloc(dim ? dim : 1, sizeof *q);
        if (q && dim) {
            q[0] = 1.0f;
            uint64_t labels[4];
            float sims[4];
            size_t got = 0;
            llmc_hnsw_search(h, q, 0, 4, 16, labels, sims, &got);
        }
        free(q);
        llmc_hnsw_free(h);
    }
    unlink(path);
    return 0;
}
