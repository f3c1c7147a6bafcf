package receive

import (
	"context"
	"os"
	"path"
	"time"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"

	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
)

// Options are what a Handler is made with.
type Options struct {
	// NoFsync skips the flushes before renames (tests, scratch trees).
	NoFsync bool
	// ReadOnly refuses writes to a single tree (exports carry their own).
	ReadOnly bool
	// Served is set when the peer is a client of `xfer serve`: uploads
	// get their modes narrowed by Umask and lose their set-id bits unless
	// AllowSetid (a single tree; exports carry their own), and hard links
	// are never written through (see peerPolicy).
	Served     bool
	Umask      uint32
	AllowSetid bool
	// AllowOwners lets a peer (Served) set the owners and groups of what
	// it uploads (with root privilege), AllowDevices create device files.
	AllowOwners  bool
	AllowDevices bool
	// Metrics counts what arrives, labelled with Transport.
	Metrics   *metrics.Metrics
	Transport string
	// MaxOpen bounds the large files the session's receiver holds open
	// (0: no bound).
	MaxOpen int
	// TempFiles is the budget of unnamed temporary files shared by every
	// session of a server (nil: a budget of the handler's own).
	TempFiles *FDBudget
}

// JobFunc runs a transfer from root's srcRel that the peer of s asked
// for, reporting to sink.
type JobFunc func(ctx context.Context, s *session.Session, root *fsroot.Root, srcRel string, spec wire.JobSpec, sink progress.Sink) (progress.Summary, error)

// Handler serves a peer's requests against one tree: the export of `xfer
// serve`, or the destination directory of a client receiving a pull.
type Handler struct {
	// exports, when set, are the named trees of a server started with
	// --export; a session binds to one of them with the first path it
	// names. Without exports the handler serves root alone.
	exports map[string]Export
	opt     Options

	bmu    sync.Mutex
	bound  bool
	prefix string
	root   *fsroot.Root
	recv   *Receiver
	// within, for the session of a ticket, is the destination directory
	// (beneath the root) the ticket admits; every path must lie in it.
	within string
	// create, when set, makes the local destination directory that does
	// not exist yet: root and recv stay nil (an empty tree that takes no
	// writes) until the run's first mkdirs, so that a run failing before
	// (missing source, unreachable peer) or a dry run creates nothing.
	create func() (*fsroot.Root, error)

	// jobs runs transfers the peer asks for; nil refuses them.
	jobs JobFunc
	// tickets issues tickets for third-party sessions; nil refuses.
	tickets *session.Tickets

	mu    sync.Mutex
	locks []*os.File // destination run locks held by this session
}

// Export is a named tree a server offers, in the manner of rsync modules.
type Export struct {
	Root     *fsroot.Root
	ReadOnly bool
	// AllowSetid keeps the set-uid, set-gid and sticky bits of what peers
	// upload (by default they are dropped).
	AllowSetid bool
}

// NewHandler serves the tree root.
func NewHandler(root *fsroot.Root, o Options) *Handler {
	return &Handler{root: root, recv: newReceiver(root, o, o.ReadOnly, o.AllowSetid, ""), bound: true, opt: o}
}

// newPendingHandler is a handler for a local destination directory that
// create makes on the first mkdirs.
func NewPendingHandler(create func() (*fsroot.Root, error), o Options) *Handler {
	return &Handler{create: create, bound: true, opt: o}
}

// tree is the root the handler serves; nil while a pending destination
// has not been created (or before an export is bound).
func (h *Handler) Tree() *fsroot.Root {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	return h.root
}

