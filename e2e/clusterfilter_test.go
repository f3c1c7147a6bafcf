package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// clusterWalkCase is one run of TestClusterDistributedWalkFilters: the
// same rules for xfer sync and rsync -a --delete.
type clusterWalkCase struct {
	name  string
	rules []string
	// vsOne: the reference is what one agent per side makes, not rsync
	// (rsync -a --delete takes no --files-from without -r).
	vsOne bool
	// has is a path the destination must hold after the run.
	has string
}

// TestClusterDistributedWalkFilters runs cluster syncs with filters
// through the distributed walk (no fallback notice) against rsync -a
// --delete with the same rules on the same trees, twice (the second run
// changes nothing), and bounds what the source agents read by what one
// filtered walk reads.
func TestClusterDistributedWalkFilters(t *testing.T) {
	rootA, rootB, rootC := t.TempDir(), t.TempDir(), t.TempDir()
	src := filepath.Join(rootA, "proj")
	walkTree(t, src)
	// rsync leaves a directory it made with the time it made it when
	// that falls in the second of the source's mtime: a second apart.
	time.Sleep(1100 * time.Millisecond)
	a := startCluster(t, rootA, 2, 3)
	b := startCluster(t, rootB, 5, 3)
	one := startServerOn(t, "127.0.0.8", rootA)
	oneDst := startServerOn(t, "127.0.0.9", rootC)
	cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b, "one": {one}, "oneDst": {oneDst}})
	list := filepath.Join(t.TempDir(), "list")
	must(t, os.WriteFile(list, []byte("d3/e1/f2/x\nd0/top.bin\nd5/e2\nroot-file\n"), 0o644))
	cases := []clusterWalkCase{
		// d1 and d2/e3 are units the coordinator would make.
		{name: "anchored", rules: []string{"--exclude", "/d1", "--exclude", "/d2/e3"}},
		{name: "unanchored", rules: []string{"--exclude", "f2", "--exclude", "*.bin"}},
		{name: "dir-only", rules: []string{"--exclude", "e4/", "--exclude", "x/"}},
		{name: "include-first", rules: []string{"--include", "/d3", "--exclude", "/d*"}},
		{name: "size", rules: []string{"--min-size", "150", "--max-size", "600"}},
		{name: "delete-excluded", rules: []string{"--delete-excluded", "--exclude", "f3", "--exclude", "/d4"}},
		{name: "files-from", rules: []string{"--files-from", list}, vsOne: true, has: "d3/e1/f2/x"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("c%d", i)
			dst := filepath.Join(rootB, name)
			ref, oneDir := filepath.Join(t.TempDir(), "ref"), filepath.Join(rootC, name)
			for _, d := range []string{dst, ref, oneDir} {
				staleDest(t, d)
				// A directory only the destination has, directly in the
				// top (read alone by the final pass), with what the rules
				// exclude in it.
				for _, p := range []string{"gone/f2/keep", "gone/e4/keep", "gone/plain", "d1/e2/f2/old"} {
					must(t, os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755))
					must(t, os.WriteFile(filepath.Join(d, p), []byte("stale"), 0o644))
				}
				stampTree(t, d)
			}
			args := append([]string{"-a", "--delete"}, c.rules...)
			if c.vsOne {
				ref = oneDir
			} else if out, err := exec.Command("rsync", append(args, src+"/", ref+"/")...).CombinedOutput(); err != nil {
				t.Fatalf("rsync: %v\n%s", err, out)
			}
			// One filtered walk: what one agent per side reads.
			r := xfer(t, append([]string{"--config", cfg, "sync", "one:/proj", "oneDst:/" + name, "--json"}, c.rules...)...)
			if r.code != 0 {
				t.Fatal(r)
			}
			_, s := clusterRun(t, r)
			limit := s.DirsRead * 12 / 10
			for run := range 2 {
				before := snapshot(t, dst)
				r := xfer(t, append([]string{"--config", cfg, "sync", "clusterA:/proj", "clusterB:/" + name, "--json"}, c.rules...)...)
				if r.code != 0 {
					t.Fatal(r)
				}
				if strings.Contains(r.stdout, "the distributed walk is off") {
					t.Errorf("run %d: fell back to the whole-tree walk:\n%s", run+1, r)
				}
				_, s := clusterRun(t, r)
				sameKept(t, src, ref, dst)
				noLeftovers(t, rootB)
				if _, err := os.Lstat(filepath.Join(dst, c.has)); c.has != "" && err != nil {
					t.Errorf("run %d: %v", run+1, err)
				}
				if n := dirsRead(t, s, a); n > limit {
					t.Errorf("run %d: the source agents read %d directories, one filtered walk %d (limit %d): %+v", run+1, n, limit*10/12, limit, s.Agents)
				}
				if run == 1 {
					if s.FilesTransferred != 0 || s.FilesDeleted != 0 || s.DirsCreated != 0 {
						t.Errorf("second sync changed something: %+v", s.summary)
					}
					if after := snapshot(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
						t.Error("the second sync changed the destination")
					}
				}
			}
		})
	}
}

