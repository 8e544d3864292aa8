/*
 * test_embed_use.c — the built-in USE lite encoder against the reference.
 *
 * Needs the model (scripts/fetch-use-model.sh puts it in data/models/use-lite;
 * LLMC_USE_MODEL overrides the directory) and the shared reference file
 * $LLMC_SHARED_DATA/embed/use_lite_reference.json (302 texts with the token
 * ids and vectors TensorFlow.js computes). Skips, saying so, when either is
 * absent. Checks: every text's ids exactly; every vector to cosine >= 0.9999,
 * one text at a time and in batches; bad inputs; corrupt or truncated
 * weight files give clear error codes.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embed_math.h"
#include "embed_tok.h"
#include "llmcache.h"
#include "unit.h"

static const char *model_dir(void)
{
    const char *d = getenv("LLMC_USE_MODEL");
    return d && *d ? d : "data/models/use-lite";
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa) * sqrt(bb) + 1e-30);
}

static llmc_embedder *open_use_prec(const char *dir, const char *precision, int *err)
{
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "use";
    p.model_path = dir;
    p.precision = precision;
    return llmc_embedder_new(&p, err);
}

static llmc_embedder *open_use(const char *dir, int *err)
{
    return open_use_prec(dir, NULL, err);
}

/* ---- reference: ids and vectors ---------------------------------------- */

static void test_reference(llmc_embedder *e, const char *ref_path)
{
    json_error_t jerr;
    json_t *root = json_load_file(ref_path, 0, &jerr);
    CHECK(root != NULL);
    if (!root)
        return;
    json_t *items = json_object_get(root, "items");
    size_t n = json_array_size(items);
    CHECK(n >= 300);

    /* tokenizer: exact ids, untruncated */
    char vocab[4096];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", model_dir());
    int err = 0;
    embed_tok *tok = embed_tok_load(vocab, 6, &err);
    CHECK(tok != NULL);
    int32_t *ids = malloc(100000 * sizeof *ids);
    size_t id_ok = 0;
    for (size_t i = 0; tok && i < n; i++) {
        json_t *it = json_array_get(items, i);
        json_t *jt = json_object_get(it, "text");
        json_t *jids = json_object_get(it, "ids");
        size_t k = 0;
        int rc =
            embed_tok_encode(tok, json_string_value(jt), json_string_length(jt), ids, 100000, &k);
        int ok = rc == 0 && k == json_array_size(jids);
        for (size_t j = 0; ok && j < k; j++)
            ok = ids[j] == json_integer_value(json_array_get(jids, j));
        if (!ok)
            fprintf(stderr, "ids differ for reference item %zu: %s\n", i, json_string_value(jt));
        id_ok += (size_t)ok;
    }
    CHECK_EQ_INT(id_ok, n);
    free(ids);
    embed_tok_free(tok);

    /* vectors, one at a time and in one batch call */
    size_t dim = llmc_embedder_dim(e);
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    float *one = malloc(n * dim * sizeof *one);
    float *batch = malloc(n * dim * sizeof *batch);
    float *ref = malloc(n * dim * sizeof *ref);
    size_t nv = 0; /* items with a reference vector */
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        json_t *jv = json_object_get(it, "embedding");
        if (!json_is_array(jv)) {
            /* the reference could not embed it: we must refuse it too */
            json_t *jt = json_object_get(it, "text");
            float tmp[512];
            CHECK_EQ_INT(llmc_embed(e, json_string_value(jt), json_string_length(jt), tmp),
                         LLMC_EEMPTY);
            continue;
        }
        CHECK_EQ_INT(json_array_size(jv), dim);
        texts[nv] = json_string_value(json_object_get(it, "text"));
        lens[nv] = json_string_length(json_object_get(it, "text"));
        for (size_t j = 0; j < dim; j++)
            ref[nv * dim + j] = (float)json_number_value(json_array_get(jv, j));
        nv++;
    }
    size_t good = 0, same = 0;
    double worst = 1.0, worst_batch = 1.0;
    for (size_t i = 0; i < nv; i++) {
        int rc = llmc_embed(e, texts[i], lens[i], one + i * dim);
        CHECK_EQ_INT(rc, 0);
        double c = cosine(one + i * dim, ref + i * dim, dim);
        if (c < worst)
            worst = c;
        if (c >= 0.9999)
            good++;
        else
            fprintf(stderr, "cosine %.6f for: %.60s\n", c, texts[i]);
    }
    CHECK_EQ_INT(good, nv);
    CHECK_EQ_INT(llmc_embed_batch(e, texts, lens, nv, batch), 0);
    for (size_t i = 0; i < nv; i++) {
        double c = cosine(one + i * dim, batch + i * dim, dim);
        if (c < worst_batch)
            worst_batch = c;
        same += c >= 0.99999;
    }
    CHECK_EQ_INT(same, nv);
    printf("use reference: %zu texts, ids exact %zu, worst 1-cosine %.2e, batch vs single 1-cosine "
           "%.2e\n",
           n, id_ok, 1.0 - worst, 1.0 - worst_batch);
    free(texts);
    free(lens);
    free(one);
    free(batch);
    free(ref);
    json_decref(root);
}

