/* SPDX-License-Identifier: MIT */
/*
 * double_span.h - span iterator over the union of two interval trees.
 *
 * libiopt's counterpart of the kernel's drivers/iommu/iommufd/double_span.h
 * (whose code lives in pages.c; here it has its own .c). It walks [first, last]
 * with one span iterator per tree, kept at the same position, and reports each
 * step as one of:
 *  - is_used == 0: a hole, covered by neither tree;
 *  - is_used == 1: used by tree 1. Tree 1 has priority: its used run is
 *    reported whole, whatever tree 2 holds there;
 *  - is_used == 2: used by tree 2 where tree 1 has a hole; the run is cut
 *    where tree 1's next used run begins;
 *  - is_used == -1: done.
 * Runs are maximal in each tree's span sense (overlapping and abutting
 * intervals merge), the spans cover [first, last] exactly once in ascending
 * order, and the walk ends after the span that reaches last, so a range ending
 * at UINT64_MAX terminates. An empty range (first > last) reports nothing.
 * The same is_used value never comes twice in a row.
 *
 * Users in io_pagetable: (access, domains) to read PFNs and unfill the pinned
 * store, (domains, access) to unfill a domain, (reserved, areas) for IOVA
 * allocation holes.
 *
 * Locking: none inside; both trees must stay unchanged (their owners' locks
 * held, shared) while an iterator is live.
 */
#ifndef IOPT_DOUBLE_SPAN_H
#define IOPT_DOUBLE_SPAN_H

#include <stdbool.h>
#include <stdint.h>

#include "interval_tree.h"

struct iopt_double_span_iter {
	/* private: one span iterator per tree, both at the current position */
	struct iopt_span_iter spans[2];

	/* public: [start, last] of the current span, names alias */
	union {
		uint64_t start_hole;
		uint64_t start_used;
	};
	union {
		uint64_t last_hole;
		uint64_t last_used;
	};
	int is_used;	/* 0 hole, 1 tree 1, 2 tree 2, -1 done */
};

/**
 * iopt_double_span_iter_first() - Start a walk over two trees
 * @iter: the iterator (any prior content is ignored)
 * @itree1: the tree with priority
 * @itree2: the other tree
 * @first_index: first index of the range
 * @last_index: last index of the range (inclusive)
 *
 * Locking: both trees' locks, shared, for the whole walk.
 */
void iopt_double_span_iter_first(struct iopt_double_span_iter *iter,
				 const struct iopt_itree_root *itree1,
				 const struct iopt_itree_root *itree2,
				 uint64_t first_index, uint64_t last_index);

/**
 * iopt_double_span_iter_next() - Step to the span after the current one
 * @iter: a started iterator; a done iterator stays done
 */
void iopt_double_span_iter_next(struct iopt_double_span_iter *iter);

static inline bool iopt_double_span_iter_done(const struct iopt_double_span_iter *iter)
{
	return iter->is_used == -1;
}

#define iopt_for_each_double_span(span, itree1, itree2, first_index,          \
				  last_index)                                 \
	for (iopt_double_span_iter_first(span, itree1, itree2, first_index,   \
					 last_index);                         \
	     !iopt_double_span_iter_done(span);                               \
	     iopt_double_span_iter_next(span))

#endif /* IOPT_DOUBLE_SPAN_H */
