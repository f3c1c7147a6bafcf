package send

import (
	"context"

	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/wire"

	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/idmap"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
)

// chunkAttempts is how often a chunk is sent before its file fails.
const chunkAttempts = 3

// smallLimit: files up to this size travel whole in batches.
const smallLimit = 1 << 20

// batchTarget is the payload size at which a batch is sent.
const batchTarget = 1 << 20

type engine struct {
	src     *fsroot.Root
	srcPath string
	dst     Destination
	dstPath string
	opt     wire.Options
	sink    progress.Sink
	tally   *progress.Tally

	ctx    context.Context
	cancel context.CancelCauseFunc

	nextFID atomic.Uint64
	errors  atomic.Int64
	wg      sync.WaitGroup // outstanding files
	bigSem  chan struct{}
	chunkCh chan *chunkJob
	bufs    sync.Pool

	flying inflight // files on their way, listed in progress events
	// listed is set once the walk of the source is complete (the
	// progress totals are final).
	listed atomic.Bool

	metaMu  sync.Mutex
	metaOps []wire.MetaOp
	metaOf  []plan.Op
	deletes pathList // extra destination entries, deleted after the transfers
	// srcSeen counts the source entries the plan met (any op but a
	// delete): the empty-source guard's figure (the plan is visited by
	// one goroutine).
	srcSeen int64
	// delDirs are the directories among the deletions (their contents
	// count towards --max-delete).
	delDirs []string
	// links maps a multiply-linked source inode to the path at the
	// destination that the other names of it are linked to; later paths
	// become hard links (applied after transfers).
	links     map[[2]uint64]linkAnchor
	linkOps   []plan.Op
	linkNames []string
	// shares is the share policy of a cluster transfer's share or final
	// pass (plan.Shares; its Count is 0 in any other run).
	shares plan.Shares

	// names maps source owners and groups to names (--owners);
	// unsupported counts special files skipped (--specials=false).
	names       idmap.Map
	unsupported atomic.Int64

	// flushFirst: a queued mkdir replaces a file or symlink, or enters a
	// read-only directory; it goes out before the next file is sent.
	flushFirst bool

	// xattrs is the pass of -X and -A (xattrs.go).
	xattrs xattrPass

	// srcName is the single source file's own name when it lands under
	// another (opt.DstName: copyto, moveto); "" otherwise.
	srcName string
	// budget is --max-transfer (budget.go).
	budget *budget
}

// srcRel is the source path, beneath the source top, of the entry at p
// in the plan: p itself, or the file's own name for the one that lands
// under opt.DstName.
func (e *engine) srcRel(p string) string {
	if e.srcName != "" && p == e.opt.DstName {
		return e.srcName
	}
	return p
}

// srcFile is srcRel joined to the source top.
func (e *engine) srcFile(top, p string) string { return plan.Join(top, e.srcRel(p)) }

// Run transfers the tree (or single file) at srcPath beneath src into
// dstPath at dst, emitting events to sink, and returns the summary. A
// non-nil error means the run could not complete; per-file failures are
// counted in the summary and reported as an exitcode.Partial error.
func Run(ctx context.Context, src *fsroot.Root, srcPath string, dst Destination, dstPath string, opt wire.Options, sink progress.Sink, tally *progress.Tally) error {
	if err := opt.Validate(); err != nil {
		return err // a job from a peer is checked as a user's flags are
	}
	opt = opt.WithDefaults()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e := &engine{src: src, srcPath: srcPath, dst: dst, dstPath: dstPath, opt: opt, sink: sink, tally: tally,
		ctx: ctx, cancel: cancel, bigSem: make(chan struct{}, opt.Transfers), chunkCh: make(chan *chunkJob, 64)}
	e.budget = newBudget(opt)
	e.shares = plan.Shares{Split: opt.SplitShares, ChunkSize: opt.ChunkSize, HardLinks: opt.HardLinks, Delta: opt.Delta}
	if sh := opt.Shard; sh != nil {
		e.shares.Index, e.shares.Count = sh.Index, sh.Count
	}
	if opt.DryRun {
		tally.SetDryRun()
	}
	stopProgress := e.progressLoop()
	defer stopProgress()
	err := e.run()
	if err == nil {
		if cerr := context.Cause(ctx); cerr != nil && ctx.Err() != nil {
			err = cerr
		}
	}
	return err
}

func (e *engine) progressLoop() func() {
	done := make(chan struct{})
	t := time.NewTicker(200 * time.Millisecond)
	go func() {
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.sink.Emit(e.progress())
			}
		}
	}()
	return func() { close(done); e.sink.Emit(e.progress()) }
}

// progress is a progress event: the tally's counters, whether the listing
// is still going on, and the files in flight.
func (e *engine) progress() progress.Event {
	ev := e.tally.Progress()
	ev.Listing = !e.listed.Load()
	ev.InFlight = e.flying.snapshot(progress.MaxInFlight)
	return ev
}

func (e *engine) emit(ev progress.Event) {
	e.tally.Record(ev)
	e.sink.Emit(ev)
}

// fileError reports that the file at path failed, for a reason the
// destination or the source gave (msg).
func (e *engine) fileError(path string, msg string) {
	e.errors.Add(1)
	e.emit(progress.Event{Event: progress.KindError, Path: path, Error: msg})
}

// stopping reports whether the run is ending before its work is done: it
// was cancelled (a signal, --max-duration) or the session to its
// destination is gone (a lost connection, which Run may retry).
func (e *engine) stopping() bool {
	if e.ctx.Err() != nil {
		return true
	}
	return e.dst.Gone()
}

// fileFailed settles a file that could not be done because of err: an
// error of its own, or (when the run is stopping) not an error at all but
// work left for the next run, which is not reported file by file: the
// run's end says once why it stopped.
func (e *engine) fileFailed(path string, err error) {
	if e.stopping() {
		return
	}
	e.fileError(path, err.Error())
}

