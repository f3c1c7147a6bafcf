package session

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/xfer-io/xfer/transfer/wire"
)

// Authentication modes a server announces in its welcome.
const (
	authNone  = "none"  // no token configured: the session key comes from an unauthenticated key exchange
	authToken = "token" // HMAC challenge-response over a shared token or a ticket
)

// newNonce returns 32 random bytes in hex.
func newNonce() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mac(secret []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("xfer-v2"))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// transcriptHash binds the exact bytes of the hello and the welcome of a
// handshake (nonces, session id, key-exchange shares, the negotiated
// transport and options): both proofs and the session key cover it, so a
// handshake altered on the way fails authentication, or, without a token,
// yields different keys on the two sides.
func transcriptHash(hello, welcome []byte) string {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte("xfer-v2 transcript"))
	binary.LittleEndian.PutUint64(n[:], uint64(len(hello)))
	h.Write(n[:])
	h.Write(hello)
	binary.LittleEndian.PutUint64(n[:], uint64(len(welcome)))
	h.Write(n[:])
	h.Write(welcome)
	return string(h.Sum(nil))
}

// authProof is what one side sends to prove it knows secret; the
// transcript binds both sides' random nonces and the session id, so a
// proof cannot be replayed.
func authProof(secret []byte, role, transcript string) string {
	return hex.EncodeToString(mac(secret, "auth", role, transcript))
}

// derivedKey is the session key both sides derive from the secret and the
// key exchange; it never crosses the wire.
func derivedKey(secret []byte, transcript string, shared []byte) []byte {
	return mac(secret, "session-key", transcript, string(shared))
}

// anonymousKey is the session key of a session without a token: it comes
// from the key exchange alone, which keeps it from a passive eavesdropper
// but not from an active man in the middle (nothing authenticates the
// exchange).
func anonymousKey(transcript string, shared []byte) []byte {
	return mac(shared, "session-key-anonymous", transcript)
}

func proofOK(got, want string) bool {
	return hmac.Equal([]byte(got), []byte(want))
}

// keyShare is one side's X25519 key-exchange share.
type keyShare struct{ priv *ecdh.PrivateKey }

func newKeyShare() keyShare {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("transfer: X25519 key: %v", err)) // only fails when the system's randomness does
	}
	return keyShare{k}
}

// public is the share to send, in hex.
func (k keyShare) public() string { return hex.EncodeToString(k.priv.PublicKey().Bytes()) }

// shared combines our share with the peer's (hex).
func (k keyShare) shared(peer string) ([]byte, error) {
	b, err := hex.DecodeString(peer)
	if err != nil {
		return nil, errors.New("malformed key-exchange share")
	}
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, errors.New("malformed key-exchange share")
	}
	s, err := k.priv.ECDH(pub)
	if err != nil {
		return nil, errors.New("unusable key-exchange share")
	}
	return s, nil
}

// Ticket lets a third party (the source server of a remote-to-remote
// transfer) open one session to this server with the rights of the client
// that asked for it, confined to the destination directory the client
// named. It is short-lived, works once, and is redeemed by a proof of its
// secret over the new session's handshake, never by the secret itself.
type Ticket struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// ParseTicket reads a ticket in its id.secret form.
func ParseTicket(s string) (Ticket, error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || len(id) != 32 || len(secret) != 64 {
		return Ticket{}, fmt.Errorf("malformed ticket")
	}
	if _, err := hex.DecodeString(id + secret); err != nil {
		return Ticket{}, fmt.Errorf("malformed ticket")
	}
	return Ticket{ID: id, Secret: secret}, nil
}

// ticketTTL bounds how long a ticket may wait to be used.
const ticketTTL = 2 * time.Minute

// maxTickets bounds the tickets a server holds at once.
const maxTickets = 1024

type ticketInfo struct {
	secret  []byte
	export  string // the export the issuing session was bound to ("" for --root)
	within  string // the destination directory the ticket is confined to, beneath the export
	expires time.Time
}

// tickets is a server's table of outstanding tickets.
type Tickets struct {
	mu sync.Mutex
	m  map[string]*ticketInfo
}

// ErrTooManyTickets refuses a ticket while maxTickets are outstanding.
var ErrTooManyTickets = errors.New("too many outstanding tickets on this server; try again in a few minutes")

func (t *Tickets) Issue(export, within string) (Ticket, error) {
	id := make([]byte, 16)
	rand.Read(id)
	tk := Ticket{ID: hex.EncodeToString(id), Secret: newNonce()}
	sec, _ := hex.DecodeString(tk.Secret)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*ticketInfo{}
	}
	now := time.Now()
	for k, v := range t.m {
		if now.After(v.expires) {
			delete(t.m, k)
		}
	}
	if len(t.m) >= maxTickets {
		return Ticket{}, ErrTooManyTickets
	}
	t.m[tk.ID] = &ticketInfo{secret: sec, export: export, within: within, expires: now.Add(ticketTTL)}
	return tk, nil
}

// lookup returns a valid ticket without using it up: knowing a ticket's id
// is not enough to spend it, only a proof of its secret is (redeem).
func (t *Tickets) lookup(id string) (*ticketInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti, ok := t.m[id]
	if !ok || time.Now().After(ti.expires) {
		return nil, false
	}
	return ti, true
}

// redeem uses ticket ti up once its holder has proved knowledge of the
// secret; false if another session redeemed it first.
func (t *Tickets) redeem(id string, ti *ticketInfo) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[id] != ti {
		return false
	}
	delete(t.m, id)
	return true
}

// TLSConfig builds a client TLS configuration from a job's spec.
func TLSConfig(t *wire.TLSSpec) (*tls.Config, error) {
	c := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, fmt.Errorf("no certificate in the destination's CA")
		}
		c.RootCAs = pool
	}
	return c, nil
}
