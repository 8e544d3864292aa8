/*
 * prefix.c — the prefix-affinity router: an approximate radix tree of what
 * each backend recently served, and the routing policies (llmcache.h).
 *
 * Design. The tree is a radix tree over key bytes (edges carry labels; a
 * node's children differ in their first label byte). Each node holds, per
 * backend, the time (ms) it was last on the path of a key recorded for that
 * backend (0 = never) and a bit mask of the backends with a mark. A key's
 * match for backend b is the depth of the deepest node on its path that b
 * marked, counting a partially matched last edge as far as it matches
 * (marking a key marks its whole path, and the stamp of a node is never
 * older than a descendant's, so b's marks along any path are a prefix of
 * it — "ancestor-closed").
 *
 * Bounds. Every allocation is counted in r->bytes (node header, stamps,
 * label, child array). Expiry removes marks older than max_age_s, then
 * every node left without marks (with its subtree, which is markless by
 * ancestor-closure). The memory bound removes least-recently-used leaves,
 * oldest first, whole (all backends), until the tree is under 7/8 of
 * max_bytes. Both walk the tree iteratively (keys can be 16 KiB deep).
 *
 * Invariants: root has no label and is never freed; a non-root node has a
 * label of length >= 1 and mask != 0 after any public call; bytes and
 * nodes equal the sums over the tree.
 *
 * Locking: none. A router belongs to one thread (the daemon's event loop).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmcache.h"

typedef struct pnode {
    struct pnode *parent;
    struct pnode **kids;
    uint32_t n_kids, cap_kids;
    char *label;
    size_t label_len;
    uint64_t mask;
    uint64_t stamp[]; /* one per backend */
} pnode;

struct llmc_prefix_router {
    llmc_prefix_params p;
    int n;
    pnode *root;
    unsigned rr;
    uint64_t last_expire;
    llmc_prefix_stats st; /* st.held_bytes[b]: label bytes of nodes b marks */
};

/* ---- nodes ---------------------------------------------------------------- */

static size_t prefix_node_bytes(const llmc_prefix_router *r, const pnode *x)
{
    return sizeof *x + (size_t)r->n * sizeof(uint64_t) + x->label_len +
           x->cap_kids * sizeof *x->kids;
}

static pnode *prefix_node_new(llmc_prefix_router *r, const char *label, size_t len)
{
    pnode *x = calloc(1, sizeof *x + (size_t)r->n * sizeof(uint64_t));
    if (!x)
        return NULL;
    if (len) {
        x->label = malloc(len);
        if (!x->label) {
            free(x);
            return NULL;
        }
        memcpy(x->label, label, len);
        x->label_len = len;
    }
    r->st.bytes += prefix_node_bytes(r, x);
    r->st.nodes++;
    return x;
}

/* Free x and its subtree (x must already be unlinked from its parent). */
static void prefix_free_tree(llmc_prefix_router *r, pnode *x)
{
    pnode **stack = NULL;
    size_t n = 0, cap = 0;
    pnode *cur = x;
    for (;;) {
        for (uint32_t i = 0; i < cur->n_kids; i++) {
            if (n == cap) {
                size_t c = cap ? cap * 2 : 64;
                pnode **ns = realloc(stack, c * sizeof *ns);
                if (!ns) { /* cannot walk further: free depth-first recursively instead */
                    prefix_free_tree(r, cur->kids[i]);
                    continue;
                }
                stack = ns;
                cap = c;
            }
            stack[n++] = cur->kids[i];
        }
        for (int b = 0; b < r->n; b++)
            if (cur->mask >> b & 1)
                r->st.held_bytes[b] -= cur->label_len;
        r->st.bytes -= prefix_node_bytes(r, cur);
        r->st.nodes--;
        free(cur->kids);
        free(cur->label);
        free(cur);
        if (!n)
            break;
        cur = stack[--n];
    }
    free(stack);
}

static int prefix_add_kid(llmc_prefix_router *r, pnode *p, pnode *k)
{
    if (p->n_kids == p->cap_kids) {
        uint32_t c = p->cap_kids ? p->cap_kids * 2 : 2;
        pnode **nk = realloc(p->kids, c * sizeof *nk);
        if (!nk)
            return LLMC_ENOMEM;
        r->st.bytes += (c - p->cap_kids) * sizeof *nk;
        p->kids = nk;
        p->cap_kids = c;
    }
    p->kids[p->n_kids++] = k;
    k->parent = p;
    return 0;
}

