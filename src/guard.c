/*
 * guard.c — the semantic false-hit guard: may a stored question answer a
 * new one that the vector search found above the cosine threshold?
 *
 * Why
 *   Sentence embeddings blur exactly the details that change an answer:
 *   "rehab centers in Denali County" and "... in Anchorage County" have a
 *   cosine of 0.985; "how to lose weight" and "how not to lose weight", or
 *   "top 5" and "top 10", sit just as close. A cosine threshold cannot tell
 *   them apart, a look at the words can.
 *
 * Design
 *   Both texts are tokenized (words.h) and five checks run, each one
 *   switchable in llmc_guard_params:
 *     numbers   the sets of numbers must be equal. Digits ("3", "3rd",
 *               "1,000" -> "1000", "v2.10" -> "2.10") and number words
 *               ("three", "third", "twenty") map to one canonical spelling;
 *               ambiguous words ("one", "first", "second", "thousand") may
 *               match a number but are not required to ("which one").
 *     opposite  one text has a word of an opposite pair (on / off, enable /
 *               disable, open / close, first / last, largest / smallest...)
 *               and the other the other word (switched with negation).
 *     negation  either both texts contain a negation (not, no, never, none,
 *               nothing, without, cannot, non, absence, lack, any *n't ...)
 *               or neither does; "whether or not", a leading "No," and
 *               "no." (number) are not negations.
 *     entities  a named entity of one side must occur, as any word, on the
 *               other side (case-insensitive, stemmed). An entity is an
 *               all-capitals word ("NASA"), a mixed-case word ("PyTorch"),
 *               letters with digits ("GPT4"), or a capitalised word that
 *               does not start a sentence — unless the text is in Title
 *               Case, where capitals say nothing. An acronym matches the
 *               initials of consecutive words on the other side ("HF" ~
 *               "Hugging Face", "JS" ~ "JavaScript", "U.S." ~ "USA"); a
 *               compound matches its halves ("Huggingface"); one adjacent
 *               transposition, insertion or deletion is forgiven ("Qoura").
 *               A substitution (each side has an entity the other lacks)
 *               always fails; an added detail on one side ("Narendra
 *               Modi" / "Modi") fails beyond max_entity_missing.
 *     slot      one template with different fillers: the common prefix
 *               and suffix of the two word sequences cover >= 60% of the
 *               longer text and each side's middle is at most
 *               max_slot_fill words holding a content word the other side
 *               lacks ("best milkshakes" / "best curly fries").
 *     overlap   the content words (stop words removed, light suffix
 *               stemming) must overlap: Dice = 2|A∩B| / (|A|+|B|) at least
 *               min_overlap. Skipped when the cosine is at or above
 *               relax_cosine, where the embedding is trusted for wording.
 *     unmatched the content words one side has and the other lacks (by the
 *               same matching as entities: stem, spelling variant,
 *               compound, acronym), weighted by rarity, as a share of all
 *               content of both sides, at most max_unmatched. A rarity is
 *               -log p of the word's pieces in the encoder's SentencePiece
 *               vocabulary (llmc_guard_vocab): "the", "make" weigh little,
 *               "chamomile", "Anchorage" a lot, so a reworded paraphrase
 *               passes and an added or swapped detail ("... at night",
 *               "Dynamics CRM Services") does not. Without a vocabulary
 *               every content word weighs 1.
 *   With a lexicon (llmc_lexicon, WordNet), a content word also matches a
 *   word of the other side that shares a base form or one of its first
 *   lexicon_senses senses ("utilize" / "use", "quantity" / "amount"), in
 *   the slot, overlap and unmatched checks; a name only matches another
 *   form of itself ("GEESE" / "GOOSE"), never a synonym. The sense ids of
 *   each text's words are looked up once per check (guard_senses).
 *   Between two long texts (both >= long_words words) a negation or
 *   numbers on one side only do not reject: long statements reword "no
 *   code needed" as "without writing any code"; a number substitution
 *   still rejects.
 *   The first failing check names the reason; all failing checks are in
 *   the result's bit set.
 *
 * Vocabulary
 *   llmc_guard_vocab_load reads vocab.json ([[piece, logp], ...]) into one
 *   open-addressing table of pieces (FNV-1a, power-of-two size, at most
 *   half full) over one string arena. A word's rarity is the Viterbi
 *   minimum of -sum(logp) over its segmentations into pieces of
 *   "\u2581word" (the first piece may also match capitalised); a byte no
 *   piece covers costs GUARD_UNK_COST.
 *
 * Invariants
 *   Pure and deterministic: no heap, no globals beyond const tables (the
 *   vocabulary and the lexicon, when given, are immutable and only read);
 *   about 100 KB of stack; the
 *   first GUARD_TEXT_MAX bytes and GUARD_TOKENS_MAX words of each text are
 *   compared. Thread-safe.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "llmcache.h"
#include "words.h"

#define GUARD_TEXT_MAX 4096
#define GUARD_TOKENS_MAX 256
#define GUARD_UNK_COST 20.0   /* -log p of a byte no piece covers */
#define GUARD_PIECE_MAX 48    /* longest piece looked up, in bytes */
#define GUARD_SENSE_POOL 4096 /* sense ids kept per text; later words get none */

struct llmc_guard_vocab {
    char *arena;     /* NUL-terminated pieces, back to back */
    uint32_t *slots; /* offset into arena + 1, 0 = empty */
    float *cost;     /* -logp per slot */
    size_t mask;     /* slots - 1 */
};

