/*
 * fuzz_resp.c — libFuzzer target: the upstream answer assembler and replayer
 * (src/resp.c) and the policy's response check (src/policy.c) on arbitrary
 * bytes. The first byte picks the endpoint; the rest is read as an SSE
 * stream and as a JSON answer. An SSE stream that assembles must replay, and
 * the replay must assemble again (the round trip the cache relies on).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static llmc_policy *pol;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1)
        return 0;
    if (!pol) {
        int err = 0;
        pol = llmc_policy_new(NULL, &err);
    }
    llmc_endpoint ep = (llmc_endpoint)(1 + d[0] % 3);
    const char *b = (const char *)d + 1;
    size_t len = n - 1;
    llmc_resp_info info;
    llmc_resp_parse(ep, b, len, &info);
    free(llmc_resp_text(ep, b, len));
    char *out = NULL, *sse = NULL, *back = NULL;
    size_t ol = 0, sl = 0, bl = 0;
    if (llmc_resp_from_sse(ep, b, len, &out, &ol, &info) == 0) {
        assert(out && strlen(out) == ol);
        if (ep != LLMC_EP_EMBEDDINGS && llmc_resp_to_sse(ep, out, ol, &sse, &sl) == 0) {
            int rc = llmc_resp_from_sse(ep, sse, sl, &back, &bl, &info);
            assert(rc == 0);
        }
    }
    free(out);
    free(sse);
    free(back);
    if (llmc_resp_to_sse(ep, b, len, &sse, &sl) == 0)
        free(sse);
    if (pol) {
        llmc_policy_decision dec;
        llmc_policy_request pr;
        memset(&pr, 0, sizeof pr);
        pr.temperature = 0;
        llmc_policy_decide(pol, &pr, &dec);
        llmc_policy_check_response(pol, 200, b, len, d[0] & 1, &dec);
    }
    return 0;
}
