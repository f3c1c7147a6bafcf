package transfer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Authentication modes a server announces in its welcome.
const (
	authNone  = "none"  // no token configured: the session key travels in the welcome
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
	m.Write([]byte("xfer-v1"))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// authProof is what one side sends to prove it knows secret; both nonces
// and the session id are bound in, so a proof cannot be replayed.
func authProof(secret []byte, role, serverNonce, clientNonce, session string) string {
	return hex.EncodeToString(mac(secret, "auth", role, serverNonce, clientNonce, session))
}

// derivedKey is the session key both sides derive from the secret; it
// never crosses the wire.
func derivedKey(secret []byte, serverNonce, clientNonce, session string) []byte {
	return mac(secret, "session-key", serverNonce, clientNonce, session)
}

func proofOK(got, want string) bool {
	return hmac.Equal([]byte(got), []byte(want))
}

// Ticket lets a third party (the source server of a remote-to-remote
// transfer) open one session to this server with the rights of the client
// that asked for it. It is short-lived and works once.
type Ticket struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// String encodes a ticket for a job spec.
func (t Ticket) String() string { return t.ID + "." + t.Secret }

// ParseTicket reverses String.
func ParseTicket(s string) (Ticket, error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || len(id) != 32 || len(secret) != 64 {
		return Ticket{}, fmt.Errorf("malformed ticket")
	}
	return Ticket{ID: id, Secret: secret}, nil
}

// ticketTTL bounds how long a ticket may wait to be used.
const ticketTTL = 2 * time.Minute

type ticketInfo struct {
	secret  []byte
	export  string
	expires time.Time
}

// tickets is a server's table of outstanding tickets.
type tickets struct {
	mu sync.Mutex
	m  map[string]ticketInfo
}

func (t *tickets) issue(export string) Ticket {
	id := make([]byte, 16)
	rand.Read(id)
	tk := Ticket{ID: hex.EncodeToString(id), Secret: newNonce()}
	sec, _ := hex.DecodeString(tk.Secret)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]ticketInfo{}
	}
	now := time.Now()
	for k, v := range t.m {
		if now.After(v.expires) {
			delete(t.m, k)
		}
	}
	t.m[tk.ID] = ticketInfo{secret: sec, export: export, expires: now.Add(ticketTTL)}
	return tk
}

// take removes and returns a valid ticket.
func (t *tickets) take(id string) (ticketInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti, ok := t.m[id]
	delete(t.m, id)
	if !ok || time.Now().After(ti.expires) {
		return ticketInfo{}, false
	}
	return ti, true
}

// config builds a client TLS configuration from the spec.
func (t *TLSSpec) config() (*tls.Config, error) {
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
