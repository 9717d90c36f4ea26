/* placeholder replaced when the interval tree lands */
#include <stdio.h>
#include <iopt/iopt.h>
int main(void) { printf("libiopt %s\n", iopt_version_string()); return 0; }
