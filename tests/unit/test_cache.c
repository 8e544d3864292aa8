/* test_cache.c — llmc_cache: prepare, put (parse once, checks, memory +
 * index + backend together), the one age rule on the exact and semantic
 * tiers, delete/flush keeping the index and SQLite in step, a warm start,
 * and the backend seam (a recording backend: fetch completing later,
 * notifications from elsewhere). */
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "llmcache.h"
#include "unit.h"

#define DIM 8

static const char answer[] =
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Paris.\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
    "\"total_tokens\":5}}";
static const char tool_answer[] =
    "{\"id\":\"c2\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
    "\"tool_calls\":[{\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}";
static const char sse_answer[] =
    "data: {\"id\":\"c3\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c3\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

static int prep(llmc_cache *c, const char *question, const char *cache_control, llmc_cache_prep *p)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"%s\"}]}",
             question);
    llmc_cache_request r = {.ep = LLMC_EP_CHAT,
                            .body = body,
                            .len = strlen(body),
                            .authorization = "Bearer k",
                            .cache_control = cache_control};
    return llmc_cache_prepare(c, &r, p, NULL);
}

/* Put `body` as the answer to question at now; returns llmc_cache_put's
 * code, *stored whether it was stored. */
static int put_answer(llmc_cache *c, const char *question, const char *body, int status, int is_sse,
                      const float *vec, int64_t now, int *stored)
{
    llmc_cache_prep p;
    if (prep(c, question, NULL, &p))
        return -100;
    llmc_cache_answer a;
    int rc = llmc_cache_put(c, &p, vec, vec ? DIM : 0, p.query, status, body, strlen(body), is_sse,
                            now, &a);
    *stored = a.stored;
    free(a.json);
    llmc_cache_prep_clear(&p);
    return rc;
}

static int has_exact(llmc_cache *c, const char *question, long max_age, int64_t now)
{
    llmc_cache_prep p;
    if (prep(c, question, NULL, &p))
        return -1;
    const llmc_entry_info *e = NULL;
    int rc = llmc_cache_get_exact(c, p.key, max_age, now, &e);
    CHECK((rc == 0) == (e != NULL));
    llmc_entry_release(e);
    llmc_cache_prep_clear(&p);
    return rc == 0;
}

static void axis(float *v, int a)
{
    for (int i = 0; i < DIM; i++)
        v[i] = i == a ? 1.0f : 0.0f;
}

static llmc_cache *semantic_cache(const llmc_cache_params *cp)
{
    llmc_cache *c = llmc_cache_new(cp, NULL, NULL, 0);
    llmc_semantic_params sp = llmc_semantic_default_params();
    sp.index.dim = DIM;
    sp.index.model = "test-model";
    sp.guard = 0;
    sp.short_boost = 0;
    sp.vocab_path = NULL;
    sp.lexicon_dir = NULL;
    if (c)
        CHECK_EQ_INT(llmc_cache_enable_semantic(c, &sp), 0);
    return c;
}

/* Semantic lookup in the partition of question (asked with vector v). */
static int sem_get(llmc_cache *c, const char *question, const float *v, long max_age, int64_t now,
                   llmc_semantic_result *res)
{
    llmc_cache_prep p;
    if (prep(c, question, NULL, &p))
        return -1;
    const llmc_entry_info *e = NULL;
    int rc = llmc_cache_get_semantic(c, p.partition, v, p.query, p.query_len, 0.9, max_age, now,
                                     res, &e);
    llmc_entry_release(e);
    llmc_cache_prep_clear(&p);
    return rc;
}

