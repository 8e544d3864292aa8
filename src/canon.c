/*
 * canon.c — from a request body to its exact key, its semantic partition
 * and the fields the policy reads, in one JSON parse.
 *
 * Design. The exact key must be equal exactly when two requests would get
 * the same answer. We parse the body with jansson, delete the fields that do
 * not change the answer (see canon_drop[]), rewrite every real number that
 * is integral (1.0, 1e0) as an integer so that number spelling does not
 * matter, and dump the object compact with sorted keys. The key is
 *
 *     SHA-256( "llmc-key-v1" 0x00 | tenant id (32) | endpoint (1 byte) | dump )
 *
 * The partition is the same hash, domain "llmc-part-v1", over the object
 * with the last user turn (and anything after it) removed from "messages"
 * — or the "prompt" removed for completions — so that two requests share a
 * partition only when tenant, model, system prompt, sampling parameters,
 * tools and the whole earlier conversation are equal. Only the query text
 * is left for the semantic tier to compare. With LLMC_CANON_QUERY_USER_TURNS
 * or _CONVERSATION the query text is the whole conversation (user turns, or
 * every turn with its role) and the partition keeps only the system and
 * developer messages: conversations that went alike may then share answers,
 * as GPTCache's "all content" mode does, with the guard comparing them all.
 *
 * The raw body is what goes upstream; canonicalisation never changes what
 * the model receives.
 */
#include <math.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include "llmcache.h"
#include "util.h"

/* Fields that never change the answer. "user" is handled separately. */
static const char *const canon_drop[] = {
    "stream", "stream_options", "metadata", "store", "request_id", "service_tier_hint", NULL,
};

static void canon_sha256(uint8_t out[LLMC_KEY_LEN], const char *domain, const uint8_t *tenant,
                         int ep, const char *data, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int olen = 0;
    unsigned char epb = (unsigned char)ep;
    /* EVP_MD_CTX_new only fails on allocation failure; fall back to the
     * one-shot digest over the pieces concatenated would need memory too, so
     * abort rather than produce a key that collides. */
    if (!ctx)
        abort();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, domain, strlen(domain) + 1);
    if (tenant)
        EVP_DigestUpdate(ctx, tenant, LLMC_KEY_LEN);
    EVP_DigestUpdate(ctx, &epb, 1);
    EVP_DigestUpdate(ctx, data, len);
    EVP_DigestFinal_ex(ctx, out, &olen);
    EVP_MD_CTX_free(ctx);
}

uint64_t llmc_namespace_hash(const char *ns)
{
    if (!ns || !*ns)
        return 0;
    uint64_t h = XXH3_64bits(ns, strlen(ns));
    return h ? h : 1;
}

void llmc_tenant_make(llmc_tenant *t, const char *authorization, const char *ns, int ns_shared)
{
    /* "a:" + key, "n:" + namespace, separated by NUL so that no choice of
     * strings can make two different pairs hash alike. */
    /* The scheme of "Bearer KEY" is case-insensitive (RFC 9110 11.1), so
     * "bearer k" and "Bearer k" are one caller: the scheme is hashed in one
     * spelling. */
    if (authorization && !strncasecmp(authorization, "bearer ", 7))
        authorization += 7;
    size_t al = authorization && !ns_shared ? strlen(authorization) : 0;
    size_t nl = ns ? strlen(ns) : 0;
    char *buf = malloc(al + nl + 8);
    if (!buf)
        abort();
    size_t o = 0;
    memcpy(buf + o, "a:", 2), o += 2;
    if (al)
        memcpy(buf + o, authorization, al), o += al;
    buf[o++] = 0;
    memcpy(buf + o, "n:", 2), o += 2;
    if (nl)
        memcpy(buf + o, ns, nl), o += nl;
    buf[o++] = 0;
    canon_sha256(t->id, "llmc-tenant-v1", NULL, 0, buf, o);
    free(buf);
    t->ns_hash = llmc_namespace_hash(ns);
}

/* The exact reason jansson refused a body, as a static message. Integers
 * beyond int64 are valid JSON that jansson 2.14 cannot hold exactly (its
 * only alternative, JSON_DECODE_INT_AS_REAL, would round two different
 * seeds to one key), so they are refused by name. */
