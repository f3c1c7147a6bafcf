// Package sshconn runs the far side of an ssh:// location: the client
// starts `xfer serve --stdio` through the system's ssh and turns the ssh
// process's pipes into the session's control connection; data streams
// connect straight to the far side's one-run listener over TCP, or, when
// that cannot be reached (or inline is asked for), each travels in an ssh
// channel of its own to a relay beside the far side. The server half
// (ServeStdio, Relay, DataListener) is what `xfer serve --stdio` runs.
package sshconn

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Data paths: how a session's data streams reach the far side.
const (
	DataAuto   = "auto"   // direct, falling back to inline
	DataDirect = "direct" // TCP to the far side's listener only
	DataInline = "inline" // inside ssh channels only
)

// directWait bounds an auto-mode attempt at a direct data stream.
const directWait = 2 * time.Second

// Target is the account an ssh:// location names.
type Target struct {
	User string // empty: ssh's default (its config, or the local user)
	Host string
	Port string // empty: ssh's default
}

func (t Target) String() string {
	s := "ssh://"
	if t.User != "" {
		s += t.User + "@"
	}
	if t.Port != "" {
		return s + net.JoinHostPort(t.Host, t.Port)
	}
	return s + t.Host
}

// Options say how to reach and start the far side.
type Options struct {
	// Command is the ssh program and its options (--ssh-command); empty:
	// "ssh".
	Command []string
	// XferPath is the xfer binary on the far side (--xfer-path); empty:
	// "xfer" from the remote user's PATH.
	XferPath string
	// Root is the far side's --root: an absolute path, "~" or "~/DIR".
	Root string
	// Data is DataAuto, DataDirect or DataInline.
	Data string
	// Timeout bounds starting the far side and each data stream.
	Timeout time.Duration
}

// Far is a running `xfer serve --stdio` on the far side of an ssh
// connection.
type Far struct {
	t      Target
	o      Options
	cmd    *exec.Cmd
	conn   net.Conn
	stderr *tail
	hello  wire.StdioHello
	done   chan struct{} // closed when cmd has been waited for
	err    error         // cmd's exit, once done

	mu     sync.Mutex
	inline bool       // data streams go through ssh (chosen or fallen back to)
	relays []*process // the ssh processes carrying inline data streams
}

