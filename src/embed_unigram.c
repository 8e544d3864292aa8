/*
 * embed_unigram.c — SentencePiece Unigram segmentation from tokenizer.json.
 *
 * Hugging Face's converter writes a SentencePiece model into tokenizer.json
 * as: "model": {"type": "Unigram", "unk_id": N, "vocab": [[piece, score],
 * ...]} (ids = positions; for XLM-R, fairseq's <s> <pad> </s> <unk> first),
 * "normalizer": "Precompiled" with the model's precompiled_charsmap (base64),
 * alone or in a Sequence with whitespace rules (Replace " {2,}", Strip), and
 * "pre_tokenizer": "Metaspace" ("▁", a prefix space). We follow the
 * SentencePiece library's own semantics, which the .model path (embed_spmlib)
 * gets from libsentencepiece, so both paths give the same ids:
 *
 * Normalisation (sentencepiece normalizer.cc): at each position the longest
 * rule of the charsmap matching a prefix of the rest is applied (its output
 * is a NUL-terminated string in the blob), else one UTF-8 character is
 * copied. Leading white space is dropped, runs of spaces become one, a
 * trailing space is dropped, a space is put in front (add_dummy_prefix) and
 * every space is written as U+2581 "▁".
 *
 * The charsmap is u32le trie_bytes, then a darts-clone double array of
 * trie_bytes / 4 u32 units, then the blob of replacement strings. A unit
 * holds: bit 8 has_leaf, bits 0-7 label (bit 31 set for a value unit, whose
 * low 31 bits are the value), offset = (u >> 10) << ((u & 0x200) >> 6). A
 * prefix search walks pos ^= offset, pos ^= byte, checks the label, and at a
 * unit with has_leaf reads the value at pos ^ offset. Every index is checked
 * against the array size and every value against the blob, so a corrupt
 * charsmap cannot read out of bounds (it fails the load when a rule's string
 * is not NUL-terminated inside the blob, checked when used: the text is cut
 * there).
 *
 * Segmentation (unigram_model.cc, EncodeOptimized): Viterbi over the bytes;
 * from each character start every piece that is a prefix of the rest is a
 * candidate with the piece's score, tried shortest first and replacing the
 * best only when strictly better, in float, as the library does; when no
 * piece covers exactly the next character, <unk> covers it with score
 * min_score - 10. Consecutive unknowns become one <unk>, as the library's
 * output (and HF's fuse_unk) has them. The special added tokens
 * (<s>, </s>, <pad>, <mask>) and <unk> are never candidates. When no piece
 * has "▁" past its first character (true of every model trained with
 * split_by_whitespace, the default), words (a "▁" and what follows up to
 * the next) are segmented one at a time, so encoding stops as soon as cap
 * ids are out; otherwise the whole text is one lattice. Matches are found by
 * hashing w[s..e) for growing e into the piece table; a bit set of the hashes
 * of all the pieces' prefixes ends the growth as soon as no piece can match
 * (the library's trie walk stops at the same place), so a position costs a
 * few probes, not one per byte of the longest piece.
 *
 * Known differences from HF's fast tokenizer, whose output differs from the
 * library's in these cases too: trailing white space (HF keeps a "▁"), fused
 * unknowns, and special tokens written in the text (HF matches "<s>" etc.
 * in the raw text; the library, and we, segment them as text).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "embed_unigram.h"
#include "llmcache.h"
#include "util.h"

#define UNI_UNK_PENALTY 10.0f
#define UNI_MAX_PIECE 4096 /* bytes; longer pieces are refused as corrupt */

typedef struct {
    float best;   /* its score */
    int32_t from; /* where its last piece starts (-1: no path yet) */
    int32_t id;   /* its last piece */
} uni_node;

