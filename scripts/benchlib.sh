# shellcheck shell=bash
# benchlib.sh: helpers the benchmark scripts share (sourced, not run), with
# lib.sh's for starting servers. They use the caller's globals: BD
# and RES (work and result directories), RUNS and WARMUP (rounds), ROUND,
# NOTES, GNU_TIME and TIMEOUT (measure), REFHASH (verify_tree).

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# bench_init NAME: what every benchmark script starts with. Sets ROOT (the
# repository), XFER (default bin/xfer there), TMPBASE (BENCH_TMP, default
# /dev/shm: where data and destinations live); die and log print
# "NAME: ..." on stderr, and a command that fails stops the run with
# "NAME: FAILED at line N: COMMAND" (set -E: inside functions too).
bench_init() {
	BENCH_NAME="$1"
	ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	XFER="${XFER:-$ROOT/bin/xfer}"
	TMPBASE="${BENCH_TMP:-/dev/shm}"
	set -E
	trap 'printf "%s: FAILED at line %s: %s\n" "$BENCH_NAME" "$LINENO" "$BASH_COMMAND" >&2' ERR
}

die() {
	printf '%s: FAILED: %s\n' "$BENCH_NAME" "$*" >&2
	exit 1
}
log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

# need_xfer: stops unless $XFER is an executable.
need_xfer() { [[ -x "$XFER" ]] || die "no xfer binary at $XFER (run make build)"; }

# positive_int NAME VALUE: stops unless VALUE is a whole number above 0.
positive_int() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer"; }

# bench_workdir NAME: makes the run's work directory BD ($TMPBASE/NAME.XXXXXX)
# and its results directory RES ($BD/res), and runs cleanup on exit, also on
# SIGINT and SIGTERM (exit 130).
bench_workdir() {
	BD="$(mktemp -d "$TMPBASE/$1.XXXXXX")"
	RES="$BD/res"
	mkdir -p "$RES"
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# cleanup: stops the servers the run started (XS_PID, RS_PID, PEER_PID,
# PEER_PIDS_EXTRA, with lib.sh's stop_pid) and removes BD. A script that
# starts others defines its own.
cleanup() {
	local p
	for p in "${XS_PID:-}" "${RS_PID:-}" "${PEER_PID:-}" "${PEER_PIDS_EXTRA:-}"; do
		if [[ -n "$p" ]]; then stop_pid "$p"; fi
	done
	[[ -n "${BENCH_KEEP:-}" ]] || rm -rf "$BD"
}

# xfer_flags: XF, the flags of every timed xfer copy/sync (--json for the
# summary, then XFER_FLAGS), and SERVE_FLAGS_A, the extra flags of xfer
# serve (XFER_SERVE_FLAGS).
xfer_flags() {
	local extra=()
	read -r -a extra <<<"${XFER_FLAGS:-}"
	# shellcheck disable=SC2034 # for the caller
	XF=(--json "${extra[@]+"${extra[@]}"}")
	read -r -a SERVE_FLAGS_A <<<"${XFER_SERVE_FLAGS:-}"
}

# bench_pin: with BENCH_PIN=1, PIN_CLIENT and PIN_SERVER are the taskset
# prefixes of client and server processes (CPUs BENCH_PIN_CLIENT, default 0,
# and BENCH_PIN_SERVER, default 1): measure runs every timed command under
# PIN_CLIENT, and xfer serve, the rsync daemon and iperf3 -s start under
# PIN_SERVER, which is how two one-core hosts look. Empty without BENCH_PIN.
# PIN_NOTE describes the choice for the report.
PIN_CLIENT=()
PIN_SERVER=()
PIN_NOTE="unpinned"
bench_pin() {
	[[ "${BENCH_PIN:-0}" == 1 ]] || return 0
	command -v taskset >/dev/null || die "BENCH_PIN=1 needs taskset (util-linux)"
	PIN_CLIENT=(taskset -c "${BENCH_PIN_CLIENT:-0}")
	PIN_SERVER=(taskset -c "${BENCH_PIN_SERVER:-1}")
	PIN_NOTE="pinned: clients (xfer copy, rsync, cp, iperf3 -c) on CPU ${BENCH_PIN_CLIENT:-0}, servers (xfer serve, rsync daemon, iperf3 -s) on CPU ${BENCH_PIN_SERVER:-1}"
}

# proc_cpu PID: CPU seconds (user+system) a live process used so far, and
# with "children" those of its reaped children (from /proc/PID/stat).
proc_cpu() {
	local tck
	tck="$(getconf CLK_TCK)"
	# Field 2 (comm) may hold spaces: count fields after its closing ')'.
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v t="$tck" -v c="${2:-}" '{
		s = $12 + $13; if (c == "children") s = $14 + $15; printf "%.2f\n", s / t }'
}

