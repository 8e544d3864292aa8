/*
 * redis_entry.c — the Redis form of an entry: one key, one value.
 *
 * A fleet of llmcached instances shares entries through Redis; every
 * instance must read what any other wrote, and must never serve something
 * it did not write (another program's key under our prefix, a torn or
 * tampered value, a value copied under another tenant's key). So the value
 * is a self-checking record, in the spirit of persist.c's rows:
 *
 *   off  size  field (all integers little-endian)
 *     0    4   magic "LMCR"
 *     4    2   version (1)
 *     6    2   reserved, 0
 *     8   32   exact key (tenant-scoped SHA-256)
 *    40    8   namespace hash          48  8  semantic partition
 *    56    8   created (unix s)        64  8  expires (unix s)
 *    72    4   endpoint   76 4 prompt tokens   80 4 completion tokens
 *    84    4   dim        88 4 flags (LLMC_ENTRY_*)
 *    92    4   model length    96 4 vec-model length   100 4 query length
 *              (string lengths include their terminating NUL)
 *   104    8   body length
 *   112        dim float32 (the vector, first so a copy keeps it aligned),
 *              model, vec-model, query (each NUL-terminated), body
 *   end-8  8   XXH3-64 of every byte before it
 *
 * The key in Redis is PREFIX "e:" KEY (hex) and Redis's own expiry
 * (SET ... PXAT expires*1000) carries the absolute TTL, so an expired entry
 * is gone from Redis for every instance at the same moment; the record's
 * expires field is also checked by the reader (clocks of two hosts may
 * differ by less than a second; Redis's clock wins for removal).
 *
 * Invariants: decode accepts a record only if every length fits inside
 * the value exactly, every string ends in its NUL, the checksum matches
 * and (when asked) the record's key is the key it was read under.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "redis_entry.h"

static void re_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void re_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t re_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t re_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static const char re_hex[] = "0123456789abcdef";

int redis_entry_key(const char *prefix, const uint8_t key[LLMC_KEY_LEN], char *out, size_t cap)
{
    size_t pl = strlen(prefix), n = pl + 2 + 2 * LLMC_KEY_LEN;
    if (cap < n + 1)
        return LLMC_ETOOBIG;
    char *o = out;
    memcpy(o, prefix, pl);
    o += pl;
    *o++ = 'e';
    *o++ = ':';
    for (int i = 0; i < LLMC_KEY_LEN; i++) {
        *o++ = re_hex[key[i] >> 4];
        *o++ = re_hex[key[i] & 15];
    }
    *o = 0;
    return (int)n;
}

int redis_entry_pattern(const char *prefix, char *out, size_t cap)
{
    size_t pl = strlen(prefix);
    /* A prefix holding glob characters would match other deployments' keys:
     * escape them. */
    if (cap < 2 * pl + 4)
        return LLMC_ETOOBIG;
    char *o = out;
    for (size_t i = 0; i < pl; i++) {
        if (strchr("*?[]\\", prefix[i]))
            *o++ = '\\';
        *o++ = prefix[i];
    }
    *o++ = 'e';
    *o++ = ':';
    *o++ = '*';
    *o = 0;
    return (int)(o - out);
}

uint64_t redis_entry_ns(const void *eight_bytes)
{
    return re_get64(eight_bytes);
}

int redis_entry_key_parse(const char *hex, size_t len, uint8_t key[LLMC_KEY_LEN])
{
    if (len != 2 * LLMC_KEY_LEN)
        return LLMC_EINVAL;
    for (int i = 0; i < LLMC_KEY_LEN; i++) {
        const char *h = strchr(re_hex, hex[2 * i]), *l = strchr(re_hex, hex[2 * i + 1]);
        if (!hex[2 * i] || !hex[2 * i + 1] || !h || !l)
            return LLMC_EINVAL;
        key[i] = (uint8_t)((h - re_hex) << 4 | (l - re_hex));
    }
    return 0;
}

static size_t re_slen(const char *s)
{
    return (s ? strlen(s) : 0) + 1;
}

size_t redis_entry_size(const llmc_entry_info *e)
{
    return REDIS_ENTRY_HEADER + (size_t)e->dim * 4 + re_slen(e->model) + re_slen(e->vec_model) +
           re_slen(e->query) + e->body_len + 8;
}

static uint8_t *re_putstr(uint8_t *p, const char *s)
{
    size_t n = re_slen(s) - 1;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p + n + 1;
}