/* ---- int8 against the fp32 reference path -------------------------------- */

/* The int8 products (embed_q8.c) against float32 on every reference text:
 * worst cosine >= 0.999 (the bar), and a batch gives each text the
 * same vector as embedding it alone (rows are quantised one by one). */
static void test_int8(const char *ref_path)
{
    int err = 0;
    llmc_embedder *e32 = open_use_prec(model_dir(), "fp32", &err);
    llmc_embedder *e8 = open_use_prec(model_dir(), "int8", &err);
    CHECK(e32 != NULL && e8 != NULL);
    json_t *root = json_load_file(ref_path, 0, NULL);
    CHECK(root != NULL);
    if (!e32 || !e8 || !root)
        goto out;
    CHECK(strcmp(llmc_embedder_precision(e32), "fp32") == 0);
    CHECK(strncmp(llmc_embedder_precision(e8), "int8", 4) == 0);
    CHECK(strcmp(llmc_embedder_model(e8), llmc_embedder_model(e32)) == 0);
    json_t *items = json_object_get(root, "items");
    size_t n = json_array_size(items), nv = 0;
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    float *v32 = malloc(n * 512 * sizeof *v32), *v8 = malloc(n * 512 * sizeof *v8);
    float *b8 = malloc(n * 512 * sizeof *b8);
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        if (!json_is_array(json_object_get(it, "embedding")))
            continue;
        texts[nv] = json_string_value(json_object_get(it, "text"));
        lens[nv++] = json_string_length(json_object_get(it, "text"));
    }
    CHECK(nv >= 290);
    double worst = 1.0, sum = 0.0, worst_tf = 1.0, batch_diff = 0.0;
    for (size_t i = 0; i < nv; i++) {
        CHECK_EQ_INT(llmc_embed(e32, texts[i], lens[i], v32 + i * 512), 0);
        CHECK_EQ_INT(llmc_embed(e8, texts[i], lens[i], v8 + i * 512), 0);
        double c = cosine(v32 + i * 512, v8 + i * 512, 512);
        sum += c;
        if (c < worst)
            worst = c;
    }
    CHECK_EQ_INT(llmc_embed_batch(e8, texts, lens, nv, b8), 0);
    for (size_t i = 0; i < nv * 512; i++) {
        double d = fabs((double)b8[i] - v8[i]);
        batch_diff = d > batch_diff ? d : batch_diff;
    }
    /* the same against TensorFlow.js's vectors, for the record */
    for (size_t i = 0, k = 0; i < n; i++) {
        json_t *jv = json_object_get(json_array_get(items, i), "embedding");
        if (!json_is_array(jv))
            continue;
        float r[512];
        for (size_t j = 0; j < 512; j++)
            r[j] = (float)json_number_value(json_array_get(jv, j));
        double c = cosine(r, v8 + k++ * 512, 512);
        worst_tf = c < worst_tf ? c : worst_tf;
    }
    printf("use int8 (%s) vs fp32: %zu texts, worst cosine %.5f, mean %.6f; vs TF.js worst "
           "%.5f; batch vs single max |diff| %.1e\n",
           llmc_embedder_precision(e8), nv, worst, sum / (double)nv, worst_tf, batch_diff);
    CHECK(worst >= 0.999);
    CHECK(worst_tf >= 0.999);
    CHECK(batch_diff <= 1e-6);
    free(texts);
    free(lens);
    free(v32);
    free(v8);
    free(b8);
out:
    json_decref(root);
    llmc_embedder_free(e32);
    llmc_embedder_free(e8);
}

