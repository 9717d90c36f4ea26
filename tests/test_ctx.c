/* SPDX-License-Identifier: MIT */
/*
 * test_ctx.c - contexts and memory-lock accounting: options, limits (explicit,
 * RLIMIT_MEMLOCK, CAP_IPC_LOCK, which accounts NONE), the modes and their
 * counters, -EBUSY on a mode change, statistics, the refusal log, and the same
 * limits as an unprivileged user with the populate-only backend.
 *
 * Charging is exercised the way a pages object does it (src/ctx.h): pin, then
 * charge what was pinned, and unpin when the charge is refused.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iopt/ctx.h>

#include "alloc.h"
#include "ctx.h"
#include "pin.h"

#define PG 4096ul

static struct iopt_ctx *ctx_new(enum iopt_account_mode mode,
				enum iopt_pin_backend backend, bool limited,
				uint64_t limit)
{
	struct iopt_ctx_options o = {
		.account_mode = mode,
		.pin_backend = backend,
		.flags = limited ? IOPT_CTX_LIMIT : 0,
		.limit_pages = limit,
	};
	struct iopt_ctx *ctx = NULL;

	return iopt_ctx_alloc(&o, &ctx) ? NULL : ctx;
}

/* The pages-object order: pin, charge, unpin on refusal. */
static int pin_charged(struct iopt_ctx *ctx, void *buf, size_t n)
{
	enum iopt_account_mode mode = iopt_ctx_account_mode(ctx);
	int rc = iopt_pin_range(ctx, (uintptr_t)buf, n, true, NULL);

	if (rc)
		return rc;
	rc = iopt_ctx_charge(ctx, mode, n);
	if (rc)
		iopt_unpin_range(ctx, (uintptr_t)buf, n);
	return rc;
}

static void unpin_uncharged(struct iopt_ctx *ctx, void *buf, size_t n)
{
	iopt_unpin_range(ctx, (uintptr_t)buf, n);
	iopt_ctx_uncharge(ctx, iopt_ctx_account_mode(ctx), n);
}

static struct iopt_ctx_stats stats_of(struct iopt_ctx *ctx)
{
	struct iopt_ctx_stats st;

	iopt_ctx_read_stats(ctx, &st);
	return st;
}

static void *map_pages(size_t n)
{
	void *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void log_to_string(void *data, const char *msg)
{
	snprintf(data, 512, "%s", msg);
}

static void test_alloc_options(void **state)
{
	struct iopt_ctx_options bad[] = {
		{ .account_mode = (enum iopt_account_mode)3 },
		{ .pin_backend = (enum iopt_pin_backend)2 },
		{ .phys_model = (enum iopt_phys_model)3 },
		{ .flags = 2 },
	};
	struct iopt_ctx *ctx = (struct iopt_ctx *)&bad, *sentinel = ctx;
	long live = iopt_alloc_live();
	size_t i;

	(void)state;
	for (i = 0; i < IOPT_ARRAY_SIZE(bad); i++) {
		assert_int_equal(iopt_ctx_alloc(&bad[i], &ctx), -EINVAL);
		assert_ptr_equal(ctx, sentinel);
	}
	assert_int_equal(iopt_alloc_live(), live);
	assert_int_equal(iopt_ctx_alloc(NULL, &ctx), 0);
	assert_int_equal(iopt_ctx_account_mode(ctx), IOPT_ACCOUNT_USER);
	assert_int_equal(iopt_ctx_set_account_mode(ctx, (enum iopt_account_mode)9),
			 -EINVAL);
	iopt_ctx_destroy(ctx);
	iopt_ctx_destroy(NULL);
	assert_int_equal(iopt_alloc_live(), live);

	/* Every allocation failure leaves nothing behind. */
	for (i = 1;; i++) {
		int rc;

		iopt_fail_nth_arm(i);
		rc = iopt_ctx_alloc(NULL, &ctx);
		iopt_fail_nth_disarm();
		if (!iopt_fail_nth_fired())
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(iopt_alloc_live(), live);
	}
	iopt_ctx_destroy(ctx);
}

/* Limit N: N pages fit, N + 1 is refused and unwound, pins and charge alike. */
static void test_limit_refuses_and_unwinds(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_ACCOUNT_USER, IOPT_PIN_MLOCK, true, 16);
	char *buf = map_pages(32), msg[512] = "";
	struct iopt_ctx_stats st;

	(void)state;
	assert_non_null(ctx);
	iopt_ctx_set_log(ctx, log_to_string, msg);
	assert_int_equal(pin_charged(ctx, buf, 17), -ENOMEM);
	st = stats_of(ctx);
	assert_int_equal(st.registry_pages, 0);
	assert_int_equal(st.pages_pinned, 0);
	assert_int_equal(st.pages_charged, 0);
	assert_int_equal(st.account_pages, 0);
	assert_non_null(strstr(msg, "limit of 16 pages"));

	assert_int_equal(pin_charged(ctx, buf, 16), 0);
	assert_int_equal(pin_charged(ctx, buf + 16 * PG, 1), -ENOMEM);
	/* Pages pinned again by a second holder are charged again, as in the kernel. */
	assert_int_equal(pin_charged(ctx, buf, 1), -ENOMEM);
	st = stats_of(ctx);
	assert_int_equal(st.registry_pages, 16);
	assert_int_equal(st.registry_locked_pages, 16);
	assert_int_equal(st.pages_pinned, 16);
	assert_int_equal(st.pages_charged, 16);
	assert_int_equal(st.account_pages, 16);
	assert_int_equal(st.limit_pages, 16);
	unpin_uncharged(ctx, buf, 16);
	st = stats_of(ctx);
	assert_int_equal(st.pages_charged, 0);
	assert_int_equal(st.account_pages, 0);
	assert_int_equal(st.peak_pages_charged, 16);
	/* The refused pin of page 0 did exist until its charge was refused. */
	assert_int_equal(st.peak_pages_pinned, 17);
	iopt_ctx_destroy(ctx);
	munmap(buf, 32 * PG);
}

