/* SPDX-License-Identifier: MIT */
/*
 * test_iova_index.c - the radix IOVA index (src/iova_index.[ch]).
 *
 * A wrong answer from the index hands an access or a copy the wrong area, so
 * every lookup the tests make is compared with a brute-force scan of a flat
 * model, on layouts that stress each way the radix can go wrong: byte-granular
 * neighbours sharing a page (and a 64-byte block), areas at 0 and ending at
 * UINT64_MAX, huge and unaligned areas crossing many levels, and dense 4 KiB
 * runs. A failed insert must leave the index exactly as it was, which the
 * canonical shape lets us check with a structural digest.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "iova_index.h"
#include "readers.h"
#include "util.h"

#define MODEL_MAX 512

struct model {
	struct iopt_itree_node items[MODEL_MAX];
	bool used[MODEL_MAX];
};

static struct iopt_itree_node *model_lookup(struct model *m, uint64_t iova)
{
	unsigned int i;

	for (i = 0; i != MODEL_MAX; i++)
		if (m->used[i] && m->items[i].start <= iova &&
		    iova <= m->items[i].last)
			return &m->items[i];
	return NULL;
}

static bool model_overlaps(struct model *m, uint64_t start, uint64_t last)
{
	unsigned int i;

	for (i = 0; i != MODEL_MAX; i++)
		if (m->used[i] && m->items[i].start <= last &&
		    m->items[i].last >= start)
			return true;
	return false;
}

static void check_point(const struct iopt_iova_index *idx, struct model *m,
			uint64_t iova)
{
	struct iopt_itree_node *want = model_lookup(m, iova);
	struct iopt_itree_node *got = iopt_iova_index_lookup(idx, iova);

	if (got != want)
		fail_msg("lookup 0x%llx: got %p want %p", (unsigned long long)iova,
			 (void *)got, (void *)want);
}

static uint64_t rand_in(uint64_t *rng, uint64_t start, uint64_t last)
{
	uint64_t span = last - start, r = iopt_test_rand(rng);

	return start + (span == UINT64_MAX ? r : r % (span + 1));
}

/* Each boundary and its neighbours, plus random points near and far. */
static void check_all(const struct iopt_iova_index *idx, struct model *m,
		      uint64_t *rng)
{
	static const uint64_t fixed[] = { 0, 1, 63, 64, 4095, 4096,
					  UINT64_MAX - 4096, UINT64_MAX - 1,
					  UINT64_MAX };
	unsigned int i, used = 0;

	assert_int_equal(iopt_iova_index_check(idx), 0);
	for (i = 0; i != IOPT_ARRAY_SIZE(fixed); i++)
		check_point(idx, m, fixed[i]);
	for (i = 0; i != MODEL_MAX; i++) {
		if (!m->used[i])
			continue;
		used++;
		check_point(idx, m, m->items[i].start);
		check_point(idx, m, m->items[i].start - 1);
		check_point(idx, m, m->items[i].last);
		check_point(idx, m, m->items[i].last + 1);
		check_point(idx, m, rand_in(rng, m->items[i].start,
					    m->items[i].last));
	}
	for (i = 0; i != 64; i++)
		check_point(idx, m, iopt_test_rand(rng));
	assert_int_equal(idx->nr_items, used);
}

/*
 * A random interval from one of the layouts. @base is where the dense
 * layouts sit, so they meet at 0, at the top, and in the middle.
 */
