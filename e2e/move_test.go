package e2e

// move, copyto, moveto, delete and purge through the binary on every kind
// of location (local, a served peer, ssh://), each against rclone's
// command of the same name on the same tree, and rerun to show the second
// run changes nothing.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// site is where one side of a test lives: a directory on this machine
// reached as a local path, through a served peer, or through ssh.
type site struct {
	kind string // local, peer, named (a peer named in the config file), ssh
	base string // the directory on disk
	srv  *server
	ssh  *sshHost
	cfg  string // named: the config file naming the peer "lab"
}

// siteKinds are the location kinds every command is tried on.
func siteKinds() []string { return []string{"local", "peer", "named", "ssh"} }

// newSite makes an empty site of kind (skipping the test where ssh is
// not available); extra are flags of its server.
func newSite(t *testing.T, kind string, extra ...string) *site {
	t.Helper()
	s := &site{kind: kind, base: t.TempDir()}
	switch kind {
	case "peer":
		s.srv = startServer(t, s.base, extra...)
	case "named":
		s.srv = startServer(t, s.base, extra...)
		s.cfg = filepath.Join(t.TempDir(), "xfer.yaml")
		must(t, os.WriteFile(s.cfg, []byte("remotes:\n  lab:\n    url: "+s.srv.url("")+"\n"), 0o600))
	case "ssh":
		s.ssh = startSSHD(t)
	}
	return s
}

// loc is the location of rel beneath the site.
func (s *site) loc(rel string) string {
	switch s.kind {
	case "peer":
		return s.srv.url(rel)
	case "named":
		return "lab:" + rel
	case "ssh":
		return s.ssh.url(filepath.Join(s.base, rel))
	}
	return filepath.Join(s.base, rel)
}

// flags are those the site's locations need.
func (s *site) flags() []string {
	switch {
	case s.ssh != nil:
		return s.ssh.flags()
	case s.cfg != "":
		return []string{"--config", s.cfg}
	}
	return nil
}

// path is rel beneath the site on disk.
func (s *site) path(rel string) string { return filepath.Join(s.base, rel) }

// runJSON runs xfer args... --json with the sites' flags and parses what
// it printed.
func runJSON(t *testing.T, sites []*site, args ...string) (xrun, summary) {
	t.Helper()
	args = append(args, "--json")
	for _, s := range sites {
		args = append(args, s.flags()...)
	}
	x := parseRun(xfer(t, args...))
	if x.sum == nil {
		t.Fatalf("xfer %q: no summary: %s", args, x.result)
	}
	return x, x.sum.summary
}

// summaryLine is the summary xfer args... (--json) printed last as r,
// read alone.
func summaryLine(t *testing.T, args []string, r result) summary {
	t.Helper()
	var sum summary
	out := strings.TrimSpace(r.stdout)
	if err := json.Unmarshal([]byte(out[strings.LastIndexByte(out, '\n')+1:]), &sum); err != nil || sum.Event != "summary" {
		t.Fatalf("xfer %q: no summary: %s", args, head(r.String(), 3000))
	}
	return sum
}

// flagCase is one way to run a command: its name and flags.
type flagCase struct {
	name  string
	flags []string
}

// moveTree is the source of the move tests: nested files, a large file
// (several chunks), an empty directory, and files the filtered cases
// keep (*.keep).
func moveTree() []ent {
	return []ent{
		fileE("a.txt", "alpha\n"),
		fileE("same.txt", "already there\n"),
		fileE("d/b.txt", "bravo\n"),
		fileE("d/e/c.keep", "kept by the filter\n"),
		fileE("d/e/f.txt", "foxtrot\n"),
		fileE("big/large.bin", rnd(3<<20+123, 7)),
		dirE("empty"),
		fileE("only.keep", "kept\n"),
	}
}

// moveDst is what the destination holds before a move: one file the same
// as the source's, one that differs, one of its own.
func moveDst() []ent {
	return []ent{
		fileE("same.txt", "already there\n"),
		fileE("d/b.txt", "an older bravo, longer\n"),
		fileE("mine.txt", "the destination's own\n"),
	}
}

