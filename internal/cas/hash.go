package cas

import "github.com/xfer-io/xfer/internal/hashtree"

// Objects are hashed by internal/hashtree, in pieces of GroupSize: a
// standalone object's outboard file holds the digest of each of its 64 KiB
// groups (hashtree.Stream's outboard), 32 bytes each in order, so that a
// range can be read and verified group by group (hashtree.ChunkDigest) and
// the outboard itself checked against the ID (hashtree.Merger).

const (
	// GroupSize is the granularity of range verification for standalone
	// objects: ReadAt hashes whole 64 KiB groups and checks them against the
	// object's outboard.
	GroupSize = 64 << 10
	cvSize    = 32 // bytes of one group digest (a hashtree.Digest) in an outboard file
)

// Sum returns the ID of b: its BLAKE3-256 digest, identical to b3sum's.
func Sum(b []byte) ID { return ID(hashtree.Sum(b)) }

// newHasher returns a hasher of a stream of GroupSize pieces on the store's
// workers; outboard, if non-nil, receives every group's digest.
func (s *Store) newHasher(outboard func(hashtree.Digest) error) *hashtree.Stream {
	return hashtree.NewStream(GroupSize, s.workers, outboard)
}
