/* SPDX-License-Identifier: MIT */
/*
 * io_pagetable.h - the IO address space: areas, allowed and reserved ranges,
 * the attached domains, and the IOAS object that wraps them (the kernel's
 * io_pagetable.h plus the io_pagetable part of iommufd_private.h).
 *
 * An io_pagetable is a set of non-overlapping areas keyed by IOVA. Each area
 * maps a byte slice of one struct iopt_pages (the PFN source, see pages.h) at
 * an IOVA; IOVA not covered by an area is not mapped anywhere. Every area is
 * mapped identically into every attached domain. Allowed ranges (set by the
 * user) promise IOVA that will never become reserved and confine automatic
 * IOVA allocation; reserved ranges (domain apertures, device regions, user
 * reservations) can never be mapped.
 *
 * Vocabulary: "last" is inclusive and "end" exclusive; IOVAs and lengths are
 * uint64_t; an "index" is a page number (IOPT_PAGE_SIZE units) inside one
 * iopt_pages, counted from its page-aligned start; a "start byte" is a byte
 * offset inside the iopt_pages. A range reaching UINT64_MAX is representable
 * everywhere, which is why nothing here computes last + 1 unchecked.
 *
 * Area life cycle (pages pointer):
 *  1. Reserved-IOVA: in area_itree with pages == NULL while map fills the
 *     domains, so the IOVA is reserved and iova_rwsem can be dropped.
 *  2. Published: pages set (under domains_rwsem read and iova_rwsem write).
 *  3. Tearing down: pages back to NULL while unmap unfills the domains.
 * A NULL pages seen under domains_rwsem *write* always means state 1 with no
 * domain filled yet, so attach/detach simply skip such areas.
 *
 * LOCK ORDER (checked by lock.h in debug builds, see docs/locking.md):
 *
 *	access->ioas_lock -> domains_rwsem -> iova_rwsem -> pages->mutex
 *
 * Callbacks into access drivers run with none of these held.
 */
#ifndef IOPT_IO_PAGETABLE_H
#define IOPT_IO_PAGETABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/domain.h>

#include "interval_tree.h"
#include "iova_index.h"
#include "lock.h"
#include "util.h"

#ifndef IOPT_PAGE_SHIFT
/* The CPU page size the core works in (the kernel's PAGE_SIZE, x86-64). */
#define IOPT_PAGE_SHIFT 12
#define IOPT_PAGE_SIZE (UINT64_C(1) << IOPT_PAGE_SHIFT)
#endif
/* Transparent huge page size: the cap of the auto-IOVA alignment heuristic. */
#define IOPT_HPAGE_SIZE (UINT64_C(1) << 21)

struct iopt_ctx;
struct iopt_pages;

/* flags for iopt_map_pages() and friends */
#define IOPT_ALLOC_IOVA (1u << 0)	/* choose the IOVA; *iova is output only */

/*
 * Locking legend for the structs below:
 *  (d) io_pagetable::domains_rwsem
 *  (i) io_pagetable::iova_rwsem
 *  (p) the area's pages->mutex
 *  (c) constant after init (or after insertion, for immutable area fields)
 */

/**
 * struct iopt_area - one IOVA range backed by a slice of one iopt_pages.
 * @node: (i) the IOVA interval [iova, last_iova] in io_pagetable::area_itree.
 * @pages_node: (p) the page-index interval inside @pages; linked into
 *	pages->domains_itree exactly while @storage_domain is set.
 * @iopt: (c) the owning io_pagetable.
 * @pages: (i) the PFN source, NULL while the area is built or torn down;
 *	holds one reference on it.
 * @storage_domain: (p) the attached domain that holds this area's PFNs, NULL
 *	when the IOAS has no domain.
 * @host: (c) where the area's first byte lives in this process: the pages'
 *	uptr plus its start byte. Only meaningful while pinned; kept here so
 *	a lock-free rw (access.c) reads the area and the bytes, not the pages.
 * @page_offset: (c) bytes into the first page where the area starts.
 * @iommu_prot: (c) IOPT_PROT_READ/WRITE/CACHE bits.
 * @lockless_prot: (i write) the @iommu_prot bits a lock-free rw, pin or
 *	unpin may use: all of them while the area is published, held by a
 *	storage domain and not being unmapped, else 0
 *	(iopt_area_update_lockless()).
 * @prevent_access: (i) set by an unmap waiting for accesses to let go; new
 *	pins and rw on the area then fail with -EINVAL.
 * @unindexed: (i) set by the unmap that took the area out of area_index;
 *	it stays in area_itree, with pages NULL, until its domains are
 *	unfilled and it is freed.
 * @num_accesses: (p, read under i write) outstanding access pins.
 * @num_locks: (p, read under i write) the subset of @num_accesses taken by
 *	internal (locking) accesses; unmap then fails with -EBUSY.
 *
 * Layout: a lock-free rw reads node.start, node.last, @host and
 * @lockless_prot and nothing else of the area (a pin adds @pages, the next
 * field), so they are 28 bytes in a row (interval_tree.h puts start and
 * last at the node's end); on 16-byte aligned heap chunks that is one cache
 * line three times in four, where the fields it replaces took two lines
 * three times in four (bench_access).
 */
