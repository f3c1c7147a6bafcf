package transfer

import (
	"testing"

	"github.com/xfer-io/xfer/plan"
)

// TestShardsPartition: every share walks the same ops; each file to move
// is carried by exactly one share, the load is balanced by bytes, and
// what is not a file to move is left to the final pass.
func TestShardsPartition(t *testing.T) {
	file := func(p string, size int64, kind plan.OpKind) plan.Op {
		return plan.Op{Kind: kind, Src: plan.Entry{Path: p, Type: plan.TypeFile, Size: size}}
	}
	var many []plan.Op
	for i := range 100 {
		many = append(many, file("s"+string(rune('a'+i%26))+string(rune('a'+i/26)), int64(1000+i*37), plan.OpPut))
	}
	tests := []struct {
		name     string
		count    int
		ops      []plan.Op
		maxSkew  float64 // largest share / mean share, in bytes
		wantMine int     // ops carried by some share
	}{
		{"one share takes all", 1, many, 1.0, 100},
		{"two shares of equal files", 2, many, 1.1, 100},
		{"three shares", 3, many, 1.1, 100},
		{"large files spread", 2, []plan.Op{
			file("a", 100<<20, plan.OpPut), file("b", 100<<20, plan.OpPut),
			file("c", 50<<20, plan.OpPut), file("d", 50<<20, plan.OpPut)}, 1.01, 4},
		{"unchanged files count towards the balance but move nowhere", 2, []plan.Op{
			file("a", 10<<20, plan.OpSkip), file("b", 10<<20, plan.OpPut), file("c", 10<<20, plan.OpSetAttrs)}, 0, 1},
		{"directories, links and deletions are the final pass's", 2, []plan.Op{
			{Kind: plan.OpMkdir, Src: plan.Entry{Path: "d", Type: plan.TypeDir}},
			{Kind: plan.OpSymlink, Src: plan.Entry{Path: "l", Type: plan.TypeSymlink}},
			{Kind: plan.OpDelete, Src: plan.Entry{Path: "x", Type: plan.TypeFile, Size: 5}}}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			owner := map[string]int{}
			load := make([]int64, tc.count)
			for k := range tc.count {
				e := &engine{opt: Options{Shard: &Shard{Index: k, Count: tc.count}}}
				for _, op := range tc.ops {
					if e.mine(op) {
						if prev, dup := owner[op.Src.Path]; dup {
							t.Fatalf("%s carried by shares %d and %d", op.Src.Path, prev, k)
						}
						owner[op.Src.Path] = k
						load[k] += op.Src.Size
					}
				}
			}
			if len(owner) != tc.wantMine {
				t.Errorf("%d ops carried, want %d", len(owner), tc.wantMine)
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

func TestShardValidate(t *testing.T) {
	for _, sh := range []Shard{{0, 0}, {-1, 2}, {2, 2}, {0, MaxShards + 1}} {
		if err := (Options{Shard: &sh}).Validate(); err == nil {
			t.Errorf("shard %+v accepted", sh)
		}
	}
	if err := (Options{Shard: &Shard{1, 2}}).Validate(); err != nil {
		t.Error(err)
	}
}
