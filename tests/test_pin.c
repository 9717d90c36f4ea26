/* SPDX-License-Identifier: MIT */
/*
 * test_pin.c - the pin registry: refcounted run-based mlock, EFAULT unwinding,
 * backends, host page size, fault injection, its memory per pinned page in
 * dense and sparse layouts, whole-chunk pins and a randomized model test.
 *
 * The kernel's own view is the referee: /proc/self/smaps says which ranges are
 * mlocked (VmFlags "lo") and how much is locked, so "two holders do not undo each
 * other" and "lock in runs" are checked against the kernel, not only against the
 * registry's counters.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/ctx.h>
#include <iopt/phys.h>

#include "alloc.h"
#include "ctx.h"
#include "pin.h"

#define PG 4096ul
#define MAX_VMAS 512

struct locked_range {
	uintptr_t start, end;
};

/*
 * Mlocked ranges of the kernel's VMAs inside [buf, buf + len), adjacent ones
 * merged. Return: the number of ranges written to @out.
 */
static size_t smaps_locked(const void *buf, size_t len, struct locked_range *out)
{
	uintptr_t lo = (uintptr_t)buf, hi = lo + len, start = 0, end = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	size_t n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') &&
		    line[strspn(line, "0123456789abcdef")] == '-') {
			start = s;
			end = e;
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) || end <= lo || start >= hi ||
		    !strstr(line, " lo"))
			continue;
		start = start < lo ? lo : start;
		end = end > hi ? hi : end;
		if (n && out[n - 1].end == start) {
			out[n - 1].end = end;
		} else {
			assert_true(n < MAX_VMAS);
			out[n].start = start;
			out[n].end = end;
			n++;
		}
	}
	fclose(f);
	return n;
}

static size_t locked_pages(const void *buf, size_t len)
{
	struct locked_range r[MAX_VMAS];
	size_t n = smaps_locked(buf, len, r), i, pages = 0;

	for (i = 0; i < n; i++)
		pages += (r[i].end - r[i].start) / PG;
	return pages;
}

static void *map_pages(size_t npages)
{
	void *p = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static struct iopt_ctx *ctx_new(enum iopt_pin_backend backend,
				enum iopt_phys_model model)
{
	struct iopt_ctx_options o = { .pin_backend = backend, .phys_model = model };
	struct iopt_ctx *ctx = NULL;

	assert_int_equal(iopt_ctx_alloc(&o, &ctx), 0);
	return ctx;
}

static struct iopt_ctx_stats stats_of(struct iopt_ctx *ctx)
{
	struct iopt_ctx_stats st;

	iopt_ctx_read_stats(ctx, &st);
	return st;
}

static void assert_registry_empty(struct iopt_ctx *ctx)
{
	struct iopt_ctx_stats st = stats_of(ctx);

	assert_int_equal(st.registry_pages, 0);
	assert_int_equal(st.registry_locked_pages, 0);
	assert_int_equal(st.registry_runs, 0);
	assert_int_equal(st.registry_locked_runs, 0);
	assert_int_equal(st.registry_bytes, 0);
}

static void test_double_pin_two_holders(void **state)
{
	struct iopt_ctx *a = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	struct iopt_ctx *b = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	char *buf = map_pages(16);
	uint64_t pa[16], pb[4];
	struct iopt_pin_page_state ps;
	struct locked_range r[MAX_VMAS];
	int i;

	(void)state;
	memset(buf, 0x5a, 16 * PG);
	assert_int_equal(iopt_pin_range(a, (uintptr_t)buf, 16, true, pa), 0);
	assert_int_equal(iopt_pin_range(b, (uintptr_t)buf + 4 * PG, 4, true, pb), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pb[i], pa[4 + i]);
	assert_int_equal(locked_pages(buf, 16 * PG), 16);
	assert_int_equal(iopt_pin_page_state((uintptr_t)buf + 5 * PG, &ps), 0);
	assert_int_equal(ps.nlocked, 2);
	assert_int_equal(stats_of(a).registry_pages, 16);
	assert_int_equal(stats_of(a).pages_pinned, 16);
	assert_int_equal(stats_of(b).pages_pinned, 4);

	/* The first holder going must not unlock what the second still holds. */
	iopt_unpin_range(a, (uintptr_t)buf, 16);
	assert_int_equal(smaps_locked(buf, 16 * PG, r), 1);
	assert_int_equal(r[0].start, (uintptr_t)buf + 4 * PG);
	assert_int_equal(r[0].end, (uintptr_t)buf + 8 * PG);
	assert_int_equal(stats_of(a).registry_pages, 4);
	assert_int_equal(stats_of(a).registry_runs, 1);
	assert_null(iopt_phys_to_host(pa[0] << IOPT_PHYS_FRAME_SHIFT));
	assert_ptr_equal(iopt_phys_to_host(pa[5] << IOPT_PHYS_FRAME_SHIFT),
			 buf + 5 * PG);
	assert_int_equal(buf[5 * PG], 0x5a);

	iopt_unpin_range(b, (uintptr_t)buf + 4 * PG, 4);
	assert_int_equal(locked_pages(buf, 16 * PG), 0);
	assert_null(iopt_phys_to_host(pa[5] << IOPT_PHYS_FRAME_SHIFT));
	assert_registry_empty(a);
	iopt_ctx_destroy(a);
	iopt_ctx_destroy(b);
	munmap(buf, 16 * PG);
}

static void test_unmapped_halfway_efault(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	char *buf = map_pages(64);
	long live = iopt_alloc_live();
	uint64_t pfns[64];

	(void)state;
	assert_int_equal(munmap(buf + 32 * PG, 32 * PG), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 64, true, pfns),
			 -EFAULT);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 64, false, pfns),
			 -EFAULT);
	assert_int_equal(locked_pages(buf, 32 * PG), 0);
	assert_int_equal(iopt_pin_lookup((uintptr_t)buf, 1, pfns), -ENOENT);
	assert_int_equal(stats_of(ctx).pages_pinned, 0);
	assert_registry_empty(ctx);
	assert_int_equal(iopt_alloc_live(), live);

	/* Half already pinned: the failure must leave exactly that pin. */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 16, true, pfns), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 64, true, pfns),
			 -EFAULT);
	assert_int_equal(stats_of(ctx).registry_pages, 16);
	assert_int_equal(stats_of(ctx).pages_pinned, 16);
	assert_int_equal(locked_pages(buf, 32 * PG), 16);
	iopt_unpin_range(ctx, (uintptr_t)buf, 16);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, 32 * PG);
}