func (e *engine) run() error {
	defer e.deletes.close()
	defer e.xattrs.paths.close()
	info, err := e.src.Lstat(e.srcPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return exitcode.Usagef("source %s does not exist", displayPath(e.srcPath))
		}
		return exitcode.Usagef("source %s: %v", displayPath(e.srcPath), err)
	}
	if info.Type == fsroot.TypeSymlink {
		// A source that is a symlink to a directory is followed, within
		// the tree (only this link: those inside stay links).
		if p, err := plan.FollowLinks(e.ctx, e.srcPath, plan.RootStat(e.src)); err == nil {
			if t, err := e.src.Lstat(p); err == nil && t.Type == fsroot.TypeDir {
				e.srcPath, info = p, t
			}
		}
	}
	if e.opt.DstName != "" && info.Type == fsroot.TypeDir {
		// copyto, moveto of a directory: its contents become DstName's.
		e.dstPath = plan.Join(e.dstPath, e.opt.DstName)
	}
	if e.dstPath != "" {
		// So is a destination that is one, as on this machine.
		if e.dstPath, err = plan.FollowLinks(e.ctx, e.dstPath, e.dst.Stat); err != nil {
			return err
		}
	}
	var srcList, dstList plan.Lister
	var walkers []*plan.Walker // the source's, whose reads the summary counts
	defer func() {
		var n int64
		for _, w := range walkers {
			n += w.DirsRead()
		}
		e.tally.Merge(progress.Summary{DirsRead: n})
	}()
	srcTop := e.srcPath
	if e.opt.Unit != nil && info.Type != fsroot.TypeDir {
		return exitcode.Usagef("source %s: a unit of a distributed walk needs a directory", displayPath(e.srcPath))
	}
	if info.Type == fsroot.TypeDir && e.opt.Unit == nil {
		w := plan.NewWalkerN(e.src, e.srcPath, e.opt.Checkers)
		walkers = append(walkers, w)
		srcList = w
	} else if info.Type != fsroot.TypeDir {
		// A single file lands inside the destination directory.
		name := plan.Base(e.srcPath)
		if name == "" {
			return exitcode.Usagef("source %s: not a file or directory", e.srcPath)
		}
		srcTop = plan.Dir(e.srcPath)
		if e.opt.DstName != "" {
			// copyto, moveto: the file lands under another name.
			e.srcName, name = name, e.opt.DstName
		}
		en := plan.EntryFromInfo(name, info)
		if en.Type == plan.TypeSymlink {
			if en.Target, err = e.src.Readlink(e.srcPath); err != nil {
				return fmt.Errorf("readlink %s: %w", e.srcPath, err)
			}
		}
		srcList = &plan.SliceLister{Entries: []plan.Entry{en}}
		de, err := e.dst.Stat(e.ctx, plan.Join(e.dstPath, name))
		if err != nil {
			return err
		}
		var des []plan.Entry
		if de != nil {
			de.Path = name
			des = append(des, *de)
		}
		dstList = &plan.SliceLister{Entries: des}
	}
	if !e.opt.DryRun {
		if err := e.dst.Mkroot(e.ctx, e.dstPath, e.opt.Lock); err != nil {
			return err
		}
		if err := e.unitRoots(); err != nil {
			return err
		}
		if info.Type == fsroot.TypeDir && e.opt.Shard == nil && e.unitHasTop() {
			if err := e.topAttrs(info); err != nil {
				return err
			}
			if err := e.noteXattrs(plan.Op{Kind: plan.OpMkdir, Src: plan.Entry{Type: plan.TypeDir}}); err != nil {
				return err
			}
		}
	}
	if dstList == nil && e.opt.Unit == nil {
		dstList = e.protectBackups(e.dst.List(e.ctx, e.dstPath, false))
		srcList = e.protectBackups(srcList)
	}
	dopt := plan.DiffOptions{
		Checksum:       e.opt.Checksum,
		Delete:         e.opt.Delete,
		DeleteExcluded: e.opt.DeleteExcluded,
		Update:         e.opt.Update,
		IgnoreExisting: e.opt.IgnoreExisting,
		SizeOnly:       e.opt.SizeOnly,
		Owners:         e.keepsOwners(),
		Specials:       !e.opt.NoSpecials,
		Unreadable:     e.unreadable,
		SrcDigest: func(ctx context.Context, en plan.Entry) ([]byte, error) {
			d, err := e.hashSrc(ctx, e.srcFile(srcTop, en.Path))
			return d[:], err
		},
		DstDigest: func(ctx context.Context, en plan.Entry) ([]byte, error) {
			d, err := e.dst.Hash(ctx, plan.Join(e.dstPath, en.Path))
			return d[:], err
		},
	}

	lanes := e.dst.Lanes()
	if e.opt.BwLimit > 0 {
		lanes = limitLanes(e.ctx, lanes, e.opt.BwLimit, max(e.opt.ChunkSize, batchTarget+smallLimit))
	}
	smallCh := make(chan plan.Op, 256)
	bigCh := make(chan plan.Op, 16)
	var workers sync.WaitGroup
	if !e.opt.DryRun {
		for i := range lanes {
			workers.Add(2)
			go func(l Lane) { defer workers.Done(); e.smallWorker(l, srcTop, smallCh) }(lanes[i])
			go func(l Lane) { defer workers.Done(); e.chunkSender(l) }(lanes[i])
		}
	}
	var bigWG sync.WaitGroup
	bigWG.Add(1)
	go func() {
		defer bigWG.Done()
		for op := range bigCh {
			e.startBig(op, srcTop)
		}
	}()

	var flt *plan.Filter // nil passes everything
	if e.opt.Filter != nil {
		var err error
		if flt, err = plan.NewFilter(*e.opt.Filter); err != nil {
			return exitcode.Usagef("filter: %v", err)
		}
	}
	carry := func(op plan.Op) error { return e.dispatch(op, smallCh, bigCh) }
	if e.opt.DryRun {
		carry = e.printPlan // the plan, as the run would carry it out
	}
	visit := func(op plan.Op) error {
		if e.holdsBackups(op) {
			return e.keepBackups(op)
		}
		switch {
		case op.Kind != plan.OpDelete:
			e.srcSeen++
		default:
			if op.Src.Type == plan.TypeDir {
				e.delDirs = append(e.delDirs, op.Src.Path)
			}
		}
		return carry(op)
	}
	var derr error
	if u := e.opt.Unit; u != nil {
		// A unit of a distributed walk: each of its directories, alone or
		// with its subtree, diffed in turn, paths as a whole walk's.
		// realDirs are the destination's directories the shallow listings
		// met (a parent's comes before its children's): a directory the
		// destination has as something else, or through a symlink, lists
		// empty, as the whole walk does not descend into it.
		realDirs := map[string]bool{"": true}
		for _, ud := range u.Dirs {
			d := ud.Path
			var w *plan.Walker
			var dl plan.Lister
			if u.Shallow {
				w = plan.NewShallowWalker(e.src, plan.Join(e.srcPath, d), e.opt.Checkers)
				dl = &plan.SliceLister{}
				if realDirs[d] {
					dl = noteDirs(e.dst.ListDir(e.ctx, plan.Join(e.dstPath, d)), d, realDirs)
				}
			} else {
				w = plan.NewWalkerN(e.src, plan.Join(e.srcPath, d), e.opt.Checkers)
				dl = e.dst.List(e.ctx, plan.Join(e.dstPath, d), false)
			}
			walkers = append(walkers, w)
			var src plan.Lister = w
			if u.Shallow && realDirs[d] && e.opt.Shard == nil && flt.Protects(dopt) {
				if src, dl, derr = e.withDeletedDirs(w, dl, d); derr != nil {
					break
				}
			}
			sl := e.protectBackups(plan.Prefixed(src, d))
			dl = e.protectBackups(plan.Prefixed(dl, d))
			if derr = flt.Diff(e.ctx, sl, dl, dopt, visit); derr != nil {
				break
			}
		}
	} else {
		derr = flt.Diff(e.ctx, srcList, dstList, dopt, visit)
	}
	if errors.Is(derr, errMaxTransfer) {
		derr = nil // what was started finishes, and the run ends as usual but for deletions
	}
	e.listed.Store(true)
	close(smallCh)
	close(bigCh)
	bigWG.Wait()
	e.wg.Wait() // every file has its verdict
	close(e.chunkCh)
	workers.Wait()
	if derr != nil {
		if ctxErr := context.Cause(e.ctx); ctxErr != nil && e.ctx.Err() != nil {
			return ctxErr
		}
		return derr
	}
	if err := e.ctx.Err(); err != nil {
		return context.Cause(e.ctx)
	}
	if e.opt.DryRun {
		return e.printDeletes()
	}
	if err := e.flushMeta(); err != nil {
		return err
	}
	for i, op := range e.linkOps {
		if ok, err := e.backupFirst(op); err != nil {
			return err
		} else if !ok {
			continue
		}
		if err := e.addMeta(op, wire.MetaOp{Op: "link", Path: plan.Join(e.dstPath, op.Src.Path),
			Target: plan.Join(e.dstPath, e.linkNames[i]), ReplaceDir: e.opt.ReplaceDirs}); err != nil {
			return err
		}
	}
	if err := e.flushMeta(); err != nil {
		return err
	}
	// A guard's refusal of the deletions ends the run with its exit code
	// once the rest of the run (attributes, directory times) is done.
	var refused error
	if e.deletes.len() > 0 {
		if e.budget.hit {
			e.sink.Emit(progress.Event{Event: progress.KindNotice,
				Msg: fmt.Sprintf("not deleting %d extra entries at the destination because the --max-transfer limit was reached", e.deletes.len())})
		} else if e.errors.Load() > 0 {
			e.sink.Emit(progress.Event{Event: progress.KindNotice,
				Msg: fmt.Sprintf("not deleting %d extra entries at the destination because there were errors", e.deletes.len())})
		} else if refused = e.deleteGuard(int64(e.deletes.len())); refused != nil {
			if exitcode.Code(refused) != exitcode.Refused {
				return refused
			}
		} else {
			err := e.deletes.each(func(p string) error {
				m := wire.MetaOp{Op: "delete", Path: plan.Join(e.dstPath, p)}
				if e.backups() {
					m = e.backupOp(p, false)
				}
				return e.addMeta(plan.Op{Kind: plan.OpDelete, Src: plan.Entry{Path: p}}, m)
			})
			if err != nil {
				return err
			}
			if err := e.flushMeta(); err != nil {
				return err
			}
		}
	}
	if err := e.syncXattrs(srcTop); err != nil {
		return err
	}
	made, rep, err := e.dst.Finish(e.ctx)
	if err != nil {
		return fmt.Errorf("finishing at the destination: %w", err)
	}
	e.reportOwners(rep)
	if e.opt.Shard != nil {
		// A share sends no mkdirs: the directories its files needed
		// were made at the destination, and count as this run's.
		e.tally.Merge(progress.Summary{DirsCreated: made})
	}
	if refused != nil {
		return refused
	}
	if e.budget.hit {
		return exitcode.WithCode(exitcode.MaxTransfer, fmt.Errorf(
			"stopped at the --max-transfer limit of %d bytes (--cutoff-mode %s) before the run was done", e.budget.limit, e.budget.mode))
	}
	return nil
}

