/* test_canon.c — the exact key is equal exactly when it should be. */
#include <math.h>

#include "llmcache.h"
#include "unit.h"

static llmc_tenant T1, T2;

static int key_of(llmc_endpoint ep, const llmc_tenant *t, const char *body, uint8_t *key,
                  uint8_t *part)
{
    llmc_canon c;
    int rc = llmc_canon_request(ep, t, body, strlen(body), 1, &c, NULL);
    if (rc)
        return rc;
    memcpy(key, c.key, LLMC_KEY_LEN);
    if (part)
        memcpy(part, c.partition, LLMC_KEY_LEN);
    llmc_canon_clear(&c);
    return 0;
}

static int same(const char *a, const char *b)
{
    uint8_t ka[32], kb[32];
    if (key_of(LLMC_EP_CHAT, &T1, a, ka, NULL) || key_of(LLMC_EP_CHAT, &T1, b, kb, NULL))
        return -1;
    return memcmp(ka, kb, 32) == 0;
}

static int same_part(const char *a, const char *b)
{
    uint8_t ka[32], kb[32], pa[32], pb[32];
    if (key_of(LLMC_EP_CHAT, &T1, a, ka, pa) || key_of(LLMC_EP_CHAT, &T1, b, kb, pb))
        return -1;
    return memcmp(pa, pb, 32) == 0;
}

#define BASE "\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

int main(void)
{
    llmc_tenant_make(&T1, "Bearer sk-one", NULL, 0);
    llmc_tenant_make(&T2, "Bearer sk-two", NULL, 0);

    /* Equal: key order, whitespace, number spelling, the stream flag. */
    CHECK_EQ_INT(same("{" BASE ",\"temperature\":0}", "{\"temperature\":0, " BASE "}"), 1);
    CHECK_EQ_INT(same("{" BASE "}", "{ \n\t" BASE "\n}"), 1);
    CHECK_EQ_INT(same("{" BASE ",\"temperature\":1}", "{" BASE ",\"temperature\":1.0}"), 1);
    CHECK_EQ_INT(same("{" BASE ",\"temperature\":1}", "{" BASE ",\"temperature\":1e0}"), 1);
    CHECK_EQ_INT(same("{" BASE ",\"top_p\":0.5}", "{" BASE ",\"top_p\":0.50}"), 1);
    CHECK_EQ_INT(same("{" BASE ",\"top_p\":0.5}", "{" BASE ",\"top_p\":5e-1}"), 1);
    CHECK_EQ_INT(same("{" BASE ",\"stream\":true}", "{" BASE "}"), 1);
    CHECK_EQ_INT(same("{" BASE ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                      "{" BASE ",\"stream\":false}"),
                 1);
    CHECK_EQ_INT(same("{" BASE ",\"metadata\":{\"trace\":\"x\"}}", "{" BASE "}"), 1);
    CHECK_EQ_INT(
        same("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\"}]}",
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\xa9\"}]}"),
        1);

    /* Different: every answer-changing field. */
    CHECK_EQ_INT(same("{" BASE "}",
                      "{\"model\":\"m2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"),
                 0);
    CHECK_EQ_INT(same("{" BASE "}",
                      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}]}"),
                 0);
    CHECK_EQ_INT(same("{" BASE "}",
                      "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"hi\"}]}"),
                 0);
    const char *params[] = {"\"temperature\":0.2",
                            "\"top_p\":0.9",
                            "\"max_tokens\":5",
                            "\"stop\":[\"x\"]",
                            "\"seed\":1",
                            "\"n\":2",
                            "\"logprobs\":true",
                            "\"tools\":[]",
                            "\"response_format\":{\"type\":\"json_object\"}",
                            "\"user\":\"u1\"",
                            "\"presence_penalty\":1",
                            NULL};
    for (int i = 0; params[i]; i++) {
        char b[512];
        snprintf(b, sizeof b, "{" BASE ",%s}", params[i]);
        CHECK_EQ_INT(same("{" BASE "}", b), 0);
    }
    CHECK_EQ_INT(same("{" BASE ",\"temperature\":0.2}", "{" BASE ",\"temperature\":0.3}"), 0);
    CHECK_EQ_INT(same("{" BASE ",\"user\":\"a\"}", "{" BASE ",\"user\":\"b\"}"), 0);

    /* Tenants never share keys; endpoints never share keys. */
    uint8_t k1[32], k2[32];
    CHECK(key_of(LLMC_EP_CHAT, &T1, "{" BASE "}", k1, NULL) == 0);
    CHECK(key_of(LLMC_EP_CHAT, &T2, "{" BASE "}", k2, NULL) == 0);
    CHECK(memcmp(k1, k2, 32) != 0);
    llmc_tenant ns1, ns1b, ns1s, ns1sb;
    llmc_tenant_make(&ns1, "Bearer sk-one", "team", 0);
    llmc_tenant_make(&ns1b, "Bearer sk-two", "team", 0);
    llmc_tenant_make(&ns1s, "Bearer sk-one", "team", 1);
    llmc_tenant_make(&ns1sb, "Bearer sk-two", "team", 1);
    CHECK(memcmp(ns1.id, ns1b.id, 32) != 0);   /* private namespace: keys differ */
    CHECK(memcmp(ns1s.id, ns1sb.id, 32) == 0); /* shared namespace: one scope */
    CHECK(memcmp(ns1.id, T1.id, 32) != 0);
    CHECK(ns1.ns_hash == llmc_namespace_hash("team") && ns1.ns_hash != 0);
    CHECK(T1.ns_hash == 0);
    CHECK(key_of(LLMC_EP_COMPLETIONS, &T1, "{\"model\":\"m\",\"prompt\":\"hi\"}", k1, NULL) == 0);
    CHECK(key_of(LLMC_EP_EMBEDDINGS, &T1, "{\"model\":\"m\",\"prompt\":\"hi\",\"input\":\"x\"}", k2,
                 NULL) == 0);
    CHECK(memcmp(k1, k2, 32) != 0);

    /* Partition: equal for another last question, different for another
     * history, system prompt, model or sampling. */
    CHECK_EQ_INT(
        same_part("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
                  "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}"),
        1);
