#!/usr/bin/env bash
# bench-ab.sh: two builds of xfer against each other, interleaved in one
# run (A, B, then B, A, ...), medians and the median of paired ratios B/A:
# the before/after check of a change that must not slow anything down (a
# restructuring). Each build runs its own `xfer serve`, so the two may speak
# different protocol versions.
#
#   XFER_A=/path/to/old/xfer XFER_B=bin/xfer scripts/bench-ab.sh
#
# Knobs (environment):
#   BENCH_RUNS=5 BENCH_WARMUP=1   measured rounds (plus untimed warm-up)
#   BENCH_BIG_MIB=1024            the large file of "local" and "push"
#   BENCH_SMALL_FILES=10000       4 KiB files of "small" and "nochange"
#   BENCH_BENCH_S=3               seconds of each xfer bench throughput run
#   BENCH_PROTOS="tcp tcp-zc uring rdma"   transports of xfer bench
#   BENCH_TMP=/dev/shm BENCH_TIMEOUT=600
#
# Series: local (copy of the large file to a local directory), push (to a
# served peer, transport auto), small (push of the small-file tree),
# nochange (sync of that tree again, nothing to do), hash (xfer hash of the
# large file), bench-PROTO (xfer bench --mode mem, GB/s, higher is better).
set -euo pipefail

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench-ab

RUNS="${BENCH_RUNS:-5}"
WARMUP="${BENCH_WARMUP:-1}"
BIG_MIB="${BENCH_BIG_MIB:-1024}"
SMALL_FILES="${BENCH_SMALL_FILES:-10000}"
BENCH_S="${BENCH_BENCH_S:-3}"
PROTOS="${BENCH_PROTOS:-tcp tcp-zc uring rdma}"
TIMEOUT="${BENCH_TIMEOUT:-600}"
GNU_TIME=/usr/bin/time
A="${XFER_A:?XFER_A: the build to compare against (before)}"
B="${XFER_B:-$ROOT/bin/xfer}"
[[ -x "$A" && -x "$B" ]] || die "XFER_A ($A) and XFER_B ($B) must be executables"
positive_int BENCH_RUNS "$RUNS"
export UCX_TLS="${UCX_TLS:-tcp}" UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"

bench_workdir bench-ab
DATA="$BD/data"
mkdir -p "$DATA/small"
log "data: ${BIG_MIB} MiB file, $SMALL_FILES x 4 KiB files, in $BD"
head -c "$((BIG_MIB << 20))" /dev/urandom >"$DATA/big.bin"
for ((i = 0; i < SMALL_FILES; i++)); do
	d="$DATA/small/d$((i % 100))"
	[[ -d "$d" ]] || mkdir -p "$d"
	head -c 4096 /dev/urandom >"$d/f$i"
done

# bin TOOL: the binary of tool A or B.
bin() { if [[ "$1" == A ]]; then echo "$A"; else echo "$B"; fi; }

one_round() {
	local tool="$1" x d
	x="$(bin "$tool")"
	XFER="$x"
	d="$BD/dst-$tool"
	rm -rf "$d" "$BD/srv-$tool"
	mkdir -p "$d"
	measure "local-$tool" "$RES/out" "$x" copy --json "$DATA/big.bin" "$d/"
	xfer_serve_start "$BD/srv-$tool" "$RES/serve.log" || die "xfer serve ($tool) did not start"
	measure "push-$tool" "$RES/out" "$x" copy --json "$DATA/big.bin" "xfer://$XS_ADDR/big/"
	measure "small-$tool" "$RES/out" "$x" copy --json "$DATA/small/" "xfer://$XS_ADDR/small/"
	measure "nochange-$tool" "$RES/out" "$x" sync --json "$DATA/small/" "xfer://$XS_ADDR/small/"
	local p line gbs
	for p in $PROTOS; do
		line="$(timeout "$TIMEOUT" "$x" bench --to "xfer://$XS_ADDR" --proto "$p" --streams 1 \
			--duration "${BENCH_S}s" --ping-duration 0s --json 2>"$RES/bench.err")" || {
			cat "$RES/bench.err" >&2
			die "xfer bench --proto $p ($tool) failed"
		}
		gbs="$(sed -e 's/"per_stream":\[[^]]*\]//' <<<"$line" | sed -n 's/.*"gb_s":\([-0-9.e+]*\).*/\1/p')"
		record "bench-$p-$tool.t" "$gbs"
	done
	stop_pid "$XS_PID"
	XS_PID=""
	measure "hash-$tool" "$RES/out" "$x" hash "$DATA/big.bin"
	rm -rf "$d" "$BD/srv-$tool"
}

T0=$SECONDS
for_runs one_round A B
echo "xfer A/B ($RUNS interleaved rounds, medians; $((SECONDS - T0)) s; load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "A: $A ($("$A" version 2>/dev/null | head -n1))"
echo "B: $B ($("$B" version 2>/dev/null | head -n1))"
echo
echo "| series | unit | A | B | B/A (paired median) |"
echo "|---|---|---|---|---|"
for s in local push small nochange hash; do
	echo "| $s | s | $(median "$RES/$s-A.t") | $(median "$RES/$s-B.t") | $(paired_ratio "$RES/$s-B.t" "$RES/$s-A.t") |"
done
for p in $PROTOS; do
	echo "| bench $p | GB/s | $(median "$RES/bench-$p-A.t") | $(median "$RES/bench-$p-B.t") | $(paired_ratio "$RES/bench-$p-B.t" "$RES/bench-$p-A.t") |"
done
echo
echo "raw values:"
raw_values 16 .t "$RES"/*.t
