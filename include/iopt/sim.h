/* SPDX-License-Identifier: MIT */
/*
 * iopt/sim.h - the simulated IOMMU: real page-table formats, an IOTLB that
 * must be invalidated, and a DMA engine that reads and writes host memory
 * through the translation.
 *
 * Objects and lifetimes:
 * - struct iopt_sim_iommu: one IOMMU instance (IOTLB, walk cache, fault ring,
 *   invalidation model, statistics). iopt_sim_iommu_alloc() /
 *   iopt_sim_iommu_destroy(); destroy only after every domain and device
 *   made on it is gone.
 * - domains: iopt_sim_domain_alloc() returns a struct iopt_domain
 *   (iopt/domain.h) owned by the caller, who hands it to the core or frees
 *   it with domain->ops->free(). Each has a format, its own table arena in
 *   simulated physical space, and a change journal (unless disabled).
 * - struct iopt_sim_dev: a device issuing DMA; attached to at most one
 *   domain at a time. Detach (attach NULL) before freeing the domain.
 *
 * Output addresses are simulated physical addresses resolved through the
 * frame table (iopt/phys.h); DMA to a frame that is not pinned faults.
 * Table pages live at sim-PAs from 2^44 upwards, outside the frame window.
 *
 * Threads: every function may be called concurrently with DMA and with
 * domain ops on disjoint ranges, except *_destroy / ops->free.
 * docs/sim.md describes the model and what it detects.
 */
#ifndef IOPT_SIM_H
#define IOPT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/domain.h>
#include <iopt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iopt_sim_iommu;
struct iopt_sim_dev;

enum iopt_sim_format {
	IOPT_SIM_FMT_AMDV1,		/* AMD v1, 4K granule, dynamic top */
	IOPT_SIM_FMT_AMDV1_2K,		/* AMD v1 with a 2 KiB granule (the selftest mock) */
	IOPT_SIM_FMT_VTDSS,		/* Intel VT-d second stage, 3/4/5 levels */
	IOPT_SIM_FMT_ARM_LPAE_S1,	/* Arm LPAE stage 1, 4K granule */
	IOPT_SIM_FMT_NR,
};

/* How iotlb_sync turns a gather into invalidations (domain-contract.md §3.5). */
enum iopt_sim_inval_model {
	IOPT_SIM_INVAL_RANGE,		/* exactly [start, last] */
	IOPT_SIM_INVAL_AMD,		/* naturally aligned power-of-two cover */
	IOPT_SIM_INVAL_VTD,		/* page-selective 2^AM pages, else domain */
	IOPT_SIM_INVAL_FLUSH_ALL,	/* whole domain on every sync */
};

/* Why a DMA stopped. */
enum iopt_sim_fault_reason {
	IOPT_SIM_FAULT_NOT_PRESENT,	/* walk found nothing; @level says where */
	IOPT_SIM_FAULT_PERMISSION,
	IOPT_SIM_FAULT_APERTURE,	/* IOVA outside the domain's aperture */
	IOPT_SIM_FAULT_OA_TOO_WIDE,	/* leaf output beyond the output width */
	IOPT_SIM_FAULT_UNPINNED,	/* output frame not pinned */
	IOPT_SIM_FAULT_FREED_TABLE,	/* walk cache pointed at a recycled table */
	IOPT_SIM_FAULT_NO_DOMAIN,	/* device not attached */
	IOPT_SIM_FAULT_STALE_IOTLB,	/* hit on a translation no longer in the
					 * table and not awaiting a sync (stale_check) */
	IOPT_SIM_FAULT_NR_REASONS,
};

/**
 * struct iopt_sim_fault - one recorded DMA fault.
 * @dev_id: the device's id.
 * @iova: first IOVA that could not be accessed.
 * @write: the access was a write.
 * @reason: enum iopt_sim_fault_reason.
 * @level: table level where the walk stopped (NOT_PRESENT).
 * @entry: raw entry where the walk stopped (0 when none).
 */
struct iopt_sim_fault {
	uint32_t dev_id;
	uint64_t iova;
	bool write;
	enum iopt_sim_fault_reason reason;
	unsigned int level;
	uint64_t entry;
};

/* What a missing-invalidation report is about. */
enum iopt_sim_report_kind {
	IOPT_SIM_REPORT_MISSING_INVAL,	/* a change survived a quiesce point */
	IOPT_SIM_REPORT_TABLE_UNSYNCED,	/* freed table released without covering sync */
	IOPT_SIM_REPORT_BAD_GATHER,	/* gather start/last not page aligned */
	IOPT_SIM_REPORT_JOURNAL_FULL,	/* records were dropped; checks incomplete */
};

