/* SPDX-License-Identifier: MIT */
/*
 * io_pagetable.c - the IOVA layout of one IOAS: areas, allowed and reserved
 * ranges, IOVA allocation, map/unmap/copy/cut, and which areas feed which
 * domains (the kernel's io_pagetable.c; dirty tracking lives in dirty.c).
 *
 * Every rule here is the kernel's (docs/ioas.md, iopt-semantics.md §2.1):
 *  - areas never overlap and cover at least one byte; every IOVA, length and
 *    in-page source offset is a multiple of iova_alignment;
 *  - a map reserves its IOVA first (area in the tree with pages == NULL), fills
 *    the domains with no iova_rwsem held, then publishes the area inside the
 *    domains_rwsem read section, so attach/detach never see a half-filled area;
 *  - unmap removes whole areas only, lowest first, and is not atomic across
 *    areas: the byte count of what went is always reported;
 *  - attach is all or nothing; detach and unmap never fail on memory.
 *
 * Vocabulary: "last" inclusive, "end" exclusive, uint64_t IOVAs; nothing
 * computes last + 1 where last may be UINT64_MAX.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "alloc.h"
#include "ctx.h"
#include "double_span.h"
#include "io_pagetable.h"
#include "pages.h"
#include "readers.h"

/* Unmap gives up on an area whose accesses ignore this many notifications. */
#define IOPT_UNMAP_MAX_TRIES 100

void iopt_iova_write_lock_beside_readers(struct io_pagetable *iopt)
{
	iopt_rwlock_write(&iopt->iova_rwsem);
}

void iopt_iova_exclude_readers(struct io_pagetable *iopt)
{
	iopt_assert_held_write(&iopt->iova_rwsem);
	/* changed only under this lock, so stable for the whole section */
	if (!atomic_load_explicit(&iopt->nr_fast_readers, memory_order_relaxed) ||
	    atomic_load_explicit(&iopt->fast_excluded, memory_order_relaxed))
		return;
	atomic_store_explicit(&iopt->fast_excluded, true, memory_order_relaxed);
	iopt_readers_synchronize();
}

void iopt_iova_write_lock(struct io_pagetable *iopt)
{
	iopt_iova_write_lock_beside_readers(iopt);
	iopt_iova_exclude_readers(iopt);
}

void iopt_iova_write_unlock(struct io_pagetable *iopt)
{
	/* release: what the section wrote happens before a fast read */
	if (atomic_load_explicit(&iopt->fast_excluded, memory_order_relaxed))
		atomic_store_explicit(&iopt->fast_excluded, false,
				      memory_order_release);
	iopt_rwlock_unlock(&iopt->iova_rwsem);
}

/*
 * Refusals go to the context's log callback, one line each, so a user learns
 * why and not only the errno. Every io_pagetable is embedded in an iopt_ioas.
 */
void iopt_refuse(struct io_pagetable *iopt, const char *fmt, ...)
{
	struct iopt_ioas *ioas = container_of(iopt, struct iopt_ioas, iopt);
	char msg[256];
	va_list ap;

	if (iopt_likely(!ioas->ctx->log_fn))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	iopt_ctx_log_emit(ioas->ctx, "ioas %" PRIu32 ": %s", ioas->id, msg);
}

/* "op: [start, last] <verb> <what> [node_start, node_last]" */
static void iopt_refuse_conflict(struct io_pagetable *iopt, const char *op,
				 uint64_t start, uint64_t last,
				 const char *conflict,
				 const struct iopt_itree_node *node)
{
	iopt_refuse(iopt, "%s: [0x%" PRIx64 ", 0x%" PRIx64 "] %s [0x%" PRIx64
		    ", 0x%" PRIx64 "]", op, start, last, conflict, node->start,
		    node->last);
}

struct iopt_area *iopt_area_contig_init(struct iopt_area_contig_iter *iter,
					struct io_pagetable *iopt,
					uint64_t iova, uint64_t last_iova)
{
	iopt_assert_held(&iopt->iova_rwsem);

	iter->cur_iova = iova;
	iter->last_iova = last_iova;
	iter->area = iopt_area_find(iopt, iova);
	if (iter->area && !iter->area->pages)
		iter->area = NULL;
	return iter->area;
}

struct iopt_area *iopt_area_contig_next(struct iopt_area_contig_iter *iter)
{
	uint64_t last_iova;

	if (!iter->area)
		return NULL;
	last_iova = iopt_area_last_iova(iter->area);
	if (iter->last_iova <= last_iova)
		return NULL;

	iter->cur_iova = last_iova + 1;
	iter->area = iopt_area_iter_next(iter->area, iter->cur_iova,
					 iter->last_iova);
	if (iter->area && (iter->cur_iova != iopt_area_iova(iter->area) ||
			   !iter->area->pages))
		iter->area = NULL;
	return iter->area;
}

/*
 * Does [*start, last] hold @length bytes once *start is aligned up and the
 * source's in-page offset ORed in? On success *start is the candidate IOVA.
 * The OR (not add) assumes an aligned start, as the kernel does; and, as the
 * kernel, a candidate equal to last is refused even for one byte.
 */
static bool alloc_iova_check_range(uint64_t *start, uint64_t last,
				   uint64_t length, uint64_t alignment,
				   uint64_t page_offset)
{
	uint64_t aligned;

	if (__builtin_add_overflow(*start, alignment - 1, &aligned))
		return false;
	aligned &= ~(alignment - 1);
	aligned |= page_offset;
	if (aligned >= last || last - aligned < length - 1)
		return false;
	*start = aligned;
	return true;
}

/* The kernel's alignment heuristic for an auto IOVA (semantics §3.4). */
static int alloc_iova_alignment(struct io_pagetable *iopt, uint64_t addr,
				uint64_t length, uint64_t *alignment)
{
	uint64_t align;

	/* also keeps the power-of-two round-up below from overflowing */
	if (length == 0 || length >= UINT64_MAX / 2) {
		iopt_refuse(iopt, "map: no auto IOVA for a length of 0x%" PRIx64
			    " (zero, or half the IOVA space or more)", length);
		return -EOVERFLOW;
	}

	align = length == 1 ? 1 : UINT64_C(1) << iopt_fls64(length - 1);
	/*
	 * Keep the alignment the source address has, so THP- or hugetlb-backed
	 * memory can later be mapped with huge IOPTEs.
	 */
	if (addr)
		align = IOPT_MIN(align, UINT64_C(1) << iopt_ffs64(addr));
	align = IOPT_MIN(align, IOPT_HPAGE_SIZE);
	if (align < iopt->iova_alignment) {
		iopt_refuse(iopt, "map: auto IOVA alignment 0x%" PRIx64 ", from the "
			    "length and source 0x%" PRIx64 ", is below the "
			    "alignment 0x%" PRIx64, align, addr,
			    iopt->iova_alignment);
		return -EINVAL;
	}
	*alignment = align;
	return 0;
}

/*
 * Lowest hole of (reserved U areas) inside [first, last] that fits; the
 * candidate range itself must fit first.
 */
