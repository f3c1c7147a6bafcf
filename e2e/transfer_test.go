package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAllDirections copies an odd tree through every direction and checks
// that each destination is an exact replica.
func TestAllDirections(t *testing.T) {
	src := oddSource(t)
	a := startServer(t, t.TempDir())
	b := startServer(t, t.TempDir())
	mirror := filepath.Join(t.TempDir(), "mirror")
	local := filepath.Join(t.TempDir(), "local")

	steps := []struct {
		name     string
		from, to string
		check    string
	}{
		{"local->remote", src, a.url("incoming"), filepath.Join(a.root, "incoming")},
		{"remote->remote", a.url("incoming"), b.url("copy"), filepath.Join(b.root, "copy")},
		{"remote->local", b.url("copy"), mirror, mirror},
		{"local->local", mirror, local, local},
	}
	for _, st := range steps {
		r := xfer(t, "copy", st.from, st.to, "--json", "--chunk-size", "1M", "--streams", "3")
		if r.code != 0 {
			t.Fatalf("%s: %s", st.name, r)
		}
		_, s := jsonRun(t, r)
		if s.Errors != 0 || s.FilesTransferred == 0 {
			t.Errorf("%s: summary %+v", st.name, s)
		}
		sameTree(t, src, st.check)
	}
	// The whole-file digest equals what `xfer hash` (b3sum-compatible) says.
	h1 := xfer(t, "hash", filepath.Join(src, "big/multi-chunk.bin"))
	h2 := xfer(t, "hash", filepath.Join(local, "big/multi-chunk.bin"))
	if h1.code != 0 || strings.Fields(h1.stdout)[0] != strings.Fields(h2.stdout)[0] {
		t.Errorf("digests differ: %q vs %q", h1.stdout, h2.stdout)
	}
}

// TestSecondSyncMovesNothing: an unchanged tree syncs with 0 bytes.
func TestSecondSyncMovesNothing(t *testing.T) {
	src := oddSource(t)
	a := startServer(t, t.TempDir())
	for i, want := range []bool{true, false} {
		r := xfer(t, "sync", src, a.url("d"), "--json")
		if r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
		_, s := jsonRun(t, r)
		if moved := s.BytesTransferred > 0; moved != want {
			t.Errorf("run %d: bytes_transferred %d", i, s.BytesTransferred)
		}
		if !want && (s.FilesTransferred != 0 || s.FilesSkipped == 0) {
			t.Errorf("second sync: %+v", s)
		}
		if s.Proto == "" || s.Proto == "local" {
			t.Errorf("proto %q, want the negotiated transport", s.Proto)
		}
	}
	sameTree(t, src, filepath.Join(a.root, "d"))
}

// TestSecondSyncCountsSkips: in every direction, a second sync of an
// unchanged tree reports each file as skipped, whichever process ran it.
func TestSecondSyncCountsSkips(t *testing.T) {
	src := oddSource(t)
	a, b := startServer(t, t.TempDir()), startServer(t, t.TempDir())
	if r := xfer(t, "copy", src, a.url("d")); r.code != 0 {
		t.Fatal(r)
	}
	// Files and symlinks count as skipped when unchanged.
	var want int64
	for _, n := range snapshot(t, src) {
		if n.Type == "file" || n.Type == "symlink" {
			want++
		}
	}
	for _, tc := range []struct{ name, from, to string }{
		{"push", src, a.url("d")},
		{"pull", a.url("d"), t.TempDir()},
		{"third party", a.url("d"), b.url("d")},
		{"local", src, t.TempDir()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xfer(t, "sync", tc.from, tc.to)
			r := xfer(t, "sync", tc.from, tc.to, "--json")
			if r.code != 0 {
				t.Fatal(r)
			}
			_, s := jsonRun(t, r)
			if s.FilesTransferred != 0 || s.FilesSkipped != want {
				t.Errorf("second sync: %d transferred, %d skipped; want 0 and %d", s.FilesTransferred, s.FilesSkipped, want)
			}
		})
	}
}

