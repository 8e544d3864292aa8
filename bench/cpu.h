/*
 * cpu.h — the benchmarks' one-line machine description (header only:
 * each benchmark is its own program).
 */
#ifndef BENCH_CPU_H
#define BENCH_CPU_H
#include <stdio.h>
#include <string.h>

/* The CPU model from /proc/cpuinfo into out, or "unknown". */
static inline void bench_cpu_model(char *out, size_t n)
{
    char line[512];
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            snprintf(out, n, "%s", c ? c + 2 : line);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    if (f)
        fclose(f);
}

#endif
