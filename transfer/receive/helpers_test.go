package receive

import (
	"testing"

	"github.com/xfer-io/xfer/internal/fsroot"
)

func openRoot(t *testing.T) *fsroot.Root {
	t.Helper()
	r, err := fsroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
