/* SPDX-License-Identifier: MIT */
/*
 * test_access.c - accesses (src/access.[ch]): create/attach/replace/detach,
 * pin and unpin, rw, and the unmap protocol as an access driver sees it
 * (iopt-semantics.md §5 cases 31-38 and the access parts of 45-46).
 *
 * Everything goes through the public API (iopt/access.h, iopt/ioas.h,
 * iopt/sim.h); internal headers are read only to check the state the API
 * does not show: an area's num_accesses, an access interval's users, the pin
 * registry. A "driver" (struct drv) records its pins the way a real one must
 * and its unmap callback unpins every recorded pin that intersects the range
 * (optionally only the non-sticky ones, or none), so the tests exercise the
 * contract and not a shortcut around it.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "access.h"
#include "alloc.h"
#include "io_pagetable.h"
#include "pages.h"
#include "pin.h"
#include "readers.h"

#define PS IOPT_PAGE_SIZE
#define BASE UINT64_C(0x100000)
#define MAX_PINS 64
#define RW_R (IOPT_IOAS_MAP_READABLE)
#define RW_W (IOPT_IOAS_MAP_WRITEABLE)
#define RW_RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED IOPT_IOAS_MAP_FIXED_IOVA

/* ---- a test driver ---- */

enum drv_mode {
	DRV_UNPIN,	/* unpin every intersecting non-sticky pin */
	DRV_IGNORE,	/* unpin nothing */
};

struct drv_pin {
	uint64_t iova;
	uint64_t length;
	bool sticky;	/* the callback keeps it */
	bool live;
};

struct drv {
	pthread_mutex_t lock;
	struct iopt_access *access;
	enum drv_mode mode;
	struct drv_pin pins[MAX_PINS];
	atomic_uint calls;
	atomic_uint unpins;	/* made by the callback */
	uint64_t last_iova;
	uint64_t last_length;
	/* optional: run inside the callback, after the unpins */
	void (*during)(struct drv *d, uint64_t iova, uint64_t length);
	void *priv;
};

static bool ranges_meet(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	uint64_t alast = a + alen - 1, blast = b + blen - 1;

	return a <= blast && b <= alast;
}

static void drv_unmap(void *data, uint64_t iova, uint64_t length)
{
	struct drv *d = data;
	unsigned int i;

	pthread_mutex_lock(&d->lock);
	atomic_fetch_add(&d->calls, 1);
	d->last_iova = iova;
	d->last_length = length;
	for (i = 0; i != MAX_PINS && d->mode == DRV_UNPIN; i++) {
		struct drv_pin *p = &d->pins[i];

		if (!p->live || p->sticky ||
		    !ranges_meet(p->iova, p->length, iova, length))
			continue;
		iopt_access_unpin_pages(d->access, p->iova, p->length);
		p->live = false;
		atomic_fetch_add(&d->unpins, 1);
	}
	pthread_mutex_unlock(&d->lock);
	if (d->during)
		d->during(d, iova, length);
}

static const struct iopt_access_driver_ops drv_ops = {
	.needs_pin_pages = true,
	.unmap = drv_unmap,
};

static const struct iopt_access_driver_ops rw_only_ops = {
	.needs_pin_pages = false,
};

/* Pin and record, atomically with respect to the callback. */
static int drv_pin(struct drv *d, uint64_t iova, uint64_t length,
		   unsigned int flags, bool sticky, void **pages)
{
	unsigned int i;
	int rc;

	pthread_mutex_lock(&d->lock);
	rc = iopt_access_pin_pages(d->access, iova, length, pages, NULL, flags);
	for (i = 0; !rc && i != MAX_PINS; i++) {
		if (d->pins[i].live)
			continue;
		d->pins[i] = (struct drv_pin){ iova, length, sticky, true };
		break;
	}
	pthread_mutex_unlock(&d->lock);
	if (!rc)
		assert_true(i != MAX_PINS);
	return rc;
}

static unsigned int drv_live_pins(struct drv *d)
{
	unsigned int i, n = 0;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i != MAX_PINS; i++)
		n += d->pins[i].live;
	pthread_mutex_unlock(&d->lock);
	return n;
}

static void drv_unpin_all(struct drv *d)
{
	unsigned int i;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i != MAX_PINS; i++) {
		if (!d->pins[i].live)
			continue;
		iopt_access_unpin_pages(d->access, d->pins[i].iova,
					d->pins[i].length);
		d->pins[i].live = false;
	}
	pthread_mutex_unlock(&d->lock);
}

/* ---- fixture ---- */

struct fx {
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *domain;
	struct drv drv;
	char *buf;
	size_t buf_len;
	long live;
	atomic_uint nlog;	/* the log callback may run on any thread */
};

static void count_log(void *data, const char *msg)
{
	struct fx *fx = data;

	(void)msg;
	fx->nlog++;
}

/* @call returns @err and says why in exactly one line of the context's log. */
#define REFUSED(fx, call, err)                                                 \
	do {                                                                   \
		unsigned int nlog_ = (fx).nlog;                                \
									       \
		assert_int_equal((call), (err));                               \
		assert_int_equal((fx).nlog, nlog_ + 1);                        \
	} while (0)

/* @call (a driver bug the library ignores) is logged in exactly one line. */
#define LOGGED(fx, call)                                                       \
	do {                                                                   \
		unsigned int nlog_ = (fx).nlog;                                \
									       \
		call;                                                          \
		assert_int_equal((fx).nlog, nlog_ + 1);                        \
	} while (0)

static char *buf_alloc(size_t len)
{
	char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t i;

	assert_true(buf != MAP_FAILED);
	for (i = 0; i != len; i++)
		buf[i] = (char)(i * 31 + 7);
	return buf;
}

static void fx_init(struct fx *fx, size_t npages)
{
	memset(fx, 0, sizeof(*fx));
	fx->live = iopt_alloc_live();
	assert_int_equal(iopt_ctx_alloc(NULL, &fx->ctx), 0);
	iopt_ctx_set_log(fx->ctx, count_log, fx);
	assert_int_equal(iopt_ioas_alloc(fx->ctx, &fx->ioas), 0);
	pthread_mutex_init(&fx->drv.lock, NULL);
	assert_int_equal(iopt_access_create(fx->ctx, &drv_ops, &fx->drv, 0,
					    &fx->drv.access), 0);
	fx->buf_len = npages * PS;
	fx->buf = buf_alloc(fx->buf_len);
}

static void fx_add_domain(struct fx *fx)
{
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &fx->iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(fx->iommu, NULL, &fx->domain), 0);
	assert_int_equal(iopt_ioas_attach_domain(fx->ioas, fx->domain), 0);
}

static void fx_fini(struct fx *fx)
{
	struct iopt_ctx_stats st;

	drv_unpin_all(&fx->drv);
	iopt_access_destroy(fx->drv.access);
	if (fx->domain) {
		iopt_ioas_detach_domain(fx->ioas, fx->domain);
		fx->domain->ops->free(fx->domain);
		iopt_sim_iommu_destroy(fx->iommu);
	}
	assert_int_equal(iopt_ioas_destroy(fx->ioas), 0);
	iopt_ctx_read_stats(fx->ctx, &st);
	assert_int_equal(st.pages_pinned, 0);
	assert_int_equal(st.pages_charged, 0);
	iopt_ctx_destroy(fx->ctx);
	munmap(fx->buf, fx->buf_len);
	pthread_mutex_destroy(&fx->drv.lock);
	assert_int_equal(iopt_alloc_live(), fx->live);
}

static void map_at(struct iopt_ioas *ioas, void *ptr, uint64_t len,
		   uint64_t iova, unsigned int flags)
{
	assert_int_equal(iopt_ioas_map(ioas, ptr, len, &iova, flags | FIXED), 0);
}

/*
 * A one-page area of fx->buf at BASE and, right after it, a two-page area of
 * other memory, returned (munmap it after fx_fini()).
 */
static char *fx_init_split(struct fx *fx)
{
	char *other = buf_alloc(2 * PS);

	fx_init(fx, 1);
	map_at(fx->ioas, fx->buf, PS, BASE, RW_RW);
	map_at(fx->ioas, other, 2 * PS, BASE + PS, RW_RW);
	return other;
}

/* A domain holds the pages, the access is attached, BASE maps the buffer. */
static void fx_init_attached(struct fx *fx, size_t npages)
{
	fx_init(fx, npages);
	fx_add_domain(fx);
	assert_int_equal(iopt_access_attach(fx->drv.access, fx->ioas), 0);
	map_at(fx->ioas, fx->buf, npages * PS, BASE, RW_RW);
}

/* fx_init(), all of fx->buf mapped at BASE, and the driver attached. */
static void fx_init_mapped(struct fx *fx, size_t npages)
{
	fx_init(fx, npages);
	map_at(fx->ioas, fx->buf, npages * PS, BASE, RW_RW);
	assert_int_equal(iopt_access_attach(fx->drv.access, fx->ioas), 0);
}

/* Two one-page areas back to back at BASE, and the driver attached. */
static void fx_two_areas(struct fx *fx)
{
	map_at(fx->ioas, fx->buf, PS, BASE, RW_RW);
	map_at(fx->ioas, fx->buf + PS, PS, BASE + PS, RW_RW);
	assert_int_equal(iopt_access_attach(fx->drv.access, fx->ioas), 0);
}

/* The area holding @iova (the caller keeps it mapped while using it). */
static struct iopt_area *area_at(struct iopt_ioas *ioas, uint64_t iova)
{
	struct iopt_area *area;

	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	area = iopt_area_iter_first(&ioas->iopt, iova, iova);
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
	assert_non_null(area);
	return area;
}

static unsigned int area_accesses(struct iopt_ioas *ioas, uint64_t iova)
{
	struct iopt_area *area = area_at(ioas, iova);
	unsigned int n;

	iopt_pages_lock(area->pages);
	n = area->num_accesses;
	iopt_pages_unlock(area->pages);
	return n;
}

/* users of the exact access interval [start, last] in the area's pages */
static unsigned int interval_users(struct iopt_ioas *ioas, uint64_t iova,
				   uint64_t start, uint64_t last)
{
	struct iopt_pages *pages = area_at(ioas, iova)->pages;
	struct iopt_itree_node *node;
	unsigned int users = 0;

	iopt_pages_lock(pages);
	if (pages->pins)
		iopt_itree_for_each(node, &pages->pins->access_itree, start,
				    last)
			if (node->start == start && node->last == last)
				users = container_of(node,
						     struct iopt_pages_access,
						     node)->users;
	iopt_pages_unlock(pages);
	return users;
}

static bool host_pinned(const void *p)
{
	struct iopt_pin_page_state st;

	return iopt_pin_page_state((uintptr_t)p, &st) == 0;
}

static uint64_t ioas_alignment(struct iopt_ioas *ioas)
{
	size_t num = 0;
	uint64_t align = 0;
	int rc = iopt_ioas_iova_ranges(ioas, NULL, &num, &align);

	assert_true(rc == 0 || rc == -EMSGSIZE);
	return align;
}

/* ---- create, attach, ids ---- */

