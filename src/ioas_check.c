/* SPDX-License-Identifier: MIT */
/*
 * ioas_check.c - the invariant checker (iopt/check.h) and the layout digest
 * that tests use to prove a refused call changed nothing.
 *
 * Three layers, each stricter than the one before:
 *  1. iopt_table_check(): the IOVA layout alone (trees, areas, alignment,
 *     reservations, allowed ranges, domain list and apertures). Cheap.
 *  2. iopt_ioas_check(): layer 1, plus every domain translating every page of
 *     every published area to the host page behind it and mapping nothing
 *     between the areas, and every pages
 *     object behind the areas: pin store == access intervals, npinned == the
 *     pages covered by access or domain intervals == what was charged, every
 *     pinned page present in the pin registry with the frame the store has.
 *  3. iopt_ioas_check_set(IOPT_CHECK_COMPLETE): over every IOAS that holds
 *     pins, the sums that no single IOAS can see: each context's pinned and
 *     charged counters, each registry page's pin count (one per pages object
 *     pinning it), the registry's page count, and each pages object's access
 *     users against the num_accesses of the areas that use it.
 * The rules are listed in docs/reliability.md; every broken rule is reported
 * with one line through the context's log, so a failing test says which.
 *
 * Why it sits in its own file: io_pagetable.c implements the rules, this file
 * only reads the state; keeping them apart keeps the checker from sharing the
 * bugs it looks for.
 *
 * Locking: the IOAS locks in the documented order (domains_rwsem, iova_rwsem,
 * then each pages->mutex), one IOAS at a time; the pin registry's lock is
 * taken by its own functions below pages->mutex, as pinning does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <iopt/check.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "alloc.h"
#include "ctx.h"
#include "double_span.h"
#include "io_pagetable.h"
#include "pages.h"
#include "pin.h"

/* Report one broken rule through @ctx's log. Return: -EUCLEAN. */
static int broken(struct iopt_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int broken(struct iopt_ctx *ctx, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (ctx && ctx->log_fn) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		iopt_ctx_log_emit(ctx, "check: %s", msg);
	}
	return -EUCLEAN;
}

static struct iopt_ctx *iopt_ctx_of(struct io_pagetable *iopt)
{
	return container_of(iopt, struct iopt_ioas, iopt)->ctx;
}

/* ---- the layout digest ---- */

static uint64_t digest_mix(uint64_t h, uint64_t v)
{
	/* FNV-1a over the 8 bytes of @v */
	for (unsigned int i = 0; i != 8; i++) {
		h ^= (v >> (i * 8)) & 0xff;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/**
 * iopt_table_digest() - a hash of the table's whole IOVA layout, for tests
 * that must show a refused call changed nothing.
 * @iopt: the address space.
 *
 * Covers every area (range, pages, offset, prot, storage domain, published
 * or not), every reserved range and owner, every allowed range, the
 * alignment, the huge-page setting and the domain list.
 * Locking: takes domains_rwsem (read), then iova_rwsem (read).
 * Return: the hash.
 */
uint64_t iopt_table_digest(struct io_pagetable *iopt)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	struct iopt_reserved *reserved;
	struct iopt_allowed *allowed;
	struct iopt_area *area;
	size_t i;

	iopt_rwlock_read(&iopt->domains_rwsem);
	iopt_rwlock_read(&iopt->iova_rwsem);
	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		h = digest_mix(h, area->node.start);
		h = digest_mix(h, area->node.last);
		h = digest_mix(h, area->pages_node.start);
		h = digest_mix(h, area->pages_node.last);
		h = digest_mix(h, (uintptr_t)area->pages);
		h = digest_mix(h, (uintptr_t)area->storage_domain);
		h = digest_mix(h, area->page_offset);
		h = digest_mix(h, (uint64_t)area->iommu_prot);
	}
	h = digest_mix(h, UINT64_MAX);
	for (reserved = iopt_reserved_iter_first(iopt, 0, UINT64_MAX); reserved;
	     reserved = iopt_reserved_iter_next(reserved, 0, UINT64_MAX)) {
		h = digest_mix(h, reserved->node.start);
		h = digest_mix(h, reserved->node.last);
		h = digest_mix(h, (uintptr_t)reserved->owner);
	}
	h = digest_mix(h, UINT64_MAX);
	for (allowed = iopt_allowed_iter_first(iopt, 0, UINT64_MAX); allowed;
	     allowed = iopt_allowed_iter_next(allowed, 0, UINT64_MAX)) {
		h = digest_mix(h, allowed->node.start);
		h = digest_mix(h, allowed->node.last);
	}
	h = digest_mix(h, iopt->iova_alignment);
	h = digest_mix(h, iopt->disable_large_pages);
	for (i = 0; i != iopt->ndomains; i++)
		h = digest_mix(h, (uintptr_t)iopt->domains[i]);
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return h;
}

