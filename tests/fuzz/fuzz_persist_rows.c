/*
 * fuzz_persist_rows.c — libFuzzer target: the SQLite row loader of the warm
 * start (llmc_persist_load in src/persist.c), on rows crafted from the
 * input and stored in a real SQLite file.
 *
 * The row decoding is not a function of its own (it reads sqlite3 columns
 * in place), so the target goes through the file: each input describes up
 * to 8 entries (key, body, model, query, vector, expiry, flags), written by
 * the real writer (llmc_persist_put, then one llmc_persist_sync, so every
 * row carries a valid checksum), then tampered with through a second connection
 * — a column set to fuzz bytes as a BLOB or TEXT, to an integer, to NULL, a
 * blob cut short, or a whole raw row inserted — and the file is opened
 * again and loaded into a fresh store. The loader must never crash, leak
 * or read past a column; it must account for every row (loaded + skipped
 * <= rows); and when nothing was tampered with, every unexpired row must
 * come back byte for byte (a loader that drops or mangles a good row fails
 * here, not only one that crashes). The file lives in $TMPDIR, one per
 * process.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "llmcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

#define ROWS_MAX 8
#define NOW 1700000000

typedef struct {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t rd_u8(rd *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

/* Up to max bytes, the length taken from the next byte. */
static size_t rd_bytes(rd *r, size_t max, const uint8_t **out)
{
    size_t len = rd_u8(r) % (max + 1);
    if (len > r->n)
        len = r->n;
    *out = r->p;
    r->p += len;
    r->n -= len;
    return len;
}

static void rm_db(const char *path)
{
    char x[300];
    unlink(path);
    snprintf(x, sizeof x, "%s-wal", path);
    unlink(x);
    snprintf(x, sizeof x, "%s-shm", path);
    unlink(x);
}

static const char *const COLS[] = {"key",     "ns",      "part",   "endpoint", "model",
                                   "created", "expires", "ptok",   "ctok",     "flags",
                                   "body",    "vec",     "vmodel", "sum",      "query"};

