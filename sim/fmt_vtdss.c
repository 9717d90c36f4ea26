/* SPDX-License-Identifier: MIT */
/*
 * fmt_vtdss.c - Intel VT-d second-stage page table, bit-exact.
 *
 * Entry bits (VT-d specification; pagetable-formats.md §2): R 0, W 1, X 2,
 * PS 7 (leaf on the 2M and 1G levels), A 8, D 9, SNP 11, address 51:12.
 * There is no present bit: an entry is present when R or W is set, so table
 * entries carry R|W. Like Linux 6.12, every leaf has R set (its "present"),
 * which makes a write-only mapping read-write. 3, 4 or 5 levels, fixed per
 * domain; leaves of 4K, 2M and 1G.
 */
#include "pt_format.h"

#include <iopt/domain.h>

#define VTD_R		(UINT64_C(1) << 0)
#define VTD_W		(UINT64_C(1) << 1)
#define VTD_PS		(UINT64_C(1) << 7)
#define VTD_A		(UINT64_C(1) << 8)
#define VTD_D		(UINT64_C(1) << 9)
#define VTD_ADDR	((~UINT64_C(0) >> 12) & (~UINT64_C(0) << 12))

static uint64_t vtd_encode_leaf(uint64_t oa, unsigned int size_lg2,
				unsigned int level, int prot, bool dbm)
{
	uint64_t e = VTD_R | oa;

	(void)size_lg2;
	(void)dbm;
	if (level)
		e |= VTD_PS;
	if (prot & IOPT_PROT_WRITE)
		e |= VTD_W;
	return e;
}

static uint64_t vtd_encode_table(uint64_t pa, unsigned int level)
{
	(void)level;
	return VTD_R | VTD_W | pa;
}

static void vtd_decode(uint64_t e, unsigned int level, struct sim_pte *out)
{
	*out = (struct sim_pte){ .kind = SIM_PTE_EMPTY };
	if (!(e & (VTD_R | VTD_W)))
		return;
	if (level && !(e & VTD_PS)) {
		out->kind = SIM_PTE_TABLE;
		out->addr = e & VTD_ADDR;
		return;
	}
	out->kind = SIM_PTE_LEAF;
	out->size_lg2 = 12 + 9 * level;
	out->addr = e & VTD_ADDR & ~((UINT64_C(1) << out->size_lg2) - 1);
	out->read = e & VTD_R;
	out->write = e & VTD_W;
	out->dirty_ok = out->write;
	out->dirty = e & VTD_D;
}

static uint64_t vtd_make_dirty(uint64_t e)
{
	return e | VTD_D;
}

static uint64_t vtd_make_clean(uint64_t e)
{
	return e & ~VTD_D;
}

static uint64_t vtd_make_accessed(uint64_t e)
{
	return e | VTD_A;
}

const struct sim_pt_format iopt_sim_fmt_vtdss = {
	.name = "vtdss",
	.granule_lg2 = 12,
	.max_levels = 5,
	.start_levels = 4,
	.dynamic_top = false,
	.fixed_levels_mask = (1u << 3) | (1u << 4) | (1u << 5),
	.va_lg2 = 57,
	.oa_lg2 = 52,
	.addr_mask = VTD_ADDR,
	.leaf_sizes = { UINT64_C(1) << 12, UINT64_C(1) << 21, UINT64_C(1) << 30 },
	.encode_leaf = vtd_encode_leaf,
	.encode_table = vtd_encode_table,
	.decode = vtd_decode,
	.make_dirty = vtd_make_dirty,
	.make_clean = vtd_make_clean,
	.make_accessed = vtd_make_accessed,
};
