/*
 * test_embed_bert.c — the "bert" embedder against PyTorch.
 *
 * tests/embed_bert/make_ref.py builds five small random-weight BERT
 * sentence encoders in hub layout (F32 + vocab.txt + mean pooling, F16 +
 * "bert." prefix + tokenizer.json + CLS pooling, BF16 cased, max pooling,
 * mean-sqrt-len pooling with the model in a 0_BERT/ subfolder) and their
 * reference token ids and vectors, computed by PyTorch on one padded batch
 * with an attention mask. The reference directory is
 * $LLMC_BERT_REF, or $LLMCACHED_BUILD/bert-ref (set by the test runner), or
 * build/bert-ref; this test runs the script itself when ref.json is missing
 * or older than the script, and skips (passing, saying so) when Debian's
 * python3 has no torch.
 *
 * Checked: exact token ids for every text (accents, CJK, controls, NUL,
 * emoji, over-long words, truncation), 1 - cosine <= 1e-6 for every vector
 * in one batch and each text alone, a 1 MB text truncated like the long
 * reference, empty inputs, and corrupt / truncated / mismatched model files
 * giving their error codes.
 *
 * XLM-RoBERTa (tests/embed_bert/make_xlmr_ref.py, in $LLMC_XLMR_REF or
 * $LLMCACHED_BUILD/xlmr-ref): a SentencePiece Unigram model trained with
 * spm_train on six scripts, three random-weight XLM-R encoders (F32 + .model
 * + mean, F16 + tokenizer.json only + "roberta." + CLS, BF16 + both files +
 * E5's "query: " prompt + a 32-token window) held to PyTorch as above; 3,002
 * texts whose ids through both tokenizer paths must equal python3-
 * sentencepiece's; 2,000 random texts on which the two paths must agree; the
 * prompt from the config, the option and "" (none); and bad tokenizer and
 * config files refused with their codes.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "embed_impl.h"
#include "llmcache.h"
#include "unit.h"

int embed_bert_tokenize(embed_backend *be, const char *text, size_t len, int32_t *ids, size_t cap);

/* Debian's python3, where python3-torch lives (a pyenv/venv python3 on PATH
 * would not see it); $LLMC_PYTHON overrides. */
static const char *PY = "/usr/bin/python3";

static double cosine(const float *a, const double *b, size_t n)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += b[i] * b[i];
    }
    return d / sqrt(na * nb);
}

static double cosine_ff(const float *a, const float *b, size_t n)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return d / sqrt(na * nb);
}

static time_t mtime(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_mtime : 0;
}

/* Make sure dir/ref.json exists and is newer than the script and the one it
 * imports (dep, or NULL). 0 ok, 1 skip. */
static int ensure_reference(const char *dir, const char *script, const char *dep)
{
    char ref[1024], cmd[4096];
    snprintf(ref, sizeof ref, "%s/ref.json", dir);
    if (mtime(ref) && mtime(ref) >= mtime(script) && (!dep || mtime(ref) >= mtime(dep)))
        return 0;
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", PY);
    if (system(cmd) != 0) {
        printf("skip: %s with torch not found (Debian package python3-torch); "
               "BERT reference checks not run\n",
               PY);
        return 1;
    }
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && %s %s '%s'", dir, PY, script, dir);
    fprintf(stderr, "generating the reference: %s\n", cmd);
    if (system(cmd) != 0 || !mtime(ref)) {
        fprintf(stderr, "FAIL: reference generation failed\n");
        return -1;
    }
    return 0;
}

static llmc_embedder *open_bert(const char *dir, const char *name, int max_batch, int *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "bert";
    p.model_path = path;
    p.max_batch = max_batch;
    return llmc_embedder_new(&p, err);
}

static embed_backend *open_backend(const char *path, int *err)
{
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "bert";
    p.model_path = path;
    *err = 0;
    return embed_bert_new(&p, err);
}

