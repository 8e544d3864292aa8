/* test_store.c — TTL, budget, eviction order, refcounts, flush, threads. */
#include <pthread.h>

#include "llmcache.h"
#include "unit.h"

static int removed[8];

static void on_rm(const llmc_entry_info *e, int reason, void *arg)
{
    (void)e;
    (void)arg;
    removed[reason]++;
}

static llmc_entry_info mk(int id, const char *body, int64_t expires, uint64_t ns)
{
    static uint8_t keys[4096][32];
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    memset(keys[id], 0, 32);
    memcpy(keys[id], &id, sizeof id);
    keys[id][31] = 0x5a;
    memcpy(e.key, keys[id], 32);
    e.body = body;
    e.body_len = strlen(body);
    e.expires = expires;
    e.created = 0;
    e.model = "m";
    e.ns_hash = ns;
    return e;
}

static int has(llmc_store *s, int id, int64_t now)
{
    llmc_entry_info e = mk(id, "", 1, 0);
    const llmc_entry_info *g = llmc_store_get(s, e.key, now);
    llmc_entry_release(g);
    return g != NULL;
}

static void count_cb(const llmc_entry_info *e, void *arg)
{
    (*(size_t *)arg) += e->dim == 4;
}

static void *hammer(void *arg)
{
    llmc_store *s = arg;
    char body[200];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = 0;
    for (int i = 0; i < 20000; i++) {
        int id = (int)((unsigned)i * 2654435761u % 4000u);
        llmc_entry_info e = mk(id, body, 1000, 0);
        if (i % 3 == 0) {
            llmc_store_put(s, &e, 10, NULL);
        } else {
            const llmc_entry_info *g = llmc_store_get(s, e.key, 10);
            if (g && g->body_len != sizeof body - 1)
                abort();
            llmc_entry_release(g);
        }
    }
    return NULL;
}