/* ---- layer 1: the layout ---- */

static uint64_t domain_min_pgsize(const struct iopt_domain *domain)
{
	return domain->pgsize_bitmap & -domain->pgsize_bitmap;
}

/* The alignment the huge-page setting, domains and accesses call for. */
static uint64_t expected_alignment(struct io_pagetable *iopt)
{
	uint64_t align = iopt->disable_large_pages ? IOPT_PAGE_SIZE : 1;
	size_t i;

	for (i = 0; i != iopt->ndomains; i++)
		align = IOPT_MAX(align, domain_min_pgsize(iopt->domains[i]));
	for (i = 0; i != iopt->naccess_slots; i++)
		if (iopt->accesses[i].access)
			align = IOPT_MAX(align, iopt->accesses[i].iova_alignment);
	return align;
}

static bool domain_attached(struct io_pagetable *iopt,
			    const struct iopt_domain *domain)
{
	for (size_t i = 0; i != iopt->ndomains; i++)
		if (iopt->domains[i] == domain)
			return true;
	return false;
}

/* The byte a lock-free rw trusts is what the fields it sums up say. */
static int check_area_lockless(struct iopt_ctx *ctx, struct iopt_area *area)
{
	if (area->lockless_prot == iopt_area_lockless_prot(area))
		return 0;
	return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64 "] lets lock-free "
		      "rw use prot 0x%x, not 0x%x", iopt_area_iova(area),
		      iopt_area_last_iova(area), area->lockless_prot,
		      iopt_area_lockless_prot(area));
}

/* One area against the layout rules; *@next_free is where it may start. */
static int check_area_layout(struct io_pagetable *iopt, struct iopt_area *area,
			     uint64_t *next_free)
{
	struct iopt_ctx *ctx = iopt_ctx_of(iopt);
	uint64_t mask = iopt->iova_alignment - 1;
	uint64_t first = iopt_area_iova(area), last = iopt_area_last_iova(area);
	size_t i;

	if (first < *next_free || area->iopt != iopt)
		return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
			      "] overlaps the one before or is foreign",
			      first, last);
	if ((first & mask) || (iopt_area_length(area) & mask) ||
	    (area->page_offset & mask) || area->page_offset >= IOPT_PAGE_SIZE)
		return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
			      "] offset 0x%x breaks alignment 0x%" PRIx64,
			      first, last, area->page_offset,
			      iopt->iova_alignment);
	if (iopt_reserved_iter_first(iopt, first, last))
		return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
			      "] touches a reserved range", first, last);
	for (i = 0; i != iopt->ndomains; i++) {
		struct iopt_domain *d = iopt->domains[i];

		if (first < d->aperture_start || last > d->aperture_last)
			return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
				      "] outside the aperture of domain %zu",
				      first, last, i);
	}
	if (area->pages &&
	    (iopt_area_last_index(area) >= area->pages->npages ||
	     iopt_area_iova_to_index(area, last) != iopt_area_last_index(area) ||
	     iopt_area_iova_to_index(area, first) != iopt_area_index(area)))
		return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
			      "] index range does not match its pages",
			      first, last);
	*next_free = last + 1;
	/*
	 * An area in flight has its storage domain set by its map under
	 * pages->mutex alone: only a published one's is stable here.
	 */
	if (!area->pages)
		return check_area_lockless(ctx, area);
	if (!area->storage_domain != !iopt->ndomains)
		return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
			      "] storage domain %p with %zu domains", first,
			      last, (void *)area->storage_domain,
			      iopt->ndomains);
	if (area->storage_domain && !domain_attached(iopt, area->storage_domain))
		return broken(ctx, "area [0x%" PRIx64 ", 0x%" PRIx64
			      "] stored in a detached domain", first, last);
	return check_area_lockless(ctx, area);
}

