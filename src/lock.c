/* SPDX-License-Identifier: MIT */
/*
 * lock.c - pthread wrappers and the per-thread held-lock record (see lock.h).
 *
 * The record is a short stack per thread: the kernel's paths hold at most four
 * io_pagetable locks at once, so a fixed array of 16 is plenty and an overflow
 * is itself a bug worth aborting on. Locks may be released in any order
 * (unmap drops iova_rwsem before domains_rwsem and also the reverse), so
 * release searches the record instead of popping.
 *
 * The small mutex (end of file) is the only lock here not built on pthread;
 * its design is described above its code.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"

/*
 * Race detectors know pthread locks but not a hand-made futex lock, which
 * they would see as a plain word touched by every thread, ordering nothing.
 * The annotations below tell them "this is a mutex, acquired or released
 * here". TSan's exist only in a TSan build. Helgrind's are valgrind client
 * requests, a few no-op instructions outside valgrind, so they stay in every
 * build where the header is found (NVALGRIND compiles them out), and a build
 * without valgrind's headers gets none.
 */
#if defined(__SANITIZE_THREAD__)
#define LOCK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOCK_TSAN 1
#endif
#endif

#ifdef LOCK_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_annotate(call) call
#else
#define tsan_annotate(call) ((void)0)
#endif

#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#define LOCK_HELGRIND 1
#endif
#endif

#ifndef LOCK_HELGRIND
#define VALGRIND_HG_MUTEX_INIT_POST(m, rec) ((void)0)
#define VALGRIND_HG_MUTEX_LOCK_PRE(m, try) ((void)0)
#define VALGRIND_HG_MUTEX_LOCK_POST(m) ((void)0)
#define VALGRIND_HG_MUTEX_UNLOCK_PRE(m) ((void)0)
#define VALGRIND_HG_MUTEX_UNLOCK_POST(m) ((void)0)
#define VALGRIND_HG_MUTEX_DESTROY_PRE(m) ((void)0)
#define VALGRIND_HG_DISABLE_CHECKING(p, len) ((void)0)
#define VALGRIND_HG_ENABLE_CHECKING(p, len) ((void)0)
#endif

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

/*
 * The small mutex: Drepper's three-state futex mutex ("Futexes Are Tricky",
 * mutex2). It exists for struct iopt_pages, one per mapped area, where a
 * pthread_mutex_t is 40 of the bytes an area may cost (lock.h).
 *
 * State 0 is unlocked, 1 locked with nobody asleep, 2 locked and maybe
 * waited for. Two states would do for exclusion, but then unlock could not
 * tell whether anyone sleeps and would pay a FUTEX_WAKE every time. With
 * three, the uncontended lock is one cmpxchg 0 -> 1 and the uncontended
 * unlock one xchg that finds 1: no syscall. A thread that finds the lock
 * held swaps in 2 before it sleeps, so the unlock that sees 2 knows it must
 * wake one. A woken thread takes the lock as 2, not 1, since it cannot know
 * whether others still sleep: it risks one needless wake, never a lost one.
 *
 * Acquire on every swap that may take the lock, release on the unlock swap,
 * as any mutex. No spinning and no fairness: a waiter sleeps at once and a
 * new arrival may overtake it, like a default pthread mutex.
 */
static void small_mutex_wait(struct iopt_small_mutex *m)
{
	/* EAGAIN: the word was no longer 2 at sleep time; EINTR: a signal */
	if (syscall(SYS_futex, &m->state, FUTEX_WAIT_PRIVATE, 2u, NULL, NULL,
		    0) && errno != EAGAIN && errno != EINTR)
		lock_die("FUTEX_WAIT", errno);
}

/*
 * The unlock swap may let another thread take, release and free the mutex
 * before this wake: the address is then freed or reused memory. A stray
 * wake is harmless (every waiter re-checks the word) and EFAULT, memory
 * unmapped meanwhile, means nobody can be waiting there.
 */
static void small_mutex_wake(struct iopt_small_mutex *m)
{
	if (syscall(SYS_futex, &m->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
		    0) < 0 && errno != EFAULT)
		lock_die("FUTEX_WAKE", errno);
}

