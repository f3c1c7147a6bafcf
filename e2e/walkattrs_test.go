package e2e

// Walks and attributes in every direction: unreadable directories, paths
// beyond PATH_MAX, entries replaced by entries of another type, hard-link
// groups joined at an existing destination, sparse small files, the top
// directory's attributes and updates inside read-only directories, each
// compared with what rsync does on the same trees where it applies, and
// each run repeated to see that the second one changes nothing.

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// direction is one of the four ways a transfer can go.
type direction struct {
	name                 string
	srcRemote, dstRemote bool
}

var directions = []direction{
	{"local->local", false, false},
	{"local->peer", false, true},
	{"peer->local", true, false},
	{"peer->peer", true, true},
}

// endpoints starts the servers d needs (run by u), one per side, rooted
// at srcBase and dstBase, and returns the arguments that name the trees
// srcBase/tree and dstBase/tree.
func (d direction) endpoints(t *testing.T, u *user, srcBase, dstBase string) (src, dst string) {
	t.Helper()
	src, dst = filepath.Join(srcBase, "tree"), filepath.Join(dstBase, "tree")
	if d.srcRemote {
		src = u.serve(t, srcBase).url("tree")
	}
	if d.dstRemote {
		dst = u.serve(t, dstBase).url("tree")
	}
	return src, dst
}

// user runs xfer (and rsync) processes: as root, or as the unprivileged
// uid/gid 65534.
type user struct {
	cred *syscall.Credential // nil: this process's user
	bin  string
	env  []string
}

func asRoot(t *testing.T) *user {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	return &user{bin: xferBin}
}

// asNobody returns a user that runs a copy of the binary (which it may
// not reach where the tests built it) as uid/gid 65534.
func asNobody(t *testing.T) *user {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run xfer as an unprivileged user")
	}
	u := &user{cred: &syscall.Credential{Uid: 65534, Gid: 65534}}
	dir := u.tempDir(t)
	data, err := os.ReadFile(xferBin)
	must(t, err)
	u.bin = filepath.Join(dir, "xfer")
	must(t, os.WriteFile(u.bin, data, 0o755))
	cfg := filepath.Join(dir, "config")
	u.mkdir(t, cfg)
	u.env = []string{"XDG_CONFIG_HOME=" + cfg, "HOME=" + cfg}
	return u
}

// tempDir is a directory the user owns, removed when the test ends.
func (u *user) tempDir(t *testing.T) string {
	t.Helper()
	if u.cred == nil {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "xfer-e2e-user-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	u.own(t, dir)
	return dir
}

// bases are two new directories the user owns, for the source and the
// destination, and the trees beneath them that the tests transfer.
func (u *user) bases(t *testing.T) (srcBase, dstBase, tree, dstTree string) {
	t.Helper()
	srcBase, dstBase = u.tempDir(t), u.tempDir(t)
	return srcBase, dstBase, filepath.Join(srcBase, "tree"), filepath.Join(dstBase, "tree")
}

func (u *user) mkdir(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	u.own(t, dir)
}

// own gives everything beneath dir to the user.
func (u *user) own(t *testing.T, dir string) {
	t.Helper()
	if u.cred == nil {
		return
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.cred.Uid), int(u.cred.Gid))
	})
	must(t, err)
}

// as makes cmd run as the user.
func (u *user) as(cmd *exec.Cmd) {
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	}
}

// run runs xfer with args, as xferEnv does.
func (u *user) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, func(cmd *exec.Cmd) {
		cmd.Env = append(baseEnv(t), u.env...)
		u.as(cmd)
	}, u.bin, args...)
}

