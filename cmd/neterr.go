package cmd

import (
	"errors"
	"net"
	"os"
)

// netErrText is what a user needs of a listen or dial error: the system's
// reason ("address already in use"), without Go's "listen tcp ADDR: bind:".
func netErrText(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	return err
}
