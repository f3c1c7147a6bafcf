package e2e

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultProxy forwards connections to a server and damages the client to
// server byte stream in one of several ways.
type faultProxy struct {
	ln   net.Listener
	mode string
	rng  *rand.Rand
	mu   sync.Mutex
}

func startProxy(t *testing.T, target, mode string, seed int64) *faultProxy {
	t.Helper()
	p := &faultProxy{mode: mode, rng: rand.New(rand.NewSource(seed))}
	p.ln = relay(t, target, p.pump)
	return p
}

func (p *faultProxy) intn(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Intn(n)
}

// pump copies client -> server, applying the fault.
func (p *faultProxy) pump(c, s net.Conn) {
	defer s.Close()
	buf := make([]byte, 32<<10)
	sent := 0
	limit := 1<<20 + p.intn(8<<20)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			b := buf[:n]
			switch p.mode {
			case "delay":
				time.Sleep(time.Duration(p.intn(3)) * time.Millisecond)
			case "corrupt":
				if sent > 4096 && p.intn(40) == 0 {
					b[p.intn(n)] ^= 0x20
				}
			case "drop":
				if sent+n > limit {
					c.Close()
					return
				}
			case "truncate":
				if sent+n > limit {
					// Stop forwarding but keep both ends open: only
					// timeouts can end this.
					io.Copy(io.Discard, c)
					return
				}
			}
			if _, werr := s.Write(b); werr != nil {
				c.Close()
				return
			}
			sent += n
		}
		if err != nil {
			return
		}
	}
}

// TestFaultInjection drives real serve/copy processes through a proxy that
// delays, drops, truncates and corrupts the byte stream: whatever happens,
// no damaged file appears under a final name, nothing hangs, and a clean
// rerun completes.
func TestFaultInjection(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 24<<20, 31)
	for i := 0; i < 40; i++ {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("small/%02d", i)), int64(100+i*997), uint64(i))
	}
	for _, mode := range []string{"delay", "drop", "truncate", "corrupt"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			s := startServer(t, root)
			rounds := 3
			if n := os.Getenv("XFER_FAULT_ROUNDS"); n != "" {
				fmt.Sscan(n, &rounds)
			}
			for round := 0; round < rounds; round++ {
				p := startProxy(t, s.addr, mode, time.Now().UnixNano()+int64(round))
				start := time.Now()
				r := xfer(t, "copy", src, "xfer://"+p.ln.Addr().String()+"/dst", "--chunk-size", "1M",
					"--timeout", "3s", "--connect-timeout", "3s", "--retries", "0")
				if d := time.Since(start); d > 60*time.Second {
					t.Errorf("round %d took %s", round, d)
				}
				switch {
				case mode == "delay" && r.code != 0:
					t.Errorf("round %d: a slow link must still work: %s", round, r)
				case r.code != 0 && r.code != 1 && r.code != 3:
					t.Errorf("round %d: exit %d", round, r.code)
				}
				if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
					t.Fatalf("round %d: crash\n%s", round, r)
				}
				checkNoDamage(t, src, filepath.Join(root, "dst"))
			}
			if !s.alive() {
				t.Fatalf("server died:\n%s", s.logs)
			}
			if r := xfer(t, "copy", src, s.url("dst")); r.code != 0 {
				t.Fatalf("clean rerun: %s", r)
			}
			sameTree(t, src, filepath.Join(root, "dst"))
		})
	}
}

// checkNoDamage: every regular file at dst (hidden partial files aside) is
// identical to its source.
func checkNoDamage(t *testing.T, src, dst string) {
	t.Helper()
	filepath.Walk(dst, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() || strings.HasPrefix(info.Name(), ".xfer-") {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		want, _ := os.ReadFile(filepath.Join(src, rel))
		got, _ := os.ReadFile(p)
		if string(want) != string(got) {
			t.Errorf("%s under its final name differs from the source", rel)
		}
		return nil
	})
}

