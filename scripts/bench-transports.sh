#!/usr/bin/env bash
# bench-transports.sh: xfer's data transports against iperf3 and ucx_perftest
# in one run on loopback, plus `xfer copy` of a big tmpfs file over tcp-zc and
# uring, with and without verification. Every measurement runs once per round
# and rounds are interleaved (each starts at a different measurement), because
# this machine is shared and single figures vary 2x; medians are reported.
#
#   XFER=bin/xfer scripts/bench-transports.sh       (make build first; rdma
#                                                   needs the rdma build tag)
#
# Knobs (environment):
#   BENCH_ROUNDS=3        rounds of every measurement
#   BENCH_DURATION=5      seconds per throughput measurement (iperf3 -t, xfer
#                         bench --duration; ucx_perftest gets as many 1 MiB
#                         iterations as fit at 1 GB/s)
#   BENCH_STREAMS=1       streams for xfer bench (iperf3 and ucx_perftest use 1)
#   BENCH_COPY_MIB=2048   size of the file xfer copy moves (0 skips the copies)
#   BENCH_TMP=/dev/shm    where the copy's file and the server's tree live
#   BENCH_PROTOS="tcp tcp-zc uring rdma"   transports to measure (unusable ones
#                         are skipped with a note)
#   XFER_COPY_FLAGS=""    extra flags for the timed xfer copy runs
#   BENCH_RECORD=1        append the results and commands to docs/benchmarks.md
#                         (section "Transports (`xfer bench`)"; BENCH_DOC=FILE
#                         writes to another copy of it)
#   BENCH_STRICT=1        exit 1 when a target is missed
# UCX_TLS / UCX_NET_DEVICES default to tcp / lo (rdma over UCX's TCP transport,
# for xfer serve, xfer bench and ucx_perftest alike).
#
# Targets (issue "Transports ... xfer bench"): tcp >= 0.90 x iperf3; tcp-zc
# (file, sendfile) >= 0.90 x iperf3 -Z; uring >= tcp-zc for 1 MiB messages and
# the best 64-byte message rate and a round-trip p50 no worse than tcp's
# (the row divides tcp's p50 by uring's, so >= 1 passes); rdma >= 0.85 x
# ucx_perftest tag_bw and its ping p50 <= 3 x ucx_perftest tag_lat's round
# trip; rdma over UCX's shared memory (a second xfer serve, both ends with
# UCX_TLS=$BENCH_UCX_SHM_TLS, default posix,sysv,self) >= 2 x tcp-zc, with
# ucx_perftest over the same transports beside it; xfer copy --verify=none over tcp-zc and uring
# >= 0.85 x iperf3 -Z (verified: recorded).
set -euo pipefail

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench-transports

ROUNDS="${BENCH_ROUNDS:-3}"
DUR="${BENCH_DURATION:-5}"
STREAMS="${BENCH_STREAMS:-1}"
COPY_MIB="${BENCH_COPY_MIB:-2048}"
PROTOS="${BENCH_PROTOS:-tcp tcp-zc uring rdma}"
read -r -a COPY_FLAGS <<<"${XFER_COPY_FLAGS:-}"
export UCX_TLS="${UCX_TLS:-tcp}" UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"
DOC="${BENCH_DOC:-$ROOT/docs/benchmarks.md}"
TIMEOUT=$((DUR * 6 + 120))