// compareRclone fails t with every difference between rclone's tree and
// xfer's.
func compareRclone(t *testing.T, what, rcloneDir, xferDir string) {
	t.Helper()
	if d := diffTrees(scanTree(t, rcloneDir), scanTree(t, xferDir), cmpOpts{ref: "rclone", got: "xfer", rclone: true}); len(d) > 0 {
		t.Errorf("%s: xfer differs from rclone:\n%s", what, report(d))
	}
}

// unchanged fails t if the tree at dir is not before, inodes included:
// what (a second run, a dry run, the inspect commands) was to change
// nothing.
func unchanged(t *testing.T, what string, before ftree, dir string) {
	t.Helper()
	if d := diffTrees(before, scanTree(t, dir), cmpOpts{ref: "before", got: "after", inodes: true}); len(d) > 0 {
		t.Errorf("%s changed %s:\n%s", what, dir, report(d))
	}
}

// rcloneRun runs rclone args... and fails the test if it fails.
func rcloneRun(t *testing.T, args ...string) {
	t.Helper()
	needRclone(t)
	if r := runCmd(t, nil, "rclone", args...); r.code != 0 {
		t.Fatalf("the reference run rclone %q failed: %s", args, r)
	}
}

// twoSites returns the sites of a transfer from kind a to kind b.
func twoSites(t *testing.T, a, b string) (*site, *site) {
	t.Helper()
	src := newSite(t, a)
	if a == b && a != "local" {
		return src, src
	}
	return src, newSite(t, b)
}

// movePairs are the directions a move is tried in.
func movePairs() [][2]string {
	return [][2]string{{"local", "local"}, {"local", "peer"}, {"peer", "local"}, {"peer", "peer"}, {"local", "named"}, {"named", "local"}, {"local", "ssh"}, {"ssh", "local"}}
}

// TestMoveDifferential moves the same tree with rclone move and xfer move
// (plain, --delete-empty-src-dirs, filtered, --checksum) in every direction and
// compares both sides afterwards; a second xfer move changes nothing.
func TestMoveDifferential(t *testing.T) {
	needRclone(t)
	for _, c := range []flagCase{
		{"plain", nil},
		{"empty-src-dirs", []string{"--delete-empty-src-dirs"}},
		{"filtered", []string{"--exclude", "*.keep", "--delete-empty-src-dirs"}},
		{"checksum", []string{"--checksum"}},
	} {
		for _, pair := range movePairs() {
			t.Run(c.name+"/"+pair[0]+"-"+pair[1], func(t *testing.T) {
				ref := t.TempDir()
				buildTree(t, filepath.Join(ref, "src"), moveTree(), nil, "")
				buildTree(t, filepath.Join(ref, "dst"), moveDst(), nil, "d")
				rcloneRun(t, append(append([]string{"move", "--create-empty-src-dirs"}, c.flags...),
					filepath.Join(ref, "src"), filepath.Join(ref, "dst"))...)

				ss, ds := twoSites(t, pair[0], pair[1])
				buildTree(t, ss.path("src"), moveTree(), nil, "")
				buildTree(t, ds.path("dst"), moveDst(), nil, "d")
				args := append([]string{"move", ss.loc("src"), ds.loc("dst"), "--chunk-size", "1M"}, c.flags...)
				x, sum := runJSON(t, []*site{ss, ds}, args...)
				if x.code != 0 || sum.Errors != 0 {
					t.Fatalf("xfer move: %s", x.result)
				}
				if sum.SourceRemoved == 0 {
					t.Errorf("the summary counts no source file removed: %+v", sum)
				}
				compareRclone(t, "source", filepath.Join(ref, "src"), ss.path("src"))
				compareRclone(t, "destination", filepath.Join(ref, "dst"), ds.path("dst"))

				before := [2]ftree{scanTree(t, ss.path("src")), scanTree(t, ds.path("dst"))}
				x, sum = runJSON(t, []*site{ss, ds}, args...)
				if x.code != 0 || sum.FilesTransferred != 0 || sum.SourceRemoved != 0 || sum.DirsRemoved != 0 {
					t.Errorf("the second move did something: %+v\n%s", sum, x.result)
				}
				for i, dir := range []string{ss.path("src"), ds.path("dst")} {
					unchanged(t, "the second move", before[i], dir)
				}
			})
		}
	}
}

