package e2e

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/transfer"
)

// dialFrom opens a TCP connection to addr from the loopback address from
// (127.0.0.x), so tests can stand in for several client hosts.
func dialFrom(t *testing.T, from, addr string) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", addr)
}

// helloFrame is a control hello as a client sends it first, raw.
func helloFrame(t *testing.T) []byte {
	t.Helper()
	kx, err := ecdh.X25519().GenerateKey(rand.Reader)
	must(t, err)
	p, err := json.Marshal(map[string]any{"proto": "xfer", "version": transfer.ProtocolVersion, "role": "control",
		"nonce": strings.Repeat("ab", 16), "transports": []string{"tcp"}, "want": "auto", "streams": 1,
		"kx": hex.EncodeToString(kx.PublicKey().Bytes())})
	must(t, err)
	h := make([]byte, 8, 8+len(p))
	h[0] = 1 // hello
	binary.LittleEndian.PutUint32(h[4:], uint32(len(p)))
	return append(h, p...)
}

// flood opens n connections from the loopback address from, sends each
// payload (nil: nothing), and returns them open; they are closed when the
// test ends.
func flood(t *testing.T, from, addr string, n int, payload []byte) []net.Conn {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := dialFrom(t, from, addr)
		if err != nil {
			continue // the kernel's queue or the server refused: also fine
		}
		conns = append(conns, c)
		if payload != nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(payload)
		}
	}
	return conns
}

// TestHelloFloodDoesNotLockOutTokenHolders: 864 connections that say hello
// and never authenticate, from 27 other addresses, used to hold every
// session slot: a token holder was refused 15 of 15 times.
// Unauthenticated connections now have their own budget, never count as
// sessions, and the oldest gives way to a new one.
func TestHelloFloodDoesNotLockOutTokenHolders(t *testing.T) {
	token := writeToken(t, "flood-test-token-0123456789abcdef")
	s := startServer(t, t.TempDir(), "--token-file", token)
	var conns []net.Conn
	for i := range 27 {
		conns = append(conns, flood(t, fmt.Sprintf("127.0.0.%d", 2+i), s.addr, 32, helloFrame(t))...)
	}
	if len(conns) < 800 {
		t.Fatalf("only %d flood connections opened", len(conns))
	}
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "f"), 64<<10, 1)
	for i := range 5 {
		r := xfer(t, "copy", src, s.url(fmt.Sprintf("d%d", i)), "--token-file", token, "--retries", "0")
		if r.code != 0 {
			t.Fatalf("token holder during a hello flood, try %d: %s", i+1, r)
		}
	}
	if !s.alive() {
		t.Fatalf("server died:\n%s", s.logs)
	}
}

// TestHandshakeDeadline: a connection that never authenticates is dropped
// after --handshake-timeout.
func TestHandshakeDeadline(t *testing.T) {
	token := writeToken(t, "deadline-token-0123456789abcdef")
	s := startServer(t, t.TempDir(), "--token-file", token, "--handshake-timeout", "500ms")
	c, err := dialFrom(t, "127.0.0.1", s.addr)
	must(t, err)
	defer c.Close()
	must2(c.Write(helloFrame(t)))
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.Contains(string(got), `"auth":"token"`) || strings.Contains(string(got), `"error"`) {
		t.Fatalf("the hello was not welcomed as a token session: %q", got)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("unauthenticated connection closed after %s (handshake timeout 500ms)", d)
	}
}

func must2(_ int, err error) {
	if err != nil {
		panic(err)
	}
}

// TestFDExhaustionKeepsServing: running out of file descriptors used to
// make `xfer serve` exit (accept: too many open files): 260 idle
// connections against a 200-descriptor limit did it without logging in.
// Now it backs off, sheds what it cannot hold, and serves again.
func TestFDExhaustionKeepsServing(t *testing.T) {
	needTool(t, "prlimit", "util-linux's limit setter")
	s := startServerWrapped(t, []string{"prlimit", "--nofile=200:200"}, "127.0.0.1", t.TempDir())
	var all []net.Conn
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		all = append(all, flood(t, from, s.addr, 65, nil)...)
	}
	time.Sleep(500 * time.Millisecond)
	if !s.alive() {
		t.Fatalf("server exited with %d connections open:\n%s", len(all), s.logs)
	}
	for _, c := range all {
		c.Close()
	}
	src := oddSource(t)
	r := xfer(t, "copy", src, s.url("after"), "--retries", "3")
	if r.code != 0 {
		t.Fatalf("copy after the flood: %s\nserver:\n%s", r, s.logs)
	}
	sameTree(t, src, filepath.Join(s.root, "after"))
}

