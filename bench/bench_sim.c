/* SPDX-License-Identifier: MIT */
/*
 * bench_sim.c - the simulated IOMMU's costs, with baselines from the same run.
 *
 * 1. map then unmap through the domain ops (map_pages / unmap_pages, the
 *    journal off as in the "fast" mode of pagetable-formats.md §4.3) of
 *    1 x 4K, 256 x 4K and 256 x 2M, per format (the 2 KiB-granule AMD
 *    variant in its native 2K and 1M sizes): one warm-up round so table
 *    allocation is not timed, then 10,000 rounds, average and minimum ns per
 *    call. The gather sync after each unmap is not timed (it scans the
 *    IOTLB, a simulator cost, not a page-table one). VA differs from PA so
 *    pages cannot merge into larger leaves. Baseline: a naive 4-level radix
 *    table in this file (descend once, no atomics, no metadata), the floor
 *    of §4.3.
 * 2. DMA read of IOPT_BENCH_DMA_MIB (default 1024) MiB through 4K and
 *    through 2M mappings, in GB/s, next to a plain memcpy of the same bytes
 *    in the same chunks.
 * 3. Table bytes per GiB mapped with 4K and with 2M leaves.
 * Run the release build: build/release/bench/bench_sim.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/ctx.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "bench_common.h"
#include "domain.h"
#include "pin.h"
#include "util.h"

#define SZ_4K		(UINT64_C(1) << 12)
#define SZ_2M		(UINT64_C(1) << 21)
#define SZ_1G		(UINT64_C(1) << 30)
#define ROUNDS		10000
#define RW		(IOPT_PROT_READ | IOPT_PROT_WRITE)
#define BENCH_IOVA	(UINT64_C(1) << 36)
#define BENCH_PA	(UINT64_C(1) << 40)
#define DMA_CHUNK	(UINT64_C(1) << 20)

/* Per-call samples: average, minimum and median (robust on a busy host). */
struct timing {
	uint64_t sum;
	uint64_t min;
	unsigned int n;
	uint64_t samples[ROUNDS];
};