// lstat is root.Lstat, with a pending destination an empty tree.
func (h *Handler) Lstat(p string) (fsroot.Info, error) {
	root := h.Tree()
	if root == nil {
		return fsroot.Info{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return root.Lstat(p)
}

// createRoot creates a pending destination (create) and binds its
// receiver; a no-op for any other handler.
func (h *Handler) createRoot() error {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.root != nil || h.create == nil {
		return nil
	}
	r, err := h.create()
	if err != nil {
		return err
	}
	h.root, h.recv = r, newReceiver(r, h.opt, h.opt.ReadOnly, h.opt.AllowSetid, "")
	return nil
}

// mkroot creates the destination directory p (named name in messages) of
// a run, and takes its run lock if lock is set.
func (h *Handler) Mkroot(p, name string, lock bool) error {
	if err := h.createRoot(); err != nil {
		return err
	}
	root, rc := h.Tree(), h.Receiver()
	if root == nil || rc == nil {
		return exitcode.Usagef("no destination chosen yet in this session")
	}
	if rc.readOnly {
		return wire.ErrReadOnly
	}
	// A destination that is a symlink to a directory is followed (within
	// the root), here too: the lock of a third-party or cluster run is
	// taken on the directory the engine then writes into.
	if rp, err := plan.FollowLinks(context.Background(), p, plan.RootStat(root)); err == nil {
		p = rp
	}
	if err := root.MkdirAll(p, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
			return exitcode.Usagef("destination %s is not a directory", name)
		}
		return fmt.Errorf("create destination %s: %w", name, fsroot.Reason(err))
	}
	if lock {
		return h.lock(p, name)
	}
	return nil
}

// close releases the handler's locks and its root.
func (h *Handler) Close() {
	if r := h.Receiver(); r != nil {
		r.restoreWritable() // a run that ended before finish
	}
	h.unlock()
	if root := h.Tree(); root != nil {
		root.Close()
	}
}

// NewExportsHandler serves the named trees exports; a session binds to
// one of them with the first path it names (o.ReadOnly and o.AllowSetid
// are the exports' own).
func NewExportsHandler(exports map[string]Export, o Options) *Handler {
	return &Handler{exports: exports, opt: o}
}

// Offer lets the peer ask for jobs (run by jobs) and tickets (issued by
// tickets); without it both are refused.
func (h *Handler) Offer(jobs JobFunc, tickets *session.Tickets) {
	h.jobs, h.tickets = jobs, tickets
}

// BindTo binds the handler to a named export (a ticket's scope).
func (h *Handler) BindTo(name string) error {
	_, err := h.resolve(name)
	return err
}

// confine restricts every path of the session to dir (beneath the bound
// root) and its contents: the destination a ticket was issued for.
func (h *Handler) Confine(dir string) {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	h.within = dir
	if h.recv != nil {
		h.recv.within = dir
	}
}

// errOutsideTicket refuses a path a ticket does not admit.
var errOutsideTicket = fmt.Errorf("%w: the ticket admits only its destination directory", fsroot.ErrEscape)

// beneathDir reports whether p is dir or lies beneath it ("" is the root).
func beneathDir(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

// resolve turns a peer's path into a path beneath the served root,
// binding the session to an export on first use.
func (h *Handler) resolve(p string) (string, error) {
	p, err := CleanPath(p)
	if err != nil {
		return "", err
	}
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if !h.bound {
		name, _, _ := strings.Cut(p, "/")
		ex, ok := h.exports[name]
		if !ok {
			return "", exitcode.WithCode(exitcode.Usage, fmt.Errorf("no export named %q on this server (exports: %s)", name, strings.Join(h.exportNames(), ", ")))
		}
		h.bound, h.prefix, h.root = true, name, ex.Root
		h.recv = newReceiver(ex.Root, h.opt, ex.ReadOnly, ex.AllowSetid, name)
		h.recv.within = h.within
	}
	rel, err := stripExport(h.prefix, p)
	if err == nil && !beneathDir(rel, h.within) {
		return "", fmt.Errorf("path %q: %w", p, errOutsideTicket)
	}
	return rel, err
}

func (h *Handler) exportNames() []string {
	var names []string
	for n := range h.exports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (h *Handler) Receiver() *Receiver {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	return h.recv
}

// register offers the tree's file operations on s: listings, stats,
// hashes, the destination's operations and what arrives on the data
// streams, jobs and tickets (refused where the handler has none).
func (h *Handler) Register(s *session.Session) {
	for _, op := range []string{wire.OpList, wire.OpHash, wire.OpJob, wire.OpTicket, wire.OpStat, wire.OpMkroot,
		wire.OpMeta, wire.OpOpen, wire.OpCommit, wire.OpFinish, wire.OpAdopt, wire.OpXattrs} {
		s.Handle(op, func(r *wire.Req) { h.serve(s, r) })
	}
	s.SetReceiver(handlerReceiver{h})
	s.OnClose(h.Abort)
}

// handlerReceiver writes what arrives on the data streams into the
// handler's receiver, once a destination is bound.
type handlerReceiver struct{ h *Handler }

func (hr handlerReceiver) WriteChunk(fid, idx uint64, off int64, p []byte, dg hashtree.Digest, verify bool) (byte, string) {
	r := hr.h.Receiver()
	if r == nil {
		return wire.AckFailed, "this peer accepts no files"
	}
	return r.WriteChunk(fid, idx, off, p, dg, verify)
}

func (hr handlerReceiver) WritePatch(p wire.Patch, data []byte) (byte, string) {
	r := hr.h.Receiver()
	if r == nil {
		return wire.AckFailed, "this peer accepts no files"
	}
	return r.WritePatch(p, data)
}

func (hr handlerReceiver) WriteBatch(p []byte, count int, check wire.BatchCheck) ([]string, error) {
	r := hr.h.Receiver()
	if r == nil {
		errs := make([]string, count)
		for i := range errs {
			errs[i] = "this peer accepts no files"
		}
		return errs, nil
	}
	return r.WriteBatch(p, count, check)
}

// lock takes the run lock of destination directory p (called name in
// messages) until the session ends (lockDir).
func (h *Handler) lock(p, name string) error {
	root := h.Tree()
	if root == nil {
		return fmt.Errorf("lock %s: the destination does not exist", name)
	}
	f, err := lockDir(root, p, name)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.locks = append(h.locks, f)
	h.mu.Unlock()
	return nil
}

func (h *Handler) unlock() {
	h.mu.Lock()
	locks := h.locks
	h.locks = nil
	h.mu.Unlock()
	for _, f := range locks {
		f.Close()
	}
}

// Abort ends the transfers of the handler's session, keeping their partial
// files and journals for the next run to resume (as a killed run or a
// dropped connection does), and releases its run locks.
func (h *Handler) Abort() {
	defer h.unlock()
	if r := h.Receiver(); r != nil {
		r.abort()
	}
}

// CleanPath validates a path a peer names and cleans it, saying which
// path a refusal is about.
func CleanPath(p string) (string, error) {
	c, err := fsroot.Clean(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return c, nil
}

// serve runs one request. Long ones get their own goroutine and can be
// cancelled by the peer.
func (h *Handler) serve(s *session.Session, r *wire.Req) {
	switch r.Op {
	case wire.OpList:
		c := s.Credit(r.ID)
		ctx := s.Track(r.ID)
		go func() {
			defer s.Untrack(r.ID)
			err := h.list(ctx, s, r, c)
			s.DropCredit(r.ID)
			answer(s, r.ID, &wire.Resp{ID: r.ID}, err)
		}()
	case wire.OpHash:
		ctx := s.Track(r.ID)
		p, err := h.resolve(r.Path)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		go func() {
			defer s.Untrack(r.ID)
			d, err := h.Hash(ctx, p)
			answer(s, r.ID, &wire.Resp{ID: r.ID, Digest: d.String()}, err)
		}()
	case wire.OpJob:
		if h.jobs == nil || r.Job == nil {
			s.Reply(&wire.Resp{ID: r.ID, Err: "this peer runs no transfers on request", Kind: wire.KindUsage})
			return
		}
		srcRel, err := h.resolve(r.Job.SrcPath)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		ctx := s.Track(r.ID)
		go func() {
			defer s.Untrack(r.ID)
			sink := progress.SinkFunc(func(e progress.Event) {
				s.Send(wire.FrameEvent, wire.EventMsg{ID: r.ID, Event: e})
			})
			sum, err := h.jobs(ctx, s, h.root, srcRel, *r.Job, sink)
			resp := &wire.Resp{ID: r.ID, Summary: &sum}
			if err != nil {
				resp = wire.ErrResp(r.ID, err)
				resp.Summary = &sum
				var re *session.RemoteError
				if errors.As(err, &re) && resp.Kind == "" {
					resp.Kind = re.Kind
				}
				if exitcode.Code(err) == exitcode.Peer {
					resp.Kind = wire.KindPeer
				}
			}
			s.Reply(resp)
		}()
	case wire.OpTicket:
		resp, err := h.ticket(s, r)
		answer(s, r.ID, resp, err)
	case wire.OpStat:
		resp, err := h.stat(r)
		answer(s, r.ID, resp, err)
	case wire.OpMkroot:
		p, err := h.resolve(r.Path)
		if err == nil {
			err = h.Mkroot(p, r.Path, r.Lock)
		}
		answer(s, r.ID, &wire.Resp{ID: r.ID}, err)
	case wire.OpMeta, wire.OpOpen, wire.OpCommit, wire.OpFinish, wire.OpAdopt, wire.OpXattrs:
		rc := h.Receiver()
		if rc == nil {
			s.Reply(&wire.Resp{ID: r.ID, Err: "no destination chosen yet in this session", Kind: wire.KindUsage})
			return
		}
		h.serveReceiver(s, rc, r)
	default:
		s.Reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: wire.KindUsage})
	}
}

func (h *Handler) serveReceiver(s *session.Session, rc *Receiver, r *wire.Req) {
	switch r.Op {
	case wire.OpMeta:
		s.Reply(&wire.Resp{ID: r.ID, Errs: rc.Meta(r.Meta)})
	case wire.OpXattrs:
		if r.XattrScope == nil {
			s.Reply(&wire.Resp{ID: r.ID, Err: "xattrs request without a scope", Kind: wire.KindUsage})
			return
		}
		s.Reply(&wire.Resp{ID: r.ID, XattrResults: rc.Xattrs(*r.XattrScope, r.Xattrs)})
	case wire.OpOpen:
		errs, haves, done := rc.Open(r.Files)
		s.Reply(&wire.Resp{ID: r.ID, Errs: errs, Haves: haves, Done: done})
	case wire.OpAdopt:
		missing, leaves, err := rc.Adopt(r.FID, r.Adopt, r.LeafSize)
		answer(s, r.ID, &wire.Resp{ID: r.ID, Missing: missing, Leaves: leaves}, err)
	case wire.OpCommit:
		s.Reply(&wire.Resp{ID: r.ID, Errs: rc.Commit(r.Commits)})
	case wire.OpFinish:
		made := rc.TakeMade()
		if err := rc.Finish(); err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(&wire.Resp{ID: r.ID, Made: made, Owners: rc.TakeOwners()})
	}
}

// answer replies to request id with resp, or, when err is set, with the
// response of err.
func answer(s *session.Session, id uint64, resp *wire.Resp, err error) {
	if err != nil {
		s.Reply(wire.ErrResp(id, err))
		return
	}
	s.Reply(resp)
}

// ticket issues a ticket for the destination r names, sealed for s.
func (h *Handler) ticket(s *session.Session, r *wire.Req) (*wire.Resp, error) {
	if h.tickets == nil {
		return &wire.Resp{ID: r.ID, Err: "this peer issues no tickets", Kind: wire.KindUsage}, nil
	}
	// The ticket is confined to the destination the client names,
	// with the rights of this session there.
	within, err := h.resolve(r.Path)
	if rc := h.Receiver(); err == nil && (rc == nil || rc.readOnly) {
		err = fmt.Errorf("ticket for %s: %w", r.Path, wire.ErrReadOnly)
	}
	if err != nil {
		return nil, err
	}
	h.bmu.Lock()
	scope := h.prefix
	h.bmu.Unlock()
	tk, err := h.tickets.Issue(scope, within)
	if err != nil {
		return nil, err
	}
	st, err := s.SealTicket(tk)
	if err != nil {
		return nil, err
	}
	return &wire.Resp{ID: r.ID, Ticket: st}, nil
}

// stat answers an OpStat: the entry of r.Path, without following a
// symlink.
func (h *Handler) stat(r *wire.Req) (*wire.Resp, error) {
	p, err := h.resolve(r.Path)
	if err != nil {
		return nil, err
	}
	info, err := h.Lstat(p)
	if err != nil {
		return nil, err
	}
	e := plan.EntryFromInfo(p, info)
	if e.Type == plan.TypeSymlink {
		e.Target, _ = h.Tree().Readlink(p)
	}
	return &wire.Resp{ID: r.ID, Entry: &e}, nil
}

// hash hashes p, a path beneath the bound root.
func (h *Handler) Hash(ctx context.Context, p string) (hashtree.Digest, error) {
	f, info, err := h.openRegular("hash", p)
	if err != nil {
		return hashtree.Digest{}, err
	}
	defer f.Close()
	d, err := hashtree.HashFile(ctx, f, info.Size, 0)
	if err != nil {
		return d, fmt.Errorf("hash %s: %w", p, ReadErr(err))
	}
	return d, nil
}

// list streams the tree beneath r.Path in batches, one per credit.
func (h *Handler) list(ctx context.Context, s *session.Session, r *wire.Req, credit chan struct{}) error {
	top, err := h.resolve(r.Path)
	if err != nil {
		return err
	}
	var w plan.Lister
	info, err := h.Lstat(top)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		w = &plan.SliceLister{}
	case err != nil:
		return fmt.Errorf("list %s: %w", top, err)
	case info.Type != fsroot.TypeDir:
		return fmt.Errorf("list %s: not a directory", top)
	case r.Shallow:
		w = plan.NewShallowWalker(h.Tree(), top, r.Checkers)
	default:
		w = plan.NewWalkerN(h.Tree(), top, r.Checkers)
	}
	e := wire.Enc{}
	n := 0
	flush := func() error {
		select {
		case <-credit:
		case <-ctx.Done():
			return ctx.Err()
		}
		msg := wire.Enc{Buf: make([]byte, 0, len(e.Buf)+20)}
		msg.Uvar(r.ID)
		msg.Uvar(uint64(n))
		msg.Raw(e.Buf)
		e.Buf, n = e.Buf[:0], 0
		return s.SendFrame(wire.FrameEntries, msg.Buf)
	}
	for {
		en, err := w.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if r.Checksum && en.Type == plan.TypeFile {
			d, err := h.Hash(ctx, plan.Join(top, en.Path))
			if err != nil && ctx.Err() != nil {
				return err
			}
			if err == nil { // else the diff asks again, and transfers the file if that fails too
				en.Digest = d[:]
			}
		}
		wire.AppendEntry(&e, &en)
		n++
		if n == wire.ListBatch || len(e.Buf) > 1<<20 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if n > 0 {
		return flush()
	}
	return nil
}

// ScratchFile creates the unnamed temporary file of `xfer bench --mode
// disk` in dir beneath the served tree: O_TMPFILE, or where the file
// system lacks it a named file that is unlinked at once. Either way it
// disappears when closed.
func (h *Handler) ScratchFile(dir string) (*os.File, error) {
	p, err := h.resolve(dir)
	if err != nil {
		return nil, err
	}
	if rc := h.Receiver(); rc == nil || rc.readOnly {
		return nil, fmt.Errorf("bench --mode disk in %s: %w", dir, wire.ErrReadOnly)
	}
	f, err := h.root.OpenFile(p, unix.O_TMPFILE|os.O_RDWR, 0o600)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EINVAL) {
		return nil, fmt.Errorf("bench --mode disk: temporary file in %s: %w", dir, err)
	}
	name := path.Join(p, fmt.Sprintf(".xfer-bench-%d-%d.tmp", os.Getpid(), time.Now().UnixNano()))
	f, err = h.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bench --mode disk: temporary file in %s: %w", dir, err)
	}
	if err := h.root.Remove(name); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench --mode disk: unlink %s: %w", name, err)
	}
	return f, nil
}
