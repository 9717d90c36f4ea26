/* SPDX-License-Identifier: MIT */
/*
 * access.c - accesses: emulated devices that pin, read and write IOVA ranges
 * of an IOAS without a domain of their own (the access half of the kernel's
 * device.c). The IOAS side of the unmap protocol (prevent_access, dropping
 * the locks, retrying, -EDEADLOCK, -EBUSY for locking pins) lives in
 * io_pagetable.c; the pin store in pages.c. This file owns the access
 * object, its attachment, and the walk of contiguous areas that turns one
 * IOVA range into per-area pins, unpins and copies.
 *
 * Invariants:
 *  - a pin of [iova, last] is one iopt_area_add_access() per area crossed,
 *    each of the exact index interval that the area's slice of the range
 *    covers; an unpin recomputes the same intervals, which is why it needs
 *    the exact (iova, length) of the pin and the same areas: an area that
 *    holds a pin cannot be unmapped (or cut) until the pin goes;
 *  - every pin goes to access->ioas and every unpin to access->ioas_unpin,
 *    which differ only while a replace or detach runs the driver's callback;
 *  - the driver's callback runs with no library lock held, so it may unpin,
 *    pin and copy on other areas; destroy waits for callbacks in flight.
 *
 * rw picks the cheapest exact tier per area: with a storage domain every
 * page is pinned and one memcpy does (the domain's frames are the host pages
 * behind the pages' address, checked in debug builds); else the frames of
 * the pin store, page by page under pages->mutex so the pins stay; the first
 * page with neither ends the fast part and the rest of that area goes to
 * iopt_pages_rw_access() (a checked copy or a temporary pin).
 *
 * Lock-free sections (readers.h) stand in for ioas_lock and iova_rwsem on
 * the hot paths: an rw inside one area a storage domain holds, and a pin or
 * unpin of up to ACCESS_LOCKLESS_PAGES pages inside one such area while its
 * pages->mutex is free. Anything else, every error included, takes the
 * locked path, so the answers are the same; a change of IOAS waits for the
 * sections before the driver's callback, as it waits for the locks.
 *
 * Vocabulary: "last" inclusive; IOVAs and lengths uint64_t; a range may end
 * at UINT64_MAX, so the code computes last = iova + length - 1 once, checked,
 * and never last + 1.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include <iopt/access.h>
#include <iopt/domain.h>
#include <iopt/phys.h>

#include "access.h"
#include "alloc.h"
#include "ctx.h"
#include "io_pagetable.h"
#include "objid.h"
#include "pages.h"
#include "pfn_store.h"
#include "readers.h"

#define ACCESS_CREATE_FLAGS	IOPT_ACCESS_INTERNAL
#define ACCESS_RW_FLAGS		IOPT_ACCESS_RW_WRITE

_Static_assert(IOPT_ACCESS_PAGE_SIZE == IOPT_PAGE_SIZE,
	       "the public page size is the core's");

/* Pins of up to this many pages need no heap for the frames (fast path). */
#define ACCESS_STACK_FRAMES	16
/*
 * Pins of up to this many pages may run in a lock-free section: a writer
 * spins while a section lasts, and the section's work (store entries and a
 * domain read-back per page) grows with the pages.
 */
#define ACCESS_LOCKLESS_PAGES	ACCESS_STACK_FRAMES

/* ---- what io_pagetable calls (struct iopt_access_ops) ---- */

static void access_table_unmap(void *opaque, uint64_t iova, uint64_t length)
{
	struct iopt_access *access = opaque;

	access->ops->unmap(access->data, iova, length);
}

/* Called under domains_rwsem (read), which keeps the access alive here. */
static bool access_table_tryget(void *opaque)
{
	struct iopt_access *access = opaque;
	bool alive;

	iopt_mutex_lock(&access->users_lock);
	alive = !access->destroying;
	if (alive)
		access->users++;
	iopt_mutex_unlock(&access->users_lock);
	return alive;
}

static void access_table_put(void *opaque)
{
	struct iopt_access *access = opaque;

	iopt_mutex_lock(&access->users_lock);
	if (!--access->users && access->destroying)
		pthread_cond_broadcast(&access->users_cond);
	iopt_mutex_unlock(&access->users_lock);
}

static const struct iopt_access_ops access_table_ops = {
	.unmap = access_table_unmap,
	.tryget = access_table_tryget,
	.put = access_table_put,
};

/* Internal and callback-less accesses are never notified. */
static const struct iopt_access_ops access_table_ops_silent = {
	.tryget = access_table_tryget,
	.put = access_table_put,
};

