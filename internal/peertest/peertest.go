// Package peertest serves, for tests of the daemon and its mover client, a
// CAS store from an xfer server in the test process, on loopback.
package peertest

import (
	"context"
	"net"
	"testing"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/transfer"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		transfer.NewServer(transfer.ServerConfig{Exports: map[string]transfer.Export{}, CAS: store}).Serve(ctx, ln)
		close(done)
	}()
	tb.Cleanup(func() { cancel(); <-done; store.Close() })
	return "xfer://" + ln.Addr().String(), store
}
