// SPDX-License-Identifier: MIT
/*
 * bench_interval_tree.c - the interval tree against a sorted-array baseline.
 *
 * Workload: N disjoint IOVA-like 4 KiB areas, one every 8 KiB (so there are
 * holes), inserted in random order, then point queries (half hit an area,
 * half fall in a hole), a full overlap iteration over [0, UINT64_MAX], an
 * in-order walk, and removal in another random order. N = 1e3, 1e5, 1e6.
 *
 * Baseline, measured in the same run: a sorted array of (start, last) with
 * binary-search insert/remove plus memmove, binary-search point query and a
 * linear scan. Its insert and remove cost O(N) each, so at large N it is timed
 * on the last K = min(N, 2000) inserts (into an array already holding N - K)
 * and the first K removes (from the full array); that is its cost at size ~N.
 * Each figure is the best round (lowest ns/op): the build machine is shared.
 *
 * Usage:
 *   bench_interval_tree              all sizes, ns/op
 *   bench_interval_tree --callgrind  one round at N = 1e5 (array sample
 *     K = 1000), to run under valgrind --tool=callgrind
 *     --toggle-collect=<phase function>: instructions per op, see
 *     docs/interval_tree.md.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "interval_tree.h"

#define AREA_SIZE 4096ull
#define AREA_STRIDE 8192ull
#define AREA_BASE (1ull << 20)
#define ARRAY_SAMPLE 2000

#define PHASE __attribute__((noinline))

struct range {
	uint64_t start, last;
};

struct fixture {
	size_t n;
	struct iopt_itree_node *nodes;	/* nodes[i] is area slot i */
	size_t *insert_order, *remove_order;
	uint64_t *points;		/* n query points */
	struct iopt_itree_root root;
	struct range *array;		/* the baseline */
	size_t array_len;
};

static uint64_t rng_state = 0x5eed1e55ull;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size);

	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

