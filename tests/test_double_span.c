// SPDX-License-Identifier: MIT
/*
 * test_double_span.c - the span and double-span iterators against a reference.
 *
 * The reference cuts [first, last] at every interval boundary, labels each
 * piece with the first tree that covers it (0 = none) and merges neighbours
 * with the same label; that is exactly the contract of both iterators (a
 * single tree is the one-tree case). Hand-written tables cover adjacent,
 * overlapping, empty, full-range and wrap-at-top layouts and are checked
 * against both the iterator and the reference; randomized rounds compare the
 * two on layouts packed near 0 and near UINT64_MAX, including advance().
 */
#include "harness.h"

#include <stdbool.h>
#include <string.h>

#include "double_span.h"
#include "interval_tree.h"
#include "util.h"

#define TOP UINT64_MAX
#define MAX_NODES 16
#define MAX_SPANS (4 * MAX_NODES + 4)

struct itv {
	uint64_t start, last;
};

/* kind: 0 hole, 1 tree 1 (or "used" for one tree), 2 tree 2. */
struct span {
	int kind;
	uint64_t start, last;
};

struct ttree {
	struct iopt_itree_root root;
	struct iopt_itree_node nodes[MAX_NODES];
	size_t n;
};

static void ttree_build(struct ttree *t, const struct itv *itv, size_t n)
{
	size_t i;

	assert_true(n <= MAX_NODES);
	memset(t, 0, sizeof(*t));
	for (i = 0; i != n; i++) {
		t->nodes[i].start = itv[i].start;
		t->nodes[i].last = itv[i].last;
		iopt_itree_insert(&t->nodes[i], &t->root);
	}
	t->n = n;
	assert_int_equal(iopt_itree_check(&t->root), 0);
}

