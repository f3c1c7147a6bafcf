package e2e

// The -X and -A tests: extended attributes and POSIX ACLs through the
// binary in the four directions, against rsync -aX / -aA on the same trees
// (names and values of every attribute, the ACLs among them, on both
// sides, besides the tree itself), each xfer run repeated to show the
// second changes nothing; a sync where only attributes changed updates
// them without sending data; an unprivileged peer keeps what it can and
// says once what it could not.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// xattrsOf reads every extended attribute of every entry of the tree at dir
// (all namespaces: system.posix_acl_* are the ACLs), as "path name" to
// value; symlinks are left out (Linux keeps no user attributes on them).
func xattrsOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		buf := make([]byte, 64<<10)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return fmt.Errorf("listxattr %s: %w", p, err)
		}
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name == "" {
				continue
			}
			val := make([]byte, 64<<10)
			m, err := unix.Lgetxattr(p, name, val)
			if err != nil {
				return fmt.Errorf("getxattr %s %s: %w", p, name, err)
			}
			out[rel+" "+name] = string(val[:m])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffXattrs words how got differs from want.
func diffXattrs(want, got map[string]string, ref, gotName string) []string {
	var out []string
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: %s has it (%q), %s does not", k, ref, v, gotName))
		case g != v:
			out = append(out, fmt.Sprintf("%s: %q after %s, %q after %s", k, v, ref, g, gotName))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %s has it (%q), %s does not", k, gotName, v, ref))
		}
	}
	sort.Strings(out)
	return out
}

// xattrOp is one change of an entry's attributes: a name set to a value
// (setfattr), removed (value "-"), or an ACL given to setfacl (name "acl",
// value its -m argument; name "dacl" for -d -m).
type xattrOp struct{ path, name, value string }

