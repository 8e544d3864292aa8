/* test_persist.c — warm restart, kill -9, sync mode, bad files. */
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llmcache.h"
#include "unit.h"

static char dir[256];

static llmc_entry_info mk(int id, const char *body)
{
    static uint8_t k[32];
    llmc_entry_info e;
    memset(&e, 0, sizeof e);
    memset(k, 0, sizeof k);
    memcpy(k, &id, sizeof id);
    memcpy(e.key, k, 32);
    e.body = body;
    e.body_len = strlen(body);
    e.created = 100 + id;
    e.expires = 10000;
    e.model = "gpt";
    e.vec_model = "";
    e.ns_hash = 7;
    return e;
}

static llmc_persist *open_db(const char *name, int sync, int *err, char *msg)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    llmc_persist_params p = llmc_persist_default_params();
    p.path = path;
    p.sync = sync;
    p.flush_interval_ms = 50;
    return llmc_persist_open(&p, err, msg, 256);
}

static size_t count_loaded(const char *name)
{
    int err = 0;
    char msg[256];
    llmc_persist *ps = open_db(name, 0, &err, msg);
    if (!ps)
        return (size_t)-1;
    llmc_store *s = llmc_store_new(NULL, NULL);
    llmc_persist_load(ps, s, 200);
    llmc_store_stats st;
    llmc_store_get_stats(s, &st);
    llmc_store_free(s);
    llmc_persist_close(ps);
    return st.entries;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Child: write n entries, wait for a flush when asked, then SIGKILL self. */
static void child_then_kill(const char *name, int sync, int n, int wait_flush)
{
    pid_t pid = fork();
    if (pid == 0) {
        int err;
        char msg[256];
        llmc_persist *ps = open_db(name, sync, &err, msg);
        if (!ps)
            _exit(3);
        llmc_persist_start(ps);
        for (int i = 0; i < n; i++) {
            llmc_entry_info e = mk(i, "body-of-entry");
            llmc_store *s = llmc_store_new(NULL, NULL);
            const llmc_entry_info *ref;
            llmc_store_put(s, &e, 150, &ref);
            llmc_persist_put(ps, ref);
            llmc_entry_release(ref);
            llmc_store_free(s);
        }
        if (wait_flush)
            usleep(400 * 1000);
        raise(SIGKILL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
}

/* on_error's calls: failures seen (ok 0) and recoveries (ok 1). */
static int err_calls, ok_calls;
static uint64_t burst_failures;
static void on_err(int ok, const char *m, uint64_t failures, void *arg)
{
    if (ok)
        ok_calls++, burst_failures = failures;
    else
        err_calls++;
}

/* Put entries first..first+n-1 with bodies of len bytes through a store. */
static void put_n(llmc_persist *ps, int first, int n, size_t len)
{
    char *body = malloc(len + 1);
    memset(body, 'x', len);
    body[len] = 0;
    llmc_store *st = llmc_store_new(NULL, NULL);
    for (int i = first; i < first + n; i++) {
        llmc_entry_info e = mk(i, body);
        const llmc_entry_info *ref;
        if (llmc_store_put(st, &e, 150, &ref) == 0) {
            llmc_persist_put(ps, ref);
            llmc_entry_release(ref);
        }
    }
    llmc_store_free(st);
    free(body);
}

static long file_size(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Issue 16: a full disk (here: RLIMIT_FSIZE, so that every write past
 * 256 KB fails with EFBIG, as on a full filesystem) loses nothing that fits
 * the retained budget: the failed writes are kept, reported once per burst,
 * and written when space returns. */
static void test_full_disk(void)
{
    int err = 0;
    char msg[256];
    char path[512];
    snprintf(path, sizeof path, "%s/full.db", dir);
    llmc_persist_params p = llmc_persist_default_params();
    p.path = path;
    p.flush_interval_ms = 50;
    p.retain_bytes = 40 * 8192; /* 40 of the bodies below */
    p.on_error = on_err;
    llmc_persist *ps = llmc_persist_open(&p, &err, msg, sizeof msg);
    CHECK(ps != NULL);
    if (!ps)
        return;
    put_n(ps, 0, 4, 100);
    CHECK_EQ_INT(llmc_persist_sync(ps), 0);

    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 256 * 1024;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    put_n(ps, 100, 30, 8192); /* 240 KB of bodies + WAL frames: over the limit */
    CHECK_EQ_INT(llmc_persist_sync(ps), LLMC_EIO);
    put_n(ps, 200, 5, 8192);
    CHECK_EQ_INT(llmc_persist_sync(ps), LLMC_EIO); /* still full: kept, retried */
    llmc_persist_stats st;
    llmc_persist_get_stats(ps, &st);
    CHECK(st.errors >= 2);
    CHECK_EQ_INT(st.retained, 35);
    CHECK_EQ_INT(st.lost, 0);
    CHECK_EQ_INT(err_calls, 1); /* one report for the burst */
    CHECK_EQ_INT(ok_calls, 0);
    /* Beyond the retained budget the oldest are dropped, and counted. */
    put_n(ps, 300, 10, 8192);
    CHECK_EQ_INT(llmc_persist_sync(ps), LLMC_EIO);
    llmc_persist_get_stats(ps, &st);
    CHECK_EQ_INT(st.retained, 40);
    CHECK_EQ_INT(st.lost, 5);
    CHECK(st.retained_bytes <= p.retain_bytes);

    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0); /* space returns */
    CHECK_EQ_INT(llmc_persist_sync(ps), 0);
    llmc_persist_get_stats(ps, &st);
    CHECK_EQ_INT(st.retained, 0);
    CHECK_EQ_INT(ok_calls, 1);
    CHECK(burst_failures >= 3);
    llmc_persist_close(ps);
    CHECK_EQ_INT(count_loaded("full.db"), 4 + 45 - 5);
}

/* Issue 16: the file shrinks after evictions (incremental vacuum). */
static void test_shrinks(void)
{
    int err = 0;
    char msg[256];
    llmc_persist *ps = open_db("shrink.db", 0, &err, msg);
    CHECK(ps != NULL);
    if (!ps)
        return;
    put_n(ps, 0, 300, 4096);
    llmc_persist_close(ps);
    long full = file_size("shrink.db");
    ps = open_db("shrink.db", 0, &err, msg);
    CHECK(ps != NULL);
    if (!ps)
        return;
    for (int i = 0; i < 300; i++) {
        llmc_entry_info e = mk(i, "");
        llmc_persist_delete(ps, e.key);
    }
    CHECK_EQ_INT(llmc_persist_sync(ps), 0);
    llmc_persist_stats st;
    llmc_persist_get_stats(ps, &st);
    CHECK(st.vacuumed_pages > 200);
    llmc_persist_close(ps);
    long empty = file_size("shrink.db");
    CHECK(full > 1000000 && empty > 0 && empty < full / 10);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/llmc-persist-%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    CHECK(system(cmd) == 0);

    /* Write, close, reopen: every entry back, with its fields. */
    int err = 0;
    char msg[256] = "";
    llmc_persist *ps = open_db("a.db", 0, &err, msg);
    CHECK(ps != NULL);
    llmc_store_params sp = llmc_store_default_params();
    sp.on_remove = NULL;
    llmc_store *s = llmc_store_new(&sp, NULL);
    float v[3] = {0.5f, 0.25f, -1.0f};
    for (int i = 0; i < 50; i++) {
        llmc_entry_info e = mk(i, i % 2 ? "odd" : "even");
        if (i == 3) {
            e.vec = v;
            e.dim = 3;
            e.vec_model = "use-lite";
            e.query = "what is a cache?";
        }
        if (i == 4)
            e.expires = 150; /* dead by load time (now = 200) */
        const llmc_entry_info *ref;
        CHECK(llmc_store_put(s, &e, 120, &ref) == 0);
        CHECK(llmc_persist_put(ps, ref) == 0);
        llmc_entry_release(ref);
    }
    llmc_entry_info e5 = mk(5, "");
    llmc_persist_delete(ps, e5.key);
    llmc_store_free(s);
    llmc_persist_close(ps);

    ps = open_db("a.db", 0, &err, msg);
    CHECK(ps != NULL);
    s = llmc_store_new(&sp, NULL);
    CHECK(llmc_persist_load(ps, s, 200) == 0);
    llmc_store_stats st;
    llmc_store_get_stats(s, &st);
    CHECK_EQ_INT(st.entries, 48); /* 50 - deleted - expired */
    llmc_entry_info q = mk(3, "");
    const llmc_entry_info *g = llmc_store_get(s, q.key, 200);
    CHECK(g && g->dim == 3 && g->vec[2] == -1.0f && strcmp(g->vec_model, "use-lite") == 0);
    CHECK(g && strcmp(g->query, "what is a cache?") == 0);
    CHECK(g && g->body_len == 3 && memcmp(g->body, "odd", 3) == 0 && g->ns_hash == 7);
    CHECK(g && strcmp(g->model, "gpt") == 0 && g->created == 103);
    llmc_entry_release(g);
    llmc_persist_stats pst;
    llmc_persist_get_stats(ps, &pst);
    CHECK_EQ_INT(pst.loaded, 48);
    CHECK_EQ_INT(pst.skipped_expired, 1);
    llmc_store_free(s);
    llmc_persist_close(ps);

    /* A tampered row is skipped, the rest load. */
    {
        sqlite3 *db;
        char path[512];
        snprintf(path, sizeof path, "%s/a.db", dir);
        CHECK(sqlite3_open(path, &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "UPDATE entries SET body=X'6576696c' WHERE created=110", NULL, NULL,
                           NULL) == SQLITE_OK);
        sqlite3_close(db);
        CHECK_EQ_INT(count_loaded("a.db"), 47);
    }

    /* kill -9 after a flush interval: nothing lost. */
    child_then_kill("k.db", 0, 100, 1);
    CHECK_EQ_INT(count_loaded("k.db"), 100);
    /* kill -9 in sync mode right after the puts: nothing lost either. */
    child_then_kill("s.db", 1, 60, 0);
    CHECK_EQ_INT(count_loaded("s.db"), 60);

    test_full_disk();
    test_shrinks();

    /* Bad files: clear error, file untouched. */
    const char junk[] = "this is not a database at all, just text that is long enough......"
                        "..................................................................";
    write_file("junk.db", junk, sizeof junk);
    msg[0] = 0;
    CHECK(open_db("junk.db", 0, &err, msg) == NULL);
    CHECK(err == LLMC_EFOREIGN || err == LLMC_ECORRUPT);
    CHECK(strstr(msg, "junk.db") != NULL);
    {
        char path[512];
        snprintf(path, sizeof path, "%s/junk.db", dir);
        FILE *f = fopen(path, "rb");
        char buf[sizeof junk];
        CHECK(f && fread(buf, 1, sizeof buf, f) == sizeof junk &&
              memcmp(buf, junk, sizeof junk) == 0);
        if (f)
            fclose(f);
    }
    /* Another application's SQLite database. */
    {
        sqlite3 *db;
        char path[512];
        snprintf(path, sizeof path, "%s/foreign.db", dir);
        sqlite3_open(path, &db);
        sqlite3_exec(db, "CREATE TABLE users(name TEXT); INSERT INTO users VALUES('x')", NULL, NULL,
                     NULL);
        sqlite3_close(db);
        CHECK(open_db("foreign.db", 0, &err, msg) == NULL);
        CHECK_EQ_INT(err, LLMC_EFOREIGN);
        /* ...still intact */
        sqlite3_open(path, &db);
        long long n = -1;
        sqlite3_stmt *stt;
        sqlite3_prepare_v2(db, "SELECT count(*) FROM users", -1, &stt, NULL);
        if (sqlite3_step(stt) == SQLITE_ROW)
            n = sqlite3_column_int64(stt, 0);
        sqlite3_finalize(stt);
        sqlite3_close(db);
        CHECK_EQ_INT(n, 1);
        /* A newer schema version of ours. */
        snprintf(path, sizeof path, "%s/newer.db", dir);
        sqlite3_open(path, &db);
        sqlite3_exec(
            db, "CREATE TABLE entries(x); PRAGMA application_id=1280068931; PRAGMA user_version=99",
            NULL, NULL, NULL);
        sqlite3_close(db);
        CHECK(open_db("newer.db", 0, &err, msg) == NULL);
        CHECK_EQ_INT(err, LLMC_EVERSION);
    }
    /* A truncated copy of a real database. */
    {
        char path[512];
        snprintf(path, sizeof path, "%s/k.db", dir);
        /* checkpoint the WAL into the main file first */
        sqlite3 *db;
        sqlite3_open(path, &db);
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db);
        FILE *f = fopen(path, "rb");
        static char buf[1 << 20];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        CHECK(n > 8192);
        write_file("trunc.db", buf, n / 2 + 100);
        llmc_persist *t = open_db("trunc.db", 0, &err, msg);
        if (t) {
            /* SQLite may open it; loading must then fail or skip, not crash */
            llmc_store *ts = llmc_store_new(NULL, NULL);
            int lrc = llmc_persist_load(t, ts, 200);
            CHECK(lrc == LLMC_ECORRUPT || lrc == LLMC_EIO || lrc == 0);
            llmc_store_free(ts);
            llmc_persist_close(t);
        } else {
            CHECK(err == LLMC_ECORRUPT || err == LLMC_EFOREIGN || err == LLMC_EIO);
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return UNIT_DONE();
}
