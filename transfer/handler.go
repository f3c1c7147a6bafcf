package transfer

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

// handler serves a peer's requests against one tree: the export of `xfer
// serve`, or the destination directory of a client receiving a pull.
type handler struct {
	// exports, when set, are the named trees of a server started with
	// --export; a session binds to one of them with the first path it
	// names. Without exports the handler serves root alone.
	exports map[string]Export
	noFsync bool

	bmu    sync.Mutex
	bound  bool
	prefix string
	root   *fsroot.Root
	recv   *receiver
	// within, for the session of a ticket, is the destination directory
	// (beneath the root) the ticket admits; every path must lie in it.
	within string
	// create, when set, makes the local destination directory that does
	// not exist yet: root and recv stay nil (an empty tree that takes no
	// writes) until the run's first mkdirs, so that a run failing before
	// (missing source, unreachable peer) or a dry run creates nothing.
	create   func() (*fsroot.Root, error)
	readOnly bool // of the receiver create binds

	// jobs runs transfers the peer asks for; nil refuses them.
	jobs func(ctx context.Context, s *session.Session, root *fsroot.Root, srcRel string, spec wire.JobSpec, sink progress.Sink) (progress.Summary, error)
	// tickets issues tickets for third-party sessions; nil refuses.
	tickets *session.Tickets
	// m and transport label what the receiver counts.
	m         *metrics.Metrics
	transport string
	// served is set when the peer is a client of `xfer serve`: the
	// receiver then narrows modes with umask (see peerPolicy).
	served bool
	umask  uint32
	// maxOpen bounds the large files the session's receiver holds open
	// (0: no bound).
	maxOpen int

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

func newHandler(root *fsroot.Root, noFsync, readOnly bool) *handler {
	return &handler{root: root, recv: newReceiver(root, noFsync, readOnly, ""), bound: true,
		noFsync: noFsync}
}

// newPendingHandler is a handler for a local destination directory that
// create makes on the first mkdirs.
func newPendingHandler(create func() (*fsroot.Root, error), noFsync, readOnly bool) *handler {
	return &handler{create: create, bound: true, noFsync: noFsync, readOnly: readOnly}
}

// tree is the root the handler serves; nil while a pending destination
// has not been created (or before an export is bound).
func (h *handler) tree() *fsroot.Root {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	return h.root
}

// lstat is root.Lstat, with a pending destination an empty tree.
func (h *handler) lstat(p string) (fsroot.Info, error) {
	root := h.tree()
	if root == nil {
		return fsroot.Info{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return root.Lstat(p)
}

// createRoot creates a pending destination (create) and binds its
// receiver; a no-op for any other handler.
func (h *handler) createRoot() error {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.root != nil || h.create == nil {
		return nil
	}
	r, err := h.create()
	if err != nil {
		return err
	}
	h.root, h.recv = r, newReceiver(r, h.noFsync, h.readOnly, "")
	h.recv.m, h.recv.transport = h.m, h.transport
	return nil
}

// mkroot creates the destination directory p (named name in messages) of
// a run, and takes its run lock if lock is set.
func (h *handler) mkroot(p, name string, lock bool) error {
	if err := h.createRoot(); err != nil {
		return err
	}
	root, rc := h.tree(), h.receiverIfBound()
	if root == nil || rc == nil {
		return exitcode.Usagef("no destination chosen yet in this session")
	}
	if rc.readOnly {
		return wire.ErrReadOnly
	}
	// A destination that is a symlink to a directory is followed (within
	// the root), here too: the lock of a third-party or cluster run is
	// taken on the directory the engine then writes into.
	if rp, err := followLinks(context.Background(), p, rootStat(root)); err == nil {
		p = rp
	}
	if err := root.MkdirAll(p, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
			return exitcode.Usagef("destination %s is not a directory", name)
		}
		return fmt.Errorf("create destination %s: %w", name, unwrapPath(err))
	}
	if lock {
		return h.lock(p, name)
	}
	return nil
}

// close releases the handler's locks and its root.
func (h *handler) close() {
	if r := h.receiverIfBound(); r != nil {
		r.restoreWritable() // a run that ended before finish
	}
	h.unlock()
	if root := h.tree(); root != nil {
		root.Close()
	}
}

func newExportsHandler(exports map[string]Export, noFsync bool) *handler {
	return &handler{exports: exports, noFsync: noFsync}
}

// bindTo binds the handler to a named export (a ticket's scope).
func (h *handler) bindTo(name string) error {
	_, err := h.resolve(name)
	return err
}

// confine restricts every path of the session to dir (beneath the bound
// root) and its contents: the destination a ticket was issued for.
func (h *handler) confine(dir string) {
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
func (h *handler) resolve(p string) (string, error) {
	p, err := cleanPath(p)
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
		h.recv = newReceiver(ex.Root, h.noFsync, ex.ReadOnly, name)
		h.recv.m, h.recv.transport, h.recv.maxOpen = h.m, h.transport, h.maxOpen
		if h.served {
			h.recv.peer = &peerPolicy{umask: h.umask, setid: ex.AllowSetid}
		}
		h.recv.within = h.within
	}
	rel, err := stripExport(h.prefix, p)
	if err == nil && !beneathDir(rel, h.within) {
		return "", fmt.Errorf("path %q: %w", p, errOutsideTicket)
	}
	return rel, err
}

func (h *handler) exportNames() []string {
	var names []string
	for n := range h.exports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (h *handler) receiverIfBound() *receiver {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	return h.recv
}

// register offers the tree's file operations on s: listings, stats,
// hashes, the destination's operations and what arrives on the data
// streams, jobs and tickets (refused where the handler has none).
func (h *handler) register(s *session.Session) {
	for _, op := range []string{wire.OpList, wire.OpHash, wire.OpJob, wire.OpTicket, wire.OpStat, wire.OpMkroot,
		wire.OpMeta, wire.OpOpen, wire.OpCommit, wire.OpFinish, wire.OpAdopt} {
		s.Handle(op, func(r *wire.Req) { h.serve(s, r) })
	}
	s.SetReceiver(handlerReceiver{h})
	s.OnClose(h.abort)
}

// handlerReceiver writes what arrives on the data streams into the
// handler's receiver, once a destination is bound.
type handlerReceiver struct{ h *handler }

func (hr handlerReceiver) WriteChunk(fid, idx uint64, off int64, p []byte, dg hashtree.Digest, verify bool) (byte, string) {
	r := hr.h.receiverIfBound()
	if r == nil {
		return wire.AckFailed, "this peer accepts no files"
	}
	return r.writeChunk(fid, idx, off, p, dg, verify)
}

func (hr handlerReceiver) WriteBatch(p []byte, count int, verify bool) ([]string, error) {
	r := hr.h.receiverIfBound()
	if r == nil {
		errs := make([]string, count)
		for i := range errs {
			errs[i] = "this peer accepts no files"
		}
		return errs, nil
	}
	return r.writeBatch(p, count, verify)
}

// lock takes the run lock of destination directory p (called name in
// messages) until the session ends (lockDir).
func (h *handler) lock(p, name string) error {
	root := h.tree()
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

func (h *handler) unlock() {
	h.mu.Lock()
	locks := h.locks
	h.locks = nil
	h.mu.Unlock()
	for _, f := range locks {
		f.Close()
	}
}

func (h *handler) abort() {
	defer h.unlock()
	if r := h.receiverIfBound(); r != nil {
		r.abort()
	}
}

// errResp classifies a local error for the peer.
func cleanPath(p string) (string, error) {
	c, err := fsroot.Clean(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return c, nil
}

// serve runs one request. Long ones get their own goroutine and can be
// cancelled by the peer.
func (h *handler) serve(s *session.Session, r *wire.Req) {
	switch r.Op {
	case wire.OpList:
		c := s.Credit(r.ID)
		ctx := s.Track(r.ID)
		go func() {
			defer s.Untrack(r.ID)
			err := h.list(ctx, s, r, c)
			s.DropCredit(r.ID)
			if err != nil {
				s.Reply(wire.ErrResp(r.ID, err))
				return
			}
			s.Reply(&wire.Resp{ID: r.ID})
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
			d, err := h.hash(ctx, p)
			if err != nil {
				s.Reply(wire.ErrResp(r.ID, err))
				return
			}
			s.Reply(&wire.Resp{ID: r.ID, Digest: d.String()})
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
				if isPeerErr(err) {
					resp.Kind = wire.KindPeer
				}
			}
			s.Reply(resp)
		}()
	case wire.OpTicket:
		if h.tickets == nil {
			s.Reply(&wire.Resp{ID: r.ID, Err: "this peer issues no tickets", Kind: wire.KindUsage})
			return
		}
		// The ticket is confined to the destination the client names,
		// with the rights of this session there.
		within, err := h.resolve(r.Path)
		if rc := h.receiverIfBound(); err == nil && (rc == nil || rc.readOnly) {
			err = fmt.Errorf("ticket for %s: %w", r.Path, wire.ErrReadOnly)
		}
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		h.bmu.Lock()
		scope := h.prefix
		h.bmu.Unlock()
		tk, err := h.tickets.Issue(scope, within)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		st, err := s.SealTicket(tk)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(&wire.Resp{ID: r.ID, Ticket: st})
	case wire.OpStat:
		p, err := h.resolve(r.Path)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		info, err := h.lstat(p)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		e := plan.EntryFromInfo(p, info)
		if e.Type == plan.TypeSymlink {
			e.Target, _ = h.tree().Readlink(p)
		}
		s.Reply(&wire.Resp{ID: r.ID, Entry: &e})
	case wire.OpMkroot:
		p, err := h.resolve(r.Path)
		if err == nil {
			err = h.mkroot(p, r.Path, r.Lock)
		}
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(&wire.Resp{ID: r.ID})
	case wire.OpMeta, wire.OpOpen, wire.OpCommit, wire.OpFinish, wire.OpAdopt:
		rc := h.receiverIfBound()
		if rc == nil {
			s.Reply(&wire.Resp{ID: r.ID, Err: "no destination chosen yet in this session", Kind: wire.KindUsage})
			return
		}
		h.serveReceiver(s, rc, r)
	default:
		s.Reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: wire.KindUsage})
	}
}

func (h *handler) serveReceiver(s *session.Session, rc *receiver, r *wire.Req) {
	switch r.Op {
	case wire.OpMeta:
		s.Reply(&wire.Resp{ID: r.ID, Errs: rc.meta(r.Meta)})
	case wire.OpOpen:
		errs, haves, done := rc.open(r.Files)
		s.Reply(&wire.Resp{ID: r.ID, Errs: errs, Haves: haves, Done: done})
	case wire.OpAdopt:
		missing, err := rc.adopt(r.FID, r.Adopt)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(&wire.Resp{ID: r.ID, Missing: missing})
	case wire.OpCommit:
		s.Reply(&wire.Resp{ID: r.ID, Errs: rc.commit(r.Commits)})
	case wire.OpFinish:
		made := rc.takeMade()
		if err := rc.finish(); err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(&wire.Resp{ID: r.ID, Made: made})
	}
}

// hash hashes p, a path beneath the bound root.
func (h *handler) hash(ctx context.Context, p string) (hashtree.Digest, error) {
	root := h.tree()
	if root == nil {
		return hashtree.Digest{}, fmt.Errorf("hash %s: %w", p, fs.ErrNotExist)
	}
	// O_NONBLOCK: a FIFO at p must not hang the session in open(2).
	f, err := root.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return hashtree.Digest{}, fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	info, err := fsroot.InfoFromFile(f)
	if err != nil {
		return hashtree.Digest{}, fmt.Errorf("hash %s: %w", p, err)
	}
	if info.Type != fsroot.TypeFile {
		return hashtree.Digest{}, fmt.Errorf("hash %s: not a regular file", p)
	}
	d, err := hashtree.HashFile(ctx, f, info.Size, 0)
	if err != nil {
		return d, fmt.Errorf("hash %s: %w", p, readErr(err))
	}
	return d, nil
}

// list streams the tree beneath r.Path in batches, one per credit.
func (h *handler) list(ctx context.Context, s *session.Session, r *wire.Req, credit chan struct{}) error {
	top, err := h.resolve(r.Path)
	if err != nil {
		return err
	}
	var w plan.Lister
	info, err := h.lstat(top)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		w = &plan.SliceLister{}
	case err != nil:
		return fmt.Errorf("list %s: %w", top, err)
	case info.Type != fsroot.TypeDir:
		return fmt.Errorf("list %s: not a directory", top)
	default:
		w = plan.NewWalkerN(h.tree(), top, r.Checkers)
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
			d, err := h.hash(ctx, plan.Join(top, en.Path))
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
func (h *handler) ScratchFile(dir string) (*os.File, error) {
	p, err := h.resolve(dir)
	if err != nil {
		return nil, err
	}
	if rc := h.receiverIfBound(); rc == nil || rc.readOnly {
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
