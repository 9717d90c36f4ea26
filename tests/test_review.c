/* SPDX-License-Identifier: MIT */
/*
 * test_review.c - conformance review against the kernel's io_pagetable
 * (6.12 source, iopt-semantics.md baseline): each "review_bug_*" case pins a
 * place where libiopt did not do what the kernel does and docs/differences.md
 * did not list it; each failed before its fix and now guards it. The
 * "review_ok_*" cases guard behaviour that was checked against the kernel and
 * found right.
 *
 * Every expected value cites the kernel line or spec section it comes from.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>

#include "io_pagetable.h"

#define PAGE IOPT_PAGE_SIZE
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED (IOPT_IOAS_MAP_FIXED_IOVA | RW)

struct rfx {
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas;
	struct iopt_ioas *ioas2;
	uint8_t *buf;
	size_t buf_len;
};

static int rfx_setup(void **state)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
	};
	struct rfx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	/* 4 MiB, so a 2 MiB-aligned slice exists inside */
	f->buf_len = 4u << 20;
	f->buf = mmap(NULL, f->buf_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->buf != MAP_FAILED);
	assert_int_equal(iopt_ctx_alloc(&opts, &f->ctx), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->ioas2), 0);
	*state = f;
	return 0;
}

static int rfx_teardown(void **state)
{
	struct rfx *f = *state;

	assert_int_equal(iopt_ioas_destroy(f->ioas2), 0);
	assert_int_equal(iopt_ioas_destroy(f->ioas), 0);
	iopt_ctx_destroy(f->ctx);
	munmap(f->buf, f->buf_len);
	free(f);
	return 0;
}

/* A 2 MiB-aligned address inside the buffer (its lowest set bit is 2 MiB+). */
static uint8_t *rfx_huge_aligned(struct rfx *f)
{
	uintptr_t p = ((uintptr_t)f->buf + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);

	return (uint8_t *)p;
}

static uint64_t nr_areas(struct iopt_ioas *ioas)
{
	struct io_pagetable *iopt = &ioas->iopt;
	struct iopt_itree_node *node;
	uint64_t n = 0;

	iopt_rwlock_read(&iopt->iova_rwsem);
	for (node = iopt_itree_iter_first(&iopt->area_itree, 0, UINT64_MAX);
	     node; node = iopt_itree_iter_next(node, 0, UINT64_MAX))
		n++;
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	return n;
}