static void shuffle(size_t *v, size_t n)
{
	size_t i;

	for (i = 0; i != n; i++)
		v[i] = i;
	for (i = n; i > 1; i--) {
		size_t j = (size_t)(rng_next() % i), t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

static void fixture_init(struct fixture *fx, size_t n)
{
	size_t i;

	memset(fx, 0, sizeof(*fx));
	fx->n = n;
	fx->nodes = xmalloc(n * sizeof(*fx->nodes));
	fx->insert_order = xmalloc(n * sizeof(size_t));
	fx->remove_order = xmalloc(n * sizeof(size_t));
	fx->points = xmalloc(n * sizeof(uint64_t));
	fx->array = xmalloc(n * sizeof(*fx->array));
	for (i = 0; i != n; i++) {
		fx->nodes[i].start = AREA_BASE + i * AREA_STRIDE;
		fx->nodes[i].last = fx->nodes[i].start + AREA_SIZE - 1;
		/* Anywhere in the slot: the first half hits, the second misses. */
		fx->points[i] = AREA_BASE + (rng_next() % n) * AREA_STRIDE +
				rng_next() % AREA_STRIDE;
	}
	shuffle(fx->insert_order, n);
	shuffle(fx->remove_order, n);
}

static void fixture_destroy(struct fixture *fx)
{
	free(fx->nodes);
	free(fx->insert_order);
	free(fx->remove_order);
	free(fx->points);
	free(fx->array);
}

/* ---- the tree phases ---- */

static PHASE void tree_insert_all(struct fixture *fx)
{
	size_t i;

	for (i = 0; i != fx->n; i++)
		iopt_itree_insert(&fx->nodes[fx->insert_order[i]], &fx->root);
}

static PHASE void tree_remove_all(struct fixture *fx)
{
	size_t i;

	for (i = 0; i != fx->n; i++)
		iopt_itree_remove(&fx->nodes[fx->remove_order[i]], &fx->root);
}

static PHASE uint64_t tree_query_points(struct fixture *fx)
{
	uint64_t hits = 0;
	size_t i;

	for (i = 0; i != fx->n; i++)
		hits += iopt_itree_iter_first(&fx->root, fx->points[i],
					      fx->points[i]) != NULL;
	return hits;
}

static PHASE uint64_t tree_iterate_all(struct fixture *fx)
{
	struct iopt_itree_node *node;
	uint64_t sum = 0;

	iopt_itree_for_each(node, &fx->root, 0, UINT64_MAX)
		sum += node->start;
	return sum;
}

static PHASE uint64_t tree_walk_all(struct fixture *fx)
{
	struct iopt_itree_node *node;
	uint64_t sum = 0;

	for (node = iopt_itree_first(&fx->root); node; node = iopt_itree_next(node))
		sum += node->start;
	return sum;
}

/* ---- the sorted-array baseline ---- */

/* Index of the first element whose start is >= @start. */
static size_t array_lower_bound(const struct fixture *fx, uint64_t start)
{
	size_t lo = 0, hi = fx->array_len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (fx->array[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void array_insert(struct fixture *fx, const struct iopt_itree_node *node)
{
	size_t pos = array_lower_bound(fx, node->start);

	memmove(&fx->array[pos + 1], &fx->array[pos],
		(fx->array_len - pos) * sizeof(*fx->array));
	fx->array[pos].start = node->start;
	fx->array[pos].last = node->last;
	fx->array_len++;
}

/* Untimed: the array holding every slot except the last @k inserted ones. */
static void array_prefill(struct fixture *fx, size_t k)
{
	bool *later = calloc(fx->n, sizeof(bool));
	size_t i;

	if (!later)
		exit(1);
	for (i = fx->n - k; i != fx->n; i++)
		later[fx->insert_order[i]] = true;
	fx->array_len = 0;
	for (i = 0; i != fx->n; i++) {
		if (later[i])
			continue;
		fx->array[fx->array_len].start = fx->nodes[i].start;
		fx->array[fx->array_len++].last = fx->nodes[i].last;
	}
	free(later);
}

static PHASE void array_insert_last(struct fixture *fx, size_t k)
{
	size_t i;

	for (i = fx->n - k; i != fx->n; i++)
		array_insert(fx, &fx->nodes[fx->insert_order[i]]);
}

static PHASE void array_remove_first(struct fixture *fx, size_t k)
{
	size_t i;

	for (i = 0; i != k; i++) {
		size_t pos = array_lower_bound(fx, fx->nodes[fx->remove_order[i]].start);

		memmove(&fx->array[pos], &fx->array[pos + 1],
			(fx->array_len - pos - 1) * sizeof(*fx->array));
		fx->array_len--;
	}
}

static PHASE uint64_t array_query_points(struct fixture *fx)
{
	uint64_t hits = 0;
	size_t i;

	for (i = 0; i != fx->n; i++) {
		uint64_t p = fx->points[i];
		size_t pos = array_lower_bound(fx, p + 1);

		/* The candidate is the last area starting at or before p. */
		hits += pos && fx->array[pos - 1].last >= p;
	}
	return hits;
}

static PHASE uint64_t array_iterate_all(struct fixture *fx)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i != fx->array_len; i++)
		sum += fx->array[i].start;
	return sum;
}

/* ---- driver ---- */

enum { T_INSERT, T_QUERY, T_ITER, T_WALK, T_REMOVE, NR_TIMES };

/* Best (lowest) ns per op of each phase over the rounds: the machine is shared. */
struct times {
	double tree[NR_TIMES];
	double array[NR_TIMES];
};

#define TIMED(best, nops, expr)                                                \
	do {                                                                   \
		uint64_t t0_ = bench_now_ns();                                 \
		double per_op_;                                                \
		expr;                                                          \
		per_op_ = (double)(bench_now_ns() - t0_) / (double)(nops);     \
		if (per_op_ < (best))                                          \
			(best) = per_op_;                                      \
	} while (0)

static void times_init(struct times *t)
{
	unsigned int i;

	for (i = 0; i != NR_TIMES; i++)
		t->tree[i] = t->array[i] = 1e300;
}

static void one_round(struct fixture *fx, struct times *t, size_t sample)
{
	size_t n = fx->n, k = n < sample ? n : sample;

	TIMED(t->tree[T_INSERT], n, tree_insert_all(fx));
	if (iopt_itree_check(&fx->root)) {
		fprintf(stderr, "tree check failed\n");
		exit(1);
	}
	TIMED(t->tree[T_QUERY], n, bench_keep(tree_query_points(fx)));
	TIMED(t->tree[T_ITER], n, bench_keep(tree_iterate_all(fx)));
	TIMED(t->tree[T_WALK], n, bench_keep(tree_walk_all(fx)));
	TIMED(t->tree[T_REMOVE], n, tree_remove_all(fx));

	array_prefill(fx, k);
	TIMED(t->array[T_INSERT], k, array_insert_last(fx, k));
	TIMED(t->array[T_QUERY], n, bench_keep(array_query_points(fx)));
	TIMED(t->array[T_ITER], n, bench_keep(array_iterate_all(fx)));
	t->array[T_WALK] = t->array[T_ITER];
	TIMED(t->array[T_REMOVE], k, array_remove_first(fx, k));
}

static void run_size(size_t n)
{
	static const char *const names[NR_TIMES] = {
		"insert (random order)", "point query (iter_first)",
		"iterate overlap [0,MAX] per node", "in-order walk per node",
		"remove (random order)",
	};
	/* ~1e6 tree operations per phase, and at least 3 rounds. */
	unsigned int rounds = n >= 300000 ? 3 : (unsigned int)(1000000 / n), r, i;
	struct fixture fx;
	struct times t;

	times_init(&t);
	fixture_init(&fx, n);
	for (r = 0; r != rounds; r++)
		one_round(&fx, &t, ARRAY_SAMPLE);
	printf("N = %zu (best of %u rounds)\n", n, rounds);
	for (i = 0; i != NR_TIMES; i++) {
		char what[64];

		snprintf(what, sizeof(what), "  %s", names[i]);
		bench_report(what, t.tree[i], t.array[i], "ns/op");
	}
	fixture_destroy(&fx);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--callgrind")) {
		struct fixture fx;
		struct times t;

		/* A smaller array sample keeps callgrind's run short. */
		times_init(&t);
		fixture_init(&fx, 100000);
		one_round(&fx, &t, 1000);
		fixture_destroy(&fx);
		printf("N = 100000, one round of each phase\n");
		return 0;
	}
	printf("interval tree vs sorted array (baseline); array insert/remove "
	       "sampled on the last %d ops at size ~N\n", ARRAY_SAMPLE);
	run_size(1000);
	run_size(100000);
	run_size(1000000);
	return 0;
}