struct embed_unigram {
    size_t n;         /* pieces */
    char *blob;       /* piece bytes, back to back */
    size_t *off;      /* piece i = blob[off[i] .. off[i+1]) */
    float *score;     /* per piece */
    uint8_t *cand;    /* 1 = may be produced by segmentation */
    int32_t *slots;   /* open addressing, -1 = empty */
    size_t nslots;    /* power of two */
    size_t max_piece; /* longest candidate, bytes */
    uint64_t *pfx;    /* bit set of the hashes of candidates' prefixes */
    size_t pfx_mask;  /* bits - 1 */
    int32_t unk;      /* unk id */
    float unk_score;  /* min normal score - penalty */
    int whole;        /* a piece has an inner "▁": one lattice per text */
    uint32_t *trie;   /* charsmap double array, or NULL (identity) */
    size_t ntrie;     /* units */
    const char *norm; /* charsmap replacement blob */
    size_t nnorm;     /* bytes */
    uint8_t *cmap;    /* decoded charsmap (owns trie's and norm's bytes) */
    /* scratch */
    char *text; /* normalised text */
    size_t text_cap;
    uni_node *lat; /* lat[i]: the best path ending at byte i */
    size_t lat_cap;
    int32_t *rev; /* a word's ids, backwards */
    size_t rev_cap;
};

static const char UNI_WS[] = "\xe2\x96\x81"; /* U+2581 */

/* ---- loading --------------------------------------------------------------- */

/* The piece s[0..n) whose XXH3 hash is h, or -1. */
static int32_t uni_find_h(const embed_unigram *u, const char *s, size_t n, uint64_t h)
{
    size_t mask = u->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        int32_t id = u->slots[i];
        if (id < 0)
            return -1;
        if (u->off[id + 1] - u->off[id] == n && memcmp(u->blob + u->off[id], s, n) == 0)
            return id;
    }
}

static int32_t uni_find(const embed_unigram *u, const char *s, size_t n)
{
    return uni_find_h(u, s, n, XXH3_64bits(s, n));
}

/* Hash bits 40.. pick the prefix bit (the low bits pick the table slot). */
static int uni_pfx_has(const embed_unigram *u, uint64_t h)
{
    size_t b = (size_t)(h >> 24) & u->pfx_mask;
    return (u->pfx[b >> 6] >> (b & 63)) & 1;
}

/*
 * Every prefix of a candidate that ends on a character boundary goes into a
 * bit set, so that Viterbi stops extending a match as soon as no piece can
 * start that way (a trie's early exit, at one bit per prefix hash; a false
 * positive only costs a table probe).
 */
static int uni_prefixes(embed_unigram *u)
{
    size_t total = 0;
    for (size_t i = 0; i < u->n; i++)
        if (u->cand[i])
            total += u->off[i + 1] - u->off[i];
    size_t bits = 1u << 16;
    while (bits < 8 * total && bits < ((size_t)1 << 30))
        bits *= 2;
    u->pfx = calloc(bits / 64, sizeof *u->pfx);
    if (!u->pfx)
        return LLMC_ENOMEM;
    u->pfx_mask = bits - 1;
    for (size_t i = 0; i < u->n; i++) {
        if (!u->cand[i])
            continue;
        const char *p = u->blob + u->off[i];
        size_t len = u->off[i + 1] - u->off[i];
        for (size_t e = 1; e <= len; e++) {
            if (e < len && ((uint8_t)p[e] & 0xc0) == 0x80)
                continue; /* inside a character */
            size_t b = (size_t)(XXH3_64bits(p, e) >> 24) & u->pfx_mask;
            u->pfx[b >> 6] |= (uint64_t)1 << (b & 63);
        }
    }
    return 0;
}

/* Index piece id; a duplicate keeps the first (lower) id, as the library's
 * map insertion does. */
static void uni_index(embed_unigram *u, int32_t id)
{
    const char *s = u->blob + u->off[id];
    size_t n = u->off[id + 1] - u->off[id], mask = u->nslots - 1;
    for (size_t i = (size_t)XXH3_64bits(s, n) & mask;; i = (i + 1) & mask) {
        int32_t o = u->slots[i];
        if (o < 0) {
            u->slots[i] = id;
            return;
        }
        if (u->off[o + 1] - u->off[o] == n && memcmp(u->blob + u->off[o], s, n) == 0)
            return;
    }
}

