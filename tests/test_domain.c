/* SPDX-License-Identifier: MIT */
/*
 * test_domain.c - the core-facing domain helpers (src/domain.c): page-size
 * splitting vectors, all-or-nothing map, gathered unmap, and the checks on
 * a backend.
 *
 * A recording backend captures every (iova, paddr, pgsize, pgcount) call so
 * the vectors pin the exact sequence iommu_pgsize() would produce
 * (domain-contract.md §1.2-1.3); it can fail a chosen call after mapping part
 * of it, to prove the unwind unmaps exactly what was reported in *mapped.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>

#include "domain.h"
#include "util.h"

#define SZ_2K	(UINT64_C(1) << 11)
#define SZ_4K	(UINT64_C(1) << 12)
#define SZ_1M	(UINT64_C(1) << 20)
#define SZ_2M	(UINT64_C(1) << 21)
#define SZ_1G	(UINT64_C(1) << 30)
#define X86_SIZES (SZ_4K | SZ_2M | SZ_1G)
#define MAX_CALLS 64

struct call {
	uint64_t iova, paddr, pgsize, pgcount;
};

struct rec_domain {
	struct iopt_domain d;
	struct call maps[MAX_CALLS];
	unsigned int nr_maps;
	struct call unmaps[MAX_CALLS];
	unsigned int nr_unmaps;
	unsigned int syncs;
	unsigned int quiesces;
	int fail_map_call;		/* 1-based call number to fail, 0 none */
	uint64_t fail_partial;		/* bytes that call maps before failing */
	uint64_t unmap_extra;		/* pretend a leaf ran this far past */
	uint64_t mapped_total;
};

static struct rec_domain *to_rec(struct iopt_domain *d)
{
	return container_of(d, struct rec_domain, d);
}

static int rec_map(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
		   uint64_t pgsize, uint64_t pgcount, int prot, uint64_t *mapped)
{
	struct rec_domain *r = to_rec(d);

	(void)prot;
	assert_true(r->nr_maps < MAX_CALLS);
	r->maps[r->nr_maps++] = (struct call){ iova, paddr, pgsize, pgcount };
	if (r->fail_map_call && (int)r->nr_maps == r->fail_map_call) {
		*mapped += r->fail_partial;
		r->mapped_total += r->fail_partial;
		return -ENOMEM;
	}
	*mapped += pgsize * pgcount;
	r->mapped_total += pgsize * pgcount;
	return 0;
}

static uint64_t rec_unmap(struct iopt_domain *d, uint64_t iova, uint64_t pgsize,
			  uint64_t pgcount, struct iopt_iotlb_gather *g)
{
	struct rec_domain *r = to_rec(d);
	uint64_t len = pgsize * pgcount + r->unmap_extra;

	assert_true(r->nr_unmaps < MAX_CALLS);
	r->unmaps[r->nr_unmaps++] = (struct call){ iova, iova, pgsize, pgcount };
	iopt_iotlb_gather_add_range(g, iova, iova + len - 1);
	return len;
}

static uint64_t rec_iova_to_phys(struct iopt_domain *d, uint64_t iova)
{
	(void)d;
	return iova;
}

static void rec_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g)
{
	(void)g;
	to_rec(d)->syncs++;
}

static void rec_flush(struct iopt_domain *d)
{
	(void)d;
}

static void rec_quiesce(struct iopt_domain *d)
{
	to_rec(d)->quiesces++;
}

static void rec_free(struct iopt_domain *d)
{
	(void)d;
}

static const struct iopt_domain_ops rec_ops = {
	.map_pages = rec_map,
	.unmap_pages = rec_unmap,
	.iova_to_phys = rec_iova_to_phys,
	.iotlb_sync = rec_sync,
	.flush_iotlb_all = rec_flush,
	.quiesce = rec_quiesce,
	.free = rec_free,
};

