/* SPDX-License-Identifier: MIT */
/*
 * emulated_device.c - a device model that reaches guest memory through an
 * access, while the guest unmaps and remaps that memory under it.
 *
 * "Guest RAM" is 1 MiB of this process mapped into an IOAS as four 256 KiB
 * areas. Area 0 holds a ring of descriptors; each points at a buffer in the
 * other areas. The device thread keeps the ring page pinned (the way a virtio
 * back end keeps its rings mapped) and, for each descriptor, copies the
 * buffer out with iopt_access_rw(), sums it and writes the sum back into the
 * descriptor through the pinned page. The guest thread meanwhile unmaps and
 * remaps areas: a copy from an area that is gone fails (-ENOENT, or -EINVAL
 * while it is being unmapped), and an unmap of the ring's area calls the
 * device's unmap callback, which drops the ring pin; the device pins it again
 * once the area is back.
 *
 * At the end every sum the device wrote is checked against the guest's own,
 * and nothing may stay pinned. Exit code: 0 when every check held.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <iopt/access.h>
#include <iopt/ctx.h>
#include <iopt/ioas.h>

#define GUEST_SIZE	(UINT64_C(1) << 20)
#define NAREAS		4
#define AREA_SIZE	(GUEST_SIZE / NAREAS)
#define GUEST_IOVA	UINT64_C(0x40000000)
#define RING_ENTRIES	32
#define BUF_STRIDE	(UINT64_C(24) << 10)	/* buffers in areas 1..3 */
#define GUEST_ROUNDS	300
#define MAP_FLAGS	(IOPT_IOAS_MAP_READABLE | IOPT_IOAS_MAP_WRITEABLE | \
			 IOPT_IOAS_MAP_FIXED_IOVA)

/* One ring entry, as the guest lays it out in its memory. */
struct desc {
	uint64_t addr;		/* IOVA of the buffer */
	uint32_t len;		/* bytes */
	uint32_t done;		/* set by the device */
	uint64_t sum;		/* written by the device */
};

struct device {
	struct iopt_access *access;
	pthread_mutex_t lock;	/* the ring pin vs the unmap callback */
	struct desc *ring;	/* (lock) host address of the pinned ring */
	atomic_bool stop;
	unsigned long processed;
	unsigned long refused;
	unsigned long repins;
	atomic_ulong callbacks;
	atomic_ulong dropped;	/* callbacks that took the ring pin away */
	int bad_errno;
};

static int failures;

static void check(bool ok, const char *what)
{
	if (!ok) {
		printf("  FAILED: %s\n", what);
		failures++;
	}
}

static uint64_t sum_bytes(const unsigned char *p, uint32_t len)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i != len; i++)
		sum = sum * 31 + p[i];
	return sum;
}

/* The access's unmap callback: drop the ring pin if the range holds it. */
static void device_unmap(void *data, uint64_t iova, uint64_t length)
{
	struct device *dev = data;

	atomic_fetch_add(&dev->callbacks, 1);
	pthread_mutex_lock(&dev->lock);
	if (dev->ring && GUEST_IOVA >= iova && GUEST_IOVA - iova < length) {
		iopt_access_unpin_pages(dev->access, GUEST_IOVA, 4096);
		dev->ring = NULL;
		atomic_fetch_add(&dev->dropped, 1);
	}
	pthread_mutex_unlock(&dev->lock);
}

static const struct iopt_access_driver_ops device_ops = {
	.needs_pin_pages = true,
	.unmap = device_unmap,
};

/* Process one descriptor; dev->lock held and the ring pinned. */
static void device_process(struct device *dev, struct desc *d)
{
	unsigned char buf[8192];
	int rc;

	rc = iopt_access_rw(dev->access, d->addr, buf, d->len, 0, NULL);
	if (rc) {
		if (rc != -ENOENT && rc != -EINVAL)
			dev->bad_errno = rc;
		dev->refused++;
		return;
	}
	d->sum = sum_bytes(buf, d->len);
	d->done = 1;
	dev->processed++;
}

static void *device_thread(void *arg)
{
	struct device *dev = arg;
	unsigned int i = 0;

	while (!atomic_load(&dev->stop)) {
		void *page;

		pthread_mutex_lock(&dev->lock);
		if (!dev->ring) {
			int rc = iopt_access_pin_pages(dev->access, GUEST_IOVA,
						       4096, &page, NULL,
						       IOPT_ACCESS_RW_WRITE);
			if (rc == 0) {
				dev->ring = page;
				dev->repins++;
			} else if (rc != -ENOENT && rc != -EINVAL) {
				dev->bad_errno = rc;
			}
		}
		if (dev->ring)
			device_process(dev, &dev->ring[i++ % RING_ENTRIES]);
		pthread_mutex_unlock(&dev->lock);
		sched_yield();
	}
	return NULL;
}

