package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/sshconn"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/progress"
)

// Endpoint is one side of a transfer: a local path, or a path beneath the
// export root of the xfer server at Addr.
type Endpoint struct {
	Addr string // host:port; empty for a local path
	Path string // local path, or slash path beneath the server root
	Auth PeerAuth
	// Agents lists every agent of a cluster remote (Addr is the first):
	// servers that show the same tree, over which a transfer is spread.
	// Empty or one: a single server.
	Agents []string
	// Members, when set, reports agents of the cluster that leave or
	// join during the run (a cluster kept in etcd): the transfer is a
	// cluster transfer even with one agent, and stops giving work to those
	// that leave and gives work to those that join.
	Members Membership
	// Job, when set, records a cluster transfer with this endpoint's
	// cluster (the destination's if both have one; see cluster.Job).
	Job Job
	// SSH, when set, makes this an ssh:// endpoint (Addr is empty): its
	// far side is started through ssh for each session.
	SSH *SSH
}

// PeerAuth is how to prove who we are to a server and check who it is.
type PeerAuth struct {
	Token   []byte      // shared token (--token-file)
	TLS     *tls.Config // nil: plain TCP
	CAPEM   string      // the CA in TLS.RootCAs, to hand to a third party
	TLSData bool        // data streams inside TLS too
}

func (a PeerAuth) apply(o session.DialOptions) session.DialOptions {
	o.Token, o.TLS, o.TLSData = a.Token, a.TLS, a.TLSData
	return o
}

// IsRemote reports whether the endpoint is a served peer.
func (e Endpoint) IsRemote() bool { return e.Addr != "" || e.SSH != nil }

func (e Endpoint) String() string {
	if e.SSH != nil {
		return e.SSH.Target.String() + "/" + strings.TrimPrefix(path.Join(e.SSH.Options.Root, e.Path), "/")
	}
	if e.Addr == "" {
		return e.Path
	}
	return "xfer://" + e.Addr + "/" + e.Path
}

// Run copies or syncs src into dst in whichever direction the endpoints
// call for: local to local, local to remote (push), remote to local (the
// server pushes back over the client's session) and remote to remote (the
// source server pushes straight to the destination server; the data never
// passes through this process). Events go to sink; the summary is
// returned even on error. Per-file failures make the error an
// exitcode.Partial one.
func Run(ctx context.Context, src, dst Endpoint, opt wire.Options, dial session.DialOptions, sink progress.Sink) (progress.Summary, error) {
	if err := opt.Validate(); err != nil {
		return progress.Summary{Event: progress.KindSummary}, err
	}
	opt = opt.WithDefaults()
	dial.Proto, dial.Streams = opt.Proto, opt.Streams
	dial.ConnectTimeout, dial.IdleTimeout, dial.UringEntries = opt.ConnectTO, opt.IdleTO, opt.UringEntry
	dial.NoVerify = opt.Verify == "none"
	// A lost connection is retried with backoff; each attempt plans
	// afresh, so finished files are skipped and partial ones resume.
	var (
		sum  progress.Summary
		err  error
		prev progress.Summary
	)
	if opt.MaxTransfer > 0 && (len(src.Agents) > 1 || len(dst.Agents) > 1) {
		return sum, exitcode.Usagef("--max-transfer is not supported on cluster transfers (each agent pair would count its own)")
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		tally := progress.NewTally()
		if len(src.Agents) > 1 || len(dst.Agents) > 1 || src.Members != nil || dst.Members != nil {
			err = runCluster(ctx, src, dst, opt, dial, sink, tally)
		} else {
			err = run(ctx, src, dst, opt, dial, sink, tally)
		}
		sum = tally.Summary()
		sum.FilesTransferred += prev.FilesTransferred
		sum.BytesTransferred += prev.BytesTransferred
		sum.BytesSent += prev.BytesSent
		sum.FilesDeleted += prev.FilesDeleted
		sum.DirsCreated += prev.DirsCreated
		if sum.FilesSkipped -= prev.FilesTransferred; sum.FilesSkipped < 0 {
			sum.FilesSkipped = 0
		}
		var (
			lost *session.LostError
			busy *session.BusyError
		)
		retriable := errors.As(err, &lost) || errors.As(err, &busy) || (attempt > 0 && exitcode.Code(err) == exitcode.Peer)
		if err == nil || !retriable || attempt >= opt.Retries || ctx.Err() != nil {
			break
		}
		wait := time.Second << attempt
		if wait > 30*time.Second {
			wait = 30 * time.Second
		}
		if busy != nil && busy.RetryAfter > wait {
			wait = busy.RetryAfter
		}
		sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("%v; retrying in %s (attempt %d of %d)", err, wait, attempt+2, opt.Retries+1)})
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		prev = sum
		prev.FilesSkipped = 0
		if opt.MaxTransfer > 0 {
			// What the lost attempt sent counts against --max-transfer:
			// the rerun gets what is left of it.
			opt.MaxTransfer = max(1, opt.MaxTransfer-sum.BytesSent)
		}
	}
	sum.DurationS = time.Since(start).Seconds()
	if sum.Proto == "" && !src.IsRemote() && !dst.IsRemote() {
		sum.Proto = "local"
	}
	if err == nil && sum.Errors > 0 {
		err = &PartialError{Failed: sum.Errors}
	}
	return sum, err
}