static bool alloc_iova_in_range(struct io_pagetable *iopt, uint64_t first,
				uint64_t last, uint64_t length,
				uint64_t alignment, uint64_t page_offset,
				uint64_t *iova)
{
	struct iopt_double_span_iter used;

	if (!alloc_iova_check_range(&first, last, length, alignment,
				    page_offset))
		return false;

	iopt_for_each_double_span(&used, &iopt->reserved_itree,
				  &iopt->area_itree, first, last) {
		uint64_t start = used.start_hole;

		if (used.is_used)
			continue;
		if (alloc_iova_check_range(&start, used.last_hole, length,
					   alignment, page_offset)) {
			*iova = start;
			return true;
		}
	}
	return false;
}

/*
 * Find a free IOVA for @length bytes whose source starts at @addr (a user VA
 * or file offset): first fit at the lowest address, never in the first or
 * last page, inside the allowed ranges when there are any.
 */
static int iopt_alloc_iova(struct io_pagetable *iopt, uint64_t *iova,
			   uint64_t addr, uint64_t length)
{
	const uint64_t first = IOPT_PAGE_SIZE, last = UINT64_MAX - IOPT_PAGE_SIZE;
	uint64_t page_offset = addr % IOPT_PAGE_SIZE;
	struct iopt_span_iter allowed;
	uint64_t alignment;
	int rc;

	iopt_assert_held(&iopt->iova_rwsem);

	rc = alloc_iova_alignment(iopt, addr, length, &alignment);
	if (rc)
		return rc;

	if (iopt_itree_empty(&iopt->allowed_itree)) {
		if (alloc_iova_in_range(iopt, first, last, length, alignment,
					page_offset, iova))
			return 0;
		return -ENOSPC;
	}
	iopt_for_each_span(&allowed, &iopt->allowed_itree, first, last) {
		if (allowed.is_hole)
			continue;
		if (alloc_iova_in_range(iopt, allowed.start_used,
					allowed.last_used, length, alignment,
					page_offset, iova))
			return 0;
	}
	return -ENOSPC;
}

static int iopt_check_iova(struct io_pagetable *iopt, uint64_t iova,
			   uint64_t length)
{
	struct iopt_reserved *reserved;
	struct iopt_area *area;
	uint64_t last;

	iopt_assert_held(&iopt->iova_rwsem);

	if (!iopt_is_aligned(iova, iopt->iova_alignment)) {
		iopt_refuse(iopt, "map: iova 0x%" PRIx64
			    " is not a multiple of the alignment 0x%" PRIx64,
			    iova, iopt->iova_alignment);
		return -EINVAL;
	}
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;

	reserved = iopt_reserved_iter_first(iopt, iova, last);
	if (reserved) {
		iopt_refuse_conflict(iopt, "map", iova, last,
				     "touches reserved", &reserved->node);
		return -EINVAL;
	}
	area = iopt_area_iter_first(iopt, iova, last);
	if (area) {
		iopt_refuse_conflict(iopt, "map", iova, last,
				     area->pages ? "overlaps area" :
						   "overlaps in-flight area",
				     &area->node);
		return -EEXIST;
	}
	return 0;
}

/*
 * Give @area the slice [start_byte, start_byte + length) of @pages at @iova,
 * not yet linked anywhere.
 */
static int iopt_area_setup(struct io_pagetable *iopt, struct iopt_area *area,
			   struct iopt_pages *pages, uint64_t iova,
			   uint64_t start_byte, uint64_t length, int iommu_prot)
{
	uint64_t last_byte;

	if ((iommu_prot & IOPT_PROT_WRITE) && !pages->writable) {
		iopt_refuse(iopt, "map: write access asked of read-only pages");
		return -EPERM;
	}
	area->iommu_prot = iommu_prot;
	area->page_offset = start_byte % IOPT_PAGE_SIZE;
	if (!iopt_is_aligned(area->page_offset, iopt->iova_alignment)) {
		iopt_refuse(iopt, "map: source offset 0x%x in its page is not a "
			    "multiple of the alignment 0x%" PRIx64,
			    area->page_offset, iopt->iova_alignment);
		return -EINVAL;
	}
	area->node.start = iova;
	if (__builtin_add_overflow(iova, length - 1, &area->node.last))
		return -EOVERFLOW;
	area->pages_node.start = start_byte / IOPT_PAGE_SIZE;
	if (__builtin_add_overflow(start_byte, length - 1, &last_byte))
		return -EOVERFLOW;
	area->pages_node.last = last_byte / IOPT_PAGE_SIZE;
	if (area->pages_node.last >= pages->npages)
		return -EOVERFLOW;
	/* integer arithmetic: an unpinnable FILE range has a NULL uptr */
	area->host = (char *)((uintptr_t)pages->uptr + (uintptr_t)start_byte);
	return 0;
}

/*
 * Set @area up as iopt_area_setup() and insert it with pages == NULL, which
 * reserves the IOVA. The index comes first: it is the step that can fail.
 */
static int iopt_insert_area(struct io_pagetable *iopt, struct iopt_area *area,
			    struct iopt_pages *pages, uint64_t iova,
			    uint64_t start_byte, uint64_t length, int iommu_prot)
{
	int rc;

	iopt_assert_held_write(&iopt->iova_rwsem);

	rc = iopt_area_setup(iopt, area, pages, iova, start_byte, length,
			     iommu_prot);
	if (rc)
		return rc;
	rc = iopt_iova_index_insert(&iopt->area_index, &area->node);
	if (rc) {
		/* no lock-free lookup may still walk the nodes it retired */
		iopt_iova_exclude_readers(iopt);
		iopt_iova_index_reclaim(&iopt->area_index);
		return rc;
	}
	area->iopt = iopt;
	iopt_itree_insert(&area->node, &iopt->area_itree);
	return 0;
}

/*
 * Remove a never-published area (pages == NULL) and free it. One whose
 * insert failed (area->iopt still NULL) is in no structure, and readers
 * were excluded when the insert failed (iopt_insert_area()), so it is freed
 * with no lock.
 */
static void iopt_abort_area(struct iopt_area *area)
{
	struct io_pagetable *iopt = area->iopt;

	if (iopt) {
		iopt_iova_write_lock(iopt);
		iopt_iova_index_remove(&iopt->area_index, &area->node);
		iopt_itree_remove(&area->node, &iopt->area_itree);
		iopt_iova_write_unlock(iopt);
	}
	iopt_free(area);
}

/*
 * iopt_pages_list_add() - append a slice; takes over the caller's reference
 * on @pages only on success.
 */
static int iopt_pages_list_add(struct iopt_pages_list *list,
			       struct iopt_pages *pages, uint64_t start_byte,
			       uint64_t length)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 1;
		struct iopt_pages_elm *elms;

		elms = iopt_realloc(list->elms, cap * sizeof(*elms));
		if (!elms)
			return -ENOMEM;
		list->elms = elms;
		list->cap = cap;
	}
	list->elms[list->n++] = (struct iopt_pages_elm){
		.pages = pages, .start_byte = start_byte, .length = length,
	};
	return 0;
}

