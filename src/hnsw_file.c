/*
 * hnsw_file.c — the HNSW index's file format: llmc_hnsw_save and
 * llmc_hnsw_load.
 *
 * File format (version 1, all integers little-endian, floats IEEE-754 bits
 * little-endian):
 *     0  8  magic "LLMCHNSW"
 *     8  4  version = 1
 *    12  4  dim
 *    16  4  metric (0 cosine, 1 inner product)
 *    20  4  quant (0 f32, 1 i8)
 *    24  4  M
 *    28  4  ef_construction
 *    32  4  ef_search
 *    36  4  max_level (int32, -1 when empty)
 *    40  4  entry slot (0xffffffff when empty)
 *    44  4  n_slots (records that follow)
 *    48  4  n_live
 *    52  4  model name length L (<= 1024)
 *    56  8  level generator state
 *    64  L  model name (UTF-8, no NUL)
 *   then n_slots records:
 *     u8 flags (bit0 removed, bit1 parked), u8 level, u16 n0,
 *     u64 label, u64 partition, u32 links[n0],
 *     for each level 1..level: u16 n, u32 links[n],
 *     vector: f32 x dim, or f32 scale + i8 x dim
 *   then u32 F and F u32 slots: the free list, head first (every removed
 *   slot except a parked entry point, once each);
 *   then u64 XXH3-64 of every byte before it.
 * Load reads the whole file into memory first (peak: file + index), checks
 * the magic (LLMC_EFOREIGN), version (LLMC_EVERSION), checksum and every
 * count, level and link against its bounds (LLMC_ECORRUPT), then the
 * expected model and dimension (LLMC_EMISMATCH).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "hnsw_impl.h"

/* ---- save / load ---------------------------------------------------- */

static void hnsw_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void hnsw_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void hnsw_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t hnsw_rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t hnsw_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t hnsw_rd64(const unsigned char *p)
{
    return (uint64_t)hnsw_rd32(p) | (uint64_t)hnsw_rd32(p + 4) << 32;
}

typedef struct {
    FILE *f;
    XXH3_state_t *xs;
    int err;
} hnsw_writer;