static void sleep_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

/* The guest: unmap an area, let the device run into the hole, map it back. */
static void guest_churn(struct iopt_ioas *ioas, unsigned char *ram)
{
	unsigned int round;

	for (round = 0; round != GUEST_ROUNDS; round++) {
		unsigned int a = round % NAREAS;
		uint64_t iova = GUEST_IOVA + a * AREA_SIZE, unmapped;
		int rc = iopt_ioas_unmap(ioas, iova, AREA_SIZE, &unmapped);

		check(rc == 0 && unmapped == AREA_SIZE, "guest unmap");
		sleep_us(200);
		rc = iopt_ioas_map(ioas, ram + a * AREA_SIZE, AREA_SIZE, &iova,
				   MAP_FLAGS);
		check(rc == 0, "guest remap");
		sleep_us(800);
	}
}

static void guest_setup(unsigned char *ram, uint64_t *expect)
{
	struct desc *ring = (struct desc *)ram;
	unsigned int i;
	uint64_t j;

	for (j = 0; j != GUEST_SIZE; j++)
		ram[j] = (unsigned char)(j * 7 + j / 4096);
	memset(ring, 0, RING_ENTRIES * sizeof(*ring));
	for (i = 0; i != RING_ENTRIES; i++) {
		uint64_t off = AREA_SIZE + i * BUF_STRIDE;

		ring[i].addr = GUEST_IOVA + off;
		ring[i].len = 4000 + 97 * i;	/* crosses page boundaries */
		expect[i] = sum_bytes(ram + off, ring[i].len);
	}
}

int main(void)
{
	uint64_t expect[RING_ENTRIES];
	struct device dev = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct iopt_ctx_stats st;
	struct iopt_ioas *ioas;
	struct iopt_ctx *ctx;
	unsigned char *ram;
	struct desc *ring;
	pthread_t thread;
	unsigned int i, done = 0;

	ram = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED || iopt_ctx_alloc(NULL, &ctx) ||
	    iopt_ioas_alloc(ctx, &ioas))
		return 2;
	ring = (struct desc *)ram;
	guest_setup(ram, expect);
	for (i = 0; i != NAREAS; i++) {
		uint64_t iova = GUEST_IOVA + i * AREA_SIZE;

		check(iopt_ioas_map(ioas, ram + i * AREA_SIZE, AREA_SIZE, &iova,
				    MAP_FLAGS) == 0, "map guest RAM");
	}
	printf("guest: 1 MiB of RAM as %d areas at IOVA 0x%" PRIx64
	       ", a ring of %d descriptors in area 0\n", NAREAS, GUEST_IOVA,
	       RING_ENTRIES);

	check(iopt_access_create(ctx, &device_ops, &dev, 0, &dev.access) == 0,
	      "create access");
	check(iopt_access_attach(dev.access, ioas) == 0, "attach access");
	printf("device: access %" PRIu32 " attached to IOAS %" PRIu32 "\n",
	       iopt_access_id(dev.access), iopt_ioas_id(ioas));
	if (failures)
		return 1;

	pthread_create(&thread, NULL, device_thread, &dev);
	guest_churn(ioas, ram);
	atomic_store(&dev.stop, true);
	pthread_join(thread, NULL);

	printf("guest: %d unmap+remap rounds\n", GUEST_ROUNDS);
	printf("device: %lu descriptors processed, %lu copies refused while "
	       "their area was away\n", dev.processed, dev.refused);
	printf("device: %lu unmap callbacks, %lu of them took the ring pin, "
	       "%lu ring pins\n", atomic_load(&dev.callbacks),
	       atomic_load(&dev.dropped), dev.repins);
	check(dev.bad_errno == 0, "only -ENOENT/-EINVAL refusals");
	check(dev.processed > 0, "the device made progress");
	check(atomic_load(&dev.dropped) > 0, "ring unmaps reached the device");

	for (i = 0; i != RING_ENTRIES; i++) {
		if (!ring[i].done)
			continue;
		done++;
		check(ring[i].sum == expect[i], "descriptor sum");
	}
	printf("guest: %u of %d descriptors completed, every sum checked\n",
	       done, RING_ENTRIES);

	iopt_access_destroy(dev.access);	/* the callback drops the ring */
	iopt_ctx_read_stats(ctx, &st);
	check(st.pages_pinned == 0, "nothing pinned after destroy");
	printf("teardown: access destroyed, %" PRIu64 " pages pinned\n",
	       st.pages_pinned);
	check(iopt_ioas_destroy(ioas) == 0, "destroy IOAS");
	iopt_ctx_destroy(ctx);
	munmap(ram, GUEST_SIZE);
	printf("%s\n", failures ? "emulated_device: FAILED" :
				  "emulated_device: ok");
	return failures ? 1 : 0;
}
