/* SPDX-License-Identifier: MIT */
/*
 * iova_bitmap.h - writes dirty bits for IOVA ranges into a caller's bitmap
 * (the kernel's iova_bitmap.c, without its windowing).
 *
 * The kernel pins the user bitmap a window at a time and carries "set ahead"
 * bits across windows; a userspace library can write the caller's buffer
 * directly, so there is one window: the whole request. The layout is kept:
 * bit n stands for [iova + n * page_size, iova + (n + 1) * page_size), and
 * lives in byte n / 8, bit n % 8 (which is bit n % 64 of little-endian u64
 * word n / 64), so the buffer need not be aligned. Bits are only ever set.
 *
 * Locking: none; one bitmap belongs to one read_dirty call.
 */
#ifndef IOPT_IOVA_BITMAP_H
#define IOPT_IOVA_BITMAP_H

#include <stdint.h>

/*
 * @iova: IOVA of bit 0.
 * @last: last IOVA the bitmap covers (inclusive).
 * @pgshift: log2 of the bytes per bit.
 * @data: the caller's buffer, borrowed.
 */
struct iopt_iova_bitmap {
	uint64_t iova;
	uint64_t last;
	unsigned int pgshift;
	uint8_t *data;
};

/**
 * iopt_iova_bitmap_init() - describe a caller bitmap.
 * @bitmap: the bitmap to set up.
 * @iova: IOVA of bit 0, a multiple of @page_size.
 * @length: bytes covered, > 0, a multiple of @page_size.
 * @page_size: bytes per bit, a power of two.
 * @data: the buffer, at least DIV_ROUND_UP(length / page_size, 8) bytes.
 */
void iopt_iova_bitmap_init(struct iopt_iova_bitmap *bitmap, uint64_t iova,
			   uint64_t length, uint64_t page_size, void *data);

/**
 * iopt_iova_bitmap_set() - set the bit of every granule [@iova, @iova +
 * @length) touches, clipped to the bitmap's range.
 * @bitmap: the bitmap.
 * @iova: first dirty byte.
 * @length: bytes, > 0; the range may stick out of the bitmap on both sides
 *	    (a dirty huge leaf reported whole).
 */
void iopt_iova_bitmap_set(struct iopt_iova_bitmap *bitmap, uint64_t iova,
			  uint64_t length);

#endif /* IOPT_IOVA_BITMAP_H */
