package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRdmaSharedMemory: with UCX_TLS naming UCX's shared-memory transports
// (a client and a server on one node, as under an HPC module system that
// sets UCX_TLS), --proto rdma copies over shared memory, verified, both
// ways, and a repeat changes nothing. cma is in the list on purpose: xfer
// leaves it out, since UCX aborts a process whose cma read meets memory that
// went away, and a client killed mid-copy must leave the server serving; a
// server killed mid-copy makes the client fail promptly with a clear error.
func TestRdmaSharedMemory(t *testing.T) {
	if !slices.Contains(usableTransports(t), "rdma") {
		t.Skip("rdma is not usable in this build")
	}
	t.Setenv("UCX_TLS", "posix,sysv,cma,self")
	t.Setenv("UCX_NET_DEVICES", "all")
	src := oddSource(t)
	writeRandom(t, filepath.Join(src, "big/second.bin"), 9<<20+3, 4)
	s := startServer(t, t.TempDir())
	for run := 1; run <= 2; run++ {
		r := xfer(t, "copy", src, s.url("d"), "--proto", "rdma", "--json", "--chunk-size", "1M")
		if r.code != 0 {
			t.Fatalf("push %d over rdma (shared memory): %s", run, r)
		}
		_, sum := jsonRun(t, r)
		if sum.Proto != "rdma" {
			t.Errorf("push %d: summary proto %q, want rdma", run, sum.Proto)
		}
		if run == 2 && (sum.FilesTransferred != 0 || sum.BytesSent != 0) {
			t.Errorf("second push changed something: %+v", sum)
		}
		sameTree(t, src, filepath.Join(s.root, "d"))
	}
	back := filepath.Join(t.TempDir(), "back")
	if r := xfer(t, "copy", s.url("d"), back, "--proto", "rdma"); r.code != 0 {
		t.Fatalf("pull over rdma (shared memory): %s", r)
	}
	sameTree(t, src, back)

	// Slowed by --bwlimit, so that the kills land mid-copy.
	big := t.TempDir()
	writeRandom(t, filepath.Join(big, "big.bin"), 256<<20, 8)
	copyArgs := func(dst string) []string {
		return []string{"copy", big, dst, "--proto", "rdma", "--bwlimit", "100M", "--chunk-size", "1M"}
	}
	for _, after := range []time.Duration{300 * time.Millisecond, 900 * time.Millisecond} {
		run := startXfer(t, copyArgs(s.url("k"))...)
		time.Sleep(after)
		run.kill()
		if _, err := os.Stat(filepath.Join(s.root, "k/big.bin")); err == nil {
			t.Fatalf("the copy ended before the kill at %v", after)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if !s.alive() {
		t.Fatalf("the server died with its client:\n%s", s.logs)
	}
	if r := xfer(t, "copy", big, s.url("k"), "--proto", "rdma"); r.code != 0 {
		t.Fatalf("copy after the killed clients: %s", r)
	}
	sameTree(t, big, filepath.Join(s.root, "k"))

	s2 := startServer(t, t.TempDir())
	run := startXfer(t, copyArgs(s2.url("k"))...)
	time.Sleep(500 * time.Millisecond)
	s2.cmd.Process.Signal(syscall.SIGKILL)
	start := time.Now()
	r := run.waitWithin(t, 60*time.Second)
	t.Logf("client ended %v after the server was killed: exit %d: %s", time.Since(start).Round(time.Millisecond), r.code, strings.TrimSpace(r.stderr))
	if r.code == 0 {
		t.Fatalf("the copy succeeded with its server killed: %s", r)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("Go-internal text in the client's error: %s", r.stderr)
	}
}

// TestRdmaLogsOnStderr: UCX prints its warnings to stdout unless told
// otherwise, and stdout is where --json events go. With a UCX_TLS that
// makes UCX warn (a transport this host lacks, and the automatic choice
// measuring every transport including rdma), stdout stays one JSON event per
// line and the warning reaches stderr as one line that says it is UCX's.
func TestRdmaLogsOnStderr(t *testing.T) {
	if !slices.Contains(usableTransports(t), "rdma") {
		t.Skip("rdma is not usable in this build")
	}
	t.Setenv("UCX_TLS", "^nosuchtransport")
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "a.bin"), 3<<20, 5)
	s := startServer(t, t.TempDir())
	for _, proto := range []string{"rdma", "auto"} {
		r := xfer(t, "copy", src, s.url(proto), "--proto", proto, "--json")
		if r.code != 0 {
			t.Fatalf("copy --proto %s: %s", proto, r)
		}
		jsonRun(t, r)
		if proto == "rdma" && !strings.Contains(r.stderr, "xfer: UCX WARN: transport 'nosuchtransport' is not available") {
			t.Errorf("copy --proto rdma: UCX's warning is not on stderr:\n%s", r)
		}
		sameTree(t, src, filepath.Join(s.root, proto))
	}
}
