// SPDX-License-Identifier: MIT
/*
 * interval_tree.c - augmented red-black interval tree and span iterator.
 *
 * Two layers, as in the kernel (lib/rbtree.c + interval_tree_generic.h):
 *
 *  1. A red-black core (rb_*) that knows nothing about intervals. Whenever it
 *     changes the shape of the tree it tells the augmentation through three
 *     callbacks, at the exact place where the kernel does:
 *       - rotate(old, new): @new took @old's place in a rotation; @new inherits
 *         @old's subtree value and @old's is recomputed from its new children;
 *       - copy(old, new): on erase, the successor @new takes @old's place and
 *         inherits its subtree value as is;
 *       - propagate(node, stop): recompute values from @node up to @stop,
 *         stopping early as soon as one does not change.
 *     The core is written once for both mirror cases: child[dir] and
 *     child[!dir] replace the kernel's spelled-out left/right twins.
 *
 *  2. The interval tree (iopt_itree_*): nodes ordered by start, augmented with
 *     subtree_last = max(last) over the subtree. Insert raises subtree_last on
 *     the way down, so only rotations need the callbacks; remove uses all three.
 *
 * The core functions are forced inline into their single caller with the
 * callback table as a compile-time constant, so the callbacks become direct,
 * inlined code and the red-black core costs nothing for being generic. See
 * docs/interval_tree.md for the measured cost and why not libbsd's tree.h.
 *
 * Locking: none; see interval_tree.h.
 */
#include <errno.h>
#include <stddef.h>

#include "interval_tree.h"
#include "util.h"

#if defined(__GNUC__)
#define RB_INLINE static inline __attribute__((always_inline))
#else
#define RB_INLINE static inline
#endif

enum { RB_RED = 0, RB_BLACK = 1 };
#define RB_COLOR_MASK ((uintptr_t)3)

/* Deepest path a valid tree can have: 2 * log2(2^64) nodes. */
#define RB_MAX_DEPTH 128

struct rb_augment {
	void (*propagate)(struct iopt_rb_node *node, struct iopt_rb_node *stop);
	void (*copy)(const struct iopt_rb_node *old, struct iopt_rb_node *repl);
	void (*rotate)(struct iopt_rb_node *old, struct iopt_rb_node *repl);
};

/* ---------------------------------------------------------------------------
 * Red-black core
 */

static inline struct iopt_rb_node *pc_parent(uintptr_t pc)
{
	return (struct iopt_rb_node *)(pc & ~RB_COLOR_MASK);
}

static inline struct iopt_rb_node *rb_parent(const struct iopt_rb_node *rb)
{
	return pc_parent(rb->parent_color);
}

static inline bool rb_is_red(const struct iopt_rb_node *rb)
{
	return !(rb->parent_color & RB_BLACK);
}

static inline void rb_set_parent(struct iopt_rb_node *rb, struct iopt_rb_node *p)
{
	rb->parent_color = (uintptr_t)p | (rb->parent_color & RB_BLACK);
}

static inline void rb_set_parent_color(struct iopt_rb_node *rb,
				       struct iopt_rb_node *p, uintptr_t color)
{
	rb->parent_color = (uintptr_t)p | color;
}

/* Make @repl the child of @parent (or the root) that @old was. */
static inline void rb_change_child(struct iopt_rb_node *old,
				   struct iopt_rb_node *repl,
				   struct iopt_rb_node *parent,
				   struct iopt_rb_node **root)
{
	if (parent)
		parent->child[parent->child[1] == old] = repl;
	else
		*root = repl;
}

/*
 * Last step of a rotation: @repl takes @old's parent and colour, @old becomes
 * @repl's child with @color. The caller has already swapped the child links.
 */
static inline void rb_rotate_set_parents(struct iopt_rb_node *old,
					 struct iopt_rb_node *repl,
					 struct iopt_rb_node **root,
					 uintptr_t color)
{
	struct iopt_rb_node *parent = rb_parent(old);

	repl->parent_color = old->parent_color;
	rb_set_parent_color(old, repl, color);
	rb_change_child(old, repl, parent, root);
}

/*
 * Rebalance after linking the red leaf @node. Walks up while a red node has a
 * red parent: recolours when the uncle is red, else one or two rotations end it.
 */
