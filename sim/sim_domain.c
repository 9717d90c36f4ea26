/* SPDX-License-Identifier: MIT */
/*
 * sim_domain.c - struct iopt_domain_ops over the radix engine, the IOTLB
 * and the change journal: the simulated domain the core programs.
 *
 * What the ops add on top of pt_radix.c (domain-contract.md §1.9):
 * - map_pages checks the aperture and the (pgsize, pgcount) pair, and when
 *   a leaf replaced empty tables it syncs them itself before returning (as
 *   iommupt does), so the caller never sees that gather;
 * - iotlb_sync runs the IOMMU's invalidation model, retires the journal
 *   records the gather covers, and lets the freed tables it covered leave
 *   quarantine; one it does not cover is reported and held back until a
 *   covering sync or a flush-all;
 * - dirty tracking: enabling cleans every stale D bit (and flushes), reading
 *   ORs the D state of replicated entries and cleans every replica; asking
 *   for bits while tracking is off is -EINVAL, as on AMD and VT-d;
 * - quiesce drains the journal: whatever is left is a missing invalidation.
 * The ground-truth "written" set lets tests prove dirty reporting never
 * under-reports.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "sim_internal.h"
#include "util.h"

#define DEFAULT_ARENA_BYTES	(UINT64_C(256) << 20)
#define DEFAULT_JOURNAL		65536
#define WRITTEN_EMPTY		UINT64_MAX
#define WRITTEN_PAGE_SHIFT	12

static const struct sim_pt_format *const sim_formats[IOPT_SIM_FMT_NR] = {
	[IOPT_SIM_FMT_AMDV1] = &iopt_sim_fmt_amdv1,
	[IOPT_SIM_FMT_AMDV1_2K] = &iopt_sim_fmt_amdv1_2k,
	[IOPT_SIM_FMT_VTDSS] = &iopt_sim_fmt_vtdss,
	[IOPT_SIM_FMT_ARM_LPAE_S1] = &iopt_sim_fmt_arm_lpae_s1,
};

static const struct iopt_domain_ops sim_domain_ops;

bool iopt_sim_is_domain(const struct iopt_domain *d)
{
	return d && d->ops == &sim_domain_ops;
}

uint32_t iopt_sim_domain_id(const struct iopt_domain *d)
{
	return to_sim_domain((struct iopt_domain *)d)->id;
}

static void sim_report(struct sim_domain *sd, enum iopt_sim_report_kind kind,
		       uint64_t first, uint64_t last, unsigned int level)
{
	struct iopt_sim_report r = {
		.kind = kind, .domain_id = sd->id,
		.first = first, .last = last, .level = level,
	};

	iopt_sim_report(sd->iommu, &r);
}

/* ---- map / unmap / translate ---- */

static int sim_map_pages(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
			 uint64_t pgsize, uint64_t pgcount, int prot,
			 uint64_t *mapped)
{
	struct sim_domain *sd = to_sim_domain(d);
	struct iopt_iotlb_gather freed;
	uint64_t length;
	int ret;

	if (iopt_should_fail(IOPT_FAIL_DOMAIN_MAP))
		return -ENOMEM;
	if (!(pgsize & d->pgsize_bitmap) || !iopt_is_power_of_2(pgsize) ||
	    !pgcount || pgcount > UINT64_MAX / pgsize)
		return -EINVAL;
	length = pgsize * pgcount;
	if (iova < d->aperture_start || iova + (length - 1) < iova ||
	    iova + (length - 1) > d->aperture_last)
		return -EINVAL;
	iopt_iotlb_gather_init(&freed);
	ret = iopt_sim_pt_map(&sd->pt, iova, paddr, length, prot, mapped,
			      &freed);
	/* Empty tables replaced by a leaf may sit in the walk cache. */
	if (!iopt_iotlb_gather_is_empty(&freed))
		d->ops->iotlb_sync(d, &freed);
	return ret;
}

static uint64_t sim_unmap_pages(struct iopt_domain *d, uint64_t iova,
				uint64_t pgsize, uint64_t pgcount,
				struct iopt_iotlb_gather *g)
{
	struct sim_domain *sd = to_sim_domain(d);
	uint64_t last = UINT64_MAX;

	if (!pgsize || !pgcount)
		return 0;
	/* Saturate: [iova, 2^64) is expressible even though its length is not. */
	if (UINT64_MAX - iova >= pgsize - 1 &&
	    pgcount - 1 <= (UINT64_MAX - iova - (pgsize - 1)) / pgsize)
		last = iova + (pgsize * pgcount - 1);
	return iopt_sim_pt_unmap(&sd->pt, iova, last, g);
}

