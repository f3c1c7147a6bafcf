package e2e

// Trees the tests write (the odd tree, files of pseudo-random bytes) and
// compare (snapshots of types, contents, modes, mtimes and link targets).

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/pattern"
)

// node is what a tree comparison looks at.
type node struct {
	Type   string
	Mode   fs.FileMode
	Mtime  int64
	Size   int64
	Sum    string
	Target string
}

// snapshot walks dir without following symlinks: what a plain comparison
// looks at of every entry beneath it.
func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	tree := scanTree(t, dir)
	if tree == nil {
		t.Fatalf("walking %s: no such directory", dir)
	}
	out := nodes(tree)
	delete(out, ".")
	delete(out, "./")
	return out
}

// nodes is what a plain comparison looks at of each entry of tree: the
// content of files, the mtimes of files and directories, the modes of all
// but symlinks, and the targets of symlinks. Fifos count as "other".
func nodes(tree ftree) map[string]node {
	out := make(map[string]node, len(tree))
	for p, f := range tree {
		n := node{Type: f.Type, Mode: fileMode(f.Mode)}
		switch f.Type {
		case "file":
			n.Size, n.Mtime, n.Sum = f.Size, f.Mtime, f.Sum
		case "dir":
			n.Mtime = f.Mtime
		case "symlink":
			n.Mode, n.Target = 0, f.Target
		default:
			n.Type = "other"
		}
		out[p] = n
	}
	return out
}

// fileMode is the permission and set-id bits of st_mode as a FileMode.
func fileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	for bit, flag := range map[uint32]fs.FileMode{unix.S_ISUID: fs.ModeSetuid, unix.S_ISGID: fs.ModeSetgid, unix.S_ISVTX: fs.ModeSticky} {
		if m&bit != 0 {
			fm |= flag
		}
	}
	return fm
}

// walkBelow calls fn for every entry beneath dir (not dir itself), with
// its path relative to dir, without following symlinks.
func walkBelow(t *testing.T, dir string, fn func(rel, p string) error) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		return fn(rel, p)
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
}

// sameTree fails the test unless got holds exactly what want holds: types,
// content, modes, mtimes and symlink targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := snapshot(t, want), snapshot(t, got)
	for p, wn := range w {
		if wn.Type == "other" {
			continue
		}
		gn, ok := g[p]
		if !ok {
			t.Errorf("%q missing at the destination", p)
			continue
		}
		if wn != gn {
			t.Errorf("%q differs:\n want %+v\n  got %+v", p, wn, gn)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%q at the destination but not at the source", p)
		}
	}
}

// oddTree makes a tree with the names and entries that trip copy tools up.
func oddTree(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"plain.txt":                "hello\n",
		"with space.txt":           "space",
		"ünïcødé/日本語.txt":          "unicode",
		"new\nline":                "newline in the name",
		"deep/a/b/c/d/e.txt":       "deep",
		"empty-file":               "",
		"dash-name/file":           "x",
		"dash/file":                "y",
		"-leading-dash":            "z",
		"exactly4096":              strings.Repeat("q", 4096),
		"big/multi-chunk.bin":      "", // filled below
		"mode/private":             "secret",
		"mode/exec.sh":             "#!/bin/sh\n",
		"pct%20and#hash?and*star":  "glob chars",
		"back\\slash":              "backslash",
		"tab\tname":                "tab",
		"trailing.dot.":            "dot",
		"UPPER/lower/MiXeD.txt":    "case",
		"link-target-dir/inner.md": "inner",
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRandom(t, filepath.Join(dir, "big/multi-chunk.bin"), 5<<20+12345, 1)
	must(t, os.Chmod(filepath.Join(dir, "mode/private"), 0o600))
	must(t, os.Chmod(filepath.Join(dir, "mode/exec.sh"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "ro-dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "ro-dir/f"), []byte("in a read-only dir"), 0o444))
	must(t, os.Chmod(filepath.Join(dir, "ro-dir"), 0o555))
	must(t, os.MkdirAll(filepath.Join(dir, "sticky"), 0o755))
	// A real sticky bit (os.Chmod ignores 0o1000), on modes that a server's
	// default umask (022) leaves alone.
	must(t, os.Chmod(filepath.Join(dir, "sticky"), os.ModeSticky|0o755))
	must(t, os.Symlink("plain.txt", filepath.Join(dir, "rel-link")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link-outside")))
	must(t, os.Symlink("../../outside/of/tree", filepath.Join(dir, "dangling-escape")))
	must(t, os.Symlink("link-target-dir", filepath.Join(dir, "dir-link")))
	// A fixed, old mtime on one file, to see mtimes preserved exactly.
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "plain.txt"), old, old))
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro-dir"), 0o755) })
}

// oddSource is a new directory holding the odd tree.
func oddSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	oddTree(t, src)
	return src
}

// fileTree is a new directory holding files (path: content, mode 0644),
// with the directories they need.
func fileTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644))
	}
	return dir
}

// writePrivate writes content to a new file name (mode 0600) in a
// directory of its own and returns its path.
func writePrivate(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// writeRandom writes n pseudo-random bytes (deterministic per seed).
func writeRandom(t *testing.T, path string, n int64, seed uint64) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	_, err = io.CopyN(f, pattern.NewStream(seed), n)
	must(t, err)
}
