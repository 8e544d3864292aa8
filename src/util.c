/*
 * util.c — small helpers the library's modules share (util.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "llmcache.h"
#include "util.h"

int llmc_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / (elem ? elem : 1))
            return LLMC_ENOMEM;
        c *= 2;
    }
    void *p = realloc(*buf, c * elem);
    if (!p)
        return LLMC_ENOMEM;
    *buf = p;
    *cap = c;
    return 0;
}
