/* SPDX-License-Identifier: MIT */
/*
 * iopt/domain.h - the contract between libiopt's core and an IOMMU page table.
 *
 * A domain is one IOMMU page table. The core programs it only through struct
 * iopt_domain_ops, which has the shape of the Linux kernel's iommu_domain_ops
 * and iommu_dirty_ops, so that the core is written against the real contract
 * and a user can plug in another backend (an emulator's own vIOMMU model).
 * The simulator in sim/ (iopt/sim.h) is one such backend.
 *
 * Vocabulary: IOVAs, physical addresses and lengths are uint64_t; "last" is
 * inclusive, "end" exclusive. A physical address ("paddr") is a simulated
 * physical byte address (frame number << 12, see iopt/phys.h), never a host
 * pointer.
 *
 * Ownership and lifetimes:
 * - A backend allocates a structure that embeds struct iopt_domain, fills in
 *   every field below and hands &embedded to the core. The core never frees
 *   it directly: it calls ops->free() exactly once, after which neither the
 *   core nor the backend touches the domain. free() must release everything,
 *   including tables that still hold mappings and tables sitting on a gather
 *   that was never synced.
 * - A gather (struct iopt_iotlb_gather) is owned by whoever declared it
 *   (usually on the stack). Backends link freed table pages onto its freelist
 *   through nodes that the backend owns; the pages stay reachable by the
 *   (simulated) hardware until ops->iotlb_sync() has run on that gather, and
 *   only iotlb_sync() may release them. So every gather that received an
 *   unmap must be synced on the same domain before it goes out of scope.
 *
 * Locking: the caller provides it. The core holds an IOVA-range lock at least
 * as large as one map or unmap call, so concurrent calls never touch the same
 * IOVA; calls on disjoint ranges may run concurrently, and a backend must
 * cope with that (racing to install a shared intermediate table, for one).
 * Hardware (simulated DMA) may walk the table and set A/D bits at any time.
 */
#ifndef IOPT_DOMAIN_H
#define IOPT_DOMAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <iopt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* prot bits for map_pages(); values are ours, meanings are the kernel's IOMMU_* */
#define IOPT_PROT_READ		(1 << 0)	/* device may read */
#define IOPT_PROT_WRITE		(1 << 1)	/* device may write */
#define IOPT_PROT_CACHE		(1 << 2)	/* cache-coherent memory (iommufd always adds it) */
#define IOPT_PROT_NOEXEC	(1 << 3)
#define IOPT_PROT_MMIO		(1 << 4)
#define IOPT_PROT_PRIV		(1 << 5)

/* flags for read_and_clear_dirty() */
#define IOPT_DIRTY_NO_CLEAR	(1u << 0)	/* report dirty leaves but keep them dirty */

/**
 * struct iopt_gather_page - link for one freed table page on a gather.
 * @next: next freed page, NULL at the end.
 *
 * Embedded in the backend's own per-table bookkeeping (never inside the table
 * page itself); the backend recovers its structure with container_of() in
 * iotlb_sync(). The core only moves or inspects the list head.
 */
struct iopt_gather_page {
	struct iopt_gather_page *next;
};

/**
 * struct iopt_iotlb_gather - IOVA ranges and table pages awaiting invalidation.
 * @start: first IOVA changed; UINT64_MAX when empty.
 * @last: last IOVA changed (inclusive); 0 when empty.
 * @pgsize: granule hint for backends that invalidate uniformly (0 = none).
 * @freelist: table pages unlinked by unmap; released only by iotlb_sync().
 * @queued: a flush-all will follow (lazy mode), so range invalidation may be
 *	    skipped; freed pages are still only released by iotlb_sync().
 * @leaf_levels: bit n set when a leaf was removed from a level-n table
 *		 (level 0 holds the smallest pages).
 * @table_levels: bit n set when a level-n table was freed; zero exactly when
 *		  @freelist is empty.
 *
 * Initialise with iopt_iotlb_gather_init(). Not locked: one gather belongs to
 * one thread.
 */
