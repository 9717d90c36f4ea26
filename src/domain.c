/* SPDX-License-Identifier: MIT */
/*
 * domain.c - page-size splitting, all-or-nothing map and gathered unmap on
 * top of struct iopt_domain_ops (the kernel's iommu_map/iommu_unmap).
 *
 * Why the splitting lives here and not in backends: the contract
 * (domain-contract.md §1.2-1.3) says what (pgsize, pgcount) pairs a backend
 * receives; backends may rely on it (pgsize from the bitmap, addresses aligned
 * to it), so one implementation must produce them.
 */
#include "domain.h"

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "util.h"

/* Bits 0..n inclusive; n may be 63. */
static uint64_t mask_upto(unsigned int n)
{
	return n >= 63 ? UINT64_MAX : (UINT64_C(2) << n) - 1;
}

uint64_t iopt_domain_pgsize(uint64_t pgsize_bitmap, uint64_t iova,
			    uint64_t paddr, uint64_t length, uint64_t *count)
{
	uint64_t merge = iova | paddr;
	uint64_t sizes, larger, pgsize, next, offset;
	unsigned int lg2;

	*count = 0;
	if (!length)
		return 0;
	sizes = pgsize_bitmap & mask_upto(iopt_fls64(length) - 1);
	if (merge)
		sizes &= mask_upto(iopt_ffs64(merge));
	if (!sizes)
		return 0;
	lg2 = iopt_fls64(sizes) - 1;
	pgsize = UINT64_C(1) << lg2;

	/*
	 * Stop at the next boundary of the next larger size when both addresses
	 * share the offset within it and a whole larger page fits past it, so
	 * that the following call can use the larger page.
	 */
	larger = lg2 == 63 ? 0 : pgsize_bitmap & ~mask_upto(lg2);
	if (larger) {
		next = UINT64_C(1) << iopt_ffs64(larger);
		offset = next - (merge & (next - 1));
		if (!((iova ^ paddr) & (next - 1)) && length > offset &&
		    length - offset >= next)
			length = offset;
	}
	*count = length >> lg2;
	return pgsize;
}

int iopt_domain_check(const struct iopt_domain *d)
{
	const struct iopt_domain_ops *ops = d->ops;
	uint64_t cpu_page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (!ops || !ops->map_pages || !ops->unmap_pages ||
	    !ops->iova_to_phys || !ops->iotlb_sync || !ops->flush_iotlb_all ||
	    !ops->free)
		return -EINVAL;
	if (!(d->pgsize_bitmap & mask_upto(iopt_fls64(cpu_page) - 1)))
		return -EINVAL;
	if (d->aperture_start > d->aperture_last)
		return -EINVAL;
	if (!ops->set_dirty_tracking != !ops->read_and_clear_dirty)
		return -EINVAL;
	return 0;
}

static uint64_t min_pgsize(const struct iopt_domain *d)
{
	return d->pgsize_bitmap & -d->pgsize_bitmap;
}

int iopt_domain_map(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
		    uint64_t length, int prot)
{
	uint64_t align = min_pgsize(d);
	uint64_t done = 0;
	int ret = 0;

	if (!align || !length || !iopt_is_aligned(iova | paddr | length, align) ||
	    iova + (length - 1) < iova)
		return -EINVAL;

	while (done < length) {
		uint64_t count, mapped = 0;
		uint64_t pgsize = iopt_domain_pgsize(d->pgsize_bitmap,
						     iova + done, paddr + done,
						     length - done, &count);

		ret = d->ops->map_pages(d, iova + done, paddr + done, pgsize,
					count, prot, &mapped);
		done += mapped;
		if (ret)
			goto err_unmap;
	}
	if (d->ops->iotlb_sync_map) {
		ret = d->ops->iotlb_sync_map(d, iova, length);
		if (ret)
			goto err_unmap;
	}
	return 0;

err_unmap:
	if (done)
		iopt_domain_unmap_sync(d, iova, done);
	return ret;
}

uint64_t iopt_domain_unmap(struct iopt_domain *d, uint64_t iova,
			   uint64_t length, struct iopt_iotlb_gather *g)
{
	uint64_t done = 0;

	if (!length || !iopt_is_aligned(iova | length, min_pgsize(d)))
		return 0;

	while (done < length) {
		uint64_t count, cleared;
		uint64_t pgsize = iopt_domain_pgsize(d->pgsize_bitmap,
						     iova + done, iova + done,
						     length - done, &count);

		cleared = d->ops->unmap_pages(d, iova + done, pgsize, count, g);
		if (!cleared)
			break;
		/* The last leaf may end past UINT64_MAX - iova: saturate. */
		done = cleared > UINT64_MAX - done ? UINT64_MAX : done + cleared;
	}
	return done;
}

uint64_t iopt_domain_unmap_sync(struct iopt_domain *d, uint64_t iova,
				uint64_t length)
{
	struct iopt_iotlb_gather g;
	uint64_t done;

	iopt_iotlb_gather_init(&g);
	done = iopt_domain_unmap(d, iova, length, &g);
	iopt_domain_iotlb_sync(d, &g);
	iopt_domain_quiesce(d);
	return done;
}

void iopt_domain_iotlb_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g)
{
	d->ops->iotlb_sync(d, g);
	iopt_iotlb_gather_init(g);
}

void iopt_domain_quiesce(struct iopt_domain *d)
{
	if (d->ops->quiesce)
		d->ops->quiesce(d);
}