static void rec_init(struct rec_domain *r, uint64_t bitmap)
{
	memset(r, 0, sizeof(*r));
	r->d.ops = &rec_ops;
	r->d.pgsize_bitmap = bitmap;
	r->d.aperture_last = UINT64_MAX;
}

static void assert_call(const struct call *c, uint64_t iova, uint64_t paddr,
			uint64_t pgsize, uint64_t pgcount)
{
	assert_int_equal(c->iova, iova);
	assert_int_equal(c->paddr, paddr);
	assert_int_equal(c->pgsize, pgsize);
	assert_int_equal(c->pgcount, pgcount);
}

/* The contract's own example: 2 x 4K up to the 2M boundary, then 2 x 2M. */
static void test_pgsize_contract_example(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	assert_int_equal(iopt_domain_map(&r.d, 0x1FE000, 0x1FE000, 0x402000,
					 IOPT_PROT_READ), 0);
	assert_int_equal(r.nr_maps, 2);
	assert_call(&r.maps[0], 0x1FE000, 0x1FE000, SZ_4K, 2);
	assert_call(&r.maps[1], 0x200000, 0x200000, SZ_2M, 2);
	assert_int_equal(r.syncs, 0);
}

/* iova ^ pa not 2M aligned: every page is 4K, in one call. */
static void test_pgsize_misaligned_pa(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	assert_int_equal(iopt_domain_map(&r.d, 0x200000, 0x201000, 4 * SZ_2M,
					 IOPT_PROT_READ), 0);
	assert_int_equal(r.nr_maps, 1);
	assert_call(&r.maps[0], 0x200000, 0x201000, SZ_4K, 2048);
}

/* The mixed golden range splits 14 x 2M, 3 x 1G, 3 x 2M. */
static void test_pgsize_mixed_golden(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	assert_int_equal(iopt_domain_map(&r.d, 0x3FE400000, 0x3FE400000,
					 0xC2200000, IOPT_PROT_WRITE), 0);
	assert_int_equal(r.nr_maps, 3);
	assert_call(&r.maps[0], 0x3FE400000, 0x3FE400000, SZ_2M, 14);
	assert_call(&r.maps[1], 0x400000000, 0x400000000, SZ_1G, 3);
	assert_call(&r.maps[2], 0x4C0000000, 0x4C0000000, SZ_2M, 3);
}

/* A larger page that does not fully fit past the boundary is not waited for. */
static void test_pgsize_no_early_stop(void **state)
{
	uint64_t count;

	(void)state;
	/* 0x1FE000 + 0x200000: the 2M page after the boundary does not fit. */
	assert_int_equal(iopt_domain_pgsize(X86_SIZES, 0x1FE000, 0x1FE000,
					    0x200000, &count), SZ_4K);
	assert_int_equal(count, 0x200);
	/* Exactly one larger page past the boundary: stop at the boundary. */
	assert_int_equal(iopt_domain_pgsize(X86_SIZES, 0x1FE000, 0x1FE000,
					    0x202000, &count), SZ_4K);
	assert_int_equal(count, 2);
	/* Zero address: every size is aligned; the length decides. */
	assert_int_equal(iopt_domain_pgsize(X86_SIZES, 0, 0, SZ_1G + SZ_4K,
					    &count), SZ_1G);
	assert_int_equal(count, 1);
	/* Nothing fits. */
	assert_int_equal(iopt_domain_pgsize(X86_SIZES, 0x800, 0x800, SZ_4K,
					    &count), 0);
	assert_int_equal(count, 0);
}

