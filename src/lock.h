/* SPDX-License-Identifier: MIT */
/*
 * lock.h - mutex and rwlock wrappers with owner tracking and a lock-order check
 * (libiopt's stand-in for the kernel's mutex, rw_semaphore and lockdep).
 *
 * Every lock has a class (enum iopt_lock_class). The classes are totally
 * ordered: a thread may only acquire a lock whose class is strictly greater
 * than the class of every lock it already holds. That is the documented order
 *
 *	access->ioas_lock -> domains_rwsem -> iova_rwsem -> pages->mutex
 *
 * (written once on struct io_pagetable, repeated in docs/locking.md). In debug
 * builds (NDEBUG undefined) each thread keeps a small record of the locks it
 * holds, so an out-of-order acquire, an unlock of a lock the thread does not
 * hold, and iopt_assert_held() on a lock that is not held all abort with a
 * message. In release builds the record and the checks compile away and the
 * wrappers are plain pthread calls.
 *
 * struct iopt_small_mutex is the exception to "plain pthread": a mutex in one
 * 32-bit futex word, 8 bytes with its class, for the object that exists once
 * per mapped area (iopt_pages, up to 10^6 of them), where the 48 bytes of an
 * iopt_mutex are a fifth of the 256-byte heap budget per area (docs/bench.md).
 * In the kernel that lock is a struct mutex, also only a few words. It has
 * the same API, lock classes and checks as iopt_mutex and is annotated for
 * ThreadSanitizer and helgrind (lock.c says how).
 *
 * Two locks of the same class are never held together by one thread (the
 * kernel nests iova_rwsems only in CHANGE_PROCESS, which takes them in id
 * order; a caller that needs that uses iopt_rwlock_write_nested()).
 *
 * pthread errors on these calls can only come from misuse (EDEADLK, EPERM,
 * EINVAL), so they abort instead of returning: lock and unlock cannot fail.
 */
#ifndef IOPT_LOCK_H
#define IOPT_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

enum iopt_lock_class {
	IOPT_LOCK_ACCESS_IOAS = 1,	/* access->ioas_lock */
	IOPT_LOCK_DOMAINS = 2,		/* io_pagetable::domains_rwsem */
	IOPT_LOCK_IOVA = 3,		/* io_pagetable::iova_rwsem */
	IOPT_LOCK_PAGES = 4,		/* iopt_pages::mutex */
	IOPT_LOCK_LEAF = 5,		/* any lock that takes no other lock */
};

/* What the debug record knows about a lock; one byte of class in release. */
struct iopt_lock_dep {
	unsigned char lock_class;
};

struct iopt_mutex {
	pthread_mutex_t mutex;
	struct iopt_lock_dep dep;
};

struct iopt_rwlock {
	pthread_rwlock_t rwlock;
	struct iopt_lock_dep dep;
};

/* 0 unlocked, 1 locked, 2 locked and maybe waited for (see lock.c). */
struct iopt_small_mutex {
	atomic_uint state;
	struct iopt_lock_dep dep;
};

/* The point of the type: the futex word plus the class byte, padded. */
_Static_assert(sizeof(struct iopt_small_mutex) <= 8,
	       "iopt_small_mutex must stay one futex word and its lock class");

void iopt_mutex_init(struct iopt_mutex *m, enum iopt_lock_class lock_class);
void iopt_mutex_destroy(struct iopt_mutex *m);
void iopt_mutex_lock(struct iopt_mutex *m);
void iopt_mutex_unlock(struct iopt_mutex *m);

void iopt_small_mutex_init(struct iopt_small_mutex *m,
			   enum iopt_lock_class lock_class);
void iopt_small_mutex_destroy(struct iopt_small_mutex *m);
void iopt_small_mutex_lock(struct iopt_small_mutex *m);
/* Take it only if it is free, never waiting. Return: whether taken. */
bool iopt_small_mutex_trylock(struct iopt_small_mutex *m);
void iopt_small_mutex_unlock(struct iopt_small_mutex *m);

void iopt_rwlock_init(struct iopt_rwlock *rw, enum iopt_lock_class lock_class);
void iopt_rwlock_destroy(struct iopt_rwlock *rw);
void iopt_rwlock_read(struct iopt_rwlock *rw);
void iopt_rwlock_write(struct iopt_rwlock *rw);
/*
 * Take a second lock of the same class (caller guarantees a global order among
 * them, e.g. IOAS id order). The order check is relaxed for this one acquire.
 */
void iopt_rwlock_write_nested(struct iopt_rwlock *rw);
void iopt_rwlock_unlock(struct iopt_rwlock *rw);

#ifndef NDEBUG
/*
 * iopt_lockdep_assert() - abort unless this thread holds @dep.
 * @dep: the lock's dep member.
 * @write: also require the write (exclusive) side; a mutex is always
 *	   exclusive.
 * @what: the expression, for the message.
 */
void iopt_lockdep_assert(const struct iopt_lock_dep *dep, bool write,
			 const char *what);
/* Number of locks this thread holds (tests check it drops back to 0). */
unsigned int iopt_lockdep_depth(void);
#define iopt_assert_held(l) iopt_lockdep_assert(&(l)->dep, false, #l)
#define iopt_assert_held_write(l) iopt_lockdep_assert(&(l)->dep, true, #l)
#else
#define iopt_assert_held(l) ((void)(l))
#define iopt_assert_held_write(l) ((void)(l))
static inline unsigned int iopt_lockdep_depth(void)
{
	return 0;
}
#endif

#endif /* IOPT_LOCK_H */
