/* SPDX-License-Identifier: MIT */
/*
 * sim_dma.c - simulated devices and their DMA: IOTLB lookup, table walk
 * (from the deepest walk-cache hit), permission check, A/D update, and the
 * copy to or from host memory through the frame table.
 *
 * Hardware behaviour reproduced on purpose (domain-contract.md §3.5-3.7):
 * - a leaf-cache hit is used even if the table changed since it was filled,
 *   so a missing invalidation shows up as a stale DMA;
 * - A and D are written only on a walk (or, for D, when a write hits a
 *   cached entry without it): A on every access the walk allows, D only while
 *   the IOMMU updates dirty state (hw_dirty_on()); a write hitting a cached
 *   entry whose D is already set does not touch the table, so a dirty bit
 *   cleared without invalidation is lost (the ground-truth set exposes it);
 * - D is set on the replica the IOVA indexes, not on the whole run;
 * - a walk-cache entry pointing at a table that was recycled faults
 *   (FREED_TABLE): the table left quarantine without an invalidation;
 * - a translation whose frame is not pinned faults (UNPINNED), the unpin-
 *   while-reachable bug iommufd must never have.
 * A fault aborts the transfer; bytes before it are done.
 */
#include <errno.h>
#include <string.h>

#include <iopt/phys.h>

#include "alloc.h"
#include "sim_internal.h"
#include "util.h"

struct xlate {
	uint64_t va;
	unsigned int lg2;
	uint64_t oa;
};

int iopt_sim_dev_alloc(struct iopt_sim_iommu *iommu, uint32_t id,
		       struct iopt_sim_dev **out)
{
	struct iopt_sim_dev *dev = iopt_calloc(1, sizeof(*dev));

	if (!dev)
		return -ENOMEM;
	dev->iommu = iommu;
	dev->id = id;
	*out = dev;
	return 0;
}

void iopt_sim_dev_destroy(struct iopt_sim_dev *dev)
{
	iopt_free(dev);
}

int iopt_sim_dev_attach(struct iopt_sim_dev *dev, struct iopt_domain *d)
{
	struct sim_domain *sd = NULL;

	if (d) {
		if (!iopt_sim_is_domain(d))
			return -EINVAL;
		sd = to_sim_domain(d);
		if (sd->iommu != dev->iommu)
			return -EINVAL;
	}
	__atomic_store_n(&dev->dom, sd, __ATOMIC_RELEASE);
	return 0;
}

static uint8_t pte_flags(const struct sim_pte *pte)
{
	return (uint8_t)((pte->read ? SIM_TLB_READ : 0) |
			 (pte->write ? SIM_TLB_WRITE : 0) |
			 (pte->dirty_ok ? SIM_TLB_DIRTY_OK : 0) |
			 (pte->dirty ? SIM_TLB_DIRTY : 0));
}

/*
 * Whether the IOMMU writes dirty state for @sd now. AMD (DTE.HAD) and VT-d
 * (PASID SSADE) follow set_dirty_tracking. SMMUv3 sets CD.HD when a
 * dirty-capable domain is created and its set_dirty_tracking does nothing,
 * so a DBM format updates dirty state for the domain's whole life: a write
 * to a writable-clean leaf must never fault because tracking was turned off.
 */
static bool hw_dirty_on(struct sim_domain *sd)
{
	return sd->pt.dbm || __atomic_load_n(&sd->tracking, __ATOMIC_ACQUIRE);
}

static bool access_ok(uint8_t flags, bool write, bool hw_dirty)
{
	if (!write)
		return flags & SIM_TLB_READ;
	return (flags & SIM_TLB_WRITE) || ((flags & SIM_TLB_DIRTY_OK) && hw_dirty);
}

/*
 * Set A (and D when @dirty) on the walked entry, as hardware does with an
 * atomic update. Gives up if software replaced the leaf meanwhile.
 */
