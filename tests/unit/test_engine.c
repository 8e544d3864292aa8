/* test_engine.c — the reference engine's model runner: tokenizer, the
 * "Once upon a time" story at temperature 0, identical tokens with prefix
 * caching on and off, cached token counts, concurrent requests sharing
 * blocks, and refusal of bad model files. Needs the shared test model
 * (LLMC_SHARED_DATA/models); skips with a message when it is absent. */
#include <pthread.h>
#include <unistd.h>

#include "../../engine/runner.h"
#include "unit.h"

static char model_path[1024], tok_path[1024];

typedef struct {
    int32_t ids[512];
    int n;
    char text[4096];
    size_t tlen;
} collected;

static int collect(void *ud, int32_t id, const char *piece, size_t len)
{
    collected *c = ud;
    c->ids[c->n++] = id;
    if (c->tlen + len < sizeof c->text) {
        memcpy(c->text + c->tlen, piece, len);
        c->tlen += len;
        c->text[c->tlen] = 0;
    }
    return 0;
}

static runner *mkrunner(int caching, int num_blocks)
{
    runner_params p = runner_default_params();
    p.model_path = model_path;
    p.tokenizer_path = tok_path;
    p.enable_prefix_caching = caching;
    p.num_blocks = num_blocks;
    int err = 0;
    runner *r = runner_new(&p, &err);
    CHECK(r != NULL);
    if (!r)
        fprintf(stderr, "runner_new: %s\n", llmc_strerror(err));
    return r;
}

static int gen(runner *r, const int32_t *p, size_t n, int max_new, collected *c, runner_result *res)
{
    memset(c, 0, sizeof *c);
    runner_gen g = {0};
    g.temperature = 0.0f;
    g.top_p = 1.0f;
    g.max_new_tokens = max_new;
    g.on_token = collect;
    g.ud = c;
    return runner_generate(r, p, n, &g, res);
}

static void test_tokenizer(runner *r)
{
    const tokenizer *t = runner_tok(r);
    int32_t ids[64];
    long n = tok_encode(t, "Once upon a time", 16, 1, ids, 64);
    CHECK_EQ_INT(n, 5); /* BOS, " Once", " upon", " a", " time" */
    CHECK_EQ_INT(ids[0], TOK_BOS);
    CHECK_EQ_INT(ids[1], 403);
    const char *texts[] = {"Once upon a time",
                           "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac!", "a  b\n\nc\t",
                           "x"};
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        int32_t buf[128];
        long m = tok_encode(t, texts[k], strlen(texts[k]), 1, buf, 128);
        CHECK(m > 1);
        char out[256];
        size_t o = 0;
        for (long i = 1; i < m; i++) {
            char b[2];
            size_t len;
            const char *pc = tok_piece(t, buf[i - 1], buf[i], b, &len);
            memcpy(out + o, pc, len);
            o += len;
        }
        out[o] = 0;
        CHECK(strcmp(out, texts[k]) == 0);
    }
    CHECK_EQ_INT(tok_encode(t, "Once upon a time", 16, 1, ids, 3), LLMC_ETOOBIG);
    CHECK_EQ_INT(tok_encode(t, "", 0, 1, ids, 64), 1);
}

static void test_story(runner *r)
{
    int32_t p[16];
    long n = tok_encode(runner_tok(r), "Once upon a time", 16, 1, p, 16);
    collected c;
    runner_result res;
    CHECK_EQ_INT(gen(r, p, (size_t)n, 60, &c, &res), 0);
    printf("story: Once upon a time%s\n", c.text);
    CHECK(strstr(c.text, "Lily") != NULL);
    CHECK(strstr(c.text, "little girl") != NULL);
    CHECK_EQ_INT(res.prompt_tokens, 5);
    CHECK_EQ_INT(res.completion_tokens, c.n);
    CHECK(c.n > 20);
    CHECK(res.finish == RUNNER_STOP_LENGTH || res.finish == RUNNER_STOP_EOS);
    /* the same request again: same tokens (greedy is deterministic) */
    collected c2;
    CHECK_EQ_INT(gen(r, p, (size_t)n, 60, &c2, &res), 0);
    CHECK_EQ_INT(c2.n, c.n);
    CHECK(memcmp(c.ids, c2.ids, (size_t)c.n * sizeof *c.ids) == 0);
}

