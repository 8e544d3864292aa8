/*
 * metrics.c — what the cache is worth, counted.
 *
 * A fixed table of model slots (claimed once by name with a CAS, never
 * freed) holds per-outcome counters and tokens/money saved; four global
 * histograms with fixed log-spaced buckets hold latencies. Everything is an
 * atomic so request threads never take a lock to count. Quantiles come from
 * the buckets by linear interpolation: exact enough for p50/p99 at these
 * resolutions (about 3 buckets per decade from 10 µs to 2 min).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "llmcache.h"

static const double metrics_bounds[] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,      0.25,    0.5,    1,       2.5,    5,     10,     30,    60,   120};
#define METRICS_NB (sizeof metrics_bounds / sizeof metrics_bounds[0])

static const char *const metrics_hist_name[LLMC_HIST__COUNT] = {
    "llmcached_hit_latency_seconds", "llmcached_upstream_latency_seconds",
    "llmcached_miss_latency_seconds", "llmcached_semantic_lookup_seconds"};
static const char *const metrics_hist_help[LLMC_HIST__COUNT] = {
    "Time to serve a cache hit", "Upstream call time, request sent to last byte",
    "A miss end to end as the client sees it", "Semantic lookup: embed, search, decide"};
static const char *const metrics_out_name[LLMC_OUT__COUNT] = {"hit_exact", "hit_semantic", "miss",
                                                              "bypass"};

typedef struct {
    _Atomic(uint64_t) buckets[METRICS_NB + 1];
    _Atomic(uint64_t) count;
    _Atomic(uint64_t) sum_ns;
} metrics_hist;

typedef struct {
    _Atomic(int) state; /* 0 free, 1 being claimed, 2 ready */
    char name[128];
    _Atomic(uint64_t) out[LLMC_OUT__COUNT];
    _Atomic(uint64_t) saved_prompt, saved_completion;
    _Atomic(uint64_t) saved_micro; /* money saved, in millionths */
    double price_in, price_out;    /* per million tokens; set before traffic */
} metrics_model;

#define METRICS_NERR 6
static const char *const metrics_err_name[METRICS_NERR] = {"connect",  "timeout", "status",
                                                           "protocol", "client",  "other"};

struct llmc_metrics {
    metrics_model models[LLMC_METRICS_MAX_MODELS + 1]; /* last: "other" */
    metrics_hist hist[LLMC_HIST__COUNT];
    _Atomic(uint64_t) errors[METRICS_NERR];
};

llmc_metrics *llmc_metrics_new(int *err)
{
    llmc_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    strcpy(m->models[LLMC_METRICS_MAX_MODELS].name, "other");
    atomic_store(&m->models[LLMC_METRICS_MAX_MODELS].state, 2);
    return m;
}

void llmc_metrics_free(llmc_metrics *m)
{
    free(m);
}

static metrics_model *metrics_slot(llmc_metrics *m, const char *model)
{
    if (!model || !*model)
        model = "unknown";
    size_t len = strlen(model);
    if (len >= sizeof m->models[0].name)
        len = sizeof m->models[0].name - 1;
    for (int i = 0; i < LLMC_METRICS_MAX_MODELS; i++) {
        metrics_model *s = &m->models[i];
        int st = atomic_load(&s->state);
        if (st == 0) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&s->state, &expect, 1)) {
                memcpy(s->name, model, len);
                s->name[len] = 0;
                atomic_store(&s->state, 2);
                return s;
            }
            st = atomic_load(&s->state);
        }
        while (st == 1)
            st = atomic_load(&s->state); /* another thread is naming it */
        if (strncmp(s->name, model, len) == 0 && s->name[len] == 0)
            return s;
    }
    return &m->models[LLMC_METRICS_MAX_MODELS];
}

int llmc_metrics_set_price(llmc_metrics *m, const char *model, double in_per_m, double out_per_m)
{
    if (!model || in_per_m < 0 || out_per_m < 0)
        return LLMC_EINVAL;
    metrics_model *s = metrics_slot(m, model);
    s->price_in = in_per_m;
    s->price_out = out_per_m;
    return 0;
}

void llmc_metrics_count(llmc_metrics *m, const char *model, llmc_outcome o)
{
    if ((unsigned)o < LLMC_OUT__COUNT)
        atomic_fetch_add(&metrics_slot(m, model)->out[o], 1);
}

void llmc_metrics_saved(llmc_metrics *m, const char *model, uint32_t pt, uint32_t ct)
{
    metrics_model *s = metrics_slot(m, model);
    atomic_fetch_add(&s->saved_prompt, pt);
    atomic_fetch_add(&s->saved_completion, ct);
    double money = (pt * s->price_in + ct * s->price_out) / 1e6;
    atomic_fetch_add(&s->saved_micro, (uint64_t)llround(money * 1e6));
}

