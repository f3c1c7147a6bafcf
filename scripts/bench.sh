#!/usr/bin/env bash
# bench.sh: xfer against its peers (rsync daemon, cp) in one run, on loopback
# with the data on tmpfs. Runs are interleaved (xfer, rsync, cp, then rsync,
# cp, xfer, ...) and reported as medians, because this machine is shared and
# single timings vary 2-3x.
#
#   make bench                              (builds bin/xfer first)
#   XFER=bin/xfer scripts/bench.sh
#
# Knobs (environment):
#   BENCH_RUNS=5          measured runs per scenario (plus BENCH_WARMUP=1 untimed
#                         round, which also verifies the copies)
#   BENCH_SCENARIOS="big floor small hash"   which scenario_* functions to run, in order
#   BENCH_BIG_MIB=2048    size of the single file of scenario big
#   BENCH_HASH_MIB=1024   size of the file of scenario hash
#   BENCH_SMALL_FILES=10000 BENCH_SMALL_DIRS=100   tree of 4 KiB files
#   BENCH_TMP=/dev/shm    where data and destinations live (tmpfs)
#   BENCH_TIMEOUT=600     seconds before one command counts as hung
#   XFER_FLAGS=""         extra flags for xfer copy/sync (e.g. "--streams 4")
#   XFER_SERVE_FLAGS=""   extra flags for xfer serve
#   BENCH_RECORD=1        append a dated section to docs/benchmarks.md
#   BENCH_STRICT=1        exit 1 when a target is missed
#   BENCH_PROFILE=DIR     CPU profiles of the verified xfer copies (client and
#                         serve) of measured rounds in DIR (XFER_CPUPROFILE)
#   BENCH_PIN=1           clients on CPU BENCH_PIN_CLIENT (0), servers (xfer
#                         serve, rsync daemon, iperf3 -s) on BENCH_PIN_SERVER (1)
#   BENCH_BIG_TOOLS="xfer rsync cp xfer_nv iperf3"   what scenario big runs
#                         (xfer_nv: xfer copy --verify=none; iperf3: iperf3 -Z
#                         -n of the same bytes)
#
# Every timed command also records its CPU seconds (user+system, GNU time),
# and each server its own (xfer serve: a fresh process per run, from
# /proc/PID/stat; the rsync daemon: the delta of its reaped children's;
# iperf3 -s: GNU time); scenario big reports them per GiB per side.
#
# Scenarios: big (a: one 2 GiB file vs rsync daemon, cp and iperf3 -Z), floor
# (what reading, hashing, moving and writing the big file cost at least,
# per side, by dd, b3sum and iperf3), small (b: 10,000
# x 4 KiB files in 100 dirs, copy and no-change sync vs rsync daemon); both
# also feed c: peak RSS of the xfer client (wait4 rusage via GNU time) and of
# a fresh `xfer serve` per run (VmHWM), limit 100 MiB. hash: `xfer hash
# --threads N` vs `b3sum --num-threads N` on a 1 GiB file, N = 1 and 2
# (target: at least b3sum's speed).
#
# Adding a scenario: write scenario_NAME that creates its data under $DATA,
# times commands with `measure SERIES OUT cmd...` inside `for_runs`, and
# declares results with add_row / add_rss; then list NAME in BENCH_SCENARIOS.
# (Planned: transport vs iperf3, CAS/daemon latency, 1M-file sync.)
set -euo pipefail

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench
bench_pin

RUNS="${BENCH_RUNS:-5}"
WARMUP="${BENCH_WARMUP:-1}"
SCENARIOS="${BENCH_SCENARIOS:-big floor small hash}"
BIG_MIB="${BENCH_BIG_MIB:-2048}"
HASH_MIB="${BENCH_HASH_MIB:-1024}"
SMALL_FILES="${BENCH_SMALL_FILES:-10000}"
SMALL_DIRS="${BENCH_SMALL_DIRS:-100}"
SMALL_SIZE=4096
TIMEOUT="${BENCH_TIMEOUT:-600}"
xfer_flags
RSS_LIMIT_MIB=100
GNU_TIME=/usr/bin/time

