/* SPDX-License-Identifier: MIT */
/*
 * test_pages.c - iopt_pages: pinning, the three frame tiers, batches, domain
 * fill/unfill and accounting (src/pages.[ch]).
 *
 * Areas and io_pagetables are built by hand here (fields set directly, the
 * domains array pointing at the fixture's simulated domains), so these cases
 * test pages.c alone. Every pin is checked against the process-wide registry
 * (iopt_pin_page_state), every mapping against iova_to_phys and the frame the
 * registry gave the host page, and every failure for "nothing changed":
 * domains empty, nothing pinned, nothing charged, no allocation left.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <iopt/ctx.h>
#include <iopt/sim.h>

#include "alloc.h"
#include "ctx.h"
#include "io_pagetable.h"
#include "pages.h"
#include "pin.h"
#include "util.h"

#define PS IOPT_PAGE_SIZE
#define MAX_DOMAINS 3

/*
 * A context, up to three simulated domains and a hand-built io_pagetable;
 * fx_add_pages() adds the common subject: a fresh buffer, writable user pages
 * over all of it and one area over all of them.
 */
struct fx {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *domains[MAX_DOMAINS];
	struct io_pagetable iopt;
	long live;

	char *buf;
	uint64_t npages;
	struct iopt_pages *pages;
	struct iopt_area area;
};

static void fx_init(struct fx *fx, const struct iopt_ctx_options *opts,
		    unsigned int ndomains)
{
	unsigned int i;

	memset(fx, 0, sizeof(*fx));
	fx->live = iopt_alloc_live();
	assert_int_equal(iopt_ctx_alloc(opts, &fx->ctx), 0);
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &fx->iommu), 0);
	for (i = 0; i != ndomains; i++)
		assert_int_equal(iopt_sim_domain_alloc(fx->iommu, NULL,
						       &fx->domains[i]), 0);
	iopt_rwlock_init(&fx->iopt.domains_rwsem, IOPT_LOCK_DOMAINS);
	iopt_rwlock_init(&fx->iopt.iova_rwsem, IOPT_LOCK_IOVA);
	fx->iopt.domains = fx->domains;
	fx->iopt.ndomains = ndomains;
	fx->iopt.iova_alignment = 1;
}

static void fx_destroy(struct fx *fx)
{
	struct iopt_ctx_stats st;
	unsigned int i;

	if (fx->pages) {
		assert_int_equal(iopt_pages_npinned(fx->pages), 0);
		/* the last unpin freed the bookkeeping with it */
		assert_null(fx->pages->pins);
		iopt_put_pages(fx->pages);
		munmap(fx->buf, fx->npages * PS);
	}
	iopt_ctx_read_stats(fx->ctx, &st);
	assert_int_equal(st.pages_charged, 0);
	assert_int_equal(st.pages_pinned, 0);
	for (i = 0; i != MAX_DOMAINS; i++)
		if (fx->domains[i])
			fx->domains[i]->ops->free(fx->domains[i]);
	iopt_sim_iommu_destroy(fx->iommu);
	iopt_rwlock_destroy(&fx->iopt.domains_rwsem);
	iopt_rwlock_destroy(&fx->iopt.iova_rwsem);
	iopt_ctx_destroy(fx->ctx);
	iopt_set_temp_memory_limit(0);
	assert_int_equal(iopt_alloc_live(), fx->live);
}

static uint64_t fx_charged(struct fx *fx)
{
	struct iopt_ctx_stats st;

	iopt_ctx_read_stats(fx->ctx, &st);
	return st.pages_charged;
}

/* Anonymous memory with a pattern; @align_huge gives a 2 MiB-aligned start. */
static char *buf_alloc(uint64_t npages, bool align_huge)
{
	uint64_t len = npages * PS, extra = align_huge ? (UINT64_C(2) << 20) : 0;
	char *map = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf;
	uint64_t i;

	assert_true(map != MAP_FAILED);
	buf = align_huge ? (char *)IOPT_ALIGN_UP((uintptr_t)map, extra) : map;
	if (buf != map)
		munmap(map, (size_t)(buf - map));
	if (extra && buf + len != map + len + extra)
		munmap(buf + len, (size_t)(map + len + extra - (buf + len)));
	for (i = 0; i != len; i += 64)
		buf[i] = (char)(i / 64 * 7 + 1);
	return buf;
}

static void area_init(struct iopt_area *area, struct io_pagetable *iopt,
		      struct iopt_pages *pages, uint64_t iova,
		      uint64_t start_byte, uint64_t length)
{
	memset(area, 0, sizeof(*area));
	area->node.start = iova;
	area->node.last = iova + length - 1;
	area->pages_node.start = start_byte / PS;
	area->pages_node.last = (start_byte + length - 1) / PS;
	area->page_offset = (unsigned int)(start_byte % PS);
	area->iopt = iopt;
	area->pages = pages;
	area->iommu_prot = IOPT_PROT_READ | IOPT_PROT_WRITE;
}

static void fx_add_pages(struct fx *fx, uint64_t npages, bool align_huge,
			 uint64_t iova)
{
	fx->npages = npages;
	fx->buf = buf_alloc(npages, align_huge);
	assert_int_equal(iopt_alloc_user_pages(fx->ctx, fx->buf, npages * PS, true,
					       &fx->pages), 0);
	area_init(&fx->area, &fx->iopt, fx->pages, iova, 0, npages * PS);
}

/* Another pages object that keeps [buf, buf + npages) pinned by an access. */
struct holder {
	struct iopt_pages *pages;
	struct iopt_area area;
};

static void holder_pin(struct fx *fx, struct holder *h, char *buf,
		       uint64_t npages)
{
	assert_int_equal(iopt_alloc_user_pages(fx->ctx, buf, npages * PS, true,
					       &h->pages), 0);
	area_init(&h->area, &fx->iopt, h->pages, 0, 0, npages * PS);
	assert_int_equal(iopt_area_add_access(&h->area, 0, npages - 1, NULL, NULL,
					      0, false), 0);
}

static void holder_release(struct holder *h)
{
	iopt_area_remove_access(&h->area, 0, iopt_area_last_index(&h->area), false);
	iopt_put_pages(h->pages);
}

static int fill_domains(struct fx *fx, struct iopt_area *area)
{
	int rc;

	iopt_rwlock_read(&fx->iopt.domains_rwsem);
	rc = iopt_area_fill_domains(area, area->pages);
	iopt_rwlock_unlock(&fx->iopt.domains_rwsem);
	return rc;
}

static void unfill_domains(struct fx *fx, struct iopt_area *area)
{
	iopt_rwlock_read(&fx->iopt.domains_rwsem);
	iopt_area_unfill_domains(area, area->pages);
	iopt_rwlock_unlock(&fx->iopt.domains_rwsem);
}

static uint64_t frame_of(const void *host)
{
	uint64_t frame = 0;

	assert_int_equal(iopt_pin_lookup((uintptr_t)host, 1, &frame), 0);
	return frame;
}

static uint32_t nlocked(const void *host)
{
	struct iopt_pin_page_state st;

	if (iopt_pin_page_state((uintptr_t)host, &st))
		return 0;
	return st.nlocked + st.npopulated;
}

/* Every page of @area in @d maps the frame the registry gives its host page. */
static void check_area_mapped(struct iopt_domain *d, const struct iopt_area *area)
{
	const struct iopt_pages *pages = area->pages;
	uint64_t index;

	for (index = iopt_area_index(area); index <= iopt_area_last_index(area);
	     index++) {
		uint64_t iova = iopt_area_iova(area) - area->page_offset +
				(index - iopt_area_index(area)) * PS;
		const char *host = (const char *)pages->uptr + index * PS;

		assert_int_equal(d->ops->iova_to_phys(d, iova),
				 frame_of(host) << IOPT_PHYS_FRAME_SHIFT);
	}
}

static void check_domain_empty(struct iopt_domain *d, uint64_t iova,
			       uint64_t length)
{
	uint64_t off;

	for (off = 0; off < length; off += PS)
		assert_int_equal(d->ops->iova_to_phys(d, iova + off), 0);
	assert_int_equal(iopt_sim_domain_count_leaves(d, iova, iova + length - 1,
						      NULL), 0);
}

