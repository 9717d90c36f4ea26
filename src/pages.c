// SPDX-License-Identifier: MIT
/*
 * pages.c - iopt_pages: where every frame an area, a domain or an access sees
 * comes from, pinned exactly once (the kernel's pages.c).
 *
 * Tiers. A frame of index i is found, in order of preference, in the pin
 * store (pinned_pfns, present exactly for the indexes access_itree covers), in
 * the storage_domain of an area whose pages_node in domains_itree covers i
 * (read back with iova_to_phys), or by pinning the source afresh through the
 * process-wide registry (src/pin.h). Index i holds one pin from this pages
 * object while either tree covers it and none otherwise; npinned counts them.
 * Paths that change coverage therefore walk the two trees with the double span
 * iterator and pin or unpin only the holes.
 *
 * Unpinning by index. The kernel unpins the struct pages it carries in its
 * batches; the registry here is keyed by host page, and index i is always the
 * host page uptr + i * 4 KiB, so an unpin is "indexes [a, b]" and needs no
 * frame at all. Batches still carry frames, for mapping domains and for
 * finding where a domain may be unmapped (see unfill below).
 *
 * Batches (pfn_batch) are runs of contiguous frames in a temporary buffer whose
 * size is capped by iopt_set_temp_memory_limit(); the pfn_reader walks an
 * index range batch by batch, filling each batch from the cheapest tier. A
 * fill maps one run per domain call, so a backend can use huge leaves (one
 * page per call with large pages disabled). Because a backend never splits a
 * leaf on unmap, unfill unmaps only at frame discontinuities: it reads ahead to
 * the end of the current run, unmaps it whole, unpins its leading part that no
 * one else covers and carries the rest. Unpin always follows the unmap and its
 * IOTLB sync, so a device never sees an unpinned frame.
 *
 * Accounting follows the kernel's iopt_pages_update_pinned(): pin first, then
 * charge npinned - last_npinned to the ctx in one go, and on refusal unwind
 * the whole operation (-ENOMEM, nothing pinned, nothing charged). Unpins are
 * uncharged afterwards and cannot fail.
 *
 * Destroy never fails: unfilling a domain uses an on-stack backup batch when
 * no memory is left, and unfilling the store needs no batch at all.
 *
 * Vocabulary: "index" is a page number inside the pages; "last" inclusive,
 * "end" exclusive. An IOVA may reach UINT64_MAX, so IOVA arithmetic here works
 * with inclusive lasts; an index + 1 never overflows (npages < 2^52).
 */
#include "pages.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <iopt/phys.h>

#include "alloc.h"
#include "ctx.h"
#include "domain.h"
#include "double_span.h"
#include "io_pagetable.h"
#include "pin.h"
#include "util.h"

#define TEMP_MEMORY_DEFAULT 65536
#define BATCH_BACKUP_WORDS 32

/* One batch entry: a first frame and a run length. */
#define BATCH_ELEM_SIZE (sizeof(uint64_t) + sizeof(uint32_t))

static _Atomic size_t temp_memory_limit = TEMP_MEMORY_DEFAULT;

void iopt_set_temp_memory_limit(size_t bytes)
{
	if (!bytes)
		bytes = TEMP_MEMORY_DEFAULT;
	atomic_store_explicit(&temp_memory_limit,
			      IOPT_MAX(bytes, BATCH_ELEM_SIZE),
			      memory_order_relaxed);
}

/*
 * A temporary buffer of up to *@size bytes, capped by the temp memory limit;
 * *@size is updated to what was obtained. Requests that fit @backup use it
 * without allocating, and with a @backup the call cannot fail: it falls back
 * to @backup. Without one it returns NULL when memory is short.
 */
static void *temp_alloc(size_t *size, void *backup, size_t backup_len)
{
	void *res;

	if (*size <= backup_len)
		return backup;
	*size = IOPT_MIN(*size, atomic_load_explicit(&temp_memory_limit,
						     memory_order_relaxed));
	res = iopt_malloc(*size);
	if (res || !backup)
		return res;
	*size = backup_len;
	return backup;
}

/* ---- index <-> IOVA inside one area ---- */

/* First IOVA of page @index; the area's first page may start mid-page. */
static uint64_t area_index_to_iova(const struct iopt_area *area, uint64_t index)
{
	assert(index >= iopt_area_index(area) && index <= iopt_area_last_index(area));
	if (index == iopt_area_index(area))
		return iopt_area_iova(area);
	return iopt_area_iova(area) - area->page_offset +
	       (index - iopt_area_index(area)) * IOPT_PAGE_SIZE;
}

/* Last IOVA of page @index; the area's last page may end mid-page. */
static uint64_t area_index_to_iova_last(const struct iopt_area *area,
					uint64_t index)
{
	assert(index >= iopt_area_index(area) && index <= iopt_area_last_index(area));
	if (index == iopt_area_last_index(area))
		return iopt_area_last_iova(area);
	return iopt_area_iova(area) - area->page_offset +
	       (index - iopt_area_index(area) + 1) * IOPT_PAGE_SIZE - 1;
}

/* Unmap that must remove exactly what was asked (backends never fail it). */
static void domain_unmap_nofail(struct iopt_domain *domain, uint64_t iova,
				uint64_t length)
{
	uint64_t unmapped = iopt_domain_unmap_sync(domain, iova, length);

	assert(unmapped == length);
	(void)unmapped;
}

static void area_unmap_domain_range(struct iopt_area *area,
				    struct iopt_domain *domain,
				    uint64_t start_index, uint64_t last_index)
{
	uint64_t start_iova = area_index_to_iova(area, start_index);

	domain_unmap_nofail(domain, start_iova,
			    area_index_to_iova_last(area, last_index) -
				    start_iova + 1);
}

static struct iopt_area *pages_find_domain_area(struct iopt_pages *pages,
						uint64_t index)
{
	struct iopt_itree_node *node;

	node = iopt_itree_iter_first(&pages->pins->domains_itree, index, index);
	return node ? container_of(node, struct iopt_area, pages_node) : NULL;
}

/* ---- pins and accounting ---- */

static uintptr_t pages_host(const struct iopt_pages *pages, uint64_t index)
{
	return (uintptr_t)pages->uptr + (uintptr_t)(index * IOPT_PAGE_SIZE);
}

/* Pin @n pages from @start_index for this pages object; frames to @frames. */
static int pages_pin(struct iopt_pages *pages, uint64_t start_index, uint64_t n,
		     uint64_t *frames)
{
	int rc;

	if (pages->type == IOPT_ADDRESS_FILE && !pages->uptr)
		return -EINVAL;	/* a file range that cannot be pinned */
	rc = iopt_pin_range(pages->ctx, pages_host(pages, start_index), n,
			    pages->writable, frames);
	/*
	 * The library's own MAP_SHARED mapping only faults where the file no
	 * longer covers it: report that as memfd_pin_folios() does.
	 */
	if (rc == -EFAULT && pages->type == IOPT_ADDRESS_FILE)
		rc = -EINVAL;
	if (rc)
		return rc;
	pages->pins->npinned += n;
	assert(pages->pins->npinned <= pages->npages);
	return 0;
}

