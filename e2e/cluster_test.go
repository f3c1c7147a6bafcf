package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
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

func TestClusterAgentLost(t *testing.T) {
	for _, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			src := t.TempDir()
			for i := range 16 {
				writeRandom(t, filepath.Join(src, fmt.Sprintf("f%02d.bin", i)), 3<<20, uint64(300+i))
			}
			writeRandom(t, filepath.Join(src, "split.bin"), 24<<20, 399) // split over both pairs
			oddTree(t, filepath.Join(src, "odd"))
			rootA, rootB := t.TempDir(), t.TempDir()
			a := startCluster(t, rootA, 2, 2)
			b := startCluster(t, rootB, 4, 2)
			cfg := clusterConfig(t, map[string][]*server{"clusterA": a, "clusterB": b})
			if r := xfer(t, "--config", cfg, "copy", src, "clusterA:/proj"); r.code != 0 {
				t.Fatal(r)
			}
			victim := b[1]
			if side == "source" {
				victim = a[1]
			}
			// Slow enough (8 MiB/s per pair) to kill an agent mid-sync.
			run := startXfer(t, "--config", cfg, "sync", "clusterA:/proj", "clusterB:/proj",
				"--chunk-size", "1M", "--bwlimit", "8M", "--json")
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
			if st := s.Agents[victim.addr]; !st.Lost {
				t.Errorf("summary does not name %s as lost: %+v", victim.addr, s.Agents)
			}
			if !strings.Contains(r.stdout, "agent "+victim.addr+" lost") {
				t.Errorf("no notice about the lost agent:\n%s", r.stdout)
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
