package transfer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"
)

// serveBinary starts the built xfer binary ($XFER_BIN, else one built now)
// as `xfer serve` on 127.0.0.1 under prlimit --nofile=N, and returns its
// address and a check that it is still running.
func serveBinary(t *testing.T, nofile int, args ...string) (string, func() bool) {
	t.Helper()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	bin := os.Getenv("XFER_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "xfer")
		build := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", bin, "..")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building xfer: %v\n%s", err, out)
		}
	}
	cmd := exec.Command("prlimit", append([]string{fmt.Sprintf("--nofile=%d:%d", nofile, nofile), bin, "serve",
		"--listen", "127.0.0.1:0", "--root", t.TempDir(), "--no-fsync"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`listening on (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	select {
	case a := <-addr:
		return a, func() bool {
			select {
			case <-done:
				return false
			default:
				return true
			}
		}
	case <-done:
		t.Fatal("xfer serve exited before listening")
	case <-time.After(20 * time.Second):
		t.Fatal("xfer serve did not start")
	}
	return "", nil
}

// TestOpenManyFilesBounded: one authenticated `open` naming 1,200 files
// used to exhaust a 1,024-descriptor limit and kill the server. A session
// now holds at most --max-open-files; the rest are refused one by one and
// the server carries on.
func TestOpenManyFilesBounded(t *testing.T) {
	addr, alive := serveBinary(t, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := session.Dial(ctx, addr, session.DialOptions{Proto: "tcp", Streams: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	specs := make([]wire.FileSpec, 1200)
	for i := range specs {
		specs[i] = wire.FileSpec{FID: uint64(i + 1), Path: fmt.Sprintf("f%04d", i), Size: 8 << 20, Mode: 0o644, ChunkSize: 4 << 20}
	}
	resp, err := s.Call(ctx, &wire.Req{Op: wire.OpOpen, Files: specs})
	if err != nil {
		t.Fatalf("open of 1,200 files: %v", err)
	}
	opened, refused := 0, 0
	for _, e := range resp.Errs {
		switch {
		case e == "":
			opened++
		case strings.Contains(e, "too many files open in this session"):
			refused++
		default:
			t.Fatalf("unexpected refusal: %s", e)
		}
	}
	if opened != session.DefaultMaxOpenFiles || refused != 1200-session.DefaultMaxOpenFiles {
		t.Fatalf("opened %d, refused %d; want %d and %d", opened, refused, session.DefaultMaxOpenFiles, 1200-session.DefaultMaxOpenFiles)
	}
	// The server still accepts and serves a new session.
	s2, err := session.Dial(ctx, addr, session.DialOptions{Proto: "tcp", Streams: 1})
	if err != nil || !alive() {
		t.Fatalf("server after the open: alive %v, %v", alive(), err)
	}
	s2.Close()
}
