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
	data = data[:len(data):len(data)] // a chunk's neighbours may be another goroutine's
	if off == 0 && int64(len(data)) == fileSize {
		return rootDigest(node(data, 0))
	}
	return pieceDigest(data, off)
}

// pieceDigest returns the chaining value of a piece that is not the whole
// input; data is either a full piece (a power-of-two size at a multiple of
// it) or the input's last piece.
func pieceDigest(data []byte, off int64) Digest {
	return cvDigest(guts.ChainingValue(node(data, uint64(off)/guts.ChunkSize)))
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
	var m Merger
	for _, d := range chunks[:len(chunks)-1] {
		m.Push(d)
	}
	return m.Root(chunks[len(chunks)-1])
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
// split into subtrees hashed on up to GOMAXPROCS goroutines. Sum may read,
// but never uses, bytes of data's capacity past its length.
func Sum(data []byte) Digest {
	if len(data) <= sumSerialMax {
		return rootDigest(node(data, 0)) // without asking the scheduler
	}
	return SumWorkers(data, runtime.GOMAXPROCS(0))
}

// SumWorkers is Sum on at most workers goroutines; with workers <= 1 it
// hashes on the calling goroutine only.
func SumWorkers(data []byte, workers int) Digest {
	if len(data) <= sumSerialMax || workers <= 1 {
		return rootDigest(node(data, 0))
	}
	size := int64(len(data))
	p := pieceSize(size, workers, DefaultChunkSize)
	k := NumChunks(size, p)
	cvs := make([]Digest, k)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(int64(workers), k) {
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
