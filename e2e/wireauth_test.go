package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tamperProxy sits between a client and `xfer serve` like a man in the
// middle: it understands the framing of the peer protocol (control frames
// and data-stream messages; TLS connections pass through untouched) and
// damages the client-to-server direction once, in one of several ways.
type tamperProxy struct {
	ln       net.Listener
	target   string
	mode     string
	tampered atomic.Bool // the damage was done
}

func startTamperProxy(t *testing.T, target, mode string) *tamperProxy {
	t.Helper()
	p := &tamperProxy{target: target, mode: mode}
	p.ln = listenLoopback(t, p.handle)
	return p
}

func (p *tamperProxy) addr() string { return p.ln.Addr().String() }

// readFrame reads one control frame: [type][0 0 0][length u32][payload].
func readFrame(r io.Reader) ([]byte, error) {
	h := make([]byte, 8)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if n > 64<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, 8+int(n))
	copy(b, h)
	_, err := io.ReadFull(r, b[8:])
	return b, err
}

// readMessage reads one data-stream message:
// [header length u32][payload length u32][header][payload].
func readMessage(r io.Reader) (hdr, payload []byte, err error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, nil, err
	}
	hl, pl := binary.LittleEndian.Uint32(pre[:]), binary.LittleEndian.Uint32(pre[4:])
	if hl > 1<<20 || pl > 256<<20 {
		return nil, nil, fmt.Errorf("message of %d+%d bytes", hl, pl)
	}
	hdr, payload = make([]byte, hl), make([]byte, pl)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, nil, err
	}
	_, err = io.ReadFull(r, payload)
	return hdr, payload, err
}

func message(hdr, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(hdr)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(append(b, hdr...), payload...)
}