static int uni_vocab(embed_unigram *u, const json_t *vocab)
{
    size_t n = json_array_size(vocab), bytes = 0;
    if (!json_is_array(vocab) || n == 0 || n > (1u << 24))
        return LLMC_ECORRUPT;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(vocab, i);
        const json_t *p = json_array_get(e, 0), *sc = json_array_get(e, 1);
        if (json_array_size(e) != 2 || !json_is_string(p) || !json_is_number(sc) ||
            json_string_length(p) == 0 || json_string_length(p) > UNI_MAX_PIECE)
            return LLMC_ECORRUPT;
        bytes += json_string_length(p);
    }
    u->n = n;
    u->blob = malloc(bytes);
    u->off = malloc((n + 1) * sizeof *u->off);
    u->score = malloc(n * sizeof *u->score);
    u->cand = malloc(n);
    u->nslots = 16;
    while (u->nslots < 2 * n)
        u->nslots *= 2;
    u->slots = malloc(u->nslots * sizeof *u->slots);
    if (!u->blob || !u->off || !u->score || !u->cand || !u->slots)
        return LLMC_ENOMEM;
    memset(u->slots, 0xff, u->nslots * sizeof *u->slots);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(vocab, i);
        const json_t *p = json_array_get(e, 0);
        size_t len = json_string_length(p);
        u->off[i] = pos;
        memcpy(u->blob + pos, json_string_value(p), len);
        pos += len;
        u->score[i] = (float)json_number_value(json_array_get(e, 1));
        u->cand[i] = 1;
    }
    u->off[n] = pos;
    for (size_t i = 0; i < n; i++)
        uni_index(u, (int32_t)i);
    return 0;
}

