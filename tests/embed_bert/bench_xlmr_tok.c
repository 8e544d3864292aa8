/*
 * bench_xlmr_tok.c — XLM-R tokenisation: our tokenizer.json reader
 * (embed_unigram.c) against Debian's libsentencepiece (embed_spmlib.cc, the
 * baseline) in the same run.
 *
 *     bench_xlmr_tok REF_DIR        (make bench-xlmr-tok)
 *
 * REF_DIR is what tests/embed_bert/make_xlmr_ref.py writes (the target runs
 * it when missing): the SentencePiece model spm.model trained on six
 * scripts, its HF tokenizer.json (in xlmr-json-f16/) and ref.json's 3,002
 * test texts. Each side tokenises all the texts ROUNDS times, best of 3
 * runs; the ids of both must agree on every text (else exit 1). Prints the
 * machine, texts, bytes, pieces in the vocabulary, MB/s of each and the
 * ratio. The vocabulary is small (about 1,200 pieces against XLM-R's
 * 250,000), which favours neither side much: both find matches by walking
 * from each character, ours by hashing, the library's by a double-array trie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../../bench/cpu.h"
#include "embed_spmlib.h"
#include "embed_unigram.h"
#include "llmcache.h"

#define ROUNDS 5
#define MAXIDS 65536

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Tokenise every text; returns the ids' checksum. */
static uint64_t run(embed_unigram *u, embed_spmlib *s, json_t *texts, int32_t *ids)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *t = json_array_get(texts, i);
        size_t n = 0;
        if (u)
            embed_unigram_encode(u, json_string_value(t), json_string_length(t), ids, MAXIDS, &n);
        else
            embed_spmlib_encode(s, json_string_value(t), json_string_length(t), ids, MAXIDS, &n);
        for (size_t j = 0; j < n; j++) /* the library's ids in fairseq's numbering */
            sum = sum * 31 + (uint64_t)(u ? ids[j] : ids[j] == 0 ? 3 : ids[j] + 1);
    }
    return sum;
}

static double best_of_3(embed_unigram *u, embed_spmlib *s, json_t *texts, int32_t *ids,
                        uint64_t *sum)
{
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
        double t0 = now_s();
        for (int r = 0; r < ROUNDS; r++)
            *sum = run(u, s, texts, ids);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_xlmr_tok REF_DIR\n");
        return 2;
    }
    char path[1024], cpu[512];
    snprintf(path, sizeof path, "%s/ref.json", argv[1]);
    json_t *ref = json_load_file(path, 0, NULL);
    snprintf(path, sizeof path, "%s/xlmr-json-f16/tokenizer.json", argv[1]);
    json_t *tj = json_load_file(path, 0, NULL);
    json_t *texts = json_object_get(json_object_get(ref, "tok"), "texts");
    if (!json_array_size(texts) || !tj) {
        fprintf(stderr, "bench_xlmr_tok: no reference in %s (make_xlmr_ref.py writes it)\n",
                argv[1]);
        return 1;
    }
    int err = 0;
    embed_unigram *u = embed_unigram_from_json(tj, &err);
    snprintf(path, sizeof path, "%s/spm.model", argv[1]);
    embed_spmlib *s = embed_spmlib_load(path, &err);
    int32_t *ids = malloc(MAXIDS * sizeof *ids);
    if (!u || !s || !ids) {
        fprintf(stderr, "bench_xlmr_tok: cannot load the tokenizers: %s\n", llmc_strerror(err));
        return 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < json_array_size(texts); i++)
        bytes += json_string_length(json_array_get(texts, i));
    bench_cpu_model(cpu, sizeof cpu);
    printf("machine: cpu=%s; one thread\n", cpu);
    printf("command: bench_xlmr_tok %s\n", argv[1]);
    printf("%zu texts, %.2f MB, %zu pieces; each side %d rounds, best of 3\n",
           json_array_size(texts), (double)bytes / 1e6, embed_unigram_size(u), ROUNDS);
    uint64_t su = 0, ss = 0;
    double tu = best_of_3(u, NULL, texts, ids, &su);
    double ts = best_of_3(NULL, s, texts, ids, &ss);
    double mb = (double)bytes * ROUNDS / 1e6;
    printf("%-34s %8.1f MB/s %8.2f us/text\n", "libsentencepiece (.model, baseline)", mb / ts,
           ts / ROUNDS / (double)json_array_size(texts) * 1e6);
    printf("%-34s %8.1f MB/s %8.2f us/text\n", "embed_unigram (tokenizer.json)", mb / tu,
           tu / ROUNDS / (double)json_array_size(texts) * 1e6);
    printf("ratio: embed_unigram is %.2fx libsentencepiece's speed; ids %s\n", ts / tu,
           su == ss ? "identical" : "DIFFER");
    embed_unigram_free(u);
    embed_spmlib_free(s);
    free(ids);
    json_decref(tj);
    json_decref(ref);
    return su == ss ? 0 : 1;
}