func frame(typ byte, payload []byte) []byte {
	b := []byte{typ, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// forgedTag stands in for the message tag protocol version 2 expects: an
// attacker without the session keys cannot compute the real one.
func forgedTag(version int) []byte {
	if version >= 2 {
		return make([]byte, 32)
	}
	return nil
}

func (p *tamperProxy) handle(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { io.Copy(c, s); c.Close() }()
	br := bufio.NewReaderSize(c, 1<<20)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] != 1 { // TLS (or garbage): nothing to understand
		io.Copy(s, br)
		return
	}
	hello, err := readFrame(br)
	if err != nil {
		return
	}
	var h struct {
		Version int    `json:"version"`
		Role    string `json:"role"`
	}
	json.Unmarshal(hello[8:], &h)
	if _, err := s.Write(hello); err != nil {
		return
	}
	if h.Role == "data" {
		p.data(br, s, h.Version)
	} else {
		p.control(br, s, h.Version)
	}
}

// control forwards control frames, injecting or replaying a request.
func (p *tamperProxy) control(r io.Reader, s net.Conn, version int) {
	for {
		f, err := readFrame(r)
		if err != nil {
			return
		}
		if _, err := s.Write(f); err != nil {
			return
		}
		if f[0] != 10 || !strings.HasSuffix(p.mode, "-control") || !p.tampered.CompareAndSwap(false, true) {
			continue
		}
		switch p.mode {
		case "inject-control":
			req := []byte(`{"id":999999,"op":"meta","meta":[{"op":"mkdir","path":"injected-by-mitm","mode":493}]}`)
			s.Write(frame(10, append(req, forgedTag(version)...)))
		case "replay-control":
			s.Write(f)
		}
	}
}

// data forwards data-stream messages, damaging, injecting or replaying one.
func (p *tamperProxy) data(r io.Reader, s net.Conn, version int) {
	for {
		hdr, payload, err := readMessage(r)
		if err != nil {
			return
		}
		var extra []byte
		switch {
		case len(hdr) == 0:
		case p.mode == "chunk-flag" && hdr[0] == 1 && len(payload) > 0 && p.tampered.CompareAndSwap(false, true):
			// The byte after fid, index and offset: version 1's "verify"
			// flag (1 -> 0), version 2's first digest byte.
			i := 1
			for k := 0; k < 3; k++ {
				_, n := binary.Uvarint(hdr[i:])
				i += n
			}
			hdr[i] ^= 1
			payload[0] ^= 0xff
		case p.mode == "chunk-payload" && hdr[0] == 1 && len(payload) > 0 && p.tampered.CompareAndSwap(false, true):
			payload[len(payload)/2] ^= 0xff
		case p.mode == "batch-flag" && hdr[0] == 3 && len(payload) > 1 && p.tampered.CompareAndSwap(false, true):
			payload[0] ^= 1 // version 1's "verify" flag
			payload[len(payload)-1] ^= 0xff
		case p.mode == "batch-data" && hdr[0] == 3 && firstBatchData(payload) > 0 && p.tampered.CompareAndSwap(false, true):
			// One byte of a file's data, nothing else: the tag leaves the
			// data to the file's digest, which must catch it as surely.
			payload[firstBatchData(payload)] ^= 0x20
		case p.mode == "inject-data" && p.tampered.CompareAndSwap(false, true):
			h := binary.AppendUvarint([]byte{3}, 4242)
			h = binary.AppendUvarint(h, 1)
			h = append(h, forgedTag(version)...)
			pl := []byte{0}
			pl = binary.AppendUvarint(pl, uint64(len("injected-by-mitm.txt")))
			pl = append(pl, "injected-by-mitm.txt"...)
			pl = binary.AppendUvarint(pl, 0o644)
			pl = binary.AppendVarint(pl, time.Now().UnixNano())
			pl = append(pl, 0)
			pl = append(pl, make([]byte, 32)...)
			pl = binary.AppendUvarint(pl, 5)
			pl = append(pl, "pwned"...)
			extra = message(h, pl)
		case p.mode == "replay-data" && hdr[0] == 1 && len(payload) > 0 && p.tampered.CompareAndSwap(false, true):
			extra = message(hdr, payload)
		}
		if _, err := s.Write(message(hdr, payload)); err != nil {
			return
		}
		if extra != nil {
			if _, err := s.Write(extra); err != nil {
				return
			}
		}
	}
}

// TestTamperedWire: a man in the middle between client and server clears
// the verification flag and changes a byte, changes a byte alone, injects
// a request or a data message, or replays one, on a session without TLS
// (token) and on one with TLS on control only (--tls-data=false). The run
// never ends with exit 0 and wrong content: a damaged chunk is caught and
// sent again, anything else ends the session with exit 3 and a message
// saying the integrity check failed; nothing injected takes effect.
func TestTamperedWire(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCA(t, dir)
	makeLeaf(t, dir, "server", ca, caKey, true)
	pem := func(n string) string { return filepath.Join(dir, n) }
	token := writeToken(t, "tamper-test-token-0123456789abcdef")
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 3<<20+777, 7)
	must(t, os.MkdirAll(filepath.Join(src, "small"), 0o755))
	for i := 0; i < 10; i++ {
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("small/%02d.txt", i)), bytes.Repeat([]byte{byte('a' + i)}, 100+i), 0o644))
	}
	settings := []struct {
		name        string
		serve, copy []string
		control     bool // control frames are visible to the proxy
	}{
		{"no TLS, token", []string{"--token-file", token}, []string{"--token-file", token}, true},
		{"TLS control only", []string{"--tls-cert", pem("server.pem"), "--tls-key", pem("server.key"), "--tls-data=false"},
			[]string{"--tls-ca", pem("ca.pem"), "--tls-data=false"}, false},
	}
	attacks := []struct {
		mode    string
		control bool // needs a visible control connection
		detect  bool // must end the run (else: may also be resent and succeed)
	}{
		{"chunk-flag", false, false},
		{"chunk-payload", false, false},
		{"batch-flag", false, false},
		{"batch-data", false, true},
		{"inject-data", false, true},
		{"replay-data", false, true},
		{"inject-control", true, true},
		{"replay-control", true, true},
	}
	for _, st := range settings {
		for _, at := range attacks {
			if at.control && !st.control {
				continue
			}
			t.Run(st.name+"/"+at.mode, func(t *testing.T) {
				root := t.TempDir()
				srv := startServer(t, root, st.serve...)
				p := startTamperProxy(t, srv.addr, at.mode)
				args := append([]string{"copy", src, "xfer://" + p.addr() + "/x", "--proto", "tcp",
					"--chunk-size", "1M", "--retries", "0", "--timeout", "10s"}, st.copy...)
				r := xfer(t, args...)
				if !p.tampered.Load() {
					t.Fatalf("the proxy found nothing to tamper with:\n%s", r)
				}
				for _, n := range []string{"injected-by-mitm", "injected-by-mitm.txt"} {
					if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
						t.Errorf("the injected %s took effect", n)
					}
				}
				switch {
				case r.code == 0 && at.detect:
					t.Errorf("exit 0: the %s went unnoticed\n%s", at.mode, r)
				case r.code == 0:
					sameTree(t, src, filepath.Join(root, "x"))
				case r.code != 3 || !strings.Contains(r.stderr, "integrity check"):
					t.Errorf("want exit 3 with a message that the integrity check failed\n%s", r)
				}
				checkNoDamage(t, src, filepath.Join(root, "x"))
				if !srv.alive() {
					t.Fatalf("server died:\n%s", srv.logs)
				}
			})
		}
	}
}