static void prefix_unlink(pnode *p, pnode *k)
{
    for (uint32_t i = 0; i < p->n_kids; i++)
        if (p->kids[i] == k) {
            p->kids[i] = p->kids[--p->n_kids];
            return;
        }
}

static pnode *prefix_kid(const pnode *p, unsigned char c)
{
    for (uint32_t i = 0; i < p->n_kids; i++)
        if ((unsigned char)p->kids[i]->label[0] == c)
            return p->kids[i];
    return NULL;
}

static size_t prefix_common(const char *a, size_t na, const char *b, size_t nb)
{
    size_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* ---- time ------------------------------------------------------------------- */

static uint64_t prefix_now(const llmc_prefix_router *r)
{
    uint64_t t;
    if (r->p.clock_ms) {
        t = r->p.clock_ms(r->p.clock_ud);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    }
    return t ? t : 1; /* 0 means "no mark" */
}

static uint64_t prefix_max_age_ms(const llmc_prefix_router *r)
{
    return r->p.max_age_s > 0 ? (uint64_t)(r->p.max_age_s * 1000.0) : 0;
}

static int prefix_fresh(const llmc_prefix_router *r, const pnode *x, int b, uint64_t now)
{
    uint64_t s = x->stamp[b], age = prefix_max_age_ms(r);
    return s && (!age || now - s <= age);
}

/* ---- pruning: drop marks (one backend's, or stale ones) and empty nodes ----- */

static void prefix_prune(llmc_prefix_router *r, int forget, uint64_t cutoff)
{
    pnode **stack = NULL;
    size_t n = 0, cap = 0;
    pnode *cur = r->root;
    for (;;) {
        for (uint32_t i = 0; i < cur->n_kids;) {
            pnode *k = cur->kids[i];
            for (int b = 0; b < r->n; b++) {
                if (!(k->mask >> b & 1))
                    continue;
                if (b == forget || (cutoff && k->stamp[b] < cutoff)) {
                    k->mask &= ~(1ull << b);
                    r->st.held_bytes[b] -= k->label_len;
                    k->stamp[b] = 0;
                    if (b != forget)
                        r->st.expired++;
                }
            }
            if (!k->mask) {
                cur->kids[i] = cur->kids[--cur->n_kids];
                prefix_free_tree(r, k);
                continue;
            }
            if (n == cap) {
                size_t c = cap ? cap * 2 : 64;
                pnode **ns = realloc(stack, c * sizeof *ns);
                if (!ns) {
                    i++;
                    continue; /* leave this subtree for a later pass */
                }
                stack = ns;
                cap = c;
            }
            stack[n++] = k;
            i++;
        }
        if (!n)
            break;
        cur = stack[--n];
    }
    free(stack);
    for (int b = 0; b < r->n; b++)
        if (forget == b || (cutoff && r->root->stamp[b] < cutoff)) {
            r->root->stamp[b] = 0;
            r->root->mask &= ~(1ull << b);
        }
}

typedef struct {
    pnode *x;
    uint64_t t;
} prefix_leaf;

static int prefix_leaf_cmp(const void *a, const void *b)
{
    uint64_t x = ((const prefix_leaf *)a)->t, y = ((const prefix_leaf *)b)->t;
    return x < y ? -1 : x > y;
}

/* Remove least recently used leaves until bytes <= target. */
static void prefix_evict(llmc_prefix_router *r, size_t target)
{
    while (r->st.bytes > target && r->root->n_kids) {
        size_t nl = 0, cap = 0, ns = 0, scap = 0;
        prefix_leaf *leaves = NULL;
        pnode **stack = NULL;
        pnode *cur = r->root;
        int oom = 0;
        for (;;) {
            for (uint32_t i = 0; i < cur->n_kids && !oom; i++) {
                pnode *k = cur->kids[i];
                if (k->n_kids) {
                    if (ns == scap) {
                        size_t c = scap ? scap * 2 : 64;
                        pnode **nsk = realloc(stack, c * sizeof *nsk);
                        if (!nsk) {
                            oom = 1;
                            break;
                        }
                        stack = nsk;
                        scap = c;
                    }
                    stack[ns++] = k;
                    continue;
                }
                if (nl == cap) {
                    size_t c = cap ? cap * 2 : 64;
                    prefix_leaf *nlv = realloc(leaves, c * sizeof *nlv);
                    if (!nlv) {
                        oom = 1;
                        break;
                    }
                    leaves = nlv;
                    cap = c;
                }
                uint64_t t = 0;
                for (int b = 0; b < r->n; b++)
                    if (k->stamp[b] > t)
                        t = k->stamp[b];
                leaves[nl++] = (prefix_leaf){k, t};
            }
            if (!ns || oom)
                break;
            cur = stack[--ns];
        }
        free(stack);
        if (!nl) { /* no memory even to list leaves: drop the oldest root child */
            free(leaves);
            pnode *k = r->root->kids[0];
            prefix_unlink(r->root, k);
            prefix_free_tree(r, k);
            r->st.evicted++;
            continue;
        }
        qsort(leaves, nl, sizeof *leaves, prefix_leaf_cmp);
        for (size_t i = 0; i < nl && r->st.bytes > target; i++) {
            prefix_unlink(leaves[i].x->parent, leaves[i].x);
            prefix_free_tree(r, leaves[i].x);
            r->st.evicted++;
        }
        free(leaves);
    }
}

/* ---- public API ------------------------------------------------------------------ */

llmc_prefix_params llmc_prefix_default_params(void)
{
    llmc_prefix_params p;
    memset(&p, 0, sizeof p);
    p.policy = LLMC_ROUTE_PREFIX;
    p.match_threshold = 0.5;
    p.balance_abs_threshold = 32;
    p.balance_rel_threshold = 1.0001;
    p.max_bytes = (size_t)64 << 20;
    p.max_age_s = 600.0;
    p.max_key_bytes = 16384;
    return p;
}

int llmc_prefix_policy_parse(const char *name)
{
    if (!name)
        return LLMC_EINVAL;
    if (!strcmp(name, "round-robin"))
        return LLMC_ROUTE_ROUND_ROBIN;
    if (!strcmp(name, "least-loaded"))
        return LLMC_ROUTE_LEAST_LOADED;
    if (!strcmp(name, "prefix-affinity") || !strcmp(name, "prefix"))
        return LLMC_ROUTE_PREFIX;
    return LLMC_EINVAL;
}

const char *llmc_prefix_policy_name(int policy)
{
    switch (policy) {
    case LLMC_ROUTE_ROUND_ROBIN:
        return "round-robin";
    case LLMC_ROUTE_LEAST_LOADED:
        return "least-loaded";
    case LLMC_ROUTE_PREFIX:
        return "prefix-affinity";
    }
    return "unknown";
}

llmc_prefix_router *llmc_prefix_router_new(const llmc_prefix_params *p, int n_backends, int *err)
{
    llmc_prefix_params d = llmc_prefix_default_params();
    if (!p)
        p = &d;
    if (n_backends < 1 || n_backends > LLMC_PREFIX_MAX_BACKENDS || p->policy < 0 ||
        p->policy > LLMC_ROUTE_PREFIX || p->match_threshold < 0 || p->match_threshold > 1 ||
        p->balance_abs_threshold < 0 || p->balance_rel_threshold < 1.0 || p->max_age_s < 0 ||
        p->max_bytes == 0 || p->max_key_bytes == 0) {
        if (err)
            *err = LLMC_EINVAL;
        return NULL;
    }
    llmc_prefix_router *r = calloc(1, sizeof *r);
    if (!r) {
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    r->p = *p;
    r->n = n_backends;
    r->root = prefix_node_new(r, NULL, 0);
    if (!r->root) {
        free(r);
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    r->last_expire = prefix_now(r);
    return r;
}

void llmc_prefix_router_free(llmc_prefix_router *r)
{
    if (!r)
        return;
    prefix_free_tree(r, r->root);
    free(r);
}

/* Per backend: matched length, and the stamp of the deepest node it matched
 * on (how recently it was sent this prefix; 0 when no match). */
static size_t prefix_match_ex(llmc_prefix_router *r, const char *key, size_t len, size_t *matched,
                              uint64_t *stamps)
{
    uint64_t now = prefix_now(r);
    size_t best = 0;
    if (len > r->p.max_key_bytes)
        len = r->p.max_key_bytes;
    for (int b = 0; b < r->n; b++) {
        matched[b] = 0;
        if (stamps)
            stamps[b] = 0;
    }
    if (!key)
        return 0;
    pnode *x = r->root;
    size_t i = 0;
    while (i < len) {
        pnode *k = prefix_kid(x, (unsigned char)key[i]);
        if (!k)
            break;
        size_t c = prefix_common(k->label, k->label_len, key + i, len - i);
        for (int b = 0; b < r->n; b++)
            if ((k->mask >> b & 1) && prefix_fresh(r, k, b, now)) {
                matched[b] = i + c;
                if (stamps)
                    stamps[b] = k->stamp[b];
                if (i + c > best)
                    best = i + c;
            }
        if (c < k->label_len)
            break;
        x = k;
        i += c;
    }
    return best;
}

size_t llmc_prefix_match(llmc_prefix_router *r, const char *key, size_t len, size_t *matched)
{
    return prefix_match_ex(r, key, len, matched, NULL);
}

/* Least loaded healthy backend; among equal loads the one holding the
 * fewest prefix bytes (as SGLang sends a new prefix to the smallest tree,
 * this spreads prefixes evenly when loads are level), then rotating. */
static int prefix_least_loaded(llmc_prefix_router *r, const int *load, const int *healthy)
{
    int best = -1;
    static const size_t level[LLMC_PREFIX_MAX_BACKENDS]; /* plain least-loaded: no tie-break */
    const size_t *held = r->p.policy == LLMC_ROUTE_PREFIX ? r->st.held_bytes : level;
    for (int i = 0; i < r->n; i++) {
        int b = (int)((r->rr + (unsigned)i) % (unsigned)r->n);
        if (healthy && !healthy[b])
            continue;
        if (best < 0 || load[b] < load[best] || (load[b] == load[best] && held[b] < held[best]))
            best = b;
    }
    r->rr++;
    return best;
}

/* SGLang's imbalance test, applied per backend: ok[b] = b is healthy and
 * not overloaded (its gap to the least loaded exceeds both thresholds).
 * Returns 0, or -1 when no backend is healthy. */
static int prefix_guard(const llmc_prefix_router *r, const int *load, const int *healthy, int *ok)
{
    int lo = 0, any = 0;
    for (int b = 0; b < r->n; b++) {
        if (healthy && !healthy[b])
            continue;
        if (!any || load[b] < lo)
            lo = load[b];
        any = 1;
    }
    if (!any)
        return -1;
    for (int b = 0; b < r->n; b++)
        ok[b] = (!healthy || healthy[b]) &&
                !(load[b] - lo > r->p.balance_abs_threshold &&
                  (double)load[b] > (double)lo * r->p.balance_rel_threshold);
    return 0;
}

/* A rendezvous hash of (tie, b): the same order on every gateway. */
static uint64_t prefix_rendezvous(uint64_t tie, int b)
{
    uint64_t v = (tie ^ ((uint64_t)b + 1) * 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    return v ^ (v >> 31);
}

/* A decision made on the engines' events: counted as routed, precise and
 * of its kind (affinity, balance or miss); returns the backend. */
static int prefix_decided(llmc_prefix_router *r, uint64_t *kind, int b)
{
    r->st.routed++;
    r->st.precise++;
    (*kind)++;
    return b;
}

int llmc_prefix_route_held(llmc_prefix_router *r, const llmc_prefix_held *h, const int *load,
                           const int *healthy)
{
    if (!r || !h || !h->held || !load)
        return LLMC_EINVAL;
    int ok[LLMC_PREFIX_MAX_BACKENDS];
    if (prefix_guard(r, load, healthy, ok))
        return LLMC_ENOTFOUND;
    const size_t *held = h->held;
    size_t best = 0, best_any = 0, floor = SIZE_MAX;
    for (int b = 0; b < r->n; b++) {
        if (healthy && !healthy[b])
            continue;
        if (held[b] > best_any)
            best_any = held[b];
        if (ok[b] && held[b] > best)
            best = held[b];
        if (held[b] < floor)
            floor = held[b];
    }
    /* A run every backend holds (a preamble all prompts share) says nothing,
     * and a run shorter than match_threshold of the prompt's blocks is worth
     * less than staying where the prefix was (stickiness): where the
     * engines' events say it was last held deeper than now, else the
     * smallest tree for a new prefix, else the caller's tree. */
    int fresh = best_any <= floor; /* nobody holds more than the common preamble */
    if (fresh || (double)best_any <= r->p.match_threshold * (double)h->n_blocks) {
        int last = h->last;
        if (last >= 0 && last < r->n && (!healthy || healthy[last]) && h->last_depth > best_any &&
            h->last_depth > floor) {
            if (ok[last]) {
                r->st.remembered++;
                return prefix_decided(r, &r->st.affinity, last);
            }
            /* where it was is overloaded */
            return prefix_decided(r, &r->st.balance, prefix_least_loaded(r, load, healthy));
        }
        const size_t *size = h->homed ? h->homed : h->total;
        if (!fresh || !size)
            return LLMC_ENOTFOUND;
        /* a new prefix: where the fleet has placed the fewest blocks
         * (homed), or SGLang's "smallest tree" with the engines' real trees
         * (total): sizes every gateway sees alike, unlike its own tree */
        int pick = -1;
        for (int b = 0; b < r->n; b++) {
            if (!ok[b])
                continue;
            if (pick < 0 || size[b] < size[pick] ||
                (size[b] == size[pick] &&
                 prefix_rendezvous(h->tie, b) > prefix_rendezvous(h->tie, pick)))
                pick = b;
        }
        return prefix_decided(r, &r->st.miss, pick);
    }
    /* The longest holder is overloaded and the others that are not hold less
     * than half as much: spill to the least loaded, as the tree does, rather
     * than to an engine that happens to hold the first block or two. */
    if (!best || best * 2 < best_any)
        return prefix_decided(r, &r->st.balance, prefix_least_loaded(r, load, healthy));
    /* Among equal holders that are not overloaded: a rendezvous hash of
     * (tie, backend), not the load. Gateways see the same events but not
     * each other's loads; choosing by load made two gateways pick different
     * holders of one prefix for as long as both held it, so both kept it
     * warm and, in pools that evict, that second copy cost another prefix
     * its blocks. Different prefixes still spread over the holders; the
     * load guard above still moves a prefix off an overloaded holder. */
    int pick = -1;
    for (int b = 0; b < r->n; b++) {
        if (!ok[b] || held[b] != best)
            continue;
        if (pick < 0 || prefix_rendezvous(h->tie, b) > prefix_rendezvous(h->tie, pick))
            pick = b;
    }
    return prefix_decided(r, &r->st.affinity, pick);
}

int llmc_prefix_route(llmc_prefix_router *r, const char *key, size_t len, const int *load,
                      const int *healthy)
{
    if (!r || !load || (!key && len))
        return LLMC_EINVAL;
    int ok[LLMC_PREFIX_MAX_BACKENDS];
    if (prefix_guard(r, load, healthy, ok))
        return LLMC_ENOTFOUND;
    r->st.routed++;
    if (r->p.policy == LLMC_ROUTE_ROUND_ROBIN) {
        for (int i = 0; i < r->n; i++) {
            int b = (int)((r->rr + (unsigned)i) % (unsigned)r->n);
            if (!healthy || healthy[b]) {
                r->rr = (unsigned)b + 1;
                return b;
            }
        }
    }
    if (r->p.policy == LLMC_ROUTE_LEAST_LOADED)
        return prefix_least_loaded(r, load, healthy);
    size_t matched[LLMC_PREFIX_MAX_BACKENDS];
    uint64_t stamps[LLMC_PREFIX_MAX_BACKENDS];
    if (len > r->p.max_key_bytes)
        len = r->p.max_key_bytes;
    prefix_match_ex(r, key, len, matched, stamps);
    size_t best = 0, best_any = 0;
    double need = r->p.match_threshold * (double)len;
    for (int b = 0; b < r->n; b++) {
        if (healthy && !healthy[b])
            continue;
        if (matched[b] > best_any)
            best_any = matched[b];
        if (ok[b] && matched[b] > best)
            best = matched[b];
    }
    if (best > 0 && (double)best > need) {
        /* among the backends with the longest match that are not
         * overloaded: the least loaded, then the one sent this prefix most
         * recently (likeliest to still hold it, and it keeps a prefix on one
         * backend until load spills it over) */
        int pick = -1;
        for (int b = 0; b < r->n; b++) {
            if (!ok[b] || matched[b] != best)
                continue;
            if (pick < 0 || load[b] < load[pick] ||
                (load[b] == load[pick] && stamps[b] > stamps[pick]))
                pick = b;
        }
        r->st.affinity++;
        return pick;
    }
    if (best_any > 0 && (double)best_any > need)
        r->st.balance++; /* the backends holding the prefix are overloaded */
    else
        r->st.miss++;
    return prefix_least_loaded(r, load, healthy);
}

static void prefix_mark(llmc_prefix_router *r, pnode *x, int b, uint64_t now)
{
    if (!(x->mask >> b & 1)) {
        x->mask |= 1ull << b;
        r->st.held_bytes[b] += x->label_len;
    }
    x->stamp[b] = now;
}

int llmc_prefix_record(llmc_prefix_router *r, int backend, const char *key, size_t len)
{
    if (!r || backend < 0 || backend >= r->n || (!key && len))
        return LLMC_EINVAL;
    if (len > r->p.max_key_bytes)
        len = r->p.max_key_bytes;
    uint64_t now = prefix_now(r);
    int rc = 0;
    pnode *x = r->root;
    prefix_mark(r, x, backend, now);
    size_t i = 0;
    while (i < len) {
        pnode *k = prefix_kid(x, (unsigned char)key[i]);
        if (!k) {
            pnode *leaf = prefix_node_new(r, key + i, len - i);
            if (!leaf || prefix_add_kid(r, x, leaf)) {
                if (leaf)
                    prefix_free_tree(r, leaf);
                rc = LLMC_ENOMEM;
                break;
            }
            prefix_mark(r, leaf, backend, now);
            break;
        }
        size_t c = prefix_common(k->label, k->label_len, key + i, len - i);
        if (c < k->label_len) { /* split k's edge at c */
            pnode *mid = prefix_node_new(r, k->label, c);
            if (!mid || prefix_add_kid(r, mid, k)) {
                if (mid)
                    prefix_free_tree(r, mid);
                rc = LLMC_ENOMEM;
                break;
            }
            /* mid takes c bytes of k's label under the same marks: the
             * held bytes of every backend are unchanged */
            memcpy(mid->stamp, k->stamp, (size_t)r->n * sizeof(uint64_t));
            mid->mask = k->mask;
            prefix_unlink(x, k);
            k->parent = mid;
            /* x lost k and gains mid: the child array keeps its capacity */
            x->kids[x->n_kids++] = mid;
            mid->parent = x;
            memmove(k->label, k->label + c, k->label_len - c);
            k->label_len -= c;
            r->st.bytes -= c;
            k = mid;
        }
        prefix_mark(r, k, backend, now);
        x = k;
        i += c;
    }
    uint64_t age = prefix_max_age_ms(r);
    if (age && now - r->last_expire >= age / 8) {
        r->last_expire = now;
        llmc_prefix_expire(r);
    }
    if (r->st.bytes > r->p.max_bytes)
        prefix_evict(r, r->p.max_bytes / 8 * 7);
    return rc;
}

int llmc_prefix_forget_backend(llmc_prefix_router *r, int backend)
{
    if (!r || backend < 0 || backend >= r->n)
        return LLMC_EINVAL;
    prefix_prune(r, backend, 0);
    return 0;
}

void llmc_prefix_expire(llmc_prefix_router *r)
{
    uint64_t age = prefix_max_age_ms(r), now = prefix_now(r);
    if (!age || now <= age)
        return;
    prefix_prune(r, -1, now - age);
}

void llmc_prefix_get_stats(const llmc_prefix_router *r, llmc_prefix_stats *st)
{
    *st = r->st;
}
