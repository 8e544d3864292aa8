/*
 * embed_bert.c — the "bert" embedding backend: a BERT-family sentence
 * encoder (all-MiniLM-L6-v2, bge-small, ... — HF `model_type: bert`; and
 * XLM-RoBERTa, `model_type: xlm-roberta`: paraphrase-multilingual-*,
 * multilingual-e5-*, bge-m3) read directly from the files a user downloads
 * from a model hub, run on the CPU.
 *
 * Files read from params.model_path (a sentence-transformers directory):
 *   modules.json           optional; finds the Pooling module's folder and
 *                          the Transformer module's folder ("" = the root);
 *                          a Dense module is refused (LLMC_ENOTSUP)
 *   1_Pooling/config.json  pooling_mode_{mean_tokens,cls_token,max_tokens,
 *                          mean_sqrt_len_tokens}: exactly one; default mean
 *   sentence_bert_config.json  optional max_seq_length
 *   config_sentence_transformers.json  optional prompts: "query", else the
 *                          default one, is put before every text (params.query_prefix
 *                          overrides; "" none) and is part of the model name
 *   config.json            model_type, hidden_size, num_hidden_layers,
 *                          num_attention_heads, intermediate_size, vocab_size,
 *                          max_position_embeddings, type_vocab_size,
 *                          layer_norm_eps, hidden_act (+ pad_token_id for XLM-R)
 *   BERT:
 *   tokenizer.json         preferred when present: model WordPiece,
 *                          normalizer BertNormalizer, pre-tokenizer BertPreTokenizer
 *   vocab.txt (+ tokenizer_config.json: do_lower_case, strip_accents,
 *                          tokenize_chinese_chars) otherwise
 *   XLM-R:
 *   sentencepiece.bpe.model  preferred: Debian's libsentencepiece (embed_spmlib)
 *   tokenizer.json         otherwise: Unigram + Precompiled + Metaspace, our own
 *                          reader (embed_unigram.c), held to the same ids
 *   model.safetensors      weights, HF BertModel names, with or without a
 *                          "bert." or "roberta." prefix; F32, or F16/BF16
 *                          converted at load
 *
 * The output is always L2-normalised (the public contract: unit vectors),
 * whether or not the model lists a Normalize module; cosine is unchanged.
 *
 * safetensors (the format is Hugging Face's, documented here as we check
 * it): u64 little-endian N; N bytes of JSON, an object mapping tensor name
 * to {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional
 * "__metadata__"); then the data section, offsets relative to its start.
 * We check, for EVERY entry, before using any: N fits in the file, the
 * header parses, dtype is known, shape is a list of non-negative integers
 * whose product times the element size equals end - begin without overflow,
 * and begin <= end <= data size. A failed check is LLMC_ECORRUPT; an
 * unknown dtype LLMC_ENOTSUP; a missing tensor or a shape that disagrees
 * with config.json LLMC_EMISMATCH; an unreadable file LLMC_EIO.
 *
 * Tokenizer (HF BertNormalizer + BertPreTokenizer + WordPiece, streamed):
 * a special token written in the text ("[MASK]", "[SEP]"; tokenizer.json's
 * special added_tokens, or BertTokenizer's five for vocab.txt) is matched on
 * the raw text first and becomes its id, as HF's added-token split does;
 * otherwise each code point is dropped when NUL, U+FFFD or a control
 * character (any C* category except \t \n \r); whitespace (\t \n \r, Zs, Zl, Zp) ends a
 * word; a CJK ideograph becomes a word of its own; with strip_accents the
 * code point is replaced by its NFD decomposition minus Mn marks; with
 * lower-casing it is lower-cased (ICU's simple mapping); punctuation (ASCII
 * punctuation or any P* category) becomes a word of its own. Each word is
 * split by greedy longest-match-first WordPiece ("##" continuation); a word
 * of more than 100 code points, or one with an unmatched rest, is [UNK].
 * Tokens are [CLS] w... [SEP], truncated to the window (min of
 * max_position_embeddings, max_seq_length, tokenizer limits); the scan stops
 * as soon as the window is full, so a huge text costs no more than a long one.
 * A text that yields no word piece gives LLMC_EEMPTY.
 * Known differences from HF's Rust tokenizer, all in rare cases: lower-casing
 * uses simple case mapping (no final-sigma rule, no one-to-many mappings),
 * and no canonical reordering of combining marks that survive NFD. A BERT
 * whose tokenizer is not WordPiece is refused with LLMC_ENOTSUP.
 *
 * XLM-R differs from BERT only at the edges: the tokenizer (SentencePiece
 * Unigram; ids in fairseq's layout, <s> 0 <pad> 1 </s> 2 <unk> 3, pieces
 * shifted by one; <s> pieces </s>), positions numbered from pad_token_id + 1
 * (so the window is max_position_embeddings - pad_token_id - 1), and one
 * token type. The encoder below is the same. Input past what the window can
 * hold is cut at a space before tokenising (words are segmented
 * independently), so a huge text costs what a long one does. RoBERTa
 * (byte-level BPE) is refused with LLMC_ENOTSUP.
 *
 * Weights: F32 tensors (4-byte aligned in the file, as safetensors writers
 * align them) are used in place from a read-only private mapping of the
 * file, so the per-thread embedders of one process, and several processes,
 * share one physical copy through the page cache; F16/BF16 tensors are
 * converted into owned arrays. The file must not be truncated while an
 * embedder has it open (as with any mmap-based loader).
 *
 * Forward pass: a batch is packed, not padded: the tokens of all texts are
 * rows of one T x H matrix, so every dense layer is one cblas_sgemm over T
 * rows; attention is computed per text and head (two sgemm calls on strided
 * views), so no mask is needed and padding cannot leak. This is exactly
 * HF's masked computation on a padded batch. Buffers grow to the largest
 * batch seen and are reused (no allocation per call in steady state).
 *
 * Layer norm, GELU (erf form), ReLU and softmax are embed_math.c's, shared
 * with the USE encoder; only the tanh GELU variant and the bias-first linear
 * layer are local.
 *
 * Thread safety: one thread at a time per backend (buffers are reused).
 * Weights are immutable after load. OpenBLAS keeps its own, process-wide
 * thread pool, so params.threads is not applied here (set OPENBLAS_NUM_THREADS
 * or call openblas_set_num_threads() once per process).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>
#include <xxhash.h>

#include "embed_impl.h"
#include "embed_math.h"
#include "embed_spmlib.h"
#include "embed_unigram.h"

#define BERT_MAX_WORD_CHARS 100
#define BERT_MAX_HEADER (100u << 20) /* safetensors JSON header limit */
#define BERT_MAX_DIM 65536

enum { BERT_POOL_MEAN, BERT_POOL_CLS, BERT_POOL_MAX, BERT_POOL_MEAN_SQRT };
enum { BERT_ACT_GELU, BERT_ACT_GELU_TANH, BERT_ACT_RELU };

typedef struct {
    float *w, *b; /* w: [out x in] (PyTorch layout), b: [out] */
} bert_lin;

typedef struct {
    float *g, *b;
} bert_ln;

typedef struct {
    bert_lin q, k, v, ao, inter, out;
    bert_ln aln, oln;
} bert_layer;

enum { BERT_F32, BERT_F16, BERT_BF16 };

typedef struct {
    const uint8_t *map; /* whole file */
    size_t size;
    const uint8_t *data; /* data section */
    size_t data_len;
    json_t *hdr;
} bert_st;

