#!/usr/bin/env bash
# bench-cas.sh: the performance targets of the content-addressed store and
# the mover daemon (issue 5), with the repo's Go benchmarks and `xfer cas put`
# of a big file next to `b3sum --num-threads 1` of the same file, all on
# tmpfs. Every measurement runs once per round; rounds are interleaved (the
# put and b3sum alternate which goes first) and medians are reported, because
# this machine is shared and single figures vary 2x.
#
#   XFER=bin/xfer scripts/bench-cas.sh        (make build first; needs go)
#
# Knobs (environment):
#   BENCH_ROUNDS=3        rounds of every measurement
#   BENCH_BENCHTIME=2s    -test.benchtime of each Go benchmark per round
#   BENCH_CAS_MIB=2048    size of the file put (0 skips the put vs b3sum)
#   BENCH_TMP=/dev/shm    where the file, the stores and the daemon's socket
#                         live (TMPDIR of the Go benchmarks)
#   BENCH_RECORD=1        append the results and commands to docs/benchmarks.md
#                         (section "CAS and the mover daemon (issue 5)";
#                         BENCH_DOC=FILE writes to another copy of it)
#   BENCH_STRICT=1        exit 1 when a target is missed
#   BENCH_CLIENT_CPU=0    CPU of the Go benchmarks' client process and
#   BENCH_DAEMON_CPU=1    CPU of the daemon process they start (pinned
#                         like `taskset -c`, each with GOMAXPROCS 1; both
#                         empty: not pinned; default pinned on 2+ CPUs)
#
# Targets (issue 5, on tmpfs): READ of a 4 KiB object over the socket p50
# < 15 us, through the mapped zero-copy path < 1 us; BATCH of 100 4 KiB
# READs < 300 us; WRITE of 1 MiB < 1 ms (all p50 of a daemon in another
# process, mover/bench_test.go); `xfer cas put` of a 2 GiB file no slower
# than `b3sum --num-threads 1` hashes it.
set -euo pipefail

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench-cas
ROUNDS="${BENCH_ROUNDS:-3}"
BENCHTIME="${BENCH_BENCHTIME:-2s}"
CAS_MIB="${BENCH_CAS_MIB:-2048}"
DOC="${BENCH_DOC:-$ROOT/docs/benchmarks.md}"
GOFLAGS_BENCH=(-tags rdma -ldflags=-checklinkname=0)
if (($(nproc) >= 2)); then
	CLIENT_CPU="${BENCH_CLIENT_CPU-0}"
	DAEMON_CPU="${BENCH_DAEMON_CPU-1}"
else
	CLIENT_CPU="${BENCH_CLIENT_CPU-}"
	DAEMON_CPU="${BENCH_DAEMON_CPU-}"