typedef struct {
    char word[WORDS_TOK_MAX]; /* lowercased */
    char stem[WORDS_TOK_MAX];
    char caps[8];            /* capitals of the original spelling ("JavaScript": "js") */
    char num[WORDS_TOK_MAX]; /* canonical number, "" when not a number */
    int covered;             /* matched through an acronym of the other side */
    int weak;                /* num from an ambiguous word ("one", "first") */
    unsigned flags;
    int stop;
    int entity;
    int neg;
    uint16_t syn, nsyn; /* sense ids: guard_text.pool[syn .. syn + nsyn) */
} guard_word;

typedef struct {
    guard_word w[GUARD_TOKENS_MAX];
    unsigned n;
    int negated;
    unsigned npool;
    uint32_t pool[GUARD_SENSE_POOL]; /* sense ids of the words, sorted per word */
} guard_text;

/* The language of the word lists below (stop words, negations, number
 * words): what llmc_guard_langs reports. */
#define GUARD_LISTS_LANG "en"

/* Sorted for bsearch. Function words, question words, auxiliaries, and a
 * few words that carry no topic in questions ("best", "way", "good"). */
static const char *const guard_stop[] = {
    "a",      "about",    "above",     "after",      "again",   "against",  "all",   "also",
    "am",     "an",       "and",       "any",        "anyone",  "anything", "are",   "as",
    "at",     "be",       "because",   "been",       "before",  "being",    "below", "best",
    "better", "between",  "both",      "but",        "by",      "can",      "could", "did",
    "do",     "does",     "doing",     "down",       "during",  "each",     "else",  "ever",
    "every",  "few",      "for",       "from",       "further", "get",      "good",  "had",
    "has",    "have",     "having",    "he",         "her",     "here",     "hers",  "herself",
    "him",    "himself",  "his",       "how",        "i",       "i'm",      "if",    "in",
    "into",   "is",       "it",        "it's",       "its",     "itself",   "just",  "me",
    "might",  "more",     "most",      "must",       "my",      "myself",   "of",    "off",
    "on",     "once",     "only",      "or",         "other",   "our",      "ours",  "ourselves",
    "out",    "over",     "own",       "really",     "same",    "shall",    "she",   "should",
    "so",     "some",     "someone",   "something",  "such",    "than",     "that",  "the",
    "their",  "theirs",   "them",      "themselves", "then",    "there",    "these", "they",
    "thing",  "things",   "this",      "those",      "through", "to",       "too",   "under",
    "until",  "up",       "us",        "very",       "want",    "was",      "way",   "ways",
    "we",     "were",     "what",      "what's",     "when",    "where",    "which", "while",
    "who",    "whom",     "why",       "will",       "with",    "would",    "you",   "your",
    "yours",  "yourself", "yourselves"};

static const char *const guard_negations[] = {
    "absence", "absent", "cannot", "lack", "lacking", "lacks",   "neither", "never",  "no",
    "nobody",  "non",    "none",   "nor",  "not",     "nothing", "nowhere", "without"};

/* Number words and their canonical digits. Sorted by word. */
static const struct {
    const char *w;
    const char *d;
} guard_numwords[] = {
    {"eight", "8"},     {"eighteen", "18"}, {"eighth", "8"},     {"eighty", "80"},
    {"eleven", "11"},   {"fifteen", "15"},  {"fifth", "5"},      {"fifty", "50"},
    {"five", "5"},      {"forty", "40"},    {"four", "4"},       {"fourteen", "14"},
    {"fourth", "4"},    {"nine", "9"},      {"nineteen", "19"},  {"ninety", "90"},
    {"ninth", "9"},     {"seven", "7"},     {"seventeen", "17"}, {"seventh", "7"},
    {"seventy", "70"},  {"six", "6"},       {"sixteen", "16"},   {"sixth", "6"},
    {"sixty", "60"},    {"ten", "10"},      {"tenth", "10"},     {"third", "3"},
    {"thirteen", "13"}, {"thirty", "30"},   {"three", "3"},      {"twelve", "12"},
    {"twenty", "20"},   {"two", "2"},       {"zero", "0"}};

/* Number words that are often something else ("which one", "first of
 * all", "a second", "thousands of"): they may match a number of the other
 * side but are not required to. Sorted by word. */
static const struct {
    const char *w;
    const char *d;
} guard_weaknum[] = {
    {"billion", "1000000000"}, {"dozen", "12"},        {"first", "1"}, {"half", "0.5"},
    {"hundred", "100"},        {"million", "1000000"}, {"one", "1"},   {"second", "2"},
    {"thousand", "1000"}};

static int guard_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int guard_in(const char *w, const char *const *list, size_t n)
{
    return bsearch(&w, list, n, sizeof *list, guard_cmp_str) != NULL;
}

static int guard_numword_cmp(const void *key, const void *ent)
{
    return strcmp((const char *)key, *(const char *const *)ent);
}

