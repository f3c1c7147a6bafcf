package send

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/wire"
)

// corrupting is a destination whose lanes flip a byte of the first
// patches they carry (corrupt of them), as a bad link would; with noLeaves
// its files answer adopt without leaf digests, as a peer of an earlier
// version does.
type corrupting struct {
	Destination
	corrupt  *atomic.Int32
	noLeaves bool
}

func (d corrupting) Open(ctx context.Context, spec wire.FileSpec) (FileWriter, error) {
	w, err := d.Destination.Open(ctx, spec)
	if err != nil || !d.noLeaves {
		return w, err
	}
	return leafless{w}, nil
}

// leafless is a FileWriter whose destination offers no leaf digests.
type leafless struct{ FileWriter }

func (w leafless) Adopt(ctx context.Context, chunks []wire.AdoptChunk, leafSize int64) ([]int64, []wire.ChunkLeaves, error) {
	missing, _, err := w.FileWriter.Adopt(ctx, chunks, leafSize)
	return missing, nil, err
}

func (d corrupting) Lanes() []Lane {
	var out []Lane
	for _, l := range d.Destination.Lanes() {
		out = append(out, corruptLane{Lane: l, corrupt: d.corrupt})
	}
	return out
}

type corruptLane struct {
	Lane
	corrupt *atomic.Int32
}

func (l corruptLane) SendPatch(p wire.Patch, data []byte, cb func(byte, string)) error {
	if len(data) > 0 && l.corrupt.Add(-1) >= 0 {
		data = slices.Clone(data)
		data[len(data)/2] ^= 1
	}
	return l.Lane.SendPatch(p, data, cb)
}

// TestEnginePatches runs the engine over a changed large file: only the
// leaf that differs is sent, a patch corrupted on the way is caught by the
// destination and the chunk sent again, whole, and a destination that
// offers no leaf digests gets the whole chunk.
func TestEnginePatches(t *testing.T) {
	const chunk, leaf = 256 << 10, 16 << 10
	tests := []struct {
		name     string
		corrupt  int32
		noLeaves bool
		wantSent int64
		retries  int
	}{
		{"one leaf", 0, false, leaf, 0},
		{"a corrupt leaf is resent with its chunk", 1, false, chunk, 1},
		{"no leaf digests offered: the whole chunk", 0, true, chunk, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			data := source() // four chunks of the suite's size
			data = append(data, bytes.Repeat(data, 4)...)
			old := slices.Clone(data)
			old[2*chunk+5*leaf+100] ^= 0xff
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(filepath.Join(src, "big"), data, 0o644))
			must(os.WriteFile(filepath.Join(dst, "big"), old, 0o644))
			past := time.Now().Add(-time.Hour)
			must(os.Chtimes(filepath.Join(dst, "big"), past, past))
			h := receive.NewHandler(fsroottest.Open(t, dst), receive.Options{NoFsync: true})
			t.Cleanup(func() { h.Close() })
			var corrupt atomic.Int32
			corrupt.Store(tc.corrupt)
			d := corrupting{Destination: NewLocal(h, dst, 1, 0), corrupt: &corrupt, noLeaves: tc.noLeaves}
			var retries atomic.Int32
			sink := progress.SinkFunc(func(e progress.Event) {
				if e.Retry {
					retries.Add(1)
				}
			})
			tally := progress.NewTally()
			err := Run(context.Background(), fsroottest.Open(t, src), "", d, "",
				wire.Options{ChunkSize: chunk, Delta: true, NoFsync: true}, sink, tally)
			must(err)
			got, err := os.ReadFile(filepath.Join(dst, "big"))
			must(err)
			if !bytes.Equal(got, data) {
				t.Fatal("the destination does not hold the new content")
			}
			if s := tally.Summary(); s.BytesSent != tc.wantSent || int(retries.Load()) != tc.retries {
				t.Errorf("bytes sent %d, retries %d; want %d, %d", s.BytesSent, retries.Load(), tc.wantSent, tc.retries)
			}
		})
	}
}
