// Package fsroottest opens directories as fsroot Roots for tests, closing
// them when the test ends.
package fsroottest

import (
	"testing"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// Open opens dir as a Root, closed when tb ends.
func Open(tb testing.TB, dir string) *fsroot.Root {
	tb.Helper()
	r, err := fsroot.Open(dir)
	if err != nil {
		tb.Fatalf("fsroot.Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// Temp opens a fresh temporary directory as a Root, closed when tb ends,
// and returns it with the directory's path.
func Temp(tb testing.TB) (*fsroot.Root, string) {
	tb.Helper()
	dir := tb.TempDir()
	return Open(tb, dir), dir
}
