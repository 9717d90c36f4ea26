/* SPDX-License-Identifier: MIT */
/*
 * phys.c - simulated physical memory: the frame table and frame placement.
 *
 * Frames live in a window of at most 4 TiB (2^30 frames) at the top of the output
 * width. The window is cut into "gigs" of 2^18 frames (1 GiB), each gig into 512
 * "chunks" of 512 frames (2 MiB). A gig descriptor exists only while one of its
 * chunks is reserved and holds a pointer per chunk to a struct iopt_phys_chunk:
 * - a registry chunk (CONTIGUOUS, FOLIO) points into the pin registry's record
 *   of its host chunk: frame frame_base + (i << shift) resolves to host_base + i
 *   pages while bit i of the registry's pinned bitmap is set, so the frame table
 *   costs no per-page memory and pinning costs it no per-page write;
 * - a SCATTER chunk points to a leaf of host addresses owned here, one per even
 *   frame (the only ones used).
 * That is 4 KiB per gig in use plus, for scattered frames, 8 bytes per usable
 * frame of a pool chunk. Lookup is four dependent loads: gig, chunk, record,
 * bitmap word or host.
 *
 * Every gig serves one placement policy (its kind):
 * - CONTIG mirrors one host gig: host chunk c uses the gig's chunk c % 512, so a
 *   run is aligned like its host address modulo 1 GiB; neighbouring host gigs go
 *   to neighbouring frame gigs when those are free, so a run crossing a 1 GiB
 *   boundary stays one run.
 * - FOLIO hands out odd chunk slots 1..509 only: a linear chunk (a 2 MiB host
 *   page) takes slot s and leaves s + 1 free; a strided one (4 KiB host pages)
 *   takes s and s + 1 and uses only their even frames. No two folio chunks are
 *   adjacent, none touches a neighbouring gig, so no run crosses 2 MiB, and a
 *   strided chunk has no run longer than one page.
 * - SCATTER chunks form a pool of single frames; only even frames are used (and
 *   never a gig's first frame), so no two scattered frames, and no scattered
 *   frame and a frame of another gig, are ever adjacent. The pool grows when half
 *   full, so a random pick succeeds in two tries on average.
 *
 * Invariants: a frame resolves only while its page is pinned; a chunk record is
 * unpublished before it is freed and only when none of its frames resolves, so
 * a lock-free reader can only reach freed memory by resolving an unpinned frame
 * while it is being unpinned, a caller bug.
 *
 * Locking: phys.mutex guards everything below except the atomics read by
 * iopt_phys_to_host(), which are written under it with release order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <assert.h>

#include "alloc.h"
#include "lock.h"
#include "phys.h"
#include "util.h"

#define GIG_CHUNKS		512u
#define MAX_GIGS		4096u
#define WINDOW_SHIFT		42	/* bytes: 4 TiB of frames at most */
#define FOLIO_SLOTS		255u	/* odd slots 1..509 */
#define SCATTER_PER_CHUNK	256u	/* even frames */
#define SEED_DEFAULT		0x9e3779b97f4a7c15ull

enum gig_kind {
	GIG_CONTIG,
	GIG_FOLIO,
	GIG_SCATTER,
};

/* A SCATTER chunk: its own host address per even frame. */
struct phys_leaf {
	struct iopt_phys_chunk chunk;			/* (c) no bitmap */
	uint32_t nset;					/* (p) resolving frames */
	_Atomic uintptr_t host[SCATTER_PER_CHUNK];	/* (p) frame 2i; 0: unset */
};

struct phys_gig {
	enum gig_kind kind;			/* (p) */
	uint64_t host_gig;			/* (p) CONTIG: host address >> 30 */
	uint32_t nchunks;			/* (p) reserved chunks */
	uint64_t reserved[GIG_CHUNKS / 64];	/* (p) bitmap of reserved slots */
	_Atomic(struct iopt_phys_chunk *) chunks[GIG_CHUNKS];	/* (p) */
};

/* Locking legend: (p) phys.mutex; (a) atomic, written under phys.mutex. */
static struct {
	struct iopt_mutex mutex;
	unsigned int width;		/* (p) */
	uint32_t gigs_end;		/* (p) one past the last gig in use */
	uint64_t nreserved;		/* (p) reserved chunks + scattered frames */
	uint64_t rng;			/* (p) SCATTER generator state */
	size_t bytes;			/* (p) heap in use */
	uint32_t *pool;			/* (p) SCATTER chunk ids: gig << 9 | slot */
	uint32_t pool_len;		/* (p) */
	uint32_t pool_cap;		/* (p) */
	uint64_t pool_used;		/* (p) scattered frames reserved */
} phys = {
	/* LEAF: taken under pages->mutex; it takes no other lock. */
	.mutex = { PTHREAD_MUTEX_INITIALIZER, { IOPT_LOCK_LEAF } },
	.width = IOPT_PHYS_WIDTH_DEFAULT,
	.rng = SEED_DEFAULT,
};

