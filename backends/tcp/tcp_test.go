package tcp_test

import (
	"testing"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/backendtest"
	"github.com/xfer-io/xfer/backends/tcp"
)

// TestConformance runs the suite every transport must pass.
func TestConformance(t *testing.T) {
	backendtest.Run(t, tcp.Transport{}, backendtest.Options{})
}

func BenchmarkSend1M(b *testing.B) { backendtest.Bench(b, tcp.Transport{}, 1<<20, 1) }
func BenchmarkSend4K(b *testing.B) { backendtest.Bench(b, tcp.Transport{}, 4<<10, 1) }

var _ backends.Transport = tcp.Transport{}

func BenchmarkPingPong64(b *testing.B) { backendtest.BenchPingPong(b, tcp.Transport{}, 64) }
