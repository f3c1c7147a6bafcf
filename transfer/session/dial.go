package session

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/defaults"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/ratelimit"
)

// DialOptions say how to open a session to a server.
type DialOptions struct {
	Proto          string // auto or a transport name
	Streams        int
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	UringEntries   int
	Log            *slog.Logger
	ClientVersion  string
	// Token is the shared secret for servers started with --token-file.
	Token []byte
	// Ticket admits a third-party session (set by a server running a job).
	Ticket *Ticket
	// TLS, when set, wraps every connection in TLS with this configuration
	// (RootCAs, client certificate); ServerName defaults to the host.
	TLS *tls.Config
	// TLSData keeps the data streams inside TLS too (the default when TLS
	// is on); false lets bulk data bypass TLS if the server agrees.
	TLSData bool
	// NoVerify asks for a session whose receivers do not check chunk
	// digests (--verify=none); ignored where data streams are outside
	// TLS, which the digests protect.
	NoVerify bool
	// Xattrs is what this side can store of extended attributes where it
	// receives (a pull's local destination); nil: not said.
	Xattrs *wire.XattrSupport
	// allow, when set, vets every address a connection of this session is
	// about to be made to (--push-allow for a server's third-party jobs).
	allow func(network, address string, c syscall.RawConn) error
	// Conn, when set, is the control connection, already open (the pipes
	// of an ssh process): Dial makes no connection of its own for it, and
	// addr only names the peer in messages.
	Conn net.Conn
	// DialData, when set, opens data stream i in place of a TCP connection
	// to addr (ssh: to the far side's listener, or through ssh).
	DialData func(ctx context.Context, i int) (net.Conn, error)
	// Services, when set, registers the services this side offers on a
	// new session before it starts (a pull's destination tree, so that
	// the server can deliver into it).
	Services func(s *Session)
	// Bandwidth, when set, paces the session's data streams (a server's
	// --bwlimit, shared by every session it accepts and dials).
	Bandwidth *ratelimit.Bandwidth
	// pool, when set, is the server's receive-memory pool the session's
	// budget (poolLimit bytes) is drawn from, so that the sessions a
	// server opens for third-party jobs count in its --max-memory too.
	pool      *memPool
	poolLimit int64
}

// tlsFor clones c with ServerName set from addr when missing.
func tlsFor(c *tls.Config, addr string) *tls.Config {
	c = c.Clone()
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		}
	}
	return c
}

func filterTransports(list []string, keep ...string) []string {
	var out []string
	for _, n := range list {
		if slices.Contains(keep, n) {
			out = append(out, n)
		}
	}
	return out
}

func (o DialOptions) withDefaults() DialOptions {
	if o.Streams <= 0 {
		o.Streams = wire.DefaultStreams
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = wire.DefaultConnectTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = wire.DefaultIdleTimeout
	}
	if o.Proto == "" {
		o.Proto = "auto"
	}
	defaults.Log(&o.Log)
	return o
}

// peerErr marks an error reaching or talking to addr (exit code 3).
func peerErr(addr string, format string, a ...any) error {
	return exitcode.WithCode(exitcode.Peer, fmt.Errorf("peer %s: %s", addr, fmt.Sprintf(format, a...)))
}

// busyErr is a server's passing refusal: exit 3 if it lasts, retried by
// Run (--retries) after the wait the server asked for.
func busyErr(addr, msg string, afterMs int64) error {
	return exitcode.WithCode(exitcode.Peer, &BusyError{Addr: addr, Msg: msg, RetryAfter: time.Duration(afterMs) * time.Millisecond})
}

