package hashtree

import (
	"math/rand/v2"
	"testing"
)

// TestManySum checks Many.Sum against lukechampine.com/blake3 (whose output
// pinnedVectors tie to b3sum's) for sizes 0 to 20 KiB around every 1 KiB
// boundary and past manyMax, in batches that put chunks of different
// inputs side by side in the lanes, and alone.
func TestManySum(t *testing.T) {
	var sizes []int
	for k := 0; k <= 20; k++ {
		for _, d := range []int{-1, 0, 1} {
			if s := k*1024 + d; s >= 0 {
				sizes = append(sizes, s)
			}
		}
	}
	// Last chunks with every number of leading blocks (0-15), at and
	// around each block boundary, alone and after whole chunks.
	for _, k := range []int{0, 1, 3} {
		for j := 1; j <= 16; j++ {
			for _, d := range []int{-1, 0, 1} {
				if l := 64*j + d; l > 0 && l <= 1024 {
					sizes = append(sizes, k*1024+l)
				}
			}
		}
	}
	sizes = append(sizes, 100, manyMax-1, manyMax, manyMax+1, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := append([]int(nil), sizes...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var batches [][]int
	batches = append(batches, sizes, shuffled)
	// A batch of files of 1-8 KiB as the small-file path sees them: many
	// last chunks with the same number of leading blocks (full passes).
	var typical []int
	for range 300 {
		typical = append(typical, 1024+rng.IntN(7*1024+1))
	}
	batches = append(batches, typical)
	for _, s := range sizes {
		batches = append(batches, []int{s})
	}
	var m Many // reused: nothing of one batch may leak into the next
	for b, batch := range batches {
		in := make([][]byte, len(batch))
		for i, s := range batch {
			in[i] = testData(int64(s), uint64(b*1000+i))
		}
		out := make([]Digest, len(in))
		m.Sum(in, out)
		for i, data := range in {
			if want := reference(data); out[i] != want {
				t.Errorf("batch %d, input %d of %d bytes: got %s, want %s", b, i, len(data), out[i], want)
			}
		}
	}
}

// BenchmarkManySum: a batch of 256 files of 1-8 KiB, as the small-file
// path hashes them (MB/s of file data).
func BenchmarkManySum(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	in := make([][]byte, 256)
	total := 0
	for i := range in {
		in[i] = testData(int64(1024+rng.IntN(7*1024+1)), uint64(i))
		total += len(in[i])
	}
	out := make([]Digest, len(in))
	var m Many
	b.SetBytes(int64(total))
	for b.Loop() {
		m.Sum(in, out)
	}
}
