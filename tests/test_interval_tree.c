// SPDX-License-Identifier: MIT
/*
 * test_interval_tree.c - the augmented interval tree against a brute-force model.
 *
 * The randomized cases run >= 100k operations per seed (fewer under valgrind or
 * IOPT_TEST_QUICK), call iopt_itree_check() after every operation, and compare
 * every query and periodic in-order walks with a plain array of live nodes.
 * Intervals cluster near 0 and near UINT64_MAX, overlap, tie on start, and
 * include the full range. The targeted cases pin down edge behaviour and show
 * that check() catches each kind of corruption. Span iterators are tested in
 * test_double_span.c.
 */
#include "harness.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "interval_tree.h"
#include "util.h"

#define MAX_LIVE 2048
#define TOP UINT64_MAX
#define REGION 8192	/* width of the dense regions at 0 and at the top */

struct tnode {
	struct iopt_itree_node it;
	uint64_t seq;		/* insertion order, breaks start ties */
	bool live;
};

struct model {
	struct iopt_itree_root root;
	struct tnode nodes[MAX_LIVE];
	size_t live[MAX_LIVE];	/* indexes of live nodes, unordered */
	size_t nlive;
	uint64_t rng;
	uint64_t seq;
};

/* Scratch for expected / actual node lists. */
static struct iopt_itree_node *want[MAX_LIVE], *got[MAX_LIVE + 1];

static uint64_t rnd(struct model *m, uint64_t bound)
{
	return iopt_test_rand(&m->rng) % bound;
}

/*
 * A random interval: mostly short ones packed in a region at 0 or at the top
 * (so they overlap and tie), sometimes points at the very edges, huge random
 * ranges, or the full range.
 */
static void gen_range(struct model *m, uint64_t *start, uint64_t *last)
{
	uint64_t kind = rnd(m, 64), len;

	if (kind == 0) {
		*start = 0;
		*last = TOP;
	} else if (kind <= 2) {
		uint64_t a = iopt_test_rand(&m->rng), b = iopt_test_rand(&m->rng);

		*start = a < b ? a : b;
		*last = a < b ? b : a;
	} else if (kind <= 5) {
		*start = rnd(m, 2) ? rnd(m, 3) : TOP - rnd(m, 3);
		*last = *start + (*start < TOP ? rnd(m, 2) : 0);
	} else {
		uint64_t base = rnd(m, 2) ? 0 : TOP - (REGION - 1);

		*start = base + rnd(m, REGION);
		len = rnd(m, (uint64_t)1 << rnd(m, 12));
		*last = len > TOP - *start ? TOP : *start + len;
	}
}

static bool overlaps(const struct iopt_itree_node *n, uint64_t start, uint64_t last)
{
	return n->start <= last && start <= n->last;
}