/* Locked: kB of the VMA holding @addr, from /proc/self/smaps. */
static long smaps_locked_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* A VMA header; no attribute line has "hex-hex" in front. */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && sscanf(line, "Locked: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/*
 * Whether mlock shows in smaps here: sanitizer runtimes turn mlock into a
 * no-op, so the smaps checks only run where a probe sees a locked page.
 */
static bool mlock_visible(void)
{
	char *probe = mmap(NULL, PS, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool visible;

	assert_true(probe != MAP_FAILED);
	probe[0] = 1;
	visible = !mlock(probe, PS) && smaps_locked_kb(probe) > 0;
	munmap(probe, PS);
	return visible;
}

/* ---- allocation ---- */

static void test_pages_user_alloc_checks(void **state)
{
	struct iopt_pages *pages = NULL;
	struct fx fx;
	char *buf;

	(void)state;
	fx_init(&fx, NULL, 0);
	buf = buf_alloc(4, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, 0, true, &pages), -EINVAL);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, (void *)(uintptr_t)-PS,
					       2 * PS, true, &pages), -EOVERFLOW);
	/* check_add_overflow(uptr, length): an end at 2^64 overflows, */
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, (void *)(uintptr_t)-PS,
					       PS, true, &pages), -EOVERFLOW);
	/* and comes before the length check (the baseline; 6.12 had it after) */
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, (void *)(uintptr_t)-PS,
					       UINT64_MAX, true, &pages), -EOVERFLOW);
	assert_null(pages);

	/* A byte-granular start counts the partial first and last pages. */
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf + 100, 2 * PS, false,
					       &pages), 0);
	assert_ptr_equal(pages->uptr, buf);
	assert_int_equal(pages->npages, 3);
	assert_int_equal(pages->type, IOPT_ADDRESS_USER);
	assert_false(pages->writable);
	assert_int_equal(iopt_pages_source_addr(pages, 100), (uintptr_t)buf + 100);
	assert_int_equal(iopt_pages_npinned(pages), 0);	/* nothing pinned before a fill */
	assert_null(pages->pins);	/* nor any pin bookkeeping allocated */
	assert_int_equal(nlocked(buf), 0);
	iopt_pages_get(pages);
	iopt_put_pages(pages);
	iopt_put_pages(pages);
	iopt_put_pages(NULL);
	munmap(buf, 4 * PS);
	fx_destroy(&fx);
}

static int memfd_with_pattern(uint64_t size)
{
	int fd = memfd_create("test_pages", MFD_CLOEXEC);
	uint64_t i;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (i = 0; i < size; i += 512) {
		char c = (char)(i / 512 + 3);

		assert_int_equal(pwrite(fd, &c, 1, (off_t)i), 1);
	}
	return fd;
}

static bool is_tmpfs(int fd)
{
	struct statfs sfs;

	assert_int_equal(fstatfs(fd, &sfs), 0);
	return sfs.f_type == TMPFS_MAGIC;
}

/* The last page of @pages cannot be pinned: -EINVAL, nothing pinned. Puts it. */
static void pin_refused_einval(struct fx *fx, struct iopt_pages *pages)
{
	struct iopt_area area;

	area_init(&area, &fx->iopt, pages, 0x200000, 0, pages->npages * PS);
	assert_int_equal(iopt_area_add_access(&area, pages->npages - 1,
					      pages->npages - 1, NULL, NULL, 0,
					      false),
			 -EINVAL);
	assert_int_equal(iopt_pages_npinned(pages), 0);
	assert_null(pages->pins);	/* a failed first pin keeps none */
	assert_int_equal(fx_charged(fx), 0);
	iopt_put_pages(pages);
}

static void test_pages_file_alloc_checks(void **state)
{
	char path[] = "/tmp/test_pages_XXXXXX";
	struct iopt_pages *pages = NULL;
	int fd, ro, plain, sealed;
	unsigned long nth;
	char proc[64];
	struct fx fx;

	(void)state;
	fx_init(&fx, NULL, 0);
	fd = memfd_with_pattern(8 * PS);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, 0, 0, true, &pages), -EINVAL);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, UINT64_MAX - PS, 2 * PS,
					       true, &pages), -EOVERFLOW);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, -1, 0, PS, true, &pages), -EBADF);
	/* the fd first, then the wrap, then the length (kernel order) */
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, -1, UINT64_MAX - PS, 2 * PS,
					       true, &pages), -EBADF);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, UINT64_MAX - 1, 2 * PS,
					       true, &pages), -EOVERFLOW);
	assert_null(pages);

	/* Past EOF: mapped as the kernel does, refused when pinned. */
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, 4 * PS, 4 * PS + 1, true,
					       &pages), 0);
	assert_non_null(pages->uptr);
	pin_refused_einval(&fx, pages);

	/* A file that is neither shmem nor hugetlbfs: no mapping, pins -EINVAL. */
	plain = mkstemp(path);
	assert_true(plain >= 0);
	unlink(path);
	assert_int_equal(ftruncate(plain, 8 * (off_t)PS), 0);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, plain, 0, PS, false, &pages), 0);
	if (is_tmpfs(plain))
		assert_non_null(pages->uptr);
	else
		assert_null(pages->uptr);
	if (!pages->uptr)
		pin_refused_einval(&fx, pages);
	else
		iopt_put_pages(pages);
	pages = NULL;
	close(plain);

	/*
	 * Whatever /tmp is: a file that is not even regular, and a memfd offset
	 * mmap() cannot reach (off_t is signed), get no mapping; pins -EINVAL.
	 */
	plain = open("/dev/null", O_RDWR);
	assert_true(plain >= 0);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, plain, 0, PS, true, &pages), 0);
	assert_null(pages->uptr);
	pin_refused_einval(&fx, pages);
	close(plain);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, (UINT64_C(1) << 63) - PS, PS,
					       true, &pages), 0);
	assert_null(pages->uptr);
	pin_refused_einval(&fx, pages);
	pages = NULL;

	/* A write-sealed memfd refuses writable maps only. */
	sealed = memfd_create("test_pages_sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(sealed >= 0);
	assert_int_equal(ftruncate(sealed, 2 * (off_t)PS), 0);
	assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE), 0);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, sealed, 0, PS, true, &pages),
			 -EPERM);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, sealed, 0, PS, false, &pages), 0);
	iopt_put_pages(pages);
	pages = NULL;
	close(sealed);

	/* Writable needs an fd open for writing; read-only works with it. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ro = open(proc, O_RDONLY);
	assert_true(ro >= 0);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, ro, 0, PS, true, &pages), -EPERM);
	assert_null(pages);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, ro, PS + 5, PS, false, &pages), 0);
	assert_int_equal(pages->type, IOPT_ADDRESS_FILE);
	assert_int_equal(pages->npages, 2);
	assert_int_equal(iopt_file_pages(pages)->start, PS);
	assert_int_equal(iopt_pages_source_addr(pages, 5), PS + 5);
	close(ro);
	close(fd);
	/* The library's own mapping keeps the file alive. */
	assert_int_equal(((char *)pages->uptr)[512], (char)(PS / 512 + 1 + 3));
	iopt_put_pages(pages);

	/* Each failure point of the allocation (mmap, memory) leaves nothing. */
	fd = memfd_with_pattern(2 * PS);
	for (nth = 1;; nth++) {
		long live = iopt_alloc_live();
		int rc;

		pages = NULL;
		iopt_fail_nth_arm(nth);
		rc = iopt_alloc_file_pages(fx.ctx, fd, 0, 2 * PS, true, &pages);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		assert_null(pages);
		assert_int_equal(iopt_alloc_live(), live);
	}
	assert_int_equal(nth, 3);
	iopt_put_pages(pages);
	close(fd);
	fx_destroy(&fx);
}

