/* SPDX-License-Identifier: MIT */
/*
 * bench_pin.c - cost of pinning through the registry against raw mlock.
 *
 * For a 1 GiB buffer backed by 4 KiB pages (MADV_NOHUGEPAGE) and for a THP
 * buffer (MADV_HUGEPAGE), both faulted in beforehand so that every figure
 * measures locking and bookkeeping, not page faults:
 * - the floor: one raw mlock + munlock of the whole buffer;
 * - pin + unpin through the registry as one run (target: <= 1.3x the floor),
 *   with the frame numbers out as a pages object asks for them, and without;
 * - 262,144 single-page pins + unpins of unlocked memory, against 262,144 raw
 *   single-page mlock + munlock calls;
 * - 262,144 single-page pins + unpins of memory already pinned (and locked) by
 *   another holder (target: <= 100 ns per pin), against a raw mlock of one
 *   already-locked page;
 * - registry + frame table bytes per pinned page for each contiguity model, with
 *   the whole buffer pinned (dense), every other page pinned and one page per
 *   2 MiB pinned (sparse; target for all: <= 16 bytes per page), through the
 *   populate-only backend (half a million single-page mlocks would pass
 *   vm.max_map_count; the layout is the same); then one page per 1 GiB.
 * Each timed figure is the best of a few rounds. Needs RLIMIT_MEMLOCK >= 1 GiB
 * or CAP_IPC_LOCK (root). Run from a Release build.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <iopt/ctx.h>

#include "bench_common.h"
#include "pin.h"
#include "util.h"

#define PG		4096ul
#define BUF_LEN		(1ul << 30)
#define NPAGES		(BUF_LEN / PG)
#define TWO_M		(2ul << 20)
#define ROUNDS		5

static uint64_t *pfns;

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_pin: %s: %s\n", what, strerror(err));
	exit(1);
}

/* Raw system calls, as the registry makes them. */
static void raw_mlock(void *p, size_t len)
{
	if (syscall(SYS_mlock, p, len))
		die("mlock (raise RLIMIT_MEMLOCK or run as root)", errno);
}

static void raw_munlock(void *p, size_t len)
{
	syscall(SYS_munlock, p, len);
}

static char *buffer_map(bool thp, void **base)
{
	char *buf;

	*base = mmap(NULL, BUF_LEN + TWO_M, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*base == MAP_FAILED)
		die("mmap", errno);
	buf = (char *)(((uintptr_t)*base + TWO_M - 1) & ~(TWO_M - 1));
	if (madvise(buf, BUF_LEN, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise", errno);
	memset(buf, 1, BUF_LEN);
	return buf;
}

static struct iopt_ctx *ctx_new(enum iopt_phys_model model)
{
	struct iopt_ctx_options o = { .phys_model = model };
	struct iopt_ctx *ctx;
	int rc = iopt_ctx_alloc(&o, &ctx);

	if (rc)
		die("iopt_ctx_alloc", -rc);
	return ctx;
}

static void pin_or_die(struct iopt_ctx *ctx, uintptr_t uaddr, size_t n,
		       uint64_t *out)
{
	int rc = iopt_pin_range(ctx, uaddr, n, true, out);

	if (rc)
		die("iopt_pin_range", -rc);
}

static uint64_t floor_ns(char *buf)
{
	uint64_t best = UINT64_MAX, t;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		t = bench_now_ns();
		raw_mlock(buf, BUF_LEN);
		raw_munlock(buf, BUF_LEN);
		best = IOPT_MIN(best, bench_now_ns() - t);
	}
	return best;
}

/* @out: the frame numbers, or NULL to time the registry without that output. */
static uint64_t one_run_ns(struct iopt_ctx *ctx, char *buf, uint64_t *out,
			   uint64_t *pin_ns)
{
	uint64_t best = UINT64_MAX, t, mid;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		t = bench_now_ns();
		pin_or_die(ctx, (uintptr_t)buf, NPAGES, out);
		mid = bench_now_ns();
		iopt_unpin_range(ctx, (uintptr_t)buf, NPAGES);
		if (bench_now_ns() - t < best) {
			best = bench_now_ns() - t;
			*pin_ns = mid - t;
		}
	}
	return best;
}

