/* SPDX-License-Identifier: MIT */
/*
 * pt_radix.h - the one radix engine behind every simulated format.
 *
 * A struct sim_pt is one page table: a root whose level may grow (AMD), and
 * a private "table arena" in simulated physical space holding every table
 * page. Table entries store arena sim-PAs exactly as hardware would; the
 * engine turns a sim-PA into a host pointer with one subtraction. Metadata
 * about each table page (level, state, generation, freelist link) lives in
 * a parallel array, never inside the table (pagetable-formats.md §3.2).
 *
 * Concurrency (domain-contract.md §1.1, C8): callers serialise overlapping
 * IOVA ranges; map/unmap of disjoint ranges may run concurrently, and so may
 * simulated DMA walking the table and setting A/D bits. Hence every entry is
 * read with acquire and written with atomic stores, tables are installed by
 * compare-and-swap (the loser frees its table, never visible), and the root
 * word {root sim-PA | top level} changes by compare-and-swap too. The arena
 * allocator is the only shared mutable state and has its own mutex.
 *
 * Table life cycle: FREE -> LIVE (allocated) -> PENDING (unlinked, on a
 * gather's freelist, still walkable by stale hardware caches) -> FREE only
 * in iopt_sim_pt_release(), which the domain calls after an invalidation
 * that covered the table (iotlb_sync, flush-all). A freed page is not zeroed
 * until it is allocated again, so a stale walk before the sync sees the old
 * contents, as on hardware.
 *
 * Vocabulary: "last" inclusive; level 0 holds the smallest leaves.
 */
#ifndef IOPT_SIM_PT_RADIX_H
#define IOPT_SIM_PT_RADIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <iopt/domain.h>

#include "pt_format.h"

struct sim_journal;

enum sim_table_state {
	SIM_TABLE_FREE,
	SIM_TABLE_LIVE,
	SIM_TABLE_PENDING,
};

/**
 * struct sim_pt_meta - bookkeeping for one arena page.
 * @link: on a gather's freelist while PENDING (owned by that gather).
 * @va_first: first IOVA the table covers (set at allocation).
 * @next_free: arena free list, index + 1 (0 = end); guarded by alloc_lock.
 * @gen: allocation generation, bumped on every allocation (atomic); lets a
 *	 walk cache notice that a cached table pointer was recycled.
 * @level: level of the table (set at allocation).
 * @state: enum sim_table_state (atomic).
 */
struct sim_pt_meta {
	struct iopt_gather_page link;
	uint64_t va_first;
	uint32_t next_free;
	uint32_t gen;
	uint8_t level;
	uint8_t state;
};

/**
 * struct sim_pt - one page table.
 * @fmt: format; immutable.
 * @top: root sim-PA | top level (low 3 bits); atomic, CAS to grow.
 * @max_top: highest level the top may reach; immutable.
 * @dbm: writable leaves carry the format's dirty-tracking bit (ARM DBM).
 * @pgsize_bitmap: leaf sizes this table may use; immutable.
 * @level_sizes: @fmt->leaf_sizes masked by @pgsize_bitmap; immutable.
 * @oa_last: last output address that can be mapped; immutable.
 * @va_last: last IOVA the deepest table can hold; immutable.
 * @sizes_used: every leaf size ever installed (atomic OR); lets the IOTLB
 *		probe only sizes that can exist.
 * @journal: change journal or NULL; immutable.
 * @log_sets: journal leaves installed over empty slots too (the IOMMU caches
 *	      non-present results); immutable after init.
 * @arena: host address of arena page 0; immutable.
 * @arena_pa: sim-PA of arena page 0; immutable.
 * @arena_pages: pages reserved; immutable.
 * @meta: one entry per arena page (fields documented there).
 * @alloc_lock: guards @fresh, @free_head, @nr_live, @nr_pending and every
 *		meta's @next_free.
 * @fresh: arena pages below this index have been handed out once.
 * @free_head: index + 1 of the first FREE page to reuse (0 = none).
 * @nr_live: tables LIVE.
 * @nr_pending: tables PENDING (quarantined).
 * @fail_tables: test hook: table allocations left before -ENOMEM, negative
 *		 = never fail; guarded by alloc_lock.
 * @fail_leaves: test hook: leaves map may still install before -ENOMEM,
 *		 negative = never fail; atomic.
 */
