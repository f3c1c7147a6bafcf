package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"syscall"

	"github.com/xfer-io/xfer/exitcode"
	"github.com/xfer-io/xfer/fsroot"
	"github.com/xfer-io/xfer/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/progress"
)

// handler serves a peer's requests against one tree: the export of `xfer
// serve`, or the destination directory of a client receiving a pull.
type handler struct {
	root *fsroot.Root
	recv *receiver
	// jobs runs transfers the peer asks for; nil refuses them.
	jobs func(ctx context.Context, s *Session, spec JobSpec, sink progress.Sink) (progress.Summary, error)

	mu      sync.Mutex
	credits map[uint64]chan struct{}
}

func newHandler(root *fsroot.Root, noFsync, readOnly bool) *handler {
	return &handler{root: root, recv: newReceiver(root, noFsync, readOnly), credits: map[uint64]chan struct{}{}}
}

func (s *Session) receiver() *receiver {
	if s.handler == nil {
		return nil
	}
	return s.handler.recv
}

func (h *handler) credit(id uint64) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.credits[id]
}

func (h *handler) abort() { h.recv.abort() }

// errResp classifies a local error for the peer.
func errResp(id uint64, err error) *Resp {
	r := &Resp{ID: id, Err: err.Error()}
	switch {
	case errors.Is(err, fsroot.ErrEscape):
		r.Kind = kindEscape
	case errors.Is(err, fs.ErrNotExist):
		r.Kind = kindNotFound
	case errors.Is(err, errReadOnly):
		r.Kind = kindReadOnly
	case errors.Is(err, syscall.ENOSPC):
		r.Kind = kindSpace
	}
	switch exitcode.Code(err) {
	case exitcode.Usage:
		if r.Kind == "" {
			r.Kind = kindUsage
		}
	case exitcode.Peer:
		r.Kind = kindPeer
	}
	return r
}

func cleanPath(p string) (string, error) {
	c, err := fsroot.Clean(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return c, nil
}

// serve runs one request. Long ones get their own goroutine and can be
// cancelled by the peer.
func (h *handler) serve(s *Session, r *Req) {
	switch r.Op {
	case opList:
		h.mu.Lock()
		c := make(chan struct{}, listCredit)
		for i := 0; i < listCredit; i++ {
			c <- struct{}{}
		}
		h.credits[r.ID] = c
		h.mu.Unlock()
		ctx := s.track(r.ID)
		go func() {
			defer s.untrack(r.ID)
			err := h.list(ctx, s, r, c)
			h.mu.Lock()
			delete(h.credits, r.ID)
			h.mu.Unlock()
			if err != nil {
				s.reply(errResp(r.ID, err))
				return
			}
			s.reply(&Resp{ID: r.ID})
		}()
	case opHash:
		ctx := s.track(r.ID)
		go func() {
			defer s.untrack(r.ID)
			d, err := h.hash(ctx, r.Path)
			if err != nil {
				s.reply(errResp(r.ID, err))
				return
			}
			s.reply(&Resp{ID: r.ID, Digest: d.String()})
		}()
	case opJob:
		if h.jobs == nil || r.Job == nil {
			s.reply(&Resp{ID: r.ID, Err: "this peer runs no transfers on request", Kind: kindUsage})
			return
		}
		ctx := s.track(r.ID)
		go func() {
			defer s.untrack(r.ID)
			sink := progress.SinkFunc(func(e progress.Event) {
				s.send(fEvent, struct {
					ID    uint64         `json:"id"`
					Event progress.Event `json:"e"`
				}{r.ID, e})
			})
			sum, err := h.jobs(ctx, s, *r.Job, sink)
			resp := &Resp{ID: r.ID, Summary: &sum}
			if err != nil {
				resp = errResp(r.ID, err)
				resp.Summary = &sum
				var re *RemoteError
				if errors.As(err, &re) && resp.Kind == "" {
					resp.Kind = re.Kind
				}
				if isPeerErr(err) {
					resp.Kind = kindPeer
				}
			}
			s.reply(resp)
		}()
	case opStat:
		p, err := cleanPath(r.Path)
		if err != nil {
			s.reply(errResp(r.ID, err))
			return
		}
		info, err := h.root.Lstat(p)
		if err != nil {
			s.reply(errResp(r.ID, err))
			return
		}
		e := plan.EntryFromInfo(p, info)
		if e.Type == plan.TypeSymlink {
			e.Target, _ = h.root.Readlink(p)
		}
		s.reply(&Resp{ID: r.ID, Entry: &e})
	case opMkdirs:
		p, err := cleanPath(r.Path)
		if err == nil && h.recv.readOnly {
			err = errReadOnly
		}
		if err == nil {
			err = h.root.MkdirAll(p, 0o755)
		}
		if err != nil {
			s.reply(errResp(r.ID, fmt.Errorf("create destination %s: %w", r.Path, err)))
			return
		}
		s.reply(&Resp{ID: r.ID})
	case opMeta:
		s.reply(&Resp{ID: r.ID, Errs: h.recv.meta(r.Meta)})
	case opOpen:
		s.reply(&Resp{ID: r.ID, Errs: h.recv.open(r.Files)})
	case opCommit:
		s.reply(&Resp{ID: r.ID, Errs: h.recv.commit(r.Commits)})
	case opFinish:
		if err := h.recv.finish(); err != nil {
			s.reply(errResp(r.ID, err))
			return
		}
		s.reply(&Resp{ID: r.ID})
	default:
		s.reply(&Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: kindUsage})
	}
}

func (h *handler) hash(ctx context.Context, p string) (hashtree.Digest, error) {
	p, err := cleanPath(p)
	if err != nil {
		return hashtree.Digest{}, err
	}
	f, err := h.root.Open(p)
	if err != nil {
		return hashtree.Digest{}, fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	info, err := fsroot.InfoFromFile(f)
	if err != nil {
		return hashtree.Digest{}, fmt.Errorf("hash %s: %w", p, err)
	}
	return hashtree.HashFile(ctx, f, info.Size, 0)
}

// list streams the tree beneath r.Path in batches, one per credit.
func (h *handler) list(ctx context.Context, s *Session, r *Req, credit chan struct{}) error {
	top, err := cleanPath(r.Path)
	if err != nil {
		return err
	}
	var w plan.Lister
	info, err := h.root.Lstat(top)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		w = &plan.SliceLister{}
	case err != nil:
		return fmt.Errorf("list %s: %w", top, err)
	case info.Type != fsroot.TypeDir:
		return fmt.Errorf("list %s: not a directory", top)
	default:
		w = plan.NewWalker(h.root, top)
	}
	e := enc{}
	n := 0
	flush := func() error {
		select {
		case <-credit:
		case <-ctx.Done():
			return ctx.Err()
		}
		msg := enc{b: make([]byte, 0, len(e.b)+20)}
		msg.uvar(r.ID)
		msg.uvar(uint64(n))
		msg.raw(e.b)
		e.b, n = e.b[:0], 0
		return s.sendRaw(fEntries, msg.b)
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
			if err != nil {
				return err
			}
			en.Digest = d[:]
		}
		appendEntry(&e, &en)
		n++
		if n == listBatch || len(e.b) > 1<<20 {
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

// track registers a cancellable request of the peer.
func (s *Session) track(id uint64) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	select {
	case <-s.done:
		cancel()
	default:
	}
	return ctx
}

func (s *Session) untrack(id uint64) {
	s.mu.Lock()
	if c := s.running[id]; c != nil {
		c()
	}
	delete(s.running, id)
	s.mu.Unlock()
}