// rsync runs rsync with args and returns its exit code.
func (u *user) rsync(t *testing.T, args ...string) int {
	t.Helper()
	needTool(t, "rsync", "the reference")
	r := runCmd(t, u.as, "rsync", args...)
	if r.code != 0 {
		t.Logf("rsync %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r.code
}

// serve starts `xfer serve --root root` as the user, stopped when the
// test ends.
func (u *user) serve(t *testing.T, root string) *server {
	t.Helper()
	cmd := exec.Command(u.bin, "serve", "--listen", "127.0.0.1:0", "--root", root)
	cmd.Env = append(baseEnv(t), u.env...)
	u.as(cmd)
	return startServerCmd(t, cmd, root)
}

// fdSnapshot is snapshot with the top directory itself as the entry ".",
// for trees of any depth (scanTree walks with descriptors relative to each
// directory, so paths beyond PATH_MAX work).
func fdSnapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	tree := scanTree(t, dir)
	if tree == nil {
		t.Fatalf("walking %s: no such directory", dir)
	}
	return nodes(tree)
}

// sameSnap fails the test unless two snapshots hold the same entries.
func sameSnap[V comparable](t *testing.T, what string, want, got map[string]V) {
	t.Helper()
	var keys []string
	for p := range want {
		keys = append(keys, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			keys = append(keys, p)
		}
	}
	sort.Strings(keys)
	bad := 0
	for _, p := range keys {
		w, wok := want[p]
		g, gok := got[p]
		show := p
		if len(show) > 80 {
			show = fmt.Sprintf("%s...(%d bytes)", show[:60], len(p))
		}
		switch {
		case !gok:
			t.Errorf("%s: %q missing", what, show)
		case !wok:
			t.Errorf("%s: %q should not be there (%+v)", what, show, g)
		case w != g:
			t.Errorf("%s: %q differs:\n want %+v\n  got %+v", what, show, w, g)
		default:
			continue
		}
		if bad++; bad > 20 {
			t.Fatalf("%s: more differences not shown", what)
		}
	}
}

// sameAsSource compares a destination with its source, top included.
func sameAsSource(t *testing.T, src, dst string) {
	t.Helper()
	sameSnap(t, "destination vs source", fdSnapshot(t, src), fdSnapshot(t, dst))
}

// again runs args a second time (adding --json) and fails unless the run
// changes nothing: exit code wantCode, no file, link, directory or
// deletion reported, and the destination tree dstDir exactly as before.
// It returns the run's events.
func again(t *testing.T, u *user, dstDir string, wantCode int, args ...string) []map[string]any {
	t.Helper()
	before := fdSnapshot(t, dstDir)
	r := u.run(t, append(args, "--json")...)
	if r.code != wantCode {
		t.Errorf("second run: exit %d, want %d\n%s", r.code, wantCode, r)
	}
	evs, s := jsonRun(t, r)
	if s.FilesTransferred != 0 || s.FilesDeleted != 0 {
		t.Errorf("second run changed something: %+v", s)
	}
	for _, ev := range evs {
		switch ev["event"] {
		case "transfer", "symlink", "mkdir", "delete":
			t.Errorf("second run: %v", ev)
		}
	}
	sameSnap(t, "after the second run", before, fdSnapshot(t, dstDir))
	return evs
}

// syncTwice runs `xfer sync src dst --json` as u (what names it in
// failures) and fails unless it exits 0 having transferred files and
// deleted deleted, and dstTree is then the same as tree; a second run must
// change nothing.
func (u *user) syncTwice(t *testing.T, what, src, dst, tree, dstTree string, files, deleted int64) {
	t.Helper()
	r := u.run(t, "sync", src, dst, "--json")
	if r.code != 0 {
		t.Fatalf("%s: %s", what, r)
	}
	if _, s := jsonRun(t, r); s.FilesTransferred != files || s.FilesDeleted != deleted {
		t.Errorf("%s: %+v; want %d transferred, %d deleted", what, s, files, deleted)
	}
	sameAsSource(t, tree, dstTree)
	again(t, u, dstTree, 0, "sync", src, dst)
}

// errorsByPath counts the error events of a --json run by path.
func errorsByPath(evs []map[string]any) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		if ev["event"] == "error" {
			p, _ := ev["path"].(string)
			out[p]++
		}
	}
	return out
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
	must(t, os.Chmod(p, mode))
}