// TestWrongTokenThrottled: wrong tokens used to be checked as fast as they
// came (3,783 guesses/s). After a few failures an address is shut out for
// a penalty that doubles; other addresses are not affected.
func TestWrongTokenThrottled(t *testing.T) {
	good := writeToken(t, "the-right-token-0123456789abcdef")
	bad := writeToken(t, "a-wrong-guess-0123456789abcdefgh")
	s := startServer(t, t.TempDir(), "--token-file", good)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "f"), 1000, 2)
	shut := 0
	for i := range 12 {
		r := xfer(t, "copy", src, s.url("x"), "--token-file", bad, "--retries", "0")
		if r.code != 3 {
			t.Fatalf("guess %d: want exit 3: %s", i+1, r)
		}
		if strings.Contains(r.stderr, "too many failed authentications") && strings.Contains(r.stderr, "try again in") {
			shut++
		}
	}
	if shut < 5 {
		t.Fatalf("only %d of 12 wrong guesses were shut out; want all after the first 5", shut)
	}
	if n := strings.Count(s.logs.String(), "authentication failed"); n > 8 {
		t.Errorf("server checked %d of 12 guesses; want about 5", n)
	}
	// The shut-out address cannot use the right token either, for now; a
	// client from another address can.
	if r := xfer(t, "copy", src, s.url("x"), "--token-file", good, "--retries", "0"); r.code != 3 {
		t.Errorf("right token from the shut-out address: %s", r)
	}
	// The penalty is per address: a raw hello from 127.0.0.7 is welcomed.
	c, err := dialFrom(t, "127.0.0.7", s.addr)
	must(t, err)
	defer c.Close()
	must2(c.Write(helloFrame(t)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [8]byte
	if _, err := c.Read(h[:]); err != nil {
		t.Fatalf("another address got no welcome: %v", err)
	}
	p := make([]byte, binary.LittleEndian.Uint32(h[4:]))
	if _, err := c.Read(p); err != nil || strings.Contains(string(p), "too many failed") {
		t.Fatalf("another address was shut out too: %q %v", p, err)
	}
}

// TestBusyServerAsksToRetry: a client refused for the session limit used
// to get a plain refusal (32 of 64 clients from one address failed). The
// refusal now says when to try again, and --retries waits and gets in.
func TestBusyServerAsksToRetry(t *testing.T) {
	s := startServer(t, t.TempDir(), "--max-sessions-per-client", "1")
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big"), 6<<20, 3)
	// Hold the one session: a pull limited to 2 MiB/s takes about 3 s.
	must(t, os.MkdirAll(filepath.Join(s.root, "src"), 0o755))
	writeRandom(t, filepath.Join(s.root, "src", "big"), 6<<20, 4)
	var wg sync.WaitGroup
	var slow result
	wg.Add(1)
	go func() {
		defer wg.Done()
		slow = xfer(t, "copy", s.url("src"), filepath.Join(t.TempDir(), "pulled"), "--bwlimit", "2M")
	}()
	time.Sleep(700 * time.Millisecond)
	r := xfer(t, "copy", src, s.url("a"), "--retries", "0")
	if r.code != 3 || !strings.Contains(r.stderr, "server busy") || !strings.Contains(r.stderr, "try again in") {
		t.Errorf("refused client: want exit 3 with 'server busy' and 'try again in': %s", r)
	}
	r = xfer(t, "copy", src, s.url("b"), "--retries", "5")
	wg.Wait()
	if slow.code != 0 {
		t.Fatalf("slow pull: %s", slow)
	}
	if r.code != 0 {
		t.Fatalf("client with --retries during a busy spell: %s", r)
	}
	sameTree(t, src, filepath.Join(s.root, "b"))
}

// TestTokenFileModes: a token file that others may read is refused, as
// OpenSSH refuses such private keys, on both ends.
func TestTokenFileModes(t *testing.T) {
	open := writeToken(t, "group-readable-token-0123456789ab")
	must(t, os.Chmod(open, 0o640))
	r := xfer(t, "serve", "--root", t.TempDir(), "--listen", "127.0.0.1:0", "--token-file", open)
	if r.code != 2 || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("serve with a 0640 token file: %s", r)
	}
	good := writeToken(t, "private-token-0123456789abcdefgh")
	s := startServer(t, t.TempDir(), "--token-file", good)
	r = xfer(t, "copy", t.TempDir(), s.url("x"), "--token-file", open)
	if r.code != 2 || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("client with a 0640 token file: %s", r)
	}
}

