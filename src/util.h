/*
 * util.h — small helpers the library's modules share (not public API).
 */
#ifndef LLMC_UTIL_H
#define LLMC_UTIL_H
#include <stddef.h>
#include <sys/time.h>

/* Make the array *buf (of *cap elements of elem bytes) hold at least need
 * elements, doubling from 16 so that appends cost amortised O(1). 0, or
 * LLMC_ENOMEM with *buf and *cap unchanged. */
int llmc_grow(void **buf, size_t *cap, size_t need, size_t elem);

/* ms milliseconds (>= 0) as a struct timeval, for event_add and friends. */
static inline struct timeval llmc_timeval_ms(long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    return tv;
}

#endif
