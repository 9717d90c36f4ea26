// SPDX-License-Identifier: MIT
/*
 * double_span.c - span iterator over the union of two interval trees.
 *
 * Both per-tree span iterators always sit at the same index, the start of the
 * current span. Each step classifies that index from the two spans, then
 * advances both to the index after the reported span. iopt_span_iter_advance()
 * makes this cheap: an iterator whose own span goes on past the reported one
 * is only trimmed, and one whose span ended exactly there steps once, so a walk
 * costs about one search per tree plus O(1) per reported span and per merged
 * interval.
 *
 * Contract and locking: see double_span.h.
 */
#include "double_span.h"
#include "util.h"

/* Report the span that starts where both per-tree iterators stand. */
static void double_span_update(struct iopt_double_span_iter *iter)
{
	uint64_t hole_last = UINT64_MAX;	/* where tree 1's hole ends */
	unsigned int i;

	for (i = 0; i != IOPT_ARRAY_SIZE(iter->spans); i++) {
		const struct iopt_span_iter *span = &iter->spans[i];

		/* Both iterators stand at the same index: done together. */
		if (iopt_span_iter_done(span)) {
			iter->is_used = -1;
			return;
		}
		if (!span->is_hole) {
			iter->is_used = (int)i + 1;
			iter->start_used = span->start_used;
			iter->last_used = IOPT_MIN(span->last_used, hole_last);
			return;
		}
		hole_last = IOPT_MIN(hole_last, span->last_hole);
	}
	iter->is_used = 0;
	iter->start_hole = iter->spans[0].start_hole;
	iter->last_hole = hole_last;
}

void iopt_double_span_iter_first(struct iopt_double_span_iter *iter,
				 const struct iopt_itree_root *itree1,
				 const struct iopt_itree_root *itree2,
				 uint64_t first_index, uint64_t last_index)
{
	iopt_span_iter_first(&iter->spans[0], itree1, first_index, last_index);
	iopt_span_iter_first(&iter->spans[1], itree2, first_index, last_index);
	double_span_update(iter);
}

void iopt_double_span_iter_next(struct iopt_double_span_iter *iter)
{
	unsigned int i;

	if (iter->is_used == -1)
		return;
	/* Stop before last + 1 could wrap at UINT64_MAX. */
	if (iter->last_hole == iter->spans[0].last_index) {
		iter->is_used = -1;
		return;
	}
	for (i = 0; i != IOPT_ARRAY_SIZE(iter->spans); i++)
		iopt_span_iter_advance(&iter->spans[i], iter->last_hole + 1);
	double_span_update(iter);
}
