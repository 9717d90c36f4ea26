/* SPDX-License-Identifier: MIT */
/*
 * iopt/access.h - accesses: how an emulated device with no IOMMU domain of
 * its own (a virtio back end, a mediated device, a device model) reaches the
 * memory an IOAS maps (the kernel's iommufd_access, device.c).
 *
 * An access is attached to one IOAS at a time. Through it a device either
 * pins an IOVA range and gets the host address of every page (it may then
 * read and write them directly until it unpins), or copies bytes to or from
 * an IOVA range with iopt_access_rw(), which pins nothing lasting.
 *
 * The unmap contract: pins stop the IOAS owner from unmapping. An unmap that
 * meets a pin marks that area "being unmapped" (new pins and rw on it fail
 * with -EINVAL), calls every attached access's unmap callback with the whole
 * area range and no library lock held, and retries; each callback must
 * synchronously unpin everything it holds that intersects the range (it may
 * call iopt_access_unpin_pages() and any other function here on other
 * ranges). A callback that keeps its pins makes the unmap fail with
 * -EDEADLOCK after 100 retries, and the area then stays mapped and closed to
 * accesses until the pins are gone and it is unmapped. An internal access
 * (IOPT_ACCESS_INTERNAL) has no callback: its pins lock the area, whose unmap
 * fails with -EBUSY at once.
 *
 * Alignment: a pinning or internal access needs page-aligned areas; attaching
 * raises the IOAS's alignment to IOPT_ACCESS_PAGE_SIZE (-EADDRINUSE when an
 * existing area does not conform) and detaching lowers it again. An rw-only
 * access leaves it at 1.
 *
 * Vocabulary: IOVAs and lengths are uint64_t bytes; a range is [iova,
 * iova + length) and may end at UINT64_MAX. Functions return 0 or a negative
 * errno and change nothing on failure unless their comment says otherwise.
 *
 * Ownership: iopt_access_create() returns an access owned by the caller and
 * freed by iopt_access_destroy(). The IOAS is borrowed from attach to detach
 * (iopt_ioas_destroy() returns -EBUSY meanwhile). The ops and data are
 * borrowed until destroy.
 *
 * Threads: every function may be called from any thread, concurrently with
 * map and unmap of the IOAS and with each other, except iopt_access_destroy()
 * (no other call on the access may be in flight or follow it) and the rules
 * on callbacks below. See docs/access.md.
 */
#ifndef IOPT_ACCESS_H
#define IOPT_ACCESS_H

#include <stdbool.h>
#include <stdint.h>

#include <iopt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iopt_ctx;
struct iopt_ioas;
struct iopt_access;

/* The page size pins work in (the CPU page size libiopt assumes). */
#define IOPT_ACCESS_PAGE_SIZE	4096u

/* iopt_access_create() flags */
#define IOPT_ACCESS_INTERNAL	(1u << 0)	/* pins lock areas; no callback */

/* iopt_access_pin_pages() and iopt_access_rw() flags */
#define IOPT_ACCESS_RW_WRITE	(1u << 0)	/* the device writes (else reads) */

/**
 * struct iopt_access_driver_ops - what the device driver gives an access.
 * @needs_pin_pages: the driver calls iopt_access_pin_pages(); the access then
 *	needs page-aligned areas and an @unmap callback.
 * @unmap: drop, before returning, every pin that intersects [@iova, @iova +
 *	@length) (@length UINT64_MAX with @iova 0 means "everything"). Called
 *	with no library lock held, from the thread that unmaps, replaces,
 *	detaches or destroys; may call back into the library, but must not
 *	destroy this access. Optional when @needs_pin_pages is false.
 *	@data is the pointer given to iopt_access_create().
 */
struct iopt_access_driver_ops {
	bool needs_pin_pages;
	void (*unmap)(void *data, uint64_t iova, uint64_t length);
};

