/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what every tests/test_<module>.c starts with.
 *
 * Each cmocka case is registered by CMake as its own ctest test that runs the
 * program with the case name as argv[1]; IOPT_TEST_MAIN() turns that into cmocka's
 * test filter. A filter matching nothing prints "Running 0 test(s)", which ctest is
 * told to treat as a failure, so a renamed case cannot silently pass.
 */
#ifndef IOPT_TEST_HARNESS_H
#define IOPT_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

/* Seed for randomized tests: $IOPT_TEST_SEED or a fixed default; printed once. */
uint64_t iopt_test_seed(void);

/* True when the suite runs under valgrind or asked to be quick ($IOPT_TEST_QUICK). */
int iopt_test_quick(void);

/* xorshift64* PRNG: deterministic per seed, never returns the same state twice. */
static inline uint64_t iopt_test_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

struct iopt_ctx;

/* Pages the context has pinned now (iopt_ctx_read_stats()). */
uint64_t iopt_test_pages_pinned(struct iopt_ctx *ctx);

int iopt_test_run(const char *group, const struct CMUnitTest *tests, size_t n,
		  int argc, char **argv);

#define IOPT_TEST_MAIN(tests)                                                   \
	int main(int argc, char **argv)                                         \
	{                                                                       \
		return iopt_test_run(__FILE__, tests,                           \
				     sizeof(tests) / sizeof((tests)[0]), argc,  \
				     argv);                                     \
	}

#endif /* IOPT_TEST_HARNESS_H */
