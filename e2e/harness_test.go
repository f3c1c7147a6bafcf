// Package e2e runs the built xfer binary the way users do: real `xfer serve`
// processes on 127.0.0.1 ports chosen at run time, real copies and syncs, and
// checks of what lands on disk, what is printed and which exit code comes back.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// xferBin is the binary under test: $XFER_BIN, or one built by TestMain.
var xferBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	xferBin = os.Getenv("XFER_BIN")
	if xferBin == "" {
		dir, err := os.MkdirTemp("", "xfer-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		xferBin = filepath.Join(dir, "xfer")
		args := []string{"build", "-ldflags=-checklinkname=0", "-o", xferBin}
		if tags := os.Getenv("XFER_TAGS"); tags != "" {
			args = append(args, "-tags", tags)
		}
		args = append(args, "..")
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building xfer:", err)
			return 1
		}
	} else if abs, err := filepath.Abs(xferBin); err == nil {
		xferBin = abs
	}
	return m.Run()
}

// hangLimit is how long one xfer invocation may take before the test
// calls it hung.
const hangLimit = 40 * time.Second

// result is what one xfer invocation did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// xfer runs the binary with args and an isolated config home.
func xfer(t *testing.T, args ...string) result {
	t.Helper()
	return xferEnv(t, nil, args...)
}

func xferEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, xferBin, args...)
	// A hung run dumps its goroutines (SIGQUIT) so the failure shows where.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(baseEnv(t), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running xfer %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("xfer %v hung (stopped after %s)\n%s\n%s", args, hangLimit, so.String(), se.String())
	}
	return result{so.String(), se.String(), code}
}

func baseEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "XFER_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_CONFIG_HOME="+t.TempDir())
}

