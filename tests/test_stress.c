/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - many threads on shared IOASes (iopt-semantics.md §5.46),
 * then a consistency check. Run it under the tsan preset and valgrind too.
 *
 * Two IOASes, A and B. Domain 0 stays on A with a device doing DMA over a
 * stable area (DMA to memory being unmapped is a caller bug, phys.h), domain
 * 1 is attached and detached on A and domain 2 on B over and over. Mapper
 * threads each own an IOVA window: they map into A, copy A into B, and unmap
 * both. An access on A pins and reads ranges of the mappers' windows and
 * unpins some; the mappers' unmaps meet its pins, so its unmap callback
 * runs on the mapper threads and re-enters the library (unpin). A second
 * access moves between A and B (replace) and copies bytes through whichever
 * it is on. Every call's result must be one the contract allows in a race
 * (listed at each call). A checker thread runs the invariant checker over
 * each IOAS, again and again while the others run: the rules of one IOAS
 * hold at any moment its locks are taken, so every state a step leaves is
 * checked without the checker stalling the steps (checking from the mappers
 * made them wait behind every attach queued on the rwsems: 10x slower).
 * Afterwards the checker must pass over both IOASes with the context and
 * registry sums, and teardown must leave nothing pinned or allocated.
 */
#include "harness.h"

#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#else
#define VALGRIND_HG_DISABLE_CHECKING(addr, len) ((void)(addr), (void)(len))
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include <iopt/access.h>
#include <iopt/check.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>
#include <iopt/sim.h>

#include "alloc.h"
#include "model.h"

#define PAGE 4096u
#define RW (IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE)
#define FIXED IOPT_IOAS_MAP_FIXED_IOVA
#define NMAPPERS 3
#define WIN_PAGES 32
#define BUF_PAGES (NMAPPERS * WIN_PAGES + 16)
#define STABLE_IOVA UINT64_C(0x100000)		/* 16 pages, never unmapped */
#define WIN_IOVA(i) (UINT64_C(0x1000000) * ((i) + 1))

struct stress {
	struct iopt_ctx *ctx;
	struct iopt_sim_iommu *iommu;
	struct iopt_domain *dom[3];
	struct iopt_sim_dev *dev;
	struct iopt_ioas *a, *b;
	struct model_drv drv;		/* pins on A */
	struct iopt_access *mover;	/* rw-only, replaced between A and B */
	uint8_t *buf;
	unsigned int rounds;
	atomic_bool stop;
	atomic_uint bad;		/* results the contract does not allow */
	atomic_uint unexpected_rc;
	atomic_uint unexpected_line;
	unsigned int checks;		/* by the checker thread */
	atomic_bool reported;
	char report[256];		/* the first checker report */
};

struct worker {
	struct stress *s;
	unsigned int index;
	uint64_t seed;
};

/* Count @rc unless it is 0 or one of the errnos the race allows. */
#define expect(s, rc, ok1, ok2, ok3) expect_at(s, rc, ok1, ok2, ok3, __LINE__)

static void expect_at(struct stress *s, int rc, int ok1, int ok2, int ok3,
		      int line)
{
	unsigned int none = 0;

	if (rc != 0 && rc != ok1 && rc != ok2 && rc != ok3) {
		/* the first one explains the rest */
		if (atomic_fetch_add(&s->bad, 1) == 0) {
			atomic_compare_exchange_strong(&s->unexpected_rc, &none,
						       (unsigned int)-rc);
			atomic_store(&s->unexpected_line, (unsigned int)line);
		}
	}
}

/* The checker's first report explains a failed check. */
static void log_first_report(void *data, const char *msg)
{
	struct stress *s = data;

	if (!strncmp(msg, "check:", 6) && !atomic_exchange(&s->reported, true))
		snprintf(s->report, sizeof(s->report), "%s", msg);
}

/* Each IOAS is consistent at every moment, whatever the others are doing. */
static void *checker(void *arg)
{
	struct stress *s = arg;

	while (!atomic_load(&s->stop)) {
		expect(s, iopt_ioas_check(s->a), 1, 1, 1);
		expect(s, iopt_ioas_check(s->b), 1, 1, 1);
		s->checks++;
	}
	return NULL;
}

/* Map, copy into B, unmap both, in this mapper's own window. */
static void *mapper(void *arg)
{
	struct worker *w = arg;
	struct stress *s = w->s;
	uint64_t base = WIN_IOVA(w->index);

	for (unsigned int i = 0; i != s->rounds; i++) {
		uint64_t r = iopt_test_rand(&w->seed);
		uint64_t n = 1 + r % (WIN_PAGES / 2), iova = base, copy = base;
		uint8_t *src = s->buf + (size_t)w->index * WIN_PAGES * PAGE;

		/* the window is ours: nothing may refuse these */
		expect(s, iopt_ioas_map(s->a, src, n * PAGE, &iova, FIXED | RW),
		       1, 1, 1);
		expect(s, iopt_ioas_copy(s->b, &copy, s->a, base, n * PAGE,
					 FIXED | IOPT_IOAS_MAP_READABLE),
		       1, 1, 1);
		if (r & 0x100) {
			uint64_t cut = base + PAGE - 1;

			/* -EINVAL when domain 1 is attached or pins exist */
			expect(s, iopt_ioas_cut(s->a, &cut, 1), -EINVAL, 1, 1);
		}
		expect(s, iopt_ioas_unmap(s->b, base, WIN_PAGES * PAGE, NULL),
		       1, 1, 1);
		expect(s, iopt_ioas_unmap(s->a, base, WIN_PAGES * PAGE, NULL),
		       1, 1, 1);
	}
	return NULL;
}

