/* SPDX-License-Identifier: MIT */
/*
 * replay.c - run fuzz inputs without libFuzzer: every file named on the
 * command line, or every file of a directory named there, through
 * iopt_fuzz_one(). This is how the corpus runs under plain ctest with gcc,
 * so every crash the fuzzer ever found stays a regression test.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_ioas.h"

static int replay_file(const char *path)
{
	unsigned char *data;
	unsigned int ops;
	FILE *f = fopen(path, "rb");
	long size;

	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		perror(path);
		return 1;
	}
	data = malloc(size ? (size_t)size : 1);
	if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
		perror(path);
		return 1;
	}
	fclose(f);
	ops = iopt_fuzz_one(data, (size_t)size);
	printf("%s: %ld bytes, %u operations, ok\n", path, size, ops);
	free(data);
	return 0;
}

static int replay_dir(const char *dir)
{
	struct dirent *e;
	char path[4096];
	int rc = 0;
	DIR *d = opendir(dir);

	if (!d) {
		perror(dir);
		return 1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		rc |= replay_file(path);
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st)) {
			perror(argv[i]);
			return 1;
		}
		rc |= S_ISDIR(st.st_mode) ? replay_dir(argv[i]) :
					    replay_file(argv[i]);
	}
	return rc;
}
