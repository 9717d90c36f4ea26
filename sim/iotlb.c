/* SPDX-License-Identifier: MIT */
/*
 * iotlb.c - the IOTLB (leaf cache) and walk cache of a simulated IOMMU, and
 * the invalidation models that turn a gather into cache drops.
 *
 * Both caches are hash tables of struct sim_cache_ent keyed by (domain,
 * span, IOVA >> span). A "realistic" cache is direct-mapped and replaces on
 * collision; a "sticky" one uses linear probing, grows instead of evicting
 * and is rebuilt after removals (removing from a probed table breaks its
 * chains). Whatever is cached is used on a hit even if the table changed:
 * that is what makes a missing or too-narrow invalidation observable as a
 * stale DMA (domain-contract.md §3.5).
 *
 * Invalidation models (iopt_sim_inval_model):
 * - RANGE: drop entries overlapping exactly [start, last].
 * - AMD: one naturally aligned power-of-two range covering [start, last]
 *   (INVALIDATE_IOMMU_PAGES); walk-cache entries only when tables were freed
 *   (the PDE flag).
 * - VTD: page-selective invalidation of 2^AM naturally aligned pages, or the
 *   whole domain beyond AM = 18; the leaf-only hint when no table was freed.
 * - FLUSH_ALL, and any queued gather: the whole domain.
 * Locking: callers hold iommu->tlb_lock for the cache functions;
 * iopt_sim_iotlb_invalidate/_sync_gather take it themselves.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "sim_internal.h"
#include "util.h"

#define VTD_MAX_AM	18

static uint64_t cache_hash(uint32_t dom_id, unsigned int span_lg2,
			   uint64_t index)
{
	uint64_t x = index ^ ((uint64_t)dom_id << 40) ^ ((uint64_t)span_lg2 << 56);

	x ^= x >> 31;
	x *= UINT64_C(0x7fb5d329728ea185);
	x ^= x >> 27;
	x *= UINT64_C(0x81dadef4bc2dd44d);
	return x ^ (x >> 33);
}

int iopt_sim_cache_init(struct sim_cache *c, unsigned int cap, bool sticky)
{
	unsigned int n = 1;

	while (n < cap)
		n <<= 1;
	c->ents = iopt_calloc(n, sizeof(*c->ents));
	c->spare = sticky ? iopt_calloc(n, sizeof(*c->spare)) : NULL;
	if (!c->ents || (sticky && !c->spare)) {
		iopt_free(c->ents);
		iopt_free(c->spare);
		return -ENOMEM;
	}
	c->cap = n;
	c->nr = 0;
	c->sticky = sticky;
	return 0;
}

void iopt_sim_cache_destroy(struct sim_cache *c)
{
	iopt_free(c->ents);
	iopt_free(c->spare);
}

static bool ent_match(const struct sim_cache_ent *e, uint32_t dom_id,
		      unsigned int span_lg2, uint64_t index)
{
	return e->dom_id == dom_id && e->span_lg2 == span_lg2 &&
	       e->index == index;
}

struct sim_cache_ent *iopt_sim_cache_find(struct sim_cache *c, uint32_t dom_id,
					  unsigned int span_lg2, uint64_t iova)
{
	uint64_t index = span_lg2 >= 64 ? 0 : iova >> span_lg2;
	uint32_t slot = (uint32_t)cache_hash(dom_id, span_lg2, index) & (c->cap - 1);

	for (;;) {
		struct sim_cache_ent *e = &c->ents[slot];

		if (ent_match(e, dom_id, span_lg2, index))
			return e;
		if (!c->sticky || !e->dom_id)
			return NULL;
		slot = (slot + 1) & (c->cap - 1);
	}
}

/* Probe for @e's slot (sticky) or take its home slot (realistic). */
static void cache_place(struct sim_cache_ent *ents, uint32_t cap, bool sticky,
			const struct sim_cache_ent *e, uint32_t *nr)
{
	uint32_t slot = (uint32_t)cache_hash(e->dom_id, e->span_lg2, e->index) &
			(cap - 1);

	while (sticky && ents[slot].dom_id &&
	       !ent_match(&ents[slot], e->dom_id, e->span_lg2, e->index))
		slot = (slot + 1) & (cap - 1);
	if (!ents[slot].dom_id)
		(*nr)++;
	ents[slot] = *e;
}

