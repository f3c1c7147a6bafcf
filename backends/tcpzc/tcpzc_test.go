package tcpzc

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/backendtest"
)

func registered(t testing.TB) backends.Transport {
	t.Helper()
	tr, ok := backends.Lookup(Name)
	if !ok {
		t.Fatalf("%s is not registered", Name)
	}
	return tr
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, registered(t), backendtest.Options{})
}

// TestConformanceAlwaysZeroCopy runs the suite with MSG_ZEROCOPY kept on
// even though loopback makes the kernel copy, so the completion handling is
// exercised by every large Send.
func TestConformanceAlwaysZeroCopy(t *testing.T) {
	backendtest.Run(t, &transport{zcMin: ZeroCopyThreshold, alwaysZC: true}, backendtest.Options{})
}

func TestProbe(t *testing.T) {
	if err := registered(t).Probe(); err != nil {
		t.Fatalf("Probe: %v (this kernel should support SO_ZEROCOPY)", err)
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		hdr, payload uint32
		wantErr      string
	}{
		{0, 0, ""},
		{backends.MaxHeader, MaxPayload, ""},
		{backends.MaxHeader + 1, 0, "header"},
		{0, MaxPayload + 1, "payload"},
		{^uint32(0), ^uint32(0), "header"},
	}
	for _, tc := range tests {
		var b [prefixLen]byte
		binary.LittleEndian.PutUint32(b[:], tc.hdr)
		binary.LittleEndian.PutUint32(b[4:], tc.payload)
		h, p, err := parsePrefix(b[:])
		if tc.wantErr == "" {
			if err != nil || h != int(tc.hdr) || p != int(tc.payload) {
				t.Errorf("parsePrefix(%d, %d) = %d, %d, %v", tc.hdr, tc.payload, h, p, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parsePrefix(%d, %d) error %v, want one about the %s", tc.hdr, tc.payload, err, tc.wantErr)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rand.NewChaCha8(key).Read(b)
	return b
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
			payload := randomBytes(4<<20, 1)
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
	payload := randomBytes(8<<20, 2)
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
	select {
	case err := <-recvd:
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recv did not get the reply")
	}
}

func TestRecvPayloadToFile(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		first   int // bytes taken with RecvPayload before the splice
		off     int64
		appendf bool // O_APPEND: splice refuses, the copy fallback runs
	}{
		{"Empty", 0, 0, 0, false},
		{"Small", 100, 0, 7, false},
		{"Buffered", 100 << 10, 10, 0, false},
		{"Large", 3<<20 + 7, 0, 4096, false},
		{"LargeAfterRecvPayload", 3<<20 + 7, 1 << 20, 1, false},
		{"AppendFallback", 3<<20 + 7, 0, 0, true},
	}
	tr := registered(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess := backendtest.Open(t, tr, 1, backends.Params{})
			payload := randomBytes(tc.size, uint64(tc.size))
			go func() {
				sess.Dialer[0].Send([]byte("h"), payload)
				sess.Dialer[0].Send([]byte("next"), []byte("tail"))
			}()
			rx := sess.Acceptor[0]
			_, n, err := rx.Recv(make([]byte, backends.MaxHeader))
			if err != nil || n != tc.size {
				t.Fatalf("Recv: %d bytes, %v", n, err)
			}
			head := make([]byte, tc.first)
			if err := rx.RecvPayload(head); err != nil {
				t.Fatal(err)
			}
			flags := os.O_RDWR | os.O_CREATE
			if tc.appendf {
				flags |= os.O_APPEND
			}
			path := filepath.Join(t.TempDir(), "out")
			f, err := os.OpenFile(path, flags, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fr, ok := rx.(FileReceiver)
			if !ok {
				t.Fatal("tcp-zc stream does not implement FileReceiver")
			}
			if err := fr.RecvPayloadToFile(f, tc.off, tc.size-tc.first); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := payload[tc.first:]
			if !tc.appendf && len(want) > 0 {
				want = append(make([]byte, tc.off), want...)
			}
			if !bytes.Equal(got, want) || !bytes.Equal(head, payload[:tc.first]) {
				t.Fatalf("file holds %d bytes, want %d; contents differ", len(got), len(want))
			}
			// The stream is still in step.
			h, n, err := rx.Recv(make([]byte, backends.MaxHeader))
			if err != nil || string(h) != "next" || n != 4 {
				t.Fatalf("next message: %q, %d, %v", h, n, err)
			}
		})
	}
}

func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name          string
		size, streams int
	}{
		{"1MiB", 1 << 20, 1},
		{"1MiB/4streams", 1 << 20, 4},
		{"4KiB", 4 << 10, 1},
	} {
		b.Run(bc.name, func(b *testing.B) { backendtest.Bench(b, registered(b), bc.size, bc.streams) })
	}
}

func BenchmarkSendAlwaysZeroCopy(b *testing.B) {
	backendtest.Bench(b, &transport{zcMin: ZeroCopyThreshold, alwaysZC: true}, 1<<20, 1)
}

func BenchmarkSendFile(b *testing.B) {
	for _, bc := range []struct {
		name          string
		size, streams int
	}{
		{"1MiB", 1 << 20, 1},
		{"4KiB", 4 << 10, 1},
	} {
		b.Run(bc.name, func(b *testing.B) { backendtest.BenchSendFile(b, registered(b), bc.size, bc.streams) })
	}
}
