/* SPDX-License-Identifier: MIT */
/*
 * test_dirty.c - dirty tracking through an IOAS over the simulated IOMMU:
 * enabling clears stale state, device writes (simulated DMA) show up in the
 * caller's bitmap at the requested granule, read-and-clear versus NO_CLEAR,
 * whole huge leaves, unaligned bitmaps and OR semantics, and our deliberate
 * differences from the kernel (a hole in the range, or a read while tracking
 * is off, is an error).
 *
 * Cases citing "sem5_N" check iopt-semantics.md §5.N, "kst_N"
 * kernel-selftests.md §4.N, "diff_" a deliberate difference from the
 * kernel. The simulator's written-page set is the ground truth every bitmap
 * is compared with.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/sim.h>

#include "io_pagetable.h"

#define PAGE IOPT_PAGE_SIZE
#define HPAGE IOPT_HPAGE_SIZE
#define FIXED                                                                  \
	(IOPT_IOAS_MAP_FIXED_IOVA | IOPT_IOAS_MAP_READABLE |                   \
	 IOPT_IOAS_MAP_WRITEABLE)
#define SMALL_IOVA UINT64_C(0x1000000)	/* 16 pages */
#define HUGE_IOVA UINT64_C(0x40000000)	/* one 2 MiB leaf */
#define BUF_SIZE (2 * HPAGE)

struct fix {
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *domain;
	struct iopt_sim_dev *dev;
	void *raw;
	uint8_t *buf;		/* HPAGE aligned: [0, HPAGE) huge, then small */
};

static int fix_setup(void **state)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		/* a 2 MiB-aligned pin is one aligned frame run, THP or not */
		.phys_model = IOPT_PHYS_CONTIGUOUS,
	};
	/* AMD v1 could use 64 KiB leaves, which dirty 16 pages at once */
	struct iopt_sim_domain_config dcfg = { .pgsize_mask = PAGE | HPAGE };
	struct fix *f = calloc(1, sizeof(*f));
	uint64_t iova;

	assert_non_null(f);
	f->raw = mmap(NULL, BUF_SIZE + HPAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->raw != MAP_FAILED);
	f->buf = (uint8_t *)IOPT_ALIGN_UP((uintptr_t)f->raw, (uintptr_t)HPAGE);
	memset(f->buf, 0x5a, BUF_SIZE);
	assert_int_equal(iopt_ctx_alloc(&opts, &f->ctx), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas), 0);
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &dcfg, &f->domain), 0);
	assert_int_equal(iopt_sim_dev_alloc(f->iommu, 1, &f->dev), 0);
	assert_int_equal(iopt_sim_dev_attach(f->dev, f->domain), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, f->domain), 0);
	iova = HUGE_IOVA;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, HPAGE, &iova, FIXED), 0);
	iova = SMALL_IOVA;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + HPAGE, 16 * PAGE,
				       &iova, FIXED), 0);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, f->domain, true),
			 0);
	*state = f;
	return 0;
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;

	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	iopt_ioas_detach_domain(f->ioas, f->domain);
	assert_int_equal(iopt_sim_dev_attach(f->dev, NULL), 0);
	iopt_sim_dev_destroy(f->dev);
	f->domain->ops->free(f->domain);
	iopt_sim_iommu_destroy(f->iommu);
	assert_int_equal(iopt_ioas_destroy(f->ioas), 0);
	iopt_ctx_destroy(f->ctx);
	munmap(f->raw, BUF_SIZE + HPAGE);
	free(f);
	return 0;
}

static void dma_write(struct fix *f, uint64_t iova)
{
	uint8_t byte = 0xee;

	assert_int_equal(iopt_sim_dma_write(f->dev, iova, &byte, 1), 1);
}

static bool bit_test(const uint8_t *bitmap, uint64_t n)
{
	return bitmap[n / 8] & (1u << (n % 8));
}

