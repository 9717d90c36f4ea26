/* SPDX-License-Identifier: MIT */
/*
 * iova_index.h - a radix index that answers "which interval holds this IOVA"
 * in a few dependent loads, beside the interval tree of the areas.
 *
 * The area interval tree (interval_tree.h) stays the source of truth and
 * serves range walks; it needs ~20 pointer hops through 48-byte nodes spread
 * over memory for one point lookup (~1-3 us at 10^6 areas). This index is a
 * 16-way radix tree over the full 64-bit IOVA with path compression: a node
 * at level k has 16 slots of 2^(4k) bytes (level 0: one byte per slot, level
 * 15: slots of 2^60 bytes) and records its level and the base of its span,
 * so a parent slot may point to a node several levels down. A slot holds:
 *  - 0: no interval touches the slot's block (a hole);
 *  - an interval pointer: that interval is the *only* one touching the
 *    block; it may cover all of it or a part (the lookup compares the bounds);
 *  - a child node (tag bit 0 set): two or more intervals touch the block,
 *    all of them inside the child's span (an IOVA in the block but outside
 *    that span is a hole); tag bit 1 (IOPT_IOVA_INDEX_DIRECT) is set too
 *    when the child is exactly one level below the slot's node.
 * An interval is therefore stored at the highest level where it is alone,
 * like a superpage: a 4 KiB aligned area among dense neighbours is one slot
 * of a level-3 node, a lone area sits in the root slot itself, and
 * byte-granular areas sharing a page simply go further down. The index is
 * exact: a lookup never needs the tree.
 *
 * Invariants (checked by iopt_iova_index_check()):
 *  - canonical: every node holds at least two different values (intervals
 *    or child nodes), and a node spans the smallest aligned block that holds
 *    them (a node that would not is folded into its parent's slot), so the
 *    shape is a function of the set of intervals alone;
 *  - a slot holds an interval exactly when that interval is the only one
 *    touching the slot's block, a child node when two or more do;
 *  - a slot's DIRECT tag says exactly whether its child is one level down.
 *
 * Cost: a lookup is one load per node on the path, at most 16 (3 for dense
 * 4 KiB areas below 4 GiB: their chain of single-child levels is skipped),
 * plus the node's key where the path skips levels (IOPT_IOVA_INDEX_DIRECT);
 * insert and remove walk the same path plus, per node, the slots the
 * interval covers whole (at most 15 per side). Memory: 136 B per node, at
 * most one node per interval (each node separates two values).
 *
 * Ownership: the index stores struct iopt_itree_node pointers (start/last are
 * read by lookups) that the caller keeps alive while indexed; it allocates
 * and frees only its own nodes, through alloc.h.
 *
 * Locking: none inside; the owner's lock (iova_rwsem for areas), exclusive
 * for insert/remove/split, shared for lookups. Lookups may also run with no
 * lock beside an insert (not a remove or split), as lock-free readers do
 * beside a map (readers.h): slots are written with release stores and read
 * with acquire loads, and a failed insert parks the nodes it had linked in
 * @retired until the owner, having waited for such lookups, calls
 * iopt_iova_index_reclaim().
 */
#ifndef IOPT_IOVA_INDEX_H
#define IOPT_IOVA_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "interval_tree.h"

#define IOPT_IOVA_INDEX_BITS 4
#define IOPT_IOVA_INDEX_SLOTS (1u << IOPT_IOVA_INDEX_BITS)
/* the highest level's shift: its 16 slots of 2^60 bytes span 2^64 */
#define IOPT_IOVA_INDEX_TOP_SHIFT (64 - IOPT_IOVA_INDEX_BITS)
/* tag bit of a slot holding a child node (nodes and intervals are 8-aligned) */
#define IOPT_IOVA_INDEX_NODE 1u
/*
 * Beside it, in a slot holding a node one level below the slot's own node
 * (a root slot: a node at level 15): a lookup then knows the child's level
 * without loading its key, a dependent load saved per level of a dense
 * index, most of all in its big bottom level.
 */
