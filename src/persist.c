/*
 * persist.c — SQLite write-behind for the exact tier, and warm start.
 *
 * File format: one SQLite database in WAL mode.
 *   PRAGMA application_id = 0x4c4c4d43 ('LLMC'); PRAGMA user_version = 1.
 *   CREATE TABLE entries(
 *     key BLOB PRIMARY KEY,      -- 32-byte exact key
 *     ns INTEGER, part INTEGER,  -- namespace hash, semantic partition (as int64)
 *     endpoint INTEGER, model TEXT,
 *     created INTEGER, expires INTEGER,   -- unix seconds
 *     ptok INTEGER, ctok INTEGER, flags INTEGER,
 *     body BLOB,                 -- the stored response
 *     vec BLOB, vmodel TEXT,     -- float32 little-endian vector and its model
 *     sum INTEGER,               -- XXH3-64 of key|body|vec|expires|query, as int64
 *     query TEXT) WITHOUT ROWID  -- the query the semantic tier compares
 * A row whose sum does not match is skipped at load (counted, logged by the
 * caller), so a torn or tampered row never becomes a wrong answer.
 *
 * Writes: callers enqueue ops (upsert with a held entry reference, or
 * delete) in FIFO order; the writer thread commits the whole queue in one
 * transaction every flush_interval_ms. A transaction that fails (a full
 * disk, an I/O error) is rolled back and its ops go back to the head of the
 * queue, ahead of newer ones, so order is kept and the next flush retries
 * them; the upserts kept are bounded by retain_bytes (beyond, the oldest are
 * dropped and counted as lost; deletes are tiny and never dropped, so a
 * deleted entry cannot come back). on_error tells the caller once per burst.
 * The file is created with auto_vacuum=INCREMENTAL (an older file is
 * converted once, at open), and a commit that deleted rows gives the freed
 * pages back, so the file shrinks after evictions. In sync mode the caller itself
 * commits (queue first, to keep order) before returning. One mutex (mu)
 * guards the queue; another (dbmu) the connection; dbmu is never taken while
 * holding mu, and the store's lock may be held when enqueueing (its
 * on_remove hook calls llmc_persist_delete), so mu is a leaf lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>
#include <xxhash.h>

#include "llmcache.h"

#define PERSIST_APP_ID 0x4c4c4d43
#define PERSIST_SCHEMA 1

typedef struct persist_op persist_op;
struct persist_op {
    persist_op *next;
    const llmc_entry_info *e;  /* upsert when set */
    uint8_t key[LLMC_KEY_LEN]; /* delete otherwise */
};

struct llmc_persist {
    llmc_persist_params p;
    char *path;
    sqlite3 *db;
    sqlite3_stmt *ins, *del;
    pthread_mutex_t mu, dbmu;
    pthread_cond_t cv;
    persist_op *head, *tail;
    int stop, started;
    uint64_t burst; /* failed writes since the last success (dbmu) */
    pthread_t th;
    llmc_persist_stats st;
};

llmc_persist_params llmc_persist_default_params(void)
{
    llmc_persist_params p;
    memset(&p, 0, sizeof p);
    p.path = "llmcached.db";
    p.flush_interval_ms = 1000;
    p.retain_bytes = 64u << 20;
    return p;
}

static int persist_fail(int code, char *errbuf, size_t errlen, const char *fmt, const char *a,
                        const char *b)
{
    if (errlen)
        snprintf(errbuf, errlen, fmt, a, b ? b : "");
    return code;
}

static int persist_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return LLMC_EFOREIGN;
    case SQLITE_CORRUPT:
        return LLMC_ECORRUPT;
    case SQLITE_NOMEM:
        return LLMC_ENOMEM;
    default:
        return LLMC_EIO;
    }
}

static int persist_int(sqlite3 *db, const char *sql, long long *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int64_t persist_sum(const llmc_entry_info *e)
{
    XXH3_state_t *h = XXH3_createState();
    if (!h)
        return 0;
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, e->key, LLMC_KEY_LEN);
    XXH3_64bits_update(h, e->body, e->body_len);
    if (e->dim)
        XXH3_64bits_update(h, e->vec, (size_t)e->dim * sizeof(float));
    XXH3_64bits_update(h, &e->expires, sizeof e->expires);
    if (e->query)
        XXH3_64bits_update(h, e->query, strlen(e->query));
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return (int64_t)v;
}

