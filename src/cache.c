/*
 * cache.c — llmc_cache: the tiers, the store backend, persistence and the
 * policy as one object.
 *
 * Why one object. The request path is prepare → exact → (fetch) →
 * semantic → upstream → put, and every step has rules: an entry is served
 * only while it lives and is no older than the client's max-age; an answer
 * is stored only when it parsed, the policy allows it, and then in memory,
 * in the semantic index and in the backend together. When the daemon
 * assembled these from the parts, the rules were written once per call
 * site and drifted (the exact path honoured max-age, the semantic path did
 * not, so a stale entry refused as HIT-EXACT came back as HIT-SEMANTIC).
 * Here each rule is written once: cache_fresh() is the only age check,
 * cache_insert() the only "store everywhere" sequence, cache_on_remove()
 * the only place that keeps index and backend in step when the store lets
 * an entry go (expiry, eviction, delete, flush, replace).
 *
 * The store backend seam (llmc_cache_backend_ops in llmcache.h). The
 * memory store (store.c) is always here and always answers
 * llmc_cache_get_exact synchronously: the exact-hit fast path is one hash
 * lookup and one comparison, whatever the backend. Below it:
 *   - the SQLite backend (cache_sqlite.c) mirrors the memory store: loaded
 *     into it at start, written behind on every put, and told of every
 *     removal through `removed` (near_cache = 0);
 *   - a remote backend (Redis, the fleet issue) plugs in with
 *     near_cache = 1: the memory store becomes a bounded near cache. Its
 *     `load` fills the near cache (and, through llmc_cache_notify_put, the
 *     index) with live entries; `loop_attach` gives it one async context
 *     per daemon event loop (hiredis's libevent adapter on that loop's
 *     event_base); a near-cache miss calls llmc_cache_fetch, which the
 *     backend completes later on the same loop (cache_fetch_done puts the
 *     entry in the near cache and applies the age rule before the caller
 *     sees it); put/del/flush may queue their commands and return; the
 *     change stream it reads from other instances comes back as
 *     llmc_cache_notify_put / _delete, which update the near cache and the
 *     index without writing back. Near-cache evictions then leave the index
 *     alone (the entry still exists remotely); the backend's deletes remove
 *     it. Redis down: fetch fails (a miss), put is dropped — never an error
 *     to the client.
 *
 * Invariants:
 *   - An entry is in the semantic index only while it is in the memory
 *     store (near_cache = 0), or in the backend (near_cache = 1).
 *   - With the SQLite backend, SQLite holds what memory holds, up to the
 *     write-behind interval.
 *   - No entry reaches a caller from llmc_cache_get_exact, _fetch or
 *     _get_semantic that cache_fresh() refuses.
 *
 * Locking: none of its own. The store has its lock; the index its own; the
 * order is store → index (the store calls cache_on_remove with its lock
 * held; nothing here holds the index lock while calling the store). The
 * counters are atomics.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_sqlite.h"
#include "llmcache.h"

struct llmc_cache {
    llmc_cache_params p;
    llmc_store *store;
    llmc_policy *policy;
    llmc_semantic *sem; /* NULL: semantic tier off; set once, before threads */
    const llmc_cache_backend_ops *ops;
    void *be;
    atomic_uint_fast64_t puts, put_refused;
};

static const llmc_cache_backend_ops cache_memory_ops = {.name = "memory"};

llmc_cache_params llmc_cache_default_params(void)
{
    llmc_cache_params p;
    memset(&p, 0, sizeof p);
    p.max_bytes = llmc_store_default_params().max_bytes;
    p.ttl_s = 3600;
    p.policy = llmc_policy_default_params();
    p.flush_interval_ms = 1000;
    return p;
}

/* The one age rule: e may be served at now to a client that accepts
 * entries up to max_age_s old (-1: any). Expiry is the store's (a get never
 * returns an expired entry). */
static inline int cache_fresh(const llmc_entry_info *e, long max_age_s, int64_t now)
{
    return max_age_s < 0 || now - e->created <= max_age_s;
}