/* Contents through the library's mapping and through access pins equal the file. */
static void test_pages_file_contents(void **state)
{
	enum { NPAGES = 6 };
	uint64_t frames[NPAGES];
	struct iopt_pages *pages;
	struct iopt_area area;
	void *hosts[NPAGES];
	char file[PS], rw[100];
	uint64_t i;
	struct fx fx;
	int fd;

	(void)state;
	fx_init(&fx, NULL, 0);
	fd = memfd_with_pattern(8 * PS);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, PS + 100,
					       (NPAGES - 1) * PS, true, &pages), 0);
	area_init(&area, &fx.iopt, pages, 0x100000 + 100, 100, (NPAGES - 1) * PS);
	assert_int_equal(iopt_area_add_access(&area, 0, NPAGES - 1, hosts, frames,
					      IOPT_PAGES_RW_WRITE, false), 0);
	assert_int_equal(iopt_pages_npinned(pages), NPAGES);
	assert_int_equal(fx_charged(&fx), NPAGES);
	for (i = 0; i != NPAGES; i++) {
		assert_int_equal(pread(fd, file, PS, (off_t)((i + 1) * PS)), PS);
		assert_memory_equal(hosts[i], file, PS);
		assert_ptr_equal(hosts[i], (char *)pages->uptr + i * PS);
		assert_int_equal(frames[i], frame_of(hosts[i]));
	}
	/* Writes through the library reach the file; rw takes the slow path. */
	memset(rw, 0x5a, sizeof(rw));
	assert_int_equal(iopt_pages_rw_access(pages, PS - 50, rw, sizeof(rw),
					      IOPT_PAGES_RW_WRITE), 0);
	assert_int_equal(pread(fd, file, sizeof(rw), (off_t)(2 * PS - 50)),
			 sizeof(rw));
	assert_memory_equal(file, rw, sizeof(rw));
	memset(rw, 0, sizeof(rw));
	assert_int_equal(iopt_pages_rw_access(pages, PS - 50, rw, sizeof(rw), 0), 0);
	assert_memory_equal(file, rw, sizeof(rw));

	iopt_area_remove_access(&area, 0, NPAGES - 1, false);
	assert_int_equal(iopt_pages_npinned(pages), 0);
	assert_true(iopt_pfn_store_empty(&iopt_pages_pins_view(pages)->pinned_pfns));
	iopt_put_pages(pages);
	close(fd);
	fx_destroy(&fx);
}

/*
 * hugetlbfs: the library maps whole huge pages around a 4 KiB-granular
 * range. Skipped where no huge page can be reserved (nr_hugepages == 0).
 */
static void test_pages_file_hugetlbfs(void **state)
{
	const uint64_t huge = UINT64_C(2) << 20;
	uint64_t frames[2];
	struct iopt_pages *pages;
	struct iopt_area area;
	void *hosts[2];
	struct fx fx;
	char *map;
	int fd;

	(void)state;
	fd = memfd_create("test_pages_huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (fd < 0 || ftruncate(fd, (off_t)huge) ||
	    fallocate(fd, 0, 0, (off_t)huge)) {
		if (fd >= 0)
			close(fd);
		printf("# no hugetlbfs page available (vm.nr_hugepages), skipping\n");
		skip();
	}
	/* hugetlbfs has no write(): store the byte through a mapping. */
	map = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	map[5 * PS + 7] = 0x42;
	munmap(map, huge);
	fx_init(&fx, NULL, 0);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, 5 * PS + 7, PS, true,
					       &pages), 0);
	assert_int_equal(iopt_file_pages(pages)->map_length, huge);
	assert_int_equal(pages->npages, 2);
	assert_int_equal(iopt_file_pages(pages)->start, 5 * PS);
	area_init(&area, &fx.iopt, pages, 0x10000000 + 7, 7, PS);
	assert_int_equal(iopt_area_add_access(&area, 0, 1, hosts, frames, 0, false), 0);
	assert_int_equal(((char *)hosts[0])[7], 0x42);
	assert_int_equal(frames[1], frames[0] + 1);
	iopt_area_remove_access(&area, 0, 1, false);
	iopt_put_pages(pages);
	close(fd);
	fx_destroy(&fx);
}

static void test_pages_file_truncate_then_pin_einval(void **state)
{
	struct iopt_pages *pages;
	struct iopt_area area;
	char data[16];
	struct fx fx;
	int fd;

	(void)state;
	fx_init(&fx, NULL, 1);
	fd = memfd_with_pattern(8 * PS);
	assert_int_equal(iopt_alloc_file_pages(fx.ctx, fd, 0, 8 * PS, true, &pages), 0);
	assert_int_equal(ftruncate(fd, 3 * PS), 0);
	area_init(&area, &fx.iopt, pages, 0x200000, 0, 8 * PS);

	assert_int_equal(iopt_area_add_access(&area, 0, 7, NULL, NULL, 0, false),
			 -EINVAL);
	assert_int_equal(fill_domains(&fx, &area), -EINVAL);
	assert_int_equal(iopt_pages_rw_access(pages, 7 * PS, data, sizeof(data), 0),
			 -EINVAL);
	assert_int_equal(iopt_pages_npinned(pages), 0);
	assert_int_equal(fx_charged(&fx), 0);
	assert_null(area.storage_domain);
	assert_true(iopt_itree_empty(&iopt_pages_pins_view(pages)->domains_itree));
	check_domain_empty(fx.domains[0], 0x200000, 8 * PS);
	assert_int_equal(nlocked(pages->uptr), 0);
	/* The part still inside the file pins fine. */
	assert_int_equal(iopt_area_add_access(&area, 0, 2, NULL, NULL, 0, false), 0);
	iopt_area_remove_access(&area, 0, 2, false);
	iopt_put_pages(pages);
	close(fd);
	fx_destroy(&fx);
}

/* ---- pins shared with other holders ---- */

static void test_pages_double_pin_two_objects(void **state)
{
	bool smaps = mlock_visible();
	struct iopt_pages *p1, *p2;
	struct iopt_area a1, a2;
	uint64_t f1, f2;
	struct fx fx;
	char *buf;

	(void)state;
	fx_init(&fx, NULL, 0);
	buf = buf_alloc(4, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, 4 * PS, true, &p1), 0);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf + PS, 2 * PS, true, &p2), 0);
	area_init(&a1, &fx.iopt, p1, 0x10000, 0, 4 * PS);
	area_init(&a2, &fx.iopt, p2, 0x20000, 0, 2 * PS);

	assert_int_equal(iopt_area_add_access(&a1, 1, 1, NULL, &f1, 0, false), 0);
	assert_int_equal(iopt_area_add_access(&a2, 0, 0, NULL, &f2, 0, false), 0);
	assert_int_equal(f1, f2);		/* one host page, one frame */
	assert_int_equal(nlocked(buf + PS), 2);
	assert_true(!smaps || smaps_locked_kb(buf + PS) > 0);

	iopt_area_remove_access(&a1, 1, 1, false);
	assert_int_equal(nlocked(buf + PS), 1);
	/* still locked for p2 */
	assert_true(!smaps || smaps_locked_kb(buf + PS) > 0);
	assert_int_equal(frame_of(buf + PS), f2);

	iopt_area_remove_access(&a2, 0, 0, false);
	assert_int_equal(nlocked(buf + PS), 0);
	assert_true(!smaps || smaps_locked_kb(buf + PS) == 0);
	assert_int_equal(iopt_pages_npinned(p1) + iopt_pages_npinned(p2), 0);
	iopt_put_pages(p1);
	iopt_put_pages(p2);
	munmap(buf, 4 * PS);
	fx_destroy(&fx);
}

/* Half of the buffer is unmapped: -EFAULT on every path, nothing kept. */
static void test_pages_unmapped_half_efault(void **state)
{
	struct iopt_pages *pages;
	struct iopt_area area;
	char data[PS];
	struct fx fx;
	char *buf;

	(void)state;
	fx_init(&fx, NULL, 2);
	buf = buf_alloc(8, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, 8 * PS, true, &pages), 0);
	munmap(buf + 4 * PS, 4 * PS);
	area_init(&area, &fx.iopt, pages, 0x40000, 0, 8 * PS);

	assert_int_equal(fill_domains(&fx, &area), -EFAULT);
	check_domain_empty(fx.domains[0], 0x40000, 8 * PS);
	check_domain_empty(fx.domains[1], 0x40000, 8 * PS);
	assert_null(area.storage_domain);
	assert_int_equal(iopt_area_add_access(&area, 2, 5, NULL, NULL, 0, false),
			 -EFAULT);
	assert_int_equal(area.num_accesses, 0);
	/* each failed first pin freed the bookkeeping it had allocated */
	assert_null(pages->pins);
	assert_int_equal(iopt_pages_rw_access(pages, 3 * PS, data, 2 * PS, 0), -EFAULT);
	assert_int_equal(iopt_pages_rw_access(pages, 3 * PS, data, 2 * PS,
					      IOPT_PAGES_RW_SLOW_PATH), -EFAULT);
	assert_null(pages->pins);
	assert_int_equal(iopt_pages_npinned(pages), 0);
	assert_int_equal(fx_charged(&fx), 0);
	assert_int_equal(nlocked(buf), 0);
	assert_int_equal(nlocked(buf + 3 * PS), 0);
	iopt_put_pages(pages);
	munmap(buf, 4 * PS);
	fx_destroy(&fx);
}

