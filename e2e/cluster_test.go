package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentStats is one entry of the summary's "agents".
type agentStats struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
	Lost  bool  `json:"lost"`
	// DirsRead counts the source directories the agent read.
	DirsRead int64 `json:"dirs_read"`
}

// clusterSummary is the summary of a cluster run, with its agents.
type clusterSummary struct {
	summary
	DirsRead    int64                 `json:"dirs_read"`
	DirsCreated int64                 `json:"dirs_created"`
	Agents      map[string]agentStats `json:"agents"`
}

func clusterRun(t *testing.T, r result) ([]map[string]any, clusterSummary) {
	t.Helper()
	events, _ := jsonRun(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var s clusterSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("summary: %v\n%s", err, r)
	}
	return events, s
}

// startCluster runs n agents serving root, each on its own loopback
// address starting at 127.0.0.<first>.
func startCluster(t *testing.T, root string, first, n int, extra ...string) []*server {
	var agents []*server
	for i := range n {
		agents = append(agents, startServerOn(t, fmt.Sprintf("127.0.0.%d", first+i), root, extra...))
	}
	return agents
}

func agentList(agents []*server) string {
	var s []string
	for _, a := range agents {
		s = append(s, `"`+a.addr+`"`)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// clusterConfig writes a config file naming each cluster of clusters a
// remote with those agents, and returns its path.
func clusterConfig(t *testing.T, clusters map[string][]*server) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("remotes:\n")
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		fmt.Fprintf(&b, "  %s:\n    agents: %s\n", name, agentList(clusters[name]))
	}
	return writeConfig(t, b.String())
}

// clusterTree writes files of mixed sizes (several chunks each at 1 MiB
// chunks, and small ones) plus the odd tree.
func clusterTree(t *testing.T, dir string) {
	oddTree(t, dir)
	for i := range 12 {
		writeRandom(t, filepath.Join(dir, fmt.Sprintf("data/large-%02d.bin", i)), int64(1<<20+i*300_000), uint64(100+i))
	}
	for i := range 60 {
		writeRandom(t, filepath.Join(dir, fmt.Sprintf("data/small/f%03d", i)), int64(100+i*97), uint64(200+i))
	}
	// Large enough (17 chunks of 1 MiB) to be split over every pair.
	writeRandom(t, filepath.Join(dir, "data/huge.bin"), 16<<20+123, 99)
}

// noLeftovers fails if dir holds anything of xfer's: partial files,
// journals, lock files.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), ".xfer-") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

