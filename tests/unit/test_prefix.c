/* test_prefix.c — the prefix-affinity router: policies, SGLang-style balance
 * thresholds, health, the radix tree against a brute-force model, aging,
 * the memory bound and forgetting a backend. */
#include "llmcache.h"
#include "unit.h"

static uint64_t fake_now = 1000;
static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

static llmc_prefix_router *mk(int policy, int n)
{
    llmc_prefix_params p = llmc_prefix_default_params();
    p.policy = policy;
    p.clock_ms = fake_clock;
    int err = 0;
    llmc_prefix_router *r = llmc_prefix_router_new(&p, n, &err);
    CHECK(r != NULL);
    return r;
}

static void test_defaults_and_args(void)
{
    llmc_prefix_params p = llmc_prefix_default_params();
    CHECK_EQ_INT(p.policy, LLMC_ROUTE_PREFIX);
    CHECK(p.match_threshold == 0.5);
    CHECK_EQ_INT(p.balance_abs_threshold, 32);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(llmc_prefix_policy_parse(llmc_prefix_policy_name(i)), i);
    CHECK_EQ_INT(llmc_prefix_policy_parse("prefix"), LLMC_ROUTE_PREFIX);
    CHECK_EQ_INT(llmc_prefix_policy_parse("random"), LLMC_EINVAL);
    CHECK(strcmp(llmc_prefix_policy_name(9), "unknown") == 0);
    int err = 0;
    CHECK(llmc_prefix_router_new(&p, 0, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
    CHECK(llmc_prefix_router_new(&p, LLMC_PREFIX_MAX_BACKENDS + 1, &err) == NULL);
    p.balance_rel_threshold = 0.5;
    CHECK(llmc_prefix_router_new(&p, 2, &err) == NULL);
    llmc_prefix_router *r = llmc_prefix_router_new(NULL, 2, &err);
    CHECK(r != NULL);
    int load[2] = {0, 0}, none[2] = {0, 0};
    CHECK_EQ_INT(llmc_prefix_route(r, "x", 1, load, none), LLMC_ENOTFOUND);
    CHECK_EQ_INT(llmc_prefix_route(r, "x", 1, NULL, NULL), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_prefix_record(r, 2, "x", 1), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_prefix_forget_backend(r, -1), LLMC_EINVAL);
    llmc_prefix_router_free(r);
}

static void test_round_robin_and_least_loaded(void)
{
    llmc_prefix_router *r = mk(LLMC_ROUTE_ROUND_ROBIN, 3);
    int load[3] = {9, 0, 0}, h[3] = {1, 1, 1};
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, load, h), 0);
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, load, h), 1);
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, load, h), 2);
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, load, h), 0);
    h[1] = 0;
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, load, h), 2);
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, load, h), 0);
    llmc_prefix_router_free(r);

    r = mk(LLMC_ROUTE_LEAST_LOADED, 3);
    int l2[3] = {5, 2, 7};
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, l2, NULL), 1);
    int l3[3] = {0, 0, 0}, seen[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        seen[llmc_prefix_route(r, "a", 1, l3, NULL)]++;
    CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1); /* ties rotate */
    int h2[3] = {1, 0, 1};
    CHECK_EQ_INT(llmc_prefix_route(r, "a", 1, l2, h2), 0);
    llmc_prefix_router_free(r);
}

static const char *SYS_A = "You are a helpful assistant for ACME Corp. Answer politely and "
                           "briefly, citing the handbook where you can. Question: ";
static const char *SYS_B = "You are a pirate. Speak like a pirate at all times, matey, and "
                           "never break character whatever happens. Question: ";

