/*
 * embed_tok.c — SentencePiece unigram tokenizer for the built-in USE lite
 * encoder, reproducing @tensorflow-models/universal-sentence-encoder@1.3.3
 * (its Tokenizer.encode) exactly, quirks included, because the model's
 * reference vectors were made with it. Written from that algorithm; no
 * code of it is copied.
 *
 * The algorithm, step by step:
 *  1. Unicode NFKC normalisation (ICU, as JavaScript's String.normalize).
 *  2. If anything is left: prepend U+2581 '▁' and turn every U+0020 space
 *     (only that one; tabs and newlines stay) into '▁'.
 *  3. Split into UTF-16 code units ("symbols"): the reference's
 *     "unicode-aware" stringToChars is compiled to an index loop over the
 *     JavaScript string, so an astral character is two symbols (its
 *     surrogates), which no piece matches.
 *  4. Lattice: from each start position, every vocabulary piece (ids from
 *     `reserved` on) that is a prefix of the remaining symbols; when none
 *     is, the single symbol as "unknown" (id 0, score 0).
 *  5. Viterbi over end positions in increasing order and, for each end, over
 *     start positions in increasing order; a candidate replaces the best so
 *     far when `best == 0 || score >= best` (so 0 means "unset", and ties go
 *     to the later start). Scores are summed in double, as in JavaScript.
 *     This file runs the same updates forward (start-major), which visits
 *     the candidates of every end in the same order with final scores.
 *  6. Backtrack from the end by the length of the chosen piece's text in
 *     UTF-16 code units; for the unknown id that is the length of piece 0's
 *     text (one unit here), whatever the unknown symbol was.
 *  7. Consecutive unknown ids are merged into one.
 * Pieces that occur twice in the vocabulary: the later id wins (the trie
 * insert of the reference overwrites). Scores that are JSON null (the
 * shipped vocab.json has seven, all pieces with ':') count as 0, as
 * JavaScript's `null + x` does; they are thus the most likely pieces.
 *
 * Deliberate difference: a text that is empty or only white space after
 * NFKC gives LLMC_EEMPTY (the reference would emit '▁' pieces for it; a
 * cache has no use for the embedding of nothing).
 *
 * Long texts: the raw text is cut at 1 MiB (on a code point boundary) and
 * the normalised text at EMBED_TOK_MAX_SYMBOLS code units before
 * segmentation. The
 * encoder reads only the first 128 ids, which a cut that far away leaves
 * unchanged in practice (Viterbi paths re-join within a few pieces); it
 * bounds the work per call.
 *
 * Data structures: the vocabulary trie is a flat node array plus one open
 * addressing hash table from (node, code point) to child node, built once.
 * Scratch buffers (UTF-16, symbols, lattice arrays) grow and are reused,
 * so steady-state calls do not allocate.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "embed_tok.h"
#include "llmcache.h"
#include "util.h"

#define TOK_SEP 0x2581u
#define TOK_MAX_RAW (1u << 20)

typedef struct {
    int32_t id;   /* piece id ending here, or -1 */
    double score; /* its log-probability */
} tok_node;

struct embed_tok {
    size_t n_pieces;
    int32_t *u16len; /* per piece: its text's length in UTF-16 code units */
    tok_node *nodes;
    size_t n_nodes, cap_nodes;
    /* edge hash: key = node << 21 | UTF-16 code unit, value = child node */
    uint64_t *ekeys;
    uint32_t *evals;
    size_t emask;
    const UNormalizer2 *nfkc;
    /* scratch, grow-only */
    UChar *u16a, *u16b;
    size_t cap_u16a, cap_u16b;
    uint32_t *sym;
    double *best;
    int32_t *word;
    int32_t *out;
    size_t cap_sym;
};

static uint64_t tok_hash(uint64_t k)
{
    k ^= k >> 31;
    k *= 0x9e3779b97f4a7c15ull;
    k ^= k >> 29;
    return k;
}

static uint32_t tok_child(const embed_tok *t, uint32_t node, uint32_t cp)
{
    uint64_t key = ((uint64_t)node << 21) | cp;
    for (size_t i = tok_hash(key) & t->emask;; i = (i + 1) & t->emask) {
        if (t->ekeys[i] == UINT64_MAX)
            return UINT32_MAX;
        if (t->ekeys[i] == key)
            return t->evals[i];
    }
}

static int tok_add_child(embed_tok *t, uint32_t node, uint32_t cp, uint32_t *child)
{
    uint64_t key = ((uint64_t)node << 21) | cp;
    size_t i = tok_hash(key) & t->emask;
    for (;; i = (i + 1) & t->emask) {
        if (t->ekeys[i] == UINT64_MAX)
            break;
        if (t->ekeys[i] == key) {
            *child = t->evals[i];
            return 0;
        }
    }
    if (t->n_nodes == t->cap_nodes)
        return LLMC_ENOMEM; /* sized up front; cannot happen */
    t->nodes[t->n_nodes].id = -1;
    t->nodes[t->n_nodes].score = 0.0;
    t->ekeys[i] = key;
    t->evals[i] = (uint32_t)t->n_nodes;
    *child = (uint32_t)t->n_nodes++;
    return 0;
}

