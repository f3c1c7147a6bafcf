package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xfer-io/xfer/mover"
)

// daemonProc is a running `xfer daemon`.
type daemonProc struct {
	*proc
	socket string
	peers  string // --listen address, if any
}

func (d *daemonProc) log() string { return d.logs.String() }

var (
	daemonReadyRE   = regexp.MustCompile(`listening on (\S+)`)
	daemonPeersRE   = regexp.MustCompile(`peers on (\S+?)\)`)
	daemonMetricsRE = regexp.MustCompile(`metrics on (http://\S+)/metrics`)
)

// runDaemon starts `xfer daemon args...` with env and returns once it
// listens, or with ok false if it exited first (its exit code in code).
func runDaemon(t *testing.T, env []string, extra []*os.File, args ...string) (*daemonProc, bool) {
	t.Helper()
	return runDaemonCmd(t, exec.Command(xferBin, append([]string{"daemon"}, args...)...), env, extra)
}

func runDaemonCmd(t *testing.T, cmd *exec.Cmd, env []string, extra []*os.File) (*daemonProc, bool) {
	t.Helper()
	cmd.Env = append(baseEnv(t), env...)
	cmd.ExtraFiles = extra
	d := &daemonProc{}
	ready := make(chan string, 1)
	d.proc = startProc(t, cmd, func(line string) {
		if m := daemonReadyRE.FindStringSubmatch(line); m != nil && d.socket == "" {
			d.socket = m[1]
			if p := daemonPeersRE.FindStringSubmatch(line); p != nil {
				d.peers = p[1]
			}
			ready <- m[1]
		}
	})
	t.Cleanup(func() { d.stop(t) })
	_, ok := d.awaitReady(t, "xfer daemon", ready)
	return d, ok
}

// stop sends SIGTERM and waits; it returns the exit code.
func (d *daemonProc) stop(t *testing.T) int {
	if !d.terminate(20 * time.Second) {
		t.Errorf("xfer daemon did not stop on SIGTERM:\n%s", d.log())
	}
	return d.code
}

func (d *daemonProc) client(t *testing.T) *mover.Client {
	t.Helper()
	c, err := mover.Dial(d.socket)
	if err != nil {
		t.Fatalf("%v\n%s", err, d.log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDaemonOps(t *testing.T) {
	dir := t.TempDir()
	peerStore := filepath.Join(dir, "peer")
	srv := startServer(t, t.TempDir(), "--cas", peerStore)
	cfg := filepath.Join(dir, "xfer.yaml")
	must(t, os.WriteFile(cfg, []byte("remotes:\n  nodeB:\n    address: "+srv.addr+"\n"), 0o600))
	d, ok := runDaemon(t, nil, nil, "--socket", filepath.Join(dir, "m.sock"), "--cas", filepath.Join(dir, "cas"), "--config", cfg)
	if !ok {
		t.Fatalf("daemon exited:\n%s", d.log())
	}
	c := d.client(t)
	ctx := context.Background()
	remote := "xfer://" + srv.addr
	for i, n := range []int64{0, 4096, 1 << 20, 5<<20 + 3} {
		path := filepath.Join(dir, "f"+strconv.Itoa(i))
		writeRandom(t, path, n, uint64(i+20))
		content, _ := os.ReadFile(path)
		want := refSum(t, path)
		id, err := c.Write(ctx, content)
		if err != nil || id != want {
			t.Fatalf("write %d bytes: %q %v, b3sum says %s", n, id, err, want)
		}
		for _, read := range []func(context.Context, string) ([]byte, error){c.Read, c.ReadMapped} {
			got, err := read(ctx, id)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("read %d bytes: %v", n, err)
			}
		}
		// SEND to the peer by URL, check with the CLI, FETCH back by name.
		target := remote
		if i%2 == 1 {
			target = "nodeB"
		}
		if err := c.Send(ctx, id, target); err != nil {
			t.Fatalf("send %d bytes to %s: %v\n%s", n, target, err, d.log())
		}
		wantCode(t, casRun(t, nil, nil, "cas", "has", "--from", remote, id), 0, "has on the peer after send")
		other := []byte("fetched-" + strconv.Itoa(i))
		oid := strings.TrimSpace(casRun(t, other, nil, "cas", "put", "-", remote).stdout)
		if err := c.Fetch(ctx, oid, "nodeB"); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if got, err := c.Read(ctx, oid); err != nil || !bytes.Equal(got, other) {
			t.Fatalf("read after fetch: %v", err)
		}
	}
	resps, err := c.Batch(ctx, []mover.Request{
		{Op: mover.OpWrite, Data: []byte("one")},
		{Op: mover.OpHas, ID: strings.Repeat("0", 64)},
		{Op: mover.OpStat},
	})
	if err != nil || resps[0].Status != mover.StatusOK || resps[1].Status != mover.StatusNotFound || resps[2].Status != mover.StatusOK {
		t.Fatalf("batch: %v %+v", err, resps)
	}
	if err := c.Fetch(ctx, strings.Repeat("1", 64), remote); !errors.Is(err, mover.ErrNotFound) {
		t.Errorf("fetch of an object the peer lacks: %v", err)
	}
	if err := c.Send(ctx, string(resps[0].Data), "xfer://127.0.0.1:1"); !errors.Is(err, mover.ErrPeer) {
		t.Errorf("send to no peer: %v", err)
	}
	// Garbage on a connection costs that connection only.
	raw, err := net.Dial("unix", d.socket)
	must(t, err)
	raw.Write(bytes.Repeat([]byte{0xee, 0xff, 0xff}, 1000))
	raw.Close()
	if _, err := c.Stat(ctx); err != nil {
		t.Fatalf("daemon unusable after garbage: %v\n%s", err, d.log())
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, d.log())
	}
}

func TestDaemonSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "m.sock")
	store := filepath.Join(dir, "cas")
	d, ok := runDaemon(t, nil, nil, "--socket", sock, "--cas", store)
	if !ok {
		t.Fatalf("daemon exited:\n%s", d.log())
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v %v, want a socket with mode 0600", st.Mode(), err)
	}
	// A second daemon does not steal a live socket.
	d2, ok := runDaemon(t, nil, nil, "--socket", sock, "--cas", store)
	if ok || d2.code != 2 || !strings.Contains(d2.log(), "in use") {
		t.Fatalf("second daemon: started %v, exit %d\n%s", ok, d2.code, d2.log())
	}
	if _, err := d.client(t).Stat(context.Background()); err != nil {
		t.Fatalf("first daemon broken by the second: %v", err)
	}
	// A crashed daemon leaves its socket file: the next one replaces it.
	d.cmd.Process.Kill()
	<-d.done
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("killed daemon removed its socket (%v): the test needs a stale one", err)
	}
	d3, ok := runDaemon(t, nil, nil, "--socket", sock, "--cas", store, "--socket-group", strconv.Itoa(os.Getgid()))
	if !ok {
		t.Fatalf("daemon did not replace a stale socket:\n%s", d3.log())
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o660 || int(st.Sys().(*syscall.Stat_t).Gid) != os.Getgid() {
		t.Fatalf("--socket-group: mode %v, %v", st.Mode(), err)
	}
	if _, err := d3.client(t).Stat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := d3.stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, d3.log())
	}
	if _, err := os.Stat(sock); err == nil {
		t.Error("socket left behind by a clean stop")
	}
	// A file that is not a socket is never replaced.
	must(t, os.WriteFile(sock, []byte("precious"), 0o644))
	d4, ok := runDaemon(t, nil, nil, "--socket", sock, "--cas", store)
	if ok || d4.code != 2 {
		t.Fatalf("daemon over a regular file: started %v exit %d\n%s", ok, d4.code, d4.log())
	}
	if b, _ := os.ReadFile(sock); string(b) != "precious" {
		t.Fatal("regular file at the socket path was replaced")
	}
}

