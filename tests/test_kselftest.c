/* SPDX-License-Identifier: MIT */
/*
 * test_kselftest.c - checks ported from the kernel's iommufd selftests
 * (tools/testing/selftests/iommu/iommufd.c), run against the simulated IOMMU
 * in place of the selftest's mock domain. "kst_N" is kernel-selftests.md
 * §4.N; each case says which selftest it follows and what it asserts.
 *
 * The mock's geometry is kept where the check depends on it: a 2 KiB
 * smallest page (IOPT_SIM_FMT_AMDV1_2K), 1 MiB huge IOPTEs, and the aperture
 * [1 << 24, (1 << 31) - 1]. Frames come from the CONTIGUOUS model, so a
 * 2 MiB-aligned buffer is one aligned run of frames whatever the host's THP
 * setting, and huge-leaf cases are deterministic.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "io_pagetable.h"

#define PAGE IOPT_PAGE_SIZE
#define HPAGE IOPT_HPAGE_SIZE
#define MOCK_PAGE (PAGE / 2)
#define MOCK_HUGE (512 * MOCK_PAGE)
#define APERTURE_START (UINT64_C(1) << 24)
#define APERTURE_LAST ((UINT64_C(1) << 31) - 1)
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED (IOPT_IOAS_MAP_FIXED_IOVA | RW)
#define BUF_PAGES 16			/* the selftest's BUFFER_SIZE */
#define BUF_SIZE (2 * HPAGE)

struct fix {
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas;
	struct iopt_sim_iommu *iommu;
	void *raw;
	uint8_t *buf;		/* BUF_SIZE bytes, 2 MiB aligned, patterned */
};

/* Refusals and broken invariants explain themselves in the test output. */
static void fix_log(void *data, const char *msg)
{
	(void)data;
	print_message("# libiopt: %s\n", msg);
}

static int fix_setup(void **state)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = IOPT_PHYS_CONTIGUOUS,
	};
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->raw = mmap(NULL, BUF_SIZE + HPAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->raw != MAP_FAILED);
	f->buf = (uint8_t *)IOPT_ALIGN_UP((uintptr_t)f->raw, (uintptr_t)HPAGE);
	for (size_t i = 0; i != BUF_SIZE; i++)
		f->buf[i] = (uint8_t)(i * 13 + 7);
	assert_int_equal(iopt_ctx_alloc(&opts, &f->ctx), 0);
	iopt_ctx_set_log(f->ctx, fix_log, NULL);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas), 0);
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
	*state = f;
	return 0;
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;

	assert_int_equal(iopt_ioas_destroy(f->ioas), 0);
	iopt_sim_iommu_destroy(f->iommu);
	iopt_ctx_destroy(f->ctx);
	munmap(f->raw, BUF_SIZE + HPAGE);
	free(f);
	return 0;
}

/* Every invariant, the context counters and the pin registry included. */
static void check_complete(struct fix *f)
{
	assert_int_equal(iopt_ioas_check_set(&f->ioas, 1, IOPT_CHECK_COMPLETE),
			 0);
}

static struct iopt_domain *sim_alloc(struct fix *f, enum iopt_sim_format fmt,
				     uint64_t pgsize_mask)
{
	struct iopt_sim_domain_config cfg = {
		.format = fmt,
		.pgsize_mask = pgsize_mask,
		.aperture_start = APERTURE_START,
		.aperture_last = APERTURE_LAST,
	};
	struct iopt_domain *d;

	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &cfg, &d), 0);
	return d;
}

static void sim_detach_free(struct fix *f, struct iopt_domain *d)
{
	iopt_ioas_detach_domain(f->ioas, d);
	assert_int_equal(iopt_sim_domain_count_leaves(d, 0, UINT64_MAX, NULL),
			 0);
	d->ops->free(d);
}

static void map_fixed(struct fix *f, uint64_t iova, void *p, uint64_t len)
{
	uint64_t at = iova;

	assert_int_equal(iopt_ioas_map(f->ioas, p, len, &at, FIXED), 0);
}

