/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ioas.c - differential fuzzing of libiopt against the reference model
 * (tests/support/model.h).
 *
 * The input is a sequence of operations, one opcode byte and a few argument
 * bytes each (missing bytes read as 0, so every input is valid). They run on
 * two IOASes, two simulated domains (AMD v1 with a full aperture, VT-d with a
 * 48-bit one, each with a device doing DMA through it) and two pinning
 * accesses (the second one internal, a locking one, when the input starts
 * with INTERNAL_MAGIC), over a 64-page IOVA window per IOAS (the rest of the IOVA space
 * is reserved, so the model's flat arrays see everything). Sources are 64
 * pages of anonymous memory and a 16-page memfd.
 *
 * After every operation: the return code and output values equal the
 * model's; then the observable state is compared (compare_state(): areas,
 * prot and sources; every domain's translation of every window page and its
 * leaf count; the IOVA ranges and alignment; the accesses' pins; the pinned
 * and charged page counts) and iopt_ioas_check_set(IOPT_CHECK_COMPLETE) must
 * hold. Data moved by rw and DMA is checked against the memory itself. At
 * the end everything is torn down and no allocation may be left.
 */
#include "fuzz_ioas.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iopt/access.h>
#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "alloc.h"
#include "io_pagetable.h"
#include "model.h"
#include "pages.h"

#define PG MODEL_PAGE
#define NPAGES MODEL_PAGES
#define BUF_PAGES 64
#define FILE_PAGES 16
#define MAX_OPS 256
#define INTERNAL_MAGIC 0xa5

/* Process-wide pieces that outlive one input: the sources. */
static struct {
	bool ready;
	uint8_t *buf;		/* BUF_PAGES, 2 MiB aligned */
	uint8_t *fmap;		/* our own view of the memfd */
	int memfd;
	long live;		/* allocations between inputs */
} g;

/* One input's objects. */
struct run {
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *dom[MODEL_NDOM];
	struct iopt_sim_dev *dev[MODEL_NDOM];
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas[MODEL_NIOAS];
	struct model_drv drv[MODEL_NACC];
	struct model m;
	const uint8_t *p;
	size_t left;
	unsigned int op;
	const uint8_t *op_start;	/* the current operation's bytes */
	char last_log[256];
};

static struct run *cur;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_ioas: op %u: ", cur ? cur->op : 0);
	if (cur && cur->op_start) {
		for (const uint8_t *b = cur->op_start; b < cur->p; b++)
			fprintf(stderr, "%u ", *b);
		fprintf(stderr, ": ");
	}
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (cur && cur->last_log[0])
		fprintf(stderr, "fuzz_ioas: last log: %s\n", cur->last_log);
	abort();
}

#define CHECK_EQ(what, got, want)                                              \
	do {                                                                   \
		uint64_t got_ = (uint64_t)(got), want_ = (uint64_t)(want);     \
		if (got_ != want_)                                             \
			fail("%s: got %" PRId64 " (0x%" PRIx64 "), model %"    \
			     PRId64 " (0x%" PRIx64 ")", what, (int64_t)got_,    \
			     got_, (int64_t)want_, want_);                     \
	} while (0)

static void log_keep(void *data, const char *msg)
{
	struct run *r = data;

	snprintf(r->last_log, sizeof(r->last_log), "%s", msg);
}

/* ---- sources ---- */

static uint64_t src_addr(int32_t src)
{
	if (src < BUF_PAGES)
		return (uintptr_t)g.buf + (uint64_t)src * PG;
	return (uint64_t)(src - BUF_PAGES) * PG;
}

static uint8_t *src_host(int32_t src)
{
	if (src < BUF_PAGES)
		return g.buf + (size_t)src * PG;
	return g.fmap + (size_t)(src - BUF_PAGES) * PG;
}

