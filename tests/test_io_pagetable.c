/* SPDX-License-Identifier: MIT */
/*
 * test_io_pagetable.c - the IOVA layout rules of an IOAS, with and without
 * domains: alignment, overlap, allowed and reserved ranges, auto IOVA, unmap,
 * copy, cut, attach/detach and huge pages.
 *
 * Cases are named after the edge case they check: "sem5_N" is
 * iopt-semantics.md §5.N, "kst_N" is kernel-selftests.md §4.N. Refusals
 * assert the exact errno and that the layout digest (iopt_table_digest()),
 * the pin count and the domain contents did not change.
 *
 * Domains here are a strict mock (struct mock_domain) rather than the
 * simulator: it checks what the kernel's selftest mock checks (every unmap
 * begins and ends where a map call began and ended, §4.10), records leaves by
 * size (huge-page cases), can fail its k-th map call, and keeps per-leaf dirty
 * bits. Frames are compared with the source memory through
 * iopt_phys_to_host() at every page.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "alloc.h"
#include "io_pagetable.h"
#include "pages.h"

#define PAGE IOPT_PAGE_SIZE
#define HPAGE IOPT_HPAGE_SIZE
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED (IOPT_IOAS_MAP_FIXED_IOVA | RW)
#define MOCK_APERTURE_START (UINT64_C(1) << 24)
#define MOCK_APERTURE_LAST ((UINT64_C(1) << 31) - 1)
#define BUF_SIZE (4 * HPAGE)

/* ---- a strict mock domain ---- */

struct mock_leaf {
	uint64_t iova;
	uint64_t size;
	uint64_t paddr;
	int prot;
	bool call_start;	/* first leaf of a map_pages() call */
	bool call_last;		/* last leaf of a map_pages() call */
	bool dirty;
};

struct mock_domain {
	struct iopt_domain domain;
	pthread_mutex_t lock;		/* the core maps disjoint ranges concurrently */
	struct mock_leaf *leaves;
	size_t nleaves;
	size_t cap;
	unsigned long map_calls;
	unsigned long fail_at;		/* fail the n-th map call (1-based) */
	unsigned long violations;	/* unmaps splitting a map call */
	bool tracking;
};

static struct mock_domain *to_mock(struct iopt_domain *d)
{
	return container_of(d, struct mock_domain, domain);
}

static struct mock_leaf *mock_find(struct mock_domain *m, uint64_t iova)
{
	for (size_t i = 0; i != m->nleaves; i++)
		if (iova >= m->leaves[i].iova &&
		    iova - m->leaves[i].iova < m->leaves[i].size)
			return &m->leaves[i];
	return NULL;
}

static int mock_map_locked(struct mock_domain *m, uint64_t iova, uint64_t paddr,
			   uint64_t pgsize, uint64_t pgcount, int prot,
			   uint64_t *mapped)
{
	if (++m->map_calls == m->fail_at)
		return -ENOMEM;
	for (uint64_t i = 0; i != pgcount; i++) {
		uint64_t at = iova + i * pgsize;

		if (mock_find(m, at) || mock_find(m, at + pgsize - 1))
			return -EADDRINUSE;
		if (m->nleaves == m->cap) {
			m->cap = m->cap ? m->cap * 2 : 64;
			m->leaves = realloc(m->leaves,
					    m->cap * sizeof(*m->leaves));
			assert_non_null(m->leaves);
		}
		m->leaves[m->nleaves++] = (struct mock_leaf){
			.iova = at, .size = pgsize, .paddr = paddr + i * pgsize,
			.prot = prot, .call_start = i == 0,
			.call_last = i == pgcount - 1,
		};
		*mapped += pgsize;
	}
	return 0;
}

static int mock_map_pages(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
			  uint64_t pgsize, uint64_t pgcount, int prot,
			  uint64_t *mapped)
{
	struct mock_domain *m = to_mock(d);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = mock_map_locked(m, iova, paddr, pgsize, pgcount, prot, mapped);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/*
 * The core splits a contiguous run into several calls by page size; a run's
 * boundaries are what must not be split, so "call" here is the whole run the
 * core asked to map: it starts at a call_start leaf not preceded by an
 * adjacent leaf of the same run. The check is the selftest's: the first leaf
 * unmapped starts a call and the last leaf unmapped ends one.
 */
static uint64_t mock_unmap_pages(struct iopt_domain *d, uint64_t iova,
				 uint64_t pgsize, uint64_t pgcount,
				 struct iopt_iotlb_gather *g)
{
	struct mock_domain *m = to_mock(d);
	uint64_t length = pgsize * pgcount, last = iova + length - 1;
	struct mock_leaf *first, *end;
	size_t i = 0;

	pthread_mutex_lock(&m->lock);
	first = mock_find(m, iova);
	end = mock_find(m, last);
	if ((first && (!first->call_start || first->iova != iova)) ||
	    (end && (!end->call_last || end->iova + end->size - 1 != last)))
		m->violations++;
	while (i != m->nleaves) {
		struct mock_leaf *l = &m->leaves[i];

		if (l->iova >= iova && l->iova <= last) {
			*l = m->leaves[--m->nleaves];
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&m->lock);
	iopt_iotlb_gather_add_range(g, iova, last);
	return length;
}

static uint64_t mock_iova_to_phys(struct iopt_domain *d, uint64_t iova)
{
	struct mock_domain *m = to_mock(d);
	struct mock_leaf *l;
	uint64_t pa;

	pthread_mutex_lock(&m->lock);
	l = mock_find(m, iova);
	pa = l ? l->paddr + (iova - l->iova) : 0;
	pthread_mutex_unlock(&m->lock);
	return pa;
}

static void mock_iotlb_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g)
{
	(void)d;
	iopt_iotlb_gather_init(g);
}

static void mock_flush_iotlb_all(struct iopt_domain *d)
{
	(void)d;
}

static int mock_set_dirty_tracking(struct iopt_domain *d, bool enable)
{
	to_mock(d)->tracking = enable;
	return 0;
}

static int mock_read_and_clear_dirty(struct iopt_domain *d, uint64_t iova,
				     uint64_t length, unsigned int flags,
				     struct iopt_dirty_bitmap *dirty)
{
	struct mock_domain *m = to_mock(d);
	uint64_t last = iova + length - 1;

	for (size_t i = 0; i != m->nleaves; i++) {
		struct mock_leaf *l = &m->leaves[i];

		if (!l->dirty || l->iova > last || l->iova + l->size - 1 < iova)
			continue;
		iopt_dirty_bitmap_record(dirty, l->iova, l->size);
		if (!(flags & IOPT_DIRTY_NO_CLEAR))
			l->dirty = false;
	}
	return 0;
}

static void mock_free(struct iopt_domain *d)
{
	pthread_mutex_destroy(&to_mock(d)->lock);
	free(to_mock(d)->leaves);
	free(to_mock(d));
}

static const struct iopt_domain_ops mock_ops = {
	.map_pages = mock_map_pages,
	.unmap_pages = mock_unmap_pages,
	.iova_to_phys = mock_iova_to_phys,
	.iotlb_sync = mock_iotlb_sync,
	.flush_iotlb_all = mock_flush_iotlb_all,
	.set_dirty_tracking = mock_set_dirty_tracking,
	.read_and_clear_dirty = mock_read_and_clear_dirty,
	.free = mock_free,
};

static struct mock_domain *mock_alloc(uint64_t pgsize_bitmap)
{
	struct mock_domain *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	pthread_mutex_init(&m->lock, NULL);
	m->domain = (struct iopt_domain){
		.ops = &mock_ops, .pgsize_bitmap = pgsize_bitmap,
		.aperture_start = MOCK_APERTURE_START,
		.aperture_last = MOCK_APERTURE_LAST,
	};
	return m;
}

static uint64_t mock_count_leaves(struct mock_domain *m, uint64_t size)
{
	uint64_t n = 0;

	for (size_t i = 0; i != m->nleaves; i++)
		n += m->leaves[i].size == size;
	return n;
}

/* ---- fixture ---- */

struct fix {
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas;
	struct iopt_sim_iommu *iommu;	/* made on first use */
	uint8_t *buf;		/* BUF_SIZE bytes, HPAGE aligned */
	void *raw;
	size_t raw_len;
};

static int fix_setup_opts(void **state, const struct iopt_ctx_options *opts)
{
	struct fix *f = calloc(1, sizeof(*f));
	uintptr_t p;

	assert_non_null(f);
	assert_int_equal(iopt_ctx_alloc(opts, &f->ctx), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas), 0);
	f->raw_len = BUF_SIZE + HPAGE;
	f->raw = mmap(NULL, f->raw_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->raw != MAP_FAILED);
	p = IOPT_ALIGN_UP((uintptr_t)f->raw, (uintptr_t)HPAGE);
	f->buf = (uint8_t *)p;
	for (size_t i = 0; i != BUF_SIZE; i++)
		f->buf[i] = (uint8_t)(i * 7 + 3);
	*state = f;
	return 0;
}

/*
 * The CONTIGUOUS model makes a pinned 2 MiB-aligned buffer one 2 MiB-aligned
 * run of frames whatever the host's THP setting, so the huge-leaf cases
 * (§5.27, §5.28) are deterministic rather than skipped.
 */
static int fix_setup(void **state)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = IOPT_PHYS_CONTIGUOUS,
	};

	return fix_setup_opts(state, &opts);
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;

	assert_int_equal(iopt_table_check(&f->ioas->iopt), 0);
	assert_int_equal(iopt_ioas_destroy(f->ioas), 0);
	iopt_sim_iommu_destroy(f->iommu);
	iopt_ctx_destroy(f->ctx);
	munmap(f->raw, f->raw_len);
	free(f);
	assert_int_equal(iopt_lockdep_depth(), 0);
	return 0;
}

static uint64_t digest(struct fix *f)
{
	return iopt_table_digest(&f->ioas->iopt);
}

static void map_fixed(struct fix *f, uint64_t iova, void *p, uint64_t len)
{
	uint64_t at = iova;

	assert_int_equal(iopt_ioas_map(f->ioas, p, len, &at, FIXED), 0);
	assert_int_equal(at, iova);
}

static size_t count_areas(struct iopt_ioas *ioas)
{
	struct iopt_area *area;
	size_t n = 0;

	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	iopt_for_each_area(area, &ioas->iopt, 0, UINT64_MAX)
		n++;
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
	return n;
}

/* Detach @m (if attached) and free it; a detached domain is empty. */
static void mock_detach_free(struct fix *f, struct mock_domain *m)
{
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(m->violations, 0);
	mock_free(&m->domain);
}

/* Every page of [iova, iova + len) translates in @d to @src's bytes. */
static void assert_translates(struct iopt_domain *d, uint64_t iova,
			      const uint8_t *src, uint64_t len, uint64_t step)
{
	for (uint64_t off = 0; off < len; off += step) {
		uint64_t pa = d->ops->iova_to_phys(d, iova + off);

		assert_true(pa != 0);
		assert_ptr_equal(iopt_phys_to_host(pa), src + off);
	}
}

/* ---- cases ---- */