/**
 * iopt_free_pages_list() - drop what a pages list still holds.
 * @list: the list; its half-built areas are removed from their tree and freed
 *	  and its pages references dropped. The list is empty afterwards.
 *
 * Locking: takes iova_rwsem for each half-built area. Cannot fail.
 */
void iopt_free_pages_list(struct iopt_pages_list *list)
{
	size_t i;

	for (i = 0; i != list->n; i++) {
		if (list->elms[i].area)
			iopt_abort_area(list->elms[i].area);
		iopt_put_pages(list->elms[i].pages);
	}
	iopt_free(list->elms);
	*list = (struct iopt_pages_list){ 0 };
}

static int iopt_alloc_area_pages(struct io_pagetable *iopt,
				 struct iopt_pages_list *list, uint64_t length,
				 uint64_t *dst_iova, int iommu_prot,
				 unsigned int flags)
{
	struct iopt_pages_elm *elm;
	uint64_t iova;
	int rc = 0;
	size_t i;

	for (i = 0; i != list->n; i++) {
		list->elms[i].area = iopt_calloc(1, sizeof(struct iopt_area));
		if (!list->elms[i].area)
			return -ENOMEM;
	}

	/* it only inserts areas: lock-free readers may go on reading */
	iopt_iova_write_lock_beside_readers(iopt);
	if (!length || !iopt_is_aligned(length, iopt->iova_alignment)) {
		iopt_refuse(iopt, "map: length 0x%" PRIx64 " is not a non-zero "
			    "multiple of the alignment 0x%" PRIx64, length,
			    iopt->iova_alignment);
		rc = -EINVAL;
		goto out_unlock;
	}

	if (flags & IOPT_ALLOC_IOVA) {
		/* the first slice's source address guesses the best alignment */
		elm = &list->elms[0];
		rc = iopt_alloc_iova(iopt, dst_iova,
				     iopt_pages_source_addr(elm->pages,
							    elm->start_byte),
				     length);
		if (rc == -ENOSPC)
			iopt_refuse(iopt, "map: no free IOVA for 0x%" PRIx64
				    " bytes%s", length,
				    iopt_itree_empty(&iopt->allowed_itree) ? "" :
				    " in the allowed ranges");
		if (rc)
			goto out_unlock;
	} else {
		rc = iopt_check_iova(iopt, *dst_iova, length);
		if (rc)
			goto out_unlock;
	}

	iova = *dst_iova;
	for (i = 0; i != list->n; i++) {
		elm = &list->elms[i];
		rc = iopt_insert_area(iopt, elm->area, elm->pages, iova,
				      elm->start_byte, elm->length, iommu_prot);
		if (rc)
			goto out_unlock;
		iova += elm->length;
	}
out_unlock:
	iopt_iova_write_unlock(iopt);
	return rc;
}

static int iopt_fill_domains_pages(struct iopt_pages_list *list)
{
	size_t i, j;
	int rc;

	for (i = 0; i != list->n; i++) {
		rc = iopt_area_fill_domains(list->elms[i].area,
					    list->elms[i].pages);
		if (rc)
			goto err_unfill;
	}
	return 0;

err_unfill:
	for (j = 0; j != i; j++)
		iopt_area_unfill_domains(list->elms[j].area,
					 list->elms[j].pages);
	return rc;
}

/**
 * iopt_map_pages() - map the slices of @list back to back, one area each.
 * @iopt: the address space.
 * @list: the slices; on success every pages reference moves into its area
 *	  and the elements are cleared, on failure the list still owns them.
 * @length: total bytes (the sum of the slice lengths).
 * @dst_iova: the IOVA (input unless IOPT_ALLOC_IOVA; output always).
 * @iommu_prot: IOPT_PROT_* bits.
 * @flags: IOPT_ALLOC_IOVA or 0.
 *
 * Locking: takes iova_rwsem, then domains_rwsem (read) and iova_rwsem again.
 * Return: 0; -EINVAL (alignment, reserved), -EEXIST (overlap), -EOVERFLOW,
 * -ENOSPC, -EPERM (WRITE on read-only pages), pin and domain errors.
 * On failure: nothing is mapped, pinned or reserved (the caller frees @list).
 */
int iopt_map_pages(struct io_pagetable *iopt, struct iopt_pages_list *list,
		   uint64_t length, uint64_t *dst_iova, int iommu_prot,
		   unsigned int flags)
{
	size_t i;
	int rc;

	rc = iopt_alloc_area_pages(iopt, list, length, dst_iova, iommu_prot,
				   flags);
	if (rc)
		return rc;

	iopt_rwlock_read(&iopt->domains_rwsem);
	rc = iopt_fill_domains_pages(list);
	if (rc)
		goto out_unlock_domains;

	/*
	 * Publish inside the domains_rwsem read section: a domain attached
	 * concurrently either finds the area published or was seen by the
	 * fill above. Lock-free readers go on: they find each area with
	 * lockless_prot 0 until it is whole.
	 */
	iopt_iova_write_lock_beside_readers(iopt);
	for (i = 0; i != list->n; i++) {
		/* moves the pages reference from the list into the area */
		list->elms[i].area->pages = list->elms[i].pages;
		iopt_area_update_lockless(list->elms[i].area);
	}
	iopt_iova_write_unlock(iopt);
	/* the elements hold nothing now */
	list->n = 0;
out_unlock_domains:
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

/* Map one freshly allocated pages object; consumes the reference. */
static int iopt_map_new_pages(struct io_pagetable *iopt, uint64_t *iova,
			      struct iopt_pages *pages, uint64_t start_byte,
			      uint64_t length, int iommu_prot,
			      unsigned int flags)
{
	struct iopt_pages_list list = { 0 };
	int rc;

	rc = iopt_pages_list_add(&list, pages, start_byte, length);
	if (rc) {
		iopt_put_pages(pages);
		return rc;
	}
	rc = iopt_map_pages(iopt, &list, length, iova, iommu_prot, flags);
	iopt_free_pages_list(&list);
	return rc;
}

/**
 * iopt_map_user_pages() - map [@uptr, @uptr + @length) of this process.
 * @ctx: context charged for pins.
 * @iopt: the address space.
 * @iova: as in iopt_map_pages().
 * @uptr: first byte.
 * @length: bytes.
 * @iommu_prot: IOPT_PROT_*; WRITE makes the pages writable.
 * @flags: IOPT_ALLOC_IOVA or 0.
 *
 * With no domain nothing is pinned or touched (lazy, like the kernel).
 * Return: as iopt_map_pages(), plus iopt_alloc_user_pages() errors.
 * On failure: nothing changed.
 */
int iopt_map_user_pages(struct iopt_ctx *ctx, struct io_pagetable *iopt,
			uint64_t *iova, void *uptr, uint64_t length,
			int iommu_prot, unsigned int flags)
{
	struct iopt_pages *pages;
	int rc;

	rc = iopt_alloc_user_pages(ctx, uptr, length,
				   iommu_prot & IOPT_PROT_WRITE, &pages);
	if (rc)
		return rc;
	return iopt_map_new_pages(iopt, iova, pages,
				  (uintptr_t)uptr % IOPT_PAGE_SIZE, length,
				  iommu_prot, flags);
}

/**
 * iopt_map_file_pages() - map [@start, @start + @length) of a memfd.
 * @ctx: context charged for pins.
 * @iopt: the address space.
 * @iova: as in iopt_map_pages().
 * @memfd: the file; not kept open by the caller's handle (pages.c maps it).
 * @start: file offset of the first byte.
 * @length: bytes.
 * @iommu_prot: IOPT_PROT_*.
 * @flags: IOPT_ALLOC_IOVA or 0.
 *
 * Return: as iopt_map_pages(), plus iopt_alloc_file_pages() errors.
 * On failure: nothing changed.
 */
int iopt_map_file_pages(struct iopt_ctx *ctx, struct io_pagetable *iopt,
			uint64_t *iova, int memfd, uint64_t start,
			uint64_t length, int iommu_prot, unsigned int flags)
{
	struct iopt_pages *pages;
	int rc;

	rc = iopt_alloc_file_pages(ctx, memfd, start, length,
				   iommu_prot & IOPT_PROT_WRITE, &pages);
	if (rc)
		return rc;
	return iopt_map_new_pages(iopt, iova, pages, start % IOPT_PAGE_SIZE,
				  length, iommu_prot, flags);
}

/**
 * iopt_get_pages() - take references on the pages behind a fully mapped range
 * (the first half of COPY).
 * @iopt: the source address space.
 * @iova: first IOVA.
 * @length: bytes.
 * @list: empty list; receives one slice per area crossed, each holding a new
 *	  pages reference.
 *
 * Locking: takes iova_rwsem (read).
 * Return: 0; -EINVAL (length 0); -EOVERFLOW; -ENOENT (a gap, an unmapped
 * first byte, or an area being built or torn down); -ENOMEM.
 * On failure: @list is empty.
 */
int iopt_get_pages(struct io_pagetable *iopt, uint64_t iova, uint64_t length,
		   struct iopt_pages_list *list)
{
	struct iopt_area_contig_iter iter;
	struct iopt_area *area;
	uint64_t last_iova;
	int rc = 0;

	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, &last_iova))
		return -EOVERFLOW;

	iopt_rwlock_read(&iopt->iova_rwsem);
	iopt_for_each_contig_area(&iter, area, iopt, iova, last_iova) {
		uint64_t last = IOPT_MIN(last_iova, iopt_area_last_iova(area));

		rc = iopt_pages_list_add(list, area->pages,
					 iopt_area_start_byte(area,
							      iter.cur_iova),
					 last - iter.cur_iova + 1);
		if (rc)
			goto err_free;
		iopt_pages_get(area->pages);
	}
	if (!iopt_area_contig_done(&iter)) {
		iopt_refuse(iopt, "copy: [0x%" PRIx64 ", 0x%" PRIx64
			    "] is not fully mapped (hole at 0x%" PRIx64 ")",
			    iova, last_iova, iter.cur_iova);
		rc = -ENOENT;
		goto err_free;
	}
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	return 0;