/* Light suffix stemming: possessive, plural, -ing, -ed, -ly, final e. */
static void guard_stem(const char *w, char *out)
{
    size_t n = strlen(w);
    memcpy(out, w, n + 1);
    if (n > 2 && out[n - 2] == '\'' && out[n - 1] == 's')
        out[n -= 2] = 0;
    if (n > 4 && !strcmp(out + n - 3, "ies")) {
        strcpy(out + n - 3, "y");
        n -= 2;
    } else if (n > 4 && !strcmp(out + n - 4, "sses")) {
        out[n -= 2] = 0;
    } else if (n > 3 && out[n - 1] == 's' && out[n - 2] != 's' && out[n - 2] != 'u' &&
               out[n - 2] != 'i') {
        out[--n] = 0;
    }
    if (n > 5 && !strcmp(out + n - 3, "ing"))
        out[n -= 3] = 0;
    else if (n > 4 && !strcmp(out + n - 2, "ed"))
        out[n -= 2] = 0;
    else if (n > 4 && !strcmp(out + n - 2, "ly"))
        out[n -= 2] = 0;
    if (n > 3 && out[n - 1] == 'e')
        out[--n] = 0;
    /* Collapse a doubled final consonant left by -ing/-ed ("running"). */
    if (n > 3 && out[n - 1] == out[n - 2] && !strchr("aeiouls", out[n - 1]))
        out[--n] = 0;
}

/* Canonical number for a token, or 0 when it is not one. */
static int guard_number(const words_tok *t, char *out)
{
    unsigned from = 0;
    if (t->w[0] == 'v' && isdigit((unsigned char)t->w[1]))
        from = 1; /* a version: "v2.10.0" is "2.10.0" */
    if ((t->flags & WORDS_NUM) || from) {
        size_t k = 0;
        for (unsigned i = from; i < t->wl && k + 1 < WORDS_TOK_MAX; i++) {
            char c = t->w[i];
            if (isdigit((unsigned char)c) || c == '.')
                out[k++] = c;
            else if (c != ',')
                break;
        }
        out[k] = 0;
        /* "05" == "5"; keep "0" and "0.5". */
        char *p = out;
        while (p[0] == '0' && isdigit((unsigned char)p[1]))
            p++;
        memmove(out, p, strlen(p) + 1);
        return k > 0;
    }
    const struct {
        const char *w;
        const char *d;
    } *e = bsearch(t->w, guard_numwords, sizeof guard_numwords / sizeof guard_numwords[0],
                   sizeof guard_numwords[0], guard_numword_cmp);
    if (e) {
        strcpy(out, e->d);
        return 1;
    }
    e = bsearch(t->w, guard_weaknum, sizeof guard_weaknum / sizeof guard_weaknum[0],
                sizeof guard_weaknum[0], guard_numword_cmp);
    if (!e)
        return 0;
    strcpy(out, e->d);
    return 2;
}

static int guard_is_negation(const char *w, size_t wl)
{
    if (guard_in(w, guard_negations, sizeof guard_negations / sizeof guard_negations[0]))
        return 1;
    if (wl > 3 && !strcmp(w + wl - 3, "n't"))
        return 1;
    static const char *const bare[] = {"arent",    "cant",  "couldnt", "didnt",  "doesnt",
                                       "dont",     "hadnt", "hasnt",   "havent", "isnt",
                                       "shouldnt", "wasnt", "werent",  "wont",   "wouldnt"};
    return guard_in(w, bare, sizeof bare / sizeof bare[0]);
}

static void guard_prepare(const char *s, size_t len, guard_text *g)
{
    if (len > GUARD_TEXT_MAX)
        len = GUARD_TEXT_MAX;
    g->n = 0;
    g->negated = 0;
    size_t pos = 0;
    words_tok t;
    unsigned caps = 0, alpha = 0;
    while (g->n < GUARD_TOKENS_MAX && words_next(s, len, &pos, &t)) {
        guard_word *w = &g->w[g->n++];
        w->flags = t.flags;
        w->covered = 0;
        memcpy(w->word, t.w, t.wl + 1);
        size_t nc = 0;
        for (size_t k = 0; k < t.len && nc + 1 < sizeof w->caps; k++)
            if (isupper((unsigned char)s[t.off + k]))
                w->caps[nc++] = (char)tolower((unsigned char)s[t.off + k]);
        w->caps[nc] = 0;
        w->num[0] = 0;
        w->neg = guard_is_negation(t.w, t.wl);
        w->stop = guard_in(t.w, guard_stop, sizeof guard_stop / sizeof guard_stop[0]);
        int nk = guard_number(&t, w->num);
        w->weak = nk == 2;
        if (nk)
            w->stop = 1; /* numbers have their own check */
        /* Not a negation: "whether or not", an opening "No, ...", "no." for number. */
        if (w->neg && !strcmp(t.w, "not") && g->n >= 2 && !strcmp(g->w[g->n - 2].word, "or"))
            w->neg = 0;
        if (w->neg && !strcmp(t.w, "no")) {
            char next = t.off + t.len < len ? s[t.off + t.len] : '.';
            if (((t.flags & WORDS_SENTSTART) && next == ',') || next == '.' || next == '?')
                w->neg = 0;
        }
        g->negated |= w->neg;
        /* "U.S." -> one acronym "us". */
        if (g->n >= 2 && t.wl == 1 && isupper((unsigned char)s[t.off]) && t.off >= 2 &&
            s[t.off - 1] == '.') {
            guard_word *pw = &g->w[g->n - 2];
            size_t pl = strlen(pw->word);
            if (pl < 6 && pw->caps[0] && strlen(pw->caps) == pl && pl + 1 < sizeof pw->caps) {
                pw->word[pl] = t.w[0];
                pw->word[pl + 1] = 0;
                strcpy(pw->caps, pw->word);
                pw->flags |= WORDS_ALLCAPS;
                g->n--;
                continue;
            }
        }
        guard_stem(t.w, w->stem);
        if (!(t.flags & WORDS_NUM) && isalpha((unsigned char)t.w[0])) {
            alpha++;
            if ((t.flags & WORDS_CAP) && !w->stop)
                caps++;
        }
    }
    /* Title Case (most content words capitalised): capitals carry no signal. */
    int title = alpha >= 3 && caps * 2 > alpha;
    for (unsigned i = 0; i < g->n; i++) {
        guard_word *w = &g->w[i];
        unsigned f = w->flags;
        int ent = 0;
        if (f & (WORDS_ALLCAPS | WORDS_MIXED))
            ent = 1;
        else if ((f & WORDS_ALNUM) && !w->num[0])
            ent = 1;
        else if ((f & WORDS_CAP) && !(f & WORDS_SENTSTART) && !title)
            ent = 1;
        if (w->stop || w->neg || (w->num[0] && !(f & WORDS_ALNUM)))
            ent = 0;
        if (!strcmp(w->stem, "i"))
            ent = 0;
        w->entity = ent;
    }
}

