// SPDX-License-Identifier: MIT
/*
 * bench_pages.c - what iopt_pages costs on top of what it drives.
 *
 * 1. Fill + unfill of one area of BENCH_MIB MiB (4 KiB pages, MADV_NOHUGEPAGE)
 *    into one simulated domain, with the default batch memory and with the
 *    minimum (one run per batch). Baseline: the floor under pages.c, i.e.
 *    the registry pinning and unpinning the range as one run plus the
 *    simulator mapping and unmapping the same frames in one call.
 * 2. One-page access add + remove over memory a domain already pins (the
 *    store tier: no new pin). Baseline: the registry pin + unpin of that one
 *    already-pinned page.
 * 3. The pin store: dense insert / load / clear of 2^20 entries, and its
 *    bytes per entry. Baseline: a flat uint64_t array. The heap is kept
 *    untrimmed (mallopt) so that both sides run on faulted-in memory.
 *
 * Run the release preset: cmake --build --preset release && build/release/bench/bench_pages
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/ctx.h>
#include <iopt/sim.h>

#include "bench_common.h"
#include "ctx.h"
#include "domain.h"
#include "io_pagetable.h"
#include "pages.h"
#include "pfn_store.h"
#include "pin.h"

#define BENCH_MIB 256
#define PS IOPT_PAGE_SIZE
#define STORE_N (UINT64_C(1) << 20)

struct bench {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *domain;
	struct io_pagetable iopt;
	char *buf;
	uint64_t npages;
};

static void bench_init(struct bench *b)
{
	struct iopt_sim_domain_config cfg = { .no_journal = true };
	int rc;

	memset(b, 0, sizeof(*b));
	b->npages = (uint64_t)BENCH_MIB << 20 >> 12;
	b->buf = mmap(NULL, b->npages * PS, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->buf == MAP_FAILED)
		bench_die("mmap", -errno);
	madvise(b->buf, b->npages * PS, MADV_NOHUGEPAGE);
	memset(b->buf, 1, b->npages * PS);
	rc = iopt_ctx_alloc(NULL, &b->ctx);
	if (rc)
		bench_die("iopt_ctx_alloc", rc);
	rc = iopt_sim_iommu_alloc(NULL, &b->iommu);
	if (rc)
		bench_die("iopt_sim_iommu_alloc", rc);
	rc = iopt_sim_domain_alloc(b->iommu, &cfg, &b->domain);
	if (rc)
		bench_die("iopt_sim_domain_alloc", rc);
	iopt_rwlock_init(&b->iopt.domains_rwsem, IOPT_LOCK_DOMAINS);
	iopt_rwlock_init(&b->iopt.iova_rwsem, IOPT_LOCK_IOVA);
	b->iopt.domains = &b->domain;
	b->iopt.ndomains = 1;
}

static void bench_destroy(struct bench *b)
{
	b->domain->ops->free(b->domain);
	iopt_sim_iommu_destroy(b->iommu);
	iopt_rwlock_destroy(&b->iopt.domains_rwsem);
	iopt_rwlock_destroy(&b->iopt.iova_rwsem);
	iopt_ctx_destroy(b->ctx);
	munmap(b->buf, b->npages * PS);
}

static void area_init(struct iopt_area *area, struct bench *b,
		      struct iopt_pages *pages)
{
	memset(area, 0, sizeof(*area));
	area->node.start = UINT64_C(1) << 32;
	area->node.last = area->node.start + b->npages * PS - 1;
	area->pages_node.last = b->npages - 1;
	area->iopt = &b->iopt;
	area->pages = pages;
	area->iommu_prot = IOPT_PROT_READ | IOPT_PROT_WRITE;
}

/* ns for one fill + unfill of the whole buffer through pages.c. */
static double time_fill_unfill(struct bench *b, struct iopt_area *area)
{
	uint64_t t0 = bench_now_ns();
	int rc;

	iopt_rwlock_read(&b->iopt.domains_rwsem);
	rc = iopt_area_fill_domains(area, area->pages);
	if (rc)
		bench_die("iopt_area_fill_domains", rc);
	iopt_area_unfill_domains(area, area->pages);
	iopt_rwlock_unlock(&b->iopt.domains_rwsem);
	return (double)(bench_now_ns() - t0);
}

/* ns for the floor: registry pin/unpin as one run, sim map/unmap in one call. */
static double time_floor(struct bench *b)
{
	uint64_t len = b->npages * PS, t0 = bench_now_ns(), frame;
	int rc;

	rc = iopt_pin_range(b->ctx, (uintptr_t)b->buf, b->npages, true, NULL);
	if (rc)
		bench_die("iopt_pin_range", rc);
	rc = iopt_pin_lookup((uintptr_t)b->buf, 1, &frame);
	if (rc)
		bench_die("iopt_pin_lookup", rc);
	rc = iopt_domain_map(b->domain, UINT64_C(1) << 32, frame << 12, len,
			     IOPT_PROT_READ | IOPT_PROT_WRITE);
	if (rc)
		bench_die("iopt_domain_map", rc);
	iopt_domain_unmap_sync(b->domain, UINT64_C(1) << 32, len);
	iopt_unpin_range(b->ctx, (uintptr_t)b->buf, b->npages);
	return (double)(bench_now_ns() - t0);
}

