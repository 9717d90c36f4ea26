/* SPDX-License-Identifier: MIT */
/*
 * test_ioas.c - the public API's bad-input matrix: every iopt_ioas_* function
 * with NULL handles and pointers, zero lengths, values at UINT64_MAX, ranges
 * that wrap, and unknown flags. Each refused call must return the exact errno
 * the kernel's ioctl (or our documented NULL rule) gives, in the kernel's
 * order of checks, and leave the IOAS exactly as it was: the layout digest,
 * the pin count and the number of live allocations are compared before and
 * after (struct snap).
 *
 * The fixture is deliberately not empty (an area, an allowed range, a user
 * reservation), so "nothing changed" has something to lose. Each case runs
 * twice: with no domain, and as "<case>_domain" with a simulated domain
 * attached (fix_setup_domain), whose translations of every mapped page and
 * leaf counts join the snapshot, and whose alignment (4 KiB) turns the
 * byte-sized probes into page-sized ones (struct fix.grain). Cases citing
 * "sem5_N" check iopt-semantics.md §5.N.
 *
 * Stale handles are not probed: a handle is a pointer and one used after
 * its destroy is a use-after-free (docs/differences.md, 8); the ids that
 * the /dev/iommu layer will validate are checked for uniqueness only.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/sim.h>

#include "alloc.h"
#include "io_pagetable.h"

#define PAGE IOPT_PAGE_SIZE
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED (IOPT_IOAS_MAP_FIXED_IOVA | RW)
#define BAD_FLAG (1u << 7)
#define AREA 0x100000
#define RESV_START 0x800000
#define RESV_LAST 0x80ffff

struct fix {
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *domain;	/* attached, or NULL */
	uint64_t grain;		/* the alignment: 1, or PAGE with the domain */
	uint8_t *buf;
	int owner;
	unsigned int log_lines;	/* refusal log lines since the last check */
	char last_line[512];
};

static void fix_log(void *data, const char *msg)
{
	struct fix *f = data;

	f->log_lines++;
	snprintf(f->last_line, sizeof(f->last_line), "%s", msg);
}

static int fix_setup_common(void **state, bool with_domain)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
	};
	struct iopt_iova_range allowed = { 0x40000000, 0x7fffffff };
	struct fix *f = calloc(1, sizeof(*f));
	uint64_t iova = AREA;

	assert_non_null(f);
	f->buf = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->buf != MAP_FAILED);
	assert_int_equal(iopt_ctx_alloc(&opts, &f->ctx), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas), 0);
	f->grain = 1;
	if (with_domain) {
		/* AMD v1's whole 64-bit aperture: no reservation of its own */
		assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
		assert_int_equal(iopt_sim_domain_alloc(f->iommu, NULL,
						       &f->domain), 0);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, f->domain), 0);
		f->grain = PAGE;
	}
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 4 * PAGE, &iova, FIXED),
			 0);
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, &allowed, 1), 0);
	assert_int_equal(iopt_ioas_reserve(f->ioas, RESV_START, RESV_LAST,
					   &f->owner), 0);
	iopt_ctx_set_log(f->ctx, fix_log, f);
	*state = f;
	return 0;
}

static int fix_setup(void **state)
{
	return fix_setup_common(state, false);
}

static int fix_setup_domain(void **state)
{
	return fix_setup_common(state, true);
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;

	assert_int_equal(iopt_ioas_check_set(&f->ioas, 1, IOPT_CHECK_COMPLETE),
			 0);
	if (f->domain) {
		iopt_ioas_detach_domain(f->ioas, f->domain);
		f->domain->ops->free(f->domain);
	}
	assert_int_equal(iopt_ioas_destroy(f->ioas), 0);
	iopt_sim_iommu_destroy(f->iommu);
	iopt_ctx_destroy(f->ctx);
	munmap(f->buf, 16 * PAGE);
	free(f);
	return 0;
}

/* What a refused call must not change. */
struct snap {
	uint64_t digest;
	uint64_t pinned;
	long live_allocs;
	uint64_t translations;	/* the domain's paddr of every mapped page */
	uint64_t leaves;	/* and its leaves by size, anywhere */
};

