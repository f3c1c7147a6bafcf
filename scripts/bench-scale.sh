#!/usr/bin/env bash
# bench-scale.sh: the scale benchmarks of issue 6, xfer against an rsync
# daemon on loopback with the data on tmpfs. Runs are interleaved (xfer,
# rsync, then rsync, xfer, ...) and reported as medians, because this
# machine is shared and single timings vary 2-3x.
#
#   XFER=bin/xfer scripts/bench-scale.sh
#
# Scenarios (BENCH_SCALE_SCENARIOS, in order):
#   nochange  a: a tree of BENCH_SCALE_FILES (1,000,000) files of 1-64 bytes in
#             1000-file directories is synced with no change: xfer to a served
#             peer, xfer local->local, and rsync -a to the rsync daemon, over
#             the same destination tree (a hard-linked copy of the source).
#             Peak RSS of the xfer client (GNU time) and of a fresh `xfer
#             serve` per run (VmHWM); growth per file from the same syncs of
#             one tenth of the tree (its first top-level directory).
#   small     b: BENCH_SCALE_SMALL_FILES (100,000) files of 1-8 KiB, initial
#             copy to a served peer vs rsync -a to the daemon; CPU per file
#             (user + system) of the xfer client and of each fresh xfer
#             serve, of the rsync client and of the daemon's child.
#   delta     c: one file of BENCH_SCALE_BIG_MIB (1024) MiB; each run changes
#             one 4 KiB region (inside one chunk) and syncs it; the bytes on
#             the wire are xfer's bytes_sent (--json: the changed 16 KiB
#             leaves) and rsync's "Total bytes sent" (--stats); with
#             BENCH_NETNS=1 also every byte on loopback during each run.
#   scatter   d: the same file with 1% of its 4 KiB blocks changed at random
#             places before each run (gentree -scatter 10); bytes and time.
#
# Knobs (environment):
#   BENCH_RUNS=3          measured runs per scenario (plus BENCH_WARMUP=1 untimed
#                         round, which also verifies the copies)
#   BENCH_SCALE_FILES=1000000 BENCH_SCALE_SMALL_FILES=100000 BENCH_SCALE_BIG_MIB=1024
#   BENCH_TMP=/dev/shm    where data and destinations live (tmpfs)
#   BENCH_TIMEOUT=900     seconds before one command counts as hung
#   XFER_FLAGS=""         extra flags for xfer copy/sync (e.g. "--checkers 4")
#   XFER_SERVE_FLAGS=""   extra flags for xfer serve
#   BENCH_STRICT=1        exit 1 when a target is missed
#   BENCH_NETNS=1         run in a private network namespace (unshare -n) whose
#                         loopback carries only this run: the delta scenario then
#                         also counts every byte of each sync on the wire, both
#                         directions, control traffic and TCP/IP headers included
#
# Needs: go (builds the tree generator internal/gentree), rsync, GNU time,
# b3sum (or falls back to xfer hash) for the verification.
set -euo pipefail

if [[ "${BENCH_NETNS:-0}" == 1 && -z "${BENCH_IN_NETNS:-}" ]]; then
	# As root a network namespace alone; otherwise in a user namespace too,
	# where the rsync daemon cannot drop groups (run as root for rsync).
	ns=(-n)
	((EUID == 0)) || ns=(-rn)
	# shellcheck disable=SC2016 # expanded by the inner shell
	exec unshare "${ns[@]}" env BENCH_IN_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench-scale

RUNS="${BENCH_RUNS:-3}"
WARMUP="${BENCH_WARMUP:-1}"
SCENARIOS="${BENCH_SCALE_SCENARIOS:-nochange small delta}"
NFILES="${BENCH_SCALE_FILES:-1000000}"
NSMALL="${BENCH_SCALE_SMALL_FILES:-100000}"
BIG_MIB="${BENCH_SCALE_BIG_MIB:-1024}"
TIMEOUT="${BENCH_TIMEOUT:-900}"
xfer_flags
GROWTH_LIMIT=300 # bytes of RSS per file (issue 6: "a few hundred")
GNU_TIME=/usr/bin/time