// TestLoad: 64 concurrent clients each sync 100 files to one server; all
// complete and verify, and the server's memory stays bounded.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	src := t.TempDir()
	for i := 0; i < 100; i++ {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("d%d/f%03d", i%10, i)), int64(1000+i*80), uint64(i))
	}
	root := t.TempDir()
	s := startServer(t, root, "--max-sessions-per-client", "128", "--no-fsync")
	const clients = 64
	var wg sync.WaitGroup
	results := make([]result, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = xfer(t, "sync", src, s.url(fmt.Sprintf("c%02d", i)), "--streams", "2", "-q")
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("client %d: %s", i, r)
		}
	}
	for i := 0; i < clients; i++ {
		sameTree(t, src, filepath.Join(root, fmt.Sprintf("c%02d", i)))
	}
	hwm := vmHWM(t, s.cmd.Process.Pid)
	t.Logf("server peak RSS after %d concurrent clients: %d MiB", clients, hwm>>20)
	if hwm > 400<<20 {
		t.Errorf("server peak RSS %d MiB", hwm>>20)
	}
}

func vmHWM(t *testing.T, pid int) int64 {
	hwm, err := readHWM(pid)
	must(t, err)
	return hwm
}

// readHWM is the peak resident memory of process pid so far (VmHWM), in
// bytes.
func readHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int64
			_, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, "VmHWM:"), "kB")), &kb)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("process %d: no VmHWM", pid)
}

// TestSourceChangesDuringTransfer: a file whose mtime keeps changing while
// it is read is reported, and nothing lands under its final name.
func TestSourceChangesDuringTransfer(t *testing.T) {
	src := t.TempDir()
	f := filepath.Join(src, "live.bin")
	writeRandom(t, f, 64<<20, 41)
	dst := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		base := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ts := base.Add(time.Duration(i) * time.Millisecond)
			os.Chtimes(f, ts, ts)
			time.Sleep(time.Millisecond)
		}
	}()
	r := xfer(t, "copy", src, filepath.Join(dst, "d"), "--chunk-size", "1M")
	close(stop)
	wg.Wait()
	if r.code != 1 || !strings.Contains(r.stderr, "changed during transfer") {
		t.Errorf("want exit 1 and a changed-during-transfer error: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dst, "d/live.bin")); err == nil {
		t.Error("a file that changed while it was read stands under its final name")
	}
	if r := xfer(t, "copy", src, filepath.Join(dst, "d")); r.code != 0 {
		t.Errorf("rerun once the file is quiet: %s", r)
	}
}

// TestPermissionDenied: a server running as an unprivileged user whose
// root it may not write reports permission denied by file, exit 1, and
// leaves nothing behind.
func TestPermissionDenied(t *testing.T) {
	u := asNobody(t) // skips unless root
	root, err := os.MkdirTemp("", "xfer-e2e-ro-")
	must(t, err)
	defer os.RemoveAll(root)
	must(t, os.Chmod(root, 0o755)) // owned by root: not writable by nobody
	s := u.serve(t, root)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	r := xfer(t, "copy", filepath.Join(src, "f"), s.url(""))
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied") || !strings.Contains(r.stderr, "f") {
		t.Errorf("want exit 1 with permission denied naming the file: %s", r)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestFutureMtimes: mtimes are copied, never compared with a clock, so a
// source whose clock runs ahead (or a file from the future) round-trips
// and the next sync moves nothing.
func TestFutureMtimes(t *testing.T) {
	src := t.TempDir()
	f := filepath.Join(src, "from-the-future")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	future := time.Now().Add(10 * 365 * 24 * time.Hour)
	must(t, os.Chtimes(f, future, future))
	s := startServer(t, t.TempDir())
	for i := 0; i < 2; i++ {
		r := xfer(t, "sync", src, s.url("d"), "--json")
		_, sum := jsonRun(t, r)
		if r.code != 0 || (i == 1 && sum.FilesTransferred != 0) {
			t.Errorf("run %d: %s", i, r)
		}
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
}
