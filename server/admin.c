/*
 * admin.c — /stats, /metrics and /admin/..., behind the admin token.
 *
 *   GET    /stats                       JSON: counters, hit rate, latencies, store
 *   GET    /metrics                     Prometheus text exposition
 *   DELETE /admin/keys/{hex key}        delete one entry (key from X-LLM-Cache-Key)
 *   POST   /admin/flush?namespace=NAME  delete a namespace's entries
 *   POST   /admin/flush?all=1           delete everything
 *
 * The token is accepted as "Authorization: Bearer TOKEN" or
 * "X-LLM-Cache-Admin-Token: TOKEN", compared in constant time.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "server.h"

static int admin_authorized(srv *s, struct evhttp_request *req)
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    const char *tok = evhttp_find_header(ih, "X-LLM-Cache-Admin-Token");
    const char *auth = evhttp_find_header(ih, "Authorization");
    if (!tok && auth && !strncasecmp(auth, "Bearer ", 7))
        tok = auth + 7;
    const char *want = s->cfg.admin_token;
    if (!tok || !want)
        return 0;
    /* Compare digests, not the strings: equal-length inputs to
     * CRYPTO_memcmp whatever the token sent, so the time taken says
     * nothing of the admin token's length or contents. */
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, strlen(tok), a);
    SHA256((const unsigned char *)want, strlen(want), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

static void admin_reply(srv *s, struct evhttp_request *req, const char *ctype, char *buf,
                        size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, buf, len);
    reply_common_headers(s, req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* The shared store's part of /stats: backend, round trips, errors,
 * reconnects, stream lag. The URL is shown with its password masked. */
static void admin_redis_json(llmc_redis_backend *rb, FILE *f)
{
    llmc_redis_backend_stats r;
    llmc_redis_backend_get_stats(rb, &r);
    fprintf(f,
            ",\"store_backend\":{\"kind\":\"%s\",\"url\":\"%s\",\"connections\":%u,"
            "\"connections_up\":%u,\"fetches\":%llu,\"fetch_hits\":%llu,\"fetch_misses\":%llu,"
            "\"unavailable\":%llu,\"bad_values\":%llu,\"puts\":%llu,\"put_errors\":%llu,"
            "\"deletes\":%llu,\"flushes\":%llu,\"loaded\":%llu,\"rtt_p50_ms\":%.3f,"
            "\"rtt_p99_ms\":%.3f,\"errors\":%llu,\"timeouts\":%llu,\"reconnects\":%llu,"
            "\"auth_failures\":%llu,\"stream_out\":%llu,\"stream_in\":%llu,"
            "\"stream_errors\":%llu,\"stream_lag_ms\":%.3f,\"stream_lag_ms_max\":%.3f,"
            "\"redirects\":%llu}",
            r.cluster ? "redis-cluster" : "redis", r.url, r.connections, r.connections_up,
            (unsigned long long)r.fetches, (unsigned long long)r.fetch_hits,
            (unsigned long long)r.fetch_misses, (unsigned long long)r.unavailable,
            (unsigned long long)r.bad_values, (unsigned long long)r.puts,
            (unsigned long long)r.put_errors, (unsigned long long)r.deletes,
            (unsigned long long)r.flushes, (unsigned long long)r.loaded, r.rtt_p50_ms, r.rtt_p99_ms,
            (unsigned long long)r.errors, (unsigned long long)r.timeouts,
            (unsigned long long)r.reconnects, (unsigned long long)r.auth_failures,
            (unsigned long long)r.stream_out, (unsigned long long)r.stream_in,
            (unsigned long long)r.stream_errors, r.stream_lag_ms, r.stream_lag_ms_max,
            (unsigned long long)r.redirects);
}

/* ,"languages":{...}: which language each text feature serves, read from
 * the word lists (llmc_policy_rule_langs, llmc_guard_langs); the features
 * that read no word list serve any language. */
static void admin_langs_list(FILE *f, const char **l, int n)
{
    fputc('[', f);
    for (int i = 0; i < n && i < 16; i++)
        fprintf(f, "%s\"%s\"", i ? "," : "", l[i]);
    fputc(']', f);
}

static void admin_languages(FILE *f)
{
    const char *l[16];
    fputs(",\"languages\":{\"policy\":{", f);
    for (int r = 0; llmc_policy_rule_name(r); r++) {
        int n = llmc_policy_rule_langs(llmc_policy_rule_name(r), l, 16);
        fprintf(f, "%s\"%s\":", r ? "," : "", llmc_policy_rule_name(r));
        admin_langs_list(f, l, n < 0 ? 0 : n);
    }
    fputs("},\"guard\":", f);
    int n = llmc_guard_langs(l, 16);
    admin_langs_list(f, l, n < 0 ? 0 : n);
    fputs(",\"normalisation\":\"any\",\"cosine\":\"any\",\"partitioning\":\"any\","
          "\"numbers\":\"any\"}",
          f);
}

static void admin_stats(srv *s, struct evhttp_request *req)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    llmc_cache_stats cst;
    llmc_cache_get_stats(s->cache, &cst);
    llmc_store_stats st = cst.store;
    fprintf(f, "{\"version\":\"%s\",\"uptime_seconds\":%lld,\"demo_upstream\":%s,", LLMC_VERSION,
            (long long)(time(NULL) - s->started), s->demo ? "true" : "false");
    llmc_metrics_write_json(s->metrics, f);
    fprintf(f,
            ",\"store\":{\"entries\":%zu,\"bytes\":%zu,\"max_bytes\":%zu,\"inserts\":%llu,"
            "\"replaces\":%llu,\"evictions\":%llu,\"expirations\":%llu,\"deletes\":%llu}",
            st.entries, st.bytes, st.max_bytes, (unsigned long long)st.inserts,
            (unsigned long long)st.replaces, (unsigned long long)st.evictions,
            (unsigned long long)st.expirations, (unsigned long long)st.deletes);
    fprintf(f,
            ",\"requests\":%llu,\"upstream_calls\":%llu,\"coalesced\":%llu,"
            "\"stored\":%llu,\"not_stored\":%llu",
            (unsigned long long)atomic_load(&s->requests),
            (unsigned long long)atomic_load(&s->upstream_calls),
            (unsigned long long)atomic_load(&s->coalesced), (unsigned long long)cst.puts,
            (unsigned long long)cst.put_refused);
    if (pool_count(s->upstreams)) {
        fputc(',', f);
        pool_write_json(s->upstreams, f);
    }
    sem_write_json(s, f);
    admin_languages(f);
    verify_write_json(s, f);
    fprintf(f, ",\"store_unavailable\":%llu",
            (unsigned long long)atomic_load(&s->store_unavailable));
    if (s->redis) {
        admin_redis_json(s->redis, f);
        fprintf(f,
                ",\"fleet_coalescing\":{\"enabled\":%s,\"lock_ttl_ms\":%lld,\"locks_taken\":%llu,"
                "\"waits\":%llu,\"waits_served\":%llu,\"waits_timed_out\":%llu}",
                s->cfg.store_coalesce ? "true" : "false", s->cfg.store_lock_ttl_ms,
                (unsigned long long)atomic_load(&s->fleet_locks),
                (unsigned long long)atomic_load(&s->fleet_waits),
                (unsigned long long)atomic_load(&s->fleet_waits_served),
                (unsigned long long)atomic_load(&s->fleet_waits_timed_out));
    }
    if (cst.has_persist) {
        llmc_persist_stats ps = cst.persist;
        fprintf(f,
                ",\"persist\":{\"puts\":%llu,\"deletes\":%llu,\"commits\":%llu,"
                "\"errors\":%llu,\"queued\":%zu,\"loaded_at_start\":%llu,"
                "\"retained\":%zu,\"retained_bytes\":%zu,\"lost\":%llu,"
                "\"vacuumed_pages\":%llu}",
                (unsigned long long)ps.puts, (unsigned long long)ps.deletes,
                (unsigned long long)ps.commits, (unsigned long long)ps.errors, ps.queued,
                (unsigned long long)ps.loaded, ps.retained, ps.retained_bytes,
                (unsigned long long)ps.lost, (unsigned long long)ps.vacuumed_pages);
    }
    fputs("}\n", f);
    fclose(f);
    admin_reply(s, req, "application/json", buf, len);
    free(buf);
}

static void admin_metrics(srv *s, struct evhttp_request *req)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    llmc_metrics_write_prometheus(s->metrics, f);
    llmc_cache_stats cst;
    llmc_cache_get_stats(s->cache, &cst);
    llmc_store_stats st = cst.store;
    fprintf(
        f,
        "# HELP llmcached_entries Entries in the exact tier.\n# TYPE llmcached_entries gauge\n"
        "llmcached_entries %zu\n"
        "# HELP llmcached_bytes Bytes charged to the memory budget.\n# TYPE llmcached_bytes gauge\n"
        "llmcached_bytes %zu\n"
        "# HELP llmcached_max_bytes The memory budget.\n# TYPE llmcached_max_bytes gauge\n"
        "llmcached_max_bytes %zu\n"
        "# HELP llmcached_evictions_total Entries evicted for room.\n# TYPE "
        "llmcached_evictions_total counter\n"
        "llmcached_evictions_total %llu\n"
        "# HELP llmcached_expirations_total Entries removed at their TTL.\n# TYPE "
        "llmcached_expirations_total counter\n"
        "llmcached_expirations_total %llu\n"
        "# HELP llmcached_upstream_calls_total Calls made upstream.\n# TYPE "
        "llmcached_upstream_calls_total counter\n"
        "llmcached_upstream_calls_total %llu\n"
        "# HELP llmcached_coalesced_total Requests that joined an identical call in flight.\n# "
        "TYPE llmcached_coalesced_total counter\n"
        "llmcached_coalesced_total %llu\n",
        st.entries, st.bytes, st.max_bytes, (unsigned long long)st.evictions,
        (unsigned long long)st.expirations, (unsigned long long)atomic_load(&s->upstream_calls),
        (unsigned long long)atomic_load(&s->coalesced));
    pool_write_prometheus(s->upstreams, f);
    verify_write_prometheus(s, f);
    sem_write_prometheus(s, f);
    if (cst.has_persist) { /* for the alert on persistence errors (contrib/prometheus) */
        llmc_persist_stats ps = cst.persist;
        fprintf(f,
                "# HELP llmcached_persist_errors_total SQLite writes that failed.\n"
                "# TYPE llmcached_persist_errors_total counter\n"
                "llmcached_persist_errors_total %llu\n"
                "# HELP llmcached_persist_queued Changes waiting for the writer.\n"
                "# TYPE llmcached_persist_queued gauge\n"
                "llmcached_persist_queued %zu\n",
                (unsigned long long)ps.errors, ps.queued);
    }
    if (s->redis) /* the shared store could not answer: requests went upstream */
        fprintf(f,
                "# HELP llmcached_store_unavailable_total Lookups the shared store (Redis) "
                "could not answer in time.\n"
                "# TYPE llmcached_store_unavailable_total counter\n"
                "llmcached_store_unavailable_total %llu\n"
                "# HELP llmcached_fleet_locks_total Coalescing locks taken in the shared store "
                "before a miss went upstream.\n"
                "# TYPE llmcached_fleet_locks_total counter\n"
                "llmcached_fleet_locks_total %llu\n"
                "# HELP llmcached_fleet_waits_total Misses that waited for another instance's "
                "answer.\n"
                "# TYPE llmcached_fleet_waits_total counter\n"
                "llmcached_fleet_waits_total %llu\n"
                "# HELP llmcached_fleet_waits_served_total Waits answered with the answer "
                "another instance stored.\n"
                "# TYPE llmcached_fleet_waits_served_total counter\n"
                "llmcached_fleet_waits_served_total %llu\n"
                "# HELP llmcached_fleet_waits_timed_out_total Waits that reached "
                "--store-lock-ttl and went upstream.\n"
                "# TYPE llmcached_fleet_waits_timed_out_total counter\n"
                "llmcached_fleet_waits_timed_out_total %llu\n",
                (unsigned long long)atomic_load(&s->store_unavailable),
                (unsigned long long)atomic_load(&s->fleet_locks),
                (unsigned long long)atomic_load(&s->fleet_waits),
                (unsigned long long)atomic_load(&s->fleet_waits_served),
                (unsigned long long)atomic_load(&s->fleet_waits_timed_out));
    fclose(f);
    admin_reply(s, req, "text/plain; version=0.0.4", buf, len);
    free(buf);
}

