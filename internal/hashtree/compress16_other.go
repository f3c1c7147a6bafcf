//go:build !amd64 || purego

package hashtree

// have16 reports whether the AVX-512 kernels can run: never here.
func have16() bool { return false }

func compressChunks16(out *[16][8]uint32, in *[16 * 1024]byte, p *params16) {
	panic("hashtree: internal error: no AVX-512 kernel on this platform")
}

func compressParents16(out *[16][8]uint32, in *[32][8]uint32, p *params16) {
	panic("hashtree: internal error: no AVX-512 kernel on this platform")
}