static void random_interval(uint64_t *rng, uint64_t base, uint64_t *start,
			    uint64_t *last)
{
	uint64_t r = iopt_test_rand(rng), len;

	switch (r % 6) {
	case 0:	/* byte-granular, a few per page */
		*start = base + iopt_test_rand(rng) % 16384;
		len = 1 + iopt_test_rand(rng) % 700;
		break;
	case 1:	/* 4 KiB pages, dense */
		*start = base + (iopt_test_rand(rng) % 256) * 4096;
		len = 4096 * (1 + iopt_test_rand(rng) % 4);
		break;
	case 2:	/* huge, unaligned, anywhere */
		*start = iopt_test_rand(rng) >> (iopt_test_rand(rng) % 64);
		len = 1 + (iopt_test_rand(rng) >> (iopt_test_rand(rng) % 64));
		break;
	case 3:	/* ending at UINT64_MAX */
		len = 1 + (iopt_test_rand(rng) >> (iopt_test_rand(rng) % 64));
		*start = UINT64_MAX - len + 1;
		break;
	case 4:	/* starting at 0 */
		*start = 0;
		len = 1 + (iopt_test_rand(rng) >> (iopt_test_rand(rng) % 64));
		break;
	default: /* 2 MiB-ish, page aligned, around base */
		*start = base + (iopt_test_rand(rng) % 64) * (UINT64_C(1) << 20);
		len = (1 + iopt_test_rand(rng) % 1024) * 4096;
		break;
	}
	if (len == 0 || *start + (len - 1) < *start)
		len = UINT64_MAX - *start + 1;
	*last = *start + (len - 1);
}

static uint64_t random_base(uint64_t *rng)
{
	static const uint64_t bases[] = { 0, UINT64_MAX - (UINT64_C(1) << 31) + 1,
					  UINT64_C(1) << 40, 0x123456789000 };

	return bases[iopt_test_rand(rng) % IOPT_ARRAY_SIZE(bases)];
}

/*
 * Put a random interval that overlaps no used one in slot @i of the model
 * (not yet used); false when the draw overlaps, or is the whole space.
 */
static bool pick_free(struct model *m, unsigned int i, uint64_t *rng)
{
	uint64_t start, last;

	random_interval(rng, random_base(rng), &start, &last);
	if ((start == 0 && last == UINT64_MAX) || model_overlaps(m, start, last))
		return false;
	m->items[i].start = start;
	m->items[i].last = last;
	return true;
}

/* Insert a random free interval into slot @i of the model and the index. */
static bool try_insert(struct iopt_iova_index *idx, struct model *m,
		       unsigned int i, uint64_t *rng)
{
	if (!pick_free(m, i, rng))
		return false;
	assert_int_equal(iopt_iova_index_insert(idx, &m->items[i]), 0);
	m->used[i] = true;
	return true;
}

/* An empty model and index, for the randomized cases. */
static struct model *model_new(struct iopt_iova_index *idx)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	iopt_iova_index_init(idx);
	return m;
}

static void test_iova_index_random(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 3000 : 40000, n;
	uint64_t rng = iopt_test_seed() | 1;
	struct iopt_iova_index idx;
	struct model *m;
	long live = iopt_alloc_live();

	(void)state;
	m = model_new(&idx);
	for (n = 0; n != rounds; n++) {
		unsigned int i = (unsigned int)(iopt_test_rand(&rng) % MODEL_MAX);

		/* grow towards full for the first half, then shrink */
		if (m->used[i] && (n > rounds / 2 || iopt_test_rand(&rng) % 4 == 0)) {
			iopt_iova_index_remove(&idx, &m->items[i]);
			m->used[i] = false;
		} else if (!m->used[i]) {
			try_insert(&idx, m, i, &rng);
		}
		if (n % 64 == 0 || n == rounds - 1)
			check_all(&idx, m, &rng);
		else
			check_point(&idx, m, iopt_test_rand(&rng));
	}
	for (n = 0; n != MODEL_MAX; n++)
		if (m->used[n])
			iopt_iova_index_remove(&idx, &m->items[n]);
	/* removal folds every node away */
	assert_int_equal(idx.root, 0);
	assert_int_equal(idx.nr_nodes, 0);
	assert_int_equal(iopt_alloc_live(), live);
	free(m);
}