struct sim_pt {
	const struct sim_pt_format *fmt;
	uint64_t top;
	unsigned int max_top;
	bool dbm;
	uint64_t pgsize_bitmap;
	uint64_t level_sizes[SIM_PT_MAX_LEVELS];
	uint64_t oa_last;
	uint64_t va_last;
	uint64_t sizes_used;
	struct sim_journal *journal;
	bool log_sets;
	uint8_t *arena;
	uint64_t arena_pa;
	uint32_t arena_pages;
	struct sim_pt_meta *meta;
	pthread_mutex_t alloc_lock;
	uint32_t fresh;
	uint32_t free_head;
	uint32_t nr_live;
	uint32_t nr_pending;
	long fail_tables;
	long fail_leaves;
};

/**
 * struct sim_pt_walk - where a hardware walk ended.
 * @entry: the entry indexed by the IOVA (for a replicated leaf, the replica
 *	   the IOVA falls in, which is the one hardware updates).
 * @value: the value read from @entry.
 * @pte: @value decoded.
 * @level: level of the table holding @entry.
 * @table_pa: sim-PA of the table visited at each level (filled from the
 *	      start level down to @level).
 * @table_gen: generation of each visited table.
 */
struct sim_pt_walk {
	uint64_t *entry;
	uint64_t value;
	struct sim_pte pte;
	unsigned int level;
	uint64_t table_pa[SIM_PT_MAX_LEVELS];
	uint32_t table_gen[SIM_PT_MAX_LEVELS];
};

/* Called once per leaf (once per replicated run) by iopt_sim_pt_for_each_leaf(). */
typedef void (*sim_pt_leaf_fn)(struct sim_pt *pt, uint64_t *entries,
			       unsigned int nr, unsigned int level,
			       uint64_t leaf_va, const struct sim_pte *pte,
			       void *arg);

/**
 * iopt_sim_pt_init() - create an empty table (just a root).
 * @pt: table to initialise.
 * @fmt: format.
 * @levels: levels of a fixed-top format (ignored when dynamic).
 * @pgsize_mask: restricts the leaf sizes.
 * @oa_lg2: output width; leaves never exceed it.
 * @arena_pa: sim-PA of the first table page.
 * @arena_bytes: table memory to reserve (address space, not yet memory).
 * @dbm: writable leaves carry the dirty-tracking bit (ARM DBM).
 *
 * Return: 0; -EINVAL when no leaf size is left; -ENOMEM.
 * On failure: nothing is allocated.
 */
int iopt_sim_pt_init(struct sim_pt *pt, const struct sim_pt_format *fmt,
		     unsigned int levels, uint64_t pgsize_mask,
		     unsigned int oa_lg2, uint64_t arena_pa,
		     uint64_t arena_bytes, bool dbm);

/** iopt_sim_pt_destroy() - release the arena, whatever it still holds. */
void iopt_sim_pt_destroy(struct sim_pt *pt);

/**
 * iopt_sim_pt_map() - install [@iova, @iova + @length) -> @oa.
 * @pt: table.
 * @iova: first IOVA, aligned to the smallest leaf size.
 * @oa: first output address, aligned likewise.
 * @length: bytes, aligned likewise.
 * @prot: IOPT_PROT_* bits.
 * @mapped: incremented by the bytes installed, even on error.
 * @freed: receives empty tables replaced by leaves; the caller syncs it.
 *
 * Locking: the caller owns the IOVA range; concurrent with other ranges.
 * Return: 0, -EINVAL, -ERANGE, -EADDRINUSE or -ENOMEM (domain ops' meaning).
 * On failure: leaves before the failing one stay installed (see @mapped).
 */
