// SPDX-License-Identifier: MIT
/*
 * bench_access.c - what an emulated device pays per access operation, each
 * next to a baseline measured in the same run.
 *
 *  1. pin + unpin of one 4 KiB page that a simulated domain already holds
 *     (target <= 200 ns). Baseline: the translation the pin cannot avoid,
 *     the domain's iova_to_phys plus the frame-to-host lookup.
 *  2. iopt_access_rw() of 64 B and of 1 MiB from domain-held memory.
 *     Baseline: memcpy of the same sizes between the same buffers (target:
 *     1 MiB rw >= 80% of memcpy's bandwidth).
 *  3. 10^6 random 8-byte reads over 10^5 areas of 4 KiB, every area held by
 *     a domain (target <= 100 ns per read). Baseline: a sorted region table
 *     searched by binary search, then the 8-byte copy: the shape of a
 *     userspace device model's DMA region lookup (libvfio-user's takes about
 *     215-250 ns at this size, by its authors' figures; not measured here).
 *     Also at 10^3 areas; the IOAS's area lookup alone, which every rw
 *     starts with; the loads an rw cannot avoid (lookup, area, pages, host
 *     bytes) with no library code around them, the floor of this data
 *     layout; and all of it again with every read's IOVA computed from the
 *     value read before, which gives the latency of one read rather than
 *     the throughput of overlapping ones.
 *  4. map + unmap of one 4 KiB area with the access attached, what writers
 *     pay for lock-free readers: with a device thread that has read (so
 *     holds a reader slot), and with none but this thread. Baseline: the
 *     same with no access attached.
 *
 * Each figure and its baseline (and the lookup alone) run in ROUNDS
 * interleaved rounds, each round starting with another loop, and the median
 * of each is reported: measured once each, one after the other, the second
 * ran on warmer caches or at another clock, which once put the 1 MiB rw, a
 * single memcpy, at 108-132 % of memcpy itself. Rounds are short (a few ms
 * for the 1 MiB copies, tens of ms for the pins) so that the load of other
 * jobs on a shared machine changes little between a figure and its
 * baseline; 500 copies a round still drifted to 133 % once.
 *
 * Build with the release preset (no fault injection, no lock tracking):
 *   cmake --preset release && cmake --build --preset release -j2 &&
 *   build/release/bench/bench_access
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "bench_common.h"
#include "bench_sim_env.h"
#include "io_pagetable.h"
#include "pages.h"

#define PS 4096u
#define BASE_IOVA UINT64_C(0x100000000)
#define MAP_RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE | \
		IOPT_IOAS_MAP_FIXED_IOVA)
#define BIG (UINT64_C(1) << 20)
#define NAREAS 100000u
#define AREA_STRIDE (2 * PS)	/* a hole after every area */
#define SHARED_PAGES 256u	/* the areas cycle over this much memory */
#define NREADS 1000000u
#define ROUNDS 5
#define MAX_LOOPS 4	/* loops interleaved in one time_rounds() */

struct env {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *domain;
	struct iopt_ioas *ioas;
	struct iopt_access *access;
};

static void drop_all(void *data, uint64_t iova, uint64_t length)
{
	(void)data;
	(void)iova;
	(void)length;	/* the bench unpins everything itself */
}

static const struct iopt_access_driver_ops bench_ops = {
	.needs_pin_pages = true,
	.unmap = drop_all,
};

static void *mem_alloc(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap", -errno);
	memset(p, 0x5a, len);
	return p;
}

static void env_init(struct env *e)
{
	bench_sim_env_init(&e->ctx, &e->iommu, &e->domain, 1);
	BENCH_CHECK(iopt_ioas_alloc(e->ctx, &e->ioas));
	BENCH_CHECK(iopt_ioas_attach_domain(e->ioas, e->domain));
	BENCH_CHECK(iopt_access_create(e->ctx, &bench_ops, NULL, 0, &e->access));
	BENCH_CHECK(iopt_access_attach(e->access, e->ioas));
}