/*
 * The allowed ranges as iopt_set_allow_iova() leaves them: each more than one
 * byte, ascending without overlap (abutting ones may stay apart), none
 * touching a reservation. They say nothing about the areas: the kernel lets
 * a fixed map land outside them and keeps the areas a new list leaves out
 * (semantics 6.4), so "an auto-allocated IOVA lies in an allowed span" holds
 * only when it is chosen, and is checked there (the fuzzer's model).
 * Locks held.
 */
static int check_allowed_locked(struct io_pagetable *iopt)
{
	struct iopt_ctx *ctx = iopt_ctx_of(iopt);
	struct iopt_allowed *allowed;
	uint64_t next_free = 0;

	for (allowed = iopt_allowed_iter_first(iopt, 0, UINT64_MAX); allowed;
	     allowed = iopt_allowed_iter_next(allowed, 0, UINT64_MAX)) {
		uint64_t start = allowed->node.start, last = allowed->node.last;

		if (start >= last || start < next_free)
			return broken(ctx, "allowed [0x%" PRIx64 ", 0x%" PRIx64
				      "] is one byte or overlaps the one "
				      "before", start, last);
		if (iopt_reserved_iter_first(iopt, start, last))
			return broken(ctx, "allowed [0x%" PRIx64 ", 0x%" PRIx64
				      "] hits a reserved range", start, last);
		if (last == UINT64_MAX)
			break;
		next_free = last + 1;
	}
	return 0;
}

/*
 * The point-lookup index finds every area at its first and last byte, but
 * one an unmap took out (unindexed, pages NULL), which it finds at neither;
 * with as many intervals indexed as areas found, it holds nothing else.
 */
static int check_area_index(struct io_pagetable *iopt, struct iopt_area *area,
			    size_t *nr_indexed)
{
	uint64_t first = iopt_area_iova(area), last = iopt_area_last_iova(area);
	bool at_first = iopt_area_find(iopt, first) == area;
	bool at_last = iopt_area_find(iopt, last) == area;

	if (area->unindexed) {
		if (!area->pages && !at_first && !at_last)
			return 0;
		return broken(iopt_ctx_of(iopt), "index: unmapped area [0x%"
			      PRIx64 ", 0x%" PRIx64 "] still indexed or with "
			      "pages", first, last);
	}
	if (at_first && at_last) {
		(*nr_indexed)++;
		return 0;
	}
	return broken(iopt_ctx_of(iopt), "index: area [0x%" PRIx64 ", 0x%" PRIx64
		      "] not found at its ends", first, last);
}

