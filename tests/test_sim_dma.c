/* SPDX-License-Identifier: MIT */
/*
 * test_sim_dma.c - the simulated IOMMU seen from a device: DMA through the
 * IOTLB and the tables into pinned host memory, every fault reason, the
 * bounded fault ring, stale translations after a skipped flush and the
 * change-journal report that goes with it (each invalidation model), the
 * freed-table quarantine, and dirty tracking against the ground-truth
 * written set (cached D, replicas, whole-leaf reports, NO_CLEAR, ARM DBM).
 *
 * Memory is real: a host buffer pinned through the pin registry with the
 * contiguous model, so its frames form one run aligned like the buffer.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/ctx.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "domain.h"
#include "pin.h"
#include "util.h"

#define SZ_4K	(UINT64_C(1) << 12)
#define SZ_64K	(UINT64_C(1) << 16)
#define SZ_2M	(UINT64_C(1) << 21)
#define SZ_1G	(UINT64_C(1) << 30)
#define X86_SIZES (SZ_4K | SZ_2M | SZ_1G)
#define RW (IOPT_PROT_READ | IOPT_PROT_WRITE)
#define MEM_LEN (4 * SZ_2M)
#define IOVA_BASE (UINT64_C(1) << 32)

struct env {
	struct iopt_ctx *ctx;
	uint8_t *map;		/* mmap'd region */
	uint8_t *buf;		/* 2M-aligned, MEM_LEN bytes, pinned */
	uint64_t pa;		/* sim-PA of buf[0] */
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *d;
	struct iopt_sim_dev *dev;
	unsigned int faults_cb;
};

static void fault_cb(void *opaque, const struct iopt_sim_fault *f)
{
	(void)f;
	((struct env *)opaque)->faults_cb++;
}

#define ENV_STICKY	(1u << 0)
#define ENV_STALE_CHECK	(1u << 1)
#define ENV_NEGATIVE	(1u << 2)

static void env_open_cfg(struct env *e, enum iopt_sim_format fmt,
			 enum iopt_sim_inval_model model, uint64_t mask,
			 unsigned int flags)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = IOPT_PHYS_CONTIGUOUS,
	};
	struct iopt_sim_iommu_config icfg = {
		.inval_model = model, .fault_ring = 4,
		.sticky = flags & ENV_STICKY, .stale_check = flags & ENV_STALE_CHECK,
		.negative_cache = flags & ENV_NEGATIVE,
		.fault_cb = fault_cb, .opaque = e,
	};
	struct iopt_sim_domain_config dcfg = {
		.format = fmt, .pgsize_mask = mask,
		.table_arena_bytes = 16 << 20,
	};
	uint64_t *pfns = calloc(MEM_LEN / SZ_4K, sizeof(*pfns));
	size_t i;

	memset(e, 0, sizeof(*e));
	assert_non_null(pfns);
	assert_int_equal(iopt_ctx_alloc(&opts, &e->ctx), 0);
	e->map = mmap(NULL, MEM_LEN + SZ_2M, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(e->map != MAP_FAILED);
	e->buf = (uint8_t *)IOPT_ALIGN_UP((uintptr_t)e->map, (uintptr_t)SZ_2M);
	assert_int_equal(iopt_pin_range(e->ctx, (uintptr_t)e->buf,
					MEM_LEN / SZ_4K, true, pfns), 0);
	for (i = 1; i < MEM_LEN / SZ_4K; i++)
		assert_int_equal(pfns[i], pfns[0] + i);
	e->pa = pfns[0] << IOPT_PHYS_FRAME_SHIFT;
	assert_true(iopt_is_aligned(e->pa, SZ_2M));
	free(pfns);
	assert_int_equal(iopt_sim_iommu_alloc(&icfg, &e->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(e->iommu, &dcfg, &e->d), 0);
	assert_int_equal(iopt_sim_dev_alloc(e->iommu, 7, &e->dev), 0);
	assert_int_equal(iopt_sim_dev_attach(e->dev, e->d), 0);
}

static void env_open(struct env *e, enum iopt_sim_format fmt,
		     enum iopt_sim_inval_model model, uint64_t mask)
{
	env_open_cfg(e, fmt, model, mask, 0);
}

static uint64_t env_reports(struct env *e, enum iopt_sim_report_kind kind)
{
	struct iopt_sim_stats st;

	iopt_sim_iommu_read_stats(e->iommu, &st);
	return st.reports[kind];
}

static void env_close(struct env *e)
{
	iopt_domain_unmap_sync(e->d, 0, UINT64_C(1) << 39);
	assert_int_equal(iopt_sim_dev_attach(e->dev, NULL), 0);
	iopt_sim_dev_destroy(e->dev);
	e->d->ops->free(e->d);
	iopt_sim_iommu_destroy(e->iommu);
	iopt_unpin_range(e->ctx, (uintptr_t)e->buf, MEM_LEN / SZ_4K);
	munmap(e->map, MEM_LEN + SZ_2M);
	iopt_ctx_destroy(e->ctx);
}

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 12));
}

/* ---- data path ---- */