// TestMoveDryRun: -n says what a move would transfer and remove, and
// changes neither side.
func TestMoveDryRun(t *testing.T) {
	for _, kind := range siteKinds() {
		t.Run(kind, func(t *testing.T) {
			ss, ds := twoSites(t, "local", kind)
			buildTree(t, ss.path("src"), moveTree(), nil, "")
			before := scanTree(t, ss.path("src"))
			x, sum := runJSON(t, []*site{ds}, "move", "-n", ss.loc("src"), ds.loc("dst"), "--delete-empty-src-dirs")
			if x.code != 0 || !sum.DryRun {
				t.Fatalf("move -n: %s", x.result)
			}
			if sum.SourceRemoved != 7 || !hasEvent(x, "source_removed", "d/e/f.txt") {
				t.Errorf("move -n announces %d source removals, want 7 (d/e/f.txt among them):\n%s", sum.SourceRemoved, x.stdout)
			}
			unchanged(t, "move -n", before, ss.path("src"))
			if _, err := os.Lstat(ds.path("dst")); err == nil {
				t.Errorf("move -n created the destination")
			}
		})
	}
}

// deleteTree is what the delete and purge tests remove from.
func deleteTree() []ent {
	return []ent{
		fileE("a.txt", "alpha\n"),
		fileE("d/b.txt", "bravo\n"),
		fileE("d/e/c.keep", "kept\n"),
		fileE("d/f/g.txt", "golf\n"),
		dirE("empty"),
		fileE("big.bin", rnd(200<<10, 3)),
	}
}

// TestDeleteDifferential runs rclone delete and xfer delete (plain,
// --rmdirs, filtered) on the same tree on every location kind and
// compares what is left; a second delete removes nothing.
func TestDeleteDifferential(t *testing.T) {
	needRclone(t)
	for _, c := range []flagCase{
		{"plain", nil},
		{"rmdirs", []string{"--rmdirs"}},
		{"filtered", []string{"--exclude", "*.keep"}},
		{"min-size", []string{"--min-size", "100K"}},
	} {
		for _, kind := range siteKinds() {
			t.Run(c.name+"/"+kind, func(t *testing.T) {
				ref := t.TempDir()
				buildTree(t, filepath.Join(ref, "t"), deleteTree(), nil, "")
				rcloneRun(t, append(append([]string{"delete"}, c.flags...), filepath.Join(ref, "t"))...)

				s := newSite(t, kind)
				buildTree(t, s.path("t"), deleteTree(), nil, "")
				args := append([]string{"delete", s.loc("t")}, c.flags...)
				x, sum := runJSON(t, []*site{s}, args...)
				if x.code != 0 || sum.Errors != 0 || sum.FilesDeleted == 0 {
					t.Fatalf("xfer delete: %+v %s", sum, x.result)
				}
				compareRclone(t, "delete", filepath.Join(ref, "t"), s.path("t"))
				before := scanTree(t, s.path("t"))
				x, sum = runJSON(t, []*site{s}, args...)
				if x.code != 0 || sum.FilesDeleted != 0 || sum.DirsRemoved != 0 {
					t.Errorf("the second delete removed something: %+v\n%s", sum, x.result)
				}
				unchanged(t, "the second delete", before, s.path("t"))
			})
		}
	}
}

