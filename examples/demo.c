/* SPDX-License-Identifier: MIT */
/*
 * demo.c - libiopt end to end, printing what happened.
 *
 * What a VMM does with an IO address space, on the whole stack and only through
 * the public API (<iopt/iopt.h>): pin-accounted guest RAM mapped into an IOAS, a
 * simulated AMD v1 IOMMU domain attached (the areas are pinned and written into
 * bit-exact page tables), a device doing DMA through the translation (including a
 * write to a read-only buffer and a stray access that fault), dirty tracking for
 * live migration, an emulated device (an access) pinning and copying guest memory,
 * an unmap that asks the emulated device to let go, a copy into a second IOAS, and
 * teardown back to zero pinned pages. Every step checks its result; the exit code
 * is 0 only if all held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/iopt.h>

#define SZ_4K 0x1000ull
#define SZ_2M 0x200000ull
#define RAM_SIZE (8 * SZ_2M)
#define RAM_IOVA 0x100000000ull

static int failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("  FAILED at line %d: %s\n", __LINE__, #cond);  \
			failures++;                                            \
		}                                                              \
	} while (0)

static void log_refusal(void *data, const char *msg)
{
	(void)data;
	printf("  log: %s\n", msg);
}

static void print_pins(struct iopt_ctx *ctx, const char *when)
{
	struct iopt_ctx_stats st;

	iopt_ctx_read_stats(ctx, &st);
	printf("  pins %s: %" PRIu64 " pages pinned, %" PRIu64 " charged, %" PRIu64
	       " locked run(s)\n", when, st.pages_pinned, st.pages_charged,
	       st.registry_locked_runs);
}

static uint64_t pinned(struct iopt_ctx *ctx)
{
	struct iopt_ctx_stats st;

	iopt_ctx_read_stats(ctx, &st);
	return st.pages_pinned;
}

/* The emulated device lets go of its pin when the IOAS owner unmaps. */
struct emu_dev {
	struct iopt_access *access;
	uint64_t pinned_iova;	/* 0: nothing pinned */
	unsigned int callbacks;
};

static void emu_unmap(void *data, uint64_t iova, uint64_t length)
{
	struct emu_dev *emu = data;

	emu->callbacks++;
	if (emu->pinned_iova && emu->pinned_iova - iova < length) {
		iopt_access_unpin_pages(emu->access, emu->pinned_iova, SZ_4K);
		emu->pinned_iova = 0;
	}
}

static const struct iopt_access_driver_ops emu_ops = {
	.needs_pin_pages = true,
	.unmap = emu_unmap,
};

