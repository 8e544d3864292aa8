/*
 * llmcache.h — the one public header of libllmcache.
 *
 * libllmcache is everything the llmcached daemon does, as a C library: the
 * canonical request and exact key, the exact-tier store and its SQLite
 * persistence, the vector index, the embedders, the semantic tier and
 * policy, the KV block pool and the prefix router, and the metrics.
 *
 * Conventions (see STYLE.md):
 *   - Public names are llmc_ snake_case. Types are opaque; configuration is
 *     a params struct obtained from llmc_*_default_params() (new fields are
 *     only ever appended).
 *   - Functions return int: 0 (LLMC_OK) on success, a negative LLMC_E* code
 *     on failure; llmc_strerror() names it. Constructors return NULL on
 *     failure and store the code in an `int *err` out-parameter (may be NULL).
 *   - Every function that returns memory says who owns it and for how long.
 *   - Thread safety is stated per object.
 *
 * The file is divided into one section per module, each between two
 * "==== name ====" rules, so that modules grow independently.
 */
#ifndef LLMCACHE_H
#define LLMCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== common: version and errors ==================================== */

#define LLMC_VERSION "0.1.0"

/* Error codes: disjoint from errno, all negative. */
enum {
    LLMC_OK = 0,
    LLMC_ENOMEM = -1,    /* allocation failed */
    LLMC_EINVAL = -2,    /* invalid argument or malformed input */
    LLMC_EIO = -3,       /* read/write/open failed (errno has details) */
    LLMC_ECORRUPT = -4,  /* a file or record fails its checks */
    LLMC_EVERSION = -5,  /* a file of an unsupported format version */
    LLMC_EMISMATCH = -6, /* a file made for another model/dimension/metric */
    LLMC_ENOTFOUND = -7, /* no such key / entry / item */
    LLMC_EFULL = -8,     /* a budget or capacity is exhausted */
    LLMC_ETOOBIG = -9,   /* input larger than the configured limit */
    LLMC_EUTF8 = -10,    /* text is not valid UTF-8 */
    LLMC_EUPSTREAM = -11,/* a remote service failed or answered an error */
    LLMC_ETIMEDOUT = -12,/* a remote service did not answer in time */
    LLMC_EBUSY = -13,    /* resource in use; try later */
    LLMC_EEXIST = -14,   /* already exists */
    LLMC_ENOTSUP = -15,  /* not supported by this build or backend */
    LLMC_EFOREIGN = -16, /* a file that is not ours (wrong magic) */
    LLMC_EEMPTY = -17,   /* input has nothing to work on (e.g. no tokens) */
};

/* A static, human-readable name for an error code; never NULL. */
const char *llmc_strerror(int err);

/* ==== end common ===================================================== */


/* ==== canon: canonical request, exact key, partition ================= */
/* (section owned by src/canon.c) */
/* ==== end canon ====================================================== */


/* ==== store: exact tier ============================================== */
/* (section owned by src/store.c, src/persist.c) */
/* ==== end store ====================================================== */


/* ==== vec / hnsw: vector index ======================================= */
/* (section owned by src/vec.c, src/hnsw.c) */
/* ==== end hnsw ======================================================= */


/* ==== embed: embedders =============================================== */
/* (section owned by src/embed*.c)
 *
 * An embedder turns text into a unit-length float vector. Backends:
 *   "use"    Universal Sentence Encoder lite, built in, CPU, 512-d (default)
 *   "bert"   a sentence-transformers BERT-family model read from the hub's
 *            files (model.safetensors, config.json, vocab.txt/tokenizer.json)
 *   "remote" any OpenAI-compatible POST {url}/embeddings endpoint
 *
 * Thread safety: an llmc_embedder is used by one thread at a time (it reuses
 * its buffers); make one per thread. Distinct embedders are independent.
 */
typedef struct llmc_embedder llmc_embedder;

typedef struct {
    const char *backend;    /* "use" (default), "bert" or "remote" */
    const char *model_path; /* use/bert: directory holding the model's files */
    const char *url;        /* remote: base URL, e.g. "http://127.0.0.1:9000/v1" */
    const char *model;      /* remote: model name sent upstream */
    const char *api_key;    /* remote: bearer token, or NULL */
    int timeout_ms;         /* remote: per-request timeout (default 10000) */
    int retries;            /* remote: retries after a failure (default 2) */
    int max_batch;          /* texts per backend call (default 32) */
    int threads;            /* compute threads for use/bert (default 1) */
} llmc_embed_params;