// copyTree copies src to dst as it is (cp -a), for rsync to work on a
// copy of a destination.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// TestUnreadableDirectory: a source directory the (unprivileged) user may
// not read is reported once, everything else arrives, the run exits 1,
// and a sync deletes nothing: neither beneath that directory nor, as
// rsync does after an I/O error, anywhere else; in every direction (the
// walk runs on the source server for the last two). A second run changes
// nothing.
func TestUnreadableDirectory(t *testing.T) {
	u := asNobody(t)
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			srcBase, dstBase := u.tempDir(t), u.tempDir(t)
			tree := filepath.Join(srcBase, "tree")
			writeFile(t, filepath.Join(tree, "a/f"), "a", 0o644)
			writeFile(t, filepath.Join(tree, "bad/g"), "g", 0o644)
			writeFile(t, filepath.Join(tree, "bad2/sub/h"), "h", 0o644)
			writeFile(t, filepath.Join(tree, "c/i"), "i", 0o644)
			writeFile(t, filepath.Join(tree, "top"), "top", 0o644)
			writeRandom(t, filepath.Join(tree, "c/big"), 3<<20, 7)
			// At the destination: contents beneath the unreadable
			// directory, and an extra file elsewhere.
			writeFile(t, filepath.Join(dstBase, "tree/bad/old"), "old", 0o644)
			writeFile(t, filepath.Join(dstBase, "tree/gone"), "gone", 0o644)
			u.own(t, srcBase)
			u.own(t, dstBase)
			must(t, os.Chmod(filepath.Join(tree, "bad"), 0))
			must(t, os.Chmod(filepath.Join(tree, "bad2"), 0o300)) // searchable, not listable
			t.Cleanup(func() {
				os.Chmod(filepath.Join(tree, "bad"), 0o755)
				os.Chmod(filepath.Join(tree, "bad2"), 0o755)
			})
			// Expected: the source, but for what lies beneath the
			// unreadable directories, where the destination keeps what
			// it had; and no deletion anywhere (rsync documents the same
			// for an I/O error at the source, though rsync 3 still
			// deletes in directories it went through before the error).
			dstTree := filepath.Join(dstBase, "tree")
			want := fdSnapshot(t, tree)
			for p := range want {
				if strings.HasPrefix(p, "bad/") || strings.HasPrefix(p, "bad2/") {
					delete(want, p)
				}
			}
			before := fdSnapshot(t, dstTree)
			want["bad/old"], want["gone"] = before["bad/old"], before["gone"]

			src, dst := d.endpoints(t, u, srcBase, dstBase)
			r := u.run(t, "sync", src, dst, "--json")
			if r.code != 1 {
				t.Errorf("exit %d, want 1\n%s", r.code, r)
			}
			evs, s := jsonRun(t, r)
			if s.FilesTransferred != 4 || s.FilesDeleted != 0 {
				t.Errorf("summary %+v; want 4 files transferred, none deleted", s)
			}
			if got, want := errorsByPath(evs), map[string]int{"bad": 1, "bad2": 1}; !mapsEqual(got, want) {
				t.Errorf("errors by path %v, want %v\n%s", got, want, r)
			}
			for _, ev := range evs {
				if ev["event"] == "error" && !strings.Contains(fmt.Sprint(ev["error"]), "cannot list source directory: permission denied") {
					t.Errorf("error event %v", ev)
				}
			}
			sameSnap(t, "destination", want, fdSnapshot(t, dstTree))
			if !strings.Contains(r.stdout+r.stderr, "not deleting 1 extra entries") {
				t.Errorf("no notice of the deletions held back:\n%s", r)
			}
			evs = again(t, u, dstTree, 1, "sync", src, dst)
			if got, want := errorsByPath(evs), map[string]int{"bad": 1, "bad2": 1}; !mapsEqual(got, want) {
				t.Errorf("second run: errors by path %v, want %v", got, want)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// deepPath is a relative path of more than PATH_MAX (4096) bytes.
func deepPath() string {
	var parts []string
	for i := range 24 {
		parts = append(parts, fmt.Sprintf("%02d-%s", i, strings.Repeat("d", 200)))
	}
	return strings.Join(parts, "/")
}

// makeDeep creates the directories of rel beneath dir one at a time (no
// single path may be that long) and returns a descriptor of the deepest.
func makeDeep(t *testing.T, dir, rel string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	for _, c := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, c, 0o755); err != nil && err != unix.EEXIST {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		must(t, err)
		unix.Close(fd)
		fd = nfd
	}
	return fd
}

func writeAt(t *testing.T, dirfd int, name string, data []byte) {
	t.Helper()
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	must(t, err)
	f := os.NewFile(uintptr(fd), name)
	_, err = f.Write(data)
	must(t, err)
	must(t, f.Close())
}

// TestBeyondPathMax: a tree with paths longer than PATH_MAX (a small and
// a large file, a symlink, a directory) is copied and synced in every
// direction, extras that deep are deleted, and a second run changes
// nothing.
func TestBeyondPathMax(t *testing.T) {
	u := asRoot(t)
	deep := deepPath()
	if len(deep) <= 4096 {
		t.Fatalf("deep path is only %d bytes", len(deep))
	}
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			srcBase, dstBase := t.TempDir(), t.TempDir()
			tree := filepath.Join(srcBase, "tree")
			must(t, os.Mkdir(tree, 0o755))
			fd := makeDeep(t, tree, deep)
			writeAt(t, fd, "small", []byte("deep small file"))
			big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: the chunked path
			writeAt(t, fd, "big", big)
			must(t, unix.Symlinkat("small", fd, "link"))
			must(t, unix.Mkdirat(fd, "leaf", 0o700))
			unix.Close(fd)
			src, dst := d.endpoints(t, u, srcBase, dstBase)
			dstTree := filepath.Join(dstBase, "tree")
			r := u.run(t, "copy", src, dst, "--json")
			if r.code != 0 {
				t.Fatalf("copy: %s", r)
			}
			if _, s := jsonRun(t, r); s.FilesTransferred != 2 {
				t.Errorf("copy: %+v", s)
			}
			sameAsSource(t, tree, dstTree)
			// An extra entry that deep goes with sync.
			fd = makeDeep(t, dstTree, deep)
			writeAt(t, fd, "extra", []byte("extra"))
			unix.Close(fd)
			u.syncTwice(t, "sync", src, dst, tree, dstTree, 0, 1)
		})
	}
}

