/* SPDX-License-Identifier: MIT */
/*
 * iopt/ctx.h - the library context: how memory is pinned and how it is charged.
 *
 * A context (the kernel's iommufd_ctx) carries the settings every object made
 * from it inherits: the pin backend, the contiguity model of iopt/phys.h, and the
 * memory-lock accounting mode with its limit. Pins themselves go to one
 * process-wide registry shared by every context, refcounted per host page, so
 * two contexts (or two objects of one context) pinning the same page never undo
 * each other: a page is unlocked only when its last pin goes (docs/pinning.md).
 *
 * Accounting mirrors the kernel's RLIMIT_MODE:
 * - IOPT_ACCOUNT_USER (the default): one counter per user (real uid), shared by
 *   every context in the process, checked against the limit.
 * - IOPT_ACCOUNT_MM: one counter for the process (VFIO type1's locked_vm).
 * - IOPT_ACCOUNT_NONE: counted in the statistics, never refused.
 * The limit is iopt_ctx_options.limit_pages when IOPT_CTX_LIMIT is set (it then
 * applies even to root, so tests can exercise it); otherwise
 * getrlimit(RLIMIT_MEMLOCK) read at each charge, except that a process with
 * CAP_IPC_LOCK is uncapped, as in the kernel: such a context accounts as
 * IOPT_ACCOUNT_NONE whatever its mode, so it adds nothing to the counters
 * other contexts check. Charging happens after pinning and a refused charge is
 * fully unwound by the caller (-ENOMEM, nothing pinned, nothing charged).
 *
 * Lifetime: iopt_ctx_alloc() allocates, iopt_ctx_destroy() frees; every object
 * made from the context (IOAS, pages, accesses) must be destroyed first.
 * Locking: every function may be called from any thread, except
 * iopt_ctx_set_log(), which must not race with other uses of the context.
 */
#ifndef IOPT_CTX_H
#define IOPT_CTX_H

#include <stdint.h>

#include <iopt/export.h>
#include <iopt/phys.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iopt_ctx;

/* Memory-lock accounting (the kernel's iopt_pages_account_mode). 0 is the default. */
enum iopt_account_mode {
	IOPT_ACCOUNT_USER = 0,	/* per-user counter, shared by all contexts */
	IOPT_ACCOUNT_NONE,	/* no limit (statistics still count) */
	IOPT_ACCOUNT_MM,	/* per-process counter */
};

/* How a pin holds host memory. 0 is the default. */
enum iopt_pin_backend {
	/* fault in (MADV_POPULATE_*) then mlock: real, limited by the kernel too */
	IOPT_PIN_MLOCK = 0,
	/* fault in and account only: for users whose real RLIMIT_MEMLOCK is tiny */
	IOPT_PIN_POPULATE_ONLY,
};

/* iopt_ctx_options.flags */
#define IOPT_CTX_LIMIT		(1u << 0)	/* limit_pages is the limit */

#define IOPT_CTX_UNLIMITED	UINT64_MAX	/* a limit that never refuses */

/**
 * struct iopt_ctx_options - settings for iopt_ctx_alloc(); zero means default.
 * @account_mode: initial accounting mode.
 * @pin_backend: how pins hold memory; fixed for the context's lifetime.
 * @phys_model: contiguity model for chunks this context pins first.
 * @flags: IOPT_CTX_LIMIT, or 0.
 * @limit_pages: with IOPT_CTX_LIMIT, the limit in 4 KiB pages
 *		 (IOPT_CTX_UNLIMITED for none); ignored otherwise.
 */
struct iopt_ctx_options {
	enum iopt_account_mode account_mode;
	enum iopt_pin_backend pin_backend;
	enum iopt_phys_model phys_model;
	uint32_t flags;
	uint64_t limit_pages;
};