static void bench_fill(struct bench *b)
{
	struct iopt_pages *pages;
	struct iopt_area area;
	double floor_ns = 1e30, def_ns = 1e30, tiny_ns = 1e30;
	int rc, i;

	rc = iopt_alloc_user_pages(b->ctx, b->buf, b->npages * PS, true, &pages);
	if (rc)
		bench_die("iopt_alloc_user_pages", rc);
	area_init(&area, b, pages);
	for (i = 0; i != 5; i++) {
		floor_ns = IOPT_MIN(floor_ns, time_floor(b));
		def_ns = IOPT_MIN(def_ns, time_fill_unfill(b, &area));
		iopt_set_temp_memory_limit(1);
		tiny_ns = IOPT_MIN(tiny_ns, time_fill_unfill(b, &area));
		iopt_set_temp_memory_limit(0);
	}
	printf("fill+unfill of %d MiB, 4 KiB pages, one sim domain (best of 5):\n",
	       BENCH_MIB);
	bench_report("  pages.c, default batches (ms)", def_ns / 1e6, floor_ns / 1e6, "ms");
	bench_report("  pages.c, one-run batches (ms)", tiny_ns / 1e6, floor_ns / 1e6, "ms");
	iopt_put_pages(pages);
}

static void bench_access(struct bench *b)
{
	enum { ROUNDS = 200000 };
	struct iopt_pages *pages;
	struct iopt_area area;
	uint64_t t0, i, frame;
	double ours, base;
	int rc;

	rc = iopt_alloc_user_pages(b->ctx, b->buf, b->npages * PS, true, &pages);
	if (rc)
		bench_die("iopt_alloc_user_pages", rc);
	area_init(&area, b, pages);
	iopt_rwlock_read(&b->iopt.domains_rwsem);
	rc = iopt_area_fill_domains(&area, pages);
	if (rc)
		bench_die("iopt_area_fill_domains", rc);
	t0 = bench_now_ns();
	for (i = 0; i != ROUNDS; i++) {
		uint64_t index = (i * 7919) % b->npages;

		rc = iopt_area_add_access(&area, index, index, NULL, &frame, 0, false);
		if (rc)
			bench_die("iopt_area_add_access", rc);
		iopt_area_remove_access(&area, index, index, false);
	}
	ours = (double)(bench_now_ns() - t0) / ROUNDS;
	t0 = bench_now_ns();
	for (i = 0; i != ROUNDS; i++) {
		uintptr_t host = (uintptr_t)b->buf + ((i * 7919) % b->npages) * PS;

		rc = iopt_pin_range(b->ctx, host, 1, true, &frame);
		if (rc)
			bench_die("iopt_pin_range", rc);
		iopt_unpin_range(b->ctx, host, 1);
	}
	base = (double)(bench_now_ns() - t0) / ROUNDS;
	bench_report("one-page access add+remove, domain-pinned (ns)", ours, base, "ns");
	iopt_area_unfill_domains(&area, pages);
	iopt_rwlock_unlock(&b->iopt.domains_rwsem);
	iopt_put_pages(pages);
}

static void bench_store(void)
{
	uint64_t *frames = malloc(STORE_N * sizeof(*frames));
	uint64_t *flat = malloc(STORE_N * sizeof(*flat));
	struct iopt_pfn_store s;
	uint64_t t0, i, f, sum = 0;
	double ins, load, clear, flat_ins, flat_load;

	if (!frames || !flat)
		bench_die("malloc", -ENOMEM);
	for (i = 0; i != STORE_N; i++)
		frames[i] = i * 3 + 1;
	iopt_pfn_store_init(&s);
	/* A first round faults the heap in, as the baseline's memset does. */
	for (i = 0; i != STORE_N; i += 512)
		if (iopt_pfn_store_insert(&s, i, 512, frames + i))
			bench_die("iopt_pfn_store_insert", -ENOMEM);
	iopt_pfn_store_clear(&s, 0, STORE_N - 1);
	t0 = bench_now_ns();
	for (i = 0; i != STORE_N; i += 512)
		if (iopt_pfn_store_insert(&s, i, 512, frames + i))
			bench_die("iopt_pfn_store_insert", -ENOMEM);
	ins = (double)(bench_now_ns() - t0) / STORE_N;
	t0 = bench_now_ns();
	for (i = 0; i != STORE_N; i++) {
		iopt_pfn_store_load(&s, (i * 7919) % STORE_N, &f);
		sum += f;
	}
	load = (double)(bench_now_ns() - t0) / STORE_N;
	printf("pin store, %llu dense entries: %.2f bytes/entry\n",
	       (unsigned long long)STORE_N,
	       (double)iopt_pfn_store_bytes(&s) / STORE_N);
	t0 = bench_now_ns();
	iopt_pfn_store_clear(&s, 0, STORE_N - 1);
	clear = (double)(bench_now_ns() - t0) / STORE_N;

	memset(flat, 0, STORE_N * sizeof(*flat));	/* fault it in first */
	bench_keep((uint64_t)(uintptr_t)flat);
	t0 = bench_now_ns();
	memcpy(flat, frames, STORE_N * sizeof(*flat));
	flat_ins = (double)(bench_now_ns() - t0) / STORE_N;
	t0 = bench_now_ns();
	for (i = 0; i != STORE_N; i++)
		sum += flat[(i * 7919) % STORE_N];
	flat_load = (double)(bench_now_ns() - t0) / STORE_N;
	bench_keep(sum);
	bench_report("  insert, runs of 512 (ns/entry)", ins, flat_ins, "ns");
	bench_report("  random load (ns/entry)", load, flat_load, "ns");
	bench_report("  clear (ns/entry)", clear, flat_ins, "ns");
	iopt_pfn_store_destroy(&s);
	free(frames);
	free(flat);
}

int main(void)
{
	struct bench b;

	/*
	 * Keep freed heap mapped: otherwise glibc trims it and every round
	 * pays first-touch page faults, which is the VM's cost, not ours.
	 */
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	bench_init(&b);
	bench_fill(&b);
	bench_access(&b);
	bench_destroy(&b);
	bench_store();
	return 0;
}
