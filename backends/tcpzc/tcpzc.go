// Package tcpzc implements the "tcp-zc" data transport: plain TCP streams
// whose send side avoids copying through user space.
//
//   - SendFile uses sendfile(2), so file pages go from the page cache to the
//     socket by reference.
//   - Send of a payload of ZeroCopyThreshold bytes or more uses MSG_ZEROCOPY
//     (SO_ZEROCOPY on the socket): the kernel pins the caller's pages instead
//     of copying them, and Send returns only once every completion for the
//     message has been read from the socket's error queue (recvmsg
//     MSG_ERRQUEUE, SO_EE_ORIGIN_ZEROCOPY ranges), so the caller may reuse the
//     buffer as soon as Send returns. When the kernel reports that it copied
//     after all (SO_EE_CODE_ZEROCOPY_COPIED: loopback, or a device without
//     scatter-gather), the stream stops asking for zero copy, as the kernel
//     documentation advises: it would only cost more.
//   - Receiving reads into the caller's buffer (the engine hashes the bytes
//     anyway).
//
// Every wait goes through the Go runtime poller (syscall.RawConn), so a
// blocked stream costs no thread and Close unblocks it.
package tcpzc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/internal/sockstream"
)

// Name is the transport's wire and command-line name.
const Name = "tcp-zc"

// ZeroCopyThreshold is the payload size from which Send uses MSG_ZEROCOPY.
// Below it, pinning pages and reading completions costs more than copying.
const ZeroCopyThreshold = 64 << 10

// version is exchanged at Open so peers with a different framing refuse
// each other instead of misreading the byte stream.
const version = "xfer/tcp-zc/1"

type transport struct {
	zcMin    int  // payload size from which Send uses MSG_ZEROCOPY
	alwaysZC bool // keep MSG_ZEROCOPY even when the kernel reports copies
}

func init() {
	backends.Register(&transport{zcMin: ZeroCopyThreshold})
}

func (t *transport) Name() string { return Name }

// Probe checks that the kernel accepts SO_ZEROCOPY on a TCP socket
// (Linux >= 4.14). sendfile(2) and splice(2) are older than that.
func (t *transport) Probe() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("tcp-zc: cannot create a TCP socket to probe: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1); err != nil {
		if errors.Is(err, unix.ENOPROTOOPT) {
			return fmt.Errorf("tcp-zc: kernel lacks SO_ZEROCOPY (needs Linux 4.14 or later): %w", err)
		}
		return fmt.Errorf("tcp-zc: setsockopt SO_ZEROCOPY: %w", err)
	}
	return nil
}

// Open takes the session's p.Streams data sockets from rv. Both peers first
// exchange the framing version.
func (t *transport) Open(ctx context.Context, rv backends.Rendezvous, p backends.Params) ([]backends.Stream, error) {
	return sockstream.Open(ctx, rv, p, Name, version, func(c net.Conn) (backends.Stream, error) {
		return newStream(c, t)
	})
}

// newStream wraps a connected socket. MSG_ZEROCOPY is enabled when the
// socket accepts SO_ZEROCOPY; otherwise Send copies, which is still correct.
func newStream(c net.Conn, t *transport) (*stream, error) {
	rc, err := sockstream.RawConn(c)
	if err != nil {
		return nil, err
	}
	s := &stream{conn: c, rc: rc}
	s.state.Init(Name, errClosed)
	s.tx.zcMin = t.zcMin
	s.tx.alwaysZC = t.alwaysZC
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1)
	}); err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	s.tx.zc = serr == nil
	s.rx.In.Init(make([]byte, rxBufSize), s.read, s.read)
	return s, nil
}