static void test_dma_round_trip(void **state)
{
	static const enum iopt_sim_format fmts[] = {
		IOPT_SIM_FMT_AMDV1, IOPT_SIM_FMT_AMDV1_2K, IOPT_SIM_FMT_VTDSS,
		IOPT_SIM_FMT_ARM_LPAE_S1,
	};
	uint8_t *src = malloc(MEM_LEN), *dst = malloc(MEM_LEN);
	unsigned int i;

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	for (i = 0; i < IOPT_ARRAY_SIZE(fmts); i++) {
		struct iopt_sim_stats st;
		struct env e;

		env_open(&e, fmts[i], IOPT_SIM_INVAL_RANGE, 0);
		/* First half 2M-capable, second half only 4K (shifted IOVA). */
		assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, MEM_LEN / 2,
						 RW), 0);
		assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_1G + SZ_4K,
						 e.pa + MEM_LEN / 2, MEM_LEN / 2,
						 RW), 0);
		fill(src, MEM_LEN, i);
		assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + 100, src,
						    MEM_LEN / 2 - 100),
				 MEM_LEN / 2 - 100);
		assert_memory_equal(e.buf + 100, src, MEM_LEN / 2 - 100);
		assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + SZ_1G + SZ_4K,
						    src, MEM_LEN / 2), MEM_LEN / 2);
		assert_memory_equal(e.buf + MEM_LEN / 2, src, MEM_LEN / 2);
		memset(dst, 0, MEM_LEN);
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_1G + SZ_4K + 3,
						   dst, MEM_LEN / 2 - 3),
				 MEM_LEN / 2 - 3);
		assert_memory_equal(dst, src + 3, MEM_LEN / 2 - 3);
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_1G + SZ_4K,
						   dst, SZ_4K), SZ_4K);
		iopt_sim_iommu_read_stats(e.iommu, &st);
		assert_true(st.iotlb_misses > 0);
		assert_int_equal(st.faults[IOPT_SIM_FAULT_NOT_PRESENT], 0);
		/* Second read of the same page: an IOTLB hit. */
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_1G + SZ_4K,
						   dst, SZ_4K), SZ_4K);
		{
			struct iopt_sim_stats st2;

			iopt_sim_iommu_read_stats(e.iommu, &st2);
			assert_int_equal(st2.iotlb_misses, st.iotlb_misses);
			assert_true(st2.iotlb_hits > st.iotlb_hits);
		}
		env_close(&e);
	}
	free(src);
	free(dst);
}

static void pop_fault(struct env *e, enum iopt_sim_fault_reason reason,
		      uint64_t iova, bool write)
{
	struct iopt_sim_fault f;

	assert_true(iopt_sim_fault_pop(e->iommu, &f));
	assert_int_equal(f.reason, reason);
	assert_int_equal(f.iova, iova);
	assert_int_equal(f.write, write);
	assert_int_equal(f.dev_id, 7);
}

static void test_dma_faults(void **state)
{
	struct iopt_sim_domain_config cfg = {
		.format = IOPT_SIM_FMT_VTDSS,
		.aperture_start = SZ_1G, .aperture_last = 4 * SZ_1G + SZ_1G - 1,
	};
	struct iopt_domain *narrow;
	struct iopt_sim_stats st;
	uint8_t tmp[3 * SZ_4K];
	struct iopt_sim_fault f;
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, 0);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_4K, RW), 0);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_4K, e.pa + SZ_4K,
					 SZ_4K, IOPT_PROT_READ), 0);
	/* Runs off the end: 2 pages done, fault at the third, level 0. */
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, sizeof(tmp)),
			 2 * SZ_4K);
	assert_true(iopt_sim_fault_pop(e.iommu, &f));
	assert_int_equal(f.reason, IOPT_SIM_FAULT_NOT_PRESENT);
	assert_string_equal(iopt_sim_fault_reason_name(f.reason), "not present");
	assert_string_equal(iopt_sim_fault_reason_name(IOPT_SIM_FAULT_NR_REASONS),
			    "unknown");
	for (unsigned int r = 0; r != IOPT_SIM_FAULT_NR_REASONS; r++)
		assert_string_not_equal(iopt_sim_fault_reason_name(r), "unknown");
	assert_int_equal(f.iova, IOVA_BASE + 2 * SZ_4K);
	assert_int_equal(f.level, 0);
	assert_int_equal(f.entry, 0);
	/* Not present higher up: the walk stops at level 2 or above. */
	assert_int_equal(iopt_sim_dma_read(e.dev, 1ull << 40, tmp, 8), 0);
	assert_true(iopt_sim_fault_pop(e.iommu, &f));
	assert_true(f.level >= 2);
	/* Write to a read-only page. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + SZ_4K - 8, tmp, 16), 8);
	pop_fault(&e, IOPT_SIM_FAULT_PERMISSION, IOVA_BASE + SZ_4K, true);
	/* Mapped to a frame that is not pinned. */
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_2M, 0x1000, SZ_4K, RW), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_2M, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_UNPINNED, IOVA_BASE + SZ_2M, false);
	assert_false(iopt_sim_fault_pop(e.iommu, &f));
	/* Outside the aperture, and a detached device. */
	assert_int_equal(iopt_sim_domain_alloc(e.iommu, &cfg, &narrow), 0);
	assert_int_equal(iopt_sim_dev_attach(e.dev, narrow), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, 0x1000, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_APERTURE, 0x1000, false);
	assert_int_equal(iopt_sim_dev_attach(e.dev, NULL), 0);
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_NO_DOMAIN, IOVA_BASE, true);
	narrow->ops->free(narrow);
	assert_int_equal(iopt_sim_dev_attach(e.dev, e.d), 0);
	/* The ring holds 4; more are counted as dropped; the callback sees all. */
	e.faults_cb = 0;
	for (unsigned int i = 0; i < 6; i++)
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_1G, tmp, 8), 0);
	assert_int_equal(e.faults_cb, 6);
	iopt_sim_iommu_read_stats(e.iommu, &st);
	assert_int_equal(st.faults_dropped, 2);
	for (unsigned int i = 0; i < 4; i++)
		pop_fault(&e, IOPT_SIM_FAULT_NOT_PRESENT, IOVA_BASE + SZ_1G, false);
	assert_false(iopt_sim_fault_pop(e.iommu, &f));
	env_close(&e);
}