static const char *canon_json_error(const json_error_t *e)
{
    switch (json_error_code(e)) {
    case json_error_numeric_overflow:
        return "request body has a number outside the signed 64-bit integer range (for example "
               "a large 'seed'); send a smaller integer";
    case json_error_duplicate_key:
        return "request body has an object with a duplicate key";
    case json_error_invalid_utf8:
        return "request body is not valid UTF-8";
    case json_error_premature_end_of_input:
        return "request body is not valid JSON (it ends too early)";
    case json_error_null_character:
        return "request body is not valid JSON (a raw NUL byte; write it as \\u0000)";
    default:
        return "request body is not valid JSON";
    }
}

void llmc_tenant_scope(llmc_tenant *t, const char *label, const char *value)
{
    if (!value)
        return;
    /* old id, label, NUL, value: the label keeps "org=x" and "project=x" apart */
    size_t ll = strlen(label), vl = strlen(value);
    char *buf = malloc(ll + vl + 2);
    if (!buf)
        abort(); /* as llmc_tenant_make: never a tenant that collides */
    memcpy(buf, label, ll);
    buf[ll] = 0;
    memcpy(buf + ll + 1, value, vl);
    canon_sha256(t->id, "llmc-tenant-scope-v1", t->id, 0, buf, ll + vl + 1);
    free(buf);
}

/* An integral real as an integer (new reference), or NULL to keep v. */
static json_t *canon_number(json_t *v)
{
    if (!json_is_real(v))
        return NULL;
    double d = json_real_value(v);
    if (d == floor(d) && fabs(d) < 9007199254740992.0)
        return json_integer((json_int_t)d);
    return NULL;
}

/* Rewrite integral reals as integers, recursively. */
static void canon_numbers(json_t *v)
{
    size_t i;
    const char *k;
    json_t *x, *n;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            if ((n = canon_number(x)))
                json_object_set_new(v, k, n);
            else
                canon_numbers(x);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if ((n = canon_number(x)))
                json_array_set_new(v, i, n);
            else
                canon_numbers(x);
        }
    }
}

/* Text of a message's content: a string, or the text parts of an array
 * joined by "\n". Returns malloc'd text, or NULL when the content holds
 * anything but text (an image: the semantic tier cannot compare it). */
static char *canon_content_text(json_t *content, size_t *len)
{
    if (json_is_string(content)) {
        *len = json_string_length(content);
        char *s = malloc(*len + 1);
        if (s)
            memcpy(s, json_string_value(content), *len + 1);
        return s;
    }
    if (!json_is_array(content))
        return NULL;
    size_t total = 0, i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *ty = json_object_get(part, "type");
        json_t *tx = json_object_get(part, "text");
        if (!json_is_string(ty) || strcmp(json_string_value(ty), "text") != 0 ||
            !json_is_string(tx))
            return NULL;
        total += json_string_length(tx) + 1;
    }
    char *s = malloc(total + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    json_array_foreach(content, i, part)
    {
        json_t *tx = json_object_get(part, "text");
        if (o)
            s[o++] = '\n';
        memcpy(s + o, json_string_value(tx), json_string_length(tx));
        o += json_string_length(tx);
    }
    s[o] = 0;
    *len = o;
    return s;
}

static char *canon_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static double canon_num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The semantic text of a whole conversation: every user message's text
 * (with_roles 0), or every non-system message as "role: text" (with_roles
 * 1), one a line. */
static int canon_turns(json_t *msgs, int with_roles, llmc_canon *c)
{
    size_t i, cap = 0, at = 0;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!strcmp(role, "system") || !strcmp(role, "developer"))
            continue;
        if (!with_roles && strcmp(role, "user"))
            continue;
        size_t l = 0;
        char *mt = canon_content_text(json_object_get(m, "content"), &l);
        size_t rl = with_roles ? strlen(role) + 2 : 0;
        if (llmc_grow((void **)&c->semantic_query, &cap, at + rl + l + 2, 1)) {
            free(mt);
            return LLMC_ENOMEM;
        }
        if (at)
            c->semantic_query[at++] = '\n';
        if (with_roles) {
            memcpy(c->semantic_query + at, role, rl - 2);
            memcpy(c->semantic_query + at + rl - 2, ": ", 2);
            at += rl;
        }
        if (mt)
            memcpy(c->semantic_query + at, mt, l);
        at += mt ? l : 0;
        c->semantic_query[at] = 0;
        free(mt);
    }
    c->semantic_query_len = at;
    return 0;
}

