#!/usr/bin/env bash
# Install what is needed, build ferry twice (plain, and with AddressSanitizer +
# UndefinedBehaviorSanitizer) and run the whole test suite on both builds.
# Scenario tests need root (network namespaces); as non-root they skip and
# say why. This is what .ci/run calls.
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

if [ $status -ne 0 ]; then
	echo "test.sh: some tests failed" >&2
fi
exit $status
