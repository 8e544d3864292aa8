/*
 * model.h — llama2.c-format transformer and its tokenizer, run on the CPU
 * with a paged KV cache (engine-internal; not part of libllmcache).
 *
 * Model file (llama2.c "version 0" export), all little-endian:
 *   header  7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *           vocab_size, seq_len. A negative vocab_size means the classifier
 *           has its own weights at the end; positive means it shares the
 *           token embedding table.
 *   weights float32, in this order (L = n_layers, D = dim, H = hidden_dim,
 *           KV = dim * n_kv_heads / n_heads, V = |vocab_size|, S = seq_len,
 *           hs = dim / n_heads):
 *           token embedding V*D, attention RMS-norm weights L*D,
 *           wq L*D*D, wk L*D*KV, wv L*D*KV, wo L*D*D, FFN RMS-norm L*D,
 *           w1 L*H*D, w2 L*D*H, w3 L*H*D, final RMS-norm D,
 *           two legacy RoPE tables S*hs/2 each (ignored: recomputed),
 *           then the classifier V*D when vocab_size < 0.
 *   A file shorter than that, or with non-positive or inconsistent
 *   dimensions, is refused with LLMC_ECORRUPT; nothing is read past its end.
 *
 * Tokenizer file (llama2.c tokenizer.bin): int32 max_token_length, then for
 *   each of the model's vocab_size tokens: float32 merge score, int32 byte
 *   length n, n bytes. Ids 0..2 are <unk>, BOS, EOS; ids 3..258 are the
 *   byte-fallback tokens <0x00>..<0xFF>.
 *
 * Paged KV: the K and V of position t in layer l live in block
 *   table[t / B] at slot t % B: k[(block * L + l) * B * KV + slot * KV ...].
 *   Which block ids a sequence uses is decided by the llmc_kvpool.
 *
 * Thread safety: a loaded model, tokenizer and KV store are read-only after
 * load (the KV store's slots are written only by the sequence that owns the
 * block); each thread needs its own model_scratch.
 */
#ifndef ENGINE_MODEL_H
#define ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int head_size, kv_dim, shared_classifier;
} model_config;

typedef struct model model;
typedef struct tokenizer tokenizer;

typedef struct {
    float *k, *v;
    int n_blocks, block_size;
    size_t block_floats; /* floats per block in k (and in v) */
} model_kv;

typedef struct {
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits;
} model_scratch;

#define TOK_UNK 0
#define TOK_BOS 1
#define TOK_EOS 2

/* Load a model file. NULL with *err = LLMC_EIO / LLMC_ECORRUPT / ENOMEM. */
model *model_load(const char *path, int *err);
void model_free(model *m);
const model_config *model_cfg(const model *m);

/* A KV store of n_blocks blocks of block_size positions for m. */
int model_kv_init(model_kv *kv, const model *m, int n_blocks, int block_size);
void model_kv_destroy(model_kv *kv);

int model_scratch_init(model_scratch *s, const model *m);
void model_scratch_destroy(model_scratch *s);

/* Run token at position pos: writes its K/V into the block table's slot for
 * pos and attends over positions 0..pos. When logits is non-zero, leaves
 * the next-token logits in s->logits. bt must cover pos. */
void model_forward(const model *m, model_scratch *s, const model_kv *kv, const int32_t *bt,
                   int token, int pos, int logits);

/* Load a tokenizer for a vocabulary of vocab_size tokens. */
tokenizer *tok_load(const char *path, int vocab_size, int *err);
void tok_free(tokenizer *t);

/* Encode len bytes of text (BOS first when bos) into out (at most max ids).
 * Returns the number of ids, or LLMC_ETOOBIG when more than max would be
 * needed, LLMC_ENOMEM. Follows SentencePiece BPE as llama2.c models expect:
 * a leading space is added to non-empty text, each UTF-8 character maps to
 * its token or to byte tokens, then the adjacent pair whose merge has the
 * best score is merged until no pair merges. */
long tok_encode(const tokenizer *t, const char *text, size_t len, int bos, int32_t *out,
                size_t max);

/* The bytes of token id when it follows prev: the leading space of the
 * first piece after BOS is dropped, byte tokens give their byte, BOS/EOS/UNK
 * give nothing. Points into t (valid until tok_free) or into buf[2]. */
const char *tok_piece(const tokenizer *t, int32_t prev, int32_t id, char buf[2], size_t *len);

int tok_vocab_size(const tokenizer *t);

/* The most bytes one token can cover: a text longer than n times this has
 * more than n tokens (used to refuse huge prompts before encoding them, as
 * encoding costs O(bytes^2) in the worst case). */
size_t tok_max_piece_len(const tokenizer *t);

#endif
