package session

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/memtest"
	"github.com/xfer-io/xfer/transfer/wire"
)

func (s *fakeStream) Send(hdr, payload []byte) error {
	if len(hdr) > backends.MaxHeader {
		return fmt.Errorf("%d-byte header", len(hdr))
	}
	s.sent++
	return nil
}
func (s *fakeStream) SendFile(hdr []byte, f *os.File, off int64, n int) error { return nil }
func (s *fakeStream) Recv([]byte) ([]byte, int, error)                        { return nil, 0, io.EOF }
func (s *fakeStream) RecvPayload(p []byte) error {
	if len(p) > len(s.payload) {
		return io.ErrUnexpectedEOF
	}
	copy(p, s.payload)
	s.payload = s.payload[len(p):]
	return nil
}
func (s *fakeStream) Close() error { return nil }

// fakeStream plays one message's payload to a lane and swallows what the
// lane sends back.
type fakeStream struct {
	payload []byte
	sent    int
}

// FuzzDataStream: one data-stream message (header and the payload that
// came with it) handled by a lane of a session that accepts no files,
// with batches and chunks pending so that verdicts are matched. Nothing
// may panic, every answer must fit a header, and the memory allocated
// stays proportional to what arrived (receive buffers come from the
// session's budget and are reused).
func FuzzDataStream(f *testing.F) {
	e := wire.Enc{}
	e.U8(wire.MsgBatch)
	e.Uvar(1)
	e.Uvar(2)
	f.Add(e.Buf, []byte{0, 1, 'a', 0, 0, 0})
	e = wire.Enc{}
	e.U8(wire.MsgBatch)
	e.Uvar(1)
	e.Uvar(1 << 40)
	f.Add(e.Buf, make([]byte, 1000))
	f.Add(wire.ChunkHeader(1, 0, 0, hashtree.Digest{}), []byte("data"))
	e = wire.Enc{}
	e.U8(wire.MsgAck)
	e.Uvar(7)
	e.Uvar(0)
	e.U8(wire.AckFailed)
	e.Str("write x: no space left on device")
	f.Add(e.Buf, []byte(nil))
	e = wire.Enc{}
	e.U8(wire.MsgBatchAck)
	e.Uvar(2)
	e.Uvar(5)
	e.U8(1)
	e.Uvar(2)
	e.Uvar(1)
	e.Str("create a: no space left on device")
	e.Uvar(4)
	e.Str("create b: no space left on device")
	f.Add(e.Buf, []byte(nil))
	e = wire.Enc{}
	e.U8(wire.MsgBatchAck)
	e.Uvar(3)
	e.Uvar(1 << 30)
	e.U8(0)
	e.Uvar(1 << 30)
	f.Add(e.Buf, []byte(nil))
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	s := newSession(c1, wire.NewFrameReader(c1, wire.DefaultMaxFrame), slog.New(slog.DiscardHandler), time.Minute)
	defer s.Close()
	st := &fakeStream{}
	l := newLane(s, 0, st)
	// Warm the pool: receive buffers are reused, not allocated per message.
	for c := minBufClass; c <= wire.MaxBatchPayload; c *= 2 {
		b, err := s.mem.Get(c)
		if err != nil {
			f.Fatal(err)
		}
		s.mem.Put(b)
	}
	f.Fuzz(func(t *testing.T, hdr, payload []byte) {
		if len(hdr) > backends.MaxHeader || len(payload) > wire.MaxBatchPayload {
			return
		}
		l.mu.Lock()
		for id, count := range map[uint64]int{1: 1, 2: 5, 3: wire.MaxBatchFiles} {
			l.batches[id] = &pendingBatch{count: count, cb: func([]string, error) {}}
		}
		l.chunks[[2]uint64{7, 0}] = func(byte, string) {}
		l.mu.Unlock()
		st.payload = payload
		// The pool drops buffers idle for 30 s (a slow fuzzing machine
		// gets there): take this payload's buffer back into it first, so
		// that only what decoding allocates is counted.
		if len(payload) > 0 {
			if b, err := s.mem.Get(len(payload)); err == nil {
				s.mem.Put(b)
			}
		}
		var buf []byte
		n := memtest.Allocated(func() {
			l.handle(hdr, len(payload), &buf)
			if buf != nil {
				s.mem.Put(buf)
			}
		})
		if bound := uint64(32<<10 + 8*(len(hdr)+len(payload))); n > bound {
			t.Fatalf("a %d-byte header and %d-byte payload allocated %d bytes (bound %d)", len(hdr), len(payload), n, bound)
		}
	})
}