void llmc_metrics_observe(llmc_metrics *m, llmc_hist h, double sec)
{
    if ((unsigned)h >= LLMC_HIST__COUNT || !(sec >= 0))
        return;
    metrics_hist *hh = &m->hist[h];
    size_t i = 0;
    while (i < METRICS_NB && sec > metrics_bounds[i])
        i++;
    atomic_fetch_add(&hh->buckets[i], 1);
    atomic_fetch_add(&hh->count, 1);
    atomic_fetch_add(&hh->sum_ns, (uint64_t)(sec * 1e9));
}

void llmc_metrics_upstream_error(llmc_metrics *m, const char *kind)
{
    int i;
    for (i = 0; i < METRICS_NERR - 1; i++)
        if (kind && strcmp(kind, metrics_err_name[i]) == 0)
            break;
    atomic_fetch_add(&m->errors[i], 1);
}

double llmc_metrics_quantile(llmc_metrics *m, llmc_hist h, double q)
{
    metrics_hist *hh = &m->hist[h];
    uint64_t b[METRICS_NB + 1], total = 0;
    for (size_t i = 0; i <= METRICS_NB; i++)
        total += b[i] = atomic_load(&hh->buckets[i]);
    if (!total)
        return NAN;
    double rank = q * (double)total, cum = 0;
    for (size_t i = 0; i <= METRICS_NB; i++) {
        if (cum + (double)b[i] >= rank && b[i]) {
            double lo = i ? metrics_bounds[i - 1] : 0;
            double hi = i < METRICS_NB ? metrics_bounds[i] : metrics_bounds[METRICS_NB - 1] * 2;
            return lo + (hi - lo) * ((rank - cum) / (double)b[i]);
        }
        cum += (double)b[i];
    }
    return metrics_bounds[METRICS_NB - 1];
}

/* Prometheus label values: escape backslash, quote and newline. */
static void metrics_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void llmc_metrics_write_prometheus(llmc_metrics *m, FILE *f)
{
    fputs("# HELP llmcached_lookups_total Cache lookups by tier outcome and model.\n"
          "# TYPE llmcached_lookups_total counter\n",
          f);
    for (int i = 0; i <= LLMC_METRICS_MAX_MODELS; i++) {
        metrics_model *s = &m->models[i];
        if (atomic_load(&s->state) != 2)
            continue;
        for (int o = 0; o < LLMC_OUT__COUNT; o++) {
            uint64_t v = atomic_load(&s->out[o]);
            if (!v && i == LLMC_METRICS_MAX_MODELS)
                continue;
            fputs("llmcached_lookups_total{model=\"", f);
            metrics_label(f, s->name);
            fprintf(f, "\",outcome=\"%s\"} %llu\n", metrics_out_name[o], (unsigned long long)v);
        }
    }
    fputs("# HELP llmcached_tokens_saved_total Tokens not sent upstream thanks to hits.\n"
          "# TYPE llmcached_tokens_saved_total counter\n",
          f);
    for (int i = 0; i <= LLMC_METRICS_MAX_MODELS; i++) {
        metrics_model *s = &m->models[i];
        if (atomic_load(&s->state) != 2)
            continue;
        fputs("llmcached_tokens_saved_total{model=\"", f);
        metrics_label(f, s->name);
        fprintf(f, "\",kind=\"prompt\"} %llu\n", (unsigned long long)atomic_load(&s->saved_prompt));
        fputs("llmcached_tokens_saved_total{model=\"", f);
        metrics_label(f, s->name);
        fprintf(f, "\",kind=\"completion\"} %llu\n",
                (unsigned long long)atomic_load(&s->saved_completion));
    }
    fputs("# HELP llmcached_cost_saved_total Money saved at the configured prices.\n"
          "# TYPE llmcached_cost_saved_total counter\n",
          f);
    for (int i = 0; i <= LLMC_METRICS_MAX_MODELS; i++) {
        metrics_model *s = &m->models[i];
        if (atomic_load(&s->state) != 2)
            continue;
        fputs("llmcached_cost_saved_total{model=\"", f);
        metrics_label(f, s->name);
        fprintf(f, "\"} %.6f\n", (double)atomic_load(&s->saved_micro) / 1e6);
    }
    fputs("# HELP llmcached_upstream_errors_total Upstream failures by kind.\n"
          "# TYPE llmcached_upstream_errors_total counter\n",
          f);
    for (int i = 0; i < METRICS_NERR; i++)
        fprintf(f, "llmcached_upstream_errors_total{kind=\"%s\"} %llu\n", metrics_err_name[i],
                (unsigned long long)atomic_load(&m->errors[i]));
    for (int h = 0; h < LLMC_HIST__COUNT; h++) {
        metrics_hist *hh = &m->hist[h];
        fprintf(f, "# HELP %s %s.\n# TYPE %s histogram\n", metrics_hist_name[h],
                metrics_hist_help[h], metrics_hist_name[h]);
        uint64_t cum = 0;
        for (size_t i = 0; i < METRICS_NB; i++) {
            cum += atomic_load(&hh->buckets[i]);
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", metrics_hist_name[h], metrics_bounds[i],
                    (unsigned long long)cum);
        }
        cum += atomic_load(&hh->buckets[METRICS_NB]);
        fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n",
                metrics_hist_name[h], (unsigned long long)cum, metrics_hist_name[h],
                (double)atomic_load(&hh->sum_ns) / 1e9, metrics_hist_name[h],
                (unsigned long long)atomic_load(&hh->count));
    }
}

