/* SPDX-License-Identifier: MIT */
/*
 * test_pfn_store.c - the sparse index -> frame store (src/pfn_store.[ch]).
 *
 * The store backs pages->pins->pinned_pfns, where a lost or stale entry means a
 * wrong frame handed to an access, so it is checked against a flat model after
 * every random operation, and its failure and pruning paths are checked for
 * "nothing changed" and "no node left behind".
 */
#include "harness.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "pfn_store.h"
#include "util.h"

/* Whole-store comparison against a flat model over [0, n). */
static void check_model(const struct iopt_pfn_store *s, const uint64_t *model,
			const unsigned char *present, uint64_t n)
{
	uint64_t i, count = 0, frame;

	for (i = 0; i != n; i++) {
		bool got = iopt_pfn_store_load(s, i, &frame);

		assert_int_equal(got, present[i]);
		if (got)
			assert_int_equal(frame, model[i]);
		count += present[i];
	}
	assert_int_equal(s->count, count);
	assert_int_equal(iopt_pfn_store_empty(s), count == 0);
	if (!count) {
		assert_null(s->root);
		assert_int_equal(s->nodes, 0);
	}
}

static void test_pfn_store_empty_and_single(void **state)
{
	struct iopt_pfn_store s;
	uint64_t frame = 0;
	const uint64_t f = UINT64_MAX;	/* any value is a valid frame */

	(void)state;
	iopt_pfn_store_init(&s);
	assert_true(iopt_pfn_store_empty(&s));
	assert_false(iopt_pfn_store_load(&s, 0, &frame));
	assert_int_equal(iopt_pfn_store_bytes(&s), 0);
	iopt_pfn_store_clear(&s, 0, UINT64_MAX);	/* no-op on empty */

	assert_int_equal(iopt_pfn_store_insert(&s, 5, 1, &f), 0);
	assert_true(iopt_pfn_store_load(&s, 5, &frame));
	assert_int_equal(frame, UINT64_MAX);
	assert_false(iopt_pfn_store_load(&s, 4, &frame));
	assert_false(iopt_pfn_store_load(&s, 6, &frame));
	assert_int_equal(s.nodes, 1);
	assert_true(iopt_pfn_store_bytes(&s) > 0);
	iopt_pfn_store_clear(&s, 5, 5);
	assert_true(iopt_pfn_store_empty(&s));
	assert_null(s.root);
	iopt_pfn_store_destroy(&s);
}

/* Growth to the top index and shrink back when the high entries go. */
static void test_pfn_store_grow_and_shrink(void **state)
{
	struct iopt_pfn_store s;
	uint64_t frames[3] = { 7, 8, 9 }, out[3];
	long live = iopt_alloc_live();

	(void)state;
	iopt_pfn_store_init(&s);
	assert_int_equal(iopt_pfn_store_insert(&s, 0, 1, frames), 0);
	assert_int_equal(s.height, 1);
	assert_int_equal(iopt_pfn_store_insert(&s, IOPT_PFN_STORE_MAX_INDEX - 1,
					       2, frames + 1), 0);
	assert_int_equal(s.height, 9);
	assert_int_equal(iopt_pfn_store_load_range(&s, IOPT_PFN_STORE_MAX_INDEX - 1,
						   2, out), 2);
	assert_int_equal(out[0], 8);
	assert_int_equal(out[1], 9);
	assert_int_equal(iopt_pfn_store_insert(&s, IOPT_PFN_STORE_MAX_INDEX, 2,
					       frames), -EINVAL);
	assert_int_equal(iopt_pfn_store_insert(&s, 3, 0, frames), -EINVAL);

	iopt_pfn_store_clear(&s, 1, UINT64_MAX);
	assert_int_equal(s.height, 1);
	assert_int_equal(s.nodes, 1);
	assert_int_equal(s.count, 1);
	iopt_pfn_store_destroy(&s);
	assert_int_equal(iopt_alloc_live(), live);
}

