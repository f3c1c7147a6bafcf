// Package backends defines the data-plane transport contract and the registry
// through which each transport (tcp, tcp-zc, uring, rdma) makes itself known.
//
// A transport moves opaque messages between two peers once the control
// session has authenticated them and agreed on the transport; it knows
// nothing of files, chunks or plans. Each implementation lives in its own
// package under backends/ and calls Register from an init function; the
// binary links them in with blank imports (see backends/all).
package backends

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
)

// MaxHeader is the largest message header a Stream must carry.
const MaxHeader = 4096

// Stream is one reliable, ordered, full-duplex message channel of the data
// plane. A message is a header of at most MaxHeader bytes and an optional
// payload. One goroutine may send while another receives; concurrent Sends
// (or concurrent Recvs) on one Stream are not allowed.
type Stream interface {
	// Send writes one message made of hdr followed by payload (may be nil).
	Send(hdr, payload []byte) error
	// SendFile writes one message whose payload is n bytes of f starting at
	// off, without copying through user space where the transport can.
	SendFile(hdr []byte, f *os.File, off int64, n int) error
	// Recv reads the next message header into hbuf (len(hbuf) >= MaxHeader)
	// and returns it with the payload length. The caller must consume the
	// whole payload with RecvPayload before calling Recv again.
	Recv(hbuf []byte) (hdr []byte, payloadLen int, err error)
	// RecvPayload reads the next len(p) payload bytes of the current message.
	RecvPayload(p []byte) error
	// Close releases the stream; a blocked Send or Recv returns an error.
	Close() error
}

// Rendezvous is what the control session offers a transport to set up its
// streams. Its methods are safe to call from one goroutine at a time.
type Rendezvous interface {
	// Conn returns the i-th data socket of the session: dialed and bound to
	// the session on the dialing side, accepted on the other side.
	Conn(ctx context.Context, i int) (net.Conn, error)
	// Exchange sends blob to the peer over the control connection and
	// returns the blob the peer's transport sent in the same step.
	Exchange(ctx context.Context, blob []byte) ([]byte, error)
}

// Params tunes Open.
type Params struct {
	Streams      int  // number of streams wanted (>= 1)
	Dialer       bool // true on the side that opened the control connection
	UringEntries int  // io_uring ring size (0: the transport's default)
}

// Transport establishes data streams of one kind.
type Transport interface {
	// Name is the wire and command-line name: tcp, tcp-zc, uring, rdma.
	Name() string
	// Probe reports whether the transport can run on this machine; a
	// non-nil error says why not (not compiled in, kernel support missing).
	Probe() error
	// Open sets up p.Streams streams with the peer. Both peers call it once
	// the handshake has chosen this transport.
	Open(ctx context.Context, rv Rendezvous, p Params) ([]Stream, error)
}

// AutoChooser is implemented by transports that can run anywhere they are
// compiled in but should be picked by `--proto auto` only where they pay
// (rdma: where RDMA hardware exists). AutoOK's error says why not.
type AutoChooser interface {
	AutoOK() error
}

// preference is the one list of the transports xfer knows of, in the order
// in which `--proto auto` tries them: the first one both peers support and
// can use wins. tcp-zc comes before uring because it measured faster for
// file data here (sendfile copies once; uring's file sends copy twice until
// SEND_ZC reaches a real NIC): see docs/benchmarks.md. tcp, which runs
// everywhere, comes last. Everything else that lists transports asks
// Preference.
var preference = [...]string{"rdma", "tcp-zc", "uring", "tcp"}

// Preference returns the names of the transports xfer knows of, compiled
// into this binary or not, most preferred first (see All for the ones
// compiled in). The slice is the caller's.
func Preference() []string { return append([]string(nil), preference[:]...) }

// registry holds the transports linked into this binary. It is written only
// by Register from init functions, before main runs.
var registry = struct {
	sync.RWMutex
	m map[string]Transport
}{m: map[string]Transport{}}

// Register makes t available under t.Name(). It panics on a duplicate name,
// which is a programming error.
func Register(t Transport) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[t.Name()]; dup {
		panic(fmt.Sprintf("backends: transport %q registered twice", t.Name()))
	}
	registry.m[t.Name()] = t
}

// Lookup returns the transport registered under name.
func Lookup(name string) (Transport, bool) {
	registry.RLock()
	defer registry.RUnlock()
	t, ok := registry.m[name]
	return t, ok
}

// Known reports whether name is a transport xfer knows of, compiled in or
// not (or one registered under another name, as tests do).
func Known(name string) bool {
	for _, p := range preference {
		if p == name {
			return true
		}
	}
	_, ok := Lookup(name)
	return ok
}

// All returns the registered transports in preference order, followed by any
// others sorted by name.
func All() []Transport {
	registry.RLock()
	defer registry.RUnlock()
	var out []Transport
	seen := map[string]bool{}
	for _, n := range preference {
		if t, ok := registry.m[n]; ok {
			out = append(out, t)
			seen[n] = true
		}
	}
	var rest []string
	for n := range registry.m {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, registry.m[n])
	}
	return out
}

// Usable returns the names of registered transports whose Probe succeeds, in
// preference order, restricted to allow when allow is non-empty.
func Usable(allow []string) []string {
	var out []string
	for _, t := range All() {
		if len(allow) > 0 && !slices.Contains(allow, t.Name()) {
			continue
		}
		if t.Probe() == nil {
			out = append(out, t.Name())
		}
	}
	return out
}

// Negotiate picks the transport for a session: the first of mine (in my
// preference order) that the peer also offers. want, when not "auto" or
// empty, forces one transport and fails when either side lacks it.
func Negotiate(want string, mine, peer []string) (string, error) {
	if want != "" && want != "auto" {
		if !slices.Contains(mine, want) {
			return "", fmt.Errorf("transport %s is not usable on this side", want)
		}
		if !slices.Contains(peer, want) {
			return "", fmt.Errorf("peer does not offer transport %s (it offers %v)", want, peer)
		}
		return want, nil
	}
	for _, m := range mine {
		if slices.Contains(peer, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("no transport in common (this side offers %v, peer offers %v)", mine, peer)
}

// Measurement is what a short probe of one transport between two peers
// found: its payload rate, or why it could not be measured.
type Measurement struct {
	Name        string
	BytesPerSec float64 // payload bytes per second; 0 when Err is set
	Err         error
}

// ChoiceMargin is how much slower than the fastest a more preferred
// transport may measure and still be chosen: short probes vary by a few
// per cent from run to run, and the preference order breaks such ties.
const ChoiceMargin = 0.10

// Choose picks the transport `--proto auto` uses from probes listed in
// preference order (most preferred first): the fastest one measured,
// unless a more preferred one is within ChoiceMargin of it. ok is false
// when no probe succeeded.
func Choose(ms []Measurement) (name string, ok bool) {
	best := -1.0
	for _, m := range ms {
		if m.Err == nil && m.BytesPerSec > best {
			best = m.BytesPerSec
		}
	}
	if best <= 0 {
		return "", false
	}
	for _, m := range ms {
		if m.Err == nil && m.BytesPerSec >= best*(1-ChoiceMargin) {
			return m.Name, true
		}
	}
	return "", false
}