// TestClusterDistributedWalkBackupDir: a cluster sync with --backup-dir
// inside the destination walks distributed and leaves the tree, backups
// included, as one agent per side does.
func TestClusterDistributedWalkBackupDir(t *testing.T) {
	rootA, rootB, rootC := t.TempDir(), t.TempDir(), t.TempDir()
	src := filepath.Join(rootA, "proj")
	walkTree(t, src)
	a := startCluster(t, rootA, 2, 3)
	b := startCluster(t, rootB, 5, 3)
	one := startServerOn(t, "127.0.0.8", rootA)
	oneDst := startServerOn(t, "127.0.0.9", rootC)
	cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b, "one": {one}, "oneDst": {oneDst}})
	dst, ref := filepath.Join(rootB, "proj"), filepath.Join(rootC, "proj")
	for _, d := range []string{dst, ref} {
		staleDest(t, d)
		// The source has a directory where the backups go: it is left out.
		must(t, os.MkdirAll(filepath.Join(d, "d2/bak"), 0o755))
		must(t, os.WriteFile(filepath.Join(d, "d2/bak/earlier"), []byte("kept"), 0o644))
		stampTree(t, d)
	}
	must(t, os.MkdirAll(filepath.Join(src, "d2/bak/e9"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d2/bak/e9/new"), []byte("left out"), 0o644))
	opts := []string{"--backup-dir", "d2/bak", "--json"}
	r := xfer(t, append([]string{"--config", cfg, "sync", "one:/proj", "oneDst:/proj"}, opts...)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	for run := range 2 {
		before := snapshot(t, dst)
		r := xfer(t, append([]string{"--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj"}, opts...)...)
		if r.code != 0 {
			t.Fatal(r)
		}
		if strings.Contains(r.stdout, "the distributed walk is off") {
			t.Errorf("run %d: fell back to the whole-tree walk:\n%s", run+1, r)
		}
		_, s := clusterRun(t, r)
		sameKept(t, src, ref, dst, "d2/bak")
		noLeftovers(t, rootB)
		dirsRead(t, s, a)
		if _, err := os.Stat(filepath.Join(dst, "d2/bak/old-top")); err != nil {
			t.Errorf("run %d: no backup of the deleted old-top: %v", run+1, err)
		}
		if run == 1 {
			if s.FilesTransferred != 0 || s.FilesDeleted != 0 || s.DirsCreated != 0 {
				t.Errorf("second sync changed something: %+v", s.summary)
			}
			if after := snapshot(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Error("the second sync changed the destination")
			}
		}
	}
}

// stampTree gives every entry beneath dir (not following symlinks) one
// fixed mtime, so that two destinations made alike compare equal.
func stampTree(t *testing.T, dir string) {
	t.Helper()
	stamp := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	must(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, stamp, stamp)
	}))
}

// sameKept is sameTree(want, got) but for the mtimes of the directories
// that the source src does not have or that lie in loose: those a run
// kept and changed (deleted in, made for a backup) at their own times.
func sameKept(t *testing.T, src, want, got string, loose ...string) {
	t.Helper()
	s, w, g := snapshot(t, src), snapshot(t, want), snapshot(t, got)
	for p, wn := range w {
		gn, ok := g[p]
		if !ok {
			t.Errorf("%q missing at the destination", p)
			continue
		}
		if _, in := s[p]; wn.Type == "dir" && (!in || slices.ContainsFunc(loose, func(l string) bool { return p == l || strings.HasPrefix(p, l+"/") })) {
			wn.Mtime, gn.Mtime = 0, 0
		}
		if wn != gn {
			t.Errorf("%q differs:\n want %+v\n  got %+v", p, wn, gn)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%q at the destination but not at the reference", p)
		}
	}
}
