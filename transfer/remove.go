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
	"sort"
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

// entries lists everything beneath t.path (relative paths, Compare
// order); a path that is not a directory lists as itself.
func (t *tree) entries(ctx context.Context, top *plan.Entry) ([]plan.Entry, error) {
	if top.Type != plan.TypeDir {
		e := *top
		e.Path = plan.Base(t.path)
		return []plan.Entry{e}, nil
	}
	var out []plan.Entry
	err := t.each(ctx, func(e plan.Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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

// remover issues removals in batches and reports each as an event.
type remover struct {
	t      *tree
	dryRun bool
	sink   progress.Sink
	tally  *progress.Tally
	ops    []wire.MetaOp
	shown  []string
	kinds  []string
	// gone holds the paths (as listed) whose removal was done, or would
	// be in a dry run.
	gone map[string]bool
}

func newRemover(t *tree, dryRun bool, sink progress.Sink, tally *progress.Tally) *remover {
	return &remover{t: t, dryRun: dryRun, sink: sink, tally: tally, gone: map[string]bool{}}
}

func (r *remover) emit(e progress.Event) {
	r.tally.Record(e)
	r.sink.Emit(e)
}

// add queues the removal of full (op "remove" or "delete"), listed as
// shown, reported as an event of kind.
func (r *remover) add(ctx context.Context, op, full, shown, kind string) error {
	return r.addOp(ctx, wire.MetaOp{Op: op, Path: full}, shown, kind)
}

// addOp is add for an operation of any kind.
func (r *remover) addOp(ctx context.Context, op wire.MetaOp, shown, kind string) error {
	if r.dryRun {
		r.gone[shown] = true
		r.emit(progress.Event{Event: kind, Path: shown, Action: action(kind), DryRun: true})
		return nil
	}
	r.ops = append(r.ops, op)
	r.shown = append(r.shown, shown)
	r.kinds = append(r.kinds, kind)
	if len(r.ops) >= wire.MaxReqItems {
		return r.flush(ctx)
	}
	return nil
}

// flush sends the queued removals; one refused is an error event, and
// the run goes on.
func (r *remover) flush(ctx context.Context) error {
	if len(r.ops) == 0 {
		return nil
	}
	errs, err := r.t.d.Meta(ctx, r.ops)
	if err != nil {
		return fmt.Errorf("removing in %s: %w", r.t.name, err)
	}
	for i, msg := range errs {
		if msg != "" {
			r.emit(progress.Event{Event: progress.KindError, Path: r.shown[i], Error: msg})
			continue
		}
		r.gone[r.shown[i]] = true
		r.emit(progress.Event{Event: r.kinds[i], Path: r.shown[i]})
	}
	r.ops, r.shown, r.kinds = r.ops[:0], r.shown[:0], r.kinds[:0]
	return nil
}

// pruneDirs removes the directories of all (a listing, Compare order)
// that hold nothing any more, deepest first; keep says whether a listed
// directory must stay whatever it holds.
func (r *remover) pruneDirs(ctx context.Context, top *plan.Entry, all []plan.Entry, keep func(plan.Entry) bool) error {
	occupied := map[string]bool{}
	var dirs []string
	for _, e := range all {
		if e.Type == plan.TypeDir && !keep(e) && e.Err == "" {
			dirs = append(dirs, e.Path)
			continue
		}
		if e.Type == plan.TypeDir || !r.gone[e.Path] {
			occupied[e.Path] = true
			for d := plan.Dir(e.Path); d != ""; d = plan.Dir(d) {
				occupied[d] = true
			}
		}
	}
	depth := func(p string) int { return strings.Count(p, "/") }
	sort.SliceStable(dirs, func(i, j int) bool { return depth(dirs[i]) > depth(dirs[j]) })
	// One request per depth, deepest first: a parent is tried once its
	// children's removals are settled.
	for len(dirs) > 0 {
		n := 1
		for n < len(dirs) && depth(dirs[n]) == depth(dirs[0]) {
			n++
		}
		level := dirs[:n]
		dirs = dirs[n:]
		for _, d := range level {
			if !occupied[d] {
				if err := r.add(ctx, "remove", r.t.full(top, d), d, progress.KindRmdir); err != nil {
					return err
				}
			}
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
		for _, d := range level {
			if !r.gone[d] {
				for p := plan.Dir(d); p != ""; p = plan.Dir(p) {
					occupied[p] = true
				}
			}
		}
	}
	return nil
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
	flt, t, top, all, err := openFiltered(ctx, ep, opt, dial)
	if err != nil {
		return err
	}
	defer t.close()
	return newRemover(t, opt.DryRun, sink, tally).removeChosen(ctx, top, all, selected(flt, all), progress.KindDelete, opt.RmDirs)
}

// removeChosen removes every entry of all (a listing of top) that chosen
// holds, directories aside, reporting each as an event of kind; an entry
// the listing could not read is an error. With rmDirs the directories
// then left empty go too, never top.
func (r *remover) removeChosen(ctx context.Context, top *plan.Entry, all []plan.Entry, chosen map[string]bool, kind string, rmDirs bool) error {
	for _, e := range all {
		if e.Type == plan.TypeDir || !chosen[e.Path] {
			continue
		}
		if e.Err != "" {
			r.emit(progress.Event{Event: progress.KindError, Path: e.Path, Error: e.Err})
			continue
		}
		if err := r.add(ctx, "remove", r.t.full(top, e.Path), e.Path, kind); err != nil {
			return err
		}
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	if rmDirs && top.Type == plan.TypeDir {
		return r.pruneDirs(ctx, top, all, func(e plan.Entry) bool { return !chosen[e.Path] })
	}
	return nil
}

// selected is the set of paths of all that flt passes, rules and limits
// (everything when flt is nil).
func selected(flt *plan.Filter, all []plan.Entry) map[string]bool {
	out := make(map[string]bool, len(all))
	for _, e := range all {
		if flt.Match(e) {
			out[e.Path] = true
		}
	}
	return out
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

// openListed is openExisting with the listing of what is there.
func openListed(ctx context.Context, ep Endpoint, whole bool, checkers int, dial session.DialOptions) (*tree, *plan.Entry, []plan.Entry, error) {
	t, top, err := openExisting(ctx, ep, whole, checkers, dial)
	if err != nil {
		return nil, nil, nil, err
	}
	all, err := t.entries(ctx, top)
	if err != nil {
		t.close()
		return nil, nil, nil, err
	}
	return t, top, all, nil
}

// openFiltered is openListed (not whole) with opt's filter.
func openFiltered(ctx context.Context, ep Endpoint, opt RemoveOptions, dial session.DialOptions) (*plan.Filter, *tree, *plan.Entry, []plan.Entry, error) {
	flt, err := newFilter(opt.Filter)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	t, top, all, err := openListed(ctx, ep, false, opt.Checkers, dial)
	return flt, t, top, all, err
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
// one). Its events go to sink and its counts into tally.
func RemoveMoved(ctx context.Context, src, dst Endpoint, opt RemoveOptions, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	flt, st, stop, all, err := openFiltered(ctx, src, opt, dial)
	if err != nil {
		return err
	}
	defer st.close()
	if stop.Type != plan.TypeDir {
		// The one file, under the name it has at the destination.
		all[0].Path = cmp.Or(opt.DstName, plan.Base(st.path))
	}
	r := newRemover(st, opt.DryRun, sink, tally)
	if opt.DryRun {
		// Nothing was copied: each file selected would be, and would go.
		return r.wouldMove(ctx, flt, stop, all, opt.RmDirs)
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
		dpath = plan.Join(dpath, all[0].Path)
	}
	// SRC and DST may be one directory reached two ways (a peer serving
	// the source itself): removing would lose the only copy.
	if de, err := dt.d.Stat(ctx, dpath); err == nil && de != nil && de.Ino != 0 && de.Ino == stop.Ino && de.Dev == stop.Dev {
		what, there := "directory", dst.String()
		if stop.Type != plan.TypeDir {
			what, there = "file", strings.TrimSuffix(there, "/")+"/"+all[0].Path
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
	chosen := map[string]bool{}
	err = flt.Diff(ctx, &plan.SliceLister{Entries: all}, dlist, dopt, func(op plan.Op) error {
		chosen[op.Src.Path] = true
		if op.Src.Type == plan.TypeDir || op.Src.Err != "" || op.Reason == plan.ReasonUnsupported || !flt.Match(op.Src) {
			return nil
		}
		// The same content at the destination (its mode may differ: a
		// peer's umask).
		if op.Dst == nil || (op.Kind != plan.OpSkip && op.Kind != plan.OpSetAttrs) {
			return nil
		}
		// Only the version that was compared goes.
		m := wire.MetaOp{Op: "remove", Path: srcPath(op.Src.Path)}
		if op.Src.Type == plan.TypeFile {
			m.Unchanged = &wire.Unchanged{Size: op.Src.Size, MtimeNs: op.Src.MtimeNs}
		}
		return r.addOp(ctx, m, op.Src.Path, progress.KindSourceRemoved)
	})
	if err != nil {
		return err
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	if stop.Type != plan.TypeDir {
		return nil
	}
	if opt.RmDirs {
		if err := r.pruneDirs(ctx, stop, all, func(e plan.Entry) bool { return !chosen[e.Path] }); err != nil {
			return err
		}
	}
	return r.restoreDirs(ctx, stop, all)
}

// restoreDirs gives the source directories that removals changed their
// listed mtimes back, so that they still match their copies at the
// destination and the next run has nothing to do.
func (r *remover) restoreDirs(ctx context.Context, top *plan.Entry, all []plan.Entry) error {
	changed := map[string]bool{}
	for p := range r.gone {
		changed[plan.Dir(p)] = true
	}
	if len(changed) == 0 {
		return nil
	}
	var ops []wire.MetaOp
	for _, e := range append([]plan.Entry{{Path: "", Type: plan.TypeDir, Mode: top.Mode, MtimeNs: top.MtimeNs}}, all...) {
		if e.Type == plan.TypeDir && changed[e.Path] && !r.gone[e.Path] {
			ops = append(ops, wire.MetaOp{Op: "setattrs", Path: r.t.full(top, e.Path), Mode: e.Mode, MtimeNs: e.MtimeNs})
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), wire.MaxReqItems)
		errs, err := r.t.d.Meta(ctx, ops[:n])
		if err != nil {
			return fmt.Errorf("restoring directory times in %s: %w", r.t.name, err)
		}
		for i, msg := range errs {
			if msg != "" {
				r.emit(progress.Event{Event: progress.KindNotice, Path: ops[i].Path, Msg: msg})
			}
		}
		ops = ops[n:]
	}
	if _, _, err := r.t.d.Finish(ctx); err != nil {
		return fmt.Errorf("restoring directory times in %s: %w", r.t.name, err)
	}
	return nil
}

// wouldMove says what a move's removal would remove: every entry of all
// that flt selects and the copy would carry, then (rmDirs) the
// directories left empty.
func (r *remover) wouldMove(ctx context.Context, flt *plan.Filter, top *plan.Entry, all []plan.Entry, rmDirs bool) error {
	chosen := selected(flt, all)
	for _, e := range all {
		if e.Type == plan.TypeOther || e.Err != "" {
			delete(chosen, e.Path) // not copied: stays
		}
	}
	return r.removeChosen(ctx, top, all, chosen, progress.KindSourceRemoved, rmDirs)
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
