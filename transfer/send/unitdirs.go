package send

import (
	"context"
	"errors"
	"io"

	"github.com/xfer-io/xfer/plan"
)

// withDeletedDirs serves the shallow reading of directory d of a unit
// (w the source's listing, dl the destination's, paths relative to d)
// when the filter keeps excluded entries: it reads w whole (one
// directory) and gives a destination listing that has, right after each
// directory the source does not have as a directory (one the run deletes
// or replaces), that directory's whole contents, so that the filter sees
// the excluded entries that keep it, as one walk of the tree does.
func (e *engine) withDeletedDirs(w plan.Lister, dl plan.Lister, d string) (plan.Lister, plan.Lister, error) {
	var entries []plan.Entry
	srcDirs := map[string]bool{}
	for {
		en, err := w.Next(e.ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, en)
		if en.Type == plan.TypeDir {
			srcDirs[en.Path] = true
		}
	}
	contents := func(p string) plan.Lister {
		return plan.Prefixed(e.dst.List(e.ctx, plan.Join(e.dstPath, plan.Join(d, p)), false), p)
	}
	return &plan.SliceLister{Entries: entries}, &spliceLister{l: dl, srcDirs: srcDirs, contents: contents}, nil
}

// spliceLister lists what l lists and, right after each directory that
// srcDirs does not hold, what contents lists for it (in Compare order a
// directory's contents come right after it).
type spliceLister struct {
	l        plan.Lister
	srcDirs  map[string]bool
	contents func(dir string) plan.Lister
	pending  string      // a directory whose contents come next ("": none)
	in       plan.Lister // the contents being listed
}

// Next implements plan.Lister.
func (s *spliceLister) Next(ctx context.Context) (plan.Entry, error) {
	if s.pending != "" {
		s.in, s.pending = s.contents(s.pending), ""
	}
	if s.in != nil {
		en, err := s.in.Next(ctx)
		if err == nil || !errors.Is(err, io.EOF) {
			return en, err
		}
		s.in = nil
	}
	en, err := s.l.Next(ctx)
	if err == nil && en.Type == plan.TypeDir && !s.srcDirs[en.Path] {
		s.pending = en.Path
	}
	return en, err
}

// SkipDir implements plan.DirSkipper: the contents of the directory Next
// returned last are not listed.
func (s *spliceLister) SkipDir() {
	if s.pending != "" {
		s.pending = ""
		return
	}
	if sk, ok := s.in.(plan.DirSkipper); ok && s.in != nil {
		sk.SkipDir()
	}
}
