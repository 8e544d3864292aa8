/*
 * embed_tok.h — SentencePiece unigram tokenizer, bit-compatible with the
 * tokenizer of @tensorflow-models/universal-sentence-encoder@1.3.3 (the one
 * the USE lite model was run with to make its reference vectors). Internal.
 *
 * An embed_tok is immutable after embed_tok_load except for its scratch
 * buffers, so one embed_tok is used by one thread at a time (like the
 * embedder that owns it).
 */
#ifndef EMBED_TOK_H
#define EMBED_TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct embed_tok embed_tok;

/* Longest text, in UTF-16 code units after normalisation, that is segmented;
 * the rest is cut off first (see embed_tok.c). */
#define EMBED_TOK_MAX_SYMBOLS 65536

/* Load a vocabulary file: a JSON array of [piece, log-probability] pairs,
 * ids = array positions; the first `reserved` ids (unknown, controls) are
 * never produced by segmentation except id 0 for unknown text. NULL on
 * failure with *err = LLMC_EIO (cannot read), LLMC_ECORRUPT (not such an
 * array) or LLMC_ENOMEM. */
embed_tok *embed_tok_load(const char *path, int reserved, int *err);
void embed_tok_free(embed_tok *t);

/* Number of pieces in the vocabulary (ids are below it). */
size_t embed_tok_size(const embed_tok *t);

/* Tokenise len bytes of valid UTF-8 (need not be NUL-terminated). Writes the
 * first min(*n_out, cap) ids to ids and the total number of ids to *n_out.
 * Returns 0, LLMC_EEMPTY when the text is empty or only white space (after
 * NFKC), LLMC_EUTF8 when ICU rejects the text, or LLMC_ENOMEM. */
int embed_tok_encode(embed_tok *t, const char *text, size_t len, int32_t *ids, size_t cap,
                     size_t *n_out);

#endif
