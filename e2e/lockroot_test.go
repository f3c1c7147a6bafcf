package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// partialRE is the shape of xfer's own partial files and journals, the
// only names of xfer's that may stay in a destination (of an interrupted
// run, for the next run to resume or remove).
var partialRE = regexp.MustCompile(`^\.xfer-[0-9a-f]{16}(\.s[0-9]+)?\.(part|journal)$`)

// userXferNames are user files whose names merely start with ".xfer-".
var userXferNames = []string{".xfer-foo", ".xfer-lock", ".xfer-0123.part", "sub/.xfer-0123.journal"}

// xferTree writes a small tree holding user files named like xfer's.
func xferTree(t *testing.T, dir string) {
	t.Helper()
	for i, n := range append([]string{"a.txt", "sub/b.txt", "sub/deep/c.txt"}, userXferNames...) {
		p := filepath.Join(dir, n)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(fmt.Sprintf("content %d of %s\n", i, n)), 0o644))
	}
	writeRandom(t, filepath.Join(dir, "big.bin"), 3<<20+17, 41)
}

// strays lists what of xfer's is left in dir: every name that is not in
// want (a source tree's names), that is one of xfer's own partial files
// unless partialsOK.
func strays(t *testing.T, dir string, want map[string]node, partialsOK bool) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if _, ok := want[rel]; ok {
			return nil
		}
		if partialsOK && partialRE.MatchString(d.Name()) {
			return nil
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// waitPartial waits (at most 20 s) until a partial file appears beneath
// dir: a run writing there has taken the destination's lock.
func waitPartial(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		found := false
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && partialRE.MatchString(d.Name()) {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		if found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no partial file appeared in %s", dir)
}

// startSlow starts a slow xfer (--bwlimit) in the background; it is
// killed when the test ends.
func startSlow(t *testing.T, args ...string) *bgXfer {
	t.Helper()
	return startXfer(t, append(args, "--bwlimit", "1M", "--chunk-size", "1M", "-q")...)
}

// way is one direction of a run between the ends everyWay starts.
type way struct {
	name     string
	src, dst string // the arguments
	dir      string // the destination tree on this machine
}

// everyWay starts two peers, a and b, and a cluster of two agents (from
// 127.0.0.<first>), copies src to a as "src", and returns a config file
// naming the cluster "cl" and the six ways a run can go from there: local,
// push, pull, third party, to a cluster and from one.
func everyWay(t *testing.T, src string, first int) (cfg string, ways []way) {
	t.Helper()
	a := startServer(t, t.TempDir())
	b := startServerOn(t, "127.0.0.3", t.TempDir())
	root := t.TempDir()
	cfg = clusterConfig(t, map[string][]*server{"cl": startCluster(t, root, first, 2)})
	must(t, os.MkdirAll(filepath.Join(a.root, "src"), 0o755))
	if r := xfer(t, "copy", src, a.url("src")); r.code != 0 {
		t.Fatal(r)
	}
	local := t.TempDir()
	return cfg, []way{
		{"local", src, filepath.Join(local, "d"), filepath.Join(local, "d")},
		{"push", src, a.url("push"), filepath.Join(a.root, "push")},
		{"pull", a.url("src"), filepath.Join(local, "pull"), filepath.Join(local, "pull")},
		{"third party", a.url("src"), b.url("third"), filepath.Join(b.root, "third")},
		{"to a cluster", src, "cl:/proj", filepath.Join(root, "proj")},
		{"from a cluster", "cl:/proj", filepath.Join(local, "fromcl"), filepath.Join(local, "fromcl")},
	}
}

// TestNoStrayFiles: after copy --lock and sync in every direction, the
// destination holds exactly the source (user files named .xfer-* too),
// and nothing of xfer's; a second sync changes nothing and removes a
// user's extra .xfer-* file.
func TestNoStrayFiles(t *testing.T) {
	src := t.TempDir()
	xferTree(t, src)
	cfg, tests := everyWay(t, src, 12)
	want := snapshot(t, src)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"copy", "--lock", tt.src, tt.dst},
				{"sync", tt.src, tt.dst},
			} {
				r := xfer(t, append([]string{"--config", cfg}, args...)...)
				if r.code != 0 {
					t.Fatalf("%v: %s", args, r)
				}
				if s := strays(t, tt.dir, want, false); len(s) != 0 {
					t.Errorf("%v left %q in the destination", args, s)
				}
				sameTree(t, src, tt.dir)
			}
			// A user's own .xfer-* file at the destination is an extra
			// entry like any other.
			must(t, os.WriteFile(filepath.Join(tt.dir, ".xfer-extra"), []byte("x"), 0o644))
			r := xfer(t, "--config", cfg, "sync", tt.src, tt.dst, "--json")
			if r.code != 0 {
				t.Fatal(r)
			}
			if _, s := jsonRun(t, r); s.FilesTransferred != 0 || s.FilesDeleted != 1 {
				t.Errorf("third sync: %+v, want nothing transferred and .xfer-extra deleted", s)
			}
			sameTree(t, src, tt.dir)
		})
	}
}

