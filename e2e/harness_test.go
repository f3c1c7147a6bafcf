// Package e2e runs the built xfer binary the way users do: real `xfer serve`
// processes on 127.0.0.1 ports chosen at run time, real copies and syncs, and
// checks of what lands on disk, what is printed and which exit code comes back.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/logbuf"
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

// xferEnv is xfer with env added to the environment.
func xferEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, func(cmd *exec.Cmd) { cmd.Env = append(baseEnv(t), env...) }, xferBin, args...)
}

// runCmd runs name with args and returns what it did. prepare, when not
// nil, sets the command up (environment, directory, user, standard
// input); an environment it leaves unset is baseEnv. A run that takes
// longer than hangLimit gets SIGQUIT (a Go program then shows its
// goroutines) and fails the test.
func runCmd(t *testing.T, prepare func(*exec.Cmd), name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	if prepare != nil {
		prepare(cmd)
	}
	if cmd.Env == nil {
		cmd.Env = baseEnv(t)
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("running %s %q: %v", filepath.Base(name), args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q hung (stopped after %s)\n%s\n%s", filepath.Base(name), args, hangLimit, so.String(), se.String())
	}
	return result{so.String(), se.String(), cmd.ProcessState.ExitCode()}
}

func baseEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "XFER_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	// A fresh cache per run: no transport probe result is carried from
	// one run (or test) to the next unless a test passes its own.
	return append(env, "XDG_CONFIG_HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
}

// bgXfer is an xfer run in the background.
type bgXfer struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// startXfer starts xfer with args (an isolated config home) in the
// background; it is killed when the test ends.
func startXfer(t *testing.T, args ...string) *bgXfer {
	t.Helper()
	b := &bgXfer{cmd: exec.Command(xferBin, args...)}
	b.cmd.Env = baseEnv(t)
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	must(t, b.cmd.Start())
	t.Cleanup(b.kill)
	return b
}

// kill ends the run with SIGKILL and waits for it.
func (b *bgXfer) kill() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
}

// wait waits for the run (at most hangLimit) and returns what it did.
func (b *bgXfer) wait(t *testing.T) result {
	t.Helper()
	return b.waitWithin(t, hangLimit)
}

// waitWithin is wait with another limit.
func (b *bgXfer) waitWithin(t *testing.T, limit time.Duration) result {
	t.Helper()
	code := waitExit(t, b.cmd, limit)
	return result{b.stdout.String(), b.stderr.String(), code}
}

// waitExit waits for cmd (at most limit) and returns its exit code; a run
// that takes longer gets SIGQUIT and fails the test.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		// SIGQUIT makes Go print every goroutine's stack on stderr: wait
		// for it, so the failure shows where the run was stuck.
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		t.Fatalf("xfer %q did not end within %s; its stderr:\n%s", cmd.Args[1:], limit, tail(cmd.Stderr, 64<<10))
		return -1
	}
}

// tail is the last n bytes of what w holds when it is a buffer the
// harness gave a command as its output.
func tail(w io.Writer, n int) string {
	b, ok := w.(*bytes.Buffer)
	if !ok {
		return "(not kept)"
	}
	s := b.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// proc is a process running in the background, its stderr kept as its log.
type proc struct {
	cmd   *exec.Cmd
	logs  *logbuf.Buffer // its stderr: the first MiB
	done  chan struct{}  // closed once the process has exited and its log is complete
	ended atomic.Bool    // set as done is closed
	code  int            // the exit code, once done is closed
}

// startProc starts cmd and keeps its stderr; line, when not nil, sees
// each line of it as it comes (after the log has it).
func startProc(t *testing.T, cmd *exec.Cmd, line func(string)) *proc {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	p := &proc{cmd: cmd, logs: &logbuf.Buffer{Keep: 1 << 20}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %q: %v", filepath.Base(cmd.Path), cmd.Args[1:], err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.logs.Write([]byte(sc.Text() + "\n"))
			if line != nil {
				line(sc.Text())
			}
		}
		io.Copy(io.Discard, pr) // a line too long for the scanner must not block the process
	}()
	go func() {
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		}
		pw.Close()
		// The log is complete before anyone learns the process ended
		// (a fast exit used to race the last lines).
		<-scanned
		p.ended.Store(true)
		close(p.done)
	}()
	return p
}

// terminate sends SIGTERM and waits at most wait for the process to end,
// then kills it; it reports whether the process ended by itself.
func (p *proc) terminate(wait time.Duration) bool {
	if !p.alive() {
		return true
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
	}
	p.cmd.Process.Kill()
	<-p.done
	return false
}

func (p *proc) alive() bool { return !p.ended.Load() }

// awaitReady waits until ready delivers (what the process announced) and
// returns it with ok true, or returns ok false if the process ended
// first; after 20 s the process is killed and the test fails.
func (p *proc) awaitReady(t *testing.T, what string, ready <-chan string) (string, bool) {
	t.Helper()
	select {
	case v := <-ready:
		return v, true
	case <-p.done:
		return "", false
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("%s did not start:\n%s", what, p.logs)
		return "", false
	}
}

// server is a running `xfer serve`.
type server struct {
	*proc
	addr string
	root string
}

var listenRE = regexp.MustCompile(`listening on (\S+)`)

// startServer runs `xfer serve --root root --listen 127.0.0.1:0 extra...`
// and waits for its address. It is stopped when the test ends.
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
	return startServerCmd(t, cmd, root)
}

// startServerCmd starts cmd, an `xfer serve` set up by the caller (user,
// environment), serving root, and waits for its address. It is stopped
// when the test ends.
func startServerCmd(t *testing.T, cmd *exec.Cmd, root string) *server {
	t.Helper()
	addr := make(chan string, 1)
	p := startProc(t, cmd, func(line string) {
		if m := listenRE.FindStringSubmatch(line); m != nil {
			select {
			case addr <- m[1]:
			default:
			}
		}
	})
	s := &server{proc: p, root: root}
	t.Cleanup(s.stop)
	var ok bool
	if s.addr, ok = p.awaitReady(t, "xfer serve --root "+root, addr); !ok {
		t.Fatalf("xfer serve --root %s exited early:\n%s", root, p.logs)
	}
	return s
}

func (s *server) url(p string) string { return "xfer://" + s.addr + "/" + p }

func (s *server) stop() { s.terminate(10 * time.Second) }

// needTool returns the path of the program name, or skips the test (why
// says what for) where it is not installed.
func needTool(t testing.TB, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s (%s) is not installed: %v", why, name, err)
	}
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
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
	ProtoReason      string  `json:"proto_reason"`
	ProtoChoice      *struct {
		Proto string `json:"proto"`
		By    string `json:"by"`
		Rates []struct {
			Proto string  `json:"proto"`
			GBs   float64 `json:"gb_s"`
			Bytes int64   `json:"bytes"`
			Error string  `json:"error"`
		} `json:"rates"`
		MeasuredAt string `json:"measured_at"`
	} `json:"proto_choice"`
	DryRun        bool   `json:"dry_run"`
	SSHData       string `json:"ssh_data"`
	XattrsUpdated int64  `json:"xattrs_updated"`
	DirsCreated   int64  `json:"dirs_created"`
	// A removal's (delete, purge, a move's source) counts and exit.
	DirsRemoved   int64 `json:"dirs_removed"`
	SourceRemoved int64 `json:"source_removed"`
	ExitCode      int   `json:"exit_code"`
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
