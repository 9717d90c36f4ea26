/* SPDX-License-Identifier: MIT */
/*
 * model.h - test support for the reliability suites (fail-nth, fuzzing,
 * stress): an access driver that keeps the books a real one must, and a
 * brute-force reference model of IOASes, domains and accesses.
 *
 * The driver (struct model_drv) records every pin it holds and its unmap
 * callback unpins each recorded pin that intersects the range, through the
 * library (re-entering it, as the contract allows). It pins, unpins and
 * records under one lock that the callback also takes, so a callback never
 * misses a pin the library counts (docs/reliability.md, Stress); that makes
 * it safe for the stress test to pin from one thread while others unmap.
 *
 * The model (struct model) is what the fuzzer compares libiopt with. It is
 * written for obviousness, not speed: flat arrays indexed by IOVA page (one
 * entry per page of a small IOVA window), no trees, no sharing;
 * each operation is the specification's checks in order (iopt-semantics.md
 * §2-3), returning the errno the library must return. It models the state a
 * user can observe: which source byte each IOVA maps and with which prot and
 * area boundaries, reservations, allowed ranges, the alignment, which domains
 * are attached, the accesses' pins, and what a device can reach.
 */
#ifndef IOPT_TEST_MODEL_H
#define IOPT_TEST_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iopt_access;

/* ---- the access driver ---- */

#define MODEL_DRV_MAX_PINS 64

/* One pin, as the driver records it and the model predicts it. */
struct model_pin {
	uint64_t iova;
	uint64_t length;
};

/**
 * struct model_drv - an access driver that tracks its pins.
 * @access: the access (set by the user after iopt_access_create()).
 * @lock: guards @pins, @npins and @callbacks; held across every pin and
 *	   unpin call into the library.
 * @pins: live pins, unordered.
 * @npins: entries in @pins.
 * @callbacks: unmap callbacks received.
 * @keep: the callback unpins nothing (tests of -EDEADLOCK).
 */
struct model_drv {
	struct iopt_access *access;
	pthread_mutex_t lock;
	struct model_pin pins[MODEL_DRV_MAX_PINS];
	unsigned int npins;
	unsigned int callbacks;
	bool keep;
};

/* The ops to give iopt_access_create() with the driver as data. */
extern const struct iopt_access_driver_ops model_drv_ops;

void model_drv_init(struct model_drv *drv);
void model_drv_destroy(struct model_drv *drv);

/**
 * model_drv_pin() - iopt_access_pin_pages() and record the pin.
 * Return: the library's result; -ENOSPC (nothing called) when the table of
 * pins is full.
 */
int model_drv_pin(struct model_drv *drv, uint64_t iova, uint64_t length,
		  unsigned int flags);

/**
 * model_drv_unpin() - unpin the @i-th recorded pin (modulo the count).
 * Return: false when there was none.
 */
bool model_drv_unpin(struct model_drv *drv, unsigned int i);

/** model_drv_unpin_all() - unpin every recorded pin. */
void model_drv_unpin_all(struct model_drv *drv);

/** model_drv_count() - Return: live recorded pins. */
unsigned int model_drv_count(struct model_drv *drv);

/**
 * model_drv_unpin_range() - unpin the recorded pin (@iova, @length).
 * Return: false when no such pin is recorded (nothing is called).
 */
bool model_drv_unpin_range(struct model_drv *drv, uint64_t iova,
			   uint64_t length);

/* ---- the reference model ---- */

#define MODEL_PAGE	4096u
#define MODEL_PAGES	64	/* IOVA window [0, MODEL_PAGES pages) per IOAS */
#define MODEL_NIOAS	2
#define MODEL_NDOM	2
#define MODEL_NACC	2
#define MODEL_MAX_RANGES 16
#define MODEL_MAX_PINS	MODEL_DRV_MAX_PINS

/* Map flags, as iopt/ioas.h's */
#define MODEL_READ	(1u << 2)
#define MODEL_WRITE	(1u << 1)

struct model_range {
	uint64_t start;
	uint64_t last;
	int owner;		/* reservations: the owner cookie's number */
};

