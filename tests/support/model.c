/* SPDX-License-Identifier: MIT */
/*
 * model.c - the tracking access driver and the reference model (model.h).
 */
#include "model.h"

#include <errno.h>
#include <string.h>

#include <iopt/access.h>

/* ---- the access driver ---- */

/* Do [s1, l1] and [s2, l2] (inclusive lasts) share a byte? */
static bool meet(uint64_t s1, uint64_t l1, uint64_t s2, uint64_t l2)
{
	return s1 <= l2 && s2 <= l1;
}

/* Unpin recorded pin @i under the lock. */
static void drv_unpin_locked(struct model_drv *drv, unsigned int i)
{
	iopt_access_unpin_pages(drv->access, drv->pins[i].iova,
				drv->pins[i].length);
	drv->pins[i] = drv->pins[--drv->npins];
}

/*
 * Unpin, under the driver's lock, every recorded pin meeting [iova, iova +
 * length). Every pin and unpin of the driver runs under that lock, so the
 * library's count and the driver's books never disagree while a callback
 * looks at them: otherwise an unmap could retry past its limit while another
 * thread sits between its unpin and its record.
 */
static void model_drv_unmap(void *data, uint64_t iova, uint64_t length)
{
	struct model_drv *drv = data;
	unsigned int i = 0;

	pthread_mutex_lock(&drv->lock);
	drv->callbacks++;
	while (!drv->keep && i < drv->npins) {
		const struct model_pin *pin = &drv->pins[i];

		if (meet(pin->iova, pin->iova + (pin->length - 1), iova,
			 iova + (length - 1)))
			drv_unpin_locked(drv, i);
		else
			i++;
	}
	pthread_mutex_unlock(&drv->lock);
}

const struct iopt_access_driver_ops model_drv_ops = {
	.needs_pin_pages = true,
	.unmap = model_drv_unmap,
};

void model_drv_init(struct model_drv *drv)
{
	memset(drv, 0, sizeof(*drv));
	pthread_mutex_init(&drv->lock, NULL);
}

void model_drv_destroy(struct model_drv *drv)
{
	pthread_mutex_destroy(&drv->lock);
}

/*
 * The pin and its record happen under the driver's lock, which the unmap
 * callback also takes: a callback can then never miss a pin that the library
 * already counts (it waits for the record), which is what a real driver must
 * guarantee for unmap to make progress.
 */
int model_drv_pin(struct model_drv *drv, uint64_t iova, uint64_t length,
		  unsigned int flags)
{
	int rc = -ENOSPC;

	pthread_mutex_lock(&drv->lock);
	if (drv->npins != MODEL_DRV_MAX_PINS)
		rc = iopt_access_pin_pages(drv->access, iova, length, NULL,
					   NULL, flags);
	if (!rc)
		drv->pins[drv->npins++] = (struct model_pin){ iova, length };
	pthread_mutex_unlock(&drv->lock);
	return rc;
}

bool model_drv_unpin_range(struct model_drv *drv, uint64_t iova,
			   uint64_t length)
{
	unsigned int i;
	bool found = false;

	pthread_mutex_lock(&drv->lock);
	for (i = 0; i != drv->npins && !found; i++)
		found = drv->pins[i].iova == iova &&
			drv->pins[i].length == length;
	if (found)
		drv_unpin_locked(drv, i - 1);
	pthread_mutex_unlock(&drv->lock);
	return found;
}

bool model_drv_unpin(struct model_drv *drv, unsigned int i)
{
	bool found;

	pthread_mutex_lock(&drv->lock);
	found = drv->npins != 0;
	if (found)
		drv_unpin_locked(drv, i % drv->npins);
	pthread_mutex_unlock(&drv->lock);
	return found;
}

void model_drv_unpin_all(struct model_drv *drv)
{
	while (model_drv_unpin(drv, 0))
		;
}

unsigned int model_drv_count(struct model_drv *drv)
{
	unsigned int n;

	pthread_mutex_lock(&drv->lock);
	n = drv->npins;
	pthread_mutex_unlock(&drv->lock);
	return n;
}