static void env_fini(struct env *e)
{
	iopt_access_destroy(e->access);
	BENCH_CHECK(iopt_ioas_unmap_all(e->ioas, NULL));
	iopt_ioas_detach_domain(e->ioas, e->domain);
	BENCH_CHECK(iopt_ioas_destroy(e->ioas));
	bench_sim_env_fini(e->ctx, e->iommu, &e->domain, 1);
}

static void map_fixed(struct env *e, void *ptr, uint64_t len, uint64_t iova)
{
	BENCH_CHECK(iopt_ioas_map(e->ioas, ptr, len, &iova, MAP_RW));
}

/* One timed loop: ns per operation. */
typedef double (*bench_fn)(const void *arg);

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v)
{
	qsort(v, ROUNDS, sizeof(v[0]), cmp_double);
	return v[ROUNDS / 2];
}

/*
 * ROUNDS rounds of the @n (<= MAX_LOOPS) loops, each round starting one
 * loop later than the last, so none always runs first; the median of each
 * into @ns[].
 * Return: the median over rounds of loop 1's time over loop 0's in the same
 * round, which load changing between rounds disturbs less than the ratio of
 * the two medians.
 */
static double time_rounds(const bench_fn *fns, unsigned int n,
			  const void *arg, double *ns)
{
	double t[MAX_LOOPS][ROUNDS], ratio[ROUNDS];
	unsigned int r, i;

	for (r = 0; r != ROUNDS; r++) {
		for (i = 0; i != n; i++)
			t[(r + i) % n][r] = fns[(r + i) % n](arg);
		ratio[r] = t[1][r] / t[0][r];
	}
	for (i = 0; i != n; i++)
		ns[i] = median(t[i]);
	return median(ratio);
}

/* 1. pin + unpin of one domain-held page */
#define PIN_N 200000u

static double time_pin(const void *arg)
{
	struct iopt_access *access = ((const struct env *)arg)->access;
	uint64_t t0 = bench_now_ns();
	void *page = NULL;
	unsigned int i;

	for (i = 0; i != PIN_N; i++) {
		BENCH_CHECK(iopt_access_pin_pages(access, BASE_IOVA, PS, &page, NULL,
					    0));
		iopt_access_unpin_pages(access, BASE_IOVA, PS);
	}
	t0 = bench_now_ns() - t0;
	bench_keep((uintptr_t)page);
	return (double)t0 / PIN_N;
}

static double time_translate(const void *arg)
{
	struct iopt_domain *domain = ((const struct env *)arg)->domain;
	uint64_t t0 = bench_now_ns(), acc = 0;
	unsigned int i;

	for (i = 0; i != PIN_N; i++)
		acc += (uintptr_t)iopt_phys_to_host(
			domain->ops->iova_to_phys(domain, BASE_IOVA));
	t0 = bench_now_ns() - t0;
	bench_keep(acc);
	return (double)t0 / PIN_N;
}

static void bench_pin(struct env *e)
{
	void *buf = mem_alloc(16 * PS), *page = NULL;
	static const bench_fn fns[] = { time_pin, time_translate };
	double ns[2];

	map_fixed(e, buf, 16 * PS, BASE_IOVA);
	BENCH_CHECK(iopt_access_pin_pages(e->access, BASE_IOVA, PS, &page, NULL, 0));
	iopt_access_unpin_pages(e->access, BASE_IOVA, PS);
	if (page != buf)
		bench_die("pin result", -EINVAL);
	time_rounds(fns, 2, e, ns);
	bench_report("pin+unpin 4 KiB, domain-held (ns/op)", ns[0], ns[1], "ns");
	BENCH_CHECK(iopt_ioas_unmap(e->ioas, BASE_IOVA, 16 * PS, NULL));
	munmap(buf, 16 * PS);
}

/* An rw and the memcpy of the same bytes between the same buffers. */
struct copy_case {
	struct iopt_access *access;
	void *dst;
	const void *guest;	/* mapped at BASE_IOVA */
	uint64_t len;
	unsigned int n;
};

