#!/usr/bin/env bash
# demo.sh: show xfer end to end on this machine, loopback only.
#
#   XFER=bin/xfer scripts/demo.sh        (or: make demo)
#
# Builds a sample tree (small files, a 64 MiB file, subdirectories, a symlink,
# an empty directory), starts two `xfer serve` peers on 127.0.0.1 with ports
# picked at run time and separate roots, then:
#   copy  local            -> serve A
#   sync  serve A          -> serve B    (remote to remote)
#   sync  serve B          -> local mirror
# and checks that the mirror equals the source (diff -r, xfer hash, symlink,
# empty directory). Everything it starts or creates is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
XFER="${XFER:-$HERE/../bin/xfer}"
[[ -x "$XFER" ]] || { echo "demo: no xfer binary at $XFER (run make build)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/xfer-demo.XXXXXX")"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'demo: %s\n' "$*"; }
die() {
	printf 'demo: FAILED: %s\n' "$*" >&2
	exit 1
}

# xf WHAT ARGS...: runs an xfer command with --json and reports one line.
xf() {
	local what="$1" out="$WORK/out.json" t0 t1 rc=0
	shift
	t0=$EPOCHREALTIME
	"$XFER" "$@" --json >"$out" 2>"$WORK/err.log" || rc=$?
	t1=$EPOCHREALTIME
	if ((rc != 0)); then
		cat "$WORK/err.log" >&2
		die "xfer $* exited $rc"
	fi
	printf 'demo: %-36s %5s files %10s bytes %6.2f s  proto %s\n' "$what" \
		"$(summary_field "$out" files_transferred)" "$(summary_field "$out" bytes_transferred)" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$(summary_field "$out" proto)"
}

# --- sample tree -----------------------------------------------------------
SRC="$WORK/src"
mkdir -p "$SRC/docs" "$SRC/data/raw" "$SRC/data/empty"
printf 'hello from xfer\n' >"$SRC/README.txt"
printf 'line %d\n' $(seq 1 2000) >"$SRC/docs/notes.txt"
: >"$SRC/docs/zero-length"
head -c 100000 /dev/urandom >"$SRC/data/raw/small.bin"
head -c $((64 << 20)) /dev/urandom >"$SRC/data/raw/big.bin"
ln -s raw/small.bin "$SRC/data/link-to-small"
nfiles=$(find "$SRC" -type f | wc -l)
say "sample tree $SRC: $nfiles files ($(du -sh --apparent-size "$SRC" | cut -f1)), 1 symlink, 1 empty dir"

# --- two peers ---------------------------------------------------------------
xfer_serve_start "$WORK/rootA" "$WORK/serveA.log" || die "cannot start serve A"
PIDS+=("$XS_PID") A="$XS_ADDR"
xfer_serve_start "$WORK/rootB" "$WORK/serveB.log" || die "cannot start serve B"
PIDS+=("$XS_PID") B="$XS_ADDR"
say "xfer serve A on $A (root $WORK/rootA), B on $B (root $WORK/rootB)"

# --- the round trip ------------------------------------------------------------
MIRROR="$WORK/mirror"
xf "copy local -> A" copy "$SRC" "xfer://$A/tree"
xf "sync A -> B (remote to remote)" sync "xfer://$A/tree" "xfer://$B/tree"
xf "sync B -> local mirror" sync "xfer://$B/tree" "$MIRROR"

# --- checks --------------------------------------------------------------------
for d in "$WORK/rootA/tree" "$WORK/rootB/tree" "$MIRROR"; do
	diff -r --no-dereference "$SRC" "$d" >"$WORK/diff.txt" 2>&1 ||
		{ cat "$WORK/diff.txt" >&2; die "$d differs from the source"; }
done
hash_tree "$SRC" "$XFER" hash >"$WORK/src.b3"
hash_tree "$MIRROR" "$XFER" hash >"$WORK/mirror.b3"
[[ "$(wc -l <"$WORK/src.b3")" -eq "$nfiles" ]] || die "xfer hash listed $(wc -l <"$WORK/src.b3") of $nfiles files"
cmp -s "$WORK/src.b3" "$WORK/mirror.b3" || { diff "$WORK/src.b3" "$WORK/mirror.b3" >&2; die "xfer hash differs"; }
if command -v b3sum >/dev/null 2>&1; then
	hash_tree "$SRC" b3sum >"$WORK/ref.b3"
	cmp -s "$WORK/src.b3" "$WORK/ref.b3" || { diff "$WORK/src.b3" "$WORK/ref.b3" >&2; die "xfer hash disagrees with b3sum"; }
fi
[[ -L "$MIRROR/data/link-to-small" && "$(readlink "$MIRROR/data/link-to-small")" == raw/small.bin ]] ||
	die "symlink data/link-to-small not preserved"
[[ -d "$MIRROR/data/empty" ]] || die "empty directory data/empty not preserved"
say "verified: A, B and mirror equal the source (diff -r), $nfiles file hashes match$(command -v b3sum >/dev/null && echo ' (and b3sum)'), symlink and empty dir kept"

# A second sync with nothing changed should move nothing.
xf "sync B -> mirror again (no change)" sync "xfer://$B/tree" "$MIRROR"
[[ "$(summary_field "$WORK/out.json" files_transferred)" == 0 ]] || die "no-change sync transferred files"
say "OK"
