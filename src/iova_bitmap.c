/* SPDX-License-Identifier: MIT */
/*
 * iova_bitmap.c - set bits for dirty IOVA ranges in a caller bitmap (see
 * iova_bitmap.h). Whole bytes are filled with one store where a run covers
 * them, so a dirty 1 GiB leaf at 4 KiB granularity costs 32 KiB of memset,
 * not 262,144 bit operations.
 */
#include <string.h>

#include "iova_bitmap.h"
#include "util.h"

void iopt_iova_bitmap_init(struct iopt_iova_bitmap *bitmap, uint64_t iova,
			   uint64_t length, uint64_t page_size, void *data)
{
	bitmap->iova = iova;
	bitmap->last = iova + length - 1;
	bitmap->pgshift = iopt_ffs64(page_size);
	bitmap->data = data;
}

static void set_bits(uint8_t *data, uint64_t first, uint64_t last)
{
	while (first <= last && (first % 8)) {
		data[first / 8] |= (uint8_t)(1u << (first % 8));
		first++;
	}
	if (first > last)
		return;
	if (last - first + 1 >= 8) {
		uint64_t nbytes = (last - first + 1) / 8;

		memset(data + first / 8, 0xff, nbytes);
		first += nbytes * 8;
	}
	for (; first <= last; first++)
		data[first / 8] |= (uint8_t)(1u << (first % 8));
}

void iopt_iova_bitmap_set(struct iopt_iova_bitmap *bitmap, uint64_t iova,
			  uint64_t length)
{
	uint64_t last, first_bit, last_bit;

	/* a leaf reported whole may wrap past the top of the IOVA space */
	if (__builtin_add_overflow(iova, length - 1, &last))
		last = UINT64_MAX;
	if (last < bitmap->iova || iova > bitmap->last)
		return;
	iova = IOPT_MAX(iova, bitmap->iova);
	last = IOPT_MIN(last, bitmap->last);
	first_bit = (iova - bitmap->iova) >> bitmap->pgshift;
	last_bit = (last - bitmap->iova) >> bitmap->pgshift;
	set_bits(bitmap->data, first_bit, last_bit);
}
