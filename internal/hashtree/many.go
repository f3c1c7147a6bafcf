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
// The leading blocks of each input's last chunk (all but its final block)
// travel the same way, sixteen last chunks with as many leading blocks per
// pass. Only the final blocks, left for the parents and root as BLAKE3
// leaves them, and the parents are compressed one by one. A Many keeps its
// buffers between calls; the zero value is ready to use and it is not safe
// for concurrent use.
type Many struct {
	cvs   [][8]uint32 // chaining values of the lane chunks, inputs in order
	at    []int       // at[i]: index in cvs of input i's first lane chunk
	lasts []guts.Node // lasts[i]: input i's last chunk, as guts.CompressChunk returns it
	order []int       // inputs with leading blocks in their last chunk, by how many
	lane  [16 * guts.ChunkSize]byte
	out   [16][8]uint32
	dst   [16]int // dst[j]: index in cvs (or lasts) of lane j's result
}

// lastChunk returns where input b's last chunk starts (its index k times
// the chunk size) and how many leading blocks it has before its final one.
func lastChunk(b []byte) (k, lead int) {
	if len(b) > guts.ChunkSize {
		k = (len(b) - 1) / guts.ChunkSize
	}
	if l := len(b) - k*guts.ChunkSize; l > 0 {
		lead = (l - 1) / guts.BlockSize
	}
	return k, lead
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
	m.lasts = slices.Grow(m.lasts[:0], len(in))[:len(in)]
	var p params16
	p.key = guts.IV
	p.blen = guts.BlockSize
	p.blocks = 16
	p.flags[0] = guts.FlagChunkStart
	p.flags[15] = guts.FlagChunkEnd
	n := 0 // lanes filled
	pass := func(put func(j int, cv [8]uint32)) {
		compressChunks16(&m.out, &m.lane, &p)
		for j := range n {
			put(m.dst[j], m.out[j])
		}
		n = 0
	}
	toCVs := func(at int, cv [8]uint32) { m.cvs[at] = cv }
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
				pass(toCVs)
			}
		}
	}
	if n > 0 {
		pass(toCVs) // lanes past n hash stale bytes, unused
	}

	// The last chunks: each one's final block, zero-padded, as
	// guts.CompressChunk leaves it; the chaining value before it from the
	// kernel, for inputs taken in order of their leading blocks, sixteen
	// with as many per pass (not the final block, hence no chunk-end flag).
	m.order = m.order[:0]
	for i, b := range in {
		if len(b) > manyMax {
			continue
		}
		k, lead := lastChunk(b)
		nd := guts.Node{CV: guts.IV, Counter: uint64(k), Flags: guts.FlagChunkEnd}
		if lead == 0 {
			nd.Flags |= guts.FlagChunkStart
		} else {
			m.order = append(m.order, i)
		}
		final := b[k*guts.ChunkSize+lead*guts.BlockSize:]
		nd.BlockLen = uint32(len(final))
		var blk [guts.BlockSize]byte
		copy(blk[:], final)
		nd.Block = guts.BytesToWords(blk)
		m.lasts[i] = nd
	}
	slices.SortStableFunc(m.order, func(a, b int) int {
		_, la := lastChunk(in[a])
		_, lb := lastChunk(in[b])
		return la - lb
	})
	p.flags[15] = 0
	toLasts := func(i int, cv [8]uint32) { m.lasts[i].CV = cv }
	for _, i := range m.order {
		k, lead := lastChunk(in[i])
		if n > 0 && int(p.blocks) != lead {
			pass(toLasts)
		}
		p.blocks = uint32(lead)
		copy(m.lane[n*guts.ChunkSize:n*guts.ChunkSize+lead*guts.BlockSize], in[i][k*guts.ChunkSize:])
		p.ctrLo[n], p.ctrHi[n] = uint32(k), uint32(uint64(k)>>32)
		m.dst[n] = i
		n++
		if n == 16 {
			pass(toLasts)
		}
	}
	if n > 0 {
		pass(toLasts)
	}

	for i, b := range in {
		switch {
		case len(b) > manyMax:
			out[i] = Sum(b)
		case len(b) <= guts.ChunkSize:
			out[i] = rootDigest(m.lasts[i])
		default:
			var mg merger
			k := int(m.lasts[i].Counter) // the chunks before the last
			for _, cv := range m.cvs[m.at[i] : m.at[i]+k] {
				mg.push(cv)
			}
			out[i] = rootDigest(mg.rootNode(m.lasts[i]))
		}
	}
}