/* Limit N pages: N + 1 fails with -ENOMEM unwound; N fits; NONE is uncapped. */
static void limit_enomem(enum iopt_pin_backend backend)
{
	enum { N = 8 };
	struct iopt_ctx_options opts = {
		.pin_backend = backend,
		.flags = IOPT_CTX_LIMIT,
		.limit_pages = N,
	};
	struct iopt_pages *big, *fits;
	struct iopt_area abig, afits;
	struct fx fx;
	char *buf;

	fx_init(&fx, &opts, 1);
	buf = buf_alloc(2 * N + 1, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, (N + 1) * PS, true, &big), 0);
	area_init(&abig, &fx.iopt, big, 0x100000, 0, (N + 1) * PS);

	assert_int_equal(fill_domains(&fx, &abig), -ENOMEM);
	check_domain_empty(fx.domains[0], 0x100000, (N + 1) * PS);
	assert_int_equal(iopt_area_add_access(&abig, 0, N, NULL, NULL, 0, false),
			 -ENOMEM);
	assert_true(iopt_pfn_store_empty(&iopt_pages_pins_view(big)->pinned_pfns));
	assert_int_equal(iopt_pages_npinned(big), 0);
	assert_int_equal(fx_charged(&fx), 0);
	assert_int_equal(nlocked(buf), 0);

	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf + (N + 1) * PS, N * PS,
					       true, &fits), 0);
	area_init(&afits, &fx.iopt, fits, 0x200000, 0, N * PS);
	assert_int_equal(fill_domains(&fx, &afits), 0);
	assert_int_equal(fx_charged(&fx), N);
	check_area_mapped(fx.domains[0], &afits);
	/* An access over pinned pages charges nothing more. */
	assert_int_equal(iopt_area_add_access(&afits, 0, N - 1, NULL, NULL, 0, false), 0);
	assert_int_equal(fx_charged(&fx), N);
	/* One more page anywhere is refused. */
	assert_int_equal(iopt_area_add_access(&abig, 0, 0, NULL, NULL, 0, false),
			 -ENOMEM);
	iopt_area_remove_access(&afits, 0, N - 1, false);
	unfill_domains(&fx, &afits);
	assert_int_equal(fx_charged(&fx), 0);

	/* The same pages in mode NONE. */
	iopt_put_pages(big);
	assert_int_equal(iopt_ctx_set_account_mode(fx.ctx, IOPT_ACCOUNT_NONE), -EBUSY);
	iopt_put_pages(fits);
	assert_int_equal(iopt_ctx_set_account_mode(fx.ctx, IOPT_ACCOUNT_NONE), 0);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, (N + 1) * PS, true, &big), 0);
	abig.pages = big;
	assert_int_equal(fill_domains(&fx, &abig), 0);
	check_area_mapped(fx.domains[0], &abig);
	unfill_domains(&fx, &abig);
	iopt_put_pages(big);
	munmap(buf, (2 * N + 1) * PS);
	fx_destroy(&fx);
}

static void test_pages_limit_enomem(void **state)
{
	(void)state;
	limit_enomem(IOPT_PIN_MLOCK);
}

/* The backend for users whose real RLIMIT_MEMLOCK is tiny: same accounting. */
static void test_pages_limit_enomem_populate_only(void **state)
{
	(void)state;
	limit_enomem(IOPT_PIN_POPULATE_ONLY);
}

/* ---- domains ---- */

/* One then two domains; iova_to_phys at every page; npinned back to 0. */
static void test_pages_fill_one_and_two_domains(void **state)
{
	enum { NPAGES = 40 };
	struct iopt_pages *pages;
	struct iopt_area area;
	unsigned int nd;
	struct fx fx;
	char *buf;

	(void)state;
	for (nd = 1; nd <= 2; nd++) {
		fx_init(&fx, NULL, nd);
		buf = buf_alloc(NPAGES, false);
		assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, NPAGES * PS, true,
						       &pages), 0);
		/* pages [3, 36] of the buffer */
		area_init(&area, &fx.iopt, pages, 0x7000000, 3 * PS, 34 * PS);
		assert_int_equal(fill_domains(&fx, &area), 0);
		assert_ptr_equal(area.storage_domain, fx.domains[0]);
		assert_false(iopt_itree_empty(&iopt_pages_pins_view(pages)->domains_itree));
		assert_int_equal(iopt_pages_npinned(pages), 34);
		assert_int_equal(fx_charged(&fx), 34);
		assert_int_equal(nlocked(buf + 3 * PS), 1);	/* pinned once */
		assert_int_equal(nlocked(buf + 2 * PS), 0);
		assert_int_equal(nlocked(buf + 37 * PS), 0);
		check_area_mapped(fx.domains[0], &area);
		if (nd == 2)
			check_area_mapped(fx.domains[1], &area);

		unfill_domains(&fx, &area);
		assert_null(area.storage_domain);
		assert_true(iopt_itree_empty(&iopt_pages_pins_view(pages)->domains_itree));
		check_domain_empty(fx.domains[0], 0x7000000, 34 * PS);
		check_domain_empty(fx.domains[nd - 1], 0x7000000, 34 * PS);
		assert_int_equal(iopt_pages_npinned(pages), 0);
		assert_int_equal(nlocked(buf + 3 * PS), 0);
		iopt_put_pages(pages);
		munmap(buf, NPAGES * PS);
		fx_destroy(&fx);
	}
}

/*
 * An access pins part of the range before the domain fill, another after;
 * the domain fill reads the store (no new pin) and unfill with accesses
 * left keeps exactly their pages pinned (the carry path).
 */
static void test_pages_access_and_domain_tiers(void **state)
{
	enum { NPAGES = 32 };
	uint64_t frames[NPAGES];
	struct fx fx;
	int pass;

	(void)state;
	for (pass = 0; pass != 2; pass++) {
		fx_init(&fx, NULL, 1);
		if (pass)
			iopt_set_temp_memory_limit(1);
		fx_add_pages(&fx, NPAGES, false, 0x400000);

		assert_int_equal(iopt_area_add_access(&fx.area, 4, 9, NULL, frames, 0,
						      false), 0);
		assert_int_equal(iopt_pages_npinned(fx.pages), 6);
		assert_int_equal(fill_domains(&fx, &fx.area), 0);
		assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
		assert_int_equal(nlocked(fx.buf + 5 * PS), 1);
		check_area_mapped(fx.domains[0], &fx.area);

		/* Read from the domain tier into the store: no new pin. */
		assert_int_equal(iopt_area_add_access(&fx.area, 8, 20, NULL, frames, 0,
						      false), 0);
		assert_int_equal(frames[12], frame_of(fx.buf + 20 * PS));
		assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
		assert_int_equal(iopt_pages_pins_view(fx.pages)->pinned_pfns.count, 17);
		/* The exact same interval is shared. */
		assert_int_equal(iopt_area_add_access(&fx.area, 8, 20, NULL, frames, 0,
						      true), 0);
		assert_int_equal(fx.area.num_accesses, 3);
		assert_int_equal(fx.area.num_locks, 1);
		iopt_area_remove_access(&fx.area, 8, 20, true);
		assert_int_equal(iopt_pages_pins_view(fx.pages)->pinned_pfns.count, 17);

		/* Domain goes; the accesses keep [4, 20] pinned. */
		unfill_domains(&fx, &fx.area);
		check_domain_empty(fx.domains[0], 0x400000, NPAGES * PS);
		assert_int_equal(iopt_pages_npinned(fx.pages), 17);
		assert_int_equal(fx_charged(&fx), 17);
		assert_int_equal(nlocked(fx.buf + 3 * PS), 0);
		assert_int_equal(nlocked(fx.buf + 4 * PS), 1);
		assert_int_equal(nlocked(fx.buf + 20 * PS), 1);
		assert_int_equal(nlocked(fx.buf + 21 * PS), 0);

		iopt_area_remove_access(&fx.area, 4, 9, false);
		assert_int_equal(iopt_pages_npinned(fx.pages), 13);
		assert_int_equal(iopt_pages_pins_view(fx.pages)->pinned_pfns.count, 13);
		iopt_area_remove_access(&fx.area, 8, 20, false);
		assert_int_equal(iopt_pages_npinned(fx.pages), 0);
		assert_int_equal(fx.area.num_accesses, 0);
		assert_true(iopt_pfn_store_empty(&iopt_pages_pins_view(fx.pages)->pinned_pfns));
		fx_destroy(&fx);
	}
}

/*
 * Detach of the storage domain as io_pagetable does it: hand storage over to
 * the remaining domain and unmap the old one without unpinning; frames are then
 * read back from the new storage domain.
 */
