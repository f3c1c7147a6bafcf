package e2e

// The memory of delete and of a move's removal does not grow with the
// tree: the removals stream with the listing.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flatTree writes n empty files beneath dir, perDir to a directory
// (dir/dNNNN/fNNNNNN), one mknod each, on several threads; with twin set
// each is also hard-linked at the same path beneath twin (the same size and mtime: a
// move finds every file already there). Bounded: n files, one pass.
func flatTree(t *testing.T, dir, twin string, n, perDir int) {
	t.Helper()
	ndirs := (n + perDir - 1) / perDir
	for _, top := range []string{dir, twin} {
		for d := range ndirs {
			if top != "" {
				must(t, os.MkdirAll(filepath.Join(top, fmt.Sprintf("d%04d", d)), 0o755))
			}
		}
	}
	jobs := make(chan int, ndirs)
	for d := range ndirs {
		jobs <- d
	}
	close(jobs)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				for i := d * perDir; i < min(n, (d+1)*perDir); i++ {
					rel := fmt.Sprintf("d%04d/f%06d", d, i)
					err := syscall.Mknod(filepath.Join(dir, rel), syscall.S_IFREG|0o644, 0)
					if err == nil && twin != "" {
						err = os.Link(filepath.Join(dir, rel), filepath.Join(twin, rel))
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// peakRSS runs xfer args... --json, which must succeed, and returns the
// peak resident memory of the process (VmHWM, read every 10 ms while it
// runs, bounded by hangLimit) and its summary. The collector runs at 20%
// growth instead of 100% (GOGC), so that the peak follows what the
// process holds rather than when it last collected.
func peakRSS(t *testing.T, args ...string) (int64, summary) {
	t.Helper()
	return peakRSSWithin(t, hangLimit, args...)
}

// peakRSSWithin is peakRSS killing the run after limit instead of
// hangLimit: for runs that write many files.
func peakRSSWithin(t *testing.T, limit time.Duration, args ...string) (int64, summary) {
	t.Helper()
	args = append(args, "--json")
	cmd := exec.Command(xferBin, args...)
	cmd.Env = append(baseEnv(t), "GOGC=20")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	var peak int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(limit)
	for running := true; running; {
		if hwm, err := readHWM(cmd.Process.Pid); err == nil {
			peak = max(peak, hwm)
		}
		select {
		case <-done:
			running = false
		case <-timeout:
			cmd.Process.Kill()
			<-done
			t.Fatalf("xfer %q hung (killed after %s)", args, limit)
		case <-tick.C:
		}
	}
	r := result{so.String(), se.String(), cmd.ProcessState.ExitCode()}
	sum := summaryLine(t, args, r)
	if r.code != 0 || sum.Errors != 0 || peak == 0 {
		t.Fatalf("xfer %q (peak %d): %s", args, peak, head(r.String(), 3000))
	}
	return peak, sum
}

// The trees of the memory tests: the removal of the larger one must not
// take much more memory than that of the smaller, where holding the
// listing would take about 200 bytes an entry, some 36 MB more. The bound
// is a quarter of that.
const (
	memSmall, memLarge, memPerDir = 20_000, 200_000, 1000
	memBound                      = (memLarge - memSmall) * 200 / 4
)

// checkGrowth fails t if the peak RSS hi of the larger tree is more than
// memBound above both lo, that of the smaller, and before, that of what
// ran before the removal (0: nothing).
func checkGrowth(t *testing.T, lo, hi, before int64, start time.Time) {
	t.Helper()
	checkGrowthWithin(t, lo, hi, before, start, memBound)
}

// checkGrowthWithin is checkGrowth with a bound of its own.
func checkGrowthWithin(t *testing.T, lo, hi, before int64, start time.Time, bound int64) {
	t.Helper()
	if before == 0 {
		t.Logf("peak RSS: %d files %.1f MiB, %d files %.1f MiB (%.0f s)",
			memSmall, inMiB(lo), memLarge, inMiB(hi), time.Since(start).Seconds())
	} else {
		t.Logf("peak RSS: %d files %.1f MiB, %d files %.1f MiB (before the removal %.1f MiB) (%.0f s)",
			memSmall, inMiB(lo), memLarge, inMiB(hi), inMiB(before), time.Since(start).Seconds())
	}
	if ref := max(lo, before); hi-ref > bound {
		t.Errorf("the peak RSS of %d files is %.1f MiB above that of %d files or of what ran before (bound %.1f MiB): memory grows with the tree",
			memLarge, inMiB(hi-ref), memSmall, inMiB(bound))
	}
}

func inMiB(b int64) float64 { return float64(b) / (1 << 20) }

// TestDeleteMemoryBounded: delete --rmdirs of a local tree and of a
// peer's of 200,000 files peaks at about the memory of the same with
// 20,000 files (see memBound); a second delete finds nothing.
func TestDeleteMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 220,000 files twice")
	}
	for _, kind := range []string{"local", "peer"} {
		t.Run(kind, func(t *testing.T) {
			start := time.Now()
			var peaks [2]int64
			for i, n := range []int{memSmall, memLarge} {
				s := newSite(t, kind)
				flatTree(t, s.path("t"), "", n, memPerDir)
				peak, sum := peakRSS(t, "delete", "--rmdirs", s.loc("t"))
				if sum.FilesDeleted != int64(n) || sum.DirsRemoved != int64(n/memPerDir) {
					t.Errorf("delete --rmdirs: %+v, want %d files and %d directories", sum, n, n/memPerDir)
				}
				if left, _ := os.ReadDir(s.path("t")); len(left) != 0 {
					t.Errorf("delete --rmdirs left %d entries", len(left))
				}
				if _, sum := peakRSS(t, "delete", "--rmdirs", s.loc("t")); sum.FilesDeleted != 0 || sum.DirsRemoved != 0 {
					t.Errorf("the second delete removed something: %+v", sum)
				}
				peaks[i] = peak
			}
			checkGrowth(t, peaks[0], peaks[1], 0, start)
		})
	}
}

// TestMoveMemoryBounded: move --delete-empty-src-dirs of 200,000 files
// (all already at the destination, so that the removal is most of the
// work) peaks at about the memory of the same with 20,000 files or of
// the copy the move starts with, alone (see memBound); a second move
// does nothing.
func TestMoveMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 220,000 files and their links")
	}
	start := time.Now()
	var peaks [2]int64
	var before int64
	for i, n := range []int{memSmall, memLarge} {
		base := t.TempDir()
		src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
		flatTree(t, src, dst, n, memPerDir)
		if n == memLarge {
			var sum summary
			before, sum = peakRSS(t, "copy", src, dst)
			if sum.FilesTransferred != 0 || sum.FilesSkipped != int64(n) {
				t.Errorf("copy: %+v, want all %d files there already", sum, n)
			}
		}
		peak, sum := peakRSS(t, "move", "--delete-empty-src-dirs", src, dst)
		if sum.FilesTransferred != 0 || sum.SourceRemoved != int64(n) || sum.DirsRemoved != int64(n/memPerDir) {
			t.Errorf("move: %+v, want nothing copied, %d files and %d directories removed", sum, n, n/memPerDir)
		}
		if left, _ := os.ReadDir(src); len(left) != 0 {
			t.Errorf("the move left %d entries at the source", len(left))
		}
		if _, err := os.Stat(filepath.Join(dst, fmt.Sprintf("d%04d/f%06d", n/memPerDir-1, n-1))); err != nil {
			t.Errorf("the destination lost a file: %v", err)
		}
		if _, sum := peakRSS(t, "move", "--delete-empty-src-dirs", src, dst); sum.FilesTransferred != 0 || sum.SourceRemoved != 0 || sum.DirsRemoved != 0 {
			t.Errorf("the second move did something: %+v", sum)
		}
		peaks[i] = peak
	}
	checkGrowth(t, peaks[0], peaks[1], before, start)
}
