/* A program that only sees the installed headers and library. */
#include <stdio.h>
#include <string.h>

#include <iopt/iopt.h>

int main(void)
{
	const char *v = iopt_version_string();

	if (!v || strcmp(v, IOPT_VERSION_STRING) != 0) {
		fprintf(stderr, "version mismatch: %s\n", v ? v : "(null)");
		return 1;
	}
	printf("linked libiopt %s\n", v);
	return 0;
}