typedef struct {
    char *s; /* NUL-terminated */
    size_t len;
    int32_t id;
} bert_special;

typedef struct {
    embed_backend base; /* must be first */
    char *name;
    /* config */
    size_t H, nlayers, heads, inter, maxpos, ntypes, nvocab;
    float eps;
    int act, pooling;
    /* tokenizer */
    int lower, strip, chinese;
    char **tok;       /* id -> token bytes (NUL-terminated) */
    uint32_t *toklen; /* id -> byte length */
    int32_t *slots;   /* open-addressing table of ids, -1 = empty */
    size_t nslots;    /* power of two */
    int32_t unk, cls, sep;
    bert_special *specials; /* matched on the raw text before anything else */
    size_t nspecials;
    const UNormalizer2 *nfd;
    /* XLM-RoBERTa: SentencePiece ids from the library (spl, the .model file)
     * or our Unigram reader (uni, tokenizer.json); pos_off = padding_idx + 1 */
    int xlmr;
    embed_spmlib *spl;
    embed_unigram *uni;
    int32_t pad;
    size_t pos_off, cut; /* cut: input bytes looked at (see bert_spm_tokenize) */
    char *prefix;        /* put before every text (E5's "query: "), or NULL */
    size_t prefix_len;
    char *joined; /* prefix + text */
    size_t joined_cap;
    /* weights: F32 tensors point into the read-only mapping st (kept for
     * the backend's life); converted ones are allocations listed in allocs */
    bert_st st;
    float *word, *pos, *type;
    bert_ln eln;
    bert_layer *layers;
    float **allocs;
    size_t nallocs, allocs_cap;
    /* reused buffers */
    size_t cap_t, cap_l, cap_ids;
    float *x, *q, *k, *v, *ctx, *tmp, *mid, *scores;
    int32_t *ids;
    size_t *seq_off, *seq_len, cap_seq;
    char *keybuf; /* "##" + a word's bytes */
    uint32_t word_cp[BERT_MAX_WORD_CHARS + 1];
} bert_backend;

/* ---- small helpers ------------------------------------------------------ */

static char *bert_path(const char *dir, const char *sub, const char *name)
{
    size_t n = strlen(dir) + (sub ? strlen(sub) : 0) + strlen(name) + 3;
    char *s = malloc(n);
    if (!s)
        return NULL;
    if (sub && sub[0])
        snprintf(s, n, "%s/%s/%s", dir, sub, name);
    else
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/*
 * Load a JSON file. Missing file: *out = NULL and 0 when optional, LLMC_EIO
 * when required. Unparsable: LLMC_ECORRUPT. *out owned by the caller.
 */
static int bert_load_json(const char *dir, const char *sub, const char *name, int required,
                          size_t flags, json_t **out)
{
    *out = NULL;
    char *path = bert_path(dir, sub, name);
    if (!path)
        return LLMC_ENOMEM;
    int rc = 0;
    if (access(path, F_OK) != 0) {
        rc = required ? LLMC_EIO : 0;
    } else {
        json_error_t je;
        *out = json_load_file(path, JSON_DECODE_ANY | flags, &je);
        if (!*out)
            rc = access(path, R_OK) != 0 ? LLMC_EIO : LLMC_ECORRUPT;
    }
    free(path);
    return rc;
}

/* A positive integer field, or def when absent; -1 when present but bad. */
static long long bert_json_int(const json_t *o, const char *key, long long def)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return def;
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return -1;
    return json_integer_value(v);
}

/* A boolean field: 1/0, def when absent or null. */
static int bert_json_bool(const json_t *o, const char *key, int def)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return def;
    return json_is_true(v);
}

static float *bert_alloc(bert_backend *b, size_t n)
{
    if (b->nallocs == b->allocs_cap) {
        size_t c = b->allocs_cap ? b->allocs_cap * 2 : 64;
        float **na = realloc(b->allocs, c * sizeof *na);
        if (!na)
            return NULL;
        b->allocs = na;
        b->allocs_cap = c;
    }
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        b->allocs[b->nallocs++] = p;
    return p;
}

/* ---- safetensors --------------------------------------------------------- */

static void bert_st_close(bert_st *st)
{
    if (st->map)
        munmap((void *)st->map, st->size);
    json_decref(st->hdr);
    memset(st, 0, sizeof *st);
}

static int bert_dtype(const char *s, size_t *esize)
{
    if (strcmp(s, "F32") == 0) {
        *esize = 4;
        return BERT_F32;
    }
    if (strcmp(s, "F16") == 0) {
        *esize = 2;
        return BERT_F16;
    }
    if (strcmp(s, "BF16") == 0) {
        *esize = 2;
        return BERT_BF16;
    }
    return -1;
}

/* Element count of a shape array; 0 with *ok = 0 when malformed. */
static size_t bert_numel(const json_t *shape, int *ok)
{
    size_t n = 1;
    *ok = 0;
    if (!json_is_array(shape) || json_array_size(shape) > 8)
        return 0;
    for (size_t i = 0; i < json_array_size(shape); i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return 0;
        uint64_t v = (uint64_t)json_integer_value(d);
        if (v && n > SIZE_MAX / v)
            return 0;
        n *= (size_t)v;
    }
    *ok = 1;
    return n;
}

/* Map and validate a safetensors file (see the file comment). */
static int bert_st_open(const char *path, bert_st *st)
{
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return LLMC_EIO;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return LLMC_EIO;
    }
    if (sb.st_size < 8) {
        close(fd);
        return LLMC_ECORRUPT;
    }
    st->size = (size_t)sb.st_size;
    void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        st->size = 0;
        return LLMC_EIO;
    }
    st->map = m;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | st->map[i];
    if (n < 2 || n > BERT_MAX_HEADER || n > st->size - 8)
        goto corrupt;
    json_error_t je;
    st->hdr = json_loadb((const char *)st->map + 8, (size_t)n, 0, &je);
    if (!json_is_object(st->hdr))
        goto corrupt;
    st->data = st->map + 8 + n;
    st->data_len = st->size - 8 - (size_t)n;
    const char *key;
    json_t *val;
    json_object_foreach(st->hdr, key, val)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        const json_t *dt = json_object_get(val, "dtype");
        const json_t *off = json_object_get(val, "data_offsets");
        if (!json_is_string(dt) || !json_is_array(off) || json_array_size(off) != 2)
            goto corrupt;
        const json_t *jb = json_array_get(off, 0), *jend = json_array_get(off, 1);
        if (!json_is_integer(jb) || !json_is_integer(jend))
            goto corrupt;
        json_int_t beg = json_integer_value(jb), end = json_integer_value(jend);
        if (beg < 0 || end < beg || (uint64_t)end > st->data_len)
            goto corrupt;
        int ok;
        size_t numel = bert_numel(json_object_get(val, "shape"), &ok);
        if (!ok)
            goto corrupt;
        size_t es;
        if (bert_dtype(json_string_value(dt), &es) < 0)
            continue; /* checked when (if) the tensor is used */
        if (numel > SIZE_MAX / es || numel * es != (uint64_t)(end - beg))
            goto corrupt;
    }
    return 0;
corrupt:
    bert_st_close(st);
    return LLMC_ECORRUPT;
}

static float bert_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/*
 * Copy tensor `name` (tried as is and with a "bert." prefix) into a new
 * float array owned by b, checking it has the shape {d0} (d1 == 0) or
 * {d0, d1}. LLMC_EMISMATCH when missing or of another shape.
 */