static void *domains(void *arg)
{
	struct stress *s = arg;

	while (!atomic_load(&s->stop)) {
		expect(s, iopt_ioas_attach_domain(s->a, s->dom[1]), 1, 1, 1);
		expect(s, iopt_ioas_attach_domain(s->b, s->dom[2]), 1, 1, 1);
		iopt_ioas_detach_domain(s->a, s->dom[1]);
		iopt_ioas_detach_domain(s->b, s->dom[2]);
	}
	return NULL;
}

/* Pins and reads in the mappers' windows; areas come and go under it. */
static void *pinner(void *arg)
{
	struct worker *w = arg;
	struct stress *s = w->s;
	uint8_t data[2 * PAGE];

	while (!atomic_load(&s->stop)) {
		uint64_t r = iopt_test_rand(&w->seed);
		uint64_t iova = WIN_IOVA(r % NMAPPERS) + (r >> 8) % 8 * PAGE;
		uint64_t len = (1 + (r >> 16) % 4) * PAGE;

		/* gone (-ENOENT), being unmapped (-EINVAL), table full */
		expect(s, model_drv_pin(&s->drv, iova, len, (r >> 20) & 1),
		       -ENOENT, -EINVAL, -ENOSPC);
		expect(s, iopt_access_rw(s->drv.access, iova + 100, data,
					 sizeof(data), 0, NULL),
		       -ENOENT, -EINVAL, 1);
		if (r & 0x3000000)
			model_drv_unpin(&s->drv, (unsigned int)(r >> 32));
	}
	model_drv_unpin_all(&s->drv);
	return NULL;
}

/* An rw-only access moving between A and B, copying through both. */
static void *mover(void *arg)
{
	struct stress *s = arg;
	uint8_t data[PAGE + 64];
	unsigned int i = 0;

	while (!atomic_load(&s->stop)) {
		expect(s, iopt_access_replace(s->mover, i++ & 1 ? s->a : s->b),
		       1, 1, 1);
		/* the stable area exists in A only; B's windows come and go */
		expect(s, iopt_access_rw(s->mover, STABLE_IOVA + 8, data,
					 sizeof(data), 0, NULL),
		       -ENOENT, -EINVAL, 1);
	}
	return NULL;
}

/* DMA through domain 0 over the stable area: never a fault. */
static void *dma(void *arg)
{
	struct stress *s = arg;
	uint8_t data[3 * PAGE];

	while (!atomic_load(&s->stop)) {
		if (iopt_sim_dma_read(s->dev, STABLE_IOVA + 64, data,
				      sizeof(data)) != sizeof(data) ||
		    memcmp(data, s->buf + BUF_PAGES * PAGE - 16 * PAGE + 64,
			   sizeof(data)))
			atomic_fetch_add(&s->bad, 1);
		if (iopt_sim_dma_write(s->dev, STABLE_IOVA + 5 * PAGE, data,
				       64) != 64)
			atomic_fetch_add(&s->bad, 1);
	}
	return NULL;
}

static const struct iopt_access_driver_ops rw_only_ops = { 0 };

/*
 * Rounds per mapper: 3000, 30 when quick (valgrind), or $IOPT_STRESS_ROUNDS
 * (helgrind sees every lock operation and is ~100x slower than memcheck here,
 * so its short version is a few rounds).
 */
static unsigned int stress_rounds(void)
{
	const char *env = getenv("IOPT_STRESS_ROUNDS");

	if (env && atoi(env) > 0)
		return (unsigned int)atoi(env);
	return iopt_test_quick() ? 30 : 3000;
}