# rsyncd_cpu: CPU seconds of the rsync daemon and its reaped children (one
# child per connection, reaped by the daemon), once the connection's child
# has gone (within 5 s).
rsyncd_cpu() {
	local i
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$RS_PID" >/dev/null || break
		sleep 0.05
	done
	awk -v a="$(proc_cpu "$RS_PID")" -v b="$(proc_cpu "$RS_PID" children)" 'BEGIN{printf "%.2f", a+b}'
}

# measure SERIES OUT CMD...: runs CMD (stdout to OUT, stderr to OUT.err) under
# GNU time ($GNU_TIME), timeout ($TIMEOUT seconds) and PIN_CLIENT; outside
# the warm-up round records wall seconds in $RES/SERIES.t, the peak RSS (KiB,
# max over the process and its reaped children) in $RES/SERIES.rss and its
# CPU seconds (user+system, the process and its reaped children) in
# $RES/SERIES.cpu.
measure() {
	local series="$1" out="$2" t0 t1 rc=0
	shift 2
	t0=$EPOCHREALTIME
	"$GNU_TIME" -f '%M %U %S' -o "$RES/rss.tmp" timeout "$TIMEOUT" "${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"}" "$@" >"$out" 2>"$out.err" </dev/null || rc=$?
	t1=$EPOCHREALTIME
	if ((rc != 0)); then
		tail -n 20 "$out.err" >&2
		grep -E '"event": ?"error"' "$out" | tail -n 5 >&2 || true # xfer --json reports errors on stdout
		die "$series: '$*' exited $rc"
	fi
	((ROUND == 0)) && return 0
	awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f\n", b-a}' >>"$RES/$series.t"
	tail -n1 "$RES/rss.tmp" | awk '{print $1}' >>"$RES/$series.rss"
	tail -n1 "$RES/rss.tmp" | awk '{printf "%.2f\n", $2 + $3}' >>"$RES/$series.cpu"
}

# xserve_up ROOT / xserve_down SERIES: a fresh `xfer serve` of ROOT (with
# SERVE_FLAGS_A) for one measured run, so that its VmHWM, which xserve_down
# records in SERIES, covers that run only, as does its CPU time (user+system
# seconds from /proc/PID/stat, in SERIES with .cpu for .rss). It runs under
# PIN_SERVER, after the command prefix SERVE_ENV (an array, e.g. env
# XFER_CPUPROFILE=FILE) if set.
xserve_up() {
	SERVE_PREFIX=("${SERVE_ENV[@]+"${SERVE_ENV[@]}"}" "${PIN_SERVER[@]+"${PIN_SERVER[@]}"}")
	xfer_serve_start "$1" "$RES/serve.log" "${SERVE_FLAGS_A[@]+"${SERVE_FLAGS_A[@]}"}" || die "xfer serve did not start"
}
xserve_down() {
	record "$1" "$(vm_hwm "$XS_PID")"
	record "${1%.rss}.cpu" "$(proc_cpu "$XS_PID")"
	stop_pid "$XS_PID"
	XS_PID=""
}

