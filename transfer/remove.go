package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// RemoveOptions tune Delete, Purge and the removal of a move's source.
type RemoveOptions struct {
	// Filter selects what is removed (delete, move); nil: everything.
	Filter *plan.FilterOptions
	// RmDirs also removes the directories left empty, never the top one
	// (delete --rmdirs, move --delete-empty-src-dirs).
	RmDirs bool
	// DryRun says what would be removed and removes nothing.
	DryRun bool
	// Checksum (move) compares the source and destination copies by
	// BLAKE3 instead of size and mtime before a source file goes.
	Checksum bool
	// DstName (moveto) is the name a single source file has at the
	// destination; "" its own.
	DstName  string
	Checkers int
}

// tree is one side of a removal: a Destination (the receiver of this
// machine or of a peer, which holds to its policy: read-only, confined
// to its root) and the path of the location beneath it.
type tree struct {
	d     send.Destination
	path  string
	name  string // how messages call the location
	close func()
}

// openTree opens ep for listing and removal. A local ep is opened at its
// parent when whole is set (purge removes the path itself) or when it is
// not a directory.
func openTree(ctx context.Context, ep Endpoint, whole bool, checkers int, dial session.DialOptions) (*tree, error) {
	if ep.IsRemote() {
		s, _, err := dialPeer(ctx, ep, dial)
		if err != nil {
			return nil, err
		}
		p := strings.Trim(ep.Path, "/")
		if rp, err := plan.FollowLinks(ctx, p, send.NewRemote(s, 0).Stat); err == nil && !whole {
			p = rp
		}
		return &tree{d: send.NewRemote(s, checkers), path: p, name: ep.String(), close: func() { s.Close() }}, nil
	}
	abs, err := filepath.Abs(ep.Path)
	if err != nil {
		return nil, exitcode.Usagef("%s: %v", ep.Path, err)
	}
	dir, base := abs, ""
	if info, err := os.Stat(abs); whole || err != nil || !info.IsDir() {
		dir, base = filepath.Dir(abs), filepath.Base(abs)
	}
	if abs == "/" {
		dir, base = "/", ""
	}
	if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil, exitcode.Usagef("%s does not exist", ep.Path)
	}
	r, err := fsroot.Open(dir)
	if err != nil {
		return nil, exitcode.Usagef("%s: %v", ep.Path, fsroot.Reason(err))
	}
	h := receive.NewHandler(r, receive.Options{NoFsync: true})
	return &tree{d: send.NewLocal(h, dir, 1, checkers), path: base, name: ep.Path, close: func() { h.Close() }}, nil
}