need_xfer
command -v rsync >/dev/null || die "rsync not installed (make deps)"
command -v go >/dev/null || die "go not installed (needed to build internal/gentree)"
[[ -x "$GNU_TIME" ]] || die "GNU time not installed at $GNU_TIME (make deps)"
positive_int BENCH_RUNS "$RUNS"
for v in NFILES NSMALL BIG_MIB; do
	positive_int "$v" "${!v}"
done
if command -v b3sum >/dev/null; then REFHASH=(b3sum); else REFHASH=("$XFER" hash); fi

XS_PID=""
RS_PID=""
bench_workdir xfer-bench-scale # BD, and RES for timings, RSS, logs
DATA="$BD/data"                # sources
DST="$BD/dst"                  # root of the xfer serve under test and path of the rsync module
mkdir -p "$DATA" "$DST"

GENTREE="$BD/gentree"
(cd "$ROOT" && go build -o "$GENTREE" ./internal/gentree) || die "building internal/gentree"

ROUND=0 # 0 = warm-up (not recorded), 1..RUNS = measured (measure: benchlib.sh)

# --- results -------------------------------------------------------------------------

LINES=() # "label|value|target|result"
NOTES=()
MISSES=0
row() {
	LINES+=("$1|$2|$3|$4")
	[[ "$4" == MISS ]] && MISSES=$((MISSES + 1))
	return 0
}

# speed LABEL XFER_SERIES PEER_SERIES TARGET: xfer vs peer time, PASS when
# peer/xfer >= TARGET ("-": informational).
speed() {
	local xm pm ratio pair res tgt
	xm="$(median "$RES/$2.t")"
	pm="$(median "$RES/$3.t")"
	ratio="$(awk -v x="$xm" -v p="$pm" 'BEGIN{printf "%.2f", p/x}')"
	pair="$(awk -v v="$(paired_ratio "$RES/$3.t" "$RES/$2.t")" 'BEGIN{printf "%.2f", v}')"
	if [[ "$4" == - ]]; then
		res=info tgt="-"
	else
		res="$(awk -v r="$ratio" -v t="$4" 'BEGIN{print (r>=t) ? "PASS" : "MISS"}')"
		tgt=">= ${4}x faster"
	fi
	row "$1" "xfer $(printf '%.2f' "$xm") s, rsync $(printf '%.2f' "$pm") s: ${ratio}x (paired ${pair}x)" "$tgt" "$res"
}

# rss LABEL SERIES: peak RSS (max over runs), informational.
rss() {
	row "$1" "$(awk -v k="$(maxof "$RES/$2")" 'BEGIN{printf "%.1f MiB", k/1024}')" - info
}

# growth LABEL FULL_SERIES PART_SERIES FILES_FULL FILES_PART: RSS growth per
# file between a sync of the whole tree and of a part (medians).
growth() {
	local f p b res
	f="$(median "$RES/$2")"
	p="$(median "$RES/$3")"
	b="$(awk -v f="$f" -v p="$p" -v nf="$4" -v np="$5" 'BEGIN{g=(f-p)*1024/(nf-np); if(g<0)g=0; printf "%.0f", g}')"
	res="$(awk -v b="$b" -v l="$GROWTH_LIMIT" 'BEGIN{print (b<=l) ? "PASS" : "MISS"}')"
	row "$1" "$b B/file ($(awk -v k="$p" 'BEGIN{printf "%.1f", k/1024}') MiB at $5 files, $(awk -v k="$f" 'BEGIN{printf "%.1f", k/1024}') MiB at $4)" "<= $GROWTH_LIMIT B/file" "$res"
}

render() {
	local r label value target res
	if [[ "$1" == md ]]; then
		echo "| figure | measured | target | result |"
		echo "|---|---|---|---|"
	fi
	for r in "${LINES[@]+"${LINES[@]}"}"; do
		IFS='|' read -r label value target res <<<"$r"
		if [[ "$1" == md ]]; then
			echo "| $label | $value | $target | $res |"
		else
			printf '%-50s %-62s %-18s %s\n' "$label" "$value" "$target" "$res"
		fi
	done
}

