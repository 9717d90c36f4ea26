/* SPDX-License-Identifier: MIT */
/*
 * domain.h - the core's way of calling a domain (the kernel's iommu_map and
 * iommu_unmap role).
 *
 * The core never calls map_pages/unmap_pages directly: it goes through these
 * helpers, which split a range into (pgsize, pgcount) calls exactly as the
 * kernel's iommu_pgsize() does (domain-contract.md §1.2), make a map
 * all-or-nothing, and pair every unmap with a gather and a sync. Keeping the
 * splitting rule in one place is what lets a backend rely on the contract.
 *
 * Vocabulary: "last" inclusive, "end" exclusive; IOVAs, paddrs and lengths are
 * uint64_t. Locking: none here; the caller holds the IOVA-range lock the
 * domain contract asks for (iopt/domain.h).
 */
#ifndef IOPT_SRC_DOMAIN_H
#define IOPT_SRC_DOMAIN_H

#include <stdint.h>

#include <iopt/domain.h>

/**
 * iopt_domain_pgsize() - pick the page size for the next map_pages() call.
 * @pgsize_bitmap: the domain's leaf sizes.
 * @iova: next IOVA.
 * @paddr: next physical address (the IOVA itself when unmapping).
 * @length: bytes left, > 0.
 * @count: receives how many pages of the returned size to pass.
 *
 * Picks the largest size in @pgsize_bitmap that @iova | @paddr is aligned to
 * and that fits in @length; stops the count early at the boundary where the
 * next call could use the next larger size.
 *
 * Return: the page size, or 0 when no size fits (misaligned or too short).
 */
uint64_t iopt_domain_pgsize(uint64_t pgsize_bitmap, uint64_t iova,
			    uint64_t paddr, uint64_t length, uint64_t *count);

/**
 * iopt_domain_check() - refuse a backend the core cannot drive.
 * @d: domain handed over by a backend.
 *
 * Return: 0, or -EINVAL when ops or a mandatory op is missing, the bitmap has
 * no size <= the CPU page size, the aperture is empty, or dirty ops are only
 * half present.
 */
int iopt_domain_check(const struct iopt_domain *d);

/**
 * iopt_domain_map() - map [@iova, @iova + @length) -> @paddr, all or nothing.
 * @d: domain.
 * @iova: first IOVA, aligned to the domain's smallest page size.
 * @paddr: first physical address, aligned likewise.
 * @length: bytes, > 0, aligned likewise; the range must not wrap.
 * @prot: IOPT_PROT_* bits.
 *
 * Calls map_pages() with the splitting rule above, then iotlb_sync_map().
 *
 * Locking: caller holds the IOVA-range lock for the range.
 * Return: 0 or the backend's -errno; -EINVAL for bad alignment or length.
 * On failure: everything this call mapped has been unmapped and synced.
 */
int iopt_domain_map(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
		    uint64_t length, int prot);

/**
 * iopt_domain_unmap() - unmap [@iova, @iova + @length) into @g, no sync.
 * @d: domain.
 * @iova: first IOVA.
 * @length: bytes; a range ending at UINT64_MAX is allowed.
 * @g: gather that receives the ranges and freed tables; the caller syncs it
 *     with iopt_domain_iotlb_sync() (the kernel's iommu_unmap_fast()).
 *
 * Locking: caller holds the IOVA-range lock for the range.
 * Return: bytes unmapped, which is less than @length when a leaf could not
 * be split and more when the last leaf reached past the range; 0 when
 * @iova or @length is misaligned.
 */
uint64_t iopt_domain_unmap(struct iopt_domain *d, uint64_t iova,
			   uint64_t length, struct iopt_iotlb_gather *g);

/**
 * iopt_domain_unmap_sync() - iopt_domain_unmap() with its own gather, synced,
 * then the domain's quiesce check (the kernel's iommu_unmap()).
 * @d: domain.
 * @iova: first IOVA.
 * @length: bytes.
 *
 * Return: as iopt_domain_unmap().
 */
uint64_t iopt_domain_unmap_sync(struct iopt_domain *d, uint64_t iova,
				uint64_t length);

/**
 * iopt_domain_iotlb_sync() - invalidate what @g gathered, then release its
 * freed tables; @g is empty afterwards.
 * @d: the domain @g was filled on.
 * @g: gather.
 */
void iopt_domain_iotlb_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g);

/**
 * iopt_domain_quiesce() - tell a checking backend no invalidation may be
 * outstanding now (before unpinning pages, at the end of an unmap).
 * @d: domain.
 */
void iopt_domain_quiesce(struct iopt_domain *d);

#endif /* IOPT_SRC_DOMAIN_H */