// PartialError reports a run that finished with some files failed; each
// failure was already reported as an event.
type PartialError struct{ Failed int64 }

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d of the files could not be transferred", e.Failed)
}

func run(ctx context.Context, src, dst Endpoint, opt wire.Options, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	switch {
	case !src.IsRemote():
		if !dst.IsRemote() {
			if err := checkLocalOverlap(src, dst, opt.DstName); err != nil {
				return err
			}
		}
		root, path, err := openLocalSource(src.Path)
		if err != nil {
			return err
		}
		defer root.Close()
		if dst.IsRemote() {
			s, err := dialData(ctx, dst, dial, opt, tally)
			if err != nil {
				return err
			}
			defer s.Close()
			return send.Run(ctx, root, path, send.NewRemote(s, opt.Checkers), dst.Path, opt, sink, tally)
		}
		h, err := openLocalDest(dst.Path, opt)
		if err != nil {
			return err
		}
		defer h.Close()
		tally.SetProto("local", "")
		return send.Run(ctx, root, path, send.NewLocal(h, dst.Path, opt.Streams, opt.Checkers), "", opt, sink, tally)
	case !dst.IsRemote():
		h, err := openLocalDest(dst.Path, opt)
		if err != nil {
			return err
		}
		defer h.Close()
		dial.Services = h.Register
		if opt.Xattrs || opt.ACLs {
			dial.Xattrs = xattrSupport(dst.Path)
		}
		return remoteJob(ctx, src, wire.JobSpec{SrcPath: src.Path, Options: opt}, nil, dial, sink, tally)
	default:
		spec := wire.JobSpec{SrcPath: src.Path, DstPath: dst.Path, DstAddr: dst.Addr, Options: opt}
		// The destination issues a ticket to us for this destination
		// directory, which the source server presents in our stead: our
		// token never leaves this process, and the ticket's secret crosses
		// each connection sealed for its session.
		ds, dfar, err := dialPeer(ctx, dst, dial)
		if err != nil {
			return err
		}
		if dfar != nil {
			// The far side lives as long as this session: keep it until
			// the source has delivered, to its listener.
			defer ds.Close()
			if spec.DstAddr = dfar.DataAddr(); spec.DstAddr == "" {
				return exitcode.Usagef("%s: a host-to-host copy needs the destination's network listener, which --ssh-data=inline does not open; use --ssh-data=auto, or copy through this machine", dst)
			}
		}
		if src.SSH != nil || dst.SSH != nil {
			// The source pushes to the destination's listener itself.
			tally.SetSSHData(sshconn.DataDirect)
		}
		if sameTree(src, dst) {
			if err := checkPeerOverlap(ctx, src, dst, opt.DstName, ds); err != nil {
				ds.Close()
				return err
			}
		}
		// A destination that is a symlink to a directory is followed,
		// as in every direction: the ticket is for the directory itself.
		if rp, err := plan.FollowLinks(ctx, dst.Path, send.NewRemote(ds, 0).Stat); err == nil {
			spec.DstPath = rp
		}
		resp, err := ds.Call(ctx, &wire.Req{Op: wire.OpTicket, Path: spec.DstPath})
		var tk session.Ticket
		if err == nil {
			if resp.Ticket == nil {
				err = exitcode.Peerf("%s answered the ticket request without a ticket", ds.Peer())
			} else {
				tk, err = ds.OpenTicket(resp.Ticket)
			}
		}
		if dfar == nil {
			ds.Close()
		}
		if err != nil {
			return fmt.Errorf("asking %s for a ticket: %w", ds.Peer(), err)
		}
		if dst.Auth.TLS != nil {
			spec.DstTLS = &wire.TLSSpec{CAPEM: dst.Auth.CAPEM, ServerName: dst.Auth.TLS.ServerName, Data: dst.Auth.TLSData}
		}
		return remoteJob(ctx, src, spec, &tk, dial, sink, tally)
	}
}

