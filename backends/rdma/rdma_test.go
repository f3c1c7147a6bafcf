//go:build rdma && cgo

package rdma

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/backendtest"
)

// TestMain runs UCX over its tcp transport on loopback unless the caller
// chose otherwise (e.g. UCX_TLS=shm,self).
func TestMain(m *testing.M) {
	for k, v := range map[string]string{"UCX_TLS": "tcp", "UCX_NET_DEVICES": "lo"} {
		if _, ok := os.LookupEnv(k); !ok {
			os.Setenv(k, v)
		}
	}
	os.Exit(m.Run())
}

func rdmaTransport(t testing.TB) backends.Transport { return backendtest.Registered(t, "rdma") }

// openPair opens n streams between two sides of the transport in this
// process and closes them when the test ends.
func openPair(t testing.TB, n int) (a, b []backends.Stream) {
	t.Helper()
	s := backendtest.Open(t, rdmaTransport(t), n, backends.Params{})
	return s.Dialer, s.Acceptor
}

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// ucxMode is one way the transport runs between two peers on this host.
type ucxMode struct {
	name  string
	env   map[string]string
	lanes func([]string) bool // the endpoint's transports are what the mode means
}

// ucxModes are UCX's tcp with endpoints as across hosts (error mode peer,
// XFER_RDMA_SAME_HOST=0), UCX's tcp for a same-host peer (error mode none
// and the liveness socket), and UCX's shared memory (posix, sysv; cma asked
// for and left out).
func ucxModes() []ucxMode {
	tcpOnly := func(l []string) bool { return slices.Equal(l, []string{"tcp"}) }
	return []ucxMode{
		{"tcp", map[string]string{"UCX_TLS": "tcp", "XFER_RDMA_SAME_HOST": "0"}, tcpOnly},
		{"tcp-same-host", map[string]string{"UCX_TLS": "tcp", "XFER_RDMA_SAME_HOST": ""}, tcpOnly},
		{"shm", map[string]string{"UCX_TLS": "posix,sysv,cma,self", "XFER_RDMA_SAME_HOST": ""}, func(l []string) bool {
			return len(l) > 0 && !slices.Contains(l, "tcp") && !slices.Contains(l, "cma")
		}},
	}
}

// inModes runs f once per ucxMode, with the mode's environment (which the
// UCP context of each Open, and a helper process, read).
func inModes(t *testing.T, f func(t *testing.T, m ucxMode)) {
	for _, m := range ucxModes() {
		t.Run(m.name, func(t *testing.T) {
			for k, v := range m.env {
				t.Setenv(k, v)
			}
			f(t, m)
		})
	}
}

