/* SPDX-License-Identifier: MIT */
/*
 * fmt_arm_lpae.c - Arm VMSAv8-64 LPAE stage 1, 4 KiB granule, bit-exact.
 *
 * Entry bits (Arm ARM, VMSAv8-64 descriptors; pagetable-formats.md §2):
 * valid 0, type 1 (with bit 0: 01 block, 11 table or level-3 page),
 * AttrIndx 4:2, NS 5, AP[1] 6 (unprivileged), AP[2] 7 (read-only), SH 9:8,
 * AF 10, nG 11, address 47:12, DBM 51, XN 54:53. Four levels (48-bit IOVA
 * and output), leaves of 4K (page), 2M and 1G (blocks).
 *
 * Dirty state is DBM + AP[2]: writable-clean is DBM=1 AP[2]=1, a hardware
 * write (with HD enabled) clears AP[2] giving writable-dirty. As Linux 6.12
 * with the HD quirk does, a writable leaf is created with DBM and AP[2]
 * clear, so it starts dirty; enabling tracking cleans it. Read-only leaves
 * get AP[2] without DBM. Attribute choices (nG, AF, SH, AttrIndx from
 * IOPT_PROT_CACHE/MMIO) follow io-pgtable-arm's stage-1 encoding.
 */
#include "pt_format.h"

#include <iopt/domain.h>

#define ARM_VALID	(UINT64_C(1) << 0)
#define ARM_TYPE_MASK	UINT64_C(3)
#define ARM_TYPE_BLOCK	UINT64_C(1)
#define ARM_TYPE_TABLE	UINT64_C(3)
#define ARM_TYPE_PAGE	UINT64_C(3)
#define ARM_ATTR_SHIFT	2
#define ARM_ATTR_CACHE	UINT64_C(1)
#define ARM_ATTR_DEV	UINT64_C(2)
#define ARM_AP_UNPRIV	(UINT64_C(1) << 6)
#define ARM_AP_RDONLY	(UINT64_C(1) << 7)
#define ARM_SH_OS	(UINT64_C(2) << 8)
#define ARM_SH_IS	(UINT64_C(3) << 8)
#define ARM_AF		(UINT64_C(1) << 10)
#define ARM_NG		(UINT64_C(1) << 11)
#define ARM_DBM		(UINT64_C(1) << 51)
#define ARM_XN		(UINT64_C(3) << 53)
#define ARM_ADDR	((~UINT64_C(0) >> 16) & (~UINT64_C(0) << 12))

static uint64_t arm_encode_leaf(uint64_t oa, unsigned int size_lg2,
				unsigned int level, int prot, bool dbm)
{
	uint64_t e = ARM_NG | ARM_AF | oa;

	(void)size_lg2;
	if (!(prot & IOPT_PROT_WRITE))
		e |= ARM_AP_RDONLY;
	else if (dbm)
		e |= ARM_DBM;
	if (!(prot & IOPT_PROT_PRIV))
		e |= ARM_AP_UNPRIV;
	if (prot & IOPT_PROT_MMIO)
		e |= ARM_ATTR_DEV << ARM_ATTR_SHIFT;
	else if (prot & IOPT_PROT_CACHE)
		e |= ARM_ATTR_CACHE << ARM_ATTR_SHIFT;
	e |= (prot & IOPT_PROT_CACHE) ? ARM_SH_IS : ARM_SH_OS;
	if (prot & IOPT_PROT_NOEXEC)
		e |= ARM_XN;
	return e | (level ? ARM_TYPE_BLOCK : ARM_TYPE_PAGE);
}

static uint64_t arm_encode_table(uint64_t pa, unsigned int level)
{
	(void)level;
	return ARM_TYPE_TABLE | pa;
}

static void arm_decode(uint64_t e, unsigned int level, struct sim_pte *out)
{
	uint64_t type = e & ARM_TYPE_MASK;

	*out = (struct sim_pte){ .kind = SIM_PTE_EMPTY };
	if (!(e & ARM_VALID) || (!level && type != ARM_TYPE_PAGE))
		return;
	if (level && type == ARM_TYPE_TABLE) {
		out->kind = SIM_PTE_TABLE;
		out->addr = e & ARM_ADDR;
		return;
	}
	out->kind = SIM_PTE_LEAF;
	out->size_lg2 = 12 + 9 * level;
	out->addr = e & ARM_ADDR & ~((UINT64_C(1) << out->size_lg2) - 1);
	out->read = true;
	out->write = !(e & ARM_AP_RDONLY);
	out->dirty_ok = e & ARM_DBM;
	out->dirty = (e & ARM_DBM) && !(e & ARM_AP_RDONLY);
}

static uint64_t arm_make_dirty(uint64_t e)
{
	return (e & ARM_DBM) ? e & ~ARM_AP_RDONLY : e;
}

static uint64_t arm_make_clean(uint64_t e)
{
	return (e & ARM_DBM) ? e | ARM_AP_RDONLY : e;
}

static uint64_t arm_make_accessed(uint64_t e)
{
	return e | ARM_AF;
}

const struct sim_pt_format iopt_sim_fmt_arm_lpae_s1 = {
	.name = "arm-lpae-s1",
	.granule_lg2 = 12,
	.max_levels = 4,
	.start_levels = 4,
	.dynamic_top = false,
	.fixed_levels_mask = 1u << 4,
	.va_lg2 = 48,
	.oa_lg2 = 48,
	.addr_mask = ARM_ADDR,
	.leaf_sizes = { UINT64_C(1) << 12, UINT64_C(1) << 21, UINT64_C(1) << 30 },
	.encode_leaf = arm_encode_leaf,
	.encode_table = arm_encode_table,
	.decode = arm_decode,
	.make_dirty = arm_make_dirty,
	.make_clean = arm_make_clean,
	.make_accessed = arm_make_accessed,
};
