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
 * one leaf per 2 MiB host chunk holding a 32-bit count per 4 KiB page:
 *   bits 0..15  pins from IOPT_PIN_MLOCK contexts    (page is mlocked iff > 0)
 *   bits 16..30 pins from IOPT_PIN_POPULATE_ONLY ones
 *   bit 31      faulted in for write since the page was first pinned
 * A leaf also records how its pages got frames: one 2 MiB-aligned frame chunk
 * (CONTIGUOUS, FOLIO: frame = base + index) or a frame per page (SCATTERED),
 * chosen by the context whose pin first touched the chunk. A linear leaf is its
 * own frame-table record (struct iopt_phys_chunk): the frame table resolves
 * frame base + i by reading count[i], so pinning writes nothing per page there,
 * and the whole cost is about 4 bytes per pinned page (2 KiB of counts per 2 MiB
 * chunk, plus 4 KiB per GiB of frame gigs).
 *
 * Invariants (outside the lock): every leaf in the table has npinned > 0 and its
 * frames assigned; a page has a frame iff its count (write bit aside) is > 0; a
 * page is mlocked by us iff its lock count is > 0; reg.nruns and
 * reg.nlocked_runs are the numbers of maximal runs of such pages.
 *
 * A pin works in phases so that a failure unwinds exactly: get the leaves, check
 * for count overflow, fault in, mlock, assign frames, then commit counts (which
 * cannot fail). mlock faults pages in itself, so the separate populate call is
 * skipped where PROCMAP_QUERY shows that mlock's faulting is exactly what the
 * pin needs (the common case, and half the cost of a large pin). Pages already
 * pinned skip the middle phases, so pinning memory that some other holder
 * already locked costs a lock and a few hash lookups. Each phase walks the
 * range once at most, and not at all when pin_check() found that none or all
 * of its pages need that phase.
 *
 * Locking: iopt_phys_lock() guards all of it (the frame table and the registry
 * change together) and is held across populate and mlock, as the kernel holds
 * the mmap lock across GUP. Vocabulary: "vpn" is a host address >> 12, "chunk"
 * a host address >> 21; "end" is exclusive.
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
#define CHUNK_SHIFT	(IOPT_PIN_PAGE_SHIFT + LEAF_SHIFT)

#define CNT_LOCK	1u
#define CNT_LOCK_MAX	0xffffu
#define CNT_POP		(1u << 16)
#define CNT_POP_MAX	(0x7fffu << 16)
#define CNT_WRITE	(1u << 31)
_Static_assert(~CNT_WRITE == IOPT_PHYS_PINNED_MASK,
	       "the frame table reads pin counts to resolve linear frames");

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