static void pages_unpin(struct iopt_pages *pages, uint64_t start_index,
			uint64_t n)
{
	assert(n <= pages->pins->npinned);
	iopt_unpin_range(pages->ctx, pages_host(pages, start_index), n);
	pages->pins->npinned -= n;
}

/*
 * Bring the charge in line with npinned after a fill. Return: 0, or -ENOMEM
 * when the ctx refuses; the caller then unwinds its pins.
 */
static int pages_update_pinned(struct iopt_pages *pages)
{
	struct iopt_pages_pins *pins = pages->pins;
	int rc;

	iopt_assert_held(&pages->mutex);
	if (pins->npinned < pins->last_npinned)
		iopt_ctx_uncharge(pages->ctx, pages->account_mode,
				  pins->last_npinned - pins->npinned);
	if (pins->npinned > pins->last_npinned) {
		rc = iopt_ctx_charge(pages->ctx, pages->account_mode,
				     pins->npinned - pins->last_npinned);
		if (rc)
			return rc;
	}
	pins->last_npinned = pins->npinned;
	return 0;
}

/* After unpins only: uncharging cannot fail. */
static void pages_update_unpinned(struct iopt_pages *pages)
{
	int rc;

	assert(pages->pins->npinned <= pages->pins->last_npinned);
	rc = pages_update_pinned(pages);
	assert(!rc);
	(void)rc;
}

/* Unpin the indexes of [start, last] that neither tree covers. */
static void pages_unpin_holes(struct iopt_pages *pages, uint64_t start,
			      uint64_t last)
{
	struct iopt_double_span_iter span;

	iopt_for_each_double_span(&span, &pages->pins->access_itree,
				  &pages->pins->domains_itree, start, last)
		if (!span.is_used)
			pages_unpin(pages, span.start_hole,
				    span.last_hole - span.start_hole + 1);
}

/* ---- pfn_batch ---- */

/*
 * Runs of contiguous frames, the temporary holding area that shuttles frames
 * between tiers. Entry i is frames [pfns[i], pfns[i] + npfns[i]); consecutive
 * frames always extend the last run, so a run boundary is a discontinuity.
 */
struct pfn_batch {
	uint64_t *pfns;
	uint32_t *npfns;
	unsigned int array_size;
	unsigned int end;
	uint64_t total_pfns;
};

static void batch_clear(struct pfn_batch *batch)
{
	batch->total_pfns = 0;
	batch->end = 0;
	batch->pfns[0] = 0;
	batch->npfns[0] = 0;
}

/* Keep the last @keep_pfns frames of the last run as the whole batch. */
static void batch_clear_carry(struct pfn_batch *batch, uint64_t keep_pfns)
{
	if (!keep_pfns) {
		batch_clear(batch);
		return;
	}
	assert(batch->end && batch->npfns[batch->end - 1] >= keep_pfns);
	batch->pfns[0] = batch->pfns[batch->end - 1] +
			 (batch->npfns[batch->end - 1] - keep_pfns);
	batch->npfns[0] = (uint32_t)keep_pfns;
	batch->total_pfns = keep_pfns;
	batch->end = 1;
}

/* Drop up to @skip_pfns leading frames of a carried run. */
static void batch_skip_carry(struct pfn_batch *batch, uint64_t skip_pfns)
{
	if (!batch->total_pfns)
		return;
	assert(batch->total_pfns == batch->npfns[0]);
	skip_pfns = IOPT_MIN(batch->total_pfns, skip_pfns);
	batch->pfns[0] += skip_pfns;
	batch->npfns[0] -= (uint32_t)skip_pfns;
	batch->total_pfns -= skip_pfns;
}

/* Room for @max_pages frames at best. Return: 0, or -ENOMEM without @backup. */
static int batch_init(struct pfn_batch *batch, uint64_t max_pages, void *backup,
		      size_t backup_len)
{
	size_t size = IOPT_MIN(max_pages, (uint64_t)UINT32_MAX) * BATCH_ELEM_SIZE;

	batch->pfns = temp_alloc(&size, backup, backup_len);
	if (!batch->pfns)
		return -ENOMEM;
	batch->array_size = (unsigned int)(size / BATCH_ELEM_SIZE);
	assert(batch->array_size);
	batch->npfns = (uint32_t *)(batch->pfns + batch->array_size);
	batch_clear(batch);
	return 0;
}

static void batch_destroy(struct pfn_batch *batch, void *backup)
{
	if (batch->pfns != backup)
		iopt_free(batch->pfns);
}

/* Return: false when the batch is full (@pfn starts a run that has no room). */
static bool batch_add_pfn(struct pfn_batch *batch, uint64_t pfn)
{
	if (batch->end &&
	    pfn == batch->pfns[batch->end - 1] + batch->npfns[batch->end - 1] &&
	    batch->npfns[batch->end - 1] != UINT32_MAX) {
		batch->npfns[batch->end - 1]++;
		batch->total_pfns++;
		return true;
	}
	if (batch->end == batch->array_size)
		return false;
	batch->pfns[batch->end] = pfn;
	batch->npfns[batch->end] = 1;
	batch->end++;
	batch->total_pfns++;
	return true;
}

static void batch_from_frames(struct pfn_batch *batch, const uint64_t *frames,
			      uint64_t n)
{
	uint64_t i;

	for (i = 0; i != n; i++)
		if (!batch_add_pfn(batch, frames[i]))
			return;
}

/* Frame of page @index as @domain maps it for @area. */
static uint64_t domain_frame(struct iopt_domain *domain,
			     const struct iopt_area *area, uint64_t index)
{
	uint64_t iova = area_index_to_iova(area, index);
	uint64_t offset = index == iopt_area_index(area) ? area->page_offset : 0;
	uint64_t phys = domain->ops->iova_to_phys(domain, iova);

	assert(phys);
	return (phys - offset) >> IOPT_PHYS_FRAME_SHIFT;
}

/* Add frames of [start, last] read from @domain until the batch is full. */
static void batch_from_domain(struct pfn_batch *batch,
			      struct iopt_domain *domain,
			      const struct iopt_area *area, uint64_t start_index,
			      uint64_t last_index)
{
	for (; start_index <= last_index; start_index++)
		if (!batch_add_pfn(batch, domain_frame(domain, area, start_index)))
			return;
}

