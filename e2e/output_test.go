package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// manySmallFiles writes n small files beneath dir.
func manySmallFiles(t *testing.T, dir string, n int, size int64) {
	t.Helper()
	for i := range n {
		writeRandom(t, filepath.Join(dir, fmt.Sprintf("d%02d/f%04d", i%10, i)), size, uint64(i+1))
	}
}

// waitForFiles waits (bounded) until dir holds at least n regular files.
func waitForFiles(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		count := 0
		filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && !strings.HasPrefix(info.Name(), ".xfer-") {
				count++
			}
			return nil
		})
		if count >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never held %d files", dir, n)
}

// TestInterruptIsOneLine: SIGINT or SIGTERM in the middle of a run with
// hundreds of files still to go prints one line saying the run was
// interrupted and what resumes it (no ERROR per pending file), the
// summary counts no errors and says the run was interrupted, the exit
// code is 128+signal (130, 143), and a rerun of the same command
// completes the tree.
func TestInterruptIsOneLine(t *testing.T) {
	src := t.TempDir()
	manySmallFiles(t, src, 600, 16<<10)
	srv := startServer(t, t.TempDir())
	tests := []struct {
		name   string
		dst    func() (arg, dir string)
		sig    syscall.Signal
		code   int
		json   bool
		srcArg string
	}{
		{"local SIGINT", func() (string, string) { d := filepath.Join(t.TempDir(), "d"); return d, d }, syscall.SIGINT, 130, false, src},
		{"to a peer SIGINT", func() (string, string) { return srv.url("p1"), filepath.Join(srv.root, "p1") }, syscall.SIGINT, 130, false, src},
		{"to a peer SIGTERM --json", func() (string, string) { return srv.url("p2"), filepath.Join(srv.root, "p2") }, syscall.SIGTERM, 143, true, src},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dstArg, dstDir := tt.dst()
			args := []string{"copy", tt.srcArg, dstArg, "--bwlimit", "1M"}
			if tt.json {
				args = append(args, "--json")
			}
			run := startXfer(t, args...)
			waitForFiles(t, dstDir, 30)
			must(t, run.cmd.Process.Signal(tt.sig))
			r := run.wait(t)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.code, r)
			}
			if tt.json {
				events, sum := jsonRun(t, r)
				var stopped, errs int
				for _, e := range events {
					switch e["event"] {
					case "stopped":
						stopped++
					case "error":
						errs++
					}
				}
				if stopped != 1 || errs != 0 || sum.Errors != 0 {
					t.Errorf("want one stopped event, no error events, errors 0: %d stopped, %d errors, summary errors %d\n%s",
						stopped, errs, sum.Errors, r)
				}
				var raw map[string]any
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				json.Unmarshal([]byte(lines[len(lines)-1]), &raw)
				if raw["stopped"] != "interrupted" {
					t.Errorf("summary lacks stopped=interrupted: %s", lines[len(lines)-1])
				}
				if r.stderr != "" {
					t.Errorf("--json printed on stderr: %q", r.stderr)
				}
			} else {
				errLines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(errLines) > 2 || strings.Contains(r.stderr, "ERROR") ||
					!strings.Contains(r.stderr, "interrupted") || !strings.Contains(r.stderr, "rerun the same command") {
					t.Errorf("want one line saying the run was interrupted and how to resume it, got %d lines:\n%s",
						len(errLines), r.stderr)
				}
				if !strings.Contains(r.stdout, "errors 0") || !strings.Contains(r.stdout, "interrupted") {
					t.Errorf("summary should count no errors and say interrupted:\n%s", r.stdout)
				}
			}
			// Rerun the same command: it completes.
			if r2 := xfer(t, append([]string{}, args[:3]...)...); r2.code != 0 {
				t.Fatalf("rerun: %s", r2)
			}
			sameTree(t, src, dstDir)
		})
	}
}