/* One adjacent transposition, insertion or deletion apart ("Qoura" ~
 * "Quora"); both at least 5 bytes. Substitutions are not forgiven: they
 * turn names into other names. */
static int guard_typo(const char *x, const char *y)
{
    size_t xl = strlen(x), yl = strlen(y);
    if (xl < 5 || yl < 5)
        return 0;
    if (xl == yl) {
        size_t i = 0;
        while (i < xl && x[i] == y[i])
            i++;
        return i + 1 < xl && x[i] == y[i + 1] && x[i + 1] == y[i] && !strcmp(x + i + 2, y + i + 2);
    }
    if (xl + 1 == yl || yl + 1 == xl) {
        const char *lo = xl < yl ? x : y, *hi = xl < yl ? y : x;
        size_t i = 0;
        while (lo[i] && lo[i] == hi[i])
            i++;
        return !strcmp(lo + i, hi + i + 1);
    }
    return 0;
}

/* Does w occur in g: same stem or spelling, one a short extension of the
 * other ("Python" ~ "Pythonic", "INSTALLATIO" ~ "installation"), or the
 * concatenation of two or three consecutive words ("HuggingFace")? */
static int guard_occurs(const guard_text *x, unsigned xi, const guard_text *g)
{
    const guard_word *w = &x->w[xi];
    size_t wl = strlen(w->word);
    /* w is half of a compound written as one word on the other side
     * ("Hugging Face" ~ "Huggingface"). */
    for (int side = 0; side < 2; side++) {
        if ((side == 0 && xi == 0) || (side == 1 && xi + 1 >= x->n))
            continue;
        char cat[2 * WORDS_TOK_MAX];
        const guard_word *l = side ? w : &x->w[xi - 1], *r = side ? &x->w[xi + 1] : w;
        snprintf(cat, sizeof cat, "%s%s", l->word, r->word);
        for (unsigned i = 0; i < g->n; i++)
            if (!strcmp(g->w[i].word, cat))
                return 1;
    }
    for (unsigned i = 0; i < g->n; i++) {
        const guard_word *o = &g->w[i];
        if (!strcmp(o->stem, w->stem) || !strcmp(o->word, w->word) || guard_typo(o->word, w->word))
            return 1;
        size_t ol = strlen(o->word);
        size_t lo = ol < wl ? ol : wl, hi = ol < wl ? wl : ol;
        if (lo >= 4 && hi - lo <= 3 && !strncmp(o->word, w->word, lo))
            return 1;
        if (lo >= 2 && hi - lo == 1 && !strncmp(o->word, w->word, lo) &&
            (o->flags & WORDS_ALLCAPS) && (w->flags & WORDS_ALLCAPS))
            return 1; /* "US" ~ "USA" */
        if (ol < wl && !strncmp(o->word, w->word, ol)) {
            size_t at = ol;
            for (unsigned k = i + 1; k < g->n && k < i + 3 && at < wl; k++) {
                size_t kl = strlen(g->w[k].word);
                if (strncmp(g->w[k].word, w->word + at, kl))
                    break;
                at += kl;
            }
            if (at == wl)
                return 1;
        }
    }
    return 0;
}

/* Mark words of y that spell out an acronym of x ("HF" ~ "Hugging Face",
 * "JS" ~ "JavaScript"), and the acronym itself. */
static void guard_cover(guard_text *x, guard_text *y)
{
    for (unsigned i = 0; i < x->n; i++) {
        guard_word *a = &x->w[i];
        size_t n = strlen(a->word);
        if (!(a->flags & WORDS_ALLCAPS) || n < 2 || n > 6)
            continue;
        for (unsigned j = 0; j < y->n; j++) {
            if (strlen(y->w[j].caps) >= 2 && !strcmp(y->w[j].caps, a->word) &&
                !(y->w[j].flags & WORDS_ALLCAPS)) {
                y->w[j].covered = a->covered = 1;
                continue;
            }
            if (j + n > y->n)
                continue;
            size_t k = 0;
            while (k < n && y->w[j + k].word[0] == a->word[k])
                k++;
            if (k == n) {
                for (k = 0; k < n; k++)
                    y->w[j + k].covered = 1;
                a->covered = 1;
            }
        }
    }
}

/* ---- lexicon: base forms and synonyms -------------------------------- */

/* Look up the sense ids of every word of g that is not a stop word, a
 * negation or a number, once, into g's pool (llmc_lexicon_senses). */