RB_INLINE void rb_insert_fixup(struct iopt_rb_node *node,
			       struct iopt_rb_node **root,
			       const struct rb_augment *aug)
{
	struct iopt_rb_node *parent = rb_parent(node);

	for (;;) {
		struct iopt_rb_node *gparent, *uncle, *tmp;
		unsigned int dir;	/* side of gparent that parent is on */

		if (!parent) {
			rb_set_parent_color(node, NULL, RB_BLACK);
			return;
		}
		if (!rb_is_red(parent))
			return;

		/* A red parent is never the root, so gparent exists. */
		gparent = rb_parent(parent);
		dir = gparent->child[1] == parent;
		uncle = gparent->child[!dir];
		if (uncle && rb_is_red(uncle)) {
			rb_set_parent_color(uncle, gparent, RB_BLACK);
			rb_set_parent_color(parent, gparent, RB_BLACK);
			node = gparent;
			parent = rb_parent(node);
			rb_set_parent_color(node, parent, RB_RED);
			continue;
		}

		tmp = parent->child[!dir];
		if (node == tmp) {
			/* Inner grandchild: rotate it above parent first. */
			tmp = node->child[dir];
			parent->child[!dir] = tmp;
			node->child[dir] = parent;
			if (tmp)
				rb_set_parent_color(tmp, parent, RB_BLACK);
			rb_set_parent_color(parent, node, RB_RED);
			aug->rotate(parent, node);
			parent = node;
			tmp = node->child[!dir];
		}

		/* Outer grandchild: rotate parent above gparent. */
		gparent->child[dir] = tmp;
		parent->child[!dir] = gparent;
		if (tmp)
			rb_set_parent_color(tmp, gparent, RB_BLACK);
		rb_rotate_set_parents(gparent, parent, root, RB_RED);
		aug->rotate(gparent, parent);
		return;
	}
}

/*
 * Restore the black height after a black leaf was unlinked below @parent. The
 * deficient side starts as the NULL link where the leaf was: its sibling cannot
 * be NULL, since it carried at least one black node.
 */
RB_INLINE void rb_erase_fixup(struct iopt_rb_node *parent,
			      struct iopt_rb_node **root,
			      const struct rb_augment *aug)
{
	struct iopt_rb_node *node = NULL, *sibling, *near, *far, *tmp;
	unsigned int dir;	/* side of parent that the deficient node is on */

	for (;;) {
		dir = parent->child[1] == node;
		sibling = parent->child[!dir];
		if (rb_is_red(sibling)) {
			/* Rotate the red sibling above parent: sibling turns black. */
			tmp = sibling->child[dir];
			parent->child[!dir] = tmp;
			sibling->child[dir] = parent;
			rb_set_parent_color(tmp, parent, RB_BLACK);
			rb_rotate_set_parents(parent, sibling, root, RB_RED);
			aug->rotate(parent, sibling);
			sibling = tmp;
		}
		far = sibling->child[!dir];
		if (!far || !rb_is_red(far)) {
			near = sibling->child[dir];
			if (!near || !rb_is_red(near)) {
				/* Sibling can turn red; move the deficit up. */
				rb_set_parent_color(sibling, parent, RB_RED);
				if (rb_is_red(parent)) {
					parent->parent_color |= RB_BLACK;
					return;
				}
				node = parent;
				parent = rb_parent(node);
				if (!parent)
					return;
				continue;
			}
			/* Red near nephew: rotate it above sibling. */
			tmp = near->child[!dir];
			sibling->child[dir] = tmp;
			near->child[!dir] = sibling;
			parent->child[!dir] = near;
			if (tmp)
				rb_set_parent_color(tmp, sibling, RB_BLACK);
			aug->rotate(sibling, near);
			far = sibling;
			sibling = near;
		}
		/* Red far nephew: rotate sibling above parent, and done. */
		tmp = sibling->child[dir];
		parent->child[!dir] = tmp;
		sibling->child[dir] = parent;
		rb_set_parent_color(far, sibling, RB_BLACK);
		if (tmp)
			rb_set_parent(tmp, parent);
		rb_rotate_set_parents(parent, sibling, root, RB_BLACK);
		aug->rotate(parent, sibling);
		return;
	}
}

