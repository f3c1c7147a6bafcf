package hashtree

import (
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
