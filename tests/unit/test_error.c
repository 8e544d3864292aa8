/* test_error.c — every error code has a distinct name. */
#include "llmcache.h"
#include "unit.h"

int main(void)
{
    CHECK(strcmp(llmc_strerror(LLMC_OK), "success") == 0);
    for (int a = LLMC_EEMPTY; a < 0; a++) {
        CHECK(strcmp(llmc_strerror(a), "unknown error") != 0);
        for (int b = a + 1; b < 0; b++)
            CHECK(strcmp(llmc_strerror(a), llmc_strerror(b)) != 0);
    }
    CHECK(strcmp(llmc_strerror(-9999), "unknown error") == 0);
    return UNIT_DONE();
}
