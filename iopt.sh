#!/usr/bin/env bash
# iopt.sh - the README's two commands, and a few more. It only wraps apt-get and CMake.
#
#   ./iopt.sh demo    install what is missing, build, run the end-to-end demo
#   ./iopt.sh test    install what is missing, build with -Werror, run ctest, the
#                     valgrind memcheck pass, the ASan+UBSan pass and the TSan pass
#   ./iopt.sh tsan    the ThreadSanitizer pass alone
#   ./iopt.sh bench   release build, run every bench
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake make gcc clang libcmocka-dev libbsd-dev valgrind pkg-config)
JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "== installing: ${missing[*]}"
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {	# build PRESET
	cmake --preset "$1" >/dev/null
	cmake --build --preset "$1" -j "$JOBS"
}

cmd_demo() {
	deps
	build debug
	./build/debug/examples/demo
}

cmd_test() {
	deps
	echo "== 1/4 build with -Werror, ctest"
	build ci
	ctest --preset ci -j "$JOBS"
	echo "== 2/4 valgrind memcheck (leaks and invalid accesses fail)"
	IOPT_TEST_QUICK=1 ctest --test-dir build/ci -T memcheck -LE 'install' -j "$JOBS" \
		--output-on-failure
	echo "== 3/4 ASan + UBSan"
	build asan
	ctest --preset asan -j "$JOBS"
	echo "== 4/4 ThreadSanitizer"
	cmd_tsan
	echo "== all test passes green"
}

cmd_tsan() {
	deps
	build tsan
	ctest --preset tsan -j "$JOBS"
}

cmd_bench() {
	deps
	build release
	for b in build/release/bench/bench_*; do
		[ -x "$b" ] || continue
		echo "== $b"
		"$b"
	done
}

case "${1:-}" in
demo | test | tsan | bench) "cmd_$1" ;;
*) echo "usage: $0 demo|test|tsan|bench" >&2; exit 2 ;;
esac
