/*
 * resp.c — one stored form for an answer, two ways to serve it.
 *
 * A stream is the same answer cut into chunk deltas. Assembly folds the
 * deltas back: per choice index, content / reasoning_content / refusal /
 * text are concatenated, tool calls are merged by their own index (id and
 * type set once, function name and arguments concatenated), logprobs
 * content arrays are concatenated, the last non-null finish_reason wins,
 * and usage comes from whichever chunk carries it. Replay does the reverse
 * with one content chunk per choice, one finish chunk per choice, a usage
 * chunk, then [DONE]: a valid stream that the official SDKs' iterators
 * accept, carrying every field the assembled answer has.
 *
 * Anything we could not reproduce exactly (legacy completions logprobs in a
 * stream, choices beyond 64) is refused with LLMC_ENOTSUP, which the caller
 * treats as "do not store": the answer still reaches the client unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmcache.h"
#include "resp.h"
#include "words.h"

#define RESP_MAX_CHOICES 64

int resp_content_scan(json_t *c, words_fence *f)
{
    if (json_is_string(c)) {
        words_fence_scan(f, json_string_value(c));
        return 0;
    }
    int tool = 0;
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part)
    {
        if (json_is_string(part)) {
            words_fence_scan(f, json_string_value(part));
            continue;
        }
        const char *type = json_string_value(json_object_get(part, "type"));
        if (type && (!strcmp(type, "tool_use") || !strcmp(type, "function_call") ||
                     !strcmp(type, "server_tool_use")))
            tool = 1;
        words_fence_scan(f, json_string_value(json_object_get(part, "text")));
    }
    return tool;
}

static void resp_info_fill(llmc_endpoint ep, json_t *o, llmc_resp_info *info)
{
    memset(info, 0, sizeof *info);
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        json_t *pt = json_object_get(u, "prompt_tokens");
        json_t *ct = json_object_get(u, "completion_tokens");
        if (json_is_integer(pt) && json_integer_value(pt) >= 0)
            info->prompt_tokens = (uint32_t)json_integer_value(pt);
        if (json_is_integer(ct) && json_integer_value(ct) >= 0)
            info->completion_tokens = (uint32_t)json_integer_value(ct);
    }
    if (ep == LLMC_EP_EMBEDDINGS)
        return;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(o, "choices"), i, c)
    {
        json_t *fr = json_object_get(c, "finish_reason");
        if (json_is_string(fr) && strcmp(json_string_value(fr), "length") == 0)
            info->truncated = 1;
        if (json_is_string(fr) && (strcmp(json_string_value(fr), "tool_calls") == 0 ||
                                   strcmp(json_string_value(fr), "function_call") == 0))
            info->has_tool_calls = 1;
        if (json_is_string(fr) && (strcmp(json_string_value(fr), "content_filter") == 0 ||
                                   strcmp(json_string_value(fr), "refusal") == 0))
            info->refused = 1;
        json_t *msg = json_object_get(c, "message");
        json_t *tc = json_object_get(msg, "tool_calls");
        if ((json_is_array(tc) && json_array_size(tc)) ||
            json_is_object(json_object_get(msg, "function_call")))
            info->has_tool_calls = 1;
        json_t *refusal = json_object_get(msg, "refusal");
        if (refusal && !json_is_null(refusal) &&
            !(json_is_string(refusal) && json_string_length(refusal) == 0))
            info->refused = 1;
        /* one fence state per choice: a fence is never split across choices */
        words_fence f;
        memset(&f, 0, sizeof f);
        if (resp_content_scan(json_object_get(msg, "content"), &f))
            info->has_tool_calls = 1;
        words_fence_scan(&f, json_string_value(json_object_get(c, "text")));
        if (f.found)
            info->has_code = 1;
    }
}

