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
    LLMC_ENOMEM = -1,     /* allocation failed */
    LLMC_EINVAL = -2,     /* invalid argument or malformed input */
    LLMC_EIO = -3,        /* read/write/open failed (errno has details) */
    LLMC_ECORRUPT = -4,   /* a file or record fails its checks */
    LLMC_EVERSION = -5,   /* a file of an unsupported format version */
    LLMC_EMISMATCH = -6,  /* a file made for another model/dimension/metric */
    LLMC_ENOTFOUND = -7,  /* no such key / entry / item */
    LLMC_EFULL = -8,      /* a budget or capacity is exhausted */
    LLMC_ETOOBIG = -9,    /* input larger than the configured limit */
    LLMC_EUTF8 = -10,     /* text is not valid UTF-8 */
    LLMC_EUPSTREAM = -11, /* a remote service failed or answered an error */
    LLMC_ETIMEDOUT = -12, /* a remote service did not answer in time */
    LLMC_EBUSY = -13,     /* resource in use; try later */
    LLMC_EEXIST = -14,    /* already exists */
    LLMC_ENOTSUP = -15,   /* not supported by this build or backend */
    LLMC_EFOREIGN = -16,  /* a file that is not ours (wrong magic) */
    LLMC_EEMPTY = -17,    /* input has nothing to work on (e.g. no tokens) */
};

/* A static, human-readable name for an error code; never NULL. */
const char *llmc_strerror(int err);

/* ==== end common ===================================================== */

/* ==== canon: canonical request, exact key, partition ================= */
/* (section owned by src/canon.c)
 *
 * A request body (JSON) becomes:
 *   - its exact key: SHA-256 over the tenant and a canonical form of every
 *     field that changes the answer (object keys sorted, no whitespace,
 *     integral reals written as integers), with the fields that do not
 *     (stream, stream_options, metadata, store, request ids) removed;
 *   - its partition (semantic tier): SHA-256 over the tenant and the same
 *     canonical form with the last user message removed, so model, system
 *     prompt, sampling parameters, tools and earlier turns all separate
 *     partitions;
 *   - the fields the policy needs (query text, temperature, n, user, tools).
 */
#define LLMC_KEY_LEN 32

typedef enum {
    LLMC_EP_CHAT = 1,        /* POST /v1/chat/completions */
    LLMC_EP_COMPLETIONS = 2, /* POST /v1/completions */
    LLMC_EP_EMBEDDINGS = 3,  /* POST /v1/embeddings */
} llmc_endpoint;

/* The tenant a request belongs to: a 32-byte hash. */
typedef struct {
    uint8_t id[LLMC_KEY_LEN];
    uint64_t ns_hash; /* hash of the namespace name alone; 0 when none */
} llmc_tenant;

/* Derive the tenant from the caller's Authorization header value (may be
 * NULL) and namespace (may be NULL). A namespace declared shared ignores the
 * API key, so every key in it shares entries; otherwise both are hashed. */
void llmc_tenant_make(llmc_tenant *t, const char *authorization, const char *ns, int ns_shared);

/* Narrow tenant t by one more scoping value (e.g. label "openai-project"
 * and the header's value); value NULL leaves t unchanged. Requests that
 * differ in any scoped value never share an entry. The "Bearer " scheme of
 * an authorization value is matched case-insensitively by llmc_tenant_make. */
void llmc_tenant_scope(llmc_tenant *t, const char *label, const char *value);

/* Hash of a namespace name as stored in entries (for flush by namespace). */
uint64_t llmc_namespace_hash(const char *ns);

typedef struct {
    uint8_t key[LLMC_KEY_LEN];       /* exact key */
    uint8_t partition[LLMC_KEY_LEN]; /* semantic partition */
    char model[128];                 /* "model" field, truncated; "" if absent */
    double temperature;              /* NAN when absent */
    double top_p;                    /* NAN when absent */
    long n;                          /* 1 when absent */
    int stream;                      /* "stream": true */
    int has_tools;                   /* tools / functions / tool_choice present */
    int has_user;                    /* "user" field present */
    char *query; /* last user message's text (malloc'd, NUL-terminated) or NULL */
    size_t query_len;
    char *system; /* system/developer prompt text (malloc'd) or NULL */
    size_t system_len;
    char *user;   /* "user" field (malloc'd) or NULL */
    char *prompt; /* the whole prompt as text, "role: content\n" a message
                     (malloc'd) or NULL: the prefix router's key */
    size_t prompt_len;
    char *semantic_query; /* what the semantic tier embeds when the flags ask
                        for more than the last user message (malloc'd), or
                        NULL: query */
    size_t semantic_query_len;
} llmc_canon;

/* llmc_canon_request flags. */
#define LLMC_CANON_SCOPE_USER 1u /* the "user" field is part of the key */
/* What the semantic tier compares (at most one; default: the last user
 * message, with every earlier turn in the partition, so that the same
 * question after another conversation never matches): */
#define LLMC_CANON_QUERY_USER_TURNS                                                                \
    2u /* every user message, joined by "\n";                                                      \
          the partition keeps only system and                                                      \
          developer messages */
#define LLMC_CANON_QUERY_CONVERSATION                                                              \
    4u /* every non-system message as                                                              \
          "role: text" lines; partition as                                                         \
          above */

/*
 * Parse body (len bytes of JSON) for endpoint ep and fill c. flags are
 * LLMC_CANON_* bits: with LLMC_CANON_SCOPE_USER the user field is part of
 * the key (personalised answers stay in the user's own scope); the QUERY
 * bits choose the semantic text and partition of chat requests (the exact
 * key never depends on them). Returns 0, or LLMC_EINVAL with a static
 * message in *why (may be NULL) for a body that is not a JSON object or
 * lacks a required field. On success the caller frees c with
 * llmc_canon_clear().
 */
int llmc_canon_request(llmc_endpoint ep, const llmc_tenant *t, const char *body, size_t len,
                       unsigned flags, llmc_canon *c, const char **why);
void llmc_canon_clear(llmc_canon *c);

/* Lower-case hex of a key into out (2*LLMC_KEY_LEN+1 bytes); parse it back
 * (returns 0 or LLMC_EINVAL). */
/*
 * Responses (resp.c). The cache stores one form of an answer: the complete
 * JSON body (chat.completion, text_completion, embeddings list). A streamed
 * answer is assembled into that form once its final event has arrived; a
 * hit is replayed as JSON or as a valid SSE stream, whichever the request
 * asked for, so streamed and non-streamed requests share entries.
 */
typedef struct {
    uint32_t prompt_tokens, completion_tokens; /* from usage, 0 if absent */
    int has_tool_calls;                        /* tool_calls / function_call in a choice */
    int truncated;                             /* a choice ended with finish_reason "length" */
    /* Appended: what the policy's look at the answer needs, so that it
     * works on this parse instead of parsing the body again. */
    int refused;  /* finish_reason content_filter/refusal, or a refusal message */
    int has_code; /* a ``` or ~~~ code fence in a choice's text */
} llmc_resp_info;

/* Check a complete JSON response for endpoint ep and fill info. Returns 0,
 * or LLMC_EINVAL when it is not a well-formed answer (no choices/data, an
 * "error" member...). */
int llmc_resp_parse(llmc_endpoint ep, const char *json, size_t len, llmc_resp_info *info);
/* Assemble an SSE stream (the raw bytes of a text/event-stream body) into
 * the equivalent complete JSON response, malloc'd into *out (*out_len bytes,
 * NUL-terminated; caller frees). LLMC_EINVAL when the stream is incomplete
 * (no final "data: [DONE]"), carries an error event or is malformed;
 * LLMC_ENOTSUP for content we cannot reproduce exactly on replay. */
int llmc_resp_from_sse(llmc_endpoint ep, const char *sse, size_t len, char **out, size_t *out_len,
                       llmc_resp_info *info);
/* Render a stored JSON response as an SSE stream of chunk events ending in
 * "data: [DONE]", malloc'd into *out. */
int llmc_resp_to_sse(llmc_endpoint ep, const char *json, size_t len, char **out, size_t *out_len);
/* The text of the first choice (message.content or text), malloc'd, or
 * NULL. For the policy's look at the answer (code blocks). */
char *llmc_resp_text(llmc_endpoint ep, const char *json, size_t len);

void llmc_key_hex(const uint8_t key[LLMC_KEY_LEN], char *out);
int llmc_key_parse(const char *hex, uint8_t key[LLMC_KEY_LEN]);
/* ==== end canon ====================================================== */

/* ==== store: exact tier ============================================== */
/* (section owned by src/store.c, src/persist.c)
 *
 * The exact tier: entries keyed by the 32-byte exact key, in memory under
 * a byte budget. TTLs are absolute (a hit does not extend them). When a put
 * would exceed the budget, expired entries go first, then the least
 * recently used. Entries are reference counted: a reader holds one until
 * llmc_entry_release(), so eviction never frees memory being sent.
 * Thread safety: every llmc_store function may be called from any thread.
 */
typedef struct llmc_store llmc_store;

/* What an entry holds. All pointers are owned by the entry and valid until
 * the reference that returned them is released. */
typedef struct llmc_entry_info {
    uint8_t key[LLMC_KEY_LEN];
    uint64_t ns_hash;   /* llmc_namespace_hash() of its namespace, 0 if none */
    uint64_t partition; /* semantic partition (first 8 bytes of its hash) */
    int64_t created;    /* unix seconds */
    int64_t expires;    /* unix seconds; the entry is dead at or after it */
    uint32_t endpoint;  /* llmc_endpoint */
    uint32_t prompt_tokens, completion_tokens; /* usage of the stored answer */
    uint32_t dim;                              /* length of vec (0: no vector) */
    uint32_t flags;                            /* LLMC_ENTRY_* */
    const char *model;                         /* NUL-terminated */
    const char *body; /* the stored response (complete JSON), body_len bytes */
    size_t body_len;
    const float *vec;      /* semantic vector or NULL */
    const char *vec_model; /* embedder that made vec, NUL-terminated ("" if none) */
    const char *query;     /* the query text the semantic tier compares, "" if none */
} llmc_entry_info;

#define LLMC_ENTRY_EXACT_ONLY 1u /* never served by the semantic tier */

enum { LLMC_RM_DELETE = 1, LLMC_RM_EXPIRE, LLMC_RM_EVICT, LLMC_RM_REPLACE, LLMC_RM_FLUSH };