// TestModeLanes checks that each mode runs over the UCX transports it
// stands for: shared memory for a same-host peer when UCX_TLS allows it,
// and only then.
func TestModeLanes(t *testing.T) {
	inModes(t, func(t *testing.T, m ucxMode) {
		a, b := openPair(t, 2)
		for i, s := range append(a, b...) {
			if l := s.(*stream).Transports(); !m.lanes(l) {
				t.Errorf("stream %d runs over %q", i, l)
			}
		}
	})
	// Across hosts, UCX's shared memory cannot serve: Open says so.
	t.Setenv("UCX_TLS", "posix,sysv")
	t.Setenv("XFER_RDMA_SAME_HOST", "0")
	d, a := backendtest.Pair(t)
	errs := make(chan error, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, side := range []struct {
		rv     backends.Rendezvous
		dialer bool
	}{{d, true}, {a, false}} {
		go func() {
			ss, err := rdmaTransport(t).Open(ctx, side.rv, backends.Params{Streams: 1, Dialer: side.dialer})
			backendtest.CloseAll(ss)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "UCX's shared memory serves only a peer on the same host") {
			t.Errorf("Open over shared memory across hosts: %v, want the unreachable hint", err)
		}
	}
}

func TestLaneTransports(t *testing.T) {
	for _, tc := range []struct {
		info string
		want []string
	}{
		{"", nil},
		{"#\n# UCP endpoint\n#\n#               peer: <no debug data>\n#                 lane[0]:  2:tcp/lo.0 md[1]          -> md[1]/tcp/sysdev[255] rkey_ptr am am_bw#0\n", []string{"tcp"}},
		{"#  lane[0]:  3:sysv/memory.0 md[2] -> am\n#  lane[1]:  4:posix/memory.0 md[3] -> am_bw#0\n#  lane[2]:  5:posix/memory.0 md[3] -> rma_bw#0\n", []string{"sysv", "posix"}},
		{"#  lane[0]: garbage\n# tag_send: 0..<egr/short>..8185\n", nil},
	} {
		if got := laneTransports(tc.info); !slices.Equal(got, tc.want) {
			t.Errorf("laneTransports(%q) = %q, want %q", tc.info, got, tc.want)
		}
	}
}

func TestProbe(t *testing.T) {
	backendtest.MustProbe(t, rdmaTransport(t), "check ucx_info -d")
}

// TestConformance runs the suite every transport must pass.
func TestConformance(t *testing.T) {
	inModes(t, func(t *testing.T, _ ucxMode) {
		backendtest.Run(t, rdmaTransport(t), backendtest.Options{})
	})
}

// recvMsg reads one message, taking the payload in pieces of chunk bytes.
func recvMsg(s backends.Stream, chunk int) (hdr, payload []byte, err error) {
	hbuf := make([]byte, backends.MaxHeader)
	h, n, err := s.Recv(hbuf)
	if err != nil {
		return nil, nil, err
	}
	payload = make([]byte, n)
	for off := 0; off < n; off += chunk {
		if err := s.RecvPayload(payload[off:min(off+chunk, n)]); err != nil {
			return nil, nil, err
		}
	}
	return append([]byte(nil), h...), payload, nil
}

func TestPayloadSizes(t *testing.T) {
	a, b := openPair(t, 1)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		size  int
		chunk int // RecvPayload piece size
		file  bool
	}{
		{"empty", 0, 1, false},
		{"1B", 1, 1, false},
		{"4095B", 4095, 4095, false},
		{"4096B", 4096, 1000, false},
		{"1MiB+1", 1<<20 + 1, 1 << 20, false},
		{"1MiB+1/file", 1<<20 + 1, 65536, true},
		{"64MiB", 64 << 20, 3<<20 + 17, false},
		{"9MiB/file", 9 << 20, 9 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []byte(fmt.Sprintf("hdr:%s:%d", tc.name, tc.size))
			payload := pattern(tc.size, 1)
			errc := make(chan error, 1)
			go func() {
				if !tc.file {
					errc <- a[0].Send(hdr, payload)
					return
				}
				name := filepath.Join(dir, tc.name[:strings.IndexByte(tc.name, '/')])
				// The range sent starts 123 bytes into the file.
				if err := os.WriteFile(name, append(make([]byte, 123), payload...), 0o600); err != nil {
					errc <- err
					return
				}
				f, err := os.Open(name)
				if err != nil {
					errc <- err
					return
				}
				defer f.Close()
				errc <- a[0].SendFile(hdr, f, 123, tc.size)
			}()
			gh, gp, err := recvMsg(b[0], tc.chunk)
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("send: %v", err)
			}
			if !bytes.Equal(gh, hdr) {
				t.Errorf("header %q, want %q", gh, hdr)
			}
			if !bytes.Equal(gp, payload) {
				t.Errorf("payload of %d bytes differs from the %d sent", len(gp), len(payload))
			}
		})
	}
	t.Run("max header", func(t *testing.T) {
		hdr := pattern(backends.MaxHeader, 2)
		go a[0].Send(hdr, []byte("x"))
		gh, gp, err := recvMsg(b[0], 1)
		if err != nil || !bytes.Equal(gh, hdr) || string(gp) != "x" {
			t.Fatalf("got %d-byte header, payload %q, err %v", len(gh), gp, err)
		}
		if err := a[0].Send(make([]byte, backends.MaxHeader+1), nil); err == nil {
			t.Fatal("Send accepted a header over MaxHeader")
		}
	})
}