/* Byte-granular neighbours: every byte of two pages owned, then holes. */
static void test_iova_index_bytes(void **state)
{
	static const uint64_t bases[] = { 0, 0x7000, UINT64_MAX - 8191 };
	struct iopt_iova_index idx;
	struct model *m;
	uint64_t rng = 7, b, p;
	unsigned int i, k;

	(void)state;
	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	for (b = 0; b != IOPT_ARRAY_SIZE(bases); b++) {
		iopt_iova_index_init(&idx);
		memset(m, 0, sizeof(*m));
		/* pieces of 1..40 bytes tiling 8 KiB, every other one mapped */
		for (i = 0, p = bases[b]; p - bases[b] < 8192 && i < MODEL_MAX; i++) {
			uint64_t len = 1 + iopt_test_rand(&rng) % 40;

			len = IOPT_MIN(len, 8192 - (p - bases[b]));
			m->items[i] = (struct iopt_itree_node){ .start = p,
								.last = p + len - 1 };
			if (i % 2 == 0) {
				assert_int_equal(iopt_iova_index_insert(&idx, &m->items[i]), 0);
				m->used[i] = true;
			}
			p += len;
		}
		check_all(&idx, m, &rng);
		for (p = bases[b]; p - bases[b] < 8192; p++)
			check_point(&idx, m, p);
		/* fill the holes, then take the first set out again */
		for (k = 1; k < i; k += 2) {
			assert_int_equal(iopt_iova_index_insert(&idx, &m->items[k]), 0);
			m->used[k] = true;
		}
		for (k = 0; k < i; k += 2) {
			iopt_iova_index_remove(&idx, &m->items[k]);
			m->used[k] = false;
		}
		for (p = bases[b]; p - bases[b] < 8192; p++)
			check_point(&idx, m, p);
		check_all(&idx, m, &rng);
		for (k = 1; k < i; k += 2)
			iopt_iova_index_remove(&idx, &m->items[k]);
		assert_int_equal(idx.nr_nodes, 0);
		assert_int_equal(idx.root, 0);
	}
	free(m);
}

/* The extremes: one byte at 0 and at UINT64_MAX, and [0, MAX - 1] + [MAX]. */
static void test_iova_index_edges(void **state)
{
	struct iopt_itree_node lo = { .start = 0, .last = 0 };
	struct iopt_itree_node hi = { .start = UINT64_MAX, .last = UINT64_MAX };
	struct iopt_itree_node most = { .start = 0, .last = UINT64_MAX - 1 };
	struct iopt_itree_node all = { .start = 0, .last = UINT64_MAX };
	struct iopt_iova_index idx;

	(void)state;
	iopt_iova_index_init(&idx);
	assert_null(iopt_iova_index_lookup(&idx, 0));
	assert_int_equal(iopt_iova_index_insert(&idx, &hi), 0);
	assert_int_equal(idx.nr_nodes, 0);	/* alone: in the root slot */
	assert_ptr_equal(iopt_iova_index_lookup(&idx, UINT64_MAX), &hi);
	assert_null(iopt_iova_index_lookup(&idx, UINT64_MAX - 1));
	assert_int_equal(iopt_iova_index_insert(&idx, &lo), 0);
	assert_int_equal(iopt_iova_index_check(&idx), 0);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, 0), &lo);
	assert_null(iopt_iova_index_lookup(&idx, 1));
	assert_ptr_equal(iopt_iova_index_lookup(&idx, UINT64_MAX), &hi);
	iopt_iova_index_remove(&idx, &lo);
	assert_int_equal(idx.nr_nodes, 0);
	assert_int_equal(iopt_iova_index_insert(&idx, &most), 0);
	assert_int_equal(iopt_iova_index_check(&idx), 0);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, 0), &most);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, UINT64_MAX - 1), &most);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, UINT64_MAX), &hi);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, UINT64_C(1) << 63), &most);
	iopt_iova_index_remove(&idx, &most);
	iopt_iova_index_remove(&idx, &hi);
	assert_int_equal(idx.nr_nodes, 0);
	assert_int_equal(idx.root, 0);
	/* the whole space in one interval lives in the root slot */
	assert_int_equal(iopt_iova_index_insert(&idx, &all), 0);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, 12345), &all);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, UINT64_MAX), &all);
	iopt_iova_index_remove(&idx, &all);
	assert_null(iopt_iova_index_lookup(&idx, 12345));
	iopt_iova_index_destroy(&idx);
}