#define IOPT_IOVA_INDEX_DIRECT 2u
#define IOPT_IOVA_INDEX_TAGS (IOPT_IOVA_INDEX_NODE | IOPT_IOVA_INDEX_DIRECT)

/*
 * One node. @key is the first byte of its span (aligned to the span, so at
 * least 16-byte aligned) ORed with its level; slot i covers
 * [base + (i << 4 * level), base + ((i + 1) << 4 * level) - 1].
 */
struct iopt_iova_index_node {
	uint64_t key;
	uintptr_t slots[IOPT_IOVA_INDEX_SLOTS];
};

#define IOPT_IOVA_INDEX_LEVEL_MASK UINT64_C(0xf)

/* Levels of nodes: shifts 0, 4, ..., 60. */
#define IOPT_IOVA_INDEX_LEVELS \
	(IOPT_IOVA_INDEX_TOP_SHIFT / IOPT_IOVA_INDEX_BITS + 1)

/*
 * Nodes kept instead of freed (node_free() parks them here while
 * iopt_iova_index::spares points to it), and handed out again by node
 * allocation. A split needs one per level where the halves meet, plus two
 * per level (the blocks holding the whole's first and last byte) that
 * removing the whole may free and the halves then need again; a failed
 * insert unlinks at most one per level on each of its two edges.
 */
struct iopt_iova_index_spares {
	struct iopt_iova_index_node *nodes[3 * IOPT_IOVA_INDEX_LEVELS];
	unsigned int n;
};

/*
 * @root: the slot for the whole IOVA space: 0, a sole interval, or a tagged
 *	  pointer to the top node.
 * @nr_nodes: nodes in use (each IOPT_IOVA_INDEX_SLOTS slots).
 * @nr_items: intervals indexed (so a checker can tell a stray one).
 * @spares: private: where node_free() parks nodes: a split's own spares,
 *	    or @retired while a failed insert undoes itself; NULL otherwise.
 * @retired: nodes a failed insert unlinked, not yet freed and not counted
 *	     in @nr_nodes (@retired.n of them), for iopt_iova_index_reclaim().
 */
struct iopt_iova_index {
	uintptr_t root;
	size_t nr_nodes;
	size_t nr_items;
	struct iopt_iova_index_spares *spares;
	struct iopt_iova_index_spares retired;
};

/**
 * iopt_iova_index_init() - Make an empty index
 * @idx: the index; a zero-initialised one is empty too
 */
static inline void iopt_iova_index_init(struct iopt_iova_index *idx)
{
	*idx = (struct iopt_iova_index){ 0 };
}

/**
 * iopt_iova_index_insert() - Index an interval
 * @idx: the index
 * @item: the interval, start <= last; it must overlap no indexed interval
 *
 * Cost: O(levels) plus the slots @item covers whole; allocates at most one
 * node per level where @item meets a neighbour sharing a block.
 * Return: 0; -ENOMEM; -EBUSY while an earlier failed insert's nodes are
 * still retired (the owner must reclaim them first: @retired has room for
 * one insert's).
 * Locking: the owner's lock, exclusive; lock-free lookups may run beside it.
 * On failure: the index is exactly as before (same nodes, same answers);
 * the nodes it had linked wait in @idx->retired for
 * iopt_iova_index_reclaim().
 */
int iopt_iova_index_insert(struct iopt_iova_index *idx,
			   struct iopt_itree_node *item);

/**
 * iopt_iova_index_reclaim() - Free the nodes failed inserts retired
 * @idx: the index
 *
 * Locking: the owner's lock, exclusive, and no lock-free lookup that may
 * have started before the failed insert still running.
 */
void iopt_iova_index_reclaim(struct iopt_iova_index *idx);

/**
 * iopt_iova_index_remove() - Drop an indexed interval
 * @idx: the index
 * @item: an interval inserted earlier, with the same start and last
 *
 * Frees the nodes that no longer separate two intervals; never allocates,
 * cannot fail.
 * Locking: the owner's lock, exclusive.
 */