static int resp_check(llmc_endpoint ep, json_t *o)
{
    if (!json_is_object(o) || json_object_get(o, "error"))
        return LLMC_EINVAL;
    if (ep == LLMC_EP_EMBEDDINGS)
        return json_is_array(json_object_get(o, "data")) ? 0 : LLMC_EINVAL;
    json_t *ch = json_object_get(o, "choices");
    return json_is_array(ch) && json_array_size(ch) > 0 ? 0 : LLMC_EINVAL;
}

int llmc_resp_parse(llmc_endpoint ep, const char *json, size_t len, llmc_resp_info *info)
{
    json_t *o = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
    int rc = resp_check(ep, o);
    if (!rc)
        resp_info_fill(ep, o, info);
    json_decref(o);
    return rc;
}

char *llmc_resp_text(llmc_endpoint ep, const char *json, size_t len)
{
    json_t *o = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    json_t *t = ep == LLMC_EP_CHAT ? json_object_get(json_object_get(c, "message"), "content")
                                   : json_object_get(c, "text");
    char *r = json_is_string(t) ? strdup(json_string_value(t)) : NULL;
    json_decref(o);
    return r;
}

/* Append string member `name` of delta d to the same member of target. */
static void resp_concat(json_t *target, json_t *d, const char *name)
{
    json_t *v = json_object_get(d, name);
    if (!json_is_string(v))
        return;
    json_t *cur = json_object_get(target, name);
    if (!json_is_string(cur)) {
        json_object_set(target, name, v);
        return;
    }
    size_t a = json_string_length(cur), b = json_string_length(v);
    char *s = malloc(a + b + 1);
    if (!s)
        return;
    memcpy(s, json_string_value(cur), a);
    memcpy(s + a, json_string_value(v), b);
    s[a + b] = 0;
    json_object_set_new(target, name, json_stringn_nocheck(s, a + b));
    free(s);
}

/* Merge a tool-call delta list into msg.tool_calls (by "index"). */
static int resp_merge_tools(json_t *msg, json_t *deltas)
{
    json_t *calls = json_object_get(msg, "tool_calls");
    if (!calls) {
        calls = json_array();
        json_object_set_new(msg, "tool_calls", calls);
    }
    size_t i;
    json_t *d;
    json_array_foreach(deltas, i, d)
    {
        json_t *ix = json_object_get(d, "index");
        long idx = json_is_integer(ix) ? (long)json_integer_value(ix) : (long)i;
        if (idx < 0 || idx >= RESP_MAX_CHOICES)
            return LLMC_ENOTSUP;
        while ((long)json_array_size(calls) <= idx)
            json_array_append_new(calls, json_pack("{s:s,s:{}}", "type", "function", "function"));
        json_t *call = json_array_get(calls, (size_t)idx);
        json_t *id = json_object_get(d, "id");
        if (json_is_string(id))
            json_object_set(call, "id", id);
        json_t *ty = json_object_get(d, "type");
        if (json_is_string(ty))
            json_object_set(call, "type", ty);
        json_t *fn = json_object_get(d, "function");
        if (json_is_object(fn)) {
            json_t *cfn = json_object_get(call, "function");
            resp_concat(cfn, fn, "name");
            resp_concat(cfn, fn, "arguments");
        }
    }
    return 0;
}

