/* SPDX-License-Identifier: MIT */
/*
 * readers.h - lock-free readers of an io_pagetable, and the write side that
 * keeps them out (the part of the kernel's RCU that access rw, pin and
 * unpin need).
 *
 * Why: an access rw of a few bytes is a lookup and a copy, but behind two
 * rwlocks it costs four locked instructions, and each of those waits for
 * every load before it; over 10^5 areas, where the lookup and the copy miss
 * the cache, consecutive reads could not overlap and a read cost several
 * times its loads (docs/access.md). A fast reader instead marks itself in a
 * slot of its own thread, with plain stores only, and a writer that changes
 * what fast readers read first excludes them:
 *
 *	reader				writer (iova_rwsem held for writing)
 *	slot->seq++ (odd)		iopt->fast_excluded = true
 *	if (iopt->fast_excluded) bail	membarrier(): a full barrier on
 *	... plain loads, a memcpy ...	    every thread of the process
 *	slot->seq++ (even)		wait until each odd slot moves on
 *	                                ... change the areas ...
 *	                                iopt->fast_excluded = false
 *
 * membarrier() is the barrier a reader would otherwise need between its
 * store and its load (Dekker's): after it, either the writer sees the
 * reader's odd sequence and waits, or the reader sees the flag and takes
 * the locked path. So readers pay nothing and each write section of an IOAS
 * that has fast readers pays one system call; an IOAS without any pays one
 * test. A section that only adds (a map) leaves them reading and pays
 * nothing (iopt_iova_write_lock_beside_readers()). A reader that bails
 * takes the ordinary locked path, which is always correct, so every
 * failure here (no slot left, no membarrier, running under valgrind, whose
 * tools do not model this) only costs speed.
 *
 * Reader sections must be short (a lookup and one copy, or a small pin or
 * unpin of domain-held pages, which takes pages->mutex only with a trylock)
 * and must not nest or block: a writer waits for them.
 */
#ifndef IOPT_READERS_H
#define IOPT_READERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Slots: threads that may read lock-free at once; the rest take locks. */
#define IOPT_READER_SLOTS 64

struct iopt_reader_slot {
	atomic_uint seq;	/* odd while its thread is inside a section */
	atomic_bool used;	/* claimed by a live thread */
} __attribute__((aligned(64)));	/* one cache line each: no false sharing */

/*
 * iopt_readers_enable() - make lock-free reads possible in this process.
 * Registers for expedited membarrier once. Return: 0, or -ENOSYS when they
 * cannot be (no membarrier, or under valgrind): readers then always bail.
 */
int iopt_readers_enable(void);

/*
 * The calling thread's slot once it has one (readers.c). initial-exec: one
 * load from the thread pointer instead of a __tls_get_addr() call per read
 * in PIC code. A program linked with libiopt (static or shared) or
 * preloading it gets static TLS; a dlopen() of libiopt.so takes these 8
 * bytes from glibc's reserve for such libraries.
 */
#define IOPT_READER_TLS __attribute__((tls_model("initial-exec")))
extern _Thread_local struct iopt_reader_slot *iopt_reader_self IOPT_READER_TLS;

/* The first section of a thread: claim a slot, or NULL (none, or disabled). */
struct iopt_reader_slot *iopt_reader_claim(void);

/*
 * iopt_reader_begin() - enter a section. Return: the calling thread's slot,
 * or NULL when it has none (the caller takes the locked path). Inline: a
 * section is a few dozen instructions, and the fewer they are, the more
 * consecutive reads' cache misses the CPU overlaps.
 */
static inline struct iopt_reader_slot *iopt_reader_begin(void)
{
	struct iopt_reader_slot *slot = iopt_reader_self;
	unsigned int seq;

	if (__builtin_expect(!slot, 0)) {
		slot = iopt_reader_claim();
		if (!slot)
			return NULL;
	}
	seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
	atomic_store_explicit(&slot->seq, seq + 1, memory_order_relaxed);
	/* only the compiler must keep the order: membarrier does the rest */
	atomic_signal_fence(memory_order_seq_cst);
	return slot;
}

/* iopt_reader_end() - leave the section @slot entered. */
static inline void iopt_reader_end(struct iopt_reader_slot *slot)
{
	unsigned int seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);

	/* release: the section's loads happen before a writer sees it even */
	atomic_store_explicit(&slot->seq, seq + 1, memory_order_release);
}

/*
 * iopt_readers_synchronize() - a full barrier on every thread, then wait
 * until no reader is still inside a section it entered before the call.
 * Call after making new sections bail (or no longer find something), and
 * before changing or freeing what old ones may read. Free (one fence) when
 * no thread but the caller's holds a slot.
 */
void iopt_readers_synchronize(void);

#ifndef NDEBUG
/* Debug builds, for tests: the barriers iopt_readers_synchronize() made. */
extern atomic_ulong iopt_readers_barriers;
#endif

#endif /* IOPT_READERS_H */
