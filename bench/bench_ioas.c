// SPDX-License-Identifier: MIT
/*
 * bench_ioas.c - what the IOAS costs, each figure next to a floor or baseline
 * measured in the same run (issue 6, "Figures").
 *
 *  1. Map + unmap of a 1 GiB buffer backed by 4 KiB pages (MADV_NOHUGEPAGE,
 *     faulted in first) into an IOAS with one simulated domain. Floor: one raw
 *     mlock + munlock of the buffer plus the simulator's own map + unmap of the
 *     frames the registry gives, one iopt_domain_map() per contiguous run.
 *     Target: within 1.3x of the floor.
 *  2. 10^5 and 10^6 areas of 4 KiB in an IOAS with no domain: map them all,
 *     find the area of 10^6 random IOVAs the way the library does
 *     (iopt_area_find() under iova_rwsem), unmap them one by one.
 *     Targets: <= 1 us per map and per unmap, <= 250 ns per lookup at 10^6
 *     areas, <= 256 bytes of heap per area (mallinfo2 delta: everything the
 *     library allocates for an area, malloc's own headers included).
 *     The maps run twice: first into a heap that must grow (every new heap
 *     page is a page fault, microseconds on a VM), then into the heap the
 *     first round freed, which is the library's own cost.
 *     Baselines: inserting and removing the same intervals in a bare
 *     interval tree with preallocated nodes (the floor under any map); the
 *     first touch of as many fresh bytes as the areas took (the floor under
 *     the first round); a binary search over a sorted array for lookups.
 *  3. Attach of a second domain to the IOAS of (1) with 1 GiB mapped, and its
 *     detach; the pin counters must not move (the frames come from the first
 *     domain). Baseline: the simulator's own map + unmap of those frames.
 *
 * Needs RLIMIT_MEMLOCK >= 1 GiB or CAP_IPC_LOCK (root). Build the release
 * preset: cmake --preset release && cmake --build --preset release -j2 &&
 * build/release/bench/bench_ioas
 */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/sim.h>

#include "bench_common.h"
#include "bench_sim_env.h"
#include "domain.h"
#include "interval_tree.h"
#include "io_pagetable.h"
#include "pages.h"
#include "pin.h"

#define PS		UINT64_C(4096)
#define GIB		(UINT64_C(1) << 30)
#define BIG_IOVA	(UINT64_C(1) << 40)
#define AREA_IOVA	(UINT64_C(1) << 32)
#define AREA_STRIDE	(2 * PS)	/* a hole after every area */
#define AREA_MEM_PAGES	256u		/* the areas cycle over this memory */
#define NLOOKUPS	1000000u
#define ROUNDS		3
#define PROT_RW		(IOPT_PROT_READ | IOPT_PROT_WRITE)
#define MAP_RW		(IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE | \
			 IOPT_IOAS_MAP_FIXED_IOVA)

struct env {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *dom[2];
	char *buf;			/* the 1 GiB buffer */
	uint64_t *pfns;			/* its frames, as the registry gives them */
};

static void *mem_alloc(uint64_t len, int advice)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap", -errno);
	if (advice >= 0 && madvise(p, len, advice))
		bench_die("madvise", -errno);
	memset(p, 0x5a, len);
	return p;
}

static uint64_t heap_bytes(void)
{
	return mallinfo2().uordblks;
}

static double min_d(double a, double b)
{
	return a < b ? a : b;
}

/* A context that never refuses a charge; two simulated AMD v1 domains. */
static void env_init(struct env *e)
{
	bench_sim_env_init(&e->ctx, &e->iommu, e->dom, 2);
	e->buf = mem_alloc(GIB, MADV_NOHUGEPAGE);
	e->pfns = malloc(GIB / PS * sizeof(*e->pfns));
	if (!e->pfns)
		bench_die("malloc", -ENOMEM);
}

static void env_fini(struct env *e)
{
	bench_sim_env_fini(e->ctx, e->iommu, e->dom, 2);
	munmap(e->buf, GIB);
	free(e->pfns);
}

/* ---- 1. map + unmap of 1 GiB with one domain ---- */

static double time_mlock_munlock(struct env *e)
{
	uint64_t t0 = bench_now_ns();

	/* The raw calls, as the registry makes them (sanitizers stub mlock). */
	if (syscall(SYS_mlock, e->buf, GIB))
		bench_die("mlock (raise RLIMIT_MEMLOCK or run as root)", -errno);
	syscall(SYS_munlock, e->buf, GIB);
	return (double)(bench_now_ns() - t0);
}