/* Decode one code point of valid UTF-8 at s[*i], advancing *i. */
static uint32_t tok_utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned c = s[*i];
    size_t k = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    uint32_t cp = k == 0 ? c : k == 1 ? (c & 0x1f) : k == 2 ? (c & 0x0f) : (c & 0x07);
    for (size_t j = 1; j <= k && *i + j < n; j++)
        cp = (cp << 6) | (s[*i + j] & 0x3f);
    *i += k + 1;
    return cp;
}

void embed_tok_free(embed_tok *t)
{
    if (!t)
        return;
    free(t->u16len);
    free(t->nodes);
    free(t->ekeys);
    free(t->evals);
    free(t->u16a);
    free(t->u16b);
    free(t->sym);
    free(t->best);
    free(t->word);
    free(t->out);
    free(t);
}

size_t embed_tok_size(const embed_tok *t)
{
    return t->n_pieces;
}

embed_tok *embed_tok_load(const char *path, int reserved, int *err)
{
    int e = LLMC_ECORRUPT;
    embed_tok *t = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        e = jerr.line == -1 || jerr.position == 0 ? LLMC_EIO : LLMC_ECORRUPT;
        goto fail;
    }
    if (!json_is_array(root) || json_array_size(root) <= (size_t)reserved ||
        json_array_size(root) > 1000000)
        goto fail;
    t = calloc(1, sizeof *t);
    if (!t) {
        e = LLMC_ENOMEM;
        goto fail;
    }
    size_t n = json_array_size(root);
    t->n_pieces = n;
    /* first pass: validate, count code points to size the trie */
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(root, i);
        if (!json_is_array(it) || json_array_size(it) < 2 ||
            !json_is_string(json_array_get(it, 0)) ||
            !(json_is_number(json_array_get(it, 1)) || json_is_null(json_array_get(it, 1))))
            goto fail;
        total += json_string_length(json_array_get(it, 0));
    }
    t->u16len = calloc(n, sizeof *t->u16len);
    t->cap_nodes = total;
    t->nodes = calloc(total, sizeof *t->nodes);
    size_t ecap = 16;
    while (ecap < 2 * total)
        ecap <<= 1;
    t->emask = ecap - 1;
    t->ekeys = malloc(ecap * sizeof *t->ekeys);
    t->evals = malloc(ecap * sizeof *t->evals);
    if (!t->u16len || !t->nodes || !t->ekeys || !t->evals) {
        e = LLMC_ENOMEM;
        goto fail;
    }
    memset(t->ekeys, 0xff, ecap * sizeof *t->ekeys);
    t->nodes[0].id = -1;
    t->n_nodes = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(root, i);
        const unsigned char *s = (const unsigned char *)json_string_value(json_array_get(it, 0));
        size_t sl = json_string_length(json_array_get(it, 0));
        double score = json_number_value(json_array_get(it, 1)); /* null -> 0 */
        int32_t u16 = 0;
        uint32_t node = 0;
        for (size_t j = 0; j < sl;) {
            uint32_t cp = tok_utf8_next(s, sl, &j);
            if (cp > 0x10ffff)
                goto fail;
            uint32_t unit[2] = {cp, 0};
            int nu = 1;
            if (cp > 0xffff) { /* the trie is over UTF-16 code units */
                unit[0] = 0xd800 + ((cp - 0x10000) >> 10);
                unit[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
                nu = 2;
            }
            u16 += nu;
            for (int q = 0; q < nu; q++)
                if (i >= (size_t)reserved && tok_add_child(t, node, unit[q], &node) != 0)
                    goto fail;
        }
        t->u16len[i] = u16;
        if (i >= (size_t)reserved && node != 0) {
            t->nodes[node].id = (int32_t)i;
            t->nodes[node].score = score;
        }
    }
    UErrorCode st = U_ZERO_ERROR;
    t->nfkc = unorm2_getNFKCInstance(&st);
    if (U_FAILURE(st) || !t->nfkc) {
        e = LLMC_ENOTSUP;
        goto fail;
    }
    json_decref(root);
    return t;
fail:
    json_decref(root);
    embed_tok_free(t);
    if (err)
        *err = e;
    return NULL;
}

