package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEtcdCluster(t *testing.T) {
	e := startEtcd(t)
	root := t.TempDir()
	src := filepath.Join(root, "proj")
	for i := range 12 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%02d.bin", i)), 3<<20, uint64(500+i))
	}
	oddTree(t, filepath.Join(src, "odd"))
	const ttl = "3s"
	join := []string{"--etcd", e.url, "--cluster", "c1", "--etcd-ttl", ttl}
	agents := startCluster(t, root, 2, 3, join...)
	cfg := writeConfig(t, "")
	if r := xfer(t, "--config", cfg, "remote", "add", "clusterA", "--etcd", e.url, "--cluster", "c1"); r.code != 0 {
		t.Fatal(r)
	}

	// Discovery: three members, one tree.
	awaitMembers(t, cfg, "clusterA", serverAddrs(agents), 10*time.Second)
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
	run := startXfer(t, "--config", cfg, "sync", "clusterA:/proj", out2, "--chunk-size", "1M", "--bwlimit", "6M", "--json")
	deadline := time.Now().Add(20 * time.Second)
	for !someFileIn(out2) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
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