/* Read on from @domain only while the last run stays contiguous. */
static void batch_from_domain_continue(struct pfn_batch *batch,
				       struct iopt_domain *domain,
				       const struct iopt_area *area,
				       uint64_t start_index, uint64_t last_index)
{
	unsigned int array_size = batch->array_size;

	batch->array_size = batch->end;
	batch_from_domain(batch, domain, area, start_index, last_index);
	batch->array_size = array_size;
}

static void batch_from_store(struct pfn_batch *batch,
			     const struct iopt_pfn_store *store,
			     uint64_t start_index, uint64_t last_index)
{
	uint64_t frame;

	for (; start_index <= last_index; start_index++) {
		bool present = iopt_pfn_store_load(store, start_index, &frame);

		assert(present);
		(void)present;
		if (!batch_add_pfn(batch, frame))
			return;
	}
}

/*
 * One page per call (huge pages disabled, VFIO type1 v1), so an area can
 * later be split anywhere. On failure what this call mapped is unmapped.
 */
static int domain_map_small(struct iopt_domain *domain, uint64_t iova,
			    uint64_t paddr, uint64_t length, int prot)
{
	uint64_t done;
	int rc;

	for (done = 0; done != length; done += IOPT_PAGE_SIZE) {
		rc = iopt_domain_map(domain, iova + done, paddr + done,
				     IOPT_PAGE_SIZE, prot);
		if (rc) {
			if (done)
				domain_unmap_nofail(domain, iova, done);
			return rc;
		}
	}
	return 0;
}

/*
 * Map the batch's runs for pages from @start_index on, one call per run,
 * clipped to the area's IOVA range. On failure @domain is as before.
 */
static int batch_to_domain(struct pfn_batch *batch, struct iopt_domain *domain,
			   struct iopt_area *area, uint64_t start_index)
{
	bool small = area->iopt->disable_large_pages;
	uint64_t last_iova = iopt_area_last_iova(area);
	uint64_t offset = 0, start_iova, iova;
	unsigned int cur;
	int rc;

	if (start_index == iopt_area_index(area))
		offset = area->page_offset;
	iova = start_iova = area_index_to_iova(area, start_index);
	for (cur = 0; cur != batch->end; cur++) {
		uint64_t span = (uint64_t)batch->npfns[cur] * IOPT_PAGE_SIZE - offset;
		uint64_t run_last = IOPT_MIN(last_iova, iova + (span - 1));
		uint64_t paddr = (batch->pfns[cur] << IOPT_PHYS_FRAME_SHIFT) + offset;
		uint64_t length = run_last - iova + 1;

		if (small)
			rc = domain_map_small(domain, iova, paddr, length,
					      area->iommu_prot);
		else
			rc = iopt_domain_map(domain, iova, paddr, length,
					     area->iommu_prot);
		if (rc)
			goto err_unmap;
		iova = run_last + 1;
		offset = 0;
	}
	return 0;

err_unmap:
	if (iova != start_iova)
		domain_unmap_nofail(domain, start_iova, iova - start_iova);
	return rc;
}

/* ---- pfn_reader ---- */

/*
 * Walks [start, last] a batch at a time, loading each span from its tier:
 * the store for access spans, the storage domain for domain spans, fresh pins
 * for holes. Fresh pins land in @upages first, a chunk bounded by the temp
 * memory limit; [batch_end_index, upages_end) are pinned but not yet in a
 * batch, which is what the error paths release.
 */
struct pfn_reader {
	struct iopt_pages *pages;
	struct iopt_double_span_iter span;
	struct pfn_batch batch;
	uint64_t batch_start_index;
	uint64_t batch_end_index;
	uint64_t last_index;

	uint64_t *upages;
	size_t upages_len;		/* entries */
	uint64_t upages_start;
	uint64_t upages_end;
};

static int pfn_reader_pin(struct pfn_reader *pfns, uint64_t start_index,
			  uint64_t last_index)
{
	uint64_t n;
	int rc;

	if (!pfns->upages) {
		size_t size = (size_t)(last_index - start_index + 1) *
			      sizeof(*pfns->upages);

		pfns->upages = temp_alloc(&size, NULL, 0);
		if (!pfns->upages)
			return -ENOMEM;
		pfns->upages_len = IOPT_MAX(size / sizeof(*pfns->upages), 1);
	}
	n = IOPT_MIN(last_index - start_index + 1, (uint64_t)pfns->upages_len);
	rc = pages_pin(pfns->pages, start_index, n, pfns->upages);
	if (rc)
		return rc;
	pfns->upages_start = start_index;
	pfns->upages_end = start_index + n;
	return 0;
}

/* Load the current span from its tier into the batch, as far as it fits. */
static int pfn_reader_fill_span(struct pfn_reader *pfns)
{
	struct iopt_double_span_iter *span = &pfns->span;
	uint64_t start_index = pfns->batch_end_index;
	struct iopt_area *area;
	int rc;

	assert(span->last_used >= start_index);
	if (span->is_used == 1) {
		batch_from_store(&pfns->batch, &pfns->pages->pins->pinned_pfns,
				 start_index, span->last_used);
		return 0;
	}
	if (span->is_used == 2) {
		/* Several areas may cover the span: take the first, come back. */
		area = pages_find_domain_area(pfns->pages, start_index);
		assert(area && area->storage_domain);
		batch_from_domain(&pfns->batch, area->storage_domain, area,
				  start_index,
				  IOPT_MIN(iopt_area_last_index(area),
					   span->last_used));
		return 0;
	}
	if (start_index >= pfns->upages_end) {
		rc = pfn_reader_pin(pfns, start_index, span->last_hole);
		if (rc)
			return rc;
	}
	batch_from_frames(&pfns->batch,
			  pfns->upages + (start_index - pfns->upages_start),
			  pfns->upages_end - start_index);
	return 0;
}

static bool pfn_reader_done(const struct pfn_reader *pfns)
{
	return pfns->batch_start_index == pfns->last_index + 1;
}

/* Fill the next batch. Return: 0 or the error of a fresh pin. */
static int pfn_reader_next(struct pfn_reader *pfns)
{
	int rc;

	batch_clear(&pfns->batch);
	pfns->batch_start_index = pfns->batch_end_index;
	while (pfns->batch_end_index != pfns->last_index + 1) {
		uint64_t before = pfns->batch.total_pfns;

		assert(!iopt_double_span_iter_done(&pfns->span));
		rc = pfn_reader_fill_span(pfns);
		if (rc)
			return rc;
		pfns->batch_end_index = pfns->batch_start_index +
					pfns->batch.total_pfns;
		if (pfns->batch_end_index == pfns->span.last_used + 1)
			iopt_double_span_iter_next(&pfns->span);
		if (before == pfns->batch.total_pfns)
			return 0;	/* the batch is full */
	}
	return 0;
}

