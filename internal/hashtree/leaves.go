package hashtree

import (
	"fmt"
	"math/bits"

	"lukechampine.com/blake3/guts"
)

// Leaves below chunk granularity (sub-chunk delta). A chunk is cut into
// leaves of a power-of-two size at offsets aligned to it; each full leaf
// is a subtree of the file's BLAKE3 tree, and the chunk's last leaf (short
// at the end of the file) the end of the input, so a leaf's digest is its
// subtree's chaining value, as a chunk's is. Two ends compare the leaf
// digests of a chunk that differs and move only the leaves that differ;
// the chunk assembled from old bytes and those leaves is then checked
// against the chunk's digest, as a chunk sent whole is.

// MaxLeaves bounds the leaves of one chunk (chunk size / leaf size).
const MaxLeaves = 1024

// ValidLeafSize reports whether leaves of leafSize bytes can cut chunks of
// chunkSize bytes: a power of two of at least one BLAKE3 chunk (1024
// bytes), smaller than the chunk, and at most MaxLeaves of them per chunk.
func ValidLeafSize(leafSize, chunkSize int64) error {
	switch {
	case leafSize < guts.ChunkSize || bits.OnesCount64(uint64(leafSize)) != 1:
		return fmt.Errorf("leaf size %d is not a power of two of at least %d bytes", leafSize, guts.ChunkSize)
	case leafSize >= chunkSize:
		return fmt.Errorf("leaf size %d is not smaller than the chunk size %d", leafSize, chunkSize)
	case chunkSize/leafSize > MaxLeaves:
		return fmt.Errorf("leaf size %d cuts %d-byte chunks into more than %d leaves", leafSize, chunkSize, MaxLeaves)
	}
	return nil
}

// LeafSizeFor is the leaf size used for chunks of chunkSize bytes: 16 KiB
// (about rsync's block for a 1 GiB file, at a quarter of the digests a
// 4 KiB leaf would cost), or larger where a chunk would have more than
// MaxLeaves of them. It returns 0 when chunks are too small to cut.
func LeafSizeFor(chunkSize int64) int64 {
	leaf := max(int64(16<<10), chunkSize/MaxLeaves)
	if ValidLeafSize(leaf, chunkSize) != nil {
		return 0
	}
	return leaf
}

// NumLeaves is the number of leaves of leafSize bytes in a chunk of n bytes.
func NumLeaves(n, leafSize int64) int {
	return int((n + leafSize - 1) / leafSize)
}

// LeafDigests returns the digests of the leaves of leafSize bytes of data,
// the chunk found at offset off of its file (off a multiple of leafSize).
// A leaf's digest depends only on its bytes and its offset, so the same
// data at the same place has the same digest whatever the file's size.
func LeafDigests(data []byte, off, leafSize int64) []Digest {
	if leafSize < guts.ChunkSize || bits.OnesCount64(uint64(leafSize)) != 1 || off < 0 || off%leafSize != 0 {
		panic(fmt.Sprintf("hashtree: LeafDigests: leaf size %d at offset %d", leafSize, off))
	}
	out := make([]Digest, NumLeaves(int64(len(data)), leafSize))
	for i := range out {
		lo := int64(i) * leafSize
		hi := min(lo+leafSize, int64(len(data)))
		out[i] = pieceDigest(data[lo:hi:hi], off+lo)
	}
	return out
}

// DiffLeaves returns the indexes, ascending, of the leaves of mine that
// theirs does not hold with the same digest (theirs may be shorter or
// longer: the other end's chunk of a file that grew or shrank).
func DiffLeaves(mine, theirs []Digest) []int {
	var out []int
	for i, d := range mine {
		if i >= len(theirs) || theirs[i] != d {
			out = append(out, i)
		}
	}
	return out
}

// LeafSpan returns the byte range [lo, hi) of leaf i of leafSize bytes in a
// chunk of n bytes.
func LeafSpan(i int, leafSize, n int64) (lo, hi int64) {
	lo = int64(i) * leafSize
	return lo, min(lo+leafSize, n)
}

// PatchLeaves writes into chunk, the old bytes of a chunk, the leaves
// listed by idx (ascending) whose bytes follow each other in data. It
// fails, changing nothing, when idx and data do not fit the chunk.
func PatchLeaves(chunk []byte, leafSize int64, idx []int, data []byte) error {
	n := int64(len(chunk))
	var need int64
	for k, i := range idx {
		if i < 0 || int64(i)*leafSize >= n || (k > 0 && i <= idx[k-1]) {
			return fmt.Errorf("leaf %d does not fit a %d-byte chunk in ascending order", i, n)
		}
		lo, hi := LeafSpan(i, leafSize, n)
		need += hi - lo
	}
	if need != int64(len(data)) {
		return fmt.Errorf("%d bytes of leaves for leaves of %d bytes", len(data), need)
	}
	var at int64
	for _, i := range idx {
		lo, hi := LeafSpan(i, leafSize, n)
		at += int64(copy(chunk[lo:hi], data[at:at+hi-lo]))
	}
	return nil
}