/*
 * A leaf whose output lies beyond the domain's width: map refuses to write
 * one (-ERANGE), so corrupt a valid leaf the way a buggy encoder would.
 */
static void test_dma_fault_oa_too_wide(void **state)
{
	struct iopt_sim_domain_config cfg = {
		.format = IOPT_SIM_FMT_VTDSS, .oa_bits = 40,
	};
	const uint64_t wide = (UINT64_C(1) << 40) | 3;	/* R|W, OA = 2^40 */
	struct iopt_domain *narrow;
	struct iopt_sim_fault f;
	uint64_t good = 0;
	uint8_t tmp[8];
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, 0);
	assert_int_equal(iopt_sim_domain_alloc(e.iommu, &cfg, &narrow), 0);
	assert_int_equal(iopt_sim_dev_attach(e.dev, narrow), 0);
	assert_int_equal(iopt_domain_map(narrow, IOVA_BASE, UINT64_C(1) << 40,
					 SZ_4K, RW), -ERANGE);
	assert_int_equal(iopt_domain_map(narrow, IOVA_BASE, 0x1000, SZ_4K, RW), 0);
	assert_int_equal(iopt_sim_domain_read_entry(narrow, IOVA_BASE, 0, &good), 0);
	assert_int_equal(iopt_sim_domain_write_entry(narrow, IOVA_BASE, 0, wide), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + 8, tmp, 8), 0);
	assert_true(iopt_sim_fault_pop(e.iommu, &f));
	assert_int_equal(f.reason, IOPT_SIM_FAULT_OA_TOO_WIDE);
	assert_int_equal(f.iova, IOVA_BASE + 8);
	assert_int_equal(f.level, 0);
	assert_int_equal(f.entry, wide);
	/* Nothing was cached: restored, the walk reaches the (unpinned) frame. */
	assert_int_equal(iopt_sim_domain_write_entry(narrow, IOVA_BASE, 0, good), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_UNPINNED, IOVA_BASE, false);
	/* A walk that ends above the level has no entry to write. */
	assert_int_equal(iopt_sim_domain_write_entry(narrow, SZ_1G << 9, 0, wide),
			 -ENOENT);
	assert_int_equal(iopt_domain_unmap_sync(narrow, IOVA_BASE, SZ_4K), SZ_4K);
	assert_int_equal(iopt_sim_dev_attach(e.dev, e.d), 0);
	narrow->ops->free(narrow);
	env_close(&e);
}

/* ---- IOTLB: a skipped flush is a stale DMA and a journal report ---- */

static void stale_case(enum iopt_sim_inval_model model, bool sticky)
{
	struct iopt_iotlb_gather g;
	uint8_t tmp[16];
	struct env e;

	env_open_cfg(&e, IOPT_SIM_FMT_AMDV1, model, X86_SIZES,
		     sticky ? ENV_STICKY : 0);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_2M + SZ_4K, RW), 0);
	e.buf[0] = 0x5A;
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 1), 1);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_2M, tmp, 1), 1);

	/* Unmap without sync: the device still reaches the page. */
	iopt_iotlb_gather_init(&g);
	assert_int_equal(iopt_domain_unmap(e.d, IOVA_BASE, SZ_2M, &g), SZ_2M);
	assert_int_equal(e.d->ops->iova_to_phys(e.d, IOVA_BASE), 0);
	tmp[0] = 0;
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 1), 1);
	assert_int_equal(tmp[0], 0x5A);
	assert_int_equal(iopt_sim_domain_journal_pending(e.d), 1);
	/* Dropping the gather and reaching a quiesce point is reported. */
	iopt_domain_quiesce(e.d);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 1);

	/* With the sync: the DMA faults and nothing is reported. */
	iopt_domain_iotlb_sync(e.d, &g);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 1), 0);
	assert_int_equal(iopt_domain_unmap_sync(e.d, IOVA_BASE + SZ_2M, SZ_4K), SZ_4K);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_2M, tmp, 1), 0);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 1);
	assert_int_equal(iopt_sim_domain_journal_pending(e.d), 0);
	env_close(&e);
}

static void test_stale_without_flush(void **state)
{
	(void)state;
	stale_case(IOPT_SIM_INVAL_RANGE, false);
	stale_case(IOPT_SIM_INVAL_AMD, false);
	stale_case(IOPT_SIM_INVAL_VTD, false);
	stale_case(IOPT_SIM_INVAL_FLUSH_ALL, false);
	stale_case(IOPT_SIM_INVAL_RANGE, true);
	stale_case(IOPT_SIM_INVAL_AMD, true);
}