static bool ttree_covers(const struct ttree *t, uint64_t index)
{
	size_t i;

	for (i = 0; i != t->n; i++)
		if (t->nodes[i].start <= index && index <= t->nodes[i].last)
			return true;
	return false;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Brute-force spans of [first, last] over @ntrees trees (1 or 2). */
static size_t ref_spans(struct ttree *const *trees, unsigned int ntrees,
			uint64_t first, uint64_t last, struct span *out)
{
	uint64_t cut[2 * 2 * MAX_NODES + 1];
	size_t ncut = 0, i, n = 0;
	unsigned int t;

	if (first > last)
		return 0;
	cut[ncut++] = first;
	for (t = 0; t != ntrees; t++) {
		for (i = 0; i != trees[t]->n; i++) {
			const struct iopt_itree_node *node = &trees[t]->nodes[i];

			if (node->start > first && node->start <= last)
				cut[ncut++] = node->start;
			if (node->last >= first && node->last < last)
				cut[ncut++] = node->last + 1;
		}
	}
	qsort(cut, ncut, sizeof(cut[0]), cmp_u64);

	for (i = 0; i != ncut; i++) {
		uint64_t piece_last = i + 1 < ncut ? cut[i + 1] - 1 : last;
		int kind = 0;

		if (i + 1 < ncut && cut[i + 1] == cut[i])
			continue;
		for (t = 0; t != ntrees && !kind; t++)
			if (ttree_covers(trees[t], cut[i]))
				kind = (int)t + 1;
		if (n && out[n - 1].kind == kind) {
			out[n - 1].last = piece_last;
			continue;
		}
		out[n].kind = kind;
		out[n].start = cut[i];
		out[n].last = piece_last;
		n++;
	}
	return n;
}

static void record(struct span *out, size_t *n, int kind, uint64_t start,
		   uint64_t last)
{
	/* A walk that does not stop would overflow: fail instead. */
	assert_true(*n < MAX_SPANS);
	out[*n].kind = kind;
	out[*n].start = start;
	out[*n].last = last;
	(*n)++;
}

/* Rest of a single-tree walk, from the current span on. */
static size_t collect_span_rest(struct iopt_span_iter *it, struct span *out)
{
	size_t n = 0;

	for (; !iopt_span_iter_done(it); iopt_span_iter_next(it))
		record(out, &n, !it->is_hole, it->start_hole, it->last_hole);
	/* Done is sticky. */
	iopt_span_iter_next(it);
	assert_true(iopt_span_iter_done(it));
	return n;
}

static size_t collect_span(struct ttree *t, uint64_t first, uint64_t last,
			   struct span *out)
{
	struct iopt_span_iter it;
	size_t n = 0;

	iopt_for_each_span(&it, &t->root, first, last)
		record(out, &n, !it.is_hole,
		       it.is_hole ? it.start_hole : it.start_used,
		       it.is_hole ? it.last_hole : it.last_used);
	return n;
}

static size_t collect_double(struct ttree *t1, struct ttree *t2, uint64_t first,
			     uint64_t last, struct span *out)
{
	struct iopt_double_span_iter it;
	size_t n = 0;

	iopt_for_each_double_span(&it, &t1->root, &t2->root, first, last)
		record(out, &n, it.is_used, it.start_used, it.last_used);
	iopt_double_span_iter_next(&it);
	assert_true(iopt_double_span_iter_done(&it));
	return n;
}

static void print_spans(const char *what, const struct span *s, size_t n)
{
	size_t i;

	printf("# %s:", what);
	for (i = 0; i != n; i++)
		printf(" %d[%#llx,%#llx]", s[i].kind, (unsigned long long)s[i].start,
		       (unsigned long long)s[i].last);
	printf("\n");
}

static void expect_spans(const struct span *got, size_t ngot,
			 const struct span *want, size_t nwant)
{
	bool same = ngot == nwant;
	size_t i;

	for (i = 0; same && i != nwant; i++)
		same = got[i].kind == want[i].kind &&
		       got[i].start == want[i].start && got[i].last == want[i].last;
	if (!same) {
		print_spans("got ", got, ngot);
		print_spans("want", want, nwant);
	}
	assert_true(same);
}

/* ---- hand-written layouts, checked against iterator and reference ---- */

enum case_group { EMPTY, ADJACENT, OVERLAPPING, FULL_RANGE, WRAP_AT_TOP, PRIORITY };

struct span_case {
	enum case_group group;
	struct itv t1[4], t2[4];
	size_t n1, n2;
	uint64_t first, last;
	struct span want[8];
	size_t nwant;
};

/* Single-tree layouts (t1 only); kinds are 0 hole / 1 used. */
static const struct span_case span_cases[] = {
	{ EMPTY, .first = 0, .last = TOP, .want = { { 0, 0, TOP } }, .nwant = 1 },
	{ EMPTY, .first = 5, .last = 5, .want = { { 0, 5, 5 } }, .nwant = 1 },
	/* Intervals outside the range do not count. */
	{ EMPTY, .t1 = { { 0, 9 }, { 21, TOP } }, .n1 = 2, .first = 10, .last = 20,
	  .want = { { 0, 10, 20 } }, .nwant = 1 },
	/* An empty range reports nothing. */
	{ EMPTY, .t1 = { { 0, 9 } }, .n1 = 1, .first = 6, .last = 5, .nwant = 0 },

	{ ADJACENT, .t1 = { { 0, 9 }, { 10, 19 }, { 30, 39 } }, .n1 = 3,
	  .first = 0, .last = 49,
	  .want = { { 1, 0, 19 }, { 0, 20, 29 }, { 1, 30, 39 }, { 0, 40, 49 } },
	  .nwant = 4 },
	{ ADJACENT, .t1 = { { 0, 9 }, { 10, 19 }, { 30, 39 } }, .n1 = 3,
	  .first = 10, .last = 35,
	  .want = { { 1, 10, 19 }, { 0, 20, 29 }, { 1, 30, 35 } }, .nwant = 3 },
	/* Holes of one index. */
	{ ADJACENT, .t1 = { { 0, 0 }, { 2, 2 }, { 4, 4 } }, .n1 = 3,
	  .first = 0, .last = 4,
	  .want = { { 1, 0, 0 }, { 0, 1, 1 }, { 1, 2, 2 }, { 0, 3, 3 },
		    { 1, 4, 4 } }, .nwant = 5 },

	{ OVERLAPPING, .t1 = { { 5, 15 }, { 10, 12 }, { 14, 30 }, { 40, 50 } },
	  .n1 = 4, .first = 0, .last = 100,
	  .want = { { 0, 0, 4 }, { 1, 5, 30 }, { 0, 31, 39 }, { 1, 40, 50 },
		    { 0, 51, 100 } }, .nwant = 5 },
	/* A long interval hides shorter ones that start later. */
	{ OVERLAPPING, .t1 = { { 0, 100 }, { 10, 20 }, { 30, 40 }, { 102, 110 } },
	  .n1 = 4, .first = 15, .last = 200,
	  .want = { { 1, 15, 100 }, { 0, 101, 101 }, { 1, 102, 110 },
		    { 0, 111, 200 } }, .nwant = 4 },

	{ FULL_RANGE, .t1 = { { 0, TOP } }, .n1 = 1, .first = 0, .last = TOP,
	  .want = { { 1, 0, TOP } }, .nwant = 1 },
	{ FULL_RANGE, .t1 = { { 0, TOP } }, .n1 = 1, .first = 7, .last = 9,
	  .want = { { 1, 7, 9 } }, .nwant = 1 },
	{ FULL_RANGE, .t1 = { { 0, TOP - 1 } }, .n1 = 1, .first = 0, .last = TOP,
	  .want = { { 1, 0, TOP - 1 }, { 0, TOP, TOP } }, .nwant = 2 },
	{ FULL_RANGE, .t1 = { { 1, TOP } }, .n1 = 1, .first = 0, .last = TOP,
	  .want = { { 0, 0, 0 }, { 1, 1, TOP } }, .nwant = 2 },

	{ WRAP_AT_TOP, .t1 = { { TOP - 10, TOP } }, .n1 = 1, .first = TOP - 20,
	  .last = TOP,
	  .want = { { 0, TOP - 20, TOP - 11 }, { 1, TOP - 10, TOP } }, .nwant = 2 },
	{ WRAP_AT_TOP, .t1 = { { TOP, TOP } }, .n1 = 1, .first = TOP, .last = TOP,
	  .want = { { 1, TOP, TOP } }, .nwant = 1 },
	{ WRAP_AT_TOP, .first = TOP, .last = TOP, .want = { { 0, TOP, TOP } },
	  .nwant = 1 },
	{ WRAP_AT_TOP, .t1 = { { TOP - 5, TOP - 3 }, { TOP - 2, TOP - 1 } },
	  .n1 = 2, .first = TOP - 5, .last = TOP,
	  .want = { { 1, TOP - 5, TOP - 1 }, { 0, TOP, TOP } }, .nwant = 2 },
};

/* Two-tree layouts; kinds are 0 hole, 1 tree 1, 2 tree 2. */
static const struct span_case double_cases[] = {
	{ EMPTY, .first = 0, .last = TOP, .want = { { 0, 0, TOP } }, .nwant = 1 },
	{ EMPTY, .t1 = { { 0, 9 } }, .n1 = 1, .t2 = { { 0, 9 } }, .n2 = 1,
	  .first = 10, .last = 10, .want = { { 0, 10, 10 } }, .nwant = 1 },
	{ EMPTY, .t1 = { { 0, 9 } }, .n1 = 1, .first = 9, .last = 8, .nwant = 0 },

	/* Tree 2 is cut where tree 1 begins, and resumes after it. */
	{ PRIORITY, .t1 = { { 10, 19 } }, .n1 = 1, .t2 = { { 0, 29 } }, .n2 = 1,
	  .first = 0, .last = 39,
	  .want = { { 2, 0, 9 }, { 1, 10, 19 }, { 2, 20, 29 }, { 0, 30, 39 } },
	  .nwant = 4 },
	/* Tree 1 is reported whole even where tree 2 overlaps. */
	{ PRIORITY, .t1 = { { 0, 29 } }, .n1 = 1, .t2 = { { 10, 39 } }, .n2 = 1,
	  .first = 0, .last = 49,
	  .want = { { 1, 0, 29 }, { 2, 30, 39 }, { 0, 40, 49 } }, .nwant = 3 },
	/* Overlapping intervals within each tree merge first. */
	{ OVERLAPPING, .t1 = { { 5, 8 }, { 7, 12 } }, .n1 = 2,
	  .t2 = { { 0, 3 }, { 2, 6 }, { 13, 20 } }, .n2 = 3,
	  .first = 0, .last = 25,
	  .want = { { 2, 0, 4 }, { 1, 5, 12 }, { 2, 13, 20 }, { 0, 21, 25 } },
	  .nwant = 4 },

	{ ADJACENT, .t1 = { { 0, 9 } }, .n1 = 1, .t2 = { { 10, 19 } }, .n2 = 1,
	  .first = 0, .last = 29,
	  .want = { { 1, 0, 9 }, { 2, 10, 19 }, { 0, 20, 29 } }, .nwant = 3 },
	/* Abutting intervals of one tree make one run. */
	{ ADJACENT, .t1 = { { 10, 14 }, { 15, 19 } }, .n1 = 2,
	  .t2 = { { 0, 4 }, { 5, 9 }, { 20, 24 } }, .n2 = 3,
	  .first = 0, .last = 24,
	  .want = { { 2, 0, 9 }, { 1, 10, 19 }, { 2, 20, 24 } }, .nwant = 3 },

	{ FULL_RANGE, .t1 = { { 0, TOP } }, .n1 = 1, .t2 = { { 5, 10 } }, .n2 = 1,
	  .first = 0, .last = TOP, .want = { { 1, 0, TOP } }, .nwant = 1 },
	{ FULL_RANGE, .t2 = { { 0, TOP } }, .n2 = 1, .first = 0, .last = TOP,
	  .want = { { 2, 0, TOP } }, .nwant = 1 },
	{ FULL_RANGE, .t1 = { { 100, 199 } }, .n1 = 1, .t2 = { { 0, TOP } },
	  .n2 = 1, .first = 0, .last = TOP,
	  .want = { { 2, 0, 99 }, { 1, 100, 199 }, { 2, 200, TOP } }, .nwant = 3 },

	{ WRAP_AT_TOP, .t1 = { { TOP - 5, TOP } }, .n1 = 1, .t2 = { { 0, TOP } },
	  .n2 = 1, .first = 0, .last = TOP,
	  .want = { { 2, 0, TOP - 6 }, { 1, TOP - 5, TOP } }, .nwant = 2 },
	{ WRAP_AT_TOP, .t1 = { { TOP, TOP } }, .n1 = 1, .t2 = { { TOP - 1, TOP } },
	  .n2 = 1, .first = TOP - 3, .last = TOP,
	  .want = { { 0, TOP - 3, TOP - 2 }, { 2, TOP - 1, TOP - 1 },
		    { 1, TOP, TOP } }, .nwant = 3 },
	{ WRAP_AT_TOP, .t2 = { { TOP - 1, TOP } }, .n2 = 1, .first = TOP,
	  .last = TOP, .want = { { 2, TOP, TOP } }, .nwant = 1 },
	{ WRAP_AT_TOP, .first = TOP, .last = TOP, .want = { { 0, TOP, TOP } },
	  .nwant = 1 },
};

/* Run one layout through an iterator over @ntrees trees and the reference. */
static void run_case(const struct span_case *c, unsigned int ntrees)
{
	static struct ttree t1, t2;
	struct ttree *trees[2] = { &t1, &t2 };
	struct span got[MAX_SPANS];
	size_t n;

	ttree_build(&t1, c->t1, c->n1);
	ttree_build(&t2, c->t2, c->n2);
	if (ntrees == 1) {
		assert_int_equal(c->n2, 0);
		n = collect_span(&t1, c->first, c->last, got);
	} else {
		n = collect_double(&t1, &t2, c->first, c->last, got);
	}
	expect_spans(got, n, c->want, c->nwant);
	n = ref_spans(trees, ntrees, c->first, c->last, got);
	expect_spans(got, n, c->want, c->nwant);
}

static void run_group(enum case_group group, unsigned int ntrees)
{
	const struct span_case *cases = ntrees == 1 ? span_cases : double_cases;
	size_t i, count = ntrees == 1 ? IOPT_ARRAY_SIZE(span_cases) :
					IOPT_ARRAY_SIZE(double_cases);
	unsigned int ran = 0;

	for (i = 0; i != count; i++) {
		if (cases[i].group == group) {
			run_case(&cases[i], ntrees);
			ran++;
		}
	}
	assert_true(ran > 0);
}

/* One cmocka case per group, so that ctest names the layout that failed. */
#define GROUP_CASE(name, group, ntrees)                                        \
	static void name(void **state)                                         \
	{                                                                      \
		(void)state;                                                   \
		run_group(group, ntrees);                                      \
	}

GROUP_CASE(test_span_empty, EMPTY, 1)
GROUP_CASE(test_span_adjacent, ADJACENT, 1)
GROUP_CASE(test_span_overlapping, OVERLAPPING, 1)
GROUP_CASE(test_span_full_range, FULL_RANGE, 1)
GROUP_CASE(test_span_wrap_at_top, WRAP_AT_TOP, 1)
GROUP_CASE(test_double_span_empty, EMPTY, 2)
GROUP_CASE(test_double_span_priority, PRIORITY, 2)
GROUP_CASE(test_double_span_overlapping, OVERLAPPING, 2)
GROUP_CASE(test_double_span_adjacent, ADJACENT, 2)
GROUP_CASE(test_double_span_full_range, FULL_RANGE, 2)
GROUP_CASE(test_double_span_wrap_at_top, WRAP_AT_TOP, 2)

/* ---- randomized comparison with the reference ---- */

/* Small intervals in a 64-wide window at 0 or at the top, some full range. */
static void gen_layout(uint64_t *rng, uint64_t base, struct itv *itv, size_t *n)
{
	uint64_t off;
	size_t i;

	*n = iopt_test_rand(rng) % (MAX_NODES + 1);
	for (i = 0; i != *n; i++) {
		uint64_t r = iopt_test_rand(rng);

		if (r % 97 == 0) {
			itv[i].start = 0;
			itv[i].last = TOP;
			continue;
		}
		off = (r >> 8) % 64;
		itv[i].start = base + off;
		itv[i].last = itv[i].start + IOPT_MIN((r >> 16) % 8, 63 - off);
	}
}

static void gen_query(uint64_t *rng, uint64_t base, uint64_t *first,
		      uint64_t *last)
{
	uint64_t r = iopt_test_rand(rng), a = base + r % 64, b = base + (r >> 8) % 64;

	*first = a < b ? a : b;
	*last = a < b ? b : a;
	if ((r >> 16) % 8 == 0)
		*first = 0;
	if ((r >> 19) % 8 == 0)
		*last = TOP;
}

/* Uniform in [0, max], max == UINT64_MAX included. */
static uint64_t rand_below(uint64_t *rng, uint64_t max)
{
	uint64_t r = iopt_test_rand(rng);

	return max == TOP ? r : r % (max + 1);
}

static unsigned int nrounds(void)
{
	return iopt_test_quick() ? 3000 : 40000;
}

static uint64_t top_or_zero(uint64_t *rng)
{
	return iopt_test_rand(rng) % 2 ? 0 : TOP - 63;
}

static void test_span_random(void **state)
{
	static struct ttree t;
	struct ttree *trees[1] = { &t };
	struct span got[MAX_SPANS], want[MAX_SPANS];
	uint64_t rng = iopt_test_seed();
	struct itv itv[MAX_NODES];
	unsigned int round;

	(void)state;
	for (round = 0; round != nrounds(); round++) {
		uint64_t base = top_or_zero(&rng), first, last;
		size_t n;

		gen_layout(&rng, base, itv, &n);
		ttree_build(&t, itv, n);
		gen_query(&rng, base, &first, &last);
		expect_spans(got, collect_span(&t, first, last, got), want,
			     ref_spans(trees, 1, first, last, want));
	}
}

/*
 * advance() to a random later index must look exactly like a fresh walk that
 * starts there: trimming inside the span, stepping at last + 1, or searching.
 */
static void test_span_advance_random(void **state)
{
	static struct ttree t;
	struct ttree *trees[1] = { &t };
	struct span got[MAX_SPANS], want[MAX_SPANS];
	uint64_t rng = iopt_test_seed() ^ 0xadfa;
	struct itv itv[MAX_NODES];
	unsigned int round;

	(void)state;
	for (round = 0; round != nrounds(); round++) {
		uint64_t base = top_or_zero(&rng), first, last, to;
		struct iopt_span_iter it;
		size_t n;

		gen_layout(&rng, base, itv, &n);
		ttree_build(&t, itv, n);
		gen_query(&rng, base, &first, &last);
		iopt_span_iter_first(&it, &t.root, first, last);
		/* Inside the span, right after it, or anywhere later. */
		to = it.last_hole;
		if (iopt_test_rand(&rng) % 2 && to < TOP)
			to++;
		if (iopt_test_rand(&rng) % 2)
			to = first + rand_below(&rng, last - first);
		iopt_span_iter_advance(&it, to);
		assert_int_equal(iopt_span_iter_done(&it), to > last);
		expect_spans(got, collect_span_rest(&it, got), want,
			     to > last ? 0 : ref_spans(trees, 1, to, last, want));
	}
}

static void test_double_span_random(void **state)
{
	static struct ttree t1, t2;
	struct ttree *trees[2] = { &t1, &t2 };
	struct span got[MAX_SPANS], want[MAX_SPANS];
	uint64_t rng = iopt_test_seed() ^ 0xd5;
	struct itv itv[MAX_NODES];
	unsigned int round;

	(void)state;
	for (round = 0; round != nrounds(); round++) {
		uint64_t base = top_or_zero(&rng), first, last;
		size_t n;

		gen_layout(&rng, base, itv, &n);
		ttree_build(&t1, itv, n);
		gen_layout(&rng, base, itv, &n);
		ttree_build(&t2, itv, n);
		gen_query(&rng, base, &first, &last);
		expect_spans(got, collect_double(&t1, &t2, first, last, got), want,
			     ref_spans(trees, 2, first, last, want));
	}
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_span_empty),
	cmocka_unit_test(test_span_adjacent),
	cmocka_unit_test(test_span_overlapping),
	cmocka_unit_test(test_span_full_range),
	cmocka_unit_test(test_span_wrap_at_top),
	cmocka_unit_test(test_span_random),
	cmocka_unit_test(test_span_advance_random),
	cmocka_unit_test(test_double_span_empty),
	cmocka_unit_test(test_double_span_priority),
	cmocka_unit_test(test_double_span_overlapping),
	cmocka_unit_test(test_double_span_adjacent),
	cmocka_unit_test(test_double_span_full_range),
	cmocka_unit_test(test_double_span_wrap_at_top),
	cmocka_unit_test(test_double_span_random),
};

IOPT_TEST_MAIN(tests)