/* The window: frames [first_frame, first_frame + nframes). (a) */
static _Atomic uint64_t first_frame =
	((1ull << IOPT_PHYS_WIDTH_DEFAULT) - (1ull << WINDOW_SHIFT)) >>
	IOPT_PHYS_FRAME_SHIFT;
static _Atomic uint64_t nframes = 1ull << (WINDOW_SHIFT - IOPT_PHYS_FRAME_SHIFT);
static _Atomic(struct phys_gig *) gigs[MAX_GIGS];	/* (a) */

#define assert_locked() iopt_assert_held(&phys.mutex)

void iopt_phys_lock(void)
{
	iopt_mutex_lock(&phys.mutex);
}

void iopt_phys_unlock(void)
{
	iopt_mutex_unlock(&phys.mutex);
}

void *iopt_phys_to_host(uint64_t paddr)
{
	uint64_t frame = paddr >> IOPT_PHYS_FRAME_SHIFT;
	uint64_t idx = frame - atomic_load_explicit(&first_frame,
						    memory_order_relaxed);
	struct iopt_phys_chunk *chunk;
	struct phys_gig *gig;
	uintptr_t host;

	if (idx >= atomic_load_explicit(&nframes, memory_order_relaxed))
		return NULL;
	gig = atomic_load_explicit(&gigs[idx >> IOPT_PHYS_GIG_SHIFT],
				   memory_order_acquire);
	if (!gig)
		return NULL;
	chunk = atomic_load_explicit(
		&gig->chunks[(idx >> IOPT_PHYS_CHUNK_SHIFT) % GIG_CHUNKS],
		memory_order_acquire);
	if (!chunk)
		return NULL;
	if (chunk->pinned) {
		uint64_t off = frame - chunk->frame_base;
		uint64_t page = off >> chunk->shift;

		if (off & ((1u << chunk->shift) - 1) ||
		    !(atomic_load_explicit(&chunk->pinned[page / 64],
					   memory_order_relaxed) >> (page % 64) & 1))
			return NULL;
		host = chunk->host_base + ((uintptr_t)page << IOPT_PHYS_FRAME_SHIFT);
	} else {
		uint32_t i = idx % IOPT_PHYS_CHUNK_FRAMES;

		if (i & 1)
			return NULL;
		host = atomic_load_explicit(
			&container_of(chunk, struct phys_leaf, chunk)->host[i / 2],
			memory_order_acquire);
		if (!host)
			return NULL;
	}
	return (void *)(host + (paddr & (IOPT_PHYS_FRAME_SIZE - 1)));
}

unsigned int iopt_phys_output_width(void)
{
	unsigned int bits;

	iopt_phys_lock();
	bits = phys.width;
	iopt_phys_unlock();
	return bits;
}

int iopt_phys_set_output_width(unsigned int bits)
{
	unsigned int window = IOPT_MIN(bits, WINDOW_SHIFT);
	int rc = 0;

	if (bits < IOPT_PHYS_WIDTH_MIN || bits > IOPT_PHYS_WIDTH_MAX)
		return -EINVAL;
	iopt_phys_lock();
	if (phys.nreserved) {
		rc = -EBUSY;
		goto out_unlock;
	}
	phys.width = bits;
	atomic_store(&first_frame, ((1ull << bits) - (1ull << window)) >>
				   IOPT_PHYS_FRAME_SHIFT);
	atomic_store(&nframes, 1ull << (window - IOPT_PHYS_FRAME_SHIFT));
out_unlock:
	iopt_phys_unlock();
	return rc;
}

int iopt_phys_set_seed(uint64_t seed)
{
	int rc = 0;

	iopt_phys_lock();
	if (phys.nreserved)
		rc = -EBUSY;
	else
		phys.rng = seed ? seed : SEED_DEFAULT;
	iopt_phys_unlock();
	return rc;
}

size_t iopt_phys_bytes_locked(void)
{
	assert_locked();
	return phys.bytes;
}

