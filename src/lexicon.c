/*
 * lexicon.c — which English words mean the same thing: WordNet synonyms
 * and base forms, for the semantic guard.
 *
 * Why
 *   The guard (guard.c) counts the content words one question has and the
 *   other lacks. A reworded paraphrase ("utilize" / "use", "acquire" /
 *   "get", "swift" / "fast", "assessing" / "evaluate") then looks as
 *   different as a question about another thing ("Denali" / "Anchorage").
 *   WordNet (Princeton, packaged by Debian as wordnet-base) knows which
 *   words share a sense, and which inflected form has which base.
 *
 * Design
 *   llmc_lexicon_load reads the four index files (index.noun, .verb, .adj,
 *   .adv: "lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt
 *   offset...", offsets ordered by sense frequency) and the exception
 *   lists (noun.exc ...: "inflected base..."), into two sorted arrays over
 *   one string arena, searched by bsearch: no hashing to tune; WordNet
 *   3.0's 147,000 lemmas load in about 50 ms into about 5 MB. A synset is named by
 *   pos << 28 | byte offset in data.POS (every data file is below 256 MB).
 *   llmc_lexicon_senses gives a word's sense ids: for each part of speech,
 *   its base forms (the word itself, its exception entries, and WordNet's
 *   "morphy" suffix rules: "-ies" -> "-y", "-ing" -> "", ...) that the
 *   index knows, and of each the first max_senses synsets — the most
 *   frequent; rare senses make everything a synonym of everything ("run"
 *   has 57). The guard takes 3: on the development pairs 6, 10 and 20
 *   senses each served a few more GPTCache paraphrases and let more QQP
 *   near-misses through. Adjectives' "similar to" links ("quick" /
 *   "fast") live in the data files and are not read. Each base form adds an id of its own (the
 * lemma's index with the top bit set), so "applied" and "apply" share one even where no synset
 * joins them. Two words are related when their sorted id lists intersect.
 *
 * Invariants
 *   Immutable once loaded: share it between threads. Words are looked up
 *   as given (the guard lowercases them); multi-word lemmas ("ice_cream")
 *   are loaded but only ever matched by a word spelled with underscores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmcache.h"
#include "util.h"

#define LEX_WORD_MAX 64 /* longer words are not looked up */
#define LEX_BASE_ID LLMC_LEXICON_BASE

typedef struct {
    uint32_t name;  /* offset of the lemma in the arena */
    uint32_t syn;   /* first synset id in the pool */
    uint32_t syn_n; /* ids, grouped by part of speech, each by frequency */
} lex_lemma;

typedef struct {
    uint32_t name; /* inflected form */
    uint32_t base; /* its base form */
    uint32_t pos;
} lex_exc;

struct llmc_lexicon {
    char *arena;
    size_t arena_len, arena_cap;
    lex_lemma *lemmas;
    size_t nlemmas, cap_lemmas;
    uint32_t *pool;
    size_t npool, cap_pool;
    lex_exc *exc;
    size_t nexc, cap_exc;
};

static const char *const lex_pos_name[4] = {"noun", "verb", "adj", "adv"};

static long lex_intern(llmc_lexicon *lx, const char *s, size_t n)
{
    if (llmc_grow((void **)&lx->arena, &lx->arena_cap, lx->arena_len + n + 1, 1))
        return -1;
    long at = (long)lx->arena_len;
    memcpy(lx->arena + at, s, n);
    lx->arena[at + (long)n] = '\0';
    lx->arena_len += n + 1;
    return at;
}

/* A loaded lemma record before merging: one per (lemma, part of speech). */
typedef struct {
    uint32_t name, syn, syn_n, pos;
} lex_raw;

