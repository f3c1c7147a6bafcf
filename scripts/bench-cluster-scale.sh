#!/usr/bin/env bash
# bench-cluster-scale.sh: how a cluster sync scales with 1, 2 and 4 agents
# per side when each agent is capped (xfer serve --bwlimit, standing in for
# one network interface per agent), on one machine: agents on loopback
# addresses 127.0.0.2-5 (source side, all serving one directory, as agents
# on a shared parallel file system would) and 127.0.0.6-9 (destination
# side), data on tmpfs. The cap is low enough that the CPUs are not the
# limit; the machine's CPU use during each run (all of it, and xfer's:
# agents and client) is reported to show it.
# Runs rotate (1, 2, 4 agents; 2, 4, 1; ...) into a fresh destination;
# medians are reported: aggregate throughput, its ratio to N x the
# 1-agent throughput (target: at least 0.9), and the balance of the last
# run with each N (bytes and files each agent carried, from the --json
# summary's per-agent accounting).
#
#   XFER=bin/xfer scripts/bench-cluster-scale.sh
#
# Needs GNU time (/usr/bin/time) and b3sum. Knobs: BENCH_SCALE_ETCD=1
# (agents register in a local etcd started on 127.0.0.1, and the remotes
# discover them there; the runs then go N after N), BENCH_RUNS=3,
# BENCH_SCALE_CAP=50M (per agent, each way), BENCH_SCALE_FILES=32 files of
# BENCH_SCALE_MIB=32 MiB, BENCH_TMP=/dev/shm, BENCH_RECORD=1 records the
# table in its section of docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench-cluster-scale
RUNS="${BENCH_RUNS:-3}"
CAP="${BENCH_SCALE_CAP:-50M}"
NFILES="${BENCH_SCALE_FILES:-32}"
MIB="${BENCH_SCALE_MIB:-32}"
ETCD="${BENCH_SCALE_ETCD:-}"
positive_int BENCH_RUNS "$RUNS"
positive_int BENCH_SCALE_FILES "$NFILES"
positive_int BENCH_SCALE_MIB "$MIB"
need_xfer

PIDS=() ETCD_PID=""
cleanup() {
	if [[ -n "$ETCD_PID" ]]; then kill "$ETCD_PID" 2>/dev/null || true; fi
	agents_cleanup
}
bench_workdir xfer-bench-cluster-scale

mkdir -p "$BD/A/t" "$BD/B"
log "data: $NFILES x $MIB MiB in $BD/A/t; every agent capped at $CAP/s each way"
for i in $(seq 1 "$NFILES"); do
	head -c "$((MIB << 20))" /dev/urandom >"$BD/A/t/large-$i.bin"
done

CFG="$BD/xfer.yaml"
if [[ -z "$ETCD" ]]; then
	SRC=() DST=()
	for i in 2 3 4 5; do agent_start "127.0.0.$i" "$BD/A" --bwlimit "$CAP"; done
	for i in 6 7 8 9; do agent_start "127.0.0.$i" "$BD/B" --bwlimit "$CAP"; done
	for i in 2 3 4 5; do SRC+=("\"$(agent_addr "127.0.0.$i")\""); done
	for i in 6 7 8 9; do DST+=("\"$(agent_addr "127.0.0.$i")\""); done
	# list N ADDR...: the first N addresses, comma-separated.
	list() {
		local n="$1"
		shift
		local IFS=,
		echo "${*:1:n}"
	}
	{
		echo "remotes:"
		for n in 1 2 4; do
			echo "  A$n: {agents: [$(list "$n" "${SRC[@]}")]}"
			echo "  B$n: {agents: [$(list "$n" "${DST[@]}")]}"
		done
	} >"$CFG"
else
	command -v etcd >/dev/null || die "BENCH_SCALE_ETCD=1 needs etcd (Debian's etcd-server)"
	cport=$(free_port)
	pport=$(free_port)
	EURL="http://127.0.0.1:$cport" PURL="http://127.0.0.1:$pport"
	etcd --name bench --data-dir "$BD/etcd" --listen-client-urls "$EURL" --advertise-client-urls "$EURL" \
		--listen-peer-urls "$PURL" --initial-advertise-peer-urls "$PURL" --initial-cluster "bench=$PURL" \
		>"$RES/etcd.log" 2>&1 &
	ETCD_PID=$!
	for _ in $(seq 1 100); do
		curl -fs "$EURL/health" >/dev/null && break
		sleep 0.1
	done
	curl -fs "$EURL/health" >/dev/null || die "etcd did not start: $(tail -n3 "$RES/etcd.log")"
	echo "remotes: {}" >"$CFG"
	for n in 1 2 4; do
		"$XFER" --config "$CFG" remote add "A$n" --etcd "$EURL" --cluster "src$n" >/dev/null
		"$XFER" --config "$CFG" remote add "B$n" --etcd "$EURL" --cluster "dst$n" >/dev/null
	done
fi

# members REMOTE: how many live members its cluster has.
members() { "$XFER" --config "$CFG" cluster ls "$1" 2>/dev/null | grep -c '^127\.0\.0\.' || true; }