static bool access_has_callback(const struct iopt_access *access)
{
	return !access->internal && access->ops->unmap;
}

/* ---- the tracing seam of the public entry points ---- */

/*
 * Every public access call that logs returns through here (as ioas_trace()
 * in ioas.c): the place a tracing hook attaches, and the backstop of the
 * refusal log (a refusal no lower layer explained gets one line naming the
 * call and the errno). Calls that cannot fail but may log a driver bug
 * (detach, unpin) come through with 0, so that their line is not taken for
 * the explanation of this thread's next refusal.
 */
static int trace(const char *op, struct iopt_access *access, int rc)
{
	return iopt_ctx_trace(access ? access->ctx : NULL, "access",
			      iopt_access_id(access), op, rc);
}

/* ---- life cycle ---- */

static int access_create(struct iopt_ctx *ctx,
			 const struct iopt_access_driver_ops *ops, void *data,
			 unsigned int flags, struct iopt_access **out)
{
	struct iopt_access *access;
	bool internal = flags & IOPT_ACCESS_INTERNAL;

	if (flags & ~ACCESS_CREATE_FLAGS)
		return -EOPNOTSUPP;
	if (!ctx || !out || (!ops && !internal))
		return -EINVAL;
	if (ops && ops->needs_pin_pages && !ops->unmap && !internal)
		return -EINVAL;

	access = iopt_calloc(1, sizeof(*access));
	if (!access)
		return -ENOMEM;
	iopt_rwlock_init(&access->ioas_lock, IOPT_LOCK_ACCESS_IOAS);
	iopt_mutex_init(&access->users_lock, IOPT_LOCK_LEAF);
	pthread_cond_init(&access->users_cond, NULL);
	access->ctx = ctx;
	access->ops = internal ? NULL : ops;
	access->data = data;
	access->internal = internal;
	access->iova_alignment =
		internal || ops->needs_pin_pages ? IOPT_PAGE_SIZE : 1;
	access->id = iopt_obj_id_alloc();
	iopt_ctx_obj_get(ctx);
	*out = access;
	return 0;
}

uint32_t iopt_access_id(const struct iopt_access *access)
{
	return access ? access->id : 0;
}

/* Let lock-free rw (readers.h) reach access->ioas again. (l) held. */
static void access_publish_fast(struct iopt_access *access)
{
	atomic_store_explicit(&access->fast_iopt,
			      access->ioas ? &access->ioas->iopt : NULL,
			      memory_order_release);
}

/*
 * Move the access from access->ioas to @new_ioas (either may be NULL): the
 * kernel's iommufd_access_change_ioas(). Drops ioas_lock around the driver's
 * callback, so pins see ioas == NULL (-ENOENT) and unpins still reach the
 * old IOAS meanwhile.
 * Locking: ioas_lock held for writing.
 * Return: 0, -EBUSY (another change is in flight), or iopt_add_access()'s
 * error. On failure: nothing changed.
 */
static int access_change_ioas_locked(struct iopt_access *access,
				     struct iopt_ioas *new_ioas)
{
	struct iopt_ioas *cur_ioas = access->ioas;
	uint32_t cur_id = access->list_id;
	uint32_t new_id = 0;
	int rc;

	iopt_assert_held_write(&access->ioas_lock);
	if (cur_ioas != access->ioas_unpin)
		return -EBUSY;
	if (cur_ioas == new_ioas)
		return 0;

	access->ioas = NULL;
	/*
	 * Lock-free pins and rw stop here, and those already in a section
	 * finish before the driver hears of the change, as a locked one
	 * (holding ioas_lock) would: a pin must not land in the old IOAS after
	 * the callback, where the driver could not know of it. They take no
	 * ioas_lock, so waiting for them with it held is safe.
	 */
	atomic_store_explicit(&access->fast_iopt, NULL, memory_order_relaxed);
	if (cur_ioas)
		iopt_readers_synchronize();
	if (new_ioas) {
		rc = iopt_add_access(&new_ioas->iopt, access,
				     access_has_callback(access) ?
					     &access_table_ops :
					     &access_table_ops_silent,
				     access->iova_alignment, &new_id);
		if (rc) {
			access->ioas = cur_ioas;
			access_publish_fast(access);
			return rc;
		}
	}
	if (cur_ioas) {
		if (access_has_callback(access)) {
			iopt_rwlock_unlock(&access->ioas_lock);
			access->ops->unmap(access->data, 0, UINT64_MAX);
			iopt_rwlock_write(&access->ioas_lock);
		}
		iopt_remove_access(&cur_ioas->iopt, cur_id);
	}
	access->ioas = new_ioas;
	access->ioas_unpin = new_ioas;
	access->list_id = new_id;
	access_publish_fast(access);
	return 0;
}