static void guard_senses(const llmc_guard_params *p, guard_text *g)
{
    g->npool = 0;
    for (unsigned i = 0; i < g->n; i++) {
        guard_word *w = &g->w[i];
        w->syn = (uint16_t)g->npool;
        w->nsyn = 0;
        if (!p->lexicon || w->stop || w->neg || w->num[0])
            continue;
        size_t room = GUARD_SENSE_POOL - g->npool;
        if (room > LLMC_LEXICON_IDS_MAX)
            room = LLMC_LEXICON_IDS_MAX;
        w->nsyn = (uint16_t)llmc_lexicon_senses(p->lexicon, w->word, p->lexicon_senses,
                                                g->pool + g->npool, room);
        g->npool += w->nsyn;
    }
}

/* Do words x and y share an id; with bases_only, a base form ("training"
 * / "train", "TESTING" / "test")? Both id lists are sorted. */
static int guard_share(const guard_text *gx, const guard_word *x, const guard_text *gy,
                       const guard_word *y, int bases_only)
{
    const uint32_t *a = gx->pool + x->syn, *b = gy->pool + y->syn;
    size_t na = x->nsyn, nb = y->nsyn;
    if (!bases_only)
        return llmc_lexicon_share(a, na, b, nb);
    /* Base ids have the top bit set, so they sort last: share from there. */
    while (na && !(a[0] & LLMC_LEXICON_BASE))
        a++, na--;
    while (nb && !(b[0] & LLMC_LEXICON_BASE))
        b++, nb--;
    return llmc_lexicon_share(a, na, b, nb);
}

/* Does word i of x occur in y as another form of the same lemma? */
static int guard_same_lemma(const guard_text *x, unsigned i, const guard_text *y)
{
    for (unsigned j = 0; x->w[i].nsyn && j < y->n; j++)
        if (guard_share(x, &x->w[i], y, &y->w[j], 1))
            return 1;
    return 0;
}

/* Does a synonym of content word i of x (by the lexicon) occur among y's
 * content words? Names and numbers have no synonyms: "Denali" is not
 * "Anchorage" however close WordNet files them; a name only matches
 * another form of itself ("GEESE" / "GOOSE"). */
static int guard_synonym(const guard_text *x, unsigned i, const guard_text *y)
{
    const guard_word *w = &x->w[i];
    if (!w->nsyn)
        return 0;
    if (w->entity)
        return guard_same_lemma(x, i, y);
    for (unsigned j = 0; j < y->n; j++) {
        const guard_word *o = &y->w[j];
        if (!o->entity && guard_share(x, w, y, o, 0))
            return 1;
    }
    return 0;
}

/* Entities of a missing from b. */
static int guard_missing(const guard_text *a, const guard_text *b)
{
    int missing = 0;
    for (unsigned i = 0; i < a->n; i++) {
        const guard_word *w = &a->w[i];
        if (w->entity && !w->covered && !guard_occurs(a, i, b) && !guard_same_lemma(a, i, b))
            missing++;
    }
    return missing;
}

/* The first entity of a missing from b ("" when none). */
static const char *guard_first_missing(const guard_text *a, const guard_text *b)
{
    for (unsigned i = 0; i < a->n; i++) {
        const guard_word *w = &a->w[i];
        if (w->entity && !w->covered && !guard_occurs(a, i, b) && !guard_same_lemma(a, i, b))
            return w->word;
    }
    return "";
}

/* A slot substitution: the two texts are one template with a different
 * filler ("rehab center in Denali County" / "in Anchorage County", "best
 * milkshakes" / "best curly fries"). Align the common prefix and suffix of
 * the word sequences; if they cover most of both texts and each side's
 * middle is short and holds a content word, the texts ask about different
 * things. Paraphrases reorder their words, so they rarely align this way. */
static int guard_slot(const llmc_guard_params *p, const guard_text *a, const guard_text *b)
{
    int max_fill = p->max_slot_fill;
    unsigned na = a->n, nb = b->n, pre = 0, q = 0;
    while (pre < na && pre < nb && !strcmp(a->w[pre].stem, b->w[pre].stem))
        pre++;
    while (q < na - pre && q < nb - pre && !strcmp(a->w[na - 1 - q].stem, b->w[nb - 1 - q].stem))
        q++;
    unsigned ma = na - pre - q, mb = nb - pre - q;
    if (!ma || !mb || ma > (unsigned)max_fill || mb > (unsigned)max_fill)
        return 0;
    unsigned longer = na > nb ? na : nb;
    if ((pre + q) * 10 < longer * 6)
        return 0;
    /* A filler word counts when it is a content word the other side lacks
     * (spelling variants and spelled-out acronyms do not count). */
    int ca = 0, cb = 0;
    for (unsigned i = pre; i < pre + ma; i++)
        ca |= !a->w[i].stop && !a->w[i].neg && !a->w[i].covered && !guard_occurs(a, i, b) &&
              !guard_synonym(a, i, b);
    for (unsigned i = pre; i < pre + mb; i++)
        cb |= !b->w[i].stop && !b->w[i].neg && !b->w[i].covered && !guard_occurs(b, i, a) &&
              !guard_synonym(b, i, a);
    return ca && cb;
}

/* 1 when the sets of numbers of a and b are equal; with one_sided, also
 * when only one side has numbers (an added detail, not another value). */