// noteDirs lists what l lists (directory d's entries), recording in
// dirs the paths of the directories among them.
func noteDirs(l plan.Lister, d string, dirs map[string]bool) plan.Lister {
	return listerFunc(func(ctx context.Context) (plan.Entry, error) {
		en, err := l.Next(ctx)
		if err == nil && en.Type == plan.TypeDir {
			dirs[plan.Join(d, en.Path)] = true
		}
		return en, err
	})
}

// listerFunc is a plan.Lister of a function.
type listerFunc func(ctx context.Context) (plan.Entry, error)

// Next implements plan.Lister.
func (f listerFunc) Next(ctx context.Context) (plan.Entry, error) { return f(ctx) }

// unitHasTop reports whether the run covers the top directory's own
// entries (and so its attributes): a whole run, or a unit that reads the
// top alone.
func (e *engine) unitHasTop() bool {
	u := e.opt.Unit
	return u == nil || u.Shallow && slices.Contains(u.Dirs, wire.UnitDir{})
}

// unitRoots makes, at the destination, the directories of a unit that
// walks subtrees, and those above them, before anything lands in them
// (their attributes are their parents' units', as a directory's are set
// after its contents). What is in the way, a file or a symlink, goes, as
// the whole walk's mkdir would replace it: nothing is written through a
// symlink that the source has as a directory.
func (e *engine) unitRoots() error {
	u := e.opt.Unit
	if u == nil || u.Shallow || e.opt.Shard != nil {
		return nil
	}
	for _, ud := range u.Dirs {
		parts := strings.Split(ud.Path, "/")
		for i := range parts {
			d := strings.Join(parts[:i+1], "/")
			p := plan.Join(e.dstPath, d)
			de, err := e.dst.Stat(e.ctx, p)
			switch {
			case err != nil:
				return err
			case de == nil:
				if err := e.dst.Mkroot(e.ctx, plan.Join(e.dstPath, ud.Path), false); err != nil {
					return fmt.Errorf("making directory %s at the destination: %w", ud.Path, err)
				}
			case de.Type != plan.TypeDir:
				op := plan.Op{Kind: plan.OpMkdir, Src: plan.Entry{Path: d, Type: plan.TypeDir, Mode: 0o700}, Dst: de, Replace: true}
				if err := e.addMeta(op, wire.MetaOp{Op: "mkdir", Path: p, Mode: 0o700, ReplaceDir: true}); err != nil {
					return err
				}
				if err := e.flushMeta(); err != nil {
					return err
				}
				continue
			default:
				continue
			}
			break
		}
	}
	return nil
}

// topAttrs gives the destination directory the source directory's mode
// and mtime, as rsync -a src/ dst/ does, with the other directories at
// the end of the run; it goes out now so that a read-only destination
// directory is made writable before anything lands in it. (A destination
// that is a symlink to a directory was followed already.)
func (e *engine) topAttrs(info fsroot.Info) error {
	de, err := e.dst.Stat(e.ctx, e.dstPath)
	if err != nil || de == nil || de.Type != plan.TypeDir {
		return err
	}
	op := plan.Op{Kind: plan.OpMkdir, Src: plan.EntryFromInfo(".", info), Dst: de}
	if err := e.addMeta(op, wire.MetaOp{Op: "mkdir", Path: e.dstPath, Mode: info.Mode, MtimeNs: info.MtimeNs, Owner: e.ownerOf(op.Src)}); err != nil {
		return err
	}
	return e.flushMeta()
}

func displayPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func (e *engine) hashSrc(ctx context.Context, p string) (hashtree.Digest, error) {
	f, err := e.src.Open(p)
	if err != nil {
		return hashtree.Digest{}, err
	}
	defer f.Close()
	info, err := fsroot.InfoFromFile(f)
	if err != nil {
		return hashtree.Digest{}, err
	}
	d, err := hashtree.HashFile(ctx, f, info.Size, 0)
	return d, receive.ReadErr(err)
}

// deleteGuard refuses (exit 5) the n deletions a sync is about to make,
// all of them, when they are more than --max-delete allows, or when the
// source is empty and --allow-empty-source was not given: a source
// directory that is empty by accident (an unmounted file system, a
// wrong path) would otherwise empty the destination.
func (e *engine) deleteGuard(n int64) error {
	if n == 0 || (e.opt.MaxDelete == nil && (e.srcSeen > 0 || e.opt.AllowEmptySource)) {
		return nil
	}
	n, err := e.countDeletes(n)
	if err != nil {
		return err
	}
	would := ""
	if e.opt.DryRun {
		would = "would be "
	}
	if e.srcSeen == 0 && !e.opt.AllowEmptySource {
		return exitcode.Refusedf("refusing to delete %d entries at the destination: the source is empty (the empty-source guard; --allow-empty-source syncs it anyway); nothing %sdeleted",
			n, would)
	}
	if m := e.opt.MaxDelete; m != nil && n > *m {
		return exitcode.Refusedf("refusing to delete %d entries at the destination: more than --max-delete %d; nothing %sdeleted", n, *m, would)
	}
	return nil
}

