// Package memtest measures what code allocates, for tests and fuzz targets
// that bound the memory a hostile input can make a decoder take.
package memtest

import "runtime"

// Allocated runs f and returns the bytes it allocated on the heap (a fuzz
// worker runs one input at a time, so little else allocates meanwhile).
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
