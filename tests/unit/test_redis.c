/*
 * test_redis.c — the async Redis / Redis Cluster client against real
 * redis-server processes started here on free ports (Debian's redis-server;
 * scripts/deps.d/test.list).
 *
 *   - URL parsing and redaction (the password never printed);
 *   - SET/GET, SELECT db, AUTH with an ACL user, a wrong password refused
 *     and never logged;
 *   - a slow Redis (DEBUG SLEEP) answers LLMC_ETIMEDOUT within the timeout;
 *   - Redis SIGKILLed: in-flight commands fail, new ones are refused at once,
 *     and after a restart on the same port commands work again, counted as
 *     a reconnect;
 *   - a cluster of 3 primaries + 3 replicas built with redis-cli --cluster
 *     create: the key slot equals CLUSTER KEYSLOT, keys spread over every
 *     primary, a slot migrated while the client holds the old map is
 *     followed through ASK (during) and MOVED (after), a primary SIGKILLed
 *     is replaced by its replica and every key is served again, and no
 *     answer is ever wrong.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "llmcache.h"
#include "redis.h"
#include "unit.h"

#include "redis_srv.h"

/* ---- driving the client ------------------------------------------------ */

typedef struct {
    int done, status, type;
    long long integer;
    char str[512];
    size_t len;
    double ms;
    double t0;
} result;

static void on_result(redis_client *r, int status, redisReply *rep, void *arg)
{
    result *res = arg;
    res->done++;
    res->status = status;
    res->ms = now_ms() - res->t0;
    if (rep) {
        res->type = rep->type;
        res->integer = rep->integer;
        if (rep->str) {
            res->len = rep->len < sizeof res->str - 1 ? rep->len : sizeof res->str - 1;
            memcpy(res->str, rep->str, res->len);
            res->str[res->len] = 0;
        }
    }
}

/* Issue a command (space-separated words; argument 1 is the key) and wait
 * for its answer. Returns redis_command()'s code; *res holds the answer. */
static int cmd(redis_client *r, result *res, int timeout_ms, const char *line)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", line);
    const char *av[16];
    size_t al[16];
    int ac = 0;
    for (char *s = strtok(buf, " "); s && ac < 16; s = strtok(NULL, " ")) {
        av[ac] = s;
        al[ac] = strlen(s);
        ac++;
    }
    memset(res, 0, sizeof *res);
    res->t0 = now_ms();
    int rc = redis_command(r, ac > 1 ? av[1] : NULL, ac > 1 ? al[1] : 0, ac, av, al, timeout_ms,
                           on_result, res);
    if (rc == 0)
        run_until(&res->done, 5000);
    return rc;
}

static char logged[8192];
static void log_sink(void *arg, const char *msg)
{
    size_t l = strlen(logged);
    snprintf(logged + l, sizeof logged - l, "%s\n", msg);
}

static redis_client *client(const char *url, const char *password, int timeout_ms)
{
    redis_params p = redis_default_params();
    p.url = url;
    p.password = password;
    p.timeout_ms = timeout_ms;
    p.backoff_min_ms = 10;
    p.backoff_max_ms = 100;
    p.log = log_sink;
    char err[256];
    int e = 0;
    redis_client *r = redis_new(base, &p, &e, err, sizeof err);
    if (!r)
        fprintf(stderr, "redis_new: %s\n", err);
    return r;
}

/* ---- tests -------------------------------------------------------------- */

