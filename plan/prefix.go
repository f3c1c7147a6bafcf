package plan

import "context"

// Prefixed lists what l lists with dir put before each path: the listing
// of a directory beneath a tree's top, named as a walk of the whole tree
// names its entries (a unit of a distributed walk). dir "" leaves l as
// it is.
func Prefixed(l Lister, dir string) Lister {
	if dir == "" {
		return l
	}
	return &prefixed{l: l, dir: dir}
}

type prefixed struct {
	l   Lister
	dir string
}

// Next implements Lister.
func (p *prefixed) Next(ctx context.Context) (Entry, error) {
	e, err := p.l.Next(ctx)
	if err == nil {
		e.Path = Join(p.dir, e.Path)
	}
	return e, err
}

// SkipDir implements DirSkipper when the wrapped listing does.
func (p *prefixed) SkipDir() {
	if s, ok := p.l.(DirSkipper); ok {
		s.SkipDir()
	}
}