/* A gather narrower than the leaf it removed: the journal catches it. */
static void test_gather_too_narrow(void **state)
{
	struct iopt_iotlb_gather g;
	uint8_t tmp[8];
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, X86_SIZES);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_2M, RW), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_64K, tmp, 8), 8);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(e.d->ops->unmap_pages(e.d, IOVA_BASE, SZ_4K, 1, &g), SZ_2M);
	g.last = IOVA_BASE + SZ_4K - 1;		/* what a buggy driver gathers */
	iopt_domain_iotlb_sync(e.d, &g);
	/*
	 * Hardware drops the whole cached 2M translation on any overlap, so
	 * the DMA cannot see this bug; the journal does.
	 */
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_64K, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_NOT_PRESENT, IOVA_BASE + SZ_64K, false);
	assert_int_equal(iopt_sim_domain_journal_pending(e.d), 1);
	iopt_domain_quiesce(e.d);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 1);
	/* A detailed gather naming the wrong level does not cover the leaf. */
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_2M, RW), 0);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(e.d->ops->unmap_pages(e.d, IOVA_BASE, SZ_2M, 1, &g), SZ_2M);
	assert_int_equal(g.leaf_levels, 1u << 1);
	g.leaf_levels = 1u << 0;
	iopt_domain_iotlb_sync(e.d, &g);
	assert_int_equal(iopt_sim_domain_journal_pending(e.d), 1);
	iopt_domain_quiesce(e.d);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 2);
	/* Misaligned gathers are reported too. */
	iopt_iotlb_gather_init(&g);
	iopt_iotlb_gather_add_range(&g, IOVA_BASE + 8, IOVA_BASE + 15);
	iopt_domain_iotlb_sync(e.d, &g);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_BAD_GATHER), 1);
	env_close(&e);
}

/* A gather synced on the wrong domain: reported, nothing released. */
static void test_gather_wrong_domain(void **state)
{
	struct iopt_sim_domain_config cfg = { .format = IOPT_SIM_FMT_VTDSS };
	struct iopt_iotlb_gather g;
	struct iopt_domain *other;
	struct env e;
	uint32_t tables;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, X86_SIZES);
	assert_int_equal(iopt_sim_domain_alloc(e.iommu, &cfg, &other), 0);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa + SZ_4K, SZ_4K, RW), 0);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(iopt_domain_unmap(e.d, IOVA_BASE, SZ_2M, &g), SZ_2M);
	assert_non_null(g.freelist);
	tables = iopt_sim_domain_nr_tables(other);
	iopt_domain_iotlb_sync(other, &g);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_BAD_GATHER), 1);
	assert_int_equal(iopt_sim_domain_nr_tables(other), tables);
	/* The right domain still works (its table stays quarantined). */
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_2M, RW), 0);
	other->ops->free(other);
	e.d->ops->flush_iotlb_all(e.d);
	env_close(&e);
}

#define VTD_ADDR (((UINT64_C(1) << 52) - 1) & ~(SZ_4K - 1))

/* sim-PA of the level-@level table a walk for @iova visits (VT-d). */
static uint64_t vtd_table_pa(struct iopt_domain *d, uint64_t iova,
			     unsigned int level)
{
	uint64_t v = 0;

	assert_int_equal(iopt_sim_domain_read_entry(d, iova, level + 1, &v), 0);
	return v & VTD_ADDR;
}

/*
 * Unmap [IOVA_BASE + @off, +2M), a 4K leaf's level-0 table the walk cache
 * learnt, and sync a gather that lies about the range: reported, and the
 * table stays quarantined. Returns the table's sim-PA.
 */
static uint64_t free_table_unsynced(struct env *e, uint64_t off)
{
	struct iopt_iotlb_gather g;
	uint8_t tmp[8];
	uint64_t pa, reports = env_reports(e, IOPT_SIM_REPORT_TABLE_UNSYNCED);

	assert_int_equal(iopt_domain_map(e->d, IOVA_BASE + off, e->pa + SZ_4K,
					 SZ_4K, RW), 0);
	assert_int_equal(iopt_sim_dma_read(e->dev, IOVA_BASE + off, tmp, 8), 8);
	pa = vtd_table_pa(e->d, IOVA_BASE + off, 0);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(iopt_domain_unmap(e->d, IOVA_BASE + off, SZ_2M, &g), SZ_2M);
	assert_non_null(g.freelist);
	assert_int_equal(g.table_levels, 1u << 0);
	g.start = IOVA_BASE + 64 * SZ_2M;	/* pretend the range was elsewhere */
	g.last = g.start + SZ_4K - 1;
	iopt_domain_iotlb_sync(e->d, &g);
	assert_int_equal(env_reports(e, IOPT_SIM_REPORT_TABLE_UNSYNCED),
			 reports + 1);
	return pa;
}

/*
 * A freed table whose sync did not cover it is reported and stays
 * quarantined until a sync that invalidates tables over its range (or a
 * flush-all): never recycled while the walk cache may still point at it.
 */
