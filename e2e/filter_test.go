package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFilters: --exclude/--include select what moves, excluded entries at
// the destination survive a sync, and size limits skip files.
func TestFilters(t *testing.T) {
	src := fileTree(t, map[string]string{
		"keep.txt": "k", "skip.log": "s", "logs/a.log": "a", "logs/important.log": "i",
		"cache/x": "x", "big.bin": string(make([]byte, 20000)), "sub/keep.txt": "k2",
	})
	s := startServer(t, t.TempDir())
	dst := filepath.Join(s.root, "d")
	must(t, os.MkdirAll(filepath.Join(dst, "cache"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "cache/precious"), []byte("p"), 0o644))
	r := xfer(t, "sync", src, s.url("d"), "--include", "important.log", "--exclude", "*.log",
		"--exclude", "/cache/", "--max-size", "10K")
	if r.code != 0 {
		t.Fatal(r)
	}
	for p, want := range map[string]bool{
		"keep.txt": true, "sub/keep.txt": true, "logs/important.log": true,
		"skip.log": false, "logs/a.log": false, "cache/x": false, "big.bin": false,
		"cache/precious": true, // excluded at the destination: kept by sync
	} {
		_, err := os.Stat(filepath.Join(dst, p))
		if got := err == nil; got != want {
			t.Errorf("%s present = %v, want %v\n%s", p, got, want, r)
		}
	}
	if r := xfer(t, "copy", src, s.url("e"), "--include", "[unterminated"); r.code != 2 {
		t.Errorf("a bad pattern: %s", r)
	}
}