/* Trees, the alignment value, areas, allowed ranges. Locks held. */
static int check_table_locked(struct io_pagetable *iopt)
{
	struct iopt_ctx *ctx = iopt_ctx_of(iopt);
	struct iopt_area *area;
	uint64_t next_free = 0;
	size_t nr_indexed = 0;
	int rc;

	if (iopt_itree_check(&iopt->area_itree) ||
	    iopt_itree_check(&iopt->allowed_itree) ||
	    iopt_itree_check(&iopt->reserved_itree))
		return broken(ctx, "an interval tree is unsound");
	if (iopt_iova_index_check(&iopt->area_index))
		return broken(ctx, "index: the area index is unsound");
	if (iopt->iova_alignment != expected_alignment(iopt))
		return broken(ctx, "alignment 0x%" PRIx64 ", expected 0x%" PRIx64,
			      iopt->iova_alignment, expected_alignment(iopt));
	if (iopt->iova_alignment > IOPT_PAGE_SIZE)
		return broken(ctx, "alignment 0x%" PRIx64 " above a page",
			      iopt->iova_alignment);
	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		rc = check_area_index(iopt, area, &nr_indexed);
		if (!rc)
			rc = check_area_layout(iopt, area, &next_free);
		if (rc)
			return rc;
		/* an area ending at UINT64_MAX is the last one */
		if (iopt_area_last_iova(area) == UINT64_MAX)
			break;
	}
	if (iopt->area_index.nr_items != nr_indexed)
		return broken(ctx, "index: %zu intervals for %zu indexed areas",
			      iopt->area_index.nr_items, nr_indexed);
	return check_allowed_locked(iopt);
}

/**
 * iopt_table_check() - verify the table's layout invariants (tests, debug).
 * @iopt: the address space of an IOAS.
 *
 * Areas: ascending, non-overlapping, conforming to the alignment, outside
 * every reserved range and inside every domain's aperture, inside their
 * pages, stored in an attached domain exactly when domains exist. The
 * alignment is the one the domains, accesses and huge-page setting call for,
 * at most IOPT_PAGE_SIZE. Allowed ranges never hit reserved ones; the trees
 * are sound. Areas in flight (pages NULL) are allowed.
 * Locking: takes domains_rwsem (read), then iova_rwsem (read).
 * Return: 0, or -EUCLEAN at the first broken rule (logged).
 */
int iopt_table_check(struct io_pagetable *iopt)
{
	int rc;

	iopt_rwlock_read(&iopt->domains_rwsem);
	iopt_rwlock_read(&iopt->iova_rwsem);
	rc = check_table_locked(iopt);
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

/* ---- layer 2: domains and pages ---- */

/*
 * Every page of a published area translates, in every domain, to the host
 * byte behind it. A frame that is not pinned resolves to NULL, so a domain
 * mapping unpinned memory is caught here too.
 */
static int check_area_domains(struct io_pagetable *iopt,
			      struct iopt_area *area)
{
	uint64_t iova = iopt_area_iova(area), last = iopt_area_last_iova(area);
	char *base = area->pages->uptr;

	for (;;) {
		uint64_t start_byte = iopt_area_start_byte(area, iova);
		uint64_t step = IOPT_PAGE_SIZE - start_byte % IOPT_PAGE_SIZE;

		for (size_t i = 0; i != iopt->ndomains; i++) {
			struct iopt_domain *d = iopt->domains[i];
			uint64_t pa = d->ops->iova_to_phys(d, iova);

			if (!pa || iopt_phys_to_host(pa) != base + start_byte)
				return broken(iopt_ctx_of(iopt),
					      "domain %zu maps iova 0x%" PRIx64
					      " to 0x%" PRIx64 ", not to its "
					      "area's page", i, iova, pa);
		}
		if (last - iova < step)
			return 0;
		iova += step;
	}
}

/*
 * Does @d map anything in [first, last] (clipped to its aperture)? A
 * simulated domain counts its leaves there, a walk of the tables present;
 * another backend is probed at both ends, where an unmap or an unwound map
 * that stopped short leaves its leftovers.
 */
static bool domain_maps_in(struct iopt_domain *d, uint64_t first,
			   uint64_t last)
{
	first = IOPT_MAX(first, d->aperture_start);
	last = IOPT_MIN(last, d->aperture_last);
	if (first > last)
		return false;
	if (iopt_sim_is_domain(d))
		return iopt_sim_domain_count_leaves(d, first, last, NULL) != 0;
	return d->ops->iova_to_phys(d, first) || d->ops->iova_to_phys(d, last);
}

static int check_hole(struct io_pagetable *iopt, uint64_t first, uint64_t last)
{
	for (size_t i = 0; i != iopt->ndomains; i++)
		if (domain_maps_in(iopt->domains[i], first, last))
			return broken(iopt_ctx_of(iopt), "domain %zu maps "
				      "something in [0x%" PRIx64 ", 0x%" PRIx64
				      "], outside every area", i, first, last);
	return 0;
}

/*
 * The reverse of check_area_domains(): no domain maps anything between the
 * areas, so a stale leaf (an unmap that missed a page, a failed map not
 * unwound) is found, not only a missing one. Areas in flight count as areas:
 * their map or unmap owns their range. A lower table is freed only by an
 * unmap covering all of it (sim/pt_radix.c), so walking a hole never meets
 * a table an unmap in flight frees. Locks held.
 */
static int check_domain_holes(struct io_pagetable *iopt)
{
	struct iopt_area *area;
	uint64_t hole = 0;
	int rc;

	if (!iopt->ndomains)
		return 0;
	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		if (iopt_area_iova(area) > hole) {
			rc = check_hole(iopt, hole, iopt_area_iova(area) - 1);
			if (rc)
				return rc;
		}
		if (iopt_area_last_iova(area) == UINT64_MAX)
			return 0;
		hole = iopt_area_last_iova(area) + 1;
	}
	return check_hole(iopt, hole, UINT64_MAX);
}

