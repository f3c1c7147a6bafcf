package hashtree

import (
	"fmt"
	"testing"
)

// TestManySum checks Many.Sum against lukechampine.com/blake3 for sizes 0
// to 20 KiB around every 1 KiB boundary and past manyMax, in batches of
// mixed sizes so that lanes hold chunks of different inputs.
func TestManySum(t *testing.T) {
	var sizes []int
	for k := 0; k <= 20; k++ {
		for _, d := range []int{-1, 0, 1} {
			if s := k*1024 + d; s >= 0 {
				sizes = append(sizes, s)
			}
		}
	}
	sizes = append(sizes, 100, manyMax-1, manyMax, manyMax+1, 1<<20)
	tests := []struct {
		name  string
		order []int // indexes into sizes, repeated
	}{
		{"ascending", nil},
		{"one each", []int{-1}},
	}
	var m Many
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in [][]byte
			if tc.order == nil {
				for i, s := range sizes {
					in = append(in, testData(int64(s), uint64(i)))
				}
			}
			for i, s := range sizes {
				if tc.order != nil {
					in = [][]byte{testData(int64(s), uint64(i))}
				}
				if tc.order == nil && i > 0 {
					break
				}
				out := make([]Digest, len(in))
				m.Sum(in, out)
				for j, b := range in {
					if want := reference(b); out[j] != want {
						t.Errorf("%s: %d bytes: got %s, want %s", fmt.Sprint(tc.name), len(b), out[j], want)
					}
				}
			}
		})
	}
}