int main(void)
{
    llmc_store_params p = llmc_store_default_params();
    p.on_remove = on_rm;
    llmc_entry_info e0 = mk(0, "hello", 100, 0);
    size_t charge = llmc_entry_charge(&e0);
    p.max_bytes = charge * 3 + charge / 2; /* room for exactly three entries */
    llmc_store *s = llmc_store_new(&p, NULL);
    CHECK(s != NULL);

    /* Put, get, absolute TTL. */
    CHECK(llmc_store_put(s, &e0, 10, NULL) == 0);
    const llmc_entry_info *g = llmc_store_get(s, e0.key, 50);
    CHECK(g && g->body_len == 5 && memcmp(g->body, "hello", 5) == 0 && strcmp(g->model, "m") == 0);
    CHECK(g && g->expires == 100); /* a hit does not extend the TTL */
    llmc_entry_release(g);
    CHECK(llmc_store_get(s, e0.key, 100) == NULL); /* dead at expires */
    CHECK_EQ_INT(removed[LLMC_RM_EXPIRE], 1);
    llmc_entry_info dead = mk(9, "x", 5, 0);
    CHECK_EQ_INT(llmc_store_put(s, &dead, 10, NULL), LLMC_EINVAL);

    /* Budget: a fourth entry evicts the least recently used... */
    llmc_entry_info a = mk(1, "hello", 1000, 0), b = mk(2, "hello", 1000, 0),
                    c = mk(3, "hello", 1000, 0), d = mk(4, "hello", 1000, 0);
    CHECK(llmc_store_put(s, &a, 10, NULL) == 0);
    CHECK(llmc_store_put(s, &b, 10, NULL) == 0);
    CHECK(llmc_store_put(s, &c, 10, NULL) == 0);
    CHECK(has(s, 1, 11)); /* a is now most recent; b is LRU */
    CHECK(llmc_store_put(s, &d, 11, NULL) == 0);
    CHECK(!has(s, 2, 12) && has(s, 1, 12) && has(s, 3, 12) && has(s, 4, 12));
    llmc_store_stats st;
    llmc_store_get_stats(s, &st);
    CHECK(st.bytes <= p.max_bytes && st.entries == 3 && st.evictions == 1);

    /* ...but an expired entry goes first, even when recently used. */
    llmc_entry_info shortlived = mk(5, "hello", 20, 0);
    llmc_store_flush(s, 0, 1);
    CHECK(llmc_store_put(s, &a, 10, NULL) == 0);
    CHECK(llmc_store_put(s, &shortlived, 10, NULL) == 0);
    CHECK(llmc_store_put(s, &c, 10, NULL) == 0);
    CHECK(has(s, 5, 15)); /* most recently used, but it will expire at 20 */
    CHECK(llmc_store_put(s, &d, 25, NULL) == 0);
    CHECK(!has(s, 5, 26) && has(s, 1, 26) && has(s, 3, 26) && has(s, 4, 26));

    /* Too big for the whole budget: refused, nothing evicted. */
    static char big[4096];
    memset(big, 'b', sizeof big - 1);
    llmc_entry_info huge = mk(6, big, 1000, 0);
    CHECK_EQ_INT(llmc_store_put(s, &huge, 30, NULL), LLMC_ETOOBIG);
    CHECK(has(s, 1, 30) && has(s, 3, 30) && has(s, 4, 30));

    /* Replace keeps one entry per key; a held reference survives removal. */
    llmc_entry_info a2 = mk(1, "world", 1000, 0);
    const llmc_entry_info *held = llmc_store_get(s, a.key, 30);
    CHECK(llmc_store_put(s, &a2, 30, NULL) == 0);
    CHECK(held && memcmp(held->body, "hello", 5) == 0); /* still readable */
    llmc_entry_release(held);
    g = llmc_store_get(s, a.key, 31);
    CHECK(g && memcmp(g->body, "world", 5) == 0);
    llmc_entry_release(g);
    llmc_store_get_stats(s, &st);
    CHECK_EQ_INT(st.entries, 3);

    /* Delete and flush by namespace. */
    CHECK_EQ_INT(llmc_store_delete(s, a.key), 0);
    CHECK_EQ_INT(llmc_store_delete(s, a.key), LLMC_ENOTFOUND);
    llmc_store_flush(s, 0, 1);
    llmc_entry_info n1 = mk(10, "x", 1000, 77), n2 = mk(11, "x", 1000, 77),
                    n3 = mk(12, "x", 1000, 78);
    llmc_store_put(s, &n1, 30, NULL);
    llmc_store_put(s, &n2, 30, NULL);
    llmc_store_put(s, &n3, 30, NULL);
    CHECK_EQ_INT(llmc_store_flush(s, 77, 0), 2);
    CHECK(!has(s, 10, 31) && !has(s, 11, 31) && has(s, 12, 31));
    CHECK_EQ_INT(llmc_store_flush(s, 0, 0), 0); /* ns 0 without all: nothing */

    /* Expire sweep. */
    llmc_store_flush(s, 0, 1);
    llmc_entry_info x1 = mk(20, "x", 40, 0), x2 = mk(21, "x", 50, 0), x3 = mk(22, "x", 60, 0);
    llmc_store_put(s, &x3, 30, NULL);
    llmc_store_put(s, &x1, 30, NULL);
    llmc_store_put(s, &x2, 30, NULL);
    CHECK_EQ_INT(llmc_store_expire(s, 55, 100), 2);
    CHECK(has(s, 22, 55));
    llmc_store_free(s);

    /* Many entries with a vector, and the table growing. */
    p.max_bytes = (size_t)64 << 20;
    p.on_remove = NULL;
    s = llmc_store_new(&p, NULL);
    float v[4] = {1, 0, 0, 0};
    for (int i = 0; i < 3000; i++) {
        llmc_entry_info e = mk(i, "abc", 1000, 0);
        e.vec = v;
        e.dim = 4;
        e.vec_model = "use";
        CHECK_EQ_INT(llmc_store_put(s, &e, 1, NULL), 0);
    }
    int ok = 1;
    for (int i = 0; i < 3000; i++) {
        llmc_entry_info e = mk(i, "", 1000, 0);
        const llmc_entry_info *r = llmc_store_get(s, e.key, 2);
        if (!r || r->dim != 4 || r->vec[0] != 1.0f || strcmp(r->vec_model, "use") != 0)
            ok = 0;
        llmc_entry_release(r);
    }
    CHECK(ok);
    size_t seen = 0;
    CHECK_EQ_INT(llmc_store_foreach(s, count_cb, &seen), 3000);
    CHECK_EQ_INT(seen, 3000);
    /* By label (first 8 bytes of the key, little-endian), as the index finds it. */
    llmc_entry_info l7 = mk(7, "", 1000, 0);
    const llmc_entry_info *bl = llmc_store_get_by_label(s, llmc_key_label(l7.key), 2);
    CHECK(bl && memcmp(bl->key, l7.key, 32) == 0);
    llmc_entry_release(bl);
    CHECK(llmc_store_get_by_label(s, llmc_key_label(l7.key) ^ (1ull << 40), 2) == NULL);
    CHECK(llmc_store_get_by_label(s, llmc_key_label(l7.key), 5000) == NULL); /* expired */
    llmc_store_free(s);

    /* Threads: budget holds, nothing crashes (ASan checks the rest). */
    p.max_bytes = 200 * 1024;
    s = llmc_store_new(&p, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, s);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    llmc_store_get_stats(s, &st);
    CHECK(st.bytes <= p.max_bytes);
    CHECK(st.evictions > 0);
    llmc_store_free(s);
    return UNIT_DONE();
}
