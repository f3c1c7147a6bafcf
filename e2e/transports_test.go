package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// usableTransports asks `xfer version --json` which transports this
// binary can use here.
func usableTransports(t *testing.T) []string {
	t.Helper()
	r := xfer(t, "version", "--json")
	var v struct {
		Transports []struct {
			Name   string `json:"name"`
			Usable bool   `json:"usable"`
		} `json:"transports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, r)
	}
	var out []string
	for _, tr := range v.Transports {
		if tr.Usable {
			out = append(out, tr.Name)
		}
	}
	return out
}

// ucxEnv makes UCX use TCP on loopback, so the rdma transport runs for
// real on machines without RDMA NICs.
var ucxEnv = []string{"UCX_TLS=tcp", "UCX_NET_DEVICES=lo"}

// TestEveryTransport copies the odd tree over each usable transport, both
// ways, and checks the negotiated name in the JSON summary.
func TestEveryTransport(t *testing.T) {
	src := oddSource(t)
	writeRandom(t, filepath.Join(src, "big/second.bin"), 9<<20+3, 4)
	for _, proto := range usableTransports(t) {
		t.Run(proto, func(t *testing.T) {
			t.Setenv("UCX_TLS", "tcp")
			t.Setenv("UCX_NET_DEVICES", "lo")
			s := startServer(t, t.TempDir())
			r := xferEnv(t, ucxEnv, "copy", src, s.url("d"), "--proto", proto, "--json", "--chunk-size", "1M")
			if r.code != 0 {
				t.Fatalf("push over %s: %s", proto, r)
			}
			if _, sum := jsonRun(t, r); sum.Proto != proto {
				t.Errorf("summary proto %q, want %s", sum.Proto, proto)
			}
			sameTree(t, src, filepath.Join(s.root, "d"))
			back := filepath.Join(t.TempDir(), "back")
			if r := xferEnv(t, ucxEnv, "copy", s.url("d"), back, "--proto", proto); r.code != 0 {
				t.Fatalf("pull over %s: %s", proto, r)
			}
			sameTree(t, src, back)
		})
	}
}

// TestNegotiation: a forced transport the server does not offer is exit
// 3 naming it; auto falls back and says why in the summary.
func TestNegotiation(t *testing.T) {
	src := oddSource(t)
	s := startServer(t, t.TempDir(), "--protos", "tcp")
	usable := usableTransports(t)
	for _, p := range usable {
		if p == "tcp" {
			continue
		}
		r := xferEnv(t, ucxEnv, "copy", src, s.url("x"), "--proto", p)
		if r.code != 3 || !strings.Contains(r.stderr, p) {
			t.Errorf("forcing %s against a tcp-only server: %s", p, r)
		}
	}
	r := xfer(t, "copy", src, s.url("x"), "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	var sum struct {
		Proto  string `json:"proto"`
		Reason string `json:"proto_reason"`
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	json.Unmarshal([]byte(lines[len(lines)-1]), &sum)
	if sum.Proto != "tcp" {
		t.Errorf("auto against a tcp-only server chose %q", sum.Proto)
	}
	if len(usable) > 1 && !strings.Contains(sum.Reason, "server") {
		t.Errorf("auto fallback without a reason naming the server: %q", sum.Reason)
	}
	if r := xfer(t, "copy", src, s.url("x"), "--proto", "rdma"); r.code == 0 {
		t.Errorf("rdma against a tcp-only server succeeded")
	}
}
