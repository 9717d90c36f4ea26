/* SPDX-License-Identifier: MIT */
/*
 * iopt/phys.h - simulated physical memory: the frame table.
 *
 * Output addresses of every domain are simulated physical addresses, never host
 * pointers. A frame is 4 KiB: frame number = paddr >> IOPT_PHYS_FRAME_SHIFT. The
 * pin registry (iopt/ctx.h) gives every pinned host page a frame as it pins it
 * (the same host page keeps the same frame while it stays pinned) and takes the
 * frame back when the last pin goes, so a frame that is not pinned resolves to
 * nothing: that is how the simulator refuses DMA to unpinned memory.
 *
 * The frame table is process-wide, like the kernel's struct page array. Frames
 * live in a window of at most 4 TiB placed at the top of the output width
 * (the whole width when it is smaller), so high address bits are exercised.
 *
 * Contiguity models (chosen per context, iopt_ctx_options.phys_model) decide
 * how pinned memory looks physically. The first pin of a 2 MiB-aligned host
 * chunk decides for that chunk, for as long as any of its pages stays pinned:
 * - IOPT_PHYS_CONTIGUOUS: a pinned range is one run of frames, aligned like its
 *   host address modulo 1 GiB (so 2 MiB and 1 GiB IOMMU pages can be used
 *   wherever the host addresses would allow them).
 * - IOPT_PHYS_FOLIO: frames follow the host page size, as the kernel's folios
 *   do: a 2 MiB-aligned host chunk that is one 2 MiB page (THP or hugetlbfs)
 *   is one 2 MiB-aligned run of frames; 4 KiB host pages get frames no two of
 *   which are adjacent. Runs never continue across a chunk boundary.
 * - IOPT_PHYS_SCATTERED: a pseudo-random frame per page, never adjacent to
 *   another scattered frame, so no two pages form a run (the 4 KiB-only path).
 */
#ifndef IOPT_PHYS_H
#define IOPT_PHYS_H

#include <stdint.h>

#include <iopt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOPT_PHYS_FRAME_SHIFT	12
#define IOPT_PHYS_FRAME_SIZE	(1u << IOPT_PHYS_FRAME_SHIFT)

#define IOPT_PHYS_WIDTH_MIN	32	/* output address bits, inclusive bounds */
#define IOPT_PHYS_WIDTH_MAX	52
#define IOPT_PHYS_WIDTH_DEFAULT	48

/* How pinned memory looks physically; see the file comment. 0 is the default. */
enum iopt_phys_model {
	IOPT_PHYS_CONTIGUOUS = 0,
	IOPT_PHYS_FOLIO,
	IOPT_PHYS_SCATTERED,
};

/**
 * iopt_phys_to_host() - host address behind a simulated physical address.
 * @paddr: simulated physical byte address.
 *
 * O(1) and lock-free (four dependent loads), for the DMA path. The result
 * stays valid while the frame stays pinned; resolving a frame while another
 * thread unpins it is a caller bug, as DMA to memory being unpinned is.
 *
 * Return: the host byte address for @paddr, or NULL when its frame is not
 * currently pinned.
 */
IOPT_API void *iopt_phys_to_host(uint64_t paddr);

/**
 * iopt_phys_set_output_width() - set the width of simulated physical addresses.
 * @bits: IOPT_PHYS_WIDTH_MIN..IOPT_PHYS_WIDTH_MAX.
 *
 * Frames are placed in the top 4 TiB below 2^@bits (all of it when smaller).
 *
 * Return: 0; -EINVAL for a width out of range; -EBUSY while any frame is
 * assigned (pinned memory exists).
 * On failure: nothing changes.
 */
IOPT_API int iopt_phys_set_output_width(unsigned int bits);

/** iopt_phys_output_width() - Return: the current output width in bits. */
IOPT_API unsigned int iopt_phys_output_width(void);

/**
 * iopt_phys_set_seed() - seed the generator behind IOPT_PHYS_SCATTERED.
 * @seed: any value; the same seed and the same pin sequence give the same
 *	  frames.
 *
 * Return: 0, or -EBUSY while any frame is assigned.
 */
IOPT_API int iopt_phys_set_seed(uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* IOPT_PHYS_H */