typedef struct {
    size_t max_bytes; /* memory budget for entries, headers included (256 MiB) */
    /* Called with the store's lock held whenever an entry leaves the table
     * (reason LLMC_RM_*); it must not call back into the store. May be NULL. */
    void (*on_remove)(const llmc_entry_info *e, int reason, void *arg);
    void *on_remove_arg;
} llmc_store_params;

typedef struct {
    size_t entries, bytes, max_bytes;
    uint64_t inserts, replaces, evictions, expirations, deletes;
} llmc_store_stats;

llmc_store_params llmc_store_default_params(void);
llmc_store *llmc_store_new(const llmc_store_params *p, int *err);
/* Frees the store; entries still referenced live on until released. */
void llmc_store_free(llmc_store *s);

/*
 * Copy `in` (all its bytes) into a new entry and insert it, replacing any
 * entry with the same key. Returns 0, LLMC_ETOOBIG when the entry alone is
 * larger than the budget, LLMC_EINVAL for an entry already expired at now,
 * or LLMC_ENOMEM. On success, when out is not NULL, *out is a new reference
 * to the stored entry (release it).
 */
int llmc_store_put(llmc_store *s, const llmc_entry_info *in, int64_t now,
                   const llmc_entry_info **out);
/* A new reference to the live entry with this key, or NULL. Marks it
 * recently used; does not extend its TTL. */
const llmc_entry_info *llmc_store_get(llmc_store *s, const uint8_t key[LLMC_KEY_LEN], int64_t now);
/* A new reference to the live entry whose key starts with these 8 bytes
 * (little-endian, as the semantic index labels entries), or NULL. */
const llmc_entry_info *llmc_store_get_by_label(llmc_store *s, uint64_t label, int64_t now);
/* The label of a key: its first 8 bytes, little-endian. */
uint64_t llmc_key_label(const uint8_t key[LLMC_KEY_LEN]);
/* Call fn for every live entry, with the store's lock held (fn must not
 * call back into the store). Returns how many entries were visited. */
size_t llmc_store_foreach(llmc_store *s, void (*fn)(const llmc_entry_info *e, void *arg),
                          void *arg);
/* Take one more reference to an entry already held. */
void llmc_entry_ref(const llmc_entry_info *e);
/* Drop a reference; the last one frees the entry. */
void llmc_entry_release(const llmc_entry_info *e);
/* The semantic tier's learned floor for an entry: a similarity at or below
 * which it must not answer a query (0: none yet). Raised, never lowered,
 * when a sampled re-ask showed the entry answering a query at that
 * similarity differently from the model (the daemon's --verify-rate). Kept
 * in memory only. Thread-safe (atomic). */
double llmc_entry_semantic_floor(const llmc_entry_info *e);
void llmc_entry_raise_semantic_floor(const llmc_entry_info *e, double similarity);
/* Remove by key: 0 or LLMC_ENOTFOUND. */
int llmc_store_delete(llmc_store *s, const uint8_t key[LLMC_KEY_LEN]);
/* Remove every entry of a namespace (ns_hash != 0) or all (ns_hash == 0
 * and all != 0). Returns how many were removed. */
size_t llmc_store_flush(llmc_store *s, uint64_t ns_hash, int all);
/* Remove up to max entries expired at now; returns how many. */
size_t llmc_store_expire(llmc_store *s, int64_t now, size_t max);
void llmc_store_get_stats(llmc_store *s, llmc_store_stats *st);
/* Bytes an entry is charged against the budget (header, key, model, body,
 * vector). */
size_t llmc_entry_charge(const llmc_entry_info *e);

/*
 * Persistence (persist.c): a SQLite file (WAL) that mirrors the store so a
 * restart is warm. Writes are queued and committed by a background thread
 * every flush_interval_ms in one transaction (kill -9 loses at most that
 * interval); with sync set, llmc_persist_put() commits before it returns.
 * The file carries application_id 'LLMC' and a schema version; a file that
 * is not SQLite, belongs to another application, is newer than this build
 * or fails SQLite's quick_check is refused with a clear error, never
 * rewritten. Thread safety: all functions may be called from any thread.
 */
typedef struct llmc_persist llmc_persist;

typedef struct {
    const char *path;      /* database file */
    int flush_interval_ms; /* write-behind period (1000) */
    int sync;              /* 1: commit each put before returning */
    /* A write that fails (disk full, I/O error) is kept and retried every
     * flush interval; kept entries beyond this many body bytes are dropped,
     * oldest first, and counted as lost (deletes are never dropped).
     * (64 MB) */
    size_t retain_bytes;
    /* Called on the writer's thread (or the caller's, in sync mode) when a
     * write fails after a success — once per burst of errors — with ok 0
     * and SQLite's message, and when a write succeeds again, with ok 1 and
     * the number of failed writes in the burst. May be NULL. */
    void (*on_error)(int ok, const char *msg, uint64_t failures, void *arg);
    void *on_error_arg;
} llmc_persist_params;

typedef struct {
    uint64_t puts, deletes, commits, errors, loaded, skipped_corrupt, skipped_expired;
    size_t queued;
    size_t retained;         /* ops kept after a failed write, waiting for a retry */
    size_t retained_bytes;   /* their body bytes (bounded by retain_bytes) */
    uint64_t lost;           /* entries dropped for good after failed writes */
    uint64_t vacuumed_pages; /* pages given back to the filesystem (incremental vacuum) */
} llmc_persist_stats;

llmc_persist_params llmc_persist_default_params(void);
/* Open or create the file; NULL on failure with *err set and a message in
 * errbuf (errlen bytes, may be 0). */
llmc_persist *llmc_persist_open(const llmc_persist_params *p, int *err, char *errbuf,
                                size_t errlen);
/* Load every live entry into s (oldest first, so LRU order is kept; those
 * beyond the budget are evicted as usual). Rows failing their checksum are
 * skipped and counted. Call before llmc_persist_start(). */
int llmc_persist_load(llmc_persist *ps, llmc_store *s, int64_t now);
/* Start the background writer. */
int llmc_persist_start(llmc_persist *ps);
/* Queue an upsert of e (takes its own reference) / a delete by key. */
int llmc_persist_put(llmc_persist *ps, const llmc_entry_info *e);
void llmc_persist_delete(llmc_persist *ps, const uint8_t key[LLMC_KEY_LEN]);
/* Write everything queued now; returns 0 or LLMC_EIO. */
int llmc_persist_sync(llmc_persist *ps);
void llmc_persist_get_stats(llmc_persist *ps, llmc_persist_stats *st);
/* Write what is queued, stop the writer, close the file. */
void llmc_persist_close(llmc_persist *ps);
/* ==== end store ====================================================== */

/* ==== vec / hnsw: vector index ======================================= */
/* (section owned by src/vec.c, src/hnsw.c)
 *
 * An approximate nearest-neighbour index (HNSW, Malkov & Yashunin) over
 * vectors of one dimension made by one model. Items are named by a 64-bit
 * label chosen by the caller (the semantic tier uses the cache entry id) and
 * belong to one 64-bit partition given at insert; a search looks either in
 * one partition or in all (LLMC_HNSW_ANY). Similarity is the inner product;
 * with LLMC_HNSW_COSINE (default) vectors are normalised on the way in, so
 * it is the cosine. Removed items are never returned and their slots are
 * reused by later inserts.
 *
 * Thread safety: one llmc_hnsw may be used from many threads at once.
 * Searches, count/bytes and save run in parallel with each other and with
 * the search phase of adds; the linking phase of an add and remove are
 * exclusive but short (a writer-preferring rwlock inside the object). The
 * object must not be freed while another thread uses it.
 */
typedef struct llmc_hnsw llmc_hnsw;

#define LLMC_HNSW_ANY UINT64_MAX /* search: every partition; invalid at insert */

enum { LLMC_HNSW_COSINE = 0, LLMC_HNSW_IP = 1 }; /* metric */
enum { LLMC_HNSW_F32 = 0, LLMC_HNSW_I8 = 1 };    /* stored vector format */

typedef struct {
    size_t dim;              /* vector dimension (default 384) */
    size_t M;                /* links per node on upper levels; 2*M on level 0 (default 16) */
    size_t ef_construction;  /* candidate list size while inserting (default 100) */
    size_t ef_search;        /* default candidate list size of a search (default 64) */
    int metric;              /* LLMC_HNSW_COSINE (default) or LLMC_HNSW_IP */
    int quant;               /* LLMC_HNSW_F32 (default) or LLMC_HNSW_I8: 4x less vector
                                memory, similarities approximate (see bench/hnsw) */
    size_t max_bytes;        /* byte budget of the index storage; 0 = unlimited */
    const char *model;       /* embedding model name kept with the index (copied); default "" */
    uint64_t seed;           /* level generator seed (default 42): same inserts, same graph */
    size_t initial_capacity; /* slots allocated up front (default 1024) */
    int simd;                /* kernels: 0 best available (default), 1 scalar, 2 AVX2, 3 AVX-512 */
    int partition_search;    /* how a partition is searched: 0 auto (default: exact scan when
                                small, filtered graph search when large), 1 always exact scan,
                                2 always graph (for measurement; see bench/hnsw) */
} llmc_hnsw_params;

llmc_hnsw_params llmc_hnsw_default_params(void);

/* Make an empty index. NULL on failure with *err set (LLMC_EINVAL for bad
 * params, LLMC_ENOMEM, LLMC_EFULL when max_bytes cannot hold the initial
 * capacity). p is only read; its strings are copied. Free with
 * llmc_hnsw_free. */
llmc_hnsw *llmc_hnsw_new(const llmc_hnsw_params *p, int *err);
void llmc_hnsw_free(llmc_hnsw *h);

/* Insert vec (dim floats, copied) as label in partition. Returns 0,
 * LLMC_EEXIST if label is present, LLMC_EINVAL (partition == LLMC_HNSW_ANY,
 * NULL vec, non-finite values or a zero vector under COSINE), LLMC_EFULL
 * when the byte budget is reached, LLMC_ENOMEM. */
int llmc_hnsw_add(llmc_hnsw *h, uint64_t label, uint64_t partition, const float *vec);

/* Remove label: it is never returned again and its slot is reused by a
 * later add. Returns 0 or LLMC_ENOTFOUND. */
int llmc_hnsw_remove(llmc_hnsw *h, uint64_t label);

/* Change how partitions are searched (params.partition_search: 0 auto,
 * 1 exact, 2 graph). Returns 0 or LLMC_EINVAL. */
int llmc_hnsw_set_partition_search(llmc_hnsw *h, int mode);

/* 1 if label is in the index, else 0. */
int llmc_hnsw_contains(llmc_hnsw *h, uint64_t label);

