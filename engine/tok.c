/*
 * tok.c — the llama2.c / SentencePiece BPE tokenizer (format in model.h).
 *
 * Design. Pieces are kept as (bytes, length, score). A string -> id lookup
 * table (open addressing, xxHash3 of the bytes, power-of-two size >= 2V)
 * serves both the per-character lookup and the merge candidates. Encoding
 * keeps, for every adjacent pair, the id and score its merge would give
 * (-1 when the concatenation is not a piece); each step merges the best
 * pair (leftmost on ties) and recomputes only the two pairs around it, so a
 * long system prompt costs O(n^2) integer comparisons, not O(n^2) lookups.
 *
 * Invariants: every id in the table is < vocab; encode never writes past
 * out[max). Read-only after load, so one tokenizer serves every thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llmcache.h"
#include "model.h"

struct tokenizer {
    int vocab;
    char **piece;
    uint32_t *plen;
    float *score;
    int32_t *table;
    uint32_t mask;
    size_t max_piece; /* longest piece in bytes */
    int byte_id[256]; /* id of <0xXX>, or -1 */
};

static uint32_t tok_slot(const tokenizer *t, const char *s, size_t n)
{
    return (uint32_t)XXH3_64bits(s, n) & t->mask;
}

static int32_t tok_lookup(const tokenizer *t, const char *s, size_t n)
{
    for (uint32_t i = tok_slot(t, s, n);; i = (i + 1) & t->mask) {
        int32_t id = t->table[i];
        if (id < 0)
            return -1;
        if (t->plen[id] == n && memcmp(t->piece[id], s, n) == 0)
            return id;
    }
}

void tok_free(tokenizer *t)
{
    if (!t)
        return;
    if (t->piece)
        for (int i = 0; i < t->vocab; i++)
            free(t->piece[i]);
    free(t->piece);
    free(t->plen);
    free(t->score);
    free(t->table);
    free(t);
}

tokenizer *tok_load(const char *path, int vocab_size, int *err)
{
    int e = LLMC_EIO;
    tokenizer *t = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        goto fail;
    e = LLMC_ENOMEM;
    t = calloc(1, sizeof *t);
    if (!t)
        goto fail;
    t->vocab = vocab_size;
    t->piece = calloc((size_t)vocab_size, sizeof *t->piece);
    t->plen = calloc((size_t)vocab_size, sizeof *t->plen);
    t->score = calloc((size_t)vocab_size, sizeof *t->score);
    uint32_t ts = 1;
    while (ts < 2u * (uint32_t)vocab_size)
        ts <<= 1;
    t->table = malloc(ts * sizeof *t->table);
    if (!t->piece || !t->plen || !t->score || !t->table)
        goto fail;
    memset(t->table, 0xff, ts * sizeof *t->table);
    t->mask = ts - 1;
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = -1;
    e = LLMC_ECORRUPT;
    int32_t maxlen;
    if (fread(&maxlen, 4, 1, f) != 1 || maxlen <= 0 || maxlen > 1 << 16)
        goto fail;
    for (int i = 0; i < vocab_size; i++) {
        int32_t n;
        if (fread(&t->score[i], 4, 1, f) != 1 || fread(&n, 4, 1, f) != 1 || n < 0 || n > maxlen)
            goto fail;
        t->piece[i] = malloc((size_t)n + 1);
        if (!t->piece[i]) {
            e = LLMC_ENOMEM;
            goto fail;
        }
        if (fread(t->piece[i], 1, (size_t)n, f) != (size_t)n)
            goto fail;
        t->piece[i][n] = 0;
        t->plen[i] = (uint32_t)n;
        if ((size_t)n > t->max_piece)
            t->max_piece = (size_t)n;
        unsigned hx;
        if (n == 6 && sscanf(t->piece[i], "<0x%02X>", &hx) == 1 && hx < 256)
            t->byte_id[hx] = i;
        if (tok_lookup(t, t->piece[i], (size_t)n) >= 0)
            continue; /* first id wins for duplicate pieces */
        uint32_t s = tok_slot(t, t->piece[i], (size_t)n);
        while (t->table[s] >= 0)
            s = (s + 1) & t->mask;
        t->table[s] = i;
    }
    fclose(f);
    return t;
fail:
    if (f)
        fclose(f);
    tok_free(t);
    if (err)
        *err = e;
    return NULL;
}