llmc_embed_params llmc_embed_default_params(void);

/* Open an embedder. NULL on failure with *err set (err may be NULL). The
 * params' strings are copied; the caller keeps ownership of p. */
llmc_embedder *llmc_embedder_new(const llmc_embed_params *p, int *err);
void llmc_embedder_free(llmc_embedder *e);

/* The model's name (owned by e, valid until llmc_embedder_free) and its
 * output dimension. Vectors of two different names are never compared. */
const char *llmc_embedder_model(const llmc_embedder *e);
size_t llmc_embedder_dim(const llmc_embedder *e);

/* Embed one text of len bytes (UTF-8, need not be NUL-terminated) into out
 * (llmc_embedder_dim(e) floats, unit length). Returns 0, LLMC_EUTF8 for
 * invalid UTF-8, LLMC_EEMPTY for a text that gives no tokens, or another
 * LLMC_E* code. Text beyond the model's window is truncated. */
int llmc_embed(llmc_embedder *e, const char *text, size_t len, float *out);

/* Embed n texts; out holds n * dim floats. Same errors as llmc_embed; any
 * failing text fails the call. */
int llmc_embed_batch(llmc_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                     float *out);
/* ==== end embed ====================================================== */


/* ==== policy / semantic ============================================== */
/* (section owned by src/policy.c, src/semantic.c) */
/* ==== end semantic =================================================== */


/* ==== kvblock / prefix: KV prefix tier =============================== */
/* (section owned by src/kvblock.c, src/prefix.c)
 *
 * ---- kvblock: the KV block pool and chained block hashes ----------------
 *
 * An engine keeps the attention K/V of a sequence in fixed-size blocks of
 * B tokens (default 16). The pool hands out block ids; the engine owns the
 * memory behind them (block id i = the i-th slab of its KV store). Only full
 * blocks are shareable. Semantics follow vLLM's V1 block pool:
 *
 *   - Each full block has a hash that chains its parent's hash, its B token
 *     ids and the request's extra keys, so equal hashes mean equal prefixes
 *     (up to SHA-256 collisions) under equal extra keys.
 *   - Blocks carry reference counts. A block with ref count 0 sits in the
 *     free queue, in LRU order (head = evicted first), and keeps its hash
 *     (and KV) so that a later request can still hit it.
 *   - A prefix hit takes a reference on each matched block and removes it
 *     from the free queue.
 *   - A finished request drops its references in reverse block order; blocks
 *     that reach 0 are appended to the tail of the free queue, so its last
 *     blocks sit nearer the head and are evicted first.
 *   - Allocation takes the head of the free queue; if that block still has a
 *     hash it is evicted (the hash is dropped from the lookup table).
 *   - A hit never covers the whole prompt: at least the last prompt token is
 *     recomputed (its logits start generation), so the matched blocks are
 *     the full blocks within the first n_prompt - 1 tokens.
 *
 * Block hash (version 1): SHA-256 (OpenSSL libcrypto) over the bytes
 *
 *     offset  size  field
 *     0       8     domain tag "LLMCKV1\0"
 *     8       32    parent block hash; 32 zero bytes for the first block
 *     40      4     n = number of token ids, uint32 little-endian
 *     44      4n    token ids, int32 little-endian
 *     44+4n   4     s = cache salt length in bytes, uint32 LE (0 if none)
 *     48+4n   s     cache salt bytes (a per-tenant secret)
 *     48+4n+s 4     a = adapter name length, uint32 LE (0 if none)
 *     52+4n+s a     adapter name bytes (e.g. a LoRA name)
 *
 * The extra keys enter every block, so two tenants with different salts, or
 * two adapters, never share a block even for identical tokens.
 *
 * Thread safety: an llmc_kvpool is thread-safe (one internal mutex). An
 * llmc_kvseq belongs to the thread that runs its request: calls on one
 * sequence must not overlap, calls on different sequences may.
 */
#define LLMC_KV_HASH_LEN 32