/*
 * Unlink @node and return the node below which a black leaf went missing
 * (NULL when colours could be fixed locally). With two children, @node's
 * in-order successor takes its place, colour and subtree value (copy), and the
 * values on the successor's old path are recomputed (propagate).
 */
RB_INLINE struct iopt_rb_node *rb_erase_unlink(struct iopt_rb_node *node,
					       struct iopt_rb_node **root,
					       const struct rb_augment *aug)
{
	struct iopt_rb_node *left = node->child[0], *right = node->child[1];
	struct iopt_rb_node *parent, *succ, *child, *rebalance;
	uintptr_t pc = node->parent_color;

	if (!left || !right) {
		/* A lone child is red and node black: it takes node's colour. */
		child = left ? left : right;
		parent = pc_parent(pc);
		rb_change_child(node, child, parent, root);
		if (child) {
			child->parent_color = pc;
			rebalance = NULL;
		} else {
			rebalance = (pc & RB_BLACK) ? parent : NULL;
		}
		aug->propagate(parent, NULL);
		return rebalance;
	}

	succ = right;
	parent = right;
	if (!right->child[0]) {
		child = right->child[1];
	} else {
		do {
			parent = succ;
			succ = succ->child[0];
		} while (succ->child[0]);
		child = succ->child[1];
		parent->child[0] = child;
		succ->child[1] = right;
		rb_set_parent(right, succ);
	}
	aug->copy(node, succ);
	if (parent != succ)
		aug->propagate(parent, succ);
	succ->child[0] = left;
	rb_set_parent(left, succ);
	rb_change_child(node, succ, pc_parent(pc), root);
	if (child) {
		rb_set_parent_color(child, parent, RB_BLACK);
		rebalance = NULL;
	} else {
		rebalance = rb_is_red(succ) ? NULL : parent;
	}
	succ->parent_color = pc;
	aug->propagate(succ, NULL);
	return rebalance;
}

RB_INLINE void rb_erase(struct iopt_rb_node *node, struct iopt_rb_node **root,
			const struct rb_augment *aug)
{
	struct iopt_rb_node *rebalance = rb_erase_unlink(node, root, aug);

	if (rebalance)
		rb_erase_fixup(rebalance, root, aug);
}

/* ---------------------------------------------------------------------------
 * Interval augmentation: subtree_last = max(last) over the subtree
 */

static inline struct iopt_itree_node *to_itree(const struct iopt_rb_node *rb)
{
	return container_of(rb, struct iopt_itree_node, rb);
}

static inline uint64_t itree_compute_last(const struct iopt_itree_node *node)
{
	uint64_t max = node->last;
	unsigned int i;

	for (i = 0; i != 2; i++) {
		const struct iopt_rb_node *c = node->rb.child[i];

		if (c && to_itree(c)->subtree_last > max)
			max = to_itree(c)->subtree_last;
	}
	return max;
}

static inline void itree_propagate(struct iopt_rb_node *rb,
				   struct iopt_rb_node *stop)
{
	while (rb != stop) {
		struct iopt_itree_node *node = to_itree(rb);
		uint64_t max = itree_compute_last(node);

		if (node->subtree_last == max)
			return;
		node->subtree_last = max;
		rb = rb_parent(rb);
	}
}

static inline void itree_copy(const struct iopt_rb_node *old,
			      struct iopt_rb_node *repl)
{
	to_itree(repl)->subtree_last = to_itree(old)->subtree_last;
}

static inline void itree_rotate(struct iopt_rb_node *old,
				struct iopt_rb_node *repl)
{
	to_itree(repl)->subtree_last = to_itree(old)->subtree_last;
	to_itree(old)->subtree_last = itree_compute_last(to_itree(old));
}

static const struct rb_augment itree_augment = {
	.propagate = itree_propagate,
	.copy = itree_copy,
	.rotate = itree_rotate,
};

