/* test_resp.c — stream assembly, replay, and the round trip between them. */
#include <jansson.h>

#include "llmcache.h"
#include "unit.h"

#define CH(delta, fr)                                                                              \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","     \
    "\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":" fr "}]}\n\n"

static const char stream[] = ": keep-alive comment\n\n" CH(
    "{\"role\":\"assistant\",\"content\":\"\"}",
    "null") CH("{\"reasoning_content\":\"think \"}", "null") CH("{\"reasoning_content\":\"hard\"}",
                                                                "null")
    CH("{\"content\":\"Hel\"}", "null") CH("{\"content\":\"lo \\u00e9\"}", "null") CH(
        "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}",
        "null") CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}", "null")
        CH("{}",
           "\"tool_calls\"") "data: "
                             "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                             "\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
                             "\"completion_tokens\":9,\"total_tokens\":14}}\n\n"
                             "data: [DONE]\n\n";

static json_t *msg0(json_t *o)
{
    return json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
}

int main(void)
{
    char *js = NULL, *sse = NULL, *js2 = NULL;
    size_t jl = 0, sl = 0, jl2 = 0;
    llmc_resp_info info;
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, stream, sizeof stream - 1, &js, &jl, &info), 0);
    json_t *o = json_loads(js, 0, NULL);
    CHECK(o != NULL);
    CHECK(strcmp(json_string_value(json_object_get(o, "object")), "chat.completion") == 0);
    CHECK(strcmp(json_string_value(json_object_get(msg0(o), "content")), "Hello \xc3\xa9") == 0);
    CHECK(strcmp(json_string_value(json_object_get(msg0(o), "reasoning_content")), "think hard") ==
          0);
    json_t *tc = json_array_get(json_object_get(msg0(o), "tool_calls"), 0);
    CHECK(strcmp(json_string_value(json_object_get(tc, "id")), "call_1") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")),
                 "{\"a\":1}") == 0);
    CHECK(json_integer_value(json_object_get(json_object_get(o, "usage"), "total_tokens")) == 14);
    CHECK(info.prompt_tokens == 5 && info.completion_tokens == 9 && info.has_tool_calls);
    CHECK(!info.truncated);

    /* Replay and re-assemble: the same answer. */
    CHECK_EQ_INT(llmc_resp_to_sse(LLMC_EP_CHAT, js, jl, &sse, &sl), 0);
    CHECK(sl > 14 && memcmp(sse + sl - 14, "data: [DONE]\n\n", 14) == 0);
    CHECK(strstr(sse, "\"object\":\"chat.completion.chunk\"") != NULL);
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, sse, sl, &js2, &jl2, &info), 0);
    json_t *o2 = json_loads(js2, 0, NULL);
    CHECK(json_equal(o, o2));
    json_decref(o2);
    json_decref(o);
    free(js);
    free(js2);
    free(sse);

    /* CRLF line endings and a final event without its blank line. */
    const char crlf[] =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
        "\"finish_reason\":\"length\"}]}\r\n\r\ndata: [DONE]";
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, crlf, sizeof crlf - 1, &js, &jl, &info), 0);
    CHECK(info.truncated);
    free(js);

    /* Incomplete, errored, malformed: refused. */
    size_t cut = (size_t)(strstr(stream, "data: [DONE]") - stream);
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, stream, cut, &js, &jl, &info), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, stream, 200, &js, &jl, &info), LLMC_EINVAL);
    const char err[] = "data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n";
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, err, sizeof err - 1, &js, &jl, &info),
                 LLMC_EINVAL);
    const char bad[] = "data: {not json\n\ndata: [DONE]\n\n";
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, bad, sizeof bad - 1, &js, &jl, &info),
                 LLMC_EINVAL);
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_CHAT, "data: [DONE]\n\n", 14, &js, &jl, &info),
                 LLMC_EINVAL);

    /* Completions: text concatenated; logprobs refused. */
    const char comp[] =
        "data: {\"id\":\"t\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,"
        "\"text\":\"Once\",\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"t\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,"
        "\"text\":\" upon\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_COMPLETIONS, comp, sizeof comp - 1, &js, &jl, &info),
                 0);
    o = json_loads(js, 0, NULL);
    CHECK(strcmp(json_string_value(
                     json_object_get(json_array_get(json_object_get(o, "choices"), 0), "text")),
                 "Once upon") == 0);
    json_decref(o);
    char *t = llmc_resp_text(LLMC_EP_COMPLETIONS, js, jl);
    CHECK(t && strcmp(t, "Once upon") == 0);
    free(t);
    CHECK_EQ_INT(llmc_resp_to_sse(LLMC_EP_COMPLETIONS, js, jl, &sse, &sl), 0);
    CHECK(strstr(sse, "\"text\":\"Once upon\"") != NULL);
    free(sse);
    free(js);
    const char lp[] =
        "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"logprobs\":{\"tokens\":[\"a\"]}}]}\n\n"
        "data: [DONE]\n\n";
    CHECK_EQ_INT(llmc_resp_from_sse(LLMC_EP_COMPLETIONS, lp, sizeof lp - 1, &js, &jl, &info),
                 LLMC_ENOTSUP);

    /* Non-stream parse. */
    const char full[] = "{\"id\":\"a\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":"
                        "\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
    CHECK_EQ_INT(llmc_resp_parse(LLMC_EP_CHAT, full, sizeof full - 1, &info), 0);
    CHECK(info.prompt_tokens == 3 && info.completion_tokens == 4 && !info.has_tool_calls);
    CHECK_EQ_INT(llmc_resp_parse(LLMC_EP_CHAT, "{\"error\":{}}", 12, &info), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_resp_parse(LLMC_EP_CHAT, "{\"choices\":[]}", 14, &info), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_resp_parse(LLMC_EP_EMBEDDINGS, "{\"data\":[]}", 11, &info), 0);
    CHECK_EQ_INT(llmc_resp_parse(LLMC_EP_CHAT, "nope", 4, &info), LLMC_EINVAL);
    return UNIT_DONE();
}
