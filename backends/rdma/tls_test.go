//go:build rdma && cgo

package rdma

import "testing"

func TestAllowedTLS(t *testing.T) {
	all := []string{"cma", "knem", "xpmem"}
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
		if got := allowedTLS(tc.in, all); got != tc.want {
			t.Errorf("allowedTLS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestAllowedTLSNamesOnlyPresent: on a host without knem and xpmem (as most
// are), the exclusion names cma alone, since UCX warns, on every context,
// about a negated transport it does not have.
func TestAllowedTLSNamesOnlyPresent(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "^cma"},
		{"^ud", "^ud,cma"},
		{"^ud,knem", "^ud,cma"},
		{"posix,sysv,cma,knem,self", "posix,sysv,self"},
	} {
		if got := allowedTLS(tc.in, []string{"cma"}); got != tc.want {
			t.Errorf("allowedTLS(%q, [cma]) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := presentSingleCopy()
	if len(got) == 0 || got[0] != "cma" {
		t.Errorf("presentSingleCopy() = %v, want cma first", got)
	}
}
