package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSyncWatch: `xfer sync --watch` keeps the destination in step with
// changes at the source until it is interrupted.
func TestSyncWatch(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "first"), []byte("1"), 0o644))
	s := startServer(t, t.TempDir())
	cmd := exec.Command(xferBin, "sync", "--watch", "--watch-debounce", "200ms", src, s.url("w"), "-q")
	cmd.Env = baseEnv(t)
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(s.root, "w", p)); return err == nil }
	waitFor("the first pass", func() bool { return exists("first") })
	must(t, os.MkdirAll(filepath.Join(src, "new/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "new/sub/file"), []byte("2"), 0o644))
	waitFor("a file in a new directory", func() bool { return exists("new/sub/file") })
	must(t, os.Remove(filepath.Join(src, "first")))
	waitFor("a deletion", func() bool { return !exists("first") })
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("--watch did not stop cleanly on SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--watch did not stop on SIGINT")
	}
	sameTree(t, src, filepath.Join(s.root, "w"))
}
