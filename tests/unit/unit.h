/*
 * unit.h — the unit tests' tiny harness.
 *
 * CHECK(cond) records a failure (file:line and the expression) and goes on;
 * each test program ends with UNIT_DONE(), which prints
 * "unit: N passed, N failed" for the program and returns its exit status.
 * scripts/run-tests.sh sums the programs into one closing line.
 */
#ifndef UNIT_H
#define UNIT_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_pass, unit_fail;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            unit_pass++;                                                                           \
        } else {                                                                                   \
            unit_fail++;                                                                           \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                              \
        if (unit_a_ == unit_b_) {                                                                  \
            unit_pass++;                                                                           \
        } else {                                                                                   \
            unit_fail++;                                                                           \
            fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b,   \
                    unit_a_, unit_b_);                                                             \
        }                                                                                          \
    } while (0)

#define UNIT_DONE()                                                                                \
    (printf("unit %s: %d passed, %d failed\n", __FILE__, unit_pass, unit_fail), unit_fail ? 1 : 0)

#endif
