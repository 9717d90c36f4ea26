/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - timing helpers shared by the bench/ programs.
 *
 * Benches print figures and a baseline measured in the same run; they are never
 * tests. Times are CLOCK_MONOTONIC nanoseconds.
 */
#ifndef IOPT_BENCH_COMMON_H
#define IOPT_BENCH_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A bench whose setup fails has nothing to measure: say why and stop. */
static inline void bench_die(const char *what, int rc)
{
	fprintf(stderr, "%s: %s failed: %d (%s)\n", program_invocation_short_name,
		what, rc, strerror(-rc));
	exit(1);
}

/* @expr returns 0 or a negative errno. */
#define BENCH_CHECK(expr)                                                      \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_)                                                       \
			bench_die(#expr, rc_);                                 \
	} while (0)

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Keeps the compiler from optimizing away a computed value. */
static inline void bench_keep(uint64_t v)
{
	__asm__ volatile("" : : "r"(v) : "memory");
}

/* One result line: what, our figure, the baseline's, and the ratio. */
static inline void bench_report(const char *what, double ours, double base,
				const char *unit)
{
	printf("%-44s %12.1f %-6s baseline %12.1f %-6s ratio %.2fx\n", what, ours,
	       unit, base, unit, base > 0 ? ours / base : 0.0);
}

#endif /* IOPT_BENCH_COMMON_H */
