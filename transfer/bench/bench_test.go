package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/xfer-io/xfer/backends/tcp" // the transport the tests use

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/session/sessiontest"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
)

// benchServer runs a server over a fresh tree (read-only if asked) and
// returns a session to it with the given streams, and the tree's path.
func benchServer(t *testing.T, streams int, readOnly bool) (*session.Session, string) {
	t.Helper()
	root, dir := fsroottest.Temp(t)
	srv := session.NewServer(session.ServerConfig{IdleTimeout: 5 * time.Second, Services: func(s *session.Session, _ session.Grant) error {
		Serve(s, testScratch{root: root, readOnly: readOnly})
		return nil
	}})
	s := sessiontest.Dial(t, srv, session.DialOptions{Proto: "tcp", Streams: streams, ConnectTimeout: 5 * time.Second})
	return s, dir
}

// testScratch makes the scratch files of mode disk in a tree, as a served
// tree does: unnamed, and refused when the tree is read-only.
type testScratch struct {
	root     *fsroot.Root
	readOnly bool
}

func (ts testScratch) ScratchFile(dir string) (*os.File, error) {
	if ts.readOnly {
		return nil, fmt.Errorf("bench --mode disk in %s: %w", dir, wire.ErrReadOnly)
	}
	return ts.root.OpenFile(dir, unix.O_TMPFILE|os.O_RDWR, 0o600)
}

func TestBenchModes(t *testing.T) {
	tests := []struct {
		name    string
		opt     Options
		streams int
	}{
		{"mem, 2 streams, bulk and round trips", Options{Mode: ModeMem, Size: 64 << 10, Duration: 150 * time.Millisecond, PingDuration: 100 * time.Millisecond}, 2},
		{"file", Options{Mode: ModeFile, Size: 256 << 10, Duration: 100 * time.Millisecond}, 1},
		{"disk", Options{Mode: ModeDisk, Size: 100_000, Duration: 100 * time.Millisecond}, 3},
		{"one-byte messages", Options{Size: 1, Duration: 50 * time.Millisecond}, 1},
		{"round trips only, 4 KiB", Options{PingSize: 4096, PingDuration: 100 * time.Millisecond}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := benchServer(t, tt.streams, false)
			tt.opt.TempDir = t.TempDir()
			res, err := Run(context.Background(), s, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Proto != "tcp" || res.Streams != tt.streams || len(res.PerStream) != tt.streams {
				t.Fatalf("proto %s, %d streams, %d per-stream rows; want tcp, %d", res.Proto, res.Streams, len(res.PerStream), tt.streams)
			}
			if tt.opt.Duration > 0 {
				if res.Bytes <= 0 || res.Gbits <= 0 || res.MsgRate <= 0 || res.DurationS < tt.opt.Duration.Seconds() {
					t.Errorf("bulk: %+v", res)
				}
				var sum int64
				for _, ps := range res.PerStream {
					if ps.Bytes == 0 || ps.ServerBytes != ps.Bytes {
						t.Errorf("stream %d: sent %d, server received %d", ps.Stream, ps.Bytes, ps.ServerBytes)
					}
					sum += ps.Bytes
				}
				if sum != res.Bytes || res.Bytes != res.Messages*int64(max(tt.opt.Size, 1)) {
					t.Errorf("total %d bytes, %d messages; streams sum to %d", res.Bytes, res.Messages, sum)
				}
			} else if res.Bytes != 0 {
				t.Errorf("bulk phase ran: %d bytes", res.Bytes)
			}
			if (tt.opt.PingDuration > 0) != (res.Ping != nil) {
				t.Fatalf("ping phase: %+v", res.Ping)
			}
			if p := res.Ping; p != nil {
				if p.RoundTrips == 0 || p.P50us <= 0 || p.P99us < p.P50us || p.MinUs > p.P50us || p.MaxUs < p.P99us {
					t.Errorf("round trips: %+v", p)
				}
				for _, ps := range res.PerStream {
					if ps.RoundTrips == 0 {
						t.Errorf("stream %d timed no round trip", ps.Stream)
					}
				}
			}
			// Nothing is left behind, in the tree or the session.
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("the server's tree holds %v", ents)
			}
			if ents, _ := os.ReadDir(tt.opt.TempDir); len(ents) != 0 {
				t.Errorf("the client's temp dir holds %v", ents)
			}
			// The session still works: a second run.
			if _, err := Run(context.Background(), s, Options{Size: 1024, Duration: 20 * time.Millisecond}); err != nil {
				t.Errorf("second run: %v", err)
			}
		})
	}
}

