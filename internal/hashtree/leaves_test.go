package hashtree

import (
	"bytes"
	"slices"
	"testing"
)

// TestLeafDeltaAssembly compares the leaves of each chunk of a new file
// with those of the receiver's old copy (the old file cut or padded with
// zeros to the new size, as a seeded partial file is), moves only the
// leaves that differ and checks that the assembled chunks are the new ones
// and verify against the new chunk digests.
func TestLeafDeltaAssembly(t *testing.T) {
	const chunk, leaf = 64 << 10, 4 << 10
	base := testData(4*chunk, 7)
	flip := func(b []byte, off, n int) []byte {
		b = slices.Clone(b)
		for i := off; i < off+n; i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	tests := []struct {
		name     string
		old, new []byte
		want     map[int][]int // chunk index -> leaves that differ
	}{
		{"start of a chunk", base, flip(base, chunk, 100), map[int][]int{1: {0}}},
		{"middle of a chunk", base, flip(base, 2*chunk+5*leaf+10, 1000), map[int][]int{2: {5}}},
		{"end of a chunk", base, flip(base, 2*chunk-3, 3), map[int][]int{1: {15}}},
		{"across a leaf boundary", base, flip(base, chunk+3*leaf-50, 100), map[int][]int{1: {2, 3}}},
		{"across a chunk boundary", base, flip(base, chunk-1, 2), map[int][]int{0: {15}, 1: {0}}},
		{"last short chunk", base[:3*chunk+5000], flip(base[:3*chunk+5000], 3*chunk+4500, 10), map[int][]int{3: {1}}},
		{"file grown", base[:2*chunk+100], base, map[int][]int{2: seq(0, 16), 3: seq(0, 16)}},
		{"file shrunk", base, base[:2*chunk+leaf+1], map[int][]int{}},
		{"file shrunk, its new last byte changed", base, flip(base[:2*chunk+leaf+1], 2*chunk+leaf, 1), map[int][]int{2: {1}}},
		{"no change", base, base, map[int][]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(len(tc.new))
			seeded := make([]byte, size) // the old bytes at the new size
			copy(seeded, tc.old)
			got := map[int][]int{}
			moved := 0
			for ci := range NumChunks(size, chunk) {
				off := ci * chunk
				end := min(off+chunk, size)
				mine := LeafDigests(tc.new[off:end], off, leaf)
				theirs := LeafDigests(seeded[off:end], off, leaf)
				diff := DiffLeaves(mine, theirs)
				if len(diff) == 0 {
					if !bytes.Equal(seeded[off:end], tc.new[off:end]) {
						t.Fatalf("chunk %d differs but no leaf does", ci)
					}
					continue
				}
				got[int(ci)] = diff
				var data []byte
				for _, i := range diff {
					lo, hi := LeafSpan(i, leaf, end-off)
					data = append(data, tc.new[off+lo:off+hi]...)
				}
				moved += len(data)
				asm := slices.Clone(seeded[off:end])
				if err := PatchLeaves(asm, leaf, diff, data); err != nil {
					t.Fatalf("chunk %d: %v", ci, err)
				}
				if !bytes.Equal(asm, tc.new[off:end]) {
					t.Fatalf("chunk %d assembled wrong", ci)
				}
				if ChunkDigest(asm, off, size, chunk) != ChunkDigest(tc.new[off:end], off, size, chunk) {
					t.Fatalf("chunk %d does not verify", ci)
				}
			}
			if !mapsEqual(got, tc.want) {
				t.Errorf("leaves that differ %v, want %v", got, tc.want)
			}
			if want := countBytes(tc.want, leaf, chunk, size); moved != want {
				t.Errorf("moved %d bytes, want %d", moved, want)
			}
		})
	}
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

func mapsEqual(a, b map[int][]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func countBytes(m map[int][]int, leaf, chunk, size int64) int {
	n := 0
	for ci, leaves := range m {
		off := int64(ci) * chunk
		for _, i := range leaves {
			lo, hi := LeafSpan(i, leaf, min(chunk, size-off))
			n += int(hi - lo)
		}
	}
	return n
}

// TestLeafDigestsAreTreeNodes checks that a full chunk's leaf digests are
// nodes of BLAKE3's tree: merged pairwise they give the chunk's digest.
func TestLeafDigestsAreTreeNodes(t *testing.T) {
	const chunk, leaf = 64 << 10, 16 << 10
	data := testData(3*chunk, 3)
	off := int64(chunk)
	cvs := LeafDigests(data[off:off+chunk], off, leaf)
	for len(cvs) > 1 {
		var up []Digest
		for i := 0; i < len(cvs); i += 2 {
			up = append(up, cvDigest(parentCV(digestCV(cvs[i]), digestCV(cvs[i+1]))))
		}
		cvs = up
	}
	if want := ChunkDigest(data[off:off+chunk], off, int64(len(data)), chunk); cvs[0] != want {
		t.Fatalf("merged leaves %s, chunk digest %s", cvs[0], want)
	}
}

func TestPatchLeavesRefuses(t *testing.T) {
	chunk := make([]byte, 10000)
	tests := []struct {
		name string
		idx  []int
		data int
	}{
		{"leaf past the chunk", []int{3}, 4096},
		{"not ascending", []int{1, 0}, 8192},
		{"short data", []int{0}, 100},
		{"long data for the short last leaf", []int{2}, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := PatchLeaves(chunk, 4096, tc.idx, make([]byte, tc.data)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := ValidLeafSize(16<<10, 4<<20); err != nil {
		t.Errorf("16 KiB leaves of 4 MiB chunks: %v", err)
	}
	for _, bad := range [][2]int64{{512, 4 << 20}, {3 << 10, 4 << 20}, {4 << 20, 4 << 20}, {1 << 10, 4 << 20}} {
		if ValidLeafSize(bad[0], bad[1]) == nil {
			t.Errorf("leaf %d of chunk %d accepted", bad[0], bad[1])
		}
	}
}