static void test_affinity_and_balance(void)
{
    llmc_prefix_router *r = mk(LLMC_ROUTE_PREFIX, 3);
    char k1[512], k2[512], k3[512];
    snprintf(k1, sizeof k1, "%swhere is the office?", SYS_A);
    snprintf(k2, sizeof k2, "%swhat are the opening hours?", SYS_A);
    snprintf(k3, sizeof k3, "%swhere is the treasure?", SYS_B);
    int load[3] = {0, 0, 0};
    CHECK_EQ_INT(llmc_prefix_record(r, 2, k1, strlen(k1)), 0);
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), load, NULL), 2);
    llmc_prefix_stats st;
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.affinity, 1);
    /* a different system prompt matches nothing: least loaded */
    int l1[3] = {3, 1, 2};
    CHECK_EQ_INT(llmc_prefix_route(r, k3, strlen(k3), l1, NULL), 1);
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.miss, 1);
    /* moderate imbalance (10 <= 32) keeps the affinity */
    int l2[3] = {0, 0, 10};
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), l2, NULL), 2);
    /* a gap over the absolute threshold (and the relative one) falls back */
    int l3[3] = {4, 1, 40};
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), l3, NULL), 1);
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.balance, 1);
    /* an overloaded backend elsewhere does not disturb this key's affinity */
    int l3b[3] = {40, 0, 1};
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), l3b, NULL), 2);
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.balance, 1);
    /* the matching backend is down: the least loaded healthy one */
    int h[3] = {1, 1, 0};
    int l4[3] = {2, 1, 0};
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), l4, h), 1);
    /* two backends hold the prefix: the less loaded of the two, not the idle third */
    CHECK_EQ_INT(llmc_prefix_record(r, 0, k1, strlen(k1)), 0);
    int l5[3] = {3, 0, 5};
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), l5, NULL), 0);
    /* a match at or below the threshold share is a miss */
    char k4[64];
    snprintf(k4, sizeof k4, "You are a helpful assistant for ACME Corp. Answer ");
    char k5[2048];
    snprintf(k5, sizeof k5, "%s%s", k4,
             "x x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
             " x x x x x x x x x x x x x x x x x x");
    size_t m[3];
    llmc_prefix_match(r, k5, strlen(k5), m);
    CHECK_EQ_INT(m[2], strlen(k4));
    CHECK(m[2] * 2 < strlen(k5));
    int l6[3] = {1, 0, 1};
    CHECK_EQ_INT(llmc_prefix_route(r, k5, strlen(k5), l6, NULL), 1);
    llmc_prefix_router_free(r);

    /* the relative threshold: with abs 2 and rel 2, 7 vs 3 is uneven, 6 vs 3 is not */
    llmc_prefix_params p = llmc_prefix_default_params();
    p.balance_abs_threshold = 2;
    p.balance_rel_threshold = 2.0;
    p.clock_ms = fake_clock;
    r = llmc_prefix_router_new(&p, 2, NULL);
    llmc_prefix_record(r, 0, k1, strlen(k1));
    int a[2] = {6, 3}, b[2] = {7, 3};
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), a, NULL), 0);
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), b, NULL), 1);
    llmc_prefix_router_free(r);
}

static void test_tie_breaks(void)
{
    llmc_prefix_router *r = mk(LLMC_ROUTE_PREFIX, 3);
    char k1[512], k2[512];
    snprintf(k1, sizeof k1, "%sfirst question", SYS_A);
    snprintf(k2, sizeof k2, "%ssecond question", SYS_A);
    fake_now = 5000;
    llmc_prefix_record(r, 0, k1, strlen(k1));
    fake_now = 6000;
    llmc_prefix_record(r, 1, k1, strlen(k1));
    int eq[3] = {1, 1, 0}, less[3] = {0, 1, 0};
    /* equal loads: the backend sent the prefix most recently, not the idle one */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), eq, NULL), 1);
    /* lower load wins over recency */
    CHECK_EQ_INT(llmc_prefix_route(r, k2, strlen(k2), less, NULL), 0);
    llmc_prefix_router_free(r);
}

/* with level loads, new prefixes go to the backend holding the fewest bytes */
static void test_spread_new_prefixes(void)
{
    llmc_prefix_router *r = mk(LLMC_ROUTE_PREFIX, 4);
    int load[4] = {0, 0, 0, 0}, count[4] = {0, 0, 0, 0};
    char key[128];
    for (int t = 0; t < 20; t++) {
        snprintf(key, sizeof key, "tenant %02d: a system prompt of the same length for all", t);
        int b = llmc_prefix_route(r, key, strlen(key), load, NULL);
        CHECK(b >= 0 && b < 4);
        count[b]++;
        llmc_prefix_record(r, b, key, strlen(key));
    }
    for (int b = 0; b < 4; b++)
        CHECK_EQ_INT(count[b], 5);
    llmc_prefix_router_free(r);
}

