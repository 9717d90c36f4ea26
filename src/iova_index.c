/* SPDX-License-Identifier: MIT */
/*
 * iova_index.c - the radix IOVA index (see iova_index.h for the layout and
 * invariants, docs/iova_index.md for the measurements behind the choice).
 *
 * Insert and remove are one recursive walk over the slots an interval
 * touches: in each node, the slots it covers whole are written directly
 * (they cannot hold anything else, intervals never overlap), and the at most
 * two slots it covers in part are descended into. Descending into a slot
 * that holds another value (a sole interval, or a node whose span does not
 * hold the new interval's part) first creates the node that separates the
 * two, at the level of the smallest aligned block holding both, and moves
 * the old value into it. That move changes no answer, which is what makes
 * insert all or nothing cheaply: when an allocation fails, insert runs remove
 * on the half-inserted interval, and remove folds every node left with a
 * single value back into its parent's slot, restoring the canonical shape (a
 * function of the interval set) it started from.
 *
 * Insert also keeps every answer a lock-free lookup may get right while it
 * runs: a node is filled before the release store that links it, a move
 * into a new node happens before that node replaces the slot, and every
 * other store puts the new interval in a slot that no interval used, so a
 * lookup beside an insert finds each old interval and either finds the new
 * one or misses it. Only a failed insert takes nodes out again; it parks
 * them (retired) instead of freeing them, for the owner to free once no
 * lookup can be inside them.
 *
 * Block arithmetic: a node at level k has slots of 2^(4k) bytes and spans
 * 16 << 4k bytes from its base; the top level spans all 2^64, so every bound
 * is clipped to the interval first, and the only end computed past
 * UINT64_MAX is the top level's span, which wraps to UINT64_MAX by design.
 */
#include <errno.h>
#include <stdbool.h>

#include "alloc.h"
#include "iova_index.h"
#include "util.h"

#define NR_LEVELS IOPT_IOVA_INDEX_LEVELS
#define LEVEL_MASK IOPT_IOVA_INDEX_LEVEL_MASK

_Static_assert(IOPT_IOVA_INDEX_TOP_SHIFT % IOPT_IOVA_INDEX_BITS == 0,
	       "radix levels must reach shift 0");
_Static_assert(NR_LEVELS <= LEVEL_MASK + 1, "the level must fit in the key");

typedef struct iopt_iova_index_node node_t;

static bool slot_is_node(uintptr_t slot)
{
	return slot & IOPT_IOVA_INDEX_NODE;
}

/*
 * Every slot write is a release store: an insert runs beside lock-free
 * lookups (iova_index.h), which must see a node or an interval whole once
 * they load the slot that publishes it.
 */
static void slot_set(uintptr_t *slot, uintptr_t value)
{
	__atomic_store_n(slot, value, __ATOMIC_RELEASE);
}

static node_t *slot_node(uintptr_t slot)
{
	return (node_t *)(slot & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);
}

static const struct iopt_itree_node *slot_item(uintptr_t slot)
{
	return (const struct iopt_itree_node *)slot;
}

static unsigned int node_level(const node_t *node)
{
	return (unsigned int)(node->key & LEVEL_MASK);
}

static unsigned int node_shift(const node_t *node)
{
	return node_level(node) * IOPT_IOVA_INDEX_BITS;
}

/* The value of a slot of a node at level @owner (the root's: NR_LEVELS). */
static uintptr_t node_slot(const node_t *node, unsigned int owner)
{
	return (uintptr_t)node | IOPT_IOVA_INDEX_NODE |
	       (node_level(node) + 1 == owner ? IOPT_IOVA_INDEX_DIRECT : 0);
}

static uint64_t node_base(const node_t *node)
{
	return node->key & ~LEVEL_MASK;
}

/* Last byte of the node's span; wraps to UINT64_MAX for the top level. */
static uint64_t node_last(const node_t *node)
{
	return node_base(node) +
	       ((uint64_t)IOPT_IOVA_INDEX_SLOTS << node_shift(node)) - 1;
}

/* First and last byte of slot @i. */
static uint64_t slot_first(const node_t *node, unsigned int i)
{
	return node_base(node) + ((uint64_t)i << node_shift(node));
}

