package cas

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/benchtest"
)

// Benchmarks run on tmpfs (/dev/shm) when available, so they measure the
// store rather than the disk. XFER_CAS_BENCH_SIZE overrides the 256 MiB of
// BenchmarkPutFile and BenchmarkB3sum.

func benchDir(b *testing.B) string {
	b.Helper()
	parent := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "xfer-cas-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cpuMeter reports the CPU time (user+sys, all threads) per op: on a shared
// machine it is steadier than wall time.
type cpuMeter struct {
	b    *testing.B
	t0   int64
	kids int64 // CPU time of child processes, added by the benchmark
}

func processCPU() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func startCPU(b *testing.B) *cpuMeter { return &cpuMeter{b: b, t0: processCPU()} }

func (m *cpuMeter) stop() {
	if m.b.N > 0 {
		m.b.ReportMetric(float64(processCPU()-m.t0+m.kids)/float64(m.b.N), "cpu-ns/op")
	}
}

func benchSmallStore(b *testing.B, n int, opts Options) (*Store, []ID) {
	s := openTest(b, benchDir(b), opts)
	ids := make([]ID, n)
	for i := range ids {
		id, err := s.PutBytes(context.Background(), randBytes(uint64(i), 4096))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	return s, ids
}

// BenchmarkGet4K is the daemon's READ: a verified ReadAt of a whole 4 KiB
// packed object.
func BenchmarkGet4K(b *testing.B) { benchGet4K(b, Options{}) }

// BenchmarkGet4KCached is BenchmarkGet4K with Options.VerifiedCache: each
// object is hashed on its first read only.
func BenchmarkGet4KCached(b *testing.B) { benchGet4K(b, Options{VerifiedCache: 1 << 16}) }

func benchGet4K(b *testing.B, opts Options) {
	s, ids := benchSmallStore(b, 1024, opts)
	ctx := context.Background()
	p := make([]byte, 4096)
	lat := make([]time.Duration, 0, 1<<16)
	b.SetBytes(4096)
	i := 0
	cpu := startCPU(b)
	defer cpu.stop()
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.ReadAt(ctx, ids[i%len(ids)], p, 0); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	benchtest.ReportLatency(b, lat)
}

func BenchmarkGet4KParallel(b *testing.B) {
	s, ids := benchSmallStore(b, 1024, Options{})
	ctx := context.Background()
	b.SetBytes(4096)
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 4096)
		i := 0
		for pb.Next() {
			if _, err := s.ReadAt(ctx, ids[i%len(ids)], p, 0); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}

// BenchmarkBatch100x4K is the daemon's BATCH of 100 4 KiB READs, verified,
// one after the other.
func BenchmarkBatch100x4K(b *testing.B) { benchBatch(b, Options{}) }

// BenchmarkBatch100x4KCached is BenchmarkBatch100x4K with VerifiedCache.
func BenchmarkBatch100x4KCached(b *testing.B) { benchBatch(b, Options{VerifiedCache: 1 << 16}) }

func benchBatch(b *testing.B, opts Options) {
	s, ids := benchSmallStore(b, 1024, opts)
	ctx := context.Background()
	p := make([]byte, 100*4096)
	b.SetBytes(100 * 4096)
	i := 0
	cpu := startCPU(b)
	defer cpu.stop()
	for b.Loop() {
		for k := range 100 {
			if _, err := s.ReadAt(ctx, ids[(i+k*13)%len(ids)], p[k*4096:(k+1)*4096], 0); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
}

// BenchmarkPut1M is the daemon's WRITE of 1 MiB: new content every time,
// synced (fdatasync is nearly free on tmpfs).
func BenchmarkPut1M(b *testing.B) {
	s := openTest(b, benchDir(b), Options{})
	ctx := context.Background()
	data := randBytes(1, 1<<20)
	lat := make([]time.Duration, 0, 4096)
	b.SetBytes(int64(len(data)))
	var i uint64
	cpu := startCPU(b)
	defer cpu.stop()
	for b.Loop() {
		i++
		binary.LittleEndian.PutUint64(data, i)
		t0 := time.Now()
		if _, err := s.PutBytes(ctx, data); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	benchtest.ReportLatency(b, lat)
}

func benchFileSize() int64 {
	if n, err := strconv.ParseInt(os.Getenv("XFER_CAS_BENCH_SIZE"), 10, 64); err == nil && n > 0 {
		return n
	}
	return 256 << 20
}

func benchSource(b *testing.B, dir string) string {
	path := filepath.Join(dir, "src")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := randBytes(9, 8<<20)
	for n := benchFileSize(); n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), n)]); err != nil {
			b.Fatal(err)
		}
		chunk[0]++
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkPutFile puts a 256 MiB file (new content each time) from tmpfs
// into a store on tmpfs.
func BenchmarkPutFile(b *testing.B) {
	dir := benchDir(b)
	src := benchSource(b, dir)
	s := openTest(b, filepath.Join(dir, "store"), Options{})
	ctx := context.Background()
	f, err := os.OpenFile(src, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(benchFileSize())
	var i uint64
	cpu := startCPU(b)
	defer cpu.stop()
	for b.Loop() {
		i++
		var stamp [8]byte
		binary.LittleEndian.PutUint64(stamp[:], i)
		if _, err := f.WriteAt(stamp[:], 0); err != nil {
			b.Fatal(err)
		}
		id, _, err := s.PutFile(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkGetLarge streams a 256 MiB standalone object, verified, to
// io.Discard.
func BenchmarkGetLarge(b *testing.B) {
	dir := benchDir(b)
	src := benchSource(b, dir)
	s := openTest(b, filepath.Join(dir, "store"), Options{})
	ctx := context.Background()
	id, n, err := s.PutFile(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	cpu := startCPU(b)
	defer cpu.stop()
	for b.Loop() {
		if _, err := s.Get(ctx, id, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkB3sum is the reference: b3sum --num-threads 1 on the same file.
func BenchmarkB3sum(b *testing.B) {
	b3, err := exec.LookPath("b3sum")
	if err != nil {
		b.Skip("b3sum not installed")
	}
	src := benchSource(b, benchDir(b))
	b.SetBytes(benchFileSize())
	cpu := startCPU(b)
	defer cpu.stop()
	for b.Loop() {
		cmd := exec.Command(b3, "--num-threads", "1", src)
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		cpu.kids += cmd.ProcessState.UserTime().Nanoseconds() + cmd.ProcessState.SystemTime().Nanoseconds()
	}
}
