package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// Reason is the system's reason for err ("permission denied"), without
// the operation and path that os and fsroot wrap it in, for messages that
// name the path themselves.
func Reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		return se
	}
	return err
}

// Describe turns a file-system error into a short message naming the path.
func Describe(op, p string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Sprintf("%s %s: no space left on device", op, p)
	}
	if errors.Is(err, ErrEscape) {
		return fmt.Sprintf("%s %s: path escapes the export root (refused)", op, p)
	}
	return fmt.Sprintf("%s %s: %v", op, p, err)
}