static uint64_t slot_last(const node_t *node, unsigned int i)
{
	return slot_first(node, i) + ((UINT64_C(1) << node_shift(node)) - 1);
}

static bool touches(uint64_t start, uint64_t last, uint64_t first,
		    uint64_t final)
{
	return start <= final && last >= first;
}

/* A zeroed node spanning the smallest aligned block holding [first, last]. */
static node_t *node_alloc(struct iopt_iova_index *idx, uint64_t first,
			  uint64_t last)
{
	struct iopt_iova_index_spares *spares = idx->spares;
	unsigned int level = (iopt_fls64(first ^ last) - 1) /
			     IOPT_IOVA_INDEX_BITS;
	uint64_t span_mask = (UINT64_C(1) << (level * IOPT_IOVA_INDEX_BITS)
			      << IOPT_IOVA_INDEX_BITS) - 1;
	node_t *node;

	if (spares && spares->n) {
		node = spares->nodes[--spares->n];
		*node = (node_t){ 0 };
	} else {
		node = iopt_calloc(1, sizeof(*node));
		if (!node)
			return NULL;
	}
	/* the top level's mask wraps to all ones: base 0 */
	node->key = (first & ~span_mask) | level;
	idx->nr_nodes++;
	return node;
}

static void node_free(struct iopt_iova_index *idx, node_t *node)
{
	struct iopt_iova_index_spares *spares = idx->spares;

	idx->nr_nodes--;
	if (spares && spares->n != IOPT_ARRAY_SIZE(spares->nodes))
		spares->nodes[spares->n++] = node;
	else
		iopt_free(node);
}

static int slot_insert(struct iopt_iova_index *idx, uintptr_t *slot,
		       unsigned int owner, uint64_t first, uint64_t final,
		       uint64_t start, uint64_t last, uintptr_t item);
static void slot_remove(struct iopt_iova_index *idx, uintptr_t *slot,
			unsigned int owner, uint64_t start, uint64_t last,
			uintptr_t item);

/*
 * Add (@add) or remove @item in every slot of @node that [start, last]
 * (already clipped to the node's span) touches. Slots covered whole can hold
 * nothing but @item (intervals never overlap), so they are written directly;
 * the two edge slots are descended into. Adding cannot fail on a node whose
 * touched slots are all 0; removing skips the slots an aborted insert did not
 * reach.
 */
static int node_update(struct iopt_iova_index *idx, node_t *node,
		       uint64_t start, uint64_t last, uintptr_t item, bool add)
{
	unsigned int shift = node_shift(node);
	unsigned int i = (unsigned int)((start - node_base(node)) >> shift);
	unsigned int end = (unsigned int)((last - node_base(node)) >> shift);
	int rc = 0;

	for (; i <= end && !rc; i++) {
		uint64_t first = slot_first(node, i), final = slot_last(node, i);

		if (start <= first && final <= last)
			slot_set(&node->slots[i], add ? item : 0);
		else if (add)
			rc = slot_insert(idx, &node->slots[i], node_level(node),
					 first, final, IOPT_MAX(start, first),
					 IOPT_MIN(last, final), item);
		else
			slot_remove(idx, &node->slots[i], node_level(node),
				    IOPT_MAX(start, first), IOPT_MIN(last, final),
				    item);
	}
	return rc;
}

/*
 * @slot, of a node at level @owner, covers [first, final], which [start,
 * last] touches in part: @item goes there alone if the block is free, into
 * the child node if that spans [start, last], else into a new node
 * separating it from what was there.
 */
