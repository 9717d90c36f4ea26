/* SPDX-License-Identifier: MIT */
/*
 * test_phys.c - the frame table: resolution, contiguity models (FOLIO by host
 * page size), output width, seeding, and "same host page, same frame while
 * pinned".
 *
 * Frames are assigned by the pin registry, so every case pins real memory through
 * a context with the model under test (populate-only: no mlock needed, and the
 * large reservations below stay cheap).
 */
#include "harness.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/ctx.h>
#include <iopt/phys.h>

#include "alloc.h"
#include "pin.h"

#define PG 4096ul
#define TWO_M (2ul << 20)
#define ONE_G (1ul << 30)

static struct iopt_ctx *ctx_new(enum iopt_phys_model model)
{
	struct iopt_ctx_options o = {
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = model,
	};
	struct iopt_ctx *ctx = NULL;

	assert_int_equal(iopt_ctx_alloc(&o, &ctx), 0);
	return ctx;
}

/* @len bytes whose start is @offset bytes past an @align boundary. */
static char *map_at_offset(size_t len, size_t align, size_t offset,
			   void **base, size_t *base_len)
{
	*base_len = len + align + offset;
	*base = mmap(NULL, *base_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(*base != MAP_FAILED);
	return (char *)(((uintptr_t)*base + align - 1) & ~(uintptr_t)(align - 1)) +
	       offset;
}

static void assert_resolves(const char *host, const uint64_t *pfns, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		assert_ptr_equal(iopt_phys_to_host((pfns[i] << IOPT_PHYS_FRAME_SHIFT) |
						   (i % PG)),
				 host + i * PG + i % PG);
}

/* Number of maximal runs of consecutive frames in @pfns. */
static size_t frame_runs(const uint64_t *pfns, size_t n)
{
	size_t i, runs = n ? 1 : 0;

	for (i = 1; i < n; i++)
		runs += pfns[i] != pfns[i - 1] + 1;
	return runs;
}

static void test_unpinned_resolves_to_null(void **state)
{
	uint64_t top = 1ull << IOPT_PHYS_WIDTH_DEFAULT;

	(void)state;
	assert_null(iopt_phys_to_host(0));
	assert_null(iopt_phys_to_host(top - 1));
	assert_null(iopt_phys_to_host(top - (1ull << 42)));
	assert_null(iopt_phys_to_host(top));
	assert_null(iopt_phys_to_host(UINT64_MAX));
}

static void test_contiguous_one_run_aligned(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_CONTIGUOUS);
	size_t n = 1500, base_len;
	void *base;
	char *buf = map_at_offset(n * PG, TWO_M, 3 * PG, &base, &base_len);
	uint64_t *pfns = calloc(n, sizeof(*pfns));
	uint64_t paddr;

	(void)state;
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, n, true, pfns), 0);
	assert_int_equal(frame_runs(pfns, n), 1);
	paddr = pfns[0] << IOPT_PHYS_FRAME_SHIFT;
	assert_int_equal(paddr % ONE_G, (uintptr_t)buf % ONE_G);
	/* Placed at the top of the default 48-bit width. */
	assert_true(paddr >= (1ull << 48) - (1ull << 42));
	assert_true(paddr < 1ull << 48);
	assert_resolves(buf, pfns, n);
	iopt_unpin_range(ctx, (uintptr_t)buf, n);
	assert_null(iopt_phys_to_host(paddr));
	iopt_ctx_destroy(ctx);
	free(pfns);
	munmap(base, base_len);
}

/* A range crossing a host 1 GiB boundary stays one run of frames. */
static void test_contiguous_crosses_1g(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_CONTIGUOUS);
	size_t base_len = 2 * ONE_G;
	char *base = mmap(NULL, base_len, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *edge, *buf;
	uint64_t pfns[32];

	(void)state;
	assert_true(base != MAP_FAILED);
	edge = (char *)(((uintptr_t)base + ONE_G - 1) & ~(uintptr_t)(ONE_G - 1));
	buf = edge - 16 * PG;
	if (mprotect(buf, 32 * PG, PROT_READ | PROT_WRITE)) {
		print_message("# skipped: mprotect: %s\n", strerror(errno));
		iopt_ctx_destroy(ctx);
		munmap(base, base_len);
		skip();
	}
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 32, true, pfns), 0);
	assert_int_equal(frame_runs(pfns, 32), 1);
	assert_int_equal((pfns[16] << IOPT_PHYS_FRAME_SHIFT) % ONE_G, 0);
	assert_resolves(buf, pfns, 32);
	iopt_unpin_range(ctx, (uintptr_t)buf, 32);

	/* Pinned from the far side first, the near gig still lines up. */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)edge, 16, true, pfns + 16), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 32, true, pfns), 0);
	assert_int_equal(frame_runs(pfns, 32), 1);
	iopt_unpin_range(ctx, (uintptr_t)buf, 32);
	iopt_unpin_range(ctx, (uintptr_t)edge, 16);
	iopt_ctx_destroy(ctx);
	munmap(base, base_len);
}