static int access_attach(struct iopt_access *access, struct iopt_ioas *ioas)
{
	int rc;

	if (!access || !ioas || ioas->ctx != access->ctx)
		return -EINVAL;
	iopt_rwlock_write(&access->ioas_lock);
	if (access->ioas) {
		iopt_ctx_log(access->ctx, "access %" PRIu32 ": already attached",
			     access->id);
		rc = -EINVAL;
	} else {
		rc = access_change_ioas_locked(access, ioas);
	}
	iopt_rwlock_unlock(&access->ioas_lock);
	return rc;
}

static int access_replace(struct iopt_access *access, struct iopt_ioas *ioas)
{
	int rc = -ENOENT;

	if (!access || !ioas || ioas->ctx != access->ctx)
		return -EINVAL;
	iopt_rwlock_write(&access->ioas_lock);
	if (access->ioas)
		rc = access_change_ioas_locked(access, ioas);
	iopt_rwlock_unlock(&access->ioas_lock);
	return rc;
}

static void access_detach(struct iopt_access *access)
{
	int rc = -ENOENT;

	if (!access)
		return;
	iopt_rwlock_write(&access->ioas_lock);
	if (access->ioas)
		rc = access_change_ioas_locked(access, NULL);
	iopt_rwlock_unlock(&access->ioas_lock);
	if (rc)
		iopt_ctx_log(access->ctx, "access %" PRIu32 ": detach of an "
			     "access that is not attached (%d)", access->id,
			     rc);
}

void iopt_access_destroy(struct iopt_access *access)
{
	struct iopt_ctx *ctx;

	if (!access)
		return;
	/* No callback starts after this; wait for those already running. */
	iopt_mutex_lock(&access->users_lock);
	access->destroying = true;
	while (access->users)
		pthread_cond_wait(&access->users_cond,
				  &access->users_lock.mutex);
	iopt_mutex_unlock(&access->users_lock);

	if (access->ioas_unpin)
		access_detach(access);

	ctx = access->ctx;
	(void)trace("destroy", access, 0);
	pthread_cond_destroy(&access->users_cond);
	iopt_mutex_destroy(&access->users_lock);
	iopt_rwlock_destroy(&access->ioas_lock);
	iopt_free(access);
	iopt_ctx_obj_put(ctx);
}

/* ---- lock-free sections ---- */

#ifndef NDEBUG
_Thread_local unsigned int iopt_access_rw_tiers;
_Thread_local unsigned long iopt_access_rw_lockless;
_Thread_local unsigned long iopt_access_pin_lockless;
void (*iopt_access_pin_lockless_hook)(void);
#define rw_took(tier) (iopt_access_rw_tiers |= (tier))
#define rw_took_lockless() (iopt_access_rw_lockless++)
#define pin_took_lockless() (iopt_access_pin_lockless++)
#define pin_section_hook()                                                     \
	(iopt_access_pin_lockless_hook ? iopt_access_pin_lockless_hook() :      \
					 (void)0)
#else
#define rw_took(tier) ((void)0)
#define rw_took_lockless() ((void)0)
#define pin_took_lockless() ((void)0)
#define pin_section_hook() ((void)0)
#endif

/*
 * Enter a lock-free reader section (readers.h) on the IOAS that @access pins
 * and rw use, in place of ioas_lock and iova_rwsem (read). A writer on that
 * IOAS waits for the section as for the read side, and a replace or detach
 * stops publishing fast_iopt and waits for the sections before it moves the
 * access or calls its driver, so inside the section the areas found stay
 * published and unsplit, and the access stays on that IOAS, as under the
 * two locks.
 * Return: the io_pagetable, with *@slot to end the section; NULL, with no
 * section, when there is none to use (valgrind, no slot free, a writer at
 * work, a change of IOAS in flight, not attached).
 */
static struct io_pagetable *access_lockless_begin(struct iopt_access *access,
						  struct iopt_reader_slot **slot)
{
	struct io_pagetable *iopt;

	*slot = iopt_reader_begin();
	if (!*slot)
		return NULL;
	iopt = atomic_load_explicit(&access->fast_iopt, memory_order_acquire);
	if (iopt &&
	    !atomic_load_explicit(&iopt->fast_excluded, memory_order_acquire))
		return iopt;
	iopt_reader_end(*slot);
	return NULL;
}

