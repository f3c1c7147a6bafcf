package backends_test

import (
	"slices"
	"testing"

	"github.com/xfer-io/xfer/backends"
)

// TestPreference checks the one ordered list of transports: every name is
// known, none repeats, tcp (which runs everywhere) comes last, and callers
// get a copy they may change.
func TestPreference(t *testing.T) {
	p := backends.Preference()
	if want := []string{"rdma", "tcp-zc", "uring", "tcp"}; !slices.Equal(p, want) {
		t.Fatalf("Preference() = %v, want %v", p, want)
	}
	for _, n := range p {
		if !backends.Known(n) {
			t.Errorf("%s is in Preference but not Known", n)
		}
	}
	p[0] = "changed"
	if backends.Preference()[0] != "rdma" {
		t.Error("changing the returned slice changed the preference")
	}
}