/* No two frames of @pfns are adjacent: no run is longer than one page. */
static void assert_no_adjacent(const uint64_t *pfns, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			assert_true(pfns[i] != pfns[j] && pfns[i] + 1 != pfns[j] &&
				    pfns[j] + 1 != pfns[i]);
}

/*
 * FOLIO follows the host page size: 4 KiB host pages are 4 KiB folios (no two
 * frames adjacent), a 2 MiB host page is one 2 MiB-aligned run in step with the
 * host address. (Populate-only pins: mlock would split a partly pinned THP.)
 */
static void test_folio_follows_host_page_size(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_FOLIO);
	size_t n = 3 * 512, base_len, i;
	void *base;
	char *buf = map_at_offset(n * PG, TWO_M, 100 * PG, &base, &base_len);
	uint64_t *pfns = calloc(n, sizeof(*pfns));

	(void)state;
	assert_int_equal(madvise(base, base_len, MADV_NOHUGEPAGE), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, n, true, pfns), 0);
	assert_int_equal(iopt_pin_host_pgsize((uintptr_t)buf), PG);
	assert_no_adjacent(pfns, n);
	assert_resolves(buf, pfns, n);
	/* A frame between two pinned ones resolves to nothing. */
	assert_null(iopt_phys_to_host((pfns[7] + 1) << IOPT_PHYS_FRAME_SHIFT));
	iopt_unpin_range(ctx, (uintptr_t)buf, n);
	munmap(base, base_len);

	buf = map_at_offset(2 * TWO_M, TWO_M, 0, &base, &base_len);
	if (madvise(buf, 2 * TWO_M, MADV_HUGEPAGE))
		goto skip;
	memset(buf, 1, 2 * TWO_M);
	/* 100 pages into the second huge page, then all of both. */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + TWO_M + 100 * PG, 8,
					true, pfns), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 1024, true, pfns), 0);
	if (iopt_pin_host_pgsize((uintptr_t)buf) != TWO_M ||
	    iopt_pin_host_pgsize((uintptr_t)buf + TWO_M) != TWO_M) {
		iopt_unpin_range(ctx, (uintptr_t)buf, 1024);
		iopt_unpin_range(ctx, (uintptr_t)buf + TWO_M + 100 * PG, 8);
		goto skip;
	}
	assert_int_equal(frame_runs(pfns, 1024), 2);
	for (i = 0; i < 1024; i++)
		assert_int_equal(pfns[i] % 512, (uintptr_t)(buf + i * PG) / PG % 512);
	assert_resolves(buf, pfns, 1024);
	iopt_unpin_range(ctx, (uintptr_t)buf, 1024);
	iopt_unpin_range(ctx, (uintptr_t)buf + TWO_M + 100 * PG, 8);
	iopt_ctx_destroy(ctx);
	free(pfns);
	munmap(base, base_len);
	return;
skip:
	print_message("# skipped the 2 MiB part: no THP here (or no PAGEMAP_SCAN before 6.7)\n");
	iopt_ctx_destroy(ctx);
	free(pfns);
	munmap(base, base_len);
	skip();
}

static void test_scattered_no_runs(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_SCATTERED);
	size_t n = 1200;
	char *buf = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *pfns = calloc(n, sizeof(*pfns));

	(void)state;
	assert_true(buf != MAP_FAILED);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, n, false, pfns), 0);
	assert_int_equal(frame_runs(pfns, n), n);
	assert_no_adjacent(pfns, n);
	assert_resolves(buf, pfns, n);
	iopt_unpin_range(ctx, (uintptr_t)buf, n);
	iopt_ctx_destroy(ctx);
	free(pfns);
	munmap(buf, n * PG);
}

/*
 * The scattered pool grows ahead of its use; chunks it never used go when the
 * last scattered frame does, so nothing stays reserved or allocated.
 */
static void test_scattered_pool_empties(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_SCATTERED);
	size_t n = 65536;
	char *buf = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct iopt_ctx_stats st;
	long live = iopt_alloc_live();

	(void)state;
	assert_true(buf != MAP_FAILED);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, n, false, NULL), 0);
	iopt_unpin_range(ctx, (uintptr_t)buf, n);
	iopt_ctx_read_stats(ctx, &st);
	assert_int_equal(st.registry_bytes, 0);
	assert_int_equal(iopt_alloc_live(), live);
	assert_int_equal(iopt_phys_set_seed(0), 0);	/* -EBUSY while reserved */
	iopt_ctx_destroy(ctx);
	munmap(buf, n * PG);
}

/* Same seed and same pins: same scattered frames (deterministic addresses). */
static void test_scattered_seeded(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_SCATTERED);
	char *buf = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t a[64], b[64];

	(void)state;
	assert_int_equal(iopt_phys_set_seed(42), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 64, true, a), 0);
	assert_int_equal(iopt_phys_set_seed(43), -EBUSY);
	iopt_unpin_range(ctx, (uintptr_t)buf, 64);
	assert_int_equal(iopt_phys_set_seed(42), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 64, true, b), 0);
	assert_memory_equal(a, b, sizeof(a));
	iopt_unpin_range(ctx, (uintptr_t)buf, 64);
	iopt_ctx_destroy(ctx);
	munmap(buf, 64 * PG);
}