/* Contended: mark the word "waited for" and sleep until a swap finds 0. */
static void small_mutex_lock_slow(struct iopt_small_mutex *m, unsigned int c)
{
	if (c != 2)
		c = atomic_exchange_explicit(&m->state, 2, memory_order_acquire);
	while (c) {
		small_mutex_wait(m);
		c = atomic_exchange_explicit(&m->state, 2, memory_order_acquire);
	}
}

void iopt_small_mutex_init(struct iopt_small_mutex *m,
			   enum iopt_lock_class lock_class)
{
	atomic_init(&m->state, 0);
	m->dep.lock_class = (unsigned char)lock_class;
	/*
	 * The word is synchronization, not data: helgrind must not judge it.
	 * Helgrind 3.19 happens not to flag it (it counts an atomic
	 * read-modify-write as a read, and every access after this one is
	 * one), but that is an implementation detail to not lean on.
	 */
	VALGRIND_HG_DISABLE_CHECKING(&m->state, sizeof(m->state));
	VALGRIND_HG_MUTEX_INIT_POST(m, 0);
	tsan_annotate(__tsan_mutex_create(m, 0));
}

void iopt_small_mutex_destroy(struct iopt_small_mutex *m)
{
	/* pthread_mutex_destroy() says EBUSY for this; a locked one is misuse */
	if (atomic_load_explicit(&m->state, memory_order_relaxed))
		lock_die("iopt_small_mutex_destroy (mutex is locked)", EBUSY);
	tsan_annotate(__tsan_mutex_destroy(m, 0));
	VALGRIND_HG_MUTEX_DESTROY_PRE(m);
	/* the memory may be reused as something else: check it again */
	VALGRIND_HG_ENABLE_CHECKING(&m->state, sizeof(m->state));
}

void iopt_small_mutex_lock(struct iopt_small_mutex *m)
{
	unsigned int c = 0;

	lockdep_acquire(&m->dep, true, false);
	tsan_annotate(__tsan_mutex_pre_lock(m, 0));
	VALGRIND_HG_MUTEX_LOCK_PRE(m, 0);
	if (!atomic_compare_exchange_strong_explicit(&m->state, &c, 1,
						     memory_order_acquire,
						     memory_order_relaxed))
		small_mutex_lock_slow(m, c);
	VALGRIND_HG_MUTEX_LOCK_POST(m);
	tsan_annotate(__tsan_mutex_post_lock(m, 0, 0));
}

/*
 * Never waits, so it cannot deadlock; the order check is made all the same,
 * so that what a trylock holds obeys the rules every later lock checks.
 */
bool iopt_small_mutex_trylock(struct iopt_small_mutex *m)
{
	unsigned int c = 0;

	tsan_annotate(__tsan_mutex_pre_lock(m, __tsan_mutex_try_lock));
	VALGRIND_HG_MUTEX_LOCK_PRE(m, 1);
	if (!atomic_compare_exchange_strong_explicit(&m->state, &c, 1,
						     memory_order_acquire,
						     memory_order_relaxed)) {
		tsan_annotate(__tsan_mutex_post_lock(
			m, __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed,
			0));
		return false;
	}
	VALGRIND_HG_MUTEX_LOCK_POST(m);
	tsan_annotate(__tsan_mutex_post_lock(m, __tsan_mutex_try_lock, 0));
	lockdep_acquire(&m->dep, true, false);
	return true;
}

void iopt_small_mutex_unlock(struct iopt_small_mutex *m)
{
	unsigned int old;

	lockdep_release(&m->dep);
	tsan_annotate(__tsan_mutex_pre_unlock(m, 0));
	VALGRIND_HG_MUTEX_UNLOCK_PRE(m);
	old = atomic_exchange_explicit(&m->state, 0, memory_order_release);
	if (old == 2)
		small_mutex_wake(m);
	else if (old != 1)
		lock_die("iopt_small_mutex_unlock (mutex not locked)", EPERM);
	VALGRIND_HG_MUTEX_UNLOCK_POST(m);
	tsan_annotate(__tsan_mutex_post_unlock(m, 0));
}
