/* SPDX-License-Identifier: MIT */
/*
 * fmt_amd_v1.c - AMD I/O page table v1 ("host" table), bit-exact, and the
 * 2 KiB-granule variant the kernel's iommufd selftest mock uses.
 *
 * Entry bits (AMD IOMMU specification; pagetable-formats.md §2):
 * PR 0, A 5, D 6, next-level 11:9, output address 51:12, U 59, FC 60,
 * IR 61, IW 62. Next-level 0 is a leaf of the table level's own size, 1-6 a
 * pointer to a table of that (1-based) level, 7 a leaf whose size is encoded
 * as a run of 1s in the low address bits (starting at the granule bit),
 * stored as 2^n identical entries. Like Linux 6.12, leaves always get FC and
 * tables get IR|IW (the hardware ANDs IR/IW across levels), never FC.
 *
 * The 2 KiB variant cannot put address bit 11 at bit 11 (the next-level
 * field lives there), so its leaves store the 2 KiB frame number in bits
 * 51:12 (output address << 1, a 51-bit output) and the size run starts at
 * bit 12 of that field; table pointers stay plain 4 KiB addresses. It has at
 * most 5 levels (56-bit IOVA), as the selftest mock does; its tables are
 * still 512 entries of 8 bytes.
 */
#include "pt_format.h"

#include <iopt/domain.h>

#define AMD_PR		(UINT64_C(1) << 0)
#define AMD_A		(UINT64_C(1) << 5)
#define AMD_D		(UINT64_C(1) << 6)
#define AMD_NL_SHIFT	9
#define AMD_NL_MASK	(UINT64_C(7) << AMD_NL_SHIFT)
#define AMD_NL_SIZED	7
#define AMD_FC		(UINT64_C(1) << 60)
#define AMD_IR		(UINT64_C(1) << 61)
#define AMD_IW		(UINT64_C(1) << 62)
#define AMD_ADDR	GENMASK_C(51, 12)

#define GENMASK_C(h, l) ((~UINT64_C(0) >> (63 - (h))) & (~UINT64_C(0) << (l)))

/* Leaf sizes a level-@l table may hold: its own size up to 256 replicas. */
#define AMD_LEVEL_SIZES(g, l, max_lg2) \
	(((g) + 9 * (l) > (max_lg2)) ? 0 : \
	 GENMASK_C(((g) + 9 * (l) + 8 > (max_lg2) ? (max_lg2) : (g) + 9 * (l) + 8), \
		   (g) + 9 * (l)))

/* The AMD IOMMU cannot hold 512 GiB pages (a hardware erratum). */
#define AMD_NO_512G	(~(UINT64_C(1) << 39))

/*
 * @oa_shift: 0 for the 4K format, 1 for the 2K variant (the field holds
 * the 2K frame number at bit 12, see above).
 */
static uint64_t amd_encode_leaf(uint64_t oa, unsigned int size_lg2,
				unsigned int gran_lg2, unsigned int level,
				unsigned int oa_shift, int prot)
{
	uint64_t e = AMD_PR | AMD_FC | oa << oa_shift;

	if (size_lg2 != gran_lg2 + 9 * level) {
		uint64_t size = UINT64_C(1) << (size_lg2 + oa_shift);

		e |= ((size - 1) & ~(size >> 1)) & AMD_ADDR;
		e |= (uint64_t)AMD_NL_SIZED << AMD_NL_SHIFT;
	}
	if (prot & IOPT_PROT_READ)
		e |= AMD_IR;
	if (prot & IOPT_PROT_WRITE)
		e |= AMD_IW;
	return e;
}

