package session

import (
	"context"
	"os"
	"slices"
	"syscall"

	"github.com/xfer-io/xfer/internal/defaults"
	"github.com/xfer-io/xfer/internal/ratelimit"

	"github.com/xfer-io/xfer/transfer/wire"

	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/metrics"
)

// ServerConfig configures how a server admits sessions: who may connect,
// over which transports, within which limits. What a session may then do
// is up to Services.
type ServerConfig struct {
	Protos []string // transports offered; empty: every usable one
	// Token, when set, is required of every client (HMAC challenge-response).
	Token []byte
	// TLS, when set, is required on every connection.
	TLS *tls.Config
	// AllowPlainData lets data streams bypass TLS when the client asks too
	// (--tls-data=false on both sides); control stays encrypted.
	AllowPlainData bool
	// Limits (see admission.go for the defaults).
	MaxSessions          int // concurrent authenticated sessions in all
	MaxSessionsPerClient int // concurrent authenticated sessions from one IP address
	// MaxHandshakes and MaxHandshakesPerClient bound the connections that
	// have not authenticated yet, in all and per IP address; they never
	// count as sessions. HandshakeTimeout bounds one connection's TLS
	// handshake, hello and authentication.
	MaxHandshakes          int
	MaxHandshakesPerClient int
	HandshakeTimeout       time.Duration
	MaxFrame               int   // control frame limit in bytes (default 8 MiB)
	MaxSessionMemory       int64 // receive buffers per session (default 256 MiB)
	// MaxMemory bounds the receive buffers of all sessions together
	// (default 1 GiB); a message waits for room rather than allocate.
	MaxMemory int64
	// Metrics, when set, counts sessions.
	Metrics     *metrics.Metrics
	MaxStreams  int
	IdleTimeout time.Duration
	Log         *slog.Logger
	Version     string
	// UringEntries sizes the io_uring rings of sessions (0: the default).
	UringEntries int
	// Services registers on a new session, before it starts, what it may
	// do: a session admitted with a ticket (g.Ticket) must be confined to
	// one delivery into g.Within. An error ends the session.
	Services func(s *Session, g Grant) error
	// Xattrs is what the served tree can store of extended attributes,
	// told to every client in the welcome; nil: not said.
	Xattrs *wire.XattrSupport
	// Bandwidth, when set, paces the data streams of every session
	// together (serve --bwlimit); the sessions the server dials for
	// third-party jobs share it through their DialOptions.
	Bandwidth *ratelimit.Bandwidth
}

// Grant is what a session was admitted with: a ticket confines it to one
// delivery into one directory (of one export).
type Grant struct {
	Ticket bool   // admitted with a ticket, not the server's token
	Export string // the export the ticket was issued in ("" for a single root)
	Within string // the directory the ticket admits
}

// Server accepts and authenticates sessions and hands each to the
// services its configuration registers.
type Server struct {
	cfg ServerConfig
	// usable and why are probed once: probing some transports (UCX) is slow.
	usable  []string
	why     map[string]string
	mu      sync.Mutex
	joins   map[string]*pendingSession // sessions still setting up their data streams
	adm     *admission
	tickets Tickets
	active  sync.WaitGroup
	// mem is the receive memory of all sessions (MaxMemory).
	mem *memPool
}

type pendingSession struct {
	key     []byte
	plainOK bool // data streams may skip TLS
	conns   chan dataConn
}

type dataConn struct {
	i int
	c net.Conn
}

// NewServer creates a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	defaults.Positive(&cfg.MaxStreams, 64)
	defaults.Positive(&cfg.IdleTimeout, wire.DefaultIdleTimeout)
	defaults.Log(&cfg.Log)
	defaults.Positive(&cfg.MaxSessions, DefaultMaxSessions)
	defaults.Positive(&cfg.MaxSessionsPerClient, DefaultMaxSessionsPerClient)
	defaults.Positive(&cfg.MaxHandshakes, DefaultMaxHandshakes)
	defaults.Positive(&cfg.MaxHandshakesPerClient, DefaultMaxHandshakesPerClient)
	defaults.Positive(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	defaults.Positive(&cfg.MaxFrame, wire.DefaultMaxFrame)
	defaults.Positive(&cfg.MaxSessionMemory, DefaultMaxSessionMemory)
	defaults.Positive(&cfg.MaxMemory, DefaultMaxMemory)
	cfg.MaxSessionMemory = min(cfg.MaxSessionMemory, cfg.MaxMemory)
	srv := &Server{cfg: cfg, joins: map[string]*pendingSession{}, adm: newAdmission(cfg), mem: newMemPool(cfg.MaxMemory)}
	srv.usable, srv.why = usableTransports(false)
	return srv
}