// TestDaemonEnv checks the mover's environment names and that XFER_*
// names win over them.
func TestDaemonEnv(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "cas")
	d, ok := runDaemon(t, []string{"MOVER_SOCKET=" + filepath.Join(dir, "mover.sock"), "CAS_PATH=" + store, "IOURING_ENTRIES=64"}, nil)
	if !ok || d.socket != filepath.Join(dir, "mover.sock") {
		t.Fatalf("daemon with MOVER_SOCKET: %v %q\n%s", ok, d.socket, d.log())
	}
	id, err := d.client(t).Write(context.Background(), []byte("via env"))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, casRun(t, nil, nil, "cas", "--cas", store, "has", id), 0, "object in CAS_PATH")
	d.stop(t)
	d2, ok := runDaemon(t, []string{"MOVER_SOCKET=" + filepath.Join(dir, "a.sock"), "XFER_SOCKET=" + filepath.Join(dir, "b.sock"), "CAS_PATH=" + store}, nil)
	if !ok || d2.socket != filepath.Join(dir, "b.sock") {
		t.Fatalf("XFER_SOCKET should win over MOVER_SOCKET: %q\n%s", d2.socket, d2.log())
	}
	d3, ok := runDaemon(t, []string{"CAS_PATH=" + store, "IOURING_ENTRIES=-1"}, nil, "--socket", filepath.Join(dir, "c.sock"))
	if ok || d3.code != 2 {
		t.Fatalf("IOURING_ENTRIES=-1 not checked: started %v exit %d", ok, d3.code)
	}
}