/* Per-page mlock+munlock of unlocked memory, raw or through the registry. */
static double single_pages_ns(struct iopt_ctx *ctx, char *buf)
{
	uint64_t t = bench_now_ns();
	size_t i;

	for (i = 0; i < NPAGES; i++) {
		if (ctx)
			pin_or_die(ctx, (uintptr_t)buf + i * PG, 1, pfns + i);
		else
			raw_mlock(buf + i * PG, PG);
	}
	for (i = 0; i < NPAGES; i++) {
		if (ctx)
			iopt_unpin_range(ctx, (uintptr_t)buf + i * PG, 1);
		else
			raw_munlock(buf + i * PG, PG);
	}
	return (double)(bench_now_ns() - t) / NPAGES;
}

/* Single-page pins of memory another holder keeps pinned: no system call. */
static void locked_pages_ns(struct iopt_ctx *ctx, struct iopt_ctx *holder,
			    char *buf, double *pin, double *unpin)
{
	uint64_t t, mid;
	size_t i;
	int r;

	*pin = *unpin = 1e18;
	pin_or_die(holder, (uintptr_t)buf, NPAGES, NULL);
	for (r = 0; r < ROUNDS; r++) {
		t = bench_now_ns();
		for (i = 0; i < NPAGES; i++)
			pin_or_die(ctx, (uintptr_t)buf + i * PG, 1, pfns + i);
		mid = bench_now_ns();
		for (i = 0; i < NPAGES; i++)
			iopt_unpin_range(ctx, (uintptr_t)buf + i * PG, 1);
		*pin = IOPT_MIN(*pin, (double)(mid - t) / NPAGES);
		*unpin = IOPT_MIN(*unpin, (double)(bench_now_ns() - mid) / NPAGES);
	}
	iopt_unpin_range(holder, (uintptr_t)buf, NPAGES);
}

/* A raw mlock of one page that is already locked: the syscall the registry saves. */
static double raw_relock_ns(char *buf)
{
	uint64_t t;
	size_t i, n = NPAGES / 16;

	raw_mlock(buf, BUF_LEN);
	t = bench_now_ns();
	for (i = 0; i < n; i++)
		raw_mlock(buf + i * PG, PG);
	t = bench_now_ns() - t;
	raw_munlock(buf, BUF_LEN);
	return (double)t / n;
}

/* Pins (or unpins) @run pages every @stride pages over the buffer. */
static void pin_layout(struct iopt_ctx *ctx, char *buf, size_t stride,
		       size_t run, bool pin)
{
	size_t i;

	for (i = 0; i < NPAGES; i += stride) {
		if (pin)
			pin_or_die(ctx, (uintptr_t)buf + i * PG, run, NULL);
		else
			iopt_unpin_range(ctx, (uintptr_t)buf + i * PG, run);
	}
}

static void registry_bytes(char *buf, const char *label)
{
	static const char *const names[] = { "contiguous", "folio", "scattered" };
	static const struct {
		const char *name;
		size_t stride, run;
	} layouts[] = {
		{ "dense", NPAGES, NPAGES },
		{ "every other page", 2, 1 },
		{ "one page per 2 MiB", TWO_M / PG, 1 },
	};
	enum iopt_phys_model m;
	size_t l;

	for (l = 0; l < IOPT_ARRAY_SIZE(layouts); l++) {
		for (m = IOPT_PHYS_CONTIGUOUS; m <= IOPT_PHYS_SCATTERED; m++) {
			struct iopt_ctx_options o = {
				.pin_backend = IOPT_PIN_POPULATE_ONLY,
				.phys_model = m,
			};
			struct iopt_ctx *ctx;
			struct iopt_ctx_stats st;
			int rc = iopt_ctx_alloc(&o, &ctx);

			if (rc)
				die("iopt_ctx_alloc", -rc);
			pin_layout(ctx, buf, layouts[l].stride, layouts[l].run, true);
			iopt_ctx_read_stats(ctx, &st);
			printf("%s: registry + frame table, %-18s %-10s %8.2f bytes/page "
			       "(%llu bytes for %llu pages)\n", label,
			       layouts[l].name, names[m],
			       (double)st.registry_bytes / (double)st.registry_pages,
			       (unsigned long long)st.registry_bytes,
			       (unsigned long long)st.registry_pages);
			pin_layout(ctx, buf, layouts[l].stride, layouts[l].run, false);
			iopt_ctx_destroy(ctx);
		}
	}
}

/*
 * The sparsest layout the registry meets: one page per 1 GiB over 64 GiB of
 * address space reserved without memory, so that each page has its chunk
 * record and its frame gig to itself (what the <= 16 B target cannot cover
 * with per-chunk records; docs/pinning.md).
 */