static void test_prepare(void)
{
    llmc_cache *c = llmc_cache_new(NULL, NULL, NULL, 0);
    CHECK(c != NULL);
    llmc_cache_prep a, b;
    CHECK_EQ_INT(prep(c, "What is the capital of France?", NULL, &a), 0);
    CHECK_EQ_INT(prep(c, "What is the capital of France?", "max-age=5", &b), 0);
    CHECK(memcmp(a.key, b.key, LLMC_KEY_LEN) == 0); /* Cache-Control is not in the key */
    CHECK_EQ_INT(a.dec.max_age_s, -1);
    CHECK_EQ_INT(b.dec.max_age_s, 5);
    CHECK(a.dec.lookup && a.dec.store && a.dec.semantic);
    CHECK_EQ_INT(a.ttl_s, 3600);
    CHECK(a.query && strcmp(a.query, "What is the capital of France?") == 0);
    CHECK(a.prompt != NULL && !a.stream && strcmp(a.model, "m") == 0);
    llmc_cache_prep_clear(&a);
    llmc_cache_prep_clear(&b);
    CHECK(a.query == NULL && a.prompt == NULL);
    /* Bad input: a clear error, nothing to free, nothing stored. */
    const char *why = NULL;
    llmc_cache_request r = {.ep = LLMC_EP_CHAT, .body = "{\"model\":", .len = 9};
    CHECK_EQ_INT(llmc_cache_prepare(c, &r, &a, &why), LLMC_EINVAL);
    CHECK(why != NULL && *why);
    llmc_cache_stats st;
    llmc_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.store.entries, 0);
    CHECK(st.semantic_model == NULL && strcmp(st.backend, "memory") == 0);
    llmc_cache_free(c);
}

static void test_put_get(void)
{
    llmc_cache *c = llmc_cache_new(NULL, NULL, NULL, 0);
    int stored = -1;
    CHECK_EQ_INT(put_answer(c, "q1", answer, 200, 0, NULL, 1000, &stored), 0);
    CHECK_EQ_INT(stored, 1);
    CHECK(has_exact(c, "q1", -1, 1000));
    CHECK(!has_exact(c, "q2", -1, 1000));
    /* The stored entry is the answer, with its usage. */
    llmc_cache_prep p;
    prep(c, "q1", NULL, &p);
    const llmc_entry_info *e = NULL;
    CHECK_EQ_INT(llmc_cache_get_exact(c, p.key, -1, 1000, &e), 0);
    CHECK(e && e->body_len == strlen(answer) && memcmp(e->body, answer, e->body_len) == 0);
    CHECK(e && e->prompt_tokens == 3 && e->completion_tokens == 2 && e->created == 1000);
    CHECK(e && e->expires == 1000 + 3600);
    llmc_entry_release(e);
    llmc_cache_prep_clear(&p);

    /* Refused, and nothing partial stored: not an answer, an error status,
     * a tool call, a stream cut before [DONE]. */
    CHECK_EQ_INT(put_answer(c, "bad", "{\"choices\":", 200, 0, NULL, 1000, &stored), LLMC_EINVAL);
    CHECK(!stored && !has_exact(c, "bad", -1, 1000));
    CHECK_EQ_INT(put_answer(c, "e500", answer, 500, 0, NULL, 1000, &stored), 0);
    CHECK(!stored && !has_exact(c, "e500", -1, 1000));
    CHECK_EQ_INT(put_answer(c, "tool", tool_answer, 200, 0, NULL, 1000, &stored), 0);
    CHECK(!stored && !has_exact(c, "tool", -1, 1000));
    char cut[sizeof sse_answer];
    memcpy(cut, sse_answer, sizeof sse_answer);
    cut[sizeof sse_answer - 16] = 0; /* no final [DONE] */
    CHECK(put_answer(c, "cut", cut, 200, 1, NULL, 1000, &stored) < 0);
    CHECK(!stored && !has_exact(c, "cut", -1, 1000));
    /* A complete stream is assembled into one JSON answer. */
    llmc_cache_answer a;
    prep(c, "sse", NULL, &p);
    CHECK_EQ_INT(
        llmc_cache_put(c, &p, NULL, 0, NULL, 200, sse_answer, strlen(sse_answer), 1, 1000, &a), 0);
    CHECK(a.stored && a.json && strstr(a.json, "\"chat.completion\"") && strstr(a.json, "Hi"));
    free(a.json);
    /* A request that may not be stored (no-store): read, not stored. */
    llmc_cache_prep_clear(&p);
    prep(c, "nostore", "no-store", &p);
    CHECK(!p.dec.store);
    CHECK_EQ_INT(llmc_cache_put(c, &p, NULL, 0, NULL, 200, answer, strlen(answer), 0, 1000, &a), 0);
    CHECK(!a.stored && a.json != NULL);
    free(a.json);
    llmc_cache_prep_clear(&p);
    CHECK(!has_exact(c, "nostore", -1, 1000));
    llmc_cache_stats st;
    llmc_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.store.entries, 2);
    CHECK_EQ_INT(st.puts, 2);
    CHECK_EQ_INT(st.put_refused, 4);
    llmc_cache_free(c);
}

