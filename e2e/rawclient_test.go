package e2e

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"lukechampine.com/blake3"

	"github.com/xfer-io/xfer/transfer"
)

// rawClient speaks the peer protocol from its documentation
// (docs/wire-protocol.md), versions 1 and 2, without the xfer client code:
// it is the attack client of the security tests, free to send requests
// the real client never would.
type rawClient struct {
	c       net.Conn
	r       *bufio.Reader
	data    net.Conn
	version int
	key     []byte
	seal    []byte         // version 2: ticket sealing key
	out     *blake3.Hasher // version 2: control frame MAC, client to server
	seq     uint64
	nextID  uint64
}

func hmacParts(secret []byte, label string, parts ...string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// dialRaw opens an authenticated session to addr with token (nil: none),
// in this build's protocol version (handshake as version 2), or 1 if the
// server speaks only that.
func dialRaw(addr string, token []byte) (*rawClient, error) {
	rc, err := dialRawVersion(addr, token, transfer.ProtocolVersion)
	if err != nil && strings.Contains(err.Error(), "server speaks 1") {
		return dialRawVersion(addr, token, 1)
	}
	return rc, err
}

func dialRawVersion(addr string, token []byte, version int) (*rawClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawClient{c: c, r: bufio.NewReader(c), version: version}
	fail := func(err error) (*rawClient, error) {
		c.Close()
		return nil, err
	}
	cn := hex.EncodeToString(randBytes(32))
	kx, _ := ecdh.X25519().GenerateKey(rand.Reader)
	hello := map[string]any{"proto": "xfer", "version": version, "role": "control",
		"transports": []string{"tcp"}, "want": "tcp", "streams": 1, "nonce": cn}
	if version >= 2 {
		hello["kx"] = hex.EncodeToString(kx.PublicKey().Bytes())
	}
	helloRaw, _ := json.Marshal(hello)
	if _, err := c.Write(frame(1, helloRaw)); err != nil {
		return fail(err)
	}
	wf, err := readFrame(rc.r)
	if err != nil {
		return fail(err)
	}
	welcomeRaw := wf[8:]
	var w struct {
		Version int    `json:"version"`
		Session string `json:"session"`
		Nonce   string `json:"nonce"`
		Auth    string `json:"auth"`
		Key     string `json:"key"`
		KX      string `json:"kx"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(welcomeRaw, &w); err != nil {
		return fail(err)
	}
	if w.Error != "" {
		return fail(fmt.Errorf("welcome: %s", w.Error))
	}
	var th string
	var shared []byte
	if version >= 2 {
		h := sha256.New()
		h.Write([]byte("xfer-v2 transcript"))
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(helloRaw))))
		h.Write(helloRaw)
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(welcomeRaw))))
		h.Write(welcomeRaw)
		th = string(h.Sum(nil))
		pb, _ := hex.DecodeString(w.KX)
		pub, err := ecdh.X25519().NewPublicKey(pb)
		if err != nil {
			return fail(err)
		}
		if shared, err = kx.ECDH(pub); err != nil {
			return fail(err)
		}
	}
	// The handshake's labels are version 2's in every later version.
	label := fmt.Sprintf("xfer-v%d", min(version, 2))
	switch w.Auth {
	case "token":
		var proof []byte
		if version >= 2 {
			proof = hmacParts(token, label, "auth", "client", th)
			rc.key = hmacParts(token, label, "session-key", th, string(shared))
		} else {
			proof = hmacParts(token, label, "auth", "client", w.Nonce, cn, w.Session)
			rc.key = hmacParts(token, label, "session-key", w.Nonce, cn, w.Session)
		}
		am, _ := json.Marshal(map[string]string{"proof": hex.EncodeToString(proof)})
		if _, err := c.Write(frame(4, am)); err != nil {
			return fail(err)
		}
		f, err := readFrame(rc.r)
		if err != nil {
			return fail(err)
		}
		if strings.Contains(string(f[8:]), `"error"`) {
			return fail(fmt.Errorf("auth: %s", f[8:]))
		}
	default:
		if version >= 2 {
			rc.key = hmacParts(shared, label, "session-key-anonymous", th)
		} else {
			rc.key, _ = hex.DecodeString(w.Key)
		}
	}
	if version >= 2 {
		rc.out = blake3.New(32, hmacParts(rc.key, label, "control", "client"))
		rc.seal = hmacParts(rc.key, label, "ticket-seal")
	}
	// The session starts once its data stream has joined.
	d, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fail(err)
	}
	pm := hmac.New(sha256.New, rc.key)
	fmt.Fprintf(pm, "xfer-data\x00%s\x00%d", w.Session, 0)
	dh, _ := json.Marshal(map[string]any{"proto": "xfer", "version": version, "role": "data",
		"session": w.Session, "stream": 0, "proof": hex.EncodeToString(pm.Sum(nil))})
	d.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := d.Write(frame(1, dh)); err != nil {
		d.Close()
		return fail(err)
	}
	if _, err := readFrame(d); err != nil {
		d.Close()
		return fail(err)
	}
	rc.data = d
	return rc, nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (rc *rawClient) close() {
	rc.c.Close()
	rc.data.Close()
}

// sealTicket encodes a ticket (id and secret in hex) for a job request.
func (rc *rawClient) sealTicket(id, secret string) any {
	if rc.version < 2 {
		return id + "." + secret
	}
	b, _ := aes.NewCipher(rc.seal)
	g, _ := cipher.NewGCM(b)
	nonce := randBytes(g.NonceSize())
	return map[string]any{"id": id, "sealed": g.Seal(nonce, nonce, []byte(secret), []byte("xfer-ticket\x00"+id))}
}

// call sends a request (its id is set here) and waits for its response,
// skipping everything else the server sends.
func (rc *rawClient) call(req map[string]any) (map[string]any, error) {
	rc.nextID++
	req["id"] = rc.nextID
	p, _ := json.Marshal(req)
	if rc.out != nil {
		rc.out.Reset()
		rc.out.Write(binary.LittleEndian.AppendUint64(nil, rc.seq))
		rc.out.Write([]byte{10})
		rc.out.Write(p)
		rc.seq++
		p = rc.out.Sum(p)
	}
	if _, err := rc.c.Write(frame(10, p)); err != nil {
		return nil, err
	}
	for {
		f, err := readFrame(rc.r)
		if err != nil {
			return nil, err
		}
		body := f[8:]
		if rc.version >= 2 && len(body) >= 32 {
			body = body[:len(body)-32]
		}
		switch f[0] {
		case 6: // abort
			return nil, fmt.Errorf("aborted: %s", body)
		case 11:
			var resp map[string]any
			if err := json.Unmarshal(body, &resp); err != nil {
				return nil, err
			}
			if id, _ := resp["id"].(float64); uint64(id) == rc.nextID {
				return resp, nil
			}
		}
	}
}
