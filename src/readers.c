// SPDX-License-Identifier: MIT
/*
 * readers.c - the reader slots and grace periods of readers.h.
 *
 * A thread claims one of IOPT_READER_SLOTS cache-line slots at its first
 * lock-free read and keeps it until it exits (a pthread key's destructor
 * gives it back), so a section costs two plain stores to a line no other
 * thread writes. A thread that finds every slot taken reads with locks for
 * the rest of its life: correct, only slower.
 *
 * iopt_readers_synchronize() is the expedited membarrier plus a scan of the
 * slots: an odd sequence is a section that may have started before the
 * barrier, and the writer waits until that sequence changes (the section
 * ended; a later one of the same thread already sees the writer's flag).
 * Sections are a lookup and a copy or a small pin, so the wait yields
 * rather than sleeps. With no slot claimed but the writer's own, there is
 * nobody to wait for and no barrier to make (nr_claimed): a single-threaded
 * program pays nothing for the lock-free readers it has.
 */
#include "readers.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static struct iopt_reader_slot slots[IOPT_READER_SLOTS];
static atomic_bool enabled;
static int enable_result;
static pthread_once_t enable_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;

/*
 * Slots claimed by live threads. A writer whose own thread holds the only
 * one, or none, skips the barrier and the scan: no other thread can be in a
 * section, and one that claims a slot after the writer read this count sees
 * the writer's flag, since each side makes its store (the claim, the flag)
 * and then its load across a seq_cst fence (Dekker's again).
 */
static atomic_uint nr_claimed;

#ifndef NDEBUG
atomic_ulong iopt_readers_barriers;
#define barrier_issued() atomic_fetch_add(&iopt_readers_barriers, 1)
#else
#define barrier_issued() ((void)0)
#endif

_Thread_local struct iopt_reader_slot *iopt_reader_self IOPT_READER_TLS;
static _Thread_local bool self_refused;	/* no slot: every one taken, or exiting */

static long membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

/*
 * The key's destructor, on the exiting thread. Other destructors may still
 * call into the library after it, so the thread forgets its slot (and locks
 * from now on) before the slot can be claimed by another thread: two threads
 * on one sequence would let a writer miss a reader, or wait forever.
 */
static void slot_release(void *slot)
{
	iopt_reader_self = NULL;
	self_refused = true;
	atomic_store_explicit(&((struct iopt_reader_slot *)slot)->used, false,
			      memory_order_release);
	atomic_fetch_sub(&nr_claimed, 1);
}

/*
 * Valgrind's tools see neither membarrier's barrier nor why the plain loads
 * of a section cannot race a writer, so under valgrind every read locks.
 */
static void readers_register(void)
{
	enable_result = -ENOSYS;
	if (RUNNING_ON_VALGRIND || pthread_key_create(&slot_key, slot_release))
		return;
	if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
		return;
	enable_result = 0;
	atomic_store_explicit(&enabled, true, memory_order_release);
}

int iopt_readers_enable(void)
{
	pthread_once(&enable_once, readers_register);
	return enable_result;
}

static struct iopt_reader_slot *slot_claim(void)
{
	unsigned int i;

	for (i = 0; i != IOPT_READER_SLOTS; i++) {
		bool free_slot = false;

		if (!atomic_compare_exchange_strong(&slots[i].used, &free_slot,
						    true))
			continue;
		atomic_fetch_add(&nr_claimed, 1);
		/* the claim before this thread's first section's loads */
		atomic_thread_fence(memory_order_seq_cst);
		if (pthread_setspecific(slot_key, &slots[i])) {
			slot_release(&slots[i]);
			break;
		}
		return &slots[i];
	}
	self_refused = true;
	return NULL;
}

struct iopt_reader_slot *iopt_reader_claim(void)
{
	if (self_refused || !atomic_load_explicit(&enabled, memory_order_acquire))
		return NULL;
	iopt_reader_self = slot_claim();
	return iopt_reader_self;
}

void iopt_readers_synchronize(void)
{
	unsigned int i;

	if (!atomic_load_explicit(&enabled, memory_order_acquire))
		return;	/* no section was ever entered */
	/* the caller's flag (fast_excluded, fast_iopt) before the count */
	atomic_thread_fence(memory_order_seq_cst);
	/*
	 * acquire: a thread that gave its slot back did so after its last
	 * section, whose loads must happen before what the caller changes next
	 */
	if (atomic_load_explicit(&nr_claimed, memory_order_acquire) <=
	    (iopt_reader_self ? 1u : 0u))
		return;
	barrier_issued();
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
		/* registered in iopt_readers_enable(): cannot fail after */
		fprintf(stderr, "libiopt: membarrier failed (%d)\n", errno);
		abort();
	}
	for (i = 0; i != IOPT_READER_SLOTS; i++) {
		unsigned int seq = atomic_load_explicit(&slots[i].seq,
							memory_order_acquire);

		if (!(seq & 1))
			continue;
		while (atomic_load_explicit(&slots[i].seq,
					    memory_order_acquire) == seq)
			sched_yield();
	}
}
