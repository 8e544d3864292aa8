/*
 * memo.c — the hit fast path: raw request bytes → exact key, per loop.
 *
 * Canonicalising a request (a JSON parse, a sorted dump, three SHA-256s and
 * the policy's word scans) is most of the work of an exact hit. But the
 * exact key and the decision are a pure function of the request's raw
 * inputs — path, the headers that scope or steer caching, and the body — so
 * a loop remembers, for requests it has canonicalised whose decision allows
 * a lookup, the raw inputs and the resulting key. A byte-identical request
 * then skips straight to the store. The raw inputs are kept and compared in
 * full (the XXH3 hash only picks the bucket), so no hash collision, crafted
 * or not, can map one request onto another's key.
 *
 * The memo holds no answers: the store does, with its TTLs and budget; a
 * memo hit whose key is no longer in the store just takes the normal path.
 * Each loop owns its memo (no locks); it is bounded by bytes, LRU.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "server.h"

typedef struct memo_ent memo_ent;
struct memo_ent {
    memo_ent *hnext, *lprev, *lnext;
    uint64_t h;
    size_t rawlen;
    memo_val v;
    char raw[]; /* the raw inputs */
};

struct memo {
    memo_ent **b;
    size_t nb, n, bytes, max_bytes;
    memo_ent *head, *tail;
};

memo *memo_new(size_t max_bytes)
{
    memo *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nb = 4096;
    m->b = calloc(m->nb, sizeof *m->b);
    m->max_bytes = max_bytes;
    if (!m->b) {
        free(m);
        return NULL;
    }
    return m;
}

void memo_free(memo *m)
{
    if (!m)
        return;
    for (memo_ent *e = m->head; e;) {
        memo_ent *n = e->lnext;
        free(e);
        e = n;
    }
    free(m->b);
    free(m);
}

static void memo_unlink_lru(memo *m, memo_ent *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        m->head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        m->tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void memo_push_lru(memo *m, memo_ent *e)
{
    e->lnext = m->head;
    if (m->head)
        m->head->lprev = e;
    m->head = e;
    if (!m->tail)
        m->tail = e;
}

static memo_ent **memo_slot(memo *m, uint64_t h, const char *raw, size_t len)
{
    memo_ent **pp = &m->b[h & (m->nb - 1)];
    while (*pp && !((*pp)->h == h && (*pp)->rawlen == len && !memcmp((*pp)->raw, raw, len)))
        pp = &(*pp)->hnext;
    return pp;
}

static void memo_drop(memo *m, memo_ent *e)
{
    memo_ent **pp = memo_slot(m, e->h, e->raw, e->rawlen);
    *pp = e->hnext;
    memo_unlink_lru(m, e);
    m->n--;
    m->bytes -= sizeof *e + e->rawlen;
    free(e);
}

const memo_val *memo_get(memo *m, const char *raw, size_t len)
{
    if (!m || !m->max_bytes)
        return NULL;
    uint64_t h = XXH3_64bits(raw, len);
    memo_ent *e = *memo_slot(m, h, raw, len);
    if (!e)
        return NULL;
    memo_unlink_lru(m, e);
    memo_push_lru(m, e);
    return &e->v;
}

void memo_put(memo *m, const char *raw, size_t len, const memo_val *v)
{
    if (!m || sizeof(memo_ent) + len > m->max_bytes / 8)
        return; /* huge requests are not worth a place */
    uint64_t h = XXH3_64bits(raw, len);
    memo_ent **pp = memo_slot(m, h, raw, len);
    if (*pp) {
        (*pp)->v = *v;
        return;
    }
    while (m->bytes + sizeof(memo_ent) + len > m->max_bytes && m->tail)
        memo_drop(m, m->tail);
    memo_ent *e = malloc(sizeof *e + len);
    if (!e)
        return;
    e->h = h;
    e->rawlen = len;
    e->v = *v;
    memcpy(e->raw, raw, len);
    pp = memo_slot(m, h, raw, len); /* drops may have changed the chain */
    e->hnext = *pp;
    *pp = e;
    e->lprev = e->lnext = NULL;
    memo_push_lru(m, e);
    m->n++;
    m->bytes += sizeof *e + len;
    if (m->n > m->nb * 2) {
        size_t nb = m->nb * 2;
        memo_ent **b = calloc(nb, sizeof *b);
        if (!b)
            return;
        for (memo_ent *x = m->head; x; x = x->lnext) {
            size_t j = x->h & (nb - 1);
            x->hnext = b[j];
            b[j] = x;
        }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
}
