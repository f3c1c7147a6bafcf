package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// etcdServer is a real etcd on 127.0.0.1 ports chosen at run time.
type etcdServer struct {
	dir, url, peer string
	p              *proc
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	needTool(t, "etcd", "the etcd membership tests (Debian's etcd-server)")
	e := &etcdServer{dir: t.TempDir(), url: "http://" + freePort(t), peer: "http://" + freePort(t)}
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
