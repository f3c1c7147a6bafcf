package plan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// Lister yields the entries of a tree one at a time in Compare order and
// io.EOF at the end. Local walks and remote listings both satisfy it.
type Lister interface {
	Next(ctx context.Context) (Entry, error)
}

// DefaultCheckers is how many directories a Walker reads at once unless
// told otherwise (--checkers).
const DefaultCheckers = 8

// MaxCheckers bounds --checkers.
const MaxCheckers = 256

// Walker lists a directory tree beneath an fsroot.Root in Compare order.
// It holds one sorted directory listing per level of depth, so its memory
// is bounded by the widest directory times the depth, not by the tree.
//
// With more than one checker it reads ahead: while entries are consumed,
// up to checkers goroutines list (and lstat the entries of) the
// directories the walk will descend into next, in the order it will need
// them, and a large directory's entries are stat-ed on several threads.
// At most 4 x checkers listings (and about prefetchEntries entries) are
// held ahead of the walk. The entries and their order are exactly those
// of a serial walk.
//
// A directory that cannot be listed (or a symlink whose target cannot be
// read) is yielded with Entry.Err saying why, and the walk goes on beside
// it; only a top directory that cannot be listed ends the walk with an
// error.
type Walker struct {
	root     *fsroot.Root
	top      string
	checkers int
	stack    []walkLevel
	started  bool
	err      error

	// Read-ahead (checkers > 1). Only the goroutine calling Next touches
	// these, except the atomics and slots.
	slots     chan struct{} // one token per thread reading a directory
	maxHeld   int
	held      int          // nodes started and not yet consumed or dropped
	inflight  atomic.Int32 // listings being read
	completed atomic.Uint64
	seen      uint64 // completed at the last schedule
	dirty     bool   // the stack changed since the last schedule

	// shallow walks top alone: its entries, nothing beneath them.
	shallow bool
	// dirsRead counts the directories read (listed) so far.
	dirsRead atomic.Int64

	// hook, when set (by tests, before the first Next), runs before each
	// directory is read and each symlink target is read, with op
	// "readdir" or "readlink" and the path relative to the root.
	hook func(op, rel string)
}

// prefetchEntries is the number of entries in listings read ahead beyond
// which the Walker starts no more read-ahead.
const prefetchEntries = 1 << 17

// dirNode is a directory the walk will descend into.
type dirNode struct {
	rel     string        // relative to top
	started bool          // a goroutine reads it (set by the consumer)
	done    chan struct{} // closed when l is in
	l       listing
}

// listing is one directory's entries, sorted, without xfer's internal
// files and symlinks that vanished before their target was read.
type listing struct {
	entries []fsroot.Info
	links   []walkLink // symlink targets, in entry order
	subs    []*dirNode // one per directory entry, in entry order
	err     error
}

type walkLink struct {
	target string
	err    error
}

type walkLevel struct {
	dir    string // relative to top
	l      *listing
	i      int // next entry
	li, si int // next link, next sub
}

func (w *Walker) runHook(op, rel string) {
	if w.hook != nil {
		w.hook(op, rel)
	}
}

// NewWalker walks the directory top (relative to root; "" for the root)
// with DefaultCheckers. A missing top yields no entries (an empty tree).
func NewWalker(root *fsroot.Root, top string) *Walker {
	return NewWalkerN(root, top, 0)
}

// NewWalkerN is NewWalker reading up to checkers directories at once
// (0: DefaultCheckers; 1: serially, no goroutines).
func NewWalkerN(root *fsroot.Root, top string, checkers int) *Walker {
	if checkers <= 0 {
		checkers = DefaultCheckers
	}
	checkers = min(checkers, MaxCheckers)
	w := &Walker{root: root, top: top, checkers: checkers}
	if checkers > 1 {
		w.slots = make(chan struct{}, checkers)
		w.maxHeld = 4 * checkers
	}
	return w
}

