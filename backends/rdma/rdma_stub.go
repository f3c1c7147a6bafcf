//go:build !rdma || !cgo

package rdma

import (
	"context"
	"errors"

	"github.com/xfer-io/xfer/backends"
)

// errNotCompiled is what Probe and Open return in a binary built without
// the rdma tag.
var errNotCompiled = errors.New("rdma transport not compiled in: rebuild with 'make build' on a machine where pkg-config finds ucx (Debian: apt-get install libucx-dev), or go build -tags rdma")

type transport struct{}

func init() { backends.Register(transport{}) }

func (transport) Name() string { return "rdma" }

func (transport) Probe() error { return errNotCompiled }

func (transport) Open(context.Context, backends.Rendezvous, backends.Params) ([]backends.Stream, error) {
	return nil, errNotCompiled
}
