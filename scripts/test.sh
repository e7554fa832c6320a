#!/usr/bin/env bash
# Install what is needed, build ferry twice (plain, and with AddressSanitizer +
# UndefinedBehaviorSanitizer) and run the whole test suite on both builds,
# then build the libFuzzer targets with clang and fuzz each for a bounded
# time (FERRY_FUZZ_SECONDS, 20 s). Scenario tests need root (network
# namespaces); as non-root they skip and say why. This is what .ci/run calls.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "$(id -u)" -eq 0 ]; then
	bash scripts/install-deps.sh
fi

status=0
run_suite() {
	local dir=$1; shift
	echo "== build $dir $*"
	bash scripts/build.sh "$dir" "$@"
	echo "== test $dir"
	(cd "$dir" && ctest --output-on-failure --timeout 300) || status=1
}

run_suite "$top/build"
# ASan: leaks are checked too; UBSan aborts on the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_suite "$top/build-asan" -DFERRY_SANITIZE=ON -DFERRY_BENCH=OFF

# Fuzzing (tests/fuzz/): a clang build of its own with libFuzzer, ASan and
# UBSan; `ctest -L fuzz` runs every target from its checked-in corpus, two at
# a time. A crash, sanitizer report, leak or hang fails the suite; the input
# is kept in build-fuzz/fuzz-artifacts/.
run_fuzz() {
	local dir=$top/build-fuzz
	if ! command -v clang >/dev/null; then
		echo "== fuzz: skipped, clang is not installed (scripts/install-deps.sh)"
		return
	fi
	echo "== build $dir (clang, libFuzzer + ASan + UBSan)"
	cmake -S "$top" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DFERRY_FUZZ=ON -DFERRY_TESTS=OFF -DFERRY_BENCH=OFF \
		-DFERRY_FUZZ_SECONDS="${FERRY_FUZZ_SECONDS:-20}" >/dev/null
	cmake --build "$dir" -j"$(nproc)" --target fuzz_targets
	echo "== fuzz $dir"
	(cd "$dir" && ctest -L fuzz -j2 --output-on-failure) || status=1
}
run_fuzz

if [ $status -ne 0 ]; then
	echo "test.sh: some tests failed" >&2
fi
exit $status