/* Is @area's pages_node linked in its pages' domains_itree? pages->mutex. */
static bool area_in_domains_itree(struct iopt_area *area)
{
	struct iopt_itree_node *node;

	iopt_itree_for_each(node, &iopt_pages_pins_view(area->pages)->domains_itree,
			    area->pages_node.start, area->pages_node.last)
		if (node == &area->pages_node)
			return true;
	return false;
}

/*
 * The distinct pages objects seen so far, each with a reference, and the
 * num_accesses of the areas seen using each (layer 3 compares the sum).
 */
struct check_pages_set {
	struct iopt_pages **pages;
	uint64_t *area_accesses;
	size_t n, cap;
};

static int pages_set_add(struct check_pages_set *set, struct iopt_pages *pages,
			 unsigned int num_accesses)
{
	size_t i;

	for (i = 0; i != set->n; i++)
		if (set->pages[i] == pages)
			goto found;
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 8;
		struct iopt_pages **p;
		uint64_t *a;

		p = iopt_realloc(set->pages, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		set->pages = p;
		a = iopt_realloc(set->area_accesses, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		set->area_accesses = a;
		set->cap = cap;
	}
	iopt_pages_get(pages);
	set->pages[i] = pages;
	set->area_accesses[i] = 0;
	set->n++;
found:
	set->area_accesses[i] += num_accesses;
	return 0;
}

static void pages_set_destroy(struct check_pages_set *set)
{
	for (size_t i = 0; i != set->n; i++)
		iopt_put_pages(set->pages[i]);
	iopt_free(set->pages);
	iopt_free(set->area_accesses);
	*set = (struct check_pages_set){ 0 };
}

/* The area's link into its pages, and its share of the pages' accesses. */
static int check_area_pages(struct io_pagetable *iopt, struct iopt_area *area,
			    struct check_pages_set *set)
{
	struct iopt_pages *pages = area->pages;
	bool linked;
	int rc;

	iopt_pages_lock(pages);
	linked = area_in_domains_itree(area);
	rc = pages_set_add(set, pages, area->num_accesses);
	iopt_pages_unlock(pages);
	if (rc)
		return rc;
	if (linked != !!area->storage_domain)
		return broken(iopt_ctx_of(iopt), "area [0x%" PRIx64 ", 0x%"
			      PRIx64 "] %s domains_itree", iopt_area_iova(area),
			      iopt_area_last_iova(area),
			      linked ? "wrongly in" : "missing from");
	return 0;
}

/* Layers 1 and 2 for one IOAS; its pages objects are added to @set. */
static int check_ioas(struct iopt_ioas *ioas, struct check_pages_set *set)
{
	struct io_pagetable *iopt = &ioas->iopt;
	struct iopt_area *area;
	int rc;

	iopt_rwlock_read(&iopt->domains_rwsem);
	iopt_rwlock_read(&iopt->iova_rwsem);
	rc = check_table_locked(iopt);
	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		if (rc)
			break;
		if (!area->pages)
			continue;
		rc = check_area_domains(iopt, area);
		if (!rc)
			rc = check_area_pages(iopt, area, set);
	}
	if (!rc)
		rc = check_domain_holes(iopt);
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	iopt_rwlock_unlock(&iopt->domains_rwsem);
	return rc;
}

