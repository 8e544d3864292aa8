/*
 * semantic.c — the semantic tier: similar questions, same answer, safely.
 *
 * Design. The index (hnsw.c) holds one vector per stored entry, labelled by
 * the first 8 bytes of the entry's exact key (llmc_key_label) and filed
 * under the entry's partition, so a search never leaves the partition: two
 * requests whose tenant, model, system prompt, sampling or earlier turns
 * differ cannot meet. A lookup takes the k nearest candidates, walks them
 * best first while their cosine is at or above the threshold, fetches each
 * from the store (it may have expired or been evicted since), skips
 * exact-only entries, vectors of another model and candidates at or below
 * the entry's learned floor (llmc_entry_semantic_floor: raised when a
 * sampled re-ask found the entry answering such a query differently), and
 * asks the guard
 * (guard.c) whether the candidate's question and the new one agree on
 * numbers, negation, named entities and content words (weighted by their
 * rarity in the encoder's vocabulary, loaded once from vocab_path). Two
 * more rules sit on top:
 *   - short texts need more: the threshold grows by short_boost when the
 *     shorter of the two texts has at most short_words words, sliding
 *     linearly to nothing at long_words. In a short question the shared
 *     words dominate the embedding, so "what causes dizziness when you lay
 *     down" and "... at night" stay above 0.95 although they ask different
 *     things, while long paraphrases that reword freely fall to 0.85.
 *   - ambiguity: if a second, different question also passes and its
 *     cosine is within margin of the best's, nothing is served. The cache
 *     cannot tell which one was meant (GPTCache's data holds near-copies of
 *     one statement with different answers), and a miss costs less than a
 *     wrong answer.
 * Otherwise the best candidate that passes is served.
 *
 * Defaults, measured with tools/llmcached-semantic-eval on the development
 * pairs (README and mk/semantic.mk have the commands and the table): the
 * issue's two bars pull apart. GPTCache's mock pairs are long reworded
 * statements that need a threshold near 0.80 to be served at all; QQP's
 * negatives are short questions differing in one detail that pass 0.90
 * easily. One set of defaults was chosen to keep wrong hits within both
 * bars (<= 2% on GPTCache, <= 10% on QQP with >= 20% of duplicates served),
 * at the price of GPTCache's hit rate: threshold 0.84, short_boost 0.10
 * over 12..20 words, margin 0.02, guard max_unmatched 0.40 with WordNet
 * synonyms (3 senses) and the long-text rule at 20 words. Measured:
 * GPTCache 65.2% served, 1.1% of hits wrong (plain cosine at the same
 * share: ~4%); QQP first 2,000 pairs 24.5% of duplicates, 9.6% wrong
 * (plain: ~25%). On the first 6,000 QQP pairs (a fuller index, more near
 * neighbours) the same defaults give 24.5% and 15.9% wrong (plain: ~28%):
 * much of what remains is QQP label noise or a one-word detail no lexical
 * rule here separates from a paraphrase. The two bars cannot both be met
 * with USE-lite: GPTCache alone reaches 84% served at 2% wrong (threshold
 * 0.70, no short-text boost, no unmatched check), but the short GPTCache
 * statements it then needs sit at cosine 0.84-0.94 beside QQP pairs of
 * which a third are wrong, and no feature measured (rarity, per-side
 * unmatched weight, shared names, a logistic model over the two vectors
 * trained on other QQP pairs, a learned projection) told them apart.
 * A cosine threshold alone cannot make a cache safe; the guard and these
 * rules carry the precision, the threshold the recall.
 *
 * Cost: the guard tokenizes both texts (a few microseconds), looks each
 * content word up in the vocabulary (a Viterbi over its pieces, about a
 * microsecond) and in WordNet (a few bsearches), for at most k candidates:
 * search + decision 0.04 ms p50 on QQP, 0.16 ms on GPTCache's long texts.
 *
 * Locking: the index has its own lock (hnsw.c); the store its own. A lookup
 * never holds the index lock while calling the store, and the store calls
 * llmc_semantic_remove with its lock held, so the order is store → index.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "llmcache.h"
#include "words.h"

#define SEMANTIC_MAX_K 16
#define SEMANTIC_VOCAB "data/models/use-lite/vocab.json"

struct llmc_semantic {
    llmc_semantic_params p;
    llmc_hnsw *index;
    char *model;
    llmc_guard_vocab *vocab; /* owned; p.guard_params.vocab points to it */
    llmc_lexicon *lexicon;   /* owned; p.guard_params.lexicon points to it */
};