need_xfer
positive_int BENCH_ROUNDS "$ROUNDS"
[[ "$DUR" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a positive number of seconds"
command -v iperf3 >/dev/null || die "iperf3 not installed (make deps)"
HAVE_UCX=1
command -v ucx_perftest >/dev/null || HAVE_UCX=0

XS_PID=""
PEER_PID=""
bench_workdir xfer-tbench
mkdir -p "$BD/root" "$BD/src"

NOTES=()
# note: benchlib.sh's, and logged as it is taken.
note() {
	NOTES+=("$*")
	log "note: $*"
}

# Which transports this binary can use here (xfer version --json).
USABLE="$("$XFER" version --json | tr '{' '\n' | sed -n 's/.*"name":"\([^"]*\)","usable":true.*/\1/p' | tr '\n' ' ')"
WANT=()
for p in $PROTOS; do
	if [[ " $USABLE " == *" $p "* ]]; then
		WANT+=("$p")
	else
		note "$p not usable with $XFER here (see xfer version): skipped"
	fi
done
has() { [[ " ${WANT[*]} " == *" $1 "* ]]; }

# --- one measurement each ------------------------------------------------------------

# val SERIES VALUE: records one round's value (a number; anything else is a
# parsing failure and stops the run rather than skewing a median).
val() {
	[[ "$2" =~ ^[-+0-9.eE]+$ ]] || die "$1: no value parsed (got '$2')"
	echo "$2" >>"$RES/$1.v"
}

# retry_port CMD...: runs a server on a port of free_port, retrying when the
# bind loses a race; sets PEER_PID and PEER_PORT. The server's output goes
# to $RES/peer.log.
start_peer() {
	local try i
	for ((try = 0; try < 5; try++)); do
		PEER_PORT="$(free_port)"
		"$@" -p "$PEER_PORT" >"$RES/peer.log" 2>&1 &
		PEER_PID=$!
		for ((i = 0; i < 40; i++)); do
			if ! kill -0 "$PEER_PID" 2>/dev/null; then break; fi
			if grep -qE 'Server listening|Waiting for connection' "$RES/peer.log" 2>/dev/null; then return 0; fi
			sleep 0.05
		done
		if kill -0 "$PEER_PID" 2>/dev/null; then return 0; fi
		wait "$PEER_PID" 2>/dev/null || true
		PEER_PID=""
	done
	cat "$RES/peer.log" >&2
	die "could not start $1"
}
wait_peer() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$PEER_PID" 2>/dev/null || break
		sleep 0.05
	done
	stop_pid "$PEER_PID"
	PEER_PID=""
}

# iperf3 [-Z]: one run; records Gbit/s received and both ends' CPU %.
run_iperf() {
	local series=iperf3 out="$RES/iperf.json" flags=()
	if [[ "${1:-}" == -Z ]]; then series=iperf3_Z flags=(-Z); fi
	local try gbit=""
	# A run whose JSON lacks the received sum (iperf3 occasionally reports
	# an error with exit status 0) is repeated, at most twice.
	for ((try = 0; try < 3; try++)); do
		start_peer iperf3 -s -1 -B 127.0.0.1
		timeout "$TIMEOUT" iperf3 -t "$DUR" -c 127.0.0.1 -p "$PEER_PORT" "${flags[@]+"${flags[@]}"}" -J >"$out" 2>"$out.err" || {
			cat "$out.err" "$out" >&2
			die "iperf3 ${flags[*]+"${flags[*]}"} failed"
		}
		wait_peer
		gbit="$(awk '/"sum_received"/ {r=1} r && /"bits_per_second"/ {gsub(/[,]/,""); print $2/1e9; exit}' "$out")"
		[[ -n "$gbit" ]] && break
		log "iperf3 ${flags[*]+"${flags[*]}"}: no received sum in its JSON ($(grep -m1 '"error"' "$out" || echo no error given)); again"
	done
	val "$series.gbit" "$gbit"
	val "$series.ccpu" "$(awk '/"host_total"/ {gsub(/[,]/,""); print $2; exit}' "$out")"
	val "$series.scpu" "$(awk '/"remote_total"/ {gsub(/[,]/,""); print $2; exit}' "$out")"
}

# perftest OUT ARGS...: one ucx_perftest run (server and client with ARGS,
# over the UCX_TLS of the environment), the client's output in OUT.
perftest() {
	local out="$1"
	shift
	start_peer ucx_perftest "$@"
	timeout "$TIMEOUT" ucx_perftest 127.0.0.1 "$@" -p "$PEER_PORT" >"$out" 2>&1 || {
		cat "$out" "$RES/peer.log" >&2
		die "ucx_perftest $* (UCX_TLS=$UCX_TLS) failed"
	}
	wait_peer
}
# perfcol OUT COL: column COL of ucx_perftest's final line.
perfcol() { awk -v c="$2" '$1 ~ /^[0-9]+$/ && NF == 8 {v=$c} END {print v}' "$1"; }
mbs_gbit() { awk -v v="$1" 'BEGIN{printf "%.4f", v*1048576*8/1e9}'; }

# ucx_perftest tag_bw with 1 MiB messages over UCX_TLS; records Gbit/s
# (its "overall" bandwidth, MB = 2^20 bytes).
UCX_ITERS=$((DUR * 1000))
UCX_BW=(-t tag_bw -s 1048576 -n "$UCX_ITERS" -w 100 -f)
run_ucx() {
	perftest "$RES/ucx.out" "${UCX_BW[@]}"
	val ucx.gbit "$(mbs_gbit "$(perfcol "$RES/ucx.out" 6)")"
}

# ucx_perftest tag_lat with 64-byte messages over UCX_TLS; records the round
# trip in µs (twice its 50th percentile, which is half a round trip), the
# figure xfer bench's ping p50 is compared with.
run_ucx_lat() {
	perftest "$RES/ucxlat.out" -t tag_lat -s 64 -n "$((DUR * 20000))" -w 1000 -f
	val ucx_lat.rtus "$(awk -v l="$(perfcol "$RES/ucxlat.out" 2)" 'BEGIN{printf "%.3f", 2*l}')"
}

# ucx_perftest tag_bw over UCX's shared-memory transports (UCX_TLS=$UCX_SHM_TLS,
# both ends on this host): what UCX itself reaches there, recorded beside
# tcp-zc because xfer's rdma cannot use those transports (their endpoints
# have no peer-failure detection, which every rdma stream needs).
UCX_SHM_TLS="${BENCH_UCX_SHM_TLS:-posix,sysv,self}"
run_ucx_shm() {
	UCX_TLS="$UCX_SHM_TLS" UCX_NET_DEVICES=all perftest "$RES/ucxshm.out" "${UCX_BW[@]}"
	val ucx_shm.gbit "$(mbs_gbit "$(perfcol "$RES/ucxshm.out" 6)")"
}

# field LINE NAME: a top-level number of an `xfer bench --json` line;
# pfield LINE NAME: one of its "ping" object.
field() {
	sed -e 's/"per_stream":\[[^]]*\]//' -e 's/"ping":{[^}]*}//' <<<"$1" |
		sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"
}
pfield() { sed -n 's/.*"ping":{\([^}]*\)}.*/\1/p' <<<"$1" | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"; }

# run_bench NAME PROTO MODE SIZE BULK_S PING_S: one xfer bench run (to
# BENCH_TO, default the xfer serve at XS_ADDR).
run_bench() {
	local name="$1" proto="$2" mode="$3" size="$4" bulk="$5" ping="$6" line
	line="$(timeout "$TIMEOUT" "$XFER" bench --to "xfer://${BENCH_TO:-$XS_ADDR}" --proto "$proto" --mode "$mode" \
		--size "$size" --streams "$STREAMS" --duration "${bulk}s" --ping-duration "${ping}s" --json 2>"$RES/bench.err")" || {
		cat "$RES/bench.err" >&2
		die "xfer bench --proto $proto --mode $mode failed"
	}
	val "$name.gbit" "$(field "$line" gbit_s)"
	val "$name.gbs" "$(field "$line" gb_s)"
	val "$name.msgs" "$(field "$line" msg_s)"
	val "$name.ccpu" "$(field "$line" client_cpu_pct)"
	val "$name.scpu" "$(field "$line" server_cpu_pct)"
	if ((ping > 0)); then
		val "$name.p50" "$(pfield "$line" p50_us)"
		val "$name.p99" "$(pfield "$line" p99_us)"
		val "$name.rts" "$(pfield "$line" rt_s)"
	fi
}

# run_copy PROTO VERIFY: xfer copy of the big file to the server; records
# Gbit/s of file data over the wall time of the command.
COPY_N=0
run_copy() {
	local proto="$1" verify="$2" out="$RES/copy.json" t0 t1 dst
	COPY_N=$((COPY_N + 1))
	dst="c$COPY_N"
	t0=$EPOCHREALTIME
	timeout "$TIMEOUT" "$XFER" copy "$BD/src" "xfer://$XS_ADDR/$dst" --proto "$proto" --verify="$verify" --json \
		"${COPY_FLAGS[@]+"${COPY_FLAGS[@]}"}" >"$out" 2>"$out.err" || {
		cat "$out.err" >&2
		tail -n 3 "$out" >&2
		die "xfer copy --proto $proto --verify=$verify failed"
	}
	t1=$EPOCHREALTIME
	[[ "$(summary_field "$out" proto)" == "$proto" ]] || die "xfer copy did not use $proto: $(tail -n1 "$out")"
	cmp -s "$BD/src/big.bin" "$BD/root/$dst/big.bin" || die "xfer copy --proto $proto: the copy differs"
	rm -rf "${BD:?}/root/$dst"
	val "copy_${proto}_$verify.gbit" "$(awk -v b=$((COPY_MIB << 20)) -v a="$t0" -v c="$t1" 'BEGIN{printf "%.4f", b*8/(c-a)/1e9}')"
}

# The measurements of one round, by name.
MEAS=(iperf3 iperf3_Z)
((HAVE_UCX)) && has rdma && MEAS+=(ucx ucx_lat ucx_shm)
has rdma && MEAS+=(shm)
for p in "${WANT[@]}"; do MEAS+=("bulk:$p:mem" "small:$p"); done
for p in tcp-zc uring; do
	if has "$p"; then MEAS+=("bulk:$p:file"); fi
done
if ((COPY_MIB > 0)); then
	for p in tcp-zc uring; do
		if has "$p"; then MEAS+=("copy:$p:none" "copy:$p:full"); fi
	done
fi
((HAVE_UCX)) || note "ucx_perftest not installed (ucx-utils): rdma has no reference"

# run_one MEASUREMENT: one measurement of MEAS.
run_one() {
	local m="$1" kind a b
	IFS=: read -r kind a b <<<"$m"
	case "$kind" in
	iperf3) run_iperf ;;
	iperf3_Z) run_iperf -Z ;;
	ucx) run_ucx ;;
	ucx_lat) run_ucx_lat ;;
	ucx_shm) run_ucx_shm ;;
	# rdma over UCX's shared memory: the client with the shm serve's
	# UCX_TLS, to that serve.
	shm) BENCH_TO="$SHM_ADDR" UCX_TLS="$UCX_SHM_TLS" UCX_NET_DEVICES=all run_bench bulk_rdma-shm_mem rdma mem 1M "$DUR" 0 ;;
	bulk) run_bench "bulk_${a}_$b" "$a" "$b" 1M "$DUR" 0 ;;
	small) run_bench "small_$a" "$a" mem 64 2 2 ;;
	copy) run_copy "$a" "$b" ;;
	esac
}

