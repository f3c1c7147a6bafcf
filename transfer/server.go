package transfer

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/fsroot"
	"github.com/xfer-io/xfer/progress"
)

// ServerConfig configures `xfer serve`.
type ServerConfig struct {
	Root        *fsroot.Root
	Protos      []string // transports offered; empty: every usable one
	NoFsync     bool
	ReadOnly    bool
	MaxStreams  int
	IdleTimeout time.Duration
	Log         *slog.Logger
	Version     string
	// DialOptions are used when a job makes this server push to another.
	Dial DialOptions
}

// Server accepts sessions and serves an export root.
type Server struct {
	cfg    ServerConfig
	mu     sync.Mutex
	joins  map[string]*pendingSession // sessions still setting up their data streams
	active sync.WaitGroup
}

type pendingSession struct {
	key   []byte
	conns chan dataConn
}

type dataConn struct {
	i int
	c net.Conn
}

// NewServer creates a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 64
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, joins: map[string]*pendingSession{}}
}

// Serve accepts connections on ln until ctx is done.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				srv.active.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		srv.active.Add(1)
		go func() {
			defer srv.active.Done()
			srv.handleConn(ctx, c)
		}()
	}
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
	c.SetDeadline(time.Now().Add(DefaultConnectTimeout))
	typ, p, err := readFrameExact(c, 64<<10)
	if err != nil || typ != fHello {
		srv.cfg.Log.Warn("rejected connection: not an xfer handshake", "peer", peer)
		c.Close()
		return
	}
	var h Hello
	if err := json.Unmarshal(p, &h); err != nil || h.Proto != "xfer" {
		srv.cfg.Log.Warn("rejected connection: malformed handshake", "peer", peer)
		c.Close()
		return
	}
	if h.Version != ProtocolVersion {
		writeJSONFrame(c, fWelcome, Welcome{Version: ProtocolVersion,
			Error: fmt.Sprintf("protocol version %d not supported (server speaks %d)", h.Version, ProtocolVersion)})
		c.Close()
		return
	}
	switch h.Role {
	case "data":
		srv.joinData(c, h)
	case "control":
		srv.session(ctx, c, h)
	default:
		writeJSONFrame(c, fWelcome, Welcome{Version: ProtocolVersion, Error: "unknown connection role"})
		c.Close()
	}
}

func (srv *Server) joinData(c net.Conn, h Hello) {
	srv.mu.Lock()
	ps := srv.joins[h.Session]
	srv.mu.Unlock()
	if ps == nil || !hmac.Equal([]byte(h.Proof), []byte(sessionProof(ps.key, h.Session, h.Stream))) {
		writeJSONFrame(c, fWelcome, Welcome{Version: ProtocolVersion, Error: "unknown session or bad proof"})
		c.Close()
		return
	}
	if err := writeJSONFrame(c, fWelcome, Welcome{Version: ProtocolVersion}); err != nil {
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
	mine, why := usableTransports()
	if len(srv.cfg.Protos) == 0 {
		return mine, why
	}
	var out []string
	for _, n := range mine {
		if contains(srv.cfg.Protos, n) {
			out = append(out, n)
		}
	}
	for _, n := range []string{"rdma", "uring", "tcp-zc", "tcp"} {
		if !contains(srv.cfg.Protos, n) {
			why[n] = "disabled on the server (--protos)"
		}
	}
	return out, why
}

func (srv *Server) session(ctx context.Context, c net.Conn, h Hello) {
	peer := c.RemoteAddr().String()
	mine, why := srv.offered()
	name, err := backends.Negotiate(h.Want, mine, h.Transports)
	if err != nil {
		msg := err.Error()
		if h.Want != "" && h.Want != "auto" {
			if r, ok := why[h.Want]; ok {
				msg = fmt.Sprintf("server cannot use transport %s: %s", h.Want, r)
			} else if !contains(mine, h.Want) {
				msg = fmt.Sprintf("server does not offer transport %s (it offers %v)", h.Want, mine)
			}
		}
		writeJSONFrame(c, fWelcome, Welcome{Version: ProtocolVersion, Error: msg})
		c.Close()
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
	idb := make([]byte, 16)
	key := make([]byte, 32)
	rand.Read(idb)
	rand.Read(key)
	id := hex.EncodeToString(idb)
	ps := &pendingSession{key: key, conns: make(chan dataConn, streams)}
	srv.mu.Lock()
	srv.joins[id] = ps
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.joins, id)
		srv.mu.Unlock()
	}()
	fr := newFrameReader(c, DefaultMaxFrame)
	s := newSession(c, fr, srv.cfg.Log, srv.cfg.IdleTimeout)
	s.id, s.key, s.transport, s.reason = id, key, name, reason
	w := Welcome{Version: ProtocolVersion, Server: srv.cfg.Version, Session: id, Key: hex.EncodeToString(key),
		Transport: name, TransportReason: reason, Streams: streams}
	if err := writeJSONFrame(c, fWelcome, w); err != nil {
		c.Close()
		return
	}
	t, _ := backends.Lookup(name)
	rv := &acceptRendezvous{ps: ps, exch: controlExchange{s}, got: map[int]net.Conn{}}
	setupCtx, cancel := context.WithTimeout(ctx, DefaultConnectTimeout)
	err = s.openTransport(setupCtx, t, rv, backends.Params{Streams: streams, Dialer: false, UringEntries: srv.cfg.Dial.UringEntries})
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
	hd := newHandler(srv.cfg.Root, srv.cfg.NoFsync, srv.cfg.ReadOnly)
	hd.jobs = srv.runJob
	s.handler = hd
	srv.cfg.Log.Info("session started", "peer", peer, "transport", name, "streams", streams)
	s.start()
	select {
	case <-s.Done():
	case <-ctx.Done():
		s.Close()
		<-s.Done()
	}
	srv.cfg.Log.Info("session ended", "peer", peer, "reason", s.Err())
}

// runJob runs a transfer from this server's tree on a client's request:
// back to the client (a pull) or to another server (third party).
func (srv *Server) runJob(ctx context.Context, s *Session, spec JobSpec, sink progress.Sink) (progress.Summary, error) {
	tally := progress.NewTally()
	srcPath, err := cleanPath(spec.SrcPath)
	if err != nil {
		return tally.Summary(), err
	}
	dstPath, err := cleanPath(spec.DstPath)
	if err != nil {
		return tally.Summary(), err
	}
	var dst destination
	if spec.DstAddr == "" {
		dst = &remoteDest{s: s}
		tally.SetProto(s.transport, s.reason)
	} else {
		o := srv.cfg.Dial
		o.Proto = spec.Options.Proto
		o.Streams = spec.Options.Streams
		if spec.Options.ConnectTO > 0 {
			o.ConnectTimeout = spec.Options.ConnectTO
		}
		if spec.Options.IdleTO > 0 {
			o.IdleTimeout = spec.Options.IdleTO
		}
		ds, err := Dial(ctx, spec.DstAddr, o)
		if err != nil {
			return tally.Summary(), err
		}
		defer ds.Close()
		dst = &remoteDest{s: ds}
		tally.SetProto(ds.transport, ds.reason)
	}
	err = runEngine(ctx, srv.cfg.Root, srcPath, dst, dstPath, spec.Options, sink, tally)
	return tally.Summary(), err
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