static void test_inaccessible_efault(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	char *buf = map_pages(8);
	uint64_t pfns[8];

	(void)state;
	assert_int_equal(mprotect(buf + 4 * PG, 4 * PG, PROT_NONE), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 8, false, pfns),
			 -EFAULT);
	assert_int_equal(mprotect(buf + 4 * PG, 4 * PG, PROT_READ), 0);
	/* Read-only memory: a writable pin faults, a read-only one works. */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 4 * PG, 4, true,
					pfns), -EFAULT);
	assert_registry_empty(ctx);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 4 * PG, 4, false,
					pfns), 0);
	/* Upgrading that read-only pin to writable must fault too. */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 4 * PG, 1, true,
					pfns), -EFAULT);
	assert_int_equal(stats_of(ctx).registry_pages, 4);
	iopt_unpin_range(ctx, (uintptr_t)buf + 4 * PG, 4);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, 8 * PG);
}

/*
 * A read-only pin lets mlock fault the pages in; when mlock then fails part
 * way (here: a shared memfd mapping past EOF), the kernel has already marked
 * the failing run locked. The pin must leave nothing locked behind.
 */
static void test_failed_mlock_leaves_nothing_locked(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	int fd = memfd_create("test_pin", MFD_CLOEXEC);
	uint64_t pfns[8];
	char *map;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8 * PG), 0);
	map = mmap(NULL, 8 * PG, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(ftruncate(fd, 4 * PG), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)map, 8, false, pfns),
			 -EFAULT);
	assert_int_equal(locked_pages(map, 8 * PG), 0);
	assert_registry_empty(ctx);
	/* the part inside the file still pins and locks */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)map, 4, false, pfns), 0);
	assert_int_equal(locked_pages(map, 8 * PG), 4);
	iopt_unpin_range(ctx, (uintptr_t)map, 4);
	assert_int_equal(locked_pages(map, 8 * PG), 0);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(map, 8 * PG);
	close(fd);
}

static void test_bad_arguments(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	char *buf = map_pages(1);
	uint64_t pfn;

	(void)state;
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 1, 1, true, &pfn),
			 -EINVAL);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 0, true, &pfn),
			 -EINVAL);
	assert_int_equal(iopt_pin_range(ctx, UINTPTR_MAX & ~(PG - 1), 2, true,
					&pfn), -EOVERFLOW);
	assert_int_equal(iopt_pin_lookup((uintptr_t)buf, 1, &pfn), -ENOENT);
	assert_int_equal(iopt_pin_host_pgsize((uintptr_t)buf), 0);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, PG);
}

static void test_populate_only_backend(void **state)
{
	struct iopt_ctx *pop = ctx_new(IOPT_PIN_POPULATE_ONLY, IOPT_PHYS_CONTIGUOUS);
	struct iopt_ctx *lk = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	char *buf = map_pages(8);
	struct iopt_pin_page_state ps;
	uint64_t pfns[8], again[8];

	(void)state;
	assert_int_equal(iopt_pin_range(pop, (uintptr_t)buf, 8, false, pfns), 0);
	assert_int_equal(locked_pages(buf, 8 * PG), 0);
	assert_int_equal(stats_of(pop).registry_pages, 8);
	assert_int_equal(stats_of(pop).registry_locked_pages, 0);
	assert_ptr_equal(iopt_phys_to_host(pfns[3] << IOPT_PHYS_FRAME_SHIFT),
			 buf + 3 * PG);

	/* An mlock holder on top locks only while it stays. */
	assert_int_equal(iopt_pin_range(lk, (uintptr_t)buf + 2 * PG, 2, true,
					again), 0);
	assert_int_equal(again[0], pfns[2]);
	assert_int_equal(locked_pages(buf, 8 * PG), 2);
	assert_int_equal(iopt_pin_page_state((uintptr_t)buf + 2 * PG, &ps), 0);
	assert_int_equal(ps.nlocked, 1);
	assert_int_equal(ps.npopulated, 1);
	assert_true(ps.write);
	iopt_unpin_range(lk, (uintptr_t)buf + 2 * PG, 2);
	assert_int_equal(locked_pages(buf, 8 * PG), 0);
	assert_int_equal(iopt_pin_lookup((uintptr_t)buf, 8, again), 0);
	assert_memory_equal(again, pfns, sizeof(pfns));

	iopt_unpin_range(pop, (uintptr_t)buf, 8);
	assert_registry_empty(pop);
	iopt_ctx_destroy(pop);
	iopt_ctx_destroy(lk);
	munmap(buf, 8 * PG);
}

