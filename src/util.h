/* SPDX-License-Identifier: MIT */
/*
 * util.h - small generic helpers shared by every libiopt module.
 *
 * Macros only (no symbols), so this header can be included from src/ and sim/
 * alike without adding anything to libiopt.a's namespace. Kept deliberately tiny:
 * a helper belongs here only when two or more modules need it.
 */
#ifndef IOPT_UTIL_H
#define IOPT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define IOPT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define IOPT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define IOPT_MAX(a, b) ((a) > (b) ? (a) : (b))

/* @a must be a power of two; both wrap silently like the kernel's ALIGN(). */
#define IOPT_ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define IOPT_ALIGN_UP(x, a) IOPT_ALIGN_DOWN((x) + ((__typeof__(x))(a) - 1), (a))

#define iopt_likely(x) __builtin_expect(!!(x), 1)
#define iopt_unlikely(x) __builtin_expect(!!(x), 0)

static inline bool iopt_is_aligned(uint64_t x, uint64_t a)
{
	return (x & (a - 1)) == 0;
}

static inline bool iopt_is_power_of_2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* 1-based index of the most significant set bit; 0 for 0 (as the kernel's fls64). */
static inline unsigned int iopt_fls64(uint64_t x)
{
	return x ? 64 - (unsigned int)__builtin_clzll(x) : 0;
}

/* 0-based index of the least significant set bit; @x must not be 0 (kernel __ffs64). */
static inline unsigned int iopt_ffs64(uint64_t x)
{
	return (unsigned int)__builtin_ctzll(x);
}

#endif /* IOPT_UTIL_H */
