/* test_redis_entry.c — the Redis record of an entry: round trip, keys,
 * and every kind of bad value refused (foreign, truncated, flipped byte,
 * copied under another key). */
#include <stdint.h>

#include "llmcache.h"
#include "redis_entry.h"
#include "unit.h"

static llmc_entry_info sample(uint8_t *key, float *vec, uint32_t dim)
{
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    for (int i = 0; i < LLMC_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    memcpy(e.key, key, LLMC_KEY_LEN);
    e.ns_hash = 0x0123456789abcdefull;
    e.partition = 0xfedcba9876543210ull;
    e.created = 1764380000;
    e.expires = 1764466400;
    e.endpoint = LLMC_EP_CHAT;
    e.prompt_tokens = 12;
    e.completion_tokens = 34;
    e.flags = LLMC_ENTRY_EXACT_ONLY;
    e.model = "gpt-4o-mini";
    e.body = "{\"choices\":[{\"message\":{\"content\":\"Paris\"}}]}";
    e.body_len = strlen(e.body);
    for (uint32_t i = 0; i < dim; i++)
        vec[i] = (float)i / 7.0f - 1.5f;
    e.vec = dim ? vec : NULL;
    e.dim = dim;
    e.vec_model = dim ? "use-lite" : "";
    e.query = "what is the capital of france";
    return e;
}

static void test_roundtrip(void)
{
    uint8_t key[LLMC_KEY_LEN];
    float vec[512];
    llmc_entry_info e = sample(key, vec, 512);
    size_t n = redis_entry_size(&e);
    /* an odd offset: values from hiredis are not aligned */
    uint8_t *buf = malloc(n + 1);
    CHECK_EQ_INT(redis_entry_encode(&e, buf + 1), n);
    llmc_entry_info d;
    void *own = NULL;
    CHECK_EQ_INT(redis_entry_decode(buf + 1, n, key, &d, &own), 0);
    CHECK(own != NULL);
    CHECK(!memcmp(d.key, key, LLMC_KEY_LEN));
    CHECK(d.ns_hash == e.ns_hash && d.partition == e.partition);
    CHECK(d.created == e.created && d.expires == e.expires);
    CHECK(d.endpoint == e.endpoint && d.flags == e.flags);
    CHECK(d.prompt_tokens == 12 && d.completion_tokens == 34);
    CHECK(!strcmp(d.model, e.model) && !strcmp(d.vec_model, "use-lite"));
    CHECK(!strcmp(d.query, e.query));
    CHECK(d.body_len == e.body_len && !memcmp(d.body, e.body, e.body_len));
    CHECK_EQ_INT(d.dim, 512);
    CHECK(((uintptr_t)d.vec % sizeof(float)) == 0);
    CHECK(!memcmp(d.vec, vec, sizeof(float) * 512));
    free(own);

    /* no vector, empty strings, NULL query */
    e = sample(key, vec, 0);
    e.query = NULL;
    e.model = "";
    n = redis_entry_size(&e);
    CHECK_EQ_INT(redis_entry_encode(&e, buf), n);
    CHECK_EQ_INT(redis_entry_decode(buf, n, NULL, &d, &own), 0);
    CHECK(d.vec == NULL && d.dim == 0 && !strcmp(d.query, "") && !strcmp(d.model, ""));
    free(own);
    free(buf);
}

static void test_bad_values(void)
{
    uint8_t key[LLMC_KEY_LEN];
    float vec[8];
    llmc_entry_info e = sample(key, vec, 8), d;
    size_t n = redis_entry_size(&e);
    uint8_t *buf = malloc(n);
    redis_entry_encode(&e, buf);
    void *own = (void *)1;

    /* not ours: another program's string, empty */
    CHECK_EQ_INT(redis_entry_decode("hello world", 11, NULL, &d, &own), LLMC_EFOREIGN);
    CHECK(own == NULL);
    CHECK_EQ_INT(redis_entry_decode("", 0, NULL, &d, &own), LLMC_EFOREIGN);

    /* every single flipped byte is refused (checksum or structure) */
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x20;
        if (redis_entry_decode(buf, n, key, &d, &own) == 0) {
            accepted++;
            free(own);
        }
        buf[i] ^= 0x20;
    }
    CHECK_EQ_INT(accepted, 0);

    /* every truncation is refused */
    accepted = 0;
    for (size_t l = 0; l < n; l++)
        if (redis_entry_decode(buf, l, key, &d, &own) == 0) {
            accepted++;
            free(own);
        }
    CHECK_EQ_INT(accepted, 0);

    /* a valid record read under another key (another tenant's) is refused */
    uint8_t other[LLMC_KEY_LEN];
    memcpy(other, key, sizeof other);
    other[31] ^= 1;
    CHECK_EQ_INT(redis_entry_decode(buf, n, other, &d, &own), LLMC_ECORRUPT);

    /* a newer version is named as such */
    buf[4] = 2;
    CHECK_EQ_INT(redis_entry_decode(buf, n, key, &d, &own), LLMC_EVERSION);
    free(buf);
}

static void test_keys(void)
{
    uint8_t key[LLMC_KEY_LEN], back[LLMC_KEY_LEN];
    for (int i = 0; i < LLMC_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 9);
    char k[256];
    int n = redis_entry_key("llmc:", key, k, sizeof k);
    CHECK_EQ_INT(n, (int)strlen(k));
    CHECK(!strncmp(k, "llmc:e:0009121b", 15) && n == 7 + 64);
    CHECK_EQ_INT(redis_entry_key_parse(k + 7, (size_t)n - 7, back), 0);
    CHECK(!memcmp(back, key, sizeof key));
    CHECK_EQ_INT(redis_entry_key_parse("zz", 2, back), LLMC_EINVAL);
    char bad[65];
    memset(bad, 'a', 64);
    bad[10] = 'g';
    bad[64] = 0;
    CHECK_EQ_INT(redis_entry_key_parse(bad, 64, back), LLMC_EINVAL);
    CHECK_EQ_INT(redis_entry_key("llmc:", key, k, 20), LLMC_ETOOBIG);
    /* two tenants' keys differ (the tenant is inside the exact key) */
    uint8_t key2[LLMC_KEY_LEN];
    memcpy(key2, key, sizeof key2);
    key2[0] ^= 0x80;
    char k2[256];
    redis_entry_key("llmc:", key2, k2, sizeof k2);
    CHECK(strcmp(k, k2) != 0);

    CHECK(redis_entry_pattern("llmc:", k, sizeof k) > 0);
    CHECK(!strcmp(k, "llmc:e:*"));
    /* glob characters of a prefix are escaped */
    CHECK(redis_entry_pattern("a*[b]:", k, sizeof k) > 0);
    CHECK(!strcmp(k, "a\\*\\[b\\]:e:*"));

    /* the namespace is read from 8 bytes at REDIS_ENTRY_NS_OFF */
    float vec[1];
    llmc_entry_info e = sample(key, vec, 0);
    uint8_t *buf = malloc(redis_entry_size(&e));
    redis_entry_encode(&e, buf);
    CHECK(redis_entry_ns(buf + REDIS_ENTRY_NS_OFF) == e.ns_hash);
    free(buf);
}

int main(void)
{
    test_roundtrip();
    test_bad_values();
    test_keys();
    return UNIT_DONE();
}