// destCase is a destination a test runs into, as the argument names it
// and as the directory that holds its tree on this machine.
type destCase struct{ name, dst, dir string }

// localAndPeer is a local destination and one on the peer s.
func localAndPeer(t *testing.T, s *server) []destCase {
	local := filepath.Join(t.TempDir(), "d")
	return []destCase{{"local", local, local}, {"peer", s.url("d"), filepath.Join(s.root, "d")}}
}

// TestNoStrayFilesAfterFailure: a run with a failed file, and a run
// stopped by SIGINT, leave nothing of xfer's but partial files, which the
// next run resumes and removes.
func TestNoStrayFilesAfterFailure(t *testing.T) {
	src := t.TempDir()
	xferTree(t, src)
	want := snapshot(t, src)
	s := startServer(t, t.TempDir())
	for _, tt := range localAndPeer(t, s) {
		t.Run(tt.name, func(t *testing.T) {
			// A directory where the source has a file: copy does not
			// replace it, the file fails.
			must(t, os.MkdirAll(filepath.Join(tt.dir, "a.txt", "x"), 0o755))
			r := xfer(t, "copy", "--lock", src, tt.dst)
			if r.code != 1 {
				t.Fatalf("copy over a directory in the way: %s", r)
			}
			if st := strays(t, tt.dir, want, true); len(st) != 1 || st[0] != "a.txt/x" {
				t.Errorf("after a failed run: %q, want only the user's a.txt/x", st)
			}
			must(t, os.RemoveAll(filepath.Join(tt.dir, "a.txt")))

			big := filepath.Join(src, "slow.bin")
			writeRandom(t, big, 24<<20, 77)
			defer os.Remove(big)
			slow := startSlow(t, "sync", src, tt.dst)
			waitPartial(t, tt.dir)
			must(t, slow.cmd.Process.Signal(syscall.SIGINT))
			if r := slow.waitWithin(t, 30*time.Second); r.code != 130 {
				t.Fatalf("sync stopped by SIGINT: %s, want exit code 130", r)
			}
			after := snapshot(t, src)
			if st := strays(t, tt.dir, after, true); len(st) != 0 {
				t.Errorf("after SIGINT: %q left in the destination", st)
			}
			if r := xfer(t, "sync", src, tt.dst); r.code != 0 {
				t.Fatal(r)
			}
			if st := strays(t, tt.dir, after, false); len(st) != 0 {
				t.Errorf("after the resuming run: %q left in the destination", st)
			}
			sameTree(t, src, tt.dir)
		})
	}
}

