package hashtree

import (
	"slices"

	"lukechampine.com/blake3/guts"
)

// manyMax is the largest input SumMany hashes side by side with others;
// longer ones fill sixteen lanes on their own (Sum).
const manyMax = 2 * group

// Many hashes many small inputs (the files of a batch) together: their full
// BLAKE3 chunks, except each input's last one, travel side by side through
// the sixteen-lane kernel, sixteen chunks of any inputs per pass (they share
// the flags of a non-final, non-root chunk; each lane has its own counter).
// Each input's last chunk and its parents are compressed one by one. A Many
// keeps its buffers between calls; the zero value is ready to use and it is
// not safe for concurrent use.
type Many struct {
	cvs  [][8]uint32 // chaining values of the lane chunks, inputs in order
	at   []int       // at[i]: index in cvs of input i's first lane chunk
	lane [16 * guts.ChunkSize]byte
	out  [16][8]uint32
	dst  [16]int // dst[j]: index in cvs of lane j's result
}

// Sum sets out[i] to the BLAKE3 hash of in[i] (what Sum returns for it);
// out must be at least as long as in.
func (m *Many) Sum(in [][]byte, out []Digest) {
	if !have16() {
		for i, b := range in {
			out[i] = Sum(b)
		}
		return
	}
	lanes := 0
	for _, b := range in {
		if len(b) > guts.ChunkSize && len(b) <= manyMax {
			lanes += (len(b) - 1) / guts.ChunkSize
		}
	}
	m.at = slices.Grow(m.at[:0], len(in))
	m.cvs = slices.Grow(m.cvs[:0], lanes)
	var p params16
	p.key = guts.IV
	p.blen = guts.BlockSize
	p.flags[0] = guts.FlagChunkStart
	p.flags[15] = guts.FlagChunkEnd
	n := 0 // lanes filled
	pass := func() {
		compressChunks16(&m.out, &m.lane, &p)
		for j := range n {
			m.cvs[m.dst[j]] = m.out[j]
		}
		n = 0
	}
	for _, b := range in {
		m.at = append(m.at, len(m.cvs))
		if len(b) <= guts.ChunkSize || len(b) > manyMax {
			continue
		}
		for c := range (len(b) - 1) / guts.ChunkSize { // all chunks but the last
			copy(m.lane[n*guts.ChunkSize:(n+1)*guts.ChunkSize], b[c*guts.ChunkSize:])
			p.ctrLo[n], p.ctrHi[n] = uint32(c), 0
			m.dst[n] = len(m.cvs)
			m.cvs = append(m.cvs, [8]uint32{})
			n++
			if n == 16 {
				pass()
			}
		}
	}
	if n > 0 {
		pass() // lanes past n hash stale bytes, unused
	}
	for i, b := range in {
		switch {
		case len(b) <= guts.ChunkSize:
			out[i] = rootDigest(guts.CompressChunk(b, &guts.IV, 0, 0))
		case len(b) > manyMax:
			out[i] = Sum(b)
		default:
			var mg merger
			k := (len(b) - 1) / guts.ChunkSize
			for _, cv := range m.cvs[m.at[i] : m.at[i]+k] {
				mg.push(cv)
			}
			last := guts.CompressChunk(b[k*guts.ChunkSize:], &guts.IV, uint64(k), 0)
			out[i] = rootDigest(mg.rootNode(last))
		}
	}
}