// TestPurgeDifferential: rclone purge and xfer purge of the same
// directory leave the same parent on every location kind; purging it
// again finds nothing (exit 2) and changes nothing; -n removes nothing.
func TestPurgeDifferential(t *testing.T) {
	needRclone(t)
	for _, kind := range siteKinds() {
		t.Run(kind, func(t *testing.T) {
			ref := t.TempDir()
			buildTree(t, filepath.Join(ref, "t"), deleteTree(), nil, "")
			rcloneRun(t, "purge", filepath.Join(ref, "t", "d"))

			s := newSite(t, kind)
			buildTree(t, s.path("t"), deleteTree(), nil, "")
			before := scanTree(t, s.path("t"))
			x, sum := runJSON(t, []*site{s}, "purge", "-n", s.loc("t/d"))
			if x.code != 0 || !sum.DryRun || sum.FilesDeleted != 3 {
				t.Errorf("purge -n: %+v %s", sum, x.result)
			}
			unchanged(t, "purge -n", before, s.path("t"))
			x, sum = runJSON(t, []*site{s}, "purge", s.loc("t/d"))
			if x.code != 0 || sum.FilesDeleted != 3 || sum.DirsRemoved != 3 {
				t.Fatalf("xfer purge: %+v %s", sum, x.result)
			}
			compareRclone(t, "purge", filepath.Join(ref, "t"), s.path("t"))
			after := scanTree(t, s.path("t"))
			x, _ = runJSON(t, []*site{s}, "purge", s.loc("t/d"))
			if x.code != 2 || !strings.Contains(x.stdout, "does not exist") {
				t.Errorf("purging again: want exit 2 and \"does not exist\": %s", x.result)
			}
			unchanged(t, "the second purge", after, s.path("t"))
		})
	}
}

// TestPurgeRefusesRoots: purge refuses "/" and the root a peer serves,
// with one clear line and exit 2, and removes nothing.
func TestPurgeRefusesRoots(t *testing.T) {
	s := newSite(t, "peer")
	buildTree(t, s.path("t"), deleteTree(), nil, "")
	before := scanTree(t, s.base)
	for _, c := range []struct{ loc, want string }{
		{"/", "refusing to remove /"},
		{s.srv.url(""), "refusing to remove the root the server serves"},
		{"xfer://" + s.srv.addr, "refusing to remove the root the server serves"},
	} {
		r := xfer(t, "purge", c.loc)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("purge %s: want exit 2 and one line saying %q: %s", c.loc, c.want, r)
		}
	}
	unchanged(t, "a refused purge", before, s.base)
}

// TestCopytoMovetoDifferential: one file and one directory to another
// name with rclone copyto/moveto and xfer copyto/moveto, in every
// direction; a second run changes nothing.
func TestCopytoMovetoDifferential(t *testing.T) {
	needRclone(t)
	for _, cmd := range []string{"copyto", "moveto"} {
		for _, what := range []string{"d/b.txt", "big.bin", "d"} {
			for _, pair := range movePairs() {
				t.Run(cmd+"/"+strings.ReplaceAll(what, "/", "_")+"/"+pair[0]+"-"+pair[1], func(t *testing.T) {
					dstTree := moveDst()
					if what == "d" {
						// Into a directory that exists: rclone would rename
						// the whole source directory on one file system
						// instead (see docs/differences.md).
						dstTree = append(dstTree, fileE("sub/renamed/own.txt", "its own\n"))
					}
					ref := t.TempDir()
					buildTree(t, filepath.Join(ref, "src"), deleteTree(), nil, "")
					buildTree(t, filepath.Join(ref, "dst"), dstTree, nil, "d")
					rcloneRun(t, cmd, filepath.Join(ref, "src", what), filepath.Join(ref, "dst", "sub", "renamed"))

					ss, ds := twoSites(t, pair[0], pair[1])
					buildTree(t, ss.path("src"), deleteTree(), nil, "")
					buildTree(t, ds.path("dst"), dstTree, nil, "d")
					args := []string{cmd, ss.loc("src/" + what), ds.loc("dst/sub/renamed"), "--chunk-size", "64K"}
					x, sum := runJSON(t, []*site{ss, ds}, args...)
					if x.code != 0 || sum.Errors != 0 || sum.FilesTransferred == 0 {
						t.Fatalf("xfer %s: %+v %s", cmd, sum, x.result)
					}
					compareRclone(t, "source", filepath.Join(ref, "src"), ss.path("src"))
					compareRclone(t, "destination", filepath.Join(ref, "dst"), ds.path("dst"))
					before := scanTree(t, ds.path("dst"))
					x, sum = runJSON(t, []*site{ss, ds}, args...)
					if cmd == "moveto" && what != "d" {
						// The source file is gone: nothing to move.
						if x.code != 2 || !strings.Contains(x.stdout, "does not exist") {
							t.Errorf("moveto again: want exit 2, the source does not exist: %s", x.result)
						}
					} else if x.code != 0 || sum.FilesTransferred != 0 || sum.SourceRemoved != 0 {
						t.Errorf("the second %s did something: %+v\n%s", cmd, sum, x.result)
					}
					unchanged(t, "the second "+cmd, before, ds.path("dst"))
				})
			}
		}
	}
}