/* sampling: a seed reproduces its output, another seed gives another one */
static void test_sampling(runner *r)
{
    int32_t p[16];
    long n = tok_encode(runner_tok(r), "Once upon a time", 16, 1, p, 16);
    collected a, b, c;
    runner_result res;
    runner_gen g = {0};
    g.temperature = 1.0f;
    g.top_p = 0.9f;
    g.max_new_tokens = 40;
    g.on_token = collect;
    g.seed = 7;
    memset(&a, 0, sizeof a);
    g.ud = &a;
    CHECK_EQ_INT(runner_generate(r, p, (size_t)n, &g, &res), 0);
    memset(&b, 0, sizeof b);
    g.ud = &b;
    CHECK_EQ_INT(runner_generate(r, p, (size_t)n, &g, &res), 0);
    CHECK(a.n == b.n && memcmp(a.ids, b.ids, (size_t)a.n * 4) == 0);
    int differs = 0;
    for (uint64_t seed = 8; seed < 12; seed++) {
        memset(&c, 0, sizeof c);
        g.seed = seed;
        g.ud = &c;
        CHECK_EQ_INT(runner_generate(r, p, (size_t)n, &g, &res), 0);
        differs += c.n != a.n || memcmp(c.ids, a.ids, (size_t)(c.n < a.n ? c.n : a.n) * 4) != 0;
    }
    CHECK(differs >= 3);
}

static const char *PREFIX =
    "Once upon a time, there was a little dog named Max. Max liked to run in the park with "
    "his friend Tim. One day, Max found a big red ball under a tree. He was very happy. ";
static const char *SUFFIX[4] = {"Tim said", "The ball was", "Then the sun", "Max barked and"};

static size_t mkprompt(runner *r, int k, int32_t *out)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s", PREFIX, SUFFIX[k]);
    return (size_t)tok_encode(runner_tok(r), text, strlen(text), 1, out, 512);
}

typedef struct {
    runner *r;
    int k, rounds;
    collected out;
    int err;
} tctx;

static void *tmain(void *arg)
{
    tctx *t = arg;
    int32_t p[512];
    size_t n = mkprompt(t->r, t->k, p);
    for (int i = 0; i < t->rounds; i++) {
        collected c;
        runner_result res;
        if (gen(t->r, p, n, 40, &c, &res))
            t->err++;
        if (i > 0 && (c.n != t->out.n || memcmp(c.ids, t->out.ids, (size_t)c.n * 4)))
            t->err++;
        t->out = c;
    }
    return NULL;
}