/*
 * Nodes a dense run [first, last] of page-aligned 4 KiB areas needs: one per
 * block of each level whose slots the run tells apart (each such block holds
 * two areas or two children); above the first level where the whole run sits
 * in one slot, path compression hangs that node straight from the root.
 */
static size_t dense_nodes(uint64_t first, uint64_t last)
{
	unsigned int shift;
	size_t n = 0;

	for (shift = 12; shift <= IOPT_IOVA_INDEX_TOP_SHIFT &&
			 (first >> shift) != (last >> shift);
	     shift += IOPT_IOVA_INDEX_BITS)
		n += shift == IOPT_IOVA_INDEX_TOP_SHIFT ? 1 :
		     (last >> (shift + IOPT_IOVA_INDEX_BITS)) -
			     (first >> (shift + IOPT_IOVA_INDEX_BITS)) + 1;
	return n;
}

/* A fresh index over @n 4 KiB areas from 16 MiB up; the caller frees them. */
static struct iopt_itree_node *dense_run(struct iopt_iova_index *idx,
					 unsigned int n)
{
	struct iopt_itree_node *items = calloc(n, sizeof(*items));
	unsigned int i;

	assert_non_null(items);
	iopt_iova_index_init(idx);
	for (i = 0; i != n; i++) {
		items[i].start = 0x1000000 + (uint64_t)i * 4096;
		items[i].last = items[i].start + 4095;
		assert_int_equal(iopt_iova_index_insert(idx, &items[i]), 0);
	}
	assert_int_equal(iopt_iova_index_check(idx), 0);
	return items;
}

/* Dense 4 KiB areas sit one per slot of the 4 KiB level: ~9 bytes each. */
static void test_iova_index_dense_memory(void **state)
{
	const unsigned int n = 4096;
	struct iopt_itree_node *items;
	struct iopt_iova_index idx;
	unsigned int i;

	(void)state;
	items = dense_run(&idx, n);
	/* 256 + 16 + 1 nodes below 2^24, none above: the root points at 2^24's */
	assert_int_equal(idx.nr_nodes,
			 dense_nodes(items[0].start, items[n - 1].last));
	assert_int_equal(idx.nr_nodes, 256 + 16 + 1);
	assert_int_equal(iopt_iova_index_bytes(&idx),
			 idx.nr_nodes * sizeof(struct iopt_iova_index_node));
	assert_true(iopt_iova_index_bytes(&idx) <= 10 * n);
	for (i = 0; i != n; i++)
		assert_ptr_equal(iopt_iova_index_lookup(&idx, items[i].start + i % 4096),
				 &items[i]);
	iopt_iova_index_destroy(&idx);
	assert_int_equal(idx.nr_nodes, 0);
	free(items);
}

/*
 * The tag follows a node that moves: a level-3 node hung from the root (not
 * DIRECT) becomes DIRECT when a level-4 node is inserted between them, and
 * loses the tag again when removing the third interval folds that node away.
 */
static void direct_tag_moves(void)
{
	struct iopt_itree_node a = { .start = 0x1000, .last = 0x1fff };
	struct iopt_itree_node b = { .start = 0x2000, .last = 0x2fff };
	struct iopt_itree_node c = { .start = 0x20000, .last = 0x20fff };
	struct iopt_iova_index_node *top;
	struct iopt_iova_index idx;

	iopt_iova_index_init(&idx);
	assert_int_equal(iopt_iova_index_insert(&idx, &a), 0);
	assert_int_equal(iopt_iova_index_insert(&idx, &b), 0);
	assert_int_equal(idx.root & IOPT_IOVA_INDEX_TAGS, IOPT_IOVA_INDEX_NODE);
	assert_int_equal(iopt_iova_index_insert(&idx, &c), 0);
	assert_int_equal(iopt_iova_index_check(&idx), 0);
	top = (void *)(idx.root & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);
	assert_int_equal(top->slots[0] & IOPT_IOVA_INDEX_TAGS,
			 IOPT_IOVA_INDEX_TAGS);
	assert_ptr_equal((void *)top->slots[2], &c);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, 0x2123), &b);
	iopt_iova_index_remove(&idx, &c);
	assert_int_equal(iopt_iova_index_check(&idx), 0);
	assert_int_equal(idx.nr_nodes, 1);
	assert_int_equal(idx.root & IOPT_IOVA_INDEX_TAGS, IOPT_IOVA_INDEX_NODE);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, 0x1123), &a);
	assert_null(iopt_iova_index_lookup(&idx, 0x20123));
	iopt_iova_index_destroy(&idx);
}