// TestInterruptWithChunksQueued: Ctrl-C while a file has more chunks than
// the engine's queue holds (1024 chunks of 64 KiB under --bwlimit) ends
// the run with exit code 130, fresh and resuming, locally and to a peer;
// the next run finishes the file and the one after changes nothing.
func TestInterruptWithChunksQueued(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "many.bin"), 64<<20, 91)
	s := startServer(t, t.TempDir())
	for _, tt := range localAndPeer(t, s) {
		t.Run(tt.name, func(t *testing.T) {
			for _, run := range []string{"fresh", "resuming"} {
				slow := startXfer(t, "sync", src, tt.dst, "--bwlimit", "4M", "--chunk-size", "64K", "-q")
				waitPartial(t, tt.dir)
				time.Sleep(300 * time.Millisecond)
				must(t, slow.cmd.Process.Signal(syscall.SIGINT))
				if r := slow.waitWithin(t, 30*time.Second); r.code != 130 {
					t.Fatalf("%s run stopped by SIGINT: %s, want exit code 130", run, r)
				}
			}
			for i := range 2 {
				r := xfer(t, "sync", src, tt.dst, "--chunk-size", "64K", "--json")
				if r.code != 0 {
					t.Fatalf("sync %d after the interrupted runs: %s", i+1, r)
				}
				if _, sum := jsonRun(t, r); i == 1 && (sum.FilesTransferred != 0 || sum.BytesTransferred != 0) {
					t.Errorf("the second sync changed something: %+v", sum)
				}
			}
			sameTree(t, src, tt.dir)
		})
	}
}

// TestLockRefusesSecondRun: while a sync runs into a destination, a
// second one into it is refused with a message naming the holder:
// locally, through the same peer, through another agent serving the same
// directory, and from a cluster run through either agent.
func TestLockRefusesSecondRun(t *testing.T) {
	src := t.TempDir()
	xferTree(t, src)
	writeRandom(t, filepath.Join(src, "slow.bin"), 24<<20, 78)
	root := t.TempDir()
	agents := startCluster(t, root, 14, 2)
	cfg := clusterConfig(t, map[string][]*server{"cl": agents})
	local := filepath.Join(t.TempDir(), "d")
	for _, tt := range []struct {
		name         string
		first, again string
		dir          string
	}{
		{"local", local, local, local},
		{"same peer", agents[0].url("one"), agents[0].url("one"), filepath.Join(root, "one")},
		{"another agent", agents[0].url("two"), agents[1].url("two"), filepath.Join(root, "two")},
		{"cluster, then one agent", "cl:/three", agents[1].url("three"), filepath.Join(root, "three")},
		{"one agent, then cluster", agents[1].url("four"), "cl:/four", filepath.Join(root, "four")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			slow := startSlow(t, "--config", cfg, "sync", src, tt.first)
			waitPartial(t, tt.dir)
			r := xfer(t, "--config", cfg, "sync", src, tt.again)
			if r.code != 1 || !strings.Contains(r.stderr, "another xfer run is working on") || !strings.Contains(r.stderr, "pid ") {
				t.Errorf("a second sync into a locked destination: %s", r)
			}
			slow.kill()
			// Killed, the first run leaves no lock behind; rerun as it
			// was, it resumes and finishes.
			if r := xfer(t, "--config", cfg, "sync", src, tt.first, "--chunk-size", "1M"); r.code != 0 {
				t.Errorf("after the first run ended: %s", r)
			}
			sameTree(t, src, tt.dir)
		})
	}
}

// runCounts is what a --json run reports: the summary's counters and how
// many events of each name came before it.
type runCounts struct {
	Files, Bytes, Deleted, Dirs int64
	Events                      string
}

