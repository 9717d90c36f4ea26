/* SPDX-License-Identifier: MIT */
/*
 * test_sim_pt.c - the simulated page tables through the domain ops: golden
 * 64-bit encodings per format, map/iova_to_phys round trips at every leaf
 * size, table-to-leaf through the gather, unmap at and inside a leaf, the
 * mixed-size golden case, errors (nothing changes), dynamic top, and a
 * 1000-step random map/unmap against a flat reference model.
 *
 * Every test runs with the change journal on and ends with a quiesce check:
 * no report may have been raised (a missing invalidation in the engine or
 * in src/domain.c would show up here).
 */
#include "harness.h"

#include <errno.h>
#include <string.h>

#include <iopt/sim.h>

#include "domain.h"
#include "util.h"

#define SZ_2K	(UINT64_C(1) << 11)
#define SZ_4K	(UINT64_C(1) << 12)
#define SZ_8K	(UINT64_C(1) << 13)
#define SZ_16K	(UINT64_C(1) << 14)
#define SZ_64K	(UINT64_C(1) << 16)
#define SZ_1M	(UINT64_C(1) << 20)
#define SZ_2M	(UINT64_C(1) << 21)
#define SZ_4M	(UINT64_C(1) << 22)
#define SZ_512M	(UINT64_C(1) << 29)
#define SZ_1G	(UINT64_C(1) << 30)
#define X86_SIZES (SZ_4K | SZ_2M | SZ_1G)
#define RW (IOPT_PROT_READ | IOPT_PROT_WRITE)
/* The first domain of a fresh IOMMU gets its table arena here. */
#define ARENA0	UINT64_C(0x100000000000)

static const enum iopt_sim_format all_formats[] = {
	IOPT_SIM_FMT_AMDV1, IOPT_SIM_FMT_AMDV1_2K, IOPT_SIM_FMT_VTDSS,
	IOPT_SIM_FMT_ARM_LPAE_S1,
};

/* 4K-granule formats restricted to 4K|2M|1G. */
static const enum iopt_sim_format x86_formats[] = {
	IOPT_SIM_FMT_AMDV1, IOPT_SIM_FMT_VTDSS, IOPT_SIM_FMT_ARM_LPAE_S1,
};

/*
 * Every format with the native leaf sizes of its levels 0, 1 and 2: 4K, 2M,
 * 1G, or for the 2 KiB-granule AMD variant 2K, 1M (the mock's "huge"), 512M.
 * The per-format cases use only these (the domain is restricted to them).
 */
static const struct native {
	enum iopt_sim_format fmt;
	uint64_t small, mid, big;
} natives[] = {
	{ IOPT_SIM_FMT_AMDV1, SZ_4K, SZ_2M, SZ_1G },
	{ IOPT_SIM_FMT_AMDV1_2K, SZ_2K, SZ_1M, SZ_512M },
	{ IOPT_SIM_FMT_VTDSS, SZ_4K, SZ_2M, SZ_1G },
	{ IOPT_SIM_FMT_ARM_LPAE_S1, SZ_4K, SZ_2M, SZ_1G },
};

struct fix {
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *d;
};

static void fix_open(struct fix *f, enum iopt_sim_format fmt, uint64_t mask)
{
	struct iopt_sim_domain_config cfg = {
		.format = fmt, .pgsize_mask = mask,
		.table_arena_bytes = 64 << 20,
	};

	assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &cfg, &f->d), 0);
}

static void fix_open_native(struct fix *f, const struct native *n)
{
	fix_open(f, n->fmt, n->small | n->mid | n->big);
}

/* Quiesce must find nothing outstanding; no checker report at all. */
static void fix_close(struct fix *f)
{
	struct iopt_sim_stats st;
	unsigned int i;

	f->d->ops->quiesce(f->d);
	iopt_sim_iommu_read_stats(f->iommu, &st);
	for (i = 0; i < IOPT_ARRAY_SIZE(st.reports); i++)
		assert_int_equal(st.reports[i], 0);
	f->d->ops->free(f->d);
	iopt_sim_iommu_destroy(f->iommu);
}

static int map1(struct iopt_domain *d, uint64_t iova, uint64_t pa,
		uint64_t size, int prot)
{
	uint64_t mapped = 0;
	int ret = d->ops->map_pages(d, iova, pa, size, 1, prot, &mapped);

	assert_int_equal(mapped, ret ? mapped : size);
	return ret;
}

static uint64_t entry_at(struct iopt_domain *d, uint64_t iova,
			 unsigned int level)
{
	uint64_t e = 0;

	assert_int_equal(iopt_sim_domain_read_entry(d, iova, level, &e), 0);
	return e;
}

/* ---- golden encodings ---- */