static void test_url(void)
{
    redis_url u;
    char err[256];
    CHECK_EQ_INT(redis_parse_url("redis://127.0.0.1:7000/3", &u, err, sizeof err), 0);
    CHECK(!u.cluster && u.nseeds == 1 && u.seeds[0].port == 7000 && u.db == 3);
    CHECK(!strcmp(u.seeds[0].host, "127.0.0.1") && !u.password[0] && !u.user[0]);
    CHECK_EQ_INT(redis_parse_url("redis://al%40ice:p%3Ass@h", &u, err, sizeof err), 0);
    CHECK(!strcmp(u.user, "al@ice") && !strcmp(u.password, "p:ss") && u.seeds[0].port == 6379);
    CHECK_EQ_INT(redis_parse_url("redis://:secret@h:1/0", &u, err, sizeof err), 0);
    CHECK(!u.user[0] && !strcmp(u.password, "secret"));
    CHECK_EQ_INT(redis_parse_url("redis://bob@h", &u, err, sizeof err), 0);
    CHECK(!strcmp(u.user, "bob") && !u.password[0]);
    CHECK_EQ_INT(redis_parse_url("redis-cluster://a:1,b:2,c:3", &u, err, sizeof err), 0);
    CHECK(u.cluster && u.nseeds == 3 && u.seeds[2].port == 3 && !strcmp(u.seeds[1].host, "b"));
    CHECK_EQ_INT(redis_parse_url("redis-cluster://a:1/2", &u, err, sizeof err), LLMC_EINVAL);
    CHECK_EQ_INT(redis_parse_url("redis://a:1,b:2", &u, err, sizeof err), LLMC_EINVAL);
    CHECK_EQ_INT(redis_parse_url("http://a", &u, err, sizeof err), LLMC_EINVAL);
    CHECK_EQ_INT(redis_parse_url("redis://a:99999", &u, err, sizeof err), LLMC_EINVAL);
    CHECK_EQ_INT(redis_parse_url("redis://a:1/x", &u, err, sizeof err), LLMC_EINVAL);
    CHECK_EQ_INT(redis_parse_url("redis://u:topsecret@a:1/x", &u, err, sizeof err), LLMC_EINVAL);
    CHECK(strstr(err, "topsecret") == NULL);
    CHECK_EQ_INT(redis_parse_url("rediss://a:1", &u, err, sizeof err), LLMC_ENOTSUP);
    char red[256];
    CHECK(!strcmp(redis_url_redact("redis://u:topsecret@h:1/2", red, sizeof red),
                  "redis://u:***@h:1/2"));
    CHECK(!strcmp(redis_url_redact("redis://:pw@h", red, sizeof red), "redis://:***@h"));
    CHECK(!strcmp(redis_url_redact("redis://h:1", red, sizeof red), "redis://h:1"));
    CHECK(!strcmp(redis_url_redact("redis://bob@h:1", red, sizeof red), "redis://bob@h:1"));
}

static void test_slot(void)
{
    /* the Redis Cluster specification's own examples */
    CHECK_EQ_INT(redis_key_slot("123456789", 9), 0x31C3 & 16383);
    CHECK_EQ_INT(redis_key_slot("foo", 3), 12182);
    CHECK_EQ_INT(redis_key_slot("{user1000}.following", 20), redis_key_slot("user1000", 8));
    CHECK_EQ_INT(redis_key_slot("foo{}{bar}", 10), redis_key_slot("foo{}{bar}", 10));
    CHECK(redis_key_slot("foo{}{bar}", 10) != redis_key_slot("bar", 3)); /* empty tag: whole key */
    CHECK_EQ_INT(redis_key_slot("foo{{bar}}zap", 13), redis_key_slot("{bar", 4));
}

