package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/bench"
	"github.com/xfer-io/xfer/transfer/casnet"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// ServerConfig configures `xfer serve`.
type ServerConfig struct {
	// Root is the single tree served, or nil when Exports are used.
	Root *fsroot.Root
	// Exports are named trees (rsync-style modules); the first component
	// of every path a client names selects one.
	Exports map[string]Export
	Protos  []string // transports offered; empty: every usable one
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
	// MaxOpenFiles bounds the large files one session holds open.
	MaxOpenFiles     int
	MaxFrame         int   // control frame limit in bytes (default 8 MiB)
	MaxSessionMemory int64 // receive buffers per session (default 256 MiB)
	// MaxMemory bounds the receive buffers of all sessions together
	// (default 1 GiB); a message waits for room rather than allocate.
	MaxMemory int64
	// Metrics, when set, counts sessions, bytes, files and failures.
	Metrics *metrics.Metrics
	// CAS is the content-addressed store exposed to peers (--cas), or nil.
	CAS *cas.Store
	// CASReadOnly refuses puts and removes.
	CASReadOnly bool
	NoFsync     bool
	ReadOnly    bool // with Root: refuse every write
	// Umask holds the permission bits taken from the mode of every file
	// and directory a peer creates or changes (0: none; `xfer serve`
	// passes its process umask, or --umask).
	Umask uint32
	// AllowSetid, with Root, keeps the set-uid, set-gid and sticky bits
	// of what peers upload; by default they are dropped.
	AllowSetid  bool
	MaxStreams  int
	IdleTimeout time.Duration
	Log         *slog.Logger
	Version     string
	// DialOptions are used when a job makes this server push to another.
	Dial session.DialOptions
	// PushAllow restricts the servers third-party jobs push to
	// (--push-allow); nil allows any that accepts the job's ticket.
	PushAllow *PushPolicy
}

// Server is `xfer serve`: a session server whose sessions serve a tree
// (or named exports), jobs, tickets, the store and the benchmark.
type Server struct {
	cfg ServerConfig
	srv *session.Server
}

// NewServer creates a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxOpenFiles <= 0 {
		cfg.MaxOpenFiles = session.DefaultMaxOpenFiles
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	srv := &Server{cfg: cfg}
	srv.srv = session.NewServer(session.ServerConfig{
		Protos: cfg.Protos, Token: cfg.Token, TLS: cfg.TLS, AllowPlainData: cfg.AllowPlainData,
		MaxSessions: cfg.MaxSessions, MaxSessionsPerClient: cfg.MaxSessionsPerClient,
		MaxHandshakes: cfg.MaxHandshakes, MaxHandshakesPerClient: cfg.MaxHandshakesPerClient,
		HandshakeTimeout: cfg.HandshakeTimeout, MaxFrame: cfg.MaxFrame,
		MaxSessionMemory: cfg.MaxSessionMemory, MaxMemory: cfg.MaxMemory, Metrics: cfg.Metrics,
		MaxStreams: cfg.MaxStreams, IdleTimeout: cfg.IdleTimeout, Log: cfg.Log, Version: cfg.Version,
		UringEntries: cfg.Dial.UringEntries, Services: srv.services,
	})
	return srv
}

// Serve accepts connections on ln until ctx is done.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error { return srv.srv.Serve(ctx, ln) }

// services registers on s what this server offers a session admitted
// with g: the served tree, and unless g is a ticket, jobs, tickets and the
// store.
func (srv *Server) services(s *session.Session, g session.Grant) error {
	name := s.Transport()
	var hd *handler
	if srv.cfg.Exports != nil {
		hd = newExportsHandler(srv.cfg.Exports, srv.cfg.NoFsync)
		hd.served, hd.umask = true, srv.cfg.Umask
		if g.Export != "" {
			if err := hd.bindTo(g.Export); err != nil {
				return err
			}
		}
	} else {
		hd = newHandler(srv.cfg.Root, srv.cfg.NoFsync, srv.cfg.ReadOnly)
		hd.served, hd.umask = true, srv.cfg.Umask
		hd.recv.peer = &peerPolicy{umask: srv.cfg.Umask, setid: srv.cfg.AllowSetid}
	}
	hd.m, hd.transport, hd.maxOpen = srv.cfg.Metrics, name, srv.cfg.MaxOpenFiles
	if hd.recv != nil {
		hd.recv.m, hd.recv.transport, hd.recv.maxOpen = srv.cfg.Metrics, name, srv.cfg.MaxOpenFiles
	}
	var store *cas.Store
	if g.Ticket {
		// A ticket admits one delivery into one directory: no jobs, no
		// further tickets, no store.
		hd.confine(g.Within)
	} else {
		hd.jobs = srv.runJob
		hd.tickets = srv.srv.Tickets()
		store = srv.cfg.CAS
	}
	hd.register(s)
	casnet.Serve(s, store, srv.cfg.CASReadOnly)
	bench.Serve(s, hd)
	return nil
}

