package benchtest

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PinFromEnv pins this process to the CPUs listed in the environment
// variable name ("1" or "0,2"; unset or empty: no change) with PinCPUs.
func PinFromEnv(name string) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	var cpus []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want CPU numbers separated by commas", name, v)
		}
		cpus = append(cpus, n)
	}
	return PinCPUs(cpus)
}

// PinCPUs restricts every thread of this process to cpus (threads created
// later inherit it from their creator) and sets GOMAXPROCS to their count,
// as a process started under `taskset -c` would have.
func PinCPUs(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return pin(&set, fmt.Sprint(cpus))
}

// Unpin lets every thread of this process run on any CPU again (undoing
// an affinity inherited from a pinned parent) and sets GOMAXPROCS to the
// number of CPUs it may now use.
func Unpin() error {
	var set unix.CPUSet
	for c := range len(set) * 64 {
		set.Set(c)
	}
	return pin(&set, "all")
}

// pin restricts every thread to set (what names it in errors) and sets
// GOMAXPROCS to the number of CPUs the process may then run on.
func pin(set *unix.CPUSet, what string) error {
	// A thread not pinned yet may start another meanwhile: pass over the
	// threads until a pass finds none new (a few passes at most).
	pinned := map[int]bool{}
	for range 10 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin to CPUs %s: %w", what, err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pin thread %d to CPUs %s: %w", tid, what, err)
			}
			pinned[tid], fresh = true, true
		}
		if !fresh {
			var got unix.CPUSet
			if err := unix.SchedGetaffinity(0, &got); err != nil {
				return fmt.Errorf("pin to CPUs %s: %w", what, err)
			}
			runtime.GOMAXPROCS(got.Count())
			return nil
		}
	}
	return fmt.Errorf("pin to CPUs %s: threads kept appearing", what)
}

// ProcCPU is the CPU time (user and system) of every thread of process
// pid so far, in nanoseconds, from /proc/PID/stat (clock ticks of 10 ms:
// measure over seconds); 0 when it cannot be read.
func ProcCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * 10_000_000
}