/* Unpin the current batch's indexes that no tree covers (temporary pins). */
static void pfn_reader_unpin(struct pfn_reader *pfns)
{
	iopt_assert_held(&pfns->pages->mutex);
	pages_unpin_holes(pfns->pages, pfns->batch_start_index,
			  pfns->batch_end_index - 1);
}

/*
 * Release the pins the reader holds beyond what the trees cover: the chunk
 * not yet moved into a batch, and the holes of the current batch. Error paths
 * call this before unfilling what earlier batches mapped.
 */
static void pfn_reader_release_pins(struct pfn_reader *pfns)
{
	if (pfns->upages_end > pfns->batch_end_index) {
		pages_unpin(pfns->pages, pfns->batch_end_index,
			    pfns->upages_end - pfns->batch_end_index);
		pfns->upages_end = pfns->batch_end_index;
	}
	if (pfns->batch_start_index != pfns->batch_end_index) {
		pfn_reader_unpin(pfns);
		pfns->batch_start_index = pfns->batch_end_index;
	}
}

static void pfn_reader_destroy(struct pfn_reader *pfns)
{
	pfn_reader_release_pins(pfns);
	iopt_free(pfns->upages);
	batch_destroy(&pfns->batch, NULL);
	assert(pfns->pages->pins->last_npinned == pfns->pages->pins->npinned);
}

/* Start a walk of [start, last] and load the first batch. */
static int pfn_reader_first(struct pfn_reader *pfns, struct iopt_pages *pages,
			    uint64_t start_index, uint64_t last_index)
{
	int rc;

	iopt_assert_held(&pages->mutex);
	assert(start_index <= last_index && last_index < pages->npages);
	*pfns = (struct pfn_reader){
		.pages = pages,
		.batch_start_index = start_index,
		.batch_end_index = start_index,
		.last_index = last_index,
	};
	rc = batch_init(&pfns->batch, last_index - start_index + 1, NULL, 0);
	if (rc)
		return rc;
	iopt_double_span_iter_first(&pfns->span, &pages->pins->access_itree,
				    &pages->pins->domains_itree, start_index,
				    last_index);
	rc = pfn_reader_next(pfns);
	if (rc)
		pfn_reader_destroy(pfns);
	return rc;
}

/* ---- allocation and release ---- */

/*
 * malloc, not calloc: glibc's calloc skips the per-thread cache, and a map of
 * a small buffer is a few hundred nanoseconds in all, so it shows.
 */
static int pages_alloc(struct iopt_ctx *ctx, enum iopt_address_type type,
		       uint64_t length, uint64_t offset, struct iopt_pages **out)
{
	size_t size = type == IOPT_ADDRESS_FILE ? sizeof(struct iopt_file_pages) :
						  sizeof(struct iopt_pages);
	struct iopt_pages *pages = iopt_malloc(size);

	if (!pages)
		return -ENOMEM;
	memset(pages, 0, size);
	atomic_init(&pages->refcount, 1);
	iopt_small_mutex_init(&pages->mutex, IOPT_LOCK_PAGES);
	pages->ctx = ctx;
	pages->type = type;
	pages->npages = (offset + length - 1) / IOPT_PAGE_SIZE + 1;
	pages->account_mode = iopt_ctx_obj_get(ctx);
	*out = pages;
	return 0;
}

/* The kernel's length rule, checked after its overflow rule. */
static int check_length(uint64_t length)
{
	return !length || length > UINT64_MAX - IOPT_PAGE_SIZE ? -EINVAL : 0;
}

int iopt_alloc_user_pages(struct iopt_ctx *ctx, void *uptr, uint64_t length,
			  bool writable, struct iopt_pages **out)
{
	uintptr_t base = IOPT_ALIGN_DOWN((uintptr_t)uptr, IOPT_PAGE_SIZE);
	struct iopt_pages *pages;
	int rc;

	/* check_add_overflow(uptr, length): an end at 2^64 overflows too */
	if (length > UINT64_MAX - (uintptr_t)uptr)
		return -EOVERFLOW;
	rc = check_length(length);
	if (rc)
		return rc;
	rc = pages_alloc(ctx, IOPT_ADDRESS_USER, length, (uintptr_t)uptr - base,
			 &pages);
	if (rc)
		return rc;
	pages->uptr = (void *)base;
	pages->writable = writable;
	*out = pages;
	return 0;
}

/*
 * The open mode, at map time: a writable map needs the fd open for writing
 * (the upstream hardening), and the library's own mapping needs it readable
 * (a difference from the kernel, which reads the file without an fd mode).
 */
static int check_fd_mode(int memfd, bool writable)
{
	int flags = fcntl(memfd, F_GETFL);

	if (flags < 0)
		return -EBADF;
	if ((flags & O_ACCMODE) == O_WRONLY ||
	    (writable && (flags & O_ACCMODE) != O_RDWR))
		return -EPERM;
	return 0;
}

/*
 * Can the range be pinned at all? Only shmem (memfd) and hugetlbfs files, at
 * offsets mmap() can reach. The kernel finds this out when it pins, so a map
 * with no domain succeeds either way and a pin of a range that cannot be
 * pinned is -EINVAL (pages_pin()); past EOF is found the same way, by the
 * fault-in of the library's mapping. @align receives the mapping granule.
 */
static bool file_pinnable(int memfd, uint64_t start, uint64_t length,
			  uint64_t *align)
{
	struct statfs sfs;
	struct stat st;

	if (fstat(memfd, &st) || fstatfs(memfd, &sfs) || !S_ISREG(st.st_mode))
		return false;
	if (sfs.f_type == HUGETLBFS_MAGIC)
		*align = (uint64_t)sfs.f_bsize;
	else if (sfs.f_type == TMPFS_MAGIC)
		*align = IOPT_PAGE_SIZE;
	else
		return false;
	/* off_t is signed: the mapping's end, rounded up, must stay positive */
	return start <= (uint64_t)INT64_MAX - *align &&
	       length <= (uint64_t)INT64_MAX - *align - start;
}

/* The library's mapping began at the granule holding index 0's offset. */
static void *file_map_base(const struct iopt_pages *pages)
{
	uint64_t granule = UINT64_C(1) << pages->map_shift;

	return (char *)pages->uptr -
	       (iopt_file_pages(pages)->start & (granule - 1));
}

/*
 * Map [start, start + length) of @memfd MAP_SHARED into the library's own
 * view and point @pages at it; an unpinnable range keeps uptr NULL.
 */