static uint64_t hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
	return h * UINT64_C(0xff51afd7ed558ccd);
}

/* The domain side of a snapshot; the areas are walked under the IOAS's lock. */
static void snap_domain(struct fix *f, struct snap *s)
{
	struct iopt_domain *d = f->domain;
	uint64_t counts[64] = { 0 };
	struct iopt_area *area;

	iopt_rwlock_read(&f->ioas->iopt.iova_rwsem);
	iopt_for_each_area(area, &f->ioas->iopt, 0, UINT64_MAX) {
		for (uint64_t off = 0; off < iopt_area_length(area);
		     off += PAGE) {
			uint64_t iova = iopt_area_iova(area) + off;

			s->translations = hash_mix(s->translations, iova);
			s->translations = hash_mix(s->translations,
						   d->ops->iova_to_phys(d, iova));
		}
	}
	iopt_rwlock_unlock(&f->ioas->iopt.iova_rwsem);
	iopt_sim_domain_count_leaves(d, 0, UINT64_MAX, counts);
	for (int i = 0; i != 64; i++)
		s->leaves = hash_mix(s->leaves, counts[i]);
}

static struct snap snap_take(struct fix *f)
{
	struct iopt_ctx_stats st;
	struct snap s = { .digest = iopt_table_digest(&f->ioas->iopt) };

	iopt_ctx_read_stats(f->ctx, &st);
	s.pinned = st.pages_pinned;
#ifdef IOPT_FAULT_INJECTION
	s.live_allocs = iopt_alloc_live();
#endif
	if (f->domain)
		snap_domain(f, &s);
	return s;
}

static void snap_check(struct fix *f, const struct snap *before)
{
	struct snap now = snap_take(f);

	assert_true(now.digest == before->digest);
	assert_int_equal(now.pinned, before->pinned);
	assert_int_equal(now.live_allocs, before->live_allocs);
	assert_true(now.translations == before->translations);
	assert_true(now.leaves == before->leaves);
}

/*
 * The call returns @err, the IOAS is unchanged, and a refusal said why in
 * exactly one log line, unless the handle it would be said to was NULL.
 */
#define REFUSED(f, err, call)                                                  \
	do {                                                                   \
		struct snap snap_before_ = snap_take(f);                       \
		bool said_ = (err) < 0 && !strstr(#call, "(NULL");            \
									       \
		(f)->log_lines = 0;                                            \
		assert_int_equal((call), (err));                               \
		snap_check(f, &snap_before_);                                  \
		if ((f)->log_lines != said_)                                   \
			fail_msg("%s: %u log lines, expected %d (last: %s)",  \
				 #call, (f)->log_lines, said_,                 \
				 (f)->log_lines ? (f)->last_line : "-");       \
	} while (0)

/* A domain whose ops must never run: every call here is refused first. */
static int stub_map_pages(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
			  uint64_t pgsize, uint64_t pgcount, int prot,
			  uint64_t *mapped)
{
	(void)d, (void)iova, (void)paddr, (void)pgsize, (void)pgcount;
	(void)prot, (void)mapped;
	fail_msg("stub domain: map_pages called");
	return -EIO;
}

static uint64_t stub_unmap_pages(struct iopt_domain *d, uint64_t iova,
				 uint64_t pgsize, uint64_t pgcount,
				 struct iopt_iotlb_gather *g)
{
	(void)d, (void)iova, (void)pgsize, (void)pgcount, (void)g;
	fail_msg("stub domain: unmap_pages called");
	return 0;
}

static uint64_t stub_iova_to_phys(struct iopt_domain *d, uint64_t iova)
{
	(void)d, (void)iova;
	return 0;
}

static void stub_iotlb_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g)
{
	(void)d;
	iopt_iotlb_gather_init(g);
}

static void stub_flush(struct iopt_domain *d)
{
	(void)d;
}

static int stub_set_dirty_tracking(struct iopt_domain *d, bool enable)
{
	(void)d, (void)enable;
	fail_msg("stub domain: set_dirty_tracking called");
	return -EIO;
}