/* The k most similar live items to q (dim floats) in partition (or in all
 * with LLMC_HNSW_ANY), best first: labels[i] and sims[i] (sims may be NULL)
 * for i < *n_out <= k. ef is the candidate list size (0: the params'
 * ef_search; raised to k when smaller); larger is slower and more exact.
 * Small partitions are scanned exactly, large ones searched in the graph
 * with a filter. Returns 0 or LLMC_EINVAL. */
int llmc_hnsw_search(llmc_hnsw *h, const float *q, uint64_t partition, size_t k, size_t ef,
                     uint64_t *labels, float *sims, size_t *n_out);

size_t llmc_hnsw_count(llmc_hnsw *h); /* live items */
size_t llmc_hnsw_bytes(llmc_hnsw *h); /* bytes the index holds (what max_bytes limits) */
size_t llmc_hnsw_dim(const llmc_hnsw *h);
/* The model name (owned by h, valid until llmc_hnsw_free). */
const char *llmc_hnsw_model(const llmc_hnsw *h);
/* The kernel set in use: "avx512", "avx2" or "scalar" (static string). */
const char *llmc_hnsw_kernel(const llmc_hnsw *h);

/* Write the index to path (via path.tmp + rename, so a crash leaves the old
 * file). Format in src/hnsw.c's header comment. Searches go on meanwhile but
 * adds and removes wait until it is written. Returns 0, LLMC_EIO or
 * LLMC_ENOMEM. */
int llmc_hnsw_save(llmc_hnsw *h, const char *path);

/* Read an index written by llmc_hnsw_save. expect_model (NULL: any) and
 * expect_dim (0: any) must match the file, else LLMC_EMISMATCH. Other
 * errors: LLMC_EIO (cannot read), LLMC_EFOREIGN (not an index file),
 * LLMC_EVERSION, LLMC_ECORRUPT (truncated, checksum or structure), and
 * LLMC_EFULL when the file does not fit max_bytes. params may be NULL; when
 * given, only its max_bytes, ef_search, simd and partition_search are used (the rest comes from
 * the file). */
llmc_hnsw *llmc_hnsw_load(const char *path, const char *expect_model, size_t expect_dim,
                          const llmc_hnsw_params *params, int *err);
/* ==== end hnsw ======================================================= */

/* ==== embed: embedders =============================================== */
/* (section owned by src/embed*.c)
 *
 * An embedder turns text into a unit-length float vector. Backends:
 *   "use"    Universal Sentence Encoder lite, built in, CPU, 512-d (default)
 *   "bert"   a sentence-transformers BERT or XLM-RoBERTa model read from the
 *            hub's files (model.safetensors, config.json, vocab.txt,
 *            tokenizer.json or sentencepiece.bpe.model)
 *   "remote" any OpenAI-compatible POST {url}/embeddings endpoint
 *
 * Thread safety: an llmc_embedder is used by one thread at a time (it reuses
 * its buffers); make one per thread. Distinct embedders are independent.
 */
typedef struct llmc_embedder llmc_embedder;

