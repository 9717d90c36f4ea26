/* SPDX-License-Identifier: MIT */
/*
 * sim_internal.h - types shared inside sim/ only: the IOMMU (IOTLB, walk
 * cache, fault ring, statistics), the simulated domain and the device.
 *
 * Layering (domain-contract.md §3.1): sim_domain.c implements the domain
 * ops over pt_radix.c and the journal; iotlb.c holds the caches and the
 * invalidation models; sim_dma.c is the device side (translate, copy, A/D,
 * faults). Lock order: a domain's journal lock and a table arena's
 * alloc_lock are leaves; iommu->tlb_lock may be held while taking them, never
 * the reverse; iommu->fault_lock is a leaf taken with nothing else held.
 */
#ifndef IOPT_SIM_INTERNAL_H
#define IOPT_SIM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <iopt/domain.h>
#include <iopt/sim.h>

#include "journal.h"
#include "pt_radix.h"

/**
 * struct sim_cache_ent - one IOTLB or walk-cache entry.
 * @index: IOVA >> @span_lg2 (the naturally aligned block it translates).
 * @dom_id: owning domain; 0 = empty slot.
 * @span_lg2: bytes of IOVA covered: the leaf size, or for a walk-cache
 *	      entry the span of the cached table.
 * @level: table level (walk cache) or leaf level (leaf cache).
 * @flags: SIM_TLB_* (leaf cache).
 * @gen: generation of the cached table (walk cache).
 * @addr: leaf base output address, or table sim-PA.
 */
struct sim_cache_ent {
	uint64_t index;
	uint32_t dom_id;
	uint8_t span_lg2;
	uint8_t level;
	uint8_t flags;
	uint32_t gen;
	uint64_t addr;
};

#define SIM_TLB_READ		(1u << 0)
#define SIM_TLB_WRITE		(1u << 1)
#define SIM_TLB_DIRTY_OK	(1u << 2)
#define SIM_TLB_DIRTY		(1u << 3)
#define SIM_TLB_NEGATIVE	(1u << 4)	/* cached "not present" */

/**
 * struct sim_cache - a hashed cache of translations.
 * @ents: @cap slots.
 * @spare: @cap slots used to rebuild after removals (sticky mode).
 * @cap: slots, a power of two.
 * @nr: valid entries.
 * @sticky: never evict (linear probing, grows); else direct-mapped.
 *
 * Guarded by the owning IOMMU's tlb_lock.
 */
struct sim_cache {
	struct sim_cache_ent *ents;
	struct sim_cache_ent *spare;
	uint32_t cap;
	uint32_t nr;
	bool sticky;
};

/**
 * struct iopt_sim_iommu - one simulated IOMMU.
 * @cfg: options, immutable after alloc.
 * @tlb_lock: guards @leaf, @walk and @stats' cache counters.
 * @leaf: leaf cache (IOTLB).
 * @walk: walk cache (table pointers).
 * @fault_lock: guards @ring, @ring_head, @ring_nr and the fault counters.
 * @ring: @cfg.fault_ring records.
 * @ring_head: index of the oldest record.
 * @ring_nr: records held.
 * @stats: counters (tlb part under tlb_lock, faults under fault_lock,
 *	   reports atomic).
 * @next_domain_id: atomic.
 * @next_arena_pa: next free table-arena sim-PA; atomic.
 */
struct iopt_sim_iommu {
	struct iopt_sim_iommu_config cfg;
	pthread_mutex_t tlb_lock;
	struct sim_cache leaf;
	struct sim_cache walk;
	pthread_mutex_t fault_lock;
	struct iopt_sim_fault *ring;
	unsigned int ring_head;
	unsigned int ring_nr;
	struct iopt_sim_stats stats;
	uint32_t next_domain_id;
	uint64_t next_arena_pa;
};

/**
 * struct sim_written - ground-truth set of 4 KiB pages written by DMA.
 * @lock: guards the other fields.
 * @slots: open-addressing set of page numbers, UINT64_MAX = empty.
 * @cap: slots (power of two, 0 before the first write).
 * @nr: pages in the set.
 */