struct iopt_iotlb_gather {
	uint64_t start;
	uint64_t last;
	uint64_t pgsize;
	struct iopt_gather_page *freelist;
	bool queued;
	uint32_t leaf_levels;
	uint32_t table_levels;
};

/**
 * iopt_iotlb_gather_init() - make @g empty.
 * @g: gather to initialise.
 */
static inline void iopt_iotlb_gather_init(struct iopt_iotlb_gather *g)
{
	*g = (struct iopt_iotlb_gather){ .start = UINT64_MAX };
}

/**
 * iopt_iotlb_gather_is_empty() - true when @g holds no range and no page.
 * @g: gather.
 */
static inline bool iopt_iotlb_gather_is_empty(const struct iopt_iotlb_gather *g)
{
	return g->start > g->last && !g->freelist;
}

/**
 * iopt_iotlb_gather_add_range() - widen @g to cover [@iova, @last].
 * @g: gather.
 * @iova: first changed IOVA.
 * @last: last changed IOVA (inclusive), >= @iova.
 */
static inline void iopt_iotlb_gather_add_range(struct iopt_iotlb_gather *g,
					       uint64_t iova, uint64_t last)
{
	if (g->start > g->last) {
		g->start = iova;
		g->last = last;
		return;
	}
	if (iova < g->start)
		g->start = iova;
	if (last > g->last)
		g->last = last;
}

/**
 * iopt_iotlb_gather_add_page() - put one freed table page on @g's freelist.
 * @g: gather.
 * @page: the backend's link for that page.
 * @level: level of the freed table (0 = holds the smallest leaves).
 */
static inline void iopt_iotlb_gather_add_page(struct iopt_iotlb_gather *g,
					      struct iopt_gather_page *page,
					      unsigned int level)
{
	page->next = g->freelist;
	g->freelist = page;
	g->table_levels |= 1u << level;
}

/**
 * struct iopt_dirty_bitmap - where read_and_clear_dirty() reports dirty leaves.
 * @record: called once per dirty leaf with its whole extent [iova, iova +
 *	    length); may be NULL (clear only, as when tracking is enabled).
 *	    Lengths are leaf sizes, so a record may reach beyond the range asked
 *	    for; the writer must handle that.
 * @opaque: the writer's state (the core's iova_bitmap).
 * @gather: receives every range whose dirty state was cleared; the caller
 *	    syncs it after the last read_and_clear_dirty() of a pass.
 *
 * Backends report through iopt_dirty_bitmap_record(), never @record directly.
 */
struct iopt_dirty_bitmap {
	void (*record)(void *opaque, uint64_t iova, uint64_t length);
	void *opaque;
	struct iopt_iotlb_gather *gather;
};

/**
 * iopt_dirty_bitmap_record() - report one dirty leaf.
 * @dirty: bitmap writer.
 * @iova: leaf start.
 * @length: leaf size in bytes.
 *
 * The range also goes into @dirty->gather: the backend calls this only for
 * leaves it is about to clean (or, with IOPT_DIRTY_NO_CLEAR, harmlessly).
 */
static inline void iopt_dirty_bitmap_record(struct iopt_dirty_bitmap *dirty,
					    uint64_t iova, uint64_t length)
{
	if (dirty->record)
		dirty->record(dirty->opaque, iova, length);
	if (dirty->gather)
		iopt_iotlb_gather_add_range(dirty->gather, iova, iova + length - 1);
}

struct iopt_domain;

