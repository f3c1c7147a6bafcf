package uring

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/backendtest"
)

func TestProbe(t *testing.T) {
	backendtest.MustProbe(t, backendtest.Registered(t, Name), "this machine has io_uring with SEND_ZC")
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Registered(t, Name), backendtest.Options{})
}

// TestConformanceAlwaysZeroCopy keeps SEND_ZC on even though loopback makes
// the kernel copy, so the notification handling runs on every large send.
func TestConformanceAlwaysZeroCopy(t *testing.T) {
	backendtest.Run(t, &transport{zcMin: ZeroCopyThreshold, alwaysZC: true}, backendtest.Options{})
}

// TestConformanceUnregisteredBuffers runs the path taken when the kernel
// refuses to register the staging buffers (RLIMIT_MEMLOCK), with a small
// ring.
func TestConformanceUnregisteredBuffers(t *testing.T) {
	backendtest.Run(t, &transport{zcMin: ZeroCopyThreshold, alwaysZC: true, noFixed: true},
		backendtest.Options{Params: backends.Params{UringEntries: 16}})
}

// TestRingSetup checks ring sizes (Params.UringEntries, clamped, rounded
// up to a power of two by the kernel) and that the staging buffers and the
// socket are registered.
func TestRingSetup(t *testing.T) {
	tests := []struct {
		entries, want int
		fixed         bool
	}{
		{0, DefaultEntries, true},
		{1, minEntries, true},
		{100, 128, true},
		{1 << 20, maxEntries, true},
		{64, 64, false},
	}
	for _, tc := range tests {
		tr := &transport{zcMin: ZeroCopyThreshold, noFixed: !tc.fixed}
		sess := backendtest.Open(t, tr, 1, backends.Params{UringEntries: tc.entries})
		s := sess.Dialer[0].(*stream)
		for _, rg := range []*ring{s.tx.ring, s.rx.ring} {
			if got := int(rg.r.SQSpaceLeft()); got != tc.want {
				t.Errorf("UringEntries %d: ring of %d entries, want %d", tc.entries, got, tc.want)
			}
			if rg.fixed != tc.fixed {
				t.Errorf("UringEntries %d: fixed buffers %v (%v), want %v", tc.entries, rg.fixed, rg.fixedErr, tc.fixed)
			}
			if rg.files[0] < 0 {
				t.Errorf("socket not in the file table")
			}
		}
	}
}

