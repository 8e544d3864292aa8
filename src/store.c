/*
 * store.c — the exact tier: a hash table of refcounted entries under a
 * byte budget.
 *
 * Design (after memcached's items.c):
 *   - One allocation per entry: the header (struct store_entry, whose first
 *     member is the public llmc_entry_info), then model, vector model,
 *     body and vector bytes. Readers get a pointer to the info and hold a
 *     reference; the table holds one more while the entry is linked.
 *   - Chained hash table keyed by the first 8 bytes of the key (the key is a
 *     SHA-256, uniform already), doubled when the load passes 1.
 *   - An LRU list (head = most recent) and a binary min-heap on `expires`.
 *     Making room takes expired entries from the heap top first, then the
 *     LRU tail: "expired first, then least recently used". The heap also
 *     makes llmc_store_expire() O(k log n) for k expired entries.
 *   - `bytes` is the sum of llmc_entry_charge() over linked entries and never
 *     exceeds max_bytes after a put returns.
 *
 * Locking: one mutex over table, LRU, heap and counters. Critical sections
 * are short (no I/O, no allocation but the table's resize); bodies are
 * copied outside it. Refcounts are atomic so a reader may release an entry
 * without the lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

typedef struct store_entry store_entry;
struct store_entry {
    llmc_entry_info info; /* first: the public view */
    atomic_int refs;
    size_t charge;
    store_entry *hnext;         /* hash chain */
    store_entry *lprev, *lnext; /* LRU list */
    size_t heap_idx;            /* position in the expiry heap */
    int64_t bumped;             /* when it last moved to the LRU head */
    atomic_uint floor_bits;     /* learned semantic floor, float bits (0: none) */
};

struct llmc_store {
    pthread_mutex_t mu;
    store_entry **buckets;
    size_t nbuckets; /* power of two */
    store_entry *lru_head, *lru_tail;
    store_entry **heap;
    size_t heap_cap;
    llmc_store_params p;
    llmc_store_stats st;
};

llmc_store_params llmc_store_default_params(void)
{
    llmc_store_params p;
    memset(&p, 0, sizeof p);
    p.max_bytes = (size_t)256 << 20;
    return p;
}

llmc_store *llmc_store_new(const llmc_store_params *p, int *err)
{
    llmc_store *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->p = p ? *p : llmc_store_default_params();
    s->nbuckets = 1024;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    if (!s->buckets)
        goto nomem;
    pthread_mutex_init(&s->mu, NULL);
    s->st.max_bytes = s->p.max_bytes;
    return s;
nomem:
    if (s)
        free(s->buckets);
    free(s);
    if (err)
        *err = LLMC_ENOMEM;
    return NULL;
}

static uint64_t store_hash(const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return h;
}

size_t llmc_entry_charge(const llmc_entry_info *e)
{
    return sizeof(store_entry) + strlen(e->model ? e->model : "") + 1 +
           strlen(e->vec_model ? e->vec_model : "") + 1 + strlen(e->query ? e->query : "") + 1 +
           e->body_len + 1 + (size_t)e->dim * sizeof(float);
}

uint64_t llmc_key_label(const uint8_t key[LLMC_KEY_LEN])
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | key[i];
    return v;
}

void llmc_entry_ref(const llmc_entry_info *e)
{
    atomic_fetch_add(&((store_entry *)e)->refs, 1);
}

double llmc_entry_semantic_floor(const llmc_entry_info *e)
{
    unsigned bits = atomic_load(&((store_entry *)e)->floor_bits);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void llmc_entry_raise_semantic_floor(const llmc_entry_info *e, double similarity)
{
    store_entry *se = (store_entry *)e;
    float f = (float)similarity;
    unsigned want, cur = atomic_load(&se->floor_bits);
    memcpy(&want, &f, sizeof want);
    /* Raised, never lowered: non-negative floats order like their bits. */
    while (f > 0 && want > cur && !atomic_compare_exchange_weak(&se->floor_bits, &cur, want))
        ;
}

void llmc_entry_release(const llmc_entry_info *e)
{
    if (!e)
        return;
    store_entry *se = (store_entry *)e;
    if (atomic_fetch_sub(&se->refs, 1) == 1)
        free(se);
}

/* ---- expiry heap (min on info.expires) ---- */

static void store_heap_swap(llmc_store *s, size_t a, size_t b)
{
    store_entry *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_idx = a;
    s->heap[b]->heap_idx = b;
}

static void store_heap_up(llmc_store *s, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->info.expires <= s->heap[i]->info.expires)
            break;
        store_heap_swap(s, i, parent);
        i = parent;
    }
}

