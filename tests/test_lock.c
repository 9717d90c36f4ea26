/* SPDX-License-Identifier: MIT */
/*
 * test_lock.c - the lock-order checker of src/lock.c (debug builds).
 *
 * A checker that never fires proves nothing: each misuse runs in a forked
 * child, which must die of SIGABRT with lockdep's message on its stderr. The
 * documented order itself, and the nested exception, must pass silently and
 * leave the held-lock record empty. With NDEBUG there is no checker: skipped.
 *
 * The small mutex gets the same checks plus the two a hand-made lock needs:
 * that it excludes under contention and that a waiter sleeps in the kernel
 * and is woken. Those run in every build, and under helgrind and TSan they
 * are also what shows the annotations order the protected data.
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock.h"
#include "util.h"

struct locks {
	struct iopt_mutex ioas_lock, pages;
	struct iopt_rwlock domains, iova, iova2;
	struct iopt_small_mutex small_pages;
};

static struct locks L;

static void locks_init(void)
{
	iopt_mutex_init(&L.ioas_lock, IOPT_LOCK_ACCESS_IOAS);
	iopt_rwlock_init(&L.domains, IOPT_LOCK_DOMAINS);
	iopt_rwlock_init(&L.iova, IOPT_LOCK_IOVA);
	iopt_rwlock_init(&L.iova2, IOPT_LOCK_IOVA);
	iopt_mutex_init(&L.pages, IOPT_LOCK_PAGES);
	iopt_small_mutex_init(&L.small_pages, IOPT_LOCK_PAGES);
}

static void locks_destroy(void)
{
	iopt_small_mutex_destroy(&L.small_pages);
	iopt_mutex_destroy(&L.pages);
	iopt_rwlock_destroy(&L.iova2);
	iopt_rwlock_destroy(&L.iova);
	iopt_rwlock_destroy(&L.domains);
	iopt_mutex_destroy(&L.ioas_lock);
}

/*
 * Run @misuse in a child; it must abort, and its stderr must hold @msg.
 * The child's stderr is a pipe read here; no core file is written.
 */
static void assert_aborts(void (*misuse)(void), const char *msg)
{
	char out[512] = { 0 }, chunk[512];
	size_t got = 0;
	ssize_t rc;
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		prctl(PR_SET_DUMPABLE, 0);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		misuse();
		_exit(0);	/* not reached when the checker works */
	}
	close(fds[1]);
	/* drain to EOF: under valgrind the child says more than fits */
	while ((rc = read(fds[0], chunk, sizeof(chunk))) > 0) {
		size_t n = IOPT_MIN((size_t)rc, sizeof(out) - 1 - got);

		memcpy(out + got, chunk, n);
		got += n;
	}
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("child did not abort (status 0x%x), stderr: %s",
			 status, out);
	if (!strstr(out, msg))
		fail_msg("stderr \"%s\" does not say \"%s\"", out, msg);
}

static void iova_then_domains(void)
{
	iopt_rwlock_read(&L.iova);
	iopt_rwlock_write(&L.domains);
}

static void pages_then_ioas_lock(void)
{
	iopt_mutex_lock(&L.pages);
	iopt_mutex_lock(&L.ioas_lock);
}

static void two_iova_not_nested(void)
{
	iopt_rwlock_read(&L.iova);
	iopt_rwlock_read(&L.iova2);
}

static void recursive_read(void)
{
	iopt_rwlock_read(&L.domains);
	iopt_rwlock_read(&L.domains);
}

static void unlock_not_held(void)
{
	iopt_mutex_unlock(&L.pages);
}

static void assert_write_held_for_read(void)
{
	iopt_rwlock_read(&L.iova);
	iopt_assert_held_write(&L.iova);
}

static void small_pages_then_iova(void)
{
	iopt_small_mutex_lock(&L.small_pages);
	iopt_rwlock_read(&L.iova);
}

static void small_recursive(void)
{
	iopt_small_mutex_lock(&L.small_pages);
	iopt_small_mutex_lock(&L.small_pages);
}

static void small_unlock_not_held(void)
{
	iopt_small_mutex_unlock(&L.small_pages);
}

static void small_assert_held_not_held(void)
{
	iopt_assert_held(&L.small_pages);
}

static void small_destroy_locked(void)
{
	iopt_small_mutex_lock(&L.small_pages);
	iopt_small_mutex_destroy(&L.small_pages);
}

static int setup(void **state)
{
	(void)state;
	locks_init();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	locks_destroy();
	return 0;
}

