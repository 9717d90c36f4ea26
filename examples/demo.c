/* SPDX-License-Identifier: MIT */
/*
 * demo.c - libiopt end to end, printing what happened.
 *
 * Today the stack under the IOAS is the interval tree that every IOVA structure of
 * the library is built on, so the demo drives it through what a VMM does to an IO
 * address space: lay out guest RAM around an MMIO hole, reserve the MSI window,
 * allocate IOVA for device buffers first-fit with the span iterator, resolve DMA
 * addresses to the mapping that holds them, and tear a region down. Every step
 * checks its result and the tree's invariants; the exit code is 0 only if all held.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <iopt/iopt.h>

#include "interval_tree.h"
#include "util.h"

#define SZ_4K 0x1000ull
#define SZ_2M 0x200000ull
#define SZ_1G 0x40000000ull

struct mapping {
	struct iopt_itree_node node;
	const char *what;
};

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("  FAILED: %s\n", what);
		failures++;
	}
}

static struct mapping *map_fixed(struct iopt_itree_root *root, uint64_t iova,
				 uint64_t length, const char *what)
{
	struct mapping *m = calloc(1, sizeof(*m));

	if (!m)
		exit(2);
	m->node.start = iova;
	m->node.last = iova + length - 1;
	m->what = what;
	check(!iopt_itree_iter_first(root, m->node.start, m->node.last),
	      "fixed mapping must not overlap");
	iopt_itree_insert(&m->node, root);
	printf("  map   [0x%011" PRIx64 ", 0x%011" PRIx64 "] %s\n", m->node.start,
	       m->node.last, what);
	return m;
}

/* First fit: the lowest hole of the used set that holds an aligned length. */
static int alloc_iova(struct iopt_itree_root *used, uint64_t length,
		      uint64_t align, uint64_t *iova)
{
	struct iopt_span_iter span;

	/* Never hand out page 0, as the kernel's allocator. */
	iopt_for_each_span(&span, used, SZ_4K, UINT64_MAX) {
		uint64_t start = IOPT_ALIGN_UP(span.start_hole, align);

		if (!span.is_hole || start < span.start_hole)
			continue;
		if (start <= span.last_hole && span.last_hole - start >= length - 1) {
			*iova = start;
			return 0;
		}
	}
	return -1;
}

static struct mapping *lookup(struct iopt_itree_root *root, uint64_t iova)
{
	struct iopt_itree_node *n = iopt_itree_iter_first(root, iova, iova);

	return n ? container_of(n, struct mapping, node) : NULL;
}

int main(void)
{
	struct iopt_itree_root areas = { 0 };
	struct iopt_itree_node *n;
	struct mapping *low, *high, *msi, *m;
	uint64_t iova, total = 0;
	unsigned int i, count = 0;

	printf("libiopt %s demo: an IO address space on the interval tree\n\n",
	       iopt_version_string());

	printf("1. guest RAM around the 32-bit MMIO hole, and the MSI window\n");
	low = map_fixed(&areas, 0, 3 * SZ_1G, "guest RAM below 4G");
	high = map_fixed(&areas, 4 * SZ_1G, 13 * SZ_1G, "guest RAM above 4G");
	msi = map_fixed(&areas, 0xfee00000ull, SZ_1G >> 10, "reserved: MSI window");
	check(iopt_itree_check(&areas) == 0, "tree invariants");

	printf("\n2. allocate IOVA for device buffers, first fit, 2M aligned\n");
	for (i = 0; i < 4; i++) {
		uint64_t len = (i + 1) * SZ_2M + SZ_4K;

		check(alloc_iova(&areas, len, SZ_2M, &iova) == 0, "allocation");
		map_fixed(&areas, iova, len, "device buffer");
		check(iova >= 3 * SZ_1G && iova < 4 * SZ_1G,
		      "buffers land in the MMIO hole, the first free space");
	}
	check(iopt_itree_check(&areas) == 0, "tree invariants");

	printf("\n3. resolve DMA addresses to the mapping that holds them\n");
	{
		const uint64_t probes[] = { 0x1000, 0xfee00010ull, 5 * SZ_1G + 12345,
					    3 * SZ_1G + SZ_1G / 2, 17 * SZ_1G + 1 };

		for (i = 0; i < IOPT_ARRAY_SIZE(probes); i++) {
			m = lookup(&areas, probes[i]);
			printf("  0x%011" PRIx64 " -> %s\n", probes[i],
			       m ? m->what : "no mapping (would fault)");
		}
		check(lookup(&areas, probes[0]) == low, "low RAM lookup");
		check(lookup(&areas, probes[1]) == msi, "MSI lookup");
		check(lookup(&areas, probes[2]) == high, "high RAM lookup");
		check(lookup(&areas, probes[4]) == NULL, "past the end faults");
	}

	printf("\n4. unplug the high RAM region, then walk what is left\n");
	iopt_itree_remove(&high->node, &areas);
	free(high);
	check(lookup(&areas, 5 * SZ_1G) == NULL, "unplugged RAM is gone");
	for (n = iopt_itree_first(&areas); n; n = iopt_itree_next(n)) {
		count++;
		total += n->last - n->start + 1;
	}
	printf("  %u mappings, %" PRIu64 " MiB mapped\n", count, total >> 20);
	check(count == 6, "six mappings remain");
	check(iopt_itree_check(&areas) == 0, "tree invariants");

	while ((n = iopt_itree_first(&areas))) {
		iopt_itree_remove(n, &areas);
		free(container_of(n, struct mapping, node));
	}
	printf("\n%s\n", failures ? "demo FAILED" : "demo OK: every check held");
	return failures ? 1 : 0;
}
