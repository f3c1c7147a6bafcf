package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestLeafDelta changes one 4 KiB region of a large file that both ends
// hold, in both directions (local -> peer, peer -> local): only the 16 KiB
// BLAKE3 leaves that differ cross, far less than the 4 MiB chunk around
// them; the result is the new file; the second run sends nothing; and
// rsync's delta transfer of the same change gives the same content.
func TestLeafDelta(t *testing.T) {
	rsync := needTool(t, "rsync", "the reference of the differential check")
	const size, chunk = 48 << 20, "4M"
	srv := startServer(t, t.TempDir())
	for _, dir := range []string{"local-peer", "peer-local"} {
		t.Run(dir, func(t *testing.T) {
			src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
			srcArg, dstArg := src, srv.url(dir+"/dst")
			if dir == "peer-local" {
				src, srcArg, dstArg = filepath.Join(srv.root, dir, "src"), srv.url(dir+"/src"), dst
			} else {
				dst = filepath.Join(srv.root, dir, "dst")
			}
			f := filepath.Join(src, "big.bin")
			writeRandom(t, f, size, 71)
			args := []string{"sync", "--chunk-size", chunk, "--json", srcArg, dstArg}
			if r := xfer(t, args...); r.code != 0 {
				t.Fatal(r)
			}
			ref := filepath.Join(t.TempDir(), "ref")
			runRsync(t, rsync, src, ref)
			fh, err := os.OpenFile(f, os.O_WRONLY, 0)
			must(t, err)
			_, err = fh.WriteAt([]byte(strings.Repeat("Q", 4096)), 21<<20+1000) // inside one leaf of chunk 5
			must(t, err)
			must(t, fh.Close())
			r := xfer(t, args...)
			_, sum := jsonRun(t, r)
			if r.code != 0 || sum.FilesTransferred != 1 || sum.BytesSent == 0 || sum.BytesSent >= 256<<10 {
				t.Fatalf("files_transferred %d, bytes_sent %d; want 1 file and less than 256 KiB for a 4 KiB change\n%s",
					sum.FilesTransferred, sum.BytesSent, r)
			}
			t.Logf("xfer sent %d bytes for a 4 KiB change in a %d MiB file", sum.BytesSent, size>>20)
			sameTree(t, src, dst)
			sent := runRsync(t, rsync, src, ref)
			t.Logf("rsync --no-whole-file: total bytes sent %d", sent)
			sameTree(t, ref, dst)
			r = xfer(t, args...)
			if _, sum := jsonRun(t, r); r.code != 0 || sum.FilesTransferred != 0 || sum.BytesSent != 0 {
				t.Errorf("the second run transferred %d files, %d bytes; want nothing\n%s", sum.FilesTransferred, sum.BytesSent, r)
			}
		})
	}
}

var rsyncSent = regexp.MustCompile(`Total bytes sent: ([0-9,.]+)`)

// runRsync syncs src into dst with rsync's delta algorithm (local runs
// default to whole files; --ignore-times: a change within the second
// of the last run is not missed) and returns its "Total bytes sent".
func runRsync(t *testing.T, rsync, src, dst string) int64 {
	t.Helper()
	out, err := exec.Command(rsync, "-a", "--no-whole-file", "--ignore-times", "--stats", src+"/", dst+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	m := rsyncSent.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no total in rsync's output:\n%s", out)
	}
	n, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(string(m[1])), 10, 64)
	must(t, err)
	return n
}
