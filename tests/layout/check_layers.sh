#!/usr/bin/env bash
# The dependency rule of docs/architecture.md, checked on the sources:
#
#   proxy/core       includes only proxy/core
#   informer         proxy/core, informer
#   netfilter        proxy/core, netfilter
#   backends/<name>  proxy/core, netfilter, its own folder (never another backend's)
#   proxy/program    anything (the only part that knows every source and backend)
#
# Every #include "x.h" of a file must be found in one of the folders its
# layer may use; an include that resolves only elsewhere is a violation,
# printed with the folder it came from. Exit 0 when the tree keeps the
# rule, 1 otherwise.
set -euo pipefail
top=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top"

fail=0
# check FILE ALLOWED_DIR...
check() {
	local file=$1; shift
	local hdr dir found
	while read -r hdr; do
		found=
		for dir in "$@"; do
			if [ -e "$dir/$hdr" ]; then
				found=$dir
				break
			fi
		done
		# Headers next to the file (a folder's own) are always fine.
		if [ -z "$found" ] && [ -e "$(dirname "$file")/$hdr" ]; then
			found=self
		fi
		if [ -z "$found" ]; then
			local where
			where=$(find proxy informer netfilter backends -name "$hdr" -printf '%h ' 2>/dev/null)
			echo "layers: $file includes \"$hdr\" from ${where:-nowhere in the tree}; allowed: $*" >&2
			fail=1
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
}

shopt -s nullglob
for f in proxy/core/*.[ch]; do check "$f" proxy/core; done
for f in informer/*.[ch]; do check "$f" proxy/core informer; done
for f in netfilter/*.[ch]; do check "$f" proxy/core netfilter; done
for d in backends/*/; do
	d=${d%/}
	for f in "$d"/*.[ch]; do check "$f" proxy/core netfilter "$d"; done
done

if [ "$fail" -eq 0 ]; then
	n=$(ls proxy/core/*.[ch] informer/*.[ch] netfilter/*.[ch] backends/*/*.[ch] | wc -l)
	echo "layers: $n files keep the dependency rule"
fi
exit "$fail"
