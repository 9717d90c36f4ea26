/* SPDX-License-Identifier: MIT */
/*
 * iopt/check.h - the invariant checker: prove that an IOAS is internally
 * consistent, for debug builds and for users' own tests.
 *
 * The checker reads everything libiopt keeps about an IOAS and compares it
 * with what must hold (docs/reliability.md lists the rules): sound trees;
 * areas inside no reservation and aligned to the IOAS alignment; allowed
 * ranges apart from each other and from reservations; every domain
 * translating every page of every area to that area's frame and nothing
 * outside the areas; the pin
 * store of each pages object holding exactly the pages accesses pin; each
 * pages object pinning exactly the pages that accesses or domains cover, and
 * charging what it pins. Checking a complete set of IOASes also compares the
 * context counters and the process-wide pin registry with the sums over
 * their holders.
 *
 * Cost: proportional to the pages mapped (every page is translated through
 * every domain), so it is meant for tests, not for hot paths.
 *
 * The first broken rule is described in one line through the context's log
 * callback (iopt_ctx_set_log()) before the call returns.
 *
 * Locking: takes each IOAS's locks for reading, one IOAS at a time; it may run
 * concurrently with other calls, but a rule that spans objects (IOPT_CHECK_
 * COMPLETE) is only meaningful when no operation is in flight.
 */
#ifndef IOPT_CHECK_H
#define IOPT_CHECK_H

#include <stddef.h>

#include <iopt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iopt_ioas;

/*
 * iopt_ioas_check_set() flag: the IOASes given are every IOAS in the process
 * that holds pins, and no operation is in flight; the context counters
 * (pinned, charged) and the pin registry's per-page counts must then equal
 * the sums over the pages objects behind them.
 */
#define IOPT_CHECK_COMPLETE	(1u << 0)

/**
 * iopt_ioas_check() - verify the invariants of one IOAS.
 * @ioas: the IOAS.
 *
 * Return: 0 when every rule holds; -EUCLEAN at the first broken rule
 * (described through the context's log); -EINVAL for a NULL @ioas; -ENOMEM.
 */
IOPT_API int iopt_ioas_check(struct iopt_ioas *ioas);

/**
 * iopt_ioas_check_set() - verify several IOASes and, with
 * IOPT_CHECK_COMPLETE, the counters shared between them.
 * @ioases: the IOASes; pages shared by copies are counted once.
 * @n: number of IOASes.
 * @flags: IOPT_CHECK_COMPLETE or 0.
 *
 * Return: as iopt_ioas_check(); -EOPNOTSUPP for an unknown flag.
 */
IOPT_API int iopt_ioas_check_set(struct iopt_ioas *const *ioases, size_t n,
				 unsigned int flags);

#ifdef __cplusplus
}
#endif

#endif /* IOPT_CHECK_H */