err_free:
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	iopt_free_pages_list(list);
	return rc;
}

/*
 * Ask every attached access that can unmap to drop its pins in the range.
 * Called with no io_pagetable lock held: the callbacks re-enter the library
 * (unpin). The slot is re-read after each callback since the list may change.
 */
static void iopt_access_notify_unmap(struct io_pagetable *iopt, uint64_t iova,
				     uint64_t length)
{
	size_t id;

	iopt_rwlock_read(&iopt->domains_rwsem);
	for (id = 0; id < iopt->naccess_slots; id++) {
		struct iopt_access_slot slot = iopt->accesses[id];

		if (!slot.access || !slot.ops->unmap)
			continue;
		if (slot.ops->tryget && !slot.ops->tryget(slot.access))
			continue;
		iopt_rwlock_unlock(&iopt->domains_rwsem);
		slot.ops->unmap(slot.access, iova, length);
		if (slot.ops->put)
			slot.ops->put(slot.access);
		iopt_rwlock_read(&iopt->domains_rwsem);
	}
	iopt_rwlock_unlock(&iopt->domains_rwsem);
}

/* Why the lowest area in [start, last] cannot be unmapped now, or 0. */
static int unmap_check_area(struct io_pagetable *iopt, struct iopt_area *area,
			    uint64_t start, uint64_t last)
{
	if (!area->pages || area->num_locks) {
		iopt_refuse(iopt, "unmap: area [0x%" PRIx64 ", 0x%" PRIx64
			    "] is %s", iopt_area_iova(area),
			    iopt_area_last_iova(area),
			    area->pages ? "locked by an internal access" :
					  "being mapped or unmapped");
		return -EBUSY;
	}
	if (iopt_area_iova(area) < start || iopt_area_last_iova(area) > last) {
		iopt_refuse_conflict(iopt, "unmap", start, last, "cuts area",
				     &area->node);
		return -ENOENT;
	}
	return 0;
}

static int iopt_unmap_iova_range(struct io_pagetable *iopt, uint64_t start,
				 uint64_t last, uint64_t *unmapped)
{
	uint64_t unmapped_bytes = 0;
	unsigned int tries = 0;
	struct iopt_area *area;
	int rc = 0;

	/*
	 * domains_rwsem (read) is held whenever an area's pages is NULL for
	 * teardown, so attach/detach never run against a half-removed area.
	 */
again:
	iopt_rwlock_read(&iopt->domains_rwsem);
	/* readers are excluded only once there is an area to take away */
	iopt_iova_write_lock_beside_readers(iopt);
	while ((area = iopt_area_iter_first(iopt, start, last))) {
		uint64_t area_first = iopt_area_iova(area);
		uint64_t area_last = iopt_area_last_iova(area);
		struct iopt_pages *pages;

		/* before num_locks and num_accesses, which lock-free pins change */
		iopt_iova_exclude_readers(iopt);
		rc = unmap_check_area(iopt, area, start, last);
		if (rc)
			goto out_unlock_iova;
		if (area_first != start)
			tries = 0;

		/*
		 * num_accesses writers hold iova_rwsem (read) or are in a
		 * lock-free section, which the write side has waited for, so
		 * it reads num_accesses without the pages mutex.
		 */
		if (area->num_accesses) {
			start = area_first;
			area->prevent_access = true;
			iopt_area_update_lockless(area);
			iopt_iova_write_unlock(iopt);
			iopt_rwlock_unlock(&iopt->domains_rwsem);

			/*
			 * Unlocked, another unmap may free the area: only the
			 * bounds read under the lock may be used from here on.
			 */
			iopt_access_notify_unmap(iopt, area_first,
						 area_last - area_first + 1);
			if (++tries > IOPT_UNMAP_MAX_TRIES) {
				iopt_refuse(iopt, "unmap: accesses keep area "
					    "[0x%" PRIx64 ", 0x%" PRIx64
					    "] pinned", area_first, area_last);
				rc = -EDEADLOCK;
				goto out_unmapped;
			}
			goto again;
		}

		pages = area->pages;
		area->pages = NULL;
		iopt_area_update_lockless(area);
		/*
		 * Out of the index while readers are excluded, so none can
		 * find it from here on and it needs no second barrier to be
		 * freed; the interval tree keeps its IOVA taken (and other
		 * callers see it busy) until the domains are unfilled.
		 */
		iopt_iova_index_remove(&iopt->area_index, &area->node);
		area->unindexed = true;
		iopt_iova_write_unlock(iopt);

		iopt_area_unfill_domains(area, pages);
		iopt_put_pages(pages);
		unmapped_bytes += area_last - area_first + 1;

		iopt_iova_write_lock_beside_readers(iopt);
		iopt_itree_remove(&area->node, &iopt->area_itree);
		iopt_free(area);
		/*
		 * A concurrent map may have reused the IOVA just freed: move
		 * the start past it so it is not unmapped too.
		 */
		if (area_last >= last)
			break;
		start = area_last + 1;
	}
out_unlock_iova:
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
out_unmapped:
	if (unmapped)
		*unmapped = unmapped_bytes;
	return rc;
}