static void metrics_json_num(FILE *f, double v)
{
    if (isnan(v))
        fputs("null", f);
    else
        fprintf(f, "%.9g", v);
}

void llmc_metrics_write_json(llmc_metrics *m, FILE *f)
{
    uint64_t tot[LLMC_OUT__COUNT] = {0};
    fputs("\"models\":{", f);
    int first = 1;
    for (int i = 0; i <= LLMC_METRICS_MAX_MODELS; i++) {
        metrics_model *s = &m->models[i];
        if (atomic_load(&s->state) != 2)
            continue;
        uint64_t v[LLMC_OUT__COUNT], all = 0;
        for (int o = 0; o < LLMC_OUT__COUNT; o++)
            all += v[o] = atomic_load(&s->out[o]), tot[o] += v[o];
        if (!all && i == LLMC_METRICS_MAX_MODELS)
            continue;
        fputs(first ? "\"" : ",\"", f);
        first = 0;
        for (const char *c = s->name; *c; c++) {
            if (*c == '"' || *c == '\\')
                fputc('\\', f);
            if ((unsigned char)*c >= 0x20)
                fputc(*c, f);
        }
        fprintf(f,
                "\":{\"hit_exact\":%llu,\"hit_semantic\":%llu,\"miss\":%llu,\"bypass\":%llu,"
                "\"tokens_saved_prompt\":%llu,\"tokens_saved_completion\":%llu,"
                "\"cost_saved\":%.6f}",
                (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
                (unsigned long long)v[3], (unsigned long long)atomic_load(&s->saved_prompt),
                (unsigned long long)atomic_load(&s->saved_completion),
                (double)atomic_load(&s->saved_micro) / 1e6);
    }
    uint64_t lookups = tot[0] + tot[1] + tot[2] + tot[3];
    fprintf(f,
            "},\"lookups\":%llu,\"hits_exact\":%llu,\"hits_semantic\":%llu,\"misses\":%llu,"
            "\"bypasses\":%llu,\"hit_rate\":",
            (unsigned long long)lookups, (unsigned long long)tot[0], (unsigned long long)tot[1],
            (unsigned long long)tot[2], (unsigned long long)tot[3]);
    metrics_json_num(f, lookups ? (double)(tot[0] + tot[1]) / (double)lookups : NAN);
    fputs(",\"latency_seconds\":{", f);
    static const char *const short_name[LLMC_HIST__COUNT] = {"hit", "upstream", "miss",
                                                             "semantic_lookup"};
    for (int h = 0; h < LLMC_HIST__COUNT; h++) {
        fprintf(f, "%s\"%s\":{\"count\":%llu,\"p50\":", h ? "," : "", short_name[h],
                (unsigned long long)atomic_load(&m->hist[h].count));
        metrics_json_num(f, llmc_metrics_quantile(m, (llmc_hist)h, 0.5));
        fputs(",\"p99\":", f);
        metrics_json_num(f, llmc_metrics_quantile(m, (llmc_hist)h, 0.99));
        fputc('}', f);
    }
    fputs("},\"upstream_errors\":{", f);
    for (int i = 0; i < METRICS_NERR; i++)
        fprintf(f, "%s\"%s\":%llu", i ? "," : "", metrics_err_name[i],
                (unsigned long long)atomic_load(&m->errors[i]));
    fputc('}', f);
}

double llmc_prometheus_sum(const char *text, const char *name)
{
    double sum = NAN;
    size_t nl = name ? strlen(name) : 0;
    if (!nl)
        return sum;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) || (p[nl] != ' ' && p[nl] != '{'))
            continue;
        const char *v = p + nl;
        if (*v == '{')
            v = strchr(v, '}');
        if (!v)
            continue;
        char *end;
        double x = strtod(v + 1, &end);
        if (end == v + 1)
            continue; /* no number: not a sample line */
        sum = isnan(sum) ? x : sum + x;
    }
    return sum;
}
