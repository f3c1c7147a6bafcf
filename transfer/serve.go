package transfer

import (
	"context"
	"errors"
	"net"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/defaults"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/bench"
	"github.com/xfer-io/xfer/transfer/casnet"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// ServerConfig configures `xfer serve`: how sessions are admitted (the
// embedded session.ServerConfig, whose Services and UringEntries NewServer
// sets) and what a session may then do.
type ServerConfig struct {
	session.ServerConfig
	// Root is the single tree served, or nil when Exports are used.
	Root *fsroot.Root
	// Exports are named trees (rsync-style modules); the first component
	// of every path a client names selects one.
	Exports map[string]Export
	// MaxOpenFiles bounds the large files one session holds open.
	MaxOpenFiles int
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
	AllowSetid bool
	// AllowOwners lets clients set the owners and groups of what they
	// upload (with root privilege); AllowDevices lets them create device
	// files.
	AllowOwners  bool
	AllowDevices bool
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
	// tempFiles is the budget of unnamed temporary files that the
	// sessions' receivers share.
	tempFiles *receive.FDBudget
}

// NewServer creates a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxOpenFiles <= 0 {
		cfg.MaxOpenFiles = session.DefaultMaxOpenFiles
	}
	defaults.Log(&cfg.Log)
	if cfg.Dial.Bandwidth == nil {
		// Third-party jobs count in the agent's cap as well.
		cfg.Dial.Bandwidth = cfg.Bandwidth
	}
	srv := &Server{cfg: cfg, tempFiles: receive.NewFDBudget()}
	sc := cfg.ServerConfig
	sc.UringEntries, sc.Services = cfg.Dial.UringEntries, srv.services
	if sc.Xattrs == nil && cfg.Root != nil {
		sc.Xattrs = xattrSupport(cfg.Root.Path())
	}
	srv.srv = session.NewServer(sc)
	return srv
}

// Serve accepts connections on ln until ctx is done.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error { return srv.srv.Serve(ctx, ln) }

// services registers on s what this server offers a session admitted
// with g: the served tree, and unless g is a ticket, jobs, tickets and the
// store.
func (srv *Server) services(s *session.Session, g session.Grant) error {
	o := receive.Options{NoFsync: srv.cfg.NoFsync, ReadOnly: srv.cfg.ReadOnly, Served: true,
		Umask: srv.cfg.Umask, AllowSetid: srv.cfg.AllowSetid,
		AllowOwners: srv.cfg.AllowOwners, AllowDevices: srv.cfg.AllowDevices,
		Metrics: srv.cfg.Metrics, Transport: s.Transport(), MaxOpen: srv.cfg.MaxOpenFiles,
		TempFiles: srv.tempFiles}
	var hd *receive.Handler
	if srv.cfg.Exports != nil {
		hd = receive.NewExportsHandler(srv.cfg.Exports, o)
		if g.Export != "" {
			if err := hd.BindTo(g.Export); err != nil {
				return err
			}
		}
	} else {
		hd = receive.NewHandler(srv.cfg.Root, o)
	}
	var store *cas.Store
	if g.Ticket {
		// A ticket admits one delivery into one directory: no jobs, no
		// further tickets, no store.
		hd.Confine(g.Within)
	} else {
		hd.Offer(srv.runJob, srv.srv.Tickets())
		store = srv.cfg.CAS
	}
	hd.Register(s)
	if !g.Ticket {
		hd.RegisterReads(s)
	}
	casnet.Serve(s, store, srv.cfg.CASReadOnly)
	bench.Serve(s, hd)
	return nil
}

// runJob runs a transfer from this server's tree on a client's request:
// back to the client (a pull) or to another server (third party).
func (srv *Server) runJob(ctx context.Context, s *session.Session, root *fsroot.Root, srcPath string, spec wire.JobSpec, sink progress.Sink) (progress.Summary, error) {
	tally := progress.NewTally()
	dstPath, err := receive.CleanPath(spec.DstPath)
	if err != nil {
		return tally.Summary(), err
	}
	var dst send.Destination
	if spec.DstAddr == "" {
		dst = send.NewRemote(s, spec.Options.Checkers)
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
		dst = send.NewRemote(ds, spec.Options.Checkers)
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
	err = send.Run(ctx, root, srcPath, dst, dstPath, spec.Options, counted, tally)
	srv.cfg.Metrics.AddBytes(tally.Summary().Proto, metrics.Sent, tally.Summary().BytesSent)
	srv.cfg.Metrics.DirsRead(tally.Summary().DirsRead)
	return tally.Summary(), err
}
