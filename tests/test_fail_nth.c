/* SPDX-License-Identifier: MIT */
/*
 * test_fail_nth.c - the fail-nth sweep over every public operation
 * (iopt-semantics.md §5.45, kernel-selftests.md §3.2).
 *
 * For each operation, in a realistic world (two IOASes, A with two simulated
 * domains, B with none; user, read-only and memfd areas; a copy from A into
 * B; a pinning access on A holding pins, an rw access on B; dirty tracking on
 * with a dirty page; a device attached), the sweep fails the n-th injection
 * point (allocation, pin: populate and mlock, domain map_pages, memfd
 * mapping: src/alloc.h) for n = 1, 2, ... until the operation runs past its
 * last point. The world is rebuilt for every n, so each run starts from the
 * same state. After each injected failure:
 *  - the result is a negative errno and the failure was really injected;
 *  - the observable state equals the state before (struct snap: layout
 *    digests, every domain's leaves in the window with their dirty and
 *    accessed bits, leaf counts and tracking state, the pin registry's
 *    per-page counts for the source buffer and every page of every pages
 *    object (memfd ones included), the context's counters and accounting
 *    mode, every pages object's pins, store and access intervals, the
 *    driver's pins and where each access is attached);
 *  - iopt_ioas_check_set(IOPT_CHECK_COMPLETE) holds.
 * A case marked CASE_PURE (queries, refusals, create-and-destroy) must leave
 * that state equal when it succeeds too. After every run, failed or not, the
 * world is torn down and nothing may be pinned, charged or allocated
 * (iopt_alloc_live() back to its baseline).
 *
 * Every case is swept in three passes (struct pass): populate-only pins with
 * per-user accounting, the same with 64-byte batches (so the many-batch and
 * on-stack fallback paths fail too), and mlock pins with per-process
 * accounting (so mlock's injection point and its unwind are reached).
 * iopt_test_quick() (valgrind) drops the small-batch pass.
 *
 * Operations that are not atomic by contract (unmap across areas, rw, read of
 * dirty bits) are swept on states where they touch one area or cannot fail
 * half-way, so "nothing changed" is the contract there too. Each case prints
 * its (operation, n) pairs, the runs where the n-th point failed; the last
 * line of a full run has the total.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "access.h"
#include "alloc.h"
#include "io_pagetable.h"
#include "model.h"
#include "pages.h"
#include "pin.h"
#include "sim_internal.h"

#define PAGE IOPT_PAGE_SIZE
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED IOPT_IOAS_MAP_FIXED_IOVA
#define BUF_PAGES 128
#define FILE_PAGES 16
/* every IOVA the world and the operations use lies in [WIN, WIN_END) */
#define WIN UINT64_C(0x100000)
#define WIN_END UINT64_C(0x800000)
#define A_RW WIN			/* A: buf[0, 32) read-write */
#define A_RO (WIN + 0x100000)		/* A: buf[32, 48) read-only */
#define A_FILE (WIN + 0x200000)		/* A: memfd[0, 16) */
#define B_RW (WIN + 0x300000)		/* B: buf[64, 96) */
#define B_COPY (WIN + 0x400000)		/* B: copy of A_RW + 4 pages, 8 pages */
#define B_FILE (WIN + 0x500000)		/* B: memfd[8, 16) */
#define FREE_IOVA (WIN + 0x600000)	/* free in both */
#define MAX_N 4000

struct world {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *dom[3];	/* dom[0], dom[1] on A; dom[2] spare */
	bool dom_attached[3];
	struct iopt_sim_dev *dev;
	struct iopt_ioas *a, *b;
	struct model_drv drv;		/* pinning access on A */
	struct model_drv drv_b;		/* pinning access on B, no pins */
	struct iopt_access *rw_access;	/* rw-only access on B */
	struct iopt_access *spare;	/* a pinning access, not attached */
	uint8_t *buf;
	int memfd;
};

/* How the world pins and charges; every case is swept under each. */
struct pass {
	const char *name;
	enum iopt_pin_backend pin;
	enum iopt_account_mode account;
	size_t batch_memory;		/* temp memory limit, 0: default */
	bool slow;			/* left out by iopt_test_quick() */
};

static const struct pass passes[] = {
	{ "populate", IOPT_PIN_POPULATE_ONLY, IOPT_ACCOUNT_USER, 0, false },
	{ "small batches", IOPT_PIN_POPULATE_ONLY, IOPT_ACCOUNT_USER, 64,
	  true },
	{ "mlock+mm", IOPT_PIN_MLOCK, IOPT_ACCOUNT_MM, 0, false },
};

#define NPASSES (sizeof(passes) / sizeof(passes[0]))

typedef int (*op_fn)(struct world *w);

