#!/usr/bin/env bash
# deps.sh: install the Debian packages xfer's tests, demo and benchmarks use.
#
#   scripts/deps.sh            install what is missing (apt-get update only then)
#   scripts/deps.sh --check    only report what is missing; exit 1 if anything is
#
# Packages: libucx-dev ucx-utils (rdma build tag), pkg-config, rsync (bench peer
# and the differential tests), rclone (the differential tests),
# b3sum (reference BLAKE3; optional: skipped if the distribution lacks it),
# iperf3 (transport baseline), time (GNU time for peak RSS), openssh-client and
# openssh-server (the ssh:// end-to-end tests run a real sshd), attr and acl
# (setfattr/getfattr, setfacl/getfacl: the -X and -A differential tests).
# Non-interactive; as non-root it only reports and exits 0.
set -euo pipefail

REQUIRED=(libucx-dev ucx-utils pkg-config rsync rclone iperf3 time openssh-client openssh-server attr acl etcd-server)
OPTIONAL=(b3sum)

check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${REQUIRED[@]}" "${OPTIONAL[@]}"; do
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "deps: all present (${REQUIRED[*]} ${OPTIONAL[*]})"
	exit 0
fi

if ((check_only)); then
	echo "deps: missing: ${missing[*]}"
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: no apt-get here; install by hand: ${missing[*]} (skipping)" >&2
	exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
	echo "deps: not root; install by hand: sudo apt-get install ${missing[*]} (skipping)" >&2
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps: installing ${missing[*]}"
apt-get update -qq

want=()
for p in "${missing[@]}"; do
	# An optional package may not exist in this release (b3sum is in Debian 12,
	# not in every derivative); the benchmark then falls back to `xfer hash`.
	if [[ " ${OPTIONAL[*]} " == *" $p "* ]]; then
		cand="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
		if [[ -z "$cand" || "$cand" == "(none)" ]]; then
			echo "deps: optional package $p not available here; skipping"
			continue
		fi
	fi
	want+=("$p")
done

if ((${#want[@]})); then
	apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi
echo "deps: done"