/* semantics §5.1, selftests §4.7: ranges and alignment before/after attach */
static void sem5_1_iova_ranges_follow_domain(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE | HPAGE);
	struct iopt_iova_range r[2];
	size_t n = 2;
	uint64_t align;

	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, r, &n, &align), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].start, 0);
	assert_true(r[0].last == UINT64_MAX);
	assert_int_equal(align, 1);

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	n = 2;
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, r, &n, &align), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].start, MOCK_APERTURE_START);
	assert_int_equal(r[0].last, MOCK_APERTURE_LAST);
	assert_int_equal(align, PAGE);

	iopt_ioas_detach_domain(f->ioas, &m->domain);
	n = 2;
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, r, &n, &align), 0);
	assert_int_equal(n, 1);
	assert_int_equal(align, 1);
	mock_free(&m->domain);
}

/* semantics §5.3, selftests §4.6: allowed ranges */
static void sem5_3_allowed_ranges(void **state)
{
	struct fix *f = *state;
	struct iopt_iova_range one = { 0x1000, 0x1000 };
	struct iopt_iova_range overlap[2] = { { 0x1000, 0x2fff },
					      { 0x2000, 0x3fff } };
	struct iopt_iova_range hit = { 0x10000, 0x1ffff };
	struct iopt_iova_range ok = { 0x100000, 0x1fffff };
	uint64_t d;
	int owner = 0;

	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, &ok, 1), 0);
	assert_int_equal(iopt_ioas_reserve(f->ioas, 0x18000, 0x18fff, &owner),
			 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, &one, 1), -EINVAL);
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, overlap, 2), -EINVAL);
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, &hit, 1), -EADDRINUSE);
	/* the old list is kept */
	assert_true(digest(f) == d);
	/* n == 0 clears it */
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, NULL, 0), 0);
	assert_true(digest(f) != d);
	assert_int_equal(iopt_ioas_unreserve(f->ioas, &owner), 0);
}

/* semantics §5.4, selftests §4.6: reservations hitting allowed/areas/aperture */
static void sem5_4_reserve_conflicts(void **state)
{
	struct fix *f = *state;
	struct iopt_iova_range ok = { 0x100000, 0x1fffff };
	struct mock_domain *m = mock_alloc(PAGE);
	uint64_t d, pins;
	int owner = 0;

	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, &ok, 1), 0);
	map_fixed(f, 0x10000, f->buf, PAGE);
	d = digest(f);
	assert_int_equal(iopt_ioas_reserve(f->ioas, 0x1ff000, 0x200fff, &owner),
			 -EADDRINUSE);
	assert_int_equal(iopt_ioas_reserve(f->ioas, 0x10fff, 0x10fff, &owner),
			 -EADDRINUSE);
	assert_true(digest(f) == d);
	/* the area at 0x10000 lies outside the aperture: attach refused */
	pins = iopt_test_pages_pinned(f->ctx);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain),
			 -EADDRINUSE);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), pins);
	assert_int_equal(m->nleaves, 0);
	mock_free(&m->domain);
}

/* semantics §5.5, selftests §4.4: fixed map vs reserved and areas */
static void sem5_5_fixed_map_reserved_and_overlap(void **state)
{
	struct fix *f = *state;
	const uint64_t base = 0x100000, len = 4 * PAGE;
	static const int64_t starts[] = { -(int64_t)PAGE, -1, 0, 1,
					  PAGE, 4 * PAGE - 1 };
	uint64_t d, iova;
	int owner = 0;

	assert_int_equal(iopt_ioas_reserve(f->ioas, 0x400000, 0x400000, &owner),
			 0);
	iova = 0x3ff001;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, FIXED),
			 -EINVAL);
	map_fixed(f, base, f->buf, len);
	d = digest(f);
	for (size_t i = 0; i != IOPT_ARRAY_SIZE(starts); i++) {
		/* one byte over either edge, inside, straddling */
		iova = base + (uint64_t)starts[i];
		assert_int_equal(iopt_ioas_map(f->ioas, f->buf + PAGE, 2 * PAGE,
					       &iova, FIXED), -EEXIST);
	}
	/* covering the area entirely */
	iova = base - PAGE;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 8 * PAGE, &iova, FIXED),
			 -EEXIST);
	assert_true(digest(f) == d);
	/* exactly adjacent on both sides is fine */
	map_fixed(f, base - PAGE, f->buf, PAGE);
	map_fixed(f, base + len, f->buf, 1);
	assert_int_equal(iopt_ioas_unreserve(f->ioas, &owner), 0);
}

/* semantics §5.7, selftests §4.13: alignment with and without a domain */
static void sem5_7_alignment_with_domain(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint64_t iova, d, unmapped;

	/* no domain: every length from 1 to 2 pages maps and unmaps */
	for (uint64_t len = 1; len <= 2 * PAGE; len += iopt_test_quick() ? 97 : 1) {
		map_fixed(f, MOCK_APERTURE_START + 1, f->buf + 3, len);
		assert_int_equal(iopt_ioas_unmap(f->ioas, MOCK_APERTURE_START + 1,
						 len, &unmapped), 0);
		assert_int_equal(unmapped, len);
	}
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	d = digest(f);
	iova = MOCK_APERTURE_START;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE + 1, &iova, FIXED),
			 -EINVAL);
	iova = MOCK_APERTURE_START + 512;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, FIXED),
			 -EINVAL);
	iova = MOCK_APERTURE_START;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + 512, PAGE, &iova,
				       FIXED), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);
	mock_detach_free(f, m);
}

/* semantics §5.8, selftests §4.5: auto IOVA alignment, page 0, reservations */
static void sem5_8_auto_iova(void **state)
{
	struct fix *f = *state;
	uint64_t iova, prev = 0;
	int owner = 0;

	for (uint64_t pages = 1; pages <= 10; pages++) {
		uint64_t len = pages * PAGE;
		uint64_t align = UINT64_C(1) << iopt_fls64(len - 1);

		if (align < len)
			align <<= 1;
		align = IOPT_MIN(align, HPAGE);
		assert_int_equal(iopt_ioas_map(f->ioas, f->buf, len, &iova, RW),
				 0);
		assert_true(iopt_is_aligned(iova, align));
		/* the selftest's weaker check: lowest set bit of the length */
		assert_true(iopt_is_aligned(iova, len & -len));
		assert_true(iova >= PAGE);
		assert_true(iova > prev);
		prev = iova;
	}
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);

	/* the first fit skips a reservation */
	assert_int_equal(iopt_ioas_reserve(f->ioas, 0, 0xffffff, &owner), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, RW), 0);
	assert_int_equal(iova, 0x1000000);
	assert_int_equal(iopt_ioas_unreserve(f->ioas, &owner), 0);
	/* a sub-page source keeps its in-page offset (§5.9) */
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + 0x123, 0x10, &iova, RW),
			 0);
	assert_int_equal(iova % PAGE, 0x123);
}

/* semantics §5.8: auto IOVA stays inside allowed ranges; -ENOSPC */
static void sem5_8_auto_iova_allowed_enospc(void **state)
{
	struct fix *f = *state;
	struct iopt_iova_range allowed = { 0x200000, 0x203fff };
	uint64_t iova, d;

	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, &allowed, 1), 0);
	for (int i = 0; i != 3; i++) {
		assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, RW),
				 0);
		assert_int_equal(iova, 0x200000 + i * PAGE);
	}
	/* the kernel refuses a candidate equal to the range's last byte */
	d = digest(f);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 2 * PAGE, &iova, RW),
			 -ENOSPC);
	assert_true(digest(f) == d);
	/* a fixed map ignores the allowed ranges */
	map_fixed(f, 0x800000, f->buf, PAGE);
}

/* semantics §5.9: with a domain, an unaligned source fails auto map */
static void sem5_9_auto_iova_unaligned_source_domain(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint64_t iova;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + 0x800, PAGE, &iova, RW),
			 -EINVAL);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 3 * PAGE, &iova, RW), 0);
	assert_true(iova >= MOCK_APERTURE_START && iova <= MOCK_APERTURE_LAST);
	assert_translates(&m->domain, iova, f->buf, 3 * PAGE, PAGE);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	assert_int_equal(m->violations, 0);
	mock_free(&m->domain);
}

/* A page-aligned range with nothing mapped behind it. */
static uint8_t *hole_alloc(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			  0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(munmap(p, len), 0);
	return p;
}

/* semantics §5.10, selftests §4.8/4.9: lazy map; -EFAULT only at attach */
static void sem5_10_lazy_map_efault_at_attach(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint8_t *hole = hole_alloc(4 * PAGE);
	uint64_t d;

	map_fixed(f, MOCK_APERTURE_START, f->buf, 2 * PAGE);
	map_fixed(f, MOCK_APERTURE_START + HPAGE, hole, 4 * PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), -EFAULT);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(m->violations, 0);
	mock_free(&m->domain);
}

/* semantics §5.11, selftests §4.8: map with a domain over a half-gone buffer */
static void sem5_11_map_domain_efault_nothing_left(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint8_t *p = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t iova = MOCK_APERTURE_START, d;

	assert_true(p != MAP_FAILED);
	/* pages 4 and 5 gone: a hole in the middle, at the start, at the tail */
	assert_int_equal(munmap(p + 4 * PAGE, 2 * PAGE), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_map(f->ioas, p, 8 * PAGE, &iova, FIXED),
			 -EFAULT);
	assert_int_equal(iopt_ioas_map(f->ioas, p + 4 * PAGE, 4 * PAGE, &iova,
				       FIXED), -EFAULT);
	assert_int_equal(iopt_ioas_map(f->ioas, p + 3 * PAGE, 2 * PAGE, &iova,
				       RW), -EFAULT);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(m->violations, 0);
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	munmap(p, 4 * PAGE);
	munmap(p + 6 * PAGE, 2 * PAGE);
	mock_free(&m->domain);
}

/* semantics §5.12: the memlock limit refuses a map with a domain */
static void sem5_12_memlock_limit(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint64_t iova = MOCK_APERTURE_START, d;
	struct iopt_ctx_stats st;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 8 * PAGE, &iova, FIXED),
			 -ENOMEM);
	assert_true(digest(f) == d);
	iopt_ctx_read_stats(f->ctx, &st);
	assert_int_equal(st.pages_pinned, 0);
	assert_int_equal(st.pages_charged, 0);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 4 * PAGE, &iova, FIXED),
			 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	mock_detach_free(f, m);
}

static int fix_setup_limited(void **state)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_USER,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = IOPT_PHYS_CONTIGUOUS,
		.flags = IOPT_CTX_LIMIT,
		.limit_pages = 4,
	};

	return fix_setup_opts(state, &opts);
}

/*
 * semantics §5.12: the very map refused above succeeds, on the same context
 * and limit, once the accounting mode is NONE: charged in the statistics,
 * never refused.
 */
static void sem5_12_memlock_limit_none_mode(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint64_t iova = MOCK_APERTURE_START;
	struct iopt_ctx_stats st;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 8 * PAGE, &iova, FIXED),
			 -ENOMEM);
	/* the mode may change only while the context has no objects */
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	assert_int_equal(iopt_ioas_destroy(f->ioas), 0);
	assert_int_equal(iopt_ctx_set_account_mode(f->ctx, IOPT_ACCOUNT_NONE),
			 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 8 * PAGE, &iova, FIXED),
			 0);
	iopt_ctx_read_stats(f->ctx, &st);
	assert_int_equal(st.pages_pinned, 8);
	assert_int_equal(st.pages_charged, 8);
	assert_int_equal(st.account_pages, 8);
	assert_true(st.limit_pages == IOPT_CTX_UNLIMITED);
	assert_translates(&m->domain, iova, f->buf, 8 * PAGE, PAGE);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	mock_detach_free(f, m);
}

