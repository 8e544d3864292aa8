/*
 * test_lexicon.c — WordNet synonyms and base forms (src/lexicon.c).
 *
 * A small WordNet written to a temporary directory pins the rules (shared
 * synsets, the sense limit, suffix rules, exception lists, the licence
 * header) and every way a directory can be wrong; the real database from
 * Debian's wordnet-base, when installed, checks the pairs the guard relies
 * on and the ones it must never join.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmcache.h"
#include "unit.h"

static char dir[256];

static void put(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static void rm(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* A WordNet in miniature, in the real format: a licence header whose lines
 * start with a space, then "lemma pos synset_cnt p_cnt ptr... sense_cnt
 * tagsense_cnt offset...". */
static void write_mini(void)
{
    put("index.noun", "  1 This software and database is being provided\n"
                      "  2 under a licence.\n"
                      "auto n 1 1 @ 1 0 02958343  \n"
                      "car n 2 2 @ ~ 2 1 02958343 02959942  \n"
                      "go n 1 0 1 0 05000001  \n"
                      "goose n 1 1 @ 1 0 01855672  \n"
                      "ice_cream n 1 0 1 0 07614500  \n");
    put("index.verb", "employ v 1 1 @ 1 1 01158872  \n"
                      "function v 1 0 1 0 00000033  \n"
                      "go v 1 0 1 1 01835496  \n"
                      "run v 3 2 @ ~ 3 3 00000011 00000022 00000033  \n"
                      "try v 1 0 1 0 00000044  \n"
                      "use v 2 1 @ 2 2 01158872 01165043  \n");
    put("index.adj", "fast a 2 1 & 2 1 00976508 00311663  \n"
                     "swift a 1 1 & 1 0 00976508  \n");
    put("index.adv", "fast r 1 0 1 0 00086000  \n");
    put("verb.exc", "went go\n");
    put("noun.exc", "geese goose\n");
}

static void test_mini(void)
{
    int err = 0;
    write_mini();
    llmc_lexicon *lx = llmc_lexicon_load(dir, &err);
    CHECK(lx != NULL);
    if (!lx)
        return;
    /* "fast" is in two files, "go" in two: one lemma each. */
    CHECK_EQ_INT(llmc_lexicon_count(lx), 12);
    /* A shared synset, across files ("use"/"employ" are verbs only). */
    CHECK(llmc_lexicon_related(lx, "car", "auto", 3));
    CHECK(llmc_lexicon_related(lx, "use", "employ", 3));
    CHECK(llmc_lexicon_related(lx, "swift", "fast", 3));
    CHECK(!llmc_lexicon_related(lx, "car", "use", 3));
    /* Suffix rules: "employed", "employing", "uses", "cars", "swifter". */
    CHECK(llmc_lexicon_related(lx, "employed", "use", 3));
    CHECK(llmc_lexicon_related(lx, "employing", "uses", 3));
    CHECK(llmc_lexicon_related(lx, "cars", "auto", 3));
    CHECK(llmc_lexicon_related(lx, "swifter", "fast", 3));
    /* A rule applies only where the index knows the base in that part of
     * speech: "autos" is a noun plural, "autoed" no verb. */
    CHECK(llmc_lexicon_related(lx, "autos", "car", 3));
    CHECK(!llmc_lexicon_related(lx, "autoed", "car", 3));
    /* Exceptions give the base form: "went" is "go", "geese" "goose". */
    CHECK(llmc_lexicon_related(lx, "went", "go", 3));
    CHECK(llmc_lexicon_related(lx, "geese", "goose", 0));
    /* The sense limit: "function" is the third sense of "run". */
    CHECK(!llmc_lexicon_related(lx, "run", "function", 2));
    CHECK(llmc_lexicon_related(lx, "run", "function", 3));
    /* With no senses at all, only the base form joins words. */
    CHECK(!llmc_lexicon_related(lx, "car", "auto", 0));
    CHECK(llmc_lexicon_related(lx, "cars", "car", 0));
    /* Unknown, empty, NULL, too long: nothing, no crash. */
    uint32_t ids[LLMC_LEXICON_IDS_MAX];
    CHECK_EQ_INT(llmc_lexicon_senses(lx, "zzzz", 3, ids, LLMC_LEXICON_IDS_MAX), 0);
    CHECK_EQ_INT(llmc_lexicon_senses(lx, "", 3, ids, LLMC_LEXICON_IDS_MAX), 0);
    CHECK_EQ_INT(llmc_lexicon_senses(lx, NULL, 3, ids, LLMC_LEXICON_IDS_MAX), 0);
    CHECK_EQ_INT(llmc_lexicon_senses(NULL, "car", 3, ids, LLMC_LEXICON_IDS_MAX), 0);
    char longw[200];
    memset(longw, 'a', sizeof longw - 1);
    longw[sizeof longw - 1] = 0;
    CHECK_EQ_INT(llmc_lexicon_senses(lx, longw, 3, ids, LLMC_LEXICON_IDS_MAX), 0);
    /* Ids come sorted, the base form's with LLMC_LEXICON_BASE set, and cap
     * is honoured. */
    size_t n = llmc_lexicon_senses(lx, "run", 3, ids, LLMC_LEXICON_IDS_MAX);
    CHECK_EQ_INT(n, 4);
    int sorted = 1, bases = 0;
    for (size_t i = 0; i < n; i++) {
        sorted &= i == 0 || ids[i - 1] < ids[i];
        bases += (ids[i] & LLMC_LEXICON_BASE) != 0;
    }
    CHECK(sorted);
    CHECK_EQ_INT(bases, 1);
    CHECK_EQ_INT(llmc_lexicon_senses(lx, "run", 3, ids, 2), 2);
    /* Multi-word lemmas are only ever met spelled with underscores. */
    CHECK(llmc_lexicon_senses(lx, "ice_cream", 3, ids, LLMC_LEXICON_IDS_MAX) > 0);
    CHECK_EQ_INT(llmc_lexicon_senses(lx, "ice", 3, ids, LLMC_LEXICON_IDS_MAX), 0);
    llmc_lexicon_free(lx);
    llmc_lexicon_free(NULL);
}

