package cas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests in this file run the test binary itself as child processes
// (TestHelperProcess, selected by XFER_CAS_HELPER) that use a store for real
// and are killed with SIGKILL or run concurrently.

const helperEnv = "XFER_CAS_HELPER"

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("run only as a child process")
	}
	dir := os.Getenv("XFER_CAS_DIR")
	var err error
	switch mode {
	case "crash":
		err = helperCrash(dir)
	case "worker":
		err = helperWorker(dir)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

// crashContent is the content the crash child puts for seed: a mix of
// packed and standalone sizes.
func crashContent(seed int) []byte {
	sizes := []int{4096, 100 << 10, MaxPacked, MaxPacked + 1, 2<<20 + 333, 17}
	return randBytes(uint64(seed)+1000, sizes[seed%len(sizes)])
}

// helperCrash puts crashContent(seed) for seed = XFER_CAS_START... and
// prints "ok SEED" after each; with XFER_CAS_DIE_AT it prints "dying" and
// hangs (to be killed) the XFER_CAS_DIE_N-th time that point is reached.
func helperCrash(dir string) error {
	s, err := OpenOptions(dir, Options{PackSize: 256 << 10})
	if err != nil {
		return err
	}
	point, nth, seen := os.Getenv("XFER_CAS_DIE_AT"), envInt("XFER_CAS_DIE_N"), 0
	out := bufio.NewWriter(os.Stdout)
	s.hook = func(p string) {
		if p == point {
			if seen++; seen == nth {
				fmt.Fprintf(out, "dying %s\n", p)
				out.Flush()
				time.Sleep(time.Hour)
			}
		}
	}
	ctx := context.Background()
	start := envInt("XFER_CAS_START")
	for seed := start; seed < start+200; seed++ {
		b := crashContent(seed)
		var id ID
		switch seed % 3 {
		case 0:
			id, err = s.PutBytes(ctx, b)
		case 1:
			id, _, err = s.Put(ctx, bytes.NewReader(b))
		case 2:
			src := filepath.Join(os.Getenv("XFER_CAS_SRC"), "src")
			if err := os.WriteFile(src, b, 0o644); err != nil {
				return err
			}
			id, _, err = s.PutFile(ctx, src)
		}
		if err != nil {
			return err
		}
		if id != Sum(b) {
			return fmt.Errorf("seed %d: id %s", seed, id)
		}
		fmt.Fprintf(out, "ok %d\n", seed)
		out.Flush()
	}
	return s.Close()
}

type child struct {
	cmd   *exec.Cmd
	lines chan string
	errb  *bytes.Buffer
}

func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1000), errb: &bytes.Buffer{}}
	cmd.Stderr = c.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

// TestCrashSafety kills a child with SIGKILL at each step of a packed and a
// standalone put (and at random moments), twice in a row on the same store,
// then checks that the store opens, that every completed put is intact,
// that the interrupted put is either absent or complete, and that nothing
// partial is visible.
func TestCrashSafety(t *testing.T) {
	tests := []struct {
		point   string
		nth     int
		visible bool // whether the interrupted put is complete at that point
		randomK int  // else: kill after this many completed puts, at a random moment
	}{
		{point: "pack-written", nth: 3},
		{point: "pack-synced", nth: 2},
		{point: "packed-indexed", nth: 4, visible: true},
		{point: "large-written", nth: 1},
		{point: "outboard-linked", nth: 2},
		{point: "large-linked", nth: 1, visible: true},
		{randomK: 2},
		{randomK: 7},
	}
	for _, tt := range tests {
		name := tt.point
		if name == "" {
			name = fmt.Sprintf("random-after-%d", tt.randomK)
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			var done, interrupted []int
			for round, start := range []int{0, 100} {
				env := []string{helperEnv + "=crash", "XFER_CAS_DIR=" + dir, "XFER_CAS_SRC=" + t.TempDir(), "XFER_CAS_START=" + strconv.Itoa(start)}
				if tt.point != "" {
					env = append(env, "XFER_CAS_DIE_AT="+tt.point, "XFER_CAS_DIE_N="+strconv.Itoa(tt.nth))
				}
				c := startChild(t, env...)
				last, died := start-1, false
				timeout := time.After(30 * time.Second)
			read:
				for {
					select {
					case line, ok := <-c.lines:
						if !ok {
							break read
						}
						if strings.HasPrefix(line, "dying ") {
							died = true
							break read
						}
						var seed int
						if _, err := fmt.Sscanf(line, "ok %d", &seed); err == nil {
							done = append(done, seed)
							last = seed
							if tt.randomK > 0 && seed-start+1 >= tt.randomK {
								time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
								died = true
								break read
							}
						}
					case <-timeout:
						c.cmd.Process.Kill()
						t.Fatalf("round %d: child made no progress; stderr: %s", round, c.errb)
					}
				}
				if !died {
					c.cmd.Wait()
					t.Fatalf("round %d: child exited early; stderr: %s", round, c.errb)
				}
				if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				// Puts that completed between the last line read and the
				// kill were still reported on the pipe.
				for line := range c.lines {
					var seed int
					if _, err := fmt.Sscanf(line, "ok %d", &seed); err == nil {
						done = append(done, seed)
						last = seed
					}
				}
				c.cmd.Wait()
				interrupted = append(interrupted, last+1)
				checkAfterCrash(t, dir, done, interrupted, tt.point != "", tt.visible)
			}
		})
	}
}