static void test_age_rules(void)
{
    llmc_cache_params cp = llmc_cache_default_params();
    cp.ttl_s = 100;
    llmc_cache *c = semantic_cache(&cp);
    float v[DIM];
    axis(v, 2);
    int stored = 0;
    CHECK_EQ_INT(put_answer(c, "old question", answer, 200, 0, v, 1000, &stored), 0);
    CHECK(stored);
    /* Exact: max-age counts from creation; -1 is any age; TTL always holds. */
    CHECK(has_exact(c, "old question", 5, 1005));
    CHECK(!has_exact(c, "old question", 5, 1006));
    /* Semantic: the same rule (the bug: a stale entry refused by the exact
     * path came back as a semantic hit). */
    llmc_semantic_result r;
    CHECK_EQ_INT(sem_get(c, "old question", v, 5, 1005, &r), 0);
    CHECK(!strcmp(r.reason, "hit") && r.similarity > 0.99);
    CHECK_EQ_INT(sem_get(c, "old question", v, 5, 1006, &r), LLMC_ENOTFOUND);
    CHECK(!strcmp(r.reason, "too-old"));
    CHECK_EQ_INT(sem_get(c, "old question", v, -1, 1050, &r), 0);
    CHECK(has_exact(c, "old question", -1, 1099));
    CHECK_EQ_INT(sem_get(c, "old question", v, -1, 1100, &r), LLMC_ENOTFOUND); /* expired */
    CHECK(!has_exact(c, "old question", -1, 1100));
    /* Semantic tier off: a clear code, nothing served. */
    llmc_cache *plain = llmc_cache_new(NULL, NULL, NULL, 0);
    CHECK_EQ_INT(sem_get(plain, "old question", v, -1, 1000, &r), LLMC_ENOTSUP);
    llmc_cache_free(plain);
    llmc_cache_free(c);
}

static void test_semantic_follows(void)
{
    llmc_cache *c = semantic_cache(NULL);
    float v1[DIM], v2[DIM];
    axis(v1, 1);
    axis(v2, 3);
    int stored = 0;
    llmc_semantic_result r;
    put_answer(c, "first", answer, 200, 0, v1, 1000, &stored);
    CHECK(stored);
    llmc_cache_stats st;
    llmc_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.semantic_indexed, 1);
    CHECK(st.semantic_model && !strcmp(st.semantic_model, "test-model"));
    /* Delete: gone from memory and from the index. */
    llmc_cache_prep p;
    prep(c, "first", NULL, &p);
    CHECK_EQ_INT(llmc_cache_delete(c, p.key), 0);
    CHECK_EQ_INT(llmc_cache_delete(c, p.key), LLMC_ENOTFOUND);
    llmc_cache_prep_clear(&p);
    CHECK_EQ_INT(sem_get(c, "first", v1, -1, 1000, &r), LLMC_ENOTFOUND);
    llmc_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.semantic_indexed, 0);
    /* An exact-only request's answer is stored but never indexed. */
    llmc_cache_prep ex;
    prep(c, "second", NULL, &ex);
    ex.entry_flags |= LLMC_ENTRY_EXACT_ONLY;
    llmc_cache_answer a;
    CHECK_EQ_INT(
        llmc_cache_put(c, &ex, v2, DIM, ex.query, 200, answer, strlen(answer), 0, 1000, &a), 0);
    CHECK(a.stored);
    free(a.json);
    CHECK(has_exact(c, "second", -1, 1000));
    CHECK_EQ_INT(sem_get(c, "second", v2, -1, 1000, &r), LLMC_ENOTFOUND);
    llmc_cache_prep_clear(&ex);
    /* Expiry leaves the index too. */
    put_answer(c, "third", answer, 200, 0, v1, 1000, &stored);
    CHECK_EQ_INT(llmc_cache_expire(c, 1000 + 3600, 100), 2);
    llmc_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.store.entries, 0);
    CHECK_EQ_INT(st.semantic_indexed, 0);
    /* Flush by namespace removes that namespace only. */
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"ns q\"}]}";
    llmc_cache_request rq = {.ep = LLMC_EP_CHAT, .body = body, .len = strlen(body), .ns = "team"};
    CHECK_EQ_INT(llmc_cache_prepare(c, &rq, &p, NULL), 0);
    CHECK(p.ns_hash == llmc_namespace_hash("team"));
    CHECK_EQ_INT(llmc_cache_put(c, &p, v1, DIM, p.query, 200, answer, strlen(answer), 0, 1000, &a),
                 0);
    free(a.json);
    put_answer(c, "other", answer, 200, 0, v2, 1000, &stored);
    CHECK_EQ_INT(llmc_cache_flush(c, llmc_namespace_hash("team"), 0), 1);
    CHECK(has_exact(c, "other", -1, 1000));
    const llmc_entry_info *e = NULL;
    CHECK_EQ_INT(llmc_cache_get_exact(c, p.key, -1, 1000, &e), LLMC_ENOTFOUND);
    llmc_cache_prep_clear(&p);
    CHECK_EQ_INT(llmc_cache_flush(c, 0, 1), 1);
    llmc_cache_free(c);
}