static void setup_once(void)
{
	uint8_t *raw;

	if (g.ready)
		return;
	raw = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail("mmap");
	g.buf = (uint8_t *)(((uintptr_t)raw + (2u << 20) - 1) &
			    ~(uintptr_t)((2u << 20) - 1));
	/*
	 * Every page of both sources differs from every other at each offset
	 * (an odd multiplier of the page number, below 256 pages), so bytes
	 * read from the wrong page never pass compare_bytes().
	 */
	for (size_t i = 0; i != BUF_PAGES * PG; i++)
		g.buf[i] = (uint8_t)((i * 31 + 7) ^ (i / PG * 0x5b));
	g.memfd = memfd_create("iopt-fuzz", 0);
	if (g.memfd < 0 || ftruncate(g.memfd, FILE_PAGES * PG))
		fail("memfd");
	g.fmap = mmap(NULL, FILE_PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED,
		      g.memfd, 0);
	if (g.fmap == MAP_FAILED)
		fail("mmap memfd");
	for (size_t i = 0; i != FILE_PAGES * PG; i++)
		g.fmap[i] = (uint8_t)((i * 13 + 1) ^ (i / PG * 0x3d));
	g.live = iopt_alloc_live();
	g.ready = true;
}

/* ---- input decoding ---- */