static int lex_raw_cmp(const void *a, const void *b, void *arena)
{
    const lex_raw *x = a, *y = b;
    int c = strcmp((const char *)arena + x->name, (const char *)arena + y->name);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int lex_exc_cmp(const void *a, const void *b, void *arena)
{
    const lex_exc *x = a, *y = b;
    int c = strcmp((const char *)arena + x->name, (const char *)arena + y->name);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Parse one index.POS file into raw records; synset ids go to the pool. */
static int lex_read_index(llmc_lexicon *lx, const char *dir, uint32_t pos, lex_raw **raw,
                          size_t *nraw, size_t *cap_raw)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/index.%s", dir, lex_pos_name[pos]);
    FILE *f = fopen(path, "r");
    if (!f)
        return LLMC_EIO;
    char line[16384];
    int rc = 0;
    size_t records = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == ' ') /* licence header */
            continue;
        char *save = NULL, *tok[8];
        char *lemma = strtok_r(line, " \n", &save);
        char *p = strtok_r(NULL, " \n", &save);
        char *synset_cnt = strtok_r(NULL, " \n", &save);
        char *p_cnt = strtok_r(NULL, " \n", &save);
        if (!lemma || !p || !synset_cnt || !p_cnt) {
            rc = LLMC_EINVAL;
            break;
        }
        long nsyn = strtol(synset_cnt, NULL, 10), nptr = strtol(p_cnt, NULL, 10);
        if (nsyn <= 0 || nsyn > 1000 || nptr < 0 || nptr > 100) {
            rc = LLMC_EINVAL;
            break;
        }
        for (long i = 0; i < nptr; i++)
            if (!strtok_r(NULL, " \n", &save)) {
                rc = LLMC_EINVAL;
                break;
            }
        tok[0] = strtok_r(NULL, " \n", &save); /* sense_cnt */
        tok[1] = strtok_r(NULL, " \n", &save); /* tagsense_cnt */
        if (rc || !tok[0] || !tok[1]) {
            rc = LLMC_EINVAL;
            break;
        }
        long at = lex_intern(lx, lemma, strlen(lemma));
        if (at < 0 || llmc_grow((void **)raw, cap_raw, *nraw + 1, sizeof **raw) ||
            llmc_grow((void **)&lx->pool, &lx->cap_pool, lx->npool + (size_t)nsyn,
                      sizeof *lx->pool)) {
            rc = LLMC_ENOMEM;
            break;
        }
        lex_raw *r = &(*raw)[(*nraw)++];
        r->name = (uint32_t)at;
        r->syn = (uint32_t)lx->npool;
        r->syn_n = 0;
        r->pos = pos;
        for (long i = 0; i < nsyn; i++) {
            char *o = strtok_r(NULL, " \n", &save), *end = NULL;
            unsigned long off = o ? strtoul(o, &end, 10) : 0;
            if (!o || *end || off >= (1ul << 28)) {
                rc = LLMC_EINVAL;
                break;
            }
            lx->pool[lx->npool++] = pos << 28 | (uint32_t)off;
            r->syn_n++;
        }
        if (rc)
            break;
        records++;
    }
    if (!rc && ferror(f))
        rc = LLMC_EIO;
    fclose(f);
    if (!rc && records == 0)
        rc = LLMC_EINVAL;
    return rc;
}

/* Parse one POS.exc file ("inflected base [base...]"); absent is fine. */
static int lex_read_exc(llmc_lexicon *lx, const char *dir, uint32_t pos)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.exc", dir, lex_pos_name[pos]);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : LLMC_EIO;
    char line[4096];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        char *save = NULL;
        char *word = strtok_r(line, " \n", &save), *base;
        if (!word)
            continue;
        long wat = lex_intern(lx, word, strlen(word));
        while (wat >= 0 && (base = strtok_r(NULL, " \n", &save))) {
            long bat = lex_intern(lx, base, strlen(base));
            if (bat < 0 ||
                llmc_grow((void **)&lx->exc, &lx->cap_exc, lx->nexc + 1, sizeof *lx->exc)) {
                rc = LLMC_ENOMEM;
                break;
            }
            lx->exc[lx->nexc++] = (lex_exc){(uint32_t)wat, (uint32_t)bat, pos};
        }
        if (wat < 0)
            rc = LLMC_ENOMEM;
    }
    fclose(f);
    return rc;
}

