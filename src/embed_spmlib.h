/*
 * embed_spmlib.h — a thin C interface to Debian's libsentencepiece (C++), used
 * by the bert backend to tokenise XLM-RoBERTa models from their
 * sentencepiece.bpe.model file. Internal.
 *
 * Ids are SentencePiece's own (the .model's piece order, <unk> = 0 for the
 * XLM-R models); the caller maps them to the model's embedding rows (fairseq's
 * offset). An embed_spmlib is immutable after load; encoding allocates, so
 * it is used by one thread at a time like the embedder owning it.
 */
#ifndef EMBED_SPMLIB_H
#define EMBED_SPMLIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct embed_spmlib embed_spmlib;

/* Load a SentencePiece model file. NULL on failure with *err = LLMC_EIO
 * (cannot read), LLMC_ECORRUPT (not a model) or LLMC_ENOMEM. Any model
 * type the library knows is accepted (XLM-R's is Unigram). */
embed_spmlib *embed_spmlib_load(const char *path, int *err);
void embed_spmlib_free(embed_spmlib *s);

/* Number of pieces; the unknown piece's id; the longest piece in bytes. */
size_t embed_spmlib_size(const embed_spmlib *s);
int32_t embed_spmlib_unk(const embed_spmlib *s);
size_t embed_spmlib_max_piece(const embed_spmlib *s);

/* Tokenise len bytes of valid UTF-8 (need not be NUL-terminated). Writes
 * the first min(total, cap) ids to ids and the total to *n_out. Returns 0,
 * LLMC_EINVAL when the library refuses the text, or LLMC_ENOMEM. */
int embed_spmlib_encode(embed_spmlib *s, const char *text, size_t len, int32_t *ids, size_t cap,
                        size_t *n_out);

#ifdef __cplusplus
}
#endif

#endif
