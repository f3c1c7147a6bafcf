package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDeltaSendsOnlyChangedChunks: a large file with one changed 4 KiB
// region moves a single chunk.
func TestDeltaSendsOnlyChangedChunks(t *testing.T) {
	src := t.TempDir()
	f := filepath.Join(src, "big.bin")
	writeRandom(t, f, 64<<20, 51)
	s := startServer(t, t.TempDir())
	if r := xfer(t, "copy", src, s.url("d"), "--chunk-size", "1M"); r.code != 0 {
		t.Fatal(r)
	}
	fh, err := os.OpenFile(f, os.O_WRONLY, 0)
	must(t, err)
	fh.WriteAt([]byte(strings.Repeat("Z", 4096)), 40<<20+12345)
	fh.Close()
	r := xfer(t, "copy", src, s.url("d"), "--chunk-size", "1M", "--json")
	_, sum := jsonRun(t, r)
	if r.code != 0 || sum.FilesTransferred != 1 {
		t.Fatal(r)
	}
	// 40 MiB+12345 .. +4096 lies in one 1 MiB chunk.
	if sum.BytesSent != 1<<20 {
		t.Errorf("bytes_sent = %d, want one chunk (%d)", sum.BytesSent, 1<<20)
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
	r = xfer(t, "copy", src, s.url("d2"), "--chunk-size", "1M", "--json", "--delta=false")
	if _, sum := jsonRun(t, r); sum.BytesSent != 64<<20 {
		t.Errorf("a new destination gets the whole file: %d", sum.BytesSent)
	}
}

// TestLockAndCronFlags: two syncs on one destination never overlap;
// --max-duration stops cleanly and the next run resumes; --log-file gets
// every event and the summary.
func TestLockAndCronFlags(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 32<<20, 52)
	s := startServer(t, t.TempDir())
	slow := exec.Command(xferBin, "sync", src, s.url("d"), "--bwlimit", "4M", "--chunk-size", "1M", "-q")
	slow.Env = baseEnv(t)
	must(t, slow.Start())
	defer slow.Process.Kill()
	waitPartial(t, filepath.Join(s.root, "d")) // the slow run holds the lock
	r := xfer(t, "sync", src, s.url("d"))
	if r.code != 1 || !strings.Contains(r.stderr, "another xfer run") {
		t.Errorf("a second sync on a locked destination: %s", r)
	}
	slow.Process.Kill()
	slow.Wait()

	logf := filepath.Join(t.TempDir(), "xfer.log")
	start := time.Now()
	r = xfer(t, "sync", src, s.url("d"), "--bwlimit", "8M", "--max-duration", "1s", "--chunk-size", "1M", "--log-file", logf)
	if r.code != 4 || !strings.Contains(r.stderr, "max-duration") {
		t.Errorf("--max-duration: %s", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("--max-duration 1s took %s", d)
	}
	if _, err := os.Stat(filepath.Join(s.root, "d/big.bin")); err == nil {
		t.Error("an unfinished file stands under its final name")
	}
	r = xfer(t, "sync", src, s.url("d"), "--json", "--chunk-size", "1M", "--log-file", logf)
	if r.code != 0 {
		t.Fatal(r)
	}
	_, sum := jsonRun(t, r)
	if sum.BytesSent >= 32<<20 {
		t.Errorf("the run after --max-duration resent everything (%d bytes)", sum.BytesSent)
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
	b, err := os.ReadFile(logf)
	must(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["event"] != "summary" {
		t.Errorf("log file does not end with the summary: %q", lines[len(lines)-1])
	}
	if !strings.Contains(string(b), "max-duration") {
		t.Errorf("log file lacks the first run's stop reason")
	}
}

// TestSparseAndHardLinks: sparse files stay sparse (and the source is not
// filled in by reading it); hard links stay linked with --hard-links.
func TestSparseAndHardLinks(t *testing.T) {
	src := t.TempDir()
	sp := filepath.Join(src, "sparse.bin")
	f, err := os.Create(sp)
	must(t, err)
	must(t, f.Truncate(48<<20))
	f.WriteAt([]byte(strings.Repeat("data", 1024)), 20<<20)
	f.Close()
	must(t, os.WriteFile(filepath.Join(src, "orig"), []byte("linked"), 0o644))
	must(t, os.Link(filepath.Join(src, "orig"), filepath.Join(src, "alias")))
	blocks := func(p string) int64 {
		var st syscall.Stat_t
		must(t, syscall.Stat(p, &st))
		return st.Blocks
	}
	before := blocks(sp)
	s := startServer(t, t.TempDir())
	if r := xfer(t, "copy", src, s.url("d"), "--hard-links", "--chunk-size", "1M"); r.code != 0 {
		t.Fatal(r)
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
	if got := blocks(filepath.Join(s.root, "d/sparse.bin")); got > before+64 {
		t.Errorf("destination allocates %d blocks, the sparse source %d", got, before)
	}
	if after := blocks(sp); after != before {
		t.Errorf("reading the source allocated its holes: %d -> %d blocks", before, after)
	}
	var a, b syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(s.root, "d/orig"), &a))
	must(t, syscall.Stat(filepath.Join(s.root, "d/alias"), &b))
	if a.Ino != b.Ino {
		t.Error("hard links were not kept")
	}
}