static void test_pages_storage_domain_handover(void **state)
{
	enum { NPAGES = 16 };
	uint64_t frames[NPAGES];
	struct fx fx;

	(void)state;
	fx_init(&fx, NULL, 2);
	fx_add_pages(&fx, NPAGES, false, 0x800000);
	assert_int_equal(fill_domains(&fx, &fx.area), 0);

	iopt_rwlock_write(&fx.iopt.domains_rwsem);
	iopt_pages_lock(fx.pages);
	fx.area.storage_domain = fx.domains[1];
	iopt_area_unmap_domain(&fx.area, fx.domains[0]);
	iopt_pages_unlock(fx.pages);
	check_domain_empty(fx.domains[0], 0x800000, NPAGES * PS);
	fx.domains[0]->ops->free(fx.domains[0]);
	fx.domains[0] = fx.domains[1];
	fx.domains[1] = NULL;
	fx.iopt.ndomains = 1;
	iopt_rwlock_unlock(&fx.iopt.domains_rwsem);

	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
	assert_int_equal(iopt_area_add_access(&fx.area, 0, NPAGES - 1, NULL, frames, 0,
					      false), 0);
	assert_int_equal(frames[7], frame_of(fx.buf + 7 * PS));
	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
	iopt_area_remove_access(&fx.area, 0, NPAGES - 1, false);
	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
	unfill_domains(&fx, &fx.area);
	assert_int_equal(iopt_pages_npinned(fx.pages), 0);
	fx_destroy(&fx);
}

/* Attach-style fill of an existing area into a second domain pins nothing. */
static void test_pages_fill_domain_attach(void **state)
{
	enum { NPAGES = 24 };
	struct fx fx;

	(void)state;
	fx_init(&fx, NULL, 2);
	fx.iopt.ndomains = 1;
	fx_add_pages(&fx, NPAGES, false, 0x1000000);
	assert_int_equal(fill_domains(&fx, &fx.area), 0);

	iopt_pages_lock(fx.pages);
	assert_int_equal(iopt_area_fill_domain(&fx.area, fx.domains[1]), 0);
	iopt_pages_unlock(fx.pages);
	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
	assert_int_equal(nlocked(fx.buf), 1);
	check_area_mapped(fx.domains[1], &fx.area);

	/* Detach of the non-storage domain: unmap only. */
	iopt_pages_lock(fx.pages);
	iopt_area_unmap_domain(&fx.area, fx.domains[1]);
	iopt_pages_unlock(fx.pages);
	check_domain_empty(fx.domains[1], 0x1000000, NPAGES * PS);
	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);

	/* Last domain detached: the area leaves domains_itree, then unfill. */
	iopt_pages_lock(fx.pages);
	iopt_itree_remove(&fx.area.pages_node, &fx.pages->pins->domains_itree);
	iopt_area_unfill_domain(&fx.area, fx.pages, fx.domains[0]);
	fx.area.storage_domain = NULL;
	iopt_pages_unlock(fx.pages);
	check_domain_empty(fx.domains[0], 0x1000000, NPAGES * PS);
	assert_int_equal(iopt_pages_npinned(fx.pages), 0);

	/* First-domain attach pins from the source, the caller publishes. */
	iopt_pages_lock(fx.pages);
	assert_int_equal(iopt_area_fill_domain(&fx.area, fx.domains[0]), 0);
	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
	fx.area.storage_domain = fx.domains[0];
	iopt_itree_insert(&fx.area.pages_node, &fx.pages->pins->domains_itree);
	iopt_pages_unlock(fx.pages);
	check_area_mapped(fx.domains[0], &fx.area);
	unfill_domains(&fx, &fx.area);
	assert_int_equal(iopt_pages_npinned(fx.pages), 0);
	fx_destroy(&fx);
}

/*
 * A 2 MiB-aligned contiguous buffer is one 2 MiB leaf, 512 leaves with large
 * pages disabled. Unfill with an access in the middle must remove the 2 MiB
 * leaf whole (the backend never splits one) yet keep the access's pages
 * pinned: the carry path, with default and tiny batches.
 */
static void test_pages_huge_leaf_and_carry(void **state)
{
	enum { NPAGES = 512 };
	uint64_t counts[64];
	unsigned int variant;
	struct fx fx;

	(void)state;
	for (variant = 0; variant != 4; variant++) {
		bool small = variant & 1;

		fx_init(&fx, NULL, 1);
		fx.iopt.disable_large_pages = small;
		if (variant & 2)
			iopt_set_temp_memory_limit(1);
		fx_add_pages(&fx, NPAGES, true, 0x40000000);
		assert_int_equal(fill_domains(&fx, &fx.area), 0);
		memset(counts, 0, sizeof(counts));
		assert_int_equal(iopt_sim_domain_count_leaves(fx.domains[0], 0x40000000,
							      0x40000000 + NPAGES * PS - 1,
							      counts),
				 small ? NPAGES : 1);
		assert_int_equal(counts[small ? 12 : 21], small ? NPAGES : 1);
		check_area_mapped(fx.domains[0], &fx.area);

		/* Two accesses: the hole between them lies inside the carry. */
		assert_int_equal(iopt_area_add_access(&fx.area, 100, 200, NULL, NULL, 0,
						      false), 0);
		assert_int_equal(iopt_area_add_access(&fx.area, 300, 310, NULL, NULL, 0,
						      false), 0);
		unfill_domains(&fx, &fx.area);
		check_domain_empty(fx.domains[0], 0x40000000, NPAGES * PS);
		assert_int_equal(iopt_pages_npinned(fx.pages), 112);
		assert_int_equal(nlocked(fx.buf + 99 * PS), 0);
		assert_int_equal(nlocked(fx.buf + 100 * PS), 1);
		assert_int_equal(nlocked(fx.buf + 200 * PS), 1);
		assert_int_equal(nlocked(fx.buf + 201 * PS), 0);
		assert_int_equal(nlocked(fx.buf + 299 * PS), 0);
		assert_int_equal(nlocked(fx.buf + 310 * PS), 1);
		assert_int_equal(nlocked(fx.buf + 311 * PS), 0);
		iopt_area_remove_access(&fx.area, 100, 200, false);
		iopt_area_remove_access(&fx.area, 300, 310, false);
		assert_int_equal(iopt_pages_npinned(fx.pages), 0);
		fx_destroy(&fx);
	}
}

struct mapping_snapshot {
	uint64_t phys[96];
	uint64_t leaves;
	uint64_t npinned;
};

static void snapshot_fill(struct fx *fx, struct iopt_area *area, uint64_t npages,
			  struct mapping_snapshot *snap)
{
	uint64_t i;

	assert_int_equal(fill_domains(fx, area), 0);
	for (i = 0; i != npages; i++)
		snap->phys[i] = fx->domains[0]->ops->iova_to_phys(
			fx->domains[0], iopt_area_iova(area) + i * PS);
	check_area_mapped(fx->domains[1], area);
	snap->leaves = iopt_sim_domain_count_leaves(fx->domains[0],
						    iopt_area_iova(area),
						    iopt_area_last_iova(area), NULL);
	snap->npinned = iopt_pages_npinned(area->pages);
	unfill_domains(fx, area);
	check_domain_empty(fx->domains[0], iopt_area_iova(area), npages * PS);
	check_domain_empty(fx->domains[1], iopt_area_iova(area), npages * PS);
	assert_int_equal(iopt_pages_npinned(area->pages), 0);
}

/*
 * The many-small-batches path gives the same frames, leaves and pins as the
 * default. Frames under FOLIO are never adjacent behind 4 KiB pages, so
 * every batch entry is a run of one (the most batch boundaries), and a second
 * pages object holds the buffer so that its frames stay the same between the
 * runs.
 */
static void test_pages_small_batches_same_result(void **state)
{
	enum { NPAGES = 96 };
	struct iopt_ctx_options opts = { .phys_model = IOPT_PHYS_FOLIO };
	struct mapping_snapshot def, tiny;
	struct iopt_pages *pages;
	struct iopt_area area;
	struct holder holder;
	struct fx fx;
	char *buf;

	(void)state;
	fx_init(&fx, &opts, 2);
	/* Straddle a 2 MiB boundary so there are several runs. */
	buf = buf_alloc(1024, true);
	buf += 512 * PS - 40 * PS;
	holder_pin(&fx, &holder, buf, NPAGES);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, NPAGES * PS, true, &pages), 0);
	area_init(&area, &fx.iopt, pages, 0x80000000, 0, NPAGES * PS);

	snapshot_fill(&fx, &area, NPAGES, &def);
	iopt_set_temp_memory_limit(1);
	snapshot_fill(&fx, &area, NPAGES, &tiny);
	assert_memory_equal(def.phys, tiny.phys, sizeof(def.phys));
	assert_int_equal(def.leaves, tiny.leaves);
	assert_int_equal(def.npinned, NPAGES);
	assert_int_equal(tiny.npinned, NPAGES);
	assert_true(def.leaves > 1);

	holder_release(&holder);
	iopt_put_pages(pages);
	munmap(buf - (512 - 40) * PS, 1024 * PS);
	fx_destroy(&fx);
}