/* Decode the base64 charsmap and check its framing. */
static int uni_charsmap(embed_unigram *u, const char *b64)
{
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0)
        return LLMC_ECORRUPT;
    u->cmap = malloc(n / 4 * 3 + 1);
    if (!u->cmap)
        return LLMC_ENOMEM;
    int got = EVP_DecodeBlock(u->cmap, (const unsigned char *)b64, (int)n);
    if (got < 0)
        return LLMC_ECORRUPT;
    size_t len = (size_t)got; /* EVP_DecodeBlock counts the padding as zero bytes */
    for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
        len--;
    if (len < 4)
        return LLMC_ECORRUPT;
    uint32_t tb = (uint32_t)u->cmap[0] | (uint32_t)u->cmap[1] << 8 | (uint32_t)u->cmap[2] << 16 |
                  (uint32_t)u->cmap[3] << 24;
    if (tb % 4 != 0 || tb == 0 || tb > len - 4)
        return LLMC_ECORRUPT;
    u->ntrie = tb / 4;
    u->trie = malloc(tb);
    if (!u->trie)
        return LLMC_ENOMEM;
    for (size_t i = 0; i < u->ntrie; i++) {
        const uint8_t *q = u->cmap + 4 + 4 * i;
        u->trie[i] =
            (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    u->norm = (const char *)u->cmap + 4 + tb;
    u->nnorm = len - 4 - tb;
    return 0;
}

static int uni_is(const json_t *o, const char *type)
{
    const json_t *t = json_object_get(o, "type");
    return json_is_string(t) && strcmp(json_string_value(t), type) == 0;
}

/* One normaliser of the chain: the charsmap, or a whitespace rule the
 * library's own whitespace handling already covers. */
static int uni_normalizer(embed_unigram *u, const json_t *n)
{
    if (uni_is(n, "Precompiled")) {
        const json_t *cm = json_object_get(n, "precompiled_charsmap");
        if (json_is_null(cm) || (json_is_string(cm) && json_string_length(cm) == 0))
            return 0;
        if (!json_is_string(cm) || u->cmap)
            return LLMC_ECORRUPT;
        return uni_charsmap(u, json_string_value(cm));
    }
    if (uni_is(n, "Replace")) {
        const json_t *pat = json_object_get(n, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *to = json_string_value(json_object_get(n, "content"));
        if (re && to && strcmp(re, " {2,}") == 0 && (!strcmp(to, " ") || !strcmp(to, UNI_WS)))
            return 0;
        return LLMC_ENOTSUP;
    }
    if (uni_is(n, "Strip"))
        return json_is_true(json_object_get(n, "left")) ? LLMC_ENOTSUP : 0;
    return LLMC_ENOTSUP;
}

static int uni_metaspace(const json_t *p)
{
    if (!uni_is(p, "Metaspace"))
        return 0;
    const char *r = json_string_value(json_object_get(p, "replacement"));
    const json_t *aps = json_object_get(p, "add_prefix_space");
    const char *ps = json_string_value(json_object_get(p, "prepend_scheme"));
    if (!r || strcmp(r, UNI_WS) != 0)
        return 0;
    if (ps ? strcmp(ps, "always") != 0 : (aps && !json_is_true(aps)))
        return 0;
    return 1;
}

/* Contract: see embed_unigram.h. */
embed_unigram *embed_unigram_from_json(const json_t *tj, int *err)
{
    int rc = 0;
    embed_unigram *u = calloc(1, sizeof *u);
    if (!u) {
        rc = LLMC_ENOMEM;
        goto fail;
    }
    const json_t *model = json_object_get(tj, "model");
    if (!uni_is(model, "Unigram") || json_is_true(json_object_get(model, "byte_fallback"))) {
        rc = LLMC_ENOTSUP;
        goto fail;
    }
    if ((rc = uni_vocab(u, json_object_get(model, "vocab"))))
        goto fail;
    const json_t *unk = json_object_get(model, "unk_id");
    if (!json_is_integer(unk) || json_integer_value(unk) < 0 ||
        (size_t)json_integer_value(unk) >= u->n) {
        rc = json_is_null(unk) || !unk ? LLMC_ENOTSUP : LLMC_ECORRUPT;
        goto fail;
    }
    u->unk = (int32_t)json_integer_value(unk);
    u->cand[u->unk] = 0;
    const json_t *norm = json_object_get(tj, "normalizer");
    if (uni_is(norm, "Sequence")) {
        const json_t *list = json_object_get(norm, "normalizers");
        for (size_t i = 0; i < json_array_size(list) && rc == 0; i++)
            rc = uni_normalizer(u, json_array_get(list, i));
    } else if (norm && !json_is_null(norm)) {
        rc = uni_normalizer(u, norm);
    }
    if (rc)
        goto fail;
    const json_t *pre = json_object_get(tj, "pre_tokenizer");
    int ok = uni_metaspace(pre);
    if (uni_is(pre, "Sequence")) {
        const json_t *list = json_object_get(pre, "pretokenizers");
        ok = json_array_size(list) > 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *p = json_array_get(list, i);
            if (uni_is(p, "WhitespaceSplit") && i + 1 < json_array_size(list))
                continue;
            if (!uni_metaspace(p))
                ok = 0;
        }
    }
    if (!ok) {
        rc = LLMC_ENOTSUP;
        goto fail;
    }
    /* Special tokens are matched by HF before the model runs, never by the
     * lattice; the library's control pieces are not in its lattice either. */
    const json_t *added = json_object_get(tj, "added_tokens");
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *at = json_array_get(added, i);
        const json_t *aid = json_object_get(at, "id");
        if (!json_is_integer(aid) || json_integer_value(aid) < 0) {
            rc = LLMC_ECORRUPT;
            goto fail;
        }
        if (json_is_true(json_object_get(at, "special")) && (size_t)json_integer_value(aid) < u->n)
            u->cand[json_integer_value(aid)] = 0;
    }
    float min = 0;
    int any = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (!u->cand[i])
            continue;
        size_t len = u->off[i + 1] - u->off[i];
        if (len > u->max_piece)
            u->max_piece = len;
        if (!any || u->score[i] < min)
            min = u->score[i];
        any = 1;
        const char *p = u->blob + u->off[i];
        for (size_t k = 1; k + 3 <= len; k++)
            if (memcmp(p + k, UNI_WS, 3) == 0)
                u->whole = 1;
    }
    if (!any) {
        rc = LLMC_ECORRUPT;
        goto fail;
    }
    u->unk_score = min - UNI_UNK_PENALTY;
    if ((rc = uni_prefixes(u)))
        goto fail;
    return u;