// countDeletes is how many entries the n deletions of the plan remove:
// each deleted directory counts with everything beneath it, as rsync's
// --max-delete counts, listed at the destination once more.
func (e *engine) countDeletes(n int64) (int64, error) {
	for _, d := range e.delDirs {
		l := e.dst.List(e.ctx, plan.Join(e.dstPath, d), false)
		for {
			if _, err := l.Next(e.ctx); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return 0, fmt.Errorf("counting the deletions beneath %s: %w", d, err)
			}
			n++
		}
	}
	return n, nil
}

// unreadable reports an entry a walk could not read, once: the run goes
// on without it and ends with exit code 1, and (as with every error) a
// sync then deletes nothing.
func (e *engine) unreadable(en plan.Entry, dest bool) error {
	side := "source"
	if dest {
		side = "destination"
	}
	var msg string
	switch {
	case en.Type == plan.TypeDir && !dest:
		msg = fmt.Sprintf("cannot list source directory: %s (nothing beneath it is copied, or deleted at the destination)", en.Err)
	case en.Type == plan.TypeDir:
		msg = fmt.Sprintf("cannot list destination directory: %s (nothing beneath it is deleted)", en.Err)
	case !dest:
		msg = fmt.Sprintf("cannot read source symlink: %s (skipped)", en.Err)
	default:
		msg = fmt.Sprintf("cannot read %s %s: %s", side, en.Type, en.Err)
	}
	e.fileError(en.Path, msg)
	return nil
}

// dispatch routes one planned operation.
func (e *engine) dispatch(op plan.Op, smallCh, bigCh chan<- plan.Op) error {
	if err := e.ctx.Err(); err != nil {
		return context.Cause(e.ctx)
	}
	s := op.Src
	if e.opt.Shard != nil && !e.shares.Mine(op) {
		return nil
	}
	dp := plan.Join(e.dstPath, s.Path)
	if err := e.noteXattrs(op); err != nil {
		return err
	}
	switch op.Kind {
	case plan.OpSkip:
		if e.linked(op) {
			return nil
		}
		if op.Reason == plan.ReasonUnsupported {
			e.unsupported.Add(1) // one notice at the end
		}
		e.tally.Record(progress.Event{Event: progress.KindSkip})
	case plan.OpSpecial:
		if ok, err := e.backupFirst(op); err != nil || !ok {
			return err
		}
		return e.special(op, dp)
	case plan.OpMkdir:
		if ok, err := e.backupFirst(op); err != nil || !ok {
			return err
		}
		if err := e.addMeta(op, wire.MetaOp{Op: "mkdir", Path: dp, Mode: s.Mode, MtimeNs: s.MtimeNs, ReplaceDir: e.opt.ReplaceDirs, Owner: e.ownerOf(s)}); err != nil {
			return err
		}
		if op.Replace || (op.Dst != nil && op.Dst.Mode&0o300 != 0o300) {
			// Before a file goes out (on its own path, not through the
			// queue of metadata), the file or symlink in the way must be
			// gone, or the read-only directory made writable.
			e.flushFirst = true
		}
		return nil
	case plan.OpSymlink:
		if ok, err := e.backupFirst(op); err != nil || !ok {
			return err
		}
		return e.addMeta(op, wire.MetaOp{Op: "symlink", Path: dp, Target: s.Target, MtimeNs: s.MtimeNs, ReplaceDir: e.opt.ReplaceDirs, Owner: e.ownerOf(s)})
	case plan.OpSetAttrs:
		if e.linked(op) {
			return nil
		}
		e.tally.Record(progress.Event{Event: progress.KindSkip})
		return e.addMeta(op, wire.MetaOp{Op: "setattrs", Path: dp, Mode: s.Mode, MtimeNs: s.MtimeNs, Owner: e.ownerOf(s)})
	case plan.OpDelete:
		return e.deletes.add(s.Path)
	case plan.OpPut:
		if e.linked(op) {
			return nil
		}
		if ok, err := e.backupFirst(op); err != nil || !ok {
			return err
		}
		if e.flushFirst {
			e.flushFirst = false
			if err := e.flushMeta(); err != nil {
				return err
			}
		}
		small := s.Size <= smallLimit && s.Size <= e.opt.ChunkSize
		if !e.budget.admit(s.Path, s.Size, small) {
			return errMaxTransfer
		}
		if e.opt.Shard != nil && e.shares.Splits(op) {
			lo, hi := e.shares.Range(hashtree.NumChunks(s.Size, e.opt.ChunkSize))
			e.tally.AddPlanned(0, min(hi*e.opt.ChunkSize, s.Size)-lo*e.opt.ChunkSize)
		} else if e.shares.FinishesSplit(op) {
			// The shares planned (and count) the file's bytes.
			e.tally.AddPlanned(1, 0)
		} else {
			e.tally.AddPlanned(1, s.Size)
		}
		e.wg.Add(1)
		if small {
			smallCh <- op
		} else {
			bigCh <- op
		}
	}
	return nil
}

// linkAnchor is the name at the destination that carries a
// multiply-linked source inode: the first of its names in the walk whose
// file is transferred or already up to date there.
type linkAnchor struct {
	path   string
	dstIno uint64 // inode of the destination's up-to-date file; 0: transferred in this run
}

// linked handles, with --hard-links, a file op on one name of a source
// inode with several: the first such name is transferred (or kept) as
// usual and becomes the anchor; every later name is linked to the anchor
// after the transfers (an op queued here, and true returned), unless it
// already is the anchor's file at the destination. So a new name of an
// existing group joins the destination's copy, and separate copies at
// the destination are joined into one, as rsync -H does.
func (e *engine) linked(op plan.Op) bool {
	first, link := e.anchorFor(op)
	if link {
		e.linkOps = append(e.linkOps, op)
		e.linkNames = append(e.linkNames, first)
	}
	return link
}

// anchorFor decides for linked (and a dry run) whether op's name is to be
// linked to its group's anchor, and to which name.
func (e *engine) anchorFor(op plan.Op) (string, bool) {
	s := op.Src
	if !e.opt.HardLinks || s.Type != plan.TypeFile || s.Nlink < 2 {
		return "", false
	}
	// An up-to-date copy can anchor its group; a file skipped for another
	// reason (a size or age limit) cannot.
	current := op.Dst != nil && op.Dst.Type == plan.TypeFile &&
		((op.Kind == plan.OpSkip && op.Reason == "") || op.Kind == plan.OpSetAttrs)
	if op.Kind != plan.OpPut && !current {
		return "", false
	}
	k := [2]uint64{s.Dev, s.Ino}
	a, ok := e.links[k]
	if !ok {
		if e.links == nil {
			e.links = map[[2]uint64]linkAnchor{}
		}
		a = linkAnchor{path: s.Path}
		if current {
			a.dstIno = op.Dst.Ino
		}
		e.links[k] = a
		return "", false
	}
	if current && a.dstIno != 0 && op.Dst.Ino == a.dstIno {
		return "", false // already one file with the anchor
	}
	return a.path, true
}

