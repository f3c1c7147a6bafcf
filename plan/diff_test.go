package plan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/plan"
)

func file(p string, size, mtime int64) plan.Entry {
	return plan.Entry{Path: p, Type: plan.TypeFile, Size: size, Mode: 0o644, MtimeNs: mtime}
}

func fileD(p string, size, mtime int64, digest string) plan.Entry {
	e := file(p, size, mtime)
	e.Digest = []byte(digest)
	return e
}

func withMode(e plan.Entry, m uint32) plan.Entry { e.Mode = m; return e }

func dir(p string) plan.Entry {
	return plan.Entry{Path: p, Type: plan.TypeDir, Mode: 0o755, MtimeNs: 7}
}

func link(p, target string) plan.Entry {
	return plan.Entry{Path: p, Type: plan.TypeSymlink, Mode: 0o777, MtimeNs: 7, Target: target}
}

func other(p string) plan.Entry {
	return plan.Entry{Path: p, Type: plan.TypeOther, Mode: 0o644, MtimeNs: 7}
}

// want is the observable part of an Op: what happens where, and why.
type want struct {
	kind    plan.OpKind
	path    string
	reason  string
	replace bool
}

func (w want) String() string {
	r := ""
	if w.replace {
		r = " replace"
	}
	return fmt.Sprintf("%v %q (%s)%s", w.kind, w.path, w.reason, r)
}

func diffOps(t *testing.T, src, dst []plan.Entry, opt plan.DiffOptions) ([]plan.Op, error) {
	t.Helper()
	var ops []plan.Op
	err := plan.Diff(context.Background(), &plan.SliceLister{Entries: src}, &plan.SliceLister{Entries: dst}, opt,
		func(op plan.Op) error { ops = append(ops, op); return nil })
	return ops, err
}

