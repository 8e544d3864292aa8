/*
 * error.c — the library's error space.
 *
 * Codes are negative and disjoint from errno so that a caller can tell ours
 * from the C library's; llmc_strerror() is the one place that names them.
 */
#include "llmcache.h"

const char *llmc_strerror(int err)
{
    switch (err) {
    case LLMC_OK:
        return "success";
    case LLMC_ENOMEM:
        return "out of memory";
    case LLMC_EINVAL:
        return "invalid argument or malformed input";
    case LLMC_EIO:
        return "input/output error";
    case LLMC_ECORRUPT:
        return "corrupt data (checksum or structure check failed)";
    case LLMC_EVERSION:
        return "unsupported format version";
    case LLMC_EMISMATCH:
        return "file made for another model, dimension or metric";
    case LLMC_ENOTFOUND:
        return "not found";
    case LLMC_EFULL:
        return "capacity or budget exhausted";
    case LLMC_ETOOBIG:
        return "input larger than the configured limit";
    case LLMC_EUTF8:
        return "invalid UTF-8";
    case LLMC_EUPSTREAM:
        return "upstream service error";
    case LLMC_ETIMEDOUT:
        return "upstream service timed out";
    case LLMC_EBUSY:
        return "resource busy";
    case LLMC_EEXIST:
        return "already exists";
    case LLMC_ENOTSUP:
        return "not supported";
    case LLMC_EFOREIGN:
        return "not an llmcached file (wrong magic)";
    case LLMC_EEMPTY:
        return "nothing to process (empty input)";
    }
    return "unknown error";
}