static void registry_bytes_per_gig(void)
{
	const size_t gig = 1ul << 30, ngigs = 64;
	struct iopt_ctx_options o = { .pin_backend = IOPT_PIN_POPULATE_ONLY };
	char *buf = mmap(NULL, ngigs * gig, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct iopt_ctx_stats st;
	struct iopt_ctx *ctx;
	size_t i;
	int rc;

	if (buf == MAP_FAILED)
		die("mmap of 64 GiB without memory", errno);
	rc = iopt_ctx_alloc(&o, &ctx);
	if (rc)
		die("iopt_ctx_alloc", -rc);
	for (i = 0; i < ngigs; i++)
		pin_or_die(ctx, (uintptr_t)buf + i * gig, 1, NULL);
	iopt_ctx_read_stats(ctx, &st);
	printf("registry + frame table, one page per 1 GiB    contiguous %8.2f "
	       "bytes/page (%llu bytes for %llu pages)\n",
	       (double)st.registry_bytes / (double)st.registry_pages,
	       (unsigned long long)st.registry_bytes,
	       (unsigned long long)st.registry_pages);
	for (i = 0; i < ngigs; i++)
		iopt_unpin_range(ctx, (uintptr_t)buf + i * gig, 1);
	iopt_ctx_destroy(ctx);
	munmap(buf, ngigs * gig);
}

static void bench_buffer(bool thp)
{
	const char *label = thp ? "THP" : "4K ";
	struct iopt_ctx *ctx = ctx_new(IOPT_PHYS_CONTIGUOUS);
	struct iopt_ctx *holder = ctx_new(IOPT_PHYS_CONTIGUOUS);
	uint64_t floor, ours, pin_ns = 0;
	double raw1, ours1, lpin, lunpin;
	char what[96];
	void *base;
	char *buf = buffer_map(thp, &base);

	/* A whole chunk: a partial mlock would split the huge page's mapping. */
	pin_or_die(ctx, (uintptr_t)buf, TWO_M / PG, NULL);
	printf("%s: 1 GiB buffer, host page size %zu KiB\n", label,
	       iopt_pin_host_pgsize((uintptr_t)buf) >> 10);
	iopt_unpin_range(ctx, (uintptr_t)buf, TWO_M / PG);

	floor = floor_ns(buf);
	ours = one_run_ns(ctx, buf, pfns, &pin_ns);
	/* Microseconds: a THP floor is a fraction of a millisecond. */
	snprintf(what, sizeof(what), "%s 1 GiB pin+unpin, one run (us)", label);
	bench_report(what, ours / 1e3, floor / 1e3, "us");
	printf("%s   of which pin %.1f us, unpin %.1f us\n", label, pin_ns / 1e3,
	       (ours - pin_ns) / 1e3);
	/* The 262,144 frame numbers alone are 2 MiB of stores. */
	snprintf(what, sizeof(what), "%s   the same without frames out (us)", label);
	bench_report(what, one_run_ns(ctx, buf, NULL, &pin_ns) / 1e3, floor / 1e3,
		     "us");

	raw1 = single_pages_ns(NULL, buf);
	ours1 = single_pages_ns(ctx, buf);
	snprintf(what, sizeof(what), "%s 262144 single-page pin+unpin (ns/page)", label);
	bench_report(what, ours1, raw1, "ns");

	locked_pages_ns(ctx, holder, buf, &lpin, &lunpin);
	snprintf(what, sizeof(what), "%s single-page pin, already locked (ns)", label);
	bench_report(what, lpin, raw_relock_ns(buf), "ns");
	snprintf(what, sizeof(what), "%s single-page unpin, still held (ns)", label);
	bench_report(what, lunpin, 100.0, "ns");

	registry_bytes(buf, label);
	iopt_ctx_destroy(holder);
	iopt_ctx_destroy(ctx);
	munmap(base, BUF_LEN + TWO_M);
}

int main(void)
{
	pfns = malloc(NPAGES * sizeof(*pfns));
	if (!pfns)
		die("malloc", ENOMEM);
	printf("bench_pin: baseline = raw mlock/munlock system calls in the same "
	       "run (100 ns = the target for unpins)\n");
	bench_buffer(false);
	bench_buffer(true);
	registry_bytes_per_gig();
	free(pfns);
	return 0;
}
