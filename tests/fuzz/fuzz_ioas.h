/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ioas.h - the differential fuzz target, shared by the libFuzzer entry
 * point (libfuzzer.c) and the corpus replayer (replay.c).
 */
#ifndef IOPT_FUZZ_IOAS_H
#define IOPT_FUZZ_IOAS_H

#include <stddef.h>
#include <stdint.h>

/**
 * iopt_fuzz_one() - decode @data into operations, run them against libiopt
 * and the reference model, and compare after every step.
 * @data: input bytes (any content is valid).
 * @size: bytes.
 *
 * Return: the number of operations run. A mismatch, a broken invariant or a
 * leak prints what differed and aborts, which libFuzzer records as a crash.
 */
unsigned int iopt_fuzz_one(const uint8_t *data, size_t size);

#endif /* IOPT_FUZZ_IOAS_H */