raw_times() { raw_values 28 "" "$RES"/*.t "$RES"/*.rss "$RES"/*.cpu "$RES"/*.bytes; }

# --- peers ------------------------------------------------------------------------------


RSURL() { echo "rsync://127.0.0.1:$RS_PORT/bench/$1"; }

# cpu_per_file LABEL FILES SERIES...: median CPU per file (µs) of each
# series, informational.
cpu_per_file() {
	local label="$1" n="$2" s v=""
	shift 2
	for s in "$@"; do
		v+="${v:+ / }$(awk -v c="$(median "$RES/$s")" -v n="$n" 'BEGIN{printf "%.1f", c*1e6/n}')"
	done
	row "$label" "$v µs/file" - info
}

# xfer_moved OUT WANT: the summary of the last xfer run says WANT files moved.
xfer_moved() {
	local moved
	moved="$(summary_field "$1" files_transferred)"
	[[ -n "$moved" ]] || die "no summary line in xfer --json output ($1)"
	[[ "$moved" == "$2" ]] || die "xfer transferred $moved files, want $2 ($1)"
	[[ "$(summary_field "$1" errors)" == 0 ]] || die "xfer reported errors ($1)"
}

# need_space MIB INODES: fails when TMPBASE lacks them.
need_space() {
	local mib ino
	mib="$(df -m --output=avail "$TMPBASE" | tail -n1 | tr -d ' ')"
	ino="$(df --output=iavail "$TMPBASE" | tail -n1 | tr -d ' ')"
	((mib >= $1)) || die "needs $1 MiB free in $TMPBASE, has $mib (set BENCH_SCALE_FILES / BENCH_SCALE_BIG_MIB lower)"
	# tmpfs counts every hard link as an inode.
	[[ "$ino" == 0 || "$ino" -ge "$2" ]] || die "needs $2 free inodes in $TMPBASE, has $ino (set BENCH_SCALE_FILES lower)"
}

# --- scenario a: no-change sync of a large tree ------------------------------------------

NC_PART="" # the tenth of the tree synced for the growth figure
nochange_run() {
	local out="$RES/out"
	case "$1" in
	xfer)
		xserve_up "$DST"
		measure nc.xfer "$out" "$XFER" sync "$DATA/nc" "xfer://$XS_ADDR/nc" "${XF[@]}"
		xfer_moved "$out" 0
		xserve_down nc.serve.rss
		xserve_up "$DST"
		measure nc.xfer_part "$out" "$XFER" sync "$DATA/nc/$NC_PART" "xfer://$XS_ADDR/nc/$NC_PART" "${XF[@]}"
		xfer_moved "$out" 0
		xserve_down nc.serve_part.rss
		;;
	local)
		measure nc.local "$out" "$XFER" sync "$DATA/nc" "$DST/nc" "${XF[@]}"
		xfer_moved "$out" 0
		measure nc.local_part "$out" "$XFER" sync "$DATA/nc/$NC_PART" "$DST/nc/$NC_PART" "${XF[@]}"
		xfer_moved "$out" 0
		;;
	rsync)
		measure nc.rsync "$out" rsync -a "$DATA/nc/" "$(RSURL nc/)"
		;;
	esac
}

scenario_nochange() {
	local t0 part_files
	need_space $((NFILES * 5 / 1024 + 512)) $((2 * NFILES + 2 * NFILES / 1000 + 10000))
	log "nochange: writing $NFILES files of 1-64 bytes"
	t0=$EPOCHREALTIME
	"$GENTREE" -files "$NFILES" -per-dir 1000 -fanout 100 -min 1 -max 64 "$DATA/nc"
	cp -al "$DATA/nc" "$DST/nc" # the destination: equal (hard-linked) files
	log "nochange: tree and its copy made in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s"
	NC_PART="$(cd "$DATA/nc" && find . -mindepth 1 -maxdepth 1 -type d -printf '%P\n' | LC_ALL=C sort | head -n1)"
	part_files="$(find "$DATA/nc/$NC_PART" -type f | wc -l)"
	log "nochange: $RUNS runs of xfer to a peer / xfer local / rsync daemon (growth measured on $NC_PART, $part_files files)"
	for_runs nochange_run xfer local rsync
	speed "a: $NFILES files no-change, xfer peer vs rsync daemon" nc.xfer nc.rsync 1.0
	speed "a: $NFILES files no-change, xfer local vs rsync daemon" nc.local nc.rsync -
	rss "a: peak RSS xfer client (to peer)" nc.xfer.rss
	rss "a: peak RSS xfer serve" nc.serve.rss
	rss "a: peak RSS xfer local->local" nc.local.rss
	rss "a: peak RSS rsync client" nc.rsync.rss
	if ((part_files < NFILES)); then
		growth "a: RSS growth per file, xfer client" nc.xfer.rss nc.xfer_part.rss "$NFILES" "$part_files"
		growth "a: RSS growth per file, xfer serve" nc.serve.rss nc.serve_part.rss "$NFILES" "$part_files"
		growth "a: RSS growth per file, xfer local->local" nc.local.rss nc.local_part.rss "$NFILES" "$part_files"
	fi
	log "nochange: removing the trees"
	rm -rf "$DATA/nc" "${DST:?}/nc"
}

# --- scenario b: initial copy of many small files ----------------------------------------

small_run() {
	local out="$RES/out"
	case "$1" in
	xfer)
		rm -rf "${DST:?}/small"
		xserve_up "$DST"
		measure small.xfer "$out" "$XFER" copy "$DATA/small" "xfer://$XS_ADDR/small" "${XF[@]}"
		xfer_moved "$out" "$NSMALL"
		xserve_down small.serve.rss
		if ((ROUND == 0)); then verify_tree "$DATA/small" "$DST/small" "xfer copy (small)"; fi
		rm -rf "${DST:?}/small"
		;;
	xfer-noverify) # what the end-to-end BLAKE3 (hashed on both sides) costs
		rm -rf "${DST:?}/small"
		xserve_up "$DST"
		measure small.xfer_noverify "$out" "$XFER" copy "$DATA/small" "xfer://$XS_ADDR/small" --verify none "${XF[@]}"
		xfer_moved "$out" "$NSMALL"
		xserve_down small.serve_noverify.rss
		rm -rf "${DST:?}/small"
		;;
	rsync)
		rm -rf "${DST:?}/small"
		local before
		before="$(rsyncd_cpu)"
		measure small.rsync "$out" rsync -a "$DATA/small/" "$(RSURL small/)"
		record small.rsyncd.cpu "$(awk -v a="$before" -v b="$(rsyncd_cpu)" 'BEGIN{printf "%.2f", b-a}')"
		if ((ROUND == 0)); then verify_tree "$DATA/small" "$DST/small" "rsync (small)"; fi
		rm -rf "${DST:?}/small"
		;;
	esac
}

scenario_small() {
	need_space $((NSMALL * 3 * 9 / 1024 + 512)) $((3 * NSMALL + 10000))
	log "small: writing $NSMALL files of 1-8 KiB"
	"$GENTREE" -files "$NSMALL" -per-dir 1000 -fanout 100 -min 1024 -max 8192 "$DATA/small"
	log "small: $RUNS runs of xfer copy to a peer / rsync daemon / xfer --verify none"
	for_runs small_run xfer rsync xfer-noverify
	speed "b: $NSMALL files of 1-8 KiB, copy, xfer peer vs rsync daemon" small.xfer small.rsync 2.0
	speed "b: same with --verify none (no BLAKE3), vs rsync" small.xfer_noverify small.rsync -
	cpu_per_file "b: CPU per file, xfer client / xfer serve / rsync client / rsync daemon" "$NSMALL" small.xfer.cpu small.serve.cpu small.rsync.cpu small.rsyncd.cpu
	cpu_per_file "b: same, --verify none, xfer client / xfer serve" "$NSMALL" small.xfer_noverify.cpu small.serve_noverify.cpu
	rss "b: peak RSS xfer client" small.xfer.rss
	rss "b: peak RSS xfer serve" small.serve.rss
	rm -rf "$DATA/small"
}

# --- scenario c: one changed 4 KiB region in a large file ----------------------------------

CHUNK=$((4 << 20)) # xfer's default --chunk-size
DELTA_T0=$(($(date +%s) - 86400))

# delta_change: changes one 4 KiB region of the source, inside one chunk
# (a different one each round).
delta_change() {
	local chunks off
	chunks=$(((BIG_MIB << 20) / CHUNK))
	((chunks > 0)) || die "BENCH_SCALE_BIG_MIB must be at least 4"
	off=$((((ROUND * 37 + 5) % chunks) * CHUNK + 4096 * ((ROUND * 13 + 1) % (CHUNK / 4096 - 1))))
	head -c 4096 /dev/urandom | dd of="$DATA/delta/big.bin" bs=4096 seek=$((off / 4096)) conv=notrunc status=none
	# A new mtime in another second: rsync compares whole seconds.
	touch -d "@$((DELTA_T0 + 10 * (ROUND + 1)))" "$DATA/delta/big.bin"
}

# lo_bytes: bytes the loopback interface has carried (each packet once).
# (Large counts run into the name: "lo:123456789".)
lo_bytes() { sed -n 's/^ *lo: *\([0-9]*\).*/\1/p' /proc/net/dev; }

# wire_record SERIES START: records the loopback bytes since START (in a
# private network namespace only: elsewhere others share the loopback).
wire_record() {
	[[ -n "${BENCH_IN_NETNS:-}" ]] || return 0
	record "$1" $(($(lo_bytes) - $2))
}

# delta_run TOOL [SERIES]: syncs the changed file; xfer to the peer (dst
# delta), rsync to the daemon (its own copy, rdelta); results in SERIES.*
# (default delta).
delta_run() {
	local out="$RES/out" sent w0 p="${2:-delta}"
	case "$1" in
	xfer)
		xserve_up "$DST"
		w0="$(lo_bytes)"
		measure "$p".xfer "$out" "$XFER" sync "$DATA/delta" "xfer://$XS_ADDR/delta" "${XF[@]}"
		wire_record "$p".xfer.wire "$w0"
		xfer_moved "$out" 1
		xserve_down "$p".serve.rss
		record "$p".xfer.bytes "$(summary_field "$out" bytes_sent)"
		if ((ROUND == 0)); then verify_tree "$DATA/delta" "$DST/delta" "xfer delta"; fi
		;;
	rsync)
		w0="$(lo_bytes)"
		measure "$p".rsync "$out" rsync -a --stats "$DATA/delta/" "$(RSURL rdelta/)"
		wire_record "$p".rsync.wire "$w0"
		sent="$(sed -n 's/^Total bytes sent: \([0-9,.]*\).*/\1/p' "$out" | tr -d ',.')"
		[[ -n "$sent" ]] || die "no 'Total bytes sent' in rsync --stats output"
		record "$p".rsync.bytes "$sent"
		if ((ROUND == 0)); then verify_tree "$DATA/delta" "$DST/rdelta" "rsync delta"; fi
		;;
	esac
}