/* Pins that touch join into one run; one mlock VMA per run. */
static void test_runs_merge(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	char *buf = map_pages(12);
	struct locked_range r[MAX_VMAS];

	(void)state;
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 4, true, NULL), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 8 * PG, 4, true,
					NULL), 0);
	assert_int_equal(stats_of(ctx).registry_runs, 2);
	assert_int_equal(stats_of(ctx).registry_locked_runs, 2);
	assert_int_equal(smaps_locked(buf, 12 * PG, r), 2);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 2 * PG, 8, true,
					NULL), 0);
	assert_int_equal(stats_of(ctx).registry_runs, 1);
	assert_int_equal(stats_of(ctx).registry_locked_runs, 1);
	assert_int_equal(smaps_locked(buf, 12 * PG, r), 1);
	assert_int_equal(r[0].end - r[0].start, 12 * PG);
	iopt_unpin_range(ctx, (uintptr_t)buf + 2 * PG, 8);
	assert_int_equal(stats_of(ctx).registry_runs, 2);
	assert_int_equal(smaps_locked(buf, 12 * PG, r), 2);
	iopt_unpin_range(ctx, (uintptr_t)buf, 4);
	iopt_unpin_range(ctx, (uintptr_t)buf + 8 * PG, 4);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, 12 * PG);
}

static void log_to_string(void *data, const char *msg)
{
	snprintf(data, 512, "%s", msg);
}

/*
 * Every failure point of a pin that needs two fault-in or mlock runs, several
 * leaves and frame chunks, unwinds to nothing. With IOPT_PIN_MLOCK the populate
 * calls are skipped (mlock faults in); IOPT_PIN_POPULATE_ONLY makes them.
 */
static void fail_nth_sweep(enum iopt_pin_backend backend, char *msg)
{
	struct iopt_ctx *ctx = ctx_new(backend, IOPT_PHYS_CONTIGUOUS);
	size_t npages = 3 * 512;
	char *buf = map_pages(npages);
	long live;
	unsigned long n;
	int rc;

	iopt_ctx_set_log(ctx, log_to_string, msg);
	/* A pre-existing pin in the middle splits the range in two runs. */
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 700 * PG, 8, true,
					NULL), 0);
	live = iopt_alloc_live();
	for (n = 1;; n++) {
		iopt_fail_nth_arm(n);
		rc = iopt_pin_range(ctx, (uintptr_t)buf, npages, true, NULL);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			break;
		}
		assert_true(rc == -ENOMEM || rc == -EFAULT);
		assert_int_equal(stats_of(ctx).registry_pages, 8);
		assert_int_equal(stats_of(ctx).pages_pinned, 8);
		assert_int_equal(stats_of(ctx).registry_runs, 1);
		assert_int_equal(locked_pages(buf, npages * PG),
				 backend == IOPT_PIN_MLOCK ? 8 : 0);
		assert_int_equal(iopt_alloc_live(), live);
	}
	print_message("# %lu failure points in one pin\n", n - 1);
	assert_true(n > 4);
	iopt_unpin_range(ctx, (uintptr_t)buf, npages);
	iopt_unpin_range(ctx, (uintptr_t)buf + 700 * PG, 8);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, npages * PG);
}

static void test_fail_nth_unwinds(void **state)
{
	char msg[512] = "";

	(void)state;
#ifndef IOPT_FAULT_INJECTION
	skip();	/* a build without the failure points (release) */
#endif
	fail_nth_sweep(IOPT_PIN_POPULATE_ONLY, msg);
	fail_nth_sweep(IOPT_PIN_MLOCK, msg);
	/* The injected mlock refusal named the limit and the other backend. */
	assert_non_null(strstr(msg, "RLIMIT_MEMLOCK"));
	assert_non_null(strstr(msg, "IOPT_PIN_POPULATE_ONLY"));
}

/*
 * A pin that makes the registry allocate or grow its hash table, failed at every
 * point, leaves the registry's memory exactly as it was: with no other pin held
 * (the table itself must go) and with 32 leaves held (a full table of 64 slots
 * that the 33rd leaf doubles: the old table must come back, not the grown one).
 */