// TestMaxDurationIsOneLine: a run that reaches --max-duration says so in
// one line (no ERROR per pending file, no "context deadline exceeded"),
// counts no errors, exits 4, and the next run resumes.
func TestMaxDurationIsOneLine(t *testing.T) {
	src := t.TempDir()
	manySmallFiles(t, src, 400, 16<<10)
	writeRandom(t, filepath.Join(src, "big.bin"), 12<<20, 7)
	srv := startServer(t, t.TempDir())
	for _, mode := range []string{"plain", "json"} {
		t.Run(mode, func(t *testing.T) {
			dst := srv.url(mode)
			args := []string{"copy", src, dst, "--chunk-size", "1M", "--bwlimit", "2M", "--max-duration", "1500ms"}
			if mode == "json" {
				args = append(args, "--json")
			}
			r := xfer(t, args...)
			if r.code != 4 {
				t.Errorf("exit %d, want 4\n%s", r.code, r)
			}
			if strings.Contains(r.stdout+r.stderr, "deadline exceeded") || strings.Contains(r.stdout+r.stderr, "ERROR") {
				t.Errorf("Go-internal text or ERROR lines:\n%s", r)
			}
			if mode == "json" {
				events, sum := jsonRun(t, r)
				n := 0
				for _, e := range events {
					if e["event"] == "error" {
						t.Errorf("error event: %v", e)
					}
					if e["event"] == "stopped" {
						n++
						if msg, _ := e["msg"].(string); !strings.Contains(msg, "--max-duration") || !strings.Contains(msg, "rerun") {
							t.Errorf("stopped event: %v", e)
						}
					}
				}
				if n != 1 || sum.Errors != 0 {
					t.Errorf("want one stopped event and errors 0:\n%s", r)
				}
			} else {
				if l := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(l) != 1 || !strings.Contains(r.stderr, "--max-duration") {
					t.Errorf("want one line on stderr:\n%s", r.stderr)
				}
				if !strings.Contains(r.stdout, "errors 0") || !strings.Contains(r.stdout, "max-duration") {
					t.Errorf("summary:\n%s", r.stdout)
				}
			}
			if r2 := xfer(t, "copy", src, dst, "--chunk-size", "1M"); r2.code != 0 {
				t.Fatalf("the next run: %s", r2)
			}
			sameTree(t, src, filepath.Join(srv.root, mode))
		})
	}
}

// dropOnceProxy forwards connections to target; once the clients have
// sent after bytes in total, it cuts every open connection, once. Later
// connections pass untouched: the retry of the run succeeds.
type dropOnceProxy struct {
	ln    net.Listener
	after int64

	mu      sync.Mutex
	sent    int64
	dropped bool
	conns   []net.Conn
}

func startDropOnceProxy(t *testing.T, target string, after int64) *dropOnceProxy {
	t.Helper()
	p := &dropOnceProxy{after: after}
	p.ln = relay(t, target, p.pump)
	return p
}

// pump forwards client -> server, counting the bytes of connections made
// before the cut.
func (p *dropOnceProxy) pump(c, s net.Conn) {
	defer s.Close()
	p.mu.Lock()
	counted := !p.dropped
	if counted {
		p.conns = append(p.conns, c, s)
	}
	p.mu.Unlock()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if counted {
				p.count(int64(n))
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *dropOnceProxy) count(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent += n
	if p.sent >= p.after && !p.dropped {
		p.dropped = true
		for _, c := range p.conns {
			c.Close()
		}
	}
}

// TestRecoveredFailuresAreNotErrors: files cut off by a lost connection
// that the retry then transfers are not reported as errors: the run says
// (as a notice) that it retries, ends with exit 0, errors 0 and no ERROR
// line.
func TestRecoveredFailuresAreNotErrors(t *testing.T) {
	src := t.TempDir()
	manySmallFiles(t, src, 300, 32<<10)
	writeRandom(t, filepath.Join(src, "big.bin"), 8<<20, 3)
	srv := startServer(t, t.TempDir())
	p := startDropOnceProxy(t, srv.addr, 3<<20)
	// A forced transport: the bytes of auto's probe would be cut instead
	// of the copy's.
	r := xfer(t, "copy", src, "xfer://"+p.ln.Addr().String()+"/d", "--chunk-size", "1M", "--retries", "3", "--timeout", "5s", "--proto", "tcp")
	if r.code != 0 {
		t.Fatalf("the retry should complete the run: %s", r)
	}
	if !p.dropped {
		t.Fatal("the proxy never cut the connection: the test proves nothing")
	}
	if strings.Contains(r.stderr, "ERROR") || !strings.Contains(r.stdout, "errors 0") {
		t.Errorf("failures the retry recovered are reported as errors:\n%s", r)
	}
	if !strings.Contains(r.stderr, "NOTICE") || !strings.Contains(r.stderr, "retrying") {
		t.Errorf("no notice of the retry:\n%s", r)
	}
	if n := strings.Count(r.stderr, "\n"); n > 3 {
		t.Errorf("%d lines on stderr for one lost connection:\n%s", n, r.stderr)
	}
	sameTree(t, src, filepath.Join(srv.root, "d"))
}

// TestBwlimitHoldsShortRuns: over a run of 5 s, bytes / elapsed (measured
// around the whole process) stay within 10% above --bwlimit, for large
// files (chunks) and small ones (batches), to a peer and from one.
func TestBwlimitHoldsShortRuns(t *testing.T) {
	const limit = 4 << 20
	big, small := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(big, "f.bin"), 20<<20, 41)
	manySmallFiles(t, small, 320, 64<<10) // 20 MiB
	srv := startServer(t, t.TempDir())
	srvSrc := startServer(t, big)
	tests := []struct {
		name     string
		src, dst string
		bytes    int64
	}{
		{"large file to a peer", big, srv.url("big"), 20 << 20},
		{"small files locally", small, filepath.Join(t.TempDir(), "small"), 20 << 20},
		{"large file from a peer", srvSrc.url(""), filepath.Join(t.TempDir(), "pulled"), 20 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := xfer(t, "copy", tt.src, tt.dst, "--bwlimit", "4M", "--chunk-size", "4M")
			elapsed := time.Since(start)
			if r.code != 0 {
				t.Fatal(r)
			}
			got := float64(tt.bytes) / elapsed.Seconds()
			t.Logf("%d bytes in %s: %.2f MiB/s at --bwlimit 4M", tt.bytes, elapsed, got/(1<<20))
			if got > 1.10*limit {
				t.Errorf("%.2f MiB/s: more than 10%% over --bwlimit 4M", got/(1<<20))
			}
			// Well below would mean the limiter throttles too hard (the
			// bound is loose: the machine may be busy).
			if got < 0.70*limit {
				t.Errorf("%.2f MiB/s: far below --bwlimit 4M", got/(1<<20))
			}
		})
	}
}