static int file_map(struct iopt_pages *pages, int memfd, uint64_t start,
		    uint64_t length)
{
	struct iopt_file_pages *file = iopt_file_pages(pages);
	uint64_t align, map_start;
	void *map;

	if (!file_pinnable(memfd, start, length, &align))
		return 0;
	/* hugetlbfs maps whole huge pages only. */
	map_start = IOPT_ALIGN_DOWN(start, align);
	file->map_length = IOPT_ALIGN_UP(start + length, align) - map_start;
	if (iopt_should_fail(IOPT_FAIL_MEMFD_MAP))
		return -ENOMEM;
	map = mmap(NULL, file->map_length,
		   PROT_READ | (pages->writable ? PROT_WRITE : 0), MAP_SHARED,
		   memfd, (off_t)map_start);
	if (map == MAP_FAILED)
		return errno == EACCES || errno == EPERM ? -EPERM : -ENOMEM;
	pages->uptr = (char *)map + (file->start - map_start);
	assert(iopt_is_power_of_2(align));
	pages->map_shift = (unsigned char)iopt_ffs64(align);
	assert(file_map_base(pages) == map);
	return 0;
}

int iopt_alloc_file_pages(struct iopt_ctx *ctx, int memfd, uint64_t start,
			  uint64_t length, bool writable, struct iopt_pages **out)
{
	uint64_t page_start = IOPT_ALIGN_DOWN(start, IOPT_PAGE_SIZE);
	struct iopt_pages *pages;
	int rc;

	/* the kernel's order: the fd (fget), the end's wrap, the length */
	if (fcntl(memfd, F_GETFD) < 0)
		return -EBADF;
	if (length && length - 1 > UINT64_MAX - start)
		return -EOVERFLOW;
	rc = check_length(length);
	if (rc)
		return rc;
	rc = check_fd_mode(memfd, writable);
	if (rc)
		return rc;
	rc = pages_alloc(ctx, IOPT_ADDRESS_FILE, length, start - page_start,
			 &pages);
	if (rc)
		return rc;
	iopt_file_pages(pages)->start = page_start;
	pages->writable = writable;
	rc = file_map(pages, memfd, start, length);
	if (rc) {
		iopt_put_pages(pages);
		return rc;
	}
	*out = pages;
	return 0;
}

void iopt_put_pages(struct iopt_pages *pages)
{
	if (!pages || atomic_fetch_sub_explicit(&pages->refcount, 1,
						memory_order_acq_rel) != 1)
		return;
	/* every holder released through iopt_pages_unlock(), which freed it */
	assert(!pages->pins);
	if (pages->type == IOPT_ADDRESS_FILE && pages->uptr)
		munmap(file_map_base(pages),
		       iopt_file_pages(pages)->map_length);
	iopt_small_mutex_destroy(&pages->mutex);
	iopt_ctx_obj_put(pages->ctx);
	iopt_free(pages);
}

/* ---- the pin bookkeeping's lifetime ---- */

void iopt_pages_lock(struct iopt_pages *pages)
{
	iopt_small_mutex_lock(&pages->mutex);
}

bool iopt_pages_trylock(struct iopt_pages *pages)
{
	return iopt_small_mutex_trylock(&pages->mutex);
}

/* Take pages->mutex, or with @trylock only if it is free. Return: taken. */
static bool pages_lock_or_try(struct iopt_pages *pages, bool trylock)
{
	if (trylock)
		return iopt_pages_trylock(pages);
	iopt_pages_lock(pages);
	return true;
}

void iopt_pages_unlock(struct iopt_pages *pages)
{
	struct iopt_pages_pins *pins = pages->pins;

	if (pins && iopt_pages_pins_unused(pins)) {
		/* no interval and no pin: nothing can be charged or stored */
		assert(!pins->last_npinned &&
		       iopt_pfn_store_empty(&pins->pinned_pfns));
		iopt_pfn_store_destroy(&pins->pinned_pfns);
		iopt_free(pins);
		pages->pins = NULL;
	}
	iopt_small_mutex_unlock(&pages->mutex);
}

int iopt_pages_prepare_pins(struct iopt_pages *pages)
{
	struct iopt_pages_pins *pins;

	iopt_assert_held(&pages->mutex);
	if (pages->pins)
		return 0;
	/* malloc, not calloc, for the per-thread cache (pages_alloc()) */
	pins = iopt_malloc(sizeof(*pins));
	if (!pins)
		return -ENOMEM;
	memset(pins, 0, sizeof(*pins));
	iopt_pfn_store_init(&pins->pinned_pfns);
	pages->pins = pins;
	return 0;
}

/* ---- domains ---- */

/*
 * Unmap @domain over [start_index, last_index] of the area and unpin every
 * index the trees leave uncovered, cutting unmaps at frame discontinuities.
 * @batch carries frames already unmapped but not yet unpinned or skipped;
 * *@unmapped_end_index is where the next unmap starts; @real_last_index is
 * the end of the whole walk, up to which a run may be read ahead.
 */
static void area_unpin_domain(struct pfn_batch *batch, struct iopt_area *area,
			      struct iopt_pages *pages,
			      struct iopt_domain *domain, uint64_t start_index,
			      uint64_t last_index, uint64_t *unmapped_end_index,
			      uint64_t real_last_index)
{
	while (start_index <= last_index) {
		uint64_t batch_last_index;

		if (*unmapped_end_index <= last_index) {
			uint64_t start = IOPT_MAX(start_index, *unmapped_end_index);

			assert(!batch->total_pfns ||
			       *unmapped_end_index - batch->total_pfns == start_index);
			batch_from_domain(batch, domain, area, start, last_index);
			batch_last_index = start_index + batch->total_pfns - 1;
		} else {
			batch_last_index = last_index;
		}
		assert(batch_last_index <= real_last_index);

		/*
		 * The unmap may only end where the frames are discontiguous:
		 * read the run on to its end, unmap it whole and carry what
		 * must not be unpinned yet. A batch that already reaches past
		 * last_index is a carry that ended at such a point, and the
		 * IOVAs after it are unmapped already: nothing to read.
		 */
		if (start_index + batch->total_pfns - 1 == last_index &&
		    last_index != real_last_index)
			batch_from_domain_continue(batch, domain, area,
						   last_index + 1, real_last_index);

		if (*unmapped_end_index <= batch_last_index) {
			area_unmap_domain_range(area, domain, *unmapped_end_index,
						start_index + batch->total_pfns - 1);
			*unmapped_end_index = start_index + batch->total_pfns;
		}

		/* unpin must follow unmap */
		pages_unpin(pages, start_index, batch_last_index - start_index + 1);
		start_index = batch_last_index + 1;
		batch_clear_carry(batch, *unmapped_end_index - batch_last_index - 1);
	}
}