static int stub_read_and_clear_dirty(struct iopt_domain *d, uint64_t iova,
				     uint64_t length, unsigned int flags,
				     struct iopt_dirty_bitmap *dirty)
{
	(void)d, (void)iova, (void)length, (void)flags, (void)dirty;
	fail_msg("stub domain: read_and_clear_dirty called");
	return -EIO;
}

static void stub_free(struct iopt_domain *d)
{
	(void)d;
}

static const struct iopt_domain_ops stub_ops = {
	.map_pages = stub_map_pages,
	.unmap_pages = stub_unmap_pages,
	.iova_to_phys = stub_iova_to_phys,
	.iotlb_sync = stub_iotlb_sync,
	.flush_iotlb_all = stub_flush,
	.set_dirty_tracking = stub_set_dirty_tracking,
	.read_and_clear_dirty = stub_read_and_clear_dirty,
	.free = stub_free,
};

static const struct iopt_domain_ops stub_ops_no_dirty = {
	.map_pages = stub_map_pages,
	.unmap_pages = stub_unmap_pages,
	.iova_to_phys = stub_iova_to_phys,
	.iotlb_sync = stub_iotlb_sync,
	.flush_iotlb_all = stub_flush,
	.free = stub_free,
};

static void bad_alloc_destroy_id(void **state)
{
	struct fix *f = *state;
	struct iopt_ioas *other = NULL;

	REFUSED(f, -EINVAL, iopt_ioas_alloc(NULL, &other));
	assert_null(other);
	REFUSED(f, -EINVAL, iopt_ioas_alloc(f->ctx, NULL));
	/* the line that refusal said must not stand in for the next one's */
	REFUSED(f, -EINVAL, iopt_ioas_set_huge_pages(f->ioas, 2));
	REFUSED(f, 0, iopt_ioas_destroy(NULL));
	if (f->domain)
		REFUSED(f, -EBUSY, iopt_ioas_destroy(f->ioas));
	assert_int_equal(iopt_ioas_id(NULL), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &other), 0);
	assert_true(iopt_ioas_id(other) != 0);
	assert_true(iopt_ioas_id(other) != iopt_ioas_id(f->ioas));
	assert_int_equal(iopt_ioas_destroy(other), 0);
}

/* semantics §5.6: map argument checks, in the kernel's order */
static void sem5_6_bad_map(void **state)
{
	struct fix *f = *state;
	void *top = (void *)(UINTPTR_MAX - 10);
	const uint64_t near_top = 0 - 10 * f->grain;
	uint64_t iova = 0x200000;

	REFUSED(f, -EINVAL, iopt_ioas_map(NULL, f->buf, PAGE, &iova, FIXED));
	REFUSED(f, -EINVAL, iopt_ioas_map(f->ioas, f->buf, PAGE, NULL, FIXED));
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_map(f->ioas, f->buf, PAGE, &iova,
					      FIXED | BAD_FLAG));
	/* flags are checked before anything else */
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_map(f->ioas, f->buf, 0, &iova,
					      BAD_FLAG));
	REFUSED(f, -EOVERFLOW, iopt_ioas_map(f->ioas, f->buf, UINT64_MAX, &iova,
					     FIXED));
	/* overflow comes before the READ/WRITE check */
	REFUSED(f, -EOVERFLOW, iopt_ioas_map(f->ioas, f->buf, UINT64_MAX, &iova,
					     IOPT_IOAS_MAP_FIXED_IOVA));
	iova = UINT64_MAX;
	REFUSED(f, -EOVERFLOW, iopt_ioas_map(f->ioas, f->buf, PAGE, &iova,
					     FIXED));
	assert_true(iova == UINT64_MAX);
	iova = 0x200000;
	REFUSED(f, -EINVAL, iopt_ioas_map(f->ioas, f->buf, PAGE, &iova,
					  IOPT_IOAS_MAP_FIXED_IOVA));
	REFUSED(f, -EINVAL, iopt_ioas_map(f->ioas, f->buf, 0, &iova, FIXED));
	REFUSED(f, -EOVERFLOW, iopt_ioas_map(f->ioas, top, 100, &iova, FIXED));
	/* aligned, so the wrap and not the alignment is what is refused */
	iova = near_top;
	REFUSED(f, -EOVERFLOW, iopt_ioas_map(f->ioas, f->buf, 100 * f->grain,
					     &iova, FIXED));
	/* auto IOVA: a length of half the space or more cannot be aligned */
	REFUSED(f, -EOVERFLOW, iopt_ioas_map(f->ioas, NULL, UINT64_C(1) << 63,
					     &iova, RW));
	assert_non_null(strstr(f->last_line, "half the IOVA space"));
	assert_true(iova == near_top);
	/* 2 GiB does not fit the 1 GiB allowed range */
	REFUSED(f, -ENOSPC, iopt_ioas_map(f->ioas, NULL, UINT64_C(1) << 31,
					  &iova, RW));
	assert_non_null(strstr(f->last_line, "no free IOVA for 0x80000000 "
				"bytes in the allowed ranges"));
	if (f->domain) {
		/* the source's 8-byte alignment is below the domain's 4 KiB */
		REFUSED(f, -EINVAL, iopt_ioas_map(f->ioas, f->buf + 8, PAGE,
						  &iova, RW));
		assert_non_null(strstr(f->last_line, "below the alignment"));
	}
	assert_true(iova == near_top);
	/* one grain into a reservation is -EINVAL, into an area -EEXIST (§5.5) */
	iova = RESV_LAST + 1 - f->grain;
	REFUSED(f, -EINVAL, iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, FIXED));
	iova = AREA + 4 * PAGE - f->grain;
	REFUSED(f, -EEXIST, iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, FIXED));
}