// TestSendFileShort checks that a SendFile whose range runs past the end
// of the file fails before anything is sent, leaving the stream usable.
func TestSendFileShort(t *testing.T) {
	a, b := openPair(t, 1)
	name := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(name, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{2000, 8 << 20} {
		if err := a[0].SendFile([]byte("short"), f, 0, n); err == nil {
			t.Fatalf("SendFile of %d bytes from a 1000-byte file succeeded", n)
		} else {
			t.Logf("%d bytes: %v", n, err)
		}
	}
	go a[0].Send([]byte("after"), []byte("ok"))
	h, p, err := recvMsg(b[0], 1)
	if err != nil || string(h) != "after" || string(p) != "ok" {
		t.Fatalf("next message: %q %q %v", h, p, err)
	}
}

// TestOpenErrors checks that Open fails on both sides, with the reason,
// when the peers disagree or one cannot open.
func TestOpenErrors(t *testing.T) {
	tr := rdmaTransport(t)
	for _, tc := range []struct {
		name     string
		a        int    // streams asked by side a
		b        int    // streams asked by side b; 0: b is not rdma
		peerBlob []byte // what a fake side b sends when b == 0
		want     string // in a's error
	}{
		{"stream count mismatch", 2, 1, nil, "peer opened 1 streams, this side 2"},
		{"no streams", 0, 1, nil, "0 streams requested"},
		{"peer cannot open", 1, 0, append([]byte(blobMagic), append([]byte{0}, "no NIC"...)...), "peer could not open the transport: no NIC"},
		{"peer is not rdma", 1, 0, []byte("tcp please"), "no rdma worker addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := backendtest.Pair(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var errB error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if tc.b == 0 {
					_, errB = cb.Exchange(ctx, tc.peerBlob)
					return
				}
				var ss []backends.Stream
				ss, errB = tr.Open(ctx, cb, backends.Params{Streams: tc.b})
				backendtest.CloseAll(ss)
				if errB == nil {
					errB = errors.New("side b opened")
				}
			}()
			ss, err := tr.Open(ctx, ca, backends.Params{Streams: tc.a, Dialer: true})
			backendtest.CloseAll(ss)
			wg.Wait()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("side a: got %v, want an error with %q", err, tc.want)
			}
			if tc.b != 0 && (errB == nil || errB.Error() == "side b opened") {
				t.Errorf("side b: got %v, want an error", errB)
			}
			t.Logf("a: %v; b: %v", err, errB)
		})
	}
}

