/*
 * llmcached-embed — embed text from the command line, or evaluate an
 * embedder on labelled sentence pairs.
 *
 *   llmcached-embed [options] < texts          one JSON vector per input line
 *   llmcached-embed --cosine [options] < texts the matrix of pairwise cosines,
 *                                               one JSON row per input line
 *   llmcached-embed --eval FILE [options]      ROC-AUC / Spearman on pairs
 *
 * Options: --backend use|bert|remote, --model-path DIR, --url URL,
 * --model NAME (remote), --query-prefix TEXT (bert), each also under the
 * daemon's name (--embed-backend, --embed-model-path, --embed-url,
 * --embed-model, --embed-query-prefix) so one EMBED="..." string serves
 * the daemon, this tool and `make eval-semantic`, --embed-precision P
 * (use: auto, int8, fp16, fp32; also --precision), --batch N, --threads N,
 * --limit N (eval: first N pairs), --threshold T (eval of
 * gptcache_mock_data.json), --help. The
 * remote backend's key is read from the environment variable
 * LLMC_EMBED_API_KEY, never from the command line.
 *
 * Eval formats, chosen by the file name (see ../shared/data/pairs/README):
 *   *.jsonl                  {"a", "b", "label"}             -> ROC-AUC
 *   mrpc*.tsv                Quality, id, id, s1, s2 (header) -> ROC-AUC
 *   stsb*.tsv                genre, file, year, id, score, s1, s2 -> Spearman
 *   *.json (GPTCache mock)   [{"origin", "similar"}]: each similar queried
 *                            against all origins -> top-1 accuracy and
 *                            right / wrong / miss at --threshold
 * A line or pair whose text cannot be embedded (empty, invalid UTF-8) is
 * reported and left out; the tool says how many.
 *
 * Memory: eval holds every distinct sentence's vector (2 x pairs x 2 KiB at
 * most); the input of the other modes is streamed, except --cosine, which
 * keeps all vectors.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: llmcached-embed [options] < texts      (one JSON vector a line)\n"
               "       llmcached-embed --cosine [options] < texts\n"
               "       llmcached-embed --eval FILE [options]\n"
               "options:\n"
               "  --backend NAME     use (default), bert or remote\n"
               "  --model-path DIR   model directory (use: data/models/use-lite)\n"
               "  --url URL          remote: base URL, e.g. http://127.0.0.1:9000/v1\n"
               "  --model NAME       remote: model name (key from $LLMC_EMBED_API_KEY)\n"
               "  --batch N          texts per embedding call (default 32)\n"
               "  --threads N        compute threads (default 1)\n"
               "  --embed-precision P  use: auto (default), int8, fp16 or fp32 (the reference)\n"
               "  --cosine           print pairwise cosines instead of vectors\n"
               "  --eval FILE        qqp_dev.jsonl, mrpc_train.tsv, stsb_*.tsv or\n"
               "                     gptcache_mock_data.json: ROC-AUC / Spearman\n"
               "  --limit N          eval: use only the first N pairs\n"
               "  --threshold T      eval of gptcache data: hit threshold (default 0.8)\n"
               "  --query-prefix T   bert: text put before every text (default: the\n"
               "                     model's prompt, e.g. E5's \"query: \"; \"\": none)\n"
               "  --embed-backend, --embed-model-path, --embed-url, --embed-model,\n"
               "  --embed-query-prefix: the same options under the daemon's names\n"
               "  --help             this text\n");
}

/* ---- growable arrays ---------------------------------------------------- */

typedef struct {
    char **s;
    size_t n, cap;
} strvec;

static int strvec_push(strvec *v, const char *s, size_t len)
{
    if (v->n == v->cap) {
        size_t c = v->cap ? v->cap * 2 : 256;
        char **q = realloc(v->s, c * sizeof *q);
        if (!q)
            return -1;
        v->s = q;
        v->cap = c;
    }
    char *d = malloc(len + 1);
    if (!d)
        return -1;
    memcpy(d, s, len);
    d[len] = 0;
    v->s[v->n++] = d;
    return 0;
}

static void strvec_free(strvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->s[i]);
    free(v->s);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Embed texts[0..n) into out (n x dim); ok[i] = 1 where it worked. Tries
 * whole batches, then one by one inside a batch that failed. */