static uint64_t sim_iova_to_phys(struct iopt_domain *d, uint64_t iova)
{
	return iopt_sim_pt_iova_to_phys(&to_sim_domain(d)->pt, iova);
}

/* ---- invalidation ---- */

static bool range_covers(const struct iopt_iotlb_gather *g, uint64_t first,
			 uint64_t last)
{
	return g->queued || (g->start <= first && g->last >= last);
}

/* Last IOVA the table @m translates. */
static uint64_t table_last(const struct sim_domain *sd,
			   const struct sim_pt_meta *m)
{
	unsigned int span = sd->pt.fmt->granule_lg2 +
			    SIM_PT_ENTRIES_LG2 * (m->level + 1u);

	return span >= 64 ? UINT64_MAX : m->va_first + ((UINT64_C(1) << span) - 1);
}

/*
 * Did the sync of @g invalidate every walk-cache entry that may point at the
 * quarantined table @m? Its range must cover the table's IOVA span, and the
 * sync must be one that flushes walk caches: a leaf-only sync (no freed
 * table: AMD without PDE, the VT-d leaf hint) leaves them in place.
 */
static bool sync_covers_table(const struct sim_domain *sd,
			      const struct iopt_iotlb_gather *g,
			      const struct sim_pt_meta *m)
{
	return (g->queued || g->freelist) &&
	       range_covers(g, m->va_first, table_last(sd, m));
}

static void page_push(struct iopt_gather_page **list, struct iopt_gather_page *p)
{
	p->next = *list;
	*list = p;
}

/*
 * Release the freed tables the sync of @g covered. A new one it does not
 * cover is reported and joins the held list, and stays quarantined (still
 * walkable) until a later sync covers it or a flush-all: recycling it would
 * let a stale walk-cache entry read whatever the page holds next. A page
 * that is not one of this domain's quarantined tables is reported and left
 * alone: releasing it would corrupt some table arena.
 */
static void sync_release_tables(struct sim_domain *sd,
				const struct iopt_iotlb_gather *g)
{
	struct iopt_gather_page *p, *next, *ok = NULL, *held = NULL;
	const struct sim_pt_meta *m;
	bool covered;

	/*
	 * A leaf-only sync (most unmaps of 4K pages) frees nothing and covers
	 * no held table (sync_covers_table()): skip held_lock on that path.
	 */
	if (!g->freelist && !g->queued)
		return;
	for (p = g->freelist; p; p = next) {
		next = p->next;
		m = iopt_sim_pt_pending_meta(&sd->pt, p);
		if (!m) {
			sim_report(sd, IOPT_SIM_REPORT_BAD_GATHER, 0, UINT64_MAX, 0);
			continue;
		}
		covered = sync_covers_table(sd, g, m);
		if (!covered)
			sim_report(sd, IOPT_SIM_REPORT_TABLE_UNSYNCED,
				   m->va_first, table_last(sd, m), m->level);
		page_push(covered ? &ok : &held, p);
	}
	pthread_mutex_lock(&sd->held_lock);
	for (p = sd->held; p; p = next) {
		next = p->next;
		m = iopt_sim_pt_pending_meta(&sd->pt, p);
		page_push(sync_covers_table(sd, g, m) ? &ok : &held, p);
	}
	sd->held = held;
	pthread_mutex_unlock(&sd->held_lock);
	iopt_sim_pt_release(&sd->pt, ok);
}

static void sim_iotlb_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g)
{
	struct sim_domain *sd = to_sim_domain(d);
	uint64_t min_size = d->pgsize_bitmap & -d->pgsize_bitmap;

	if (!g->queued && g->start <= g->last &&
	    !iopt_is_aligned(g->start | (g->last + 1), min_size))
		sim_report(sd, IOPT_SIM_REPORT_BAD_GATHER, g->start, g->last, 0);
	iopt_sim_iotlb_sync_gather(sd->iommu, sd->id, g);
	if (sd->pt.journal && g->queued)
		iopt_sim_journal_retire(sd->pt.journal, 0, UINT64_MAX, 0, 0);
	else if (sd->pt.journal && g->start <= g->last)
		iopt_sim_journal_retire(sd->pt.journal, g->start, g->last,
					g->leaf_levels, g->table_levels);
	sync_release_tables(sd, g);
	iopt_iotlb_gather_init(g);
}