fail:
    embed_unigram_free(u);
    if (err)
        *err = rc;
    return NULL;
}

void embed_unigram_free(embed_unigram *u)
{
    if (!u)
        return;
    free(u->blob);
    free(u->off);
    free(u->score);
    free(u->cand);
    free(u->slots);
    free(u->pfx);
    free(u->trie);
    free(u->cmap);
    free(u->text);
    free(u->lat);
    free(u->rev);
    free(u);
}

size_t embed_unigram_size(const embed_unigram *u)
{
    return u->n;
}

int32_t embed_unigram_find(const embed_unigram *u, const char *s, size_t n)
{
    return uni_find(u, s, n);
}

size_t embed_unigram_max_piece(const embed_unigram *u)
{
    return u->max_piece;
}

/* ---- normalisation -------------------------------------------------------- */

static size_t uni_char_len(const char *s, size_t n)
{
    static const uint8_t tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t k = tab[(uint8_t)s[0] >> 4];
    return k < n ? k : n;
}

/*
 * The longest charsmap rule matching a prefix of s[0..n): *rep = its
 * replacement (NUL-terminated in the blob) and the bytes it consumes, or 0.
 */
static size_t uni_rule(const embed_unigram *u, const char *s, size_t n, const char **rep)
{
    if (!u->trie)
        return 0;
    const uint32_t *t = u->trie;
    size_t pos = 0, best = 0;
    uint32_t unit = t[0];
    pos ^= (unit >> 10) << ((unit & 0x200) >> 6);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        pos ^= c;
        if (pos >= u->ntrie)
            break;
        unit = t[pos];
        if ((unit & (0x80000000u | 0xffu)) != c)
            break;
        pos ^= (unit >> 10) << ((unit & 0x200) >> 6);
        if (pos >= u->ntrie)
            break;
        if (unit & 0x100) {
            size_t v = t[pos] & 0x7fffffffu;
            if (v < u->nnorm && memchr(u->norm + v, '\0', u->nnorm - v)) {
                best = i + 1;
                *rep = u->norm + v;
            }
        }
    }
    return best;
}

static int uni_put(embed_unigram *u, size_t *len, const char *s, size_t n)
{
    if (llmc_grow((void **)&u->text, &u->text_cap, *len + n, 1))
        return LLMC_ENOMEM;
    memcpy(u->text + *len, s, n);
    *len += n;
    return 0;
}

/* Normalise into u->text (see the file comment); *out_len its length. */
static int uni_normalize(embed_unigram *u, const char *s, size_t n, size_t *out_len)
{
    size_t len = 0, i = 0;
    int rc, prev_space = 1, started = 0;
    while (i < n) {
        const char *rep = NULL;
        size_t used = uni_rule(u, s + i, n - i, &rep), rl;
        if (used == 0) {
            used = uni_char_len(s + i, n - i);
            rep = s + i;
            rl = used;
        } else {
            rl = strlen(rep);
        }
        i += used;
        size_t k = 0;
        if (prev_space)
            while (k < rl && rep[k] == ' ')
                k++;
        if (k == rl)
            continue;
        if (!started) { /* the dummy prefix, once there is text */
            if ((rc = uni_put(u, &len, UNI_WS, 3)))
                return rc;
            started = 1;
        }
        for (; k < rl; k++)
            if ((rc = uni_put(u, &len, rep[k] == ' ' ? UNI_WS : rep + k, rep[k] == ' ' ? 3 : 1)))
                return rc;
        prev_space = rep[rl - 1] == ' ';
    }
    while (len >= 3 && memcmp(u->text + len - 3, UNI_WS, 3) == 0)
        len -= 3;
    *out_len = len;
    return 0;
}

