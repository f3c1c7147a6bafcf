// Package pattern makes deterministic bytes that do not compress, for the
// payloads of benchmarks and the contents of test files and objects: the
// same length and seed give the same bytes on every machine and run, and
// different seeds give different bytes.
package pattern

// Bytes returns n bytes of the pattern of seed.
func Bytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	Fill(b, seed)
	return b
}

// Fill overwrites b with the first len(b) bytes of the pattern of seed.
func Fill(b []byte, seed uint64) {
	s := NewStream(seed)
	s.Read(b)
}

// Stream is the pattern of a seed as an endless reader, for contents too
// large to hold at once: its first n bytes are Bytes(n, seed).
type Stream struct {
	x uint64 // the xorshift64 state
}

// NewStream starts the pattern of seed: a xorshift64 sequence whose state
// starts from seed spread by the golden ratio (never zero, which xorshift
// would keep), one byte a step.
func NewStream(seed uint64) *Stream {
	return &Stream{x: (seed+1)*0x9E3779B97F4A7C15 | 1}
}

// Read fills b with the next len(b) bytes of the pattern; it never fails.
func (s *Stream) Read(b []byte) (int, error) {
	x := s.x
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	s.x = x
	return len(b), nil
}