// TestSyncDeleteAndCopyKeeps: copy never deletes; sync removes extras;
// --delete=false keeps them.
func TestSyncDeleteAndCopyKeeps(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "keep"), []byte("k"), 0o644))
	a := startServer(t, t.TempDir())
	dst := filepath.Join(t.TempDir(), "mirror")
	if r := xfer(t, "copy", src, a.url("x")); r.code != 0 {
		t.Fatal(r)
	}
	must(t, os.MkdirAll(dst, 0o755))
	extra := filepath.Join(dst, "extra")
	must(t, os.WriteFile(extra, []byte("e"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dst, "extradir/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "extradir/sub/f"), []byte("f"), 0o644))

	if r := xfer(t, "copy", a.url("x"), dst); r.code != 0 {
		t.Fatal(r)
	}
	if _, err := os.Stat(extra); err != nil {
		t.Errorf("copy deleted an extra file: %v", err)
	}
	if r := xfer(t, "sync", a.url("x"), dst, "--delete=false"); r.code != 0 {
		t.Fatal(r)
	}
	if _, err := os.Stat(extra); err != nil {
		t.Errorf("sync --delete=false deleted an extra file: %v", err)
	}
	r := xfer(t, "sync", a.url("x"), dst, "--delete", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := jsonRun(t, r)
	if s.FilesDeleted != 2 {
		t.Errorf("files_deleted = %d, want 2 (extra, extradir)", s.FilesDeleted)
	}
	sameTree(t, src, dst)
}

// TestDryRun prints the plan and changes nothing.
func TestDryRun(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "new.bin"), make([]byte, 3000), 0o644))
	must(t, os.MkdirAll(filepath.Join(src, "newdir"), 0o755))
	a := startServer(t, t.TempDir())
	dst := filepath.Join(a.root, "d")
	must(t, os.MkdirAll(dst, 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "old"), []byte("o"), 0o644))
	before := snapshot(t, a.root)

	r := xfer(t, "sync", src, a.url("d"), "--dry-run")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"create new.bin", "mkdir newdir", "delete old", "would transfer 1 file"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r)
		}
	}
	after := snapshot(t, a.root)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("dry run changed the destination")
	}
	// Into a local directory that does not exist: nothing gets created.
	missing := filepath.Join(t.TempDir(), "nope")
	if r := xfer(t, "copy", a.url("d"), missing, "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "create old") {
		t.Errorf("dry run into a missing dir: %s", r)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("dry run created %s", missing)
	}
}

// TestChecksum finds content changes that size and mtime hide.
func TestChecksum(t *testing.T) {
	src, dstParent := t.TempDir(), t.TempDir()
	dst := filepath.Join(dstParent, "d")
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("aaaa"), 0o644))
	if r := xfer(t, "copy", src, dst); r.code != 0 {
		t.Fatal(r)
	}
	// Same size, same mtime, other content.
	st, _ := os.Stat(filepath.Join(dst, "f"))
	must(t, os.WriteFile(filepath.Join(dst, "f"), []byte("bbbb"), 0o644))
	must(t, os.Chtimes(filepath.Join(dst, "f"), st.ModTime(), st.ModTime()))
	a := startServer(t, dstParent)
	r := xfer(t, "copy", src, a.url("d"), "--json")
	_, s := jsonRun(t, r)
	if s.FilesTransferred != 0 {
		t.Errorf("without --checksum the file should look unchanged: %+v", s)
	}
	r = xfer(t, "copy", src, a.url("d"), "--json", "--checksum")
	_, s = jsonRun(t, r)
	if r.code != 0 || s.FilesTransferred != 1 {
		t.Errorf("--checksum should transfer the changed file: %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "aaaa" {
		t.Errorf("content after --checksum copy: %q", b)
	}
}

// TestSingleFileLandsInside: a file SRC goes inside DST.
func TestSingleFileLandsInside(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "one.bin"), 9<<20, 7)
	a := startServer(t, t.TempDir())
	if r := xfer(t, "copy", filepath.Join(src, "one.bin"), a.url("in/box"), "--chunk-size", "1M"); r.code != 0 {
		t.Fatal(r)
	}
	got, _ := os.ReadFile(filepath.Join(a.root, "in/box/one.bin"))
	want, _ := os.ReadFile(filepath.Join(src, "one.bin"))
	if string(got) != string(want) {
		t.Fatal("single file content differs")
	}
	// And back, remote file -> local dir.
	back := t.TempDir()
	if r := xfer(t, "copy", a.url("in/box/one.bin"), back); r.code != 0 {
		t.Fatal(r)
	}
	if got, _ := os.ReadFile(filepath.Join(back, "one.bin")); string(got) != string(want) {
		t.Fatal("pulled single file differs")
	}
}