/* A memfd of @size bytes. */
static int memfd_sized(uint64_t size)
{
	int fd = memfd_create("iopt-review", 0);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/*
 * Map [@start, @start + @length) of @fd at a fixed IOVA, close @fd, undo a
 * successful map. Return: the map's result.
 */
static int map_file_probe(struct rfx *f, int fd, uint64_t start,
			  uint64_t length, unsigned int flags)
{
	uint64_t iova = 0x200000;
	int rc;

	rc = iopt_ioas_map_file(f->ioas, fd, start, length, &iova,
				flags | IOPT_IOAS_MAP_FIXED_IOVA);
	close(fd);
	if (rc == 0)
		assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	return rc;
}

/* ---- findings ---- */

/*
 * BUG: iopt_ioas_copy() checks READ/WRITE before src_iova >= UINT64_MAX.
 * Kernel ioas.c:iommufd_ioas_copy (6.12 lines 256-262): the three EOVERFLOW
 * checks (length, src_iova, dst_iova) all come before the "no READ/WRITE"
 * EINVAL. Ours: src/ioas.c check_map_args() returns -EINVAL first, the
 * src_iova check comes after it. Expected -EOVERFLOW, actual -EINVAL.
 */
static void review_bug_copy_src_overflow_before_rw(void **state)
{
	struct rfx *f = *state;
	uint64_t dst = 0x200000;

	assert_int_equal(iopt_ioas_copy(f->ioas2, &dst, f->ioas, UINT64_MAX,
					PAGE, IOPT_IOAS_MAP_FIXED_IOVA),
			 -EOVERFLOW);
	assert_int_equal(iopt_ioas_copy(f->ioas2, &dst, f->ioas, UINT64_MAX,
					PAGE, 0),
			 -EOVERFLOW);
	assert_int_equal(nr_areas(f->ioas2), 0);
}

/*
 * BUG: a user buffer whose last byte is the top of the address space.
 * Kernel pages.c:iopt_alloc_pages (6.12 line 1155) checks
 * check_add_overflow(uptr, length, &end): uptr + length == 2^64 overflows ->
 * -EOVERFLOW (semantics §2.1 "uptr + length overflows", §5.6). Ours:
 * src/pages.c check_length() tests addr + length - 1 (the file rule), so the
 * map succeeds (no domain: nothing is touched). Expected -EOVERFLOW, actual 0.
 */
static void review_bug_map_uptr_end_at_top(void **state)
{
	struct rfx *f = *state;
	void *top_page = (void *)(uintptr_t)(UINT64_MAX - PAGE + 1);
	uint64_t iova = 0x200000;
	int rc;

	rc = iopt_ioas_map(f->ioas, top_page, PAGE, &iova, FIXED);
	if (rc == 0)
		assert_int_equal(iopt_ioas_unmap(f->ioas, iova, PAGE, NULL), 0);
	assert_int_equal(rc, -EOVERFLOW);
}

/*
 * BUG: MAP_FILE looks at the length before the fd.
 * Kernel (6.13+ ioas.c iommufd_ioas_map_file; semantics §2.4 MAP_FILE row):
 * fget(cmd->fd) fails -> -EBADF before iopt_map_file_pages() sees the length.
 * docs/errors.md puts EBADF at order 4, before the order-5 length checks.
 * Ours: src/pages.c iopt_alloc_file_pages() runs check_length() before
 * check_memfd(), so a closed fd with length 0 gives -EINVAL.
 * Expected -EBADF, actual -EINVAL.
 */
static void review_bug_map_file_badfd_before_length(void **state)
{
	struct rfx *f = *state;
	int fd;

	fd = memfd_sized(0);
	close(fd);	/* fd is now a closed descriptor number */
	assert_int_equal(map_file_probe(f, fd, 0, 0, RW), -EBADF);
	assert_int_equal(nr_areas(f->ioas), 0);
}

/*
 * BUG: MAP_FILE with start + length - 1 wrapping and a length too large.
 * Semantics §2.1 iopt_map_file_pages: "length != 0 and start + length - 1
 * overflows -> -EOVERFLOW; length 0 or too large -> -EINVAL" (6.13+
 * iopt_alloc_file_pages checks the overflow before iopt_alloc_pages()' length
 * check). Ours: check_length() tests the length first.
 * Expected -EOVERFLOW, actual -EINVAL.
 */
static void review_bug_map_file_overflow_before_length(void **state)
{
	struct rfx *f = *state;

	assert_int_equal(map_file_probe(f, memfd_sized(4 * PAGE), 2 * PAGE,
					UINT64_MAX - 1, RW),
			 -EOVERFLOW);
}

/*
 * BUG (undocumented difference): MAP_FILE checks the file's size at map time.
 * Semantics §2.1 iopt_map_file_pages: "Nothing about the file is checked at
 * map time: not its type, not its size, not its open mode ... The file is
 * only touched when pages are pinned"; §5.43: past EOF -> -EINVAL "when
 * pinning (at map time with a domain)". With no domain the kernel map
 * succeeds (6.13+ iopt_alloc_file_pages only checks overflow and length).
 * Ours: src/pages.c check_memfd() refuses a range past EOF at map time. Not
 * in docs/differences.md nor docs/pages.md's differences (errors.md lists it
 * as a map-time error). Expected 0, actual -EINVAL.
 */
static void review_bug_map_file_eof_at_map_time(void **state)
{
	struct rfx *f = *state;

	assert_int_equal(map_file_probe(f, memfd_sized(4 * PAGE), 0, 8 * PAGE,
					RW), 0);
}

/*
 * Was an undocumented difference: a READABLE-only MAP_FILE of an fd open
 * O_WRONLY is refused with -EPERM. The kernel never checks the open mode of
 * a read-only file map (memfd_pin_folios() does not care); libiopt reads the
 * file through its own mmap(), which needs a readable fd. Now listed in
 * docs/differences.md (MAP_FILE open modes); this pins the documented answer.
 */
static void review_bug_map_file_wronly_readonly_map(void **state)
{
	struct rfx *f = *state;
	char path[64];
	int fd, wfd;

	fd = memfd_sized(4 * PAGE);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	wfd = open(path, O_WRONLY);
	close(fd);
	assert_true(wfd >= 0);
	assert_int_equal(map_file_probe(f, wfd, 0, 4 * PAGE,
					IOPT_IOAS_MAP_READABLE), -EPERM);
	assert_int_equal(nr_areas(f->ioas), 0);
}

/*
 * BUG (same root as the EOF case): a non-memfd file is refused at map time.
 * Kernel: type checks happen only when pinning (§2.1, §3.15 "Other files ...
 * fail with -EINVAL at pin time"); with no domain the map succeeds. Ours:
 * check_memfd() refuses a regular file of a disk filesystem at map time.
 * Expected 0, actual -EINVAL (needs a /tmp that is not tmpfs, else it is a
 * shmem file and passes).
 */
static void review_bug_map_file_regular_file_at_map_time(void **state)
{
	struct rfx *f = *state;
	char path[] = "/tmp/iopt-review-XXXXXX";
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, 4 * PAGE), 0);
	assert_int_equal(map_file_probe(f, fd, 0, 4 * PAGE, RW), 0);
}