/**
 * iopt_unmap_iova() - remove every area inside [@iova, @iova + @length).
 * @iopt: the address space.
 * @iova: first IOVA.
 * @length: bytes.
 * @unmapped: receives the bytes removed (the sum of the whole areas removed),
 *	      also on failure; may be NULL.
 *
 * Areas are never split: one crossing the range's edge fails the call with
 * -ENOENT, possibly after lower areas were already removed.
 * Locking: takes domains_rwsem (read) then iova_rwsem (write).
 * Return: 0 (also when nothing was there); -EINVAL (length 0); -EOVERFLOW;
 * -ENOENT; -EBUSY (area in flight or locked); -EDEADLOCK.
 * On failure: areas below the failing one may be gone; *@unmapped says.
 */
int iopt_unmap_iova(struct io_pagetable *iopt, uint64_t iova, uint64_t length,
		    uint64_t *unmapped)
{
	uint64_t last;

	if (unmapped)
		*unmapped = 0;
	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;
	return iopt_unmap_iova_range(iopt, iova, last, unmapped);
}

/**
 * iopt_unmap_all() - remove every area; succeeds on an empty table.
 * @iopt: the address space.
 * @unmapped: receives the bytes removed; may be NULL.
 *
 * Return: 0, or -EBUSY/-EDEADLOCK as iopt_unmap_iova().
 */
int iopt_unmap_all(struct io_pagetable *iopt, uint64_t *unmapped)
{
	return iopt_unmap_iova_range(iopt, 0, UINT64_MAX, unmapped);
}

/**
 * iopt_set_allow_iova() - replace the allowed ranges atomically.
 * @iopt: the address space.
 * @allowed: the new tree of struct iopt_allowed; on return it holds the tree
 *	     the caller must free (the old one on success, the new one on
 *	     failure).
 *
 * Locking: takes iova_rwsem (write).
 * Return: 0, or -EADDRINUSE when a new range hits a reserved range.
 * On failure: the old allowed ranges stay.
 */
int iopt_set_allow_iova(struct io_pagetable *iopt,
			struct iopt_itree_root *allowed)
{
	struct iopt_itree_root old;
	struct iopt_allowed *node;
	int rc = 0;

	/* lock-free readers never read the allowed and reserved ranges */
	iopt_iova_write_lock_beside_readers(iopt);
	old = iopt->allowed_itree;
	iopt->allowed_itree = *allowed;
	for (node = iopt_allowed_iter_first(iopt, 0, UINT64_MAX); node;
	     node = iopt_allowed_iter_next(node, 0, UINT64_MAX)) {
		struct iopt_reserved *reserved = iopt_reserved_iter_first(
			iopt, node->node.start, node->node.last);

		if (reserved) {
			iopt_refuse_conflict(iopt, "allow", node->node.start,
					     node->node.last, "hits reserved",
					     &reserved->node);
			rc = -EADDRINUSE;
			break;
		}
	}
	if (rc)
		iopt->allowed_itree = old;
	else
		*allowed = old;
	iopt_iova_write_unlock(iopt);
	return rc;
}

/**
 * iopt_reserve_iova() - reserve [@start, @last] for @owner.
 * @iopt: the address space.
 * @start: first IOVA.
 * @last: last IOVA (inclusive), >= @start.
 * @owner: cookie that iopt_remove_reserved_iova() matches.
 *
 * Reservations may overlap each other, never an area or an allowed range.
 * Locking: caller holds iova_rwsem (write).
 * Return: 0, -EADDRINUSE, -ENOMEM.
 * On failure: nothing changed.
 */
int iopt_reserve_iova(struct io_pagetable *iopt, uint64_t start, uint64_t last,
		      const void *owner)
{
	struct iopt_reserved *reserved;
	struct iopt_allowed *allowed;
	struct iopt_area *area;

	iopt_assert_held_write(&iopt->iova_rwsem);

	area = iopt_area_iter_first(iopt, start, last);
	if (area) {
		iopt_refuse_conflict(iopt, "reserve", start, last, "hits area",
				     &area->node);
		return -EADDRINUSE;
	}
	allowed = iopt_allowed_iter_first(iopt, start, last);
	if (allowed) {
		iopt_refuse_conflict(iopt, "reserve", start, last,
				     "hits allowed", &allowed->node);
		return -EADDRINUSE;
	}
	reserved = iopt_calloc(1, sizeof(*reserved));
	if (!reserved)
		return -ENOMEM;
	reserved->node.start = start;
	reserved->node.last = last;
	reserved->owner = owner;
	iopt_itree_insert(&reserved->node, &iopt->reserved_itree);
	return 0;
}

static void iopt_remove_reserved_iova_locked(struct io_pagetable *iopt,
					     const void *owner)
{
	struct iopt_reserved *reserved, *next;

	iopt_assert_held_write(&iopt->iova_rwsem);

	for (reserved = iopt_reserved_iter_first(iopt, 0, UINT64_MAX); reserved;
	     reserved = next) {
		next = iopt_reserved_iter_next(reserved, 0, UINT64_MAX);
		if (reserved->owner == owner) {
			iopt_itree_remove(&reserved->node,
					  &iopt->reserved_itree);
			iopt_free(reserved);
		}
	}
}

/**
 * iopt_remove_reserved_iova() - drop every reservation made by @owner.
 * @iopt: the address space.
 * @owner: the cookie given to iopt_reserve_iova().
 *
 * Locking: takes iova_rwsem (write). Cannot fail.
 */
void iopt_remove_reserved_iova(struct io_pagetable *iopt, const void *owner)
{
	/* lock-free readers never read the reserved ranges */
	iopt_iova_write_lock_beside_readers(iopt);
	iopt_remove_reserved_iova_locked(iopt, owner);
	iopt_iova_write_unlock(iopt);
}

/**
 * iopt_init_table() - set up an empty, byte-granular address space covering
 * all 2^64 IOVAs. Cannot fail.
 * @iopt: the table to initialise.
 */
void iopt_init_table(struct io_pagetable *iopt)
{
	*iopt = (struct io_pagetable){ .iova_alignment = 1 };
	iopt_rwlock_init(&iopt->domains_rwsem, IOPT_LOCK_DOMAINS);
	iopt_rwlock_init(&iopt->iova_rwsem, IOPT_LOCK_IOVA);
}