/* The simulator's map of e->pfns at @iova, one call per run of frames. */
static void sim_map_runs(struct env *e, struct iopt_domain *d, uint64_t iova)
{
	uint64_t n = GIB / PS, i = 0, j;

	while (i < n) {
		for (j = i + 1; j < n && e->pfns[j] == e->pfns[j - 1] + 1; j++)
			;
		BENCH_CHECK(iopt_domain_map(d, iova + i * PS, e->pfns[i] * PS,
				      (j - i) * PS, PROT_RW));
		i = j;
	}
}

/*
 * The simulator's map + unmap of the buffer's frames, held pinned meanwhile
 * (outside the timing) so that they are the frames the library would use.
 * @runs receives the number of iopt_domain_map() calls.
 */
static double time_sim_map_unmap(struct env *e, struct iopt_domain *d,
				 uint64_t *runs)
{
	uint64_t t0, t, i;

	BENCH_CHECK(iopt_pin_range(e->ctx, (uintptr_t)e->buf, GIB / PS, true,
			     e->pfns));
	for (*runs = 1, i = 1; i < GIB / PS; i++)
		*runs += e->pfns[i] != e->pfns[i - 1] + 1;
	t0 = bench_now_ns();
	sim_map_runs(e, d, BIG_IOVA);
	if (iopt_domain_unmap_sync(d, BIG_IOVA, GIB) != GIB)
		bench_die("iopt_domain_unmap_sync", -EIO);
	t = bench_now_ns() - t0;
	iopt_unpin_range(e->ctx, (uintptr_t)e->buf, GIB / PS);
	return (double)t;
}

static void bench_big_map(struct env *e, struct iopt_ioas *ioas)
{
	double map = 1e30, unmap = 1e30, total = 1e30, mlk = 1e30, sim = 1e30;
	uint64_t iova, runs = 0, t0, t1, t2, done;
	int r;

	for (r = 0; r != ROUNDS; r++) {
		mlk = min_d(mlk, time_mlock_munlock(e));
		sim = min_d(sim, time_sim_map_unmap(e, e->dom[1], &runs));
		iova = BIG_IOVA;
		t0 = bench_now_ns();
		BENCH_CHECK(iopt_ioas_map(ioas, e->buf, GIB, &iova, MAP_RW));
		t1 = bench_now_ns();
		BENCH_CHECK(iopt_ioas_unmap(ioas, BIG_IOVA, GIB, &done));
		t2 = bench_now_ns();
		if (done != GIB)
			bench_die("unmap length", -EIO);
		map = min_d(map, (double)(t1 - t0));
		unmap = min_d(unmap, (double)(t2 - t1));
		total = min_d(total, (double)(t2 - t0));
	}
	printf("1. map + unmap of 1 GiB, 4 KiB pages, one sim domain (best of %d; %llu frame runs)\n",
	       ROUNDS, (unsigned long long)runs);
	printf("   floor: raw mlock+munlock %.1f ms + sim map+unmap %.1f ms\n",
	       mlk / 1e6, sim / 1e6);
	bench_report("   map+unmap vs floor (ms), target 1.3x", total / 1e6,
		     (mlk + sim) / 1e6, "ms");
	printf("   of which map %.1f ms, unmap %.1f ms\n", map / 1e6,
	       unmap / 1e6);
}

/* ---- 2. many 4 KiB areas, no domain ---- */

static uint64_t rand_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t area_iova(uint64_t i)
{
	return AREA_IOVA + i * AREA_STRIDE;
}

/* Random IOVAs inside areas (7/8) or in the holes between them (1/8). */
static uint64_t *random_iovas(unsigned int nareas)
{
	uint64_t *iovas = malloc(NLOOKUPS * sizeof(*iovas)), seed = 0x2545f491;
	unsigned int i;

	if (!iovas)
		bench_die("malloc", -ENOMEM);
	for (i = 0; i != NLOOKUPS; i++) {
		uint64_t r = rand_next(&seed);
		uint64_t hole = rand_next(&seed) % 8 ? 0 : PS;

		iovas[i] = area_iova(r % nareas) + hole + (r >> 40) % PS;
	}
	return iovas;
}

static double time_lookups(struct iopt_ioas *ioas, const uint64_t *iovas,
			   uint64_t *found)
{
	struct io_pagetable *iopt = &ioas->iopt;
	uint64_t t0, hits = 0;
	unsigned int i;

	iopt_rwlock_read(&iopt->iova_rwsem);
	t0 = bench_now_ns();
	for (i = 0; i != NLOOKUPS; i++)
		hits += iopt_area_find(iopt, iovas[i]) != NULL;
	t0 = bench_now_ns() - t0;
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	*found = hits;
	return (double)t0 / NLOOKUPS;
}

