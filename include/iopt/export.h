/* SPDX-License-Identifier: MIT */
/*
 * export.h - IOPT_API marks the functions that form libiopt's public API.
 *
 * The library is compiled with -fvisibility=hidden, so only IOPT_API symbols are
 * exported from a shared build. In the static archive every non-static symbol is
 * still visible to the linker, which is why internal ones carry the iopt_ prefix.
 */
#ifndef IOPT_EXPORT_H
#define IOPT_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define IOPT_API __attribute__((visibility("default")))
#else
#define IOPT_API
#endif

#endif /* IOPT_EXPORT_H */
