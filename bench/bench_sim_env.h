/* SPDX-License-Identifier: MIT */
/*
 * bench_sim_env.h - the setup the IOAS and access benches share: a context
 * that never refuses a charge (they pin 1 GiB, or 10^5 areas' pages, far
 * past any RLIMIT_MEMLOCK) and a simulated IOMMU with domains that keep no
 * journal, so that the figures time the library, not the sim's bookkeeping.
 */
#ifndef IOPT_BENCH_SIM_ENV_H
#define IOPT_BENCH_SIM_ENV_H

#include <iopt/ctx.h>
#include <iopt/sim.h>

#include "bench_common.h"
#include "domain.h"

static inline void bench_sim_env_init(struct iopt_ctx **ctx,
				      struct iopt_sim_iommu **iommu,
				      struct iopt_domain **domains,
				      unsigned int ndomains)
{
	struct iopt_ctx_options opts = {
		.account_mode = IOPT_ACCOUNT_NONE,
		.flags = IOPT_CTX_LIMIT,
		.limit_pages = IOPT_CTX_UNLIMITED,
	};
	struct iopt_sim_domain_config dcfg = { .no_journal = true };
	unsigned int i;

	BENCH_CHECK(iopt_ctx_alloc(&opts, ctx));
	BENCH_CHECK(iopt_sim_iommu_alloc(NULL, iommu));
	for (i = 0; i != ndomains; i++)
		BENCH_CHECK(iopt_sim_domain_alloc(*iommu, &dcfg, &domains[i]));
}

/* The domains must be detached from every IOAS first. */
static inline void bench_sim_env_fini(struct iopt_ctx *ctx,
				      struct iopt_sim_iommu *iommu,
				      struct iopt_domain **domains,
				      unsigned int ndomains)
{
	unsigned int i;

	for (i = 0; i != ndomains; i++)
		domains[i]->ops->free(domains[i]);
	iopt_sim_iommu_destroy(iommu);
	iopt_ctx_destroy(ctx);
}

#endif /* IOPT_BENCH_SIM_ENV_H */