static void out_of_order_aborts(void **state)
{
	(void)state;
#ifdef NDEBUG
	skip();
#endif
	assert_aborts(iova_then_domains, "lock order violation");
	assert_aborts(pages_then_ioas_lock, "lock order violation");
	assert_aborts(two_iova_not_nested, "lock order violation");
}

static void misuse_aborts(void **state)
{
	(void)state;
#ifdef NDEBUG
	skip();
#endif
	assert_aborts(recursive_read, "recursive acquire");
	assert_aborts(unlock_not_held, "release of a lock not held");
	assert_aborts(assert_write_held_for_read, "not held for writing");
}

/* The documented order, released in any order, and the nested exception. */
static void documented_order_passes(void **state)
{
	(void)state;
#ifdef NDEBUG
	skip();
#endif
	iopt_mutex_lock(&L.ioas_lock);
	iopt_rwlock_read(&L.domains);
	iopt_rwlock_write(&L.iova);
	iopt_assert_held_write(&L.iova);
	iopt_mutex_lock(&L.pages);
	assert_int_equal(iopt_lockdep_depth(), 4);
	iopt_rwlock_unlock(&L.iova);
	iopt_mutex_unlock(&L.pages);
	iopt_rwlock_unlock(&L.domains);
	iopt_mutex_unlock(&L.ioas_lock);

	iopt_rwlock_write(&L.iova);
	iopt_rwlock_write_nested(&L.iova2);
	iopt_rwlock_unlock(&L.iova2);
	iopt_rwlock_unlock(&L.iova);
	assert_int_equal(iopt_lockdep_depth(), 0);
}

static void small_mutex_misuse_aborts(void **state)
{
	(void)state;
#ifdef NDEBUG
	skip();
#endif
	assert_aborts(small_pages_then_iova, "lock order violation");
	assert_aborts(small_recursive, "recursive acquire");
	assert_aborts(small_unlock_not_held, "release of a lock not held");
	assert_aborts(small_assert_held_not_held, "&L.small_pages not held");
	assert_aborts(small_destroy_locked, "mutex is locked");
}

/* In the pages mutex's place in the documented order, it is checked alike. */
static void small_mutex_documented_order_passes(void **state)
{
	(void)state;
#ifdef NDEBUG
	skip();
#endif
	iopt_mutex_lock(&L.ioas_lock);
	iopt_rwlock_read(&L.domains);
	iopt_rwlock_read(&L.iova);
	iopt_small_mutex_lock(&L.small_pages);
	iopt_assert_held(&L.small_pages);
	iopt_assert_held_write(&L.small_pages);
	assert_int_equal(iopt_lockdep_depth(), 4);
	iopt_rwlock_unlock(&L.iova);
	iopt_small_mutex_unlock(&L.small_pages);
	iopt_rwlock_unlock(&L.domains);
	iopt_mutex_unlock(&L.ioas_lock);
	assert_int_equal(iopt_lockdep_depth(), 0);
}

#define SMALL_THREADS 4

struct small_count {
	pthread_barrier_t start;
	unsigned long rounds;
	unsigned long counter;	/* plain on purpose: only the mutex orders it */
};

static void *small_count_thread(void *arg)
{
	struct small_count *sc = arg;
	unsigned long i;

	pthread_barrier_wait(&sc->start);
	for (i = 0; i != sc->rounds; i++) {
		iopt_small_mutex_lock(&L.small_pages);
		sc->counter++;
		iopt_small_mutex_unlock(&L.small_pages);
	}
	return NULL;
}

/* A lost update is a failure of exclusion (or, to TSan/helgrind, a race). */
static void small_mutex_excludes(void **state)
{
	struct small_count sc = { .rounds = iopt_test_quick() ? 2000 : 200000 };
	pthread_t threads[SMALL_THREADS];
	unsigned int i;

	(void)state;
	assert_int_equal(pthread_barrier_init(&sc.start, NULL, SMALL_THREADS),
			 0);
	for (i = 0; i != SMALL_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL,
						small_count_thread, &sc), 0);
	for (i = 0; i != SMALL_THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&sc.start);
	assert_int_equal(sc.counter, SMALL_THREADS * sc.rounds);
	assert_int_equal(iopt_lockdep_depth(), 0);
}

static void *trylock_thread(void *arg)
{
	bool *taken = arg;

	*taken = iopt_small_mutex_trylock(&L.small_pages);
	if (*taken)
		iopt_small_mutex_unlock(&L.small_pages);
	return NULL;
}