typedef struct llmc_kvpool llmc_kvpool;
typedef struct llmc_kvseq llmc_kvseq;

typedef struct {
    int block_size;            /* tokens per block B (default 16) */
    int num_blocks;            /* blocks in the pool N (default 1024) */
    int enable_prefix_caching; /* 1 (default): hash full blocks and reuse them */
} llmc_kvpool_params;

/* Extra hash keys; a NULL pointer or NULL fields mean "none". */
typedef struct {
    const char *cache_salt; /* per-tenant salt, NUL-terminated */
    const char *adapter;    /* adapter (LoRA) name, NUL-terminated */
} llmc_kv_extra;

typedef struct {
    uint64_t queries_tokens; /* prompt tokens looked up (vllm:prefix_cache_queries) */
    uint64_t hits_tokens;    /* of which found cached (vllm:prefix_cache_hits) */
    uint64_t requests;       /* sequences begun */
    uint64_t evictions;      /* cached blocks whose hash was dropped on reuse */
    int blocks_total;        /* N */
    int blocks_in_use;       /* ref count > 0 */
    int blocks_cached;       /* carrying a hash (in use or in the free queue) */
    int blocks_free;         /* in the free queue (cached or not) */
    int blocks_reserved;     /* promised to running sequences, not yet taken */
} llmc_kvpool_stats;

llmc_kvpool_params llmc_kvpool_default_params(void);

/* Hash one block: out = SHA-256 of the layout above. parent is NULL for the
 * first block, else LLMC_KV_HASH_LEN bytes; extra may be NULL. Returns 0 or
 * LLMC_EINVAL (n == 0 or NULL tokens/out) or LLMC_ENOMEM. */
int llmc_kv_block_hash(const uint8_t *parent, const int32_t *tokens, size_t n,
                       const llmc_kv_extra *extra, uint8_t out[LLMC_KV_HASH_LEN]);

/* Hash the chain of full blocks of tokens[0..n): writes min(n / block_size,
 * max_blocks) hashes to out (LLMC_KV_HASH_LEN bytes each, consecutive) and
 * returns how many, or a negative LLMC_E* code. */
long llmc_kv_hash_chain(const int32_t *tokens, size_t n, int block_size,
                        const llmc_kv_extra *extra, uint8_t *out, size_t max_blocks);

/* A pool of p->num_blocks blocks (p NULL = defaults). NULL with *err set. */
llmc_kvpool *llmc_kvpool_new(const llmc_kvpool_params *p, int *err);
/* Free the pool. Every sequence must have been ended first. */
void llmc_kvpool_free(llmc_kvpool *pool);
int llmc_kvpool_block_size(const llmc_kvpool *pool);
int llmc_kvpool_num_blocks(const llmc_kvpool *pool);

/* Begin a request whose prompt is tokens[0..n_prompt) and which may grow to
 * max_tokens tokens in all (prompt + generated; max_tokens >= n_prompt).
 * Attaches the longest cached prefix, allocates blocks for the rest of the
 * prompt and reserves the blocks that generation may need, so that
 * llmc_kvseq_append never fails for lack of blocks up to max_tokens.
 * Counts n_prompt queried tokens and the cached ones as hits.
 * On success *out is a new sequence owned by the caller until
 * llmc_kvpool_end. Errors: LLMC_EINVAL, LLMC_EEMPTY (n_prompt 0),
 * LLMC_ETOOBIG (max_tokens needs more than the whole pool), LLMC_EBUSY (not
 * enough free blocks now: retry after another sequence ends), LLMC_ENOMEM.
 * The extra keys are copied. */
int llmc_kvpool_begin(llmc_kvpool *pool, const int32_t *tokens, size_t n_prompt,
                      size_t max_tokens, const llmc_kv_extra *extra, llmc_kvseq **out);

/* Tokens at the front of the prompt whose KV is already in the attached
 * blocks (a multiple of the block size); the engine computes from there. */
size_t llmc_kvseq_cached_tokens(const llmc_kvseq *s);
/* Current length in tokens (prompt + appended). */
size_t llmc_kvseq_len(const llmc_kvseq *s);
/* The block table: block ids for positions [i*B, (i+1)*B). Owned by s, valid
 * until the next llmc_kvseq_append or llmc_kvpool_end on s. */
