//go:build rdma && cgo

package rdma

import "testing"

func TestAllowedTLS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "^cma,knem,xpmem"},
		{"all", "^cma,knem,xpmem"},
		{"tcp", "tcp"},
		{"posix,sysv,cma,self", "posix,sysv,self"},
		{"shm,self", "posix,sysv,self"},
		{"sm,posix,tcp", "posix,sysv,tcp"},
		{"rc,cma", "rc"},
		{"^ud", "^ud,cma,knem,xpmem"},
		{"^", "^cma,knem,xpmem"},
		{"cma", "self"},
		{" tcp , self ", "tcp,self"},
	} {
		if got := allowedTLS(tc.in); got != tc.want {
			t.Errorf("allowedTLS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
