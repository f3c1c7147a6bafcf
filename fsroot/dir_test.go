package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDir(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(base, "a/b"), 0o755))
	must(os.Symlink(outside, filepath.Join(base, "a/out")))
	r, err := Open(base)
	must(err)
	defer r.Close()
	d, err := r.OpenDir("a/b")
	must(err)
	defer d.Close()
	f, err := d.OpenFile("x.part", os.O_WRONLY|os.O_CREATE, 0o600)
	must(err)
	f.Write([]byte("hi"))
	f.Close()
	must(d.Rename("x.part", "x"))
	if b, err := os.ReadFile(filepath.Join(base, "a/b/x")); err != nil || string(b) != "hi" {
		t.Fatalf("rename within a Dir: %q %v", b, err)
	}
	for _, bad := range []string{"", ".", "..", "../x", "y/z", "n\x00ul"} {
		if _, err := d.OpenFile(bad, os.O_WRONLY|os.O_CREATE, 0o600); !errors.Is(err, ErrEscape) {
			t.Errorf("OpenFile(%q) = %v, want an escape error", bad, err)
		}
		if err := d.Rename("x", bad); !errors.Is(err, ErrEscape) {
			t.Errorf("Rename to %q = %v", bad, err)
		}
	}
	if _, err := r.OpenDir("a/out"); err == nil {
		t.Error("OpenDir followed a symlink out of the root")
	}
	if _, err := r.OpenDir("../x"); !errors.Is(err, ErrEscape) {
		t.Errorf("OpenDir(../x) = %v", err)
	}
	must(os.Symlink(filepath.Join(outside, "f"), filepath.Join(base, "a/b/link")))
	if _, err := d.OpenFile("link", os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		t.Error("OpenFile followed a final symlink")
	}
	must(d.Remove("x"))
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside: %v", entries)
	}
}