static void amd_decode(uint64_t e, unsigned int level, unsigned int gran_lg2,
		       unsigned int oa_shift, struct sim_pte *out)
{
	unsigned int nl = (unsigned int)((e & AMD_NL_MASK) >> AMD_NL_SHIFT);

	*out = (struct sim_pte){ .kind = SIM_PTE_EMPTY };
	if (!(e & AMD_PR))
		return;
	if (nl != 0 && nl != AMD_NL_SIZED) {
		out->kind = SIM_PTE_TABLE;
		out->addr = e & AMD_ADDR;
		return;
	}
	out->kind = SIM_PTE_LEAF;
	if (nl == 0)
		out->size_lg2 = gran_lg2 + 9 * level;
	else
		out->size_lg2 = gran_lg2 + 1 +
			(unsigned int)__builtin_ctzll(~((e & AMD_ADDR) >> 12));
	out->addr = (e & AMD_ADDR) >> oa_shift &
		    ~((UINT64_C(1) << out->size_lg2) - 1);
	out->read = e & AMD_IR;
	out->write = e & AMD_IW;
	out->dirty_ok = out->write;
	out->dirty = e & AMD_D;
}

static uint64_t amd_encode_table(uint64_t pa, unsigned int level)
{
	/* A level-n (0-based) table points at AMD level n (1-based) tables. */
	return AMD_PR | AMD_IR | AMD_IW | (uint64_t)level << AMD_NL_SHIFT | pa;
}

static uint64_t amd_make_dirty(uint64_t e)
{
	return e | AMD_D;
}

static uint64_t amd_make_clean(uint64_t e)
{
	return e & ~AMD_D;
}

static uint64_t amd_make_accessed(uint64_t e)
{
	return e | AMD_A;
}


static uint64_t amd4k_encode_leaf(uint64_t oa, unsigned int size_lg2,
				  unsigned int level, int prot, bool dbm)
{
	(void)dbm;
	return amd_encode_leaf(oa, size_lg2, 12, level, 0, prot);
}

static void amd4k_decode(uint64_t e, unsigned int level, struct sim_pte *out)
{
	amd_decode(e, level, 12, 0, out);
}

static uint64_t amd2k_encode_leaf(uint64_t oa, unsigned int size_lg2,
				  unsigned int level, int prot, bool dbm)
{
	(void)dbm;
	return amd_encode_leaf(oa, size_lg2, 11, level, 1, prot);
}

static void amd2k_decode(uint64_t e, unsigned int level, struct sim_pte *out)
{
	amd_decode(e, level, 11, 1, out);
}

const struct sim_pt_format iopt_sim_fmt_amdv1 = {
	.name = "amdv1",
	.granule_lg2 = 12,
	.max_levels = 6,
	.start_levels = 3,
	.dynamic_top = true,
	.va_lg2 = 64,
	.oa_lg2 = 52,
	.addr_mask = AMD_ADDR,
	.leaf_sizes = {
		AMD_LEVEL_SIZES(12, 0, 51), AMD_LEVEL_SIZES(12, 1, 51),
		AMD_LEVEL_SIZES(12, 2, 51), AMD_LEVEL_SIZES(12, 3, 51) & AMD_NO_512G,
		AMD_LEVEL_SIZES(12, 4, 51), AMD_LEVEL_SIZES(12, 5, 51),
	},
	.encode_leaf = amd4k_encode_leaf,
	.encode_table = amd_encode_table,
	.decode = amd4k_decode,
	.make_dirty = amd_make_dirty,
	.make_clean = amd_make_clean,
	.make_accessed = amd_make_accessed,
};

const struct sim_pt_format iopt_sim_fmt_amdv1_2k = {
	.name = "amdv1-2k",
	.granule_lg2 = 11,
	.max_levels = 5,
	.start_levels = 3,
	.dynamic_top = true,
	.va_lg2 = 56,
	.oa_lg2 = 51,
	.addr_mask = AMD_ADDR,
	.leaf_sizes = {
		AMD_LEVEL_SIZES(11, 0, 50), AMD_LEVEL_SIZES(11, 1, 50),
		AMD_LEVEL_SIZES(11, 2, 50), AMD_LEVEL_SIZES(11, 3, 50),
		AMD_LEVEL_SIZES(11, 4, 50),
	},
	.encode_leaf = amd2k_encode_leaf,
	.encode_table = amd_encode_table,
	.decode = amd2k_decode,
	.make_dirty = amd_make_dirty,
	.make_clean = amd_make_clean,
	.make_accessed = amd_make_accessed,
};