/* semantics §5.13-15, selftests §4.1-4.3: unmap rules */
static void sem5_13_15_unmap_whole_areas(void **state)
{
	struct fix *f = *state;
	const uint64_t a = 0x100000, b = 0x200000;
	uint64_t unmapped, d;

	assert_int_equal(iopt_ioas_unmap(f->ioas, a, PAGE, &unmapped), -ENOENT);
	assert_int_equal(unmapped, 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, &unmapped), 0);
	assert_int_equal(unmapped, 0);

	map_fixed(f, a, f->buf, 2 * PAGE);
	map_fixed(f, b, f->buf, 16 * PAGE);
	d = digest(f);
	/* §5.14: front, back, middle of one area */
	assert_int_equal(iopt_ioas_unmap(f->ioas, a, PAGE, &unmapped), -ENOENT);
	assert_int_equal(iopt_ioas_unmap(f->ioas, a + PAGE, PAGE, &unmapped),
			 -ENOENT);
	assert_int_equal(iopt_ioas_unmap(f->ioas, b + PAGE, PAGE, &unmapped),
			 -ENOENT);
	assert_int_equal(unmapped, 0);
	assert_true(digest(f) == d);
	/* §5.15: both areas and the gaps around them */
	assert_int_equal(iopt_ioas_unmap(f->ioas, a - PAGE, 0x200000, &unmapped),
			 0);
	assert_int_equal(unmapped, 18 * PAGE);
	assert_int_equal(count_areas(f->ioas), 0);
	/* unmap-all twice on empty */
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0, UINT64_MAX, &unmapped), 0);
	assert_int_equal(unmapped, 0);
}

/* semantics §5.16: not atomic across areas, partial count reported */
static void sem5_16_unmap_partial_count(void **state)
{
	struct fix *f = *state;
	uint64_t unmapped;

	map_fixed(f, 0x100000, f->buf, 2 * PAGE);
	map_fixed(f, 0x200000, f->buf, 4 * PAGE);
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0x100000, 0x100000 + PAGE,
					 &unmapped), -ENOENT);
	assert_int_equal(unmapped, 2 * PAGE);
	assert_int_equal(count_areas(f->ioas), 1);
}

/* semantics §5.17, selftests §4.16: copy of sub-ranges */
static void sem5_17_copy_subrange(void **state)
{
	struct fix *f = *state;
	struct iopt_ioas *dst;
	uint64_t iova, d;

	assert_int_equal(iopt_ioas_alloc(f->ctx, &dst), 0);
	map_fixed(f, 0x100000, f->buf, 4 * PAGE);
	map_fixed(f, 0x200000, f->buf, 4 * PAGE);
	/* 511 bytes in, 2 KiB long, to a fixed IOVA in another IOAS */
	iova = 0x300000 + 511;
	assert_int_equal(iopt_ioas_copy(dst, &iova, f->ioas, 0x100000 + 511,
					2048, FIXED), 0);
	/* same IOAS, auto IOVA, keeps the offset */
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, 0x100000 + 511,
					2048, RW), 0);
	assert_int_equal(iova % PAGE, 511);
	d = digest(f);
	iova = 0x500000;
	assert_int_equal(iopt_ioas_copy(dst, &iova, f->ioas, 0x100000 - 1, 2,
					FIXED), -ENOENT);
	assert_int_equal(iopt_ioas_copy(dst, &iova, f->ioas, 0x104000 - 1, 2,
					FIXED), -ENOENT);
	/* spans the gap between the two areas */
	assert_int_equal(iopt_ioas_copy(dst, &iova, f->ioas, 0x100000,
					0x100000 + PAGE, FIXED), -ENOENT);
	assert_int_equal(iopt_ioas_copy(dst, &iova, f->ioas, 0x100000, 0,
					FIXED), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(count_areas(dst), 1);
	assert_int_equal(iopt_ioas_destroy(dst), 0);
}

/* semantics §5.18: a copy across two areas makes two areas */
static void sem5_18_copy_two_areas(void **state)
{
	struct fix *f = *state;
	uint64_t iova = 0x400000, unmapped;

	map_fixed(f, 0x100000, f->buf, 2 * PAGE);
	map_fixed(f, 0x102000, f->buf + 8 * PAGE, 2 * PAGE);
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, 0x101000,
					2 * PAGE, FIXED), 0);
	assert_int_equal(count_areas(f->ioas), 4);
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0x401000, PAGE, &unmapped), 0);
	assert_int_equal(unmapped, PAGE);
}

/* semantics §5.19: write copy of read-only pages */
static void sem5_19_copy_permissions(void **state)
{
	struct fix *f = *state;
	uint64_t iova = 0x100000, d;

	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova,
				       IOPT_IOAS_MAP_FIXED_IOVA |
					       IOPT_IOAS_MAP_READABLE), 0);
	map_fixed(f, 0x200000, f->buf, PAGE);
	d = digest(f);
	iova = 0x300000;
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, 0x100000, PAGE,
					FIXED), -EPERM);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, 0x200000, PAGE,
					IOPT_IOAS_MAP_FIXED_IOVA |
						IOPT_IOAS_MAP_READABLE), 0);
}

/* semantics §5.20, selftests §4.12: copies and domains share one pin */
static void sem5_20_copy_shares_pins(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m1 = mock_alloc(PAGE), *m2 = mock_alloc(PAGE);
	const uint64_t a = MOCK_APERTURE_START;
	uint64_t iova = a + HPAGE;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m1->domain), 0);
	map_fixed(f, a, f->buf, 16 * PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 16);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m2->domain), 0);
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, a, 16 * PAGE,
					FIXED), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 16);
	assert_translates(&m1->domain, iova, f->buf, 16 * PAGE, PAGE);
	assert_translates(&m2->domain, iova, f->buf, 16 * PAGE, PAGE);
	/* the copy outlives its source */
	assert_int_equal(iopt_ioas_unmap(f->ioas, a, 16 * PAGE, NULL), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 16);
	assert_translates(&m2->domain, iova, f->buf, 16 * PAGE, PAGE);
	assert_int_equal(iopt_ioas_unmap(f->ioas, iova, 16 * PAGE, NULL), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	iopt_ioas_detach_domain(f->ioas, &m1->domain);
	iopt_ioas_detach_domain(f->ioas, &m2->domain);
	assert_int_equal(m1->violations + m2->violations, 0);
	mock_free(&m1->domain);
	mock_free(&m2->domain);
}

/*
 * A source of domains for the every-order test: the strict mock or the
 * simulator, both with a 2 KiB smallest page so a sub-page area fits.
 */
struct domain_kind {
	struct iopt_domain *(*alloc)(struct fix *f);
	/* the domain maps nothing and the backend saw no protocol breach */
	void (*assert_empty)(struct iopt_domain *d);
};

static struct iopt_domain *mock_kind_alloc(struct fix *f)
{
	(void)f;
	return &mock_alloc(PAGE / 2)->domain;
}

static void mock_kind_assert_empty(struct iopt_domain *d)
{
	assert_int_equal(to_mock(d)->nleaves, 0);
	assert_int_equal(to_mock(d)->violations, 0);
}

static struct iopt_domain *sim_kind_alloc(struct fix *f)
{
	struct iopt_sim_domain_config cfg = {
		.format = IOPT_SIM_FMT_AMDV1_2K,
		.aperture_start = MOCK_APERTURE_START,
		.aperture_last = MOCK_APERTURE_LAST,
	};
	struct iopt_domain *d;

	if (!f->iommu)
		assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &cfg, &d), 0);
	return d;
}

static void sim_kind_assert_empty(struct iopt_domain *d)
{
	assert_int_equal(iopt_sim_domain_count_leaves(d, 0, UINT64_MAX, NULL),
			 0);
	assert_int_equal(iopt_sim_domain_journal_pending(d), 0);
}

static const struct domain_kind mock_kind = { mock_kind_alloc,
					      mock_kind_assert_empty };
static const struct domain_kind sim_kind = { sim_kind_alloc,
					     sim_kind_assert_empty };

/*
 * The areas of the multi-domain cases: 8 pages at the aperture start and a
 * sub-page one 2 KiB into a page (12 pinned pages in all), so every
 * translation check covers a whole-page and an offset area.
 */
#define MULTI_PINS 12

static void map_multi_areas(struct fix *f)
{
	map_fixed(f, MOCK_APERTURE_START, f->buf, 8 * PAGE);
	map_fixed(f, MOCK_APERTURE_START + HPAGE + 0x800, f->buf + 0x800,
		  3 * PAGE);
}

/* @d translates every 2 KiB granule of both areas to the source bytes. */
static void assert_multi_areas(struct iopt_domain *d, struct fix *f)
{
	assert_translates(d, MOCK_APERTURE_START, f->buf, 8 * PAGE, PAGE / 2);
	assert_translates(d, MOCK_APERTURE_START + HPAGE + 0x800,
			  f->buf + 0x800, 3 * PAGE, PAGE / 2);
}

/*
 * semantics §5.22-24, selftests §4.9: three domains attached and detached
 * in every order; each translates every page like the source, there is one
 * pin per page whatever the number of domains, and the pins vanish with the
 * last domain, which is left empty. After each detach every area is checked
 * in every remaining domain.
 */
static void domains_every_order(struct fix *f, const struct domain_kind *kind)
{
	static const int orders[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
					  { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };

	map_multi_areas(f);
	for (int att = 0; att != 6; att++) {
		for (int det = 0; det != 6; det++) {
			struct iopt_domain *dom[3];

			for (int i = 0; i != 3; i++)
				dom[i] = kind->alloc(f);
			for (int i = 0; i != 3; i++) {
				struct iopt_domain *d = dom[orders[att][i]];

				assert_int_equal(iopt_ioas_attach_domain(f->ioas,
									 d), 0);
				assert_int_equal(iopt_test_pages_pinned(f->ctx), MULTI_PINS);
				assert_multi_areas(d, f);
			}
			for (int i = 0; i != 3; i++) {
				struct iopt_domain *gone = dom[orders[det][i]];

				iopt_ioas_detach_domain(f->ioas, gone);
				kind->assert_empty(gone);
				assert_int_equal(iopt_test_pages_pinned(f->ctx),
						 i == 2 ? 0 : MULTI_PINS);
				for (int j = i + 1; j != 3; j++)
					assert_multi_areas(dom[orders[det][j]],
							   f);
				assert_int_equal(iopt_table_check(
							 &f->ioas->iopt), 0);
			}
			for (int i = 0; i != 3; i++)
				dom[i]->ops->free(dom[i]);
		}
	}
}

/*
 * semantics §5.22/5.23: two domains, A attached before B, then detached A
 * first (the storage domain goes, B takes the pins over) and B first. B
 * pins nothing new, A and B give the very same paddr at every granule, and
 * whichever remains keeps translating with nothing unpinned.
 */
static void two_domains(struct fix *f, const struct domain_kind *kind)
{
	map_multi_areas(f);
	for (int first_out = 0; first_out != 2; first_out++) {
		struct iopt_domain *dom[2] = { kind->alloc(f), kind->alloc(f) };
		struct iopt_domain *stays = dom[!first_out];

		assert_int_equal(iopt_ioas_attach_domain(f->ioas, dom[0]), 0);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), MULTI_PINS);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, dom[1]), 0);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), MULTI_PINS);
		for (uint64_t off = 0; off != 2 * HPAGE; off += PAGE / 2) {
			uint64_t iova = MOCK_APERTURE_START + off;

			assert_true(dom[0]->ops->iova_to_phys(dom[0], iova) ==
				    dom[1]->ops->iova_to_phys(dom[1], iova));
		}
		assert_multi_areas(dom[0], f);
		iopt_ioas_detach_domain(f->ioas, dom[first_out]);
		kind->assert_empty(dom[first_out]);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), MULTI_PINS);
		assert_multi_areas(stays, f);
		assert_int_equal(iopt_table_check(&f->ioas->iopt), 0);
		iopt_ioas_detach_domain(f->ioas, stays);
		kind->assert_empty(stays);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
		dom[0]->ops->free(dom[0]);
		dom[1]->ops->free(dom[1]);
	}
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
}