/* The store let e go: the index and the backend follow. Store lock held. */
static void cache_on_remove(const llmc_entry_info *e, int reason, void *arg)
{
    llmc_cache *c = arg;
    if (c->ops->removed)
        c->ops->removed(c->be, e, reason);
    if (c->sem && e->dim && !c->ops->near_cache)
        llmc_semantic_remove(c->sem, e->key);
}

llmc_cache *llmc_cache_new(const llmc_cache_params *p, int *err, char *errbuf, size_t errlen)
{
    int e = LLMC_ENOMEM;
    if (errbuf && errlen)
        errbuf[0] = 0;
    llmc_cache *c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->p = p ? *p : llmc_cache_default_params();
    c->ops = &cache_memory_ops;
    c->policy = llmc_policy_new(&c->p.policy, &e);
    if (!c->policy)
        goto fail;
    llmc_store_params sp = llmc_store_default_params();
    sp.max_bytes = c->p.max_bytes;
    sp.on_remove = cache_on_remove;
    sp.on_remove_arg = c;
    c->store = llmc_store_new(&sp, &e);
    if (!c->store)
        goto fail;
    if (c->p.backend) {
        c->ops = c->p.backend;
        c->be = c->p.backend_state;
    } else if (c->p.persist_path) {
        c->be =
            cache_sqlite_open(c->p.persist_path, c->p.persist_sync, c->p.flush_interval_ms,
                              c->p.persist_on_error, c->p.persist_on_error_arg, &e, errbuf, errlen);
        if (!c->be)
            goto fail;
        c->ops = &cache_sqlite_ops;
    }
    c->p.persist_path = NULL; /* the caller's string: not kept */
    if (c->ops->load) {
        e = c->ops->load(c->be, c->store, (int64_t)time(NULL));
        if (e) {
            if (errbuf && errlen && !errbuf[0])
                snprintf(errbuf, errlen, "loading entries from the %s backend failed",
                         c->ops->name);
            goto fail;
        }
    }
    return c;
fail:
    llmc_cache_free(c);
    if (err)
        *err = e;
    return NULL;
}

void llmc_cache_free(llmc_cache *c)
{
    if (!c)
        return;
    /* The backend first: it finishes its queued writes, which hold their
     * own references; freeing the store removes nothing from it. */
    if (c->ops && c->ops->close && c->be)
        c->ops->close(c->be);
    llmc_store_free(c->store);
    llmc_semantic_free(c->sem);
    llmc_policy_free(c->policy);
    free(c);
}

static void cache_index_entry(const llmc_entry_info *e, void *arg)
{
    if (e->dim && !(e->flags & LLMC_ENTRY_EXACT_ONLY))
        llmc_semantic_add(arg, e); /* another model's vector: refused, fine */
}

int llmc_cache_enable_semantic(llmc_cache *c, const llmc_semantic_params *p)
{
    if (c->sem)
        return LLMC_EEXIST;
    int e = 0;
    llmc_semantic *sem = llmc_semantic_new(p, &e);
    if (!sem)
        return e ? e : LLMC_ENOMEM;
    llmc_store_foreach(c->store, cache_index_entry, sem);
    c->sem = sem;
    return 0;
}

const char *llmc_cache_semantic_model(const llmc_cache *c)
{
    return c->sem ? llmc_semantic_model(c->sem) : NULL;
}

const char *llmc_cache_personal_header(const llmc_cache *c)
{
    return llmc_policy_personal_header(c->policy);
}

