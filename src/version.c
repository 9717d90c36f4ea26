/* SPDX-License-Identifier: MIT */
/* version.c - run-time version query. */
#include <iopt/version.h>

const char *iopt_version_string(void)
{
	return IOPT_VERSION_STRING;
}