static void sem5_22_23_two_domains(void **state)
{
	two_domains(*state, &mock_kind);
	two_domains(*state, &sim_kind);
}

static void sem5_22_24_domains_every_order(void **state)
{
	domains_every_order(*state, &mock_kind);
}

static void sem5_22_24_sim_domains_every_order(void **state)
{
	domains_every_order(*state, &sim_kind);
}

/* semantics §5.27 on the simulator: one 2 MiB leaf, or 512 with huge pages off */
static void sem5_27_sim_huge_leaf(void **state)
{
	struct fix *f = *state;
	const uint64_t a = MOCK_APERTURE_START;

	for (int off = 0; off != 2; off++) {
		struct iopt_sim_domain_config cfg = {
			.aperture_start = MOCK_APERTURE_START,
			.aperture_last = MOCK_APERTURE_LAST,
			.pgsize_mask = PAGE | HPAGE,
		};
		uint64_t counts[64] = { 0 };
		struct iopt_domain *d;

		if (!f->iommu)
			assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu),
					 0);
		assert_int_equal(iopt_sim_domain_alloc(f->iommu, &cfg, &d), 0);
		assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, !off), 0);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
		map_fixed(f, a, f->buf, HPAGE);
		iopt_sim_domain_count_leaves(d, a, a + HPAGE - 1, counts);
		assert_int_equal(counts[21], off ? 0 : 1);
		assert_int_equal(counts[12], off ? 512 : 0);
		assert_translates(d, a, f->buf, HPAGE, PAGE);
		assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
		sim_kind_assert_empty(d);
		iopt_ioas_detach_domain(f->ioas, d);
		d->ops->free(d);
	}
}

/* Attaching a domain that fails its k-th map call, k = 1..@calls, changes nothing. */
static void attach_fails_at_each_call(struct fix *f, unsigned long calls,
				      uint64_t pins)
{
	uint64_t d = digest(f);

	for (unsigned long k = 1; k <= calls; k++) {
		struct mock_domain *m = mock_alloc(PAGE);

		m->fail_at = k;
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain),
				 -ENOMEM);
		assert_int_equal(m->nleaves, 0);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), pins);
		assert_true(digest(f) == d);
		mock_free(&m->domain);
	}
}

/* semantics §5.25: an attach failing at the k-th map call changes nothing */
static void sem5_25_attach_fails_partway(void **state)
{
	struct fix *f = *state;
	const uint64_t a = MOCK_APERTURE_START;
	struct mock_domain *first = mock_alloc(PAGE);

	/* discontiguous sources make several map calls per area */
	for (int i = 0; i != 4; i++)
		map_fixed(f, a + i * HPAGE, f->buf + i * 2 * PAGE, PAGE);
	attach_fails_at_each_call(f, 4, 0);
	/* and with a first domain already holding the pins */
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &first->domain), 0);
	attach_fails_at_each_call(f, 4, 4);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &first->domain),
			 -EEXIST);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	mock_detach_free(f, first);
}

/* semantics §5.26, selftests §4.14: alignment raises and HUGE_PAGES */
static void sem5_26_alignment_raise_refused(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	uint64_t d, value;

	assert_int_equal(iopt_ioas_get_huge_pages(f->ioas, &value), 0);
	assert_int_equal(value, 1);
	map_fixed(f, MOCK_APERTURE_START + 1, f->buf + 1, PAGE);
	d = digest(f);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain),
			 -EADDRINUSE);
	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), -EADDRINUSE);
	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 2), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);

	map_fixed(f, MOCK_APERTURE_START, f->buf, PAGE);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	/* domains but no areas: allowed, and the alignment becomes a page */
	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), 0);
	assert_int_equal(iopt_ioas_get_huge_pages(f->ioas, &value), 0);
	assert_int_equal(value, 0);
	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 1), 0);
	mock_detach_free(f, m);
}

/* selftests §4.14: huge pages off imposes page alignment on IOVA and VA */
static void kst_14_huge_pages_off_alignment(void **state)
{
	struct fix *f = *state;
	uint64_t iova = 0x100000;

	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + 1, PAGE, &iova, FIXED),
			 -EINVAL);
	iova = 0x100001;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, FIXED),
			 -EINVAL);
	map_fixed(f, 0x100000, f->buf, PAGE);
}

/* semantics §5.27: one 2 MiB leaf with huge pages, 512 leaves without */
static void sem5_27_huge_leaf(void **state)
{
	struct fix *f = *state;
	const uint64_t a = MOCK_APERTURE_START;

	for (int off = 0; off != 2; off++) {
		struct mock_domain *m = mock_alloc(PAGE | HPAGE);

		if (off)
			assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0),
					 0);
		assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain),
				 0);
		map_fixed(f, a, f->buf, HPAGE);
		assert_int_equal(mock_count_leaves(m, HPAGE), off ? 0 : 1);
		assert_int_equal(mock_count_leaves(m, PAGE), off ? 512 : 0);
		assert_translates(&m->domain, a, f->buf, HPAGE, PAGE);
		assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
		assert_int_equal(m->nleaves, 0);
		assert_int_equal(m->violations, 0);
		iopt_ioas_detach_domain(f->ioas, &m->domain);
		mock_free(&m->domain);
	}
}

/* semantics §5.29, selftests §4.30: page-sized cuts in random order */
static void sem5_29_cut_random_pieces(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE | HPAGE);
	const uint64_t a = MOCK_APERTURE_START, n = 16;
	uint64_t order[16], seed = iopt_test_seed() | 1, unmapped;

	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	map_fixed(f, a, f->buf, n * PAGE);
	for (uint64_t i = 0; i != n; i++)
		order[i] = i;
	for (uint64_t i = n - 1; i; i--) {
		uint64_t j = iopt_test_rand(&seed) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; i != n; i++) {
		uint64_t start = a + order[i] * PAGE;
		uint64_t cuts[2] = { start - 1, start + PAGE - 1 };

		assert_int_equal(iopt_ioas_cut(f->ioas, cuts, 2), 0);
		assert_int_equal(iopt_ioas_unmap(f->ioas, start, PAGE,
						 &unmapped), 0);
		assert_int_equal(unmapped, PAGE);
		assert_int_equal(iopt_test_pages_pinned(f->ctx), n - 1 - i);
		assert_int_equal(iopt_table_check(&f->ioas->iopt), 0);
	}
	assert_int_equal(count_areas(f->ioas), 0);
	mock_detach_free(f, m);
}

/* semantics §5.29/5.30: cut refused with huge pages and a domain; no-ops */
static void sem5_30_cut_refusals_and_noops(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	const uint64_t a = MOCK_APERTURE_START;
	uint64_t noop[3] = { a, a + 4 * PAGE - 1, 0x10 }, d;
	uint64_t mid = a + PAGE - 1, odd = a + 0x7ff;

	map_fixed(f, a, f->buf, 4 * PAGE);
	d = digest(f);
	assert_int_equal(iopt_ioas_cut(f->ioas, noop, 3), 0);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_cut(f->ioas, &mid, 1), -EINVAL);
	assert_int_equal(iopt_ioas_cut(f->ioas, &odd, 1), -EINVAL);
	assert_true(digest(f) == d);
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	/* no domain: splits anywhere the alignment allows, even one byte */
	assert_int_equal(iopt_ioas_cut(f->ioas, &odd, 1), 0);
	assert_int_equal(count_areas(f->ioas), 2);
	mock_free(&m->domain);
}

/* A pinning access whose driver counts unmap callbacks in *@calls. */
static void count_unmap(void *data, uint64_t iova, uint64_t length)
{
	(void)iova, (void)length;
	(*(unsigned int *)data)++;
}

static const struct iopt_access_driver_ops pin_ops = {
	.needs_pin_pages = true,
	.unmap = count_unmap,
};

static struct iopt_access *pin_access_attach(struct fix *f,
					     unsigned int *calls)
{
	struct iopt_access *acc;

	assert_int_equal(iopt_access_create(f->ctx, &pin_ops, calls, 0, &acc),
			 0);
	assert_int_equal(iopt_access_attach(acc, f->ioas), 0);
	return acc;
}

/*
 * semantics §5.30: a cut inside an area with an outstanding access pin is
 * -EINVAL, every time and wherever in the area (the area has accesses, not
 * only the pinned pages), and changes nothing; at the area's first or last
 * byte it is a no-op success; a cut of another area works, and the splits
 * before a refused IOVA stay. After the unpin the same cut works.
 */
static void sem5_30_cut_refused_under_access_pin(void **state)
{
	struct fix *f = *state;
	const uint64_t a = 0x100000, b = a + HPAGE;
	uint64_t edges[2] = { a, a + 8 * PAGE - 1 }, cut, d;
	uint64_t mixed[2] = { b + 2 * PAGE - 1, a + 4 * PAGE - 1 };
	unsigned int calls = 0;
	struct iopt_access *acc;

	map_fixed(f, a, f->buf, 8 * PAGE);
	map_fixed(f, b, f->buf, 4 * PAGE);
	acc = pin_access_attach(f, &calls);
	assert_int_equal(iopt_access_pin_pages(acc, a + 2 * PAGE, 2 * PAGE,
					       NULL, NULL, 0), 0);
	d = digest(f);
	for (int i = 0; i != 3; i++) {
		cut = a + 3 * PAGE - 1;
		assert_int_equal(iopt_ioas_cut(f->ioas, &cut, 1), -EINVAL);
		cut = a + 6 * PAGE - 1;
		assert_int_equal(iopt_ioas_cut(f->ioas, &cut, 1), -EINVAL);
	}
	assert_int_equal(iopt_ioas_cut(f->ioas, edges, 2), 0);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 2);
	assert_int_equal(iopt_ioas_cut(f->ioas, mixed, 2), -EINVAL);
	assert_int_equal(count_areas(f->ioas), 3);
	iopt_access_unpin_pages(acc, a + 2 * PAGE, 2 * PAGE);
	assert_int_equal(iopt_ioas_cut(f->ioas, &mixed[1], 1), 0);
	assert_int_equal(count_areas(f->ioas), 4);
	assert_int_equal(calls, 0);
	iopt_access_destroy(acc);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
}