# delta_rounds SERIES CHANGE WHAT: writes the big file and two copies, then
# runs rounds (a warm-up first) of CHANGE (a function changing the source,
# described by WHAT), xfer sync and rsync, interleaved, into SERIES.*; then
# reports the bytes (xfer's against rsync's, the target) and the time, with
# LABEL (environment) naming the rows and TIME_TARGET (environment) the
# speed target (a ratio, or - for none).
delta_rounds() {
	local p="$1" change="$2" what="$3" xb rb res
	need_space $((3 * BIG_MIB + 512)) 100
	log "$p: writing a ${BIG_MIB} MiB file and two copies"
	mkdir -p "$DATA/delta" "$DST/delta" "$DST/rdelta"
	"$GENTREE" -big $((BIG_MIB << 20)) "$DATA/delta/big.bin"
	touch -d "@$DELTA_T0" "$DATA/delta/big.bin"
	cp -a "$DATA/delta/big.bin" "$DST/delta/big.bin"
	cp -a "$DATA/delta/big.bin" "$DST/rdelta/big.bin"
	log "$p: $RUNS runs of: $what, xfer sync / rsync"
	for ((ROUND = (WARMUP ? 0 : 1); ROUND <= RUNS; ROUND++)); do
		"$change"
		if ((ROUND % 2)); then
			delta_run rsync "$p"
			delta_run xfer "$p"
		else
			delta_run xfer "$p"
			delta_run rsync "$p"
		fi
		if ((ROUND == 0)); then log "  warm-up done"; else log "  run $ROUND/$RUNS done"; fi
	done
	ROUND=0
	xb="$(median "$RES/$p.xfer.bytes")"
	rb="$(median "$RES/$p.rsync.bytes")"
	res="$(awk -v b="$xb" -v r="$rb" 'BEGIN{print (b<=r) ? "PASS" : "MISS"}')"
	row "$LABEL: xfer bytes_sent (changed 16 KiB leaves)" "$xb bytes (chunk $CHUNK); max $(maxof "$RES/$p.xfer.bytes")" "<= rsync" "$res"
	row "$LABEL: rsync Total bytes sent" "$rb bytes" - info
	if [[ -n "${BENCH_IN_NETNS:-}" ]]; then
		row "$LABEL: every byte on loopback: xfer vs rsync" "xfer $(median "$RES/$p.xfer.wire"), rsync $(median "$RES/$p.rsync.wire") bytes" - info
	fi
	speed "$LABEL: time xfer vs rsync" "$p.xfer" "$p.rsync" "$TIME_TARGET"
	rm -rf "$DATA/delta" "${DST:?}/delta" "${DST:?}/rdelta"
}