static void check_model(const char *dir, const char *name, json_t *m, size_t dim)
{
    json_t *texts = json_object_get(m, "texts"), *ids = json_object_get(m, "ids"),
           *vecs = json_object_get(m, "vectors");
    size_t n = json_array_size(texts);
    CHECK(n > 0 && json_array_size(ids) == n && json_array_size(vecs) == n);
    int err = 0;
    llmc_embedder *e = open_bert(dir, name, 64, &err);
    CHECK(e != NULL);
    if (!e) {
        fprintf(stderr, "open %s: %s\n", name, llmc_strerror(err));
        return;
    }
    CHECK_EQ_INT(llmc_embedder_dim(e), dim);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bert:%s@", name);
    CHECK(strncmp(llmc_embedder_model(e), prefix, strlen(prefix)) == 0);

    /* Token ids, exactly. */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    embed_backend *b = open_backend(path, &err);
    CHECK(b != NULL);
    const char **tx = calloc(n, sizeof *tx);
    size_t *lens = calloc(n, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(texts, i);
        tx[i] = json_string_value(t);
        lens[i] = json_string_length(t);
        if (!b)
            continue;
        int32_t got[1024];
        int k = embed_bert_tokenize(b, tx[i], lens[i], got, 1024);
        json_t *want = json_array_get(ids, i);
        int same = k == (int)json_array_size(want);
        for (int j = 0; same && j < k; j++)
            same = got[j] == json_integer_value(json_array_get(want, (size_t)j));
        CHECK(same);
        if (!same) {
            fprintf(stderr, "  %s text %zu: got %d ids:", name, i, k);
            for (int j = 0; j < k; j++)
                fprintf(stderr, " %d", got[j]);
            fprintf(stderr, "\n  want %zu:", json_array_size(want));
            for (size_t j = 0; j < json_array_size(want); j++)
                fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, j)));
            fprintf(stderr, "\n");
        }
    }

    /* Vectors: one batch (packed, different lengths), then each alone. */
    float *out = calloc(n * dim, sizeof *out), *one = calloc(dim, sizeof *one);
    double *ref = calloc(dim, sizeof *ref);
    CHECK_EQ_INT(llmc_embed_batch(e, tx, lens, n, out), 0);
    double worst = 1.0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(vecs, i);
        CHECK(json_array_size(v) == dim);
        for (size_t j = 0; j < dim; j++)
            ref[j] = json_number_value(json_array_get(v, j));
        double c = cosine(out + i * dim, ref, dim);
        worst = c < worst ? c : worst;
        CHECK(c >= 1 - 1e-6);
        if (c < 1 - 1e-6)
            fprintf(stderr, "  %s text %zu: cosine %.6f\n", name, i, c);
        double nn = 0;
        for (size_t j = 0; j < dim; j++)
            nn += (double)out[i * dim + j] * out[i * dim + j];
        CHECK(fabs(nn - 1.0) < 1e-4);
        CHECK_EQ_INT(llmc_embed(e, tx[i], lens[i], one), 0);
        CHECK(cosine_ff(one, out + i * dim, dim) > 0.99999);
    }
    printf("bert %s: %zu texts, worst cosine vs PyTorch %.9f (1 - cos = %.1e)\n", name, n, worst,
           1.0 - worst);

    /* A 1 MB text is truncated to the window: a long reference text that
     * fills the window, repeated (space-separated) to 1 MB, gives its vector. */
    size_t li = n, big = 1u << 20, wmax = 0;
    for (size_t i = 0; i < n; i++)
        if (json_array_size(json_array_get(ids, i)) > wmax)
            wmax = json_array_size(json_array_get(ids, i));
    for (size_t i = 0; i < n; i++)
        if (lens[i] > 200 && json_array_size(json_array_get(ids, i)) == wmax)
            li = i;
    CHECK(li < n);
    if (li < n) {
        char *huge = malloc(big);
        for (size_t i = 0; i < big; i += lens[li] + 1) {
            size_t c = big - i < lens[li] ? big - i : lens[li];
            memcpy(huge + i, tx[li], c);
            if (i + c < big)
                huge[i + c] = ' ';
        }
        size_t hl = big; /* end on a whole character */
        while (hl > 0 && ((unsigned char)huge[hl - 1] & 0x80))
            hl--;
        CHECK_EQ_INT(llmc_embed(e, huge, hl, one), 0);
        CHECK(cosine_ff(one, out + li * dim, dim) > 0.99999);
        free(huge);
    }

    /* Nothing to embed (a model with a prompt always has the prompt). */
    if (strstr(llmc_embedder_model(e), "+p"))
        goto done;
    CHECK_EQ_INT(llmc_embed(e, "", 0, one), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, " \t\r\n ", 5, one), LLMC_EEMPTY);
    CHECK_EQ_INT(llmc_embed(e, "\xe2\x80\x8b\x01", 4, one), LLMC_EEMPTY); /* ZWSP, ^A */
    CHECK_EQ_INT(llmc_embed(e, "\xc3", 1, one), LLMC_EUTF8);
    /* An empty text fails the whole batch. */
    const char *mix[2] = {"hello", ""};
    size_t mixl[2] = {5, 0};
    CHECK_EQ_INT(llmc_embed_batch(e, mix, mixl, 2, out), LLMC_EEMPTY);
done:
    free(out);
    free(one);
    free(ref);
    free(tx);
    free(lens);
    if (b)
        b->free(b);
    llmc_embedder_free(e);
}

/* Random text (ASCII, Latin, combining marks, CJK, emoji, controls, NUL,
 * spaces, punctuation): never a crash, always 0 or LLMC_EEMPTY, unit vectors. */
static const uint32_t POOL[] = {'a',    'z',    'Q',    ' ',    '\t',   '\n',    0,
                                '.',    '#',    0xe9,   0x301,  0x4e2d, 0x1f600, 0x200b,
                                0x3000, 0x130,  0x1e9e, 0xfb01, 0xd55c, 0xf900,  0x10ffff,
                                0x7f,   0xfffd, 0x2028, 0x5f,   0x2d,   0x41,    0x3c3};

/* XLM-R's texts add what NFKC composes, decomposes or maps to several
 * characters: Hangul jamo, half-width kana + sound mark, full-width letters,
 * circled digits, squared units, Arabic ligatures, U+2581 itself. */
