/*
 * cache_sqlite.c — the SQLite store backend of llmc_cache.
 *
 * The first implementation of llmc_cache_backend_ops, and the shape a
 * mirror backend takes: the SQLite file (persist.c: WAL, write-behind,
 * checksummed rows) holds what the memory store holds. At start `load`
 * reads every live row into the memory store (oldest first, so LRU order
 * survives a restart) and starts the writer thread; `put` queues an upsert;
 * `removed` follows every removal from memory but a replacement (the
 * upsert of the new entry covers it), so an expired, evicted, deleted or
 * flushed entry leaves the file too. It has nothing to fetch (memory is
 * complete), no loop to attach, and no del/flush of its own: the store's
 * removals carry them.
 *
 * Invariant: after the write-behind interval, the file's rows are the
 * memory store's entries. Thread safety: persist.c's (any thread).
 */
#include "cache_sqlite.h"

static int cache_sqlite_load(void *be, llmc_store *near, int64_t now)
{
    int rc = llmc_persist_load(be, near, now);
    return rc ? rc : llmc_persist_start(be);
}

static int cache_sqlite_put(void *be, const llmc_entry_info *e)
{
    return llmc_persist_put(be, e);
}

static void cache_sqlite_removed(void *be, const llmc_entry_info *e, int reason)
{
    if (reason != LLMC_RM_REPLACE)
        llmc_persist_delete(be, e->key);
}

static void cache_sqlite_stats(void *be, llmc_cache_stats *st)
{
    st->has_persist = 1;
    llmc_persist_get_stats(be, &st->persist);
}

static void cache_sqlite_close(void *be)
{
    llmc_persist_close(be);
}

const llmc_cache_backend_ops cache_sqlite_ops = {
    .name = "sqlite",
    .near_cache = 0,
    .load = cache_sqlite_load,
    .put = cache_sqlite_put,
    .removed = cache_sqlite_removed,
    .stats = cache_sqlite_stats,
    .close = cache_sqlite_close,
};

void *cache_sqlite_open(const char *path, int sync, int flush_interval_ms,
                        void (*on_error)(int, const char *, uint64_t, void *), void *on_error_arg,
                        int *err, char *errbuf, size_t errlen)
{
    llmc_persist_params pp = llmc_persist_default_params();
    pp.path = path;
    pp.sync = sync;
    if (flush_interval_ms > 0)
        pp.flush_interval_ms = flush_interval_ms;
    pp.on_error = on_error;
    pp.on_error_arg = on_error_arg;
    return llmc_persist_open(&pp, err, errbuf, errlen);
}
