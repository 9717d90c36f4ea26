/* SPDX-License-Identifier: MIT */
/*
 * iopt/ioas.h - the IO address space (IOAS): the kernel's iommufd IOAS object
 * and its IOMMU_IOAS_* operations, as a C API.
 *
 * An IOAS maps IOVA ranges ("areas") to memory of this process or of a memfd.
 * With no domain attached it is a software table over all 2^64 IOVAs with byte
 * granularity, and mapping pins nothing (a bad pointer is found only when a
 * domain is attached). Every attached domain (iopt/domain.h) receives every
 * area, all or nothing; the first one pins the memory, later ones reuse the
 * pins. The rules, errno for errno, are the kernel's io_pagetable; see
 * docs/ioas.md and docs/errors.md, and docs/differences.md for where we part.
 *
 * Vocabulary: "last" is inclusive; IOVAs and lengths are uint64_t; every
 * function returns 0 or a negative errno and changes nothing on failure
 * unless its comment says otherwise (unmap, cut).
 *
 * Ownership: iopt_ioas_alloc() returns an IOAS owned by the caller, freed by
 * iopt_ioas_destroy() after every domain is detached. Domains are borrowed
 * from attach until detach. Memory mapped from the caller must stay mapped
 * while an area covers it (as with the kernel); memfd ranges are mapped by the
 * library itself, so the caller may close the fd after the map call. A
 * handle used after its destroy is a use-after-free, as after free(): NULL
 * is refused (-EINVAL), a stale pointer cannot be (docs/differences.md).
 *
 * Threads: every function may be called concurrently on one IOAS; the
 * kernel's locking (docs/locking.md) applies. A map in flight reserves its
 * IOVA: an overlapping map gets -EEXIST and an unmap of it -EBUSY.
 */
#ifndef IOPT_IOAS_H
#define IOPT_IOAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/domain.h>
#include <iopt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iopt_ctx;
struct iopt_ioas;

/* iopt_ioas_map(), _map_file() and _copy() flags (IOMMU_IOAS_MAP_*) */
#define IOPT_IOAS_MAP_FIXED_IOVA	(1u << 0)	/* *iova is an input */
#define IOPT_IOAS_MAP_WRITEABLE		(1u << 1)	/* devices may write */
#define IOPT_IOAS_MAP_READABLE		(1u << 2)	/* devices may read */

/* An inclusive IOVA range. */
struct iopt_iova_range {
	uint64_t start;
	uint64_t last;
};

/**
 * iopt_ioas_alloc() - create an empty IOAS.
 * @ctx: context; borrowed, must outlive the IOAS.
 * @out: receives the IOAS: no areas, alignment 1, one range [0, UINT64_MAX].
 *
 * Return: 0, -EINVAL (NULL argument), -ENOMEM.
 */
IOPT_API int iopt_ioas_alloc(struct iopt_ctx *ctx, struct iopt_ioas **out);

/**
 * iopt_ioas_destroy() - unmap everything and free the IOAS.
 * @ioas: the IOAS, or NULL (a no-op returning 0).
 *
 * Return: 0; -EBUSY while a domain or access is attached (IOMMU_DESTROY of a
 * referenced IOAS); the IOAS is then untouched.
 */
IOPT_API int iopt_ioas_destroy(struct iopt_ioas *ioas);

/**
 * iopt_ioas_id() - Return: the IOAS's object id (> 0, unique in the process
 * while the IOAS lives), or 0 for NULL.
 * @ioas: the IOAS.
 */
IOPT_API uint32_t iopt_ioas_id(const struct iopt_ioas *ioas);

/**
 * iopt_ioas_map() - map [@uptr, @uptr + @length) of this process.
 * @ioas: the IOAS.
 * @uptr: first byte; any alignment the IOAS alignment allows.
 * @length: bytes.
 * @iova: with IOPT_IOAS_MAP_FIXED_IOVA the IOVA to map at, else output
 *	  only: the IOVA chosen (first fit, aligned like @uptr, never page 0).
 * @flags: IOPT_IOAS_MAP_* (READABLE and/or WRITEABLE required).
 *
 * Return: 0; -EOPNOTSUPP (unknown flag); -EOVERFLOW (@iova or @length is
 * UINT64_MAX, or a range wraps); -EINVAL (NULL, zero length, no READ/WRITE,
 * misalignment, a reserved range touched); -EEXIST (overlap); -ENOSPC; with
 * domains: -EFAULT, -ENOMEM (memlock limit), domain map errors.
 */
IOPT_API int iopt_ioas_map(struct iopt_ioas *ioas, void *uptr, uint64_t length,
			   uint64_t *iova, unsigned int flags);

/**
 * iopt_ioas_map_file() - map [@start, @start + @length) of a memfd.
 * @ioas: the IOAS.
 * @memfd: memfd or hugetlbfs fd; must be open for writing for WRITEABLE.
 * @start: file offset of the first byte.
 * @length: bytes.
 * @iova: as iopt_ioas_map(); auto IOVAs are aligned like @start.
 * @flags: IOPT_IOAS_MAP_*.
 *
 * The file's type and size are checked when its pages are pinned, as in the
 * kernel: with a domain attached at map time, otherwise at the first attach,
 * access pin or rw.
 *
 * Return: as iopt_ioas_map(), plus -EBADF (bad fd, checked before the
 * length), -EPERM (WRITEABLE on an fd not open for writing, or an fd not
 * open for reading), -EINVAL when pinning (not a memfd or hugetlbfs file,
 * range past EOF).
 */