static int guard_numbers_agree(const guard_text *a, const guard_text *b, int one_sided)
{
    if (one_sided) {
        int ha = 0, hb = 0;
        for (unsigned i = 0; i < a->n; i++)
            ha |= a->w[i].num[0] && !a->w[i].weak;
        for (unsigned i = 0; i < b->n; i++)
            hb |= b->w[i].num[0] && !b->w[i].weak;
        if (!ha || !hb)
            return 1;
    }
    for (int dir = 0; dir < 2; dir++) {
        const guard_text *x = dir ? b : a, *y = dir ? a : b;
        for (unsigned i = 0; i < x->n; i++) {
            if (!x->w[i].num[0] || x->w[i].weak)
                continue;
            int found = 0;
            for (unsigned j = 0; j < y->n && !found; j++)
                found = !strcmp(x->w[i].num, y->w[j].num);
            if (!found)
                return 0;
        }
    }
    /* Ambiguous words need not match a missing number, but two that both
     * sides use and that differ ("the first president" / "the second
     * president") are different values. */
    int wa = 0, wb = 0, common = 0;
    for (unsigned i = 0; i < a->n; i++) {
        if (!a->w[i].num[0] || !a->w[i].weak)
            continue;
        wa++;
        for (unsigned j = 0; j < b->n && !common; j++)
            common = !strcmp(a->w[i].num, b->w[j].num);
    }
    for (unsigned j = 0; j < b->n; j++)
        wb += b->w[j].num[0] && b->w[j].weak;
    return !(wa && wb && !common);
}

/* Words that ask the opposite of each other in the questions people put to
 * support bots and assistants ("turn on dark mode" / "turn off ..."), which
 * sentence embeddings place at cosine 0.95 and more. Matched on the word or
 * its stem, each side having one and lacking the other. */
static const char *const guard_opposites[][2] = {
    {"on", "off"},
    {"enable", "disable"},
    {"enabled", "disabled"},
    {"open", "close"},
    {"opened", "closed"},
    {"start", "stop"},
    {"increase", "decrease"},
    {"increase", "reduce"},
    {"upgrade", "downgrade"},
    {"add", "remove"},
    {"subscribe", "unsubscribe"},
    {"lock", "unlock"},
    {"mute", "unmute"},
    {"pin", "unpin"},
    {"sync", "unsync"},
    {"connect", "disconnect"},
    {"import", "export"},
    {"upload", "download"},
    {"login", "logout"},
    {"buy", "sell"},
    {"first", "last"},
    {"before", "after"},
    {"minimum", "maximum"},
    {"min", "max"},
    {"largest", "smallest"},
    {"biggest", "smallest"},
    {"highest", "lowest"},
    {"tallest", "shortest"},
    {"longest", "shortest"},
    {"hot", "cold"},
    {"freezing", "boiling"},
    {"win", "lose"},
    {"accept", "reject"},
    {"allow", "block"},
    {"show", "hide"},
    {"install", "uninstall"},
    {"encrypt", "decrypt"},
    {"join", "leave"},
    {"restore", "delete"},
    {"recover", "delete"},
    {"archive", "unarchive"},
    {"positive", "negative"},
    {"best", "worst"},
    {"advantage", "disadvantage"},
    {"pros", "cons"},
    {"male", "female"},
    {"true", "false"},
    {"cheapest", "expensive"},
};

/* x has word w (as written, lowercased, or as its stem). */
static int guard_has_word(const guard_text *x, const char *w)
{
    for (unsigned i = 0; i < x->n; i++)
        if (!strcmp(x->w[i].word, w) || !strcmp(x->w[i].stem, w))
            return 1;
    return 0;
}

/* The first opposite pair one text has a side of and the other the other
 * side of; its index, or -1. */
static int guard_opposite(const guard_text *a, const guard_text *b)
{
    for (size_t i = 0; i < sizeof guard_opposites / sizeof *guard_opposites; i++) {
        const char *x = guard_opposites[i][0], *y = guard_opposites[i][1];
        int ax = guard_has_word(a, x), ay = guard_has_word(a, y);
        int bx = guard_has_word(b, x), by = guard_has_word(b, y);
        if ((ax && !ay && by && !bx) || (ay && !ax && bx && !by))
            return (int)i;
    }
    return -1;
}

/* The first number of x that y lacks, firm ones first ("" when none). */
static const char *guard_first_number(const guard_text *x, const guard_text *y)
{
    for (unsigned i = 0; i < 2 * x->n; i++) {
        const guard_word *w = &x->w[i % x->n];
        if (!w->num[0] || w->weak != (i >= x->n))
            continue;
        int found = 0;
        for (unsigned j = 0; j < y->n && !found; j++)
            found = !strcmp(w->num, y->w[j].num);
        if (!found)
            return w->num;
    }
    return "";
}

/* The first negation word of x ("" when none). */
static const char *guard_first_negation(const guard_text *x)
{
    for (unsigned i = 0; i < x->n; i++)
        if (x->w[i].neg)
            return x->w[i].word;
    return "";
}

/* Word i of x is a content word (not a stop word, not a negation, with a
 * stem) whose stem did not already occur earlier in x. */
static int guard_distinct_content(const guard_text *x, unsigned i)
{
    const guard_word *w = &x->w[i];
    if (w->stop || w->neg || !w->stem[0])
        return 0;
    for (unsigned k = 0; k < i; k++)
        if (!x->w[k].stop && !strcmp(x->w[k].stem, w->stem))
            return 0;
    return 1;
}

/* Dice coefficient of the distinct content stems (a synonym counts as
 * common). 1 when both are empty. */
static double guard_overlap(const guard_text *a, const guard_text *b)
{
    unsigned na = 0, nb = 0, common = 0;
    for (int dir = 0; dir < 2; dir++) {
        const guard_text *x = dir ? b : a, *y = dir ? a : b;
        for (unsigned i = 0; i < x->n; i++) {
            const guard_word *w = &x->w[i];
            if (!guard_distinct_content(x, i))
                continue;
            if (dir == 0) {
                na++;
                int found = 0;
                for (unsigned j = 0; j < y->n && !found; j++)
                    found = !y->w[j].stop && !strcmp(y->w[j].stem, w->stem);
                common += found || guard_synonym(x, i, y);
            } else {
                nb++;
            }
        }
    }
    if (na + nb == 0)
        return 1.0;
    return 2.0 * common / (double)(na + nb);
}