static void test_golden_amdv1(void **state)
{
	struct fix f;
	unsigned int i;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_AMDV1, 0);
	assert_int_equal(map1(f.d, 0x1000, 0x12345000, SZ_4K, RW), 0);
	/* 4K leaf: PR | FC | IR | IW | OA, next level 0. */
	assert_int_equal(entry_at(f.d, 0x1000, 0), 0x7000000012345001);
	/* Tables: PR | IR | IW | next level | table sim-PA; never FC. */
	assert_int_equal(entry_at(f.d, 0x1000, 2), 0x6000000000000401 | (ARENA0 + 0x1000));
	assert_int_equal(entry_at(f.d, 0x1000, 1), 0x6000000000000201 | (ARENA0 + 0x2000));
	/* 2M leaf, read-only: no IW. */
	assert_int_equal(map1(f.d, SZ_2M, 0x40000000, SZ_2M, IOPT_PROT_READ), 0);
	assert_int_equal(entry_at(f.d, SZ_2M, 1), 0x3000000040000001);
	/* 64K replicated: 16 identical entries, next level 7, run 0x7000. */
	assert_int_equal(map1(f.d, SZ_64K, 0x80000000, SZ_64K, RW), 0);
	for (i = 0; i < 16; i++)
		assert_int_equal(entry_at(f.d, SZ_64K + i * SZ_4K, 0),
				 0x7000000080007E01);
	/* 8K: run of length zero; 16K: one bit. */
	assert_int_equal(map1(f.d, 0x4000, 0x90002000, SZ_8K, RW), 0);
	assert_int_equal(entry_at(f.d, 0x4000, 0), 0x7000000090002E01);
	assert_int_equal(entry_at(f.d, 0x5000, 0), 0x7000000090002E01);
	assert_int_equal(map1(f.d, 0x8000, 0xA0004000, SZ_16K, RW), 0);
	assert_int_equal(entry_at(f.d, 0x8000, 0), 0x70000000A0005E01);
	/* 4M on the 2M level: 2 replicas, run bits 12..20. */
	assert_int_equal(map1(f.d, SZ_4M, 0xC00000000, SZ_4M, RW), 0);
	assert_int_equal(entry_at(f.d, SZ_4M, 1), 0x7000000C001FFE01);
	assert_int_equal(entry_at(f.d, SZ_4M + SZ_2M, 1), 0x7000000C001FFE01);
	/* 1G leaf: level 2, next level 0. */
	assert_int_equal(map1(f.d, SZ_1G, 0x1C0000000, SZ_1G, RW), 0);
	assert_int_equal(entry_at(f.d, SZ_1G, 2), 0x70000001C0000001);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, 2 * SZ_1G), 2 * SZ_1G);
	fix_close(&f);
}

static void test_golden_amdv1_2k(void **state)
{
	struct fix f;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_AMDV1_2K, 0);
	assert_int_equal(f.d->pgsize_bitmap & 0xFFFFF, 0xFF800);
	/* 2K leaf: bits 51:12 hold the 2K frame number (OA << 1). */
	assert_int_equal(map1(f.d, 0x800, 0x12345800, 0x800, RW), 0);
	assert_int_equal(entry_at(f.d, 0x800, 0), 0x700000002468B001);
	/* 4K = 2 replicas of the 2K level, run of length zero. */
	assert_int_equal(map1(f.d, 0x2000, 0x55555000, SZ_4K, RW), 0);
	assert_int_equal(entry_at(f.d, 0x2000, 0), 0x70000000AAAAAE01);
	assert_int_equal(entry_at(f.d, 0x2800, 0), 0x70000000AAAAAE01);
	/* 1M is the native size of level 1 ("huge" in the mock). */
	assert_int_equal(map1(f.d, SZ_1M, 0x7FF00000, SZ_1M, IOPT_PROT_READ), 0);
	assert_int_equal(entry_at(f.d, SZ_1M, 1), 0x30000000FFE00001);
	assert_int_equal(f.d->ops->iova_to_phys(f.d, SZ_1M + 0x1234), 0x7FF01234);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, 2 * SZ_1M), 2 * SZ_1M);
	fix_close(&f);
}

static void test_golden_vtdss(void **state)
{
	struct fix f;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_VTDSS, 0);
	assert_int_equal(map1(f.d, 0, 0x12345000, SZ_4K, RW), 0);
	assert_int_equal(entry_at(f.d, 0, 0), 0x12345003);
	/* Tables carry R|W (no present bit). 4 levels: root, L2, L1, L0. */
	assert_int_equal(entry_at(f.d, 0, 3), (ARENA0 + 0x1000) | 3);
	assert_int_equal(entry_at(f.d, 0, 2), (ARENA0 + 0x2000) | 3);
	assert_int_equal(entry_at(f.d, 0, 1), (ARENA0 + 0x3000) | 3);
	/* Read-only: R only. Write-only is written R|W as Linux does. */
	assert_int_equal(map1(f.d, SZ_4K, 0x1000, SZ_4K, IOPT_PROT_READ), 0);
	assert_int_equal(entry_at(f.d, SZ_4K, 0), 0x1001);
	assert_int_equal(map1(f.d, 2 * SZ_4K, 0x2000, SZ_4K, IOPT_PROT_WRITE), 0);
	assert_int_equal(entry_at(f.d, 2 * SZ_4K, 0), 0x2003);
	/* 2M and 1G leaves: PS bit 7. */
	assert_int_equal(map1(f.d, SZ_2M, 0x40000000, SZ_2M, RW), 0);
	assert_int_equal(entry_at(f.d, SZ_2M, 1), 0x40000083);
	assert_int_equal(map1(f.d, SZ_1G, 0x80000000, SZ_1G, IOPT_PROT_READ), 0);
	assert_int_equal(entry_at(f.d, SZ_1G, 2), 0x80000081);
	/* Dirty is bit 9. */
	assert_int_equal(iopt_sim_domain_set_dirty(f.d, SZ_2M + 5), 0);
	assert_int_equal(entry_at(f.d, SZ_2M, 1), 0x40000283);
	assert_int_equal(iopt_sim_domain_set_dirty(f.d, SZ_1G), -EPERM);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, 2 * SZ_1G), 2 * SZ_1G);
	fix_close(&f);
}