static void test_caching_identical(void)
{
    runner *on = mkrunner(1, 0), *off = mkrunner(0, 0);
    if (!on || !off)
        goto out;
    collected ref[4], got;
    runner_result res;
    int32_t p[512];
    for (int k = 0; k < 4; k++) {
        size_t n = mkprompt(off, k, p);
        CHECK_EQ_INT(gen(off, p, n, 40, &ref[k], &res), 0);
        CHECK_EQ_INT(res.cached_tokens, 0);
    }
    size_t n0 = mkprompt(on, 0, p);
    CHECK_EQ_INT(gen(on, p, n0, 40, &got, &res), 0);
    CHECK_EQ_INT(res.cached_tokens, 0);
    CHECK(got.n == ref[0].n && memcmp(got.ids, ref[0].ids, (size_t)got.n * 4) == 0);
    /* the same prompt again: every full block within the first n-1 tokens */
    CHECK_EQ_INT(gen(on, p, n0, 40, &got, &res), 0);
    CHECK_EQ_INT(res.cached_tokens, (int)((n0 - 1) / 16 * 16));
    CHECK(got.n == ref[0].n && memcmp(got.ids, ref[0].ids, (size_t)got.n * 4) == 0);
    /* other suffixes share the prefix's full blocks */
    int32_t pre[512];
    long np = tok_encode(runner_tok(on), PREFIX, strlen(PREFIX), 1, pre, 512);
    CHECK(np > 32);
    for (int k = 1; k < 4; k++) {
        size_t n = mkprompt(on, k, p);
        size_t common = 0;
        while (common < n && common < (size_t)np && p[common] == pre[common])
            common++;
        CHECK_EQ_INT(gen(on, p, n, 40, &got, &res), 0);
        CHECK(res.cached_tokens >= (int)(common / 16 * 16) - 16);
        CHECK(res.cached_tokens >= 32);
        CHECK_EQ_INT(res.cached_tokens % 16, 0);
        CHECK(got.n == ref[k].n && memcmp(got.ids, ref[k].ids, (size_t)got.n * 4) == 0);
    }
    llmc_kvpool_stats st;
    llmc_kvpool_get_stats(runner_pool(on), &st);
    CHECK(st.hits_tokens > 0 && st.queries_tokens > st.hits_tokens);
    CHECK_EQ_INT(st.blocks_in_use, 0);

    /* concurrent requests sharing the prefix blocks in a small pool (so
     * admission waits and blocks are evicted and reused): same tokens */
    runner *small = mkrunner(1, 24);
    if (small) {
        pthread_t th[4];
        tctx t[4];
        for (int k = 0; k < 4; k++) {
            t[k] = (tctx){.r = small, .k = k, .rounds = 3};
            pthread_create(&th[k], NULL, tmain, &t[k]);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            CHECK_EQ_INT(t[k].err, 0);
            CHECK(t[k].out.n == ref[k].n &&
                  memcmp(t[k].out.ids, ref[k].ids, (size_t)ref[k].n * 4) == 0);
        }
        llmc_kvpool_get_stats(runner_pool(small), &st);
        CHECK(st.hits_tokens > 0);
        CHECK_EQ_INT(st.blocks_in_use, 0);
        CHECK_EQ_INT(llmc_kvpool_check(runner_pool(small)), 0);
        runner_free(small);
    }

    /* a prompt plus max_new_tokens longer than the context is refused */
    int32_t big[600];
    for (int i = 0; i < 600; i++)
        big[i] = 300 + i % 100;
    CHECK_EQ_INT(gen(on, big, 500, 40, &got, &res), LLMC_ETOOBIG);
    CHECK_EQ_INT(gen(on, big, 600, 1, &got, &res), LLMC_ETOOBIG);
    big[3] = 100000;
    CHECK_EQ_INT(gen(on, big, 10, 1, &got, &res), LLMC_EINVAL);
out:
    runner_free(on);
    runner_free(off);
}

static void test_bad_files(void)
{
    char tmp[] = "/tmp/llmc-engine-XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    FILE *src = fopen(model_path, "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, src);
    fclose(src);
    CHECK(write(fd, buf, n) == (ssize_t)n); /* a truncated model */
    close(fd);
    int err = 0;
    CHECK(model_load(tmp, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_ECORRUPT);
    CHECK(model_load("/nonexistent/model.bin", &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EIO);
    CHECK(tok_load(tmp, 512, &err) == NULL); /* a model is not a tokenizer */
    CHECK_EQ_INT(err, LLMC_ECORRUPT);
    unlink(tmp);
}

int main(void)
{
    const char *d = getenv("LLMC_SHARED_DATA");
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.bin", d ? d : "../shared/data");
    snprintf(tok_path, sizeof tok_path, "%s/models/tok512.bin", d ? d : "../shared/data");
    if (access(model_path, R_OK) || access(tok_path, R_OK)) {
        printf("skip: test model not found at %s (set LLMC_SHARED_DATA)\n", model_path);
        return UNIT_DONE();
    }
    runner *r = mkrunner(1, 0);
    if (r) {
        test_tokenizer(r);
        test_story(r);
        test_sampling(r);
        runner_free(r);
    }
    test_caching_identical();
    test_bad_files();
    return UNIT_DONE();
}
