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
/* (section owned by src/embed*.c) */
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
