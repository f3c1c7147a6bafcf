// Package benchtest holds what benchmarks of several packages share: a
// scratch directory on tmpfs, so that they measure the code and not the
// disk, how they report latencies, pinning a process to CPUs of its own
// (as `taskset -c` does) and reading another process's CPU time.
package benchtest

import (
	"os"
	"slices"
	"testing"
	"time"
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

// ReportLatency reports the median and the 99th percentile of lat (which
// it sorts) as the metrics p50-ns and p99-ns; nothing when lat is empty.
func ReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