/**
 * iopt_access_create() - create an unattached access.
 * @ctx: context; borrowed, must outlive the access.
 * @ops: the driver's callbacks, borrowed until destroy; may be NULL only
 *	 with IOPT_ACCESS_INTERNAL.
 * @data: passed to @ops->unmap; borrowed, never dereferenced.
 * @flags: IOPT_ACCESS_INTERNAL or 0. An internal access pins (it needs no
 *	   @ops->needs_pin_pages), has no callback, and its pins make unmap of
 *	   their areas fail with -EBUSY until it unpins.
 * @out: receives the access, owned by the caller.
 *
 * Return: 0; -EOPNOTSUPP (unknown flag); -EINVAL (NULL @ctx or @out, NULL
 * @ops without IOPT_ACCESS_INTERNAL, @needs_pin_pages without @unmap);
 * -ENOMEM. On failure: *@out is untouched.
 */
IOPT_API int iopt_access_create(struct iopt_ctx *ctx,
				const struct iopt_access_driver_ops *ops,
				void *data, unsigned int flags,
				struct iopt_access **out);

/**
 * iopt_access_destroy() - detach if attached, then free the access.
 * @access: the access, or NULL (a no-op).
 *
 * Waits for unmap callbacks in flight on other threads; once it returns no
 * callback runs or will run. Detaching calls @ops->unmap(data, 0,
 * UINT64_MAX) first, so the driver drops every pin.
 * Must not be called from the access's own unmap callback.
 */
IOPT_API void iopt_access_destroy(struct iopt_access *access);

/**
 * iopt_access_id() - Return: the access's object id (> 0, shared id space
 * with IOASes, unique in the process while it lives), or 0 for NULL.
 * @access: the access.
 */
IOPT_API uint32_t iopt_access_id(const struct iopt_access *access);

/**
 * iopt_access_attach() - attach an unattached access to @ioas.
 * @access: the access.
 * @ioas: an IOAS of the same context; borrowed until detach.
 *
 * A pinning or internal access raises @ioas's alignment to a page.
 * Return: 0; -EINVAL (NULL, already attached, another context);
 * -EADDRINUSE (an area of @ioas is not page aligned); -EBUSY (a replace in
 * flight, or 2^16 accesses on @ioas); -ENOMEM.
 */
IOPT_API int iopt_access_attach(struct iopt_access *access,
				struct iopt_ioas *ioas);

/**
 * iopt_access_replace() - move an attached access to @ioas.
 * @access: the access.
 * @ioas: the new IOAS, of the same context; the current one is a no-op.
 *
 * In order: attach to @ioas (failure changes nothing); call @ops->unmap(data,
 * 0, UINT64_MAX), during which new pins and rw fail with -ENOENT while
 * unpins still go to the old IOAS; leave the old IOAS (its alignment drops
 * back). Afterwards pins and rw go to @ioas.
 * Return: 0; -EINVAL (NULL, another context); -ENOENT (not attached);
 * -EBUSY (racing another replace or detach, or @ioas has 2^16 accesses);
 * -EADDRINUSE; -ENOMEM. On failure: still attached to the old IOAS.
 */
IOPT_API int iopt_access_replace(struct iopt_access *access,
				 struct iopt_ioas *ioas);

/**
 * iopt_access_detach() - drop every pin through @ops->unmap(data, 0,
 * UINT64_MAX), then leave the IOAS (its alignment drops back).
 * @access: an attached access; anything else is logged through the
 *	    context's log and ignored (the kernel's WARN).
 */
IOPT_API void iopt_access_detach(struct iopt_access *access);

