/*
 * fuzz_canon.c — libFuzzer target: request canonicalisation (src/canon.c)
 * on arbitrary bytes. The first byte picks the endpoint and the canon flags
 * and the tenant's authorization; the rest is the request body. Every input
 * must give either a canonical request (then cleared) or LLMC_EINVAL with a
 * reason; ASan/UBSan judge the rest.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1)
        return 0;
    llmc_endpoint ep = (llmc_endpoint)(1 + d[0] % 3);
    unsigned flags = (d[0] >> 2) & 7u;
    llmc_tenant t;
    llmc_tenant_make(&t, (d[0] & 0x80) ? "bearer sk-fuzz" : NULL, (d[0] & 0x40) ? "ns" : NULL, 0);
    llmc_tenant_scope(&t, "openai-project", (d[0] & 0x20) ? "p" : NULL);
    llmc_canon c;
    const char *why = NULL;
    int rc = llmc_canon_request(ep, &t, (const char *)d + 1, n - 1, flags, &c, &why);
    if (rc == 0)
        llmc_canon_clear(&c);
    else
        assert(rc == LLMC_EINVAL && why && *why);
    return 0;
}