typedef struct {
    const char *backend;      /* "use" (default), "bert" or "remote" */
    const char *model_path;   /* use/bert: directory holding the model's files */
    const char *url;          /* remote: base URL, e.g. "http://127.0.0.1:9000/v1" */
    const char *model;        /* remote: model name sent upstream */
    const char *api_key;      /* remote: bearer token, or NULL */
    int timeout_ms;           /* remote: per-request timeout (default 10000) */
    int retries;              /* remote: retries after a failure (default 2) */
    int max_batch;            /* texts per backend call (default 32) */
    int threads;              /* compute threads for use/bert (default 1) */
    const char *query_prefix; /* bert: text put before every input (E5's
                               * "query: "); NULL (default): the model's own
                               * query prompt (config_sentence_transformers.json);
                               * "": none */
    /* use: the dense products' weights: "int8" (int8 weights, per-row
     * 8-bit activations, VNNI kernels; the 256-wide products of layer 0
     * stay binary16), "fp16" (binary16 weights, float32 sums), "fp32" (the
     * reference), or "auto"/NULL (default: int8 where the CPU has AVX-512
     * VNNI or AVX-VNNI, else fp16). All give vectors of the same model
     * name (int8 vs fp32 worst cosine 0.9992 on the reference texts).
     * Other backends ignore it. */
    const char *precision;
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
/* What the encoder's products run in ("int8 (avx512-vnni)", "fp16", "fp32",
 * ...; "fp32" for backends that do not say). Owned by e, valid until
 * llmc_embedder_free. */
const char *llmc_embedder_precision(const llmc_embedder *e);

/* Embed one text of len bytes (UTF-8, need not be NUL-terminated) into out
 * (llmc_embedder_dim(e) floats, unit length). Returns 0, LLMC_EUTF8 for
 * invalid UTF-8, LLMC_EEMPTY for a text that gives no tokens, or another
 * LLMC_E* code. Text beyond the model's window is truncated. */
int llmc_embed(llmc_embedder *e, const char *text, size_t len, float *out);

/* Embed n texts; out holds n * dim floats (text i at out + i * dim). Same
 * errors as llmc_embed; any failing text fails the call (out's contents are
 * then unspecified). Each text gets the vector llmc_embed would give it
 * (use: bit for bit in int8 mode, to 1 - cosine < 1e-6 in fp16/fp32 mode,
 * where large batches go through OpenBLAS), and for use a batch costs less
 * per text than one call per text: the texts' token rows are packed into
 * one pass (up to 512 rows), so every weight is read once for all of them.
 * Calls of max_batch texts at a time (llmc_embed_params); same thread rule
 * as llmc_embed. */
int llmc_embed_batch(llmc_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                     float *out);
/* ==== end embed ====================================================== */

/* ==== policy / semantic ============================================== */
/* (section owned by src/policy.c, src/guard.c, src/semantic.c) */

/* ---- policy: when not to cache (src/policy.c) ------------------------
 *
 * Every request gets a decision before any lookup: CACHE (exact and
 * semantic tiers), EXACT_ONLY (exact tier only: a reworded request must
 * never reuse this answer) or BYPASS (go upstream, store nothing), plus a
 * TTL class and a short static reason for the X-LLM-Cache-Reason header.
 * When the upstream answer is in hand, llmc_policy_check_response() may
 * still refuse to store it (tool calls, non-2xx, truncated) or downgrade it
 * to EXACT_ONLY (the answer contains code).
 *
 * The detectors are word lists and patterns over the query text (English),
 * case-insensitive and word-boundary aware, deterministic, linear in the
 * text length. Nothing here can make a request fail: on any internal
 * problem the decision is the safe one (BYPASS) with reason "policy-error".
 *
 * Thread safety: an llmc_policy is immutable after llmc_policy_new() and
 * may be shared by any number of threads without locking.
 */
typedef struct llmc_policy llmc_policy;

typedef enum {
    LLMC_POLICY_CACHE = 0,      /* exact + semantic */
    LLMC_POLICY_EXACT_ONLY = 1, /* exact tier only (lookup and store) */
    LLMC_POLICY_BYPASS = 2      /* no lookup, nothing stored */
} llmc_policy_action;

typedef enum {
    LLMC_POLICY_TTL_DEFAULT = 0, /* the store's configured TTL */
    LLMC_POLICY_TTL_SHORT = 1,   /* volatile data (ttl_s, e.g. 300 s) */
    LLMC_POLICY_TTL_REQUEST = 2  /* the request's Cache-Control: max-age */
} llmc_policy_ttl_class;

/* Per-rule settings for rules that can bypass, downgrade or shorten. */
typedef enum {
    LLMC_RULE_OFF = 0,
    LLMC_RULE_EXACT_ONLY = 1,
    LLMC_RULE_BYPASS = 2,
    LLMC_RULE_SHORT_TTL = 3 /* cache, with the rule's TTL */
} llmc_rule_mode;

/* Bits of llmc_policy_decision.fired: every rule that matched. */
enum {
    LLMC_FIRED_NO_STORE = 1u << 0,      /* Cache-Control: no-store */
    LLMC_FIRED_NO_CACHE = 1u << 1,      /* Cache-Control: no-cache / max-age=0 */
    LLMC_FIRED_MAX_AGE = 1u << 2,       /* Cache-Control: max-age=N */
    LLMC_FIRED_N = 1u << 3,             /* n > 1 */
    LLMC_FIRED_TEMPERATURE = 1u << 4,   /* temperature above the limit */
    LLMC_FIRED_TIME = 1u << 5,          /* time- or date-relative query */
    LLMC_FIRED_FINANCIAL = 1u << 6,     /* volatile financial data */
    LLMC_FIRED_CODE = 1u << 7,          /* code generation asked */
    LLMC_FIRED_PERSONAL = 1u << 8,      /* user field / personalisation header */
    LLMC_FIRED_TOOLS = 1u << 9,         /* request declares tools/functions */
    LLMC_FIRED_NO_QUERY = 1u << 10,     /* no query text to embed */
    LLMC_FIRED_ENDPOINT = 1u << 11,     /* endpoint not cacheable / not semantic */
    LLMC_FIRED_RESP_STATUS = 1u << 16,  /* non-2xx response */
    LLMC_FIRED_RESP_TOOL = 1u << 17,    /* response is a tool / function call */
    LLMC_FIRED_RESP_TRUNC = 1u << 18,   /* finish_reason "length" (truncated) */
    LLMC_FIRED_RESP_CODE = 1u << 19,    /* the answer contains a code block */
    LLMC_FIRED_RESP_INVALID = 1u << 20, /* body unreadable / error object / filtered */
};

/* Configuration. Obtain with llmc_policy_default_params(); change fields
 * directly or with llmc_policy_set(). Plain data: copying is fine. */
typedef struct {
    int enabled;                  /* 0: every request is CACHE (1) */
    int cache_control;            /* honour request Cache-Control (1) */
    double temperature_max;       /* bypass above this; < 0 disables (0.8) */
    int n_rule;                   /* n > 1 -> bypass (1) */
    llmc_rule_mode time_relative; /* BYPASS (default) or OFF */
    llmc_rule_mode financial;     /* SHORT_TTL (default), BYPASS or OFF */
    long financial_ttl_s;         /* TTL of the SHORT class (300) */
    llmc_rule_mode code;          /* code asked for: EXACT_ONLY (default), BYPASS, OFF */
    llmc_rule_mode code_answer;   /* answer has code: EXACT_ONLY (default), BYPASS, OFF */
    llmc_rule_mode personal;      /* user / header: EXACT_ONLY (default), BYPASS, OFF */
    char personal_header[64];     /* header name ("X-LLM-Cache-User"); "" = none */
    llmc_rule_mode tools;         /* request declares tools: EXACT_ONLY (default), OFF */
    int truncated;                /* refuse finish_reason "length" (1) */
} llmc_policy_params;

llmc_policy_params llmc_policy_default_params(void);

/* Set one parameter from a configuration line `key value`. Keys may carry
 * the "policy." prefix or not. Returns 0, LLMC_ENOTFOUND for an unknown key,
 * LLMC_EINVAL for a value the key does not accept (p unchanged then). Use
 * llmc_policy_key_help() to tell the user what was expected. Keys:
 *   enabled on|off              cache-control on|off
 *   temperature-max <0..2>|off  n on|off
 *   time-relative bypass|off    financial bypass|ttl:<seconds>|off
 *   code exact-only|bypass|off  code-answer exact-only|bypass|off
 *   personal exact-only|bypass|off   personal-header <Header-Name>|none
 *   tools exact-only|off        truncated on|off
 * (on|off also accept yes|no, true|false, 1|0; "on" means the default mode.) */
int llmc_policy_set(llmc_policy_params *p, const char *key, const char *value);

/* A static one-line description of the values key accepts, or NULL when
 * key is unknown. For error messages in the configuration loader. */
const char *llmc_policy_key_help(const char *key);

/* Create a policy from params (copied; p may be NULL for the defaults).
 * NULL on failure with *err set (LLMC_EINVAL for inconsistent params,
 * LLMC_ENOMEM). Free with llmc_policy_free (NULL is fine). */
llmc_policy *llmc_policy_new(const llmc_policy_params *p, int *err);
void llmc_policy_free(llmc_policy *pol);

/* What the gateway extracted from one request. All pointers are borrowed
 * for the duration of the call only; texts need not be NUL-terminated.
 * Zero-initialise, then set what the request has. */
typedef struct {
    const char *endpoint;   /* path, e.g. "/v1/chat/completions"; NULL = chat */
    double temperature;     /* NAN (or any NaN) when absent */
    int n;                  /* choices asked for; 0 when absent */
    const char *user;       /* the body's "user" field, or NULL */
    const char *personal;   /* value of the personalisation header, or NULL */
    int has_tools;          /* tools / functions declared, or tool messages */
    const char *query_text; /* the query (last user message), or NULL */
    size_t query_len;
    const char *system_text; /* the system prompt, or NULL (the code rule reads it) */
    size_t system_len;
    const char *cache_control; /* raw Cache-Control request header, or NULL */
} llmc_policy_request;

/* The decision. reason and the pointer fields are static strings, valid
 * forever. */
typedef struct {
    llmc_policy_action action;
    int lookup;     /* 1: may be answered from the cache */
    int store;      /* 1: the upstream answer may be stored */
    int semantic;   /* 1: semantic tier allowed (lookup and insert) */
    int scope_user; /* 1: key and partition must include the user */
    llmc_policy_ttl_class ttl_class;
    long ttl_s;         /* TTL to store with; 0 = the store's default */
    long max_age_s;     /* serve only entries younger than this; -1 = any */
    const char *reason; /* "default" or the strongest rule that fired */
    uint32_t fired;     /* LLMC_FIRED_* bits of every rule that matched */
} llmc_policy_decision;

/* Decide for a request. Always fills *out with a usable decision, even on
 * error (then BYPASS, reason "policy-error"). Returns 0, or LLMC_EINVAL
 * when pol, req or out is NULL. Rules combine by strength: BYPASS over
 * EXACT_ONLY over CACHE; the shortest TTL wins; reason names the strongest
 * rule (the first in the order of the LLMC_FIRED_* bits). An absent
 * temperature does not trigger the temperature rule. */
int llmc_policy_decide(const llmc_policy *pol, const llmc_policy_request *req,
                       llmc_policy_decision *out);

/* Check an upstream response before storing it; may only make *inout
 * stricter (store 0, or CACHE -> EXACT_ONLY), never looser. body is the
 * JSON response of len bytes, or, when is_stream_assembled is set, either
 * the assembled JSON or the raw SSE text ("data: {...}" events). Never
 * stored: non-2xx status, tool/function calls, finish_reason "length" (when
 * the truncated rule is on), error objects, unreadable bodies. An answer
 * containing a ``` code block is downgraded per the code-answer rule.
 * Returns 0, or LLMC_EINVAL for NULL pol/inout (then inout->store = 0 when
 * inout is not NULL). */
int llmc_policy_check_response(const llmc_policy *pol, int http_status, const char *body,
                               size_t len, int is_stream_assembled, llmc_policy_decision *inout);

/* The same check on an answer already parsed by llmc_resp_parse or
 * llmc_resp_from_sse (info): what llmc_cache_put uses, so that a body is
 * parsed once. Same rules, same reasons, same return values. */
int llmc_policy_check_answer(const llmc_policy *pol, int http_status, const llmc_resp_info *info,
                             llmc_policy_decision *inout);

/* The configured personalisation header name ("" when none), for the
 * gateway to read that header into llmc_policy_request.personal. Owned by
 * pol, valid until llmc_policy_free(). */
const char *llmc_policy_personal_header(const llmc_policy *pol);

/* Static name of an action: "cache", "exact-only", "bypass". */
const char *llmc_policy_action_name(llmc_policy_action a);

/* The text rules' names: "time", "finance", "code" for i = 0, 1, 2; NULL
 * past the last. */
const char *llmc_policy_rule_name(int i);

/* The languages whose phrase lists the text rule named rule serves (ISO
 * 639-1 codes, static strings: "en", "ru"), read from the phrase tables
 * themselves (a language tag per list), each once, in list order; at most
 * max of them are written to out. Returns how many there are (which may be
 * more than max), or LLMC_EINVAL for an unknown rule or a NULL argument.
 * The scanners for dates, tickers and code punctuation serve any language
 * and are not counted. */
int llmc_policy_rule_langs(const char *rule, const char **out, int max);

/* ---- guard: semantic false-hit guard (src/guard.c) -------------------
 *
 * Given a new query and a stored candidate question that the vector search
 * found above the cosine threshold, decides whether the candidate may
 * answer the query. It compares what embeddings are known to blur: numbers,
 * negations, named entities (capitalised words, acronyms, mixed-case and
 * alphanumeric tokens) and the remaining content words after stop-word
 * removal and light stemming, and rejects "one template, different filler"
 * pairs ("rehab center in Denali County" / "in Anchorage County"). Pure
 * function, no heap allocation (about 100 KB of stack), no state: safe from
 * any thread. Measure it with tools/llmcached-guard-eval.
 */
typedef struct llmc_guard_vocab llmc_guard_vocab; /* word rarities, below */
typedef struct llmc_lexicon llmc_lexicon;         /* synonyms, below */

typedef struct {
    int numbers;            /* numbers (digits and number words) must agree (1) */
    int negation;           /* presence of negation must agree (1) */
    int entities;           /* named entities must appear on both sides (1) */
    int max_entity_missing; /* entities one side may add ("Narendra Modi" vs
                               "Modi"); a substitution always fails (0) */
    double min_overlap;     /* minimum Dice overlap of the content words, in [0,1];
                               0 disables (0.40, chosen on the pairs data: the
                               highest value keeping >= 90% of GPTCache positives) */
    double relax_cosine;    /* cosine at or above which min_overlap is not applied;
                               > 1 disables the relaxation (2.0: to be tuned with
                               the encoder) */
    int max_slot_fill;      /* reject one template with different fillers of at
                               most this many words per side; 0 disables (2) */
    /* Appended fields. */
    double max_unmatched;          /* maximum share of the two texts' content, weighted
                                      by word rarity, that the other side lacks, in
                                      [0,1]; >= 1 disables (1: off in the guard's
                                      defaults; llmc_semantic_default_params sets
                                      0.40 with the model's vocabulary) */
    const llmc_guard_vocab *vocab; /* word rarities (llmc_guard_vocab_load),
                               borrowed; NULL: every content word weighs 1 */
    const llmc_lexicon *lexicon;   /* synonyms and base forms
                                 (llmc_lexicon_load), borrowed: a content word
                                 whose synonym the other side has is matched
                                 (not entities, numbers); NULL: off */
    int lexicon_senses;            /* senses of a word considered, most frequent
                                      first (see llmc_lexicon_senses) */
    unsigned long_words;           /* when both texts have at least this many words,
                                      a negation or numbers on one side only do not
                                      reject (a number substitution still does);
                                      0 disables */
} llmc_guard_params;

llmc_guard_params llmc_guard_default_params(void);

/* Word rarities for the guard: the log-probabilities of a SentencePiece
 * unigram vocabulary (vocab.json of the USE-lite model: a JSON array of
 * [piece, logp] pairs; pieces without a negative logp are skipped). A word's rarity is -log p of
 * its best segmentation into pieces ("▁county" 10.5, "▁the" 3.6, an unknown name ~20 and more).
 * Immutable once loaded: share it between threads. */
/* Load path. NULL on failure with *err set: LLMC_EIO (cannot open),
 * LLMC_EINVAL (not JSON, or not such an array), LLMC_ENOMEM. */
llmc_guard_vocab *llmc_guard_vocab_load(const char *path, int *err);
void llmc_guard_vocab_free(llmc_guard_vocab *v);
/* -log p of word (len bytes, as written; looked up lowercased and
 * capitalised), >= 0. */
double llmc_guard_vocab_rarity(const llmc_guard_vocab *v, const char *word, size_t len);

/* Synonyms for the guard: WordNet's index and exception files (Debian's
 * wordnet-base puts them in /usr/share/wordnet), read into memory (~4 MB).
 * Immutable once loaded: share it between threads (src/lexicon.c). */
#define LLMC_LEXICON_DIR "/usr/share/wordnet"
#define LLMC_LEXICON_IDS_MAX 64
#define LLMC_LEXICON_BASE 0x80000000u /* id bit: a base form, not a synset */
/* Load dir/index.{noun,verb,adj,adv} and dir/{noun,...}.exc. NULL on
 * failure with *err set: LLMC_EIO (cannot open an index file), LLMC_EINVAL
 * (not WordNet's format), LLMC_ENOMEM. */
llmc_lexicon *llmc_lexicon_load(const char *dir, int *err);
/* 1 when dir (may be NULL) holds WordNet's files (readable index.noun):
 * where an absent lexicon means "no synonyms" rather than an error. */
int llmc_lexicon_present(const char *dir);
void llmc_lexicon_free(llmc_lexicon *lx);
size_t llmc_lexicon_count(const llmc_lexicon *lx); /* lemmas loaded */
/* The sense ids of a lowercase word, sorted: per part of speech, for each
 * base form (itself, exception lists, WordNet's suffix rules) the index
 * knows, one id for the base form and its first max_senses synsets. At
 * most cap ids; 0 for a word WordNet does not know. */
size_t llmc_lexicon_senses(const llmc_lexicon *lx, const char *word, int max_senses, uint32_t *ids,
                           size_t cap);
/* 1 when two sorted id lists share an id. */
int llmc_lexicon_share(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);
/* 1 when words a and b share a base form or one of their senses. */
int llmc_lexicon_related(const llmc_lexicon *lx, const char *a, const char *b, int max_senses);

/* Why the guard said no (bits of llmc_guard_result.rejected). */
enum {
    LLMC_GUARD_NUMBER = 1u << 0,
    LLMC_GUARD_NEGATION = 1u << 1,
    LLMC_GUARD_ENTITY = 1u << 2,
    LLMC_GUARD_OVERLAP = 1u << 3,
    LLMC_GUARD_SLOT = 1u << 4,      /* same template, different filler */
    LLMC_GUARD_UNMATCHED = 1u << 5, /* too much (rare) content on one side only */
    LLMC_GUARD_OPPOSITE = 1u << 6,  /* one side says on, enable, open...; the other
                                       off, disable, close... */
};

typedef struct {
    int accept;         /* 1: the candidate may answer the query */
    uint32_t rejected;  /* LLMC_GUARD_* bits of the checks that failed */
    double overlap;     /* content-token overlap measured, in [0,1] */
    int entity_missing; /* entities of either side absent from the other */
    const char *reason; /* static: "ok", "number", "negation", "entity",
                           "substitution", "overlap", "unmatched",
                           "opposite" */
    double unmatched;   /* rarity-weighted share of content one side lacks */
    double lacked[2];   /* of that, the weight of the query's [0] and the
                           candidate's [1] content the other side lacks */
    double content[2];  /* the weight of all of each side's content */
    /* Appended. */
    char detail[64]; /* what a user is told on a refusal: "number 2 vs 3",
                        "entity paris vs london", "negation 'not' on one
                        side only", or the reason; "" on accept */
} llmc_guard_result;

/* Check a candidate. query/cand are UTF-8 of qlen/clen bytes (need not be
 * NUL-terminated); texts longer than 4096 bytes are compared on their first
 * 4096 bytes. cosine is the similarity the search found, or NAN when
 * unknown. p may be NULL for the defaults. Returns 0 with *out filled, or
 * LLMC_EINVAL for NULL texts/out. */
int llmc_guard_check(const llmc_guard_params *p, const char *query, size_t qlen, const char *cand,
                     size_t clen, double cosine, llmc_guard_result *out);

/* The languages of the guard's word lists (stop words, negations, number
 * words), ISO 639-1 codes as static strings, at most max into out. Returns
 * how many there are, or LLMC_EINVAL for a NULL out. The guard's other
 * checks (digits, entities, the lexicon) run on any text, but for a language
 * not listed its stop words count as content and its negations go unseen. */
int llmc_guard_langs(const char **out, int max);

/* ---- semantic tier (src/semantic.c) ---------------------------------
 *
 * An answer stored with the vector of its query can serve a later request
 * whose query is similar enough: same partition (tenant, model, system
 * prompt, sampling, earlier turns: see canon), cosine at or above the
 * threshold, and the guard agreeing that the two queries ask the same thing.
 * The index lives beside the store: entries are added when stored (unless
 * exact-only) and removed whenever the store drops them (llmc_semantic_remove
 * from the store's on_remove hook). Vectors of another model are refused.
 * Thread safety: all functions may be called from any thread.
 */
typedef struct llmc_semantic llmc_semantic;

typedef struct {
    double threshold; /* minimum cosine to consider a candidate (see
                         semantic.c for how the default was chosen) */
    size_t k;         /* candidates examined per lookup (4) */
    size_t ef;        /* index search breadth (64) */
    int guard;        /* apply llmc_guard_check to candidates (1) */
    llmc_guard_params guard_params;
    llmc_hnsw_params index; /* dim and model must be the embedder's */
    /* Appended fields (semantic.c says how each default was measured). */
    double margin;           /* ambiguity: when two different questions pass and
                                the second's cosine is within margin of the
                                best's, serve neither (0.02; 0 disables) */
    double short_boost;      /* added to the threshold when the shorter of the
                                two texts has at most short_words words,
                                sliding to 0 at long_words (0.10; 0 disables) */
    unsigned short_words;    /* (12) */
    unsigned long_words;     /* (20) */
    const char *vocab_path;  /* vocab.json giving the guard its word rarities,
                                loaded by llmc_semantic_new when the file
                                exists (the default model's:
                                "data/models/use-lite/vocab.json"); NULL or a
                                missing file: unweighted. Ignored when
                                guard_params.vocab is set. */
    const char *lexicon_dir; /* WordNet files giving the guard its synonyms
                                (LLMC_LEXICON_DIR), loaded by llmc_semantic_new
                                when dir/index.noun exists; NULL or missing:
                                no synonyms. Ignored when guard_params.lexicon
                                is set. */
    int agree;               /* when a second candidate passes within margin:
                                0 always ambiguous; 1 not when the two hold the
                                same answer; 2 nor when their stored questions
                                are paraphrases of each other by this decision
                                (semantic.c says which default was measured) */
} llmc_semantic_params;

/* Why a lookup served or did not (llmc_semantic_result.kind): a bounded
 * set, so that a daemon can count them as metric labels. SKIPPED is never
 * returned by the library: a caller that did not look up (an overloaded
 * encoder) reports it with the same vocabulary. */
typedef enum {
    LLMC_SEM_HIT = 0,
    LLMC_SEM_EMPTY,     /* nothing indexed in the partition */
    LLMC_SEM_BELOW,     /* best candidate below the bar: similarity < needed */
    LLMC_SEM_GUARD,     /* the guard refused the best candidate: guard_detail */
    LLMC_SEM_AMBIGUOUS, /* two candidates that disagree passed, as close */
    LLMC_SEM_FLOOR,     /* the entry answered such a query differently before */
    LLMC_SEM_TOO_OLD,   /* the candidates that passed are older than max_age_s */
    LLMC_SEM_SKIPPED,   /* not looked up (the caller's reason) */
    LLMC_SEM_KINDS
} llmc_semantic_kind;

typedef struct {
    double similarity;  /* cosine of the candidate served / best examined */
    int candidates;     /* candidates at or above the threshold */
    int guard_rejected; /* of those, how many the guard turned away */
    const char *reason; /* static: "hit", "empty", "below-threshold", "guard",
                           "ambiguous", "learned-floor", "too-old" */
    /* Appended: the structured reason a daemon formats for its users. */
    llmc_semantic_kind kind;
    double needed;         /* BELOW: the bar the best candidate missed (the
                              threshold, raised for short texts) */
    char guard_detail[64]; /* GUARD: llmc_guard_result.detail of the best
                             candidate ("number 2 vs 3") */
    int agreed;            /* HIT: other passing candidates that agreed with the
                              one served (same answer, or paraphrases of it) */
} llmc_semantic_result;

/* Static label of a kind for metrics: "hit", "empty_partition",
 * "below_threshold", "guard", "ambiguous", "learned_floor", "too_old",
 * "skipped". */
const char *llmc_semantic_kind_name(llmc_semantic_kind k);

/* Embed n query texts as the semantic tier compares them: each is first
 * normalised (llmc_normalize; a text that normalises to nothing is embedded
 * as written), the same on store and on lookup. out holds n * dim floats.
 * Returns 0 or the embedder's error (any failing text fails the call). */
int llmc_semantic_embed_batch(llmc_embedder *em, const char *const *texts, const size_t *lens,
                              size_t n, float *out);

llmc_semantic_params llmc_semantic_default_params(void);
llmc_semantic *llmc_semantic_new(const llmc_semantic_params *p, int *err);
void llmc_semantic_free(llmc_semantic *sem);
/* Index entry e (its vec, partition, key). Returns 0, LLMC_EINVAL (no
 * vector, exact-only), LLMC_EMISMATCH (another model or dimension),
 * LLMC_EEXIST, LLMC_EFULL. */
int llmc_semantic_add(llmc_semantic *sem, const llmc_entry_info *e);
/* Forget the entry with this key (no error when absent). */
void llmc_semantic_remove(llmc_semantic *sem, const uint8_t key[LLMC_KEY_LEN]);
/*
 * The best live entry of store s that may answer query (text of qlen bytes,
 * vector q) in partition, or NULL. threshold < 0 uses the params'; entries
 * created more than max_age_s before now are passed over (-1: any age), so
 * a younger candidate may still answer. The returned entry is a new
 * reference (release it); res (may be NULL) says why.
 */
const llmc_entry_info *llmc_semantic_lookup(llmc_semantic *sem, llmc_store *s, uint64_t partition,
                                            const float *q, const char *query, size_t qlen,
                                            double threshold, long max_age_s, int64_t now,
                                            llmc_semantic_result *res);
size_t llmc_semantic_count(llmc_semantic *sem);
const char *llmc_semantic_model(llmc_semantic *sem);

/* ---- normalize: the text the semantic tier embeds (src/normalize.c) --
 *
 * NFKC with Unicode case folding (ICU), white space collapsed, trailing
 * punctuation dropped, typographic apostrophes made plain, and common
 * English contractions spelled out ("what's" -> "what is", "can't" ->
 * "cannot", "doesn't" -> "does not"). Only embeddings see it: the guard
 * compares the original text, where case carries meaning. Pure, thread-safe.
 */
/* Normalise text (len bytes of UTF-8, need not be NUL-terminated) into a
 * new NUL-terminated string *out (malloc'd: the caller frees it) of
 * *out_len bytes (out_len may be NULL); the result may be empty. Returns 0,
 * LLMC_EUTF8 for invalid UTF-8, LLMC_EINVAL for NULL arguments, LLMC_ENOMEM. */
int llmc_normalize(const char *text, size_t len, char **out, size_t *out_len);

/* ==== end semantic =================================================== */

/* ==== cache: the cache as one object ================================= */
/* (section owned by src/cache.c, src/cache_sqlite.c)
 *
 * llmc_cache is what the daemon is, minus sockets and threads: one object
 * that owns the exact-tier store, the semantic index, the store backend
 * (persistence) and the policy, with calls in the shape of the request
 * path:
 *
 *   llmc_cache_prepare       canonical form, exact key, partition, decision
 *   llmc_cache_get_exact     the exact tier (TTL and max-age, one place)
 *   llmc_cache_fetch         a near-cache miss asked of a remote backend
 *   llmc_cache_get_semantic  the semantic tier (blocking; worker threads)
 *   llmc_cache_put           an upstream answer: parsed once, checked by the
 *                            policy, stored in memory, index and backend
 *   llmc_cache_delete/_flush administration
 *
 * Every rule about what may be served (expiry, the client's max-age, the
 * entry's exact-only flag) and what may be stored lives here; callers do
 * not repeat it. Thread safety: every function may be called from any
 * thread, except llmc_cache_enable_semantic and llmc_cache_free (before and
 * after the threads that use the cache).
 */
typedef struct llmc_cache llmc_cache;

/* Bytes and counters of a cache (llmc_cache_get_stats). */
typedef struct {
    llmc_store_stats store;     /* the in-memory (near) tier */
    uint64_t puts;              /* answers stored */
    uint64_t put_refused;       /* answers the checks or the store refused */
    const char *backend;        /* static name of the backend ("memory", "sqlite", ...) */
    int has_persist;            /* persist below is filled */
    llmc_persist_stats persist; /* the SQLite backend's counters */
    const char *semantic_model; /* NULL: semantic tier off; valid while the cache lives */
    size_t semantic_indexed;    /* entries in the semantic index */
} llmc_cache_stats;

/*
 * The store backend seam. The cache always keeps entries in its in-memory
 * store; a backend is where they live beyond it. Today's backend is SQLite
 * (src/cache_sqlite.c): a mirror of the memory store, written behind, read
 * at start. A remote backend (Redis, shared by a fleet) is the source of
 * truth with the memory store as a bounded near cache in front; its calls
 * may complete asynchronously on the caller's event loop. Every op may be
 * NULL (nothing to do). `be` is the backend's own state (params.backend_state).
 */
/* Completion of llmc_cache_fetch: rc 0 and e a new reference (release it),
 * or rc < 0 (LLMC_ENOTFOUND: not there or too old; another code: the
 * backend failed, treat as a miss) and e NULL. */
typedef void (*llmc_cache_fetch_cb)(int rc, const llmc_entry_info *e, void *arg);

typedef struct llmc_cache_backend_ops {
    const char *name; /* static, for stats and logs */
    /* 1: the memory store is a bounded near cache in front of a backend
     * that holds more (Redis). Then the semantic index follows the backend
     * (llmc_cache_notify_put/_delete), not the near cache's evictions.
     * 0: the backend mirrors the memory store (SQLite). */
    int near_cache;
    /* At llmc_cache_new: fill the near cache `near` with what the backend
     * holds that is live at now (a warm start; with llmc_store_put) and
     * start any background work. May block (start-up). 0 or LLMC_E*. */
    int (*load)(void *be, llmc_store *near, int64_t now);
    /* Per event loop, before it serves: the backend's handle for fetches
     * completing on that loop (`base` is the loop's struct event_base).
     * NULL is a valid handle. */
    void *(*loop_attach)(void *be, void *base);
    void (*loop_detach)(void *be, void *loop);
    /* A near-cache miss for key: start fetching it and return 0, then call
     * done(rc, e, arg) exactly once, later, on `loop`'s thread (never from
     * inside fetch); or return a negative code without calling done
     * (LLMC_ENOTFOUND: nothing to fetch). e, when found, is the entry as
     * the backend holds it (borrowed for the call); the cache copies it
     * into the near cache and applies the age rules before its caller
     * sees it. */
    int (*fetch)(void *be, void *loop, const uint8_t key[LLMC_KEY_LEN], llmc_cache_fetch_cb done,
                 void *arg);
    /* An entry was stored in the near cache by this instance (e is a
     * reference valid for the call; take llmc_entry_ref to keep it). May
     * queue the write and return at once; never blocks on the network. */
    int (*put)(void *be, const llmc_entry_info *e);
    /* e left the near cache (reason LLMC_RM_*), with the store's lock held:
     * must not call back into the cache or the store. A mirror (SQLite)
     * follows every removal but REPLACE; a source of truth ignores them
     * (its deletes come through del/flush). */
    void (*removed)(void *be, const llmc_entry_info *e, int reason);
    /* This instance deletes a key / flushes a namespace (ns_hash != 0) or
     * everything (all): asynchronous allowed. */
    int (*del)(void *be, const uint8_t key[LLMC_KEY_LEN]);
    void (*flush)(void *be, uint64_t ns_hash, int all);
    /* Fill the backend's part of st (has_persist, persist, ...). */
    void (*stats)(void *be, llmc_cache_stats *st);
    /* Finish queued writes and free be. */
    void (*close)(void *be);
    /* Optional (NULL: no fleet; llmc_cache_lock answers LLMC_ENOTSUP).
     * lock: take the fleet's short lock on key for ttl_ms, asynchronously
     * as fetch (done(rc, holder, arg) once, later, on loop's thread; rc as
     * llmc_cache_lock's). unlock: release it once the writes queued before
     * it are done, only while this instance still holds it (answered as
     * llmc_cache_unlock's). */
    int (*lock)(void *be, void *loop, const uint8_t key[LLMC_KEY_LEN], int ttl_ms,
                void (*done)(int rc, const char *holder, void *arg), void *arg);
    int (*unlock)(void *be, const uint8_t key[LLMC_KEY_LEN], int answered);
} llmc_cache_backend_ops;

/* Store an entry already in hand (an import, a test, an evaluation):
 * copied into memory, indexed when it has a vector of the index's model
 * and is not exact-only, written to the backend. The caller's rules, not
 * the policy's, decide that it may be stored. 0 or the llmc_store_put
 * error. */
int llmc_cache_insert(llmc_cache *c, const llmc_entry_info *e, int64_t now);
/* An answer stored without its vector (its lookup was skipped under load)
 * gets it now: the entry under key, if it is still the one stored for
 * query, has no vector and is not exact-only, is stored again with vec
 * (dim floats of the index's model; same answer, same expiry), indexed and
 * written to the backend. 0; LLMC_ENOTFOUND when there is no such entry
 * any more (expired, replaced, already indexed); LLMC_ENOTSUP when the
 * semantic tier is off; llmc_store_put's errors. */
int llmc_cache_attach_vector(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN], const char *query,
                             const float *vec, uint32_t dim, int64_t now);