static void access_create_args(void **state)
{
	struct iopt_access_driver_ops no_unmap = { .needs_pin_pages = true };
	struct iopt_access *a = NULL, *b = NULL, *c = NULL;
	struct fx fx;

	(void)state;
	fx_init(&fx, 1);
	assert_int_equal(iopt_access_create(fx.ctx, &drv_ops, NULL, 1u << 7, &a),
			 -EOPNOTSUPP);
	assert_int_equal(iopt_access_create(NULL, &drv_ops, NULL, 0, &a), -EINVAL);
	assert_int_equal(iopt_access_create(fx.ctx, &drv_ops, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(iopt_access_create(fx.ctx, NULL, NULL, 0, &a), -EINVAL);
	assert_int_equal(iopt_access_create(fx.ctx, &no_unmap, NULL, 0, &a),
			 -EINVAL);
	assert_null(a);

	assert_int_equal(iopt_access_create(fx.ctx, &rw_only_ops, NULL, 0, &a), 0);
	assert_int_equal(iopt_access_create(fx.ctx, NULL, NULL,
					    IOPT_ACCESS_INTERNAL, &b), 0);
	assert_int_equal(iopt_access_create(fx.ctx, &drv_ops, NULL, 0, &c), 0);
	assert_int_not_equal(iopt_access_id(a), 0);
	assert_int_not_equal(iopt_access_id(a), iopt_access_id(b));
	assert_int_not_equal(iopt_access_id(b), iopt_access_id(c));
	/* one id space for every object type, as one iommufd file's */
	assert_int_not_equal(iopt_access_id(a), iopt_ioas_id(fx.ioas));
	assert_int_not_equal(iopt_access_id(c), iopt_ioas_id(fx.ioas));
	assert_int_equal(iopt_access_id(NULL), 0);
	/* objects exist: the accounting mode is frozen */
	assert_int_equal(iopt_ctx_set_account_mode(fx.ctx, IOPT_ACCOUNT_MM),
			 -EBUSY);
	iopt_access_destroy(a);
	iopt_access_destroy(b);
	iopt_access_destroy(c);
	iopt_access_destroy(NULL);
	fx_fini(&fx);
}

static void access_attach_rules(void **state)
{
	struct iopt_ctx *other_ctx;
	struct iopt_ioas *other;
	struct fx fx;
	unsigned int nlog;

	(void)state;
	fx_init(&fx, 1);
	assert_int_equal(iopt_access_replace(fx.drv.access, fx.ioas), -ENOENT);
	nlog = fx.nlog;
	iopt_access_detach(fx.drv.access);	/* the kernel's WARN: logged */
	assert_int_equal(fx.nlog, nlog + 1);
	assert_int_equal(iopt_access_attach(NULL, fx.ioas), -EINVAL);
	/* the detach's line does not stand in for the next refusal's */
	REFUSED(fx, iopt_access_attach(fx.drv.access, NULL), -EINVAL);

	assert_int_equal(iopt_ctx_alloc(NULL, &other_ctx), 0);
	assert_int_equal(iopt_ioas_alloc(other_ctx, &other), 0);
	assert_int_equal(iopt_access_attach(fx.drv.access, other), -EINVAL);

	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), -EINVAL);
	assert_int_equal(iopt_access_replace(fx.drv.access, other), -EINVAL);
	/* replace with the same IOAS: nothing happens, no callback */
	assert_int_equal(iopt_access_replace(fx.drv.access, fx.ioas), 0);
	assert_int_equal(fx.drv.calls, 0);
	/* an attached access keeps the IOAS referenced */
	assert_int_equal(iopt_ioas_destroy(fx.ioas), -EBUSY);
	iopt_access_detach(fx.drv.access);
	assert_int_equal(fx.drv.calls, 1);
	assert_int_equal(fx.drv.last_iova, 0);
	assert_int_equal(fx.drv.last_length, UINT64_MAX);

	assert_int_equal(iopt_ioas_destroy(other), 0);
	iopt_ctx_destroy(other_ctx);
	fx_fini(&fx);
}

/* ---- §5 case 31: pin errors ---- */

static void access_pin_errors(void **state)
{
	struct iopt_access *rw_only;
	void *pages[4];
	struct fx fx;

	(void)state;
	fx_init(&fx, 4);
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 0), -ENOENT);
	/* areas: [BASE, +2 pages) RW, gap, BASE+3p RO, BASE+4p WO */
	map_at(fx.ioas, fx.buf, 2 * PS, BASE, RW_RW);
	map_at(fx.ioas, fx.buf + 2 * PS, PS, BASE + 3 * PS, RW_R);
	map_at(fx.ioas, fx.buf + 3 * PS, PS, BASE + 4 * PS, RW_W);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);

	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE, 0, pages,
					       NULL, 0), -EINVAL);
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, UINT64_MAX - 10,
					       PS, pages, NULL, 0), -EOVERFLOW);
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 1u << 5), -EOPNOTSUPP);
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE + 8, PS,
					       pages, NULL, 0), -EINVAL);
	/* the gap: the pins of the first area are undone */
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE, 4 * PS,
					       pages, NULL, 0), -ENOENT);
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	assert_false(host_pinned(fx.buf));
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE + 2 * PS, PS,
					       pages, NULL, 0), -ENOENT);
	/* prot: write to read-only, read of write-only */
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE + 3 * PS, PS,
					       pages, NULL, IOPT_ACCESS_RW_WRITE),
			 -EPERM);
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE + 4 * PS, PS,
					       pages, NULL, 0), -EPERM);
	/* -EPERM on the second area undoes the first area's pin */
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE + 3 * PS,
					       2 * PS, pages, NULL, 0), -EPERM);
	assert_int_equal(area_accesses(fx.ioas, BASE + 3 * PS), 0);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + 4 * PS, PS,
					       pages, NULL, IOPT_ACCESS_RW_WRITE),
			 0);
	iopt_access_unpin_pages(fx.drv.access, BASE + 4 * PS, PS);

	/* an rw-only access cannot pin (a driver bug in the kernel) */
	assert_int_equal(iopt_access_create(fx.ctx, &rw_only_ops, NULL, 0,
					    &rw_only), 0);
	assert_int_equal(iopt_access_attach(rw_only, fx.ioas), 0);
	REFUSED(fx, iopt_access_pin_pages(rw_only, BASE, PS, pages, NULL,
					       0), -EINVAL);
	iopt_access_destroy(rw_only);
	fx_fini(&fx);
}

/* Pages and frames out, across two areas; unpin takes the exact range. */
static void access_pin_outputs(void **state)
{
	uint64_t frames[3];
	void *pages[3];
	struct fx fx;
	char *other = fx_init_split(&fx);
	unsigned int i;

	(void)state;
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, 3 * PS,
					       pages, frames,
					       IOPT_ACCESS_RW_WRITE), 0);
	assert_ptr_equal(pages[0], fx.buf);
	assert_ptr_equal(pages[1], other);
	assert_ptr_equal(pages[2], other + PS);
	for (i = 0; i != 3; i++) {
		assert_ptr_equal(iopt_phys_to_host(frames[i] << 12), pages[i]);
		assert_true(host_pinned(pages[i]));
	}
	assert_int_equal(area_accesses(fx.ioas, BASE), 1);
	assert_int_equal(area_accesses(fx.ioas, BASE + PS), 1);
	/* a pin of a sub-page length still covers its page */
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + PS, 1,
					       pages, NULL, 0), 0);
	assert_ptr_equal(pages[0], other);
	iopt_access_unpin_pages(fx.drv.access, BASE + PS, 1);
	iopt_access_unpin_pages(fx.drv.access, BASE, 3 * PS);
	assert_false(host_pinned(fx.buf));
	assert_false(host_pinned(other));
	assert_false(host_pinned(other + PS));
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	assert_int_equal(area_accesses(fx.ioas, BASE + PS), 0);
	assert_int_equal(fx.nlog, 0);
	/* an unpin of a range never mapped is a driver bug: logged */
	iopt_access_unpin_pages(fx.drv.access, BASE + 8 * PS, PS);
	assert_int_equal(fx.nlog, 1);
	fx_fini(&fx);
	munmap(other, 2 * PS);
}

/* ---- §5 case 32: exact interval refcounts ---- */

static void access_pin_refcount(void **state)
{
	void *pages[3];
	struct fx fx;

	(void)state;
	fx_init_mapped(&fx, 3);

	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 0), 0);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 0), 0);
	assert_int_equal(interval_users(fx.ioas, BASE, 0, 0), 2);
	assert_int_equal(area_accesses(fx.ioas, BASE), 2);
	iopt_access_unpin_pages(fx.drv.access, BASE, PS);
	assert_true(host_pinned(fx.buf));
	assert_int_equal(interval_users(fx.ioas, BASE, 0, 0), 1);
	iopt_access_unpin_pages(fx.drv.access, BASE, PS);
	assert_false(host_pinned(fx.buf));

	/* overlapping different ranges: [0, 1] and [1, 2] are independent */
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, 2 * PS,
					       pages, NULL, 0), 0);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + PS, 2 * PS,
					       pages, NULL, 0), 0);
	assert_int_equal(interval_users(fx.ioas, BASE, 0, 1), 1);
	assert_int_equal(interval_users(fx.ioas, BASE, 1, 2), 1);
	iopt_access_unpin_pages(fx.drv.access, BASE, 2 * PS);
	assert_false(host_pinned(fx.buf));
	assert_true(host_pinned(fx.buf + PS));
	assert_true(host_pinned(fx.buf + 2 * PS));
	iopt_access_unpin_pages(fx.drv.access, BASE + PS, 2 * PS);
	assert_false(host_pinned(fx.buf + PS));
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	fx_fini(&fx);
}

/*
 * Unpins that match no pin exactly, inside one area and across several: each
 * is one log line and releases nothing, not even the areas whose slice
 * matches; the exact unpin afterwards releases everything.
 */
static void unpin_check_kept(struct fx *fx, bool spanning)
{
	assert_int_equal(interval_users(fx->ioas, BASE + PS, 0, spanning), 1);
	assert_int_equal(area_accesses(fx->ioas, BASE), spanning);
	assert_int_equal(area_accesses(fx->ioas, BASE + PS), 1);
	assert_int_equal(area_accesses(fx->ioas, BASE + 3 * PS), 0);
	assert_true(host_pinned(fx->buf + PS));
	assert_true(host_pinned(fx->buf) == spanning);
	assert_true(host_pinned(fx->buf + 2 * PS) == spanning);
	assert_false(host_pinned(fx->buf + 3 * PS));
	if (spanning)
		assert_int_equal(interval_users(fx->ioas, BASE, 0, 0), 1);
}