/* Binary search over the sorted area starts: the lookup baseline. */
static double time_bsearch(unsigned int nareas, const uint64_t *iovas,
			   uint64_t expect)
{
	uint64_t *starts = malloc(nareas * sizeof(*starts)), t0, hits = 0;
	unsigned int i;

	if (!starts)
		bench_die("malloc", -ENOMEM);
	for (i = 0; i != nareas; i++)
		starts[i] = area_iova(i);
	t0 = bench_now_ns();
	for (i = 0; i != NLOOKUPS; i++) {
		size_t lo = 0, hi = nareas;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (iovas[i] < starts[mid])
				hi = mid;
			else if (iovas[i] - starts[mid] >= PS)
				lo = mid + 1;
			else {
				hits++;
				break;
			}
		}
	}
	t0 = bench_now_ns() - t0;
	free(starts);
	if (hits != expect)
		bench_die("baseline lookup disagrees with the IOAS", -EIO);
	return (double)t0 / NLOOKUPS;
}

/* Inserting and removing the same intervals in a bare tree: the map floor. */
static void time_bare_tree(unsigned int nareas, double *ins, double *rem)
{
	struct iopt_itree_node *nodes = calloc(nareas, sizeof(*nodes));
	struct iopt_itree_root root = { 0 };
	uint64_t t0, t1;
	unsigned int i;

	if (!nodes)
		bench_die("calloc", -ENOMEM);
	for (i = 0; i != nareas; i++) {
		nodes[i].start = area_iova(i);
		nodes[i].last = area_iova(i) + PS - 1;
	}
	t0 = bench_now_ns();
	for (i = 0; i != nareas; i++)
		iopt_itree_insert(&nodes[i], &root);
	t1 = bench_now_ns();
	for (i = 0; i != nareas; i++)
		iopt_itree_remove(&nodes[i], &root);
	*ins = (double)(t1 - t0) / nareas;
	*rem = (double)(bench_now_ns() - t1) / nareas;
	free(nodes);
}

/*
 * First touch of @bytes of fresh anonymous memory: what growing the heap by
 * that much costs in page faults, whoever allocates it (on this VM a fault
 * costs microseconds, so it is a floor of its own for a first map of many
 * areas).
 */
static double time_first_touch(uint64_t bytes)
{
	uint64_t t0, len = IOPT_ALIGN_UP(bytes, PS);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap", -errno);
	madvise(p, len, MADV_NOHUGEPAGE);	/* as the brk heap grows */
	t0 = bench_now_ns();
	memset(p, 1, len);
	t0 = bench_now_ns() - t0;
	munmap(p, len);
	return (double)t0;
}

/* Maps @nareas areas of 4 KiB. Return: ns. */
static double map_areas(struct iopt_ioas *ioas, char *mem, unsigned int nareas)
{
	uint64_t t0 = bench_now_ns(), iova;
	unsigned int i;

	for (i = 0; i != nareas; i++) {
		iova = area_iova(i);
		BENCH_CHECK(iopt_ioas_map(ioas, mem + (i % AREA_MEM_PAGES) * PS, PS,
				    &iova, MAP_RW));
	}
	return (double)(bench_now_ns() - t0);
}

/* Unmaps them one by one. Return: ns. */
static double unmap_areas(struct iopt_ioas *ioas, unsigned int nareas)
{
	uint64_t t0 = bench_now_ns(), done;
	unsigned int i;

	for (i = 0; i != nareas; i++) {
		BENCH_CHECK(iopt_ioas_unmap(ioas, area_iova(i), PS, &done));
		if (done != PS)
			bench_die("unmap length", -EIO);
	}
	return (double)(bench_now_ns() - t0);
}

/*
 * Two rounds: the first map grows the heap (page faults), the second reuses
 * the freed heap (M_TRIM_THRESHOLD keeps it), which is the library's own cost.
 */