/*
 * One case: @prep shapes the world before the snapshot (nothing armed),
 * @op is swept.
 */
struct fail_case {
	const char *name;
	op_fn prep;
	op_fn op;
	unsigned int flags;
};

/* succeeding changes nothing observable either */
#define CASE_PURE		(1u << 0)
/* A's huge pages are off before anything is mapped, so A can be cut */
#define CASE_A_SMALL_PAGES	(1u << 1)

static const struct iopt_access_driver_ops rw_only_ops = { 0 };
static uint8_t *buf_mem;	/* BUF_PAGES, reused by every world */
static long alloc_baseline;
static unsigned long pairs_total;
static unsigned long capacity_kept;	/* failures that kept an allocation */

/* ---- building and tearing down the world ---- */

static void map_at(struct iopt_ioas *ioas, void *p, uint64_t len,
		   uint64_t iova, unsigned int prot)
{
	assert_int_equal(iopt_ioas_map(ioas, p, len, &iova, FIXED | prot), 0);
}

static struct iopt_domain *sim_domain(struct world *w, int i)
{
	static const struct iopt_sim_domain_config cfg[3] = {
		{ .format = IOPT_SIM_FMT_AMDV1 },
		{ .format = IOPT_SIM_FMT_VTDSS, .aperture_last = 0xffffffff },
		{ .format = IOPT_SIM_FMT_ARM_LPAE_S1 },
	};
	struct iopt_domain *d;

	assert_int_equal(iopt_sim_domain_alloc(w->iommu, &cfg[i], &d), 0);
	return d;
}

/* Checker reports explain a failed check_world(); refusals are expected. */
static void log_check(void *data, const char *msg)
{
	(void)data;
	if (!strncmp(msg, "check:", 6))
		printf("# %s\n", msg);
}

static void world_build(struct world *w, const struct pass *pass,
			unsigned int flags)
{
	struct iopt_ctx_options opts = {
		.account_mode = pass->account,
		.pin_backend = pass->pin,
		.flags = IOPT_CTX_LIMIT,
		.limit_pages = 1u << 20,
	};
	uint64_t iova = B_COPY;

	memset(w, 0, sizeof(*w));
	w->buf = buf_mem;
	assert_int_equal(iopt_ctx_alloc(&opts, &w->ctx), 0);
	iopt_ctx_set_log(w->ctx, log_check, NULL);
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &w->iommu), 0);
	for (int i = 0; i != 3; i++)
		w->dom[i] = sim_domain(w, i);
	assert_int_equal(iopt_ioas_alloc(w->ctx, &w->a), 0);
	assert_int_equal(iopt_ioas_alloc(w->ctx, &w->b), 0);
	if (flags & CASE_A_SMALL_PAGES)
		assert_int_equal(iopt_ioas_set_huge_pages(w->a, 0), 0);
	for (int i = 0; i != 2; i++) {
		assert_int_equal(iopt_ioas_attach_domain(w->a, w->dom[i]), 0);
		w->dom_attached[i] = true;
	}
	w->memfd = memfd_create("iopt-fail-nth", 0);
	assert_true(w->memfd >= 0);
	assert_int_equal(ftruncate(w->memfd, FILE_PAGES * PAGE), 0);

	map_at(w->a, w->buf, 32 * PAGE, A_RW, RW);
	map_at(w->a, w->buf + 32 * PAGE, 16 * PAGE, A_RO,
	       IOPT_IOAS_MAP_READABLE);
	assert_int_equal(iopt_ioas_map_file(w->a, w->memfd, 0, FILE_PAGES * PAGE,
					    &(uint64_t){ A_FILE }, FIXED | RW),
			 0);
	map_at(w->b, w->buf + 64 * PAGE, 32 * PAGE, B_RW, RW);
	assert_int_equal(iopt_ioas_copy(w->b, &iova, w->a, A_RW + 4 * PAGE,
					8 * PAGE, FIXED | RW), 0);
	assert_int_equal(iopt_ioas_map_file(w->b, w->memfd, 8 * PAGE, 8 * PAGE,
					    &(uint64_t){ B_FILE }, FIXED | RW),
			 0);

	model_drv_init(&w->drv);
	assert_int_equal(iopt_access_create(w->ctx, &model_drv_ops, &w->drv, 0,
					    &w->drv.access), 0);
	assert_int_equal(iopt_access_attach(w->drv.access, w->a), 0);
	assert_int_equal(model_drv_pin(&w->drv, A_RW + 2 * PAGE, 2 * PAGE,
				       IOPT_ACCESS_RW_WRITE), 0);
	assert_int_equal(model_drv_pin(&w->drv, A_FILE, PAGE, 0), 0);
	model_drv_init(&w->drv_b);
	assert_int_equal(iopt_access_create(w->ctx, &model_drv_ops, &w->drv_b,
					    0, &w->drv_b.access), 0);
	assert_int_equal(iopt_access_attach(w->drv_b.access, w->b), 0);
	assert_int_equal(iopt_access_create(w->ctx, &rw_only_ops, NULL, 0,
					    &w->rw_access), 0);
	assert_int_equal(iopt_access_attach(w->rw_access, w->b), 0);
	assert_int_equal(iopt_access_create(w->ctx, &model_drv_ops, &w->drv, 0,
					    &w->spare), 0);

	assert_int_equal(iopt_ioas_set_dirty_tracking(w->a, w->dom[0], true), 0);
	assert_int_equal(iopt_sim_dev_alloc(w->iommu, 1, &w->dev), 0);
	assert_int_equal(iopt_sim_dev_attach(w->dev, w->dom[0]), 0);
	/* something for read_dirty to find */
	assert_int_equal(iopt_sim_dma_write(w->dev, A_RW + PAGE, w->buf, 64),
			 64);
	/* the mlock pass must really lock, or its injection point is moot */
	if (pass->pin == IOPT_PIN_MLOCK) {
		struct iopt_ctx_stats st;

		iopt_ctx_read_stats(w->ctx, &st);
		assert_true(st.registry_locked_pages != 0);
	}
}