static void test_persist(void)
{
    char dir[] = "/tmp/llmc-test-cache-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/c.db", dir);
    llmc_cache_params cp = llmc_cache_default_params();
    cp.persist_path = path;
    cp.persist_sync = 1;
    int64_t now = (int64_t)time(NULL);
    llmc_cache *c = llmc_cache_new(&cp, NULL, NULL, 0);
    CHECK(c != NULL);
    int stored = 0;
    put_answer(c, "kept", answer, 200, 0, NULL, now, &stored);
    put_answer(c, "deleted", answer, 200, 0, NULL, now, &stored);
    llmc_cache_prep p;
    prep(c, "deleted", NULL, &p);
    CHECK_EQ_INT(llmc_cache_delete(c, p.key), 0);
    llmc_cache_prep_clear(&p);
    llmc_cache_stats st;
    llmc_cache_get_stats(c, &st);
    CHECK(st.has_persist && !strcmp(st.backend, "sqlite"));
    llmc_cache_free(c);
    /* Warm start: what was stored is back, what was deleted is not. */
    c = llmc_cache_new(&cp, NULL, NULL, 0);
    CHECK(c != NULL);
    CHECK(has_exact(c, "kept", -1, now));
    CHECK(!has_exact(c, "deleted", -1, now));
    llmc_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.persist.loaded, 1);
    llmc_cache_free(c);
    /* A file that is not ours is refused with a message, and left alone. */
    snprintf(path, sizeof path, "%s/foreign.db", dir);
    FILE *f = fopen(path, "wb");
    fputs("not a database at all, but someone's notes", f);
    fclose(f);
    char msg[256] = "";
    int err = 0;
    CHECK(llmc_cache_new(&cp, &err, msg, sizeof msg) == NULL);
    CHECK(err < 0 && msg[0]);
    f = fopen(path, "rb");
    char back[64] = "";
    CHECK(f && fgets(back, sizeof back, f) && !strncmp(back, "not a database", 14));
    if (f)
        fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---- the seam: a backend that records what it is asked ---- */

typedef struct {
    int puts, removed, dels, flushes, fetches, closed;
    llmc_cache_fetch_cb done;
    void *done_arg;
    uint8_t fetch_key[LLMC_KEY_LEN];
} rec_backend;

static int rec_put(void *be, const llmc_entry_info *e)
{
    ((rec_backend *)be)->puts++;
    return 0;
}
static void rec_removed(void *be, const llmc_entry_info *e, int reason)
{
    ((rec_backend *)be)->removed++;
}
static int rec_del(void *be, const uint8_t key[LLMC_KEY_LEN])
{
    ((rec_backend *)be)->dels++;
    return 0;
}
static void rec_flush(void *be, uint64_t ns, int all)
{
    ((rec_backend *)be)->flushes++;
}
static int rec_fetch(void *be, void *loop, const uint8_t key[LLMC_KEY_LEN],
                     llmc_cache_fetch_cb done, void *arg)
{
    rec_backend *r = be;
    r->fetches++;
    r->done = done; /* completed later, as a loop would */
    r->done_arg = arg;
    memcpy(r->fetch_key, key, LLMC_KEY_LEN);
    return 0;
}
static void rec_close(void *be)
{
    ((rec_backend *)be)->closed++;
}

