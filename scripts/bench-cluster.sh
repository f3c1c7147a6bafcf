#!/usr/bin/env bash
# bench-cluster.sh: cluster sync with 2 agents per side against 1 agent per
# side, on one machine (loopback addresses 127.0.0.2-5, data on tmpfs).
# Every agent of a side serves the same directory, as agents on a shared
# parallel file system would. Runs alternate (1 agent, 2 agents, 2, 1, ...)
# into a fresh destination; medians are reported, with how the bytes were
# balanced over the agents.
#
#   XFER=bin/xfer scripts/bench-cluster.sh
#
# Knobs: BENCH_RUNS=5, BENCH_CLUSTER_FILES=32 files of BENCH_CLUSTER_MIB=32 MiB
# plus BENCH_CLUSTER_SMALL=2000 files of 4 KiB, BENCH_TMP=/dev/shm,
# BENCH_RECORD=1 appends the table to docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
bench_init bench-cluster
RUNS="${BENCH_RUNS:-5}"
NFILES="${BENCH_CLUSTER_FILES:-32}"
MIB="${BENCH_CLUSTER_MIB:-32}"
NSMALL="${BENCH_CLUSTER_SMALL:-2000}"
need_xfer

PIDS=()
cleanup() { agents_cleanup; }
bench_workdir xfer-bench-cluster

mkdir -p "$BD/A/t" "$BD/B"
log "data: $NFILES x $MIB MiB + $NSMALL x 4 KiB in $BD/A/t"
for i in $(seq 1 "$NFILES"); do
	head -c "$((MIB << 20))" /dev/urandom >"$BD/A/t/large-$i.bin"
done
mkdir -p "$BD/A/t/small"
for i in $(seq 1 "$NSMALL"); do
	head -c 4096 /dev/urandom >"$BD/A/t/small/f$i"
done

agent_start 127.0.0.2 "$BD/A"
agent_start 127.0.0.3 "$BD/A"
agent_start 127.0.0.4 "$BD/B"
agent_start 127.0.0.5 "$BD/B"
a1=$(agent_addr 127.0.0.2)
a2=$(agent_addr 127.0.0.3)
b1=$(agent_addr 127.0.0.4)
b2=$(agent_addr 127.0.0.5)
CFG="$BD/xfer.yaml"
cat >"$CFG" <<EOF
remotes:
  A1: {agents: ["$a1"]}
  B1: {agents: ["$b1"]}
  A2: {agents: ["$a1", "$a2"]}
  B2: {agents: ["$b1", "$b2"]}
EOF

# run N: one sync with N agents per side into a fresh destination; records
# the wall time and the summary.
run() {
	rm -rf "$BD/B/t"
	local t0 t1 out="$BD/res/run-$1-$2.json"
	t0=$(date +%s.%N)
	"$XFER" --config "$CFG" sync "A$1:/t" "B$1:/t" --json >"$out"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}' >>"$BD/res/time-$1"
	grep -q '"errors":0' "$out" || die "run with $1 agents reported errors: $(tail -n1 "$out")"
}

run 1 warm
run 2 warm
rm -f "$BD/res"/time-*
for r in $(seq 1 "$RUNS"); do
	if ((r % 2)); then
		run 1 "$r"
		run 2 "$r"
	else
		run 2 "$r"
		run 1 "$r"
	fi
done
# The last 2-agent run's tree must match the source.
(cd "$BD/A/t" && find . -type f -exec b3sum {} + 2>/dev/null | sort) >"$BD/res/src.sum" || true
if [[ -s "$BD/res/src.sum" ]]; then
	(cd "$BD/B/t" && find . -type f ! -name ".xfer-*" -exec b3sum {} + | sort) >"$BD/res/dst.sum"
	cmp -s "$BD/res/src.sum" "$BD/res/dst.sum" || die "destination differs from the source"
fi

m1=$(median "$BD/res/time-1")
m2=$(median "$BD/res/time-2")
total_mib=$((NFILES * MIB + NSMALL * 4 / 1024))
calc() { awk "BEGIN{print $1}"; }
speedup=$(calc "$m1 / $m2")
last2="$BD/res/run-2-$RUNS.json"
balance=$(agent_balance "$last2")

table=$(
	cat <<EOF
| agents per side | median s (${RUNS} runs) | MiB/s | vs 1 agent |
|---|---|---|---|
| 1 | $(printf %.3f "$m1") | $(printf %.0f "$(calc "$total_mib / $m1")") | 1.00x |
| 2 | $(printf %.3f "$m2") | $(printf %.0f "$(calc "$total_mib / $m2")") | $(printf %.2f "$speedup")x |

Balance of the last 2-agent run (bytes and files each agent carried): $balance.
EOF
)
record_table "## Cluster agents (issue 6)" "BENCH_RUNS=$RUNS XFER=bin/xfer scripts/bench-cluster.sh" \
	"$NFILES x $MIB MiB + $NSMALL x 4 KiB, tmpfs, $(nproc) cores" "$table"
