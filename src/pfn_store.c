// SPDX-License-Identifier: MIT
/*
 * pfn_store.c - the radix tree behind struct iopt_pfn_store (see pfn_store.h).
 *
 * Level 0 nodes are leaves (64 frames + a presence bitmap), higher levels hold
 * 64 child pointers and a count of non-NULL ones. A node is freed the moment it
 * empties, so "empty" is simply "no root", every clear prunes the path it
 * walked, and an insert that fails half way is undone by clearing what it
 * covered: that also frees the empty nodes it had just created. After a clear
 * the tree shrinks from the top while the root only uses slot 0, so the height
 * follows the largest index present, not the largest index ever stored.
 */
#include "pfn_store.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "util.h"

#define STORE_SHIFT 6
#define STORE_FANOUT (1u << STORE_SHIFT)
#define STORE_MASK (STORE_FANOUT - 1)
#define STORE_MAX_HEIGHT 9

struct store_leaf {
	uint64_t present;		/* bit i: frames[i] is valid */
	uint64_t frames[STORE_FANOUT];
};

struct store_inner {
	unsigned int used;		/* non-NULL slots */
	void *slots[STORE_FANOUT];
};

/* Indexes one node of @level covers: 64^(level + 1). */
static uint64_t level_span(unsigned int level)
{
	return UINT64_C(1) << (STORE_SHIFT * (level + 1));
}

static unsigned int slot_of(uint64_t index, unsigned int level)
{
	return (unsigned int)(index >> (STORE_SHIFT * level)) & STORE_MASK;
}

void iopt_pfn_store_init(struct iopt_pfn_store *s)
{
	*s = (struct iopt_pfn_store){ 0 };
}

static void free_node(void *node, unsigned int level)
{
	struct store_inner *inner = node;
	unsigned int i;

	if (level) {
		for (i = 0; i != STORE_FANOUT; i++)
			if (inner->slots[i])
				free_node(inner->slots[i], level - 1);
	}
	iopt_free(node);
}

void iopt_pfn_store_destroy(struct iopt_pfn_store *s)
{
	if (s->root)
		free_node(s->root, s->height - 1);
	iopt_pfn_store_init(s);
}

/*
 * Nodes come from iopt_malloc(), not iopt_calloc(): glibc's calloc bypasses
 * its per-thread cache, so with calloc a store that gains and loses its one
 * leaf on every access pin + unpin (the common single-page case) sent each
 * free through _int_free into the top chunk and malloc_consolidate(): about
 * a quarter of a pin + unpin. A leaf needs only its bitmap cleared (a frame
 * is read only where its bit is set), which also saves a 520-byte memset.
 */
static struct store_leaf *leaf_alloc(void)
{
	struct store_leaf *leaf = iopt_malloc(sizeof(*leaf));

	if (leaf)
		leaf->present = 0;
	return leaf;
}

static struct store_inner *inner_alloc(void)
{
	struct store_inner *inner = iopt_malloc(sizeof(*inner));

	if (inner)
		memset(inner, 0, sizeof(*inner));
	return inner;
}

/* Add levels on top until index @last fits; cannot leave the tree worse. */
static int store_grow(struct iopt_pfn_store *s, uint64_t last)
{
	if (!s->root) {
		s->height = 1;
		while (last >= level_span(s->height - 1))
			s->height++;
		return 0;
	}
	while (last >= level_span(s->height - 1)) {
		struct store_inner *top = inner_alloc();

		if (!top)
			return -ENOMEM;
		top->slots[0] = s->root;
		top->used = 1;
		s->root = top;
		s->height++;
		s->nodes++;
	}
	return 0;
}

/* The leaf holding @index, created with its path when missing. */
static struct store_leaf *store_leaf_create(struct iopt_pfn_store *s,
					    uint64_t index)
{
	struct store_inner *parent = NULL;
	void **slot = &s->root;
	unsigned int level = s->height - 1;

	for (;;) {
		if (!*slot) {
			*slot = level ? (void *)inner_alloc() : (void *)leaf_alloc();
			if (!*slot)
				return NULL;
			s->nodes++;
			if (parent)
				parent->used++;
		}
		if (!level)
			return *slot;
		parent = *slot;
		slot = &parent->slots[slot_of(index, level)];
		level--;
	}
}

static const struct store_leaf *store_leaf_find(const struct iopt_pfn_store *s,
						uint64_t index)
{
	const void *node = s->root;
	unsigned int level;

	if (!node || index >= level_span(s->height - 1))
		return NULL;
	for (level = s->height - 1; level && node; level--)
		node = ((const struct store_inner *)node)->slots[slot_of(index, level)];
	return node;
}

