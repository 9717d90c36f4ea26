/* SPDX-License-Identifier: MIT */
/*
 * pages.h - struct iopt_pages, the pinned memory behind areas (the kernel's
 * iopt_pages, the pages.c half of io_pagetable.h).
 *
 * An iopt_pages is a linear array of npages frames taken from one memory
 * source: a user buffer of this process (IOPT_ADDRESS_USER) or a memfd range
 * that the library maps MAP_SHARED itself (IOPT_ADDRESS_FILE). Areas in one or
 * many IOASes reference slices of it; it is pinned and accounted once however
 * many areas, domains and accesses use a page.
 *
 * Frames live in three tiers, read in this order of preference:
 *  1. pinned_pfns, the pin store: exactly the indexes covered by access_itree;
 *  2. the storage_domain of an area in domains_itree, read back with
 *     iova_to_phys();
 *  3. the source, pinned afresh through the process-wide pin registry.
 * An index is pinned exactly once while either tree covers it and unpinned the
 * moment neither does. See docs/pages.md.
 *
 * Vocabulary: "index" is a page number inside the pages, counted from the
 * page-aligned start of the source; "start byte" a byte offset from there;
 * "last" inclusive, "end" exclusive.
 *
 * Lock order (written once on struct io_pagetable): domains_rwsem ->
 * iova_rwsem -> pages->mutex. Locking legend for the fields below:
 *   (c) const after allocation;  (p) pages->mutex;  (a) atomic.
 */
#ifndef IOPT_PAGES_H
#define IOPT_PAGES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/ctx.h>

#include "interval_tree.h"
#include "lock.h"
#include "pfn_store.h"
#include "util.h"

struct iopt_ctx;
struct iopt_area;
struct iopt_domain;

enum iopt_address_type {
	IOPT_ADDRESS_USER,	/* a buffer of this process */
	IOPT_ADDRESS_FILE,	/* a memfd range, mapped by the library */
};

/* iopt_pages_rw_access() flags (the kernel's IOMMUFD_ACCESS_RW_*). */
#define IOPT_PAGES_RW_WRITE	(1u << 0)	/* copy data into the pages */
#define IOPT_PAGES_RW_SLOW_PATH	(1u << 2)	/* tests: force the pfn_reader path */
/*
 * iopt_area_add_access(): pages->mutex only if free, else -EAGAIN, so a
 * caller in a lock-free section (readers.h) never waits for it.
 */
#define IOPT_PAGES_TRYLOCK	(1u << 3)

/*
 * The pin bookkeeping of a pages object, which only exists while something
 * pins or covers one of its indexes: allocated by the first operation that
 * needs it (iopt_pages_prepare_pins()) and freed by the iopt_pages_unlock()
 * that finds it idle. An IOAS with no domain holds a million pages objects
 * that never pin, and this is most of their size (see below).
 * All fields (p).
 */
struct iopt_pages_pins {
	uint64_t npinned;		/* indexes pinned now */
	uint64_t last_npinned;		/* npinned as last charged to ctx */
	struct iopt_pfn_store pinned_pfns;	/* index -> frame, accesses */
	struct iopt_itree_root access_itree;	/* of iopt_pages_access::node */
	struct iopt_itree_root domains_itree;	/* of iopt_area::pages_node */
};

/*
 * Every map allocates one of these next to its area, so its size is a figure
 * of its own (bench_ioas: heap per area). Hence the packed first word, the
 * FILE mapping's base recomputed from uptr rather than stored, and the pin
 * bookkeeping kept apart in @pins.
 */
struct iopt_pages {
	atomic_int refcount;		/* (a) iopt_pages_get/iopt_put_pages */
	unsigned char type;		/* (c) enum iopt_address_type */
	bool writable;			/* (c) pinned for write, WRITE maps allowed */
	unsigned char account_mode;	/* (c) enum iopt_account_mode of ctx at
					 * allocation */
	unsigned char map_shift;	/* (c) FILE: log2 of the mapping granule
					 * (4 KiB, or the hugetlbfs page) */
	/*
	 * (c) Page-aligned host address of index 0: the user buffer rounded
	 * down, or the library's own MAP_SHARED mapping of the memfd range;
	 * NULL for a file range that cannot be pinned (not shmem or
	 * hugetlbfs, or beyond what mmap reaches), whose pins are -EINVAL.
	 * In the first cache line with @writable: an access rw through a
	 * storage domain reads nothing else of the pages.
	 */
	void *uptr;
	struct iopt_small_mutex mutex;	/* class IOPT_LOCK_PAGES */
	uint64_t npages;		/* (c) pages in the source, offset included */
	struct iopt_ctx *ctx;		/* (c) borrowed: accounting and registry */
	struct iopt_pages_pins *pins;	/* (p) owned; NULL while idle */
};