static int persist_check_and_init(llmc_persist *ps, char *errbuf, size_t errlen)
{
    sqlite3 *db = ps->db;
    long long app = 0, ver = 0, ntables = 0;
    int rc = persist_int(db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = persist_int(db, "SELECT count(*) FROM sqlite_master", &ntables);
    if (rc != SQLITE_OK)
        return persist_fail(persist_code(rc), errbuf, errlen, "%s: cannot read database: %s",
                            ps->path, sqlite3_errmsg(db));
    if (app == 0 && ntables > 0)
        return persist_fail(LLMC_EFOREIGN, errbuf, errlen,
                            "%s: a SQLite database of another application (no llmcached "
                            "application_id); refusing to touch it%s",
                            ps->path, "");
    if (app != 0 && app != PERSIST_APP_ID)
        return persist_fail(LLMC_EFOREIGN, errbuf, errlen,
                            "%s: a SQLite database of another application (application_id "
                            "differs); refusing to touch it%s",
                            ps->path, "");
    if (app == PERSIST_APP_ID) {
        rc = persist_int(db, "PRAGMA user_version", &ver);
        if (rc != SQLITE_OK)
            return persist_fail(persist_code(rc), errbuf, errlen, "%s: %s", ps->path,
                                sqlite3_errmsg(db));
        if (ver > PERSIST_SCHEMA)
            return persist_fail(LLMC_EVERSION, errbuf, errlen,
                                "%s: written by a newer llmcached (schema version too new)%s",
                                ps->path, "");
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            int ok =
                rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
            sqlite3_finalize(st);
            if (!ok)
                return persist_fail(LLMC_ECORRUPT, errbuf, errlen,
                                    "%s: database fails its integrity check (%s); move it "
                                    "aside to start cold",
                                    ps->path, sqlite3_errmsg(db));
        } else {
            return persist_fail(persist_code(rc), errbuf, errlen, "%s: %s", ps->path,
                                sqlite3_errmsg(db));
        }
    }
    char *msg = NULL;
    char sql[512];
    long long av = 0;
    if (persist_int(db, "PRAGMA auto_vacuum", &av) == SQLITE_OK && av != 2) {
        /* 2 = incremental. Set before the first table, it takes effect at
         * once; an existing file is converted by one VACUUM. */
        long long npages = 0;
        persist_int(db, "PRAGMA page_count", &npages);
        sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, NULL);
        if (npages > 1)
            sqlite3_exec(db, "VACUUM", NULL, NULL,
                         NULL); /* best effort: shrinking is not correctness */
    }
    snprintf(
        sql, sizeof sql,
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
        "CREATE TABLE IF NOT EXISTS entries(key BLOB PRIMARY KEY, ns INTEGER, part INTEGER,"
        " endpoint INTEGER, model TEXT, created INTEGER, expires INTEGER, ptok INTEGER,"
        " ctok INTEGER, flags INTEGER, body BLOB, vec BLOB, vmodel TEXT, sum INTEGER, query TEXT)"
        " WITHOUT ROWID;"
        "PRAGMA application_id=%d; PRAGMA user_version=%d;",
        ps->p.sync ? "FULL" : "NORMAL", PERSIST_APP_ID, PERSIST_SCHEMA);
    rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = persist_fail(persist_code(rc), errbuf, errlen, "%s: %s", ps->path,
                                msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return code;
    }
    rc = sqlite3_prepare_v2(db,
                            "INSERT OR REPLACE INTO entries VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            -1, &ps->ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "DELETE FROM entries WHERE key=?", -1, &ps->del, NULL);
    if (rc != SQLITE_OK)
        return persist_fail(persist_code(rc), errbuf, errlen, "%s: %s", ps->path,
                            sqlite3_errmsg(db));
    return 0;
}