static uint8_t u8(struct run *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static uint16_t u16(struct run *r)
{
	uint16_t lo = u8(r);

	return (uint16_t)(lo | (uint16_t)u8(r) << 8);
}

/* A page number, mostly in the window, sometimes just past it. */
static uint64_t arg_page(struct run *r)
{
	return u8(r) % (NPAGES + 4);
}

/* A page count, 1 to 16 mostly, 0 sometimes. */
static uint64_t arg_npages(struct run *r)
{
	uint8_t b = u8(r);

	return b == 255 ? 0 : 1 + b % 16;
}

static unsigned int arg_prot(struct run *r)
{
	static const unsigned int prots[4] = {
		MODEL_READ | MODEL_WRITE, MODEL_READ, MODEL_WRITE, 0 };
	uint8_t b = u8(r);

	return prots[b % 16 == 15 ? 3 : b % 3];
}

/* ---- the state comparison ---- */

/* One area of the library against the model's pages. */
static void compare_area(struct model_ioas *s, struct iopt_area *area)
{
	uint64_t first = iopt_area_iova(area), last = iopt_area_last_iova(area);
	struct iopt_pages *pages = area->pages;

	if (first % PG || (last + 1) % PG || last >= (uint64_t)NPAGES * PG)
		fail("area [0x%" PRIx64 ", 0x%" PRIx64 "] off the page grid",
		     first, last);
	for (uint64_t p = first / PG; p <= last / PG; p++) {
		uint64_t byte = iopt_area_start_byte(area, p * PG);
		int32_t src = s->src[p];

		if (src < 0 || s->area[p] != s->area[first / PG])
			fail("area [0x%" PRIx64 ", 0x%" PRIx64 "]: page %" PRIu64
			     " not in one model area", first, last, p);
		CHECK_EQ("area prot", area->iommu_prot &
			 (IOPT_PROT_READ | IOPT_PROT_WRITE),
			 ((s->prot[p] & MODEL_READ) ? IOPT_PROT_READ : 0) |
			 ((s->prot[p] & MODEL_WRITE) ? IOPT_PROT_WRITE : 0));
		if (pages->type == IOPT_ADDRESS_FILE)
			CHECK_EQ("file offset", iopt_file_pages(pages)->start + byte,
				 src_addr(src));
		else
			CHECK_EQ("user address",
				 (uintptr_t)pages->uptr + byte, src_addr(src));
	}
	if (first && s->src[first / PG - 1] >= 0 &&
	    s->area[first / PG - 1] == s->area[first / PG])
		fail("area at 0x%" PRIx64 " starts inside a model area", first);
	if (last / PG + 1 < NPAGES && s->src[last / PG + 1] >= 0 &&
	    s->area[last / PG + 1] == s->area[first / PG])
		fail("area at 0x%" PRIx64 " ends inside a model area", first);
}

static void compare_areas(struct run *r, int io)
{
	struct io_pagetable *iopt = &r->ioas[io]->iopt;
	struct model_ioas *s = &r->m.ioas[io];
	uint64_t lib_pages = 0, model_pages = 0;
	struct iopt_area *area;

	iopt_rwlock_read(&iopt->iova_rwsem);
	iopt_for_each_area(area, iopt, 0, UINT64_MAX) {
		compare_area(s, area);
		lib_pages += iopt_area_length(area) / PG;
	}
	iopt_rwlock_unlock(&iopt->iova_rwsem);
	for (int p = 0; p != NPAGES; p++)
		model_pages += s->src[p] >= 0;
	CHECK_EQ("mapped pages", lib_pages, model_pages);
}

/*
 * Is @lib (the library's own view of a memfd page, through a frame) the same
 * page as @ours (the fuzzer's view)? The views have different addresses, so
 * a byte is flipped through ours and must show through the library's, twice
 * (a different page cannot follow both values); then it is put back.
 */
static bool same_file_page(const volatile uint8_t *lib, volatile uint8_t *ours)
{
	uint8_t save = ours[0], flipped = save ^ 0xff;
	bool same;

	if (!lib)
		return false;
	ours[0] = flipped;
	same = lib[0] == flipped;
	ours[0] = save;
	return same && lib[0] == save;
}

/* Every window page translates as the model maps it; nothing else is. */
static void compare_domain(struct run *r, int d)
{
	struct iopt_domain *dom = r->dom[d];
	int io = r->m.dom_ioas[d];
	uint64_t mapped = 0;

	for (int p = 0; io >= 0 && p != NPAGES; p++) {
		int32_t src = r->m.ioas[io].src[p];
		uint64_t pa = dom->ops->iova_to_phys(dom, (uint64_t)p * PG);

		if (src < 0) {
			CHECK_EQ("translation of a hole", pa, 0);
			continue;
		}
		mapped++;
		if (src < BUF_PAGES)
			CHECK_EQ("translation", (uintptr_t)iopt_phys_to_host(pa),
				 (uintptr_t)src_host(src));
		else if (!same_file_page(iopt_phys_to_host(pa), src_host(src)))
			fail("domain %d: page %d does not map memfd page %d", d,
			     p, src - BUF_PAGES);
	}
	CHECK_EQ("domain leaves",
		 iopt_sim_domain_count_leaves(dom, 0,
					      (uint64_t)NPAGES * PG - 1, NULL),
		 mapped);
}

static void compare_ranges(struct run *r, int io)
{
	struct iopt_iova_range got[MODEL_MAX_RANGES + 2];
	struct model_range want[MODEL_MAX_RANGES + 2];
	size_t n = MODEL_MAX_RANGES + 2, wn;
	uint64_t align;

	if (iopt_ioas_iova_ranges(r->ioas[io], got, &n, &align))
		fail("iova_ranges");
	wn = model_iova_ranges(&r->m, io, want, MODEL_MAX_RANGES + 2);
	CHECK_EQ("alignment", align, model_alignment(&r->m, io));
	CHECK_EQ("iova ranges", n, wn);
	for (size_t i = 0; i != n; i++) {
		CHECK_EQ("range start", got[i].start, want[i].start);
		CHECK_EQ("range last", got[i].last, want[i].last);
	}
}

static int cmp_pin(const void *a, const void *b)
{
	const struct model_pin *x = a, *y = b;

	if (x->iova != y->iova)
		return x->iova < y->iova ? -1 : 1;
	return x->length < y->length ? -1 : x->length > y->length;
}

static void compare_pins(struct run *r, int a)
{
	struct model_pin got[MODEL_MAX_PINS], want[MODEL_MAX_PINS];
	unsigned int n = r->drv[a].npins;

	CHECK_EQ("pins", n, r->m.npins[a]);
	memcpy(got, r->drv[a].pins, n * sizeof(*got));
	memcpy(want, r->m.pins[a], n * sizeof(*want));
	qsort(got, n, sizeof(*got), cmp_pin);
	qsort(want, n, sizeof(*want), cmp_pin);
	for (unsigned int i = 0; i != n; i++) {
		CHECK_EQ("pin iova", got[i].iova, want[i].iova);
		CHECK_EQ("pin length", got[i].length, want[i].length);
	}
}

static void compare_state(struct run *r)
{
	struct iopt_ctx_stats st;

	for (int io = 0; io != MODEL_NIOAS; io++) {
		compare_areas(r, io);
		compare_ranges(r, io);
	}
	for (int d = 0; d != MODEL_NDOM; d++)
		compare_domain(r, d);
	for (int a = 0; a != MODEL_NACC; a++)
		compare_pins(r, a);
	iopt_ctx_read_stats(r->ctx, &st);
	CHECK_EQ("pinned pages", st.pages_pinned, model_pinned_pages(&r->m));
	CHECK_EQ("charged pages", st.pages_charged, st.pages_pinned);
	if (iopt_ioas_check_set(r->ioas, MODEL_NIOAS, IOPT_CHECK_COMPLETE))
		fail("invariant check failed");
}

/* ---- operations ---- */

static unsigned int map_flags(unsigned int prot, bool fixed)
{
	return prot | (fixed ? IOPT_IOAS_MAP_FIXED_IOVA : 0);
}

static void op_map(struct run *r, bool file)
{
	int io = u8(r) & 1;
	uint64_t n = arg_npages(r);
	int32_t src = (int32_t)(u8(r) % (file ? FILE_PAGES : BUF_PAGES));
	bool fixed = u8(r) & 1;
	uint64_t iova = arg_page(r) * PG, want_iova = iova;
	unsigned int prot = arg_prot(r);
	int rc, want;

	if (src + n > (file ? FILE_PAGES : BUF_PAGES))
		n = (uint64_t)(file ? FILE_PAGES : BUF_PAGES) - (uint64_t)src;
	if (file)
		rc = iopt_ioas_map_file(r->ioas[io], g.memfd, (uint64_t)src * PG,
					n * PG, &iova, map_flags(prot, fixed));
	else
		rc = iopt_ioas_map(r->ioas[io], src_host(src), n * PG, &iova,
				   map_flags(prot, fixed));
	want = model_map(&r->m, io, file ? src + BUF_PAGES : src, n * PG,
			 &want_iova, fixed, prot, prot & MODEL_WRITE);
	CHECK_EQ(file ? "map_file" : "map", rc, want);
	if (!rc)
		CHECK_EQ("map iova", iova, want_iova);
}

static void op_unmap(struct run *r)
{
	int io = u8(r) & 1;
	uint64_t iova = arg_page(r) * PG, len = arg_npages(r) * PG;
	uint64_t got, want_bytes;
	int rc = iopt_ioas_unmap(r->ioas[io], iova, len, &got);

	CHECK_EQ("unmap", rc, model_unmap(&r->m, io, iova, len, &want_bytes));
	CHECK_EQ("unmapped", got, want_bytes);
}

static void op_unmap_all(struct run *r)
{
	int io = u8(r) & 1;
	uint64_t got, want_bytes;
	int rc = iopt_ioas_unmap_all(r->ioas[io], &got);

	CHECK_EQ("unmap_all", rc, model_unmap_all(&r->m, io, &want_bytes));
	CHECK_EQ("unmapped", got, want_bytes);
}

static void op_copy(struct run *r)
{
	int dst = u8(r) & 1, src = u8(r) & 1;
	uint64_t src_iova = arg_page(r) * PG, len = arg_npages(r) * PG;
	bool fixed = u8(r) & 1;
	uint64_t iova = arg_page(r) * PG, want_iova = iova;
	unsigned int prot = arg_prot(r);
	int rc = iopt_ioas_copy(r->ioas[dst], &iova, r->ioas[src], src_iova, len,
				map_flags(prot, fixed));

	CHECK_EQ("copy", rc, model_copy(&r->m, dst, &want_iova, fixed, src,
					src_iova, len, prot));
	if (!rc)
		CHECK_EQ("copy iova", iova, want_iova);
}

static void op_allow(struct run *r)
{
	int io = u8(r) & 1;
	unsigned int n = u8(r) % 4;
	struct iopt_iova_range lib[4];
	struct model_range mr[4];

	for (unsigned int i = 0; i != n; i++) {
		uint64_t start = arg_page(r) * PG;
		uint64_t len = u8(r) % 24 * PG;

		lib[i] = (struct iopt_iova_range){ start, start + len - 1 };
		if (!len)
			lib[i].last = start;
		mr[i] = (struct model_range){ lib[i].start, lib[i].last, 0 };
	}
	CHECK_EQ("allow", iopt_ioas_allow_iovas(r->ioas[io], n ? lib : NULL, n),
		 model_allow(&r->m, io, mr, n));
}

/* Owner cookies 0..2 of the fuzzer's own. */
static const char owners[3];

static void op_reserve(struct run *r)
{
	int io = u8(r) & 1, owner = u8(r) % 3;
	uint64_t start = arg_page(r) * PG, len = arg_npages(r) * PG;
	uint64_t last = len ? start + len - 1 : start - 1;

	if (r->m.ioas[io].nresv >= MODEL_MAX_RANGES - MODEL_NDOM)
		return;
	CHECK_EQ("reserve", iopt_ioas_reserve(r->ioas[io], start, last,
					      &owners[owner]),
		 model_reserve(&r->m, io, start, last, owner));
}

static void op_unreserve(struct run *r)
{
	int io = u8(r) & 1, owner = u8(r) % 3;

	CHECK_EQ("unreserve", iopt_ioas_unreserve(r->ioas[io], &owners[owner]),
		 0);
	model_unreserve(&r->m, io, owner);
}

static void op_cut(struct run *r)
{
	int io = u8(r) & 1;
	uint64_t iova = arg_page(r) * PG + PG - 1;

	CHECK_EQ("cut", iopt_ioas_cut(r->ioas[io], &iova, 1),
		 model_cut(&r->m, io, iova));
}

static void op_huge(struct run *r)
{
	int io = u8(r) & 1;
	bool on = u8(r) & 1;

	CHECK_EQ("huge pages", iopt_ioas_set_huge_pages(r->ioas[io], on),
		 model_set_huge_pages(&r->m, io, on));
}

static void op_attach(struct run *r)
{
	int io = u8(r) & 1, d = u8(r) & 1;

	/* one domain in two IOASes is a caller bug the model does not know */
	if (r->m.dom_ioas[d] >= 0 && r->m.dom_ioas[d] != io)
		return;
	CHECK_EQ("attach", iopt_ioas_attach_domain(r->ioas[io], r->dom[d]),
		 model_attach(&r->m, io, d));
}

static void op_detach(struct run *r)
{
	int io = u8(r) & 1, d = u8(r) & 1;

	iopt_ioas_detach_domain(r->ioas[io], r->dom[d]);
	model_detach(&r->m, io, d);
}

static void op_pin(struct run *r)
{
	int a = u8(r) & 1;
	uint64_t iova = arg_page(r) * PG, len = arg_npages(r) * PG;
	bool write = u8(r) & 1;

	CHECK_EQ("pin", model_drv_pin(&r->drv[a], iova, len,
				      write ? IOPT_ACCESS_RW_WRITE : 0),
		 model_pin(&r->m, a, iova, len, write));
}

static void op_unpin(struct run *r)
{
	int a = u8(r) & 1;
	unsigned int i = u8(r);
	struct model_pin pin;

	if (!r->m.npins[a])
		return;
	i %= r->m.npins[a];
	pin = r->m.pins[a][i];
	if (!model_drv_unpin_range(&r->drv[a], pin.iova, pin.length))
		fail("the driver lost pin 0x%" PRIx64 "+0x%" PRIx64, pin.iova,
		     pin.length);
	model_unpin(&r->m, a, i);
}

/* The bytes a device or an access sees at [iova, iova + len) of @io. */
static void compare_bytes(struct run *r, int io, uint64_t iova,
			  const uint8_t *data, uint64_t len)
{
	for (uint64_t i = 0; i != len; i++) {
		uint64_t at = iova + i;
		int32_t src = r->m.ioas[io].src[at / PG];

		if (src_host(src)[at % PG] != data[i])
			fail("byte at iova 0x%" PRIx64 ": 0x%02x, memory 0x%02x",
			     at, data[i], src_host(src)[at % PG]);
	}
}

static void op_rw(struct run *r)
{
	static uint8_t data[16 * PG];
	int a = u8(r) & 1;
	uint64_t iova = u16(r) % ((NPAGES + 2) * PG);
	uint64_t len = u16(r) % sizeof(data);
	bool write = u8(r) & 1;
	uint64_t copied, want_copied;
	int rc, want;

	for (uint64_t i = 0; i != len; i++)
		data[i] = (uint8_t)(r->op + i);
	rc = iopt_access_rw(r->drv[a].access, iova, data, len,
			    write ? IOPT_ACCESS_RW_WRITE : 0, &copied);
	want = model_rw(&r->m, a, iova, len, write, &want_copied);
	CHECK_EQ("rw", rc, want);
	CHECK_EQ("rw copied", copied, want_copied);
	if (copied)
		compare_bytes(r, r->m.acc_ioas[a], iova, data, copied);
}

static void op_dirty_enable(struct run *r)
{
	int io = u8(r) & 1, d = u8(r) & 1;
	bool on = u8(r) & 1;

	CHECK_EQ("dirty tracking",
		 iopt_ioas_set_dirty_tracking(r->ioas[io], r->dom[d], on),
		 model_dirty_enable(&r->m, io, d, on));
}

static void op_dirty_read(struct run *r)
{
	int io = u8(r) & 1, d = u8(r) & 1;
	uint64_t iova = arg_page(r) * PG, len = arg_npages(r) * PG;
	bool no_clear = u8(r) & 1;
	uint64_t got[1] = { 0 }, want[1] = { 0 };
	int rc;

	if (!len)
		return;
	rc = iopt_ioas_read_dirty(r->ioas[io], r->dom[d], iova, len, PG,
				  no_clear ? IOPT_DIRTY_NO_CLEAR : 0, got);
	CHECK_EQ("read dirty", rc,
		 model_dirty_read(&r->m, io, d, iova, len, no_clear, want));
	/* a refused read sets no bit either: the domain refuses up front */
	CHECK_EQ("dirty bitmap", got[0], want[0]);
}

static void op_dma(struct run *r)
{
	static uint8_t data[4 * PG];
	struct iopt_sim_fault f;
	int d = u8(r) & 1;
	uint64_t iova = u16(r) % ((NPAGES + 2) * PG);
	uint64_t len = 1 + u16(r) % sizeof(data);
	bool write = u8(r) & 1;
	uint64_t done;

	for (uint64_t i = 0; i != len; i++)
		data[i] = (uint8_t)(r->op * 3 + i);
	if (write)
		done = iopt_sim_dma_write(r->dev[d], iova, data, len);
	else
		done = iopt_sim_dma_read(r->dev[d], iova, data, len);
	while (iopt_sim_fault_pop(r->iommu, &f))
		;
	CHECK_EQ(write ? "dma write" : "dma read", done,
		 model_dma(&r->m, d, iova, len, write));
	if (done)
		compare_bytes(r, r->m.dom_ioas[d], iova, data, done);
}

static void op_acc_attach(struct run *r)
{
	int a = u8(r) & 1, io = u8(r) & 1;

	CHECK_EQ("access attach", iopt_access_attach(r->drv[a].access,
						     r->ioas[io]),
		 model_acc_attach(&r->m, a, io));
}

/*
 * An internal access must unpin before it moves or goes (it gets no
 * callback); doing otherwise is a caller bug the fuzzer does not commit.
 */
static bool internal_pinned(struct run *r, int a)
{
	return r->m.acc_internal[a] && r->m.npins[a];
}

static void op_acc_replace(struct run *r)
{
	int a = u8(r) & 1, io = u8(r) & 1;

	if (internal_pinned(r, a))
		return;
	CHECK_EQ("access replace", iopt_access_replace(r->drv[a].access,
						       r->ioas[io]),
		 model_acc_replace(&r->m, a, io));
}

static void op_acc_detach(struct run *r)
{
	int a = u8(r) & 1;

	if (r->m.acc_ioas[a] < 0 || internal_pinned(r, a))
		return;		/* logged as a driver bug, not an error */
	iopt_access_detach(r->drv[a].access);
	model_acc_detach(&r->m, a);
}

static void op_map_user(struct run *r)
{
	op_map(r, false);
}

static void op_map_file(struct run *r)
{
	op_map(r, true);
}

/* Indexed by the opcode byte modulo the count: the order is the format. */
static const struct {
	void (*run)(struct run *r);
	const char *name;		/* for IOPT_FUZZ_TRACE */
} ops[] = {
	{ op_map_user, "map" }, { op_map_file, "map_file" },
	{ op_unmap, "unmap" }, { op_unmap_all, "unmap_all" },
	{ op_copy, "copy" }, { op_allow, "allow" },
	{ op_reserve, "reserve" }, { op_unreserve, "unreserve" },
	{ op_cut, "cut" }, { op_huge, "huge" }, { op_attach, "attach" },
	{ op_detach, "detach" }, { op_pin, "pin" }, { op_unpin, "unpin" },
	{ op_rw, "rw" }, { op_dirty_enable, "dirty_enable" },
	{ op_dirty_read, "dirty_read" }, { op_dma, "dma" },
	{ op_acc_attach, "acc_attach" }, { op_acc_replace, "acc_replace" },
	{ op_acc_detach, "acc_detach" },
	/* the common ones twice as often */
	{ op_map_user, "map" }, { op_copy, "copy" }, { op_pin, "pin" },
	{ op_rw, "rw" }, { op_dma, "dma" },
};

/* ---- one input ---- */

/* A fresh IOMMU per input: domains keep no state from one to the next. */
static void sim_begin(struct run *r)
{
	static const struct iopt_sim_domain_config cfg[MODEL_NDOM] = {
		{ .format = IOPT_SIM_FMT_AMDV1,
		  .pgsize_mask = PG | (UINT64_C(1) << 21),
		  .table_arena_bytes = 1u << 20 },
		{ .format = IOPT_SIM_FMT_VTDSS, .levels = 4,
		  .pgsize_mask = PG | (UINT64_C(1) << 21),
		  .table_arena_bytes = 1u << 20 },
	};

	if (iopt_sim_iommu_alloc(NULL, &r->iommu))
		fail("iommu");
	for (int d = 0; d != MODEL_NDOM; d++) {
		if (iopt_sim_domain_alloc(r->iommu, &cfg[d], &r->dom[d]) ||
		    iopt_sim_dev_alloc(r->iommu, (uint32_t)d, &r->dev[d]) ||
		    iopt_sim_dev_attach(r->dev[d], r->dom[d]))
			fail("domain %d", d);
	}
}

static void sim_end(struct run *r)
{
	for (int d = 0; d != MODEL_NDOM; d++) {
		/* detached by now: nothing may be left anywhere */
		CHECK_EQ("leaves after detach",
			 iopt_sim_domain_count_leaves(r->dom[d], 0, UINT64_MAX,
						      NULL), 0);
		iopt_sim_dev_attach(r->dev[d], NULL);
		iopt_sim_dev_destroy(r->dev[d]);
		r->dom[d]->ops->free(r->dom[d]);
	}
	iopt_sim_iommu_destroy(r->iommu);
}

static void run_begin(struct run *r)
{
	struct iopt_ctx_options opts = {
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.flags = IOPT_CTX_LIMIT,
		.limit_pages = IOPT_CTX_UNLIMITED,
	};

	sim_begin(r);
	if (iopt_ctx_alloc(&opts, &r->ctx))
		fail("ctx");
	iopt_ctx_set_log(r->ctx, log_keep, r);
	model_init(&r->m, src_addr);
	/* a leading INTERNAL_MAGIC makes access 1 internal (a locking one) */
	if (r->left && *r->p == INTERNAL_MAGIC) {
		u8(r);
		r->m.acc_internal[1] = true;
	}
	for (int io = 0; io != MODEL_NIOAS; io++) {
		if (iopt_ioas_alloc(r->ctx, &r->ioas[io]) ||
		    iopt_ioas_reserve(r->ioas[io], (uint64_t)NPAGES * PG,
				      UINT64_MAX, &g))
			fail("ioas");
	}
	for (int d = 0; d != MODEL_NDOM; d++)
		r->m.dom_aperture_last[d] = r->dom[d]->aperture_last;
	r->m.dom_write_reads[1] = true;		/* domain 1 is VT-d */
	for (int a = 0; a != MODEL_NACC; a++) {
		bool internal = r->m.acc_internal[a];

		model_drv_init(&r->drv[a]);
		if (iopt_access_create(r->ctx, internal ? NULL : &model_drv_ops,
				       &r->drv[a],
				       internal ? IOPT_ACCESS_INTERNAL : 0,
				       &r->drv[a].access))
			fail("access");
	}
}

static void run_end(struct run *r)
{
	for (int a = 0; a != MODEL_NACC; a++) {
		/* an internal access's user unpins before letting go */
		if (r->m.acc_internal[a])
			model_drv_unpin_all(&r->drv[a]);
		iopt_access_destroy(r->drv[a].access);
		CHECK_EQ("pins left", r->drv[a].npins, 0);
		model_drv_destroy(&r->drv[a]);
	}
	for (int d = 0; d != MODEL_NDOM; d++) {
		int io = r->m.dom_ioas[d];

		if (io < 0)
			continue;
		(void)iopt_ioas_set_dirty_tracking(r->ioas[io], r->dom[d], false);
		iopt_ioas_detach_domain(r->ioas[io], r->dom[d]);
	}
	for (int io = 0; io != MODEL_NIOAS; io++)
		CHECK_EQ("destroy", iopt_ioas_destroy(r->ioas[io]), 0);
	iopt_ctx_destroy(r->ctx);
	sim_end(r);
	CHECK_EQ("allocations left", iopt_alloc_live(), g.live);
}

/* IOPT_FUZZ_TRACE=1: one line per operation with its argument bytes. */
static void trace_op(struct run *r, uint8_t code, const uint8_t *start)
{
	fprintf(stderr, "op %u %s:", r->op, ops[code].name);
	for (const uint8_t *b = start + 1; b < r->p; b++)
		fprintf(stderr, " %u", *b);
	fprintf(stderr, "%s%s\n", r->last_log[0] ? " | " : "", r->last_log);
	r->last_log[0] = 0;
}

unsigned int iopt_fuzz_one(const uint8_t *data, size_t size)
{
	static struct run run;
	struct run *r = &run;
	bool trace = getenv("IOPT_FUZZ_TRACE") != NULL;

	setup_once();
	memset(r, 0, sizeof(*r));
	r->p = data;
	r->left = size;
	cur = r;
	run_begin(r);
	while (r->left && r->op != MAX_OPS) {
		const uint8_t *start = r->p;
		uint8_t code;

		r->op_start = start;
		code = u8(r) % (sizeof(ops) / sizeof(ops[0]));
		ops[code].run(r);
		if (trace)
			trace_op(r, code, start);
		compare_state(r);
		r->op++;
	}
	run_end(r);
	cur = NULL;
	return r->op;
}
