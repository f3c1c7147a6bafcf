package session

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestNetReason: a dial or listen error reads as the system's reason,
// whatever Go wrapped around it; other errors are left alone.
func TestNetReason(t *testing.T) {
	other := errors.New("no route")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"dial", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connection refused"},
		{"listen", &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}, "address already in use"},
		{"wrapped", fmt.Errorf("stream 2: %w", &net.OpError{Op: "dial", Net: "tcp", Err: other}), "no route"},
		{"syscall only", os.NewSyscallError("socket", syscall.EMFILE), "too many open files"},
		{"other", other, "no route"},
	} {
		if got := NetReason(tc.err).Error(); got != tc.want {
			t.Errorf("%s: NetReason(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestNetReasonOfARealListen: the error of listening on a taken port.
func TestNetReasonOfARealListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	if err == nil {
		t.Fatal("second listen on the same port succeeded")
	}
	if got := NetReason(err).Error(); got != "address already in use" {
		t.Errorf("NetReason(%v) = %q", err, got)
	}
}