// runJob runs a transfer from this server's tree on a client's request:
// back to the client (a pull) or to another server (third party).
func (srv *Server) runJob(ctx context.Context, s *session.Session, root *fsroot.Root, srcPath string, spec wire.JobSpec, sink progress.Sink) (progress.Summary, error) {
	tally := progress.NewTally()
	dstPath, err := cleanPath(spec.DstPath)
	if err != nil {
		return tally.Summary(), err
	}
	var dst destination
	if spec.DstAddr == "" {
		dst = &remoteDest{s: s}
		tally.SetProto(s.Transport(), s.TransportReason())
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
		o.NoVerify = spec.Options.Verify == "none"
		// The destination must have authorized this job: only a ticket it
		// issued to the client speaks for the client there, and nothing
		// is pushed anywhere without one.
		if spec.DstTicket == nil {
			return tally.Summary(), exitcode.Usagef("job: pushing to %s needs a ticket issued by that server; refusing to push without one", spec.DstAddr)
		}
		tk, err := s.OpenTicket(spec.DstTicket)
		if err != nil {
			return tally.Summary(), exitcode.Usagef("job: %v", err)
		}
		o.Ticket = &tk
		o.Token = nil // only the client's ticket speaks for it
		control, err := srv.cfg.PushAllow.vet(spec.DstAddr)
		if err != nil {
			return tally.Summary(), exitcode.Usagef("job: cannot push to %s: %v", spec.DstAddr, err)
		}
		o = srv.srv.Shared(o, control)
		if spec.DstTLS != nil {
			tc, err := session.TLSConfig(spec.DstTLS)
			if err != nil {
				return tally.Summary(), exitcode.Usagef("job: %v", err)
			}
			o.TLS, o.TLSData = tc, spec.DstTLS.Data
		}
		ds, err := session.Dial(ctx, spec.DstAddr, o)
		if err != nil {
			if errors.Is(err, errPushRefused) {
				return tally.Summary(), exitcode.Usagef("job: cannot push to %s: %v", spec.DstAddr, errPushRefused)
			}
			// One message for every way this can fail, so that jobs
			// cannot map which ports of the server's network are open or
			// what listens there; the log has the real reason.
			srv.cfg.Log.Warn("third-party job: cannot open a session to the destination", "peer", s.Peer(), "dst", spec.DstAddr, "err", err)
			return tally.Summary(), exitcode.Peerf("cannot open a session to %s for this job: it is unreachable from the source server, is not an xfer server, or did not accept the ticket (the source server's log says which)", spec.DstAddr)
		}
		defer ds.Close()
		dst = &remoteDest{s: ds}
		tally.SetProto(ds.Transport(), ds.TransportReason())
	}
	// Count what this server sends for the job.
	counted := progress.SinkFunc(func(e progress.Event) {
		switch {
		case e.DryRun:
		case e.Event == progress.KindTransfer:
			srv.cfg.Metrics.AddFiles(tally.Summary().Proto, metrics.Sent, 1)
		case e.Event == progress.KindNotice:
			if e.Retry {
				srv.cfg.Metrics.ChunkRetry()
			}
		}
		sink.Emit(e)
	})
	err = runEngine(ctx, root, srcPath, dst, dstPath, spec.Options, counted, tally)
	srv.cfg.Metrics.AddBytes(tally.Summary().Proto, metrics.Sent, tally.Summary().BytesSent)
	return tally.Summary(), err
}