/* A FILE pages object: what only a memfd range needs, kept out of USER ones. */
struct iopt_file_pages {
	struct iopt_pages pages;
	uint64_t start;			/* (c) file offset of index 0 */
	uint64_t map_length;		/* (c) length of the library's mapping
					 * (granule rounded), which starts at
					 * uptr - start % granule */
};

static inline struct iopt_file_pages *
iopt_file_pages(const struct iopt_pages *pages)
{
	return (struct iopt_file_pages *)container_of(pages,
						      struct iopt_file_pages,
						      pages);
}

/*
 * One live iopt_area_add_access() interval: an interval lock that keeps the
 * frames pinned and in pinned_pfns. Identical intervals share a node.
 */
struct iopt_pages_access {
	struct iopt_itree_node node;	/* (p) [start, last] page indexes */
	unsigned int users;		/* (p) adds minus removes of this interval */
};

/**
 * iopt_alloc_user_pages() - pages over a buffer of this process.
 * @ctx: context charged for the pins; borrowed, must outlive the pages.
 * @uptr: first byte; need not be page aligned.
 * @length: bytes, > 0.
 * @writable: pin for write (breaks copy-on-write) and allow WRITE maps.
 * @out: receives the pages with one reference.
 *
 * Nothing is pinned yet (pins happen on fill), so a bad @uptr is found later
 * with -EFAULT, as in the kernel.
 *
 * Return: 0, -EOVERFLOW (@uptr + @length reaches 2^64; checked first, as
 * the kernel does), -EINVAL (zero length), -ENOMEM.
 * On failure: nothing is allocated.
 */
int iopt_alloc_user_pages(struct iopt_ctx *ctx, void *uptr, uint64_t length,
			  bool writable, struct iopt_pages **out);

/**
 * iopt_alloc_file_pages() - pages over a range of a memfd or hugetlbfs file.
 * @ctx: context charged for the pins; borrowed, must outlive the pages.
 * @memfd: the file; the library maps [@start, @start + @length) MAP_SHARED
 *	   itself, so the caller may close @memfd or unmap its own mappings.
 * @start: file offset of the first byte; need not be page aligned.
 * @length: bytes, > 0.
 * @writable: map and pin for write; needs @memfd opened for writing (our
 *	      hardening over the kernel, see docs/pages.md).
 * @out: receives the pages with one reference.
 *
 * Checks in the kernel's order: -EBADF (not an open fd), -EOVERFLOW (the
 * range wraps), -EINVAL (zero length), then our open-mode rule: -EPERM
 * (@memfd not open for reading, @writable without O_RDWR, or @writable on a
 * write-sealed memfd). As in the kernel, the file's type and size are not
 * checked here: a file that is not a memfd or hugetlbfs file, or a range past
 * EOF, makes the pins -EINVAL (at map time only when a domain is attached).
 *
 * Return: 0 or the errors above; -ENOMEM.
 * On failure: nothing is allocated or mapped.
 */
int iopt_alloc_file_pages(struct iopt_ctx *ctx, int memfd, uint64_t start,
			  uint64_t length, bool writable, struct iopt_pages **out);

static inline void iopt_pages_get(struct iopt_pages *pages)
{
	atomic_fetch_add_explicit(&pages->refcount, 1, memory_order_relaxed);
}

/*
 * Lock and unlock a pages object. The unlock frees @pins when nothing is
 * pinned or covered any more, so every path that changes the bookkeeping
 * must release through it.
 */
void iopt_pages_lock(struct iopt_pages *pages);
bool iopt_pages_trylock(struct iopt_pages *pages);
void iopt_pages_unlock(struct iopt_pages *pages);

/*
 * Make sure @pages->pins exists before pinning or covering an index.
 * Locking: pages->mutex held. Return: 0 or -ENOMEM (nothing changed).
 */
int iopt_pages_prepare_pins(struct iopt_pages *pages);

/*
 * The bookkeeping of @pages, or an empty one when it has none (it pins and
 * covers nothing): for readers that treat both alike (checker, tests). The
 * empty one is never written. pages->mutex held.
 */
static inline struct iopt_pages_pins *
iopt_pages_pins_view(struct iopt_pages *pages)
{
	static struct iopt_pages_pins none;

	return pages->pins ? pages->pins : &none;
}

/* Nothing pinned, no interval: the state in which @pins must be freed. */
static inline bool iopt_pages_pins_unused(const struct iopt_pages_pins *pins)
{
	return !pins->npinned && iopt_itree_empty(&pins->access_itree) &&
	       iopt_itree_empty(&pins->domains_itree);
}

/* Indexes pinned now; pages->mutex held, or the caller's own object. */
static inline uint64_t iopt_pages_npinned(const struct iopt_pages *pages)
{
	return pages->pins ? pages->pins->npinned : 0;
}