/*
 * @d maps [iova, iova + len) onto the memory @view shows, at every @step
 * granule: equal bytes, and a store through either side seen by the other,
 * so the frame is the page itself and not a copy (@view may be another
 * mapping of it, as a memfd's).
 */
static void assert_same_memory(struct iopt_domain *d, uint64_t iova,
			       uint8_t *view, uint64_t len, uint64_t step)
{
	for (uint64_t off = 0; off < len; off += step) {
		uint8_t *host = iopt_phys_to_host(d->ops->iova_to_phys(d,
								       iova +
								       off));

		assert_non_null(host);
		assert_memory_equal(host, view + off, step);
		view[off] ^= 0xff;
		assert_int_equal(host[0], view[off]);
		host[step - 1] ^= 0x5a;
		assert_int_equal(view[off + step - 1], host[step - 1]);
	}
}

/*
 * selftests §4.7 (iommufd_ioas.iova_ranges with a mock domain): a reserved
 * range outside the aperture changes nothing in IOVA_RANGES, one inside it
 * carves a hole.
 */
static void kst_7_reserved_outside_aperture(void **state)
{
	struct fix *f = *state;
	struct iopt_domain *d = sim_alloc(f, IOPT_SIM_FMT_AMDV1_2K, 0);
	struct iopt_iova_range r[3];
	uint64_t align;
	size_t n;
	int owner = 0;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
	/* the selftest's ADD_RESERVED [PAGE, 2 * PAGE), and one above */
	assert_int_equal(iopt_ioas_reserve(f->ioas, PAGE, 2 * PAGE - 1, &owner),
			 0);
	assert_int_equal(iopt_ioas_reserve(f->ioas, APERTURE_LAST + 1,
					   UINT64_MAX, &owner), 0);
	memset(r, 0xa5, sizeof(r));
	n = 1;
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, r, &n, &align), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].start, APERTURE_START);
	assert_int_equal(r[0].last, APERTURE_LAST);
	assert_int_equal(align, MOCK_PAGE);
	assert_true(r[1].start == UINT64_C(0xa5a5a5a5a5a5a5a5));

	/* inside the aperture it does count: two ranges, -EMSGSIZE for one */
	assert_int_equal(iopt_ioas_reserve(f->ioas, APERTURE_START + PAGE,
					   APERTURE_START + 2 * PAGE - 1,
					   &owner), 0);
	n = 1;
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, r, &n, &align),
			 -EMSGSIZE);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].last, APERTURE_START + PAGE - 1);
	assert_int_equal(iopt_ioas_unreserve(f->ioas, &owner), 0);
	sim_detach_free(f, d);
	n = 3;
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, r, &n, &align), 0);
	assert_int_equal(n, 1);
	assert_true(r[0].last == UINT64_MAX);
	assert_int_equal(align, 1);
}

/*
 * A pinning driver that unpins before every unmap, so the only callback it
 * may see is the "drop everything" of its own destroy.
 */
static void unexpected_unmap(void *data, uint64_t iova, uint64_t length)
{
	(void)data;
	if (iova || length != UINT64_MAX)
		fail_msg("unmap callback for [%#llx, +%#llx) with pins held",
			 (unsigned long long)iova, (unsigned long long)length);
}

static const struct iopt_access_driver_ops pin_ops = {
	.needs_pin_pages = true,
	.unmap = unexpected_unmap,
};

/*
 * Pin [iova, iova + npages pages) with @a and check the access got @src's
 * own pages; @frames receives their frames.
 */
static void pin_checked(struct iopt_access *a, uint64_t iova, uint64_t npages,
			const uint8_t *src, uint64_t *frames)
{
	void *pages[BUF_PAGES];

	assert_true(npages <= BUF_PAGES);
	assert_int_equal(iopt_access_pin_pages(a, iova, npages * PAGE, pages,
					       frames, IOPT_ACCESS_RW_WRITE), 0);
	for (uint64_t i = 0; i != npages; i++)
		assert_ptr_equal(pages[i], src + i * PAGE);
}

