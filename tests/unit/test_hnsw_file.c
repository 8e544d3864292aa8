/*
 * test_hnsw_file.c — save and load: identical results after a round trip
 * (f32 and int8, with removed slots), and every kind of bad file gives its
 * error code: missing, empty, foreign, other version, truncated at every
 * region, flipped bytes, structurally broken with a valid checksum, other
 * model, other dimension.
 */
#include <unistd.h>
#include <xxhash.h>

#include "llmcache.h"
#include "test_hnsw_data.h"
#include "unit.h"

enum { N = 1500, D = 32, NQ = 50, K = 10 };

static char path[256], path2[300];

static unsigned char *read_all(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)l + 1);
    *n = fread(b, 1, (size_t)l, f);
    fclose(f);
    return b;
}

static void write_all(const char *p, const void *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Recompute the trailing checksum after an edit. */
static void reseal(unsigned char *b, size_t n)
{
    uint64_t x = XXH3_64bits(b, n - 8);
    for (int i = 0; i < 8; i++)
        b[n - 8 + i] = (unsigned char)(x >> (8 * i));
}

static int load_err(const char *p, const char *model, size_t dim)
{
    int err = 0;
    llmc_hnsw *h = llmc_hnsw_load(p, model, dim, NULL, &err);
    if (h) {
        llmc_hnsw_free(h);
        return 0;
    }
    return err;
}

static void roundtrip(int quant, const float *x, const float *q)
{
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = D;
    p.quant = quant;
    p.model = "mini-embed-v1";
    llmc_hnsw *h = llmc_hnsw_new(&p, NULL);
    for (size_t i = 0; i < N; i++)
        CHECK_EQ_INT(llmc_hnsw_add(h, 777000 + i, i % 5, x + i * D), 0);
    for (size_t i = 0; i < N; i += 7)
        CHECK_EQ_INT(llmc_hnsw_remove(h, 777000 + i), 0);
    CHECK_EQ_INT(llmc_hnsw_save(h, path), 0);
    CHECK(access(path, F_OK) == 0);
    int err = 0;
    llmc_hnsw *g = llmc_hnsw_load(path, "mini-embed-v1", D, NULL, &err);
    CHECK(g != NULL);
    if (!g) {
        llmc_hnsw_free(h);
        return;
    }
    CHECK_EQ_INT(llmc_hnsw_count(g), llmc_hnsw_count(h));
    CHECK_EQ_INT(llmc_hnsw_dim(g), D);
    CHECK(strcmp(llmc_hnsw_model(g), "mini-embed-v1") == 0);
    size_t diff = 0;
    for (size_t i = 0; i < NQ; i++) {
        for (uint64_t part = 0; part < 2; part++) {
            uint64_t pa = part ? 3 : LLMC_HNSW_ANY;
            uint64_t la[K], lb[K];
            float sa[K], sb[K];
            size_t na = 0, nb = 0;
            llmc_hnsw_search(h, q + i * D, pa, K, 40, la, sa, &na);
            llmc_hnsw_search(g, q + i * D, pa, K, 40, lb, sb, &nb);
            diff += na != nb || memcmp(la, lb, na * sizeof *la) || memcmp(sa, sb, na * sizeof *sa);
        }
    }
    CHECK_EQ_INT(diff, 0);
    /* the loaded index keeps working the same way: same slot reuse, same graph */
    for (size_t i = 0; i < 50; i++) {
        CHECK_EQ_INT(llmc_hnsw_add(h, 888000 + i, 1, q + i * D), 0);
        CHECK_EQ_INT(llmc_hnsw_add(g, 888000 + i, 1, q + i * D), 0);
    }
    CHECK(llmc_hnsw_bytes(g) <= llmc_hnsw_bytes(h));
    diff = 0;
    for (size_t i = 0; i < NQ; i++) {
        uint64_t la[K], lb[K];
        size_t na = 0, nb = 0;
        llmc_hnsw_search(h, x + i * D, LLMC_HNSW_ANY, K, 40, la, NULL, &na);
        llmc_hnsw_search(g, x + i * D, LLMC_HNSW_ANY, K, 40, lb, NULL, &nb);
        diff += na != nb || memcmp(la, lb, na * sizeof *la);
    }
    CHECK_EQ_INT(diff, 0);
    llmc_hnsw_free(g);
    llmc_hnsw_free(h);
}

static void bad_files(const float *x)
{
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = D;
    p.model = "mini-embed-v1";
    llmc_hnsw *h = llmc_hnsw_new(&p, NULL);
    for (size_t i = 0; i < 200; i++)
        llmc_hnsw_add(h, i, 1, x + i * D);
    CHECK_EQ_INT(llmc_hnsw_save(h, path), 0);
    llmc_hnsw_free(h);
    size_t n = 0;
    unsigned char *good = read_all(path, &n);
    CHECK(good && n > 1000);
    if (!good)
        return;
    unsigned char *b = malloc(n);

    CHECK_EQ_INT(load_err(path, "mini-embed-v1", D), 0);
    CHECK_EQ_INT(load_err(path, NULL, 0), 0);
    CHECK_EQ_INT(load_err("/nonexistent/dir/x.hnsw", NULL, 0), LLMC_EIO);
    CHECK_EQ_INT(load_err(path, "other-model", D), LLMC_EMISMATCH);
    CHECK_EQ_INT(load_err(path, "mini-embed-v1", D + 1), LLMC_EMISMATCH);
    CHECK_EQ_INT(load_err(path, "mini-embed-v", 0), LLMC_EMISMATCH);

    write_all(path2, "", 0);
    CHECK_EQ_INT(load_err(path2, NULL, 0), LLMC_ECORRUPT);
    static const char sqlite[] = "SQLite format 3\0 and more bytes here to be long enough";
    write_all(path2, sqlite, sizeof sqlite);
    CHECK_EQ_INT(load_err(path2, NULL, 0), LLMC_EFOREIGN);
    write_all(path2, good, 5); /* a prefix of the magic */
    CHECK_EQ_INT(load_err(path2, NULL, 0), LLMC_ECORRUPT);

    memcpy(b, good, n);
    b[8] = 2; /* version 2 */
    reseal(b, n);
    write_all(path2, b, n);
    CHECK_EQ_INT(load_err(path2, NULL, 0), LLMC_EVERSION);

    /* truncated anywhere: header, model name, records, checksum */
    size_t cuts[] = {8, 11, 12, 40, 63, 64, 70, 77, 200, n / 2, n - 9, n - 8, n - 1};
    int bad = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_all(path2, good, cuts[i]);
        int e = load_err(path2, "mini-embed-v1", D);
        if (e != LLMC_ECORRUPT) {
            fprintf(stderr, "cut at %zu gave %d\n", cuts[i], e);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* a byte appended */
    memcpy(b, good, n);
    write_all(path2, b, n);
    FILE *f = fopen(path2, "ab");
    fputc(0, f);
    fclose(f);
    CHECK_EQ_INT(load_err(path2, NULL, 0), LLMC_ECORRUPT);

    /* one flipped bit anywhere: caught by the checksum */
    bad = 0;
    for (size_t pos = 12; pos < n; pos += n / 97 + 1) {
        memcpy(b, good, n);
        b[pos] ^= 0x10;
        write_all(path2, b, n);
        int e = load_err(path2, NULL, 0);
        if (e != LLMC_ECORRUPT)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);

    /* valid checksum, broken structure: every field checked */
    struct {
        size_t off;
        unsigned char val;
        const char *what;
    } edits[] = {
        {12, 0, "dim 0"},
        {16, 9, "metric 9"},
        {20, 9, "quant 9"},
        {24, 1, "M 1"},
        {36, 0x30, "max_level 48"},
        {43, 0x7f, "entry out of range"},
        {47, 0x7f, "n_slots huge"},
        {48, 0xff, "n_live > n_slots"},
        {52, 0xff, "model length past the end"},
        {64 + 13 + 0, 0xfc, "first record's flags"},
        {64 + 13 + 1, 0x30, "first record's level"},
        {64 + 13 + 3, 0x7f, "first record's link count"},
        {64 + 13 + 20 + 3, 0x7f, "first record's first link"},
        {64 + 3, 0, "NUL in the model name"},
    };
    bad = 0;
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        memcpy(b, good, n);
        b[edits[i].off] = edits[i].val;
        reseal(b, n);
        write_all(path2, b, n);
        int e = load_err(path2, NULL, 0);
        if (e != LLMC_ECORRUPT) {
            fprintf(stderr, "edit '%s' gave %d (%s)\n", edits[i].what, e, llmc_strerror(e));
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* all 200 live labels share partition 1; a duplicate label is corrupt */
    memcpy(b, good, n);
    {
        /* record 0 starts at 64+13; copy record 1's label into record 0 */
        size_t r0 = 64 + 13;
        unsigned n0 = b[r0 + 2] | b[r0 + 3] << 8;
        size_t lv = b[r0 + 1];
        size_t r1 = r0 + 20 + 4 * n0;
        for (size_t l = 1; l <= lv; l++) {
            unsigned c = b[r1] | b[r1 + 1] << 8;
            r1 += 2 + 4 * c;
        }
        r1 += 4 * D;
        memcpy(b + r0 + 4, b + r1 + 4, 8);
        reseal(b, n);
        write_all(path2, b, n);
        CHECK_EQ_INT(load_err(path2, NULL, 0), LLMC_ECORRUPT);
    }
    /* a budget too small for the file */
    llmc_hnsw_params lp = llmc_hnsw_default_params();
    lp.max_bytes = 10000;
    int err = 0;
    CHECK(llmc_hnsw_load(path, NULL, 0, &lp, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EFULL);
    /* saving into a directory that does not exist */
    h = llmc_hnsw_new(&p, NULL);
    CHECK_EQ_INT(llmc_hnsw_save(h, "/nonexistent/dir/x.hnsw"), LLMC_EIO);
    /* an empty index round-trips */
    CHECK_EQ_INT(llmc_hnsw_save(h, path2), 0);
    llmc_hnsw *g = llmc_hnsw_load(path2, "mini-embed-v1", D, NULL, &err);
    CHECK(g != NULL);
    CHECK_EQ_INT(llmc_hnsw_count(g), 0);
    CHECK_EQ_INT(llmc_hnsw_add(g, 1, 1, x), 0);
    CHECK_EQ_INT(llmc_hnsw_count(g), 1);
    llmc_hnsw_free(g);
    llmc_hnsw_free(h);
    free(b);
    free(good);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/llmc_hnsw_test_%d.bin", tmp ? tmp : "/tmp", (int)getpid());
    snprintf(path2, sizeof path2, "%s.bad", path);
    float *x = td_make(N + NQ, D, 30, 0.4f, 7);
    const float *q = x + (size_t)N * D;
    roundtrip(LLMC_HNSW_F32, x, q);
    roundtrip(LLMC_HNSW_I8, x, q);
    bad_files(x);
    unlink(path);
    unlink(path2);
    free(x);
    return UNIT_DONE();
}