/* An unknown precision is refused, not silently mapped. */
static void test_precision_names(void)
{
    int err = 0;
    llmc_embedder *e = open_use_prec(model_dir(), "int4", &err);
    CHECK(e == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
    e = open_use_prec(model_dir(), "fp16", &err);
    CHECK(e != NULL);
    if (e)
        CHECK(strcmp(llmc_embedder_precision(e), "fp16") == 0);
    llmc_embedder_free(e);
}

/* ---- inputs -------------------------------------------------------------- */

static double norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

static void test_inputs(llmc_embedder *e)
{
    float v[512], w[512];
    CHECK(strcmp(llmc_embedder_model(e), "use-lite") == 0);
    CHECK_EQ_INT(llmc_embedder_dim(e), 512);
    CHECK_EQ_INT(llmc_embed(e, "", 0, v), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, " \t\r\n  ", 6, v), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, "\xe3\x80\x80\xc2\xa0", 5, v), LLMC_EEMPTY); /* ideographic, nbsp */
    CHECK_EQ_INT(llmc_embed(e, "abc\xff", 4, v), LLMC_EUTF8);
    CHECK_EQ_INT(llmc_embed(e, "\xed\xa0\x80", 3, v), LLMC_EUTF8); /* surrogate */
    /* not NUL-terminated: only len bytes count */
    CHECK_EQ_INT(llmc_embed(e, "hello world", 5, v), 0);
    CHECK_EQ_INT(llmc_embed(e, "hello", 5, w), 0);
    CHECK(cosine(v, w, 512) > 0.999999);
    CHECK(fabs(norm(v, 512) - 1.0) < 1e-5);
    /* unknown-only text still embeds */
    CHECK_EQ_INT(llmc_embed(e, "\xe6\x97\xa5", 3, v), 0);
    CHECK(fabs(norm(v, 512) - 1.0) < 1e-5);

    /* long texts: only the first 128 tokens count, so a text and the same
     * text with a long tail agree; a 3 MiB text is cut, never a crash */
    size_t big = 3u << 20;
    char *s = malloc(big);
    for (size_t i = 0; i < big; i++)
        s[i] = "the cat sat on the mat "[i % 23];
    CHECK_EQ_INT(llmc_embed(e, s, 23 * 200, v), 0);
    CHECK_EQ_INT(llmc_embed(e, s, 23 * 60, w), 0); /* 6 tokens a sentence: > 128 */
    CHECK(cosine(v, w, 512) > 0.999999);
    CHECK_EQ_INT(llmc_embed(e, s, big, w), 0);
    CHECK(cosine(v, w, 512) > 0.999999);
    free(s);

    /* a batch with one empty text fails as a whole */
    const char *tx[3] = {"one", "", "three"};
    size_t tl[3] = {3, 0, 5};
    float out[3 * 512];
    CHECK_EQ_INT(llmc_embed_batch(e, tx, tl, 3, out), LLMC_EEMPTY);
    tl[1] = 3;
    tx[1] = "two";
    CHECK_EQ_INT(llmc_embed_batch(e, tx, tl, 3, out), 0);
    CHECK_EQ_INT(llmc_embed(e, "two", 3, v), 0);
    CHECK(cosine(v, out + 512, 512) > 0.99999);
}

/* ---- corrupt files -------------------------------------------------------- */

static int copy_file(const char *from, const char *to, long keep, long poke_at)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        if (a)
            fclose(a);
        if (b)
            fclose(b);
        return -1;
    }
    char buf[65536];
    long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (keep >= 0 && total + (long)n > keep)
            n = (size_t)(keep - total);
        if (poke_at >= total && poke_at + 4 <= total + (long)n) {
            float nan = NAN;
            memcpy(buf + (poke_at - total), &nan, 4);
        }
        fwrite(buf, 1, n, b);
        total += (long)n;
        if (keep >= 0 && total >= keep)
            break;
    }
    fclose(a);
    fclose(b);
    return 0;
}

static const char *files[] = {"model.json",       "vocab.json",       "group1-shard1of7",
                              "group1-shard2of7", "group1-shard3of7", "group1-shard4of7",
                              "group1-shard5of7", "group1-shard6of7", "group1-shard7of7"};

/* Build dir with every model file linked, except `file`, which is copied
 * (cut to `keep` bytes when keep >= 0, a NaN written at poke_at when >= 0),
 * or left out when keep == -2. Returns the open error code. */
static int open_damaged(const char *dir, const char *file, long keep, long poke_at)
{
    char a[4096], b[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        unlink(b);
        snprintf(a, sizeof a, "%s/%s", model_dir(), files[i]);
        if (strcmp(files[i], file) == 0) {
            if (keep != -2)
                copy_file(a, b, keep, poke_at);
        } else {
            char abs[4096];
            if (!realpath(a, abs) || symlink(abs, b) != 0)
                return -999;
        }
    }
    int err = 0;
    llmc_embedder *e = open_use(dir, &err);
    if (e) {
        llmc_embedder_free(e);
        return 0;
    }
    return err;
}