/* Each frame still resolves to its page: the pin outlived the domain. */
static void assert_frames_resolve(const uint64_t *frames, uint64_t npages,
				  const uint8_t *src)
{
	for (uint64_t i = 0; i != npages; i++)
		assert_ptr_equal(iopt_phys_to_host(frames[i] <<
						   IOPT_PHYS_FRAME_SHIFT),
				 src + i * PAGE);
}

/* The domain maps the pinned pages to the frames the access was given. */
static void assert_filled_from_pins(struct iopt_domain *d, uint64_t iova,
				    const uint64_t *frames, uint64_t npages)
{
	for (uint64_t i = 0; i != npages; i++)
		assert_int_equal(d->ops->iova_to_phys(d, iova + i * PAGE) >>
					 IOPT_PHYS_FRAME_SHIFT,
				 frames[i]);
}

/*
 * selftests §4.22 (iommufd_ioas.access_pin, "Add/remove a domain with a
 * user", and access_domain_destory): for pins of 1 to 15 pages, attaching a
 * domain while the access holds them fills it from the access's pin store
 * (same frames, one pin per page), the whole buffer reads back like the
 * source, and detaching leaves the access's pins valid. Then the unpin of a
 * pin straddling a 2 MiB leaf boundary after its domain is gone.
 */
static void kst_22_attach_under_access_pins(void **state)
{
	struct fix *f = *state;
	const uint64_t a = APERTURE_START;
	uint64_t frames[BUF_PAGES];
	struct iopt_access *acc;

	assert_int_equal(iopt_access_create(f->ctx, &pin_ops, NULL, 0, &acc),
			 0);
	assert_int_equal(iopt_access_attach(acc, f->ioas), 0);
	for (uint64_t npages = 1; npages < BUF_PAGES; npages++) {
		struct iopt_domain *d = sim_alloc(f, IOPT_SIM_FMT_AMDV1, 0);

		map_fixed(f, a, f->buf, BUF_PAGES * PAGE);
		pin_checked(acc, a, npages, f->buf, frames);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), npages);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), BUF_PAGES);
		assert_filled_from_pins(d, a, frames, npages);
		assert_same_memory(d, a, f->buf, BUF_PAGES * PAGE, MOCK_PAGE);
		check_complete(f);
		sim_detach_free(f, d);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), npages);
		assert_frames_resolve(frames, npages, f->buf);
		check_complete(f);
		iopt_access_unpin_pages(acc, a, npages * PAGE);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
		assert_int_equal(iopt_ioas_unmap(f->ioas, a, BUF_PAGES * PAGE,
						 NULL), 0);
	}

	/* two pages either side of the boundary of two 2 MiB leaves */
	{
		struct iopt_domain *d = sim_alloc(f, IOPT_SIM_FMT_AMDV1,
						  PAGE | HPAGE);
		const uint64_t at = a + HPAGE - PAGE;
		uint64_t counts[64] = { 0 };

		map_fixed(f, a, f->buf, BUF_SIZE);
		pin_checked(acc, at, 2, f->buf + HPAGE - PAGE, frames);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
		iopt_sim_domain_count_leaves(d, a, a + BUF_SIZE - 1, counts);
		assert_int_equal(counts[21], 2);
		assert_filled_from_pins(d, at, frames, 2);
		sim_detach_free(f, d);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), 2);
		assert_frames_resolve(frames, 2, f->buf + HPAGE - PAGE);
		check_complete(f);
		iopt_access_unpin_pages(acc, at, 2 * PAGE);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	}
	iopt_access_destroy(acc);
	check_complete(f);
}

/* A domain with a device attached to it, for DMA through the simulator. */
struct dma_domain {
	struct iopt_domain *d;
	struct iopt_sim_dev *dev;
};