static void test_golden_arm_lpae_s1(void **state)
{
	const int rwc = RW | IOPT_PROT_CACHE;
	struct iopt_dirty_bitmap clear_only = { 0 };
	struct iopt_iotlb_gather g;
	struct fix f;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_ARM_LPAE_S1, 0);
	/* Writable: nG AF SH=IS AP[1] AttrIndx=1 DBM, page type; dirty (AP[2]=0). */
	assert_int_equal(map1(f.d, 0, 0x12345000, SZ_4K, rwc), 0);
	assert_int_equal(entry_at(f.d, 0, 0), 0x0008000012345F47);
	/* Tables: type 11, no attributes. */
	assert_int_equal(entry_at(f.d, 0, 3), (ARENA0 + 0x1000) | 3);
	/* Read-only without CACHE: AP[2], SH=OS, AttrIndx 0, no DBM. */
	assert_int_equal(map1(f.d, SZ_4K, 0x1000, SZ_4K, IOPT_PROT_READ), 0);
	assert_int_equal(entry_at(f.d, SZ_4K, 0), 0x0000000000001EC3);
	/* 2M block: type 01. NOEXEC sets XN. */
	assert_int_equal(map1(f.d, SZ_2M, 0x40000000, SZ_2M,
			      rwc | IOPT_PROT_NOEXEC), 0);
	assert_int_equal(entry_at(f.d, SZ_2M, 1), 0x0068000040000F45);
	/* Clean = DBM with AP[2] set; set_dirty clears AP[2] again. */
	iopt_iotlb_gather_init(&g);
	clear_only.gather = &g;
	assert_int_equal(f.d->ops->read_and_clear_dirty(f.d, 0, SZ_4K, 0,
							&clear_only), 0);
	f.d->ops->iotlb_sync(f.d, &g);
	assert_int_equal(entry_at(f.d, 0, 0), 0x0008000012345FC7);
	assert_int_equal(iopt_sim_domain_set_dirty(f.d, 0), 0);
	assert_int_equal(entry_at(f.d, 0, 0), 0x0008000012345F47);
	/* Output is 48 bits. */
	assert_int_equal(map1(f.d, SZ_1G, UINT64_C(1) << 48, SZ_4K, RW), -ERANGE);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, SZ_4M), SZ_4M);
	fix_close(&f);
}

/* ---- round trips ---- */

/* Clear the whole IOVA space in one call: every lower table goes too. */
static void unmap_everything(struct iopt_domain *d)
{
	struct iopt_iotlb_gather g;

	iopt_iotlb_gather_init(&g);
	assert_int_equal(d->ops->unmap_pages(d, 0, UINT64_C(1) << 63, 2, &g),
			 UINT64_MAX);
	iopt_domain_iotlb_sync(d, &g);
	iopt_domain_quiesce(d);
}

/*
 * iova_to_phys at the first and the last 8 bytes of every smallest page of
 * the leaf, for leaves up to 1 GiB (2^19 pages of the 2K variant at most).
 * Larger leaves (AMD's reach 2^51) would take up to 2^39 lookups: they are
 * sampled at 64 evenly spaced pages plus the last one. Quick mode (valgrind)
 * samples everything above 2 MiB the same way.
 */
static void check_leaf_pages(struct iopt_domain *d, uint64_t iova, uint64_t pa,
			     uint64_t size, uint64_t gran)
{
	uint64_t every = iopt_test_quick() ? SZ_2M : SZ_1G;
	uint64_t step = size <= every ? gran : size / 64;
	uint64_t off;

	for (off = 0; off < size; off += step) {
		assert_int_equal(d->ops->iova_to_phys(d, iova + off), pa + off);
		assert_int_equal(d->ops->iova_to_phys(d, iova + off + gran - 8),
				 pa + off + gran - 8);
	}
	assert_int_equal(d->ops->iova_to_phys(d, iova + size - gran),
			 pa + size - gran);
	assert_int_equal(d->ops->iova_to_phys(d, iova + size - 1), pa + size - 1);
}

