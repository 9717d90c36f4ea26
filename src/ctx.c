/* SPDX-License-Identifier: MIT */
/*
 * ctx.c - struct iopt_ctx: settings, object count, memory-lock accounting, log.
 *
 * Accounting keeps the kernel's three counters in process form:
 * - USER: one counter per real uid (the kernel's user_struct->locked_vm), kept in
 *   a list shared by every context of that uid in this process;
 * - MM: one counter for the process (mm->locked_vm);
 * - NONE: only the context's own statistics.
 * A charge adds to the counter with a compare-and-swap loop that refuses to pass
 * the context's limit, so concurrent charges from several contexts cannot
 * overshoot together; an uncharge subtracts and never fails. The limit is
 * resolved at each charge (getrlimit is cheap and the kernel also reads the
 * rlimit at charge time). A holder of a context uncapped by CAP_IPC_LOCK is
 * given mode NONE when it is created, whatever the context's mode, as the
 * kernel's iopt_alloc_pages() makes such a mapper's pages NONE
 * (iopt-semantics.md §3.9): it charges no shared counter, so root cannot push
 * another context of its user over that context's limit. The capability test
 * is made once, at alloc.
 *
 * Locking: accounts.mutex guards the user list and each entry's refs; counters are
 * atomics; struct iopt_ctx's legend is in ctx.h.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "ctx.h"
#include "pin.h"

struct iopt_acct_user {
	struct iopt_acct_user *next;	/* (u) */
	unsigned long refs;		/* (u) contexts using this entry */
	uid_t uid;			/* (c) */
	_Atomic uint64_t locked;	/* (a) pages charged in USER mode */
};

/* Locking legend: (u) accounts.mutex; (a) atomic. */
static struct {
	struct iopt_mutex mutex;
	struct iopt_acct_user *users;	/* (u) */
	_Atomic uint64_t mm_locked;	/* (a) pages charged in MM mode */
} accounts = { .mutex = { PTHREAD_MUTEX_INITIALIZER, { IOPT_LOCK_LEAF } } };

static int acct_user_get(uid_t uid, struct iopt_acct_user **out)
{
	struct iopt_acct_user *u;
	int rc = 0;

	iopt_mutex_lock(&accounts.mutex);
	for (u = accounts.users; u && u->uid != uid; u = u->next)
		;
	if (!u) {
		u = iopt_calloc(1, sizeof(*u));
		if (!u) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		u->uid = uid;
		u->next = accounts.users;
		accounts.users = u;
	}
	u->refs++;
	*out = u;
out_unlock:
	iopt_mutex_unlock(&accounts.mutex);
	return rc;
}

static void acct_user_put(struct iopt_acct_user *u)
{
	struct iopt_acct_user **link;

	iopt_mutex_lock(&accounts.mutex);
	if (!--u->refs) {
		for (link = &accounts.users; *link != u; link = &(*link)->next)
			;
		*link = u->next;
		assert(!atomic_load(&u->locked));
		iopt_free(u);
	}
	iopt_mutex_unlock(&accounts.mutex);
}

static bool has_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32));
}

static bool opts_valid(const struct iopt_ctx_options *o)
{
	return o->account_mode <= IOPT_ACCOUNT_MM &&
	       o->pin_backend <= IOPT_PIN_POPULATE_ONLY &&
	       o->phys_model <= IOPT_PHYS_SCATTERED &&
	       !(o->flags & ~IOPT_CTX_LIMIT);
}

