/*
 * normalize.c — the text the semantic tier embeds.
 *
 * Why
 *   The built-in encoder (USE-lite) is case- and punctuation-sensitive:
 *   "What is the capital of France?" and "what is the capital of france"
 *   have a cosine of 0.919, below the short-text bar, so the lower-case copy
 *   of a stored question missed. People type questions in every casing,
 *   with or without the question mark, with "what's" or "what is"; none of
 *   that changes what they ask. The semantic tier therefore embeds a
 *   normalised copy of the query, the same on store and on lookup, so such
 *   variants meet at cosine 1.
 *
 * Design
 *   One pass of ICU's NFKC_Casefold normalisation (Unicode compatibility
 *   forms — full-width letters, ligatures, non-breaking spaces — and full
 *   case folding, "Straße" -> "strasse"), then, on the UTF-8 result:
 *     - typographic apostrophes (U+2018, U+2019, U+02BC) become "'";
 *     - runs of white space become one space, none at either end;
 *     - trailing punctuation (. ? ! … , ; :) and the space before it go;
 *     - common English contractions are spelled out, word by word:
 *       "what's" -> "what is", "can't" -> "cannot", "won't" -> "will not",
 *       "doesn't" -> "does not", "they're" -> "they are", "i'm" -> "i am",
 *       "we've" -> "we have", "you'll" -> "you will", "i'd" -> "i would".
 *       A possessive ("john's") is left alone: only the question and
 *       pronoun words whose "'s" means "is" are listed.
 *   Only the embedding sees this text. The guard keeps comparing the
 *   original text, where case carries meaning (names, tickers, code:
 *   "US" / "us", "Go" / "go").
 *
 * Invariants
 *   Pure and deterministic; thread-safe (ICU's normaliser instance is a
 *   process-wide immutable singleton). The output is valid UTF-8 and
 *   NUL-terminated; it may be empty (a text of punctuation only).
 *   Normalising a normalised text gives it back unchanged.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "llmcache.h"

/* Whole-word contractions; after case folding, with a plain apostrophe. */
static const struct {
    const char *from, *to;
} normalize_words[] = {
    {"ain't", "is not"},   {"can't", "cannot"},     {"here's", "here is"},
    {"how's", "how is"},   {"he's", "he is"},       {"it's", "it is"},
    {"let's", "let us"},   {"shan't", "shall not"}, {"she's", "she is"},
    {"that's", "that is"}, {"there's", "there is"}, {"what's", "what is"},
    {"when's", "when is"}, {"where's", "where is"}, {"who's", "who is"},
    {"why's", "why is"},   {"won't", "will not"},
};

/* Suffix contractions: word + suffix -> word + " " + replacement. */
static const struct {
    const char *suffix, *to;
} normalize_suffixes[] = {
    {"n't", " not"},  {"'re", " are"}, {"'ve", " have"},
    {"'ll", " will"}, {"'m", " am"},   {"'d", " would"},
};

/* Append n bytes of s to the growing buffer o (capacity checked by the
 * caller: the output never exceeds 3x the folded text plus a little). */
static void normalize_put(char *o, size_t *ol, const char *s, size_t n)
{
    memcpy(o + *ol, s, n);
    *ol += n;
}

/* Write word w[0..n) to o, spelled out when it is a contraction. */
static void normalize_word(char *o, size_t *ol, const char *w, size_t n)
{
    for (size_t i = 0; i < sizeof normalize_words / sizeof *normalize_words; i++) {
        const char *f = normalize_words[i].from;
        if (strlen(f) == n && !memcmp(f, w, n)) {
            normalize_put(o, ol, normalize_words[i].to, strlen(normalize_words[i].to));
            return;
        }
    }
    for (size_t i = 0; i < sizeof normalize_suffixes / sizeof *normalize_suffixes; i++) {
        const char *sfx = normalize_suffixes[i].suffix;
        size_t sl = strlen(sfx);
        /* The stem must end in a letter: "don't", "i'm"; not "'t" alone. */
        if (n > sl && !memcmp(w + n - sl, sfx, sl) && isalpha((unsigned char)w[n - sl - 1])) {
            normalize_put(o, ol, w, n - sl);
            normalize_put(o, ol, normalize_suffixes[i].to, strlen(normalize_suffixes[i].to));
            return;
        }
    }
    normalize_put(o, ol, w, n);
}