static void free_itree(struct iopt_itree_root *root, size_t offset)
{
	struct iopt_itree_node *node;

	while ((node = iopt_itree_first(root))) {
		iopt_itree_remove(node, root);
		iopt_free((char *)node - offset);
	}
}

/**
 * iopt_destroy_table() - free what is left of an emptied table.
 * @iopt: the table; every area must be unmapped and every domain and access
 *	  removed first. Remaining allowed and (user) reserved ranges are freed.
 */
void iopt_destroy_table(struct io_pagetable *iopt)
{
	free_itree(&iopt->allowed_itree, offsetof(struct iopt_allowed, node));
	free_itree(&iopt->reserved_itree, offsetof(struct iopt_reserved, node));
	assert(iopt_itree_empty(&iopt->area_itree));
	iopt_iova_index_destroy(&iopt->area_index);
	iopt_free(iopt->domains);
	iopt_free(iopt->accesses);
	iopt_rwlock_destroy(&iopt->iova_rwsem);
	iopt_rwlock_destroy(&iopt->domains_rwsem);
}

/*
 * Unmap every published area below @end_area (all when NULL) from a domain
 * that is not (or no longer) in the domains array: detach, or the undo of a
 * failed attach. With domains left, areas stored in it move to domains[0]
 * and nothing is unpinned; with none left, areas leave domains_itree and are
 * unpinned except what accesses hold.
 */
static void iopt_unfill_domain(struct io_pagetable *iopt,
			       struct iopt_domain *domain,
			       struct iopt_area *end_area)
{
	struct iopt_area *area;

	iopt_assert_held(&iopt->iova_rwsem);
	iopt_assert_held_write(&iopt->domains_rwsem);

	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		struct iopt_pages *pages = area->pages;

		if (area == end_area)
			break;
		if (!pages)
			continue;
		iopt_pages_lock(pages);
		if (iopt->ndomains) {
			if (area->storage_domain == domain)
				area->storage_domain = iopt->domains[0];
			iopt_pages_unlock(pages);
			iopt_area_unmap_domain(area, domain);
			continue;
		}
		iopt_itree_remove(&area->pages_node, &pages->pins->domains_itree);
		area->storage_domain = NULL;
		iopt_area_update_lockless(area);
		iopt_area_unfill_domain(area, pages, domain);
		iopt_pages_unlock(pages);
	}
}

/* Map every published area into a new domain; all or nothing. */
static int iopt_fill_domain(struct io_pagetable *iopt,
			    struct iopt_domain *domain)
{
	struct iopt_area *area;
	int rc;

	iopt_assert_held(&iopt->iova_rwsem);
	iopt_assert_held_write(&iopt->domains_rwsem);

	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		struct iopt_pages *pages = area->pages;

		if (!pages)
			continue;
		iopt_pages_lock(pages);
		rc = iopt_area_fill_domain(area, domain);
		if (rc) {
			iopt_pages_unlock(pages);
			iopt_refuse(iopt, "attach: filling area [0x%" PRIx64
				    ", 0x%" PRIx64 "] failed (%d)",
				    iopt_area_iova(area),
				    iopt_area_last_iova(area), rc);
			iopt_unfill_domain(iopt, domain, area);
			return rc;
		}
		if (!area->storage_domain) {
			/* the first domain: from now on it holds the pins */
			area->storage_domain = domain;
			iopt_area_update_lockless(area);
			iopt_itree_insert(&area->pages_node,
					  &pages->pins->domains_itree);
		}
		iopt_pages_unlock(pages);
	}
	return 0;
}

/* Do all areas conform to a larger alignment? */
static int iopt_check_iova_alignment(struct io_pagetable *iopt,
				     uint64_t new_alignment)
{
	uint64_t mask = new_alignment - 1;
	struct iopt_area *area;

	iopt_assert_held(&iopt->iova_rwsem);

	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		if ((iopt_area_iova(area) & mask) ||
		    (iopt_area_length(area) & mask) ||
		    (area->page_offset & mask)) {
			iopt_refuse(iopt, "area [0x%" PRIx64 ", 0x%" PRIx64
				    "] does not fit the new alignment 0x%"
				    PRIx64, iopt_area_iova(area),
				    iopt_area_last_iova(area), new_alignment);
			return -EADDRINUSE;
		}
	}
	return 0;
}

static uint64_t domain_min_pgsize(const struct iopt_domain *domain)
{
	return domain->pgsize_bitmap & -domain->pgsize_bitmap;
}

/* Reserve what lies outside @domain's aperture, owned by the domain. */
static int iopt_reserve_aperture(struct io_pagetable *iopt,
				 struct iopt_domain *domain)
{
	int rc;

	if (domain->aperture_start != 0) {
		rc = iopt_reserve_iova(iopt, 0, domain->aperture_start - 1,
				       domain);
		if (rc)
			return rc;
	}
	if (domain->aperture_last != UINT64_MAX)
		return iopt_reserve_iova(iopt, domain->aperture_last + 1,
					 UINT64_MAX, domain);
	return 0;
}

/* Make room for one more domain before anything is filled (cannot fail later). */
static int iopt_domains_reserve_slot(struct io_pagetable *iopt)
{
	struct iopt_domain **domains;
	size_t cap;

	if (iopt->ndomains < iopt->domains_cap)
		return 0;
	cap = iopt->domains_cap ? iopt->domains_cap * 2 : 2;
	domains = iopt_realloc(iopt->domains, cap * sizeof(*domains));
	if (!domains)
		return -ENOMEM;
	iopt->domains = domains;
	iopt->domains_cap = cap;
	return 0;
}

/**
 * iopt_table_add_domain() - attach a domain and fill it with every area.
 * @iopt: the address space.
 * @domain: the domain; borrowed until iopt_table_remove_domain().
 *
 * Locking: takes domains_rwsem then iova_rwsem, both for writing.
 * Return: 0; -EEXIST (already attached); -EINVAL (smallest page above
 * IOPT_PAGE_SIZE); -EADDRINUSE (areas do not fit the new alignment, or an
 * area or allowed range lies outside the aperture); -ENOMEM; fill errors
 * (-EFAULT, -ENOMEM, domain map errors).
 * On failure: the domain, the table, the pins and the charge are unchanged.
 */