/* One leaf of every size; iova = 2 x size, pa = size (never merges). */
static void round_trip_format(enum iopt_sim_format fmt)
{
	uint64_t counts[64] = { 0 }, bitmap, size;
	uint32_t baseline;
	unsigned int n = 0, lg2;
	struct fix f;

	fix_open(&f, fmt, 0);
	baseline = iopt_sim_domain_nr_tables(f.d);
	bitmap = f.d->pgsize_bitmap;
	for (lg2 = 0; lg2 < 64; lg2++) {
		size = UINT64_C(1) << lg2;
		if (!(bitmap & size))
			continue;
		assert_int_equal(map1(f.d, 2 * size, size, size, RW), 0);
		n++;
	}
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, counts), n);
	for (lg2 = 0; lg2 < 64; lg2++) {
		size = UINT64_C(1) << lg2;
		if (!(bitmap & size))
			continue;
		assert_int_equal(counts[lg2], 1);
		check_leaf_pages(f.d, 2 * size, size, size, bitmap & -bitmap);
		/* Just outside the leaf is not mapped (the next one starts at 4x). */
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 3 * size), 0);
	}
	for (lg2 = 0; lg2 < 64; lg2++) {
		size = UINT64_C(1) << lg2;
		if (bitmap & size)
			assert_int_equal(iopt_domain_unmap_sync(f.d, 2 * size, size),
					 size);
	}
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 0);
	/* Only tables fully covered are freed; a final full unmap frees all. */
	unmap_everything(f.d);
	assert_int_equal(iopt_sim_domain_nr_tables(f.d), baseline);
	fix_close(&f);
}

static void test_round_trip_all_sizes(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(all_formats); i++)
		round_trip_format(all_formats[i]);
}

/* ---- table to leaf, unmap rules ---- */

static void test_table_to_leaf(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(natives); i++) {
		const uint64_t s = natives[i].small, m = natives[i].mid;
		struct iopt_sim_stats st, st2;
		uint32_t before;
		struct fix f;

		fix_open_native(&f, &natives[i]);
		/* 512 small leaves (pa one small page off): a leaf table. */
		assert_int_equal(iopt_domain_map(f.d, m, 0x40000000 + s, m, RW), 0);
		before = iopt_sim_domain_nr_tables(f.d);
		assert_int_equal(iopt_domain_unmap_sync(f.d, m, m), m);
		/* The range covers the whole leaf table: it is freed. */
		assert_int_equal(iopt_sim_domain_nr_tables(f.d), before - 1);
		/* Again with a range that does not cover the table: it stays. */
		assert_int_equal(iopt_domain_map(f.d, m, 0x40000000 + s, m - s, RW), 0);
		assert_int_equal(iopt_domain_unmap_sync(f.d, m, m - s), m - s);
		assert_int_equal(iopt_sim_domain_nr_tables(f.d), before);
		/* A mid leaf over the empty table frees it via a sync inside map. */
		iopt_sim_iommu_read_stats(f.iommu, &st);
		assert_int_equal(map1(f.d, m, 0x80000000, m, RW), 0);
		assert_int_equal(iopt_sim_domain_nr_tables(f.d), before - 1);
		assert_int_equal(iopt_sim_domain_journal_pending(f.d), 0);
		iopt_sim_iommu_read_stats(f.iommu, &st2);
		assert_true(st2.invalidations > st.invalidations);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, m + 0x1234), 0x80001234);
		/* A non-empty table is never replaced. */
		assert_int_equal(map1(f.d, 2 * m, s, s, RW), 0);
		assert_int_equal(map1(f.d, 2 * m, 0x80000000, m, RW), -EADDRINUSE);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 2 * m), s);
		assert_int_equal(iopt_domain_unmap_sync(f.d, 0, natives[i].big),
				 natives[i].big);
		fix_close(&f);
	}
}

static void test_unmap_never_splits(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(natives); i++) {
		const uint64_t s = natives[i].small, m = natives[i].mid;
		const uint64_t big = natives[i].big;
		struct iopt_iotlb_gather g;
		struct fix f;

		fix_open_native(&f, &natives[i]);
		assert_int_equal(map1(f.d, m, 0x40000000, m, RW), 0);
		assert_int_equal(map1(f.d, 2 * m, 0x80000000, m, RW), 0);
		iopt_iotlb_gather_init(&g);
		/* Inside a leaf: refused, nothing changes, gather untouched. */
		assert_int_equal(f.d->ops->unmap_pages(f.d, m + s, s, 1, &g), 0);
		assert_true(iopt_iotlb_gather_is_empty(&g));
		assert_int_equal(f.d->ops->iova_to_phys(f.d, m), 0x40000000);
		/* At the start with a small hint: the whole leaf, not into the next. */
		assert_int_equal(f.d->ops->unmap_pages(f.d, m, s, 1, &g), m);
		assert_int_equal(g.start, m);
		assert_int_equal(g.last, 2 * m - 1);
		assert_int_equal(g.leaf_levels, 1u << 1);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 2 * m), 0x80000000);
		iopt_domain_iotlb_sync(f.d, &g);
		/* Hint mismatch the other way: small leaves, one (mid, 1) call. */
		assert_int_equal(iopt_domain_map(f.d, big, 0x40000000 + s, m, RW), 0);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, big, big + m - 1,
							      NULL), 512);
		assert_int_equal(f.d->ops->unmap_pages(f.d, big, m, 1, &g), m);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, big, big + m - 1,
							      NULL), 0);
		iopt_domain_iotlb_sync(f.d, &g);
		assert_int_equal(iopt_domain_unmap_sync(f.d, 0, 2 * big), 2 * big);
		fix_close(&f);
	}
}