/* What a backend calls when another instance inserted or deleted an entry:
 * the near cache and the semantic index follow, and nothing is written back
 * to the backend. Any thread (a remote backend calls them on the loop that
 * reads its change stream). notify_put copies e; 0 or LLMC_E*. */
int llmc_cache_notify_put(llmc_cache *c, const llmc_entry_info *e, int64_t now);
void llmc_cache_notify_delete(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN]);

typedef struct {
    size_t max_bytes;          /* memory budget of the store (256 MiB) */
    long long ttl_s;           /* TTL of an answer the policy gives none (3600) */
    llmc_policy_params policy; /* the policy (llmc_policy_default_params) */
    unsigned canon_flags;      /* LLMC_CANON_* bits for llmc_cache_prepare (0) */
    /* The built-in backend: SQLite at persist_path (NULL: memory only). */
    const char *persist_path;
    int persist_sync;      /* commit each put before it returns (0) */
    int flush_interval_ms; /* write-behind period (1000) */
    /* Another backend instead (persist_path then ignored): ops must stay
     * valid while the cache lives; backend_state is handed to ops->close. */
    const llmc_cache_backend_ops *backend;
    void *backend_state;
    /* The built-in backend's llmc_persist_params.on_error (NULL: none). */
    void (*persist_on_error)(int ok, const char *msg, uint64_t failures, void *arg);
    void *persist_on_error_arg;
} llmc_cache_params;

