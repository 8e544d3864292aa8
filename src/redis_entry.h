/*
 * redis_entry.h — an llmc_entry as one Redis key and value (internal; the
 * Redis store backend uses it). See redis_entry.c for the format.
 */
#ifndef LLMC_REDIS_ENTRY_H
#define LLMC_REDIS_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "llmcache.h"

#define REDIS_ENTRY_MAGIC 0x52434d4cu /* "LMCR" little-endian */
#define REDIS_ENTRY_VERSION 1
#define REDIS_ENTRY_HEADER 112 /* bytes before the vector */

/*
 * The Redis key of an entry: PREFIX "e:" KEY(64 hex). The tenant is inside
 * the exact key, so two tenants' keys never meet; the key alone finds the
 * entry (a fetch knows nothing else). Writes at most cap bytes (NUL
 * included); returns the length, or LLMC_ETOOBIG when cap is too small.
 */
int redis_entry_key(const char *prefix, const uint8_t key[LLMC_KEY_LEN], char *out, size_t cap);
/* The SCAN MATCH pattern of every entry under prefix (glob characters of
 * the prefix escaped). Same return as redis_entry_key(). */
int redis_entry_pattern(const char *prefix, char *out, size_t cap);
/* Where the namespace hash sits in a value (GETRANGE key OFF OFF+7: a
 * namespace flush reads 8 bytes per entry, not the whole value), and
 * reading it from those 8 bytes. */
#define REDIS_ENTRY_NS_OFF 40
uint64_t redis_entry_ns(const void *eight_bytes);
/* Parse the 64 hex digits at hex into key: 0 or LLMC_EINVAL. */
int redis_entry_key_parse(const char *hex, size_t len, uint8_t key[LLMC_KEY_LEN]);

/* Bytes redis_entry_encode() writes for e. */
size_t redis_entry_size(const llmc_entry_info *e);

/* Encode e into out (redis_entry_size(e) bytes); returns that size. */
size_t redis_entry_encode(const llmc_entry_info *e, void *out);

/*
 * Decode a value read from Redis. On success *out points into *owned, a
 * new allocation the caller frees (after copying the entry, e.g. with
 * llmc_store_put); strings are NUL-terminated and the vector aligned.
 * Returns 0, LLMC_EFOREIGN (not our magic: some other program's key),
 * LLMC_EVERSION, LLMC_ECORRUPT (lengths or checksum wrong, or the entry's
 * key is not expect_key — a value copied under another key, e.g. another
 * tenant's, is never served), or LLMC_ENOMEM. expect_key may be NULL.
 */
int redis_entry_decode(const void *buf, size_t len, const uint8_t *expect_key, llmc_entry_info *out,
                       void **owned);

#endif