// Serve accepts connections on ln until ctx is done.
//
// Running out of file descriptors (EMFILE, ENFILE) or kernel buffers never
// stops the server: it backs off as net/http does (5 ms doubling to 1 s)
// and, to keep its listen queue from filling with clients that would wait
// for nothing, gives up a reserved descriptor for a moment to accept and
// close the oldest waiting connection.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	reserve, _ := os.Open(os.DevNull)
	defer func() {
		if reserve != nil {
			reserve.Close()
		}
	}()
	var (
		delay    time.Duration
		lastWarn time.Time
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				srv.active.Wait()
				return nil
			}
			if !temporaryAccept(err) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay = 2 * delay; delay > time.Second {
				delay = time.Second
			}
			if time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				srv.cfg.Log.Warn("cannot accept connections for now; backing off", "err", err, "retry_in", delay)
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				reserve = shedOne(ln, reserve)
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			continue
		}
		delay = 0
		srv.active.Add(1)
		go func() {
			defer srv.active.Done()
			srv.handleConn(ctx, c)
		}()
	}
}

// temporaryAccept tells the accept errors that pass (a resource shortage, a
// client that gave up) from a listener that is gone.
func temporaryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// shedOne closes the reserved descriptor, accepts one waiting connection
// with it and closes that at once (the client sees the connection closed
// rather than a hang), then reserves a descriptor again.
func shedOne(ln net.Listener, reserve *os.File) *os.File {
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if reserve == nil || !ok {
		return reserve
	}
	reserve.Close()
	dl.SetDeadline(time.Now().Add(10 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
	}
	dl.SetDeadline(time.Time{})
	r, _ := os.Open(os.DevNull)
	return r
}

// handleConn reads the first frame and either starts a session or binds a
// data stream to one. A peer that is not xfer, or that misbehaves, only
// loses its own connection.
func (srv *Server) handleConn(ctx context.Context, c net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			srv.cfg.Log.Error("internal error serving a connection; closed it", "peer", c.RemoteAddr().String(), "panic", fmt.Sprint(r))
			c.Close()
		}
	}()
	peer := c.RemoteAddr().String()
	// Until it has authenticated (control) or joined its session (data),
	// a connection counts against the handshake budget, never as a
	// session, and has HandshakeTimeout to get there.
	host := hostOf(peer)
	leave, ok := srv.adm.enterHandshake(host, func() { c.Close() })
	if !ok {
		srv.cfg.Log.Debug("rejected connection: too many unauthenticated connections", "peer", peer)
		c.Close()
		return
	}
	defer leave()
	c.SetDeadline(time.Now().Add(srv.cfg.HandshakeTimeout))
	// Peek at the first byte (without consuming it, so a plain socket
	// reaches the transports as the *net.TCPConn it is): 0x16 opens a TLS
	// handshake, 0x01 an xfer hello.
	first, err := peekByte(c)
	if err != nil {
		c.Close()
		return
	}
	var conn net.Conn = c
	isTLS := first == 0x16
	switch {
	case isTLS && srv.cfg.TLS == nil:
		srv.cfg.Log.Warn("rejected connection: client speaks TLS but this server has no --tls-cert", "peer", peer)
		c.Close()
		return
	case isTLS:
		tc := tls.Server(conn, srv.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			srv.cfg.Log.Warn("rejected connection: TLS handshake failed", "peer", peer, "err", err)
			c.Close()
			return
		}
		conn = tc
	}
	typ, p, err := wire.ReadFrameExact(conn, 64<<10)
	if err != nil || typ != wire.FrameHello {
		srv.cfg.Log.Warn("rejected connection: not an xfer handshake", "peer", peer)
		c.Close()
		return
	}
	h, err := wire.DecodeHello(p)
	if err != nil {
		srv.cfg.Log.Warn("rejected connection: malformed handshake", "peer", peer, "err", err)
		c.Close()
		return
	}
	if h.Version != wire.ProtocolVersion {
		wire.WriteMessage(conn, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion,
			Error: fmt.Sprintf("protocol version %d not supported (server speaks %d)", h.Version, wire.ProtocolVersion)})
		c.Close()
		return
	}
	if srv.cfg.TLS != nil && !isTLS && h.Role != "data" {
		wire.WriteMessage(conn, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion,
			Error: "this server requires TLS: connect with --tls-ca (or tls_ca in the remote's config entry)"})
		c.Close()
		return
	}
	switch h.Role {
	case "data":
		srv.joinData(conn, h, isTLS)
	case "control":
		srv.session(ctx, conn, h, p, isTLS, leave)
	default:
		wire.WriteMessage(conn, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion, Error: "unknown connection role"})
		c.Close()
	}
}