/* ---- vocabulary ------------------------------------------------------ */

static uint64_t guard_fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* -logp of piece s[0..n), or a negative value when it is not a piece. */
static double guard_piece(const llmc_guard_vocab *v, const char *s, size_t n)
{
    size_t j = guard_fnv(s, n) & v->mask;
    while (v->slots[j]) {
        const char *p = v->arena + v->slots[j] - 1;
        if (!strncmp(p, s, n) && p[n] == 0)
            return v->cost[j];
        j = (j + 1) & v->mask;
    }
    return -1.0;
}

llmc_guard_vocab *llmc_guard_vocab_load(const char *path, int *err)
{
    int e = LLMC_EINVAL;
    llmc_guard_vocab *v = NULL;
    json_error_t je;
    json_t *root = path ? json_load_file(path, 0, &je) : NULL;
    if (!root) {
        e = path && access(path, R_OK) == 0 ? LLMC_EINVAL : LLMC_EIO; /* bad JSON / unreadable */
        goto fail;
    }
    if (!json_is_array(root) || json_array_size(root) == 0 || json_array_size(root) > (1u << 24))
        goto fail;
    size_t n = json_array_size(root), bytes = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(root, i);
        if (!json_is_array(pair) || !json_is_string(json_array_get(pair, 0)))
            goto fail;
        bytes += strlen(json_string_value(json_array_get(pair, 0))) + 1;
    }
    if (bytes >= UINT32_MAX)
        goto fail;
    e = LLMC_ENOMEM;
    v = calloc(1, sizeof *v);
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    if (!v || !(v->arena = malloc(bytes)) || !(v->slots = calloc(cap, sizeof *v->slots)) ||
        !(v->cost = calloc(cap, sizeof *v->cost)))
        goto fail;
    v->mask = cap - 1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(root, i);
        const char *piece = json_string_value(json_array_get(pair, 0));
        json_t *jl = json_array_get(pair, 1);
        double lp = json_is_number(jl) ? json_number_value(jl) : 0.0;
        size_t pl = strlen(piece);
        if (pl == 0 || pl > GUARD_PIECE_MAX || lp >= 0)
            continue; /* control and user symbols (logp 0 or null) never segment a word */
        if (guard_piece(v, piece, pl) >= 0)
            continue; /* first spelling wins */
        memcpy(v->arena + at, piece, pl + 1);
        size_t j = guard_fnv(piece, pl) & v->mask;
        while (v->slots[j])
            j = (j + 1) & v->mask;
        v->slots[j] = (uint32_t)at + 1;
        v->cost[j] = (float)-lp;
        at += pl + 1;
    }
    json_decref(root);
    return v;
fail:
    json_decref(root);
    llmc_guard_vocab_free(v);
    if (err)
        *err = e;
    return NULL;
}

void llmc_guard_vocab_free(llmc_guard_vocab *v)
{
    if (!v)
        return;
    free(v->arena);
    free(v->slots);
    free(v->cost);
    free(v);
}

double llmc_guard_vocab_rarity(const llmc_guard_vocab *v, const char *word, size_t len)
{
    if (!v || !word || !len)
        return 0.0;
    char s[3 + 64];
    if (len > 64)
        len = 64;
    memcpy(s, "\xe2\x96\x81", 3); /* U+2581, SentencePiece's word start */
    for (size_t i = 0; i < len; i++)
        s[3 + i] = (char)tolower((unsigned char)word[i]);
    size_t n = 3 + len;
    double best[3 + 64 + 1];
    best[0] = 0;
    for (size_t i = 1; i <= n; i++) {
        best[i] = best[i - 1] + GUARD_UNK_COST;
        for (size_t j = i > GUARD_PIECE_MAX ? i - GUARD_PIECE_MAX : 0; j < i; j++) {
            double c = guard_piece(v, s + j, i - j);
            if (j == 0 && i > 3) {
                /* The first piece may be known only capitalised ("▁YouTube"). */
                s[3] = (char)toupper((unsigned char)s[3]);
                double c2 = guard_piece(v, s, i);
                s[3] = (char)tolower((unsigned char)s[3]);
                if (c2 >= 0 && (c < 0 || c2 < c))
                    c = c2;
            }
            if (c >= 0 && best[j] + c < best[i])
                best[i] = best[j] + c;
        }
    }
    return best[n];
}

/* Rarity-weighted share of the content words of a and b (distinct stems,
 * no stop words, numbers or negations) that the other side lacks; 0 when
 * neither has content. */
static double guard_unmatched(const llmc_guard_params *p, const guard_text *a, const guard_text *b,
                              llmc_guard_result *out)
{
    const llmc_guard_vocab *v = p->vocab;
    double total = 0, missing = 0;
    for (int dir = 0; dir < 2; dir++) {
        double side_total = total, side_missing = missing;
        const guard_text *x = dir ? b : a, *y = dir ? a : b;
        for (unsigned i = 0; i < x->n; i++) {
            const guard_word *w = &x->w[i];
            if (!guard_distinct_content(x, i))
                continue;
            double wt = v ? llmc_guard_vocab_rarity(v, w->word, strlen(w->word)) : 1.0;
            total += wt;
            if (!w->covered && !guard_occurs(x, i, y) && !guard_synonym(x, i, y))
                missing += wt;
        }
        out->content[dir] = total - side_total;
        out->lacked[dir] = missing - side_missing;
    }
    return total > 0 ? missing / total : 0.0;
}

