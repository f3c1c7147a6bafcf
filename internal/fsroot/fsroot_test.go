package fsroot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// env is a test layout: base/root is the Root; base/outside holds canaries
// that no operation on the Root may ever touch; base/besideroot is a canary
// file next to the root.
type env struct {
	base, rootDir, outside string
	r                      *Root
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir())
}

// shmTempDir returns a temporary directory on tmpfs if /dev/shm is usable,
// to keep metadata-heavy tests fast, and t.TempDir() otherwise.
func shmTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "fsroot-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newEnvIn(t *testing.T, base string) *env {
	t.Helper()
	e := &env{base: base, rootDir: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	mustMkdir(t, e.rootDir)
	mustMkdir(t, e.outside)
	mustMkdir(t, filepath.Join(e.outside, "canarydir"))
	mustWrite(t, filepath.Join(e.outside, "canary"), "canary")
	mustWrite(t, filepath.Join(e.outside, "canarydir", "inner"), "inner")
	mustWrite(t, filepath.Join(base, "besideroot"), "beside")
	r, err := Open(e.rootDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e.r = r
	return e
}

// in returns the real path of a root-relative path.
func (e *env) in(rel string) string { return filepath.Join(e.rootDir, rel) }

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantsErr reports whether a case wants an error, and then checks that err
// is it (errors.Is): the caller skips its checks of a success. call names
// the call in the message ("Op(args)").
func wantsErr(t *testing.T, err, want error, call string) bool {
	t.Helper()
	if want == nil {
		return false
	}
	if !errors.Is(err, want) {
		t.Errorf("%s = %v; want %v", call, err, want)
	}
	return true
}

// snapshot describes every entry beneath base except the root's subtree:
// type, mode, size, mtime, inode, link count, and content or link target.
func snapshot(t *testing.T, e *env) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(e.base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == e.rootDir {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("type=%o mode=%o size=%d mtime=%d ino=%d nlink=%d",
			st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Size, st.Mtim.Nano(), st.Ino, st.Nlink)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += " content=" + string(b)
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " target=" + target
		}
		m[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkUntouched(t *testing.T, e *env, before map[string]string) {
	t.Helper()
	after := snapshot(t, e)
	if maps.Equal(before, after) {
		return
	}
	for k, v := range after {
		if before[k] != v {
			t.Errorf("outside the root changed: %s\n  before: %q\n  after:  %q", k, before[k], v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("outside the root removed: %s", k)
		}
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func umask() uint32 {
	m := unix.Umask(0)
	unix.Umask(m)
	return uint32(m)
}

func isOneOf(err error, want []error) bool {
	for _, w := range want {
		if errors.Is(err, w) {
			return true
		}
	}
	return false
}

func TestClean(t *testing.T) {
	tests := []struct {
		in, want string
		escape   bool
	}{
		{"", "", false},
		{".", "", false},
		{"./", "", false},
		{"a", "a", false},
		{"a/b/c", "a/b/c", false},
		{"a//b/", "a/b", false},
		{"./a/./b/.", "a/b", false},
		{"a\\b", "a\\b", false},
		{"...", "...", false},
		{"..a/b..", "..a/b..", false},
		{"é/ü", "é/ü", false},
		{"..", "", true},
		{"a/..", "", true},
		{"a/../b", "", true},
		{"a/../../x", "", true},
		{"/", "", true},
		{"/etc/passwd", "", true},
		{"//etc", "", true},
		{"a\x00b", "", true},
		{"\x00", "", true},
	}
	for _, tc := range tests {
		got, err := Clean(tc.in)
		if tc.escape {
			if !errors.Is(err, ErrEscape) {
				t.Errorf("Clean(%q) = %q, %v; want ErrEscape", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Clean(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestOpenRoot(t *testing.T) {
	base := t.TempDir()
	mustMkdir(t, filepath.Join(base, "dir"))
	mustWrite(t, filepath.Join(base, "file"), "x")
	mustSymlink(t, "dir", filepath.Join(base, "dirlink"))
	tests := []struct {
		dir     string
		wantErr error
	}{
		{filepath.Join(base, "dir"), nil},
		{filepath.Join(base, "dirlink"), nil},
		{filepath.Join(base, "missing"), fs.ErrNotExist},
		{filepath.Join(base, "file"), syscall.ENOTDIR},
	}
	for _, tc := range tests {
		r, err := Open(tc.dir)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Open(%s) = %v; want %v", tc.dir, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("error %q does not name the path", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open(%s): %v", tc.dir, err)
		}
		if r.Path() != tc.dir || r.Fd() < 0 {
			t.Errorf("Path() = %q, Fd() = %d", r.Path(), r.Fd())
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := r.Close(); err == nil {
			t.Errorf("second Close succeeded")
		}
		if _, err := r.Lstat(""); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Lstat after Close = %v; want fs.ErrClosed", err)
		}
		if err := r.Rename("a", "b"); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Rename after Close = %v; want fs.ErrClosed", err)
		}
	}

	// A relative dir is made absolute.
	t.Chdir(base)
	r, err := Open("dir")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Path() != filepath.Join(base, "dir") {
		t.Errorf("Path() = %q; want %q", r.Path(), filepath.Join(base, "dir"))
	}
}

func TestLstat(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("file"), "hello")
	if err := os.Chmod(e.in("file"), 0o640); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, e.in("dir"))
	mustSymlink(t, "some/target", e.in("dir/link"))
	if err := unix.Mkfifo(e.in("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "dir", e.in("dirlink"))
	tests := []struct {
		rel      string
		name     string
		typ      Type
		size     int64
		mode     uint32
		realPath string
		wantErr  error
	}{
		{rel: "file", name: "file", typ: TypeFile, size: 5, mode: 0o640, realPath: e.in("file")},
		{rel: "./file", name: "file", typ: TypeFile, size: 5, mode: 0o640, realPath: e.in("file")},
		{rel: "dir", name: "dir", typ: TypeDir, mode: 0o755, realPath: e.in("dir")},
		{rel: "dir/link", name: "link", typ: TypeSymlink, size: int64(len("some/target")), mode: 0o777, realPath: e.in("dir/link")},
		{rel: "dirlink/link", name: "link", typ: TypeSymlink, size: int64(len("some/target")), mode: 0o777, realPath: e.in("dir/link")},
		{rel: "fifo", name: "fifo", typ: TypeOther, mode: 0o600, realPath: e.in("fifo")},
		{rel: "", name: ".", typ: TypeDir, mode: 0o755, realPath: e.rootDir},
		{rel: ".", name: ".", typ: TypeDir, mode: 0o755, realPath: e.rootDir},
		{rel: "missing", wantErr: fs.ErrNotExist},
		{rel: "missing/x", wantErr: fs.ErrNotExist},
		{rel: "file/x", wantErr: syscall.ENOTDIR},
	}
	for _, tc := range tests {
		info, err := e.r.Lstat(tc.rel)
		if wantsErr(t, err, tc.wantErr, fmt.Sprintf("Lstat(%q)", tc.rel)) {
			continue
		}
		if err != nil {
			t.Errorf("Lstat(%q): %v", tc.rel, err)
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(tc.realPath, &st); err != nil {
			t.Fatal(err)
		}
		want := Info{Name: tc.name, Type: tc.typ, Size: tc.size, Mode: tc.mode, MtimeNs: st.Mtim.Nano(),
			CtimeNs: st.Ctim.Nano(), Uid: st.Uid, Gid: st.Gid, Special: specialOf(st.Mode), Rdev: st.Rdev, Ino: st.Ino, Dev: st.Dev, Nlink: st.Nlink, Blocks: st.Blocks}
		if tc.typ == TypeDir {
			want.Size = st.Size
		}
		if info != want {
			t.Errorf("Lstat(%q) = %+v; want %+v", tc.rel, info, want)
		}
	}
	f, err := e.r.Open("file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	li, _ := e.r.Lstat("file")
	if fi != li {
		t.Errorf("InfoFromFile = %+v; Lstat = %+v", fi, li)
	}
}

func TestReadDir(t *testing.T) {
	e := newEnv(t)
	names := []string{"b", "B", "a", "_x", "é", "a.b", "a b"}
	for _, n := range names {
		mustWrite(t, e.in(n), n)
	}
	mustMkdir(t, e.in("sub"))
	mustMkdir(t, e.in("sub/inner"))
	mustWrite(t, e.in("sub/inner/f"), "f")
	mustSymlink(t, "sub", e.in("subl"))
	mustSymlink(t, e.outside, e.in("out"))
	got, err := e.r.ReadDir("")
	if err != nil {
		t.Fatal(err)
	}
	var gotNames []string
	types := map[string]Type{}
	for _, in := range got {
		gotNames = append(gotNames, in.Name)
		types[in.Name] = in.Type
	}
	wantNames := append(slices.Clone(names), "sub", "subl", "out")
	slices.Sort(wantNames)
	if !slices.Equal(gotNames, wantNames) {
		t.Errorf("ReadDir names = %q; want %q", gotNames, wantNames)
	}
	if types["sub"] != TypeDir || types["subl"] != TypeSymlink || types["out"] != TypeSymlink || types["é"] != TypeFile {
		t.Errorf("types = %v", types)
	}
	if got[0].Size != 1 && got[0].Type == TypeFile {
		t.Errorf("size of %s = %d", got[0].Name, got[0].Size)
	}

	tests := []struct {
		rel     string
		wantN   int
		wantErr error
	}{
		{"sub", 1, nil},
		{"./sub/", 1, nil},
		{"sub/inner", 1, nil},
		{"subl/inner", 1, nil}, // intermediate symlink inside the root is followed
		{"subl", 0, syscall.ENOTDIR},
		{"out", 0, syscall.ENOTDIR},
		{"out/canarydir", 0, ErrEscape},
		{"a", 0, syscall.ENOTDIR},
		{"missing", 0, fs.ErrNotExist},
	}
	for _, tc := range tests {
		got, err := e.r.ReadDir(tc.rel)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ReadDir(%q) = %v, %v; want %v", tc.rel, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tc.wantN {
			t.Errorf("ReadDir(%q) = %v, %v; want %d entries", tc.rel, got, err, tc.wantN)
		}
	}
}

func TestReadDirLarge(t *testing.T) {
	e := newEnvIn(t, shmTempDir(t))
	const n = 20000
	if err := e.r.Mkdir("big", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fd, err := unix.Open(e.in(fmt.Sprintf("big/f%06d", n-1-i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	start := time.Now()
	got, err := e.r.ReadDir("big")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ReadDir of %d entries took %v", n, time.Since(start))
	if len(got) != n {
		t.Fatalf("got %d entries; want %d", len(got), n)
	}
	for i, in := range got {
		if want := fmt.Sprintf("f%06d", i); in.Name != want || in.Type != TypeFile {
			t.Fatalf("entry %d = %+v; want %s", i, in, want)
		}
	}
}

func TestOpenFile(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("existing"), "old content")
	mustMkdir(t, e.in("dir"))
	mustSymlink(t, "existing", e.in("link"))
	mustSymlink(t, "dir", e.in("dirlink"))
	mask := umask()
	tests := []struct {
		name    string
		rel     string
		flag    int
		perm    uint32
		write   string
		wantErr error
		want    string // file content afterwards
		mode    uint32
	}{
		{name: "create", rel: "new", flag: os.O_CREATE | os.O_EXCL | os.O_WRONLY, perm: 0o640, write: "data", want: "data", mode: 0o640 &^ mask},
		{name: "create-in-dir", rel: "dir/new", flag: os.O_CREATE | os.O_WRONLY, perm: 0o600, write: "x", want: "x", mode: 0o600},
		{name: "create-via-inside-dirlink", rel: "dirlink/new2", flag: os.O_CREATE | os.O_WRONLY, perm: 0o644, write: "y", want: "y", mode: 0o644 &^ mask},
		{name: "excl-existing", rel: "existing", flag: os.O_CREATE | os.O_EXCL | os.O_WRONLY, perm: 0o644, wantErr: fs.ErrExist},
		{name: "trunc", rel: "existing", flag: os.O_TRUNC | os.O_WRONLY, write: "new", want: "new", mode: 0o644},
		{name: "append", rel: "existing", flag: os.O_APPEND | os.O_WRONLY, write: "+more", want: "new+more", mode: 0o644},
		{name: "missing", rel: "nope", flag: os.O_RDONLY, wantErr: fs.ErrNotExist},
		{name: "missing-parent", rel: "nodir/f", flag: os.O_CREATE | os.O_WRONLY, perm: 0o644, wantErr: fs.ErrNotExist},
		{name: "final-symlink", rel: "link", flag: os.O_RDONLY, wantErr: syscall.ELOOP},
		{name: "final-symlink-create", rel: "link", flag: os.O_CREATE | os.O_WRONLY, perm: 0o644, wantErr: syscall.ELOOP},
		{name: "final-dirlink", rel: "dirlink", flag: os.O_RDONLY, wantErr: syscall.ELOOP},
		{name: "dir-for-writing", rel: "dir", flag: os.O_WRONLY, wantErr: syscall.EISDIR},
		{name: "escape", rel: "../outside/canary", flag: os.O_RDONLY, wantErr: ErrEscape},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := e.r.OpenFile(tc.rel, tc.flag, tc.perm)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("OpenFile(%q) = %v; want %v", tc.rel, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.rel) {
					t.Errorf("error %q does not name %q", err, tc.rel)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Name() != e.in(tc.rel) {
				t.Errorf("Name() = %q; want %q", f.Name(), e.in(tc.rel))
			}
			if _, err := f.WriteString(tc.write); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, e.in(tc.rel)); got != tc.want {
				t.Errorf("content = %q; want %q", got, tc.want)
			}
			info, err := e.r.Lstat(tc.rel)
			if err != nil || info.Mode != tc.mode || info.Type != TypeFile {
				t.Errorf("Lstat = %+v, %v; want mode %o", info, err, tc.mode)
			}
		})
	}

	// Open is read-only and reads what is there.
	f, err := e.r.Open("existing")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	if string(b) != "new+more" {
		t.Errorf("read %q", b)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Errorf("write to Open()ed file succeeded")
	}
	f.Close()
	// The root itself can be opened as a directory.
	d, err := e.r.Open("")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := d.Readdirnames(-1)
	d.Close()
	if err != nil || len(ents) == 0 {
		t.Errorf("Readdirnames of root = %v, %v", ents, err)
	}
}

func TestMkdir(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("file"), "x")
	mustMkdir(t, e.in("real"))
	mustSymlink(t, "real", e.in("reallink"))
	mask := umask()
	mkdir := func(rel string) error { return e.r.Mkdir(rel, 0o750) }
	mkdirAll := func(rel string) error { return e.r.MkdirAll(rel, 0o750) }
	tests := []struct {
		name    string
		fn      func(string) error
		rel     string
		wantErr error
		check   string // directory that must exist afterwards
	}{
		{"mkdir", mkdir, "a", nil, "a"},
		{"mkdir-nested", mkdir, "a/b", nil, "a/b"},
		{"mkdir-existing", mkdir, "a", fs.ErrExist, ""},
		{"mkdir-over-file", mkdir, "file", fs.ErrExist, ""},
		{"mkdir-root", mkdir, "", fs.ErrExist, ""},
		{"mkdir-missing-parent", mkdir, "x/y", fs.ErrNotExist, ""},
		{"mkdir-under-file", mkdir, "file/y", syscall.ENOTDIR, ""},
		{"mkdir-via-inside-link", mkdir, "reallink/m", nil, "real/m"},
		{"mkdirall-deep", mkdirAll, "p/q/r/s", nil, "p/q/r/s"},
		{"mkdirall-existing", mkdirAll, "p/q", nil, "p/q"},
		{"mkdirall-root", mkdirAll, "", nil, ""},
		{"mkdirall-dots", mkdirAll, "./p//q/./t/", nil, "p/q/t"},
		{"mkdirall-via-inside-link", mkdirAll, "reallink/n/o", nil, "real/n/o"},
		{"mkdirall-file-in-way", mkdirAll, "file/z", syscall.ENOTDIR, ""},
		{"mkdirall-file-final", mkdirAll, "file", syscall.ENOTDIR, ""},
		{"mkdirall-escape", mkdirAll, "p/../../x", ErrEscape, ""},
	}
	for _, tc := range tests {
		err := tc.fn(tc.rel)
		if wantsErr(t, err, tc.wantErr, fmt.Sprintf("%s(%q)", tc.name, tc.rel)) {
			continue
		}
		if err != nil {
			t.Errorf("%s(%q): %v", tc.name, tc.rel, err)
			continue
		}
		if tc.check == "" {
			continue
		}
		fi, err := os.Lstat(e.in(tc.check))
		if err != nil || !fi.IsDir() || uint32(fi.Mode().Perm()) != 0o750&^mask {
			t.Errorf("%s(%q): %s = %v, %v; want dir mode %o", tc.name, tc.rel, tc.check, fi.Mode(), err, 0o750&^mask)
		}
	}

	// Concurrent MkdirAll of overlapping paths all succeed.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			if err := e.r.MkdirAll(fmt.Sprintf("c/d/e/%d", g%2), 0o755); err != nil {
				t.Errorf("concurrent MkdirAll: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestSymlinkReadlink(t *testing.T) {
	e := newEnv(t)
	mustMkdir(t, e.in("d"))
	long := strings.Repeat("abcdefghi/", 300) // 3000 bytes: beyond the first buffer
	tests := []struct {
		target, rel string
		wantErr     error
	}{
		{"/etc/passwd", "abs", nil},
		{"../../../../outside", "up", nil},
		{"d", "rel", nil},
		{"dangling/target", "d/dangling", nil},
		{"with space and\\backslash", "odd", nil},
		{"./x/../y//", "messy", nil},
		{long, "long", nil},
		{"x", "abs", fs.ErrExist},
		{"x", "d", fs.ErrExist},
		{"x", "", fs.ErrExist},
		{"x", "missing/l", fs.ErrNotExist},
		{"", "empty", fs.ErrNotExist},
		{"x", "../escape", ErrEscape},
	}
	for _, tc := range tests {
		err := e.r.Symlink(tc.target, tc.rel)
		if wantsErr(t, err, tc.wantErr, fmt.Sprintf("Symlink(%q, %q)", tc.target, tc.rel)) {
			continue
		}
		if err != nil {
			t.Errorf("Symlink(%q, %q): %v", tc.target, tc.rel, err)
			continue
		}
		got, err := e.r.Readlink(tc.rel)
		if err != nil || got != tc.target {
			t.Errorf("Readlink(%q) = %q, %v; want %q", tc.rel, got, err, tc.target)
		}
		if osGot, _ := os.Readlink(e.in(tc.rel)); osGot != tc.target {
			t.Errorf("on disk %q -> %q; want %q", tc.rel, osGot, tc.target)
		}
	}
	if _, err := e.r.Readlink("d"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Readlink(dir) = %v; want EINVAL", err)
	}
	if _, err := e.r.Readlink("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Readlink(missing) = %v; want ErrNotExist", err)
	}
	if _, err := os.Lstat(filepath.Join(e.base, "outside", "x")); err == nil {
		t.Errorf("symlink creation resolved a target")
	}
}

func TestLink(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("f"), "data")
	mustMkdir(t, e.in("d"))
	mustSymlink(t, "f", e.in("sl"))
	tests := []struct {
		oldRel, newRel string
		wantType       Type
		wantErr        error
	}{
		{"f", "d/f2", TypeFile, nil},
		{"sl", "sl2", TypeSymlink, nil}, // the link itself, not its target
		{"f", "sl", 0, fs.ErrExist},
		{"d", "d2", 0, syscall.EPERM},
		{"missing", "x", 0, fs.ErrNotExist},
		{"", "x", 0, syscall.EINVAL},
		{"f", "../f", 0, ErrEscape},
	}
	for _, tc := range tests {
		err := e.r.Link(tc.oldRel, tc.newRel)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Link(%q, %q) = %v; want %v", tc.oldRel, tc.newRel, err, tc.wantErr)
			}
			var le *os.LinkError
			if !errors.As(err, &le) || le.Old != tc.oldRel || le.New != tc.newRel {
				t.Errorf("Link error %v is not an *os.LinkError naming both paths", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Link(%q, %q): %v", tc.oldRel, tc.newRel, err)
			continue
		}
		a, _ := e.r.Lstat(tc.oldRel)
		b, err := e.r.Lstat(tc.newRel)
		if err != nil || a.Ino != b.Ino || a.Dev != b.Dev || b.Nlink != 2 || b.Type != tc.wantType {
			t.Errorf("after Link(%q, %q): %+v vs %+v, %v", tc.oldRel, tc.newRel, a, b, err)
		}
	}
}

func TestRename(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("a"), "A")
	mustWrite(t, e.in("b"), "B")
	mustWrite(t, e.in("c"), "C")
	mustSymlink(t, "target", e.in("sl"))
	mustMkdir(t, e.in("d1"))
	mustMkdir(t, e.in("d2"))
	mustMkdir(t, e.in("full"))
	mustWrite(t, e.in("full/x"), "x")
	mustSymlink(t, "d1", e.in("d1link"))
	tests := []struct {
		oldRel, newRel string
		wantErr        error
		check          func(t *testing.T)
	}{
		{"a", "b", nil, func(t *testing.T) {
			if got := readFile(t, e.in("b")); got != "A" {
				t.Errorf("b = %q; want A", got)
			}
		}},
		{"c", "sl", nil, func(t *testing.T) { // replaces the symlink, not its target
			if got := readFile(t, e.in("sl")); got != "C" {
				t.Errorf("sl = %q", got)
			}
		}},
		{"sl", "d1/moved", nil, nil},
		{"d2", "d1link/sub", nil, func(t *testing.T) { // intermediate in-root link followed
			if fi, err := os.Lstat(e.in("d1/sub")); err != nil || !fi.IsDir() {
				t.Errorf("d1/sub: %v, %v", fi, err)
			}
		}},
		{"d1link", "d1link2", nil, func(t *testing.T) { // final symlink renamed itself
			if got, _ := os.Readlink(e.in("d1link2")); got != "d1" {
				t.Errorf("d1link2 -> %q", got)
			}
		}},
		{"d1/sub", "full", syscall.ENOTEMPTY, nil},
		{"b", "d1", syscall.EISDIR, nil},
		{"missing", "x", fs.ErrNotExist, nil},
		{"", "x", syscall.EINVAL, nil},
		{"b", "", syscall.EINVAL, nil},
		{"b", "../x", ErrEscape, nil},
		{"/etc/hostname", "x", ErrEscape, nil},
	}
	for _, tc := range tests {
		err := e.r.Rename(tc.oldRel, tc.newRel)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == syscall.ENOTEMPTY && errors.Is(err, fs.ErrExist)) {
				t.Errorf("Rename(%q, %q) = %v; want %v", tc.oldRel, tc.newRel, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Rename(%q, %q): %v", tc.oldRel, tc.newRel, err)
			continue
		}
		if _, err := os.Lstat(e.in(tc.oldRel)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Rename(%q, %q): old still exists", tc.oldRel, tc.newRel)
		}
		if tc.check != nil {
			tc.check(t)
		}
	}
}

// removeCase is one call of a removing operation: afterwards rel is gone,
// or the call failed with wantErr.
type removeCase struct {
	rel     string
	wantErr error
}

// checkRemoves calls remove (the operation name) on each case's rel and
// checks the error it returns and that rel is gone after a success.
func checkRemoves(t *testing.T, e *env, name string, remove func(rel string) error, tests []removeCase) {
	t.Helper()
	for _, tc := range tests {
		err := remove(tc.rel)
		if wantsErr(t, err, tc.wantErr, fmt.Sprintf("%s(%q)", name, tc.rel)) {
			continue
		}
		if err != nil {
			t.Errorf("%s(%q): %v", name, tc.rel, err)
		}
		if _, err := os.Lstat(e.in(tc.rel)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s(%q): still exists", name, tc.rel)
		}
	}
}

func TestRemove(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("f"), "x")
	mustWrite(t, e.in("target"), "t")
	mustSymlink(t, "target", e.in("sl"))
	mustMkdir(t, e.in("empty"))
	mustMkdir(t, e.in("full"))
	mustWrite(t, e.in("full/x"), "x")
	tests := []removeCase{
		{"f", nil},
		{"sl", nil},
		{"empty", nil},
		{"full", syscall.ENOTEMPTY},
		{"missing", fs.ErrNotExist},
		{"f/x", fs.ErrNotExist},
		{"", syscall.EINVAL},
		{".", syscall.EINVAL},
		{"../root", ErrEscape},
	}
	checkRemoves(t, e, "Remove", e.r.Remove, tests)
	if got := readFile(t, e.in("target")); got != "t" {
		t.Errorf("symlink target changed: %q", got)
	}
	if _, err := os.Stat(e.rootDir); err != nil {
		t.Errorf("root gone: %v", err)
	}
}

func TestRemoveAll(t *testing.T) {
	e := newEnv(t)
	for _, d := range []string{"t/a/b/c", "t/a/d", "t/ro"} {
		if err := os.MkdirAll(e.in(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		mustWrite(t, e.in(fmt.Sprintf("t/a/b/c/f%d", i)), "x")
	}
	mustWrite(t, e.in("t/ro/f"), "x")
	mustSymlink(t, "../..", e.in("t/a/up"))
	mustSymlink(t, e.outside, e.in("t/a/out"))
	mustWrite(t, e.in("keep"), "k")
	mustWrite(t, e.in("single"), "s")
	if err := os.Chmod(e.in("t/ro"), 0o500); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, e)
	tests := []removeCase{
		{"t", nil},
		{"single", nil},
		{"missing", nil},
		{"missing/deeper", nil},
		{"", syscall.EINVAL},
		{"./", syscall.EINVAL},
		{"..", ErrEscape},
	}
	checkRemoves(t, e, "RemoveAll", e.r.RemoveAll, tests)
	if got := readFile(t, e.in("keep")); got != "k" {
		t.Errorf("keep = %q", got)
	}
	checkUntouched(t, e, before)
}

func TestChmod(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("f"), "x")
	mustMkdir(t, e.in("d"))
	mustWrite(t, e.in("target"), "t")
	if err := os.Chmod(e.in("target"), 0o640); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "target", e.in("sl"))
	tests := []struct {
		rel      string
		perm     uint32
		wantMode uint32
		wantErr  error
	}{
		{"f", 0o600, 0o600, nil},
		{"f", 0o4755, 0o4755, nil},
		{"f", 0o100644, 0o644, nil}, // file-type bits are ignored
		{"d", 0o2750, 0o2750, nil},
		{"d", 0o1777, 0o1777, nil},
		{"sl", 0o600, 0o777, nil}, // no-op on symlinks
		{"", 0o711, 0o711, nil},
		{"missing", 0o600, 0, fs.ErrNotExist},
		{"../outside", 0o600, 0, ErrEscape},
	}
	for _, tc := range tests {
		err := e.r.Chmod(tc.rel, tc.perm)
		if wantsErr(t, err, tc.wantErr, fmt.Sprintf("Chmod(%q)", tc.rel)) {
			continue
		}
		info, lerr := e.r.Lstat(tc.rel)
		if err != nil || lerr != nil || info.Mode != tc.wantMode {
			t.Errorf("Chmod(%q, %o) = %v; mode %o (%v); want %o", tc.rel, tc.perm, err, info.Mode, lerr, tc.wantMode)
		}
	}
	if info, _ := e.r.Lstat("target"); info.Mode != 0o640 {
		t.Errorf("Chmod on symlink changed its target to %o", info.Mode)
	}
}

func TestLchtimes(t *testing.T) {
	bases := []string{t.TempDir()} // ext4 here
	if shm := shmTempDir(t); !strings.HasPrefix(shm, os.TempDir()) {
		bases = append(bases, shm) // tmpfs
	}
	for _, base := range bases {
		e := newEnvIn(t, base)
		mustWrite(t, e.in("f"), "x")
		mustMkdir(t, e.in("d"))
		mustWrite(t, e.in("target"), "t")
		mustSymlink(t, "target", e.in("sl"))
		targetBefore, _ := e.r.Lstat("target")
		tests := []struct {
			rel          string
			atime, mtime int64
			wantErr      error
		}{
			{"f", 1_234_567_890_123_456_789, 1_700_000_000_987_654_321, nil},
			{"f", -1_500_000_000_000_000_001, -1, nil}, // before 1970
			{"d", 1, 2, nil},
			{"sl", 1_600_000_000_000_000_007, 1_600_000_000_000_000_009, nil},
			{"", 5, 1_000_000_000_000_000_003, nil},
			{"missing", 0, 0, fs.ErrNotExist},
			{"../outside/canary", 0, 0, ErrEscape},
		}
		for _, tc := range tests {
			err := e.r.Lchtimes(tc.rel, tc.atime, tc.mtime)
			if wantsErr(t, err, tc.wantErr, fmt.Sprintf("%s: Lchtimes(%q)", base, tc.rel)) {
				continue
			}
			if err != nil {
				t.Errorf("%s: Lchtimes(%q): %v", base, tc.rel, err)
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(e.in(tc.rel), &st); err != nil {
				t.Fatal(err)
			}
			info, _ := e.r.Lstat(tc.rel)
			if st.Atim.Nano() != tc.atime || st.Mtim.Nano() != tc.mtime || info.MtimeNs != tc.mtime {
				t.Errorf("%s: Lchtimes(%q, %d, %d): atime %d mtime %d (Lstat %d)",
					base, tc.rel, tc.atime, tc.mtime, st.Atim.Nano(), st.Mtim.Nano(), info.MtimeNs)
			}
		}
		if after, _ := e.r.Lstat("target"); after.MtimeNs != targetBefore.MtimeNs {
			t.Errorf("%s: Lchtimes on symlink changed its target", base)
		}
		// TimeOmit leaves a timestamp as it is.
		if err := e.r.Lchtimes("f", TimeOmit, 42); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Lstat(e.in("f"), &st)
		if st.Atim.Nano() != -1_500_000_000_000_000_001 || st.Mtim.Nano() != 42 {
			t.Errorf("%s: after TimeOmit: atime %d mtime %d", base, st.Atim.Nano(), st.Mtim.Nano())
		}
	}
}

func TestSyncfsStatfs(t *testing.T) {
	e := newEnv(t)
	if err := e.r.Syncfs(); err != nil {
		t.Fatal(err)
	}
	free, total, err := e.r.Statfs()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(e.rootDir, &st); err != nil {
		t.Fatal(err)
	}
	if total == 0 || free > total || total != st.Blocks*uint64(st.Frsize) {
		t.Errorf("Statfs = %d free, %d total; statfs(2) says %d blocks of %d", free, total, st.Blocks, st.Frsize)
	}
}

// TestEscapes plants hostile names and links and checks that every attempt
// is refused and that nothing outside the root is read or changed.
func TestEscapes(t *testing.T) {
	create := os.O_CREATE | os.O_WRONLY
	type tcase struct {
		name  string
		setup func(t *testing.T, e *env)
		op    func(e *env) error
		want  []error // the error must match one of these; nil: must succeed
		check func(t *testing.T, e *env)
	}
	openOp := func(rel string, flag int) func(e *env) error {
		return func(e *env) error {
			f, err := e.r.OpenFile(rel, flag, 0o666)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	absLink := func(t *testing.T, e *env) { mustSymlink(t, e.outside, e.in("abs")) }
	escape := []error{ErrEscape}
	loop := []error{syscall.ELOOP}
	cases := []tcase{
		{name: "dotdot", op: openOp("..", os.O_RDONLY), want: escape},
		{name: "dotdot-nested", op: openOp("a/../../outside/new", create), want: escape},
		{name: "absolute-etc-passwd", op: openOp("/etc/passwd", os.O_RDONLY), want: escape},
		{name: "absolute-outside-create", op: func(e *env) error { return openOp(e.outside+"/new", create)(e) }, want: escape},
		{name: "double-slash", op: func(e *env) error { _, err := e.r.Lstat("//etc"); return err }, want: escape},
		{name: "nul-byte", op: openOp("file\x00/../../outside/new", create), want: escape},
		{name: "symlink-to-slash",
			setup: func(t *testing.T, e *env) { mustSymlink(t, "/", e.in("slash")) },
			op:    func(e *env) error { return openOp("slash"+e.outside+"/canary", os.O_RDWR|os.O_TRUNC)(e) },
			want:  escape},
		{name: "symlink-to-dotdot",
			setup: func(t *testing.T, e *env) { mustSymlink(t, "..", e.in("up")) },
			op:    openOp("up/outside/canary", os.O_WRONLY|os.O_TRUNC), want: escape},
		{name: "symlink-abs-create", setup: absLink, op: openOp("abs/newfile", create), want: escape},
		{name: "chained-symlinks",
			setup: func(t *testing.T, e *env) {
				mustSymlink(t, "b", e.in("a"))
				mustSymlink(t, "c", e.in("b"))
				mustSymlink(t, "../outside", e.in("c"))
			},
			op: openOp("a/canary", os.O_RDWR|os.O_TRUNC), want: escape},
		{name: "nested-relative-link",
			setup: func(t *testing.T, e *env) {
				mustMkdir(t, e.in("d1"))
				mustMkdir(t, e.in("d1/d2"))
				mustSymlink(t, "../../../outside", e.in("d1/d2/l"))
			},
			op: openOp("d1/d2/l/canarydir/new", create), want: escape},
		{name: "lstat-through-link", setup: absLink,
			op: func(e *env) error { _, err := e.r.Lstat("abs/canary"); return err }, want: escape},
		{name: "readdir-through-link", setup: absLink,
			op: func(e *env) error { _, err := e.r.ReadDir("abs/canarydir"); return err }, want: escape},
		{name: "readlink-through-link",
			setup: func(t *testing.T, e *env) {
				absLink(t, e)
				mustSymlink(t, "secret", filepath.Join(e.outside, "canarydir", "olink"))
			},
			op: func(e *env) error { _, err := e.r.Readlink("abs/canarydir/olink"); return err }, want: escape},
		{name: "mkdir-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Mkdir("abs/newdir", 0o755) }, want: escape},
		{name: "mkdirall-through-link", setup: absLink,
			op: func(e *env) error { return e.r.MkdirAll("abs/x/y", 0o755) }, want: escape},
		{name: "mkdirall-final-link-outside", setup: absLink,
			op: func(e *env) error { return e.r.MkdirAll("abs", 0o755) }, want: escape},
		{name: "symlink-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Symlink("x", "abs/newlink") }, want: escape},
		{name: "rename-target-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Rename("file", "abs/moved") }, want: escape,
			check: func(t *testing.T, e *env) { readFile(t, e.in("file")) }},
		{name: "rename-source-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Rename("abs/canary", "stolen") }, want: escape},
		{name: "rename-to-dotdot", op: func(e *env) error { return e.r.Rename("file", "../x") }, want: escape},
		{name: "rename-from-dotdot", op: func(e *env) error { return e.r.Rename("../outside/canary", "x") }, want: escape},
		{name: "remove-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Remove("abs/canary") }, want: escape},
		{name: "removeall-through-link", setup: absLink,
			op: func(e *env) error { return e.r.RemoveAll("abs/canarydir") }, want: escape},
		{name: "chmod-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Chmod("abs/canary", 0o777) }, want: escape},
		{name: "lchtimes-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Lchtimes("abs/canary", 0, 0) }, want: escape},
		{name: "link-source-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Link("abs/canary", "hard") }, want: escape},
		{name: "link-target-through-link", setup: absLink,
			op: func(e *env) error { return e.r.Link("file", "abs/hard") }, want: escape},
		{name: "symlink-to-proc-self-root",
			setup: func(t *testing.T, e *env) { mustSymlink(t, "/proc/self/root", e.in("proc")) },
			op:    func(e *env) error { return openOp("proc"+e.outside+"/canary", os.O_RDWR|os.O_TRUNC)(e) },
			want:  append(escape, syscall.ELOOP)},
		{name: "symlink-to-proc-self-fd",
			setup: func(t *testing.T, e *env) { mustSymlink(t, "/proc/self/fd", e.in("fds")) },
			op:    func(e *env) error { return openOp(fmt.Sprintf("fds/%d/x", e.r.Fd()), create)(e) },
			want:  append(escape, syscall.ELOOP)},
		{name: "open-final-symlink-inside",
			setup: func(t *testing.T, e *env) { mustSymlink(t, "file", e.in("lf")) },
			op:    openOp("lf", os.O_RDONLY), want: loop},
		{name: "open-final-symlink-outside", setup: absLink, op: openOp("abs", os.O_RDONLY), want: loop},
		{name: "create-through-dangling-final-link",
			setup: func(t *testing.T, e *env) { mustSymlink(t, filepath.Join(e.outside, "created"), e.in("dang")) },
			op:    openOp("dang", create), want: loop},
		{name: "truncate-final-link",
			setup: func(t *testing.T, e *env) { mustSymlink(t, filepath.Join(e.outside, "canary"), e.in("cl")) },
			op:    openOp("cl", os.O_WRONLY|os.O_TRUNC), want: loop},
		{name: "readdir-final-link", setup: absLink,
			op: func(e *env) error { _, err := e.r.ReadDir("abs"); return err }, want: []error{syscall.ENOTDIR}},
		{name: "mkdir-on-final-link", setup: absLink,
			op: func(e *env) error { return e.r.Mkdir("abs", 0o755) }, want: []error{fs.ErrExist}},
		// Operations on a final symlink act on the link itself and succeed.
		{name: "chmod-final-link-is-noop", setup: absLink,
			op: func(e *env) error { return e.r.Chmod("abs", 0o700) }},
		{name: "lchtimes-final-link", setup: absLink,
			op: func(e *env) error { return e.r.Lchtimes("abs", 7, 7) },
			check: func(t *testing.T, e *env) {
				if in, _ := e.r.Lstat("abs"); in.MtimeNs != 7 {
					t.Errorf("link mtime = %d", in.MtimeNs)
				}
			}},
		{name: "remove-final-link", setup: absLink, op: func(e *env) error { return e.r.Remove("abs") }},
		{name: "removeall-final-link", setup: absLink, op: func(e *env) error { return e.r.RemoveAll("abs") }},
		{name: "link-final-link", setup: absLink, op: func(e *env) error { return e.r.Link("abs", "abs2") },
			check: func(t *testing.T, e *env) {
				if in, _ := e.r.Lstat("abs2"); in.Type != TypeSymlink {
					t.Errorf("hard link of a symlink is %v", in.Type)
				}
			}},
		{name: "removeall-tree-with-outside-links",
			setup: func(t *testing.T, e *env) {
				mustMkdir(t, e.in("tree"))
				mustMkdir(t, e.in("tree/sub"))
				mustSymlink(t, e.outside, e.in("tree/sub/out"))
				mustSymlink(t, "../../outside/canarydir", e.in("tree/rel"))
				mustSymlink(t, filepath.Join(e.outside, "canary"), e.in("tree/c"))
			},
			op: func(e *env) error { return e.r.RemoveAll("tree") },
			check: func(t *testing.T, e *env) {
				if _, err := os.Lstat(e.in("tree")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("tree not removed: %v", err)
				}
			}},
		{name: "removeall-root", op: func(e *env) error { return e.r.RemoveAll(".") }, want: []error{syscall.EINVAL},
			check: func(t *testing.T, e *env) { readFile(t, e.in("file")) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			mustWrite(t, e.in("file"), "inside")
			if tc.setup != nil {
				tc.setup(t, e)
			}
			before := snapshot(t, e)
			fds := fdCount(t)
			err := tc.op(e)
			if tc.want == nil && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if tc.want != nil && !isOneOf(err, tc.want) {
				t.Errorf("got %v; want one of %v", err, tc.want)
			}
			if got := fdCount(t); got != fds {
				t.Errorf("fd count %d -> %d", fds, got)
			}
			checkUntouched(t, e, before)
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
	if len(cases) < 20 {
		t.Fatalf("only %d escape cases", len(cases))
	}
}

// TestMagicLinks uses /proc/self as the root so that real magic links
// (root, cwd, fd/N) lie beneath it: none may be traversed or opened.
func TestMagicLinks(t *testing.T) {
	e := newEnv(t)
	before := snapshot(t, e)
	r, err := Open("/proc/self")
	if err != nil {
		t.Skipf("cannot open /proc/self: %v", err)
	}
	defer r.Close()
	out, err := os.Open(filepath.Join(e.outside, "canary"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	refused := []error{ErrEscape, syscall.ELOOP}
	tests := []struct {
		name string
		op   func() error
	}{
		{"open-via-root", func() error { _, err := r.Open("root" + e.outside + "/canary"); return err }},
		{"create-via-cwd", func() error {
			_, err := r.OpenFile("cwd/fsroot-magic-test", os.O_CREATE|os.O_WRONLY, 0o644)
			return err
		}},
		{"open-fd-final", func() error { _, err := r.Open(fmt.Sprintf("fd/%d", out.Fd())); return err }},
		{"write-fd-final", func() error {
			_, err := r.OpenFile(fmt.Sprintf("fd/%d", out.Fd()), os.O_WRONLY|os.O_TRUNC, 0)
			return err
		}},
		{"readdir-via-root", func() error { _, err := r.ReadDir("root/etc"); return err }},
		{"lstat-via-root", func() error { _, err := r.Lstat("root" + e.outside + "/canary"); return err }},
		{"mkdir-via-root", func() error { return r.Mkdir("root"+e.outside+"/x", 0o755) }},
	}
	for _, tc := range tests {
		if err := tc.op(); !isOneOf(err, refused) {
			t.Errorf("%s: got %v; want ErrEscape or ELOOP", tc.name, err)
		}
	}
	// The magic link itself may be inspected (it is an entry of the root).
	if in, err := r.Lstat("cwd"); err != nil || in.Type != TypeSymlink {
		t.Errorf("Lstat(cwd) = %+v, %v", in, err)
	}
	checkUntouched(t, e, before)
}

// TestRaceSymlinkSwap flips a directory inside the root with a symlink to
// outside (atomically, with RENAME_EXCHANGE) while other goroutines operate
// beneath it. Nothing may ever land outside or change there.
func TestRaceSymlinkSwap(t *testing.T) {
	e := newEnv(t)
	mustMkdir(t, e.in("d"))
	mustWrite(t, e.in("d/canary"), "inside")
	mustMkdir(t, e.in("d/canarydir"))
	mustSymlink(t, e.outside, e.in("evil"))
	before := snapshot(t, e)
	fds := fdCount(t)

	const flips = 300
	var ok, escaped, other atomic.Int64
	stop := make(chan struct{})
	var started, wg sync.WaitGroup
	count := func(err error) {
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, ErrEscape):
			escaped.Add(1)
		default:
			other.Add(1)
		}
	}
	for w := range 2 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := fmt.Sprintf("d/w%d-%d", w, i)
				f, err := e.r.OpenFile(n, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err == nil {
					f.WriteString("x")
					f.Close()
				}
				count(err)
				f, err = e.r.OpenFile("d/canary", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
				if err == nil {
					f.WriteString("pwned")
					f.Close()
				}
				count(err)
				f, err = e.r.Open("d/canary")
				if err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					if bytes.Equal(b, []byte("canary")) {
						t.Errorf("read the outside canary through d/canary")
					}
				}
				count(err)
				count(e.r.Mkdir(n+".dir", 0o755))
				count(e.r.MkdirAll(n+".all/x", 0o755))
				count(e.r.Symlink("t", n+".lnk"))
				count(e.r.Chmod("d/canary", 0o777))
				count(e.r.Lchtimes("d/canary", 0, 0))
				count(e.r.Link("d/canary", n+".hard"))
				count(e.r.Rename(n, "d/renamed"))
				count(e.r.Remove("d/canarydir/inner"))
				count(e.r.RemoveAll("d/canarydir"))
				count(e.r.MkdirAll("d/canarydir", 0o755))
			}
		})
	}
	started.Wait()
	for range flips {
		if err := unix.Renameat2(unix.AT_FDCWD, e.in("d"), unix.AT_FDCWD, e.in("evil"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("RENAME_EXCHANGE: %v", err)
		}
		time.Sleep(20 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("ok=%d escaped=%d other=%d", ok.Load(), escaped.Load(), other.Load())
	if ok.Load() == 0 || escaped.Load() == 0 {
		t.Errorf("race not exercised: ok=%d escaped=%d", ok.Load(), escaped.Load())
	}
	checkUntouched(t, e, before)
	if got := fdCount(t); got != fds {
		t.Errorf("fd count %d -> %d", fds, got)
	}
}

// TestRaceFinalComponentSwap flips the final component between a regular
// file and a symlink to the outside canary while it is opened, truncated,
// read, chmod-ed and re-timed.
func TestRaceFinalComponentSwap(t *testing.T) {
	e := newEnv(t)
	mustWrite(t, e.in("x"), "inside")
	mustSymlink(t, filepath.Join(e.outside, "canary"), e.in("evil"))
	before := snapshot(t, e)
	stop := make(chan struct{})
	var started, wg sync.WaitGroup
	var ok atomic.Int64
	for range 2 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if f, err := e.r.OpenFile("x", os.O_WRONLY|os.O_TRUNC, 0); err == nil {
					f.WriteString("inside")
					f.Close()
					ok.Add(1)
				}
				if f, err := e.r.Open("x"); err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					if string(b) == "canary" {
						t.Errorf("read the outside canary")
					}
				}
				e.r.Chmod("x", 0o777)
				e.r.Lchtimes("x", 0, 0)
				if e.r.Link("x", "hl") == nil {
					e.r.Remove("hl")
				}
			}
		})
	}
	started.Wait()
	for range 300 {
		if err := unix.Renameat2(unix.AT_FDCWD, e.in("x"), unix.AT_FDCWD, e.in("evil"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("RENAME_EXCHANGE: %v", err)
		}
		time.Sleep(20 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	if ok.Load() == 0 {
		t.Errorf("no open ever succeeded")
	}
	checkUntouched(t, e, before)
}

// TestConcurrent runs many goroutines doing mixed operations on one Root and
// checks the results and that no descriptor leaks.
func TestConcurrent(t *testing.T) {
	e := newEnvIn(t, shmTempDir(t))
	if err := e.r.Mkdir("shared", 0o755); err != nil {
		t.Fatal(err)
	}
	fds := fdCount(t)
	racy := []error{fs.ErrNotExist, fs.ErrExist, syscall.ENOTEMPTY}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			must := func(what string, err error) {
				if err != nil {
					t.Errorf("goroutine %d: %s: %v", g, what, err)
				}
			}
			for i := range 60 {
				base := fmt.Sprintf("g%d/i%d", g, i%4)
				must("mkdirall", e.r.MkdirAll(base+"/sub", 0o755))
				f, err := e.r.OpenFile(base+"/sub/f", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
				must("create", err)
				if err == nil {
					fmt.Fprintf(f, "%d-%d", g, i)
					f.Close()
				}
				if in, err := e.r.Lstat(base + "/sub/f"); err != nil || in.Size != int64(len(fmt.Sprintf("%d-%d", g, i))) {
					t.Errorf("Lstat = %+v, %v", in, err)
				}
				if err := e.r.Symlink("f", base+"/sub/l"); err != nil && !errors.Is(err, fs.ErrExist) {
					t.Errorf("symlink: %v", err)
				}
				if got, err := e.r.Readlink(base + "/sub/l"); err != nil || got != "f" {
					t.Errorf("Readlink = %q, %v", got, err)
				}
				if _, err := e.r.Open(base + "/sub/l"); !errors.Is(err, syscall.ELOOP) {
					t.Errorf("Open(symlink) = %v", err)
				}
				must("rename", e.r.Rename(base+"/sub/f", base+"/sub/g"))
				must("link", e.r.Link(base+"/sub/g", base+"/sub/h"))
				must("chmod", e.r.Chmod(base+"/sub/h", 0o600))
				must("lchtimes", e.r.Lchtimes(base+"/sub/g", int64(i), int64(i)))
				ents, err := e.r.ReadDir(base + "/sub")
				if err != nil || len(ents) != 3 || ents[0].Name != "g" || ents[0].Nlink != 2 || ents[0].Mode != 0o600 || ents[0].MtimeNs != int64(i) {
					t.Errorf("ReadDir = %+v, %v", ents, err)
				}
				must("remove", e.r.Remove(base+"/sub/h"))
				if _, err := e.r.ReadDir(""); err != nil {
					t.Errorf("ReadDir(root): %v", err)
				}
				if i%3 == 0 {
					must("removeall", e.r.RemoveAll(base))
				}
				// Contended names in a shared directory: only racy errors.
				s := fmt.Sprintf("shared/n%d", i%5)
				for _, err := range []error{
					e.r.Mkdir(s, 0o755),
					e.r.MkdirAll(s+"/deep", 0o755),
					e.r.Symlink("x", s+"/deep/l"),
					e.r.Remove(s + "/deep/l"),
					e.r.RemoveAll(s),
				} {
					if err != nil && !isOneOf(err, racy) {
						t.Errorf("shared: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if got := fdCount(t); got != fds {
		t.Errorf("fd count %d -> %d", fds, got)
	}
}

// TestCloseWhileBusy closes the Root while goroutines use it: calls either
// succeed or report fs.ErrClosed, and all descriptors are released.
func TestCloseWhileBusy(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "f"), "x")
	fds := fdCount(t)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var sawClosed atomic.Bool
	for range 4 {
		wg.Go(func() {
			for {
				_, err := r.Lstat("f")
				if errors.Is(err, fs.ErrClosed) {
					sawClosed.Store(true)
					return
				}
				if err != nil {
					t.Errorf("Lstat: %v", err)
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !sawClosed.Load() || r.Fd() != -1 {
		t.Errorf("closed not observed; Fd() = %d", r.Fd())
	}
	if got := fdCount(t); got != fds {
		t.Errorf("fd count %d -> %d", fds, got)
	}
}

// TestBeyondPathMax: paths longer than PATH_MAX (4096 bytes), which one
// openat2 call refuses, work for every operation, and stay confined.
func TestBeyondPathMax(t *testing.T) {
	e := newEnv(t)
	comp := strings.Repeat("d", 200)
	var parts []string
	for range 30 { // 30 x 201 bytes: about 6 KiB
		parts = append(parts, comp)
	}
	deep := strings.Join(parts, "/")
	if len(deep) <= 4096 {
		t.Fatalf("test path only %d bytes", len(deep))
	}
	if err := e.r.MkdirAll(deep, 0o755); err != nil {
		t.Fatalf("MkdirAll: %v", err)
	}
	f, err := e.r.OpenFile(deep+"/file", os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	f.WriteString("deep")
	f.Close()
	if info, err := e.r.Lstat(deep + "/file"); err != nil || info.Size != 4 {
		t.Fatalf("Lstat = %+v, %v", info, err)
	}
	infos, err := e.r.ReadDir(deep)
	if err != nil || len(infos) != 1 || infos[0].Name != "file" {
		t.Fatalf("ReadDir = %v, %v", infos, err)
	}
	d, err := e.r.OpenDir(deep)
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	buf := make([]byte, 16)
	if n, _, err := d.ReadFile("file", buf, nil); err != nil || string(buf[:n]) != "deep" {
		t.Errorf("Dir.ReadFile = %q, %v", buf[:n], err)
	}
	d.Close()
	pin, err := e.r.Pin(deep + "/file")
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	if info, err := pin.Info(); err != nil || info.Size != 4 {
		t.Errorf("Pinned.Info = %+v, %v", info, err)
	}
	pin.Close()
	if err := e.r.Symlink("file", deep+"/link"); err != nil {
		t.Fatalf("Symlink: %v", err)
	}
	if got, err := e.r.Readlink(deep + "/link"); err != nil || got != "file" {
		t.Errorf("Readlink = %q, %v", got, err)
	}
	if err := e.r.Rename(deep+"/file", deep+"/renamed"); err != nil {
		t.Errorf("Rename: %v", err)
	}
	if err := e.r.Chmod(deep+"/renamed", 0o600); err != nil {
		t.Errorf("Chmod: %v", err)
	}
	if err := e.r.Lchtimes(deep+"/renamed", 0, 1e9); err != nil {
		t.Errorf("Lchtimes: %v", err)
	}
	// A symlink deep down that climbs out of the root is refused.
	if err := e.r.Symlink(strings.Repeat("../", 40)+"outside", deep+"/up"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Open(deep + "/up/canary"); !errors.Is(err, ErrEscape) {
		t.Errorf("Open through an escaping link = %v; want ErrEscape", err)
	}
	if err := e.r.RemoveAll(parts[0]); err != nil {
		t.Errorf("RemoveAll: %v", err)
	}
	if _, err := os.Lstat(e.in(parts[0])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after RemoveAll: %v", err)
	}
}

// TestTypeString: the names listings print; a value that is no kind (a
// peer may send one) reads as "other", like TypeOther.
func TestTypeString(t *testing.T) {
	for _, tc := range []struct {
		t    Type
		want string
	}{{TypeFile, "file"}, {TypeDir, "dir"}, {TypeSymlink, "symlink"}, {TypeOther, "other"}, {0, "other"}, {9, "other"}} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("Type(%d).String() = %q, want %q", tc.t, got, tc.want)
		}
	}
}
