/* SPDX-License-Identifier: MIT */
/*
 * interval_tree.h - augmented red-black interval tree over uint64_t ranges, and
 * the span iterator that walks the used runs and holes of one tree.
 *
 * This is libiopt's counterpart of the kernel's generic interval tree
 * (include/linux/interval_tree_generic.h, lib/interval_tree.c): io_pagetable
 * keeps areas, allowed and reserved ranges, accesses and per-pages domain
 * intervals in these trees. It is written from scratch as plain functions over
 * uint64_t (no macro template) on top of a private red-black core whose
 * augmentation is kept apart in propagate / copy / rotate callbacks, as the
 * kernel does; docs/interval_tree.md explains why not libbsd's tree.h.
 *
 * Vocabulary: every interval is [start, last] with last inclusive, so a range
 * that ends at UINT64_MAX is representable and every function here handles it
 * without overflow.
 *
 * Invariants (checked by iopt_itree_check()):
 *  - red-black: the root is black, a red node has no red child, every path from
 *    a node down to a NULL link crosses the same number of black nodes;
 *  - order: an in-order walk sees start in non-decreasing order (equal starts
 *    are allowed; a later insert lands after the earlier ones);
 *  - augmentation: subtree_last is the largest last in the node's subtree.
 *
 * Ownership: the caller allocates every node, usually embedded in a larger
 * object, and keeps it alive while it is in a tree; the tree never allocates.
 *
 * Locking: none inside. Every field of the root and of a linked node is guarded
 * by whatever lock guards the tree's owner (e.g. iova_rwsem for the area tree):
 * writers (insert, remove) need it exclusively, readers (queries, iterators)
 * shared.
 */
#ifndef IOPT_INTERVAL_TREE_H
#define IOPT_INTERVAL_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Red-black links. Private to interval_tree.c: embedded here only so that the
 * caller can allocate nodes. parent_color packs the parent pointer with the
 * colour in bit 0 (0 = red, 1 = black); nodes are at least 4-byte aligned.
 * child[0] is the left child, child[1] the right one, which lets the
 * rebalancing code handle both mirror cases with one direction index.
 */
struct iopt_rb_node {
	uintptr_t parent_color;
	struct iopt_rb_node *child[2];
};

struct iopt_itree_node {
	struct iopt_rb_node rb;	/* private: must stay the first member */
	uint64_t subtree_last;	/* private: max of last over this subtree */
	/* at the end, next to what an embedding struct puts after them */
	uint64_t start;		/* first index covered, set before insert */
	uint64_t last;		/* last index covered (inclusive), >= start */
};

/* A zero-initialised root is an empty tree. */
struct iopt_itree_root {
	struct iopt_rb_node *rb_node;
};

/**
 * iopt_itree_empty() - Whether a tree holds no node
 * @root: the tree
 *
 * Return: true when @root is empty.
 * Locking: the tree's lock, shared.
 */
static inline bool iopt_itree_empty(const struct iopt_itree_root *root)
{
	return root->rb_node == NULL;
}

/**
 * iopt_itree_insert() - Link a node into a tree
 * @node: the node; @node->start and @node->last (start <= last) must be set
 * @root: the tree
 *
 * Overlapping and identical intervals are allowed. O(log n).
 * Locking: the tree's lock, exclusive.
 */
void iopt_itree_insert(struct iopt_itree_node *node, struct iopt_itree_root *root);

/**
 * iopt_itree_remove() - Unlink a node from the tree that holds it
 * @node: a node currently linked in @root
 * @root: the tree
 *
 * O(log n), no memory needed, cannot fail. @node's links are stale afterwards;
 * it may be inserted again (in any tree) once its start and last are set.
 * Locking: the tree's lock, exclusive.
 */
void iopt_itree_remove(struct iopt_itree_node *node, struct iopt_itree_root *root);

/**
 * iopt_itree_iter_first() - First node that overlaps [start, last]
 * @root: the tree
 * @start: first index of the query
 * @last: last index of the query (inclusive)
 *
 * Return: the overlapping node with the lowest start (among equal starts, the
 * earliest inserted), or NULL when none overlaps. O(log n).
 * Locking: the tree's lock, shared.
 */
struct iopt_itree_node *iopt_itree_iter_first(const struct iopt_itree_root *root,
					      uint64_t start, uint64_t last);

/**
 * iopt_itree_iter_next() - Next node after @node that overlaps [start, last]
 * @node: a node returned by iopt_itree_iter_first()/_next() for the same query
 * @start: first index of the query
 * @last: last index of the query (inclusive)
 *
 * Walking the k overlapping nodes costs O(log n + k) in total.
 * Return: the next overlapping node in ascending start order, or NULL.
 * Locking: the tree's lock, shared; the tree must not change during the walk.
 */
