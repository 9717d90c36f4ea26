/* SPDX-License-Identifier: MIT */
/*
 * ctx.h - struct iopt_ctx for the rest of the library: the object count that
 * guards the accounting mode, memory-lock charging, and the refusal log.
 *
 * Charging follows the kernel's iopt_pages_update_pinned(): a holder pins first
 * (src/pin.h), then charges the pages it newly pinned in one call, and unpins
 * them if the charge is refused. Uncharging never fails. A holder records the
 * mode when it is created (iopt_ctx_account_mode()) and passes that mode to
 * every charge and uncharge of its own, so its books balance even though the
 * context's mode can change once the context is empty again.
 *
 * Locking legend for struct iopt_ctx:
 *   (m) ctx->mutex   (r) iopt_phys_lock(), the registry lock
 *   (a) atomic       (c) constant after iopt_ctx_alloc()
 *   (l) written only by iopt_ctx_set_log(), which must not race with users
 * Lock order: ctx->mutex and the registry lock are never held together.
 */
#ifndef IOPT_SRC_CTX_H
#define IOPT_SRC_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iopt/ctx.h>

#include "lock.h"
#include "util.h"

struct iopt_acct_user;

struct iopt_ctx {
	struct iopt_mutex mutex;			/* class IOPT_LOCK_LEAF */
	enum iopt_account_mode account_mode;	/* (m) */
	unsigned long nobjects;			/* (m) live objects made from ctx */

	enum iopt_pin_backend backend;		/* (c) */
	enum iopt_phys_model model;		/* (c) */
	bool limit_explicit;			/* (c) IOPT_CTX_LIMIT was given */
	uint64_t limit_pages;			/* (c) valid if limit_explicit */
	bool cap_ipc_lock;			/* (c) uncapped, NONE, by default */
	struct iopt_acct_user *user;		/* (c) holds a reference */

	_Atomic uint64_t pages_charged;		/* (a) */
	_Atomic uint64_t peak_pages_charged;	/* (a) */

	uint64_t pages_pinned;			/* (r) */
	uint64_t peak_pages_pinned;		/* (r) */

	iopt_log_fn log_fn;			/* (l) NULL: logging off */
	void *log_data;				/* (l) */
};

/**
 * iopt_ctx_obj_get() - count one more object made from @ctx.
 *
 * While the count is above zero the accounting mode cannot change (-EBUSY).
 * Return: the accounting mode a new holder records, read under the same lock,
 * so it stays in force while the holder lives (one lock round trip per map):
 * the context's, or IOPT_ACCOUNT_NONE when CAP_IPC_LOCK uncaps the context
 * (no explicit limit), as the kernel makes such a mapper's pages NONE.
 * Locking: takes ctx->mutex.
 */
enum iopt_account_mode iopt_ctx_obj_get(struct iopt_ctx *ctx);

/** iopt_ctx_obj_put() - undo iopt_ctx_obj_get(). Locking: takes ctx->mutex. */
void iopt_ctx_obj_put(struct iopt_ctx *ctx);

/**
 * iopt_ctx_charge() - charge newly pinned pages to the memory-lock counter.
 * @ctx: context.
 * @mode: the holder's mode, recorded when the holder was created.
 * @npages: pages to add.
 *
 * USER adds to the per-user counter, MM to the per-process one, both atomically
 * checked against the context's limit; NONE only counts for the statistics.
 *
 * Return: 0, or -ENOMEM when the counter would pass the limit (logged).
 * On failure: nothing is charged; the caller unpins what it pinned.
 */
int iopt_ctx_charge(struct iopt_ctx *ctx, enum iopt_account_mode mode,
		    uint64_t npages);

/**
 * iopt_ctx_uncharge() - undo iopt_ctx_charge() of @npages in @mode. Cannot fail.
 */
void iopt_ctx_uncharge(struct iopt_ctx *ctx, enum iopt_account_mode mode,
		       uint64_t npages);

/**
 * iopt_ctx_log() - report a refusal through the context's log callback.
 * @ctx: context.
 * @...: printf format and arguments.
 *
 * A macro so that nothing is formatted, or even evaluated, when logging is off.
 */
#define iopt_ctx_log(ctx, ...)                                  \
	do {                                                    \
		if (iopt_unlikely((ctx)->log_fn != NULL))       \
			iopt_ctx_log_emit((ctx), __VA_ARGS__);  \
	} while (0)

/* The out-of-line half of iopt_ctx_log(); call through the macro. */
void iopt_ctx_log_emit(struct iopt_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * iopt_ctx_log_said_clear() - whether this thread logged a line since the
 * last call, and start afresh.
 */
bool iopt_ctx_log_said_clear(void);

int iopt_ctx_trace_slow(struct iopt_ctx *ctx, const char *kind, uint32_t id,
			const char *op, int rc);

/**
 * iopt_ctx_trace() - the tracing seam every public IOAS and access call
 * returns through (ioas.c, access.c).
 * @ctx: the object's context, or NULL for a NULL handle.
 * @kind, @id: the object, "ioas 3" or "access 7" in the line.
 * @op: the call, e.g. "map".
 * @rc: its result, returned.
 *
 * With logging on, a refusal that nothing in the call explained gets one line
 * "<kind> <id>: <op>: refused with -EXXX", so every refusal gives exactly one,
 * and the per-thread "said" flag starts afresh for the next call (also for a
 * NULL handle, whose call may have logged through another context). With
 * logging off it is one test.
 */
static inline int iopt_ctx_trace(struct iopt_ctx *ctx, const char *kind,
				 uint32_t id, const char *op, int rc)
{
	if (iopt_likely(ctx && !ctx->log_fn))
		return rc;
	return iopt_ctx_trace_slow(ctx, kind, id, op, rc);
}

#endif /* IOPT_SRC_CTX_H */
