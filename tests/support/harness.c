/* SPDX-License-Identifier: MIT */
/*
 * harness.c - the shared main() of every test program (see harness.h).
 */
#include <string.h>

#include "harness.h"

#include <iopt/ctx.h>

uint64_t iopt_test_seed(void)
{
	static uint64_t seed;
	const char *env;

	if (seed)
		return seed;
	env = getenv("IOPT_TEST_SEED");
	seed = env ? strtoull(env, NULL, 0) : 0x10b7a11e5eedULL;
	if (!seed)
		seed = 1;
	printf("# IOPT_TEST_SEED=0x%llx\n", (unsigned long long)seed);
	return seed;
}

int iopt_test_quick(void)
{
	const char *env = getenv("IOPT_TEST_QUICK");
	const char *preload = getenv("LD_PRELOAD");

	if (env && *env && strcmp(env, "0"))
		return 1;
	/* valgrind injects its preload objects; that is enough to detect it. */
	return preload && strstr(preload, "vgpreload") != NULL;
}

int iopt_test_run(const char *group, const struct CMUnitTest *tests, size_t n,
		  int argc, char **argv)
{
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

uint64_t iopt_test_pages_pinned(struct iopt_ctx *ctx)
{
	struct iopt_ctx_stats st;

	iopt_ctx_read_stats(ctx, &st);
	return st.pages_pinned;
}