/* The /dashboard page and its script (server/dashboard/, compiled in by
 * mk/dashboard.mk). Static and open: the page asks for the admin token and
 * sends it with each /stats it reads. */
extern const char dashboard_html[], dashboard_js[];
extern const unsigned long dashboard_html_len, dashboard_js_len;

int admin_static(srv *s, struct evhttp_request *req, const char *path)
{
    const char *body, *ctype;
    size_t len;
    if (!strcmp(path, "/dashboard") || !strcmp(path, "/dashboard/")) {
        body = dashboard_html;
        len = dashboard_html_len;
        ctype = "text/html; charset=utf-8";
    } else if (!strcmp(path, "/dashboard.js")) {
        body = dashboard_js;
        len = dashboard_js_len;
        ctype = "text/javascript; charset=utf-8";
    } else {
        return 0;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        reply_common_headers(s, req);
        reply_error(req, 405, "method_not_allowed", "use GET");
        return 1;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_reference(b, body, len, NULL, NULL);
    reply_common_headers(s, req);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", ctype);
    evhttp_add_header(oh, "Cache-Control", "no-cache");
    evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
    return 1;
}

void admin_handle(srv *s, struct evhttp_request *req, const char *path)
{
    if (!admin_authorized(s, req)) {
        reply_common_headers(s, req);
        reply_error(req, 401, "unauthorized",
                    "admin endpoints need the admin token (Authorization: Bearer TOKEN)");
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!strcmp(path, "/stats") || !strcmp(path, "/metrics")) {
        if (m != EVHTTP_REQ_GET) {
            reply_error(req, 405, "method_not_allowed", "use GET");
            return;
        }
        if (path[1] == 's')
            admin_stats(s, req);
        else
            admin_metrics(s, req);
        return;
    }
    if (!strncmp(path, "/admin/keys/", 12)) {
        if (m != EVHTTP_REQ_DELETE) {
            reply_error(req, 405, "method_not_allowed", "use DELETE");
            return;
        }
        uint8_t key[LLMC_KEY_LEN];
        if (llmc_key_parse(path + 12, key)) {
            reply_error(req, 400, "invalid_request_error",
                        "a key is 64 hex digits (the X-LLM-Cache-Key header)");
            return;
        }
        if (llmc_cache_delete(s->cache, key)) {
            reply_error(req, 404, "not_found", "no entry with that key");
            return;
        }
        char msg[] = "{\"deleted\":1}\n";
        admin_reply(s, req, "application/json", msg, sizeof msg - 1);
        return;
    }
    if (!strcmp(path, "/admin/flush")) {
        if (m != EVHTTP_REQ_POST) {
            reply_error(req, 405, "method_not_allowed", "use POST");
            return;
        }
        struct evkeyvalq q;
        const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        memset(&q, 0, sizeof q);
        if (!qs || evhttp_parse_query_str(qs, &q)) {
            reply_error(req, 400, "invalid_request_error",
                        "say what to flush: ?namespace=NAME or ?all=1");
            return;
        }
        const char *ns = evhttp_find_header(&q, "namespace");
        const char *all = evhttp_find_header(&q, "all");
        size_t n;
        if (ns && *ns)
            n = llmc_cache_flush(s->cache, llmc_namespace_hash(ns), 0);
        else if (all && !strcmp(all, "1"))
            n = llmc_cache_flush(s->cache, 0, 1);
        else {
            evhttp_clear_headers(&q);
            reply_error(req, 400, "invalid_request_error",
                        "say what to flush: ?namespace=NAME or ?all=1");
            return;
        }
        evhttp_clear_headers(&q);
        char msg[64];
        int ml = snprintf(msg, sizeof msg, "{\"deleted\":%zu}\n", n);
        admin_reply(s, req, "application/json", msg, (size_t)ml);
        return;
    }
    reply_error(req, 404, "not_found", "no such admin endpoint");
}
