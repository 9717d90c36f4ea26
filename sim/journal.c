/* SPDX-License-Identifier: MIT */
/*
 * journal.c - change journal records, retirement by sync, drain at quiesce
 * points. The design is in journal.h.
 */
#include "journal.h"

#include <errno.h>

#include "alloc.h"

int iopt_sim_journal_init(struct sim_journal *j, size_t cap)
{
	j->recs = iopt_calloc(cap, sizeof(*j->recs));
	if (!j->recs)
		return -ENOMEM;
	pthread_mutex_init(&j->lock, NULL);
	j->nr = 0;
	j->cap = cap;
	j->overflowed = false;
	return 0;
}

void iopt_sim_journal_destroy(struct sim_journal *j)
{
	pthread_mutex_destroy(&j->lock);
	iopt_free(j->recs);
	j->recs = NULL;
}

void iopt_sim_journal_add(struct sim_journal *j, uint64_t first, uint64_t last,
			  unsigned int level, enum sim_journal_kind kind)
{
	struct sim_journal_rec *prev;

	pthread_mutex_lock(&j->lock);
	prev = j->nr ? &j->recs[j->nr - 1] : NULL;
	/* Unmaps walk upwards in IOVA, so most changes extend the last record. */
	if (prev && prev->kind == kind && prev->level == level &&
	    prev->last != UINT64_MAX && prev->last + 1 == first) {
		prev->last = last;
	} else if (j->nr < j->cap) {
		j->recs[j->nr++] = (struct sim_journal_rec){
			.first = first, .last = last,
			.level = (uint8_t)level, .kind = (uint8_t)kind,
		};
	} else {
		j->overflowed = true;
	}
	pthread_mutex_unlock(&j->lock);
}

static bool level_named(const struct sim_journal_rec *r, uint32_t leaf_levels,
			uint32_t table_levels)
{
	if (!leaf_levels && !table_levels)
		return true;
	if (r->kind == SIM_J_LEAF_CLEARED)
		return leaf_levels & (1u << r->level);
	if (r->kind == SIM_J_TABLE_UNLINKED)
		return table_levels & (1u << r->level);
	return true;
}

size_t iopt_sim_journal_retire(struct sim_journal *j, uint64_t first,
			       uint64_t last, uint32_t leaf_levels,
			       uint32_t table_levels)
{
	size_t i, kept = 0, retired;

	pthread_mutex_lock(&j->lock);
	for (i = 0; i < j->nr; i++) {
		const struct sim_journal_rec *r = &j->recs[i];

		if (r->first >= first && r->last <= last &&
		    level_named(r, leaf_levels, table_levels))
			continue;
		j->recs[kept++] = *r;
	}
	retired = j->nr - kept;
	j->nr = kept;
	pthread_mutex_unlock(&j->lock);
	return retired;
}

size_t iopt_sim_journal_drain(struct sim_journal *j,
			      void (*fn)(void *arg,
					 const struct sim_journal_rec *rec),
			      void *arg, bool *overflowed)
{
	size_t i, nr;

	pthread_mutex_lock(&j->lock);
	nr = j->nr;
	for (i = 0; i < nr; i++)
		fn(arg, &j->recs[i]);
	j->nr = 0;
	*overflowed = j->overflowed;
	j->overflowed = false;
	pthread_mutex_unlock(&j->lock);
	return nr;
}

size_t iopt_sim_journal_pending(struct sim_journal *j)
{
	size_t nr;

	pthread_mutex_lock(&j->lock);
	nr = j->nr;
	pthread_mutex_unlock(&j->lock);
	return nr;
}

bool iopt_sim_journal_covers(struct sim_journal *j, uint64_t iova)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&j->lock);
	for (i = 0; i < j->nr && !found; i++)
		found = j->recs[i].first <= iova && iova <= j->recs[i].last;
	pthread_mutex_unlock(&j->lock);
	return found;
}