// checkAfterCrash checks the store after a kill: done are the seeds whose
// put completed, interrupted those being put at each kill (the last one now).
func checkAfterCrash(t *testing.T, dir string, done, interrupted []int, exact, visible bool) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenOptions(dir, Options{PackSize: 256 << 10})
	if err != nil {
		t.Fatalf("Open after kill -9: %v", err)
	}
	defer s.Close()
	known := map[ID]int{}
	for _, seed := range append(done, interrupted...) {
		known[Sum(crashContent(seed))] = seed
	}
	for _, seed := range done {
		b := crashContent(seed)
		var out bytes.Buffer
		if _, err := s.Get(ctx, Sum(b), &out); err != nil || !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("completed put of seed %d lost after kill -9: %v", seed, err)
		}
	}
	last := interrupted[len(interrupted)-1]
	has, err := s.Has(Sum(crashContent(last)))
	if err != nil {
		t.Fatal(err)
	}
	if exact && has != visible {
		t.Fatalf("interrupted put of seed %d: visible=%v, want %v", last, has, visible)
	}
	// Everything visible is complete and intact.
	err = s.List(ctx, func(id ID, size int64) error {
		seed, ok := known[id]
		if !ok {
			return fmt.Errorf("unknown object %s (%d bytes) listed", id, size)
		}
		var out bytes.Buffer
		if _, err := s.Get(ctx, id, &out); err != nil || !bytes.Equal(out.Bytes(), crashContent(seed)) {
			return fmt.Errorf("listed object of seed %d unreadable: %v", seed, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, corrupt, err := s.Verify(ctx, nil); corrupt != 0 || err != nil {
		t.Fatalf("Verify after kill -9: %d corrupt, %v", corrupt, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp/ not empty after kill -9: %s", ents[0].Name())
	}
	if fi, err := os.Stat(filepath.Join(dir, "index")); err != nil || fi.Size()%recSize != 0 {
		t.Fatalf("index not repaired: %v", err)
	}
}

// mpContent is the content multi-process workers put for seed; every 12th is
// a standalone object.
func mpContent(seed int) []byte {
	if seed%12 == 0 {
		return randBytes(uint64(seed)+5000, MaxPacked+1000*seed+1)
	}
	return randBytes(uint64(seed)+5000, 1000+seed*300)
}

const mpSeeds = 60

// helperWorker puts every mpContent seed (starting at a worker-specific
// offset, so workers race on the same content), reads each back, and reads
// objects other workers may have put.
func helperWorker(dir string) error {
	s, err := OpenOptions(dir, Options{PackSize: 512 << 10})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	w := envInt("XFER_CAS_WORKER")
	for k := range mpSeeds {
		seed := (k + w*mpSeeds/3) % mpSeeds
		b := mpContent(seed)
		var id ID
		if k%2 == 0 {
			id, err = s.PutBytes(ctx, b)
		} else {
			id, _, err = s.Put(ctx, bytes.NewReader(b))
		}
		if err != nil {
			return fmt.Errorf("put seed %d: %w", seed, err)
		}
		if id != Sum(b) {
			return fmt.Errorf("put seed %d: id %s", seed, id)
		}
		for _, rs := range []int{seed, (seed*7 + 3) % mpSeeds} {
			rb := mpContent(rs)
			var out bytes.Buffer
			_, err := s.Get(ctx, Sum(rb), &out)
			if errors.Is(err, ErrNotFound) && rs != seed {
				continue
			}
			if err != nil || !bytes.Equal(out.Bytes(), rb) {
				return fmt.Errorf("get seed %d: %v", rs, err)
			}
			p := make([]byte, 300)
			n, err := s.ReadAt(ctx, Sum(rb), p, 50)
			if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], rb[50:50+n]) {
				return fmt.Errorf("read seed %d: %v", rs, err)
			}
		}
	}
	return nil
}

func TestMultiProcess(t *testing.T) {
	dir := t.TempDir()
	const workers = 3
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		c := startChild(t, helperEnv+"=worker", "XFER_CAS_DIR="+dir, "XFER_CAS_WORKER="+strconv.Itoa(w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range c.lines {
			}
			if err := c.cmd.Wait(); err != nil {
				errs <- fmt.Errorf("worker %d: %v: %s", w, err, c.errb)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	ctx := context.Background()
	s := openTest(t, dir, Options{PackSize: 512 << 10})
	var total int64
	for seed := range mpSeeds {
		b := mpContent(seed)
		total += int64(len(b))
		var out bytes.Buffer
		if _, err := s.Get(ctx, Sum(b), &out); err != nil || !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	st, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Every content was put by every worker and stored exactly once.
	if st.Objects != mpSeeds || st.Bytes != total || st.DedupSaved != (workers-1)*total || st.Packs < 2 {
		t.Fatalf("Stat = %+v; want %d objects, %d bytes, dedup %d", st, mpSeeds, total, (workers-1)*total)
	}
	if checked, corrupt, err := s.Verify(ctx, nil); checked != mpSeeds || corrupt != 0 || err != nil {
		t.Fatalf("Verify: %d checked, %d corrupt, %v", checked, corrupt, err)
	}
}