static void bad_map_file(void **state)
{
	struct fix *f = *state;
	uint64_t iova = 0x200000;
	int fd = memfd_create("iopt-test", 0);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * PAGE), 0);
	REFUSED(f, -EINVAL, iopt_ioas_map_file(NULL, fd, 0, PAGE, &iova, FIXED));
	REFUSED(f, -EINVAL, iopt_ioas_map_file(f->ioas, fd, 0, PAGE, NULL,
					       FIXED));
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_map_file(f->ioas, -1, 0, PAGE, &iova,
						   BAD_FLAG));
	REFUSED(f, -EOVERFLOW, iopt_ioas_map_file(f->ioas, fd, 0, UINT64_MAX,
						  &iova, FIXED));
	REFUSED(f, -EINVAL, iopt_ioas_map_file(f->ioas, fd, 0, PAGE, &iova,
					       IOPT_IOAS_MAP_FIXED_IOVA));
	REFUSED(f, -EBADF, iopt_ioas_map_file(f->ioas, -1, 0, PAGE, &iova,
					      FIXED));
	REFUSED(f, -EOVERFLOW, iopt_ioas_map_file(f->ioas, fd, UINT64_MAX - 10,
						  100, &iova, FIXED));
	REFUSED(f, -EINVAL, iopt_ioas_map_file(f->ioas, fd, 0, 0, &iova,
					       FIXED));
	close(fd);
}

/* semantics §5.13/14: unmap argument checks */
static void bad_unmap(void **state)
{
	struct fix *f = *state;
	uint64_t unmapped = 123;

	REFUSED(f, -EINVAL, iopt_ioas_unmap(NULL, AREA, PAGE, &unmapped));
	assert_int_equal(unmapped, 0);
	REFUSED(f, -EINVAL, iopt_ioas_unmap(f->ioas, AREA, 0, &unmapped));
	REFUSED(f, -EOVERFLOW, iopt_ioas_unmap(f->ioas, UINT64_MAX, 1,
					       &unmapped));
	REFUSED(f, -EOVERFLOW, iopt_ioas_unmap(f->ioas, 1, UINT64_MAX,
					       &unmapped));
	REFUSED(f, -EOVERFLOW, iopt_ioas_unmap(f->ioas, UINT64_MAX - 10, 100,
					       &unmapped));
	REFUSED(f, -ENOENT, iopt_ioas_unmap(f->ioas, 0x300000, PAGE,
					    &unmapped));
	REFUSED(f, -ENOENT, iopt_ioas_unmap(f->ioas, AREA, PAGE, NULL));
	assert_int_equal(unmapped, 0);
	REFUSED(f, -EINVAL, iopt_ioas_unmap_all(NULL, &unmapped));
}