// TestZeroCopyNotifications checks the SEND_ZC bookkeeping on real rings:
// every notification is in when Send and SendFile return, and the adaptive
// stream turns zero copy off once loopback reports copies.
func TestZeroCopyNotifications(t *testing.T) {
	tests := []struct {
		name     string
		alwaysZC bool
		wantZC   bool
	}{
		{"Adaptive", false, false},
		{"Always", true, true},
	}
	payload := backendtest.Random(3<<20+5, 7)
	f := backendtest.TempFile(t, payload, 0, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &transport{zcMin: ZeroCopyThreshold, alwaysZC: tc.alwaysZC}
			sess := backendtest.Open(t, tr, 1, backends.Params{})
			tx := sess.Dialer[0].(*stream)
			done := make(chan error, 1)
			go func() {
				hbuf := make([]byte, backends.MaxHeader)
				for i := 0; i < 4; i++ {
					_, n, err := sess.Acceptor[0].Recv(hbuf)
					buf := make([]byte, n)
					if err == nil {
						err = sess.Acceptor[0].RecvPayload(buf)
					}
					if err == nil && !bytes.Equal(buf, payload) {
						err = fmt.Errorf("message %d differs", i)
					}
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < 2; i++ {
				if err := tx.Send([]byte("h"), payload); err != nil {
					t.Fatal(err)
				}
				if err := tx.SendFile([]byte("h"), f, 0, len(payload)); err != nil {
					t.Fatal(err)
				}
				if tx.tx.notifs != 0 || tx.tx.inflight != 0 {
					t.Fatalf("returned with %d requests and %d notifications outstanding", tx.tx.inflight, tx.tx.notifs)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !tx.tx.copied {
				t.Log("kernel did not report copying (not loopback?)")
			}
			if got := !tx.tx.noZC; got != tc.wantZC {
				t.Errorf("zero copy on after sends = %v, want %v", got, tc.wantZC)
			}
		})
	}
}

func BenchmarkSend(b *testing.B) { backendtest.BenchSends(b, backendtest.Registered(b, Name)) }

func BenchmarkSendFile(b *testing.B) { backendtest.BenchSendFiles(b, backendtest.Registered(b, Name)) }

func BenchmarkPingPong64(b *testing.B) {
	backendtest.BenchPingPong(b, backendtest.Registered(b, Name), 64)
}

// TestSmallSendsCoalesce checks that messages sent back to back share
// system calls (the flusher's batches), that an isolated message goes out
// at once, and that Close delivers what Send accepted.
func TestSmallSendsCoalesce(t *testing.T) {
	const count = 50000
	sess := backendtest.Open(t, backendtest.Registered(t, Name), 1, backends.Params{})
	tx := sess.Dialer[0].(*stream)
	got := make(chan error, 1)
	go func() {
		hbuf, buf := make([]byte, backends.MaxHeader), make([]byte, 64)
		for i := 0; i < count+1; i++ {
			_, n, err := sess.Acceptor[0].Recv(hbuf)
			if err == nil {
				err = sess.Acceptor[0].RecvPayload(buf[:n])
			}
			if err != nil {
				got <- fmt.Errorf("message %d: %w", i, err)
				return
			}
		}
		got <- nil
	}()
	payload := backendtest.Random(64, 1)
	for i := 0; i < count; i++ {
		if err := tx.Send([]byte("m"), payload); err != nil {
			t.Fatal(err)
		}
	}
	tx.tx.mu.Lock()
	batches, msgs := tx.tx.b.batches, tx.tx.b.msgs
	tx.tx.mu.Unlock()
	t.Logf("%d messages in %d sends", msgs, batches)
	if batches*2 > msgs {
		t.Errorf("%d messages took %d sends: want at least two messages per send on average", msgs, batches)
	}
	time.Sleep(10 * time.Millisecond) // the next message is isolated
	if err := tx.Send([]byte("m"), payload); err != nil {
		t.Fatal(err)
	}
	tx.tx.mu.Lock()
	busy, n := tx.tx.b.busy, tx.tx.b.n
	tx.tx.mu.Unlock()
	if busy || n != 0 {
		t.Errorf("an isolated message was left to the flusher (busy %v, %d bytes pending)", busy, n)
	}
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// TestReplySentAtOnce checks that a Send which follows the previous one
// closely goes to the flusher, unless a receive of the idle stream got a
// message since (a reply: someone waits for it), which goes out at once.
func TestReplySentAtOnce(t *testing.T) {
	tests := []struct {
		name        string
		receive     bool // a message arrives on the idle stream first
		wantHandoff int64
	}{
		{"Streaming", false, 1},
		{"Reply", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess := backendtest.Open(t, backendtest.Registered(t, Name), 1, backends.Params{})
			a := sess.Acceptor[0].(*stream)
			payload := backendtest.Random(64, 5)
			if tc.receive {
				go func() {
					time.Sleep(5 * time.Millisecond) // the acceptor's receive waits
					sess.Dialer[0].Send([]byte("q"), payload)
				}()
				if _, err := recvMessage(a); err != nil {
					t.Fatal(err)
				}
			}
			a.tx.mu.Lock()
			// As if the previous Send had just returned, however long
			// this goroutine is descheduled before the Send below (a gap
			// of 5 µs decides, and a loaded machine takes longer).
			a.tx.b.last = time.Now().Add(time.Minute)
			before := a.tx.b.handoff
			a.tx.mu.Unlock()
			if err := a.Send([]byte("r"), payload); err != nil {
				t.Fatal(err)
			}
			a.tx.mu.Lock()
			got := a.tx.b.handoff - before
			a.tx.mu.Unlock()
			if got != tc.wantHandoff {
				t.Errorf("%d batches handed to the flusher, want %d", got, tc.wantHandoff)
			}
			if m, err := recvMessage(sess.Dialer[0]); err != nil || !bytes.Equal(m, payload) {
				t.Fatalf("reply: %d bytes, %v", len(m), err)
			}
		})
	}
}