// server is a running `xfer serve`.
type server struct {
	addr string
	root string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

var listenRE = regexp.MustCompile(`listening on (\S+)`)

// startServer runs `xfer serve --root root --listen 127.0.0.1:0 extra...`
// and waits for its address. It is killed when the test ends.
func startServer(t *testing.T, root string, extra ...string) *server {
	t.Helper()
	return startServerOn(t, "127.0.0.1", root, extra...)
}

func startServerOn(t *testing.T, host, root string, extra ...string) *server {
	t.Helper()
	return startServerWrapped(t, nil, host, root, extra...)
}

// startServerWrapped is startServerOn with the server run under wrapper
// (for example prlimit with its options), when wrapper is not empty.
func startServerWrapped(t *testing.T, wrapper []string, host, root string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--listen", host + ":0"}, extra...)
	if root != "" {
		args = append(args, "--root", root)
	}
	cmd := exec.Command(xferBin, args...)
	if len(wrapper) > 0 {
		cmd = exec.Command(wrapper[0], append(append(wrapper[1:len(wrapper):len(wrapper)], xferBin), args...)...)
	}
	cmd.Env = baseEnv(t)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting xfer serve: %v", err)
	}
	s := &server{root: root, cmd: cmd, logs: &bytes.Buffer{}, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
			s.logs.WriteString(line + "\n")
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	select {
	case s.addr = <-addrCh:
	case <-s.done:
		t.Fatalf("xfer serve exited early:\n%s", s.logs.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("xfer serve did not start listening:\n%s", s.logs.String())
	}
	t.Cleanup(s.stop)
	return s
}

func (s *server) url(p string) string { return "xfer://" + s.addr + "/" + p }

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// node is what a tree comparison looks at.
type node struct {
	Type   string
	Mode   fs.FileMode
	Mtime  int64
	Size   int64
	Sum    string
	Target string
}

// snapshot walks dir without following symlinks.
func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{Mode: info.Mode().Perm() | info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)}
		switch {
		case info.Mode().IsRegular():
			n.Type, n.Size = "file", info.Size()
			n.Mtime = info.ModTime().UnixNano()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			n.Sum = hex.EncodeToString(h[:])
		case info.IsDir():
			n.Type = "dir"
			n.Mtime = info.ModTime().UnixNano()
		case info.Mode()&fs.ModeSymlink != 0:
			n.Type = "symlink"
			n.Mode = 0
			n.Target, _ = os.Readlink(p)
		default:
			n.Type = "other"
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

// sameTree fails the test unless got holds exactly what want holds: types,
// content, modes, mtimes and symlink targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := snapshot(t, want), snapshot(t, got)
	for p, wn := range w {
		if wn.Type == "other" {
			continue
		}
		gn, ok := g[p]
		if !ok {
			t.Errorf("%q missing at the destination", p)
			continue
		}
		if wn != gn {
			t.Errorf("%q differs:\n want %+v\n  got %+v", p, wn, gn)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%q at the destination but not at the source", p)
		}
	}
}

// oddTree makes a tree with the names and entries that trip copy tools up.
func oddTree(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"plain.txt":                "hello\n",
		"with space.txt":           "space",
		"ünïcødé/日本語.txt":          "unicode",
		"new\nline":                "newline in the name",
		"deep/a/b/c/d/e.txt":       "deep",
		"empty-file":               "",
		"dash-name/file":           "x",
		"dash/file":                "y",
		"-leading-dash":            "z",
		"exactly4096":              strings.Repeat("q", 4096),
		"big/multi-chunk.bin":      "", // filled below
		"mode/private":             "secret",
		"mode/exec.sh":             "#!/bin/sh\n",
		"pct%20and#hash?and*star":  "glob chars",
		"back\\slash":              "backslash",
		"tab\tname":                "tab",
		"trailing.dot.":            "dot",
		"UPPER/lower/MiXeD.txt":    "case",
		"link-target-dir/inner.md": "inner",
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRandom(t, filepath.Join(dir, "big/multi-chunk.bin"), 5<<20+12345, 1)
	must(t, os.Chmod(filepath.Join(dir, "mode/private"), 0o600))
	must(t, os.Chmod(filepath.Join(dir, "mode/exec.sh"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "ro-dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "ro-dir/f"), []byte("in a read-only dir"), 0o444))
	must(t, os.Chmod(filepath.Join(dir, "ro-dir"), 0o555))
	must(t, os.MkdirAll(filepath.Join(dir, "sticky"), 0o755))
	// A real sticky bit (os.Chmod ignores 0o1000), on modes that a server's
	// default umask (022) leaves alone.
	must(t, os.Chmod(filepath.Join(dir, "sticky"), os.ModeSticky|0o755))
	must(t, os.Symlink("plain.txt", filepath.Join(dir, "rel-link")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link-outside")))
	must(t, os.Symlink("../../outside/of/tree", filepath.Join(dir, "dangling-escape")))
	must(t, os.Symlink("link-target-dir", filepath.Join(dir, "dir-link")))
	// A fixed, old mtime on one file, to see mtimes preserved exactly.
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "plain.txt"), old, old))
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro-dir"), 0o755) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeRandom writes n pseudo-random bytes (deterministic per seed).
func writeRandom(t *testing.T, path string, n int64, seed uint64) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	x := seed*0x9E3779B97F4A7C15 + 1
	for n > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
			buf[i+4], buf[i+5], buf[i+6], buf[i+7] = byte(x>>32), byte(x>>40), byte(x>>48), byte(x>>56)
		}
		k := int64(len(buf))
		if k > n {
			k = n
		}
		_, err := f.Write(buf[:k])
		must(t, err)
		n -= k
	}
}

// summary is the last JSON line of a --json run.
type summary struct {
	Event            string  `json:"event"`
	FilesTransferred int64   `json:"files_transferred"`
	BytesTransferred int64   `json:"bytes_transferred"`
	BytesSent        int64   `json:"bytes_sent"`
	FilesSkipped     int64   `json:"files_skipped"`
	FilesDeleted     int64   `json:"files_deleted"`
	Errors           int64   `json:"errors"`
	DurationS        float64 `json:"duration_s"`
	Proto            string  `json:"proto"`
	DryRun           bool    `json:"dry_run"`
}

// jsonRun parses every line of a --json run; the last must be the summary.
func jsonRun(t *testing.T, r result) ([]map[string]any, summary) {
	t.Helper()
	var events []map[string]any
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stdout line is not JSON: %q\n%s", l, r)
		}
		events = append(events, m)
	}
	var s summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil || s.Event != "summary" {
		t.Fatalf("last line is not the summary: %q\n%s", lines[len(lines)-1], r)
	}
	return events, s
}

func init() {
	if runtime.GOOS != "linux" {
		panic("the e2e tests need Linux")
	}
}