size_t redis_entry_encode(const llmc_entry_info *e, void *out)
{
    uint8_t *b = out;
    memset(b, 0, REDIS_ENTRY_HEADER);
    re_put32(b, REDIS_ENTRY_MAGIC);
    b[4] = REDIS_ENTRY_VERSION;
    memcpy(b + 8, e->key, LLMC_KEY_LEN);
    re_put64(b + 40, e->ns_hash);
    re_put64(b + 48, e->partition);
    re_put64(b + 56, (uint64_t)e->created);
    re_put64(b + 64, (uint64_t)e->expires);
    re_put32(b + 72, e->endpoint);
    re_put32(b + 76, e->prompt_tokens);
    re_put32(b + 80, e->completion_tokens);
    re_put32(b + 84, e->dim);
    re_put32(b + 88, e->flags);
    re_put32(b + 92, (uint32_t)re_slen(e->model));
    re_put32(b + 96, (uint32_t)re_slen(e->vec_model));
    re_put32(b + 100, (uint32_t)re_slen(e->query));
    re_put64(b + 104, e->body_len);
    uint8_t *p = b + REDIS_ENTRY_HEADER;
    for (uint32_t i = 0; i < e->dim; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &e->vec[i], 4);
        re_put32(p, u);
    }
    p = re_putstr(p, e->model);
    p = re_putstr(p, e->vec_model);
    p = re_putstr(p, e->query);
    if (e->body_len)
        memcpy(p, e->body, e->body_len);
    p += e->body_len;
    re_put64(p, XXH3_64bits(b, (size_t)(p - b)));
    return (size_t)(p - b) + 8;
}

/* The string of n bytes (NUL included) at *p, advancing; NULL when it
 * does not end in its NUL. */
static const char *re_getstr(uint8_t **p, uint32_t n)
{
    const char *s = (const char *)*p;
    if (n == 0 || (*p)[n - 1] != 0)
        return NULL;
    *p += n;
    return s;
}

int redis_entry_decode(const void *buf, size_t len, const uint8_t *expect_key, llmc_entry_info *out,
                       void **owned)
{
    const uint8_t *in = buf;
    *owned = NULL;
    if (len < 4 || re_get32(in) != REDIS_ENTRY_MAGIC)
        return LLMC_EFOREIGN;
    if (len < REDIS_ENTRY_HEADER + 8)
        return LLMC_ECORRUPT;
    if (in[4] != REDIS_ENTRY_VERSION || in[5] || in[6] || in[7])
        return LLMC_EVERSION;
    uint64_t dim = re_get32(in + 84), ml = re_get32(in + 92), vl = re_get32(in + 96),
             ql = re_get32(in + 100), bl = re_get64(in + 104);
    /* Each term is below 2^34 or checked against len first: no overflow. */
    if (bl > len || REDIS_ENTRY_HEADER + dim * 4 + ml + vl + ql + bl + 8 != len)
        return LLMC_ECORRUPT;
    if (re_get64(in + len - 8) != XXH3_64bits(in, len - 8))
        return LLMC_ECORRUPT;
    if (expect_key && memcmp(in + 8, expect_key, LLMC_KEY_LEN))
        return LLMC_ECORRUPT;
    uint8_t *b = malloc(len);
    if (!b)
        return LLMC_ENOMEM;
    memcpy(b, in, len);
    memset(out, 0, sizeof *out);
    memcpy(out->key, b + 8, LLMC_KEY_LEN);
    out->ns_hash = re_get64(b + 40);
    out->partition = re_get64(b + 48);
    out->created = (int64_t)re_get64(b + 56);
    out->expires = (int64_t)re_get64(b + 64);
    out->endpoint = re_get32(b + 72);
    out->prompt_tokens = re_get32(b + 76);
    out->completion_tokens = re_get32(b + 80);
    out->dim = (uint32_t)dim;
    out->flags = re_get32(b + 88);
    uint8_t *p = b + REDIS_ENTRY_HEADER;
    float *vec = (float *)(void *)p; /* malloc'd copy: offset 112 keeps it aligned */
    for (uint64_t i = 0; i < dim; i++, p += 4) {
        uint32_t u = re_get32(p);
        memcpy(&vec[i], &u, 4);
    }
    out->vec = dim ? vec : NULL;
    out->model = re_getstr(&p, (uint32_t)ml);
    out->vec_model = out->model ? re_getstr(&p, (uint32_t)vl) : NULL;
    out->query = out->vec_model ? re_getstr(&p, (uint32_t)ql) : NULL;
    if (!out->query) {
        free(b);
        return LLMC_ECORRUPT;
    }
    out->body = (const char *)p;
    out->body_len = (size_t)bl;
    *owned = b;
    return 0;
}