/*
 * Only a leaf may make unmap report more than was asked: empty slots, even
 * empty top-level slots covering 512 GiB, and partly covered tables count
 * exactly up to the end of the request (domain-contract.md §1.3).
 */
static void test_unmap_hole_exact(void **state)
{
	const uint64_t base = UINT64_C(0x40000000);
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(all_formats); i++) {
		struct iopt_iotlb_gather g;
		uint64_t small, mid;
		struct fix f;

		fix_open(&f, all_formats[i], 0);
		small = f.d->pgsize_bitmap & -f.d->pgsize_bitmap;
		mid = small << 9;
		iopt_iotlb_gather_init(&g);
		/* A fresh table: every slot on the way is empty. */
		assert_int_equal(f.d->ops->unmap_pages(f.d, base, small, 1, &g), small);
		assert_int_equal(f.d->ops->unmap_pages(f.d, base, small, 3, &g),
				 3 * small);
		/* Empty slots of a lower table that holds one leaf further on. */
		assert_int_equal(map1(f.d, base + 4 * small, 0x100000, small, RW), 0);
		assert_int_equal(f.d->ops->unmap_pages(f.d, base, small, 2, &g),
				 2 * small);
		assert_true(iopt_iotlb_gather_is_empty(&g));
		assert_int_equal(f.d->ops->iova_to_phys(f.d, base + 4 * small),
				 0x100000);
		/* A hole then a leaf ending with the request: exact. */
		assert_int_equal(f.d->ops->unmap_pages(f.d, base, small, 5, &g),
				 5 * small);
		iopt_domain_iotlb_sync(f.d, &g);
		/* A request ending inside a leaf: the leaf goes whole. */
		assert_int_equal(map1(f.d, base + mid, mid, mid, RW), 0);
		assert_int_equal(f.d->ops->unmap_pages(f.d, base + mid - small,
						       small, 2, &g), mid + small);
		iopt_domain_iotlb_sync(f.d, &g);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX,
							      NULL), 0);
		fix_close(&f);
	}
}

/* AMD replicated leaves are removed whole from their first entry only. */
static void test_unmap_replicated(void **state)
{
	struct iopt_iotlb_gather g;
	struct fix f;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_AMDV1, 0);
	assert_int_equal(map1(f.d, SZ_64K, 0x80000000, SZ_64K, RW), 0);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(f.d->ops->unmap_pages(f.d, SZ_64K + SZ_4K, SZ_4K, 1, &g), 0);
	assert_int_equal(f.d->ops->unmap_pages(f.d, SZ_64K, SZ_4K, 1, &g), SZ_64K);
	assert_int_equal(g.start, SZ_64K);
	assert_int_equal(g.last, 2 * SZ_64K - 1);
	iopt_domain_iotlb_sync(f.d, &g);
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 0);
	fix_close(&f);
}

/* ---- golden page-size choices ---- */

/*
 * The contract's case, map 0x3FE400000 -> same PA for 0xC2200000 bytes on a
 * 4K|2M|1G format: 14 x 2M up to the 1G boundary, 3 x 1G, 3 x 2M. The 2K
 * variant gets the same shape in its native sizes (everything halved).
 */
static void test_mixed_golden(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(natives); i++) {
		const uint64_t m = natives[i].mid, big = natives[i].big;
		const uint64_t start = 16 * big - 14 * m, len = 17 * m + 3 * big;
		uint64_t counts[64] = { 0 };
		struct fix f;

		if (natives[i].small == SZ_4K) {
			assert_int_equal(start, 0x3FE400000);
			assert_int_equal(len, 0xC2200000);
		}
		fix_open_native(&f, &natives[i]);
		assert_int_equal(iopt_domain_map(f.d, start, start, len, RW), 0);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX,
							      counts), 20);
		assert_int_equal(counts[__builtin_ctzll(m)], 17);
		assert_int_equal(counts[__builtin_ctzll(big)], 3);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, 16 * big - 1,
							      NULL), 14);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, 19 * big,
							      UINT64_MAX, NULL), 3);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 19 * big - 1),
				 19 * big - 1);
		assert_int_equal(iopt_domain_unmap_sync(f.d, start, len), len);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 0);
		fix_close(&f);
	}
}

/* An AMD regression: this must map on a 4K format. */
static void test_pgsize_boundary(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(x86_formats); i++) {
		struct fix f;

		fix_open(&f, x86_formats[i], 0);
		assert_int_equal(iopt_domain_map(f.d, 0xFEF80000, 0x208B95D000,
						 0x20000, RW), 0);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 0xFEF9F123),
				 0x208B97C123);
		assert_int_equal(iopt_domain_unmap_sync(f.d, 0xFEF80000, 0x20000),
				 0x20000);
		fix_close(&f);
	}
}

/* ---- errors change nothing ---- */

