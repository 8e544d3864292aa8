/* test_semantic.c — the semantic tier over a real index and store (an
 * llmc_cache, which keeps the two in step), with hand-made vectors:
 * partitions never leak, exact-only entries and other models are never
 * served, removed entries never come back, the threshold and the guard
 * both hold. */
#include <math.h>

#include "llmcache.h"
#include "unit.h"

#define DIM 8

static void unit_vec(float *v, int a, float noise)
{
    for (int i = 0; i < DIM; i++)
        v[i] = (i == a ? 1.0f : 0.0f) + (i == (a + 1) % DIM ? noise : 0.0f);
    float n = 0;
    for (int i = 0; i < DIM; i++)
        n += v[i] * v[i];
    for (int i = 0; i < DIM; i++)
        v[i] /= sqrtf(n);
}

/* Store an entry with vector v through the cache (memory + index), and
 * return a reference to it. */
static const llmc_entry_info *put(llmc_cache *c, int id, uint64_t part, const float *v,
                                  const char *query, uint32_t flags, const char *vmodel)
{
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    e.key[0] = (uint8_t)id;
    e.key[9] = 0x77;
    e.body = query;
    e.body_len = strlen(query);
    e.expires = 1000;
    e.partition = part;
    e.model = "m";
    e.vec = v;
    e.dim = DIM;
    e.vec_model = vmodel;
    e.query = query;
    e.flags = flags;
    const llmc_entry_info *ref = NULL;
    if (llmc_cache_insert(c, &e, 1) || llmc_cache_get_exact(c, e.key, -1, 1, &ref))
        return NULL;
    return ref;
}

/* A cache whose semantic tier has params sp (store budget max_bytes; 0:
 * the default). */
static llmc_cache *sem_cache(const llmc_semantic_params *sp, size_t max_bytes)
{
    llmc_cache_params cp = llmc_cache_default_params();
    if (max_bytes)
        cp.max_bytes = max_bytes;
    llmc_cache *c = llmc_cache_new(&cp, NULL, NULL, 0);
    if (c && llmc_cache_enable_semantic(c, sp)) {
        llmc_cache_free(c);
        return NULL;
    }
    return c;
}

/* The semantic tier's answer (any age), or NULL. */
static const llmc_entry_info *look(llmc_cache *c, uint64_t part, const float *q, const char *text,
                                   size_t len, double threshold, int64_t now,
                                   llmc_semantic_result *r)
{
    const llmc_entry_info *e = NULL;
    llmc_cache_get_semantic(c, part, q, text, len, threshold, -1, now, r, &e);
    return e;
}

static size_t indexed(llmc_cache *c)
{
    llmc_cache_stats st;
    llmc_cache_get_stats(c, &st);
    return st.semantic_indexed;
}

/* Vector with cosine c to axis a, the rest on axis b. */
static void mix_vec(float *v, int a, int b, double c)
{
    for (int i = 0; i < DIM; i++)
        v[i] = 0.0f;
    v[a] = (float)c;
    v[b] = (float)sqrt(1.0 - c * c);
}

static llmc_semantic_params test_params(void)
{
    llmc_semantic_params sp = llmc_semantic_default_params();
    sp.index.dim = DIM;
    sp.index.model = "test-model";
    return sp;
}