/*
 * semantics §5.40 with §3.1: at an alignment @align > 1, map and copy refuse
 * an IOVA, a length or a source offset that is not a multiple of it with
 * -EINVAL, and so does a cut; unmap checks no alignment (the kernel's
 * iopt_unmap_iova() does not), so a misaligned range is judged by the areas
 * it meets alone. Expects an area of 4 pages at @a, removed at the end.
 */
static void assert_alignment_refusals(struct fix *f, uint64_t a,
				      uint64_t align)
{
	const uint64_t half = align / 2, to = a + HPAGE;
	uint64_t d = digest(f), pins = iopt_test_pages_pinned(f->ctx), iova, unmapped;

	iova = to + half;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE, &iova, FIXED),
			 -EINVAL);
	iova = to;
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE + half, &iova,
				       FIXED), -EINVAL);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + half, PAGE, &iova,
				       FIXED), -EINVAL);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + half, PAGE, &iova, RW),
			 -EINVAL);
	iova = to + half;
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, a, PAGE,
					FIXED), -EINVAL);
	iova = to;
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, a, PAGE + half,
					FIXED), -EINVAL);
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, a + half, PAGE,
					FIXED), -EINVAL);
	iova = a + PAGE + half - 1;
	assert_int_equal(iopt_ioas_cut(f->ioas, &iova, 1), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), pins);

	assert_int_equal(iopt_ioas_unmap(f->ioas, a + half, PAGE, &unmapped),
			 -ENOENT);
	assert_int_equal(iopt_ioas_unmap(f->ioas, to + half, PAGE, &unmapped),
			 -ENOENT);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_ioas_unmap(f->ioas, a - half, 4 * PAGE + align,
					 &unmapped), 0);
	assert_int_equal(unmapped, 4 * PAGE);
}

/* semantics §5.40: the alignment of a domain whose smallest page is 4 KiB */
static void sem5_40_alignment_from_domain(void **state)
{
	struct fix *f = *state;
	struct iopt_sim_domain_config cfg = {
		.pgsize_mask = PAGE | HPAGE,
		.aperture_start = MOCK_APERTURE_START,
		.aperture_last = MOCK_APERTURE_LAST,
	};
	const uint64_t a = MOCK_APERTURE_START + HPAGE;
	struct iopt_domain *d;

	assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &cfg, &d), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
	map_fixed(f, a, f->buf, 4 * PAGE);
	assert_alignment_refusals(f, a, PAGE);
	sim_kind_assert_empty(d);
	iopt_ioas_detach_domain(f->ioas, d);
	d->ops->free(d);
}

/* semantics §5.40: the alignment of a pinning access, with no domain */
static void sem5_40_alignment_from_access(void **state)
{
	struct fix *f = *state;
	const uint64_t a = 0x100000;
	unsigned int calls = 0;
	struct iopt_access *acc = pin_access_attach(f, &calls);

	map_fixed(f, a, f->buf, 4 * PAGE);
	assert_alignment_refusals(f, a, PAGE);
	iopt_access_destroy(acc);
	/* the access gone, byte granularity is back */
	map_fixed(f, a + 1, f->buf + 1, PAGE + 1);
}

/*
 * semantics §5.40: a dirty read checks the IOAS alignment, not only
 * page_size: with a 2 KiB domain and a pinning access (alignment 4 KiB) a
 * 2 KiB-granular request is -EINVAL, and the same request works once the
 * access is gone.
 */
static void sem5_40_dirty_read_alignment(void **state)
{
	struct fix *f = *state;
	struct iopt_domain *d = sim_kind_alloc(f);
	const uint64_t a = MOCK_APERTURE_START, half = PAGE / 2;
	uint64_t bitmap = 0;
	unsigned int calls = 0;
	struct iopt_access *acc;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, d), 0);
	map_fixed(f, a, f->buf, 4 * PAGE);
	assert_int_equal(iopt_ioas_set_dirty_tracking(f->ioas, d, true), 0);
	acc = pin_access_attach(f, &calls);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, d, a + half, PAGE, half,
					      0, &bitmap), -EINVAL);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, d, a, PAGE + half, half,
					      0, &bitmap), -EINVAL);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, d, a, 4 * PAGE, half, 0,
					      &bitmap), 0);
	iopt_access_destroy(acc);
	assert_int_equal(iopt_ioas_read_dirty(f->ioas, d, a + half, PAGE, half,
					      0, &bitmap), 0);
	assert_int_equal(bitmap, 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	iopt_ioas_detach_domain(f->ioas, d);
	d->ops->free(d);
}

/* A memfd of @size bytes. */
static int memfd_sized(uint64_t size)
{
	int fd = memfd_create("iopt-test-file", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/*
 * semantics §5.43, selftests §4.29: with a domain the file is pinned at map
 * time, so a range past EOF and a memfd truncated to 0 are -EINVAL then,
 * with nothing mapped, pinned or in the domain; a bad fd is -EBADF before
 * anything else (even a zero length). The file restored, the same map works.
 */
static void sem5_43_map_file_with_domain(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	const uint64_t a = MOCK_APERTURE_START;
	int fd = memfd_sized(4 * PAGE), closed = dup(fd);
	uint64_t iova = a, d;

	assert_true(closed >= 0);
	assert_int_equal(close(closed), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	d = digest(f);
	/* two pages past EOF, then the page just past it */
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 2 * PAGE, 4 * PAGE,
					    &iova, FIXED), -EINVAL);
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0, 5 * PAGE, &iova,
					    FIXED), -EINVAL);
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 4 * PAGE, PAGE, &iova,
					    RW), -EINVAL);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0, PAGE, &iova,
					    FIXED), -EINVAL);
	assert_int_equal(iopt_ioas_map_file(f->ioas, closed, 0, PAGE, &iova,
					    FIXED), -EBADF);
	assert_int_equal(iopt_ioas_map_file(f->ioas, closed, 0, 0, &iova,
					    FIXED), -EBADF);
	assert_int_equal(iopt_ioas_map_file(f->ioas, INT32_MAX, 0, PAGE, &iova,
					    FIXED), -EBADF);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);

	assert_int_equal(ftruncate(fd, 4 * PAGE), 0);
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0, 4 * PAGE, &iova,
					    FIXED), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 4);
	assert_int_equal(m->nleaves, 4);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	close(fd);
	mock_detach_free(f, m);
}

/*
 * semantics §5.43: with no domain nothing about the file is checked at map
 * time, so past-EOF and truncated ranges map; the attach that has to pin
 * them is -EINVAL and leaves the IOAS, the pins and the domain as they were.
 */
static void sem5_43_map_file_then_attach(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	const uint64_t a = MOCK_APERTURE_START;
	int fd = memfd_sized(4 * PAGE);
	uint64_t iova = a, d;

	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 2 * PAGE, 4 * PAGE,
					    &iova, FIXED), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);

	/* inside EOF when mapped, truncated before the attach */
	map_fixed(f, a + HPAGE, f->buf, PAGE);
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0, 4 * PAGE, &iova,
					    FIXED), 0);
	assert_int_equal(ftruncate(fd, 0), 0);
	d = digest(f);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), -EINVAL);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);
	/* the file grown back, the same attach pins both areas */
	assert_int_equal(ftruncate(fd, 4 * PAGE), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 5);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	close(fd);
	mock_detach_free(f, m);
}

/*
 * semantics §5.43: an auto IOVA follows the file offset as a map follows
 * the user VA: aligned to its lowest set bit (not to the length's power of
 * two) and keeping its in-page offset. In an empty IOAS first fit makes the
 * IOVAs exact.
 */
static void sem5_43_map_file_auto_iova(void **state)
{
	struct fix *f = *state;
	int fd = memfd_sized(HPAGE);
	uint64_t iova;

	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0x4000, 0x10000, &iova,
					    RW), 0);
	assert_int_equal(iova, 0x4000);
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0x4123, 0x100, &iova,
					    RW), 0);
	assert_int_equal(iova, PAGE + 0x123);
	/* an offset aligned better than the length: the length decides */
	assert_int_equal(iopt_ioas_map_file(f->ioas, fd, 0x100000, 0x8000,
					    &iova, RW), 0);
	assert_int_equal(iova, 0x18000);
	close(fd);
}

/* semantics §5.44, selftests §4.17: destroy rules */
static void sem5_44_destroy_rules(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	struct iopt_ioas *ioas;
	uint64_t iova = MOCK_APERTURE_START;

	assert_int_equal(iopt_ioas_alloc(f->ctx, &ioas), 0);
	assert_int_equal(iopt_ioas_attach_domain(ioas, &m->domain), 0);
	assert_int_equal(iopt_ioas_map(ioas, f->buf, 4 * PAGE, &iova, FIXED), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 4);
	assert_int_equal(iopt_ioas_destroy(ioas), -EBUSY);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 4);
	iopt_ioas_detach_domain(ioas, &m->domain);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	/* areas alone do not block it */
	assert_int_equal(iopt_ioas_destroy(ioas), 0);
	mock_free(&m->domain);
}

/* selftests §4.11: the domain maps exactly the user byte at 2 KiB granules */
static void kst_11_sub_page_contents(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE / 2);
	const uint64_t a = MOCK_APERTURE_START + PAGE / 2;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	for (uint64_t start = 0; start != 4 * PAGE; start += PAGE / 2) {
		for (uint64_t end = start + PAGE / 2; end <= 4 * PAGE;
		     end += PAGE / 2) {
			map_fixed(f, a, f->buf + PAGE / 2 + start, end - start);
			assert_translates(&m->domain, a,
					  f->buf + PAGE / 2 + start,
					  end - start, PAGE / 2);
			assert_int_equal(iopt_ioas_unmap(f->ioas, a,
							 end - start, NULL),
					 0);
		}
	}
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	mock_detach_free(f, m);
}

/* selftests §4.19: a tiny temporary-memory cap changes no result */
static void kst_19_tiny_temp_memory(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	const uint64_t a = MOCK_APERTURE_START;
	uint64_t iova = a + HPAGE;

	iopt_set_temp_memory_limit(16);
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	map_fixed(f, a, f->buf, 64 * PAGE);
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas, a + PAGE,
					8 * PAGE, FIXED), 0);
	assert_translates(&m->domain, a, f->buf, 64 * PAGE, PAGE);
	assert_translates(&m->domain, iova, f->buf + PAGE, 8 * PAGE, PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 64);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	iopt_set_temp_memory_limit(0);
	assert_int_equal(m->violations, 0);
	mock_free(&m->domain);
}

/*
 * semantics §5.46: a map in flight reserves its IOVA. The mock's map_pages
 * runs while the area is in the tree with pages == NULL (and this thread
 * holds domains_rwsem and the pages mutex); another thread then sees an
 * overlapping map fail with -EEXIST, a copy with -ENOENT, an unmap -EBUSY.
 */
struct inflight {
	struct mock_domain m;
	struct fix *f;
	int map_rc, copy_rc, unmap_rc;
	bool done;
};