static void test_match_lengths(void)
{
    llmc_prefix_router *r = mk(LLMC_ROUTE_PREFIX, 3);
    size_t m[3];
    llmc_prefix_record(r, 0, "abcdef", 6);
    llmc_prefix_record(r, 1, "abcxyz", 6);
    CHECK_EQ_INT(llmc_prefix_match(r, "abcdQQ", 6, m), 4);
    CHECK(m[0] == 4 && m[1] == 3 && m[2] == 0);
    CHECK_EQ_INT(llmc_prefix_match(r, "ab", 2, m), 2);
    CHECK(m[0] == 2 && m[1] == 2 && m[2] == 0);
    CHECK_EQ_INT(llmc_prefix_match(r, "abcdefgh", 8, m), 6);
    CHECK_EQ_INT(llmc_prefix_match(r, "zzz", 3, m), 0);
    llmc_prefix_record(r, 2, "abc", 3); /* a key ending on a split point */
    CHECK_EQ_INT(llmc_prefix_match(r, "abcdef", 6, m), 6);
    CHECK(m[0] == 6 && m[1] == 3 && m[2] == 3);
    llmc_prefix_router_free(r);
}

/* the tree against brute force: random keys over a tiny alphabet */
static void test_against_brute_force(void)
{
    enum { NK = 400, KL = 24, NB = 4 };
    llmc_prefix_params p = llmc_prefix_default_params();
    p.max_age_s = 0;
    p.max_key_bytes = 20;
    llmc_prefix_router *r = llmc_prefix_router_new(&p, NB, NULL);
    static char keys[NK][KL];
    int owner[NK];
    size_t lens[NK];
    unsigned s = 12345;
    int bad = 0;
    for (int i = 0; i < NK; i++) {
        s = s * 1103515245u + 12345u;
        lens[i] = 1 + (s >> 16) % KL;
        for (size_t j = 0; j < lens[i]; j++) {
            s = s * 1103515245u + 12345u;
            keys[i][j] = "abc"[(s >> 16) % 3];
        }
        owner[i] = (int)((s >> 8) % NB);
        CHECK_EQ_INT(llmc_prefix_record(r, owner[i], keys[i], lens[i]), 0);
        if (i % 20 != 19)
            continue;
        for (int q = 0; q <= i; q += 7) {
            size_t m[NB], want[NB] = {0};
            size_t ql = lens[q] > 20 ? 20 : lens[q];
            for (int k = 0; k <= i; k++) {
                size_t kl = lens[k] > 20 ? 20 : lens[k], c = 0;
                while (c < kl && c < ql && keys[k][c] == keys[q][c])
                    c++;
                if (c > want[owner[k]])
                    want[owner[k]] = c;
            }
            llmc_prefix_match(r, keys[q], lens[q], m);
            for (int b = 0; b < NB; b++)
                bad += m[b] != want[b];
        }
    }
    CHECK_EQ_INT(bad, 0);
    llmc_prefix_stats st;
    llmc_prefix_get_stats(r, &st);
    CHECK(st.nodes > 50);
    /* held bytes = distinct non-empty prefixes of each backend's keys */
    for (int b = 0; b < NB; b++) {
        size_t want = 0;
        for (int k = 0; k < NK; k++) {
            if (owner[k] != b)
                continue;
            size_t kl = lens[k] > 20 ? 20 : lens[k];
            for (size_t l = 1; l <= kl; l++) {
                int seen = 0;
                for (int o = 0; o < k && !seen; o++)
                    seen = owner[o] == b && (lens[o] > 20 ? 20 : lens[o]) >= l &&
                           memcmp(keys[o], keys[k], l) == 0;
                want += !seen;
            }
        }
        CHECK_EQ_INT(st.held_bytes[b], want);
    }
    for (int b = 0; b < NB; b++)
        llmc_prefix_forget_backend(r, b);
    llmc_prefix_stats st2;
    llmc_prefix_get_stats(r, &st2);
    CHECK_EQ_INT(st2.nodes, 1);
    for (int b = 0; b < NB; b++)
        CHECK_EQ_INT(st2.held_bytes[b], 0);
    llmc_prefix_router *fresh = llmc_prefix_router_new(&p, NB, NULL);
    llmc_prefix_stats st3;
    llmc_prefix_get_stats(fresh, &st3);
    CHECK(st2.bytes <= st3.bytes + 64); /* the root's child array may stay allocated */
    llmc_prefix_router_free(fresh);
    llmc_prefix_router_free(r);
}

