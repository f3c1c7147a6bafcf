package daemon_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/peertest"
	"github.com/xfer-io/xfer/mover"
)

// FuzzServeConn sends arbitrary bytes to a running daemon's read loop over
// its real Unix socket: the daemon must answer or close, never hang past
// the deadline or panic, never send more than a bounded reply for a small
// input, and still serve a well-formed STAT on a fresh connection after
// each input. Seeds: every kind of request, plus malformed frames.
func FuzzServeConn(f *testing.F) {
	sid := hexID([]byte("seed"))
	for _, raw := range [][]byte{
		frame(mover.OpStat, "", 0, 0, nil),
		frame(mover.OpHas, sid, 0, 0, nil),
		frame(mover.OpRead, sid, 0, 4096, nil),
		frame(mover.OpWrite, "", 0, 0, []byte("some data")),
		frame(mover.OpBatch, "", 0, 0, frame(mover.OpStat, "", 0, 0, nil)),
		frame(0xee, "", 0, 0, []byte{1, 2, 3}),
		append(frame(mover.OpStat, "", 0, 0, nil), frame(mover.OpHas, sid, 0, 0, nil)...),
		{0xff, 0xff, 0xff, 0xff},
	} {
		f.Add(raw)
	}
	e := peertest.Daemon(f, daemon.Config{MaxBatch: 1 << 20})
	stat := frame(mover.OpStat, "", 0, 0, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("unix", e.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write(raw)
			c.(*net.UnixConn).CloseWrite()
		}()
		// Every reply is bounded by what was asked: no request of these
		// few bytes can make the daemon send more than 1 MiB back.
		n, err := io.Copy(io.Discard, io.LimitReader(c, 1<<20+1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("daemon neither answered nor closed within 5 s of % x", raw[:min(len(raw), 64)])
		}
		if n > 1<<20 {
			t.Fatalf("daemon sent over 1 MiB for a %d-byte input", len(raw))
		}
		// The daemon survives: a fresh connection is served.
		c2, err := net.Dial("unix", e.Path)
		if err != nil {
			t.Fatalf("daemon gone after % x: %v", raw[:min(len(raw), 64)], err)
		}
		defer c2.Close()
		r, ok := roundTrip(t, c2, stat)
		if !ok || r.Status != mover.StatusOK || bytes.Contains(r.Data, []byte("panic")) {
			t.Fatalf("STAT after % x: %v %+v", raw[:min(len(raw), 64)], ok, r)
		}
	})
}
