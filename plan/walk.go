package plan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/xfer-io/xfer/fsroot"
)

// Lister yields the entries of a tree one at a time in Compare order and
// io.EOF at the end. Local walks and remote listings both satisfy it.
type Lister interface {
	Next(ctx context.Context) (Entry, error)
}

// Walker lists a directory tree beneath an fsroot.Root in Compare order.
// It holds one sorted directory listing per level of depth, so its memory
// is bounded by the widest directory times the depth, not by the tree.
type Walker struct {
	root  *fsroot.Root
	top   string
	stack []walkLevel
	err   error
}

type walkLevel struct {
	dir     string // relative to top
	entries []fsroot.Info
	i       int
}

// NewWalker walks the directory top (relative to root; "" for the root).
// A missing top yields no entries (an empty tree).
func NewWalker(root *fsroot.Root, top string) *Walker {
	return &Walker{root: root, top: top}
}

func (w *Walker) rel(p string) string { return Join(w.top, p) }

// Next returns the next entry or io.EOF.
func (w *Walker) Next(ctx context.Context) (Entry, error) {
	if w.err != nil {
		return Entry{}, w.err
	}
	if w.stack == nil {
		infos, err := w.root.ReadDir(w.top)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.err = fmt.Errorf("list %s: %w", w.rel(""), err)
			return Entry{}, w.err
		}
		w.stack = append(w.stack[:0:0], walkLevel{dir: "", entries: infos})
	}
	for len(w.stack) > 0 {
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		lvl := &w.stack[len(w.stack)-1]
		if lvl.i >= len(lvl.entries) {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		info := lvl.entries[lvl.i]
		lvl.i++
		if IsInternal(info.Name) {
			continue
		}
		e := EntryFromInfo(Join(lvl.dir, info.Name), info)
		if e.Type == TypeSymlink {
			t, err := w.root.Readlink(w.rel(e.Path))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // vanished since the listing
				}
				return Entry{}, fmt.Errorf("readlink %s: %w", w.rel(e.Path), err)
			}
			e.Target = t
		}
		if e.Type == TypeDir {
			infos, err := w.root.ReadDir(w.rel(e.Path))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Entry{}, fmt.Errorf("list %s: %w", w.rel(e.Path), err)
			}
			w.stack = append(w.stack, walkLevel{dir: e.Path, entries: infos})
		}
		return e, nil
	}
	return Entry{}, io.EOF
}

// SkipDir drops the directory Next just returned, so that its contents
// are not walked (an excluded directory).
func (w *Walker) SkipDir() {
	if n := len(w.stack); n > 1 && w.stack[n-1].i == 0 {
		w.stack = w.stack[:n-1]
	}
}

// EntryFromInfo converts lstat information into an Entry at path p.
func EntryFromInfo(p string, info fsroot.Info) Entry {
	e := Entry{Path: p, Size: info.Size, Mode: info.Mode, MtimeNs: info.MtimeNs, Ino: info.Ino, Dev: info.Dev,
		Nlink: info.Nlink, Blocks: info.Blocks}
	switch info.Type {
	case fsroot.TypeFile:
		e.Type = TypeFile
	case fsroot.TypeDir:
		e.Type = TypeDir
		e.Size = 0
	case fsroot.TypeSymlink:
		e.Type = TypeSymlink
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