static void table_growth_sweep(enum iopt_pin_backend backend, size_t nheld)
{
	struct iopt_ctx *ctx = ctx_new(backend, IOPT_PHYS_CONTIGUOUS);
	size_t npages = (nheld + 3) * 512, i;
	char *buf = map_pages(npages);
	uintptr_t fresh = (uintptr_t)buf + nheld * 512 * PG;
	struct iopt_ctx_stats before;
	long live;
	unsigned long n;
	int rc;

	for (i = 0; i < nheld; i++)
		assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + i * 512 * PG,
						1, true, NULL), 0);
	live = iopt_alloc_live();
	before = stats_of(ctx);
	for (n = 1;; n++) {
		struct iopt_ctx_stats st;

		iopt_fail_nth_arm(n);
		rc = iopt_pin_range(ctx, fresh, 2 * 512, true, NULL);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired()) {
			assert_int_equal(rc, 0);
			break;
		}
		assert_true(rc == -ENOMEM || rc == -EFAULT);
		st = stats_of(ctx);
		assert_int_equal(iopt_alloc_live(), live);
		assert_int_equal(st.registry_bytes, before.registry_bytes);
		assert_int_equal(st.registry_pages, nheld);
		assert_int_equal(st.pages_pinned, nheld);
	}
	assert_true(n > 2);
	assert_true(stats_of(ctx).registry_bytes > before.registry_bytes);
	iopt_unpin_range(ctx, fresh, 2 * 512);
	assert_int_equal(iopt_alloc_live(), live);
	for (i = 0; i < nheld; i++)
		iopt_unpin_range(ctx, (uintptr_t)buf + i * 512 * PG, 1);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, npages * PG);
}

static void test_fail_nth_table_growth(void **state)
{
	(void)state;
#ifndef IOPT_FAULT_INJECTION
	skip();
#endif
	table_growth_sweep(IOPT_PIN_POPULATE_ONLY, 0);
	table_growth_sweep(IOPT_PIN_MLOCK, 0);
	table_growth_sweep(IOPT_PIN_POPULATE_ONLY, 32);
}

static char *map_aligned(size_t len, size_t align, void **base, size_t *base_len)
{
	*base_len = len + align;
	*base = mmap(NULL, *base_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(*base != MAP_FAILED);
	return (char *)(((uintptr_t)*base + align - 1) & ~(uintptr_t)(align - 1));
}

static void test_host_page_size(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	size_t two_m = 2ul << 20, base_len;
	void *base;
	char *thp = map_aligned(2 * two_m, two_m, &base, &base_len);
	size_t size;

	(void)state;
	assert_int_equal(madvise(thp + two_m, two_m, MADV_NOHUGEPAGE), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)thp + two_m, 1, true,
					NULL), 0);
	assert_int_equal(iopt_pin_host_pgsize((uintptr_t)thp + two_m), PG);
	iopt_unpin_range(ctx, (uintptr_t)thp + two_m, 1);

	if (madvise(thp, two_m, MADV_HUGEPAGE))
		goto skip;
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)thp, 512, true, NULL), 0);
	size = iopt_pin_host_pgsize((uintptr_t)thp + 7 * PG);
	iopt_unpin_range(ctx, (uintptr_t)thp, 512);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(base, base_len);
	if (size != two_m)
		skip();	/* no THP here (disabled, or no PAGEMAP_SCAN before 6.7) */
	return;
skip:
	iopt_ctx_destroy(ctx);
	munmap(base, base_len);
	skip();
}

/* hugetlbfs memory pins through the same path (skipped without huge pages). */
static void test_hugetlb(void **state)
{
	size_t two_m = 2ul << 20;
	char *buf = mmap(NULL, two_m, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	struct iopt_ctx *ctx;
	uint64_t pfns[512];
	size_t size;

	(void)state;
	if (buf == MAP_FAILED) {
		print_message("# skipped: no 2 MiB hugetlb pages (vm.nr_hugepages)\n");
		skip();
	}
	ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_FOLIO);
	memset(buf, 7, two_m);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + 8 * PG, 8, true,
					pfns), 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 512, true, pfns), 0);
	assert_ptr_equal(iopt_phys_to_host(pfns[100] << IOPT_PHYS_FRAME_SHIFT),
			 buf + 100 * PG);
	size = iopt_pin_host_pgsize((uintptr_t)buf);
	/* FOLIO: one 2 MiB run behind a 2 MiB host page, no runs behind 4 KiB. */
	assert_true(size == two_m ? pfns[511] == pfns[0] + 511 :
				    pfns[1] != pfns[0] + 1);
	print_message("# host page size %zu KiB\n", size >> 10);
	iopt_unpin_range(ctx, (uintptr_t)buf + 8 * PG, 8);
	iopt_unpin_range(ctx, (uintptr_t)buf, 512);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, two_m);
	/* 2 MiB unless the kernel cannot tell (no PAGEMAP_SCAN before 6.7). */
	assert_true(size == two_m || size == PG);
}

/* ---- registry memory and leaf layouts ---- */

#define ONE_G (1ul << 30)
#define TWO_M (2ul << 20)

