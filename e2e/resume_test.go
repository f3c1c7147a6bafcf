package e2e

import (
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// journaledBytes counts the chunk bytes the partial-file journals beneath
// dir record as verified.
func journaledBytes(t *testing.T, dir string, chunk int64) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".journal") {
			b, _ := os.ReadFile(p)
			if i := strings.IndexByte(string(b), '\n'); i >= 0 {
				recs := b[i+1:]
				seen := map[uint64]bool{}
				for len(recs) >= 8 {
					seen[binary.LittleEndian.Uint64(recs)] = true
					recs = recs[8:]
				}
				n += int64(len(seen)) * chunk
			}
		}
		return nil
	})
	return n
}

// resumeCopy copies src to dst (a location whose files are in the local
// directory dir) in --streams streams of --chunk-size chunk: it must end
// the transfer, sending no more than what dir's journals lacked (of size
// bytes) plus one chunk per stream.
func resumeCopy(t *testing.T, src, dst, dir string, size, chunk, streams int64, extra ...string) {
	t.Helper()
	done := journaledBytes(t, dir, chunk)
	r := xfer(t, append([]string{"copy", src, dst, "--chunk-size", strconv.FormatInt(chunk, 10), "--streams",
		strconv.FormatInt(streams, 10), "--json"}, extra...)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := jsonRun(t, r)
	if limit := size - done + streams*chunk; s.BytesSent > limit {
		t.Errorf("resumed run sent %d bytes; %d were already verified, so at most %d should cross", s.BytesSent, done, limit)
	}
	t.Logf("journaled %d MiB before the final run; it sent %d MiB", done>>20, s.BytesSent>>20)
}

// TestResumeAfterKills kills the client or the server at random moments
// over many runs: the destination is always either complete and verified
// or absent under its final name, and the final run sends no more than
// the missing bytes plus one chunk per stream.
func TestResumeAfterKills(t *testing.T) {
	const size, chunk, streams = 160 << 20, 1 << 20, 4
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), size, 21)
	want, _ := os.ReadFile(filepath.Join(src, "big.bin"))
	root := t.TempDir()
	srv := startServer(t, root)
	final := filepath.Join(root, "dst/big.bin")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 8; i++ {
		run := startXfer(t, "copy", src, srv.url("dst"), "--chunk-size", "1M",
			"--streams", "4", "--retries", "0", "-q")
		time.Sleep(time.Duration(20+rng.Intn(250)) * time.Millisecond)
		killServer := i%2 == 1
		if killServer {
			srv.cmd.Process.Signal(syscall.SIGKILL)
			<-srv.done
			run.wait(t) // the client ends by itself: no retries
		} else {
			run.kill()
		}
		if info, err := os.Stat(final); err == nil {
			got, _ := os.ReadFile(final)
			if info.Size() != size || string(got) != string(want) {
				t.Fatalf("run %d: an incomplete or wrong file stands under the final name", i)
			}
			os.Remove(final) // keep exercising the partial path
		}
		if killServer {
			srv = startServer(t, root)
		}
	}
	resumeCopy(t, src, srv.url("dst"), filepath.Join(root, "dst"), size, chunk, streams)
	sameTree(t, src, filepath.Join(root, "dst"))
	entries, _ := os.ReadDir(filepath.Join(root, "dst"))
	if len(entries) != 1 {
		t.Errorf("leftovers: %v", entries)
	}
}

// TestRetryAfterServerRestart: a server that dies mid-transfer and comes
// back on the same address is reconnected to with backoff, and the run
// completes by resuming.
func TestRetryAfterServerRestart(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 200<<20, 22)
	root := t.TempDir()
	srv := startServer(t, root)
	addr := srv.addr
	run := startXfer(t, "copy", src, srv.url("dst"), "--chunk-size", "1M", "--json")
	time.Sleep(150 * time.Millisecond)
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done
	time.Sleep(300 * time.Millisecond)
	startServerOn(t, addr[:strings.LastIndexByte(addr, ':')], root, "--listen", addr)
	r := run.wait(t)
	if r.code != 0 {
		t.Fatalf("copy did not recover from the restart: %s", r)
	}
	if !strings.Contains(r.stdout, "retrying in") {
		t.Errorf("no retry notice:\n%s", r.stdout)
	}
	sameTree(t, src, filepath.Join(root, "dst"))
}

// TestInterruptedTransfer: killing the client mid-transfer never leaves a
// truncated file under the final name, the server carries on, and the
// next run completes the file.
func TestInterruptedTransfer(t *testing.T) {
	a := startServer(t, t.TempDir())
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 200<<20, 11)
	final := filepath.Join(a.root, "dst/big.bin")
	for _, after := range []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		run := startXfer(t, "copy", src, a.url("dst"), "--chunk-size", "1M")
		time.Sleep(after)
		run.kill()
		if info, err := os.Stat(final); err == nil && info.Size() != 200<<20 {
			t.Fatalf("after a kill at %s a truncated file (%d bytes) stands under the final name", after, info.Size())
		}
	}
	if !a.alive() {
		t.Fatal("server died with its client")
	}
	// The server lets go of the killed clients' partial files once it has
	// noticed them gone; until then a rerun is told the file is busy, and
	// nothing else may go wrong.
	var r result
	for deadline := time.Now().Add(20 * time.Second); ; {
		r = xfer(t, "copy", src, a.url("dst"), "--json")
		if r.code == 0 || !strings.Contains(r.stdout, "another transfer is writing this file") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.code != 0 {
		t.Fatal(r)
	}
	sameTree(t, src, filepath.Join(a.root, "dst"))
	entries, _ := os.ReadDir(filepath.Join(a.root, "dst"))
	if len(entries) != 1 {
		t.Errorf("leftovers beside the file: %v", entries)
	}
}