/* ---- byte copies ---- */

static void test_pages_rw_access_paths(void **state)
{
	enum { NPAGES = 6 };
	char in[3 * PS], out_fast[3 * PS], out_slow[3 * PS];
	struct iopt_pages *pages, *ro;
	struct fx fx;
	char *buf;
	size_t i;

	(void)state;
	fx_init(&fx, NULL, 0);
	buf = buf_alloc(NPAGES, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf + 10, NPAGES * PS - 10,
					       true, &pages), 0);
	for (i = 0; i != sizeof(in); i++)
		in[i] = (char)(i * 13);
	assert_int_equal(iopt_pages_rw_access(pages, PS - 7, in, sizeof(in),
					      IOPT_PAGES_RW_WRITE), 0);
	assert_memory_equal(buf + PS - 7, in, sizeof(in));
	assert_int_equal(iopt_pages_rw_access(pages, PS - 7, out_fast, sizeof(in), 0), 0);
	iopt_set_temp_memory_limit(1);
	assert_int_equal(iopt_pages_rw_access(pages, PS - 7, out_slow, sizeof(in),
					      IOPT_PAGES_RW_SLOW_PATH), 0);
	assert_memory_equal(out_fast, in, sizeof(in));
	assert_memory_equal(out_slow, in, sizeof(in));
	memset(in, 0x77, sizeof(in));
	assert_int_equal(iopt_pages_rw_access(pages, 2 * PS + 1, in, 2 * PS,
					      IOPT_PAGES_RW_WRITE |
					      IOPT_PAGES_RW_SLOW_PATH), 0);
	assert_memory_equal(buf + 2 * PS + 1, in, 2 * PS);
	assert_int_equal(iopt_pages_npinned(pages), 0);	/* no lasting pin */
	assert_int_equal(nlocked(buf + 3 * PS), 0);

	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, PS, false, &ro), 0);
	assert_int_equal(iopt_pages_rw_access(ro, 0, in, 8, IOPT_PAGES_RW_WRITE), -EPERM);
	assert_int_equal(iopt_pages_rw_access(ro, 0, out_fast, 8, 0), 0);
	iopt_put_pages(ro);
	iopt_put_pages(pages);
	munmap(buf, NPAGES * PS);
	fx_destroy(&fx);
}

static void test_pages_access_write_perm(void **state)
{
	struct iopt_pages *pages;
	struct iopt_area area;
	struct fx fx;
	char *buf;

	(void)state;
	fx_init(&fx, NULL, 0);
	buf = buf_alloc(2, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, 2 * PS, false, &pages), 0);
	area_init(&area, &fx.iopt, pages, 0x1000, 0, 2 * PS);
	assert_int_equal(iopt_area_add_access(&area, 0, 1, NULL, NULL,
					      IOPT_PAGES_RW_WRITE, false), -EPERM);
	assert_int_equal(iopt_pages_npinned(pages), 0);
	assert_int_equal(iopt_area_add_access(&area, 0, 1, NULL, NULL, 0, false), 0);
	iopt_area_remove_access(&area, 0, 1, false);
	iopt_put_pages(pages);
	munmap(buf, 2 * PS);
	fx_destroy(&fx);
}

/* ---- failure sweeps ---- */


/*
 * Every failure point of a two-domain fill (allocations, pins, domain maps),
 * with a tiny batch limit so failures land between batches: each leaves both
 * domains empty, nothing pinned or charged and no allocation behind.
 */
static void test_pages_fill_domains_fail_nth(void **state)
{
	enum { NPAGES = 40 };
	struct iopt_ctx_options opts = { .phys_model = IOPT_PHYS_SCATTERED };
	struct holder holder;
	unsigned long nth;
	struct fx fx;

	(void)state;
	fx_init(&fx, &opts, 2);
	iopt_set_temp_memory_limit(64);
	/* One 2 MiB chunk, whose registry index the holder keeps in place. */
	fx_add_pages(&fx, NPAGES, true, 0x2000000);
	holder_pin(&fx, &holder, fx.buf, 1);
	for (nth = 1;; nth++) {
		long live = iopt_alloc_live();
		int rc;

		iopt_fail_nth_arm(nth);
		rc = fill_domains(&fx, &fx.area);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			break;
		}
		assert_true(rc < 0);
		check_domain_empty(fx.domains[0], 0x2000000, NPAGES * PS);
		check_domain_empty(fx.domains[1], 0x2000000, NPAGES * PS);
		assert_int_equal(iopt_pages_npinned(fx.pages), 0);
		assert_int_equal(fx_charged(&fx), 1);
		assert_int_equal(nlocked(fx.buf), 1);	/* the holder's pin survives */
		assert_int_equal(nlocked(fx.buf + PS), 0);
		assert_null(fx.area.storage_domain);
		assert_int_equal(iopt_alloc_live(), live);
	}
	assert_true(nth > 4);
	check_area_mapped(fx.domains[1], &fx.area);
	unfill_domains(&fx, &fx.area);
	holder_release(&holder);
	fx_destroy(&fx);
}

/*
 * Every failure point of an attach-style fill: as the first domain (pins from
 * the source, area not yet in domains_itree) and as a second one (frames read
 * back from the storage domain, nothing pinned). Each failure leaves the new
 * domain empty and the pins and charge as before.
 */
static void test_pages_fill_domain_fail_nth(void **state)
{
	enum { NPAGES = 40 };
	struct iopt_area *area;
	struct holder holder;
	unsigned int second;
	struct fx fx;

	(void)state;
	for (second = 0; second != 2; second++) {
		uint64_t pinned = second ? NPAGES : 0;
		unsigned long nth;

		fx_init(&fx, NULL, 2);
		fx.iopt.ndomains = 1;
		iopt_set_temp_memory_limit(40);
		fx_add_pages(&fx, NPAGES, true, 0x3000000);
		holder_pin(&fx, &holder, fx.buf, 1);
		area = &fx.area;
		if (second)
			assert_int_equal(fill_domains(&fx, area), 0);
		for (nth = 1;; nth++) {
			long live = iopt_alloc_live();
			int rc;

			iopt_pages_lock(fx.pages);
			iopt_fail_nth_arm(nth);
			rc = iopt_area_fill_domain(area, fx.domains[1]);
			iopt_fail_nth_disarm();
			iopt_pages_unlock(fx.pages);
			if (!iopt_fail_nth_fired()) {
				assert_int_equal(rc, 0);
				break;
			}
			assert_true(rc < 0);
			check_domain_empty(fx.domains[1], 0x3000000, NPAGES * PS);
			assert_int_equal(iopt_pages_npinned(fx.pages), pinned);
			assert_int_equal(fx_charged(&fx), pinned + 1);
			assert_int_equal(nlocked(fx.buf), 1 + second);
			assert_int_equal(iopt_alloc_live(), live);
		}
		assert_true(nth > 2);
		check_area_mapped(fx.domains[1], area);
		assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
		/* Hand-made detach: the area ends up in no domain. */
		iopt_pages_lock(fx.pages);
		if (second) {
			iopt_itree_remove(&area->pages_node, &fx.pages->pins->domains_itree);
			iopt_area_unmap_domain(area, fx.domains[0]);
		}
		iopt_area_unfill_domain(area, fx.pages, fx.domains[1]);
		area->storage_domain = NULL;
		iopt_pages_unlock(fx.pages);
		check_domain_empty(fx.domains[0], 0x3000000, NPAGES * PS);
		check_domain_empty(fx.domains[1], 0x3000000, NPAGES * PS);
		holder_release(&holder);
		fx_destroy(&fx);
	}
}

/*
 * Destroy never fails: unfilling a domain whose batch allocation fails falls
 * back to the on-stack batch and still unmaps everything and unpins what no
 * access holds (the carry path, with the backup's few runs).
 */
