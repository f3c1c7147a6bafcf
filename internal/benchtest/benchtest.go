// Package benchtest holds what benchmarks of several packages share: a
// scratch directory on tmpfs, so that they measure the code and not the
// disk.
package benchtest

import (
	"os"
	"testing"
)

// Dir makes a scratch directory named PREFIX* under /dev/shm when the
// machine has one (else under the default temporary directory) and
// removes it when tb ends.
func Dir(tb testing.TB, prefix string) string {
	tb.Helper()
	parent := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		tb.Fatalf("benchmark directory: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