# --- run -------------------------------------------------------------------------------

LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
T_START=$SECONDS
START="$(date -u '+%Y-%m-%d %H:%M UTC')"
if ((COPY_MIB > 0)); then
	(($(df -m --output=avail "$TMPBASE" | tail -n1) > 2 * COPY_MIB + 256)) || die "needs $((2 * COPY_MIB + 256)) MiB free in $TMPBASE (BENCH_COPY_MIB=0 skips the copies)"
	log "writing ${COPY_MIB} MiB of random data"
	head -c $((COPY_MIB << 20)) /dev/urandom >"$BD/src/big.bin"
fi
SHM_PID="" SHM_ADDR=""
if has rdma; then
	# A serve whose UCX may use only shared memory (the peer is on the
	# same host): what rdma reaches there.
	UCX_TLS="$UCX_SHM_TLS" UCX_NET_DEVICES=all xfer_serve_start "$BD/root" "$RES/serve-shm.log" --no-fsync || die "xfer serve (UCX_TLS=$UCX_SHM_TLS) did not start"
	SHM_PID=$XS_PID SHM_ADDR=$XS_ADDR
	PEER_PIDS_EXTRA="$SHM_PID"
fi
xfer_serve_start "$BD/root" "$RES/serve.log" --no-fsync || die "xfer serve did not start"
log "xfer serve on $XS_ADDR; ${#MEAS[@]} measurements x $ROUNDS rounds, ${DUR}s each; transports: ${WANT[*]}"
n=${#MEAS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	for ((k = 0; k < n; k++)); do
		run_one "${MEAS[$(((r * 7 + k) % n))]}"
	done
	log "round $r/$ROUNDS done"
done
stop_pid "$XS_PID"
XS_PID=""
if [[ -n "$SHM_PID" ]]; then stop_pid "$SHM_PID"; fi
SHM_PID="" PEER_PIDS_EXTRA=""

# --- report ------------------------------------------------------------------------------

med() { median "$RES/$1.v"; }
# paired A B: median over rounds of A/B (steadier when the machine drifts).
paired() {
	paste "$RES/$1.v" "$RES/$2.v" | awk '$2>0 {print $1/$2}' >"$RES/pair.tmp"
	median "$RES/pair.tmp"
}

CMP=() # "label|xfer series|reference series|target ratio|unit"
cmp_row() { CMP+=("$1|$2|$3|$4|$5"); }
has tcp && cmp_row "tcp (mem) vs iperf3" bulk_tcp_mem.gbit iperf3.gbit 0.90 Gbit/s
has tcp-zc && cmp_row "tcp-zc (file: sendfile) vs iperf3 -Z" bulk_tcp-zc_file.gbit iperf3_Z.gbit 0.90 Gbit/s
if has uring && has tcp-zc; then
	cmp_row "uring vs tcp-zc, 1 MiB, mem" bulk_uring_mem.gbit bulk_tcp-zc_mem.gbit 1.00 Gbit/s
	cmp_row "uring vs tcp-zc, 1 MiB, file" bulk_uring_file.gbit bulk_tcp-zc_file.gbit 1.00 Gbit/s
fi
if has uring; then
	for p in "${WANT[@]}"; do
		[[ "$p" == uring ]] || cmp_row "uring vs $p, 64 B message rate" small_uring.msgs "small_$p.msgs" 1.00 msg/s
	done
	# Lower is better for a round trip: the ratio is tcp's p50 over uring's.
	has tcp && cmp_row "round-trip p50 (64 B): tcp's over uring's" small_tcp.p50 small_uring.p50 1.00 µs
fi
if has rdma && ((HAVE_UCX)); then
	cmp_row "rdma vs ucx_perftest tag_bw (UCX_TLS=$UCX_TLS)" bulk_rdma_mem.gbit ucx.gbit 0.85 Gbit/s
	cmp_row "rdma ping p50 vs ucx_perftest tag_lat round trip" small_rdma.p50 ucx_lat.rtus "<=3" µs
	has tcp-zc && cmp_row "ucx_perftest tag_bw over $UCX_SHM_TLS vs tcp-zc (mem)" ucx_shm.gbit bulk_tcp-zc_mem.gbit - Gbit/s
	cmp_row "rdma over $UCX_SHM_TLS vs ucx_perftest over it" bulk_rdma-shm_mem.gbit ucx_shm.gbit - Gbit/s
fi
if has rdma && has tcp-zc; then
	cmp_row "rdma over $UCX_SHM_TLS vs tcp-zc (mem)" bulk_rdma-shm_mem.gbit bulk_tcp-zc_mem.gbit 2.00 Gbit/s
fi
for p in tcp-zc uring; do
	if has "$p" && ((COPY_MIB > 0)); then
		cmp_row "copy $COPY_MIB MiB --proto $p --verify=none vs iperf3 -Z" "copy_${p}_none.gbit" iperf3_Z.gbit 0.85 Gbit/s
		cmp_row "copy $COPY_MIB MiB --proto $p, verified, vs iperf3 -Z" "copy_${p}_full.gbit" iperf3_Z.gbit - Gbit/s
	fi
done

MISSES=0
render_cmp() { # text|md
	local row label xs rs tgt unit xm rm ratio pr res
	if [[ "$1" == md ]]; then
		echo "| comparison | xfer | reference | unit | ratio | paired | target | result |"
		echo "|---|---:|---:|---|---:|---:|---|---|"
	else
		printf '%-52s %9s %9s %-7s %6s %6s %-7s %s\n' comparison xfer reference unit ratio paired target result
	fi
	for row in "${CMP[@]}"; do
		IFS='|' read -r label xs rs tgt unit <<<"$row"
		xm="$(med "$xs")" rm="$(med "$rs")"
		ratio="$(awk -v x="$xm" -v r="$rm" 'BEGIN{ if (r+0>0) printf "%.2f", x/r; else print "nan"}')"
		pr="$(awk -v v="$(paired "$xs" "$rs")" 'BEGIN{printf "%.2f", v}')"
		if [[ "$tgt" == - ]]; then
			res=info tgt="(record)"
		elif [[ "$tgt" == "<="* ]]; then # a ratio that must stay small
			res="$(awk -v r="$ratio" -v t="${tgt#<=}" 'BEGIN{print (r != "nan" && r+0 <= t+0) ? "PASS" : "MISS"}')"
			tgt="<= ${tgt#<=}"
		else
			res="$(awk -v r="$ratio" -v t="$tgt" 'BEGIN{print (r+0 >= t+0) ? "PASS" : "MISS"}')"
			tgt=">= $tgt"
		fi
		[[ "$1" == text && "$res" == MISS ]] && MISSES=$((MISSES + 1))
		if [[ "$unit" == msg/s ]]; then
			xm="$(awk -v v="$xm" 'BEGIN{printf "%.0f", v}')" rm="$(awk -v v="$rm" 'BEGIN{printf "%.0f", v}')"
		else
			xm="$(awk -v v="$xm" 'BEGIN{printf "%.2f", v}')" rm="$(awk -v v="$rm" 'BEGIN{printf "%.2f", v}')"
		fi
		if [[ "$1" == md ]]; then
			echo "| $label | $xm | $rm | $unit | ${ratio}x | ${pr}x | $tgt | $res |"
		else
			printf '%-52s %9s %9s %-7s %5sx %5sx %-7s %s\n' "$label" "$xm" "$rm" "$unit" "$ratio" "$pr" "$tgt" "$res"
		fi
	done
}

# fmtmed SERIES PRECISION: the median, or - when the series has no value.
fmtmed() { awk -v v="$(med "$1")" -v p="$2" 'BEGIN{ if (v == "nan" || v == "") print "-"; else printf "%.*f", p, v }'; }

render_detail() { # text|md: medians of every xfer bench series
	local s name f
	if [[ "$1" == md ]]; then
		echo "| xfer bench | Gbit/s | GB/s | msg/s | rt p50 µs | rt p99 µs | rt/s | client cpu % | server cpu % |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	else
		printf '%-20s %8s %7s %10s %9s %9s %8s %7s %7s\n' "xfer bench" Gbit/s GB/s msg/s "p50 µs" "p99 µs" rt/s "cli %" "srv %"
	fi
	for f in "$RES"/bulk_*.gbit.v "$RES"/small_*.gbit.v; do
		[[ -e "$f" ]] || continue
		s="$(basename "$f" .gbit.v)"
		case "$s" in
		bulk_*) name="${s#bulk_}" name="${name%_*} ${name##*_} 1M" ;;
		small_*) name="${s#small_} mem 64B" ;;
		esac
		local g gb m p50 p99 rts cc sc
		g="$(fmtmed "$s.gbit" 2)" gb="$(fmtmed "$s.gbs" 3)" m="$(fmtmed "$s.msgs" 0)"
		p50="$(fmtmed "$s.p50" 1)" p99="$(fmtmed "$s.p99" 1)" rts="$(fmtmed "$s.rts" 0)"
		cc="$(fmtmed "$s.ccpu" 0)" sc="$(fmtmed "$s.scpu" 0)"
		if [[ "$1" == md ]]; then
			echo "| $name | $g | $gb | $m | $p50 | $p99 | $rts | $cc | $sc |"
		else
			printf '%-20s %8s %7s %10s %9s %9s %8s %7s %7s\n' "$name" "$g" "$gb" "$m" "$p50" "$p99" "$rts" "$cc" "$sc"
		fi
	done
	for s in iperf3 iperf3_Z; do
		[[ -s "$RES/$s.gbit.v" ]] || continue
		g="$(fmtmed "$s.gbit" 2)" cc="$(fmtmed "$s.ccpu" 0)" sc="$(fmtmed "$s.scpu" 0)"
		name="${s/_Z/ -Z} (1 stream)"
		if [[ "$1" == md ]]; then
			echo "| $name | $g | - | - | - | - | - | $cc | $sc |"
		else
			printf '%-20s %8s %7s %10s %9s %9s %8s %7s %7s\n' "$name" "$g" - - - - - "$cc" "$sc"
		fi
	done
}