static void test_map_errors(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(all_formats); i++) {
		uint64_t mapped = 7, pa_too_wide;
		uint32_t tables;
		struct fix f;

		fix_open(&f, all_formats[i], 0);
		assert_int_equal(map1(f.d, SZ_4M, 0x1000, SZ_4K, RW), 0);
		/* *mapped is added to, never reset. */
		assert_int_equal(f.d->ops->map_pages(f.d, SZ_4K, 0x1000, SZ_4K, 1, RW,
						     &mapped), 0);
		assert_int_equal(mapped, 7 + SZ_4K);
		tables = iopt_sim_domain_nr_tables(f.d);
		assert_int_equal(map1(f.d, 8 * SZ_4K, 0x1000, SZ_4K, 0), -EINVAL);
		assert_int_equal(map1(f.d, 8 * SZ_4K, 0x1000, SZ_4K, IOPT_PROT_CACHE),
				 -EINVAL);
		pa_too_wide = UINT64_C(1) << (all_formats[i] == IOPT_SIM_FMT_ARM_LPAE_S1 ?
					      48 : all_formats[i] == IOPT_SIM_FMT_AMDV1_2K ?
					      51 : 52);
		assert_int_equal(map1(f.d, 8 * SZ_4K, pa_too_wide, SZ_4K, RW), -ERANGE);
		mapped = 0;
		assert_int_equal(f.d->ops->map_pages(f.d, 8 * SZ_4K, pa_too_wide - SZ_4K,
						     SZ_4K, 2, RW, &mapped), -ERANGE);
		assert_int_equal(mapped, 0);
		/* Overlap: -EADDRINUSE, the old mapping intact. */
		assert_int_equal(iopt_domain_map(f.d, 0, 0x9000, 2 * SZ_4K, RW),
				 -EADDRINUSE);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, SZ_4K), 0x1000);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 0), 0);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, SZ_4M), 0x1000);
		assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 2);
		assert_int_equal(iopt_sim_domain_nr_tables(f.d), tables);
		assert_int_equal(iopt_domain_unmap_sync(f.d, 0, SZ_1G), SZ_1G);
		fix_close(&f);
	}
}

static void test_aperture_and_config(void **state)
{
	struct iopt_sim_domain_config cfg = {
		.format = IOPT_SIM_FMT_AMDV1_2K,
		.aperture_start = 16 << 20, .aperture_last = (2u << 30) - 1,
	};
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *d;

	(void)state;
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(iommu, &cfg, &d), 0);
	assert_true(iopt_sim_is_domain(d));
	assert_int_equal(d->aperture_start, 16 << 20);
	assert_int_equal(d->aperture_last, (2u << 30) - 1);
	assert_int_equal(iopt_domain_check(d), 0);
	assert_int_equal(map1(d, 0, 0x1000, 0x800, RW), -EINVAL);
	assert_int_equal(map1(d, 2u << 30, 0x1000, 0x800, RW), -EINVAL);
	assert_int_equal(map1(d, 16 << 20, 0x1000, 0x800, RW), 0);
	assert_int_equal(iopt_domain_unmap_sync(d, 16 << 20, 0x800), 0x800);
	d->ops->free(d);

	cfg = (struct iopt_sim_domain_config){ .format = IOPT_SIM_FMT_VTDSS,
					       .levels = 6 };
	assert_int_equal(iopt_sim_domain_alloc(iommu, &cfg, &d), -EINVAL);
	cfg.levels = 3;
	assert_int_equal(iopt_sim_domain_alloc(iommu, &cfg, &d), 0);
	assert_int_equal(d->aperture_last, (UINT64_C(1) << 39) - 1);
	assert_int_equal(iopt_sim_domain_top_level(d), 2);
	d->ops->free(d);
	cfg.levels = 5;
	assert_int_equal(iopt_sim_domain_alloc(iommu, &cfg, &d), 0);
	assert_int_equal(d->aperture_last, (UINT64_C(1) << 57) - 1);
	assert_int_equal(map1(d, UINT64_C(1) << 56, 0x1000, SZ_4K, RW), 0);
	assert_int_equal(iopt_domain_unmap_sync(d, UINT64_C(1) << 56, SZ_4K), SZ_4K);
	d->ops->free(d);
	cfg = (struct iopt_sim_domain_config){ .format = IOPT_SIM_FMT_NR };
	assert_int_equal(iopt_sim_domain_alloc(iommu, &cfg, &d), -EINVAL);
	cfg = (struct iopt_sim_domain_config){ .pgsize_mask = 1 };
	assert_int_equal(iopt_sim_domain_alloc(iommu, &cfg, &d), -EINVAL);
	iopt_sim_iommu_destroy(iommu);
}