static int resp_fold(llmc_endpoint ep, json_t *acc, json_t *chunk)
{
    static const char *const top[] = {"id",           "created", "model", "system_fingerprint",
                                      "service_tier", NULL};
    for (int i = 0; top[i]; i++) {
        json_t *v = json_object_get(chunk, top[i]);
        if (v && !json_is_null(v) && !json_object_get(acc, top[i]))
            json_object_set(acc, top[i], v);
    }
    json_t *u = json_object_get(chunk, "usage");
    if (json_is_object(u))
        json_object_set(acc, "usage", u);
    json_t *choices = json_object_get(acc, "choices");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(chunk, "choices"), i, c)
    {
        json_t *ix = json_object_get(c, "index");
        long idx = json_is_integer(ix) ? (long)json_integer_value(ix) : 0;
        if (idx < 0 || idx >= RESP_MAX_CHOICES)
            return LLMC_ENOTSUP;
        while ((long)json_array_size(choices) <= idx) {
            json_t *nc =
                ep == LLMC_EP_CHAT
                    ? json_pack("{s:I,s:{s:s,s:n},s:n,s:n}", "index",
                                (json_int_t)json_array_size(choices), "message", "role",
                                "assistant", "content", "logprobs", "finish_reason")
                    : json_pack("{s:I,s:s,s:n,s:n}", "index", (json_int_t)json_array_size(choices),
                                "text", "", "logprobs", "finish_reason");
            json_array_append_new(choices, nc);
        }
        json_t *target = json_array_get(choices, (size_t)idx);
        json_t *fr = json_object_get(c, "finish_reason");
        if (json_is_string(fr))
            json_object_set(target, "finish_reason", fr);
        json_t *lp = json_object_get(c, "logprobs");
        if (ep == LLMC_EP_COMPLETIONS) {
            if (lp && !json_is_null(lp))
                return LLMC_ENOTSUP;
            resp_concat(target, c, "text");
            continue;
        }
        if (json_is_object(lp)) {
            json_t *tl = json_object_get(target, "logprobs");
            if (!json_is_object(tl)) {
                tl = json_object();
                json_object_set_new(target, "logprobs", tl);
            }
            const char *parts[] = {"content", "refusal", NULL};
            for (int k = 0; parts[k]; k++) {
                json_t *arr = json_object_get(lp, parts[k]);
                if (!json_is_array(arr))
                    continue;
                json_t *cur = json_object_get(tl, parts[k]);
                if (!json_is_array(cur)) {
                    cur = json_array();
                    json_object_set_new(tl, parts[k], cur);
                }
                json_array_extend(cur, arr);
            }
        }
        json_t *d = json_object_get(c, "delta");
        if (!json_is_object(d))
            continue;
        json_t *msg = json_object_get(target, "message");
        json_t *role = json_object_get(d, "role");
        if (json_is_string(role))
            json_object_set(msg, "role", role);
        resp_concat(msg, d, "content");
        resp_concat(msg, d, "reasoning_content");
        resp_concat(msg, d, "reasoning");
        resp_concat(msg, d, "refusal");
        json_t *tc = json_object_get(d, "tool_calls");
        if (json_is_array(tc) && resp_merge_tools(msg, tc))
            return LLMC_ENOTSUP;
        json_t *fc = json_object_get(d, "function_call");
        if (json_is_object(fc)) {
            json_t *cur = json_object_get(msg, "function_call");
            if (!json_is_object(cur)) {
                cur = json_object();
                json_object_set_new(msg, "function_call", cur);
            }
            resp_concat(cur, fc, "name");
            resp_concat(cur, fc, "arguments");
        }
    }
    return 0;
}