// TestNamedRemotes: NAME:PATH from the config file, remote to remote, and
// XFER_* environment variables for flags.
func TestNamedRemotes(t *testing.T) {
	src := oddSource(t)
	a := startServer(t, t.TempDir())
	b := startServer(t, t.TempDir())
	cfg := writeConfig(t, fmt.Sprintf("remotes:\n  nodeA:\n    url: xfer://%s\n  nodeB:\n    address: %s\n", a.addr, b.addr))
	if r := xfer(t, "--config", cfg, "copy", src, "nodeA:/proj"); r.code != 0 {
		t.Fatal(r)
	}
	if r := xfer(t, "--config", cfg, "sync", "nodeA:/proj", "nodeB:/proj"); r.code != 0 {
		t.Fatal(r)
	}
	sameTree(t, src, filepath.Join(b.root, "proj"))
	// The default config location is $XDG_CONFIG_HOME/xfer/xfer.yaml, and
	// XFER_DRY_RUN=true acts like --dry-run.
	home := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(home, "xfer"), 0o755))
	data, _ := os.ReadFile(cfg)
	must(t, os.WriteFile(filepath.Join(home, "xfer/xfer.yaml"), data, 0o600))
	must(t, os.WriteFile(filepath.Join(src, "only-in-src"), []byte("n"), 0o644))
	r := xferEnv(t, []string{"XDG_CONFIG_HOME=" + home, "XFER_DRY_RUN=true"}, "sync", src, "nodeB:/proj")
	if r.code != 0 || !strings.Contains(r.stdout, "create only-in-src") {
		t.Fatalf("env dry run: %s", r)
	}
	if _, err := os.Stat(filepath.Join(b.root, "proj/only-in-src")); err == nil {
		t.Error("XFER_DRY_RUN=true still copied")
	}
	if r := xfer(t, "--config", cfg, "copy", src, "nodeC:/x"); r.code != 2 || !strings.Contains(r.stderr, "unknown remote") {
		t.Errorf("unknown remote: %s", r)
	}
}

// TestThirdPartyBypassesClient: in a remote->remote copy the data flows
// between the servers; the client process reads next to nothing.
func TestThirdPartyBypassesClient(t *testing.T) {
	a := startServer(t, t.TempDir())
	b := startServer(t, t.TempDir())
	writeRandom(t, filepath.Join(a.root, "data/big.bin"), 96<<20, 3)
	cmd := exec.Command(xferBin, "copy", a.url("data"), b.url("data"), "--no-fsync")
	cmd.Env = baseEnv(t)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	var maxRead int64
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
loop:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("copy failed: %v\n%s", err, out)
			}
			break loop
		case <-ticker.C:
			if n := readIOChars(cmd.Process.Pid); n > maxRead {
				maxRead = n
			}
		}
	}
	if maxRead > 16<<20 {
		t.Errorf("the client read %d bytes during a 96 MiB third-party copy", maxRead)
	}
	want, _ := os.ReadFile(filepath.Join(a.root, "data/big.bin"))
	got, _ := os.ReadFile(filepath.Join(b.root, "data/big.bin"))
	if string(want) != string(got) {
		t.Fatal("third-party copy differs")
	}
}

func readIOChars(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "rchar:") {
			var n int64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "rchar:")), &n)
			return n
		}
	}
	return 0
}