func TestClusterSync(t *testing.T) {
	src := t.TempDir()
	clusterTree(t, src)
	rootA, rootB := t.TempDir(), t.TempDir()
	a := startCluster(t, rootA, 2, 2)
	b := startCluster(t, rootB, 4, 3) // uneven on purpose: pairs reuse agents
	single := startServerOn(t, "127.0.0.7", t.TempDir())
	cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b, "one": {single}})
	everyAgentCarried := func(t *testing.T, s clusterSummary, agents []*server) {
		t.Helper()
		for _, ag := range agents {
			st, ok := s.Agents[ag.addr]
			if !ok {
				t.Errorf("summary has no agent %s: %+v", ag.addr, s.Agents)
				continue
			}
			if st.Bytes == 0 || st.Files == 0 || st.Lost {
				t.Errorf("agent %s carried %+v; every agent should carry data", ag.addr, st)
			}
		}
	}

	// Local -> cluster: the client pushes shares to every agent.
	r := xfer(t, "--config", cfg, "copy", src, "clusterA:/proj", "--chunk-size", "1M", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := clusterRun(t, r)
	sameTree(t, src, filepath.Join(rootA, "proj"))
	noLeftovers(t, rootA)
	everyAgentCarried(t, s, a)
	if s.Errors != 0 || s.FilesTransferred == 0 {
		t.Errorf("summary %+v", s)
	}

	// Cluster -> cluster: the source agents push to the destination
	// agents; deletions happen once.
	must(t, os.MkdirAll(filepath.Join(rootB, "proj/stale/dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(rootB, "proj/stale/dir/old"), []byte("old"), 0o644))
	r = xfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj", "--chunk-size", "1M", "--delete", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	sameTree(t, src, filepath.Join(rootB, "proj"))
	noLeftovers(t, rootB)
	everyAgentCarried(t, s, append(append([]*server{}, a...), b...))
	var files int64
	for _, n := range snapshot(t, src) {
		if n.Type == "file" {
			files++
		}
	}
	if s.FilesTransferred != files {
		t.Errorf("files_transferred = %d, want %d (a split file counts once)", s.FilesTransferred, files)
	}
	if s.FilesDeleted != 1 {
		t.Errorf("files_deleted = %d, want 1", s.FilesDeleted)
	}
	var sum int64
	for _, ag := range b {
		sum += s.Agents[ag.addr].Files
	}
	if sum != s.FilesTransferred {
		t.Errorf("destination agents received %d files, summary says %d transferred", sum, s.FilesTransferred)
	}

	// No change: nothing moves, every file counts as skipped once.
	r = xfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	if s.FilesTransferred != 0 || s.FilesSkipped == 0 {
		t.Errorf("no-change sync: %+v", s.summary)
	}

	// Cluster -> local pull, and a single-agent remote as before.
	out := t.TempDir()
	r = xfer(t, "--config", cfg, "sync", "clusterB:/proj", out, "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	sameTree(t, src, out)
	everyAgentCarried(t, s, b)
	r = xfer(t, "--config", cfg, "sync", "clusterB:/proj", "one:/copy", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s = clusterRun(t, r)
	sameTree(t, src, filepath.Join(single.root, "copy"))
	if st := s.Agents[single.addr]; st.Files == 0 {
		t.Errorf("single agent carried %+v", st)
	}

	// A dry run plans without moving anything.
	must(t, os.WriteFile(filepath.Join(src, "data/new-file"), []byte("new"), 0o644))
	r = xfer(t, "--config", cfg, "copy", src, "clusterA:/proj", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "new-file") {
		t.Fatal(r)
	}
	if _, err := os.Stat(filepath.Join(rootA, "proj/data/new-file")); err == nil {
		t.Error("a dry run wrote to the cluster")
	}
}

// TestClusterAgentLost kills an agent of either side mid-sync: large
// files in one directory (spread over shares, one split over every pair)
// and subtrees of a few MiB each (units of the distributed walk, some in
// flight when the agent dies).
func TestClusterAgentLost(t *testing.T) {
	trees := []struct {
		name   string
		agents int
		bw     string
		build  func(t *testing.T, src string)
	}{
		{"shares", 2, "8M", func(t *testing.T, src string) {
			for i := range 16 {
				writeRandom(t, filepath.Join(src, fmt.Sprintf("f%02d.bin", i)), 3<<20, uint64(300+i))
			}
			writeRandom(t, filepath.Join(src, "split.bin"), 24<<20, 399) // split over both pairs
			oddTree(t, filepath.Join(src, "odd"))
		}},
		{"walk-units", 3, "6M", func(t *testing.T, src string) {
			for i := range 16 {
				for j := range 2 {
					writeRandom(t, filepath.Join(src, fmt.Sprintf("s%02d/t%d/f.bin", i, j)), 1<<20+int64(i*1000+j), uint64(500+10*i+j))
				}
			}
		}},
	}
	for _, tr := range trees {
		for _, side := range []string{"source", "destination"} {
			t.Run(tr.name+"/"+side, func(t *testing.T) {
				src := t.TempDir()
				tr.build(t, src)
				rootA, rootB := t.TempDir(), t.TempDir()
				a := startCluster(t, rootA, 2, tr.agents)
				b := startCluster(t, rootB, 2+tr.agents, tr.agents)
				cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b})
				if r := xfer(t, "--config", cfg, "copy", src, "clusterA:/proj"); r.code != 0 {
					t.Fatal(r)
				}
				victim := b[1]
				if side == "source" {
					victim = a[1]
				}
				// Slow enough (the limit is per pair) to kill an agent mid-sync.
				r, s := killMidSync(t, victim, filepath.Join(rootB, "proj"), "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj",
					"--chunk-size", "1M", "--bwlimit", tr.bw, "--json")
				sameTree(t, src, filepath.Join(rootB, "proj"))
				if !strings.Contains(r.stdout, "agent "+victim.addr+" lost") {
					t.Errorf("no notice about the lost agent:\n%s", r.stdout)
				}
				if strings.Contains(r.stdout, "the distributed walk is off") {
					t.Errorf("the walk was not distributed:\n%s", r.stdout)
				}
				for _, ag := range append(append([]*server{}, a...), b...) {
					if ag != victim && s.Agents[ag.addr].Lost {
						t.Errorf("agent %s marked lost but alive", ag.addr)
					}
				}
				// The survivors leave no partial files behind.
				noLeftovers(t, rootB)
			})
		}
	}
}

// killMidSync runs xfer with args, kills victim once a file arrives
// beneath dstDir, and returns the run, which must complete on the
// survivors and name victim lost in its summary.
func killMidSync(t *testing.T, victim *server, dstDir string, args ...string) (result, clusterSummary) {
	t.Helper()
	run := startXfer(t, args...)
	deadline := time.Now().Add(20 * time.Second)
	for !someFileIn(dstDir) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	must(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	r := run.wait(t)
	if r.code != 0 {
		t.Fatalf("a run with a lost agent should complete on the survivors:\n%s", r)
	}
	_, s := clusterRun(t, r)
	if !s.Agents[victim.addr].Lost {
		t.Errorf("summary does not name %s as lost: %+v", victim.addr, s.Agents)
	}
	return r, s
}

// someFileIn reports whether dir holds any regular file yet (the transfer
// has started writing).
func someFileIn(dir string) bool {
	found := false
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Size() > 0 {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

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
	// rsync was seen to leave directories it made with the time it made
	// them when that fell in the second of the source's mtime: the tree
	// is a second old before anything copies it.
	time.Sleep(1100 * time.Millisecond)
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

// walkClusters are the peers of the distributed walk's filter tests:
// walkTree at src (rootA/proj), clusters clusterA (a, on rootA) and
// clusterB (on rootB) of 3 agents each, and one agent a side (one on
// rootA, oneDst on rootC), all in cfg.
type walkClusters struct {
	src, rootB, rootC string
	a                 []*server
	cfg               string
}

func newWalkClusters(t *testing.T) walkClusters {
	t.Helper()
	rootA, rootB, rootC := t.TempDir(), t.TempDir(), t.TempDir()
	w := walkClusters{src: filepath.Join(rootA, "proj"), rootB: rootB, rootC: rootC}
	walkTree(t, w.src)
	w.a = startCluster(t, rootA, 2, 3)
	b := startCluster(t, rootB, 5, 3)
	one := startServerOn(t, "127.0.0.8", rootA)
	oneDst := startServerOn(t, "127.0.0.9", rootC)
	w.cfg = clusterConfig(t, map[string][]*server{"clusterA": w.a, "clusterB": b, "one": {one}, "oneDst": {oneDst}})
	return w
}

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
	w := newWalkClusters(t)
	src, rootB, rootC, a, cfg := w.src, w.rootB, w.rootC, w.a, w.cfg
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
			one := s.DirsRead
			limit := one * 12 / 10
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
				n := dirsRead(t, s, a)
				t.Logf("run %d: the source agents read %d directories, one filtered walk %d", run+1, n, one)
				if n > limit {
					t.Errorf("run %d: the source agents read %d directories, one filtered walk %d (limit %d): %+v", run+1, n, one, limit, s.Agents)
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
	w := newWalkClusters(t)
	src, rootB, rootC, a, cfg := w.src, w.rootB, w.rootC, w.a, w.cfg
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