/*
 * BUG: MAP_FILE's own EOF check wrapped. For start = 2^64 - 4096 and length
 * 4096, start + length - 1 does not overflow (kernel: the map succeeds with
 * no domain, §2.1), but src/pages.c check_memfd() computed start + length,
 * which wrapped to 0 and passed "> st_size"; mmap() then refused the
 * negative offset and the error came back as -ENOMEM. The map-time checks
 * are settled the kernel's way (review_bug_map_file_eof_at_map_time): with
 * no domain the file is not looked at, so the answer is 0. Was -ENOMEM.
 */
static void review_bug_map_file_end_wraps(void **state)
{
	struct rfx *f = *state;

	assert_int_equal(map_file_probe(f, memfd_sized(4 * PAGE),
					UINT64_MAX - PAGE + 1, PAGE, RW), 0);
}

/*
 * BUG (low): RLIMIT_MODE checks the value before "objects exist".
 * Kernel ioas.c:iommufd_option_rlimit_mode (6.12 lines 344-362; semantics
 * §2.4 RLIMIT_MODE row, §5.41): no CAP_SYS_RESOURCE -> EPERM, then any object
 * in the context -> EBUSY, and only then a value other than 0/1 -> EINVAL.
 * Ours: src/ctx.c iopt_ctx_set_account_mode() returns -EINVAL for an unknown
 * mode before looking at the objects. With an IOAS alive and a bad mode:
 * expected -EBUSY, actual -EINVAL.
 */
static void review_bug_account_mode_busy_before_value(void **state)
{
	struct rfx *f = *state;

	assert_int_equal(iopt_ctx_set_account_mode(f->ctx,
						   (enum iopt_account_mode)7),
			 -EBUSY);
}

/*
 * BUG: use after free in unmap's access protocol.
 * Kernel io_pagetable.c:iopt_unmap_iova_range (6.12 lines 702-709) reads
 * "size_t length = iopt_area_length(area)" while still holding iova_rwsem,
 * then drops the locks and notifies with that copy. Ours
 * (src/io_pagetable.c iopt_unmap_iova_range(), lines 684-685) drops both
 * locks first and evaluates iopt_area_length(area) in the call to
 * iopt_access_notify_unmap(): a concurrent unmap of the same area (its pins
 * dropped meanwhile) can free the area in between. ASan reports
 * heap-use-after-free there within 1-3 s of this race; a plain debug build
 * sees the callback called with a garbage length (e.g. 0xffffffff00000002).
 */
