// Package sessiontest runs, for the tests of the packages above the
// session, a server on a fresh loopback port (Serve) and a session to it
// (Dial), and stops both when the test ends, so that each test package
// need not write the listen, serve and shut-down steps again.
package sessiontest

import (
	"context"
	"net"
	"testing"

	"github.com/xfer-io/xfer/transfer/session"
)

// Server is what Serve runs: a *session.Server, or a server built on one.
type Server interface {
	// Serve accepts sessions on ln until ctx is cancelled.
	Serve(ctx context.Context, ln net.Listener) error
}

// Serve runs srv on a fresh TCP port of 127.0.0.1 and returns its address.
// When tb ends, the server's context is cancelled and Serve awaited.
func Serve(tb testing.TB, srv Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// Dial runs srv as Serve does and returns a session to it, dialled with o.
// When tb ends the session is closed first, then the server stopped.
func Dial(tb testing.TB, srv Server, o session.DialOptions) *session.Session {
	tb.Helper()
	addr := Serve(tb, srv)
	s, err := session.Dial(context.Background(), addr, o)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