func (e *engine) addMeta(op plan.Op, m wire.MetaOp) error {
	e.metaMu.Lock()
	e.metaOps = append(e.metaOps, m)
	e.metaOf = append(e.metaOf, op)
	full := len(e.metaOps) >= 256
	e.metaMu.Unlock()
	if full {
		return e.flushMeta()
	}
	return nil
}

func (e *engine) flushMeta() error {
	e.metaMu.Lock()
	ops, of := e.metaOps, e.metaOf
	e.metaOps, e.metaOf = nil, nil
	e.metaMu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	errs, err := e.dst.Meta(e.ctx, ops)
	if err != nil {
		return err
	}
	for i, msg := range errs {
		op := of[i]
		if msg != "" {
			e.fileError(op.Src.Path, msg)
			continue
		}
		switch ops[i].Op {
		case "mkdir":
			if op.Dst == nil || op.Replace {
				e.emit(progress.Event{Event: progress.KindMkdir, Path: op.Src.Path})
			}
		case "symlink":
			e.emit(progress.Event{Event: progress.KindSymlink, Path: op.Src.Path})
		case "delete":
			e.emit(progress.Event{Event: progress.KindDelete, Path: op.Src.Path})
		case "backup":
			if op.Kind == plan.OpDelete {
				e.emit(progress.Event{Event: progress.KindDelete, Path: op.Src.Path})
			}
		case "link":
			e.emit(progress.Event{Event: progress.KindTransfer, Path: op.Src.Path, Msg: "hard link to " + ops[i].Target})
		}
	}
	return nil
}

func (e *engine) getBuf(n int64) []byte {
	if b, ok := e.bufs.Get().(*[]byte); ok && int64(cap(*b)) >= n {
		return (*b)[:n]
	}
	c := e.opt.ChunkSize
	if c < batchTarget+smallLimit {
		c = batchTarget + smallLimit
	}
	if n > c {
		c = n
	}
	return make([]byte, n, c)
}

func (e *engine) putBuf(b []byte) { e.bufs.Put(&b) }

// readWhole reads a small source file and checks that it is the file the
// walk saw and did not change while it was read.
func (e *engine) readWhole(p string, want plan.Entry, dst []byte) ([]byte, error) {
	f, err := e.src.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	before, err := fsroot.InfoFromFile(f)
	if err != nil {
		return nil, err
	}
	n, err := io.ReadFull(f, dst[:want.Size])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	after, serr := fsroot.InfoFromFile(f)
	if serr != nil {
		return nil, serr
	}
	if int64(n) != want.Size || !sameSource(want, before) || fsroot.Unchanged(before, after) != nil {
		return nil, receive.ErrChanged
	}
	return dst[:n], nil
}

// sameSource reports whether info, taken once a source file is open,
// describes the file the walk listed as want: same inode, size and mtime.
func sameSource(want plan.Entry, info fsroot.Info) bool {
	return info.Size == want.Size && info.MtimeNs == want.MtimeNs && (want.Ino == 0 || info.Ino == want.Ino)
}

// smallReader reads small source files relative to a handle on their
// directory, kept while files come from the same one (as the walk hands
// them out), instead of resolving each whole path again.
type smallReader struct {
	e   *engine
	dir string
	d   *fsroot.Dir // nil: none open
}

func (s *smallReader) read(p string, want plan.Entry, dst []byte) ([]byte, error) {
	dir, name := plan.Dir(p), plan.Base(p)
	if s.d == nil || dir != s.dir {
		s.close()
		d, err := s.e.src.OpenDir(dir)
		if err != nil {
			return s.e.readWhole(p, want, dst) // reports the error as before
		}
		s.d, s.dir = d, dir
	}
	var listed *fsroot.Info
	if want.CtimeNs != 0 && want.Ino != 0 {
		// Listed by a local walk: one fstat after the read tells whether
		// the file is still the one listed, unchanged since.
		listed = &fsroot.Info{Size: want.Size, MtimeNs: want.MtimeNs, CtimeNs: want.CtimeNs, Ino: want.Ino, Dev: want.Dev}
	}
	n, info, err := s.d.ReadFile(name, dst[:want.Size], listed)
	if errors.Is(err, fsroot.ErrEscape) {
		return s.e.readWhole(p, want, dst) // a name Dir refuses, such as the root's own
	}
	if errors.Is(err, fsroot.ErrChanged) {
		return nil, receive.ErrChanged
	}
	if err != nil {
		return nil, err
	}
	if int64(n) != want.Size || !sameSource(want, info) {
		return nil, receive.ErrChanged
	}
	return dst[:n], nil
}

func (s *smallReader) close() {
	if s.d != nil {
		s.d.Close()
		s.d = nil
	}
}

// smallWorker reads small files, hashes them and sends them in batches.
func (e *engine) smallWorker(l Lane, srcTop string, in <-chan plan.Op) {
	var (
		payload = wire.Enc{Buf: e.getBuf(batchTarget + smallLimit)[:0]}
		ops     []plan.Op
		verify  = e.hashes()
		ats     []wire.SmallAt // where each file's digest and data are in payload
		hasher  hashtree.Many
		ins     [][]byte
		dgs     []hashtree.Digest
	)
	start := func() {
		payload.Buf = payload.Buf[:0]
		payload.U8(0) // reserved: the destination's session decides whether it verifies
		ops = nil
		ats = ats[:0]
	}
	start()
	// digests hashes the batch's files together and fills their digests in.
	digests := func() {
		ins, dgs = ins[:0], dgs[:0]
		for _, at := range ats {
			ins = append(ins, payload.Buf[at.Data:at.Data+at.Len])
			dgs = append(dgs, hashtree.Digest{})
		}
		hasher.Sum(ins, dgs)
		for i, at := range ats {
			copy(payload.Buf[at.Digest:], dgs[i][:])
		}
	}
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if verify {
			digests()
		}
		batch := ops
		key, _ := e.flying.add(batch[0].Src.Path, int64(len(payload.Buf)), len(batch))
		if err := l.Acquire(e.ctx); err != nil {
			e.flying.remove(key)
			e.failOps(batch, err)
			start()
			return
		}
		err := l.SendBatch(len(batch), payload.Buf, func(errs []string, err error) {
			l.Release()
			e.flying.remove(key)
			for i, op := range batch {
				msg := ""
				if i < len(errs) {
					msg = errs[i]
				} else if err == nil {
					msg = "no verdict from the destination"
				}
				if err != nil {
					e.fileFailed(op.Src.Path, err)
				} else if msg != "" {
					e.fileError(op.Src.Path, msg)
				} else {
					e.tally.AddBytes(op.Src.Size)
					e.tally.AddSent(op.Src.Size)
					e.emit(progress.Event{Event: progress.KindTransfer, Path: op.Src.Path, Bytes: op.Src.Size})
				}
				e.wg.Done()
			}
		})
		if err != nil {
			l.Release()
			e.flying.remove(key)
			e.failOps(batch, err)
		}
		start()
	}
	src := smallReader{e: e}
	defer src.close()
	for op := range in {
		if e.ctx.Err() != nil {
			e.wg.Done() // left for the next run
			continue
		}
		sf := wire.SmallFile{Path: plan.Join(e.dstPath, op.Src.Path), Mode: op.Src.Mode, MtimeNs: op.Src.MtimeNs,
			ReplaceDir: e.opt.ReplaceDirs, Sparse: op.Src.Blocks*512 < op.Src.Size, Owner: e.ownerOf(op.Src)}
		// The file is read straight into its place in the batch; the
		// digest follows in flush.
		at, err := wire.AppendSmallFill(&payload, &sf, int(op.Src.Size), func(dst []byte) error {
			_, err := src.read(e.srcFile(srcTop, op.Src.Path), op.Src, dst)
			return err
		})
		if err != nil {
			e.fileError(op.Src.Path, fsroot.Describe("read", op.Src.Path, err))
			e.wg.Done()
			continue
		}
		ats = append(ats, at)
		ops = append(ops, op)
		if len(payload.Buf) >= batchTarget || len(ops) >= 1024 {
			flush()
		}
		if len(in) == 0 && !e.waitMore(in) {
			flush() // nothing queued behind: do not hold files back
		}
	}
	flush()
}