/**
 * struct iopt_domain_ops - what a backend implements.
 *
 * All callbacks are mandatory except those marked optional.
 *
 * @map_pages: install [@iova, @iova + @pgsize * @pgcount) -> @paddr. The core
 *	guarantees @pgsize is in pgsize_bitmap and @iova, @paddr are aligned to
 *	it. The backend may use larger leaves where alignment and pgsize_bitmap
 *	allow. It adds the bytes it installed to *@mapped (never resets it),
 *	even on error. Return: 0, -EINVAL (prot has neither READ nor WRITE, or
 *	range outside the aperture), -ERANGE (@paddr beyond the output width),
 *	-EADDRINUSE (part of the range is mapped; nothing is overwritten),
 *	-ENOMEM. On error the table is consistent and the core unmaps what
 *	*@mapped says was installed.
 * @unmap_pages: clear [@iova, @iova + @pgsize * @pgcount); (@pgsize, @pgcount)
 *	is only a length. Never splits a leaf: a leaf starting at or after
 *	@iova is removed whole even if it ends past the range; if @iova is
 *	inside a leaf nothing is done and 0 is returned. Never allocates. Adds
 *	every changed range and every freed table to @g. Return: bytes from
 *	@iova to where clearing stopped (holes count), or 0.
 * @iova_to_phys: paddr mapped at @iova including the offset in the page, 0
 *	when nothing is mapped.
 * @iotlb_sync: invalidate the IOTLB for @g's range, then release @g's
 *	freelist, then re-initialise @g.
 * @iotlb_sync_map: optional; called after a successful map of [@iova,
 *	@iova + @length) for hardware that caches non-present entries.
 *	Return: 0 or -errno (the core then unmaps the range).
 * @flush_iotlb_all: invalidate everything this domain may have cached.
 * @set_dirty_tracking: optional (NULL = no dirty tracking); idempotent.
 * @read_and_clear_dirty: optional, present exactly when @set_dirty_tracking
 *	is. Reports every dirty leaf overlapping [@iova, @iova + @length)
 *	through iopt_dirty_bitmap_record() with the leaf's full extent, ORing
 *	the D state of replicated entries, and unless IOPT_DIRTY_NO_CLEAR is in
 *	@flags cleans them (every replica). Return: 0 or -errno.
 * @quiesce: optional, for checking backends (the simulator): called by the
 *	core at points where no invalidation may be outstanding (after the sync
 *	that ends an unmap, before unpinning pages). Must not fail.
 * @free: release the domain (see the file comment).
 */
struct iopt_domain_ops {
	int (*map_pages)(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
			 uint64_t pgsize, uint64_t pgcount, int prot,
			 uint64_t *mapped);
	uint64_t (*unmap_pages)(struct iopt_domain *d, uint64_t iova,
				uint64_t pgsize, uint64_t pgcount,
				struct iopt_iotlb_gather *g);
	uint64_t (*iova_to_phys)(struct iopt_domain *d, uint64_t iova);
	void (*iotlb_sync)(struct iopt_domain *d, struct iopt_iotlb_gather *g);
	int (*iotlb_sync_map)(struct iopt_domain *d, uint64_t iova,
			      uint64_t length);
	void (*flush_iotlb_all)(struct iopt_domain *d);
	int (*set_dirty_tracking)(struct iopt_domain *d, bool enable);
	int (*read_and_clear_dirty)(struct iopt_domain *d, uint64_t iova,
				    uint64_t length, unsigned int flags,
				    struct iopt_dirty_bitmap *dirty);
	void (*quiesce)(struct iopt_domain *d);
	void (*free)(struct iopt_domain *d);
};

/**
 * struct iopt_domain - one IOMMU page table as the core sees it.
 * @ops: the backend's operations; never NULL.
 * @pgsize_bitmap: leaf sizes the backend can install (bit n = 2^n bytes);
 *	must contain a size <= the CPU page size.
 * @aperture_start: first IOVA the domain can translate.
 * @aperture_last: last IOVA the domain can translate (inclusive).
 *
 * All fields are set by the backend before the domain is handed to the core
 * and never change afterwards, so reading them needs no lock.
 */
struct iopt_domain {
	const struct iopt_domain_ops *ops;
	uint64_t pgsize_bitmap;
	uint64_t aperture_start;
	uint64_t aperture_last;
};

#ifdef __cplusplus
}
#endif

#endif /* IOPT_DOMAIN_H */
