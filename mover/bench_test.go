package mover_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/benchtest"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/pattern"
	"github.com/xfer-io/xfer/internal/peertest"
	"github.com/xfer-io/xfer/mover"
)

// The benchmarks talk to a daemon in another process, as real clients do:
// this test binary started again with MOVER_BENCH_DAEMON=DIR, serving a
// store in DIR (on /dev/shm when there is one) on DIR/mover.sock.
// MOVER_BENCH_POLL sets the daemon's poll time (default its default).
// MOVER_BENCH_DAEMON_CPU and MOVER_BENCH_CLIENT_CPU pin the daemon and the
// benchmark (client) process to the CPUs listed ("1", "0,2"), as
// `taskset -c` would: scripts/bench-cas.sh gives each a CPU of its own.

func TestMain(m *testing.M) {
	if dir := os.Getenv("MOVER_BENCH_DAEMON"); dir != "" {
		err := benchtest.PinFromEnv("MOVER_BENCH_DAEMON_CPU")
		if os.Getenv("MOVER_BENCH_DAEMON_CPU") == "" && os.Getenv("MOVER_BENCH_CLIENT_CPU") != "" {
			// Not on the pinned client's CPU, which it inherited.
			err = benchtest.Unpin()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(benchDaemon(dir))
	}
	if err := benchtest.PinFromEnv("MOVER_BENCH_CLIENT_CPU"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func benchDaemon(dir string) int {
	store, err := cas.OpenOptions(filepath.Join(dir, "cas"), cas.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := daemon.Config{Store: store, Resolve: peertest.Resolve}
	if p := os.Getenv("MOVER_BENCH_POLL"); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cfg.Poll = d
		if d == 0 {
			cfg.Poll = -1
		}
	}
	srv, err := daemon.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := daemon.Listen(filepath.Join(dir, "mover.sock"), daemon.ListenOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if p := os.Getenv("MOVER_BENCH_PROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Stop when the benchmark process closes our stdin.
		bufio.NewReader(os.Stdin).ReadString('\n')
		cancel()
	}()
	srv.Serve(ctx, ln)
	srv.Close()
	return 0
}

// daemonProcess starts the daemon in another process and returns a client.
// The benchmark's cpu-ns/op counts the CPU time of both processes.
func daemonProcess(b *testing.B, o mover.Options) (*mover.Client, int, string) {
	b.Helper()
	dir := benchtest.Dir(b, "xfer-mover-bench-")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MOVER_BENCH_DAEMON="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		b.Fatalf("daemon did not start: %q", line)
	}
	c, err := mover.DialContext(context.Background(), filepath.Join(dir, "mover.sock"), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, cmd.Process.Pid, filepath.Join(dir, "mover.sock")
}

// startCPU notes the CPU time used so far by this process and the daemon
// pid; the returned func reports the CPU time per op since: cpu-ns/op of
// both processes, client-cpu-ns/op and daemon-cpu-ns/op of each.
func startCPU(b *testing.B, pid int) func() {
	c0, d0 := cpuTime(), benchtest.ProcCPU(pid)
	return func() {
		if b.N > 0 {
			c, d := cpuTime()-c0, benchtest.ProcCPU(pid)-d0
			b.ReportMetric(float64(c+d)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(c)/float64(b.N), "client-cpu-ns/op")
			b.ReportMetric(float64(d)/float64(b.N), "daemon-cpu-ns/op")
		}
	}
}

// clientSpin is mover.Options.Spin for the benchmarks: MOVER_BENCH_SPIN
// (0 or negative: never poll), else the default.
func clientSpin() time.Duration {
	d, err := time.ParseDuration(os.Getenv("MOVER_BENCH_SPIN"))
	if err != nil {
		return 0
	}
	if d <= 0 {
		return -1
	}
	return d
}

// readObjects is writeObjects, each object then read once, so that the
// daemon has verified it (as in a running daemon).
func readObjects(b *testing.B, c *mover.Client, n, size int) []string {
	ids := writeObjects(b, c, n, size)
	for _, id := range ids {
		c.Read(context.Background(), id)
	}
	return ids
}

func writeObjects(b *testing.B, c *mover.Client, n, size int) []string {
	ids := make([]string, n)
	for i := range ids {
		id, err := c.Write(context.Background(), pattern.Bytes(size, uint64(i))[:size-8:size-8])
		if err != nil {
			b.Fatal(err)
		}
		_ = id
		data := pattern.Bytes(size, uint64(i))
		copy(data, strconv.Itoa(i)+"-unique")
		if ids[i], err = c.Write(context.Background(), data); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// measure runs op(0), op(1), ... under b.Loop with the daemon's CPU
// counted (startCPU), and reports the percentiles of the latencies of the
// first keep calls.
func measure(b *testing.B, pid, keep int, op func(i int)) {
	lat := make([]time.Duration, 0, keep)
	defer startCPU(b, pid)()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		op(i)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	benchtest.ReportLatency(b, lat)
}

// cpuTime is the CPU time of this process so far (getrusage), in ns.
func cpuTime() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRead4K is READ of a 4 KiB object over the socket (objects
// already verified once, as in a running daemon).
func BenchmarkRead4K(b *testing.B) {
	c, pid, _ := daemonProcess(b, mover.Options{Spin: clientSpin()})
	ids := readObjects(b, c, 256, 4096)
	ctx := context.Background()
	b.SetBytes(4096)
	measure(b, pid, 1<<16, func(i int) {
		data, err := c.Read(ctx, ids[i%len(ids)])
		if err != nil || len(data) != 4096 {
			b.Fatal(err)
		}
	})
}

// BenchmarkReadMapped4K is the same READ through the mapped zero-copy path:
// after the first read of an object its location is known, and a read is a
// lookup and a slice of the mapping.
func BenchmarkReadMapped4K(b *testing.B) {
	c, pid, _ := daemonProcess(b, mover.Options{Spin: clientSpin()})
	ids := writeObjects(b, c, 256, 4096)
	ctx := context.Background()
	for _, id := range ids {
		if _, err := c.ReadMapped(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(4096)
	var sink byte
	measure(b, pid, 1<<16, func(i int) {
		data, err := c.ReadMapped(ctx, ids[i%len(ids)])
		if err != nil || len(data) != 4096 {
			b.Fatal(err)
		}
		sink ^= data[i%4096]
	})
	_ = sink
}

// BenchmarkReadMapped4KFirst is a mapped READ of an object not read before:
// one request for its location (the daemon verifies it), no bytes through
// the socket.
func BenchmarkReadMapped4KFirst(b *testing.B) {
	c, pid, _ := daemonProcess(b, mover.Options{Spin: clientSpin(), MapCache: 1})
	ids := readObjects(b, c, 256, 4096)
	ctx := context.Background()
	b.SetBytes(4096)
	measure(b, pid, 1<<16, func(i int) {
		if _, err := c.ReadMapped(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkBatch100x4K is one BATCH of 100 READs of 4 KiB objects (into a
// reused buffer, as a client sending batch after batch does).
func BenchmarkBatch100x4K(b *testing.B) {
	c, pid, _ := daemonProcess(b, mover.Options{Spin: clientSpin()})
	ids := readObjects(b, c, 1024, 4096)
	ctx := context.Background()
	// Batch i reads ids[(i*100+k*13)%1024], k < 100: the batches repeat
	// after 256 (100*256 is a multiple of 1024), so they are built before
	// the clock starts.
	batches := make([][]mover.Request, 256)
	for i := range batches {
		batches[i] = make([]mover.Request, 100)
		for k := range batches[i] {
			batches[i][k] = mover.Request{Op: mover.OpRead, ID: ids[(i*100+k*13)%len(ids)]}
		}
	}
	buf := make([]byte, 0, 100*(4096+5))
	b.SetBytes(100 * 4096)
	measure(b, pid, 1<<14, func(i int) {
		resps, err := c.BatchInto(ctx, buf, batches[i%len(batches)])
		if err != nil || len(resps) != 100 || len(resps[99].Data) != 4096 {
			b.Fatal(err)
		}
	})
}

// BenchmarkWrite1M is WRITE of 1 MiB of new content, synced.
func BenchmarkWrite1M(b *testing.B) {
	c, pid, _ := daemonProcess(b, mover.Options{Spin: clientSpin()})
	ctx := context.Background()
	data := pattern.Bytes(1<<20, 1)
	b.SetBytes(int64(len(data)))
	measure(b, pid, 1<<14, func(i int) {
		copy(data, strconv.Itoa(i+1)+"/") // new content each time
		if _, err := c.Write(ctx, data); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRead4KRaw is BenchmarkRead4K with a client of raw blocking
// syscalls, to tell the daemon's share of the latency from the client's.
func BenchmarkRead4KRaw(b *testing.B) {
	c, pid, sock := daemonProcess(b, mover.Options{})
	ids := readObjects(b, c, 256, 4096)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		b.Fatal(err)
	}
	reqs := make([][]byte, len(ids))
	for i, id := range ids {
		reqs[i], _ = mover.AppendRequest(nil, &mover.Request{Op: mover.OpRead, ID: id})
	}
	resp := make([]byte, 4096+5)
	measure(b, pid, 1<<16, func(i int) {
		unix.Write(fd, reqs[i%len(reqs)])
		for n := 0; n < len(resp); {
			k, err := unix.Read(fd, resp[n:])
			if err != nil || k == 0 {
				b.Fatal(err)
			}
			n += k
		}
	})
}