// TestJSONTimesAndDryRunEvents: every JSON line carries "time" (RFC 3339,
// UTC, milliseconds); a dry run emits the same event names as the real
// run that follows, each marked dry_run.
func TestJSONTimesAndDryRunEvents(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "dir/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "dir/a.txt"), []byte("a"), 0o644))
	writeRandom(t, filepath.Join(src, "big.bin"), 5<<20, 8)
	must(t, os.Symlink("dir/a.txt", filepath.Join(src, "link")))
	srv := startServer(t, t.TempDir())
	dst := srv.url("d")
	must(t, os.MkdirAll(filepath.Join(srv.root, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(srv.root, "d/extra"), []byte("x"), 0o644))
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	names := func(r result, dry bool) map[string]bool {
		events, _ := jsonRun(t, r)
		got := map[string]bool{}
		for _, e := range events {
			if ts, _ := e["time"].(string); !stamp.MatchString(ts) {
				t.Errorf("line without an RFC 3339 UTC millisecond time: %v", e)
			}
			kind, _ := e["event"].(string)
			switch kind {
			case "summary", "notice", "skip":
				continue
			}
			if d, _ := e["dry_run"].(bool); d != dry {
				t.Errorf("event %v: dry_run %v in a run with --dry-run=%v", e, e["dry_run"], dry)
			}
			got[kind] = true
		}
		return got
	}
	dry := xfer(t, "sync", src, dst, "--json", "--dry-run", "--chunk-size", "1M")
	if dry.code != 0 {
		t.Fatal(dry)
	}
	real := xfer(t, "sync", src, dst, "--json", "--chunk-size", "1M")
	if real.code != 0 {
		t.Fatal(real)
	}
	d, r := names(dry, true), names(real, false)
	for _, want := range []string{"transfer", "mkdir", "symlink", "delete"} {
		if !r[want] {
			t.Errorf("the real run has no %q event: %v", want, r)
		}
	}
	if fmt.Sprint(d) != fmt.Sprint(r) {
		t.Errorf("event names differ: dry run %v, real run %v", d, r)
	}
}

// TestQuietAndTransportSummary: -q silences a dry run's plan; the human
// summary names the transport, and why it was chosen only with -v.
func TestQuietAndTransportSummary(t *testing.T) {
	src := t.TempDir()
	manySmallFiles(t, src, 5, 100)
	srv := startServer(t, t.TempDir())
	if r := xfer(t, "copy", "-q", "--dry-run", src, srv.url("q")); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("-q --dry-run printed something: %s", r)
	}
	r := xfer(t, "copy", src, srv.url("a"))
	proto := regexp.MustCompile(`, proto ([a-z-]+)$`)
	if r.code != 0 || !proto.MatchString(strings.TrimSpace(r.stdout)) {
		t.Errorf("the summary should end by naming the transport, and nothing else:\n%s", r)
	}
	r = xfer(t, "copy", "-v", src, srv.url("b"))
	if r.code != 0 || !regexp.MustCompile(`, proto [a-z-]+ \(.+\)`).MatchString(r.stdout) {
		t.Errorf("-v should give the reason for the transport:\n%s", r)
	}
	r = xfer(t, "copy", src, "xfer://127.0.0.1:1/x")
	if strings.Contains(r.stderr, "connect: connect:") || strings.Contains(r.stdout, "proto local") {
		t.Errorf("unreachable peer: doubled Go text or a transport that was never used:\n%s", r)
	}
}