int tok_vocab_size(const tokenizer *t)
{
    return t->vocab;
}

size_t tok_max_piece_len(const tokenizer *t)
{
    return t->max_piece > 4 ? t->max_piece : 4; /* a character may need 4 byte tokens */
}

static size_t tok_utf8_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        return 2;
    if ((c & 0xf0) == 0xe0)
        return 3;
    if ((c & 0xf8) == 0xf0)
        return 4;
    return 1; /* stray continuation or invalid lead byte: one byte token */
}

/* id and score of merging a and b, or id -1 */
static int32_t tok_pair(const tokenizer *t, int32_t a, int32_t b, char *buf, size_t cap)
{
    size_t la = t->plen[a], lb = t->plen[b];
    if (la + lb > cap)
        return -1;
    memcpy(buf, t->piece[a], la);
    memcpy(buf + la, t->piece[b], lb);
    return tok_lookup(t, buf, la + lb);
}

long tok_encode(const tokenizer *t, const char *text, size_t len, int bos, int32_t *out, size_t max)
{
    /* worst case: one id per byte, plus the dummy space and BOS */
    int32_t *ids = malloc((len + 2) * sizeof *ids);
    int32_t *pair = malloc((len + 2) * sizeof *pair);
    char buf[512];
    long rc = LLMC_ENOMEM;
    if (!ids || !pair)
        goto out;
    size_t n = 0;
    if (len > 0) {
        int32_t sp = tok_lookup(t, " ", 1);
        if (sp >= 0)
            ids[n++] = sp;
    }
    for (size_t i = 0; i < len;) {
        size_t cl = tok_utf8_len((unsigned char)text[i]);
        if (i + cl > len)
            cl = 1;
        int32_t id = tok_lookup(t, text + i, cl);
        if (id >= 0) {
            ids[n++] = id;
        } else {
            for (size_t j = 0; j < cl; j++) {
                int b = t->byte_id[(unsigned char)text[i + j]];
                ids[n++] = b >= 0 ? b : TOK_UNK;
            }
        }
        i += cl;
    }
    for (size_t i = 0; i + 1 < n; i++)
        pair[i] = tok_pair(t, ids[i], ids[i + 1], buf, sizeof buf);
    while (n > 1) {
        size_t best = n;
        float bs = 0.0f;
        for (size_t i = 0; i + 1 < n; i++)
            if (pair[i] >= 0 && (best == n || t->score[pair[i]] > bs)) {
                best = i;
                bs = t->score[pair[i]];
            }
        if (best == n)
            break;
        size_t tail = n - best - 2; /* ids after the merged pair */
        ids[best] = pair[best];
        memmove(ids + best + 1, ids + best + 2, tail * sizeof *ids);
        if (tail > 0)
            memmove(pair + best + 1, pair + best + 2, (tail - 1) * sizeof *pair);
        n--;
        if (best + 1 < n)
            pair[best] = tok_pair(t, ids[best], ids[best + 1], buf, sizeof buf);
        if (best > 0)
            pair[best - 1] = tok_pair(t, ids[best - 1], ids[best], buf, sizeof buf);
    }
    size_t total = n + (bos ? 1 : 0);
    rc = LLMC_ETOOBIG;
    if (total > max)
        goto out;
    size_t o = 0;
    if (bos)
        out[o++] = TOK_BOS;
    memcpy(out + o, ids, n * sizeof *ids);
    rc = (long)total;
out:
    free(ids);
    free(pair);
    return rc;
}

const char *tok_piece(const tokenizer *t, int32_t prev, int32_t id, char buf[2], size_t *len)
{
    *len = 0;
    if (id < 0 || id >= t->vocab || id == TOK_BOS || id == TOK_EOS || id == TOK_UNK)
        return "";
    const char *p = t->piece[id];
    size_t n = t->plen[id];
    unsigned hx;
    if (n == 6 && p[0] == '<' && sscanf(p, "<0x%02X>", &hx) == 1 && hx < 256) {
        buf[0] = (char)hx;
        buf[1] = 0;
        *len = 1;
        return buf;
    }
    if (prev == TOK_BOS && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    *len = n;
    return p;
}