/* The frame follows the host page while it stays pinned, whoever pins it. */
static void test_same_page_same_frame(void **state)
{
	struct iopt_ctx *scat = ctx_new(IOPT_PHYS_SCATTERED);
	struct iopt_ctx *contig = ctx_new(IOPT_PHYS_CONTIGUOUS);
	char *buf = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t a[8], b[8];

	(void)state;
	assert_true(buf != MAP_FAILED);
	assert_int_equal(iopt_pin_range(scat, (uintptr_t)buf + 2 * PG, 2, true, a), 0);
	/* The first pinner of the chunk decided: the contiguous ctx reuses it. */
	assert_int_equal(iopt_pin_range(contig, (uintptr_t)buf, 8, true, b), 0);
	assert_int_equal(b[2], a[0]);
	assert_int_equal(b[3], a[1]);
	iopt_unpin_range(scat, (uintptr_t)buf + 2 * PG, 2);
	assert_int_equal(iopt_pin_lookup((uintptr_t)buf, 8, a), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_resolves(buf, b, 8);
	iopt_unpin_range(contig, (uintptr_t)buf, 8);
	assert_null(iopt_phys_to_host(b[2] << IOPT_PHYS_FRAME_SHIFT));
	iopt_ctx_destroy(scat);
	iopt_ctx_destroy(contig);
	munmap(buf, 8 * PG);
}

static void test_output_width(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_CONTIGUOUS);
	char *buf = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pfns[4];

	(void)state;
	assert_int_equal(iopt_phys_set_output_width(IOPT_PHYS_WIDTH_MIN - 1), -EINVAL);
	assert_int_equal(iopt_phys_set_output_width(IOPT_PHYS_WIDTH_MAX + 1), -EINVAL);
	assert_int_equal(iopt_phys_output_width(), IOPT_PHYS_WIDTH_DEFAULT);

	assert_int_equal(iopt_phys_set_output_width(36), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 4, true, pfns), 0);
	assert_true((pfns[3] << IOPT_PHYS_FRAME_SHIFT) < 1ull << 36);
	assert_resolves(buf, pfns, 4);
	assert_int_equal(iopt_phys_set_output_width(52), -EBUSY);
	assert_int_equal(iopt_phys_output_width(), 36);
	iopt_unpin_range(ctx, (uintptr_t)buf, 4);

	assert_int_equal(iopt_phys_set_output_width(52), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 4, true, pfns), 0);
	assert_true((pfns[0] << IOPT_PHYS_FRAME_SHIFT) >= (1ull << 52) - (1ull << 42));
	assert_resolves(buf, pfns, 4);
	iopt_unpin_range(ctx, (uintptr_t)buf, 4);
	assert_int_equal(iopt_phys_set_output_width(IOPT_PHYS_WIDTH_DEFAULT), 0);
	iopt_ctx_destroy(ctx);
	munmap(buf, 4 * PG);
}

/* A 32-bit space holds four 1 GiB frame gigs; the fifth host gig is refused. */
static void test_frame_space_exhausted(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_CONTIGUOUS);
	size_t base_len = 6 * ONE_G, g;
	char *base = mmap(NULL, base_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *gig0;
	long live;

	(void)state;
	assert_true(base != MAP_FAILED);
	gig0 = (char *)(((uintptr_t)base + ONE_G - 1) & ~(uintptr_t)(ONE_G - 1));
	assert_int_equal(iopt_phys_set_output_width(32), 0);
	for (g = 0; g < 4; g++)
		assert_int_equal(iopt_pin_range(ctx, (uintptr_t)gig0 + g * ONE_G, 1,
						true, NULL), 0);
	live = iopt_alloc_live();
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)gig0 + 4 * ONE_G, 1, true,
					NULL), -ENOMEM);
	assert_int_equal(iopt_alloc_live(), live);
	for (g = 0; g < 4; g++)
		iopt_unpin_range(ctx, (uintptr_t)gig0 + g * ONE_G, 1);
	assert_int_equal(iopt_phys_set_output_width(IOPT_PHYS_WIDTH_DEFAULT), 0);
	iopt_ctx_destroy(ctx);
	munmap(base, base_len);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_unpinned_resolves_to_null),
	cmocka_unit_test(test_contiguous_one_run_aligned),
	cmocka_unit_test(test_contiguous_crosses_1g),
	cmocka_unit_test(test_folio_follows_host_page_size),
	cmocka_unit_test(test_scattered_no_runs),
	cmocka_unit_test(test_scattered_pool_empties),
	cmocka_unit_test(test_scattered_seeded),
	cmocka_unit_test(test_same_page_same_frame),
	cmocka_unit_test(test_output_width),
	cmocka_unit_test(test_frame_space_exhausted),
};

IOPT_TEST_MAIN(tests)