/**
 * iopt_access_pin_pages() - pin the pages behind [@iova, @iova + @length).
 * @access: an attached pinning or internal access.
 * @iova: first IOVA; its byte must start a page of the memory behind it.
 * @length: bytes, > 0. The range must be covered by back-to-back areas, each
 *	    but the last ending at a page end.
 * @pages_out: receives one host address per page spanned, in IOVA order:
 *	       the page-aligned host address of the pinned page, valid until
 *	       the unpin; may be NULL.
 * @frames_out: receives the simulated frame (iopt/phys.h) of each page;
 *		may be NULL.
 * @flags: IOPT_ACCESS_RW_WRITE when the device will write the pages.
 *
 * Undo with iopt_access_unpin_pages() of exactly (@iova, @length). Pins of
 * one range are counted: two pins need two unpins. Overlapping different
 * ranges are independent.
 * Threads: a pin or unpin of up to 16 pages inside one area a domain holds
 * may take no IOAS lock (docs/locking.md), so, as for iopt_access_rw(),
 * neither may be called from a signal handler that interrupted another call
 * of this thread into the library. A pin in flight when a detach or replace starts completes
 * before the unmap callback is called, or fails with -ENOENT.
 * Return: 0; -EOPNOTSUPP (unknown flag); -EINVAL (NULL access, zero
 * @length, an access that does not pin, an area being unmapped, a page
 * misalignment); -EOVERFLOW (the range wraps); -ENOENT (not attached, a
 * replace in flight, or the range not fully covered); -EPERM (a direction
 * the area's prot forbids, or a write to memory mapped read-only); -EFAULT;
 * -ENOMEM (memory or the memlock limit).
 * On failure: nothing is pinned (pins made before the failing area are
 * undone).
 */
IOPT_API int iopt_access_pin_pages(struct iopt_access *access, uint64_t iova,
				   uint64_t length, void **pages_out,
				   uint64_t *frames_out, unsigned int flags);

/**
 * iopt_access_unpin_pages() - release one iopt_access_pin_pages().
 * @access: the access; during a replace the unpin goes to the old IOAS.
 * @iova: the @iova given to the pin.
 * @length: the @length given to the pin.
 *
 * A range that was not pinned exactly so is a driver bug: one line in the
 * context's log, and nothing is released, not even on the areas whose part
 * of the range matches a pin there (the kernel releases those). Pins are
 * counted per area and per page interval, not per call, so an unpin whose
 * part in every area matches some pin's part there (one area's part of a
 * pin spanning two, say) is taken as valid. Cannot fail.
 */
IOPT_API void iopt_access_unpin_pages(struct iopt_access *access,
				      uint64_t iova, uint64_t length);

/**
 * iopt_access_rw() - copy bytes between @buf and [@iova, @iova + @length).
 * @access: an attached access (any kind).
 * @iova: first IOVA; any byte.
 * @buf: the caller's buffer of @length bytes.
 * @length: bytes, > 0; may cross pages and back-to-back areas.
 * @flags: IOPT_ACCESS_RW_WRITE copies @buf into the IOAS, else out of it.
 * @copied: receives the bytes copied, also on failure; may be NULL.
 *
 * Copies, per area, from the cheapest tier, each reaching the bytes a DMA
 * through a domain would: with a domain attached, straight through the host
 * memory behind the area (the domain's frames are those pages); else through
 * the frames of the pages an access pins, up to the first page none pins;
 * the rest with a fault-checked copy of this process's memory or, for memfd
 * memory, through a temporary pin. No pin outlives the call. The memory
 * mapped must stay mapped while an area covers it (iopt/ioas.h); a pin does
 * not keep an unmapped page reachable (docs/access.md).
 * Threads: any number may call it at once, on one access or many. A copy
 * inside one area a domain holds takes no lock (docs/locking.md), so it
 * must not be called from a signal handler that interrupted another call
 * of this thread into the library.
 * Return: 0; -EOPNOTSUPP (unknown flag); -EINVAL (NULL, zero @length, an
 * area being unmapped); -EOVERFLOW; -ENOENT (not attached, or a gap: the
 * bytes before it are copied); -EPERM (a direction the area's prot forbids,
 * a write to memory mapped read-only); -EFAULT (memory gone); -ENOMEM.
 * On failure: the bytes before the failing area stay copied (*@copied).
 */
IOPT_API int iopt_access_rw(struct iopt_access *access, uint64_t iova,
			    void *buf, uint64_t length, unsigned int flags,
			    uint64_t *copied);

#ifdef __cplusplus
}
#endif

#endif /* IOPT_ACCESS_H */
