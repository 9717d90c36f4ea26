/* SPDX-License-Identifier: MIT */
/*
 * pin.h - the process-wide pin registry (the kernel's pin_user_pages role).
 *
 * Pinning a host range faults it in (MADV_POPULATE_WRITE for a writable pin,
 * MADV_POPULATE_READ otherwise), mlocks it when the context's backend is
 * IOPT_PIN_MLOCK, and gives every page a simulated frame (src/phys.h). The
 * registry counts pins per host page, so holders never undo each other; a page
 * is unlocked when its last mlock pin goes and loses its frame when its last pin
 * of any backend goes. Locking and unlocking always work on maximal runs.
 *
 * Accounting is not done here: a holder pins, then charges what it pinned with
 * iopt_ctx_charge() and unpins on refusal (the kernel's iopt_pages_update_pinned
 * order, src/ctx.h).
 *
 * Vocabulary: host addresses are uintptr_t, page-aligned (4 KiB); npages counts
 * 4 KiB pages; a "pfn" is a simulated frame number.
 * Locking: every function takes iopt_phys_lock() itself; none may be called with
 * it held. They can all run concurrently from any thread.
 */
#ifndef IOPT_SRC_PIN_H
#define IOPT_SRC_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/ctx.h>

#define IOPT_PIN_PAGE_SHIFT	12
#define IOPT_PIN_PAGE_SIZE	((uintptr_t)1 << IOPT_PIN_PAGE_SHIFT)

/**
 * iopt_pin_range() - pin [@uaddr, @uaddr + @npages * 4 KiB) for one holder.
 * @ctx: context whose backend and contiguity model apply; its pinned-page
 *	 counter grows by @npages.
 * @uaddr: page-aligned host address.
 * @npages: pages to pin, > 0.
 * @writable: the holder may let a device write: fault in for write (breaks
 *	      copy-on-write, -EFAULT on memory that is not writable).
 * @pfns_out: receives @npages frame numbers, or NULL.
 *
 * Pages already pinned cost no system call (unless a writable pin meets a page
 * only faulted in for read, or an mlock pin meets one only populated).
 *
 * Return: 0; -EINVAL for a misaligned @uaddr or @npages == 0; -EOVERFLOW when
 * the range wraps; -EFAULT when part of the range is unmapped or inaccessible;
 * -ENOMEM when mlock is refused (logged through the context with the limit and
 * the populate-only alternative), when a page already has 65535 pins from one
 * backend, or when memory or simulated frames run out.
 * On failure: nothing is pinned, locked or assigned a frame by this call.
 * Locking: takes iopt_phys_lock() (held across the system calls).
 */
int iopt_pin_range(struct iopt_ctx *ctx, uintptr_t uaddr, size_t npages,
		   bool writable, uint64_t *pfns_out);

/**
 * iopt_unpin_range() - drop one pin from each page of a range.
 * @ctx: the context the pins were taken through (its backend decides which
 *	 count drops).
 * @uaddr: page-aligned host address.
 * @npages: pages; each must hold a pin of @ctx's backend.
 *
 * Pages whose last mlock pin goes are munlocked run by run; pages whose last pin
 * goes lose their frame. Cannot fail.
 */
void iopt_unpin_range(struct iopt_ctx *ctx, uintptr_t uaddr, size_t npages);

/**
 * iopt_pin_lookup() - frames of pages that are already pinned, pinning nothing.
 * @uaddr: page-aligned host address.
 * @npages: pages.
 * @pfns_out: receives @npages frame numbers.
 *
 * Return: 0, or -ENOENT when some page is not pinned (then @pfns_out is
 * partly written).
 */
int iopt_pin_lookup(uintptr_t uaddr, size_t npages, uint64_t *pfns_out);

/**
 * iopt_pin_host_pgsize() - host page size behind a pinned page.
 * @uaddr: host address.
 *
 * Probed when a FOLIO context first pins the page's 2 MiB chunk (its frames
 * depend on it), otherwise at the first call while the chunk stays pinned: 2 MiB
 * when the whole chunk is one PMD-mapped huge page (THP or hugetlbfs, found with
 * PAGEMAP_SCAN, Linux 6.7+), 4 KiB otherwise or when the kernel cannot tell.
 *
 * Return: the size in bytes, or 0 when @uaddr is not pinned.
 */
size_t iopt_pin_host_pgsize(uintptr_t uaddr);

/**
 * struct iopt_pin_page_state - one host page as the registry sees it.
 * @nlocked: pins from IOPT_PIN_MLOCK contexts (the page is mlocked iff > 0).
 * @npopulated: pins from IOPT_PIN_POPULATE_ONLY contexts.
 * @write: faulted in for write since it was first pinned.
 * @pfn: its frame when pinned.
 */
struct iopt_pin_page_state {
	uint32_t nlocked;
	uint32_t npopulated;
	bool write;
	uint64_t pfn;
};

/**
 * iopt_pin_page_state() - read one page's registry entry (tests, debugging).
 * Return: 0, or -ENOENT when @uaddr is not pinned (*@st is zeroed).
 */
int iopt_pin_page_state(uintptr_t uaddr, struct iopt_pin_page_state *st);

/**
 * iopt_pin_read_stats() - fill the pinning fields of a stats snapshot.
 * @ctx: context whose own pinned-page counters are reported.
 * @out: receives pages_pinned, peak_pages_pinned and the registry_* fields;
 *	 the other fields are left alone.
 */
void iopt_pin_read_stats(struct iopt_ctx *ctx, struct iopt_ctx_stats *out);

#endif /* IOPT_SRC_PIN_H */