int iopt_table_add_domain(struct io_pagetable *iopt, struct iopt_domain *domain)
{
	uint64_t new_alignment;
	size_t i;
	int rc;

	iopt_rwlock_write(&iopt->domains_rwsem);
	iopt_iova_write_lock(iopt);

	for (i = 0; i != iopt->ndomains; i++) {
		if (iopt->domains[i] == domain) {
			rc = -EEXIST;
			goto out_unlock;
		}
	}
	/*
	 * iopt_pages works in CPU pages, so a domain must accept them; smaller
	 * IO pages raise the alignment, which all areas must already meet.
	 */
	new_alignment = IOPT_MAX(domain_min_pgsize(domain),
				 iopt->iova_alignment);
	if (new_alignment > IOPT_PAGE_SIZE) {
		rc = -EINVAL;
		goto out_unlock;
	}
	if (new_alignment != iopt->iova_alignment) {
		rc = iopt_check_iova_alignment(iopt, new_alignment);
		if (rc)
			goto out_unlock;
	}
	rc = iopt_reserve_aperture(iopt, domain);
	if (rc)
		goto out_reserved;
	rc = iopt_domains_reserve_slot(iopt);
	if (rc)
		goto out_reserved;
	rc = iopt_fill_domain(iopt, domain);
	if (rc)
		goto out_reserved;

	iopt->iova_alignment = new_alignment;
	iopt->domains[iopt->ndomains++] = domain;
	goto out_unlock;

out_reserved:
	iopt_remove_reserved_iova_locked(iopt, domain);
out_unlock:
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

/*
 * Recompute iova_alignment from the huge-page setting, the domains and the
 * accesses; raising it needs every area to conform (-EADDRINUSE).
 */
static int iopt_calculate_iova_alignment(struct io_pagetable *iopt)
{
	uint64_t new_alignment = iopt->disable_large_pages ? IOPT_PAGE_SIZE : 1;
	size_t i;
	int rc;

	iopt_assert_held_write(&iopt->iova_rwsem);
	iopt_assert_held(&iopt->domains_rwsem);

	for (i = 0; i != iopt->ndomains; i++)
		new_alignment = IOPT_MAX(new_alignment,
					 domain_min_pgsize(iopt->domains[i]));
	for (i = 0; i != iopt->naccess_slots; i++)
		if (iopt->accesses[i].access)
			new_alignment = IOPT_MAX(new_alignment,
						 iopt->accesses[i].iova_alignment);
	if (new_alignment > iopt->iova_alignment) {
		rc = iopt_check_iova_alignment(iopt, new_alignment);
		if (rc)
			return rc;
	}
	iopt->iova_alignment = new_alignment;
	return 0;
}

/**
 * iopt_table_remove_domain() - detach a domain, unmapping every area from it.
 * @iopt: the address space.
 * @domain: an attached domain; a domain not attached is ignored.
 *
 * Areas stored in @domain move to another domain; pages are unpinned only
 * when the last domain goes (except what accesses hold). The domain's aperture
 * reservations go and the alignment is recomputed (it can only shrink).
 * Locking: takes domains_rwsem then iova_rwsem, both for writing.
 * Never fails, never allocates.
 */
void iopt_table_remove_domain(struct io_pagetable *iopt,
			      struct iopt_domain *domain)
{
	size_t i;

	iopt_rwlock_write(&iopt->domains_rwsem);
	iopt_iova_write_lock(iopt);

	for (i = 0; i != iopt->ndomains; i++)
		if (iopt->domains[i] == domain)
			break;
	if (i == iopt->ndomains)
		goto out_unlock;

	/* keep the array dense: the last entry fills the hole */
	iopt->domains[i] = iopt->domains[--iopt->ndomains];
	iopt_unfill_domain(iopt, domain, NULL);
	iopt_remove_reserved_iova_locked(iopt, domain);
	/* shrinking cannot fail */
	(void)iopt_calculate_iova_alignment(iopt);
out_unlock:
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
}

/* Can @area be split so that @iova is the last byte of the left piece? */
static int iopt_area_split_check(struct iopt_area *area, uint64_t iova)
{
	struct io_pagetable *iopt = area->iopt;
	uint64_t alignment = iopt->iova_alignment;

	if (!area->pages || area->prevent_access) {
		iopt_refuse(iopt, "cut: area [0x%" PRIx64 ", 0x%" PRIx64
			    "] is busy", iopt_area_iova(area),
			    iopt_area_last_iova(area));
		return -EBUSY;
	}
	if (!iopt_is_aligned(iova + 1, alignment) ||
	    !iopt_is_aligned(iopt_area_start_byte(area, iova + 1), alignment)) {
		iopt_refuse(iopt, "cut: 0x%" PRIx64 " + 1 is not a multiple of "
			    "the alignment 0x%" PRIx64, iova, alignment);
		return -EINVAL;
	}
	return 0;
}

/* Can the pages side allow a split (accesses, huge IOPTEs)? pages->mutex held. */
static int iopt_area_split_check_pages(struct iopt_area *area)
{
	struct io_pagetable *iopt = area->iopt;

	if (area->num_accesses) {
		iopt_refuse(iopt, "cut: area [0x%" PRIx64 ", 0x%" PRIx64
			    "] has accesses", iopt_area_iova(area),
			    iopt_area_last_iova(area));
		return -EINVAL;
	}
	if (area->storage_domain && !iopt->disable_large_pages) {
		iopt_refuse(iopt, "cut: area [0x%" PRIx64 ", 0x%" PRIx64
			    "] may be mapped with huge pages",
			    iopt_area_iova(area), iopt_area_last_iova(area));
		return -EINVAL;
	}
	return 0;
}

/*
 * Replace @area by two areas sharing its pages, the left one ending at @iova.
 * Domains and pins are untouched: both halves keep the same mapping.
 */
static int iopt_area_split(struct iopt_area *area, uint64_t iova)
{
	uint64_t start_iova = iopt_area_iova(area);
	uint64_t last_iova = iopt_area_last_iova(area);
	struct io_pagetable *iopt = area->iopt;
	struct iopt_pages *pages = area->pages;
	struct iopt_area *lhs, *rhs;
	int rc;

	iopt_assert_held_write(&iopt->iova_rwsem);

	if (iova == start_iova || iova == last_iova)
		return 0;
	rc = iopt_area_split_check(area, iova);
	if (rc)
		return rc;

	lhs = iopt_calloc(1, sizeof(*lhs));
	if (!lhs)
		return -ENOMEM;
	rhs = iopt_calloc(1, sizeof(*rhs));
	if (!rhs) {
		rc = -ENOMEM;
		goto err_free_lhs;
	}

	iopt_pages_lock(pages);
	rc = iopt_area_split_check_pages(area);
	if (rc)
		goto err_unlock;

	/* the checks above leave no way for these to fail */
	(void)iopt_area_setup(iopt, lhs, pages, start_iova,
			      iopt_area_start_byte(area, start_iova),
			      iova - start_iova + 1, area->iommu_prot);
	(void)iopt_area_setup(iopt, rhs, pages, iova + 1,
			      iopt_area_start_byte(area, iova + 1),
			      last_iova - iova, area->iommu_prot);
	/* the last step that can fail; after it the split is committed */
	rc = iopt_iova_index_split(&iopt->area_index, &area->node, &lhs->node,
				   &rhs->node);
	if (rc)
		goto err_unlock;
	lhs->iopt = iopt;
	rhs->iopt = iopt;
	iopt_itree_remove(&area->node, &iopt->area_itree);
	iopt_itree_insert(&lhs->node, &iopt->area_itree);
	iopt_itree_insert(&rhs->node, &iopt->area_itree);
	if (area->storage_domain) {
		iopt_itree_remove(&area->pages_node, &pages->pins->domains_itree);
		iopt_itree_insert(&lhs->pages_node, &pages->pins->domains_itree);
		iopt_itree_insert(&rhs->pages_node, &pages->pins->domains_itree);
	}
	lhs->storage_domain = area->storage_domain;
	rhs->storage_domain = area->storage_domain;
	/* lhs takes over the area's reference, rhs gets a new one */
	lhs->pages = pages;
	rhs->pages = pages;
	iopt_area_update_lockless(lhs);
	iopt_area_update_lockless(rhs);
	iopt_pages_get(pages);
	iopt_free(area);
	iopt_pages_unlock(pages);
	return 0;

err_unlock:
	iopt_pages_unlock(pages);
	iopt_free(rhs);
err_free_lhs:
	iopt_free(lhs);
	return rc;
}

/**
 * iopt_cut_iova() - split areas so each @iovas[i] is the last byte of an area
 * (VFIO type1 v1 partial unmap).
 * @iopt: the address space.
 * @iovas: IOVAs; one inside no area is skipped, one at an area's first or
 *	   last byte is a no-op.
 * @n: number of IOVAs.
 *
 * Locking: takes iova_rwsem (write).
 * Return: 0; -EBUSY; -EINVAL (alignment, accesses, huge pages); -ENOMEM.
 * On failure: stops at the first error; earlier splits stay.
 */
int iopt_cut_iova(struct io_pagetable *iopt, const uint64_t *iovas, size_t n)
{
	int rc = 0;
	size_t i;

	iopt_iova_write_lock(iopt);
	for (i = 0; i != n; i++) {
		struct iopt_area *area;

		/* the tree, as the kernel: it also holds areas being unmapped */
		area = iopt_area_iter_first(iopt, iovas[i], iovas[i]);
		if (!area)
			continue;
		rc = iopt_area_split(area, iovas[i]);
		if (rc)
			break;
	}
	iopt_iova_write_unlock(iopt);
	return rc;
}

/**
 * iopt_enable_large_pages() - let domains use huge IOPTEs again (does not
 * remap what is mapped). Never fails.
 * @iopt: the address space.
 */
void iopt_enable_large_pages(struct io_pagetable *iopt)
{
	iopt_rwlock_write(&iopt->domains_rwsem);
	iopt_iova_write_lock(iopt);
	iopt->disable_large_pages = false;
	/* lowering cannot fail */
	(void)iopt_calculate_iova_alignment(iopt);
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
}

/**
 * iopt_disable_large_pages() - map one page per call from now on, which
 * raises the alignment to IOPT_PAGE_SIZE and allows splitting areas.
 * @iopt: the address space.
 *
 * Locking: takes domains_rwsem then iova_rwsem, both for writing.
 * Return: 0 (also when already disabled); -EINVAL when domains and areas
 * both exist (huge IOPTEs may already be in place); -EADDRINUSE when an area
 * is not page aligned.
 * On failure: the setting is unchanged.
 */
int iopt_disable_large_pages(struct io_pagetable *iopt)
{
	int rc = 0;

	iopt_rwlock_write(&iopt->domains_rwsem);
	iopt_iova_write_lock(iopt);
	if (iopt->disable_large_pages)
		goto out_unlock;
	if (iopt->ndomains && !iopt_itree_empty(&iopt->area_itree)) {
		iopt_refuse(iopt, "huge pages: cannot disable with domains "
			    "and areas present");
		rc = -EINVAL;
		goto out_unlock;
	}
	iopt->disable_large_pages = true;
	rc = iopt_calculate_iova_alignment(iopt);
	if (rc)
		iopt->disable_large_pages = false;
out_unlock:
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

/* A free access id, growing the slot array if needed. */
static int iopt_access_alloc_id(struct io_pagetable *iopt, size_t *id)
{
	struct iopt_access_slot *slots;
	size_t i, cap;

	for (i = 0; i != iopt->naccess_slots; i++) {
		if (!iopt->accesses[i].access) {
			*id = i;
			return 0;
		}
	}
	if (iopt->naccess_slots > IOPT_ACCESS_ID_MAX)
		return -EBUSY;
	cap = IOPT_MIN(IOPT_MAX(iopt->naccess_slots * 2, (size_t)4),
		       (size_t)IOPT_ACCESS_ID_MAX + 1);
	slots = iopt_realloc(iopt->accesses, cap * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (i = iopt->naccess_slots; i != cap; i++)
		slots[i] = (struct iopt_access_slot){ 0 };
	iopt->accesses = slots;
	*id = iopt->naccess_slots;
	iopt->naccess_slots = cap;
	return 0;
}

/**
 * iopt_add_access() - attach an access: give it an id and apply its alignment.
 * @iopt: the address space.
 * @access: the access object, opaque here; borrowed until removal.
 * @ops: its callbacks (see struct iopt_access_ops); borrowed.
 * @iova_alignment: 1 for an rw-only access, IOPT_PAGE_SIZE if it pins.
 * @id: receives the access id (< 2^16).
 *
 * Locking: takes domains_rwsem then iova_rwsem, both for writing.
 * Return: 0; -EBUSY (ids exhausted); -ENOMEM; -EADDRINUSE (areas do not fit
 * the raised alignment).
 * On failure: nothing changed (a grown slot array stays, empty).
 */
int iopt_add_access(struct io_pagetable *iopt, void *access,
		    const struct iopt_access_ops *ops, uint64_t iova_alignment,
		    uint32_t *id)
{
	size_t new_id;
	int rc;

	iopt_rwlock_write(&iopt->domains_rwsem);
	iopt_iova_write_lock(iopt);
	rc = iopt_access_alloc_id(iopt, &new_id);
	if (rc)
		goto out_unlock;
	iopt->accesses[new_id] = (struct iopt_access_slot){
		.access = access, .ops = ops, .iova_alignment = iova_alignment,
	};
	rc = iopt_calculate_iova_alignment(iopt);
	if (rc) {
		iopt->accesses[new_id] = (struct iopt_access_slot){ 0 };
		goto out_unlock;
	}
	*id = (uint32_t)new_id;
	/* from now on write sections keep its lock-free rw out */
	if (!iopt_readers_enable())
		atomic_fetch_add_explicit(&iopt->nr_fast_readers, 1,
					  memory_order_relaxed);
out_unlock:
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

/**
 * iopt_remove_access() - detach the access with id @id and recompute the
 * alignment. Never fails.
 * @iopt: the address space.
 * @id: the id iopt_add_access() returned.
 */
void iopt_remove_access(struct io_pagetable *iopt, uint32_t id)
{
	iopt_rwlock_write(&iopt->domains_rwsem);
	iopt_iova_write_lock(iopt);
	if (id < iopt->naccess_slots && iopt->accesses[id].access) {
		iopt->accesses[id] = (struct iopt_access_slot){ 0 };
		/*
		 * the access's change of IOAS cleared fast_iopt and waited for
		 * its lock-free sections, and this lock waited again
		 */
		if (!iopt_readers_enable())
			atomic_fetch_sub_explicit(&iopt->nr_fast_readers, 1,
						  memory_order_relaxed);
	}
	(void)iopt_calculate_iova_alignment(iopt);
	iopt_iova_write_unlock(iopt);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
}
