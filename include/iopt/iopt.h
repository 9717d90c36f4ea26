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

#endif /* IOPT_IOPT_H */