// replaceTree lays out, at src and dst, one path per pair of types: the
// source has one type and the destination another.
func replaceTree(t *testing.T, src, dst string) {
	t.Helper()
	big := strings.Repeat("B", 3<<20) // beyond the small-file limit
	// Source side.
	for _, p := range []string{"dir-over-file", "dir-over-link", "dir-over-linkdir", "dir-over-bigfile"} {
		writeFile(t, filepath.Join(src, p, "child"), "child of "+p, 0o644)
		writeFile(t, filepath.Join(src, p, "sub/grandchild"), "grandchild", 0o600)
	}
	for _, p := range []string{"file-over-dir", "file-over-emptydir", "file-over-link"} {
		writeFile(t, filepath.Join(src, p), "file "+p, 0o640)
	}
	for _, p := range []string{"bigfile-over-dir", "bigfile-over-link", "bigfile-over-emptydir"} {
		writeFile(t, filepath.Join(src, p), big, 0o644)
	}
	for _, p := range []string{"link-over-file", "link-over-dir", "link-over-emptydir"} {
		must(t, os.Symlink("target-of-"+p, filepath.Join(src, p)))
	}
	// Both: a directory that a symlink at the destination points to.
	writeFile(t, filepath.Join(src, "elsewhere/keep"), "a directory a link points to", 0o644)
	// Destination side.
	writeFile(t, filepath.Join(dst, "elsewhere/keep"), "a directory a link points to", 0o644)
	writeFile(t, filepath.Join(dst, "dir-over-file"), "old file", 0o644)
	must(t, os.Symlink("nowhere", filepath.Join(dst, "dir-over-link")))
	must(t, os.Symlink("elsewhere", filepath.Join(dst, "dir-over-linkdir")))
	writeFile(t, filepath.Join(dst, "dir-over-bigfile"), big+"x", 0o644)
	for _, p := range []string{"file-over-dir", "bigfile-over-dir", "link-over-dir"} {
		writeFile(t, filepath.Join(dst, p, "inner/f"), "inside "+p, 0o644)
	}
	for _, p := range []string{"file-over-emptydir", "bigfile-over-emptydir", "link-over-emptydir"} {
		must(t, os.MkdirAll(filepath.Join(dst, p), 0o755))
	}
	must(t, os.Symlink("elsewhere", filepath.Join(dst, "file-over-link")))
	must(t, os.Symlink("elsewhere/keep", filepath.Join(dst, "bigfile-over-link")))
	writeFile(t, filepath.Join(dst, "link-over-file"), "old file", 0o644)
	old := time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, root := range []string{src, dst} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink == 0 {
				os.Chtimes(p, old, old)
			}
			return nil
		})
	}
}