int llmc_resp_from_sse(llmc_endpoint ep, const char *sse, size_t len, char **out, size_t *out_len,
                       llmc_resp_info *info)
{
    if (ep == LLMC_EP_EMBEDDINGS)
        return LLMC_ENOTSUP;
    json_t *acc = json_pack("{s:s,s:[]}", "object",
                            ep == LLMC_EP_CHAT ? "chat.completion" : "text_completion", "choices");
    if (!acc)
        return LLMC_ENOMEM;
    int rc = LLMC_EINVAL, done = 0;
    size_t pos = 0;
    char *data = NULL;
    size_t dlen = 0, dcap = 0;
    /* Walk lines; an empty line (or the end) ends an event whose data lines
     * are joined by "\n", as the SSE spec says. */
    while (!done) {
        int last = pos >= len;
        size_t ll = 0;
        const char *line = sse + pos;
        if (!last) {
            size_t e = pos;
            while (e < len && sse[e] != '\n')
                e++;
            ll = e - pos;
            pos = e + 1;
            if (ll && line[ll - 1] == '\r')
                ll--;
        }
        if (ll == 0) {
            if (dlen) {
                if (dlen == 6 && memcmp(data, "[DONE]", 6) == 0) {
                    done = 1;
                    break;
                }
                json_t *chunk = json_loadb(data, dlen, JSON_ALLOW_NUL, NULL);
                if (!json_is_object(chunk) || json_object_get(chunk, "error")) {
                    json_decref(chunk);
                    goto out;
                }
                int frc = resp_fold(ep, acc, chunk);
                json_decref(chunk);
                if (frc) {
                    rc = frc;
                    goto out;
                }
                dlen = 0;
            }
            if (last)
                break;
            continue;
        }
        if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
            const char *v = line + 5;
            size_t vl = ll - 5;
            if (vl && *v == ' ')
                v++, vl--;
            if (dlen + vl + 2 > dcap) {
                dcap = (dlen + vl + 2) * 2;
                char *nd = realloc(data, dcap);
                if (!nd) {
                    rc = LLMC_ENOMEM;
                    goto out;
                }
                data = nd;
            }
            if (dlen)
                data[dlen++] = '\n';
            memcpy(data + dlen, v, vl);
            dlen += vl;
        }
        /* other fields (event:, id:, retry:) and comments are ignored */
    }
    if (!done || json_array_size(json_object_get(acc, "choices")) == 0)
        goto out;
    if (resp_check(ep, acc))
        goto out;
    resp_info_fill(ep, acc, info);
    /* A message with tool calls but no text keeps content null, as the API does. */
    *out = json_dumps(acc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out) {
        rc = LLMC_ENOMEM;
        goto out;
    }
    *out_len = strlen(*out);
    rc = 0;
out:
    free(data);
    json_decref(acc);
    return rc;
}

static int resp_emit(char **buf, size_t *len, size_t *cap, json_t *chunk)
{
    char *s = json_dumps(chunk, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        return LLMC_ENOMEM;
    size_t n = strlen(s);
    if (*len + n + 9 > *cap) {
        size_t nc = (*len + n + 9) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) {
            free(s);
            return LLMC_ENOMEM;
        }
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, "data: ", 6);
    memcpy(*buf + *len + 6, s, n);
    memcpy(*buf + *len + 6 + n, "\n\n", 3);
    *len += n + 8;
    free(s);
    return 0;
}

/* v with a new reference when set (dflt is dropped), else dflt. */
static json_t *resp_or(json_t *v, json_t *dflt)
{
    if (!v)
        return dflt;
    json_decref(dflt);
    return json_incref(v);
}

/* A chunk envelope with the answer's top-level fields. */
static json_t *resp_envelope(llmc_endpoint ep, json_t *o)
{
    json_t *c = json_object();
    json_object_set_new(c, "id", resp_or(json_object_get(o, "id"), json_string("")));
    json_object_set_new(
        c, "object", json_string(ep == LLMC_EP_CHAT ? "chat.completion.chunk" : "text_completion"));
    json_t *v;
    if ((v = json_object_get(o, "created")))
        json_object_set(c, "created", v);
    if ((v = json_object_get(o, "model")))
        json_object_set(c, "model", v);
    if ((v = json_object_get(o, "system_fingerprint")))
        json_object_set(c, "system_fingerprint", v);
    if ((v = json_object_get(o, "service_tier")))
        json_object_set(c, "service_tier", v);
    return c;
}