static void test_single(void)
{
    int port = start_server(0, 0, NULL);
    CHECK(port > 0);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    redis_client *r = client(url, NULL, 500);
    CHECK(r != NULL);
    result res;
    CHECK_EQ_INT(cmd(r, &res, -1, "SET k1 hello"), 0); /* queued while connecting */
    CHECK_EQ_INT(res.status, 0);
    CHECK_EQ_INT(cmd(r, &res, -1, "GET k1"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "hello"));
    CHECK(redis_ready(r));
    /* SELECT 3 took effect: db 0 does not have it, db 3 does */
    redisContext *c = sync_conn(port);
    redisReply *rep = redisCommand(c, "GET k1");
    CHECK(rep && rep->type == REDIS_REPLY_NIL);
    freeReplyObject(rep);
    rep = redisCommand(c, "SELECT 3");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET k1");
    CHECK(rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, "hello"));
    freeReplyObject(rep);
    /* an error reply is LLMC_EUPSTREAM with the message */
    CHECK_EQ_INT(cmd(r, &res, -1, "INCR k1"), 0);
    CHECK(res.status == LLMC_EUPSTREAM && strstr(res.str, "not an integer"));

    /* slow Redis: DEBUG SLEEP on another connection; our 30 ms timeout fires */
    rep = redisCommand(c, "CLIENT ID");
    freeReplyObject(rep);
    redisAppendCommand(c, "DEBUG SLEEP 0.5");
    redisBufferWrite(c, &(int){0});
    usleep(20000);
    CHECK_EQ_INT(cmd(r, &res, 30, "GET k1"), 0);
    CHECK_EQ_INT(res.status, LLMC_ETIMEDOUT);
    CHECK(res.ms < 150);
    fprintf(stderr, "  timeout answered after %.1f ms (timeout 30 ms)\n", res.ms);
    void *vr;
    redisGetReply(c, &vr);
    freeReplyObject(vr);
    /* after the sleep the connection is usable again */
    CHECK_EQ_INT(cmd(r, &res, 500, "GET k1"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "hello"));
    redisFree(c);

    /* SIGKILL: in-flight commands fail, new ones are refused at once */
    result inflight;
    memset(&inflight, 0, sizeof inflight);
    const char *av[3] = {"BLPOP", "nolist", "2"};
    size_t al[3] = {5, 6, 1};
    CHECK_EQ_INT(redis_command(r, "nolist", 6, 3, av, al, 0, on_result, &inflight), 0);
    run_until(NULL, 20);
    stop_server(0);
    run_until(&inflight.done, 2000);
    CHECK_EQ_INT(inflight.done, 1);
    CHECK_EQ_INT(inflight.status, LLMC_EUPSTREAM);
    run_until(NULL, 30);
    double t0 = now_ms();
    int rc = cmd(r, &res, -1, "GET k1");
    CHECK(rc != 0 || res.status != 0);
    CHECK(now_ms() - t0 < 100);
    /* restart on the same port: the client reconnects by itself */
    CHECK(start_server(0, port, NULL) == port);
    int ok = 0;
    for (int k = 0; k < 100 && !ok; k++) {
        run_until(NULL, 10);
        ok = cmd(r, &res, -1, "SET k2 again") == 0 && res.status == 0;
    }
    CHECK(ok);
    redis_stats st;
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.reconnects, 1);
    CHECK(st.disconnects >= 1 && st.timeouts >= 1 && st.errors >= 2 && st.replies >= 4);
    CHECK(redis_rtt_quantile(&st, 0.5) > 0);
    redis_free(r);
    stop_server(0);
}

static void test_auth(void)
{
    int port = start_server(0, 0, "--requirepass topsecret");
    CHECK(port > 0);
    redisContext *c = sync_conn(port);
    redisReply *rep = redisCommand(c, "AUTH topsecret");
    freeReplyObject(rep);
    rep = redisCommand(c, "ACL SETUSER fleet on >fleetpw ~* +@all");
    CHECK(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(c);
    char url[160];
    result res;

    /* password from the URL */
    snprintf(url, sizeof url, "redis://:topsecret@127.0.0.1:%d", port);
    redis_client *r = client(url, NULL, 500);
    CHECK_EQ_INT(cmd(r, &res, -1, "SET a 1"), 0);
    CHECK_EQ_INT(res.status, 0);
    redis_free(r);

    /* ACL user from the URL, password from the params (--store-password) */
    snprintf(url, sizeof url, "redis://fleet@127.0.0.1:%d", port);
    r = client(url, "fleetpw", 500);
    CHECK_EQ_INT(cmd(r, &res, -1, "GET a"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "1"));
    CHECK_EQ_INT(cmd(r, &res, -1, "ACL WHOAMI"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "fleet"));
    redis_free(r);

    /* a wrong password: refused, counted, never logged */
    logged[0] = 0;
    snprintf(url, sizeof url, "redis://fleet:wrongpass@127.0.0.1:%d", port);
    r = client(url, NULL, 500);
    CHECK_EQ_INT(cmd(r, &res, -1, "GET a"), 0);
    CHECK(res.status == LLMC_EUPSTREAM);
    redis_stats st;
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.auth_failures, 1);
    CHECK(strstr(logged, "AUTH as fleet refused") != NULL);
    CHECK(strstr(logged, "wrongpass") == NULL && strstr(logged, "topsecret") == NULL);
    redis_free(r);
    stop_server(0);
}

/* ---- cluster ------------------------------------------------------------ */

/* The cluster is up at port, and when port is a primary its replica is in
 * sync (so a failover keeps the data). */
static int cluster_ok(int port)
{
    redisContext *c = sync_conn(port);
    if (!c)
        return 0;
    redisReply *rep = redisCommand(c, "CLUSTER INFO");
    int ok = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "cluster_state:ok");
    if (rep)
        freeReplyObject(rep);
    rep = redisCommand(c, "INFO replication");
    if (ok && rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "role:master"))
        ok = strstr(rep->str, "state=online") != NULL;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return ok;
}

