/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the allocation seam: counting and fail-nth injection (see alloc.h).
 *
 * Live allocations are counted process-wide with an atomic so the harness can
 * check "nothing left allocated" after teardown; fail-nth state is thread-local.
 * iopt_free() of NULL is a no-op and is not counted, as free().
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"

#ifdef IOPT_FAULT_INJECTION
static atomic_long live_allocs;

static _Thread_local unsigned long fail_target;	/* 0: disarmed */
static _Thread_local unsigned long fail_seen;
static _Thread_local bool fail_fired;

bool iopt_should_fail(enum iopt_fail_site site)
{
	(void)site;
	if (!fail_target)
		return false;
	if (++fail_seen != fail_target)
		return false;
	fail_fired = true;
	return true;
}

void iopt_fail_nth_arm(unsigned long n)
{
	fail_target = n;
	fail_seen = 0;
	fail_fired = false;
}

unsigned long iopt_fail_nth_disarm(void)
{
	fail_target = 0;
	return fail_seen;
}

bool iopt_fail_nth_fired(void)
{
	return fail_fired;
}

long iopt_alloc_live(void)
{
	return atomic_load(&live_allocs);
}

static void count_alloc(void *p, long delta)
{
	if (p)
		atomic_fetch_add(&live_allocs, delta);
}
#else
void iopt_fail_nth_arm(unsigned long n)
{
	(void)n;
}

unsigned long iopt_fail_nth_disarm(void)
{
	return 0;
}

bool iopt_fail_nth_fired(void)
{
	return false;
}

long iopt_alloc_live(void)
{
	return 0;
}

static inline void count_alloc(void *p, long delta)
{
	(void)p;
	(void)delta;
}
#endif

void *iopt_malloc(size_t size)
{
	void *p;

	if (iopt_should_fail(IOPT_FAIL_ALLOC))
		return NULL;
	p = malloc(size ? size : 1);
	count_alloc(p, 1);
	return p;
}

void *iopt_calloc(size_t nmemb, size_t size)
{
	void *p;

	if (iopt_should_fail(IOPT_FAIL_ALLOC))
		return NULL;
	p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	count_alloc(p, 1);
	return p;
}

/* On failure the old block is untouched and still owned by the caller, as realloc(). */
void *iopt_realloc(void *ptr, size_t size)
{
	void *p;

	if (!ptr)
		return iopt_malloc(size);
	if (iopt_should_fail(IOPT_FAIL_ALLOC))
		return NULL;
	p = realloc(ptr, size ? size : 1);
	return p;
}

void iopt_free(void *ptr)
{
	if (!ptr)
		return;
	count_alloc(ptr, -1);
	free(ptr);
}