func TestDiff(t *testing.T) {
	const (
		mkdir    = plan.OpMkdir
		put      = plan.OpPut
		symlink  = plan.OpSymlink
		del      = plan.OpDelete
		setattrs = plan.OpSetAttrs
		skip     = plan.OpSkip
	)
	checksum := plan.DiffOptions{Checksum: true}
	deleting := plan.DiffOptions{Delete: true}
	cases := []struct {
		name     string
		src, dst []plan.Entry
		opt      plan.DiffOptions
		want     []want
	}{
		{
			name: "new file, dir, symlink, other",
			src:  []plan.Entry{file("B", 1, 1), dir("d"), file("d/f", 3, 1), link("l", "d/f"), other("p")},
			want: []want{{put, "B", "new", false}, {mkdir, "d", "new", false}, {put, "d/f", "new", false},
				{symlink, "l", "new", false}, {skip, "p", "unsupported", false}},
		},
		{
			name: "identical",
			src:  []plan.Entry{dir("d"), file("d/f", 3, 1), link("l", "t")},
			dst:  []plan.Entry{dir("d"), file("d/f", 3, 1), link("l", "t")},
			opt:  deleting,
			want: []want{{mkdir, "d", "exists", false}, {skip, "d/f", "", false}, {skip, "l", "", false}},
		},
		{
			name: "identical with checksum",
			src:  []plan.Entry{fileD("f", 3, 1, "abc")},
			dst:  []plan.Entry{fileD("f", 3, 1, "abc")},
			opt:  checksum,
			want: []want{{skip, "f", "", false}},
		},
		{
			name: "update skips a newer destination file only",
			src:  []plan.Entry{file("a", 3, 5), file("b", 3, 5), file("c", 4, 5), link("l", "x")},
			dst:  []plan.Entry{file("a", 9, 6), file("b", 3, 4), file("c", 3, 5), link("l", "y")},
			opt:  plan.DiffOptions{Update: true},
			want: []want{{skip, "a", "newer", false}, {put, "b", "mtime", false}, {put, "c", "size", false},
				{symlink, "l", "target", true}},
		},
		{
			name: "ignore existing skips all but directories",
			src:  []plan.Entry{file("a", 3, 5), dir("d"), file("d/n", 1, 1), link("l", "x"), file("t", 1, 1)},
			dst:  []plan.Entry{file("a", 9, 6), dir("d"), link("l", "y"), dir("t")},
			opt:  plan.DiffOptions{IgnoreExisting: true},
			want: []want{{skip, "a", "exists", false}, {mkdir, "d", "exists", false}, {put, "d/n", "new", false},
				{skip, "l", "exists", false}, {skip, "t", "exists", false}},
		},
		{
			name: "size only: same size is current, attributes still set",
			src:  []plan.Entry{file("a", 3, 5), file("b", 4, 5), withMode(file("c", 3, 1), 0o600), file("d", 3, 1)},
			dst:  []plan.Entry{file("a", 3, 6), file("b", 3, 5), file("c", 3, 1), file("d", 3, 1)},
			opt:  plan.DiffOptions{SizeOnly: true},
			want: []want{{setattrs, "a", "mtime", false}, {put, "b", "size", false}, {setattrs, "c", "mode", false},
				{skip, "d", "", false}},
		},
		{
			name: "size change",
			src:  []plan.Entry{file("f", 4, 1)},
			dst:  []plan.Entry{file("f", 3, 1)},
			want: []want{{put, "f", "size", false}},
		},
		{
			name: "size change with checksum and equal digests",
			src:  []plan.Entry{fileD("f", 4, 1, "x")},
			dst:  []plan.Entry{fileD("f", 3, 1, "x")},
			opt:  checksum,
			want: []want{{put, "f", "size", false}},
		},
		{
			name: "mtime change",
			src:  []plan.Entry{file("f", 3, 2)},
			dst:  []plan.Entry{file("f", 3, 1)},
			want: []want{{put, "f", "mtime", false}},
		},
		{
			name: "content change with checksum",
			src:  []plan.Entry{fileD("f", 3, 1, "new")},
			dst:  []plan.Entry{fileD("f", 3, 1, "old")},
			opt:  checksum,
			want: []want{{put, "f", "checksum", false}},
		},
		{
			name: "content change without checksum goes unnoticed",
			src:  []plan.Entry{fileD("f", 3, 1, "new")},
			dst:  []plan.Entry{fileD("f", 3, 1, "old")},
			want: []want{{skip, "f", "", false}},
		},
		{
			name: "same content, other mtime, with checksum",
			src:  []plan.Entry{fileD("f", 3, 2, "abc")},
			dst:  []plan.Entry{fileD("f", 3, 1, "abc")},
			opt:  checksum,
			want: []want{{setattrs, "f", "mtime", false}},
		},
		{
			name: "mode only",
			src:  []plan.Entry{withMode(file("f", 3, 1), 0o600)},
			dst:  []plan.Entry{file("f", 3, 1)},
			want: []want{{setattrs, "f", "mode", false}},
		},
		{
			name: "mode only with checksum",
			src:  []plan.Entry{withMode(fileD("f", 3, 1, "abc"), 0o4755)},
			dst:  []plan.Entry{fileD("f", 3, 1, "abc")},
			opt:  checksum,
			want: []want{{setattrs, "f", "mode", false}},
		},
		{
			name: "symlink target change",
			src:  []plan.Entry{link("l", "new")},
			dst:  []plan.Entry{link("l", "old")},
			want: []want{{symlink, "l", "target", true}},
		},
		{
			name: "file becomes dir",
			src:  []plan.Entry{dir("a"), file("a/x", 1, 1), file("a0", 1, 1)},
			dst:  []plan.Entry{file("a", 1, 1), file("a0", 1, 1)},
			opt:  deleting,
			want: []want{{mkdir, "a", "type", true}, {put, "a/x", "new", false}, {skip, "a0", "", false}},
		},
		{
			name: "dir becomes file: its contents go with it",
			src:  []plan.Entry{file("a", 1, 1), file("a-b", 1, 1)},
			dst:  []plan.Entry{dir("a"), file("a/x", 1, 1), dir("a/y"), file("a/y/z", 1, 1), file("a-b", 1, 1)},
			opt:  deleting,
			want: []want{{put, "a", "type", true}, {skip, "a-b", "", false}},
		},
		{
			name: "dir becomes symlink without delete",
			src:  []plan.Entry{link("a", "t"), file("a.b", 2, 1)},
			dst:  []plan.Entry{dir("a"), file("a/x", 1, 1), file("a.b", 1, 1)},
			want: []want{{symlink, "a", "type", true}, {put, "a.b", "size", false}},
		},
		{
			name: "symlink becomes file",
			src:  []plan.Entry{file("l", 1, 1)},
			dst:  []plan.Entry{link("l", "t")},
			want: []want{{put, "l", "type", true}},
		},
		{
			name: "extra dir with delete: one delete",
			src:  []plan.Entry{file("a", 1, 1), file("y", 1, 1)},
			dst: []plan.Entry{file("a", 1, 1), dir("x"), file("x/a", 1, 1), dir("x/b"), file("x/b/c", 1, 1),
				dir("x/b/d"), file("x/c", 1, 1), file("x0", 1, 1), file("y", 1, 1)},
			opt: deleting,
			want: []want{{skip, "a", "", false}, {del, "x", "extra", false}, {del, "x0", "extra", false},
				{skip, "y", "", false}},
		},
		{
			name: "extra entries inside a kept dir with delete",
			src:  []plan.Entry{dir("d"), file("d/b", 1, 1)},
			dst:  []plan.Entry{dir("d"), file("d/a", 1, 1), file("d/b", 1, 1), dir("d/c"), link("d/c/l", "t"), link("e", "t")},
			opt:  deleting,
			want: []want{{mkdir, "d", "exists", false}, {del, "d/a", "extra", false}, {skip, "d/b", "", false},
				{del, "d/c", "extra", false}, {del, "e", "extra", false}},
		},
		{
			name: "extra entries without delete",
			src:  []plan.Entry{file("a", 1, 1)},
			dst:  []plan.Entry{file("a", 1, 1), dir("x"), file("x/a", 1, 1), file("z", 1, 1)},
			want: []want{{skip, "a", "", false}},
		},
		{
			name: "other type at the source",
			src:  []plan.Entry{other("f"), other("g"), other("h"), file("h-1", 1, 1)},
			dst:  []plan.Entry{file("f", 1, 1), other("g"), dir("h"), file("h/x", 1, 1), file("h-1", 1, 1)},
			opt:  deleting,
			want: []want{{skip, "f", "unsupported", false}, {skip, "g", "unsupported", false},
				{skip, "h", "unsupported", false}, {skip, "h-1", "", false}},
		},
		{
			name: "other type at the destination is replaced",
			src:  []plan.Entry{file("f", 1, 1)},
			dst:  []plan.Entry{other("f")},
			want: []want{{put, "f", "type", true}},
		},
		{
			name: "interleaved",
			src:  []plan.Entry{file("B", 1, 1), dir("a"), file("a/x", 1, 1), file("a b", 1, 1), file("a.b", 1, 1), file("ä", 1, 1)},
			dst: []plan.Entry{file("A", 1, 1), file("B", 1, 1), dir("a"), file("a/w", 1, 1), file("a/x", 1, 1),
				file("a/y", 1, 1), file("a\nb", 1, 1), file("a-b", 1, 1), file("a.b", 1, 1), dir("a0"), file("a0/z", 1, 1), file("zz", 1, 1)},
			opt: deleting,
			want: []want{{del, "A", "extra", false}, {skip, "B", "", false}, {mkdir, "a", "exists", false},
				{del, "a/w", "extra", false}, {skip, "a/x", "", false}, {del, "a/y", "extra", false},
				{del, "a\nb", "extra", false}, {put, "a b", "new", false}, {del, "a-b", "extra", false},
				{skip, "a.b", "", false}, {del, "a0", "extra", false}, {del, "zz", "extra", false},
				{put, "ä", "new", false}},
		},
		{
			name: "empty source with delete",
			dst:  []plan.Entry{dir("a"), file("a/b", 1, 1), file("c", 1, 1)},
			opt:  deleting,
			want: []want{{del, "a", "extra", false}, {del, "c", "extra", false}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, err := diffOps(t, c.src, c.dst, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, op := range ops {
				got = append(got, want{op.Kind, op.Src.Path, op.Reason, op.Replace})
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("ops:\n got %v\nwant %v", got, c.want)
			}
			// Dst is the destination entry at the same path, when there is one.
			dstAt := map[string]plan.Entry{}
			for _, e := range c.dst {
				dstAt[e.Path] = e
			}
			for _, op := range ops {
				d, exists := dstAt[op.Src.Path]
				switch {
				case op.Kind == plan.OpDelete:
					if op.Src.Path != d.Path || op.Src.Type != d.Type || op.Dst != nil {
						t.Errorf("%v: Src %+v Dst %v, want Src the destination entry and no Dst", op.Kind, op.Src, op.Dst)
					}
				case exists && (op.Dst == nil || op.Dst.Path != d.Path || op.Dst.Type != d.Type || op.Dst.Target != d.Target):
					t.Errorf("%v %q: Dst %+v, want %+v", op.Kind, op.Src.Path, op.Dst, d)
				case !exists && op.Dst != nil:
					t.Errorf("%v %q: Dst %+v for a path missing at the destination", op.Kind, op.Src.Path, op.Dst)
				}
			}
		})
	}
}

func TestDiffChecksumCallbacks(t *testing.T) {
	digests := map[string]string{"src/same": "x", "dst/same": "x", "src/diff": "x", "dst/diff": "y"}
	var asked []string
	lookup := func(side string) func(context.Context, plan.Entry) ([]byte, error) {
		return func(_ context.Context, e plan.Entry) ([]byte, error) {
			asked = append(asked, side+"/"+e.Path)
			d, ok := digests[side+"/"+e.Path]
			if !ok {
				return nil, errors.New("unexpected digest request")
			}
			return []byte(d), nil
		}
	}
	opt := plan.DiffOptions{Checksum: true, SrcDigest: lookup("src"), DstDigest: lookup("dst")}
	src := []plan.Entry{file("diff", 1, 1), file("other-size", 2, 1), file("same", 1, 1)}
	dst := []plan.Entry{file("diff", 1, 1), file("other-size", 1, 1), file("same", 1, 1)}
	ops, err := diffOps(t, src, dst, opt)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range ops {
		got = append(got, op.Kind.String()+" "+op.Src.Path+" "+op.Reason)
	}
	if w := []string{"put diff checksum", "put other-size size", "skip same "}; !slices.Equal(got, w) {
		t.Errorf("ops %q, want %q", got, w)
	}
	// Files whose sizes differ need no digest.
	if w := []string{"src/diff", "dst/diff", "src/same", "dst/same"}; !slices.Equal(asked, w) {
		t.Errorf("digests asked for %q, want %q", asked, w)
	}
}

type failLister struct {
	entries []plan.Entry
	err     error
}

func (f *failLister) Next(context.Context) (plan.Entry, error) {
	if len(f.entries) == 0 {
		return plan.Entry{}, f.err
	}
	e := f.entries[0]
	f.entries = f.entries[1:]
	return e, nil
}

func TestDiffErrors(t *testing.T) {
	boom := errors.New("boom")
	ctx := context.Background()
	sl := func(es ...plan.Entry) plan.Lister { return &plan.SliceLister{Entries: es} }
	for _, c := range []struct {
		name     string
		src, dst plan.Lister
		opt      plan.DiffOptions
		emitErr  error
		want     error // matched with errors.Is, or by message if it has none
		wantMsg  string
		maxEmits int
	}{
		{name: "source listing", src: &failLister{[]plan.Entry{file("a", 1, 1)}, boom}, dst: sl(), want: boom, wantMsg: "source", maxEmits: 1},
		{name: "destination listing", src: sl(file("a", 1, 1)), dst: &failLister{[]plan.Entry{file("a", 1, 1)}, boom}, want: boom, wantMsg: "destination", maxEmits: 1},
		{name: "emit", src: sl(file("a", 1, 1), file("b", 1, 1)), dst: sl(), emitErr: boom, want: boom, maxEmits: 1},
		{name: "emit on delete", src: sl(), dst: sl(file("a", 1, 1), file("b", 1, 1)), opt: plan.DiffOptions{Delete: true}, emitErr: boom, want: boom, maxEmits: 1},
		{name: "unreadable report", src: sl(withErr(dir("a"), "boom")), dst: sl(),
			opt:  plan.DiffOptions{Unreadable: func(plan.Entry, bool) error { return boom }},
			want: boom},
	} {
		t.Run(c.name, func(t *testing.T) {
			emits := 0
			err := plan.Diff(ctx, c.src, c.dst, c.opt, func(plan.Op) error { emits++; return c.emitErr })
			if err == nil {
				t.Fatal("Diff succeeded")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v does not wrap %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q does not mention %q", err, c.wantMsg)
			}
			if emits > c.maxEmits {
				t.Errorf("emit called %d times, want at most %d", emits, c.maxEmits)
			}
		})
	}
}

// --- Property test: applying the plan to the destination yields the source.

var propNames = []string{"a", "a b", "a\nb", "a-b", "a.b", "a0", "B", "ä"}

type tree map[string]plan.Entry

// genTree generates a random tree. Where base has an entry at the same path
// it is usually copied (sometimes with other attributes), so that the two
// trees of a pair overlap the way a source and an older copy do.
func genTree(r *rand.Rand, base tree, withContent bool) tree {
	t := tree{}
	var gen func(dir string, depth int)
	gen = func(dir string, depth int) {
		for _, name := range propNames {
			p := plan.Join(dir, name)
			if b, ok := base[p]; ok && r.IntN(10) < 7 {
				e := b
				if r.IntN(4) == 0 {
					e = tweak(r, e, withContent)
				}
				t[p] = e
				if e.Type == plan.TypeDir {
					gen(p, depth+1)
				}
				continue
			}
			if r.IntN(3) != 0 {
				continue
			}
			e := randEntry(r, p, depth, withContent)
			t[p] = e
			if e.Type == plan.TypeDir {
				gen(p, depth+1)
			}
		}
	}
	gen("", 0)
	return t
}

func randEntry(r *rand.Rand, p string, depth int, withContent bool) plan.Entry {
	e := plan.Entry{Path: p, Mode: []uint32{0o644, 0o600}[r.IntN(2)], MtimeNs: 1 + r.Int64N(2)}
	switch k := r.IntN(6); {
	case k < 2 && depth < 3:
		e.Type = plan.TypeDir
	case k < 5:
		e.Type = plan.TypeFile
		e.Size = r.Int64N(3)
		content := 0
		if withContent {
			content = r.IntN(2)
		}
		// Without content variation the digest is a function of size and
		// mtime, which is what the quick (non-checksum) comparison assumes.
		e.Digest = fmt.Appendf(nil, "%d/%d/%d", e.Size, e.MtimeNs, content)
	default:
		e.Type = plan.TypeSymlink
		e.Mode = 0o777
		e.Target = []string{"t1", "t2"}[r.IntN(2)]
	}
	return e
}

func tweak(r *rand.Rand, e plan.Entry, withContent bool) plan.Entry {
	switch e.Type {
	case plan.TypeDir:
		e.Mode ^= 0o044
		e.MtimeNs++
	case plan.TypeSymlink:
		e.Target += "x"
	case plan.TypeFile:
		switch r.IntN(3) {
		case 0:
			e.Mode ^= 0o044
		case 1:
			e.MtimeNs++
		default:
			if withContent {
				e.Digest = append(slices.Clip(e.Digest), '!') // same size and mtime, new content
			} else {
				e.Size++
			}
		}
		if !withContent {
			e.Digest = fmt.Appendf(nil, "%d/%d/0", e.Size, e.MtimeNs)
		}
	}
	return e
}

func (t tree) sorted() []plan.Entry {
	out := make([]plan.Entry, 0, len(t))
	for _, e := range t {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b plan.Entry) int { return plan.Compare(a.Path, b.Path) })
	return out
}