#define UAF_IOVA 0x100000

struct uaf {
	struct iopt_ioas *ioas;
	struct iopt_access *access;
	uint8_t *buf;
	pthread_mutex_t lock;
	bool pinned;
	atomic_bool stop;
	atomic_uint bad_length;
};

static void uaf_unpin_locked(struct uaf *u)
{
	if (u->pinned)
		iopt_access_unpin_pages(u->access, UAF_IOVA, PAGE);
	u->pinned = false;
}

static void uaf_unmap_cb(void *data, uint64_t iova, uint64_t length)
{
	struct uaf *u = data;

	/*
	 * The only area is one page at UAF_IOVA; detach asks for everything.
	 * Anything else was read from a freed area.
	 */
	if ((iova != UAF_IOVA || length != PAGE) &&
	    (iova != 0 || length != UINT64_MAX))
		atomic_fetch_add(&u->bad_length, 1);
	pthread_mutex_lock(&u->lock);
	uaf_unpin_locked(u);
	pthread_mutex_unlock(&u->lock);
}

static const struct iopt_access_driver_ops uaf_ops = {
	.needs_pin_pages = true,
	.unmap = uaf_unmap_cb,
};

static void *uaf_mapper(void *arg)
{
	struct uaf *u = arg;

	while (!atomic_load(&u->stop)) {
		uint64_t iova = UAF_IOVA;

		(void)iopt_ioas_map(u->ioas, u->buf, PAGE, &iova, FIXED);
		(void)iopt_ioas_unmap(u->ioas, UAF_IOVA, PAGE, NULL);
	}
	return NULL;
}

static void *uaf_pinner(void *arg)
{
	struct uaf *u = arg;
	void *pages[1];

	while (!atomic_load(&u->stop)) {
		pthread_mutex_lock(&u->lock);
		if (!u->pinned)
			u->pinned = !iopt_access_pin_pages(u->access, UAF_IOVA,
							   PAGE, pages, NULL, 0);
		pthread_mutex_unlock(&u->lock);
		pthread_mutex_lock(&u->lock);
		uaf_unpin_locked(u);
		pthread_mutex_unlock(&u->lock);
	}
	return NULL;
}

static void review_bug_unmap_notify_uaf(void **state)
{
	struct rfx *f = *state;
	struct uaf u = { .ioas = f->ioas, .buf = f->buf };
	pthread_t t[4];
	unsigned int i;

	pthread_mutex_init(&u.lock, NULL);
	assert_int_equal(iopt_access_create(f->ctx, &uaf_ops, &u, 0, &u.access),
			 0);
	assert_int_equal(iopt_access_attach(u.access, f->ioas), 0);
	for (i = 0; i != 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL,
						i < 2 ? uaf_mapper : uaf_pinner,
						&u), 0);
	sleep(3);
	atomic_store(&u.stop, true);
	for (i = 0; i != 4; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_lock(&u.lock);
	uaf_unpin_locked(&u);
	pthread_mutex_unlock(&u.lock);
	iopt_access_destroy(u.access);
	(void)iopt_ioas_unmap_all(f->ioas, NULL);
	pthread_mutex_destroy(&u.lock);
	assert_int_equal(atomic_load(&u.bad_length), 0);
}

/* ---- checked and found right (regression guards) ---- */

/*
 * Auto IOVA (io_pagetable.c iopt_alloc_iova, 6.12 lines 118-172; §3.4):
 * alignment min(roundup_pow_of_two(length), lowest set bit of uptr, THP),
 * the in-page offset ORed in, first fit from PAGE_SIZE up.
 */