static void setup(struct stress *s)
{
	struct iopt_ctx_options opts = { .pin_backend = IOPT_PIN_POPULATE_ONLY };
	uint64_t iova = STABLE_IOVA;

	memset(s, 0, sizeof(*s));
	s->rounds = stress_rounds();
	s->buf = mmap(NULL, BUF_PAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(s->buf != MAP_FAILED);
	memset(s->buf, 0x3c, BUF_PAGES * PAGE);
	/*
	 * Guest memory: simulated DMA and the CPU side touch it unordered by
	 * design, as a device and a CPU do real RAM. Helgrind would report
	 * every byte (millions of reports, minutes of run time) and check
	 * nothing of the library; a no-op outside valgrind.
	 */
	VALGRIND_HG_DISABLE_CHECKING(s->buf, BUF_PAGES * PAGE);
	assert_int_equal(iopt_ctx_alloc(&opts, &s->ctx), 0);
	/* set before any thread runs: the log may not race with other calls */
	iopt_ctx_set_log(s->ctx, log_first_report, s);
	assert_int_equal(iopt_sim_iommu_alloc(NULL, &s->iommu), 0);
	for (int i = 0; i != 3; i++)
		assert_int_equal(iopt_sim_domain_alloc(s->iommu, NULL,
						       &s->dom[i]), 0);
	assert_int_equal(iopt_ioas_alloc(s->ctx, &s->a), 0);
	assert_int_equal(iopt_ioas_alloc(s->ctx, &s->b), 0);
	assert_int_equal(iopt_ioas_attach_domain(s->a, s->dom[0]), 0);
	assert_int_equal(iopt_ioas_map(s->a, s->buf + (BUF_PAGES - 16) * PAGE,
				       16 * PAGE, &iova, FIXED | RW), 0);
	assert_int_equal(iopt_sim_dev_alloc(s->iommu, 1, &s->dev), 0);
	assert_int_equal(iopt_sim_dev_attach(s->dev, s->dom[0]), 0);
	model_drv_init(&s->drv);
	assert_int_equal(iopt_access_create(s->ctx, &model_drv_ops, &s->drv, 0,
					    &s->drv.access), 0);
	assert_int_equal(iopt_access_attach(s->drv.access, s->a), 0);
	assert_int_equal(iopt_access_create(s->ctx, &rw_only_ops, NULL, 0,
					    &s->mover), 0);
	assert_int_equal(iopt_access_attach(s->mover, s->a), 0);
}

static void teardown(struct stress *s, long live)
{
	struct iopt_ioas *set[2] = { s->a, s->b };
	struct iopt_ctx_stats st;

	assert_int_equal(iopt_ioas_check_set(set, 2, IOPT_CHECK_COMPLETE), 0);
	iopt_access_destroy(s->mover);
	iopt_access_destroy(s->drv.access);
	model_drv_destroy(&s->drv);
	iopt_sim_dev_attach(s->dev, NULL);
	iopt_sim_dev_destroy(s->dev);
	iopt_ioas_detach_domain(s->a, s->dom[0]);
	assert_int_equal(iopt_ioas_destroy(s->a), 0);
	assert_int_equal(iopt_ioas_destroy(s->b), 0);
	iopt_ctx_read_stats(s->ctx, &st);
	assert_int_equal(st.pages_pinned, 0);
	assert_int_equal(st.registry_pages, 0);
	for (int i = 0; i != 3; i++)
		s->dom[i]->ops->free(s->dom[i]);
	iopt_sim_iommu_destroy(s->iommu);
	iopt_ctx_destroy(s->ctx);
	munmap(s->buf, BUF_PAGES * PAGE);
	assert_int_equal(iopt_alloc_live(), live);
}

static void stress_shared_ioas(void **state)
{
	struct worker workers[NMAPPERS + 1];
	pthread_t mappers[NMAPPERS], others[5];
	long live = iopt_alloc_live();
	uint64_t seed = iopt_test_seed();
	struct stress s;

	(void)state;
	setup(&s);
	for (unsigned int i = 0; i != NMAPPERS + 1; i++)
		workers[i] = (struct worker){ &s, i, (seed + i) | 1 };
	for (unsigned int i = 0; i != NMAPPERS; i++)
		assert_int_equal(pthread_create(&mappers[i], NULL, mapper,
						&workers[i]), 0);
	assert_int_equal(pthread_create(&others[0], NULL, domains, &s), 0);
	assert_int_equal(pthread_create(&others[1], NULL, pinner,
					&workers[NMAPPERS]), 0);
	assert_int_equal(pthread_create(&others[2], NULL, mover, &s), 0);
	assert_int_equal(pthread_create(&others[3], NULL, dma, &s), 0);
	assert_int_equal(pthread_create(&others[4], NULL, checker, &s), 0);
	for (unsigned int i = 0; i != NMAPPERS; i++)
		assert_int_equal(pthread_join(mappers[i], NULL), 0);
	atomic_store(&s.stop, true);
	for (unsigned int i = 0; i != 5; i++)
		assert_int_equal(pthread_join(others[i], NULL), 0);
	if (atomic_load(&s.bad))
		fail_msg("%u results outside the contract (first: errno %u at "
			 "line %u) %s", atomic_load(&s.bad),
			 atomic_load(&s.unexpected_rc),
			 atomic_load(&s.unexpected_line), s.report);
	printf("# stress: %u mappers x %u rounds, %u unmap callbacks, %u pins "
	       "left, %u checks of both IOASes\n", NMAPPERS, s.rounds,
	       s.drv.callbacks, model_drv_count(&s.drv), s.checks);
	/*
	 * The full run must have exercised what it is for: unmaps meeting
	 * pins (callbacks re-entering the library; ~165 in 3000 rounds) and
	 * checks taken while the others ran. Short runs may see none.
	 */
	if (s.rounds >= 1000) {
		assert_true(s.drv.callbacks > 0);
		assert_true(s.checks > 0);
	}
	teardown(&s, live);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(stress_shared_ioas),
};

IOPT_TEST_MAIN(tests)