/* A GiB-aligned GiB of 4 KiB pages, reserved but not faulted in. */
static char *map_gig(void **base)
{
	char *buf;

	*base = mmap(NULL, 2 * ONE_G, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(*base != MAP_FAILED);
	buf = (char *)IOPT_ALIGN_UP((uintptr_t)*base, ONE_G);
	assert_int_equal(madvise(buf, ONE_G, MADV_NOHUGEPAGE), 0);
	return buf;
}

/*
 * Registry + frame table bytes per pinned page after @count pins of @run pages
 * every @stride pages (populate-only: the layout, not mlock, is measured).
 */
static double bytes_per_page(enum iopt_phys_model model, char *buf, size_t count,
			     size_t stride, size_t run)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_POPULATE_ONLY, model);
	struct iopt_ctx_stats st;
	size_t i;

	assert_registry_empty(ctx);
	for (i = 0; i < count; i++)
		assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + i * stride * PG,
						run, true, NULL), 0);
	st = stats_of(ctx);
	assert_int_equal(st.registry_pages, count * run);
	for (i = 0; i < count; i++)
		iopt_unpin_range(ctx, (uintptr_t)buf + i * stride * PG, run);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	return (double)st.registry_bytes / (double)st.registry_pages;
}

/*
 * The target is <= 16 bytes per pinned page, frame table included, for dense
 * and half-dense layouts; a lone page per 2 MiB pays its chunk's record
 * (docs/pinning.md), bounded here at 256. SCATTERED keeps a frame and a
 * reverse-map entry per page: bounded at 32.
 */
static void test_registry_bytes_bound(void **state)
{
	static const enum iopt_phys_model models[] = {
		IOPT_PHYS_CONTIGUOUS, IOPT_PHYS_FOLIO,
	};
	void *base;
	char *buf = map_gig(&base);
	size_t m;

	(void)state;
	for (m = 0; m < IOPT_ARRAY_SIZE(models); m++) {
		double dense = bytes_per_page(models[m], buf, 1, 0, 16 * 512);
		double half = bytes_per_page(models[m], buf, 16 * 256, 2, 1);
		double lone = bytes_per_page(models[m], buf, 512, 512, 1);

		print_message("# model %d: %.2f B/page dense, %.2f every other page, %.1f one per 2 MiB\n",
			      (int)models[m], dense, half, lone);
		assert_true(dense <= 16);
		assert_true(half <= 16);
		assert_true(lone <= 256);
	}
	assert_true(bytes_per_page(IOPT_PHYS_SCATTERED, buf, 1, 0, 16 * 512) <= 32);
	munmap(base, 2 * ONE_G);
}

static void assert_page(char *buf, size_t p, uint32_t npop, uint64_t pfn)
{
	struct iopt_pin_page_state ps;

	if (!npop) {
		assert_int_equal(iopt_pin_page_state((uintptr_t)buf + p * PG, &ps),
				 -ENOENT);
		assert_null(iopt_phys_to_host(pfn << IOPT_PHYS_FRAME_SHIFT));
		return;
	}
	assert_int_equal(iopt_pin_page_state((uintptr_t)buf + p * PG, &ps), 0);
	assert_int_equal(ps.npopulated, npop);
	assert_int_equal(ps.pfn, pfn);
	assert_ptr_equal(iopt_phys_to_host(pfn << IOPT_PHYS_FRAME_SHIFT), buf + p * PG);
}

/*
 * Single pages pinned in a scrambled order, read-only and writable in turn (so
 * their counts differ and the leaf needs storage), grow a leaf from packed to
 * dense storage (past 256 pages); unpins shrink it back. Counts and frames
 * survive every move, and registry_bytes follows the layout.
 */
static void test_sparse_leaf_grows_and_shrinks(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_POPULATE_ONLY, IOPT_PHYS_CONTIGUOUS);
	struct iopt_ctx *two = ctx_new(IOPT_PIN_POPULATE_ONLY, IOPT_PHYS_CONTIGUOUS);
	size_t base_len, i, p, packed = 0;
	void *base;
	char *buf = map_aligned(TWO_M, TWO_M, &base, &base_len);
	uint64_t pfn, frame0 = 0;

	(void)state;
	for (i = 0; i < 300; i++) {
		p = i * 7 % 512;
		assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf + p * PG, 1,
						i % 2 == 0, &pfn), 0);
		if (!i)
			frame0 = pfn - p;
		assert_int_equal(pfn, frame0 + p);
		if (i == 199)
			packed = stats_of(ctx).registry_bytes;
	}
	/* 200 counts packed (1 KiB room) against 300 dense (2 KiB). */
	assert_true(stats_of(ctx).registry_bytes >= packed + 1024);
	/* A second holder on some pages, then most pins go. */
	for (i = 0; i < 300; i += 3)
		assert_int_equal(iopt_pin_range(two, (uintptr_t)buf + i * 7 % 512 * PG,
						1, false, NULL), 0);
	for (i = 0; i < 300; i++)
		assert_page(buf, i * 7 % 512, 1 + (i % 3 == 0), frame0 + i * 7 % 512);
	for (i = 10; i < 300; i++)
		iopt_unpin_range(ctx, (uintptr_t)buf + i * 7 % 512 * PG, 1);
	for (i = 0; i < 300; i++)
		assert_page(buf, i * 7 % 512, (i < 10) + (i % 3 == 0),
			    frame0 + i * 7 % 512);
	for (i = 0; i < 300; i += 3)
		iopt_unpin_range(two, (uintptr_t)buf + i * 7 % 512 * PG, 1);
	assert_int_equal(stats_of(ctx).registry_pages, 10);
	/* Back to packed storage: far below the dense leaf's 2 KiB of counts. */
	assert_true(stats_of(ctx).registry_bytes < packed - 512);
	for (i = 0; i < 10; i++)
		iopt_unpin_range(ctx, (uintptr_t)buf + i * 7 % 512 * PG, 1);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	iopt_ctx_destroy(two);
	munmap(base, base_len);
}