llmc_cache_params llmc_cache_default_params(void);
/* Create the cache: store, policy, backend (opened and loaded: a warm
 * start). NULL on failure with *err set and a message in errbuf (errlen
 * bytes; may be 0) — a foreign or corrupt SQLite file is refused, never
 * rewritten. Free with llmc_cache_free (closes the backend: queued writes
 * are finished). */
llmc_cache *llmc_cache_new(const llmc_cache_params *p, int *err, char *errbuf, size_t errlen);
void llmc_cache_free(llmc_cache *c);

/* Turn the semantic tier on: create its index from p (dim and model must be
 * the embedder's) and index every live entry that has a vector. Call
 * before other threads use the cache. 0, LLMC_EEXIST (already on) or the
 * llmc_semantic_new error. */
int llmc_cache_enable_semantic(llmc_cache *c, const llmc_semantic_params *p);
/* The embedder name the index holds vectors of, or NULL when off. */
const char *llmc_cache_semantic_model(const llmc_cache *c);
/* The personalisation header the policy reads ("" none): the caller puts
 * its value in llmc_cache_request.personal. Valid while c lives. */
const char *llmc_cache_personal_header(const llmc_cache *c);

/* One request as the caller received it. Pointers are borrowed for the
 * call; strings are NUL-terminated; NULL when absent. */
typedef struct {
    llmc_endpoint ep;
    const char *body;
    size_t len;
    const char *authorization; /* Authorization header */
    const char *ns;            /* namespace header */
    int ns_shared;             /* ns is declared shared */
    const char *personal;      /* the personalisation header's value */
    const char *cache_control; /* Cache-Control header */
    /* Headers that narrow the tenant (llmc_tenant_scope): who owns the
     * answer (organization, project; ignored in a shared namespace) and
     * what can change it (beta features). */
    const char *organization; /* OpenAI-Organization */
    const char *project;      /* OpenAI-Project */
    const char *beta;         /* OpenAI-Beta */
} llmc_cache_request;

/* What llmc_cache_prepare makes of a request. Plain data but the two
 * owned strings, which llmc_cache_prep_clear frees (a caller may take them
 * over and set them to NULL). */
typedef struct {
    llmc_endpoint ep;
    uint8_t key[LLMC_KEY_LEN]; /* exact key */
    uint64_t partition;        /* semantic partition (first 8 bytes of its hash) */
    uint64_t ns_hash;          /* namespace, for flush by namespace */
    char model[128];
    int stream;               /* the client asked for SSE (never for embeddings) */
    llmc_policy_decision dec; /* lookup / store / semantic, TTL class, max_age_s */
    long long ttl_s;          /* TTL an answer is stored with */
    uint32_t entry_flags;     /* LLMC_ENTRY_* an answer is stored with */
    char *query;              /* what the semantic tier embeds (owned), or NULL */
    size_t query_len;
    char *prompt; /* the prompt as text, the prefix router's key (owned), or NULL */
    size_t prompt_len;
} llmc_cache_prep;