static void test_freed_table_quarantine(void **state)
{
	struct iopt_iotlb_gather g;
	uint64_t held;
	uint8_t tmp[8];
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_AMD, X86_SIZES);
	held = free_table_unsynced(&e, 0);
	/* New tables come from elsewhere; the stale walk still sees the old one. */
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_1G, e.pa, SZ_4K, RW), 0);
	assert_int_not_equal(vtd_table_pa(e.d, IOVA_BASE + SZ_1G, 0), held);
	assert_int_not_equal(vtd_table_pa(e.d, IOVA_BASE + SZ_1G, 1), held);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_4K, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_NOT_PRESENT, IOVA_BASE + SZ_4K, false);
	/* A covering leaf-only sync leaves the walk cache alone: still held. */
	iopt_iotlb_gather_init(&g);
	iopt_iotlb_gather_add_range(&g, IOVA_BASE, IOVA_BASE + SZ_2M - 1);
	iopt_domain_iotlb_sync(e.d, &g);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_1G + SZ_2M, e.pa,
					 SZ_4K, RW), 0);
	assert_int_not_equal(vtd_table_pa(e.d, IOVA_BASE + SZ_1G + SZ_2M, 0), held);
	/* A covering sync that frees a table there too releases it, unreported. */
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_4K, e.pa, SZ_4K, RW), 0);
	assert_int_equal(iopt_domain_unmap_sync(e.d, IOVA_BASE, SZ_2M), SZ_2M);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_TABLE_UNSYNCED), 1);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + 2 * SZ_1G, e.pa, SZ_4K,
					 RW), 0);
	assert_int_equal(vtd_table_pa(e.d, IOVA_BASE + 2 * SZ_1G, 0) == held ||
			 vtd_table_pa(e.d, IOVA_BASE + 2 * SZ_1G, 1) == held, 1);
	/* Flush-all releases whatever is held. */
	held = free_table_unsynced(&e, 4 * SZ_2M);
	e.d->ops->flush_iotlb_all(e.d);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + 4 * SZ_2M, e.pa, SZ_4K,
					 RW), 0);
	assert_int_equal(vtd_table_pa(e.d, IOVA_BASE + 4 * SZ_2M, 0), held);
	iopt_domain_quiesce(e.d);
	env_close(&e);
}

/* Debug stale-hit check: legal before the sync, a fault once reported. */
static void test_stale_hit_check(void **state)
{
	struct iopt_iotlb_gather g;
	uint8_t tmp[8];
	struct env e;

	(void)state;
	env_open_cfg(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, X86_SIZES,
		     ENV_STALE_CHECK);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_4K, RW), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 8);
	iopt_iotlb_gather_init(&g);
	assert_int_equal(iopt_domain_unmap(e.d, IOVA_BASE, SZ_4K, &g), SZ_4K);
	/* Between the change and its sync a stale hit is what hardware does. */
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 8);
	/* The sync never comes: after the quiesce report it is a fault. */
	iopt_domain_quiesce(e.d);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_STALE_IOTLB, IOVA_BASE, false);
	iopt_domain_iotlb_sync(e.d, &g);
	env_close(&e);
}

/* A negative cache hides a fresh map until iotlb_sync_map covers it. */
static void test_negative_cache(void **state)
{
	uint64_t mapped = 0;
	uint8_t tmp[8];
	struct env e;

	(void)state;
	env_open_cfg(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, X86_SIZES,
		     ENV_NEGATIVE);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_NOT_PRESENT, IOVA_BASE, false);
	/* map_pages alone: the cached "not present" still answers. */
	assert_int_equal(e.d->ops->map_pages(e.d, IOVA_BASE, e.pa, SZ_4K, 1, RW,
					     &mapped), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_NOT_PRESENT, IOVA_BASE, false);
	assert_int_equal(iopt_sim_domain_journal_pending(e.d), 1);
	iopt_domain_quiesce(e.d);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 1);
	assert_int_equal(e.d->ops->iotlb_sync_map(e.d, IOVA_BASE, SZ_4K), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 8);
	/* The core's map calls iotlb_sync_map: nothing stale, nothing left. */
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_2M, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_NOT_PRESENT, IOVA_BASE + SZ_2M, false);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_2M, e.pa, SZ_2M, RW), 0);
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_2M, tmp, 8), 8);
	assert_int_equal(iopt_sim_domain_journal_pending(e.d), 0);
	iopt_domain_quiesce(e.d);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 1);
	env_close(&e);
}

/* What each invalidation model drops beyond the gathered range. */
static void test_inval_models(void **state)
{
	static const struct {
		enum iopt_sim_inval_model model;
		uint64_t extra_misses;	/* of the two neighbours kept mapped */
	} cases[] = {
		{ IOPT_SIM_INVAL_RANGE, 0 },
		{ IOPT_SIM_INVAL_AMD, 2 },	/* [1, 2] widens to the aligned [0, 3] */
		{ IOPT_SIM_INVAL_VTD, 2 },
		{ IOPT_SIM_INVAL_FLUSH_ALL, 2 },
	};
	unsigned int i, p;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(cases); i++) {
		struct iopt_sim_stats st1, st2;
		uint8_t tmp[8];
		struct env e;

		env_open(&e, IOPT_SIM_FMT_AMDV1, cases[i].model, SZ_4K);
		assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, 4 * SZ_4K, RW), 0);
		for (p = 0; p < 4; p++)
			assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + p * SZ_4K,
							   tmp, 8), 8);
		assert_int_equal(iopt_domain_unmap_sync(e.d, IOVA_BASE + SZ_4K,
							2 * SZ_4K), 2 * SZ_4K);
		iopt_sim_iommu_read_stats(e.iommu, &st1);
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 8);
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + 3 * SZ_4K, tmp, 8), 8);
		iopt_sim_iommu_read_stats(e.iommu, &st2);
		assert_int_equal(st2.iotlb_misses - st1.iotlb_misses,
				 cases[i].extra_misses);
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_4K, tmp, 8), 0);
		env_close(&e);
	}
}