// each calls fn for everything beneath the directory t.path as the
// listing streams, holding none of it.
func (t *tree) each(ctx context.Context, fn func(plan.Entry) error) error {
	l := t.d.List(ctx, t.path, false)
	for {
		e, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", t.name, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// full is the path beneath the tree's root of p, relative to t.path: p
// itself for a single file (its listing holds its own name).
func (t *tree) full(top *plan.Entry, p string) string {
	if top.Type != plan.TypeDir || p == "" {
		return t.path
	}
	return plan.Join(t.path, p)
}

// listing streams what lies beneath t.path: the tree of a directory, or
// the one entry a path that is not a directory is, as name. Its errors
// name the location.
func (t *tree) listing(ctx context.Context, top *plan.Entry, name string) plan.Lister {
	if top.Type != plan.TypeDir {
		e := *top
		e.Path = name
		return &plan.SliceLister{Entries: []plan.Entry{e}}
	}
	return &namedLister{l: t.d.List(ctx, t.path, false), name: t.name}
}

// namedLister says which location a listing error is about.
type namedLister struct {
	l    plan.Lister
	name string
}

func (n *namedLister) Next(ctx context.Context) (plan.Entry, error) {
	e, err := n.l.Next(ctx)
	if err != nil && !errors.Is(err, io.EOF) {
		return e, fmt.Errorf("listing %s: %w", n.name, err)
	}
	return e, err
}

// SkipDir passes plan.DirSkipper on to the listing, when it has it.
func (n *namedLister) SkipDir() {
	if s, ok := n.l.(plan.DirSkipper); ok {
		s.SkipDir()
	}
}

// action names what a dry run's removal event of kind stands for.
func action(kind string) string {
	switch kind {
	case progress.KindRmdir:
		return "rmdir"
	case progress.KindSourceRemoved:
		return "remove-source"
	}
	return "delete"
}

// remover issues removals in batches and reports each as an event, as a
// listing streams. It follows the listing depth first (in Compare order
// a directory's contents come right after it) and holds the chain of
// open directories and those whose fate waits on answers still to come,
// never the listing: a directory is settled as soon as everything
// beneath it is, removed (rmDirs) if nothing beneath it stays, given its
// listed mode and mtime back (restore) if it stays and something in it
// went.
type remover struct {
	t       *tree
	top     *plan.Entry
	dryRun  bool
	rmDirs  bool // the directories left empty go too, never the top one
	restore bool // a move: the directories that lost entries get their listed times back
	sink    progress.Sink
	tally   *progress.Tally
	queue   []queued
	// restores are the setattrs of restore waiting for a request;
	// restored says some were sent, for Finish to apply.
	restores []wire.MetaOp
	restored bool
	open     []*dirState // the open directories, the top one first
}

// queued is one removal waiting for its request.
type queued struct {
	op    wire.MetaOp
	shown string    // the path as listed
	kind  string    // the event it is reported as
	in    *dirState // the directory it lies in
	dir   *dirState // the directory it removes (an rmdir), else nil
}

// dirState is a directory of the listing whose fate is not settled yet.
type dirState struct {
	path    string
	mode    uint32
	mtimeNs int64
	parent  *dirState // nil: the top
	// rm: it goes once nothing beneath it stays.
	rm bool
	// occupied: something beneath it stays; changed: something in it
	// went.
	occupied, changed bool
	// pending counts what is not settled yet: its own decision, each
	// entry in it awaiting its decision or the answer to its removal,
	// each subdirectory.
	pending int
	// closed: the listing is past its contents.
	closed, settled bool
}

func newRemover(t *tree, top *plan.Entry, dryRun, rmDirs, restore bool, sink progress.Sink, tally *progress.Tally) *remover {
	dir := top.Type == plan.TypeDir
	return &remover{t: t, top: top, dryRun: dryRun, rmDirs: rmDirs && dir, restore: restore && dir, sink: sink, tally: tally,
		open: []*dirState{{mode: top.Mode, mtimeNs: top.MtimeNs}}}
}

func (r *remover) emit(e progress.Event) {
	r.tally.Record(e)
	r.sink.Emit(e)
}

// enter places e, the next entry of the listing, in the chain of open
// directories, settling those it is not beneath, and returns the
// directory it lies in, which waits for e's decision (keep, remove, or
// decideDir on dir, the directory e is, else nil).
func (r *remover) enter(e plan.Entry) (in, dir *dirState) {
	for len(r.open) > 1 && !strings.HasPrefix(e.Path, r.open[len(r.open)-1].path+"/") {
		r.close()
	}
	in = r.open[len(r.open)-1]
	in.pending++
	if e.Type == plan.TypeDir {
		dir = &dirState{path: e.Path, mode: e.Mode, mtimeNs: e.MtimeNs, parent: in, pending: 1}
		r.open = append(r.open, dir)
	}
	return in, dir
}

// close ends the innermost open directory: the listing is past it.
func (r *remover) close() {
	d := r.open[len(r.open)-1]
	r.open = r.open[:len(r.open)-1]
	d.closed = true
	r.settle(d)
}

// keep decides that an entry of in stays.
func (r *remover) keep(in *dirState) {
	in.occupied = true
	in.pending--
	r.settle(in)
}

// decideDir decides whether d goes once nothing beneath it stays (with
// rmDirs).
func (r *remover) decideDir(d *dirState, chosen bool) {
	d.rm = r.rmDirs && chosen
	d.pending--
	r.settle(d)
}

// remove queues the removal of an entry of in (op), listed as shown,
// reported as an event of kind.
func (r *remover) remove(in *dirState, op wire.MetaOp, shown, kind string) {
	r.push(queued{op: op, shown: shown, kind: kind, in: in})
}

func (r *remover) push(q queued) {
	if r.dryRun {
		r.answer(q, "")
		return
	}
	r.queue = append(r.queue, q)
}

// settle decides d's fate once the listing is past it and everything
// beneath it is settled.
func (r *remover) settle(d *dirState) {
	if !d.closed || d.pending > 0 || d.settled {
		return
	}
	d.settled = true
	if d.rm && !d.occupied {
		r.push(queued{op: wire.MetaOp{Op: "remove", Path: r.t.full(r.top, d.path)}, shown: d.path, kind: progress.KindRmdir, in: d.parent, dir: d})
		return
	}
	r.stay(d)
}

// stay settles d as staying: its times go back if it lost entries, and
// its parent is occupied.
func (r *remover) stay(d *dirState) {
	if r.restore && d.changed {
		r.restores = append(r.restores, wire.MetaOp{Op: "setattrs", Path: r.t.full(r.top, d.path), Mode: d.mode, MtimeNs: d.mtimeNs})
	}
	if p := d.parent; p != nil {
		p.occupied = true
		p.pending--
		r.settle(p)
	}
}

// answer reports q's removal, done (msg "", or would be in a dry run) or
// refused (why), and settles what waited on it.
func (r *remover) answer(q queued, msg string) {
	switch {
	case r.dryRun:
		r.emit(progress.Event{Event: q.kind, Path: q.shown, Action: action(q.kind), DryRun: true})
	case msg != "":
		r.emit(progress.Event{Event: progress.KindError, Path: q.shown, Error: msg})
	default:
		r.emit(progress.Event{Event: q.kind, Path: q.shown})
	}
	if msg != "" && q.dir != nil {
		r.stay(q.dir)
		return
	}
	if msg != "" {
		q.in.occupied = true
	} else {
		q.in.changed = true
	}
	q.in.pending--
	r.settle(q.in)
}

// flush sends the queued removals, MaxReqItems a request, while a whole
// request waits (with all, until none is left); one refused is an error
// event, and the run goes on. The directory times to restore go the
// same way.
func (r *remover) flush(ctx context.Context, all bool) error {
	for len(r.queue) >= wire.MaxReqItems || (all && len(r.queue) > 0) {
		n := min(len(r.queue), wire.MaxReqItems)
		batch := slices.Clone(r.queue[:n])
		r.queue = r.queue[:copy(r.queue, r.queue[n:])]
		ops := make([]wire.MetaOp, n)
		for i := range batch {
			ops[i] = batch[i].op
		}
		errs, err := r.t.d.Meta(ctx, ops) // one verdict an operation
		if err != nil {
			return fmt.Errorf("removing in %s: %w", r.t.name, err)
		}
		for i, q := range batch {
			r.answer(q, errs[i])
		}
	}
	for len(r.restores) >= wire.MaxReqItems || (all && len(r.restores) > 0) {
		n := min(len(r.restores), wire.MaxReqItems)
		ops := slices.Clone(r.restores[:n])
		r.restores = r.restores[:copy(r.restores, r.restores[n:])]
		errs, err := r.t.d.Meta(ctx, ops)
		if err != nil {
			return fmt.Errorf("restoring directory times in %s: %w", r.t.name, err)
		}
		r.restored = true
		for i, msg := range errs {
			if msg != "" {
				r.emit(progress.Event{Event: progress.KindNotice, Path: ops[i].Path, Msg: msg})
			}
		}
	}
	return nil
}

// finish settles what is still open once the listing has ended, sends
// everything queued and, when directory times were restored, has the
// destination apply them.
func (r *remover) finish(ctx context.Context) error {
	for len(r.open) > 0 {
		r.close()
	}
	if err := r.flush(ctx, true); err != nil {
		return err
	}
	if !r.restored {
		return nil
	}
	if _, _, err := r.t.d.Finish(ctx); err != nil {
		return fmt.Errorf("restoring directory times in %s: %w", r.t.name, err)
	}
	return nil
}

// removeChosen removes, as the listing l of the top streams, every entry
// that chosen selects, directories aside, reporting each as an event of
// kind; an entry the listing could not read is an error. With rmDirs the
// directories then left empty go too, never the top one.
func (r *remover) removeChosen(ctx context.Context, l plan.Lister, chosen func(plan.Entry) bool, kind string) error {
	for {
		e, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			return r.finish(ctx)
		}
		if err != nil {
			return err
		}
		in, dir := r.enter(e)
		switch {
		case dir != nil:
			r.decideDir(dir, chosen(e) && e.Err == "")
		case !chosen(e):
			r.keep(in)
		case e.Err != "":
			r.emit(progress.Event{Event: progress.KindError, Path: e.Path, Error: e.Err})
			r.keep(in)
		default:
			r.remove(in, wire.MetaOp{Op: "remove", Path: r.t.full(r.top, e.Path)}, e.Path, kind)
		}
		if err := r.flush(ctx, false); err != nil {
			return err
		}
	}
}

// Delete removes the files at ep (or beneath it, with opt.Filter
// applied), keeping directories unless opt.RmDirs, as rclone delete.
// The summary counts files_deleted and dirs_removed.
func Delete(ctx context.Context, ep Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink) (progress.Summary, error) {
	return removal(ctx, ep, opt, dial, sink, deleteFiles)
}

// Purge removes ep and everything beneath it, as rclone purge. It
// refuses "/" and the root a peer serves.
func Purge(ctx context.Context, ep Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink) (progress.Summary, error) {
	return removal(ctx, ep, opt, dial, sink, purge)
}

// removal runs do (delete, purge) with a tally of its own and ends its
// summary: per-entry failures make the error an exitcode.Partial one.
func removal(ctx context.Context, ep Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink,
	do func(context.Context, Endpoint, RemoveOptions, session.DialOptions, progress.Sink, *progress.Tally) error) (progress.Summary, error) {
	tally := progress.NewTally()
	err := do(ctx, ep, opt, dial, sink, tally)
	if opt.DryRun {
		tally.SetDryRun()
	}
	sum := tally.Summary()
	sum.Proto = "local"
	if ep.IsRemote() {
		sum.Proto = "control"
	}
	if err == nil && sum.Errors > 0 {
		err = &PartialError{Failed: sum.Errors}
	}
	return sum, err
}

func deleteFiles(ctx context.Context, ep Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	flt, err := newFilter(opt.Filter)
	if err != nil {
		return err
	}
	t, top, err := openExisting(ctx, ep, false, opt.Checkers, dial)
	if err != nil {
		return err
	}
	defer t.close()
	r := newRemover(t, top, opt.DryRun, opt.RmDirs, false, sink, tally)
	return r.removeChosen(ctx, t.listing(ctx, top, plan.Base(t.path)), flt.Match, progress.KindDelete)
}

func purge(ctx context.Context, ep Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	if ep.IsRemote() && strings.Trim(ep.Path, "/") == "" {
		return exitcode.Usagef("purge %s: refusing to remove the root the server serves; name a directory beneath it", ep)
	}
	if !ep.IsRemote() {
		if abs, err := filepath.Abs(ep.Path); err == nil && abs == "/" {
			return exitcode.Usagef("purge %s: refusing to remove /", ep.Path)
		}
	}
	t, top, err := openExisting(ctx, ep, true, opt.Checkers, dial)
	if err != nil {
		return err
	}
	defer t.close()
	// Counted for the summary, as the listing streams: what goes with
	// the path.
	files, dirs := int64(1), int64(0)
	if top.Type == plan.TypeDir {
		files, dirs = 0, 1
		err := t.each(ctx, func(e plan.Entry) error {
			if e.Type == plan.TypeDir {
				dirs++
			} else {
				files++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	shown := cmp.Or(plan.Base(t.path), ep.Path)
	if opt.DryRun {
		tally.Merge(progress.Summary{FilesDeleted: files, DirsRemoved: dirs})
		sink.Emit(progress.Event{Event: progress.KindDelete, Path: shown, Action: "purge", DryRun: true})
		return nil
	}
	errs, err := t.d.Meta(ctx, []wire.MetaOp{{Op: "delete", Path: t.path}})
	if err != nil {
		return fmt.Errorf("purge %s: %w", t.name, err)
	}
	if len(errs) == 1 && errs[0] != "" {
		e := progress.Event{Event: progress.KindError, Path: shown, Error: errs[0]}
		tally.Record(e)
		sink.Emit(e)
		return nil
	}
	tally.Merge(progress.Summary{FilesDeleted: files, DirsRemoved: dirs})
	sink.Emit(progress.Event{Event: progress.KindNotice, Msg: fmt.Sprintf("purged %s", ep)})
	return nil
}

// openExisting opens ep as openTree does and stats its path, which must
// exist.
func openExisting(ctx context.Context, ep Endpoint, whole bool, checkers int, dial session.DialOptions) (*tree, *plan.Entry, error) {
	t, err := openTree(ctx, ep, whole, checkers, dial)
	if err != nil {
		return nil, nil, err
	}
	top, err := t.d.Stat(ctx, t.path)
	if err == nil && top == nil {
		err = exitcode.Usagef("%s does not exist", ep)
	}
	if err != nil {
		t.close()
		return nil, nil, err
	}
	return t, top, nil
}

func newFilter(o *plan.FilterOptions) (*plan.Filter, error) {
	if o == nil {
		return nil, nil
	}
	f, err := plan.NewFilter(*o)
	if err != nil {
		return nil, exitcode.Usagef("filter: %v", err)
	}
	return f, nil
}

// RemoveMoved is a move's second half, after Run copied src into dst:
// each source file whose copy at dst is the same (size and mtime, or
// BLAKE3 with opt.Checksum) is removed, and nothing else; with
// opt.RmDirs the source directories left empty go too (never the top
// one). Its events go to sink and its counts into tally. Both listings
// stream (merge-joined as a sync compares them), and the removals go
// as they are decided.
func RemoveMoved(ctx context.Context, src, dst Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	flt, err := newFilter(opt.Filter)
	if err != nil {
		return err
	}
	st, stop, err := openExisting(ctx, src, false, opt.Checkers, dial)
	if err != nil {
		return err
	}
	defer st.close()
	// The one file, under the name it has at the destination.
	name := cmp.Or(opt.DstName, plan.Base(st.path))
	slist := st.listing(ctx, stop, name)
	if opt.DryRun {
		// Nothing was copied: each file selected would be, and would go.
		r := newRemover(st, stop, true, opt.RmDirs, false, sink, tally)
		return r.removeChosen(ctx, slist, func(e plan.Entry) bool {
			return flt.Match(e) && e.Type != plan.TypeOther && e.Err == "" // else not copied: stays
		}, progress.KindSourceRemoved)
	}
	dt, err := openTree(ctx, dst, false, opt.Checkers, dial)
	if err != nil {
		return err
	}
	defer dt.close()
	dpath := dt.path
	if stop.Type == plan.TypeDir && opt.DstName != "" {
		dpath = plan.Join(dpath, opt.DstName)
	} else if stop.Type != plan.TypeDir {
		dpath = plan.Join(dpath, name)
	}
	// SRC and DST may be one directory reached two ways (a peer serving
	// the source itself): removing would lose the only copy.
	if de, err := dt.d.Stat(ctx, dpath); err == nil && de != nil && de.Ino != 0 && de.Ino == stop.Ino && de.Dev == stop.Dev {
		what, there := "directory", dst.String()
		if stop.Type != plan.TypeDir {
			what, there = "file", strings.TrimSuffix(there, "/")+"/"+name
		}
		return exitcode.Usagef("%s and %s are the same %s, reached two ways: nothing was removed from the source", src, there, what)
	}
	dlist, err := counterpart(ctx, dt, dpath, stop.Type == plan.TypeDir)
	if err != nil {
		return err
	}
	srcPath := func(p string) string {
		if stop.Type != plan.TypeDir {
			return st.path
		}
		return plan.Join(st.path, p)
	}
	dstPath := func(p string) string {
		if stop.Type != plan.TypeDir {
			return dpath
		}
		return plan.Join(dpath, p)
	}
	dopt := plan.DiffOptions{
		Checksum: opt.Checksum,
		SrcDigest: func(ctx context.Context, e plan.Entry) ([]byte, error) {
			d, err := st.d.Hash(ctx, srcPath(e.Path))
			return d[:], err
		},
		DstDigest: func(ctx context.Context, e plan.Entry) ([]byte, error) {
			d, err := dt.d.Hash(ctx, dstPath(e.Path))
			return d[:], err
		},
	}
	r := newRemover(st, stop, false, opt.RmDirs, true, sink, tally)
	w := &watched{l: slist, flt: flt, r: r}
	err = flt.Diff(ctx, w, dlist, dopt, func(op plan.Op) error {
		a, ok := w.take(op.Src.Path)
		switch {
		case !ok:
		case a.dir != nil:
			// A directory the rules pass goes once nothing beneath it
			// stays.
			r.decideDir(a.dir, op.Src.Err == "")
		case op.Src.Err != "" || op.Reason == plan.ReasonUnsupported || !flt.Match(op.Src):
			r.keep(a.in)
		case op.Dst == nil || (op.Kind != plan.OpSkip && op.Kind != plan.OpSetAttrs):
			// Not the same content at the destination (its mode may
			// differ: a peer's umask).
			r.keep(a.in)
		default:
			// Only the version that was compared goes.
			m := wire.MetaOp{Op: "remove", Path: srcPath(op.Src.Path)}
			if op.Src.Type == plan.TypeFile {
				m.Unchanged = &wire.Unchanged{Size: op.Src.Size, MtimeNs: op.Src.MtimeNs}
			}
			r.remove(a.in, m, op.Src.Path, progress.KindSourceRemoved)
		}
		return r.flush(ctx, false)
	})
	if w.err != nil {
		return w.err // as the listing said it
	}
	if err != nil {
		return err
	}
	w.take("") // any left without an Op stay
	return r.finish(ctx)
}

// watched is the source listing of a move's removal as Diff reads it:
// each entry takes its place in r's chain of directories as it is read;
// those Diff decides on (with an Op of their own) wait in awaiting, in
// order, the others stay.
type watched struct {
	l        plan.Lister
	flt      *plan.Filter
	r        *remover
	awaiting []awaited
	err      error // the listing's own
}

// awaited is an entry waiting for its Op: the directory it lies in and
// the one it is (nil: not a directory).
type awaited struct {
	path    string
	in, dir *dirState
}

func (w *watched) Next(ctx context.Context) (plan.Entry, error) {
	e, err := w.l.Next(ctx)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			w.err = err
		}
		return e, err
	}
	in, dir := w.r.enter(e)
	switch {
	case !w.flt.Lists(e):
		// Diff never sees it: it stays, and so does what lies beneath.
		if dir != nil {
			w.r.decideDir(dir, false)
		} else {
			w.r.keep(in)
		}
	case dir == nil && e.Err != "":
		w.r.keep(in) // Diff has no Op for it
	default:
		w.awaiting = append(w.awaiting, awaited{path: e.Path, in: in, dir: dir})
	}
	return e, nil
}

// SkipDir passes plan.DirSkipper on to the listing, when it has it.
func (w *watched) SkipDir() {
	if s, ok := w.l.(plan.DirSkipper); ok {
		s.SkipDir()
	}
}

// take returns the entry at p waiting for its Op; those before it that
// Diff passed over stay.
func (w *watched) take(p string) (awaited, bool) {
	for len(w.awaiting) > 0 {
		a := w.awaiting[0]
		w.awaiting = w.awaiting[1:]
		if a.path == p {
			return a, true
		}
		if a.dir != nil {
			w.r.decideDir(a.dir, false)
		} else {
			w.r.keep(a.in)
		}
	}
	return awaited{}, false
}

// counterpart lists dpath at dt: the tree beneath it (dir), or the one
// entry there, named as in the source listing.
func counterpart(ctx context.Context, dt *tree, dpath string, dir bool) (plan.Lister, error) {
	if dir {
		return dt.d.List(ctx, dpath, false), nil
	}
	e, err := dt.d.Stat(ctx, dpath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dt.name, err)
	}
	var es []plan.Entry
	if e != nil {
		e.Path = plan.Base(dpath)
		es = append(es, *e)
	}
	return &plan.SliceLister{Entries: es}, nil
}