static void access_unpin_mismatch(void **state)
{
	struct iopt_access *internal;
	struct iopt_access *a;
	void *pages[3];
	struct fx fx;

	(void)state;
	/* A: one page at BASE, B: two pages after it, C: one page after B */
	fx_init(&fx, 4);
	map_at(fx.ioas, fx.buf, PS, BASE, RW_RW);
	map_at(fx.ioas, fx.buf + PS, 2 * PS, BASE + PS, RW_RW);
	map_at(fx.ioas, fx.buf + 3 * PS, PS, BASE + 3 * PS, RW_RW);
	a = fx.drv.access;
	assert_int_equal(iopt_access_attach(a, fx.ioas), 0);
	assert_int_equal(iopt_access_create(fx.ctx, NULL, NULL,
					    IOPT_ACCESS_INTERNAL, &internal), 0);
	assert_int_equal(iopt_access_attach(internal, fx.ioas), 0);

	/* one area: the first page of B */
	assert_int_equal(iopt_access_pin_pages(a, BASE + PS, PS, pages, NULL,
					       0), 0);
	LOGGED(fx, iopt_access_unpin_pages(a, BASE + PS, 2 * PS));
	unpin_check_kept(&fx, false);
	LOGGED(fx, iopt_access_unpin_pages(a, BASE + 2 * PS, PS));
	unpin_check_kept(&fx, false);
	LOGGED(fx, iopt_access_unpin_pages(a, BASE + 3 * PS, PS));
	unpin_check_kept(&fx, false);
	/* a locking unpin of a pin that does not lock */
	LOGGED(fx, iopt_access_unpin_pages(internal, BASE + PS, PS));
	unpin_check_kept(&fx, false);
	fx.nlog = 0;
	iopt_access_unpin_pages(a, BASE + PS, PS);
	assert_int_equal(fx.nlog, 0);
	assert_int_equal(area_accesses(fx.ioas, BASE + PS), 0);
	assert_false(host_pinned(fx.buf + PS));

	/* spanning A and B: A[0, 0] and B[0, 1] */
	assert_int_equal(iopt_access_pin_pages(a, BASE, 3 * PS, pages, NULL,
					       0), 0);
	unpin_check_kept(&fx, true);
	/* too short: A's slice matches, B's does not */
	LOGGED(fx, iopt_access_unpin_pages(a, BASE, 2 * PS));
	unpin_check_kept(&fx, true);
	/* too long: A's and B's match, C's does not */
	LOGGED(fx, iopt_access_unpin_pages(a, BASE, 4 * PS));
	unpin_check_kept(&fx, true);
	/* too long into unmapped IOVA: A's and B's match, then a gap */
	LOGGED(fx, iopt_access_unpin_pages(a, BASE, 8 * PS));
	unpin_check_kept(&fx, true);
	/* a page late: B's slice matches, C's does not */
	LOGGED(fx, iopt_access_unpin_pages(a, BASE + PS, 3 * PS));
	unpin_check_kept(&fx, true);
	/* never pinned, across B and C */
	LOGGED(fx, iopt_access_unpin_pages(a, BASE + 2 * PS, 2 * PS));
	unpin_check_kept(&fx, true);
	LOGGED(fx, iopt_access_unpin_pages(internal, BASE, 3 * PS));
	unpin_check_kept(&fx, true);
	/* nor does an unpin's line stand in for the next refusal's */
	REFUSED(fx, iopt_access_pin_pages(a, BASE, 0, pages, NULL, 0), -EINVAL);

	fx.nlog = 0;
	iopt_access_unpin_pages(a, BASE, 3 * PS);
	assert_int_equal(fx.nlog, 0);
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	assert_int_equal(area_accesses(fx.ioas, BASE + PS), 0);
	assert_false(host_pinned(fx.buf));
	assert_false(host_pinned(fx.buf + PS));
	assert_false(host_pinned(fx.buf + 2 * PS));
	iopt_access_destroy(internal);
	fx_fini(&fx);
}

/* ---- §5 case 33: the unmap callback ---- */

static void access_unmap_callback(void **state)
{
	uint64_t unmapped;
	void *pages[1];
	struct fx fx;

	(void)state;
	fx_init_mapped(&fx, 4);
	assert_int_equal(drv_pin(&fx.drv, BASE + 2 * PS, PS, 0, false, pages), 0);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 4 * PS, &unmapped), 0);
	assert_int_equal(unmapped, 4 * PS);
	/* the whole area, not only the pinned page */
	assert_int_equal(fx.drv.calls, 1);
	assert_int_equal(fx.drv.last_iova, BASE);
	assert_int_equal(fx.drv.last_length, 4 * PS);
	assert_false(host_pinned(fx.buf + 2 * PS));
	/* an unmap with no pins calls no one */
	map_at(fx.ioas, fx.buf, 4 * PS, BASE, RW_RW);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 4 * PS, NULL), 0);
	assert_int_equal(fx.drv.calls, 1);
	fx_fini(&fx);
}

static void access_unmap_deadlock(void **state)
{
	char byte;
	uint64_t unmapped;
	void *pages[1];
	struct fx fx;

	(void)state;
	fx_init(&fx, 2);
	fx_two_areas(&fx);
	fx.drv.mode = DRV_IGNORE;
	assert_int_equal(drv_pin(&fx.drv, BASE, PS, 0, false, pages), 0);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, PS, &unmapped),
			 -EDEADLOCK);
	assert_int_equal(unmapped, 0);
	assert_int_equal(fx.drv.calls, 101);	/* the kernel's bound */
	assert_int_equal(area_accesses(fx.ioas, BASE), 1);
	/* the area is closed to accesses, its neighbour is not */
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 0), -EINVAL);
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE, &byte, 1, 0, NULL),
			 -EINVAL);
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE + PS, &byte, 1, 0,
					NULL), 0);
	assert_int_equal(byte, fx.buf[PS]);
	/* once the pin goes the area can be unmapped (quirk 9) */
	fx.drv.mode = DRV_UNPIN;
	drv_unpin_all(&fx.drv);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, PS, &unmapped), 0);
	assert_int_equal(unmapped, PS);
	fx_fini(&fx);
}

/* A callback that unpins only half its pins: -EDEADLOCK, others fine. */
static void access_unmap_half_unpinned(void **state)
{
	uint64_t unmapped;
	void *pages[1];
	struct fx fx;
	unsigned int i;

	(void)state;
	fx_init(&fx, 5);
	map_at(fx.ioas, fx.buf, 4 * PS, BASE, RW_RW);
	map_at(fx.ioas, fx.buf + 4 * PS, PS, BASE + 4 * PS, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	for (i = 0; i != 4; i++)
		assert_int_equal(drv_pin(&fx.drv, BASE + i * PS, PS, 0, i & 1,
					 pages), 0);
	assert_int_equal(drv_pin(&fx.drv, BASE + 4 * PS, PS, 0, false, pages), 0);

	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 4 * PS, &unmapped),
			 -EDEADLOCK);
	assert_int_equal(unmapped, 0);
	assert_int_equal(area_accesses(fx.ioas, BASE), 2);
	assert_false(host_pinned(fx.buf));
	assert_true(host_pinned(fx.buf + PS));
	assert_false(host_pinned(fx.buf + 2 * PS));
	assert_true(host_pinned(fx.buf + 3 * PS));
	/* the other area unmaps (its pin is released) */
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE + 4 * PS, PS, &unmapped),
			 0);
	assert_int_equal(unmapped, PS);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 0), -EINVAL);
	drv_unpin_all(&fx.drv);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 4 * PS, &unmapped), 0);
	assert_int_equal(unmapped, 4 * PS);
	fx_fini(&fx);
}

/* ---- §5 case 34 and 46: inside the callback ---- */

struct during_check {
	int same_pin;
	int same_rw;
	int other_pin;
	int other_rw;
	char other_byte;
};

static void during_probe(struct drv *d, uint64_t iova, uint64_t length)
{
	struct during_check *c = d->priv;
	void *pages[1];

	(void)length;
	c->same_pin = iopt_access_pin_pages(d->access, iova, PS, pages, NULL, 0);
	c->same_rw = iopt_access_rw(d->access, iova, &c->other_byte, 1, 0, NULL);
	/* re-entering on another area: pin, unpin, rw all work */
	c->other_pin = iopt_access_pin_pages(d->access, BASE + 8 * PS, PS, pages,
					     NULL, 0);
	if (!c->other_pin)
		iopt_access_unpin_pages(d->access, BASE + 8 * PS, PS);
	c->other_rw = iopt_access_rw(d->access, BASE + 8 * PS, &c->other_byte,
				     1, 0, NULL);
	d->during = NULL;
}

static void access_unmap_callback_reenters(void **state)
{
	struct during_check c = { 0 };
	void *pages[1];
	struct fx fx;

	(void)state;
	fx_init(&fx, 2);
	map_at(fx.ioas, fx.buf, PS, BASE, RW_RW);
	map_at(fx.ioas, fx.buf + PS, PS, BASE + 8 * PS, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	assert_int_equal(drv_pin(&fx.drv, BASE, PS, 0, false, pages), 0);
	fx.drv.priv = &c;
	fx.drv.during = during_probe;
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, PS, NULL), 0);
	assert_int_equal(c.same_pin, -EINVAL);
	assert_int_equal(c.same_rw, -EINVAL);
	assert_int_equal(c.other_pin, 0);
	assert_int_equal(c.other_rw, 0);
	assert_int_equal(c.other_byte, fx.buf[PS]);
	assert_int_equal(area_accesses(fx.ioas, BASE + 8 * PS), 0);
	fx_fini(&fx);
}

/* ---- §5 case 35: internal (locking) accesses ---- */

static void access_internal_locks(void **state)
{
	struct iopt_access *internal;
	uint64_t unmapped;
	void *pages[1];
	struct fx fx;

	(void)state;
	fx_init(&fx, 2);
	fx_two_areas(&fx);	/* the callback access must not be called */
	assert_int_equal(iopt_access_create(fx.ctx, NULL, NULL,
					    IOPT_ACCESS_INTERNAL, &internal), 0);
	assert_int_equal(iopt_access_attach(internal, fx.ioas), 0);
	assert_int_equal(ioas_alignment(fx.ioas), PS);
	assert_int_equal(iopt_access_pin_pages(internal, BASE, PS, pages, NULL,
					       0), 0);
	assert_ptr_equal(pages[0], fx.buf);

	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, PS, &unmapped), -EBUSY);
	assert_int_equal(unmapped, 0);
	assert_int_equal(fx.drv.calls, 0);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE + PS, PS, &unmapped), 0);
	assert_int_equal(unmapped, PS);
	iopt_access_unpin_pages(internal, BASE, PS);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, PS, &unmapped), 0);
	assert_int_equal(unmapped, PS);
	assert_int_equal(fx.drv.calls, 0);
	iopt_access_destroy(internal);	/* detaches, no callback to call */
	fx_fini(&fx);
}

/* ---- §5 case 36: replace ---- */

struct replace_check {
	struct iopt_ioas *old_ioas;
	struct iopt_ioas *new_ioas;
	int pin_rc;
	int rw_rc;
	uint64_t new_align;
	unsigned int old_accesses_after_unpin;
};

static void during_replace(struct drv *d, uint64_t iova, uint64_t length)
{
	struct replace_check *c = d->priv;
	void *pages[1];
	char byte;

	(void)iova;
	(void)length;
	/* drv_unmap already unpinned: those unpins went to the old IOAS */
	c->old_accesses_after_unpin = area_accesses(c->old_ioas, BASE);
	c->pin_rc = iopt_access_pin_pages(d->access, BASE, PS, pages, NULL, 0);
	c->rw_rc = iopt_access_rw(d->access, BASE, &byte, 1, 0, NULL);
	c->new_align = ioas_alignment(c->new_ioas);
	d->during = NULL;
}