/* semantics §5.17/19: copy argument checks */
static void bad_copy(void **state)
{
	struct fix *f = *state;
	uint64_t dst = 0x200000;

	REFUSED(f, -EINVAL, iopt_ioas_copy(NULL, &dst, f->ioas, AREA, PAGE,
					   FIXED));
	REFUSED(f, -EINVAL, iopt_ioas_copy(f->ioas, NULL, f->ioas, AREA, PAGE,
					   FIXED));
	REFUSED(f, -EINVAL, iopt_ioas_copy(f->ioas, &dst, NULL, AREA, PAGE,
					   FIXED));
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA,
					       PAGE, FIXED | BAD_FLAG));
	REFUSED(f, -EOVERFLOW, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA,
					      UINT64_MAX, FIXED));
	REFUSED(f, -EOVERFLOW, iopt_ioas_copy(f->ioas, &dst, f->ioas,
					      UINT64_MAX, PAGE, FIXED));
	dst = UINT64_MAX;
	REFUSED(f, -EOVERFLOW, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA,
					      PAGE, FIXED));
	dst = 0x200000;
	REFUSED(f, -EINVAL, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA, PAGE,
					   IOPT_IOAS_MAP_FIXED_IOVA));
	REFUSED(f, -EINVAL, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA, 0,
					   FIXED));
	REFUSED(f, -EOVERFLOW, iopt_ioas_copy(f->ioas, &dst, f->ioas,
					      UINT64_MAX - 10, 100, FIXED));
	REFUSED(f, -ENOENT, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA - 1,
					   PAGE, FIXED));
	/* the destination overlaps the source area */
	dst = AREA + PAGE;
	REFUSED(f, -EEXIST, iopt_ioas_copy(f->ioas, &dst, f->ioas, AREA, PAGE,
					   FIXED));
	assert_int_equal(dst, AREA + PAGE);
}

/* semantics §5.3/5.4: allowed and reserved argument checks */
static void bad_allow_reserve(void **state)
{
	struct fix *f = *state;
	struct iopt_iova_range one = { 0x1000, 0x1000 };
	struct iopt_iova_range backwards = { 0x2000, 0x1000 };
	struct iopt_iova_range all = { 0, UINT64_MAX };
	struct iopt_iova_range pair[2] = { { 0x1000, 0x1fff },
					   { 0x1fff, 0x2fff } };
	int other = 0;

	REFUSED(f, -EINVAL, iopt_ioas_allow_iovas(NULL, &one, 1));
	REFUSED(f, -EINVAL, iopt_ioas_allow_iovas(f->ioas, NULL, 1));
	REFUSED(f, -EINVAL, iopt_ioas_allow_iovas(f->ioas, &one, 1));
	REFUSED(f, -EINVAL, iopt_ioas_allow_iovas(f->ioas, &backwards, 1));
	REFUSED(f, -EINVAL, iopt_ioas_allow_iovas(f->ioas, pair, 2));
	REFUSED(f, -EADDRINUSE, iopt_ioas_allow_iovas(f->ioas, &all, 1));

	REFUSED(f, -EINVAL, iopt_ioas_reserve(NULL, 0, 1, &other));
	REFUSED(f, -EINVAL, iopt_ioas_reserve(f->ioas, 0, 1, NULL));
	REFUSED(f, -EINVAL, iopt_ioas_reserve(f->ioas, 2, 1, &other));
	REFUSED(f, -EADDRINUSE, iopt_ioas_reserve(f->ioas, 0, UINT64_MAX,
						  &other));
	REFUSED(f, -EADDRINUSE, iopt_ioas_reserve(f->ioas, AREA + PAGE,
						  AREA + PAGE, &other));
	REFUSED(f, -EADDRINUSE, iopt_ioas_reserve(f->ioas, 0x7fffffff,
						  UINT64_MAX, &other));
	REFUSED(f, -EINVAL, iopt_ioas_unreserve(NULL, &other));
	REFUSED(f, -EINVAL, iopt_ioas_unreserve(f->ioas, NULL));
	/* an owner with nothing reserved: success, no change */
	REFUSED(f, 0, iopt_ioas_unreserve(f->ioas, &other));
	/* the top of the space can be reserved (overlapping is allowed) */
	assert_int_equal(iopt_ioas_reserve(f->ioas, UINT64_MAX, UINT64_MAX,
					   &other), 0);
	assert_int_equal(iopt_ioas_reserve(f->ioas, RESV_START, RESV_START,
					   &other), 0);
	assert_int_equal(iopt_ioas_unreserve(f->ioas, &other), 0);
}

