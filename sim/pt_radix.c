/* SPDX-License-Identifier: MIT */
/*
 * pt_radix.c - map, unmap, translate and iterate over any sim_pt_format.
 *
 * The design (arena, concurrency, table life cycle) is in pt_radix.h. The
 * algorithms follow domain-contract.md §1.2-1.3 and pagetable-formats.md
 * §3.2:
 * - map descends once: a recursive walk keeps its place in every table on
 *   the way down and fills consecutive leaves without returning to the root;
 *   at each entry it installs the largest leaf the level, the bitmap, the
 *   alignment of iova|oa and the remaining length allow, else descends.
 *   A leaf may replace empty tables (which go to the caller's gather to be
 *   synced before map returns), never a present translation (-EADDRINUSE).
 * - unmap never splits a leaf and never allocates: a leaf starting at the
 *   current position is removed whole; a range starting inside a leaf is
 *   refused. A lower table is freed only when the range covers all of it,
 *   and then without clearing its entries (a stale walk before the sync
 *   still sees them, as it would on hardware).
 */
#include "pt_radix.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"
#include "journal.h"
#include "util.h"

#define TOP_LEVEL_MASK	UINT64_C(7)

static uint64_t mask_upto(unsigned int n)
{
	return n >= 63 ? UINT64_MAX : (UINT64_C(2) << n) - 1;
}

static unsigned int entry_shift(const struct sim_pt *pt, unsigned int level)
{
	return pt->fmt->granule_lg2 + SIM_PT_ENTRIES_LG2 * level;
}

static unsigned int entry_index(const struct sim_pt *pt, uint64_t iova,
				unsigned int level)
{
	return (unsigned int)(iova >> entry_shift(pt, level)) &
	       (SIM_PT_ENTRIES - 1);
}