static void access_replace(void **state)
{
	struct replace_check c = { 0 };
	struct iopt_ioas *ioas2;
	void *pages[2];
	struct fx fx;

	(void)state;
	fx_init(&fx, 2);
	assert_int_equal(iopt_ioas_alloc(fx.ctx, &ioas2), 0);
	map_at(fx.ioas, fx.buf, 2 * PS, BASE, RW_RW);
	map_at(ioas2, fx.buf, 2 * PS, BASE, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	assert_int_equal(ioas_alignment(fx.ioas), PS);
	assert_int_equal(ioas_alignment(ioas2), 1);
	assert_int_equal(drv_pin(&fx.drv, BASE, 2 * PS, 0, false, pages), 0);
	assert_int_equal(drv_pin(&fx.drv, BASE + PS, PS, 0, false, pages), 0);
	assert_int_equal(area_accesses(fx.ioas, BASE), 2);

	c.old_ioas = fx.ioas;
	c.new_ioas = ioas2;
	fx.drv.priv = &c;
	fx.drv.during = during_replace;
	assert_int_equal(iopt_access_replace(fx.drv.access, ioas2), 0);
	assert_int_equal(fx.drv.calls, 1);
	assert_int_equal(fx.drv.last_iova, 0);
	assert_int_equal(fx.drv.last_length, UINT64_MAX);
	assert_int_equal(c.old_accesses_after_unpin, 0);
	assert_int_equal(c.pin_rc, -ENOENT);
	assert_int_equal(c.rw_rc, -ENOENT);
	assert_int_equal(c.new_align, PS);	/* new attached first */
	assert_int_equal(ioas_alignment(fx.ioas), 1);	/* old left after */

	/* pins now go to the new IOAS; the old one unmaps with no callback */
	assert_int_equal(drv_pin(&fx.drv, BASE, PS, 0, false, pages), 0);
	assert_int_equal(area_accesses(ioas2, BASE), 1);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 2 * PS, NULL), 0);
	assert_int_equal(fx.drv.calls, 1);
	assert_int_equal(iopt_ioas_unmap(ioas2, BASE, 2 * PS, NULL), 0);
	assert_int_equal(fx.drv.calls, 2);
	assert_int_equal(fx.drv.last_iova, BASE);
	assert_false(host_pinned(fx.buf));

	/* a failed replace (misaligned areas in the target) changes nothing */
	map_at(fx.ioas, fx.buf + 1, 100, BASE, RW_RW);
	assert_int_equal(iopt_access_replace(fx.drv.access, fx.ioas),
			 -EADDRINUSE);
	assert_int_equal(fx.drv.calls, 2);
	assert_int_equal(ioas_alignment(ioas2), PS);
	assert_int_equal(ioas_alignment(fx.ioas), 1);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);

	iopt_access_detach(fx.drv.access);
	assert_int_equal(ioas_alignment(ioas2), 1);
	assert_int_equal(iopt_ioas_destroy(ioas2), 0);
	fx_fini(&fx);
}

/* ---- §5 case 38: alignment ---- */

static void access_alignment(void **state)
{
	struct iopt_access *rw_only;
	struct fx fx;

	(void)state;
	fx_init(&fx, 2);
	map_at(fx.ioas, fx.buf + 3, 100, BASE + 3, RW_RW);
	assert_int_equal(ioas_alignment(fx.ioas), 1);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas),
			 -EADDRINUSE);
	assert_int_equal(ioas_alignment(fx.ioas), 1);
	/* an rw-only access needs nothing and reads the sub-page area */
	assert_int_equal(iopt_access_create(fx.ctx, &rw_only_ops, NULL, 0,
					    &rw_only), 0);
	assert_int_equal(iopt_access_attach(rw_only, fx.ioas), 0);
	assert_int_equal(ioas_alignment(fx.ioas), 1);
	iopt_access_destroy(rw_only);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);

	map_at(fx.ioas, fx.buf, 2 * PS, BASE, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	assert_int_equal(ioas_alignment(fx.ioas), PS);
	/* with the access attached, sub-page maps are refused */
	{
		uint64_t iova = BASE + 4 * PS + 3;

		assert_int_equal(iopt_ioas_map(fx.ioas, fx.buf + 3, 100, &iova,
					       RW_RW | FIXED), -EINVAL);
	}
	iopt_access_detach(fx.drv.access);
	assert_int_equal(ioas_alignment(fx.ioas), 1);
	fx_fini(&fx);
}

/* ---- §5 case 37: rw ---- */

/* Where the bytes of an IOVA window live in host memory (up to 2 runs). */
struct layout {
	uint64_t iova;
	uint64_t length;
	char *host[2];
	uint64_t split;	/* bytes of host[0]; the rest from host[1] */
	uint64_t boundary;	/* the IOVA the byte sweep centres on */
};

static char *layout_host(const struct layout *l, uint64_t iova)
{
	uint64_t off = iova - l->iova;

	return off < l->split ? l->host[0] + off : l->host[1] + off - l->split;
}

/* Every offset within 64 bytes of the page boundary, lengths 1..64. */
static void rw_sweep(struct iopt_access *access, const struct layout *l)
{
	uint64_t seed = iopt_test_seed(), boundary = l->boundary, copied;
	char in[64], out[64];
	uint64_t iova, len, i;

	for (iova = boundary - 64; iova != boundary + 64; iova++) {
		for (len = 1; len <= 64; len++) {
			assert_int_equal(iopt_access_rw(access, iova, out, len,
							0, &copied), 0);
			assert_int_equal(copied, len);
			for (i = 0; i != len; i++)
				assert_int_equal(out[i],
						 *layout_host(l, iova + i));
			for (i = 0; i != len; i++)
				in[i] = (char)iopt_test_rand(&seed);
			assert_int_equal(iopt_access_rw(access, iova, in, len,
							IOPT_ACCESS_RW_WRITE,
							&copied), 0);
			assert_int_equal(copied, len);
			for (i = 0; i != len; i++)
				assert_int_equal(in[i],
						 *layout_host(l, iova + i));
		}
	}
}

/* A multi-page read and write of the whole window. */
static void rw_whole(struct iopt_access *access, const struct layout *l)
{
	char *tmp = malloc(l->length);
	uint64_t i, copied;

	assert_non_null(tmp);
	assert_int_equal(iopt_access_rw(access, l->iova, tmp, l->length, 0,
					&copied), 0);
	assert_int_equal(copied, l->length);
	for (i = 0; i != l->length; i++)
		assert_int_equal(tmp[i], *layout_host(l, l->iova + i));
	for (i = 0; i != l->length; i++)
		tmp[i] = (char)(i ^ 0x5a);
	assert_int_equal(iopt_access_rw(access, l->iova, tmp, l->length,
					IOPT_ACCESS_RW_WRITE, &copied), 0);
	for (i = 0; i != l->length; i++)
		assert_int_equal(*layout_host(l, l->iova + i), (char)(i ^ 0x5a));
	free(tmp);
}

static void rw_run(struct fx *fx, const struct layout *l)
{
	rw_sweep(fx->drv.access, l);
	rw_whole(fx->drv.access, l);
}

enum rw_tier { TIER_SOURCE, TIER_STORE, TIER_DOMAIN };

/*
 * Three pages mapped at BASE and read through the given tier: the memory
 * itself, the pin store (the access pins all of it), or a domain.
 */
static void rw_one_area(enum rw_tier tier)
{
	void *pages[3];
	struct fx fx;
	struct layout l;

	fx_init(&fx, 3);
	if (tier == TIER_DOMAIN)
		fx_add_domain(&fx);
	map_at(fx.ioas, fx.buf, 3 * PS, BASE, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	if (tier == TIER_STORE)
		assert_int_equal(drv_pin(&fx.drv, BASE, 3 * PS, 0, false,
					 pages), 0);
	assert_true(host_pinned(fx.buf) == (tier != TIER_SOURCE));
	l = (struct layout){ BASE, 3 * PS, { fx.buf, NULL }, 3 * PS, BASE + PS };
	rw_run(&fx, &l);
	fx_fini(&fx);
}

static void access_rw_offsets_plain(void **state)
{
	(void)state;
	rw_one_area(TIER_SOURCE);
}

static void access_rw_offsets_pinned(void **state)
{
	(void)state;
	rw_one_area(TIER_STORE);
}

static void access_rw_offsets_domain(void **state)
{
	(void)state;
	rw_one_area(TIER_DOMAIN);
}

/* The page boundary is also an area boundary (different memory). */
static void access_rw_offsets_two_areas(void **state)
{
	struct fx fx;
	char *other = fx_init_split(&fx);
	struct layout l;

	(void)state;
	l = (struct layout){ BASE, 3 * PS, { fx.buf, other }, PS, BASE + PS };
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	rw_run(&fx, &l);
	fx_fini(&fx);
	munmap(other, 2 * PS);
}

/* Sub-page areas (alignment 1): an area starting mid-page of its memory. */
static void access_rw_offsets_subpage(void **state)
{
	struct iopt_access *rw_only;
	struct fx fx;
	struct layout l;

	(void)state;
	fx_init(&fx, 4);
	map_at(fx.ioas, fx.buf + 100, 2 * PS, BASE + 100, RW_RW);
	map_at(fx.ioas, fx.buf + 2 * PS + 100 + 7, PS, BASE + 2 * PS + 100,
	       RW_RW);
	assert_int_equal(iopt_access_create(fx.ctx, &rw_only_ops, NULL, 0,
					    &rw_only), 0);
	assert_int_equal(iopt_access_attach(rw_only, fx.ioas), 0);
	l = (struct layout){ BASE + 100, 3 * PS,
			     { fx.buf + 100, fx.buf + 2 * PS + 107 }, 2 * PS,
			     BASE + PS };
	rw_sweep(rw_only, &l);	/* a page boundary of the memory */
	l.boundary = BASE + 2 * PS + 100;
	rw_sweep(rw_only, &l);	/* the area boundary, mid-page */
	rw_whole(rw_only, &l);
	iopt_access_destroy(rw_only);
	fx_fini(&fx);
}

/*
 * memfd memory: without a domain the FILE slow path through the pages'
 * frames; with one, the domain tier over the library's own mapping.
 */
static void rw_file(bool domain)
{
	int memfd = memfd_create("test_access", 0);
	struct fx fx;
	struct layout l;
	uint64_t iova = BASE, i;
	char *view;

	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, 3 * PS), 0);
	view = mmap(NULL, 3 * PS, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(view != MAP_FAILED);
	for (i = 0; i != 3 * PS; i++)
		view[i] = (char)(i * 13 + 5);
	fx_init(&fx, 1);
	if (domain)
		fx_add_domain(&fx);
	assert_int_equal(iopt_ioas_map_file(fx.ioas, memfd, 0, 3 * PS, &iova,
					    RW_RW | FIXED), 0);
	close(memfd);
	l = (struct layout){ BASE, 3 * PS, { view, NULL }, 3 * PS, BASE + PS };
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	rw_run(&fx, &l);
	fx_fini(&fx);
	munmap(view, 3 * PS);
}

static void access_rw_offsets_file(void **state)
{
	(void)state;
	rw_file(false);
}

static void access_rw_offsets_file_domain(void **state)
{
	(void)state;
	rw_file(true);
}

#ifndef NDEBUG
/*
 * The tiers one read of [iova, iova + len) took; *@points: the failure
 * points it passed (fault-injection builds), which only a pin reaches.
 */
static unsigned int rw_tiers(struct fx *fx, uint64_t iova, uint64_t len,
			     unsigned long *points)
{
	char tmp[3 * PS];

	assert_true(len <= sizeof(tmp));
	iopt_access_rw_tiers = 0;
	*points = 0;
#ifdef IOPT_FAULT_INJECTION
	iopt_fail_nth_arm(ULONG_MAX);	/* count, never fail */
#endif
	assert_int_equal(iopt_access_rw(fx->drv.access, iova, tmp, len, 0,
					NULL), 0);
#ifdef IOPT_FAULT_INJECTION
	*points = iopt_fail_nth_disarm();
#endif
	return iopt_access_rw_tiers;
}
#endif

/*
 * Which tier rw copies from (debug builds record it): a storage domain,
 * whoever else pins; else the pin store for the leading pages it holds and
 * iopt_pages_rw_access() from the first page it does not, which for user
 * memory is a checked copy (no pin, no failure point) and for memfd memory
 * a temporary pin.
 */