// NewShallowWalker lists the directory top alone (its direct entries in
// Compare order, nothing beneath them): one directory read. checkers is
// as NewWalkerN's, for the stat of a large directory's entries.
func NewShallowWalker(root *fsroot.Root, top string, checkers int) *Walker {
	w := NewWalkerN(root, top, checkers)
	w.shallow = true
	return w
}

// DirsRead is how many directories the walk has read (listed) so far,
// read-ahead included: the metadata load it put on the source.
func (w *Walker) DirsRead() int64 { return w.dirsRead.Load() }

func (w *Walker) rel(p string) string { return Join(w.top, p) }

// read lists the directory rel (relative to top). It runs on the
// consumer's goroutine or on a read-ahead one.
func (w *Walker) read(rel string) listing {
	p := w.rel(rel)
	w.runHook("readdir", p)
	w.dirsRead.Add(1)
	infos, err := w.root.ReadDirN(p, w.slots)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return listing{} // vanished: an empty directory
		}
		return listing{err: unreadable(p, err)}
	}
	var l listing
	out := infos[:0]
	for _, info := range infos {
		if IsInternal(info.Name) || p == "" && info.Name == TreeIDFile {
			continue
		}
		switch info.Type {
		case fsroot.TypeSymlink:
			lp := Join(p, info.Name)
			w.runHook("readlink", lp)
			t, err := w.root.Readlink(lp)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // vanished since the listing
				}
				err = unreadable(lp, err)
			}
			l.links = append(l.links, walkLink{target: t, err: err})
		case fsroot.TypeDir:
			l.subs = append(l.subs, &dirNode{rel: Join(rel, info.Name)})
		}
		out = append(out, info)
	}
	l.entries = out
	return l
}

// unreadable says why the entry p could not be read, without repeating
// p (the error is reported against it): the system's reason, naming the
// entry beneath p where that is what failed.
func unreadable(p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if pe.Path == p || pe.Path == "" {
			return pe.Err
		}
		return fmt.Errorf("%s %s: %w", pe.Op, Base(pe.Path), pe.Err)
	}
	return err
}

// start reads n on a goroutine of its own.
func (w *Walker) start(n *dirNode) {
	n.started = true
	n.done = make(chan struct{})
	w.held++
	w.inflight.Add(1)
	go func() {
		w.slots <- struct{}{}
		n.l = w.read(n.rel)
		<-w.slots
		close(n.done)
		w.inflight.Add(-1)
		w.completed.Add(1)
	}()
}

// schedule starts reading the directories the walk needs next, in the
// order it will need them (depth first: the deepest level's remaining
// subdirectories and what lies beneath them, then its parent's, ...),
// while fewer than checkers are being read and the read-ahead is within
// its bounds.
func (w *Walker) schedule() {
	w.dirty = false
	if w.shallow {
		return // nothing beneath top is read
	}
	w.seen = w.completed.Load()
	entries := 0
	var visit func(n *dirNode) bool
	visit = func(n *dirNode) bool {
		if !n.started {
			if w.held >= w.maxHeld || entries >= prefetchEntries || int(w.inflight.Load()) >= w.checkers {
				return false
			}
			w.start(n)
			return true
		}
		select {
		case <-n.done:
		default:
			return true // being read: what is beneath it is not known yet
		}
		entries += len(n.l.entries)
		for _, c := range n.l.subs {
			if !visit(c) {
				return false
			}
		}
		return true
	}
	for d := len(w.stack) - 1; d >= 0; d-- {
		lvl := &w.stack[d]
		for _, c := range lvl.l.subs[lvl.si:] {
			if !visit(c) {
				return
			}
		}
	}
}

// drop forgets the read-ahead beneath l from index si on (a skipped or
// abandoned directory); goroutines still reading finish on their own.
func (w *Walker) drop(l *listing, si int) {
	for _, c := range l.subs[si:] {
		if !c.started {
			continue
		}
		w.held--
		select {
		case <-c.done:
			w.drop(&c.l, 0)
		default:
		}
	}
}

