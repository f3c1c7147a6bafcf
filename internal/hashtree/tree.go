package hashtree

import (
	"fmt"
	"sync"
)

// Tree collects the digests of a file's chunks as they arrive, in any order,
// and yields the file's BLAKE3 hash once all are in. Receivers use it to know
// which chunks are still missing (for resume) and to verify the whole file.
// It holds 32 bytes per chunk and is safe for concurrent use.
type Tree struct {
	fileSize  int64
	chunkSize int64
	err       error // invalid construction parameters

	mu      sync.Mutex
	digests []Digest
	set     []uint64 // bit i set when digests[i] is recorded
	count   int64    // number of recorded digests
}

// NewTree returns an empty Tree for a file of fileSize bytes cut into
// chunkSize chunks. Invalid parameters (see ValidChunkSize; a negative
// fileSize) are reported by every method that returns an error.
func NewTree(fileSize, chunkSize int64) *Tree {
	t := &Tree{fileSize: fileSize, chunkSize: chunkSize}
	if err := ValidChunkSize(chunkSize); err != nil {
		t.err = fmt.Errorf("hashtree: new tree: %w", err)
		return t
	}
	if fileSize < 0 {
		t.err = fmt.Errorf("hashtree: new tree: negative file size %d", fileSize)
		return t
	}
	k := NumChunks(fileSize, chunkSize)
	t.digests = make([]Digest, k)
	t.set = make([]uint64, (k+63)/64)
	return t
}

// Len returns the number of chunks of the file (0 if the Tree is invalid).
func (t *Tree) Len() int64 {
	return int64(len(t.digests))
}

// Set records the digest of chunk index, as computed by ChunkDigest over
// verified data. Setting a chunk again with the same digest is a no-op; a
// different digest, or an index out of range, is an error.
func (t *Tree) Set(index int64, d Digest) error {
	if t.err != nil {
		return t.err
	}
	if index < 0 || index >= t.Len() {
		return fmt.Errorf("hashtree: set chunk %d: index out of range [0, %d)", index, t.Len())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.has(index) {
		if t.digests[index] != d {
			return fmt.Errorf("hashtree: set chunk %d: digest %s conflicts with recorded %s", index, d, t.digests[index])
		}
		return nil
	}
	t.digests[index] = d
	t.set[index/64] |= 1 << (index % 64)
	t.count++
	return nil
}

// has reports whether chunk index is recorded; t.mu must be held.
func (t *Tree) has(index int64) bool {
	return t.set[index/64]&(1<<(index%64)) != 0
}

// Has reports whether the digest of chunk index has been recorded.
func (t *Tree) Has(index int64) bool {
	if index < 0 || index >= t.Len() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.has(index)
}

// Missing returns the indexes of the chunks not yet recorded, ascending.
func (t *Tree) Missing() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	missing := make([]int64, 0, t.Len()-t.count)
	for i := range t.Len() {
		if !t.has(i) {
			missing = append(missing, i)
		}
	}
	return missing
}

// Complete reports whether every chunk digest has been recorded.
func (t *Tree) Complete() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err == nil && t.count == t.Len()
}

// Root returns the BLAKE3 hash of the file, or an error if some chunk
// digests are missing.
func (t *Tree) Root() (Digest, error) {
	if t.err != nil {
		return Digest{}, t.err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count != t.Len() {
		return Digest{}, fmt.Errorf("hashtree: tree root: %d of %d chunks missing", t.Len()-t.count, t.Len())
	}
	return combine(t.digests), nil
}
