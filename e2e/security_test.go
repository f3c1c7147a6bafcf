package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeToken writes a token file and returns its path.
func writeToken(t *testing.T, s string) string { return writePrivate(t, "token", s+"\n") }

// TestTokenAuth: a server with --token-file admits only clients that know
// the token; the failure is exit 3 and says authentication failed.
func TestTokenAuth(t *testing.T) {
	good := writeToken(t, "correct-horse-battery-staple-42")
	bad := writeToken(t, "wrong-horse-battery-staple-0000")
	a := startServer(t, t.TempDir(), "--token-file", good)
	b := startServer(t, t.TempDir(), "--token-file", good)
	src := oddSource(t)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no token", []string{"copy", src, a.url("x")}, 3, "authentication failed"},
		{"wrong token", []string{"copy", src, a.url("x"), "--token-file", bad}, 3, "authentication failed"},
		{"right token", []string{"copy", src, a.url("x"), "--token-file", good}, 0, ""},
		{"third party with ticket", []string{"sync", a.url("x"), b.url("y"), "--token-file", good}, 0, ""},
		{"pull", []string{"copy", b.url("y"), filepath.Join(t.TempDir(), "pulled"), "--token-file", good}, 0, ""},
	}
	for _, tt := range tests {
		r := xfer(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%s: want exit %d with %q\n%s", tt.name, tt.code, tt.msg, r)
		}
	}
	sameTree(t, src, filepath.Join(b.root, "y"))
	if _, err := os.Stat(filepath.Join(a.root, "x")); err != nil {
		t.Fatal(err)
	}
	// A client with a token refuses a server that cannot prove it knows it.
	open := startServer(t, t.TempDir())
	if r := xfer(t, "copy", src, open.url("x"), "--token-file", good); r.code != 3 || !strings.Contains(r.stderr, "cannot prove") {
		t.Errorf("token client against a tokenless server: %s", r)
	}
	// The token itself never crosses the wire: nothing to check from here
	// beyond the protocol (HMAC of nonces); see docs/security.md.
}

// TestListenPolicy: without a token, only loopback unless --insecure-listen.
func TestListenPolicy(t *testing.T) {
	r := xfer(t, "serve", "--root", t.TempDir(), "--listen", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("non-loopback without a token: %s", r)
	}
	s := startServerOn(t, "0.0.0.0", t.TempDir(), "--insecure-listen")
	if !strings.Contains(s.logs.String(), "WARNING") {
		t.Errorf("--insecure-listen without a warning:\n%s", s.logs)
	}
}

// TestExports: named exports with their own permissions; a read-only
// export refuses writes and deletes with a clear error.
func TestExports(t *testing.T) {
	pub, scratch := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(pub, "dataset.bin"), []byte("public data"), 0o644))
	a := startServer(t, "", "--export", "pub="+pub+":ro", "--export", "scratch="+scratch+":rw")
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))

	if r := xfer(t, "copy", src, a.url("scratch/in")); r.code != 0 {
		t.Fatalf("write to the rw export: %s", r)
	}
	if _, err := os.Stat(filepath.Join(scratch, "in/f")); err != nil {
		t.Fatal(err)
	}
	r := xfer(t, "copy", src, a.url("pub/in"))
	if r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Errorf("write to the ro export: %s", r)
	}
	r = xfer(t, "sync", t.TempDir(), a.url("pub"))
	if r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Errorf("sync (delete) into the ro export: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(pub, "dataset.bin")); err != nil || string(b) != "public data" {
		t.Errorf("the ro export changed: %v", err)
	}
	out := t.TempDir()
	if r := xfer(t, "copy", a.url("pub"), out); r.code != 0 {
		t.Errorf("read from the ro export: %s", r)
	}
	if r := xfer(t, "copy", src, a.url("nope/x")); r.code != 2 || !strings.Contains(r.stderr, "no export named") {
		t.Errorf("unknown export: %s", r)
	}
}

// TestTLS: TLS with a CA, mutual TLS, plain clients refused, and bulk data
// outside TLS only when both sides agree.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCA(t, dir)
	makeLeaf(t, dir, "server", ca, caKey, true)
	makeLeaf(t, dir, "client", ca, caKey, false)
	p := func(n string) string { return filepath.Join(dir, n) }
	src := oddSource(t)

	s := startServer(t, t.TempDir(), "--tls-cert", p("server.pem"), "--tls-key", p("server.key"))
	if r := xfer(t, "copy", src, s.url("x"), "--tls-ca", p("ca.pem"), "--json"); r.code != 0 {
		t.Fatalf("TLS copy: %s", r)
	}
	sameTree(t, src, filepath.Join(s.root, "x"))
	if r := xfer(t, "copy", src, s.url("y")); r.code != 3 || !strings.Contains(r.stderr, "requires TLS") {
		t.Errorf("plain client against a TLS server: %s", r)
	}
	plain := startServer(t, t.TempDir())
	if r := xfer(t, "copy", src, plain.url("y"), "--tls-ca", p("ca.pem")); r.code != 3 || !strings.Contains(r.stderr, "TLS handshake failed") {
		t.Errorf("TLS client against a plain server: %s", r)
	}
	// --tls-data=false only when the server allows it too.
	r := xfer(t, "copy", src, s.url("z"), "--tls-ca", p("ca.pem"), "--tls-data=false")
	if r.code != 0 {
		t.Fatalf("--tls-data=false against a server that keeps data in TLS: %s", r)
	}
	s2 := startServer(t, t.TempDir(), "--tls-cert", p("server.pem"), "--tls-key", p("server.key"), "--tls-data=false")
	if r := xfer(t, "copy", src, s2.url("z"), "--tls-ca", p("ca.pem"), "--tls-data=false"); r.code != 0 {
		t.Fatalf("plain data streams: %s", r)
	}
	sameTree(t, src, filepath.Join(s2.root, "z"))

	m := startServer(t, t.TempDir(), "--tls-cert", p("server.pem"), "--tls-key", p("server.key"), "--tls-client-ca", p("ca.pem"))
	if r := xfer(t, "copy", src, m.url("m"), "--tls-ca", p("ca.pem")); r.code != 3 {
		t.Errorf("mutual TLS without a client certificate: %s", r)
	}
	if r := xfer(t, "copy", src, m.url("m"), "--tls-ca", p("ca.pem"), "--tls-cert", p("client.pem"), "--tls-key", p("client.key")); r.code != 0 {
		t.Fatalf("mutual TLS: %s", r)
	}
	sameTree(t, src, filepath.Join(m.root, "m"))
}

func makeCA(t *testing.T, dir string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xfer test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func makeLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	kb, _ := x509.MarshalECPrivateKey(key)
	must(t, os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
}