func applyXattrs(t *testing.T, dir string, ops []xattrOp) {
	t.Helper()
	for _, o := range ops {
		p := filepath.Join(dir, o.path)
		var args []string
		switch {
		case o.name == "acl":
			args = []string{"setfacl", "-m", o.value, p}
		case o.name == "dacl":
			args = []string{"setfacl", "-d", "-m", o.value, p}
		case o.value == "-":
			args = []string{"setfattr", "-x", o.name, p}
		default:
			args = []string{"setfattr", "-n", o.name, "-v", o.value, p}
		}
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// xattrSource is the source tree of the -X/-A cases: files and
// directories with user, trusted and security attributes and ACLs (some
// with values the size of an ext4 block), a read-only file, a symlink.
func xattrSource() ([]ent, []xattrOp) {
	big := strings.Repeat("v", 3000)
	ents := []ent{
		fileE("a.txt", "alpha"),
		fileE("ro.txt", "read only").m(0o444),
		dirE("d"),
		fileE("d/b.bin", rnd(300<<10, 7)),
		fileE("d/plain", "no attributes"),
		dirE("d/e"),
		linkE("lnk", "a.txt"),
	}
	ops := []xattrOp{
		{".", "user.top", "t"},
		{"a.txt", "user.one", "1"},
		{"a.txt", "user.empty", ""},
		{"a.txt", "trusted.root", "r"},
		{"ro.txt", "user.ro", "kept on a read-only file"},
		{"d", "user.dir", "dv"},
		{"d/b.bin", "user.big", big},
		{"d/b.bin", "security.xfer", "s"},
		{"d/b.bin", "acl", "u:nobody:r,g:nogroup:rw"},
		{"d/e", "dacl", "u:nobody:rx"},
		{"d/e", "acl", "u:nobody:rwx"},
	}
	return ents, ops
}

// xattrDest is the destination before the sync case: the same files, with
// attributes and ACLs the source lacks or has otherwise.
func xattrDest() ([]ent, []xattrOp) {
	ents, _ := xattrSource()
	return ents, []xattrOp{
		{"a.txt", "user.one", "old"},
		{"a.txt", "user.extra", "goes"},
		{"d/plain", "user.extra", "goes"},
		{"d/plain", "acl", "u:nobody:rwx"},
		{"d", "dacl", "u:nobody:r"},
		{"d/e", "trusted.extra", "goes"},
	}
}

// xattrCase is one row: the flags of both tools, and whether the
// destination exists before (a sync with --delete).
type xattrCase struct {
	name   string
	xflags []string
	rflags []string
	cmd    string
	pre    bool
	// changed is how many entries the attributes-only change below
	// touches within the case's scope.
	changed int64
}

func TestXattrsDifferential(t *testing.T) {
	needTool(t, "rsync", "the reference of the -X/-A tests (make deps)")
	needTool(t, "setfattr", "sets the attributes of the test trees (Debian package attr; make deps)")
	needTool(t, "setfacl", "sets the ACLs of the test trees (Debian package acl; make deps)")
	if os.Geteuid() != 0 {
		t.Skip("needs root: the trees carry trusted.* attributes, as rsync -X as root keeps them")
	}
	base := openBase(t)
	probe := filepath.Join(base, "probe")
	must(t, os.WriteFile(probe, nil, 0o644))
	if err := unix.Setxattr(probe, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("the test directory's file system keeps no user attributes: %v", err)
	}
	rootA, rootB := filepath.Join(base, "peerA"), filepath.Join(base, "peerB")
	must(t, os.Mkdir(rootA, 0o755))
	must(t, os.Mkdir(rootB, 0o755))
	a := startServerOn(t, "127.0.0.1", rootA, "--umask", "000")
	b := startServerOn(t, "127.0.0.2", rootB, "--umask", "000")
	type end struct {
		dir string
		arg func(string) string
	}
	sides := map[string]end{
		"local": {base, func(p string) string { return filepath.Join(base, p) }},
		"peerA": {rootA, a.url},
		"peerB": {rootB, b.url},
	}
	dirs := []struct{ name, src, dst string }{
		{"local-local", "local", "local"},
		{"local-peer", "local", "peerA"},
		{"peer-local", "peerA", "local"},
		{"peer-peer", "peerA", "peerB"},
	}
	cases := []xattrCase{
		{name: "X-copy", xflags: []string{"-X"}, rflags: []string{"-aX"}, cmd: "copy", changed: 3},
		{name: "A-copy", xflags: []string{"-A"}, rflags: []string{"-aA"}, cmd: "copy", changed: 1},
		{name: "XA-sync", xflags: []string{"-X", "-A"}, rflags: []string{"-aXA", "--delete"}, cmd: "sync", pre: true, changed: 3},
		{name: "X-sync", xflags: []string{"-X"}, rflags: []string{"-aX", "--delete"}, cmd: "sync", pre: true, changed: 3},
		{name: "none-sync", rflags: []string{"-a", "--delete"}, cmd: "sync", pre: true},
	}
	srcEnts, srcOps := xattrSource()
	dstEnts, dstOps := xattrDest()
	build := func(dir string, ents []ent, ops []xattrOp) {
		buildTree(t, dir, ents, nil, "")
		applyXattrs(t, dir, ops)
		// Attributes and ACLs change no mtime, but setfacl may change modes:
		// the trees are compared as they stand now.
	}
	for _, c := range cases {
		for _, d := range dirs {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				key := c.name + "-" + d.name
				ref := filepath.Join(base, key, "rsync-dst")
				refSrc := filepath.Join(base, key, "rsync-src")
				build(refSrc, srcEnts, srcOps)
				if c.pre {
					build(ref, dstEnts, dstOps)
				}
				r := runCmd(t, nil, "rsync", append(c.rflags, refSrc+"/", ref+"/")...)
				if r.code != 0 {
					t.Fatalf("rsync %s: %s", strings.Join(c.rflags, " "), r)
				}
				se, de := sides[d.src], sides[d.dst]
				srcRel, dstRel := key+"/src-"+d.src, key+"/dst-"+d.dst
				srcDir, dstDir := filepath.Join(se.dir, srcRel), filepath.Join(de.dir, dstRel)
				must(t, os.MkdirAll(filepath.Dir(srcDir), 0o755))
				must(t, os.MkdirAll(filepath.Dir(dstDir), 0o755))
				build(srcDir, srcEnts, srcOps)
				if c.pre {
					build(dstDir, dstEnts, dstOps)
				}
				args := append(append([]string{c.cmd, "--json"}, c.xflags...), se.arg(srcRel)+"/", de.arg(dstRel)+"/")
				var first ftree
				for run := 1; run <= 2; run++ {
					r := xfer(t, args...)
					if r.code != 0 {
						t.Fatalf("run %d: xfer %s: %s", run, strings.Join(args, " "), r)
					}
					if strings.Contains(r.stderr, "not kept") {
						t.Errorf("run %d: a root run keeps everything, but said:\n%s", run, r.stderr)
					}
					_, sum := jsonRun(t, r)
					if run == 2 && (sum.FilesTransferred != 0 || sum.XattrsUpdated != 0 || sum.FilesDeleted != 0) {
						t.Errorf("second run changed something: %d files, %d attribute sets, %d deleted\n%s", sum.FilesTransferred, sum.XattrsUpdated, sum.FilesDeleted, r)
					}
					if run == 1 && c.pre && len(c.xflags) > 0 && sum.XattrsUpdated == 0 {
						t.Errorf("first run over a destination with other attributes updated none:\n%s", r)
					}
					got := scanTree(t, dstDir)
					if lines := diffTrees(scanTree(t, ref), got, cmpOpts{ref: "rsync", got: "xfer"}); len(lines) > 0 {
						t.Errorf("run %d: the trees differ:\n%s", run, report(lines))
					}
					if lines := diffXattrs(xattrsOf(t, ref), xattrsOf(t, dstDir), "rsync", "xfer"); len(lines) > 0 {
						t.Errorf("run %d: the attributes differ:\n%s", run, strings.Join(lines, "\n"))
					}
					if run == 1 {
						first = got
					} else if lines := diffTrees(first, got, cmpOpts{ref: "run 1", got: "run 2", inodes: true}); len(lines) > 0 {
						t.Errorf("the second run changed the tree:\n%s", report(lines))
					}
				}
				if len(c.xflags) == 0 {
					return
				}
				// Only attributes change: they are updated as rsync updates
				// them, no data is sent, and the files stay the same inodes.
				change := []xattrOp{{"d/b.bin", "user.big", "changed"}, {"a.txt", "user.one", "-"}, {"d/plain", "user.new", "n"}, {"d/plain", "acl", "u:nobody:rw"}}
				applyXattrs(t, srcDir, change)
				applyXattrs(t, refSrc, change)
				if r := runCmd(t, nil, "rsync", append(c.rflags, refSrc+"/", ref+"/")...); r.code != 0 {
					t.Fatalf("rsync %s: %s", strings.Join(c.rflags, " "), r)
				}
				before := scanTree(t, dstDir)
				r = xfer(t, args...)
				if r.code != 0 {
					t.Fatalf("xfer %s after changing attributes only: %s", strings.Join(args, " "), r)
				}
				_, sum := jsonRun(t, r)
				if sum.FilesTransferred != 0 || sum.BytesSent != 0 || sum.XattrsUpdated != c.changed {
					t.Errorf("after changing the attributes of files only: %d files, %d bytes sent, %d attribute sets updated; want 0, 0, %d\n%s",
						sum.FilesTransferred, sum.BytesSent, sum.XattrsUpdated, c.changed, r)
				}
				after := scanTree(t, dstDir)
				for p, n := range before {
					if after[p].Ino != n.Ino {
						t.Errorf("%s: an attributes-only sync replaced it (inode %d, was %d)", p, after[p].Ino, n.Ino)
					}
				}
				// (An attribute moving out of the inode changes st_blocks.)
				if lines := diffTrees(noBlocks(scanTree(t, ref)), noBlocks(after), cmpOpts{ref: "rsync", got: "xfer"}); len(lines) > 0 {
					t.Errorf("after an attributes-only sync, the trees differ:\n%s", report(lines))
				}
				if lines := diffXattrs(xattrsOf(t, ref), xattrsOf(t, dstDir), "rsync", "xfer"); len(lines) > 0 {
					t.Errorf("after an attributes-only sync, the attributes differ:\n%s", strings.Join(lines, "\n"))
				}
			})
		}
	}
}

