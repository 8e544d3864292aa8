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
/*
 * Responses (resp.c). The cache stores one form of an answer: the complete
 * JSON body (chat.completion, text_completion, embeddings list). A streamed
 * answer is assembled into that form once its final event has arrived; a
 * hit is replayed as JSON or as a valid SSE stream, whichever the request
 * asked for, so streamed and non-streamed requests share entries.
 */
typedef struct {
    uint32_t prompt_tokens, completion_tokens; /* from usage, 0 if absent */
    int has_tool_calls; /* tool_calls / function_call in a choice */
    int truncated;      /* a choice ended with finish_reason "length" */
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
int llmc_resp_from_sse(llmc_endpoint ep, const char *sse, size_t len, char **out,
                       size_t *out_len, llmc_resp_info *info);
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
    uint32_t dim;       /* length of vec (0: no vector) */
    uint32_t flags;     /* LLMC_ENTRY_* */
    const char *model;  /* NUL-terminated */
    const char *body;   /* the stored response (complete JSON), body_len bytes */
    size_t body_len;
    const float *vec;   /* semantic vector or NULL */
    const char *vec_model; /* embedder that made vec, NUL-terminated ("" if none) */
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
/* Take one more reference to an entry already held. */
void llmc_entry_ref(const llmc_entry_info *e);
/* Drop a reference; the last one frees the entry. */
void llmc_entry_release(const llmc_entry_info *e);
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
} llmc_persist_params;

typedef struct {
    uint64_t puts, deletes, commits, errors, loaded, skipped_corrupt, skipped_expired;
    size_t queued;
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
    const char *endpoint;      /* path, e.g. "/v1/chat/completions"; NULL = chat */
    double temperature;        /* NAN (or any NaN) when absent */
    int n;                     /* choices asked for; 0 when absent */
    const char *user;          /* the body's "user" field, or NULL */
    const char *personal;      /* value of the personalisation header, or NULL */
    int has_tools;             /* tools / functions declared, or tool messages */
    const char *query_text;    /* the query (last user message), or NULL */
    size_t query_len;
    const char *system_text;   /* the system prompt, or NULL (not scanned today) */
    size_t system_len;
    const char *cache_control; /* raw Cache-Control request header, or NULL */
} llmc_policy_request;

/* The decision. reason and the pointer fields are static strings, valid
 * forever. */
typedef struct {
    llmc_policy_action action;
    int lookup;               /* 1: may be answered from the cache */
    int store;                /* 1: the upstream answer may be stored */
    int semantic;             /* 1: semantic tier allowed (lookup and insert) */
    int scope_user;           /* 1: key and partition must include the user */
    llmc_policy_ttl_class ttl_class;
    long ttl_s;               /* TTL to store with; 0 = the store's default */
    long max_age_s;           /* serve only entries younger than this; -1 = any */
    const char *reason;       /* "default" or the strongest rule that fired */
    uint32_t fired;           /* LLMC_FIRED_* bits of every rule that matched */
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
                               size_t len, int is_stream_assembled,
                               llmc_policy_decision *inout);

/* The configured personalisation header name ("" when none), for the
 * gateway to read that header into llmc_policy_request.personal. Owned by
 * pol, valid until llmc_policy_free(). */
const char *llmc_policy_personal_header(const llmc_policy *pol);

/* Static name of an action: "cache", "exact-only", "bypass". */
const char *llmc_policy_action_name(llmc_policy_action a);

/* ---- guard: semantic false-hit guard (src/guard.c) -------------------
 *
 * Given a new query and a stored candidate question that the vector search
 * found above the cosine threshold, decides whether the candidate may
 * answer the query. It compares what embeddings are known to blur: numbers,
 * negations, named entities (capitalised words, acronyms, mixed-case and
 * alphanumeric tokens) and the remaining content words after stop-word
 * removal and light stemming, and rejects "one template, different filler"
 * pairs ("rehab center in Denali County" / "in Anchorage County"). Pure
 * function, no heap allocation (about 64 KB of stack), no state: safe from
 * any thread. Measure it with tools/llmcached-guard-eval.
 */
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
                               most this many words per side; 0 disables (3) */
} llmc_guard_params;

llmc_guard_params llmc_guard_default_params(void);

/* Why the guard said no (bits of llmc_guard_result.rejected). */
enum {
    LLMC_GUARD_NUMBER = 1u << 0,
    LLMC_GUARD_NEGATION = 1u << 1,
    LLMC_GUARD_ENTITY = 1u << 2,
    LLMC_GUARD_OVERLAP = 1u << 3,
    LLMC_GUARD_SLOT = 1u << 4, /* same template, different filler */
};

typedef struct {
    int accept;             /* 1: the candidate may answer the query */
    uint32_t rejected;      /* LLMC_GUARD_* bits of the checks that failed */
    double overlap;         /* content-token overlap measured, in [0,1] */
    int entity_missing;     /* entities of either side absent from the other */
    const char *reason;     /* static: "ok", "number", "negation", "entity",
                               "substitution", "overlap" */
} llmc_guard_result;

/* Check a candidate. query/cand are UTF-8 of qlen/clen bytes (need not be
 * NUL-terminated); texts longer than 4096 bytes are compared on their first
 * 4096 bytes. cosine is the similarity the search found, or NAN when
 * unknown. p may be NULL for the defaults. Returns 0 with *out filled, or
 * LLMC_EINVAL for NULL texts/out. */
int llmc_guard_check(const llmc_guard_params *p, const char *query, size_t qlen,
                     const char *cand, size_t clen, double cosine, llmc_guard_result *out);

/* ---- semantic tier (src/semantic.c) --------------------------------- */

/* ==== end semantic =================================================== */


/* ==== kvblock / prefix: KV prefix tier =============================== */
/* (section owned by src/kvblock.c, src/prefix.c) */
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
    LLMC_HIST_HIT = 0,      /* time to serve a hit, request in to response out */
    LLMC_HIST_UPSTREAM,     /* upstream call: request sent to last byte */
    LLMC_HIST_MISS_TOTAL,   /* a miss end to end, as the client sees it */
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
/* ==== end metrics ==================================================== */

#ifdef __cplusplus
}
#endif
#endif /* LLMCACHE_H */