static void test_pages_unfill_without_memory(void **state)
{
	enum { NPAGES = 600 };
	struct iopt_ctx_options opts = { .phys_model = IOPT_PHYS_FOLIO };
	struct fx fx;

	(void)state;
	fx_init(&fx, &opts, 2);
	fx_add_pages(&fx, NPAGES, false, 0x5000000);
	assert_int_equal(fill_domains(&fx, &fx.area), 0);
	assert_int_equal(iopt_area_add_access(&fx.area, 50, 60, NULL, NULL, 0, false), 0);
	iopt_fail_nth_arm(1);
	unfill_domains(&fx, &fx.area);
	assert_true(iopt_fail_nth_fired());
	iopt_fail_nth_disarm();
	check_domain_empty(fx.domains[0], 0x5000000, NPAGES * PS);
	check_domain_empty(fx.domains[1], 0x5000000, NPAGES * PS);
	assert_int_equal(iopt_pages_npinned(fx.pages), 11);
	assert_int_equal(fx_charged(&fx), 11);
	iopt_fail_nth_arm(1);
	iopt_area_remove_access(&fx.area, 50, 60, false);
	iopt_fail_nth_disarm();
	assert_int_equal(iopt_pages_npinned(fx.pages), 0);
	assert_int_equal(nlocked(fx.buf + 55 * PS), 0);
	fx_destroy(&fx);
}

/*
 * Every failure point of an access fill that mixes all three tiers (an
 * existing access, a domain, holes): the store, pins and charge are unchanged.
 */
static void test_pages_add_access_fail_nth(void **state)
{
	enum { NPAGES = 300 };
	struct iopt_area dom_area;
	unsigned long nth;
	struct fx fx;

	(void)state;
	fx_init(&fx, NULL, 1);
	fx_add_pages(&fx, NPAGES, false, 0x4000000);
	area_init(&dom_area, &fx.iopt, fx.pages, 0x8000000, 100 * PS, 100 * PS);
	assert_int_equal(fill_domains(&fx, &dom_area), 0);
	assert_int_equal(iopt_area_add_access(&fx.area, 10, 20, NULL, NULL, 0, false), 0);
	for (nth = 1;; nth++) {
		long live = iopt_alloc_live();
		int rc;

		iopt_fail_nth_arm(nth);
		rc = iopt_area_add_access(&fx.area, 0, NPAGES - 1, NULL, NULL, 0, false);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			break;
		}
		assert_true(rc < 0);
		assert_int_equal(iopt_pages_npinned(fx.pages), 111);
		assert_int_equal(fx_charged(&fx), 111);
		assert_int_equal(iopt_pages_pins_view(fx.pages)->pinned_pfns.count, 11);
		assert_int_equal(fx.area.num_accesses, 1);
		assert_int_equal(nlocked(fx.buf), 0);
		assert_int_equal(nlocked(fx.buf + 150 * PS), 1);
		assert_int_equal(iopt_alloc_live(), live);
	}
	assert_true(nth > 3);
	assert_int_equal(iopt_pages_npinned(fx.pages), NPAGES);
	assert_int_equal(iopt_pages_pins_view(fx.pages)->pinned_pfns.count, NPAGES);
	iopt_area_remove_access(&fx.area, 0, NPAGES - 1, false);
	iopt_area_remove_access(&fx.area, 10, 20, false);
	assert_int_equal(iopt_pages_npinned(fx.pages), 100);
	assert_true(iopt_pfn_store_empty(&iopt_pages_pins_view(fx.pages)->pinned_pfns));
	unfill_domains(&fx, &dom_area);
	assert_int_equal(iopt_pages_npinned(fx.pages), 0);
	fx_destroy(&fx);
}

/* ---- threads ---- */

#define T_THREADS 4
#define T_PAGES 64

struct t_arg {
	struct fx *fx;
	struct iopt_area area;
	const char *buf;
	uint64_t seed;
	unsigned int iters;
	bool domain_toggler;
	atomic_int *errors;
};

/* One access round: pin, compare with the registry and memory, copy, unpin. */
static int t_access_round(struct t_arg *t)
{
	uint64_t a = iopt_test_rand(&t->seed) % T_PAGES;
	uint64_t b = iopt_test_rand(&t->seed) % T_PAGES;
	uint64_t first = IOPT_MIN(a, b), last = IOPT_MAX(a, b), i, frame;
	uint64_t frames[T_PAGES];
	void *hosts[T_PAGES];
	char byte;
	int bad = 0;

	if (iopt_area_add_access(&t->area, first, last, hosts, frames, 0, false))
		return 1;
	for (i = 0; i <= last - first; i++) {
		bad |= hosts[i] != t->buf + (first + i) * PS;
		bad |= iopt_pin_lookup((uintptr_t)hosts[i], 1, &frame) ||
		       frame != frames[i];
	}
	bad |= iopt_pages_rw_access(t->area.pages, last * PS + 64, &byte, 1,
				    IOPT_PAGES_RW_SLOW_PATH) != 0;
	bad |= byte != t->buf[last * PS + 64];
	iopt_area_remove_access(&t->area, first, last, false);
	return bad;
}

static void *t_main(void *arg)
{
	struct t_arg *t = arg;
	bool filled = false;
	unsigned int n;

	for (n = 0; n != t->iters; n++) {
		int bad;

		if (!t->domain_toggler) {
			bad = t_access_round(t);
		} else if (filled) {
			unfill_domains(t->fx, &t->area);
			bad = 0;
		} else {
			bad = fill_domains(t->fx, &t->area) != 0;
		}
		filled ^= t->domain_toggler;
		if (bad)
			atomic_fetch_add(t->errors, 1);
	}
	if (filled)
		unfill_domains(t->fx, &t->area);
	return NULL;
}

/*
 * Accesses through several areas of one pages object race with a domain
 * fill/unfill of another area over the same pages (run it under the tsan
 * preset too): every pin sees the registry's frame and the right memory, and
 * everything is unpinned at the end.
 */
static void test_pages_concurrent_accesses(void **state)
{
	unsigned int iters = iopt_test_quick() ? 50 : 500;
	struct t_arg args[T_THREADS];
	pthread_t threads[T_THREADS];
	atomic_int errors = 0;
	struct iopt_pages *pages;
	unsigned int i;
	struct fx fx;
	char *buf;

	(void)state;
	fx_init(&fx, NULL, 1);
	buf = buf_alloc(T_PAGES, false);
	assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf, T_PAGES * PS, true, &pages), 0);
	for (i = 0; i != T_THREADS; i++) {
		args[i] = (struct t_arg){
			.fx = &fx,
			.buf = buf,
			.seed = iopt_test_seed() + i * 7919 + 1,
			.iters = iters,
			.domain_toggler = i == 0,
			.errors = &errors,
		};
		area_init(&args[i].area, &fx.iopt, pages,
			  (UINT64_C(1) << 32) * (i + 1), 0, T_PAGES * PS);
	}
	for (i = 0; i != T_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, t_main, &args[i]), 0);
	for (i = 0; i != T_THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	assert_int_equal(atomic_load(&errors), 0);
	assert_int_equal(iopt_pages_npinned(pages), 0);
	assert_true(iopt_pfn_store_empty(&iopt_pages_pins_view(pages)->pinned_pfns));
	assert_int_equal(nlocked(buf), 0);
	iopt_put_pages(pages);
	munmap(buf, T_PAGES * PS);
	fx_destroy(&fx);
}

/* ---- randomized against a model ---- */

/*
 * Several pages objects over overlapping slices of one buffer (so the
 * registry sees several holders per page), each with two areas over
 * overlapping slices of its pages (as COPY makes them), filled into two
 * domains or not, and random access intervals. The model says which indexes
 * each object must have pinned and stored; the check compares that, the
 * charge, the registry's per-page pin count and every domain mapping after
 * each step, with the batch limit flipping between tiny and default.
 */
#define R_OBJS 3
#define R_AREAS 2
#define R_PAGES 48
#define R_ACC 12

struct r_access {
	uint64_t start, last;
	unsigned int area;
	bool live;
};

struct r_obj {
	struct iopt_pages *pages;
	struct iopt_area area[R_AREAS];
	bool filled[R_AREAS];
	uint64_t base;			/* first buffer page */
	struct r_access acc[R_ACC];
};

static bool r_covered(const struct r_obj *o, uint64_t index, bool access_only)
{
	unsigned int k;

	for (k = 0; k != R_AREAS && !access_only; k++)
		if (o->filled[k] && index >= iopt_area_index(&o->area[k]) &&
		    index <= iopt_area_last_index(&o->area[k]))
			return true;
	for (k = 0; k != R_ACC; k++)
		if (o->acc[k].live && index >= o->acc[k].start &&
		    index <= o->acc[k].last)
			return true;
	return false;
}