static const uint32_t POOL_NFKC[] = {'a',    ' ',    ' ',    '\t',   0,       0x301,  0x1100,
                                     0x1161, 0x11a8, 0xff76, 0xff9e, 0xff21,  0x2460, 0x338f,
                                     0xfefb, 0x2581, 0x43f,  0x4e2d, 0x1f600, 0x200d, 0xfe0f,
                                     0xe9,   0x65,   0xfb01, 0xa0,   0x3000,  0x2028, 0x7f};

/* Up to 149 characters drawn from pool[0..np) into buf (>= 600 bytes); its
 * length. */
static size_t random_text(uint64_t *rng, const uint32_t *pool, size_t np, char *buf)
{
    size_t n = 0;
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    int len = (int)(*rng % 150);
    for (int i = 0; i < len; i++) {
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        uint32_t c = pool[*rng % np];
        if (c < 0x80) {
            buf[n++] = (char)c;
        } else if (c < 0x800) {
            buf[n++] = (char)(0xc0 | (c >> 6));
            buf[n++] = (char)(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            buf[n++] = (char)(0xe0 | (c >> 12));
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (c & 0x3f));
        } else {
            buf[n++] = (char)(0xf0 | (c >> 18));
            buf[n++] = (char)(0x80 | ((c >> 12) & 0x3f));
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (c & 0x3f));
        }
    }
    return n;
}

static void check_random_text(const char *dir)
{
    int err = 0;
    llmc_embedder *e = open_bert(dir, "mean-f32", 8, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    size_t dim = llmc_embedder_dim(e);
    float *out = calloc(dim, sizeof *out);
    uint64_t rng = 88172645463325252ull;
    int ok = 1;
    for (int t = 0; t < 300; t++) {
        char buf[1024];
        size_t n = random_text(&rng, POOL, sizeof POOL / sizeof POOL[0], buf);
        int rc = llmc_embed(e, buf, n, out);
        if (rc == 0) {
            double nn = 0;
            for (size_t j = 0; j < dim; j++)
                nn += (double)out[j] * out[j];
            ok &= fabs(nn - 1.0) < 1e-4;
        } else {
            ok &= rc == LLMC_EEMPTY;
        }
    }
    CHECK(ok);
    free(out);
    llmc_embedder_free(e);
}

/* ---- corrupt files ---------------------------------------------------- */

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    *len = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, len, f);
        fclose(f);
    }
}

/* A copy of model dir `src` at `dst` whose model.safetensors is st[0..stlen)
 * (NULL: none) and whose config.json is cfg (NULL: the original). */
static void make_variant(const char *src, const char *dst, const void *st, size_t stlen,
                         const char *cfg)
{
    static const char *files[] = {"config.json",
                                  "vocab.txt",
                                  "tokenizer_config.json",
                                  "sentence_bert_config.json",
                                  "tokenizer.json",
                                  "modules.json",
                                  "1_Pooling/config.json",
                                  "sentencepiece.bpe.model",
                                  "config_sentence_transformers.json"};
    char a[2048], b[2048];
    mkdir(dst, 0755);
    snprintf(b, sizeof b, "%s/1_Pooling", dst);
    mkdir(b, 0755);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        unsigned char *buf = NULL;
        size_t len;
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", dst, files[i]);
        if (read_file(a, &buf, &len) == 0)
            write_file(b, buf, len);
        else
            unlink(b); /* not in the source model: not in the copy either */
        free(buf);
    }
    if (cfg) {
        snprintf(b, sizeof b, "%s/config.json", dst);
        write_file(b, cfg, strlen(cfg));
    }
    snprintf(b, sizeof b, "%s/model.safetensors", dst);
    unlink(b);
    if (st)
        write_file(b, st, stlen);
}

static int open_err(const char *path)
{
    int err = 0;
    embed_backend *b = open_backend(path, &err);
    if (b) {
        b->free(b);
        return 0;
    }
    return err;
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, text, strlen(text));
}

