package backendtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
)

// quick bounds the checks that promise an answer "within a few seconds".
const quick = 5 * time.Second

// Random returns n deterministic pseudo-random bytes derived from seed.
func Random(n int, seed uint64) []byte {
	p := make([]byte, n)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], 0x78666572) // "xfer"
	rand.NewChaCha8(key).Read(p)
	return p
}

// TempFile writes pre junk bytes, data, then post junk bytes to a new file
// and returns it opened read-only, so reads past the range are noticed.
func TempFile(t testing.TB, data []byte, pre, post int) *os.File {
	t.Helper()
	junk := Random(max(pre, post), 0xbad)
	path := filepath.Join(t.TempDir(), "payload")
	buf := make([]byte, 0, pre+len(data)+post)
	buf = append(append(append(buf, junk[:pre]...), data...), junk[:post]...)
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatalf("write temp file: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open temp file: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// recvMessage reads one message from s, consuming its payload in chunks of
// at most chunk bytes (0: all at once) into a buffer it returns.
func recvMessage(s backends.Stream, chunk int) (hdr, payload []byte, err error) {
	hbuf := make([]byte, backends.MaxHeader)
	h, n, err := s.Recv(hbuf)
	if err != nil {
		return nil, nil, fmt.Errorf("recv: %w", err)
	}
	hdr = append([]byte(nil), h...)
	payload = make([]byte, n)
	if chunk <= 0 {
		chunk = max(n, 1)
	}
	for off := 0; off < n; off += chunk {
		if err := s.RecvPayload(payload[off:min(off+chunk, n)]); err != nil {
			return hdr, nil, fmt.Errorf("RecvPayload at %d of %d: %w", off, n, err)
		}
	}
	return hdr, payload, nil
}

func testPayloads(t *testing.T, tr backends.Transport, opts Options) {
	cases := []struct {
		size, hdrLen, chunk int
	}{
		{0, 0, 0},
		{0, backends.MaxHeader, 0},
		{1, 17, 0},
		{4095, 100, 0},
		{4096, 1, 1000},
		{1<<20 + 1, 64, 0},
		{1<<20 + 1, 64, 4096 + 3},
		{64 << 20, 200, 1 << 20},
		{64 << 20, backends.MaxHeader, 0},
	}
	for _, mode := range []string{"Send", "SendFile"} {
		for _, c := range cases {
			name := mode + "/" + itoa(c.size) + "/hdr" + itoa(c.hdrLen) + "/chunk" + itoa(c.chunk)
			t.Run(name, func(t *testing.T) {
				s := Open(t, tr, 1, opts.Params)
				hdr := Random(c.hdrLen, uint64(c.hdrLen))
				data := Random(c.size, uint64(c.size)*31+uint64(c.hdrLen))
				trailer := []byte("trailer")

				got := async(func() error {
					h, p, err := recvMessage(s.Acceptor[0], c.chunk)
					if err != nil {
						return err
					}
					if !bytes.Equal(h, hdr) {
						return fmt.Errorf("header: got %d bytes, want %d (equal lengths: %v)", len(h), len(hdr), len(h) == len(hdr))
					}
					if len(p) != len(data) {
						return fmt.Errorf("payload length %d, want %d", len(p), len(data))
					}
					if i := firstDiff(p, data); i >= 0 {
						return fmt.Errorf("payload differs from offset %d on", i)
					}
					h, p, err = recvMessage(s.Acceptor[0], 0)
					if err != nil {
						return fmt.Errorf("trailer: %w", err)
					}
					if !bytes.Equal(h, trailer) || len(p) != 0 {
						return fmt.Errorf("trailer: got header %q and %d payload bytes", h, len(p))
					}
					return nil
				})

				err := within(t, opts.timeout(), mode, func() error {
					if mode == "Send" {
						if err := s.Dialer[0].Send(hdr, data); err != nil {
							return err
						}
					} else {
						off := 4097 + c.size%7
						f := TempFile(t, data, off, 1000)
						if err := s.Dialer[0].SendFile(hdr, f, int64(off), c.size); err != nil {
							return err
						}
					}
					return s.Dialer[0].Send(trailer, nil)
				})
				if err != nil {
					t.Fatalf("%s of %d bytes: %v", mode, c.size, err)
				}
				if err := Wait(t, got, opts.timeout(), "receive"); err != nil {
					t.Fatalf("receive %d bytes: %v", c.size, err)
				}
			})
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i += 4096 {
		j := min(i+4096, len(a), len(b))
		if !bytes.Equal(a[i:j], b[i:j]) {
			for k := i; k < j; k++ {
				if a[k] != b[k] {
					return k
				}
			}
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// testConcurrent runs 8 streams in both directions at once, 100 messages
// each way per stream, mixing sizes across the transports' thresholds and
// mixing Send with SendFile, and checks order and content.
func testConcurrent(t *testing.T, tr backends.Transport, opts Options) {
	const (
		streams  = 8
		messages = 100
	)
	sizes := []int{0, 1, 777, 4096, 65535, 65536, 70001, 256<<10 + 5, 1 << 20}
	// One shared file; SendFile messages take a slice of it.
	file := Random(2<<20, 42)
	f := TempFile(t, file, 0, 0)

	expect := func(dir, s, m int) (hdr, payload []byte, viaFile bool, off int) {
		hdr = make([]byte, 12+m%50)
		binary.LittleEndian.PutUint32(hdr, uint32(dir))
		binary.LittleEndian.PutUint32(hdr[4:], uint32(s))
		binary.LittleEndian.PutUint32(hdr[8:], uint32(m))
		size := sizes[(m+s)%len(sizes)]
		if m%3 == 1 {
			off = (s*7919 + m*104729) % (len(file) - size + 1)
			return hdr, file[off : off+size], true, off
		}
		payload = Random(size, uint64(dir<<40|s<<20|m))
		return hdr, payload, false, 0
	}

	sess := Open(t, tr, streams, opts.Params)
	var wg sync.WaitGroup
	errs := make(chan error, 4*streams)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	for dir, pair := range [][2][]backends.Stream{
		{sess.Dialer, sess.Acceptor},
		{sess.Acceptor, sess.Dialer},
	} {
		for s := 0; s < streams; s++ {
			tx, rx := pair[0][s], pair[1][s]
			run(func() error {
				for m := 0; m < messages; m++ {
					hdr, payload, viaFile, off := expect(dir, s, m)
					var err error
					if viaFile {
						err = tx.SendFile(hdr, f, int64(off), len(payload))
					} else {
						err = tx.Send(hdr, payload)
					}
					if err != nil {
						return fmt.Errorf("dir %d stream %d message %d: send: %w", dir, s, m, err)
					}
				}
				return nil
			})
			run(func() error {
				for m := 0; m < messages; m++ {
					wantHdr, wantPayload, _, _ := expect(dir, s, m)
					hdr, payload, err := recvMessage(rx, 0)
					if err != nil {
						return fmt.Errorf("dir %d stream %d message %d: %w", dir, s, m, err)
					}
					if !bytes.Equal(hdr, wantHdr) {
						return fmt.Errorf("dir %d stream %d message %d: header %x, want %x (out of order or mixed streams)", dir, s, m, hdr, wantHdr)
					}
					if !bytes.Equal(payload, wantPayload) {
						return fmt.Errorf("dir %d stream %d message %d: %d-byte payload differs from offset %d", dir, s, m, len(payload), firstDiff(payload, wantPayload))
					}
				}
				return nil
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(2 * opts.timeout()):
		t.Fatalf("concurrent streams still running after %v", 2*opts.timeout())
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testHeaderTooLarge(t *testing.T, tr backends.Transport, opts Options) {
	s := Open(t, tr, 1, opts.Params)
	big := make([]byte, backends.MaxHeader+1)
	f := TempFile(t, make([]byte, 100), 0, 0)
	if err := within(t, quick, "Send", func() error { return s.Dialer[0].Send(big, []byte("x")) }); err == nil {
		t.Errorf("Send with a %d-byte header succeeded; want an error", len(big))
	}
	if err := within(t, quick, "SendFile", func() error { return s.Dialer[0].SendFile(big, f, 0, 100) }); err == nil {
		t.Errorf("SendFile with a %d-byte header succeeded; want an error", len(big))
	}
	// The refusals must not have put anything on the wire: the next message
	// is the first the peer sees.
	hdr, payload := []byte("after"), []byte("payload")
	if err := within(t, quick, "Send", func() error { return s.Dialer[0].Send(hdr, payload) }); err != nil {
		t.Fatalf("Send after refusals: %v", err)
	}
	var gh, gp []byte
	err := within(t, quick, "Recv", func() error {
		var err error
		gh, gp, err = recvMessage(s.Acceptor[0], 0)
		return err
	})
	if err != nil {
		t.Fatalf("receive after refusals: %v", err)
	}
	if !bytes.Equal(gh, hdr) || !bytes.Equal(gp, payload) {
		t.Fatalf("after refusals got %q/%q, want %q/%q", gh, gp, hdr, payload)
	}
}

// testPeerVanishes checks that a survivor's blocked Send and Recv fail,
// rather than hang, when the peer goes away in the middle of a message.
func testPeerVanishes(t *testing.T, tr backends.Transport, opts Options) {
	const size = 64 << 20
	data := Random(size, 7)
	cases := []struct {
		name    string
		viaFile bool
		crash   bool // sockets reset before the streams are closed
	}{
		{"Send/StreamsClosed", false, false},
		{"Send/SocketsReset", false, true},
		{"SendFile/StreamsClosed", true, false},
		{"SendFile/SocketsReset", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Open(t, tr, 1, opts.Params)
			f := TempFile(t, data, 0, 0)
			survivor, peer := s.Dialer[0], s.Acceptor[0]
			recvErr := async(func() error {
				_, _, err := survivor.Recv(make([]byte, backends.MaxHeader))
				return err
			})
			sendErr := async(func() error {
				for {
					var err error
					if c.viaFile {
						err = survivor.SendFile([]byte("h"), f, 0, size)
					} else {
						err = survivor.Send([]byte("h"), data)
					}
					if err != nil {
						return err
					}
				}
			})
			// The peer takes part of the first message, then vanishes.
			err := within(t, opts.timeout(), "peer receive", func() error {
				_, n, err := peer.Recv(make([]byte, backends.MaxHeader))
				if err != nil {
					return err
				}
				if n != size {
					return fmt.Errorf("payload length %d, want %d", n, size)
				}
				return peer.RecvPayload(make([]byte, 1<<20))
			})
			if err != nil {
				t.Fatalf("peer: %v", err)
			}
			vanish(t, s, c.crash, sendErr, recvErr)
		})
	}
}

// vanish makes the accepting side of s go away (its sockets reset first
// when crash) and checks that the survivor's pending Send and Recv, whose
// results sendErr and recvErr yield, fail within a few seconds.
func vanish(t *testing.T, s *Session, crash bool, sendErr, recvErr <-chan error) {
	t.Helper()
	if crash {
		s.AcceptorRV.Kill()
	}
	for _, p := range s.Acceptor {
		p.Close()
	}
	if err := Wait(t, sendErr, quick, "survivor Send after the peer vanished"); err == nil {
		t.Errorf("survivor Send returned nil after the peer vanished")
	}
	if err := Wait(t, recvErr, quick, "survivor Recv after the peer vanished"); err == nil {
		t.Errorf("survivor Recv returned nil after the peer vanished")
	}
}

// testWindow fills a stream's window of messages in flight (the receiver
// starts late, so the sender runs ahead until the transport pushes back)
// and checks that every message arrives intact and in order; then that a
// sender blocked on a full window, and the survivor's Recv, fail within a
// few seconds when the peer vanishes in the middle of that window.
func testWindow(t *testing.T, tr backends.Transport, opts Options) {
	sizes := []int{64, 4096, 65536, 300 << 10}
	msg := func(m int) (hdr, payload []byte) {
		hdr = binary.LittleEndian.AppendUint32(nil, uint32(m))
		return hdr, Random(sizes[m%len(sizes)], uint64(m))
	}
	t.Run("ManyInFlight", func(t *testing.T) {
		const messages = 2000
		s := Open(t, tr, 1, opts.Params)
		tx, rx := s.Dialer[0], s.Acceptor[0]
		sendErr := async(func() error {
			for m := 0; m < messages; m++ {
				if err := tx.Send(msg(m)); err != nil {
					return fmt.Errorf("message %d: %w", m, err)
				}
			}
			return nil
		})
		time.Sleep(200 * time.Millisecond) // let the sender fill the window
		err := within(t, opts.timeout(), "receiving the window", func() error {
			for m := 0; m < messages; m++ {
				wh, wp := msg(m)
				h, p, err := recvMessage(rx, 0)
				if err != nil {
					return fmt.Errorf("message %d: %w", m, err)
				}
				if !bytes.Equal(h, wh) || !bytes.Equal(p, wp) {
					return fmt.Errorf("message %d: header %x with %d payload bytes, want %x with %d (first difference at %d)",
						m, h, len(p), wh, len(wp), firstDiff(p, wp))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := Wait(t, sendErr, quick, "sender"); err != nil {
			t.Fatal(err)
		}
	})
	for _, crash := range []bool{false, true} {
		name := "PeerVanishesMidWindow/StreamsClosed"
		if crash {
			name = "PeerVanishesMidWindow/SocketsReset"
		}
		t.Run(name, func(t *testing.T) {
			const bound = 1 << 20 // messages: the sender must block long before
			s := Open(t, tr, 1, opts.Params)
			survivor, peer := s.Dialer[0], s.Acceptor[0]
			recvErr := async(func() error {
				_, _, err := survivor.Recv(make([]byte, backends.MaxHeader))
				return err
			})
			var sent atomic.Int64
			sendErr := async(func() error {
				for m := 0; m < bound; m++ {
					if err := survivor.Send(msg(m)); err != nil {
						return err
					}
					sent.Add(1)
				}
				return fmt.Errorf("%d messages sent to a peer that reads 10", bound)
			})
			// The peer takes a few messages, then vanishes once the
			// sender has stopped getting more out: the window is full.
			err := within(t, opts.timeout(), "peer receive", func() error {
				for m := 0; m < 10; m++ {
					if _, _, err := recvMessage(peer, 0); err != nil {
						return err
					}
				}
				for last := int64(-1); last != sent.Load(); {
					last = sent.Load()
					time.Sleep(200 * time.Millisecond)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("peer: %v", err)
			}
			t.Logf("%d messages sent, 10 read, when the peer vanished", sent.Load())
			vanish(t, s, crash, sendErr, recvErr)
		})
	}
}

func testCloseUnblocks(t *testing.T, tr backends.Transport, opts Options) {
	const size = 64 << 20
	data := Random(size, 9)
	cases := []struct {
		name  string
		block func(s backends.Stream, f *os.File) error
	}{
		{"Recv", func(s backends.Stream, _ *os.File) error {
			_, _, err := s.Recv(make([]byte, backends.MaxHeader))
			return err
		}},
		{"Send", func(s backends.Stream, _ *os.File) error {
			// The peer does not read: this fills the socket buffers and blocks.
			for {
				if err := s.Send([]byte("h"), data); err != nil {
					return err
				}
			}
		}},
		{"SendFile", func(s backends.Stream, f *os.File) error {
			for {
				if err := s.SendFile([]byte("h"), f, 0, size); err != nil {
					return err
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Open(t, tr, 1, opts.Params)
			f := TempFile(t, data, 0, 0)
			errc := async(func() error { return c.block(s.Dialer[0], f) })
			select {
			case err := <-errc:
				t.Fatalf("%s returned before Close: %v", c.name, err)
			case <-time.After(300 * time.Millisecond):
			}
			closed := async(s.Dialer[0].Close)
			if err := Wait(t, errc, quick, c.name+" after Close"); err == nil {
				t.Errorf("%s returned nil after Close", c.name)
			}
			Wait(t, closed, quick, "Close")
		})
	}
}

func testUseAfterClose(t *testing.T, tr backends.Transport, opts Options) {
	s := Open(t, tr, 1, opts.Params)
	st := s.Dialer[0]
	if err := within(t, quick, "Close", st.Close); err != nil {
		t.Logf("Close: %v", err)
	}
	within(t, quick, "second Close", st.Close) // must not panic or hang
	f := TempFile(t, make([]byte, 10), 0, 0)
	checks := []struct {
		name string
		f    func() error
	}{
		{"Send", func() error { return st.Send([]byte("h"), []byte("p")) }},
		{"SendFile", func() error { return st.SendFile([]byte("h"), f, 0, 10) }},
		{"Recv", func() error { _, _, err := st.Recv(make([]byte, backends.MaxHeader)); return err }},
		{"RecvPayload", func() error { return st.RecvPayload(make([]byte, 1)) }},
	}
	for _, c := range checks {
		if err := within(t, quick, c.name+" after Close", c.f); err == nil {
			t.Errorf("%s after Close returned nil", c.name)
		}
	}
}

// testOpenCancelled checks that Open honours its context when the peer
// never shows up.
func testOpenCancelled(t *testing.T, tr backends.Transport, opts Options) {
	for _, dialer := range []bool{true, false} {
		name := "Acceptor"
		if dialer {
			name = "Dialer"
		}
		t.Run(name, func(t *testing.T) {
			d, a := Pair(t)
			rv := a
			if dialer {
				rv = d
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			p := opts.Params
			p.Streams, p.Dialer = 2, dialer
			err := within(t, quick, "Open without a peer", func() error {
				ss, err := tr.Open(ctx, rv, p)
				for _, s := range ss {
					s.Close()
				}
				return err
			})
			// The accepting side cannot get its data sockets without a peer
			// and must fail; the dialing side may finish (its dials land in
			// the listener's backlog) but must not hang either way.
			if err == nil && !dialer {
				t.Errorf("Open without a peer succeeded")
			}
		})
	}
}

// testNoLeaks opens and closes sessions and checks that file descriptors
// and goroutines come back to where they were.
func testNoLeaks(t *testing.T, tr backends.Transport, opts Options) {
	session := func(t *testing.T) {
		s := Open(t, tr, 4, opts.Params)
		f := TempFile(t, make([]byte, 300<<10), 0, 0)
		for i := range s.Dialer {
			errc := async(func() error {
				for k := 0; k < 2; k++ {
					if _, _, err := recvMessage(s.Acceptor[i], 0); err != nil {
						return err
					}
				}
				return nil
			})
			if err := s.Dialer[i].Send([]byte("h"), make([]byte, 200<<10)); err != nil {
				t.Fatal(err)
			}
			if err := s.Dialer[i].SendFile([]byte("h"), f, 0, 300<<10); err != nil {
				t.Fatal(err)
			}
			if err := Wait(t, errc, quick, "receive"); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range append(s.Dialer, s.Acceptor...) {
			if err := within(t, quick, "Close", st.Close); err != nil {
				t.Logf("Close: %v", err)
			}
		}
	}
	t.Run("WarmUp", session) // lazily created runtime descriptors
	fds, gs := countFds(t), runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		t.Run("Session", session)
	}
	deadline := time.Now().Add(quick)
	for {
		nf, ng := countFds(t), runtime.NumGoroutine()
		if nf <= fds && ng <= gs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing 3 sessions: %d file descriptors (was %d), %d goroutines (was %d)", nf, fds, ng, gs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countFds(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}