/* xorshift64*: deterministic for a seed and a sequence of calls. */
static uint64_t rng_next(void)
{
	uint64_t x = phys.rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	phys.rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t window_gigs(void)
{
	return (uint32_t)(atomic_load_explicit(&nframes, memory_order_relaxed) >>
			  IOPT_PHYS_GIG_SHIFT);
}

static struct phys_gig *gig_at(uint32_t g)
{
	return atomic_load_explicit(&gigs[g], memory_order_relaxed);
}

static uint64_t gig_first_frame(uint32_t g)
{
	return atomic_load_explicit(&first_frame, memory_order_relaxed) +
	       ((uint64_t)g << IOPT_PHYS_GIG_SHIFT);
}

static bool gig_free(uint32_t g)
{
	return g < window_gigs() && !gig_at(g);
}

static int gig_alloc(uint32_t g, enum gig_kind kind, uint64_t host_gig)
{
	struct phys_gig *gig = iopt_calloc(1, sizeof(*gig));

	if (!gig)
		return -ENOMEM;
	gig->kind = kind;
	gig->host_gig = host_gig;
	phys.bytes += sizeof(*gig);
	phys.gigs_end = IOPT_MAX(phys.gigs_end, g + 1);
	atomic_store_explicit(&gigs[g], gig, memory_order_release);
	return 0;
}

static void gig_free_if_empty(uint32_t g)
{
	struct phys_gig *gig = gig_at(g);

	if (gig->nchunks)
		return;
	atomic_store_explicit(&gigs[g], NULL, memory_order_release);
	iopt_free(gig);
	phys.bytes -= sizeof(*gig);
	while (phys.gigs_end && !gig_at(phys.gigs_end - 1))
		phys.gigs_end--;
}

/* Lowest gig index such that [g, g + span) are all free; -1 when none. */
static int64_t gig_find_free(uint32_t span)
{
	uint32_t limit = window_gigs();
	uint32_t g, n;

	for (g = 0; g < limit; g++) {
		for (n = 0; n < span && g + n < limit && !gig_at(g + n); n++)
			;
		if (n == span)
			return g;
		g += n;
	}
	return -1;
}

static int64_t gig_find_contig(uint64_t host_gig)
{
	uint32_t g;

	for (g = 0; g < phys.gigs_end; g++) {
		struct phys_gig *gig = gig_at(g);

		if (gig && gig->kind == GIG_CONTIG && gig->host_gig == host_gig)
			return g;
	}
	return -1;
}

/*
 * The frame gig for a CONTIG host gig: the one already mirroring it, else the
 * one after its lower neighbour's or before its upper neighbour's, else inside
 * the lowest free stretch long enough for the rest of the range being pinned
 * plus one free gig on each side.
 */
static int contig_gig_get(uint64_t host_gig, uint32_t span, uint32_t *out)
{
	int64_t g = gig_find_contig(host_gig);
	int rc;

	if (g >= 0)
		goto found;
	g = host_gig ? gig_find_contig(host_gig - 1) : -1;
	if (g >= 0 && gig_free((uint32_t)g + 1)) {
		g++;
		goto alloc;
	}
	g = gig_find_contig(host_gig + 1);
	if (g > 0 && gig_free((uint32_t)g - 1)) {
		g--;
		goto alloc;
	}
	/* Keep a free gig on either side, for neighbours pinned later. */
	g = gig_find_free(span + 2);
	if (g >= 0)
		g++;
	else
		g = gig_find_free(1);
	if (g < 0)
		return -ENOMEM;
alloc:
	rc = gig_alloc((uint32_t)g, GIG_CONTIG, host_gig);
	if (rc)
		return rc;
found:
	*out = (uint32_t)g;
	return 0;
}

static bool slot_reserved(const struct phys_gig *gig, uint32_t slot)
{
	return gig->reserved[slot / 64] & (1ull << (slot % 64));
}

/* A gig of @kind with a free slot among first, first + step, ... <= last. */
static int shared_gig_get(enum gig_kind kind, uint32_t first, uint32_t step,
			  uint32_t last, uint32_t *g_out, uint32_t *slot_out)
{
	uint32_t g, slot;
	int64_t fresh;
	int rc;

	for (g = 0; g < phys.gigs_end; g++) {
		struct phys_gig *gig = gig_at(g);

		if (!gig || gig->kind != kind)
			continue;
		for (slot = first; slot <= last; slot += step) {
			if (!slot_reserved(gig, slot)) {
				*g_out = g;
				*slot_out = slot;
				return 0;
			}
		}
	}
	fresh = gig_find_free(1);
	if (fresh < 0)
		return -ENOMEM;
	rc = gig_alloc((uint32_t)fresh, kind, 0);
	if (rc)
		return rc;
	*g_out = (uint32_t)fresh;
	*slot_out = first;
	return 0;
}

/* Publishes @chunk as the record of (g, slot). */
static void chunk_install(uint32_t g, uint32_t slot, struct iopt_phys_chunk *chunk)
{
	struct phys_gig *gig = gig_at(g);

	gig->reserved[slot / 64] |= 1ull << (slot % 64);
	gig->nchunks++;
	phys.nreserved++;
	atomic_store_explicit(&gig->chunks[slot], chunk, memory_order_release);
}

static uint64_t chunk_first_frame(uint32_t g, uint32_t slot)
{
	return gig_first_frame(g) + ((uint64_t)slot << IOPT_PHYS_CHUNK_SHIFT);
}

int iopt_phys_chunk_reserve_locked(enum iopt_phys_model model, bool host_huge,
				   uint64_t host_chunk, uint64_t run_last_chunk,
				   struct iopt_phys_chunk *chunk)
{
	uint32_t g, slot;
	int rc;

	assert_locked();
	if (model == IOPT_PHYS_CONTIGUOUS) {
		uint64_t host_gig = host_chunk / GIG_CHUNKS;
		uint64_t span = run_last_chunk / GIG_CHUNKS - host_gig + 1;

		rc = contig_gig_get(host_gig, (uint32_t)IOPT_MIN(span, MAX_GIGS),
				    &g);
		slot = (uint32_t)(host_chunk % GIG_CHUNKS);
		assert(rc || !slot_reserved(gig_at(g), slot));
		chunk->shift = 0;
	} else {
		/* A strided chunk's second slot is free: see the file comment. */
		rc = shared_gig_get(GIG_FOLIO, 1, 2, 2 * FOLIO_SLOTS - 1, &g,
				    &slot);
		chunk->shift = host_huge ? 0 : 1;
	}
	if (rc)
		return rc;
	chunk->frame_base = chunk_first_frame(g, slot);
	chunk_install(g, slot, chunk);
	if (chunk->shift)
		chunk_install(g, slot + 1, chunk);
	return 0;
}

/* Gig index, slot and chunk record of a frame inside the window. */
static struct iopt_phys_chunk *frame_chunk(uint64_t frame, uint32_t *g,
					   uint32_t *slot)
{
	uint64_t idx = frame - atomic_load_explicit(&first_frame,
						    memory_order_relaxed);

	*g = (uint32_t)(idx >> IOPT_PHYS_GIG_SHIFT);
	*slot = (uint32_t)((idx >> IOPT_PHYS_CHUNK_SHIFT) % GIG_CHUNKS);
	return atomic_load_explicit(&gig_at(*g)->chunks[*slot],
				    memory_order_relaxed);
}

/* Unpublishes the record of (g, slot), freeing the gig when it was the last. */
static void chunk_uninstall(uint32_t g, uint32_t slot)
{
	struct phys_gig *gig = gig_at(g);

	atomic_store_explicit(&gig->chunks[slot], NULL, memory_order_release);
	gig->reserved[slot / 64] &= ~(1ull << (slot % 64));
	gig->nchunks--;
	phys.nreserved--;
	gig_free_if_empty(g);
}

void iopt_phys_chunk_release_locked(struct iopt_phys_chunk *chunk)
{
	uint32_t g, slot;

	assert_locked();
	frame_chunk(chunk->frame_base, &g, &slot);
	if (chunk->shift)
		chunk_uninstall(g, slot + 1);
	chunk_uninstall(g, slot);
}

static struct phys_leaf *frame_leaf(uint64_t frame, uint32_t *g, uint32_t *slot)
{
	return container_of(frame_chunk(frame, g, slot), struct phys_leaf, chunk);
}

/* Sets or clears one scattered frame. */
static void frame_set(uint64_t frame, void *host)
{
	uint32_t g, slot;
	struct phys_leaf *leaf = frame_leaf(frame, &g, &slot);
	_Atomic uintptr_t *entry = &leaf->host[frame % IOPT_PHYS_CHUNK_FRAMES / 2];

	assert_locked();
	assert(!host != !atomic_load_explicit(entry, memory_order_relaxed));
	leaf->nset += host ? 1 : -1;
	atomic_store_explicit(entry, (uintptr_t)host, memory_order_release);
}

/* Adds one SCATTER chunk, with its leaf, to the pool. */
static int pool_grow(void)
{
	struct phys_leaf *leaf;
	uint32_t g, slot;
	int rc;

	if (phys.pool_len == phys.pool_cap) {
		uint32_t cap = phys.pool_cap ? 2 * phys.pool_cap : 8;
		uint32_t *pool = iopt_realloc(phys.pool, cap * sizeof(*pool));

		if (!pool)
			return -ENOMEM;
		phys.bytes += (cap - phys.pool_cap) * sizeof(*pool);
		phys.pool = pool;
		phys.pool_cap = cap;
	}
	leaf = iopt_calloc(1, sizeof(*leaf));
	if (!leaf)
		return -ENOMEM;
	rc = shared_gig_get(GIG_SCATTER, 0, 1, GIG_CHUNKS - 1, &g, &slot);
	if (rc) {
		iopt_free(leaf);
		return rc;
	}
	phys.bytes += sizeof(*leaf);
	chunk_install(g, slot, &leaf->chunk);
	phys.pool[phys.pool_len++] = g << IOPT_PHYS_CHUNK_SHIFT | slot;
	return 0;
}

/* Frame @i (even) of pool chunk @id, or UINT64_MAX when it is taken or unusable. */
static uint64_t pool_frame_if_free(uint32_t id, uint32_t i)
{
	uint32_t g = id >> IOPT_PHYS_CHUNK_SHIFT, slot = id % GIG_CHUNKS;
	struct phys_leaf *leaf = container_of(
		atomic_load_explicit(&gig_at(g)->chunks[slot], memory_order_relaxed),
		struct phys_leaf, chunk);

	/* A gig's first frame would touch the previous gig's last one. */
	if (!slot && !i)
		return UINT64_MAX;
	if (atomic_load_explicit(&leaf->host[i / 2], memory_order_relaxed))
		return UINT64_MAX;
	return chunk_first_frame(g, slot) + i;
}

static uint64_t pool_pick(void)
{
	uint64_t frame;
	uint32_t tries, n, i;

	for (tries = 0; tries < 64; tries++) {
		uint64_t r = rng_next();

		frame = pool_frame_if_free(phys.pool[r % phys.pool_len],
					   (uint32_t)((r >> 32) % SCATTER_PER_CHUNK) * 2);
		if (frame != UINT64_MAX)
			return frame;
	}
	/* Never reached in practice (the pool is at most half full). */
	for (n = 0; n < phys.pool_len; n++) {
		for (i = 0; i < IOPT_PHYS_CHUNK_FRAMES; i += 2) {
			frame = pool_frame_if_free(phys.pool[n], i);
			if (frame != UINT64_MAX)
				return frame;
		}
	}
	return UINT64_MAX;
}

int iopt_phys_frame_reserve_locked(void *host, uint64_t *frame)
{
	uint64_t f;
	int rc;

	assert_locked();
	if (2 * (phys.pool_used + 1) > (uint64_t)phys.pool_len * SCATTER_PER_CHUNK) {
		rc = pool_grow();
		if (rc && !phys.pool_len)
			return rc;
	}
	f = pool_pick();
	if (f == UINT64_MAX)
		return -ENOMEM;
	frame_set(f, host);
	phys.pool_used++;
	phys.nreserved++;
	*frame = f;
	return 0;
}

/* Takes pool chunk @n, whose frames are all free, out of the pool. */
static void pool_chunk_free(uint32_t n)
{
	uint32_t id = phys.pool[n], g = id >> IOPT_PHYS_CHUNK_SHIFT;
	uint32_t slot = id % GIG_CHUNKS;
	struct phys_leaf *leaf = frame_leaf(chunk_first_frame(g, slot), &g, &slot);

	assert(!leaf->nset);
	phys.pool[n] = phys.pool[--phys.pool_len];
	chunk_uninstall(g, slot);
	iopt_free(leaf);
	phys.bytes -= sizeof(*leaf);
}

void iopt_phys_frame_release_locked(uint64_t frame)
{
	uint32_t g, slot, n;
	struct phys_leaf *leaf = frame_leaf(frame, &g, &slot);
	uint32_t id = g << IOPT_PHYS_CHUNK_SHIFT | slot;

	assert_locked();
	frame_set(frame, NULL);
	phys.pool_used--;
	phys.nreserved--;
	if (leaf->nset)
		return;
	for (n = 0; phys.pool[n] != id; n++)
		;
	pool_chunk_free(n);
	/* Chunks the pool grew by but never used go with the last frame. */
	while (!phys.pool_used && phys.pool_len)
		pool_chunk_free(phys.pool_len - 1);
	if (!phys.pool_len) {
		iopt_free(phys.pool);
		phys.bytes -= phys.pool_cap * sizeof(*phys.pool);
		phys.pool = NULL;
		phys.pool_cap = 0;
	}
}
