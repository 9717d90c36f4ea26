/* SPDX-License-Identifier: MIT */
/*
 * pin.c - the process-wide pin registry: refcounted, run-based mlock pins.
 *
 * The kernel pins a page by raising its refcount; userspace has only mlock, which
 * is not counted (one munlock undoes any number of mlocks) and which splits a VMA
 * at every boundary. So this registry keeps the count: per host page, how many
 * pins each backend holds, and mlocks/munlocks only where a count crosses zero,
 * always on maximal runs so that a range costs one system call and one VMA.
 *
 * Layout: a hash table (open addressing, linear probing, load <= 1/2) of leaves,
 * one leaf per 2 MiB host chunk that has a pinned page. A leaf has a 512-bit
 * bitmap of its pinned pages (the frame table resolves frames from it, lock-free)
 * and a 32-bit count per pinned page:
 *   bits 0..15  pins from IOPT_PIN_MLOCK contexts    (page is mlocked iff > 0)
 *   bits 16..30 pins from IOPT_PIN_POPULATE_ONLY ones
 *   bit 31      faulted in for write since the page was first pinned
 * A leaf whose pages were all pinned by one call holds one pin each, all alike:
 * it keeps that one count and no per-page storage (uniform), and any unpin of
 * it takes pages' last pins, so an unpin never needs memory. A pin that meets
 * such a leaf moves it to storage: dense (count[i] for page i) or, for up to
 * PACKED_MAX pinned pages, packed (the count of page i at the rank of bit i in
 * the bitmap), so that sparse pins do not pay 2 KiB per chunk; unpins shrink
 * it back. Bulk pins and unpins thus allocate no per-page memory, which would
 * otherwise be faulted in afresh every time (malloc trims it).
 *
 * A leaf also records how its pages got frames: one frame record (CONTIGUOUS
 * and FOLIO, frame = base + (index << shift), the leaf's own bitmap telling
 * which resolve) or a frame per page (SCATTERED, always dense), chosen by the
 * context whose pin first touched the chunk.
 *
 * Invariants (outside the lock): every leaf in the table has npinned > 0 and its
 * frames assigned; a page has a slot (bitmap bit, count > 0) iff it is pinned,
 * and a frame iff it has a slot; a page is mlocked by us iff its lock count is
 * > 0; reg.nruns and reg.nlocked_runs are the numbers of maximal runs of such
 * pages.
 *
 * A pin works in phases so that a failure unwinds exactly: get the leaves, check
 * for count overflow and make room for new slots, fault in, mlock, assign frames,
 * then commit counts (which cannot fail). mlock faults pages in itself, so the
 * separate populate call is skipped where PROCMAP_QUERY shows that mlock's
 * faulting is exactly what the pin needs (the common case, and half the cost of
 * a large pin). Pages already pinned skip the middle phases, so pinning memory
 * that some other holder already locked costs a lock and a few hash lookups.
 * Each phase works chunk by chunk and looks at single pages only where a chunk
 * already has pins: a chunk without pins is all alike (check, commit, runs),
 * and an unpin that takes the last pin of every page of a chunk drops its leaf
 * whole, so large pins, THP buffers above all, cost a few operations per 2 MiB.
 *
 * Locking: iopt_phys_lock() guards all of it (the frame table and the registry
 * change together) and is held across populate and mlock, as the kernel holds
 * the mmap lock across GUP. Vocabulary: "vpn" is a host address >> 12, "chunk"
 * a host address >> 21, "i" a page's index in its chunk; "end" is exclusive.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "ctx.h"
#include "phys.h"
#include "pin.h"
#include "util.h"

#define LEAF_SHIFT	9			/* pages per leaf: 2 MiB */
#define LEAF_PAGES	(1u << LEAF_SHIFT)
#define LEAF_WORDS	(LEAF_PAGES / 64)
#define CHUNK_SHIFT	(IOPT_PIN_PAGE_SHIFT + LEAF_SHIFT)
/*
 * Most slots of packed counts (1 KiB). Up to there packed storage is smaller
 * than dense and a lookup is at most eight popcounts; beyond it dense storage
 * costs at most 8.5 bytes per pinned page.
 */
#define PACKED_MAX	256u
/*
 * Pages of a uniform leaf that may differ from the rest without storage: an
 * access pinning a page or two of memory a domain holds allocates nothing.
 */
#define LEAF_EXC	4u

_Static_assert(LEAF_PAGES == IOPT_PHYS_CHUNK_FRAMES &&
	       LEAF_WORDS == IOPT_PHYS_CHUNK_WORDS,
	       "a leaf is one frame chunk; its bitmap is the frame record's");

#define CNT_LOCK	1u
#define CNT_LOCK_MAX	0xffffu
#define CNT_POP		(1u << 16)
#define CNT_POP_MAX	(0x7fffu << 16)
#define CNT_WRITE	(1u << 31)

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif

/* PAGEMAP_SCAN (Linux 6.7) as in <linux/fs.h>, which older headers lack. */
struct pin_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct pin_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PIN_PAGEMAP_SCAN	_IOWR('f', 16, struct pin_pm_scan_arg)
#define PIN_PAGE_IS_HUGE	(1u << 6)

/* PROCMAP_QUERY (Linux 6.11) as in <linux/fs.h>. */
struct pin_procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};

#define PIN_PROCMAP_QUERY	_IOWR('f', 17, struct pin_procmap_query)
#define PIN_VMA_READABLE	0x01u
#define PIN_VMA_WRITABLE	0x02u
#define PIN_VMA_SHARED		0x08u

/* A /proc/self file kept open, reopened after fork (it names its opener's mm). */
struct proc_file {
	const char *path;
	int fd;				/* -1: not open */
	pid_t pid;			/* the process fd belongs to */
	bool broken;			/* the ioctl we need is unsupported */
};

/*
 * One 2 MiB host chunk with pinned pages. Its counts are uniform (@cnt NULL:
 * every pinned page has @ucount, a single pin, but the @nexc exceptions listed
 * inline) or live in @cnt: dense (@cap == LEAF_PAGES, cnt[i] for page i) or
 * packed (cnt[r] for the page whose bit has rank r, r < npinned <= cap). Either
 * way only pages with a slot have a meaningful count. Scattered leaves are
 * dense and keep a frame per page after the counts (leaf_frames()).
 * All fields (r): iopt_phys_lock().
 */
struct pin_leaf {
	uintptr_t chunk;
	uint32_t *cnt;			/* NULL: uniform (or no pins yet) */
	uint32_t *spare;		/* room a pin in progress moves to at commit */
	uint32_t ucount;		/* the first pin's count, a single pin */
	uint32_t exc_cnt[LEAF_EXC];	/* uniform: counts of the exc_idx pages */
	uint16_t exc_idx[LEAF_EXC];
	uint16_t nexc;			/* pinned pages whose count is not ucount */
	uint16_t npinned;		/* pages with a slot */
	uint16_t cap;			/* slots in cnt */
	uint16_t spare_cap;
	bool scattered;			/* SCATTERED: a frame per page */
	bool assigned;			/* not scattered: phys is reserved */
	bool probed;			/* huge is known */
	bool huge;			/* one PMD-mapped page when probed */
	struct iopt_phys_chunk phys;	/* not scattered: published frame record */
	/* Bit i: page i has a slot. Read lock-free by iopt_phys_to_host(). */
	_Atomic uint64_t pinned[LEAF_WORDS];
};