static uintptr_t pages_host_page(const struct iopt_pages *pages, uint64_t index)
{
	return (uintptr_t)pages->uptr + (uintptr_t)(index * IOPT_PAGE_SIZE);
}

/* Every index of [start, last] is pinned in the registry. */
static int check_registry_run(struct iopt_pages *pages, uint64_t start,
			      uint64_t last)
{
	struct iopt_pin_page_state st;

	for (uint64_t i = start; i <= last; i++) {
		if (iopt_pin_page_state(pages_host_page(pages, i), &st) ||
		    !(st.nlocked + st.npopulated))
			return broken(pages->ctx, "pages %p index %" PRIu64
				      " counted pinned but not in the registry",
				      (void *)pages, i);
	}
	return 0;
}

/* The store holds [start, last] with the registry's frames. */
static int check_store_run(struct iopt_pages *pages, uint64_t start,
			   uint64_t last)
{
	struct iopt_pin_page_state st;
	uint64_t frame;

	for (uint64_t i = start; i <= last; i++) {
		if (!iopt_pfn_store_load(&iopt_pages_pins_view(pages)->pinned_pfns, i,
					 &frame))
			return broken(pages->ctx, "pages %p index %" PRIu64
				      " pinned by an access, not in the store",
				      (void *)pages, i);
		if (iopt_pin_page_state(pages_host_page(pages, i), &st) ||
		    st.pfn != frame)
			return broken(pages->ctx, "pages %p index %" PRIu64
				      " store frame 0x%" PRIx64 ", registry 0x%"
				      PRIx64, (void *)pages, i, frame, st.pfn);
	}
	return 0;
}

/*
 * The pages object's own books: store == access intervals, npinned == the
 * union of access and domain intervals == last_npinned, each pinned page
 * in the registry. pages->mutex held.
 */
static int check_pages_locked(struct iopt_pages *pages)
{
	struct iopt_double_span_iter span;
	struct iopt_itree_node *node;
	struct iopt_pages_pins *pins = iopt_pages_pins_view(pages);
	uint64_t covered = 0, accessed = 0;
	int rc = 0;

	if (pages->pins && iopt_pages_pins_unused(pins))
		return broken(pages->ctx, "pages %p: pins nothing but keeps "
			      "its pin bookkeeping", (void *)pages);
	if (iopt_itree_check(&pins->access_itree) ||
	    iopt_itree_check(&pins->domains_itree))
		return broken(pages->ctx, "pages %p: an interval tree is "
			      "unsound", (void *)pages);
	for (node = iopt_itree_first(&pins->access_itree); node;
	     node = iopt_itree_next(node))
		if (!container_of(node, struct iopt_pages_access, node)->users ||
		    node->last >= pages->npages)
			return broken(pages->ctx, "pages %p: access interval "
				      "[%" PRIu64 ", %" PRIu64 "] bad",
				      (void *)pages, node->start, node->last);
	iopt_for_each_double_span(&span, &pins->access_itree,
				  &pins->domains_itree, 0,
				  pages->npages - 1) {
		if (!span.is_used)
			continue;
		covered += span.last_used - span.start_used + 1;
		if (span.is_used == 1) {
			accessed += span.last_used - span.start_used + 1;
			rc = check_store_run(pages, span.start_used,
					     span.last_used);
		} else {
			rc = check_registry_run(pages, span.start_used,
						span.last_used);
		}
		if (rc)
			return rc;
	}
	if (pins->pinned_pfns.count != accessed)
		return broken(pages->ctx, "pages %p: store holds %" PRIu64
			      " frames, accesses cover %" PRIu64, (void *)pages,
			      pins->pinned_pfns.count, accessed);
	if (pins->npinned != covered || pins->last_npinned != covered)
		return broken(pages->ctx, "pages %p: npinned %" PRIu64
			      ", charged %" PRIu64 ", covered %" PRIu64,
			      (void *)pages, pins->npinned,
			      pins->last_npinned, covered);
	return 0;
}