llmc_guard_params llmc_guard_default_params(void)
{
    llmc_guard_params p;
    memset(&p, 0, sizeof p);
    p.numbers = 1;
    p.negation = 1;
    p.entities = 1;
    p.max_entity_missing = 0;
    p.max_slot_fill = 2;
    p.min_overlap = 0.40;
    p.relax_cosine = 2.0;
    p.max_unmatched = 1.0; /* off here; the semantic tier turns it on (0.40) */
    p.vocab = NULL;
    p.lexicon = NULL;
    p.lexicon_senses = 3;
    p.long_words = 0;
    return p;
}

int llmc_guard_check(const llmc_guard_params *p, const char *query, size_t qlen, const char *cand,
                     size_t clen, double cosine, llmc_guard_result *out)
{
    if (!out)
        return LLMC_EINVAL;
    memset(out, 0, sizeof *out);
    out->reason = "invalid";
    if (!query || !cand)
        return LLMC_EINVAL;
    llmc_guard_params d = llmc_guard_default_params();
    if (!p)
        p = &d;
    guard_text a, b;
    guard_prepare(query, qlen, &a);
    guard_prepare(cand, clen, &b);
    guard_senses(p, &a);
    guard_senses(p, &b);

    /* Long statements reword freely: "eliminates the need for coding" is
     * "without writing any code". There a lone negation or a number on one
     * side only does not decide; content words do. */
    int lng = p->long_words > 0 && a.n >= p->long_words && b.n >= p->long_words;
    if (p->numbers && !guard_numbers_agree(&a, &b, lng))
        out->rejected |= LLMC_GUARD_NUMBER;
    if (p->negation && a.negated != b.negated && !lng)
        out->rejected |= LLMC_GUARD_NEGATION;
    int opp = p->negation ? guard_opposite(&a, &b) : -1;
    if (opp >= 0)
        out->rejected |= LLMC_GUARD_OPPOSITE;
    guard_cover(&a, &b);
    guard_cover(&b, &a);
    int ma = guard_missing(&a, &b), mb = guard_missing(&b, &a);
    out->entity_missing = ma + mb;
    /* A substitution (each side names something the other does not) is
     * never tolerated; an added detail on one side up to the limit. */
    if (p->entities && ((ma && mb) || ma + mb > p->max_entity_missing))
        out->rejected |= LLMC_GUARD_ENTITY;
    if (p->max_slot_fill > 0 && guard_slot(p, &a, &b))
        out->rejected |= LLMC_GUARD_SLOT;
    out->overlap = guard_overlap(&a, &b);
    int relaxed = !isnan(cosine) && cosine >= p->relax_cosine;
    if (p->min_overlap > 0 && !relaxed && out->overlap < p->min_overlap)
        out->rejected |= LLMC_GUARD_OVERLAP;

    out->unmatched = guard_unmatched(p, &a, &b, out);
    if (p->max_unmatched < 1.0 && out->unmatched > p->max_unmatched)
        out->rejected |= LLMC_GUARD_UNMATCHED;

    out->accept = out->rejected == 0;
    out->reason = (out->rejected & LLMC_GUARD_NUMBER)      ? "number"
                  : (out->rejected & LLMC_GUARD_NEGATION)  ? "negation"
                  : (out->rejected & LLMC_GUARD_OPPOSITE)  ? "opposite"
                  : (out->rejected & LLMC_GUARD_ENTITY)    ? "entity"
                  : (out->rejected & LLMC_GUARD_SLOT)      ? "substitution"
                  : (out->rejected & LLMC_GUARD_OVERLAP)   ? "overlap"
                  : (out->rejected & LLMC_GUARD_UNMATCHED) ? "unmatched"
                                                           : "ok";
    /* The detail a user sees: query's side first, then the candidate's. */
    if (out->rejected & LLMC_GUARD_NUMBER) {
        const char *x = guard_first_number(&a, &b), *y = guard_first_number(&b, &a);
        snprintf(out->detail, sizeof out->detail, "number %.24s vs %.24s", *x ? x : "none",
                 *y ? y : "none");
    } else if (out->rejected & LLMC_GUARD_NEGATION) {
        const char *x = guard_first_negation(a.negated ? &a : &b);
        snprintf(out->detail, sizeof out->detail, "negation '%.24s' on one side only", x);
    } else if (out->rejected & LLMC_GUARD_OPPOSITE) {
        int q0 = guard_has_word(&a, guard_opposites[opp][0]);
        snprintf(out->detail, sizeof out->detail, "opposite %s vs %s",
                 guard_opposites[opp][q0 ? 0 : 1], guard_opposites[opp][q0 ? 1 : 0]);
    } else if (out->rejected & LLMC_GUARD_ENTITY) {
        const char *x = guard_first_missing(&a, &b), *y = guard_first_missing(&b, &a);
        snprintf(out->detail, sizeof out->detail, "entity %.24s vs %.24s", *x ? x : "none",
                 *y ? y : "none");
    } else if (!out->accept) {
        snprintf(out->detail, sizeof out->detail, "%s", out->reason);
    }
    return 0;
}

int llmc_guard_langs(const char **out, int max)
{
    if (!out && max > 0)
        return LLMC_EINVAL;
    if (max > 0)
        out[0] = GUARD_LISTS_LANG;
    return 1;
}
