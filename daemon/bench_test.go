package daemon

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/xfer-io/xfer/internal/benchtest"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/mover"
)

// These benchmarks measure the daemon's own work per request, without the
// socket: what a READ or a BATCH costs in CPU once it has been received.
// mover's benchmarks measure the whole round trip.

func benchServer(b *testing.B, n int) (*Server, [][]byte) {
	dir := benchtest.Dir(b, "xfer-daemon-bench-")
	store, err := cas.OpenOptions(filepath.Join(dir, "cas"), cas.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	s, err := New(Config{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ids := make([][]byte, n)
	data := make([]byte, 4096)
	for i := range ids {
		data[0], data[1], data[2] = byte(i), byte(i>>8), 1
		id, err := store.PutBytes(context.Background(), data)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = []byte(hex.EncodeToString(id[:]))
		s.exec(context.Background(), s.view(), mover.OpRead, ids[i], 0, 0, nil, false) // verify once
	}
	return s, ids
}

func BenchmarkExecRead4K(b *testing.B) {
	s, ids := benchServer(b, 256)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		r := s.exec(ctx, s.view(), mover.OpRead, ids[i%len(ids)], 0, 0, nil, false)
		if r.status != mover.StatusOK || r.n != 4096 {
			b.Fatal(r.status)
		}
		i++
	}
}

func BenchmarkExecBatch100x4K(b *testing.B) {
	s, ids := benchServer(b, 1024)
	var data []byte
	for k := range 100 {
		data, _ = mover.AppendRequest(data, &mover.Request{Op: mover.OpRead, ID: string(ids[(k*13)%len(ids)])})
	}
	for b.Loop() {
		r := s.batch(data)
		if r.status != mover.StatusOK || r.n != 100*(4096+5) {
			b.Fatal(r.status)
		}
		r.release()
	}
}
