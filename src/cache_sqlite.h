/*
 * cache_sqlite.h — the SQLite store backend of llmc_cache (internal).
 */
#ifndef CACHE_SQLITE_H
#define CACHE_SQLITE_H

#include "llmcache.h"

/* The backend's ops: a mirror of the memory store (near_cache = 0). */
extern const llmc_cache_backend_ops cache_sqlite_ops;

/* Open (or create) the file at path; the state for cache_sqlite_ops, or
 * NULL with *err and a message in errbuf. */
void *cache_sqlite_open(const char *path, int sync, int flush_interval_ms,
                        void (*on_error)(int, const char *, uint64_t, void *), void *on_error_arg,
                        int *err, char *errbuf, size_t errlen);

#endif
