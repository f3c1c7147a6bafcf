package receive

import (
	"context"
	"errors"
	"io"
	"syscall"
)

// ErrChanged fails a source file that was written to while it was read
// (its size, mtime or ctime moved, or another file took its name): what
// was read may mix old and new content, so the destination keeps what it
// had.
var ErrChanged = errors.New("source file changed during transfer; the destination keeps its previous version, and the next run picks it up")

// ReadErr reduces an error of hashtree's reading to what a user reads:
// the system's reason ("input/output error") or the cancellation, without
// the package's "hashtree: read N bytes at offset M" wrapping.
func ReadErr(err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errors.New("interrupted")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return ErrChanged
	}
	return err
}