/* Table allocation failure: -ENOMEM, consistent, unwound by the core. */
static void test_map_enomem(void **state)
{
	struct fix f;
	uint32_t tables;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_VTDSS, 0);
	tables = iopt_sim_domain_nr_tables(f.d);
	iopt_sim_domain_fail_tables(f.d, 2);
	/* Needs 3 tables under the root: fails on the third. */
	assert_int_equal(iopt_domain_map(f.d, 0, 0x1000, SZ_4K, RW), -ENOMEM);
	assert_int_equal(f.d->ops->iova_to_phys(f.d, 0), 0);
	iopt_sim_domain_fail_tables(f.d, -1);
	assert_int_equal(iopt_domain_map(f.d, 0, 0x1000, SZ_4K, RW), 0);
	assert_int_equal(iopt_sim_domain_nr_tables(f.d), tables + 3);
	/* Only the leaf table's allocation fails now; 2M-leaf maps still work. */
	iopt_sim_domain_fail_tables(f.d, 0);
	assert_int_equal(map1(f.d, SZ_2M, 0x40000000, SZ_2M, RW), 0);
	assert_int_equal(map1(f.d, SZ_1G, 0x1000, SZ_4K, RW), -ENOMEM);
	iopt_sim_domain_fail_tables(f.d, -1);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, UINT64_C(1) << 39),
			 UINT64_C(1) << 39);
	assert_int_equal(iopt_sim_domain_nr_tables(f.d), tables);
	fix_close(&f);
}

/* Leaf budget: *mapped says exactly what is installed; the core unwinds it. */
static void test_map_fail_after_leaves(void **state)
{
	uint64_t mapped = 0;
	struct fix f;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_AMDV1, X86_SIZES);
	iopt_sim_domain_fail_leaves(f.d, 3);
	/* PA skewed by 4K: 8 separate 4K leaves wanted, 3 allowed. */
	assert_int_equal(f.d->ops->map_pages(f.d, 0, 0x1000, SZ_4K, 8, RW, &mapped),
			 -ENOMEM);
	assert_int_equal(mapped, 3 * SZ_4K);
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 3);
	assert_int_equal(f.d->ops->iova_to_phys(f.d, 2 * SZ_4K), 0x3000);
	assert_int_equal(f.d->ops->iova_to_phys(f.d, 3 * SZ_4K), 0);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, mapped), mapped);
	/* Through the core: all or nothing. */
	iopt_sim_domain_fail_leaves(f.d, 5);
	assert_int_equal(iopt_domain_map(f.d, 0, 0x1000, 8 * SZ_4K, RW), -ENOMEM);
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 0);
	iopt_sim_domain_fail_leaves(f.d, -1);
	assert_int_equal(iopt_domain_map(f.d, 0, 0x1000, 8 * SZ_4K, RW), 0);
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 8);
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, 8 * SZ_4K), 8 * SZ_4K);
	fix_close(&f);
}

/* AMD's top grows one level at a time; existing translations unaffected. */
static void test_dynamic_top(void **state)
{
	struct iopt_iotlb_gather g;
	struct fix f;
	unsigned int bits;

	(void)state;
	fix_open(&f, IOPT_SIM_FMT_AMDV1, X86_SIZES);
	assert_int_equal(iopt_sim_domain_top_level(f.d), 2);
	assert_int_equal(map1(f.d, 0, 0x5000, SZ_4K, RW), 0);
	for (bits = 39; bits < 64; bits += 9) {
		uint64_t iova = UINT64_C(1) << bits;

		assert_int_equal(map1(f.d, iova, 0x6000, SZ_4K, RW), 0);
		assert_int_equal(iopt_sim_domain_top_level(f.d), (bits - 39) / 9 + 3);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, 0x10), 0x5010);
		assert_int_equal(f.d->ops->iova_to_phys(f.d, iova + 4), 0x6004);
	}
	/* The very top page of the 64-bit space. */
	assert_int_equal(map1(f.d, UINT64_MAX - SZ_4K + 1, 0x7000, SZ_4K, RW), 0);
	assert_int_equal(f.d->ops->iova_to_phys(f.d, UINT64_MAX), 0x7FFF);
	assert_int_equal(iopt_domain_unmap_sync(f.d, UINT64_MAX - SZ_4K + 1, SZ_4K),
			 SZ_4K);
	/* The whole 2^64 space in one call: the length saturates. */
	iopt_iotlb_gather_init(&g);
	assert_int_equal(f.d->ops->unmap_pages(f.d, 0, UINT64_C(1) << 63, 2, &g),
			 UINT64_MAX);
	iopt_domain_iotlb_sync(f.d, &g);
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 0);
	/* Every lower table was covered, the old roots included. */
	assert_int_equal(iopt_sim_domain_nr_tables(f.d), 1);
	fix_close(&f);
}

/* ---- random against a flat reference ---- */

#define MODEL_MAX 256

struct model {
	uint64_t iova[MODEL_MAX], len[MODEL_MAX], pa[MODEL_MAX];
	unsigned int n;
};

static int model_overlap(const struct model *m, uint64_t iova, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < m->n; i++)
		if (iova < m->iova[i] + m->len[i] && m->iova[i] < iova + len)
			return (int)i;
	return -1;
}

static void model_remove(struct model *m, unsigned int i)
{
	m->n--;
	m->iova[i] = m->iova[m->n];
	m->len[i] = m->len[m->n];
	m->pa[i] = m->pa[m->n];
}

