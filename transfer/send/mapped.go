package send

import (
	"errors"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// mappedChunk maps n bytes of f at off read-only, so a chunk can be hashed
// (and, for in-process destinations, written) without copying it into a
// buffer first; a network destination then gets it with SendFile, straight
// from the page cache. ok is false where mapping does not apply (empty or
// unaligned chunks, file systems without mmap): callers fall back to pread.
func mappedChunk(f *os.File, off, n int64) (data []byte, unmap func(), ok bool) {
	if n <= 0 || off%int64(os.Getpagesize()) != 0 {
		return nil, nil, false
	}
	b, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, false
	}
	unix.Madvise(b, unix.MADV_SEQUENTIAL)
	return b, func() { unix.Munmap(b) }, true
}

// errFault reports that a mapped source file shrank under us (SIGBUS).
var errFault = errors.New("source file shrank while it was read")

// guarded runs fn, which reads mapped memory, turning a fault from a file
// truncated meanwhile into errFault instead of a crash.
func guarded(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = errFault
		}
	}()
	fn()
	return nil
}