int llmc_resp_to_sse(llmc_endpoint ep, const char *json, size_t len, char **out, size_t *out_len)
{
    if (ep == LLMC_EP_EMBEDDINGS)
        return LLMC_ENOTSUP;
    json_t *o = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
    if (resp_check(ep, o)) {
        json_decref(o);
        return LLMC_EINVAL;
    }
    char *buf = NULL;
    size_t blen = 0, cap = 0;
    int rc = 0;
    size_t i;
    json_t *ch;
    json_t *choices = json_object_get(o, "choices");
    /* Content chunks. */
    json_array_foreach(choices, i, ch)
    {
        json_t *env = resp_envelope(ep, o);
        json_t *c = json_object();
        json_object_set_new(c, "index",
                            resp_or(json_object_get(ch, "index"), json_integer((json_int_t)i)));
        if (ep == LLMC_EP_CHAT) {
            json_t *msg = json_object_get(ch, "message");
            json_t *d = json_object();
            json_t *v;
            json_object_set_new(d, "role", json_string("assistant"));
            if ((v = json_object_get(msg, "role")) && json_is_string(v))
                json_object_set(d, "role", v);
            const char *copy[] = {"content", "reasoning_content", "reasoning",
                                  "refusal", "function_call",     NULL};
            for (int k = 0; copy[k]; k++)
                if ((v = json_object_get(msg, copy[k])) && !json_is_null(v))
                    json_object_set(d, copy[k], v);
            json_t *tcs = json_object_get(msg, "tool_calls");
            if (json_is_array(tcs) && json_array_size(tcs)) {
                json_t *arr = json_array();
                size_t k;
                json_t *tc;
                json_array_foreach(tcs, k, tc)
                {
                    json_t *t = json_deep_copy(tc);
                    json_object_set_new(t, "index", json_integer((json_int_t)k));
                    json_array_append_new(arr, t);
                }
                json_object_set_new(d, "tool_calls", arr);
            }
            json_object_set_new(c, "delta", d);
            json_t *lp = json_object_get(ch, "logprobs");
            json_object_set(c, "logprobs", lp ? lp : json_null());
            json_object_set_new(c, "finish_reason", json_null());
        } else {
            json_t *t = json_object_get(ch, "text");
            json_object_set_new(c, "text", resp_or(json_is_string(t) ? t : NULL, json_string("")));
            json_object_set_new(c, "logprobs", json_null());
            json_object_set_new(c, "finish_reason", json_null());
        }
        json_object_set_new(env, "choices", json_pack("[o]", c));
        rc = resp_emit(&buf, &blen, &cap, env);
        json_decref(env);
        if (rc)
            goto out;
    }
    /* Finish chunks. */
    json_array_foreach(choices, i, ch)
    {
        json_t *env = resp_envelope(ep, o);
        json_t *c = json_object();
        json_object_set_new(c, "index",
                            resp_or(json_object_get(ch, "index"), json_integer((json_int_t)i)));
        if (ep == LLMC_EP_CHAT)
            json_object_set_new(c, "delta", json_object());
        else
            json_object_set_new(c, "text", json_string(""));
        json_object_set_new(c, "logprobs", json_null());
        json_t *fr = json_object_get(ch, "finish_reason");
        json_object_set(c, "finish_reason", fr ? fr : json_null());
        json_object_set_new(env, "choices", json_pack("[o]", c));
        rc = resp_emit(&buf, &blen, &cap, env);
        json_decref(env);
        if (rc)
            goto out;
    }
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        json_t *env = resp_envelope(ep, o);
        json_object_set_new(env, "choices", json_array());
        json_object_set(env, "usage", u);
        rc = resp_emit(&buf, &blen, &cap, env);
        json_decref(env);
        if (rc)
            goto out;
    }
    {
        const char done[] = "data: [DONE]\n\n";
        char *nb = realloc(buf, blen + sizeof done);
        if (!nb) {
            rc = LLMC_ENOMEM;
            goto out;
        }
        buf = nb;
        memcpy(buf + blen, done, sizeof done);
        blen += sizeof done - 1;
    }
    *out = buf;
    *out_len = blen;
    buf = NULL;
out:
    free(buf);
    json_decref(o);
    return rc;
}