/*
 * The area a lock-free section may serve [iova, last_iova] from: one that
 * holds all of it (a range that wraps holds none) and whose lockless_prot
 * has a bit of @need, so it is published, held by a storage domain and not
 * being unmapped. The domain matters to pins too: their store then fills
 * from it and empties into it, with no registry work and no mlock in the
 * section. NULL sends the call to the locked path, which gives the answer
 * for every other case (errors included). Always inline: the rw's whole
 * section is a few dozen instructions, and a call spills its registers.
 */
static inline __attribute__((always_inline)) struct iopt_area *
lockless_area(struct io_pagetable *iopt, uint64_t iova, uint64_t last_iova,
	      unsigned int need)
{
	struct iopt_area *area = iopt_area_find_lockless(iopt, iova);

	if (!area || last_iova - iova > iopt_area_last_iova(area) - iova ||
	    !(iopt_area_lockless_prot_read(area) & need))
		return NULL;
	return area;
}

/* ---- pin and unpin ---- */

/* The area prot a pin or rw with @flags needs. */
static unsigned int prot_needed(unsigned int flags)
{
	return (flags & IOPT_ACCESS_RW_WRITE) ? IOPT_PROT_WRITE : IOPT_PROT_READ;
}

static bool check_area_prot(const struct iopt_area *area, unsigned int flags)
{
	return area->iommu_prot & prot_needed(flags);
}

/*
 * A pin hands out whole pages, so the slice of this area it uses must start
 * on a page of the memory, and an area that is not the last must end on one.
 */
static bool contig_is_page_aligned(const struct iopt_area_contig_iter *iter)
{
	struct iopt_area *area = iter->area;

	if (iopt_area_start_byte(area, iter->cur_iova) % IOPT_PAGE_SIZE)
		return false;
	return iopt_area_contig_done(iter) ||
	       iopt_area_start_byte(area, iopt_area_last_iova(area)) %
			       IOPT_PAGE_SIZE == IOPT_PAGE_SIZE - 1;
}

/* The index interval of the area's slice of [iter->cur_iova, last_iova]. */
static void contig_indexes(const struct iopt_area_contig_iter *iter,
			   uint64_t last_iova, uint64_t *index,
			   uint64_t *last_index)
{
	struct iopt_area *area = iter->area;

	*index = iopt_area_iova_to_index(area, iter->cur_iova);
	*last_index = iopt_area_iova_to_index(
		area, IOPT_MIN(last_iova, iopt_area_last_iova(area)));
}

/*
 * Apply @op (iopt_area_has_access() to check, iopt_area_remove_access() to
 * release) to the per-area interval of every area of [iova, last_iova],
 * stopping at the first it does not match.
 * Return: whether the range was fully covered and @op matched on every area.
 * Locking: iova_rwsem held (read).
 */
static bool access_unpin_range(struct iopt_access *access,
			       struct io_pagetable *iopt, uint64_t iova,
			       uint64_t last_iova,
			       bool (*op)(struct iopt_area *area,
					  uint64_t index, uint64_t last_index,
					  bool unlock_area))
{
	struct iopt_area_contig_iter iter;
	struct iopt_area *area;
	uint64_t index, last_index;

	iopt_for_each_contig_area(&iter, area, iopt, iova, last_iova) {
		contig_indexes(&iter, last_iova, &index, &last_index);
		if (!op(area, index, last_index, access->internal))
			return false;
	}
	return iopt_area_contig_done(&iter);
}

/*
 * Pin one area's slice; @trylock for a lock-free section (-EAGAIN when the
 * pages are busy). Frames go to @frames_out, or to a stack buffer for small
 * pins so iopt_area_add_access() need not allocate one.
 */
static int access_pin_area(struct iopt_access *access, struct iopt_area *area,
			   uint64_t index, uint64_t last_index,
			   void **pages_out, uint64_t *frames_out,
			   unsigned int flags, bool trylock)
{
	uint64_t stack_frames[ACCESS_STACK_FRAMES];
	unsigned int pages_flags =
		((flags & IOPT_ACCESS_RW_WRITE) ? IOPT_PAGES_RW_WRITE : 0) |
		(trylock ? IOPT_PAGES_TRYLOCK : 0);

	if (!frames_out && last_index - index < ACCESS_STACK_FRAMES)
		frames_out = stack_frames;
	return iopt_area_add_access(area, index, last_index, pages_out,
				    frames_out, pages_flags, access->internal);
}

/*
 * Take ioas_lock (read) and then the iova_rwsem (read) of the IOAS that pins
 * and rw use, or with @for_unpin the one unpins use.
 * Return: that io_pagetable, or NULL with nothing held when there is none
 * (not attached, or a replace is switching IOAS).
 */
