/* SPDX-License-Identifier: MIT */
/*
 * test_check.c - the invariant checker (iopt/check.h, src/ioas_check.c).
 *
 * A checker that never fails proves nothing, so every case breaks one rule
 * on purpose in a sound state (through internal fields, the domain's own ops
 * or the pin registry), asserts that the checker answers -EUCLEAN and names
 * the rule in the log, then repairs the state and asserts it passes again.
 * Where the kernel's rules look stricter than they are (allowed ranges do
 * not bind fixed maps or existing areas), a case proves no false alarm.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/access.h>
#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/sim.h>

#include "io_pagetable.h"
#include "model.h"
#include "pages.h"
#include "pin.h"

#define PAGE IOPT_PAGE_SIZE
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED IOPT_IOAS_MAP_FIXED_IOVA
#define IOVA UINT64_C(0x100000)
#define NPAGES 16

struct fix {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *dom;
	struct iopt_ioas *a, *b;
	struct model_drv drv;
	uint8_t *buf;
	char last[256];		/* the last checker report */
	unsigned int nlog;	/* log lines of any kind */
};

static void log_keep(void *data, const char *msg)
{
	struct fix *f = data;

	f->nlog++;
	if (!strncmp(msg, "check:", 6))
		snprintf(f->last, sizeof(f->last), "%s", msg);
}

/* A: one domain, an area with an access pin; B: a copy, no domain. */
static int setup(void **state)
{
	struct iopt_ctx_options opts = { .pin_backend = IOPT_PIN_POPULATE_ONLY };
	/* 4 KiB leaves only, so one page can be unmapped behind the core */
	struct iopt_sim_domain_config dcfg = { .pgsize_mask = PAGE };
	struct fix *f = calloc(1, sizeof(*f));
	uint64_t iova = IOVA;

	assert_non_null(f);
	f->buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->buf != MAP_FAILED);
	assert_int_equal(iopt_ctx_alloc(&opts, &f->ctx), 0);
	iopt_ctx_set_log(f->ctx, log_keep, f);
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &f->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &dcfg, &f->dom), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->a), 0);
	assert_int_equal(iopt_ioas_alloc(f->ctx, &f->b), 0);
	assert_int_equal(iopt_ioas_attach_domain(f->a, f->dom), 0);
	assert_int_equal(iopt_ioas_map(f->a, f->buf, NPAGES * PAGE, &iova,
				       FIXED | RW), 0);
	assert_int_equal(iopt_ioas_copy(f->b, &iova, f->a, IOVA, 4 * PAGE,
					FIXED | RW), 0);
	model_drv_init(&f->drv);
	assert_int_equal(iopt_access_create(f->ctx, &model_drv_ops, &f->drv, 0,
					    &f->drv.access), 0);
	assert_int_equal(iopt_access_attach(f->drv.access, f->b), 0);
	assert_int_equal(model_drv_pin(&f->drv, IOVA + PAGE, 2 * PAGE, 0), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	iopt_access_destroy(f->drv.access);
	model_drv_destroy(&f->drv);
	iopt_ioas_detach_domain(f->a, f->dom);
	assert_int_equal(iopt_ioas_destroy(f->a), 0);
	assert_int_equal(iopt_ioas_destroy(f->b), 0);
	f->dom->ops->free(f->dom);
	iopt_sim_iommu_destroy(f->iommu);
	iopt_ctx_destroy(f->ctx);
	munmap(f->buf, NPAGES * PAGE);
	free(f);
	return 0;
}

static int check_all(struct fix *f)
{
	struct iopt_ioas *set[2] = { f->a, f->b };

	f->last[0] = 0;
	return iopt_ioas_check_set(set, 2, IOPT_CHECK_COMPLETE);
}

/* The check fails, and its report names @what. */
static void assert_broken(struct fix *f, const char *what)
{
	assert_int_equal(check_all(f), -EUCLEAN);
	if (!strstr(f->last, what))
		fail_msg("report \"%s\" does not name \"%s\"", f->last, what);
}

static struct iopt_area *area_at(struct iopt_ioas *ioas, uint64_t iova)
{
	struct iopt_area *area;

	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	area = iopt_area_iter_first(&ioas->iopt, iova, iova);
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
	return area;
}

static void sound_state_passes(void **state)
{
	struct fix *f = *state;

	assert_int_equal(iopt_ioas_check(f->a), 0);
	assert_int_equal(iopt_ioas_check(f->b), 0);
	assert_int_equal(check_all(f), 0);
	assert_int_equal(iopt_ioas_check(NULL), -EINVAL);
	assert_int_equal(iopt_ioas_check_set(NULL, 1, 0), -EINVAL);
	assert_int_equal(iopt_ioas_check_set(&f->a, 1, 2), -EOPNOTSUPP);
	assert_int_equal(iopt_ioas_check_set(NULL, 0, 0), 0);
}

