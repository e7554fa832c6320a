#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time (the CTest test fuzz/<name>).
# Usage: run_fuzz.sh TARGET CORPUS_DIR SECONDS ARTIFACT_PREFIX
# The checked-in corpus is copied to a temporary directory first, so new
# inputs the run finds never land in the source tree; a dictionary named
# after the corpus (tests/fuzz/<name>.dict) is used when there is one. The
# target's exit status is the test's: a crash, a sanitizer report, a leak
# or an input slower than 25 s fails it, and the input is kept as
# ARTIFACT_PREFIX{crash,leak,timeout,oom}-<sha1>.
set -euo pipefail
target=$1 corpus=$2 seconds=$3 prefix=$4
name=$(basename "$corpus")
dict=$(dirname "$corpus")/../$name.dict

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$corpus/." "$work/"
mkdir -p "$(dirname "$prefix")"

args=(-max_total_time="$seconds" -rss_limit_mb=1024 -timeout=25 -max_len=8192
	-print_final_stats=1 -artifact_prefix="$prefix")
[ -f "$dict" ] && args+=(-dict="$dict")
echo "run_fuzz: $target ${args[*]} $work (seeds: $(ls "$corpus" | wc -l))"
set +e
"$target" "${args[@]}" "$work"
status=$?
set -e
if [ $status -ne 0 ]; then
	echo "run_fuzz: $name failed (exit $status); inputs kept:" >&2
	ls -1 "$prefix"* 2>/dev/null >&2 || true
	echo "run_fuzz: reproduce with: $target <input>" >&2
fi
exit $status