static void test_aging_and_forget(void)
{
    llmc_prefix_params p = llmc_prefix_default_params();
    p.max_age_s = 10;
    p.clock_ms = fake_clock;
    fake_now = 1000;
    llmc_prefix_router *r = llmc_prefix_router_new(&p, 2, NULL);
    size_t m[2];
    llmc_prefix_record(r, 0, "system prompt one", 17);
    fake_now += 6000;
    llmc_prefix_record(r, 1, "system prompt two", 17);
    CHECK_EQ_INT(llmc_prefix_match(r, "system prompt one", 17, m), 17);
    fake_now += 5000; /* backend 0's mark is 11 s old, backend 1's 5 s */
    llmc_prefix_match(r, "system prompt one", 17, m);
    CHECK_EQ_INT(m[0], 0);
    CHECK_EQ_INT(m[1], 14); /* "system prompt " */
    llmc_prefix_stats st;
    llmc_prefix_get_stats(r, &st);
    size_t before = st.nodes;
    llmc_prefix_expire(r);
    llmc_prefix_get_stats(r, &st);
    CHECK(st.nodes < before);
    CHECK(st.expired >= 1);
    fake_now += 20000;
    llmc_prefix_expire(r);
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.nodes, 1);
    CHECK(st.held_bytes[0] == 0 && st.held_bytes[1] == 0);
    /* forget: a backend that restarted loses its marks, others keep theirs */
    llmc_prefix_record(r, 0, "shared key", 10);
    llmc_prefix_record(r, 1, "shared key", 10);
    CHECK_EQ_INT(llmc_prefix_forget_backend(r, 0), 0);
    llmc_prefix_match(r, "shared key", 10, m);
    CHECK(m[0] == 0 && m[1] == 10);
    llmc_prefix_router_free(r);
}

static void test_memory_bound(void)
{
    llmc_prefix_params p = llmc_prefix_default_params();
    p.max_bytes = 64 * 1024;
    p.clock_ms = fake_clock;
    llmc_prefix_router *r = llmc_prefix_router_new(&p, 4, NULL);
    char key[256];
    unsigned s = 99;
    int over = 0;
    for (int i = 0; i < 3000; i++) {
        fake_now++;
        for (int j = 0; j < 200; j++) {
            s = s * 1103515245u + 12345u;
            key[j] = (char)('a' + (s >> 16) % 26);
        }
        CHECK_EQ_INT(llmc_prefix_record(r, i % 4, key, 200), 0);
        llmc_prefix_stats st;
        llmc_prefix_get_stats(r, &st);
        over += st.bytes > p.max_bytes;
    }
    CHECK_EQ_INT(over, 0);
    size_t m[4];
    CHECK_EQ_INT(llmc_prefix_match(r, key, 200, m), 200); /* the newest survives */
    llmc_prefix_stats st;
    llmc_prefix_get_stats(r, &st);
    CHECK(st.evicted > 1000);
    for (int b = 0; b < 4; b++)
        CHECK(st.held_bytes[b] > 0 && st.held_bytes[b] < st.bytes);
    for (int b = 0; b < 4; b++)
        llmc_prefix_forget_backend(r, b);
    llmc_prefix_get_stats(r, &st);
    for (int b = 0; b < 4; b++)
        CHECK_EQ_INT(st.held_bytes[b], 0);
    llmc_prefix_router_free(r);
}