// descend returns the listing of n, read ahead or read now.
func (w *Walker) descend(ctx context.Context, n *dirNode) (*listing, error) {
	if !n.started {
		n.l = w.read(n.rel)
		return &n.l, nil
	}
	w.held--
	select {
	case <-n.done:
		return &n.l, nil
	default:
	}
	select {
	case <-n.done:
		return &n.l, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *Walker) push(dir string, l *listing) {
	w.stack = append(w.stack, walkLevel{dir: dir, l: l})
	w.dirty = true
}

// Next returns the next entry or io.EOF.
func (w *Walker) Next(ctx context.Context) (Entry, error) {
	if w.err != nil {
		return Entry{}, w.err
	}
	if !w.started {
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		w.started = true
		l := w.read("")
		if l.err != nil {
			w.err = fmt.Errorf("list %s: %w", displayTop(w.top), l.err)
			return Entry{}, w.err
		}
		w.push("", &l)
	}
	for len(w.stack) > 0 {
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		if w.slots != nil && (w.dirty || w.completed.Load() != w.seen) {
			w.schedule()
		}
		lvl := &w.stack[len(w.stack)-1]
		if lvl.i >= len(lvl.l.entries) {
			w.stack = w.stack[:len(w.stack)-1]
			w.dirty = true
			continue
		}
		info := lvl.l.entries[lvl.i]
		lvl.i++
		e := EntryFromInfo(Join(lvl.dir, info.Name), info)
		switch e.Type {
		case TypeSymlink:
			lk := lvl.l.links[lvl.li]
			lvl.li++
			if lk.err != nil {
				e.Err = lk.err.Error() // reported against e; the walk goes on
			}
			e.Target = lk.target
		case TypeDir:
			if w.shallow {
				break
			}
			n := lvl.l.subs[lvl.si]
			lvl.l.subs[lvl.si] = nil // the level below holds it, until popped
			lvl.si++
			l, err := w.descend(ctx, n)
			if err != nil {
				return Entry{}, err // n is still being read: nothing beneath it started
			}
			if l.err != nil {
				// Reported against e; the walk goes on beside it.
				e.Err = l.err.Error()
				l = &listing{}
			}
			w.push(e.Path, l)
		}
		return e, nil
	}
	return Entry{}, io.EOF
}

func displayTop(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// SkipDir drops the directory Next just returned, so that its contents
// are not walked (an excluded directory). Read-ahead beneath it already
// under way is discarded.
func (w *Walker) SkipDir() {
	if n := len(w.stack); n > 1 && w.stack[n-1].i == 0 {
		w.drop(w.stack[n-1].l, 0)
		w.stack = w.stack[:n-1]
		w.dirty = true
	}
}

// EntryFromInfo converts lstat information into an Entry at path p.
func EntryFromInfo(p string, info fsroot.Info) Entry {
	e := Entry{Path: p, Type: info.Type, Size: info.Size, Mode: info.Mode, MtimeNs: info.MtimeNs, CtimeNs: info.CtimeNs, Ino: info.Ino, Dev: info.Dev,
		Nlink: info.Nlink, Blocks: info.Blocks, Uid: info.Uid, Gid: info.Gid, Special: info.Special, Rdev: info.Rdev}
	switch info.Type {
	case TypeFile:
	case TypeDir, TypeSymlink:
		e.Size = 0
	default:
		e.Type = TypeOther
	}
	return e
}

// SliceLister lists a fixed slice of entries (already in Compare order).
type SliceLister struct {
	Entries []Entry
	i       int
}

// Next returns the next entry or io.EOF.
func (s *SliceLister) Next(context.Context) (Entry, error) {
	if s.i >= len(s.Entries) {
		return Entry{}, io.EOF
	}
	s.i++
	return s.Entries[s.i-1], nil
}
