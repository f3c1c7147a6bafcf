package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// benchLine is one JSON line of `xfer bench --json`.
type benchLine struct {
	Event     string  `json:"event"`
	Proto     string  `json:"proto"`
	Skipped   string  `json:"skipped"`
	Mode      string  `json:"mode"`
	Size      int     `json:"size"`
	Streams   int     `json:"streams"`
	DurationS float64 `json:"duration_s"`
	Bytes     int64   `json:"bytes"`
	Messages  int64   `json:"messages"`
	Gbits     float64 `json:"gbit_s"`
	GBs       float64 `json:"gb_s"`
	MsgRate   float64 `json:"msg_s"`
	ClientCPU float64 `json:"client_cpu_s"`
	ServerCPU float64 `json:"server_cpu_s"`
	Ping      *struct {
		RoundTrips int64   `json:"round_trips"`
		Rate       float64 `json:"rt_s"`
		P50us      float64 `json:"p50_us"`
		P99us      float64 `json:"p99_us"`
	} `json:"ping"`
	PerStream []struct {
		Stream      int     `json:"stream"`
		Bytes       int64   `json:"bytes"`
		ServerBytes int64   `json:"server_bytes"`
		Gbits       float64 `json:"gbit_s"`
		RoundTrips  int64   `json:"round_trips"`
	} `json:"per_stream"`
}

func benchLines(t *testing.T, r result) []benchLine {
	t.Helper()
	var out []benchLine
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var b benchLine
		if err := json.Unmarshal([]byte(l), &b); err != nil || b.Event != "bench" {
			t.Fatalf("not a bench JSON line: %q\n%s", l, r)
		}
		out = append(out, b)
	}
	return out
}

// checkBench checks one measured transport's line for consistency.
func checkBench(t *testing.T, b benchLine, proto, mode string, streams int, ping bool) {
	t.Helper()
	if b.Skipped != "" {
		t.Fatalf("%s skipped: %s", b.Proto, b.Skipped)
	}
	if b.Proto != proto || b.Mode != mode || b.Streams != streams || len(b.PerStream) != streams {
		t.Fatalf("got proto %s mode %s, %d streams (%d rows); want %s %s %d", b.Proto, b.Mode, b.Streams, len(b.PerStream), proto, mode, streams)
	}
	if b.Bytes <= 0 || b.Messages <= 0 || b.Gbits <= 0 || b.GBs*8 < b.Gbits*0.999 || b.GBs*8 > b.Gbits*1.001 || b.MsgRate <= 0 {
		t.Errorf("%s: totals %+v", proto, b)
	}
	if b.ClientCPU <= 0 || b.ServerCPU <= 0 {
		t.Errorf("%s: CPU time client %v s, server %v s", proto, b.ClientCPU, b.ServerCPU)
	}
	var sum int64
	for _, s := range b.PerStream {
		if s.Bytes <= 0 || s.ServerBytes != s.Bytes {
			t.Errorf("%s stream %d: sent %d bytes, the server counted %d", proto, s.Stream, s.Bytes, s.ServerBytes)
		}
		if ping && s.RoundTrips <= 0 {
			t.Errorf("%s stream %d: no round trip timed", proto, s.Stream)
		}
		sum += s.Bytes
	}
	if sum != b.Bytes || b.Bytes != b.Messages*int64(b.Size) {
		t.Errorf("%s: %d bytes in %d messages of %d; streams sum to %d", proto, b.Bytes, b.Messages, b.Size, sum)
	}
	if ping {
		if b.Ping == nil || b.Ping.RoundTrips <= 0 || b.Ping.P50us <= 0 || b.Ping.P99us < b.Ping.P50us || b.Ping.Rate <= 0 {
			t.Errorf("%s: round trips %+v", proto, b.Ping)
		}
	} else if b.Ping != nil {
		t.Errorf("%s: round trips timed with --ping-duration 0", proto)
	}
}

// TestBench runs `xfer bench` against a real `xfer serve` over each usable
// transport and mode (short runs: a test checks that it works, the numbers
// come from scripts/bench-transports.sh).
func TestBench(t *testing.T) {
	t.Setenv("UCX_TLS", "tcp")
	t.Setenv("UCX_NET_DEVICES", "lo")
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "scratch"), 0o755)
	s := startServer(t, root)
	type tc struct {
		name    string
		proto   string
		mode    string
		streams int
		args    []string
		ping    bool
	}
	var tests []tc
	for _, p := range usableTransports(t) {
		tests = append(tests, tc{p + " mem", p, "mem", 2, []string{"--size", "256K"}, true})
	}
	tests = append(tests,
		tc{"tcp-zc file (sendfile)", "tcp-zc", "file", 1, []string{"--size", "1M", "--ping-duration", "0"}, false},
		tc{"uring disk", "uring", "disk", 2, []string{"--size", "100000", "--ping-duration", "0"}, false},
		tc{"tcp small messages", "tcp", "mem", 1, []string{"--size", "64", "--ping-size", "1"}, true},
	)
	usable := strings.Join(usableTransports(t), " ")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(" "+usable+" ", " "+tt.proto+" ") {
				t.Skipf("%s not usable here", tt.proto)
			}
			to := s.url("")
			if tt.mode == "disk" {
				to = s.url("scratch")
			}
			args := append([]string{"bench", "--to", to, "--proto", tt.proto, "--mode", tt.mode,
				"--streams", strconv.Itoa(tt.streams), "--duration", "300ms", "--ping-duration", "200ms", "--json"}, tt.args...)
			r := xferEnv(t, ucxEnv, args...)
			if r.code != 0 {
				t.Fatalf("xfer bench: %s", r)
			}
			lines := benchLines(t, r)
			if len(lines) != 1 {
				t.Fatalf("%d JSON lines, want 1\n%s", len(lines), r)
			}
			checkBench(t, lines[0], tt.proto, tt.mode, tt.streams, tt.ping)
			if ents, _ := os.ReadDir(filepath.Join(root, "scratch")); len(ents) != 0 {
				t.Errorf("bench left %v in the server's tree", ents)
			}
		})
	}
}