/* Unfill [area start, last_index] of @domain; see iopt_area_unfill_domain(). */
static void area_unfill_domain_upto(struct iopt_area *area,
				    struct iopt_pages *pages,
				    struct iopt_domain *domain,
				    uint64_t last_index)
{
	uint64_t start_index = iopt_area_index(area);
	uint64_t unmapped_end_index = start_index;
	uint64_t backup[BATCH_BACKUP_WORDS];
	struct iopt_double_span_iter span;
	struct pfn_batch batch;

	iopt_assert_held(&pages->mutex);
	/*
	 * Domain spans first: an index still covered by another domain or by
	 * an access is unmapped here but never unpinned.
	 */
	batch_init(&batch, last_index - start_index + 1, backup, sizeof(backup));
	iopt_for_each_double_span(&span, &pages->pins->domains_itree,
				  &pages->pins->access_itree, start_index, last_index) {
		if (span.is_used) {
			batch_skip_carry(&batch,
					 span.last_used - span.start_used + 1);
			continue;
		}
		area_unpin_domain(&batch, area, pages, domain, span.start_hole,
				  span.last_hole, &unmapped_end_index, last_index);
	}
	/* A range ending in used spans still has its tail mapped. */
	if (unmapped_end_index != last_index + 1)
		area_unmap_domain_range(area, domain, unmapped_end_index,
					last_index);
	assert(!batch.total_pfns);
	batch_destroy(&batch, backup);
	pages_update_unpinned(pages);
}

/* Unfill the pages [area start, end_index) that a failed fill had mapped. */
static void area_unfill_partial_domain(struct iopt_area *area,
				       struct iopt_pages *pages,
				       struct iopt_domain *domain,
				       uint64_t end_index)
{
	if (end_index != iopt_area_index(area))
		area_unfill_domain_upto(area, pages, domain, end_index - 1);
}

void iopt_area_unmap_domain(struct iopt_area *area, struct iopt_domain *domain)
{
	domain_unmap_nofail(domain, iopt_area_iova(area), iopt_area_length(area));
}

void iopt_area_unfill_domain(struct iopt_area *area, struct iopt_pages *pages,
			     struct iopt_domain *domain)
{
	area_unfill_domain_upto(area, pages, domain, iopt_area_last_index(area));
}

/*
 * How far a fill got: domains before @fail_domain mapped through
 * @done_first_end_index, the others through @done_all_end_index (a map call
 * cleans up after itself, so the failing domain is at the latter).
 */
struct fill_progress {
	size_t fail_domain;
	uint64_t done_first_end_index;
	uint64_t done_all_end_index;
};

static uint64_t fill_progress_end(const struct fill_progress *prog, size_t i)
{
	return i < prog->fail_domain ? prog->done_first_end_index :
				       prog->done_all_end_index;
}

/*
 * Map every batch of a started reader into each of @domains in turn, then
 * charge the pins. On failure @prog says what each domain holds; the caller
 * releases the reader's pins and unfills.
 */
static int area_fill_domain_list(struct pfn_reader *pfns, struct iopt_area *area,
				 struct iopt_domain *const *domains, size_t n,
				 struct fill_progress *prog)
{
	int rc;

	prog->fail_domain = n;
	prog->done_first_end_index = prog->done_all_end_index =
		pfns->batch_start_index;
	while (!pfn_reader_done(pfns)) {
		size_t i;

		prog->done_first_end_index = pfns->batch_end_index;
		for (i = 0; i != n; i++) {
			rc = batch_to_domain(&pfns->batch, domains[i], area,
					     pfns->batch_start_index);
			if (rc) {
				prog->fail_domain = i;
				return rc;
			}
		}
		prog->done_all_end_index = prog->done_first_end_index;
		rc = pfn_reader_next(pfns);
		if (rc)
			return rc;
	}
	return pages_update_pinned(pfns->pages);
}

int iopt_area_fill_domain(struct iopt_area *area, struct iopt_domain *domain)
{
	struct iopt_pages *pages = area->pages;
	struct fill_progress prog;
	struct pfn_reader pfns;
	int rc;

	iopt_assert_held(&pages->mutex);
	rc = iopt_pages_prepare_pins(pages);
	if (rc)
		return rc;
	rc = pfn_reader_first(&pfns, pages, iopt_area_index(area),
			      iopt_area_last_index(area));
	if (rc)
		return rc;
	rc = area_fill_domain_list(&pfns, area, &domain, 1, &prog);
	if (rc) {
		pfn_reader_release_pins(&pfns);
		area_unfill_partial_domain(area, pages, domain,
					   fill_progress_end(&prog, 0));
	}
	pfn_reader_destroy(&pfns);
	return rc;
}

/*
 * Undo a failed iopt_area_fill_domains(). The area is not in domains_itree,
 * so the last domain unfills (and unpins) while the others only unmap.
 */
static void area_fill_domains_unwind(struct iopt_area *area,
				     struct iopt_pages *pages,
				     const struct fill_progress *prog)
{
	struct io_pagetable *iopt = area->iopt;
	size_t i;

	for (i = 0; i != iopt->ndomains; i++) {
		uint64_t end_index = fill_progress_end(prog, i);

		if (i == iopt->ndomains - 1)
			area_unfill_partial_domain(area, pages, iopt->domains[i],
						   end_index);
		else if (end_index != iopt_area_index(area))
			area_unmap_domain_range(area, iopt->domains[i],
						iopt_area_index(area),
						end_index - 1);
	}
}

int iopt_area_fill_domains(struct iopt_area *area, struct iopt_pages *pages)
{
	struct io_pagetable *iopt = area->iopt;
	struct fill_progress prog;
	struct pfn_reader pfns;
	int rc;

	iopt_assert_held(&iopt->domains_rwsem);
	if (!iopt->ndomains)
		return 0;

	iopt_pages_lock(pages);
	rc = iopt_pages_prepare_pins(pages);
	if (rc)
		goto out_unlock;
	rc = pfn_reader_first(&pfns, pages, iopt_area_index(area),
			      iopt_area_last_index(area));
	if (rc)
		goto out_unlock;
	rc = area_fill_domain_list(&pfns, area, iopt->domains, iopt->ndomains,
				   &prog);
	if (rc) {
		pfn_reader_release_pins(&pfns);
		area_fill_domains_unwind(area, pages, &prog);
	} else {
		area->storage_domain = iopt->domains[0];
		iopt_itree_insert(&area->pages_node, &pages->pins->domains_itree);
	}
	pfn_reader_destroy(&pfns);
out_unlock:
	iopt_pages_unlock(pages);
	return rc;
}

void iopt_area_unfill_domains(struct iopt_area *area, struct iopt_pages *pages)
{
	struct io_pagetable *iopt = area->iopt;
	size_t i;

	iopt_assert_held(&iopt->domains_rwsem);
	iopt_pages_lock(pages);
	if (!area->storage_domain)
		goto out_unlock;
	for (i = 0; i != iopt->ndomains; i++)
		if (iopt->domains[i] != area->storage_domain)
			area_unmap_domain_range(area, iopt->domains[i],
						iopt_area_index(area),
						iopt_area_last_index(area));
	iopt_itree_remove(&area->pages_node, &pages->pins->domains_itree);
	iopt_area_unfill_domain(area, pages, area->storage_domain);
	area->storage_domain = NULL;
out_unlock:
	iopt_pages_unlock(pages);
}

