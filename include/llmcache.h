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
    char *query;     /* last user message's text (malloc'd, NUL-terminated) or NULL */
    size_t query_len;
    char *system;    /* system/developer prompt text (malloc'd) or NULL */
    size_t system_len;
    char *user;      /* "user" field (malloc'd) or NULL */
} llmc_canon;

/*
 * Parse body (len bytes of JSON) for endpoint ep and fill c. The user field
 * is part of the key when scope_user is set (personalised answers stay in
 * the user's own scope). Returns 0, or LLMC_EINVAL with a static message in
 * *why (may be NULL) for a body that is not a JSON object or lacks a
 * required field. On success the caller frees c with llmc_canon_clear().
 */
int llmc_canon_request(llmc_endpoint ep, const llmc_tenant *t, const char *body, size_t len,
                       int scope_user, llmc_canon *c, const char **why);
void llmc_canon_clear(llmc_canon *c);

/* Lower-case hex of a key into out (2*LLMC_KEY_LEN+1 bytes); parse it back
 * (returns 0 or LLMC_EINVAL). */
void llmc_key_hex(const uint8_t key[LLMC_KEY_LEN], char *out);
int llmc_key_parse(const char *hex, uint8_t key[LLMC_KEY_LEN]);
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
/* (section owned by src/kvblock.c, src/prefix.c) */
/* ==== end prefix ===================================================== */


/* ==== metrics ======================================================== */
/* (section owned by src/metrics.c) */
/* ==== end metrics ==================================================== */

#ifdef __cplusplus
}
#endif
#endif /* LLMCACHE_H */