int llmc_canon_request(llmc_endpoint ep, const llmc_tenant *t, const char *body, size_t len,
                       unsigned flags, llmc_canon *c, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(c, 0, sizeof *c);
    c->temperature = NAN;
    c->top_p = NAN;
    c->n = 1;
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON and valid in a prompt; it stays
     * escaped in the canonical dump, so it keys like any other character. */
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!o) {
        *why = canon_json_error(&jerr);
        return LLMC_EINVAL;
    }
    int rc = LLMC_EINVAL;
    char *dump = NULL;
    if (!json_is_object(o)) {
        *why = "request body must be a JSON object";
        goto out;
    }
    json_t *model = json_object_get(o, "model");
    if (model && !json_is_string(model)) {
        *why = "'model' must be a string";
        goto out;
    }
    if (model) {
        size_t ml = json_string_length(model);
        if (ml >= sizeof c->model)
            ml = sizeof c->model - 1;
        memcpy(c->model, json_string_value(model), ml);
        c->model[ml] = 0;
    }
    json_t *st = json_object_get(o, "stream");
    if (st && !json_is_boolean(st) && !json_is_null(st)) {
        *why = "'stream' must be a boolean";
        goto out;
    }
    c->stream = json_is_true(st);
    c->temperature = canon_num(o, "temperature");
    c->top_p = canon_num(o, "top_p");
    json_t *n = json_object_get(o, "n");
    if (json_is_integer(n))
        c->n = (long)json_integer_value(n);
    c->has_tools = json_object_get(o, "tools") || json_object_get(o, "functions") ||
                   json_object_get(o, "tool_choice") || json_object_get(o, "function_call");
    json_t *user = json_object_get(o, "user");
    if (json_is_string(user)) {
        c->has_user = 1;
        c->user = canon_dup(json_string_value(user), json_string_length(user));
    }

    /* The query text, and where it sits, for the partition. */
    json_t *msgs = NULL;
    long last_user = -1;
    if (ep == LLMC_EP_CHAT) {
        msgs = json_object_get(o, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            *why = "'messages' must be a non-empty array";
            goto out;
        }
        size_t i;
        json_t *m;
        size_t sys_total = 0;
        json_array_foreach(msgs, i, m)
        {
            if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
                *why = "each message must be an object with a string 'role'";
                goto out;
            }
            const char *role = json_string_value(json_object_get(m, "role"));
            if (strcmp(role, "user") == 0)
                last_user = (long)i;
            if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
                sys_total++;
        }
        /* The prompt as text, in order: what an engine's prefix cache sees. */
        {
            size_t pcap = 0, po = 0;
            json_array_foreach(msgs, i, m)
            {
                const char *role = json_string_value(json_object_get(m, "role"));
                size_t l = 0;
                char *mt = canon_content_text(json_object_get(m, "content"), &l);
                size_t rl = strlen(role);
                if (llmc_grow((void **)&c->prompt, &pcap, po + rl + l + 4, 1)) {
                    free(mt);
                    rc = LLMC_ENOMEM;
                    goto out;
                }
                memcpy(c->prompt + po, role, rl);
                po += rl;
                c->prompt[po++] = ':';
                c->prompt[po++] = ' ';
                if (mt)
                    memcpy(c->prompt + po, mt, l);
                po += mt ? l : 0;
                c->prompt[po++] = '\n';
                c->prompt[po] = 0;
                free(mt);
            }
            c->prompt_len = po;
        }
        if (last_user >= 0)
            c->query = canon_content_text(
                json_object_get(json_array_get(msgs, (size_t)last_user), "content"), &c->query_len);
        if (last_user >= 0 &&
            (flags & (LLMC_CANON_QUERY_USER_TURNS | LLMC_CANON_QUERY_CONVERSATION))) {
            rc = canon_turns(msgs, !(flags & LLMC_CANON_QUERY_USER_TURNS), c);
            if (rc)
                goto out;
            rc = LLMC_EINVAL;
        }
        if (sys_total) {
            /* System prompts joined by "\n": policy and partition inputs. */
            size_t cap = 0;
            json_array_foreach(msgs, i, m)
            {
                const char *role = json_string_value(json_object_get(m, "role"));
                size_t l = 0;
                if (strcmp(role, "system") && strcmp(role, "developer"))
                    continue;
                char *s = canon_content_text(json_object_get(m, "content"), &l);
                if (!s)
                    continue;
                char *ns = realloc(c->system, cap + l + 2);
                if (!ns) {
                    free(s);
                    rc = LLMC_ENOMEM;
                    goto out;
                }
                c->system = ns;
                if (cap)
                    c->system[cap++] = '\n';
                memcpy(c->system + cap, s, l);
                cap += l;
                c->system[cap] = 0;
                free(s);
            }
            c->system_len = cap;
        }
    } else if (ep == LLMC_EP_COMPLETIONS) {
        json_t *p = json_object_get(o, "prompt");
        if (!p) {
            *why = "'prompt' is required";
            goto out;
        }
        if (json_is_string(p)) {
            c->query = canon_dup(json_string_value(p), json_string_length(p));
            c->prompt = canon_dup(json_string_value(p), json_string_length(p));
            c->prompt_len = c->prompt ? json_string_length(p) : 0;
        }
        if (c->query)
            c->query_len = strlen(c->query);
    } else if (ep == LLMC_EP_EMBEDDINGS) {
        if (!json_object_get(o, "input")) {
            *why = "'input' is required";
            goto out;
        }
    } else {
        *why = "unknown endpoint";
        goto out;
    }

    for (int i = 0; canon_drop[i]; i++)
        json_object_del(o, canon_drop[i]);
    if (!(flags & LLMC_CANON_SCOPE_USER))
        json_object_del(o, "user");
    canon_numbers(o);

    dump = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!dump) {
        rc = LLMC_ENOMEM;
        goto out;
    }
    canon_sha256(c->key, "llmc-key-v1", t->id, ep, dump, strlen(dump));
    free(dump);
    dump = NULL;

    /* Partition: the same object without the query (with the QUERY flags,
     * without every turn the query text now carries). */
    if (ep == LLMC_EP_CHAT && last_user >= 0 && c->semantic_query) {
        for (size_t i = json_array_size(msgs); i-- > 0;) {
            const char *role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            if (strcmp(role, "system") && strcmp(role, "developer"))
                json_array_remove(msgs, i);
        }
    } else if (ep == LLMC_EP_CHAT && last_user >= 0) {
        while ((long)json_array_size(msgs) > last_user)
            json_array_remove(msgs, json_array_size(msgs) - 1);
    } else if (ep == LLMC_EP_COMPLETIONS) {
        json_object_del(o, "prompt");
    }
    dump = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!dump) {
        rc = LLMC_ENOMEM;
        goto out;
    }
    canon_sha256(c->partition, "llmc-part-v1", t->id, ep, dump, strlen(dump));
    rc = 0;
out:
    free(dump);
    json_decref(o);
    if (rc)
        llmc_canon_clear(c);
    return rc;
}

void llmc_canon_clear(llmc_canon *c)
{
    free(c->query);
    free(c->system);
    free(c->user);
    free(c->prompt);
    free(c->semantic_query);
    c->query = c->system = c->user = c->prompt = c->semantic_query = NULL;
    c->query_len = c->system_len = c->prompt_len = c->semantic_query_len = 0;
}

void llmc_key_hex(const uint8_t key[LLMC_KEY_LEN], char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < LLMC_KEY_LEN; i++) {
        out[2 * i] = hx[key[i] >> 4];
        out[2 * i + 1] = hx[key[i] & 15];
    }
    out[2 * LLMC_KEY_LEN] = 0;
}

static int canon_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int llmc_key_parse(const char *hex, uint8_t key[LLMC_KEY_LEN])
{
    if (!hex || strlen(hex) != 2 * LLMC_KEY_LEN)
        return LLMC_EINVAL;
    for (int i = 0; i < LLMC_KEY_LEN; i++) {
        int a = canon_hexval(hex[2 * i]), b = canon_hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0)
            return LLMC_EINVAL;
        key[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}