static int cmp_node(const void *a, const void *b)
{
	const struct tnode *x = *(const struct tnode *const *)a;
	const struct tnode *y = *(const struct tnode *const *)b;

	if (x->it.start != y->it.start)
		return x->it.start < y->it.start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Model answer: live nodes overlapping [start, last] by (start, insertion). */
static size_t model_query(struct model *m, uint64_t start, uint64_t last)
{
	size_t i, n = 0;

	for (i = 0; i != m->nlive; i++) {
		struct tnode *t = &m->nodes[m->live[i]];

		if (overlaps(&t->it, start, last))
			want[n++] = &t->it;
	}
	qsort(want, n, sizeof(want[0]), cmp_node);
	return n;
}

static size_t tree_query(struct model *m, uint64_t start, uint64_t last)
{
	struct iopt_itree_node *node;
	size_t n = 0;

	iopt_itree_for_each(node, &m->root, start, last) {
		assert_true(n < MAX_LIVE);
		got[n++] = node;
	}
	return n;
}

static void compare_query(struct model *m, uint64_t start, uint64_t last)
{
	size_t n = model_query(m, start, last);

	assert_int_equal(tree_query(m, start, last), n);
	assert_memory_equal(got, want, n * sizeof(want[0]));
}

static void compare_walk(struct model *m)
{
	struct iopt_itree_node *node;
	size_t n = model_query(m, 0, TOP), i = 0;

	for (node = iopt_itree_first(&m->root); node; node = iopt_itree_next(node)) {
		assert_true(i < n);
		assert_ptr_equal(node, want[i++]);
	}
	assert_int_equal(i, n);
}

static void model_insert(struct model *m, uint64_t start, uint64_t last)
{
	size_t idx;

	for (idx = 0; m->nodes[idx].live; idx++)
		;
	m->nodes[idx].it.start = start;
	m->nodes[idx].it.last = last;
	m->nodes[idx].seq = m->seq++;
	m->nodes[idx].live = true;
	m->live[m->nlive++] = idx;
	iopt_itree_insert(&m->nodes[idx].it, &m->root);
}

static void model_remove(struct model *m, size_t pos)
{
	struct tnode *t = &m->nodes[m->live[pos]];

	iopt_itree_remove(&t->it, &m->root);
	t->live = false;
	m->live[pos] = m->live[--m->nlive];
}

static void model_init(struct model *m, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	m->rng = seed ? seed : 1;
}

static unsigned long nops(void)
{
	return iopt_test_quick() ? 10000 : 100000;
}

/*
 * Live-count schedule of a randomized run. check() is O(n) after every op, so
 * the run climbs once to a big tree (2000 nodes, 400 when quick) and back,
 * then spends its time on small trees, which also stress the root cases; the
 * small target changes every 2000 operations.
 */
struct schedule {
	size_t target;
	bool climbed;
};

static const size_t small_targets[] = { 0, 3, 16, 64, 256 };

static bool schedule_wants_insert(struct schedule *s, struct model *m,
				  unsigned long op, size_t big)
{
	if (!s->climbed && op == 0)
		s->target = big;
	if (!s->climbed && m->nlive >= big) {
		s->climbed = true;
		s->target = 0;
	}
	if (s->climbed && op % 2000 == 0)
		s->target = small_targets[rnd(m, IOPT_ARRAY_SIZE(small_targets))];
	if (m->nlive == 0)
		return true;
	return rnd(m, 4) < (m->nlive < s->target ? 3u : 1u);
}

/* One run over possibly overlapping intervals; queries are interleaved. */
static void run_overlapping(uint64_t seed)
{
	static struct model m;
	struct schedule sched = { 0 };
	size_t big = iopt_test_quick() ? 400 : 2000;
	unsigned long op;

	model_init(&m, seed);
	for (op = 0; op != nops(); op++) {
		uint64_t start, last;

		if (schedule_wants_insert(&sched, &m, op, big)) {
			gen_range(&m, &start, &last);
			model_insert(&m, start, last);
		} else {
			model_remove(&m, (size_t)rnd(&m, m.nlive));
		}
		assert_int_equal(iopt_itree_check(&m.root), 0);
		assert_int_equal(iopt_itree_empty(&m.root), m.nlive == 0);

		if (rnd(&m, 4) == 0) {
			gen_range(&m, &start, &last);
			compare_query(&m, start, last);
			compare_query(&m, start, start);
		}
		if (op % 512 == 0) {
			compare_walk(&m);
			compare_query(&m, 0, TOP);
		}
	}
	while (m.nlive)
		model_remove(&m, 0);
	assert_int_equal(iopt_itree_check(&m.root), 0);
	assert_true(iopt_itree_empty(&m.root));
}

/*
 * One IOVA-like run: disjoint 4 KiB areas in the low slots or in the top slots
 * ending at UINT64_MAX. An insert goes ahead only when the slot is free, and
 * iter_first() must agree with the model on that.
 */
static void run_disjoint(uint64_t seed)
{
	static struct model m;
	const uint64_t top_base = TOP - (uint64_t)4096 * 4096 + 1;
	struct schedule sched = { 0 };
	size_t big = iopt_test_quick() ? 400 : 1500;
	unsigned long op;

	model_init(&m, seed);
	for (op = 0; op != nops(); op++) {
		uint64_t start = (rnd(&m, 2) ? 0 : top_base) + rnd(&m, 4096) * 4096;
		uint64_t last = start + 4095;
		bool busy = iopt_itree_iter_first(&m.root, start, last) != NULL;

		assert_int_equal(busy, model_query(&m, start, last) != 0);
		if (schedule_wants_insert(&sched, &m, op, big)) {
			if (!busy)
				model_insert(&m, start, last);
		} else {
			model_remove(&m, (size_t)rnd(&m, m.nlive));
		}
		assert_int_equal(iopt_itree_check(&m.root), 0);
		if (op % 512 == 0)
			compare_walk(&m);
	}
}

/* Seeds derived from the harness seed, so IOPT_TEST_SEED reproduces all. */
static uint64_t nth_seed(unsigned int i)
{
	return iopt_test_seed() * 0x9e3779b97f4a7c15ULL + i;
}

static unsigned int nseeds(void)
{
	return iopt_test_quick() ? 1 : 3;
}

static void test_itree_random_overlapping(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i != nseeds(); i++)
		run_overlapping(nth_seed(i));
}