const int32_t *llmc_kvseq_blocks(const llmc_kvseq *s, size_t *n_blocks);
/* Append one token (a generated one) to the sequence, taking a new block
 * when the last one is full. 0, or LLMC_EFULL past max_tokens with no free
 * block left. */
int llmc_kvseq_append(llmc_kvseq *s, int32_t token);
/* Declare that the KV of positions [0, n_computed) is written. Full blocks
 * among them become visible to other requests (registered under their
 * hash); a block whose hash another sequence registered first stays
 * private. Returns 0 or LLMC_EINVAL (n_computed > length). */
int llmc_kvseq_commit(llmc_kvseq *s, size_t n_computed);
/* End the sequence: drop its references (last block first), return its
 * unused reservation, free s. NULL s is a no-op. */
void llmc_kvpool_end(llmc_kvpool *pool, llmc_kvseq *s);

/* How many leading prompt tokens a begin() would find cached now; takes no
 * reference and counts nothing. Negative LLMC_E* on bad arguments. */
long llmc_kvpool_lookup(llmc_kvpool *pool, const int32_t *tokens, size_t n_prompt,
                        const llmc_kv_extra *extra);
/* The id of the block cached under hash, or LLMC_ENOTFOUND. */
int llmc_kvpool_find(llmc_kvpool *pool, const uint8_t hash[LLMC_KV_HASH_LEN]);
void llmc_kvpool_get_stats(llmc_kvpool *pool, llmc_kvpool_stats *st);
/* Walk every structure and check the invariants (free queue links and count,
 * ref counts vs. free queue membership, hash table vs. block hashes).
 * 0 or LLMC_ECORRUPT. For tests and debugging; takes the lock. */
int llmc_kvpool_check(llmc_kvpool *pool);

/* ---- prefix: the prefix-affinity router --------------------------------
 *
 * Chooses which of n backends (engine replicas serving one model) gets a
 * request, so that requests sharing a prompt prefix land where that prefix's
 * KV blocks are likely still cached. Policies:
 *
 *   LLMC_ROUTE_ROUND_ROBIN  the next healthy backend in turn.
 *   LLMC_ROUTE_LEAST_LOADED the healthy backend with the fewest requests in
 *                           flight (ties rotate).
 *   LLMC_ROUTE_PREFIX       SGLang's cache-aware policy, its balance test
 *                           applied per backend:
 *     1. A healthy backend b is overloaded when load[b] - min >
 *        balance_abs_threshold AND load[b] > min * balance_rel_threshold
 *        (min = the least load among healthy backends).
 *     2. Find, in an approximate radix tree of the prompt keys each backend
 *        was recently sent, how long a prefix of this key each backend's
 *        recorded keys share. If the longest match among backends that are
 *        not overloaded is more than match_threshold of the key's length,
 *        send there (an "affinity" decision; among equally long matches, the
 *        least loaded, then the one sent this prefix most recently).
 *     3. Else send to the least loaded backend (among equal loads, the
 *        one holding the fewest key bytes): a "balance" decision when
 *        the prefix is held only by overloaded backends (so a hot prefix
 *        spills over to a second backend, which then shares it), a "miss"
 *        decision when no backend holds enough of it (new prefixes spread).
 *     SGLang sends every request to the least loaded while any two backends
 *     are out of balance; testing each request's own backends instead keeps
 *     the affinity of requests whose backend is not the overloaded one.
 *
 * The key is whatever the caller derives from a request: the canonical
 * prompt text (system prompt first), or token ids as bytes. Only its first
 * max_key_bytes bytes are used. After a request is sent — possibly to
 * another backend than the route's answer, on a retry — the caller records
 * it with llmc_prefix_record(backend, key), which marks the key's path in
 * the tree with the backend and the time.
 *
 * Bounds: a backend's mark older than max_age_s is ignored when matching
 * and removed by llmc_prefix_expire (also run from record every
 * max_age_s / 8); when the tree's bytes exceed max_bytes, record evicts the
 * least recently used leaves until it is under 7/8 of the bound.
 *
 * Thread safety: none; one router belongs to one thread (the daemon's event
 * loop). Calls are cheap: a route walks one path of the tree, O(key bytes).
 */
