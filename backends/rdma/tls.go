//go:build rdma && cgo

package rdma

import (
	"os"
	"strings"
)

// singleCopy reports whether t is one of UCX's single-copy shared-memory
// transports: a receiver reads the sender's memory in place
// (process_vm_readv, a kernel module), and UCX aborts the process when that
// memory is gone (the peer closed or died mid-message), which a mover
// serving many clients must not risk. The copy-based shared-memory
// transports (posix, sysv) keep every byte in segments both sides map, and
// measured faster here anyway (docs/benchmarks.md).
func singleCopy(t string) bool { return t == "cma" || t == "knem" || t == "xpmem" }

// presentSingleCopy lists the single-copy transports this host could offer:
// cma always (a Linux system call), knem and xpmem only where their kernel
// module's device exists. A negated UCX_TLS that names a transport UCX does
// not have makes UCX print a warning at every context, so the exclusion
// names only these.
func presentSingleCopy() []string {
	out := []string{"cma"}
	for _, t := range []string{"knem", "xpmem"} {
		if _, err := os.Stat("/dev/" + t); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// allowedTLS returns the UCX_TLS value xfer gives its UCP context for the
// user's value tls: the same transports less the single-copy ones, of which
// present are the ones this host has (presentSingleCopy). The aliases sm
// and shm stand for posix and sysv; unset or "all" allows everything else.
func allowedTLS(tls string, present []string) string {
	tls = strings.TrimSpace(tls)
	exclude := strings.Join(present, ",")
	if tls == "" || tls == "all" {
		return "^" + exclude
	}
	if rest, ok := strings.CutPrefix(tls, "^"); ok {
		// The user's exclusions, less the single-copy ones, which
		// the host's own list replaces.
		var keep []string
		for _, t := range strings.Split(rest, ",") {
			if t = strings.TrimSpace(t); t != "" && !singleCopy(t) {
				keep = append(keep, t)
			}
		}
		return "^" + strings.Join(append(keep, present...), ",")
	}
	var out []string
	seen := map[string]bool{}
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, t := range strings.Split(tls, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "" || singleCopy(t):
		case t == "all":
			return "^" + exclude
		case t == "sm" || t == "shm":
			add("posix")
			add("sysv")
		default:
			add(t)
		}
	}
	if len(out) == 0 {
		// Only single-copy transports were asked for: allow none
		// but loopback, and Open says that no transport reaches the peer.
		return "self"
	}
	return strings.Join(out, ",")
}

// laneTransports extracts the transport names, in order of first
// appearance, from ucp_ep_print_info's lines such as
// "#    lane[0]:  3:posix/memory.0 md[1] -> md[1]/posix/sysdev[255] am am_bw#0".
func laneTransports(info string) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, "lane[")
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		// f[0] is "N:name/device".
		_, tl, _ := strings.Cut(f[0], ":")
		name, _, _ := strings.Cut(tl, "/")
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}