/*
 * A chunk pinned by one call needs no per-page storage; a few pages pinned
 * again by another holder need none either; more do, and when those pins go
 * the leaf is as it was, allocations included (failed operations unwind so).
 */
static void test_uniform_leaf_storage(void **state)
{
	struct iopt_ctx *a = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	struct iopt_ctx *b = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	size_t base_len, i;
	void *base;
	char *buf = map_aligned(TWO_M, TWO_M, &base, &base_len);
	struct iopt_pin_page_state ps;
	uint64_t bytes;
	long live;

	(void)state;
	assert_int_equal(madvise(buf, TWO_M, MADV_NOHUGEPAGE), 0);
	assert_int_equal(iopt_pin_range(a, (uintptr_t)buf, 512, true, NULL), 0);
	bytes = stats_of(a).registry_bytes;
	live = iopt_alloc_live();
	/* The frame gig (4 KiB), the table and the leaf: no 2 KiB of counts. */
	assert_true(bytes < 5 * 1024);
	for (i = 0; i < 4; i++)
		assert_int_equal(iopt_pin_range(b, (uintptr_t)buf + i * 100 * PG, 1,
						false, NULL), 0);
	assert_int_equal(iopt_alloc_live(), live);
	assert_int_equal(iopt_pin_page_state((uintptr_t)buf + 300 * PG, &ps), 0);
	assert_int_equal(ps.nlocked, 2);
	assert_true(ps.write);
	/* A fifth page needs storage; then the pins go and so does it. */
	assert_int_equal(iopt_pin_range(b, (uintptr_t)buf + 7 * PG, 20, true, NULL), 0);
	assert_true(stats_of(a).registry_bytes >= bytes + 2048);
	iopt_unpin_range(b, (uintptr_t)buf + 7 * PG, 20);
	assert_int_equal(stats_of(a).registry_bytes, bytes);
	assert_int_equal(iopt_alloc_live(), live);
	for (i = 0; i < 4; i++)
		iopt_unpin_range(b, (uintptr_t)buf + i * 100 * PG, 1);
	assert_int_equal(iopt_pin_page_state((uintptr_t)buf + 300 * PG, &ps), 0);
	assert_int_equal(ps.nlocked, 1);
	/* Part of a uniform chunk goes without touching the rest. */
	iopt_unpin_range(a, (uintptr_t)buf + 64 * PG, 128);
	assert_int_equal(locked_pages(buf, TWO_M), 512 - 128);
	assert_int_equal(stats_of(a).registry_runs, 2);
	assert_int_equal(iopt_pin_page_state((uintptr_t)buf + 100 * PG, &ps), -ENOENT);
	iopt_unpin_range(a, (uintptr_t)buf, 64);
	iopt_unpin_range(a, (uintptr_t)buf + 192 * PG, 320);
	assert_int_equal(locked_pages(buf, TWO_M), 0);
	assert_registry_empty(a);
	iopt_ctx_destroy(a);
	iopt_ctx_destroy(b);
	munmap(base, base_len);
}

/*
 * Whole chunks are pinned and unpinned in bulk; a chunk whose pages keep other
 * holders' pins must stay, unlocked where only the mlock pin went.
 */
static void test_whole_chunks(void **state)
{
	struct iopt_ctx *a = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_CONTIGUOUS);
	struct iopt_ctx *b = ctx_new(IOPT_PIN_POPULATE_ONLY, IOPT_PHYS_CONTIGUOUS);
	size_t base_len, i;
	void *base;
	char *buf = map_aligned(4 * TWO_M, TWO_M, &base, &base_len);
	struct locked_range r[MAX_VMAS];
	uint64_t *pfns = calloc(4 * 512, sizeof(*pfns)), again[512];
	struct iopt_ctx_stats st;

	(void)state;
	assert_int_equal(madvise(buf, 4 * TWO_M, MADV_NOHUGEPAGE), 0);
	assert_int_equal(iopt_pin_range(a, (uintptr_t)buf, 4 * 512, true, pfns), 0);
	for (i = 1; i < 4 * 512; i++)
		assert_int_equal(pfns[i], pfns[0] + i);
	assert_int_equal(iopt_pin_range(b, (uintptr_t)buf + TWO_M, 512, false,
					again), 0);
	assert_memory_equal(again, pfns + 512, sizeof(again));
	assert_int_equal(locked_pages(buf, 4 * TWO_M), 4 * 512);

	iopt_unpin_range(a, (uintptr_t)buf + TWO_M, 2 * 512);
	st = stats_of(a);
	assert_int_equal(st.registry_pages, 3 * 512);
	assert_int_equal(st.registry_locked_pages, 2 * 512);
	assert_int_equal(st.registry_runs, 2);
	assert_int_equal(st.registry_locked_runs, 2);
	assert_int_equal(smaps_locked(buf, 4 * TWO_M, r), 2);
	assert_int_equal(r[0].end, (uintptr_t)buf + TWO_M);
	assert_int_equal(r[1].start, (uintptr_t)buf + 3 * TWO_M);
	assert_null(iopt_phys_to_host(pfns[2 * 512 + 5] << IOPT_PHYS_FRAME_SHIFT));
	assert_int_equal(iopt_pin_lookup((uintptr_t)buf + TWO_M, 512, again), 0);
	assert_memory_equal(again, pfns + 512, sizeof(again));
	assert_int_equal(iopt_pin_lookup((uintptr_t)buf, 4 * 512, pfns), -ENOENT);

	iopt_unpin_range(b, (uintptr_t)buf + TWO_M, 512);
	iopt_unpin_range(a, (uintptr_t)buf, 512);
	iopt_unpin_range(a, (uintptr_t)buf + 3 * TWO_M, 512);
	assert_int_equal(locked_pages(buf, 4 * TWO_M), 0);
	assert_registry_empty(a);
	iopt_ctx_destroy(a);
	iopt_ctx_destroy(b);
	free(pfns);
	munmap(base, base_len);
}