static void test_mode_none_uncapped(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_ACCOUNT_NONE, IOPT_PIN_MLOCK, true, 16);
	char *buf = map_pages(32);
	struct iopt_ctx_stats st;

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(pin_charged(ctx, buf, 32), 0);
	st = stats_of(ctx);
	assert_int_equal(st.pages_charged, 32);
	assert_int_equal(st.account_pages, 32);
	assert_int_equal(st.limit_pages, IOPT_CTX_UNLIMITED);
	unpin_uncharged(ctx, buf, 32);
	iopt_ctx_destroy(ctx);
	munmap(buf, 32 * PG);
}

/* The modes with a counter shared by contexts. */
static const enum iopt_account_mode shared_modes[] = {
	IOPT_ACCOUNT_USER, IOPT_ACCOUNT_MM,
};

/* USER and MM counters are shared by every context of the process. */
static void test_counters_shared(void **state)
{
	size_t m;

	(void)state;
	for (m = 0; m < IOPT_ARRAY_SIZE(shared_modes); m++) {
		struct iopt_ctx *a = ctx_new(shared_modes[m], IOPT_PIN_MLOCK, true, 16);
		struct iopt_ctx *b = ctx_new(shared_modes[m], IOPT_PIN_MLOCK, true, 16);

		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(iopt_ctx_charge(a, shared_modes[m], 10), 0);
		assert_int_equal(iopt_ctx_charge(b, shared_modes[m], 7), -ENOMEM);
		assert_int_equal(stats_of(b).account_pages, 10);
		assert_int_equal(stats_of(b).pages_charged, 0);
		assert_int_equal(iopt_ctx_charge(b, shared_modes[m], 6), 0);
		assert_int_equal(stats_of(a).account_pages, 16);
		/* The other mode's counter is separate. */
		assert_int_equal(iopt_ctx_charge(a, shared_modes[1 - m], 16), 0);
		iopt_ctx_uncharge(a, shared_modes[1 - m], 16);
		iopt_ctx_uncharge(a, shared_modes[m], 10);
		iopt_ctx_uncharge(b, shared_modes[m], 6);
		assert_int_equal(stats_of(a).account_pages, 0);
		iopt_ctx_destroy(a);
		iopt_ctx_destroy(b);
	}
}

static void test_mode_change_busy(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_ACCOUNT_USER, IOPT_PIN_MLOCK, false, 0);

	(void)state;
	assert_non_null(ctx);
	iopt_ctx_obj_get(ctx);
	assert_int_equal(iopt_ctx_set_account_mode(ctx, IOPT_ACCOUNT_MM), -EBUSY);
	/* The kernel's order: objects alive is -EBUSY before a bad value. */
	assert_int_equal(iopt_ctx_set_account_mode(ctx, (enum iopt_account_mode)9),
			 -EBUSY);
	assert_int_equal(iopt_ctx_account_mode(ctx), IOPT_ACCOUNT_USER);
	iopt_ctx_obj_put(ctx);
	assert_int_equal(iopt_ctx_set_account_mode(ctx, (enum iopt_account_mode)9),
			 -EINVAL);
	assert_int_equal(iopt_ctx_set_account_mode(NULL, IOPT_ACCOUNT_MM), -EINVAL);
	assert_int_equal(iopt_ctx_set_account_mode(ctx, IOPT_ACCOUNT_MM), 0);
	assert_int_equal(iopt_ctx_account_mode(ctx), IOPT_ACCOUNT_MM);
	iopt_ctx_destroy(ctx);
}