static int sim_iotlb_sync_map(struct iopt_domain *d, uint64_t iova,
			      uint64_t length)
{
	struct sim_domain *sd = to_sim_domain(d);
	uint64_t last = iova + (length - 1);

	/* Only an IOMMU caching non-present results needs this. */
	if (!sd->pt.log_sets || !length || last < iova)
		return 0;
	iopt_sim_iotlb_invalidate(sd->iommu, sd->id, iova, last, false);
	if (sd->pt.journal)
		iopt_sim_journal_retire(sd->pt.journal, iova, last, 0, 0);
	return 0;
}

static void sim_flush_iotlb_all(struct iopt_domain *d)
{
	struct sim_domain *sd = to_sim_domain(d);
	struct iopt_gather_page *held;

	iopt_sim_iotlb_invalidate(sd->iommu, sd->id, 0, UINT64_MAX, true);
	if (sd->pt.journal)
		iopt_sim_journal_retire(sd->pt.journal, 0, UINT64_MAX, 0, 0);
	/* Nothing cached can point at a held table any more. */
	pthread_mutex_lock(&sd->held_lock);
	held = sd->held;
	sd->held = NULL;
	pthread_mutex_unlock(&sd->held_lock);
	iopt_sim_pt_release(&sd->pt, held);
}

static void quiesce_report(void *arg, const struct sim_journal_rec *rec)
{
	sim_report(arg, IOPT_SIM_REPORT_MISSING_INVAL, rec->first, rec->last,
		   rec->level);
}

static void sim_quiesce(struct iopt_domain *d)
{
	struct sim_domain *sd = to_sim_domain(d);
	bool overflowed;

	if (!sd->pt.journal)
		return;
	iopt_sim_journal_drain(sd->pt.journal, quiesce_report, sd, &overflowed);
	if (overflowed)
		sim_report(sd, IOPT_SIM_REPORT_JOURNAL_FULL, 0, UINT64_MAX, 0);
}

/* ---- dirty tracking ---- */