/* ---- the reference model ---- */

#define PG MODEL_PAGE

/* [iova, iova + length) as window pages; false when it leaves the window. */
static bool in_window(uint64_t iova, uint64_t length)
{
	return length && iova < (uint64_t)MODEL_PAGES * PG &&
	       length <= (uint64_t)MODEL_PAGES * PG - iova;
}

void model_init(struct model *m, uint64_t (*src_addr)(int32_t src))
{
	memset(m, 0, sizeof(*m));
	for (int io = 0; io != MODEL_NIOAS; io++) {
		memset(m->ioas[io].src, 0xff, sizeof(m->ioas[io].src));
		/* the wall: nothing beyond the window is ever mapped */
		m->ioas[io].resv[0] = (struct model_range){
			(uint64_t)MODEL_PAGES * PG, UINT64_MAX, -1 };
		m->ioas[io].nresv = 1;
	}
	for (int d = 0; d != MODEL_NDOM; d++) {
		m->dom_ioas[d] = -1;
		m->dom_aperture_last[d] = UINT64_MAX;
	}
	for (int a = 0; a != MODEL_NACC; a++)
		m->acc_ioas[a] = -1;
	m->next_id = 1;
	m->src_addr = src_addr;
}

static bool has_domain(const struct model *m, int io)
{
	for (int d = 0; d != MODEL_NDOM; d++)
		if (m->dom_ioas[d] == io)
			return true;
	return false;
}

uint64_t model_alignment(const struct model *m, int io)
{
	bool page = m->ioas[io].huge_off || has_domain(m, io);

	for (int a = 0; a != MODEL_NACC; a++)
		page |= m->acc_ioas[a] == io;
	return page ? PG : 1;
}

static bool hits_resv(const struct model_ioas *s, uint64_t start, uint64_t last)
{
	for (unsigned int i = 0; i != s->nresv; i++)
		if (meet(s->resv[i].start, s->resv[i].last, start, last))
			return true;
	return false;
}

static bool hits_allowed(const struct model_ioas *s, uint64_t start,
			 uint64_t last)
{
	for (unsigned int i = 0; i != s->nallowed; i++)
		if (meet(s->allowed[i].start, s->allowed[i].last, start, last))
			return true;
	return false;
}

/* Any area page in [start, last] (clipped to the window)? */
static bool hits_area(const struct model_ioas *s, uint64_t start, uint64_t last)
{
	for (uint64_t p = start / PG; p < MODEL_PAGES && p <= last / PG; p++)
		if (s->src[p] >= 0)
			return true;
	return false;
}

/*
 * Is [start, last] covered by the union of the allowed ranges? The kernel
 * walks allowed spans, where abutting ranges merge into one.
 */
static bool inside_allowed(const struct model_ioas *s, uint64_t start,
			   uint64_t last)
{
	uint64_t at = start;

	if (!s->nallowed)
		return true;
	for (;;) {
		unsigned int i;

		for (i = 0; i != s->nallowed; i++)
			if (s->allowed[i].start <= at && at <= s->allowed[i].last)
				break;
		if (i == s->nallowed)
			return false;
		if (s->allowed[i].last >= last)
			return true;
		at = s->allowed[i].last + 1;
	}
}

/* The kernel's auto IOVA: lowest aligned free fit, never page 0. */
static int model_alloc_iova(const struct model *m, int io, uint64_t addr,
			    uint64_t length, uint64_t *iova)
{
	const struct model_ioas *s = &m->ioas[io];
	uint64_t align = 1;

	while (align < length)
		align <<= 1;
	if (addr && (addr & -addr) < align)
		align = addr & -addr;
	if (align > (UINT64_C(1) << 21))
		align = UINT64_C(1) << 21;
	if (align < model_alignment(m, io))
		return -EINVAL;
	for (uint64_t c = align < PG ? PG : align;
	     c + length <= (uint64_t)MODEL_PAGES * PG; c += align) {
		if (!hits_resv(s, c, c + length - 1) &&
		    !hits_area(s, c, c + length - 1) &&
		    inside_allowed(s, c, c + length - 1)) {
			*iova = c;
			return 0;
		}
	}
	return -ENOSPC;
}

