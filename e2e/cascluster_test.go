package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/mover"
)

// casClusterSetup is a real etcd with three `xfer serve --cas` holders of
// cluster c1 on 127.0.0.2-4 (one tree, a store each), a config file naming
// the cluster clusterA, and one object stored on the last holder only.
type casClusterSetup struct {
	e       *etcdServer
	holders []*server
	root    string // the tree the holders serve
	cfg     string
	content []byte
	id      string
}

func startCASCluster(t *testing.T) *casClusterSetup {
	t.Helper()
	c := &casClusterSetup{e: startEtcd(t)}
	dir, root := t.TempDir(), t.TempDir()
	c.root = root
	for i := range 3 {
		c.holders = append(c.holders, startServerOn(t, fmt.Sprintf("127.0.0.%d", i+2), root,
			"--cas", filepath.Join(dir, fmt.Sprintf("store%d", i)), "--etcd", c.e.url, "--cluster", "c1", "--etcd-ttl", "30s"))
	}
	c.cfg = writeConfig(t, "")
	if r := xfer(t, "--config", c.cfg, "remote", "add", "clusterA", "--etcd", c.e.url, "--cluster", "c1"); r.code != 0 {
		t.Fatal(r)
	}
	awaitMembers(t, c.cfg, "clusterA", serverAddrs(c.holders), 10*time.Second)
	src := filepath.Join(dir, "obj")
	writeRandom(t, src, 5<<20+3, 77)
	c.content, _ = os.ReadFile(src)
	c.id = refSum(t, src)
	r := casRun(t, nil, nil, "cas", "put", src, "xfer://"+c.holders[2].addr)
	if r.code != 0 || strings.TrimSpace(r.stdout) != c.id {
		t.Fatalf("put to the third holder: printed %q, want %s\n%s", r.stdout, c.id, r)
	}
	return c
}

// TestCASGetCluster: `cas get --cluster` asks the registered holders and
// reads the object from the one that has it; an object nobody has and an
// unreachable etcd fail clearly.
func TestCASGetCluster(t *testing.T) {
	c := startCASCluster(t)
	local := []string{"XFER_CAS=" + filepath.Join(t.TempDir(), "local")}
	out := filepath.Join(t.TempDir(), "out")
	for i := range 2 { // twice: the second get finds the same and changes nothing
		r := casRun(t, nil, local, "--config", c.cfg, "cas", "get", c.id, out, "--cluster", "clusterA")
		wantCode(t, r, 0, fmt.Sprintf("get --cluster, run %d", i+1))
		if got, _ := os.ReadFile(out); !bytes.Equal(got, c.content) {
			t.Fatalf("get --cluster run %d wrote %d bytes, not the object's %d", i+1, len(got), len(c.content))
		}
		if sum := refSum(t, out); sum != c.id {
			t.Fatalf("get --cluster wrote content %s, want %s", sum, c.id)
		}
	}
	r := casRun(t, nil, local, "cas", "get", c.id, "--etcd", c.e.url, "--cluster", "c1")
	if r.code != 0 || r.stdout != string(c.content) {
		t.Fatalf("get --etcd --cluster to stdout: exit %d, %d bytes\n%s", r.code, len(r.stdout), r.stderr)
	}
	// Nothing went to the local store.
	if r := casRun(t, nil, local, "cas", "has", c.id); r.code != 1 {
		t.Errorf("get --cluster stored the object locally: %s", r)
	}

	absent := strings.Repeat("ab", 32)
	missing := filepath.Join(t.TempDir(), "missing")
	getAbsent := func(want string) {
		t.Helper()
		r := casRun(t, nil, local, "--config", c.cfg, "cas", "get", absent, missing, "--cluster", "clusterA")
		wantCode(t, r, 1, "get --cluster of an object nobody has")
		if !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("get of an absent object: want one line with %q: %q", want, r.stderr)
		}
		noGoInternal(t, "absent object", r)
		if _, err := os.Stat(missing); err == nil {
			t.Error("a failed get --cluster left its output")
		}
	}
	getAbsent("no holder has it (asked 3: 3 lack it)")

	// A holder killed stays registered until its lease (30s) expires: it
	// is asked, fails to answer, and the others are used.
	must(t, c.holders[0].cmd.Process.Kill())
	for deadline := time.Now().Add(10 * time.Second); c.holders[0].alive() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	r = casRun(t, nil, local, "--config", c.cfg, "cas", "get", c.id, "--cluster", "clusterA")
	if r.code != 0 || r.stdout != string(c.content) {
		t.Fatalf("get --cluster with a dead holder registered: exit %d, %d bytes\n%s", r.code, len(r.stdout), r.stderr)
	}
	getAbsent("no holder has it (asked 3: 2 lack it, 1 did not answer: peer " + c.holders[0].addr)

	dead := freePorts(t, 1)[0]
	r = casRun(t, nil, local, "cas", "get", c.id, filepath.Join(t.TempDir(), "x"), "--etcd", "http://"+dead, "--cluster", "c1")
	wantCode(t, r, 3, "get --cluster with etcd unreachable")
	if !strings.Contains(r.stderr, "etcd does not answer") {
		t.Errorf("etcd unreachable: %q", r.stderr)
	}
	noGoInternal(t, "etcd unreachable", r)
	wantCode(t, casRun(t, nil, local, "--config", c.cfg, "cas", "get", c.id, "--cluster", "nosuch"), 2, "unknown cluster remote")
	wantCode(t, casRun(t, nil, local, "--config", c.cfg, "cas", "get", c.id, "--cluster", "clusterA", "--from", "xfer://"+c.holders[0].addr), 2, "--from with --cluster")
}