struct iopt_area {
	struct iopt_itree_node node;
	char *host;
	uint16_t page_offset;
	uint8_t iommu_prot;
	uint8_t lockless_prot;
	bool prevent_access;
	bool unindexed;
	struct iopt_pages *pages;
	struct iopt_domain *storage_domain;
	unsigned int num_accesses;
	unsigned int num_locks;
	struct iopt_itree_node pages_node;
	struct io_pagetable *iopt;
};
_Static_assert(offsetof(struct iopt_area, lockless_prot) -
		       offsetof(struct iopt_area, node.start) < 32,
	       "what a lock-free rw reads of an area spans 32 bytes at most");
_Static_assert(IOPT_PAGE_SIZE <= UINT16_MAX + 1, "page_offset is 16 bits");

/* An allowed range: auto IOVA stays inside them; they never become reserved. */
struct iopt_allowed {
	struct iopt_itree_node node;	/* (i) */
};

/* A reserved range, tagged with the cookie of whoever reserved it. */
struct iopt_reserved {
	struct iopt_itree_node node;	/* (i) */
	const void *owner;		/* (c) domain, device or user cookie */
};

/**
 * struct iopt_access_ops - what io_pagetable needs from an access (device.c's
 * iommufd_access, implemented by access.c).
 * @unmap: ask the driver to drop, synchronously, every pin that intersects
 *	[iova, iova + length). NULL for internal (locking) accesses, which are
 *	never asked. Called with no io_pagetable lock held.
 * @tryget: take a reference that keeps the access alive across @unmap;
 *	false when the access is being destroyed (it is then skipped).
 * @put: drop the @tryget reference.
 */
struct iopt_access_ops {
	void (*unmap)(void *access, uint64_t iova, uint64_t length);
	bool (*tryget)(void *access);
	void (*put)(void *access);
};

/* One slot of io_pagetable::accesses; a NULL @access is a free slot. */
struct iopt_access_slot {
	void *access;
	const struct iopt_access_ops *ops;
	uint64_t iova_alignment;	/* 1 for rw-only, IOPT_PAGE_SIZE if it pins */
};

/* Access ids are 16 bits, as the kernel's xa_limit_16b. */
#define IOPT_ACCESS_ID_MAX 0xffffu

/**
 * struct io_pagetable - the IO address space of one IOAS.
 *
 * LOCK ORDER: domains_rwsem -> iova_rwsem -> pages->mutex (an access's
 * ioas_lock comes before domains_rwsem). Map inserts its areas with pages ==
 * NULL before taking domains_rwsem and publishes them inside its read side, so
 * a concurrent attach either sees the area or the area's fill saw the domain.
 *
 * @domains_rwsem: guards @domains, @ndomains, @domains_cap and @accesses.
 *	Writers: domain attach/detach, access add/remove, the large-page
 *	toggles. Readers: map (fill) and unmap (unfill).
 * @iova_rwsem: guards the three trees, every area's node and pages pointer,
 *	@iova_alignment and @disable_large_pages.
 * @area_itree: (i) struct iopt_area::node, never overlapping.
 * @area_index: (i) the same nodes as @area_itree but those of areas being
 *	unmapped, for point lookups (iopt_area_find()): a few loads instead
 *	of a tree descent.
 * @allowed_itree: (i) struct iopt_allowed::node, never overlapping.
 * @reserved_itree: (i) struct iopt_reserved::node, may overlap each other
 *	but never an area or an allowed range.
 * @iova_alignment: (i) byte alignment of every IOVA, length and in-page
 *	offset: the largest of the domains' smallest page sizes, the accesses'
 *	alignments and IOPT_PAGE_SIZE when large pages are disabled; 1 for a
 *	bare IOAS; never above IOPT_PAGE_SIZE.
 * @disable_large_pages: (i, written under d and i) map every page with its
 *	own call (VFIO type1 v1, HUGE_PAGES=0), so areas in domains can split.
 * @domains: (d) dense array of the attached domains, @ndomains long; the
 *	array itself has room for @domains_cap.
 * @accesses: (d) access slots, indexed by access id; @naccess_slots long.
 * @nr_fast_readers: (i write) attached accesses that may read lock-free
 *	(readers.h); while it is not 0, every iova_rwsem write section
 *	excludes them before it changes what they read
 *	(iopt_iova_exclude_readers()).
 * @fast_excluded: (a) set from then to the end of the section: a
 *	lock-free reader that sees it takes the locked path.
 */
