/*
 * fuzz_lexicon.c — libFuzzer target: the WordNet loader (src/lexicon.c) on
 * arbitrary index and exception files. The input is split at "\n==\n" into
 * index.noun, index.verb, noun.exc and verb.exc; a lexicon that loads is
 * asked for senses and relations.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/llmc-fuzz-lex-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    const char *names[] = {"index.noun", "index.verb", "noun.exc", "verb.exc"};
    const uint8_t *p = d;
    size_t left = n;
    for (int i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        const uint8_t *sep = p ? memmem(p, left, "\n==\n", 4) : NULL;
        size_t l = sep ? (size_t)(sep - p) : left;
        FILE *f = fopen(path, "wb");
        if (f) {
            if (p)
                fwrite(p, 1, l, f);
            fclose(f);
        }
        if (sep) {
            left -= l + 4;
            p = sep + 4;
        } else {
            p = NULL;
            left = 0;
        }
    }
    int err = 0;
    llmc_lexicon *lx = llmc_lexicon_load(dir, &err);
    if (lx) {
        uint32_t s[8];
        llmc_lexicon_senses(lx, "dog", 8, s, 8);
        llmc_lexicon_related(lx, "dogs", "cat", 4);
        llmc_lexicon_free(lx);
    }
    return 0;
}