static int bert_tensor(bert_backend *b, bert_st *st, const char *name, size_t d0, size_t d1,
                       float **out)
{
    const json_t *t = json_object_get(st->hdr, name);
    if (!t) {
        char full[256];
        snprintf(full, sizeof full, "bert.%s", name);
        t = json_object_get(st->hdr, full);
        if (!t) {
            snprintf(full, sizeof full, "roberta.%s", name);
            t = json_object_get(st->hdr, full);
        }
    }
    if (!t)
        return LLMC_EMISMATCH;
    size_t es;
    int dt = bert_dtype(json_string_value(json_object_get(t, "dtype")), &es);
    if (dt < 0)
        return LLMC_ENOTSUP;
    const json_t *shape = json_object_get(t, "shape");
    size_t rank = d1 ? 2 : 1;
    if (json_array_size(shape) != rank ||
        (size_t)json_integer_value(json_array_get(shape, 0)) != d0 ||
        (d1 && (size_t)json_integer_value(json_array_get(shape, 1)) != d1))
        return LLMC_EMISMATCH;
    size_t n = d0 * (d1 ? d1 : 1);
    const uint8_t *src =
        st->data + json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
    if (dt == BERT_F32 && ((uintptr_t)src & 3) == 0) {
        const float *f = (const float *)src; /* little-endian host (x86-64, aarch64) */
        for (size_t i = 0; i < n; i++)
            if (!isfinite(f[i]))
                return LLMC_ECORRUPT;
        *out = (float *)f; /* never written: the mapping is PROT_READ */
        return 0;
    }
    float *dst = bert_alloc(b, n);
    if (!dst)
        return LLMC_ENOMEM;
    if (dt == BERT_F32) {
        memcpy(dst, src, n * 4); /* little-endian host (x86-64, aarch64) */
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            if (dt == BERT_F16) {
                dst[i] = bert_half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return LLMC_ECORRUPT;
    *out = dst;
    return 0;
}

static int bert_load_weights(bert_backend *b, bert_st *st)
{
    size_t H = b->H, NI = b->inter;
    int rc;
#define T2(name, a, c, dst)                                                                        \
    do {                                                                                           \
        if ((rc = bert_tensor(b, st, name, a, c, dst)))                                            \
            return rc;                                                                             \
    } while (0)
    T2("embeddings.word_embeddings.weight", b->nvocab, H, &b->word);
    T2("embeddings.position_embeddings.weight", b->maxpos, H, &b->pos);
    T2("embeddings.token_type_embeddings.weight", b->ntypes, H, &b->type);
    T2("embeddings.LayerNorm.weight", H, 0, &b->eln.g);
    T2("embeddings.LayerNorm.bias", H, 0, &b->eln.b);
    b->layers = calloc(b->nlayers, sizeof *b->layers);
    if (!b->layers)
        return LLMC_ENOMEM;
    for (size_t l = 0; l < b->nlayers; l++) {
        bert_layer *L = &b->layers[l];
        static const struct {
            const char *name;
            int dout_inter, din_inter;
            size_t off;
        } lins[] = {
            {"attention.self.query", 0, 0, offsetof(bert_layer, q)},
            {"attention.self.key", 0, 0, offsetof(bert_layer, k)},
            {"attention.self.value", 0, 0, offsetof(bert_layer, v)},
            {"attention.output.dense", 0, 0, offsetof(bert_layer, ao)},
            {"intermediate.dense", 1, 0, offsetof(bert_layer, inter)},
            {"output.dense", 0, 1, offsetof(bert_layer, out)},
        };
        char nm[160];
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) {
            bert_lin *lin = (bert_lin *)((char *)L + lins[i].off);
            size_t dout = lins[i].dout_inter ? NI : H, din = lins[i].din_inter ? NI : H;
            snprintf(nm, sizeof nm, "encoder.layer.%zu.%s.weight", l, lins[i].name);
            T2(nm, dout, din, &lin->w);
            snprintf(nm, sizeof nm, "encoder.layer.%zu.%s.bias", l, lins[i].name);
            T2(nm, dout, 0, &lin->b);
        }
        snprintf(nm, sizeof nm, "encoder.layer.%zu.attention.output.LayerNorm.weight", l);
        T2(nm, H, 0, &L->aln.g);
        snprintf(nm, sizeof nm, "encoder.layer.%zu.attention.output.LayerNorm.bias", l);
        T2(nm, H, 0, &L->aln.b);
        snprintf(nm, sizeof nm, "encoder.layer.%zu.output.LayerNorm.weight", l);
        T2(nm, H, 0, &L->oln.g);
        snprintf(nm, sizeof nm, "encoder.layer.%zu.output.LayerNorm.bias", l);
        T2(nm, H, 0, &L->oln.b);
    }
#undef T2
    return 0;
}

/* ---- vocabulary ----------------------------------------------------------- */

static uint64_t bert_hash(const char *s, size_t n)
{
    return XXH3_64bits(s, n);
}

static int32_t bert_vocab_find(const bert_backend *b, const char *s, size_t n)
{
    size_t mask = b->nslots - 1;
    for (size_t i = (size_t)bert_hash(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = b->slots[i];
        if (id < 0)
            return -1;
        if (b->toklen[id] == n && memcmp(b->tok[id], s, n) == 0)
            return id;
    }
}

/* Set token `id` (0 <= id < nvocab) to s[0..n). When the same string
 * appears twice, lookups find the later id, as HF's vocab.txt loader does. */
static int bert_vocab_set(bert_backend *b, int32_t id, const char *s, size_t n)
{
    if (b->tok[id])
        return LLMC_ECORRUPT; /* the same id twice */
    b->tok[id] = malloc(n + 1);
    if (!b->tok[id])
        return LLMC_ENOMEM;
    memcpy(b->tok[id], s, n);
    b->tok[id][n] = '\0';
    b->toklen[id] = (uint32_t)n;
    size_t mask = b->nslots - 1;
    for (size_t i = (size_t)bert_hash(s, n) & mask;; i = (i + 1) & mask) {
        int32_t o = b->slots[i];
        if (o < 0) {
            b->slots[i] = id;
            return 0;
        }
        if (b->toklen[o] == n && memcmp(b->tok[o], s, n) == 0) {
            b->slots[i] = id;
            return 0;
        }
    }
}

static int bert_vocab_init(bert_backend *b, size_t n)
{
    if (n == 0 || n > (1u << 24))
        return LLMC_ECORRUPT;
    b->nvocab = n;
    b->tok = calloc(n, sizeof *b->tok);
    b->toklen = calloc(n, sizeof *b->toklen);
    b->nslots = 16;
    while (b->nslots < 2 * n)
        b->nslots *= 2;
    b->slots = malloc(b->nslots * sizeof *b->slots);
    if (!b->tok || !b->toklen || !b->slots)
        return LLMC_ENOMEM;
    memset(b->slots, 0xff, b->nslots * sizeof *b->slots);
    return 0;
}

static int bert_add_special(bert_backend *b, const char *s, int32_t id)
{
    size_t n = strlen(s);
    if (n == 0 || id < 0 || (size_t)id >= b->nvocab)
        return LLMC_ECORRUPT;
    bert_special *ns = realloc(b->specials, (b->nspecials + 1) * sizeof *ns);
    if (!ns)
        return LLMC_ENOMEM;
    b->specials = ns;
    ns[b->nspecials].s = strdup(s);
    if (!ns[b->nspecials].s)
        return LLMC_ENOMEM;
    ns[b->nspecials].len = n;
    ns[b->nspecials].id = id;
    b->nspecials++;
    return 0;
}

/* vocab.txt: one token a line, the line number is the id. */
static int bert_load_vocab_txt(bert_backend *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return LLMC_EIO;
    char *buf = NULL;
    size_t cap = 0, nlines = 0;
    ssize_t r;
    while ((r = getline(&buf, &cap, f)) >= 0)
        nlines++;
    int rc = bert_vocab_init(b, nlines);
    rewind(f);
    for (size_t id = 0; rc == 0 && id < nlines && (r = getline(&buf, &cap, f)) >= 0; id++) {
        size_t n = (size_t)r;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        rc = bert_vocab_set(b, (int32_t)id, buf, n);
    }
    free(buf);
    fclose(f);
    return rc;
}

/* tokenizer.json: {"model": {"type": "WordPiece", "vocab": {tok: id}}, ...}. */
static int bert_load_tokenizer_json(bert_backend *b, json_t *tj)
{
    const json_t *model = json_object_get(tj, "model");
    const json_t *type = json_object_get(model, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "WordPiece") != 0)
        return LLMC_ENOTSUP;
    const json_t *pfx = json_object_get(model, "continuing_subword_prefix");
    if (pfx && !json_is_null(pfx) &&
        (!json_is_string(pfx) || strcmp(json_string_value(pfx), "##") != 0))
        return LLMC_ENOTSUP;
    const json_t *mic = json_object_get(model, "max_input_chars_per_word");
    if (mic && json_is_integer(mic) && json_integer_value(mic) != BERT_MAX_WORD_CHARS)
        return LLMC_ENOTSUP;
    const json_t *norm = json_object_get(tj, "normalizer");
    if (!norm || json_is_null(norm)) {
        b->lower = b->strip = b->chinese = 0;
    } else {
        const json_t *nt = json_object_get(norm, "type");
        if (!json_is_string(nt) || strcmp(json_string_value(nt), "BertNormalizer") != 0)
            return LLMC_ENOTSUP;
        if (!bert_json_bool(norm, "clean_text", 1))
            return LLMC_ENOTSUP;
        b->lower = bert_json_bool(norm, "lowercase", 1);
        b->strip = bert_json_bool(norm, "strip_accents", b->lower);
        b->chinese = bert_json_bool(norm, "handle_chinese_chars", 1);
    }
    const json_t *pre = json_object_get(tj, "pre_tokenizer");
    const json_t *pt = json_object_get(pre, "type");
    if (!json_is_string(pt) || strcmp(json_string_value(pt), "BertPreTokenizer") != 0)
        return LLMC_ENOTSUP;
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return LLMC_ECORRUPT;
    int rc = bert_vocab_init(b, json_object_size(vocab));
    if (rc)
        return rc;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)vocab, k, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (size_t)json_integer_value(v) >= b->nvocab)
            return LLMC_ECORRUPT;
        if ((rc = bert_vocab_set(b, (int32_t)json_integer_value(v), k, strlen(k))))
            return rc;
    }
    /* Special added tokens ([CLS], [MASK], ...) written in the text are
     * matched on the raw text first, as HF's added-vocabulary split does. */
    const json_t *added = json_object_get(tj, "added_tokens");
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *at = json_array_get(added, i);
        const json_t *content = json_object_get(at, "content");
        const json_t *aid = json_object_get(at, "id");
        if (!json_is_true(json_object_get(at, "special")))
            continue;
        if (!json_is_string(content) || !json_is_integer(aid))
            return LLMC_ECORRUPT;
        if ((rc =
                 bert_add_special(b, json_string_value(content), (int32_t)json_integer_value(aid))))
            return rc;
    }
    const json_t *trunc = json_object_get(tj, "truncation");
    long long ml = bert_json_int(trunc, "max_length", 0);
    if (ml > 0 && (size_t)ml < b->base.max_tokens)
        b->base.max_tokens = (size_t)ml;
    return 0;
}