/* A domain page unmapped behind the core's back. */
static void domain_contents(void **state)
{
	struct fix *f = *state;
	struct iopt_iotlb_gather g;
	uint64_t pa = f->dom->ops->iova_to_phys(f->dom, IOVA + 5 * PAGE);
	uint64_t mapped = 0;

	iopt_iotlb_gather_init(&g);
	assert_int_equal(f->dom->ops->unmap_pages(f->dom, IOVA + 5 * PAGE, PAGE,
						  1, &g), PAGE);
	f->dom->ops->iotlb_sync(f->dom, &g);
	assert_broken(f, "domain 0 maps iova 0x105000");
	assert_int_equal(f->dom->ops->map_pages(f->dom, IOVA + 5 * PAGE, pa,
						PAGE, 1,
						IOPT_PROT_READ | IOPT_PROT_WRITE,
						&mapped), 0);
	assert_int_equal(check_all(f), 0);
}

static void pinned_count(void **state)
{
	struct fix *f = *state;
	struct iopt_pages *pages = area_at(f->a, IOVA)->pages;

	pages->pins->npinned++;
	assert_broken(f, "npinned");
	pages->pins->npinned--;
	assert_int_equal(check_all(f), 0);
}

/* A store entry dropped while its access interval stays. */
static void store_coverage(void **state)
{
	struct fix *f = *state;
	struct iopt_pages *pages = area_at(f->b, IOVA)->pages;
	uint64_t frame;

	assert_true(iopt_pfn_store_load(&pages->pins->pinned_pfns, 1, &frame));
	iopt_pfn_store_clear(&pages->pins->pinned_pfns, 1, 1);
	assert_broken(f, "not in the store");
	assert_int_equal(iopt_pfn_store_insert(&pages->pins->pinned_pfns, 1, 1,
					       &frame), 0);
	assert_int_equal(check_all(f), 0);
}

static void alignment_value(void **state)
{
	struct fix *f = *state;

	f->a->iopt.iova_alignment = 2 * PAGE;
	assert_broken(f, "alignment");
	f->a->iopt.iova_alignment = PAGE;
	/*
	 * The report was the check's own line: a refusal after it, which no
	 * layer explains, still gets the trace seam's line.
	 */
	f->nlog = 0;
	assert_int_equal(iopt_ioas_set_huge_pages(f->a, 2), -EINVAL);
	assert_int_equal(f->nlog, 1);
	assert_int_equal(check_all(f), 0);
}

/* The point-lookup index must hold exactly the areas not being unmapped. */
static void area_index_matches(void **state)
{
	struct fix *f = *state;
	struct io_pagetable *iopt = &f->a->iopt;
	struct iopt_itree_node stray = { .start = IOVA + NPAGES * PAGE + PAGE,
					 .last = IOVA + NPAGES * PAGE + 2 * PAGE - 1 };
	struct iopt_area *area = area_at(f->a, IOVA);
	struct iopt_pages *pages;

	/* an interval in the index that no area is */
	assert_int_equal(iopt_iova_index_insert(&iopt->area_index, &stray), 0);
	assert_broken(f, "index: 2 intervals for 1 indexed areas");
	iopt_iova_index_remove(&iopt->area_index, &stray);
	assert_int_equal(check_all(f), 0);
	/* an area the index has lost */
	iopt_iova_index_remove(&iopt->area_index, &area->node);
	assert_broken(f, "index: area");
	/* pages NULL alone (a map in flight) does not excuse it */
	pages = area->pages;
	area->pages = NULL;
	area->lockless_prot = 0;
	assert_broken(f, "index: area");
	/* an unmap that took it out does */
	area->unindexed = true;
	assert_int_equal(check_all(f), 0);
	/* but not with pages, nor still in the index */
	area->pages = pages;
	assert_broken(f, "index: unmapped area");
	area->pages = NULL;
	assert_int_equal(iopt_iova_index_insert(&iopt->area_index, &area->node),
			 0);
	assert_broken(f, "index: unmapped area");
	area->unindexed = false;
	area->pages = pages;
	area->lockless_prot = iopt_area_lockless_prot(area);
	assert_int_equal(check_all(f), 0);
}