func (t tree) removeAll(p string) {
	for q := range t {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(t, q)
		}
	}
}

// sameState reports whether two entries describe the same file-system state.
func sameState(a, b plan.Entry) bool {
	if a.Path != b.Path || a.Type != b.Type {
		return false
	}
	switch a.Type {
	case plan.TypeSymlink:
		return a.Target == b.Target
	case plan.TypeDir:
		return a.Mode == b.Mode && a.MtimeNs == b.MtimeNs
	}
	return a.Size == b.Size && a.Mode == b.Mode && a.MtimeNs == b.MtimeNs && bytes.Equal(a.Digest, b.Digest)
}

func sameListing(a, b plan.Entry) bool {
	return a.Path == b.Path && a.Type == b.Type && a.Size == b.Size && a.Mode == b.Mode &&
		a.MtimeNs == b.MtimeNs && a.Target == b.Target && bytes.Equal(a.Digest, b.Digest)
}

// apply performs op on the model m of the destination, checking that it is
// a valid step given the current state. src holds the full source entries.
func apply(m, src tree, op plan.Op) error {
	p := op.Src.Path
	cur, exists := m[p]
	if op.Kind == plan.OpDelete {
		if !exists {
			return fmt.Errorf("delete of %q, which is no longer there", p)
		}
		if !sameListing(cur, op.Src) {
			return fmt.Errorf("delete of %q: entry %+v, destination has %+v", p, op.Src, cur)
		}
		m.removeAll(p)
		return nil
	}
	s, ok := src[p]
	if !ok {
		return fmt.Errorf("%v of %q, which is not at the source", op.Kind, p)
	}
	if op.Dst == nil && exists {
		return fmt.Errorf("%v of %q without Dst, but the destination has %+v", op.Kind, p, cur)
	}
	if op.Dst != nil && (!exists || !sameListing(*op.Dst, cur)) {
		return fmt.Errorf("%v of %q with Dst %+v, but the destination has %+v (exists %v)", op.Kind, p, *op.Dst, cur, exists)
	}
	switch op.Kind {
	case plan.OpMkdir, plan.OpPut, plan.OpSymlink:
		if want := map[plan.OpKind]plan.Type{plan.OpMkdir: plan.TypeDir, plan.OpPut: plan.TypeFile, plan.OpSymlink: plan.TypeSymlink}[op.Kind]; s.Type != want {
			return fmt.Errorf("%v of %q for a source %v", op.Kind, p, s.Type)
		}
		if d := plan.Dir(p); d != "" && m[d].Type != plan.TypeDir {
			return fmt.Errorf("%v of %q before its parent exists", op.Kind, p)
		}
		typeDiffers := exists && cur.Type != s.Type
		if typeDiffers && !op.Replace {
			return fmt.Errorf("%v of %q over a %v without Replace", op.Kind, p, cur.Type)
		}
		if !exists && op.Replace {
			return fmt.Errorf("%v of %q with Replace but nothing there", op.Kind, p)
		}
		if typeDiffers || op.Replace {
			m.removeAll(p)
		}
		m[p] = s // a kept directory keeps its contents
	case plan.OpSetAttrs:
		if !exists || cur.Type != plan.TypeFile || s.Type != plan.TypeFile ||
			cur.Size != s.Size || !bytes.Equal(cur.Digest, s.Digest) {
			return fmt.Errorf("setattrs of %q, but content differs: have %+v, want %+v", p, cur, s)
		}
		m[p] = s
	case plan.OpSkip:
		if !exists || !sameState(cur, s) {
			return fmt.Errorf("skip of %q (%s), but destination %+v (exists %v) differs from source %+v", p, op.Reason, cur, exists, s)
		}
	default:
		return fmt.Errorf("unknown op %v", op.Kind)
	}
	return nil
}

