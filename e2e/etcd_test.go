package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEtcdCluster(t *testing.T) {
	const ttl = "3s"
	c := startEtcdCluster(t, 3, ttl)
	e, root, src, join, agents, cfg := c.e, c.root, c.src, c.join, c.agents, c.cfg

	// Discovery: three members, one tree.
	ms := clusterMembers(t, cfg, "clusterA")
	id, err := os.ReadFile(filepath.Join(root, ".xfer-tree-id"))
	must(t, err)
	for _, m := range ms {
		if m.TreeID != strings.TrimSpace(string(id)) || len(m.Transports) == 0 || m.Protocol == 0 || m.TTLLeft <= 0 {
			t.Errorf("member %+v (tree id file %q)", m, id)
		}
	}
	if r := xfer(t, "--config", cfg, "remote", "ls"); r.code != 0 || !strings.Contains(r.stdout, "cluster c1") {
		t.Errorf("remote ls does not show the etcd remote:\n%s", r)
	}

	// A sync through the etcd remote spreads over the three members; a
	// second run changes nothing.
	out := t.TempDir()
	r := xfer(t, "--config", cfg, "sync", "clusterA:/proj", out, "--chunk-size", "1M", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := clusterRun(t, r)
	sameTree(t, src, out)
	for _, ag := range agents {
		if st := s.Agents[ag.addr]; st.Bytes == 0 {
			t.Errorf("agent %s carried nothing: %+v", ag.addr, s.Agents)
		}
	}
	r = xfer(t, "--config", cfg, "sync", "clusterA:/proj", out, "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	if _, s := clusterRun(t, r); s.FilesTransferred != 0 || s.BytesSent != 0 {
		t.Errorf("second sync changed something: %+v", s.summary)
	}

	// A sync of the cluster's root leaves the tree id file out, and does
	// not delete the destination's own; its second run changes nothing.
	whole := t.TempDir()
	if r := xfer(t, "--config", cfg, "sync", "clusterA:/", whole, "--json"); r.code != 0 {
		t.Fatal(r)
	}
	if _, err := os.Lstat(filepath.Join(whole, ".xfer-tree-id")); !os.IsNotExist(err) {
		t.Errorf("a sync of the root copied .xfer-tree-id (%v)", err)
	}
	sameTree(t, src, filepath.Join(whole, "proj"))
	must(t, os.WriteFile(filepath.Join(whole, ".xfer-tree-id"), []byte("mine\n"), 0o644))
	r = xfer(t, "--config", cfg, "sync", "clusterA:/", whole, "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	if _, s := clusterRun(t, r); s.FilesTransferred != 0 || s.BytesSent != 0 || s.FilesDeleted != 0 {
		t.Errorf("second sync of the root changed something: %+v", s.summary)
	}
	if b, err := os.ReadFile(filepath.Join(whole, ".xfer-tree-id")); err != nil || string(b) != "mine\n" {
		t.Errorf("the destination's .xfer-tree-id after a sync of the root: %q, %v", b, err)
	}

	// An agent killed mid-sync: the sync completes, the summary names it,
	// and its lease expires.
	out2 := t.TempDir()
	run := c.slowSync(t, out2)
	time.Sleep(300 * time.Millisecond)
	victim := agents[2]
	must(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	r = run.waitWithin(t, 90*time.Second)
	if r.code != 0 {
		t.Fatalf("sync with a killed agent should complete:\n%s", r)
	}
	_, s = clusterRun(t, r)
	sameTree(t, src, out2)
	if !s.Agents[victim.addr].Lost {
		t.Errorf("summary does not name %s as lost: %+v", victim.addr, s.Agents)
	}
	awaitMembers(t, cfg, "clusterA", serverAddrs(agents[:2]), 10*time.Second)

	// A graceful stop deregisters at once (well within the TTL).
	agents[1].stop()
	if took := awaitMembers(t, cfg, "clusterA", serverAddrs(agents[:1]), 10*time.Second); took > 2*time.Second {
		t.Errorf("graceful stop took %s to deregister (TTL %s): the lease was not revoked", took, ttl)
	}

	// An agent serving another tree is refused as a member.
	other := t.TempDir()
	r = xfer(t, append([]string{"serve", "--listen", "127.0.0.6:0", "--root", other}, join...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "is not the cluster's") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
		t.Errorf("foreign tree: want exit 2 and a one-line refusal:\n%s", r)
	}
	noGoInternal(t, "foreign tree", r)

	// etcd stopped: the agent keeps serving; it is a member again once
	// etcd is back.
	e.stop()
	time.Sleep(4 * time.Second) // longer than the TTL
	direct := t.TempDir()
	if r := xfer(t, "copy", agents[0].url("proj"), direct); r.code != 0 {
		t.Fatalf("agent stopped serving while etcd was down:\n%s", r)
	}
	sameTree(t, src, direct)
	if r := xfer(t, "--config", cfg, "cluster", "ls", "clusterA"); r.code != 3 {
		t.Errorf("cluster ls with etcd down: want exit 3:\n%s", r)
	}
	e.start(t)
	awaitMembers(t, cfg, "clusterA", serverAddrs(agents[:1]), 20*time.Second)
}

// An agent that stops answering but keeps its connections open (SIGSTOP)
// leaves the cluster when its lease expires: the watch takes its work
// away long before the client's --timeout would, the sync completes and
// the summary names it.
func TestEtcdAgentLeavesMidSync(t *testing.T) {
	c := startEtcdCluster(t, 3, "2s")
	victim := c.agents[2]
	t.Cleanup(func() { victim.cmd.Process.Signal(syscall.SIGCONT) }) // before its own cleanup stops it
	out := t.TempDir()
	run := c.slowSync(t, out, "--timeout", "5m")
	time.Sleep(300 * time.Millisecond)
	must(t, victim.cmd.Process.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	r := run.waitWithin(t, 90*time.Second)
	took := time.Since(stopped)
	s := c.syncTwice(t, r, out)
	if !s.Agents[victim.addr].Lost {
		t.Errorf("summary does not name %s as lost: %+v", victim.addr, s.Agents)
	}
	if !strings.Contains(r.stdout, "agent "+victim.addr+" lost (its registration in the cluster ended)") {
		t.Errorf("no notice that %s left:\n%s", victim.addr, r)
	}
	if took > 45*time.Second {
		t.Errorf("the sync took %s after the agent stopped: its lease expiry did not take its work away", took)
	}
	for _, a := range c.agents[:2] {
		if s.Agents[a.addr].Bytes == 0 || s.Agents[a.addr].Lost {
			t.Errorf("survivor %s: %+v", a.addr, s.Agents[a.addr])
		}
	}
	awaitMembers(t, c.cfg, "clusterA", serverAddrs(c.agents[:2]), 10*time.Second)
}

// An agent that joins the cluster mid-sync takes shares still waiting.
func TestEtcdAgentJoinsMidSync(t *testing.T) {
	c := startEtcdCluster(t, 2, "3s")
	out := t.TempDir()
	run := c.slowSync(t, out)
	late := startServerOn(t, "127.0.0.5", c.root, c.join...)
	r := run.waitWithin(t, 90*time.Second)
	s := c.syncTwice(t, r, out)
	if st := s.Agents[late.addr]; st.Bytes == 0 || st.Files == 0 {
		t.Errorf("agent %s joined mid-sync and carried nothing: %+v", late.addr, s.Agents)
	}
	if !strings.Contains(r.stdout, "agent "+late.addr+" joined") {
		t.Errorf("no notice that %s joined:\n%s", late.addr, r)
	}
	for _, a := range c.agents {
		if s.Agents[a.addr].Bytes == 0 {
			t.Errorf("agent %s carried nothing: %+v", a.addr, s.Agents)
		}
	}
}

// The coordinating client killed mid-sync: the job's finished shares (and
// with subtrees, the finished units of its distributed walk) are in etcd,
// the rerun does not redo them (and sends only what is left), and the
// finished job's keys expire.
func TestEtcdJobResume(t *testing.T) {
	cases := []struct {
		name string
		// subtrees adds directories to the source: units of the
		// distributed walk, recorded beside the shares.
		subtrees int
		await    string // what the kill waits for: a finished share or unit
	}{
		{"shares", 0, "/shares/"},
		{"units", 12, "/units/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { testJobResume(t, tc.subtrees, tc.await) })
	}
}

func testJobResume(t *testing.T, subtrees int, await string) {
	c := startEtcdCluster(t, 3, "3s")
	for i := range subtrees {
		for j := range 2 {
			writeRandom(t, filepath.Join(c.src, fmt.Sprintf("s%02d/f%d.bin", i, j)), 1<<20, uint64(700+10*i+j))
		}
	}
	jobs := "/xfer/clusters/c1/jobs/"
	out := t.TempDir()
	run := c.slowSync(t, out)
	c.e.awaitKeys(t, jobs, 30*time.Second, "a share or unit finished", func(kv map[string]string) bool { return len(keysUnder(kv, await)) > 0 })
	run.kill()
	kv := c.e.keys(t, jobs)
	done, units := keysUnder(kv, "/shares/"), keysUnder(kv, "/units/")
	var doneBytes int64
	for k, v := range units {
		done[k] = v
	}
	for k, v := range done {
		var s struct {
			Bytes int64 `json:"bytes"`
		}
		must(t, json.Unmarshal([]byte(v), &s))
		if s.Bytes <= 0 {
			t.Errorf("share or unit %s recorded %s", k, v)
		}
		doneBytes += s.Bytes
	}
	shares := len(done) - len(units)
	total := regularBytes(t, c.src)
	if shares >= 6 && len(units) >= subtrees+1 {
		t.Fatalf("every share and unit finished before the kill (%d): nothing to resume", len(done))
	}

	r := xfer(t, "--config", c.cfg, "sync", "clusterA:/proj", out, "--chunk-size", "1M", "--json", "--etcd-done-ttl", "2s")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := clusterRun(t, r)
	sameTree(t, c.src, out)
	want := fmt.Sprintf("%d of 6 shares were finished by an earlier run and are not redone", shares)
	if subtrees > 0 {
		// The tree's subdirectories: odd and the subtrees.
		want += fmt.Sprintf(" (and %d of %d subtrees of its distributed walk)", len(units), subtrees+1)
	}
	if !strings.Contains(r.stdout, want) {
		t.Errorf("the rerun does not say %q:\n%s", want, r)
	}
	if s.BytesSent <= 0 || s.BytesSent > total-doneBytes {
		t.Errorf("the rerun sent %d bytes; the tree has %d of which finished shares and units carried %d", s.BytesSent, total, doneBytes)
	}
	kv = c.e.keys(t, jobs)
	var state string
	for k, v := range kv {
		if !strings.Contains(k, "/shares/") && !strings.Contains(k, "/units/") {
			var j struct {
				State  string `json:"state"`
				Shares int    `json:"shares"`
			}
			must(t, json.Unmarshal([]byte(v), &j))
			state = fmt.Sprint(j.State, "/", j.Shares)
		}
	}
	if state != "done/6" {
		t.Errorf("the job's record after the rerun: %v", kv)
	}
	c.e.awaitKeys(t, jobs, 15*time.Second, "the finished job's keys expire", func(kv map[string]string) bool { return len(kv) == 0 })
	if r := xfer(t, "--config", c.cfg, "sync", "clusterA:/proj", out, "--json", "--etcd-done-ttl", "2s"); r.code != 0 {
		t.Fatal(r)
	} else if _, s := clusterRun(t, r); s.FilesTransferred != 0 || s.BytesSent != 0 || s.FilesDeleted != 0 {
		t.Errorf("third sync changed something: %+v", s.summary)
	}
}

// A sync into a cluster kept in etcd holds a lease-backed lock there: a
// second run is refused, and once the holder is killed the lock ends with
// its lease.
func TestEtcdLock(t *testing.T) {
	c := startEtcdCluster(t, 3, "3s")
	local := filepath.Join(t.TempDir(), "src")
	oddTree(t, local)
	writeRandom(t, filepath.Join(local, "big.bin"), 24<<20, 9)
	locks := "/xfer/clusters/c1/locks/"
	run := startXfer(t, "--config", c.cfg, "sync", local, "clusterA:/dst", "--bwlimit", "2M", "--json")
	c.e.awaitKeys(t, locks, 20*time.Second, "the first run holds the lock", func(kv map[string]string) bool { return len(kv) > 0 })
	r := xfer(t, "--config", c.cfg, "sync", local, "clusterA:/dst")
	if r.code != 1 || !strings.Contains(r.stderr, "destination locked: another xfer run holds its lock /xfer/clusters/c1/locks/") {
		t.Errorf("second run: want exit 1 and the etcd lock's refusal:\n%s", r)
	}
	noGoInternal(t, "etcd lock", r)
	run.kill()
	start := time.Now()
	for {
		if r = xfer(t, "--config", c.cfg, "sync", local, "clusterA:/dst", "--json"); r.code == 0 || time.Since(start) > 30*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r.code != 0 {
		t.Fatalf("the lock of a killed run did not end with its lease:\n%s", r)
	}
	sameTree(t, local, filepath.Join(c.root, "dst"))
	c.e.awaitKeys(t, locks, 5*time.Second, "a finished run releases the lock", func(kv map[string]string) bool { return len(kv) == 0 })
}

// etcd stopped mid-sync: the run finishes with the agents it knows and
// says that the job could not be recorded.
func TestEtcdStoppedMidSync(t *testing.T) {
	c := startEtcdCluster(t, 3, "3s")
	out := t.TempDir()
	run := c.slowSync(t, out)
	c.e.stop()
	r := run.waitWithin(t, 120*time.Second)
	if r.code != 0 {
		t.Fatalf("sync with etcd stopped: %s", r)
	}
	sameTree(t, c.src, out)
	if !strings.Contains(r.stdout, "the run goes on (a rerun would redo the shares not recorded)") {
		t.Errorf("no notice that the job could not be recorded:\n%s", r)
	}
	_, s := clusterRun(t, r)
	for _, a := range c.agents {
		if s.Agents[a.addr].Lost {
			t.Errorf("agent %s lost though only etcd stopped: %+v", a.addr, s.Agents)
		}
	}
}

// Cluster to cluster, both kept in one etcd: the shares spread over both
// sides' agents, the job is recorded with the destination's cluster, and
// a second run changes nothing.
func TestEtcdClusterToCluster(t *testing.T) {
	c := startEtcdCluster(t, 3, "3s")
	rootB := t.TempDir()
	joinB := []string{"--etcd", c.e.url, "--cluster", "c2", "--etcd-ttl", "3s"}
	agentsB := startCluster(t, rootB, 5, 3, joinB...)
	if r := xfer(t, "--config", c.cfg, "remote", "add", "clusterB", "--etcd", c.e.url, "--cluster", "c2"); r.code != 0 {
		t.Fatal(r)
	}
	awaitMembers(t, c.cfg, "clusterB", serverAddrs(agentsB), 10*time.Second)
	for i := range 2 {
		r := xfer(t, "--config", c.cfg, "sync", "clusterA:/proj", "clusterB:/proj", "--chunk-size", "1M", "--json", "--etcd-done-ttl", "1m")
		if r.code != 0 {
			t.Fatal(r)
		}
		_, s := clusterRun(t, r)
		sameTree(t, c.src, filepath.Join(rootB, "proj"))
		if i == 1 {
			if s.FilesTransferred != 0 || s.BytesSent != 0 || s.FilesDeleted != 0 {
				t.Errorf("second sync changed something: %+v", s.summary)
			}
			break
		}
		for _, a := range append(slices.Clone(c.agents), agentsB...) {
			if s.Agents[a.addr].Bytes == 0 {
				t.Errorf("agent %s carried nothing: %+v", a.addr, s.Agents)
			}
		}
		jobs := c.e.keys(t, "/xfer/clusters/c2/jobs/")
		if len(shareKeys(jobs)) != 6 || len(c.e.keys(t, "/xfer/clusters/c1/jobs/")) != 0 {
			t.Errorf("the job is not recorded with the destination's cluster, 6 shares: %v", jobs)
		}
	}
}