/* ---- randomized test against a brute-force model ---- */

#define MODEL_PAGES	384
#define MODEL_HOLDERS	4
#define MODEL_RANGES	6

struct model_range {
	size_t first, n;
};

struct model_holder {
	struct iopt_ctx *ctx;
	bool lock;
	struct model_range r[MODEL_RANGES];
	size_t nr;
};

struct model {
	char *buf;
	struct model_holder h[MODEL_HOLDERS];
	uint32_t nlocked[MODEL_PAGES];
	uint32_t npop[MODEL_PAGES];
	bool write[MODEL_PAGES];	/* some pin was writable since the first */
	uint64_t pfn[MODEL_PAGES];	/* valid while pinned */
	bool had_pfn[MODEL_PAGES];
};

static bool m_pinned(const struct model *m, size_t i)
{
	return m->nlocked[i] || m->npop[i];
}

static size_t m_runs(const struct model *m, bool locked, struct locked_range *r)
{
	size_t i, n = 0;

	for (i = 0; i < MODEL_PAGES; i++) {
		bool on = locked ? m->nlocked[i] > 0 : m_pinned(m, i);
		bool prev = i && (locked ? m->nlocked[i - 1] > 0 : m_pinned(m, i - 1));

		if (on && !prev && r) {
			r[n].start = (uintptr_t)m->buf + i * PG;
			r[n].end = r[n].start;
		}
		if (on && r)
			r[n - (prev ? 1 : 0)].end += PG;
		n += on && !prev;
	}
	return n;
}

static void model_check(struct model *m)
{
	struct locked_range want[MODEL_PAGES], got[MAX_VMAS];
	size_t i, npinned = 0, nlocked = 0, n;
	struct iopt_ctx_stats st = stats_of(m->h[0].ctx);

	for (i = 0; i < MODEL_PAGES; i++) {
		uintptr_t host = (uintptr_t)m->buf + i * PG;
		struct iopt_pin_page_state ps;
		int rc = iopt_pin_page_state(host, &ps);

		if (!m_pinned(m, i)) {
			char *owner;

			assert_int_equal(rc, -ENOENT);
			if (!m->had_pfn[i])
				continue;
			/* A former frame is free or now another pinned page's. */
			owner = iopt_phys_to_host(m->pfn[i] << IOPT_PHYS_FRAME_SHIFT);
			if (owner) {
				assert_int_equal(iopt_pin_page_state((uintptr_t)owner, &ps), 0);
				assert_int_equal(ps.pfn, m->pfn[i]);
			}
			continue;
		}
		npinned++;
		nlocked += m->nlocked[i] > 0;
		assert_int_equal(rc, 0);
		assert_int_equal(ps.nlocked, m->nlocked[i]);
		assert_int_equal(ps.npopulated, m->npop[i]);
		assert_int_equal(ps.write, m->write[i]);
		assert_int_equal(ps.pfn, m->pfn[i]);
		assert_ptr_equal(iopt_phys_to_host((m->pfn[i] << IOPT_PHYS_FRAME_SHIFT) + 7),
				 (char *)host + 7);
	}
	assert_int_equal(st.registry_pages, npinned);
	assert_int_equal(st.registry_locked_pages, nlocked);
	assert_int_equal(st.registry_runs, m_runs(m, false, NULL));
	n = m_runs(m, true, want);
	assert_int_equal(st.registry_locked_runs, n);
	/* The kernel agrees: exactly the model's locked runs are mlocked. */
	assert_int_equal(smaps_locked(m->buf, MODEL_PAGES * PG, got), n);
	assert_memory_equal(got, want, n * sizeof(*got));
}

static void model_pin(struct model *m, struct model_holder *h, size_t first,
		      size_t n, bool writable)
{
	uint64_t pfns[MODEL_PAGES];
	size_t i;

	assert_int_equal(iopt_pin_range(h->ctx, (uintptr_t)m->buf + first * PG,
					n, writable, pfns), 0);
	for (i = 0; i < n; i++) {
		size_t p = first + i;

		if (m_pinned(m, p))
			assert_int_equal(pfns[i], m->pfn[p]);
		else
			m->write[p] = false;
		m->write[p] |= writable;
		m->pfn[p] = pfns[i];
		m->had_pfn[p] = true;
		if (h->lock)
			m->nlocked[p]++;
		else
			m->npop[p]++;
	}
	h->r[h->nr].first = first;
	h->r[h->nr++].n = n;
}

