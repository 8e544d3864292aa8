/* test_normalize.c — the text the semantic tier embeds: Unicode
 * compatibility forms and case folded, white space collapsed, trailing
 * punctuation dropped, contractions spelled out; invalid UTF-8 refused;
 * idempotent. */
#include "llmcache.h"
#include "unit.h"

/* Normalise s and compare with want. */
static int norm_is(const char *s, const char *want)
{
    char *out = NULL;
    size_t n = 0;
    int rc = llmc_normalize(s, strlen(s), &out, &n);
    int ok = rc == 0 && out && strlen(out) == n && !strcmp(out, want);
    if (!ok)
        fprintf(stderr, "  normalize(\"%s\") = \"%s\" (rc %d), want \"%s\"\n", s,
                out ? out : "(null)", rc, want);
    free(out);
    return ok;
}

int main(void)
{
    /* The example: the lower-case copy of a stored question. */
    CHECK(norm_is("What is the capital of France?", "what is the capital of france"));
    CHECK(norm_is("what is the capital of france", "what is the capital of france"));
    CHECK(norm_is("WHAT IS THE CAPITAL OF FRANCE ?!", "what is the capital of france"));
    /* White space of every kind, at either end and inside. */
    CHECK(norm_is("  how do\tI   reset\n my password ?  ", "how do i reset my password"));
    CHECK(norm_is("no\xc2\xa0"
                  "break space",
                  "no break space")); /* U+00A0 -> space */
    /* Contractions, with plain and typographic apostrophes. */
    CHECK(norm_is("What's the time zone of Paris?", "what is the time zone of paris"));
    CHECK(norm_is("What\xe2\x80\x99s up", "what is up"));
    CHECK(norm_is("I can't log in and it doesn't work", "i cannot log in and it does not work"));
    CHECK(norm_is("Won't it? They're here, we've seen, you'll see, I'm sure, I'd go",
                  "will not it? they are here, we have seen, you will see, i am sure, i would go"));
    /* A possessive is not a contraction. */
    CHECK(norm_is("John's car", "john's car"));
    /* Compatibility forms and full case folding. */
    CHECK(norm_is("\xef\xbc\xa8\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f",
                  "hello")); /* fullwidth */
    CHECK(norm_is("\xef\xac\x81nd the Stra\xc3\x9f"
                  "e",
                  "find the strasse")); /* ﬁ ligature, ß */
    CHECK(norm_is("Caf\xc3\xa9 or Cafe\xcc\x81", "caf\xc3\xa9 or caf\xc3\xa9")); /* é composed */
    /* Punctuation inside stays; trailing ellipses go. */
    CHECK(norm_is("v2.10 vs 3.0\xe2\x80\xa6", "v2.10 vs 3.0"));
    CHECK(norm_is("Why...", "why"));
    /* Nothing but punctuation: empty, not an error. */
    CHECK(norm_is("?!", ""));
    CHECK(norm_is("", ""));
    /* Idempotent. */
    const char *samples[] = {"What's the capital of France?", "  I can't  LOG in!!",
                             "Stra\xc3\x9f"
                             "e"};
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        char *a = NULL, *b = NULL;
        CHECK_EQ_INT(llmc_normalize(samples[i], strlen(samples[i]), &a, NULL), 0);
        CHECK_EQ_INT(llmc_normalize(a, strlen(a), &b, NULL), 0);
        CHECK(a && b && !strcmp(a, b));
        free(a);
        free(b);
    }
    /* A very long token is kept whole, not truncated. */
    char longw[1000];
    memset(longw, 'A', sizeof longw - 1);
    longw[sizeof longw - 1] = 0;
    char *lo = NULL;
    size_t ll = 0;
    CHECK_EQ_INT(llmc_normalize(longw, strlen(longw), &lo, &ll), 0);
    CHECK_EQ_INT(ll, 999);
    CHECK(lo && lo[0] == 'a' && lo[998] == 'a');
    free(lo);
    /* Bad input: a clear error, nothing allocated. */
    char *out = (char *)"untouched";
    CHECK_EQ_INT(llmc_normalize("bad \xff\xfe utf8", 12, &out, NULL), LLMC_EUTF8);
    CHECK(!strcmp(out, "untouched"));
    CHECK_EQ_INT(llmc_normalize("x\xc3", 2, &out, NULL), LLMC_EUTF8); /* truncated sequence */
    CHECK_EQ_INT(llmc_normalize(NULL, 0, &out, NULL), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_normalize("x", 1, NULL, NULL), LLMC_EINVAL);
    return UNIT_DONE();
}