/* No explicit limit: CAP_IPC_LOCK is uncapped, anyone else gets RLIMIT_MEMLOCK. */
static void test_default_limit(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_ACCOUNT_USER, IOPT_PIN_MLOCK, false, 0);
	struct rlimit rl;
	uint64_t want;

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
	want = ctx->cap_ipc_lock || rl.rlim_cur == RLIM_INFINITY ?
		       IOPT_CTX_UNLIMITED : rl.rlim_cur / PG;
	assert_int_equal(stats_of(ctx).limit_pages, want);
	if (geteuid() == 0)
		assert_true(ctx->cap_ipc_lock);
	iopt_ctx_destroy(ctx);
}

/*
 * A context uncapped by CAP_IPC_LOCK accounts NONE, whatever its mode, as the
 * kernel makes such a mapper's pages NONE: it must not push a context of the
 * same user (or process) with an explicit limit over that limit.
 */
static void test_cap_ipc_lock_accounts_none(void **state)
{
	size_t m;

	(void)state;
	for (m = 0; m < IOPT_ARRAY_SIZE(shared_modes); m++) {
		struct iopt_ctx *root = ctx_new(shared_modes[m], IOPT_PIN_MLOCK, false, 0);
		struct iopt_ctx *lim = ctx_new(shared_modes[m], IOPT_PIN_MLOCK, true, 16);
		enum iopt_account_mode mode;
		struct iopt_ctx_stats st;

		assert_non_null(root);
		assert_non_null(lim);
		if (!root->cap_ipc_lock) {
			iopt_ctx_destroy(root);
			iopt_ctx_destroy(lim);
			print_message("# skipped: no CAP_IPC_LOCK (run as root)\n");
			skip();
		}
		/* As a pages object does: the mode comes with the object count. */
		mode = iopt_ctx_obj_get(root);
		assert_int_equal(mode, IOPT_ACCOUNT_NONE);
		assert_int_equal(iopt_ctx_account_mode(root), shared_modes[m]);
		assert_int_equal(iopt_ctx_charge(root, mode, 1000), 0);
		st = stats_of(root);
		assert_int_equal(st.pages_charged, 1000);
		assert_int_equal(st.account_pages, 1000);
		assert_int_equal(st.limit_pages, IOPT_CTX_UNLIMITED);
		assert_int_equal(stats_of(lim).account_pages, 0);
		assert_int_equal(iopt_ctx_charge(lim, shared_modes[m], 16), 0);
		assert_int_equal(iopt_ctx_charge(lim, shared_modes[m], 1), -ENOMEM);
		iopt_ctx_uncharge(lim, shared_modes[m], 16);
		iopt_ctx_uncharge(root, mode, 1000);
		iopt_ctx_obj_put(root);
		assert_int_equal(stats_of(lim).account_pages, 0);
		iopt_ctx_destroy(root);
		iopt_ctx_destroy(lim);
	}
}

static void test_log_off_by_default(void **state)
{
	struct iopt_ctx *ctx = ctx_new(IOPT_ACCOUNT_MM, IOPT_PIN_MLOCK, true, 0);
	char msg[512] = "";

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(iopt_ctx_charge(ctx, IOPT_ACCOUNT_MM, 1), -ENOMEM);
	iopt_ctx_set_log(ctx, log_to_string, msg);
	assert_int_equal(iopt_ctx_charge(ctx, IOPT_ACCOUNT_MM, 1), -ENOMEM);
	assert_non_null(strstr(msg, "MM counter"));
	msg[0] = 0;
	iopt_ctx_set_log(ctx, NULL, NULL);
	assert_int_equal(iopt_ctx_charge(ctx, IOPT_ACCOUNT_MM, 1), -ENOMEM);
	assert_string_equal(msg, "");
	assert_int_equal(iopt_ctx_charge(ctx, IOPT_ACCOUNT_MM, 0), 0);
	iopt_ctx_destroy(ctx);
}

/* ---- the same limits as an unprivileged user ---- */

/*
 * The checks, as a user without CAP_IPC_LOCK whose real RLIMIT_MEMLOCK is
 * small (an unprivileged process may lower its limit, not raise it).
 */