// TestReplaceEachType: wherever the destination has an entry of another
// type than the source (file, large file, directory, empty directory,
// symlink, symlink to a directory), one run replaces it, in every
// direction. sync replaces everything; copy, like rsync -a without
// --delete, replaces all but a directory that is not empty, which it
// reports (exit 1). The result is what rsync makes of the same trees,
// and a second run changes nothing.
func TestReplaceEachType(t *testing.T) {
	u := asRoot(t)
	for _, mode := range []struct {
		cmd       string
		rsyncArgs []string
		code      int
		kept      []string // non-empty directories copy leaves in place
	}{
		{"sync", []string{"-a", "--delete"}, 0, nil},
		{"copy", []string{"-a"}, 1, []string{"bigfile-over-dir", "file-over-dir", "link-over-dir"}},
	} {
		for _, d := range directions {
			t.Run(mode.cmd+"/"+d.name, func(t *testing.T) {
				srcBase, dstBase, tree, dstTree := u.bases(t)
				replaceTree(t, tree, dstTree)
				ref := filepath.Join(t.TempDir(), "tree")
				copyTree(t, dstTree, ref)
				wantRsync := 0
				if mode.code != 0 {
					wantRsync = 23
				}
				if code := u.rsync(t, append(mode.rsyncArgs, tree+"/", ref+"/")...); code != wantRsync {
					t.Fatalf("rsync exit %d, want %d", code, wantRsync)
				}
				src, dst := d.endpoints(t, u, srcBase, dstBase)
				r := u.run(t, mode.cmd, src, dst, "--json")
				if r.code != mode.code {
					t.Errorf("exit %d, want %d\n%s", r.code, mode.code, r)
				}
				evs, _ := jsonRun(t, r)
				var failed []string
				for _, ev := range evs {
					if ev["event"] == "error" {
						failed = append(failed, fmt.Sprint(ev["path"]))
						if !strings.Contains(fmt.Sprint(ev["error"]), "a directory that is not empty stands at the destination") {
							t.Errorf("error %v", ev)
						}
					}
				}
				sort.Strings(failed)
				if !slices.Equal(failed, mode.kept) {
					t.Errorf("failed %q, want %q", failed, mode.kept)
				}
				sameSnap(t, "xfer vs rsync", fdSnapshot(t, ref), fdSnapshot(t, dstTree))
				if mode.cmd == "sync" {
					sameAsSource(t, tree, dstTree)
				}
				if got := fdSnapshot(t, filepath.Join(dstTree, "elsewhere")); len(got) != 2 {
					t.Errorf("a directory a replaced link pointed to changed: %v", got)
				}
				again(t, u, dstTree, mode.code, mode.cmd, src, dst)
			})
		}
	}
}

// inodeGroups lists the names of each multiply-linked file beneath dir,
// as sorted groups.
func inodeGroups(t *testing.T, dir string) []string {
	t.Helper()
	byIno := map[uint64][]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		rel, _ := filepath.Rel(dir, p)
		byIno[st.Ino] = append(byIno[st.Ino], rel)
		return nil
	})
	var out []string
	for _, names := range byIno {
		if len(names) > 1 {
			sort.Strings(names)
			out = append(out, strings.Join(names, "="))
		}
	}
	sort.Strings(out)
	return out
}

