#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target in the module for FUZZTIME each.
#
#   FUZZTIME=30s scripts/fuzz.sh [go test build flags...]
#
# Targets are discovered with `go test -list '^Fuzz' ./...`; `go test -fuzz`
# accepts one target in one package at a time, so each runs on its own.
# A package that fails to build fails the run; no targets at all is an error
# only when FUZZ_REQUIRE=1.
set -euo pipefail

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-30s}"
cd "$(dirname "$0")/.."

listing="$(mktemp)"
trap 'rm -f "$listing"' EXIT

if ! "$GO" test "$@" -list '^Fuzz' ./... >"$listing" 2>&1; then
	cat "$listing" >&2
	echo "fuzz: listing fuzz targets failed" >&2
	exit 1
fi

# Output: target names, then "ok  <pkg> <time>" closing each package.
targets=()
pending=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) pending+=("$line") ;;
	ok*)
		pkg="$(awk '{print $2}' <<<"$line")"
		for t in "${pending[@]+"${pending[@]}"}"; do targets+=("$pkg $t"); done
		pending=()
		;;
	esac
done <"$listing"

if ((${#targets[@]} == 0)); then
	echo "fuzz: no Fuzz targets found in ./..."
	[[ "${FUZZ_REQUIRE:-0}" == 1 ]] && exit 1
	exit 0
fi

echo "fuzz: ${#targets[@]} target(s), ${FUZZTIME} each"
failed=0
for entry in "${targets[@]}"; do
	read -r pkg t <<<"$entry"
	echo "== $pkg $t"
	if ! "$GO" test "$@" -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg"; then
		failed=$((failed + 1))
	fi
done
echo "fuzz: $((${#targets[@]} - failed)) passed, $failed failed"
((failed == 0))
