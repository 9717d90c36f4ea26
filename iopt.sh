#!/usr/bin/env bash
# iopt.sh - the README's two commands, and a few more. It only wraps apt-get and CMake.
#
#   ./iopt.sh demo    install what is missing, build, run the end-to-end demo
#   ./iopt.sh test    install what is missing, build with -Werror, run ctest, the
#                     valgrind memcheck pass, helgrind on the stress test, the
#                     ASan+UBSan pass, the TSan pass and a bounded fuzzing run
#   ./iopt.sh tsan    the ThreadSanitizer pass alone
#   ./iopt.sh fuzz N  differential fuzzing (libFuzzer, clang) for N seconds (default 120);
#                     new crashes land in tests/fuzz/corpus/ as regression tests
#   ./iopt.sh bench   release build, run every bench
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake make gcc clang libclang-rt-14-dev libcmocka-dev libbsd-dev valgrind pkg-config)
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
	echo "== 1/6 build with -Werror, ctest"
	build ci
	ctest --preset ci -j "$JOBS"
	echo "== 2/6 valgrind memcheck (leaks and invalid accesses fail)"
	IOPT_TEST_QUICK=1 ctest --test-dir build/ci -T memcheck -LE 'install' -j "$JOBS" \
		--output-on-failure
	echo "== 3/6 helgrind over the short stress test (tests/helgrind.supp)"
	IOPT_STRESS_ROUNDS=12 IOPT_TEST_QUICK=1 valgrind --tool=helgrind --fair-sched=yes \
		--history-level=approx --track-lockorders=no --error-exitcode=1 \
		--suppressions=tests/helgrind.supp build/ci/tests/test_stress stress_shared_ioas
	echo "== 4/6 ASan + UBSan"
	build asan
	ctest --preset asan -j "$JOBS"
	echo "== 5/6 ThreadSanitizer"
	cmd_tsan
	echo "== 6/6 differential fuzzing, bounded"
	cmd_fuzz 120
	echo "== all test passes green"
}

cmd_tsan() {
	deps
	build tsan
	ctest --preset tsan -j "$JOBS"
}

cmd_fuzz() {
	local seconds=${1:-120} scratch=build/fuzz-corpus log=build/fuzz.log
	deps
	CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DIOPT_FUZZ=ON -DIOPT_TEST_INSTALL=OFF >/dev/null
	cmake --build build/fuzz --target fuzz_ioas -j "$JOBS"
	mkdir -p "$scratch"
	echo "fuzzing for ${seconds}s (corpus: $scratch + tests/fuzz/corpus)"
	# Crashes are written into the regression corpus so that they become tests.
	./build/fuzz/tests/fuzz/fuzz_ioas -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix=tests/fuzz/corpus/crash- -timeout=20 -rss_limit_mb=4096 \
		-dict=tests/fuzz/fuzz_ioas.dict \
		"$scratch" tests/fuzz/corpus 2>"$log" || {
		tail -n 60 "$log"
		echo "fuzzing found a failure: see the crash- file in tests/fuzz/corpus/"
		return 1
	}
	grep -E "^#[0-9]+.*(DONE|cov:)" "$log" | tail -n 1
	grep -E "stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" "$log"
	echo "corpus: $(find "$scratch" -type f | wc -l) scratch + $(find tests/fuzz/corpus -type f | wc -l) regression inputs"
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
fuzz) cmd_fuzz "${2:-120}" ;;
*) echo "usage: $0 demo|test|tsan|bench|fuzz [seconds]" >&2; exit 2 ;;
esac
