/* SPDX-License-Identifier: MIT */
/*
 * iopt.h - libiopt's umbrella header: include this and nothing else.
 *
 * libiopt brings the Linux kernel's iommufd io_pagetable (the IO address space
 * behind /dev/iommu) to userspace, over a simulated IOMMU. Every function returns
 * 0 or a negative errno; handles are opaque; see docs/ for one page per header.
 */
#ifndef IOPT_IOPT_H
#define IOPT_IOPT_H

#include <iopt/export.h>
#include <iopt/version.h>

#include <iopt/phys.h>		/* simulated physical memory: frames, contiguity */
#include <iopt/ctx.h>		/* context: pin registry view, accounting, log */
#include <iopt/domain.h>	/* the domain-ops contract (iommu_domain_ops) */
#include <iopt/ioas.h>		/* the IO address space */
#include <iopt/access.h>	/* emulated devices that pin and copy */
#include <iopt/sim.h>		/* the simulated IOMMU */
#include <iopt/check.h>		/* the invariant checker, for tests */

#endif /* IOPT_IOPT_H */