static void test_corrupt(void)
{
    char dir[] = "/tmp/llmc-use-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int err = 0;
    CHECK(open_use("/nonexistent/use-lite", &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EIO);
    CHECK_EQ_INT(open_damaged(dir, "group1-shard7of7", -1, -1), 0); /* intact copy opens */
    CHECK_EQ_INT(open_damaged(dir, "group1-shard7of7", 1000000, -1), LLMC_ECORRUPT);
    CHECK_EQ_INT(open_damaged(dir, "group1-shard3of7", 4194300, -1), LLMC_ECORRUPT);
    CHECK_EQ_INT(open_damaged(dir, "group1-shard7of7", -2, -1), LLMC_EIO);
    CHECK_EQ_INT(open_damaged(dir, "group1-shard1of7", -1, 4096), LLMC_ECORRUPT); /* NaN */
    CHECK_EQ_INT(open_damaged(dir, "model.json", 5000, -1), LLMC_ECORRUPT);
    CHECK_EQ_INT(open_damaged(dir, "model.json", -2, -1), LLMC_EIO);
    CHECK_EQ_INT(open_damaged(dir, "vocab.json", 100000, -1), LLMC_ECORRUPT);
    CHECK_EQ_INT(open_damaged(dir, "vocab.json", -2, -1), LLMC_EIO);
    /* a shard one byte too long */
    char a[4096], b[4096];
    CHECK_EQ_INT(open_damaged(dir, "group1-shard7of7", -1, -1), 0);
    snprintf(b, sizeof b, "%s/group1-shard7of7", dir);
    FILE *f = fopen(b, "ab");
    if (f) {
        fputc(0, f);
        fclose(f);
    }
    CHECK(open_use(dir, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_ECORRUPT);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", dir, files[i]);
        unlink(a);
    }
    rmdir(dir);
}

/* ---- the shared kernels (no model needed) --------------------------------- */

static void test_math(void)
{
    /* packed products (float32 and binary16 strips, with and without bias,
     * overwrite and accumulate, row counts around the tile and the 64-row
     * switch, a width that is not a multiple of 16) against a plain loop */
    size_t k = 37, n = 45, ldw = 50;
    float *w = malloc(k * ldw * sizeof *w), *x = malloc(70 * k * sizeof *x);
    float *y = malloc(70 * n * sizeof *y), *ref = malloc(70 * n * sizeof *ref), bias[45];
    unsigned seed = 7;
    for (size_t i = 0; i < k * ldw; i++)
        w[i] = (float)((seed = seed * 1103515245u + 12345u) >> 8 & 0xffff) / 65536.0f - 0.5f;
    for (size_t i = 0; i < 70 * k; i++)
        x[i] = (float)((seed = seed * 1103515245u + 12345u) >> 8 & 0xffff) / 65536.0f - 0.5f;
    for (size_t j = 0; j < n; j++)
        bias[j] = (float)j / 10.0f;
    for (int half = 0; half <= 1; half++) {
        embed_math_packed p;
        CHECK_EQ_INT(embed_math_pack(&p, w, ldw, k, n, half), 0);
        size_t rows[] = {1, 5, 6, 7, 13, 64, 65, 70};
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            size_t m = rows[r];
            for (int acc = 0; acc <= 1; acc++) {
                for (size_t i = 0; i < m * n; i++)
                    y[i] = ref[i] = acc ? 1.0f : -99.0f;
                embed_math_matmul_packed(x, k, &p, acc ? NULL : bias, y, n, m, acc);
                double worst = 0;
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++) {
                        double v = acc ? 0 : bias[j];
                        for (size_t q = 0; q < k; q++)
                            v += (double)x[i * k + q] * w[q * ldw + j];
                        double want = acc ? 1.0 + v : v;
                        double d = fabs(want - y[i * n + j]);
                        worst = d > worst ? d : worst;
                    }
                CHECK(worst < (half ? 5e-3 : 1e-4)); /* binary16 weights: ~1e-3 rel */
            }
        }
        embed_math_packed_free(&p);
    }
    /* layer norm, softmax, l2 */
    float r[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, b[4] = {0, 0, 0, 0};
    embed_math_layer_norm(r, r, 4, 1, 4, g, b, 1e-6f);
    CHECK(fabs(r[0] + 1.3416407) < 1e-4 && fabs(r[3] - 1.3416407) < 1e-4);
    float sm[3] = {1000, 1000, -1e9f};
    embed_math_softmax_rows(sm, 3, 1, 3);
    CHECK(fabs(sm[0] - 0.5) < 1e-6 && sm[2] == 0.0f);
    float z[3] = {0, 0, 0}, u[2] = {3, 4};
    embed_math_l2_normalize(z, 3, 1e-12f);
    CHECK(z[0] == 0.0f && !isnan(z[1]));
    embed_math_l2_normalize(u, 2, 1e-12f);
    CHECK(fabs(u[0] - 0.6) < 1e-6 && fabs(u[1] - 0.8) < 1e-6);
    float gl[2] = {0, 1};
    embed_math_gelu(gl, 2);
    CHECK(gl[0] == 0.0f && fabs(gl[1] - 0.8413447) < 1e-5);
    free(w);
    free(x);
    free(y);
    free(ref);
}