// TestDaemonFetchCluster: a daemon in the cluster (--etcd --cluster)
// fetches an object named without a peer from the holder that has it, and
// registers its own --listen address as a holder.
func TestDaemonFetchCluster(t *testing.T) {
	c := startCASCluster(t)
	dir := t.TempDir()
	join := []string{"--etcd", c.e.url, "--cluster", "c1", "--etcd-ttl", "30s"}
	d, ok := runDaemon(t, nil, nil, append([]string{"--socket", filepath.Join(dir, "d.sock"), "--cas", filepath.Join(dir, "dcas"),
		"--listen", "127.0.0.5:0", "--insecure-listen"}, join...)...)
	if !ok || d.peers == "" {
		t.Fatalf("daemon: %v peers %q\n%s", ok, d.peers, d.log())
	}
	// It joins as a holder (a store alone, with no tree).
	want := append(serverAddrs(c.holders), d.peers)
	slices.Sort(want)
	awaitMembers(t, c.cfg, "clusterA", want, 10*time.Second)
	// A store alone is no agent: a copy through the cluster uses the three
	// agents only (the daemon serves no tree and would refuse it).
	writeRandom(t, filepath.Join(c.root, "d", "f.bin"), 1<<20, 3)
	out := filepath.Join(t.TempDir(), "out")
	if r := xfer(t, "--config", c.cfg, "copy", "clusterA:/d", out); r.code != 0 {
		t.Fatalf("copy through a cluster with a store-only member: %s", r)
	}
	sameTree(t, filepath.Join(c.root, "d"), out)

	mc := d.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 2 { // the second FETCH finds the object here already
		if err := mc.Fetch(ctx, c.id, ""); err != nil {
			t.Fatalf("FETCH without a peer, run %d: %v\n%s", i+1, err, d.log())
		}
	}
	got, err := mc.Read(ctx, c.id)
	if err != nil || !bytes.Equal(got, c.content) {
		t.Fatalf("fetched object: %d bytes, %v (want %d bytes)", len(got), err, len(c.content))
	}
	absent := strings.Repeat("cd", 32)
	err = mc.Fetch(ctx, absent, "")
	if !errors.Is(err, mover.ErrNotFound) || !strings.Contains(err.Error(), "no holder has it") {
		t.Fatalf("FETCH of an object nobody has: %v", err)
	}

	// The daemon's own store is now a holder: cas get --cluster can read
	// the object from it with the first holder's store gone.
	c.holders[2].stop()
	want = append(serverAddrs(c.holders[:2]), d.peers)
	slices.Sort(want)
	awaitMembers(t, c.cfg, "clusterA", want, 10*time.Second)
	r := casRun(t, nil, nil, "--config", c.cfg, "cas", "get", c.id, "--cluster", "clusterA")
	if r.code != 0 || r.stdout != string(c.content) {
		t.Fatalf("get --cluster from the daemon: exit %d, %d bytes\n%s", r.code, len(r.stdout), r.stderr)
	}
}
