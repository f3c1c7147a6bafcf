package tcpzc

import (
	"bytes"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Registered(t, Name), backendtest.Options{})
}

// TestConformanceAlwaysZeroCopy runs the suite with MSG_ZEROCOPY kept on
// even though loopback makes the kernel copy, so the completion handling is
// exercised by every large Send.
func TestConformanceAlwaysZeroCopy(t *testing.T) {
	backendtest.Run(t, &transport{zcMin: ZeroCopyThreshold, alwaysZC: true}, backendtest.Options{})
}

func TestProbe(t *testing.T) {
	backendtest.MustProbe(t, backendtest.Registered(t, Name), "this kernel should support SO_ZEROCOPY")
}

// TestZeroCopyCompletions checks the MSG_ZEROCOPY bookkeeping on real
// sockets: every id the kernel handed out is completed when Send returns,
// and the adaptive stream gives zero copy up once loopback reports copies.
func TestZeroCopyCompletions(t *testing.T) {
	tests := []struct {
		name     string
		alwaysZC bool
		wantZC   bool // zero copy still on after the sends
	}{
		{"Adaptive", false, false},
		{"Always", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &transport{zcMin: ZeroCopyThreshold, alwaysZC: tc.alwaysZC}
			sess := backendtest.Open(t, tr, 1, backends.Params{})
			tx := sess.Dialer[0].(*stream)
			payload := backendtest.Random(4<<20, 1)
			done := make(chan error, 1)
			go func() {
				hbuf := make([]byte, backends.MaxHeader)
				buf := make([]byte, len(payload))
				for i := 0; i < 3; i++ {
					_, n, err := sess.Acceptor[0].Recv(hbuf)
					if err == nil {
						err = sess.Acceptor[0].RecvPayload(buf[:n])
					}
					if err != nil {
						done <- err
						return
					}
					if !bytes.Equal(buf[:n], payload) {
						t.Errorf("message %d differs", i)
					}
				}
				done <- nil
			}()
			for i := 0; i < 3; i++ {
				if err := tx.Send([]byte("h"), payload); err != nil {
					t.Fatal(err)
				}
				if tx.tx.issued != tx.tx.completed {
					t.Fatalf("Send returned with %d zero-copy sends issued, %d completed", tx.tx.issued, tx.tx.completed)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if tx.tx.issued == 0 {
				t.Fatal("no zero-copy send was issued")
			}
			if !tx.tx.copied {
				t.Log("kernel did not report copying (not loopback?)")
			}
			if tx.tx.zc != tc.wantZC {
				t.Errorf("zero copy on after sends = %v, want %v", tx.tx.zc, tc.wantZC)
			}
		})
	}
}

// TestRecvSurvivesZerocopyCompletions keeps a Recv blocked on a stream
// whose other half sends large zero-copy messages to a slow reader, the
// situation in which the socket reports EPOLLERR alone; the Recv must keep
// waiting and then get its message.
func TestRecvSurvivesZerocopyCompletions(t *testing.T) {
	tr := &transport{zcMin: ZeroCopyThreshold, alwaysZC: true}
	sess := backendtest.Open(t, tr, 1, backends.Params{})
	a, b := sess.Dialer[0], sess.Acceptor[0]
	recvd := make(chan error, 1)
	go func() {
		h, _, err := a.Recv(make([]byte, backends.MaxHeader))
		if err == nil && string(h) != "reply" {
			t.Errorf("got header %q, want reply", h)
		}
		recvd <- err
	}()
	payload := backendtest.Random(8<<20, 2)
	const messages = 8
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < messages; i++ {
			if err := a.Send([]byte("h"), payload); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	buf := make([]byte, 64<<10)
	hbuf := make([]byte, backends.MaxHeader)
	for i := 0; i < messages; i++ {
		_, n, err := b.Recv(hbuf)
		if err != nil {
			t.Fatal(err)
		}
		for n > 0 {
			k := min(n, len(buf))
			if err := b.RecvPayload(buf[:k]); err != nil {
				t.Fatal(err)
			}
			n -= k
			time.Sleep(50 * time.Microsecond) // a slow reader keeps the sender's buffer full
		}
		select {
		case err := <-recvd:
			t.Fatalf("Recv returned while nothing was sent to it: %v", err)
		default:
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := b.Send([]byte("reply"), nil); err != nil {
		t.Fatal(err)
	}
	if err := backendtest.Wait(t, recvd, 10*time.Second, "Recv of the reply"); err != nil {
		t.Fatalf("Recv: %v", err)
	}
}

func BenchmarkSend(b *testing.B) { backendtest.BenchSends(b, backendtest.Registered(b, Name)) }

func BenchmarkSendAlwaysZeroCopy(b *testing.B) {
	backendtest.Bench(b, &transport{zcMin: ZeroCopyThreshold, alwaysZC: true}, 1<<20, 1)
}

func BenchmarkSendFile(b *testing.B) { backendtest.BenchSendFiles(b, backendtest.Registered(b, Name)) }
