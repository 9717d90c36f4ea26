/* SPDX-License-Identifier: MIT */
/*
 * pt_format.h - how one hardware page-table format is described to the radix
 * engine (pt_radix.c).
 *
 * Every format here has 4 KiB tables of 512 little-endian 64-bit entries;
 * level 0 is the table holding the smallest leaves, an entry of a level-n
 * table covers 2^(granule_lg2 + 9n) bytes of IOVA. A format is a set of
 * constants plus pure encode/decode functions: the engine never looks at bits
 * itself, so adding a format means adding one fmt_*.c file. The functions
 * must be pure (no state) because the engine and simulated DMA call them
 * concurrently.
 */
#ifndef IOPT_SIM_PT_FORMAT_H
#define IOPT_SIM_PT_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#define SIM_PT_ENTRIES_LG2	9
#define SIM_PT_ENTRIES		512u
#define SIM_PT_TABLE_SIZE	4096u
#define SIM_PT_MAX_LEVELS	6

enum sim_pte_kind {
	SIM_PTE_EMPTY,
	SIM_PTE_TABLE,
	SIM_PTE_LEAF,
};

/**
 * struct sim_pte - a decoded entry.
 * @kind: empty, table pointer or leaf.
 * @addr: table sim-PA for a table, base output address of the whole leaf
 *	  (all replicas) for a leaf.
 * @size_lg2: leaf size; a size above the level's entry size means the leaf
 *	      is a run of identical replicated entries.
 * @read: a device read is allowed.
 * @write: a device write is allowed without a dirty-state change (ARM:
 *	   AP[2] clear).
 * @dirty_ok: a write may be allowed by making the entry dirty (ARM DBM);
 *	      always equal to @write for formats with a separate D bit.
 * @dirty: the entry's D state.
 */
struct sim_pte {
	enum sim_pte_kind kind;
	uint64_t addr;
	unsigned int size_lg2;
	bool read;
	bool write;
	bool dirty_ok;
	bool dirty;
};

/**
 * struct sim_pt_format - constants and codecs of one format.
 * @name: short name used in reports and benches.
 * @granule_lg2: size of a level-0 leaf.
 * @max_levels: most table levels a domain of this format can have.
 * @start_levels: levels at allocation (grows later when @dynamic_top).
 * @dynamic_top: the top level grows as higher IOVAs are mapped (AMD).
 * @fixed_levels_mask: bit n set when a fixed-top domain may have n levels
 *		       (VT-d 3/4/5); ignored when @dynamic_top.
 * @va_lg2: widest IOVA (bits).
 * @oa_lg2: widest output address (bits).
 * @addr_mask: bits of an entry holding an address (or a size run); two
 *	       leaves of one level whose other bits are equal have the same
 *	       kind and size, which lets the engine skip decoding runs of them.
 * @leaf_sizes: per level, the leaf sizes (bit n = 2^n bytes) an entry of a
 *		table at that level may hold, replicated sizes included.
 * @encode_leaf: one entry (every replica is identical) of a leaf of
 *		 2^@size_lg2 bytes at @oa, stored in a level-@level table.
 *		 @dbm: the domain can track dirty state (ARM DBM on writable).
 * @encode_table: entry of a level-@level table pointing at a table at @pa.
 * @decode: decode @e found in a level-@level table.
 * @make_dirty: what hardware writes to mark @e dirty.
 * @make_clean: what software writes to clean @e.
 * @make_accessed: what hardware writes to mark @e accessed (may return @e).
 */
struct sim_pt_format {
	const char *name;
	unsigned int granule_lg2;
	unsigned int max_levels;
	unsigned int start_levels;
	bool dynamic_top;
	uint32_t fixed_levels_mask;
	unsigned int va_lg2;
	unsigned int oa_lg2;
	uint64_t addr_mask;
	uint64_t leaf_sizes[SIM_PT_MAX_LEVELS];
	uint64_t (*encode_leaf)(uint64_t oa, unsigned int size_lg2,
				unsigned int level, int prot, bool dbm);
	uint64_t (*encode_table)(uint64_t pa, unsigned int level);
	void (*decode)(uint64_t e, unsigned int level, struct sim_pte *out);
	uint64_t (*make_dirty)(uint64_t e);
	uint64_t (*make_clean)(uint64_t e);
	uint64_t (*make_accessed)(uint64_t e);
};

extern const struct sim_pt_format iopt_sim_fmt_amdv1;
extern const struct sim_pt_format iopt_sim_fmt_amdv1_2k;
extern const struct sim_pt_format iopt_sim_fmt_vtdss;
extern const struct sim_pt_format iopt_sim_fmt_arm_lpae_s1;

#endif /* IOPT_SIM_PT_FORMAT_H */
