package e2e

// Destinations that run out: of inodes, of space.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallTmpfs mounts a tmpfs with options (its size, its inodes) until the
// test ends; it skips the test where mounting is not allowed.
func smallTmpfs(t *testing.T, options string) string {
	t.Helper()
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, options); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v): needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt
}

// TestManySmallFilesFail: thousands of small files that the destination
// cannot create (a file system out of inodes). Their per-file errors used
// to overflow the 4 KiB verdict header: the data stream died, a few real
// errors came back, then a flood of "broken pipe", exit 3. Now verdicts
// come in pieces: every failing file is reported once with the real
// cause, the files that fit land, and the run ends with exit 1.
func TestManySmallFilesFail(t *testing.T) {
	mnt := smallTmpfs(t, "size=64m,nr_inodes=200")
	src := t.TempDir()
	const n = 3000
	for i := range n {
		name := fmt.Sprintf("dir%d/a-rather-long-file-name-so-that-errors-add-up-%05d.txt", i%3, i)
		must(t, os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755))
		must(t, os.WriteFile(filepath.Join(src, name), []byte(name), 0o644))
	}
	a := startServer(t, mnt)
	for _, tc := range []struct{ name, dst string }{
		{"local", filepath.Join(mnt, "local")},
		{"remote", a.url("remote")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := xfer(t, "copy", src, tc.dst)
			if r.code != 1 {
				t.Fatalf("want exit 1 (some files failed)\n%s", head(r.String(), 3000))
			}
			if strings.Contains(r.stderr, "broken pipe") || strings.Contains(r.stderr, "closed") {
				t.Errorf("the session broke down:\n%s", head(r.stderr, 3000))
			}
			landed := 0
			filepath.WalkDir(filepath.Join(mnt, tc.name), func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					landed++
				}
				return nil
			})
			seen := map[string]bool{}
			errors := 0
			for _, line := range strings.Split(r.stderr, "\n") {
				if !strings.HasPrefix(line, "xfer: ERROR ") {
					continue
				}
				path, msg, _ := strings.Cut(strings.TrimPrefix(line, "xfer: ERROR "), ": ")
				if strings.HasSuffix(path, ".txt") {
					errors++ // the others are directories
				}
				if seen[path] {
					t.Errorf("%s reported twice", path)
				}
				seen[path] = true
				if !strings.Contains(msg, "no space left on device") {
					t.Errorf("%s: want the real cause, got %q", path, msg)
				}
			}
			if landed == 0 || landed+errors != n {
				t.Errorf("%d files landed and %d errors, want %d in all\n%s", landed, errors, n, head(r.stderr, 2000))
			}
			if !strings.Contains(r.stdout, fmt.Sprintf("errors %d", len(seen))) {
				t.Errorf("the summary does not count %d errors:\n%s", len(seen), r.stdout)
			}
			os.RemoveAll(filepath.Join(mnt, tc.name))
		})
	}
}

// head is the start of s, for long outputs in failure messages.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n[...]"
}

// TestDiskFull: a destination that runs out of space gets a clear error
// naming the file, no partial file is left behind, and other files land.
func TestDiskFull(t *testing.T) {
	mnt := smallTmpfs(t, "size=8m")
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "small.txt"), []byte("fits"), 0o644))
	writeRandom(t, filepath.Join(src, "huge.bin"), 20<<20, 9)
	for _, remote := range []bool{false, true} {
		dst := filepath.Join(mnt, "local")
		if remote {
			a := startServer(t, mnt)
			dst = a.url("remote")
		}
		r := xfer(t, "copy", src, dst, "--chunk-size", "1M")
		if r.code != 1 || !strings.Contains(r.stderr, "huge.bin") || !strings.Contains(r.stderr, "no space left") {
			t.Errorf("remote=%v: want exit 1 naming huge.bin and the full disk\n%s", remote, r)
		}
		base := filepath.Join(mnt, "local")
		if remote {
			base = filepath.Join(mnt, "remote")
		}
		if b, err := os.ReadFile(filepath.Join(base, "small.txt")); err != nil || string(b) != "fits" {
			// The small file races the big one for the last free pages:
			// if it lost, it must say so, and once the big file's partial
			// data is gone there is room for it.
			if !strings.Contains(r.stderr, "small.txt") {
				t.Errorf("remote=%v: the small file neither landed nor was reported: %v\n%s", remote, err, r)
			}
			if r2 := xfer(t, "copy", src, dst, "--exclude", "huge.bin"); r2.code != 0 {
				t.Errorf("remote=%v: after the failed run the disk should have room again:\n%s", remote, r2)
			}
			if b, err := os.ReadFile(filepath.Join(base, "small.txt")); err != nil || string(b) != "fits" {
				t.Errorf("remote=%v: the small file did not land on the second run: %v", remote, err)
			}
		}
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if e.Name() != "small.txt" {
				t.Errorf("remote=%v: left behind %q", remote, e.Name())
			}
		}
		os.RemoveAll(base)
	}
}