struct iopt_itree_node *iopt_itree_iter_next(const struct iopt_itree_node *node,
					     uint64_t start, uint64_t last);

/**
 * iopt_itree_first() - Node with the lowest start (in-order walk of all nodes)
 * @root: the tree
 *
 * Return: the leftmost node, or NULL for an empty tree. O(log n).
 * Locking: the tree's lock, shared.
 */
struct iopt_itree_node *iopt_itree_first(const struct iopt_itree_root *root);

/**
 * iopt_itree_next() - In-order successor of a node
 * @node: a linked node
 *
 * Return: the next node in start order, or NULL after the last one. Amortised
 * O(1) over a whole walk.
 * Locking: the tree's lock, shared.
 */
struct iopt_itree_node *iopt_itree_next(const struct iopt_itree_node *node);

/**
 * iopt_itree_check() - Verify every invariant of a tree (for tests and debug)
 * @root: the tree
 *
 * Checks the red-black rules, the parent links, start <= last, start order and
 * every subtree_last. O(n) time, O(log n) stack.
 * Return: 0 when the tree is sound, -EINVAL at the first broken rule.
 * Locking: the tree's lock, shared.
 */
int iopt_itree_check(const struct iopt_itree_root *root);

/*
 * Loop over the nodes overlapping [start, last] in ascending start order. The
 * arguments are evaluated more than once; the tree must not change in the body.
 */
#define iopt_itree_for_each(node, root, start, last)                           \
	for ((node) = iopt_itree_iter_first(root, start, last); (node);        \
	     (node) = iopt_itree_iter_next(node, start, last))

/*
 * Span iterator (the kernel's interval_tree_span_iter). Over [first, last] it
 * reports, alternately, used spans and holes that together cover the range
 * exactly once, in ascending order, each clipped to the range:
 *  - a used span is a maximal run covered by the union of the intervals that
 *    intersect the range; overlapping *and abutting* intervals merge;
 *  - a hole is a maximal run that no interval covers.
 * With no interval in the range it reports one hole for the whole range. It is
 * done after the span that reaches last, so last == UINT64_MAX terminates. An
 * empty range (first > last) reports nothing.
 *
 * After each step, is_hole is 1 for a hole [start_hole, last_hole], 0 for a
 * used span [start_used, last_used] (the names alias), and -1 when done.
 * The tree must not change while an iterator is live.
 */
struct iopt_span_iter {
	/* private: */
	const struct iopt_itree_root *root;
	struct iopt_itree_node *next;	/* first node of the next used run */
	uint64_t first_index;		/* where the current span starts */
	uint64_t last_index;		/* end of the walk (inclusive) */

	/* public: */
	union {
		uint64_t start_hole;
		uint64_t start_used;
	};
	union {
		uint64_t last_hole;
		uint64_t last_used;
	};
	int is_hole;
};

/**
 * iopt_span_iter_first() - Start a span walk and compute its first span
 * @iter: the iterator (any prior content is ignored)
 * @root: the tree to walk
 * @first_index: first index of the range
 * @last_index: last index of the range (inclusive)
 *
 * O(log n + k) for the first span, where k counts the intervals it merges.
 * Locking: the tree's lock, shared, for the whole walk.
 */
void iopt_span_iter_first(struct iopt_span_iter *iter,
			  const struct iopt_itree_root *root, uint64_t first_index,
			  uint64_t last_index);

/**
 * iopt_span_iter_next() - Step to the span after the current one
 * @iter: a started iterator
 *
 * Sets is_hole to -1 once the previous span reached last_index; a done
 * iterator stays done.
 */
void iopt_span_iter_next(struct iopt_span_iter *iter);

/**
 * iopt_span_iter_advance() - Restart the walk at a later index
 * @iter: a started iterator
 * @new_index: the next index to report, >= the current span's start
 *
 * The current span is trimmed when @new_index falls inside it, else the walk
 * steps (or searches again) so that the reported span starts at @new_index.
 * Past last_index the iterator is done. The double-span iterator is built on it.
 */
void iopt_span_iter_advance(struct iopt_span_iter *iter, uint64_t new_index);

static inline bool iopt_span_iter_done(const struct iopt_span_iter *iter)
{
	return iter->is_hole == -1;
}

#define iopt_for_each_span(span, root, first_index, last_index)                \
	for (iopt_span_iter_first(span, root, first_index, last_index);        \
	     !iopt_span_iter_done(span); iopt_span_iter_next(span))

#endif /* IOPT_INTERVAL_TREE_H */