static void r_check_obj(struct fx *fx, struct r_obj *o, const char *buf)
{
	uint64_t index, npinned = 0, stored = 0, frame;
	unsigned int k, d;

	for (index = 0; index != o->pages->npages; index++) {
		bool in_store = r_covered(o, index, true);

		npinned += r_covered(o, index, false);
		stored += in_store;
		assert_int_equal(iopt_pfn_store_load(&iopt_pages_pins_view(o->pages)->pinned_pfns, index,
						     &frame), in_store);
		if (in_store)
			assert_int_equal(frame, frame_of(buf + (o->base + index) * PS));
	}
	assert_int_equal(iopt_pages_npinned(o->pages), npinned);
	assert_int_equal(iopt_pages_pins_view(o->pages)->last_npinned, npinned);
	assert_int_equal(iopt_pages_pins_view(o->pages)->pinned_pfns.count, stored);
	for (k = 0; k != R_AREAS; k++) {
		for (d = 0; d != fx->iopt.ndomains; d++) {
			if (o->filled[k])
				check_area_mapped(fx->domains[d], &o->area[k]);
			else
				check_domain_empty(fx->domains[d],
						   iopt_area_iova(&o->area[k]),
						   iopt_area_length(&o->area[k]));
		}
		assert_int_equal(o->area[k].storage_domain != NULL, o->filled[k]);
	}
}

static void r_check(struct fx *fx, struct r_obj *objs, const char *buf)
{
	uint64_t page, charged = 0;
	unsigned int i;

	for (i = 0; i != R_OBJS; i++) {
		r_check_obj(fx, &objs[i], buf);
		charged += iopt_pages_npinned(objs[i].pages);
	}
	assert_int_equal(fx_charged(fx), charged);
	/* The registry holds one pin per (object, covered page). */
	for (page = 0; page != R_PAGES * 2; page++) {
		uint32_t want = 0;

		for (i = 0; i != R_OBJS; i++)
			if (page >= objs[i].base &&
			    page < objs[i].base + objs[i].pages->npages)
				want += r_covered(&objs[i], page - objs[i].base, false);
		assert_int_equal(nlocked(buf + page * PS), want);
	}
}

static void r_toggle_area(struct fx *fx, struct r_obj *o, unsigned int k)
{
	if (o->filled[k])
		unfill_domains(fx, &o->area[k]);
	else
		assert_int_equal(fill_domains(fx, &o->area[k]), 0);
	o->filled[k] = !o->filled[k];
}

static void r_toggle_access(struct r_obj *o, unsigned int k, uint64_t *seed)
{
	struct r_access *acc = &o->acc[k];
	struct iopt_area *area;
	uint64_t a, b, span;
	unsigned int j;

	if (acc->live) {
		iopt_area_remove_access(&o->area[acc->area], acc->start, acc->last,
					false);
		acc->live = false;
		return;
	}
	/* An interval inside one area, as accesses pin through areas. */
	acc->area = (unsigned int)(iopt_test_rand(seed) % R_AREAS);
	area = &o->area[acc->area];
	span = iopt_area_last_index(area) - iopt_area_index(area) + 1;
	a = iopt_area_index(area) + iopt_test_rand(seed) % span;
	b = iopt_area_index(area) + iopt_test_rand(seed) % span;
	acc->start = IOPT_MIN(a, b);
	acc->last = IOPT_MAX(a, b);
	/* Identical intervals share one node: model them as one. */
	for (j = 0; j != R_ACC; j++)
		if (o->acc[j].live && o->acc[j].start == acc->start &&
		    o->acc[j].last == acc->last)
			return;
	assert_int_equal(iopt_area_add_access(area, acc->start, acc->last, NULL,
					      NULL, 0, false), 0);
	acc->live = true;
}

static void r_step(struct fx *fx, struct r_obj *o, uint64_t *seed)
{
	uint64_t op = iopt_test_rand(seed) % 8;

	if (op < 2) {
		r_toggle_area(fx, o, (unsigned int)op);
		return;
	}
	if (op == 2)
		iopt_set_temp_memory_limit(iopt_test_rand(seed) % 2 ? 1 : 0);
	r_toggle_access(o, (unsigned int)(iopt_test_rand(seed) % R_ACC), seed);
}

static void r_teardown(struct fx *fx, struct r_obj *o)
{
	unsigned int k;

	for (k = 0; k != R_ACC; k++)
		if (o->acc[k].live)
			iopt_area_remove_access(&o->area[o->acc[k].area],
						o->acc[k].start, o->acc[k].last,
						false);
	for (k = 0; k != R_AREAS; k++)
		if (o->filled[k])
			unfill_domains(fx, &o->area[k]);
	assert_int_equal(iopt_pages_npinned(o->pages), 0);
	iopt_put_pages(o->pages);
}

static void random_vs_model(enum iopt_phys_model model)
{
	struct iopt_ctx_options opts = { .phys_model = model };
	uint64_t seed = iopt_test_seed() | 1;
	unsigned int steps = iopt_test_quick() ? 60 : 1500;
	struct r_obj objs[R_OBJS];
	unsigned int i, step;
	struct fx fx;
	char *buf;

	fx_init(&fx, &opts, 2);
	buf = buf_alloc(R_PAGES * 2, false);
	memset(objs, 0, sizeof(objs));
	for (i = 0; i != R_OBJS; i++) {
		struct r_obj *o = &objs[i];
		uint64_t iova = (UINT64_C(1) << 30) * (i + 1);

		o->base = i * (R_PAGES / 2);
		assert_int_equal(iopt_alloc_user_pages(fx.ctx, buf + o->base * PS,
						       R_PAGES * PS, true,
						       &o->pages), 0);
		area_init(&o->area[0], &fx.iopt, o->pages, iova, (i + 2) * PS,
			  (R_PAGES - 2 * i - 4) * PS);
		area_init(&o->area[1], &fx.iopt, o->pages, iova + (1 << 24),
			  (R_PAGES / 3) * PS, (R_PAGES / 2) * PS);
	}
	for (step = 0; step != steps; step++) {
		r_step(&fx, &objs[iopt_test_rand(&seed) % R_OBJS], &seed);
		r_check(&fx, objs, buf);
	}
	for (i = 0; i != R_OBJS; i++)
		r_teardown(&fx, &objs[i]);
	assert_int_equal(nlocked(buf + R_PAGES * PS), 0);
	munmap(buf, R_PAGES * 2 * PS);
	fx_destroy(&fx);
}

/* No two frames adjacent: every page is its own run. */
static void test_pages_random_vs_model(void **state)
{
	(void)state;
	random_vs_model(IOPT_PHYS_SCATTERED);
}

/* Long runs: unfill reads ahead and carries across access spans. */
static void test_pages_random_vs_model_contiguous(void **state)
{
	(void)state;
	random_vs_model(IOPT_PHYS_CONTIGUOUS);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_pages_user_alloc_checks),
	cmocka_unit_test(test_pages_file_alloc_checks),
	cmocka_unit_test(test_pages_file_contents),
	cmocka_unit_test(test_pages_file_hugetlbfs),
	cmocka_unit_test(test_pages_file_truncate_then_pin_einval),
	cmocka_unit_test(test_pages_double_pin_two_objects),
	cmocka_unit_test(test_pages_unmapped_half_efault),
	cmocka_unit_test(test_pages_limit_enomem),
	cmocka_unit_test(test_pages_limit_enomem_populate_only),
	cmocka_unit_test(test_pages_fill_one_and_two_domains),
	cmocka_unit_test(test_pages_access_and_domain_tiers),
	cmocka_unit_test(test_pages_storage_domain_handover),
	cmocka_unit_test(test_pages_fill_domain_attach),
	cmocka_unit_test(test_pages_huge_leaf_and_carry),
	cmocka_unit_test(test_pages_small_batches_same_result),
	cmocka_unit_test(test_pages_rw_access_paths),
	cmocka_unit_test(test_pages_access_write_perm),
	cmocka_unit_test(test_pages_fill_domains_fail_nth),
	cmocka_unit_test(test_pages_fill_domain_fail_nth),
	cmocka_unit_test(test_pages_unfill_without_memory),
	cmocka_unit_test(test_pages_add_access_fail_nth),
	cmocka_unit_test(test_pages_concurrent_accesses),
	cmocka_unit_test(test_pages_random_vs_model),
	cmocka_unit_test(test_pages_random_vs_model_contiguous),
};

IOPT_TEST_MAIN(tests)