/* llmc_prefix_route_held with what the events say: held (no last holder
 * known, no totals) unless given. */
static int route_held(llmc_prefix_router *r, size_t *held, size_t n_blocks, size_t *total,
                      uint64_t tie, const int *load, const int *healthy)
{
    llmc_prefix_held h = {held, total, NULL, n_blocks, tie, -1, 0};
    return llmc_prefix_route_held(r, &h, load, healthy);
}

/* Routing on held blocks (from KV events): the longest run wins, the load
 * guard still applies, ties go the same way for the same tie value whatever
 * the loads (two gateways agree) and spread over holders for different
 * ones, and nobody holding anything is left to the caller's fallback. */
static void test_route_held(void)
{
    llmc_prefix_params p = llmc_prefix_default_params();
    p.balance_abs_threshold = 2;
    llmc_prefix_router *r = llmc_prefix_router_new(&p, 4, NULL);
    int load[4] = {0, 0, 0, 0};
    size_t none[4] = {0, 0, 0, 0}, held[4] = {1, 5, 3, 0};
    CHECK_EQ_INT(route_held(r, none, 8, NULL, 7, load, NULL), LLMC_ENOTFOUND);
    llmc_prefix_stats st;
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.routed, 0);
    CHECK_EQ_INT(route_held(r, held, 8, NULL, 7, load, NULL), 1);
    /* a run of at most half the prompt, or one everybody holds, decides
     * nothing: the caller's tree does */
    CHECK_EQ_INT(route_held(r, held, 10, NULL, 7, load, NULL), LLMC_ENOTFOUND);
    size_t common[4] = {6, 6, 6, 6};
    CHECK_EQ_INT(route_held(r, common, 8, NULL, 7, load, NULL), LLMC_ENOTFOUND);
    int healthy[4] = {1, 0, 1, 1};
    CHECK_EQ_INT(route_held(r, held, 4, NULL, 7, load, healthy), 2);
    /* 1 is overloaded (4 - 0 > 2 and 4 > 0): the next longest holder, when
     * it holds at least half as much ... */
    load[1] = 4;
    CHECK_EQ_INT(route_held(r, held, 8, NULL, 7, load, NULL), 2);
    /* ... else the least loaded (a spill, not a 1-block holder) */
    size_t weak[4] = {1, 6, 2, 0};
    int lw[4] = {0, 4, 1, 0};
    int w = route_held(r, weak, 8, NULL, 7, lw, NULL);
    CHECK(w == 0 || w == 3);
    /* only overloaded backends hold it: the least loaded */
    size_t only1[4] = {0, 5, 0, 0};
    load[0] = 1;
    CHECK_EQ_INT(route_held(r, only1, 8, NULL, 7, load, NULL), 2);
    /* ties: the same answer for the same tie value whatever the loads below
     * the guard (two gateways see the same events, not each other's loads)
     * ... */
    size_t tie[4] = {3, 3, 3, 0};
    int l0[4] = {0, 0, 0, 0}, l1[4] = {1, 1, 1, 1}, lt[4] = {2, 1, 0, 2};
    int seen[4] = {0, 0, 0, 0};
    for (uint64_t t = 1; t <= 400; t++) {
        int a = route_held(r, tie, 4, NULL, t * 0x12345ull, l0, NULL);
        CHECK_EQ_INT(route_held(r, tie, 4, NULL, t * 0x12345ull, l1, NULL), a);
        CHECK_EQ_INT(route_held(r, tie, 4, NULL, t * 0x12345ull, lt, NULL), a);
        if (a >= 0)
            seen[a]++;
    }
    /* ... and spread over the holders across different prompts */
    for (int b = 0; b < 3; b++)
        CHECK(seen[b] > 80);
    CHECK_EQ_INT(seen[3], 0);
    /* a holder past the guard is skipped even if the hash ranks it first */
    int first = route_held(r, tie, 4, NULL, 99, l0, NULL);
    int lg[4] = {0, 0, 0, 0};
    lg[first] = 4;
    int second = route_held(r, tie, 4, NULL, 99, lg, NULL);
    CHECK(second >= 0 && second <= 2 && second != first);
    /* a new prefix with the engines' totals: the fewest blocks held among
     * those not overloaded, the same answer whatever this gateway's loads */
    size_t total[4] = {40, 12, 9, 30};
    int l2[4] = {0, 0, 0, 0};
    CHECK_EQ_INT(route_held(r, none, 8, total, 5, l2, NULL), 2);
    l2[0] = 1;
    CHECK_EQ_INT(route_held(r, none, 8, total, 5, l2, NULL), 2);
    l2[2] = 4; /* 2 is overloaded now: the next smallest */
    CHECK_EQ_INT(route_held(r, none, 8, total, 5, l2, NULL), 1);
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.precise, st.routed);
    CHECK_EQ_INT(st.miss, 3);
    CHECK(st.balance >= 1);
    llmc_prefix_router_free(r);
}

