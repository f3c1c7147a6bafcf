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

// Fill overwrites b with the pattern of seed: a xorshift64 sequence whose
// state starts from seed spread by the golden ratio (never zero, which
// xorshift would keep).
func Fill(b []byte, seed uint64) {
	x := (seed+1)*0x9E3779B97F4A7C15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}
