/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - timing helpers shared by the bench/ programs.
 *
 * Benches print figures and a baseline measured in the same run; they are never
 * tests. Times are CLOCK_MONOTONIC nanoseconds.
 */
#ifndef IOPT_BENCH_COMMON_H
#define IOPT_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

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