/* Words in s[0..len) (policy tokenizer), counted up to 255. */
static unsigned semantic_words(const char *s, size_t len)
{
    size_t pos = 0;
    unsigned n = 0;
    words_tok t;
    while (n < 255 && words_next(s, len, &pos, &t))
        n++;
    return n;
}

/* The threshold for a pair whose shorter text has n words. */
static double semantic_threshold(const llmc_semantic_params *p, double base, unsigned n)
{
    if (p->short_boost <= 0 || n >= p->long_words)
        return base;
    if (n <= p->short_words || p->long_words <= p->short_words)
        return base + p->short_boost;
    return base + p->short_boost * (double)(p->long_words - n) /
                      (double)(p->long_words - p->short_words);
}

/* Same text after ASCII case and whitespace folding? */
static int semantic_same_text(const char *a, size_t al, const char *b, size_t bl)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < al && isspace((unsigned char)a[i]))
            i++;
        while (j < bl && isspace((unsigned char)b[j]))
            j++;
        if (i == al || j == bl)
            return i == al && j == bl;
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[j]))
            return 0;
        int sa = i + 1 < al && isspace((unsigned char)a[i + 1]);
        int sb = j + 1 < bl && isspace((unsigned char)b[j + 1]);
        if (sa != sb)
            return 0;
        i++;
        j++;
    }
}

llmc_semantic_params llmc_semantic_default_params(void)
{
    llmc_semantic_params p;
    memset(&p, 0, sizeof p);
    p.threshold = 0.84;
    p.k = 4;
    p.ef = 64;
    p.guard = 1;
    p.guard_params = llmc_guard_default_params();
    p.guard_params.max_unmatched = 0.40;
    p.guard_params.long_words = 20;
    p.index = llmc_hnsw_default_params();
    p.index.dim = 512;
    p.margin = 0.02;
    p.short_boost = 0.10;
    p.short_words = 12;
    p.long_words = 20;
    p.vocab_path = SEMANTIC_VOCAB;
    p.lexicon_dir = LLMC_LEXICON_DIR;
    return p;
}

llmc_semantic *llmc_semantic_new(const llmc_semantic_params *p, int *err)
{
    llmc_semantic *sem = calloc(1, sizeof *sem);
    int e = LLMC_ENOMEM;
    if (!sem)
        goto fail;
    sem->p = p ? *p : llmc_semantic_default_params();
    if (sem->p.k == 0 || sem->p.k > SEMANTIC_MAX_K)
        sem->p.k = sem->p.k ? SEMANTIC_MAX_K : 4;
    sem->model = strdup(sem->p.index.model ? sem->p.index.model : "");
    if (!sem->model)
        goto fail;
    sem->index = llmc_hnsw_new(&sem->p.index, &e);
    if (!sem->index)
        goto fail;
    sem->p.vocab_path = NULL; /* the caller's string: not kept */
    if (!sem->p.guard_params.vocab && p && p->vocab_path && access(p->vocab_path, R_OK) == 0) {
        sem->vocab = llmc_guard_vocab_load(p->vocab_path, &e);
        if (!sem->vocab)
            goto fail; /* there but unreadable: say so rather than run unweighted */
        sem->p.guard_params.vocab = sem->vocab;
    }
    sem->p.lexicon_dir = NULL;
    if (!sem->p.guard_params.lexicon && p && llmc_lexicon_present(p->lexicon_dir)) {
        sem->lexicon = llmc_lexicon_load(p->lexicon_dir, &e);
        if (!sem->lexicon)
            goto fail; /* there but unreadable: say so rather than run without */
        sem->p.guard_params.lexicon = sem->lexicon;
    }
    return sem;
fail:
    if (sem) {
        llmc_hnsw_free(sem->index);
        llmc_guard_vocab_free(sem->vocab);
        free(sem->model);
    }
    free(sem);
    if (err)
        *err = e;
    return NULL;
}