static uint64_t bit_count(const uint8_t *bitmap, size_t bytes)
{
	uint64_t n = 0;

	for (size_t i = 0; i != bytes; i++)
		n += (uint64_t)__builtin_popcount(bitmap[i]);
	return n;
}

/* The bits of [SMALL_IOVA, +16 pages) equal the simulator's written pages. */
static void assert_matches_written(struct fix *f, const uint8_t *bitmap)
{
	for (uint64_t i = 0; i != 16; i++)
		assert_int_equal(bit_test(bitmap, i),
				 iopt_sim_domain_written(f->domain,
							 SMALL_IOVA + i * PAGE));
}

/* semantics §5.39, selftests §4.28: read-and-clear versus NO_CLEAR */
static void sem5_39_read_clear_and_no_clear(void **state)
{
	struct fix *f = *state;
	uint8_t bitmap[2];

	dma_write(f, SMALL_IOVA + 1 * PAGE + 5);
	dma_write(f, SMALL_IOVA + 5 * PAGE);
	dma_write(f, SMALL_IOVA + 15 * PAGE + PAGE - 1);
	for (int round = 0; round != 2; round++) {
		memset(bitmap, 0, sizeof(bitmap));
		assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain,
						      SMALL_IOVA, 16 * PAGE,
						      PAGE, IOPT_DIRTY_NO_CLEAR,
						      bitmap), 0);
		assert_int_equal(bit_count(bitmap, sizeof(bitmap)), 3);
		assert_matches_written(f, bitmap);
	}
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA,
					      16 * PAGE, PAGE, 0, bitmap), 0);
	assert_matches_written(f, bitmap);
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA,
					      16 * PAGE, PAGE, 0, bitmap), 0);
	assert_int_equal(bit_count(bitmap, sizeof(bitmap)), 0);
	/* a write after the clear is seen again (the IOTLB was flushed) */
	dma_write(f, SMALL_IOVA + 5 * PAGE);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA,
					      16 * PAGE, PAGE, 0, bitmap), 0);
	assert_int_equal(bit_count(bitmap, sizeof(bitmap)), 1);
	assert_true(bit_test(bitmap, 5));
}

/* semantics §5.39/§5.46: enabling clears state left from before */
static void sem5_39_enable_clears_stale(void **state)
{
	struct fix *f = *state;
	uint8_t bitmap[2] = { 0 };

	dma_write(f, SMALL_IOVA + 2 * PAGE);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, f->domain, false),
			 0);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, f->domain, true),
			 0);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA,
					      16 * PAGE, PAGE, 0, bitmap), 0);
	assert_int_equal(bit_count(bitmap, sizeof(bitmap)), 0);
}

/* semantics §5.39, selftests §4.28: a dirty huge leaf sets every granule */
static void sem5_39_huge_leaf_every_granule(void **state)
{
	struct fix *f = *state;
	uint64_t counts[64] = { 0 };
	uint8_t bitmap[HPAGE / PAGE / 8];

	iopt_sim_domain_count_leaves(f->domain, HUGE_IOVA,
				     HUGE_IOVA + HPAGE - 1, counts);
	assert_int_equal(counts[21], 1);
	memset(bitmap, 0, sizeof(bitmap));
	dma_write(f, HUGE_IOVA + 12345);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, HUGE_IOVA,
					      HPAGE, PAGE, 0, bitmap), 0);
	assert_int_equal(bit_count(bitmap, sizeof(bitmap)), HPAGE / PAGE);
}