static struct dma_domain dma_domain_attach(struct fix *f, uint64_t pgsize_mask)
{
	struct dma_domain dd = {
		.d = sim_alloc(f, IOPT_SIM_FMT_AMDV1_2K, pgsize_mask),
	};

	assert_int_equal(iopt_sim_dev_alloc(f->iommu, 1, &dd.dev), 0);
	assert_int_equal(iopt_sim_dev_attach(dd.dev, dd.d), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, dd.d), 0);
	return dd;
}

static void dma_domain_free(struct fix *f, struct dma_domain *dd)
{
	assert_int_equal(iopt_sim_dev_attach(dd->dev, NULL), 0);
	iopt_sim_dev_destroy(dd->dev);
	sim_detach_free(f, dd->d);
}

static bool bit_test(const uint8_t *bitmap, uint64_t n)
{
	return bitmap[n / 8] & (1u << (n % 8));
}

/* Bits set in a 16-bit bitmap of [APERTURE_START, + 16 mock pages). */
static unsigned int dirty_bits(struct fix *f, struct dma_domain *dd, int *rc)
{
	uint8_t bitmap[2] = { 0 };

	*rc = iopt_ioas_read_dirty(f->ioas, dd->d, APERTURE_START,
				   16 * MOCK_PAGE, MOCK_PAGE, 0, bitmap);
	return bitmap[0] | (unsigned int)bitmap[1] << 8;
}

static void dma_poke(struct dma_domain *dd, uint64_t iova)
{
	uint8_t byte = 0x3c;

	assert_int_equal(iopt_sim_dma_write(dd->dev, iova, &byte, 1), 1);
}

/*
 * selftests §4.27 (iommufd_dirty_tracking.set_dirty_tracking): enabling and
 * disabling tracking are idempotent. Enabling twice leaves tracking on (a
 * device write is seen) and, as the kernel's iopt_set_dirty_tracking(),
 * every enable first clears what is dirty; disabling twice leaves it off
 * (reading is refused, docs/differences.md), and it can be enabled again.
 */
static void kst_27_dirty_tracking_idempotent(void **state)
{
	struct fix *f = *state;
	struct dma_domain dd = dma_domain_attach(f, MOCK_PAGE);
	unsigned int bits;
	int rc;

	map_fixed(f, APERTURE_START, f->buf, 8 * PAGE);
	for (int i = 0; i != 2; i++)
		assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, dd.d,
							      true), 0);
	dma_poke(&dd, APERTURE_START + 3 * MOCK_PAGE + 1);
	assert_int_equal(dirty_bits(f, &dd, &rc), 1u << 3);
	assert_int_equal(rc, 0);
	dma_poke(&dd, APERTURE_START + 5 * MOCK_PAGE);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, dd.d, true), 0);
	assert_int_equal(dirty_bits(f, &dd, &rc), 0);
	assert_int_equal(rc, 0);

	for (int i = 0; i != 2; i++)
		assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, dd.d,
							      false), 0);
	dma_poke(&dd, APERTURE_START + 7 * MOCK_PAGE);
	bits = dirty_bits(f, &dd, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(bits, 0);
	/* and on again after all that */
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, dd.d, true), 0);
	dma_poke(&dd, APERTURE_START + 2 * MOCK_PAGE);
	assert_int_equal(dirty_bits(f, &dd, &rc), 1u << 2);
	assert_int_equal(rc, 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	dma_domain_free(f, &dd);
}

/*
 * @size bytes of address space, 2 MiB aligned, every 2 MiB of it a MAP_SHARED
 * view of one 2 MiB memfd: dirty state lives in the IOPTEs, not in the
 * memory, so the 128 MiB sweep needs 2 MiB of it, not 128.
 */
struct alias_buf {
	void *raw;
	size_t raw_len;
	uint8_t *p;
};