IOPT_API int iopt_ioas_map_file(struct iopt_ioas *ioas, int memfd,
				uint64_t start, uint64_t length, uint64_t *iova,
				unsigned int flags);

/**
 * iopt_ioas_unmap() - remove the areas inside [@iova, @iova + @length).
 * @ioas: the IOAS.
 * @iova: first IOVA.
 * @length: bytes; (0, UINT64_MAX) means everything, as iopt_ioas_unmap_all().
 * @unmapped: receives the bytes removed (the sum of the whole areas removed,
 *	      not @length), also on failure; may be NULL.
 *
 * Areas are never split. Not atomic across areas: a failure can come after
 * lower areas were removed, and *@unmapped says how much went.
 * Return: 0; -EINVAL (zero length); -EOVERFLOW; -ENOENT (an area crosses the
 * range's edge, or nothing was removed); -EBUSY (an area being mapped, or
 * locked by an internal access); -EDEADLOCK (accesses would not unpin).
 */
IOPT_API int iopt_ioas_unmap(struct iopt_ioas *ioas, uint64_t iova,
			     uint64_t length, uint64_t *unmapped);

/**
 * iopt_ioas_unmap_all() - remove every area; succeeds on an empty IOAS.
 * @ioas: the IOAS.
 * @unmapped: receives the bytes removed, also on failure; may be NULL.
 *
 * Return: 0, -EINVAL (NULL @ioas), -EBUSY, -EDEADLOCK.
 */
IOPT_API int iopt_ioas_unmap_all(struct iopt_ioas *ioas, uint64_t *unmapped);

/**
 * iopt_ioas_copy() - map in @dst the memory that @src maps at
 * [@src_iova, @src_iova + @length), sharing its pins (no new pin or charge).
 * @dst: destination IOAS (may be @src).
 * @dst_iova: as @iova of iopt_ioas_map().
 * @src: source IOAS.
 * @src_iova: first source IOVA; any fully mapped contiguous range works.
 * @length: bytes.
 * @flags: IOPT_IOAS_MAP_*.
 *
 * The destination gets one area per source area crossed.
 * Return: as iopt_ioas_map(), plus -ENOENT (source range not fully mapped)
 * and -EPERM (WRITEABLE asked of memory mapped read-only).
 */
IOPT_API int iopt_ioas_copy(struct iopt_ioas *dst, uint64_t *dst_iova,
			    struct iopt_ioas *src, uint64_t src_iova,
			    uint64_t length, unsigned int flags);

/**
 * iopt_ioas_allow_iovas() - replace the allowed ranges (auto IOVA stays in
 * them; they can never become reserved).
 * @ioas: the IOAS.
 * @ranges: the ranges, each with start < last, not overlapping; borrowed.
 * @n: number of ranges; 0 clears the list (@ranges may then be NULL).
 *
 * Return: 0; -EINVAL (NULL, a range with start >= last, overlapping ranges);
 * -EADDRINUSE (a range hits a reserved range); -ENOMEM.
 */
IOPT_API int iopt_ioas_allow_iovas(struct iopt_ioas *ioas,
				   const struct iopt_iova_range *ranges,
				   size_t n);

/**
 * iopt_ioas_reserve() - reserve [@start, @last] so it is never mapped.
 * @ioas: the IOAS.
 * @start: first IOVA.
 * @last: last IOVA (inclusive).
 * @owner: non-NULL cookie for iopt_ioas_unreserve(); never dereferenced.
 *
 * Return: 0; -EINVAL (NULL, @start > @last); -EADDRINUSE (hits an area or
 * an allowed range); -ENOMEM.
 */
IOPT_API int iopt_ioas_reserve(struct iopt_ioas *ioas, uint64_t start,
			       uint64_t last, const void *owner);

/**
 * iopt_ioas_unreserve() - drop every reservation made with @owner.
 * @ioas: the IOAS.
 * @owner: the cookie.
 *
 * Return: 0, or -EINVAL for a NULL argument.
 */
IOPT_API int iopt_ioas_unreserve(struct iopt_ioas *ioas, const void *owner);

/**
 * iopt_ioas_iova_ranges() - the usable IOVA: the complement of the reserved
 * ranges (allowed ranges play no part), ascending.
 * @ioas: the IOAS.
 * @ranges: receives up to *@num ranges; may be NULL when *@num is 0.
 * @num: in: capacity of @ranges; out: the total number of ranges.
 * @alignment: receives the IOAS alignment; may be NULL.
 *
 * Return: 0; -EINVAL (NULL); -EMSGSIZE when the capacity is too small: the
 * first entries are filled, the rest of @ranges is untouched, and *@num and
 * *@alignment are still written.
 */