// Dial opens a session to the xfer server at addr (host:port): it connects
// within the connect timeout, negotiates the protocol version and the
// transport, and sets up the data streams.
func Dial(ctx context.Context, addr string, o DialOptions) (*Session, error) {
	o = o.withDefaults()
	if o.Proto != "auto" {
		if !backends.Known(o.Proto) {
			return nil, exitcode.Usagef("--proto %q: want auto, tcp, tcp-zc, uring or rdma", o.Proto)
		}
		t, ok := backends.Lookup(o.Proto)
		if !ok {
			return nil, exitcode.Peerf("transport %s is not compiled into this binary", o.Proto)
		}
		if err := t.Probe(); err != nil {
			return nil, exitcode.Peerf("transport %s is not usable here: %v", o.Proto, err)
		}
	}
	mine, reasons := usableTransports(o.Proto == "auto")
	if o.TLS != nil && o.TLSData {
		// Encrypted data streams are TLS sockets: only the plain TCP
		// transport can carry them.
		mine = filterTransports(mine, "tcp")
		if o.Proto != "auto" && o.Proto != "tcp" {
			return nil, exitcode.Usagef("--proto %s cannot carry TLS-encrypted data: use --tls-data=false (both sides) or --proto tcp", o.Proto)
		}
	}
	raw := o.Conn
	if raw == nil {
		d := net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 15 * time.Second, Control: o.allow}
		var err error
		if raw, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return nil, exitcode.WithCode(exitcode.Peer, fmt.Errorf("peer %s: cannot connect: %w", addr, NetReason(err)))
		}
	}
	deadline := time.Now().Add(o.ConnectTimeout)
	raw.SetDeadline(deadline)
	// The handshake reads by deadline; a context that ends meanwhile (a
	// signal, --max-duration) ends the wait at once.
	stopWatch := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stopWatch()
	conn := raw
	if o.TLS != nil {
		tc := tls.Client(raw, tlsFor(o.TLS, addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, peerErr(addr, "TLS handshake failed: %v (is the server started with --tls-cert?)", tlsProblem(err))
		}
		conn = tc
	}
	fail := func(err error) (*Session, error) {
		conn.Close()
		return nil, err
	}
	fr := wire.NewFrameReader(conn, wire.DefaultMaxFrame)
	cn := newNonce()
	kx := newKeyShare()
	hello := wire.Hello{Proto: "xfer", Version: wire.ProtocolVersion, Role: "control", Client: o.ClientVersion,
		Transports: mine, Want: o.Proto, Streams: o.Streams, Nonce: cn, KX: kx.public(), NoVerify: o.NoVerify, Xattrs: o.Xattrs}
	if o.Ticket != nil {
		hello.Ticket = o.Ticket.ID
	}
	if o.TLS != nil {
		td := o.TLSData
		hello.TLSData = &td
	}
	helloRaw, err := wire.Encode(hello)
	if err != nil {
		return fail(peerErr(addr, "handshake: %v", err))
	}
	if err := wire.WriteFrame(conn, wire.FrameHello, helloRaw); err != nil {
		return fail(peerErr(addr, "handshake: %v", err))
	}
	var w wire.Welcome
	welcomeRaw, err := readWelcome(fr, &w)
	if err != nil {
		return fail(peerErr(addr, "%v", err))
	}
	if w.Error != "" {
		if w.RetryAfterMs > 0 {
			return fail(busyErr(addr, w.Error, w.RetryAfterMs))
		}
		return fail(peerErr(addr, "%s", w.Error))
	}
	if w.Version != wire.ProtocolVersion {
		return fail(peerErr(addr, "speaks protocol version %d, this client %d", w.Version, wire.ProtocolVersion))
	}
	if w.Session == "" || w.Streams < 1 {
		return fail(peerErr(addr, "invalid welcome"))
	}
	th := transcriptHash(helloRaw, welcomeRaw)
	shared, err := kx.shared(w.KX)
	if err != nil {
		return fail(peerErr(addr, "invalid welcome: %v", err))
	}
	// What TLS does not protect, message tags and digest checks do; the
	// server must have come to the same conclusion.
	dataTLS := o.TLS != nil && w.TLSData
	verify := !o.NoVerify || !dataTLS
	if w.Verify != verify {
		return fail(peerErr(addr, "invalid welcome: the server does not verify what this session needs verified"))
	}
	var key []byte
	secret := o.Token
	if o.Ticket != nil {
		secret, _ = hex.DecodeString(o.Ticket.Secret)
	}
	switch w.Auth {
	case authToken:
		if len(secret) == 0 {
			return fail(peerErr(addr, "authentication failed: the server requires a token (give --token-file, or token_file in the remote's config entry)"))
		}
		if err := wire.WriteMessage(conn, wire.FrameAuth, wire.AuthMsg{Proof: authProof(secret, "client", th)}); err != nil {
			return fail(peerErr(addr, "authentication: %v", err))
		}
		typ, p, err := fr.Read()
		if err != nil {
			return fail(peerErr(addr, "authentication: %v", err))
		}
		var am wire.AuthMsg
		if typ != wire.FrameAuthOK || wire.Decode(p, &am) != nil {
			return fail(peerErr(addr, "authentication: unexpected reply"))
		}
		if am.Error != "" {
			if am.RetryAfterMs > 0 {
				return fail(busyErr(addr, am.Error, am.RetryAfterMs))
			}
			return fail(peerErr(addr, "%s", am.Error))
		}
		if !proofOK(am.Proof, authProof(secret, "server", th)) {
			return fail(peerErr(addr, "authentication failed: the server could not prove it knows the token (wrong server, a different token, or the handshake was altered on the way)"))
		}
		key = derivedKey(secret, th, shared)
	case authNone, "":
		if len(secret) > 0 {
			return fail(peerErr(addr, "authentication failed: a token is configured for this peer but the server has none, so it cannot prove who it is; refusing to talk to it"))
		}
		key = anonymousKey(th, shared)
	default:
		return fail(peerErr(addr, "unknown authentication method %q", w.Auth))
	}
	t, ok := backends.Lookup(w.Transport)
	if !ok {
		return fail(peerErr(addr, "chose transport %q, which this binary lacks", w.Transport))
	}
	s := newSession(conn, fr, o.Log, o.IdleTimeout)
	s.peerXattrs = w.Xattrs
	if o.Conn != nil {
		s.peer = addr // the pipes of a process have no address to show
	}
	if o.pool != nil {
		s.shareMemory(o.pool, o.poolLimit)
	}
	s.id, s.transport = w.Session, w.Transport
	s.secure(key, true, o.TLS == nil, !dataTLS)
	s.verify = verify
	s.reason = w.TransportReason
	s.candidates = candidates(mine, w.Offers, w.Transport)
	s.peerCapped = w.Capped
	if o.Proto == "auto" && s.reason == "" {
		s.reason = fallbackReason(w.Transport, mine, reasons)
	}
	if o.TLS != nil && o.TLSData && s.reason == "" && len(mine) == 1 {
		s.reason = "data encrypted with TLS: only tcp can carry it"
	}
	if o.Services != nil {
		o.Services(s)
	}
	var dataConf *tls.Config
	if dataTLS {
		dataConf = tlsFor(o.TLS, addr)
	}
	rv := &dialRendezvous{s: s, addr: addr, timeout: o.ConnectTimeout, exch: controlExchange{s}, tls: dataConf, allow: o.allow, dial: o.DialData}
	setupCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := s.openTransport(setupCtx, t, rv, backends.Params{Streams: w.Streams, Dialer: true, UringEntries: o.UringEntries}, o.Bandwidth); err != nil {
		return fail(exitcode.WithCode(exitcode.Peer, err))
	}
	conn.SetDeadline(time.Time{})
	if s.reason != "" {
		o.Log.Info("transport chosen", "peer", addr, "transport", s.transport, "reason", s.reason)
	}
	s.start()
	return s, nil
}