func TestDiffProperty(t *testing.T) {
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	r := rand.New(rand.NewPCG(1, 2))
	for it := range iters {
		checksum := it%2 == 1
		deleting := it%4 < 2
		callbacks := checksum && it%8 >= 4
		var srcT, dstT tree
		if it%3 == 0 {
			srcT = genTree(r, nil, checksum)
			dstT = genTree(r, nil, checksum)
		} else {
			srcT = genTree(r, nil, checksum)
			dstT = genTree(r, srcT, checksum)
		}
		src, dst := srcT.sorted(), dstT.sorted()
		opt := plan.DiffOptions{Checksum: checksum, Delete: deleting}
		srcList, dstList := src, dst
		if callbacks {
			// Listings without digests; Diff must ask for them.
			strip := func(es []plan.Entry) []plan.Entry {
				out := slices.Clone(es)
				for i := range out {
					out[i].Digest = nil
				}
				return out
			}
			srcList, dstList = strip(src), strip(dst)
			opt.SrcDigest = func(_ context.Context, e plan.Entry) ([]byte, error) { return srcT[e.Path].Digest, nil }
			opt.DstDigest = func(_ context.Context, e plan.Entry) ([]byte, error) { return dstT[e.Path].Digest, nil }
		}
		fail := func(format string, args ...any) {
			t.Helper()
			var b strings.Builder
			fmt.Fprintf(&b, "iteration %d (checksum %v, delete %v, callbacks %v): %s\nsource:\n", it, checksum, deleting, callbacks, fmt.Sprintf(format, args...))
			for _, e := range src {
				fmt.Fprintf(&b, "  %+v\n", e)
			}
			b.WriteString("destination:\n")
			for _, e := range dst {
				fmt.Fprintf(&b, "  %+v\n", e)
			}
			t.Fatal(b.String())
		}

		var ops []plan.Op
		err := plan.Diff(context.Background(), &plan.SliceLister{Entries: srcList}, &plan.SliceLister{Entries: dstList}, opt,
			func(op plan.Op) error { ops = append(ops, op); return nil })
		if err != nil {
			fail("Diff: %v", err)
		}

		// One op per source entry, in source order; ops strictly ordered.
		var opSrc []string
		for i, op := range ops {
			if i > 0 && plan.Compare(ops[i-1].Src.Path, op.Src.Path) >= 0 {
				fail("op %d (%v %q) out of order after %q", i, op.Kind, op.Src.Path, ops[i-1].Src.Path)
			}
			if op.Kind != plan.OpDelete {
				opSrc = append(opSrc, op.Src.Path)
			} else if !deleting {
				fail("delete of %q without DiffOptions.Delete", op.Src.Path)
			}
		}
		if sp := paths(src); !slices.Equal(opSrc, sp) {
			fail("ops for source paths %q, want %q", opSrc, sp)
		}

		m := tree{}
		for p, e := range dstT {
			m[p] = e
		}
		for _, op := range ops {
			if op.Dst != nil {
				d := *op.Dst
				d.Digest = dstT[d.Path].Digest
				op.Dst = &d
			}
			if op.Kind == plan.OpDelete {
				op.Src.Digest = dstT[op.Src.Path].Digest
			}
			if err := apply(m, srcT, op); err != nil {
				fail("%v", err)
			}
		}

		want := tree{}
		for p, e := range srcT {
			want[p] = e
		}
		if !deleting {
			// Extra destination entries stay unless a source non-directory
			// replaced a directory above them.
		extra:
			for p, e := range dstT {
				if _, ok := srcT[p]; ok {
					continue
				}
				for a := plan.Dir(p); a != ""; a = plan.Dir(a) {
					if s, ok := srcT[a]; ok && s.Type != plan.TypeDir {
						continue extra
					}
				}
				want[p] = e
			}
		}
		for p, w := range want {
			if g, ok := m[p]; !ok || !sameState(g, w) {
				fail("after applying the plan %q is %+v (present %v), want %+v", p, g, ok, w)
			}
		}
		for p, g := range m {
			if _, ok := want[p]; !ok {
				fail("after applying the plan %q is still there: %+v", p, g)
			}
		}
	}
}