int iopt_ctx_alloc(const struct iopt_ctx_options *opts, struct iopt_ctx **out)
{
	static const struct iopt_ctx_options defaults;
	const struct iopt_ctx_options *o = opts ? opts : &defaults;
	struct iopt_ctx *ctx;
	int rc;

	if (!opts_valid(o))
		return -EINVAL;
	if (sysconf(_SC_PAGESIZE) != (long)IOPT_PIN_PAGE_SIZE)
		return -EOPNOTSUPP;
	ctx = iopt_calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	rc = acct_user_get(getuid(), &ctx->user);
	if (rc)
		goto err_free;
	iopt_mutex_init(&ctx->mutex, IOPT_LOCK_LEAF);
	ctx->account_mode = o->account_mode;
	ctx->backend = o->pin_backend;
	ctx->model = o->phys_model;
	ctx->limit_explicit = o->flags & IOPT_CTX_LIMIT;
	ctx->limit_pages = o->limit_pages;
	ctx->cap_ipc_lock = has_cap_ipc_lock();
	*out = ctx;
	return 0;

err_free:
	iopt_free(ctx);
	return rc;
}

void iopt_ctx_destroy(struct iopt_ctx *ctx)
{
	if (!ctx)
		return;
	assert(!ctx->nobjects);
	assert(!ctx->pages_pinned);
	assert(!atomic_load(&ctx->pages_charged));
	acct_user_put(ctx->user);
	iopt_mutex_destroy(&ctx->mutex);
	iopt_free(ctx);
}

/*
 * The mode a holder created now records: the context's, but NONE when
 * CAP_IPC_LOCK uncaps the context. Locking: ctx->mutex held.
 */
static enum iopt_account_mode holder_mode(const struct iopt_ctx *ctx)
{
	if (ctx->cap_ipc_lock && !ctx->limit_explicit)
		return IOPT_ACCOUNT_NONE;
	return ctx->account_mode;
}

enum iopt_account_mode iopt_ctx_obj_get(struct iopt_ctx *ctx)
{
	enum iopt_account_mode mode;

	iopt_mutex_lock(&ctx->mutex);
	ctx->nobjects++;
	mode = holder_mode(ctx);
	iopt_mutex_unlock(&ctx->mutex);
	return mode;
}

void iopt_ctx_obj_put(struct iopt_ctx *ctx)
{
	iopt_mutex_lock(&ctx->mutex);
	assert(ctx->nobjects);
	ctx->nobjects--;
	iopt_mutex_unlock(&ctx->mutex);
}

int iopt_ctx_set_account_mode(struct iopt_ctx *ctx, enum iopt_account_mode mode)
{
	int rc = 0;

	if (!ctx)
		return -EINVAL;
	/* the kernel's order: objects alive (-EBUSY) before the value */
	iopt_mutex_lock(&ctx->mutex);
	if (ctx->nobjects)
		rc = -EBUSY;
	else if (mode > IOPT_ACCOUNT_MM)
		rc = -EINVAL;
	else
		ctx->account_mode = mode;
	iopt_mutex_unlock(&ctx->mutex);
	return rc;
}

enum iopt_account_mode iopt_ctx_account_mode(struct iopt_ctx *ctx)
{
	enum iopt_account_mode mode;

	iopt_mutex_lock(&ctx->mutex);
	mode = ctx->account_mode;
	iopt_mutex_unlock(&ctx->mutex);
	return mode;
}

static uint64_t ctx_limit(const struct iopt_ctx *ctx)
{
	struct rlimit rl;

	if (ctx->limit_explicit)
		return ctx->limit_pages;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return IOPT_CTX_UNLIMITED;
	return rl.rlim_cur >> IOPT_PIN_PAGE_SHIFT;
}

/* The counter @mode charges; NULL for NONE. */
static _Atomic uint64_t *mode_counter(struct iopt_ctx *ctx,
				      enum iopt_account_mode mode)
{
	switch (mode) {
	case IOPT_ACCOUNT_USER:
		return &ctx->user->locked;
	case IOPT_ACCOUNT_MM:
		return &accounts.mm_locked;
	default:
		return NULL;
	}
}

static const char *mode_name(enum iopt_account_mode mode)
{
	return mode == IOPT_ACCOUNT_USER ? "USER" :
	       mode == IOPT_ACCOUNT_MM ? "MM" : "NONE";
}