/* Bits [lo, hi] of a 64-bit word, 0 <= lo <= hi <= 63. */
static uint64_t bit_range(unsigned int lo, unsigned int hi)
{
	uint64_t upto = hi == 63 ? UINT64_MAX : (UINT64_C(2) << hi) - 1;

	return upto & ~((UINT64_C(1) << lo) - 1);
}

/*
 * Clear [start, last] below @node, which covers indexes from @base on at
 * @level. Return: true when @node is empty afterwards (the caller frees it).
 */
static bool clear_node(struct iopt_pfn_store *s, void *node, unsigned int level,
		       uint64_t base, uint64_t start, uint64_t last)
{
	uint64_t child_span, first, final;
	struct store_inner *inner = node;
	unsigned int i;

	start = IOPT_MAX(start, base);
	last = IOPT_MIN(last, base + level_span(level) - 1);
	if (!level) {
		struct store_leaf *leaf = node;
		uint64_t mask = bit_range((unsigned int)(start - base),
					  (unsigned int)(last - base));

		s->count -= (uint64_t)__builtin_popcountll(leaf->present & mask);
		leaf->present &= ~mask;
		return !leaf->present;
	}
	child_span = level_span(level - 1);
	first = (start - base) / child_span;
	final = (last - base) / child_span;
	for (i = (unsigned int)first; i <= final; i++) {
		void *child = inner->slots[i];

		if (child && clear_node(s, child, level - 1, base + i * child_span,
					start, last)) {
			iopt_free(child);
			inner->slots[i] = NULL;
			inner->used--;
			s->nodes--;
		}
	}
	return !inner->used;
}

/* Drop top levels whose root only uses slot 0. */
static void store_shrink(struct iopt_pfn_store *s)
{
	while (s->height > 1) {
		struct store_inner *top = s->root;

		if (top->used != 1 || !top->slots[0])
			return;
		s->root = top->slots[0];
		iopt_free(top);
		s->height--;
		s->nodes--;
	}
}

void iopt_pfn_store_clear(struct iopt_pfn_store *s, uint64_t start, uint64_t last)
{
	uint64_t top_last;

	if (!s->root) {
		s->height = 0;
		return;
	}
	top_last = level_span(s->height - 1) - 1;
	if (start > top_last)
		return;
	if (clear_node(s, s->root, s->height - 1, 0, start,
		       IOPT_MIN(last, top_last))) {
		iopt_free(s->root);
		s->nodes--;
		iopt_pfn_store_init(s);
		return;
	}
	store_shrink(s);
}

int iopt_pfn_store_insert(struct iopt_pfn_store *s, uint64_t start, uint64_t n,
			  const uint64_t *frames)
{
	uint64_t last = start + n - 1;
	uint64_t index = start;
	int rc;

	if (!n || last > IOPT_PFN_STORE_MAX_INDEX || last < start)
		return -EINVAL;
	rc = store_grow(s, last);
	if (rc)
		goto err_shrink;
	while (index <= last) {
		struct store_leaf *leaf = store_leaf_create(s, index);
		unsigned int i;

		if (!leaf) {
			rc = -ENOMEM;
			goto err_clear;
		}
		for (i = index & STORE_MASK; i != STORE_FANOUT && index <= last;
		     i++, index++) {
			assert(!(leaf->present & (UINT64_C(1) << i)));
			leaf->frames[i] = *frames++;
			leaf->present |= UINT64_C(1) << i;
			s->count++;
		}
	}
	return 0;

err_clear:
	/* Also prunes the empty path left by the failed allocation at index. */
	iopt_pfn_store_clear(s, start, index);
	return rc;
err_shrink:
	if (s->root)
		store_shrink(s);
	return rc;
}

bool iopt_pfn_store_load(const struct iopt_pfn_store *s, uint64_t index,
			 uint64_t *frame)
{
	const struct store_leaf *leaf = store_leaf_find(s, index);
	unsigned int i = index & STORE_MASK;

	if (!leaf || !(leaf->present & (UINT64_C(1) << i)))
		return false;
	*frame = leaf->frames[i];
	return true;
}

uint64_t iopt_pfn_store_load_range(const struct iopt_pfn_store *s,
				   uint64_t start, uint64_t n, uint64_t *frames)
{
	uint64_t done = 0;

	while (done != n) {
		const struct store_leaf *leaf = store_leaf_find(s, start + done);
		unsigned int i = (start + done) & STORE_MASK;

		if (!leaf)
			return done;
		for (; i != STORE_FANOUT && done != n; i++, done++) {
			if (!(leaf->present & (UINT64_C(1) << i)))
				return done;
			frames[done] = leaf->frames[i];
		}
	}
	return done;
}

uint64_t iopt_pfn_store_bytes(const struct iopt_pfn_store *s)
{
	/* Both node kinds are 65 words; counted as the larger to stay honest. */
	return s->nodes * IOPT_MAX(sizeof(struct store_leaf),
				   sizeof(struct store_inner));
}