/* Tear down and check that nothing is pinned, charged or allocated. */
static void world_destroy(struct world *w)
{
	struct iopt_ctx_stats st;

	iopt_sim_dev_attach(w->dev, NULL);
	iopt_sim_dev_destroy(w->dev);
	iopt_access_destroy(w->rw_access);
	iopt_access_destroy(w->spare);
	iopt_access_destroy(w->drv.access);	/* NULL is a no-op */
	assert_int_equal(model_drv_count(&w->drv), 0);
	model_drv_destroy(&w->drv);
	iopt_access_destroy(w->drv_b.access);
	assert_int_equal(model_drv_count(&w->drv_b), 0);
	model_drv_destroy(&w->drv_b);
	for (int i = 0; i != 3; i++)
		if (w->dom_attached[i]) {
			iopt_ioas_detach_domain(w->a, w->dom[i]);
			iopt_ioas_detach_domain(w->b, w->dom[i]);
		}
	if (w->a)
		assert_int_equal(iopt_ioas_destroy(w->a), 0);
	if (w->b)
		assert_int_equal(iopt_ioas_destroy(w->b), 0);
	iopt_ctx_read_stats(w->ctx, &st);
	assert_int_equal(st.pages_pinned, 0);
	assert_int_equal(st.pages_charged, 0);
	assert_int_equal(st.registry_pages, 0);
	for (int i = 0; i != 3; i++)
		w->dom[i]->ops->free(w->dom[i]);
	iopt_sim_iommu_destroy(w->iommu);
	iopt_ctx_destroy(w->ctx);
	close(w->memfd);
	assert_int_equal(iopt_alloc_live(), alloc_baseline);
}

/* ---- the observable state ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
	return h * UINT64_C(0x100000001b3);
}

struct snap {
	uint64_t digest[2];
	uint64_t domains;	/* window leaves, leaf counts, tracking */
	uint64_t registry;	/* per-page pin counts of buf */
	uint64_t pages;		/* every pages object's books and pins */
	struct iopt_ctx_stats st;
	enum iopt_account_mode account;
	unsigned int drv_pins;
	struct iopt_ioas *drv_ioas;
	long live;
};

/*
 * The leaf entry a walk for @iova ends on: the output address, the
 * permissions and the dirty and accessed bits, in the format's own bits.
 * Only leaves: an empty table a failed map left behind is not observable.
 */
static uint64_t leaf_entry(struct iopt_domain *d, uint64_t iova)
{
	uint64_t entry;

	if (!d->ops->iova_to_phys(d, iova))
		return 0;
	for (unsigned int level = 0; level <= iopt_sim_domain_top_level(d);
	     level++)
		if (!iopt_sim_domain_read_entry(d, iova, level, &entry))
			return entry;
	fail_msg("iova 0x%llx translates but has no leaf",
		 (unsigned long long)iova);
	return 0;
}

static uint64_t hash_domain(struct iopt_domain *d)
{
	uint64_t counts[64] = { 0 };
	uint64_t h = iopt_sim_domain_count_leaves(d, 0, UINT64_MAX, counts);

	for (int i = 0; i != 64; i++)
		h = mix(h, counts[i]);
	for (uint64_t iova = WIN; iova != WIN_END; iova += PAGE) {
		h = mix(h, d->ops->iova_to_phys(d, iova));
		h = mix(h, leaf_entry(d, iova));
	}
	return mix(h, __atomic_load_n(&to_sim_domain(d)->tracking,
				      __ATOMIC_RELAXED));
}