/*
 * The DIRECT tag: a dense run below 2^24 hangs from the root across a
 * compressed chain (root slot without the tag) while its level-3 nodes sit
 * one level below their parents (tag set). A wrong tag in either direction
 * fails the check, and lookups outside the compressed node's span, which
 * the walk never compares with the node's base, find nothing.
 */
static void test_iova_index_direct_tag(void **state)
{
	const unsigned int n = 512;
	struct iopt_itree_node *items;
	struct iopt_iova_index_node *top, *mid, *leaf;
	struct iopt_iova_index idx;
	unsigned int i;

	(void)state;
	items = dense_run(&idx, n);
	/*
	 * 2 MiB of areas: from the root straight to a level-5 node (1 MiB
	 * slots), over two level-4 nodes, over 32 level-3 nodes (4 KiB slots)
	 */
	assert_int_equal(idx.nr_nodes, 1 + 2 + 32);
	assert_true(idx.root & IOPT_IOVA_INDEX_NODE);
	assert_false(idx.root & IOPT_IOVA_INDEX_DIRECT);
	top = (void *)(idx.root & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);
	assert_true(top->slots[0] & IOPT_IOVA_INDEX_DIRECT);
	assert_true(top->slots[1] & IOPT_IOVA_INDEX_DIRECT);
	mid = (void *)(top->slots[1] & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);
	assert_true(mid->slots[0] & IOPT_IOVA_INDEX_DIRECT);
	leaf = (void *)(mid->slots[0] & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);
	assert_ptr_equal((void *)leaf->slots[0], &items[256]);

	top->slots[1] &= ~(uintptr_t)IOPT_IOVA_INDEX_DIRECT;
	assert_int_equal(iopt_iova_index_check(&idx), -EINVAL);
	top->slots[1] |= IOPT_IOVA_INDEX_DIRECT;
	idx.root |= IOPT_IOVA_INDEX_DIRECT;
	assert_int_equal(iopt_iova_index_check(&idx), -EINVAL);
	idx.root &= ~(uintptr_t)IOPT_IOVA_INDEX_DIRECT;
	assert_int_equal(iopt_iova_index_check(&idx), 0);

	for (i = 0; i < n; i += 37) {
		uint64_t off = items[i].start + 123;

		assert_ptr_equal(iopt_iova_index_lookup(&idx, off), &items[i]);
		/* same low bits, other blocks: the same slots, then the bounds */
		assert_null(iopt_iova_index_lookup(&idx, off + 0x1000000));
		assert_null(iopt_iova_index_lookup(&idx, off - 0x1000000));
		assert_null(iopt_iova_index_lookup(&idx, off | (UINT64_C(1) << 63)));
	}
	iopt_iova_index_destroy(&idx);
	free(items);
	direct_tag_moves();
}

/* Node contents, with child nodes by content: equal for equal shapes. */
static uint64_t digest_slot(uintptr_t slot)
{
	const struct iopt_iova_index_node *node;
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned int i;

	if (!(slot & IOPT_IOVA_INDEX_NODE))
		return slot;
	node = (const void *)(slot & ~(uintptr_t)IOPT_IOVA_INDEX_TAGS);
	h = (h ^ (slot & IOPT_IOVA_INDEX_TAGS) ^ node->key) * 0x100000001b3ull;
	for (i = 0; i != IOPT_IOVA_INDEX_SLOTS; i++)
		h = (h ^ digest_slot(node->slots[i])) * 0x100000001b3ull;
	return h ^ 1;
}