static const llmc_cache_backend_ops rec_ops = {
    .name = "recording",
    .near_cache = 1,
    .fetch = rec_fetch,
    .put = rec_put,
    .removed = rec_removed,
    .del = rec_del,
    .flush = rec_flush,
    .close = rec_close,
};

static int fetched_rc = 1;
static const llmc_entry_info *fetched;
static void on_fetched(int rc, const llmc_entry_info *e, void *arg)
{
    fetched_rc = rc;
    fetched = e;
    (*(int *)arg)++;
}

static void test_backend_seam(void)
{
    rec_backend rb;
    memset(&rb, 0, sizeof rb);
    llmc_cache_params cp = llmc_cache_default_params();
    cp.backend = &rec_ops;
    cp.backend_state = &rb;
    llmc_cache *c = semantic_cache(&cp);
    float v[DIM], w[DIM];
    axis(v, 5);
    axis(w, 6);
    int stored = 0;
    put_answer(c, "mine", answer, 200, 0, v, 1000, &stored);
    CHECK(stored && rb.puts == 1);
    /* An entry inserted elsewhere: near cache and index follow, nothing is
     * written back. */
    llmc_cache_prep p;
    prep(c, "theirs", NULL, &p);
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    memcpy(e.key, p.key, LLMC_KEY_LEN);
    e.partition = p.partition;
    e.created = 1000;
    e.expires = 2000;
    e.endpoint = LLMC_EP_CHAT;
    e.model = "m";
    e.body = answer;
    e.body_len = strlen(answer);
    e.vec = w; /* same partition as "mine" (the last message is not in it) */
    e.dim = DIM;
    e.vec_model = "test-model";
    e.query = p.query;
    CHECK_EQ_INT(llmc_cache_notify_put(c, &e, 1000), 0);
    CHECK_EQ_INT(rb.puts, 1);
    CHECK(has_exact(c, "theirs", -1, 1000));
    llmc_semantic_result r;
    CHECK_EQ_INT(sem_get(c, "theirs", w, -1, 1000, &r), 0);
    /* Deleted elsewhere: gone here, not deleted back. */
    llmc_cache_notify_delete(c, p.key);
    CHECK(!has_exact(c, "theirs", -1, 1000));
    CHECK_EQ_INT(sem_get(c, "theirs", w, -1, 1000, &r), LLMC_ENOTFOUND);
    CHECK_EQ_INT(rb.dels, 0);
    /* A near-cache miss is fetched; the answer arrives later, lands in the
     * near cache, and the age rule applies to it. */
    int calls = 0;
    CHECK_EQ_INT(llmc_cache_fetch(c, NULL, p.key, -1, on_fetched, &calls), 0);
    CHECK(rb.fetches == 1 && calls == 0 && !memcmp(rb.fetch_key, p.key, LLMC_KEY_LEN));
    e.created = (int64_t)time(NULL);
    e.expires = e.created + 100;
    rb.done(0, &e, rb.done_arg);
    CHECK(calls == 1 && fetched_rc == 0 && fetched && fetched->body_len == strlen(answer));
    llmc_entry_release(fetched);
    CHECK(has_exact(c, "theirs", -1, e.created));
    CHECK_EQ_INT(llmc_cache_fetch(c, NULL, p.key, 0, on_fetched, &calls), 0);
    e.created -= 10; /* the backend's copy is 10 s old; the client takes 0 */
    rb.done(0, &e, rb.done_arg);
    CHECK(calls == 2 && fetched_rc == LLMC_ENOTFOUND && fetched == NULL);
    CHECK_EQ_INT(llmc_cache_fetch(c, NULL, p.key, -1, on_fetched, &calls), 0);
    rb.done(LLMC_EUPSTREAM, NULL, rb.done_arg); /* backend down: a miss */
    CHECK(calls == 3 && fetched_rc == LLMC_EUPSTREAM && fetched == NULL);
    /* This instance's delete and flush reach the backend. */
    llmc_cache_prep_clear(&p);
    prep(c, "mine", NULL, &p);
    int removed_before = rb.removed;
    CHECK_EQ_INT(llmc_cache_delete(c, p.key), 0);
    CHECK(rb.dels == 1 && rb.removed == removed_before + 1);
    llmc_cache_prep_clear(&p);
    llmc_cache_flush(c, 0, 1);
    CHECK_EQ_INT(rb.flushes, 1);
    /* The memory backend has nothing to fetch. */
    llmc_cache *m = llmc_cache_new(NULL, NULL, NULL, 0);
    CHECK_EQ_INT(llmc_cache_fetch(m, NULL, e.key, -1, on_fetched, &calls), LLMC_ENOTFOUND);
    CHECK_EQ_INT(calls, 3);
    llmc_cache_free(m);
    llmc_cache_free(c);
    CHECK_EQ_INT(rb.closed, 1);
}