/* All fields (r): iopt_phys_lock(). */
struct pin_leaf {
	uintptr_t chunk;
	uint64_t frame_base;		/* linear leaves: frame of page 0 */
	uint64_t *frames;		/* scattered leaves: frame per page */
	uint32_t npinned;		/* pages whose count is > 0 */
	bool assigned;			/* frame_base or frames is valid */
	bool huge;			/* one PMD-mapped page at first pin */
	struct iopt_phys_chunk phys;	/* linear leaves: published frame record */
	/* Written under the lock, read lock-free by iopt_phys_to_host(). */
	_Atomic uint32_t count[LEAF_PAGES];
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
	size_t bytes;			/* (r) heap: leaves, frame arrays */
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

static uint32_t cnt_total(uint32_t c)
{
	return c & ~CNT_WRITE;
}

static uint32_t cnt_locked(uint32_t c)
{
	return c & CNT_LOCK_MAX;
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
	table_place(reg.slots, reg.cap, leaf);
	reg.nleaves++;
	reg.bytes += sizeof(*leaf);
	return 1;
}

/* Frees a leaf without pins, giving back its frame chunk or frame array. */
static void leaf_drop(struct pin_leaf *leaf)
{
	assert(!leaf->npinned);
	if (leaf->assigned && leaf->frames) {
		iopt_free(leaf->frames);
		reg.bytes -= LEAF_PAGES * sizeof(*leaf->frames);
	} else if (leaf->assigned) {
		iopt_phys_chunk_release_locked(leaf->frame_base);
	}
	table_remove(leaf);
	iopt_free(leaf);
	reg.bytes -= sizeof(*leaf);
}

static uint32_t cnt_get(const struct pin_leaf *leaf, uintptr_t vpn)
{
	return atomic_load_explicit(&leaf->count[vpn % LEAF_PAGES],
				    memory_order_relaxed);
}

static void cnt_set(struct pin_leaf *leaf, uintptr_t vpn, uint32_t count)
{
	atomic_store_explicit(&leaf->count[vpn % LEAF_PAGES], count,
			      memory_order_relaxed);
}

static uint32_t page_count(uintptr_t vpn)
{
	struct pin_leaf *leaf = leaf_find(vpn >> LEAF_SHIFT);

	return leaf ? cnt_get(leaf, vpn) : 0;
}

static uint64_t page_frame(const struct pin_leaf *leaf, uintptr_t vpn)
{
	uint32_t i = vpn % LEAF_PAGES;

	return leaf->frames ? leaf->frames[i] : leaf->frame_base + i;
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
 * without a leaf count as 0. Return: false when there is none, else the run in
 * [*start, *run_end).
 */
static bool run_next(const struct pin_op *op, page_pred pred, uintptr_t end,
		     uintptr_t *start, uintptr_t *run_end)
{
	struct pin_leaf *leaf = NULL;
	uintptr_t vpn, chunk = UINTPTR_MAX;
	bool in_run = false;

	for (vpn = *start; vpn < end; vpn++) {
		bool match;

		if (vpn >> LEAF_SHIFT != chunk) {
			chunk = vpn >> LEAF_SHIFT;
			leaf = leaf_find(chunk);
		}
		match = pred(op, leaf ? cnt_get(leaf, vpn) : 0);
		if (match && !in_run) {
			*start = vpn;
			in_run = true;
		} else if (!match && in_run) {
			break;
		}
	}
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

/* Drops the leaves of the range that hold no pin (created by a failed pin). */
static void pin_leaves_trim(const struct pin_op *op)
{
	uintptr_t chunk;

	for (chunk = op->first >> LEAF_SHIFT;
	     chunk <= (op->end - 1) >> LEAF_SHIFT; chunk++) {
		struct pin_leaf *leaf = leaf_find(chunk);

		if (leaf && !leaf->npinned)
			leaf_drop(leaf);
	}
}

/* Finds what the range needs; -ENOMEM when a count would overflow. */
static int pin_check(struct pin_op *op)
{
	struct pin_leaf *leaf = NULL;
	uintptr_t vpn;

	for (vpn = op->first; vpn < op->end; vpn++) {
		uint32_t c;

		if (!leaf || vpn % LEAF_PAGES == 0)
			leaf = leaf_find(vpn >> LEAF_SHIFT);
		c = cnt_get(leaf, vpn);

		if (op->lock ? cnt_locked(c) == CNT_LOCK_MAX :
			       (c & CNT_POP_MAX) == CNT_POP_MAX)
			return -ENOMEM;
		op->n_unpinned += pred_unpinned(op, c);
		op->n_populate += pred_needs_populate(op, c);
		op->n_populate_locked += pred_needs_populate_locked(op, c);
		op->n_unlocked += op->lock && pred_unlocked(op, c);
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

/* Marks leaves of the range that get their first pin now when they are huge. */
static void probe_huge(const struct pin_op *op)
{
	uintptr_t start = (op->first >> LEAF_SHIFT) << CHUNK_SHIFT;
	uintptr_t end = ((op->end - 1) >> LEAF_SHIFT << CHUNK_SHIFT) +
			((uintptr_t)1 << CHUNK_SHIFT);
	struct pin_page_region vec[16];
	struct pin_pm_scan_arg arg;
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
			return;
		for (i = 0; i < n; i++) {
			uintptr_t c;

			for (c = IOPT_ALIGN_UP((uintptr_t)vec[i].start, (uintptr_t)1 << CHUNK_SHIFT);
			     c + ((uintptr_t)1 << CHUNK_SHIFT) <= vec[i].end;
			     c += (uintptr_t)1 << CHUNK_SHIFT) {
				struct pin_leaf *leaf = leaf_find(c >> CHUNK_SHIFT);

				if (leaf && !leaf->npinned)
					leaf->huge = true;
			}
		}
		if (arg.walk_end <= start)
			return;
		start = arg.walk_end;
	}
}

/* Gives a leaf without pins its frames, by the pinning context's model. */
static int leaf_assign(const struct pin_op *op, struct pin_leaf *leaf)
{
	int rc;

	if (op->ctx->model == IOPT_PHYS_SCATTERED) {
		leaf->frames = iopt_calloc(LEAF_PAGES, sizeof(*leaf->frames));
		if (!leaf->frames)
			return -ENOMEM;
		reg.bytes += LEAF_PAGES * sizeof(*leaf->frames);
	} else {
		leaf->phys.host_base = leaf->chunk << CHUNK_SHIFT;
		leaf->phys.pinned = leaf->count;
		rc = iopt_phys_chunk_reserve_locked(op->ctx->model, leaf->chunk,
						    (op->end - 1) >> LEAF_SHIFT,
						    &leaf->phys, &leaf->frame_base);
		if (rc)
			return rc;
	}
	leaf->assigned = true;
	return 0;
}

/* Undoes pin_frames() for [op->first, end): scattered frames of unpinned pages go. */
static void pin_frames_undo(const struct pin_op *op, uintptr_t end)
{
	uintptr_t vpn;

	for (vpn = op->first; vpn < end; vpn++) {
		struct pin_leaf *leaf = leaf_find(vpn >> LEAF_SHIFT);

		if (leaf->frames && !cnt_total(cnt_get(leaf, vpn)))
			iopt_phys_frame_release_locked(page_frame(leaf, vpn));
	}
}

/*
 * Assigns frames to every page of the range that is not pinned yet. A linear
 * leaf needs nothing per page: its frames resolve once commit counts the pins.
 */
static int pin_frames(const struct pin_op *op)
{
	struct pin_leaf *leaf = NULL;
	uintptr_t vpn;
	int rc;

	if (op->new_leaf)
		probe_huge(op);
	for (vpn = op->first; vpn < op->end; vpn++) {
		if (!leaf || vpn % LEAF_PAGES == 0)
			leaf = leaf_find(vpn >> LEAF_SHIFT);
		if (cnt_total(cnt_get(leaf, vpn)))
			continue;
		if (!leaf->assigned) {
			rc = leaf_assign(op, leaf);
			if (rc)
				goto err_undo;
		}
		if (!leaf->frames) {
			vpn |= LEAF_PAGES - 1;
			continue;
		}
		rc = iopt_phys_frame_reserve_locked(vpn_host(vpn),
						    &leaf->frames[vpn % LEAF_PAGES]);
		if (rc)
			goto err_undo;
	}
	return 0;

err_undo:
	pin_frames_undo(op, vpn);
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

/* The state change, after every fallible step succeeded. */
static void pin_commit(const struct pin_op *op, uint64_t *pfns_out)
{
	struct pin_leaf *leaf = NULL;
	uint32_t inc = op->lock ? CNT_LOCK : CNT_POP;
	uintptr_t vpn, start, end;

	for (start = op->first;
	     op_run_next(op, pred_unpinned, op->n_unpinned, &start, &end);
	     start = end)
		reg.nruns += run_delta(pred_unpinned, start, end);
	for (start = op->first;
	     op_run_next(op, pred_unlocked, op->n_unlocked, &start, &end);
	     start = end)
		reg.nlocked_runs += run_delta(pred_unlocked, start, end);

	for (vpn = op->first; vpn < op->end; vpn++) {
		uint32_t count;

		if (!leaf || vpn % LEAF_PAGES == 0)
			leaf = leaf_find(vpn >> LEAF_SHIFT);
		count = cnt_get(leaf, vpn);
		if (!cnt_total(count)) {
			leaf->npinned++;
			reg.npages++;
		}
		if (op->lock && !cnt_locked(count))
			reg.nlocked++;
		count += inc;
		if (op->writable)
			count |= CNT_WRITE;
		/* A linear leaf's frame resolves from this store on. */
		cnt_set(leaf, vpn, count);
		if (pfns_out)
			pfns_out[vpn - op->first] = page_frame(leaf, vpn);
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

/* Runs of pages whose last pin went: frames and emptied leaves go. */
static void unpin_release(const struct pin_op *op)
{
	uintptr_t start, end, vpn;

	for (start = op->first;
	     op_run_next(op, pred_unpinned, op->n_unpinned, &start, &end);
	     start = end) {
		reg.nruns -= run_delta(pred_unpinned, start, end);
		reg.npages -= end - start;
		for (vpn = start; vpn < end; vpn++) {
			struct pin_leaf *leaf = leaf_find(vpn >> LEAF_SHIFT);

			/* Clears the write flag; the frame stopped resolving already. */
			cnt_set(leaf, vpn, 0);
			if (leaf->frames)
				iopt_phys_frame_release_locked(page_frame(leaf, vpn));
			if (!--leaf->npinned)
				leaf_drop(leaf);
		}
	}
}

void iopt_unpin_range(struct iopt_ctx *ctx, uintptr_t uaddr, size_t npages)
{
	struct pin_op op = {
		.ctx = ctx,
		.lock = ctx->backend == IOPT_PIN_MLOCK,
	};
	uint32_t dec = op.lock ? CNT_LOCK : CNT_POP;
	struct pin_leaf *leaf = NULL;
	uintptr_t vpn;

	if (range_vpns(uaddr, npages, &op.first, &op.end))
		return;
	iopt_phys_lock();
	for (vpn = op.first; vpn < op.end; vpn++) {
		uint32_t count;

		if (!leaf || vpn % LEAF_PAGES == 0)
			leaf = leaf_find(vpn >> LEAF_SHIFT);
		assert(leaf);
		count = cnt_get(leaf, vpn);
		assert(op.lock ? cnt_locked(count) : (count & CNT_POP_MAX));
		count -= dec;
		cnt_set(leaf, vpn, count);
		op.n_unlocked += op.lock && !cnt_locked(count);
		op.n_unpinned += !cnt_total(count);
	}
	unpin_unlock(&op);
	unpin_release(&op);
	ctx->pages_pinned -= npages;
	iopt_phys_unlock();
}

int iopt_pin_lookup(uintptr_t uaddr, size_t npages, uint64_t *pfns_out)
{
	struct pin_leaf *leaf = NULL;
	uintptr_t first, end, vpn;
	int rc = range_vpns(uaddr, npages, &first, &end);

	if (rc)
		return rc == -EOVERFLOW ? -ENOENT : rc;
	iopt_phys_lock();
	for (vpn = first; vpn < end; vpn++) {
		if (!leaf || vpn % LEAF_PAGES == 0)
			leaf = leaf_find(vpn >> LEAF_SHIFT);
		if (!leaf || !cnt_total(cnt_get(leaf, vpn))) {
			rc = -ENOENT;
			break;
		}
		pfns_out[vpn - first] = page_frame(leaf, vpn);
	}
	iopt_phys_unlock();
	return rc;
}

size_t iopt_pin_host_pgsize(uintptr_t uaddr)
{
	uintptr_t vpn = uaddr >> IOPT_PIN_PAGE_SHIFT;
	struct pin_leaf *leaf;
	size_t size = 0;

	iopt_phys_lock();
	leaf = leaf_find(vpn >> LEAF_SHIFT);
	if (leaf && cnt_total(cnt_get(leaf, vpn)))
		size = leaf->huge ? (size_t)1 << CHUNK_SHIFT : IOPT_PIN_PAGE_SIZE;
	iopt_phys_unlock();
	return size;
}

int iopt_pin_page_state(uintptr_t uaddr, struct iopt_pin_page_state *st)
{
	uintptr_t vpn = uaddr >> IOPT_PIN_PAGE_SHIFT;
	struct pin_leaf *leaf;
	int rc = -ENOENT;

	memset(st, 0, sizeof(*st));
	iopt_phys_lock();
	leaf = leaf_find(vpn >> LEAF_SHIFT);
	if (leaf && cnt_total(cnt_get(leaf, vpn))) {
		uint32_t c = cnt_get(leaf, vpn);

		st->nlocked = cnt_locked(c);
		st->npopulated = (c & CNT_POP_MAX) >> 16;
		st->write = c & CNT_WRITE;
		st->pfn = page_frame(leaf, vpn);
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
