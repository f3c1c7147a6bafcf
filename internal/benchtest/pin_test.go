package benchtest

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPUs returns the affinity of every thread of this process.
func threadCPUs(t *testing.T) map[int]unix.CPUSet {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	sets := map[int]unix.CPUSet{}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err == nil {
			sets[tid] = set
		}
	}
	return sets
}

func TestPinFromEnv(t *testing.T) {
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	cpu := -1
	for c := range 1024 {
		if orig.IsSet(c) {
			cpu = c
			break
		}
	}
	t.Cleanup(func() {
		for tid := range threadCPUs(t) {
			unix.SchedSetaffinity(tid, &orig)
		}
		runtime.GOMAXPROCS(procs)
	})
	tests := []struct {
		name, value string
		wantErr     bool
		pinned      bool
	}{
		{"unset", "", false, false},
		{"not a number", "one", true, false},
		{"negative", "-1", true, false},
		{"one CPU", strconv.Itoa(cpu), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XFER_TEST_PIN", tc.value)
			err := PinFromEnv("XFER_TEST_PIN")
			if (err != nil) != tc.wantErr {
				t.Fatalf("PinFromEnv(%q) = %v, want error %v", tc.value, err, tc.wantErr)
			}
			if !tc.pinned {
				return
			}
			if n := runtime.GOMAXPROCS(0); n != 1 {
				t.Errorf("GOMAXPROCS %d after pinning to one CPU", n)
			}
			for tid, set := range threadCPUs(t) {
				if set.Count() != 1 || !set.IsSet(cpu) {
					t.Errorf("thread %d may run on %d CPUs, want only CPU %d", tid, set.Count(), cpu)
				}
			}
		})
	}
	t.Run("unpin", func(t *testing.T) {
		if err := Unpin(); err != nil {
			t.Fatal(err)
		}
		// Every thread may run on at least the CPUs the test started with
		// (more, when it was started under taskset).
		for tid, set := range threadCPUs(t) {
			for c := range len(orig) * 64 {
				if orig.IsSet(c) && !set.IsSet(c) {
					t.Errorf("thread %d may not run on CPU %d after Unpin", tid, c)
				}
			}
		}
		var now unix.CPUSet
		unix.SchedGetaffinity(0, &now)
		if n := runtime.GOMAXPROCS(0); n != now.Count() || n < orig.Count() {
			t.Errorf("GOMAXPROCS %d after Unpin, want the %d CPUs it may run on", n, now.Count())
		}
	})
}

func TestProcCPU(t *testing.T) {
	before := ProcCPU(os.Getpid())
	// Burn at least 50 ms of CPU (10 ms ticks), bounded at 5 s of wall time.
	for start := time.Now(); ProcCPU(os.Getpid())-before < 50_000_000; {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("ProcCPU rose by %d ns in 5 s of spinning", ProcCPU(os.Getpid())-before)
		}
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
	}
	if got := ProcCPU(1 << 30); got != 0 {
		t.Errorf("ProcCPU of no such process = %d, want 0", got)
	}
}
