package sshconn

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/transfer/wire"
)

// ListenUnix is DataListener's host for a Unix socket in a private
// directory: no network port at all, for inline data only.
const ListenUnix = "unix"

// DataListener listens for one run's data streams and third-party
// sessions: with host ListenUnix on a Unix socket in a new directory only
// this user can enter, else on an ephemeral TCP port of host when given,
// of the address the ssh client reached this machine by
// (SSH_CONNECTION), or of loopback.
func DataListener(host string) (net.Listener, error) {
	if host == ListenUnix {
		dir, err := os.MkdirTemp("", "xfer-stdio-")
		if err != nil {
			return nil, fmt.Errorf("directory for the data socket: %w", err)
		}
		ln, err := net.Listen("unix", filepath.Join(dir, "data"))
		if err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("listen for data streams in %s: %w", dir, err)
		}
		return &dirListener{Listener: ln, dir: dir}, nil
	}
	if host == "" {
		host = "127.0.0.1"
		if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 && net.ParseIP(f[2]) != nil {
			host = f[2]
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen for data streams on %s: %w", host, err)
	}
	return ln, nil
}

// dirListener removes its socket's private directory when closed.
type dirListener struct {
	net.Listener
	dir string
}

func (l *dirListener) Close() error {
	err := l.Listener.Close()
	os.RemoveAll(l.dir)
	return err
}

// Announce is what ServeStdio says first: the protocol, the listener ln
// and the run's token, with server naming this build.
func Announce(ln net.Listener, server string, token []byte) wire.StdioHello {
	h := wire.StdioHello{Proto: "xfer-stdio", Version: wire.ProtocolVersion, Server: server,
		DataAddr: ln.Addr().String(), Token: hex.EncodeToString(token)}
	if ln.Addr().Network() == "unix" {
		h.DataNet = "unix"
	}
	return h
}

// ServeStdio announces hello on out and has serve run the session that
// arrives on in and out: serve gets a listener whose first connection is
// the standard one and whose others are ln's. It returns once that
// session ends or in is closed (the ssh connection went), giving the
// other sessions a few seconds to end with it.
func ServeStdio(ctx context.Context, in io.Reader, out io.Writer, ln net.Listener, hello wire.StdioHello,
	serve func(context.Context, net.Listener) error) error {
	// Closing ln (again) removes the socket directory of a Unix listener
	// however serve ended.
	defer ln.Close()
	if err := wire.WriteMessage(out, wire.FrameStdio, hello); err != nil {
		return fmt.Errorf("announce on standard output: %w", err)
	}
	outer, inner, err := socketPair()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(outer, in)
		outer.(*net.UnixConn).CloseWrite()
		cancel()
	}()
	go func() {
		io.Copy(out, outer)
		cancel()
	}()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, &stdioListener{Listener: ln, first: stdioConn{inner.(*net.UnixConn)}}) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	outer.Close()
	select {
	case err := <-served:
		return err
	case <-time.After(5 * time.Second):
		return nil
	}
}

// RelayTarget is the --stdio-relay argument that reaches the listener
// of hello: host:port, or unix:PATH.
func RelayTarget(hello wire.StdioHello) string {
	if hello.DataNet == "unix" {
		return "unix:" + hello.DataAddr
	}
	return hello.DataAddr
}

// Relay connects to target (RelayTarget: the far side's data listener)
// and copies between that connection and in and out until either side
// ends: one inline data stream.
func Relay(ctx context.Context, target string, in io.Reader, out io.Writer) error {
	network, addr := "tcp", target
	if p, ok := strings.CutPrefix(target, "unix:"); ok {
		network, addr = "unix", p
	}
	d := net.Dialer{Timeout: wire.DefaultConnectTimeout}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("relay to %s: %w", target, err)
	}
	defer c.Close()
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(c, in)
		c.(interface{ CloseWrite() error }).CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		io.Copy(out, c)
		done <- struct{}{}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// socketPair returns the two ends of a connected Unix socket pair.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socket pair: %w", err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "stdio")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			if i == 1 {
				conns[0].Close()
			} else {
				unix.Close(fds[1])
			}
			return nil, nil, fmt.Errorf("socket pair: %w", err)
		}
	}
	return conns[0], conns[1], nil
}

// stdioConn is the session's end of the standard input and output; its
// peer is the ssh client, whose address this side does not know.
type stdioConn struct{ *net.UnixConn }

func (stdioConn) RemoteAddr() net.Addr { return stdioAddr{} }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "ssh" }
func (stdioAddr) String() string  { return "ssh" }

// stdioListener hands out the standard connection first, then ln's.
type stdioListener struct {
	net.Listener
	mu    sync.Mutex
	first net.Conn
}

func (l *stdioListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.first
	l.first = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	return l.Listener.Accept()
}