static double time_rw(const void *arg)
{
	const struct copy_case *c = arg;
	uint64_t t0 = bench_now_ns();
	unsigned int i;

	for (i = 0; i != c->n; i++)
		BENCH_CHECK(iopt_access_rw(c->access, BASE_IOVA, c->dst, c->len, 0,
				     NULL));
	return (double)(bench_now_ns() - t0) / c->n;
}

static double time_memcpy(const void *arg)
{
	const struct copy_case *c = arg;
	uint64_t t0 = bench_now_ns();
	unsigned int i;

	for (i = 0; i != c->n; i++) {
		memcpy(c->dst, c->guest, c->len);
		bench_keep((uintptr_t)c->dst);
	}
	return (double)(bench_now_ns() - t0) / c->n;
}

/* 2. rw of 64 B and 1 MiB */
static void bench_rw(struct env *e)
{
	void *guest = mem_alloc(BIG), *dst = mem_alloc(BIG);
	struct copy_case c = { e->access, dst, guest, 64, 1000000 };
	static const bench_fn fns[] = { time_rw, time_memcpy };
	double ns[2], speed;

	map_fixed(e, guest, BIG, BASE_IOVA);
	time_rounds(fns, 2, &c, ns);
	bench_report("rw 64 B read (ns/op)", ns[0], ns[1], "ns");

	c.len = BIG;
	c.n = 100;
	speed = time_rounds(fns, 2, &c, ns);
	bench_report("rw 1 MiB read (GB/s)", (double)BIG / ns[0],
		     (double)BIG / ns[1], "GB/s");
	printf("%-44s %12.1f %%  (target >= 80 %%)\n",
	       "rw 1 MiB bandwidth vs memcpy, same rounds", 100.0 * speed);
	BENCH_CHECK(iopt_ioas_unmap(e->ioas, BASE_IOVA, BIG, NULL));
	munmap(guest, BIG);
	munmap(dst, BIG);
}

/* The baseline: a sorted region table and a binary search. */
struct region {
	uint64_t iova;
	uint64_t len;
	char *host;
};

static const struct region *region_find(const struct region *r, size_t n,
					uint64_t iova)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (iova < r[mid].iova)
			hi = mid;
		else if (iova - r[mid].iova >= r[mid].len)
			lo = mid + 1;
		else
			return &r[mid];
	}
	return NULL;
}

static uint64_t rand_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random 8-byte reads at @iovas. */
struct read_case {
	struct env *e;
	const struct region *table;
	unsigned int nareas;
	const uint64_t *iovas;
};

enum read_kind {
	READ_RW,	/* iopt_access_rw() */
	READ_TABLE,	/* the baseline: region_find() and a memcpy */
	READ_BARE,	/* the loads an rw needs, no locks, no checks: the
			 * area lookup, the area, its pages, the host bytes */
};

/* Opaque zero: ANDed with the last value read, it chains the reads. */
static volatile uint64_t chain_zero;

/*
 * NREADS reads of one kind. @chained computes each IOVA from the value the
 * read before returned, so no two reads overlap in the CPU and the figure
 * is the latency of one; unchained, the CPU overlaps as many as its
 * out-of-order window holds.
 */
static inline __attribute__((always_inline)) double
time_read_loop(const struct read_case *c, enum read_kind kind, bool chained)
{
	struct io_pagetable *iopt = &c->e->ioas->iopt;
	uint64_t t0, acc = 0, v = 0, zero = chain_zero;
	unsigned int i;

	if (kind == READ_BARE)
		iopt_rwlock_read(&iopt->iova_rwsem);
	t0 = bench_now_ns();
	for (i = 0; i != NREADS; i++) {
		uint64_t iova = c->iovas[i] + (chained ? v & zero : 0);
		const struct region *r;
		struct iopt_area *area;

		switch (kind) {
		case READ_RW:
			BENCH_CHECK(iopt_access_rw(c->e->access, iova, &v, 8, 0,
					     NULL));
			break;
		case READ_TABLE:
			r = region_find(c->table, c->nareas, iova);
			memcpy(&v, r->host + (iova - r->iova), 8);
			break;
		case READ_BARE:
			area = iopt_area_find(iopt, iova);
			memcpy(&v, (char *)area->pages->uptr +
					   iopt_area_start_byte(area, iova),
			       8);
			break;
		}
		acc += v;
	}
	t0 = bench_now_ns() - t0;
	if (kind == READ_BARE)
		iopt_rwlock_unlock(&iopt->iova_rwsem);
	bench_keep(acc);
	return (double)t0 / NREADS;
}