/* ---- the pin store (accesses) ---- */

void iopt_pages_fill_from_store(struct iopt_pages *pages, uint64_t start_index,
				uint64_t last_index, uint64_t *out_frames)
{
	uint64_t n = last_index - start_index + 1, got;

	iopt_assert_held(&pages->mutex);
	got = iopt_pfn_store_load_range(&pages->pins->pinned_pfns, start_index, n,
					out_frames);
	assert(got == n);
	(void)got;
}

/* Frames of [start, last] from the storage domains that cover them. */
static void pages_fill_from_domain(struct iopt_pages *pages,
				   uint64_t start_index, uint64_t last_index,
				   uint64_t *out_frames)
{
	while (start_index <= last_index) {
		struct iopt_area *area = pages_find_domain_area(pages, start_index);
		uint64_t area_last;

		assert(area && area->storage_domain);
		area_last = IOPT_MIN(iopt_area_last_index(area), last_index);
		for (; start_index <= area_last; start_index++)
			*out_frames++ = domain_frame(area->storage_domain, area,
						     start_index);
	}
}

void iopt_pages_unfill_store(struct iopt_pages *pages, uint64_t start_index,
			     uint64_t last_index)
{
	struct iopt_double_span_iter span;

	iopt_assert_held(&pages->mutex);
	iopt_for_each_double_span(&span, &pages->pins->access_itree,
				  &pages->pins->domains_itree, start_index,
				  last_index) {
		/* Still covered by another access: keep. */
		if (span.is_used == 1)
			continue;
		iopt_pfn_store_clear(&pages->pins->pinned_pfns, span.start_used,
				     span.last_used);
		/* A domain keeps its pin; nobody keeps a hole's. */
		if (!span.is_used)
			pages_unpin(pages, span.start_hole,
				    span.last_hole - span.start_hole + 1);
	}
	pages_update_unpinned(pages);
}

int iopt_pages_fill_store(struct iopt_pages *pages, uint64_t start_index,
			  uint64_t last_index, uint64_t *out_frames)
{
	struct iopt_double_span_iter span;
	uint64_t store_end = start_index;
	int rc;

	iopt_assert_held(&pages->mutex);
	assert(start_index <= last_index && last_index < pages->npages);
	iopt_for_each_double_span(&span, &pages->pins->access_itree,
				  &pages->pins->domains_itree, start_index,
				  last_index) {
		uint64_t *cur = out_frames + (span.start_used - start_index);
		uint64_t n = span.last_used - span.start_used + 1;

		if (span.is_used == 1) {
			iopt_pages_fill_from_store(pages, span.start_used,
						   span.last_used, cur);
			continue;
		}
		if (span.is_used == 2) {
			pages_fill_from_domain(pages, span.start_used,
					       span.last_used, cur);
		} else {
			rc = pages_pin(pages, span.start_hole, n, cur);
			if (rc)
				goto err_clean;
		}
		rc = iopt_pfn_store_insert(&pages->pins->pinned_pfns, span.start_used,
					   n, cur);
		if (rc) {
			if (!span.is_used)
				pages_unpin(pages, span.start_hole, n);
			goto err_clean;
		}
		store_end = span.last_used + 1;
	}
	rc = pages_update_pinned(pages);
	if (rc)
		goto err_clean;
	return 0;

err_clean:
	/* The new interval is not in access_itree: unfill drops only ours. */
	if (store_end != start_index)
		iopt_pages_unfill_store(pages, start_index, store_end - 1);
	return rc;
}

static struct iopt_pages_access *pages_find_exact_access(struct iopt_pages *pages,
							 uint64_t start_index,
							 uint64_t last_index)
{
	struct iopt_itree_node *node;

	iopt_assert_held(&pages->mutex);
	if (!pages->pins)
		return NULL;
	iopt_itree_for_each(node, &pages->pins->access_itree, start_index, last_index)
		if (node->start == start_index && node->last == last_index)
			return container_of(node, struct iopt_pages_access, node);
	return NULL;
}

/*
 * Host addresses of the pinned pages from @start_index. Index i is always the
 * host page uptr + i * 4 KiB, which is also what the DMA path resolves its
 * frame to (checked in debug builds) but without that lookup's hash probe
 * per page, a twentieth of a one-page pin and unpin.
 */
static void pages_to_host(const struct iopt_pages *pages, uint64_t start_index,
			  const uint64_t *frames, uint64_t n, void **out_pages)
{
	uint64_t i;

	for (i = 0; i != n; i++) {
		out_pages[i] = (void *)pages_host(pages, start_index + i);
		assert(iopt_phys_to_host(frames[i] << IOPT_PHYS_FRAME_SHIFT) ==
		       out_pages[i]);
	}
	(void)frames;
}

int iopt_area_add_access(struct iopt_area *area, uint64_t start_index,
			 uint64_t last_index, void **out_pages,
			 uint64_t *out_frames, unsigned int flags,
			 bool lock_area)
{
	struct iopt_pages *pages = area->pages;
	uint64_t n = last_index - start_index + 1;
	struct iopt_pages_access *access, *fresh;
	uint64_t *frames = out_frames;
	int rc;

	if ((flags & IOPT_PAGES_RW_WRITE) && !pages->writable)
		return -EPERM;
	/* Allocate before taking the lock; an exact reuse frees it again. */
	fresh = iopt_malloc(sizeof(*fresh));	/* calloc skips the tcache */
	if (!fresh)
		return -ENOMEM;
	memset(fresh, 0, sizeof(*fresh));
	if (!frames) {
		frames = iopt_malloc(n * sizeof(*frames));
		if (!frames) {
			rc = -ENOMEM;
			goto out_free;
		}
	}

	if (!pages_lock_or_try(pages, flags & IOPT_PAGES_TRYLOCK)) {
		rc = -EAGAIN;
		goto out_free;
	}
	rc = iopt_pages_prepare_pins(pages);
	if (rc)
		goto out_unlock;
	access = pages_find_exact_access(pages, start_index, last_index);
	if (access) {
		iopt_pages_fill_from_store(pages, start_index, last_index, frames);
	} else {
		rc = iopt_pages_fill_store(pages, start_index, last_index, frames);
		if (rc)
			goto out_unlock;
		access = fresh;
		fresh = NULL;	/* moves into access_itree */
		access->node.start = start_index;
		access->node.last = last_index;
		iopt_itree_insert(&access->node, &pages->pins->access_itree);
	}
	access->users++;
	area->num_accesses++;
	if (lock_area)
		area->num_locks++;
	if (out_pages)
		pages_to_host(pages, start_index, frames, n, out_pages);
	rc = 0;
out_unlock:
	iopt_pages_unlock(pages);
out_free:
	if (frames != out_frames)
		iopt_free(frames);
	iopt_free(fresh);
	return rc;
}