int llmc_cache_prepare(llmc_cache *c, const llmc_cache_request *r, llmc_cache_prep *out,
                       const char **why)
{
    memset(out, 0, sizeof *out);
    llmc_tenant t;
    llmc_tenant_make(&t, r->authorization, r->ns, r->ns && r->ns_shared);
    if (!(r->ns && r->ns_shared)) {
        llmc_tenant_scope(&t, "openai-organization", r->organization);
        llmc_tenant_scope(&t, "openai-project", r->project);
    }
    llmc_tenant_scope(&t, "openai-beta", r->beta);
    llmc_canon cn;
    int rc = llmc_canon_request(r->ep, &t, r->body, r->len, c->p.canon_flags, &cn, why);
    if (rc)
        return rc;
    /* Policy: may this request be answered from the cache, stored, how long? */
    llmc_policy_request pr;
    memset(&pr, 0, sizeof pr);
    pr.endpoint = r->ep == LLMC_EP_CHAT          ? "/v1/chat/completions"
                  : r->ep == LLMC_EP_COMPLETIONS ? "/v1/completions"
                                                 : "/v1/embeddings";
    pr.temperature = cn.temperature;
    pr.n = (int)cn.n;
    pr.user = cn.user;
    pr.personal = r->personal;
    pr.has_tools = cn.has_tools;
    pr.query_text = cn.query;
    pr.query_len = cn.query_len;
    pr.system_text = cn.system;
    pr.system_len = cn.system_len;
    pr.cache_control = r->cache_control;
    llmc_policy_decide(c->policy, &pr, &out->dec); /* BYPASS at worst */
    out->ep = r->ep;
    out->stream = cn.stream && r->ep != LLMC_EP_EMBEDDINGS;
    memcpy(out->key, cn.key, LLMC_KEY_LEN);
    memcpy(&out->partition, cn.partition, sizeof out->partition);
    out->ns_hash = t.ns_hash;
    snprintf(out->model, sizeof out->model, "%s", cn.model);
    out->ttl_s = out->dec.ttl_s > 0 ? out->dec.ttl_s : c->p.ttl_s;
    out->entry_flags = out->dec.action == LLMC_POLICY_EXACT_ONLY ? LLMC_ENTRY_EXACT_ONLY : 0;
    /* The semantic text: the last user message, or the turns the canon
     * flags ask for. */
    if (cn.semantic_query) {
        out->query = cn.semantic_query;
        out->query_len = cn.semantic_query_len;
        cn.semantic_query = NULL;
    } else {
        out->query = cn.query;
        out->query_len = cn.query_len;
        cn.query = NULL;
    }
    out->prompt = cn.prompt;
    out->prompt_len = cn.prompt_len;
    cn.prompt = NULL;
    llmc_canon_clear(&cn);
    return 0;
}

void llmc_cache_prep_clear(llmc_cache_prep *p)
{
    free(p->query);
    free(p->prompt);
    p->query = p->prompt = NULL;
}

int llmc_cache_get_exact(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN], long max_age_s,
                         int64_t now, const llmc_entry_info **out)
{
    const llmc_entry_info *e = llmc_store_get(c->store, key, now);
    if (e && !cache_fresh(e, max_age_s, now)) {
        llmc_entry_release(e); /* older than the client accepts: a refresh */
        e = NULL;
    }
    *out = e;
    return e ? 0 : LLMC_ENOTFOUND;
}

void *llmc_cache_loop_attach(llmc_cache *c, void *base)
{
    return c->ops->loop_attach ? c->ops->loop_attach(c->be, base) : NULL;
}

void llmc_cache_loop_detach(llmc_cache *c, void *loop)
{
    if (c->ops->loop_detach)
        c->ops->loop_detach(c->be, loop);
}

typedef struct {
    llmc_cache *c;
    long max_age_s;
    llmc_cache_fetch_cb done;
    void *arg;
} cache_fetch;

/* The backend's answer to a fetch, on the caller's loop: into the near
 * cache, then the age rule, then the caller. */
static void cache_fetch_done(int rc, const llmc_entry_info *e, void *arg)
{
    cache_fetch *f = arg;
    const llmc_entry_info *ref = NULL;
    int64_t now = (int64_t)time(NULL);
    if (rc == 0 && e) {
        rc = llmc_store_put(f->c->store, e, now, &ref);
        if (rc == 0 && !cache_fresh(ref, f->max_age_s, now)) {
            llmc_entry_release(ref);
            ref = NULL;
            rc = LLMC_ENOTFOUND;
        }
    } else if (rc == 0) {
        rc = LLMC_ENOTFOUND;
    }
    f->done(rc, ref, f->arg);
    free(f);
}