static struct alias_buf alias_alloc(size_t size)
{
	struct alias_buf b = { .raw_len = size + HPAGE };
	int fd = memfd_create("kst-dirty", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, HPAGE), 0);
	b.raw = mmap(NULL, b.raw_len, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(b.raw != MAP_FAILED);
	b.p = (uint8_t *)IOPT_ALIGN_UP((uintptr_t)b.raw, (uintptr_t)HPAGE);
	for (size_t off = 0; off < size; off += HPAGE) {
		size_t len = IOPT_MIN((size_t)HPAGE, size - off);

		assert_true(mmap(b.p + off, len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_FIXED, fd, 0) == b.p + off);
	}
	close(fd);
	return b;
}

/*
 * The selftest's _test_mock_dirty_bitmaps(): mark one granule dirty at the
 * start of every other IOPTE, read the bitmap (whole IOPTEs come back
 * dirty, the IOPTEs between them clean), read again (clean, unless
 * NO_CLEAR kept them). Granules are MOCK_PAGE, IOPTEs @pte_size.
 */
static void dirty_pattern_check(struct fix *f, struct iopt_domain *d,
				uint64_t length, uint64_t pte_size,
				uint8_t *bitmap, unsigned int flags)
{
	const uint64_t nbits = length / MOCK_PAGE, npte = pte_size / MOCK_PAGE;
	const uint64_t pteset = 2 * npte, bytes = (nbits + 7) / 8;
	uint64_t nr = 0;

	for (uint64_t i = 0; i < nbits; i += pteset, nr++)
		assert_int_equal(iopt_sim_domain_set_dirty(d, APERTURE_START +
							   i * MOCK_PAGE), 0);
	assert_int_equal(nr, nbits / pteset ? nbits / pteset : 1);
	for (int round = 0; round != 2; round++) {
		bool kept = round == 0 || (flags & IOPT_DIRTY_NO_CLEAR);

		memset(bitmap, 0, bytes);
		assert_int_equal(iopt_ioas_read_dirty(f->ioas, d, APERTURE_START,
						      length, MOCK_PAGE, flags,
						      bitmap), 0);
		for (uint64_t i = 0; i < nbits; i += pteset)
			for (uint64_t j = 0; j != pteset && i + j < nbits; j++)
				if (bit_test(bitmap, i + j) != (kept && j < npte))
					fail_msg("%s read %d of %#llx bytes: "
						 "bit %llu is %d",
						 flags ? "NO_CLEAR" : "clear",
						 round,
						 (unsigned long long)length,
						 (unsigned long long)(i + j),
						 bit_test(bitmap, i + j));
	}
}

/*
 * selftests §4.28 (iommufd_dirty_tracking.get_dirty_bitmap and
 * get_dirty_bitmap_no_clear over the domain_dirty* variants): ranges from
 * 8 KiB to 128 MiB (4 to 65,536 bits), 2 KiB IOPTEs or 1 MiB huge ones,
 * with the bitmap at offsets 0, +2048 bytes (the selftest's "bitmap +
 * MOCK_PAGE_SIZE", not page aligned) and +0xff1 bytes (not u64 aligned),
 * clearing and NO_CLEAR.
 */
static void dirty_sweep(struct fix *f, uint64_t length, bool huge)
{
	static const size_t offsets[] = { 0, MOCK_PAGE, 0xff1 };
	const uint64_t pte_size = huge ? MOCK_HUGE : MOCK_PAGE;
	struct alias_buf buf = alias_alloc(length);
	struct dma_domain dd = dma_domain_attach(f, MOCK_PAGE |
						 (huge ? MOCK_HUGE : 0));
	size_t bytes = (length / MOCK_PAGE + 7) / 8 + PAGE;
	uint8_t *bitmap = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(bitmap != MAP_FAILED);
	map_fixed(f, APERTURE_START, buf.p, length);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, dd.d, true), 0);
	if (huge) {
		uint64_t counts[64] = { 0 };

		/* otherwise every IOPTE is small and the check proves less */
		iopt_sim_domain_count_leaves(dd.d, APERTURE_START,
					     APERTURE_START + length - 1, counts);
		assert_int_equal(counts[20], length / MOCK_HUGE);
	}
	for (size_t i = 0; i != IOPT_ARRAY_SIZE(offsets); i++) {
		dirty_pattern_check(f, dd.d, length, pte_size,
				    bitmap + offsets[i], 0);
		dirty_pattern_check(f, dd.d, length, pte_size,
				    bitmap + offsets[i], IOPT_DIRTY_NO_CLEAR);
	}
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	dma_domain_free(f, &dd);
	munmap(bitmap, bytes);
	munmap(buf.raw, buf.raw_len);
}