/* An area the domain's aperture no longer holds. */
static void area_outside_aperture(void **state)
{
	struct fix *f = *state;
	uint64_t last = f->dom->aperture_last;

	f->dom->aperture_last = IOVA + PAGE - 1;
	assert_broken(f, "outside the aperture of domain 0");
	f->dom->aperture_last = last;
	assert_int_equal(check_all(f), 0);
}

/* An area's storage domain: none while domains exist, or a detached one. */
static void area_storage_domain(void **state)
{
	struct fix *f = *state;
	struct iopt_area *area = area_at(f->a, IOVA);
	struct iopt_domain *storage = area->storage_domain;
	struct iopt_domain detached = *storage;

	area->storage_domain = NULL;
	assert_broken(f, "storage domain");
	area->storage_domain = &detached;
	assert_broken(f, "stored in a detached domain");
	area->storage_domain = storage;
	assert_int_equal(check_all(f), 0);
}

/*
 * The prot lock-free rw and pins trust: other than the area's while it is
 * published and domain-held (0 here), or left on while the area is being
 * unmapped, is caught.
 */
static void area_lockless_prot(void **state)
{
	struct fix *f = *state;
	struct iopt_area *area = area_at(f->a, IOVA);
	uint8_t prot = area->lockless_prot;

	assert_int_equal(prot, area->iommu_prot);
	area->lockless_prot = 0;
	assert_broken(f, "lock-free rw use prot 0x0");
	area->lockless_prot = prot;
	area->prevent_access = true;
	assert_broken(f, "lets lock-free rw use prot");
	area->prevent_access = false;
	assert_int_equal(check_all(f), 0);
}

/* An area in a domain whose pages_node left its pages' domains_itree. */
static void area_domains_itree(void **state)
{
	struct fix *f = *state;
	struct iopt_area *area = area_at(f->a, IOVA);
	struct iopt_pages *pages = area->pages;

	iopt_pages_lock(pages);
	iopt_itree_remove(&area->pages_node, &pages->pins->domains_itree);
	iopt_pages_unlock(pages);
	assert_broken(f, "missing from domains_itree");
	iopt_pages_lock(pages);
	iopt_itree_insert(&area->pages_node, &pages->pins->domains_itree);
	iopt_pages_unlock(pages);
	assert_int_equal(check_all(f), 0);
}

/* An area that swallowed a reservation. */
static void area_in_reservation(void **state)
{
	struct fix *f = *state;
	struct iopt_reserved *r = calloc(1, sizeof(*r));

	r->node.start = IOVA + PAGE;
	r->node.last = IOVA + PAGE;
	r->owner = f;
	iopt_rwlock_write(&f->b->iopt.iova_rwsem);
	iopt_itree_insert(&r->node, &f->b->iopt.reserved_itree);
	iopt_rwlock_unlock(&f->b->iopt.iova_rwsem);
	assert_broken(f, "touches a reserved range");
	iopt_rwlock_write(&f->b->iopt.iova_rwsem);
	iopt_itree_remove(&r->node, &f->b->iopt.reserved_itree);
	iopt_rwlock_unlock(&f->b->iopt.iova_rwsem);
	free(r);
	assert_int_equal(check_all(f), 0);
}

/*
 * A pin no pages object accounts for: one IOAS alone cannot see it, the
 * complete set does (registry and context counters).
 */
static void registry_sum(void **state)
{
	struct fix *f = *state;
	uintptr_t page = (uintptr_t)(f->buf + 2 * PAGE);

	assert_int_equal(iopt_pin_range(f->ctx, page, 1, false, NULL), 0);
	assert_int_equal(iopt_ioas_check(f->a), 0);
	assert_broken(f, "context pinned");
	iopt_unpin_range(f->ctx, page, 1);
	assert_int_equal(check_all(f), 0);
}

/* An area's access count out of step with its pages' access users. */
static void access_users(void **state)
{
	struct fix *f = *state;
	struct iopt_area *area = area_at(f->b, IOVA);

	area->num_accesses++;
	assert_broken(f, "access users");
	area->num_accesses--;
	assert_int_equal(check_all(f), 0);
}

/* Map one page behind the core's back at @iova (a stale leaf). */
static void stale_map(struct iopt_domain *d, uint64_t iova, uint64_t pa)
{
	uint64_t mapped = 0;

	assert_int_equal(d->ops->map_pages(d, iova, pa, PAGE, 1,
					   IOPT_PROT_READ, &mapped), 0);
}

static void stale_unmap(struct iopt_domain *d, uint64_t iova)
{
	struct iopt_iotlb_gather g;

	iopt_iotlb_gather_init(&g);
	assert_int_equal(d->ops->unmap_pages(d, iova, PAGE, 1, &g), PAGE);
	d->ops->iotlb_sync(d, &g);
}