// TestHardLinksJoinExisting: with --hard-links against a destination that
// already holds some of the names (as separate copies, some linked, some
// missing), a new name of a group is linked to the destination's copy and
// separate copies are joined into their group, as rsync -aH does; in every
// direction, and a second run changes nothing.
func TestHardLinksJoinExisting(t *testing.T) {
	u := asRoot(t)
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			srcBase, dstBase, tree, dstTree := u.bases(t)
			old := time.Date(2015, 5, 6, 7, 8, 9, 0, time.UTC)
			// group writes content at the first of names (with the old
			// mtime) and links the others to it.
			group := func(root, content string, names ...string) {
				writeFile(t, filepath.Join(root, names[0]), content, 0o644)
				must(t, os.Chtimes(filepath.Join(root, names[0]), old, old))
				for _, n := range names[1:] {
					must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, n)), 0o755))
					must(t, os.Link(filepath.Join(root, names[0]), filepath.Join(root, n)))
				}
			}
			// Source: a=b=sub/c (small), x=y (large), p=q (new at the
			// destination), solo.
			group(tree, "group one", "a", "b", "sub/c")
			group(tree, strings.Repeat("L", 2<<20), "x", "y")
			group(tree, "group three", "p", "q")
			group(tree, "alone", "solo")
			// Destination, from an earlier copy without --hard-links: a
			// and b separate, sub/c missing; x present, y missing; solo
			// linked to a stray name that stays.
			group(dstTree, "group one", "a")
			group(dstTree, "group one", "b")
			group(dstTree, strings.Repeat("L", 2<<20), "x")
			group(dstTree, "alone", "solo", "stray")
			ref := filepath.Join(t.TempDir(), "tree")
			copyTree(t, dstTree, ref)
			if code := u.rsync(t, "-aH", tree+"/", ref+"/"); code != 0 {
				t.Fatalf("rsync exit %d", code)
			}
			want := []string{"a=b=sub/c", "p=q", "solo=stray", "x=y"}
			if got := inodeGroups(t, ref); !slices.Equal(got, want) {
				t.Fatalf("rsync -aH made groups %q, test expects %q", got, want)
			}
			src, dst := d.endpoints(t, u, srcBase, dstBase)
			dry := u.run(t, "copy", src, dst, "--hard-links", "--json", "--dry-run")
			r := u.run(t, "copy", src, dst, "--hard-links", "--json")
			if r.code != 0 || dry.code != 0 {
				t.Fatalf("%s\ndry run: %s", r, dry)
			}
			// One copy (p) and four links (b joined, sub/c, y, q).
			if _, s := jsonRun(t, r); s.FilesTransferred != 5 {
				t.Errorf("real run: %d files transferred, want 5 (1 copy, 4 links)", s.FilesTransferred)
			} else if _, ds := jsonRun(t, dry); ds.FilesTransferred != s.FilesTransferred {
				t.Errorf("dry run plans %d files, the real run did %d", ds.FilesTransferred, s.FilesTransferred)
			}
			if got := inodeGroups(t, dstTree); !slices.Equal(got, want) {
				t.Errorf("hard-link groups %q, want %q (as rsync -aH)", got, want)
			}
			// rsync -aH leaves directories with the times its links gave
			// them; xfer gives them the source's.
			got := fdSnapshot(t, dstTree)
			sameSnap(t, "xfer vs rsync", dirTimesFrom(fdSnapshot(t, ref), got), got)
			fromSrc := fdSnapshot(t, tree)
			fromSrc["stray"] = got["stray"]
			sameSnap(t, "xfer vs source", fromSrc, got)
			again(t, u, dstTree, 0, "copy", src, dst, "--hard-links")
			if got := inodeGroups(t, dstTree); !slices.Equal(got, want) {
				t.Errorf("after the second run: groups %q, want %q", got, want)
			}
		})
	}
}

// dirTimesFrom returns snap with the mtimes of its directories taken
// from other.
func dirTimesFrom(snap, other map[string]node) map[string]node {
	for p, n := range snap {
		if o, ok := other[p]; ok && n.Type == "dir" && o.Type == "dir" {
			n.Mtime = o.Mtime
			snap[p] = n
		}
	}
	return snap
}

func blocksOf(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Lstat(p, &st))
	return st.Blocks
}

