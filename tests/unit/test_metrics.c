/* test_metrics.c — counters, quantiles, exposition formats. */
#include <jansson.h>
#include <math.h>

#include "llmcache.h"
#include "unit.h"

static char *render(llmc_metrics *m, int json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (json) {
        fputc('{', f);
        llmc_metrics_write_json(m, f);
        fputc('}', f);
    } else {
        llmc_metrics_write_prometheus(m, f);
    }
    fclose(f);
    return buf;
}

int main(void)
{
    llmc_metrics *m = llmc_metrics_new(NULL);
    CHECK(m != NULL);
    CHECK(isnan(llmc_metrics_quantile(m, LLMC_HIST_HIT, 0.5)));
    llmc_metrics_set_price(m, "gpt-x", 2.0, 8.0);
    for (int i = 0; i < 3; i++)
        llmc_metrics_count(m, "gpt-x", LLMC_OUT_HIT_EXACT);
    llmc_metrics_count(m, "gpt-x", LLMC_OUT_MISS);
    llmc_metrics_count(m, "we\"ird", LLMC_OUT_BYPASS);
    llmc_metrics_saved(m, "gpt-x", 1000, 500); /* 0.002 + 0.004 */
    for (int i = 0; i < 99; i++)
        llmc_metrics_observe(m, LLMC_HIST_HIT, 0.0002);
    llmc_metrics_observe(m, LLMC_HIST_HIT, 3.0);
    double p50 = llmc_metrics_quantile(m, LLMC_HIST_HIT, 0.5);
    double p99 = llmc_metrics_quantile(m, LLMC_HIST_HIT, 0.99);
    double p100 = llmc_metrics_quantile(m, LLMC_HIST_HIT, 1.0);
    CHECK(p50 > 0.0001 && p50 <= 0.00025);
    CHECK(p99 > 0.0001 && p99 <= 0.00025);
    CHECK(p100 > 2.5 && p100 <= 5);
    llmc_metrics_upstream_error(m, "timeout");
    llmc_metrics_upstream_error(m, "nonsense");

    char *prom = render(m, 0);
    CHECK(strstr(prom, "llmcached_lookups_total{model=\"gpt-x\",outcome=\"hit_exact\"} 3\n"));
    CHECK(strstr(prom, "llmcached_lookups_total{model=\"gpt-x\",outcome=\"miss\"} 1\n"));
    CHECK(strstr(prom, "model=\"we\\\"ird\",outcome=\"bypass\"} 1\n"));
    CHECK(strstr(prom, "llmcached_cost_saved_total{model=\"gpt-x\"} 0.006000\n"));
    CHECK(strstr(prom, "llmcached_hit_latency_seconds_bucket{le=\"+Inf\"} 100\n"));
    CHECK(strstr(prom, "llmcached_hit_latency_seconds_count 100\n"));
    CHECK(strstr(prom, "llmcached_upstream_errors_total{kind=\"timeout\"} 1\n"));
    CHECK(strstr(prom, "llmcached_upstream_errors_total{kind=\"other\"} 1\n"));
    free(prom);

    char *js = render(m, 1);
    json_error_t je;
    json_t *o = json_loads(js, 0, &je);
    CHECK(o != NULL);
    CHECK(json_integer_value(json_object_get(o, "lookups")) == 5);
    CHECK(fabs(json_real_value(json_object_get(o, "hit_rate")) - 0.6) < 1e-9);
    json_t *gm = json_object_get(json_object_get(o, "models"), "gpt-x");
    CHECK(json_integer_value(json_object_get(gm, "tokens_saved_prompt")) == 1000);
    CHECK(json_object_get(json_object_get(o, "models"), "we\"ird") != NULL);
    json_decref(o);
    free(js);

    /* More models than slots: the rest are counted as "other". */
    for (int i = 0; i < LLMC_METRICS_MAX_MODELS + 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", i);
        llmc_metrics_count(m, name, LLMC_OUT_MISS);
    }
    prom = render(m, 0);
    CHECK(strstr(prom, "llmcached_lookups_total{model=\"other\",outcome=\"miss\"}") != NULL);
    free(prom);
    llmc_metrics_free(m);
    /* Reading another server's exposition: every label set summed, other
     * metrics with the same prefix, comments and junk ignored. */
    const char *text = "# HELP vllm:prefix_cache_hits_total Hits.\n"
                       "# TYPE vllm:prefix_cache_hits_total counter\n"
                       "vllm:prefix_cache_hits_total{model=\"a\"} 10\n"
                       "vllm:prefix_cache_hits_total{model=\"b\"} 2.5\n"
                       "vllm:prefix_cache_hits_total_extra 1000\n"
                       "vllm:prefix_cache_queries_total 40\n"
                       "vllm:prefix_cache_hits_total{broken\n"
                       "vllm:prefix_cache_hits_total nope\n";
    CHECK(fabs(llmc_prometheus_sum(text, "vllm:prefix_cache_hits_total") - 12.5) < 1e-12);
    CHECK(fabs(llmc_prometheus_sum(text, "vllm:prefix_cache_queries_total") - 40) < 1e-12);
    CHECK(isnan(llmc_prometheus_sum(text, "vllm:num_requests_running")));
    CHECK(isnan(llmc_prometheus_sum(NULL, "x")));
    CHECK(isnan(llmc_prometheus_sum(text, "")));
    return UNIT_DONE();
}
