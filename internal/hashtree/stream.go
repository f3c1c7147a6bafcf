package hashtree

import (
	"fmt"
	"sync"

	"lukechampine.com/blake3/guts"
)

// Stream hashes an input that arrives in order, in runs of whole pieces of
// one power-of-two size (the run that ends the input may end with a shorter
// piece), hashing the pieces of each run on several goroutines. Every piece
// is one node of the input's BLAKE3 tree, so its digest (ChunkDigest with the
// piece size as chunk size) can be kept as an outboard, to verify any piece
// later on its own. Memory is O(log n) whatever the input's length. A Stream
// is not safe for concurrent use.
type Stream struct {
	pieceSize int
	workers   int
	outboard  func(Digest) error

	m          merger
	pending    guts.Node // the last piece added, folded into m once another follows
	hasPending bool
	ended      bool  // a short piece was added: it must be the last
	n          int64 // bytes added
	err        error // the first error outboard returned
}

// NewStream returns a Stream cutting its input into pieces of pieceSize
// bytes (see ValidChunkSize) and hashing each run on up to workers
// goroutines (at least one). If outboard is non-nil it receives the digest
// of every piece, in order, as soon as the piece is known not to be the
// whole input; an input of a single piece sends none (its hash verifies
// it). NewStream panics if pieceSize is invalid.
func NewStream(pieceSize int64, workers int, outboard func(Digest) error) *Stream {
	if err := ValidChunkSize(pieceSize); err != nil {
		panic(fmt.Sprintf("hashtree: NewStream: %v", err))
	}
	return &Stream{pieceSize: int(pieceSize), workers: max(1, workers), outboard: outboard}
}

// Add hashes b, the input's next bytes: a whole number of pieces unless b
// ends the input. It returns the first error outboard returned, now or
// before. Add panics if bytes follow a short piece.
func (s *Stream) Add(b []byte) error {
	p := s.pieceSize
	np := (len(b) + p - 1) / p
	if np == 0 {
		return s.err
	}
	if s.ended {
		panic("hashtree: Stream.Add after a short piece")
	}
	first := s.m.n // index of the first new piece
	if s.hasPending {
		first++
	}
	chunksPer := uint64(p / guts.ChunkSize)
	nodes := make([]guts.Node, np)
	hashRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			nodes[i] = node(b[i*p:min((i+1)*p, len(b))], (first+uint64(i))*chunksPer)
		}
	}
	if workers := min(s.workers, np); workers == 1 {
		hashRange(0, np)
	} else {
		var wg sync.WaitGroup
		per := (np + workers - 1) / workers
		for lo := 0; lo < np; lo += per {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				hashRange(lo, hi)
			}(lo, min(lo+per, np))
		}
		wg.Wait()
	}
	for _, n := range nodes {
		if s.hasPending {
			s.push(guts.ChainingValue(s.pending))
		}
		s.pending, s.hasPending = n, true
	}
	s.n += int64(len(b))
	s.ended = len(b)%p != 0
	return s.err
}

// push folds the digest of a piece that is not the last into the tree.
func (s *Stream) push(cv [8]uint32) {
	if s.outboard != nil && s.err == nil {
		s.err = s.outboard(cvDigest(cv))
	}
	s.m.push(cv)
}

// Len returns the number of bytes added.
func (s *Stream) Len() int64 { return s.n }

// Sum ends the input and returns its BLAKE3 hash (as b3sum prints it), with
// the first error outboard returned, having sent it the last piece's digest.
// Call it once.
func (s *Stream) Sum() (Digest, error) {
	if !s.hasPending {
		return rootDigest(node(nil, 0)), s.err
	}
	if s.m.n > 0 && s.outboard != nil && s.err == nil {
		s.err = s.outboard(cvDigest(guts.ChainingValue(s.pending)))
	}
	return rootDigest(s.m.rootNode(s.pending)), s.err
}

// Merger folds the digests of an input's consecutive pieces of one
// power-of-two size, given in order (an outboard read back), into the
// input's hash, holding one digest per level of the tree: memory is
// O(log n) however many pieces there are. The zero value is ready to use.
type Merger struct {
	m merger
}

// Push adds the digest of the next piece, which is not the last.
func (m *Merger) Push(d Digest) { m.m.push(digestCV(d)) }

// Root returns the hash of the input whose last piece has digest last;
// with nothing pushed, last is the digest of the whole input and is
// returned as it is.
func (m *Merger) Root(last Digest) Digest {
	if m.m.n == 0 {
		return last
	}
	return m.m.root(digestCV(last))
}