/**
 * struct iopt_sim_report - a protocol violation found by the checkers.
 * @kind: enum iopt_sim_report_kind.
 * @domain_id: iopt_sim_domain_id() of the domain.
 * @first: first IOVA concerned.
 * @last: last IOVA concerned (inclusive).
 * @level: table level of the change.
 */
struct iopt_sim_report {
	enum iopt_sim_report_kind kind;
	uint32_t domain_id;
	uint64_t first;
	uint64_t last;
	unsigned int level;
};

/**
 * struct iopt_sim_iommu_config - options of a simulated IOMMU; all-zero is a
 * sensible default.
 * @iotlb_entries: leaf-cache capacity, rounded up to a power of two
 *		   (0 = 1024). Realistic mode replaces on collision.
 * @walk_entries: walk-cache capacity (0 = 256).
 * @sticky: the caches never evict (worst case for missing flushes).
 * @negative_cache: cache "not present" results too (VT-d caching mode, a
 *		    virtualized IOMMU): a map is then invisible to DMA that
 *		    faulted there before, until iotlb_sync_map covers it.
 * @stale_check: debug: re-walk the table on every IOTLB hit; a hit whose
 *		 translation left the table with no change awaiting a sync
 *		 (the journal has nothing there) faults STALE_IOTLB.
 * @inval_model: enum iopt_sim_inval_model.
 * @fault_ring: fault records kept before overflow (0 = 64).
 * @fault_cb: optional; called for every fault, from the DMA thread.
 * @report_cb: optional; called for every checker report.
 * @opaque: passed to both callbacks.
 */
struct iopt_sim_iommu_config {
	unsigned int iotlb_entries;
	unsigned int walk_entries;
	bool sticky;
	bool negative_cache;
	bool stale_check;
	enum iopt_sim_inval_model inval_model;
	unsigned int fault_ring;
	void (*fault_cb)(void *opaque, const struct iopt_sim_fault *f);
	void (*report_cb)(void *opaque, const struct iopt_sim_report *r);
	void *opaque;
};

/**
 * struct iopt_sim_domain_config - options of a simulated domain; all-zero is
 * an AMD v1 domain with every size, the format's full aperture and the
 * journal on.
 * @format: enum iopt_sim_format.
 * @levels: VT-d 3, 4 or 5 (0 = 4); ignored by other formats.
 * @oa_bits: narrower output width (0 = the format's).
 * @pgsize_mask: restricts the leaf sizes (0 = all the format has).
 * @aperture_start: first IOVA (with @aperture_last 0: the whole range).
 * @aperture_last: last IOVA, inclusive (0 = the format's last IOVA).
 * @table_arena_bytes: simulated table memory reserved (0 = 256 MiB).
 * @no_journal: skip the change journal (benchmarks).
 * @journal_records: journal capacity (0 = 65536).
 */
struct iopt_sim_domain_config {
	enum iopt_sim_format format;
	unsigned int levels;
	unsigned int oa_bits;
	uint64_t pgsize_mask;
	uint64_t aperture_start;
	uint64_t aperture_last;
	uint64_t table_arena_bytes;
	bool no_journal;
	unsigned int journal_records;
};

/**
 * struct iopt_sim_stats - counters of one simulated IOMMU.
 * @iotlb_hits: leaf-cache hits.
 * @iotlb_misses: leaf-cache misses (each a table walk).
 * @walk_hits: walks that started below the root thanks to the walk cache.
 * @invalidations: invalidation commands executed.
 * @faults: DMA faults, by reason.
 * @faults_dropped: faults not recorded because the ring was full.
 * @reports: checker reports, by kind.
 */
struct iopt_sim_stats {
	uint64_t iotlb_hits;
	uint64_t iotlb_misses;
	uint64_t walk_hits;
	uint64_t invalidations;
	uint64_t faults[IOPT_SIM_FAULT_NR_REASONS];
	uint64_t faults_dropped;
	uint64_t reports[4];
};

/**
 * iopt_sim_iommu_alloc() - create a simulated IOMMU.
 * @cfg: options, or NULL for defaults.
 * @out: receives the IOMMU.
 *
 * Return: 0, -EINVAL for a bad option, -ENOMEM.
 * On failure: nothing is allocated.
 */