/* The registry's view of one host page. */
static uint64_t hash_pin(uint64_t h, uintptr_t host)
{
	struct iopt_pin_page_state ps;

	h = mix(h, (uint64_t)iopt_pin_page_state(host, &ps));
	h = mix(h, ps.nlocked);
	h = mix(h, ps.npopulated);
	return mix(h, ps.pfn);
}

static uint64_t hash_pins(uint64_t h, struct iopt_pages_pins *pins)
{
	struct iopt_itree_node *node;

	h = mix(h, pins->npinned);
	h = mix(h, pins->last_npinned);
	h = mix(h, pins->pinned_pfns.count);
	for (node = iopt_itree_first(&pins->access_itree); node;
	     node = iopt_itree_next(node)) {
		h = mix(h, node->start);
		h = mix(h, node->last);
		h = mix(h, container_of(node, struct iopt_pages_access, node)->users);
	}
	for (node = iopt_itree_first(&pins->domains_itree); node;
	     node = iopt_itree_next(node))
		h = mix(mix(h, node->start), node->last);
	return h;
}

static uint64_t hash_pages(uint64_t h, struct iopt_area *area)
{
	struct iopt_pages *pages = area->pages;

	h = mix(h, area->num_accesses);
	h = mix(h, area->num_locks);
	h = mix(h, area->prevent_access);
	if (!pages)
		return h;
	iopt_pages_lock(pages);
	h = mix(h, !!pages->pins);	/* freed whenever nothing pins */
	if (pages->pins)
		h = hash_pins(h, pages->pins);
	/* memfd pages live in the library's own mapping, not in buf */
	for (uint64_t i = 0; i != pages->npages; i++)
		h = hash_pin(h, (uintptr_t)pages->uptr + i * PAGE);
	iopt_pages_unlock(pages);
	return h;
}

static uint64_t hash_ioas_pages(uint64_t h, struct iopt_ioas *ioas)
{
	struct iopt_area *area;

	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	iopt_for_each_area(area, &ioas->iopt, 0, UINT64_MAX)
		h = hash_pages(h, area);
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
	return h;
}

static void snap_take(struct world *w, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	s->live = iopt_alloc_live();
	s->digest[0] = w->a ? iopt_table_digest(&w->a->iopt) : 0;
	s->digest[1] = w->b ? iopt_table_digest(&w->b->iopt) : 0;
	for (int i = 0; i != 3; i++)
		s->domains = mix(s->domains, hash_domain(w->dom[i]));
	for (int i = 0; i != BUF_PAGES; i++)
		s->registry = hash_pin(s->registry, (uintptr_t)(w->buf + i * PAGE));
	if (w->a)
		s->pages = hash_ioas_pages(s->pages, w->a);
	if (w->b)
		s->pages = hash_ioas_pages(s->pages, w->b);
	iopt_ctx_read_stats(w->ctx, &s->st);
	s->account = iopt_ctx_account_mode(w->ctx);
	s->drv_pins = model_drv_count(&w->drv) + model_drv_count(&w->drv_b);
	s->drv_ioas = w->drv.access ? w->drv.access->ioas : NULL;
}

/*
 * Live allocations are not compared: a failed call may keep capacity it
 * grew (the domain or access slot arrays, as the kernel's xarrays do), so
 * they are only checked after teardown, by world_destroy().
 */
static void snap_assert_equal(const struct snap *x, const struct snap *y)
{
	assert_true(x->digest[0] == y->digest[0]);
	assert_true(x->digest[1] == y->digest[1]);
	assert_true(x->domains == y->domains);
	assert_true(x->registry == y->registry);
	assert_true(x->pages == y->pages);
	assert_int_equal(x->st.pages_pinned, y->st.pages_pinned);
	assert_int_equal(x->st.pages_charged, y->st.pages_charged);
	assert_int_equal(x->st.account_pages, y->st.account_pages);
	assert_int_equal(x->st.registry_pages, y->st.registry_pages);
	assert_int_equal(x->st.registry_locked_pages,
			 y->st.registry_locked_pages);
	assert_int_equal(x->st.registry_runs, y->st.registry_runs);
	assert_int_equal(x->st.registry_locked_runs, y->st.registry_locked_runs);
	assert_int_equal(x->account, y->account);
	assert_int_equal(x->drv_pins, y->drv_pins);
	assert_ptr_equal(x->drv_ioas, y->drv_ioas);
}

static void check_world(struct world *w)
{
	struct iopt_ioas *set[2];
	size_t n = 0;

	if (w->a)
		set[n++] = w->a;
	if (w->b)
		set[n++] = w->b;
	assert_int_equal(iopt_ioas_check_set(set, n, IOPT_CHECK_COMPLETE), 0);
}

/* ---- the sweep ---- */