/* Apply one tampering op from r to the file; returns 1 when it changed a row. */
static int tamper(sqlite3 *db, rd *r, const uint8_t keys[][LLMC_KEY_LEN], int nrows)
{
    uint8_t op = rd_u8(r) % 7, col = rd_u8(r) % 15, row = nrows ? rd_u8(r) % nrows : 0;
    const uint8_t *b;
    size_t blen = rd_bytes(r, 64, &b);
    char sql[200];
    sqlite3_stmt *st = NULL;
    if (op == 0)
        return 0;
    if (op == 6) { /* a raw row: every column from the input, no valid sum */
        if (sqlite3_prepare_v2(
                db, "INSERT OR REPLACE INTO entries VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st,
                NULL) != SQLITE_OK)
            return 0;
        for (int c = 1; c <= 15; c++) {
            const uint8_t *v;
            size_t vl = rd_bytes(r, 48, &v);
            switch (rd_u8(r) % 4) {
            case 0:
                sqlite3_bind_blob(st, c, v, (int)vl, SQLITE_STATIC);
                break;
            case 1:
                sqlite3_bind_text(st, c, (const char *)v, (int)vl, SQLITE_STATIC);
                break;
            case 2:
                sqlite3_bind_int64(st, c, (int64_t)NOW + (int8_t)rd_u8(r) * 1000);
                break;
            default:
                sqlite3_bind_null(st, c);
                break;
            }
        }
    } else {
        if (!nrows)
            return 0;
        if (op == 5)
            snprintf(sql, sizeof sql, "UPDATE entries SET %s=substr(%s,1,?) WHERE key=?", COLS[col],
                     COLS[col]);
        else
            snprintf(sql, sizeof sql, "UPDATE entries SET %s=? WHERE key=?", COLS[col]);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            return 0;
        switch (op) {
        case 1:
            sqlite3_bind_blob(st, 1, b, (int)blen, SQLITE_STATIC);
            break;
        case 2:
            sqlite3_bind_text(st, 1, (const char *)b, (int)blen, SQLITE_STATIC);
            break;
        case 3:
            sqlite3_bind_int64(st, 1, blen ? (int64_t)((uint64_t)b[0] << 56 | blen) : -1);
            break;
        case 4:
            sqlite3_bind_null(st, 1);
            break;
        default:
            sqlite3_bind_int(st, 1, (int)blen);
            break;
        }
        sqlite3_bind_blob(st, 2, keys[row], LLMC_KEY_LEN, SQLITE_STATIC);
    }
    int rc = sqlite3_step(st);
    int changed = rc == SQLITE_DONE && sqlite3_changes(db) > 0;
    sqlite3_finalize(st);
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char path[256];
    if (!path[0]) {
        const char *t = getenv("TMPDIR");
        if (!t) /* tmpfs where there is one: the target writes a file per input */
            t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/llmc-fuzz-rows-%d.db", t, (int)getpid());
    }
    rm_db(path);
    rd r = {d, n};
    llmc_persist_params pp = llmc_persist_default_params();
    pp.path = path;
    int err = 0;
    llmc_persist *ps = llmc_persist_open(&pp, &err, NULL, 0);
    if (!ps)
        abort(); /* a fresh file must open */
    llmc_store *src = llmc_store_new(NULL, &err);
    int nrows = 1 + rd_u8(&r) % ROWS_MAX, made = 0;
    uint8_t keys[ROWS_MAX][LLMC_KEY_LEN];
    int live[ROWS_MAX];
    for (int i = 0; i < nrows; i++) {
        llmc_entry_info e;
        memset(&e, 0, sizeof e);
        const uint8_t *b;
        size_t kl = rd_bytes(&r, LLMC_KEY_LEN, &b);
        memcpy(e.key, b, kl);
        e.key[LLMC_KEY_LEN - 1] = (uint8_t)i; /* distinct keys */
        char model[33], vmodel[17], query[65];
        size_t l = rd_bytes(&r, 32, &b);
        memcpy(model, b, l);
        model[l] = 0;
        l = rd_bytes(&r, 16, &b);
        memcpy(vmodel, b, l);
        vmodel[l] = 0;
        l = rd_bytes(&r, 64, &b);
        memcpy(query, b, l);
        query[l] = 0;
        e.model = model;
        e.vec_model = vmodel;
        e.query = query;
        e.body_len = rd_bytes(&r, 255, &b);
        e.body = (const char *)b;
        float vec[8];
        e.dim = rd_u8(&r) % 9;
        for (uint32_t k = 0; k < e.dim; k++)
            vec[k] = (float)(int8_t)rd_u8(&r) / 16.0f;
        e.vec = e.dim ? vec : NULL;
        e.ns_hash = (uint64_t)rd_u8(&r) << 40;
        e.endpoint = rd_u8(&r) % 4;
        e.flags = rd_u8(&r) & 1;
        e.created = NOW - 10;
        e.expires = NOW + 1 + (int8_t)rd_u8(&r) * 100; /* some already expired at load */
        const llmc_entry_info *held = NULL;
        if (llmc_store_put(src, &e, NOW - 20, &held) == 0) {
            if (llmc_persist_put(ps, held) == 0) {
                memcpy(keys[made], e.key, LLMC_KEY_LEN);
                live[made++] = e.expires > NOW;
            }
            llmc_entry_release(held);
        }
    }
    if (llmc_persist_sync(ps) != 0) /* one commit of every row */
        abort();
    llmc_persist_close(ps);

    int tampered = 0, ops = rd_u8(&r) % 4;
    sqlite3 *db;
    if (ops && sqlite3_open(path, &db) == SQLITE_OK) {
        for (int i = 0; i < ops; i++)
            tampered |= tamper(db, &r, (const uint8_t(*)[LLMC_KEY_LEN])keys, made);
        sqlite3_close(db);
    }

    ps = llmc_persist_open(&pp, &err, NULL, 0);
    if (ps) { /* tampering may leave a file that is refused: a clear error, no load */
        llmc_store *dst = llmc_store_new(NULL, &err);
        llmc_persist_load(ps, dst, NOW);
        llmc_persist_stats st;
        llmc_persist_get_stats(ps, &st);
        if (st.loaded + st.skipped_corrupt + st.skipped_expired > (uint64_t)made + 3)
            abort(); /* more rows accounted than can exist */
        for (int i = 0; i < made && !tampered; i++) {
            const llmc_entry_info *a = llmc_store_get(src, keys[i], NOW - 20);
            const llmc_entry_info *b = llmc_store_get(dst, keys[i], NOW);
            if (!a || (live[i] && !b) || (!live[i] && b))
                abort(); /* a good row lost, or an expired one served */
            if (b &&
                (a->body_len != b->body_len || memcmp(a->body, b->body, a->body_len) ||
                 strcmp(a->model, b->model) || strcmp(a->query, b->query) || a->dim != b->dim ||
                 (a->dim && memcmp(a->vec, b->vec, a->dim * sizeof(float))) ||
                 a->expires != b->expires || a->flags != b->flags))
                abort(); /* a good row came back different */
            llmc_entry_release(a);
            if (b)
                llmc_entry_release(b);
        }
        llmc_store_free(dst);
        llmc_persist_close(ps);
    }
    llmc_store_free(src);
    rm_db(path);
    return 0;
}