/* Canonicalise and decide. 0, or LLMC_EINVAL with a static message in *why
 * (may be NULL) for a body that is not a valid request: nothing is
 * touched then. The decision never fails a request (BYPASS at worst). On
 * success clear *out with llmc_cache_prep_clear. */
int llmc_cache_prepare(llmc_cache *c, const llmc_cache_request *r, llmc_cache_prep *out,
                       const char **why);
void llmc_cache_prep_clear(llmc_cache_prep *p);

/* The exact tier: the live entry with key that is at most max_age_s old
 * (-1: any age) at now, as a new reference in *out (release it). 0 or
 * LLMC_ENOTFOUND (absent, expired, or older than the client accepts). The
 * near cache only: never blocks, never waits on a remote backend. */
int llmc_cache_get_exact(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN], long max_age_s,
                         int64_t now, const llmc_entry_info **out);

/* Attach / detach an event loop (its struct event_base) for fetches that
 * complete on it: returns the backend's handle for the loop (NULL is
 * valid; the memory and SQLite backends need none). */
void *llmc_cache_loop_attach(llmc_cache *c, void *base);
void llmc_cache_loop_detach(llmc_cache *c, void *loop);
/* After a near-cache miss: ask the backend. LLMC_ENOTFOUND at once when
 * the backend has nothing to fetch (memory, SQLite: done is not called);
 * 0 when started: done(rc, e, arg) is then called once, later, on loop's
 * thread, with the same rules as llmc_cache_get_exact (the entry found is
 * put in the near cache first). */
int llmc_cache_fetch(llmc_cache *c, void *loop, const uint8_t key[LLMC_KEY_LEN], long max_age_s,
                     llmc_cache_fetch_cb done, void *arg);

/*
 * Coalescing across a fleet: before a miss goes upstream, take the shared
 * backend's short lock on key (expiring after ttl_ms, so a holder that dies
 * releases it). 0 when started: done(rc, holder, arg) is called once,
 * later, on loop's thread (holder: the lock's value, an opaque instance id
 * borrowed for the call, when another instance holds it; else NULL) with
 * rc 0 (taken: call upstream, store, then
 * llmc_cache_unlock), 1 (this instance already holds it: join its own
 * flight), LLMC_EBUSY (another instance holds it: wait for its answer), or
 * another negative code (the backend is unavailable: go upstream). A
 * negative return means done will not be called: LLMC_ENOTSUP (no fleet
 * backend, or no loop handle) or the backend refused at once (down).
 */
int llmc_cache_lock(llmc_cache *c, void *loop, const uint8_t key[LLMC_KEY_LEN], int ttl_ms,
                    void (*done)(int rc, const char *holder, void *arg), void *arg);
/* Release the lock taken by llmc_cache_lock (from any thread): queued behind
 * this instance's pending writes, so the answer stored before it is visible
 * to the fleet first; only while the lock is still this instance's.
 * answered 1: deleted (the answer is stored, or this request needed no
 * upstream call); 0: the answer could not be stored — the lock is marked
 * so (its value becomes "!" + the holder, its expiry kept) and those
 * waiting on it go upstream at once instead of one after another. 0,
 * LLMC_ENOTSUP, or LLMC_EFULL (the lock then just expires). */
int llmc_cache_unlock(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN], int answered);

/* The semantic tier: the best entry in partition that may answer query
 * (text of qlen bytes, vector vec from the embedder the index was made
 * for), under the same age rules as llmc_cache_get_exact; threshold < 0:
 * the index's default. 0 with a new reference in *out, LLMC_ENOTFOUND
 * (res, may be NULL, says why: llmc_semantic_result's reasons; entries
 * older than max_age_s are passed over, not refused after the choice),
 * LLMC_ENOTSUP when the semantic tier is off. Blocks for the
 * search (sub-millisecond): call it off the event loops. */
int llmc_cache_get_semantic(llmc_cache *c, uint64_t partition, const float *vec, const char *query,
                            size_t qlen, double threshold, long max_age_s, int64_t now,
                            llmc_semantic_result *res, const llmc_entry_info **out);

/* What llmc_cache_put made of an answer. */
typedef struct {
    char *json; /* the answer as one complete JSON body (malloc'd,
                   NUL-terminated; the caller frees), NULL when unreadable */
    size_t json_len;
    llmc_resp_info info;
    int stored;      /* 1: in memory, index (when it has a vector) and backend */
    const char *why; /* static: why it was not stored, or NULL */
} llmc_cache_answer;

/*
 * An upstream answer to the request p was prepared for: parse it once (an
 * SSE stream when is_sse, assembled into JSON), let the policy look at it
 * (status, tool calls, truncation, code), and when p->dec.store still
 * allows, store it in memory, in the semantic index (with vec of dim
 * floats and query, unless exact-only; vec may be NULL) and in the
 * backend — together, or not at all. Returns 0 when the answer was read
 * (ans->stored says whether it was stored, ans->why why not) or a negative
 * code when it was not a well-formed answer (LLMC_EINVAL, LLMC_ENOTSUP:
 * ans->json NULL) or could not be stored (LLMC_ETOOBIG, LLMC_ENOMEM:
 * ans->json set). Nothing partial is ever stored.
 */
int llmc_cache_put(llmc_cache *c, const llmc_cache_prep *p, const float *vec, uint32_t dim,
                   const char *query, int http_status, const char *body, size_t len, int is_sse,
                   int64_t now, llmc_cache_answer *ans);

/* Remove one entry (memory, index, backend): 0 or LLMC_ENOTFOUND. */
int llmc_cache_delete(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN]);
/* Remove a namespace's entries (ns_hash != 0) or all (all != 0); returns
 * how many left the memory store. */
size_t llmc_cache_flush(llmc_cache *c, uint64_t ns_hash, int all);
/* Drop up to max entries expired at now (a background sweep; the request
 * path never needs it). Returns how many. */
size_t llmc_cache_expire(llmc_cache *c, int64_t now, size_t max);
void llmc_cache_get_stats(llmc_cache *c, llmc_cache_stats *st);

/* ==== end cache ====================================================== */

/* ==== cache_redis: the fleet's store backend ========================== */
/* (section owned by src/cache_redis.c)
 *
 * Several llmcached instances share one cache in Redis (redis://) or Redis
 * Cluster (redis-cluster://): entries live in Redis with their absolute
 * TTL, the memory store is a bounded near cache in front of it, each
 * instance's semantic index follows the others' inserts and deletes
 * through a Redis stream, and a new instance loads the live entries at
 * start. Redis unavailable: fetches fail fast (count them as
 * store_unavailable and go upstream), writes are dropped and counted, the
 * connections reconnect with back-off. Pass llmc_redis_backend_ops() and
 * the backend as llmc_cache_params.backend / backend_state, then call
 * llmc_redis_backend_start() with the cache. Thread safety: as llmc_cache.
 */
typedef struct llmc_redis_backend llmc_redis_backend;

typedef struct {
    const char *url;      /* redis://[USER[:PASS]@]HOST[:PORT][/DB] or
                             redis-cluster://[USER[:PASS]@]HOST:PORT,HOST:PORT,... */
    const char *password; /* overrides the URL's (--store-password); NULL */
    const char *prefix;   /* key prefix of this deployment ("llmc:") */
    int timeout_ms;       /* a fetch's deadline: a slower Redis is a miss (5) */
    long long near_ttl_s; /* a copy fetched from Redis stays in the near cache at most this (30) */
    long long stream_maxlen;                 /* the change stream's XADD MAXLEN ~ (100000) */
    int load_deadline_ms;                    /* warm start gives up after this (10000) */
    void (*log)(void *arg, const char *msg); /* connection events; never a password */
    void *log_arg;
} llmc_redis_backend_params;

typedef struct {
    char url[256]; /* the store URL with its password replaced by "***" */
    int cluster;
    uint32_t connections, connections_up;
    uint64_t fetches, fetch_hits, fetch_misses;
    uint64_t unavailable; /* fetches refused, failed or timed out */
    uint64_t bad_values;  /* values that were not ours or failed their check: never served */
    uint64_t puts, put_errors, deletes, flushes, loaded;
    uint64_t stream_out, stream_in, stream_errors;
    double stream_lag_ms, stream_lag_ms_max; /* another instance's XADD to our reading it */
    double rtt_p50_ms, rtt_p99_ms;           /* fetch round trips (power-of-two buckets) */
    uint64_t reconnects, timeouts, errors, auth_failures;
    uint64_t redirects; /* Redis Cluster MOVED and ASK redirections followed */
} llmc_redis_backend_stats;

llmc_redis_backend_params llmc_redis_backend_default_params(void);
/* Parse the URL and prepare (nothing connects before load). NULL with *err
 * (LLMC_EINVAL, LLMC_ENOTSUP, LLMC_ENOMEM) and a message in errbuf that
 * never contains the password. */
llmc_redis_backend *llmc_redis_backend_new(const llmc_redis_backend_params *p, int *err,
                                           char *errbuf, size_t errlen);
/* The ops to give llmc_cache_params.backend (static; never NULL). */
const llmc_cache_backend_ops *llmc_redis_backend_ops(void);
/* After llmc_cache_new: start writing and following the stream into c.
 * 0 or LLMC_ENOMEM / LLMC_EIO. llmc_cache_free closes the backend. */
int llmc_redis_backend_start(llmc_redis_backend *b, llmc_cache *c);
void llmc_redis_backend_get_stats(llmc_redis_backend *b, llmc_redis_backend_stats *st);

/* ==== end cache_redis ================================================= */

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
long llmc_kv_hash_chain(const int32_t *tokens, size_t n, int block_size, const llmc_kv_extra *extra,
                        uint8_t *out, size_t max_blocks);

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
int llmc_kvpool_begin(llmc_kvpool *pool, const int32_t *tokens, size_t n_prompt, size_t max_tokens,
                      const llmc_kv_extra *extra, llmc_kvseq **out);

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

/* What the pool did to a cached block, for an engine that publishes its KV
 * events (vLLM's BlockStored / BlockRemoved / AllBlocksCleared):
 *   LLMC_KV_STORED   a full block was registered under hash (its KV is
 *                    committed); parent is the previous block's hash or NULL
 *                    for the first block; tokens[0..n_tokens) its token ids.
 *   LLMC_KV_REMOVED  the block cached under hash was evicted (its id reused).
 *   LLMC_KV_CLEARED  every cached hash was dropped (llmc_kvpool_reset).
 * Pointers are valid only during the call. */