/**
 * iopt_put_pages() - drop one reference; the last one frees the pages.
 * @pages: pages, may be NULL.
 *
 * The last put requires no access, no domain interval, nothing pinned and an
 * empty store (asserted in debug builds), then unmaps a FILE mapping.
 */
void iopt_put_pages(struct iopt_pages *pages);

/*
 * Byte offset of @start_byte in the source's own address space: the host
 * address for USER pages, the file offset for FILE pages. Auto-IOVA alignment
 * is derived from it, as the kernel does.
 */
static inline uint64_t iopt_pages_source_addr(const struct iopt_pages *pages,
					      uint64_t start_byte)
{
	if (pages->type == IOPT_ADDRESS_FILE)
		return iopt_file_pages(pages)->start + start_byte;
	return (uint64_t)(uintptr_t)pages->uptr + start_byte;
}

/**
 * iopt_set_temp_memory_limit() - cap the temporary buffers of batches.
 * @bytes: byte limit for one pfn_batch or pin chunk; 0 restores the default
 *	   (64 KiB). Values below a few entries are raised to that minimum.
 *
 * A performance knob and a test hook: a tiny limit drives the many-small-
 * batches paths. Process-wide, may be changed at any time.
 */
void iopt_set_temp_memory_limit(size_t bytes);

/**
 * iopt_area_fill_domains() - pin an area's pages and map them into every
 * domain of its io_pagetable.
 * @area: a new area, not yet in @pages->domains_itree, area->pages NULL.
 * @pages: the pages the area will use.
 *
 * No domain: success with nothing pinned. Otherwise every domain gets the
 * same mapping, the pins are charged, area->storage_domain becomes domain 0
 * and the area joins domains_itree.
 *
 * Locking: domains_rwsem held (read); takes pages->mutex.
 * Return: 0, -EFAULT (source not mapped), -ENOMEM (limit or memory), or a
 * domain's map error.
 * On failure: every domain and the pins and charge are as before.
 */
int iopt_area_fill_domains(struct iopt_area *area, struct iopt_pages *pages);

/**
 * iopt_area_unfill_domains() - unmap an area from every domain and unpin
 * what no other holder needs (area destruction).
 * @area: the area; area->pages may already be NULL.
 * @pages: its pages.
 *
 * Locking: domains_rwsem held (read); takes pages->mutex. Cannot fail.
 */
void iopt_area_unfill_domains(struct iopt_area *area, struct iopt_pages *pages);

/**
 * iopt_area_fill_domain() - map an existing area into one more domain
 * (domain attach), reading frames from the cheapest tier.
 * @area: the area, with area->pages set.
 * @domain: the domain being attached.
 *
 * The caller inserts the area into domains_itree and sets storage_domain when
 * this was the first domain.
 *
 * Locking: area->pages->mutex held.
 * Return: 0, -EFAULT, -ENOMEM, or the domain's map error.
 * On failure: @domain and the pins and charge are as before.
 */
int iopt_area_fill_domain(struct iopt_area *area, struct iopt_domain *domain);

/**
 * iopt_area_unfill_domain() - unmap an area from @domain and unpin what no
 * access and no other domain interval covers.
 * @area: the area, already removed from domains_itree by the caller.
 * @pages: its pages.
 * @domain: the domain to unmap from.
 *
 * Unmaps at frame discontinuities only, so a run mapped as one leaf is
 * removed whole; unpins only after the unmap and its IOTLB sync.
 *
 * Locking: @pages->mutex held. Cannot fail, never allocates.
 */
void iopt_area_unfill_domain(struct iopt_area *area, struct iopt_pages *pages,
			     struct iopt_domain *domain);

/**
 * iopt_area_unmap_domain() - unmap an area's whole IOVA range from @domain
 * without unpinning (another domain keeps the pins).
 * @area: the area.
 * @domain: the domain.
 *
 * Locking: domains_rwsem and iova_rwsem as for detach. Cannot fail.
 */
void iopt_area_unmap_domain(struct iopt_area *area, struct iopt_domain *domain);

/**
 * iopt_pages_fill_store() - make [@start_index, @last_index] present in the
 * pin store, pinning holes, and return the frames.
 * @pages: pages.
 * @start_index: first index.
 * @last_index: last index (inclusive), < npages.
 * @out_frames: receives last - start + 1 frames (also the staging buffer
 *	        for the store, so never NULL).
 *
 * The caller inserts the access interval afterwards (iopt_area_add_access
 * does both).
 *
 * Locking: @pages->mutex held.
 * Return: 0, -EFAULT, -ENOMEM.
 * On failure: the store, the pins and the charge are as before.
 */
int iopt_pages_fill_store(struct iopt_pages *pages, uint64_t start_index,
			  uint64_t last_index, uint64_t *out_frames);