/*
 * Fail the n-th point of @c for n = 1, 2, ... in a fresh world each time,
 * until a run reaches no n-th point. Return: the (operation, n) pairs, the
 * runs in which the n-th point failed (not the last run, which passed them
 * all).
 */
static unsigned long sweep_once(const struct fail_case *c,
				const struct pass *pass)
{
	unsigned long n;

	for (n = 1; n != MAX_N; n++) {
		struct snap before, after;
		struct world w;
		bool fired;
		int rc;

		world_build(&w, pass, c->flags);
		if (c->prep)
			assert_int_equal(c->prep(&w), 0);
		check_world(&w);
		snap_take(&w, &before);
		iopt_fail_nth_arm(n);
		rc = c->op(&w);
		iopt_fail_nth_disarm();
		fired = iopt_fail_nth_fired();
		if (rc && !fired)
			fail_msg("%s (%s): %d with no fault injected (n=%lu)",
				 c->name, pass->name, rc, n);
		if (rc || (c->flags & CASE_PURE)) {
			assert_true(rc <= 0);
			snap_take(&w, &after);
			snap_assert_equal(&before, &after);
			capacity_kept += rc && after.live != before.live;
		}
		check_world(&w);
		world_destroy(&w);
		if (!fired)
			break;
	}
	assert_true(n < MAX_N);
	return n - 1;
}

static void sweep(const struct fail_case *c)
{
	unsigned long n[NPASSES] = { 0 }, sum = 0;

#ifndef IOPT_FAULT_INJECTION
	skip();
#endif
	for (size_t i = 0; i != NPASSES; i++) {
		if (passes[i].slow && iopt_test_quick())
			continue;
		iopt_set_temp_memory_limit(passes[i].batch_memory);
		n[i] = sweep_once(c, &passes[i]);
		iopt_set_temp_memory_limit(0);
		sum += n[i];
	}
	pairs_total += sum;
	printf("# fail-nth %s: %lu (operation, n) pairs checked (", c->name, sum);
	for (size_t i = 0; i != NPASSES; i++)
		printf("%s%s %lu", i ? ", " : "", passes[i].name, n[i]);
	printf("), %lu in all; %lu failures kept capacity\n", pairs_total,
	       capacity_kept);
}

#define SWEEP(name, prep, flags)                                               \
	static void fail_nth_##name(void **state)                              \
	{                                                                      \
		static const struct fail_case c = { #name, prep, op_##name,    \
						    flags };                   \
		(void)state;                                                   \
		sweep(&c);                                                     \
	}

/* An expected refusal is the case's success; an unexpected success is not. */
static int refused(int rc, int want)
{
	if (rc == want)
		return 0;
	return rc ? rc : -EPROTO;
}

/* ---- the operations ---- */

static int op_ioas_alloc(struct world *w)
{
	struct iopt_ioas *ioas;
	int rc = iopt_ioas_alloc(w->ctx, &ioas);

	if (!rc)
		assert_int_equal(iopt_ioas_destroy(ioas), 0);
	return rc;
}

static int op_ctx_alloc(struct world *w)
{
	struct iopt_ctx *ctx;
	int rc = iopt_ctx_alloc(NULL, &ctx);

	(void)w;
	if (!rc) {
		rc = iopt_ctx_set_account_mode(ctx, IOPT_ACCOUNT_MM);
		iopt_ctx_destroy(ctx);
	}
	return rc;
}

/* Accounting moves only on an empty context: -EBUSY, nothing changes. */
static int op_set_account_mode_busy(struct world *w)
{
	return refused(iopt_ctx_set_account_mode(w->ctx, IOPT_ACCOUNT_NONE),
		       -EBUSY);
}

/* Every option that sizes something: caches, fault ring. */
static int op_sim_iommu_alloc(struct world *w)
{
	const struct iopt_sim_iommu_config cfg = {
		.iotlb_entries = 64, .walk_entries = 16, .sticky = true,
		.negative_cache = true, .fault_ring = 8,
	};
	struct iopt_sim_iommu *iommu;
	int rc = iopt_sim_iommu_alloc(&cfg, &iommu);

	(void)w;
	if (!rc)
		iopt_sim_iommu_destroy(iommu);
	return rc;
}

static int op_sim_dev_alloc(struct world *w)
{
	struct iopt_sim_dev *dev;
	int rc = iopt_sim_dev_alloc(w->iommu, 7, &dev);

	if (!rc)
		iopt_sim_dev_destroy(dev);
	return rc;
}

static int op_sim_domain_alloc(struct world *w)
{
	struct iopt_domain *d;
	int rc = iopt_sim_domain_alloc(w->iommu, NULL, &d);

	if (!rc)
		d->ops->free(d);
	return rc;
}