IOPT_API int iopt_sim_iommu_alloc(const struct iopt_sim_iommu_config *cfg,
				  struct iopt_sim_iommu **out);

/** iopt_sim_iommu_destroy() - free @iommu (no domain or device may remain). */
IOPT_API void iopt_sim_iommu_destroy(struct iopt_sim_iommu *iommu);

/** iopt_sim_iommu_read_stats() - copy @iommu's counters into @stats. */
IOPT_API void iopt_sim_iommu_read_stats(struct iopt_sim_iommu *iommu,
					struct iopt_sim_stats *stats);

/**
 * iopt_sim_fault_pop() - take the oldest recorded fault.
 * @iommu: IOMMU.
 * @f: receives the fault.
 *
 * Return: true when a fault was taken, false when the ring is empty.
 */
IOPT_API bool iopt_sim_fault_pop(struct iopt_sim_iommu *iommu,
				 struct iopt_sim_fault *f);

/**
 * iopt_sim_fault_reason_name() - a short name for a fault reason, for logs.
 * @reason: enum iopt_sim_fault_reason.
 *
 * Return: a static string such as "not present"; "unknown" out of range.
 */
IOPT_API const char *iopt_sim_fault_reason_name(enum iopt_sim_fault_reason reason);

/**
 * iopt_sim_domain_alloc() - create a domain on @iommu.
 * @iommu: IOMMU whose IOTLB caches this domain.
 * @cfg: options, or NULL for defaults.
 * @out: receives the domain; free it with (*out)->ops->free(*out).
 *
 * Return: 0; -EINVAL for a bad option (VT-d levels, empty size mask,
 * aperture beyond the format); -ENOMEM.
 */
IOPT_API int iopt_sim_domain_alloc(struct iopt_sim_iommu *iommu,
				   const struct iopt_sim_domain_config *cfg,
				   struct iopt_domain **out);

/** iopt_sim_is_domain() - true when @d was made by iopt_sim_domain_alloc(). */
IOPT_API bool iopt_sim_is_domain(const struct iopt_domain *d);

/** iopt_sim_domain_id() - small unique number of a simulated domain. */
IOPT_API uint32_t iopt_sim_domain_id(const struct iopt_domain *d);

/**
 * iopt_sim_domain_read_entry() - raw entry a walk for @iova meets at @level.
 * @d: simulated domain.
 * @iova: IOVA.
 * @level: table level (0 = smallest leaves).
 * @entry: receives the 64-bit entry.
 *
 * Return: 0; -ENOENT when the walk ends above @level.
 */
IOPT_API int iopt_sim_domain_read_entry(struct iopt_domain *d, uint64_t iova,
					unsigned int level, uint64_t *entry);

/**
 * iopt_sim_domain_write_entry() - overwrite the raw entry a walk for @iova
 * meets at @level (test hook: a corrupted table, as a driver bug or a stray
 * write would leave it).
 * @d: simulated domain.
 * @iova: IOVA.
 * @level: table level (0 = smallest leaves).
 * @entry: the new 64-bit entry, stored as is.
 *
 * Nothing is journaled or invalidated, and the engine trusts the tables: the
 * caller restores a consistent entry (or clears it) before unmapping or
 * freeing the domain. Return: 0; -ENOENT when the walk ends above @level.
 */
IOPT_API int iopt_sim_domain_write_entry(struct iopt_domain *d, uint64_t iova,
					 unsigned int level, uint64_t entry);

/**
 * iopt_sim_domain_count_leaves() - count leaves by size (a replicated run is
 * one leaf) in [@first, @last].
 * @d: simulated domain.
 * @first: first IOVA.
 * @last: last IOVA (inclusive).
 * @counts: 64 counters, counts[n] += leaves of 2^n bytes; may be NULL.
 *
 * Return: total leaves.
 */
IOPT_API uint64_t iopt_sim_domain_count_leaves(struct iopt_domain *d,
					       uint64_t first, uint64_t last,
					       uint64_t counts[64]);

/** iopt_sim_domain_nr_tables() - tables currently linked (root included). */
IOPT_API uint32_t iopt_sim_domain_nr_tables(struct iopt_domain *d);

/** iopt_sim_domain_top_level() - current top level (levels - 1). */
IOPT_API unsigned int iopt_sim_domain_top_level(struct iopt_domain *d);

/**
 * iopt_sim_domain_journal_pending() - changes not yet covered by a sync.
 * @d: simulated domain.
 *
 * Return: outstanding journal records (0 when the journal is off).
 */