static void review_ok_alloc_iova_exact(void **state)
{
	struct rfx *f = *state;
	uint8_t *huge = rfx_huge_aligned(f);
	uint64_t iova;

	/* 3 pages at a 2 MiB-aligned VA: alignment 16 KiB, first fit 0x4000 */
	assert_int_equal(iopt_ioas_map(f->ioas, huge, 3 * PAGE, &iova, RW), 0);
	assert_true(iova == 0x4000);
	/* 0x10 bytes at VA offset 0x10: alignment 16, first hole 0x1000 | 0x10 */
	assert_int_equal(iopt_ioas_map(f->ioas, huge + 0x10, 0x10, &iova, RW),
			 0);
	assert_true(iova == 0x1010);
	/* 2 MiB at a 2 MiB-aligned VA: alignment 2 MiB (the THP cap) */
	assert_int_equal(iopt_ioas_map(f->ioas, huge, 2u << 20, &iova, RW), 0);
	assert_true(iova == (2u << 20));
	/* NULL uptr: alignment from the length alone */
	assert_int_equal(iopt_ioas_map(f->ioas, NULL, 0x8000, &iova, RW), 0);
	assert_true(iova == 0x8000);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
}

/*
 * Allowed ranges are walked as spans: two abutting ranges form one span, so
 * an allocation may straddle them (interval_tree_for_each_span semantics,
 * §2.2 double-span note). A range given above another is still searched in
 * ascending order.
 */
static void review_ok_alloc_iova_allowed_spans(void **state)
{
	struct rfx *f = *state;
	struct iopt_iova_range allowed[] = {
		{ 0x40000000, 0x4fffffff },
		{ 0x00180000, 0x001fffff },
		{ 0x00100000, 0x0017ffff },
	};
	uint64_t iova;

	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, allowed, 3), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, NULL, 0x100000, &iova, RW), 0);
	assert_true(iova == 0x100000);
	/* the low span is full now: the next goes to the high range */
	assert_int_equal(iopt_ioas_map(f->ioas, NULL, 0x1000, &iova, RW), 0);
	assert_true(iova == 0x40000000);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
	assert_int_equal(iopt_ioas_allow_iovas(f->ioas, NULL, 0), 0);
}

/*
 * Unmap partial semantics (io_pagetable.c iopt_unmap_iova_range, 6.12 lines
 * 660-744; §5.15, §5.16): lowest area first, the failing area and those above
 * it stay, the count is the sum of whole areas removed.
 */
static void review_ok_unmap_partial(void **state)
{
	struct rfx *f = *state;
	uint64_t unmapped = 1;

	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 2 * PAGE,
				       &(uint64_t){ 0x10000 }, FIXED), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 3 * PAGE,
				       &(uint64_t){ 0x20000 }, FIXED), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 4 * PAGE,
				       &(uint64_t){ 0x30000 }, FIXED), 0);
	/* covers the first, cuts the second: first goes, -ENOENT */
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0x8000, 0x19000, &unmapped),
			 -ENOENT);
	assert_true(unmapped == 2 * PAGE);
	assert_int_equal(nr_areas(f->ioas), 2);
	/* holes and two whole areas: the sum of the areas, not the range */
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0x1000, 0x100000, &unmapped),
			 0);
	assert_true(unmapped == 7 * PAGE);
	/* nothing there: -ENOENT with 0; unmap-all of nothing succeeds */
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0x1000, PAGE, &unmapped),
			 -ENOENT);
	assert_true(unmapped == 0);
	assert_int_equal(iopt_ioas_unmap(f->ioas, 0, UINT64_MAX, &unmapped), 0);
	assert_true(unmapped == 0);
}

/*
 * COPY (io_pagetable.c iopt_get_pages, 6.12 lines 619-655; §5.17-§5.19): a
 * sub-range spanning two adjacent areas gives two destination areas; a
 * writable copy of read-only pages is -EPERM after the source was found.
 */