struct io_pagetable {
	struct iopt_rwlock domains_rwsem;
	struct iopt_rwlock iova_rwsem;

	struct iopt_itree_root area_itree;
	struct iopt_iova_index area_index;
	struct iopt_itree_root allowed_itree;
	struct iopt_itree_root reserved_itree;
	uint64_t iova_alignment;
	bool disable_large_pages;

	struct iopt_domain **domains;
	size_t ndomains;
	size_t domains_cap;

	struct iopt_access_slot *accesses;
	size_t naccess_slots;

	atomic_uint nr_fast_readers;
	atomic_bool fast_excluded;
};

/*
 * iova_rwsem for writing. iopt_iova_write_lock() keeps lock-free readers
 * (readers.h) out for the whole section. Every write section of iova_rwsem
 * takes the lock through these, not iopt_rwlock_write(), so no section
 * that changes what those readers read (the area index, an area's node,
 * pages, storage_domain or prevent_access) can miss excluding them.
 *
 * iopt_iova_write_lock_beside_readers() leaves them reading, for a section
 * that only inserts areas into the index and publishes new ones (map), or
 * that may find nothing to change (unmap): an insert keeps every lookup
 * right (iova_index.h), and a new area's lockless_prot goes from 0 with a
 * release store after everything a reader reads of it. Such a section
 * calls iopt_iova_exclude_readers() before it changes or reads anything
 * else readers touch (a failed insert's nodes, num_accesses, an area to
 * unmap); that costs the barrier only then, and only once per section.
 */
void iopt_iova_write_lock(struct io_pagetable *iopt);
void iopt_iova_write_lock_beside_readers(struct io_pagetable *iopt);
void iopt_iova_exclude_readers(struct io_pagetable *iopt);
void iopt_iova_write_unlock(struct io_pagetable *iopt);

/*
 * struct iopt_ioas - the public IOAS object (the kernel's iommufd_ioas).
 * @iopt: the address space.
 * @ctx: (c) the owning context, borrowed; outlives the IOAS.
 * @id: (c) small object id, unique in @ctx while the IOAS lives.
 */
struct iopt_ioas {
	struct io_pagetable iopt;
	struct iopt_ctx *ctx;
	uint32_t id;
};

/* ---- area accessors ---- */

static inline uint64_t iopt_area_index(const struct iopt_area *area)
{
	return area->pages_node.start;
}

static inline uint64_t iopt_area_last_index(const struct iopt_area *area)
{
	return area->pages_node.last;
}

static inline uint64_t iopt_area_iova(const struct iopt_area *area)
{
	return area->node.start;
}

static inline uint64_t iopt_area_last_iova(const struct iopt_area *area)
{
	return area->node.last;
}

/* Wraps to 0 only for an area covering all 2^64 IOVAs, which map refuses. */
static inline uint64_t iopt_area_length(const struct iopt_area *area)
{
	return (area->node.last - area->node.start) + 1;
}

/*
 * Byte offset inside the iopt_pages of @iova, which must lie inside @area:
 * start_byte / IOPT_PAGE_SIZE is the page index, the remainder the in-page
 * offset.
 */
static inline uint64_t iopt_area_start_byte(const struct iopt_area *area,
					    uint64_t iova)
{
	return (iova - iopt_area_iova(area)) + area->page_offset +
	       iopt_area_index(area) * IOPT_PAGE_SIZE;
}

static inline uint64_t iopt_area_iova_to_index(const struct iopt_area *area,
					       uint64_t iova)
{
	return iopt_area_start_byte(area, iova) / IOPT_PAGE_SIZE;
}