// Start runs `xfer serve --stdio` on t through ssh and reads its
// announcement. Failures are one-line errors with exit code 3: ssh could
// not connect or log in, xfer is missing there, or it speaks another
// protocol version.
func Start(ctx context.Context, t Target, o Options) (*Far, error) {
	if o.Timeout <= 0 {
		o.Timeout = wire.DefaultConnectTimeout
	}
	if o.Data == "" {
		o.Data = DataAuto
	}
	args := []string{"serve", "--stdio", "--root", o.Root}
	if o.Data == DataInline {
		// Nothing outside the far host needs the listener: a Unix socket
		// in a private directory then, and no network port.
		args = append(args, "--stdio-listen", ListenUnix)
	}
	p, err := startProcess(t, o, args)
	if err != nil {
		return nil, err
	}
	f := &Far{t: t, o: o, cmd: p.cmd, conn: p.conn, stderr: p.stderr, done: make(chan struct{}), inline: o.Data == DataInline}
	go func() {
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	stop := context.AfterFunc(ctx, func() { f.conn.SetDeadline(time.Now()) })
	defer stop()
	f.conn.SetDeadline(time.Now().Add(o.Timeout))
	typ, payload, err := wire.ReadFrameExact(f.conn, 64<<10)
	f.conn.SetDeadline(time.Time{})
	if err != nil {
		if ctx.Err() != nil {
			return nil, f.fail(fmt.Errorf("starting xfer on %s: %w", t, context.Cause(ctx)))
		}
		return nil, f.fail(f.startError(err))
	}
	if typ != wire.FrameStdio || wire.Decode(payload, &f.hello) != nil || f.hello.Proto != "xfer-stdio" {
		return nil, f.fail(exitcode.Peerf("%s: the far side printed something other than xfer's announcement (does the remote shell's startup file print text? is %s xfer?)", t, f.xferPath()))
	}
	if f.hello.Version != wire.ProtocolVersion {
		return nil, f.fail(exitcode.Peerf("xfer on %s speaks protocol version %d, this client %d: install the same xfer release there, or pass --xfer-path", t.Host, f.hello.Version, wire.ProtocolVersion))
	}
	if _, err := hex.DecodeString(f.hello.Token); err != nil || f.hello.Token == "" || f.hello.DataAddr == "" {
		return nil, f.fail(exitcode.Peerf("%s: malformed announcement from xfer serve --stdio", t))
	}
	return f, nil
}

func (f *Far) xferPath() string { return cmp.Or(f.o.XferPath, "xfer") }

// startError explains why the far side ended (or stayed silent) before
// its announcement.
func (f *Far) startError(readErr error) error {
	var ne net.Error
	if errors.As(readErr, &ne) && ne.Timeout() {
		select {
		case <-f.done:
		default:
			return exitcode.Peerf("%s: no answer from ssh within %s (is ssh asking for a password? use a key or an agent)", f.t, f.o.Timeout)
		}
	}
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		return exitcode.Peerf("%s: the far side closed its output but ssh did not end", f.t)
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(f.err, &ee) {
		code = ee.ExitCode()
	}
	last := f.stderr.lastLine()
	switch {
	case code == 255:
		return exitcode.Peerf("ssh to %s failed: %s", f.t, cmp.Or(last, "ssh exited with status 255"))
	case code == 127 || code == 126: // the remote shell's "not found" and "cannot execute"
		return exitcode.Peerf("xfer not found on %s: install it or pass --xfer-path", f.t.Host)
	case strings.Contains(last, "unknown flag"):
		return exitcode.Peerf("xfer on %s does not know serve --stdio (an older release?): install the same xfer release there, or pass --xfer-path", f.t.Host)
	case last != "":
		return exitcode.Peerf("xfer serve --stdio on %s failed: %s", f.t.Host, last)
	default:
		return exitcode.Peerf("xfer serve --stdio on %s ended before it started (exit status %d)", f.t.Host, code)
	}
}

func (f *Far) fail(err error) error {
	f.Close()
	return err
}

// Conn is the control connection: the ssh process's standard input and
// output, past the announcement.
func (f *Far) Conn() net.Conn { return f.conn }

// Token is the far side's one-run secret, for the session's
// authentication.
func (f *Far) Token() []byte {
	b, _ := hex.DecodeString(f.hello.Token)
	return b
}

// DataAddr is the far side's listener (host:port) that third-party
// sessions connect to; "" when it listens on a Unix socket
// (--ssh-data=inline), which only ssh relays reach.
func (f *Far) DataAddr() string {
	if f.hello.DataNet == "unix" {
		return ""
	}
	return f.hello.DataAddr
}

// DataPath is DataDirect or DataInline: how the data streams opened so
// far travel.
func (f *Far) DataPath() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inline {
		return DataInline
	}
	return DataDirect
}