need_xfer
BIG_TOOLS="${BENCH_BIG_TOOLS:-xfer rsync cp xfer_nv iperf3}"
command -v rsync >/dev/null || die "rsync not installed (make deps)"
[[ -x "$GNU_TIME" ]] || die "GNU time not installed at $GNU_TIME (make deps)"
positive_int BENCH_RUNS "$RUNS"
positive_int BENCH_HASH_MIB "$HASH_MIB"
if command -v b3sum >/dev/null; then
	REFHASH=(b3sum)
	REFHASH_NAME="b3sum $(b3sum --version | awk '{print $2}')"
else
	REFHASH=("$XFER" hash)
	REFHASH_NAME="xfer hash (b3sum not installed)"
fi

XS_PID=""
RS_PID=""
bench_workdir xfer-bench # BD, and RES for timings, RSS, logs
DATA="$BD/data"          # sources, made once
XROOT="$BD/xroot"        # root of the xfer serve under test
RROOT="$BD/rroot"        # path of the rsync daemon module
CROOT="$BD/croot"        # cp destination
mkdir -p "$DATA" "$XROOT" "$RROOT" "$CROOT"

ROUND=0 # 0 = warm-up (not recorded), 1..RUNS = measured (measure: benchlib.sh)


# --- results ---------------------------------------------------------------------

ROWS=()    # "label|xfer series|peer series|bytes|kind|target"
RSSROWS=() # "label|series (KiB values)"
CPUROWS=() # "label|client series|server series|bytes|client target|server target"
NOTES=()

# add_row LABEL XFER_SERIES PEER_SERIES BYTES KIND TARGET
#   KIND speedup:   ratio = peer time / xfer time, PASS when >= TARGET
#   KIND timeratio: ratio = xfer time / peer time, PASS when <= TARGET
#   KIND info:      ratio = peer time / xfer time, no target
add_row() { ROWS+=("$1|$2|$3|$4|$5|$6"); }
add_rss() { RSSROWS+=("$1|$2"); }
# add_cpu LABEL CLIENT_SERIES SERVER_SERIES BYTES CLIENT_MAX SERVER_MAX: CPU
# seconds per GiB of each side (medians of SERIES.cpu), PASS when at most the
# targets (- for none).
add_cpu() { CPUROWS+=("$1|$2|$3|$4|$5|$6"); }

MISSES=0
render() { # render text|md
	local fmt="$1" row label xs ps bytes kind target xm pm ratio pair xr pr res tgt
	if [[ "$fmt" == md ]]; then
		echo "| scenario | xfer s | peer s | xfer MB/s | peer MB/s | ratio | paired | target | result |"
		echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
	else
		printf '%-46s %8s %8s %9s %9s %7s %7s %-16s %s\n' scenario "xfer s" "peer s" "xfer MB/s" "peer MB/s" ratio paired target result
	fi
	for row in "${ROWS[@]+"${ROWS[@]}"}"; do
		IFS='|' read -r label xs ps bytes kind target <<<"$row"
		xm="$(median "$RES/$xs.t")"
		pm="$(median "$RES/$ps.t")"
		if [[ "$kind" == speedup ]]; then
			ratio="$(awk -v x="$xm" -v p="$pm" 'BEGIN{printf "%.2f", p/x}')"
			pair="$(paired_ratio "$RES/$ps.t" "$RES/$xs.t")"
			res="$(awk -v r="$ratio" -v t="$target" 'BEGIN{print (r>=t) ? "PASS" : "MISS"}')"
			tgt=">= ${target}x faster"
		elif [[ "$kind" == timeratio ]]; then
			ratio="$(awk -v x="$xm" -v p="$pm" 'BEGIN{printf "%.2f", x/p}')"
			pair="$(paired_ratio "$RES/$xs.t" "$RES/$ps.t")"
			res="$(awk -v r="$ratio" -v t="$target" 'BEGIN{print (r<=t) ? "PASS" : "MISS"}')"
			tgt="<= ${target}x time"
		else # info: speedup, no target
			ratio="$(awk -v x="$xm" -v p="$pm" 'BEGIN{printf "%.2f", p/x}')"
			pair="$(paired_ratio "$RES/$ps.t" "$RES/$xs.t")"
			res=info
			tgt="(speedup, none)"
		fi
		pair="$(awk -v v="$pair" 'BEGIN{printf "%.2f", v}')"
		if ((bytes > 0)); then
			xr="$(awk -v b="$bytes" -v t="$xm" 'BEGIN{printf "%.0f", b/t/1e6}')"
			pr="$(awk -v b="$bytes" -v t="$pm" 'BEGIN{printf "%.0f", b/t/1e6}')"
		else
			xr=- pr=-
		fi
		[[ "$fmt" == text && "$res" == MISS ]] && MISSES=$((MISSES + 1))
		if [[ "$fmt" == md ]]; then
			echo "| $label | $xm | $pm | $xr | $pr | ${ratio}x | ${pair}x | $tgt | $res |"
		else
			printf '%-46s %8.3f %8.3f %9s %9s %6sx %6sx %-16s %s\n' "$label" "$xm" "$pm" "$xr" "$pr" "$ratio" "$pair" "$tgt" "$res"
		fi
	done
	[[ "$fmt" == md ]] && echo && echo "| peak RSS (max over runs) | MiB | limit | result |" && echo "|---|---:|---|---|"
	[[ "$fmt" == text ]] && echo && printf '%-46s %8s %8s %s\n' "peak RSS (max over runs)" MiB limit result
	for row in "${RSSROWS[@]+"${RSSROWS[@]}"}"; do
		IFS='|' read -r label xs <<<"$row"
		xm="$(awk -v k="$(maxof "$RES/$xs")" 'BEGIN{printf "%.1f", k/1024}')"
		res="$(awk -v m="$xm" -v l="$RSS_LIMIT_MIB" 'BEGIN{print (m<l) ? "PASS" : "MISS"}')"
		[[ "$fmt" == text && "$res" == MISS ]] && MISSES=$((MISSES + 1))
		if [[ "$fmt" == md ]]; then
			echo "| $label | $xm | < $RSS_LIMIT_MIB | $res |"
		else
			printf '%-46s %8s %8s %s\n' "$label" "$xm" "< $RSS_LIMIT_MIB" "$res"
		fi
	done
}