/* Locking legend: (r) iopt_phys_lock(). */
static struct {
	struct pin_leaf **slots;	/* (r) hash table, cap entries */
	size_t cap;			/* (r) 0 or a power of two */
	size_t nleaves;			/* (r) */
	uint64_t npages;		/* (r) pages with a pin */
	uint64_t nlocked;		/* (r) pages mlocked by us */
	uint64_t nruns;			/* (r) maximal runs of pinned pages */
	uint64_t nlocked_runs;		/* (r) maximal runs of locked pages */
	size_t bytes;			/* (r) heap: leaves and their storage */
	struct proc_file pagemap;	/* (r) for PAGEMAP_SCAN */
	struct proc_file maps;		/* (r) for PROCMAP_QUERY */
} reg = {
	.pagemap = { .path = "/proc/self/pagemap", .fd = -1 },
	.maps = { .path = "/proc/self/maps", .fd = -1 },
};

/*
 * One pin or unpin call. For a pin, the n_* fields count the pages that need each
 * phase (found by pin_check()); for an unpin, n_unlocked and n_unpinned count the
 * pages whose last lock and last pin went.
 */
struct pin_op {
	struct iopt_ctx *ctx;
	uintptr_t first;		/* vpn */
	uintptr_t end;			/* vpn, exclusive */
	bool writable;
	bool lock;			/* ctx backend is IOPT_PIN_MLOCK */
	uintptr_t n_populate;		/* pred_needs_populate */
	uintptr_t n_populate_locked;	/* pred_needs_populate_locked */
	uintptr_t n_unpinned;		/* pred_unpinned: need frames */
	uintptr_t n_unlocked;		/* pred_unlocked, mlock backend only */
	bool new_leaf;			/* some chunk had no pin before */
	bool mlock_faults_in;		/* mlock does the populating */
	/* The table as it was before this pin grew it, kept until it commits. */
	bool grew;
	struct pin_leaf **old_slots;
	size_t old_cap;
};

/* The part of a range inside one chunk: pages [lo, hi) of its leaf. */
struct pin_seg {
	struct pin_leaf *leaf;		/* NULL when the chunk has none */
	uintptr_t vpn;			/* page lo */
	unsigned int lo, hi;
};

static uint32_t cnt_total(uint32_t c)
{
	return c & ~CNT_WRITE;
}

static uint32_t cnt_locked(uint32_t c)
{
	return c & CNT_LOCK_MAX;
}

/* What one pin of @op adds to a count (an unpin takes away). */
static uint32_t op_inc(const struct pin_op *op)
{
	return op->lock ? CNT_LOCK : CNT_POP;
}

/* The count of a page whose first pin @op is. */
static uint32_t op_first(const struct pin_op *op)
{
	return op_inc(op) | (op->writable ? CNT_WRITE : 0);
}

static size_t leaf_hash(uintptr_t chunk)
{
	return (size_t)(((uint64_t)chunk * 0x9E3779B97F4A7C15ull) >> 32) &
	       (reg.cap - 1);
}

static struct pin_leaf *leaf_find(uintptr_t chunk)
{
	size_t i;

	if (!reg.cap)
		return NULL;
	for (i = leaf_hash(chunk);; i = (i + 1) & (reg.cap - 1)) {
		struct pin_leaf *leaf = reg.slots[i];

		if (!leaf || leaf->chunk == chunk)
			return leaf;
	}
}

static void table_place(struct pin_leaf **slots, size_t cap, struct pin_leaf *leaf)
{
	size_t i = leaf_hash(leaf->chunk);

	while (slots[i])
		i = (i + 1) & (cap - 1);
	slots[i] = leaf;
}

/*
 * Doubles the table. The first growth of a pin keeps the old array in @op so
 * that a failure can put it back untouched (table_settle()): a failed pin must
 * leave the registry's memory as it found it.
 */
static int table_grow(struct pin_op *op)
{
	size_t cap = reg.cap ? 2 * reg.cap : 64, old_cap = reg.cap, i;
	struct pin_leaf **slots = iopt_calloc(cap, sizeof(*slots));
	struct pin_leaf **old = reg.slots;

	if (!slots)
		return -ENOMEM;
	reg.slots = slots;
	reg.cap = cap;
	for (i = 0; i < old_cap; i++)
		if (old[i])
			table_place(slots, cap, old[i]);
	if (op->grew) {
		iopt_free(old);
	} else {
		op->grew = true;
		op->old_slots = old;
		op->old_cap = old_cap;
	}
	return 0;
}

/*
 * Ends a pin's table growth: on success the old array goes; on failure, once
 * pin_leaves_trim() dropped this pin's leaves, the old array (still holding
 * every older leaf where it was) comes back and the grown one goes.
 */