func countRun(t *testing.T, r result) runCounts {
	t.Helper()
	if r.code != 0 {
		t.Fatal(r)
	}
	events, s := jsonRun(t, r)
	n := map[string]int{}
	for _, e := range events[:len(events)-1] {
		if k := e["event"].(string); k != "notice" && k != "progress" {
			n[k]++
		}
	}
	var names []string
	for k, v := range n {
		names = append(names, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(names)
	return runCounts{s.FilesTransferred, s.BytesTransferred, s.FilesDeleted, s.DirsCreated, strings.Join(names, " ")}
}

// TestDryRunCountsMatch: in every direction, a dry run reports the very
// counts and event names the real run then has, and changes nothing.
func TestDryRunCountsMatch(t *testing.T) {
	src := t.TempDir()
	xferTree(t, src)
	must(t, os.MkdirAll(filepath.Join(src, "newdir/inner"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "newdir/inner/f"), []byte("new"), 0o644))
	must(t, os.Symlink("a.txt", filepath.Join(src, "link")))
	cfg, ways := everyWay(t, src, 16)
	for _, tt := range ways {
		t.Run(tt.name, func(t *testing.T) {
			run := func(args ...string) runCounts {
				c := countRun(t, xfer(t, append([]string{"--config", cfg, "sync", tt.src, tt.dst, "--json"}, args...)...))
				if strings.Contains(tt.name, "cluster") {
					// A cluster run's shares create the directories
					// their files need without a mkdir event each; the
					// summary counts them (dirs_created).
					c.Events = regexp.MustCompile(`mkdir=\d+ `).ReplaceAllString(c.Events, "")
				}
				return c
			}
			// Into a destination that does not exist yet: nothing is
			// created, not even the directory.
			dry := run("--dry-run")
			if _, err := os.Lstat(tt.dir); err == nil {
				t.Errorf("the dry run created %s", tt.dir)
			}
			real := run()
			if dry != real || real.Files == 0 || real.Dirs == 0 {
				t.Errorf("into a new destination:\n dry run %+v\nreal run %+v", dry, real)
			}
			// Into one that differs: changed, missing and extra entries.
			must(t, os.WriteFile(filepath.Join(tt.dir, "a.txt"), []byte("changed"), 0o644))
			must(t, os.RemoveAll(filepath.Join(tt.dir, "sub/deep")))
			must(t, os.MkdirAll(filepath.Join(tt.dir, "extra/dir"), 0o755))
			must(t, os.WriteFile(filepath.Join(tt.dir, "extra/dir/x"), []byte("x"), 0o644))
			before := snapshot(t, tt.dir)
			dry = run("--dry-run", "--delete")
			if got := snapshot(t, tt.dir); len(got) != len(before) {
				t.Errorf("the dry run changed the destination")
			}
			real = run("--delete")
			if dry != real || real.Files != 2 || real.Deleted == 0 || real.Dirs != 1 && !strings.Contains(tt.name, "cluster") {
				t.Errorf("into a changed destination:\n dry run %+v\nreal run %+v", dry, real)
			}
			sameTree(t, src, tt.dir)
		})
	}
}

// TestDryRunMissingLocalDest: a dry run into a local directory that does
// not exist exits 0, creates nothing and reports what a run would do.
func TestDryRunMissingLocalDest(t *testing.T) {
	src := t.TempDir()
	xferTree(t, src)
	dst := filepath.Join(t.TempDir(), "not", "yet")
	for _, args := range [][]string{
		{"copy", "--dry-run", src, dst},
		{"sync", "--dry-run", "--json", src, dst},
	} {
		r := xfer(t, args...)
		if r.code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
		if _, err := os.Lstat(filepath.Dir(dst)); err == nil {
			t.Errorf("%v created %s", args, filepath.Dir(dst))
		}
		if args[0] == "copy" && !strings.Contains(r.stdout, "would transfer 8 files") {
			t.Errorf("%v: %s", args, r)
		}
		if args[0] == "sync" {
			if _, s := jsonRun(t, r); s.FilesTransferred != 8 || !s.DryRun {
				t.Errorf("%v: summary %+v, want 8 files in a dry run", args, s)
			}
		}
	}
}

// TestSymlinkRoots: a source given as a symlink to a directory is
// followed (the links inside stay links), and a destination that is a
// symlink to a directory is written through, alike on this machine and on
// a peer.
func TestSymlinkRoots(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	xferTree(t, real)
	must(t, os.Symlink("a.txt", filepath.Join(real, "inner-link")))
	must(t, os.Symlink("real", filepath.Join(base, "alias")))
	s := startServer(t, t.TempDir())
	must(t, os.MkdirAll(filepath.Join(s.root, "target"), 0o755))
	must(t, os.Symlink("target", filepath.Join(s.root, "dlink")))
	must(t, os.MkdirAll(filepath.Join(s.root, "srcreal"), 0o755))
	must(t, os.Symlink("srcreal", filepath.Join(s.root, "srclink")))
	if r := xfer(t, "copy", real, s.url("srcreal")); r.code != 0 {
		t.Fatal(r)
	}
	ltarget := filepath.Join(base, "ltarget")
	must(t, os.MkdirAll(ltarget, 0o755))
	must(t, os.Symlink("ltarget", filepath.Join(base, "ldlink")))
	for _, tt := range []struct {
		name     string
		src, dst string
		dir      string
	}{
		{"local source link", filepath.Join(base, "alias"), filepath.Join(base, "out1"), filepath.Join(base, "out1")},
		{"local source link to a peer", filepath.Join(base, "alias"), s.url("out2"), filepath.Join(s.root, "out2")},
		{"peer source link", s.url("srclink"), filepath.Join(base, "out3"), filepath.Join(base, "out3")},
		{"local destination link", real, filepath.Join(base, "ldlink"), ltarget},
		{"peer destination link", real, s.url("dlink"), filepath.Join(s.root, "target")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := xfer(t, "sync", tt.src, tt.dst)
			if r.code != 0 {
				t.Fatal(r)
			}
			sameTree(t, real, tt.dir)
			if info, err := os.Lstat(filepath.Join(tt.dir, "inner-link")); err != nil || info.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("the link inside the tree is not a link: %v", err)
			}
			must(t, os.WriteFile(filepath.Join(tt.dir, "extra"), []byte("x"), 0o644))
			r = xfer(t, "sync", tt.src, tt.dst, "--json")
			if _, sum := jsonRun(t, r); r.code != 0 || sum.FilesTransferred != 0 || sum.FilesDeleted != 1 {
				t.Errorf("second sync: %+v\n%s", sum, r)
			}
			sameTree(t, real, tt.dir)
		})
	}
	for _, l := range []string{filepath.Join(base, "ldlink"), filepath.Join(s.root, "dlink")} {
		if info, err := os.Lstat(l); err != nil || info.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink", l)
		}
	}
}