/* ---- tokenizer ------------------------------------------------------------ */

static int bert_is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int bert_is_ws(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           (U_GET_GC_MASK((UChar32)c) & (U_GC_ZS_MASK | U_GC_ZL_MASK | U_GC_ZP_MASK));
}

static int bert_is_control(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    return (U_GET_GC_MASK((UChar32)c) & U_GC_C_MASK) != 0;
}

static int bert_is_punct(uint32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    return (U_GET_GC_MASK((UChar32)c) & U_GC_P_MASK) != 0;
}

typedef struct {
    bert_backend *b;
    int32_t *ids;  /* token ids go to ids[1 + n] */
    size_t n, max; /* word pieces so far, and at most */
    size_t wn;     /* code points in the current word (counts past the cap) */
} bert_tok_state;

static size_t bert_utf8_put(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

static void bert_emit(bert_tok_state *ts, int32_t id)
{
    if (ts->n < ts->max)
        ts->ids[1 + ts->n++] = id;
}

/* WordPiece the current word (greedy longest match first). */
static void bert_flush_word(bert_tok_state *ts)
{
    bert_backend *b = ts->b;
    size_t wn = ts->wn;
    ts->wn = 0;
    if (wn == 0 || ts->n >= ts->max)
        return;
    if (wn > BERT_MAX_WORD_CHARS) {
        bert_emit(ts, b->unk);
        return;
    }
    /* w = UTF-8 of the word, off[i] = byte offset of char i; a continuation
     * is looked up as "##" + w[off[start]..off[end]) built in keybuf. */
    char w[4 * (BERT_MAX_WORD_CHARS + 1)];
    char *kb = b->keybuf;
    size_t off[BERT_MAX_WORD_CHARS + 1];
    size_t pos = 0;
    for (size_t i = 0; i < wn; i++) {
        off[i] = pos;
        pos += bert_utf8_put(w + pos, b->word_cp[i]);
    }
    off[wn] = pos;
    kb[0] = kb[1] = '#';
    int32_t pieces[BERT_MAX_WORD_CHARS];
    size_t np = 0;
    for (size_t start = 0; start < wn;) {
        int32_t found = -1;
        size_t end = wn;
        for (; end > start; end--) {
            if (start == 0) {
                found = bert_vocab_find(b, w, off[end]);
            } else {
                memcpy(kb + 2, w + off[start], off[end] - off[start]);
                found = bert_vocab_find(b, kb, off[end] - off[start] + 2);
            }
            if (found >= 0)
                break;
        }
        if (found < 0) {
            bert_emit(ts, b->unk);
            return;
        }
        pieces[np++] = found;
        start = end;
    }
    for (size_t i = 0; i < np; i++)
        bert_emit(ts, pieces[i]);
}

static void bert_word_add(bert_tok_state *ts, uint32_t c)
{
    if (ts->wn < BERT_MAX_WORD_CHARS + 1)
        ts->b->word_cp[ts->wn] = c;
    if (ts->wn <= BERT_MAX_WORD_CHARS)
        ts->wn++; /* stop counting past the cap: the word is [UNK] anyway */
}

/* After normalisation: punctuation splits, everything else joins the word. */
static void bert_pre_char(bert_tok_state *ts, uint32_t c)
{
    if (bert_is_punct(c)) {
        bert_flush_word(ts);
        bert_word_add(ts, c);
        bert_flush_word(ts);
    } else {
        bert_word_add(ts, c);
    }
}

/* Accent stripping and lower-casing of one (non-space, non-control) char. */
static void bert_norm_char(bert_tok_state *ts, uint32_t c)
{
    bert_backend *b = ts->b;
    UChar dec[32];
    int32_t dn = -1;
    if (b->strip) {
        UErrorCode ue = U_ZERO_ERROR;
        dn = unorm2_getDecomposition(b->nfd, (UChar32)c, dec, 32, &ue);
        if (U_FAILURE(ue))
            dn = -1;
    }
    if (dn < 0) {
        if (b->strip && (U_GET_GC_MASK((UChar32)c) & U_GC_MN_MASK))
            return;
        bert_pre_char(ts, b->lower ? (uint32_t)u_tolower((UChar32)c) : c);
        return;
    }
    for (int32_t i = 0; i < dn;) {
        UChar32 d;
        U16_NEXT(dec, i, dn, d);
        if (U_GET_GC_MASK(d) & U_GC_MN_MASK)
            continue;
        bert_pre_char(ts, b->lower ? (uint32_t)u_tolower(d) : (uint32_t)d);
    }
}

static uint32_t bert_utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    uint32_t c = s[*i];
    size_t k = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    if (k)
        c &= 0x3f >> k;
    if (*i + k >= n) { /* cannot happen on validated input; stay in bounds */
        *i = n;
        return 0xFFFD;
    }
    for (size_t j = 1; j <= k; j++)
        c = (c << 6) | (s[*i + j] & 0x3f);
    *i += k + 1;
    return c;
}

