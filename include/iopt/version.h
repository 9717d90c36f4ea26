/* SPDX-License-Identifier: MIT */
/* version.h - compile-time and run-time library version. */
#ifndef IOPT_VERSION_H
#define IOPT_VERSION_H

#include <iopt/export.h>

#define IOPT_VERSION_MAJOR 0
#define IOPT_VERSION_MINOR 1
#define IOPT_VERSION_PATCH 0
#define IOPT_VERSION_STRING "0.1.0"

/**
 * iopt_version_string() - the version of the linked library.
 *
 * Return: a static string; compare with IOPT_VERSION_STRING to detect a header and
 * library mismatch.
 */
IOPT_API const char *iopt_version_string(void);

#endif /* IOPT_VERSION_H */