/* semantics §5.2, selftests §4.7: the capacity / -EMSGSIZE protocol */
static void sem5_2_iova_ranges_emsgsize(void **state)
{
	struct fix *f = *state;
	struct iopt_iova_range r[3];
	uint64_t align = 0;
	size_t n = 0;

	REFUSED(f, -EINVAL, iopt_ioas_iova_ranges(NULL, r, &n, &align));
	REFUSED(f, -EINVAL, iopt_ioas_iova_ranges(f->ioas, r, NULL, &align));
	n = 1;
	REFUSED(f, -EINVAL, iopt_ioas_iova_ranges(f->ioas, NULL, &n, &align));
	n = 0;
	REFUSED(f, -EMSGSIZE, iopt_ioas_iova_ranges(f->ioas, NULL, &n, &align));
	assert_int_equal(n, 2);
	assert_int_equal(align, f->grain);
	memset(r, 0xa5, sizeof(r));
	n = 1;
	REFUSED(f, -EMSGSIZE, iopt_ioas_iova_ranges(f->ioas, r, &n, NULL));
	assert_int_equal(n, 2);
	assert_int_equal(r[0].start, 0);
	assert_int_equal(r[0].last, RESV_START - 1);
	assert_true(r[1].start == UINT64_C(0xa5a5a5a5a5a5a5a5));
	n = 3;
	REFUSED(f, 0, iopt_ioas_iova_ranges(f->ioas, r, &n, NULL));
	assert_int_equal(n, 2);
	assert_int_equal(r[1].start, RESV_LAST + 1);
	assert_true(r[1].last == UINT64_MAX);
	assert_true(r[2].start == UINT64_C(0xa5a5a5a5a5a5a5a5));
}

static void bad_cut_huge_pages(void **state)
{
	struct fix *f = *state;
	uint64_t iovas[2] = { UINT64_MAX, 0 }, value = 7;

	REFUSED(f, -EINVAL, iopt_ioas_cut(NULL, iovas, 1));
	REFUSED(f, -EINVAL, iopt_ioas_cut(f->ioas, NULL, 1));
	REFUSED(f, 0, iopt_ioas_cut(f->ioas, NULL, 0));
	/* IOVAs inside no area, or at an area's edge, are no-ops */
	REFUSED(f, 0, iopt_ioas_cut(f->ioas, iovas, 2));
	iovas[0] = AREA;
	iovas[1] = AREA + 4 * PAGE - 1;
	REFUSED(f, 0, iopt_ioas_cut(f->ioas, iovas, 2));
	if (f->domain) {
		/* §5.29: huge IOPTEs cannot be split; §5.26 */
		iovas[0] = AREA + PAGE - 1;
		REFUSED(f, -EINVAL, iopt_ioas_cut(f->ioas, iovas, 1));
		REFUSED(f, -EINVAL, iopt_ioas_set_huge_pages(f->ioas, 0));
	}

	REFUSED(f, -EINVAL, iopt_ioas_set_huge_pages(NULL, 1));
	REFUSED(f, -EINVAL, iopt_ioas_set_huge_pages(f->ioas, 2));
	REFUSED(f, -EINVAL, iopt_ioas_set_huge_pages(f->ioas, UINT64_MAX));
	REFUSED(f, -EINVAL, iopt_ioas_get_huge_pages(NULL, &value));
	REFUSED(f, -EINVAL, iopt_ioas_get_huge_pages(f->ioas, NULL));
	assert_int_equal(value, 7);
}

