/*
 * test_faults.c — SQLite-style fault injection: the Nth allocation fails.
 *
 * This program is linked with -Wl,--wrap for malloc, calloc, realloc,
 * strdup and strndup (mk/faults.mk), so every allocation libllmcache makes
 * itself goes through fault_alloc_ok(); jansson's goes there too
 * (json_set_alloc_funcs); SQLite's own allocations are not (its faults
 * are SQLite's to test). For N = 1, 2,
 * ... one cycle — canonicalise a request, store the answer, hit it, persist
 * it and commit, insert its vector in an HNSW index and search — runs with
 * the Nth allocation failing, until a cycle completes without reaching N.
 * Each cycle must: not crash (ASan/UBSan watch), return clean error codes
 * (LLMC_ENOMEM / LLMC_EIO / LLMC_EINVAL), leave no half entry (a stored
 * entry hits with its whole body; a reload finds only whole rows), and leak
 * nothing (LeakSanitizer at exit).
 */
#include <sqlite3.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmcache.h"
#include "unit.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static long fail_at = -1; /* the allocation (1-based) that fails; -1 none */
static long n_alloc;
static int failed;

static int fault_alloc_ok(void)
{
    if (fail_at < 0)
        return 1;
    if (++n_alloc == fail_at) {
        failed = 1;
        return 0;
    }
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return fault_alloc_ok() ? __real_malloc(n) : NULL;
}
void *__wrap_calloc(size_t a, size_t b)
{
    return fault_alloc_ok() ? __real_calloc(a, b) : NULL;
}
void *__wrap_realloc(void *p, size_t n)
{
    return fault_alloc_ok() ? __real_realloc(p, n) : NULL;
}
char *__wrap_strdup(const char *s)
{
    return fault_alloc_ok() ? __real_strdup(s) : NULL;
}
char *__wrap_strndup(const char *s, size_t n)
{
    return fault_alloc_ok() ? __real_strndup(s, n) : NULL;
}
static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}
static void json_free_fn(void *p)
{
    free(p);
}

static int ok_code(int rc)
{
    return rc == 0 || rc == LLMC_ENOMEM || rc == LLMC_EIO || rc == LLMC_EINVAL;
}

static const char *BODY = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"What is "
                          "a cache?\"}],\"temperature\":0}";
static const char *ANSWER = "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":"
                            "\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                            "\"content\":\"A store of answers.\"},\"finish_reason\":\"stop\"}]}";

/* One cycle under the armed fault. Returns 1 when it completed every step. */
static int cycle(const char *dbpath, const llmc_tenant *t)
{
    int complete = 1, err = 0;
    llmc_canon c;
    const char *why = NULL;
    int rc = llmc_canon_request(LLMC_EP_CHAT, t, BODY, strlen(BODY), 0, &c, &why);
    CHECK(ok_code(rc));
    if (rc)
        return 0;
    llmc_store *s = llmc_store_new(NULL, &err);
    if (!s) {
        CHECK(err == LLMC_ENOMEM);
        llmc_canon_clear(&c);
        return 0;
    }
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    memcpy(e.key, c.key, LLMC_KEY_LEN);
    e.body = ANSWER;
    e.body_len = strlen(ANSWER);
    e.model = "m";
    e.vec_model = "";
    e.created = 100;
    e.expires = 100000;
    e.endpoint = LLMC_EP_CHAT;
    const llmc_entry_info *ref = NULL;
    rc = llmc_store_put(s, &e, 100, &ref);
    CHECK(ok_code(rc));
    if (rc)
        complete = 0;
    const llmc_entry_info *g = llmc_store_get(s, c.key, 101);
    if (rc == 0) { /* stored: the whole answer is there */
        CHECK(g && g->body_len == e.body_len && memcmp(g->body, ANSWER, e.body_len) == 0);
    } else {
        CHECK(g == NULL);
    }
    llmc_entry_release(g);

    llmc_persist_params pp = llmc_persist_default_params();
    pp.path = dbpath;
    char msg[256];
    llmc_persist *ps = llmc_persist_open(&pp, &err, msg, sizeof msg);
    if (!ps) {
        CHECK(ok_code(err) || err == LLMC_ECORRUPT || err == LLMC_EFOREIGN);
        complete = 0;
    } else {
        if (ref) {
            rc = llmc_persist_put(ps, ref);
            CHECK(ok_code(rc));
            complete &= rc == 0;
        }
        rc = llmc_persist_sync(ps);
        CHECK(ok_code(rc));
        complete &= rc == 0;
        llmc_persist_close(ps);
    }
    llmc_entry_release(ref);

    llmc_hnsw_params hp = llmc_hnsw_default_params();
    hp.dim = 8;
    llmc_hnsw *h = llmc_hnsw_new(&hp, &err);
    if (!h) {
        CHECK(err == LLMC_ENOMEM || err == LLMC_EINVAL);
        complete = 0;
    } else {
        float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
        rc = llmc_hnsw_add(h, 7, 1, v);
        CHECK(ok_code(rc) || rc == LLMC_EFULL);
        complete &= rc == 0;
        uint64_t lab[2];
        float sim[2];
        size_t got = 0;
        rc = llmc_hnsw_search(h, v, 1, 2, 16, lab, sim, &got);
        CHECK(ok_code(rc));
        complete &= rc == 0;
        llmc_hnsw_free(h);
    }
    llmc_store_free(s);
    llmc_canon_clear(&c);
    return complete;
}

int main(void)
{
    json_set_alloc_funcs(json_alloc, json_free_fn);
    char dir[128], dbpath[256];
    snprintf(dir, sizeof dir, "/tmp/llmc-faults-%d", (int)getpid());
    mkdir(dir, 0755);
    llmc_tenant t;
    llmc_tenant_make(&t, "Bearer k", NULL, 0); /* aborts on OOM by design: outside the loop */
    long n;
    int injected = 0;
    for (n = 1; n < 20000; n++) {
        snprintf(dbpath, sizeof dbpath, "%s/f%ld.db", dir, n);
        fail_at = n;
        n_alloc = 0;
        failed = 0;
        int done = cycle(dbpath, &t);
        fail_at = -1;
        unlink(dbpath);
        char wal[300];
        snprintf(wal, sizeof wal, "%s-wal", dbpath);
        unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", dbpath);
        unlink(wal);
        if (failed)
            injected++;
        if (!failed) { /* N is past the cycle's last allocation */
            CHECK(done);
            break;
        }
    }
    printf("faults: %ld allocation points in the cycle, each failed once\n", n - 1);
    CHECK(injected > 50);
    rmdir(dir);
    return UNIT_DONE();
}