IOPT_API int iopt_ioas_iova_ranges(struct iopt_ioas *ioas,
				   struct iopt_iova_range *ranges,
				   size_t *num, uint64_t *alignment);

/**
 * iopt_ioas_cut() - split areas so that each @iovas[i] becomes the last byte
 * of an area (VFIO type1 v1 partial unmap).
 * @ioas: the IOAS.
 * @iovas: IOVAs; one outside every area is skipped, one at an area's first
 *	   or last byte is a no-op.
 * @n: number of IOVAs.
 *
 * Return: 0; -EINVAL (NULL, alignment, accesses, or a domain with huge pages
 * enabled); -EBUSY; -ENOMEM. On failure: splits before the failing IOVA stay.
 */
IOPT_API int iopt_ioas_cut(struct iopt_ioas *ioas, const uint64_t *iovas,
			   size_t n);

/**
 * iopt_ioas_set_huge_pages() - IOMMU_OPTION_HUGE_PAGES (1 by default).
 * @ioas: the IOAS.
 * @value: 1 lets domains use huge IOPTEs; 0 maps page by page, raises the
 *	   alignment to the CPU page size and allows cuts in domains.
 *
 * Return: 0; -EINVAL (value not 0 or 1; 0 with domains and areas present);
 * -EADDRINUSE (0 with an area not page aligned).
 */
IOPT_API int iopt_ioas_set_huge_pages(struct iopt_ioas *ioas, uint64_t value);

/**
 * iopt_ioas_get_huge_pages() - read IOMMU_OPTION_HUGE_PAGES.
 * @ioas: the IOAS.
 * @value: receives 1 or 0.
 *
 * Return: 0, or -EINVAL for a NULL argument.
 */
IOPT_API int iopt_ioas_get_huge_pages(struct iopt_ioas *ioas, uint64_t *value);

/**
 * iopt_ioas_attach_domain() - attach @domain and map every area into it.
 * @ioas: the IOAS.
 * @domain: the domain, borrowed until iopt_ioas_detach_domain().
 *
 * Out-of-aperture IOVA becomes reserved; the alignment rises to the domain's
 * smallest page size. The first domain pins all memory; later ones reuse it.
 * Return: 0; -EINVAL (NULL, a domain the core cannot drive, or a smallest
 * page above the CPU page size); -EEXIST (already attached); -EADDRINUSE (an
 * area or allowed range outside the aperture, or areas misaligned); -EFAULT
 * (memory gone); -ENOMEM; domain map errors. On failure nothing changed.
 */
IOPT_API int iopt_ioas_attach_domain(struct iopt_ioas *ioas,
				     struct iopt_domain *domain);

/**
 * iopt_ioas_detach_domain() - unmap every area from @domain and forget it.
 * @ioas: the IOAS.
 * @domain: an attached domain; anything else is ignored.
 *
 * Memory is unpinned when the last domain goes. Never fails.
 */
IOPT_API void iopt_ioas_detach_domain(struct iopt_ioas *ioas,
				      struct iopt_domain *domain);

/**
 * iopt_ioas_set_dirty_tracking() - start or stop dirty tracking in @domain.
 * @ioas: the IOAS @domain is attached to.
 * @domain: the domain.
 * @enable: starting clears stale dirty state over every area first.
 *
 * Return: 0; -EINVAL (NULL, @domain not attached); -EOPNOTSUPP (the domain
 * has no dirty tracking); the domain's error.
 */
IOPT_API int iopt_ioas_set_dirty_tracking(struct iopt_ioas *ioas,
					  struct iopt_domain *domain,
					  bool enable);

/**
 * iopt_ioas_read_dirty() - OR into @bitmap which @page_size granules of
 * [@iova, @iova + @length) were written by devices, and clear them.
 * @ioas: the IOAS @domain is attached to.
 * @domain: the domain.
 * @iova: first IOVA, a multiple of @page_size and of the IOAS alignment.
 * @length: bytes, likewise.
 * @page_size: bytes per bit, a power of two.
 * @flags: IOPT_DIRTY_NO_CLEAR (iopt/domain.h) or 0.
 * @bitmap: bit n (bit n % 64 of little-endian u64 word n / 64) stands for
 *	    [@iova + n * @page_size, + @page_size); bits are only set, so zero
 *	    it first; need not be aligned.
 *
 * Return: 0; -EOPNOTSUPP (unknown flag, no dirty tracking); -EOVERFLOW;
 * -EINVAL (NULL, zero or non-power-of-two @page_size, misalignment, @domain
 * not attached, a hole in the range, or, from the simulated domain as from
 * the AMD and VT-d drivers, tracking off); the domain's error. Unlike the
 * kernel a hole or a domain error is returned, not swallowed
 * (docs/differences.md).
 */
IOPT_API int iopt_ioas_read_dirty(struct iopt_ioas *ioas,
				  struct iopt_domain *domain, uint64_t iova,
				  uint64_t length, uint64_t page_size,
				  unsigned int flags, void *bitmap);

#ifdef __cplusplus
}
#endif

#endif /* IOPT_IOAS_H */