/* The selftest mock's bitmaps: 2K granule with 1M, and 1M | 4K. */
static void test_pgsize_mock_bitmaps(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, SZ_2K | SZ_1M);
	assert_int_equal(iopt_domain_map(&r.d, 0xFF800, 0xFF800,
					 SZ_1M + 2 * SZ_2K, IOPT_PROT_READ), 0);
	assert_int_equal(r.nr_maps, 3);
	assert_call(&r.maps[0], 0xFF800, 0xFF800, SZ_2K, 1);
	assert_call(&r.maps[1], 0x100000, 0x100000, SZ_1M, 1);
	assert_call(&r.maps[2], 0x200000, 0x200000, SZ_2K, 1);

	rec_init(&r, SZ_4K | SZ_1M);
	assert_int_equal(iopt_domain_map(&r.d, 0x100000, 0x100000, 2 * SZ_1M,
					 IOPT_PROT_READ), 0);
	assert_int_equal(r.nr_maps, 1);
	assert_call(&r.maps[0], 0x100000, 0x100000, SZ_1M, 2);
}

/* Misaligned or empty requests never reach the backend. */
static void test_map_rejects_bad_args(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	assert_int_equal(iopt_domain_map(&r.d, 0x800, 0x1000, SZ_4K,
					 IOPT_PROT_READ), -EINVAL);
	assert_int_equal(iopt_domain_map(&r.d, 0x1000, 0x1800, SZ_4K,
					 IOPT_PROT_READ), -EINVAL);
	assert_int_equal(iopt_domain_map(&r.d, 0x1000, 0x1000, 0x800,
					 IOPT_PROT_READ), -EINVAL);
	assert_int_equal(iopt_domain_map(&r.d, 0x1000, 0x1000, 0,
					 IOPT_PROT_READ), -EINVAL);
	assert_int_equal(iopt_domain_map(&r.d, UINT64_MAX - 0xFFF, 0,
					 2 * SZ_4K, IOPT_PROT_READ), -EINVAL);
	assert_int_equal(r.nr_maps, 0);
	assert_int_equal(r.nr_unmaps, 0);
}

/* A failing call: what *mapped reported is unmapped, synced, quiesced. */
static void test_map_unwinds_exactly(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	r.fail_map_call = 2;
	r.fail_partial = SZ_2M;		/* half of the (2M x 2) call */
	assert_int_equal(iopt_domain_map(&r.d, 0x1FE000, 0x1FE000, 0x402000,
					 IOPT_PROT_READ), -ENOMEM);
	assert_int_equal(r.nr_maps, 2);
	/* 2 x 4K + 1 x 2M were mapped: unmap 0x1FE000 + 0x202000. */
	assert_int_equal(r.nr_unmaps, 2);
	assert_call(&r.unmaps[0], 0x1FE000, 0x1FE000, SZ_4K, 2);
	assert_call(&r.unmaps[1], 0x200000, 0x200000, SZ_2M, 1);
	assert_int_equal(r.syncs, 1);
	assert_int_equal(r.quiesces, 1);
}

/* Failure in the very first call with nothing mapped: no unmap at all. */
static void test_map_first_call_fails(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	r.fail_map_call = 1;
	assert_int_equal(iopt_domain_map(&r.d, 0, 0, SZ_2M, IOPT_PROT_READ),
			 -ENOMEM);
	assert_int_equal(r.nr_unmaps, 0);
	assert_int_equal(r.syncs, 0);
}

/* Unmap picks sizes from the IOVA alone, and stops when a leaf overshoots. */
static void test_unmap_split_and_overshoot(void **state)
{
	struct iopt_iotlb_gather g;
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(iopt_domain_unmap(&r.d, 0x1FE000, 0x402000, &g),
			 0x402000);
	assert_int_equal(r.nr_unmaps, 2);
	assert_call(&r.unmaps[0], 0x1FE000, 0x1FE000, SZ_4K, 2);
	assert_call(&r.unmaps[1], 0x200000, 0x200000, SZ_2M, 2);
	assert_int_equal(g.start, 0x1FE000);
	assert_int_equal(g.last, 0x1FE000 + 0x402000 - 1);
	assert_int_equal(r.syncs, 0);	/* the _fast variant leaves it to us */

	rec_init(&r, X86_SIZES);
	r.unmap_extra = SZ_2M - SZ_4K;	/* the 4K hint hit a 2M leaf */
	iopt_iotlb_gather_init(&g);
	assert_int_equal(iopt_domain_unmap(&r.d, 0, SZ_4K, &g), SZ_2M);
	assert_int_equal(r.nr_unmaps, 1);

	/* Misaligned: nothing is called. */
	assert_int_equal(iopt_domain_unmap(&r.d, 0x800, SZ_4K, &g), 0);
	assert_int_equal(r.nr_unmaps, 1);
}