// TestRemovalReadOnlyPeer: a peer serving read-only refuses delete,
// purge and a move's removals with a clear error; the move still copies,
// and nothing is removed anywhere.
func TestRemovalReadOnlyPeer(t *testing.T) {
	s := newSite(t, "peer", "--read-only")
	buildTree(t, s.path("t"), deleteTree(), nil, "")
	before := scanTree(t, s.base)
	for _, args := range [][]string{
		{"delete", s.loc("t")},
		{"delete", s.loc("t/a.txt")},
		{"purge", s.loc("t/d")},
	} {
		x, _ := runJSON(t, nil, args...)
		if x.code != 1 || !strings.Contains(x.stdout, "read-only") {
			t.Errorf("xfer %q on a read-only peer: want exit 1 and an error saying read-only: %s", args, x.result)
		}
	}
	dst := filepath.Join(t.TempDir(), "dst")
	x, sum := runJSON(t, nil, "move", s.loc("t"), dst)
	if x.code != 1 || !strings.Contains(x.stdout, "read-only") || sum.SourceRemoved != 0 || sum.FilesTransferred != 5 {
		t.Errorf("move from a read-only peer: want the files copied, none removed, exit 1 saying read-only: %+v %s", sum, x.result)
	}
	sameTree(t, s.path("t"), dst)
	unchanged(t, "the read-only peer's tree", before, s.base)
}