// TestProgressDisplayInTmux drives the binary in a real terminal (a tmux
// pane of 40, 55 and 80 columns): the display names the files in flight,
// has a labeled ETA, and each redraw replaces the previous frame: no
// wrapped or leftover lines, at any of these widths; once done, only the
// summary remains.
func TestProgressDisplayInTmux(t *testing.T) {
	tmux := needTool(t, "tmux", "the terminal (apt-get install tmux)")
	src := t.TempDir()
	for i := range 3 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("a-rather-long-directory-name/file-%d.bin", i)), 4<<20, uint64(i+60))
	}
	srv := startServer(t, t.TempDir())
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	frameLine := regexp.MustCompile(`^(Transferred: |\d.* ETA |Files:? | \* )`)
	for _, cols := range []int{40, 55, 80} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			name := fmt.Sprintf("w%d", cols)
			script := fmt.Sprintf("env XDG_CONFIG_HOME=%s %s copy %s %s --bwlimit 4M --chunk-size 1M; echo EXIT=$?; sleep 60",
				t.TempDir(), xferBin, src, srv.url(name))
			tm("new-session", "-d", "-s", name, "-x", fmt.Sprint(cols), "-y", "24", script)
			defer tm("kill-session", "-t", name)
			sawETA, sawFlight := false, false
			deadline := time.Now().Add(25 * time.Second)
			var last string
			for time.Now().Before(deadline) {
				time.Sleep(250 * time.Millisecond)
				pane := tm("capture-pane", "-p", "-t", name)
				last = pane
				if strings.Contains(pane, "EXIT=") || strings.Contains(pane, "transferred ") {
					// The display is gone; the summary is an ordinary
					// line, which a narrow terminal may wrap.
					break
				}
				var lines []string
				for _, l := range strings.Split(pane, "\n") {
					if strings.TrimSpace(l) != "" {
						lines = append(lines, l)
					}
				}
				if len(lines) == 0 {
					continue
				}
				for _, l := range lines {
					if !frameLine.MatchString(l) {
						t.Errorf("at %d columns, a line that is not part of the display (junk or a wrapped line): %q\npane:\n%s", cols, l, pane)
					}
				}
				if n := strings.Count(pane, "ETA "); n > 1 {
					t.Errorf("at %d columns, %d frames on screen:\n%s", cols, n, pane)
				}
				if strings.Contains(lines[0], "ETA ") && !strings.Contains(lines[0], "ETA -") {
					sawETA = true
				}
				for _, l := range lines {
					if strings.HasPrefix(l, " * ") && strings.Contains(l, "file-") {
						sawFlight = true
					}
				}
			}
			if !strings.Contains(last, "EXIT=0") {
				t.Fatalf("the run did not finish with exit 0:\n%s", last)
			}
			if !sawETA || !sawFlight {
				t.Errorf("at %d columns: labeled ETA seen %v, file in flight seen %v", cols, sawETA, sawFlight)
			}
			final := strings.TrimSpace(last[:strings.Index(last, "EXIT=")])
			if strings.Contains(final, "ETA") || strings.Contains(final, "Files") ||
				!strings.HasPrefix(final, "transferred 3 files") {
				t.Errorf("after the run the pane should hold only the summary:\n%s", last)
			}
		})
	}
	_ = context.Background
}

// TestMaxDurationBoundsConnecting: --max-duration used not to bound the
// handshake: against a peer that accepts and never answers, a 500 ms limit
// ran for the whole --connect-timeout.
func TestMaxDurationBoundsConnecting(t *testing.T) {
	silent := fakePeer(t, "", false) // holds each connection open, silent, until the test ends
	start := time.Now()
	r := xfer(t, "copy", t.TempDir(), "xfer://"+silent+"/d", "--max-duration", "500ms",
		"--connect-timeout", "20s", "--retries", "0")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("run took %s with --max-duration 500ms: %s", d, r)
	}
	if r.code != 4 || strings.Contains(r.stderr, "deadline exceeded") {
		t.Fatalf("want exit 4 and no Go-internal text: %s", r)
	}
}

// TestQuietAndPlainOutput: -q prints nothing on success; plain output (not
// a terminal) has no carriage returns and ends with a summary line.
func TestQuietAndPlainOutput(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	r := xfer(t, "copy", "-q", src, filepath.Join(t.TempDir(), "q"))
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("-q printed something: %s", r)
	}
	r = xfer(t, "copy", src, filepath.Join(t.TempDir(), "p"))
	if r.code != 0 || strings.Contains(r.stdout, "\r") || !strings.Contains(r.stdout, "transferred 1 file") {
		t.Errorf("plain output: %q", r.stdout)
	}
	r = xfer(t, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "tcp") || !strings.Contains(r.stdout, "usable") {
		t.Errorf("version: %s", r)
	}
}