/*
 * Every allocation an insert makes fails in turn: the index keeps its shape,
 * its answers and its node count; the nodes it had linked wait, retired,
 * for iopt_iova_index_reclaim(), and then no memory stays behind.
 */
static void test_iova_index_fail_nth(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 40 : 400, r, k, fired = 0;
	uint64_t rng = iopt_test_seed() ^ 0x5eed;
	struct iopt_iova_index idx;
	struct model *m;

	(void)state;
	m = model_new(&idx);
	for (r = 0; r != rounds; r++) {
		unsigned int i = (unsigned int)(iopt_test_rand(&rng) % MODEL_MAX);
		uint64_t start, last, digest = digest_slot(idx.root);
		size_t nodes = idx.nr_nodes;
		unsigned long nth;
		long live;

		if (m->used[i]) {
			iopt_iova_index_remove(&idx, &m->items[i]);
			m->used[i] = false;
			continue;
		}
		if (!pick_free(m, i, &rng))
			continue;
		start = m->items[i].start;
		last = m->items[i].last;
		for (nth = 1;; nth++) {
			int rc;

			live = iopt_alloc_live();
			iopt_fail_nth_arm(nth);
			rc = iopt_iova_index_insert(&idx, &m->items[i]);
			iopt_fail_nth_disarm();
			if (!iopt_fail_nth_fired()) {
				assert_int_equal(rc, 0);
				break;
			}
			assert_int_equal(rc, -ENOMEM);
			fired++;
			/* linked nodes wait for the owner, unlinked ones do not */
			assert_int_equal(iopt_alloc_live(),
					 live + (long)idx.retired.n);
			iopt_iova_index_reclaim(&idx);
			assert_int_equal(iopt_alloc_live(), live);
			assert_int_equal(idx.nr_nodes, nodes);
			assert_true(digest_slot(idx.root) == digest);
			for (k = 0; k != 8; k++)
				check_point(&idx, m, start + k * ((last - start) / 8));
			check_point(&idx, m, last);
		}
		m->used[i] = true;
		if (r % 32 == 0)
			check_all(&idx, m, &rng);
	}
	/* the sweep did reach allocations that push neighbours down */
	assert_true(fired > rounds / 8);
	iopt_iova_index_destroy(&idx);
	assert_int_equal(idx.nr_nodes, 0);
	free(m);
}

/*
 * A failed insert that had linked a node: [0x800, 0x17ff] alone in the root,
 * then [0x1800, 0x1fff] needs a level-3 node (linked at once, holding the
 * first in slots 0 and 1) and a level-2 one under slot 1; failing the second
 * allocation leaves the first retired, unlinked but allocated, for
 * iopt_iova_index_reclaim(), and refuses further inserts until then.
 */
static void test_iova_index_retire(void **state)
{
	struct iopt_itree_node x = { .start = 0x800, .last = 0x17ff };
	struct iopt_itree_node y = { .start = 0x1800, .last = 0x1fff };
	struct iopt_iova_index idx;
	long live = iopt_alloc_live();

	(void)state;
	iopt_iova_index_init(&idx);
	assert_int_equal(iopt_iova_index_insert(&idx, &x), 0);
	assert_int_equal(idx.root, (uintptr_t)&x);
	iopt_fail_nth_arm(2);
	assert_int_equal(iopt_iova_index_insert(&idx, &y), -ENOMEM);
	iopt_fail_nth_disarm();
	assert_true(iopt_fail_nth_fired());
	assert_int_equal(idx.root, (uintptr_t)&x);
	assert_int_equal(idx.nr_nodes, 0);
	assert_int_equal(idx.retired.n, 1);
	assert_int_equal(iopt_alloc_live(), live + 1);
	assert_ptr_equal(iopt_iova_index_lookup(&idx, 0x1000), &x);
	assert_null(iopt_iova_index_lookup(&idx, 0x1800));
	/* no second insert until the owner has reclaimed: retired is full */
	assert_int_equal(iopt_iova_index_insert(&idx, &y), -EBUSY);
	assert_int_equal(idx.retired.n, 1);
	iopt_iova_index_reclaim(&idx);
	assert_int_equal(idx.retired.n, 0);
	assert_int_equal(iopt_alloc_live(), live);
	/* and with room, both go in: two nodes */
	assert_int_equal(iopt_iova_index_insert(&idx, &y), 0);
	assert_int_equal(idx.nr_nodes, 2);
	assert_int_equal(iopt_iova_index_check(&idx), 0);
	iopt_iova_index_destroy(&idx);
	assert_int_equal(iopt_alloc_live(), live);
}