// TestMoveInterrupted kills a slow move (client killed mid-run, in both
// directions through a peer) and checks that every file is whole on at
// least one side; running the move again finishes it.
func TestMoveInterrupted(t *testing.T) {
	for _, pair := range [][2]string{{"local", "peer"}, {"peer", "local"}} {
		t.Run(pair[0]+"-"+pair[1], func(t *testing.T) {
			ss, ds := twoSites(t, pair[0], pair[1])
			var ents []ent
			for i := range 12 {
				ents = append(ents, fileE("f"+string(rune('a'+i))+".bin", rnd(1<<20, uint64(i+1))))
			}
			buildTree(t, ss.path("src"), ents, nil, "")
			want := scanTree(t, ss.path("src"))
			b := startXfer(t, "move", ss.loc("src"), ds.loc("dst"), "--bwlimit", "2M", "--chunk-size", "256K", "--transfers", "2")
			// Kill it once some files are across, bounded in time.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if n, _ := filepath.Glob(filepath.Join(ds.path("dst"), "f*.bin")); len(n) >= 3 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			must(t, b.cmd.Process.Signal(syscall.SIGKILL))
			b.wait(t)
			src, dst := scanTree(t, ss.path("src")), scanTree(t, ds.path("dst"))
			if len(dst) < 3 {
				t.Fatalf("the move was killed before it copied anything")
			}
			for p, w := range want {
				if p == "." {
					continue
				}
				if s, ok := src[p]; ok && s.Sum == w.Sum {
					continue
				}
				if d, ok := dst[p]; ok && d.Sum == w.Sum {
					continue
				}
				t.Errorf("%s is whole on neither side after the killed move", p)
			}
			x, sum := runJSON(t, []*site{ss, ds}, "move", ss.loc("src"), ds.loc("dst"))
			if x.code != 0 || sum.Errors != 0 {
				t.Fatalf("rerunning the move: %s", x.result)
			}
			got := scanTree(t, ds.path("dst"))
			for p, w := range want {
				if p != "." && got[p].Sum != w.Sum {
					t.Errorf("%s is not whole at the destination after the rerun", p)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(ss.path("src"), "*")); len(left) != 0 {
				t.Errorf("files left at the source after the rerun: %v", left)
			}
		})
	}
}

// TestRemovalConfined: removals on a peer stay beneath its root: a path
// that climbs out is refused before anything is done, and a symlink that
// leads outside is removed itself, never what it points to (delete of the
// tree holding it, delete and purge of the link).
func TestRemovalConfined(t *testing.T) {
	s := newSite(t, "peer")
	outside := t.TempDir()
	buildTree(t, filepath.Join(outside, "keep"), deleteTree(), nil, "")
	want := scanTree(t, outside)
	for _, args := range [][]string{
		{"delete", s.srv.url("../" + filepath.Base(outside))},
		{"purge", s.srv.url("t/../../x")},
	} {
		if r := xfer(t, args...); r.code != 2 || !strings.Contains(r.stderr, "served root") {
			t.Errorf("xfer %q: want exit 2 saying the path leaves the served root: %s", args, r)
		}
	}
	for _, args := range [][]string{
		{"delete", s.loc("t")},
		{"delete", s.loc("t2/out")},
		{"purge", s.loc("t3/out")},
	} {
		top := strings.Split(strings.TrimPrefix(args[1], s.srv.url("")), "/")[0]
		buildTree(t, s.path(top), []ent{fileE("a.txt", "a\n"), linkE("out", filepath.Join(outside, "keep"))}, nil, "")
		x, _ := runJSON(t, nil, args...)
		if x.code != 0 {
			t.Errorf("xfer %q: %s", args, x.result)
		}
		if _, err := os.Lstat(s.path(top + "/out")); err == nil {
			t.Errorf("xfer %q left the symlink", args)
		}
		unchanged(t, "xfer "+strings.Join(args, " "), want, outside)
	}
}

// TestMovetoRename: moveto renames a file within its own directory on
// every location kind (as rclone moveto does), and refuses to move a file
// or a directory onto itself or into itself, which would remove the only
// copy: exit 2, nothing changed.
func TestMovetoRename(t *testing.T) {
	for _, kind := range siteKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newSite(t, kind)
			buildTree(t, s.path("d"), []ent{fileE("a.txt", "alpha\n"), fileE("s/x", "x\n")}, nil, "")
			before := scanTree(t, s.base)
			for _, c := range [][2]string{{"d/a.txt", "d/a.txt"}, {"d/a.txt", "d/s/../a.txt"}, {"d", "d/s/in"}, {"d/s", "d"}} {
				x, _ := runJSON(t, []*site{s}, "moveto", s.loc(c[0]), s.loc(c[1]))
				// A peer refuses any ".." in a path before it looks.
				if x.code != 2 || !(strings.Contains(x.stdout, "overlap") || strings.Contains(x.stdout, "climbs out")) {
					t.Errorf("moveto %s %s: want exit 2 saying they overlap: %s", c[0], c[1], x.result)
				}
			}
			unchanged(t, "a refused moveto", before, s.base)
			x, sum := runJSON(t, []*site{s}, "moveto", s.loc("d/a.txt"), s.loc("d/b.txt"))
			if x.code != 0 || sum.SourceRemoved != 1 {
				t.Fatalf("moveto d/a.txt d/b.txt: %+v %s", sum, x.result)
			}
			if got, err := os.ReadFile(s.path("d/b.txt")); err != nil || string(got) != "alpha\n" {
				t.Errorf("d/b.txt after the rename: %q, %v", got, err)
			}
			if _, err := os.Lstat(s.path("d/a.txt")); err == nil {
				t.Errorf("d/a.txt is still there after the rename")
			}
		})
	}
}

// TestMoveOntoItself: a move whose destination is its source reached
// through a peer that serves it keeps every file and says why (exit 2).
func TestMoveOntoItself(t *testing.T) {
	s := newSite(t, "peer")
	buildTree(t, s.path("src"), moveTree(), nil, "")
	before := scanTree(t, s.base)
	for _, args := range [][]string{
		{"move", s.path("src"), s.loc("src")},
		{"moveto", s.path("src/a.txt"), s.loc("src/a.txt")},
	} {
		x, _ := runJSON(t, nil, args...)
		if x.code != 2 || !strings.Contains(x.stdout, "reached two ways: nothing was removed") {
			t.Errorf("xfer %q: want exit 2 saying source and destination are the same: %s", args, x.result)
		}
	}
	unchanged(t, "a move onto itself", before, s.base)
}
