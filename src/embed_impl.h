/*
 * embed_impl.h — the contract between src/embed.c (the public llmc_embed*
 * API) and the embedding backends (embed_use.c, embed_bert.c,
 * embed_remote.c). Internal to the library.
 *
 * A backend is created from the public params and returns an embed_backend
 * whose first member is this struct (backends embed it at offset 0 and
 * cast). embed.c checks arguments (NULL, n == 0, invalid UTF-8) before
 * calling a backend, so backends may assume valid UTF-8 input.
 */
#ifndef EMBED_IMPL_H
#define EMBED_IMPL_H

#include "llmcache.h"

typedef struct embed_backend embed_backend;
struct embed_backend {
    const char *model; /* model name stored with vectors; owned by the backend */
    size_t dim;        /* output dimension */
    size_t max_tokens; /* model window; longer inputs are truncated */
    /*
     * Embed n texts (texts[i] of lens[i] bytes, valid UTF-8, not
     * NUL-terminated) into out[i*dim .. i*dim+dim), each a unit vector.
     * Returns 0, or a negative LLMC_E* code; on error the contents of out
     * are unspecified. A text with no tokens gives LLMC_EEMPTY for the call.
     */
    int (*embed_batch)(embed_backend *b, const char *const *texts, const size_t *lens, size_t n,
                       float *out);
    void (*free)(embed_backend *b);
    /* what the products run in, e.g. "int8 (avx512-vnni)", "fp16", "fp32";
     * owned by the backend; NULL reads as "fp32" */
    const char *precision;
};

/* Constructors: NULL on failure with *err set (err may be NULL). */
embed_backend *embed_use_new(const llmc_embed_params *p, int *err);
embed_backend *embed_bert_new(const llmc_embed_params *p, int *err);
embed_backend *embed_remote_new(const llmc_embed_params *p, int *err);

#endif