# verify_tree SRC DST WHAT: DST holds exactly SRC's files with equal BLAKE3
# (by ${REFHASH[@]}; nothing of xfer's stays in a destination).
verify_tree() {
	hash_tree "$1" "${REFHASH[@]}" >"$RES/src.b3" || true
	hash_tree "$2" "${REFHASH[@]}" >"$RES/dst.b3" || true
	cmp -s "$RES/src.b3" "$RES/dst.b3" || {
		diff "$RES/src.b3" "$RES/dst.b3" | head -n 10 >&2 || true
		die "$3: destination differs from source"
	}
}

# run_scenarios NAME...: scenario_NAME for each NAME, in order; ELAPSED is
# the seconds they took in all.
run_scenarios() {
	local s start=$EPOCHREALTIME
	for s in "$@"; do
		declare -F "scenario_$s" >/dev/null || die "unknown scenario '$s'"
		"scenario_$s"
	done
	# shellcheck disable=SC2034 # for the caller
	ELAPSED="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}')"
}

# raw_values WIDTH EXT FILE...: for each FILE there is, a line with its name
# (without EXT), padded to WIDTH, and its values (one a line in FILE).
raw_values() {
	local width="$1" ext="$2" f
	shift 2
	for f in "$@"; do
		[[ -f "$f" ]] || continue
		printf '%-*s %s\n' "$width" "$(basename "$f" "$ext")" "$(paste -sd' ' "$f")"
	done
}

# record_in_section DOC SECT REC: puts the file REC at the end of the
# section SECT of DOC (before the next level-2 heading), creating the
# section at the end of DOC when it has none.
record_in_section() {
	local doc="$1" sect="$2" rec="$3"
	awk -v sect="$sect" -v rec="$rec" '
		function dump(   l) {
			if (!blank) print ""
			if (!found) { print sect; print "" }
			while ((getline l < rec) > 0) print l
			done = 1
		}
		$0 == sect { in_sect = 1; found = 1 }
		in_sect && /^## / && $0 != sect && !done { dump(); in_sect = 0 }
		{ print; blank = ($0 == "") }
		END { if (!done) dump() }
	' "$doc" >"$RES/doc.new"
	cat "$RES/doc.new" >"$doc"
	log "recorded in $doc"
}

# record SERIES VALUE: appends a value measured some other way (e.g. VmHWM).
record() { ((ROUND == 0)) || echo "$2" >>"$RES/$1"; }