static struct io_pagetable *access_lock_iopt(struct iopt_access *access,
					     bool for_unpin)
{
	struct iopt_ioas *ioas;

	iopt_rwlock_read(&access->ioas_lock);
	ioas = for_unpin ? access->ioas_unpin : access->ioas;
	if (!ioas) {
		iopt_rwlock_unlock(&access->ioas_lock);
		return NULL;
	}
	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	return &ioas->iopt;
}

static void access_unlock_iopt(struct iopt_access *access,
			       struct io_pagetable *iopt)
{
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	iopt_rwlock_unlock(&access->ioas_lock);
}

/* The range checks pin, unpin and rw share, in the kernel's order. */
static int check_range(uint64_t iova, uint64_t length, uint64_t *last_iova)
{
	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, last_iova))
		return -EOVERFLOW;
	return 0;
}

/*
 * The argument checks pin and rw share, in the kernel's order. @args_ok is
 * the caller's own argument check. On success *@last_iova is the range's
 * last IOVA.
 */
static int access_check_args(const struct iopt_access *access, bool args_ok,
			     uint64_t iova, uint64_t length,
			     unsigned int flags, uint64_t *last_iova)
{
	if (flags & ~ACCESS_RW_FLAGS)
		return -EOPNOTSUPP;
	if (!access || !args_ok)
		return -EINVAL;
	return check_range(iova, length, last_iova);
}

/*
 * access_check_args(), then access_lock_iopt(). On success *@iopt is
 * locked and *@last_iova the range's last IOVA.
 */
static int access_begin(struct iopt_access *access, bool args_ok,
			uint64_t iova, uint64_t length, unsigned int flags,
			uint64_t *last_iova, struct io_pagetable **iopt)
{
	int rc = access_check_args(access, args_ok, iova, length, flags,
				   last_iova);

	if (rc)
		return rc;
	*iopt = access_lock_iopt(access, false);
	return *iopt ? 0 : -ENOENT;
}

/*
 * A small pin inside one area a domain holds, in a lock-free section: the
 * common one-page pin of a device model, without the four lock operations
 * of the locked path's (about a sixth of a pin + unpin). The pin itself is
 * the locked path's, but it takes pages->mutex only if it is free: the
 * mutex can be held for a whole area's fill, and writers on every IOAS with
 * accesses wait for the section. The arguments are checked already.
 * Return: whether it was taken here, with the result in *@rc; false for the
 * locked path to do (and explain) instead.
 */
static bool access_pin_lockless(struct iopt_access *access, uint64_t iova,
				uint64_t last_iova, void **pages_out,
				uint64_t *frames_out, unsigned int flags,
				int *rc)
{
	struct iopt_reader_slot *slot;
	struct io_pagetable *iopt;
	struct iopt_area *area;
	bool taken;

	if (last_iova - iova >= ACCESS_LOCKLESS_PAGES * IOPT_PAGE_SIZE)
		return false;
	iopt = access_lockless_begin(access, &slot);
	if (!iopt)
		return false;
	area = lockless_area(iopt, iova, last_iova, prot_needed(flags));
	taken = area && !(iopt_area_start_byte(area, iova) % IOPT_PAGE_SIZE);
	if (taken) {
		pin_section_hook();
		*rc = access_pin_area(access, area,
				      iopt_area_iova_to_index(area, iova),
				      iopt_area_iova_to_index(area, last_iova),
				      pages_out, frames_out, flags, true);
		taken = *rc != -EAGAIN;
	}
	if (taken)
		pin_took_lockless();
	iopt_reader_end(slot);
	return taken;
}

/* The locked pin, of arguments checked already. */
static int access_pin_pages(struct iopt_access *access, uint64_t iova,
			    uint64_t last_iova, void **pages_out,
			    uint64_t *frames_out, unsigned int flags)
{
	struct iopt_area_contig_iter iter;
	struct io_pagetable *iopt;
	struct iopt_area *area;
	uint64_t index, last_index, done = 0;
	int rc;

	iopt = access_lock_iopt(access, false);
	if (!iopt)
		return -ENOENT;
	iopt_for_each_contig_area(&iter, area, iopt, iova, last_iova) {
		if (area->prevent_access || !contig_is_page_aligned(&iter)) {
			rc = -EINVAL;
			goto err_unpin;
		}
		if (!check_area_prot(area, flags)) {
			rc = -EPERM;
			goto err_unpin;
		}
		contig_indexes(&iter, last_iova, &index, &last_index);
		rc = access_pin_area(access, area, index, last_index,
				     pages_out ? pages_out + done : NULL,
				     frames_out ? frames_out + done : NULL,
				     flags, false);
		if (rc)
			goto err_unpin;
		done += last_index - index + 1;
	}
	if (!iopt_area_contig_done(&iter)) {
		rc = -ENOENT;
		goto err_unpin;
	}
	access_unlock_iopt(access, iopt);
	return 0;

err_unpin:
	/* iter.cur_iova is the first IOVA this call did not pin. */
	if (iova < iter.cur_iova) {
		bool undone = access_unpin_range(access, iopt, iova,
						 iter.cur_iova - 1,
						 iopt_area_remove_access);

		assert(undone);
		(void)undone;
	}
	access_unlock_iopt(access, iopt);
	return rc;
}