struct sim_written {
	pthread_mutex_t lock;
	uint64_t *slots;
	uint64_t cap;
	uint64_t nr;
};

/**
 * struct sim_domain - a simulated domain.
 * @domain: what the core sees; fields immutable.
 * @iommu: owning IOMMU; immutable.
 * @id: unique per IOMMU, never 0; immutable.
 * @pt: the page table (its own locking).
 * @journal: change journal; used only when @pt.journal points at it.
 * @tracking: dirty tracking enabled (AMD DTE.HAD, VT-d SSADE; ARM keeps HD
 *	      on regardless, see sim_dma.c); atomic.
 * @written: ground truth of DMA writes.
 * @held_lock: guards @held; a leaf (taken before nothing else).
 * @held: quarantined tables whose freeing sync did not cover them, linked
 *	  through their meta's link; released by a covering sync or a
 *	  flush-all.
 */
struct sim_domain {
	struct iopt_domain domain;
	struct iopt_sim_iommu *iommu;
	uint32_t id;
	struct sim_pt pt;
	struct sim_journal journal;
	bool tracking;
	struct sim_written written;
	pthread_mutex_t held_lock;
	struct iopt_gather_page *held;
};

/**
 * struct iopt_sim_dev - a device.
 * @iommu: owning IOMMU; immutable.
 * @id: reported in faults; immutable.
 * @dom: attached domain or NULL; atomic.
 */
struct iopt_sim_dev {
	struct iopt_sim_iommu *iommu;
	uint32_t id;
	struct sim_domain *dom;
};

static inline struct sim_domain *to_sim_domain(struct iopt_domain *d)
{
	return (struct sim_domain *)((char *)d - offsetof(struct sim_domain,
							  domain));
}

/* iotlb.c; callers of the cache functions hold iommu->tlb_lock. */

/** iopt_sim_cache_init() - @cap slots (rounded up). Return: 0 or -ENOMEM. */
int iopt_sim_cache_init(struct sim_cache *c, unsigned int cap, bool sticky);
void iopt_sim_cache_destroy(struct sim_cache *c);
/** iopt_sim_cache_find() - entry of @dom_id for the 2^@span_lg2 block holding @iova, or NULL. */
struct sim_cache_ent *iopt_sim_cache_find(struct sim_cache *c, uint32_t dom_id,
					  unsigned int span_lg2, uint64_t iova);
/** iopt_sim_cache_insert() - add or replace @e (a sticky cache grows, or skips if it cannot). */
void iopt_sim_cache_insert(struct sim_cache *c, const struct sim_cache_ent *e);

/**
 * iopt_sim_iotlb_invalidate() - drop @dom_id's leaf entries overlapping
 * [@first, @last], and its walk entries too when @tables.
 * Locking: takes tlb_lock, which also waits out in-flight walks.
 */
void iopt_sim_iotlb_invalidate(struct iopt_sim_iommu *iommu, uint32_t dom_id,
			       uint64_t first, uint64_t last, bool tables);

/** iopt_sim_iotlb_sync_gather() - run the IOMMU's invalidation model on @g. */
void iopt_sim_iotlb_sync_gather(struct iopt_sim_iommu *iommu, uint32_t dom_id,
				const struct iopt_iotlb_gather *g);

/* sim_iommu.c */

/** iopt_sim_report() - count @r and pass it to the report callback. */
void iopt_sim_report(struct iopt_sim_iommu *iommu,
		     const struct iopt_sim_report *r);

/**
 * iopt_sim_fault_record() - log a DMA fault in the ring and counters, then
 * call the fault callback.
 * Locking: takes fault_lock; call with no other sim lock held.
 */
void iopt_sim_fault_record(struct iopt_sim_iommu *iommu,
			   const struct iopt_sim_fault *f);

/* sim_domain.c */

/** iopt_sim_written_add() - note DMA-written pages of [@iova, @iova + @len). */
void iopt_sim_written_add(struct sim_written *w, uint64_t iova, uint64_t len);

#endif /* IOPT_SIM_INTERNAL_H */
