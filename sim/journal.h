/* SPDX-License-Identifier: MIT */
/*
 * journal.h - the change journal: every page-table change that hardware may
 * have cached, waiting for an invalidation that covers it
 * (domain-contract.md §3.5, detector 1).
 *
 * The engine logs a record per change (adjacent changes of the same kind
 * and level coalesce into one record). iotlb_sync retires the records its
 * gather covers; a record still present at a quiesce point is a missing
 * invalidation. The record array is allocated once, when the domain is
 * created, because unmap must never allocate; if it fills up the journal
 * counts an overflow and stops checking rather than failing the unmap.
 */
#ifndef IOPT_SIM_JOURNAL_H
#define IOPT_SIM_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iopt/domain.h>

enum sim_journal_kind {
	SIM_J_LEAF_CLEARED,
	SIM_J_TABLE_UNLINKED,
	SIM_J_DIRTY_CLEARED,
	SIM_J_LEAF_SET,		/* over an empty slot; only with a negative cache */
};

/**
 * struct sim_journal_rec - one change not yet covered by a sync.
 * @first: first IOVA whose translation changed.
 * @last: last such IOVA (inclusive).
 * @level: level of the changed entry (a table: the unlinked table's level).
 * @kind: enum sim_journal_kind.
 */
struct sim_journal_rec {
	uint64_t first;
	uint64_t last;
	uint8_t level;
	uint8_t kind;
};

/**
 * struct sim_journal - outstanding changes of one domain.
 * @lock: guards every other field.
 * @recs: @cap records, @nr in use.
 * @nr: records in use.
 * @cap: capacity, fixed at init.
 * @overflowed: a record was dropped; checks are unreliable until the next
 *		quiesce point resets it.
 */
struct sim_journal {
	pthread_mutex_t lock;
	struct sim_journal_rec *recs;
	size_t nr;
	size_t cap;
	bool overflowed;
};

/** iopt_sim_journal_init() - Return: 0 or -ENOMEM (@cap records, fixed). */
int iopt_sim_journal_init(struct sim_journal *j, size_t cap);
void iopt_sim_journal_destroy(struct sim_journal *j);

/**
 * iopt_sim_journal_add() - log that [@first, @last] changed at @level.
 * Never allocates: a full journal sets @j->overflowed instead.
 */
void iopt_sim_journal_add(struct sim_journal *j, uint64_t first, uint64_t last,
			  unsigned int level, enum sim_journal_kind kind);

/**
 * iopt_sim_journal_retire() - drop records inside [@first, @last].
 * @j: journal.
 * @first: first IOVA invalidated.
 * @last: last IOVA invalidated (inclusive).
 * @leaf_levels: a detailed gather's leaf levels, or 0.
 * @table_levels: a detailed gather's table levels, or 0.
 *
 * With a detailed gather (either bitmap non-zero) a cleared leaf or unlinked
 * table must also have its level named, as the kernel's detailed gather
 * promises the IOMMU. Return: records retired.
 */
size_t iopt_sim_journal_retire(struct sim_journal *j, uint64_t first,
			       uint64_t last, uint32_t leaf_levels,
			       uint32_t table_levels);

/**
 * iopt_sim_journal_drain() - hand every record to @fn and forget them (a
 * quiesce point). *@overflowed tells whether records were lost since the
 * last drain. Return: records drained.
 * Locking: @fn runs under @j->lock and must not log.
 */
size_t iopt_sim_journal_drain(struct sim_journal *j,
			      void (*fn)(void *arg,
					 const struct sim_journal_rec *rec),
			      void *arg, bool *overflowed);

/** iopt_sim_journal_pending() - Return: records outstanding. */
size_t iopt_sim_journal_pending(struct sim_journal *j);

/** iopt_sim_journal_covers() - Return: true when a record contains @iova. */
bool iopt_sim_journal_covers(struct sim_journal *j, uint64_t iova);

/* Log a change when @j is enabled (NULL = journal off). */
static inline void sim_journal_log(struct sim_journal *j, uint64_t first,
				   uint64_t last, unsigned int level,
				   enum sim_journal_kind kind)
{
	if (j)
		iopt_sim_journal_add(j, first, last, level, kind);
}

#endif /* IOPT_SIM_JOURNAL_H */
