/*
 * model.c — the llama2.c-format transformer forward pass on the CPU, with
 * its K/V kept in the paged store described in model.h.
 *
 * Design. The whole file is read into one float array and the weight
 * pointers index into it (the format is fixed: see model.h). The forward
 * pass is the Llama architecture: RMS-norm, grouped-query attention with
 * rotary position embeddings (pairs (2i, 2i+1) rotated by pos * 10000^(-2i/hs)
 * within each head, as the llama2.c export lays the weights out), SwiGLU
 * feed-forward, a final RMS-norm and the classifier. One token at a time:
 * prefill is the same loop over the prompt positions with the classifier
 * skipped except on the last one, which is what makes skipping a cached
 * prefix save exactly that prefix's layer work.
 *
 * Invariants: after model_forward(pos), the slots for positions 0..pos in
 * the table's blocks hold that sequence's K/V for every layer; the caller
 * (the runner) guarantees blocks it does not own are only read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"
#include "model.h"

struct model {
    model_config c;
    float *data;
    const float *tok_emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
};

static int model_read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return LLMC_EIO;
    int e = LLMC_EIO;
    long n;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    e = LLMC_ENOMEM;
    *buf = malloc((size_t)n + 1);
    if (!*buf)
        goto out;
    e = LLMC_EIO;
    if (fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        free(*buf);
        *buf = NULL;
        goto out;
    }
    *len = (size_t)n;
    e = 0;
out:
    fclose(f);
    return e;
}

static int32_t model_i32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

model *model_load(const char *path, int *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int e = model_read_file(path, &buf, &len);
    model *m = NULL;
    if (e)
        goto fail;
    e = LLMC_ECORRUPT;
    if (len < 28)
        goto fail;
    model_config c = {0};
    int32_t h[7];
    for (int i = 0; i < 7; i++)
        h[i] = model_i32(buf + 4 * i);
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.shared_classifier = h[5] > 0;
    c.vocab_size = h[5] > 0 ? h[5] : -h[5];
    c.seq_len = h[6];
    if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.vocab_size <= 0 || c.seq_len <= 0 || c.dim > 65536 || c.hidden_dim > 262144 ||
        c.n_layers > 1024 || c.vocab_size > 1 << 22 || c.seq_len > 1 << 20 || c.dim % c.n_heads ||
        c.n_heads % c.n_kv_heads || (c.dim / c.n_heads) % 2)
        goto fail;
    c.head_size = c.dim / c.n_heads;
    c.kv_dim = c.dim * c.n_kv_heads / c.n_heads;
    size_t L = (size_t)c.n_layers, D = (size_t)c.dim, H = (size_t)c.hidden_dim;
    size_t KV = (size_t)c.kv_dim, V = (size_t)c.vocab_size;
    size_t need = V * D + L * D + L * D * D + 2 * L * D * KV + L * D * D + L * D + 3 * L * H * D +
                  D + (size_t)c.seq_len * (size_t)c.head_size;
    if (!c.shared_classifier)
        need += V * D;
    if ((len - 28) / 4 < need)
        goto fail;
    e = LLMC_ENOMEM;
    m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    m->data = malloc(need * sizeof(float));
    if (!m->data)
        goto fail;
    memcpy(m->data, buf + 28, need * sizeof(float)); /* host is little-endian */
    free(buf);
    buf = NULL;
    m->c = c;
    const float *p = m->data;
    m->tok_emb = p, p += V * D;
    m->rms_att = p, p += L * D;
    m->wq = p, p += L * D * D;
    m->wk = p, p += L * D * KV;
    m->wv = p, p += L * D * KV;
    m->wo = p, p += L * D * D;
    m->rms_ffn = p, p += L * D;
    m->w1 = p, p += L * H * D;
    m->w2 = p, p += L * D * H;
    m->w3 = p, p += L * H * D;
    m->rms_final = p, p += D;
    p += (size_t)c.seq_len * (size_t)c.head_size; /* legacy RoPE tables */
    m->wcls = c.shared_classifier ? m->tok_emb : p;
    return m;
fail:
    free(buf);
    if (m) {
        free(m->data);
        free(m);
    }
    if (err)
        *err = e;
    return NULL;
}

void model_free(model *m)
{
    if (!m)
        return;
    free(m->data);
    free(m);
}

const model_config *model_cfg(const model *m)
{
    return &m->c;
}

int model_kv_init(model_kv *kv, const model *m, int n_blocks, int block_size)
{
    memset(kv, 0, sizeof *kv);
    if (n_blocks <= 0 || block_size <= 0)
        return LLMC_EINVAL;
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->block_floats = (size_t)m->c.n_layers * (size_t)block_size * (size_t)m->c.kv_dim;
    kv->k = calloc((size_t)n_blocks * kv->block_floats, sizeof(float));
    kv->v = calloc((size_t)n_blocks * kv->block_floats, sizeof(float));
    if (!kv->k || !kv->v) {
        model_kv_destroy(kv);
        return LLMC_ENOMEM;
    }
    return 0;
}

