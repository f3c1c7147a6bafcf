package session

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/transfer/wire"
)

// capture is a stream that keeps the headers sent on it.
type capture struct {
	fakeStream
	hdrs [][]byte
}

func (c *capture) Send(hdr, payload []byte) error {
	c.hdrs = append(c.hdrs, append([]byte(nil), hdr...))
	return c.fakeStream.Send(hdr, payload)
}

// TestBatchVerdictPieces: thousands of long per-file errors travel in
// pieces that each fit a header, and come back complete and in place.
func TestBatchVerdictPieces(t *testing.T) {
	s := newSession(pipeConn(t), wire.NewFrameReader(strings.NewReader(""), wire.DefaultMaxFrame), slog.New(slog.DiscardHandler), 0)
	defer s.Close()
	out := &capture{}
	sender := newLane(s, 0, out)
	errs := make([]string, 3000)
	for i := range errs {
		if i%3 != 0 {
			errs[i] = fmt.Sprintf("create dir/%s-%d: no space left on device", strings.Repeat("n", i%300), i)
		}
	}
	errs[7] = "write x: " + strings.Repeat("y", 5000) // cut, not fatal
	if err := sender.sendBatchVerdicts(9, errs); err != nil {
		t.Fatal(err)
	}
	if len(out.hdrs) < 2 {
		t.Fatalf("%d pieces", len(out.hdrs))
	}
	var got []string
	recv := newLane(s, 1, &fakeStream{})
	recv.batches[9] = &pendingBatch{count: len(errs), cb: func(e []string, err error) { got = e }}
	for _, h := range out.hdrs {
		if len(h) > 4096 {
			t.Fatalf("a %d-byte piece", len(h))
		}
		if err := recv.handle(h, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(errs) {
		t.Fatalf("%d verdicts for %d files", len(got), len(errs))
	}
	for i := range errs {
		want := errs[i]
		if i == 7 {
			want = wire.VerdictMsg(want)
		}
		if got[i] != want {
			t.Fatalf("verdict %d: %q, want %q", i, got[i], want)
		}
	}
}

// pipeConn is one end of an in-memory connection, closed with the test.
func pipeConn(t *testing.T) net.Conn {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1
}