/*
 * Release the pins of [iova, last_iova] only if every area's slice matches:
 * check them all, then release. A range inside one area (unpin of a page,
 * the hot path) is one lookup and no check pass: iopt_area_remove_access()
 * is all or nothing on its own.
 */
static bool access_unpin_all_or_nothing(struct iopt_access *access,
					struct io_pagetable *iopt,
					uint64_t iova, uint64_t last_iova)
{
	struct iopt_area_contig_iter iter;
	struct iopt_area *area;
	uint64_t index, last_index;

	area = iopt_area_contig_init(&iter, iopt, iova, last_iova);
	if (!area)
		return false;
	if (iopt_area_contig_done(&iter)) {
		contig_indexes(&iter, last_iova, &index, &last_index);
		return iopt_area_remove_access(area, index, last_index,
					       access->internal);
	}
	return access_unpin_range(access, iopt, iova, last_iova,
				  iopt_area_has_access) &&
	       access_unpin_range(access, iopt, iova, last_iova,
				  iopt_area_remove_access);
}

/*
 * A small unpin inside one area a domain holds, in a lock-free section, on
 * the terms of access_pin_lockless() (a pin starts on a page, so an unpin
 * that matches one spans no more pages than the bound). A replace in
 * flight (when unpins go to ioas_unpin) has no fast_iopt, so this never
 * sees it. Return: whether the pin was found and released; false changes
 * nothing and leaves the call to the locked path.
 */
static bool access_unpin_lockless(struct iopt_access *access, uint64_t iova,
				  uint64_t last_iova)
{
	struct iopt_reader_slot *slot;
	struct io_pagetable *iopt;
	struct iopt_area *area;
	bool released;

	if (last_iova - iova >= ACCESS_LOCKLESS_PAGES * IOPT_PAGE_SIZE)
		return false;
	iopt = access_lockless_begin(access, &slot);
	if (!iopt)
		return false;
	area = lockless_area(iopt, iova, last_iova,
			     IOPT_PROT_READ | IOPT_PROT_WRITE);
	released = area && iopt_area_try_remove_access(
				   area, iopt_area_iova_to_index(area, iova),
				   iopt_area_iova_to_index(area, last_iova),
				   access->internal) == 1;
	if (released)
		pin_took_lockless();
	iopt_reader_end(slot);
	return released;
}

/*
 * The kernel releases whatever areas of the range match and WARNs; here a
 * range that does not match exactly, on every area, changes nothing, so a
 * driver's wrong length cannot release some areas' pins and keep others'.
 * Both passes run under one iova_rwsem read side, so the areas stay; only
 * another unpin of the same interval racing this one (a second driver bug)
 * can make the release pass miss after the check passed.
 */
static void access_unpin_pages(struct iopt_access *access, uint64_t iova,
			       uint64_t length)
{
	struct io_pagetable *iopt;
	uint64_t last_iova;
	bool matched;

	if (!access)
		return;
	if (check_range(iova, length, &last_iova)) {
		iopt_ctx_log(access->ctx, "access %" PRIu32 ": unpin of a bad "
			     "range 0x%" PRIx64 "+0x%" PRIx64, access->id,
			     iova, length);
		return;
	}
	if (access_unpin_lockless(access, iova, last_iova))
		return;

	iopt = access_lock_iopt(access, true);
	if (!iopt) {
		iopt_ctx_log(access->ctx, "access %" PRIu32 ": unpin while "
			     "not attached", access->id);
		return;
	}
	matched = access_unpin_all_or_nothing(access, iopt, iova, last_iova);
	access_unlock_iopt(access, iopt);
	if (!matched)
		iopt_ctx_log(access->ctx, "access %" PRIu32 ": unpin of "
			     "0x%" PRIx64 "+0x%" PRIx64 " that matches no pin",
			     access->id, iova, length);
}

