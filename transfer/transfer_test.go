package transfer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/session/sessiontest"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/tcp"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/progress"
)

// corrupting is a transport that flips one byte in the payload of the
// first `bad` chunk messages it sends (or every one, if bad < 0): the
// receiver must catch it with BLAKE3 and the sender must send again.
type corrupting struct {
	name string
	bad  int64
	sent *atomic.Int64
}

func (c corrupting) Name() string { return c.name }
func (c corrupting) Probe() error { return nil }

// AutoOK keeps the test transports out of `--proto auto`: a run that does
// not ask for one by name must never get its chunks damaged (auto chooses
// by measuring, and a corrupting transport can measure fastest).
func (c corrupting) AutoOK() error { return errors.New("a test transport, used only when named") }
func (c corrupting) Open(ctx context.Context, rv backends.Rendezvous, p backends.Params) ([]backends.Stream, error) {
	ss, err := tcp.Transport{}.Open(ctx, rv, p)
	for i, s := range ss {
		ss[i] = &corruptStream{Stream: s, t: c}
	}
	return ss, err
}

type corruptStream struct {
	backends.Stream
	t corrupting
}

// SendFile reads the range and sends it through Send, so that file-backed
// chunks get damaged too.
func (s *corruptStream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	return s.Send(hdr, b)
}

func (s *corruptStream) Send(hdr, payload []byte) error {
	if len(hdr) > 0 && hdr[0] == wire.MsgChunk && len(payload) > 0 {
		if n := s.t.sent.Add(1); s.t.bad < 0 || n <= s.t.bad {
			p := append([]byte(nil), payload...)
			p[len(p)/2] ^= 0x40
			return s.Stream.Send(hdr, p)
		}
	}
	return s.Stream.Send(hdr, payload)
}

var (
	flakySent  atomic.Int64
	brokenSent atomic.Int64
)

func init() {
	backends.Register(corrupting{name: "test-flaky", bad: 2, sent: &flakySent})
	backends.Register(corrupting{name: "test-broken", bad: -1, sent: &brokenSent})
}

type events struct {
	mu  sync.Mutex
	all []progress.Event
}

func (e *events) Emit(ev progress.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) find(kind, substr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Event == kind && strings.Contains(ev.Msg+ev.Error, substr) {
			return true
		}
	}
	return false
}

// retried reports whether a notice marked a chunk sent again.
func (e *events) retried() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Event == progress.KindNotice && ev.Retry {
			return true
		}
	}
	return false
}

func startTestServer(t *testing.T) (string, string) {
	t.Helper()
	root, dir := fsroottest.Temp(t)
	return sessiontest.Serve(t, NewServer(ServerConfig{Root: root, NoFsync: true})), dir
}