int iopt_sim_pt_map(struct sim_pt *pt, uint64_t iova, uint64_t oa,
		    uint64_t length, int prot, uint64_t *mapped,
		    struct iopt_iotlb_gather *freed);

/**
 * iopt_sim_pt_unmap() - clear [@iova, @last] without splitting leaves.
 * @pt: table.
 * @iova: first IOVA.
 * @last: last IOVA (inclusive).
 * @g: receives every changed range and every unlinked table.
 *
 * Locking: the caller owns the IOVA range. Never allocates.
 * Return: bytes from @iova to where clearing stopped (UINT64_MAX when that
 * is 2^64), 0 when @iova is inside a leaf.
 */
uint64_t iopt_sim_pt_unmap(struct sim_pt *pt, uint64_t iova, uint64_t last,
			   struct iopt_iotlb_gather *g);

/** iopt_sim_pt_iova_to_phys() - output address at @iova, 0 if unmapped. */
uint64_t iopt_sim_pt_iova_to_phys(struct sim_pt *pt, uint64_t iova);

/**
 * iopt_sim_pt_walk() - the hardware walk for @iova.
 * @pt: table.
 * @iova: IOVA.
 * @start_pa: table to start from (a walk-cache hit), 0 for the root.
 * @start_level: level of @start_pa.
 * @w: receives where the walk ended.
 *
 * Return: 0 at a leaf; -ENOENT when not present (@w says where).
 */
int iopt_sim_pt_walk(struct sim_pt *pt, uint64_t iova, uint64_t start_pa,
		     unsigned int start_level, struct sim_pt_walk *w);

/**
 * iopt_sim_pt_for_each_leaf() - call @fn once per leaf overlapping
 * [@first, @last] (once per replicated run, with its first entry).
 * Locking: the caller keeps the range from being unmapped meanwhile.
 */
void iopt_sim_pt_for_each_leaf(struct sim_pt *pt, uint64_t first,
			       uint64_t last, sim_pt_leaf_fn fn, void *arg);

/**
 * iopt_sim_pt_release() - return quarantined tables to the free list.
 * @pt: table that unlinked them.
 * @list: a gather's freelist; every page on it is PENDING.
 *
 * Only the domain's iotlb_sync and flush_iotlb_all call this, after an
 * invalidation that covered every table on @list.
 */
void iopt_sim_pt_release(struct sim_pt *pt, struct iopt_gather_page *list);

/**
 * iopt_sim_pt_pending_meta() - the quarantined table behind @link, or NULL
 * when @link is not a PENDING table of @pt (a gather synced on the wrong
 * domain, or a page that was never unlinked).
 */
struct sim_pt_meta *iopt_sim_pt_pending_meta(struct sim_pt *pt,
					     struct iopt_gather_page *link);

/** iopt_sim_pt_top_level() - level of the current root. */
unsigned int iopt_sim_pt_top_level(const struct sim_pt *pt);

/** iopt_sim_pt_nr_tables() - LIVE tables, root included. */
uint32_t iopt_sim_pt_nr_tables(struct sim_pt *pt);

/* Host pointer of the table page at arena sim-PA @pa. */
static inline uint64_t *sim_pt_table(const struct sim_pt *pt, uint64_t pa)
{
	return (uint64_t *)(pt->arena + (pa - pt->arena_pa));
}

/* Arena metadata of the table page at sim-PA @pa, NULL outside the arena. */
static inline struct sim_pt_meta *sim_pt_meta_of(const struct sim_pt *pt,
						 uint64_t pa)
{
	uint64_t idx = (pa - pt->arena_pa) / SIM_PT_TABLE_SIZE;

	return pa >= pt->arena_pa && idx < pt->arena_pages ? &pt->meta[idx] : NULL;
}

static inline uint64_t sim_pte_load(const uint64_t *e)
{
	return __atomic_load_n(e, __ATOMIC_ACQUIRE);
}

static inline void sim_pte_store(uint64_t *e, uint64_t v)
{
	__atomic_store_n(e, v, __ATOMIC_RELEASE);
}

#endif /* IOPT_SIM_PT_RADIX_H */
