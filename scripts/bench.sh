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
#   BENCH_SCENARIOS="big small hash"   which scenario_* functions to run, in order
#   BENCH_BIG_MIB=2048    size of the single file of scenario big
#   BENCH_HASH_MIB=1024   size of the file of scenario hash
#   BENCH_SMALL_FILES=10000 BENCH_SMALL_DIRS=100   tree of 4 KiB files
#   BENCH_TMP=/dev/shm    where data and destinations live (tmpfs)
#   BENCH_TIMEOUT=600     seconds before one command counts as hung
#   XFER_FLAGS=""         extra flags for xfer copy/sync (e.g. "--streams 4")
#   XFER_SERVE_FLAGS=""   extra flags for xfer serve
#   BENCH_RECORD=1        append a dated section to docs/benchmarks.md
#   BENCH_STRICT=1        exit 1 when a target is missed
#
# Scenarios: big (a: one 2 GiB file vs rsync daemon and cp), small (b: 10,000
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

RUNS="${BENCH_RUNS:-5}"
WARMUP="${BENCH_WARMUP:-1}"
SCENARIOS="${BENCH_SCENARIOS:-big small hash}"
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
NOTES=()

# add_row LABEL XFER_SERIES PEER_SERIES BYTES KIND TARGET
#   KIND speedup:   ratio = peer time / xfer time, PASS when >= TARGET
#   KIND timeratio: ratio = xfer time / peer time, PASS when <= TARGET
#   KIND info:      ratio = peer time / xfer time, no target
add_row() { ROWS+=("$1|$2|$3|$4|$5|$6"); }
add_rss() { RSSROWS+=("$1|$2"); }

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

raw_times() { raw_values 22 .t "$RES"/*.t; }

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
xfer_copy() {
	rm -rf "$XROOT"
	xserve_up "$XROOT"
	measure "$1.xfer" "$RES/out" "$XFER" copy "$2" "xfer://$XS_ADDR/$1" "${XF[@]}"
	xfer_check "$RES/out"
}

# rsync_copy NAME SRC: a fresh rsync -a of SRC to the daemon's NAME (series
# NAME.rsync), verified in the warm-up round.
rsync_copy() {
	rm -rf "${RROOT:?}/$1"
	measure "$1.rsync" "$RES/out" rsync -a "$2/" "rsync://127.0.0.1:$RS_PORT/bench/$1/"
	if ((ROUND == 0)); then verify_tree "$2" "$RROOT/$1" "rsync ($1)"; fi
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

scenario_big() {
	local bytes=$((BIG_MIB << 20))
	big_data $((2 * BIG_MIB + 256)) || return 0
	log "big: 1 x ${BIG_MIB} MiB file, $RUNS runs of xfer / rsync / cp"
	for_runs big_run xfer rsync cp
	add_row "a: 1 file ${BIG_MIB} MiB, copy vs rsync daemon" big.xfer big.rsync "$bytes" speedup 1.5
	add_row "a: 1 file ${BIG_MIB} MiB, copy vs local cp" big.xfer big.cp "$bytes" timeratio 1.6
	add_rss "c: xfer copy client, 1 big file" big.xfer.rss
	add_rss "c: xfer serve, 1 big file" big.serve.rss
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
	for v in BENCH_RUNS BENCH_WARMUP BENCH_SCENARIOS BENCH_BIG_MIB BENCH_SMALL_FILES BENCH_SMALL_DIRS BENCH_TMP BENCH_TIMEOUT XFER_FLAGS XFER_SERVE_FLAGS BENCH_RECORD BENCH_STRICT; do
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
note "ratio = ratio of medians; paired = median of the per-round ratios; MB/s = 10^6 bytes/s of source data"

echo
TABLE="$(render text)"
render text >/dev/null # count MISSes in this shell
echo "$TABLE"
echo
for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done
echo "raw seconds per run:"
raw_times | sed 's/^/  /'
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
		echo
		for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "- $n"; done
		echo
		echo "Raw seconds per run:"
		echo
		echo '```'
		raw_times
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
