//go:build rdma && cgo

package rdma

import (
	"errors"
	"os"
)

// AutoOK lets `--proto auto` pick rdma only where it pays: when the machine
// has RDMA devices, or when UCX_TLS chooses UCX's transports explicitly.
// Without either, UCX would run over TCP and plain tcp is the better
// choice; `--proto rdma` still forces it.
func (transport) AutoOK() error {
	if os.Getenv("UCX_TLS") != "" {
		return nil
	}
	if ents, err := os.ReadDir("/sys/class/infiniband"); err == nil && len(ents) > 0 {
		return nil
	}
	return errors.New("no RDMA devices (/sys/class/infiniband is empty; set UCX_TLS or --proto rdma to use UCX anyway)")
}