// TestReadOnlyRefusesCASPuts: --read-only used to refuse tree writes but
// accept CAS puts.
func TestReadOnlyRefusesCASPuts(t *testing.T) {
	store := filepath.Join(t.TempDir(), "cas")
	s := startServer(t, t.TempDir(), "--read-only", "--cas", store)
	before := countFiles(t, store)
	f := filepath.Join(t.TempDir(), "obj")
	writeRandom(t, f, 100<<10, 5)
	r := casRun(t, nil, nil, "cas", "put", f, "xfer://"+s.addr)
	if r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Errorf("cas put to a --read-only server: %s", r)
	}
	if n := countFiles(t, store); n != before {
		t.Errorf("store of a --read-only server went from %d to %d files", before, n)
	}
}

// countFiles counts regular files beneath dir that hold data.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Size() > 0 && !strings.HasSuffix(p, ".lock") {
			n++
		}
		return nil
	})
	return n
}

// TestDaemonLockSymlink: the daemon used to follow a symlink planted at
// SOCKET.lock, creating and locking the file it points to.
func TestDaemonLockSymlink(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "m.sock")
	victim := filepath.Join(t.TempDir(), "victim")
	must(t, os.Symlink(victim, sock+".lock"))
	d, ok := runDaemon(t, nil, nil, "--socket", sock, "--cas", filepath.Join(dir, "cas"))
	if ok || d.code != 2 || !strings.Contains(d.log(), "symbolic link") {
		t.Errorf("daemon with a planted lock symlink: started %v exit %d\n%s", ok, d.code, d.log())
	}
	if _, err := os.Lstat(victim); err == nil {
		t.Errorf("the daemon created %s through the planted symlink", victim)
	}
}

// TestServerSurvivesGarbage: random bytes, half handshakes, oversized
// frames and abrupt disconnects only cost their own connections.
func TestServerSurvivesGarbage(t *testing.T) {
	a := startServer(t, t.TempDir())
	junk := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, // hello frame announcing 2 GiB
		{1, 0, 0, 0, 5, 0, 0, 0, '{', '"', 'p'},
		append([]byte{1, 0, 0, 0, 2, 0, 0, 0}, "{}"...),
		append([]byte{1, 0, 0, 0, 47, 0, 0, 0}, `{"proto":"xfer","version":1,"role":"data","x":1}`...),
		append([]byte{1, 0, 0, 0, 36, 0, 0, 0}, `{"proto":"xfer","version":99,"rol":1}`...),
	}
	rnd := make([]byte, 64<<10)
	rand.Read(rnd)
	junk = append(junk, rnd)
	for i, j := range junk {
		c, err := net.Dial("tcp", a.addr)
		must(t, err)
		c.Write(j)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1024)
		c.Read(buf) // whatever it says, it must not hang forever or crash
		c.Close()
		if !a.alive() {
			t.Fatalf("server died after junk %d:\n%s", i, a.logs)
		}
	}
	// A client that opens a real session and vanishes mid-chunk.
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "f.bin"), 64<<20, 5)
	half := startXfer(t, "copy", src, a.url("half"), "--chunk-size", "4M")
	time.Sleep(80 * time.Millisecond)
	half.kill()
	// The server still serves.
	if r := xfer(t, "copy", src, a.url("after")); r.code != 0 {
		t.Fatalf("server unusable after the junk: %s\nlogs:\n%s", r, a.logs)
	}
	sameTree(t, src, filepath.Join(a.root, "after"))
}