/* Sticky caches never evict: a second pass over 512 pages is all hits. */
static void test_iotlb_sticky(void **state)
{
	struct iopt_sim_stats st1, st2;
	uint8_t tmp[8];
	unsigned int i;
	struct env e;

	(void)state;
	env_open_cfg(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, SZ_4K, ENV_STICKY);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_2M, RW), 0);
	for (i = 0; i < 512; i++)
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + i * SZ_4K, tmp, 8), 8);
	iopt_sim_iommu_read_stats(e.iommu, &st1);
	for (i = 0; i < 512; i++)
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + i * SZ_4K, tmp, 8), 8);
	iopt_sim_iommu_read_stats(e.iommu, &st2);
	assert_int_equal(st2.iotlb_misses, st1.iotlb_misses);
	assert_int_equal(st2.iotlb_hits, st1.iotlb_hits + 512);
	/* Removing some entries keeps the others reachable (rebuilt probes). */
	assert_int_equal(iopt_domain_unmap_sync(e.d, IOVA_BASE + 64 * SZ_4K,
						64 * SZ_4K), 64 * SZ_4K);
	for (i = 0; i < 512; i++)
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + i * SZ_4K, tmp, 8),
				 i >= 64 && i < 128 ? 0 : 8);
	iopt_sim_iommu_read_stats(e.iommu, &st1);
	assert_int_equal(st1.iotlb_misses, st2.iotlb_misses + 64);
	while (iopt_sim_fault_pop(e.iommu, &(struct iopt_sim_fault){ 0 }))
		;
	env_close(&e);
}

/* ---- dirty tracking ---- */

#define MAX_REC 64

struct recorder {
	uint64_t iova[MAX_REC], len[MAX_REC];
	unsigned int n;
};

static void rec_record(void *opaque, uint64_t iova, uint64_t length)
{
	struct recorder *r = opaque;

	assert_true(r->n < MAX_REC);
	r->iova[r->n] = iova;
	r->len[r->n++] = length;
}

/* read_and_clear_dirty over [iova, +len) then sync; returns records. */
static void harvest(struct env *e, uint64_t iova, uint64_t len,
		    unsigned int flags, struct recorder *r)
{
	struct iopt_iotlb_gather g;
	struct iopt_dirty_bitmap bm = {
		.record = rec_record, .opaque = r, .gather = &g,
	};

	memset(r, 0, sizeof(*r));
	iopt_iotlb_gather_init(&g);
	assert_int_equal(e->d->ops->read_and_clear_dirty(e->d, iova, len, flags,
							 &bm), 0);
	iopt_domain_iotlb_sync(e->d, &g);
}

struct oracle {
	const struct recorder *r;
	unsigned int missed;
};

static void oracle_page(void *arg, uint64_t iova)
{
	struct oracle *o = arg;
	unsigned int i;

	for (i = 0; i < o->r->n; i++)
		if (iova >= o->r->iova[i] && iova - o->r->iova[i] < o->r->len[i])
			return;
	o->missed++;
}

/* Pages written since the last harvest that @r failed to report. */
static unsigned int oracle_missed(struct env *e, const struct recorder *r)
{
	struct oracle o = { .r = r };

	iopt_sim_domain_written_for_each(e->d, oracle_page, &o);
	iopt_sim_domain_written_clear(e->d);
	return o.missed;
}

static uint64_t entry_at(struct iopt_domain *d, uint64_t iova,
			 unsigned int level)
{
	uint64_t v = 0;

	assert_int_equal(iopt_sim_domain_read_entry(d, iova, level, &v), 0);
	return v;
}

#define AMD_D (UINT64_C(1) << 6)

static void test_dirty_amd_replicas(void **state)
{
	uint8_t tmp[64] = { 1 };
	struct recorder r;
	unsigned int i;
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_AMDV1, IOPT_SIM_INVAL_AMD, SZ_4K | SZ_64K | SZ_2M);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_64K, RW), 0);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_2M, e.pa + SZ_2M,
					 SZ_2M, RW), 0);
	/* D only while tracking: a write now leaves the table clean. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 8);
	assert_int_equal(entry_at(e.d, IOVA_BASE, 0) & AMD_D, 0);
	/* A stale D (set while off) is cleared when tracking is enabled. */
	assert_int_equal(iopt_sim_domain_set_dirty(e.d, IOVA_BASE + SZ_2M), 0);
	assert_int_equal(e.d->ops->set_dirty_tracking(e.d, true), 0);
	assert_int_equal(entry_at(e.d, IOVA_BASE + SZ_2M, 1) & AMD_D, 0);
	iopt_sim_domain_written_clear(e.d);

	/* Write into replica 5: only that replica gets D; the report is 64K. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + 5 * SZ_4K, tmp, 8), 8);
	for (i = 0; i < 16; i++)
		assert_int_equal(!!(entry_at(e.d, IOVA_BASE + i * SZ_4K, 0) & AMD_D),
				 i == 5);
	harvest(&e, IOVA_BASE, SZ_4K, IOPT_DIRTY_NO_CLEAR, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.iova[0], IOVA_BASE);
	assert_int_equal(r.len[0], SZ_64K);
	assert_int_not_equal(entry_at(e.d, IOVA_BASE + 5 * SZ_4K, 0) & AMD_D, 0);
	harvest(&e, IOVA_BASE, 4 * SZ_2M, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(oracle_missed(&e, &r), 0);
	for (i = 0; i < 16; i++)
		assert_int_equal(entry_at(e.d, IOVA_BASE + i * SZ_4K, 0) & AMD_D, 0);
	harvest(&e, IOVA_BASE, 4 * SZ_2M, 0, &r);
	assert_int_equal(r.n, 0);

	/* A dirty 2M leaf is reported whole, even from a 4K query at its end. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + SZ_2M + 12345, tmp, 1), 1);
	harvest(&e, IOVA_BASE + 2 * SZ_2M - SZ_4K, SZ_4K, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.iova[0], IOVA_BASE + SZ_2M);
	assert_int_equal(r.len[0], SZ_2M);
	assert_int_equal(oracle_missed(&e, &r), 0);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 0);
	env_close(&e);
}

/*
 * With tracking off a read that wants bits is -EINVAL (AMD and VT-d refuse
 * too); clearing without a bitmap, as the core does before enabling, is not.
 */