// firstBatchData returns the offset in a small-file batch's payload of the
// first byte of its first file's data (docs/wire-protocol.md, message 3),
// or 0 if that file is empty or the payload does not parse that far.
func firstBatchData(p []byte) int {
	i := 1 // the reserved byte
	skip := func(signed bool) bool {
		var n int
		if signed {
			_, n = binary.Varint(p[min(i, len(p)):])
		} else {
			_, n = binary.Uvarint(p[min(i, len(p)):])
		}
		i += n
		return n > 0
	}
	l, n := binary.Uvarint(p[min(i, len(p)):]) // path
	if n <= 0 {
		return 0
	}
	i += n + int(l)
	if !skip(false) || !skip(true) { // mode, mtime
		return 0
	}
	i += 1 + 32 // flags, digest
	l, n = binary.Uvarint(p[min(i, len(p)):])
	if n <= 0 || l == 0 || i+n+int(l) > len(p) {
		return 0
	}
	return i + n
}

// rawJob asks the server at addr (token tok) to push src to dst on dstAddr,
// with a ticket (id and secret in hex) when ticket is set, and returns the
// server's error ("" for success).
func rawJob(t *testing.T, addr, tok, src, dst, dstAddr string, ticket []string) string {
	t.Helper()
	rc, err := dialRaw(addr, []byte(tok))
	if err != nil {
		t.Fatalf("raw session to %s: %v", addr, err)
	}
	defer rc.close()
	job := map[string]any{"src": src, "dst": dst, "dst_addr": dstAddr, "options": map[string]any{}}
	if ticket != nil {
		job["dst_ticket"] = rc.sealTicket(ticket[0], ticket[1])
	}
	resp, err := rc.call(map[string]any{"op": "job", "job": job})
	if err != nil {
		t.Fatalf("job request to %s: %v", addr, err)
	}
	msg, _ := resp["err"].(string)
	return msg
}

func bogusTicket() []string {
	return []string{fmt.Sprintf("%x", randBytes(16)), fmt.Sprintf("%x", randBytes(32))}
}

// TestThirdPartyJobNeedsDestinationTicket: a token holder of server T asks
// T to push into another server U (tokenless, on loopback: reachable from
// T, never authenticated to by the client) without a ticket from U, or
// with one U never issued. T refuses; nothing arrives at U.
func TestThirdPartyJobNeedsDestinationTicket(t *testing.T) {
	const tok = "third-party-token-0123456789abcdef"
	src := startServer(t, fileTree(t, map[string]string{"x/payload.txt": "pushed where nobody allowed it"}), "--token-file", writeToken(t, tok))
	victimRoot := t.TempDir()
	victim := startServer(t, victimRoot)
	for i, tc := range []struct {
		name   string
		ticket []string
	}{
		{"no ticket", nil},
		{"a ticket the destination never issued", bogusTicket()},
	} {
		msg := rawJob(t, src.addr, tok, "x", fmt.Sprintf("pushed%d", i), victim.addr, tc.ticket)
		if msg == "" {
			t.Errorf("%s: the source server pushed into a server the client never authenticated to", tc.name)
		}
		if ents, _ := os.ReadDir(victimRoot); len(ents) != 0 {
			t.Errorf("%s: the destination holds %d entries", tc.name, len(ents))
		}
	}
}

// TestThirdPartyErrorsUniform: whatever is at the address a third-party
// job names (nothing, a service that is not xfer, an xfer server that did
// not issue the ticket), the client learns the same thing, so jobs cannot
// scan the source server's network.
func TestThirdPartyErrorsUniform(t *testing.T) {
	const tok = "uniform-errors-token-0123456789abcdef"
	src := startServer(t, fileTree(t, map[string]string{"x/f": "f"}), "--token-file", writeToken(t, tok))
	targets := map[string]string{
		"closed port":         unusedAddr(t),
		"HTTP server":         fakePeer(t, "HTTP/1.1 400 Bad Request\r\n\r\n", true),
		"silent close":        fakePeer(t, "", true),
		"xfer without ticket": startServer(t, t.TempDir()).addr,
		"xfer with token":     startServer(t, t.TempDir(), "--token-file", writeToken(t, "another-token-0123456789abcdef")).addr,
	}
	seen := map[string]string{}
	for name, addr := range targets {
		msg := rawJob(t, src.addr, tok, "x", "y", addr, bogusTicket())
		if msg == "" {
			t.Fatalf("%s: job succeeded", name)
		}
		seen[strings.ReplaceAll(msg, addr, "ADDR")] += name + "; "
	}
	if len(seen) != 1 {
		t.Errorf("third-party errors tell destinations apart:\n%v", seen)
	}
}