/*
 * A leaf no area accounts for: right after the area (an unmap that stopped
 * one page short) and far away in the hole above it.
 */
static void domain_stale_leaf(void **state)
{
	struct fix *f = *state;
	uint64_t pa = f->dom->ops->iova_to_phys(f->dom, IOVA);
	const uint64_t at[2] = { IOVA + NPAGES * PAGE, UINT64_C(1) << 40 };

	for (int i = 0; i != 2; i++) {
		stale_map(f->dom, at[i], pa);
		assert_broken(f, "outside every area");
		stale_unmap(f->dom, at[i]);
		assert_int_equal(check_all(f), 0);
	}
}

/*
 * A backend that is not the simulator: every op forwards to a simulated
 * domain, so the checker cannot count leaves and probes the holes instead.
 */
struct fwd_domain {
	struct iopt_domain domain;
	struct iopt_domain *inner;
};

static struct iopt_domain *fwd_inner(struct iopt_domain *d)
{
	return container_of(d, struct fwd_domain, domain)->inner;
}

static int fwd_map_pages(struct iopt_domain *d, uint64_t iova, uint64_t paddr,
			 uint64_t pgsize, uint64_t pgcount, int prot,
			 uint64_t *mapped)
{
	struct iopt_domain *in = fwd_inner(d);

	return in->ops->map_pages(in, iova, paddr, pgsize, pgcount, prot,
				  mapped);
}

static uint64_t fwd_unmap_pages(struct iopt_domain *d, uint64_t iova,
				uint64_t pgsize, uint64_t pgcount,
				struct iopt_iotlb_gather *g)
{
	struct iopt_domain *in = fwd_inner(d);

	return in->ops->unmap_pages(in, iova, pgsize, pgcount, g);
}

static uint64_t fwd_iova_to_phys(struct iopt_domain *d, uint64_t iova)
{
	struct iopt_domain *in = fwd_inner(d);

	return in->ops->iova_to_phys(in, iova);
}

static void fwd_iotlb_sync(struct iopt_domain *d, struct iopt_iotlb_gather *g)
{
	struct iopt_domain *in = fwd_inner(d);

	in->ops->iotlb_sync(in, g);
}

static void fwd_flush_iotlb_all(struct iopt_domain *d)
{
	struct iopt_domain *in = fwd_inner(d);

	in->ops->flush_iotlb_all(in);
}

static void fwd_free(struct iopt_domain *d)
{
	struct iopt_domain *in = fwd_inner(d);

	in->ops->free(in);
	free(container_of(d, struct fwd_domain, domain));
}

static const struct iopt_domain_ops fwd_ops = {
	.map_pages = fwd_map_pages,
	.unmap_pages = fwd_unmap_pages,
	.iova_to_phys = fwd_iova_to_phys,
	.iotlb_sync = fwd_iotlb_sync,
	.flush_iotlb_all = fwd_flush_iotlb_all,
	.free = fwd_free,
};

/* The probe finds a stale leaf at either end of a hole of B. */
static void domain_stale_leaf_probed(void **state)
{
	struct iopt_sim_domain_config dcfg = { .pgsize_mask = PAGE };
	struct fwd_domain *fwd = calloc(1, sizeof(*fwd));
	struct fix *f = *state;
	/* B's copy is [IOVA, IOVA + 4 pages): holes on both sides */
	const uint64_t at[2] = { IOVA - PAGE, IOVA + 4 * PAGE };
	struct iopt_domain *d = &fwd->domain;
	uint64_t pa;

	assert_non_null(fwd);
	assert_int_equal(iopt_sim_domain_alloc(f->iommu, &dcfg, &fwd->inner),
			 0);
	*d = (struct iopt_domain){
		.ops = &fwd_ops,
		.pgsize_bitmap = fwd->inner->pgsize_bitmap,
		.aperture_start = fwd->inner->aperture_start,
		.aperture_last = fwd->inner->aperture_last,
	};
	assert_int_equal(iopt_ioas_attach_domain(f->b, d), 0);
	assert_int_equal(check_all(f), 0);
	pa = d->ops->iova_to_phys(d, IOVA);
	for (int i = 0; i != 2; i++) {
		stale_map(d, at[i], pa);
		assert_broken(f, "outside every area");
		stale_unmap(d, at[i]);
		assert_int_equal(check_all(f), 0);
	}
	iopt_ioas_detach_domain(f->b, d);
	d->ops->free(d);
}