/* Files we read but whose options we do not implement: LLMC_ENOTSUP. */
static void check_unsupported(const char *dir)
{
    char src[1024], dst[1024], path[1100];
    snprintf(src, sizeof src, "%s/cls-f16", dir);
    snprintf(dst, sizeof dst, "%s/unsupported", dir);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    unsigned char *st;
    size_t len;
    CHECK(read_file(path, &st, &len) == 0);
    make_variant(src, dst, st, len, NULL);
    CHECK_EQ_INT(open_err(dst), 0);

    /* A Dense module after pooling. */
    put_file(dst, "modules.json",
             "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":"
             "\"sentence_transformers.models.Transformer\"},{\"idx\":1,\"name\":\"1\","
             "\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
             "{\"idx\":2,\"name\":\"2\",\"path\":\"2_Dense\",\"type\":"
             "\"sentence_transformers.models.Dense\"}]");
    CHECK_EQ_INT(open_err(dst), LLMC_ENOTSUP);
    make_variant(src, dst, st, len, NULL);
    /* Two pooling modes at once (concatenation). */
    put_file(dst, "1_Pooling/config.json",
             "{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":true}");
    CHECK_EQ_INT(open_err(dst), LLMC_ENOTSUP);
    make_variant(src, dst, st, len, NULL);
    /* A Unigram tokenizer, and a normalizer other than BertNormalizer. */
    snprintf(path, sizeof path, "%s/tokenizer.json", src);
    json_t *tj = json_load_file(path, 0, NULL);
    CHECK(tj != NULL);
    json_object_set_new(json_object_get(tj, "model"), "type", json_string("Unigram"));
    char *s = json_dumps(tj, 0);
    put_file(dst, "tokenizer.json", s);
    free(s);
    CHECK_EQ_INT(open_err(dst), LLMC_ENOTSUP);
    json_object_set_new(json_object_get(tj, "model"), "type", json_string("WordPiece"));
    json_object_set_new(json_object_get(tj, "normalizer"), "type", json_string("Sequence"));
    s = json_dumps(tj, 0);
    put_file(dst, "tokenizer.json", s);
    free(s);
    CHECK_EQ_INT(open_err(dst), LLMC_ENOTSUP);
    /* A vocabulary without [CLS]. */
    json_object_set_new(json_object_get(tj, "normalizer"), "type", json_string("BertNormalizer"));
    json_t *vocab = json_object_get(json_object_get(tj, "model"), "vocab");
    json_t *cls = json_object_get(vocab, "[CLS]");
    json_object_set(vocab, "[CLZ]", cls);
    json_object_del(vocab, "[CLS]");
    s = json_dumps(tj, 0);
    put_file(dst, "tokenizer.json", s);
    free(s);
    CHECK_EQ_INT(open_err(dst), LLMC_ENOTSUP);
    json_decref(tj);
    free(st);
}

/* A safetensors file with its header replaced by hdr (data kept). */
static unsigned char *with_header(const unsigned char *st, size_t len, json_t *hdr, size_t *outlen)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | st[i];
    char *h = json_dumps(hdr, JSON_COMPACT);
    size_t hl = strlen(h), dl = len - 8 - (size_t)n;
    unsigned char *o = malloc(8 + hl + dl);
    for (int i = 0; i < 8; i++)
        o[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(o + 8, h, hl);
    memcpy(o + 8 + hl, st + 8 + n, dl);
    free(h);
    *outlen = 8 + hl + dl;
    return o;
}

static json_t *header_of(const unsigned char *st)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | st[i];
    return json_loadb((const char *)st + 8, (size_t)n, 0, NULL);
}