static void access_rw_tiers(void **state)
{
#ifndef NDEBUG
	const unsigned int domain = IOPT_ACCESS_TIER_DOMAIN;
	const unsigned int store = IOPT_ACCESS_TIER_STORE;
	const unsigned int copy = IOPT_ACCESS_TIER_PAGES;
	int memfd = memfd_create("test_access_tiers", 0);
	uint64_t iova = BASE + 4 * PS;
	unsigned long points;
	void *pages[3];
	struct fx fx;

	(void)state;
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, PS), 0);
	fx_init_mapped(&fx, 3);
	assert_int_equal(iopt_ioas_map_file(fx.ioas, memfd, 0, PS, &iova,
					    RW_RW | FIXED), 0);
	close(memfd);

	assert_int_equal(rw_tiers(&fx, BASE, 3 * PS, &points), copy);
	assert_int_equal(points, 0);
	assert_int_equal(rw_tiers(&fx, BASE + 4 * PS, PS, &points), copy);
#ifdef IOPT_FAULT_INJECTION
	assert_true(points > 0);
#endif
	/* the temporary pin is gone */
	assert_false(host_pinned(area_at(fx.ioas, BASE + 4 * PS)->pages->uptr));

	/* the store serves the leading run of pinned pages only */
	assert_int_equal(drv_pin(&fx.drv, BASE + PS, PS, 0, false, pages), 0);
	assert_int_equal(rw_tiers(&fx, BASE, 3 * PS, &points), copy);
	assert_int_equal(rw_tiers(&fx, BASE + PS + 8, 2 * PS - 8, &points),
			 store | copy);
	assert_int_equal(rw_tiers(&fx, BASE + PS, 100, &points), store);
	assert_int_equal(drv_pin(&fx.drv, BASE, 3 * PS, 0, false, pages), 0);
	assert_int_equal(rw_tiers(&fx, BASE, 3 * PS, &points), store);
	assert_int_equal(points, 0);

	/* a domain: its tier alone, with the pins and once they are gone */
	fx_add_domain(&fx);
	assert_int_equal(rw_tiers(&fx, BASE, 3 * PS, &points), domain);
	drv_unpin_all(&fx.drv);
	assert_int_equal(rw_tiers(&fx, BASE, 3 * PS, &points), domain);
	assert_int_equal(rw_tiers(&fx, BASE + 4 * PS, PS, &points), domain);
	assert_int_equal(points, 0);
	fx_fini(&fx);
#else
	(void)state;
	skip();
#endif
}

static void access_rw_errors(void **state)
{
	char tmp[3 * PS];
	uint64_t copied = 99;
	struct fx fx;

	(void)state;
	fx_init(&fx, 3);
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE, tmp, 1, 0, &copied),
			 -ENOENT);
	assert_int_equal(copied, 0);
	map_at(fx.ioas, fx.buf, 2 * PS, BASE, RW_RW);
	map_at(fx.ioas, fx.buf + 2 * PS, PS, BASE + 3 * PS, RW_R);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);

	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE, tmp, 0, 0, NULL),
			 -EINVAL);
	REFUSED(fx, iopt_access_rw(fx.drv.access, UINT64_MAX, tmp, 2, 0,
					NULL), -EOVERFLOW);
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE, tmp, 1, 1u << 4,
					NULL), -EOPNOTSUPP);
	/* a gap after a partial copy: the bytes before it are copied */
	memset(tmp, 0, sizeof(tmp));
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE + PS + 10, tmp,
					2 * PS, 0, &copied), -ENOENT);
	assert_int_equal(copied, PS - 10);
	assert_memory_equal(tmp, fx.buf + PS + 10, PS - 10);
	/* read-only area: reads work, writes are refused and change nothing */
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE + 3 * PS, tmp, PS,
					0, &copied), 0);
	assert_memory_equal(tmp, fx.buf + 2 * PS, PS);
	memset(tmp, 0x77, PS);
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE + 3 * PS, tmp, 8,
					IOPT_ACCESS_RW_WRITE, &copied), -EPERM);
	assert_int_equal(copied, 0);
	assert_int_not_equal(fx.buf[2 * PS], 0x77);
	fx_fini(&fx);
}

/* ---- §5 case 45: fault injection ---- */

#ifdef IOPT_FAULT_INJECTION
/*
 * Fail the n-th failure point of @op for n = 1, 2, ... until it succeeds:
 * every failure must leave no allocation, no pin and no access count.
 */
static void sweep(struct fx *fx, int (*op)(struct fx *fx),
		  void (*undo)(struct fx *fx))
{
	unsigned long n;
	int rc;

	for (n = 1;; n++) {
		long live = iopt_alloc_live();

		iopt_fail_nth_arm(n);
		rc = op(fx);
		iopt_fail_nth_disarm();
		if (!rc)
			break;
		assert_true(iopt_fail_nth_fired());
		assert_int_equal(iopt_alloc_live(), live);
		assert_int_equal(area_accesses(fx->ioas, BASE), 0);
		assert_int_equal(area_accesses(fx->ioas, BASE + 2 * PS), 0);
		assert_false(host_pinned(fx->buf));
		assert_false(host_pinned(fx->buf + 3 * PS));
		assert_true(n < 1000);
	}
	undo(fx);
}

static int op_pin(struct fx *fx)
{
	void *pages[4];

	return iopt_access_pin_pages(fx->drv.access, BASE, 4 * PS, pages, NULL,
				     0);
}

static void undo_pin(struct fx *fx)
{
	iopt_access_unpin_pages(fx->drv.access, BASE, 4 * PS);
}

static int op_rw(struct fx *fx)
{
	char tmp[4 * PS];

	return iopt_access_rw(fx->drv.access, BASE, tmp, sizeof(tmp), 0, NULL);
}

static void undo_nothing(struct fx *fx)
{
	(void)fx;
}

static int op_attach(struct fx *fx)
{
	return iopt_access_attach(fx->drv.access, fx->ioas);
}

static void undo_attach(struct fx *fx)
{
	iopt_access_detach(fx->drv.access);
}
#endif

static void access_fail_nth(void **state)
{
#ifdef IOPT_FAULT_INJECTION
	char *warm = buf_alloc(PS);
	struct fx fx;
	void *page;

	(void)state;
	fx_init(&fx, 4);
	map_at(fx.ioas, fx.buf, 2 * PS, BASE, RW_RW);
	map_at(fx.ioas, fx.buf + 2 * PS, 2 * PS, BASE + 2 * PS, RW_RW);
	map_at(fx.ioas, warm, PS, BASE + 8 * PS, RW_RW);
	sweep(&fx, op_attach, undo_attach);
	assert_int_equal(ioas_alignment(fx.ioas), 1);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	/*
	 * The pin registry keeps its hash table once grown, until its last
	 * page goes: hold one pin elsewhere so the table exists throughout.
	 */
	assert_int_equal(drv_pin(&fx.drv, BASE + 8 * PS, PS, 0, false, &page), 0);
	sweep(&fx, op_pin, undo_pin);
	sweep(&fx, op_rw, undo_nothing);
	fx_fini(&fx);
	munmap(warm, PS);
#else
	(void)state;
	skip();
#endif
}

/* ---- §5 case 46: a map in flight ---- */

static void access_pin_map_in_flight(void **state)
{
	struct iopt_area fake = { 0 };
	void *pages[1];
	char byte;
	struct fx fx;

	(void)state;
	fx_init(&fx, 1);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	/* what map leaves in the tree while it fills domains: pages NULL */
	fake.node.start = BASE;
	fake.node.last = BASE + PS - 1;
	fake.iopt = &fx.ioas->iopt;
	iopt_rwlock_write(&fx.ioas->iopt.iova_rwsem);
	iopt_itree_insert(&fake.node, &fx.ioas->iopt.area_itree);
	iopt_rwlock_unlock(&fx.ioas->iopt.iova_rwsem);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, PS, pages,
					       NULL, 0), -ENOENT);
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE, &byte, 1, 0, NULL),
			 -ENOENT);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, PS, NULL), -EBUSY);
	iopt_rwlock_write(&fx.ioas->iopt.iova_rwsem);
	iopt_itree_remove(&fake.node, &fx.ioas->iopt.area_itree);
	iopt_rwlock_unlock(&fx.ioas->iopt.iova_rwsem);
	fx_fini(&fx);
}

/* ---- concurrency ---- */

/* A device thread racing the main thread, and what it saw. */
struct race {
	struct fx *fx;
	atomic_bool stop;
	atomic_ulong pins_ok;
	atomic_ulong pins_refused;
};

/*
 * Wait for @count to reach @n, for at most a minute: by time, not by spins,
 * since under TSan with other tests running a thread can take seconds.
 * Return: whether it did.
 */
static bool race_wait(atomic_ulong *count, unsigned long n)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (atomic_load(count) < n) {
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 60)
			break;
	}
	return atomic_load(count) >= n;
}

#ifndef NDEBUG	/* only the debug-build cases (hooks, counters) wait so */
/* Wait (polling each millisecond) for @flag to be @value, at most @ms. */
static void flag_wait(atomic_bool *flag, bool value, unsigned int ms)
{
	while (atomic_load(flag) != value && ms--)
		usleep(1000);
}
#endif

/* The device: pin a page of the area, read through it, unpin. */
static void *race_device(void *arg)
{
	struct race *r = arg;
	struct drv *d = &r->fx->drv;
	void *pages[1];
	unsigned int i;

	while (!atomic_load(&r->stop)) {
		uint64_t iova = BASE + (atomic_load(&r->pins_ok) % 4) * PS;
		int rc = drv_pin(d, iova, PS, 0, false, pages);

		if (rc) {
			/* the area is gone or being unmapped */
			assert_true(rc == -ENOENT || rc == -EINVAL);
			atomic_fetch_add(&r->pins_refused, 1);
			/* back off: the callback needs the driver lock */
			sched_yield();
			continue;
		}
		atomic_fetch_add(&r->pins_ok, 1);
		/* hold the pin a while: the unmapper should meet it */
		sched_yield();
		pthread_mutex_lock(&d->lock);
		for (i = 0; i != MAX_PINS; i++) {
			if (!d->pins[i].live || d->pins[i].iova != iova)
				continue;
			/* still pinned: the memory is there and right */
			assert_ptr_equal(pages[0],
					 r->fx->buf + (iova - BASE));
			assert_true(host_pinned(pages[0]));
			iopt_access_unpin_pages(d->access, iova, PS);
			d->pins[i].live = false;
			break;
		}
		pthread_mutex_unlock(&d->lock);
	}
	return NULL;
}

static void access_race_unmap_pin(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 200 : 2000, i;
	struct race r = { 0 };
	pthread_t thread;
	uint64_t unmapped;
	struct fx fx;

	(void)state;
	/* a domain holds the pins, so access pins are cheap and frequent */
	fx_init_attached(&fx, 4);
	r.fx = &fx;
	assert_int_equal(pthread_create(&thread, NULL, race_device, &r), 0);
	for (i = 0; i != rounds; i++) {
		/* the device pinned once more, so the unmap races it */
		(void)race_wait(&r.pins_ok, atomic_load(&r.pins_ok) + 1);
		assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 4 * PS,
						 &unmapped), 0);
		assert_int_equal(unmapped, 4 * PS);
		map_at(fx.ioas, fx.buf, 4 * PS, BASE, RW_RW);
	}
	atomic_store(&r.stop, true);
	pthread_join(thread, NULL);
	print_message("unmap/pin race: %u unmaps, %lu pins, %lu refused, "
		      "%u callbacks\n", rounds, atomic_load(&r.pins_ok),
		      atomic_load(&r.pins_refused), atomic_load(&fx.drv.calls));
	assert_true(atomic_load(&r.pins_ok) >= rounds / 2);
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
}