/* Clean one entry; hardware may be setting D concurrently, hence the CAS. */
static void pte_make_clean(const struct sim_pt *pt, uint64_t *entry)
{
	uint64_t old = sim_pte_load(entry);

	for (;;) {
		uint64_t new = pt->fmt->make_clean(old);

		if (new == old ||
		    __atomic_compare_exchange_n(entry, &old, new, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return;
	}
}

struct dirty_ctx {
	struct sim_domain *sd;
	unsigned int flags;
	struct iopt_dirty_bitmap *dirty;
	bool report;
};

static void dirty_leaf(struct sim_pt *pt, uint64_t *entries, unsigned int nr,
		       unsigned int level, uint64_t leaf_va,
		       const struct sim_pte *pte, void *arg)
{
	struct dirty_ctx *c = arg;
	uint64_t last = leaf_va + ((UINT64_C(1) << pte->size_lg2) - 1);
	bool dirty = false;
	unsigned int i;

	/* Hardware may have marked any replica: OR them all. */
	for (i = 0; i < nr && !dirty; i++) {
		struct sim_pte r;

		pt->fmt->decode(sim_pte_load(&entries[i]), level, &r);
		dirty = r.kind == SIM_PTE_LEAF && r.dirty;
	}
	if (!dirty)
		return;
	if (c->report && c->dirty)
		iopt_dirty_bitmap_record(c->dirty, leaf_va, last - leaf_va + 1);
	if (c->flags & IOPT_DIRTY_NO_CLEAR)
		return;
	for (i = 0; i < nr; i++)
		pte_make_clean(pt, &entries[i]);
	if (c->report)
		sim_journal_log(pt->journal, leaf_va, last, level,
				SIM_J_DIRTY_CLEARED);
}

static void dirty_clear_all(struct sim_domain *sd)
{
	struct dirty_ctx c = { .sd = sd };

	iopt_sim_pt_for_each_leaf(&sd->pt, 0, UINT64_MAX, dirty_leaf, &c);
}

static int sim_set_dirty_tracking(struct iopt_domain *d, bool enable)
{
	struct sim_domain *sd = to_sim_domain(d);

	if (__atomic_exchange_n(&sd->tracking, enable, __ATOMIC_ACQ_REL) ||
	    !enable)
		return 0;
	/* Off -> on: stale D bits from before must not be reported. */
	dirty_clear_all(sd);
	iopt_sim_iotlb_invalidate(sd->iommu, sd->id, 0, UINT64_MAX, false);
	return 0;
}

static int sim_read_and_clear_dirty(struct iopt_domain *d, uint64_t iova,
				    uint64_t length, unsigned int flags,
				    struct iopt_dirty_bitmap *dirty)
{
	struct dirty_ctx c = {
		.sd = to_sim_domain(d), .flags = flags, .dirty = dirty,
		.report = true,
	};
	uint64_t last = iova + length - 1;

	if (!length || last < iova || flags & ~IOPT_DIRTY_NO_CLEAR)
		return -EINVAL;
	/*
	 * As the AMD and VT-d drivers do: bits asked for while tracking is off
	 * cannot be trusted. Clearing without a bitmap stays allowed, since
	 * that is how the core wipes stale bits before enabling.
	 */
	if (dirty && dirty->record &&
	    !__atomic_load_n(&c.sd->tracking, __ATOMIC_ACQUIRE))
		return -EINVAL;
	iopt_sim_pt_for_each_leaf(&c.sd->pt, iova, last, dirty_leaf, &c);
	return 0;
}

/* ---- ground truth of DMA writes ---- */

static void written_insert_locked(struct sim_written *w, uint64_t page)
{
	uint64_t slot = (page * UINT64_C(0x9E3779B97F4A7C15)) >> 7;

	for (;; slot++) {
		uint64_t *s = &w->slots[slot & (w->cap - 1)];

		if (*s == page)
			return;
		if (*s == WRITTEN_EMPTY) {
			*s = page;
			w->nr++;
			return;
		}
	}
}

static bool written_grow_locked(struct sim_written *w)
{
	uint64_t cap = w->cap ? w->cap * 2 : 1024, i, old_cap = w->cap;
	uint64_t *old = w->slots;

	w->slots = iopt_malloc(cap * sizeof(*w->slots));
	if (!w->slots) {
		w->slots = old;
		return false;
	}
	memset(w->slots, 0xff, cap * sizeof(*w->slots));
	w->cap = cap;
	w->nr = 0;
	for (i = 0; i < old_cap; i++)
		if (old[i] != WRITTEN_EMPTY)
			written_insert_locked(w, old[i]);
	iopt_free(old);
	return true;
}

void iopt_sim_written_add(struct sim_written *w, uint64_t iova, uint64_t len)
{
	uint64_t page = iova >> WRITTEN_PAGE_SHIFT;
	uint64_t last = (iova + len - 1) >> WRITTEN_PAGE_SHIFT;

	pthread_mutex_lock(&w->lock);
	for (;; page++) {
		/* Out of memory only weakens the oracle; DMA goes on. */
		if ((w->nr + 1) * 2 > w->cap && !written_grow_locked(w))
			break;
		written_insert_locked(w, page);
		if (page == last)
			break;
	}
	pthread_mutex_unlock(&w->lock);
}

bool iopt_sim_domain_written(struct iopt_domain *d, uint64_t iova)
{
	struct sim_written *w = &to_sim_domain(d)->written;
	uint64_t page = iova >> WRITTEN_PAGE_SHIFT;
	uint64_t slot = (page * UINT64_C(0x9E3779B97F4A7C15)) >> 7;
	bool found = false;

	pthread_mutex_lock(&w->lock);
	for (; w->cap; slot++) {
		uint64_t s = w->slots[slot & (w->cap - 1)];

		if (s == WRITTEN_EMPTY || s == page) {
			found = s == page;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return found;
}

size_t iopt_sim_domain_written_for_each(struct iopt_domain *d,
					void (*fn)(void *arg, uint64_t iova),
					void *arg)
{
	struct sim_written *w = &to_sim_domain(d)->written;
	uint64_t i;
	size_t nr = 0;

	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->cap; i++) {
		if (w->slots[i] == WRITTEN_EMPTY)
			continue;
		fn(arg, w->slots[i] << WRITTEN_PAGE_SHIFT);
		nr++;
	}
	pthread_mutex_unlock(&w->lock);
	return nr;
}

void iopt_sim_domain_written_clear(struct iopt_domain *d)
{
	struct sim_written *w = &to_sim_domain(d)->written;

	pthread_mutex_lock(&w->lock);
	iopt_free(w->slots);
	w->slots = NULL;
	w->cap = 0;
	w->nr = 0;
	pthread_mutex_unlock(&w->lock);
}

/* ---- inspection and test hooks ---- */

/* The entry a walk for @iova meets at @level, NULL when it ends above. */
static uint64_t *walk_entry_at(struct sim_pt *pt, uint64_t iova,
			       unsigned int level)
{
	unsigned int shift = pt->fmt->granule_lg2 + SIM_PT_ENTRIES_LG2 * level;
	struct sim_pt_walk w;

	iopt_sim_pt_walk(pt, iova, 0, 0, &w);
	if (level < w.level || level > iopt_sim_pt_top_level(pt))
		return NULL;
	return &sim_pt_table(pt, w.table_pa[level])
		[(iova >> shift) & (SIM_PT_ENTRIES - 1)];
}

int iopt_sim_domain_read_entry(struct iopt_domain *d, uint64_t iova,
			       unsigned int level, uint64_t *entry)
{
	uint64_t *e = walk_entry_at(&to_sim_domain(d)->pt, iova, level);

	if (!e)
		return -ENOENT;
	*entry = sim_pte_load(e);
	return 0;
}

int iopt_sim_domain_write_entry(struct iopt_domain *d, uint64_t iova,
				unsigned int level, uint64_t entry)
{
	uint64_t *e = walk_entry_at(&to_sim_domain(d)->pt, iova, level);

	if (!e)
		return -ENOENT;
	/* A raw store, as a stray write would do: no journal, no gather. */
	sim_pte_store(e, entry);
	return 0;
}

static void count_leaf(struct sim_pt *pt, uint64_t *entries, unsigned int nr,
		       unsigned int level, uint64_t leaf_va,
		       const struct sim_pte *pte, void *arg)
{
	uint64_t *counts = arg;

	(void)pt;
	(void)entries;
	(void)nr;
	(void)level;
	(void)leaf_va;
	counts[pte->size_lg2]++;
}

uint64_t iopt_sim_domain_count_leaves(struct iopt_domain *d, uint64_t first,
				      uint64_t last, uint64_t counts[64])
{
	uint64_t local[64] = { 0 }, total = 0;
	unsigned int i;

	iopt_sim_pt_for_each_leaf(&to_sim_domain(d)->pt, first, last,
				  count_leaf, local);
	for (i = 0; i < 64; i++) {
		total += local[i];
		if (counts)
			counts[i] += local[i];
	}
	return total;
}

uint32_t iopt_sim_domain_nr_tables(struct iopt_domain *d)
{
	return iopt_sim_pt_nr_tables(&to_sim_domain(d)->pt);
}

unsigned int iopt_sim_domain_top_level(struct iopt_domain *d)
{
	return iopt_sim_pt_top_level(&to_sim_domain(d)->pt);
}

size_t iopt_sim_domain_journal_pending(struct iopt_domain *d)
{
	struct sim_domain *sd = to_sim_domain(d);

	return sd->pt.journal ? iopt_sim_journal_pending(sd->pt.journal) : 0;
}

int iopt_sim_domain_set_dirty(struct iopt_domain *d, uint64_t iova)
{
	struct sim_pt *pt = &to_sim_domain(d)->pt;
	struct sim_pt_walk w;

	if (iopt_sim_pt_walk(pt, iova, 0, 0, &w))
		return -ENOENT;
	if (!w.pte.write && !w.pte.dirty_ok)
		return -EPERM;
	__atomic_store_n(w.entry, pt->fmt->make_dirty(w.value), __ATOMIC_RELEASE);
	return 0;
}

void iopt_sim_domain_fail_tables(struct iopt_domain *d, long n)
{
	struct sim_pt *pt = &to_sim_domain(d)->pt;

	pthread_mutex_lock(&pt->alloc_lock);
	pt->fail_tables = n;
	pthread_mutex_unlock(&pt->alloc_lock);
}

void iopt_sim_domain_fail_leaves(struct iopt_domain *d, long n)
{
	__atomic_store_n(&to_sim_domain(d)->pt.fail_leaves, n, __ATOMIC_RELAXED);
}

/* ---- life cycle ---- */

static void sim_domain_free(struct iopt_domain *d)
{
	struct sim_domain *sd = to_sim_domain(d);

	iopt_sim_iotlb_invalidate(sd->iommu, sd->id, 0, UINT64_MAX, true);
	iopt_sim_pt_destroy(&sd->pt);
	if (sd->pt.journal)
		iopt_sim_journal_destroy(&sd->journal);
	pthread_mutex_destroy(&sd->written.lock);
	pthread_mutex_destroy(&sd->held_lock);
	iopt_free(sd->written.slots);
	iopt_free(sd);
}

static const struct iopt_domain_ops sim_domain_ops = {
	.map_pages = sim_map_pages,
	.unmap_pages = sim_unmap_pages,
	.iova_to_phys = sim_iova_to_phys,
	.iotlb_sync = sim_iotlb_sync,
	.iotlb_sync_map = sim_iotlb_sync_map,
	.flush_iotlb_all = sim_flush_iotlb_all,
	.set_dirty_tracking = sim_set_dirty_tracking,
	.read_and_clear_dirty = sim_read_and_clear_dirty,
	.quiesce = sim_quiesce,
	.free = sim_domain_free,
};

/* Resolve defaults and check @c against @fmt; fills *levels and *oa. */
static int config_check(const struct iopt_sim_domain_config *c,
			const struct sim_pt_format *fmt, unsigned int *levels,
			unsigned int *oa)
{
	*levels = c->levels && !fmt->dynamic_top ? c->levels : fmt->start_levels;
	if (!fmt->dynamic_top && !(fmt->fixed_levels_mask & (1u << *levels)))
		return -EINVAL;
	*oa = c->oa_bits ? c->oa_bits : fmt->oa_lg2;
	if (*oa > fmt->oa_lg2 || *oa <= fmt->granule_lg2)
		return -EINVAL;
	if (c->table_arena_bytes && c->table_arena_bytes < 16 * SIM_PT_TABLE_SIZE)
		return -EINVAL;
	return 0;
}

static int sim_domain_set_aperture(struct sim_domain *sd,
				   const struct iopt_sim_domain_config *c)
{
	struct iopt_domain *d = &sd->domain;

	d->aperture_start = c->aperture_start;
	d->aperture_last = c->aperture_last ? c->aperture_last : sd->pt.va_last;
	if (d->aperture_last > sd->pt.va_last ||
	    d->aperture_start > d->aperture_last)
		return -EINVAL;
	return 0;
}

int iopt_sim_domain_alloc(struct iopt_sim_iommu *iommu,
			  const struct iopt_sim_domain_config *cfg,
			  struct iopt_domain **out)
{
	struct iopt_sim_domain_config c = { 0 };
	const struct sim_pt_format *fmt;
	unsigned int levels, oa;
	struct sim_domain *sd;
	uint64_t arena;
	int ret;

	if (cfg)
		c = *cfg;
	if ((unsigned int)c.format >= IOPT_SIM_FMT_NR)
		return -EINVAL;
	fmt = sim_formats[c.format];
	ret = config_check(&c, fmt, &levels, &oa);
	if (ret)
		return ret;
	arena = IOPT_ALIGN_UP(c.table_arena_bytes ? c.table_arena_bytes :
			      DEFAULT_ARENA_BYTES, (uint64_t)SIM_PT_TABLE_SIZE);
	sd = iopt_calloc(1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->iommu = iommu;
	sd->id = __atomic_add_fetch(&iommu->next_domain_id, 1, __ATOMIC_RELAXED);
	ret = iopt_sim_pt_init(&sd->pt, fmt, levels,
			       c.pgsize_mask ? c.pgsize_mask : UINT64_MAX, oa,
			       __atomic_fetch_add(&iommu->next_arena_pa, arena,
						  __ATOMIC_RELAXED),
			       arena, fmt == &iopt_sim_fmt_arm_lpae_s1);
	if (ret)
		goto err_free;
	ret = sim_domain_set_aperture(sd, &c);
	if (ret)
		goto err_destroy_pt;
	if (!c.no_journal) {
		ret = iopt_sim_journal_init(&sd->journal, c.journal_records ?
					    c.journal_records : DEFAULT_JOURNAL);
		if (ret)
			goto err_destroy_pt;
		sd->pt.journal = &sd->journal;
	}
	sd->pt.log_sets = iommu->cfg.negative_cache;
	pthread_mutex_init(&sd->written.lock, NULL);
	pthread_mutex_init(&sd->held_lock, NULL);
	sd->domain.ops = &sim_domain_ops;
	sd->domain.pgsize_bitmap = sd->pt.pgsize_bitmap;
	*out = &sd->domain;
	return 0;

err_destroy_pt:
	iopt_sim_pt_destroy(&sd->pt);
err_free:
	iopt_free(sd);
	return ret;
}