IOPT_API size_t iopt_sim_domain_journal_pending(struct iopt_domain *d);

/**
 * iopt_sim_domain_set_dirty() - mark the leaf holding @iova dirty, as a
 * device write with tracking on would (test hook, iommupt's set_dirty).
 * @d: simulated domain.
 * @iova: IOVA inside a writable leaf.
 *
 * Return: 0; -ENOENT when nothing is mapped; -EPERM when not writable.
 */
IOPT_API int iopt_sim_domain_set_dirty(struct iopt_domain *d, uint64_t iova);

/**
 * iopt_sim_domain_fail_tables() - make the next map fail with -ENOMEM after
 * @n more table allocations (negative = never).
 * @d: simulated domain.
 * @n: allocations that still succeed.
 */
IOPT_API void iopt_sim_domain_fail_tables(struct iopt_domain *d, long n);

/**
 * iopt_sim_domain_fail_leaves() - make map fail with -ENOMEM once @n more
 * leaves have been installed (negative = never); exercises the core's
 * unwinding of a partial map.
 * @d: simulated domain.
 * @n: leaves that still succeed.
 */
IOPT_API void iopt_sim_domain_fail_leaves(struct iopt_domain *d, long n);

/**
 * iopt_sim_domain_written() - ground truth: was a 4 KiB page written by DMA
 * since the last iopt_sim_domain_written_clear()?
 * @d: simulated domain.
 * @iova: any IOVA in the page.
 */
IOPT_API bool iopt_sim_domain_written(struct iopt_domain *d, uint64_t iova);

/**
 * iopt_sim_domain_written_for_each() - call @fn for every written 4 KiB page
 * (its first IOVA), in no particular order.
 * @d: simulated domain.
 * @fn: callback.
 * @arg: passed to @fn.
 *
 * Return: number of pages.
 */
IOPT_API size_t iopt_sim_domain_written_for_each(struct iopt_domain *d,
						 void (*fn)(void *arg,
							    uint64_t iova),
						 void *arg);

/** iopt_sim_domain_written_clear() - forget every written page. */
IOPT_API void iopt_sim_domain_written_clear(struct iopt_domain *d);

/**
 * iopt_sim_dev_alloc() - create a device on @iommu.
 * @iommu: IOMMU.
 * @id: id recorded in faults.
 * @out: receives the device.
 *
 * Return: 0 or -ENOMEM.
 */
IOPT_API int iopt_sim_dev_alloc(struct iopt_sim_iommu *iommu, uint32_t id,
				struct iopt_sim_dev **out);

/** iopt_sim_dev_destroy() - free a device (no DMA may be in flight). */
IOPT_API void iopt_sim_dev_destroy(struct iopt_sim_dev *dev);

/**
 * iopt_sim_dev_attach() - route @dev's DMA through @d (NULL detaches).
 * @dev: device.
 * @d: simulated domain on the same IOMMU, or NULL.
 *
 * Return: 0; -EINVAL when @d is not a simulated domain of that IOMMU.
 */
IOPT_API int iopt_sim_dev_attach(struct iopt_sim_dev *dev,
				 struct iopt_domain *d);

/**
 * iopt_sim_dma_read() - device reads [@iova, @iova + @len) into @buf.
 * @dev: device.
 * @iova: first IOVA.
 * @buf: destination.
 * @len: bytes.
 *
 * Translates through the IOTLB, then the tables; a walk sets the leaf's
 * Accessed bit (formats that have one). A fault stops the transfer and is
 * recorded.
 *
 * Return: bytes completed (== @len unless a fault was recorded).
 */
IOPT_API uint64_t iopt_sim_dma_read(struct iopt_sim_dev *dev, uint64_t iova,
				    void *buf, uint64_t len);

/**
 * iopt_sim_dma_write() - device writes @buf to [@iova, @iova + @len).
 * @dev: device.
 * @iova: first IOVA.
 * @buf: source.
 * @len: bytes.
 *
 * As iopt_sim_dma_read(); also sets D on entries whose cached translation
 * does not already have it while the IOMMU updates dirty state (AMD, VT-d:
 * while tracking is on; ARM: always, as SMMUv3 keeps HD set), and records
 * every written page in the ground-truth set.
 *
 * Return: bytes completed.
 */
IOPT_API uint64_t iopt_sim_dma_write(struct iopt_sim_dev *dev, uint64_t iova,
				     const void *buf, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif /* IOPT_SIM_H */