static double time_reads(const void *arg)
{
	return time_read_loop(arg, READ_RW, false);
}

static double time_table_reads(const void *arg)
{
	return time_read_loop(arg, READ_TABLE, false);
}

static double time_bare_reads(const void *arg)
{
	return time_read_loop(arg, READ_BARE, false);
}

static double time_chained_reads(const void *arg)
{
	return time_read_loop(arg, READ_RW, true);
}

static double time_chained_table_reads(const void *arg)
{
	return time_read_loop(arg, READ_TABLE, true);
}

static double time_chained_bare_reads(const void *arg)
{
	return time_read_loop(arg, READ_BARE, true);
}

/* The IOAS's own area lookup, alone: what every rw starts with. */
static double time_area_lookup(const void *arg)
{
	const struct read_case *c = arg;
	struct io_pagetable *iopt = &c->e->ioas->iopt;
	uint64_t t0, acc = 0;
	unsigned int i;

	iopt_rwlock_read(&iopt->iova_rwsem);
	t0 = bench_now_ns();
	for (i = 0; i != NREADS; i++)
		acc += (uintptr_t)iopt_area_find(iopt, c->iovas[i]);
	t0 = bench_now_ns() - t0;
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	bench_keep(acc);
	return (double)t0 / NREADS;
}

/* 3. random 8-byte reads over @nareas areas */
static void bench_random_reads(struct env *e, unsigned int nareas)
{
	char *mem = mem_alloc((uint64_t)SHARED_PAGES * PS);
	struct region *table = malloc(nareas * sizeof(*table));
	uint64_t *iovas = malloc(NREADS * sizeof(*iovas));
	struct read_case c = { e, table, nareas, iovas };
	static const bench_fn fns[] = { time_reads, time_table_reads,
					time_area_lookup, time_bare_reads };
	static const bench_fn chained[] = { time_chained_reads,
					    time_chained_table_reads,
					    time_chained_bare_reads };
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	double ns[4];
	char what[64];
	unsigned int i;

	if (!table || !iovas)
		bench_die("malloc", -ENOMEM);
	for (i = 0; i != nareas; i++) {
		table[i] = (struct region){
			.iova = BASE_IOVA + (uint64_t)i * AREA_STRIDE,
			.len = PS,
			.host = mem + (uint64_t)(i % SHARED_PAGES) * PS,
		};
		map_fixed(e, table[i].host, PS, table[i].iova);
	}
	for (i = 0; i != NREADS; i++)
		iovas[i] = BASE_IOVA + (rand_next(&seed) % nareas) * AREA_STRIDE +
			   (rand_next(&seed) % (PS / 8)) * 8;

	time_rounds(fns, 4, &c, ns);
	snprintf(what, sizeof(what), "random 8 B read, %u areas (ns/op)",
		 nareas);
	bench_report(what, ns[0], ns[1], "ns");
	printf("%-44s %12.1f ns\n", "  of which the area lookup", ns[2]);
	printf("%-44s %12.1f ns\n", "  its loads alone (lookup, area, pages, host)",
	       ns[3]);
	time_rounds(chained, 3, &c, ns);
	bench_report("  chained, one read at a time (ns/op)", ns[0], ns[1],
		     "ns");
	printf("%-44s %12.1f ns\n", "  its loads alone, chained", ns[2]);

	BENCH_CHECK(iopt_ioas_unmap_all(e->ioas, NULL));
	free(iovas);
	free(table);
	munmap(mem, (uint64_t)SHARED_PAGES * PS);
}

