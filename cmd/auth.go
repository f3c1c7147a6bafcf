package cmd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/location"
	"github.com/xfer-io/xfer/transfer"
)

// addPeerAuthFlags declares how a client authenticates to servers.
func addPeerAuthFlags(c *cobra.Command) {
	f := c.Flags()
	f.String("token-file", "", "file holding the shared token of servers started with --token-file")
	f.String("tls-ca", "", "connect with TLS and verify servers against this CA certificate (PEM)")
	f.String("tls-cert", "", "client certificate (PEM) for servers that require mutual TLS")
	f.String("tls-key", "", "private key (PEM) of --tls-cert")
	f.Bool("tls-data", true, "keep data streams inside TLS; false lets bulk data bypass TLS when the server allows it (control stays encrypted)")
}

// readToken reads a token file: the whole file, surrounding whitespace
// trimmed, at least 16 bytes. Like OpenSSH with private keys, it refuses a
// file that others may read or write: the token is the whole secret.
func readToken(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, exitcode.Usagef("token file %s: %v", path, unwrapPathErr(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, exitcode.Usagef("token file %s: %v", path, unwrapPathErr(err))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, exitcode.Usagef("token file %s is accessible by group or others (mode %04o): run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, exitcode.Usagef("token file %s: %v", path, unwrapPathErr(err))
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return nil, exitcode.Usagef("token file %s: the token must be at least 16 bytes (e.g. `head -c 32 /dev/urandom | base64 > %s`)", path, path)
	}
	return b, nil
}

func readPool(path string) (*x509.CertPool, string, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, "", exitcode.Usagef("CA file %s: %v", path, unwrapPathErr(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", exitcode.Usagef("CA file %s: no PEM certificate in it", path)
	}
	return pool, string(pem), nil
}

func loadKeyPair(cert, key string) (tls.Certificate, error) {
	if cert == "" || key == "" {
		return tls.Certificate{}, exitcode.Usagef("--tls-cert and --tls-key go together")
	}
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, exitcode.Usagef("TLS key pair %s, %s: %s", cert, key, strings.TrimPrefix(unwrapPathErr(err).Error(), "tls: "))
	}
	return kp, nil
}

// peerAuth merges the command-line flags with a remote's config entry
// (which wins) into what transfer needs to reach that peer.
func (a *app) peerAuth(r *location.Remote) (transfer.PeerAuth, error) {
	tokenFile, ca := a.v.GetString("token-file"), a.v.GetString("tls-ca")
	cert, key := a.v.GetString("tls-cert"), a.v.GetString("tls-key")
	tlsData, serverName := a.v.GetBool("tls-data"), ""
	if r != nil {
		if r.TokenFile != "" {
			tokenFile = r.TokenFile
		}
		if r.TLSCA != "" {
			ca = r.TLSCA
		}
		if r.TLSCert != "" {
			cert, key = r.TLSCert, r.TLSKey
		}
		if r.TLSData != nil {
			tlsData = *r.TLSData
		}
		serverName = r.TLSServerName
	}
	var pa transfer.PeerAuth
	if tokenFile != "" {
		t, err := readToken(tokenFile)
		if err != nil {
			return pa, err
		}
		pa.Token = t
	}
	if ca != "" || cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if ca != "" {
			pool, pem, err := readPool(ca)
			if err != nil {
				return pa, err
			}
			tc.RootCAs, pa.CAPEM = pool, pem
		}
		if cert != "" {
			kp, err := loadKeyPair(cert, key)
			if err != nil {
				return pa, err
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		pa.TLS, pa.TLSData = tc, tlsData
	}
	return pa, nil
}

// serverTLS builds the server's TLS configuration from its flags.
func (a *app) serverTLS() (*tls.Config, error) {
	cert, key, clientCA := a.v.GetString("tls-cert"), a.v.GetString("tls-key"), a.v.GetString("tls-client-ca")
	if cert == "" && key == "" {
		if clientCA != "" {
			return nil, exitcode.Usagef("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	kp, err := loadKeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}}
	if clientCA != "" {
		pool, _, err := readPool(clientCA)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func describeAuth(token bool, tc *tls.Config) string {
	s := "no token"
	if token {
		s = "token"
	}
	if tc != nil {
		s += ", TLS"
		if tc.ClientAuth == tls.RequireAndVerifyClientCert {
			s += " with client certificates"
		}
	}
	return fmt.Sprint(s)
}