/*
 * Lookups with no lock beside inserts, as lock-free readers run beside a
 * map (readers.h): a reader looks up the intervals indexed before the
 * writer began, at a random byte of each, and must find each one every
 * time; whatever else it finds, at random points anywhere, must be one of
 * the model's intervals. The writer inserts random intervals (byte-grained
 * ones reshape the nodes the old ones sit in), some under a fail-nth sweep
 * whose retired nodes it frees after a grace period, as the IOAS does.
 */
struct beside {
	const struct iopt_iova_index *idx;
	const struct model *m;
	unsigned int old[MODEL_MAX / 4];	/* m->items indexes, immutable */
	unsigned int nold;
	uint64_t seed;
	atomic_bool stop;
	atomic_ulong lookups;
};

static void beside_lookup(struct beside *b, uint64_t *rng)
{
	const struct iopt_itree_node *o =
		&b->m->items[b->old[iopt_test_rand(rng) % b->nold]];
	const struct iopt_itree_node *got;

	assert_ptr_equal(iopt_iova_index_lookup(b->idx,
						rand_in(rng, o->start, o->last)),
			 o);
	got = iopt_iova_index_lookup(b->idx, iopt_test_rand(rng));
	assert_true(!got || (got >= b->m->items &&
			     got < b->m->items + MODEL_MAX));
}

static void *beside_reader(void *arg)
{
	struct beside *b = arg;
	uint64_t rng = b->seed;

	while (!atomic_load(&b->stop)) {
		struct iopt_reader_slot *slot = iopt_reader_begin();
		unsigned int k;

		assert_non_null(slot);
		for (k = 0; k != 16; k++)
			beside_lookup(b, &rng);
		iopt_reader_end(slot);
		atomic_fetch_add(&b->lookups, 16);
	}
	return NULL;
}

/* Insert into slot @i as try_insert(), each allocation failing in turn. */
static bool beside_insert_sweep(struct iopt_iova_index *idx, struct model *m,
				unsigned int i, uint64_t *rng,
				unsigned int *retired)
{
	unsigned long nth;

	if (!pick_free(m, i, rng))
		return false;
	for (nth = 1;; nth++) {
		int rc;

		iopt_fail_nth_arm(nth);
		rc = iopt_iova_index_insert(idx, &m->items[i]);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired())
			break;
		assert_int_equal(rc, -ENOMEM);
		*retired += idx->retired.n;
		iopt_readers_synchronize();
		iopt_iova_index_reclaim(idx);
	}
	m->used[i] = true;
	return true;
}