// TestPushAllow: `xfer serve --push-allow` restricts where third-party jobs
// push; a refused destination is a clear usage error and receives nothing.
func TestPushAllow(t *testing.T) {
	tok := writeToken(t, "push-allow-token-0123456789abcdef")
	src := fileTree(t, map[string]string{"x/f": "data"})
	dst := startServer(t, t.TempDir(), "--token-file", tok)
	_, dstPort, _ := net.SplitHostPort(dst.addr)
	for _, tc := range []struct {
		allow string
		code  int
		msg   string
	}{
		{"10.0.0.0/8", 2, "--push-allow"},
		{"none", 2, "--push-allow none"},
		{"127.0.0.1:1", 2, "--push-allow"},
		{"127.0.0.0/8", 0, ""},
		{"127.0.0.1:" + dstPort, 0, ""},
	} {
		s := startServer(t, src, "--token-file", tok, "--push-allow", tc.allow)
		out := "y" + strings.NewReplacer("/", "_", ":", "_", ".", "_").Replace(tc.allow)
		r := xfer(t, "copy", s.url("x"), dst.url(out), "--token-file", tok)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("--push-allow %s: want exit %d with %q\n%s", tc.allow, tc.code, tc.msg, r)
		}
		_, err := os.Stat(filepath.Join(dst.root, out, "f"))
		if (err == nil) != (tc.code == 0) {
			t.Errorf("--push-allow %s: file at the destination: %v", tc.allow, err == nil)
		}
	}
	if r := xfer(t, "serve", "--root", src, "--listen", "127.0.0.1:0", "--push-allow", "nonsense"); r.code != 2 || !strings.Contains(r.stderr, "--push-allow") {
		t.Errorf("bad --push-allow: %s", r)
	}
}

// burnProxy forwards to a server; when a connection's hello names a
// ticket, it first presents that ticket itself, with the id it has seen
// but a made-up proof, trying to use the ticket up before its holder.
type burnProxy struct {
	target  string
	attempt atomic.Int32
}

func (p *burnProxy) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	hello, err := readFrame(br)
	if err != nil {
		return
	}
	if bytes.Contains(hello, []byte(`"ticket":"`)) {
		p.attempt.Add(1)
		if a, err := net.Dial("tcp", p.target); err == nil {
			a.SetDeadline(time.Now().Add(5 * time.Second))
			a.Write(hello)
			if w, err := readFrame(a); err == nil && bytes.Contains(w, []byte(`"auth":"token"`)) {
				a.Write(frame(4, []byte(`{"proof":"00"}`)))
				readFrame(a)
			}
			a.Close()
		}
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	s.Write(hello)
	go func() { io.Copy(c, s); c.Close() }()
	io.Copy(s, br)
}

// TestTicketIDAloneCannotBurnIt: someone who sees a ticket's id on the
// wire presents it first; the ticket still admits the source server, and
// the remote-to-remote copy completes.
func TestTicketIDAloneCannotBurnIt(t *testing.T) {
	tok := writeToken(t, "burn-token-0123456789abcdef")
	srcRoot := t.TempDir()
	oddTree(t, filepath.Join(srcRoot, "x"))
	src := startServer(t, srcRoot, "--token-file", tok)
	dst := startServer(t, t.TempDir(), "--token-file", tok)
	p := &burnProxy{target: dst.addr}
	ln := listenLoopback(t, p.handle)
	r := xfer(t, "sync", src.url("x"), "xfer://"+ln.Addr().String()+"/y", "--token-file", tok, "--retries", "0")
	if p.attempt.Load() == 0 {
		t.Fatalf("no ticket crossed the proxy:\n%s", r)
	}
	if r.code != 0 {
		t.Fatalf("the ticket was burned by its id alone:\n%s", r)
	}
	sameTree(t, filepath.Join(srcRoot, "x"), filepath.Join(dst.root, "y"))
}