// peekByte returns the first byte waiting on c without consuming it.
func peekByte(c net.Conn) (byte, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("connection without a file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		b    [1]byte
		n    int
		perr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		return perr != unix.EAGAIN
	})
	if err == nil {
		err = perr
	}
	if err == nil && n != 1 {
		err = io.EOF
	}
	return b[0], err
}

func (srv *Server) joinData(c net.Conn, h wire.Hello, isTLS bool) {
	srv.mu.Lock()
	ps := srv.joins[h.Session]
	srv.mu.Unlock()
	if ps != nil && srv.cfg.TLS != nil && !isTLS && !ps.plainOK {
		wire.WriteMessage(c, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion, Error: "this session's data streams must use TLS"})
		c.Close()
		return
	}
	if ps == nil || !hmac.Equal([]byte(h.Proof), []byte(sessionProof(ps.key, h.Session, h.Stream))) {
		wire.WriteMessage(c, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion, Error: "unknown session or bad proof"})
		c.Close()
		return
	}
	if err := wire.WriteMessage(c, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion}); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	select {
	case ps.conns <- dataConn{i: h.Stream, c: c}:
	default:
		c.Close()
	}
}

// offered lists the transports this server offers: usable ones,
// restricted by --protos.
func (srv *Server) offered() ([]string, map[string]string) {
	mine := append([]string(nil), srv.usable...)
	why := map[string]string{}
	for k, v := range srv.why {
		why[k] = v
	}
	if len(srv.cfg.Protos) == 0 {
		return mine, why
	}
	var out []string
	for _, n := range mine {
		if slices.Contains(srv.cfg.Protos, n) {
			out = append(out, n)
		}
	}
	for _, n := range backends.Preference() {
		if !slices.Contains(srv.cfg.Protos, n) {
			why[n] = "disabled on the server (--protos)"
		}
	}
	return out, why
}