// TestOverlapRefused: a source and destination one inside the other
// (after symlinks) are refused with a usage error, and nothing is made.
func TestOverlapRefused(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	xferTree(t, src)
	must(t, os.Symlink("src", filepath.Join(base, "alias")))
	s := startServer(t, t.TempDir())
	must(t, os.MkdirAll(filepath.Join(s.root, "d/sub"), 0o755))
	must(t, os.Symlink("d", filepath.Join(s.root, "dl")))
	for _, tt := range []struct {
		name     string
		args     []string
		mustMiss string
	}{
		{"copy into itself", []string{"copy", src, filepath.Join(src, "inner")}, filepath.Join(src, "inner")},
		{"sync into itself", []string{"sync", src, filepath.Join(src, "inner")}, filepath.Join(src, "inner")},
		{"through a link", []string{"copy", src, filepath.Join(base, "alias", "inner")}, filepath.Join(src, "inner")},
		{"source inside destination", []string{"sync", filepath.Join(src, "sub"), src}, ""},
		{"same directory", []string{"sync", src, filepath.Join(base, "alias")}, ""},
		{"a file onto itself", []string{"copy", filepath.Join(src, "a.txt"), src}, ""},
		{"same peer", []string{"copy", s.url("d"), s.url("d/sub/in")}, filepath.Join(s.root, "d/sub/in")},
		{"same peer through a link", []string{"sync", s.url("dl/sub"), s.url("d")}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, src)
			r := xfer(t, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, "overlap") {
				t.Errorf("%s", r)
			}
			if tt.mustMiss != "" {
				if _, err := os.Lstat(tt.mustMiss); err == nil {
					t.Errorf("%s was created", tt.mustMiss)
				}
			}
			if got := snapshot(t, src); len(got) != len(before) {
				t.Errorf("the source changed")
			}
		})
	}
	// Neighbours that merely share a prefix do not overlap.
	if r := xfer(t, "copy", src, src+"-copy"); r.code != 0 {
		t.Errorf("src -> src-copy: %s", r)
	}
}