static void test_itree_random_disjoint(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i != nseeds(); i++)
		run_disjoint(nth_seed(100 + i));
}

static void test_itree_empty(void **state)
{
	struct iopt_itree_root root = { 0 };

	(void)state;
	assert_true(iopt_itree_empty(&root));
	assert_null(iopt_itree_iter_first(&root, 0, TOP));
	assert_null(iopt_itree_iter_first(&root, TOP, TOP));
	assert_null(iopt_itree_first(&root));
	assert_int_equal(iopt_itree_check(&root), 0);
}

static void test_itree_single(void **state)
{
	struct iopt_itree_root root = { 0 };
	struct iopt_itree_node n = { .start = 10, .last = 20 };

	(void)state;
	iopt_itree_insert(&n, &root);
	assert_false(iopt_itree_empty(&root));
	assert_int_equal(iopt_itree_check(&root), 0);
	assert_null(iopt_itree_iter_first(&root, 0, 9));
	assert_null(iopt_itree_iter_first(&root, 21, TOP));
	assert_ptr_equal(iopt_itree_iter_first(&root, 0, 10), &n);
	assert_ptr_equal(iopt_itree_iter_first(&root, 20, TOP), &n);
	assert_ptr_equal(iopt_itree_iter_first(&root, 15, 15), &n);
	assert_null(iopt_itree_iter_next(&n, 0, TOP));
	assert_ptr_equal(iopt_itree_first(&root), &n);
	assert_null(iopt_itree_next(&n));

	iopt_itree_remove(&n, &root);
	assert_true(iopt_itree_empty(&root));
	assert_int_equal(iopt_itree_check(&root), 0);

	/* A removed node may go back in with a new range. */
	n.start = TOP;
	n.last = TOP;
	iopt_itree_insert(&n, &root);
	assert_ptr_equal(iopt_itree_iter_first(&root, TOP, TOP), &n);
	assert_null(iopt_itree_iter_first(&root, 0, TOP - 1));
}

static void test_itree_full_range(void **state)
{
	struct iopt_itree_root root = { 0 };
	struct iopt_itree_node full = { .start = 0, .last = TOP };
	struct iopt_itree_node lo = { .start = 0, .last = 0 };
	struct iopt_itree_node hi = { .start = TOP, .last = TOP };

	(void)state;
	iopt_itree_insert(&full, &root);
	assert_ptr_equal(iopt_itree_iter_first(&root, 0, 0), &full);
	assert_ptr_equal(iopt_itree_iter_first(&root, TOP, TOP), &full);
	assert_ptr_equal(iopt_itree_iter_first(&root, 12345, 67890), &full);

	iopt_itree_insert(&hi, &root);
	iopt_itree_insert(&lo, &root);
	assert_int_equal(iopt_itree_check(&root), 0);
	/* Equal starts come back in insertion order: full, then lo. */
	assert_ptr_equal(iopt_itree_iter_first(&root, 0, TOP), &full);
	assert_ptr_equal(iopt_itree_iter_next(&full, 0, TOP), &lo);
	assert_ptr_equal(iopt_itree_iter_next(&lo, 0, TOP), &hi);
	assert_null(iopt_itree_iter_next(&hi, 0, TOP));
	/* At the top only full and hi overlap. */
	assert_ptr_equal(iopt_itree_iter_first(&root, TOP, TOP), &full);
	assert_ptr_equal(iopt_itree_iter_next(&full, TOP, TOP), &hi);
	assert_null(iopt_itree_iter_next(&hi, TOP, TOP));

	iopt_itree_remove(&full, &root);
	assert_int_equal(iopt_itree_check(&root), 0);
	assert_null(iopt_itree_iter_first(&root, 1, TOP - 1));
	assert_ptr_equal(iopt_itree_iter_first(&root, 1, TOP), &hi);
}

