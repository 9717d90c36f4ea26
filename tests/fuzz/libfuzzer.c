/* SPDX-License-Identifier: MIT */
/*
 * libfuzzer.c - the libFuzzer entry point of the differential target
 * (clang -fsanitize=fuzzer,address,undefined; see tests/fuzz/CMakeLists.txt).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_ioas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iopt_fuzz_one(data, size);
	return 0;
}