void iopt_itree_insert(struct iopt_itree_node *node, struct iopt_itree_root *root)
{
	struct iopt_rb_node *cur = root->rb_node, *parent = NULL;
	uint64_t start = node->start, last = node->last;
	size_t dir = 0;

	/*
	 * Every node passed on the way down gains @node in its subtree. The
	 * direction is computed, not branched on: it is a coin flip per level.
	 */
	while (cur) {
		struct iopt_itree_node *it = to_itree(cur);

		if (it->subtree_last < last)
			it->subtree_last = last;
		dir = start >= it->start;
		parent = cur;
		cur = cur->child[dir];
	}
	node->subtree_last = last;
	node->rb.child[0] = NULL;
	node->rb.child[1] = NULL;
	rb_set_parent_color(&node->rb, parent, RB_RED);
	if (parent)
		parent->child[dir] = &node->rb;
	else
		root->rb_node = &node->rb;
	rb_insert_fixup(&node->rb, &root->rb_node, &itree_augment);
}

void iopt_itree_remove(struct iopt_itree_node *node, struct iopt_itree_root *root)
{
	rb_erase(&node->rb, &root->rb_node, &itree_augment);
}

/*
 * Leftmost node of @node's subtree that overlaps [start, last], knowing that
 * @node->subtree_last >= start. If the left subtree reaches start, the answer
 * is there or nowhere: its node that reaches start either overlaps, or starts
 * after last and so does everything to its right.
 */
static struct iopt_itree_node *itree_subtree_search(struct iopt_itree_node *node,
						    uint64_t start, uint64_t last)
{
	for (;;) {
		const struct iopt_rb_node *c = node->rb.child[0];

		if (c && start <= to_itree(c)->subtree_last) {
			node = to_itree(c);
			continue;
		}
		if (node->start > last)
			return NULL;
		if (start <= node->last)
			return node;
		c = node->rb.child[1];
		if (!c || start > to_itree(c)->subtree_last)
			return NULL;
		node = to_itree(c);
	}
}

struct iopt_itree_node *iopt_itree_iter_first(const struct iopt_itree_root *root,
					      uint64_t start, uint64_t last)
{
	struct iopt_itree_node *node;

	if (!root->rb_node)
		return NULL;
	node = to_itree(root->rb_node);
	if (node->subtree_last < start)
		return NULL;
	return itree_subtree_search(node, start, last);
}

struct iopt_itree_node *iopt_itree_iter_next(const struct iopt_itree_node *node,
					     uint64_t start, uint64_t last)
{
	const struct iopt_rb_node *rb = node->rb.child[1], *prev;

	for (;;) {
		if (rb && start <= to_itree(rb)->subtree_last)
			return itree_subtree_search(to_itree(rb), start, last);

		/* Climb to the first ancestor we reach from its left side. */
		do {
			prev = &node->rb;
			rb = rb_parent(prev);
			if (!rb)
				return NULL;
			node = to_itree(rb);
		} while (rb->child[1] == prev);

		if (node->start > last)
			return NULL;
		if (start <= node->last)
			return to_itree(rb);
		rb = rb->child[1];
	}
}

static struct iopt_itree_node *itree_leftmost(const struct iopt_rb_node *rb)
{
	while (rb->child[0])
		rb = rb->child[0];
	return to_itree(rb);
}

struct iopt_itree_node *iopt_itree_first(const struct iopt_itree_root *root)
{
	return root->rb_node ? itree_leftmost(root->rb_node) : NULL;
}

struct iopt_itree_node *iopt_itree_next(const struct iopt_itree_node *node)
{
	const struct iopt_rb_node *rb = &node->rb, *parent;

	if (rb->child[1])
		return itree_leftmost(rb->child[1]);
	while ((parent = rb_parent(rb)) && parent->child[1] == rb)
		rb = parent;
	return parent ? to_itree(parent) : NULL;
}

/* ---------------------------------------------------------------------------
 * Invariant checker
 */

struct check_walk {
	uint64_t prev_start;	/* start of the previous node in order */
	bool have_prev;
};

/* Black height of @rb's subtree (a NULL link counts 1), or -EINVAL. */
static int check_subtree(const struct iopt_rb_node *rb,
			 const struct iopt_rb_node *parent, unsigned int depth,
			 struct check_walk *walk)
{
	const struct iopt_itree_node *node;
	int left_height, right_height;

