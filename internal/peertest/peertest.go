// Package peertest runs, for tests of the daemon and its mover client, in
// the test process: a CAS store served by an xfer server on loopback (CAS),
// and a mover daemon on a fresh store and socket (Daemon), with its
// connections (RunningDaemon.Conn, RunningDaemon.Client).
package peertest

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/mover"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/session/sessiontest"
)

// CAS runs an xfer server that exposes a fresh store and no exports, and
// returns its remote (xfer://ADDR) and the store. Both are shut down when
// tb ends.
func CAS(tb testing.TB) (remote string, store *cas.Store) {
	tb.Helper()
	store, err := cas.OpenOptions(tb.TempDir(), cas.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	addr := sessiontest.Serve(tb, transfer.NewServer(transfer.ServerConfig{Exports: map[string]transfer.Export{}, CAS: store}))
	return "xfer://" + addr, store
}

// RunningDaemon is a daemon that Daemon started.
type RunningDaemon struct {
	Path  string        // its socket
	Store *cas.Store    // its store
	Stop  func()        // cancels Serve's context (the daemon drains and ends)
	Done  chan struct{} // closed when Serve has returned
}

// Resolve is a daemon's peer resolver for tests: a remote is xfer://ADDR
// (a trailing slash allowed), reached over tcp with two streams.
func Resolve(remote string) (string, transfer.DialOptions, error) {
	addr, ok := strings.CutPrefix(remote, "xfer://")
	if !ok {
		return "", transfer.DialOptions{}, errors.New("unknown remote " + remote)
	}
	return strings.TrimSuffix(addr, "/"), transfer.DialOptions{Proto: "tcp", Streams: 2, ConnectTimeout: 3 * time.Second}, nil
}

// Daemon runs a daemon with cfg on a fresh store (cfg.Store is replaced)
// and a socket in a temporary directory; cfg.Resolve defaults to Resolve.
// It is stopped, and its store closed, when tb ends.
func Daemon(tb testing.TB, cfg daemon.Config) *RunningDaemon {
	tb.Helper()
	if cfg.Resolve == nil {
		cfg.Resolve = Resolve
	}
	dir := tb.TempDir()
	store, err := cas.OpenOptions(filepath.Join(dir, "cas"), cas.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Store = store
	srv, err := daemon.New(cfg)
	if err != nil {
		store.Close()
		tb.Fatal(err)
	}
	d := &RunningDaemon{Path: filepath.Join(dir, "mover.sock"), Store: store, Done: make(chan struct{})}
	ln, err := daemon.Listen(d.Path, daemon.ListenOptions{})
	if err != nil {
		srv.Close()
		store.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Stop = cancel
	go func() { srv.Serve(ctx, ln); ln.Close(); close(d.Done) }()
	tb.Cleanup(func() { cancel(); <-d.Done; srv.Close(); store.Close() })
	return d
}

// Conn connects to d's socket, for tests that speak the protocol's bytes
// themselves; it is closed when tb ends.
func (d *RunningDaemon) Conn(tb testing.TB) net.Conn {
	tb.Helper()
	c, err := net.Dial("unix", d.Path)
	return closedAtEnd(tb, c, err)
}

// Client connects a mover client to d; it is closed when tb ends.
func (d *RunningDaemon) Client(tb testing.TB) *mover.Client {
	tb.Helper()
	c, err := mover.Dial(d.Path)
	return closedAtEnd(tb, c, err)
}

// closedAtEnd fails tb on err, else closes c when tb ends and returns it.
func closedAtEnd[C io.Closer](tb testing.TB, c C, err error) C {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