/* A dense range across many leaves reads back with load_range, stopping at holes. */
static void test_pfn_store_load_range(void **state)
{
	enum { N = 1000 };
	struct iopt_pfn_store s;
	uint64_t frames[N], out[N];
	uint64_t i;

	(void)state;
	for (i = 0; i != N; i++)
		frames[i] = 1000 + i * 3;
	iopt_pfn_store_init(&s);
	assert_int_equal(iopt_pfn_store_insert(&s, 30, N, frames), 0);
	assert_int_equal(iopt_pfn_store_load_range(&s, 30, N, out), N);
	assert_memory_equal(out, frames, sizeof(frames));
	assert_int_equal(iopt_pfn_store_load_range(&s, 29, N, out), 0);
	iopt_pfn_store_clear(&s, 500, 500);
	assert_int_equal(iopt_pfn_store_load_range(&s, 30, N, out), 470);
	assert_int_equal(iopt_pfn_store_load_range(&s, 100, 5, out), 5);
	assert_int_equal(out[0], frames[70]);
	iopt_pfn_store_destroy(&s);
}

/*
 * Every allocation of a multi-leaf insert fails once in turn: the store must
 * keep its previous contents and node count, and nothing may leak.
 */
static void test_pfn_store_insert_enomem_unchanged(void **state)
{
	enum { N = 300 };
	uint64_t frames[N], keep = 42, frame;
	unsigned long nth;

	(void)state;
	for (nth = 0; nth != N; nth++)
		frames[nth] = nth;
	for (nth = 1;; nth++) {
		struct iopt_pfn_store s;
		uint64_t nodes;
		long live;
		int rc;

		iopt_pfn_store_init(&s);
		assert_int_equal(iopt_pfn_store_insert(&s, 10, 1, &keep), 0);
		nodes = s.nodes;
		live = iopt_alloc_live();
		iopt_fail_nth_arm(nth);
		rc = iopt_pfn_store_insert(&s, 4000, N, frames);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			iopt_pfn_store_destroy(&s);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(s.count, 1);
		assert_int_equal(s.nodes, nodes);
		assert_int_equal(s.height, 1);
		assert_int_equal(iopt_alloc_live(), live);
		assert_true(iopt_pfn_store_load(&s, 10, &frame));
		assert_int_equal(frame, 42);
		iopt_pfn_store_destroy(&s);
	}
	assert_true(nth > 3);
}

/* Random inserts of absent runs and random clears against a flat model. */
static void test_pfn_store_random_vs_model(void **state)
{
	enum { N = 5000 };
	uint64_t seed = iopt_test_seed() | 1;
	uint64_t steps = iopt_test_quick() ? 300 : 5000;
	static uint64_t model[N], buf[N];
	static unsigned char present[N];
	struct iopt_pfn_store s;
	long live = iopt_alloc_live();
	uint64_t step;

	(void)state;
	memset(present, 0, sizeof(present));
	iopt_pfn_store_init(&s);
	for (step = 0; step != steps; step++) {
		uint64_t a = iopt_test_rand(&seed) % N;
		uint64_t len = 1 + iopt_test_rand(&seed) % (step & 1 ? 8 : 300);
		uint64_t last = IOPT_MIN(a + len - 1, N - 1), i, n = 0;

		if (iopt_test_rand(&seed) % 3) {
			/* insert the longest absent run starting at a */
			while (a + n <= last && !present[a + n]) {
				buf[n] = iopt_test_rand(&seed);
				n++;
			}
			if (!n)
				continue;
			assert_int_equal(iopt_pfn_store_insert(&s, a, n, buf), 0);
			for (i = 0; i != n; i++) {
				model[a + i] = buf[i];
				present[a + i] = 1;
			}
		} else {
			iopt_pfn_store_clear(&s, a, last);
			memset(present + a, 0, last - a + 1);
		}
		if (iopt_test_quick() || step % 16 == 0)
			check_model(&s, model, present, N);
	}
	check_model(&s, model, present, N);
	iopt_pfn_store_clear(&s, 0, UINT64_MAX);
	check_model(&s, model, memset(present, 0, N), N);
	iopt_pfn_store_destroy(&s);
	assert_int_equal(iopt_alloc_live(), live);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_pfn_store_empty_and_single),
	cmocka_unit_test(test_pfn_store_grow_and_shrink),
	cmocka_unit_test(test_pfn_store_load_range),
	cmocka_unit_test(test_pfn_store_insert_enomem_unchanged),
	cmocka_unit_test(test_pfn_store_random_vs_model),
};

IOPT_TEST_MAIN(tests)