	if (!rb)
		return 1;
	node = to_itree(rb);
	if (depth > RB_MAX_DEPTH || rb_parent(rb) != parent ||
	    (rb->parent_color & RB_COLOR_MASK & ~(uintptr_t)RB_BLACK) ||
	    (rb_is_red(rb) && parent && rb_is_red(parent)) ||
	    node->start > node->last)
		return -EINVAL;

	left_height = check_subtree(rb->child[0], rb, depth + 1, walk);
	if (left_height < 0)
		return left_height;
	if (walk->have_prev && node->start < walk->prev_start)
		return -EINVAL;
	walk->prev_start = node->start;
	walk->have_prev = true;
	right_height = check_subtree(rb->child[1], rb, depth + 1, walk);
	if (right_height < 0)
		return right_height;

	if (left_height != right_height ||
	    node->subtree_last != itree_compute_last(node))
		return -EINVAL;
	return left_height + !rb_is_red(rb);
}

int iopt_itree_check(const struct iopt_itree_root *root)
{
	struct check_walk walk = { 0 };
	int height;

	if (root->rb_node && rb_is_red(root->rb_node))
		return -EINVAL;
	height = check_subtree(root->rb_node, NULL, 0, &walk);
	return height < 0 ? height : 0;
}

/* ---------------------------------------------------------------------------
 * Span iterator
 *
 * State between steps: the current span starts at first_index, and next is the
 * first node (in start order, among those overlapping the walk) of the first
 * used run that begins at or after first_index, or that covers it.
 */

/*
 * Merge the used run that begins with iter->next: swallow every following
 * node that overlaps or abuts it. Stops early once the run passes last_index.
 * Leaves iter->next on the first node of the following run (or NULL).
 * Return: the run's last index.
 */
static uint64_t span_merge_run(struct iopt_span_iter *iter)
{
	struct iopt_itree_node *node = iter->next;
	uint64_t run_last = node->last;

	while (run_last < iter->last_index) {
		node = iopt_itree_iter_next(node, iter->first_index,
					    iter->last_index);
		/* run_last < UINT64_MAX here, so run_last + 1 cannot wrap. */
		if (!node || node->start > run_last + 1)
			break;
		run_last = IOPT_MAX(run_last, node->last);
	}
	iter->next = run_last < iter->last_index ? node : NULL;
	return run_last;
}

/* Compute the span that starts at iter->first_index (<= last_index). */
static void span_compute(struct iopt_span_iter *iter)
{
	struct iopt_itree_node *next = iter->next;
	uint64_t run_last;

	iter->start_hole = iter->first_index;
	if (!next || next->start > iter->first_index) {
		iter->is_hole = 1;
		iter->last_hole = next ? next->start - 1 : iter->last_index;
		return;
	}
	iter->is_hole = 0;
	run_last = span_merge_run(iter);
	iter->last_used = IOPT_MIN(run_last, iter->last_index);
}

void iopt_span_iter_first(struct iopt_span_iter *iter,
			  const struct iopt_itree_root *root, uint64_t first_index,
			  uint64_t last_index)
{
	iter->root = root;
	iter->first_index = first_index;
	iter->last_index = last_index;
	if (first_index > last_index) {
		iter->next = NULL;
		iter->start_hole = first_index;
		iter->last_hole = last_index;
		iter->is_hole = -1;
		return;
	}
	iter->next = iopt_itree_iter_first(root, first_index, last_index);
	span_compute(iter);
}

void iopt_span_iter_next(struct iopt_span_iter *iter)
{
	if (iter->is_hole == -1)
		return;
	if (iter->last_hole == iter->last_index) {
		iter->is_hole = -1;
		return;
	}
	iter->first_index = iter->last_hole + 1;
	span_compute(iter);
}

void iopt_span_iter_advance(struct iopt_span_iter *iter, uint64_t new_index)
{
	if (iter->is_hole == -1)
		return;
	if (new_index > iter->last_index) {
		iter->is_hole = -1;
		return;
	}
	/* start/last alias between hole and used, so this trims either. */
	if (new_index <= iter->last_hole) {
		iter->start_hole = new_index;
		iter->first_index = new_index;
		return;
	}
	if (new_index == iter->last_hole + 1) {
		iopt_span_iter_next(iter);
		return;
	}
	iopt_span_iter_first(iter, iter->root, new_index, iter->last_index);
}
