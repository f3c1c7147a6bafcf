// Package sockstream holds what the socket transports that drive their own
// system calls (tcp-zc, uring) share, so that each keeps only its own way of
// moving bytes: opening one stream per data socket after a framing-version
// exchange (Open), the checks before a SendFile (FileRange), a stream's
// closed flag and the sticky error of each direction (State), and the
// buffered receive of framed messages (Receiver, over a read function the
// transport supplies). The framing itself is backends' (backends/frame.go).
package sockstream

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/xfer-io/xfer/backends"
)

// Open checks p.Streams, exchanges version with the peer (peers with
// another framing then refuse each other instead of misreading the byte
// stream) and wraps each of the session's p.Streams data sockets with wrap.
// Errors name the transport name; on failure the streams already opened are
// closed.
func Open(ctx context.Context, rv backends.Rendezvous, p backends.Params, name, version string,
	wrap func(c net.Conn) (backends.Stream, error)) ([]backends.Stream, error) {
	if p.Streams < 1 {
		return nil, fmt.Errorf("%s: %d streams requested, need at least 1", name, p.Streams)
	}
	peer, err := rv.Exchange(ctx, []byte(version))
	if err != nil {
		return nil, fmt.Errorf("%s: exchange version: %w", name, err)
	}
	if string(peer) != version {
		return nil, fmt.Errorf("%s: peer speaks %q, this side %q", name, peer, version)
	}
	streams := make([]backends.Stream, 0, p.Streams)
	fail := func(err error) ([]backends.Stream, error) {
		for _, s := range streams {
			s.Close()
		}
		return nil, err
	}
	for i := 0; i < p.Streams; i++ {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		c, err := rv.Conn(ctx, i)
		if err != nil {
			return fail(fmt.Errorf("%s: data socket %d: %w", name, i, err))
		}
		s, err := wrap(c)
		if err != nil {
			c.Close()
			return fail(fmt.Errorf("%s: data socket %d: %w", name, i, err))
		}
		streams = append(streams, s)
	}
	return streams, nil
}

// RawConn returns the raw connection of a connected socket, through which
// a transport issues its own system calls.
func RawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	return rc, nil
}

// FileRange checks the arguments of a SendFile of n bytes of f from off
// before anything is written, so that a refused one leaves the stream
// usable, and returns f's raw connection. Errors name the transport name.
func FileRange(name string, hdr []byte, f *os.File, off int64, n int) (syscall.RawConn, error) {
	if err := backends.CheckSizes(len(hdr), n); err != nil {
		return nil, fmt.Errorf("%s: sendfile: %w", name, err)
	}
	if off < 0 {
		return nil, fmt.Errorf("%s: sendfile: negative offset %d", name, off)
	}
	fc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%s: sendfile %s: %w", name, f.Name(), err)
	}
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("%s: sendfile: %w", name, err)
	} else if fi.Mode().IsRegular() && off+int64(n) > fi.Size() {
		return nil, fmt.Errorf("%s: sendfile %s: range %d+%d beyond its %d bytes", name, f.Name(), off, n, fi.Size())
	}
	return fc, nil
}

// State is a stream's closed flag, with what its operations fail with.
// Each direction of the stream keeps its own sticky error (the byte stream
// is out of step after a failure) and passes it to Ready and Fail.
type State struct {
	name      string
	errClosed error
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Init names the transport for error messages and sets the error every
// operation on the closed stream returns.
func (s *State) Init(name string, errClosed error) {
	s.name, s.errClosed = name, errClosed
}

// Closed reports whether Close has begun.
func (s *State) Closed() bool { return s.closed.Load() }

// Close marks the stream closed (operations fail from then on) and runs
// release, once: every call returns what release returned.
func (s *State) Close(release func() error) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = release()
	})
	return s.closeErr
}

// ErrClosed is the error operations on the closed stream return.
func (s *State) ErrClosed() error { return s.errClosed }

// Ready returns the error an operation of a direction whose sticky error
// is sticky fails with before it starts, or nil.
func (s *State) Ready(sticky error) error {
	if s.closed.Load() {
		return s.errClosed
	}
	return sticky
}

// Fail records err, met during op, as the direction's sticky error and
// returns it: as the closed error (with err in its text) when the stream
// was closed meanwhile, which is then the cause.
func (s *State) Fail(sticky *error, op string, err error) error {
	if s.closed.Load() {
		err = fmt.Errorf("%w (%v)", s.errClosed, err)
	} else {
		err = fmt.Errorf("%s: %s: %w", s.name, op, err)
	}
	*sticky = err
	return err
}