static void test_iova_index_lookup_beside_insert(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 2 : 8, r, i, retired = 0;
	uint64_t rng = iopt_test_seed() ^ 0xbe51de;
	struct iopt_iova_index idx;
	struct beside b = { 0 };
	long live = iopt_alloc_live();
	pthread_t reader;
	struct model *m;

	(void)state;
	if (iopt_readers_enable())
		skip();	/* valgrind: its tools do not model the grace period */
	m = model_new(&idx);
	b.idx = &idx;
	b.m = m;
	for (r = 0; r != rounds; r++) {
		memset(m, 0, sizeof(*m));
		for (b.nold = 0, i = 0; i != IOPT_ARRAY_SIZE(b.old); i++)
			if (try_insert(&idx, m, i, &rng))
				b.old[b.nold++] = i;
		assert_true(b.nold > 0);
		b.seed = rng;
		atomic_store(&b.stop, false);
		atomic_store(&b.lookups, 0);
		assert_int_equal(pthread_create(&reader, NULL, beside_reader, &b),
				 0);
		while (!atomic_load(&b.lookups))
			sched_yield();
		for (; i != MODEL_MAX; i++)
			(void)(i % 4 ? try_insert(&idx, m, i, &rng) :
				       beside_insert_sweep(&idx, m, i, &rng,
							   &retired));
		atomic_store(&b.stop, true);
		assert_int_equal(pthread_join(reader, NULL), 0);
		check_all(&idx, m, &rng);
		for (i = 0; i != MODEL_MAX; i++)
			if (m->used[i])
				iopt_iova_index_remove(&idx, &m->items[i]);
		assert_int_equal(idx.nr_nodes, 0);
	}
	print_message("lookups beside inserts: %u retired nodes reclaimed\n",
		      retired);
	assert_int_equal(iopt_alloc_live(), live);
	free(m);
}

/*
 * Split random intervals at random points under a fail-nth sweep: only the
 * up-front spares may fail (the index then unchanged), never an allocation
 * after the whole is gone, and the halves answer like the model.
 */
static void test_iova_index_split(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 300 : 3000, r, filled = 0;
	uint64_t rng = iopt_test_seed() ^ 0x5b117;
	struct iopt_iova_index idx;
	struct model *m;
	long live = iopt_alloc_live();

	(void)state;
	m = model_new(&idx);
	for (r = 0; r != rounds; r++) {
		unsigned int i = (unsigned int)(iopt_test_rand(&rng) % MODEL_MAX);
		unsigned int j = (unsigned int)(iopt_test_rand(&rng) % MODEL_MAX);
		struct iopt_itree_node *whole = &m->items[i];
		uint64_t cut, digest = digest_slot(idx.root);
		size_t nodes = idx.nr_nodes;
		unsigned long nth;

		if (!m->used[i] || filled < MODEL_MAX / 2) {
			filled += !m->used[i] && try_insert(&idx, m, i, &rng);
			continue;
		}
		if (m->used[j] || whole->start == whole->last)
			continue;
		cut = rand_in(&rng, whole->start, whole->last - 1);
		m->items[j] = (struct iopt_itree_node){ .start = cut + 1,
							.last = whole->last };
		for (nth = 1;; nth++) {
			struct iopt_itree_node lhs = { .start = whole->start,
						       .last = cut };
			int rc;

			iopt_fail_nth_arm(nth);
			rc = iopt_iova_index_split(&idx, whole, &lhs, &m->items[j]);
			iopt_fail_nth_disarm();
			if (!iopt_fail_nth_fired()) {
				assert_int_equal(rc, 0);
				/* the halves took what the whole and spares had */
				assert_true(nth <= 16 + 1);
				iopt_iova_index_remove(&idx, &lhs);
				whole->last = cut;
				assert_int_equal(iopt_iova_index_insert(&idx, whole), 0);
				break;
			}
			assert_int_equal(rc, -ENOMEM);
			assert_int_equal(idx.nr_nodes, nodes);
			assert_true(digest_slot(idx.root) == digest);
		}
		m->used[j] = true;
		filled++;
		check_point(&idx, m, cut);
		check_point(&idx, m, cut + 1);
		if (r % 64 == 0)
			check_all(&idx, m, &rng);
	}
	check_all(&idx, m, &rng);
	iopt_iova_index_destroy(&idx);
	assert_int_equal(iopt_alloc_live(), live);
	free(m);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_iova_index_random),
	cmocka_unit_test(test_iova_index_bytes),
	cmocka_unit_test(test_iova_index_edges),
	cmocka_unit_test(test_iova_index_dense_memory),
	cmocka_unit_test(test_iova_index_direct_tag),
	cmocka_unit_test(test_iova_index_fail_nth),
	cmocka_unit_test(test_iova_index_retire),
	cmocka_unit_test(test_iova_index_lookup_beside_insert),
	cmocka_unit_test(test_iova_index_split),
};

IOPT_TEST_MAIN(tests)