static void *inflight_thread(void *arg)
{
	struct inflight *t = arg;
	uint64_t at = MOCK_APERTURE_START;

	t->map_rc = iopt_ioas_map(t->f->ioas, t->f->buf, PAGE, &at, FIXED);
	at = MOCK_APERTURE_START + HPAGE;
	t->copy_rc = iopt_ioas_copy(t->f->ioas, &at, t->f->ioas,
				    MOCK_APERTURE_START, PAGE, FIXED);
	t->unmap_rc = iopt_ioas_unmap(t->f->ioas, MOCK_APERTURE_START, PAGE,
				      NULL);
	return NULL;
}

/* From inside the hooked domain op: run @fn(@arg) in another thread, once. */
static void inflight_once(bool *done, void *(*fn)(void *), void *arg)
{
	pthread_t thread;

	if (*done)
		return;
	*done = true;
	assert_int_equal(pthread_create(&thread, NULL, fn, arg), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
}

static int inflight_map_pages(struct iopt_domain *d, uint64_t iova,
			      uint64_t paddr, uint64_t pgsize, uint64_t pgcount,
			      int prot, uint64_t *mapped)
{
	struct inflight *t = container_of(to_mock(d), struct inflight, m);

	inflight_once(&t->done, inflight_thread, t);
	return mock_map_pages(d, iova, paddr, pgsize, pgcount, prot, mapped);
}

/* Attach a mock domain on @ops, a copy of mock_ops with one hook. */
static void inflight_attach(struct fix *f, struct mock_domain *m,
			    const struct iopt_domain_ops *ops)
{
	pthread_mutex_init(&m->lock, NULL);
	m->domain = (struct iopt_domain){
		.ops = ops, .pgsize_bitmap = PAGE,
		.aperture_start = MOCK_APERTURE_START,
		.aperture_last = MOCK_APERTURE_LAST,
	};
	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
}

static void inflight_detach(struct fix *f, struct mock_domain *m)
{
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	pthread_mutex_destroy(&m->lock);
	free(m->leaves);
}

static void sem5_46_inflight_area(void **state)
{
	struct fix *f = *state;
	struct iopt_domain_ops ops = mock_ops;
	struct inflight t = { .f = f };

	ops.map_pages = inflight_map_pages;
	inflight_attach(f, &t.m, &ops);
	map_fixed(f, MOCK_APERTURE_START, f->buf, PAGE);
	assert_int_equal(t.map_rc, -EEXIST);
	assert_int_equal(t.copy_rc, -ENOENT);
	assert_int_equal(t.unmap_rc, -EBUSY);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	inflight_detach(f, &t.m);
}

/*
 * The same for an unmap in flight: while the mock's unmap_pages runs (the
 * area's pages already NULL, its domains being unfilled), the area keeps
 * its IOVA: another thread's overlapping map fails with -EEXIST, a copy
 * from it with -ENOENT, a second unmap and a cut inside it with -EBUSY, as
 * the kernel's tree walk finds it busy, though it has left the point index,
 * and the IOAS checks sound.
 */
struct inflight_unmap {
	struct mock_domain m;
	struct fix *f;
	int map_rc, copy_rc, unmap_rc, cut_rc, check_rc;
	bool done;
};

static void *inflight_unmap_thread(void *arg)
{
	struct inflight_unmap *t = arg;
	uint64_t at = MOCK_APERTURE_START, cut = MOCK_APERTURE_START + PAGE - 1;

	t->map_rc = iopt_ioas_map(t->f->ioas, t->f->buf, PAGE, &at, FIXED);
	at = MOCK_APERTURE_START + HPAGE;
	t->copy_rc = iopt_ioas_copy(t->f->ioas, &at, t->f->ioas,
				    MOCK_APERTURE_START, PAGE, FIXED);
	t->unmap_rc = iopt_ioas_unmap(t->f->ioas, MOCK_APERTURE_START,
				      2 * PAGE, NULL);
	t->cut_rc = iopt_ioas_cut(t->f->ioas, &cut, 1);
	t->check_rc = iopt_ioas_check(t->f->ioas);
	return NULL;
}

static uint64_t inflight_unmap_pages(struct iopt_domain *d, uint64_t iova,
				     uint64_t pgsize, uint64_t pgcount,
				     struct iopt_iotlb_gather *g)
{
	struct inflight_unmap *t =
		container_of(to_mock(d), struct inflight_unmap, m);

	inflight_once(&t->done, inflight_unmap_thread, t);
	return mock_unmap_pages(d, iova, pgsize, pgcount, g);
}

static void sem5_46_inflight_unmap(void **state)
{
	struct fix *f = *state;
	struct iopt_domain_ops ops = mock_ops;
	struct inflight_unmap t = { .f = f };

	ops.unmap_pages = inflight_unmap_pages;
	inflight_attach(f, &t.m, &ops);
	map_fixed(f, MOCK_APERTURE_START, f->buf, 2 * PAGE);
	assert_int_equal(iopt_ioas_unmap(f->ioas, MOCK_APERTURE_START, 2 * PAGE,
					 NULL), 0);
	assert_true(t.done);
	assert_int_equal(t.map_rc, -EEXIST);
	assert_int_equal(t.copy_rc, -ENOENT);
	assert_int_equal(t.unmap_rc, -EBUSY);
	assert_int_equal(t.cut_rc, -EBUSY);
	assert_int_equal(t.check_rc, 0);
	assert_int_equal(iopt_ioas_check(f->ioas), 0);
	inflight_detach(f, &t.m);
}

/*
 * A map whose index insert fails after linking a node: on a bare IOAS (byte
 * alignment) [0x800, 0x17ff] then [0x1800, 0x1fff] make the index link a
 * level-3 node before it needs a level-2 one (test_iova_index_retire).
 * Every failure point of the second map in turn: -ENOMEM, no allocation
 * left (the IOAS reclaimed what the insert retired), the IOAS sound, and
 * the next map (no failure armed) goes in.
 */
static void map_insert_failure_reclaims(void **state)
{
	struct fix *f = *state;
	unsigned long nth, fired = 0;

	map_fixed(f, 0x800, f->buf + 0x800, 0x1000);
	for (nth = 1;; nth++) {
		long live = iopt_alloc_live();
		uint64_t at = 0x1800;
		int rc;

		iopt_fail_nth_arm(nth);
		rc = iopt_ioas_map(f->ioas, f->buf + 0x1800, 0x800, &at, FIXED);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			break;
		}
		fired++;
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(iopt_alloc_live(), live);
		assert_int_equal(f->ioas->iopt.area_index.retired.n, 0);
		assert_int_equal(iopt_ioas_check(f->ioas), 0);
	}
	assert_true(fired > 0);
	assert_int_equal(count_areas(f->ioas), 2);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
}

/* The refusal log gets one line naming the conflict. */
struct log_rec {
	char last[256];
	int count;
};

static void log_fn(void *data, const char *msg)
{
	struct log_rec *rec = data;

	snprintf(rec->last, sizeof(rec->last), "%s", msg);
	rec->count++;
}

static void log_names_the_overlap(void **state)
{
	struct fix *f = *state;
	struct log_rec rec = { 0 };
	uint64_t iova = 0x10000;

	map_fixed(f, 0x18000, f->buf, PAGE);
	iopt_ctx_set_log(f->ctx, log_fn, &rec);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 0x10000, &iova, FIXED),
			 -EEXIST);
	iopt_ctx_set_log(f->ctx, NULL, NULL);
	assert_int_equal(rec.count, 1);
	assert_non_null(strstr(rec.last, "map: [0x10000, 0x1ffff] overlaps "
					 "area [0x18000, 0x18fff]"));
}

/* A range reaching UINT64_MAX works (no domain). */
static void top_of_iova_space(void **state)
{
	struct fix *f = *state;
	uint64_t iova = UINT64_MAX - PAGE, unmapped;

	/* IOMMU_IOAS_MAP takes iova < UINT64_MAX, so the last byte is reachable */
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, PAGE + 1, &iova, FIXED),
			 0);
	assert_int_equal(iopt_table_check(&f->ioas->iopt), 0);
	iova = UINT64_MAX - 2 * PAGE;
	assert_int_equal(iopt_ioas_copy(f->ioas, &iova, f->ioas,
					UINT64_MAX - PAGE, PAGE, FIXED), 0);
	assert_int_equal(iopt_ioas_unmap(f->ioas, UINT64_MAX - 2 * PAGE,
					 2 * PAGE, &unmapped), -ENOENT);
	assert_int_equal(unmapped, PAGE);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, &unmapped), 0);
	assert_int_equal(unmapped, PAGE + 1);
}

/*
 * semantics §5.45: fail the n-th allocation or pin of each operation for
 * n = 1, 2, ... until it succeeds; every failure must leave the layout, the
 * pins, the live allocations and the domain exactly as before.
 */
#ifdef IOPT_FAULT_INJECTION
struct sweep_op {
	const char *name;
	int (*run)(struct fix *f, struct mock_domain *m);
	void (*undo)(struct fix *f, struct mock_domain *m);
};

static int op_map(struct fix *f, struct mock_domain *m)
{
	uint64_t iova = MOCK_APERTURE_START + HPAGE;

	(void)m;
	return iopt_ioas_map(f->ioas, f->buf + PAGE, 8 * PAGE, &iova, FIXED);
}

static int op_copy(struct fix *f, struct mock_domain *m)
{
	uint64_t iova = MOCK_APERTURE_START + HPAGE;

	(void)m;
	return iopt_ioas_copy(f->ioas, &iova, f->ioas,
			      MOCK_APERTURE_START + PAGE, 2 * PAGE, FIXED);
}

static void undo_map(struct fix *f, struct mock_domain *m)
{
	(void)m;
	assert_int_equal(iopt_ioas_unmap(f->ioas, MOCK_APERTURE_START + HPAGE,
					 HPAGE, NULL), 0);
}

static int op_map_file(struct fix *f, struct mock_domain *m)
{
	uint64_t iova = MOCK_APERTURE_START + HPAGE;
	int fd = memfd_create("iopt-sweep", 0), rc;

	(void)m;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * PAGE), 0);
	rc = iopt_ioas_map_file(f->ioas, fd, PAGE, 2 * PAGE, &iova, FIXED);
	close(fd);
	return rc;
}

static int op_attach(struct fix *f, struct mock_domain *m)
{
	return iopt_ioas_attach_domain(f->ioas, &m->domain);
}

static void undo_attach(struct fix *f, struct mock_domain *m)
{
	iopt_ioas_detach_domain(f->ioas, &m->domain);
}

static int op_allow(struct fix *f, struct mock_domain *m)
{
	struct iopt_iova_range r[3] = { { 0x2000000, 0x2ffffff },
					{ 0x4000000, 0x4ffffff },
					{ 0x6000000, 0x6ffffff } };

	(void)m;
	return iopt_ioas_allow_iovas(f->ioas, r, 3);
}

static void undo_allow(struct fix *f, struct mock_domain *m)
{
	(void)m;
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, NULL, 0), 0);
}

static int op_reserve(struct fix *f, struct mock_domain *m)
{
	return iopt_ioas_reserve(f->ioas, 0x70000000, 0x70ffffff, m);
}

static void undo_reserve(struct fix *f, struct mock_domain *m)
{
	assert_int_equal(iopt_ioas_unreserve(f->ioas, m), 0);
}

