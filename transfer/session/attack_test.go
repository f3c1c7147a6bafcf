package session

// Attacks on a real `xfer serve` process, speaking the protocol through
// this package's own session code and then sending what no honest peer
// sends. The server is the built binary ($XFER_BIN, or built here once).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/xfer-io/xfer/backends/tcp" // the transport the tests use

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/logbuf"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// xferBinary is the binary under test: $XFER_BIN, or one built from this
// tree (with $XFER_TAGS) the first time it is asked for.
func xferBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("XFER_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "xfer-attack-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "xfer")
		args := []string{"build", "-ldflags=-checklinkname=0", "-o", binPath}
		if tags := os.Getenv("XFER_TAGS"); tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, "../..")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building xfer: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// served is a running `xfer serve`.
type served struct {
	addr string
	cmd  *exec.Cmd
	logs *logbuf.Buffer // the start of its output (a crash dump is long)
	done chan struct{}
}

var listenLine = regexp.MustCompile(`listening on (\S+)`)

// serveProcess starts `prefix... xfer serve --root root --listen
// 127.0.0.1:0 extra...` and waits until it listens.
func serveProcess(t *testing.T, prefix []string, root string, extra ...string) *served {
	t.Helper()
	args := append(append(prefix, xferBinary(t), "serve", "--listen", "127.0.0.1:0", "--root", root), extra...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	pr, pw := io.Pipe()
	s := &served{cmd: cmd, logs: &logbuf.Buffer{Keep: 2000}, done: make(chan struct{})}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			s.logs.Write([]byte(sc.Text() + "\n"))
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	select {
	case s.addr = <-addr:
	case <-s.done:
		t.Fatalf("xfer serve exited early:\n%s", s.logs)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("xfer serve did not start:\n%s", s.logs)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

func (s *served) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// status reads a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func (s *served) status(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the server's status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in the server's status", field)
	return 0
}

// copyWorks checks that an ordinary client still gets files through.
func copyWorks(t *testing.T, s *served, name string) {
	t.Helper()
	src := t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", i*100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, xferBinary(t), "copy", src, "xfer://"+s.addr+"/"+name)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a client after the attack: %v\n%s\nserver log:\n%s", err, out, s.logs)
	}
}

func attackSession(t *testing.T, srv *served, idle time.Duration) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Dial(ctx, srv.addr, DialOptions{Proto: "tcp", Streams: 4, IdleTimeout: idle})
	if err != nil {
		time.Sleep(100 * time.Millisecond)
		if !srv.alive() {
			t.Fatalf("the server died:\n%s", srv.logs)
		}
		t.Fatalf("dialing the server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestAttackBatchCount: a small-file batch declaring millions of files in
// one 16 MiB message. The server used to allocate for the declared count
// up front (about 2.5 GB) and died of it under an address-space limit;
// now the count is checked against the payload first, the session is
// dropped as a protocol error, and the server keeps serving.
func TestAttackBatchCount(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	srv := serveProcess(t, []string{"prlimit", "--as=3221225472", "--"}, t.TempDir())
	for _, count := range []uint64{wire.MaxBatchPayload - 1, wire.MaxBatchFiles + 1, 1 << 40} {
		s := attackSession(t, srv, 0)
		e := wire.Enc{}
		e.U8(wire.MsgBatch)
		e.Uvar(1)
		e.Uvar(count)
		payload := make([]byte, wire.MaxBatchPayload)
		s.lanes[0].st.Send(e.Buf, payload)
		select {
		case <-s.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("count %d: the server neither refused the batch nor answered", count)
		}
		if !srv.alive() {
			t.Fatalf("count %d: the server died:\n%s", count, srv.logs)
		}
	}
	if hwm := srv.status(t, "VmHWM"); hwm > 512<<10 {
		t.Errorf("the server's peak memory reached %d MiB", hwm>>10)
	}
	copyWorks(t, srv, "after")
}

// TestAttackStalledStreams: many data streams each announce a 64 MiB
// chunk, send nearly all of it and stall. Each used to pin its buffer for
// as long as the connection lived (16 streams, 1.07 GB); now every buffer
// comes from the server's pool (--max-memory), streams beyond it wait
// without allocating, a stream stalled in the middle of a message for the
// idle timeout loses its session, and ordinary clients get through.
func TestAttackStalledStreams(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		limit int64 // bytes the pool may hold
	}{
		{"default", nil, DefaultMaxMemory},
		{"max-memory", []string{"--max-memory", "256M", "--max-session-memory", "128M"}, 256 << 20},
	}
	payload := filepath.Join(t.TempDir(), "payload")
	// All but the last 4 KiB of a 64 MiB chunk: the server holds it all
	// and waits for the rest (sparse: costs no disk).
	f, err := os.Create(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(wire.MaxChunkSize - 4096); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveProcess(t, nil, t.TempDir(), append([]string{"--timeout", "5s"}, tc.flags...)...)
			base := srv.status(t, "VmRSS")
			var wg sync.WaitGroup
			sent := make(chan struct{}, 64)
			streams := 0
			for range 6 {
				// Keep the control connections busy with pings, so that
				// only the stall itself can end these sessions.
				s := attackSession(t, srv, 2*time.Second)
				for _, l := range s.Lanes() {
					streams++
					wg.Add(1)
					go func() {
						defer wg.Done()
						l.st.SendFile(wire.ChunkHeader(1, 0, 0, hashtree.Digest{}), f, 0, wire.MaxChunkSize)
						sent <- struct{}{}
					}()
				}
			}
			// Every stream's message is in, or the rest wait for memory.
			waited := 0
			deadline := time.After(15 * time.Second)
		wait:
			for waited < streams {
				select {
				case <-sent:
					waited++
				case <-deadline:
					break wait
				}
			}
			time.Sleep(500 * time.Millisecond) // the last payload bytes reach the buffers
			rss := srv.status(t, "VmHWM") - base
			// The pool's limit, plus what the runtime keeps beside it.
			if bound := (tc.limit + 192<<20) >> 10; rss > bound {
				t.Errorf("%d stalled streams: the server grew by %d MiB (bound %d MiB)", streams, rss>>10, bound>>10)
			}
			if !srv.alive() {
				t.Fatalf("the server died:\n%s", srv.logs)
			}
			copyWorks(t, srv, "after")
			wg.Wait()
		})
	}
}