func withErr(e plan.Entry, msg string) plan.Entry { e.Err = msg; return e }

// A file whose digest cannot be computed, at either side, is transferred
// (reading it then reports why) rather than ending the diff.
func TestDiffDigestFailureTransfers(t *testing.T) {
	boom := errors.New("boom")
	fail := func(context.Context, plan.Entry) ([]byte, error) { return nil, boom }
	for _, opt := range []plan.DiffOptions{
		{Checksum: true}, // no digest source at all
		{Checksum: true, SrcDigest: fail},
		{Checksum: true, DstDigest: fail, SrcDigest: func(context.Context, plan.Entry) ([]byte, error) { return []byte("x"), nil }},
	} {
		ops, err := diffOps(t, []plan.Entry{file("a", 1, 1)}, []plan.Entry{file("a", 1, 1)}, opt)
		if err != nil || len(ops) != 1 || ops[0].Kind != plan.OpPut || ops[0].Reason != "checksum" {
			t.Errorf("ops %v, err %v; want one put (checksum)", ops, err)
		}
	}
}

// Entries a walk could not read are reported once each; nothing beneath
// an unreadable source directory is compared or deleted at the
// destination, the directory itself is still created, an unreadable
// source symlink is left alone, and an unreadable destination directory
// lets the source's entries beneath it through as new.
func TestDiffUnreadable(t *testing.T) {
	type rep struct {
		path string
		dest bool
	}
	var reports []rep
	opt := plan.DiffOptions{Delete: true, Unreadable: func(e plan.Entry, dest bool) error {
		reports = append(reports, rep{e.Path, dest})
		return nil
	}}
	src := []plan.Entry{
		withErr(dir("a"), "permission denied"), // at both sides, unreadable at both
		withErr(dir("b"), "permission denied"), // a directory at the destination, with contents
		withErr(dir("c"), "permission denied"), // new
		dir("d"),                               // unreadable at the destination only
		file("d/new", 1, 1),
		withErr(link("l", ""), "input/output error"), // a file at the destination
		withErr(dir("m"), "permission denied"),       // a file at the destination
	}
	dst := []plan.Entry{
		withErr(dir("a"), "permission denied"),
		dir("b"), file("b/keep", 1, 1), dir("b/sub"), file("b/sub/keep", 1, 1),
		withErr(dir("d"), "permission denied"),
		file("l", 1, 1),
		file("m", 1, 1),
		file("x-extra", 1, 1),
	}
	ops, err := diffOps(t, src, dst, opt)
	if err != nil {
		t.Fatal(err)
	}
	var got []want
	for _, op := range ops {
		got = append(got, want{op.Kind, op.Src.Path, op.Reason, op.Replace})
	}
	wantOps := []want{
		{plan.OpMkdir, "a", "exists", false},
		{plan.OpMkdir, "b", "exists", false},
		{plan.OpMkdir, "c", "new", false},
		{plan.OpMkdir, "d", "exists", false},
		{plan.OpPut, "d/new", "new", false},
		{plan.OpMkdir, "m", "type", true},
		{plan.OpDelete, "x-extra", "extra", false},
	}
	if !slices.Equal(got, wantOps) {
		t.Errorf("ops\n got %v\nwant %v", got, wantOps)
	}
	wantReps := []rep{{"a", false}, {"b", false}, {"c", false}, {"d", true}, {"l", false}, {"m", false}}
	if !slices.Equal(reports, wantReps) {
		t.Errorf("reports %v, want %v", reports, wantReps)
	}
}