// TestBenchAll: --proto all measures every transport both ends use, one
// row (or JSON line) each, and names the ones the server does not offer.
func TestBenchAll(t *testing.T) {
	t.Setenv("UCX_TLS", "tcp")
	t.Setenv("UCX_NET_DEVICES", "lo")
	usable := usableTransports(t)
	s := startServer(t, t.TempDir(), "--protos", "tcp,tcp-zc")
	common := []string{"bench", "--to", s.url(""), "--proto", "all", "--streams", "1", "--duration", "150ms", "--ping-duration", "100ms", "--size", "64K"}

	r := xferEnv(t, ucxEnv, append(common, "--json")...)
	if r.code != 0 {
		t.Fatalf("xfer bench --proto all: %s", r)
	}
	got := map[string]benchLine{}
	for _, b := range benchLines(t, r) {
		got[b.Proto] = b
	}
	for _, p := range usable {
		b, ok := got[p]
		switch {
		case !ok:
			t.Errorf("no line for %s\n%s", p, r)
		case p == "tcp" || p == "tcp-zc":
			checkBench(t, b, p, "mem", 1, true)
		case b.Skipped == "" || !strings.Contains(b.Skipped, p):
			t.Errorf("%s: the server does not offer it, but the line says %+v", p, b)
		}
	}

	r = xferEnv(t, ucxEnv, common...)
	if r.code != 0 {
		t.Fatalf("xfer bench --proto all: %s", r)
	}
	for _, want := range []string{"proto", "Gbit/s", "p99 µs", "server cpu", "\ntcp ", "\ntcp-zc "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, p := range usable {
		if p != "tcp" && p != "tcp-zc" && !strings.Contains(r.stdout, p+" skipped:") {
			t.Errorf("table does not say %s was skipped:\n%s", p, r.stdout)
		}
	}
}

// TestBenchText: the per-stream table of one transport.
func TestBenchText(t *testing.T) {
	s := startServer(t, t.TempDir())
	r := xfer(t, "bench", "--to", s.url(""), "--proto", "tcp", "--streams", "3", "--duration", "200ms", "--ping-duration", "100ms")
	if r.code != 0 {
		t.Fatalf("xfer bench: %s", r)
	}
	for _, want := range []string{"over tcp: mode mem, 3 streams, 1 MiB messages for 200ms; 64 B round trips for 100ms",
		"\n0 ", "\n1 ", "\n2 ", "\ntotal ", "cpu: client"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	s := startServer(t, t.TempDir())
	ro := startServer(t, t.TempDir(), "--read-only")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --to", []string{}, 2, "--to is required"},
		{"a local path", []string{"--to", "/tmp"}, 2, "not a local path"},
		{"unknown remote", []string{"--to", "nosuch:"}, 2, "nosuch"},
		{"bad size", []string{"--to", s.url(""), "--size", "0"}, 2, "--size"},
		{"size too large", []string{"--to", s.url(""), "--size", "65M"}, 2, "--size"},
		{"bad ping size", []string{"--to", s.url(""), "--ping-size", "1M"}, 2, "--ping-size"},
		{"bad mode", []string{"--to", s.url(""), "--mode", "tape"}, 2, "--mode"},
		{"bad proto", []string{"--to", s.url(""), "--proto", "carrier-pigeon"}, 2, "--proto"},
		{"bad streams", []string{"--to", s.url(""), "--streams", "0"}, 2, "--streams"},
		{"nothing to measure", []string{"--to", s.url(""), "--duration", "0", "--ping-duration", "0"}, 2, "nothing to measure"},
		{"disk on a read-only server", []string{"--to", ro.url(""), "--mode", "disk"}, 2, "read-only"},
		{"disk in a missing directory", []string{"--to", s.url("missing"), "--mode", "disk"}, 2, "missing"},
		{"nobody listening", []string{"--to", "xfer://127.0.0.1:1", "--connect-timeout", "2s"}, 3, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := xfer(t, append([]string{"bench", "--duration", "100ms", "--ping-duration", "0"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("want exit %d mentioning %q: %s", tt.code, tt.want, r)
			}
		})
	}
}