/*
 * 4. What writers pay for lock-free readers: with an access attached, every
 * iova_rwsem write section (a map has two, an unmap of one area three)
 * first excludes readers with an expedited membarrier, unless no thread but
 * the writer's holds a reader slot. The buffer stays mapped at
 * BASE_IOVA, so the map pins already-locked memory and the loop times the
 * IOAS, not mlock.
 */
#define MAP_N 20000u

static double time_map_unmap(struct env *e)
{
	uint64_t t0 = bench_now_ns(), iova = BASE_IOVA + BIG;
	void *buf = iopt_phys_to_host(
		e->domain->ops->iova_to_phys(e->domain, BASE_IOVA));
	unsigned int i;

	for (i = 0; i != MAP_N; i++) {
		map_fixed(e, buf, PS, iova);
		BENCH_CHECK(iopt_ioas_unmap(e->ioas, iova, PS, NULL));
	}
	return (double)(bench_now_ns() - t0) / MAP_N;
}

/* A device thread: one rw (so it holds a reader slot), then it waits. */
struct device_thread {
	pthread_t thread;
	struct iopt_access *access;
	atomic_bool ready;
	atomic_bool stop;
};

static void *device_idle(void *arg)
{
	struct device_thread *d = arg;
	uint64_t v;

	BENCH_CHECK(iopt_access_rw(d->access, BASE_IOVA, &v, sizeof(v), 0,
				   NULL));
	atomic_store(&d->ready, true);
	while (!atomic_load(&d->stop))
		usleep(1000);
	return NULL;
}

static double time_map_attached(struct env *e, bool with_device)
{
	struct device_thread d = { .access = e->access };
	double ns;

	BENCH_CHECK(iopt_access_attach(e->access, e->ioas));
	if (with_device) {
		if (pthread_create(&d.thread, NULL, device_idle, &d))
			bench_die("pthread_create", -EAGAIN);
		while (!atomic_load(&d.ready))
			usleep(1000);
	}
	ns = time_map_unmap(e);
	if (with_device) {
		atomic_store(&d.stop, true);
		pthread_join(d.thread, NULL);
	}
	iopt_access_detach(e->access);
	return ns;
}

static double time_map_device(const void *arg)
{
	return time_map_attached((struct env *)arg, true);
}

static double time_map_alone(const void *arg)
{
	return time_map_attached((struct env *)arg, false);
}

static double time_map_detached(const void *arg)
{
	return time_map_unmap((struct env *)arg);
}

static void bench_map_with_access(struct env *e)
{
	static const bench_fn fns[] = { time_map_detached, time_map_device,
					time_map_alone };
	void *buf = mem_alloc(PS);
	double ns[3];

	map_fixed(e, buf, PS, BASE_IOVA);
	iopt_access_detach(e->access);
	time_rounds(fns, 3, e, ns);
	bench_report("map+unmap 4 KiB, access + device thread", ns[1], ns[0],
		     "ns");
	bench_report("map+unmap 4 KiB, access, no other thread", ns[2], ns[0],
		     "ns");
	printf("  baseline: the same with no access attached\n");
	BENCH_CHECK(iopt_access_attach(e->access, e->ioas));
	BENCH_CHECK(iopt_ioas_unmap(e->ioas, BASE_IOVA, PS, NULL));
	munmap(buf, PS);
}

int main(void)
{
	struct env e;

	env_init(&e);
	printf("bench_access: one access on an IOAS with one simulated "
	       "AMD v1 domain; medians of %u interleaved rounds\n", ROUNDS);
	bench_pin(&e);
	bench_rw(&e);
	bench_random_reads(&e, 1000);
	bench_random_reads(&e, NAREAS);
	bench_map_with_access(&e);
	env_fini(&e);
	return 0;
}