/* The destination checks of map and copy, in the kernel's order. */
static int model_place(const struct model *m, int io, uint64_t *iova,
		       bool fixed, uint64_t addr, uint64_t length)
{
	const struct model_ioas *s = &m->ioas[io];

	if (length % model_alignment(m, io))
		return -EINVAL;
	if (!fixed)
		return model_alloc_iova(m, io, addr, length, iova);
	if (*iova % model_alignment(m, io))
		return -EINVAL;
	if (*iova + (length - 1) < *iova)
		return -EOVERFLOW;
	if (hits_resv(s, *iova, *iova + length - 1))
		return -EINVAL;
	if (hits_area(s, *iova, *iova + length - 1))
		return -EEXIST;
	return 0;
}

static int check_prot(unsigned int prot)
{
	return prot & (MODEL_READ | MODEL_WRITE) ? 0 : -EINVAL;
}

int model_map(struct model *m, int io, int32_t src, uint64_t length,
	      uint64_t *iova, bool fixed, unsigned int prot, bool writable)
{
	struct model_ioas *s = &m->ioas[io];
	uint32_t id = m->next_id++;
	int rc = check_prot(prot);

	if (!rc && !length)
		rc = -EINVAL;
	if (!rc)
		rc = model_place(m, io, iova, fixed, m->src_addr(src), length);
	if (rc)
		return rc;
	for (uint64_t i = 0; i != length / PG; i++) {
		uint64_t p = *iova / PG + i;

		s->src[p] = src + (int32_t)i;
		s->area[p] = id;
		s->obj[p] = id;
		s->prot[p] = (uint8_t)prot;
		s->obj_writable[p] = writable;
	}
	return 0;
}

int model_copy(struct model *m, int dst, uint64_t *dst_iova, bool fixed,
	       int src, uint64_t src_iova, uint64_t length, unsigned int prot)
{
	struct model_ioas *d = &m->ioas[dst], *s = &m->ioas[src];
	struct model_ioas from;
	uint64_t sp = src_iova / PG, n = length / PG;
	uint32_t id = 0;
	int rc = check_prot(prot);

	if (rc)
		return rc;
	if (!length)
		return -EINVAL;
	if (!in_window(src_iova, length))
		return -ENOENT;
	for (uint64_t i = 0; i != n; i++)
		if (s->src[sp + i] < 0)
			return -ENOENT;
	from = *s;	/* the source may be the destination */
	rc = model_place(m, dst, dst_iova, fixed,
			 m->src_addr(from.src[sp]), length);
	if (rc)
		return rc;
	for (uint64_t i = 0; i != n; i++)
		if ((prot & MODEL_WRITE) && !from.obj_writable[sp + i])
			return -EPERM;
	for (uint64_t i = 0; i != n; i++) {
		uint64_t p = *dst_iova / PG + i;

		/* one destination area per source area crossed */
		if (!i || from.area[sp + i] != from.area[sp + i - 1])
			id = m->next_id++;
		d->src[p] = from.src[sp + i];
		d->area[p] = id;
		d->obj[p] = from.obj[sp + i];
		d->prot[p] = (uint8_t)prot;
		d->obj_writable[p] = from.obj_writable[sp + i];
	}
	return 0;
}

/* First and last window page of the area holding page @p. */
static void area_bounds(const struct model_ioas *s, uint64_t p, uint64_t *first,
			uint64_t *last)
{
	*first = p;
	while (*first && s->src[*first - 1] >= 0 &&
	       s->area[*first - 1] == s->area[p])
		(*first)--;
	*last = p;
	while (*last + 1 != MODEL_PAGES && s->src[*last + 1] >= 0 &&
	       s->area[*last + 1] == s->area[p])
		(*last)++;
}