fi
for v in "$CLIENT_CPU" "$DAEMON_CPU"; do
	[[ -z "$v" || "$v" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "BENCH_CLIENT_CPU and BENCH_DAEMON_CPU take CPU numbers separated by commas"
done
PIN_ENV=(MOVER_BENCH_CLIENT_CPU="$CLIENT_CPU" MOVER_BENCH_DAEMON_CPU="$DAEMON_CPU")
if [[ -n "$CLIENT_CPU$DAEMON_CPU" ]]; then
	PINNING="client on CPU ${CLIENT_CPU:-any}, daemon on CPU ${DAEMON_CPU:-any}"
else
	PINNING="not pinned"
fi

need_xfer
command -v go >/dev/null || die "go not found (the latency figures are Go benchmarks)"
command -v b3sum >/dev/null || die "b3sum not installed (apt-get install b3sum)"
positive_int BENCH_ROUNDS "$ROUNDS"
[[ "$CAS_MIB" =~ ^[0-9]+$ ]] || die "BENCH_CAS_MIB must be a number of MiB"

bench_workdir xfer-bench-cas
mkdir -p "$BD/tmp"


# --- the Go benchmarks -----------------------------------------------------------

log "building the benchmark binary of ./mover"
(cd "$ROOT" && go test -c "${GOFLAGS_BENCH[@]}" -o "$BD/mover.test" ./mover/) || die "go test -c ./mover"
GO_BENCHES='^Benchmark(Read4K|ReadMapped4K|Batch100x4K|Write1M)$'

# go_round: one run of the mover benchmarks (each starts its own daemon
# process on a fresh store under $BD/tmp); records p50-ns, ns/op,
# cpu-ns/op and the CPU of each side of each in
# $RES/NAME.{p50,nsop,cpu,ccpu,dcpu}.
go_round() {
	local out="$RES/go.out"
	env "${PIN_ENV[@]}" TMPDIR="$BD/tmp" "$BD/mover.test" -test.run '^$' -test.bench "$GO_BENCHES" \
		-test.benchtime "$BENCHTIME" -test.count 1 >"$out" 2>&1 || {
		tail -n 20 "$out" >&2
		die "mover benchmarks failed"
	}
	cat "$out" >>"$RES/go.all"
	awk -v dir="$RES" '
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
			for (i = 3; i < NF; i++) {
				if ($(i+1) == "ns/op") print $i >> (dir "/" name ".nsop")
				if ($(i+1) == "p50-ns") print $i >> (dir "/" name ".p50")
				if ($(i+1) == "cpu-ns/op") print $i >> (dir "/" name ".cpu")
				if ($(i+1) == "client-cpu-ns/op") print $i >> (dir "/" name ".ccpu")
				if ($(i+1) == "daemon-cpu-ns/op") print $i >> (dir "/" name ".dcpu")
			}
		}' "$out"
}

# --- xfer cas put vs b3sum ---------------------------------------------------------

SRC="$BD/src"
if ((CAS_MIB > 0)); then
	log "writing a $CAS_MIB MiB file of random bytes"
	head -c "$((CAS_MIB << 20))" /dev/urandom >"$SRC"
	WANT="$(b3sum --num-threads 1 --no-names "$SRC")"
fi

# timed SERIES CMD...: runs CMD, appends its wall seconds to $RES/SERIES.t
# and its stdout to $RES/SERIES.out.
timed() {
	local series="$1" t0 t1
	shift
	t0=$EPOCHREALTIME
	"$@" >"$RES/$series.out" 2>"$RES/$series.err" || {
		cat "$RES/$series.err" >&2
		die "$series: '$*' failed"
	}
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f\n", b-a}' >>"$RES/$series.t"
}

put_once() {
	rm -rf "$BD/store"
	timed put "$XFER" cas put --cas "$BD/store" "$SRC"
	[[ "$(tr -d '[:space:]' <"$RES/put.out")" == "$WANT" ]] || die "xfer cas put printed $(cat "$RES/put.out"), b3sum says $WANT"
	rm -rf "$BD/store"
}
b3_once() {
	timed b3sum b3sum --num-threads 1 "$SRC"
}

# --- rounds -------------------------------------------------------------------------

LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	cut -d' ' -f1 /proc/loadavg >>"$RES/loadavg.t"
	go_round
	if ((CAS_MIB > 0)); then
		if ((r % 2)); then put_once && b3_once; else b3_once && put_once; fi
	fi
	log "round $r/$ROUNDS done"
done

# --- results --------------------------------------------------------------------------

MISSES=0
ROWS=()
# row FIGURE VALUE UNIT TARGET_TEXT PASS(0/1) NOTE
row() {
	ROWS+=("$1|$2 $3|$4|$( (($5)) && echo PASS || echo MISS)|$6")
	(($5)) || MISSES=$((MISSES + 1))
}
us() { awk -v n="$1" 'BEGIN{ if (n < 10000) printf "%.2f", n/1000; else printf "%.1f", n/1000 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}' && echo 1 || echo 0; }

p50() { median "$RES/$1.p50"; }
cpu() { median "$RES/$1.cpu"; }
# sides NAME: "cpu X µs/op (client Y, daemon Z)"
sides() { echo "cpu $(us "$(cpu "$1")") µs/op (client $(us "$(median "$RES/$1.ccpu")"), daemon $(us "$(median "$RES/$1.dcpu")"))"; }
row "READ 4 KiB over the socket, p50" "$(us "$(p50 Read4K)")" µs "< 15 µs" "$(lt "$(p50 Read4K)" 15000)" \
	"BenchmarkRead4K; $(sides Read4K)"
row "READ 4 KiB, mapped zero-copy, p50" "$(us "$(p50 ReadMapped4K)")" µs "< 1 µs" "$(lt "$(p50 ReadMapped4K)" 1000)" \
	"BenchmarkReadMapped4K (location known: no request)"
row "BATCH of 100 4 KiB READs, p50" "$(us "$(p50 Batch100x4K)")" µs "< 300 µs" "$(lt "$(p50 Batch100x4K)" 300000)" \
	"BenchmarkBatch100x4K; $(sides Batch100x4K)"
row "WRITE 1 MiB, p50" "$(us "$(p50 Write1M)")" µs "< 1000 µs" "$(lt "$(p50 Write1M)" 1000000)" \
	"BenchmarkWrite1M (new content, synced); $(sides Write1M)"
if ((CAS_MIB > 0)); then
	PT="$(median "$RES/put.t")"
	BT="$(median "$RES/b3sum.t")"
	paste "$RES/put.t" "$RES/b3sum.t" | awk '{print $1/$2}' >"$RES/pair.t"
	row "xfer cas put of $CAS_MIB MiB vs b3sum --num-threads 1" "$PT s vs $BT" s "put time <= b3sum time" "$(awk -v p="$PT" -v b="$BT" 'BEGIN{print (p <= b) ? 1 : 0}')" \
		"$(awk -v p="$PT" -v b="$BT" -v m="$CAS_MIB" 'BEGIN{printf "%.0f vs %.0f MB/s; time ratio %.2f", m*1048576/p/1e6, m*1048576/b/1e6, p/b}') (paired $(awk '{printf "%.2f", $1}' <<<"$(median "$RES/pair.t")"))"
fi

table() {
	echo "| figure | median | target | result | notes |"
	echo "|---|---:|---|---|---|"
	local r
	for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
}

raw() { raw_values 22 "" "$RES"/*.p50 "$RES"/*.cpu "$RES"/*.ccpu "$RES"/*.dcpu "$RES"/*.t; }

machine() {
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | awk 'NR == 1')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; load average at start $LOAD0"
	echo "- kernel: $(uname -sr); $(go version | sed 's/^go version //'); $(b3sum --version)"
	echo "- xfer: $("$XFER" version 2>/dev/null | sed -n 1p)"
	echo "- data, stores and socket on $TMPBASE ($(df --output=fstype "$TMPBASE" | tail -n1 | tr -d ' ')); $ROUNDS interleaved rounds, medians; Go benchmarks -test.benchtime $BENCHTIME, $PINNING"
}

COMMANDS="$(
	echo "go test -c -tags rdma -ldflags=-checklinkname=0 -o mover.test ./mover/"
	echo "MOVER_BENCH_CLIENT_CPU=$CLIENT_CPU MOVER_BENCH_DAEMON_CPU=$DAEMON_CPU TMPDIR=$TMPBASE/... mover.test -test.run '^\$' -test.bench '$GO_BENCHES' -test.benchtime $BENCHTIME -test.count 1"
	if ((CAS_MIB > 0)); then
		echo "xfer cas put --cas $TMPBASE/.../store SRC   (fresh store each run; id checked against b3sum)"
		echo "b3sum --num-threads 1 SRC                   (SRC: $CAS_MIB MiB from /dev/urandom on $TMPBASE)"
	fi
)"

echo
machine
echo
table
echo
echo "Commands:"
while IFS= read -r l; do echo "  $l"; done <<<"$COMMANDS"
echo "Raw values per round (ns for .p50/.cpu/.ccpu/.dcpu, s for .t; loadavg: 1-min load at the start of each round):"
raw | sed 's/^/  /'
((MISSES == 0)) || log "$MISSES target(s) missed"

if [[ "${BENCH_RECORD:-0}" == 1 ]]; then
	sect='## CAS and the mover daemon (issue 5)'
	{
		echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — scripts/bench-cas.sh"
		echo
		machine
		echo
		table
		echo
		echo "Commands and raw values (ns for .p50/.cpu/.ccpu/.dcpu (both sides, client, daemon), seconds for .t; loadavg.t: 1-minute load average at the start of each round):"
		echo
		echo '```'
		echo "$COMMANDS"
		echo
		raw
		echo '```'
		echo
	} >"$RES/record.md"
	[[ -f "$DOC" ]] || printf '# Benchmarks\n' >"$DOC"
	record_in_section "$DOC" "$sect" "$RES/record.md"
fi

if ((MISSES > 0)) && [[ "${BENCH_STRICT:-0}" == 1 ]]; then
	exit 1
fi
exit 0