static const struct sweep_op sweep_ops[] = {
	{ "map", op_map, undo_map },
	{ "copy", op_copy, undo_map },
	{ "map_file", op_map_file, undo_map },
	{ "attach", op_attach, undo_attach },
	{ "allow", op_allow, undo_allow },
	{ "reserve", op_reserve, undo_reserve },
};
#endif

static void sem5_45_fail_nth_sweep(void **state)
{
#ifdef IOPT_FAULT_INJECTION
	struct fix *f = *state;
	struct mock_domain *first = mock_alloc(PAGE), *second = mock_alloc(PAGE);

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &first->domain), 0);
	map_fixed(f, MOCK_APERTURE_START, f->buf, 4 * PAGE);
	for (size_t i = 0; i != IOPT_ARRAY_SIZE(sweep_ops); i++) {
		for (unsigned long n = 1;; n++) {
			uint64_t d = digest(f), pins = iopt_test_pages_pinned(f->ctx);
			size_t leaves = first->nleaves;
			long live = iopt_alloc_live();
			int rc;

			iopt_fail_nth_arm(n);
			rc = sweep_ops[i].run(f, second);
			iopt_fail_nth_disarm();
			if (!rc) {
				sweep_ops[i].undo(f, second);
				break;
			}
			if (!iopt_fail_nth_fired())
				fail_msg("%s failed with %d, no fault injected",
					 sweep_ops[i].name, rc);
			assert_true(digest(f) == d);
			assert_int_equal(iopt_test_pages_pinned(f->ctx), pins);
			assert_int_equal(first->nleaves, leaves);
			assert_int_equal(second->nleaves, 0);
			assert_int_equal(iopt_alloc_live(), live);
			assert_int_equal(iopt_table_check(&f->ioas->iopt), 0);
		}
	}
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	mock_detach_free(f, first);
	mock_free(&second->domain);
#else
	(void)state;
	skip();
#endif
}

/*
 * semantics §5.33-35 (the unmap side of the access protocol): a fake access
 * pins through iopt_area_add_access(); unmap calls its unmap callback with
 * the whole area range. If it unpins, the unmap succeeds; if it does not,
 * -EDEADLOCK after the retry limit with the area kept and prevent_access set;
 * a locking (internal) pin is -EBUSY at once, with no callback.
 */
struct fake_access {
	struct fix *f;
	uint64_t index, last_index;
	bool pinned, cooperative, locking;
	unsigned int calls;
	uint64_t iova, length;
};

static struct iopt_area *area_at(struct fix *f, uint64_t iova)
{
	struct iopt_area *area;

	iopt_rwlock_read(&f->ioas->iopt.iova_rwsem);
	area = iopt_area_iter_first(&f->ioas->iopt, iova, iova);
	iopt_rwlock_unlock(&f->ioas->iopt.iova_rwsem);
	return area;
}

static void fake_pin(struct fake_access *a, uint64_t iova)
{
	struct iopt_area *area;

	iopt_rwlock_read(&a->f->ioas->iopt.iova_rwsem);
	area = iopt_area_iter_first(&a->f->ioas->iopt, iova, iova);
	a->index = a->last_index = iopt_area_iova_to_index(area, iova);
	assert_int_equal(iopt_area_add_access(area, a->index, a->last_index,
					      NULL, NULL, 0, a->locking), 0);
	iopt_rwlock_unlock(&a->f->ioas->iopt.iova_rwsem);
	a->pinned = true;
}

static void fake_unpin(struct fake_access *a, uint64_t iova)
{
	struct iopt_area *area;

	iopt_rwlock_read(&a->f->ioas->iopt.iova_rwsem);
	area = iopt_area_iter_first(&a->f->ioas->iopt, iova, iova);
	iopt_area_remove_access(area, a->index, a->last_index, a->locking);
	iopt_rwlock_unlock(&a->f->ioas->iopt.iova_rwsem);
	a->pinned = false;
}

static void fake_unmap(void *data, uint64_t iova, uint64_t length)
{
	struct fake_access *a = data;

	a->calls++;
	a->iova = iova;
	a->length = length;
	if (a->cooperative && a->pinned)
		fake_unpin(a, iova);
}

static const struct iopt_access_ops fake_ops = { .unmap = fake_unmap };

static void sem5_33_35_unmap_with_access_pins(void **state)
{
	struct fix *f = *state;
	const uint64_t a = 0x100000;
	struct fake_access acc = { .f = f, .cooperative = true };
	uint64_t unmapped;
	uint32_t id;

	assert_int_equal(iopt_add_access(&f->ioas->iopt, &acc, &fake_ops, PAGE,
					 &id), 0);
	map_fixed(f, a, f->buf, 4 * PAGE);
	map_fixed(f, a + 4 * PAGE, f->buf, 4 * PAGE);
	/* §5.33: a cooperative driver unpins; the callback saw the whole area */
	fake_pin(&acc, a + 2 * PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 1);
	assert_int_equal(iopt_ioas_unmap(f->ioas, a, 4 * PAGE, &unmapped), 0);
	assert_int_equal(acc.calls, 1);
	assert_int_equal(acc.iova, a);
	assert_int_equal(acc.length, 4 * PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);

	/* §5.35: a locking pin is -EBUSY with no callback; neighbours unmap */
	map_fixed(f, a, f->buf, 4 * PAGE);
	acc.locking = true;
	fake_pin(&acc, a);
	acc.calls = 0;
	assert_int_equal(iopt_ioas_unmap(f->ioas, a, 4 * PAGE, NULL), -EBUSY);
	assert_int_equal(acc.calls, 0);
	assert_int_equal(iopt_ioas_unmap(f->ioas, a + 4 * PAGE, 4 * PAGE, NULL),
			 0);
	fake_unpin(&acc, a);
	acc.locking = false;
	fake_pin(&acc, a);

	/* §5.33: a driver that never unpins: -EDEADLOCK, area kept, blocked */
	acc.cooperative = false;
	assert_int_equal(iopt_ioas_unmap(f->ioas, a, 4 * PAGE, &unmapped),
			 -EDEADLOCK);
	assert_int_equal(unmapped, 0);
	assert_int_equal(acc.calls, 101);
	assert_true(area_at(f, a)->prevent_access);
	fake_unpin(&acc, a);
	assert_int_equal(iopt_ioas_unmap(f->ioas, a, 4 * PAGE, NULL), 0);
	iopt_remove_access(&f->ioas->iopt, id);
}

/* semantics §5.38: an access's alignment raise is refused by sub-page areas */
static void sem5_38_access_alignment(void **state)
{
	struct fix *f = *state;
	struct fake_access acc = { .f = f };
	uint64_t d, align;
	size_t n = 0;
	uint32_t id;

	map_fixed(f, 0x100800, f->buf + 0x800, 0x800);
	d = digest(f);
	assert_int_equal(iopt_add_access(&f->ioas->iopt, &acc, &fake_ops, PAGE,
					 &id), -EADDRINUSE);
	assert_true(digest(f) == d);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	assert_int_equal(iopt_add_access(&f->ioas->iopt, &acc, &fake_ops, PAGE,
					 &id), 0);
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, NULL, &n, &align),
			 -EMSGSIZE);
	assert_int_equal(align, PAGE);
	assert_int_equal(iopt_ioas_destroy(f->ioas), -EBUSY);
	iopt_remove_access(&f->ioas->iopt, id);
	n = 0;
	assert_int_equal(iopt_ioas_iova_ranges(f->ioas, NULL, &n, &align),
			 -EMSGSIZE);
	assert_int_equal(align, 1);
}

/*
 * A randomized run of map / unmap / copy / cut / attach / detach against a
 * reference model (a page-granular array of "which source byte is mapped
 * here, from which map"), checking after every step the whole checker
 * (iopt_ioas_check_set() with IOPT_CHECK_COMPLETE: counters and registry
 * too), the exact pin count (one per distinct pages object page while a
 * domain exists: a copy shares its source's, a second map of the same
 * memory does not) and every domain's translation of every mapped page.
 */
#define MODEL_PAGES 64
#define MODEL_BASE MOCK_APERTURE_START

struct model {
	int64_t src[MODEL_PAGES];	/* buffer page mapped at this IOVA page, -1 */
	uint64_t area_first[MODEL_PAGES]; /* first page of the area holding it */
	uint64_t map_id[MODEL_PAGES];	/* the map whose pages object it is */
	uint64_t maps;			/* maps made so far */
	struct mock_domain *doms[2];
	bool attached[2];
};

/* Pages a domain needs pinned: distinct (pages object, page) pairs. */
static uint64_t model_pins(const struct model *mdl)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p != MODEL_PAGES; p++) {
		bool seen = false;

		if (mdl->src[p] < 0)
			continue;
		for (uint64_t q = 0; q != p && !seen; q++)
			seen = mdl->src[q] == mdl->src[p] &&
			       mdl->map_id[q] == mdl->map_id[p];
		n += !seen;
	}
	return n;
}

static void model_check(struct fix *f, struct model *mdl)
{
	assert_int_equal(iopt_ioas_check_set(&f->ioas, 1, IOPT_CHECK_COMPLETE),
			 0);
	for (uint64_t p = 0; p != MODEL_PAGES; p++) {
		struct iopt_area *area = area_at(f, MODEL_BASE + p * PAGE);

		assert_int_equal(area != NULL, mdl->src[p] >= 0);
		if (!area)
			continue;
		assert_int_equal(iopt_area_iova(area),
				 MODEL_BASE + mdl->area_first[p] * PAGE);
		for (int d = 0; d != 2; d++)
			if (mdl->attached[d])
				assert_translates(&mdl->doms[d]->domain,
						  MODEL_BASE + p * PAGE,
						  f->buf + mdl->src[p] * PAGE,
						  PAGE, PAGE);
	}
	assert_int_equal(iopt_test_pages_pinned(f->ctx), mdl->attached[0] || mdl->attached[1] ?
					    model_pins(mdl) : 0);
	for (int d = 0; d != 2; d++)
		assert_int_equal(mdl->doms[d]->violations, 0);
}

static bool model_free(struct model *mdl, uint64_t p, uint64_t n)
{
	for (uint64_t i = p; i != p + n; i++)
		if (mdl->src[i] >= 0)
			return false;
	return true;
}

static void model_step_map(struct fix *f, struct model *mdl, uint64_t p,
			   uint64_t n, uint64_t src)
{
	uint64_t iova = MODEL_BASE + p * PAGE;
	int rc = iopt_ioas_map(f->ioas, f->buf + src * PAGE, n * PAGE, &iova,
			       FIXED);

	assert_int_equal(rc, model_free(mdl, p, n) ? 0 : -EEXIST);
	if (rc)
		return;
	mdl->maps++;
	for (uint64_t i = 0; i != n; i++) {
		mdl->src[p + i] = (int64_t)(src + i);
		mdl->area_first[p + i] = p;
		mdl->map_id[p + i] = mdl->maps;
	}
}

