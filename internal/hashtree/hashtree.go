// Package hashtree computes BLAKE3 digests of file chunks and merges them into
// the BLAKE3 hash of the whole file, so that every byte is hashed only once.
//
// A file is cut into chunks of a power-of-two size (at least 1024 bytes) at
// offsets aligned to that size. Each full chunk is then a complete subtree of
// the file's BLAKE3 Merkle tree, and its digest is the subtree's (non-root)
// chaining value. The last chunk, which may be partial, is folded the way the
// BLAKE3 incremental hasher folds its final block. Combine and Tree merge the
// chunk digests into the root, which equals the output of b3sum for the file.
// When one chunk covers the whole file its digest is the root itself.
//
// A chunk is in turn cut into leaves (leaves.go), subtrees of the same tree,
// whose digests two ends compare to move only the leaves of a changed chunk
// that differ (sub-chunk delta).
//
// Many hashes many small inputs at once (the files of a small-file batch),
// their chunks side by side in the sixteen-lane kernel.
//
// Stream does the same for an input that arrives in order, piece by piece,
// and can keep every piece's digest as an outboard; Merger folds such
// digests back into the root. The content store (internal/cas) names its
// objects and verifies their 64 KiB groups with them.
//
// This is the only package that computes BLAKE3 trees. The same math
// underlies Bao verified streaming; the low-level compression, with the
// chaining values this needs, is provided by lukechampine.com/blake3/guts.
package hashtree

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"

	"lukechampine.com/blake3/guts"
)

// DefaultChunkSize is the chunk size xfer uses unless configured otherwise.
const DefaultChunkSize = 4 << 20

const (
	// MinChunkSize is the smallest valid chunk size: one BLAKE3 chunk.
	MinChunkSize = guts.ChunkSize
	// MaxChunkSize is the largest valid chunk size.
	MaxChunkSize = 1 << 30

	// group is the number of bytes compressed in one SIMD pass.
	group = guts.MaxSIMD * guts.ChunkSize
)

// ValidChunkSize reports whether n can be used as a chunk size: it must be a
// power of two between MinChunkSize and MaxChunkSize inclusive.
func ValidChunkSize(n int64) error {
	switch {
	case n < MinChunkSize:
		return fmt.Errorf("hashtree: invalid chunk size %d: must be at least %d bytes", n, MinChunkSize)
	case n > MaxChunkSize:
		return fmt.Errorf("hashtree: invalid chunk size %d: must be at most %d bytes", n, MaxChunkSize)
	case n&(n-1) != 0:
		return fmt.Errorf("hashtree: invalid chunk size %d: must be a power of two", n)
	}
	return nil
}

// NumChunks returns the number of chunks of chunkSize bytes a file of
// fileSize bytes is cut into. An empty file has one (empty) chunk.
// It panics if chunkSize is not positive or fileSize is negative.
func NumChunks(fileSize, chunkSize int64) int64 {
	if chunkSize <= 0 {
		panic(fmt.Sprintf("hashtree: NumChunks: non-positive chunk size %d", chunkSize))
	}
	if fileSize < 0 {
		panic(fmt.Sprintf("hashtree: NumChunks: negative file size %d", fileSize))
	}
	if fileSize == 0 {
		return 1
	}
	n := fileSize / chunkSize
	if fileSize%chunkSize != 0 {
		n++
	}
	return n
}

// Digest is a 32-byte BLAKE3 digest: either a file hash (tree root) or the
// chaining value of a chunk subtree.
type Digest [32]byte

// String returns d in lowercase hexadecimal, as b3sum prints it.
func (d Digest) String() string {
	return hex.EncodeToString(d[:])
}

// ParseDigest parses 64 hexadecimal characters (either case) into a Digest.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("hashtree: parse digest %q: want %d hex characters, got %d", s, 2*len(d), len(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return Digest{}, fmt.Errorf("hashtree: parse digest %q: %w", s, err)
	}
	return d, nil
}

// cvDigest encodes a chaining value as a Digest (little-endian words).
func cvDigest(cv [8]uint32) Digest {
	var d Digest
	for i, w := range cv {
		binary.LittleEndian.PutUint32(d[4*i:], w)
	}
	return d
}

// digestCV decodes a Digest produced by cvDigest.
func digestCV(d Digest) [8]uint32 {
	var cv [8]uint32
	for i := range cv {
		cv[i] = binary.LittleEndian.Uint32(d[4*i:])
	}
	return cv
}