// TestSparseSmallFiles: files up to 1 MiB (the batched path) keep their
// holes, as large ones do: each arrives with no more blocks allocated
// than the source (and than rsync -aS makes of it), while a file of
// written zeros stays fully allocated, as with rsync -a; in every
// direction, and a second run changes nothing.
func TestSparseSmallFiles(t *testing.T) {
	u := asRoot(t)
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			srcBase, dstBase, tree, dstTree := u.bases(t)
			must(t, os.MkdirAll(tree, 0o755))
			sparse := func(name string, size int64, data map[int64]string) {
				f, err := os.Create(filepath.Join(tree, name))
				must(t, err)
				must(t, f.Truncate(size))
				for off, s := range data {
					_, err := f.WriteAt([]byte(s), off)
					must(t, err)
				}
				must(t, f.Close())
			}
			sparse("one-mib", 1<<20, map[int64]string{512 << 10: strings.Repeat("x", 4096)})
			sparse("all-hole", 256<<10, nil)
			sparse("head-and-tail", 300<<10, map[int64]string{0: "head", 300<<10 - 4: "tail"})
			writeFile(t, filepath.Join(tree, "written-zeros"), string(make([]byte, 256<<10)), 0o644)
			for _, n := range []string{"one-mib", "all-hole", "head-and-tail"} {
				if b := blocksOf(t, filepath.Join(tree, n)); b*512 >= 200<<10 {
					t.Skipf("this file system does not keep %s sparse (%d blocks)", n, b)
				}
			}
			ref := filepath.Join(t.TempDir(), "tree")
			if code := u.rsync(t, "-aS", tree+"/", ref+"/"); code != 0 {
				t.Fatalf("rsync exit %d", code)
			}
			src, dst := d.endpoints(t, u, srcBase, dstBase)
			if r := u.run(t, "copy", src, dst); r.code != 0 {
				t.Fatal(r)
			}
			sameAsSource(t, tree, dstTree)
			for _, n := range []string{"one-mib", "all-hole", "head-and-tail"} {
				got, srcB, rs := blocksOf(t, filepath.Join(dstTree, n)), blocksOf(t, filepath.Join(tree, n)), blocksOf(t, filepath.Join(ref, n))
				if got > srcB || got > rs {
					t.Errorf("%s: %d blocks allocated; the source has %d, rsync -aS makes %d", n, got, srcB, rs)
				}
			}
			if got := blocksOf(t, filepath.Join(dstTree, "written-zeros")); got*512 < 256<<10 {
				t.Errorf("written-zeros: only %d blocks allocated; the source is not sparse", got)
			}
			again(t, u, dstTree, 0, "copy", src, dst)
		})
	}
}

// TestTopDirAttributes: the destination directory gets the source
// directory's mode and mtime, as with rsync -a src/ dst/ (a 0700 source
// stays 0700), in every direction, also when it already exists; a second
// run changes nothing.
func TestTopDirAttributes(t *testing.T) {
	u := asRoot(t)
	for _, d := range directions {
		for _, exists := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/exists=%v", d.name, exists), func(t *testing.T) {
				srcBase, dstBase, tree, dstTree := u.bases(t)
				writeFile(t, filepath.Join(tree, "f"), "f", 0o644)
				writeFile(t, filepath.Join(tree, "d/g"), "g", 0o644)
				if exists {
					writeFile(t, filepath.Join(dstTree, "old"), "old", 0o644)
				}
				must(t, os.Chmod(tree, 0o700))
				old := time.Date(2012, 3, 4, 5, 6, 7, 890, time.UTC)
				must(t, os.Chtimes(tree, old, old))
				src, dst := d.endpoints(t, u, srcBase, dstBase)
				if r := u.run(t, "copy", src, dst); r.code != 0 {
					t.Fatal(r)
				}
				want, got := fdSnapshot(t, tree)["."], fdSnapshot(t, dstTree)["."]
				if got != want {
					t.Errorf("destination directory %+v, want %+v (the source's)", got, want)
				}
				again(t, u, dstTree, 0, "copy", src, dst)
			})
		}
	}
}