/**
 * iopt_pages_unfill_store() - after an access interval is removed, drop from
 * the store what no access covers any more and unpin what no domain covers.
 * @pages: pages.
 * @start_index: first index of the removed interval.
 * @last_index: its last index.
 *
 * Locking: @pages->mutex held. Cannot fail, never allocates.
 */
void iopt_pages_unfill_store(struct iopt_pages *pages, uint64_t start_index,
			     uint64_t last_index);

/**
 * iopt_pages_fill_from_store() - read frames known to be in the store.
 * @pages: pages.
 * @start_index: first index.
 * @last_index: last index (inclusive); all covered by a live access.
 * @out_frames: receives last - start + 1 frames.
 *
 * Locking: @pages->mutex held.
 */
void iopt_pages_fill_from_store(struct iopt_pages *pages, uint64_t start_index,
				uint64_t last_index, uint64_t *out_frames);

/**
 * iopt_area_add_access() - pin [@start_index, @last_index] of an area's pages
 * for an access and return where they are.
 * @area: the area (area->pages set); its num_accesses is bumped.
 * @start_index: first page index inside area->pages.
 * @last_index: last page index (inclusive), within the area.
 * @out_pages: receives the host address of each pinned page; may be NULL.
 * @out_frames: receives the frame of each page; may be NULL.
 * @flags: IOPT_PAGES_RW_WRITE when the access will write; IOPT_PAGES_TRYLOCK.
 * @lock_area: an internal access: also bump area->num_locks, which makes
 *	       unmap of the area fail with -EBUSY until released.
 *
 * Undo with exactly one iopt_area_remove_access() of the same interval and
 * the same @lock_area.
 *
 * Locking: iova_rwsem held (read), or a lock-free section standing for it;
 * takes pages->mutex.
 * Return: 0, -EPERM (WRITE on read-only pages), -EFAULT, -ENOMEM, -EAGAIN
 * (IOPT_PAGES_TRYLOCK and pages->mutex taken).
 * On failure: nothing changed.
 */
int iopt_area_add_access(struct iopt_area *area, uint64_t start_index,
			 uint64_t last_index, void **out_pages,
			 uint64_t *out_frames, unsigned int flags,
			 bool lock_area);

/**
 * iopt_area_has_access() - would iopt_area_remove_access() of the same
 * arguments match? Lets a caller releasing a pin that spans several areas
 * check them all first and release all or nothing.
 * @area: the area.
 * @start_index: the first index given to add.
 * @last_index: the last index given to add.
 * @unlock_area: the @lock_area given to add.
 *
 * Locking: iova_rwsem held (read); takes pages->mutex.
 */
bool iopt_area_has_access(struct iopt_area *area, uint64_t start_index,
			  uint64_t last_index, bool unlock_area);

/**
 * iopt_area_remove_access() - release one iopt_area_add_access().
 * @area: the area.
 * @start_index: the exact first index given to add.
 * @last_index: the exact last index given to add.
 * @unlock_area: the @lock_area given to add.
 *
 * An interval not added through @area (or not as a lock with
 * @unlock_area) is a caller bug the caller reports (the kernel's WARN):
 * nothing changes.
 *
 * Locking: iova_rwsem held (read), or a lock-free section standing for it;
 * takes pages->mutex.
 * Return: whether it matched (and was released).
 */
bool iopt_area_remove_access(struct iopt_area *area, uint64_t start_index,
			     uint64_t last_index, bool unlock_area);

/*
 * iopt_area_try_remove_access() - iopt_area_remove_access() if pages->mutex
 * is free. Return: 1 released, 0 no match, -EAGAIN the mutex is taken
 * (nothing changed).
 */
int iopt_area_try_remove_access(struct iopt_area *area, uint64_t start_index,
				uint64_t last_index, bool unlock_area);

/**
 * iopt_pages_rw_access() - copy bytes between @data and the pages, without a
 * lasting pin.
 * @pages: pages.
 * @start_byte: first byte, from the page-aligned start of the pages.
 * @data: caller buffer.
 * @length: bytes, > 0, within the pages.
 * @flags: IOPT_PAGES_RW_WRITE to copy into the pages, else out of them.
 *
 * USER pages copy straight through the process's own address space with
 * fault checking; FILE pages (and IOPT_PAGES_RW_SLOW_PATH) read frames from
 * the tiers a domain would use, pinning temporarily.
 *
 * Locking: takes pages->mutex on the slow path.
 * Return: 0, -EPERM (WRITE on read-only pages), -EFAULT, -ENOMEM.
 * On failure: bytes before the fault may have been copied.
 */
int iopt_pages_rw_access(struct iopt_pages *pages, uint64_t start_byte,
			 void *data, uint64_t length, unsigned int flags);

#endif /* IOPT_PAGES_H */