static void model_check(struct iopt_domain *d, const struct model *m,
			uint64_t *rng)
{
	unsigned int i;

	for (i = 0; i < m->n; i++) {
		uint64_t off = (iopt_test_rand(rng) % m->len[i]) & ~UINT64_C(7);

		assert_int_equal(d->ops->iova_to_phys(d, m->iova[i] + off),
				 m->pa[i] + off);
	}
}

#define WINDOW (UINT64_C(8) << 30)
#define PA_OFF (UINT64_C(1) << 40)

static void random_step_map(struct iopt_domain *d, struct model *m,
			    uint64_t *rng)
{
	static const unsigned int lg2s[] = { 12, 12, 12, 21, 21, 30 };
	unsigned int lg2 = lg2s[iopt_test_rand(rng) % IOPT_ARRAY_SIZE(lg2s)];
	uint64_t size = UINT64_C(1) << lg2;
	uint64_t len = size * (1 + iopt_test_rand(rng) % (lg2 == 30 ? 1 : 8));
	uint64_t iova = (iopt_test_rand(rng) % (WINDOW / size)) * size;
	/* Sometimes shift the PA so only 4K leaves are possible. */
	uint64_t pa = iova + PA_OFF + (iopt_test_rand(rng) % 4 ? 0 : SZ_4K);
	int hit;

	if (iova + len > WINDOW || m->n == MODEL_MAX)
		return;
	hit = model_overlap(m, iova, len);
	if (hit >= 0) {
		assert_int_equal(iopt_domain_map(d, iova, pa, len, RW), -EADDRINUSE);
		/* Unmap the collisions (exactly as mapped), then retry. */
		while ((hit = model_overlap(m, iova, len)) >= 0) {
			assert_int_equal(iopt_domain_unmap_sync(d, m->iova[hit],
								m->len[hit]),
					 m->len[hit]);
			model_remove(m, (unsigned int)hit);
		}
	}
	assert_int_equal(iopt_domain_map(d, iova, pa, len, RW), 0);
	m->iova[m->n] = iova;
	m->len[m->n] = len;
	m->pa[m->n++] = pa;
}

static void random_format(enum iopt_sim_format fmt, uint64_t mask,
			  uint64_t seed)
{
	struct model *m = calloc(1, sizeof(*m));
	uint64_t rng = seed, total = 0;
	unsigned int step, i;
	uint32_t baseline;
	struct fix f;

	assert_non_null(m);
	fix_open(&f, fmt, mask);
	baseline = iopt_sim_domain_nr_tables(f.d);
	for (step = 0; step < 1000; step++) {
		if (m->n && iopt_test_rand(&rng) % 3 == 0) {
			i = (unsigned int)(iopt_test_rand(&rng) % m->n);
			assert_int_equal(iopt_domain_unmap_sync(f.d, m->iova[i],
								m->len[i]),
					 m->len[i]);
			assert_int_equal(f.d->ops->iova_to_phys(f.d, m->iova[i]), 0);
			model_remove(m, i);
		} else {
			random_step_map(f.d, m, &rng);
		}
		if (step % 50 == 0)
			model_check(f.d, m, &rng);
	}
	model_check(f.d, m, &rng);
	for (i = 0; i < m->n; i++)
		total += iopt_domain_unmap_sync(f.d, m->iova[i], m->len[i]) ==
			 m->len[i];
	assert_int_equal(total, m->n);
	assert_int_equal(iopt_sim_domain_count_leaves(f.d, 0, UINT64_MAX, NULL), 0);
	/* Tables stay until a range covers them; one covering unmap frees all. */
	assert_int_equal(iopt_domain_unmap_sync(f.d, 0, UINT64_C(1) << 39),
			 UINT64_C(1) << 39);
	assert_int_equal(iopt_sim_domain_nr_tables(f.d), baseline);
	fix_close(&f);
	free(m);
}

static void test_random_vs_model(void **state)
{
	uint64_t seed = iopt_test_seed();
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(x86_formats); i++)
		random_format(x86_formats[i], X86_SIZES, seed + i);
	/* Every size: runs merge into replicated AMD leaves. */
	random_format(IOPT_SIM_FMT_AMDV1, 0, seed + 10);
	random_format(IOPT_SIM_FMT_AMDV1_2K, 0, seed + 11);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_golden_amdv1),
	cmocka_unit_test(test_golden_amdv1_2k),
	cmocka_unit_test(test_golden_vtdss),
	cmocka_unit_test(test_golden_arm_lpae_s1),
	cmocka_unit_test(test_round_trip_all_sizes),
	cmocka_unit_test(test_table_to_leaf),
	cmocka_unit_test(test_unmap_never_splits),
	cmocka_unit_test(test_unmap_hole_exact),
	cmocka_unit_test(test_unmap_replicated),
	cmocka_unit_test(test_mixed_golden),
	cmocka_unit_test(test_pgsize_boundary),
	cmocka_unit_test(test_map_errors),
	cmocka_unit_test(test_aperture_and_config),
	cmocka_unit_test(test_map_enomem),
	cmocka_unit_test(test_map_fail_after_leaves),
	cmocka_unit_test(test_dynamic_top),
	cmocka_unit_test(test_random_vs_model),
};

IOPT_TEST_MAIN(tests)