/* The checker itself may run out of memory; it must then change nothing. */
static int op_ioas_check(struct world *w)
{
	struct iopt_ioas *set[2] = { w->a, w->b };

	return iopt_ioas_check_set(set, 2, IOPT_CHECK_COMPLETE);
}

static int op_map(struct world *w)
{
	uint64_t iova = FREE_IOVA;

	return iopt_ioas_map(w->a, w->buf + 96 * PAGE, 16 * PAGE, &iova,
			     FIXED | RW);
}

static int op_map_auto(struct world *w)
{
	uint64_t iova;

	return iopt_ioas_map(w->a, w->buf + 100 * PAGE, 3 * PAGE, &iova, RW);
}

static int op_map_file(struct world *w)
{
	uint64_t iova = FREE_IOVA;

	return iopt_ioas_map_file(w->a, w->memfd, 2 * PAGE, 8 * PAGE, &iova,
				  FIXED | RW);
}

static int op_map_nodomain(struct world *w)
{
	uint64_t iova = FREE_IOVA;

	return iopt_ioas_map(w->b, w->buf + 96 * PAGE, 16 * PAGE, &iova,
			     FIXED | RW);
}

static int op_copy_into_domains(struct world *w)
{
	uint64_t iova = FREE_IOVA;

	return iopt_ioas_copy(w->a, &iova, w->b, B_RW, 8 * PAGE, FIXED | RW);
}

static int op_copy_same(struct world *w)
{
	uint64_t iova = FREE_IOVA;

	return iopt_ioas_copy(w->a, &iova, w->a, A_RW, 32 * PAGE,
			      FIXED | IOPT_IOAS_MAP_READABLE);
}

static int op_unmap(struct world *w)
{
	uint64_t unmapped;

	return iopt_ioas_unmap(w->a, A_RO, 16 * PAGE, &unmapped);
}

/* An unmap that meets the access's pins: the callback path. */
static int op_unmap_pinned(struct world *w)
{
	return iopt_ioas_unmap(w->a, A_RW, 32 * PAGE, NULL);
}

static int op_unmap_all(struct world *w)
{
	return iopt_ioas_unmap_all(w->b, NULL);
}

/* Two domains to unfill and pins to call back on, across three areas. */
static int op_unmap_all_domains(struct world *w)
{
	return iopt_ioas_unmap_all(w->a, NULL);
}

static int op_allow_iovas(struct world *w)
{
	const struct iopt_iova_range r[3] = { { 0x10000000, 0x1fffffff },
					      { 0x20000000, 0x2fffffff },
					      { 0x40000000, 0x4fffffff } };

	return iopt_ioas_allow_iovas(w->a, r, 3);
}

static int op_reserve(struct world *w)
{
	return iopt_ioas_reserve(w->a, 0x10000000, 0x1fffffff, w);
}

static int op_unreserve(struct world *w)
{
	return iopt_ioas_unreserve(w->a, w->dom[1]);
}

static int op_iova_ranges(struct world *w)
{
	struct iopt_iova_range r[4];
	size_t n = 4;

	return iopt_ioas_iova_ranges(w->a, r, &n, NULL);
}

static int op_cut(struct world *w)
{
	uint64_t at = B_RW + 5 * PAGE - 1;

	return iopt_ioas_cut(w->b, &at, 1);
}

/* A split with storage in two domains (A's huge pages are off). */
static int op_cut_domains(struct world *w)
{
	uint64_t at = A_RO + 5 * PAGE - 1;

	return iopt_ioas_cut(w->a, &at, 1);
}

static int op_set_huge_pages(struct world *w)
{
	int rc = iopt_ioas_set_huge_pages(w->b, 0);

	if (!rc)
		rc = iopt_ioas_set_huge_pages(w->b, 1);
	return rc;
}

/* Domains and areas: huge IOPTEs may be in place, so no turning them off. */
static int op_huge_pages_refused(struct world *w)
{
	return refused(iopt_ioas_set_huge_pages(w->a, 0), -EINVAL);
}

/* Back on with domains attached (A's huge pages are off). */
static int op_huge_pages_enable(struct world *w)
{
	return iopt_ioas_set_huge_pages(w->a, 1);
}

/* A third domain: every area is read from the storage domain or store. */
static int op_attach_third(struct world *w)
{
	int rc = iopt_ioas_attach_domain(w->a, w->dom[2]);

	w->dom_attached[2] = !rc;
	return rc;
}

/* The first domain of B: everything is pinned afresh. */
static int op_attach_first(struct world *w)
{
	int rc = iopt_ioas_attach_domain(w->b, w->dom[2]);

	w->dom_attached[2] = !rc;
	return rc;
}

static int op_detach(struct world *w)
{
	iopt_ioas_detach_domain(w->a, w->dom[0]);
	return 0;
}