static void *alloc_guest_ram(void **raw)
{
	char *p = mmap(NULL, RAM_SIZE + SZ_2M, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	*raw = p;
	return (void *)(((uintptr_t)p + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
}

static void print_fault(struct iopt_sim_iommu *iommu)
{
	struct iopt_sim_fault f;

	while (iopt_sim_fault_pop(iommu, &f))
		printf("  fault: device %u %s at iova 0x%" PRIx64 ": %s\n",
		       f.dev_id, f.write ? "write" : "read", f.iova,
		       iopt_sim_fault_reason_name(f.reason));
}

int main(void)
{
	struct iopt_ctx_options opts = { .flags = IOPT_CTX_LIMIT,
					 .limit_pages = 64 * 1024 };
	struct iopt_sim_domain_config dcfg = { .format = IOPT_SIM_FMT_AMDV1 };
	struct iopt_ctx *ctx;
	struct iopt_ioas *ioas, *ioas2;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *dom;
	struct iopt_sim_dev *dev;
	struct emu_dev emu = { 0 };
	uint64_t iova, ro_iova, copy_iova, n, mapped = 0, counts[64] = { 0 };
	uint64_t bitmap[1] = { 0 };
	char *ram, buf[64], *ro;
	void *raw, *page;
	int rc;

	printf("libiopt %s: the whole stack, end to end\n\n", iopt_version_string());
	if (iopt_ctx_alloc(&opts, &ctx))
		return 2;
	iopt_ctx_set_log(ctx, log_refusal, NULL);

	printf("1. guest RAM (%llu MiB) and a read-only firmware blob into an IOAS\n",
	       (unsigned long long)(RAM_SIZE >> 20));
	ram = alloc_guest_ram(&raw);
	ro = mmap(NULL, 16 * SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		  -1, 0);
	if (!ram || ro == MAP_FAILED || iopt_ioas_alloc(ctx, &ioas))
		return 2;
	memset(ram, 0x11, RAM_SIZE);
	memset(ro, 0xf0, 16 * SZ_4K);
	iova = RAM_IOVA;
	rc = iopt_ioas_map(ioas, ram, RAM_SIZE, &iova, IOPT_IOAS_MAP_FIXED_IOVA |
			   IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE);
	CHECK(rc == 0);
	printf("  map RAM at iova 0x%" PRIx64 ": %d\n", iova, rc);
	rc = iopt_ioas_map(ioas, ro, 16 * SZ_4K, &ro_iova, IOPT_IOAS_MAP_READABLE);
	CHECK(rc == 0);
	printf("  map blob read-only at an allocated iova 0x%" PRIx64 ": %d\n", ro_iova, rc);
	print_pins(ctx, "with no domain (the kernel pins nothing yet)");
	CHECK(pinned(ctx) == 0);
	iova = RAM_IOVA + SZ_2M;
	rc = iopt_ioas_map(ioas, ro, SZ_4K, &iova,
			   IOPT_IOAS_MAP_FIXED_IOVA | IOPT_IOAS_MAP_READABLE);
	printf("  overlapping map refused: %s\n", strerror(-rc));
	CHECK(rc == -EEXIST);

	printf("\n2. attach a simulated AMD v1 IOMMU domain: pin and fill page tables\n");
	if (iopt_sim_iommu_alloc(NULL, &iommu) || iopt_sim_domain_alloc(iommu, &dcfg, &dom))
		return 2;
	rc = iopt_ioas_attach_domain(ioas, dom);
	CHECK(rc == 0);
	print_pins(ctx, "after attach");
	CHECK(pinned(ctx) == RAM_SIZE / SZ_4K + 16);
	n = iopt_sim_domain_count_leaves(dom, 0, UINT64_MAX, counts);
	printf("  %" PRIu64 " leaves in %u tables (AMD v1 uses any power-of-two size):",
	       n, iopt_sim_domain_nr_tables(dom));
	for (unsigned int i = 0; i < 64; i++) {
		if (counts[i])
			printf(" %" PRIu64 " x %llu KiB", counts[i], (1ull << i) >> 10);
		mapped += counts[i] << i;
	}
	printf("\n");
	CHECK(mapped == RAM_SIZE + 16 * SZ_4K);
	CHECK(n < RAM_SIZE / SZ_2M + 16);	/* huge leaves, not 4 KiB pages */

	printf("\n3. a device does DMA through the translation\n");
	if (iopt_sim_dev_alloc(iommu, 7, &dev) || iopt_sim_dev_attach(dev, dom))
		return 2;
	CHECK(iopt_ioas_set_dirty_tracking(ioas, dom, true) == 0);
	n = iopt_sim_dma_write(dev, RAM_IOVA + 3 * SZ_4K + 100, "hello from DMA", 15);
	printf("  DMA write to RAM: %" PRIu64 " bytes; guest sees \"%s\"\n", n,
	       ram + 3 * SZ_4K + 100);
	CHECK(n == 15 && strcmp(ram + 3 * SZ_4K + 100, "hello from DMA") == 0);
	n = iopt_sim_dma_read(dev, ro_iova, buf, sizeof(buf));
	printf("  DMA read of the blob: %" PRIu64 " bytes, first 0x%02x\n", n,
	       (unsigned char)buf[0]);
	CHECK(n == sizeof(buf) && (unsigned char)buf[0] == 0xf0);
	n = iopt_sim_dma_write(dev, ro_iova, buf, 8);
	printf("  DMA write to the read-only blob: %" PRIu64 " bytes\n", n);
	CHECK(n == 0);
	n = iopt_sim_dma_read(dev, RAM_IOVA - SZ_4K, buf, 8);
	printf("  DMA read below RAM: %" PRIu64 " bytes\n", n);
	CHECK(n == 0);
	print_fault(iommu);

	printf("\n4. dirty tracking, as live migration reads it\n");
	rc = iopt_ioas_read_dirty(ioas, dom, RAM_IOVA, 64 * SZ_4K, SZ_4K, 0, bitmap);
	printf("  dirty bitmap of the first 64 pages: 0x%016" PRIx64 " (%d)\n", bitmap[0], rc);
	printf("  (one write dirtied a whole huge leaf: dirty state is per leaf, as on hardware)\n");
	CHECK(rc == 0 && bitmap[0] != 0 && (bitmap[0] & (1ull << 3)));

	printf("\n5. an emulated device (an access) pins a page and copies through the IOAS\n");
	if (iopt_access_create(ctx, &emu_ops, &emu, 0, &emu.access) ||
	    iopt_access_attach(emu.access, ioas))
		return 2;
	rc = iopt_access_pin_pages(emu.access, RAM_IOVA + 5 * SZ_2M, SZ_4K, &page,
				   NULL, IOPT_ACCESS_RW_WRITE);
	CHECK(rc == 0 && page == ram + 5 * SZ_2M);
	if (!rc)
		emu.pinned_iova = RAM_IOVA + 5 * SZ_2M;
	printf("  pinned iova 0x%" PRIx64 " -> host %p (guest RAM + 0x%" PRIx64 ")\n",
	       (uint64_t)(RAM_IOVA + 5 * SZ_2M), page, (uint64_t)((char *)page - ram));
	rc = iopt_access_rw(emu.access, RAM_IOVA + 3 * SZ_4K + 100, buf, 15, 0, &n);
	printf("  rw read %" PRIu64 " bytes: \"%s\"\n", n, buf);
	CHECK(rc == 0 && strcmp(buf, "hello from DMA") == 0);

	printf("\n6. copy the RAM mapping into a second IOAS (shares the pins)\n");
	CHECK(iopt_ioas_alloc(ctx, &ioas2) == 0);
	n = pinned(ctx);
	rc = iopt_ioas_copy(ioas2, &copy_iova, ioas, RAM_IOVA, RAM_SIZE,
			    IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE);
	printf("  copy to iova 0x%" PRIx64 ": %d, pinned pages %" PRIu64 " -> %" PRIu64 "\n",
	       copy_iova, rc, n, pinned(ctx));
	CHECK(rc == 0 && pinned(ctx) == n);

	printf("\n7. unmap guest RAM: the emulated device is asked to let go first\n");
	rc = iopt_ioas_unmap(ioas, RAM_IOVA + SZ_4K, SZ_4K, &n);
	printf("  unmap of one page inside the area: %s (whole areas only)\n", strerror(-rc));
	CHECK(rc == -ENOENT);
	rc = iopt_ioas_unmap(ioas, RAM_IOVA, RAM_SIZE, &n);
	printf("  unmap RAM: %d, %" PRIu64 " bytes, %u callback(s) to the device\n", rc, n,
	       emu.callbacks);
	CHECK(rc == 0 && n == RAM_SIZE && emu.callbacks >= 1 && !emu.pinned_iova);
	n = iopt_sim_dma_read(dev, RAM_IOVA, buf, 8);
	printf("  DMA to the unmapped RAM now: %" PRIu64 " bytes\n", n);
	CHECK(n == 0);
	print_fault(iommu);

	printf("\n8. teardown\n");
	iopt_access_destroy(emu.access);
	iopt_sim_dev_destroy(dev);
	iopt_ioas_detach_domain(ioas, dom);
	dom->ops->free(dom);
	CHECK(iopt_ioas_destroy(ioas) == 0);
	CHECK(iopt_ioas_destroy(ioas2) == 0);
	iopt_sim_iommu_destroy(iommu);
	print_pins(ctx, "at the end");
	CHECK(pinned(ctx) == 0);
	iopt_ctx_destroy(ctx);
	munmap(raw, RAM_SIZE + SZ_2M);
	munmap(ro, 16 * SZ_4K);

	printf("\n%s\n", failures ? "demo FAILED" : "demo OK: every check held");
	return failures ? 1 : 0;
}
