/* SPDX-License-Identifier: MIT */
/*
 * objid.c - the process-wide object id sequence (see objid.h).
 *
 * A counter rather than a table: ids are unique while fewer than 2^32 - 1 objects
 * have been created, which no test or VMM approaches; the emulation layer that
 * needs id -> object lookups keeps its own table.
 */
#include <stdatomic.h>

#include "objid.h"

static _Atomic uint32_t next_id = 1;

uint32_t iopt_obj_id_alloc(void)
{
	uint32_t id;

	do {
		id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
	} while (!id);
	return id;
}