/* Many nodes on one start: order is insertion order, also after removals. */
static void test_itree_equal_starts(void **state)
{
	static struct iopt_itree_node n[64];
	struct iopt_itree_root root = { 0 };
	struct iopt_itree_node *node;
	unsigned int i, k;

	(void)state;
	for (i = 0; i != 64; i++) {
		n[i].start = 7;
		n[i].last = 7 + (i * 37) % 64;
		iopt_itree_insert(&n[i], &root);
		assert_int_equal(iopt_itree_check(&root), 0);
	}
	for (i = 0; i < 64; i += 3)
		iopt_itree_remove(&n[i], &root);
	assert_int_equal(iopt_itree_check(&root), 0);

	/* Only nodes reaching index 40 (last >= 40) show up, in order. */
	k = 0;
	iopt_itree_for_each(node, &root, 40, 40) {
		while (k % 3 == 0 || n[k].last < 40)
			k++;
		assert_ptr_equal(node, &n[k]);
		k++;
	}
	for (; k != 64; k++)
		assert_true(k % 3 == 0 || n[k].last < 40);
}

/* A small balanced-enough tree for the corruption cases. */
static void build_tree(struct iopt_itree_root *root, struct iopt_itree_node *n,
		       unsigned int count)
{
	unsigned int i;

	memset(root, 0, sizeof(*root));
	for (i = 0; i != count; i++) {
		n[i].start = (uint64_t)((i * 29) % count) * 100;
		n[i].last = n[i].start + 50 + (i % 7) * 30;
		iopt_itree_insert(&n[i], root);
	}
	assert_int_equal(iopt_itree_check(root), 0);
}

static struct iopt_itree_node *root_node(struct iopt_itree_root *root)
{
	return container_of(root->rb_node, struct iopt_itree_node, rb);
}

static void expect_caught(struct iopt_itree_root *root, uint64_t *field,
			  uint64_t bad)
{
	uint64_t saved = *field;

	*field = bad;
	assert_int_equal(iopt_itree_check(root), -EINVAL);
	*field = saved;
	assert_int_equal(iopt_itree_check(root), 0);
}

static void test_itree_check_subtree_last(void **state)
{
	static struct iopt_itree_node n[100];
	struct iopt_itree_root root;
	unsigned int i;

	(void)state;
	build_tree(&root, n, 100);
	/* Too big and too small, at the root, inner nodes and leaves. */
	for (i = 0; i != 100; i++) {
		expect_caught(&root, &n[i].subtree_last, n[i].subtree_last + 1);
		expect_caught(&root, &n[i].subtree_last, n[i].subtree_last - 1);
	}
	expect_caught(&root, &root_node(&root)->subtree_last, 0);
}

static void test_itree_check_order_and_range(void **state)
{
	static struct iopt_itree_node n[100];
	struct iopt_itree_root root;
	struct iopt_itree_node *first, *second, *third;

	(void)state;
	build_tree(&root, n, 100);
	first = iopt_itree_first(&root);
	second = iopt_itree_next(first);
	third = iopt_itree_next(second);
	/* Only a start moves below its predecessor's: order alone is broken. */
	assert_true(third->last >= second->start - 1);
	expect_caught(&root, &third->start, second->start - 1);
	/* start > last on one node. */
	expect_caught(&root, &second->last, second->start - 1);
}

static void test_itree_check_colors_and_links(void **state)
{
	static struct iopt_itree_node n[100];
	struct iopt_itree_root root;
	struct iopt_rb_node *rb, *saved;
	unsigned int i;

	(void)state;
	build_tree(&root, n, 100);
	/* Any single colour flip breaks black height, red-red or root black. */
	for (i = 0; i != 100; i++) {
		n[i].rb.parent_color ^= 1;
		assert_int_equal(iopt_itree_check(&root), -EINVAL);
		n[i].rb.parent_color ^= 1;
	}
	assert_int_equal(iopt_itree_check(&root), 0);

	/* A child whose parent link points elsewhere. */
	rb = root.rb_node->child[0];
	saved = (struct iopt_rb_node *)(rb->parent_color & ~(uintptr_t)3);
	rb->parent_color = (uintptr_t)root.rb_node->child[1] |
			   (rb->parent_color & 1);
	assert_int_equal(iopt_itree_check(&root), -EINVAL);
	rb->parent_color = (uintptr_t)saved | (rb->parent_color & 1);
	assert_int_equal(iopt_itree_check(&root), 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_itree_empty),
	cmocka_unit_test(test_itree_single),
	cmocka_unit_test(test_itree_full_range),
	cmocka_unit_test(test_itree_equal_starts),
	cmocka_unit_test(test_itree_check_subtree_last),
	cmocka_unit_test(test_itree_check_order_and_range),
	cmocka_unit_test(test_itree_check_colors_and_links),
	cmocka_unit_test(test_itree_random_overlapping),
	cmocka_unit_test(test_itree_random_disjoint),
};

IOPT_TEST_MAIN(tests)