// TestDaemonDrain sends half a request, SIGTERM, then the other half: the
// request is answered and the daemon exits 0.
func TestDaemonDrain(t *testing.T) {
	dir := t.TempDir()
	d, ok := runDaemon(t, nil, nil, "--socket", filepath.Join(dir, "m.sock"), "--cas", filepath.Join(dir, "cas"))
	if !ok {
		t.Fatal(d.log())
	}
	content := bytes.Repeat([]byte("drain me "), 1<<20)
	frame, _ := mover.AppendRequest(nil, &mover.Request{Op: mover.OpWrite, Data: content})
	c, err := net.Dial("unix", d.socket)
	must(t, err)
	defer c.Close()
	half := len(frame) / 2
	_, err = c.Write(frame[:half])
	must(t, err)
	time.Sleep(200 * time.Millisecond)
	must(t, d.cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(300 * time.Millisecond)
	select {
	case <-d.done:
		t.Fatalf("daemon exited with a request in flight:\n%s", d.log())
	default:
	}
	_, err = c.Write(frame[half:])
	must(t, err)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var h [mover.ResponseHeaderSize]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("no answer after SIGTERM: %v\n%s", err, d.log())
	}
	body := make([]byte, binary.LittleEndian.Uint32(h[1:]))
	io.ReadFull(c, body)
	if mover.Status(h[0]) != mover.StatusOK || len(body) != 64 {
		t.Fatalf("answer %v %q", mover.Status(h[0]), body)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not exit after draining")
	}
	if d.code != 0 {
		t.Fatalf("exit %d after draining\n%s", d.code, d.log())
	}
}

// TestDaemonLogReopen moves the log file aside and sends SIGHUP: the daemon
// writes to a new file of the same name.
func TestDaemonLogReopen(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "daemon.log")
	d, ok := runDaemon(t, nil, nil, "--socket", filepath.Join(dir, "m.sock"), "--cas", filepath.Join(dir, "cas"), "--log-file", logf, "-v")
	if !ok {
		t.Fatal(d.log())
	}
	if b, _ := os.ReadFile(logf); !strings.Contains(string(b), "daemon started") {
		t.Fatalf("log file: %q", b)
	}
	must(t, os.Rename(logf, logf+".1"))
	must(t, d.cmd.Process.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logf)
		if strings.Contains(string(b), "log file reopened") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new log file after SIGHUP; daemon output:\n%s", d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := d.client(t).Stat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(logf); !strings.Contains(string(b), "daemon stopped") {
		t.Errorf("new log file lacks the last lines: %q", b)
	}
}

// TestDaemonSystemd hands the daemon its socket as systemd does: file
// descriptor 3, LISTEN_FDS=1, LISTEN_PID its own pid.
func TestDaemonSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "activated.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	must(t, err)
	f, err := ln.File()
	must(t, err)
	ln.SetUnlinkOnClose(false)
	ln.Close()
	defer f.Close()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" daemon --cas "$1" --socket "$2"`,
		xferBin, filepath.Join(dir, "cas"), filepath.Join(dir, "ignored.sock"))
	d, ok := runDaemonCmd(t, cmd, nil, []*os.File{f})
	if !ok || !strings.Contains(d.log(), "from systemd") || d.socket != sock {
		t.Fatalf("activated daemon: %v %q\n%s", ok, d.socket, d.log())
	}
	if _, err := os.Stat(filepath.Join(dir, "ignored.sock")); err == nil {
		t.Error("activated daemon created --socket too")
	}
	if _, err := d.client(t).Write(context.Background(), []byte("activated")); err != nil {
		t.Fatal(err)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestDaemonListenAndMetrics: --listen exposes the daemon's store to
// peers; --metrics-listen serves the per-op latency histogram.
func TestDaemonListenAndMetrics(t *testing.T) {
	dir := t.TempDir()
	// Without a token even a loopback listener would let every local
	// user into a store the 0600 socket keeps to its owner.
	d0, ok := runDaemon(t, nil, nil, "--socket", filepath.Join(dir, "n.sock"), "--cas", filepath.Join(dir, "cas0"),
		"--listen", "127.0.0.1:0")
	if ok || d0.code != 2 || !strings.Contains(d0.log(), "--token-file") {
		t.Fatalf("--listen without a token: started %v, exit %d\n%s", ok, d0.code, d0.log())
	}
	token := writeToken(t, "daemon-listen-token-0123456789")
	d, ok := runDaemon(t, nil, nil, "--socket", filepath.Join(dir, "m.sock"), "--cas", filepath.Join(dir, "cas"),
		"--listen", "127.0.0.1:0", "--token-file", token, "--metrics-listen", "127.0.0.1:0")
	if !ok || d.peers == "" {
		t.Fatalf("daemon: %v peers %q\n%s", ok, d.peers, d.log())
	}
	src := filepath.Join(dir, "f")
	writeRandom(t, src, 2<<20, 5)
	r := casRun(t, nil, nil, "cas", "put", src, "xfer://"+d.peers)
	wantCode(t, r, 3, "put to the daemon's --listen without the token")
	r = casRun(t, nil, nil, "cas", "put", src, "xfer://"+d.peers, "--token-file", token)
	wantCode(t, r, 0, "put to the daemon's --listen")
	c := d.client(t)
	id := strings.TrimSpace(r.stdout)
	if ok, err := c.Has(context.Background(), id); !ok || err != nil {
		t.Fatalf("object put through --listen not in the daemon's store: %v", err)
	}
	if _, err := c.Read(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	m := daemonMetricsRE.FindStringSubmatch(d.log())
	if m == nil {
		t.Fatalf("no metrics address:\n%s", d.log())
	}
	resp, err := http.Get(m[1] + "/metrics")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`xfer_daemon_op_seconds_count{op="read"} 1`, `xfer_daemon_op_seconds_count{op="has"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
