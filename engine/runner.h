/*
 * runner.h — generation with prefix caching: a model, its tokenizer, a paged
 * KV store and the llmc_kvpool that assigns its blocks (engine-internal).
 *
 * Thread safety: runner_generate may run on several threads at once; the
 * pool is thread-safe and each call owns its sequence and scratch. Blocks
 * attached from the cache are only read; blocks the call allocated are
 * written only by it, and become visible to others when committed.
 */
#ifndef ENGINE_RUNNER_H
#define ENGINE_RUNNER_H

#include "llmcache.h"
#include "model.h"

typedef struct runner runner;

typedef struct {
    const char *model_path, *tokenizer_path;
    int block_size;            /* default 16 */
    int num_blocks;            /* default: 8 full contexts' worth */
    int enable_prefix_caching; /* default 1 */
} runner_params;

typedef struct {
    float temperature; /* 0 = greedy */
    float top_p;       /* nucleus; 1 = off */
    uint64_t seed;
    int max_new_tokens;         /* >= 1 */
    const llmc_kv_extra *extra; /* cache salt / adapter, or NULL */
    /* Called for each generated token with its text (may be empty, may be
     * part of a UTF-8 character); return non-zero to stop. May be NULL. */
    int (*on_token)(void *ud, int32_t id, const char *piece, size_t len);
    void *ud;
    const int *cancel; /* polled between tokens when non-NULL */
} runner_gen;

enum { RUNNER_STOP_EOS = 0, RUNNER_STOP_LENGTH = 1, RUNNER_STOP_CALLER = 2 };

typedef struct {
    int prompt_tokens, cached_tokens, completion_tokens;
    int finish;       /* RUNNER_STOP_* */
    double queued_s;  /* waiting for KV blocks */
    double prefill_s; /* from start of prefill to the first token's logits */
    double ttft_s;    /* from the call to the first generated token */
} runner_result;

runner_params runner_default_params(void);
runner *runner_new(const runner_params *p, int *err);
void runner_free(runner *r);

const model_config *runner_config(const runner *r);
const tokenizer *runner_tok(const runner *r);
llmc_kvpool *runner_pool(runner *r);

/* Generate from prompt[0..n) (token ids; the caller adds BOS). Waits while
 * the pool has too few free blocks. Returns 0 with *res filled, or
 * LLMC_ETOOBIG when n + max_new_tokens exceeds the context or the pool,
 * LLMC_EINVAL, LLMC_ENOMEM. */
int runner_generate(runner *r, const int32_t *prompt, size_t n, const runner_gen *g,
                    runner_result *res);

/* Prefill only (no generation, nothing kept beyond the pool's cache): for
 * measurements. Returns 0 with res->prefill_s and res->cached_tokens. */
int runner_prefill(runner *r, const int32_t *prompt, size_t n, const llmc_kv_extra *extra,
                   runner_result *res);

#endif