static redisReply *sync_cmd(int port, const char *fmt, ...)
{
    redisContext *c = sync_conn(port);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

static void node_id(int port, char *id)
{
    redisReply *rep = sync_cmd(port, "CLUSTER MYID");
    snprintf(id, 64, "%s", rep && rep->str ? rep->str : "");
    freeReplyObject(rep);
}

#define NCLUSTER 6 /* 3 primaries, 3 replicas */

/* The index (0..NCLUSTER-1) of the server that serves slot, asked of a
 * server that is alive. */
static int slot_owner(int slot)
{
    int ask = 0;
    while (ask < NCLUSTER - 1 && srv_pid[ask] <= 0)
        ask++;
    redisReply *rep = sync_cmd(srv_port[ask], "CLUSTER SLOTS");
    int owner = -1;
    for (size_t k = 0; rep && k < rep->elements; k++) {
        redisReply *e = rep->element[k];
        if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
            for (int i = 0; i < NCLUSTER; i++)
                if (srv_port[i] == e->element[2]->element[1]->integer)
                    owner = i;
    }
    freeReplyObject(rep);
    return owner;
}

static void test_cluster(void)
{
    char create[512] = "redis-cli --cluster create";
    for (int i = 0; i < NCLUSTER; i++) {
        char conf[160];
        snprintf(conf, sizeof conf,
                 "--cluster-enabled yes --cluster-config-file %s/nodes%d.conf "
                 "--cluster-node-timeout 1000 --cluster-replica-validity-factor 0",
                 tmpdir, i);
        int port = start_server(i, 0, conf);
        CHECK(port > 0);
        size_t l = strlen(create);
        snprintf(create + l, sizeof create - l, " 127.0.0.1:%d", port);
    }
    strcat(create, " --cluster-replicas 1 --cluster-yes >/dev/null 2>&1");
    CHECK_EQ_INT(system(create), 0);
    int ok = 0;
    for (int k = 0; k < 200 && !ok; k++) {
        ok = 1;
        for (int i = 0; i < NCLUSTER; i++)
            ok = ok && cluster_ok(srv_port[i]);
        if (!ok)
            usleep(50000);
    }
    CHECK(ok);

    /* the slot function agrees with Redis's own */
    int agree = 0;
    for (int i = 0; i < 64; i++) {
        char key[64];
        int kl = snprintf(key, sizeof key, i % 4 ? "llmc:e:%d:%x" : "x{tag%d}y%d", i, i * 977);
        redisReply *rep = sync_cmd(srv_port[0], "CLUSTER KEYSLOT %b", key, (size_t)kl);
        agree += rep && rep->integer == (long long)redis_key_slot(key, (size_t)kl);
        freeReplyObject(rep);
    }
    CHECK_EQ_INT(agree, 64);

    /* one seed is enough; keys spread over all three primaries */
    char url[128];
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d", srv_port[1]);
    redis_client *r = client(url, NULL, 1000);
    CHECK(r != NULL);
    result res;
    int wrong = 0, errs = 0;
    for (int i = 0; i < 300; i++) {
        char line[96];
        snprintf(line, sizeof line, "SET key:%d value:%d", i, i);
        if (cmd(r, &res, -1, line) || res.status)
            errs++;
    }
    CHECK_EQ_INT(errs, 0);
    CHECK_EQ_INT(redis_primaries(r), 3);
    CHECK(redis_ready(r));
    int primaries = 0;
    for (int i = 0; i < NCLUSTER; i++) {
        redisReply *role = sync_cmd(srv_port[i], "ROLE");
        if (role && role->elements && !strcmp(role->element[0]->str, "master")) {
            primaries++;
            redisReply *rep = sync_cmd(srv_port[i], "DBSIZE");
            CHECK(rep && rep->integer > 50);
            freeReplyObject(rep);
        }
        freeReplyObject(role);
    }
    CHECK_EQ_INT(primaries, 3);
    for (int i = 0; i < 300; i++) {
        char line[64], want[32];
        snprintf(line, sizeof line, "GET key:%d", i);
        snprintf(want, sizeof want, "value:%d", i);
        if (cmd(r, &res, -1, line) || res.status)
            errs++;
        else if (strcmp(res.str, want))
            wrong++;
    }
    CHECK_EQ_INT(errs, 0);
    CHECK_EQ_INT(wrong, 0);

    /* migrate the slot of {mig} from its owner A to B by hand, as
     * redis-cli --cluster reshard does, while the client holds the old map */
    int slot = (int)redis_key_slot("{mig}", 5);
    int a = slot_owner(slot), b = slot_owner((int)redis_key_slot("key:0", 5));
    for (int i = 1; b == a && i < 300; i++) {
        char k[32];
        b = slot_owner((int)redis_key_slot(k, (size_t)snprintf(k, sizeof k, "key:%d", i)));
    }
    CHECK(a >= 0 && b >= 0 && a != b);
    CHECK_EQ_INT(cmd(r, &res, -1, "SET {mig}1 one"), 0);
    CHECK_EQ_INT(res.status, 0);
    char ida[64], idb[64];
    node_id(srv_port[a], ida);
    node_id(srv_port[b], idb);
    freeReplyObject(sync_cmd(srv_port[b], "CLUSTER SETSLOT %d IMPORTING %s", slot, ida));
    freeReplyObject(sync_cmd(srv_port[a], "CLUSTER SETSLOT %d MIGRATING %s", slot, idb));
    /* during: an existing key is still served by A, a new one goes to B by ASK */
    CHECK_EQ_INT(cmd(r, &res, -1, "GET {mig}1"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "one"));
    CHECK_EQ_INT(cmd(r, &res, -1, "SET {mig}2 two"), 0);
    CHECK_EQ_INT(res.status, 0);
    redis_stats st;
    redis_get_stats(r, &st);
    CHECK(st.ask >= 1);
    redisReply *rep = sync_cmd(srv_port[a], "MIGRATE 127.0.0.1 %d {mig}1 0 5000", srv_port[b]);
    CHECK(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    for (int i = 0; i < NCLUSTER; i++) /* replicas refuse it: they learn by gossip */
        freeReplyObject(sync_cmd(srv_port[i], "CLUSTER SETSLOT %d NODE %s", slot, idb));
    /* after: MOVED, followed, and the slot map refreshed */
    CHECK_EQ_INT(cmd(r, &res, -1, "GET {mig}1"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "one"));
    CHECK_EQ_INT(cmd(r, &res, -1, "GET {mig}2"), 0);
    CHECK(res.status == 0 && !strcmp(res.str, "two"));
    redis_get_stats(r, &st);
    CHECK(st.moved >= 1);
    run_until(NULL, 150);
    redis_get_stats(r, &st);
    CHECK(st.slot_refreshes >= 2);
    uint64_t moved = st.moved;
    CHECK_EQ_INT(cmd(r, &res, -1, "GET {mig}2"), 0);
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.moved, moved); /* the refreshed map routes it directly */

    /* a primary killed while requests run: its replica takes over after
     * cluster-node-timeout; meanwhile its keys fail (counted, the caller
     * would go upstream), no answer is ever wrong, and then every key is
     * served again through the refreshed slot map */
    int dead = slot_owner((int)redis_key_slot("key:0", 5));
    CHECK(dead >= 0);
    redisReply *w = sync_cmd(srv_port[dead], "WAIT 1 5000"); /* the replica has it all */
    CHECK(w && w->integer == 1);
    freeReplyObject(w);
    stop_server(dead);
    double t0 = now_ms(), back = -1;
    int fails = 0, rounds = 0;
    while (now_ms() - t0 < 20000) {
        int round_fails = 0;
        for (int i = 0; i < 60; i++) {
            char line[64], want[32];
            snprintf(line, sizeof line, "GET key:%d", i);
            snprintf(want, sizeof want, "value:%d", i);
            if (cmd(r, &res, 300, line) || res.status)
                round_fails++;
            else if (strcmp(res.str, want))
                wrong++;
        }
        rounds++;
        fails += round_fails;
        if (!round_fails) {
            back = now_ms() - t0;
            break;
        }
        run_until(NULL, 50);
    }
    CHECK(back >= 0);
    CHECK(fails > 0);
    CHECK_EQ_INT(wrong, 0);
    fprintf(stderr, "  failover: all keys served again after %.0f ms (%d failed reads)\n", back,
            fails);
    redis_free(r);
    for (int i = 0; i < NCLUSTER; i++)
        stop_server(i);
}

int main(void)
{
    if (redis_srv_init())
        return 1;
    base = event_base_new();
    double t0 = now_ms();
    test_url();
    test_slot();
    test_single();
    test_auth();
    test_cluster();
    event_base_free(base);
    fprintf(stderr, "  test_redis took %.1f s\n", (now_ms() - t0) / 1e3);
    return UNIT_DONE();
}