raw() { raw_values 26 .v "$RES"/*.gbit.v "$RES"/small_*.msgs.v "$RES"/small_*.p50.v; }

COMMANDS="$(
	cat <<-EOF
		iperf3 -s -1 -B 127.0.0.1 -p PORT  /  iperf3 -t $DUR -c 127.0.0.1 -p PORT [-Z] -J
		ucx_perftest -t tag_bw -s 1048576 -n $UCX_ITERS -w 100 -f -p PORT  /  ucx_perftest 127.0.0.1 (same flags)   [UCX_TLS=$UCX_TLS UCX_NET_DEVICES=$UCX_NET_DEVICES]
		ucx_perftest -t tag_lat -s 64 -n $((DUR * 20000)) -w 1000 -f -p PORT  /  ucx_perftest 127.0.0.1 (same flags)   [same UCX_TLS; round trip = 2 x its p50]
		ucx_perftest -t tag_bw (flags as above)   [UCX_TLS=$UCX_SHM_TLS UCX_NET_DEVICES=all]
		xfer serve --listen 127.0.0.1:0 --root TMPFS --no-fsync   [and a second one with UCX_TLS=$UCX_SHM_TLS UCX_NET_DEVICES=all for rdma over shm]
		xfer bench --to xfer://ADDR --proto P --mode mem|file --size 1M --streams $STREAMS --duration ${DUR}s --ping-duration 0s --json
		xfer bench --to xfer://ADDR --proto P --mode mem --size 64 --streams $STREAMS --duration 2s --ping-duration 2s --json
		xfer copy TMPFS/src xfer://ADDR/cN --proto tcp-zc|uring --verify=none|full --json ${XFER_COPY_FLAGS:-}   (${COPY_MIB} MiB file; Gbit/s over wall time)
	EOF
)"

echo
echo "xfer transports vs iperf3 / ucx_perftest: $ROUNDS interleaved rounds, medians; load at start $LOAD0; $((SECONDS - T_START)) s"
echo
render_cmp text
echo
render_detail text
echo
raw
for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done

if [[ "${BENCH_RECORD:-0}" == 1 ]]; then
	# Results go at the end of this script's section, before the next
	# level-2 heading (another script's records) or at the end of the file.
	sect='## Transports (`xfer bench`)'
	grep -qxF "$sect" "$DOC" || die "$DOC has no section '$sect'"
	{
		echo "### $START — $("$XFER" version | awk 'NR == 1 {print $1, $2}')"
		echo
		echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | awk 'NR == 1'), load $LOAD0 at start"
		echo "- kernel: $(uname -sr); $(iperf3 --version | awk 'NR == 1 {print $1, $2}'); $(ucx_info -v 2>/dev/null | sed -n 's/^# Version /UCX /p' || true)"
		echo "- $ROUNDS interleaved rounds, medians, $((SECONDS - T_START)) s in all; ${DUR}s per throughput run; xfer bench --streams $STREAMS; loopback, tmpfs; command: \`BENCH_RECORD=1 XFER=bin/xfer scripts/bench-transports.sh\`"
		echo
		render_cmp md
		echo
		render_detail md
		echo
		echo "Commands and raw values (Gbit/s per round; msg/s and round-trip p50 µs for small_*):"
		echo
		echo '```'
		echo "$COMMANDS"
		echo
		raw
		for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done
		echo '```'
		echo
	} >"$RES/record.md"
	record_in_section "$DOC" "$sect" "$RES/record.md"
fi

if ((MISSES > 0)); then
	log "$MISSES target(s) missed"
	[[ "${BENCH_STRICT:-0}" == 1 ]] && exit 1
fi
exit 0