// TestBadInput: clear one-line errors and the documented exit codes, fast.
func TestBadInput(t *testing.T) {
	a := startServer(t, t.TempDir())
	// A port nobody listens on.
	closed := unusedAddr(t)
	// A peer that accepts and says nothing, and one that talks another protocol.
	silent := fakePeer(t, "", false)
	other := fakePeer(t, "@RSYNCD: 31.0\n", false)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	fileDst := filepath.Join(t.TempDir(), "afile")
	must(t, os.WriteFile(fileDst, []byte("x"), 0o644))

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing source", []string{"copy", "/nonexistent/xfer-src", t.TempDir()}, 2, "does not exist"},
		{"missing remote source", []string{"copy", a.url("nope"), t.TempDir()}, 2, "does not exist"},
		{"unreachable peer", []string{"copy", src, "xfer://" + closed + "/x"}, 3, "cannot connect"},
		{"silent peer", []string{"copy", src, "xfer://" + silent + "/x", "--connect-timeout", "1s"}, 3, "no answer"},
		{"wrong protocol", []string{"copy", src, "xfer://" + other + "/x"}, 3, "not an xfer server"},
		{"escape via ..", []string{"copy", src, a.url("../../etc")}, 2, "climbs out"},
		{"unknown flag", []string{"copy", "--frobnicate", src, t.TempDir()}, 2, "unknown flag"},
		{"missing args", []string{"copy", src}, 2, "accepts 2 arg"},
		{"bad chunk size", []string{"copy", src, t.TempDir(), "--chunk-size", "3000"}, 2, "power of two"},
		{"bad proto", []string{"copy", src, a.url("x"), "--proto", "carrier-pigeon"}, 2, "--proto"},
		{"destination is a file", []string{"copy", src, fileDst}, 2, "not a directory"},
		{"serve without root", []string{"serve"}, 2, "--root is required"},
		{"bad sums file", []string{"hash", "--check", "/nonexistent/SUMS"}, 2, "no such file"},
	}
	for _, tt := range tests {
		start := time.Now()
		r := xfer(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%s: want exit %d and %q\n%s", tt.name, tt.code, tt.msg, r)
		}
		if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
			t.Errorf("%s: stack trace on stderr\n%s", tt.name, r)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%s: took %s", tt.name, d)
		}
	}
	if !a.alive() {
		t.Fatal("server died")
	}
}

// TestEscapeRefusedByServer: a symlink planted in the served tree cannot
// carry a write outside the root.
func TestEscapeRefusedByServer(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(root, "planted")))
	a := startServer(t, root)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	r := xfer(t, "copy", src, a.url("planted/sub"))
	if r.code == 0 || !strings.Contains(r.stderr, "escapes") {
		t.Errorf("write through a planted symlink: %s", r)
	}
	// Reading: the link is copied as a link, never followed.
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600))
	back := t.TempDir()
	r = xfer(t, "copy", a.url("planted"), back)
	if target, err := os.Readlink(filepath.Join(back, "planted")); r.code != 0 || err != nil || target != outside {
		t.Errorf("copying a planted symlink: target %q, %v\n%s", target, err, r)
	}
	if _, err := os.Stat(filepath.Join(back, "secret")); err == nil {
		t.Error("the symlink was followed out of the root")
	}
	if r := xfer(t, "copy", a.url("planted/secret"), back); r.code != 2 || !strings.Contains(r.stderr, "escapes") {
		t.Errorf("reading through a planted symlink: %s", r)
	}
	os.Remove(filepath.Join(outside, "secret"))
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Errorf("something was written outside the root: %v", entries)
	}
}

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
	// 40 MiB+12345 .. +4096 lies in one 1 MiB chunk, across the
	// boundary of its first two 16 KiB leaves: only those cross.
	if sum.BytesSent != 32<<10 {
		t.Errorf("bytes_sent = %d, want two 16 KiB leaves of one chunk (%d)", sum.BytesSent, 32<<10)
	}
	sameTree(t, src, filepath.Join(s.root, "d"))
	r = xfer(t, "copy", src, s.url("d2"), "--chunk-size", "1M", "--json", "--delta=false")
	if _, sum := jsonRun(t, r); sum.BytesSent != 64<<20 {
		t.Errorf("a new destination gets the whole file: %d", sum.BytesSent)
	}
}

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
			src, dst, srcArg, dstArg := directionPaths(t, srv, dir)
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

// directionPaths returns the source and destination directories of a run
// in direction dir ("local-peer" or "peer-local") through srv, and the
// arguments that name them.
func directionPaths(t *testing.T, srv *server, dir string) (src, dst, srcArg, dstArg string) {
	src, dst = filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	srcArg, dstArg = src, srv.url(dir+"/dst")
	if dir == "peer-local" {
		src, srcArg, dstArg = filepath.Join(srv.root, dir, "src"), srv.url(dir+"/src"), dst
	} else {
		dst = filepath.Join(srv.root, dir, "dst")
	}
	return src, dst, srcArg, dstArg
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