/*
 * Drop the pins of @io's accesses that meet [start, last] (the callback);
 * internal accesses have none.
 */
static void drop_pins(struct model *m, int io, uint64_t start, uint64_t last)
{
	for (int a = 0; a != MODEL_NACC; a++) {
		unsigned int i = 0;

		if (m->acc_ioas[a] != io || m->acc_internal[a])
			continue;
		while (i < m->npins[a]) {
			struct model_pin *pin = &m->pins[a][i];

			if (meet(pin->iova, pin->iova + pin->length - 1, start,
				 last))
				*pin = m->pins[a][--m->npins[a]];
			else
				i++;
		}
	}
}

static void remove_area(struct model *m, int io, uint64_t first,
			uint64_t last)
{
	struct model_ioas *s = &m->ioas[io];

	drop_pins(m, io, first * PG, last * PG + PG - 1);
	for (uint64_t p = first; p <= last; p++) {
		s->src[p] = -1;
		s->area[p] = s->obj[p] = 0;
		s->prot[p] = 0;
		s->obj_writable[p] = false;
		for (int d = 0; d != MODEL_NDOM; d++)
			if (m->dom_ioas[d] == io)
				m->dom_dirty[d][p] = false;
	}
}

/*
 * Do pins of @io's accesses meet the area [first, last] (its num_accesses),
 * or with @locks_only those of internal accesses (its num_locks)?
 */
static bool area_pinned(const struct model *m, int io, uint64_t first,
			uint64_t last, bool locks_only)
{
	for (int a = 0; a != MODEL_NACC; a++) {
		if (m->acc_ioas[a] != io || (locks_only && !m->acc_internal[a]))
			continue;
		for (unsigned int i = 0; i != m->npins[a]; i++) {
			const struct model_pin *pin = &m->pins[a][i];

			if (meet(pin->iova, pin->iova + pin->length - 1,
				 first * PG, last * PG + PG - 1))
				return true;
		}
	}
	return false;
}

/*
 * Whole areas inside [iova, last], lowest first: -EBUSY at one an internal
 * access pins, -ENOENT at one the range cuts.
 */
static int unmap_range(struct model *m, int io, uint64_t iova, uint64_t last,
		       uint64_t *unmapped)
{
	struct model_ioas *s = &m->ioas[io];
	uint64_t p, first_p, last_p;

	*unmapped = 0;
	for (p = iova / PG; p < MODEL_PAGES && p <= last / PG; p++) {
		if (s->src[p] < 0)
			continue;
		area_bounds(s, p, &first_p, &last_p);
		if (area_pinned(m, io, first_p, last_p, true))
			return -EBUSY;
		if (first_p * PG < iova || last_p * PG + PG - 1 > last)
			return -ENOENT;
		remove_area(m, io, first_p, last_p);
		*unmapped += (last_p - first_p + 1) * PG;
		p = last_p;
	}
	return 0;
}

int model_unmap(struct model *m, int io, uint64_t iova, uint64_t length,
		uint64_t *unmapped)
{
	int rc;

	*unmapped = 0;
	if (iova == 0 && length == UINT64_MAX)
		return model_unmap_all(m, io, unmapped);
	if (!length)
		return -EINVAL;
	if (iova + (length - 1) < iova)
		return -EOVERFLOW;
	rc = unmap_range(m, io, iova, iova + length - 1, unmapped);
	if (!rc && !*unmapped)
		rc = -ENOENT;
	return rc;
}

int model_unmap_all(struct model *m, int io, uint64_t *unmapped)
{
	return unmap_range(m, io, 0, UINT64_MAX, unmapped);
}

