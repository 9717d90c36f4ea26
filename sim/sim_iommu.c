/* SPDX-License-Identifier: MIT */
/*
 * sim_iommu.c - the simulated IOMMU object: configuration, caches, the
 * bounded fault ring with counters and callback, checker reports.
 *
 * The fault ring mirrors the VT-d fault-recording registers / AMD event log:
 * fixed size, oldest first, new faults dropped (and counted) when full, so a
 * device storm cannot grow memory. Reports from the change journal go to
 * counters and an optional callback; they are test failures, not faults.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "sim_internal.h"
#include "util.h"

#define DEFAULT_IOTLB_ENTRIES	1024
#define DEFAULT_WALK_ENTRIES	256
#define DEFAULT_FAULT_RING	64
/* Table arenas live above the frame window's usual place (iopt/sim.h). */
#define ARENA_PA_BASE		(UINT64_C(1) << 44)

int iopt_sim_iommu_alloc(const struct iopt_sim_iommu_config *cfg,
			 struct iopt_sim_iommu **out)
{
	struct iopt_sim_iommu *iommu;
	int ret = -ENOMEM;

	if (cfg && (unsigned int)cfg->inval_model > IOPT_SIM_INVAL_FLUSH_ALL)
		return -EINVAL;
	iommu = iopt_calloc(1, sizeof(*iommu));
	if (!iommu)
		return -ENOMEM;
	if (cfg)
		iommu->cfg = *cfg;
	if (!iommu->cfg.iotlb_entries)
		iommu->cfg.iotlb_entries = DEFAULT_IOTLB_ENTRIES;
	if (!iommu->cfg.walk_entries)
		iommu->cfg.walk_entries = DEFAULT_WALK_ENTRIES;
	if (!iommu->cfg.fault_ring)
		iommu->cfg.fault_ring = DEFAULT_FAULT_RING;
	iommu->ring = iopt_calloc(iommu->cfg.fault_ring, sizeof(*iommu->ring));
	if (!iommu->ring)
		goto err_free;
	ret = iopt_sim_cache_init(&iommu->leaf, iommu->cfg.iotlb_entries,
				  iommu->cfg.sticky);
	if (ret)
		goto err_free_ring;
	ret = iopt_sim_cache_init(&iommu->walk, iommu->cfg.walk_entries,
				  iommu->cfg.sticky);
	if (ret)
		goto err_free_leaf;
	pthread_mutex_init(&iommu->tlb_lock, NULL);
	pthread_mutex_init(&iommu->fault_lock, NULL);
	iommu->next_arena_pa = ARENA_PA_BASE;
	*out = iommu;
	return 0;

err_free_leaf:
	iopt_sim_cache_destroy(&iommu->leaf);
err_free_ring:
	iopt_free(iommu->ring);
err_free:
	iopt_free(iommu);
	return ret;
}

void iopt_sim_iommu_destroy(struct iopt_sim_iommu *iommu)
{
	if (!iommu)
		return;
	pthread_mutex_destroy(&iommu->tlb_lock);
	pthread_mutex_destroy(&iommu->fault_lock);
	iopt_sim_cache_destroy(&iommu->walk);
	iopt_sim_cache_destroy(&iommu->leaf);
	iopt_free(iommu->ring);
	iopt_free(iommu);
}

void iopt_sim_iommu_read_stats(struct iopt_sim_iommu *iommu,
			       struct iopt_sim_stats *stats)
{
	unsigned int i;

	pthread_mutex_lock(&iommu->tlb_lock);
	pthread_mutex_lock(&iommu->fault_lock);
	*stats = iommu->stats;
	pthread_mutex_unlock(&iommu->fault_lock);
	pthread_mutex_unlock(&iommu->tlb_lock);
	for (i = 0; i < IOPT_ARRAY_SIZE(stats->reports); i++)
		stats->reports[i] = __atomic_load_n(&iommu->stats.reports[i],
						    __ATOMIC_RELAXED);
}

bool iopt_sim_fault_pop(struct iopt_sim_iommu *iommu, struct iopt_sim_fault *f)
{
	bool got = false;

	pthread_mutex_lock(&iommu->fault_lock);
	if (iommu->ring_nr) {
		*f = iommu->ring[iommu->ring_head];
		iommu->ring_head = (iommu->ring_head + 1) % iommu->cfg.fault_ring;
		iommu->ring_nr--;
		got = true;
	}
	pthread_mutex_unlock(&iommu->fault_lock);
	return got;
}

const char *iopt_sim_fault_reason_name(enum iopt_sim_fault_reason reason)
{
	static const char *const names[IOPT_SIM_FAULT_NR_REASONS] = {
		[IOPT_SIM_FAULT_NOT_PRESENT] = "not present",
		[IOPT_SIM_FAULT_PERMISSION] = "permission",
		[IOPT_SIM_FAULT_APERTURE] = "outside the aperture",
		[IOPT_SIM_FAULT_OA_TOO_WIDE] = "output address too wide",
		[IOPT_SIM_FAULT_UNPINNED] = "frame not pinned",
		[IOPT_SIM_FAULT_FREED_TABLE] = "freed table",
		[IOPT_SIM_FAULT_NO_DOMAIN] = "no domain",
		[IOPT_SIM_FAULT_STALE_IOTLB] = "stale IOTLB entry",
	};

	if ((unsigned int)reason >= IOPT_SIM_FAULT_NR_REASONS)
		return "unknown";
	return names[reason];
}

/**
 * iopt_sim_fault_record() - log a DMA fault in the ring and counters.
 * @iommu: IOMMU.
 * @f: the fault.
 *
 * Locking: takes fault_lock; call with no sim lock held (the callback may
 * call back into the simulator).
 */
void iopt_sim_fault_record(struct iopt_sim_iommu *iommu,
			   const struct iopt_sim_fault *f)
{
	pthread_mutex_lock(&iommu->fault_lock);
	iommu->stats.faults[f->reason]++;
	if (iommu->ring_nr < iommu->cfg.fault_ring) {
		iommu->ring[(iommu->ring_head + iommu->ring_nr) %
			    iommu->cfg.fault_ring] = *f;
		iommu->ring_nr++;
	} else {
		iommu->stats.faults_dropped++;
	}
	pthread_mutex_unlock(&iommu->fault_lock);
	if (iommu->cfg.fault_cb)
		iommu->cfg.fault_cb(iommu->cfg.opaque, f);
}

void iopt_sim_report(struct iopt_sim_iommu *iommu,
		     const struct iopt_sim_report *r)
{
	__atomic_add_fetch(&iommu->stats.reports[r->kind], 1, __ATOMIC_RELAXED);
	if (iommu->cfg.report_cb)
		iommu->cfg.report_cb(iommu->cfg.opaque, r);
}
