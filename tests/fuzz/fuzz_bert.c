/*
 * fuzz_bert.c — libFuzzer target: the BERT-family model loader
 * (src/embed_bert.c) — config.json, tokenizer.json or vocab.txt, and the
 * safetensors header and tensors — on arbitrary files. The input is split
 * at "\n==\n" into config.json, the tokenizer file and model.safetensors;
 * the first byte of the tokenizer part picks tokenizer.json ('{') or
 * vocab.txt. A model that loads embeds one text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void put(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, len, f);
        fclose(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/llmc-fuzz-bert-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    const uint8_t *part[3] = {d, NULL, NULL};
    size_t len[3] = {n, 0, 0};
    for (int i = 0; i < 2 && part[i]; i++) {
        const uint8_t *sep = memmem(part[i], len[i], "\n==\n", 4);
        if (!sep)
            break;
        part[i + 1] = sep + 4;
        len[i + 1] = len[i] - (size_t)(sep - part[i]) - 4;
        len[i] = (size_t)(sep - part[i]);
    }
    const char *names[] = {"config.json", "tokenizer.json", "vocab.txt", "model.safetensors"};
    for (int i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    put(dir, "config.json", part[0], len[0]);
    if (part[1])
        put(dir, len[1] && part[1][0] == '{' ? "tokenizer.json" : "vocab.txt", part[1], len[1]);
    if (part[2])
        put(dir, "model.safetensors", part[2], len[2]);
    llmc_embed_params p = llmc_embed_default_params();
    p.backend = "bert";
    p.model_path = dir;
    int err = 0;
    llmc_embedder *e = llmc_embedder_new(&p, &err);
    if (e) {
        size_t dim = llmc_embedder_dim(e);
        float *out = malloc((dim ? dim : 1) * sizeof *out);
        if (out)
            llmc_embed(e, "hello world", 11, out);
        free(out);
        llmc_embedder_free(e);
    }
    return 0;
}
