/*
 * words.c — the word tokenizer the policy, the guard and the semantic tier
 * share (the token rules are in words.h).
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "words.h"

/* Length of the typographic quote at s (U+2018/2019/201C/201D), else 0. */
static size_t words_quote_len(const unsigned char *s, size_t left)
{
    if (left >= 3 && s[0] == 0xE2 && s[1] == 0x80 &&
        (s[2] == 0x98 || s[2] == 0x99 || s[2] == 0x9C || s[2] == 0x9D))
        return 3;
    return 0;
}

/* Cyrillic case folding of the UTF-8 letter at s (2 bytes, D0/D1 lead):
 * capitals U+0400..U+042F become their small letters, and Ё/ё (U+0401,
 * U+0451) become е (U+0435), as Russian text writes either. Writes the
 * folded bytes to out and returns 1, or returns 0 when s is no Cyrillic
 * letter of those ranges (then the bytes are kept as they are). */
static int words_fold_cyrillic(const unsigned char *s, size_t left, unsigned char out[2])
{
    if (left < 2 || (s[0] != 0xD0 && s[0] != 0xD1) || (s[1] & 0xC0) != 0x80)
        return 0;
    unsigned cp = ((unsigned)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (cp == 0x401 || cp == 0x451)
        cp = 0x435;
    else if (cp >= 0x400 && cp <= 0x40F)
        cp += 0x50;
    else if (cp >= 0x410 && cp <= 0x42F)
        cp += 0x20;
    out[0] = (unsigned char)(0xC0 | (cp >> 6));
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 1;
}

/* Bytes of the well-formed UTF-8 sequence whose lead byte is s[0] (2..4),
 * or 1 when it is not one (then the byte stands alone, as before). */
static size_t words_utf8_len(const unsigned char *s, size_t left)
{
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    if (s[0] >= 0xF8 || n > left)
        return 1;
    for (size_t k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 1;
    return n;
}

static int words_is_byte(const unsigned char *s, size_t left)
{
    if (isalnum(s[0]))
        return 1;
    if (s[0] >= 0x80)
        return words_quote_len(s, left) == 0;
    return 0;
}

int words_next(const char *text, size_t len, size_t *pos, words_tok *t)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = *pos;
    size_t gap_start = i;
    while (i < len && !words_is_byte(s + i, len - i))
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    /* Sentence start: first token, or the gap holds an end of sentence. */
    int sent = (i == 0);
    if (!sent && gap_start == 0) {
        sent = 1;
        for (size_t k = 0; k < i; k++)
            if (!isspace(s[k]) && s[k] != '"' && s[k] != '\'' && s[k] != '(' && s[k] != '*' &&
                s[k] != '#' && s[k] != '-' && s[k] < 0x80)
                sent = 0;
    }
    /* An opening quote starts a title or a citation: its capital is no name. */
    for (size_t k = gap_start; k < i && !sent; k++)
        if (s[k] == '.' || s[k] == '!' || s[k] == '?' || s[k] == ':' || s[k] == '\n' ||
            s[k] == '"' || (s[k] == 0xE2 && k + 2 < i && s[k + 2] == 0x9C))
            sent = 1;
    size_t start = i;
    unsigned wl = 0, flags = 0;
    int letters = 0, digits = 0, uppers = 0, prev_lower = 0, full = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t step = 1;
        unsigned char out[4];
        size_t outn = 1;
        if (isalnum(c) || (c >= 0x80 && words_quote_len(s + i, len - i) == 0)) {
            out[0] = (unsigned char)tolower(c);
            if (words_fold_cyrillic(s + i, len - i, out))
                step = outn = 2;
            else if (c >= 0xC0 && (outn = words_utf8_len(s + i, len - i)) > 1) {
                memcpy(out, s + i, outn); /* a whole character, as it is */
                step = outn;
            }
            if (isalpha(c)) {
                letters++;
                if (isupper(c)) {
                    uppers++;
                    if (prev_lower)
                        flags |= WORDS_MIXED;
                    prev_lower = 0;
                } else {
                    prev_lower = 1;
                }
            } else if (isdigit(c)) {
                digits++;
            } else {
                flags |= WORDS_NONASCII;
                letters++;
            }
        } else {
            /* Joiners: apostrophe inside a word, . or , inside a number. */
            size_t q = (c == '\'') ? 1 : 0;
            if (!q && words_quote_len(s + i, len - i) && s[i + 2] == 0x99)
                q = 3;
            if (q && i + q < len && i > start && isalpha(s[i + q]) &&
                (isalpha(s[i - 1]) || s[i - 1] >= 0x80)) {
                out[0] = '\'';
                step = q;
            } else if ((c == '.' || c == ',') && i > start && isdigit(s[i - 1]) && i + 1 < len &&
                       isdigit(s[i + 1])) {
                out[0] = c;
            } else {
                break;
            }
        }
        /* Truncate at a character boundary, and once full stay full: the
         * kept spelling is always a prefix of whole characters. */
        if (!full && wl + outn <= WORDS_TOK_MAX - 1) {
            memcpy(t->w + wl, out, outn);
            wl += (unsigned)outn;
        } else {
            full = 1;
        }
        i += step;
    }
    t->w[wl] = '\0';
    t->wl = wl;
    t->off = start;
    t->len = i - start;
    if (isdigit(s[start]))
        flags |= WORDS_NUM;
    if (isupper(s[start]))
        flags |= WORDS_CAP;
    if (letters >= 2 && uppers == letters)
        flags |= WORDS_ALLCAPS;
    if (letters && digits)
        flags |= WORDS_ALNUM;
    if (sent)
        flags |= WORDS_SENTSTART;
    t->flags = flags;
    *pos = i;
    return 1;
}

void words_fence_scan(words_fence *f, const char *s)
{
    if (!s)
        return;
    for (; *s; s++) {
        if (*s == '`' || *s == '~') {
            if (f->run && f->ch != *s)
                f->run = 0;
            f->ch = *s;
            if (++f->run >= 3)
                f->found = 1;
        } else {
            f->run = 0;
        }
    }
}