static void table_settle(const struct pin_op *op, bool ok)
{
	if (!op->grew)
		return;
	if (ok) {
		iopt_free(op->old_slots);
		return;
	}
	iopt_free(reg.slots);	/* NULL when trimming emptied it */
	reg.slots = op->old_slots;
	reg.cap = op->old_cap;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void table_remove(struct pin_leaf *leaf)
{
	size_t mask = reg.cap - 1, i = leaf_hash(leaf->chunk), j;

	while (reg.slots[i] != leaf)
		i = (i + 1) & mask;
	for (j = (i + 1) & mask; reg.slots[j]; j = (j + 1) & mask) {
		size_t home = leaf_hash(reg.slots[j]->chunk);

		/* Move j back to i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			reg.slots[i] = reg.slots[j];
			i = j;
		}
	}
	reg.slots[i] = NULL;
	reg.nleaves--;
	if (!reg.nleaves) {
		iopt_free(reg.slots);
		reg.slots = NULL;
		reg.cap = 0;
	}
}

/* ---- a leaf's counts ---- */

static bool leaf_dense(const struct pin_leaf *leaf)
{
	return leaf->cap == LEAF_PAGES;
}

static uint64_t leaf_word(const struct pin_leaf *leaf, unsigned int w)
{
	return atomic_load_explicit(&leaf->pinned[w], memory_order_relaxed);
}

/* Only the lock holder writes, so a plain load and store do. */
static void leaf_word_set(struct pin_leaf *leaf, unsigned int w, uint64_t set,
			  uint64_t clear)
{
	atomic_store_explicit(&leaf->pinned[w], (leaf_word(leaf, w) & ~clear) | set,
			      memory_order_relaxed);
}

/* The bits of word @w that lie in [lo, hi). */
static uint64_t word_mask(unsigned int w, unsigned int lo, unsigned int hi)
{
	unsigned int a = IOPT_MAX(lo, w * 64) - w * 64;
	unsigned int b = IOPT_MIN(hi, w * 64 + 64) - w * 64;

	return (b == 64 ? ~0ull : (1ull << b) - 1) & ~((1ull << a) - 1);
}

static bool slot_present(const struct pin_leaf *leaf, unsigned int i)
{
	return leaf_word(leaf, i / 64) >> (i % 64) & 1;
}

/* Slots of pages below @i: page i's place in packed counts. */
static unsigned int slot_rank(const struct pin_leaf *leaf, unsigned int i)
{
	unsigned int w, r = 0;

	for (w = 0; w < i / 64; w++)
		r += (unsigned int)__builtin_popcountll(leaf_word(leaf, w));
	return r + (unsigned int)__builtin_popcountll(leaf_word(leaf, i / 64) &
						       ((1ull << (i % 64)) - 1));
}

/* The count of page @i, which has a slot, in a leaf with storage. */
static uint32_t *slot_cnt(const struct pin_leaf *leaf, unsigned int i)
{
	return &leaf->cnt[leaf_dense(leaf) ? i : slot_rank(leaf, i)];
}

/* Page @i's place among a uniform leaf's exceptions, or LEAF_EXC. */
static unsigned int exc_find(const struct pin_leaf *leaf, unsigned int i)
{
	unsigned int e;

	for (e = 0; e < leaf->nexc; e++)
		if (leaf->exc_idx[e] == i)
			return e;
	return LEAF_EXC;
}

/* Sets page @i's count in a uniform leaf; pin_check() made sure it fits. */
static void exc_put(struct pin_leaf *leaf, unsigned int i, uint32_t count)
{
	unsigned int e = exc_find(leaf, i);

	if (count == leaf->ucount) {
		if (e == LEAF_EXC)
			return;
		leaf->nexc--;
		leaf->exc_idx[e] = leaf->exc_idx[leaf->nexc];
		leaf->exc_cnt[e] = leaf->exc_cnt[leaf->nexc];
		return;
	}
	if (e == LEAF_EXC) {
		assert(leaf->nexc < LEAF_EXC);
		e = leaf->nexc++;
		leaf->exc_idx[e] = (uint16_t)i;
	}
	leaf->exc_cnt[e] = count;
}

/* Page @i's count; 0 without a slot. */
static uint32_t leaf_cnt(const struct pin_leaf *leaf, unsigned int i)
{
	unsigned int e;

	if (!slot_present(leaf, i))
		return 0;
	if (leaf->cnt)
		return *slot_cnt(leaf, i);
	e = exc_find(leaf, i);
	return e < LEAF_EXC ? leaf->exc_cnt[e] : leaf->ucount;
}

/* Sets the count of page @i, which has a slot, to @count (some pins). */
static void page_set(struct pin_leaf *leaf, unsigned int i, uint32_t count)
{
	uint32_t *c;

	if (!leaf->cnt) {
		exc_put(leaf, i, count);
		return;
	}
	c = slot_cnt(leaf, i);
	leaf->nexc += (count != leaf->ucount) - (*c != leaf->ucount);
	*c = count;
}

static uint64_t *leaf_frames(const struct pin_leaf *leaf)
{
	return (uint64_t *)(leaf->cnt + LEAF_PAGES);
}

static uint64_t page_frame(const struct pin_leaf *leaf, unsigned int i)
{
	if (leaf->scattered)
		return leaf_frames(leaf)[i];
	return leaf->phys.frame_base + ((uint64_t)i << leaf->phys.shift);
}

/* Frames of pages [lo, hi) of @leaf, all pinned, to @out. */
static void leaf_frames_out(const struct pin_leaf *leaf, unsigned int lo,
			    unsigned int hi, uint64_t *out)
{
	uint64_t base = leaf->phys.frame_base;
	unsigned int i, shift = leaf->phys.shift;

	if (leaf->scattered) {
		memcpy(out, leaf_frames(leaf) + lo, (hi - lo) * sizeof(*out));
		return;
	}
	/* The linear loop alone: it writes 2 MiB per GiB pinned, at memory speed. */
	if (!shift)
		for (i = lo; i < hi; i++)
			*out++ = base + i;
	else
		for (i = lo; i < hi; i++)
			*out++ = base + ((uint64_t)i << shift);
}

/* Gives page @i a slot with @count; leaf_reserve() made the room. */
static void slot_insert(struct pin_leaf *leaf, unsigned int i, uint32_t count)
{
	unsigned int r = i;

	if (!leaf->cnt) {
		exc_put(leaf, i, count);
	} else {
		if (!leaf_dense(leaf)) {
			r = slot_rank(leaf, i);
			memmove(&leaf->cnt[r + 1], &leaf->cnt[r],
				(leaf->npinned - r) * sizeof(*leaf->cnt));
		}
		leaf->cnt[r] = count;
		leaf->nexc += count != leaf->ucount;
	}
	leaf->npinned++;
	leaf_word_set(leaf, i / 64, 1ull << (i % 64), 0);
}

static void slot_remove(struct pin_leaf *leaf, unsigned int i)
{
	unsigned int r = i;

	if (!leaf->cnt) {
		exc_put(leaf, i, leaf->ucount);
	} else {
		if (!leaf_dense(leaf))
			r = slot_rank(leaf, i);
		leaf->nexc -= leaf->cnt[r] != leaf->ucount;
		if (!leaf_dense(leaf))
			memmove(&leaf->cnt[r], &leaf->cnt[r + 1],
				(leaf->npinned - r - 1) * sizeof(*leaf->cnt));
	}
	leaf->npinned--;
	leaf_word_set(leaf, i / 64, 0, 1ull << (i % 64));
}

/*
 * Gives every page of [lo, hi) of a leaf without slots a slot with @count, a
 * single pin: the leaf is uniform then, unless scattered (dense).
 */
static void leaf_fill(struct pin_leaf *leaf, unsigned int lo, unsigned int hi,
		      uint32_t count)
{
	unsigned int i, w;

	if (leaf->cnt)
		for (i = lo; i < hi; i++)
			leaf->cnt[i] = count;
	leaf->ucount = count;
	leaf->npinned = (uint16_t)(hi - lo);
	for (w = lo / 64; w <= (hi - 1) / 64; w++)
		leaf_word_set(leaf, w, word_mask(w, lo, hi), 0);
}

/* Takes the slots of [lo, hi), all single pins, from a uniform leaf. */
static void leaf_clear(struct pin_leaf *leaf, unsigned int lo, unsigned int hi)
{
	unsigned int w;

	assert(!leaf->cnt && !leaf->nexc);
	for (w = lo / 64; w <= (hi - 1) / 64; w++) {
		assert((leaf_word(leaf, w) & word_mask(w, lo, hi)) ==
		       word_mask(w, lo, hi));
		leaf_word_set(leaf, w, 0, word_mask(w, lo, hi));
	}
	leaf->npinned -= (uint16_t)(hi - lo);
}

/* Whether every page of [lo, hi) has a slot. */
static bool leaf_covers(const struct pin_leaf *leaf, unsigned int lo,
			unsigned int hi)
{
	unsigned int w;

	if (leaf->npinned == LEAF_PAGES)
		return true;
	for (w = lo / 64; w <= (hi - 1) / 64; w++) {
		uint64_t m = word_mask(w, lo, hi);

		if ((leaf_word(leaf, w) & m) != m)
			return false;
	}
	return true;
}

/*
 * Whether an unpin decrementing by @dec takes the last pin of every page of
 * [lo, hi): a uniform leaf's single pins, or a full dense leaf all of whose
 * counts are that pin.
 */
static bool leaf_last_pins(const struct pin_leaf *leaf, unsigned int lo,
			   unsigned int hi, uint32_t dec)
{
	uint32_t diff = 0;
	unsigned int i;

	if (!leaf->cnt)
		return !leaf->nexc && cnt_total(leaf->ucount) == dec;
	if (hi - lo != LEAF_PAGES || leaf->npinned != LEAF_PAGES)
		return false;
	for (i = 0; i < LEAF_PAGES; i++)
		diff |= cnt_total(leaf->cnt[i]) ^ dec;
	return !diff;
}

/* ---- a leaf's storage ---- */

static size_t storage_size(unsigned int cap, bool scattered)
{
	return cap * (sizeof(uint32_t) + (scattered ? sizeof(uint64_t) : 0));
}

/* Uninitialized: only slots are ever read, and each is written first. */
static uint32_t *storage_alloc(unsigned int cap, bool scattered)
{
	uint32_t *s = iopt_malloc(storage_size(cap, scattered));

	if (s)
		reg.bytes += storage_size(cap, scattered);
	return s;
}

static void storage_free(uint32_t *s, unsigned int cap, bool scattered)
{
	iopt_free(s);
	reg.bytes -= storage_size(cap, scattered);
}

/* Packed room for @n slots: a power of two, so growth is amortized. */
static unsigned int packed_cap(unsigned int n)
{
	return n <= 1 ? 1 : 1u << iopt_fls64(n - 1);
}

/* Copies the counts to @to, laid out for @cap slots (scattered never moves). */
static void slots_copy(const struct pin_leaf *leaf, uint32_t *to,
		       unsigned int cap)
{
	bool to_dense = cap == LEAF_PAGES;
	unsigned int w, r, e;

	if (!leaf->cnt) {
		/* Every slot is ucount but the exceptions. */
		for (r = 0; r < (to_dense ? LEAF_PAGES : leaf->npinned); r++)
			to[r] = leaf->ucount;
		for (e = 0; e < leaf->nexc; e++)
			to[to_dense ? leaf->exc_idx[e] :
				      slot_rank(leaf, leaf->exc_idx[e])] = leaf->exc_cnt[e];
		return;
	}
	if (!leaf_dense(leaf) && !to_dense) {
		memcpy(to, leaf->cnt, leaf->npinned * sizeof(*to));
		return;
	}
	for (w = 0, r = 0; w < LEAF_WORDS; w++) {
		uint64_t bits;

		for (bits = leaf_word(leaf, w); bits; bits &= bits - 1) {
			unsigned int i = w * 64 + iopt_ffs64(bits);

			if (to_dense)
				to[i] = leaf->cnt[r++];
			else
				to[r++] = leaf->cnt[i];
		}
	}
}

/* Moves a leaf's counts to @to (NULL: back to uniform, exceptions listed). */
static void leaf_move(struct pin_leaf *leaf, uint32_t *to, unsigned int cap)
{
	if (to)
		slots_copy(leaf, to, cap);
	storage_free(leaf->cnt, leaf->cap, leaf->scattered);
	leaf->cnt = to;
	leaf->cap = (uint16_t)cap;
}

/*
 * Whether a pin of [lo, hi) giving @nnew pages their first pin leaves a
 * uniform leaf few enough exceptions: every page it pins again becomes one.
 */
static bool uniform_fits(const struct pin_op *op, const struct pin_leaf *leaf,
			 unsigned int lo, unsigned int hi, unsigned int nnew)
{
	unsigned int e, nexc = leaf->nexc + (hi - lo - nnew);

	if (op_first(op) != leaf->ucount)
		nexc += nnew;
	for (e = 0; e < leaf->nexc; e++)
		nexc -= leaf->exc_idx[e] >= lo && leaf->exc_idx[e] < hi;
	return nexc <= LEAF_EXC;
}

/*
 * Makes room for a pin of [lo, hi) that gives @nnew pages their first pin. A
 * leaf without pins needs none (it becomes uniform), unless scattered: that
 * gets its dense storage at once (a failed pin drops the leaf). A pinned leaf
 * that runs out of exceptions or of room gets spare storage that the commit
 * moves to, so that a failed pin leaves the leaf, and registry_bytes, as they
 * were.
 */
static int leaf_reserve(const struct pin_op *op, struct pin_leaf *leaf,
			unsigned int lo, unsigned int hi, unsigned int nnew)
{
	unsigned int need = leaf->npinned + nnew, cap;
	uint32_t *s;

	if (!leaf->npinned ? !leaf->scattered :
	    leaf->cnt ? need <= leaf->cap : uniform_fits(op, leaf, lo, hi, nnew))
		return 0;
	cap = leaf->scattered || need > PACKED_MAX ? LEAF_PAGES : packed_cap(need);
	s = storage_alloc(cap, leaf->scattered);
	if (!s)
		return -ENOMEM;
	if (leaf->npinned) {
		leaf->spare = s;
		leaf->spare_cap = (uint16_t)cap;
	} else {
		leaf->cnt = s;
		leaf->cap = (uint16_t)cap;
	}
	return 0;
}

/* Undoes leaf_reserve()'s spare storage after a failure. */
static void leaf_unreserve(struct pin_leaf *leaf)
{
	if (!leaf->spare)
		return;
	storage_free(leaf->spare, leaf->spare_cap, leaf->scattered);
	leaf->spare = NULL;
}

/* The commit's first step: move to the spare storage when there is some. */
static void leaf_adopt(struct pin_leaf *leaf)
{
	if (!leaf->spare)
		return;
	leaf_move(leaf, leaf->spare, leaf->spare_cap);
	leaf->spare = NULL;
}

/*
 * After an unpin, a leaf with storage goes back to uniform when at most
 * LEAF_EXC of its pages differ from ucount (so a pin that had to move it to
 * storage, then unpinned, leaves it as it was), and otherwise to smaller packed
 * storage when it uses less than half its room. Only memory is at stake: when
 * that allocation fails the leaf stays as it is.
 */
static void leaf_settle(struct pin_leaf *leaf)
{
	unsigned int cap = packed_cap(leaf->npinned), w, r = 0, n = 0;
	uint32_t *s;

	if (!leaf->cnt || leaf->scattered)
		return;
	if (leaf->nexc <= LEAF_EXC) {
		for (w = 0; n < leaf->nexc && w < LEAF_WORDS; w++) {
			uint64_t bits;

			for (bits = leaf_word(leaf, w); bits; bits &= bits - 1, r++) {
				unsigned int i = w * 64 + iopt_ffs64(bits);
				uint32_t c = leaf->cnt[leaf_dense(leaf) ? i : r];

				if (c == leaf->ucount)
					continue;
				leaf->exc_idx[n] = (uint16_t)i;
				leaf->exc_cnt[n++] = c;
			}
		}
		leaf_move(leaf, NULL, 0);
		return;
	}
	if (2 * cap >= leaf->cap)
		return;
	s = storage_alloc(cap, false);
	if (s)
		leaf_move(leaf, s, cap);
}

/* ---- leaves in the table ---- */

/* Return: 1 when a leaf was created, 0 when it existed, or -ENOMEM. */
static int leaf_get(struct pin_op *op, uintptr_t chunk)
{
	struct pin_leaf *leaf;
	int rc;

	if (leaf_find(chunk))
		return 0;
	if (2 * (reg.nleaves + 1) > reg.cap) {
		rc = table_grow(op);
		if (rc)
			return rc;
	}
	leaf = iopt_calloc(1, sizeof(*leaf));
	if (!leaf)
		return -ENOMEM;
	leaf->chunk = chunk;
	leaf->scattered = op->ctx->model == IOPT_PHYS_SCATTERED;
	table_place(reg.slots, reg.cap, leaf);
	reg.nleaves++;
	reg.bytes += sizeof(*leaf);
	return 1;
}

/* Frees a leaf without pins, giving back its frame chunk and storage. */
static void leaf_drop(struct pin_leaf *leaf)
{
	assert(!leaf->npinned && !leaf->spare);
	if (leaf->assigned)
		iopt_phys_chunk_release_locked(&leaf->phys);
	storage_free(leaf->cnt, leaf->cap, leaf->scattered);
	table_remove(leaf);
	iopt_free(leaf);
	reg.bytes -= sizeof(*leaf);
}

/* Drops a leaf whose every page just lost its last pin, frames and all. */
static void leaf_release(struct pin_leaf *leaf)
{
	unsigned int i;

	if (leaf->scattered)
		for (i = 0; i < LEAF_PAGES; i++)
			iopt_phys_frame_release_locked(leaf_frames(leaf)[i]);
	leaf->npinned = 0;
	leaf_drop(leaf);
}

static bool seg_at(uintptr_t vpn, uintptr_t end, struct pin_seg *s)
{
	if (vpn >= end)
		return false;
	s->vpn = vpn;
	s->lo = vpn % LEAF_PAGES;
	s->hi = (unsigned int)IOPT_MIN((uintptr_t)LEAF_PAGES, s->lo + (end - vpn));
	s->leaf = leaf_find(vpn >> LEAF_SHIFT);
	return true;
}

static uintptr_t seg_end(const struct pin_seg *s)
{
	return s->vpn + (s->hi - s->lo);
}

/* Iterates @s over the chunks of [first, end); not nestable. */
#define for_each_seg(s, first, end)					\
	for (bool seg_more_ = seg_at((first), (end), (s)); seg_more_;	\
	     seg_more_ = seg_at(seg_end(s), (end), (s)))

static uint32_t page_count(uintptr_t vpn)
{
	struct pin_leaf *leaf = leaf_find(vpn >> LEAF_SHIFT);

	return leaf ? leaf_cnt(leaf, vpn % LEAF_PAGES) : 0;
}

static void *vpn_host(uintptr_t vpn)
{
	return (void *)(vpn << IOPT_PIN_PAGE_SHIFT);
}

/* Page predicates that delimit runs. @op may be NULL where unused. */
typedef bool (*page_pred)(const struct pin_op *op, uint32_t count);

static bool pred_unpinned(const struct pin_op *op, uint32_t count)
{
	(void)op;
	return !cnt_total(count);
}

static bool pred_unlocked(const struct pin_op *op, uint32_t count)
{
	(void)op;
	return !cnt_locked(count);
}

static bool pred_needs_populate(const struct pin_op *op, uint32_t count)
{
	return !cnt_total(count) || (op->writable && !(count & CNT_WRITE));
}

/* Pages mlock will not fault in: already locked, yet a writable pin needs them. */
static bool pred_needs_populate_locked(const struct pin_op *op, uint32_t count)
{
	return pred_needs_populate(op, count) && cnt_locked(count);
}

/*
 * Next maximal run of pages in [*start, end) whose counts satisfy @pred; pages
 * without a slot count as 0, and a chunk without pins is passed over whole.
 * Return: false when there is none, else the run in [*start, *run_end).
 */
static bool run_next(const struct pin_op *op, page_pred pred, uintptr_t end,
		     uintptr_t *start, uintptr_t *run_end)
{
	bool zero = pred(op, 0), in_run = false;
	uintptr_t vpn = *start;
	struct pin_seg s;

	while (seg_at(vpn, end, &s)) {
		unsigned int i;

		if (!s.leaf || !s.leaf->npinned) {
			if (in_run && !zero)
				break;
			if (zero && !in_run) {
				*start = vpn;
				in_run = true;
			}
			vpn = seg_end(&s);
			continue;
		}
		for (i = s.lo; i < s.hi; i++, vpn++) {
			bool match = pred(op, leaf_cnt(s.leaf, i));

			if (match && !in_run) {
				*start = vpn;
				in_run = true;
			} else if (!match && in_run) {
				goto out;
			}
		}
	}
out:
	*run_end = vpn;
	return in_run;
}

/*
 * run_next() over the op's range, knowing that @nmatch of its pages match:
 * none or all (the common case of a fresh range) need no scan.
 */
static bool op_run_next(const struct pin_op *op, page_pred pred,
			uintptr_t nmatch, uintptr_t *start, uintptr_t *run_end)
{
	if (!nmatch)
		return false;
	if (nmatch == op->end - op->first) {
		*run_end = op->end;
		return *start == op->first;
	}
	return run_next(op, pred, op->end, start, run_end);
}

static bool vpn_matches(page_pred pred, uintptr_t vpn)
{
	return !pred(NULL, page_count(vpn));
}

/*
 * How a run [start, end) of pages changing state (@pred true before a pin, true
 * after an unpin) changes the number of maximal runs of pages for which @pred is
 * false: it joins its neighbours' runs.
 */
static int64_t run_delta(page_pred pred, uintptr_t start, uintptr_t end)
{
	int64_t delta = 1;

	if (start && vpn_matches(pred, start - 1))
		delta--;
	if (vpn_matches(pred, end))
		delta--;
	return delta;
}

/* ---- pin ---- */

static int pin_leaves_get(struct pin_op *op)
{
	uintptr_t chunk;
	int rc;

	for (chunk = op->first >> LEAF_SHIFT;
	     chunk <= (op->end - 1) >> LEAF_SHIFT; chunk++) {
		rc = leaf_get(op, chunk);
		if (rc < 0)
			return rc;
		op->new_leaf |= rc;
	}
	return 0;
}

/* After a failure: spare storage goes, and so do leaves without pins. */
static void pin_leaves_trim(const struct pin_op *op)
{
	struct pin_seg s;

	for_each_seg(&s, op->first, op->end) {
		if (!s.leaf)
			continue;
		leaf_unreserve(s.leaf);
		if (!s.leaf->npinned)
			leaf_drop(s.leaf);
	}
}

/* Counts @n pages of count @c into the op's needs; returns the new pins. */
static unsigned int op_count(struct pin_op *op, uint32_t c, unsigned int n)
{
	op->n_populate += pred_needs_populate(op, c) ? n : 0;
	op->n_populate_locked += pred_needs_populate_locked(op, c) ? n : 0;
	op->n_unlocked += op->lock && pred_unlocked(op, c) ? n : 0;
	if (!pred_unpinned(op, c))
		return 0;
	op->n_unpinned += n;
	return n;
}

/*
 * Finds what the range needs and makes room for its new slots. Return: 0, or
 * -ENOMEM when a count would overflow or storage runs out.
 */
static int pin_check(struct pin_op *op)
{
	struct pin_seg s;
	int rc;

	for_each_seg(&s, op->first, op->end) {
		unsigned int i, nnew = 0;

		if (!s.leaf->npinned) {
			/* A chunk without pins is all alike. */
			nnew = op_count(op, 0, s.hi - s.lo);
		} else {
			for (i = s.lo; i < s.hi; i++) {
				uint32_t c = leaf_cnt(s.leaf, i);

				if (op->lock ? cnt_locked(c) == CNT_LOCK_MAX :
					       (c & CNT_POP_MAX) == CNT_POP_MAX)
					return -ENOMEM;
				nnew += op_count(op, c, 1);
			}
		}
		rc = leaf_reserve(op, s.leaf, s.lo, s.hi, nnew);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * ioctl() on a /proc/self file, opened on first use by this process. Return: the
 * ioctl's result, or -1 (also when the kernel lacks the ioctl: then never again).
 */
static int proc_ioctl(struct proc_file *f, unsigned long req, void *arg)
{
	int rc;

	if (f->broken)
		return -1;
	if (f->fd < 0 || f->pid != getpid()) {
		if (f->fd >= 0)
			close(f->fd);
		f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
		f->pid = getpid();
		if (f->fd < 0) {
			f->broken = true;
			return -1;
		}
	}
	rc = ioctl(f->fd, req, arg);
	if (rc < 0 && (errno == ENOTTY || errno == EINVAL))
		f->broken = true;
	return rc;
}

static int populate(void *addr, size_t len, bool writable)
{
	int advice = writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;

	if (iopt_should_fail(IOPT_FAIL_PIN))
		return -EFAULT;
	while (madvise(addr, len, advice)) {
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

/*
 * Whether mlock alone faults the range in as this pin needs, making the populate
 * call redundant: every page lies in a readable VMA of 4 KiB pages and, for a
 * writable pin, a private writable one (mlock write-faults private writable
 * VMAs, breaking COW as FOLL_WRITE does). Asked with PROCMAP_QUERY; false when
 * unsure (older kernels), and the populate call is made.
 */
static bool mlock_faults_in(const struct pin_op *op)
{
	uintptr_t addr = op->first << IOPT_PIN_PAGE_SHIFT;
	uintptr_t end = op->end << IOPT_PIN_PAGE_SHIFT;

	while (addr < end) {
		struct pin_procmap_query q = { .size = sizeof(q), .query_addr = addr };

		if (proc_ioctl(&reg.maps, PIN_PROCMAP_QUERY, &q) < 0 ||
		    q.vma_start > addr || q.vma_end <= addr ||
		    !(q.vma_flags & PIN_VMA_READABLE) ||
		    q.vma_page_size != IOPT_PIN_PAGE_SIZE)
			return false;
		if (op->writable && (!(q.vma_flags & PIN_VMA_WRITABLE) ||
				     (q.vma_flags & PIN_VMA_SHARED)))
			return false;
		addr = q.vma_end;
	}
	return true;
}

static int pin_populate_run(const struct pin_op *op, uintptr_t start,
			    uintptr_t end)
{
	int rc = populate(vpn_host(start), (end - start) << IOPT_PIN_PAGE_SHIFT,
			  op->writable);

	if (rc == -EINVAL)
		iopt_ctx_log(op->ctx,
			     "MADV_POPULATE_%s refused at %p: memory the kernel cannot pin (or Linux < 5.14)",
			     op->writable ? "WRITE" : "READ", vpn_host(start));
	return rc ? -EFAULT : 0;
}

static int pin_populate(struct pin_op *op)
{
	page_pred pred = pred_needs_populate;
	uintptr_t nmatch = op->n_populate;
	uintptr_t start = op->first, end;
	int rc;

	if (op->n_unlocked && mlock_faults_in(op)) {
		op->mlock_faults_in = true;
		pred = pred_needs_populate_locked;
		nmatch = op->n_populate_locked;
	}
	while (op_run_next(op, pred, nmatch, &start, &end)) {
		rc = pin_populate_run(op, start, end);
		if (rc)
			return rc;
		start = end;
	}
	return 0;
}

/*
 * Finds whether the leaves of chunks [first, last] not probed yet are one
 * PMD-mapped page each (THP or hugetlbfs): one PAGEMAP_SCAN over the range.
 * Where the kernel cannot tell (before Linux 6.7), they are not.
 */
static void probe_huge(uintptr_t first, uintptr_t last)
{
	uintptr_t start = first << CHUNK_SHIFT, end = (last + 1) << CHUNK_SHIFT;
	struct pin_page_region vec[16];
	struct pin_pm_scan_arg arg;
	struct pin_leaf *leaf;
	uintptr_t c;
	int n, i;

	while (start < end) {
		memset(&arg, 0, sizeof(arg));
		memset(vec, 0, sizeof(vec));	/* memcheck does not know this ioctl */
		arg.size = sizeof(arg);
		arg.start = start;
		arg.end = end;
		arg.vec = (uintptr_t)vec;
		arg.vec_len = IOPT_ARRAY_SIZE(vec);
		arg.category_mask = PIN_PAGE_IS_HUGE;
		arg.return_mask = PIN_PAGE_IS_HUGE;
		n = proc_ioctl(&reg.pagemap, PIN_PAGEMAP_SCAN, &arg);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			for (c = IOPT_ALIGN_UP((uintptr_t)vec[i].start, (uintptr_t)1 << CHUNK_SHIFT);
			     c + ((uintptr_t)1 << CHUNK_SHIFT) <= vec[i].end;
			     c += (uintptr_t)1 << CHUNK_SHIFT) {
				leaf = leaf_find(c >> CHUNK_SHIFT);
				if (leaf && !leaf->probed)
					leaf->huge = true;
			}
		}
		if (arg.walk_end <= start)
			break;
		start = arg.walk_end;
	}
	for (c = first; c <= last; c++) {
		leaf = leaf_find(c);
		if (leaf)
			leaf->probed = true;
	}
}

/*
 * Reserves the frame record of a leaf without pins, by the pinning context's
 * model and, for FOLIO, the host page size probe_huge() found.
 */
static int leaf_assign(const struct pin_op *op, struct pin_leaf *leaf)
{
	int rc;

	leaf->phys.host_base = leaf->chunk << CHUNK_SHIFT;
	leaf->phys.pinned = leaf->pinned;
	rc = iopt_phys_chunk_reserve_locked(op->ctx->model, leaf->huge, leaf->chunk,
					    (op->end - 1) >> LEAF_SHIFT,
					    &leaf->phys);
	if (rc)
		return rc;
	leaf->assigned = true;
	return 0;
}

/* Undoes pin_frames() before @stop: scattered frames of unpinned pages go. */
static void pin_frames_undo(const struct pin_op *op, uintptr_t stop)
{
	struct pin_seg s;
	unsigned int i;

	for_each_seg(&s, op->first, stop) {
		if (!s.leaf->scattered)
			continue;
		for (i = s.lo; i < s.hi; i++)
			if (!slot_present(s.leaf, i))
				iopt_phys_frame_release_locked(leaf_frames(s.leaf)[i]);
	}
}

/*
 * Gives frames to every page of the range that is not pinned yet. A leaf with a
 * frame record needs nothing per page: its frames resolve once commit sets the
 * pages' bits. (A failed record reservation leaves its leaf to
 * pin_leaves_trim().)
 */
static int pin_frames(const struct pin_op *op)
{
	struct pin_seg s;
	uintptr_t stop;
	unsigned int i;
	int rc;

	/* Only FOLIO frames depend on it; iopt_pin_host_pgsize() probes too. */
	if (op->new_leaf && op->ctx->model == IOPT_PHYS_FOLIO)
		probe_huge(op->first >> LEAF_SHIFT, (op->end - 1) >> LEAF_SHIFT);
	for_each_seg(&s, op->first, op->end) {
		stop = s.vpn;
		if (!s.leaf->scattered) {
			rc = s.leaf->assigned ? 0 : leaf_assign(op, s.leaf);
			if (rc)
				goto err_undo;
			continue;
		}
		for (i = s.lo; i < s.hi; i++, stop++) {
			if (slot_present(s.leaf, i))
				continue;
			rc = iopt_phys_frame_reserve_locked(vpn_host(stop),
							    &leaf_frames(s.leaf)[i]);
			if (rc)
				goto err_undo;
		}
	}
	return 0;

err_undo:
	pin_frames_undo(op, stop);
	return rc;
}

/*
 * The raw system calls: sanitizer runtimes intercept mlock() and munlock() and
 * turn them into no-ops, which would make tests under ASan lie.
 */
static int run_mlock(uintptr_t start, uintptr_t end)
{
	return (int)syscall(SYS_mlock, vpn_host(start),
			    (end - start) << IOPT_PIN_PAGE_SHIFT);
}

static void run_munlock(uintptr_t start, uintptr_t end)
{
	syscall(SYS_munlock, vpn_host(start), (end - start) << IOPT_PIN_PAGE_SHIFT);
}

static void log_mlock_refused(const struct pin_op *op, uintptr_t start,
			      uintptr_t end, int err)
{
	struct rlimit rl = { 0 };

	getrlimit(RLIMIT_MEMLOCK, &rl);
	iopt_ctx_log(op->ctx,
		     "mlock of %zu pages at %p refused (%s): RLIMIT_MEMLOCK is %s%llu KiB%s; raise it (ulimit -l) or use the populate-only pin backend (IOPT_PIN_POPULATE_ONLY)",
		     (size_t)(end - start), vpn_host(start), strerror(err),
		     rl.rlim_cur == RLIM_INFINITY ? "unlimited, not " : "",
		     (unsigned long long)(rl.rlim_cur == RLIM_INFINITY ? 0 :
					  rl.rlim_cur >> 10),
		     op->ctx->cap_ipc_lock ? " (CAP_IPC_LOCK held)" : "");
}

/* munlocks the runs pin_lock() locked before @stop. */
static void pin_lock_undo(const struct pin_op *op, uintptr_t stop)
{
	uintptr_t start = op->first, end;

	while (start < stop && run_next(op, pred_unlocked, stop, &start, &end)) {
		run_munlock(start, end);
		start = end;
	}
}

static int pin_lock(const struct pin_op *op)
{
	uintptr_t start = op->first, end;

	while (op_run_next(op, pred_unlocked, op->n_unlocked, &start, &end)) {
		int err;

		if (iopt_should_fail(IOPT_FAIL_PIN))
			err = ENOMEM;
		else if (run_mlock(start, end))
			err = errno;
		else
			err = 0;
		if (!err) {
			start = end;
			continue;
		}
		/*
		 * A failed mlock may have marked the run locked before its
		 * fault-in failed; no other holder locked these pages.
		 */
		run_munlock(start, end);
		pin_lock_undo(op, start);
		/* Populate was skipped: a fault explains the refusal better. */
		if (op->mlock_faults_in && pin_populate_run(op, start, end))
			return -EFAULT;
		log_mlock_refused(op, start, end, err);
		return -ENOMEM;
	}
	return 0;
}

static void pin_commit_page(const struct pin_op *op, struct pin_leaf *leaf,
			    unsigned int i)
{
	uint32_t c = leaf_cnt(leaf, i);

	if (!slot_present(leaf, i)) {
		slot_insert(leaf, i, op_first(op));
		reg.npages++;
		reg.nlocked += op->lock;
		return;
	}
	if (op->lock && !cnt_locked(c))
		reg.nlocked++;
	page_set(leaf, i, (c + op_inc(op)) | (op_first(op) & CNT_WRITE));
}

/* The state change, after every fallible step succeeded. */
static void pin_commit(const struct pin_op *op, uint64_t *pfns_out)
{
	uintptr_t start, end;
	struct pin_seg s;
	unsigned int i;

	for (start = op->first;
	     op_run_next(op, pred_unpinned, op->n_unpinned, &start, &end);
	     start = end)
		reg.nruns += run_delta(pred_unpinned, start, end);
	for (start = op->first;
	     op_run_next(op, pred_unlocked, op->n_unlocked, &start, &end);
	     start = end)
		reg.nlocked_runs += run_delta(pred_unlocked, start, end);

	for_each_seg(&s, op->first, op->end) {
		struct pin_leaf *leaf = s.leaf;

		leaf_adopt(leaf);
		if (!leaf->npinned) {
			leaf_fill(leaf, s.lo, s.hi, op_first(op));
			reg.npages += s.hi - s.lo;
			reg.nlocked += op->lock ? s.hi - s.lo : 0;
		} else {
			for (i = s.lo; i < s.hi; i++)
				pin_commit_page(op, leaf, i);
		}
		/* From here on the pages' frames resolve. */
		if (pfns_out)
			leaf_frames_out(leaf, s.lo, s.hi, pfns_out + (s.vpn - op->first));
	}
	op->ctx->pages_pinned += op->end - op->first;
	op->ctx->peak_pages_pinned = IOPT_MAX(op->ctx->peak_pages_pinned,
					      op->ctx->pages_pinned);
}

static int range_vpns(uintptr_t uaddr, size_t npages, uintptr_t *first,
		      uintptr_t *end)
{
	if (!npages || !iopt_is_aligned(uaddr, IOPT_PIN_PAGE_SIZE))
		return -EINVAL;
	*first = uaddr >> IOPT_PIN_PAGE_SHIFT;
	if (npages > (UINTPTR_MAX >> IOPT_PIN_PAGE_SHIFT) - *first)
		return -EOVERFLOW;
	*end = *first + npages;
	return 0;
}

int iopt_pin_range(struct iopt_ctx *ctx, uintptr_t uaddr, size_t npages,
		   bool writable, uint64_t *pfns_out)
{
	struct pin_op op = {
		.ctx = ctx,
		.writable = writable,
		.lock = ctx->backend == IOPT_PIN_MLOCK,
	};
	int rc = range_vpns(uaddr, npages, &op.first, &op.end);

	if (rc)
		return rc;
	iopt_phys_lock();
	rc = pin_leaves_get(&op);
	if (rc)
		goto out_trim;
	rc = pin_check(&op);
	if (rc)
		goto out_trim;
	if (op.n_populate) {
		rc = pin_populate(&op);
		if (rc)
			goto out_trim;
	}
	if (op.n_unlocked) {
		rc = pin_lock(&op);
		if (rc)
			goto out_trim;
	}
	/* After faulting in: the huge-page probe needs the pages present. */
	if (op.n_unpinned) {
		rc = pin_frames(&op);
		if (rc)
			goto out_unlock_runs;
	}
	pin_commit(&op, pfns_out);
	table_settle(&op, true);
	iopt_phys_unlock();
	return 0;

out_unlock_runs:
	if (op.n_unlocked)
		pin_lock_undo(&op, op.end);
out_trim:
	pin_leaves_trim(&op);
	table_settle(&op, false);
	iopt_phys_unlock();
	return rc;
}

/* ---- unpin ---- */

/* Drops one pin of @op's backend from page @i, and its slot with the last. */
static void unpin_page(struct pin_op *op, struct pin_leaf *leaf, unsigned int i)
{
	uint32_t c = leaf_cnt(leaf, i);

	assert(slot_present(leaf, i));
	assert(op->lock ? cnt_locked(c) : (c & CNT_POP_MAX));
	c -= op_inc(op);
	op->n_unlocked += op->lock && !cnt_locked(c);
	if (cnt_total(c)) {
		page_set(leaf, i, c);
		return;
	}
	op->n_unpinned++;
	if (leaf->scattered)
		iopt_phys_frame_release_locked(leaf_frames(leaf)[i]);
	slot_remove(leaf, i);
}

/*
 * Drops one pin from each page, counting the pages whose last lock and last pin
 * went; their slots, frames and emptied leaves go. The last pins of a uniform
 * leaf, or of every page of a dense one, go in bulk.
 */
static void unpin_counts(struct pin_op *op)
{
	struct pin_seg s;
	unsigned int i;

	for_each_seg(&s, op->first, op->end) {
		struct pin_leaf *leaf = s.leaf;
		unsigned int n = s.hi - s.lo;

		assert(leaf);
		if (leaf_last_pins(leaf, s.lo, s.hi, op_inc(op))) {
			op->n_unlocked += op->lock ? n : 0;
			op->n_unpinned += n;
			if (n == leaf->npinned)
				leaf_release(leaf);
			else
				leaf_clear(leaf, s.lo, s.hi);
			continue;
		}
		for (i = s.lo; i < s.hi; i++)
			unpin_page(op, leaf, i);
		if (leaf->npinned)
			leaf_settle(leaf);
		else
			leaf_drop(leaf);
	}
}

/* Runs of pages whose last lock went: munlock and count. */
static void unpin_unlock(const struct pin_op *op)
{
	uintptr_t start, end;

	for (start = op->first;
	     op_run_next(op, pred_unlocked, op->n_unlocked, &start, &end);
	     start = end) {
		run_munlock(start, end);
		reg.nlocked_runs -= run_delta(pred_unlocked, start, end);
		reg.nlocked -= end - start;
	}
}

/* Runs of pages whose last pin went: count them out. */
static void unpin_runs(const struct pin_op *op)
{
	uintptr_t start, end;

	for (start = op->first;
	     op_run_next(op, pred_unpinned, op->n_unpinned, &start, &end);
	     start = end) {
		reg.nruns -= run_delta(pred_unpinned, start, end);
		reg.npages -= end - start;
	}
}

void iopt_unpin_range(struct iopt_ctx *ctx, uintptr_t uaddr, size_t npages)
{
	struct pin_op op = {
		.ctx = ctx,
		.lock = ctx->backend == IOPT_PIN_MLOCK,
	};

	if (range_vpns(uaddr, npages, &op.first, &op.end))
		return;
	iopt_phys_lock();
	unpin_counts(&op);
	if (op.n_unlocked)
		unpin_unlock(&op);
	if (op.n_unpinned)
		unpin_runs(&op);
	ctx->pages_pinned -= npages;
	iopt_phys_unlock();
}

/* ---- reading ---- */

int iopt_pin_lookup(uintptr_t uaddr, size_t npages, uint64_t *pfns_out)
{
	uintptr_t first, end;
	struct pin_seg s;
	int rc = range_vpns(uaddr, npages, &first, &end);

	if (rc)
		return rc == -EOVERFLOW ? -ENOENT : rc;
	iopt_phys_lock();
	for_each_seg(&s, first, end) {
		if (!s.leaf || !leaf_covers(s.leaf, s.lo, s.hi)) {
			rc = -ENOENT;
			break;
		}
		leaf_frames_out(s.leaf, s.lo, s.hi, pfns_out + (s.vpn - first));
	}
	iopt_phys_unlock();
	return rc;
}

/* The leaf of a pinned page, or NULL. Locking: iopt_phys_lock() held. */
static struct pin_leaf *pinned_leaf(uintptr_t uaddr, unsigned int *i)
{
	uintptr_t vpn = uaddr >> IOPT_PIN_PAGE_SHIFT;
	struct pin_leaf *leaf = leaf_find(vpn >> LEAF_SHIFT);

	*i = vpn % LEAF_PAGES;
	return leaf && slot_present(leaf, *i) ? leaf : NULL;
}

size_t iopt_pin_host_pgsize(uintptr_t uaddr)
{
	struct pin_leaf *leaf;
	size_t size = 0;
	unsigned int i;

	iopt_phys_lock();
	leaf = pinned_leaf(uaddr, &i);
	if (leaf && !leaf->probed)
		probe_huge(leaf->chunk, leaf->chunk);
	if (leaf)
		size = leaf->huge ? (size_t)1 << CHUNK_SHIFT : IOPT_PIN_PAGE_SIZE;
	iopt_phys_unlock();
	return size;
}

int iopt_pin_page_state(uintptr_t uaddr, struct iopt_pin_page_state *st)
{
	struct pin_leaf *leaf;
	unsigned int i;
	int rc = -ENOENT;

	memset(st, 0, sizeof(*st));
	iopt_phys_lock();
	leaf = pinned_leaf(uaddr, &i);
	if (leaf) {
		uint32_t c = leaf_cnt(leaf, i);

		st->nlocked = cnt_locked(c);
		st->npopulated = (c & CNT_POP_MAX) >> 16;
		st->write = c & CNT_WRITE;
		st->pfn = page_frame(leaf, i);
		rc = 0;
	}
	iopt_phys_unlock();
	return rc;
}

void iopt_pin_read_stats(struct iopt_ctx *ctx, struct iopt_ctx_stats *out)
{
	iopt_phys_lock();
	out->pages_pinned = ctx->pages_pinned;
	out->peak_pages_pinned = ctx->peak_pages_pinned;
	out->registry_pages = reg.npages;
	out->registry_locked_pages = reg.nlocked;
	out->registry_runs = reg.nruns;
	out->registry_locked_runs = reg.nlocked_runs;
	out->registry_bytes = reg.bytes + reg.cap * sizeof(*reg.slots) +
			      iopt_phys_bytes_locked();
	iopt_phys_unlock();
}