static int slot_insert(struct iopt_iova_index *idx, uintptr_t *slot,
		       unsigned int owner, uint64_t first, uint64_t final,
		       uint64_t start, uint64_t last, uintptr_t item)
{
	uint64_t old_start, old_last;
	node_t *node;

	if (!*slot) {
		slot_set(slot, item);
		return 0;
	}
	if (slot_is_node(*slot)) {
		node = slot_node(*slot);
		if (start >= node_base(node) && last <= node_last(node))
			return node_update(idx, node, start, last, item, true);
		old_start = node_base(node);
		old_last = node_last(node);
	} else {
		old_start = IOPT_MAX(slot_item(*slot)->start, first);
		old_last = IOPT_MIN(slot_item(*slot)->last, final);
	}

	node = node_alloc(idx, IOPT_MIN(start, old_start),
			  IOPT_MAX(last, old_last));
	if (!node)
		return -ENOMEM;
	if (slot_is_node(*slot))
		slot_set(&node->slots[(old_start - node_base(node)) >>
				      node_shift(node)],
			 node_slot(slot_node(*slot), node_level(node)));
	else	/* a fresh node has no slot taken: cannot fail */
		(void)node_update(idx, node, old_start, old_last, *slot, true);
	/* the node holds the old value already: a lookup sees no change */
	slot_set(slot, node_slot(node, owner));
	return node_update(idx, node, start, last, item, true);
}

/*
 * A node left with fewer than two different values says no more than its
 * parent's slot can: free it and put that value (or 0) in @slot, a slot of
 * a node at level @owner.
 */
static void slot_fold(struct iopt_iova_index *idx, uintptr_t *slot,
		      unsigned int owner)
{
	node_t *node = slot_node(*slot);
	uintptr_t only = 0;
	unsigned int i;

	for (i = 0; i != IOPT_IOVA_INDEX_SLOTS; i++) {
		if (!node->slots[i] || node->slots[i] == only)
			continue;
		if (only)
			return;
		only = node->slots[i];
	}
	slot_set(slot, slot_is_node(only) ? node_slot(slot_node(only), owner) :
					    only);
	node_free(idx, node);
}

/* A value other than @item or a node holding it: an aborted insert's. */
static void slot_remove(struct iopt_iova_index *idx, uintptr_t *slot,
			unsigned int owner, uint64_t start, uint64_t last,
			uintptr_t item)
{
	node_t *node;

	if (*slot == item) {
		slot_set(slot, 0);
		return;
	}
	if (!slot_is_node(*slot))
		return;
	node = slot_node(*slot);
	if (!touches(start, last, node_base(node), node_last(node)))
		return;
	(void)node_update(idx, node, IOPT_MAX(start, node_base(node)),
			  IOPT_MIN(last, node_last(node)), item, false);
	slot_fold(idx, slot, owner);
}

int iopt_iova_index_insert(struct iopt_iova_index *idx,
			   struct iopt_itree_node *item)
{
	int rc;

	/* retired holds one failed insert's nodes: reclaim them first */
	if (idx->retired.n)
		return -EBUSY;
	rc = slot_insert(idx, &idx->root, NR_LEVELS, 0, UINT64_MAX,
			 item->start, item->last, (uintptr_t)item);
	if (rc) {
		/* the nodes it linked may be on a lookup's path: park them */
		struct iopt_iova_index_spares *spares = idx->spares;

		idx->spares = &idx->retired;
		slot_remove(idx, &idx->root, NR_LEVELS, item->start, item->last,
			    (uintptr_t)item);
		idx->spares = spares;
	} else {
		idx->nr_items++;
	}
	return rc;
}

static void spares_free(struct iopt_iova_index_spares *spares)
{
	while (spares->n)
		iopt_free(spares->nodes[--spares->n]);
}

void iopt_iova_index_reclaim(struct iopt_iova_index *idx)
{
	spares_free(&idx->retired);
}

void iopt_iova_index_remove(struct iopt_iova_index *idx,
			    struct iopt_itree_node *item)
{
	slot_remove(idx, &idx->root, NR_LEVELS, item->start, item->last,
		    (uintptr_t)item);
	idx->nr_items--;
}

int iopt_iova_index_split(struct iopt_iova_index *idx,
			  struct iopt_itree_node *whole,
			  struct iopt_itree_node *lhs,
			  struct iopt_itree_node *rhs)
{
	struct iopt_iova_index_spares spares = { .n = 0 };
	int rc = 0;