llmc_lexicon *llmc_lexicon_load(const char *dir, int *err)
{
    llmc_lexicon *lx = calloc(1, sizeof *lx);
    lex_raw *raw = NULL;
    size_t nraw = 0, cap_raw = 0;
    uint32_t *pool = NULL;
    int rc = lx ? 0 : LLMC_ENOMEM;
    for (uint32_t pos = 0; !rc && pos < 4; pos++)
        rc = lex_read_index(lx, dir, pos, &raw, &nraw, &cap_raw);
    for (uint32_t pos = 0; !rc && pos < 4; pos++)
        rc = lex_read_exc(lx, dir, pos);
    if (rc)
        goto fail;
    qsort_r(raw, nraw, sizeof *raw, lex_raw_cmp, lx->arena); /* nraw > 0: empty is refused */
    if (lx->nexc)
        qsort_r(lx->exc, lx->nexc, sizeof *lx->exc, lex_exc_cmp, lx->arena);
    /* Merge the records of one lemma (one per part of speech, in order)
     * into one lemma whose ids are contiguous in a new pool. */
    pool = malloc((lx->npool ? lx->npool : 1) * sizeof *pool);
    lx->lemmas = malloc((nraw ? nraw : 1) * sizeof *lx->lemmas);
    if (!pool || !lx->lemmas) {
        rc = LLMC_ENOMEM;
        goto fail;
    }
    size_t np = 0;
    for (size_t i = 0; i < nraw;) {
        lex_lemma *l = &lx->lemmas[lx->nlemmas++];
        l->name = raw[i].name;
        l->syn = (uint32_t)np;
        size_t j = i;
        while (j < nraw && !strcmp(lx->arena + raw[j].name, lx->arena + l->name)) {
            memcpy(pool + np, lx->pool + raw[j].syn, raw[j].syn_n * sizeof *pool);
            np += raw[j].syn_n;
            j++;
        }
        l->syn_n = (uint32_t)(np - l->syn);
        i = j;
    }
    free(lx->pool);
    lx->pool = pool;
    lx->npool = np;
    free(raw);
    return lx;
fail:
    free(raw);
    free(pool);
    llmc_lexicon_free(lx);
    if (err)
        *err = rc;
    return NULL;
}

int llmc_lexicon_present(const char *dir)
{
    char probe[4096];
    if (!dir || !*dir || snprintf(probe, sizeof probe, "%s/index.noun", dir) >= (int)sizeof probe)
        return 0;
    return access(probe, R_OK) == 0;
}

void llmc_lexicon_free(llmc_lexicon *lx)
{
    if (!lx)
        return;
    free(lx->arena);
    free(lx->lemmas);
    free(lx->pool);
    free(lx->exc);
    free(lx);
}

size_t llmc_lexicon_count(const llmc_lexicon *lx)
{
    return lx ? lx->nlemmas : 0;
}

static const lex_lemma *lex_find(const llmc_lexicon *lx, const char *w)
{
    size_t lo = 0, hi = lx->nlemmas;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w, lx->arena + lx->lemmas[mid].name);
        if (!c)
            return &lx->lemmas[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Does lemma l have senses in part of speech pos? */
static int lex_has_pos(const llmc_lexicon *lx, const lex_lemma *l, uint32_t pos)
{
    for (uint32_t i = 0; i < l->syn_n; i++)
        if (lx->pool[l->syn + i] >> 28 == pos)
            return 1;
    return 0;
}

typedef struct {
    uint32_t *ids;
    size_t n, cap;
} lex_out;

static void lex_put(lex_out *o, uint32_t id)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->ids[i] == id)
            return;
    if (o->n < o->cap)
        o->ids[o->n++] = id;
}

/* Add base form b (as a part of speech pos reading of the word): its own
 * id and its first max_senses synsets of that part of speech. */