/*
 * Tokenise text into ids[0..) as [CLS] pieces [SEP], at most cap ids and at
 * most the model's window. Returns the number of ids (>= 2), LLMC_EEMPTY
 * when there is no word piece, or LLMC_EINVAL. Internal, exported for the
 * unit test; b must come from embed_bert_new().
 */
/*
 * XLM-R: <s> pieces </s>. Text past b->cut bytes cannot reach the window, so
 * it is cut at the next space (words are segmented independently) or, with
 * none near, at a character boundary: a 1 MB text costs what a long one does.
 */
static int bert_spm_tokenize(bert_backend *b, const char *text, size_t len, int32_t *ids,
                             size_t window)
{
    if (len > b->cut) {
        size_t lim = len < 2 * b->cut ? len : 2 * b->cut, i = b->cut;
        while (i < lim && text[i] != ' ')
            i++;
        while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80)
            i++;
        len = i;
    }
    size_t n = 0;
    int rc;
    if (b->spl) {
        rc = embed_spmlib_encode(b->spl, text, len, ids + 1, window - 2, &n);
        n = n < window - 2 ? n : window - 2;
        for (size_t i = 1; i <= n; i++)
            ids[i] = ids[i] == 0 ? b->unk : ids[i] + 1; /* fairseq's offset */
    } else {
        rc = embed_unigram_encode(b->uni, text, len, ids + 1, window - 2, &n);
    }
    if (rc)
        return rc;
    if (n == 0)
        return LLMC_EEMPTY;
    ids[0] = b->cls;
    ids[n + 1] = b->sep;
    return (int)(n + 2);
}

/* The configured prefix joined to the text in b->joined. */
static int bert_join_prefix(bert_backend *b, const char **text, size_t *len)
{
    size_t n = b->prefix_len + *len;
    if (n > b->joined_cap) {
        char *nj = realloc(b->joined, n);
        if (!nj)
            return LLMC_ENOMEM;
        b->joined = nj;
        b->joined_cap = n;
    }
    memcpy(b->joined, b->prefix, b->prefix_len);
    if (*len)
        memcpy(b->joined + b->prefix_len, *text, *len);
    *text = b->joined;
    *len = n;
    return 0;
}

int embed_bert_tokenize(embed_backend *be, const char *text, size_t len, int32_t *ids, size_t cap)
{
    bert_backend *b = (bert_backend *)be;
    size_t window = b->base.max_tokens < cap ? b->base.max_tokens : cap;
    if (window < 3)
        return LLMC_EINVAL;
    if (b->prefix) {
        int rc = bert_join_prefix(b, &text, &len);
        if (rc)
            return rc;
    }
    if (b->xlmr)
        return bert_spm_tokenize(b, text, len, ids, window);
    bert_tok_state ts = {b, ids, 0, window - 2, 0};
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len && ts.n < ts.max;) {
        const bert_special *hit = NULL;
        for (size_t k = 0; k < b->nspecials; k++) {
            const bert_special *sp = &b->specials[k];
            if (sp->len <= len - i && memcmp(s + i, sp->s, sp->len) == 0 &&
                (!hit || sp->len > hit->len))
                hit = sp; /* leftmost, then longest */
        }
        if (hit) {
            bert_flush_word(&ts);
            bert_emit(&ts, hit->id);
            i += hit->len;
            continue;
        }
        uint32_t c = bert_utf8_next(s, len, &i);
        if (c == 0 || c == 0xFFFD || bert_is_control(c))
            continue;
        if (bert_is_ws(c)) {
            bert_flush_word(&ts);
        } else if (b->chinese && bert_is_cjk(c)) {
            bert_flush_word(&ts);
            bert_norm_char(&ts, c);
            bert_flush_word(&ts);
        } else {
            bert_norm_char(&ts, c);
        }
    }
    bert_flush_word(&ts);
    if (ts.n == 0)
        return LLMC_EEMPTY;
    ids[0] = b->cls;
    ids[ts.n + 1] = b->sep;
    return (int)(ts.n + 2);
}

/* ---- dense kernels (the shared ones are in embed_math.c) ------------------- */

/* y[m x out] = x[m x in] * W^T + bias, W stored [out x in]. */
static void bert_linear(const float *x, size_t m, size_t in, const bert_lin *l, size_t out,
                        float *y)
{
    for (size_t i = 0; i < m; i++)
        memcpy(y + i * out, l->b, out * sizeof *y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)out, (int)in, 1.0f, x,
                (int)in, l->w, (int)in, 1.0f, y, (int)out);
}

/* x = LayerNorm(x + r) row by row (r may be NULL). */
static void bert_layer_norm(float *x, const float *r, size_t m, size_t n, const bert_ln *ln,
                            float eps)
{
    if (r)
        for (size_t i = 0; i < m * n; i++)
            x[i] += r[i];
    embed_math_layer_norm(x, x, n, m, n, ln->g, ln->b, eps);
}

static void bert_activate(float *x, size_t n, int act)
{
    if (act == BERT_ACT_GELU) {
        embed_math_gelu(x, n);
    } else if (act == BERT_ACT_GELU_TANH) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        }
    } else {
        embed_math_relu(x, n);
    }
}

/* ---- forward -------------------------------------------------------------- */

/* Room for the token ids of nseq texts of at most w tokens each. */
static int bert_reserve_ids(bert_backend *b, size_t t, size_t nseq)
{
    if (t > b->cap_ids) {
        int32_t *ni = realloc(b->ids, t * sizeof *ni);
        if (!ni)
            return LLMC_ENOMEM;
        b->ids = ni;
        b->cap_ids = t;
    }
    if (nseq > b->cap_seq) {
        size_t *o = realloc(b->seq_off, nseq * sizeof *o);
        if (!o)
            return LLMC_ENOMEM;
        b->seq_off = o;
        size_t *l = realloc(b->seq_len, nseq * sizeof *l);
        if (!l)
            return LLMC_ENOMEM;
        b->seq_len = l;
        b->cap_seq = nseq;
    }
    return 0;
}