# cpu_per_gib SERIES BYTES: the median CPU seconds of SERIES per GiB, or -.
cpu_per_gib() {
	local m
	m="$(median "$RES/$1.cpu")"
	if [[ "$m" == nan ]]; then echo -; else awk -v m="$m" -v b="$2" 'BEGIN{printf "%.3f", m*1073741824/b}'; fi
}

# cpu_verdict VALUE MAX: PASS, MISS, or - without a value or target.
cpu_verdict() {
	if [[ "$1" == - || "$2" == - ]]; then
		echo -
	else
		awk -v v="$1" -v t="$2" 'BEGIN{print (v<=t) ? "PASS" : "MISS"}'
	fi
}

# render_cpu text|md: the CPU table (after render's), counting MISSes for text.
render_cpu() {
	local fmt="$1" row label cs ss bytes ct st c s cr sr
	((${#CPUROWS[@]} > 0)) || return 0
	if [[ "$fmt" == md ]]; then
		echo
		echo "| CPU s per GiB (median, user+sys) | client | server | client target | server target | result |"
		echo "|---|---:|---:|---|---|---|"
	else
		echo
		printf '%-46s %8s %8s %-9s %-9s %s\n' "CPU s per GiB (median, user+sys)" client server "client<=" "server<=" result
	fi
	for row in "${CPUROWS[@]}"; do
		IFS='|' read -r label cs ss bytes ct st <<<"$row"
		c="$(cpu_per_gib "$cs" "$bytes")"
		s=-
		[[ "$ss" == - ]] || s="$(cpu_per_gib "$ss" "$bytes")"
		cr="$(cpu_verdict "$c" "$ct")"
		sr="$(cpu_verdict "$s" "$st")"
		local res="$cr/$sr"
		[[ "$ct" == - && "$st" == - ]] && res=info
		[[ "$fmt" == text && ("$cr" == MISS || "$sr" == MISS) ]] && MISSES=$((MISSES + 1))
		if [[ "$fmt" == md ]]; then
			echo "| $label | $c | $s | $ct | $st | $res |"
		else
			printf '%-46s %8s %8s %-9s %-9s %s\n' "$label" "$c" "$s" "$ct" "$st" "$res"
		fi
	done
}

raw_times() { raw_values 22 .t "$RES"/*.t; }
raw_cpu() { raw_values 22 .cpu "$RES"/*.cpu; }

# --- peers -------------------------------------------------------------------------


# xserve_up / xserve_down (benchlib.sh): a fresh `xfer serve` of an empty
# $XROOT for each measured run.

# xfer_check OUT: notes the transport from the summary of the last xfer run.
XPROTO=""
xfer_check() {
	local p
	p="$(summary_field "$1" proto)"
	[[ -n "$p" ]] || die "no summary line in xfer --json output ($1)"
	XPROTO="$p"
}

# xfer_copy NAME SRC: a fresh xfer serve of an empty $XROOT and an xfer
# copy of SRC to its NAME (series NAME.xfer); the server keeps running.
# With BENCH_PROFILE=DIR, both write CPU profiles of measured rounds there
# (XFER_CPUPROFILE: DIR/NAME-client-rN.prof, and DIR/NAME-serve-rN.prof once
# the server stops), for `go tool pprof -top bin/xfer FILE`.
xfer_copy() {
	local prof=()
	rm -rf "$XROOT"
	if [[ -n "${BENCH_PROFILE:-}" ]] && ((ROUND > 0)); then
		mkdir -p "$BENCH_PROFILE"
		SERVE_ENV=(env "XFER_CPUPROFILE=$BENCH_PROFILE/$1-serve-r$ROUND.prof")
		prof=(env "XFER_CPUPROFILE=$BENCH_PROFILE/$1-client-r$ROUND.prof")
	fi
	xserve_up "$XROOT"
	SERVE_ENV=()
	measure "$1.xfer" "$RES/out" "${prof[@]+"${prof[@]}"}" "$XFER" copy "$2" "xfer://$XS_ADDR/$1" "${XF[@]}"
	xfer_check "$RES/out"
}

# rsync_copy NAME SRC: a fresh rsync -a of SRC to the daemon's NAME (series
# NAME.rsync), verified in the warm-up round.
rsync_copy() {
	local c0
	rm -rf "${RROOT:?}/$1"
	c0="$(rsyncd_cpu)"
	measure "$1.rsync" "$RES/out" rsync -a "$2/" "rsync://127.0.0.1:$RS_PORT/bench/$1/"
	record "$1.rsyncd.cpu" "$(awk -v a="$c0" -v b="$(rsyncd_cpu)" 'BEGIN{printf "%.2f", b-a}')"
	if ((ROUND == 0)); then verify_tree "$2" "$RROOT/$1" "rsync ($1)"; fi
}

# iperf3_big BYTES [SERIES]: iperf3 -Z -n BYTES (series SERIES, default
# big.iperf3: the seconds iperf3
# reports for receiving them, without its start-up and test set-up, which
# the wall time in big.iperf3_wall has; and the client's CPU) against a fresh iperf3 -s -1 under PIN_SERVER, whose CPU GNU time
# records (SERIES with s, big.iperf3s.cpu); the same bytes xfer moves, from sendfile on
# the sending side into memory (not a file) on the receiving side.
iperf3_big() {
	local port i try ser="${2:-big.iperf3}"
	for ((try = 0; try < 5; try++)); do
		port="$(free_port)"
		"$GNU_TIME" -f '%U %S' -o "$RES/iperf3s.time" "${PIN_SERVER[@]+"${PIN_SERVER[@]}"}" iperf3 -s -1 --forceflush -B 127.0.0.1 -p "$port" >"$RES/iperf3s.log" 2>&1 &
		PEER_PID=$!
		for ((i = 0; i < 100; i++)); do
			grep -q 'Server listening' "$RES/iperf3s.log" 2>/dev/null && break
			kill -0 "$PEER_PID" 2>/dev/null || break
			sleep 0.05
		done
		grep -q 'Server listening' "$RES/iperf3s.log" 2>/dev/null && break
		stop_pid "$PEER_PID"
		PEER_PID=""
	done
	[[ -n "$PEER_PID" ]] || die "could not start iperf3 -s: $(cat "$RES/iperf3s.log")"
	measure "${ser}_wall" "$RES/out" iperf3 -c 127.0.0.1 -p "$port" -Z -n "$1" -J
	wait "$PEER_PID" || true
	PEER_PID=""
	local secs
	secs="$(awk '/"sum_received"/ {r=1} r && /"seconds"/ {gsub(/[,]/,""); print $2; exit}' "$RES/out")"
	[[ "$secs" =~ ^[0-9.]+$ ]] || die "iperf3: no received seconds in its JSON"
	record "$ser.t" "$(awk -v s="$secs" 'BEGIN{printf "%.4f", s}')"
	if ((ROUND > 0)); then record "$ser.cpu" "$(tail -n1 "$RES/${ser}_wall.cpu")"; fi
	record "${ser}s.cpu" "$(tail -n1 "$RES/iperf3s.time" | awk '{printf "%.2f", $1 + $2}')"
}

# --- scenario a: one big file --------------------------------------------------------

big_run() {
	local src="$DATA/big" out="$RES/out"
	case "$1" in
	xfer)
		xfer_copy big "$src"
		xserve_down big.serve.rss
		if ((ROUND == 0)); then verify_tree "$src" "$XROOT/big" "xfer copy (big)"; fi
		rm -rf "$XROOT"
		;;
	xfer_nv)
		rm -rf "$XROOT"
		xserve_up "$XROOT"
		measure big.xfer_nv "$out" "$XFER" copy "$src" "xfer://$XS_ADDR/big" --verify none "${XF[@]}"
		xfer_check "$out"
		xserve_down big.serve_nv.rss
		rm -rf "$XROOT"
		;;
	iperf3)
		iperf3_big "$((BIG_MIB << 20))"
		;;
	rsync)
		rsync_copy big "$src"
		rm -rf "${RROOT:?}/big"
		;;
	cp)
		rm -rf "${CROOT:?}/big" && mkdir -p "$CROOT/big"
		measure big.cp "$out" cp -a "$src/." "$CROOT/big/"
		rm -rf "${CROOT:?}/big"
		;;
	esac
}

# big_data NEED_MIB: makes $DATA/big/big.bin once (shared by big and hash);
# fails (status 1, with a note) when TMPBASE lacks NEED_MIB free.
big_data() {
	local need="$1"
	[[ -f "$DATA/big/big.bin" ]] && return 0
	if (($(df -m --output=avail "$TMPBASE" | tail -n1) < need)); then
		log "skip: needs $need MiB free in $TMPBASE"
		note "scenario skipped: less than $need MiB free in $TMPBASE"
		return 1
	fi
	log "writing ${BIG_MIB} MiB of random data"
	mkdir -p "$DATA/big"
	head -c $((BIG_MIB << 20)) /dev/urandom >"$DATA/big/big.bin"
}

# has_tool NAME: whether BENCH_BIG_TOOLS names NAME.
has_tool() { [[ " $BIG_TOOLS " == *" $1 "* ]]; }

scenario_big() {
	local bytes=$((BIG_MIB << 20))
	big_data $((2 * BIG_MIB + 256)) || return 0
	local tools t
	read -r -a tools <<<"$BIG_TOOLS"
	for t in "${tools[@]}"; do
		case "$t" in
		xfer | rsync | cp | xfer_nv) ;;
		iperf3) command -v iperf3 >/dev/null || die "BENCH_BIG_TOOLS names iperf3, which is not installed (make deps)" ;;
		*) die "BENCH_BIG_TOOLS: unknown tool '$t' (xfer rsync cp xfer_nv iperf3)" ;;
		esac
	done
	log "big: 1 x ${BIG_MIB} MiB file, $RUNS runs of ${tools[*]}"
	for_runs big_run "${tools[@]}"
	has_tool rsync && add_row "a: 1 file ${BIG_MIB} MiB, copy vs rsync daemon" big.xfer big.rsync "$bytes" speedup 1.5
	has_tool cp && add_row "a: 1 file ${BIG_MIB} MiB, copy vs local cp" big.xfer big.cp "$bytes" timeratio 1.6
	has_tool iperf3 && has_tool xfer_nv &&
		add_row "a: ${BIG_MIB} MiB --verify=none vs iperf3 -Z -n" big.xfer_nv big.iperf3 "$bytes" speedup 0.9
	add_rss "c: xfer copy client, 1 big file" big.xfer.rss
	add_rss "c: xfer serve, 1 big file" big.serve.rss
	add_cpu "a: xfer copy, verified" big.xfer big.serve "$bytes" 0.4 0.5
	has_tool xfer_nv && add_cpu "a: xfer copy --verify=none" big.xfer_nv big.serve_nv "$bytes" - -
	has_tool rsync && add_cpu "a: rsync -a to rsync daemon" big.rsync big.rsyncd "$bytes" - -
	has_tool cp && add_cpu "a: cp -a (one process)" big.cp - "$bytes" - -
	has_tool iperf3 && add_cpu "a: iperf3 -Z -n (memory sink)" big.iperf3 big.iperf3s "$bytes" - -
	return 0
}

# --- scenario hash: xfer hash vs b3sum, same number of threads -------------------------

# hash_run TOOL: TOOL is xfer1, xfer2, b3sum1 or b3sum2 (the number: threads).
hash_run() {
	local f="$DATA/hash/hash.bin" out="$RES/out" n="${1: -1}"
	case "$1" in
	xfer*)
		measure "hash.xfer$n" "$out" "$XFER" hash --threads "$n" "$f"
		if ((ROUND == 0)); then cp "$out" "$RES/hash.xfer$n.out"; fi
		;;
	b3sum*)
		measure "hash.b3sum$n" "$out" b3sum --num-threads "$n" "$f"
		if ((ROUND == 0)); then
			cmp -s "$out" "$RES/hash.xfer$n.out" || die "xfer hash and b3sum disagree on $f"
		fi
		;;
	esac
}

scenario_hash() {
	if ! command -v b3sum >/dev/null; then
		log "skip hash: b3sum not installed"
		note "scenario hash skipped: b3sum not installed"
		return 0
	fi
	if [[ ! -f "$DATA/hash/hash.bin" ]]; then
		if (($(df -m --output=avail "$TMPBASE" | tail -n1) < HASH_MIB + 256)); then
			log "skip hash: needs $((HASH_MIB + 256)) MiB free in $TMPBASE"
			note "scenario hash skipped: less than $((HASH_MIB + 256)) MiB free in $TMPBASE"
			return 0
		fi
		mkdir -p "$DATA/hash"
		head -c $((HASH_MIB << 20)) /dev/urandom >"$DATA/hash/hash.bin"
	fi
	log "hash: $RUNS runs of xfer hash / b3sum on a ${HASH_MIB} MiB file, 1 and 2 threads"
	for_runs hash_run xfer1 b3sum1 xfer2 b3sum2
	add_row "hash: ${HASH_MIB} MiB, 1 thread, vs b3sum" hash.xfer1 hash.b3sum1 $((HASH_MIB << 20)) speedup 1.0
	add_row "hash: ${HASH_MIB} MiB, 2 threads, vs b3sum" hash.xfer2 hash.b3sum2 $((HASH_MIB << 20)) speedup 1.0
}

# --- scenario floor: what each side's work costs at least ------------------------------

# The parts of a verified copy, each by the plainest tool that does just it,
# on the big file (CPU seconds, user+sys): reading it from the page cache
# (dd to /dev/null, 4 MiB blocks), hashing it on one thread (b3sum
# --num-threads 1, BLAKE3 in the official assembly; xfer's own hashing is
# the hash scenario's), moving it over loopback (iperf3 -Z -n: sendfile on
# the client, into memory on the server) and writing it into fresh tmpfs
# pages (dd from /dev/zero, whose reads cost next to nothing). b3sum maps
# the file, so its figure includes getting the bytes from the page cache, as
# the sender does; the floor of the client is hash + send, of the server
# receive + hash + write (which overstates it by about the read row: the
# server hashes bytes it already holds).
floor_run() {
	local f="$DATA/big/big.bin" out="$RES/out"
	case "$1" in
	read) measure floor.read "$out" dd if="$f" of=/dev/null bs=4M ;;
	hash) measure floor.hash "$out" b3sum --num-threads 1 "$f" ;;
	net) iperf3_big "$((BIG_MIB << 20))" floor.net ;;
	write)
		rm -f "$BD/floor.out"
		measure floor.write "$out" dd if=/dev/zero of="$BD/floor.out" bs=4M count="$((BIG_MIB / 4))"
		rm -f "$BD/floor.out"
		;;
	esac
}

# sum_series OUT SERIES...: OUT.cpu holds, round by round, the sum of the
# SERIES' CPU values.
sum_series() {
	local out="$1" f
	shift
	local files=()
	for f in "$@"; do files+=("$RES/$f.cpu"); done
	paste "${files[@]}" | awk '{s=0; for (i=1; i<=NF; i++) s+=$i; printf "%.2f\n", s}' >"$RES/$out.cpu"
}

scenario_floor() {
	local bytes=$((BIG_MIB << 20))
	local t
	for t in b3sum iperf3; do
		if ! command -v "$t" >/dev/null; then
			log "skip floor: $t not installed"
			note "scenario floor skipped: $t not installed"
			return 0
		fi
	done
	big_data $((2 * BIG_MIB + 256)) || return 0
	log "floor: $RUNS runs of dd read / b3sum -j1 / iperf3 -Z / dd write on ${BIG_MIB} MiB"
	for_runs floor_run read hash net write
	sum_series floor.client floor.hash floor.net
	sum_series floor.server floor.nets floor.hash floor.write
	add_cpu "floor: read from page cache (dd)" floor.read - "$bytes" - -
	add_cpu "floor: hash, one thread (b3sum -j1)" floor.hash - "$bytes" - -
	add_cpu "floor: loopback (iperf3 -Z -n)" floor.net floor.nets "$bytes" - -
	add_cpu "floor: write to fresh tmpfs pages (dd)" floor.write - "$bytes" - -
	add_cpu "floor: verified copy (sums of the above)" floor.client floor.server "$bytes" - -
}

# --- scenario b: many small files -------------------------------------------------------

small_run() {
	local src="$DATA/small" out="$RES/out"
	case "$1" in
	xfer)
		xfer_copy small "$src"
		if ((ROUND == 0)); then verify_tree "$src" "$XROOT/small" "xfer copy (small)"; fi
		measure small.xfer_nochange "$out" "$XFER" sync "$src" "xfer://$XS_ADDR/small" "${XF[@]}"
		xfer_check "$out"
		local moved
		moved="$(summary_field "$out" files_transferred)"
		if [[ "$moved" != 0 ]]; then
			note "xfer sync with no change transferred $moved files (round $ROUND)"
			log "warning: no-change xfer sync transferred $moved files"
		fi
		xserve_down small.serve.rss
		rm -rf "$XROOT"
		;;
	rsync)
		rsync_copy small "$src"
		measure small.rsync_nochange "$out" rsync -a "$src/" "rsync://127.0.0.1:$RS_PORT/bench/small/"
		rm -rf "${RROOT:?}/small"
		;;
	esac
}

scenario_small() {
	local per=$((SMALL_FILES / SMALL_DIRS)) d bytes
	bytes=$((per * SMALL_DIRS * SMALL_SIZE))
	log "small: writing $((per * SMALL_DIRS)) files of $SMALL_SIZE bytes in $SMALL_DIRS dirs"
	for ((d = 0; d < SMALL_DIRS; d++)); do
		mkdir -p "$DATA/small/d$d"
		head -c $((per * SMALL_SIZE)) /dev/urandom | split -b "$SMALL_SIZE" -a 5 -d - "$DATA/small/d$d/f"
	done
	log "small: $RUNS runs of xfer / rsync (copy, then no-change pass)"
	for_runs small_run xfer rsync
	add_row "b: $((per * SMALL_DIRS)) x 4 KiB, copy vs rsync daemon" small.xfer small.rsync "$bytes" speedup 1.2
	add_row "b: $((per * SMALL_DIRS)) x 4 KiB, no-change sync vs rsync" small.xfer_nochange small.rsync_nochange 0 speedup 1.0
	add_rss "c: xfer client, small files (copy+sync)" small.xfer.rss
	add_rss "c: xfer serve, small files (copy+sync)" small.serve.rss
	cat "$RES/small.xfer_nochange.rss" >>"$RES/small.xfer.rss"
	rm -rf "$DATA/small"
}

# --- main --------------------------------------------------------------------------------

machine() {
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg) at start"
	echo "- kernel: $(uname -sr); $(go version 2>/dev/null | sed 's/^go version //' || echo 'go: n/a')"
	echo "- xfer: ${XVERSION:-unknown}"
	# awk reads all of its input: head would close the pipe early, and the
	# writer's SIGPIPE fails the pipeline under pipefail.
	echo "- peers: $(rsync --version | awk 'NR == 1 {gsub(/ +/, " "); print}'); $(cp --version | awk 'NR == 1'); reference hash: $REFHASH_NAME"
	echo "- data on $TMPBASE ($(df -h --output=fstype "$TMPBASE" | tail -n1 | tr -d ' ')), loopback 127.0.0.1; $RUNS interleaved runs per tool, medians; warm-up rounds: $WARMUP"
}

bench_command() {
	local v parts=()
	for v in BENCH_RUNS BENCH_WARMUP BENCH_PROFILE BENCH_PIN BENCH_PIN_CLIENT BENCH_PIN_SERVER BENCH_BIG_TOOLS BENCH_SCENARIOS BENCH_BIG_MIB BENCH_HASH_MIB BENCH_SMALL_FILES BENCH_SMALL_DIRS BENCH_TMP BENCH_TIMEOUT XFER_FLAGS XFER_SERVE_FLAGS BENCH_RECORD BENCH_STRICT; do
		[[ -n "${!v+x}" ]] && parts+=("$v=$(printf '%q' "${!v}")")
	done
	if [[ -n "${MAKELEVEL:-}" ]]; then parts+=("make bench"); else parts+=("scripts/bench.sh"); fi
	echo "${parts[*]}"
}

XVERSION="$("$XFER" version 2>/dev/null | sed -n 1p)" || true
MACHINE="$(machine)"
echo "$MACHINE"
rsync_daemon_start "$RROOT"
log "rsync daemon on 127.0.0.1:$RS_PORT, module bench -> $RROOT"
# shellcheck disable=SC2086 # a list of names
run_scenarios $SCENARIOS
[[ -n "$XPROTO" ]] && note "xfer transport: $XPROTO"
note "$PIN_NOTE"
note "ratio = ratio of medians; paired = median of the per-round ratios; MB/s = 10^6 bytes/s of source data"

echo
TABLE="$(render text; render_cpu text)"
render text >/dev/null # count MISSes in this shell
render_cpu text >/dev/null
echo "$TABLE"
echo
for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done
echo "raw seconds per run:"
raw_times | sed 's/^/  /'
echo "raw CPU seconds per run (user+sys):"
raw_cpu | sed 's/^/  /'
echo "total ${ELAPSED}s; $MISSES target(s) missed"

if [[ "${BENCH_RECORD:-0}" == 1 ]]; then
	doc="$ROOT/docs/benchmarks.md"
	if [[ ! -f "$doc" ]]; then
		# shellcheck disable=SC2016 # backquotes are markdown
		printf '# Benchmarks\n\nRecorded by `BENCH_RECORD=1 make bench` (scripts/bench.sh); newest last.\n' >"$doc"
	fi
	{
		echo
		echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — $(awk '{print $1, $2}' <<<"${XVERSION:-xfer}")"
		echo
		echo "$MACHINE"
		echo "- command: \`$(bench_command)\`"
		echo
		render md
		render_cpu md
		echo
		for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "- $n"; done
		echo
		echo "Raw seconds per run:"
		echo
		echo '```'
		raw_times
		echo '```'
		echo
		echo "Raw CPU seconds per run (user+sys; *.serve*, rsyncd, iperf3s: the server side):"
		echo
		echo '```'
		raw_cpu
		echo '```'
	} >"$RES/record.md"
	# Records of this script go before the transports section (written by
	# scripts/bench-transports.sh), or at the end when there is none.
	marker='## Transports (`xfer bench`)'
	if grep -qF "$marker" "$doc"; then
		awk -v rec="$RES/record.md" -v m="$marker" '
			index($0, m) == 1 && !done { while ((getline l < rec) > 0) print l; print ""; done = 1 }
			{ print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
	else
		cat "$RES/record.md" >>"$doc"
	fi
	log "recorded results in $doc"
fi

if [[ "${BENCH_STRICT:-0}" == 1 ]] && ((MISSES > 0)); then
	exit 1
fi
exit 0