// NetReason reduces a dial or listen error to what a user reads: the
// system's reason ("connection refused", "address already in use", "i/o
// timeout"), without Go's "dial tcp ADDR: connect:" or "listen tcp ADDR:
// bind:" layers. Other errors come back as they are.
func NetReason(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) && se.Err != nil {
		return se.Err
	}
	return err
}

// readWelcome reads the server's welcome into w and returns its bytes as
// received, for the handshake transcript.
func readWelcome(fr *wire.FrameReader, w *wire.Welcome) ([]byte, error) {
	typ, p, err := fr.Read()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, errors.New("no answer to the handshake (is it an xfer server?)")
		}
		if errors.Is(err, wire.ErrFrameTooLarge) || isBadHeader(err) {
			return nil, errors.New("not an xfer server (unexpected reply to the handshake)")
		}
		return nil, fmt.Errorf("handshake: %v", err)
	}
	if typ != wire.FrameWelcome {
		return nil, errors.New("not an xfer server (unexpected reply to the handshake)")
	}
	if err := wire.Decode(p, w); err != nil {
		return nil, errors.New("not an xfer server (malformed handshake)")
	}
	return append([]byte(nil), p...), nil
}

func isBadHeader(err error) bool {
	return err != nil && len(err.Error()) > 16 && err.Error()[:16] == "bad frame header"
}

