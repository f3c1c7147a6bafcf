package hashtree

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"lukechampine.com/blake3/guts"
)

// ChunkDigest hashes data, the chunk found at offset off of a file of
// fileSize bytes cut into chunkSize chunks. If off == 0 and data covers the
// whole file it returns the BLAKE3 hash of the file (as b3sum prints it);
// otherwise it returns the chunk's subtree chaining value, to be merged with
// Combine or Tree. It hashes on the calling goroutine only; callers hash
// several chunks in parallel.
//
// ChunkDigest panics on programming errors: an invalid chunkSize (see
// ValidChunkSize), a negative fileSize, an offset that is negative, not a
// multiple of chunkSize or not inside the file, or a data length other than
// min(chunkSize, fileSize-off).
func ChunkDigest(data []byte, off, fileSize, chunkSize int64) Digest {
	if err := ValidChunkSize(chunkSize); err != nil {
		panic(fmt.Sprintf("hashtree: ChunkDigest: %v", err))
	}
	switch {
	case fileSize < 0:
		panic(fmt.Sprintf("hashtree: ChunkDigest: negative file size %d", fileSize))
	case off < 0 || off%chunkSize != 0:
		panic(fmt.Sprintf("hashtree: ChunkDigest: offset %d is not a non-negative multiple of chunk size %d", off, chunkSize))
	case off >= fileSize && !(off == 0 && fileSize == 0):
		panic(fmt.Sprintf("hashtree: ChunkDigest: offset %d beyond file size %d", off, fileSize))
	}
	if want := min(chunkSize, fileSize-off); int64(len(data)) != want {
		panic(fmt.Sprintf("hashtree: ChunkDigest: chunk at offset %d has %d bytes, want %d", off, len(data), want))
	}
	if off == 0 && int64(len(data)) == fileSize {
		return rootDigest(finalNode(data, 0))
	}
	return pieceDigest(data, off)
}

// pieceDigest returns the chaining value of a piece that is not the whole
// input; data is either a full piece or the input's last piece.
func pieceDigest(data []byte, off int64) Digest {
	counter := uint64(off) / guts.ChunkSize
	if len(data)&(len(data)-1) == 0 && len(data) >= guts.ChunkSize && off%int64(len(data)) == 0 {
		// A full piece (the last one included) is a complete subtree.
		return cvDigest(subtreeCV(data, counter))
	}
	return cvDigest(guts.ChainingValue(finalNode(data, counter)))
}

// Combine returns the BLAKE3 hash of a file of fileSize bytes from the
// digests of all its chunkSize chunks, in order, as returned by ChunkDigest.
func Combine(chunks []Digest, fileSize, chunkSize int64) (Digest, error) {
	if err := ValidChunkSize(chunkSize); err != nil {
		return Digest{}, fmt.Errorf("hashtree: combine: %w", err)
	}
	if fileSize < 0 {
		return Digest{}, fmt.Errorf("hashtree: combine: negative file size %d", fileSize)
	}
	if want := NumChunks(fileSize, chunkSize); int64(len(chunks)) != want {
		return Digest{}, fmt.Errorf("hashtree: combine: got %d chunk digests, want %d for %d bytes in %d-byte chunks",
			len(chunks), want, fileSize, chunkSize)
	}
	return combine(chunks), nil
}

// combine merges validated chunk digests.
func combine(chunks []Digest) Digest {
	if len(chunks) == 1 {
		return chunks[0]
	}
	var m merger
	for _, d := range chunks[:len(chunks)-1] {
		m.push(digestCV(d))
	}
	return m.root(digestCV(chunks[len(chunks)-1]))
}

const (
	// sumSerialMax is the input size up to which Sum hashes serially.
	sumSerialMax = 256 << 10
	// minPiece is the smallest piece Sum and HashFile split work into.
	minPiece = 64 << 10
)

// pieceSize picks a power-of-two piece size for n bytes hashed by workers
// goroutines: about four pieces per worker, between minPiece and maxPiece.
func pieceSize(n int64, workers int, maxPiece int64) int64 {
	p := int64(minPiece)
	for p < maxPiece && p*2*int64(workers)*4 <= n {
		p *= 2
	}
	return p
}

// Sum returns the BLAKE3 hash of data, as b3sum prints it. Large inputs are
// split into subtrees hashed on up to GOMAXPROCS goroutines.
func Sum(data []byte) Digest {
	if len(data) > guts.ChunkSize && len(data) <= group {
		return rootDigest(groupNode(data))
	}
	procs := runtime.GOMAXPROCS(0)
	if len(data) <= sumSerialMax || procs == 1 {
		return rootDigest(finalNode(data, 0))
	}
	size := int64(len(data))
	p := pieceSize(size, procs, DefaultChunkSize)
	k := NumChunks(size, p)
	cvs := make([]Digest, k)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(int64(procs), k) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < k; i = next.Add(1) - 1 {
				off := i * p
				cvs[i] = pieceDigest(data[off:min(off+p, size)], off)
			}
		}()
	}
	wg.Wait()
	return combine(cvs)
}

// groupNode returns the (unfinalized) root node of an input of more than
// one chunk and at most one SIMD group, in one pass: all its chunks, the
// partial last one included, side by side, then their parents. (finalNode
// would make a SIMD pass per power-of-two subtree, each as costly as a
// full group, and compress the rest one chunk at a time.)
func groupNode(data []byte) guts.Node {
	if cap(data) >= group {
		// Bytes past len(data) fill lanes whose results are not used.
		return guts.CompressBuffer((*[group]byte)(data[:group]), len(data), &guts.IV, 0, 0)
	}
	var tmp [group]byte
	copy(tmp[:], data)
	return guts.CompressBuffer(&tmp, len(data), &guts.IV, 0, 0)
}