static void unprivileged_limits(void)
{
	struct rlimit rl = { 16 * PG, 16 * PG };
	char *buf = map_pages(64), msg[512] = "";
	struct iopt_ctx *ctx;

	assert_non_null(buf);
	assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &rl), 0);

	/* Explicit limit, populate-only backend. */
	ctx = ctx_new(IOPT_ACCOUNT_USER, IOPT_PIN_POPULATE_ONLY, true, 8);
	assert_non_null(ctx);
	assert_false(ctx->cap_ipc_lock);
	assert_int_equal(pin_charged(ctx, buf, 8), 0);
	assert_int_equal(pin_charged(ctx, buf + 8 * PG, 1), -ENOMEM);
	assert_int_equal(stats_of(ctx).registry_pages, 8);
	assert_int_equal(stats_of(ctx).pages_charged, 8);
	unpin_uncharged(ctx, buf, 8);
	iopt_ctx_destroy(ctx);

	/* Default limit: RLIMIT_MEMLOCK (16 pages), no CAP_IPC_LOCK. */
	ctx = ctx_new(IOPT_ACCOUNT_MM, IOPT_PIN_POPULATE_ONLY, false, 0);
	assert_non_null(ctx);
	assert_int_equal(stats_of(ctx).limit_pages, 16);
	assert_int_equal(pin_charged(ctx, buf, 17), -ENOMEM);
	assert_int_equal(stats_of(ctx).registry_pages, 0);
	assert_int_equal(pin_charged(ctx, buf, 16), 0);
	unpin_uncharged(ctx, buf, 16);
	iopt_ctx_destroy(ctx);

	/* Mode NONE: past the limit. */
	ctx = ctx_new(IOPT_ACCOUNT_NONE, IOPT_PIN_POPULATE_ONLY, false, 0);
	assert_non_null(ctx);
	assert_int_equal(pin_charged(ctx, buf, 64), 0);
	unpin_uncharged(ctx, buf, 64);
	iopt_ctx_destroy(ctx);

	/* The kernel itself refuses mlock past RLIMIT_MEMLOCK: -ENOMEM, logged. */
	ctx = ctx_new(IOPT_ACCOUNT_NONE, IOPT_PIN_MLOCK, false, 0);
	assert_non_null(ctx);
	iopt_ctx_set_log(ctx, log_to_string, msg);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 32, true, NULL), -ENOMEM);
	assert_non_null(strstr(msg, "RLIMIT_MEMLOCK is 64 KiB"));
	assert_non_null(strstr(msg, "IOPT_PIN_POPULATE_ONLY"));
	assert_int_equal(stats_of(ctx).registry_pages, 0);
	assert_int_equal(iopt_pin_range(ctx, (uintptr_t)buf, 8, true, NULL), 0);
	iopt_unpin_range(ctx, (uintptr_t)buf, 8);
	iopt_ctx_destroy(ctx);
	munmap(buf, 64 * PG);
}

/*
 * Runs @prog (with @arg, or none) as nobody through setpriv(1) and waits.
 * Return: its exit status; 127 when setpriv could not be run.
 */
static int setpriv_nobody(const struct passwd *pw, const char *prog,
			  const char *arg)
{
	char uid[32], gid[32];
	char *argv[] = {
		"setpriv", uid, gid, "--clear-groups", "--", (char *)prog,
		(char *)arg, NULL,
	};
	int status;
	pid_t pid;

	snprintf(uid, sizeof(uid), "--reuid=%u", (unsigned int)pw->pw_uid);
	snprintf(gid, sizeof(gid), "--regid=%u", (unsigned int)pw->pw_gid);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * An unprivileged user runs the checks here. Root (CI) runs this same case of
 * this same program again as nobody with setpriv (util-linux), which is a real
 * drop of uid, groups and capabilities, and passes when it passes; where that
 * is not possible the case is skipped, saying why.
 */
static void test_unprivileged_limits(void **state)
{
	char self[PATH_MAX];
	struct passwd *pw;
	ssize_t len;
	int status;

	(void)state;
	if (geteuid() != 0) {
		unprivileged_limits();
		return;
	}
	pw = getpwnam("nobody");
	if (!pw) {
		print_message("# skipped: no user 'nobody' to drop to\n");
		skip();
	}
	status = setpriv_nobody(pw, "true", NULL);
	if (status) {
		print_message("# skipped: setpriv (util-linux) cannot run a program as 'nobody' here (status %d)\n",
			      status);
		skip();
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(len > 0);
	self[len] = 0;
	print_message("# running %s test_unprivileged_limits as uid %u via setpriv\n",
		      self, (unsigned int)pw->pw_uid);
	status = setpriv_nobody(pw, self, "test_unprivileged_limits");
	/* setpriv's own exec failures: 126 (cannot execute), 127 (not found). */
	if (status == 126 || status == 127) {
		print_message("# skipped: 'nobody' cannot execute %s (a build directory it cannot read?)\n",
			      self);
		skip();
	}
	assert_int_equal(status, 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_alloc_options),
	cmocka_unit_test(test_limit_refuses_and_unwinds),
	cmocka_unit_test(test_mode_none_uncapped),
	cmocka_unit_test(test_counters_shared),
	cmocka_unit_test(test_mode_change_busy),
	cmocka_unit_test(test_default_limit),
	cmocka_unit_test(test_cap_ipc_lock_accounts_none),
	cmocka_unit_test(test_log_off_by_default),
	cmocka_unit_test(test_unprivileged_limits),
};

IOPT_TEST_MAIN(tests)
