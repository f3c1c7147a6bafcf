// Package backendtest is the conformance suite every data-plane transport
// must pass, plus the helpers transport tests and benchmarks share: a real
// loopback Rendezvous pair (Pair), opening both ends of a session (Open) and
// a one-way throughput benchmark (Bench, BenchSendFile).
//
// Nothing here is mocked: data sockets are real TCP connections on
// 127.0.0.1, files are real temporary files, and each transport runs its real
// kernel paths (sendfile, MSG_ZEROCOPY, io_uring, ...).
package backendtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
)

// Options tunes Run.
type Options struct {
	// Params is the template for both sides' Open; Streams and Dialer are
	// set by the suite. Use it to pass UringEntries.
	Params backends.Params
	// Timeout bounds each step of a test that could hang (default 30s).
	// Checks that promise "within a few seconds" use their own, shorter bound.
	Timeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 30 * time.Second
	}
	return o.Timeout
}

// Session is both ends of an opened session.
type Session struct {
	Dialer, Acceptor     []backends.Stream
	DialerRV, AcceptorRV *Rendezvous
}

// Open builds a Pair and opens n streams of tr on both ends concurrently,
// as two peers do. The streams are closed when tb ends.
func Open(tb testing.TB, tr backends.Transport, n int, p backends.Params) *Session {
	tb.Helper()
	d, a := Pair(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		s   []backends.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		pa := p
		pa.Streams, pa.Dialer = n, false
		s, err := tr.Open(ctx, a, pa)
		ch <- result{s, err}
	}()
	pd := p
	pd.Streams, pd.Dialer = n, true
	ds, derr := tr.Open(ctx, d, pd)
	ar := <-ch
	if derr != nil || ar.err != nil {
		CloseAll(ds, ar.s)
		tb.Fatalf("backendtest: %s Open: dialer: %v; acceptor: %v", tr.Name(), derr, ar.err)
	}
	if len(ds) != n || len(ar.s) != n {
		CloseAll(ds, ar.s)
		tb.Fatalf("backendtest: %s Open returned %d and %d streams, want %d", tr.Name(), len(ds), len(ar.s), n)
	}
	tb.Cleanup(func() { CloseAll(ds, ar.s) })
	return &Session{Dialer: ds, Acceptor: ar.s, DialerRV: d, AcceptorRV: a}
}

// CloseAll closes every stream of the lists at once, as two peers close
// their ends independently (a transport's Close may wait for its peer to
// take what was sent), and returns when all are closed.
func CloseAll(lists ...[]backends.Stream) {
	var wg sync.WaitGroup
	for _, ss := range lists {
		for _, s := range ss {
			wg.Go(func() { s.Close() })
		}
	}
	wg.Wait()
}

// Registered returns the transport registered under name, failing tb when
// there is none.
func Registered(tb testing.TB, name string) backends.Transport {
	tb.Helper()
	tr, ok := backends.Lookup(name)
	if !ok {
		tb.Fatalf("transport %s is not registered", name)
	}
	return tr
}

// MustProbe fails the test when tr cannot be used on this machine; why
// says what the machine has that should make it usable.
func MustProbe(t *testing.T, tr backends.Transport, why string) {
	t.Helper()
	if err := tr.Probe(); err != nil {
		t.Fatalf("Probe: %v (%s)", err, why)
	}
}

// Run runs the conformance suite against tr. The transport must be usable
// on this machine; callers skip when tr.Probe fails.
func Run(t *testing.T, tr backends.Transport, opts Options) {
	if err := tr.Probe(); err != nil {
		t.Skipf("%s not usable here: %v", tr.Name(), err)
	}
	t.Run("Name", func(t *testing.T) {
		if !backends.Known(tr.Name()) {
			t.Errorf("Name() = %q, not a transport xfer knows of", tr.Name())
		}
	})
	t.Run("Payloads", func(t *testing.T) { testPayloads(t, tr, opts) })
	t.Run("ConcurrentStreams", func(t *testing.T) { testConcurrent(t, tr, opts) })
	t.Run("HeaderTooLarge", func(t *testing.T) { testHeaderTooLarge(t, tr, opts) })
	t.Run("PeerVanishes", func(t *testing.T) { testPeerVanishes(t, tr, opts) })
	t.Run("Window", func(t *testing.T) { testWindow(t, tr, opts) })
	t.Run("CloseUnblocks", func(t *testing.T) { testCloseUnblocks(t, tr, opts) })
	t.Run("UseAfterClose", func(t *testing.T) { testUseAfterClose(t, tr, opts) })
	t.Run("OpenCancelled", func(t *testing.T) { testOpenCancelled(t, tr, opts) })
	t.Run("SmallAmongLarge", func(t *testing.T) { testSmallAmongLarge(t, tr, opts) })
	t.Run("PeerClosesMidBatch", func(t *testing.T) { testPeerClosesMidBatch(t, tr, opts) })
	t.Run("CancelWhileReceiving", func(t *testing.T) { testCancelWhileReceiving(t, tr, opts) })
	t.Run("NoLeaks", func(t *testing.T) { testNoLeaks(t, tr, opts) })
}

// within runs f in a goroutine and returns its error, or fails the test if f
// has not returned after d (a hang). The goroutine is abandoned then.
func within(t testing.TB, d time.Duration, what string, f func() error) error {
	t.Helper()
	return Wait(t, async(f), d, what)
}

// async runs f in a goroutine; the returned channel yields its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// Wait returns what ch yields, failing the test if that takes longer than d.
func Wait(t testing.TB, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
		return errors.New("unreachable")
	}
}