scenario_delta() {
	LABEL="c: ${BIG_MIB} MiB file, 4 KiB changed" TIME_TARGET=- delta_rounds delta delta_change "change 4 KiB"
}

# scatter_change: overwrites 1% of the source's 4 KiB blocks, at random
# places (others each round).
scatter_change() {
	"$GENTREE" -scatter 10 -seed $((ROUND + 100)) "$DATA/delta/big.bin"
	touch -d "@$((DELTA_T0 + 10 * (ROUND + 1)))" "$DATA/delta/big.bin"
}

# scenario_scatter: the delta scenario with 1% of the file's 4 KiB blocks
# changed at random places before each run (issue 14's second case).
scenario_scatter() {
	LABEL="d: ${BIG_MIB} MiB file, 1% of 4 KiB blocks changed" TIME_TARGET=1 delta_rounds scatter scatter_change "change 1% of the 4 KiB blocks"
}

# --- main ----------------------------------------------------------------------------------

machine() {
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg) at start"
	echo "- kernel: $(uname -sr); xfer: $("$XFER" version 2>/dev/null | sed -n 1p)"
	echo "- peer: $(rsync --version | awk 'NR==1 {$1=$1; print}') (daemon on 127.0.0.1)"
	echo "- data on $TMPBASE ($(df -h --output=fstype "$TMPBASE" | tail -n1 | tr -d ' ')); $RUNS interleaved runs per tool, medians; warm-up rounds: $WARMUP"
}

MACHINE="$(machine)"
echo "$MACHINE"
rsync_daemon_start "$DST"
log "rsync daemon on 127.0.0.1:$RS_PORT, module bench -> $DST"
# shellcheck disable=SC2086 # a list of names
run_scenarios $SCENARIOS
note "ratio = rsync median / xfer median; paired = median of the per-round ratios"

echo
render text
echo
render md
echo
for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done
echo "raw values per run:"
raw_times | sed 's/^/  /'
echo "total ${ELAPSED}s; $MISSES target(s) missed"

if [[ "${BENCH_STRICT:-0}" == 1 ]] && ((MISSES > 0)); then
	exit 1
fi
exit 0