// waitMore waits briefly for more work on in, so that a batch is not sent
// half empty just because the planner paused.
func (e *engine) waitMore(in <-chan plan.Op) bool {
	t := time.NewTimer(3 * time.Millisecond)
	defer t.Stop()
	for len(in) == 0 {
		select {
		case <-t.C:
			return false
		case <-e.ctx.Done():
			return false
		default:
			time.Sleep(200 * time.Microsecond)
		}
	}
	return true
}

// failOps settles the files of a batch that could not be sent (err).
func (e *engine) failOps(ops []plan.Op, err error) {
	for _, op := range ops {
		e.fileFailed(op.Src.Path, err)
		e.wg.Done()
	}
}

// sfile is a large file in flight.
type sfile struct {
	op        plan.Op
	fid       uint64
	w         FileWriter // the destination's, once the file is open
	f         *os.File
	opened    fsroot.Info // the source file when opened, to see it change meanwhile
	digests   []hashtree.Digest
	remaining atomic.Int64
	failed    atomic.Bool
	checks    atomic.Int64 // chunks of a resumed partial file still to hash here
	mu        sync.Mutex
	errMsg    string // the first failure of the file's own
	adopt     []wire.AdoptChunk
	part      bool // a share's range of a split file: parked, not committed
	cut       bool // cut at the --max-transfer limit: left partial for the next run
	fly       *flight
	flyKey    uint64
}

type chunkJob struct {
	sf    *sfile
	c     plan.Chunk
	tries int
	check bool // hash locally and offer for adoption instead of sending
	// theirs are the leaf digests of the destination's old bytes of the
	// chunk: send only the leaves that differ (nil: the whole chunk).
	theirs []hashtree.Digest
}

// startBig opens a large file at the destination and queues its chunks.
func (e *engine) startBig(op plan.Op, srcTop string) {
	s := op.Src
	select {
	case e.bigSem <- struct{}{}:
	case <-e.ctx.Done():
		e.wg.Done() // left for the next run
		return
	}
	fail := func(err error) {
		<-e.bigSem
		e.fileFailed(s.Path, err)
		e.wg.Done()
	}
	f, err := e.src.Open(e.srcFile(srcTop, s.Path))
	if err != nil {
		fail(errors.New(fsroot.Describe("open", s.Path, err)))
		return
	}
	opened, err := fsroot.InfoFromFile(f)
	if err != nil {
		f.Close()
		fail(errors.New(fsroot.Describe("open", s.Path, err)))
		return
	}
	if !sameSource(s, opened) {
		f.Close()
		fail(receive.ErrChanged)
		return
	}
	sf := &sfile{op: op, fid: e.nextFID.Add(1), f: f, opened: opened}
	sf.flyKey, sf.fly = e.flying.add(s.Path, s.Size, 0)
	chunks := plan.Chunks(s.Size, e.opt.ChunkSize)
	sf.digests = make([]hashtree.Digest, len(chunks))
	spec := wire.FileSpec{FID: sf.fid, Path: plan.Join(e.dstPath, s.Path), Size: s.Size,
		Mode: s.Mode, MtimeNs: s.MtimeNs, ChunkSize: e.opt.ChunkSize, ReplaceDir: e.opt.ReplaceDirs,
		Delta: plan.DeltaUpdate(op, e.opt.Delta, e.opt.ChunkSize), Sparse: s.Blocks*512 < s.Size, Owner: e.ownerOf(s)}
	if e.shares.Splits(op) {
		spec.Shares, spec.Delta = max(e.opt.SplitShares, 1), false
		if sh := e.opt.Shard; sh != nil {
			// This share's range only; the final pass finishes the file.
			spec.Shares, spec.Share = sh.Count, sh.Index+1
			lo, hi := e.shares.Range(int64(len(chunks)))
			chunks = chunks[lo:hi]
			sf.part = true
		}
	}
	w, err := e.dst.Open(e.ctx, spec)
	var refused *FileError
	if errors.As(err, &refused) {
		f.Close()
		e.flying.remove(sf.flyKey)
		<-e.bigSem
		e.fileError(s.Path, refused.Msg)
		e.wg.Done()
		return
	}
	if err != nil {
		f.Close()
		e.flying.remove(sf.flyKey)
		fail(err)
		return
	}
	sf.w = w
	have, done := w.Resume()
	n := int64(len(sf.digests))
	// Chunks the parked shares of a split file wrote and verified are
	// done: their digests come from the destination's journals.
	isDone := map[int64]bool{}
	if len(done) > 0 {
		for _, c := range done {
			d, err := hashtree.ParseDigest(c.Digest)
			if err != nil || c.Index < 0 || c.Index >= n {
				continue
			}
			sf.digests[c.Index] = d
			isDone[c.Index] = true
		}
	}
	pending := chunks[:0:0]
	for _, c := range chunks {
		if isDone[c.Index] {
			if !e.shares.FinishesSplit(op) { // else a share's progress counted it
				e.tally.AddBytes(c.Len)
			}
			sf.fly.done.Add(c.Len)
			continue
		}
		pending = append(pending, c)
	}
	chunks = pending
	if cutAt, cut := e.budget.cutAt(s.Path); cut {
		// The --max-transfer limit (hard) falls inside the file: the
		// chunks up to it are sent, the rest is left for the next run,
		// which resumes the partial file.
		kept := chunks[:0:0]
		for _, c := range chunks {
			if c.Off+c.Len <= cutAt {
				kept = append(kept, c)
			}
		}
		chunks, sf.cut = kept, true
	}
	sf.remaining.Store(int64(len(chunks)))
	if len(chunks) == 0 {
		go e.finishBig(sf)
		return
	}
	// Chunks a partial file from an interrupted run already holds are
	// hashed here and offered for adoption instead of being sent.
	held := map[int64]bool{}
	if len(have) > 0 && e.hashes() {
		// Ranges come from the peer: only ascending, disjoint ranges
		// within the file count, so the work stays bounded by its chunks.
		next := int64(0)
		for _, r := range have {
			lo, hi := max(r[0], next), min(r[1], n-1)
			for i := lo; i <= hi; i++ {
				if !isDone[i] {
					held[i] = true
				}
			}
			next = max(next, hi+1)
		}
	}
	sf.checks.Store(int64(len(held)))
	for i, c := range chunks {
		select {
		case e.chunkCh <- &chunkJob{sf: sf, c: c, check: held[c.Index]}:
		case <-e.ctx.Done():
			// Senders drain what is queued; the rest is abandoned,
			// settled here all at once so that the file finishes, and
			// the checks among it are counted off so that the offer
			// settles the checks that were queued.
			rest, checks := chunks[i:], int64(0)
			for _, c := range rest {
				if held[c.Index] {
					checks++
				}
			}
			e.chunksStopped(sf, len(rest))
			if checks > 0 {
				e.checked(sf, checks)
			}
			return
		}
	}
}