/* Room for the activations of t tokens, the longest text having lmax. */
static int bert_reserve(bert_backend *b, size_t t, size_t lmax)
{
    if (t > b->cap_t) {
        size_t c = t < 64 ? 64 : t;
        float **bufs[] = {&b->x, &b->q, &b->k, &b->v, &b->ctx, &b->tmp};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
            float *nb = realloc(*bufs[i], c * b->H * sizeof(float));
            if (!nb)
                return LLMC_ENOMEM;
            *bufs[i] = nb;
        }
        float *nm = realloc(b->mid, c * b->inter * sizeof(float));
        if (!nm)
            return LLMC_ENOMEM;
        b->mid = nm;
        b->cap_t = c;
    }
    if (lmax > b->cap_l) {
        float *ns = realloc(b->scores, lmax * lmax * sizeof(float));
        if (!ns)
            return LLMC_ENOMEM;
        b->scores = ns;
        b->cap_l = lmax;
    }
    return 0;
}

static void bert_attention(bert_backend *b, size_t off, size_t L)
{
    size_t H = b->H, dh = H / b->heads;
    float scale = 1.0f / sqrtf((float)dh);
    for (size_t h = 0; h < b->heads; h++) {
        const float *qh = b->q + off * H + h * dh, *kh = b->k + off * H + h * dh;
        const float *vh = b->v + off * H + h * dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)L, (int)L, (int)dh, scale, qh,
                    (int)H, kh, (int)H, 0.0f, b->scores, (int)L);
        embed_math_softmax_rows(b->scores, L, L, L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L, (int)dh, (int)L, 1.0f,
                    b->scores, (int)L, vh, (int)H, 0.0f, b->ctx + off * H + h * dh, (int)H);
    }
}

static int bert_embed_batch(embed_backend *be, const char *const *texts, const size_t *lens,
                            size_t n, float *out)
{
    bert_backend *b = (bert_backend *)be;
    size_t W = b->base.max_tokens, H = b->H, NI = b->inter;
    int rc = bert_reserve_ids(b, n * W, n);
    if (rc)
        return rc;
    size_t T = 0, lmax = 0;
    for (size_t s = 0; s < n; s++) {
        int k = embed_bert_tokenize(be, texts[s], lens[s], b->ids + T, W);
        if (k < 0)
            return k;
        b->seq_off[s] = T;
        b->seq_len[s] = (size_t)k;
        T += (size_t)k;
        lmax = (size_t)k > lmax ? (size_t)k : lmax;
    }
    if ((rc = bert_reserve(b, T, lmax)))
        return rc;
    /* embeddings */
    for (size_t s = 0; s < n; s++) {
        for (size_t i = 0; i < b->seq_len[s]; i++) {
            size_t t = b->seq_off[s] + i;
            const float *we = b->word + (size_t)b->ids[t] * H, *pe = b->pos + (i + b->pos_off) * H;
            float *row = b->x + t * H;
            for (size_t j = 0; j < H; j++)
                row[j] = we[j] + pe[j] + b->type[j];
        }
    }
    bert_layer_norm(b->x, NULL, T, H, &b->eln, b->eps);
    for (size_t l = 0; l < b->nlayers; l++) {
        const bert_layer *L = &b->layers[l];
        bert_linear(b->x, T, H, &L->q, H, b->q);
        bert_linear(b->x, T, H, &L->k, H, b->k);
        bert_linear(b->x, T, H, &L->v, H, b->v);
        for (size_t s = 0; s < n; s++)
            bert_attention(b, b->seq_off[s], b->seq_len[s]);
        bert_linear(b->ctx, T, H, &L->ao, H, b->tmp);
        bert_layer_norm(b->x, b->tmp, T, H, &L->aln, b->eps);
        bert_linear(b->x, T, H, &L->inter, NI, b->mid);
        bert_activate(b->mid, T * NI, b->act);
        bert_linear(b->mid, T, NI, &L->out, H, b->tmp);
        bert_layer_norm(b->x, b->tmp, T, H, &L->oln, b->eps);
    }
    /* pooling and normalisation */
    for (size_t s = 0; s < n; s++) {
        float *o = out + s * H;
        const float *x0 = b->x + b->seq_off[s] * H;
        size_t L = b->seq_len[s];
        if (b->pooling == BERT_POOL_CLS) {
            memcpy(o, x0, H * sizeof *o);
        } else if (b->pooling == BERT_POOL_MAX) {
            memcpy(o, x0, H * sizeof *o);
            for (size_t i = 1; i < L; i++)
                for (size_t j = 0; j < H; j++)
                    o[j] = x0[i * H + j] > o[j] ? x0[i * H + j] : o[j];
        } else {
            double div = b->pooling == BERT_POOL_MEAN ? (double)L : sqrt((double)L);
            for (size_t j = 0; j < H; j++) {
                double acc = 0;
                for (size_t i = 0; i < L; i++)
                    acc += x0[i * H + j];
                o[j] = (float)(acc / div);
            }
        }
        double ss = 0;
        for (size_t j = 0; j < H; j++)
            ss += (double)o[j] * o[j];
        float inv = (float)(1.0 / sqrt(ss > 1e-24 ? ss : 1e-24));
        for (size_t j = 0; j < H; j++)
            o[j] *= inv;
    }
    return 0;
}

/* ---- construction ---------------------------------------------------------- */

static void bert_free(embed_backend *be)
{
    bert_backend *b = (bert_backend *)be;
    if (!b)
        return;
    for (size_t i = 0; i < b->nallocs; i++)
        free(b->allocs[i]);
    free(b->allocs);
    free(b->layers);
    bert_st_close(&b->st);
    if (b->tok)
        for (size_t i = 0; i < b->nvocab; i++)
            free(b->tok[i]);
    free(b->tok);
    free(b->toklen);
    for (size_t i = 0; i < b->nspecials; i++)
        free(b->specials[i].s);
    free(b->specials);
    free(b->slots);
    free(b->x);
    free(b->q);
    free(b->k);
    free(b->v);
    free(b->ctx);
    free(b->tmp);
    free(b->mid);
    free(b->scores);
    free(b->ids);
    free(b->seq_off);
    free(b->seq_len);
    free(b->keybuf);
    free(b->name);
    embed_spmlib_free(b->spl);
    embed_unigram_free(b->uni);
    free(b->prefix);
    free(b->joined);
    free(b);
}

