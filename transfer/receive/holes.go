package receive

import (
	"bytes"
	"io"

	"github.com/xfer-io/xfer/transfer/wire"

	"golang.org/x/sys/unix"
)

// writeSmall writes the data of a small file to fd, a new empty file: all
// of it, or for a sparse source only its blocks that are not all zeros,
// leaving holes (the file is then cut to its size), as the chunks of a
// large sparse file are written.
func writeSmall(fd int, sf *wire.SmallFile) error {
	if !sf.Sparse {
		return writeAllAt(fd, sf.Data, -1)
	}
	var zero [sparseBlock]byte
	p := sf.Data
	for i := 0; i < len(p); {
		j := min(i+sparseBlock, len(p))
		if bytes.Equal(p[i:j], zero[:j-i]) {
			i = j
			continue
		}
		// A run of blocks with data, written at once.
		k := j
		for k < len(p) {
			l := min(k+sparseBlock, len(p))
			if bytes.Equal(p[k:l], zero[:l-k]) {
				break
			}
			k = l
		}
		if err := writeAllAt(fd, p[i:k], int64(i)); err != nil {
			return err
		}
		i = k
	}
	return ignoringEINTR(func() error { return unix.Ftruncate(fd, int64(len(p))) })
}

// writeAllAt writes b to fd at off (off < 0: at the file offset).
func writeAllAt(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		var n int
		var err error
		if off < 0 {
			n, err = unix.Write(fd, b)
		} else {
			n, err = unix.Pwrite(fd, b, off)
		}
		if err == unix.EINTR {
			continue
		}
		if err == nil && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return err
		}
		b = b[n:]
		if off >= 0 {
			off += int64(n)
		}
	}
	return nil
}