#define CHAT(content, finish)                                                                      \
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","                  \
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":" content "},"      \
    "\"finish_reason\":\"" finish "\"}]}"

/* The policy's look at a parsed answer decides as its look at the raw
 * body did, and llmc_cache_put follows it. */
static void test_answer_checks(void)
{
    static const char *const bodies[] = {
        CHAT("\"Paris.\"", "stop"),
        CHAT("\"Here:\\n```python\\nprint(1)\\n```\"", "stop"),
        CHAT("\"~~~\\ncode\\n~~~\"", "stop"),
        CHAT("\"cut\"", "length"),
        CHAT("\"no\"", "content_filter"),
        CHAT("[{\"type\":\"text\",\"text\":\"``` in parts\"}]", "stop"),
        tool_answer,
    };
    llmc_policy *pol = llmc_policy_new(NULL, NULL);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        for (int status = 200; status <= 500; status += 300) {
            llmc_policy_decision a, b;
            memset(&a, 0, sizeof a);
            a.store = a.lookup = a.semantic = 1;
            a.action = LLMC_POLICY_CACHE;
            a.reason = "default";
            b = a;
            llmc_resp_info info;
            CHECK_EQ_INT(llmc_resp_parse(LLMC_EP_CHAT, bodies[i], strlen(bodies[i]), &info), 0);
            llmc_policy_check_response(pol, status, bodies[i], strlen(bodies[i]), 1, &a);
            CHECK_EQ_INT(llmc_policy_check_answer(pol, status, &info, &b), 0);
            CHECK_EQ_INT(a.store, b.store);
            CHECK_EQ_INT(a.action, b.action);
            CHECK_EQ_INT(a.fired, b.fired);
            CHECK(!strcmp(a.reason, b.reason));
        }
    llmc_policy_free(pol);

    /* In the cache: code is stored exact-only (never a semantic answer), a
     * refusal not at all, a truncated answer only when the rule is off. */
    llmc_cache_params cp = llmc_cache_default_params();
    llmc_cache *c = semantic_cache(&cp);
    float v[DIM];
    axis(v, 4);
    int stored = 0;
    llmc_semantic_result r;
    CHECK_EQ_INT(put_answer(c, "code q", bodies[1], 200, 0, v, 1000, &stored), 0);
    CHECK(stored && has_exact(c, "code q", -1, 1000));
    CHECK_EQ_INT(sem_get(c, "code q", v, -1, 1000, &r), LLMC_ENOTFOUND);
    CHECK_EQ_INT(put_answer(c, "refused q", bodies[4], 200, 0, NULL, 1000, &stored), 0);
    CHECK(!stored && !has_exact(c, "refused q", -1, 1000));
    CHECK_EQ_INT(put_answer(c, "cut q", bodies[3], 200, 0, NULL, 1000, &stored), 0);
    CHECK(!stored);
    llmc_cache_free(c);
    cp.policy.truncated = 0;
    c = llmc_cache_new(&cp, NULL, NULL, 0);
    CHECK_EQ_INT(put_answer(c, "cut q", bodies[3], 200, 0, NULL, 1000, &stored), 0);
    CHECK(stored && has_exact(c, "cut q", -1, 1000));
    llmc_cache_free(c);
}

int main(void)
{
    test_answer_checks();
    test_prepare();
    test_put_get();
    test_age_rules();
    test_semantic_follows();
    test_persist();
    test_backend_seam();
    return UNIT_DONE();
}