static int op_set_dirty_tracking(struct world *w)
{
	return iopt_ioas_set_dirty_tracking(w->a, w->dom[1], true);
}

static int op_dirty_tracking_off(struct world *w)
{
	return iopt_ioas_set_dirty_tracking(w->a, w->dom[0], false);
}

/* Enabling again clears the dirty page first. */
static int op_dirty_tracking_again(struct world *w)
{
	return iopt_ioas_set_dirty_tracking(w->a, w->dom[0], true);
}

static int op_read_dirty(struct world *w)
{
	uint64_t bitmap[1] = { 0 };

	return iopt_ioas_read_dirty(w->a, w->dom[0], A_RW, 32 * PAGE, PAGE, 0,
				    bitmap);
}

static int op_dma(struct world *w)
{
	uint8_t data[2 * PAGE];

	memset(data, 0x5a, sizeof(data));
	return iopt_sim_dma_write(w->dev, A_RW + PAGE / 2, data,
				  sizeof(data)) == sizeof(data) ? 0 : -EFAULT;
}

/* A read sets accessed bits (on every allowed walk), and must see buf. */
static int op_dma_read(struct world *w)
{
	uint8_t data[2 * PAGE];

	if (iopt_sim_dma_read(w->dev, A_RW + PAGE / 2, data, sizeof(data)) !=
	    sizeof(data))
		return -EFAULT;
	assert_memory_equal(data, w->buf + PAGE / 2, sizeof(data));
	return 0;
}

static int op_access_create(struct world *w)
{
	struct iopt_access *access;
	int rc = iopt_access_create(w->ctx, &model_drv_ops, &w->drv, 0,
				    &access);

	if (!rc)
		iopt_access_destroy(access);
	return rc;
}

static int op_access_attach(struct world *w)
{
	return iopt_access_attach(w->spare, w->b);
}

static int op_access_replace(struct world *w)
{
	return iopt_access_replace(w->drv.access, w->b);
}

static int op_access_detach(struct world *w)
{
	iopt_access_detach(w->rw_access);
	return 0;
}

static int op_pin(struct world *w)
{
	return model_drv_pin(&w->drv, A_RW + 8 * PAGE, 4 * PAGE,
			     IOPT_ACCESS_RW_WRITE);
}

/* A pin across two areas, the second one read-only. */
static int op_pin_file(struct world *w)
{
	return model_drv_pin(&w->drv, A_FILE + 2 * PAGE, 4 * PAGE, 0);
}

/* Fresh pins into the store of a domain-less IOAS, across two areas. */
static int op_pin_nodomain(struct world *w)
{
	return model_drv_pin(&w->drv_b, B_RW + 24 * PAGE, 8 * PAGE,
			     IOPT_ACCESS_RW_WRITE);
}

static int op_unpin(struct world *w)
{
	model_drv_unpin_all(&w->drv);
	return 0;
}

static int op_rw_nodomain(struct world *w)
{
	uint8_t data[3 * PAGE];

	return iopt_access_rw(w->rw_access, B_RW + PAGE / 2, data,
			      sizeof(data), 0, NULL);
}

static int op_rw_file(struct world *w)
{
	uint8_t data[3 * PAGE];

	memset(data, 0x33, sizeof(data));
	return iopt_access_rw(w->drv.access, A_FILE + PAGE, data, sizeof(data),
			      IOPT_ACCESS_RW_WRITE, NULL);
}

/* FILE pages with no domain: the slow path with temporary pins. */
static int op_rw_file_nodomain(struct world *w)
{
	uint8_t data[3 * PAGE];

	return iopt_access_rw(w->rw_access, B_FILE + PAGE / 2, data,
			      sizeof(data), 0, NULL);
}

/* Destroy with pins held: the callback unpins, nothing can fail. */
static int op_access_destroy(struct world *w)
{
	iopt_access_destroy(w->drv.access);
	w->drv.access = NULL;
	return 0;
}

static int prep_ioas_destroy(struct world *w)
{
	iopt_access_detach(w->rw_access);
	iopt_access_detach(w->drv_b.access);
	return 0;
}

/* B with nothing attached: its areas, its copy of A and its memfd go. */
static int op_ioas_destroy(struct world *w)
{
	int rc = iopt_ioas_destroy(w->b);

	if (!rc)
		w->b = NULL;
	return rc;
}

/* A domain or an access keeps the IOAS: -EBUSY, nothing changes. */
static int op_ioas_destroy_busy(struct world *w)
{
	return refused(iopt_ioas_destroy(w->a), -EBUSY);
}

/*
 * A taken apart as a user does: the access goes (its callback unpins), both
 * domains are unfilled, then A is destroyed. None of these may fail,
 * whatever fails inside them.
 */
