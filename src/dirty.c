/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - dirty tracking over the areas of an io_pagetable (the dirty part
 * of the kernel's io_pagetable.c).
 *
 * A domain records dirtiness per IOPTE; the core turns tracking on and off
 * and harvests the bits into a caller bitmap at a chosen granule, one
 * read_and_clear_dirty() call per area piece so a backend never sees IOVA
 * that no area maps. Enabling first clears whatever is dirty, so the first
 * harvest only reports writes made after it. Clearing is followed by one IOTLB
 * sync, so a device cannot keep writing through a cached clean entry unseen.
 *
 * Deliberate differences from the kernel (docs/differences.md): a hole in
 * the requested range and a backend error are returned (the kernel discards
 * the iterator's result); among the latter, a read from a domain whose
 * tracking is off, which the AMD and VT-d drivers (and the simulator) refuse
 * with -EINVAL, so the caller learns its bitmap means nothing; and a
 * page_size that is not a power of two is refused. A domain must be attached
 * to the IOAS (-EINVAL otherwise); the kernel gets that from the HWPT object.
 *
 * Locking: domains_rwsem (read) keeps the domain attached for the call, then
 * iova_rwsem (read) keeps the areas in place; reads run concurrently with
 * each other, not with map or unmap.
 */
#include <errno.h>

#include "domain.h"
#include "io_pagetable.h"
#include "iova_bitmap.h"

static bool iopt_domain_attached(struct io_pagetable *iopt,
				 const struct iopt_domain *domain)
{
	size_t i;

	iopt_assert_held(&iopt->domains_rwsem);
	for (i = 0; i != iopt->ndomains; i++)
		if (iopt->domains[i] == domain)
			return true;
	return false;
}

/* Clear every dirty bit under every published area; one sync at the end. */
static int iopt_clear_dirty_data(struct io_pagetable *iopt,
				 struct iopt_domain *domain)
{
	struct iopt_iotlb_gather gather;
	struct iopt_dirty_bitmap dirty = { .gather = &gather };
	struct iopt_area *area;
	int rc = 0;

	iopt_assert_held(&iopt->iova_rwsem);

	iopt_iotlb_gather_init(&gather);
	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		if (!area->pages)
			continue;
		rc = domain->ops->read_and_clear_dirty(domain,
						       iopt_area_iova(area),
						       iopt_area_length(area),
						       0, &dirty);
		if (rc)
			break;
	}
	iopt_domain_iotlb_sync(domain, &gather);
	return rc;
}

/**
 * iopt_set_dirty_tracking() - turn dirty tracking on or off in @domain.
 * @iopt: the address space @domain is attached to.
 * @domain: the domain.
 * @enable: true to start (after clearing stale bits), false to stop.
 *
 * Locking: takes domains_rwsem (read), then iova_rwsem (read).
 * Return: 0; -EOPNOTSUPP (no dirty ops); -EINVAL (not attached); the
 * domain's error.
 * On failure: tracking is as before (stale bits may have been cleared).
 */
int iopt_set_dirty_tracking(struct io_pagetable *iopt,
			    struct iopt_domain *domain, bool enable)
{
	int rc = 0;

	if (!domain->ops->set_dirty_tracking)
		return -EOPNOTSUPP;

	iopt_rwlock_read(&iopt->domains_rwsem);
	if (!iopt_domain_attached(iopt, domain)) {
		rc = -EINVAL;
		goto out_unlock_domains;
	}
	iopt_rwlock_read(&iopt->iova_rwsem);
	if (enable)
		rc = iopt_clear_dirty_data(iopt, domain);
	if (!rc)
		rc = domain->ops->set_dirty_tracking(domain, enable);
	iopt_rwlock_unlock(&iopt->iova_rwsem);
out_unlock_domains:
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

/* The kernel's iommufd_check_iova_range(), plus the power-of-two rule. */
static int iopt_check_dirty_range(struct io_pagetable *iopt, uint64_t iova,
				  uint64_t length, uint64_t page_size)
{
	uint64_t alignment, last;

	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;
	iopt_rwlock_read(&iopt->iova_rwsem);
	alignment = iopt->iova_alignment;
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	if (!iopt_is_aligned(iova, alignment) ||
	    !iopt_is_aligned(last + 1, alignment))
		return -EINVAL;
	if (!iopt_is_power_of_2(page_size))
		return -EINVAL;
	if (!iopt_is_aligned(iova, page_size) ||
	    !iopt_is_aligned(last + 1, page_size))
		return -EINVAL;
	return 0;
}

static void dirty_record(void *opaque, uint64_t iova, uint64_t length)
{
	iopt_iova_bitmap_set(opaque, iova, length);
}

/* Harvest [iova, last] area piece by area piece; a hole is -EINVAL. */
static int iopt_read_and_clear_dirty_locked(struct io_pagetable *iopt,
					    struct iopt_domain *domain,
					    uint64_t iova, uint64_t last,
					    unsigned int flags,
					    struct iopt_dirty_bitmap *dirty)
{
	struct iopt_area_contig_iter iter;
	struct iopt_area *area;
	int rc;

	iopt_assert_held(&iopt->iova_rwsem);

	iopt_for_each_contig_area(&iter, area, iopt, iova, last) {
		uint64_t piece_last = IOPT_MIN(last, iopt_area_last_iova(area));

		rc = domain->ops->read_and_clear_dirty(domain, iter.cur_iova,
						       piece_last -
							       iter.cur_iova + 1,
						       flags, dirty);
		if (rc)
			return rc;
	}
	return iopt_area_contig_done(&iter) ? 0 : -EINVAL;
}

/**
 * iopt_read_and_clear_dirty_data() - OR the dirty granules of [@iova, @iova +
 * @length) into @bitmap and, unless IOPT_DIRTY_NO_CLEAR, clear them.
 * @iopt: the address space @domain is attached to.
 * @domain: the domain.
 * @iova: first IOVA.
 * @length: bytes.
 * @page_size: bytes per bit, a power of two.
 * @flags: IOPT_DIRTY_NO_CLEAR or 0 (checked by the caller).
 * @bitmap: caller buffer, see iova_bitmap.h.
 *
 * Locking: takes domains_rwsem (read), then iova_rwsem (read).
 * Return: 0; -EINVAL (range or page_size, not attached, a hole);
 * -EOVERFLOW; -EOPNOTSUPP (no dirty ops); the domain's error (-EINVAL from
 * the simulator, AMD and VT-d while tracking is off).
 * On failure: bits for area pieces before the failure may be set (and
 * cleared in the domain).
 */
int iopt_read_and_clear_dirty_data(struct io_pagetable *iopt,
				   struct iopt_domain *domain, uint64_t iova,
				   uint64_t length, uint64_t page_size,
				   unsigned int flags, void *bitmap)
{
	struct iopt_iova_bitmap iova_bitmap;
	struct iopt_iotlb_gather gather;
	struct iopt_dirty_bitmap dirty = {
		.record = dirty_record, .opaque = &iova_bitmap,
		.gather = &gather,
	};
	int rc;

	rc = iopt_check_dirty_range(iopt, iova, length, page_size);
	if (rc)
		return rc;
	if (!domain->ops->read_and_clear_dirty)
		return -EOPNOTSUPP;

	iopt_iova_bitmap_init(&iova_bitmap, iova, length, page_size, bitmap);
	iopt_iotlb_gather_init(&gather);
	iopt_rwlock_read(&iopt->domains_rwsem);
	if (!iopt_domain_attached(iopt, domain)) {
		rc = -EINVAL;
		goto out_unlock_domains;
	}
	iopt_rwlock_read(&iopt->iova_rwsem);
	rc = iopt_read_and_clear_dirty_locked(iopt, domain, iova,
					      iova + length - 1, flags, &dirty);
	if (!(flags & IOPT_DIRTY_NO_CLEAR))
		iopt_domain_iotlb_sync(domain, &gather);
	iopt_rwlock_unlock(&iopt->iova_rwsem);
out_unlock_domains:
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}