// usableTransports lists the transports this binary can use here, in
// preference order, with the reason each unusable one is not. For auto
// negotiation, transports that decline automatic selection are left out
// before they are probed (probing UCX costs a few hundred milliseconds).
func usableTransports(auto bool) ([]string, map[string]string) {
	var ok []string
	why := map[string]string{}
	for _, t := range backends.All() {
		if ac, isAC := t.(backends.AutoChooser); auto && isAC {
			if err := ac.AutoOK(); err != nil {
				why[t.Name()] = err.Error()
				continue
			}
		}
		if err := t.Probe(); err != nil {
			why[t.Name()] = err.Error()
			continue
		}
		ok = append(ok, t.Name())
	}
	return ok, why
}

// fallbackReason explains why auto negotiation did not pick a transport
// preferred over the chosen one.
func fallbackReason(chosen string, mine []string, why map[string]string) string {
	for _, n := range backends.Preference() {
		if n == chosen {
			return ""
		}
		if r, ok := why[n]; ok {
			return fmt.Sprintf("%s unavailable here: %s", n, r)
		}
		if !slices.Contains(mine, n) {
			continue
		}
		return fmt.Sprintf("peer does not offer %s", n)
	}
	return ""
}

// candidates lists the transports both ends could have used for a
// session, in this side's preference order: the ones mine and the
// server's offers share, or only the chosen one where the server did not
// say what it offers.
func candidates(mine, offers []string, chosen string) []string {
	if offers == nil {
		return []string{chosen}
	}
	var out []string
	for _, n := range mine {
		if slices.Contains(offers, n) {
			out = append(out, n)
		}
	}
	return out
}

// dialRendezvous opens data sockets to the server and binds them to the
// session with an HMAC of the session key.
type dialRendezvous struct {
	s       *Session
	addr    string
	timeout time.Duration
	exch    controlExchange
	tls     *tls.Config // data streams inside TLS
	allow   func(network, address string, c syscall.RawConn) error
	dial    func(ctx context.Context, i int) (net.Conn, error) // DialOptions.DialData
}

func (r *dialRendezvous) Conn(ctx context.Context, i int) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	if r.dial != nil {
		c, err = r.dial(ctx, i)
	} else {
		d := net.Dialer{Timeout: r.timeout, KeepAlive: 15 * time.Second, Control: r.allow}
		c, err = d.DialContext(ctx, "tcp", r.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("data stream %d: %w", i, NetReason(err))
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if r.tls != nil {
		tc := tls.Client(c, r.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("data stream %d: TLS handshake: %w", i, err)
		}
		c = tc
	}
	h := wire.Hello{Proto: "xfer", Version: wire.ProtocolVersion, Role: "data", Session: r.s.id, Stream: i,
		Proof: sessionProof(r.s.key, r.s.id, i)}
	if err := wire.WriteMessage(c, wire.FrameHello, h); err != nil {
		c.Close()
		return nil, fmt.Errorf("data stream %d: %w", i, err)
	}
	var w wire.Welcome
	// The server answers a data hello with a bare welcome (or an error);
	// read it byte-exactly so that no data is buffered away from the
	// transport.
	if err := readWelcomeExact(c, &w); err != nil {
		c.Close()
		return nil, fmt.Errorf("data stream %d: %w", i, err)
	}
	if w.Error != "" {
		c.Close()
		return nil, fmt.Errorf("data stream %d: %s", i, w.Error)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (r *dialRendezvous) Exchange(ctx context.Context, blob []byte) ([]byte, error) {
	return r.exch.Exchange(ctx, blob)
}

func readWelcomeExact(c net.Conn, w *wire.Welcome) error {
	typ, p, err := wire.ReadFrameExact(c, 64<<10)
	if err != nil {
		return fmt.Errorf("handshake: %v", err)
	}
	if typ != wire.FrameWelcome {
		return errors.New("unexpected reply to the data handshake")
	}
	return wire.Decode(p, w)
}

// tlsProblem words a TLS handshake error for people: a timeout as such,
// without Go's "read tcp A->B:" and "tls:" prefixes.
func tlsProblem(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer in time"
	}
	msg := NetReason(err).Error()
	return strings.TrimPrefix(msg, "tls: ")
}