/* Adds @npages to *@counter unless that passes @limit. */
static bool counter_add_capped(_Atomic uint64_t *counter, uint64_t npages,
			       uint64_t limit, uint64_t *seen)
{
	uint64_t cur = atomic_load(counter);

	do {
		if (npages > limit || cur > limit - npages) {
			*seen = cur;
			return false;
		}
	} while (!atomic_compare_exchange_weak(counter, &cur, cur + npages));
	return true;
}

int iopt_ctx_charge(struct iopt_ctx *ctx, enum iopt_account_mode mode,
		    uint64_t npages)
{
	_Atomic uint64_t *counter = mode_counter(ctx, mode);
	uint64_t charged, peak, limit, seen;

	if (counter) {
		limit = ctx_limit(ctx);
		if (!counter_add_capped(counter, npages, limit, &seen)) {
			iopt_ctx_log(ctx,
				     "memory-lock limit: charging %llu pages to the %s counter (%llu pages) would pass the limit of %llu pages (%s)",
				     (unsigned long long)npages, mode_name(mode),
				     (unsigned long long)seen,
				     (unsigned long long)limit,
				     ctx->limit_explicit ? "set by IOPT_CTX_LIMIT" :
							   "RLIMIT_MEMLOCK");
			return -ENOMEM;
		}
	}
	charged = atomic_fetch_add(&ctx->pages_charged, npages) + npages;
	peak = atomic_load(&ctx->peak_pages_charged);
	while (peak < charged &&
	       !atomic_compare_exchange_weak(&ctx->peak_pages_charged, &peak,
					     charged))
		;
	return 0;
}

void iopt_ctx_uncharge(struct iopt_ctx *ctx, enum iopt_account_mode mode,
		       uint64_t npages)
{
	_Atomic uint64_t *counter = mode_counter(ctx, mode);

	if (counter)
		atomic_fetch_sub(counter, npages);
	atomic_fetch_sub(&ctx->pages_charged, npages);
}

void iopt_ctx_read_stats(struct iopt_ctx *ctx, struct iopt_ctx_stats *out)
{
	enum iopt_account_mode mode;
	_Atomic uint64_t *counter;

	/* The counter a holder created now would check. */
	iopt_mutex_lock(&ctx->mutex);
	mode = holder_mode(ctx);
	iopt_mutex_unlock(&ctx->mutex);
	counter = mode_counter(ctx, mode);
	iopt_pin_read_stats(ctx, out);
	out->pages_charged = atomic_load(&ctx->pages_charged);
	out->peak_pages_charged = atomic_load(&ctx->peak_pages_charged);
	out->account_pages = counter ? atomic_load(counter) : out->pages_charged;
	out->limit_pages = counter ? ctx_limit(ctx) : IOPT_CTX_UNLIMITED;
}

void iopt_ctx_set_log(struct iopt_ctx *ctx, iopt_log_fn fn, void *data)
{
	ctx->log_fn = fn;
	ctx->log_data = data;
}

/* Whether this thread's current public call has logged a line. */
static _Thread_local bool log_said;

void iopt_ctx_log_emit(struct iopt_ctx *ctx, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->log_fn(ctx->log_data, msg);
	log_said = true;
}

bool iopt_ctx_log_said_clear(void)
{
	bool said = log_said;

	log_said = false;
	return said;
}

int iopt_ctx_trace_slow(struct iopt_ctx *ctx, const char *kind, uint32_t id,
			const char *op, int rc)
{
	bool said = iopt_ctx_log_said_clear();

	if (!ctx || !ctx->log_fn || said || rc >= 0)
		return rc;
	iopt_ctx_log_emit(ctx, "%s %" PRIu32 ": %s: refused with -%s", kind, id,
			  op, strerrorname_np(-rc));
	(void)iopt_ctx_log_said_clear();
	return rc;
}