enum { LLMC_KV_STORED = 1, LLMC_KV_REMOVED = 2, LLMC_KV_CLEARED = 3 };
typedef struct {
    int kind; /* LLMC_KV_* */
    const uint8_t *hash, *parent;
    const int32_t *tokens;
    size_t n_tokens;
} llmc_kv_event;
/* Called under the pool's lock, in the order the pool changed: it must be
 * quick and must not call back into the pool. */
typedef void (*llmc_kv_listener)(void *ud, const llmc_kv_event *ev);
/* Set (or with fn NULL remove) the pool's one listener. Set it before the
 * pool is shared between threads. */
void llmc_kvpool_set_listener(llmc_kvpool *pool, llmc_kv_listener fn, void *ud);
/* Drop every cached hash (vLLM's reset_prefix_cache): only when no block is
 * in use, so that nothing running loses blocks it attached. 0 (the listener
 * sees LLMC_KV_CLEARED), or LLMC_EBUSY while a sequence holds blocks. */
int llmc_kvpool_reset(llmc_kvpool *pool);

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
    uint64_t precise;    /* llmc_prefix_route_held answers (also counted above) */
    uint64_t remembered; /* of those, sent where the prompt was last held (also affinity) */
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
/* What the engines' KV events say of one request's prompt (n_blocks full
 * blocks), for llmc_prefix_route_held. */
typedef struct {
    size_t *held;  /* held[i]: leading blocks of the prompt backend i holds */
    size_t *total; /* total[i]: all blocks backend i holds; NULL = not used */
    size_t *homed; /* homed[i]: blocks last stored on i, held or not; NULL = not used */
    size_t n_blocks;
    uint64_t tie;      /* a hash of the prompt (e.g. its deepest held block): ties */
    int last;          /* who stored the deepest known block last (evicted or not), -1 */
    size_t last_depth; /* that depth in blocks (llmc_kvindex_match_ex) */
} llmc_prefix_held;

/* Choose a backend from what each backend is known to hold (h, from KV
 * events), with llmc_prefix_route's load guard:
 * - a run longer than match_threshold x n_blocks, and longer than what
 *   every backend holds (a preamble all prompts share), decides: among the
 *   healthy backends that are not overloaded and hold the longest run, the
 *   one a rendezvous hash of (tie, backend) ranks first (gateways seeing the
 *   same events agree, different prompts spread); when those that are not
 *   overloaded hold less than half of the longest run, the least loaded (a
 *   "balance" decision);
 * - otherwise, when the prompt was held deeper before than now (h->last,
 *   h->last_depth), the backend that held it last, as the tree keeps a
 *   prefix where it was sent (least loaded if that one is overloaded);
 * - otherwise, when nobody holds a block (a new prefix) and h->homed is
 *   given, the backend with the fewest homed blocks among those not
 *   overloaded (what the fleet has placed there, evicted since or not: the
 *   same on every gateway), else with h->total the fewest blocks held
 *   (SGLang's smallest tree, from the engines' real trees); ties by the
 *   rendezvous hash: a "miss";
 * - otherwise LLMC_ENOTFOUND, counting nothing: the caller falls back to
 *   llmc_prefix_route. Also LLMC_ENOTFOUND when no backend is healthy. */
int llmc_prefix_route_held(llmc_prefix_router *r, const llmc_prefix_held *h, const int *load,
                           const int *healthy);

/* ---- kvindex: which backend holds which block (from KV events) ----------
 *
 * Engines that publish KV events (vLLM's --kv-events-config, our engine's
 * --kv-events) say which blocks they store and evict. The index folds
 * those events into a map block hash -> backends, bounded in memory, so a
 * router can ask how many leading blocks of a prompt each backend holds.
 * Hashes are 64-bit: an engine's integer hash, or the last 8 bytes
 * (big-endian) of a bytes hash; for our engine llmc_kvindex_hash64 of the
 * chain hash (llmc_kv_hash_chain) gives the same value. The formats read
 * are written down in src/kvindex.c. Thread-safe (one internal mutex).
 */
typedef struct llmc_kvindex llmc_kvindex;

typedef struct {
    size_t max_entries; /* distinct hashes kept, held or remembered (default 1M); beyond,
                           the oldest remembered are forgotten, then new ones dropped */
} llmc_kvindex_params;

typedef struct {
    uint64_t batches, events;                 /* applied */
    uint64_t stored, removed;                 /* block hashes in BlockStored / BlockRemoved */
    uint64_t cleared;                         /* AllBlocksCleared */
    uint64_t malformed;                       /* payloads refused whole */
    uint64_t dropped;                         /* stored hashes not kept: max_entries reached */
    uint64_t rehashed;                        /* blocks indexed under our hash of their token_ids */
    uint64_t unchained;                       /* blocks with tokens whose parent was unknown */
    uint64_t matches;                         /* llmc_kvindex_match calls */
    size_t entries;                           /* distinct hashes held by some backend */
    size_t remembered;                        /* evicted everywhere, last holder kept (counted with
                                                 entries against max_entries) */
    size_t bytes;                             /* memory held */
    size_t held[LLMC_PREFIX_MAX_BACKENDS];    /* blocks per backend */
    size_t homed[LLMC_PREFIX_MAX_BACKENDS];   /* held or remembered, last stored there */
    int block_size[LLMC_PREFIX_MAX_BACKENDS]; /* from BlockStored, 0 until seen */
} llmc_kvindex_stats;

llmc_kvindex_params llmc_kvindex_default_params(void);
/* An empty index for n_backends (1..LLMC_PREFIX_MAX_BACKENDS). p NULL =
 * defaults. NULL with *err set. */
llmc_kvindex *llmc_kvindex_new(const llmc_kvindex_params *p, int n_backends, int *err);
void llmc_kvindex_free(llmc_kvindex *x);
/* Apply one KVEventBatch payload (msgpack) published by backend. Returns
 * the number of events in it, or LLMC_ECORRUPT (nothing applied) when it
 * is not a well-formed batch, LLMC_EINVAL on bad arguments. Unknown event
 * kinds are skipped. */
long llmc_kvindex_apply(llmc_kvindex *x, int backend, const void *payload, size_t len);
/* Forget everything backend holds (it restarted, or its stream had a gap
 * that replay could not fill). 0 or LLMC_EINVAL. */
int llmc_kvindex_clear_backend(llmc_kvindex *x, int backend);
/* For a prompt's chain of block hashes[0..n): held[i] = how many leading
 * blocks backend i holds (held has one slot per backend). Returns the
 * largest. */
size_t llmc_kvindex_match(llmc_kvindex *x, const uint64_t *hashes, size_t n, size_t *held);
/* llmc_kvindex_match, and (last, last_depth not NULL) the backend that
 * stored the deepest block of the chain that is held or remembered (every
 * holder evicted it since; see src/kvindex.c) and that depth in blocks:
 * where the prefix was last held, -1 and 0 when no block of it is known.
 * When last_depth > the result, the prefix was held deeper than it is now. */
size_t llmc_kvindex_match_ex(llmc_kvindex *x, const uint64_t *hashes, size_t n, size_t *held,
                             int *last, size_t *last_depth);
/* The 64-bit form of one of our chain hashes: its last 8 bytes, big-endian. */
uint64_t llmc_kvindex_hash64(const uint8_t h[LLMC_KV_HASH_LEN]);
/* The block size the backends announced (first one seen), or 0. */
int llmc_kvindex_block_size(llmc_kvindex *x);
void llmc_kvindex_get_stats(llmc_kvindex *x, llmc_kvindex_stats *st);
/* ==== end prefix ===================================================== */

/* ==== metrics ======================================================== */
/* (section owned by src/metrics.c)
 *
 * Counters per model and outcome, latency histograms, tokens and money
 * saved. Updates are lock-free (atomics) and may come from any thread;
 * models beyond LLMC_METRICS_MAX_MODELS are counted under "other".
 */
#include <stdio.h>

#define LLMC_METRICS_MAX_MODELS 64

typedef enum {
    LLMC_OUT_HIT_EXACT = 0,
    LLMC_OUT_HIT_SEMANTIC,
    LLMC_OUT_MISS,
    LLMC_OUT_BYPASS,
    LLMC_OUT__COUNT
} llmc_outcome;

typedef enum {
    LLMC_HIST_HIT = 0,         /* time to serve a hit, request in to response out */
    LLMC_HIST_UPSTREAM,        /* upstream call: request sent to last byte */
    LLMC_HIST_MISS_TOTAL,      /* a miss end to end, as the client sees it */
    LLMC_HIST_SEMANTIC_LOOKUP, /* embed + search + decision */
    LLMC_HIST__COUNT
} llmc_hist;

typedef struct llmc_metrics llmc_metrics;

llmc_metrics *llmc_metrics_new(int *err);
void llmc_metrics_free(llmc_metrics *m);
/* Price of a model in money units per million tokens, for "saved". */
int llmc_metrics_set_price(llmc_metrics *m, const char *model, double in_per_m, double out_per_m);
/* One lookup of this outcome for model (NULL or "" counts as "unknown"). */
void llmc_metrics_count(llmc_metrics *m, const char *model, llmc_outcome o);
/* A hit served: its stored usage counts as tokens (and money) saved. */
void llmc_metrics_saved(llmc_metrics *m, const char *model, uint32_t prompt_tokens,
                        uint32_t completion_tokens);
void llmc_metrics_observe(llmc_metrics *m, llmc_hist h, double seconds);
/* An upstream failure: "connect", "timeout", "status", "protocol"... */
void llmc_metrics_upstream_error(llmc_metrics *m, const char *kind);
/* Quantile q (0..1) of histogram h in seconds, interpolated in its bucket;
 * NAN when empty. */
double llmc_metrics_quantile(llmc_metrics *m, llmc_hist h, double q);
/* Write the Prometheus text exposition / a JSON object's members (no
 * braces) of everything above to f. */
void llmc_metrics_write_prometheus(llmc_metrics *m, FILE *f);
void llmc_metrics_write_json(llmc_metrics *m, FILE *f);
/* Reading another server's Prometheus text (an engine's /metrics): the sum
 * of metric name's samples over all its label sets; NAN when text is NULL
 * or has no sample of that name ("name_total" is another metric). */
double llmc_prometheus_sum(const char *text, const char *name);
/* ==== end metrics ==================================================== */

#ifdef __cplusplus
}
#endif
#endif /* LLMCACHE_H */