/* A range ending at UINT64_MAX is representable. */
static void test_unmap_top_of_space(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	assert_int_equal(iopt_domain_unmap_sync(&r.d, UINT64_MAX - SZ_2M + 1,
						SZ_2M), SZ_2M);
	assert_int_equal(r.nr_unmaps, 1);
	assert_call(&r.unmaps[0], UINT64_MAX - SZ_2M + 1,
		    UINT64_MAX - SZ_2M + 1, SZ_2M, 1);
	assert_int_equal(r.syncs, 1);
}

static void test_check_backend(void **state)
{
	struct rec_domain r;

	(void)state;
	rec_init(&r, X86_SIZES);
	assert_int_equal(iopt_domain_check(&r.d), 0);
	r.d.pgsize_bitmap = SZ_2M | SZ_1G;	/* nothing <= CPU page */
	assert_int_equal(iopt_domain_check(&r.d), -EINVAL);
	r.d.pgsize_bitmap = SZ_2K;
	assert_int_equal(iopt_domain_check(&r.d), 0);
	r.d.aperture_start = 2;
	r.d.aperture_last = 1;
	assert_int_equal(iopt_domain_check(&r.d), -EINVAL);
}

static void test_gather_helpers(void **state)
{
	struct iopt_iotlb_gather g;
	struct iopt_gather_page p1, p2;

	(void)state;
	iopt_iotlb_gather_init(&g);
	assert_true(iopt_iotlb_gather_is_empty(&g));
	iopt_iotlb_gather_add_range(&g, 0x5000, 0x5FFF);
	iopt_iotlb_gather_add_range(&g, 0x1000, 0x1FFF);
	assert_int_equal(g.start, 0x1000);
	assert_int_equal(g.last, 0x5FFF);
	iopt_iotlb_gather_init(&g);
	iopt_iotlb_gather_add_range(&g, UINT64_MAX, UINT64_MAX);
	assert_int_equal(g.start, UINT64_MAX);
	assert_int_equal(g.last, UINT64_MAX);
	assert_false(iopt_iotlb_gather_is_empty(&g));
	iopt_iotlb_gather_init(&g);
	iopt_iotlb_gather_add_page(&g, &p1, 0);
	iopt_iotlb_gather_add_page(&g, &p2, 2);
	assert_ptr_equal(g.freelist, &p2);
	assert_ptr_equal(p2.next, &p1);
	assert_null(p1.next);
	assert_int_equal(g.table_levels, 5);
	assert_false(iopt_iotlb_gather_is_empty(&g));
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_pgsize_contract_example),
	cmocka_unit_test(test_pgsize_misaligned_pa),
	cmocka_unit_test(test_pgsize_mixed_golden),
	cmocka_unit_test(test_pgsize_no_early_stop),
	cmocka_unit_test(test_pgsize_mock_bitmaps),
	cmocka_unit_test(test_map_rejects_bad_args),
	cmocka_unit_test(test_map_unwinds_exactly),
	cmocka_unit_test(test_map_first_call_fails),
	cmocka_unit_test(test_unmap_split_and_overshoot),
	cmocka_unit_test(test_unmap_top_of_space),
	cmocka_unit_test(test_check_backend),
	cmocka_unit_test(test_gather_helpers),
};

IOPT_TEST_MAIN(tests)