/*
 * iopt_<name>_iter_first/next(): walk the areas, allowed or reserved ranges
 * overlapping [start, last] in ascending order. Locking: iova_rwsem, shared;
 * the tree must not change during the walk.
 */
#define IOPT_MAKE_ITER(name)                                                   \
	static inline struct iopt_##name *iopt_##name##_iter_first(            \
		struct io_pagetable *iopt, uint64_t start, uint64_t last)      \
	{                                                                      \
		struct iopt_itree_node *node;                                  \
									       \
		iopt_assert_held(&iopt->iova_rwsem);                           \
		node = iopt_itree_iter_first(&iopt->name##_itree, start,       \
					     last);                            \
		return node ? container_of(node, struct iopt_##name, node) :   \
			      NULL;                                            \
	}                                                                      \
	static inline struct iopt_##name *iopt_##name##_iter_next(             \
		struct iopt_##name *prev, uint64_t start, uint64_t last)       \
	{                                                                      \
		struct iopt_itree_node *node;                                  \
									       \
		node = iopt_itree_iter_next(&prev->node, start, last);         \
		return node ? container_of(node, struct iopt_##name, node) :   \
			      NULL;                                            \
	}

IOPT_MAKE_ITER(area)
IOPT_MAKE_ITER(allowed)
IOPT_MAKE_ITER(reserved)
#undef IOPT_MAKE_ITER

/*
 * What @area->lockless_prot should be. pages is read first: while it is
 * NULL, storage_domain may be changing under pages->mutex alone.
 */
static inline uint8_t iopt_area_lockless_prot(const struct iopt_area *area)
{
	if (!area->pages || !area->storage_domain || area->prevent_access)
		return 0;
	return area->iommu_prot;
}

/*
 * Recompute @area->lockless_prot after a change to pages, storage_domain or
 * prevent_access. Only under iova_rwsem held for writing, with lock-free
 * readers excluded, or, to publish an area whose lockless_prot was 0 since
 * it was inserted, beside them (iopt_iova_write_lock_beside_readers()): the
 * release store orders every field set before it ahead of a reader's
 * acquire load (iopt_area_lockless_prot_read()). A change to
 * storage_domain while the area is unpublished (map's fill, unmap's
 * unfill) needs none, as pages is NULL then and lockless_prot already 0.
 */
static inline void iopt_area_update_lockless(struct iopt_area *area)
{
	iopt_assert_held_write(&area->iopt->iova_rwsem);
	__atomic_store_n(&area->lockless_prot, iopt_area_lockless_prot(area),
			 __ATOMIC_RELEASE);
}

/* @area->lockless_prot, in a lock-free section: what is set before it holds. */
static inline uint8_t iopt_area_lockless_prot_read(const struct iopt_area *area)
{
	return __atomic_load_n(&area->lockless_prot, __ATOMIC_ACQUIRE);
}

/*
 * iopt_area_find() - the area holding @iova, published or being mapped,
 * or NULL. An area being unmapped has left the index (pages NULL, still in
 * area_itree until its domains are unfilled), so callers that must see it
 * busy walk the tree instead.
 * Locking: iova_rwsem, shared; or, for _lockless(), inside a lock-free
 * reader's section (readers.h) that found iopt->fast_excluded clear.
 */
static inline struct iopt_area *
iopt_area_find_lockless(struct io_pagetable *iopt, uint64_t iova)
{
	struct iopt_itree_node *node;

	node = iopt_iova_index_lookup(&iopt->area_index, iova);
	return node ? container_of(node, struct iopt_area, node) : NULL;
}

static inline struct iopt_area *iopt_area_find(struct io_pagetable *iopt,
					       uint64_t iova)
{
	iopt_assert_held(&iopt->iova_rwsem);
	return iopt_area_find_lockless(iopt, iova);
}

#define iopt_for_each_area(area, iopt, start, last)                            \
	for ((area) = iopt_area_iter_first(iopt, start, last); (area);         \
	     (area) = iopt_area_iter_next(area, start, last))

/*
 * Contiguous-area iterator: walks areas that are back to back starting with
 * the one containing the first IOVA, stopping at a gap, at an area that does
 * not start at the previous last + 1, or at an area with pages == NULL. After
 * the loop, iopt_area_contig_done() says whether [iova, last_iova] was fully
 * covered. Every "must be fully mapped" operation (copy, access pin and rw,
 * dirty read) is built on it. cur_iova is the first IOVA of the current area
 * that lies in the range.
 */
struct iopt_area_contig_iter {
	uint64_t cur_iova;
	uint64_t last_iova;
	struct iopt_area *area;
};

struct iopt_area *iopt_area_contig_init(struct iopt_area_contig_iter *iter,
					struct io_pagetable *iopt,
					uint64_t iova, uint64_t last_iova);
struct iopt_area *iopt_area_contig_next(struct iopt_area_contig_iter *iter);

static inline bool iopt_area_contig_done(const struct iopt_area_contig_iter *iter)
{
	return iter->area && iter->last_iova <= iopt_area_last_iova(iter->area);
}

#define iopt_for_each_contig_area(iter, area, iopt, iova, last_iova)          \
	for ((area) = iopt_area_contig_init(iter, iopt, iova, last_iova);      \
	     (area); (area) = iopt_area_contig_next(iter))

/*
 * A list of page slices to map back to back (one element per future area),
 * the kernel's iopt_pages_list. Each element holds one reference on @pages
 * until iopt_map_pages() moves it into the area.
 */
struct iopt_pages_elm {
	struct iopt_pages *pages;
	struct iopt_area *area;
	uint64_t start_byte;
	uint64_t length;
};

struct iopt_pages_list {
	struct iopt_pages_elm *elms;
	size_t n;
	size_t cap;
};

/* ---- io_pagetable.c ---- */

void iopt_init_table(struct io_pagetable *iopt);
void iopt_destroy_table(struct io_pagetable *iopt);

int iopt_map_pages(struct io_pagetable *iopt, struct iopt_pages_list *list,
		   uint64_t length, uint64_t *dst_iova, int iommu_prot,
		   unsigned int flags);
int iopt_map_user_pages(struct iopt_ctx *ctx, struct io_pagetable *iopt,
			uint64_t *iova, void *uptr, uint64_t length,
			int iommu_prot, unsigned int flags);
int iopt_map_file_pages(struct iopt_ctx *ctx, struct io_pagetable *iopt,
			uint64_t *iova, int memfd, uint64_t start,
			uint64_t length, int iommu_prot, unsigned int flags);
int iopt_get_pages(struct io_pagetable *iopt, uint64_t iova, uint64_t length,
		   struct iopt_pages_list *list);
void iopt_free_pages_list(struct iopt_pages_list *list);

int iopt_unmap_iova(struct io_pagetable *iopt, uint64_t iova, uint64_t length,
		    uint64_t *unmapped);
int iopt_unmap_all(struct io_pagetable *iopt, uint64_t *unmapped);

int iopt_set_allow_iova(struct io_pagetable *iopt,
			struct iopt_itree_root *allowed);
int iopt_reserve_iova(struct io_pagetable *iopt, uint64_t start, uint64_t last,
		      const void *owner);
void iopt_remove_reserved_iova(struct io_pagetable *iopt, const void *owner);

int iopt_table_add_domain(struct io_pagetable *iopt, struct iopt_domain *domain);
void iopt_table_remove_domain(struct io_pagetable *iopt,
			      struct iopt_domain *domain);

int iopt_cut_iova(struct io_pagetable *iopt, const uint64_t *iovas, size_t n);
void iopt_enable_large_pages(struct io_pagetable *iopt);
int iopt_disable_large_pages(struct io_pagetable *iopt);

int iopt_add_access(struct io_pagetable *iopt, void *access,
		    const struct iopt_access_ops *ops, uint64_t iova_alignment,
		    uint32_t *id);
void iopt_remove_access(struct io_pagetable *iopt, uint32_t id);

/*
 * The refusal log: one line, "ioas <id>: <why>", to the context's log
 * callback when logging is on (see iopt_ctx_log_said_clear()).
 */
void iopt_refuse(struct io_pagetable *iopt, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Tests and debugging (ioas_check.c): a hash of the layout, and the layout
 * part of the invariant checker (iopt/check.h has the whole of it).
 */
uint64_t iopt_table_digest(struct io_pagetable *iopt);
int iopt_table_check(struct io_pagetable *iopt);

/* ---- dirty.c ---- */

int iopt_set_dirty_tracking(struct io_pagetable *iopt,
			    struct iopt_domain *domain, bool enable);
int iopt_read_and_clear_dirty_data(struct io_pagetable *iopt,
				   struct iopt_domain *domain, uint64_t iova,
				   uint64_t length, uint64_t page_size,
				   unsigned int flags, void *bitmap);

#endif /* IOPT_IO_PAGETABLE_H */