static void check_corrupt(const char *dir)
{
    char src[1024], dst[1024], path[1100];
    snprintf(src, sizeof src, "%s/mean-f32", dir);
    snprintf(dst, sizeof dst, "%s/corrupt", dir);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    unsigned char *st;
    size_t len;
    CHECK(read_file(path, &st, &len) == 0);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = (hn << 8) | st[i];

    /* The unmodified copy opens. */
    make_variant(src, dst, st, len, NULL);
    CHECK_EQ_INT(open_err(dst), 0);

    /* A header whose length leaves the data unaligned (the F32 tensors
     * cannot be used in place and are copied): same vectors. */
    {
        json_t *h = header_of(st);
        json_object_set_new(json_object_get(h, "__metadata__"), "pad", json_string(""));
        size_t nl;
        unsigned char *v = with_header(st, len, h, &nl);
        uint64_t vn = 0;
        for (int i = 7; i >= 0; i--)
            vn = (vn << 8) | v[i];
        if ((8 + vn) % 4 == 0) { /* make it odd: one more byte in the pad */
            json_object_set_new(json_object_get(h, "__metadata__"), "pad", json_string("x"));
            free(v);
            v = with_header(st, len, h, &nl);
        }
        make_variant(src, dst, v, nl, NULL);
        int err = 0;
        llmc_embedder *e1 = open_bert(dir, "mean-f32", 8, &err);
        llmc_embedder *e2 = open_bert(dir, "corrupt", 8, &err);
        CHECK(e1 && e2);
        if (e1 && e2) {
            float a1[256], a2[256];
            CHECK(llmc_embedder_dim(e1) <= 256);
            CHECK_EQ_INT(llmc_embed(e1, "hello world", 11, a1), 0);
            CHECK_EQ_INT(llmc_embed(e2, "hello world", 11, a2), 0);
            CHECK(memcmp(a1, a2, llmc_embedder_dim(e1) * sizeof(float)) == 0);
        }
        llmc_embedder_free(e1);
        llmc_embedder_free(e2);
        free(v);
        json_decref(h);
    }

    /* Missing weights file. */
    make_variant(src, dst, NULL, 0, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_EIO);

    /* Truncated: in the data, in the header, inside the length. */
    make_variant(src, dst, st, len / 2, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    make_variant(src, dst, st, 8 + (size_t)hn / 2, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    make_variant(src, dst, st, 5, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    make_variant(src, dst, st, len - 1, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);

    /* A header length past the end of the file, and a huge one. */
    unsigned char *bad = malloc(len);
    memcpy(bad, st, len);
    bad[0] = (unsigned char)(hn + 1), bad[1] = (unsigned char)((hn + 1) >> 8);
    bad[3] = 0x10;
    make_variant(src, dst, bad, len, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    memcpy(bad, st, len);
    memset(bad, 0xff, 8);
    make_variant(src, dst, bad, len, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);

    /* Garbage JSON. */
    memcpy(bad, st, len);
    bad[8] = 'x';
    make_variant(src, dst, bad, len, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);

    /* NaN weights (the first tensor's first float). */
    memcpy(bad, st, len);
    memset(bad + 8 + hn, 0xff, 4);
    make_variant(src, dst, bad, len, NULL);
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    free(bad);

    /* Header edits: shape disagreeing with the byte range, offsets out of
     * range, an unknown dtype on a used tensor, a missing tensor, and a
     * well-formed tensor of the wrong shape for config.json. */
    const char *key = "encoder.layer.1.intermediate.dense.weight";
    for (int variant = 0; variant < 5; variant++) {
        json_t *h = header_of(st);
        json_t *t = json_object_get(h, key);
        CHECK(t != NULL);
        if (!t) {
            json_decref(h);
            continue;
        }
        int want = LLMC_ECORRUPT;
        if (variant == 0) {
            json_array_set_new(json_object_get(t, "shape"), 0, json_integer(97));
        } else if (variant == 1) {
            json_t *off = json_object_get(t, "data_offsets");
            json_array_set_new(off, 1, json_integer((json_int_t)len));
        } else if (variant == 2) {
            json_object_set_new(t, "dtype", json_string("F64"));
            want = LLMC_ENOTSUP;
        } else if (variant == 3) {
            json_object_set(h, "renamed.weight", t);
            json_object_del(h, key);
            want = LLMC_EMISMATCH;
        } else {
            json_t *sh = json_object_get(t, "shape");
            json_int_t a = json_integer_value(json_array_get(sh, 0));
            json_int_t b = json_integer_value(json_array_get(sh, 1));
            json_array_set_new(sh, 0, json_integer(b));
            json_array_set_new(sh, 1, json_integer(a));
            want = LLMC_EMISMATCH;
        }
        size_t nl;
        unsigned char *v = with_header(st, len, h, &nl);
        make_variant(src, dst, v, nl, NULL);
        int got = open_err(dst);
        CHECK_EQ_INT(got, want);
        if (got != want)
            fprintf(stderr, "  header variant %d\n", variant);
        free(v);
        json_decref(h);
    }

    /* config.json: unparsable, another architecture, a size that disagrees
     * with the weights. */
    snprintf(path, sizeof path, "%s/config.json", src);
    unsigned char *cfgb;
    size_t cfgl;
    CHECK(read_file(path, &cfgb, &cfgl) == 0);
    cfgb[cfgl] = 0;
    make_variant(src, dst, st, len, "{\"hidden_size\": 48,");
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    json_t *cfg = json_loads((const char *)cfgb, 0, NULL);
    json_object_set_new(cfg, "model_type", json_string("roberta"));
    char *s = json_dumps(cfg, 0);
    make_variant(src, dst, st, len, s);
    CHECK_EQ_INT(open_err(dst), LLMC_ENOTSUP);
    free(s);
    json_object_set_new(cfg, "model_type", json_string("bert"));
    json_object_set_new(cfg, "intermediate_size", json_integer(64));
    s = json_dumps(cfg, 0);
    make_variant(src, dst, st, len, s);
    CHECK_EQ_INT(open_err(dst), LLMC_EMISMATCH);
    free(s);
    json_decref(cfg);
    free(cfgb);
    free(st);

    /* No such directory; no path. */
    CHECK_EQ_INT(open_err("/nonexistent/model"), LLMC_EIO);
    int err = 0;
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "bert";
    CHECK(llmc_embedder_new(&p, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
}

/* ---- XLM-RoBERTa (tests/embed_bert/make_xlmr_ref.py) ------------------- */

/* A few thousand texts: both tokenizer paths give python3-sentencepiece's ids. */
static void check_xlmr_tokens(const char *dir, json_t *tok)
{
    json_t *texts = json_object_get(tok, "texts"), *ids = json_object_get(tok, "ids");
    json_t *models = json_object_get(tok, "models");
    size_t n = json_array_size(texts);
    CHECK(n >= 2000 && json_array_size(ids) == n && json_array_size(models) == 2);
    for (size_t m = 0; m < json_array_size(models); m++) {
        const char *name = json_string_value(json_array_get(models, m));
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int err = 0;
        embed_backend *b = open_backend(path, &err);
        CHECK(b != NULL);
        if (!b) {
            fprintf(stderr, "open %s: %s\n", name, llmc_strerror(err));
            continue;
        }
        size_t differ = 0, empty = 0, unk = 0;
        int32_t got[1024];
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(texts, i), *want = json_array_get(ids, i);
            int k = embed_bert_tokenize(b, json_string_value(t), json_string_length(t), got, 1024);
            size_t wn = json_array_size(want);
            int same = wn == 0 ? k == LLMC_EEMPTY : k == (int)wn;
            for (int j = 0; same && wn && j < k; j++)
                same = got[j] == json_integer_value(json_array_get(want, (size_t)j));
            empty += wn == 0;
            for (int j = 0; same && j < k; j++)
                unk += got[j] == 3;
            if (!same && differ++ < 5) {
                char *q = json_dumps(t, JSON_ENCODE_ANY);
                fprintf(stderr, "  %s text %zu %s: got %d ids:", name, i, q, k);
                free(q);
                for (int j = 0; j < k && j < 40; j++)
                    fprintf(stderr, " %d", got[j]);
                fprintf(stderr, "\n  want %zu:", wn);
                for (size_t j = 0; j < wn && j < 40; j++)
                    fprintf(stderr, " %lld",
                            (long long)json_integer_value(json_array_get(want, j)));
                fprintf(stderr, "\n");
            }
        }
        CHECK_EQ_INT(differ, 0);
        CHECK(empty > 0 && unk > 0); /* the set reaches those cases */
        printf("xlmr tokens %s: %zu texts, %zu differ from python3-sentencepiece (%zu empty, %zu "
               "<unk>)\n",
               name, n, differ, empty, unk);
        b->free(b);
    }
}

/* Random text (NUL, controls, combining marks, ligatures, Hangul, emoji,
 * U+10FFFF, runs of white space): the two tokenizer paths agree on every id. */
static void check_xlmr_random(const char *dir)
{
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/xlmr-spm-f32", dir);
    snprintf(b, sizeof b, "%s/xlmr-json-f16", dir);
    int err = 0;
    embed_backend *lib = open_backend(a, &err), *own = open_backend(b, &err);
    CHECK(lib && own);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t differ = 0, empty = 0;
    for (int t = 0; lib && own && t < 2000; t++) {
        char buf[1024];
        int32_t x[1024], y[1024];
        size_t n = t % 2
                       ? random_text(&rng, POOL, sizeof POOL / sizeof POOL[0], buf)
                       : random_text(&rng, POOL_NFKC, sizeof POOL_NFKC / sizeof POOL_NFKC[0], buf);
        int kx = embed_bert_tokenize(lib, buf, n, x, 1024);
        int ky = embed_bert_tokenize(own, buf, n, y, 1024);
        int same = kx == ky;
        for (int j = 0; same && j < kx; j++)
            same = x[j] == y[j];
        differ += !same;
        empty += kx == LLMC_EEMPTY;
    }
    CHECK_EQ_INT(differ, 0);
    CHECK(empty > 0);
    printf("xlmr random texts: 2000, %zu differ between libsentencepiece and tokenizer.json\n",
           differ);
    if (lib)
        lib->free(lib);
    if (own)
        own->free(own);
}

/* The E5-style model's "query: " prompt: from its config, or the option. */
static void check_xlmr_prompt(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/e5-bf16", dir);
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "bert";
    p.model_path = path;
    int err = 0;
    llmc_embedder *dflt = llmc_embedder_new(&p, &err);
    p.query_prefix = "query: ";
    llmc_embedder *same = llmc_embedder_new(&p, &err);
    p.query_prefix = "";
    llmc_embedder *none = llmc_embedder_new(&p, &err);
    CHECK(dflt && same && none);
    if (!dflt || !same || !none)
        goto out;
    CHECK(strcmp(llmc_embedder_model(dflt), llmc_embedder_model(same)) == 0);
    CHECK(strstr(llmc_embedder_model(dflt), "+p") != NULL);
    CHECK(strcmp(llmc_embedder_model(dflt), llmc_embedder_model(none)) != 0);
    size_t dim = llmc_embedder_dim(dflt);
    float *a = calloc(3 * dim, sizeof *a);
    const char *t = "what is the weather today";
    CHECK_EQ_INT(llmc_embed(dflt, t, strlen(t), a), 0);
    CHECK_EQ_INT(llmc_embed(same, t, strlen(t), a + dim), 0);
    CHECK_EQ_INT(llmc_embed(none, t, strlen(t), a + 2 * dim), 0);
    CHECK(cosine_ff(a, a + dim, dim) > 0.999999);
    CHECK(cosine_ff(a, a + 2 * dim, dim) < 0.9999);
    /* the prompt alone is still a text */
    CHECK_EQ_INT(llmc_embed(dflt, "", 0, a), 0);
    CHECK_EQ_INT(llmc_embed(none, "", 0, a), LLMC_EEMPTY);
    free(a);
out:
    llmc_embedder_free(dflt);
    llmc_embedder_free(same);
    llmc_embedder_free(none);
}

static void put_json(const char *dir, const char *name, json_t *j)
{
    char *s = json_dumps(j, 0);
    put_file(dir, name, s);
    free(s);
}

/* Write j as dir/name, then open dir: its error (0 if it opens). */
static int open_with(const char *dir, const char *name, json_t *j)
{
    put_json(dir, name, j);
    return open_err(dir);
}

/* A charsmap whose framing is right but whose trie and strings are random
 * bytes (no NUL in the strings): it loads, and tokenising random text stays
 * inside its arrays (ASan watches) and gives ids or LLMC_EEMPTY. */
static void check_xlmr_garbage_charsmap(const char *dst, json_t *tj, json_t *pc)
{
    unsigned char raw[4 + 4096 + 256];
    unsigned char b64[sizeof raw * 2];
    uint64_t rng = 12345;
    for (int round = 0; round < 4; round++) {
        raw[0] = 0, raw[1] = 16, raw[2] = 0, raw[3] = 0; /* 4096 bytes of trie */
        for (size_t i = 4; i < sizeof raw; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            raw[i] = (unsigned char)(rng | (i >= 4 + 4096)); /* strings: no NUL */
        }
        EVP_EncodeBlock(b64, raw, (int)sizeof raw);
        json_object_set_new(pc, "precompiled_charsmap", json_string((const char *)b64));
        put_json(dst, "tokenizer.json", tj);
        int err = 0;
        embed_backend *b = open_backend(dst, &err);
        CHECK(b != NULL);
        for (int t = 0; b && t < 200; t++) {
            char buf[1024];
            int32_t ids[1024];
            size_t n = random_text(&rng, POOL_NFKC, sizeof POOL_NFKC / sizeof POOL_NFKC[0], buf);
            int k = embed_bert_tokenize(b, buf, n, ids, 1024);
            CHECK(k >= 2 || k == LLMC_EEMPTY);
        }
        if (b)
            b->free(b);
    }
}

/* With dir/config_sentence_transformers.json = cst: 1 when the model has a
 * prompt (its name says so), 0 when not, or the error opening it. */
static int prompted(const char *dir, const char *cst)
{
    put_file(dir, "config_sentence_transformers.json", cst);
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "bert";
    p.model_path = dir;
    int err = 0;
    llmc_embedder *e = llmc_embedder_new(&p, &err);
    if (!e)
        return err;
    int has = strstr(llmc_embedder_model(e), "+p") != NULL;
    llmc_embedder_free(e);
    return has;
}

/* Bad XLM-R files are refused with their codes. */
static void check_xlmr_refused(const char *dir)
{
    char src[1024], dst[1024], path[1100];
    unsigned char *st;
    size_t len;
    snprintf(src, sizeof src, "%s/xlmr-json-f16", dir);
    snprintf(dst, sizeof dst, "%s/refused", dir);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    CHECK(read_file(path, &st, &len) == 0);
    make_variant(src, dst, st, len, NULL);
    CHECK_EQ_INT(open_err(dst), 0);
    snprintf(path, sizeof path, "%s/tokenizer.json", src);
    json_t *tj = json_load_file(path, 0, NULL);
    CHECK(tj != NULL);
    json_t *model = json_object_get(tj, "model");
    json_t *pc =
        json_array_get(json_object_get(json_object_get(tj, "normalizer"), "normalizers"), 0);
    json_t *cm = json_incref(json_object_get(pc, "precompiled_charsmap"));
    /* byte fallback; another pre-tokenizer; no unk id: not implemented */
    json_object_set_new(model, "byte_fallback", json_true());
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), LLMC_ENOTSUP);
    json_object_set_new(model, "byte_fallback", json_false());
    json_object_set_new(json_object_get(tj, "pre_tokenizer"), "type", json_string("ByteLevel"));
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), LLMC_ENOTSUP);
    json_object_set_new(json_object_get(tj, "pre_tokenizer"), "type", json_string("Metaspace"));
    /* a charsmap that is not base64; one whose trie runs past its end */
    json_object_set_new(pc, "precompiled_charsmap", json_string("!!!!"));
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), LLMC_ECORRUPT);
    json_object_set_new(pc, "precompiled_charsmap", json_string("/////w=="));
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), LLMC_ECORRUPT);
    check_xlmr_garbage_charsmap(dst, tj, pc);
    json_object_set(pc, "precompiled_charsmap", cm);
    /* a vocabulary entry that is not [piece, score]; unk out of range */
    json_t *vocab = json_object_get(model, "vocab");
    json_t *keep = json_incref(json_array_get(vocab, 10));
    json_array_set_new(vocab, 10, json_string("x"));
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), LLMC_ECORRUPT);
    json_array_set_new(vocab, 10, keep);
    json_object_set_new(model, "unk_id", json_integer(1 << 30));
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), LLMC_ECORRUPT);
    json_object_set_new(model, "unk_id", json_integer(3));
    /* more pieces than the embedding table has rows */
    CHECK_EQ_INT(open_with(dst, "tokenizer.json", tj), 0);
    snprintf(path, sizeof path, "%s/config.json", src);
    json_t *cfg = json_load_file(path, 0, NULL);
    CHECK(cfg != NULL);
    json_object_set_new(cfg, "vocab_size", json_integer((json_int_t)json_array_size(vocab) - 1));
    CHECK_EQ_INT(open_with(dst, "config.json", cfg), LLMC_EMISMATCH);
    /* RoBERTa (byte-level BPE) is another tokenizer: not implemented */
    json_object_set_new(cfg, "vocab_size", json_integer((json_int_t)json_array_size(vocab)));
    json_object_set_new(cfg, "model_type", json_string("roberta"));
    CHECK_EQ_INT(open_with(dst, "config.json", cfg), LLMC_ENOTSUP);
    /* a padding id that leaves no window */
    json_object_set_new(cfg, "model_type", json_string("xlm-roberta"));
    json_object_set_new(cfg, "pad_token_id", json_integer(600));
    CHECK_EQ_INT(open_with(dst, "config.json", cfg), LLMC_ECORRUPT);
    json_object_set_new(cfg, "pad_token_id", json_integer(1));
    CHECK_EQ_INT(open_with(dst, "config.json", cfg), 0);
    /* the prompt: "query", else the default one, else none; a file that is
     * not JSON is refused */
    CHECK_EQ_INT(prompted(dst, "{\"prompts\":{\"passage\":\"p: \"}}"), 0);
    CHECK_EQ_INT(prompted(dst, "{\"prompts\":{\"passage\":\"p: \"},\"default_prompt_name\":"
                               "\"passage\"}"),
                 1);
    CHECK_EQ_INT(prompted(dst, "{\"prompts\":{\"query\":\"q: \"}}"), 1);
    CHECK_EQ_INT(prompted(dst, "{\"prompts\":"), LLMC_ECORRUPT);
    snprintf(path, sizeof path, "%s/config_sentence_transformers.json", dst);
    unlink(path);
    /* no tokenizer file at all; a sentencepiece model that is not one */
    snprintf(path, sizeof path, "%s/tokenizer.json", dst);
    unlink(path);
    CHECK_EQ_INT(open_err(dst), LLMC_EIO);
    put_file(dst, "sentencepiece.bpe.model", "this is not a protobuf \xff\xfe");
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    put_file(dst, "sentencepiece.bpe.model", "");
    CHECK_EQ_INT(open_err(dst), LLMC_ECORRUPT);
    json_decref(cm);
    json_decref(cfg);
    json_decref(tj);
    free(st);
}

