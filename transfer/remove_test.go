package transfer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/wire"
)

// refusing is a destination that answers removals, refusing those of the
// paths in refuse, and records in which request each path went.
type refusing struct {
	send.Destination // only Meta is called
	refuse           map[string]bool
	request          map[string]int // path: the index of its request
	requests         int
}

func (d *refusing) Meta(_ context.Context, ops []wire.MetaOp) ([]string, error) {
	errs := make([]string, len(ops))
	for i, op := range ops {
		d.request[op.Path] = d.requests
		if d.refuse[op.Path] {
			errs[i] = "remove " + op.Path + ": refused"
		}
	}
	d.requests++
	return errs, nil
}

// removalTree is a listing beneath "top" in Compare order.
func removalTree() []plan.Entry {
	dir := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeDir} }
	file := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeFile} }
	return []plan.Entry{
		dir("a"), dir("a/b"), file("a/b/f1"), file("a/b/f2"), dir("a/c"), file("a/c/g"), dir("a/e"),
		file("h"), dir("k"), file("k/x.keep"),
	}
}

// TestRemoveChosen: removals and --rmdirs decisions made as the listing
// streams match what the whole listing decides: a directory goes only
// once all beneath it went, after their removals were answered, never the
// top; what stays (refused, unreadable, not chosen) keeps its ancestors.
func TestRemoveChosen(t *testing.T) {
	many := []plan.Entry{{Path: "m", Type: plan.TypeDir}}
	for i := range 2*wire.MaxReqItems + 10 {
		many = append(many, plan.Entry{Path: fmt.Sprintf("m/f%05d", i), Type: plan.TypeFile})
	}
	many = append(many, plan.Entry{Path: "m/z", Type: plan.TypeDir}, plan.Entry{Path: "m/z/last", Type: plan.TypeFile})
	for _, c := range []struct {
		name    string
		list    []plan.Entry
		rmDirs  bool
		dryRun  bool
		skip    string // chosen leaves out paths with this suffix
		refuse  []string
		bad     string // listed as unreadable
		removed []string
		rmdirs  []string
		errs    []string
	}{
		{name: "files only", list: removalTree(),
			removed: []string{"a/b/f1", "a/b/f2", "a/c/g", "h", "k/x.keep"}},
		{name: "rmdirs", list: removalTree(), rmDirs: true,
			removed: []string{"a/b/f1", "a/b/f2", "a/c/g", "h", "k/x.keep"}, rmdirs: []string{"a/b", "a/c", "a/e", "a", "k"}},
		{name: "dry run", list: removalTree(), rmDirs: true, dryRun: true,
			removed: []string{"a/b/f1", "a/b/f2", "a/c/g", "h", "k/x.keep"}, rmdirs: []string{"a/b", "a/c", "a/e", "a", "k"}},
		{name: "refused file keeps its ancestors", list: removalTree(), rmDirs: true, refuse: []string{"a/b/f2"},
			removed: []string{"a/b/f1", "a/c/g", "h", "k/x.keep"}, rmdirs: []string{"a/c", "a/e", "k"}, errs: []string{"a/b/f2"}},
		{name: "refused directory keeps its parent", list: removalTree(), rmDirs: true, refuse: []string{"a/c"},
			removed: []string{"a/b/f1", "a/b/f2", "a/c/g", "h", "k/x.keep"}, rmdirs: []string{"a/b", "a/e", "k"}, errs: []string{"a/c"}},
		{name: "not chosen stays", list: removalTree(), rmDirs: true, skip: ".keep",
			removed: []string{"a/b/f1", "a/b/f2", "a/c/g", "h"}, rmdirs: []string{"a/b", "a/c", "a/e", "a"}},
		{name: "unreadable stays", list: removalTree(), rmDirs: true, bad: "a/c/g",
			removed: []string{"a/b/f1", "a/b/f2", "h", "k/x.keep"}, rmdirs: []string{"a/b", "a/e", "k"}, errs: []string{"a/c/g"}},
		{name: "several requests", list: many, rmDirs: true, refuse: []string{"m/f00007"},
			rmdirs: []string{"m/z"}, errs: []string{"m/f00007"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &refusing{refuse: map[string]bool{}, request: map[string]int{}}
			for _, p := range c.refuse {
				d.refuse["top/"+p] = true
			}
			list := slices.Clone(c.list)
			for i := range list {
				if list[i].Path == c.bad {
					list[i].Err = "permission denied"
				}
			}
			got := map[string][]string{}
			sink := progress.SinkFunc(func(e progress.Event) {
				if c.dryRun != e.DryRun {
					t.Errorf("event %+v: dry run %v", e, e.DryRun)
				}
				got[e.Event] = append(got[e.Event], e.Path)
			})
			top := &plan.Entry{Type: plan.TypeDir}
			r := newRemover(&tree{d: d, path: "top", name: "top"}, top, c.dryRun, c.rmDirs, false, sink, progress.NewTally())
			chosen := func(e plan.Entry) bool { return c.skip == "" || !strings.HasSuffix(e.Path, c.skip) }
			if err := r.removeChosen(context.Background(), &plan.SliceLister{Entries: list}, chosen, progress.KindDelete); err != nil {
				t.Fatal(err)
			}
			if c.removed == nil {
				// Every file but the refused one.
				for _, e := range list {
					if e.Type == plan.TypeFile && !slices.Contains(c.refuse, e.Path) {
						c.removed = append(c.removed, e.Path)
					}
				}
			}
			for _, w := range []struct {
				kind string
				want []string
			}{{progress.KindDelete, c.removed}, {progress.KindRmdir, c.rmdirs}, {progress.KindError, c.errs}} {
				if g := got[w.kind]; !slices.Equal(sorted(g), sorted(w.want)) {
					t.Errorf("%s events: %q, want %q", w.kind, g, w.want)
				}
			}
			if c.dryRun && d.requests != 0 {
				t.Errorf("a dry run sent %d requests", d.requests)
			}
			// A directory's removal goes in a request after those of
			// everything beneath it.
			for _, dir := range c.rmdirs {
				for p, i := range d.request {
					if strings.HasPrefix(p, "top/"+dir+"/") && i >= d.request["top/"+dir] {
						t.Errorf("rmdir %s in request %d, before or with %s (request %d)", dir, d.request["top/"+dir], p, i)
					}
				}
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
