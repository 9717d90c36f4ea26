/* SPDX-License-Identifier: MIT */
/*
 * alloc.h - the allocation seam and the fault-injection points.
 *
 * Every heap allocation in libiopt goes through iopt_malloc() and friends, and every
 * other operation that can fail for a reason outside the library (pinning, mlock,
 * populate, a domain's map_pages, mapping a memfd) first asks iopt_should_fail().
 * That gives the fail-nth harness (tests/) one place to make the n-th failure point
 * fail, like the kernel's iommufd_should_fail() and fail-nth, and lets it count
 * live allocations to prove that an unwound failure leaks nothing.
 *
 * With IOPT_FAULT_INJECTION off (release builds) iopt_should_fail() is a constant
 * false and the counters vanish: no cost when off.
 */
#ifndef IOPT_ALLOC_H
#define IOPT_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

enum iopt_fail_site {
	IOPT_FAIL_ALLOC,	/* iopt_malloc/calloc/realloc */
	IOPT_FAIL_PIN,		/* populate + mlock of host memory */
	IOPT_FAIL_DOMAIN_MAP,	/* a simulated domain's map_pages */
	IOPT_FAIL_MEMFD_MAP,	/* mmap of a memfd range */
	IOPT_FAIL_NR_SITES,
};

void *iopt_malloc(size_t size);
void *iopt_calloc(size_t nmemb, size_t size);
void *iopt_realloc(void *ptr, size_t size);
void iopt_free(void *ptr);

#ifdef IOPT_FAULT_INJECTION
bool iopt_should_fail(enum iopt_fail_site site);
#else
static inline bool iopt_should_fail(enum iopt_fail_site site)
{
	(void)site;
	return false;
}
#endif

/*
 * Test control (only with IOPT_FAULT_INJECTION). Counting is per thread, as the
 * kernel's fail-nth is per task, so a harness thread is not disturbed by others.
 *
 * iopt_fail_nth_arm(n): the n-th failure point reached from now on (1-based) in
 * this thread fails, once. iopt_fail_nth_disarm() stops that and returns how many
 * points were passed since arming, so a sweep knows when n went past the end.
 * iopt_fail_nth_fired() says whether the armed failure happened.
 * iopt_alloc_live() is the number of live allocations in the whole process.
 */
void iopt_fail_nth_arm(unsigned long n);
unsigned long iopt_fail_nth_disarm(void);
bool iopt_fail_nth_fired(void);
long iopt_alloc_live(void);

#endif /* IOPT_ALLOC_H */
