package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scrape serves m on 127.0.0.1:0 and GETs path, as Prometheus would.
func scrape(t *testing.T, m *Metrics, path string) (int, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, m) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener after cancel: %v", err)
		}
	}()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ln.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// record calls every method that records on m: TestScrape checks what the
// calls count, TestNilIsNoop that they do nothing on a nil Metrics.
func record(m *Metrics) {
	m.AddBytes("tcp", Sent, 1<<20)
	m.AddBytes("tcp", Sent, 1<<20)
	m.AddBytes("uring", Received, 4096)
	m.AddBytes("tcp", Sent, 0) // ignored
	m.AddFiles("tcp", Sent, 3)
	m.AddFiles("uring", Received, 1)
	m.SessionStarted()
	m.SessionStarted()
	m.SessionEnded()
	m.ChunkRetry()
	m.ChunkRetry()
	m.VerifyFailure()
	m.DirsRead(7)
	m.ObserveDaemonOp("copy", 30*time.Millisecond)
	m.ObserveDaemonOp("copy", 2*time.Second)
	m.ObserveDaemonOp("status", 500*time.Microsecond)
}

func TestScrape(t *testing.T) {
	m := New()
	record(m)

	code, body := scrape(t, m, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	for _, want := range []string{
		`xfer_bytes_total{direction="sent",transport="tcp"} 2.097152e+06`,
		`xfer_bytes_total{direction="received",transport="uring"} 4096`,
		`xfer_files_total{direction="sent",transport="tcp"} 3`,
		`xfer_files_total{direction="received",transport="uring"} 1`,
		"xfer_active_sessions 1",
		"xfer_chunk_retries_total 2",
		"xfer_verify_failures_total 1",
		"xfer_dirs_read_total 7",
		`xfer_daemon_op_seconds_count{op="copy"} 2`,
		`xfer_daemon_op_seconds_bucket{op="copy",le="0.064"} 1`,
		`xfer_daemon_op_seconds_sum{op="status"} 0.0005`,
		"# HELP xfer_bytes_total ",
		"# TYPE xfer_daemon_op_seconds histogram",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", 200, "ok\n"},
		{"/nope", 404, "404 page not found\n"},
	}
	m := New()
	for _, tt := range tests {
		code, body := scrape(t, m, tt.path)
		if code != tt.wantCode || body != tt.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

// Two sets do not share counts: no global registry.
func TestIndependentSets(t *testing.T) {
	a, b := New(), New()
	a.ChunkRetry()
	_, body := scrape(t, b, "/metrics")
	if !strings.Contains(body, "xfer_chunk_retries_total 0") {
		t.Errorf("second set sees the first's retry:\n%s", grep(body, "xfer_chunk"))
	}
}

// A nil *Metrics is "metrics off": every call is a no-op.
func TestNilIsNoop(t *testing.T) {
	var m *Metrics
	record(m)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
}

func TestServe(t *testing.T) {
	t.Run("bad address", func(t *testing.T) {
		err := Serve(context.Background(), "127.0.0.1:notaport", New())
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
			t.Errorf("err = %v, want a listen error naming the address", err)
		}
	})
	t.Run("stops with its context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, "127.0.0.1:0", New()) }()
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its context was cancelled")
		}
	})
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