static int op_ioas_teardown(struct world *w)
{
	int rc;

	iopt_access_detach(w->drv.access);
	for (int i = 0; i != 2; i++) {
		iopt_ioas_detach_domain(w->a, w->dom[i]);
		w->dom_attached[i] = false;
	}
	rc = iopt_ioas_destroy(w->a);
	if (!rc)
		w->a = NULL;
	return rc;
}

SWEEP(ctx_alloc, NULL, CASE_PURE)
SWEEP(set_account_mode_busy, NULL, CASE_PURE)
SWEEP(sim_iommu_alloc, NULL, CASE_PURE)
SWEEP(sim_domain_alloc, NULL, CASE_PURE)
SWEEP(sim_dev_alloc, NULL, CASE_PURE)
SWEEP(ioas_check, NULL, CASE_PURE)
SWEEP(ioas_alloc, NULL, CASE_PURE)
SWEEP(map, NULL, 0)
SWEEP(map_auto, NULL, 0)
SWEEP(map_file, NULL, 0)
SWEEP(map_nodomain, NULL, 0)
SWEEP(copy_into_domains, NULL, 0)
SWEEP(copy_same, NULL, 0)
SWEEP(unmap, NULL, 0)
SWEEP(unmap_pinned, NULL, 0)
SWEEP(unmap_all, NULL, 0)
SWEEP(unmap_all_domains, NULL, 0)
SWEEP(allow_iovas, NULL, 0)
SWEEP(reserve, NULL, 0)
SWEEP(unreserve, NULL, 0)
SWEEP(iova_ranges, NULL, CASE_PURE)
SWEEP(cut, NULL, 0)
SWEEP(cut_domains, NULL, CASE_A_SMALL_PAGES)
SWEEP(set_huge_pages, NULL, 0)
SWEEP(huge_pages_refused, NULL, CASE_PURE)
SWEEP(huge_pages_enable, NULL, CASE_A_SMALL_PAGES)
SWEEP(attach_third, NULL, 0)
SWEEP(attach_first, NULL, 0)
SWEEP(detach, NULL, 0)
SWEEP(set_dirty_tracking, NULL, 0)
SWEEP(dirty_tracking_off, NULL, 0)
SWEEP(dirty_tracking_again, NULL, 0)
SWEEP(read_dirty, NULL, 0)
SWEEP(dma, NULL, 0)
SWEEP(dma_read, NULL, 0)
SWEEP(access_create, NULL, CASE_PURE)
SWEEP(access_attach, NULL, 0)
SWEEP(access_replace, NULL, 0)
SWEEP(access_detach, NULL, 0)
SWEEP(pin, NULL, 0)
SWEEP(pin_file, NULL, 0)
SWEEP(pin_nodomain, NULL, 0)
SWEEP(unpin, NULL, 0)
SWEEP(rw_nodomain, NULL, 0)
SWEEP(rw_file, NULL, 0)
SWEEP(rw_file_nodomain, NULL, 0)
SWEEP(access_destroy, NULL, 0)
SWEEP(ioas_destroy, prep_ioas_destroy, 0)
SWEEP(ioas_destroy_busy, NULL, CASE_PURE)
SWEEP(ioas_teardown, NULL, 0)

static int group_setup(void **state)
{
	(void)state;
	buf_mem = mmap(NULL, BUF_PAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf_mem == MAP_FAILED)
		return -1;
	memset(buf_mem, 0xa5, BUF_PAGES * PAGE);
	alloc_baseline = iopt_alloc_live();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	munmap(buf_mem, BUF_PAGES * PAGE);
	return 0;
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(fail_nth_ctx_alloc, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_set_account_mode_busy, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_sim_iommu_alloc, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_sim_domain_alloc, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_sim_dev_alloc, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_ioas_check, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_ioas_alloc, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_map, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_map_auto, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_map_file, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_map_nodomain, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_copy_into_domains, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_copy_same, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_unmap, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_unmap_pinned, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_unmap_all, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_unmap_all_domains, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_allow_iovas, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_reserve, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_unreserve, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_iova_ranges, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_cut, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_cut_domains, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_set_huge_pages, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_huge_pages_refused, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_huge_pages_enable, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_attach_third, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_attach_first, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_detach, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_set_dirty_tracking, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_dirty_tracking_off, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_dirty_tracking_again, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_read_dirty, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_dma, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_dma_read, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_access_create, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_access_attach, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_access_replace, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_access_detach, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_pin, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_pin_file, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_pin_nodomain, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_unpin, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_rw_nodomain, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_rw_file, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_rw_file_nodomain, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_access_destroy, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_ioas_destroy, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_ioas_destroy_busy, group_setup,
					group_teardown),
	cmocka_unit_test_setup_teardown(fail_nth_ioas_teardown, group_setup,
					group_teardown),
};

IOPT_TEST_MAIN(tests)