func TestBenchRefusals(t *testing.T) {
	tests := []struct {
		name     string
		readOnly bool
		opt      Options
		code     int
		want     string
	}{
		{"disk on a read-only server", true, Options{Mode: ModeDisk, Duration: time.Millisecond}, exitcode.Usage, "read-only"},
		{"disk in a missing directory", false, Options{Mode: ModeDisk, Path: "nope", Duration: time.Millisecond}, exitcode.Usage, "nope"},
		{"disk outside the tree", false, Options{Mode: ModeDisk, Path: "../..", Duration: time.Millisecond}, exitcode.Usage, ".."},
		{"unknown mode", false, Options{Mode: "tape", Duration: time.Millisecond}, exitcode.Usage, "tape"},
		{"message too large", false, Options{Size: MaxSize + 1, Duration: time.Millisecond}, exitcode.Usage, "--size"},
		{"ping too large", false, Options{PingSize: MaxPing + 1, PingDuration: time.Millisecond}, exitcode.Usage, "--ping-size"},
		{"nothing to do", false, Options{}, exitcode.Usage, "nothing to measure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := benchServer(t, 1, tt.readOnly)
			tt.opt.TempDir = t.TempDir()
			_, err := Run(context.Background(), s, tt.opt)
			if err == nil || exitcode.Code(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v (exit %d), want exit %d mentioning %q", err, exitcode.Code(err), tt.code, tt.want)
			}
			// A refused run leaves the session usable.
			if _, err := Run(context.Background(), s, Options{Size: 1024, Duration: 10 * time.Millisecond}); err != nil {
				t.Errorf("run after the refusal: %v", err)
			}
		})
	}
}

// TestBenchProtocolErrors: messages for a run that is not open, or pongs
// nobody asked for, end the session like any other protocol violation.
func TestBenchProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		hdr  []byte
	}{
		{"data for no run", benchHeader(wire.MsgBenchData, 7, 0)},
		{"ping for no run", benchHeader(wire.MsgBenchPing, 7, 1)},
		{"bad header", []byte{wire.MsgBenchPing, 0x80}},
		{"unknown bench kind", []byte{wire.MsgBenchLast}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := benchServer(t, 1, false)
			if err := s.Lanes()[0].Send(tt.hdr, []byte("x")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the server kept the session")
			}
		})
	}
	t.Run("unsolicited pong", func(t *testing.T) {
		s, _ := benchServer(t, 1, false)
		// The client's own lane reader must refuse a pong it did not ask for.
		if err := benchOf(s).handle(s.Lanes()[0], benchHeader(wire.MsgBenchPong, 1, 1), 0, new([]byte)); err == nil {
			t.Fatal("accepted an unsolicited pong")
		}
	})
}

func TestBenchStopChecksRun(t *testing.T) {
	s, _ := benchServer(t, 1, false)
	ctx := context.Background()
	start, err := (&client{s}).benchCall(ctx, wire.OpBenchStart, &wire.BenchArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&client{s}).benchCall(ctx, wire.OpBenchStart, &wire.BenchArgs{}); err == nil || !strings.Contains(err.Error(), "still open") {
		t.Errorf("second start while one is open: %v", err)
	}
	if _, err := (&client{s}).benchCall(ctx, wire.OpBenchStop, &wire.BenchArgs{Run: start.Run + 1}); err == nil {
		t.Error("stopped a run that does not exist")
	}
	if _, err := (&client{s}).benchCall(ctx, wire.OpBenchStop, &wire.BenchArgs{Run: start.Run, Sent: []int64{1, 2}}); err == nil {
		t.Error("accepted counts for more streams than the session has")
	}
	// Claimed bytes that never come: the stop waits, and gives up when
	// the caller does.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := (&client{s}).benchCall(cctx, wire.OpBenchStop, &wire.BenchArgs{Run: start.Run, Sent: []int64{1}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stop waiting for bytes never sent: %v", err)
	}
	if _, err := (&client{s}).benchCall(ctx, wire.OpBenchStop, &wire.BenchArgs{Run: start.Run}); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		d    []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(5), 99, 5 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.d, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.d, tt.p, got, tt.want)
		}
	}
}