/* The debug counters and hook these cases read exist in debug builds only. */
#ifndef NDEBUG
/*
 * The lock-free cases' layout: an attached access over three one-page
 * areas, the last read-only.
 */
static void fx_three_areas(struct fx *fx)
{
	fx_init(fx, 3);
	assert_int_equal(iopt_access_attach(fx->drv.access, fx->ioas), 0);
	map_at(fx->ioas, fx->buf, PS, BASE, RW_RW);
	map_at(fx->ioas, fx->buf + PS, PS, BASE + PS, RW_RW);
	map_at(fx->ioas, fx->buf + 2 * PS, PS, BASE + 2 * PS, RW_R);
}

/* A pin from another thread, and whether that thread took it lock-free. */
struct side_pin {
	struct fx *fx;
	uint64_t iova;
	unsigned long lockless;
	int rc;
};

static void *side_pin_thread(void *arg)
{
	unsigned long before = iopt_access_pin_lockless;
	struct side_pin *p = arg;
	void *page;

	p->rc = iopt_access_pin_pages(p->fx->drv.access, p->iova, PS, &page,
				      NULL, 0);
	p->lockless = iopt_access_pin_lockless - before;
	return NULL;
}

static atomic_bool in_pin_section;

static void mark_pin_section(void)
{
	atomic_store(&in_pin_section, true);
}

/*
 * A pin of @iova made while this thread holds the area's pages mutex. The
 * mutex is let go 20 ms after the pin has entered its lock-free section
 * (where there is one), so the pin meets it taken.
 */
static void pin_while_pages_busy(struct fx *fx, uint64_t iova,
				 struct side_pin *p)
{
	struct iopt_pages *pages = area_at(fx->ioas, iova)->pages;
	pthread_t t;

	*p = (struct side_pin){ .fx = fx, .iova = iova, .rc = 1 };
	iopt_pages_lock(pages);
	atomic_store(&in_pin_section, false);
	iopt_access_pin_lockless_hook = mark_pin_section;
	assert_int_equal(pthread_create(&t, NULL, side_pin_thread, p), 0);
	flag_wait(&in_pin_section, true, 200);
	usleep(20 * 1000);
	iopt_pages_unlock(pages);
	assert_int_equal(pthread_join(t, NULL), 0);
	iopt_access_pin_lockless_hook = NULL;
}
#endif

/*
 * Which pins and unpins take the lock-free path: up to 16 pages inside one
 * published area a domain holds, when its pages mutex is free; never
 * without a domain, across areas, against the area's prot, for a pin that
 * does not match, for more pages, with the mutex taken, or detached, whose
 * answers (and log lines) the locked path gives. The pins' effect is the
 * same either way.
 */
static void access_pin_lockless_when(void **state)
{
#ifndef NDEBUG
	unsigned long want = iopt_readers_enable() ? 0 : 1, before;
	void *pages[2] = { NULL, NULL };
	struct side_pin side;
	struct fx fx;
	char *big;

	(void)state;
	fx_three_areas(&fx);

	/* no domain: the store would pin afresh, locked */
	before = iopt_access_pin_lockless;
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + PS, PS,
					       pages, NULL, 0), 0);
	iopt_access_unpin_pages(fx.drv.access, BASE + PS, PS);
	assert_int_equal(iopt_access_pin_lockless, before);

	fx_add_domain(&fx);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + PS, PS,
					       pages, NULL, 0), 0);
	assert_ptr_equal(pages[0], fx.buf + PS);
	assert_int_equal(area_accesses(fx.ioas, BASE + PS), 1);
	iopt_access_unpin_pages(fx.drv.access, BASE + PS, PS);
	assert_int_equal(area_accesses(fx.ioas, BASE + PS), 0);
	before += 2 * want;
	assert_int_equal(iopt_access_pin_lockless, before);

	/* across two areas: locked, both ways */
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE, 2 * PS,
					       pages, NULL, 0), 0);
	assert_ptr_equal(pages[1], fx.buf + PS);
	iopt_access_unpin_pages(fx.drv.access, BASE, 2 * PS);
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	assert_int_equal(iopt_access_pin_lockless, before);

	/* a write pin of a read-only area, an unpin that matches nothing */
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE + 2 * PS, PS,
					  pages, NULL, IOPT_ACCESS_RW_WRITE),
		-EPERM);
	LOGGED(fx, iopt_access_unpin_pages(fx.drv.access, BASE + 2 * PS, PS));
	assert_int_equal(iopt_access_pin_lockless, before);

	/* 16 pages inside one area: lock-free; 17: locked, both ways */
	big = buf_alloc(17 * PS);
	map_at(fx.ioas, big, 17 * PS, BASE + 16 * PS, RW_RW);
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + 16 * PS,
					       16 * PS, NULL, NULL, 0), 0);
	iopt_access_unpin_pages(fx.drv.access, BASE + 16 * PS, 16 * PS);
	before += 2 * want;
	assert_int_equal(iopt_access_pin_pages(fx.drv.access, BASE + 16 * PS,
					       17 * PS, NULL, NULL, 0), 0);
	assert_int_equal(area_accesses(fx.ioas, BASE + 16 * PS), 1);
	iopt_access_unpin_pages(fx.drv.access, BASE + 16 * PS, 17 * PS);
	assert_int_equal(area_accesses(fx.ioas, BASE + 16 * PS), 0);
	assert_int_equal(iopt_access_pin_lockless, before);

	/* the pages mutex taken (by this thread): the pin waits, locked */
	pin_while_pages_busy(&fx, BASE, &side);
	assert_int_equal(side.rc, 0);
	assert_int_equal(side.lockless, 0);
	assert_int_equal(area_accesses(fx.ioas, BASE), 1);
	iopt_access_unpin_pages(fx.drv.access, BASE, PS);
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);

	iopt_access_detach(fx.drv.access);
	before = iopt_access_pin_lockless;
	REFUSED(fx, iopt_access_pin_pages(fx.drv.access, BASE, PS, pages, NULL,
					  0), -ENOENT);
	assert_int_equal(iopt_access_pin_lockless, before);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
	munmap(big, 17 * PS);
#else
	(void)state;
	skip();
#endif
}

/*
 * Which rw calls take the lock-free path (readers.h): inside one area a
 * storage domain holds, reads and writes; never across areas, without a
 * domain, against the area's prot, or for an unknown flag, whose answers
 * the locked path gives. Where lock-free reads cannot be enabled (valgrind),
 * none is.
 */
static void access_rw_lockless_when(void **state)
{
#ifndef NDEBUG
	unsigned long want = iopt_readers_enable() ? 0 : 1, before;
	char tmp[16];
	struct fx fx;

	(void)state;
	fx_three_areas(&fx);

	/* no domain: the locked path's checked copy */
	before = iopt_access_rw_lockless;
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE, tmp, 8, 0, NULL), 0);
	assert_int_equal(iopt_access_rw_lockless, before);

	fx_add_domain(&fx);
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE + 8, tmp, 8, 0,
					NULL), 0);
	assert_memory_equal(tmp, fx.buf + 8, 8);
	assert_int_equal(iopt_access_rw_lockless, before + want);
	memset(tmp, 0x5a, 4);
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE + PS + 3, tmp, 4,
					IOPT_ACCESS_RW_WRITE, NULL), 0);
	assert_memory_equal(fx.buf + PS + 3, tmp, 4);
	assert_int_equal(iopt_access_rw_lockless, before + 2 * want);

	/* across two areas, into a read-only one, an unknown flag: locked */
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE + PS - 4, tmp, 8, 0,
					NULL), 0);
	assert_memory_equal(tmp, fx.buf + PS - 4, 8);
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE + 2 * PS, tmp, 1,
				   IOPT_ACCESS_RW_WRITE, NULL), -EPERM);
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE, tmp, 1, 1u << 4, NULL),
		-EOPNOTSUPP);
	assert_int_equal(iopt_access_rw_lockless, before + 2 * want);

	/* detached, the IOAS is out of reach again */
	iopt_access_detach(fx.drv.access);
	REFUSED(fx, iopt_access_rw(fx.drv.access, BASE, tmp, 1, 0, NULL),
		-ENOENT);
	assert_int_equal(iopt_access_rw_lockless, before + 2 * want);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
#else
	(void)state;
	skip();
#endif
}

/*
 * A thread that reads from another thread-exit destructor after the
 * library's own has run (its key is older, so it runs first) no longer has
 * a reader slot: reads lock, never share a slot a new thread may claim.
 */
struct exit_rw {
	struct fx *fx;
	pthread_key_t key;
	int rc;
	unsigned long lockless_before;	/* lock-free reads before exit */
	unsigned long lockless;	/* lock-free reads in the destructor */
};

static void exit_rw_destructor(void *arg)
{
	struct exit_rw *x = arg;
#ifndef NDEBUG
	unsigned long before = iopt_access_rw_lockless;
#endif
	char v[8];

	x->rc = iopt_access_rw(x->fx->drv.access, BASE, v, sizeof(v), 0, NULL);
#ifndef NDEBUG
	x->lockless = iopt_access_rw_lockless - before;
#endif
}

static void *exit_rw_thread(void *arg)
{
	struct exit_rw *x = arg;
	char v[8];

	/* take a slot, then exit with the destructor still to run */
	assert_int_equal(iopt_access_rw(x->fx->drv.access, BASE, v, 8, 0, NULL),
			 0);
#ifndef NDEBUG
	x->lockless_before = iopt_access_rw_lockless;
#endif
	assert_int_equal(pthread_setspecific(x->key, x), 0);
	return NULL;
}

static void access_rw_lockless_thread_exit(void **state)
{
	struct exit_rw x = { .rc = 1 };
	pthread_t thread;
	struct fx fx;

	(void)state;
	fx_init_attached(&fx, 1);
	x.fx = &fx;
	/* the library's key exists (attach enabled readers): ours is newer */
	assert_int_equal(pthread_key_create(&x.key, exit_rw_destructor), 0);
	assert_int_equal(pthread_create(&thread, NULL, exit_rw_thread, &x), 0);
	pthread_join(thread, NULL);
	assert_int_equal(x.rc, 0);
	/* the read before exit went lock-free, wherever that is enabled */
#ifndef NDEBUG
	assert_int_equal(x.lockless_before, iopt_readers_enable() ? 0 : 1);
#endif
	assert_int_equal(x.lockless, 0);
	pthread_key_delete(x.key);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
}

#ifndef NDEBUG
/* A device thread that has read once (so holds a reader slot) and waits. */
struct slot_holder {
	struct fx *fx;
	atomic_bool claimed;
	atomic_bool done;
};

static void *slot_holder_thread(void *arg)
{
	struct slot_holder *h = arg;
	char v[8];

	assert_int_equal(iopt_access_rw(h->fx->drv.access, BASE, v, 8, 0, NULL),
			 0);
	atomic_store(&h->claimed, true);
	flag_wait(&h->done, true, UINT_MAX);
	return NULL;
}

/* Barriers a map (*@map) and an unmap (returned) of a page beside BASE made. */
static unsigned long map_unmap_barriers(struct fx *fx, unsigned long *map)
{
	unsigned long before = atomic_load(&iopt_readers_barriers);

	map_at(fx->ioas, fx->buf, PS, BASE + 16 * PS, RW_RW);
	*map = atomic_load(&iopt_readers_barriers) - before;
	before += *map;
	assert_int_equal(iopt_ioas_unmap(fx->ioas, BASE + 16 * PS, PS, NULL), 0);
	return atomic_load(&iopt_readers_barriers) - before;
}
#endif