static void allowed_insert(struct iopt_ioas *ioas, struct iopt_allowed *a,
			   uint64_t start, uint64_t last)
{
	a->node.start = start;
	a->node.last = last;
	iopt_rwlock_write(&ioas->iopt.iova_rwsem);
	iopt_itree_insert(&a->node, &ioas->iopt.allowed_itree);
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
}

static void allowed_remove(struct iopt_ioas *ioas, struct iopt_allowed *a)
{
	iopt_rwlock_write(&ioas->iopt.iova_rwsem);
	iopt_itree_remove(&a->node, &ioas->iopt.allowed_itree);
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
}

/*
 * Allowed ranges are one list set at once: never a one-byte range, never
 * two overlapping ones (abutting ones are fine), never over a reservation.
 */
static void allowed_ranges(void **state)
{
	const struct iopt_iova_range r = { 0x40000000, 0x4fffffff };
	struct iopt_allowed extra = { 0 };
	struct iopt_reserved resv = { .owner = &extra };
	struct fix *f = *state;

	assert_int_equal(iopt_ioas_allow_iovas(f->b, &r, 1), 0);
	allowed_insert(f->b, &extra, 0x48000000, 0x58000000);
	assert_broken(f, "overlaps the one before");
	allowed_remove(f->b, &extra);
	allowed_insert(f->b, &extra, 0x60000000, 0x60000000);
	assert_broken(f, "is one byte");
	allowed_remove(f->b, &extra);
	allowed_insert(f->b, &extra, 0x50000000, 0x5fffffff);
	assert_int_equal(check_all(f), 0);
	allowed_remove(f->b, &extra);

	resv.node.start = resv.node.last = 0x40001000;
	iopt_rwlock_write(&f->b->iopt.iova_rwsem);
	iopt_itree_insert(&resv.node, &f->b->iopt.reserved_itree);
	iopt_rwlock_unlock(&f->b->iopt.iova_rwsem);
	assert_broken(f, "hits a reserved range");
	iopt_rwlock_write(&f->b->iopt.iova_rwsem);
	iopt_itree_remove(&resv.node, &f->b->iopt.reserved_itree);
	iopt_rwlock_unlock(&f->b->iopt.iova_rwsem);
	assert_int_equal(check_all(f), 0);
}

/*
 * No false alarm for the kernel's quirk (semantics 6.4): an area the new
 * allowed list leaves out, and a fixed map outside it, are both fine.
 */
static void areas_outside_allowed(void **state)
{
	const struct iopt_iova_range r = { 0x40000000, 0x4fffffff };
	struct fix *f = *state;
	uint64_t iova = 0x80000000;

	assert_int_equal(iopt_ioas_allow_iovas(f->b, &r, 1), 0);
	assert_int_equal(iopt_ioas_map(f->b, f->buf, PAGE, &iova, FIXED | RW),
			 0);
	assert_int_equal(check_all(f), 0);
	assert_int_equal(iopt_ioas_map(f->b, f->buf, PAGE, &iova, RW), 0);
	assert_true(iova >= r.start && iova + PAGE - 1 <= r.last);
	assert_int_equal(check_all(f), 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(sound_state_passes, setup, teardown),
	cmocka_unit_test_setup_teardown(domain_contents, setup, teardown),
	cmocka_unit_test_setup_teardown(pinned_count, setup, teardown),
	cmocka_unit_test_setup_teardown(store_coverage, setup, teardown),
	cmocka_unit_test_setup_teardown(alignment_value, setup, teardown),
	cmocka_unit_test_setup_teardown(area_index_matches, setup, teardown),
	cmocka_unit_test_setup_teardown(area_outside_aperture, setup, teardown),
	cmocka_unit_test_setup_teardown(area_storage_domain, setup, teardown),
	cmocka_unit_test_setup_teardown(area_lockless_prot, setup, teardown),
	cmocka_unit_test_setup_teardown(area_domains_itree, setup, teardown),
	cmocka_unit_test_setup_teardown(area_in_reservation, setup, teardown),
	cmocka_unit_test_setup_teardown(registry_sum, setup, teardown),
	cmocka_unit_test_setup_teardown(access_users, setup, teardown),
	cmocka_unit_test_setup_teardown(domain_stale_leaf, setup, teardown),
	cmocka_unit_test_setup_teardown(domain_stale_leaf_probed, setup,
					teardown),
	cmocka_unit_test_setup_teardown(allowed_ranges, setup, teardown),
	cmocka_unit_test_setup_teardown(areas_outside_allowed, setup, teardown),
};

IOPT_TEST_MAIN(tests)