static size_t embed_all(llmc_embedder *e, char **texts, size_t n, size_t batch, float *out,
                        unsigned char *ok)
{
    size_t dim = llmc_embedder_dim(e), good = 0;
    size_t *lens = malloc(batch * sizeof *lens);
    for (size_t i = 0; i < n; i += batch) {
        size_t m = n - i < batch ? n - i : batch;
        for (size_t j = 0; j < m; j++)
            lens[j] = strlen(texts[i + j]);
        int rc = llmc_embed_batch(e, (const char *const *)texts + i, lens, m, out + i * dim);
        for (size_t j = 0; j < m; j++) {
            if (rc)
                ok[i + j] = llmc_embed(e, texts[i + j], lens[j], out + (i + j) * dim) == 0;
            else
                ok[i + j] = 1;
            good += ok[i + j];
        }
    }
    free(lens);
    return good;
}

/* ---- statistics ------------------------------------------------------------ */

typedef struct {
    double v;
    size_t i;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return x < y ? -1 : x > y;
}

/* Ranks 1..n of v (ties get their average rank) into r. */
static void rank(const double *v, size_t n, double *r)
{
    ranked *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        t[i].v = v[i];
        t[i].i = i;
    }
    qsort(t, n, sizeof *t, ranked_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && t[j + 1].v == t[i].v)
            j++;
        double avg = (double)(i + j) / 2.0 + 1.0;
        for (size_t k = i; k <= j; k++)
            r[t[k].i] = avg;
        i = j + 1;
    }
    free(t);
}

/* ROC-AUC by the rank-sum (Mann-Whitney) formula; NAN without both classes. */
static double roc_auc(const double *score, const int *label, size_t n)
{
    double *r = malloc(n * sizeof *r);
    rank(score, n, r);
    double pos = 0, neg = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (label[i]) {
            pos++;
            sum += r[i];
        } else {
            neg++;
        }
    }
    free(r);
    if (pos == 0 || neg == 0)
        return NAN;
    return (sum - pos * (pos + 1) / 2) / (pos * neg);
}