// TestFailedRunCreatesNothing: a run whose source is missing or whose
// peer cannot be reached leaves no destination directory behind.
func TestFailedRunCreatesNothing(t *testing.T) {
	src := t.TempDir()
	xferTree(t, src)
	s := startServer(t, t.TempDir())
	root := t.TempDir()
	agents := startCluster(t, root, 18, 2)
	cfg := clusterConfig(t, map[string][]*server{"cl": agents})
	local := t.TempDir()
	for _, tt := range []struct {
		name     string
		src, dst string
		dir      string
		code     int
	}{
		{"missing source to a cluster", filepath.Join(src, "nope"), "cl:/d6", filepath.Join(root, "d6"), 2},
		{"missing source on a cluster", "cl:/nope", filepath.Join(local, "d7"), filepath.Join(local, "d7"), 2},
		{"missing local source", filepath.Join(src, "nope"), filepath.Join(local, "d1"), filepath.Join(local, "d1"), 2},
		{"missing source on the peer", s.url("nope"), filepath.Join(local, "d2"), filepath.Join(local, "d2"), 2},
		{"missing source to the peer", filepath.Join(src, "nope"), s.url("d3"), filepath.Join(s.root, "d3"), 2},
		{"missing source peer to peer", s.url("nope"), s.url("d4"), filepath.Join(s.root, "d4"), 2},
		{"unreachable peer", "xfer://127.0.0.1:1/x", filepath.Join(local, "d5"), filepath.Join(local, "d5"), 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := xfer(t, "--config", cfg, "sync", tt.src, tt.dst, "--retries", "0", "--connect-timeout", "2s")
			if r.code != tt.code {
				t.Errorf("exit %d, want %d: %s", r.code, tt.code, r)
			}
			if _, err := os.Lstat(tt.dir); err == nil {
				t.Errorf("%s was created", tt.dir)
			}
		})
	}
}

// TestLockAndCronFlags: two syncs on one destination never overlap;
// --max-duration stops cleanly and the next run resumes; --log-file gets
// every event and the summary.
func TestLockAndCronFlags(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 32<<20, 52)
	s := startServer(t, t.TempDir())
	slow := startXfer(t, "sync", src, s.url("d"), "--bwlimit", "4M", "--chunk-size", "1M", "-q")
	waitPartial(t, filepath.Join(s.root, "d")) // the slow run holds the lock
	r := xfer(t, "sync", src, s.url("d"))
	if r.code != 1 || !strings.Contains(r.stderr, "another xfer run") {
		t.Errorf("a second sync on a locked destination: %s", r)
	}
	slow.kill()

	logf := filepath.Join(t.TempDir(), "xfer.log")
	start := time.Now()
	r = xfer(t, "sync", src, s.url("d"), "--bwlimit", "8M", "--max-duration", "1s", "--chunk-size", "1M", "--log-file", logf)
	if r.code != 4 || !strings.Contains(r.stderr, "max-duration") {
		t.Errorf("--max-duration: %s", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("--max-duration 1s took %s", d)
	}
	if _, err := os.Stat(filepath.Join(s.root, "d/big.bin")); err == nil {
		t.Error("an unfinished file stands under its final name")
	}
	r = xfer(t, "sync", src, s.url("d"), "--json", "--chunk-size", "1M", "--log-file", logf)
	if r.code != 0 {
		t.Fatal(r)
	}
	_, sum := jsonRun(t, r)
	if sum.BytesSent >= 32<<20 {
		t.Errorf("the run after --max-duration resent everything (%d bytes)", sum.BytesSent)
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
	b, err := os.ReadFile(logf)
	must(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["event"] != "summary" {
		t.Errorf("log file does not end with the summary: %q", lines[len(lines)-1])
	}
	if !strings.Contains(string(b), "max-duration") {
		t.Errorf("log file lacks the first run's stop reason")
	}
}