/* ---- tokenizer quirks on a synthetic vocabulary (no model needed) --------- */

static embed_tok *tok_from(const char *json)
{
    char path[] = "/tmp/llmc-vocab-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(json, f);
    fclose(f);
    int err = 0;
    embed_tok *t = embed_tok_load(path, 6, &err);
    unlink(path);
    return t;
}

static int tok_is(embed_tok *t, const char *text, const int32_t *want, size_t n)
{
    int32_t ids[16];
    size_t k = 0;
    if (embed_tok_encode(t, text, strlen(text), ids, 16, &k) != 0 || k != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i])
            return 0;
    return 1;
}

/* Every expectation below was checked against the reference JavaScript
 * tokenizer run on the same synthetic vocabularies. */
static void test_tok_quirks(void)
{
    /* ids: 0 unknown, 1-5 reserved, then pieces; "ab" twice (the later wins) */
    embed_tok *t = tok_from("[[\"\\ufffd\",0],[\"<s>\",0],[\"</s>\",0],[\"r3\",0],[\"r4\",0],"
                            "[\"r5\",0],[\"\\u2581\",-1.0],[\"a\",-2.0],[\"b\",-2.0],"
                            "[\"ab\",-2.5],[\"\\u2581a\",-1.5],[\"\\ud83d\\ude00\",-1.0],"
                            "[\"ab\",-0.5],[\":\",null]]");
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(embed_tok_size(t), 14);
    CHECK(tok_is(t, "ab", (const int32_t[]){6, 12}, 2)); /* duplicate: id 12 */
    /* symbols are UTF-16 code units: an astral character is two unknown
     * surrogates (merged), even though a piece of it exists */
    CHECK(tok_is(t,
                 "\xf0\x9f\x98\x80"
                 "a",
                 (const int32_t[]){6, 0, 7}, 3));
    CHECK(tok_is(t, "cc", (const int32_t[]){6, 0}, 2)); /* unknowns merged */
    CHECK(tok_is(t, ":", (const int32_t[]){6, 13}, 2)); /* null score = 0 */
    CHECK(tok_is(t, "a b", (const int32_t[]){10, 6, 8}, 3));
    CHECK(tok_is(t, "a a", (const int32_t[]){10, 10}, 2)); /* ' ' -> '▁' */
    int32_t ids[4];
    size_t k = 0;
    CHECK_EQ_INT(embed_tok_encode(t, "", 0, ids, 4, &k), LLMC_EEMPTY);
    CHECK_EQ_INT(embed_tok_encode(t, " \t", 2, ids, 4, &k), LLMC_EEMPTY);
    CHECK_EQ_INT(embed_tok_encode(t, "a a a a a a", 11, ids, 2, &k), 0);
    CHECK_EQ_INT(k, 6); /* the count is total, only cap ids written */
    embed_tok_free(t);

    /* best == 0 means "unset" in the reference: a later, worse candidate
     * replaces an exact-0 path (here ":x", score null, loses to ":" + "x") */
    t = tok_from("[[\"\\ufffd\",0],[\"<s>\",0],[\"</s>\",0],[\"r3\",0],[\"r4\",0],"
                 "[\"r5\",0],[\":\",null],[\":x\",null],[\"x\",-2.0]]");
    CHECK(t != NULL);
    if (t)
        CHECK(tok_is(t, ":x", (const int32_t[]){0, 6, 8}, 3));
    embed_tok_free(t);

    /* malformed vocabularies */
    CHECK(tok_from("{\"not\": \"an array\"}") == NULL);
    CHECK(tok_from("[[\"a\",0],[\"b\",0],[\"c\",0],[\"d\",0],[\"e\",0],[\"f\",0],[\"g\",\"x\"]]") ==
          NULL);
    CHECK(tok_from("[[\"a\",0]]") == NULL); /* nothing past the reserved ids */
    int err = 0;
    CHECK(embed_tok_load("/nonexistent/vocab.json", 6, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EIO);
}

/* ---- the llmcached-embed tool, end to end -------------------------------- */

static void test_tool(void)
{
    const char *b = getenv("LLMCACHED_BUILD");
    char tool[4096], cmd[8192];
    snprintf(tool, sizeof tool, "%s/llmcached-embed", b && *b ? b : "build/rel");
    if (!file_exists(tool)) {
        printf("skip: %s not built\n", tool);
        return;
    }
    /* vectors: one JSON array of 512 numbers a line, "null" for an empty line */
    snprintf(cmd, sizeof cmd,
             "printf 'hello\\n\\nHello, world!\\n' | %s --model-path %s 2>/dev/null", tool,
             model_dir());
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, arrays = 0, nulls = 0;
    while (getline(&line, &cap, f) > 0) {
        lines++;
        json_t *j = json_loads(line, JSON_DECODE_ANY, NULL);
        if (json_is_array(j) && json_array_size(j) == 512)
            arrays++;
        if (json_is_null(j))
            nulls++;
        json_decref(j);
    }
    CHECK_EQ_INT(pclose(f) != 0, 1); /* a line failed: exit status says so */
    CHECK_EQ_INT(lines, 3);
    CHECK_EQ_INT(arrays, 2);
    CHECK_EQ_INT(nulls, 1);

    /* --eval on a tiny pairs file whose answer is known: duplicates are
     * identical texts (cosine 1), non-duplicates unrelated -> ROC-AUC 1 */
    char pairs[] = "/tmp/llmc-pairs-XXXXXX.jsonl";
    int fd = mkstemps(pairs, 6);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    FILE *pf = fdopen(fd, "w");
    fprintf(
        pf,
        "{\"a\": \"How do I bake bread?\", \"b\": \"How do I bake bread?\", \"label\": 1}\n"
        "{\"a\": \"Who won the world cup?\", \"b\": \"Best laptop for students\", \"label\": 0}\n"
        "{\"a\": \"What is an API?\", \"b\": \"What is an API?\", \"label\": 1}\n"
        "{\"a\": \"How tall is Everest?\", \"b\": \"Cheap flights to Rome\", \"label\": 0}\n");
    fclose(pf);
    snprintf(cmd, sizeof cmd, "%s --model-path %s --eval %s", tool, model_dir(), pairs);
    f = popen(cmd, "r");
    char out[1024] = "";
    if (f) {
        if (!fgets(out, sizeof out, f))
            out[0] = 0;
        CHECK_EQ_INT(pclose(f), 0);
    }
    CHECK(strstr(out, "4 pairs (0 skipped): ROC-AUC 1.0000") != NULL);
    unlink(pairs);
    free(line);
}

int main(void)
{
    test_math();
    test_tok_quirks();
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/model.json", model_dir());
    if (!file_exists(probe)) {
        printf("skip: USE lite model not found in %s (run scripts/fetch-use-model.sh)\n",
               model_dir());
        return UNIT_DONE();
    }
    int err = 0;
    llmc_embedder *e = open_use(model_dir(), &err);
    CHECK(e != NULL);
    if (!e) {
        fprintf(stderr, "open: %s\n", llmc_strerror(err));
        return UNIT_DONE();
    }
    test_inputs(e);
    const char *sd = getenv("LLMC_SHARED_DATA");
    char ref[4096];
    snprintf(ref, sizeof ref, "%s/embed/use_lite_reference.json",
             sd && *sd ? sd : "../shared/data");
    llmc_embedder_free(e);
    /* the reference path (fp32) against TensorFlow.js, then int8 against it */
    e = open_use_prec(model_dir(), "fp32", &err);
    CHECK(e != NULL);
    if (e && file_exists(ref)) {
        test_reference(e, ref);
        test_int8(ref);
    } else {
        printf("skip: reference vectors not found at %s\n", ref);
    }
    llmc_embedder_free(e);
    test_precision_names();
    test_corrupt();
    test_tool();
    return UNIT_DONE();
}