/*
 * The live interval an iopt_area_add_access() of exactly [start, last] left,
 * or NULL: no such interval, or @area's counts say it cannot be through
 * @area (it holds no access, or with @unlock_area no lock). Intervals belong
 * to the pages, not the area, so one added through another area of the same
 * pages is found whenever @area holds some access of its own.
 */
static struct iopt_pages_access *area_find_access(struct iopt_area *area,
						  uint64_t start_index,
						  uint64_t last_index,
						  bool unlock_area)
{
	struct iopt_pages_access *access;

	access = pages_find_exact_access(area->pages, start_index, last_index);
	if (!access || !area->num_accesses || (unlock_area && !area->num_locks))
		return NULL;
	return access;
}

bool iopt_area_has_access(struct iopt_area *area, uint64_t start_index,
			  uint64_t last_index, bool unlock_area)
{
	bool found;

	iopt_pages_lock(area->pages);
	found = area_find_access(area, start_index, last_index, unlock_area);
	iopt_pages_unlock(area->pages);
	return found;
}

/*
 * Release one iopt_area_add_access(), taking pages->mutex as
 * pages_lock_or_try(). Return: 1 released, 0 no match, -EAGAIN busy.
 */
static int area_remove_access(struct iopt_area *area, uint64_t start_index,
			      uint64_t last_index, bool unlock_area,
			      bool trylock)
{
	struct iopt_pages *pages = area->pages;
	struct iopt_pages_access *access;
	bool matched;

	if (!pages_lock_or_try(pages, trylock))
		return -EAGAIN;
	access = area_find_access(area, start_index, last_index, unlock_area);
	matched = access;
	if (!matched)
		goto out_unlock;
	if (unlock_area)
		area->num_locks--;
	area->num_accesses--;
	if (--access->users)
		goto out_unlock;
	iopt_itree_remove(&access->node, &pages->pins->access_itree);
	iopt_pages_unfill_store(pages, start_index, last_index);
	iopt_free(access);
out_unlock:
	iopt_pages_unlock(pages);
	return matched;
}

bool iopt_area_remove_access(struct iopt_area *area, uint64_t start_index,
			     uint64_t last_index, bool unlock_area)
{
	return area_remove_access(area, start_index, last_index, unlock_area,
				  false) == 1;
}

int iopt_area_try_remove_access(struct iopt_area *area, uint64_t start_index,
				uint64_t last_index, bool unlock_area)
{
	return area_remove_access(area, start_index, last_index, unlock_area,
				  true);
}

/* ---- byte copies ---- */

/* Copy up to @length bytes for the batch's pages; Return: bytes copied. */
static uint64_t batch_rw(struct pfn_batch *batch, char *data, uint64_t offset,
			 uint64_t length, unsigned int flags)
{
	uint64_t copied = 0;
	unsigned int cur;
	uint32_t npage;

	for (cur = 0; cur != batch->end && length; cur++) {
		for (npage = 0; npage != batch->npfns[cur] && length; npage++) {
			uint64_t paddr = (batch->pfns[cur] + npage)
					 << IOPT_PHYS_FRAME_SHIFT;
			uint64_t bytes = IOPT_MIN(length, IOPT_PAGE_SIZE - offset);
			char *mem = iopt_phys_to_host(paddr);

			assert(mem);
			if (flags & IOPT_PAGES_RW_WRITE)
				memcpy(mem + offset, data + copied, bytes);
			else
				memcpy(data + copied, mem + offset, bytes);
			offset = 0;
			length -= bytes;
			copied += bytes;
		}
	}
	return copied;
}

/*
 * Copy through the frames the tiers give, exactly what a domain would see;
 * pages not otherwise pinned are pinned for the copy only.
 */
static int pages_rw_slow(struct iopt_pages *pages, uint64_t start_index,
			 uint64_t last_index, uint64_t offset, char *data,
			 uint64_t length, unsigned int flags)
{
	struct pfn_reader pfns;
	int rc;

	iopt_pages_lock(pages);
	rc = iopt_pages_prepare_pins(pages);
	if (rc)
		goto out_unlock;
	rc = pfn_reader_first(&pfns, pages, start_index, last_index);
	if (rc)
		goto out_unlock;
	while (!pfn_reader_done(&pfns)) {
		uint64_t done = batch_rw(&pfns.batch, data, offset, length, flags);

		data += done;
		length -= done;
		offset = 0;
		pfn_reader_unpin(&pfns);
		rc = pfn_reader_next(&pfns);
		if (rc)
			break;
	}
	assert(rc || !length);
	pfn_reader_destroy(&pfns);
out_unlock:
	iopt_pages_unlock(pages);
	return rc;
}

/*
 * The fast path for USER pages: the kernel's copy_to/from_user. Copying
 * through process_vm_readv/writev on ourselves turns a bad address into
 * -EFAULT instead of a crash. Return: -ENOSYS when the call is not allowed
 * here (seccomp), so the caller takes the slow path.
 */
static int pages_rw_fast(struct iopt_pages *pages, uint64_t start_byte,
			 void *data, uint64_t length, unsigned int flags)
{
	struct iovec local = { .iov_base = data, .iov_len = length };
	struct iovec remote = {
		.iov_base = (char *)pages->uptr + start_byte,
		.iov_len = length,
	};
	ssize_t done;

	if (flags & IOPT_PAGES_RW_WRITE)
		done = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
	else
		done = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (done == (ssize_t)length)
		return 0;
	if (done < 0 && (errno == ENOSYS || errno == EPERM))
		return -ENOSYS;
	return -EFAULT;
}

int iopt_pages_rw_access(struct iopt_pages *pages, uint64_t start_byte,
			 void *data, uint64_t length, unsigned int flags)
{
	uint64_t start_index = start_byte / IOPT_PAGE_SIZE;
	uint64_t last_index = (start_byte + length - 1) / IOPT_PAGE_SIZE;
	int rc;

	assert(length && last_index < pages->npages);
	if ((flags & IOPT_PAGES_RW_WRITE) && !pages->writable)
		return -EPERM;
	if (pages->type == IOPT_ADDRESS_USER && !(flags & IOPT_PAGES_RW_SLOW_PATH)) {
		rc = pages_rw_fast(pages, start_byte, data, length, flags);
		if (rc != -ENOSYS)
			return rc;
	}
	return pages_rw_slow(pages, start_index, last_index,
			     start_byte % IOPT_PAGE_SIZE, data, length, flags);
}
