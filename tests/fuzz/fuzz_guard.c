/*
 * fuzz_guard.c — libFuzzer target: the policy scanner and the semantic
 * guard (src/policy.c, src/guard.c) on arbitrary text. The input is split
 * at its first NUL into a query and a candidate; the query is also given to
 * the policy as the query and system text. Any bytes, valid UTF-8 or not.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static llmc_policy *pol;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (!pol) {
        int err = 0;
        pol = llmc_policy_new(NULL, &err);
    }
    const char *q = (const char *)d;
    const uint8_t *z = memchr(d, 0, n);
    size_t ql = z ? (size_t)(z - d) : n;
    const char *c = z ? (const char *)z + 1 : "";
    size_t cl = z ? n - ql - 1 : 0;
    llmc_guard_result r;
    llmc_guard_check(NULL, q, ql, c, cl, n % 2 ? NAN : 0.9, &r);
    if (pol) {
        char *qs = malloc(ql + 1);
        if (!qs)
            return 0;
        memcpy(qs, q, ql);
        qs[ql] = 0;
        llmc_policy_request pr;
        memset(&pr, 0, sizeof pr);
        pr.temperature = NAN;
        pr.query_text = qs;
        pr.query_len = ql;
        pr.system_text = qs;
        pr.system_len = ql;
        pr.cache_control = qs;
        llmc_policy_decision dec;
        llmc_policy_decide(pol, &pr, &dec);
        free(qs);
    }
    return 0;
}