static void bench_areas(struct env *e, unsigned int nareas)
{
	char *mem = mem_alloc(AREA_MEM_PAGES * PS, -1);
	uint64_t *iovas = random_iovas(nareas), heap0, heap1, found;
	double cold, warm, unmap, look, base_look, base_ins, base_rem, touch;
	struct iopt_ioas *ioas;

	BENCH_CHECK(iopt_ioas_alloc(e->ctx, &ioas));
	heap0 = heap_bytes();
	cold = map_areas(ioas, mem, nareas);
	heap1 = heap_bytes();
	look = time_lookups(ioas, iovas, &found);
	base_look = time_bsearch(nareas, iovas, found);
	unmap = unmap_areas(ioas, nareas);
	warm = map_areas(ioas, mem, nareas);
	unmap = min_d(unmap, unmap_areas(ioas, nareas));
	time_bare_tree(nareas, &base_ins, &base_rem);
	touch = time_first_touch(heap1 - heap0);

	printf("2. %u areas of 4 KiB, no domain (%.1f%% of lookups hit an area)\n",
	       nareas, 100.0 * (double)found / NLOOKUPS);
	bench_report("   map, warm heap (ns/area), target 1000", warm / nareas,
		     base_ins, "ns");
	bench_report("   map, first (ns/area) vs heap first touch",
		     cold / nareas, touch / nareas, "ns");
	bench_report("   unmap (ns/area), target 1000", unmap / nareas,
		     base_rem, "ns");
	bench_report("   random lookup (ns), target 250", look, base_look, "ns");
	printf("   heap per area: %.1f bytes (target 256; struct iopt_area %zu, struct iopt_pages %zu)\n",
	       (double)(heap1 - heap0) / nareas, sizeof(struct iopt_area),
	       sizeof(struct iopt_pages));
	BENCH_CHECK(iopt_ioas_destroy(ioas));
	free(iovas);
	munmap(mem, AREA_MEM_PAGES * PS);
}

/* ---- 3. attach of a second domain to 1 GiB mapped ---- */

static bool pins_equal(const struct iopt_ctx_stats *a,
		       const struct iopt_ctx_stats *b)
{
	return a->pages_pinned == b->pages_pinned &&
	       a->pages_charged == b->pages_charged &&
	       a->registry_pages == b->registry_pages &&
	       a->registry_locked_pages == b->registry_locked_pages &&
	       a->registry_runs == b->registry_runs;
}

static void bench_attach(struct env *e, struct iopt_ioas *ioas)
{
	double att = 1e30, det = 1e30, sim = 1e30;
	struct iopt_ctx_stats before, after;
	uint64_t iova = BIG_IOVA, t0, t1, t2, runs;
	bool same = true;
	int r;

	BENCH_CHECK(iopt_ioas_map(ioas, e->buf, GIB, &iova, MAP_RW));
	for (r = 0; r != ROUNDS; r++) {
		iopt_ctx_read_stats(e->ctx, &before);
		t0 = bench_now_ns();
		BENCH_CHECK(iopt_ioas_attach_domain(ioas, e->dom[1]));
		t1 = bench_now_ns();
		iopt_ctx_read_stats(e->ctx, &after);
		same &= pins_equal(&before, &after);
		iopt_ioas_detach_domain(ioas, e->dom[1]);
		t2 = bench_now_ns();
		iopt_ctx_read_stats(e->ctx, &after);
		same &= pins_equal(&before, &after);
		att = min_d(att, (double)(t1 - t0));
		det = min_d(det, (double)(t2 - t1));
	}
	/* The baseline pins the frames itself: do it with the IOAS empty. */
	BENCH_CHECK(iopt_ioas_unmap(ioas, BIG_IOVA, GIB, NULL));
	for (r = 0; r != ROUNDS; r++)
		sim = min_d(sim, time_sim_map_unmap(e, e->dom[1], &runs));

	printf("3. attach + detach of a second sim domain, 1 GiB mapped (best of %d)\n",
	       ROUNDS);
	bench_report("   attach+detach vs sim map+unmap (ms)",
		     (att + det) / 1e6, sim / 1e6, "ms");
	printf("   of which attach %.1f ms, detach %.1f ms; pins and charge unchanged: %s (%llu pages pinned)\n",
	       att / 1e6, det / 1e6, same ? "yes" : "NO",
	       (unsigned long long)before.pages_pinned);
	if (!same)
		bench_die("attach pinned again", -EIO);
}

int main(void)
{
	struct iopt_ioas *ioas;
	struct env e;

	/*
	 * Keep freed heap mapped: otherwise glibc trims it and every round
	 * pays first-touch page faults, which is the VM's cost, not ours.
	 */
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	env_init(&e);
	BENCH_CHECK(iopt_ioas_alloc(e.ctx, &ioas));
	BENCH_CHECK(iopt_ioas_attach_domain(ioas, e.dom[0]));
	bench_big_map(&e, ioas);
	bench_attach(&e, ioas);
	iopt_ioas_detach_domain(ioas, e.dom[0]);
	BENCH_CHECK(iopt_ioas_destroy(ioas));
	bench_areas(&e, 100000);
	bench_areas(&e, 1000000);
	env_fini(&e);
	return 0;
}
