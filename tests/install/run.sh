#!/usr/bin/env bash
# Install the build tree into a scratch prefix, then build and run a consumer found
# through find_package(iopt) and one through pkg-config. The prefix is moved after
# installing to prove the package is relocatable.
set -euo pipefail
build=$1 src=$2 work=$3 cc=$4
rm -rf "$work"
cmake --install "$build" --prefix "$work/stage" >/dev/null
mv "$work/stage" "$work/prefix"
prefix=$work/prefix
passed=0 failed=0

if cmake -S "$src" -B "$work/cmake-consumer" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_COMPILER="$cc" >/dev/null &&
   cmake --build "$work/cmake-consumer" >/dev/null &&
   LD_LIBRARY_PATH="$prefix/lib:${LD_LIBRARY_PATH:-}" "$work/cmake-consumer/consumer"; then
	passed=$((passed + 1))
else
	echo "find_package consumer failed"; failed=$((failed + 1))
fi

pcdir=$(dirname "$(find "$prefix" -name iopt.pc | head -n1)")
if flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs --static iopt) &&
   "$cc" -o "$work/pc-consumer" "$src/consumer.c" $flags &&
   LD_LIBRARY_PATH="$prefix/lib:${LD_LIBRARY_PATH:-}" "$work/pc-consumer"; then
	if PKG_CONFIG_PATH="$pcdir" pkg-config --print-requires-private iopt | grep -q bsd; then
		echo "libbsd must be in Libs.private, not Requires.private"; failed=$((failed + 1))
	else
		passed=$((passed + 1))
	fi
else
	echo "pkg-config consumer failed"; failed=$((failed + 1))
fi
echo "install consumers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