/* Move every entry of @c into @dst (cap @cap, zeroed). */
static void cache_rehash_into(struct sim_cache *c, struct sim_cache_ent *dst,
			      uint32_t cap)
{
	uint32_t i, nr = 0;

	for (i = 0; i < c->cap; i++)
		if (c->ents[i].dom_id)
			cache_place(dst, cap, true, &c->ents[i], &nr);
	c->nr = nr;
}

static void cache_grow(struct sim_cache *c)
{
	uint32_t cap = c->cap * 2;
	struct sim_cache_ent *ents = iopt_calloc(cap, sizeof(*ents));
	struct sim_cache_ent *spare = iopt_calloc(cap, sizeof(*spare));

	if (!ents || !spare) {
		/* Cannot grow: stay full-ish; lookups still terminate. */
		iopt_free(ents);
		iopt_free(spare);
		return;
	}
	cache_rehash_into(c, ents, cap);
	iopt_free(c->ents);
	iopt_free(c->spare);
	c->ents = ents;
	c->spare = spare;
	c->cap = cap;
}

void iopt_sim_cache_insert(struct sim_cache *c, const struct sim_cache_ent *e)
{
	if (c->sticky && (c->nr + 1) * 2 > c->cap)
		cache_grow(c);
	if (c->sticky && c->nr + 1 >= c->cap)
		return;
	cache_place(c->ents, c->cap, c->sticky, e, &c->nr);
}

/* Drop @dom_id's entries overlapping [first, last]; rebuild a sticky cache. */
static void cache_drop(struct sim_cache *c, uint32_t dom_id, uint64_t first,
		       uint64_t last)
{
	struct sim_cache_ent *tmp;
	uint32_t i, dropped = 0;

	for (i = 0; i < c->cap; i++) {
		struct sim_cache_ent *e = &c->ents[i];
		uint64_t e_first, e_last;

		if (e->dom_id != dom_id)
			continue;
		e_first = e->index << e->span_lg2;
		e_last = e_first + ((UINT64_C(1) << e->span_lg2) - 1);
		if (e_last < first || e_first > last)
			continue;
		e->dom_id = 0;
		dropped++;
	}
	c->nr -= dropped;
	if (!c->sticky || !dropped)
		return;
	memset(c->spare, 0, (size_t)c->cap * sizeof(*c->spare));
	cache_rehash_into(c, c->spare, c->cap);
	tmp = c->ents;
	c->ents = c->spare;
	c->spare = tmp;
}

void iopt_sim_iotlb_invalidate(struct iopt_sim_iommu *iommu, uint32_t dom_id,
			       uint64_t first, uint64_t last, bool tables)
{
	pthread_mutex_lock(&iommu->tlb_lock);
	cache_drop(&iommu->leaf, dom_id, first, last);
	if (tables)
		cache_drop(&iommu->walk, dom_id, first, last);
	iommu->stats.invalidations++;
	pthread_mutex_unlock(&iommu->tlb_lock);
}

/* Smallest naturally aligned power-of-two range holding [*first, *last]. */
static unsigned int pow2_cover(uint64_t *first, uint64_t *last)
{
	unsigned int lg2 = IOPT_MAX(iopt_fls64(*first ^ *last), 12u);

	if (lg2 >= 64) {
		*first = 0;
		*last = UINT64_MAX;
		return 64;
	}
	*first &= ~((UINT64_C(1) << lg2) - 1);
	*last = *first + ((UINT64_C(1) << lg2) - 1);
	return lg2;
}

void iopt_sim_iotlb_sync_gather(struct iopt_sim_iommu *iommu, uint32_t dom_id,
				const struct iopt_iotlb_gather *g)
{
	uint64_t first = g->start, last = g->last;
	bool tables = g->freelist != NULL;

	if (g->queued || iommu->cfg.inval_model == IOPT_SIM_INVAL_FLUSH_ALL) {
		iopt_sim_iotlb_invalidate(iommu, dom_id, 0, UINT64_MAX, true);
		return;
	}
	if (first > last)
		return;
	switch (iommu->cfg.inval_model) {
	case IOPT_SIM_INVAL_AMD:
		pow2_cover(&first, &last);
		break;
	case IOPT_SIM_INVAL_VTD:
		if (pow2_cover(&first, &last) - 12 > VTD_MAX_AM) {
			first = 0;
			last = UINT64_MAX;
			tables = true;
		}
		break;
	default:
		/* Generic range: the walk cache goes with the leaves. */
		tables = true;
		break;
	}
	iopt_sim_iotlb_invalidate(iommu, dom_id, first, last, tables);
}