/*
 * One IOAS: per window page, the source page mapped there (-1: none), the
 * area and pages object it belongs to (0: none), its prot, and whether its
 * pages object was created writable. Reservations may lie outside the
 * window (the wall above it, domain apertures).
 */
struct model_ioas {
	int32_t src[MODEL_PAGES];
	uint32_t area[MODEL_PAGES];
	uint32_t obj[MODEL_PAGES];
	uint8_t prot[MODEL_PAGES];
	bool obj_writable[MODEL_PAGES];
	struct model_range allowed[MODEL_MAX_RANGES];
	unsigned int nallowed;
	struct model_range resv[MODEL_MAX_RANGES];
	unsigned int nresv;
	bool huge_off;
};

struct model {
	struct model_ioas ioas[MODEL_NIOAS];
	int dom_ioas[MODEL_NDOM];		/* -1: detached */
	uint64_t dom_aperture_last[MODEL_NDOM];	/* UINT64_MAX: full */
	bool dom_tracking[MODEL_NDOM];
	bool dom_write_reads[MODEL_NDOM];	/* a write-only map reads (VT-d) */
	bool dom_dirty[MODEL_NDOM][MODEL_PAGES];
	int acc_ioas[MODEL_NACC];		/* -1: detached */
	bool acc_internal[MODEL_NACC];		/* IOPT_ACCESS_INTERNAL */
	struct model_pin pins[MODEL_NACC][MODEL_MAX_PINS];
	unsigned int npins[MODEL_NACC];
	uint32_t next_id;
	uint64_t (*src_addr)(int32_t src);	/* auto-IOVA source address */
};

/*
 * Every function applies one operation to the model and returns the errno
 * libiopt must return (0 or negative). IOVAs and lengths are bytes but the
 * model only knows whole pages of the window: the fuzzer stays inside it.
 */
void model_init(struct model *m, uint64_t (*src_addr)(int32_t src));
int model_map(struct model *m, int io, int32_t src, uint64_t length,
	      uint64_t *iova, bool fixed, unsigned int prot, bool writable);
int model_copy(struct model *m, int dst, uint64_t *dst_iova, bool fixed,
	       int src, uint64_t src_iova, uint64_t length, unsigned int prot);
int model_unmap(struct model *m, int io, uint64_t iova, uint64_t length,
		uint64_t *unmapped);
int model_unmap_all(struct model *m, int io, uint64_t *unmapped);
int model_allow(struct model *m, int io, const struct model_range *r,
		unsigned int n);
int model_reserve(struct model *m, int io, uint64_t start, uint64_t last,
		  int owner);
void model_unreserve(struct model *m, int io, int owner);
int model_cut(struct model *m, int io, uint64_t iova);
int model_set_huge_pages(struct model *m, int io, bool on);
int model_attach(struct model *m, int io, int dom);
void model_detach(struct model *m, int io, int dom);
int model_acc_attach(struct model *m, int acc, int io);
int model_acc_replace(struct model *m, int acc, int io);
void model_acc_detach(struct model *m, int acc);
int model_pin(struct model *m, int acc, uint64_t iova, uint64_t length,
	      bool write);
void model_unpin(struct model *m, int acc, unsigned int i);
int model_rw(struct model *m, int acc, uint64_t iova, uint64_t length,
	     bool write, uint64_t *copied);
int model_dirty_enable(struct model *m, int io, int dom, bool on);
int model_dirty_read(struct model *m, int io, int dom, uint64_t iova,
		     uint64_t length, bool no_clear, uint64_t *bitmap);
uint64_t model_dma(struct model *m, int dom, uint64_t iova, uint64_t length,
		   bool write);

/* Observable state. */
uint64_t model_alignment(const struct model *m, int io);
/*
 * Bytes of [iova, iova + len) before the first unmapped byte or the first
 * whose prot has none of the @need bits.
 */
uint64_t model_reach(const struct model *m, int io, uint64_t iova,
		     uint64_t length, unsigned int need);
/* Pages each context must hold pinned (one context for everything). */
uint64_t model_pinned_pages(const struct model *m);
/* The usable ranges (complement of reservations); Return: their number. */
size_t model_iova_ranges(const struct model *m, int io,
			 struct model_range *out, size_t cap);

#endif /* IOPT_TEST_MODEL_H */