int llmc_cache_fetch(llmc_cache *c, void *loop, const uint8_t key[LLMC_KEY_LEN], long max_age_s,
                     llmc_cache_fetch_cb done, void *arg)
{
    if (!c->ops->fetch)
        return LLMC_ENOTFOUND;
    cache_fetch *f = malloc(sizeof *f);
    if (!f)
        return LLMC_ENOMEM;
    f->c = c;
    f->max_age_s = max_age_s;
    f->done = done;
    f->arg = arg;
    int rc = c->ops->fetch(c->be, loop, key, cache_fetch_done, f);
    if (rc)
        free(f);
    return rc;
}

int llmc_cache_lock(llmc_cache *c, void *loop, const uint8_t key[LLMC_KEY_LEN], int ttl_ms,
                    void (*done)(int rc, const char *holder, void *arg), void *arg)
{
    if (!c->ops->lock)
        return LLMC_ENOTSUP;
    return c->ops->lock(c->be, loop, key, ttl_ms, done, arg);
}

int llmc_cache_unlock(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN], int answered)
{
    if (!c->ops->unlock)
        return LLMC_ENOTSUP;
    return c->ops->unlock(c->be, key, answered);
}

int llmc_cache_get_semantic(llmc_cache *c, uint64_t partition, const float *vec, const char *query,
                            size_t qlen, double threshold, long max_age_s, int64_t now,
                            llmc_semantic_result *res, const llmc_entry_info **out)
{
    llmc_semantic_result dummy;
    if (!res)
        res = &dummy;
    *out = NULL;
    if (!c->sem) {
        memset(res, 0, sizeof *res);
        res->similarity = NAN;
        res->reason = "off";
        return LLMC_ENOTSUP;
    }
    const llmc_entry_info *e = llmc_semantic_lookup(c->sem, c->store, partition, vec, query, qlen,
                                                    threshold, max_age_s, now, res);
    *out = e;
    return e ? 0 : LLMC_ENOTFOUND;
}

/* Memory, index, backend: the one "store everywhere" sequence. */
static int cache_insert(llmc_cache *c, const llmc_entry_info *e, int64_t now, int to_backend)
{
    const llmc_entry_info *ref = NULL;
    int rc = llmc_store_put(c->store, e, now, &ref);
    if (rc)
        return rc;
    if (c->sem && ref->dim && !(ref->flags & LLMC_ENTRY_EXACT_ONLY))
        llmc_semantic_add(c->sem, ref);
    if (to_backend && c->ops->put)
        c->ops->put(c->be, ref);
    llmc_entry_release(ref);
    return 0;
}

int llmc_cache_insert(llmc_cache *c, const llmc_entry_info *e, int64_t now)
{
    return cache_insert(c, e, now, 1);
}

int llmc_cache_attach_vector(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN], const char *query,
                             const float *vec, uint32_t dim, int64_t now)
{
    if (!c->sem)
        return LLMC_ENOTSUP;
    if (!vec || !dim || !query)
        return LLMC_EINVAL;
    const llmc_entry_info *e = NULL;
    llmc_cache_get_exact(c, key, -1, now, &e);
    int rc = LLMC_ENOTFOUND;
    if (e && !e->dim && !(e->flags & LLMC_ENTRY_EXACT_ONLY) && e->query &&
        !strcmp(e->query, query)) {
        llmc_entry_info with = *e;
        with.vec = vec;
        with.dim = dim;
        with.vec_model = llmc_semantic_model(c->sem);
        rc = cache_insert(c, &with, now, 1);
    }
    llmc_entry_release(e);
    return rc;
}

int llmc_cache_notify_put(llmc_cache *c, const llmc_entry_info *e, int64_t now)
{
    return cache_insert(c, e, now, 0);
}

void llmc_cache_notify_delete(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN])
{
    llmc_store_delete(c->store, key);
    if (c->sem && c->ops->near_cache)
        llmc_semantic_remove(c->sem, key); /* the index follows the backend */
}