static void check_xlmr(const char *dir)
{
    int r =
        ensure_reference(dir, "tests/embed_bert/make_xlmr_ref.py", "tests/embed_bert/make_ref.py");
    if (r > 0)
        return;
    CHECK(r == 0);
    char ref[1100];
    snprintf(ref, sizeof ref, "%s/ref.json", dir);
    json_error_t je;
    json_t *root = r == 0 ? json_load_file(ref, 0, &je) : NULL;
    CHECK(root != NULL);
    if (!root)
        return;
    size_t dim = (size_t)json_integer_value(json_object_get(root, "dim"));
    const char *name;
    json_t *m;
    int count = 0;
    json_object_foreach(json_object_get(root, "models"), name, m)
    {
        check_model(dir, name, m, dim);
        count++;
    }
    CHECK_EQ_INT(count, 3);
    check_xlmr_tokens(dir, json_object_get(root, "tok"));
    check_xlmr_random(dir);
    check_xlmr_prompt(dir);
    check_xlmr_refused(dir);
    json_decref(root);
}

/* $var, or $LLMCACHED_BUILD/sub (set by the test runner), or build/sub. */
static void ref_dir(char *dir, size_t n, const char *var, const char *sub)
{
    const char *env = getenv(var);
    const char *build = getenv("LLMCACHED_BUILD");
    if (env && env[0])
        snprintf(dir, n, "%s", env);
    else if (build && build[0])
        snprintf(dir, n, "%s/%s", build, sub);
    else
        snprintf(dir, n, "build/%s", sub);
}

