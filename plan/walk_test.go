package plan_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/plan"
)

// walkAll drains a Lister, failing the test on any error but io.EOF.
func walkAll(t *testing.T, l plan.Lister) []plan.Entry {
	t.Helper()
	return drain(t, "", l, nil)
}

// drain lists l to the end and calls each (if not nil) on every entry as
// it comes. It fails the test, what (if not "") prefixing the message, on
// any error but io.EOF, on an EOF that does not stick, and past 10000
// entries.
func drain(t *testing.T, what string, l plan.Lister, each func(plan.Entry)) []plan.Entry {
	t.Helper()
	if what != "" {
		what += ": "
	}
	ctx := context.Background()
	var out []plan.Entry
	for {
		e, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%sNext after %d entries: %v", what, len(out), err)
		}
		out = append(out, e)
		if len(out) > 10000 {
			t.Fatalf("%slister does not terminate", what)
		}
		if each != nil {
			each(e)
		}
	}
	if _, err := l.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("%sNext after EOF = %v, want io.EOF", what, err)
	}
	return out
}

func paths(es []plan.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Path
	}
	return out
}

type node struct {
	path   string
	typ    plan.Type
	mode   os.FileMode // files and dirs
	data   string      // files
	target string      // symlinks
}

// buildTree creates the nodes beneath base (parents before children) and
// gives every file and symlink a distinct mtime with nanoseconds.
func buildTree(t *testing.T, base string, nodes []node) {
	t.Helper()
	for i, n := range nodes {
		p := filepath.Join(base, filepath.FromSlash(n.path))
		var err error
		switch n.typ {
		case plan.TypeDir:
			if err = os.Mkdir(p, 0o700); err == nil {
				err = os.Chmod(p, n.mode)
			}
		case plan.TypeFile:
			if err = os.WriteFile(p, []byte(n.data), 0o600); err == nil {
				err = os.Chmod(p, n.mode)
			}
			if err == nil {
				mt := time.Unix(1_600_000_000+int64(i)*1000, int64(i)*7919+1)
				err = os.Chtimes(p, mt, mt)
			}
		case plan.TypeSymlink:
			err = os.Symlink(n.target, p)
		case plan.TypeOther:
			err = syscall.Mkfifo(p, 0o600)
		}
		if err != nil {
			t.Fatalf("create %q: %v", n.path, err)
		}
	}
}

// checkAgainstLstat asserts that every entry matches os.Lstat of the file
// it names beneath base.
func checkAgainstLstat(t *testing.T, base string, es []plan.Entry) {
	t.Helper()
	for _, e := range es {
		p := filepath.Join(base, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%q: lstat: %v", e.Path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		var want plan.Type
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			want = plan.TypeFile
		case syscall.S_IFDIR:
			want = plan.TypeDir
		case syscall.S_IFLNK:
			want = plan.TypeSymlink
		default:
			want = plan.TypeOther
		}
		if e.Type != want {
			t.Errorf("%q: type %v, want %v", e.Path, e.Type, want)
		}
		if e.Mode != st.Mode&0o7777 {
			t.Errorf("%q: mode %#o, want %#o", e.Path, e.Mode, st.Mode&0o7777)
		}
		if want := st.Mtim.Nano(); e.MtimeNs != want {
			t.Errorf("%q: mtime %d, want %d", e.Path, e.MtimeNs, want)
		}
		if e.Ino != st.Ino || e.Nlink != uint64(st.Nlink) {
			t.Errorf("%q: ino/nlink %d/%d, want %d/%d", e.Path, e.Ino, e.Nlink, st.Ino, st.Nlink)
		}
		wantSize := st.Size
		if e.Type == plan.TypeDir || e.Type == plan.TypeSymlink {
			wantSize = 0 // only file sizes are meaningful
		}
		if e.Size != wantSize {
			t.Errorf("%q: size %d, want %d", e.Path, e.Size, wantSize)
		}
		wantTarget := ""
		if e.Type == plan.TypeSymlink {
			if wantTarget, err = os.Readlink(p); err != nil {
				t.Fatal(err)
			}
		}
		if e.Target != wantTarget {
			t.Errorf("%q: target %q, want %q", e.Path, e.Target, wantTarget)
		}
		if e.Digest != nil {
			t.Errorf("%q: walker set a digest", e.Path)
		}
	}
}

