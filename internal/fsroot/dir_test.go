package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDir(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	must := fatalIf(t)
	must(os.MkdirAll(filepath.Join(base, "a/b"), 0o755))
	must(os.Symlink(outside, filepath.Join(base, "a/out")))
	r, d := openDir(t, base, "a/b")
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

func TestDirTemp(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(base, "a/out")); err != nil {
		t.Fatal(err)
	}
	r, d := openDir(t, base, "a")
	fd, err := d.CreateTemp(0o600)
	if TempUnsupported(err) {
		t.Skipf("no O_TMPFILE here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Write(fd, []byte("hi"))
	if entries, _ := os.ReadDir(filepath.Join(base, "a")); len(entries) != 1 {
		t.Fatalf("an unnamed file shows in its directory: %v", entries)
	}
	for _, c := range []struct {
		name string
		want error // nil: links
	}{
		{"x", nil},
		{"x", unix.EEXIST},   // never replaces
		{"out", unix.EEXIST}, // nor a symlink, nor follows it
		{"", ErrEscape},
		{".", ErrEscape},
		{"..", ErrEscape},
		{"../x", ErrEscape},
		{"out/x", ErrEscape},
		{"n\x00ul", ErrEscape},
		{"y", nil}, // a second name for the same file
	} {
		err := d.LinkTemp(fd, c.name)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("LinkTemp(%q) = %v, want %v", c.name, err, c.want)
		}
	}
	for _, n := range []string{"a/x", "a/y"} {
		if b, err := os.ReadFile(filepath.Join(base, n)); err != nil || string(b) != "hi" {
			t.Errorf("%s: %q %v", n, b, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside: %v", entries)
	}
	// Closed unnamed, a file leaves nothing behind.
	fd2, err := d.CreateTemp(0o600)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(fd2, []byte("gone"))
	unix.Close(fd2)
	if entries, _ := os.ReadDir(filepath.Join(base, "a")); len(entries) != 3 {
		t.Errorf("entries after discarding an unnamed file: %v", entries)
	}
	// A directory handle on a symlink out of the root is refused, so no
	// unnamed file can be made there.
	if _, err := r.OpenDir("a/out"); err == nil {
		t.Error("OpenDir followed a symlink out of the root")
	}
}

func TestDirReadFile(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("no"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(base, "a/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "a/f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(base, "a/link")); err != nil {
		t.Fatal(err)
	}
	_, d := openDir(t, base, "a")
	for _, c := range []struct {
		name string
		buf  int
		want string
		err  error
	}{
		{"f", 16, "hello", nil},
		{"f", 3, "hel", nil}, // up to the buffer; Info says the size
		{"f", 0, "", nil},
		{"link", 16, "", unix.ELOOP},
		{"sub", 16, "", unix.EISDIR},
		{"missing", 16, "", unix.ENOENT},
		{"..", 16, "", ErrEscape},
		{"../a/f", 16, "", ErrEscape},
		{"", 16, "", ErrEscape},
	} {
		buf := make([]byte, c.buf)
		n, info, err := d.ReadFile(c.name, buf, nil)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("ReadFile(%q) = %v, want %v", c.name, err, c.err)
			}
			continue
		}
		if err != nil || string(buf[:n]) != c.want || info.Size != 5 || info.Type != TypeFile {
			t.Errorf("ReadFile(%q, %d) = %q %+v %v", c.name, c.buf, buf[:n], info, err)
		}
	}
}

// TestDirReadFileListed: given what a walk listed, ReadFile fails with
// ErrChanged for a file that changed in any way since (content, size,
// attributes, an mtime set back, another file in its place), reads one
// that did not, and reads a FIFO put in a file's place as empty at once
// instead of waiting for a writer.
func TestDirReadFileListed(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(t *testing.T, p string) // t.Fatal on failure
		changed bool
	}{
		{"unchanged", func(*testing.T, string) {}, false},
		{"rewritten, mtime set back", func(t *testing.T, p string) {
			st, _ := os.Stat(p)
			mustWrite(t, p, "HELLO")
			fatalIf(t)(os.Chtimes(p, st.ModTime(), st.ModTime()))
		}, true},
		{"chmod", func(t *testing.T, p string) { fatalIf(t)(os.Chmod(p, 0o600)) }, true},
		{"grown", func(t *testing.T, p string) { mustWrite(t, p, "hello, world") }, true},
		{"replaced", func(t *testing.T, p string) {
			mustWrite(t, p+".new", "hello")
			fatalIf(t)(os.Rename(p+".new", p))
		}, true},
		{"fifo", func(t *testing.T, p string) {
			fatalIf(t)(os.Remove(p))
			fatalIf(t)(unix.Mkfifo(p, 0o644))
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			must := fatalIf(t)
			base := t.TempDir()
			p := filepath.Join(base, "f")
			mustWrite(t, p, "hello")
			r := openRoot(t, base)
			listed, err := r.Lstat("f")
			must(err)
			time.Sleep(10 * time.Millisecond) // a later ctime, even on coarse clocks
			c.change(t, p)
			d, err := r.OpenDir("")
			must(err)
			defer d.Close()
			done := make(chan struct{})
			var n int
			go func() {
				defer close(done)
				n, _, err = d.ReadFile("f", make([]byte, 5), &listed)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			if got := errors.Is(err, ErrChanged); got != c.changed {
				t.Fatalf("ReadFile after %s: %d bytes, err %v; want changed=%v", c.name, n, err, c.changed)
			}
			if !c.changed && n != 5 {
				t.Fatalf("read %d bytes of 5", n)
			}
		})
	}
}

// TestOpenFIFO: Root.Open of a FIFO (a source file replaced by one after
// the walk) returns at once instead of waiting for a writer, and what it
// opened says it is no regular file.
func TestOpenFIFO(t *testing.T) {
	must := fatalIf(t)
	base := t.TempDir()
	must(unix.Mkfifo(filepath.Join(base, "f"), 0o644))
	r := openRoot(t, base)
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := r.Open("f")
		done <- result{f, err}
	}()
	select {
	case res := <-done:
		must(res.err)
		defer res.f.Close()
		info, err := InfoFromFile(res.f)
		must(err)
		if info.Type == TypeFile {
			t.Fatalf("a FIFO opened as a regular file: %+v", info)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Root.Open blocked on a FIFO")
	}
}

// openRoot opens base as a root, closed when the test ends.
func openRoot(t *testing.T, base string) *Root {
	t.Helper()
	r, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openDir opens base as a root and its directory rel, both closed when
// the test ends.
func openDir(t *testing.T, base, rel string) (*Root, *Dir) {
	t.Helper()
	r := openRoot(t, base)
	d, err := r.OpenDir(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return r, d
}

// fatalIf returns a function that ends the test at the first error it is
// given.
func fatalIf(t *testing.T) func(error) {
	return func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}