static void test_dirty_read_needs_tracking(void **state)
{
	unsigned int fmt;

	(void)state;
	for (fmt = 0; fmt < IOPT_SIM_FMT_NR; fmt++) {
		struct iopt_iotlb_gather g;
		struct recorder r = { .n = 0 };
		struct iopt_dirty_bitmap bm = {
			.record = rec_record, .opaque = &r, .gather = &g,
		};
		struct iopt_dirty_bitmap clear_only = { .gather = &g };
		struct env e;

		env_open(&e, fmt, IOPT_SIM_INVAL_RANGE, 0);
		assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_4K, RW), 0);
		assert_int_equal(iopt_sim_domain_set_dirty(e.d, IOVA_BASE), 0);
		iopt_iotlb_gather_init(&g);
		assert_int_equal(e.d->ops->read_and_clear_dirty(e.d, IOVA_BASE, SZ_4K,
								IOPT_DIRTY_NO_CLEAR,
								&bm), -EINVAL);
		assert_int_equal(r.n, 0);
		assert_int_equal(e.d->ops->read_and_clear_dirty(e.d, IOVA_BASE, SZ_4K,
								0, &clear_only), 0);
		iopt_domain_iotlb_sync(e.d, &g);
		assert_int_equal(e.d->ops->set_dirty_tracking(e.d, true), 0);
		assert_int_equal(e.d->ops->read_and_clear_dirty(e.d, IOVA_BASE, SZ_4K,
								0, &bm), 0);
		assert_int_equal(r.n, 0);
		iopt_domain_iotlb_sync(e.d, &g);
		env_close(&e);
	}
}

/* Clearing D without invalidating: later writes hit the cached D and are lost. */
static void test_dirty_cached_d_lost_without_flush(void **state)
{
	struct iopt_dirty_bitmap bm = { 0 };
	struct iopt_iotlb_gather g;
	uint8_t tmp[8] = { 0 };
	struct recorder r;
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_VTDSS, IOPT_SIM_INVAL_RANGE, X86_SIZES);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_4K, RW), 0);
	assert_int_equal(e.d->ops->set_dirty_tracking(e.d, true), 0);
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 8);
	/* Clear the D bits but drop the gather (the bug). */
	iopt_iotlb_gather_init(&g);
	bm.gather = &g;
	assert_int_equal(e.d->ops->read_and_clear_dirty(e.d, IOVA_BASE, SZ_4K, 0,
							&bm), 0);
	assert_false(iopt_iotlb_gather_is_empty(&g));
	iopt_sim_domain_written_clear(e.d);
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 8);
	harvest(&e, IOVA_BASE, SZ_4K, 0, &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(oracle_missed(&e, &r), 1);	/* the oracle exposes it */
	iopt_domain_quiesce(e.d);
	assert_int_equal(env_reports(&e, IOPT_SIM_REPORT_MISSING_INVAL), 1);

	/* Done right: sync the clearing gather; the next write walks and sets D. */
	iopt_domain_iotlb_sync(e.d, &g);
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 8);
	harvest(&e, IOVA_BASE, SZ_4K, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(oracle_missed(&e, &r), 0);
	env_close(&e);
}

#define ARM_AP_RDONLY	(UINT64_C(1) << 7)
#define ARM_AF		(UINT64_C(1) << 10)
#define ARM_DBM		(UINT64_C(1) << 51)

/*
 * A walk that uses a leaf sets the format's Accessed bit whatever the
 * tracking state; D needs tracking; a faulting access sets neither.
 */
static void test_accessed_bit_per_format(void **state)
{
	static const struct {
		enum iopt_sim_format fmt;
		uint64_t a, d;		/* 0: the format has no such bit */
	} fmts[] = {
		{ IOPT_SIM_FMT_AMDV1, UINT64_C(1) << 5, UINT64_C(1) << 6 },
		{ IOPT_SIM_FMT_AMDV1_2K, UINT64_C(1) << 5, UINT64_C(1) << 6 },
		{ IOPT_SIM_FMT_VTDSS, UINT64_C(1) << 8, UINT64_C(1) << 9 },
		{ IOPT_SIM_FMT_ARM_LPAE_S1, 0, 0 },
	};
	uint8_t tmp[8] = { 0 };
	unsigned int i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(fmts); i++) {
		uint64_t before;
		struct env e;

		env_open(&e, fmts[i].fmt, IOPT_SIM_INVAL_RANGE, 0);
		assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_4K, RW), 0);
		assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_4K, e.pa + SZ_4K,
						 SZ_4K, IOPT_PROT_READ), 0);
		before = entry_at(e.d, IOVA_BASE, 0);
		assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE, tmp, 8), 8);
		if (!fmts[i].a) {
			/* ARM: AF is written by map (io-pgtable-arm); DMA changes nothing. */
			assert_int_not_equal(before & ARM_AF, 0);
			assert_int_equal(entry_at(e.d, IOVA_BASE, 0), before);
			env_close(&e);
			continue;
		}
		assert_int_equal(before & (fmts[i].a | fmts[i].d), 0);
		assert_int_equal(entry_at(e.d, IOVA_BASE, 0), before | fmts[i].a);
		/* A write with tracking off: walk cached, nothing more to set. */
		e.d->ops->flush_iotlb_all(e.d);
		assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 8);
		assert_int_equal(entry_at(e.d, IOVA_BASE, 0), before | fmts[i].a);
		/* Refused by permission: the read-only leaf stays untouched. */
		before = entry_at(e.d, IOVA_BASE + SZ_4K, 0);
		assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + SZ_4K, tmp, 8), 0);
		pop_fault(&e, IOPT_SIM_FAULT_PERMISSION, IOVA_BASE + SZ_4K, true);
		assert_int_equal(entry_at(e.d, IOVA_BASE + SZ_4K, 0), before);
		env_close(&e);
	}
}