// session runs one control connection: authentication, transport set-up,
// then requests until either side ends it. leave ends the connection's
// stay in the handshake budget; the session counts as one from then on.
// helloRaw is the hello as received, for the handshake transcript.
func (srv *Server) session(ctx context.Context, c net.Conn, h wire.Hello, helloRaw []byte, isTLS bool, leave func()) {
	peer := c.RemoteAddr().String()
	host := hostOf(peer)
	reject := func(msg string) {
		wire.WriteMessage(c, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion, Error: msg})
		c.Close()
	}
	if wait := srv.adm.shutOut(host); wait > 0 {
		srv.cfg.Log.Warn("rejected session: address shut out after failed authentications", "peer", peer, "for", wait.Round(time.Second))
		wire.WriteMessage(c, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion, RetryAfterMs: wait.Milliseconds(),
			Error: fmt.Sprintf("too many failed authentications from %s", host)})
		c.Close()
		return
	}
	// admit counts the session once it is authenticated; a refusal
	// carries the wait the client should allow before trying again.
	var release func()
	admit := func() (string, int64, bool) {
		r, err := srv.adm.admitSession(host)
		if err != nil {
			srv.cfg.Log.Warn("rejected session", "peer", peer, "err", err)
			var be *BusyError
			errors.As(err, &be)
			return be.Msg, be.RetryAfter.Milliseconds(), false
		}
		release = r
		leave()
		return "", 0, true
	}
	defer func() {
		if release != nil {
			release()
		}
	}()

	// Who is it? A token holder, a ticket holder, or (no token configured)
	// anyone who can reach the listener.
	var secret []byte
	// A ticket is looked up, not used up: only a proof of its secret
	// (below) spends it, so knowing its id is not enough to burn it.
	var ti *ticketInfo
	switch {
	case h.Ticket != "":
		var ok bool
		if ti, ok = srv.tickets.lookup(h.Ticket); !ok {
			srv.adm.authFailed(host)
			srv.cfg.Log.Warn("authentication failed: unknown or expired ticket", "peer", peer)
			reject("authentication failed: unknown or expired ticket")
			return
		}
		secret = ti.secret
	case srv.cfg.Token != nil:
		secret = srv.cfg.Token
	}
	tlsData := isTLS && !(h.TLSData != nil && !*h.TLSData && srv.cfg.AllowPlainData)
	// Data outside TLS is authenticated by message tags and by the chunk
	// digests, which are therefore always checked.
	verify := !h.NoVerify || !tlsData
	kx := newKeyShare()
	shared, err := kx.shared(h.KX)
	if err != nil {
		srv.cfg.Log.Warn("rejected connection: malformed handshake", "peer", peer, "err", err)
		reject("malformed handshake: " + err.Error())
		return
	}

	mine, why := srv.offered()
	if tlsData {
		mine = filterTransports(mine, "tcp")
		for _, n := range backends.Preference() {
			if n != "tcp" {
				why[n] = "data streams are encrypted with TLS (both sides need --tls-data=false for " + n + ")"
			}
		}
	}
	name, err := backends.Negotiate(h.Want, mine, h.Transports)
	if err != nil {
		msg := err.Error()
		if h.Want != "" && h.Want != "auto" {
			if r, ok := why[h.Want]; ok {
				msg = fmt.Sprintf("server cannot use transport %s: %s", h.Want, r)
			} else if !slices.Contains(mine, h.Want) {
				msg = fmt.Sprintf("server does not offer transport %s (it offers %v)", h.Want, mine)
			}
		}
		reject(msg)
		return
	}
	reason := ""
	if h.Want == "" || h.Want == "auto" {
		for _, n := range h.Transports {
			if n == name {
				break
			}
			if r, ok := why[n]; ok {
				reason = fmt.Sprintf("%s unavailable on the server: %s", n, r)
				break
			}
		}
	}
	streams := h.Streams
	if streams < 1 {
		streams = 1
	}
	if streams > srv.cfg.MaxStreams {
		streams = srv.cfg.MaxStreams
	}
	// Each stream may hold one chunk buffer: keep within the memory cap.
	if max := int(srv.cfg.MaxSessionMemory / wire.MaxChunkSize); max >= 1 && streams > max {
		streams = max
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	sn := newNonce()
	w := wire.Welcome{Version: wire.ProtocolVersion, Server: srv.cfg.Version, Session: id,
		Transport: name, TransportReason: reason, Streams: streams, Nonce: sn, TLS: isTLS, TLSData: tlsData,
		KX: kx.public(), Verify: verify, Xattrs: srv.cfg.Xattrs, Offers: mine, Capped: srv.cfg.Bandwidth != nil}
	// The session must be registered before the client learns it can
	// dial data streams (after the welcome, or after the auth reply).
	ps := &pendingSession{plainOK: !tlsData, conns: make(chan dataConn, streams)}
	register := func(key []byte) {
		ps.key = key
		srv.mu.Lock()
		srv.joins[id] = ps
		srv.mu.Unlock()
	}
	defer func() {
		srv.mu.Lock()
		delete(srv.joins, id)
		srv.mu.Unlock()
	}()
	w.Auth = authNone
	if secret == nil {
		// Nothing to prove: the session counts from here.
		if msg, after, ok := admit(); !ok {
			wire.WriteMessage(c, wire.FrameWelcome, wire.Welcome{Version: wire.ProtocolVersion, Error: msg, RetryAfterMs: after})
			c.Close()
			return
		}
	} else {
		w.Auth = authToken
	}
	welcomeRaw, err := wire.Encode(w)
	if err != nil {
		c.Close()
		return
	}
	th := transcriptHash(helloRaw, welcomeRaw)
	var key []byte
	if secret == nil {
		key = anonymousKey(th, shared)
		register(key)
	}
	if err := wire.WriteFrame(c, wire.FrameWelcome, welcomeRaw); err != nil {
		c.Close()
		return
	}
	if secret != nil {
		typ, p, err := wire.ReadFrameExact(c, 64<<10)
		var am wire.AuthMsg
		if err != nil || typ != wire.FrameAuth || wire.Decode(p, &am) != nil ||
			!proofOK(am.Proof, authProof(secret, "client", th)) {
			penalty := srv.adm.authFailed(host)
			msg := "authentication failed: wrong token (or none given)"
			if ti != nil {
				msg = "authentication failed: wrong ticket secret"
			}
			srv.cfg.Log.Warn(msg, "peer", peer, "shut_out_for", penalty)
			wire.WriteMessage(c, wire.FrameAuthOK, wire.AuthMsg{Error: msg + ", or the handshake was altered on the way"})
			c.Close()
			return
		}
		srv.adm.authSucceeded(host)
		if msg, after, ok := admit(); !ok {
			wire.WriteMessage(c, wire.FrameAuthOK, wire.AuthMsg{Error: msg, RetryAfterMs: after})
			c.Close()
			return
		}
		// Spent only now: a proof verified and a session slot held.
		if ti != nil && !srv.tickets.redeem(h.Ticket, ti) {
			srv.cfg.Log.Warn("authentication failed: ticket already used", "peer", peer)
			wire.WriteMessage(c, wire.FrameAuthOK, wire.AuthMsg{Error: "authentication failed: the ticket was already used"})
			c.Close()
			return
		}
		key = derivedKey(secret, th, shared)
		register(key)
		if err := wire.WriteMessage(c, wire.FrameAuthOK, wire.AuthMsg{Proof: authProof(secret, "server", th)}); err != nil {
			c.Close()
			return
		}
	}
	fr := wire.NewFrameReader(c, srv.cfg.MaxFrame)
	s := newSession(c, fr, srv.cfg.Log, srv.cfg.IdleTimeout)
	s.peerXattrs = h.Xattrs
	s.shareMemory(srv.mem, srv.cfg.MaxSessionMemory)
	s.id, s.transport, s.reason = id, name, reason
	s.secure(key, false, !isTLS, !tlsData)
	s.verify = verify
	t, _ := backends.Lookup(name)
	rv := &acceptRendezvous{ps: ps, exch: controlExchange{s}, got: map[int]net.Conn{}}
	setupCtx, cancel := context.WithTimeout(ctx, wire.DefaultConnectTimeout)
	err = s.openTransport(setupCtx, t, rv, backends.Params{Streams: streams, Dialer: false, UringEntries: srv.cfg.UringEntries}, srv.cfg.Bandwidth)
	cancel()
	if err != nil {
		srv.cfg.Log.Warn("session set-up failed", "peer", peer, "err", err)
		rv.closeAll()
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	srv.mu.Lock()
	delete(srv.joins, id)
	srv.mu.Unlock()
	if err := srv.cfg.Services(s, Grant{Ticket: ti != nil, Export: exportOf(ti), Within: withinOf(ti)}); err != nil {
		s.Close()
		return
	}
	srv.cfg.Log.Info("session started", "peer", peer, "transport", name, "streams", streams, "tls", isTLS)
	srv.cfg.Metrics.SessionStarted()
	defer srv.cfg.Metrics.SessionEnded()
	s.start()
	select {
	case <-s.Done():
	case <-ctx.Done():
		s.Close()
		<-s.Done()
	}
	srv.cfg.Log.Info("session ended", "peer", peer, "reason", s.Err())
}

func exportOf(ti *ticketInfo) string {
	if ti == nil {
		return ""
	}
	return ti.export
}

func withinOf(ti *ticketInfo) string {
	if ti == nil {
		return ""
	}
	return ti.within
}

// acceptRendezvous hands the transport the data sockets the client dials.
type acceptRendezvous struct {
	ps   *pendingSession
	exch controlExchange
	got  map[int]net.Conn
}

func (r *acceptRendezvous) Conn(ctx context.Context, i int) (net.Conn, error) {
	for {
		if c, ok := r.got[i]; ok {
			delete(r.got, i)
			return c, nil
		}
		select {
		case dc := <-r.ps.conns:
			if old, dup := r.got[dc.i]; dup {
				old.Close()
			}
			r.got[dc.i] = dc.c
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for data stream %d: %w", i, ctx.Err())
		}
	}
}

func (r *acceptRendezvous) Exchange(ctx context.Context, blob []byte) ([]byte, error) {
	return r.exch.Exchange(ctx, blob)
}

func (r *acceptRendezvous) closeAll() {
	for _, c := range r.got {
		c.Close()
	}
	for {
		select {
		case dc := <-r.ps.conns:
			dc.c.Close()
		default:
			return
		}
	}
}

// Tickets are the tickets this server issued for third-party sessions.
func (srv *Server) Tickets() *Tickets { return &srv.tickets }

// Shared returns o with the server's receive memory shared by the session
// it dials (a job pushing to another server), and control, when set,
// vetting every address it connects to.
func (srv *Server) Shared(o DialOptions, control func(network, address string, c syscall.RawConn) error) DialOptions {
	o.pool, o.poolLimit = srv.mem, srv.cfg.MaxSessionMemory
	o.allow = control
	return o
}
