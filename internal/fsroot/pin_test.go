package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPin: a pinned inode keeps its handle whatever happens to its name;
// attributes change through the handle, not the name; a final symlink is
// pinned, not followed; names outside the root are refused.
func TestPin(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	must := fatalIf(t)
	must(os.WriteFile(outside, []byte("x"), 0o640))
	must(os.WriteFile(filepath.Join(base, "f"), []byte("f"), 0o600))
	must(os.Symlink(outside, filepath.Join(base, "link")))
	r := openRoot(t, base)

	p, err := r.Pin("f")
	must(err)
	defer p.Close()
	// Another file takes the name: the handle still has the first one.
	must(os.Rename(filepath.Join(base, "f"), filepath.Join(base, "moved")))
	must(os.WriteFile(filepath.Join(base, "f"), []byte("new"), 0o600))
	must(p.Chmod(0o4751))
	must(p.Chtimes(TimeOmit, 1_500_000_000_123_456_789))
	info, err := p.Info()
	must(err)
	moved, err := r.Lstat("moved")
	must(err)
	if info.Ino != moved.Ino || moved.Mode != 0o4751 || moved.MtimeNs != 1_500_000_000_123_456_789 {
		t.Errorf("pinned %+v, moved %+v", info, moved)
	}
	if now, _ := r.Lstat("f"); now.Mode != 0o600 {
		t.Errorf("the new file at the name changed: %o", now.Mode)
	}

	l, err := r.Pin("link")
	must(err)
	defer l.Close()
	if info, err := l.Info(); err != nil || info.Type != TypeSymlink {
		t.Errorf("Pin of a symlink: %+v %v", info, err)
	}
	if st, _ := os.Stat(outside); st.Mode().Perm() != 0o640 {
		t.Errorf("the symlink's target changed: %v", st.Mode())
	}
	if _, err := r.Pin("../x"); !errors.Is(err, ErrEscape) {
		t.Errorf("Pin(../x) = %v, want an escape error", err)
	}
}

// TestUnchanged: a rewrite with the mtime set back still counts as a change.
func TestUnchanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, _ := r.Lstat("f")
	if err := Unchanged(before, before); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("new content"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, st.ModTime(), st.ModTime())
	after, _ := r.Lstat("f")
	if after.MtimeNs != before.MtimeNs || after.Size != before.Size {
		t.Fatalf("set-up: mtime or size moved")
	}
	if err := Unchanged(before, after); !errors.Is(err, ErrChanged) {
		t.Errorf("Unchanged after a rewrite = %v, want ErrChanged", err)
	}
}