/* The defaults the daemon gets: the decision measured in semantic.c. */
static void test_defaults(void)
{
    llmc_semantic_params sp = llmc_semantic_default_params();
    CHECK(sp.threshold > 0.5 && sp.threshold < 1.0);
    CHECK(sp.margin > 0 && sp.short_boost > 0 && sp.short_words < sp.long_words);
    CHECK(sp.guard && sp.guard_params.max_unmatched < 1.0);
    CHECK(sp.vocab_path && strstr(sp.vocab_path, "vocab.json"));
    /* A vocabulary path that is there but not a vocabulary fails loudly. */
    sp = test_params();
    sp.vocab_path = "tests/unit/test_semantic.c";
    int err = 0;
    CHECK(llmc_semantic_new(&sp, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
    /* A missing one leaves the guard unweighted. */
    sp.vocab_path = "/nonexistent/vocab.json";
    llmc_semantic *sem = llmc_semantic_new(&sp, &err);
    CHECK(sem != NULL);
    llmc_semantic_free(sem);
}

/* Short texts need a higher cosine than long ones. */
static void test_short_boost(void)
{
    llmc_semantic_params sp = test_params();
    sp.threshold = 0.80;
    sp.short_boost = 0.10;
    sp.short_words = 6;
    sp.long_words = 16;
    sp.margin = 0;
    llmc_cache *c = sem_cache(&sp, 0);
    CHECK(c != NULL);
    float v[DIM], q[DIM];
    const char *s_short = "How do I reset my password?"; /* 6 words */
    const char *s_long = "How do I reset the password of my account when I no longer have access "
                         "to the email address it was registered with?";             /* 24 words */
    const char *s_mid = "How do I reset the password of my account on this laptop?"; /* 12 */
    mix_vec(v, 0, 1, 1.0);
    const llmc_entry_info *a = put(c, 1, 7, v, s_short, 0, "test-model");
    mix_vec(v, 2, 3, 1.0);
    const llmc_entry_info *b = put(c, 2, 7, v, s_long, 0, "test-model");
    mix_vec(v, 4, 5, 1.0);
    const llmc_entry_info *m = put(c, 3, 7, v, s_mid, 0, "test-model");
    CHECK(a && b && m);
    llmc_semantic_result r;
    /* Cosine 0.85: enough for the long text (0.80), not the short (0.90). */
    mix_vec(q, 0, 1, 0.85);
    CHECK(look(c, 7, q, s_short, strlen(s_short), -1, 2, &r) == NULL);
    CHECK(strcmp(r.reason, "below-threshold") == 0);
    mix_vec(q, 2, 3, 0.85);
    const llmc_entry_info *hit = look(c, 7, q, s_long, strlen(s_long), -1, 2, &r);
    CHECK(hit == b);
    llmc_entry_release(hit);
    /* The shorter text decides: a long query against a short entry. */
    mix_vec(q, 0, 1, 0.85);
    CHECK(look(c, 7, q, s_long, strlen(s_long), -1, 2, &r) == NULL);
    CHECK(strcmp(r.reason, "below-threshold") == 0);
    /* 12 words: halfway, threshold 0.84. */
    mix_vec(q, 4, 5, 0.845);
    hit = look(c, 7, q, s_mid, strlen(s_mid), -1, 2, &r);
    CHECK(hit == m);
    llmc_entry_release(hit);
    mix_vec(q, 4, 5, 0.835);
    CHECK(look(c, 7, q, s_mid, strlen(s_mid), -1, 2, &r) == NULL);
    /* Above the raised threshold the short one is served; a per-request
     * threshold moves both. */
    mix_vec(q, 0, 1, 0.95);
    hit = look(c, 7, q, s_short, strlen(s_short), -1, 2, &r);
    CHECK(hit == a);
    llmc_entry_release(hit);
    mix_vec(q, 0, 1, 0.85);
    hit = look(c, 7, q, s_short, strlen(s_short), 0.70, 2, &r);
    CHECK(hit == a);
    llmc_entry_release(hit);
    llmc_entry_release(a);
    llmc_entry_release(b);
    llmc_entry_release(m);
    llmc_cache_free(c);
}

/* Two different questions nearly as close: neither is served. */
static void test_margin(void)
{
    llmc_semantic_params sp = test_params();
    sp.threshold = 0.5;
    sp.short_boost = 0;
    sp.margin = 0.02;
    llmc_cache *c = sem_cache(&sp, 0);
    CHECK(c != NULL);
    float v[DIM], q[DIM];
    unit_vec(v, 0, 0.0f);
    const llmc_entry_info *a = put(c, 1, 9, v, "How do I reset my password?", 0, "test-model");
    unit_vec(v, 1, 0.0f);
    const llmc_entry_info *b = put(c, 2, 9, v, "How can I reset my password?", 0, "test-model");
    CHECK(a && b);
    const char *qt = "How would I reset my password?";
    llmc_semantic_result r;
    /* Equally close to both. */
    for (int i = 0; i < DIM; i++)
        q[i] = i < 2 ? (float)sqrt(0.5) : 0.0f;
    CHECK(look(c, 9, q, qt, strlen(qt), -1, 2, &r) == NULL);
    CHECK(strcmp(r.reason, "ambiguous") == 0);
    CHECK_EQ_INT(r.kind, LLMC_SEM_AMBIGUOUS);
    CHECK_EQ_INT(r.candidates, 2);
    /* Clearly closer to a: a. */
    q[0] = 0.8f;
    q[1] = 0.6f;
    const llmc_entry_info *hit = look(c, 9, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit == a);
    CHECK(strcmp(r.reason, "hit") == 0);
    llmc_entry_release(hit);
    /* A close rival the guard refuses does not make it ambiguous. */
    unit_vec(v, 2, 0.0f);
    const llmc_entry_info *m =
        put(c, 3, 9, v, "How do I reset my password 3 times?", 0, "test-model");
    for (int i = 0; i < DIM; i++)
        q[i] = 0.0f;
    q[0] = 0.69f;
    q[2] = 0.72f; /* c is the nearest, a second */
    hit = look(c, 9, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit == a);
    CHECK_EQ_INT(r.guard_rejected, 1);
    llmc_entry_release(hit);
    /* Margin 0: the best is served as before. */
    sp.margin = 0;
    llmc_cache *c0 = sem_cache(&sp, 0);
    CHECK(c0 != NULL);
    CHECK_EQ_INT(llmc_cache_insert(c0, a, 1), 0);
    CHECK_EQ_INT(llmc_cache_insert(c0, b, 1), 0);
    for (int i = 0; i < DIM; i++)
        q[i] = i < 2 ? (float)sqrt(0.5) : 0.0f;
    q[0] += 0.001f;
    hit = look(c0, 9, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit && memcmp(hit->key, a->key, LLMC_KEY_LEN) == 0);
    llmc_entry_release(hit);
    llmc_cache_free(c0);
    llmc_entry_release(a);
    llmc_entry_release(b);
    llmc_entry_release(m);
    llmc_cache_free(c);
}

/* Entry with its own answer body (put() uses the question as the answer),
 * created at unix time created. */
static const llmc_entry_info *put_answer_at(llmc_store *st, llmc_semantic *sem, int id,
                                            const float *v, const char *query, const char *answer,
                                            int64_t created)
{
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    e.created = created;
    e.key[0] = (uint8_t)id;
    e.key[9] = 0x55;
    e.endpoint = LLMC_EP_CHAT;
    e.body = answer;
    e.body_len = strlen(answer);
    e.expires = 1000;
    e.partition = 11;
    e.model = "m";
    e.vec = v;
    e.dim = DIM;
    e.vec_model = "test-model";
    e.query = query;
    const llmc_entry_info *ref = NULL;
    if (llmc_store_put(st, &e, 1, &ref))
        return NULL;
    llmc_semantic_add(sem, ref);
    return ref;
}

static const llmc_entry_info *put_answer(llmc_store *st, llmc_semantic *sem, int id, const float *v,
                                         const char *query, const char *answer)
{
    return put_answer_at(st, sem, id, v, query, answer, 0);
}

/* Ambiguity that means ambiguity: two close candidates that agree (the
 * same answer, or questions that are paraphrases of each other by the
 * tier's own decision) support a hit; two that disagree still block it. */
static void test_agree(void)
{
    llmc_semantic_params sp = test_params();
    sp.threshold = 0.5;
    sp.short_boost = 0;
    sp.margin = 0.05;
    llmc_semantic *sem = llmc_semantic_new(&sp, NULL);
    llmc_store *st = llmc_store_new(NULL, NULL);
    CHECK(sem && st);
    float v[DIM], q[DIM];
    llmc_semantic_result r;
    const char *qt = "How would I reset my password?";
    /* Orthogonal vectors, different questions, the same answer text: the
     * answer is right whichever is served. */
    unit_vec(v, 0, 0.0f);
    const llmc_entry_info *a =
        put_answer(st, sem, 1, v, "How do I reset my password?",
                   "{\"choices\":[{\"message\":{\"content\":\"Settings.\"}}],"
                   "\"id\":\"a\"}");
    unit_vec(v, 1, 0.0f);
    const llmc_entry_info *b =
        put_answer(st, sem, 2, v, "Where is the password reset?",
                   "{\"choices\":[{\"message\":{\"content\":\"Settings.\"}}],"
                   "\"id\":\"b\"}");
    CHECK(a && b);
    for (int i = 0; i < DIM; i++)
        q[i] = i < 2 ? (float)sqrt(0.5) : 0.0f;
    q[0] += 0.001f;
    const llmc_entry_info *hit =
        llmc_semantic_lookup(sem, st, 11, q, qt, strlen(qt), -1, -1, 2, &r);
    CHECK(hit == a);
    CHECK_EQ_INT(r.kind, LLMC_SEM_HIT);
    CHECK_EQ_INT(r.agreed, 1);
    llmc_entry_release(hit);
    llmc_entry_release(a);
    llmc_entry_release(b);
    llmc_store_free(st);

    /* Different answers, but the stored questions are paraphrases: their
     * vectors are close (cosine 0.98 >= 0.5) and the guard agrees. That
     * counts only with agree = 2 (measured to add wrong hits on the
     * pairs data: not the default); with the default it is ambiguous. */
    CHECK_EQ_INT(llmc_semantic_default_params().agree, 1);
    st = llmc_store_new(NULL, NULL);
    llmc_semantic_free(sem);
    sem = llmc_semantic_new(&sp, NULL);
    mix_vec(v, 0, 2, 0.99);
    a = put_answer(st, sem, 1, v, "How do I reset my password?", "answer one");
    float w[DIM];
    mix_vec(w, 0, 2, 0.985);
    b = put_answer(st, sem, 2, w, "How can I reset my password?", "answer two");
    CHECK(a && b);
    unit_vec(q, 0, 0.0f);
    CHECK(llmc_semantic_lookup(sem, st, 11, q, qt, strlen(qt), -1, -1, 2, &r) == NULL);
    CHECK_EQ_INT(r.kind, LLMC_SEM_AMBIGUOUS);
    llmc_semantic_free(sem);
    sp.agree = 2;
    sem = llmc_semantic_new(&sp, NULL);
    CHECK_EQ_INT(llmc_semantic_add(sem, a), 0);
    CHECK_EQ_INT(llmc_semantic_add(sem, b), 0);
    hit = llmc_semantic_lookup(sem, st, 11, q, qt, strlen(qt), -1, -1, 2, &r);
    CHECK(hit == a);
    CHECK_EQ_INT(r.agreed, 1);
    llmc_entry_release(hit);
    /* Two that pass but disagree (orthogonal vectors: not paraphrases by
     * this decision; different answers) stay ambiguous: test_margin. */
    llmc_entry_release(a);
    llmc_entry_release(b);
    llmc_store_free(st);
    llmc_semantic_free(sem);
}

/* An answer stored without its vector (its lookup was skipped under load)
 * gets it later: indexed then, once; not when the entry changed or is gone,
 * or when it is exact-only. */
static void test_attach_vector(llmc_cache *c)
{
    float v[DIM], q[DIM];
    unit_vec(v, 3, 0.0f);
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    e.key[0] = 42;
    e.key[9] = 0x77;
    e.body = e.query = "Which plan includes priority support?";
    e.body_len = strlen(e.body);
    e.expires = 1000;
    e.partition = 300;
    e.model = "m";
    CHECK_EQ_INT(llmc_cache_insert(c, &e, 1), 0);
    size_t before = indexed(c);
    llmc_semantic_result r;
    unit_vec(q, 3, 0.1f);
    const char *qt = "Which plan has priority support?";
    CHECK(look(c, 300, q, qt, strlen(qt), -1, 2, &r) == NULL); /* no vector: not indexed */
    CHECK_EQ_INT(llmc_cache_attach_vector(c, e.key, "another question", v, DIM, 2), LLMC_ENOTFOUND);
    CHECK_EQ_INT(llmc_cache_attach_vector(c, e.key, e.query, v, DIM, 2), 0);
    CHECK_EQ_INT(indexed(c), before + 1);
    const llmc_entry_info *hit = look(c, 300, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit && memcmp(hit->key, e.key, LLMC_KEY_LEN) == 0);
    CHECK(hit && hit->expires == 1000 && hit->body_len == e.body_len);
    llmc_entry_release(hit);
    /* once: it has its vector now */
    CHECK_EQ_INT(llmc_cache_attach_vector(c, e.key, e.query, v, DIM, 2), LLMC_ENOTFOUND);
    CHECK_EQ_INT(indexed(c), before + 1);
    uint8_t gone[LLMC_KEY_LEN] = {43};
    CHECK_EQ_INT(llmc_cache_attach_vector(c, gone, e.query, v, DIM, 2), LLMC_ENOTFOUND);
    e.key[0] = 44;
    e.flags = LLMC_ENTRY_EXACT_ONLY;
    CHECK_EQ_INT(llmc_cache_insert(c, &e, 1), 0);
    CHECK_EQ_INT(llmc_cache_attach_vector(c, e.key, e.query, v, DIM, 2), LLMC_ENOTFOUND);
    CHECK_EQ_INT(indexed(c), before + 1);
}

/* max-age (Cache-Control: max-age): a candidate older than the client
 * accepts is passed over and a younger one that also passes is served;
 * before, the closest was chosen first and then refused as too old. */
static void test_max_age(void)
{
    llmc_semantic_params sp = test_params();
    sp.threshold = 0.5;
    sp.short_boost = 0;
    sp.margin = 0;
    llmc_semantic *sem = llmc_semantic_new(&sp, NULL);
    llmc_store *st = llmc_store_new(NULL, NULL);
    CHECK(sem && st);
    float v[DIM], w[DIM], q[DIM];
    const char *qt = "How would I reset my password?";
    mix_vec(v, 0, 2, 0.99); /* the closest, stored at t=10 */
    mix_vec(w, 0, 2, 0.9);  /* less close, stored at t=100 */
    const llmc_entry_info *a =
        put_answer_at(st, sem, 1, v, "How do I reset my password?", "old", 10);
    const llmc_entry_info *b =
        put_answer_at(st, sem, 2, w, "How can I reset my password?", "new", 100);
    CHECK(a && b);
    unit_vec(q, 0, 0.0f);
    llmc_semantic_result r;
    const llmc_entry_info *hit =
        llmc_semantic_lookup(sem, st, 11, q, qt, strlen(qt), -1, -1, 110, &r);
    CHECK(hit == a); /* any age: the closest */
    llmc_entry_release(hit);
    hit = llmc_semantic_lookup(sem, st, 11, q, qt, strlen(qt), -1, 50, 110, &r);
    CHECK(hit == b); /* a is 100 s old, b 10 s: b answers */
    CHECK_EQ_INT(r.kind, LLMC_SEM_HIT);
    llmc_entry_release(hit);
    CHECK(llmc_semantic_lookup(sem, st, 11, q, qt, strlen(qt), -1, 5, 110, &r) == NULL);
    CHECK_EQ_INT(r.kind, LLMC_SEM_TOO_OLD);
    CHECK(strcmp(r.reason, "too-old") == 0);
    CHECK(strcmp(llmc_semantic_kind_name(r.kind), "too_old") == 0);
    llmc_entry_release(a);
    llmc_entry_release(b);
    llmc_store_free(st);
    llmc_semantic_free(sem);
}

/* The learned floor: an entry no longer answers queries at or below the
 * similarity of a hit it was found to answer wrongly; closer ones still. */
static void test_learned_floor(void)
{
    llmc_semantic_params sp = test_params();
    sp.threshold = 0.5;
    sp.short_boost = 0;
    llmc_cache *c = sem_cache(&sp, 0);
    CHECK(c != NULL);
    float v[DIM], q[DIM];
    unit_vec(v, 0, 0.0f);
    const llmc_entry_info *a = put(c, 1, 9, v, "How do I reset my password?", 0, "test-model");
    CHECK(a != NULL && llmc_entry_semantic_floor(a) == 0);
    const char *qt = "How would I reset my password?";
    llmc_semantic_result r;
    mix_vec(q, 0, 1, 0.9);
    const llmc_entry_info *hit = look(c, 9, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit == a);
    llmc_entry_release(hit);
    double at = r.similarity;
    llmc_entry_raise_semantic_floor(a, at);
    CHECK(fabs(llmc_entry_semantic_floor(a) - at) < 1e-6);
    llmc_entry_raise_semantic_floor(a, at - 0.2); /* never lowered */
    CHECK(fabs(llmc_entry_semantic_floor(a) - at) < 1e-6);
    CHECK(look(c, 9, q, qt, strlen(qt), -1, 2, &r) == NULL);
    CHECK(strcmp(r.reason, "learned-floor") == 0);
    mix_vec(q, 0, 1, 0.85); /* further: refused too */
    CHECK(look(c, 9, q, qt, strlen(qt), -1, 2, &r) == NULL);
    mix_vec(q, 0, 1, 0.97); /* closer: still answered */
    hit = look(c, 9, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit == a);
    llmc_entry_release(hit);
    llmc_entry_release(a);
    llmc_cache_free(c);
}

int main(void)
{
    llmc_semantic_params sp = llmc_semantic_default_params();
    sp.index.dim = DIM;
    sp.index.model = "test-model";
    sp.threshold = 0.9;
    sp.short_boost = 0; /* the mechanics first; the short-text rule below */
    llmc_cache *c = sem_cache(&sp, 0);
    CHECK(c != NULL);
    float v[DIM], q[DIM];
    unit_vec(v, 0, 0.0f);
    const llmc_entry_info *a = put(c, 1, 100, v, "How do I reset my password?", 0, "test-model");
    CHECK(a != NULL);
    CHECK_EQ_INT(indexed(c), 1);

    /* Similar enough, same partition: served. */
    unit_vec(q, 0, 0.2f);
    llmc_semantic_result r;
    const char *qt = "How can I reset my password?";
    const llmc_entry_info *hit = look(c, 100, q, qt, strlen(qt), -1, 2, &r);
    CHECK(hit == a);
    CHECK(r.similarity > 0.9 && r.similarity < 1.0);
    CHECK(strcmp(r.reason, "hit") == 0);
    llmc_entry_release(hit);
    /* Another partition: never. */
    CHECK(look(c, 101, q, qt, strlen(qt), -1, 2, &r) == NULL);
    /* Below the threshold: no; a lower per-request threshold: yes. */
    unit_vec(q, 0, 0.8f);
    CHECK(look(c, 100, q, qt, strlen(qt), -1, 2, &r) == NULL);
    CHECK(strcmp(r.reason, "below-threshold") == 0);
    /* The structured reason: the similarity found and the bar it missed. */
    CHECK_EQ_INT(r.kind, LLMC_SEM_BELOW);
    CHECK(r.similarity < 0.9 && fabs(r.needed - 0.9) < 1e-9);
    CHECK(!strcmp(llmc_semantic_kind_name(r.kind), "below_threshold"));
    hit = look(c, 100, q, qt, strlen(qt), 0.5, 2, &r);
    CHECK(hit == a);
    llmc_entry_release(hit);
    /* The guard: a near vector but another number is refused. */
    unit_vec(q, 0, 0.05f);
    const char *other = "How do I reset my password 3 times?";
    CHECK(look(c, 100, q, other, strlen(other), -1, 2, &r) == NULL);
    CHECK(r.guard_rejected == 1);
    CHECK_EQ_INT(r.kind, LLMC_SEM_GUARD);
    CHECK(!strcmp(r.guard_detail, "number 3 vs none"));
    /* An empty partition says so. */
    CHECK(look(c, 555, q, qt, strlen(qt), -1, 2, &r) == NULL);
    CHECK_EQ_INT(r.kind, LLMC_SEM_EMPTY);
    CHECK(!strcmp(llmc_semantic_kind_name(LLMC_SEM_SKIPPED), "skipped"));
    CHECK(!strcmp(llmc_semantic_kind_name((llmc_semantic_kind)99), "unknown"));

    /* Exact-only entries and vectors of another model are never served. */
    unit_vec(v, 3, 0.0f);
    const llmc_entry_info *x = put(c, 2, 100, v, "write code", LLMC_ENTRY_EXACT_ONLY, "test-model");
    const llmc_entry_info *y = put(c, 3, 100, v, "write code", 0, "other-model");
    CHECK_EQ_INT(indexed(c), 1);
    unit_vec(q, 3, 0.0f);
    CHECK(look(c, 100, q, "write code", 10, -1, 2, &r) == NULL);
    llmc_entry_release(x);
    llmc_entry_release(y);

    /* Deleted, expired or evicted: gone from the index too. */
    unit_vec(q, 0, 0.1f);
    CHECK_EQ_INT(llmc_cache_delete(c, a->key), 0);
    CHECK_EQ_INT(indexed(c), 0);
    CHECK(look(c, 100, q, qt, strlen(qt), -1, 2, &r) == NULL);
    llmc_entry_release(a);
    unit_vec(v, 5, 0.0f);
    const llmc_entry_info *b = put(c, 4, 100, v, "What is the capital of France?", 0, "test-model");
    CHECK_EQ_INT(indexed(c), 1);
    CHECK_EQ_INT(llmc_cache_expire(c, 5000, 10), 3); /* b and the two above */
    CHECK_EQ_INT(indexed(c), 0);
    llmc_entry_release(b);

    /* Evicted by the byte budget: the vector goes too, so the index never
     * holds more vectors than the store entries. */
    {
        llmc_cache *ev = sem_cache(&sp, 8192);
        CHECK(ev != NULL);
        char text[600];
        for (int i = 0; ev && i < 60; i++) {
            unit_vec(v, i % DIM, 0.0f);
            memset(text, 'a' + i % 26, sizeof text - 1);
            text[sizeof text - 1] = 0;
            const llmc_entry_info *e = put(ev, 100 + i, 200, v, text, 0, "test-model");
            CHECK(e != NULL);
            llmc_entry_release(e);
        }
        llmc_cache_stats ss;
        llmc_cache_get_stats(ev, &ss);
        CHECK(ss.store.evictions > 0);
        CHECK_EQ_INT(ss.semantic_indexed, ss.store.entries);
        llmc_cache_free(ev);
    }

    /* Wrong dimension / model at add. */
    llmc_entry_info bad;
    memset(&bad, 0, sizeof bad);
    bad.vec = v;
    bad.dim = DIM - 1;
    bad.vec_model = "test-model";
    llmc_semantic *sem = llmc_semantic_new(&sp, NULL);
    CHECK(sem != NULL);
    CHECK_EQ_INT(llmc_semantic_add(sem, &bad), LLMC_EMISMATCH);
    bad.dim = 0;
    CHECK_EQ_INT(llmc_semantic_add(sem, &bad), LLMC_EINVAL);
    llmc_semantic_free(sem);
    test_attach_vector(c);
    llmc_cache_free(c);
    test_defaults();
    test_short_boost();
    test_margin();
    test_agree();
    test_max_age();
    test_learned_floor();
    return UNIT_DONE();
}