// chunkSender reads, hashes and sends chunks on one lane.
func (e *engine) chunkSender(l Lane) {
	verify := e.hashes()
	for job := range e.chunkCh {
		sf := job.sf
		if job.check {
			// Always through checkChunk: the last check starts the offer,
			// which settles every checked chunk.
			e.checkChunk(job)
			continue
		}
		if sf.failed.Load() {
			e.chunkSettled(sf)
			continue
		}
		if err := l.Acquire(e.ctx); err != nil {
			e.chunkErr(sf, err)
			continue
		}
		if job.theirs != nil {
			e.sendPatch(l, job)
			continue
		}
		// Map the chunk: hash it in place and send it with SendFile from
		// the page cache (zero copy where the transport can), or for an
		// in-process destination write it from the mapping. Fall back to
		// reading it into a buffer.
		var (
			buf    []byte
			unmap  func()
			sendF  *os.File
			dg     hashtree.Digest
			mapped bool
		)
		// Sparse sources are read, not mapped: on tmpfs a mapping would
		// allocate the holes of the source file.
		var (
			m  []byte
			um func()
			ok bool
		)
		if sparse := sf.op.Src.Blocks*512 < sf.op.Src.Size; !sparse {
			m, um, ok = mappedChunk(sf.f, job.c.Off, job.c.Len)
		}
		if ok {
			buf, unmap, mapped = m, um, true
			if verify {
				if err := guarded(func() { dg = hashtree.ChunkDigest(m, job.c.Off, sf.op.Src.Size, e.opt.ChunkSize) }); err != nil {
					unmap()
					l.Release()
					e.chunkFailed(sf, receive.ErrChanged.Error())
					continue
				}
			}
			if !e.dst.InProcess() {
				// A peer: send from the file; the mapping is no longer needed.
				unmap()
				buf, unmap, sendF = nil, nil, sf.f
			}
		} else {
			buf = e.getBuf(job.c.Len)
			n, err := sf.f.ReadAt(buf, job.c.Off)
			if err != nil && !(errors.Is(err, io.EOF) && int64(n) == job.c.Len) {
				l.Release()
				e.putBuf(buf)
				msg := fsroot.Describe("read", sf.op.Src.Path, err)
				if errors.Is(err, io.EOF) {
					msg = receive.ErrChanged.Error()
				}
				e.chunkFailed(sf, msg)
				continue
			}
			if verify {
				dg = hashtree.ChunkDigest(buf, job.c.Off, sf.op.Src.Size, e.opt.ChunkSize)
			}
		}
		j := job
		cb := e.verdict(l, j, dg, j.c.Len)
		var err error
		send := func() {
			err = sf.w.WriteChunk(l, Chunk{Index: uint64(j.c.Index), Off: j.c.Off, Len: int(j.c.Len),
				Verify: verify && e.dst.Verifies(), Digest: dg, Data: buf, File: sendF}, cb)
		}
		if unmap != nil {
			// Writing from the mapping in process: a fault is a changed source.
			if ferr := guarded(send); ferr != nil {
				err = receive.ErrChanged
			}
			unmap()
		} else {
			send()
		}
		if !mapped {
			e.putBuf(buf)
		}
		if err != nil {
			l.Release()
			e.chunkErr(sf, err)
		}
	}
}

// verdict returns the callback that takes the destination's verdict on
// the chunk of job, sent with digest dg as sent bytes on lane l: counted
// when written, sent again (whole) when it failed verification.
func (e *engine) verdict(l Lane, j *chunkJob, dg hashtree.Digest, sent int64) func(status byte, msg string) {
	sf := j.sf
	return func(status byte, msg string) {
		l.Release()
		switch status {
		case wire.AckOK:
			sf.digests[j.c.Index] = dg
			e.tally.AddBytes(j.c.Len)
			sf.fly.done.Add(j.c.Len)
			e.tally.AddSent(sent)
			e.chunkSettled(sf)
		case wire.AckMismatch:
			if info, err := fsroot.InfoFromFile(sf.f); err == nil && fsroot.Unchanged(sf.opened, info) != nil {
				// What was sent is not what was hashed: the source
				// is being written to.
				e.chunkFailed(sf, receive.ErrChanged.Error())
				return
			}
			if j.tries+1 >= chunkAttempts {
				e.chunkFailed(sf, fmt.Sprintf("%s (after %d attempts)", msg, j.tries+1))
				return
			}
			e.sink.Emit(progress.Event{Event: progress.KindNotice, Path: sf.op.Src.Path, Retry: true,
				Msg: fmt.Sprintf("chunk %d failed verification at the destination; sending it again", j.c.Index)})
			// Requeue from a fresh goroutine: this callback runs on the
			// lane's reader, which must never block on the queue.
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				select {
				case e.chunkCh <- &chunkJob{sf: sf, c: j.c, tries: j.tries + 1}:
				case <-e.ctx.Done():
					e.chunkStopped(sf)
				}
			}()
		default:
			e.chunkErr(sf, errors.New(msg))
		}
	}
}

// sendPatch sends the chunk of job, which the destination holds old
// bytes of (job.theirs, their leaf digests), as the leaves that differ;
// the destination assembles and verifies it against the chunk's digest.
// The lane is acquired; the verdict releases it.
func (e *engine) sendPatch(l Lane, job *chunkJob) {
	sf := job.sf
	buf := e.getBuf(job.c.Len)
	defer e.putBuf(buf)
	if n, err := sf.f.ReadAt(buf, job.c.Off); err != nil && !(errors.Is(err, io.EOF) && int64(n) == job.c.Len) {
		l.Release()
		msg := fsroot.Describe("read", sf.op.Src.Path, err)
		if errors.Is(err, io.EOF) {
			msg = receive.ErrChanged.Error()
		}
		e.chunkFailed(sf, msg)
		return
	}
	leaf := hashtree.LeafSizeFor(e.opt.ChunkSize)
	// The chunk's digest is the one its check computed (a chunk with leaf
	// digests was offered for adoption): should the source have changed
	// since, the destination's verification says so.
	dg := sf.digests[job.c.Index]
	diff := hashtree.DiffLeaves(hashtree.LeafDigests(buf, job.c.Off, leaf), job.theirs)
	var data []byte
	for _, i := range diff {
		lo, hi := hashtree.LeafSpan(i, leaf, job.c.Len)
		data = append(data, buf[lo:hi]...)
	}
	p := wire.Patch{Index: uint64(job.c.Index), Off: job.c.Off, Digest: dg, LeafSize: leaf, Leaves: diff}
	if err := sf.w.WritePatch(l, p, data, e.verdict(l, job, dg, int64(len(data)))); err != nil {
		l.Release()
		e.chunkErr(sf, err)
	}
}