// TestConcurrentStreams sends 200 messages each way on each of 4 streams at
// once and checks that every one arrives intact and in order.
func TestConcurrentStreams(t *testing.T) {
	const streams, msgs = 4, 200
	a, b := openPair(t, streams)
	size := func(s, i int) int { return (s*7919 + i*104729) % (300 << 10) }
	var wg sync.WaitGroup
	for s := 0; s < streams; s++ {
		for _, side := range []struct {
			name     string
			out, in  backends.Stream
			outgoing uint64
		}{{"dialer", a[s], b[s], 1}, {"acceptor", b[s], a[s], 2}} {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := 0; i < msgs; i++ {
					hdr := fmt.Appendf(nil, "%d/%d/%d", side.outgoing, s, i)
					if err := side.out.Send(hdr, pattern(size(s, i), side.outgoing<<32|uint64(s)<<16|uint64(i))); err != nil {
						t.Errorf("%s stream %d send %d: %v", side.name, s, i, err)
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				for i := 0; i < msgs; i++ {
					// Streams read payloads whole (zero-copy) or in pieces.
					h, p, err := recvMsg(side.in, []int{1 << 20, 4096, 100000, 1 << 20}[s%4])
					if err != nil {
						t.Errorf("from %s stream %d recv %d: %v", side.name, s, i, err)
						return
					}
					if want := fmt.Sprintf("%d/%d/%d", side.outgoing, s, i); string(h) != want {
						t.Errorf("from %s stream %d: header %q, want %q", side.name, s, h, want)
						return
					}
					if !bytes.Equal(p, pattern(size(s, i), side.outgoing<<32|uint64(s)<<16|uint64(i))) {
						t.Errorf("from %s stream %d message %d: payload corrupted", side.name, s, i)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
}

// TestCloseUnblocks checks that Close releases a Recv or a Send blocked on
// the same stream.
func TestCloseUnblocks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block func(s backends.Stream) error
	}{
		{"recv", func(s backends.Stream) error {
			_, _, err := s.Recv(make([]byte, backends.MaxHeader))
			return err
		}},
		{"send", func(s backends.Stream) error {
			// The peer reads nothing: the send slots fill up and Send blocks.
			big := make([]byte, 64<<20)
			for {
				if err := s.Send(nil, big); err != nil {
					return err
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := openPair(t, 1)
			done := make(chan error, 1)
			go func() { done <- tc.block(a[0]) }()
			select {
			case err := <-done:
				t.Fatalf("returned before Close: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			start := time.Now()
			go a[0].Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("got %v, want net.ErrClosed", err)
				}
				t.Logf("unblocked after %v: %v", time.Since(start), err)
			case <-time.After(5 * time.Second):
				t.Fatal("still blocked 5s after Close")
			}
		})
	}
}

// TestWindow checks which messages go as synchronous sends and which
// synchronous send a new one waits for.
func TestWindow(t *testing.T) {
	tests := []struct {
		name   string
		inline []int // payload bytes of the messages, in order
		syncAt []int // indexes of the messages that go synchronous
	}{
		{"empty messages", make([]int, 3*syncUnits), []int{syncUnits - 1, 2*syncUnits - 1, 3*syncUnits - 1}},
		{"one unit each", slices.Repeat([]int{unitBytes - 1}, syncUnits+1), []int{syncUnits - 1}},
		{"inline maximum", slices.Repeat([]int{InlineMax}, 8), []int{3, 7}},
		{"a message of a whole window", []int{0, syncUnits * unitBytes, 0}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w window
			var got []int
			for i, n := range tt.inline {
				sync := w.sync(n)
				if sync {
					got = append(got, i)
				}
				w.sent(n, sync, smallBase+i%smallSlots)
			}
			if !slices.Equal(got, tt.syncAt) {
				t.Errorf("synchronous sends at %v, want %v", got, tt.syncAt)
			}
		})
	}
	t.Run("waits for the oldest", func(t *testing.T) {
		var w window
		for k := range maxSyncs + 2 {
			i, full := w.full()
			if want := k >= maxSyncs; full != want {
				t.Fatalf("sync %d: window full %v, want %v", k, full, want)
			}
			if full && i != 100+k-maxSyncs {
				t.Fatalf("sync %d waits for slot %d, want %d", k, i, 100+k-maxSyncs)
			}
			w.sent(0, true, 100+k)
		}
	})
}

// TestSenderBoundedByReader checks, in each ucxMode, that a sender of
// small messages stays a bounded number of messages ahead of a reader that
// reads nothing (UCX would otherwise queue them all in the reader's
// memory), and that everything arrives, in order, once the reader reads.
func TestSenderBoundedByReader(t *testing.T) {
	inModes(t, func(t *testing.T, _ ucxMode) {
		a, b := openPair(t, 1)
		const total = 1000
		// A 64-byte message is one unit: every syncUnits-th goes as a
		// synchronous send, which completes only when matched, and a new
		// one waits while maxSyncs are in flight. Messages 1..8 have
		// posted receives, so the sync sends past them stay in flight.
		// The lower bound keeps the window wide enough to stream across a
		// round trip.
		const bound = (maxSyncs + 1) * syncUnits
		const least = maxSyncs * syncUnits
		var sent sync.WaitGroup
		count := make(chan int, total)
		sent.Add(1)
		var sendErr error
		go func() {
			defer sent.Done()
			for i := range total {
				if err := a[0].Send([]byte{byte(i)}, pattern(64, uint64(i))); err != nil {
					sendErr = err
					return
				}
				count <- i + 1
			}
		}()
		time.Sleep(500 * time.Millisecond)
		if n := len(count); n > bound {
			t.Fatalf("%d messages accepted with nothing read, want at most %d", n, bound)
		} else if n < least {
			t.Fatalf("only %d messages accepted with nothing read, want at least %d", n, least)
		}
		hbuf := make([]byte, backends.MaxHeader)
		for i := range total {
			h, n, err := b[0].Recv(hbuf)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			buf := make([]byte, n)
			if err := b[0].RecvPayload(buf); err != nil {
				t.Fatalf("message %d payload: %v", i, err)
			}
			if len(h) != 1 || h[0] != byte(i) || !bytes.Equal(buf, pattern(64, uint64(i))) {
				t.Fatalf("message %d: header %x, %d payload bytes or their contents differ", i, h, n)
			}
		}
		sent.Wait()
		if sendErr != nil {
			t.Fatal(sendErr)
		}
	})
}

// TestPeerGoes checks, in each ucxMode, how a receiver learns that the peer
// went away: an
// orderly Close at a message boundary reads as io.EOF; a peer closed in the
// middle of a message, or a peer process killed, fails the read within a
// few seconds instead of hanging, whether the payload is being read through
// the bounce buffer (1 MiB pieces) or zero-copy (the whole rest at once).
func TestPeerGoes(t *testing.T) {
	inModes(t, func(t *testing.T, _ ucxMode) { peerGoes(t) })
}

func peerGoes(t *testing.T) {
	closedBetween := func(t *testing.T) (backends.Stream, func()) {
		a, b := openPair(t, 1)
		if err := a[0].Send([]byte("last"), []byte("words")); err != nil {
			t.Fatal(err)
		}
		return b[0], func() { a[0].Close() }
	}
	closedMid := func(t *testing.T) (backends.Stream, func()) {
		a, b := openPair(t, 1)
		// The 64 MiB send blocks until the receiver takes it all; the
		// receiver takes part of it, then the sender is closed under it.
		go a[0].Send([]byte("big"), make([]byte, 64<<20))
		return b[0], func() { a[0].Close() }
	}
	for _, tc := range []struct {
		name    string
		run     func(t *testing.T) (backends.Stream, func())
		chunk   int // RecvPayload size after the peer went (0: all the rest)
		wantEOF bool
	}{
		{"closed between messages", closedBetween, 0, true},
		{"closed mid-message/pieces", closedMid, 1 << 20, false},
		{"closed mid-message/zero-copy", closedMid, 0, false},
		{"process killed mid-message/pieces", helperPeer, 1 << 20, false},
		{"process killed mid-message/zero-copy", helperPeer, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, vanish := tc.run(t)
			h, n, err := b.Recv(make([]byte, backends.MaxHeader))
			if err != nil {
				t.Fatalf("first Recv: %v", err)
			}
			if n > 0 {
				// Read part of the payload before the peer goes.
				if err := b.RecvPayload(make([]byte, min(n, 1<<20))); err != nil {
					t.Fatalf("RecvPayload: %v", err)
				}
				n -= min(n, 1<<20)
			}
			t.Logf("got header %q", h)
			start := time.Now()
			vanish()
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, n)
				for n > 0 {
					k := n
					if tc.chunk > 0 {
						k = min(n, tc.chunk)
					}
					if err := b.RecvPayload(buf[:k]); err != nil {
						done <- err
						return
					}
					n -= k
				}
				_, _, err := b.Recv(make([]byte, backends.MaxHeader))
				done <- err
			}()
			select {
			case err := <-done:
				t.Logf("after %v: %v", time.Since(start), err)
				switch {
				case err == nil:
					t.Fatal("read succeeded after the peer went away")
				case tc.wantEOF && err != io.EOF:
					t.Fatalf("got %v, want io.EOF", err)
				case !tc.wantEOF && (err == io.EOF || errors.Is(err, net.ErrClosed)):
					t.Fatalf("got %v, want a peer failure", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("receiver still blocked 10s after the peer went away")
			}
		})
	}
}

// helperPeer starts this test binary as a peer process that opens one
// stream and starts sending a 64 MiB message; kill SIGKILLs it.
func helperPeer(t *testing.T) (backends.Stream, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Data sockets: the liveness socket of a same-host session.
	dataLn, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dataLn.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPeer$")
	cmd.Env = append(os.Environ(), "XFER_RDMA_HELPER="+ln.Addr().String()+" "+dataLn.Addr().String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go io.Copy(io.Discard, out)
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dataLn.SetDeadline(time.Now().Add(20 * time.Second))
	ss, err := rdmaTransport(t).Open(ctx, backendtest.Over(c, false, "", dataLn), backends.Params{Streams: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backendtest.CloseAll(ss) })
	return ss[0], func() { cmd.Process.Kill() }
}

// TestHelperPeer is the peer process of helperPeer; it does nothing in a
// normal test run.
func TestHelperPeer(t *testing.T) {
	addr, dataAddr, ok := strings.Cut(os.Getenv("XFER_RDMA_HELPER"), " ")
	if !ok {
		t.Skip("helper process only")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, err := rdmaTransport(t).Open(ctx, backendtest.Over(c, true, dataAddr, nil), backends.Params{Streams: 1, Dialer: true})
	if err != nil {
		t.Fatal(err)
	}
	ss[0].Send([]byte("big"), make([]byte, 64<<20))
	time.Sleep(time.Minute) // killed long before
}

// BenchmarkStream sends 1 MiB messages on one stream to a receiver in the
// same process. Compare with:
//
//	UCX_TLS=tcp UCX_NET_DEVICES=lo ucx_perftest -t tag_bw -s 1048576 -n 2000 &
//	UCX_TLS=tcp UCX_NET_DEVICES=lo ucx_perftest 127.0.0.1 -t tag_bw -s 1048576 -n 2000
func BenchmarkStream(b *testing.B) { benchStream(b, 1<<20) }

// BenchmarkStreamSizes covers both sides of InlineMax (copied through
// slots below it, zero-copy above it).
func BenchmarkStreamSizes(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, InlineMax, InlineMax + 1, 16 << 20} {
		b.Run(fmt.Sprint(size), func(b *testing.B) { benchStream(b, size) })
	}
}

func benchStream(b *testing.B, size int) {
	a, r := openPair(b, 1)
	payload := pattern(size, 3)
	hdr := []byte("bench")
	b.SetBytes(int64(size))
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := a[0].Send(hdr, payload); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	hbuf := make([]byte, backends.MaxHeader)
	buf := make([]byte, size)
	for i := 0; i < b.N; i++ {
		_, n, err := r[0].Recv(hbuf)
		if err != nil {
			b.Fatal(err)
		}
		if err := r[0].RecvPayload(buf[:n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkShared runs the benchmarks shared by all transports, for
// comparison with tcp, tcp-zc and uring.
func BenchmarkShared(b *testing.B) {
	tr := rdmaTransport(b)
	for _, c := range []struct {
		name          string
		size, streams int
		file          bool
	}{
		{"Send/1MiB/1", 1 << 20, 1, false},
		{"Send/1MiB/4", 1 << 20, 4, false},
		{"Send/16MiB/1", 16 << 20, 1, false},
		{"SendFile/1MiB/1", 1 << 20, 1, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.file {
				backendtest.BenchSendFile(b, tr, c.size, c.streams)
			} else {
				backendtest.Bench(b, tr, c.size, c.streams)
			}
		})
	}
}
