package hashtree

import (
	"unsafe"

	"lukechampine.com/blake3/guts"
)

// params16 is what the sixteen-lane kernels read (compress16_amd64.s, whose
// generator gen16.go has the offsets): the key, per-lane counters, per-block
// flags, the block length, and room for the chaining values in transposed
// form (word w of lane i at cv[w][i]).
type params16 struct {
	cv    [8][16]uint32
	ctrLo [16]uint32
	ctrHi [16]uint32
	flags [16]uint32
	key   [8]uint32
	blen  uint32
	// blocks is how many blocks of each chunk compressChunks16
	// compresses: 16 for whole chunks, fewer for the leading blocks of
	// the last chunks of inputs (Many), at least 1.
	blocks uint32
}

// Compile-time checks of the layout gen16.go assumes: each index is 0
// only at the right offset.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.cv)]
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.ctrLo)-512]
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.ctrHi)-576]
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.flags)-640]
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.key)-704]
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.blen)-736]
	_ = [1]struct{}{}[unsafe.Offsetof(params16{}.blocks)-740]
)

// subtree16Max is the largest subtree subtree16 hashes in one piece: its
// chunks' chaining values (32 bytes each) stay in an 8 KiB array.
const subtree16Max = 256 * guts.ChunkSize

// subtree16 returns the node of the full subtree b (2^k BLAKE3 chunks,
// k >= 5, whose first chunk has index counter, a multiple of 2^k) using the
// sixteen-lane kernels; have16 must be true.
func subtree16(b []byte, counter uint64) guts.Node {
	if len(b) > subtree16Max {
		h := len(b) / 2
		l := subtree16(b[:h], counter)
		r := subtree16(b[h:], counter+uint64(h/guts.ChunkSize))
		return guts.ParentNode(guts.ChainingValue(l), guts.ChainingValue(r), &guts.IV, 0)
	}
	var (
		cvs [subtree16Max / guts.ChunkSize][8]uint32
		p   params16
	)
	p.key = guts.IV
	p.blen = guts.BlockSize
	p.blocks = 16
	p.flags[0] = guts.FlagChunkStart
	p.flags[15] = guts.FlagChunkEnd
	n := len(b) / guts.ChunkSize
	for g := 0; g < n; g += 16 {
		for i := range 16 {
			c := counter + uint64(g+i)
			p.ctrLo[i], p.ctrHi[i] = uint32(c), uint32(c>>32)
		}
		compressChunks16((*[16][8]uint32)(cvs[g:]), (*[16 * 1024]byte)(b[g*guts.ChunkSize:]), &p)
	}
	// Parents, level by level, in place: call j reads cvs[32j:32j+32] and
	// writes cvs[16j:16j+16], which earlier calls have read. Below 32
	// values the lanes past the level's end hash stale values, unused.
	p.ctrLo, p.ctrHi = [16]uint32{}, [16]uint32{}
	p.flags[0] = guts.FlagParent
	for ; n > 2; n /= 2 {
		for j := 0; j < (n+31)/32; j++ {
			compressParents16((*[16][8]uint32)(cvs[16*j:]), (*[32][8]uint32)(cvs[32*j:]), &p)
		}
	}
	return guts.ParentNode(cvs[0], cvs[1], &guts.IV, 0)
}