llmc_persist *llmc_persist_open(const llmc_persist_params *p, int *err, char *errbuf, size_t errlen)
{
    int e = LLMC_ENOMEM;
    llmc_persist *ps = calloc(1, sizeof *ps);
    if (!ps)
        goto fail;
    ps->p = p ? *p : llmc_persist_default_params();
    if (ps->p.flush_interval_ms <= 0)
        ps->p.flush_interval_ms = 1000;
    ps->path = strdup(ps->p.path ? ps->p.path : "llmcached.db");
    if (!ps->path)
        goto fail;
    ps->p.path = ps->path;
    pthread_mutex_init(&ps->mu, NULL);
    pthread_mutex_init(&ps->dbmu, NULL);
    pthread_cond_init(&ps->cv, NULL);
    int rc =
        sqlite3_open_v2(ps->path, &ps->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        e = persist_fail(persist_code(rc) == LLMC_EIO ? LLMC_EIO : persist_code(rc), errbuf, errlen,
                         "%s: cannot open: %s", ps->path,
                         ps->db ? sqlite3_errmsg(ps->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(ps->db, 5000);
    e = persist_check_and_init(ps, errbuf, errlen);
    if (e)
        goto fail;
    return ps;
fail:
    if (ps) {
        sqlite3_finalize(ps->ins);
        sqlite3_finalize(ps->del);
        sqlite3_close(ps->db);
        free(ps->path);
        free(ps);
    }
    if (err)
        *err = e;
    return NULL;
}

int llmc_persist_load(llmc_persist *ps, llmc_store *s, int64_t now)
{
    sqlite3_stmt *st;
    pthread_mutex_lock(&ps->dbmu);
    int rc = sqlite3_prepare_v2(ps->db,
                                "SELECT key,ns,part,endpoint,model,created,expires,ptok,ctok,"
                                "flags,body,vec,vmodel,sum,query FROM entries ORDER BY created",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        pthread_mutex_unlock(&ps->dbmu);
        return persist_code(rc);
    }
    int result = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        llmc_entry_info e;
        memset(&e, 0, sizeof e);
        const void *key = sqlite3_column_blob(st, 0);
        int klen = sqlite3_column_bytes(st, 0);
        int vbytes = sqlite3_column_bytes(st, 11);
        if (!key || klen != LLMC_KEY_LEN || vbytes % (int)sizeof(float) != 0) {
            ps->st.skipped_corrupt++;
            continue;
        }
        memcpy(e.key, key, LLMC_KEY_LEN);
        e.ns_hash = (uint64_t)sqlite3_column_int64(st, 1);
        e.partition = (uint64_t)sqlite3_column_int64(st, 2);
        e.endpoint = (uint32_t)sqlite3_column_int(st, 3);
        e.model = (const char *)sqlite3_column_text(st, 4);
        e.created = sqlite3_column_int64(st, 5);
        e.expires = sqlite3_column_int64(st, 6);
        e.prompt_tokens = (uint32_t)sqlite3_column_int64(st, 7);
        e.completion_tokens = (uint32_t)sqlite3_column_int64(st, 8);
        e.flags = (uint32_t)sqlite3_column_int64(st, 9);
        e.body = sqlite3_column_blob(st, 10);
        e.body_len = (size_t)sqlite3_column_bytes(st, 10);
        e.vec = sqlite3_column_blob(st, 11);
        e.dim = (uint32_t)((size_t)vbytes / sizeof(float));
        e.vec_model = (const char *)sqlite3_column_text(st, 12);
        e.query = (const char *)sqlite3_column_text(st, 14);
        if (!e.query)
            e.query = "";
        if (!e.model)
            e.model = "";
        if (!e.vec_model)
            e.vec_model = "";
        if (!e.body)
            e.body = "";
        if (sqlite3_column_int64(st, 13) != persist_sum(&e)) {
            ps->st.skipped_corrupt++;
            continue;
        }
        if (e.expires <= now) {
            ps->st.skipped_expired++;
            continue;
        }
        int prc = llmc_store_put(s, &e, now, NULL);
        if (prc == 0)
            ps->st.loaded++;
        else if (prc == LLMC_ENOMEM) {
            result = prc;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE && !result)
        result = persist_code(rc);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&ps->dbmu);
    return result;
}

/* Bind o's row to its statement; returns the statement. */
static sqlite3_stmt *persist_bind(llmc_persist *ps, const persist_op *o)
{
    sqlite3_stmt *st;
    if (o->e) {
        const llmc_entry_info *e = o->e;
        st = ps->ins;
        sqlite3_bind_blob(st, 1, e->key, LLMC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)e->ns_hash);
        sqlite3_bind_int64(st, 3, (int64_t)e->partition);
        sqlite3_bind_int(st, 4, (int)e->endpoint);
        sqlite3_bind_text(st, 5, e->model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, e->created);
        sqlite3_bind_int64(st, 7, e->expires);
        sqlite3_bind_int64(st, 8, e->prompt_tokens);
        sqlite3_bind_int64(st, 9, e->completion_tokens);
        sqlite3_bind_int64(st, 10, e->flags);
        sqlite3_bind_blob64(st, 11, e->body, e->body_len, SQLITE_STATIC);
        if (e->dim)
            sqlite3_bind_blob64(st, 12, e->vec, (uint64_t)e->dim * sizeof(float), SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 12);
        sqlite3_bind_text(st, 13, e->vec_model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 14, persist_sum(e));
        sqlite3_bind_text(st, 15, e->query ? e->query : "", -1, SQLITE_STATIC);
    } else {
        st = ps->del;
        sqlite3_bind_blob(st, 1, o->key, LLMC_KEY_LEN, SQLITE_STATIC);
    }
    return st;
}

static void persist_free_ops(persist_op *ops)
{
    while (ops) {
        persist_op *n = ops->next;
        llmc_entry_release(ops->e);
        free(ops);
        ops = n;
    }
}

/* A failed write: put ops back at the head of the queue (they are older
 * than anything queued since), then drop the oldest upserts beyond
 * retain_bytes. mu taken here; dbmu held. */
static void persist_requeue(llmc_persist *ps, persist_op *ops)
{
    persist_op *last = ops;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&ps->mu);
    last->next = ps->head;
    ps->head = ops;
    if (!ps->tail)
        ps->tail = last;
    size_t n = 0, bytes = 0;
    for (persist_op *o = ps->head; o; o = o->next) {
        n++;
        bytes += o->e ? o->e->body_len : 0;
    }
    persist_op **pp = &ps->head, *prev = NULL, *dropped = NULL;
    while (*pp && bytes > ps->p.retain_bytes) {
        persist_op *o = *pp;
        if (!o->e) { /* a delete: kept */
            prev = o;
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        if (ps->tail == o)
            ps->tail = prev;
        bytes -= o->e->body_len;
        n--;
        ps->st.lost++;
        o->next = dropped;
        dropped = o;
    }
    ps->st.queued = n;
    ps->st.retained = n;
    ps->st.retained_bytes = bytes;
    pthread_mutex_unlock(&ps->mu);
    persist_free_ops(dropped);
}

/* Commit ops (a detached list) in one transaction; dbmu held. On failure
 * nothing of it is committed and the ops are queued again (above). */
static int persist_write(llmc_persist *ps, persist_op *ops)
{
    int ok = 1, deletes = 0;
    uint64_t puts = 0, dels = 0;
    if (!ops)
        return 0;
    const char *why = NULL;
    if (sqlite3_exec(ps->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        ok = 0;
        why = sqlite3_errmsg(ps->db);
    }
    for (persist_op *o = ops; ok && o; o = o->next) {
        sqlite3_stmt *st = persist_bind(ps, o);
        if (sqlite3_step(st) != SQLITE_DONE) {
            ok = 0; /* stop here: SQLite may have rolled the transaction back */
            why = sqlite3_errmsg(ps->db);
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (o->e)
            puts++;
        else
            dels++, deletes = 1;
    }
    if (ok && sqlite3_exec(ps->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ok = 0;
        why = sqlite3_errmsg(ps->db);
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%s", why ? why : "");
    if (!ok && !sqlite3_get_autocommit(ps->db))
        sqlite3_exec(ps->db, "ROLLBACK", NULL, NULL, NULL);
    ps->st.commits++;
    if (!ok) {
        ps->st.errors++;
        if (ps->burst++ == 0 && ps->p.on_error)
            ps->p.on_error(0, msg, 0, ps->p.on_error_arg);
        persist_requeue(ps, ops);
        return LLMC_EIO;
    }
    ps->st.puts += puts;
    ps->st.deletes += dels;
    if (ps->burst) {
        if (ps->p.on_error)
            ps->p.on_error(1, "", ps->burst, ps->p.on_error_arg);
        ps->burst = 0;
        pthread_mutex_lock(&ps->mu);
        ps->st.retained = ps->st.retained_bytes = 0;
        pthread_mutex_unlock(&ps->mu);
    }
    if (deletes) { /* give freed pages back: the file shrinks after evictions */
        long long before = 0, after = 0;
        persist_int(ps->db, "PRAGMA freelist_count", &before);
        if (before > 0) {
            sqlite3_exec(ps->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
            persist_int(ps->db, "PRAGMA freelist_count", &after);
            if (before > after)
                ps->st.vacuumed_pages += (uint64_t)(before - after);
        }
    }
    persist_free_ops(ops);
    return 0;
}

static persist_op *persist_take(llmc_persist *ps)
{
    pthread_mutex_lock(&ps->mu);
    persist_op *ops = ps->head;
    ps->head = ps->tail = NULL;
    ps->st.queued = 0;
    pthread_mutex_unlock(&ps->mu);
    return ops;
}

int llmc_persist_sync(llmc_persist *ps)
{
    pthread_mutex_lock(&ps->dbmu);
    int rc = persist_write(ps, persist_take(ps));
    pthread_mutex_unlock(&ps->dbmu);
    return rc;
}

static void persist_enqueue(llmc_persist *ps, persist_op *o)
{
    pthread_mutex_lock(&ps->mu);
    if (ps->tail)
        ps->tail->next = o;
    else
        ps->head = o;
    ps->tail = o;
    ps->st.queued++;
    pthread_mutex_unlock(&ps->mu);
}

int llmc_persist_put(llmc_persist *ps, const llmc_entry_info *e)
{
    persist_op *o = calloc(1, sizeof *o);
    if (!o)
        return LLMC_ENOMEM;
    llmc_entry_ref(e);
    o->e = e;
    persist_enqueue(ps, o);
    if (ps->p.sync)
        return llmc_persist_sync(ps);
    return 0;
}

void llmc_persist_delete(llmc_persist *ps, const uint8_t key[LLMC_KEY_LEN])
{
    persist_op *o = calloc(1, sizeof *o);
    if (!o)
        return; /* the row outlives its entry; load() drops it once expired */
    memcpy(o->key, key, LLMC_KEY_LEN);
    persist_enqueue(ps, o);
}

static void *persist_main(void *arg)
{
    llmc_persist *ps = arg;
    pthread_mutex_lock(&ps->mu);
    while (!ps->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ps->p.flush_interval_ms / 1000;
        ts.tv_nsec += (long)(ps->p.flush_interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ps->cv, &ps->mu, &ts);
        pthread_mutex_unlock(&ps->mu);
        llmc_persist_sync(ps);
        pthread_mutex_lock(&ps->mu);
    }
    pthread_mutex_unlock(&ps->mu);
    return NULL;
}

int llmc_persist_start(llmc_persist *ps)
{
    if (ps->started)
        return LLMC_EEXIST;
    if (pthread_create(&ps->th, NULL, persist_main, ps) != 0)
        return LLMC_ENOMEM;
    ps->started = 1;
    return 0;
}

void llmc_persist_get_stats(llmc_persist *ps, llmc_persist_stats *st)
{
    pthread_mutex_lock(&ps->mu);
    *st = ps->st;
    pthread_mutex_unlock(&ps->mu);
}

void llmc_persist_close(llmc_persist *ps)
{
    if (!ps)
        return;
    if (ps->started) {
        pthread_mutex_lock(&ps->mu);
        ps->stop = 1;
        pthread_cond_signal(&ps->cv);
        pthread_mutex_unlock(&ps->mu);
        pthread_join(ps->th, NULL);
    }
    llmc_persist_sync(ps);
    persist_free_ops(persist_take(ps)); /* still failing at close: lost (counted in retained) */
    sqlite3_finalize(ps->ins);
    sqlite3_finalize(ps->del);
    sqlite3_close(ps->db);
    pthread_mutex_destroy(&ps->mu);
    pthread_mutex_destroy(&ps->dbmu);
    pthread_cond_destroy(&ps->cv);
    free(ps->path);
    free(ps);
}
