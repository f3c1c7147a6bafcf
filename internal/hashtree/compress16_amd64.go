//go:build amd64 && !purego

package hashtree

import "golang.org/x/sys/cpu"

//go:generate go run gen16.go

// have16 reports whether the AVX-512 kernels of compress16_amd64.s can run.
func have16() bool { return cpu.X86.HasAVX512F }

// compressChunks16 sets out[i] to the chaining value of the BLAKE3 chunk
// in[1024*i:1024*(i+1)], compressed with p's key, the counter of lane i and
// the flags p.flags[j] for its block j.
//
//go:noescape
func compressChunks16(out *[16][8]uint32, in *[16 * 1024]byte, p *params16)

// compressParents16 sets out[i] to the chaining value of the parent of
// in[2*i] and in[2*i+1], compressed with p's key, counters and p.flags[0].
// out may overlap in.
//
//go:noescape
func compressParents16(out *[16][8]uint32, in *[32][8]uint32, p *params16)
