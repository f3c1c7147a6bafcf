package plan

import (
	"testing"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// TestSharesPartition: every share walks the same ops; each file to move
// is carried by exactly one share, the load is balanced by bytes, and
// what is not a file to move is left to the final pass.
func TestSharesPartition(t *testing.T) {
	file := func(p string, size int64, kind OpKind) Op {
		return Op{Kind: kind, Src: Entry{Path: p, Type: TypeFile, Size: size}}
	}
	var many []Op
	for i := range 100 {
		many = append(many, file("s"+string(rune('a'+i%26))+string(rune('a'+i/26)), int64(1000+i*37), OpPut))
	}
	tests := []struct {
		name     string
		count    int
		ops      []Op
		maxSkew  float64 // largest share / mean share, in bytes
		wantMine int     // ops carried by some share
	}{
		{"one share takes all", 1, many, 1.0, 100},
		{"two shares of equal files", 2, many, 1.1, 100},
		{"three shares", 3, many, 1.1, 100},
		{"large files split over all shares", 3, []Op{
			file("a", 100<<20+5, OpPut), file("b", 13<<20, OpPut)}, 1.05, 2},
		{"files too small to split go whole", 2, []Op{
			file("a", 7<<20, OpPut), file("b", 7<<20, OpPut),
			file("c", 3<<20, OpPut), file("d", 3<<20, OpPut)}, 1.01, 4},
		{"unchanged files count towards the balance but move nowhere", 2, []Op{
			file("a", 10<<20, OpSkip), file("b", 10<<20, OpPut), file("c", 10<<20, OpSetAttrs)}, 0, 1},
		{"directories, links and deletions are the final pass's", 2, []Op{
			{Kind: OpMkdir, Src: Entry{Path: "d", Type: TypeDir}},
			{Kind: OpSymlink, Src: Entry{Path: "l", Type: TypeSymlink}},
			{Kind: OpDelete, Src: Entry{Path: "x", Type: TypeFile, Size: 5}}}, 0, 0},
	}
	const chunk = 1 << 20
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			owner := map[string]int{}
			carried := map[string]int64{} // bytes of each file carried, over all shares
			load := make([]int64, tc.count)
			for k := range tc.count {
				sh := &Shares{Index: k, Count: tc.count, ChunkSize: chunk}
				for _, op := range tc.ops {
					if !sh.Mine(op) {
						continue
					}
					n := op.Src.Size
					if sh.Splits(op) {
						lo, hi := sh.Range(hashtree.NumChunks(op.Src.Size, chunk))
						n = min(hi*chunk, op.Src.Size) - lo*chunk
					} else if prev, dup := owner[op.Src.Path]; dup {
						t.Fatalf("%s carried whole by shares %d and %d", op.Src.Path, prev, k)
					}
					owner[op.Src.Path] = k
					carried[op.Src.Path] += n
					load[k] += n
				}
			}
			if len(owner) != tc.wantMine {
				t.Errorf("%d ops carried, want %d", len(owner), tc.wantMine)
			}
			for _, op := range tc.ops {
				if _, ok := owner[op.Src.Path]; ok && carried[op.Src.Path] != op.Src.Size {
					t.Errorf("%s: %d of %d bytes carried", op.Src.Path, carried[op.Src.Path], op.Src.Size)
				}
			}
			if tc.maxSkew > 0 {
				var total, most int64
				for _, l := range load {
					total += l
					most = max(most, l)
				}
				if skew := float64(most) / (float64(total) / float64(tc.count)); skew > tc.maxSkew {
					t.Errorf("loads %v: skew %.2f > %.2f", load, skew, tc.maxSkew)
				}
			}
		})
	}
}