// remoteJob asks the source peer to run the transfer and relays its
// events. tk, for a third-party job, is the destination's ticket, sealed
// here for the session to the source.
func remoteJob(ctx context.Context, src Endpoint, spec wire.JobSpec, tk *session.Ticket, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	// The data of a pull crosses this session; a third-party job's goes
	// from the source to the destination, and this session only steers.
	var (
		s   *session.Session
		err error
	)
	if spec.DstAddr == "" {
		s, err = dialData(ctx, src, dial, spec.Options, tally)
	} else {
		s, _, err = dialPeer(ctx, src, dial)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	if tk != nil {
		if spec.DstTicket, err = s.SealTicket(*tk); err != nil {
			return err
		}
	}
	var mkdirs atomic.Int64 // directories the events announced
	events := progress.SinkFunc(func(e progress.Event) {
		if e.Event == progress.KindProgress {
			sink.Emit(e)
			return
		}
		if e.Event == progress.KindMkdir {
			mkdirs.Add(1)
		}
		tally.Record(e)
		sink.Emit(e)
	})
	resp, err := s.CallEvents(ctx, &wire.Req{Op: wire.OpJob, Job: &spec}, events)
	if resp != nil && resp.Summary != nil {
		// Counters came with the events already; take what only the
		// summary knows.
		sum := *resp.Summary
		if spec.DstAddr != "" {
			tally.SetProto(sum.Proto, sum.ProtoReason)
			tally.SetProtoChoice(sum.ProtoChoice)
		}
		if sum.DryRun {
			tally.SetDryRun()
		}
		tally.AddPlanned(0, sum.PlannedBytes)
		tally.AddSent(sum.BytesSent)
		// Unchanged files are counted, not announced one by one; so are
		// the directories a share's destination made for its files.
		tally.Merge(progress.Summary{FilesSkipped: sum.FilesSkipped, Agents: sum.Agents,
			DirsCreated: max(sum.DirsCreated-mkdirs.Load(), 0), DirsRead: sum.DirsRead})
	}
	return err
}

// openLocalSource opens the tree (or the directory holding the single
// file) that src names.
func openLocalSource(src string) (*fsroot.Root, string, error) {
	info, err := os.Lstat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", exitcode.Usagef("source %s does not exist", src)
		}
		return nil, "", exitcode.Usagef("source %s: %v", src, fsroot.Reason(err))
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		// A symlink to a directory given as the source is followed (only
		// this one: links inside the tree stay links), as rclone does.
		if t, err := os.Stat(src); err == nil && t.IsDir() {
			info = t
		}
	}
	dir, path := src, ""
	if !info.IsDir() {
		dir, path = filepath.Dir(src), filepath.Base(src)
	}
	r, err := fsroot.Open(dir)
	if err != nil {
		return nil, "", exitcode.Usagef("source %s: %v", src, fsroot.Reason(err))
	}
	return r, path, nil
}

// openLocalDest opens the local destination directory dst (a symlink to
// a directory is followed, as rsync and rclone do). One that does not
// exist yet is created by the run's first write (newPendingHandler), so
// that a run failing before it (missing source, unreachable peer) and a
// dry run leave nothing behind.
func openLocalDest(dst string, opt wire.Options) (*receive.Handler, error) {
	info, err := os.Stat(dst)
	switch {
	case err == nil && !info.IsDir():
		return nil, exitcode.Usagef("destination %s is not a directory", dst)
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(dst); lerr == nil {
			return nil, exitcode.Usagef("destination %s is a symlink to nothing", dst)
		}
		create := func() (*fsroot.Root, error) {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
					return nil, exitcode.Usagef("destination %s is not a directory", dst)
				}
				return nil, fmt.Errorf("create destination %s: %w", dst, fsroot.Reason(err))
			}
			r, err := fsroot.Open(dst)
			if err != nil {
				return nil, fmt.Errorf("destination %s: %w", dst, fsroot.Reason(err))
			}
			return r, nil
		}
		return receive.NewPendingHandler(create, receive.Options{NoFsync: opt.NoFsync, ReadOnly: opt.DryRun}), nil
	case err != nil:
		return nil, fmt.Errorf("destination %s: %w", dst, fsroot.Reason(err))
	}
	r, err := fsroot.Open(dst)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dst, fsroot.Reason(err))
	}
	return receive.NewHandler(r, receive.Options{NoFsync: opt.NoFsync, ReadOnly: opt.DryRun}), nil
}