/* Expected unmap result of [p, p + n) from the model: lowest area first. */
static void model_step_unmap(struct fix *f, struct model *mdl, uint64_t p,
			     uint64_t n)
{
	uint64_t expect_bytes = 0, unmapped;
	int expect = 0, rc;
	uint64_t i = p;

	while (i != p + n) {
		uint64_t first, last;

		if (mdl->src[i] < 0) {
			i++;
			continue;
		}
		first = mdl->area_first[i];
		for (last = i; last + 1 != MODEL_PAGES &&
			       mdl->src[last + 1] >= 0 &&
			       mdl->area_first[last + 1] == first;
		     last++)
			;
		if (first < p || last >= p + n) {
			expect = -ENOENT;
			break;
		}
		for (uint64_t j = first; j <= last; j++)
			mdl->src[j] = -1;
		expect_bytes += (last - first + 1) * PAGE;
		i = last + 1;
	}
	if (!expect && !expect_bytes)
		expect = -ENOENT;
	rc = iopt_ioas_unmap(f->ioas, MODEL_BASE + p * PAGE, n * PAGE,
			     &unmapped);
	assert_int_equal(rc, expect);
	assert_int_equal(unmapped, expect_bytes);
}

static void model_step_copy(struct fix *f, struct model *mdl, uint64_t p,
			    uint64_t n, uint64_t dst)
{
	uint64_t iova = MODEL_BASE + dst * PAGE;
	bool covered = true;
	int rc, expect;

	for (uint64_t i = p; i != p + n; i++)
		covered &= mdl->src[i] >= 0;
	expect = !covered ? -ENOENT : model_free(mdl, dst, n) ? 0 : -EEXIST;
	rc = iopt_ioas_copy(f->ioas, &iova, f->ioas, MODEL_BASE + p * PAGE,
			    n * PAGE, FIXED);
	assert_int_equal(rc, expect);
	if (rc)
		return;
	/* one destination area per source area crossed */
	for (uint64_t i = 0; i != n; i++) {
		mdl->src[dst + i] = mdl->src[p + i];
		mdl->map_id[dst + i] = mdl->map_id[p + i];
		mdl->area_first[dst + i] =
			(i && mdl->area_first[p + i] == mdl->area_first[p + i - 1]) ?
				mdl->area_first[dst + i - 1] :
				dst + i;
	}
}

static void model_step_cut(struct fix *f, struct model *mdl, uint64_t p)
{
	uint64_t iova = MODEL_BASE + p * PAGE + PAGE - 1;

	/* huge pages are off in this test, so cuts always succeed */
	assert_int_equal(iopt_ioas_cut(f->ioas, &iova, 1), 0);
	if (mdl->src[p] < 0 || p + 1 == MODEL_PAGES || mdl->src[p + 1] < 0 ||
	    mdl->area_first[p + 1] != mdl->area_first[p])
		return;
	for (uint64_t i = p + 1; i != MODEL_PAGES && mdl->src[i] >= 0 &&
				 mdl->area_first[i] == mdl->area_first[p];
	     i++)
		mdl->area_first[i] = p + 1;
}

static void model_step_domain(struct fix *f, struct model *mdl, int d)
{
	if (mdl->attached[d]) {
		iopt_ioas_detach_domain(f->ioas, &mdl->doms[d]->domain);
		assert_int_equal(mdl->doms[d]->nleaves, 0);
	} else {
		assert_int_equal(iopt_ioas_attach_domain(f->ioas,
							 &mdl->doms[d]->domain),
				 0);
	}
	mdl->attached[d] = !mdl->attached[d];
}

static void random_vs_model(void **state)
{
	struct fix *f = *state;
	struct model mdl = { .maps = 0 };
	uint64_t seed = iopt_test_seed() | 1;
	int steps = iopt_test_quick() ? 200 : 2000;

	memset(mdl.src, 0xff, sizeof(mdl.src));
	for (int d = 0; d != 2; d++) {
		mdl.doms[d] = mock_alloc(PAGE | HPAGE);
		mdl.attached[d] = false;
	}
	assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), 0);
	for (int step = 0; step != steps; step++) {
		uint64_t r = iopt_test_rand(&seed);
		uint64_t n = 1 + (r >> 8) % 8;
		uint64_t p = (r >> 16) % (MODEL_PAGES - n + 1);
		uint64_t other = (r >> 32) % (MODEL_PAGES - n + 1);

		switch (r % 10) {
		case 0: case 1: case 2:
			model_step_map(f, &mdl, p, n, other % 32);
			break;
		case 3: case 4: case 5:
			model_step_unmap(f, &mdl, p, n);
			break;
		case 6: case 7:
			model_step_copy(f, &mdl, p, n, other);
			break;
		case 8:
			model_step_cut(f, &mdl, p);
			break;
		default:
			model_step_domain(f, &mdl, (int)((r >> 40) & 1));
			break;
		}
		model_check(f, &mdl);
	}
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	for (int d = 0; d != 2; d++) {
		if (mdl.attached[d])
			iopt_ioas_detach_domain(f->ioas, &mdl.doms[d]->domain);
		mock_free(&mdl.doms[d]->domain);
	}
}

/* semantics §5.21: copy of access-pinned pages into a domain pins nothing new */
static void sem5_21_copy_access_pins_into_domain(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	struct fake_access acc = { .f = f, .cooperative = true };
	struct iopt_ioas *dst;
	uint64_t iova = MOCK_APERTURE_START;

	assert_int_equal(iopt_ioas_alloc(f->ctx, &dst), 0);
	assert_int_equal(iopt_ioas_attach_domain(dst, &m->domain), 0);
	map_fixed(f, 0x100000, f->buf, 4 * PAGE);
	fake_pin(&acc, 0x100000 + PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 1);
	assert_int_equal(iopt_ioas_copy(dst, &iova, f->ioas, 0x100000, 4 * PAGE,
					FIXED), 0);
	/* the accessed page comes from the pin store: 3 new pins, not 4 */
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 4);
	assert_translates(&m->domain, iova, f->buf, 4 * PAGE, PAGE);
	fake_unpin(&acc, 0x100000 + PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 4);
	assert_int_equal(iopt_ioas_unmap_all(dst, NULL), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	iopt_ioas_detach_domain(dst, &m->domain);
	assert_int_equal(iopt_ioas_destroy(dst), 0);
	mock_free(&m->domain);
}

/*
 * semantics §5.28, selftests §4.22: an access pins a page in the middle of a
 * 2 MiB leaf; detaching the domain unmaps the whole leaf (the mock refuses
 * split unmaps) and unpins every page but the accessed one.
 */
static void sem5_28_unfill_with_carry(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE | HPAGE);
	struct fake_access acc = { .f = f, .cooperative = true };
	const uint64_t a = MOCK_APERTURE_START;

	assert_int_equal(iopt_ioas_attach_domain(f->ioas, &m->domain), 0);
	map_fixed(f, a, f->buf, HPAGE);
	/* CONTIGUOUS frames (fix_setup): the leaf the carry must unmap whole */
	assert_int_equal(mock_count_leaves(m, HPAGE), 1);
	fake_pin(&acc, a + 100 * PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 512);
	iopt_ioas_detach_domain(f->ioas, &m->domain);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(m->violations, 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 1);
	fake_unpin(&acc, a + 100 * PAGE);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	mock_free(&m->domain);
}

/*
 * Many threads on one IOAS: each maps, copies and unmaps in its own IOVA
 * window while another attaches and detaches a domain; afterwards the table
 * is sound, empty and nothing is pinned (run under the tsan preset too).
 */
struct stress {
	struct fix *f;
	struct mock_domain *m;
	int index;
	int errors;
};

static void *stress_mapper(void *arg)
{
	struct stress *t = arg;
	uint64_t base = MOCK_APERTURE_START + (uint64_t)t->index * 4 * HPAGE;

	for (int i = 0; i != 200; i++) {
		uint64_t iova = base, copy = base + 2 * HPAGE;

		t->errors += iopt_ioas_map(t->f->ioas, t->f->buf + t->index * PAGE,
					   8 * PAGE, &iova, FIXED) != 0;
		t->errors += iopt_ioas_copy(t->f->ioas, &copy, t->f->ioas,
					    base + PAGE, 2 * PAGE, FIXED) != 0;
		t->errors += iopt_ioas_unmap(t->f->ioas, base, 4 * HPAGE,
					     NULL) != 0;
	}
	return NULL;
}

static void *stress_attacher(void *arg)
{
	struct stress *t = arg;

	for (int i = 0; i != 50; i++) {
		t->errors += iopt_ioas_attach_domain(t->f->ioas,
						     &t->m->domain) != 0;
		iopt_ioas_detach_domain(t->f->ioas, &t->m->domain);
	}
	return NULL;
}

static void concurrent_map_unmap_attach(void **state)
{
	struct fix *f = *state;
	struct mock_domain *m = mock_alloc(PAGE);
	struct stress t[5];
	pthread_t threads[5];

	for (int i = 0; i != 5; i++) {
		t[i] = (struct stress){ .f = f, .m = m, .index = i };
		assert_int_equal(pthread_create(&threads[i], NULL,
						i == 4 ? stress_attacher :
							 stress_mapper,
						&t[i]), 0);
	}
	for (int i = 0; i != 5; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(t[i].errors, 0);
	}
	assert_int_equal(count_areas(f->ioas), 0);
	assert_int_equal(iopt_test_pages_pinned(f->ctx), 0);
	assert_int_equal(m->nleaves, 0);
	assert_int_equal(m->violations, 0);
	mock_free(&m->domain);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(sem5_1_iova_ranges_follow_domain,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_3_allowed_ranges,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_4_reserve_conflicts,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_5_fixed_map_reserved_and_overlap,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_7_alignment_with_domain,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_8_auto_iova,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_8_auto_iova_allowed_enospc,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_9_auto_iova_unaligned_source_domain,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_10_lazy_map_efault_at_attach,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_11_map_domain_efault_nothing_left,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_12_memlock_limit, fix_setup_limited,
					fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_12_memlock_limit_none_mode,
					fix_setup_limited, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_13_15_unmap_whole_areas,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_16_unmap_partial_count,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_17_copy_subrange,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_18_copy_two_areas,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_19_copy_permissions,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_20_copy_shares_pins,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_22_23_two_domains,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_22_24_domains_every_order,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_22_24_sim_domains_every_order,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_27_sim_huge_leaf,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_25_attach_fails_partway,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_26_alignment_raise_refused,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_14_huge_pages_off_alignment,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_27_huge_leaf,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_29_cut_random_pieces,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_30_cut_refusals_and_noops,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_30_cut_refused_under_access_pin,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_40_alignment_from_domain,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_40_alignment_from_access,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_40_dirty_read_alignment,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_43_map_file_with_domain,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_43_map_file_then_attach,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_43_map_file_auto_iova,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_44_destroy_rules,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_11_sub_page_contents,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(kst_19_tiny_temp_memory,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_46_inflight_area,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_46_inflight_unmap,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(map_insert_failure_reclaims,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(log_names_the_overlap,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(top_of_iova_space,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_45_fail_nth_sweep,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_33_35_unmap_with_access_pins,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_38_access_alignment,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(random_vs_model,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_21_copy_access_pins_into_domain,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(sem5_28_unfill_with_carry,
					fix_setup, fix_teardown),
	cmocka_unit_test_setup_teardown(concurrent_map_unmap_attach,
					fix_setup, fix_teardown),
};

IOPT_TEST_MAIN(tests)
