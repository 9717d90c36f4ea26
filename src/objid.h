/* SPDX-License-Identifier: MIT */
/*
 * objid.h - object ids: the numbers iommufd gives its objects.
 *
 * Every IOAS and access gets an id from one process-wide sequence, so an id names
 * exactly one live object whatever its type, as the ids of one iommufd file do
 * (ictx->objects). The /dev/iommu emulation maps ids back to objects on top of
 * this; the library itself only hands them out. 0 is never an id.
 */
#ifndef IOPT_OBJID_H
#define IOPT_OBJID_H

#include <stdint.h>

/** iopt_obj_id_alloc() - Return: a fresh id, never 0. Locking: none (atomic). */
uint32_t iopt_obj_id_alloc(void);

#endif /* IOPT_OBJID_H */