/*
 * A writer excludes lock-free readers with a barrier only when another
 * thread holds a reader slot: a single-threaded user (this thread reads
 * lock-free too) pays none; with a device thread that has read, every
 * write section pays one; once that thread has exited, none again.
 */
static void access_writer_barrier_only_for_others(void **state)
{
#ifndef NDEBUG
	struct slot_holder h = { 0 };
	unsigned long map, before;
	pthread_t thread;
	struct fx fx;
	char v[8];

	(void)state;
	if (iopt_readers_enable())
		skip();	/* valgrind: no lock-free readers, no barriers */
	fx_init_attached(&fx, 1);
	h.fx = &fx;
	assert_int_equal(iopt_access_rw(fx.drv.access, BASE, v, 8, 0, NULL), 0);
	assert_int_equal(map_unmap_barriers(&fx, &map), 0);
	assert_int_equal(map, 0);

	assert_int_equal(pthread_create(&thread, NULL, slot_holder_thread, &h),
			 0);
	flag_wait(&h.claimed, true, UINT_MAX);
	/*
	 * A map only adds, beside the readers; an unmap of one area excludes
	 * them once (to unpublish it and take it out of the index), of no
	 * area never.
	 */
	assert_int_equal(map_unmap_barriers(&fx, &map), 1);
	assert_int_equal(map, 0);
	before = atomic_load(&iopt_readers_barriers);
	assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE + 32 * PS, PS, NULL),
			 -ENOENT);
	/* nor do the ranges, which readers never read */
	assert_int_equal(iopt_ioas_reserve(fx.ioas, 0, PS - 1, &fx), 0);
	assert_int_equal(iopt_ioas_unreserve(fx.ioas, &fx), 0);
	assert_int_equal(iopt_ioas_allow_iovas(fx.ioas, NULL, 0), 0);
	assert_int_equal(atomic_load(&iopt_readers_barriers), before);
	atomic_store(&h.done, true);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(map_unmap_barriers(&fx, &map), 0);
	assert_int_equal(map, 0);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
#else
	(void)state;
	skip();
#endif
}

/* Lock-free readers against unmap, remap and detach: what they saw. */
struct rw_race {
	struct fx *fx;
	char *other;		/* the second buffer mapped at BASE */
	atomic_bool stop;
	atomic_ulong reads_ok;
	atomic_ulong reads_refused;
};

/*
 * Read 8 bytes at a varying offset of the four pages at BASE: each read
 * gives the bytes of one of the two buffers the IOAS maps there in turn,
 * or -ENOENT while they are unmapped; never anything else.
 */
static void rw_race_read(struct rw_race *r, uint64_t n)
{
	uint64_t off = (n * 4104) % (4 * PS - 8);
	char v[8];
	int rc = iopt_access_rw(r->fx->drv.access, BASE + off, v, 8, 0, NULL);

	if (rc) {
		assert_int_equal(rc, -ENOENT);
		atomic_fetch_add(&r->reads_refused, 1);
		return;
	}
	assert_true(!memcmp(v, r->fx->buf + off, 8) ||
		    !memcmp(v, r->other + off, 8));
	atomic_fetch_add(&r->reads_ok, 1);
}

static void *rw_race_reader(void *arg)
{
	struct rw_race *r = arg;
	uint64_t n = 0;

	while (!atomic_load(&r->stop))
		rw_race_read(r, n++);
	return NULL;
}

/* One read, in a thread that claims its reader slot for it. */
static void *rw_race_fresh_read(void *arg)
{
	struct rw_race *r = arg;

	rw_race_read(r, atomic_load(&r->reads_ok) +
			       atomic_load(&r->reads_refused));
	return NULL;
}

/*
 * New threads, one after another, each making one read: every read is a
 * thread's first section, right after it claims a slot, while the writer
 * (holding no slot) skips its barrier whenever it sees no slot claimed.
 * Reads must stay exact; the window of a claim racing a write section is
 * narrow, so most rounds do not meet one (a writer that always skipped is
 * caught by the persistent readers of access_race_unmap_rw instead).
 */
static void *rw_race_spawner(void *arg)
{
	struct rw_race *r = arg;
	pthread_t t;

	while (!atomic_load(&r->stop)) {
		assert_int_equal(pthread_create(&t, NULL, rw_race_fresh_read, r),
				 0);
		assert_int_equal(pthread_join(t, NULL), 0);
	}
	return NULL;
}

/*
 * Unmap and remap BASE (and now and then detach the domain, so reads go
 * locked) while @nthreads threads run @reader; each round waits for one
 * more good read.
 */
static void race_unmap_rw(void *(*reader)(void *), unsigned int nthreads)
{
	unsigned int rounds = iopt_test_quick() ? 50 : 300, i;
	struct rw_race r = { 0 };
	pthread_t threads[2];
	struct fx fx;

	fx_init_attached(&fx, 4);
	r.fx = &fx;
	r.other = buf_alloc(4 * PS);
	memset(r.other, 0x6b, 4 * PS);
	for (i = 0; i != nthreads; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, reader, &r),
				 0);
	for (i = 0; i != rounds; i++) {
		(void)race_wait(&r.reads_ok, atomic_load(&r.reads_ok) + 1);
		assert_int_equal(iopt_ioas_unmap(fx.ioas, BASE, 4 * PS, NULL), 0);
		map_at(fx.ioas, i & 1 ? fx.buf : r.other, 4 * PS, BASE, RW_RW);
		if (i % 16 == 15) {
			/* no domain: the readers' locked path, then back */
			iopt_ioas_detach_domain(fx.ioas, fx.domain);
			(void)race_wait(&r.reads_ok, atomic_load(&r.reads_ok) + 1);
			assert_int_equal(iopt_ioas_attach_domain(fx.ioas,
								 fx.domain), 0);
		}
	}
	atomic_store(&r.stop, true);
	for (i = 0; i != nthreads; i++)
		pthread_join(threads[i], NULL);
	print_message("unmap/rw race: %u unmaps, %lu reads, %lu refused\n",
		      rounds, atomic_load(&r.reads_ok),
		      atomic_load(&r.reads_refused));
	assert_true(atomic_load(&r.reads_ok) >= rounds);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	munmap(r.other, 4 * PS);
	fx_fini(&fx);
}

static void access_race_unmap_rw(void **state)
{
	(void)state;
	race_unmap_rw(rw_race_reader, 2);
}

/* The same with readers that are each a new thread's first section. */
static void access_race_fresh_readers(void **state)
{
	(void)state;
	race_unmap_rw(rw_race_spawner, 1);
}

#ifndef NDEBUG
/*
 * Devices read, pin and unpin the area at BASE with no lock while the IOAS
 * maps and unmaps pages all around it, near (reshaping the index nodes
 * above BASE's slot) and far (new nodes over the whole span), every other
 * map under a fail-nth of its allocations: maps leave the devices reading,
 * so each of their calls must succeed, on the right bytes, mostly lock-free,
 * and a read of a page being mapped finds it whole or not at all; no
 * allocation may be left (a failed insert's retired nodes included).
 */
struct beside {
	struct fx *fx;
	atomic_bool stop;
	atomic_ulong calls;
	atomic_ulong lockless;
};

/* Map @k's IOVA: odd ones right after BASE's area, even ones a GiB apart. */
static uint64_t beside_iova(uint64_t k)
{
	return k % 2 ? BASE + (4 + k) * PS : BASE + ((uint64_t)(k + 2) << 30);
}

static void *beside_device(void *arg)
{
	struct beside *b = arg;
	unsigned long before = iopt_access_rw_lockless + iopt_access_pin_lockless;
	struct iopt_access *access = b->fx->drv.access;
	uint64_t n;
	void *page;
	char v[8];
	int rc;

	for (n = 0; !atomic_load(&b->stop); n++) {
		uint64_t off = (n * 4104) % (4 * PS - 8);

		assert_int_equal(iopt_access_rw(access, BASE + off, v, 8, 0,
						NULL), 0);
		assert_memory_equal(v, b->fx->buf + off, 8);
		assert_int_equal(iopt_access_pin_pages(access, BASE + off / PS * PS,
						       PS, &page, NULL, 0), 0);
		assert_ptr_equal(page, b->fx->buf + off / PS * PS);
		iopt_access_unpin_pages(access, BASE + off / PS * PS, PS);
		/* a page being mapped: there whole, or not yet */
		rc = iopt_access_rw(access, beside_iova(n % 64) + off % PS / 8 * 8,
				    v, 8, 0, NULL);
		assert_true(rc == 0 || rc == -ENOENT);
		if (!rc)
			assert_memory_equal(v, b->fx->buf + off % PS / 8 * 8, 8);
		atomic_fetch_add(&b->calls, 1);
	}
	atomic_fetch_add(&b->lockless, iopt_access_rw_lockless +
					       iopt_access_pin_lockless - before);
	return NULL;
}

/* One page of fx->buf at @iova, under a fail-nth of @nth if not 0. */
static bool beside_map(struct fx *fx, uint64_t iova, unsigned long nth)
{
	int rc;

	if (nth)
		iopt_fail_nth_arm(nth);
	rc = iopt_ioas_map(fx->ioas, fx->buf, PS, &iova, RW_RW | FIXED);
	if (nth)
		iopt_fail_nth_disarm();
	assert_true(rc == 0 || (nth && rc == -ENOMEM));
	return !rc;
}

static void access_race_map_beside_readers(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 4 : 20, r, k, nfailed = 0;
	uint64_t rng = iopt_test_seed() ^ 0xbe51de;
	struct beside b = { 0 };
	pthread_t threads[2];
	struct fx fx;

	(void)state;
	if (iopt_readers_enable())
		skip();	/* valgrind: every read locks, nothing to race */
	fx_init_attached(&fx, 4);
	b.fx = &fx;
	for (k = 0; k != 2; k++)
		assert_int_equal(pthread_create(&threads[k], NULL, beside_device,
						&b), 0);
	(void)race_wait(&b.calls, 1);
	for (r = 0; r != rounds; r++) {
		bool mapped[64];

		for (k = 0; k != 64; k++) {
			uint64_t iova = beside_iova(k);
			unsigned long nth = k % 4 < 2 ?
				0 : 1 + iopt_test_rand(&rng) % 12;

			mapped[k] = beside_map(&fx, iova, nth);
			nfailed += !mapped[k];
		}
		for (k = 0; k != 64; k++)
			if (mapped[k])
				assert_int_equal(iopt_ioas_unmap(fx.ioas,
								 beside_iova(k),
								 PS, NULL), 0);
	}
	atomic_store(&b.stop, true);
	for (k = 0; k != 2; k++)
		assert_int_equal(pthread_join(threads[k], NULL), 0);
	print_message("map beside readers: %lu device calls, %lu lock-free, "
		      "%u maps refused\n", atomic_load(&b.calls),
		      atomic_load(&b.lockless), nfailed);
	assert_true(nfailed > 0);
	assert_true(atomic_load(&b.lockless) > 0);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
}
#endif

/*
 * The device keeps one pin of both pages and reads through the IOAS until
 * the callback of a replace takes the pin away; then it pins again at once,
 * and is refused (-ENOENT) until the access is on the new IOAS.
 */