static void store_heap_down(llmc_store *s, size_t i)
{
    size_t n = s->st.entries;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && s->heap[l]->info.expires < s->heap[m]->info.expires)
            m = l;
        if (r < n && s->heap[r]->info.expires < s->heap[m]->info.expires)
            m = r;
        if (m == i)
            break;
        store_heap_swap(s, i, m);
        i = m;
    }
}

/* ---- link / unlink (lock held) ---- */

static void store_lru_unlink(llmc_store *s, store_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        s->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        s->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void store_lru_push(llmc_store *s, store_entry *e)
{
    e->lprev = NULL;
    e->lnext = s->lru_head;
    if (s->lru_head)
        s->lru_head->lprev = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

static store_entry **store_slot(llmc_store *s, const uint8_t *key)
{
    store_entry **pp = &s->buckets[store_hash(key) & (s->nbuckets - 1)];
    while (*pp && memcmp((*pp)->info.key, key, LLMC_KEY_LEN) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlink e from table, LRU and heap; account; notify; drop the table's ref. */
static void store_remove(llmc_store *s, store_entry *e, int reason)
{
    store_entry **pp = store_slot(s, e->info.key);
    *pp = e->hnext;
    e->hnext = NULL;
    store_lru_unlink(s, e);
    size_t i = e->heap_idx, last = s->st.entries - 1;
    if (i != last) {
        store_heap_swap(s, i, last);
        s->st.entries--;
        store_heap_down(s, i);
        store_heap_up(s, i);
    } else {
        s->st.entries--;
    }
    s->st.bytes -= e->charge;
    switch (reason) {
    case LLMC_RM_EVICT:
        s->st.evictions++;
        break;
    case LLMC_RM_EXPIRE:
        s->st.expirations++;
        break;
    case LLMC_RM_DELETE:
    case LLMC_RM_FLUSH:
        s->st.deletes++;
        break;
    case LLMC_RM_REPLACE:
        s->st.replaces++;
        break;
    }
    if (s->p.on_remove)
        s->p.on_remove(&e->info, reason, s->p.on_remove_arg);
    llmc_entry_release(&e->info);
}

static int store_grow(llmc_store *s)
{
    size_t nb = s->nbuckets * 2;
    store_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return LLMC_ENOMEM;
    for (size_t i = 0; i < s->nbuckets; i++) {
        store_entry *e = s->buckets[i];
        while (e) {
            store_entry *next = e->hnext;
            size_t j = store_hash(e->info.key) & (nb - 1);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
    return 0;
}

static store_entry *store_entry_new(const llmc_entry_info *in)
{
    const char *vm = in->vec_model ? in->vec_model : "";
    const char *model = in->model ? in->model : "";
    const char *qt = in->query ? in->query : "";
    size_t ml = strlen(model), vml = strlen(vm), ql = strlen(qt);
    size_t vbytes = (size_t)in->dim * sizeof(float);
    size_t need = sizeof(store_entry) + ml + 1 + vml + 1 + ql + 1 + in->body_len + 1 + vbytes;
    store_entry *e = malloc(need + (vbytes ? sizeof(float) : 0));
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->info = *in;
    char *p = (char *)(e + 1);
    memcpy(p, model, ml + 1);
    e->info.model = p;
    p += ml + 1;
    memcpy(p, vm, vml + 1);
    e->info.vec_model = p;
    p += vml + 1;
    memcpy(p, qt, ql + 1);
    e->info.query = p;
    p += ql + 1;
    if (in->body_len)
        memcpy(p, in->body, in->body_len);
    p[in->body_len] = 0;
    e->info.body = p;
    p += in->body_len + 1;
    if (vbytes) {
        /* align the vector to a float boundary */
        uintptr_t a = ((uintptr_t)p + sizeof(float) - 1) & ~(uintptr_t)(sizeof(float) - 1);
        memcpy((void *)a, in->vec, vbytes);
        e->info.vec = (const float *)a;
    } else {
        e->info.vec = NULL;
    }
    e->charge = need;
    atomic_init(&e->refs, 1);
    return e;
}

int llmc_store_put(llmc_store *s, const llmc_entry_info *in, int64_t now,
                   const llmc_entry_info **out)
{
    if (!in || (in->body_len && !in->body) || (in->dim && !in->vec))
        return LLMC_EINVAL;
    if (in->expires <= now)
        return LLMC_EINVAL;
    if (llmc_entry_charge(in) > s->p.max_bytes)
        return LLMC_ETOOBIG;
    store_entry *e = store_entry_new(in); /* copy outside the lock */
    if (!e)
        return LLMC_ENOMEM;
    pthread_mutex_lock(&s->mu);
    store_entry **pp = store_slot(s, e->info.key);
    if (*pp)
        store_remove(s, *pp, LLMC_RM_REPLACE);
    /* Make room: expired first, then least recently used. */
    while (s->st.bytes + e->charge > s->p.max_bytes && s->st.entries) {
        if (s->heap[0]->info.expires <= now)
            store_remove(s, s->heap[0], LLMC_RM_EXPIRE);
        else
            store_remove(s, s->lru_tail, LLMC_RM_EVICT);
    }
    if (s->st.entries + 1 > s->nbuckets)
        store_grow(s); /* on failure chains just grow longer */
    if (s->st.entries + 1 > s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 1024;
        store_entry **h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            pthread_mutex_unlock(&s->mu);
            free(e);
            return LLMC_ENOMEM;
        }
        s->heap = h;
        s->heap_cap = cap;
    }
    pp = store_slot(s, e->info.key);
    e->hnext = NULL;
    *pp = e;
    store_lru_push(s, e);
    e->bumped = now;
    e->heap_idx = s->st.entries;
    s->heap[s->st.entries++] = e;
    store_heap_up(s, e->heap_idx);
    s->st.bytes += e->charge;
    s->st.inserts++;
    if (out) {
        atomic_fetch_add(&e->refs, 1);
        *out = &e->info;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* A found entry: dead → removed, NULL; live → most recent, a new reference.
 * Lock held. */
static const llmc_entry_info *store_take(llmc_store *s, store_entry *e, int64_t now)
{
    if (!e)
        return NULL;
    if (e->info.expires <= now) {
        store_remove(s, e, LLMC_RM_EXPIRE);
        return NULL;
    }
    /* Move to the head at most once a second (memcached's rule): a hot entry
     * is not relinked on every hit, and second-grained LRU order is plenty. */
    if (e->bumped != now) {
        store_lru_unlink(s, e);
        store_lru_push(s, e);
        e->bumped = now;
    }
    atomic_fetch_add(&e->refs, 1);
    return &e->info;
}

const llmc_entry_info *llmc_store_get(llmc_store *s, const uint8_t key[LLMC_KEY_LEN], int64_t now)
{
    pthread_mutex_lock(&s->mu);
    const llmc_entry_info *r = store_take(s, *store_slot(s, key), now);
    pthread_mutex_unlock(&s->mu);
    return r;
}

const llmc_entry_info *llmc_store_get_by_label(llmc_store *s, uint64_t label, int64_t now)
{
    uint8_t k8[8];
    for (int i = 0; i < 8; i++)
        k8[i] = (uint8_t)(label >> (8 * i));
    pthread_mutex_lock(&s->mu);
    store_entry *e = s->buckets[store_hash(k8) & (s->nbuckets - 1)];
    while (e && memcmp(e->info.key, k8, 8) != 0)
        e = e->hnext;
    const llmc_entry_info *r = store_take(s, e, now);
    pthread_mutex_unlock(&s->mu);
    return r;
}

int llmc_store_delete(llmc_store *s, const uint8_t key[LLMC_KEY_LEN])
{
    int rc = LLMC_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    store_entry *e = *store_slot(s, key);
    if (e) {
        store_remove(s, e, LLMC_RM_DELETE);
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

size_t llmc_store_flush(llmc_store *s, uint64_t ns_hash, int all)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    store_entry *e = s->lru_head;
    while (e) {
        store_entry *next = e->lnext;
        if (all || (ns_hash && e->info.ns_hash == ns_hash)) {
            store_remove(s, e, LLMC_RM_FLUSH);
            n++;
        }
        e = next;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t llmc_store_expire(llmc_store *s, int64_t now, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    while (n < max && s->st.entries && s->heap[0]->info.expires <= now) {
        store_remove(s, s->heap[0], LLMC_RM_EXPIRE);
        n++;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t llmc_store_foreach(llmc_store *s, void (*fn)(const llmc_entry_info *e, void *arg), void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (store_entry *e = s->lru_tail; e; e = e->lprev, n++)
        fn(&e->info, arg);
    pthread_mutex_unlock(&s->mu);
    return n;
}

void llmc_store_get_stats(llmc_store *s, llmc_store_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    pthread_mutex_unlock(&s->mu);
}

void llmc_store_free(llmc_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        store_entry *e = s->buckets[i];
        while (e) {
            store_entry *next = e->hnext;
            llmc_entry_release(&e->info);
            e = next;
        }
    }
    pthread_mutex_destroy(&s->mu);
    free(s->buckets);
    free(s->heap);
    free(s);
}