# phase N: with BENCH_SCALE_ETCD, stops the agents of the last phase and
# starts N per side registered in clusters srcN and dstN, and waits until
# the remotes see them all.
phase() {
	local p i
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	for ((i = 0; i < $1; i++)); do
		agent_start "127.0.0.$((2 + i))" "$BD/A" --bwlimit "$CAP" --etcd "$EURL" --cluster "src$1"
		agent_start "127.0.0.$((6 + i))" "$BD/B" --bwlimit "$CAP" --etcd "$EURL" --cluster "dst$1"
	done
	for _ in $(seq 1 100); do
		if (($(members "A$1") == $1 && $(members "B$1") == $1)); then return; fi
		sleep 0.1
	done
	die "the agents of $1 per side did not all register in etcd"
}

# busy: the machine's busy and total CPU ticks so far (from /proc/stat),
# and the agents' own (user and system, from /proc/PID/stat).
busy() {
	local p agents=0
	for p in "${PIDS[@]}"; do
		agents=$((agents + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	awk -v a="$agents" '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8, a}' /proc/stat
}

# run N ROUND: one sync with N agents per side into a fresh destination;
# records the wall time, the machine's CPU use over it and the summary.
# --proto tcp: an automatic choice would measure transports through the
# capped agents first, which costs time and says nothing here.
run() {
	rm -rf "$BD/B/t"
	local t0 t1 c0 c1 out="$RES/run-$1-$2.json"
	c0=$(busy)
	t0=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$RES/client-cpu" \
		"$XFER" --config "$CFG" sync "A$1:/t" "B$1:/t" --proto tcp --chunk-size 4M --json >"$out"
	t1=$(date +%s.%N)
	c1=$(busy)
	grep -q '"errors":0' "$out" || die "run with $1 agents reported errors: $(tail -n1 "$out")"
	if [[ "$2" != warm ]]; then
		awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}' >>"$RES/time-$1"
		echo "$c0 $c1" | awk '{print 100 * ($4 - $1) / ($5 - $2)}' >>"$RES/cpu-$1"
		# xfer's own: the agents' ticks and the client's seconds, as a
		# share of the machine's (total ticks over the run).
		echo "$c0 $c1 $(cat "$RES/client-cpu")" |
			awk -v hz="$(getconf CLK_TCK)" '{print 100 * (($6 - $3) + hz * ($7 + $8)) / ($5 - $2)}' >>"$RES/xcpu-$1"
	fi
}

if [[ -n "$ETCD" ]]; then
	# Agents are in one cluster each: N after N, a warm-up run first.
	for n in 1 2 4; do
		phase "$n"
		run "$n" warm
		for r in $(seq 1 "$RUNS"); do run "$n" "$r"; done
		log "$n agent(s) per side done"
	done
fi
[[ -n "$ETCD" ]] || run 4 warm
for r in $(seq 1 "$RUNS"); do
	[[ -z "$ETCD" ]] || break
	case $((r % 3)) in
	1) order="1 2 4" ;;
	2) order="2 4 1" ;;
	0) order="4 1 2" ;;
	esac
	for n in $order; do run "$n" "$r"; done
	log "run $r/$RUNS done"
done
# The last run's tree must match the source.
(cd "$BD/A/t" && find . -type f -exec b3sum {} + | sort) >"$RES/src.sum"
(cd "$BD/B/t" && find . -type f ! -name ".xfer-*" -exec b3sum {} + | sort) >"$RES/dst.sum"
cmp -s "$RES/src.sum" "$RES/dst.sum" || die "destination differs from the source"

total_mib=$((NFILES * MIB))
calc() { awk "BEGIN{print $1}"; }
m1=$(median "$RES/time-1")
t1=$(calc "$total_mib / $m1")
rows="" balances="" verdict=""
for n in 1 2 4; do
	m=$(median "$RES/time-$n")
	tn=$(calc "$total_mib / $m")
	ratio=$(calc "$tn / ($n * $t1)")
	rows+="| $n | $(printf %.2f "$m") | $(printf %.1f "$tn") | $(printf %.1f "$(calc "$n * $t1")") | $(printf %.2f "$ratio") | $(printf %.0f "$(median "$RES/cpu-$n")")% | $(printf %.0f "$(median "$RES/xcpu-$n")")% |"$'\n'
	b=$(agent_balance "$RES/run-$n-$RUNS.json")
	balances+="- $n agent(s) per side: ${b:-one session between the two agents: every byte through each (a single-agent remote is a plain session, without per-agent accounting)}"$'\n'
	if awk -v r="$ratio" 'BEGIN{exit !(r < 0.9)}'; then verdict+=" $n agents: $(printf %.2f "$ratio") x N (below 0.9);"; fi
done
[[ -n "$verdict" ]] || verdict=" every N reached at least 0.9 x N x one agent."

table=$(
	cat <<EOF
| agents per side | median s (${RUNS} runs) | MiB/s | N x one agent | ratio | machine CPU busy | of it xfer's |
|---|---|---|---|---|---|---|
${rows%$'\n'}

Target 0.9 x N x one agent:${verdict}

Balance (bytes and files each agent carried, source and destination agents, last run of each N):
${balances%$'\n'}
EOF
)
how="static agent lists"
[[ -z "$ETCD" ]] || how="remotes discovered in etcd"
record_table "## Cluster scaling with capped agents (issue 15)" \
	"${ETCD:+BENCH_SCALE_ETCD=1 }BENCH_RUNS=$RUNS BENCH_SCALE_CAP=$CAP BENCH_SCALE_FILES=$NFILES BENCH_SCALE_MIB=$MIB XFER=bin/xfer scripts/bench-cluster-scale.sh" \
	"$NFILES x $MIB MiB, tmpfs, $(nproc) cores, every agent capped at $CAP/s each way, $how" "$table"
