package backendtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
)

// The tests of this file exercise what coalescing transports (uring)
// change: Send returning before its bytes reach the socket, and receives
// kept waiting on an idle stream.

// testSmallAmongLarge streams many small messages back to back, with
// large ones (Send and SendFile) among them, and checks that every
// message arrives whole and in order.
func testSmallAmongLarge(t *testing.T, tr backends.Transport, opts Options) {
	const (
		count = 20000
		large = 3<<20 + 17
	)
	s := Open(t, tr, 1, opts.Params)
	big := Random(large, 21)
	f := TempFile(t, big, 0, 0)
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := make([]int, count)
	for i := range sizes {
		switch {
		case i%1000 == 500:
			sizes[i] = -large // SendFile
		case i%1000 == 999:
			sizes[i] = large
		case i%50 == 7:
			sizes[i] = 1 + rng.IntN(8<<10)
		default:
			sizes[i] = rng.IntN(200)
		}
	}
	pool := Random(8<<10+64, 22)
	payloadOf := func(i int) []byte {
		switch n := sizes[i]; {
		case n < 0, n == large:
			return big
		default:
			return pool[i%64 : i%64+n]
		}
	}
	recvd := async(func() error {
		for i := range count {
			hdr, payload, err := recvMessage(s.Acceptor[0], 0)
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			if len(hdr) != 8 || binary.LittleEndian.Uint64(hdr) != uint64(i) {
				return fmt.Errorf("message %d: header %x, want its sequence number", i, hdr)
			}
			if want := payloadOf(i); !bytes.Equal(payload, want) {
				return fmt.Errorf("message %d: %d payload bytes differ from the %d sent (first at %d)", i, len(payload), len(want), firstDiff(payload, want))
			}
		}
		return nil
	})
	err := within(t, opts.timeout(), "sending", func() error {
		hdr := make([]byte, 8)
		for i := range count {
			binary.LittleEndian.PutUint64(hdr, uint64(i))
			var err error
			if sizes[i] < 0 {
				err = s.Dialer[0].SendFile(hdr, f, 0, large)
			} else {
				err = s.Dialer[0].Send(hdr, payloadOf(i))
			}
			if err != nil {
				return fmt.Errorf("send %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Wait(t, recvd, opts.timeout(), "receiving"); err != nil {
		t.Fatal(err)
	}
}

// testPeerClosesMidBatch streams small messages until the peer, having
// taken some, closes: Send must then fail (on a later call, for a
// transport that coalesces) instead of accepting messages forever.
func testPeerClosesMidBatch(t *testing.T, tr backends.Transport, opts Options) {
	s := Open(t, tr, 1, opts.Params)
	payload := Random(64, 23)
	sendErr := async(func() error {
		// Bounded: 64 MiB of messages is far more than any socket buffer
		// and staging memory hold.
		for i := 0; i < 1<<20; i++ {
			if err := s.Dialer[0].Send([]byte("m"), payload); err != nil {
				return err
			}
		}
		return nil
	})
	err := within(t, opts.timeout(), "peer receive", func() error {
		for range 1000 {
			if _, _, err := recvMessage(s.Acceptor[0], 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("peer: %v", err)
	}
	s.AcceptorRV.Kill()
	for _, p := range s.Acceptor {
		p.Close()
	}
	if err := Wait(t, sendErr, 2*quick, "Send after the peer closed"); err == nil {
		t.Errorf("Send accepted a million messages after the peer closed")
	}
}

// testCancelWhileReceiving checks that cancelling the context that owns a
// stream (which closes it, as a session does) ends a receive waiting on an
// idle stream, and that the stream's last messages were delivered first.
func testCancelWhileReceiving(t *testing.T, tr backends.Transport, opts Options) {
	s := Open(t, tr, 1, opts.Params)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Dialer[0].Close() })
	defer stop()
	// A few messages sent back to back just before the other side closes
	// must all arrive.
	for i := range 10 {
		if err := s.Acceptor[0].Send([]byte{byte(i)}, []byte("last words")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		hdr, _, err := recvMessage(s.Dialer[0], 0)
		if err != nil || len(hdr) != 1 || hdr[0] != byte(i) {
			t.Fatalf("message %d: header %x, %v", i, hdr, err)
		}
	}
	recvErr := async(func() error {
		_, _, err := s.Dialer[0].Recv(make([]byte, backends.MaxHeader))
		return err
	})
	select {
	case err := <-recvErr:
		t.Fatalf("Recv on an idle stream returned before the cancel: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if err := Wait(t, recvErr, quick, "Recv after the cancel"); err == nil {
		t.Errorf("Recv returned nil after the cancel closed the stream")
	}
}