/**
 * struct iopt_ctx_stats - counters read by iopt_ctx_read_stats().
 * @pages_pinned: pins held through this context, in pages (a page pinned by two
 *		  holders counts twice).
 * @peak_pages_pinned: highest @pages_pinned so far.
 * @pages_charged: pages this context's objects have charged.
 * @peak_pages_charged: highest @pages_charged so far.
 * @account_pages: the counter the current mode checks (the user's for USER,
 *		   the process's for MM, @pages_charged for NONE and for a
 *		   context uncapped by CAP_IPC_LOCK).
 * @limit_pages: the limit the next charge is checked against
 *		 (IOPT_CTX_UNLIMITED when uncapped or in mode NONE).
 * @registry_pages: distinct host pages pinned in the process.
 * @registry_locked_pages: of those, pages held by mlock.
 * @registry_runs: maximal runs of pinned host pages in the process.
 * @registry_locked_runs: maximal runs of mlocked pages (each is one or more
 *			  kernel VMAs; vm.max_map_count caps them).
 * @registry_bytes: heap used by the registry and the frame table together.
 */
struct iopt_ctx_stats {
	uint64_t pages_pinned;
	uint64_t peak_pages_pinned;
	uint64_t pages_charged;
	uint64_t peak_pages_charged;
	uint64_t account_pages;
	uint64_t limit_pages;
	uint64_t registry_pages;
	uint64_t registry_locked_pages;
	uint64_t registry_runs;
	uint64_t registry_locked_runs;
	uint64_t registry_bytes;
};

/* Receives one refusal message (no trailing newline); @data as given. */
typedef void (*iopt_log_fn)(void *data, const char *msg);

/**
 * iopt_ctx_alloc() - allocate a context.
 * @opts: settings, or NULL for all defaults; borrowed, not kept.
 * @out: receives the context; the caller owns it and frees it with
 *	 iopt_ctx_destroy().
 *
 * Return: 0; -EINVAL for an unknown mode, backend, model or flag;
 * -EOPNOTSUPP when the host page size is not 4 KiB; -ENOMEM.
 * On failure: *@out is untouched and nothing is allocated.
 */
IOPT_API int iopt_ctx_alloc(const struct iopt_ctx_options *opts,
			    struct iopt_ctx **out);

/**
 * iopt_ctx_destroy() - free a context.
 * @ctx: context with no objects and no pins left; NULL is a no-op.
 */
IOPT_API void iopt_ctx_destroy(struct iopt_ctx *ctx);

/**
 * iopt_ctx_set_account_mode() - change the accounting mode (RLIMIT_MODE).
 * @ctx: context.
 * @mode: new mode.
 *
 * Return: 0; -EBUSY while any object made from @ctx exists (the kernel
 * allows the change only on an empty context, and checks that first); then
 * -EINVAL for an unknown mode or a NULL @ctx.
 * On failure: the mode is unchanged.
 */
IOPT_API int iopt_ctx_set_account_mode(struct iopt_ctx *ctx,
				       enum iopt_account_mode mode);

/** iopt_ctx_account_mode() - Return: the current accounting mode of @ctx. */
IOPT_API enum iopt_account_mode iopt_ctx_account_mode(struct iopt_ctx *ctx);

/**
 * iopt_ctx_read_stats() - read the counters.
 * @ctx: context.
 * @out: receives a consistent snapshot of the registry-wide counters together
 *	 with this context's own.
 */
IOPT_API void iopt_ctx_read_stats(struct iopt_ctx *ctx,
				  struct iopt_ctx_stats *out);

/**
 * iopt_ctx_set_log() - report refusals (limits, mlock failures) as text.
 * @ctx: context.
 * @fn: called synchronously from the refusing call, on the thread that made
 *	it (so concurrently when several threads use the context: @fn must be
 *	thread-safe), or NULL to stop (the default; no message is even
 *	formatted then). It may run with library locks held, or inside an
 *	access's lock-free section: it must not call into libiopt.
 * @data: passed to @fn; borrowed.
 *
 * Locking: must not race with other calls on @ctx.
 */
IOPT_API void iopt_ctx_set_log(struct iopt_ctx *ctx, iopt_log_fn fn, void *data);

#ifdef __cplusplus
}
#endif

#endif /* IOPT_CTX_H */