	for (; spares.n != NR_LEVELS; spares.n++) {
		spares.nodes[spares.n] = iopt_malloc(sizeof(node_t));
		if (!spares.nodes[spares.n]) {
			rc = -ENOMEM;
			goto out_free;
		}
	}
	idx->spares = &spares;
	iopt_iova_index_remove(idx, whole);
	/* the spares cover every node the halves need: cannot fail */
	(void)iopt_iova_index_insert(idx, lhs);
	(void)iopt_iova_index_insert(idx, rhs);
	idx->spares = NULL;
out_free:
	spares_free(&spares);
	return rc;
}

static void node_destroy(struct iopt_iova_index *idx, node_t *node)
{
	unsigned int i;

	for (i = 0; i != IOPT_IOVA_INDEX_SLOTS; i++)
		if (slot_is_node(node->slots[i]))
			node_destroy(idx, slot_node(node->slots[i]));
	node_free(idx, node);
}

void iopt_iova_index_destroy(struct iopt_iova_index *idx)
{
	iopt_iova_index_reclaim(idx);
	if (slot_is_node(idx->root))
		node_destroy(idx, slot_node(idx->root));
	idx->root = 0;
	idx->nr_items = 0;
}

size_t iopt_iova_index_bytes(const struct iopt_iova_index *idx)
{
	return idx->nr_nodes * sizeof(node_t);
}

/* Every slot of @node that @item touches holds @item or a child node. */
static bool node_check_item(const node_t *node,
			    const struct iopt_itree_node *item)
{
	unsigned int i;

	for (i = 0; i != IOPT_IOVA_INDEX_SLOTS; i++) {
		if (!touches(item->start, item->last, slot_first(node, i),
			     slot_last(node, i)))
			continue;
		if (node->slots[i] != (uintptr_t)item &&
		    !slot_is_node(node->slots[i]))
			return false;
	}
	return true;
}

/* An interval in slot @i: well formed, touching the slot, consistent. */
static bool slot_check_item(const node_t *node, unsigned int i)
{
	const struct iopt_itree_node *item = slot_item(node->slots[i]);

	return !(node->slots[i] & (sizeof(uint64_t) - 1)) &&
	       item->start <= item->last &&
	       touches(item->start, item->last, slot_first(node, i),
		       slot_last(node, i)) &&
	       node_check_item(node, item);
}

/*
 * A node hangs in @slot, of a node at level @owner, covering [first, final]:
 * the slot's tags must say so, the node must lie inside the block, aligned,
 * hold two different values in two slots (so its span is the smallest block
 * holding them), and so must its children.
 */
static int node_check(uintptr_t parent_slot, unsigned int owner,
		      uint64_t first, uint64_t final, size_t *nr_nodes)
{
	const node_t *node = slot_node(parent_slot);
	uint64_t span = (uint64_t)IOPT_IOVA_INDEX_SLOTS << node_shift(node);
	unsigned int i, used = 0;
	uintptr_t one = 0;
	bool two = false;

	(*nr_nodes)++;
	if (parent_slot != node_slot(node, owner) ||
	    node_level(node) >= owner || node_base(node) < first ||
	    node_last(node) > final ||
	    (span && (node_base(node) & (span - 1))))
		return -EINVAL;
	for (i = 0; i != IOPT_IOVA_INDEX_SLOTS; i++) {
		uintptr_t slot = node->slots[i];

		if (!slot)
			continue;
		used++;
		if (slot_is_node(slot) ?
			    node_shift(node) == 0 ||
				    node_check(slot, node_level(node),
					       slot_first(node, i),
					       slot_last(node, i), nr_nodes) :
			    !slot_check_item(node, i))
			return -EINVAL;
		two |= one && one != slot;
		one = slot;
	}
	return two && used >= 2 ? 0 : -EINVAL;
}

int iopt_iova_index_check(const struct iopt_iova_index *idx)
{
	size_t nr_nodes = 0;

	if (slot_is_node(idx->root)) {
		if (node_check(idx->root, NR_LEVELS, 0, UINT64_MAX, &nr_nodes))
			return -EINVAL;
	} else if (idx->root & (sizeof(uint64_t) - 1)) {
		return -EINVAL;
	}
	return nr_nodes == idx->nr_nodes ? 0 : -EINVAL;
}
