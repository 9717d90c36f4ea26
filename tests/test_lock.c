/* SPDX-License-Identifier: MIT */
/*
 * test_lock.c - the lock-order checker of src/lock.c (debug builds).
 *
 * A checker that never fires proves nothing: each misuse runs in a forked
 * child, which must die of SIGABRT with lockdep's message on its stderr. The
 * documented order itself, and the nested exception, must pass silently and
 * leave the held-lock record empty. With NDEBUG there is no checker: skipped.
 */
#include "harness.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock.h"
#include "util.h"

struct locks {
	struct iopt_mutex ioas_lock, pages;
	struct iopt_rwlock domains, iova, iova2;
};

static struct locks L;

static void locks_init(void)
{
	iopt_mutex_init(&L.ioas_lock, IOPT_LOCK_ACCESS_IOAS);
	iopt_rwlock_init(&L.domains, IOPT_LOCK_DOMAINS);
	iopt_rwlock_init(&L.iova, IOPT_LOCK_IOVA);
	iopt_rwlock_init(&L.iova2, IOPT_LOCK_IOVA);
	iopt_mutex_init(&L.pages, IOPT_LOCK_PAGES);
}

static void locks_destroy(void)
{
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

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(out_of_order_aborts, setup, teardown),
	cmocka_unit_test_setup_teardown(misuse_aborts, setup, teardown),
	cmocka_unit_test_setup_teardown(documented_order_passes, setup,
					teardown),
};

IOPT_TEST_MAIN(tests)