var walkTree = []node{
	{path: "B", typ: plan.TypeFile, mode: 0o644, data: "upper"},
	{path: "a", typ: plan.TypeDir, mode: 0o755},
	{path: "a/x", typ: plan.TypeFile, mode: 0o600, data: "ax"},
	{path: "a/y", typ: plan.TypeDir, mode: 0o750},
	{path: "a/y/deep", typ: plan.TypeDir, mode: 0o700},
	{path: "a/y/deep/f", typ: plan.TypeFile, mode: 0o640, data: "deep file"},
	{path: "a/y/deep/.xfer-0123abcd0123abcd.part", typ: plan.TypeFile, mode: 0o600, data: "partial"},
	{path: "a/y/z", typ: plan.TypeFile, mode: 0o644, data: ""},
	{path: "a/.xfer-deadbeefdeadbeef.journal", typ: plan.TypeFile, mode: 0o600, data: "journal"},
	{path: "a\nb", typ: plan.TypeFile, mode: 0o644, data: "newline"},
	{path: "a b", typ: plan.TypeFile, mode: 0o644, data: "space"},
	{path: "a-b", typ: plan.TypeDir, mode: 0o755},
	{path: "a-b/c", typ: plan.TypeFile, mode: 0o644, data: "abc"},
	{path: "a.b", typ: plan.TypeFile, mode: 0o755, data: "dot"},
	{path: "a0", typ: plan.TypeFile, mode: 0o644, data: "zero"},
	{path: "empty", typ: plan.TypeDir, mode: 0o755},
	{path: "fifo", typ: plan.TypeOther},
	{path: "link", typ: plan.TypeSymlink, target: "a/y"}, // a directory: must not be followed
	{path: "dangling", typ: plan.TypeSymlink, target: "../../nowhere\n x"},
	{path: "with spaces ", typ: plan.TypeFile, mode: 0o644, data: "spaces"},
	{path: "ä", typ: plan.TypeDir, mode: 0o755},
	{path: "ä/日本", typ: plan.TypeFile, mode: 0o644, data: "unicode"},
	{path: ".xfer-0123abcd0123abcd.part", typ: plan.TypeFile, mode: 0o600, data: "partial"},
	{path: ".xfer-0123abcd0123abcd.journal", typ: plan.TypeFile, mode: 0o600, data: "journal"},
	{path: ".xfer-0123abcd.part", typ: plan.TypeFile, mode: 0o600, data: "a user's file"},
	{path: ".xfer-0123abcd.partial", typ: plan.TypeFile, mode: 0o600, data: "not internal"},
	{path: "x.journal", typ: plan.TypeFile, mode: 0o600, data: "not internal"},
}

func TestWalkerOrderAndAttributes(t *testing.T) {
	base := t.TempDir()
	buildTree(t, base, walkTree)
	r := fsroottest.Open(t, base)

	got := walkAll(t, plan.NewWalker(r, ""))

	// Depth-first with children sorted bytewise; a directory's contents come
	// right after it, before any sibling that extends its name ("a/x" before
	// "a\nb" although '\n' < '/').
	want := []string{
		".xfer-0123abcd.part",
		".xfer-0123abcd.partial",
		"B",
		"a",
		"a/x",
		"a/y",
		"a/y/deep",
		"a/y/deep/f",
		"a/y/z",
		"a\nb",
		"a b",
		"a-b",
		"a-b/c",
		"a.b",
		"a0",
		"dangling",
		"empty",
		"fifo",
		"link",
		"with spaces ",
		"x.journal",
		"ä",
		"ä/日本",
	}
	if gp := paths(got); !slices.Equal(gp, want) {
		t.Fatalf("walk order:\n got %q\nwant %q", gp, want)
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool { return plan.Compare(got[i].Path, got[j].Path) < 0 }) {
		t.Errorf("walk is not in plan.Compare order: %q", paths(got))
	}
	for i := 1; i < len(got); i++ {
		if plan.Compare(got[i-1].Path, got[i].Path) >= 0 {
			t.Errorf("entries %q and %q are not strictly increasing", got[i-1].Path, got[i].Path)
		}
	}
	checkAgainstLstat(t, base, got)

	byPath := map[string]plan.Entry{}
	for _, e := range got {
		byPath[e.Path] = e
	}
	for _, c := range []struct {
		path   string
		typ    plan.Type
		size   int64
		mode   uint32
		target string
	}{
		{"link", plan.TypeSymlink, 0, 0o777, "a/y"},
		{"dangling", plan.TypeSymlink, 0, 0o777, "../../nowhere\n x"},
		{"fifo", plan.TypeOther, 0, 0o600, ""},
		{"empty", plan.TypeDir, 0, 0o755, ""},
		{"a/y", plan.TypeDir, 0, 0o750, ""},
		{"a/y/deep/f", plan.TypeFile, int64(len("deep file")), 0o640, ""},
		{"a/y/z", plan.TypeFile, 0, 0o644, ""},
		{"a.b", plan.TypeFile, 3, 0o755, ""},
	} {
		e, ok := byPath[c.path]
		if !ok {
			t.Errorf("%q not listed", c.path)
			continue
		}
		if e.Type != c.typ || e.Size != c.size || e.Mode != c.mode || e.Target != c.target {
			t.Errorf("%q = {%v size %d mode %#o target %q}, want {%v size %d mode %#o target %q}",
				c.path, e.Type, e.Size, e.Mode, e.Target, c.typ, c.size, c.mode, c.target)
		}
	}
}

