package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdServer is a real etcd on 127.0.0.1 ports chosen at run time.
type etcdServer struct {
	dir, url, peer string
	p              *proc
}

// freePorts returns n distinct free 127.0.0.1 addresses (all held open
// until chosen, so that no two are the same).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	needTool(t, "etcd", "the etcd membership tests (Debian's etcd-server)")
	p := freePorts(t, 2)
	e := &etcdServer{dir: t.TempDir(), url: "http://" + p[0], peer: "http://" + p[1]}
	e.start(t)
	t.Cleanup(e.stop)
	return e
}

// start runs etcd on e's data directory and ports and waits (bounded)
// until it answers.
func (e *etcdServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("etcd", "--name", "e2e", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.url, "--advertise-client-urls", e.url,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "e2e="+e.peer)
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+os.Getenv("GOARCH"))
	e.p = startProc(t, cmd, nil)
	addr := strings.TrimPrefix(e.url, "http://")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if !e.p.alive() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("etcd did not start:\n%s", e.p.logs)
}

func (e *etcdServer) stop() {
	if e.p != nil {
		e.p.terminate(10 * time.Second)
	}
}

// member is one line of `xfer cluster ls --json`.
type member struct {
	Addr       string   `json:"addr"`
	TreeID     string   `json:"tree_id"`
	Transports []string `json:"transports"`
	Protocol   int      `json:"protocol"`
	TTLLeft    float64  `json:"ttl_left_s"`
}

func clusterMembers(t *testing.T, cfg, name string) []member {
	t.Helper()
	r := xfer(t, "--config", cfg, "cluster", "ls", name, "--json")
	if r.code != 0 {
		t.Fatalf("cluster ls: %s", r)
	}
	var out []member
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l == "" {
			continue
		}
		var m member
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("cluster ls line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func memberAddrs(ms []member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Addr)
	}
	slices.Sort(out)
	return out
}

func serverAddrs(ss []*server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.addr)
	}
	slices.Sort(out)
	return out
}

// awaitMembers waits (at most limit) until the cluster's members are
// exactly want, and returns how long that took.
func awaitMembers(t *testing.T, cfg, name string, want []string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < limit {
		if got = memberAddrs(clusterMembers(t, cfg, name)); slices.Equal(got, want) {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("members of %s after %s: %v, want %v", name, limit, got, want)
	return 0
}

// etcdSetup is a cluster c1 kept in a real etcd: n agents on 127.0.0.2
// and up serving root (whose proj holds 36 MiB in 12 files and the odd
// tree), and a config file naming it clusterA.
type etcdSetup struct {
	e         *etcdServer
	root, src string
	join      []string // the serve flags that join the cluster
	agents    []*server
	cfg       string
}

func startEtcdCluster(t *testing.T, n int, ttl string) *etcdSetup {
	t.Helper()
	c := &etcdSetup{e: startEtcd(t), root: t.TempDir()}
	c.src = filepath.Join(c.root, "proj")
	for i := range 12 {
		writeRandom(t, filepath.Join(c.src, fmt.Sprintf("f%02d.bin", i)), 3<<20, uint64(500+i))
	}
	oddTree(t, filepath.Join(c.src, "odd"))
	c.join = []string{"--etcd", c.e.url, "--cluster", "c1", "--etcd-ttl", ttl}
	c.agents = startCluster(t, c.root, 2, n, c.join...)
	c.cfg = writeConfig(t, "")
	if r := xfer(t, "--config", c.cfg, "remote", "add", "clusterA", "--etcd", c.e.url, "--cluster", "c1"); r.code != 0 {
		t.Fatal(r)
	}
	awaitMembers(t, c.cfg, "clusterA", serverAddrs(c.agents), 10*time.Second)
	return c
}

// syncTwice checks that a finished sync of clusterA:/proj into out made
// out the source and that running it again changes nothing.
func (c *etcdSetup) syncTwice(t *testing.T, r result, out string) clusterSummary {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("sync: %s", r)
	}
	_, s := clusterRun(t, r)
	sameTree(t, c.src, out)
	r2 := xfer(t, "--config", c.cfg, "sync", "clusterA:/proj", out, "--json")
	if r2.code != 0 {
		t.Fatal(r2)
	}
	if _, s2 := clusterRun(t, r2); s2.FilesTransferred != 0 || s2.BytesSent != 0 || s2.FilesDeleted != 0 {
		t.Errorf("second sync changed something: %+v", s2.summary)
	}
	return s
}

// slowSync starts a sync of clusterA:/proj into out slow enough (6 MiB/s
// over 36 MiB) to act on mid-run, and returns once data arrives.
func (c *etcdSetup) slowSync(t *testing.T, out string, extra ...string) *bgXfer {
	t.Helper()
	run := startXfer(t, append([]string{"--config", c.cfg, "sync", "clusterA:/proj", out, "--chunk-size", "1M", "--bwlimit", "6M", "--json"}, extra...)...)
	deadline := time.Now().Add(20 * time.Second)
	for !someFileIn(out) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return run
}

// keys returns the keys and values beneath prefix in e (nil if etcd does
// not answer within 5s).
func (e *etcdServer) keys(t *testing.T, prefix string) map[string]string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// awaitKeys waits (at most limit) until ok accepts the keys beneath
// prefix, and returns them.
func (e *etcdServer) awaitKeys(t *testing.T, prefix string, limit time.Duration, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	var kv map[string]string
	for start := time.Now(); time.Since(start) < limit; time.Sleep(100 * time.Millisecond) {
		if kv = e.keys(t, prefix); ok(kv) {
			return kv
		}
	}
	t.Fatalf("after %s, %s: keys beneath %s: %v", limit, what, prefix, kv)
	return nil
}

// shareKeys picks the keys of finished shares.
func shareKeys(kv map[string]string) map[string]string { return keysUnder(kv, "/shares/") }

// keysUnder is the keys of kv that hold part, with their values.
func keysUnder(kv map[string]string, part string) map[string]string {
	out := map[string]string{}
	for k, v := range kv {
		if strings.Contains(k, part) {
			out[k] = v
		}
	}
	return out
}

// regularBytes is the size of the regular files beneath dir.
func regularBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return err
	}))
	return n
}