int main(void)
{
    char dir[512], xdir[512];
    ref_dir(dir, sizeof dir, "LLMC_BERT_REF", "bert-ref");
    ref_dir(xdir, sizeof xdir, "LLMC_XLMR_REF", "xlmr-ref");
    const char *py = getenv("LLMC_PYTHON");
    if (py && py[0])
        PY = py;
    check_xlmr(xdir);
    int r = ensure_reference(dir, "tests/embed_bert/make_ref.py", NULL);
    if (r > 0)
        return UNIT_DONE();
    CHECK(r == 0);
    if (r < 0)
        return UNIT_DONE();
    char ref[1100];
    snprintf(ref, sizeof ref, "%s/ref.json", dir);
    json_error_t je;
    json_t *root = json_load_file(ref, JSON_ALLOW_NUL, &je);
    CHECK(root != NULL);
    if (!root) {
        fprintf(stderr, "%s: %s\n", ref, je.text);
        return UNIT_DONE();
    }
    size_t dim = (size_t)json_integer_value(json_object_get(root, "dim"));
    json_t *models = json_object_get(root, "models");
    const char *name;
    json_t *m;
    int count = 0;
    json_object_foreach(models, name, m)
    {
        check_model(dir, name, m, dim);
        count++;
    }
    CHECK_EQ_INT(count, 5);
    check_random_text(dir);
    check_corrupt(dir);
    check_unsupported(dir);
    json_decref(root);
    return UNIT_DONE();
}