/* ---- rw ---- */

/*
 * Device registers and descriptor fields are 1, 2, 4 or 8 bytes: copied as
 * one move each instead of a call into memcpy's size dispatch.
 */
static inline void copy_bytes(char *mem, char *buf, uint64_t n,
			      unsigned int flags)
{
	char *dst = (flags & IOPT_ACCESS_RW_WRITE) ? mem : buf;
	const char *src = (flags & IOPT_ACCESS_RW_WRITE) ? buf : mem;

	switch (n) {
	case 8:
		memcpy(dst, src, 8);
		break;
	case 4:
		memcpy(dst, src, 4);
		break;
	case 2:
		memcpy(dst, src, 2);
		break;
	case 1:
		*dst = *src;
		break;
	default:
		memcpy(dst, src, n);
	}
}

/*
 * The domain tier without a walk per page: the frames a storage domain
 * translates to are the pin registry's frames of the host pages at
 * pages->uptr, so the bytes at uptr + start_byte are the ones a DMA through
 * the domain would reach. Debug builds check that against iova_to_phys.
 */
static char *domain_host_byte(struct iopt_area *area, uint64_t iova)
{
	char *mem = area->host + (iova - iopt_area_iova(area));

	assert(mem == (char *)area->pages->uptr +
			      iopt_area_start_byte(area, iova));

	assert(iopt_phys_to_host(area->storage_domain->ops->iova_to_phys(
		       area->storage_domain, iova)) == mem);
	return mem;
}

/*
 * Copy the leading pages of [iova, iova + length) in @area that the pin
 * store holds, through their frames. Return: bytes copied; less than
 * @length at the first page no access pins.
 */
static uint64_t access_rw_store(struct iopt_area *area, uint64_t iova,
				char *buf, uint64_t length, unsigned int flags)
{
	struct iopt_pages *pages = area->pages;
	uint64_t done = 0, frame;

	iopt_pages_lock(pages);
	while (pages->pins && done != length) {
		uint64_t start_byte = iopt_area_start_byte(area, iova + done);
		uint64_t offset = start_byte % IOPT_PAGE_SIZE;
		uint64_t n = IOPT_MIN(length - done, IOPT_PAGE_SIZE - offset);
		char *mem;

		if (!iopt_pfn_store_load(&pages->pins->pinned_pfns,
					 start_byte / IOPT_PAGE_SIZE, &frame))
			break;
		mem = iopt_phys_to_host(frame << IOPT_PHYS_FRAME_SHIFT);
		copy_bytes(mem + offset, buf + done, n, flags);
		done += n;
	}
	iopt_pages_unlock(pages);
	return done;
}

/*
 * Copy [iova, iova + length), inside @area, from the cheapest tier: a
 * storage domain (every page pinned), else the pin store page by page, else
 * iopt_pages_rw_access() for the rest. *@done receives the bytes known
 * copied.
 *
 * area->storage_domain is guarded by pages->mutex, but it only changes
 * between NULL and non-NULL under iova_rwsem held for writing (domain attach
 * and detach) or while the area is unpublished (map, unmap), so for a
 * published area it is stable under our iova_rwsem read side.
 * Locking: iova_rwsem held (read).
 */
static int access_rw_area(struct iopt_area *area, uint64_t iova, char *buf,
			  uint64_t length, unsigned int flags, uint64_t *done)
{
	struct iopt_pages *pages = area->pages;
	int rc;

	iopt_assert_held(&area->iopt->iova_rwsem);
	*done = 0;
	/* a WRITE area has writable pages: check_area_prot() said enough */
	assert(!(flags & IOPT_ACCESS_RW_WRITE) || pages->writable);
	if (area->storage_domain) {
		rw_took(IOPT_ACCESS_TIER_DOMAIN);
		copy_bytes(domain_host_byte(area, iova), buf, length, flags);
		*done = length;
		return 0;
	}
	*done = access_rw_store(area, iova, buf, length, flags);
	if (*done)
		rw_took(IOPT_ACCESS_TIER_STORE);
	if (*done == length)
		return 0;
	rw_took(IOPT_ACCESS_TIER_PAGES);
	rc = iopt_pages_rw_access(pages, iopt_area_start_byte(area, iova + *done),
				  buf + *done, length - *done,
				  (flags & IOPT_ACCESS_RW_WRITE) ?
					  IOPT_PAGES_RW_WRITE : 0);
	if (!rc)
		*done = length;
	return rc;
}