#define HIST(h, q)                                                                                 \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"" h                           \
    "\"},{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":\"" q "\"}]}"
    CHECK_EQ_INT(same_part(HIST("one", "q1"), HIST("one", "q2")), 1);
    CHECK_EQ_INT(same_part(HIST("one", "q"), HIST("two", "q")), 0);
    CHECK_EQ_INT(same_part("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s1\"}"
                           ",{\"role\":\"user\",\"content\":\"a\"}]}",
                           "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s2\"}"
                           ",{\"role\":\"user\",\"content\":\"a\"}]}"),
                 0);
    CHECK_EQ_INT(same_part("{" BASE "}", "{" BASE ",\"temperature\":0.5}"), 0);

    /* Extracted fields. */
    llmc_canon c;
    const char *body = "{\"model\":\"gpt-x\",\"temperature\":0.9,\"n\":3,\"user\":\"u\","
                       "\"tools\":[],\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                       "{\"type\":\"text\",\"text\":\"b\"}]}],\"stream\":true}";
    CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, body, strlen(body), 1, &c, NULL) == 0);
    CHECK(strcmp(c.model, "gpt-x") == 0);
    CHECK(fabs(c.temperature - 0.9) < 1e-12);
    CHECK_EQ_INT(c.n, 3);
    CHECK(c.stream && c.has_tools && c.has_user);
    CHECK(c.query && strcmp(c.query, "a\nb") == 0 && c.query_len == 3);
    CHECK(c.system && strcmp(c.system, "sys") == 0);
    CHECK(c.user && strcmp(c.user, "u") == 0);
    CHECK(c.prompt && strcmp(c.prompt, "system: sys\nuser: a\nb\n") == 0);
    CHECK(c.prompt_len == strlen("system: sys\nuser: a\nb\n"));
    llmc_canon_clear(&c);
    const char *img = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                      "\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}";
    CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, img, strlen(img), 1, &c, NULL) == 0);
    CHECK(c.query == NULL); /* not text: no semantic comparison */
    CHECK(isnan(c.temperature));
    llmc_canon_clear(&c);

    /* --semantic-query: the whole conversation is the semantic text, the
     * partition keeps the system prompt only; the key never changes. */
    {
        const char *h1 = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                         "{\"role\":\"user\",\"content\":\"I live in Paris.\"},"
                         "{\"role\":\"assistant\",\"content\":\"Nice!\"},"
                         "{\"role\":\"user\",\"content\":\"Which museums?\"}]}";
        const char *h2 = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                         "{\"role\":\"user\",\"content\":\"I live in Paris.\"},"
                         "{\"role\":\"assistant\",\"content\":\"Great!\"},"
                         "{\"role\":\"user\",\"content\":\"Which museums?\"}]}";
        const char *h3 = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"t\"},"
                         "{\"role\":\"user\",\"content\":\"Which museums?\"}]}";
        llmc_canon a, b, d;
        CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, h1, strlen(h1), 1, &a, NULL) == 0);
        CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, h2, strlen(h2), 1, &b, NULL) == 0);
        CHECK(a.semantic_query == NULL && memcmp(a.partition, b.partition, LLMC_KEY_LEN) != 0);
        uint8_t key_a[LLMC_KEY_LEN];
        memcpy(key_a, a.key, LLMC_KEY_LEN);
        llmc_canon_clear(&a);
        llmc_canon_clear(&b);
        unsigned f = LLMC_CANON_SCOPE_USER | LLMC_CANON_QUERY_USER_TURNS;
        CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, h1, strlen(h1), f, &a, NULL) == 0);
        CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, h2, strlen(h2), f, &b, NULL) == 0);
        CHECK(a.semantic_query &&
              strcmp(a.semantic_query, "I live in Paris.\nWhich museums?") == 0);
        CHECK_EQ_INT(a.semantic_query_len, strlen("I live in Paris.\nWhich museums?"));
        CHECK(a.query && strcmp(a.query, "Which museums?") == 0); /* the policy's text */
        CHECK(memcmp(a.partition, b.partition, LLMC_KEY_LEN) == 0);
        CHECK(memcmp(a.key, key_a, LLMC_KEY_LEN) == 0);
        CHECK(memcmp(a.key, b.key, LLMC_KEY_LEN) != 0);
        /* Another system prompt is still another partition. */
        CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, h3, strlen(h3), f, &d, NULL) == 0);
        CHECK(memcmp(a.partition, d.partition, LLMC_KEY_LEN) != 0);
        CHECK(d.semantic_query && strcmp(d.semantic_query, "Which museums?") == 0);
        llmc_canon_clear(&a);
        llmc_canon_clear(&d);
        f = LLMC_CANON_QUERY_CONVERSATION;
        CHECK(llmc_canon_request(LLMC_EP_CHAT, &T1, h1, strlen(h1), f, &a, NULL) == 0);
        CHECK(a.semantic_query &&
              strcmp(a.semantic_query,
                     "user: I live in Paris.\nassistant: Nice!\nuser: Which museums?") == 0);
        CHECK(memcmp(a.partition, b.partition, LLMC_KEY_LEN) == 0);
        llmc_canon_clear(&a);
        llmc_canon_clear(&b);
        /* Completions: the prompt, whatever the flags. */
        const char *cp = "{\"model\":\"m\",\"prompt\":\"hello there\"}";
        CHECK(llmc_canon_request(LLMC_EP_COMPLETIONS, &T1, cp, strlen(cp), f, &a, NULL) == 0);
        CHECK(a.semantic_query == NULL && a.query && strcmp(a.query, "hello there") == 0);
        llmc_canon_clear(&a);
    }

    /* Bad input: clear errors. */
    const char *why = NULL;
    const char *bad[] = {"",
                         "{",
                         "[]",
                         "42",
                         "{\"messages\":[]}",
                         "{\"messages\":\"x\"}",
                         "{\"messages\":[1]}",
                         "{\"model\":3,\"messages\":[{\"role\":\"user\"}]}",
                         "{\"a\":1,\"a\":2,\"messages\":[{\"role\":\"user\"}]}",
                         "{\"stream\":\"yes\",\"messages\":[{\"role\":\"user\"}]}",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        why = NULL;
        CHECK_EQ_INT(llmc_canon_request(LLMC_EP_CHAT, &T1, bad[i], strlen(bad[i]), 1, &c, &why),
                     LLMC_EINVAL);
        CHECK(why != NULL);
    }
    CHECK_EQ_INT(llmc_canon_request(LLMC_EP_COMPLETIONS, &T1, "{}", 2, 1, &c, &why), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_canon_request(LLMC_EP_EMBEDDINGS, &T1, "{}", 2, 1, &c, &why), LLMC_EINVAL);

    /* Issue 16: "\u0000" is valid JSON and keys like any other character;
     * an integer beyond int64 is refused with the reason named. */
    CHECK(same("{" BASE ",\"seed\":1}", "{" BASE ",\"seed\":1}") == 1);
    {
        const char *nul =
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}";
        const char *one =
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0001b\"}]}";
        const char *cut = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}";
        CHECK(same(nul, nul) == 1);
        CHECK(same(nul, one) == 0);
        CHECK(same(nul, cut) == 0); /* the NUL does not cut the text short in the key */
        const char *big = "{" BASE ",\"seed\":123456789012345678901234567890}";
        why = NULL;
        CHECK_EQ_INT(llmc_canon_request(LLMC_EP_CHAT, &T1, big, strlen(big), 1, &c, &why),
                     LLMC_EINVAL);
        CHECK(why && strstr(why, "64-bit integer range"));
        const char *dup = "{\"a\":1,\"a\":2}";
        CHECK_EQ_INT(llmc_canon_request(LLMC_EP_CHAT, &T1, dup, strlen(dup), 1, &c, &why),
                     LLMC_EINVAL);
        CHECK(why && strstr(why, "duplicate key"));
    }

    /* The Bearer scheme is case-insensitive: one caller, one tenant. Scoping
     * values narrow a tenant; NULL leaves it as it was. */
    {
        llmc_tenant a, b, c2, d2, e2;
        llmc_tenant_make(&a, "Bearer sk-1", NULL, 0);
        llmc_tenant_make(&b, "bearer sk-1", NULL, 0);
        CHECK(memcmp(a.id, b.id, 32) == 0);
        llmc_tenant_make(&c2, "Bearer sk-2", NULL, 0);
        CHECK(memcmp(a.id, c2.id, 32) != 0);
        d2 = a;
        llmc_tenant_scope(&d2, "openai-organization", NULL);
        CHECK(memcmp(a.id, d2.id, 32) == 0);
        llmc_tenant_scope(&d2, "openai-organization", "org-1");
        CHECK(memcmp(a.id, d2.id, 32) != 0);
        e2 = a;
        llmc_tenant_scope(&e2, "openai-project", "org-1"); /* same value, other label */
        CHECK(memcmp(d2.id, e2.id, 32) != 0);
        CHECK(d2.ns_hash == a.ns_hash);
    }

    /* Hex round trip. */
    char hex[65];
    uint8_t back[32];
    llmc_key_hex(k1, hex);
    CHECK(strlen(hex) == 64);
    CHECK(llmc_key_parse(hex, back) == 0 && memcmp(back, k1, 32) == 0);
    CHECK(llmc_key_parse("zz", back) == LLMC_EINVAL);
    hex[5] = 'g';
    CHECK(llmc_key_parse(hex, back) == LLMC_EINVAL);
    return UNIT_DONE();
}