// TestReadOnlyDestinationUpdate: an unprivileged user updates, adds and
// (with sync) deletes files inside destination directories it owns that
// are read-only (the top directory among them), and removes or replaces
// read-only directories with contents, as rsync does: they are made
// writable for the run and get their modes back; in every direction, and
// a second run changes nothing.
func TestReadOnlyDestinationUpdate(t *testing.T) {
	u := asNobody(t)
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			srcBase, dstBase, tree, dstTree := u.bases(t)
			writeFile(t, filepath.Join(tree, "ro/f"), "version 1", 0o444)
			writeFile(t, filepath.Join(tree, "ro/big"), strings.Repeat("1", 2<<20), 0o444)
			writeFile(t, filepath.Join(tree, "ro/extra"), "goes with sync", 0o444)
			writeFile(t, filepath.Join(tree, "ro/deeper/g"), "g", 0o444)
			writeFile(t, filepath.Join(tree, "top"), "top 1", 0o444)
			writeFile(t, filepath.Join(tree, "gone-ro/sub/f"), "deleted by sync", 0o444)
			writeFile(t, filepath.Join(tree, "ro2/f"), "a directory replaced by a file", 0o444)
			roDirs := []string{"ro/deeper", "ro", "gone-ro/sub", "gone-ro", "ro2", ""}
			u.own(t, srcBase)
			for _, p := range roDirs {
				must(t, os.Chmod(filepath.Join(tree, p), 0o555))
			}
			t.Cleanup(func() {
				for _, root := range []string{tree, dstTree} {
					for _, p := range roDirs {
						os.Chmod(filepath.Join(root, p), 0o755)
					}
				}
			})
			src, dst := d.endpoints(t, u, srcBase, dstBase)
			if r := u.run(t, "copy", src, dst); r.code != 0 {
				t.Fatalf("first copy: %s", r)
			}
			sameAsSource(t, tree, dstTree)
			if m := fdSnapshot(t, dstTree)["ro"].Mode; m != 0o555 {
				t.Fatalf("ro arrived with mode %o", m)
			}
			// Change the source: new content, a new file, one removed, a
			// read-only directory removed and one replaced by a file.
			for _, p := range roDirs {
				must(t, os.Chmod(filepath.Join(tree, p), 0o755))
			}
			must(t, os.RemoveAll(filepath.Join(tree, "gone-ro")))
			must(t, os.RemoveAll(filepath.Join(tree, "ro2")))
			writeFile(t, filepath.Join(tree, "ro2"), "now a file", 0o444)
			writeFile(t, filepath.Join(tree, "ro/f"), "version 2, longer", 0o444)
			writeFile(t, filepath.Join(tree, "ro/big"), strings.Repeat("2", 2<<20), 0o444)
			writeFile(t, filepath.Join(tree, "ro/new"), "new", 0o444)
			writeFile(t, filepath.Join(tree, "ro/deeper/h"), "h", 0o444)
			writeFile(t, filepath.Join(tree, "top"), "top 2", 0o444)
			must(t, os.Remove(filepath.Join(tree, "ro/extra")))
			u.own(t, srcBase)
			for _, p := range []string{"ro/deeper", "ro", ""} {
				must(t, os.Chmod(filepath.Join(tree, p), 0o555))
			}
			u.syncTwice(t, "sync into read-only directories", src, dst, tree, dstTree, 6, 2)
		})
	}
}

// TestSparseAndHardLinks: sparse files stay sparse (and the source is not
// filled in by reading it); hard links stay linked with --hard-links.
func TestSparseAndHardLinks(t *testing.T) {
	src := t.TempDir()
	sp := filepath.Join(src, "sparse.bin")
	f, err := os.Create(sp)
	must(t, err)
	must(t, f.Truncate(48<<20))
	f.WriteAt([]byte(strings.Repeat("data", 1024)), 20<<20)
	f.Close()
	must(t, os.WriteFile(filepath.Join(src, "orig"), []byte("linked"), 0o644))
	must(t, os.Link(filepath.Join(src, "orig"), filepath.Join(src, "alias")))
	blocks := func(p string) int64 {
		var st syscall.Stat_t
		must(t, syscall.Stat(p, &st))
		return st.Blocks
	}
	before := blocks(sp)
	s := startServer(t, t.TempDir())
	if r := xfer(t, "copy", src, s.url("d"), "--hard-links", "--chunk-size", "1M"); r.code != 0 {
		t.Fatal(r)
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
	if got := blocks(filepath.Join(s.root, "d/sparse.bin")); got > before+64 {
		t.Errorf("destination allocates %d blocks, the sparse source %d", got, before)
	}
	if after := blocks(sp); after != before {
		t.Errorf("reading the source allocated its holes: %d -> %d blocks", before, after)
	}
	var a, b syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(s.root, "d/orig"), &a))
	must(t, syscall.Stat(filepath.Join(s.root, "d/alias"), &b))
	if a.Ino != b.Ino {
		t.Error("hard links were not kept")
	}
}
