/*
 * runner.c — one request's life on the engine: admit it to the KV pool,
 * attach the cached prefix, prefill the rest, decode, release.
 *
 * Design. runner_generate begins a sequence in the pool with room for
 * prompt + max_new_tokens (so it never runs out of blocks mid-way), skips
 * the positions the pool reports cached (their K/V is already in the
 * attached blocks), runs the model over the remaining prompt positions,
 * commits them (making their full blocks shareable), then samples and
 * appends tokens one by one, committing each. When the pool is short of
 * free blocks (LLMC_EBUSY) the call waits on r->cv, which every finished
 * request signals.
 *
 * Sampling: temperature 0 is argmax (first maximum). Otherwise softmax at
 * the temperature, optionally cut to the smallest set of tokens whose mass
 * reaches top_p, sampled with a per-request xorshift64* generator seeded
 * from the request's seed, so a given seed reproduces its output.
 *
 * Locking: r->mu/r->cv only for waiting on blocks; the pool locks itself.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner.h"

struct runner {
    model *m;
    tokenizer *tok;
    model_kv kv;
    llmc_kvpool *pool;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static double runner_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

runner_params runner_default_params(void)
{
    runner_params p;
    memset(&p, 0, sizeof p);
    p.block_size = 16;
    p.num_blocks = 0;
    p.enable_prefix_caching = 1;
    return p;
}

runner *runner_new(const runner_params *p, int *err)
{
    int e = LLMC_ENOMEM;
    runner *r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->m = model_load(p->model_path, &e);
    if (!r->m)
        goto fail;
    const model_config *c = model_cfg(r->m);
    r->tok = tok_load(p->tokenizer_path, c->vocab_size, &e);
    if (!r->tok)
        goto fail;
    llmc_kvpool_params pp = llmc_kvpool_default_params();
    pp.block_size = p->block_size > 0 ? p->block_size : 16;
    pp.num_blocks =
        p->num_blocks > 0 ? p->num_blocks : 8 * ((c->seq_len + pp.block_size - 1) / pp.block_size);
    pp.enable_prefix_caching = p->enable_prefix_caching;
    r->pool = llmc_kvpool_new(&pp, &e);
    if (!r->pool)
        goto fail;
    e = model_kv_init(&r->kv, r->m, pp.num_blocks, pp.block_size);
    if (e)
        goto fail;
    return r;
fail:
    runner_free(r);
    if (err)
        *err = e;
    return NULL;
}

void runner_free(runner *r)
{
    if (!r)
        return;
    model_kv_destroy(&r->kv);
    llmc_kvpool_free(r->pool);
    tok_free(r->tok);
    model_free(r->m);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

const model_config *runner_config(const runner *r)
{
    return model_cfg(r->m);
}

const tokenizer *runner_tok(const runner *r)
{
    return r->tok;
}

llmc_kvpool *runner_pool(runner *r)
{
    return r->pool;
}

static uint64_t runner_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

typedef struct {
    float p;
    int i;
} runner_cand;

static int runner_cand_cmp(const void *a, const void *b)
{
    float x = ((const runner_cand *)a)->p, y = ((const runner_cand *)b)->p;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int32_t runner_sample(float *logits, int n, const runner_gen *g, uint64_t *rng,
                             runner_cand *cand)
{
    if (g->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        cand[i].p = expf((logits[i] - mx) / g->temperature);
        cand[i].i = i;
        sum += cand[i].p;
    }
    int m = n;
    if (g->top_p > 0.0f && g->top_p < 1.0f) {
        qsort(cand, (size_t)n, sizeof *cand, runner_cand_cmp);
        double acc = 0.0;
        for (m = 0; m < n;) {
            acc += cand[m++].p / sum;
            if (acc >= g->top_p)
                break;
        }
        sum = 0.0;
        for (int i = 0; i < m; i++)
            sum += cand[i].p;
    }
    double u = (double)(runner_rand(rng) >> 11) * (1.0 / 9007199254740992.0) * sum, acc = 0.0;
    for (int i = 0; i < m; i++) {
        acc += cand[i].p;
        if (u < acc)
            return cand[i].i;
    }
    return cand[m - 1].i;
}

/* Begin a sequence, waiting for blocks while the pool is busy. */
static int runner_admit(runner *r, const int32_t *prompt, size_t n, size_t max_total,
                        const llmc_kv_extra *extra, llmc_kvseq **s)
{
    for (;;) {
        int e = llmc_kvpool_begin(r->pool, prompt, n, max_total, extra, s);
        if (e != LLMC_EBUSY)
            return e;
        pthread_mutex_lock(&r->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        pthread_mutex_unlock(&r->mu);
    }
}

static void runner_release(runner *r, llmc_kvseq *s)
{
    llmc_kvpool_end(r->pool, s);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Prefill positions [cached, n): the logits of the last are left in sc. */
static int runner_do_prefill(runner *r, model_scratch *sc, llmc_kvseq *s, const int32_t *prompt,
                             size_t n)
{
    size_t cached = llmc_kvseq_cached_tokens(s);
    const int32_t *bt = llmc_kvseq_blocks(s, NULL);
    for (size_t pos = cached; pos < n; pos++)
        model_forward(r->m, sc, &r->kv, bt, prompt[pos], (int)pos, pos + 1 == n);
    return llmc_kvseq_commit(s, n);
}

int runner_generate(runner *r, const int32_t *prompt, size_t n, const runner_gen *g,
                    runner_result *res)
{
    const model_config *c = model_cfg(r->m);
    memset(res, 0, sizeof *res);
    if (!prompt || n == 0 || g->max_new_tokens < 1)
        return LLMC_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return LLMC_EINVAL;
    size_t max_total = n + (size_t)g->max_new_tokens;
    if (max_total > (size_t)c->seq_len)
        return LLMC_ETOOBIG;
    double t0 = runner_now();
    model_scratch sc;
    runner_cand *cand = malloc((size_t)c->vocab_size * sizeof *cand);
    if (!cand || model_scratch_init(&sc, r->m)) {
        free(cand);
        return LLMC_ENOMEM;
    }
    llmc_kvseq *s = NULL;
    int e = runner_admit(r, prompt, n, max_total, g->extra, &s);
    if (e) {
        model_scratch_destroy(&sc);
        free(cand);
        return e;
    }
    double t1 = runner_now();
    res->queued_s = t1 - t0;
    res->prompt_tokens = (int)n;
    res->cached_tokens = (int)llmc_kvseq_cached_tokens(s);
    e = runner_do_prefill(r, &sc, s, prompt, n);
    res->prefill_s = runner_now() - t1;
    uint64_t rng = g->seed ? g->seed : 0x9E3779B97F4A7C15ULL;
    int32_t prev = prompt[n - 1];
    res->finish = RUNNER_STOP_LENGTH;
    for (int k = 0; !e && k < g->max_new_tokens; k++) {
        if (g->cancel && __atomic_load_n(g->cancel, __ATOMIC_RELAXED)) {
            res->finish = RUNNER_STOP_CALLER;
            break;
        }
        int32_t next = runner_sample(sc.logits, c->vocab_size, g, &rng, cand);
        if (k == 0)
            res->ttft_s = runner_now() - t0;
        if (next == TOK_BOS || next == TOK_EOS) {
            res->finish = RUNNER_STOP_EOS;
            break;
        }
        res->completion_tokens++;
        if (g->on_token) {
            char b[2];
            size_t len;
            const char *piece = tok_piece(r->tok, prev, next, b, &len);
            if (g->on_token(g->ud, next, piece, len)) {
                res->finish = RUNNER_STOP_CALLER;
                break;
            }
        }
        if (k + 1 == g->max_new_tokens)
            break; /* no need to run the model on the last token */
        e = llmc_kvseq_append(s, next);
        if (e)
            break;
        size_t pos = llmc_kvseq_len(s) - 1;
        model_forward(r->m, &sc, &r->kv, llmc_kvseq_blocks(s, NULL), next, (int)pos, 1);
        e = llmc_kvseq_commit(s, pos + 1);
        prev = next;
    }
    runner_release(r, s);
    model_scratch_destroy(&sc);
    free(cand);
    return e;
}

int runner_prefill(runner *r, const int32_t *prompt, size_t n, const llmc_kv_extra *extra,
                   runner_result *res)
{
    const model_config *c = model_cfg(r->m);
    memset(res, 0, sizeof *res);
    if (!prompt || n == 0 || n > (size_t)c->seq_len)
        return LLMC_EINVAL;
    model_scratch sc;
    if (model_scratch_init(&sc, r->m))
        return LLMC_ENOMEM;
    llmc_kvseq *s = NULL;
    double t0 = runner_now();
    int e = runner_admit(r, prompt, n, n, extra, &s);
    if (!e) {
        res->prompt_tokens = (int)n;
        res->cached_tokens = (int)llmc_kvseq_cached_tokens(s);
        e = runner_do_prefill(r, &sc, s, prompt, n);
        res->prefill_s = runner_now() - t0;
        runner_release(r, s);
    }
    model_scratch_destroy(&sc);
    return e;
}