// TestXattrsUnprivilegedPeer: a peer running as an unprivileged user keeps
// the user attributes and ACLs and cannot keep trusted.* and security.*;
// the run succeeds and says so once, in one line, on every run.
func TestXattrsUnprivilegedPeer(t *testing.T) {
	needTool(t, "setfattr", "sets the attributes of the test trees (Debian package attr; make deps)")
	needTool(t, "setfacl", "sets the ACLs of the test trees (Debian package acl; make deps)")
	if os.Geteuid() != 0 {
		t.Skip("needs root, to start a peer as another user and to set trusted.* attributes")
	}
	nobody := lookupNobody()
	if nobody == nil {
		t.Skip("no user nobody to run the peer as")
	}
	base := openBase(t)
	// A copy of the binary that the unprivileged user may run.
	bin := filepath.Join(base, "xfer")
	data, err := os.ReadFile(xferBin)
	must(t, err)
	must(t, os.WriteFile(bin, data, 0o755))
	root := filepath.Join(base, "peer")
	must(t, os.Mkdir(root, 0o755))
	must(t, os.Chown(root, nobody.uid, nobody.gid))
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.3:0", "--root", root, "--umask", "000")
	cmd.Env = baseEnv(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred(nobody)}
	srv := startServerCmd(t, cmd, root)
	src := filepath.Join(base, "src")
	ents, ops := xattrSource()
	buildTree(t, src, ents, nil, "")
	applyXattrs(t, src, ops)
	for run := 1; run <= 2; run++ {
		r := xfer(t, "sync", "-X", "-A", src+"/", srv.url("dst")+"/")
		if r.code != 0 {
			t.Fatalf("run %d: %s", run, r)
		}
		if n := strings.Count(r.stderr, "not kept"); n != 1 {
			t.Errorf("run %d: want one line saying what was not kept, got %d:\n%s", run, n, r.stderr)
		}
		if !strings.Contains(r.stderr, "2 not kept on 2 entries") || !strings.Contains(r.stderr, "only root may set it") {
			t.Errorf("run %d: the notice does not say what was not kept and why:\n%s", run, r.stderr)
		}
	}
	want := map[string]string{}
	for k, v := range xattrsOf(t, src) {
		if !strings.Contains(k, " trusted.") && !strings.Contains(k, " security.") {
			want[k] = v
		}
	}
	if lines := diffXattrs(want, xattrsOf(t, filepath.Join(root, "dst")), "the source (user attributes and ACLs)", "the peer"); len(lines) > 0 {
		t.Errorf("%s", strings.Join(lines, "\n"))
	}
}

// openBase is a directory for the trees that every user may enter (a
// test's TempDir is in one only its owner may), removed at the end.
func openBase(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "xfer-xattrs-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	return base
}

// noBlocks is tr without allocation counts.
func noBlocks(tr ftree) ftree {
	out := ftree{}
	for p, n := range tr {
		n.Blocks = 0
		out[p] = n
	}
	return out
}
