/* SPDX-License-Identifier: MIT */
/*
 * phys.h - the frame table's interface to the pin registry (src/pin.c).
 *
 * The registry decides when a host page needs a frame; this module decides which
 * frame, by contiguity model, and keeps frame -> host for iopt_phys_to_host().
 * Two kinds of reservation exist:
 * - a chunk, for one 2 MiB host chunk under CONTIGUOUS or FOLIO: 512 frames,
 *   2 MiB-aligned, where page i of the host chunk uses frame base + i (linear),
 *   or every other frame of 1024 (strided, FOLIO over 4 KiB host pages); page i
 *   resolves while the registry's bitmap says it is pinned;
 * - a single frame under SCATTERED, which resolves from its reservation to its
 *   release.
 *
 * Vocabulary: a "frame" is a simulated PFN (paddr >> 12); a "host chunk" is a
 * host address >> 21.
 *
 * Locking: one mutex, iopt_phys_lock(), guards the frame table and, because every
 * registry change assigns or frees frames, the pin registry too. Every _locked
 * function needs it; iopt_phys_to_host() needs nothing.
 */
#ifndef IOPT_SRC_PHYS_H
#define IOPT_SRC_PHYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/phys.h>

#define IOPT_PHYS_CHUNK_SHIFT	9	/* frames per chunk: 2 MiB */
#define IOPT_PHYS_CHUNK_FRAMES	(1u << IOPT_PHYS_CHUNK_SHIFT)
#define IOPT_PHYS_GIG_SHIFT	18	/* frames per gig: 1 GiB */

void iopt_phys_lock(void);
void iopt_phys_unlock(void);

#define IOPT_PHYS_CHUNK_WORDS	(IOPT_PHYS_CHUNK_FRAMES / 64)

/**
 * struct iopt_phys_chunk - how the frames of one registry chunk resolve.
 * @host_base: host address of the chunk's page 0.
 * @pinned: the registry's bitmap of the chunk's 512 pages: bit i is set exactly
 *	    while page i is pinned.
 * @frame_base: frame of page 0; set by iopt_phys_chunk_reserve_locked().
 * @shift: page i uses frame @frame_base + (i << @shift): 0 for a linear chunk
 *	   (512 frames, one run), 1 for a strided one (every other frame of
 *	   1024, so no two pages are adjacent: 4 KiB folios); set by the reserve.
 *
 * Lives inside the registry's own per-chunk record, so a chunk costs the frame
 * table one pointer per 2 MiB of frames and pinning writes nothing here per
 * page. The caller fills @host_base and @pinned before the reserve; everything
 * stays constant until iopt_phys_chunk_release_locked(). The bitmap words are
 * written with relaxed atomic stores under the lock and read lock-free by
 * iopt_phys_to_host().
 */
struct iopt_phys_chunk {
	uintptr_t host_base;
	const _Atomic uint64_t *pinned;
	uint64_t frame_base;
	unsigned int shift;
};

/**
 * iopt_phys_chunk_reserve_locked() - reserve the frames of one host chunk.
 * @model: IOPT_PHYS_CONTIGUOUS or IOPT_PHYS_FOLIO.
 * @host_huge: the chunk is one 2 MiB host page (THP or hugetlbfs); FOLIO gives
 *	       a linear chunk then and a strided one otherwise, CONTIGUOUS
 *	       ignores it.
 * @host_chunk: host address >> 21 of the chunk.
 * @run_last_chunk: last host chunk of the range being pinned (>= @host_chunk);
 *		    CONTIGUOUS keeps room for the whole range to stay one run.
 * @chunk: resolution record, borrowed until the release; receives frame_base
 *	   (a multiple of 512) and shift.
 *
 * CONTIGUOUS gives a linear chunk with frame_base % 2^18 == (@host_chunk % 512)
 * * 512, from the frame gig mirroring @host_chunk's host gig, and mirrors
 * neighbouring host gigs on neighbouring frame gigs when it can. FOLIO's chunks,
 * linear or strided, are adjacent to no other reserved frame.
 *
 * Return: 0; -ENOMEM when out of memory or out of simulated frames.
 * On failure: nothing changes.
 * Locking: iopt_phys_lock() held.
 */
int iopt_phys_chunk_reserve_locked(enum iopt_phys_model model, bool host_huge,
				   uint64_t host_chunk, uint64_t run_last_chunk,
				   struct iopt_phys_chunk *chunk);

/**
 * iopt_phys_chunk_release_locked() - undo iopt_phys_chunk_reserve_locked().
 * @chunk: as reserved; its frames stop resolving.
 * Locking: iopt_phys_lock() held.
 */
void iopt_phys_chunk_release_locked(struct iopt_phys_chunk *chunk);

/**
 * iopt_phys_frame_reserve_locked() - reserve one scattered frame for @host.
 * @host: page-aligned host address the frame resolves to from now on.
 * @frame: receives the frame; it resolves to @host on return.
 *
 * Return: 0, or -ENOMEM. On failure: nothing changes.
 * Locking: iopt_phys_lock() held.
 */
int iopt_phys_frame_reserve_locked(void *host, uint64_t *frame);

/**
 * iopt_phys_frame_release_locked() - stop resolving and free a scattered frame.
 * Locking: iopt_phys_lock() held.
 */
void iopt_phys_frame_release_locked(uint64_t frame);

/**
 * iopt_phys_bytes_locked() - Return: heap bytes the frame table uses now.
 * Locking: iopt_phys_lock() held.
 */
size_t iopt_phys_bytes_locked(void);

#endif /* IOPT_SRC_PHYS_H */