static void model_unpin(struct model *m, struct model_holder *h, size_t k)
{
	struct model_range r = h->r[k];
	size_t i;

	iopt_unpin_range(h->ctx, (uintptr_t)m->buf + r.first * PG, r.n);
	for (i = r.first; i < r.first + r.n; i++) {
		if (h->lock)
			m->nlocked[i]--;
		else
			m->npop[i]--;
	}
	h->r[k] = h->r[--h->nr];
}

static void test_random_model(void **state)
{
	static const enum iopt_phys_model models[] = {
		IOPT_PHYS_CONTIGUOUS, IOPT_PHYS_FOLIO, IOPT_PHYS_SCATTERED,
		IOPT_PHYS_CONTIGUOUS,
	};
	uint64_t rng = iopt_test_seed();
	unsigned int steps = iopt_test_quick() ? 150 : 1500, s;
	struct model *m = calloc(1, sizeof(*m));
	long live = iopt_alloc_live();
	size_t k;

	(void)state;
	assert_non_null(m);
	m->buf = map_pages(MODEL_PAGES);
	for (k = 0; k < MODEL_HOLDERS; k++) {
		m->h[k].lock = k != 1;
		m->h[k].ctx = ctx_new(m->h[k].lock ? IOPT_PIN_MLOCK :
					  IOPT_PIN_POPULATE_ONLY, models[k]);
	}
	for (s = 0; s < steps; s++) {
		uint64_t r = iopt_test_rand(&rng);
		struct model_holder *h = &m->h[r % MODEL_HOLDERS];

		r >>= 8;
		if (h->nr && (h->nr == MODEL_RANGES || r % 3 == 0)) {
			model_unpin(m, h, (r >> 4) % h->nr);
		} else {
			size_t n = 1 + (r >> 4) % 48;
			size_t first = (r >> 12) % (MODEL_PAGES - n + 1);

			model_pin(m, h, first, n, (r >> 40) & 1);
		}
		model_check(m);
	}
	for (k = 0; k < MODEL_HOLDERS; k++) {
		while (m->h[k].nr)
			model_unpin(m, &m->h[k], 0);
		model_check(m);
	}
	assert_registry_empty(m->h[0].ctx);
	for (k = 0; k < MODEL_HOLDERS; k++)
		iopt_ctx_destroy(m->h[k].ctx);
	assert_int_equal(iopt_alloc_live(), live);
	munmap(m->buf, MODEL_PAGES * PG);
	free(m);
}

/* ---- threads: overlapping pins from several threads (run under tsan too) ---- */

struct thread_arg {
	struct iopt_ctx *ctx;
	char *buf;
	unsigned int seed;
	int failures;
};

static void *pin_thread(void *p)
{
	struct thread_arg *a = p;
	uint64_t rng = a->seed, pfns[16], again[16];
	unsigned int i, rounds = iopt_test_quick() ? 200 : 2000;

	for (i = 0; i < rounds; i++) {
		size_t first = iopt_test_rand(&rng) % 48;
		uintptr_t host = (uintptr_t)a->buf + first * PG;

		if (iopt_pin_range(a->ctx, host, 16, true, pfns) ||
		    iopt_pin_lookup(host, 16, again) ||
		    memcmp(pfns, again, sizeof(pfns)) ||
		    iopt_phys_to_host(pfns[3] << IOPT_PHYS_FRAME_SHIFT) !=
			    (void *)(host + 3 * PG))
			a->failures++;
		iopt_unpin_range(a->ctx, host, 16);
	}
	return NULL;
}

static void test_threads_overlapping(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_PIN_MLOCK, IOPT_PHYS_SCATTERED);
	struct thread_arg args[4];
	pthread_t t[4];
	char *buf = map_pages(64);
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ ctx, buf, 1000u + (unsigned int)i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, pin_thread, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	assert_int_equal(locked_pages(buf, 64 * PG), 0);
	assert_registry_empty(ctx);
	iopt_ctx_destroy(ctx);
	munmap(buf, 64 * PG);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_double_pin_two_holders),
	cmocka_unit_test(test_unmapped_halfway_efault),
	cmocka_unit_test(test_inaccessible_efault),
	cmocka_unit_test(test_failed_mlock_leaves_nothing_locked),
	cmocka_unit_test(test_bad_arguments),
	cmocka_unit_test(test_populate_only_backend),
	cmocka_unit_test(test_runs_merge),
	cmocka_unit_test(test_fail_nth_unwinds),
	cmocka_unit_test(test_fail_nth_table_growth),
	cmocka_unit_test(test_host_page_size),
	cmocka_unit_test(test_hugetlb),
	cmocka_unit_test(test_registry_bytes_bound),
	cmocka_unit_test(test_sparse_leaf_grows_and_shrinks),
	cmocka_unit_test(test_uniform_leaf_storage),
	cmocka_unit_test(test_whole_chunks),
	cmocka_unit_test(test_random_model),
	cmocka_unit_test(test_threads_overlapping),
};

IOPT_TEST_MAIN(tests)