static void bad_domains(void **state)
{
	struct fix *f = *state;
	struct iopt_domain no_ops = { .pgsize_bitmap = PAGE,
				      .aperture_last = UINT64_MAX };
	struct iopt_domain big = { .ops = &stub_ops,
				   .pgsize_bitmap = UINT64_C(1) << 21,
				   .aperture_last = UINT64_MAX };
	struct iopt_domain empty = { .ops = &stub_ops, .pgsize_bitmap = PAGE,
				     .aperture_start = 2, .aperture_last = 1 };
	struct iopt_domain plain = { .ops = &stub_ops, .pgsize_bitmap = PAGE,
				     .aperture_last = UINT64_MAX };
	struct iopt_domain no_dirty = { .ops = &stub_ops_no_dirty,
					.pgsize_bitmap = PAGE,
					.aperture_last = UINT64_MAX };
	uint64_t bitmap = 0;

	REFUSED(f, -EINVAL, iopt_ioas_attach_domain(NULL, &plain));
	REFUSED(f, -EINVAL, iopt_ioas_attach_domain(f->ioas, NULL));
	REFUSED(f, -EINVAL, iopt_ioas_attach_domain(f->ioas, &no_ops));
	REFUSED(f, -EINVAL, iopt_ioas_attach_domain(f->ioas, &big));
	REFUSED(f, -EINVAL, iopt_ioas_attach_domain(f->ioas, &empty));
	if (f->domain) {
		REFUSED(f, -EEXIST, iopt_ioas_attach_domain(f->ioas, f->domain));
		/* tracking is off: the simulator refuses the read */
		REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, f->domain,
							 AREA, PAGE, PAGE, 0,
							 &bitmap));
		REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, f->domain,
							 AREA + PAGE / 2, PAGE,
							 PAGE / 2, 0, &bitmap));
	}
	/* detach of NULL or of a domain never attached: nothing happens */
	REFUSED(f, 0, (iopt_ioas_detach_domain(NULL, &plain), 0));
	REFUSED(f, 0, (iopt_ioas_detach_domain(f->ioas, NULL), 0));
	REFUSED(f, 0, (iopt_ioas_detach_domain(f->ioas, &plain), 0));

	REFUSED(f, -EINVAL, iopt_ioas_set_dirty_tracking(NULL, &plain, true));
	REFUSED(f, -EINVAL, iopt_ioas_set_dirty_tracking(f->ioas, NULL, true));
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_set_dirty_tracking(f->ioas,
							     &no_dirty, true));
	REFUSED(f, -EINVAL, iopt_ioas_set_dirty_tracking(f->ioas, &plain,
							 true));

	/* semantics §5.40: dirty request validation */
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(NULL, &plain, AREA, PAGE,
						 PAGE, 0, &bitmap));
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA, PAGE,
						 PAGE, 0, NULL));
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_read_dirty(f->ioas, &plain, AREA,
						     PAGE, PAGE, 2, &bitmap));
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA, 0,
						 PAGE, 0, &bitmap));
	REFUSED(f, -EOVERFLOW, iopt_ioas_read_dirty(f->ioas, &plain,
						    UINT64_MAX - PAGE + 1,
						    2 * PAGE, PAGE, 0,
						    &bitmap));
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA, PAGE,
						 0, 0, &bitmap));
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA,
						 3 * PAGE, 3 * PAGE, 0,
						 &bitmap));
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA + PAGE,
						 2 * PAGE, 2 * PAGE, 0,
						 &bitmap));
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA, PAGE,
						 2 * PAGE, 0, &bitmap));
	REFUSED(f, -EOPNOTSUPP, iopt_ioas_read_dirty(f->ioas, &no_dirty, AREA,
						     PAGE, PAGE, 0, &bitmap));
	/* a valid request on a domain not attached here */
	REFUSED(f, -EINVAL, iopt_ioas_read_dirty(f->ioas, &plain, AREA, PAGE,
						 PAGE, 0, &bitmap));
	assert_int_equal(bitmap, 0);
}