static int check_pages(struct iopt_pages *pages)
{
	int rc;

	iopt_pages_lock(pages);
	rc = check_pages_locked(pages);
	iopt_pages_unlock(pages);
	return rc;
}

/* ---- layer 3: sums over every holder ---- */

static uint64_t access_users(struct iopt_pages *pages)
{
	struct iopt_itree_node *node;
	uint64_t users = 0;

	for (node = iopt_itree_first(&iopt_pages_pins_view(pages)->access_itree); node;
	     node = iopt_itree_next(node))
		users += container_of(node, struct iopt_pages_access, node)->users;
	return users;
}

/* Add @ctx to the @n distinct contexts in @ctxs (room for it is there). */
static void ctx_list_add(struct iopt_ctx **ctxs, size_t *n, struct iopt_ctx *ctx)
{
	for (size_t i = 0; i != *n; i++)
		if (ctxs[i] == ctx)
			return;
	ctxs[(*n)++] = ctx;
}

/* @ctx's pinned and charged counters == the sums over its pages in @set. */
static int check_ctx_sums(struct iopt_ctx *ctx,
			  const struct check_pages_set *set)
{
	uint64_t pinned = 0, charged = 0;
	struct iopt_ctx_stats st;

	for (size_t i = 0; i != set->n; i++) {
		if (set->pages[i]->ctx != ctx)
			continue;
		pinned += iopt_pages_pins_view(set->pages[i])->npinned;
		charged += iopt_pages_pins_view(set->pages[i])->last_npinned;
	}
	iopt_ctx_read_stats(ctx, &st);
	if (st.pages_pinned != pinned || st.pages_charged != charged)
		return broken(ctx, "context pinned %" PRIu64 " charged %" PRIu64
			      ", its pages hold %" PRIu64 " and %" PRIu64,
			      st.pages_pinned, st.pages_charged, pinned,
			      charged);
	return 0;
}

/* Every context of @ioases or of the pages in @set. */
static int check_all_ctx_sums(struct iopt_ioas *const *ioases, size_t n,
			      const struct check_pages_set *set)
{
	struct iopt_ctx **ctxs = iopt_calloc(n + set->n, sizeof(*ctxs));
	size_t nctx = 0, i;
	int rc = 0;

	if (!ctxs)
		return -ENOMEM;
	for (i = 0; i != n; i++)
		ctx_list_add(ctxs, &nctx, ioases[i]->ctx);
	for (i = 0; i != set->n; i++)
		ctx_list_add(ctxs, &nctx, set->pages[i]->ctx);
	for (i = 0; !rc && i != nctx; i++)
		rc = check_ctx_sums(ctxs[i], set);
	iopt_free(ctxs);
	return rc;
}