static void timing_add(struct timing *t, uint64_t ns)
{
	t->sum += ns;
	if (!t->n || ns < t->min)
		t->min = ns;
	t->samples[t->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t timing_median(struct timing *t)
{
	qsort(t->samples, t->n, sizeof(t->samples[0]), cmp_u64);
	return t->samples[t->n / 2];
}

static struct timing *timing_new(void)
{
	struct timing *t = calloc(1, sizeof(*t));

	if (!t)
		abort();
	return t;
}

/* ---- the naive baseline: 4 levels, 9 bits each, plain stores ---- */

struct naive {
	uint64_t *root;
};

static uint64_t *naive_table(void)
{
	uint64_t *t = aligned_alloc(4096, 4096);

	if (!t)
		abort();
	memset(t, 0, 4096);
	return t;
}

static uint64_t *naive_descend(uint64_t *t, uint64_t iova, unsigned int level)
{
	uint64_t *slot = &t[(iova >> (12 + 9 * level)) & 511];

	if (!*slot)
		*slot = (uint64_t)(uintptr_t)naive_table() | 1;
	return (uint64_t *)(uintptr_t)(*slot & ~UINT64_C(0xFFF));
}

static void naive_map(struct naive *n, uint64_t iova, uint64_t pa,
		      unsigned int leaf_level, uint64_t count)
{
	uint64_t size = UINT64_C(1) << (12 + 9 * leaf_level);

	while (count) {
		uint64_t *t = n->root;
		unsigned int level, idx;

		for (level = 3; level > leaf_level; level--)
			t = naive_descend(t, iova, level);
		/* Keep the place: fill the rest of this table in one go. */
		for (idx = (iova >> (12 + 9 * leaf_level)) & 511; idx < 512 && count;
		     idx++, count--, iova += size, pa += size)
			t[idx] = pa | 3;
	}
}

static void naive_unmap(struct naive *n, uint64_t iova, unsigned int leaf_level,
			uint64_t count)
{
	uint64_t size = UINT64_C(1) << (12 + 9 * leaf_level);

	while (count) {
		uint64_t *t = n->root;
		unsigned int level, idx;

		for (level = 3; level > leaf_level; level--)
			t = (uint64_t *)(uintptr_t)(t[(iova >> (12 + 9 * level)) & 511] &
						    ~UINT64_C(0xFFF));
		for (idx = (iova >> (12 + 9 * leaf_level)) & 511; idx < 512 && count;
		     idx++, count--, iova += size)
			t[idx] = 0;
	}
}

static void naive_free(uint64_t *t, unsigned int level)
{
	unsigned int i;

	for (i = 0; level && i < 512; i++)
		if (t[i])
			naive_free((uint64_t *)(uintptr_t)(t[i] & ~UINT64_C(0xFFF)),
				   level - 1);
	free(t);
}

/* ---- map/unmap timing ---- */

/*
 * A case is @count leaves of one native size of the format: its granule
 * (@level 0) or the level-1 size, so the 2 KiB-granule AMD variant runs
 * 2K and 1M leaves where the others run 4K and 2M.
 */
struct bench_case {
	uint64_t count;
	unsigned int level;
};

static const struct bench_case cases[] = {
	{ 1, 0 },
	{ 256, 0 },
	{ 256, 1 },
};

static uint64_t case_pgsize(const struct bench_case *c, uint64_t granule)
{
	return granule << (9 * c->level);
}

static void time_sim(struct iopt_domain *d, const struct bench_case *c,
		     struct timing *map, struct timing *unmap)
{
	uint64_t pgsize = case_pgsize(c, d->pgsize_bitmap & -d->pgsize_bitmap);
	/* PA one leaf off the IOVA: pages cannot merge into larger leaves. */
	uint64_t pa = BENCH_PA + pgsize;
	struct iopt_iotlb_gather g;
	int round;

	for (round = -1; round < ROUNDS; round++) {
		uint64_t mapped = 0, t0, t1, t2, done;

		iopt_iotlb_gather_init(&g);
		t0 = bench_now_ns();
		if (d->ops->map_pages(d, BENCH_IOVA, pa, pgsize, c->count, RW,
				      &mapped))
			abort();
		t1 = bench_now_ns();
		done = d->ops->unmap_pages(d, BENCH_IOVA, pgsize, c->count, &g);
		t2 = bench_now_ns();
		if (done != pgsize * c->count)
			abort();
		d->ops->iotlb_sync(d, &g);
		if (round >= 0) {
			timing_add(map, t1 - t0);
			timing_add(unmap, t2 - t1);
		}
	}
}

static void time_naive(const struct bench_case *c, struct timing *map,
		       struct timing *unmap)
{
	struct naive n = { .root = naive_table() };
	int round;

	for (round = -1; round < ROUNDS; round++) {
		uint64_t t0, t1, t2;

		t0 = bench_now_ns();
		naive_map(&n, BENCH_IOVA, BENCH_PA + case_pgsize(c, SZ_4K), c->level,
			  c->count);
		t1 = bench_now_ns();
		naive_unmap(&n, BENCH_IOVA, c->level, c->count);
		t2 = bench_now_ns();
		if (round >= 0) {
			timing_add(map, t1 - t0);
			timing_add(unmap, t2 - t1);
		}
	}
	bench_keep(n.root[0]);
	naive_free(n.root, 3);
}

static struct iopt_domain *domain_new(struct iopt_sim_iommu *iommu,
				      enum iopt_sim_format fmt, uint64_t mask)
{
	struct iopt_sim_domain_config cfg = {
		.format = fmt, .pgsize_mask = mask, .no_journal = true,
	};
	struct iopt_domain *d;

	if (iopt_sim_domain_alloc(iommu, &cfg, &d))
		abort();
	return d;
}

/* "256 x 2M": the case in the format's own sizes. */
static void case_name(char *buf, size_t len, const struct bench_case *c,
		      uint64_t granule)
{
	static const char units[] = "KMG";
	uint64_t size = case_pgsize(c, granule) >> 10;
	unsigned int u = 0;

	while (size >= 1024 && u < 2) {
		size >>= 10;
		u++;
	}
	snprintf(buf, len, "%llu x %llu%c", (unsigned long long)c->count,
		 (unsigned long long)size, units[u]);
}

static void report_case(const char *op, const char *fmt, const char *name,
			struct timing *t, struct timing *base)
{
	char what[96];

	snprintf(what, sizeof(what), "%-5s %-11s %-8s [min %4llu med %4llu]", op,
		 fmt, name, (unsigned long long)t->min,
		 (unsigned long long)timing_median(t));
	bench_report(what, (double)t->sum / ROUNDS, (double)base->sum / ROUNDS,
		     "ns");
}

static void bench_map_unmap(struct iopt_sim_iommu *iommu)
{
	static const enum iopt_sim_format fmts[] = {
		IOPT_SIM_FMT_AMDV1, IOPT_SIM_FMT_AMDV1_2K, IOPT_SIM_FMT_VTDSS,
		IOPT_SIM_FMT_ARM_LPAE_S1,
	};
	static const char *const names[] = {
		"amdv1", "amdv1-2k", "vtdss", "arm-lpae-s1",
	};
	struct timing *nm = timing_new(), *nu = timing_new();
	struct timing *m = timing_new(), *u = timing_new();
	char name[48];
	unsigned int f, i;

	printf("# map/unmap: %d rounds after a warm-up; average (min, median) per "
	       "call; baseline = naive radix average (4K granule)\n", ROUNDS);
	for (i = 0; i < IOPT_ARRAY_SIZE(cases); i++) {
		memset(nm, 0, sizeof(*nm));
		memset(nu, 0, sizeof(*nu));
		time_naive(&cases[i], nm, nu);
		for (f = 0; f < IOPT_ARRAY_SIZE(fmts); f++) {
			struct iopt_domain *d = domain_new(iommu, fmts[f], 0);

			memset(m, 0, sizeof(*m));
			memset(u, 0, sizeof(*u));
			time_sim(d, &cases[i], m, u);
			case_name(name, sizeof(name), &cases[i],
				  d->pgsize_bitmap & -d->pgsize_bitmap);
			report_case("map", names[f], name, m, nm);
			report_case("unmap", names[f], name, u, nu);
			d->ops->free(d);
		}
		case_name(name, sizeof(name), &cases[i], SZ_4K);
		printf("# naive baseline %-8s min/median: map %llu/%llu ns, "
		       "unmap %llu/%llu ns\n", name,
		       (unsigned long long)nm->min,
		       (unsigned long long)timing_median(nm),
		       (unsigned long long)nu->min,
		       (unsigned long long)timing_median(nu));
	}
	free(nm);
	free(nu);
	free(m);
	free(u);
}

/* ---- table memory ---- */

/* Tables added by mapping @gib GiB with leaves of @leaf bytes (VT-d, 4 levels). */
static double table_kib_per_gib(struct iopt_sim_iommu *iommu, uint64_t leaf,
				unsigned int gib)
{
	struct iopt_domain *d = domain_new(iommu, IOPT_SIM_FMT_VTDSS, leaf);
	uint32_t before = iopt_sim_domain_nr_tables(d);
	double kib;

	/* PA skewed by one leaf so nothing merges into larger leaves. */
	if (iopt_domain_map(d, BENCH_IOVA, BENCH_PA + leaf, gib * SZ_1G, RW))
		abort();
	kib = (iopt_sim_domain_nr_tables(d) - before) * 4.0 / gib;
	d->ops->free(d);
	return kib;
}

static void bench_table_bytes(struct iopt_sim_iommu *iommu)
{
	printf("# table memory, VT-d 4 levels; baseline = leaf entries alone "
	       "(8 B each)\n");
	bench_report("table KiB per GiB, 4K leaves, dense 8 GiB",
		     table_kib_per_gib(iommu, SZ_4K, 8), 2048.0, "KiB");
	bench_report("table KiB per GiB, 4K leaves, isolated GiB",
		     table_kib_per_gib(iommu, SZ_4K, 1), 2048.0, "KiB");
	bench_report("table KiB per GiB, 2M leaves, dense 8 GiB",
		     table_kib_per_gib(iommu, SZ_2M, 8), 4.0, "KiB");
}

/* ---- DMA throughput ---- */

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0;
}

static void bench_dma(struct iopt_sim_iommu *iommu, uint64_t len)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = IOPT_PHYS_CONTIGUOUS,
	};
	static const uint64_t sizes[] = { SZ_4K, SZ_2M };
	uint8_t *map, *buf, *dst;
	struct iopt_sim_dev *dev;
	struct iopt_ctx *ctx;
	uint64_t pfn0, off, t0, t1;
	unsigned int i;
	char what[96];

	printf("# DMA: best of 3 interleaved passes, %llu KiB per call\n",
	       (unsigned long long)(DMA_CHUNK >> 10));
	if (iopt_ctx_alloc(&opts, &ctx))
		abort();
	map = mmap(NULL, len + SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = malloc(DMA_CHUNK);
	if (map == MAP_FAILED || !dst)
		abort();
	buf = (uint8_t *)IOPT_ALIGN_UP((uintptr_t)map, (uintptr_t)SZ_2M);
	memset(buf, 0x5A, len);
	if (iopt_pin_range(ctx, (uintptr_t)buf, 1, true, &pfn0) ||
	    iopt_pin_range(ctx, (uintptr_t)buf, len / SZ_4K, true, NULL))
		abort();
	iopt_unpin_range(ctx, (uintptr_t)buf, 1);

	for (i = 0; i < IOPT_ARRAY_SIZE(sizes); i++) {
		struct iopt_domain *d = domain_new(iommu, IOPT_SIM_FMT_AMDV1, sizes[i]);
		uint64_t best_dma = UINT64_MAX, best_cpy = UINT64_MAX;
		int rep;

		if (iopt_sim_dev_alloc(iommu, 1, &dev) || iopt_sim_dev_attach(dev, d) ||
		    iopt_domain_map(d, BENCH_IOVA, pfn0 << IOPT_PHYS_FRAME_SHIFT, len,
				    RW))
			abort();
		/* Interleave the two so machine noise hits both; keep the best. */
		for (rep = 0; rep < 3; rep++) {
			t0 = bench_now_ns();
			for (off = 0; off < len; off += DMA_CHUNK)
				memcpy(dst, buf + off, DMA_CHUNK);
			t1 = bench_now_ns();
			bench_keep(dst[0]);
			best_cpy = IOPT_MIN(best_cpy, t1 - t0);
			t0 = bench_now_ns();
			for (off = 0; off < len; off += DMA_CHUNK)
				if (iopt_sim_dma_read(dev, BENCH_IOVA + off, dst,
						      DMA_CHUNK) != DMA_CHUNK)
					abort();
			t1 = bench_now_ns();
			best_dma = IOPT_MIN(best_dma, t1 - t0);
		}
		snprintf(what, sizeof(what), "DMA read %llu MiB via %s (vs memcpy)",
			 (unsigned long long)(len >> 20), sizes[i] == SZ_4K ? "4K" : "2M");
		bench_report(what, gbps(len, best_dma), gbps(len, best_cpy), "GB/s");
		iopt_sim_dev_attach(dev, NULL);
		iopt_sim_dev_destroy(dev);
		iopt_domain_unmap_sync(d, BENCH_IOVA, len);
		d->ops->free(d);
	}
	iopt_unpin_range(ctx, (uintptr_t)buf, len / SZ_4K);
	munmap(map, len + SZ_2M);
	free(dst);
	iopt_ctx_destroy(ctx);
}

int main(void)
{
	const char *env = getenv("IOPT_BENCH_DMA_MIB");
	uint64_t dma_len = (env ? strtoull(env, NULL, 0) : 1024) << 20;
	struct iopt_sim_iommu *iommu;

	dma_len = IOPT_ALIGN_UP(IOPT_MAX(dma_len, 2 * SZ_2M), SZ_2M);
	if (iopt_sim_iommu_alloc(NULL, &iommu))
		return 1;
	bench_map_unmap(iommu);
	bench_table_bytes(iommu);
	bench_dma(iommu, dma_len);
	iopt_sim_iommu_destroy(iommu);
	return 0;
}