/*
 * The snapshot must see a domain change that leaves the layout alone: a
 * stray leaf outside the areas, and the area's pages remapped to the same
 * leaf sizes but permuted frames. The domain is put back as the core left
 * it before teardown detaches it.
 */
static void snap_sees_domain_changes(void **state)
{
	const int prot = IOPT_PROT_READ | IOPT_PROT_WRITE | IOPT_PROT_CACHE;
	struct fix *f = *state;
	struct iopt_domain *d = f->domain;
	struct iopt_iotlb_gather g;
	struct snap orig = snap_take(f), split, permuted;
	uint64_t pa[4], mapped = 0;

	for (int i = 0; i != 4; i++)
		pa[i] = d->ops->iova_to_phys(d, AREA + i * PAGE);
	assert_int_equal(d->ops->map_pages(d, 0x4000000, pa[0], PAGE, 1, prot,
					   &mapped), 0);
	assert_true(snap_take(f).leaves != orig.leaves);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(d->ops->unmap_pages(d, 0x4000000, PAGE, 1, &g), PAGE);
	assert_int_equal(d->ops->unmap_pages(d, AREA, PAGE, 4, &g), 4 * PAGE);
	d->ops->iotlb_sync(d, &g);
	/* one 4 KiB call per page: no leaf can span two of them */
	for (int i = 0; i != 4; i++)
		assert_int_equal(d->ops->map_pages(d, AREA + i * PAGE, pa[i],
						   PAGE, 1, prot, &mapped), 0);
	split = snap_take(f);
	assert_true(split.translations == orig.translations);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(d->ops->unmap_pages(d, AREA, PAGE, 4, &g), 4 * PAGE);
	d->ops->iotlb_sync(d, &g);
	for (int i = 0; i != 4; i++)
		assert_int_equal(d->ops->map_pages(d, AREA + i * PAGE,
						   pa[i ^ 1], PAGE, 1, prot,
						   &mapped), 0);
	permuted = snap_take(f);
	assert_true(permuted.leaves == split.leaves);
	assert_true(permuted.translations != split.translations);

	iopt_iotlb_gather_init(&g);
	assert_int_equal(d->ops->unmap_pages(d, AREA, PAGE, 4, &g), 4 * PAGE);
	d->ops->iotlb_sync(d, &g);
	assert_int_equal(d->ops->map_pages(d, AREA, pa[0], PAGE, 4, prot,
					   &mapped), 0);
	permuted = snap_take(f);
	assert_true(permuted.translations == orig.translations);
	assert_true(permuted.leaves == orig.leaves);
}

/* Every case again as "<case>_domain", with fix_setup_domain. */
#define DOMAIN_VARIANT(name)                                                   \
	static void name##_domain(void **state)                                \
	{                                                                      \
		name(state);                                                   \
	}

DOMAIN_VARIANT(bad_alloc_destroy_id)
DOMAIN_VARIANT(sem5_6_bad_map)
DOMAIN_VARIANT(bad_map_file)
DOMAIN_VARIANT(bad_unmap)
DOMAIN_VARIANT(bad_copy)
DOMAIN_VARIANT(bad_allow_reserve)
DOMAIN_VARIANT(sem5_2_iova_ranges_emsgsize)
DOMAIN_VARIANT(bad_cut_huge_pages)
DOMAIN_VARIANT(bad_domains)

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(bad_alloc_destroy_id,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_6_bad_map,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_map_file,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_unmap,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_copy,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_allow_reserve,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_2_iova_ranges_emsgsize,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_cut_huge_pages,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_domains,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_alloc_destroy_id_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_6_bad_map_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_map_file_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_unmap_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_copy_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_allow_reserve_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_2_iova_ranges_emsgsize_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_cut_huge_pages_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(bad_domains_domain,
					fix_setup_domain, fix_teardown),
	cmocka_unit_test_setup_teardown(snap_sees_domain_changes,
					fix_setup_domain, fix_teardown),
};

IOPT_TEST_MAIN(tests)