/* ---- segmentation --------------------------------------------------------- */

/* Room for a lattice over n bytes. */
static int uni_lattice(embed_unigram *u, size_t n)
{
    if (llmc_grow((void **)&u->lat, &u->lat_cap, n + 1, sizeof *u->lat) ||
        llmc_grow((void **)&u->rev, &u->rev_cap, n + 1, sizeof *u->rev))
        return LLMC_ENOMEM;
    return 0;
}

/* A path ending at node with score sc, last piece id from byte s: kept when
 * the first or strictly better (ties keep the earlier, shorter candidate). */
static void uni_relax(uni_node *node, float sc, size_t s, int32_t id)
{
    if (node->from < 0 || sc > node->best) {
        node->best = sc;
        node->from = (int32_t)s;
        node->id = id;
    }
}

/* Viterbi over w[0..n); appends the ids to ids[*k..cap). */
static int uni_word(embed_unigram *u, const char *w, size_t n, int32_t *ids, size_t cap, size_t *k)
{
    int rc = uni_lattice(u, n);
    if (rc)
        return rc;
    for (size_t i = 0; i <= n; i++)
        u->lat[i].from = -1;
    u->lat[0].best = 0;
    for (size_t s = 0; s < n;) {
        size_t cl = uni_char_len(w + s, n - s);
        float base = u->lat[s].best;
        int single = 0;
        size_t lim = n - s < u->max_piece ? n - s : u->max_piece;
        for (size_t e = 1; e <= lim; e++) {
            if (e < n - s && ((uint8_t)w[s + e] & 0xc0) == 0x80)
                continue; /* pieces end on a character boundary */
            uint64_t h = XXH3_64bits(w + s, e);
            if (!uni_pfx_has(u, h))
                break; /* no piece starts with w[s..s+e) */
            int32_t id = uni_find_h(u, w + s, e, h);
            if (id < 0 || !u->cand[id])
                continue;
            float sc = base + u->score[id];
            uni_relax(&u->lat[s + e], sc, s, id);
            if (e == cl)
                single = 1;
        }
        if (!single) {
            uni_relax(&u->lat[s + cl], base + u->unk_score, s, u->unk);
        }
        s += cl;
    }
    size_t m = 0;
    for (size_t e = n; e > 0; e = (size_t)u->lat[e].from)
        if (!(m > 0 && u->lat[e].id == u->unk && u->rev[m - 1] == u->unk))
            u->rev[m++] = u->lat[e].id;
    if (m > 0 && *k > 0 && ids[*k - 1] == u->unk && u->rev[m - 1] == u->unk)
        m--; /* an unknown run across words (a whole-text lattice has none) */
    while (m > 0 && *k < cap)
        ids[(*k)++] = u->rev[--m];
    return 0;
}

/* Contract: see embed_unigram.h. */
int embed_unigram_encode(embed_unigram *u, const char *text, size_t len, int32_t *ids, size_t cap,
                         size_t *n_out)
{
    size_t n = 0, k = 0;
    *n_out = 0;
    int rc = uni_normalize(u, text, len, &n);
    if (rc)
        return rc;
    const char *t = u->text;
    if (u->whole) {
        rc = n ? uni_word(u, t, n, ids, cap, &k) : 0;
    } else {
        for (size_t s = 0; s < n && k < cap && rc == 0;) {
            size_t e = s + 3; /* every word starts with "▁" */
            while (e < n && !(e + 3 <= n && memcmp(t + e, UNI_WS, 3) == 0))
                e++;
            rc = uni_word(u, t + s, e - s, ids, cap, &k);
            s = e;
        }
    }
    *n_out = k;
    return rc;
}
