/*
 * test_embed.c — the generic embedder API (src/embed.c): argument checks,
 * backend selection, UTF-8 validation, empty and long texts, batching.
 * The checks that need a working backend use the built-in "use" model and
 * are skipped, saying so, when it is not installed (scripts/fetch-use-model.sh).
 */
#include <math.h>
#include <sys/stat.h>

#include "llmcache.h"
#include "unit.h"

static void test_no_model(void)
{
    llmc_embed_params p = llmc_embed_default_params();
    CHECK(strcmp(p.backend, "use") == 0);
    CHECK_EQ_INT(p.max_batch, 32);
    CHECK_EQ_INT(p.threads, 1);
    int err = 0;
    p.backend = "no-such-backend";
    CHECK(llmc_embedder_new(&p, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
    p.backend = "use";
    p.model_path = "/nonexistent/model/dir";
    err = 0;
    CHECK(llmc_embedder_new(&p, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EIO);
    CHECK(llmc_embedder_new(&p, NULL) == NULL); /* err may be NULL */
    llmc_embedder_free(NULL);
    float v[4];
    CHECK_EQ_INT(llmc_embed(NULL, "x", 1, v), LLMC_EINVAL);
}

static void test_with_model(const char *dir)
{
    llmc_embed_params p = llmc_embed_default_params();
    p.model_path = dir;
    p.max_batch = 3; /* forces several backend calls per batch */
    int err = 0;
    llmc_embedder *e = llmc_embedder_new(&p, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    size_t d = llmc_embedder_dim(e);
    CHECK_EQ_INT(d, 512);
    float *v = calloc(16 * d, sizeof *v);

    CHECK_EQ_INT(llmc_embed(e, "x", 1, NULL), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_embed(e, NULL, 3, v), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_embed(e, NULL, 0, v), LLMC_EEMPTY); /* empty text */
    CHECK_EQ_INT(llmc_embed(e, "", 0, v), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, "   ", 3, v), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, "\n\t\v\f\r", 5, v), LLMC_EEMPTY);

    /* invalid UTF-8, each kind */
    static const char *bad[] = {
        "\x80",             /* lone continuation */
        "\xc3",             /* truncated 2-byte */
        "\xe2\x82",         /* truncated 3-byte */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xfe",             /* never valid */
        "ok\xc3(",          /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(llmc_embed(e, bad[i], strlen(bad[i]), v), LLMC_EUTF8);
    /* valid edge cases embed */
    static const char *good[] = {"\xc2\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "a\0b",
                                 "\xf0\x9f\x9a\x80"};
    static const size_t good_len[] = {2, 3, 4, 3, 4};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ_INT(llmc_embed(e, good[i], good_len[i], v), 0);

    /* batch of 7 over max_batch 3 equals one-by-one; a bad text anywhere fails it */
    const char *tx[7] = {
        "a cat", "a dog", "the weather today", "how do I reset my password", "café",
        "x",     "long " /* placeholder */};
    size_t tl[7];
    for (int i = 0; i < 7; i++)
        tl[i] = strlen(tx[i]);
    CHECK_EQ_INT(llmc_embed_batch(e, tx, tl, 7, v), 0);
    for (int i = 0; i < 7; i++) {
        float w[512];
        CHECK_EQ_INT(llmc_embed(e, tx[i], tl[i], w), 0);
        double c = 0;
        for (size_t j = 0; j < d; j++)
            c += (double)w[j] * v[i * d + j];
        CHECK(c > 0.99999);
    }
    tx[5] = "\xff";
    tl[5] = 1;
    CHECK_EQ_INT(llmc_embed_batch(e, tx, tl, 7, v), LLMC_EUTF8);
    CHECK_EQ_INT(llmc_embed_batch(e, tx, tl, 0, v), 0); /* nothing to do */

    /* a long text (far past the 128-token window) gives a unit vector */
    size_t n = 200000;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "[i % 57];
    CHECK_EQ_INT(llmc_embed(e, s, n, v), 0);
    double nn = 0;
    for (size_t j = 0; j < d; j++)
        nn += (double)v[j] * v[j];
    CHECK(fabs(nn - 1.0) < 1e-4);
    free(s);
    free(v);
    llmc_embedder_free(e);
}

int main(void)
{
    test_no_model();
    const char *dir = getenv("LLMC_USE_MODEL");
    if (!dir || !*dir)
        dir = "data/models/use-lite";
    char probe[4096];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/model.json", dir);
    if (stat(probe, &st) == 0)
        test_with_model(dir);
    else
        printf("skip: USE lite model not in %s (scripts/fetch-use-model.sh); "
               "backend-dependent checks skipped\n",
               dir);
    return UNIT_DONE();
}