/*
 * rw with no lock (readers.h): [iova, iova + length) inside one published
 * area that a storage domain holds, so every byte is pinned and sits at
 * pages->uptr + start byte (domain_host_byte()). Anything else (an error to
 * report, several areas, another tier, a writer at work on the IOAS, a
 * change of IOAS in flight) returns false, and the locked path decides.
 */
static bool access_rw_lockless(struct iopt_access *access, uint64_t iova,
			       void *buf, uint64_t length, unsigned int flags)
{
	struct iopt_reader_slot *slot;
	struct io_pagetable *iopt;
	struct iopt_area *area;
	bool done = false;

	if (!access || !buf || !length || (flags & ~ACCESS_RW_FLAGS))
		return false;
	iopt = access_lockless_begin(access, &slot);
	if (!iopt)
		return false;
	area = lockless_area(iopt, iova, iova + length - 1, prot_needed(flags));
	if (!area)
		goto out;
	rw_took(IOPT_ACCESS_TIER_DOMAIN);
	rw_took_lockless();
	copy_bytes(domain_host_byte(area, iova), buf, length, flags);
	done = true;
out:
	iopt_reader_end(slot);
	return done;
}

/* noinline: its frame and spills would otherwise tax the lock-free path */
static __attribute__((noinline)) int
access_rw(struct iopt_access *access, uint64_t iova, void *buf,
	  uint64_t length, unsigned int flags, uint64_t *copied)
{
	struct iopt_area_contig_iter iter;
	struct io_pagetable *iopt;
	struct iopt_area *area;
	uint64_t last_iova, done = 0, area_done;
	int rc;

	if (copied)
		*copied = 0;
	rc = access_begin(access, buf != NULL, iova, length, flags, &last_iova,
			  &iopt);
	if (rc)
		return rc;
	iopt_for_each_contig_area(&iter, area, iopt, iova, last_iova) {
		uint64_t last = IOPT_MIN(last_iova, iopt_area_last_iova(area));

		if (area->prevent_access) {
			rc = -EINVAL;
			goto out_unlock;
		}
		if (!check_area_prot(area, flags)) {
			rc = -EPERM;
			goto out_unlock;
		}
		rc = access_rw_area(area, iter.cur_iova, (char *)buf + done,
				    last - iter.cur_iova + 1, flags, &area_done);
		done += area_done;
		if (rc)
			goto out_unlock;
	}
	if (!iopt_area_contig_done(&iter))
		rc = -ENOENT;
out_unlock:
	access_unlock_iopt(access, iopt);
	if (copied)
		*copied = done;
	return rc;
}

/* ---- the public entry points that return through the seam ---- */

int iopt_access_create(struct iopt_ctx *ctx,
		       const struct iopt_access_driver_ops *ops, void *data,
		       unsigned int flags, struct iopt_access **out)
{
	return iopt_ctx_trace(ctx, "access", 0, "create",
			      access_create(ctx, ops, data, flags, out));
}

int iopt_access_attach(struct iopt_access *access, struct iopt_ioas *ioas)
{
	return trace("attach", access, access_attach(access, ioas));
}

int iopt_access_replace(struct iopt_access *access, struct iopt_ioas *ioas)
{
	return trace("replace", access, access_replace(access, ioas));
}

int iopt_access_pin_pages(struct iopt_access *access, uint64_t iova,
			  uint64_t length, void **pages_out,
			  uint64_t *frames_out, unsigned int flags)
{
	uint64_t last_iova;
	int rc;

	/* An access that does not pin is a driver bug (kernel test builds). */
	rc = access_check_args(access,
			       access && access->iova_alignment == IOPT_PAGE_SIZE,
			       iova, length, flags, &last_iova);
	if (!rc && !access_pin_lockless(access, iova, last_iova, pages_out,
					frames_out, flags, &rc))
		rc = access_pin_pages(access, iova, last_iova, pages_out,
				      frames_out, flags);
	return trace("pin_pages", access, rc);
}

int iopt_access_rw(struct iopt_access *access, uint64_t iova, void *buf,
		   uint64_t length, unsigned int flags, uint64_t *copied)
{
	if (access_rw_lockless(access, iova, buf, length, flags)) {
		if (copied)
			*copied = length;
		return trace("rw", access, 0);
	}
	return trace("rw", access,
		     access_rw(access, iova, buf, length, flags, copied));
}

void iopt_access_detach(struct iopt_access *access)
{
	access_detach(access);
	(void)trace("detach", access, 0);
}

void iopt_access_unpin_pages(struct iopt_access *access, uint64_t iova,
			     uint64_t length)
{
	access_unpin_pages(access, iova, length);
	(void)trace("unpin_pages", access, 0);
}
