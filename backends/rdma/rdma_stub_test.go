//go:build !rdma || !cgo

package rdma

import (
	"context"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/backends"
)

func TestStubExplainsHowToGetRDMA(t *testing.T) {
	tr, ok := backends.Lookup("rdma")
	if !ok {
		t.Fatal("rdma transport not registered")
	}
	_, openErr := tr.Open(context.Background(), nil, backends.Params{Streams: 1})
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Probe", tr.Probe()},
		{"Open", openErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("want an error from the stub")
			}
			for _, want := range []string{"not compiled in", "make build", "libucx-dev", "-tags rdma"} {
				if !strings.Contains(tc.err.Error(), want) {
					t.Errorf("error %q does not mention %q", tc.err, want)
				}
			}
		})
	}
}