static int bert_config(bert_backend *b, const json_t *cfg)
{
    const json_t *mt = json_object_get(cfg, "model_type");
    if (mt && json_is_string(mt) && strcmp(json_string_value(mt), "xlm-roberta") == 0)
        b->xlmr = 1;
    else if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bert") != 0))
        return LLMC_ENOTSUP;
    const json_t *pe = json_object_get(cfg, "position_embedding_type");
    if (pe && !json_is_null(pe) &&
        (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute") != 0))
        return LLMC_ENOTSUP;
    long long H = bert_json_int(cfg, "hidden_size", -1);
    long long nl = bert_json_int(cfg, "num_hidden_layers", -1);
    long long nh = bert_json_int(cfg, "num_attention_heads", -1);
    long long NI = bert_json_int(cfg, "intermediate_size", -1);
    long long V = bert_json_int(cfg, "vocab_size", -1);
    long long P = bert_json_int(cfg, "max_position_embeddings", -1);
    long long TV = bert_json_int(cfg, "type_vocab_size", b->xlmr ? 1 : 2);
    if (H <= 0 || nl <= 0 || nh <= 0 || NI <= 0 || V <= 0 || P <= 0 || TV <= 0 ||
        H > BERT_MAX_DIM || NI > 16 * BERT_MAX_DIM || nl > 256 || H % nh != 0 || V > (1 << 24) ||
        P > (1 << 20) || TV > 1024)
        return LLMC_ECORRUPT;
    b->H = (size_t)H;
    b->nlayers = (size_t)nl;
    b->heads = (size_t)nh;
    b->inter = (size_t)NI;
    b->maxpos = (size_t)P;
    b->ntypes = (size_t)TV;
    b->base.max_tokens = b->maxpos;
    if (b->xlmr) {
        /* RoBERTa numbers positions from padding_idx + 1 (fairseq's
         * make_positions), so the window is that much shorter. */
        const json_t *pad = json_object_get(cfg, "pad_token_id");
        long long pi = json_is_integer(pad) ? json_integer_value(pad) : 1;
        if (pi < 0 || pi >= V || (size_t)pi + 1 + 3 > b->maxpos)
            return LLMC_ECORRUPT;
        b->pad = (int32_t)pi;
        b->pos_off = (size_t)pi + 1;
        b->base.max_tokens = b->maxpos - b->pos_off;
    }
    const json_t *eps = json_object_get(cfg, "layer_norm_eps");
    b->eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-12f;
    const json_t *act = json_object_get(cfg, "hidden_act");
    const char *a = json_is_string(act) ? json_string_value(act) : "gelu";
    if (strcmp(a, "gelu") == 0)
        b->act = BERT_ACT_GELU;
    else if (strcmp(a, "gelu_new") == 0 || strcmp(a, "gelu_pytorch_tanh") == 0)
        b->act = BERT_ACT_GELU_TANH;
    else if (strcmp(a, "relu") == 0)
        b->act = BERT_ACT_RELU;
    else
        return LLMC_ENOTSUP;
    return (int)V; /* checked against the tokenizer's vocabulary by the caller */
}

/* modules.json → the Transformer folder (*sub, malloc'd) and pooling mode. */
static int bert_modules(bert_backend *b, const char *dir, char **sub)
{
    json_t *mods = NULL, *pc = NULL;
    const char *pool_path = NULL;
    *sub = NULL;
    b->pooling = BERT_POOL_MEAN;
    int rc = bert_load_json(dir, NULL, "modules.json", 0, 0, &mods);
    if (rc || !mods)
        return rc;
    if (!json_is_array(mods)) {
        rc = LLMC_ECORRUPT;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(mods); i++) {
        const json_t *m = json_array_get(mods, i);
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *path = json_string_value(json_object_get(m, "path"));
        if (!type || !path) {
            rc = LLMC_ECORRUPT;
            goto out;
        }
        if (strstr(type, "Pooling")) {
            pool_path = path;
        } else if (strstr(type, "Transformer")) {
            if (strstr(path, ".."))
                rc = LLMC_EINVAL;
            else if (path[0] && !(*sub = strdup(path)))
                rc = LLMC_ENOMEM;
            if (rc)
                goto out;
        } else if (!strstr(type, "Normalize")) {
            rc = LLMC_ENOTSUP; /* Dense, LayerNorm, ...: not implemented */
            goto out;
        }
    }
    if (pool_path) {
        if (strstr(pool_path, "..")) {
            rc = LLMC_EINVAL;
            goto out;
        }
        if ((rc = bert_load_json(dir, pool_path, "config.json", 1, 0, &pc)))
            goto out;
        int cls = bert_json_bool(pc, "pooling_mode_cls_token", 0);
        int mean = bert_json_bool(pc, "pooling_mode_mean_tokens", 0);
        int mx = bert_json_bool(pc, "pooling_mode_max_tokens", 0);
        int msq = bert_json_bool(pc, "pooling_mode_mean_sqrt_len_tokens", 0);
        int other = bert_json_bool(pc, "pooling_mode_weightedmean_tokens", 0) ||
                    bert_json_bool(pc, "pooling_mode_lasttoken", 0);
        if (other || cls + mean + mx + msq != 1) {
            rc = LLMC_ENOTSUP; /* concatenated or unusual pooling */
            goto out;
        }
        b->pooling = cls   ? BERT_POOL_CLS
                     : mx  ? BERT_POOL_MAX
                     : msq ? BERT_POOL_MEAN_SQRT
                           : BERT_POOL_MEAN;
    }
out:
    json_decref(mods);
    json_decref(pc);
    if (rc) {
        free(*sub);
        *sub = NULL;
    }
    return rc;
}

/*
 * XLM-R's tokenizer: sentencepiece.bpe.model through libsentencepiece when
 * the folder has it (ids shifted by fairseq's offset: <s> 0, <pad> 1, </s> 2,
 * <unk> 3, piece i at i + 1, <mask> last), else tokenizer.json's Unigram
 * model (ids as written, which HF's converter shifted the same way).
 */
static int bert_spm_tokenizer(bert_backend *b, const char *dir, const char *sub)
{
    json_t *tj = NULL, *tc = NULL;
    int rc = 0;
    char *path = bert_path(dir, sub, "sentencepiece.bpe.model");
    if (!path)
        return LLMC_ENOMEM;
    if (access(path, F_OK) == 0) {
        b->spl = embed_spmlib_load(path, &rc);
        if (b->spl && embed_spmlib_unk(b->spl) != 0)
            rc = LLMC_ENOTSUP; /* not fairseq's layout (<unk> <s> </s> first) */
        if (rc == 0) {
            b->nvocab = embed_spmlib_size(b->spl) + 2;
            b->cls = 0;
            b->sep = 2;
            b->unk = 3;
            b->cut = embed_spmlib_max_piece(b->spl);
        }
    } else if ((rc = bert_load_json(dir, sub, "tokenizer.json", 0, 0, &tj)) == 0) {
        if (!tj) {
            rc = LLMC_EIO; /* neither file */
        } else if ((b->uni = embed_unigram_from_json(tj, &rc))) {
            b->nvocab = embed_unigram_size(b->uni);
            b->cls = embed_unigram_find(b->uni, "<s>", 3);
            b->sep = embed_unigram_find(b->uni, "</s>", 4);
            b->cut = embed_unigram_max_piece(b->uni);
            if (b->cls < 0 || b->sep < 0)
                rc = LLMC_ENOTSUP;
            long long ml = bert_json_int(json_object_get(tj, "truncation"), "max_length", 0);
            if (ml > 0 && (size_t)ml < b->base.max_tokens)
                b->base.max_tokens = (size_t)ml;
        }
    }
    free(path);
    if (rc == 0)
        rc = bert_load_json(dir, sub, "tokenizer_config.json", 0, JSON_DECODE_INT_AS_REAL, &tc);
    const json_t *ml = json_object_get(tc, "model_max_length");
    if (rc == 0 && json_is_number(ml) && json_number_value(ml) >= 1 &&
        json_number_value(ml) < (double)b->base.max_tokens)
        b->base.max_tokens = (size_t)json_number_value(ml);
    /* Input past this many bytes cannot reach the window (each id covers at
     * most the longest piece); see bert_spm_tokenize. */
    b->cut = b->base.max_tokens * (b->cut + 4) + 1024;
    json_decref(tj);
    json_decref(tc);
    return rc;
}

static int bert_tokenizer(bert_backend *b, const char *dir, const char *sub)
{
    json_t *tj = NULL, *tc = NULL;
    if (b->xlmr)
        return bert_spm_tokenizer(b, dir, sub);
    int rc = bert_load_json(dir, sub, "tokenizer.json", 0, 0, &tj);
    if (rc)
        return rc;
    if (tj) {
        rc = bert_load_tokenizer_json(b, tj);
    } else {
        /* HF writes model_max_length = 1000000000000000019884624838656 for
         * "no limit": too big for json_int_t, so read numbers as reals (the
         * limit is then ignored, as it should be). */
        if ((rc = bert_load_json(dir, sub, "tokenizer_config.json", 0, JSON_DECODE_INT_AS_REAL,
                                 &tc)))
            return rc;
        b->lower = bert_json_bool(tc, "do_lower_case", 1);
        b->strip = bert_json_bool(tc, "strip_accents", b->lower);
        b->chinese = bert_json_bool(tc, "tokenize_chinese_chars", 1);
        char *path = bert_path(dir, sub, "vocab.txt");
        rc = path ? bert_load_vocab_txt(b, path) : LLMC_ENOMEM;
        free(path);
        /* BertTokenizer's special tokens, as they appear in the vocabulary. */
        static const char *const sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
        for (size_t i = 0; rc == 0 && i < sizeof sp / sizeof sp[0]; i++) {
            int32_t id = bert_vocab_find(b, sp[i], strlen(sp[i]));
            if (id >= 0)
                rc = bert_add_special(b, sp[i], id);
        }
        const json_t *ml = json_object_get(tc, "model_max_length");
        if (rc == 0 && json_is_number(ml) && json_number_value(ml) >= 1 &&
            json_number_value(ml) < (double)b->base.max_tokens)
            b->base.max_tokens = (size_t)json_number_value(ml);
    }
    json_decref(tj);
    json_decref(tc);
    if (rc)
        return rc;
    /* Every id must have a token (vocab.txt lines are dense; a JSON vocab
     * could skip ids). */
    for (size_t i = 0; i < b->nvocab; i++)
        if (!b->tok[i])
            return LLMC_ECORRUPT;
    b->unk = bert_vocab_find(b, "[UNK]", 5);
    b->cls = bert_vocab_find(b, "[CLS]", 5);
    b->sep = bert_vocab_find(b, "[SEP]", 5);
    if (b->unk < 0 || b->cls < 0 || b->sep < 0)
        return LLMC_ENOTSUP;
    UErrorCode ue = U_ZERO_ERROR;
    b->nfd = unorm2_getNFDInstance(&ue);
    if (U_FAILURE(ue))
        return LLMC_ENOTSUP;
    b->keybuf = malloc(2 + 4 * (BERT_MAX_WORD_CHARS + 1));
    return b->keybuf ? 0 : LLMC_ENOMEM;
}

/*
 * The text put before every input: opt when not NULL ("" = none), else the
 * prompt sentence-transformers' config_sentence_transformers.json names
 * (its "query" prompt, else its default_prompt_name's, as sentence-
 * transformers' encode_query picks: a cache embeds queries; E5's "query: "),
 * else none.
 */
static int bert_prompt(bert_backend *b, const char *dir, const char *opt)
{
    json_t *cst = NULL;
    const char *pfx = opt;
    int rc = 0;
    if (!pfx) {
        if ((rc = bert_load_json(dir, NULL, "config_sentence_transformers.json", 0, 0, &cst)))
            return rc;
        const json_t *prompts = json_object_get(cst, "prompts");
        const char *name = json_string_value(json_object_get(cst, "default_prompt_name"));
        pfx = json_string_value(json_object_get(prompts, "query"));
        if (!pfx && name)
            pfx = json_string_value(json_object_get(prompts, name));
    }
    if (pfx && pfx[0]) {
        b->prefix_len = strlen(pfx);
        b->prefix = strdup(pfx);
        if (!b->prefix)
            rc = LLMC_ENOMEM;
    }
    json_decref(cst);
    return rc;
}

/* Contract: see embed_impl.h. Needs p->model_path (a directory). */
embed_backend *embed_bert_new(const llmc_embed_params *p, int *err)
{
    int rc;
    char *sub = NULL, *stpath = NULL;
    json_t *cfg = NULL, *sbc = NULL;
    bert_backend *b = NULL;
    if (!p || !p->model_path || !p->model_path[0]) {
        rc = LLMC_EINVAL;
        goto fail;
    }
    const char *dir = p->model_path;
    b = calloc(1, sizeof *b);
    if (!b) {
        rc = LLMC_ENOMEM;
        goto fail;
    }
    b->base.embed_batch = bert_embed_batch;
    b->base.free = bert_free;
    if ((rc = bert_modules(b, dir, &sub)))
        goto fail;
    if ((rc = bert_load_json(dir, sub, "config.json", 1, 0, &cfg)))
        goto fail;
    int cv = bert_config(b, cfg);
    if (cv < 0) {
        rc = cv;
        goto fail;
    }
    size_t cfg_vocab = (size_t)cv;
    if ((rc = bert_load_json(dir, NULL, "sentence_bert_config.json", 0, 0, &sbc)))
        goto fail;
    long long msl = bert_json_int(sbc, "max_seq_length", 0);
    if (msl > 0 && (size_t)msl < b->base.max_tokens)
        b->base.max_tokens = (size_t)msl;
    if ((rc = bert_tokenizer(b, dir, sub)))
        goto fail;
    if (b->nvocab > cfg_vocab) { /* ids past the embedding table */
        rc = LLMC_EMISMATCH;
        goto fail;
    }
    b->nvocab = cfg_vocab > b->nvocab ? b->nvocab : cfg_vocab;
    if (b->base.max_tokens < 3) {
        rc = LLMC_EINVAL;
        goto fail;
    }
    if ((rc = bert_prompt(b, dir, p->query_prefix)))
        goto fail;
    stpath = bert_path(dir, sub, "model.safetensors");
    if (!stpath) {
        rc = LLMC_ENOMEM;
        goto fail;
    }
    if ((rc = bert_st_open(stpath, &b->st)))
        goto fail;
    {
        /* The word-embedding table has config's vocab_size rows; keep nvocab
         * (the tokenizer's size, used to free tokens) and check the table. */
        size_t nv = b->nvocab;
        b->nvocab = cfg_vocab;
        rc = bert_load_weights(b, &b->st);
        b->nvocab = nv;
        if (rc)
            goto fail;
    }
    /* Name: folder name plus a hash of the weights file, so two models that
     * share a folder name never share an index. */
    {
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/')
            dl--;
        const char *base = dir;
        for (size_t i = 0; i + 1 < dl; i++)
            if (dir[i] == '/')
                base = dir + i + 1;
        size_t bl = (size_t)(dir + dl - base);
        uint64_t h = XXH3_64bits(b->st.map, b->st.size);
        b->name = malloc(bl + 48);
        if (!b->name) {
            rc = LLMC_ENOMEM;
            goto fail;
        }
        int w =
            snprintf(b->name, bl + 48, "bert:%.*s@%016llx", (int)bl, base, (unsigned long long)h);
        if (b->prefix) /* another prefix, other vectors */
            snprintf(b->name + w, bl + 48 - (size_t)w, "+p%08x",
                     (unsigned)XXH3_64bits(b->prefix, b->prefix_len));
    }
    b->base.model = b->name;
    b->base.dim = b->H;
    json_decref(b->st.hdr); /* the mapping stays; the parsed header is done */
    b->st.hdr = NULL;
    json_decref(cfg);
    json_decref(sbc);
    free(sub);
    free(stpath);
    return &b->base;
fail:
    json_decref(cfg);
    json_decref(sbc);
    free(sub);
    free(stpath);
    bert_free(b ? &b->base : NULL);
    if (err)
        *err = rc;
    return NULL;
}