static void kst_28_dirty_bitmap_sweep(void **state)
{
	static const uint64_t sizes[] = { 8 << 10, 16 << 10, 64 << 10,
					  128 << 10, 320 << 10, 64 << 20,
					  128 << 20 };
	size_t n = IOPT_ARRAY_SIZE(sizes) - (iopt_test_quick() ? 2 : 0);

	for (size_t i = 0; i != n; i++)
		dirty_sweep(*state, sizes[i], false);
}

static void kst_28_dirty_bitmap_sweep_huge(void **state)
{
	/* domain_dirty64M_huge and 128M_huge; quick mode keeps the 4 MiB */
	static const uint64_t sizes[] = { 4 << 20, 64 << 20, 128 << 20 };
	size_t n = iopt_test_quick() ? 1 : IOPT_ARRAY_SIZE(sizes);

	for (size_t i = 0; i != n; i++)
		dirty_sweep(*state, sizes[i], true);
}

/*
 * selftests §4.29 (MAP_FILE, 6.13+): a memfd range mapped with a domain is
 * translated, at every granule, to the memfd's own pages: the bytes equal
 * those of the caller's MAP_SHARED view, and a store through either side is
 * seen by the other. Also at a sub-page file offset with a 2 KiB domain, and
 * after the caller closed the fd.
 */
static void kst_29_map_file_translates_like_mmap(void **state)
{
	static const struct {
		enum iopt_sim_format fmt;
		uint64_t start, length, step;
	} cases[] = {
		{ IOPT_SIM_FMT_AMDV1, 0, 8 * PAGE, PAGE },
		{ IOPT_SIM_FMT_AMDV1, 5 * PAGE, 3 * PAGE, PAGE },
		{ IOPT_SIM_FMT_AMDV1_2K, 3 * PAGE + MOCK_PAGE, 9 * MOCK_PAGE,
		  MOCK_PAGE },
	};
	const uint64_t file_size = BUF_PAGES * PAGE;
	struct fix *f = *state;

	for (size_t c = 0; c != IOPT_ARRAY_SIZE(cases); c++) {
		struct iopt_domain *d = sim_alloc(f, cases[c].fmt, 0);
		int fd = memfd_create("kst-file", MFD_CLOEXEC);
		uint64_t iova = APERTURE_START;
		uint8_t *view;

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)file_size), 0);
		view = mmap(NULL, file_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			    fd, 0);
		assert_true(view != MAP_FAILED);
		memcpy(view, f->buf, file_size);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
		assert_int_equal(iopt_ioas_map_file(f->ioas, fd, cases[c].start,
						    cases[c].length, &iova,
						    FIXED), 0);
		close(fd);
		assert_same_memory(d, iova, view + cases[c].start,
				   cases[c].length, cases[c].step);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), (cases[c].start % PAGE +
					     cases[c].length + PAGE - 1) / PAGE);
		check_complete(f);
		assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
		sim_detach_free(f, d);
		munmap(view, file_size);
	}
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(kst_7_reserved_outside_aperture,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_22_attach_under_access_pins,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_27_dirty_tracking_idempotent,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_28_dirty_bitmap_sweep,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_28_dirty_bitmap_sweep_huge,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_29_map_file_translates_like_mmap,
					fix_setup, fix_teardown),
};

IOPT_TEST_MAIN(tests)
