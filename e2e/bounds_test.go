package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestManySmallFilesFail: thousands of small files that the destination
// cannot create (a file system out of inodes). Their per-file errors used
// to overflow the 4 KiB verdict header: the data stream died, a few real
// errors came back, then a flood of "broken pipe", exit 3. Now verdicts
// come in pieces: every failing file is reported once with the real
// cause, the files that fit land, and the run ends with exit 1.
func TestManySmallFilesFail(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m,nr_inodes=200"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v): needs root", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
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
