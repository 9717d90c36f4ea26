/* SPDX-License-Identifier: MIT */
/*
 * access.h - struct iopt_access for the rest of the library and for tests
 * (the kernel's struct iommufd_access in iommufd_private.h).
 *
 * Two pointers say where an access is attached: @ioas, where pins and rw
 * go, and @ioas_unpin, where unpins go. They are equal except while a
 * replace runs the driver's unmap callback: @ioas is then NULL (new pins get
 * -ENOENT) and @ioas_unpin still the old IOAS, so the callback can unpin.
 * "A replace or detach is in flight" is exactly @ioas != @ioas_unpin.
 *
 * Locking legend:
 *  (l) ioas_lock, an rwlock of class IOPT_LOCK_ACCESS_IOAS, taken before any
 *      io_pagetable lock: pin, unpin and rw hold it for reading (so several
 *      device threads run in parallel; the kernel uses a mutex), attach,
 *      replace and detach for writing, and drop it around the callback;
 *  (u) users_lock, a leaf mutex, with users_cond;
 *  (c) constant after iopt_access_create().
 */
#ifndef IOPT_SRC_ACCESS_H
#define IOPT_SRC_ACCESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iopt/access.h>

#include "lock.h"

struct iopt_ioas;
struct io_pagetable;

/**
 * struct iopt_access - one emulated device's window on an IOAS.
 * @ioas_lock: see the legend.
 * @ioas: (l) the IOAS pins and rw use; NULL unattached or mid-replace.
 * @ioas_unpin: (l) the IOAS unpins use.
 * @fast_iopt: (l written, a) @ioas's io_pagetable for lock-free rw, pin
 *	and unpin (readers.h), NULL while they must lock: unattached, or a
 *	change of IOAS in flight. The io_pagetable counts this access in
 *	nr_fast_readers while it may be set.
 * @list_id: (l) this access's slot in @ioas_unpin's access list.
 * @users_lock: guards @users and @destroying; a leaf, since the unmap path
 *	takes it inside domains_rwsem (iopt_access_ops.tryget).
 * @users_cond: signalled when @users drops to 0 while @destroying.
 * @users: (u) unmap callbacks in flight from io_pagetable notifications.
 * @destroying: (u) set by destroy; notifications then skip the access.
 * @ctx: (c) borrowed; charged one object while the access lives.
 * @ops: (c) the driver's callbacks, NULL for an internal access.
 * @data: (c) the driver's cookie for @ops->unmap.
 * @iova_alignment: (c) IOPT_ACCESS_PAGE_SIZE if it pins, else 1.
 * @internal: (c) pins lock areas (unmap -EBUSY); never called back.
 * @id: (c) object id.
 */
struct iopt_access {
	struct iopt_rwlock ioas_lock;
	struct iopt_ioas *ioas;
	struct iopt_ioas *ioas_unpin;
	uint32_t list_id;
	struct io_pagetable *_Atomic fast_iopt;

	struct iopt_mutex users_lock;
	pthread_cond_t users_cond;
	unsigned int users;
	bool destroying;

	struct iopt_ctx *ctx;
	const struct iopt_access_driver_ops *ops;
	void *data;
	uint64_t iova_alignment;
	bool internal;
	uint32_t id;
};

/*
 * The tiers an iopt_access_rw() copies from, in the order it tries them, as
 * bits of iopt_access_rw_tiers.
 */
#define IOPT_ACCESS_TIER_DOMAIN	(1u << 0)	/* a storage domain: pages->uptr */
#define IOPT_ACCESS_TIER_STORE	(1u << 1)	/* the pin store's frames */
#define IOPT_ACCESS_TIER_PAGES	(1u << 2)	/* iopt_pages_rw_access() */

#ifndef NDEBUG
/*
 * Debug builds, for tests: every tier this thread's rw calls copied bytes
 * from, ORed in since the test last cleared it.
 */
extern _Thread_local unsigned int iopt_access_rw_tiers;
/* Debug builds, for tests: this thread's rw calls served with no lock. */
extern _Thread_local unsigned long iopt_access_rw_lockless;
/* Debug builds, for tests: this thread's pins and unpins done with no lock. */
extern _Thread_local unsigned long iopt_access_pin_lockless;
/* Debug builds, for tests: called inside each lock-free pin's section. */
extern void (*iopt_access_pin_lockless_hook)(void);
#endif

#endif /* IOPT_SRC_ACCESS_H */
