# shellcheck shell=bash
# benchlib.sh: helpers the benchmark scripts share (sourced after lib.sh, not
# run). They use the caller's globals: BD and RES (work and result
# directories), RUNS and WARMUP (rounds), ROUND, NOTES, and die/log.

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

median() { LC_ALL=C sort -g "$1" | awk '{v[NR]=$1} END{if(NR==0){print "nan"} else if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }

maxof() { LC_ALL=C sort -g "$1" | tail -n1; }

# median of per-round ratios A/B: less noisy than the ratio of medians when the
# machine's speed drifts, since each round's runs are next to each other.
paired_ratio() {
	paste "$1" "$2" | awk '$2>0 {print $1/$2}' >"$RES/pair.tmp"
	median "$RES/pair.tmp"
}

note() { NOTES+=("$*"); }

# rsync_daemon_start DIR: rsync --daemon on 127.0.0.1, module "bench" -> DIR.
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
		rsync --daemon --no-detach --config="$conf" 2>>"$RES/rsyncd.log" &
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
