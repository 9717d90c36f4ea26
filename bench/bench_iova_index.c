/* SPDX-License-Identifier: MIT */
/*
 * bench_iova_index.c - point lookup, insert and remove of the radix IOVA
 * index (src/iova_index.[ch]) against, in the same run, the area interval
 * tree's iopt_itree_iter_first() and a binary search over a sorted array.
 *
 * Layouts, N areas of 4 KiB each, embedded in 144-byte "areas" (the size of
 * struct iopt_area) so that a lookup pays for touching the area as the real
 * one does:
 *  - dense: back to back from 1 MiB, inserted in ascending order (what
 *    auto-IOVA map produces);
 *  - sparse: at random 4 KiB-aligned IOVAs over the whole 64-bit space,
 *    inserted in random order (the index's worst case for memory).
 * Lookups are N random IOVAs, each inside a random area, the same sequence
 * for all three structures. Each figure is the best of a few rounds.
 *
 * Usage: bench_iova_index [max_n]   (default 1000000; runs 1e5 and max_n)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "interval_tree.h"
#include "iova_index.h"

#define AREA_SIZE 144
#define ROUNDS 3

struct fake_area {
	struct iopt_itree_node node;
	char pad[AREA_SIZE - sizeof(struct iopt_itree_node)];
};

struct range {
	uint64_t start, last;
};

/* splitmix64: fixed sequence, so every run measures the same layouts */
static uint64_t rnd(void)
{
	static uint64_t state = 0x1dea5eedull;
	uint64_t z = (state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static const struct range *array_find(const struct range *r, size_t n,
				      uint64_t iova)
{
	size_t lo = 0, hi = n;

	/* first element starting after iova; its predecessor may hold it */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].start <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && r[lo - 1].last >= iova)
		return &r[lo - 1];
	return NULL;
}

/* Unique random page-aligned starts over 2^64 (sorted to weed out dups). */
static void place_sparse(struct fake_area *areas, size_t n)
{
	struct range *tmp = malloc(n * sizeof(*tmp));
	size_t i;
	bool again = true;

	while (again) {
		again = false;
		for (i = 0; i != n; i++)
			tmp[i].start = rnd() & ~UINT64_C(0xfff);
		qsort(tmp, n, sizeof(*tmp), cmp_range);
		for (i = 1; i != n; i++)
			if (tmp[i].start == tmp[i - 1].start)
				again = true;
	}
	/* shuffle so the insert order is random */
	for (i = n - 1; i; i--) {
		size_t j = rnd() % (i + 1);
		uint64_t t = tmp[i].start;

		tmp[i].start = tmp[j].start;
		tmp[j].start = t;
	}
	for (i = 0; i != n; i++)
		areas[i].node.start = tmp[i].start;
	free(tmp);
}

static double per_op(uint64_t t0, size_t n)
{
	return (double)(bench_now_ns() - t0) / (double)n;
}

static void run(size_t n, bool sparse)
{
	struct fake_area *areas = calloc(n, sizeof(*areas));
	struct range *sorted = malloc(n * sizeof(*sorted));
	uint64_t *queries = malloc(n * sizeof(*queries));
	double best_idx = 1e30, best_tree = 1e30, best_arr = 1e30;
	double best_ins = 1e30, best_rm = 1e30, tree_ins = 1e30, tree_rm = 1e30;
	struct iopt_itree_root tree = { 0 };
	struct iopt_iova_index idx;
	size_t i, bytes = 0;
	char what[96];
	int r;

	if (!areas || !sorted || !queries) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	if (sparse)
		place_sparse(areas, n);
	for (i = 0; i != n; i++) {
		if (!sparse)
			areas[i].node.start = 0x100000 + (uint64_t)i * 4096;
		areas[i].node.last = areas[i].node.start + 4095;
		sorted[i] = (struct range){ areas[i].node.start,
					    areas[i].node.last };
		iopt_itree_insert(&areas[i].node, &tree);
	}
	qsort(sorted, n, sizeof(*sorted), cmp_range);
	for (i = 0; i != n; i++)
		queries[i] = areas[rnd() % n].node.start + rnd() % 4096;

	iopt_iova_index_init(&idx);
	for (r = 0; r != ROUNDS; r++) {
		uint64_t t0 = bench_now_ns(), sum = 0;
		double t;

		for (i = 0; i != n; i++)
			if (iopt_iova_index_insert(&idx, &areas[i].node))
				exit(1);
		t = per_op(t0, n);
		best_ins = t < best_ins ? t : best_ins;
		bytes = iopt_iova_index_bytes(&idx);

		t0 = bench_now_ns();
		for (i = 0; i != n; i++)
			sum += iopt_iova_index_lookup(&idx, queries[i])->start;
		t = per_op(t0, n);
		best_idx = t < best_idx ? t : best_idx;

		t0 = bench_now_ns();
		for (i = 0; i != n; i++)
			sum += iopt_itree_iter_first(&tree, queries[i],
						     queries[i])->start;
		t = per_op(t0, n);
		best_tree = t < best_tree ? t : best_tree;

		t0 = bench_now_ns();
		for (i = 0; i != n; i++)
			sum += array_find(sorted, n, queries[i])->start;
		t = per_op(t0, n);
		best_arr = t < best_arr ? t : best_arr;
		bench_keep(sum);

		t0 = bench_now_ns();
		for (i = 0; i != n; i++)
			iopt_iova_index_remove(&idx, &areas[i].node);
		t = per_op(t0, n);
		best_rm = t < best_rm ? t : best_rm;

		/* the tree's own update cost, same order, as the reference */
		t0 = bench_now_ns();
		for (i = 0; i != n; i++)
			iopt_itree_remove(&areas[i].node, &tree);
		t = per_op(t0, n);
		tree_rm = t < tree_rm ? t : tree_rm;
		t0 = bench_now_ns();
		for (i = 0; i != n; i++)
			iopt_itree_insert(&areas[i].node, &tree);
		t = per_op(t0, n);
		tree_ins = t < tree_ins ? t : tree_ins;
	}
	if (idx.nr_nodes)
		exit(1);

	printf("\n== N = %zu, %s 4 KiB areas ==\n", n,
	       sparse ? "sparse (random over 2^64)" : "dense");
	snprintf(what, sizeof(what), "lookup: index vs itree_iter_first");
	bench_report(what, best_idx, best_tree, "ns/op");
	snprintf(what, sizeof(what), "lookup: index vs sorted array bsearch");
	bench_report(what, best_idx, best_arr, "ns/op");
	snprintf(what, sizeof(what), "insert: index vs itree insert");
	bench_report(what, best_ins, tree_ins, "ns/op");
	snprintf(what, sizeof(what), "remove: index vs itree remove");
	bench_report(what, best_rm, tree_rm, "ns/op");
	printf("%-44s %12.1f B/area (index nodes only, %zu nodes)\n",
	       "index memory", (double)bytes / (double)n,
	       bytes / (IOPT_IOVA_INDEX_SLOTS * sizeof(uintptr_t)));
	free(queries);
	free(sorted);
	free(areas);
}

int main(int argc, char **argv)
{
	size_t max_n = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;

	run(100000, false);
	run(100000, true);
	if (max_n > 100000) {
		run(max_n, false);
		run(max_n, true);
	}
	return 0;
}