/* Last IOVA a table at @level can translate when it is the root. */
static uint64_t level_va_last(const struct sim_pt *pt, unsigned int level)
{
	unsigned int bits = entry_shift(pt, level) + SIM_PT_ENTRIES_LG2;

	return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

static uint64_t meta_pa(const struct sim_pt *pt, const struct sim_pt_meta *m)
{
	return pt->arena_pa + (uint64_t)(m - pt->meta) * SIM_PT_TABLE_SIZE;
}

/* Allocate a zeroed table; returns its sim-PA or 0 when the arena is full. */
static uint64_t table_alloc(struct sim_pt *pt, unsigned int level,
			    uint64_t va_first)
{
	struct sim_pt_meta *m = NULL;
	bool recycled = false;
	uint64_t pa;

	pthread_mutex_lock(&pt->alloc_lock);
	if (pt->fail_tables == 0)
		goto out_unlock;
	if (pt->fail_tables > 0)
		pt->fail_tables--;
	if (pt->free_head) {
		m = &pt->meta[pt->free_head - 1];
		pt->free_head = m->next_free;
		recycled = true;
	} else if (pt->fresh < pt->arena_pages) {
		m = &pt->meta[pt->fresh++];
	} else {
		goto out_unlock;
	}
	pt->nr_live++;
	m->level = (uint8_t)level;
	m->va_first = va_first;
	__atomic_add_fetch(&m->gen, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&m->state, SIM_TABLE_LIVE, __ATOMIC_RELEASE);
out_unlock:
	pthread_mutex_unlock(&pt->alloc_lock);
	if (!m)
		return 0;
	pa = meta_pa(pt, m);
	if (recycled)
		memset(sim_pt_table(pt, pa), 0, SIM_PT_TABLE_SIZE);
	return pa;
}

/* Put @m on the free list; caller holds alloc_lock. */
static void table_free_locked(struct sim_pt *pt, struct sim_pt_meta *m)
{
	__atomic_store_n(&m->state, SIM_TABLE_FREE, __ATOMIC_RELEASE);
	m->next_free = pt->free_head;
	pt->free_head = (uint32_t)(m - pt->meta) + 1;
}

/* Metadata of an arena page the engine itself handed out. */
static struct sim_pt_meta *table_meta(const struct sim_pt *pt, uint64_t pa)
{
	return &pt->meta[(pa - pt->arena_pa) / SIM_PT_TABLE_SIZE];
}

/* Free a table that was never reachable (lost an install race). */
static void table_free_unused(struct sim_pt *pt, uint64_t pa)
{
	pthread_mutex_lock(&pt->alloc_lock);
	pt->nr_live--;
	table_free_locked(pt, table_meta(pt, pa));
	pthread_mutex_unlock(&pt->alloc_lock);
}

/* Move an unlinked table to the quarantine via @g. */
static void table_unlink_to(struct sim_pt *pt, uint64_t pa,
			    struct iopt_iotlb_gather *g)
{
	struct sim_pt_meta *m = table_meta(pt, pa);

	pthread_mutex_lock(&pt->alloc_lock);
	pt->nr_live--;
	pt->nr_pending++;
	__atomic_store_n(&m->state, SIM_TABLE_PENDING, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pt->alloc_lock);
	iopt_iotlb_gather_add_page(g, &m->link, m->level);
}

void iopt_sim_pt_release(struct sim_pt *pt, struct iopt_gather_page *list)
{
	pthread_mutex_lock(&pt->alloc_lock);
	while (list) {
		struct sim_pt_meta *m = container_of(list, struct sim_pt_meta,
						     link);

		list = list->next;
		pt->nr_pending--;
		table_free_locked(pt, m);
	}
	pthread_mutex_unlock(&pt->alloc_lock);
}

struct sim_pt_meta *iopt_sim_pt_pending_meta(struct sim_pt *pt,
					     struct iopt_gather_page *link)
{
	uintptr_t p = (uintptr_t)link, base = (uintptr_t)pt->meta;
	struct sim_pt_meta *m;

	/* Compare addresses as integers: @link may belong to another array. */
	if (p < base || p >= base + (uintptr_t)pt->arena_pages * sizeof(*m) ||
	    (p - base) % sizeof(*m) != offsetof(struct sim_pt_meta, link))
		return NULL;
	m = container_of(link, struct sim_pt_meta, link);
	return __atomic_load_n(&m->state, __ATOMIC_ACQUIRE) == SIM_TABLE_PENDING ?
	       m : NULL;
}

int iopt_sim_pt_init(struct sim_pt *pt, const struct sim_pt_format *fmt,
		     unsigned int levels, uint64_t pgsize_mask,
		     unsigned int oa_lg2, uint64_t arena_pa,
		     uint64_t arena_bytes, bool dbm)
{
	uint64_t root;
	unsigned int i;
	void *arena;

	memset(pt, 0, sizeof(*pt));
	pt->fmt = fmt;
	pt->dbm = dbm;
	pt->max_top = (fmt->dynamic_top ? fmt->max_levels : levels) - 1;
	pt->oa_last = oa_lg2 >= 64 ? UINT64_MAX : (UINT64_C(1) << oa_lg2) - 1;
	pt->va_last = IOPT_MIN(level_va_last(pt, pt->max_top),
			       fmt->va_lg2 >= 64 ? UINT64_MAX :
			       (UINT64_C(1) << fmt->va_lg2) - 1);
	for (i = 0; i <= pt->max_top; i++) {
		/* A leaf can never be wider than the output address space. */
		pt->level_sizes[i] = fmt->leaf_sizes[i] & pgsize_mask &
				     mask_upto(oa_lg2 - 1);
		pt->pgsize_bitmap |= pt->level_sizes[i];
	}
	if (!pt->pgsize_bitmap)
		return -EINVAL;
	pt->fail_tables = -1;
	pt->fail_leaves = -1;
	pt->arena_pages = (uint32_t)(arena_bytes / SIM_PT_TABLE_SIZE);
	pt->arena_pa = arena_pa;
	pt->meta = iopt_calloc(pt->arena_pages, sizeof(*pt->meta));
	if (!pt->meta)
		return -ENOMEM;
	arena = mmap(NULL, (size_t)pt->arena_pages * SIM_PT_TABLE_SIZE,
		     PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED)
		goto err_free_meta;
	pt->arena = arena;
	pthread_mutex_init(&pt->alloc_lock, NULL);
	levels = fmt->dynamic_top ? fmt->start_levels : levels;
	root = table_alloc(pt, levels - 1, 0);
	if (!root)
		goto err_unmap;
	pt->top = root | (levels - 1);
	return 0;

err_unmap:
	pthread_mutex_destroy(&pt->alloc_lock);
	munmap(pt->arena, (size_t)pt->arena_pages * SIM_PT_TABLE_SIZE);
err_free_meta:
	iopt_free(pt->meta);
	return -ENOMEM;
}

void iopt_sim_pt_destroy(struct sim_pt *pt)
{
	pthread_mutex_destroy(&pt->alloc_lock);
	munmap(pt->arena, (size_t)pt->arena_pages * SIM_PT_TABLE_SIZE);
	iopt_free(pt->meta);
}

unsigned int iopt_sim_pt_top_level(const struct sim_pt *pt)
{
	return (unsigned int)(__atomic_load_n(&pt->top, __ATOMIC_ACQUIRE) &
			      TOP_LEVEL_MASK);
}

uint32_t iopt_sim_pt_nr_tables(struct sim_pt *pt)
{
	uint32_t nr;

	pthread_mutex_lock(&pt->alloc_lock);
	nr = pt->nr_live;
	pthread_mutex_unlock(&pt->alloc_lock);
	return nr;
}

/* Grow a dynamic top until the root covers @last. */
static int top_grow(struct sim_pt *pt, uint64_t last)
{
	for (;;) {
		uint64_t top = __atomic_load_n(&pt->top, __ATOMIC_ACQUIRE);
		unsigned int level = (unsigned int)(top & TOP_LEVEL_MASK);
		uint64_t root, pa;

		if (last <= level_va_last(pt, level))
			return 0;
		if (level >= pt->max_top)
			return -EINVAL;
		pa = table_alloc(pt, level + 1, 0);
		if (!pa)
			return -ENOMEM;
		/* The old root becomes entry 0; nothing cached can be stale. */
		root = top & ~TOP_LEVEL_MASK;
		sim_pt_table(pt, pa)[0] = pt->fmt->encode_table(root, level + 1);
		if (!__atomic_compare_exchange_n(&pt->top, &top, pa | (level + 1),
						 false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			table_free_unused(pt, pa);
	}
}

/* ---- map ---- */

struct map_ctx {
	struct sim_pt *pt;
	uint64_t iova;
	uint64_t oa;
	uint64_t last;
	int prot;
	bool done;
	uint64_t *mapped;
	struct iopt_iotlb_gather *freed;
};

/* Largest leaf size for the current position at @level, 0 if none. */
static unsigned int map_pick_leaf(const struct map_ctx *c, unsigned int level)
{
	uint64_t sizes = c->pt->level_sizes[level];
	uint64_t merge = c->iova | c->oa;
	uint64_t left = c->last - c->iova;
	unsigned int lim;

	if (!sizes)
		return 0;
	lim = left == UINT64_MAX ? 64 : iopt_fls64(left + 1) - 1;
	if (merge)
		lim = IOPT_MIN(lim, iopt_ffs64(merge));
	sizes &= mask_upto(lim);
	return sizes ? iopt_fls64(sizes) - 1 : 0;
}

static bool subtree_empty(const struct sim_pt *pt, const uint64_t *table,
			  unsigned int level)
{
	unsigned int i;

	for (i = 0; i < SIM_PT_ENTRIES; i++) {
		struct sim_pte pte;

		pt->fmt->decode(sim_pte_load(&table[i]), level, &pte);
		if (pte.kind == SIM_PTE_LEAF)
			return false;
		if (pte.kind == SIM_PTE_TABLE &&
		    !subtree_empty(pt, sim_pt_table(pt, pte.addr), level - 1))
			return false;
	}
	return true;
}

/* Quarantine every table below (and including) the one at @pa. */
static void subtree_unlink(struct sim_pt *pt, uint64_t pa, unsigned int level,
			   struct iopt_iotlb_gather *g)
{
	const uint64_t *table = sim_pt_table(pt, pa);
	unsigned int i;

	for (i = 0; level && i < SIM_PT_ENTRIES; i++) {
		struct sim_pte pte;

		pt->fmt->decode(sim_pte_load(&table[i]), level, &pte);
		if (pte.kind == SIM_PTE_TABLE)
			subtree_unlink(pt, pte.addr, level - 1, g);
	}
	table_unlink_to(pt, pa, g);
}

/*
 * Install @nr replicas of a 2^@lg2 leaf at @table[@idx]. Checks every slot
 * before touching any, so -EADDRINUSE changes nothing.
 */
static int map_install_leaf(struct map_ctx *c, uint64_t *table,
			    unsigned int idx, unsigned int level,
			    unsigned int lg2, unsigned int nr)
{
	struct sim_pt *pt = c->pt;
	unsigned int shift = entry_shift(pt, level);
	struct sim_pte pte;
	unsigned int i;
	uint64_t e;

	for (i = 0; i < nr; i++) {
		pt->fmt->decode(sim_pte_load(&table[idx + i]), level, &pte);
		if (pte.kind == SIM_PTE_LEAF ||
		    (pte.kind == SIM_PTE_TABLE &&
		     !subtree_empty(pt, sim_pt_table(pt, pte.addr), level - 1)))
			return -EADDRINUSE;
	}
	for (i = 0; i < nr; i++) {
		uint64_t first = c->iova + ((uint64_t)i << shift);
		uint64_t last = first + ((UINT64_C(1) << shift) - 1);

		pt->fmt->decode(sim_pte_load(&table[idx + i]), level, &pte);
		if (pte.kind != SIM_PTE_TABLE)
			continue;
		/* An empty table gives way to the leaf; the walk cache may hold it. */
		sim_pte_store(&table[idx + i], 0);
		subtree_unlink(pt, pte.addr, level - 1, c->freed);
		iopt_iotlb_gather_add_range(c->freed, first, last);
		sim_journal_log(pt->journal, first, last, level - 1,
				SIM_J_TABLE_UNLINKED);
	}
	e = pt->fmt->encode_leaf(c->oa, lg2, level, c->prot, pt->dbm);
	for (i = 0; i < nr; i++)
		sim_pte_store(&table[idx + i], e);
	return 0;
}

/* Find or install (by CAS) the table below @table[@idx]. */
static int map_get_child(struct map_ctx *c, uint64_t *table, unsigned int idx,
			 unsigned int level, uint64_t **child)
{
	struct sim_pt *pt = c->pt;
	uint64_t e = sim_pte_load(&table[idx]);

	for (;;) {
		struct sim_pte pte;
		uint64_t pa;

		pt->fmt->decode(e, level, &pte);
		if (pte.kind == SIM_PTE_TABLE) {
			*child = sim_pt_table(pt, pte.addr);
			return 0;
		}
		if (pte.kind == SIM_PTE_LEAF)
			return -EADDRINUSE;
		pa = table_alloc(pt, level - 1,
				 c->iova & ~((UINT64_C(1) << entry_shift(pt, level)) - 1));
		if (!pa)
			return -ENOMEM;
		if (__atomic_compare_exchange_n(&table[idx], &e,
						pt->fmt->encode_table(pa, level),
						false, __ATOMIC_RELEASE,
						__ATOMIC_ACQUIRE)) {
			*child = sim_pt_table(pt, pa);
			return 0;
		}
		/* Lost the race: @e now holds the winner's entry. */
		table_free_unused(pt, pa);
	}
}

/* Account @n leaves of 2^@lg2; true when the request is complete. */
static bool map_advance(struct map_ctx *c, unsigned int lg2, uint64_t n)
{
	uint64_t bytes = n << lg2;

	*c->mapped += bytes;
	if (c->last - c->iova == bytes - 1) {
		c->done = true;
		return true;
	}
	c->iova += bytes;
	c->oa += bytes;
	return false;
}

/*
 * How many 2^@lg2 leaves from @idx can be written as one run: bounded by
 * the length, the table's end, the next boundary where a larger size of this
 * level could start, and the first slot that is not empty.
 */
static uint64_t map_run_length(const struct map_ctx *c, const uint64_t *table,
			       unsigned int idx, unsigned int level,
			       unsigned int lg2, unsigned int nr)
{
	uint64_t larger = c->pt->level_sizes[level] & ~mask_upto(lg2);
	uint64_t n = ((c->last - c->iova - ((UINT64_C(1) << lg2) - 1)) >> lg2) + 1;
	unsigned int i;

	n = IOPT_MIN(n, (SIM_PT_ENTRIES - idx) / nr);
	if (larger) {
		uint64_t next = larger & -larger;

		if (!((c->iova ^ c->oa) & (next - 1)))
			n = IOPT_MIN(n, (next - (c->iova & (next - 1))) >> lg2);
	}
	for (i = 0; i < n * nr; i++)
		if (sim_pte_load(&table[idx + i]))
			return i / nr;
	return n;
}

/* Write @n leaves (each @nr identical replicas) into empty slots. */
static void map_write_run(struct map_ctx *c, uint64_t *table, unsigned int idx,
			  unsigned int level, unsigned int lg2, unsigned int nr,
			  uint64_t n)
{
	const struct sim_pt_format *fmt = c->pt->fmt;
	uint64_t e = fmt->encode_leaf(c->oa, lg2, level, c->prot, c->pt->dbm);
	/* Consecutive leaves differ only in the address field. */
	uint64_t delta = n > 1 ? fmt->encode_leaf(c->oa + (UINT64_C(1) << lg2),
						  lg2, level, c->prot,
						  c->pt->dbm) - e : 0;
	uint64_t k;
	unsigned int r;

	for (k = 0; k < n; k++, e += delta)
		for (r = 0; r < nr; r++)
			sim_pte_store(&table[idx + k * nr + r], e);
}

static void note_size_used(struct sim_pt *pt, unsigned int lg2)
{
	if (!(__atomic_load_n(&pt->sizes_used, __ATOMIC_RELAXED) &
	      (UINT64_C(1) << lg2)))
		__atomic_or_fetch(&pt->sizes_used, UINT64_C(1) << lg2,
				  __ATOMIC_RELEASE);
}

/*
 * Install leaves of 2^@lg2 from @table[@idx]: a run of empty slots in one
 * go, or else one leaf through the careful path (tables to replace,
 * overlap). Returns the slots consumed, or a negative errno.
 */
static int map_leaves(struct map_ctx *c, uint64_t *table, unsigned int idx,
		      unsigned int level, unsigned int lg2)
{
	unsigned int nr = 1u << (lg2 - entry_shift(c->pt, level));
	uint64_t n = map_run_length(c, table, idx, level, lg2, nr);
	long budget = __atomic_load_n(&c->pt->fail_leaves, __ATOMIC_RELAXED);
	int ret;

	/* Fault injection: -ENOMEM once the leaf budget is spent. */
	if (budget == 0)
		return -ENOMEM;
	if (budget > 0) {
		n = IOPT_MIN(n, (uint64_t)budget);
		__atomic_sub_fetch(&c->pt->fail_leaves, IOPT_MAX(n, 1), __ATOMIC_RELAXED);
	}
	note_size_used(c->pt, lg2);
	if (c->pt->log_sets)
		sim_journal_log(c->pt->journal, c->iova,
				c->iova + ((IOPT_MAX(n, 1) << lg2) - 1), level,
				SIM_J_LEAF_SET);
	if (n) {
		map_write_run(c, table, idx, level, lg2, nr, n);
	} else {
		ret = map_install_leaf(c, table, idx, level, lg2, nr);
		if (ret)
			return ret;
		n = 1;
	}
	map_advance(c, lg2, n);
	return (int)(n * nr);
}

static int map_table(struct map_ctx *c, uint64_t *table, unsigned int level)
{
	unsigned int idx = entry_index(c->pt, c->iova, level);
	int ret;

	while (idx < SIM_PT_ENTRIES) {
		unsigned int lg2 = map_pick_leaf(c, level);
		uint64_t *child;

		if (lg2) {
			ret = map_leaves(c, table, idx, level, lg2);
			if (ret < 0 || c->done)
				return ret < 0 ? ret : 0;
			idx += (unsigned int)ret;
			continue;
		}
		if (!level)
			return -EINVAL;
		ret = map_get_child(c, table, idx, level, &child);
		if (!ret)
			ret = map_table(c, child, level - 1);
		if (ret || c->done)
			return ret;
		idx++;
	}
	return 0;
}

int iopt_sim_pt_map(struct sim_pt *pt, uint64_t iova, uint64_t oa,
		    uint64_t length, int prot, uint64_t *mapped,
		    struct iopt_iotlb_gather *freed)
{
	uint64_t min_size = pt->pgsize_bitmap & -pt->pgsize_bitmap;
	struct map_ctx c = {
		.pt = pt, .iova = iova, .oa = oa, .last = iova + length - 1,
		.prot = prot, .mapped = mapped, .freed = freed,
	};
	uint64_t top;
	int ret;

	if (!(prot & (IOPT_PROT_READ | IOPT_PROT_WRITE)))
		return -EINVAL;
	if (!length || c.last < iova || c.last > pt->va_last ||
	    !iopt_is_aligned(iova | oa | length, min_size))
		return -EINVAL;
	if (oa + (length - 1) < oa || oa + (length - 1) > pt->oa_last)
		return -ERANGE;
	ret = top_grow(pt, c.last);
	if (ret)
		return ret;
	top = __atomic_load_n(&pt->top, __ATOMIC_ACQUIRE);
	return map_table(&c, sim_pt_table(pt, top & ~TOP_LEVEL_MASK),
			 (unsigned int)(top & TOP_LEVEL_MASK));
}

/* ---- unmap ---- */

struct unmap_ctx {
	struct sim_pt *pt;
	uint64_t pos;
	uint64_t last;
	uint64_t end_last;
	bool started;
	bool done;
	bool refused;
	struct iopt_iotlb_gather *g;
};

/* Everything up to @x (inclusive) is clear. */
static void unmap_step(struct unmap_ctx *c, uint64_t x)
{
	c->started = true;
	c->end_last = x;
	if (x >= c->last)
		c->done = true;
	else
		c->pos = x + 1;
}

static unsigned int unmap_leaf(struct unmap_ctx *c, uint64_t *table,
			       unsigned int idx, unsigned int level,
			       const struct sim_pte *pte)
{
	struct sim_pt *pt = c->pt;
	uint64_t size = UINT64_C(1) << pte->size_lg2;
	uint64_t first = c->pos & ~(size - 1);
	unsigned int nr = (unsigned int)(size >> entry_shift(pt, level));
	unsigned int i;

	if (first != c->pos) {
		/* Starts inside a leaf: refused, nothing changes. */
		c->refused = !c->started;
		c->done = true;
		return 1;
	}
	for (i = 0; i < nr; i++)
		sim_pte_store(&table[idx + i], 0);
	iopt_iotlb_gather_add_range(c->g, first, first + size - 1);
	c->g->leaf_levels |= 1u << level;
	sim_journal_log(pt->journal, first, first + size - 1, level,
			SIM_J_LEAF_CLEARED);
	unmap_step(c, first + size - 1);
	return nr;
}

/*
 * Clear consecutive leaves of the level's own size starting at the current
 * position (which is their start), all with the non-address bits @attr:
 * one gather update and one journal record for the run.
 */
static unsigned int unmap_native_run(struct unmap_ctx *c, uint64_t *table,
				     unsigned int idx, unsigned int level,
				     uint64_t attr)
{
	struct sim_pt *pt = c->pt;
	uint64_t esize = UINT64_C(1) << entry_shift(pt, level);
	uint64_t attr_mask = ~pt->fmt->addr_mask;
	uint64_t first = c->pos, last = first + esize - 1;
	unsigned int i = idx;

	for (;;) {
		sim_pte_store(&table[i++], 0);
		if (last >= c->last || i == SIM_PT_ENTRIES ||
		    (sim_pte_load(&table[i]) & attr_mask) != attr)
			break;
		last += esize;
	}
	iopt_iotlb_gather_add_range(c->g, first, last);
	c->g->leaf_levels |= 1u << level;
	sim_journal_log(pt->journal, first, last, level, SIM_J_LEAF_CLEARED);
	unmap_step(c, last);
	return i - idx;
}

static void unmap_table(struct unmap_ctx *c, uint64_t *table,
			unsigned int level)
{
	struct sim_pt *pt = c->pt;
	uint64_t esize_m1 = (UINT64_C(1) << entry_shift(pt, level)) - 1;
	uint64_t attr_mask = ~pt->fmt->addr_mask, native_attr = 0;
	unsigned int idx = entry_index(pt, c->pos, level);
	struct sim_pte pte = { .kind = SIM_PTE_EMPTY };

	while (idx < SIM_PT_ENTRIES && !c->done) {
		uint64_t first = c->pos & ~esize_m1, last = first + esize_m1;
		uint64_t v = sim_pte_load(&table[idx]);

		if (!v) {
			/* A hole never makes the result exceed the request. */
			unmap_step(c, IOPT_MIN(last, c->last));
			idx++;
			continue;
		}
		/* Same non-address bits as the last native leaf: same kind. */
		if (!native_attr || (v & attr_mask) != native_attr) {
			pt->fmt->decode(v, level, &pte);
			native_attr = pte.kind == SIM_PTE_LEAF &&
				      pte.size_lg2 == entry_shift(pt, level) ?
				      v & attr_mask : 0;
		}
		if (native_attr && c->pos == first) {
			idx += unmap_native_run(c, table, idx, level, native_attr);
			continue;
		}
		if (pte.kind == SIM_PTE_LEAF) {
			idx += unmap_leaf(c, table, idx, level, &pte);
			continue;
		}
		if (pte.kind == SIM_PTE_TABLE && c->pos == first && c->last >= last) {
			/* The range covers the whole lower table: free it. */
			sim_pte_store(&table[idx], 0);
			subtree_unlink(pt, pte.addr, level - 1, c->g);
			iopt_iotlb_gather_add_range(c->g, first, last);
			sim_journal_log(pt->journal, first, last, level - 1,
					SIM_J_TABLE_UNLINKED);
		} else if (pte.kind == SIM_PTE_TABLE) {
			unmap_table(c, sim_pt_table(pt, pte.addr), level - 1);
			if (c->done)
				return;
		}
		unmap_step(c, last);
		idx++;
	}
}

uint64_t iopt_sim_pt_unmap(struct sim_pt *pt, uint64_t iova, uint64_t last,
			   struct iopt_iotlb_gather *g)
{
	uint64_t top = __atomic_load_n(&pt->top, __ATOMIC_ACQUIRE);
	unsigned int level = (unsigned int)(top & TOP_LEVEL_MASK);
	struct unmap_ctx c = { .pt = pt, .pos = iova, .g = g, .end_last = last };

	if (last < iova)
		return 0;
	if (iova <= level_va_last(pt, level)) {
		c.last = IOPT_MIN(last, level_va_last(pt, level));
		unmap_table(&c, sim_pt_table(pt, top & ~TOP_LEVEL_MASK), level);
		if (c.refused)
			return 0;
		/* Beyond the root nothing can be mapped: a hole. */
		c.end_last = IOPT_MAX(c.end_last, last);
	}
	return c.end_last - iova == UINT64_MAX ? UINT64_MAX : c.end_last - iova + 1;
}

/* ---- translate and iterate ---- */

int iopt_sim_pt_walk(struct sim_pt *pt, uint64_t iova, uint64_t start_pa,
		     unsigned int start_level, struct sim_pt_walk *w)
{
	unsigned int level = start_level;
	uint64_t pa = start_pa;

	if (!pa) {
		uint64_t top = __atomic_load_n(&pt->top, __ATOMIC_ACQUIRE);

		level = (unsigned int)(top & TOP_LEVEL_MASK);
		pa = top & ~TOP_LEVEL_MASK;
		if (iova > level_va_last(pt, level)) {
			w->level = level;
			w->pte.kind = SIM_PTE_EMPTY;
			w->entry = NULL;
			return -ENOENT;
		}
	}
	for (;;) {
		uint64_t *table = sim_pt_table(pt, pa);
		struct sim_pt_meta *m = sim_pt_meta_of(pt, pa);

		w->table_pa[level] = pa;
		w->table_gen[level] = m ? __atomic_load_n(&m->gen, __ATOMIC_ACQUIRE) : 0;
		w->level = level;
		w->entry = &table[entry_index(pt, iova, level)];
		w->value = sim_pte_load(w->entry);
		pt->fmt->decode(w->value, level, &w->pte);
		if (w->pte.kind != SIM_PTE_TABLE)
			return w->pte.kind == SIM_PTE_LEAF ? 0 : -ENOENT;
		pa = w->pte.addr;
		level--;
	}
}

uint64_t iopt_sim_pt_iova_to_phys(struct sim_pt *pt, uint64_t iova)
{
	struct sim_pt_walk w;

	if (iopt_sim_pt_walk(pt, iova, 0, 0, &w))
		return 0;
	return w.pte.addr + (iova & ((UINT64_C(1) << w.pte.size_lg2) - 1));
}

static void leaf_iter(struct sim_pt *pt, uint64_t *table, unsigned int level,
		      uint64_t table_va, uint64_t first, uint64_t last,
		      sim_pt_leaf_fn fn, void *arg)
{
	unsigned int shift = entry_shift(pt, level);
	unsigned int idx = first > table_va ?
		(unsigned int)((first - table_va) >> shift) : 0;
	unsigned int end = IOPT_MIN((uint64_t)SIM_PT_ENTRIES - 1,
				    (last - table_va) >> shift);

	for (; idx <= end; idx++) {
		uint64_t va = table_va + ((uint64_t)idx << shift);
		struct sim_pte pte;
		unsigned int nr, run;

		pt->fmt->decode(sim_pte_load(&table[idx]), level, &pte);
		if (pte.kind == SIM_PTE_TABLE) {
			leaf_iter(pt, sim_pt_table(pt, pte.addr), level - 1, va,
				  first, last, fn, arg);
		} else if (pte.kind == SIM_PTE_LEAF) {
			nr = 1u << (pte.size_lg2 - shift);
			run = idx & ~(nr - 1);
			fn(pt, &table[run], nr, level,
			   table_va + ((uint64_t)run << shift), &pte, arg);
			idx = run + nr - 1;
		}
	}
}

void iopt_sim_pt_for_each_leaf(struct sim_pt *pt, uint64_t first,
			       uint64_t last, sim_pt_leaf_fn fn, void *arg)
{
	uint64_t top = __atomic_load_n(&pt->top, __ATOMIC_ACQUIRE);
	unsigned int level = (unsigned int)(top & TOP_LEVEL_MASK);

	if (first > level_va_last(pt, level))
		return;
	leaf_iter(pt, sim_pt_table(pt, top & ~TOP_LEVEL_MASK), level, 0, first,
		  IOPT_MIN(last, level_va_last(pt, level)), fn, arg);
}