/* NFKC-normalise text into t->u16b; returns its length or a negative error. */
static int32_t tok_normalize(embed_tok *t, const char *text, size_t len)
{
    if (len > TOK_MAX_RAW) {
        len = TOK_MAX_RAW;
        while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
            len--;
    }
    UErrorCode st = U_ZERO_ERROR;
    int32_t n16 = 0;
    if (llmc_grow((void **)&t->u16a, &t->cap_u16a, len + 1, sizeof(UChar)))
        return LLMC_ENOMEM;
    u_strFromUTF8(t->u16a, (int32_t)t->cap_u16a, &n16, text, (int32_t)len, &st);
    if (U_FAILURE(st))
        return LLMC_EUTF8;
    for (int attempt = 0; attempt < 3; attempt++) {
        st = U_ZERO_ERROR;
        int32_t m = unorm2_normalize(t->nfkc, t->u16a, n16, t->u16b, (int32_t)t->cap_u16b, &st);
        if (st == U_BUFFER_OVERFLOW_ERROR) {
            if (llmc_grow((void **)&t->u16b, &t->cap_u16b, (size_t)m + 1, sizeof(UChar)))
                return LLMC_ENOMEM;
            continue;
        }
        if (U_FAILURE(st))
            return LLMC_EUTF8;
        return m;
    }
    return LLMC_ENOMEM;
}

int embed_tok_encode(embed_tok *t, const char *text, size_t len, int32_t *ids, size_t cap,
                     size_t *n_out)
{
    *n_out = 0;
    if (len == 0)
        return LLMC_EEMPTY;
    int32_t m = tok_normalize(t, text, len);
    if (m < 0)
        return m;
    /* symbols: '▁' + code points with ' ' -> '▁'; lattice arrays ns + 1 */
    size_t need = (size_t)m + 2;
    if (need > EMBED_TOK_MAX_SYMBOLS + 2)
        need = EMBED_TOK_MAX_SYMBOLS + 2;
    if (need > t->cap_sym) {
        size_t c = t->cap_sym ? t->cap_sym : 256;
        while (c < need)
            c *= 2;
        uint32_t *sy = realloc(t->sym, c * sizeof *sy);
        if (sy)
            t->sym = sy;
        double *b = realloc(t->best, c * sizeof *b);
        if (b)
            t->best = b;
        int32_t *w = realloc(t->word, c * sizeof *w);
        if (w)
            t->word = w;
        int32_t *o = realloc(t->out, c * sizeof *o);
        if (o)
            t->out = o;
        if (!sy || !b || !w || !o)
            return LLMC_ENOMEM;
        t->cap_sym = c;
    }
    int only_space = 1;
    for (int32_t i = 0; i < m && only_space;) {
        UChar32 cp;
        U16_NEXT(t->u16b, i, m, cp);
        only_space = u_isUWhiteSpace(cp);
    }
    if (m == 0 || only_space)
        return LLMC_EEMPTY;
    size_t ns = 0;
    t->sym[ns++] = TOK_SEP;
    for (int32_t i = 0; i < m && ns < EMBED_TOK_MAX_SYMBOLS + 1; i++)
        t->sym[ns++] = t->u16b[i] == 0x20 ? TOK_SEP : t->u16b[i];
    double *best = t->best;
    int32_t *word = t->word;
    for (size_t i = 0; i <= ns; i++) {
        best[i] = 0.0;
        word[i] = 0;
    }
    for (size_t s = 0; s < ns; s++) {
        int matched = 0;
        uint32_t node = 0;
        for (size_t j = s; j < ns; j++) {
            node = tok_child(t, node, t->sym[j]);
            if (node == UINT32_MAX)
                break;
            if (t->nodes[node].id >= 0) {
                matched = 1;
                size_t end = j + 1;
                double sc = t->nodes[node].score + best[s];
                if (best[end] == 0.0 || sc >= best[end]) {
                    best[end] = sc;
                    word[end] = t->nodes[node].id;
                }
            }
        }
        if (!matched) { /* unknown symbol: id 0, score 0, one symbol long */
            size_t end = s + 1;
            double sc = 0.0 + best[s];
            if (best[end] == 0.0 || sc >= best[end]) {
                best[end] = sc;
                word[end] = 0;
            }
        }
    }
    /* backtrack by the UTF-16 length of the chosen piece, as the reference does */
    size_t nr = 0;
    long it = (long)ns;
    while (it > 0) {
        int32_t id = word[it];
        t->out[nr++] = id;
        int32_t step = t->u16len[id] > 0 ? t->u16len[id] : 1;
        it -= step;
    }
    /* merge consecutive unknowns, then reverse into ids */
    size_t nm = 0;
    int prev_unk = 0;
    for (size_t i = 0; i < nr; i++) {
        int32_t id = t->out[i];
        if (!(prev_unk && id == 0))
            t->out[nm++] = id;
        prev_unk = id == 0;
    }
    for (size_t i = 0; i < nm && i < cap; i++)
        ids[i] = t->out[nm - 1 - i];
    *n_out = nm;
    return 0;
}
