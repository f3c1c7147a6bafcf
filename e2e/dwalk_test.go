package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkTree writes a tree of a few hundred directories at several depths
// (files, symlinks, a read-only directory, directory mtimes of their
// own) and returns how many directories it holds, its top included.
func walkTree(t *testing.T, dir string) int {
	t.Helper()
	dirs := 1
	mk := func(p string) {
		must(t, os.MkdirAll(filepath.Join(dir, p), 0o755))
		dirs++
	}
	for i := range 6 {
		a := fmt.Sprintf("d%d", i)
		mk(a)
		writeRandom(t, filepath.Join(dir, a, "top.bin"), int64(500+i*700), uint64(10+i))
		for j := range 7 {
			b := filepath.Join(a, fmt.Sprintf("e%d", j))
			mk(b)
			for k := range 6 {
				c := filepath.Join(b, fmt.Sprintf("f%d", k))
				mk(c)
				writeRandom(t, filepath.Join(dir, c, "x"), int64(100+i*j*k), uint64(1000+100*i+10*j+k))
				if k == 0 {
					must(t, os.Symlink("../f1/x", filepath.Join(dir, c, "link")))
				}
			}
		}
	}
	writeRandom(t, filepath.Join(dir, "root-file"), 4321, 7)
	must(t, os.Symlink("d0/top.bin", filepath.Join(dir, "root-link")))
	// Directory times and a read-only directory, set last (deepest first).
	stamp := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"d3/e4/f5", "d3/e4", "d3", "d5/e0"} {
		must(t, os.Chtimes(filepath.Join(dir, p), stamp, stamp))
	}
	must(t, os.Chmod(filepath.Join(dir, "d4/e6/f2"), 0o555))
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "d4/e6/f2"), 0o755) })
	return dirs
}

// staleDest puts what a sync must delete or replace into the
// destination tree dst: extra files and directories at every depth, a
// changed file, a file where the source has a directory.
func staleDest(t *testing.T, dst string) {
	t.Helper()
	for _, p := range []string{"old-top", "d1/old", "d2/e3/old-dir/deep/file", "d5/e6/f4/old"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dst, p), []byte("stale"), 0o644))
	}
	must(t, os.MkdirAll(filepath.Join(dst, "d0/e0"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "d0/e0/f3"), []byte("in the way"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dst, "d1/e1/f1"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "d1/e1/f1/x"), []byte("changed"), 0o644))
}

// dirsRead sums dirs_read over agents, failing for an agent that read
// none.
func dirsRead(t *testing.T, s clusterSummary, agents []*server) int64 {
	t.Helper()
	var n int64
	for _, a := range agents {
		st := s.Agents[a.addr]
		if st.DirsRead == 0 {
			t.Errorf("agent %s read no directory: %+v", a.addr, s.Agents)
		}
		n += st.DirsRead
	}
	return n
}

func TestClusterDistributedWalk(t *testing.T) {
	rootA, rootB, rootC := t.TempDir(), t.TempDir(), t.TempDir()
	src := filepath.Join(rootA, "proj")
	dirs := walkTree(t, src)
	a := startCluster(t, rootA, 2, 3)
	b := startCluster(t, rootB, 5, 3)
	one := startServerOn(t, "127.0.0.8", rootA)
	oneDst := startServerOn(t, "127.0.0.9", rootC)
	cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b, "one": {one}, "oneDst": {oneDst}})
	limit := int64(dirs) * 12 / 10

	// A copy to a fresh destination: every source agent reads part of
	// the tree, together about one walk.
	r := xfer(t, "--config", cfg, "copy", "clusterA:/proj", "clusterB:/copy", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := clusterRun(t, r)
	sameTree(t, src, filepath.Join(rootB, "copy"))
	noLeftovers(t, rootB)
	if n := dirsRead(t, s, a); n < int64(dirs) || n > limit {
		t.Errorf("copy: the source agents read %d directories of %d (want %d to %d): %+v", n, dirs, dirs, limit, s.Agents)
	}
	if s.DirsRead != dirsRead(t, s, a) {
		t.Errorf("summary dirs_read %d, the agents' sum %d", s.DirsRead, dirsRead(t, s, a))
	}

	// A sync with deletions, against rsync -a --delete from the same
	// state.
	dst := filepath.Join(rootB, "proj")
	staleDest(t, dst)
	ref := filepath.Join(t.TempDir(), "ref")
	staleDest(t, ref)
	if out, err := exec.Command("rsync", "-a", "--delete", src+"/", ref+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	r = xfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	sameTree(t, src, dst)
	sameTree(t, ref, dst)
	noLeftovers(t, rootB)
	if n := dirsRead(t, s, a); n < int64(dirs) || n > limit {
		t.Errorf("sync: the source agents read %d directories of %d (want %d to %d): %+v", n, dirs, dirs, limit, s.Agents)
	}
	if s.FilesDeleted == 0 {
		t.Errorf("sync deleted nothing: %+v", s.summary)
	}

	// Again: nothing changes.
	before := snapshot(t, dst)
	r = xfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	if s.FilesTransferred != 0 || s.FilesDeleted != 0 || s.DirsCreated != 0 || s.FilesSkipped == 0 {
		t.Errorf("second sync changed something: %+v", s.summary)
	}
	if after := snapshot(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the second sync changed the destination")
	}
	sameTree(t, ref, dst)

	// One agent per side: one walk, no more.
	r = xfer(t, "--config", cfg, "copy", "one:/proj", "oneDst:/proj", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	sameTree(t, src, filepath.Join(rootC, "proj"))
	if s.DirsRead != int64(dirs) {
		t.Errorf("one agent read %d directories, want one walk of %d", s.DirsRead, dirs)
	}

	// An option the walk cannot split says so and walks as before.
	r = xfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj", "--hard-links", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, "the distributed walk is off for --hard-links") {
		t.Errorf("--hard-links: no notice of the whole-tree walk:\n%s", r)
	}
	sameTree(t, src, dst)
}

func TestClusterDistributedWalkAgentLost(t *testing.T) {
	for _, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			rootA, rootB := t.TempDir(), t.TempDir()
			src := filepath.Join(rootA, "proj")
			// Subtrees of a few MiB each: units in flight when the agent dies.
			for i := range 16 {
				for j := range 2 {
					writeRandom(t, filepath.Join(src, fmt.Sprintf("s%02d/t%d/f.bin", i, j)), 1<<20+int64(i*1000+j), uint64(500+10*i+j))
				}
			}
			a := startCluster(t, rootA, 2, 3)
			b := startCluster(t, rootB, 5, 3)
			cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b})
			victim := b[1]
			if side == "source" {
				victim = a[1]
			}
			run := startXfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj",
				"--chunk-size", "1M", "--bwlimit", "6M", "--json")
			deadline := time.Now().Add(20 * time.Second)
			for !someFileIn(filepath.Join(rootB, "proj")) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			must(t, victim.cmd.Process.Signal(syscall.SIGKILL))
			r := run.wait(t)
			if r.code != 0 {
				t.Fatalf("sync with a lost agent should complete on the survivors:\n%s", r)
			}
			_, s := clusterRun(t, r)
			sameTree(t, src, filepath.Join(rootB, "proj"))
			noLeftovers(t, rootB)
			if !s.Agents[victim.addr].Lost {
				t.Errorf("summary does not name %s as lost: %+v", victim.addr, s.Agents)
			}
			if strings.Contains(r.stdout, "the distributed walk is off") {
				t.Errorf("the walk was not distributed:\n%s", r.stdout)
			}
		})
	}
}