// checkChunk hashes a chunk the destination may already hold; once all
// such chunks of the file are hashed, they are offered for adoption.
func (e *engine) checkChunk(job *chunkJob) {
	sf := job.sf
	buf := e.getBuf(job.c.Len)
	n, err := sf.f.ReadAt(buf, job.c.Off)
	if err == nil || (errors.Is(err, io.EOF) && int64(n) == job.c.Len) {
		dg := hashtree.ChunkDigest(buf, job.c.Off, sf.op.Src.Size, e.opt.ChunkSize)
		sf.mu.Lock()
		sf.adopt = append(sf.adopt, wire.AdoptChunk{Index: job.c.Index, Digest: dg.String()})
		sf.digests[job.c.Index] = dg
		sf.mu.Unlock()
	} else {
		// Unreadable here: let the normal path send it (and fail properly).
		sf.mu.Lock()
		sf.adopt = append(sf.adopt, wire.AdoptChunk{Index: job.c.Index})
		sf.mu.Unlock()
	}
	e.putBuf(buf)
	e.checked(sf, 1)
}

// checked counts n resumed chunks of the file as checked (or abandoned);
// the last one starts the offer, which settles the checked ones.
func (e *engine) checked(sf *sfile, n int64) {
	if sf.checks.Add(-n) == 0 {
		go e.offer(sf)
	}
}

// offer asks the destination to adopt the resumed chunks and sends those
// it does not hold after all.
func (e *engine) offer(sf *sfile) {
	sf.mu.Lock()
	list := sf.adopt
	sf.adopt = nil
	sf.mu.Unlock()
	if sf.failed.Load() {
		for range list {
			e.chunkSettled(sf)
		}
		return
	}
	missing := map[int64]bool{}
	theirs := map[int64][]hashtree.Digest{}
	var valid []wire.AdoptChunk
	for _, c := range list {
		if c.Digest == "" {
			missing[c.Index] = true
		} else {
			valid = append(valid, c)
		}
	}
	// Offered in groups whose leaf digests fit one answer's budget, so
	// that every chunk that differs can be patched however large the file.
	leaf := hashtree.LeafSizeFor(e.opt.ChunkSize)
	group := len(valid)
	if leaf > 0 {
		group = max(1, wire.MaxPatchLeafBytes/(hashtree.NumLeaves(e.opt.ChunkSize, leaf)*len(hashtree.Digest{})))
	}
	for len(valid) > 0 {
		part := valid[:min(group, len(valid))]
		valid = valid[len(part):]
		m, leaves, err := sf.w.Adopt(e.ctx, part, leaf)
		if err != nil {
			for _, c := range part {
				missing[c.Index] = true
			}
		}
		for _, i := range m {
			missing[i] = true
		}
		for _, cl := range leaves {
			if d := leafDigests(cl.Digests); d != nil && missing[cl.Index] {
				theirs[cl.Index] = d
			}
		}
	}
	chunks := plan.Chunks(sf.op.Src.Size, e.opt.ChunkSize)
	for _, c := range list {
		if !missing[c.Index] {
			e.tally.AddBytes(chunks[c.Index].Len)
			sf.fly.done.Add(chunks[c.Index].Len)
			e.chunkSettled(sf)
			continue
		}
		select {
		case e.chunkCh <- &chunkJob{sf: sf, c: chunks[c.Index], theirs: theirs[c.Index]}:
		case <-e.ctx.Done():
			e.chunkStopped(sf)
		}
	}
}

// leafDigests splits the concatenated leaf digests of a peer's answer;
// nil if they do not come in whole digests.
func leafDigests(flat []byte) []hashtree.Digest {
	size := len(hashtree.Digest{})
	if len(flat) == 0 || len(flat)%size != 0 {
		return nil
	}
	out := make([]hashtree.Digest, len(flat)/size)
	for i := range out {
		copy(out[i][:], flat[i*size:])
	}
	return out
}

// chunkFailed settles a chunk that failed for a reason of the file's own
// (msg): the file fails.
func (e *engine) chunkFailed(sf *sfile, msg string) {
	sf.mu.Lock()
	if sf.errMsg == "" {
		sf.errMsg = msg
	}
	sf.mu.Unlock()
	sf.failed.Store(true)
	e.chunkSettled(sf)
}

// chunkStopped settles a chunk abandoned because the run is stopping: the
// file is left for the next run, which resumes its partial file.
func (e *engine) chunkStopped(sf *sfile) { e.chunksStopped(sf, 1) }

// chunksStopped is chunkStopped for n chunks of the file.
func (e *engine) chunksStopped(sf *sfile, n int) {
	sf.failed.Store(true)
	e.chunksSettled(sf, n)
}

// chunkErr settles a chunk that could not be sent (err): the file's own
// failure, unless the run is stopping.
func (e *engine) chunkErr(sf *sfile, err error) {
	if e.stopping() {
		e.chunkStopped(sf)
		return
	}
	e.chunkFailed(sf, err.Error())
}

// chunkSettled counts a chunk as done (either way); the last one finishes
// the file.
func (e *engine) chunkSettled(sf *sfile) { e.chunksSettled(sf, 1) }

// chunksSettled is chunkSettled for n chunks of the file.
func (e *engine) chunksSettled(sf *sfile, n int) {
	if sf.remaining.Add(-int64(n)) == 0 {
		go e.finishBig(sf)
	}
}

func (e *engine) finishBig(sf *sfile) {
	defer e.wg.Done()
	defer func() { <-e.bigSem }()
	defer e.flying.remove(sf.flyKey)
	s := sf.op.Src
	info, serr := fsroot.InfoFromFile(sf.f)
	sf.f.Close()
	if sf.failed.Load() || sf.cut {
		sf.mu.Lock()
		msg := sf.errMsg
		sf.mu.Unlock()
		if msg == "" {
			return // stopped or cut: the partial file stays for the next run
		}
		e.fileError(s.Path, msg)
		if e.ctx.Err() == nil {
			// A real failure: drop the partial file. A cancelled run
			// (stop, --max-duration) keeps it for the next run to resume.
			sf.w.Abort(e.ctx)
		}
		return
	}
	if serr != nil || fsroot.Unchanged(sf.opened, info) != nil {
		e.fileError(s.Path, receive.ErrChanged.Error())
		sf.w.Abort(e.ctx)
		return
	}
	if sf.part {
		e.committed(s.Path, sf.w.Park(e.ctx))
		return
	}
	digest, err := hashtree.Combine(sf.digests, s.Size, e.opt.ChunkSize)
	if err != nil {
		e.fileError(s.Path, err.Error())
		return
	}
	dg := digest.String()
	if !e.hashes() || !e.dst.Verifies() {
		dg = ""
	}
	if !e.committed(s.Path, sf.w.Commit(e.ctx, dg)) {
		return
	}
	ev := progress.Event{Event: progress.KindTransfer, Path: s.Path, Bytes: s.Size}
	if dg != "" {
		ev.Digest = dg
	}
	e.emit(ev)
}

// committed reports whether the commit (or park) of path succeeded, and
// reports its failure: the file's own (a *FileError), or the run's.
func (e *engine) committed(path string, err error) bool {
	var refused *FileError
	switch {
	case errors.As(err, &refused):
		e.fileError(path, refused.Msg)
	case err != nil:
		e.fileFailed(path, err)
	}
	return err == nil
}

// hashes says whether the sender computes digests: when asked to
// (--verify, the default), and always for a destination that verifies
// them (a peer session whose data streams are outside TLS verifies
// whatever --verify says).
func (e *engine) hashes() bool { return e.opt.Verify != "none" || e.dst.Verifies() }