/* Evicted everywhere but remembered: the prompt goes back to the backend
 * that held it last (the tree's stickiness, from the engines' events),
 * ahead of the smallest tree and of a short leftover run elsewhere; to the
 * least loaded when that backend is overloaded or down. */
static void test_route_held_last(void)
{
    llmc_prefix_params p = llmc_prefix_default_params();
    p.balance_abs_threshold = 2;
    llmc_prefix_router *r = llmc_prefix_router_new(&p, 4, NULL);
    int load[4] = {0, 0, 0, 0};
    size_t none[4] = {0, 0, 0, 0}, total[4] = {40, 12, 9, 30};
    llmc_prefix_held h = {none, total, NULL, 8, 5, 3, 8};
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, load, NULL), 3);
    h.total = NULL;
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, load, NULL), 3);
    size_t stub[4] = {2, 0, 0, 0}; /* backend 0 kept 2 of 8 blocks: below the threshold */
    h.held = stub;
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, load, NULL), 3);
    /* known no deeper than what is held now: no stickiness, the tree */
    h.last_depth = 2;
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, load, NULL), LLMC_ENOTFOUND);
    /* a run longer than the threshold is held: the holder, not the last */
    size_t most[4] = {6, 0, 0, 0};
    h.held = most;
    h.last_depth = 8;
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, load, NULL), 0);
    /* the last holder overloaded: the least loaded; down: the tree */
    h.held = none;
    int busy[4] = {1, 1, 0, 5};
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, busy, NULL), 2);
    int healthy[4] = {1, 1, 1, 0};
    CHECK_EQ_INT(llmc_prefix_route_held(r, &h, load, healthy), LLMC_ENOTFOUND);
    llmc_prefix_stats st;
    llmc_prefix_get_stats(r, &st);
    CHECK_EQ_INT(st.remembered, 3);
    CHECK_EQ_INT(st.balance, 1);
    /* never held anywhere, with the fleet's homed counts: the fewest among
     * those not overloaded (before the total), whatever this gateway's
     * loads below the guard */
    size_t homed[4] = {30, 50, 20, 25};
    llmc_prefix_held n = {none, total, homed, 8, 5, -1, 0};
    CHECK_EQ_INT(llmc_prefix_route_held(r, &n, load, NULL), 2);
    int some[4] = {0, 0, 1, 0};
    CHECK_EQ_INT(llmc_prefix_route_held(r, &n, some, NULL), 2);
    int over2[4] = {0, 0, 5, 0};
    CHECK_EQ_INT(llmc_prefix_route_held(r, &n, over2, NULL), 3);
    llmc_prefix_router_free(r);
}

int main(void)
{
    test_defaults_and_args();
    test_round_robin_and_least_loaded();
    test_affinity_and_balance();
    test_tie_breaks();
    test_spread_new_prefixes();
    test_match_lengths();
    test_against_brute_force();
    test_aging_and_forget();
    test_memory_bound();
    test_route_held();
    test_route_held_last();
    return UNIT_DONE();
}
