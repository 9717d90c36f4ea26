/* SPDX-License-Identifier: MIT */
/*
 * test_sim_concurrency.c - map/unmap of disjoint ranges on several threads
 * while devices do DMA, as on hardware (domain-contract.md C8).
 *
 * Four mapper threads own one 64 MiB IOVA slice each, all inside the same
 * 1 GiB, so they share (and race to install) the upper tables; each maps and
 * unmaps random pieces of its slice and syncs its own gathers. Two device
 * threads read and write random addresses of two slices each with dirty
 * tracking on, so D-bit compare-and-swaps race with unmaps; they fault on
 * holes, which is expected. Each device thread owns the host memory behind
 * its slices, so host bytes are never written by two threads. Afterwards
 * every slice is unmapped: no leaf may remain and the table count is back to
 * the baseline. Meant for the tsan preset and valgrind (quick mode).
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/ctx.h>
#include <iopt/phys.h>
#include <iopt/sim.h>

#include "domain.h"
#include "pin.h"
#include "util.h"

#define SZ_4K		(UINT64_C(1) << 12)
#define SZ_2M		(UINT64_C(1) << 21)
#define NR_MAPPERS	4
#define NR_DEVICES	2
#define SLICE		(UINT64_C(64) << 20)
#define IOVA_BASE	(UINT64_C(1) << 34)
#define MEM_PER_SLICE	(2 * SZ_2M)
#define MEM_LEN		(NR_MAPPERS * MEM_PER_SLICE)
#define MAX_LIVE	32
#define RW		(IOPT_PROT_READ | IOPT_PROT_WRITE)

struct shared {
	struct iopt_domain *d;
	struct iopt_sim_iommu *iommu;
	uint64_t pa;			/* sim-PA of the pinned buffer */
	unsigned int rounds;
	uint64_t seed;
	int stop;			/* atomic */
	int failures;			/* atomic */
};

struct mapper {
	pthread_t thread;
	struct shared *sh;
	unsigned int idx;
};

struct device {
	pthread_t thread;
	struct shared *sh;
	struct iopt_sim_dev *dev;
	unsigned int idx;
	uint64_t bytes;
};

static void note_failure(struct shared *sh)
{
	__atomic_add_fetch(&sh->failures, 1, __ATOMIC_RELAXED);
}

static void *mapper_main(void *arg)
{
	struct mapper *m = arg;
	struct shared *sh = m->sh;
	uint64_t live_iova[MAX_LIVE], live_len[MAX_LIVE];
	uint64_t rng = sh->seed + m->idx * 7919 + 1;
	uint64_t base = IOVA_BASE + m->idx * SLICE;
	uint64_t pa = sh->pa + m->idx * MEM_PER_SLICE;
	unsigned int nr = 0, i;

	for (i = 0; i < sh->rounds; i++) {
		uint64_t r = iopt_test_rand(&rng);

		if (nr == MAX_LIVE || (nr && r % 3 == 0)) {
			struct iopt_iotlb_gather g;
			unsigned int k = (unsigned int)((r >> 8) % nr);

			iopt_iotlb_gather_init(&g);
			if (iopt_domain_unmap(sh->d, live_iova[k], live_len[k], &g) !=
			    live_len[k])
				note_failure(sh);
			iopt_domain_iotlb_sync(sh->d, &g);
			live_iova[k] = live_iova[--nr];
			live_len[k] = live_len[nr];
		} else {
			/* A 2M-aligned slot of the slice; 4K or 2M pages. */
			uint64_t slot = (r >> 8) % (SLICE / SZ_2M);
			uint64_t len = r & 1 ? SZ_2M : SZ_4K * (1 + (r >> 40) % 16);
			unsigned int k;
			int ret;

			for (k = 0; k < nr; k++)
				if (live_iova[k] == base + slot * SZ_2M)
					break;
			if (k < nr)
				continue;
			ret = iopt_domain_map(sh->d, base + slot * SZ_2M,
					      pa + (slot % 2) * SZ_2M, len, RW);
			if (ret) {
				note_failure(sh);
				continue;
			}
			live_iova[nr] = base + slot * SZ_2M;
			live_len[nr++] = len;
		}
	}
	for (i = 0; i < nr; i++)
		if (iopt_domain_unmap_sync(sh->d, live_iova[i], live_len[i]) !=
		    live_len[i])
			note_failure(sh);
	return NULL;
}