/*
 * SMMUv3 keeps hardware dirty updates (CD.HD) on for the life of a
 * dirty-capable domain; set_dirty_tracking does nothing there. So writes to
 * a writable ARM leaf never fault because tracking was turned off again.
 */
static void test_dirty_arm_off_after_on(void **state)
{
	uint8_t tmp[8] = { 0 };
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_ARM_LPAE_S1, IOPT_SIM_INVAL_RANGE, X86_SIZES);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, 2 * SZ_4K, RW), 0);
	assert_int_equal(e.d->ops->set_dirty_tracking(e.d, true), 0);
	/* Page 1 is cached writable-clean while tracking is on. */
	assert_int_equal(iopt_sim_dma_read(e.dev, IOVA_BASE + SZ_4K, tmp, 8), 8);
	assert_int_equal(e.d->ops->set_dirty_tracking(e.d, false), 0);
	assert_int_equal(entry_at(e.d, IOVA_BASE, 0) & (ARM_DBM | ARM_AP_RDONLY),
			 ARM_DBM | ARM_AP_RDONLY);
	/* Through a walk, and through the cached clean entry. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE, tmp, 8), 8);
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + SZ_4K, tmp, 8), 8);
	assert_int_equal(entry_at(e.d, IOVA_BASE, 0) & ARM_AP_RDONLY, 0);
	assert_int_equal(entry_at(e.d, IOVA_BASE + SZ_4K, 0) & ARM_AP_RDONLY, 0);
	env_close(&e);
}

static void test_dirty_arm_dbm(void **state)
{
	uint8_t tmp[8] = { 0 };
	struct recorder r;
	struct env e;

	(void)state;
	env_open(&e, IOPT_SIM_FMT_ARM_LPAE_S1, IOPT_SIM_INVAL_RANGE, X86_SIZES);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE, e.pa, SZ_2M, RW), 0);
	assert_int_equal(iopt_domain_map(e.d, IOVA_BASE + SZ_2M, e.pa + SZ_2M, SZ_4K,
					 IOPT_PROT_READ), 0);
	/* Created writable-dirty; enabling tracking makes it writable-clean. */
	assert_int_equal(entry_at(e.d, IOVA_BASE, 1) & (ARM_DBM | ARM_AP_RDONLY),
			 ARM_DBM);
	assert_int_equal(e.d->ops->set_dirty_tracking(e.d, true), 0);
	assert_int_equal(entry_at(e.d, IOVA_BASE, 1) & (ARM_DBM | ARM_AP_RDONLY),
			 ARM_DBM | ARM_AP_RDONLY);
	/* The hardware write clears AP[2]. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + 77, tmp, 8), 8);
	assert_int_equal(entry_at(e.d, IOVA_BASE, 1) & ARM_AP_RDONLY, 0);
	harvest(&e, IOVA_BASE, SZ_2M, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.len[0], SZ_2M);
	assert_int_equal(oracle_missed(&e, &r), 0);
	assert_int_not_equal(entry_at(e.d, IOVA_BASE, 1) & ARM_AP_RDONLY, 0);
	/* Read-only (no DBM) stays a permission fault. */
	assert_int_equal(iopt_sim_dma_write(e.dev, IOVA_BASE + SZ_2M, tmp, 8), 0);
	pop_fault(&e, IOPT_SIM_FAULT_PERMISSION, IOVA_BASE + SZ_2M, true);
	env_close(&e);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_dma_round_trip),
	cmocka_unit_test(test_dma_faults),
	cmocka_unit_test(test_dma_fault_oa_too_wide),
	cmocka_unit_test(test_stale_without_flush),
	cmocka_unit_test(test_gather_too_narrow),
	cmocka_unit_test(test_gather_wrong_domain),
	cmocka_unit_test(test_freed_table_quarantine),
	cmocka_unit_test(test_iotlb_sticky),
	cmocka_unit_test(test_inval_models),
	cmocka_unit_test(test_stale_hit_check),
	cmocka_unit_test(test_negative_cache),
	cmocka_unit_test(test_dirty_amd_replicas),
	cmocka_unit_test(test_dirty_read_needs_tracking),
	cmocka_unit_test(test_dirty_cached_d_lost_without_flush),
	cmocka_unit_test(test_dirty_arm_dbm),
	cmocka_unit_test(test_accessed_bit_per_format),
	cmocka_unit_test(test_dirty_arm_off_after_on),
};

IOPT_TEST_MAIN(tests)
