/*
 * words.h — internal: the word tokenizer shared by policy.c, guard.c and
 * semantic.c (src/words.c).
 *
 * A token is a maximal run of word bytes: ASCII letters and digits and every
 * byte >= 0x80 except the typographic quotes U+2018/2019/201C/201D (so UTF-8
 * letters stay inside words). An apostrophe (' or U+2019) between two word
 * bytes stays inside the word ("don't", "what's"); '.' or ',' between two
 * digits stays inside a number ("3.5", "1,000"). Everything else separates.
 * The token keeps its lowercased spelling (ASCII, and Cyrillic: А-Я and
 * Ѐ-Џ to their small letters, Ё/ё to е), truncated to WORDS_TOK_MAX-1
 * bytes at a character boundary (the kept spelling is a prefix of whole
 * UTF-8 characters; a malformed byte counts as one character), and shape
 * flags used by the detectors and the guard. The shape flags look at ASCII
 * only (a Cyrillic capital sets no WORDS_CAP: the guard's name rules are
 * English). No allocation; the text need not be NUL-terminated.
 */
#ifndef WORDS_H
#define WORDS_H

#include <stddef.h>
#include <stdint.h>

#define WORDS_TOK_MAX 32

enum {
    WORDS_NUM = 1u << 0,       /* starts with a digit ("3", "3rd", "2.5") */
    WORDS_CAP = 1u << 1,       /* starts with an ASCII capital */
    WORDS_ALLCAPS = 1u << 2,   /* two or more letters, all capitals ("NASA") */
    WORDS_MIXED = 1u << 3,     /* a capital after a lowercase letter ("PyTorch") */
    WORDS_ALNUM = 1u << 4,     /* letters and digits together ("gpt4", "3rd") */
    WORDS_SENTSTART = 1u << 5, /* first word of the text or of a sentence */
    WORDS_NONASCII = 1u << 6,  /* contains bytes >= 0x80 */
};

typedef struct {
    size_t off;            /* byte offset in the text */
    size_t len;            /* byte length in the text */
    char w[WORDS_TOK_MAX]; /* lowercased, NUL-terminated, maybe truncated */
    unsigned wl;           /* strlen(w) */
    unsigned flags;        /* WORDS_* */
} words_tok;

/* A code fence (``` or ~~~): three or more of one fence character in a
 * row, counted across the pieces of one answer (a fence may be split
 * between stream chunks or content parts). Zero-initialise, then feed each
 * piece to words_fence_scan; found says whether a fence was seen. */
typedef struct {
    int run;
    char ch;
    int found;
} words_fence;
void words_fence_scan(words_fence *f, const char *s);

/* Read the next token of s[0..len) starting at *pos; advance *pos past it.
 * Returns 1 with *t filled, 0 at the end of the text. */
int words_next(const char *s, size_t len, size_t *pos, words_tok *t);

#endif
