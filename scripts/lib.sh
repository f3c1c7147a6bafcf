# shellcheck shell=bash
# lib.sh: helpers shared by scripts/demo.sh and, through benchlib.sh, the
# benchmark scripts (sourced, not run). Loopback only: every server binds
# 127.0.0.1.

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now. For
# servers that cannot bind port 0 and report it (rsync --daemon); callers
# retry when the bind still loses a race.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

# xfer_serve_start ROOT LOG [EXTRA FLAGS...]: starts `xfer serve` on
# 127.0.0.1:0 in the background and sets XS_PID and XS_ADDR (HOST:PORT, read
# from its "listening on ADDR" line on stderr). Needs $XFER; runs it under
# the command prefix SERVE_PREFIX (an array, e.g. taskset -c 1) if set.
xfer_serve_start() {
	local root="$1" log="$2" i
	shift 2
	mkdir -p "$root"
	# Empty the log first: the background child truncates it only once it
	# runs, and until then a reused log still names the previous server.
	: >"$log"
	"${SERVE_PREFIX[@]+"${SERVE_PREFIX[@]}"}" "$XFER" serve --listen 127.0.0.1:0 --root "$root" "$@" 2>"$log" &
	XS_PID=$!
	XS_ADDR=""
	for ((i = 0; i < 200; i++)); do
		XS_ADDR="$(sed -n 's/.*listening on \([0-9.]*:[0-9][0-9]*\).*/\1/p' "$log" | head -n1)"
		[[ -n "$XS_ADDR" ]] && return 0
		if ! kill -0 "$XS_PID" 2>/dev/null; then
			echo "xfer serve exited early:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "xfer serve did not print 'listening on ADDR' within 10 s:" >&2
	cat "$log" >&2
	kill "$XS_PID" 2>/dev/null || true
	return 1
}

# vm_hwm PID: peak resident set size of a live process in KiB (VmHWM).
vm_hwm() {
	awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true
}

# stop_pid PID: SIGTERM, then SIGKILL after 5 s; reaps it if it is our child.
stop_pid() {
	local pid="$1" i
	[[ -n "$pid" ]] || return 0
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# summary_field FILE NAME: field NAME of the last {"event":"summary",...}
# line of `xfer --json` output in FILE (numbers and plain strings only).
summary_field() {
	grep -E '"event": ?"summary"' "$1" | tail -n1 |
		sed -n "s/.*\"$2\": \{0,1\}\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# hash_tree DIR HASHCMD...: "HASH  relative/path" for every regular file
# under DIR, sorted, using a b3sum-compatible command.
hash_tree() {
	local dir="$1"
	shift
	(cd "$dir" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r "$@")
}