void iopt_iova_index_remove(struct iopt_iova_index *idx,
			    struct iopt_itree_node *item);

/**
 * iopt_iova_index_split() - Replace an indexed interval by its two halves
 * @idx: the index
 * @whole: an indexed interval
 * @lhs: [whole->start, cut], not indexed
 * @rhs: [cut + 1, whole->last], not indexed
 *
 * Splitting an area (iopt_cut_iova) happens where undoing is no longer
 * possible, so everything that can fail comes first: the nodes the halves
 * may need (one per level at most, where they meet) are allocated up front,
 * the nodes that removing @whole frees are kept too, then @whole goes and
 * the halves come in without touching the heap.
 * Return: 0 or -ENOMEM.
 * Locking: the owner's lock, exclusive.
 * On failure: the index is exactly as before, @whole still indexed.
 */
int iopt_iova_index_split(struct iopt_iova_index *idx,
			  struct iopt_itree_node *whole,
			  struct iopt_itree_node *lhs,
			  struct iopt_itree_node *rhs);

/**
 * iopt_iova_index_destroy() - Free every node, forgetting every interval
 * @idx: the index; empty (and reusable) afterwards
 *
 * Locking: the owner's lock, exclusive.
 */
void iopt_iova_index_destroy(struct iopt_iova_index *idx);

/**
 * iopt_iova_index_lookup() - The indexed interval that contains @iova
 * @idx: the index
 * @iova: any 64-bit address
 *
 * Return: the interval with start <= @iova <= last, or NULL.
 * Locking: the owner's lock, shared; or none beside an insert (acquire
 * loads: what a slot points to was written before it was linked).
 */
static inline struct iopt_itree_node *
iopt_iova_index_lookup(const struct iopt_iova_index *idx, uint64_t iova)
{
	unsigned int shift = 64;	/* the root slot's block: all 2^64 */
	uintptr_t slot = __atomic_load_n(&idx->root, __ATOMIC_ACQUIRE);
	struct iopt_itree_node *item;

	/*
	 * No compare with a node's base: an IOVA outside a node's span but
	 * inside its parent's slot is a hole (no interval holds it), so
	 * whatever the walk finds there fails the bounds test at the end.
	 */
	while (slot & IOPT_IOVA_INDEX_NODE) {
		const struct iopt_iova_index_node *node =
			(const void *)(slot & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);

		if (slot & IOPT_IOVA_INDEX_DIRECT)
			shift -= IOPT_IOVA_INDEX_BITS;
		else
			shift = (unsigned int)(node->key &
					       IOPT_IOVA_INDEX_LEVEL_MASK) *
				IOPT_IOVA_INDEX_BITS;
		slot = __atomic_load_n(&node->slots[(iova >> shift) &
						    (IOPT_IOVA_INDEX_SLOTS - 1)],
				       __ATOMIC_ACQUIRE);
	}
	item = (struct iopt_itree_node *)slot;
	if (!item || iova < item->start || iova > item->last)
		return NULL;
	return item;
}

/**
 * iopt_iova_index_bytes() - Heap memory the index holds
 * @idx: the index
 *
 * Return: bytes of node memory (allocator overhead not included).
 */
size_t iopt_iova_index_bytes(const struct iopt_iova_index *idx);

/**
 * iopt_iova_index_check() - Verify the invariants (tests and debugging)
 * @idx: the index
 *
 * Walks every node: each is canonical and inside its parent's slot, each
 * interval in a slot touches the slot's block and fills every slot of its
 * node that it touches (or a child node does), and the node count matches.
 * O(nodes x slots^2).
 * Return: 0 when sound, -EINVAL at the first broken rule.
 * Locking: the owner's lock, shared.
 */
int iopt_iova_index_check(const struct iopt_iova_index *idx);

#endif /* IOPT_IOVA_INDEX_H */
