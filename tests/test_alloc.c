/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c - the allocation seam and fail-nth injection (src/alloc.[ch]).
 *
 * The fail-nth sweeps of the other tests trust these counters, so they are tested
 * on their own first.
 */
#include "harness.h"

#include "alloc.h"

static void test_alloc_counts_live(void **state)
{
	long before = iopt_alloc_live();
	void *a, *b;

	(void)state;
	a = iopt_malloc(16);
	b = iopt_calloc(4, 8);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(iopt_alloc_live(), before + 2);
	b = iopt_realloc(b, 4096);
	assert_non_null(b);
	assert_int_equal(iopt_alloc_live(), before + 2);
	iopt_free(a);
	iopt_free(b);
	iopt_free(NULL);
	assert_int_equal(iopt_alloc_live(), before);
}

static void test_alloc_fail_nth_fires_once(void **state)
{
	void *p[4];
	int i;

	(void)state;
	iopt_fail_nth_arm(3);
	for (i = 0; i < 4; i++)
		p[i] = iopt_malloc(8);
	assert_true(iopt_fail_nth_fired());
	assert_int_equal(iopt_fail_nth_disarm(), 4);
	assert_non_null(p[0]);
	assert_non_null(p[1]);
	assert_null(p[2]);
	assert_non_null(p[3]);
	for (i = 0; i < 4; i++)
		iopt_free(p[i]);
}

static void test_alloc_realloc_failure_keeps_block(void **state)
{
	char *p = iopt_malloc(4);
	long live = iopt_alloc_live();

	(void)state;
	assert_non_null(p);
	p[0] = 'x';
	iopt_fail_nth_arm(1);
	assert_null(iopt_realloc(p, 1 << 20));
	iopt_fail_nth_disarm();
	assert_int_equal(p[0], 'x');
	assert_int_equal(iopt_alloc_live(), live);
	iopt_free(p);
}

static void test_alloc_other_sites(void **state)
{
	(void)state;
	assert_false(iopt_should_fail(IOPT_FAIL_PIN));
	iopt_fail_nth_arm(2);
	assert_false(iopt_should_fail(IOPT_FAIL_PIN));
	assert_true(iopt_should_fail(IOPT_FAIL_DOMAIN_MAP));
	assert_false(iopt_should_fail(IOPT_FAIL_MEMFD_MAP));
	assert_int_equal(iopt_fail_nth_disarm(), 3);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_alloc_counts_live),
	cmocka_unit_test(test_alloc_fail_nth_fires_once),
	cmocka_unit_test(test_alloc_realloc_failure_keeps_block),
	cmocka_unit_test(test_alloc_other_sites),
};

IOPT_TEST_MAIN(tests)