static bool trylock_elsewhere(void)
{
	bool taken = false;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, trylock_thread, &taken), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	return taken;
}

/*
 * A trylock takes a free mutex as lock does (lockdep records it, unlock
 * releases it) and fails at once on a taken one, holding nothing.
 */
static void small_mutex_trylock(void **state)
{
	(void)state;
	assert_true(iopt_small_mutex_trylock(&L.small_pages));
#ifndef NDEBUG
	assert_int_equal(iopt_lockdep_depth(), 1);
#endif
	assert_false(trylock_elsewhere());
	iopt_small_mutex_unlock(&L.small_pages);
	assert_int_equal(iopt_lockdep_depth(), 0);
	assert_true(trylock_elsewhere());
	iopt_small_mutex_lock(&L.small_pages);
	assert_false(trylock_elsewhere());
	iopt_small_mutex_unlock(&L.small_pages);
}

#define SMALL_WAITERS 2

struct small_waiter {
	pthread_t thread;
	pid_t tid;
	pthread_barrier_t *tids_known;
	unsigned int *woken;	/* shared by the waiters, under the mutex */
};

static void *small_waiter(void *arg)
{
	struct small_waiter *w = arg;

	w->tid = gettid();
	pthread_barrier_wait(w->tids_known);
	iopt_small_mutex_lock(&L.small_pages);
	(*w->woken)++;
	iopt_small_mutex_unlock(&L.small_pages);
	return NULL;
}

/*
 * True once thread @tid is inside FUTEX_WAIT on @word, as the kernel shows it
 * in /proc (valgrind runs guest threads as kernel threads with the guest's
 * arguments, so this holds there too). A kernel without the file cannot
 * tell: the word having gone to 2 then has to do.
 */
static bool sleeps_on(pid_t tid, const void *word)
{
	char path[64];
	long nr = -1;
	unsigned long arg0 = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fscanf(f, "%ld 0x%lx", &nr, &arg0) != 2)
		nr = -1;	/* "running" */
	fclose(f);
	return nr == SYS_futex && arg0 == (unsigned long)word;
}

/*
 * The holder waits, without a clock, until both waiters have marked the word
 * "waited for" and sleep in the kernel; only then is the lock released, so
 * each can only proceed through an unlock's FUTEX_WAKE. Two, because the
 * first one woken must pass the wake on when it unlocks: a woken thread that
 * took the lock as 1 instead of 2 would leave the second asleep for good.
 */
static void small_mutex_waiters_are_woken(void **state)
{
	struct small_waiter w[SMALL_WAITERS];
	pthread_barrier_t tids_known;
	unsigned int woken = 0, i;

	(void)state;
	assert_int_equal(pthread_barrier_init(&tids_known, NULL,
					      SMALL_WAITERS + 1), 0);
	iopt_small_mutex_lock(&L.small_pages);
	for (i = 0; i != SMALL_WAITERS; i++) {
		w[i] = (struct small_waiter){ .tids_known = &tids_known,
					      .woken = &woken };
		assert_int_equal(pthread_create(&w[i].thread, NULL,
						small_waiter, &w[i]), 0);
	}
	pthread_barrier_wait(&tids_known);
	for (i = 0; i != SMALL_WAITERS; i++)
		while (atomic_load(&L.small_pages.state) != 2 ||
		       !sleeps_on(w[i].tid, &L.small_pages.state))
			sched_yield();
	assert_int_equal(woken, 0);
	iopt_small_mutex_unlock(&L.small_pages);
	for (i = 0; i != SMALL_WAITERS; i++)
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
	pthread_barrier_destroy(&tids_known);
	assert_int_equal(woken, SMALL_WAITERS);
	/* the last one out woke nobody, and left the word at 0 */
	assert_int_equal(atomic_load(&L.small_pages.state), 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(out_of_order_aborts, setup, teardown),
	cmocka_unit_test_setup_teardown(misuse_aborts, setup, teardown),
	cmocka_unit_test_setup_teardown(documented_order_passes, setup,
					teardown),
	cmocka_unit_test_setup_teardown(small_mutex_misuse_aborts, setup,
					teardown),
	cmocka_unit_test_setup_teardown(small_mutex_documented_order_passes,
					setup, teardown),
	cmocka_unit_test_setup_teardown(small_mutex_excludes, setup, teardown),
	cmocka_unit_test_setup_teardown(small_mutex_trylock, setup, teardown),
	cmocka_unit_test_setup_teardown(small_mutex_waiters_are_woken, setup,
					teardown),
};

IOPT_TEST_MAIN(tests)