# for_runs FUNC TOOL...: the warm-up round, then RUNS rounds; round r calls
# FUNC TOOL for each tool, starting at a different tool each round.
for_runs() {
	local fn="$1" n i k
	shift
	local tools=("$@")
	n=${#tools[@]}
	for ((ROUND = (WARMUP ? 0 : 1); ROUND <= RUNS; ROUND++)); do
		for ((k = 0; k < n; k++)); do
			i=$(((ROUND + k) % n))
			"$fn" "${tools[$i]}"
		done
		if ((ROUND == 0)); then log "  warm-up done"; else log "  run $ROUND/$RUNS done"; fi
	done
	ROUND=0
}

# median FILE: the median of the numbers in FILE, one a line; nan when there
# are none (or no FILE).
median() {
	[[ -s "$1" ]] || {
		echo nan
		return
	}
	LC_ALL=C sort -g "$1" | awk '{v[NR]=$1} END{if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'
}

maxof() { LC_ALL=C sort -g "$1" | tail -n1; }

# median of per-round ratios A/B: less noisy than the ratio of medians when the
# machine's speed drifts, since each round's runs are next to each other.
paired_ratio() {
	paste "$1" "$2" | awk '$2>0 {print $1/$2}' >"$RES/pair.tmp"
	median "$RES/pair.tmp"
}

note() { NOTES+=("$*"); }

# rsync_daemon_start DIR: rsync --daemon on 127.0.0.1, module "bench" -> DIR,
# under PIN_SERVER.
# Sets RS_PID and RS_PORT; retries with another port if the bind loses a race.
rsync_daemon_start() {
	local try i conf="$BD/rsyncd.conf" dir="$1"
	for ((try = 0; try < 5; try++)); do
		RS_PORT="$(free_port)"
		cat >"$conf" <<-EOF
			use chroot = no
			address = 127.0.0.1
			port = $RS_PORT
			log file = $RES/rsyncd.log
			transfer logging = no
			[bench]
			    path = $dir
			    read only = false
			    uid = $(id -u)
			    gid = $(id -g)
		EOF
		"${PIN_SERVER[@]+"${PIN_SERVER[@]}"}" rsync --daemon --no-detach --config="$conf" 2>>"$RES/rsyncd.log" &
		RS_PID=$!
		for ((i = 0; i < 100; i++)); do
			if rsync "rsync://127.0.0.1:$RS_PORT/" >/dev/null 2>&1; then
				return 0
			fi
			kill -0 "$RS_PID" 2>/dev/null || break
			sleep 0.05
		done
		stop_pid "$RS_PID"
		RS_PID=""
	done
	cat "$RES/rsyncd.log" >&2
	die "could not start rsync --daemon"
}

# agent_start HOST ROOT [FLAG...]: starts an agent (xfer serve) on HOST with
# a run-time port, serving ROOT, its pid added to PIDS and its stderr in
# $BD/res/serve-HOST.log.
agent_start() {
	local host="$1" root="$2"
	shift 2
	# Empty the log first: the child truncates it only once it runs, and
	# until then a reused log still names the previous agent.
	: >"$BD/res/serve-$host.log"
	"$XFER" serve --listen "$host:0" --root "$root" "$@" >/dev/null 2>"$BD/res/serve-$host.log" &
	PIDS+=($!)
}

# agent_addr HOST: the address the agent on HOST listens on, once it does
# (within 10 s).
agent_addr() {
	local log="$BD/res/serve-$1.log"
	for _ in $(seq 1 200); do
		if grep -q 'listening on' "$log"; then
			grep -o 'listening on [^ ]*' "$log" | head -n1 | awk '{print $3}'
			return
		fi
		sleep 0.05
	done
	die "xfer serve on $1 did not start: $(cat "$log")"
}

# agents_cleanup: a cleanup for scripts that start agents: stops those of
# PIDS and removes BD.
agents_cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -n "${BENCH_KEEP:-}" ]] || rm -rf "$BD"
}

# agent_balance FILE: the per-agent accounting of the --json summary that
# ends FILE, as "ADDR: N MiB, M files; ..." (nothing when the run was not a
# cluster run: one agent per side is a plain session).
agent_balance() {
	tail -n1 "$1" | { grep -o '"agents":{.*}' || true; } | sed 's/"agents"://; s/},"/}\n"/g' |
		sed -n 's/^{*"\([^"]*\)":{"bytes":\([0-9]*\),"files":\([0-9]*\).*/\1 \2 \3/p' |
		awk '{printf "%s%s: %d MiB, %d files", (NR>1?"; ":""), $1, $2/1048576, $3}'
}

# record_table SECTION COMMAND WHAT TABLE: prints TABLE; with BENCH_RECORD=1
# also records it in SECTION of docs/benchmarks.md under a heading with the
# date and the xfer version, with the exact COMMAND and WHAT was measured.
record_table() {
	echo "$4"
	[[ "${BENCH_RECORD:-}" == 1 ]] || return 0
	{
		echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — xfer $(git -C "$ROOT" describe --always --dirty 2>/dev/null)"
		echo
		echo "\`$2\` ($3)"
		echo
		echo "$4"
		echo
	} >"$RES/record.md"
	record_in_section "$ROOT/docs/benchmarks.md" "$1" "$RES/record.md"
}