static void review_ok_copy_areas_and_eperm(void **state)
{
	struct rfx *f = *state;
	uint64_t dst = 0x500000;

	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 2 * PAGE,
				       &(uint64_t){ 0x10000 }, FIXED), 0);
	assert_int_equal(iopt_ioas_map(f->ioas, f->buf + 2 * PAGE, 2 * PAGE,
				       &(uint64_t){ 0x12000 }, FIXED), 0);
	assert_int_equal(iopt_ioas_copy(f->ioas2, &dst, f->ioas, 0x11000,
					2 * PAGE, FIXED), 0);
	assert_int_equal(nr_areas(f->ioas2), 2);
	assert_int_equal(iopt_ioas_unmap(f->ioas2, 0x500000, PAGE, NULL), 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas2, NULL), 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);

	assert_int_equal(iopt_ioas_map(f->ioas, f->buf, 2 * PAGE,
				       &(uint64_t){ 0x10000 },
				       IOPT_IOAS_MAP_FIXED_IOVA |
					       IOPT_IOAS_MAP_READABLE), 0);
	assert_int_equal(iopt_ioas_copy(f->ioas2, &dst, f->ioas, 0x10000,
					2 * PAGE, FIXED), -EPERM);
	assert_int_equal(nr_areas(f->ioas2), 0);
	assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
}

/* ---- randomized auto-IOVA check against a flat re-statement of the kernel ---- */

#define REF_MAX 64

struct ref_ival {
	uint64_t start;
	uint64_t last;
};

struct ref_set {
	struct ref_ival v[REF_MAX];
	unsigned int n;
};

static bool ref_hits(const struct ref_set *s, uint64_t start, uint64_t last)
{
	unsigned int i;

	for (i = 0; i != s->n; i++)
		if (s->v[i].start <= last && start <= s->v[i].last)
			return true;
	return false;
}

static void ref_add(struct ref_set *s, uint64_t start, uint64_t last)
{
	assert_true(s->n < REF_MAX);
	s->v[s->n++] = (struct ref_ival){ start, last };
}