int model_allow(struct model *m, int io, const struct model_range *r,
		unsigned int n)
{
	struct model_ioas *s = &m->ioas[io];

	if (n > MODEL_MAX_RANGES)
		return -EINVAL;
	for (unsigned int i = 0; i != n; i++) {
		if (r[i].start >= r[i].last)
			return -EINVAL;
		for (unsigned int j = 0; j != i; j++)
			if (meet(r[i].start, r[i].last, r[j].start, r[j].last))
				return -EINVAL;
	}
	for (unsigned int i = 0; i != n; i++)
		if (hits_resv(s, r[i].start, r[i].last))
			return -EADDRINUSE;
	memcpy(s->allowed, r, n * sizeof(*r));
	s->nallowed = n;
	return 0;
}

int model_reserve(struct model *m, int io, uint64_t start, uint64_t last,
		  int owner)
{
	struct model_ioas *s = &m->ioas[io];

	if (start > last)
		return -EINVAL;
	if (hits_area(s, start, last) || hits_allowed(s, start, last))
		return -EADDRINUSE;
	if (s->nresv == MODEL_MAX_RANGES)
		return -ENOSPC;		/* the fuzzer never asks */
	s->resv[s->nresv++] = (struct model_range){ start, last, owner };
	return 0;
}

void model_unreserve(struct model *m, int io, int owner)
{
	struct model_ioas *s = &m->ioas[io];
	unsigned int i = 0;

	while (i < s->nresv) {
		if (s->resv[i].owner == owner)
			s->resv[i] = s->resv[--s->nresv];
		else
			i++;
	}
}

int model_cut(struct model *m, int io, uint64_t iova)
{
	struct model_ioas *s = &m->ioas[io];
	uint64_t p = iova / PG, first, last;
	uint32_t id;

	if (p >= MODEL_PAGES || s->src[p] < 0)
		return 0;
	area_bounds(s, p, &first, &last);
	if (iova == first * PG || iova == last * PG + PG - 1)
		return 0;
	if ((iova + 1) % model_alignment(m, io))
		return -EINVAL;
	if (area_pinned(m, io, first, last, false))
		return -EINVAL;
	if (has_domain(m, io) && !s->huge_off)
		return -EINVAL;
	id = m->next_id++;
	for (uint64_t q = p + 1; q <= last; q++)
		s->area[q] = id;
	return 0;
}

int model_set_huge_pages(struct model *m, int io, bool on)
{
	struct model_ioas *s = &m->ioas[io];

	if (on || s->huge_off) {
		s->huge_off = !on;
		return 0;
	}
	if (has_domain(m, io) && hits_area(s, 0, UINT64_MAX))
		return -EINVAL;
	s->huge_off = true;
	return 0;
}

int model_attach(struct model *m, int io, int dom)
{
	struct model_ioas *s = &m->ioas[io];
	uint64_t start = m->dom_aperture_last[dom] + 1;

	if (m->dom_ioas[dom] == io)
		return -EEXIST;
	if (m->dom_aperture_last[dom] != UINT64_MAX) {
		if (hits_area(s, start, UINT64_MAX) ||
		    hits_allowed(s, start, UINT64_MAX))
			return -EADDRINUSE;
		s->resv[s->nresv++] = (struct model_range){ start, UINT64_MAX,
							    100 + dom };
	}
	m->dom_ioas[dom] = io;
	memset(m->dom_dirty[dom], 0, sizeof(m->dom_dirty[dom]));
	return 0;
}

void model_detach(struct model *m, int io, int dom)
{
	if (m->dom_ioas[dom] != io)
		return;
	model_unreserve(m, io, 100 + dom);
	m->dom_ioas[dom] = -1;
	memset(m->dom_dirty[dom], 0, sizeof(m->dom_dirty[dom]));
}

int model_acc_attach(struct model *m, int acc, int io)
{
	if (m->acc_ioas[acc] >= 0)
		return -EINVAL;
	m->acc_ioas[acc] = io;
	return 0;
}

int model_acc_replace(struct model *m, int acc, int io)
{
	if (m->acc_ioas[acc] < 0)
		return -ENOENT;
	if (m->acc_ioas[acc] == io)
		return 0;
	m->npins[acc] = 0;
	m->acc_ioas[acc] = io;
	return 0;
}

