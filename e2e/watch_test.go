package e2e

import (
	"os"
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
	watch := startXfer(t, "sync", "--watch", "--watch-debounce", "200ms", src, s.url("w"), "-q")
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
	watch.cmd.Process.Signal(syscall.SIGINT)
	if r := watch.waitWithin(t, 10*time.Second); r.code != 0 {
		t.Errorf("--watch did not stop cleanly on SIGINT: %s", r)
	}
	sameTree(t, src, filepath.Join(s.root, "w"))
}