/* NFKC + case folding through UTF-16. *out is malloc'd UTF-8. */
static int normalize_icu(const char *text, size_t len, char **out, size_t *olen)
{
    UErrorCode st = U_ZERO_ERROR;
    const UNormalizer2 *nf = unorm2_getNFKCCasefoldInstance(&st);
    if (U_FAILURE(st))
        return LLMC_ENOTSUP;
    if (len > (size_t)INT32_MAX / 8)
        return LLMC_ETOOBIG;
    int32_t n16 = 0;
    u_strFromUTF8(NULL, 0, &n16, text, (int32_t)len, &st);
    if (st == U_INVALID_CHAR_FOUND || st == U_ILLEGAL_ARGUMENT_ERROR)
        return LLMC_EUTF8;
    st = U_ZERO_ERROR;
    UChar *a = malloc(((size_t)n16 + 1) * sizeof *a);
    if (!a)
        return LLMC_ENOMEM;
    u_strFromUTF8(a, n16 + 1, &n16, text, (int32_t)len, &st);
    if (U_FAILURE(st)) {
        free(a);
        return LLMC_EUTF8;
    }
    /* Folding may expand (ligatures, "ß"); ask for the size first. */
    int32_t nb = unorm2_normalize(nf, a, n16, NULL, 0, &st);
    st = U_ZERO_ERROR;
    UChar *b = malloc(((size_t)nb + 1) * sizeof *b);
    if (!b) {
        free(a);
        return LLMC_ENOMEM;
    }
    nb = unorm2_normalize(nf, a, n16, b, nb + 1, &st);
    free(a);
    if (U_FAILURE(st)) {
        free(b);
        return LLMC_EINVAL;
    }
    int32_t n8 = 0;
    u_strToUTF8(NULL, 0, &n8, b, nb, &st);
    st = U_ZERO_ERROR;
    char *u8 = malloc((size_t)n8 + 1);
    if (!u8) {
        free(b);
        return LLMC_ENOMEM;
    }
    u_strToUTF8(u8, n8 + 1, &n8, b, nb, &st);
    free(b);
    if (U_FAILURE(st)) {
        free(u8);
        return LLMC_EUTF8;
    }
    u8[n8] = 0;
    *out = u8;
    *olen = (size_t)n8;
    return 0;
}

/* A trailing punctuation mark at the end of s[0..n): its length, or 0. */
static size_t normalize_trailing_punct(const char *s, size_t n)
{
    if (n && strchr(".?!,;:", s[n - 1]))
        return 1;
    if (n >= 3 && !memcmp(s + n - 3, "\xe2\x80\xa6", 3)) /* U+2026 … */
        return 3;
    return 0;
}

int llmc_normalize(const char *text, size_t len, char **out, size_t *out_len)
{
    if (!text || !out)
        return LLMC_EINVAL;
    char *f = NULL;
    size_t fl = 0;
    int rc = normalize_icu(text, len, &f, &fl);
    if (rc)
        return rc;
    /* Every byte becomes at most itself or a space; a contraction at most
     * triples a word ("i'd" -> "i would"): 3x + 1 is enough. */
    char *o = malloc(fl * 3 + 1);
    if (!o) {
        free(f);
        return LLMC_ENOMEM;
    }
    size_t ol = 0;
    char word[256];
    size_t wl = 0;
    int overflow = 0; /* the word did not fit: written as it came */
    for (size_t i = 0; i <= fl; i++) {
        unsigned char c = i < fl ? (unsigned char)f[i] : ' ';
        size_t adv = 1;
        /* U+2018, U+2019, U+02BC: the apostrophes people's keyboards make. */
        if (i + 2 < fl && c == 0xe2 && (unsigned char)f[i + 1] == 0x80 &&
            ((unsigned char)f[i + 2] == 0x98 || (unsigned char)f[i + 2] == 0x99)) {
            c = '\'';
            adv = 3;
        } else if (i + 1 < fl && c == 0xca && (unsigned char)f[i + 1] == 0xbc) {
            c = '\'';
            adv = 2;
        }
        if (isspace(c)) {
            if (wl && !overflow) {
                if (ol)
                    o[ol++] = ' ';
                normalize_word(o, &ol, word, wl);
            }
            wl = 0;
            overflow = 0;
        } else if (wl + adv < sizeof word && !overflow) {
            if (adv == 1)
                word[wl++] = (char)c;
            else
                word[wl++] = '\'';
        } else {
            /* A very long token: flush what we have and keep copying. */
            if (!overflow) {
                if (ol)
                    o[ol++] = ' ';
                overflow = 1;
            }
            normalize_put(o, &ol, word, wl);
            wl = 0;
            if (adv == 1)
                o[ol++] = (char)c;
            else
                o[ol++] = '\'';
        }
        i += adv - 1;
    }
    free(f);
    /* Trailing punctuation and the spaces before it. */
    for (;;) {
        size_t p = normalize_trailing_punct(o, ol);
        if (!p)
            break;
        ol -= p;
        while (ol && o[ol - 1] == ' ')
            ol--;
    }
    o[ol] = 0;
    *out = o;
    if (out_len)
        *out_len = ol;
    return 0;
}
