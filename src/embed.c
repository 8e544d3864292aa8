/*
 * embed.c — the public embedder API over the backends (embed_impl.h).
 *
 * This file owns argument checking shared by every backend (NULL checks,
 * UTF-8 validation, batching into max_batch chunks) so that the backends
 * only compute. The embedder is not thread-safe: one thread at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "embed_impl.h"

struct llmc_embedder {
    embed_backend *b;
    int max_batch;
};

llmc_embed_params llmc_embed_default_params(void)
{
    llmc_embed_params p;
    memset(&p, 0, sizeof p);
    p.backend = "use";
    p.timeout_ms = 10000;
    p.retries = 2;
    p.max_batch = 32;
    p.threads = 1;
    return p;
}

llmc_embedder *llmc_embedder_new(const llmc_embed_params *p, int *err)
{
    llmc_embed_params d = llmc_embed_default_params();
    int e = 0;
    if (!p)
        p = &d;
    const char *be = p->backend ? p->backend : "use";
    embed_backend *b = NULL;
    if (strcmp(be, "use") == 0)
        b = embed_use_new(p, &e);
    else if (strcmp(be, "bert") == 0)
        b = embed_bert_new(p, &e);
    else if (strcmp(be, "remote") == 0)
        b = embed_remote_new(p, &e);
    else
        e = LLMC_EINVAL;
    if (!b) {
        if (err)
            *err = e ? e : LLMC_EINVAL;
        return NULL;
    }
    llmc_embedder *em = calloc(1, sizeof *em);
    if (!em) {
        b->free(b);
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    em->b = b;
    em->max_batch = p->max_batch > 0 ? p->max_batch : 32;
    return em;
}

void llmc_embedder_free(llmc_embedder *e)
{
    if (!e)
        return;
    e->b->free(e->b);
    free(e);
}

const char *llmc_embedder_model(const llmc_embedder *e)
{
    return e->b->model;
}

size_t llmc_embedder_dim(const llmc_embedder *e)
{
    return e->b->dim;
}

const char *llmc_embedder_precision(const llmc_embedder *e)
{
    return e->b->precision ? e->b->precision : "fp32";
}

/* Strict UTF-8 check: no overlongs, no surrogates, nothing above U+10FFFF. */
static int embed_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (k >= n - i)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

int llmc_embed_batch(llmc_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                     float *out)
{
    if (!e || !out || (n && (!texts || !lens)))
        return LLMC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!texts[i] && lens[i])
            return LLMC_EINVAL;
        if (!embed_utf8_valid((const unsigned char *)texts[i], lens[i]))
            return LLMC_EUTF8;
    }
    for (size_t i = 0; i < n; i += (size_t)e->max_batch) {
        size_t m = n - i < (size_t)e->max_batch ? n - i : (size_t)e->max_batch;
        int rc = e->b->embed_batch(e->b, texts + i, lens + i, m, out + i * e->b->dim);
        if (rc)
            return rc;
    }
    return 0;
}

int llmc_embed(llmc_embedder *e, const char *text, size_t len, float *out)
{
    return llmc_embed_batch(e, &text, &len, 1, out);
}