static int ref_cmp(const void *a, const void *b)
{
	const struct ref_ival *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sorted union of @a and @b; overlapping and abutting intervals merge. */
static unsigned int ref_merge(const struct ref_set *a, const struct ref_set *b,
			      struct ref_ival *out)
{
	struct ref_ival all[2 * REF_MAX];
	unsigned int n = 0, m = 0, i;

	for (i = 0; a && i != a->n; i++)
		all[n++] = a->v[i];
	for (i = 0; b && i != b->n; i++)
		all[n++] = b->v[i];
	qsort(all, n, sizeof(all[0]), ref_cmp);
	for (i = 0; i != n; i++) {
		if (m && (out[m - 1].last == UINT64_MAX ||
			  all[i].start <= out[m - 1].last + 1)) {
			if (all[i].last > out[m - 1].last)
				out[m - 1].last = all[i].last;
			continue;
		}
		out[m++] = all[i];
	}
	return m;
}

/* __alloc_iova_check_range() (io_pagetable.c, 6.12 lines 73-90). */
static bool ref_fits(uint64_t *start, uint64_t last, uint64_t length,
		     uint64_t align, uint64_t page_offset)
{
	uint64_t a;

	if (*start > UINT64_MAX - (align - 1))
		return false;
	a = ((*start + align - 1) & ~(align - 1)) | page_offset;
	if (a >= last || last - a < length - 1)
		return false;
	*start = a;
	return true;
}

/* iopt_alloc_iova() (6.12 lines 118-172), over flat interval lists. */
static int ref_alloc(const struct ref_set *allowed, const struct ref_set *resv,
		     const struct ref_set *areas, uint64_t iova_alignment,
		     uint64_t addr, uint64_t length, uint64_t *iova)
{
	const uint64_t lo = PAGE, hi = UINT64_MAX - PAGE;
	struct ref_ival spans[2 * REF_MAX], used[2 * REF_MAX];
	unsigned int nspans, nused, i, j;
	uint64_t align, off = addr % PAGE;

	if (!length || length >= UINT64_MAX / 2)
		return -EOVERFLOW;
	align = 1;
	while (align < length)
		align <<= 1;
	if (addr && (addr & -addr) < align)
		align = addr & -addr;
	if (align > (2u << 20))
		align = 2u << 20;
	if (align < iova_alignment)
		return -EINVAL;

	if (!allowed->n) {
		spans[0] = (struct ref_ival){ lo, hi };
		nspans = 1;
	} else {
		nspans = ref_merge(allowed, NULL, spans);
	}
	nused = ref_merge(resv, areas, used);
	for (i = 0; i != nspans; i++) {
		uint64_t s = spans[i].start < lo ? lo : spans[i].start;
		uint64_t l = spans[i].last > hi ? hi : spans[i].last;
		uint64_t cur;

		if (s > l || !ref_fits(&s, l, length, align, off))
			continue;
		/* holes of (reserved U areas) inside [s, l], ascending */
		cur = s;
		for (j = 0; j != nused; j++) {
			uint64_t hs = cur;

			if (used[j].last < cur)
				continue;
			if (used[j].start > l)
				break;
			if (used[j].start > cur &&
			    ref_fits(&hs, used[j].start - 1, length, align, off)) {
				*iova = hs;
				return 0;
			}
			if (used[j].last >= l)
				break;
			cur = used[j].last + 1;
		}
		if (j == nused || used[j].start > l) {
			uint64_t hs = cur;

			if (ref_fits(&hs, l, length, align, off)) {
				*iova = hs;
				return 0;
			}
		}
	}
	return -ENOSPC;
}

static uint64_t rnd_below(uint64_t *st, uint64_t n)
{
	return iopt_test_rand(st) % n;
}

/* A random IOVA: mostly low, sometimes near the top of the space. */
static uint64_t rnd_iova(uint64_t *st)
{
	uint64_t v = rnd_below(st, 1u << 22);

	if (rnd_below(st, 8) == 0)
		v = UINT64_MAX - v;
	if (rnd_below(st, 2))
		v &= ~(uint64_t)(PAGE - 1);
	return v;
}

static void review_ok_alloc_iova_random(void **state)
{
	struct rfx *f = *state;
	uint64_t seed = iopt_test_seed(), st = seed | 1;
	unsigned int round, rounds = iopt_test_quick() ? 40 : 300;
	int owner;

	printf("review_ok_alloc_iova_random: seed %llu\n",
	       (unsigned long long)seed);
	for (round = 0; round != rounds; round++) {
		struct ref_set resv = { .n = 0 }, allowed = { .n = 0 };
		struct ref_set areas = { .n = 0 };
		struct iopt_iova_range ar[4];
		uint64_t ialign = 1;
		unsigned int i, n;

		if (rnd_below(&st, 4) == 0) {
			assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 0), 0);
			ialign = PAGE;
		}
		n = (unsigned int)rnd_below(&st, 5);
		for (i = 0; i != n; i++) {
			uint64_t s = rnd_iova(&st), len = 1 + rnd_below(&st, 0x40000);
			uint64_t l = s > UINT64_MAX - (len - 1) ? UINT64_MAX : s + len - 1;

			assert_int_equal(iopt_ioas_reserve(f->ioas, s, l, &owner), 0);
			ref_add(&resv, s, l);
		}
		/* up to 3 allowed ranges that do not overlap each other */
		n = 0;
		for (i = (unsigned int)rnd_below(&st, 4); i; i--) {
			uint64_t s = rnd_iova(&st), len = 2 + rnd_below(&st, 0x80000);
			struct iopt_iova_range r = {
				.start = s,
				.last = s > UINT64_MAX - (len - 1) ? UINT64_MAX :
								     s + len - 1,
			};
			unsigned int k;

			for (k = 0; k != n; k++)
				if (ar[k].start <= r.last && r.start <= ar[k].last)
					break;
			if (k == n && r.start < r.last)
				ar[n++] = r;
		}
		{
			int want = 0, rc;

			for (i = 0; i != n; i++)
				if (ref_hits(&resv, ar[i].start, ar[i].last))
					want = -EADDRINUSE;
			rc = iopt_ioas_allow_iovas(f->ioas, ar, n);
			assert_int_equal(rc, want);
			for (i = 0; rc == 0 && i != n; i++)
				ref_add(&allowed, ar[i].start, ar[i].last);
		}
		n = (unsigned int)rnd_below(&st, 6);
		for (i = 0; i != n; i++) {
			uint64_t iova = rnd_iova(&st) & ~(ialign - 1);
			uint64_t len = (1 + rnd_below(&st, 0x10000) / ialign) * ialign;
			void *uptr = (void *)(uintptr_t)(0x100000000ull +
							 (rnd_below(&st, 1u << 20) & ~(ialign - 1)));
			uint64_t last;
			int want = 0;

			if (__builtin_add_overflow(iova, len - 1, &last))
				want = -EOVERFLOW;
			else if (ref_hits(&resv, iova, last))
				want = -EINVAL;
			else if (ref_hits(&areas, iova, last))
				want = -EEXIST;
			assert_int_equal(iopt_ioas_map(f->ioas, uptr, len, &iova,
						       FIXED), want);
			if (!want)
				ref_add(&areas, iova, last);
		}
		n = 1 + (unsigned int)rnd_below(&st, 8);
		for (i = 0; i != n; i++) {
			uint64_t len = 1 + rnd_below(&st, rnd_below(&st, 4) ?
							  0x20000 : 0x4000000);
			uint64_t addr = 0x100000000ull + rnd_below(&st, 1ull << 30);
			uint64_t want_iova = 0, got = 0;
			int want, rc;

			if (rnd_below(&st, 8) == 0)
				addr = 0;
			if (ialign > 1) {
				len = IOPT_ALIGN_UP(len, ialign);
				addr &= ~(ialign - 1);
			}
			want = ref_alloc(&allowed, &resv, &areas, ialign, addr,
					 len, &want_iova);
			rc = iopt_ioas_map(f->ioas, (void *)(uintptr_t)addr, len,
					   &got, RW);
			if (rc != want || (!rc && got != want_iova))
				fail_msg("round %u: addr 0x%llx len 0x%llx: got %d "
					 "0x%llx, kernel rule %d 0x%llx", round,
					 (unsigned long long)addr,
					 (unsigned long long)len, rc,
					 (unsigned long long)got, want,
					 (unsigned long long)want_iova);
			if (!rc)
				ref_add(&areas, got, got + len - 1);
		}
		assert_int_equal(iopt_ioas_unmap_all(f->ioas, NULL), 0);
		assert_int_equal(iopt_ioas_allow_iovas(f->ioas, NULL, 0), 0);
		assert_int_equal(iopt_ioas_unreserve(f->ioas, &owner), 0);
		assert_int_equal(iopt_ioas_set_huge_pages(f->ioas, 1), 0);
	}
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(review_bug_copy_src_overflow_before_rw, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_uptr_end_at_top, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_file_badfd_before_length, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_file_overflow_before_length, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_file_eof_at_map_time, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_file_wronly_readonly_map, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_file_regular_file_at_map_time, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_map_file_end_wraps, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_account_mode_busy_before_value, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_bug_unmap_notify_uaf, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_ok_alloc_iova_exact, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_ok_alloc_iova_allowed_spans, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_ok_unmap_partial, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_ok_copy_areas_and_eperm, rfx_setup, rfx_teardown),
	cmocka_unit_test_setup_teardown(review_ok_alloc_iova_random, rfx_setup, rfx_teardown),
};

IOPT_TEST_MAIN(tests)