void llmc_semantic_free(llmc_semantic *sem)
{
    if (!sem)
        return;
    llmc_hnsw_free(sem->index);
    llmc_guard_vocab_free(sem->vocab);
    llmc_lexicon_free(sem->lexicon);
    free(sem->model);
    free(sem);
}

int llmc_semantic_add(llmc_semantic *sem, const llmc_entry_info *e)
{
    if (!e->vec || !e->dim || (e->flags & LLMC_ENTRY_EXACT_ONLY))
        return LLMC_EINVAL;
    if (e->dim != llmc_hnsw_dim(sem->index) || strcmp(e->vec_model ? e->vec_model : "", sem->model))
        return LLMC_EMISMATCH;
    uint64_t part = e->partition == LLMC_HNSW_ANY ? e->partition - 1 : e->partition;
    return llmc_hnsw_add(sem->index, llmc_key_label(e->key), part, e->vec);
}

void llmc_semantic_remove(llmc_semantic *sem, const uint8_t key[LLMC_KEY_LEN])
{
    llmc_hnsw_remove(sem->index, llmc_key_label(key));
}

const llmc_entry_info *llmc_semantic_lookup(llmc_semantic *sem, llmc_store *s, uint64_t partition,
                                            const float *q, const char *query, size_t qlen,
                                            double threshold, int64_t now,
                                            llmc_semantic_result *res)
{
    llmc_semantic_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof *res);
    res->similarity = NAN;
    res->reason = "empty";
    if (threshold < 0)
        threshold = sem->p.threshold;
    if (partition == LLMC_HNSW_ANY)
        partition--;
    uint64_t labels[SEMANTIC_MAX_K];
    float sims[SEMANTIC_MAX_K];
    size_t n = 0;
    if (llmc_hnsw_search(sem->index, q, partition, sem->p.k, sem->p.ef, labels, sims, &n) || !n)
        return NULL;
    res->similarity = sims[0];
    res->reason = "below-threshold";
    unsigned qwords = sem->p.short_boost > 0 ? semantic_words(query, qlen) : 0;
    const llmc_entry_info *best = NULL;
    for (size_t i = 0; i < n && sims[i] >= threshold; i++) {
        if (best && sims[i] < res->similarity - sem->p.margin)
            break; /* every later candidate is further still */
        const llmc_entry_info *e = llmc_store_get_by_label(s, labels[i], now);
        if (!e)
            continue; /* expired or evicted since; its removal is on its way */
        if ((e->flags & LLMC_ENTRY_EXACT_ONLY) || strcmp(e->vec_model, sem->model) != 0) {
            llmc_entry_release(e);
            continue;
        }
        if (sims[i] <= llmc_entry_semantic_floor(e)) {
            /* It answered a query this far away differently before. */
            if (!best)
                res->reason = "learned-floor";
            llmc_entry_release(e);
            continue;
        }
        size_t elen = strlen(e->query);
        if (sem->p.short_boost > 0) {
            unsigned ew = semantic_words(e->query, elen);
            if (sims[i] < semantic_threshold(&sem->p, threshold, ew < qwords ? ew : qwords)) {
                llmc_entry_release(e);
                continue;
            }
        }
        res->candidates++;
        if (sem->p.guard) {
            llmc_guard_result g;
            if (llmc_guard_check(&sem->p.guard_params, query, qlen, e->query, elen, sims[i], &g) ||
                !g.accept) {
                res->guard_rejected++;
                if (!best)
                    res->reason = "guard";
                llmc_entry_release(e);
                continue;
            }
        }
        if (!best) {
            best = e;
            res->similarity = sims[i];
            res->reason = "hit";
            if (sem->p.margin <= 0)
                break;
            continue;
        }
        /* A second question passes, as close as the best: ambiguous. */
        int same = semantic_same_text(best->query, strlen(best->query), e->query, elen);
        llmc_entry_release(e);
        if (same)
            continue;
        llmc_entry_release(best);
        res->reason = "ambiguous";
        return NULL;
    }
    return best;
}

size_t llmc_semantic_count(llmc_semantic *sem)
{
    return llmc_hnsw_count(sem->index);
}

const char *llmc_semantic_model(llmc_semantic *sem)
{
    return sem->model;
}
