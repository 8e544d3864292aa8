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

enum { LLMC_HNSW_COSINE = 0, LLMC_HNSW_IP = 1 };   /* metric */
enum { LLMC_HNSW_F32 = 0, LLMC_HNSW_I8 = 1 };      /* stored vector format */

typedef struct {
    size_t dim;             /* vector dimension (default 384) */
    size_t M;               /* links per node on upper levels; 2*M on level 0 (default 16) */
    size_t ef_construction; /* candidate list size while inserting (default 100) */
    size_t ef_search;       /* default candidate list size of a search (default 64) */
    int metric;             /* LLMC_HNSW_COSINE (default) or LLMC_HNSW_IP */
    int quant;              /* LLMC_HNSW_F32 (default) or LLMC_HNSW_I8: 4x less vector
                               memory, similarities approximate (see bench/hnsw) */
    size_t max_bytes;       /* byte budget of the index storage; 0 = unlimited */
    const char *model;      /* embedding model name kept with the index (copied); default "" */
    uint64_t seed;          /* level generator seed (default 42): same inserts, same graph */
    size_t initial_capacity;/* slots allocated up front (default 1024) */
    int simd;               /* kernels: 0 best available (default), 1 scalar, 2 AVX2, 3 AVX-512 */
    int partition_search;   /* how a partition is searched: 0 auto (default: exact scan when
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