void model_acc_detach(struct model *m, int acc)
{
	m->npins[acc] = 0;
	m->acc_ioas[acc] = -1;
}

/*
 * Walk [iova, iova + length) area by area as pin and rw do: -EPERM at the
 * first area whose prot forbids @need, -ENOENT at the first gap. *@done is
 * the bytes before the failing area or gap.
 */
static int walk_areas(const struct model *m, int io, uint64_t iova,
		      uint64_t length, unsigned int need, bool need_writable,
		      uint64_t *done)
{
	const struct model_ioas *s = &m->ioas[io];
	uint64_t last = iova + length - 1, at = iova;

	*done = 0;
	while (at <= last) {
		uint64_t p = at / PG, first_p, last_p, end;

		if (p >= MODEL_PAGES || s->src[p] < 0)
			return -ENOENT;
		area_bounds(s, p, &first_p, &last_p);
		if (!(s->prot[p] & need) ||
		    (need_writable && !s->obj_writable[p]))
			return -EPERM;
		end = last_p * PG + PG - 1;
		if (end >= last) {
			*done = length;
			return 0;
		}
		*done += end + 1 - at;
		at = end + 1;
	}
	return 0;
}

static int acc_begin(const struct model *m, int acc, uint64_t iova,
		     uint64_t length)
{
	if (!length)
		return -EINVAL;
	if (iova + (length - 1) < iova)
		return -EOVERFLOW;
	return m->acc_ioas[acc] < 0 ? -ENOENT : 0;
}

int model_pin(struct model *m, int acc, uint64_t iova, uint64_t length,
	      bool write)
{
	uint64_t done;
	int rc = acc_begin(m, acc, iova, length);

	if (!rc && m->npins[acc] == MODEL_MAX_PINS)
		return -ENOSPC;		/* the driver's table is full */
	if (!rc)
		rc = walk_areas(m, m->acc_ioas[acc], iova, length,
				write ? MODEL_WRITE : MODEL_READ, write, &done);
	if (rc)
		return rc;
	m->pins[acc][m->npins[acc]++] = (struct model_pin){ iova, length };
	return 0;
}

void model_unpin(struct model *m, int acc, unsigned int i)
{
	if (i < m->npins[acc])
		m->pins[acc][i] = m->pins[acc][--m->npins[acc]];
}

int model_rw(struct model *m, int acc, uint64_t iova, uint64_t length,
	     bool write, uint64_t *copied)
{
	int rc = acc_begin(m, acc, iova, length);

	*copied = 0;
	if (rc)
		return rc;
	return walk_areas(m, m->acc_ioas[acc], iova, length,
			  write ? MODEL_WRITE : MODEL_READ, write, copied);
}

int model_dirty_enable(struct model *m, int io, int dom, bool on)
{
	if (m->dom_ioas[dom] != io)
		return -EINVAL;
	if (on)
		memset(m->dom_dirty[dom], 0, sizeof(m->dom_dirty[dom]));
	m->dom_tracking[dom] = on;
	return 0;
}

int model_dirty_read(struct model *m, int io, int dom, uint64_t iova,
		     uint64_t length, bool no_clear, uint64_t *bitmap)
{
	const struct model_ioas *s = &m->ioas[io];
	int rc = 0;

	if (!length || iova % PG || length % PG)
		return -EINVAL;
	if (iova + (length - 1) < iova)
		return -EOVERFLOW;
	if (m->dom_ioas[dom] != io)
		return -EINVAL;
	/* the domain refuses a read while tracking is off (docs/dirty.md) */
	if (!m->dom_tracking[dom])
		return -EINVAL;
	for (uint64_t i = 0; i != length / PG; i++) {
		uint64_t p = iova / PG + i;

		if (p >= MODEL_PAGES || s->src[p] < 0) {
			rc = -EINVAL;
			break;
		}
		if (m->dom_dirty[dom][p])
			bitmap[i / 64] |= UINT64_C(1) << (i % 64);
		if (!no_clear)
			m->dom_dirty[dom][p] = false;
	}
	return rc;
}