static double spearman(const double *a, const double *b, size_t n)
{
    double *ra = malloc(n * sizeof *ra), *rb = malloc(n * sizeof *rb);
    rank(a, n, ra);
    rank(b, n, rb);
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        ma += ra[i];
        mb += rb[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    free(ra);
    free(rb);
    return sab / sqrt(saa * sbb);
}

/* ---- eval ----------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Split line (modified in place) on tabs into at most max fields. */
static size_t split_tabs(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
}

static int eval_file(llmc_embedder *e, const char *path, size_t limit, size_t batch, double thr)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    strvec a = {0}, b = {0};
    double *gold = NULL;
    size_t ngold = 0, capgold = 0;
    int kind; /* 0 auc, 1 spearman, 2 gptcache */
    if (ends_with(base, ".json")) {
        kind = 2;
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!json_is_array(root)) {
            fprintf(stderr, "llmcached-embed: %s: %s\n", path, jerr.text);
            json_decref(root);
            return 1;
        }
        for (size_t i = 0; i < json_array_size(root) && (!limit || a.n < limit); i++) {
            json_t *it = json_array_get(root, i);
            json_t *o = json_object_get(it, "origin"), *s = json_object_get(it, "similar");
            if (!json_is_string(o) || !json_is_string(s))
                continue;
            strvec_push(&a, json_string_value(o), json_string_length(o));
            strvec_push(&b, json_string_value(s), json_string_length(s));
        }
        json_decref(root);
    } else {
        FILE *f = fopen(path, "rb");
        if (!f) {
            perror(path);
            return 1;
        }
        int jsonl = ends_with(base, ".jsonl");
        int stsb = !jsonl && strncmp(base, "stsb", 4) == 0;
        kind = stsb ? 1 : 0;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        size_t lineno = 0;
        while ((len = getline(&line, &cap, f)) >= 0 && (!limit || a.n < limit)) {
            lineno++;
            chomp(line);
            const char *s1 = NULL, *s2 = NULL;
            double g = 0;
            json_t *obj = NULL;
            if (jsonl) {
                json_error_t jerr;
                obj = json_loads(line, 0, &jerr);
                json_t *ja = json_object_get(obj, "a"), *jb = json_object_get(obj, "b");
                json_t *jl = json_object_get(obj, "label");
                if (!json_is_string(ja) || !json_is_string(jb) || !json_is_integer(jl)) {
                    json_decref(obj);
                    continue;
                }
                s1 = json_string_value(ja);
                s2 = json_string_value(jb);
                g = (double)json_integer_value(jl);
            } else {
                char *fl[16];
                size_t nf = split_tabs(line, fl, 16);
                if (stsb) {
                    if (nf < 7)
                        continue;
                    char *end;
                    g = strtod(fl[4], &end);
                    if (end == fl[4])
                        continue;
                    s1 = fl[5];
                    s2 = fl[6];
                } else { /* MRPC: header line, label in column 0 */
                    if (nf < 5 || (fl[0][0] != '0' && fl[0][0] != '1') || fl[0][1])
                        continue;
                    g = fl[0][0] == '1';
                    s1 = fl[3];
                    s2 = fl[4];
                }
            }
            if (ngold == capgold) {
                capgold = capgold ? capgold * 2 : 1024;
                gold = realloc(gold, capgold * sizeof *gold);
            }
            gold[ngold++] = g;
            strvec_push(&a, s1, strlen(s1));
            strvec_push(&b, s2, strlen(s2));
            json_decref(obj);
        }
        free(line);
        fclose(f);
    }
    size_t n = a.n, dim = llmc_embedder_dim(e);
    if (n == 0) {
        fprintf(stderr, "llmcached-embed: no pairs read from %s\n", path);
        return 1;
    }
    float *va = malloc(n * dim * sizeof *va), *vb = malloc(n * dim * sizeof *vb);
    unsigned char *oka = malloc(n), *okb = malloc(n);
    embed_all(e, a.s, n, batch, va, oka);
    embed_all(e, b.s, n, batch, vb, okb);
    size_t used = 0;
    if (kind == 2) {
        size_t top1 = 0, right = 0, wrong = 0, miss = 0;
        for (size_t i = 0; i < n; i++) {
            if (!okb[i] || !oka[i])
                continue;
            used++;
            double best = -2;
            size_t arg = 0;
            for (size_t j = 0; j < n; j++) {
                if (!oka[j])
                    continue;
                double c = dot(vb + i * dim, va + j * dim, dim);
                if (c > best) {
                    best = c;
                    arg = j;
                }
            }
            top1 += arg == i;
            if (best < thr)
                miss++;
            else if (arg == i)
                right++;
            else
                wrong++;
        }
        printf("%s: %s, %zu pairs (%zu skipped): top-1 %.4f; at threshold %.3f: right %zu, "
               "wrong %zu, miss %zu\n",
               base, llmc_embedder_model(e), used, n - used, (double)top1 / (double)used, thr,
               right, wrong, miss);
    } else {
        double *sc = malloc(n * sizeof *sc), *gd = malloc(n * sizeof *gd);
        int *lab = malloc(n * sizeof *lab);
        for (size_t i = 0; i < n; i++) {
            if (!oka[i] || !okb[i])
                continue;
            sc[used] = dot(va + i * dim, vb + i * dim, dim);
            gd[used] = gold[i];
            lab[used] = gold[i] > 0.5;
            used++;
        }
        if (kind == 0)
            printf("%s: %s, %zu pairs (%zu skipped): ROC-AUC %.4f\n", base, llmc_embedder_model(e),
                   used, n - used, roc_auc(sc, lab, used));
        else
            printf("%s: %s, %zu pairs (%zu skipped): Spearman %.4f\n", base, llmc_embedder_model(e),
                   used, n - used, spearman(sc, gd, used));
        free(sc);
        free(gd);
        free(lab);
    }
    free(va);
    free(vb);
    free(oka);
    free(okb);
    free(gold);
    strvec_free(&a);
    strvec_free(&b);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    llmc_embed_params p = llmc_embed_default_params();
    const char *eval = NULL;
    int cosine = 0;
    size_t limit = 0;
    double thr = 0.8;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES()                                                                                    \
    do {                                                                                           \
        if (!val) {                                                                                \
            fprintf(stderr, "llmcached-embed: %s needs a value\n", o);                             \
            return 2;                                                                              \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--backend") || !strcmp(o, "--embed-backend")) {
            TAKES();
            p.backend = val;
        } else if (!strcmp(o, "--model-path") || !strcmp(o, "--embed-model-path")) {
            TAKES();
            p.model_path = val;
        } else if (!strcmp(o, "--url") || !strcmp(o, "--embed-url")) {
            TAKES();
            p.url = val;
        } else if (!strcmp(o, "--model") || !strcmp(o, "--embed-model")) {
            TAKES();
            p.model = val;
        } else if (!strcmp(o, "--query-prefix") || !strcmp(o, "--embed-query-prefix")) {
            TAKES();
            p.query_prefix = val;
        } else if (!strcmp(o, "--batch")) {
            TAKES();
            p.max_batch = atoi(val);
        } else if (!strcmp(o, "--threads")) {
            TAKES();
            p.threads = atoi(val);
        } else if (!strcmp(o, "--precision") || !strcmp(o, "--embed-precision")) {
            TAKES();
            p.precision = val;
        } else if (!strcmp(o, "--eval")) {
            TAKES();
            eval = val;
        } else if (!strcmp(o, "--limit")) {
            TAKES();
            limit = (size_t)strtoull(val, NULL, 10);
        } else if (!strcmp(o, "--threshold")) {
            TAKES();
            thr = atof(val);
        } else if (!strcmp(o, "--cosine")) {
            cosine = 1;
        } else {
            fprintf(stderr, "llmcached-embed: unknown option %s\n", o);
            usage(stderr);
            return 2;
        }
#undef TAKES
    }
    if (p.max_batch <= 0)
        p.max_batch = 32;
    const char *key = getenv("LLMC_EMBED_API_KEY");
    if (key && *key)
        p.api_key = key;
    int err = 0;
    llmc_embedder *e = llmc_embedder_new(&p, &err);
    if (!e) {
        fprintf(stderr, "llmcached-embed: cannot open the %s embedder: %s\n",
                p.backend ? p.backend : "use", llmc_strerror(err));
        if (err == LLMC_EIO && (!p.backend || !strcmp(p.backend, "use")))
            fprintf(stderr, "  (fetch the model with scripts/fetch-use-model.sh)\n");
        return 1;
    }
    int rc = 0;
    size_t batch = (size_t)p.max_batch;
    if (eval) {
        rc = eval_file(e, eval, limit, batch, thr);
        llmc_embedder_free(e);
        return rc;
    }
    size_t dim = llmc_embedder_dim(e);
    strvec lines = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    float *vecs = NULL;
    unsigned char *ok = NULL;
    size_t all = 0;
    /* stream in chunks of `batch` lines, except --cosine which keeps all */
    for (;;) {
        len = getline(&line, &cap, stdin);
        if (len >= 0) {
            chomp(line);
            strvec_push(&lines, line, strlen(line));
        }
        int flush = len < 0 || (!cosine && lines.n == batch);
        if (!flush || lines.n == 0) {
            if (len < 0)
                break;
            continue;
        }
        vecs = realloc(vecs, lines.n * dim * sizeof *vecs);
        ok = realloc(ok, lines.n);
        embed_all(e, lines.s, lines.n, batch, vecs, ok);
        if (!cosine) {
            for (size_t i = 0; i < lines.n; i++, all++) {
                if (!ok[i]) {
                    int r = llmc_embed(e, lines.s[i], strlen(lines.s[i]), vecs + i * dim);
                    fprintf(stderr, "llmcached-embed: line %zu: %s\n", all + 1, llmc_strerror(r));
                    fputs("null\n", stdout);
                    rc = 1;
                    continue;
                }
                putchar('[');
                for (size_t j = 0; j < dim; j++)
                    printf(j ? ",%.8g" : "%.8g", (double)vecs[i * dim + j]);
                fputs("]\n", stdout);
            }
        } else {
            for (size_t i = 0; i < lines.n; i++) {
                putchar('[');
                for (size_t j = 0; j < lines.n; j++) {
                    if (ok[i] && ok[j])
                        printf(j ? ",%.6f" : "%.6f", dot(vecs + i * dim, vecs + j * dim, dim));
                    else
                        fputs(j ? ",null" : "null", stdout);
                }
                fputs("]\n", stdout);
                if (!ok[i]) {
                    fprintf(stderr, "llmcached-embed: line %zu cannot be embedded\n", i + 1);
                    rc = 1;
                }
            }
        }
        strvec_free(&lines);
        memset(&lines, 0, sizeof lines);
        if (len < 0)
            break;
    }
    strvec_free(&lines);
    free(line);
    free(vecs);
    free(ok);
    llmc_embedder_free(e);
    return rc;
}