func TestWalkerSubdirectoryTop(t *testing.T) {
	base := t.TempDir()
	buildTree(t, base, walkTree)
	r := fsroottest.Open(t, base)

	for _, c := range []struct {
		top  string
		want []string
	}{
		{"a", []string{"x", "y", "y/deep", "y/deep/f", "y/z"}},
		{"a/y", []string{"deep", "deep/f", "z"}},
		{"a/y/deep", []string{"f"}},
		{"ä", []string{"日本"}},
		{"empty", nil},
		{"missing", nil},
		{"a/missing/deeper", nil},
	} {
		t.Run(c.top, func(t *testing.T) {
			got := walkAll(t, plan.NewWalker(r, c.top))
			if gp := paths(got); !slices.Equal(gp, c.want) {
				t.Fatalf("walk of %q: got %q, want %q", c.top, gp, c.want)
			}
			checkAgainstLstat(t, filepath.Join(base, filepath.FromSlash(c.top)), got)
		})
	}
}

func TestWalkerSymlinkInSubdirectoryTop(t *testing.T) {
	// The target must be read relative to the walker's top, not the root.
	base := t.TempDir()
	buildTree(t, base, []node{
		{path: "top", typ: plan.TypeDir, mode: 0o755},
		{path: "top/l", typ: plan.TypeSymlink, target: "inside"},
		{path: "l", typ: plan.TypeSymlink, target: "at-root"},
	})
	got := walkAll(t, plan.NewWalker(fsroottest.Open(t, base), "top"))
	if len(got) != 1 || got[0].Path != "l" || got[0].Type != plan.TypeSymlink || got[0].Target != "inside" {
		t.Fatalf("got %+v, want one symlink l -> inside", got)
	}
}

func TestWalkerMissingTopIsEmpty(t *testing.T) {
	base := t.TempDir()
	r := fsroottest.Open(t, base)
	if err := os.Remove(base); err != nil { // the root itself vanishes
		t.Fatal(err)
	}
	if got := walkAll(t, plan.NewWalker(r, "")); len(got) != 0 {
		t.Errorf("walk of a removed root: got %q, want nothing", paths(got))
	}
	if got := walkAll(t, plan.NewWalker(r, "nope")); len(got) != 0 {
		t.Errorf("walk of a missing top: got %q, want nothing", paths(got))
	}
}

func TestWalkerCanceled(t *testing.T) {
	base := t.TempDir()
	buildTree(t, base, walkTree)
	w := plan.NewWalker(fsroottest.Open(t, base), "")
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := w.Next(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v, want context.Canceled", err)
	}
}

// A directory that cannot be listed, or a symlink whose target cannot be
// read, does not end the walk: it is yielded with Err saying why, nothing
// is yielded beneath it, and the rest of the tree follows, with any number
// of checkers. (Root reads everything, so the failures are made by
// swapping a file in just before the read.)
func TestWalkerUnreadableGoesOn(t *testing.T) {
	for _, checkers := range []int{1, 8} {
		base := t.TempDir()
		for _, d := range []string{"a", "b/inner", "c"} {
			if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"a/f", "b/g", "b/inner/h", "c/i"} {
			if err := os.WriteFile(filepath.Join(base, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("a", filepath.Join(base, "l")); err != nil {
			t.Fatal(err)
		}
		w := plan.NewWalkerN(fsroottest.Open(t, base), "", checkers)
		plan.SetWalkHook(w, func(op, rel string) {
			if (op == "readdir" && rel == "b") || (op == "readlink" && rel == "l") {
				os.RemoveAll(filepath.Join(base, rel))
				os.WriteFile(filepath.Join(base, rel), nil, 0o644) // ENOTDIR, EINVAL
			}
		})
		got := walkAll(t, w)
		var desc []string
		for _, e := range got {
			s := e.Path
			if e.Err != "" {
				s += " (" + e.Err + ")"
			}
			desc = append(desc, s)
		}
		want := []string{"a", "a/f", "b (not a directory)", "c", "c/i", "l (invalid argument)"}
		if !slices.Equal(desc, want) {
			t.Errorf("checkers %d: walk %q, want %q", checkers, desc, want)
		}
	}
}

// The tree id file is the served tree's, not its contents: a walk leaves
// it out at the root and nowhere else.
func TestWalkerLeavesOutTreeIDAtRoot(t *testing.T) {
	base := t.TempDir()
	buildTree(t, base, []node{
		{path: plan.TreeIDFile, typ: plan.TypeFile, mode: 0o644, data: "id\n"},
		{path: "d", typ: plan.TypeDir, mode: 0o755},
		{path: "d/" + plan.TreeIDFile, typ: plan.TypeFile, mode: 0o644, data: "user's\n"},
		{path: ".xfer-tree-idx", typ: plan.TypeFile, mode: 0o644, data: "user's\n"},
	})
	r := fsroottest.Open(t, base)
	for _, c := range []struct {
		top  string
		want []string
	}{
		{"", []string{".xfer-tree-idx", "d", "d/" + plan.TreeIDFile}},
		{"d", []string{plan.TreeIDFile}},
	} {
		t.Run("top="+c.top, func(t *testing.T) {
			if gp := paths(walkAll(t, plan.NewWalker(r, c.top))); !slices.Equal(gp, c.want) {
				t.Fatalf("walk of %q: got %q, want %q", c.top, gp, c.want)
			}
		})
	}
}
