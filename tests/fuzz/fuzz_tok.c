/*
 * fuzz_tok.c — libFuzzer target: the built-in encoder's SentencePiece
 * tokenizer (src/embed_tok.c): its model file loader on arbitrary bytes
 * and, when one loads, encoding arbitrary text. The input is split at its
 * first "\n--\n": the vocabulary file, then the text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed_tok.h"
#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char path[256];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/llmc-fuzz-tok-%d", (int)getpid());
    const uint8_t *sep = memmem(d, n, "\n--\n", 4);
    size_t vl = sep ? (size_t)(sep - d) : n;
    const char *text = sep ? (const char *)sep + 4 : "hello world";
    size_t tl = sep ? n - vl - 4 : 11;
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(d, 1, vl, f);
    fclose(f);
    int err = 0;
    embed_tok *t = embed_tok_load(path, 6, &err);
    if (t) {
        int32_t ids[512];
        size_t got = 0;
        embed_tok_encode(t, text, tl, ids, 512, &got);
        embed_tok_free(t);
    }
    unlink(path);
    return 0;
}