/* semantics §5.39, selftests §4.28: unaligned bitmaps; set bits stay set */
static void sem5_39_unaligned_bitmap_or(void **state)
{
	static const size_t offsets[] = { 1, 3, 0xff1 };
	struct fix *f = *state;
	uint8_t *page = calloc(1, 2 * PAGE);

	assert_non_null(page);
	for (size_t i = 0; i != IOPT_ARRAY_SIZE(offsets); i++) {
		uint8_t *bitmap = page + offsets[i];

		memset(page, 0, 2 * PAGE);
		bitmap[0] = 0x01;	/* granule 0 was not written: stays set */
		dma_write(f, SMALL_IOVA + 9 * PAGE);
		assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain,
						      SMALL_IOVA, 16 * PAGE,
						      PAGE, 0, bitmap), 0);
		assert_int_equal(bitmap[0], 0x01);
		assert_int_equal(bitmap[1], 0x02);
		assert_int_equal(bit_count(page, 2 * PAGE), 2);
	}
	free(page);
}

/* A granule larger than a page: one bit per two pages, offset IOVA. */
static void dirty_granule_two_pages(void **state)
{
	struct fix *f = *state;
	uint8_t bitmap = 0;

	dma_write(f, SMALL_IOVA + 7 * PAGE);
	dma_write(f, SMALL_IOVA + 8 * PAGE);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain,
					      SMALL_IOVA + 4 * PAGE, 8 * PAGE,
					      2 * PAGE, 0, &bitmap), 0);
	/* pages 7 and 8 are granules 1 and 2 counted from page 4 */
	assert_int_equal(bitmap, 0x06);
}

/*
 * docs/differences.md: a range with a hole is -EINVAL here (the kernel
 * returns 0); bits of the area before the hole are still reported.
 */
static void diff_dirty_hole_is_error(void **state)
{
	struct fix *f = *state;
	uint8_t bitmap[4] = { 0 };

	dma_write(f, SMALL_IOVA);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA,
					      32 * PAGE, PAGE,
					      IOPT_DIRTY_NO_CLEAR, bitmap),
			 -EINVAL);
	assert_true(bit_test(bitmap, 0));
	/* detached domains are refused */
	iopt_ioas_detach_domain(f->ioas, f->domain);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA,
					      16 * PAGE, PAGE, 0, bitmap),
			 -EINVAL);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, f->domain, true),
			 -EINVAL);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, f->domain), 0);
}

/* Read the 16 small pages at page granularity. */
static int read_small(struct fix *f, unsigned int flags, uint8_t *bitmap)
{
	return iopt_ioas_read_dirty(f->ioas, f->domain, SMALL_IOVA, 16 * PAGE,
				    PAGE, flags, bitmap);
}

/*
 * docs/differences.md: reading from a domain whose tracking is off is the
 * domain's -EINVAL (the AMD and VT-d drivers refuse; the kernel returns 0
 * with nothing set). Turning tracking off and on still works, and the bits
 * of the off period are gone.
 */
static void diff_dirty_tracking_off_is_error(void **state)
{
	struct fix *f = *state;
	uint8_t bitmap[2] = { 0 };

	dma_write(f, SMALL_IOVA + 3 * PAGE);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, f->domain, false),
			 0);
	dma_write(f, SMALL_IOVA + 4 * PAGE);
	assert_int_equal(read_small(f, 0, bitmap), -EINVAL);
	assert_int_equal(read_small(f, IOPT_DIRTY_NO_CLEAR, bitmap), -EINVAL);
	assert_int_equal(bit_count(bitmap, sizeof(bitmap)), 0);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, f->domain, true),
			 0);
	assert_int_equal(read_small(f, 0, bitmap), 0);
	assert_int_equal(bit_count(bitmap, sizeof(bitmap)), 0);
	dma_write(f, SMALL_IOVA + 4 * PAGE);
	assert_int_equal(read_small(f, 0, bitmap), 0);
	assert_int_equal(bitmap[0], 0x10);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(sem5_39_read_clear_and_no_clear,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_39_enable_clears_stale,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_39_huge_leaf_every_granule,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_39_unaligned_bitmap_or,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(dirty_granule_two_pages,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(diff_dirty_hole_is_error,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(diff_dirty_tracking_off_is_error,
					fix_setup, fix_teardown),
};

IOPT_TEST_MAIN(tests)
