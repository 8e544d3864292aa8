/*
 * test_redis_store.c — two (then three) instances' stores on one real
 * redis-server: what A writes B fetches, B hears of A's stores and deletes
 * through the stream (and how fast), a namespace flush reaches only that
 * namespace, Redis's expiry is the entry's, bad values are never served,
 * a third instance is warm from the scan, and Redis killed and restarted
 * costs failures (counted), never a crash, then works again.
 */
#include <pthread.h>
#include <time.h>

#include <event2/event.h>

#include "llmcache.h"
#include "redis_entry.h"
#include "redis_srv.h"
#include "redis_store.h"
#include "unit.h"

/* ---- what a follower heard (called on the store's thread) ---- */
typedef struct {
    pthread_mutex_t mu;
    int puts, dels;
    uint8_t last_put[LLMC_KEY_LEN], last_del[LLMC_KEY_LEN];
    char body[256];
    double put_at;
    int64_t expires;
    uint32_t dim;
} heard;

static void on_put(void *arg, const llmc_entry_info *e)
{
    heard *h = arg;
    pthread_mutex_lock(&h->mu);
    h->puts++;
    memcpy(h->last_put, e->key, LLMC_KEY_LEN);
    snprintf(h->body, sizeof h->body, "%.*s", (int)e->body_len, e->body);
    h->put_at = now_ms();
    h->expires = e->expires;
    h->dim = e->dim;
    pthread_mutex_unlock(&h->mu);
}

static void on_delete(void *arg, const uint8_t key[LLMC_KEY_LEN])
{
    heard *h = arg;
    pthread_mutex_lock(&h->mu);
    h->dels++;
    memcpy(h->last_del, key, LLMC_KEY_LEN);
    pthread_mutex_unlock(&h->mu);
}