typedef struct llmc_prefix_router llmc_prefix_router;

enum {
    LLMC_ROUTE_ROUND_ROBIN = 0,
    LLMC_ROUTE_LEAST_LOADED = 1,
    LLMC_ROUTE_PREFIX = 2,
};

#define LLMC_PREFIX_MAX_BACKENDS 64

typedef struct {
    int policy;                   /* LLMC_ROUTE_* (default LLMC_ROUTE_PREFIX) */
    double match_threshold;       /* affinity when match / key length > this (0.5) */
    int balance_abs_threshold;    /* imbalance: max - min load > this (default 32) */
    double balance_rel_threshold; /* ... and max > min * this (default 1.0001) */
    size_t max_bytes;             /* memory bound of the tree (default 64 MiB) */
    double max_age_s;             /* marks older than this expire (600; 0 = never) */
    size_t max_key_bytes;         /* bytes of a key considered (default 16384) */
    /* time source in milliseconds, monotonic; NULL = CLOCK_MONOTONIC */
    uint64_t (*clock_ms)(void *ud);
    void *clock_ud;
} llmc_prefix_params;

typedef struct {
    uint64_t routed;   /* llmc_prefix_route answers */
    uint64_t affinity; /* sent to the backend with the longest match */
    uint64_t balance;  /* prefix held only by overloaded backends: least loaded */
    uint64_t miss;     /* match too short: sent to the least loaded */
    uint64_t evicted;  /* tree nodes removed for the memory bound */
    uint64_t expired;  /* backend marks removed for age */
    size_t bytes;      /* memory held by the tree */
    size_t nodes;      /* tree nodes, root included */
    size_t held_bytes[LLMC_PREFIX_MAX_BACKENDS]; /* key bytes marked per backend */
} llmc_prefix_stats;

llmc_prefix_params llmc_prefix_default_params(void);

/* Policy names for configuration: "round-robin", "least-loaded",
 * "prefix-affinity" (or "prefix"). parse returns LLMC_ROUTE_* or
 * LLMC_EINVAL; name returns a static string, "unknown" when out of range. */
int llmc_prefix_policy_parse(const char *name);
const char *llmc_prefix_policy_name(int policy);

/* A router for n_backends (1..LLMC_PREFIX_MAX_BACKENDS) backends, numbered
 * 0..n-1 by the caller. p NULL = defaults. NULL with *err set. */
llmc_prefix_router *llmc_prefix_router_new(const llmc_prefix_params *p, int n_backends, int *err);
void llmc_prefix_router_free(llmc_prefix_router *r);

/* Choose a backend for a request whose key is key[0..len). load[i] is the
 * number of requests in flight at backend i; healthy[i] is non-zero when i
 * may be used (NULL = all healthy). Returns the index, or LLMC_ENOTFOUND
 * when no backend is healthy, LLMC_EINVAL on bad arguments. Does not record
 * the key. */
int llmc_prefix_route(llmc_prefix_router *r, const char *key, size_t len, const int *load,
                      const int *healthy);

/* Record that the request with this key was sent to backend. 0, or
 * LLMC_EINVAL, LLMC_ENOMEM (the tree is left consistent). */
int llmc_prefix_record(llmc_prefix_router *r, int backend, const char *key, size_t len);

/* Matched prefix length in bytes per backend for key: matched[i] for each
 * of the n backends (stale marks count as no match). Returns the longest. */
size_t llmc_prefix_match(llmc_prefix_router *r, const char *key, size_t len, size_t *matched);

/* Forget everything recorded for backend (e.g. it restarted: its KV cache
 * is empty). 0 or LLMC_EINVAL. */
int llmc_prefix_forget_backend(llmc_prefix_router *r, int backend);

/* Remove marks older than max_age_s and the nodes left without any. */
void llmc_prefix_expire(llmc_prefix_router *r);

void llmc_prefix_get_stats(const llmc_prefix_router *r, llmc_prefix_stats *st);
/* ==== end prefix ===================================================== */


/* ==== metrics ======================================================== */
/* (section owned by src/metrics.c) */
/* ==== end metrics ==================================================== */

#ifdef __cplusplus
}
#endif
#endif /* LLMCACHE_H */