static int cmp_uintptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/* Append the host page of every pinned index of @pages to @hosts. */
static int collect_pinned_hosts(struct iopt_pages *pages, uintptr_t **hosts,
				size_t *n, size_t *cap)
{
	struct iopt_double_span_iter span;

	iopt_for_each_double_span(&span, &iopt_pages_pins_view(pages)->access_itree,
				  &iopt_pages_pins_view(pages)->domains_itree, 0,
				  pages->npages - 1) {
		for (uint64_t i = span.start_used;
		     span.is_used && i <= span.last_used; i++) {
			if (*n == *cap) {
				size_t c = *cap ? *cap * 2 : 64;
				uintptr_t *h = iopt_realloc(*hosts,
							    c * sizeof(*h));

				if (!h)
					return -ENOMEM;
				*hosts = h;
				*cap = c;
			}
			(*hosts)[(*n)++] = pages_host_page(pages, i);
		}
	}
	return 0;
}

/* Registry counts == number of pages objects pinning each host page. */
static int check_registry_sums(struct iopt_ctx *ctx, uintptr_t *hosts,
			       size_t n)
{
	struct iopt_pin_page_state st;
	struct iopt_ctx_stats stats;
	uint64_t distinct = 0;
	size_t i, j;

	if (n)
		qsort(hosts, n, sizeof(*hosts), cmp_uintptr);
	for (i = 0; i != n; i = j) {
		for (j = i; j != n && hosts[j] == hosts[i]; j++)
			;
		distinct++;
		if (iopt_pin_page_state(hosts[i], &st) ||
		    st.nlocked + st.npopulated != j - i)
			return broken(ctx, "registry holds %u pins of page 0x%"
				      PRIxPTR ", %zu pages objects pin it",
				      st.nlocked + st.npopulated, hosts[i],
				      j - i);
	}
	iopt_ctx_read_stats(ctx, &stats);
	if (stats.registry_pages != distinct)
		return broken(ctx, "registry holds %" PRIu64 " pages, holders "
			      "pin %" PRIu64, stats.registry_pages, distinct);
	return 0;
}

static int check_complete(struct iopt_ioas *const *ioases, size_t nioas,
			  const struct check_pages_set *set)
{
	struct iopt_ctx *ctx = ioases[0]->ctx;
	uintptr_t *hosts = NULL;
	size_t n = 0, cap = 0;
	int rc;

	rc = check_all_ctx_sums(ioases, nioas, set);
	for (size_t i = 0; !rc && i != set->n; i++) {
		struct iopt_pages *pages = set->pages[i];

		iopt_pages_lock(pages);
		if (access_users(pages) != set->area_accesses[i])
			rc = broken(ctx, "pages %p: %" PRIu64 " access users, "
				    "areas count %" PRIu64, (void *)pages,
				    access_users(pages),
				    set->area_accesses[i]);
		if (!rc)
			rc = collect_pinned_hosts(pages, &hosts, &n, &cap);
		iopt_pages_unlock(pages);
	}
	if (!rc)
		rc = check_registry_sums(ctx, hosts, n);
	iopt_free(hosts);
	return rc;
}

int iopt_ioas_check_set(struct iopt_ioas *const *ioases, size_t n,
			unsigned int flags)
{
	struct check_pages_set set = { 0 };
	size_t i;
	int rc = 0;

	if (flags & ~IOPT_CHECK_COMPLETE)
		return -EOPNOTSUPP;
	if (n && !ioases)
		return -EINVAL;
	for (i = 0; i != n; i++)
		if (!ioases[i])
			return -EINVAL;
	for (i = 0; !rc && i != n; i++)
		rc = check_ioas(ioases[i], &set);
	for (i = 0; !rc && i != set.n; i++)
		rc = check_pages(set.pages[i]);
	if (!rc && n && (flags & IOPT_CHECK_COMPLETE))
		rc = check_complete(ioases, n, &set);
	pages_set_destroy(&set);
	/* its line was the explanation: the next call's refusal needs its own */
	(void)iopt_ctx_log_said_clear();
	return rc;
}

int iopt_ioas_check(struct iopt_ioas *ioas)
{
	if (!ioas)
		return -EINVAL;
	return iopt_ioas_check_set(&ioas, 1, 0);
}