static void lex_add_base(const llmc_lexicon *lx, const char *b, uint32_t pos, int max_senses,
                         lex_out *o)
{
    const lex_lemma *l = lex_find(lx, b);
    if (!l || !lex_has_pos(lx, l, pos))
        return;
    lex_put(o, LEX_BASE_ID | (uint32_t)(l - lx->lemmas));
    int taken = 0;
    for (uint32_t i = 0; i < l->syn_n && taken < max_senses; i++) {
        uint32_t id = lx->pool[l->syn + i];
        if (id >> 28 != pos)
            continue;
        lex_put(o, id);
        taken++;
    }
}

/* WordNet's detachment rules per part of speech: suffix -> replacement. */
static const struct {
    uint32_t pos;
    const char *suf, *rep;
} lex_rules[] = {
    {0, "s", ""},      {0, "ses", "s"},   {0, "xes", "x"}, {0, "zes", "z"}, {0, "ches", "ch"},
    {0, "shes", "sh"}, {0, "men", "man"}, {0, "ies", "y"}, {1, "s", ""},    {1, "ies", "y"},
    {1, "es", "e"},    {1, "es", ""},     {1, "ed", "e"},  {1, "ed", ""},   {1, "ing", "e"},
    {1, "ing", ""},    {2, "er", ""},     {2, "est", ""},  {2, "er", "e"},  {2, "est", "e"},
};

static int lex_id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

size_t llmc_lexicon_senses(const llmc_lexicon *lx, const char *word, int max_senses, uint32_t *ids,
                           size_t cap)
{
    size_t wl = word ? strlen(word) : 0;
    if (!lx || !wl || wl >= LEX_WORD_MAX || !ids || !cap)
        return 0;
    lex_out o = {ids, 0, cap};
    for (uint32_t pos = 0; pos < 4; pos++) {
        lex_add_base(lx, word, pos, max_senses, &o);
        /* Exceptions: "went" -> "go", "geese" -> "goose". */
        lex_exc key = {0, 0, pos};
        size_t lo = 0, hi = lx->nexc;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(word, lx->arena + lx->exc[mid].name);
            if (!c)
                c = key.pos < lx->exc[mid].pos ? -1 : key.pos > lx->exc[mid].pos;
            if (c <= 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        for (size_t i = lo;
             i < lx->nexc && lx->exc[i].pos == pos && !strcmp(word, lx->arena + lx->exc[i].name);
             i++)
            lex_add_base(lx, lx->arena + lx->exc[i].base, pos, max_senses, &o);
        for (size_t r = 0; r < sizeof lex_rules / sizeof lex_rules[0]; r++) {
            if (lex_rules[r].pos != pos)
                continue;
            size_t sl = strlen(lex_rules[r].suf), rl = strlen(lex_rules[r].rep);
            if (wl <= sl + 1 || strcmp(word + wl - sl, lex_rules[r].suf))
                continue;
            char b[LEX_WORD_MAX + 8];
            memcpy(b, word, wl - sl);
            memcpy(b + wl - sl, lex_rules[r].rep, rl + 1);
            lex_add_base(lx, b, pos, max_senses, &o);
        }
    }
    qsort(ids, o.n, sizeof *ids, lex_id_cmp);
    return o.n;
}

int llmc_lexicon_share(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t i = 0, j = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j])
            return 1;
        if (a[i] < b[j])
            i++;
        else
            j++;
    }
    return 0;
}

int llmc_lexicon_related(const llmc_lexicon *lx, const char *a, const char *b, int max_senses)
{
    uint32_t x[LLMC_LEXICON_IDS_MAX], y[LLMC_LEXICON_IDS_MAX];
    size_t nx = llmc_lexicon_senses(lx, a, max_senses, x, LLMC_LEXICON_IDS_MAX);
    size_t ny = llmc_lexicon_senses(lx, b, max_senses, y, LLMC_LEXICON_IDS_MAX);
    return llmc_lexicon_share(x, nx, y, ny);
}