uint64_t model_reach(const struct model *m, int io, uint64_t iova,
		     uint64_t length, unsigned int need)
{
	const struct model_ioas *s = &m->ioas[io];
	uint64_t done = 0;

	while (done < length) {
		uint64_t p = (iova + done) / PG;
		uint64_t n = PG - (iova + done) % PG;

		if (p >= MODEL_PAGES || s->src[p] < 0 || !(s->prot[p] & need))
			break;
		done += n < length - done ? n : length - done;
	}
	return done;
}

uint64_t model_dma(struct model *m, int dom, uint64_t iova, uint64_t length,
		   bool write)
{
	int io = m->dom_ioas[dom];
	uint64_t done;

	if (io < 0)
		return 0;
	/* VT-d writes every leaf readable (pagetable-formats.md, Permissions) */
	done = model_reach(m, io, iova, length,
			   write ? MODEL_WRITE :
			   m->dom_write_reads[dom] ? MODEL_READ | MODEL_WRITE :
						     MODEL_READ);
	if (write && m->dom_tracking[dom] && done)
		for (uint64_t p = iova / PG; p <= (iova + done - 1) / PG; p++)
			m->dom_dirty[dom][p] = true;
	return done;
}

/* (pages object, source page) pairs seen so far. */
struct pin_set {
	uint64_t keys[MODEL_NIOAS * MODEL_PAGES * (1 + MODEL_NACC)];
	size_t n;
};

static void pin_set_add(struct pin_set *set, uint32_t obj, int32_t src)
{
	uint64_t key = (uint64_t)obj << 32 | (uint32_t)src;

	for (size_t i = 0; i != set->n; i++)
		if (set->keys[i] == key)
			return;
	set->keys[set->n++] = key;
}

uint64_t model_pinned_pages(const struct model *m)
{
	static struct pin_set set;

	set.n = 0;
	for (int io = 0; io != MODEL_NIOAS; io++) {
		const struct model_ioas *s = &m->ioas[io];

		if (!has_domain(m, io))
			continue;
		for (int p = 0; p != MODEL_PAGES; p++)
			if (s->src[p] >= 0)
				pin_set_add(&set, s->obj[p], s->src[p]);
	}
	for (int a = 0; a != MODEL_NACC; a++) {
		const struct model_ioas *s;

		if (m->acc_ioas[a] < 0)
			continue;
		s = &m->ioas[m->acc_ioas[a]];
		for (unsigned int i = 0; i != m->npins[a]; i++) {
			const struct model_pin *pin = &m->pins[a][i];

			for (uint64_t p = pin->iova / PG;
			     p <= (pin->iova + pin->length - 1) / PG; p++)
				pin_set_add(&set, s->obj[p], s->src[p]);
		}
	}
	return set.n;
}

size_t model_iova_ranges(const struct model *m, int io,
			 struct model_range *out, size_t cap)
{
	const struct model_ioas *s = &m->ioas[io];
	uint64_t at = 0;
	size_t n = 0;

	/* walk up from @at, jumping over any reservation that covers it */
	for (;;) {
		uint64_t next = UINT64_MAX;
		bool covered = false;

		for (unsigned int i = 0; i != s->nresv; i++) {
			if (s->resv[i].start <= at && at <= s->resv[i].last) {
				covered = true;
				next = s->resv[i].last;
				break;
			}
		}
		if (covered) {
			if (next == UINT64_MAX)
				return n;
			at = next + 1;
			continue;
		}
		for (unsigned int i = 0; i != s->nresv; i++)
			if (s->resv[i].start > at && s->resv[i].start - 1 < next)
				next = s->resv[i].start - 1;
		if (n < cap)
			out[n] = (struct model_range){ at, next, 0 };
		n++;
		if (next == UINT64_MAX)
			return n;
		at = next + 1;
	}
}
