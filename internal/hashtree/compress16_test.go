package hashtree

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3/guts"
)

// TestSubtree16MatchesGuts checks the sixteen-lane kernels against
// lukechampine.com/blake3/guts node by node: full subtrees from 32 chunks
// (the smallest the kernels take) to past subtree16Max, at counters that
// are multiples of the subtree's size, with and without high counter bits.
func TestSubtree16MatchesGuts(t *testing.T) {
	if !have16() {
		t.Skip("no AVX-512 on this CPU: the kernels are not used")
	}
	data := testData(4<<20, 21)
	for _, chunks := range []int{32, 64, 128, 256, 512, 4096} {
		size := chunks * guts.ChunkSize
		for _, counter := range []uint64{0, uint64(chunks), 7 * uint64(chunks), 1 << 32, 5<<32 + 3*uint64(chunks)} {
			b := data[:size:size]
			got := guts.ChainingValue(nodeSIMD(b, counter, true))
			want := guts.ChainingValue(nodeSIMD(b, counter, false))
			if got != want {
				t.Errorf("%d chunks at counter %#x: kernel chaining value %x, guts %x", chunks, counter, got, want)
			}
		}
	}
	// A root, finalized: the kernels' node keeps its flags right.
	for _, size := range []int{32 << 10, 1 << 20} {
		b := data[:size:size]
		if got, want := rootDigest(nodeSIMD(b, 0, true)), rootDigest(nodeSIMD(b, 0, false)); got != want {
			t.Errorf("root of %d bytes: kernel %s, guts %s", size, got, want)
		}
	}
}

// boundarySizes are input sizes at and beside the boundaries the hashing
// code cuts at: a BLAKE3 chunk (1 KiB), a SIMD group and a leaf (16 KiB),
// the kernels' smallest subtree (32 KiB), the smallest piece (64 KiB), the
// kernels' largest subtree in one go (256 KiB), a chunk of xfer's
// (DefaultChunkSize) and several of them.
func boundarySizes() []int64 {
	var sizes []int64
	for _, b := range []int64{1 << 10, 16 << 10, 32 << 10, 64 << 10, 256 << 10, DefaultChunkSize, 3 * DefaultChunkSize} {
		sizes = append(sizes, b-1, b, b+1)
	}
	return append(sizes, 0, 17<<20+16<<10+1)
}

// TestHashFileBoundaries: HashFile on 1, 2 and 8 workers, from a mapped
// file and through ReadAt, gives BLAKE3's digest at every boundary size.
func TestHashFileBoundaries(t *testing.T) {
	dir := t.TempDir()
	for _, size := range boundarySizes() {
		data := testData(size, 22)
		want := reference(data)
		path := filepath.Join(dir, fmt.Sprintf("f%d", size))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 2, 8} {
			for name, r := range map[string]io.ReaderAt{"file": f, "readerat": bytes.NewReader(data)} {
				got, err := HashFile(context.Background(), r, size, workers)
				if err != nil {
					t.Fatalf("HashFile(%s, %d bytes, %d workers): %v", name, size, workers, err)
				}
				if got != want {
					t.Errorf("HashFile(%s, %d bytes, %d workers) = %s, want %s", name, size, workers, got, want)
				}
			}
		}
		f.Close()
		if got := Sum(data); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", size, got, want)
		}
	}
}
