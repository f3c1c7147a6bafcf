package uring

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/backendtest"
)

// TestSpliceShort forces short splices in SendFile and checks that the
// receiver never gets wrong bytes: either the whole range, after which the
// stream carries the next message, or a clean error once the sender has
// failed and closed the stream.
//
//   - Unaligned: a range starting 100 bytes into a page spans one page
//     more than the pipe has slots, so every full-pipe SPLICE file -> pipe
//     comes up short and breaks its chain; the next chain drains the pipe
//     and goes on from the offset reached.
//   - Truncated: the file is cut short after SendFile's size check (as a
//     writer truncating it during the send would), so a SPLICE
//     file -> pipe returns less, then nothing: SendFile fails with
//     io.ErrUnexpectedEOF.
func TestSpliceShort(t *testing.T) {
	const n = 3<<20 + 5
	tests := []struct {
		name     string
		pre      int   // file bytes before the range
		truncate int64 // cut the file to this size before sending (0: keep)
		wantErr  bool
	}{
		{name: "Unaligned", pre: 100},
		{name: "Truncated", pre: 0, truncate: 1<<20 + 512<<10 + 7, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := backendtest.Random(n, 11)
			f := backendtest.TempFile(t, payload, tc.pre, 0)
			sess := backendtest.Open(t, backendtest.Registered(t, Name), 1, backends.Params{})
			tx := sess.Dialer[0].(*stream)
			type result struct {
				got []byte
				err error
			}
			recvd := make(chan result, 2)
			go func() {
				for range 2 {
					got, err := recvMessage(sess.Acceptor[0])
					if recvd <- (result{got, err}); err != nil {
						return
					}
				}
			}()
			var err error
			if tc.truncate > 0 {
				if terr := os.Truncate(f.Name(), tc.truncate); terr != nil {
					t.Fatal(terr)
				}
				err = sendFileUnchecked(tx, f, int64(tc.pre), n)
			} else {
				err = tx.SendFile([]byte("h"), f, int64(tc.pre), n)
			}
			tx.tx.mu.Lock()
			rechains := tx.tx.rechains
			tx.tx.mu.Unlock()
			t.Logf("SendFile: %v; %d requests cancelled after short splices", err, rechains)
			if rechains == 0 {
				t.Errorf("no splice came up short: the test did not exercise the recovery")
			}
			if tc.wantErr {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("SendFile of a truncated file: %v, want io.ErrUnexpectedEOF", err)
				}
				if err := tx.Send([]byte("h"), []byte("next")); err == nil {
					t.Errorf("Send after a failed SendFile succeeded: the byte stream is out of step")
				}
				tx.Close()
				r := waitResult(t, recvd)
				if r.err == nil {
					t.Fatalf("receiver got a whole %d-byte message from a file cut to %d bytes", len(r.got), tc.truncate)
				}
				if i := firstDiff(r.got, payload); bytes.ContainsFunc(r.got[i:], func(c rune) bool { return c != 0 }) {
					t.Fatalf("receiver got wrong bytes from offset %d", i)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := waitResult(t, recvd); r.err != nil || !bytes.Equal(r.got, payload) {
				t.Fatalf("received %d bytes (%v), differ from offset %d", len(r.got), r.err, firstDiff(r.got, payload))
			}
			if err := tx.Send([]byte("h"), []byte("next")); err != nil {
				t.Fatal(err)
			}
			if r := waitResult(t, recvd); r.err != nil || string(r.got) != "next" {
				t.Fatalf("message after the SendFile: %q, %v", r.got, r.err)
			}
		})
	}
}

// sendFileUnchecked is SendFile without its check of the range against
// the file's size: the file may be shorter by the time it is spliced.
func sendFileUnchecked(s *stream, f *os.File, off int64, n int) error {
	fc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	if err := s.drainLocked(); err != nil {
		return err
	}
	var serr error
	if cerr := fc.Control(func(ffd uintptr) { serr = s.sendFile([]byte("h"), int(ffd), off, n) }); cerr != nil {
		return cerr
	}
	if serr != nil {
		return s.state.Fail(&s.tx.err, "sendfile "+f.Name(), serr)
	}
	return nil
}

// recvMessage receives one message's payload from s.
func recvMessage(s backends.Stream) ([]byte, error) {
	_, k, err := s.Recv(make([]byte, backends.MaxHeader))
	if err != nil {
		return nil, err
	}
	buf := make([]byte, k)
	return buf, s.RecvPayload(buf)
}

func waitResult[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("receiver did not finish within 20s")
	}
	panic("unreachable")
}

// firstDiff is the index of the first byte where got differs from want
// (len(got) if it is a prefix of want).
func firstDiff(got, want []byte) int {
	for i := range got {
		if i >= len(want) || got[i] != want[i] {
			return i
		}
	}
	return len(got)
}