static void hnsw_put(hnsw_writer *w, const void *p, size_t n)
{
    if (w->err || n == 0)
        return;
    XXH3_64bits_update(w->xs, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        w->err = LLMC_EIO;
}

static size_t hnsw_vec_bytes(const llmc_hnsw *h)
{
    return h->quant == LLMC_HNSW_F32 ? 4 * h->dim : 4 + h->dim;
}

int llmc_hnsw_save(llmc_hnsw *h, const char *path)
{
    if (!h || !path)
        return LLMC_EINVAL;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    size_t rmax = 20 + 4 * h->M0 + (size_t)HNSW_MAX_LEVEL * (2 + 4 * h->M) + hnsw_vec_bytes(h);
    unsigned char *rec = malloc(rmax > HNSW_HDR ? rmax : HNSW_HDR);
    XXH3_state_t *xs = XXH3_createState();
    if (!tmp || !rec || !xs) {
        free(tmp);
        free(rec);
        XXH3_freeState(xs);
        return LLMC_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    hnsw_writer w = {fopen(tmp, "wb"), xs, 0};
    if (!w.f) {
        free(tmp);
        free(rec);
        XXH3_freeState(xs);
        return LLMC_EIO;
    }
    XXH3_64bits_reset(xs);
    pthread_rwlock_rdlock(&h->lock);
    unsigned char *p = rec;
    memset(p, 0, HNSW_HDR);
    memcpy(p, HNSW_MAGIC, 8);
    hnsw_le32(p + 8, HNSW_VERSION);
    hnsw_le32(p + 12, (uint32_t)h->dim);
    hnsw_le32(p + 16, (uint32_t)h->metric);
    hnsw_le32(p + 20, (uint32_t)h->quant);
    hnsw_le32(p + 24, (uint32_t)h->M);
    hnsw_le32(p + 28, (uint32_t)h->efc);
    hnsw_le32(p + 32, (uint32_t)h->efs);
    hnsw_le32(p + 36, (uint32_t)(int32_t)h->max_level);
    hnsw_le32(p + 40, h->entry);
    hnsw_le32(p + 44, (uint32_t)h->n_slots);
    hnsw_le32(p + 48, (uint32_t)h->n_live);
    size_t ml = strlen(h->model);
    hnsw_le32(p + 52, (uint32_t)ml);
    hnsw_le64(p + 56, h->rng);
    hnsw_put(&w, p, HNSW_HDR);
    hnsw_put(&w, h->model, ml);
    for (uint32_t s = 0; s < h->n_slots && !w.err; s++) {
        p = rec;
        uint32_t cnt;
        const uint32_t *l = hnsw_links(h, s, 0, &cnt);
        int level = *hnsw_level(h, s);
        p[0] = *hnsw_flags(h, s);
        p[1] = (unsigned char)level;
        hnsw_le16(p + 2, (uint16_t)cnt);
        hnsw_le64(p + 4, hnsw_label(h, s));
        hnsw_le64(p + 12, hnsw_part(h, s));
        p += 20;
        for (uint32_t j = 0; j < cnt; j++, p += 4)
            hnsw_le32(p, l[j]);
        for (int lv = 1; lv <= level; lv++) {
            l = hnsw_links(h, s, lv, &cnt);
            hnsw_le16(p, (uint16_t)cnt);
            p += 2;
            for (uint32_t j = 0; j < cnt; j++, p += 4)
                hnsw_le32(p, l[j]);
        }
        const char *v = hnsw_vec(h, s);
        size_t nf = h->quant == LLMC_HNSW_F32 ? h->dim : 1;
        for (size_t i = 0; i < nf; i++, p += 4) {
            uint32_t bits;
            memcpy(&bits, v + 4 * i, 4);
            hnsw_le32(p, bits);
        }
        if (h->quant == LLMC_HNSW_I8) {
            memcpy(p, v + 4, h->dim);
            p += h->dim;
        }
        hnsw_put(&w, rec, (size_t)(p - rec));
    }
    /* the free list, head first, so a loaded index reuses slots in the same order */
    uint32_t nfree = 0;
    for (uint32_t f = h->free_head; f != HNSW_NONE; f = h->pnext[f])
        nfree++;
    hnsw_le32(rec, nfree);
    hnsw_put(&w, rec, 4);
    for (uint32_t f = h->free_head; f != HNSW_NONE && !w.err; f = h->pnext[f]) {
        hnsw_le32(rec, f);
        hnsw_put(&w, rec, 4);
    }
    pthread_rwlock_unlock(&h->lock);
    unsigned char sum[8];
    hnsw_le64(sum, XXH3_64bits_digest(xs));
    if (!w.err && fwrite(sum, 1, 8, w.f) != 8)
        w.err = LLMC_EIO;
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0)
        w.err = LLMC_EIO;
    if (fclose(w.f) != 0)
        w.err = LLMC_EIO;
    if (!w.err && rename(tmp, path) != 0)
        w.err = LLMC_EIO;
    if (w.err)
        unlink(tmp);
    free(tmp);
    free(rec);
    XXH3_freeState(xs);
    return w.err;
}

/* Read the whole file; *len its size. NULL with *err set on failure. */
static unsigned char *hnsw_slurp(const char *path, size_t *len, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = LLMC_EIO;
        return NULL;
    }
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        *err = LLMC_EIO;
        return NULL;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        fclose(f);
        *err = LLMC_ENOMEM;
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        *err = LLMC_EIO;
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

typedef struct {
    const unsigned char *p, *end;
} hnsw_reader;

static const unsigned char *hnsw_take(hnsw_reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return NULL;
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}

llmc_hnsw *llmc_hnsw_load(const char *path, const char *expect_model, size_t expect_dim,
                          const llmc_hnsw_params *params, int *err)
{
    int e = 0;
    size_t len = 0;
    llmc_hnsw *h = NULL;
    char *model = NULL;
    if (!path) {
        e = LLMC_EINVAL;
        goto fail;
    }
    unsigned char *buf = hnsw_slurp(path, &len, &e);
    if (!buf)
        goto fail;
    if (len < 8 || memcmp(buf, HNSW_MAGIC, 8) != 0) {
        e = (len < 8 && memcmp(buf, HNSW_MAGIC, len) == 0) ? LLMC_ECORRUPT : LLMC_EFOREIGN;
        goto out;
    }
    if (len < 12) {
        e = LLMC_ECORRUPT;
        goto out;
    }
    if (hnsw_rd32(buf + 8) != HNSW_VERSION) {
        e = LLMC_EVERSION;
        goto out;
    }
    e = LLMC_ECORRUPT;
    if (len < HNSW_HDR + 8 || XXH3_64bits(buf, len - 8) != hnsw_rd64(buf + len - 8))
        goto out;
    uint32_t dim = hnsw_rd32(buf + 12), ml = hnsw_rd32(buf + 52);
    uint32_t n_slots = hnsw_rd32(buf + 44), n_live = hnsw_rd32(buf + 48);
    uint32_t entry = hnsw_rd32(buf + 40);
    int32_t max_level = (int32_t)hnsw_rd32(buf + 36);
    if (ml > HNSW_MODEL_MAX || len - 8 - HNSW_HDR < ml || n_live > n_slots || max_level < -1 ||
        max_level > HNSW_MAX_LEVEL || (n_slots == 0) != (max_level == -1) ||
        (n_slots == 0) != (entry == HNSW_NONE) || (n_slots && entry >= n_slots) ||
        n_slots > HNSW_MAX_SLOTS)
        goto out;
    model = malloc(ml + 1);
    if (!model) {
        e = LLMC_ENOMEM;
        goto out;
    }
    memcpy(model, buf + HNSW_HDR, ml);
    model[ml] = 0;
    if (strlen(model) != ml)
        goto out;
    if ((expect_dim && expect_dim != dim) || (expect_model && strcmp(expect_model, model) != 0)) {
        e = LLMC_EMISMATCH;
        goto out;
    }
    llmc_hnsw_params p = llmc_hnsw_default_params();
    p.dim = dim;
    p.metric = (int)hnsw_rd32(buf + 16);
    p.quant = (int)hnsw_rd32(buf + 20);
    p.M = hnsw_rd32(buf + 24);
    p.ef_construction = hnsw_rd32(buf + 28);
    p.ef_search = hnsw_rd32(buf + 32);
    p.model = model;
    if (params) {
        p.max_bytes = params->max_bytes;
        p.simd = params->simd;
        p.partition_search = params->partition_search;
        if (params->ef_search)
            p.ef_search = params->ef_search;
    }
    int ae = 0;
    h = hnsw_alloc(&p, &ae);
    if (!h) {
        e = ae == LLMC_EINVAL ? LLMC_ECORRUPT : ae;
        goto out;
    }
    h->rng = hnsw_rd64(buf + 56);
    if ((uint64_t)n_slots * (20 + hnsw_vec_bytes(h)) > len - 8 - HNSW_HDR - ml)
        goto out; /* e is still LLMC_ECORRUPT: cannot hold that many records */
    size_t cap = n_slots > 16 ? n_slots : 16;
    if (h->max_bytes && hnsw_bytes_for(h, cap) > h->max_bytes) {
        e = LLMC_EFULL;
        goto out;
    }
    if ((e = hnsw_reserve(h, cap)))
        goto out;
    e = LLMC_ECORRUPT;
    hnsw_reader r = {buf + HNSW_HDR + ml, buf + len - 8};
    size_t vb = hnsw_vec_bytes(h);
    for (uint32_t s = 0; s < n_slots; s++) {
        const unsigned char *q = hnsw_take(&r, 20);
        if (!q)
            goto out;
        uint8_t flags = q[0], level = q[1];
        uint16_t n0 = hnsw_rd16(q + 2);
        if ((flags & ~(HNSW_F_REMOVED | HNSW_F_PARKED)) || level > max_level || n0 > h->M0 ||
            ((flags & HNSW_F_PARKED) && (s != entry || !(flags & HNSW_F_REMOVED))))
            goto out;
        char *b = hnsw_blk(h, s);
        memset(b, 0, h->stride);
        *hnsw_n0(h, s) = n0;
        *hnsw_flags(h, s) = flags;
        *hnsw_level(h, s) = level;
        uint64_t label = hnsw_rd64(q + 4), part = hnsw_rd64(q + 12);
        memcpy(b + h->off_label, &label, 8);
        memcpy(b + h->off_part, &part, 8);
        h->n_slots = s + 1;
        if (level > 0) {
            size_t ub = (size_t)level * (h->M + 1) * sizeof(uint32_t);
            h->upper[s] = calloc(1, ub);
            if (!h->upper[s]) {
                e = LLMC_ENOMEM;
                goto out;
            }
            h->upper_bytes += ub;
        }
        for (int lv = 0; lv <= level; lv++) {
            uint32_t cnt = n0;
            if (lv > 0) {
                const unsigned char *c = hnsw_take(&r, 2);
                if (!c)
                    goto out;
                cnt = hnsw_rd16(c);
                if (cnt > h->M)
                    goto out;
            }
            const unsigned char *lk = hnsw_take(&r, 4 * (size_t)cnt);
            if (!lk)
                goto out;
            uint32_t dummy;
            uint32_t *l = hnsw_links(h, s, lv, &dummy);
            for (uint32_t j = 0; j < cnt; j++) {
                l[j] = hnsw_rd32(lk + 4 * j);
                if (l[j] >= n_slots || l[j] == s)
                    goto out;
            }
            hnsw_set_count(h, s, lv, cnt);
        }
        const unsigned char *v = hnsw_take(&r, vb);
        if (!v)
            goto out;
        char *dst = hnsw_vec(h, s);
        size_t nf = h->quant == LLMC_HNSW_F32 ? h->dim : 1;
        for (size_t i = 0; i < nf; i++) {
            uint32_t bits = hnsw_rd32(v + 4 * i);
            float f;
            memcpy(&f, &bits, 4);
            if (!isfinite(f))
                goto out;
            memcpy(dst + 4 * i, &f, 4);
        }
        if (h->quant == LLMC_HNSW_I8)
            memcpy(dst + 4, v + 4, h->dim);
    }
    const unsigned char *fc = hnsw_take(&r, 4);
    if (!fc)
        goto out;
    uint32_t nfree = hnsw_rd32(fc);
    const unsigned char *fl = hnsw_take(&r, 4 * (size_t)nfree);
    if (!fl || r.p != r.end)
        goto out;
    /* links on level l must point at nodes that have level l */
    for (uint32_t s = 0; s < n_slots; s++) {
        int level = *hnsw_level(h, s);
        for (int lv = 1; lv <= level; lv++) {
            uint32_t cnt;
            const uint32_t *l = hnsw_links(h, s, lv, &cnt);
            for (uint32_t j = 0; j < cnt; j++)
                if (*hnsw_level(h, l[j]) < lv)
                    goto out;
        }
    }
    /* the entry point's slot is never on the free list: removed means parked */
    if (n_slots &&
        (*hnsw_level(h, entry) != max_level ||
         (*hnsw_flags(h, entry) & HNSW_F_REMOVED && !(*hnsw_flags(h, entry) & HNSW_F_PARKED))))
        goto out;
    h->entry = entry;
    h->max_level = max_level;
    /* rebuild the side tables: free list (as saved), labels, partitions */
    size_t live = 0, freeable = 0;
    for (uint32_t s = 0; s < n_slots; s++) {
        h->pnext[s] = h->pprev[s] = HNSW_NONE;
        uint8_t f = *hnsw_flags(h, s);
        freeable += (f & (HNSW_F_REMOVED | HNSW_F_PARKED)) == HNSW_F_REMOVED;
    }
    if (nfree != freeable)
        goto out;
    for (uint32_t i = nfree; i-- > 0;) {
        uint32_t s = hnsw_rd32(fl + 4 * (size_t)i);
        /* each freeable slot once: pprev marks the ones already listed */
        if (s >= n_slots ||
            (*hnsw_flags(h, s) & (HNSW_F_REMOVED | HNSW_F_PARKED)) != HNSW_F_REMOVED ||
            h->pprev[s] != HNSW_NONE)
            goto out;
        h->pprev[s] = 0;
        h->pnext[s] = h->free_head;
        h->free_head = s;
    }
    for (uint32_t s = 0; s < n_slots; s++) {
        uint8_t f = *hnsw_flags(h, s);
        if (f & HNSW_F_REMOVED) {
            h->pprev[s] = HNSW_NONE;
            continue;
        }
        if (hnsw_part(h, s) == LLMC_HNSW_ANY || hnsw_lmap_find(h, hnsw_label(h, s)) != HNSW_NONE)
            goto out;
        hnsw_lmap_insert(h, s);
        if (hnsw_part_link(h, s)) {
            e = LLMC_ENOMEM;
            goto out;
        }
        live++;
    }
    if (live != n_live)
        goto out;
    h->n_live = live;
    if (h->max_bytes && hnsw_bytes_for(h, h->cap) > h->max_bytes) {
        e = LLMC_EFULL;
        goto out;
    }
    e = 0;
out:
    free(buf);
    free(model);
    if (!e)
        return h;
    llmc_hnsw_free(h);
fail:
    if (err)
        *err = e;
    return NULL;
}