// rootDigest finalizes n as the root node of the tree and returns the hash.
func rootDigest(n guts.Node) Digest {
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var d Digest
	copy(d[:], out[:])
	return d
}

// parentCV returns the chaining value of the parent of left and right.
func parentCV(left, right [8]uint32) [8]uint32 {
	return guts.ChainingValue(guts.ParentNode(left, right, &guts.IV, 0))
}

// node returns the unfinalized node of the BLAKE3 subtree covering b, whose
// first BLAKE3 chunk has index counter; its chaining value is b's digest, and
// with FlagRoot it gives the hash when b is the whole input. b must be one
// node of the tree: 2^k full chunks at a counter that is a multiple of 2^k,
// or the end of the input (empty only for an empty input) at a counter that
// is a multiple of a power of two at least as large as its number of chunks.
// It runs on the calling goroutine only.
//
// BLAKE3's tree is left-complete: a node's left child covers the largest
// power-of-two number of chunks smaller than the node's, so node splits b
// there until a part fits one SIMD group, whose chunks (a partial last one
// included) are compressed side by side in one pass. For a part shorter than
// a group that pass reads, and ignores, bytes of b's capacity past its
// length when there are enough of them, and a copy of the part otherwise:
// callers whose slice must not be read past its length pass b[:n:n].
func node(b []byte, counter uint64) guts.Node {
	return nodeSIMD(b, counter, have16())
}

// nodeSIMD is node, with the sixteen-lane kernels of compress16.go for full
// subtrees of at least 32 chunks when wide is true.
func nodeSIMD(b []byte, counter uint64, wide bool) guts.Node {
	switch {
	case len(b) <= guts.ChunkSize:
		return guts.CompressChunk(b, &guts.IV, counter, 0)
	case len(b) <= group:
		if cap(b) >= group {
			// Bytes past len(b) fill lanes whose results are not used.
			return guts.CompressBuffer((*[group]byte)(b[:group]), len(b), &guts.IV, counter, 0)
		}
		var tmp [group]byte
		copy(tmp[:], b)
		return guts.CompressBuffer(&tmp, len(b), &guts.IV, counter, 0)
	}
	chunks := (len(b) + guts.ChunkSize - 1) / guts.ChunkSize
	if len(b)%guts.ChunkSize == 0 && chunks&(chunks-1) == 0 && chunks >= 2*guts.MaxSIMD && wide {
		return subtree16(b, counter) // a full subtree of at least 32 chunks
	}
	left := 1 << (bits.Len(uint(chunks-1)) - 1) // largest power of two < chunks
	l := nodeSIMD(b[:left*guts.ChunkSize], counter, wide)
	r := nodeSIMD(b[left*guts.ChunkSize:], counter+uint64(left), wide)
	return guts.ParentNode(guts.ChainingValue(l), guts.ChainingValue(r), &guts.IV, 0)
}

// merger accumulates chaining values of equal-height, consecutive subtrees,
// like the BLAKE3 incremental hasher's subtree stack.
type merger struct {
	stack [64][8]uint32 // stack[i] holds a subtree of 2^i pushed subtrees
	n     uint64        // subtrees pushed; bit i set when stack[i] is used
}

// push appends the next subtree's chaining value.
func (m *merger) push(cv [8]uint32) {
	i := 0
	for ; m.n&(1<<i) != 0; i++ {
		cv = parentCV(m.stack[i], cv)
	}
	m.stack[i] = cv
	m.n++
}

// rootNode returns the (unfinalized) root node of the tree made of the pushed
// subtrees followed by the final subtree last; with nothing pushed, last.
func (m *merger) rootNode(last guts.Node) guts.Node {
	n := last
	for i := bits.TrailingZeros64(m.n); i < bits.Len64(m.n); i++ {
		if m.n&(1<<i) != 0 {
			n = guts.ParentNode(m.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	return n
}

// root returns the root hash of the tree made of the pushed subtrees followed
// by the final subtree whose chaining value is last. At least one subtree
// must have been pushed.
func (m *merger) root(last [8]uint32) Digest {
	if m.n == 0 {
		panic("hashtree: internal error: merger.root without pushed subtrees")
	}
	var n guts.Node
	cv := last
	for i := bits.TrailingZeros64(m.n); i < bits.Len64(m.n); i++ {
		if m.n&(1<<i) != 0 {
			if n.Flags&guts.FlagParent != 0 {
				cv = guts.ChainingValue(n)
			}
			n = guts.ParentNode(m.stack[i], cv, &guts.IV, 0)
		}
	}
	return rootDigest(n)
}