// DialData opens data stream i: straight to the far side's listener, or
// through a relay in an ssh channel of its own when that fails (auto) or
// is asked for (inline). The session's join proof authenticates it either
// way.
func (f *Far) DialData(ctx context.Context, i int) (net.Conn, error) {
	f.mu.Lock()
	inline := f.inline || f.hello.DataNet == "unix"
	f.mu.Unlock()
	if !inline {
		// A listener behind a firewall or NAT often drops the attempt
		// rather than refuse it: in auto mode, wait only briefly, so that
		// the inline streams still fit in the session's set-up time.
		wait := f.o.Timeout
		if f.o.Data == DataAuto {
			wait = min(wait/4, directWait)
		}
		d := net.Dialer{Timeout: wait, KeepAlive: 15 * time.Second}
		c, err := d.DialContext(ctx, "tcp", f.hello.DataAddr)
		if err == nil || f.o.Data == DataDirect {
			if err != nil {
				// "connection refused", without Go's "dial tcp ADDR: connect:"
				var se *os.SyscallError
				if errors.As(err, &se) && se.Err != nil {
					err = se.Err
				}
				return nil, fmt.Errorf("the far side's listener %s (--ssh-data=direct): %v", f.hello.DataAddr, err)
			}
			return c, nil
		}
		f.mu.Lock()
		f.inline = true
		f.mu.Unlock()
	}
	p, err := startProcess(f.t, f.o, []string{"serve", "--stdio-relay", RelayTarget(f.hello)})
	if err != nil {
		return nil, fmt.Errorf("data stream %d through ssh: %w", i, err)
	}
	f.mu.Lock()
	f.relays = append(f.relays, p)
	f.mu.Unlock()
	go p.cmd.Wait()
	return p.conn, nil
}

// Close ends the far side: its input closes, and ssh is killed if it
// has not ended within a few seconds.
func (f *Far) Close() error {
	f.conn.Close()
	f.mu.Lock()
	relays := f.relays
	f.relays = nil
	f.mu.Unlock()
	for _, r := range relays {
		r.conn.Close()
		r.cmd.Process.Kill()
	}
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
	return nil
}

// process is one ssh process whose standard input and output are conn.
type process struct {
	cmd    *exec.Cmd
	conn   net.Conn
	stderr *tail
}

// startProcess runs `ssh [options] -- [user@]host 'xfer' ARGS...`, its
// standard input and output one end of a socket pair whose other end is
// the returned connection.
func startProcess(t Target, o Options, xferArgs []string) (*process, error) {
	command := o.Command
	if len(command) == 0 {
		command = []string{"ssh"}
	}
	args := append([]string(nil), command[1:]...)
	if t.Port != "" {
		args = append(args, "-p", t.Port)
	}
	if t.User != "" {
		args = append(args, "-l", t.User)
	}
	remote := []string{shellQuote(cmp.Or(o.XferPath, "xfer"))}
	for _, a := range xferArgs {
		remote = append(remote, shellQuote(a))
	}
	args = append(args, "--", t.Host, strings.Join(remote, " "))
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, exitcode.Peerf("%s: socket pair for ssh: %v", t, err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "ssh"), os.NewFile(uintptr(fds[1]), "ssh")
	defer theirs.Close()
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, exitcode.Peerf("%s: socket pair for ssh: %v", t, err)
	}
	p := &process{conn: conn, stderr: &tail{}}
	p.cmd = exec.Command(command[0], args...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = theirs, theirs, p.stderr
	if err := p.cmd.Start(); err != nil {
		conn.Close()
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT) {
			return nil, exitcode.Peerf("cannot run %s for %s: not found (install OpenSSH's client, or name it with --ssh-command)", command[0], t)
		}
		return nil, exitcode.Peerf("cannot run %s for %s: %v", command[0], t, err)
	}
	return p, nil
}

// shellQuote quotes s for the remote user's POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SplitCommand splits an --ssh-command value into words as a POSIX shell
// would: blanks separate words, single and double quotes group them, a
// backslash escapes the next character. No expansion is done.
func SplitCommand(s string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		inTok bool
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == '\'':
			cur.WriteRune(r)
		case r == '\\' && i+1 < len(rs) && (quote == 0 || strings.ContainsRune(`"\$`+"`", rs[i+1])):
			i++
			cur.WriteRune(rs[i])
			inTok = true
		case quote == '"':
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inTok = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced %c quote", quote)
	}
	if inTok {
		out = append(out, cur.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return out, nil
}

// tail keeps the last few KiB written to it (ssh's standard error).
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 8 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line written, printable and trimmed.
func (t *tail) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(t.buf), []byte("\n"))
	s := strings.TrimSpace(string(lines[len(lines)-1]))
	s = strings.TrimPrefix(s, "Error: ")
	s = strings.TrimPrefix(s, "xfer: ")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