static void *replace_device(void *arg)
{
	struct race *r = arg;
	struct drv *d = &r->fx->drv;
	uint64_t copied;
	void *pages[2];
	char tmp[16];
	int rc;

	while (!atomic_load(&r->stop)) {
		if (!drv_live_pins(d)) {
			rc = drv_pin(d, BASE, 2 * PS, 0, false, pages);
			if (rc) {
				assert_int_equal(rc, -ENOENT);	/* mid-replace */
				atomic_fetch_add(&r->pins_refused, 1);
				sched_yield();
				continue;
			}
			assert_ptr_equal(pages[0], r->fx->buf);
			atomic_fetch_add(&r->pins_ok, 1);
		}
		rc = iopt_access_rw(d->access, BASE + PS - 8, tmp, sizeof(tmp),
				    0, &copied);
		assert_true(rc == 0 || rc == -ENOENT);
		if (!rc)
			assert_memory_equal(tmp, r->fx->buf + PS - 8, 16);
		sched_yield();
	}
	return NULL;
}

#ifndef NDEBUG
/* A pin of BASE made with no driver lock, held inside its section. */
struct unlocked_pin {
	struct fx *fx;
	atomic_bool callback_started;
	int rc;
};

static void *unlocked_pin_thread(void *arg)
{
	struct unlocked_pin *u = arg;
	void *page;

	u->rc = iopt_access_pin_pages(u->fx->drv.access, BASE, PS, &page, NULL,
				      0);
	return NULL;
}

/* The change of IOAS that meets the pin: a detach, or a replace. */
struct ioas_change {
	struct iopt_access *access;
	struct iopt_ioas *to;	/* NULL: detach */
};

static void *ioas_change_thread(void *arg)
{
	struct ioas_change *c = arg;

	if (c->to)
		assert_int_equal(iopt_access_replace(c->access, c->to), 0);
	else
		iopt_access_detach(c->access);
	return NULL;
}

/* The callback of a driver that does not serialise its pins against it. */
static void unpin_unlocked(struct drv *d, uint64_t iova, uint64_t length)
{
	struct unlocked_pin *u = d->priv;

	(void)iova;
	(void)length;
	atomic_store(&u->callback_started, true);
	iopt_access_unpin_pages(d->access, BASE, PS);
}

static atomic_bool pin_section_open;

/* The hook: hold the pin inside its section until the test lets go. */
static void hold_pin_section(void)
{
	atomic_store(&in_pin_section, true);
	flag_wait(&pin_section_open, false, 2000);
}

/*
 * A pin in flight when a detach or replace starts lands before the
 * driver's callback is called, or fails: it never lands after, where the
 * driver cannot know of it. The test holds a lock-free pin inside its
 * section (a debug hook) while the change runs, and lets it go once the
 * callback has run or after 300 ms: the pin used to land after the
 * callback and stay in the old IOAS (unmap then -EDEADLOCK); a locked one,
 * holding ioas_lock, cannot.
 */
static void change_meets_pin_in_flight(bool replace)
{
	struct unlocked_pin u = { .rc = 1 };
	struct ioas_change change;
	struct iopt_ioas *to = NULL;
	pthread_t pin, changer;
	struct fx fx;

	fx_init_attached(&fx, 1);
	if (replace)
		assert_int_equal(iopt_ioas_alloc(fx.ctx, &to), 0);
	change = (struct ioas_change){ fx.drv.access, to };
	u.fx = &fx;
	fx.drv.priv = &u;
	fx.drv.during = unpin_unlocked;
	atomic_store(&in_pin_section, false);
	atomic_store(&pin_section_open, true);
	iopt_access_pin_lockless_hook = hold_pin_section;
	assert_int_equal(pthread_create(&pin, NULL, unlocked_pin_thread, &u), 0);
	flag_wait(&in_pin_section, true, 200);
	assert_int_equal(pthread_create(&changer, NULL, ioas_change_thread,
					&change), 0);
	/* a change that does not wait for the section calls back meanwhile */
	flag_wait(&u.callback_started, true, 300);
	atomic_store(&pin_section_open, false);
	assert_int_equal(pthread_join(pin, NULL), 0);
	assert_int_equal(pthread_join(changer, NULL), 0);
	iopt_access_pin_lockless_hook = NULL;

	assert_true(u.rc == 0 || u.rc == -ENOENT);
	assert_int_equal(area_accesses(fx.ioas, BASE), 0);
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	if (to) {
		iopt_access_detach(fx.drv.access);
		assert_int_equal(iopt_ioas_destroy(to), 0);
	}
	fx_fini(&fx);
}
#endif

static void access_detach_meets_pin_in_flight(void **state)
{
	(void)state;
#ifndef NDEBUG
	change_meets_pin_in_flight(false);
#else
	skip();
#endif
}

static void access_replace_meets_pin_in_flight(void **state)
{
	(void)state;
#ifndef NDEBUG
	change_meets_pin_in_flight(true);
#else
	skip();
#endif
}

/*
 * Runs in the replace's callback, after the driver unpinned: hold the
 * replace in its window until the device has tried to pin there and been
 * refused, so every round exercises it.
 */
static void during_replace_window(struct drv *d, uint64_t iova,
				  uint64_t length)
{
	struct race *r = d->priv;

	(void)iova;
	(void)length;
	assert_true(race_wait(&r->pins_refused,
			      atomic_load(&r->pins_refused) + 1));
}

/* Replace back and forth between two IOASes, each time over a live pin. */
static void access_replace_while_pinned(void **state)
{
	unsigned int rounds = iopt_test_quick() ? 50 : 1000, i;
	struct race r = { 0 };
	struct iopt_ioas *ioas[2];
	pthread_t thread;
	struct fx fx;

	(void)state;
	fx_init(&fx, 2);
	r.fx = &fx;
	ioas[0] = fx.ioas;
	assert_int_equal(iopt_ioas_alloc(fx.ctx, &ioas[1]), 0);
	map_at(ioas[0], fx.buf, 2 * PS, BASE, RW_RW);
	map_at(ioas[1], fx.buf, 2 * PS, BASE, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, ioas[0]), 0);
	fx.drv.priv = &r;
	fx.drv.during = during_replace_window;
	assert_int_equal(pthread_create(&thread, NULL, replace_device, &r), 0);
	for (i = 1; i <= rounds; i++) {
		struct iopt_ioas *old = ioas[(i - 1) & 1];

		/* the device's i-th pin, made on the IOAS it is attached to */
		assert_true(race_wait(&r.pins_ok, i));
		assert_int_equal(area_accesses(old, BASE), 1);
		assert_int_equal(iopt_access_replace(fx.drv.access,
						     ioas[i & 1]), 0);
		/* one callback, which took the live pin away in the old IOAS */
		assert_int_equal(atomic_load(&fx.drv.calls), i);
		assert_int_equal(atomic_load(&fx.drv.unpins), i);
		assert_int_equal(area_accesses(old, BASE), 0);
		assert_int_equal(ioas_alignment(old), 1);
	}
	atomic_store(&r.stop, true);
	pthread_join(thread, NULL);
	print_message("replace race: %u replaces, %lu pins, %lu refused\n",
		      rounds, atomic_load(&r.pins_ok),
		      atomic_load(&r.pins_refused));
	assert_true(atomic_load(&r.pins_refused) >= rounds);
	fx.drv.during = NULL;
	iopt_access_detach(fx.drv.access);
	assert_int_equal(area_accesses(ioas[rounds & 1], BASE), 0);
	assert_int_equal(iopt_ioas_destroy(ioas[1]), 0);
	fx_fini(&fx);
}

/* destroy waits for a callback running on another thread */
struct destroy_wait {
	struct fx *fx;
	atomic_int phase;
};

static void during_block(struct drv *d, uint64_t iova, uint64_t length)
{
	struct destroy_wait *w = d->priv;

	(void)iova;
	(void)length;
	d->during = NULL;
	atomic_store(&w->phase, 1);
	usleep(100 * 1000);
	atomic_store(&w->phase, 2);
}

static void *destroy_unmapper(void *arg)
{
	struct destroy_wait *w = arg;
	int rc = iopt_ioas_unmap(w->fx->ioas, BASE, PS, NULL);

	/*
	 * Once destroy starts the access is skipped: the retries succeed if
	 * its detach unpinned in time, else run out (as in the kernel).
	 */
	assert_true(rc == 0 || rc == -EDEADLOCK);
	return NULL;
}

static void access_destroy_waits_for_callback(void **state)
{
	struct destroy_wait w = { 0 };
	pthread_t thread;
	void *pages[1];
	struct fx fx;

	(void)state;
	fx_init(&fx, 1);
	w.fx = &fx;
	map_at(fx.ioas, fx.buf, PS, BASE, RW_RW);
	assert_int_equal(iopt_access_attach(fx.drv.access, fx.ioas), 0);
	fx.drv.mode = DRV_IGNORE;	/* the pin stays until detach */
	assert_int_equal(drv_pin(&fx.drv, BASE, PS, 0, false, pages), 0);
	fx.drv.priv = &w;
	fx.drv.during = during_block;
	assert_int_equal(pthread_create(&thread, NULL, destroy_unmapper, &w), 0);
	while (atomic_load(&w.phase) == 0)
		usleep(1000);
	fx.drv.mode = DRV_UNPIN;	/* detach's callback unpins */
	iopt_access_destroy(fx.drv.access);
	assert_int_equal(atomic_load(&w.phase), 2);
	fx.drv.access = NULL;
	pthread_join(thread, NULL);
	assert_false(host_pinned(fx.buf));
	assert_int_equal(iopt_ioas_unmap_all(fx.ioas, NULL), 0);
	fx_fini(&fx);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(access_create_args),
	cmocka_unit_test(access_attach_rules),
	cmocka_unit_test(access_pin_errors),
	cmocka_unit_test(access_pin_outputs),
	cmocka_unit_test(access_pin_refcount),
	cmocka_unit_test(access_unpin_mismatch),
	cmocka_unit_test(access_unmap_callback),
	cmocka_unit_test(access_unmap_deadlock),
	cmocka_unit_test(access_unmap_half_unpinned),
	cmocka_unit_test(access_unmap_callback_reenters),
	cmocka_unit_test(access_internal_locks),
	cmocka_unit_test(access_replace),
	cmocka_unit_test(access_alignment),
	cmocka_unit_test(access_rw_offsets_plain),
	cmocka_unit_test(access_rw_offsets_pinned),
	cmocka_unit_test(access_rw_offsets_domain),
	cmocka_unit_test(access_rw_offsets_two_areas),
	cmocka_unit_test(access_rw_offsets_subpage),
	cmocka_unit_test(access_rw_offsets_file),
	cmocka_unit_test(access_rw_offsets_file_domain),
	cmocka_unit_test(access_rw_tiers),
	cmocka_unit_test(access_rw_errors),
	cmocka_unit_test(access_fail_nth),
	cmocka_unit_test(access_pin_map_in_flight),
	cmocka_unit_test(access_race_unmap_pin),
	cmocka_unit_test(access_pin_lockless_when),
	cmocka_unit_test(access_rw_lockless_when),
	cmocka_unit_test(access_rw_lockless_thread_exit),
	cmocka_unit_test(access_writer_barrier_only_for_others),
	cmocka_unit_test(access_race_unmap_rw),
	cmocka_unit_test(access_race_fresh_readers),
#ifndef NDEBUG
	cmocka_unit_test(access_race_map_beside_readers),
#endif
	cmocka_unit_test(access_replace_while_pinned),
	cmocka_unit_test(access_destroy_waits_for_callback),
	cmocka_unit_test(access_detach_meets_pin_in_flight),
	cmocka_unit_test(access_replace_meets_pin_in_flight),
};

IOPT_TEST_MAIN(tests)