static void *device_main(void *arg)
{
	struct device *dv = arg;
	struct shared *sh = dv->sh;
	uint64_t rng = sh->seed + 104729 * (dv->idx + 1);
	uint8_t buf[256];

	memset(buf, (int)dv->idx, sizeof(buf));
	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		uint64_t r = iopt_test_rand(&rng);
		/* This device owns slices 2 * idx and 2 * idx + 1. */
		unsigned int slice = 2 * dv->idx + (unsigned int)(r & 1);
		uint64_t iova = IOVA_BASE + slice * SLICE +
				((r >> 4) % (SLICE / SZ_2M)) * SZ_2M +
				((r >> 32) % (SZ_2M / 256)) * 256;

		if (r & 2)
			dv->bytes += iopt_sim_dma_write(dv->dev, iova, buf, sizeof(buf));
		else
			dv->bytes += iopt_sim_dma_read(dv->dev, iova, buf, sizeof(buf));
	}
	return NULL;
}

static void test_parallel_map_unmap_with_dma(void **state)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.pin_backend = IOPT_PIN_POPULATE_ONLY,
		.phys_model = IOPT_PHYS_CONTIGUOUS,
	};
	struct iopt_sim_iommu_config icfg = { .inval_model = IOPT_SIM_INVAL_AMD };
	struct iopt_sim_domain_config dcfg = { .table_arena_bytes = 64 << 20 };
	struct mapper mappers[NR_MAPPERS];
	struct device devices[NR_DEVICES];
	struct shared sh = { 0 };
	struct iopt_ctx *ctx;
	uint64_t *pfns, total = 0;
	uint32_t baseline;
	uint8_t *map, *buf;
	unsigned int i;

	(void)state;
	sh.seed = iopt_test_seed();
	sh.rounds = iopt_test_quick() ? 300 : 20000;
	assert_int_equal(iopt_ctx_alloc(&opts, &ctx), 0);
	map = mmap(NULL, MEM_LEN + SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	buf = (uint8_t *)IOPT_ALIGN_UP((uintptr_t)map, (uintptr_t)SZ_2M);
	pfns = calloc(MEM_LEN / SZ_4K, sizeof(*pfns));
	assert_non_null(pfns);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, MEM_LEN / SZ_4K, true,
					pfns), 0);
	sh.pa = pfns[0] << IOPT_PHYS_FRAME_SHIFT;
	for (i = 1; i < MEM_LEN / SZ_4K; i++)
		assert_int_equal(pfns[i], pfns[0] + i);
	free(pfns);

	assert_int_equal(iopt_sim_iommu_alloc(&icfg, &sh.iommu), 0);
	assert_int_equal(iopt_sim_domain_alloc(sh.iommu, &dcfg, &sh.d), 0);
	assert_int_equal(sh.d->ops->set_dirty_tracking(sh.d, true), 0);
	baseline = iopt_sim_domain_nr_tables(sh.d);

	for (i = 0; i < NR_DEVICES; i++) {
		devices[i] = (struct device){ .sh = &sh, .idx = i };
		assert_int_equal(iopt_sim_dev_alloc(sh.iommu, i, &devices[i].dev), 0);
		assert_int_equal(iopt_sim_dev_attach(devices[i].dev, sh.d), 0);
		assert_int_equal(pthread_create(&devices[i].thread, NULL,
						device_main, &devices[i]), 0);
	}
	for (i = 0; i < NR_MAPPERS; i++) {
		mappers[i] = (struct mapper){ .sh = &sh, .idx = i };
		assert_int_equal(pthread_create(&mappers[i].thread, NULL,
						mapper_main, &mappers[i]), 0);
	}
	for (i = 0; i < NR_MAPPERS; i++)
		pthread_join(mappers[i].thread, NULL);
	__atomic_store_n(&sh.stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < NR_DEVICES; i++) {
		pthread_join(devices[i].thread, NULL);
		total += devices[i].bytes;
		iopt_sim_dev_destroy(devices[i].dev);
	}
	printf("# device bytes transferred: %llu\n", (unsigned long long)total);

	assert_int_equal(__atomic_load_n(&sh.failures, __ATOMIC_RELAXED), 0);
	assert_int_equal(iopt_sim_domain_count_leaves(sh.d, 0, UINT64_MAX, NULL), 0);
	assert_int_equal(iopt_domain_unmap_sync(sh.d, 0, UINT64_C(1) << 39),
			 UINT64_C(1) << 39);
	assert_int_equal(iopt_sim_domain_nr_tables(sh.d), baseline);
	sh.d->ops->free(sh.d);
	iopt_sim_iommu_destroy(sh.iommu);
	iopt_unpin_range(ctx, (uintptr_t)buf, MEM_LEN / SZ_4K);
	munmap(map, MEM_LEN + SZ_2M);
	iopt_ctx_destroy(ctx);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_parallel_map_unmap_with_dma),
};

IOPT_TEST_MAIN(tests)