static void hw_update(struct sim_pt *pt, struct sim_pt_walk *w, bool dirty)
{
	const struct sim_pte orig = w->pte;
	uint64_t old = w->value;

	for (;;) {
		uint64_t new = pt->fmt->make_accessed(old);

		if (dirty)
			new = pt->fmt->make_dirty(new);
		if (new == old ||
		    __atomic_compare_exchange_n(w->entry, &old, new, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			w->value = new;
			pt->fmt->decode(new, w->level, &w->pte);
			return;
		}
		pt->fmt->decode(old, w->level, &w->pte);
		if (w->pte.kind != SIM_PTE_LEAF || w->pte.addr != orig.addr ||
		    w->pte.size_lg2 != orig.size_lg2) {
			w->pte = orig;
			return;
		}
	}
}

static struct sim_cache_ent *leaf_lookup(struct iopt_sim_iommu *iommu,
					 struct sim_domain *sd, uint64_t iova)
{
	uint64_t used = __atomic_load_n(&sd->pt.sizes_used, __ATOMIC_ACQUIRE);

	/* Negative entries are kept per granule. */
	if (iommu->cfg.negative_cache)
		used |= UINT64_C(1) << sd->pt.fmt->granule_lg2;

	while (used) {
		unsigned int lg2 = iopt_fls64(used) - 1;
		struct sim_cache_ent *e = iopt_sim_cache_find(&iommu->leaf, sd->id,
							      lg2, iova);

		if (e)
			return e;
		used &= ~(UINT64_C(1) << lg2);
	}
	return NULL;
}

static unsigned int walk_span(const struct sim_pt *pt, unsigned int level)
{
	return pt->fmt->granule_lg2 + SIM_PT_ENTRIES_LG2 * (level + 1);
}

/* Deepest cached table for @iova: 0 and *level untouched when none. */
static int walk_cache_start(struct iopt_sim_iommu *iommu, struct sim_domain *sd,
			    uint64_t iova, unsigned int top, uint64_t *pa,
			    unsigned int *level)
{
	unsigned int l;

	for (l = 0; l < top; l++) {
		struct sim_cache_ent *e = iopt_sim_cache_find(&iommu->walk, sd->id,
							      walk_span(&sd->pt, l),
							      iova);
		struct sim_pt_meta *m;

		if (!e)
			continue;
		m = sim_pt_meta_of(&sd->pt, e->addr);
		if (!m || __atomic_load_n(&m->state, __ATOMIC_ACQUIRE) == SIM_TABLE_FREE ||
		    __atomic_load_n(&m->gen, __ATOMIC_ACQUIRE) != e->gen)
			return -ESTALE;
		iommu->stats.walk_hits++;
		*pa = e->addr;
		*level = l;
		return 0;
	}
	return 0;
}

static void walk_cache_fill(struct iopt_sim_iommu *iommu, struct sim_domain *sd,
			    uint64_t iova, const struct sim_pt_walk *w,
			    unsigned int from, unsigned int top)
{
	unsigned int l;

	for (l = w->level; l <= from && l < top; l++) {
		struct sim_cache_ent e = {
			.dom_id = sd->id, .span_lg2 = (uint8_t)walk_span(&sd->pt, l),
			.level = (uint8_t)l, .gen = w->table_gen[l],
			.addr = w->table_pa[l],
		};

		e.index = iova >> e.span_lg2;
		iopt_sim_cache_insert(&iommu->walk, &e);
	}
}

static void negative_fill(struct iopt_sim_iommu *iommu, struct sim_domain *sd,
			  uint64_t iova, unsigned int level)
{
	struct sim_cache_ent e = {
		.dom_id = sd->id, .span_lg2 = (uint8_t)sd->pt.fmt->granule_lg2,
		.level = (uint8_t)level, .flags = SIM_TLB_NEGATIVE,
	};

	e.index = iova >> e.span_lg2;
	iopt_sim_cache_insert(&iommu->leaf, &e);
}

/* Leaf-cache miss: walk, check, update A/D, fill both caches. */
static int translate_walk_locked(struct iopt_sim_iommu *iommu,
				 struct sim_domain *sd, uint64_t iova,
				 bool write, bool hw_dirty, struct xlate *x,
				 struct iopt_sim_fault *f)
{
	unsigned int top = iopt_sim_pt_top_level(&sd->pt), from = top;
	struct sim_cache_ent e = { .dom_id = sd->id };
	struct sim_pt_walk w;
	uint64_t start = 0;

	iommu->stats.iotlb_misses++;
	if (walk_cache_start(iommu, sd, iova, top, &start, &from)) {
		f->reason = IOPT_SIM_FAULT_FREED_TABLE;
		return -EFAULT;
	}
	if (iopt_sim_pt_walk(&sd->pt, iova, start, from, &w)) {
		f->reason = IOPT_SIM_FAULT_NOT_PRESENT;
		f->level = w.level;
		f->entry = w.value;
		if (iommu->cfg.negative_cache)
			negative_fill(iommu, sd, iova, w.level);
		return -EFAULT;
	}
	if (!access_ok(pte_flags(&w.pte), write, hw_dirty)) {
		f->reason = IOPT_SIM_FAULT_PERMISSION;
		f->level = w.level;
		f->entry = w.value;
		return -EFAULT;
	}
	if (w.pte.addr + ((UINT64_C(1) << w.pte.size_lg2) - 1) > sd->pt.oa_last) {
		f->reason = IOPT_SIM_FAULT_OA_TOO_WIDE;
		f->level = w.level;
		f->entry = w.value;
		return -EFAULT;
	}
	/* The access is allowed: A always, D only while dirty state is kept. */
	hw_update(&sd->pt, &w, write && hw_dirty);
	walk_cache_fill(iommu, sd, iova, &w, from, top);
	e.span_lg2 = (uint8_t)w.pte.size_lg2;
	e.index = iova >> w.pte.size_lg2;
	e.level = (uint8_t)w.level;
	e.flags = pte_flags(&w.pte);
	e.addr = w.pte.addr;
	iopt_sim_cache_insert(&iommu->leaf, &e);
	*x = (struct xlate){ .va = e.index << e.span_lg2, .lg2 = e.span_lg2,
			     .oa = e.addr };
	return 0;
}

/* Hardware marking a cached leaf dirty: an atomic update via a fresh walk. */
static void hit_set_dirty(struct sim_domain *sd, uint64_t iova,
			  struct sim_cache_ent *e)
{
	struct sim_pt_walk w;

	if (!iopt_sim_pt_walk(&sd->pt, iova, 0, 0, &w) &&
	    w.pte.addr == e->addr && w.pte.size_lg2 == e->span_lg2) {
		hw_update(&sd->pt, &w, true);
		e->flags = pte_flags(&w.pte);
	}
	e->flags |= SIM_TLB_DIRTY;
}

/*
 * Stale-hit detector: the cached leaf no longer matches the table, and no
 * journal record explains it (a change whose sync is still to come).
 */
static bool hit_is_stale(struct sim_domain *sd, uint64_t iova,
			 const struct sim_cache_ent *e)
{
	struct sim_pt_walk w;

	if (!iopt_sim_pt_walk(&sd->pt, iova, 0, 0, &w) &&
	    w.pte.addr == e->addr && w.pte.size_lg2 == e->span_lg2)
		return false;
	return !sd->pt.journal || !iopt_sim_journal_covers(sd->pt.journal, iova);
}

static int translate(struct iopt_sim_iommu *iommu, struct sim_domain *sd,
		     uint64_t iova, bool write, struct xlate *x,
		     struct iopt_sim_fault *f)
{
	bool hw_dirty = hw_dirty_on(sd);
	struct sim_cache_ent *e;
	int ret = 0;

	if (iova < sd->domain.aperture_start || iova > sd->domain.aperture_last) {
		f->reason = IOPT_SIM_FAULT_APERTURE;
		return -EFAULT;
	}
	pthread_mutex_lock(&iommu->tlb_lock);
	e = leaf_lookup(iommu, sd, iova);
	if (!e) {
		ret = translate_walk_locked(iommu, sd, iova, write, hw_dirty, x, f);
		goto out_unlock;
	}
	iommu->stats.iotlb_hits++;
	if (e->flags & SIM_TLB_NEGATIVE) {
		f->reason = IOPT_SIM_FAULT_NOT_PRESENT;
		f->level = e->level;
		ret = -EFAULT;
		goto out_unlock;
	}
	if (iommu->cfg.stale_check && hit_is_stale(sd, iova, e)) {
		f->reason = IOPT_SIM_FAULT_STALE_IOTLB;
		ret = -EFAULT;
		goto out_unlock;
	}
	if (!access_ok(e->flags, write, hw_dirty)) {
		f->reason = IOPT_SIM_FAULT_PERMISSION;
		f->level = e->level;
		ret = -EFAULT;
		goto out_unlock;
	}
	if (write && hw_dirty && !(e->flags & SIM_TLB_DIRTY))
		hit_set_dirty(sd, iova, e);
	*x = (struct xlate){ .va = e->index << e->span_lg2, .lg2 = e->span_lg2,
			     .oa = e->addr };
out_unlock:
	pthread_mutex_unlock(&iommu->tlb_lock);
	return ret;
}

/* Copy up to @len bytes at output address @pa; stops at an unpinned frame. */
static uint64_t copy_frames(uint64_t pa, uint8_t *buf, uint64_t len,
			    bool write)
{
	uint64_t done = 0;

	while (done < len) {
		uint8_t *host = iopt_phys_to_host(pa + done);
		uint64_t n = IOPT_MIN(len - done, IOPT_PHYS_FRAME_SIZE -
				      ((pa + done) & (IOPT_PHYS_FRAME_SIZE - 1)));

		if (!host)
			break;
		/* Coalesce frames that are adjacent in host memory too. */
		while (done + n < len &&
		       iopt_phys_to_host(pa + done + n) == host + n)
			n += IOPT_MIN(len - done - n, (uint64_t)IOPT_PHYS_FRAME_SIZE);
		if (write)
			memcpy(host, buf + done, n);
		else
			memcpy(buf + done, host, n);
		done += n;
	}
	return done;
}

static uint64_t dma_rw(struct iopt_sim_dev *dev, uint64_t iova, uint8_t *buf,
		       uint64_t len, bool write)
{
	struct sim_domain *sd = __atomic_load_n(&dev->dom, __ATOMIC_ACQUIRE);
	struct iopt_sim_fault f = { .dev_id = dev->id, .write = write };
	uint64_t done = 0;

	if (!sd) {
		f.reason = IOPT_SIM_FAULT_NO_DOMAIN;
		goto fault;
	}
	if (len && iova + (len - 1) < iova) {
		f.reason = IOPT_SIM_FAULT_APERTURE;
		goto fault;
	}
	while (done < len) {
		uint64_t cur = iova + done, chunk, copied;
		struct xlate x;

		if (translate(dev->iommu, sd, cur, write, &x, &f))
			goto fault;
		chunk = IOPT_MIN(len - done,
				 x.va + ((UINT64_C(1) << x.lg2) - 1) - cur + 1);
		copied = copy_frames(x.oa + (cur - x.va), buf + done, chunk, write);
		if (write && copied)
			iopt_sim_written_add(&sd->written, cur, copied);
		done += copied;
		if (copied < chunk) {
			f.reason = IOPT_SIM_FAULT_UNPINNED;
			goto fault;
		}
	}
	return done;

fault:
	f.iova = iova + done;
	iopt_sim_fault_record(dev->iommu, &f);
	return done;
}

uint64_t iopt_sim_dma_read(struct iopt_sim_dev *dev, uint64_t iova, void *buf,
			   uint64_t len)
{
	return dma_rw(dev, iova, buf, len, false);
}

uint64_t iopt_sim_dma_write(struct iopt_sim_dev *dev, uint64_t iova,
			    const void *buf, uint64_t len)
{
	/* The buffer is only read on this path; the cast keeps one copy loop. */
	return dma_rw(dev, iova, (uint8_t *)(uintptr_t)buf, len, true);
}
