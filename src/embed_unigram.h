/*
 * embed_unigram.h — a SentencePiece Unigram tokenizer read from a Hugging
 * Face tokenizer.json (model "Unigram", normalizer "Precompiled", pre-
 * tokenizer "Metaspace"), giving the ids libsentencepiece gives for the
 * .model file the tokenizer.json was converted from. Internal; used by the
 * bert backend for XLM-RoBERTa models that ship no sentencepiece.bpe.model.
 *
 * An embed_unigram is immutable after load except for its scratch buffers:
 * one thread at a time (like the embedder that owns it).
 */
#ifndef EMBED_UNIGRAM_H
#define EMBED_UNIGRAM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct embed_unigram embed_unigram;

/* Build from a parsed tokenizer.json (tj is only read). NULL on failure with
 * *err = LLMC_ENOTSUP (another model, normaliser or pre-tokenizer; byte
 * fallback), LLMC_ECORRUPT (malformed vocabulary or charsmap) or
 * LLMC_ENOMEM. */
embed_unigram *embed_unigram_from_json(const json_t *tj, int *err);
void embed_unigram_free(embed_unigram *u);

/* Number of pieces (ids are below it); the id of a piece (-1 if none); the
 * longest piece in bytes. */
size_t embed_unigram_size(const embed_unigram *u);
int32_t embed_unigram_find(const embed_unigram *u, const char *s, size_t n);
size_t embed_unigram_max_piece(const embed_unigram *u);

/* Tokenise len bytes of valid UTF-8 (need not be NUL-terminated) into at
 * most cap ids, stopping there; *n_out = ids written. Returns 0 or
 * LLMC_ENOMEM. A text that normalises to nothing gives *n_out = 0. */
int embed_unigram_encode(embed_unigram *u, const char *text, size_t len, int32_t *ids, size_t cap,
                         size_t *n_out);

#endif
