/* SPDX-License-Identifier: MIT */
/*
 * lock.c - pthread wrappers and the per-thread held-lock record (see lock.h).
 *
 * The record is a short stack per thread: the kernel's paths hold at most four
 * io_pagetable locks at once, so a fixed array of 16 is plenty and an overflow
 * is itself a bug worth aborting on. Locks may be released in any order
 * (unmap drops iova_rwsem before domains_rwsem and also the reverse), so
 * release searches the record instead of popping.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lock.h"

static void lock_die(const char *what, int err)
{
	fprintf(stderr, "libiopt: %s failed (%d)\n", what, err);
	abort();
}

#define CHECK_PTHREAD(call)                                                    \
	do {                                                                   \
		int lock_rc_ = (call);                                         \
		if (lock_rc_)                                                  \
			lock_die(#call, lock_rc_);                             \
	} while (0)

#ifndef NDEBUG
#define LOCKDEP_MAX 16

struct held_lock {
	const struct iopt_lock_dep *dep;
	bool write;
};

static _Thread_local struct held_lock held[LOCKDEP_MAX];
static _Thread_local unsigned int nheld;

static void lockdep_fail(const char *msg, const struct iopt_lock_dep *dep)
{
	fprintf(stderr, "libiopt lockdep: %s (lock %p, class %u, %u held)\n",
		msg, (const void *)dep, dep->lock_class, nheld);
	abort();
}

static void lockdep_acquire(const struct iopt_lock_dep *dep, bool write,
			    bool nested)
{
	unsigned int i;

	for (i = 0; i != nheld; i++) {
		if (held[i].dep == dep)
			lockdep_fail("recursive acquire", dep);
		if (held[i].dep->lock_class > dep->lock_class ||
		    (held[i].dep->lock_class == dep->lock_class && !nested))
			lockdep_fail("lock order violation", dep);
	}
	if (nheld == LOCKDEP_MAX)
		lockdep_fail("too many locks held", dep);
	held[nheld++] = (struct held_lock){ .dep = dep, .write = write };
}

static void lockdep_release(const struct iopt_lock_dep *dep)
{
	unsigned int i;

	for (i = 0; i != nheld; i++) {
		if (held[i].dep == dep) {
			held[i] = held[--nheld];
			return;
		}
	}
	lockdep_fail("release of a lock not held", dep);
}

void iopt_lockdep_assert(const struct iopt_lock_dep *dep, bool write,
			 const char *what)
{
	unsigned int i;

	for (i = 0; i != nheld; i++)
		if (held[i].dep == dep && (held[i].write || !write))
			return;
	fprintf(stderr, "libiopt lockdep: %s not held%s\n", what,
		write ? " for writing" : "");
	abort();
}

unsigned int iopt_lockdep_depth(void)
{
	return nheld;
}
#else
static inline void lockdep_acquire(const struct iopt_lock_dep *dep, bool write,
				   bool nested)
{
	(void)dep;
	(void)write;
	(void)nested;
}

static inline void lockdep_release(const struct iopt_lock_dep *dep)
{
	(void)dep;
}
#endif

void iopt_mutex_init(struct iopt_mutex *m, enum iopt_lock_class lock_class)
{
	CHECK_PTHREAD(pthread_mutex_init(&m->mutex, NULL));
	m->dep.lock_class = (unsigned char)lock_class;
}

void iopt_mutex_destroy(struct iopt_mutex *m)
{
	CHECK_PTHREAD(pthread_mutex_destroy(&m->mutex));
}

void iopt_mutex_lock(struct iopt_mutex *m)
{
	lockdep_acquire(&m->dep, true, false);
	CHECK_PTHREAD(pthread_mutex_lock(&m->mutex));
}

void iopt_mutex_unlock(struct iopt_mutex *m)
{
	lockdep_release(&m->dep);
	CHECK_PTHREAD(pthread_mutex_unlock(&m->mutex));
}

void iopt_rwlock_init(struct iopt_rwlock *rw, enum iopt_lock_class lock_class)
{
	pthread_rwlockattr_t attr;

	CHECK_PTHREAD(pthread_rwlockattr_init(&attr));
	/*
	 * Like the kernel's rw_semaphore, a waiting writer holds back new
	 * readers, so a stream of readers (dirty reads, copies) cannot starve
	 * map and unmap.
	 */
	CHECK_PTHREAD(pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP));
	CHECK_PTHREAD(pthread_rwlock_init(&rw->rwlock, &attr));
	CHECK_PTHREAD(pthread_rwlockattr_destroy(&attr));
	rw->dep.lock_class = (unsigned char)lock_class;
}

void iopt_rwlock_destroy(struct iopt_rwlock *rw)
{
	CHECK_PTHREAD(pthread_rwlock_destroy(&rw->rwlock));
}

void iopt_rwlock_read(struct iopt_rwlock *rw)
{
	lockdep_acquire(&rw->dep, false, false);
	CHECK_PTHREAD(pthread_rwlock_rdlock(&rw->rwlock));
}

void iopt_rwlock_write(struct iopt_rwlock *rw)
{
	lockdep_acquire(&rw->dep, true, false);
	CHECK_PTHREAD(pthread_rwlock_wrlock(&rw->rwlock));
}

void iopt_rwlock_write_nested(struct iopt_rwlock *rw)
{
	lockdep_acquire(&rw->dep, true, true);
	CHECK_PTHREAD(pthread_rwlock_wrlock(&rw->rwlock));
}

void iopt_rwlock_unlock(struct iopt_rwlock *rw)
{
	lockdep_release(&rw->dep);
	CHECK_PTHREAD(pthread_rwlock_unlock(&rw->rwlock));
}