func writeFile(t *testing.T, p string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/1000)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorruptChunkIsResent: a chunk damaged in flight fails BLAKE3 at the
// receiver, is sent again, and the file lands intact.
func TestCorruptChunkIsResent(t *testing.T) {
	flakySent.Store(0) // the first two chunks of this run are damaged, also under -count=N
	addr, dstRoot := startTestServer(t)
	src := t.TempDir()
	want := writeFile(t, filepath.Join(src, "f.bin"), 3<<20+5)
	ev := &events{}
	sum, err := Run(context.Background(), Endpoint{Path: src}, Endpoint{Addr: addr, Path: "d"},
		wire.Options{Proto: "test-flaky", ChunkSize: 256 << 10, NoFsync: true}, session.DialOptions{}, ev)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Errors != 0 || sum.FilesTransferred != 1 || sum.Proto != "test-flaky" {
		t.Errorf("summary %+v", sum)
	}
	if !ev.find(progress.KindNotice, "sending it again") {
		t.Error("no notice of a resent chunk")
	}
	if !ev.retried() {
		t.Error("the notice of a resent chunk is not marked retry")
	}
	got, err := os.ReadFile(filepath.Join(dstRoot, "d/f.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("destination differs after resend (%v)", err)
	}
}

// TestCorruptChunkGivesUp: a chunk that never arrives intact makes the
// file fail after the retry budget, with nothing left at the destination,
// while the rest of the run continues.
func TestCorruptChunkGivesUp(t *testing.T) {
	addr, dstRoot := startTestServer(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big.bin"), 2<<20)
	writeFile(t, filepath.Join(src, "small.txt"), 100)
	ev := &events{}
	sum, err := Run(context.Background(), Endpoint{Path: src}, Endpoint{Addr: addr, Path: "d"},
		wire.Options{Proto: "test-broken", ChunkSize: 1 << 20, NoFsync: true}, session.DialOptions{}, ev)
	var pe *PartialError
	if !errors.As(err, &pe) || sum.Errors != 1 {
		t.Fatalf("want one failed file, got %v, %+v", err, sum)
	}
	if !ev.find(progress.KindError, "BLAKE3") {
		t.Error("the failure does not mention BLAKE3 verification")
	}
	entries, _ := os.ReadDir(filepath.Join(dstRoot, "d"))
	if len(entries) != 1 || entries[0].Name() != "small.txt" {
		t.Errorf("destination holds %v, want only small.txt", entries)
	}
}

// TestForcedTransportMissing: forcing a transport the server does not
// offer is a peer error that names the transport.
func TestForcedTransportMissing(t *testing.T) {
	dir := t.TempDir()
	root, _ := fsroot.Open(dir)
	defer root.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go NewServer(ServerConfig{ServerConfig: session.ServerConfig{Protos: []string{"tcp"}}, Root: root}).Serve(ctx, ln)
	_, err := session.Dial(ctx, ln.Addr().String(), session.DialOptions{Proto: "test-flaky", ConnectTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "test-flaky") || exitcode.Code(err) != exitcode.Peer {
		t.Fatalf("want a peer error naming the transport, got %v", err)
	}
}

func TestFrameLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"empty payload", wire.AppendFrame(nil, wire.FramePing, nil), true},
		{"small", wire.AppendFrame(nil, wire.FrameReq, []byte("{}")), true},
		{"too large", []byte{wire.FrameReq, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f}, false},
		{"reserved bits", []byte{wire.FrameReq, 1, 0, 0, 0, 0, 0, 0}, false},
		{"truncated", wire.AppendFrame(nil, wire.FrameReq, []byte("abcdef"))[:10], false},
	}
	for _, tt := range tests {
		fr := wire.NewFrameReader(bytes.NewReader(tt.in), wire.DefaultMaxFrame)
		_, _, err := fr.Read()
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	d := hashtree.Sum([]byte("x"))
	in := []struct {
		path string
		typ  uint8
		ok   bool
	}{
		{"a/b c/ünï", 1, true},
		{"x\ny", 2, true},
		{"../escape", 1, false},
		{"/abs", 1, false},
		{"a//b", 1, false},
		{"", 1, false},
		{"ok", 9, false},
	}
	for _, tt := range in {
		e := wire.Enc{}
		e.Str(tt.path)
		e.U8(tt.typ)
		e.Svar(5)
		e.Uvar(0o644)
		e.Svar(123)
		e.Str("")
		e.Blob(d[:])
		e.Uvar(1)
		e.Uvar(1)
		e.Str("permission denied")
		e.Uvar(1000)
		e.Uvar(100)
		e.U8(uint8(fsroot.SpecialChar))
		e.Uvar(1<<8 | 3)
		got, err := wire.ReadEntry(&wire.Dec{Buf: e.Buf})
		if (err == nil) != tt.ok {
			t.Errorf("%q: err = %v", tt.path, err)
			continue
		}
		if tt.ok && (got.Path != tt.path || got.Size != 5 || !bytes.Equal(got.Digest, d[:]) || got.Err != "permission denied" ||
			got.Uid != 1000 || got.Gid != 100 || got.Special != fsroot.SpecialChar || got.Rdev != 1<<8|3) {
			t.Errorf("%q: round trip gave %+v", tt.path, got)
		}
	}
}
