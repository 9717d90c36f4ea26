/* SPDX-License-Identifier: MIT */
/*
 * pfn_store.h - sparse map from a page index to a frame number.
 *
 * This is the role the kernel's xarray plays for iopt_pages::pinned_pfns: it
 * holds the frame of exactly the indexes that accesses pin (pages.c keeps that
 * invariant), so it must be cheap when sparse and fast when dense.
 *
 * Shape: a radix tree with 64-way nodes (6 index bits per level) whose height
 * grows on demand, like the xarray. A leaf holds 64 frames and a bitmap of
 * which are present, so presence needs no sentinel value and any uint64_t is a
 * valid frame. Empty nodes are freed as soon as they empty, so clearing never
 * allocates and the store of an idle iopt_pages costs nothing but the root.
 * A lookup is O(height), at most 9 hops for 54-bit indexes and 2-3 in
 * practice (2 levels cover 4096 pages = 16 MiB).
 *
 * Vocabulary: "last" inclusive; indexes are page numbers inside one
 * iopt_pages, so index + 1 never overflows (npages <= 2^52).
 *
 * Locking: none inside; the owner serialises (pages->mutex for pinned_pfns).
 */
#ifndef IOPT_PFN_STORE_H
#define IOPT_PFN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest index the store accepts: 2^54 - 1 (9 levels of 6 bits). */
#define IOPT_PFN_STORE_MAX_INDEX ((UINT64_C(1) << 54) - 1)

/* 24 bytes: one per iopt_pages, so per area of a map, and areas are many. */
struct iopt_pfn_store {
	void *root;		/* a leaf when height == 1, else an inner node */
	uint64_t count;		/* present entries */
	uint32_t nodes;		/* allocated nodes, leaves included (< 2^32:
				 * that would be 2 TiB of nodes) */
	uint8_t height;		/* 0 = empty, else levels from root to leaves */
};

/**
 * iopt_pfn_store_init() - make @s an empty store.
 * @s: store to initialise; no allocation happens.
 */
void iopt_pfn_store_init(struct iopt_pfn_store *s);

/**
 * iopt_pfn_store_destroy() - free every node of @s; @s is empty afterwards.
 * @s: store.
 *
 * Owners normally clear everything first; destroy also copes with a non-empty
 * store so that a release path never leaks. Cannot fail.
 */
void iopt_pfn_store_destroy(struct iopt_pfn_store *s);

static inline bool iopt_pfn_store_empty(const struct iopt_pfn_store *s)
{
	return s->count == 0;
}

/**
 * iopt_pfn_store_insert() - store @n frames at indexes [@start, @start + @n).
 * @s: store.
 * @start: first index.
 * @n: number of entries, > 0; @start + @n - 1 <= IOPT_PFN_STORE_MAX_INDEX.
 * @frames: the frames, in index order.
 *
 * Every index in the range must be empty (the caller's invariant; checked by
 * assertion in debug builds).
 *
 * Return: 0, -ENOMEM, or -EINVAL past IOPT_PFN_STORE_MAX_INDEX.
 * On failure: @s is unchanged (whatever this call stored is cleared again).
 */
int iopt_pfn_store_insert(struct iopt_pfn_store *s, uint64_t start, uint64_t n,
			  const uint64_t *frames);

/**
 * iopt_pfn_store_load() - read the frame at @index.
 * @s: store.
 * @index: index.
 * @frame: receives the frame when present.
 *
 * Return: true when @index is present.
 */
bool iopt_pfn_store_load(const struct iopt_pfn_store *s, uint64_t index,
			 uint64_t *frame);

/**
 * iopt_pfn_store_load_range() - read consecutive present entries.
 * @s: store.
 * @start: first index.
 * @n: maximum entries to read.
 * @frames: receives up to @n frames.
 *
 * Reads one leaf at a time, so a dense range costs one descent per 64 pages.
 *
 * Return: how many entries from @start on were present and copied; stops at
 * the first absent index.
 */
uint64_t iopt_pfn_store_load_range(const struct iopt_pfn_store *s,
				   uint64_t start, uint64_t n, uint64_t *frames);

/**
 * iopt_pfn_store_clear() - remove every entry in [@start, @last].
 * @s: store.
 * @start: first index.
 * @last: last index (inclusive), >= @start.
 *
 * Absent entries are skipped; emptied nodes are freed. Never allocates and
 * cannot fail.
 */
void iopt_pfn_store_clear(struct iopt_pfn_store *s, uint64_t start, uint64_t last);

/**
 * iopt_pfn_store_bytes() - heap bytes used by @s's nodes (for reports).
 * @s: store.
 */
uint64_t iopt_pfn_store_bytes(const struct iopt_pfn_store *s);

#endif /* IOPT_PFN_STORE_H */