void model_kv_destroy(model_kv *kv)
{
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

int model_scratch_init(model_scratch *s, const model *m)
{
    const model_config *c = &m->c;
    s->x = calloc((size_t)c->dim, sizeof(float));
    s->xb = calloc((size_t)c->dim, sizeof(float));
    s->xb2 = calloc((size_t)c->dim, sizeof(float));
    s->hb = calloc((size_t)c->hidden_dim, sizeof(float));
    s->hb2 = calloc((size_t)c->hidden_dim, sizeof(float));
    s->q = calloc((size_t)c->dim, sizeof(float));
    s->att = calloc((size_t)c->n_heads * (size_t)c->seq_len, sizeof(float));
    s->logits = calloc((size_t)c->vocab_size, sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->q || !s->att || !s->logits) {
        model_scratch_destroy(s);
        return LLMC_ENOMEM;
    }
    return 0;
}

void model_scratch_destroy(model_scratch *s)
{
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->hb);
    free(s->hb2);
    free(s->q);
    free(s->att);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

static void model_rmsnorm(float *o, const float *x, const float *w, int n)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    ss = 1.0f / sqrtf(ss / (float)n + 1e-5f);
    for (int i = 0; i < n; i++)
        o[i] = w[i] * (ss * x[i]);
}

/* o[d] = W[d][n] . x[n] */
static void model_matvec(float *o, const float *x, const float *w, int n, int d)
{
    for (int i = 0; i < d; i++) {
        const float *row = w + (size_t)i * (size_t)n;
        float acc = 0.0f;
        for (int j = 0; j < n; j++)
            acc += row[j] * x[j];
        o[i] = acc;
    }
}

static void model_softmax(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

static void model_rope(float *v, int n, int head_size, int pos)
{
    for (int i = 0; i < n; i += 2) {
        int hd = i % head_size;
        float freq = 1.0f / powf(10000.0f, (float)hd / (float)head_size);
        float a = (float)pos * freq, co = cosf(a), si = sinf(a);
        float v0 = v[i], v1 = v[i + 1];
        v[i] = v0 * co - v1 * si;
        v[i + 1] = v0 * si + v1 * co;
    }
}

void model_forward(const model *m, model_scratch *s, const model_kv *kv, const int32_t *bt,
                   int token, int pos, int logits)
{
    const model_config *c = &m->c;
    int D = c->dim, H = c->hidden_dim, KV = c->kv_dim, hs = c->head_size;
    int B = kv->block_size, group = c->n_heads / c->n_kv_heads;
    size_t L = (size_t)c->n_layers;
    float scale = 1.0f / sqrtf((float)hs);
    memcpy(s->x, m->tok_emb + (size_t)token * (size_t)D, (size_t)D * sizeof(float));

    for (size_t l = 0; l < L; l++) {
        model_rmsnorm(s->xb, s->x, m->rms_att + l * (size_t)D, D);
        size_t self = (size_t)bt[pos / B] * kv->block_floats +
                      (l * (size_t)B + (size_t)(pos % B)) * (size_t)KV;
        float *kp = kv->k + self, *vp = kv->v + self;
        model_matvec(s->q, s->xb, m->wq + l * (size_t)D * (size_t)D, D, D);
        model_matvec(kp, s->xb, m->wk + l * (size_t)D * (size_t)KV, D, KV);
        model_matvec(vp, s->xb, m->wv + l * (size_t)D * (size_t)KV, D, KV);
        model_rope(s->q, D, hs, pos);
        model_rope(kp, KV, hs, pos);

        for (int h = 0; h < c->n_heads; h++) {
            const float *q = s->q + h * hs;
            float *att = s->att + (size_t)h * (size_t)c->seq_len;
            size_t koff = (size_t)(h / group) * (size_t)hs;
            for (int t = 0; t <= pos; t++) {
                const float *k = kv->k + (size_t)bt[t / B] * kv->block_floats +
                                 (l * (size_t)B + (size_t)(t % B)) * (size_t)KV + koff;
                float d = 0.0f;
                for (int i = 0; i < hs; i++)
                    d += q[i] * k[i];
                att[t] = d * scale;
            }
            model_softmax(att, pos + 1);
            float *o = s->xb + h * hs;
            memset(o, 0, (size_t)hs * sizeof(float));
            for (int t = 0; t <= pos; t++) {
                const float *v = kv->v + (size_t)bt[t / B] * kv->block_floats +
                                 (l * (size_t)B + (size_t)(t % B)) * (size_t)KV + koff;
                float a = att[t];
                for (int i = 0; i < hs; i++)
                    o[i] += a * v[i];
            }
        }
        model_matvec(s->xb2, s->xb, m->wo + l * (size_t)D * (size_t)D, D, D);
        for (int i = 0; i < D; i++)
            s->x[i] += s->xb2[i];

        model_rmsnorm(s->xb, s->x, m->rms_ffn + l * (size_t)D, D);
        model_matvec(s->hb, s->xb, m->w1 + l * (size_t)H * (size_t)D, D, H);
        model_matvec(s->hb2, s->xb, m->w3 + l * (size_t)H * (size_t)D, D, H);
        for (int i = 0; i < H; i++) {
            float g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
        model_matvec(s->xb, s->hb, m->w2 + l * (size_t)D * (size_t)H, H, D);
        for (int i = 0; i < D; i++)
            s->x[i] += s->xb[i];
    }
    if (!logits)
        return;
    model_rmsnorm(s->x, s->x, m->rms_final, D);
    model_matvec(s->logits, s->x, m->wcls, D, c->vocab_size);
}