static int heard_count(heard *h, int dels)
{
    pthread_mutex_lock(&h->mu);
    int n = dels ? h->dels : h->puts;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* Wait (the loop running) until h has heard n puts/dels; ms waited or -1. */
static double wait_heard(heard *h, int dels, int n, int ms)
{
    double t0 = now_ms();
    while (heard_count(h, dels) < n) {
        if (now_ms() - t0 > ms)
            return -1;
        run_until(NULL, 1);
    }
    return now_ms() - t0;
}

static char url[128];
static char logged[8192];
static void log_sink(void *arg, const char *msg)
{
    size_t l = strlen(logged);
    snprintf(logged + l, sizeof logged - l, "%s\n", msg);
}

static redis_store *open_store(heard *h)
{
    redis_store_params p = redis_store_default_params();
    p.url = url;
    p.prefix = "t1:";
    p.timeout_ms = 200; /* ASan build on a shared 2-core machine */
    p.stream_block_ms = 200;
    p.near_ttl_s = 30;
    p.on_put = on_put;
    p.on_delete = on_delete;
    p.arg = h;
    p.log = log_sink;
    char err[256];
    int e = 0;
    redis_store *rs = redis_store_open(&p, &e, err, sizeof err);
    if (!rs)
        fprintf(stderr, "redis_store_open: %s\n", err);
    return rs;
}

static llmc_entry_info mk(uint8_t *key, int id, uint64_t ns, int64_t expires, const char *body,
                          float *vec)
{
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    memset(key, 0, LLMC_KEY_LEN);
    memcpy(key, &id, sizeof id);
    key[31] = 0xa5;
    memcpy(e.key, key, LLMC_KEY_LEN);
    e.ns_hash = ns;
    e.created = time(NULL);
    e.expires = expires;
    e.model = "m";
    e.body = body;
    e.body_len = strlen(body);
    e.query = "q";
    e.vec_model = "";
    if (vec) {
        for (int i = 0; i < 16; i++)
            vec[i] = (float)i;
        e.vec = vec;
        e.dim = 16;
        e.vec_model = "use";
    }
    return e;
}

/* Put a copy through a store (as the cache would: a refcounted entry). */
static void put(redis_store *rs, llmc_store *mem, const llmc_entry_info *e)
{
    const llmc_entry_info *ref = NULL;
    CHECK_EQ_INT(llmc_store_put(mem, e, time(NULL), &ref), 0);
    CHECK_EQ_INT(redis_store_put(rs, ref), 0);
    llmc_entry_release(ref);
}

typedef struct {
    int done, rc;
    char body[256];
    int64_t expires;
} fetched;

static void on_fetch(int rc, const llmc_entry_info *e, void *arg)
{
    fetched *f = arg;
    f->rc = rc;
    if (e) {
        snprintf(f->body, sizeof f->body, "%.*s", (int)e->body_len, e->body);
        f->expires = e->expires;
    }
    __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
}

/* Fetch key through l; returns the callback's rc, or the call's. */
static int fetch(redis_store_loop *l, const uint8_t *key, fetched *f)
{
    memset(f, 0, sizeof *f);
    int rc = redis_store_fetch(l, key, on_fetch, f);
    if (rc)
        return rc;
    run_until(&f->done, 3000);
    return f->done ? f->rc : -999;
}

static void load_count(void *arg, const llmc_entry_info *e)
{
    (*(int *)arg)++;
}

int main(void)
{
    if (redis_srv_init())
        return 1;
    base = event_base_new();
    double t_start = now_ms();
    int port = start_server(0, 0, NULL);
    CHECK(port > 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", port);

    heard ha = {.mu = PTHREAD_MUTEX_INITIALIZER}, hb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    redis_store *a = open_store(&ha), *b = open_store(&hb);
    CHECK(a && b);
    /* both start cold (nothing there yet) */
    int n = 0;
    CHECK_EQ_INT(redis_store_load(a, load_count, &n, time(NULL), 3000), 0);
    CHECK_EQ_INT(redis_store_load(b, load_count, &n, time(NULL), 3000), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(redis_store_start(a), 0);
    CHECK_EQ_INT(redis_store_start(b), 0);
    redis_store_loop *la = redis_store_loop_attach(a, base), *lb = redis_store_loop_attach(b, base);
    llmc_store_params sp = llmc_store_default_params();
    llmc_store *mem = llmc_store_new(&sp, NULL);
    run_until(NULL, 100); /* connections up, stream followers reading */

    /* A stores; B hears it through the stream (with the vector) and fetches it */
    uint8_t k1[LLMC_KEY_LEN], k2[LLMC_KEY_LEN], k3[LLMC_KEY_LEN], k4[LLMC_KEY_LEN];
    float vec[16];
    int64_t now = time(NULL);
    llmc_entry_info e1 = mk(k1, 1, 7, now + 3600, "{\"answer\":\"one\"}", vec);
    double t0 = now_ms();
    put(a, mem, &e1);
    double waited = wait_heard(&hb, 0, 1, 3000);
    CHECK(waited >= 0);
    fprintf(stderr, "  B heard A's store after %.1f ms\n", now_ms() - t0);
    CHECK(!memcmp(hb.last_put, k1, LLMC_KEY_LEN) && !strcmp(hb.body, "{\"answer\":\"one\"}"));
    CHECK_EQ_INT(hb.dim, 16);
    CHECK(hb.expires <= now + 31);        /* bounded by near_ttl_s */
    CHECK_EQ_INT(heard_count(&ha, 0), 0); /* A skips its own event */
    fetched f;
    CHECK_EQ_INT(fetch(lb, k1, &f), 0);
    CHECK(!strcmp(f.body, "{\"answer\":\"one\"}"));
    CHECK(f.expires <= now + 31);
    /* Redis's expiry is the entry's absolute one */
    redisContext *c = sync_conn(port);
    redisReply *rep = redisCommand(c, "SELECT 2");
    freeReplyObject(rep);
    char name[128];
    redis_entry_key("t1:", k1, name, sizeof name);
    rep = redisCommand(c, "PEXPIRETIME %s", name);
    CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == (now + 3600) * 1000);
    freeReplyObject(rep);

    /* B deletes: A hears it; nobody can fetch it */
    CHECK_EQ_INT(redis_store_del(b, k1), 0);
    CHECK(wait_heard(&ha, 1, 1, 3000) >= 0);
    CHECK(!memcmp(ha.last_del, k1, LLMC_KEY_LEN));
    CHECK_EQ_INT(fetch(la, k1, &f), LLMC_ENOTFOUND);

    /* a namespace flush deletes that namespace only, and tells the others */
    llmc_entry_info e2 = mk(k2, 2, 7, now + 3600, "{\"ns\":7}", NULL);
    llmc_entry_info e3 = mk(k3, 3, 8, now + 3600, "{\"ns\":8}", NULL);
    put(a, mem, &e2);
    put(a, mem, &e3);
    CHECK_EQ_INT(redis_store_drain(a, 3000), 0);
    CHECK_EQ_INT(redis_store_flush(b, 7, 0), 0);
    CHECK_EQ_INT(redis_store_drain(b, 3000), 0);
    CHECK(wait_heard(&ha, 1, 2, 3000) >= 0);
    CHECK(!memcmp(ha.last_del, k2, LLMC_KEY_LEN));
    CHECK_EQ_INT(fetch(la, k2, &f), LLMC_ENOTFOUND);
    CHECK_EQ_INT(fetch(la, k3, &f), 0);
    CHECK(!strcmp(f.body, "{\"ns\":8}"));

    /* TTL: an entry that expires in 1 s is gone for both after it */
    llmc_entry_info e4 = mk(k4, 4, 8, now + 1, "{\"short\":1}", NULL);
    put(a, mem, &e4);
    CHECK_EQ_INT(redis_store_drain(a, 3000), 0);
    CHECK_EQ_INT(fetch(lb, k4, &f), 0);
    run_until(NULL, 2100);
    CHECK_EQ_INT(fetch(lb, k4, &f), LLMC_ENOTFOUND);
    CHECK_EQ_INT(fetch(la, k4, &f), LLMC_ENOTFOUND);

    /* bad values under our names: never served, counted */
    uint8_t kb[LLMC_KEY_LEN], kc[LLMC_KEY_LEN];
    mk(kb, 90, 0, 0, "", NULL);
    mk(kc, 91, 0, 0, "", NULL);
    redis_entry_key("t1:", kb, name, sizeof name);
    freeReplyObject(redisCommand(c, "SET %s %s", name, "not an llmcached value"));
    /* k3's valid record copied under kc's name (another tenant's key) */
    char name3[128], namec[128];
    redis_entry_key("t1:", k3, name3, sizeof name3);
    redis_entry_key("t1:", kc, namec, sizeof namec);
    freeReplyObject(redisCommand(c, "COPY %s %s", name3, namec));
    /* another program's key under our prefix */
    freeReplyObject(redisCommand(c, "SET t1:e:other x"));
    redis_store_stats st;
    redis_store_get_stats(b, &st);
    uint64_t bad0 = st.bad_values;
    CHECK_EQ_INT(fetch(lb, kb, &f), LLMC_ENOTFOUND);
    CHECK_EQ_INT(fetch(lb, kc, &f), LLMC_ENOTFOUND);
    redis_store_get_stats(b, &st);
    CHECK_EQ_INT(st.bad_values, bad0 + 2);

    /* a third instance started later is warm: k3 loaded, the bad ones not */
    heard hc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    redis_store *c3 = open_store(&hc);
    n = 0;
    CHECK_EQ_INT(redis_store_load(c3, load_count, &n, time(NULL), 3000), 0);
    CHECK_EQ_INT(n, 1);
    redis_store_get_stats(c3, &st);
    CHECK_EQ_INT(st.loaded, 1);
    CHECK_EQ_INT(st.bad_values, 2);
    redis_store_close(c3);

    /* Redis killed: fetches fail (at once or by callback), puts are
     * counted as failed, nothing crashes; restarted: it all works again */
    stop_server(0);
    run_until(NULL, 50);
    int failed = 0;
    for (int i = 0; i < 20; i++)
        failed += fetch(lb, k3, &f) != 0;
    CHECK_EQ_INT(failed, 20);
    put(a, mem, &e2);
    redis_store_drain(a, 3000);
    redis_store_get_stats(a, &st);
    CHECK(st.put_errors >= 1);
    CHECK(start_server(0, port, NULL) == port);
    int ok = 0;
    for (int i = 0; i < 300 && !ok; i++) {
        run_until(NULL, 10);
        ok = fetch(lb, k3, &f) == LLMC_ENOTFOUND; /* Redis restarted empty */
    }
    CHECK(ok);
    /* A's writer reconnects on its own back-off (at most 2 s): retry the
     * put until one lands, as the next upstream answer would */
    ok = 0;
    for (int i = 0; i < 60 && !ok; i++) {
        put(a, mem, &e2);
        CHECK_EQ_INT(redis_store_drain(a, 3000), 0);
        ok = fetch(lb, k2, &f) == 0;
        if (!ok)
            run_until(NULL, 50);
    }
    CHECK(ok);
    /* and B follows the stream again */
    int before = heard_count(&hb, 0);
    llmc_entry_info e5 = mk(k4, 5, 8, time(NULL) + 60, "{\"after\":1}", NULL);
    ok = 0;
    for (int i = 0; i < 30 && !ok; i++) {
        put(a, mem, &e5);
        ok = wait_heard(&hb, 0, before + 1, 200) >= 0;
    }
    CHECK(ok);
    redis_store_get_stats(b, &st);
    CHECK(st.reconnects >= 2);
    CHECK(st.fetch_unavailable >= 20 && st.fetch_hits >= 3);
    CHECK(strstr(st.url, "127.0.0.1") != NULL);
    fprintf(stderr, "  stream lag last %.2f ms, max %.2f ms\n", st.stream_lag_ms_last,
            st.stream_lag_ms_max);

    redis_store_loop_detach(la);
    redis_store_loop_detach(lb);
    redis_store_close(a);
    redis_store_close(b);
    llmc_store_free(mem);
    redisFree(c);
    event_base_free(base);
    stop_server(0);
    fprintf(stderr, "  test_redis_store took %.1f s\n", (now_ms() - t_start) / 1e3);
    return UNIT_DONE();
}