int llmc_cache_put(llmc_cache *c, const llmc_cache_prep *p, const float *vec, uint32_t dim,
                   const char *query, int http_status, const char *body, size_t len, int is_sse,
                   int64_t now, llmc_cache_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    int rc;
    if (is_sse) {
        rc = llmc_resp_from_sse(p->ep, body, len, &ans->json, &ans->json_len, &ans->info);
    } else {
        rc = llmc_resp_parse(p->ep, body, len, &ans->info);
        if (!rc) {
            ans->json = malloc(len + 1);
            if (ans->json) {
                memcpy(ans->json, body, len);
                ans->json[len] = 0;
                ans->json_len = len;
            } else {
                rc = LLMC_ENOMEM;
            }
        }
    }
    if (rc) {
        free(ans->json);
        ans->json = NULL;
        ans->json_len = 0;
        ans->why = "not a complete answer";
        if (p->dec.store)
            atomic_fetch_add(&c->put_refused, 1);
        return rc;
    }
    /* The policy's look at the answer (status, tool calls, truncation,
     * refusals, code), on the parse above: the body is parsed once. */
    llmc_policy_decision dec = p->dec;
    llmc_policy_check_answer(c->policy, http_status, &ans->info, &dec);
    if (!p->dec.store) {
        ans->why = "the request's decision";
        return 0;
    }
    if (!dec.store) {
        ans->why = "the policy's look at the answer";
        atomic_fetch_add(&c->put_refused, 1);
        return 0;
    }
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    memcpy(e.key, p->key, LLMC_KEY_LEN);
    e.ns_hash = p->ns_hash;
    e.partition = p->partition;
    e.created = now;
    long long ttl = p->ttl_s > 0 ? p->ttl_s : c->p.ttl_s;
    e.expires = now + (ttl > 0 ? ttl : 1);
    e.endpoint = (uint32_t)p->ep;
    e.prompt_tokens = ans->info.prompt_tokens;
    e.completion_tokens = ans->info.completion_tokens;
    e.flags = p->entry_flags | (dec.action == LLMC_POLICY_EXACT_ONLY ? LLMC_ENTRY_EXACT_ONLY : 0);
    e.model = p->model;
    e.vec_model = "";
    if (vec && dim && c->sem) {
        e.vec = vec;
        e.dim = dim;
        e.vec_model = llmc_semantic_model(c->sem);
    }
    e.query = query ? query : "";
    e.body = ans->json;
    e.body_len = ans->json_len;
    rc = cache_insert(c, &e, now, 1);
    if (rc) {
        ans->why = llmc_strerror(rc);
        atomic_fetch_add(&c->put_refused, 1);
        return rc;
    }
    ans->stored = 1;
    atomic_fetch_add(&c->puts, 1);
    return 0;
}

int llmc_cache_delete(llmc_cache *c, const uint8_t key[LLMC_KEY_LEN])
{
    int rc = llmc_store_delete(c->store, key);
    if (c->ops->del) {
        int brc = c->ops->del(c->be, key); /* the backend may hold what memory does not */
        if (rc == LLMC_ENOTFOUND && brc == 0)
            rc = 0;
    }
    return rc;
}

size_t llmc_cache_flush(llmc_cache *c, uint64_t ns_hash, int all)
{
    size_t n = llmc_store_flush(c->store, ns_hash, all);
    if (c->ops->flush)
        c->ops->flush(c->be, ns_hash, all);
    return n;
}

size_t llmc_cache_expire(llmc_cache *c, int64_t now, size_t max)
{
    return llmc_store_expire(c->store, now, max);
}

void llmc_cache_get_stats(llmc_cache *c, llmc_cache_stats *st)
{
    memset(st, 0, sizeof *st);
    llmc_store_get_stats(c->store, &st->store);
    st->puts = atomic_load(&c->puts);
    st->put_refused = atomic_load(&c->put_refused);
    st->backend = c->ops->name;
    if (c->ops->stats)
        c->ops->stats(c->be, st);
    if (c->sem) {
        st->semantic_model = llmc_semantic_model(c->sem);
        st->semantic_indexed = llmc_semantic_count(c->sem);
    }
}