static void expect_fail(int code, const char *what)
{
    int err = 0;
    llmc_lexicon *lx = llmc_lexicon_load(dir, &err);
    CHECK(lx == NULL);
    if (lx || err != code)
        fprintf(stderr, "  (%s: err %d, want %d)\n", what, err, code);
    CHECK_EQ_INT(err, code);
    llmc_lexicon_free(lx);
}

static void test_bad_dirs(void)
{
    int err = 0;
    CHECK(!llmc_lexicon_present("/nonexistent/wordnet"));
    CHECK(!llmc_lexicon_present(NULL) && !llmc_lexicon_present(""));
    write_mini();
    CHECK(llmc_lexicon_present(dir));
    CHECK(llmc_lexicon_load("/nonexistent/wordnet", &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EIO);

    write_mini();
    rm("index.adv");
    expect_fail(LLMC_EIO, "an index file missing");

    write_mini();
    put("index.verb", "");
    expect_fail(LLMC_EINVAL, "an empty index file");

    write_mini();
    put("index.noun", "this is not wordnet at all\n");
    expect_fail(LLMC_EINVAL, "prose");

    write_mini();
    put("index.noun", "car n 2 0 2 1 02958343\n"); /* says 2 synsets, gives 1 */
    expect_fail(LLMC_EINVAL, "a truncated line");

    write_mini();
    put("index.noun", "car n 1 0 1 0 0295x343\n");
    expect_fail(LLMC_EINVAL, "an offset that is no number");

    write_mini();
    put("index.noun", "car n 1 0 1 0 999999999\n");
    expect_fail(LLMC_EINVAL, "an offset beyond 2^28");

    write_mini();
    put("index.noun", "car n -3 0 1 0 02958343\n");
    expect_fail(LLMC_EINVAL, "a negative count");

    /* The exception lists are optional. */
    write_mini();
    rm("verb.exc");
    rm("noun.exc");
    llmc_lexicon *lx = llmc_lexicon_load(dir, &err);
    CHECK(lx != NULL);
    if (lx) {
        CHECK(!llmc_lexicon_related(lx, "went", "go", 3));
        CHECK(llmc_lexicon_related(lx, "employed", "use", 3));
    }
    llmc_lexicon_free(lx);
}

/* The real WordNet 3.0 (Debian: wordnet-base). */
static void test_wordnet(void)
{
    int err = 0;
    llmc_lexicon *lx = llmc_lexicon_load(LLMC_LEXICON_DIR, &err);
    if (!lx) {
        printf("skip: no WordNet in %s (%s); scripts/deps.sh installs wordnet-base\n",
               LLMC_LEXICON_DIR, llmc_strerror(err));
        return;
    }
    CHECK(llmc_lexicon_count(lx) > 140000);
    int senses = llmc_guard_default_params().lexicon_senses;
    /* Rewordings the guard must accept. */
    static const char *const same[][2] = {
        {"utilize", "use"},    {"employed", "used"},   {"assessing", "evaluate"},
        {"acquire", "get"},    {"quantity", "amount"}, {"training", "train"},
        {"children", "child"}, {"select", "choose"},   {"incorporate", "integrate"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int r = llmc_lexicon_related(lx, same[i][0], same[i][1], senses);
        if (!r)
            fprintf(stderr, "  not related: %s / %s\n", same[i][0], same[i][1]);
        CHECK(r);
    }
    /* Opposites and neighbours that ask different things. */
    static const char *const differ[][2] = {
        {"buy", "sell"},          {"increase", "decrease"}, {"before", "after"},
        {"install", "uninstall"}, {"male", "female"},       {"denali", "anchorage"},
        {"python", "java"},       {"night", "day"},         {"mechanical", "electronic"},
        {"best", "worst"},
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        int r = llmc_lexicon_related(lx, differ[i][0], differ[i][1], senses);
        if (r)
            fprintf(stderr, "  related: %s / %s\n", differ[i][0], differ[i][1]);
        CHECK(!r);
    }
    llmc_lexicon_free(lx);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/llmc-lexicon-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_mini();
    test_bad_dirs();
    test_wordnet();
    static const char *const files[] = {"index.noun", "index.verb", "index.adj", "index.adv",
                                        "noun.exc",   "verb.exc",   "adj.exc",   "adv.exc"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        rm(files[i]);
    rmdir(dir);
    return UNIT_DONE();
}
