package plan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/plan"
)

// filterTree is the tree the rule cases run against; TestFilterAgainstRsync
// builds it on disk. Sizes are those of the file contents.
var filterTree = []struct {
	path string
	typ  plan.Type
	size int64
}{
	{".hidden", plan.TypeFile, 1},
	{"a", plan.TypeDir, 0},
	{"a/b", plan.TypeDir, 0},
	{"a/b/c", plan.TypeFile, 10},
	{"a/x", plan.TypeDir, 0},
	{"a/x/y", plan.TypeDir, 0},
	{"a/x/y/b", plan.TypeDir, 0},
	{"a/x/y/b/c", plan.TypeFile, 11},
	{"a1", plan.TypeFile, 99},
	{"ab", plan.TypeFile, 100},
	{`back\slash`, plan.TypeFile, 101},
	{"build", plan.TypeDir, 0},
	{"build/out.o", plan.TypeFile, 5000},
	{"dir", plan.TypeDir, 0},
	{"dir/f", plan.TypeFile, 3},
	{"dir/sub", plan.TypeDir, 0},
	{"dir/sub/g", plan.TypeFile, 0},
	{"foo", plan.TypeDir, 0},
	{"foo/bar", plan.TypeDir, 0},
	{"foo/bar/f", plan.TypeFile, 7},
	{"foo1", plan.TypeFile, 12},
	{"link", plan.TypeSymlink, 0}, // -> foo
	{"src", plan.TypeDir, 0},
	{"src/build", plan.TypeDir, 0},
	{"src/build/gen.go", plan.TypeFile, 20},
	{"src/main.go", plan.TypeFile, 30},
	{"src/main_test.go", plan.TypeFile, 40},
	{"src/vendor", plan.TypeDir, 0},
	{"src/vendor/lib.go", plan.TypeFile, 50},
	{"x", plan.TypeDir, 0},
	{"x/.hidden", plan.TypeFile, 2},
	{"x/foo", plan.TypeDir, 0},
	{"x/foo/bar", plan.TypeDir, 0},
	{"x/foo/bar/g", plan.TypeFile, 8},
	{"x/foobar", plan.TypeFile, 9},
	{"x/z.txt", plan.TypeFile, 4},
	{"z.txt", plan.TypeFile, 6},
	{"日本", plan.TypeDir, 0},
	{"日本/é.txt", plan.TypeFile, 13},
}

// filterTreeEntries lists filterTree in Compare order.
func filterTreeEntries() []plan.Entry {
	var es []plan.Entry
	for _, n := range filterTree {
		es = append(es, plan.Entry{Path: n.path, Type: n.typ, Size: n.size, Mode: 0o644})
	}
	sort.Slice(es, func(i, j int) bool { return plan.Compare(es[i].Path, es[j].Path) < 0 })
	return es
}

// ruleCases pair rules (in filter-file syntax, applied in order) with one
// path of filterTree and whether it is transferred. TestFilterAgainstRsync
// checks every expectation against rsync itself.
var ruleCases = []struct {
	rules []string
	path  string
	want  bool
	// differs, when set, says why rsync decides otherwise on purpose.
	differs string
}{
	// No "/": the last component, at any depth. No special case for dotfiles.
	{[]string{"- *.txt"}, "z.txt", false, ""},
	{[]string{"- *.txt"}, "x/z.txt", false, ""},
	{[]string{"- *.txt"}, "a1", true, ""},
	{[]string{"- *.TXT"}, "z.txt", true, ""}, // case-sensitive
	{[]string{"- *"}, ".hidden", false, ""},
	{[]string{"- foo"}, "foo1", true, ""},
	{[]string{"- *_test.go"}, "src/main_test.go", false, ""},
	{[]string{"- *_test.go"}, "src/main.go", true, ""},
	// An excluded directory takes everything beneath it along.
	{[]string{"- foo"}, "foo/bar/f", false, ""},
	{[]string{"- foo"}, "x/foo/bar/g", false, ""},
	{[]string{"- link"}, "link", false, ""},
	// Leading "/": anchored at the top of the transfer.
	{[]string{"- /foo"}, "foo", false, ""},
	{[]string{"- /foo"}, "x/foo", true, ""},
	{[]string{"- /foo"}, "x/foo/bar/g", true, ""},
	{[]string{"- /build/"}, "build/out.o", false, ""},
	{[]string{"- /build/"}, "src/build/gen.go", true, ""},
	// An inner "/": matched against the end of the path, not anchored.
	{[]string{"- foo/bar"}, "foo/bar/f", false, ""},
	{[]string{"- foo/bar"}, "x/foo/bar", false, ""},
	{[]string{"- foo/bar"}, "foo", true, ""},
	{[]string{"- /foo/bar"}, "x/foo/bar", true, ""},
	{[]string{"- */foo"}, "x/foo", false, ""},
	{[]string{"- */foo"}, "foo", true, ""},
	{[]string{"- x/*"}, "x/z.txt", false, ""},
	{[]string{"- x/*"}, "x", true, ""},
	{[]string{"- a/b"}, "a/b/c", false, ""},
	{[]string{"- a/b"}, "a/x/y/b/c", true, ""},
	{[]string{"- y/b/"}, "a/x/y/b/c", false, ""},
	// Trailing "/": directories only (a symlink to one is not).
	{[]string{"- foo/"}, "foo", false, ""},
	{[]string{"- foo/"}, "x/foo/bar/g", false, ""},
	{[]string{"- link/"}, "link", true, ""},
	{[]string{"- build/"}, "src/build/gen.go", false, ""},
	// "**" crosses "/"; "*" does not.
	{[]string{"+ /x/", "+ /x/*", "- *"}, "x/foo", true, ""},
	{[]string{"+ /x/", "+ /x/*", "- *"}, "x/foo/bar", false, ""},
	{[]string{"- x/**"}, "x/foo/bar/g", false, ""},
	{[]string{"- x/**"}, "x", true, ""},
	{[]string{"- **"}, "a1", false, ""},
	{[]string{"- **/foo"}, "foo", false, ""}, // "**/" may match nothing at the start
	{[]string{"- **/foo"}, "x/foo", false, ""},
	{[]string{"- /**/foo"}, "foo", true, ""}, // ... but not after an anchoring "/"
	{[]string{"- /**/foo"}, "x/foo", false, ""},
	{[]string{"- **/bar/*"}, "foo/bar/f", false, ""},
	{[]string{"- a/**/b"}, "a/b", true, ""}, // "/**/" needs at least one directory
	{[]string{"- a/**/b"}, "a/x/y/b/c", false, ""},
	{[]string{"- foo**"}, "x/foobar", false, ""},
	{[]string{"- foo**"}, "foo1", false, ""},
	{[]string{"- foo**"}, "a1", true, ""},
	// "dir/***": the directory and everything in it.
	{[]string{"- dir/***"}, "dir", false, ""},
	{[]string{"- dir/***"}, "dir/sub/g", false, ""},
	{[]string{"+ dir/***", "- *"}, "dir/sub/g", true, ""},
	{[]string{"+ dir/***", "- *"}, "a1", false, ""},
	// Character classes and "?".
	{[]string{"- ?b"}, "ab", false, ""},
	{[]string{"- ?b"}, "a1", true, ""},
	{[]string{"- [!a]*"}, "ab", true, ""},
	{[]string{"- [!a]*"}, "z.txt", false, ""},
	{[]string{"- [^a]*"}, "z.txt", false, ""},
	{[]string{"- [a-c]?"}, "ab", false, ""},
	{[]string{"- [a-c]?"}, "foo1", true, ""},
	{[]string{"- *[[:digit:]]"}, "foo1", false, ""},
	{[]string{"- *[[:digit:]]"}, "ab", true, ""},
	{[]string{"- x[/]foo"}, "x/foo", true, ""}, // a class never matches "/"
	{[]string{"- ?.txt"}, "日本/é.txt", false, "rsync's ? matches one byte, xfer's one UTF-8 character"},
	{[]string{"- 日本/"}, "日本/é.txt", false, ""},
	// Backslash: literal in a pattern without wildcards, an escape in one with them.
	{[]string{`- back\slash`}, `back\slash`, false, ""},
	{[]string{`- back\slash*`}, `back\slash`, true, ""},
	{[]string{`- back\\slash*`}, `back\slash`, false, ""},
	{[]string{`- \*`}, "a1", true, ""},
	// First match wins; no match includes.
	{[]string{"+ *.txt", "- *"}, "z.txt", true, ""},
	{[]string{"+ *.txt", "- *"}, "x/z.txt", false, ""}, // x itself is excluded
	{[]string{"+ */", "+ *.txt", "- *"}, "x/z.txt", true, ""},
	{[]string{"+ */", "+ *.txt", "- *"}, "x/foobar", false, ""},
	{[]string{"+ */", "+ *.txt", "- *"}, "a", true, ""},
	{[]string{"- *", "+ foo"}, "foo", false, ""},
	{[]string{"+ foo", "- *"}, "foo", true, ""},
	{[]string{"+ foo", "- *"}, "foo/bar/f", false, ""},
	{[]string{"+ dir/sub/g", "- dir"}, "dir/sub/g", false, ""}, // no resurrection
	{[]string{"+ /x/", "+ /x/z.txt", "- *"}, "x/z.txt", true, ""},
	{[]string{"+ /x/", "+ /x/z.txt", "- *"}, "x/foobar", false, ""},
	{[]string{"+ /src/vendor/***", "- *.go"}, "src/vendor/lib.go", true, ""},
	{[]string{"+ /src/vendor/***", "- *.go"}, "src/main.go", false, ""},
	{[]string{"- include_*"}, "a1", true, ""},
	{[]string{"exclude *.o"}, "build/out.o", false, ""},
	{[]string{"-_z.txt"}, "z.txt", false, ""},
	// "!" clears the rules before it.
	{[]string{"- *", "!", "- z.txt"}, "a1", true, ""},
	{[]string{"- *", "!", "- z.txt"}, "z.txt", false, ""},
	// The pattern is taken verbatim: a trailing space is part of it.
	{[]string{"- z.txt "}, "z.txt", true, ""},
}

func mustRules(t *testing.T, lines []string) []plan.Rule {
	t.Helper()
	var rules []plan.Rule
	for _, l := range lines {
		r, err := plan.ParseRule(l)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", l, err)
		}
		rules = append(rules, r)
	}
	return rules
}

// ruleFilter builds a filter of rules (filter-file syntax) without limits.
func ruleFilter(t *testing.T, lines ...string) *plan.Filter {
	t.Helper()
	return mustFilter(t, plan.FilterOptions{Rules: mustRules(t, lines), MinSize: -1, MaxSize: -1})
}

func mustFilter(t *testing.T, o plan.FilterOptions) *plan.Filter {
	t.Helper()
	f, err := plan.NewFilter(o)
	if err != nil {
		t.Fatalf("NewFilter: %v", err)
	}
	return f
}

// drainPaths lists l to the end.
func drainPaths(t *testing.T, l plan.Lister) []string {
	t.Helper()
	return paths(walkAll(t, l))
}

func TestFilterRules(t *testing.T) {
	tree := filterTreeEntries()
	byPath := map[string]plan.Entry{}
	for _, e := range tree {
		byPath[e.Path] = e
	}
	for _, c := range ruleCases {
		name := strings.Join(c.rules, ", ") + " on " + c.path
		e, ok := byPath[c.path]
		if !ok {
			t.Fatalf("%s: path not in filterTree", name)
		}
		f := ruleFilter(t, c.rules...)
		if got := f.Match(e); got != c.want {
			t.Errorf("%s: Match = %v, want %v", name, got, c.want)
		}
		// The Lister wrapper agrees with Match on the whole tree.
		listed := drainPaths(t, f.Lister(&plan.SliceLister{Entries: tree}))
		var want []string
		for _, e := range tree {
			if f.Match(e) {
				want = append(want, e.Path)
			}
		}
		if !slices.Equal(listed, want) {
			t.Errorf("%s: Lister yields %q, Match admits %q", name, listed, want)
		}
	}
}

// rsyncRun is one rsync invocation and the filter that should agree with it.
type rsyncRun struct {
	name string
	args []string // rsync options: --filter=..., --min-size=...
	f    *plan.Filter
	got  map[string]bool // the paths rsync transfers
	err  error
}

// compareWithRsync runs rsync -a --dry-run from dir into an empty
// directory for each run and checks that the filter selects exactly the
// entries rsync transfers: dir walked through f.Lister, kept if f.Match.
func compareWithRsync(t *testing.T, dir string, runs []*rsyncRun) {
	t.Helper()
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		t.Skip("rsync not installed")
	}
	if testing.Short() {
		t.Skip("runs rsync; skipped with -short")
	}
	// rsync spends most of its ~0.1s per run waiting, not computing: run
	// several at once.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := append([]string{"-a", "--dry-run", "-8", "--out-format=%n"}, r.args...)
			args = append(args, dir+"/", filepath.Join(t.TempDir(), "dst")+"/")
			out, err := exec.Command(rsync, args...).CombinedOutput()
			if err != nil {
				r.err = fmt.Errorf("rsync %q: %v\n%s", args, err, out)
				return
			}
			r.got = map[string]bool{}
			for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
				if l = strings.TrimSuffix(l, "/"); l != "." && l != "" {
					r.got[l] = true
				}
			}
		}()
	}
	wg.Wait()

	root, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, r := range runs {
		if r.err != nil {
			t.Fatal(r.err)
		}
		ours := map[string]bool{}
		for _, p := range drainPaths(t, r.f.Lister(plan.NewWalker(root, ""))) {
			info, err := root.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if r.f.Match(plan.EntryFromInfo(p, info)) {
				ours[p] = true
			}
		}
		for p := range r.got {
			if !ours[p] {
				t.Errorf("%s: rsync transfers %q, xfer does not", r.name, p)
			}
		}
		for p := range ours {
			if !r.got[p] {
				t.Errorf("%s: xfer transfers %q, rsync does not", r.name, p)
			}
		}
	}
}

// TestFilterAgainstRsync builds filterTree on disk and checks, for every
// rule set of ruleCases and a few size limits, that xfer selects exactly
// the entries rsync transfers, and that each case's expectation is what
// rsync does.
func TestFilterAgainstRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	src := t.TempDir()
	for _, n := range filterTree {
		p := filepath.Join(src, filepath.FromSlash(n.path))
		var err error
		switch n.typ {
		case plan.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case plan.TypeFile:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, bytes.Repeat([]byte("x"), int(n.size)), 0o644)
			}
		case plan.TypeSymlink:
			err = os.Symlink("foo", p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	var runs []*rsyncRun
	byRules := map[string]*rsyncRun{}
	for _, c := range ruleCases {
		key := strings.Join(c.rules, "\n")
		if c.differs != "" || byRules[key] != nil {
			continue
		}
		r := &rsyncRun{name: strings.Join(c.rules, ", "), f: ruleFilter(t, c.rules...)}
		for _, rule := range c.rules {
			r.args = append(r.args, "--filter="+rule)
		}
		byRules[key] = r
		runs = append(runs, r)
	}
	for _, lim := range []struct{ min, max int64 }{{-1, 100}, {10, -1}, {10, 100}, {0, 0}} {
		r := &rsyncRun{args: []string{"--filter=- /build/"}}
		if lim.min >= 0 {
			r.args = append(r.args, "--min-size="+strconv.FormatInt(lim.min, 10))
		}
		if lim.max >= 0 {
			r.args = append(r.args, "--max-size="+strconv.FormatInt(lim.max, 10))
		}
		r.name = strings.Join(r.args, " ")
		r.f = mustFilter(t, plan.FilterOptions{Rules: mustRules(t, []string{"- /build/"}), MinSize: lim.min, MaxSize: lim.max})
		runs = append(runs, r)
	}
	compareWithRsync(t, src, runs)

	// Each case's expectation is rsync's.
	for _, c := range ruleCases {
		if r := byRules[strings.Join(c.rules, "\n")]; r != nil && r.got[c.path] != c.want {
			t.Errorf("%s on %s: rsync says %v, the case says %v", r.name, c.path, r.got[c.path], c.want)
		}
	}
}

// Character classes, POSIX classes and their corner cases select the same
// one-character names as with rsync.
func TestFilterClassesAgainstRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	src := t.TempDir()
	for _, n := range []string{"a", "B", "f", "G", "7", "_", "-", "]", "[", ":", "!", "^", `\`, "~", " ", "ab"} {
		if err := os.WriteFile(filepath.Join(src, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var runs []*rsyncRun
	for _, p := range []string{
		"[[:alpha:]]", "[[:digit:]]", "[[:alnum:]]", "[[:punct:]]", "[[:upper:]]", "[[:lower:]]",
		"[[:xdigit:]]", "[[:space:]]", "[[:blank:]]", "[[:graph:]]", "[[:print:]]", "[[:cntrl:]]",
		"[^[:alpha:]]", "[[:alpha:]_]", "[!a-z]", "[]]", "[!]]", "[]a]", "[a-]", "[-a]", `[\]]`, `[\\]`,
		"[[]", "[[:]", "[[:a]", "[a-c-f]", `[a\-c]`, `[\a-\c]`, "?[b]", "[a-f][a-f]", `\[`, "[Z-a]",
	} {
		runs = append(runs, &rsyncRun{name: "- " + p, args: []string{"--filter=- " + p}, f: ruleFilter(t, "- "+p)})
	}
	compareWithRsync(t, src, runs)
}

// Walking stops at an excluded directory: the filter asks a lister that
// can to skip it, and drops its contents from one that cannot.
func TestFilterListerSkipsExcludedDirs(t *testing.T) {
	tree := filterTreeEntries()
	f := ruleFilter(t, "- /a/", "- src/build/", "- foo")
	want := []string{".hidden", "a1", "ab", `back\slash`, "build", "build/out.o", "dir", "dir/f", "dir/sub", "dir/sub/g",
		"foo1", "link", "src", "src/main.go", "src/main_test.go", "src/vendor", "src/vendor/lib.go",
		"x", "x/.hidden", "x/foobar", "x/z.txt", "z.txt", "日本", "日本/é.txt"}

	if got := drainPaths(t, f.Lister(&plan.SliceLister{Entries: tree})); !slices.Equal(got, want) {
		t.Errorf("plain lister: got %q\nwant %q", got, want)
	}
	sk := &skippingLister{entries: tree}
	if got := drainPaths(t, f.Lister(sk)); !slices.Equal(got, want) {
		t.Errorf("skipping lister: got %q\nwant %q", got, want)
	}
	if wantSkips := []string{"a", "foo", "src/build", "x/foo"}; !slices.Equal(sk.skipped, wantSkips) {
		t.Errorf("SkipDir after %q, want %q", sk.skipped, wantSkips)
	}
	if sk.read > len(want)+len(sk.skipped) {
		t.Errorf("read %d entries for %d results and %d skipped dirs: descended into an excluded one", sk.read, len(want), len(sk.skipped))
	}

	// Errors and cancellation pass through.
	boom := errors.New("boom")
	if _, err := f.Lister(errLister{boom}).Next(context.Background()); !errors.Is(err, boom) {
		t.Errorf("error from the wrapped lister: got %v", err)
	}
	// Without rules the lister is returned as is.
	var nilFilter *plan.Filter
	sl := &plan.SliceLister{}
	if nilFilter.Lister(sl) != plan.Lister(sl) || mustFilter(t, plan.FilterOptions{MinSize: -1, MaxSize: 10}).Lister(sl) != plan.Lister(sl) {
		t.Error("a filter without rules wraps the lister")
	}
}

// skippingLister lists entries like a Walker that can skip directories.
type skippingLister struct {
	entries []plan.Entry
	i       int
	last    plan.Entry
	skipped []string
	read    int
}

func (s *skippingLister) Next(context.Context) (plan.Entry, error) {
	if s.i >= len(s.entries) {
		return plan.Entry{}, io.EOF
	}
	s.last = s.entries[s.i]
	s.i++
	s.read++
	return s.last, nil
}

func (s *skippingLister) SkipDir() {
	if s.last.Type != plan.TypeDir {
		return
	}
	s.skipped = append(s.skipped, s.last.Path)
	for s.i < len(s.entries) && strings.HasPrefix(s.entries[s.i].Path, s.last.Path+"/") {
		s.i++
	}
}

type errLister struct{ err error }

func (l errLister) Next(context.Context) (plan.Entry, error) { return plan.Entry{}, l.err }

func TestFilterSizeAndAge(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	file := func(size int64, age time.Duration) plan.Entry {
		return plan.Entry{Path: "d/f", Type: plan.TypeFile, Size: size, MtimeNs: now.Add(-age).UnixNano()}
	}
	huge, old := int64(1<<40), 1000*time.Hour
	cases := []struct {
		name string
		opt  plan.FilterOptions
		e    plan.Entry
		want bool
	}{
		{"no limits", plan.FilterOptions{MinSize: -1, MaxSize: -1}, file(huge, old), true},
		{"max-size: equal passes", plan.FilterOptions{MinSize: -1, MaxSize: 100}, file(100, 0), true},
		{"max-size: larger fails", plan.FilterOptions{MinSize: -1, MaxSize: 100}, file(101, 0), false},
		{"max-size 0: empty file passes", plan.FilterOptions{MinSize: -1, MaxSize: 0}, file(0, 0), true},
		{"max-size 0: one byte fails", plan.FilterOptions{MinSize: -1, MaxSize: 0}, file(1, 0), false},
		{"min-size: equal passes", plan.FilterOptions{MinSize: 100, MaxSize: -1}, file(100, 0), true},
		{"min-size: smaller fails", plan.FilterOptions{MinSize: 100, MaxSize: -1}, file(99, 0), false},
		{"size limits skip directories", plan.FilterOptions{MinSize: 100, MaxSize: 200}, plan.Entry{Path: "d", Type: plan.TypeDir}, true},
		{"size limits skip symlinks", plan.FilterOptions{MinSize: 100, MaxSize: 200}, plan.Entry{Path: "l", Type: plan.TypeSymlink, Size: 5}, true},
		{"max-age: younger passes", plan.FilterOptions{MinSize: -1, MaxSize: -1, MaxAge: time.Hour, Now: now}, file(1, 59*time.Minute), true},
		{"max-age: equal passes", plan.FilterOptions{MinSize: -1, MaxSize: -1, MaxAge: time.Hour, Now: now}, file(1, time.Hour), true},
		{"max-age: older fails", plan.FilterOptions{MinSize: -1, MaxSize: -1, MaxAge: time.Hour, Now: now}, file(1, time.Hour+time.Second), false},
		{"max-age: future mtime passes", plan.FilterOptions{MinSize: -1, MaxSize: -1, MaxAge: time.Hour, Now: now}, file(1, -time.Hour), true},
		{"min-age: older passes", plan.FilterOptions{MinSize: -1, MaxSize: -1, MinAge: time.Hour, Now: now}, file(1, old), true},
		{"min-age: younger fails", plan.FilterOptions{MinSize: -1, MaxSize: -1, MinAge: time.Hour, Now: now}, file(1, time.Minute), false},
		{"age limits skip directories", plan.FilterOptions{MinSize: -1, MaxSize: -1, MinAge: time.Hour, Now: now}, plan.Entry{Path: "d", Type: plan.TypeDir, MtimeNs: now.UnixNano()}, true},
		{"window", plan.FilterOptions{MinSize: 10, MaxSize: 20, MinAge: time.Hour, MaxAge: 2 * time.Hour, Now: now}, file(15, 90*time.Minute), true},
		{"rules and limits both apply", plan.FilterOptions{Rules: []plan.Rule{{Include: true, Pattern: "f"}}, MinSize: 10, MaxSize: -1}, file(5, 0), false},
	}
	for _, c := range cases {
		f, err := plan.NewFilter(c.opt)
		if err != nil {
			t.Fatalf("%s: NewFilter: %v", c.name, err)
		}
		if got := f.Match(c.e); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.name, got, c.want)
		}
	}
}

// diffOps runs f.Diff and renders each op as "kind path reason".
func filterDiffOps(t *testing.T, f *plan.Filter, src, dst []plan.Entry, del bool) []string {
	t.Helper()
	return filterDiffWith(t, f, src, dst, plan.DiffOptions{Delete: del})
}

func filterDiffWith(t *testing.T, f *plan.Filter, src, dst []plan.Entry, opt plan.DiffOptions) []string {
	t.Helper()
	var got []string
	err := f.Diff(context.Background(), &plan.SliceLister{Entries: src}, &plan.SliceLister{Entries: dst},
		opt, func(op plan.Op) error {
			got = append(got, strings.TrimSpace(op.Kind.String()+" "+op.Src.Path+" "+op.Reason))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Limits act on what is transferred, not on the listings: a source file
// outside them is skipped, and its destination copy is not deleted.
func TestFilterDiffLimits(t *testing.T) {
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	f := mustFilter(t, plan.FilterOptions{MinSize: -1, MaxSize: 100, MaxAge: 24 * time.Hour, Now: now})
	fresh := now.Add(-time.Hour).UnixNano()
	stale := now.Add(-48 * time.Hour).UnixNano()
	src := []plan.Entry{
		{Path: "big", Type: plan.TypeFile, Size: 500, MtimeNs: fresh},
		{Path: "dir", Type: plan.TypeDir, MtimeNs: stale},
		{Path: "dir/old", Type: plan.TypeFile, Size: 1, MtimeNs: stale},
		{Path: "new", Type: plan.TypeFile, Size: 10, MtimeNs: fresh},
		{Path: "touched", Type: plan.TypeFile, Size: 10, MtimeNs: stale},
	}
	dst := []plan.Entry{
		{Path: "big", Type: plan.TypeFile, Size: 5, MtimeNs: stale},
		{Path: "dir", Type: plan.TypeDir, MtimeNs: stale},
		{Path: "extra", Type: plan.TypeFile, Size: 1000, MtimeNs: stale},
		{Path: "touched", Type: plan.TypeFile, Size: 10, MtimeNs: fresh},
	}
	want := []string{
		"skip big max-size",
		"mkdir dir exists",
		"skip dir/old max-age",
		"delete extra extra",
		"put new new",
		"skip touched max-age",
	}
	if got := filterDiffOps(t, f, src, dst, true); !slices.Equal(got, want) {
		t.Errorf("ops:\n got %q\nwant %q", got, want)
	}
	// A nil filter is plain Diff.
	want = []string{"put big size", "mkdir dir exists", "put dir/old new", "delete extra extra", "put new new", "put touched mtime"}
	if got := filterDiffOps(t, nil, src, dst, true); !slices.Equal(got, want) {
		t.Errorf("nil filter ops:\n got %q\nwant %q", got, want)
	}
}

// Deletion respects exclusions, as in rsync: an excluded destination entry
// is kept, also inside a directory that is deleted or replaced.
func TestFilterDiffProtectsExcluded(t *testing.T) {
	f := ruleFilter(t, "- *.log", "- /cache/")
	file := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeFile, Size: 1} }
	dir := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeDir} }
	src := []plan.Entry{file("keep"), file("rep"), file("rep2")}
	dst := []plan.Entry{
		file("a.log"),
		dir("cache"), file("cache/x"),
		file("gone"),
		file("keep"),
		dir("old"), file("old/a.txt"),
		dir("old/deep"), file("old/deep/b.log"), file("old/deep/c"),
		dir("old/e"), file("old/e/f"),
		dir("rep"), file("rep/x.log"),
		dir("rep2"), file("rep2/y"),
		dir("sub"), file("sub/y"),
	}
	want := []string{
		"delete gone extra",
		"skip keep",
		// old holds old/deep/b.log: delete around it, keep old and old/deep.
		"delete old/a.txt extra",
		"delete old/deep/c extra",
		"delete old/e/f extra",
		"delete old/e extra",
		// rep holds rep/x.log: do not replace it by the file.
		"skip rep protected",
		"put rep2 type",
		// sub holds nothing excluded: it goes, deepest first.
		"delete sub/y extra",
		"delete sub extra",
	}
	if got := filterDiffOps(t, f, src, dst, true); !slices.Equal(got, want) {
		t.Errorf("sync ops:\n got %q\nwant %q", got, want)
	}
	// Copy (no --delete) still protects against replacement.
	want = []string{"skip keep", "skip rep protected", "put rep2 type"}
	if got := filterDiffOps(t, f, src, dst, false); !slices.Equal(got, want) {
		t.Errorf("copy ops:\n got %q\nwant %q", got, want)
	}
	// A directory deleted at the very end of the listing.
	want = []string{"delete z/q extra", "delete z extra"}
	if got := filterDiffOps(t, f, nil, []plan.Entry{dir("z"), file("z/q")}, true); !slices.Equal(got, want) {
		t.Errorf("trailing directory:\n got %q\nwant %q", got, want)
	}
	// Errors from emit stop the diff.
	boom := errors.New("boom")
	err := f.Diff(context.Background(), &plan.SliceLister{}, &plan.SliceLister{Entries: []plan.Entry{dir("z"), file("z/q")}},
		plan.DiffOptions{Delete: true}, func(plan.Op) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("emit error: got %v", err)
	}
}

// --delete-excluded: what the rules exclude at the destination is deleted
// like any extra; a directory goes whole.
func TestFilterDiffDeleteExcluded(t *testing.T) {
	f := ruleFilter(t, "- *.log", "- /cache/")
	file := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeFile, Size: 1} }
	dir := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeDir} }
	src := []plan.Entry{file("a.log"), file("keep"), dir("rep"), file("rep/x.log")}
	dst := []plan.Entry{file("a.log"), dir("cache"), file("cache/x"), file("keep"), dir("rep"), file("rep/x.log")}
	want := []string{"delete a.log extra", "delete cache extra", "skip keep", "mkdir rep exists", "delete rep/x.log extra"}
	if got := filterDiffWith(t, f, src, dst, plan.DiffOptions{Delete: true, DeleteExcluded: true}); !slices.Equal(got, want) {
		t.Errorf("ops:\n got %q\nwant %q", got, want)
	}
}

// --files-from: only the listed paths and the directories above them; a
// listed directory is not recursed into; rules apply on top; what is not
// listed is neither transferred nor deleted.
func TestFilterFilesFrom(t *testing.T) {
	list, err := plan.ParseFilesFrom(strings.NewReader("# list\n\n/a/b/f\n./top\nd/\nx.log\n;c\n"), "list")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/b/f", "top", "d", "x.log"}; !slices.Equal(list, want) {
		t.Fatalf("ParseFilesFrom = %q, want %q", list, want)
	}
	f := mustFilter(t, plan.FilterOptions{FilesFrom: list, Rules: mustRules(t, []string{"- *.log"}), MinSize: -1, MaxSize: -1})
	file := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeFile, Size: 1} }
	dir := func(p string) plan.Entry { return plan.Entry{Path: p, Type: plan.TypeDir} }
	src := []plan.Entry{dir("a"), file("a/x"), dir("a/b"), file("a/b/f"), file("a/b/g"), dir("d"), file("d/in"),
		file("top"), file("x.log")}
	dst := []plan.Entry{file("old")}
	want := []string{"mkdir a new", "mkdir a/b new", "put a/b/f new", "mkdir d new", "put top new"}
	if got := filterDiffOps(t, f, src, dst, true); !slices.Equal(got, want) {
		t.Errorf("ops:\n got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"../x\n", "a/../../x\n"} {
		if _, err := plan.ParseFilesFrom(strings.NewReader(bad), "list"); err == nil || !strings.Contains(err.Error(), "leaves the source") {
			t.Errorf("ParseFilesFrom(%q) = %v, want a refusal", bad, err)
		}
	}
}

func TestParsePatternFile(t *testing.T) {
	rules, err := plan.ParsePatternFile(strings.NewReader("# c\n*.o\n\n+ keep.o\n;x\n- tmp/\r\n"), "pats", false)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(rules))
	for i, r := range rules {
		got[i] = r.String()
	}
	if want := []string{"- *.o", "+ keep.o", "- tmp/"}; !slices.Equal(got, want) {
		t.Errorf("rules = %q, want %q", got, want)
	}
	if _, err := plan.ParsePatternFile(strings.NewReader("ok\n[z-a\n"), "pats", true); err == nil || !strings.HasPrefix(err.Error(), "pattern file pats line 2:") {
		t.Errorf("bad pattern: %v", err)
	}
}

func TestParseRule(t *testing.T) {
	cases := []struct {
		in      string
		want    plan.Rule
		wantErr string
	}{
		{in: "+ *.go", want: plan.Rule{Include: true, Pattern: "*.go"}},
		{in: "- *.o", want: plan.Rule{Pattern: "*.o"}},
		{in: "include /src/", want: plan.Rule{Include: true, Pattern: "/src/"}},
		{in: "exclude a b", want: plan.Rule{Pattern: "a b"}},
		{in: "+_x", want: plan.Rule{Include: true, Pattern: "x"}},
		{in: "-  lead", want: plan.Rule{Pattern: " lead"}},
		{in: "- trail ", want: plan.Rule{Pattern: "trail "}},
		{in: "!", want: plan.Rule{Clear: true}},
		{in: "! ", want: plan.Rule{Clear: true}},
		{in: "clear", want: plan.Rule{Clear: true}},
		{in: "- ", wantErr: "empty pattern"},
		{in: "-", wantErr: "missing pattern"},
		{in: "-foo", wantErr: "want a space"},
		{in: "excludes x", wantErr: "want a space"},
		{in: "*.go", wantErr: `want "+ PATTERN"`},
		{in: "merge rules.txt", wantErr: `want "+ PATTERN"`},
		{in: "P /x", wantErr: `want "+ PATTERN"`},
		{in: "-/ x", wantErr: "want a space"},
		{in: "-, x", wantErr: "modifiers are not supported"},
		{in: "! x", wantErr: "takes no pattern"},
		{in: "- /", wantErr: "matches nothing"},
		{in: "- file[1", wantErr: "unterminated character class"},
		{in: "- [[:alpah:]]", wantErr: "unknown character class [:alpah:]"},
		{in: `- *\`, wantErr: `lone "\"`},
		{in: `- a\`, want: plan.Rule{Pattern: `a\`}}, // no wildcard: literal
	}
	for _, c := range cases {
		got, err := plan.ParseRule(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "rule "+strconv.Quote(c.in)) {
				t.Errorf("ParseRule(%q) error = %v, want one quoting the rule and containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if rt, err := plan.ParseRule(got.String()); err != nil || rt != got {
			t.Errorf("ParseRule(%q.String()) = %+v, %v: does not round-trip", c.in, rt, err)
		}
	}
}

func TestParseFilterFile(t *testing.T) {
	in := "# build products\n" +
		"- *.o\r\n" +
		"\n" +
		"   \t\n" +
		"; another comment\n" +
		"+ /src/***\n" +
		"!\n" +
		"include keep\n" +
		"exclude *" // no final newline
	got, err := plan.ParseFilterFile(strings.NewReader(in), "rules.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Rule{
		{Pattern: "*.o"},
		{Include: true, Pattern: "/src/***"},
		{Clear: true},
		{Include: true, Pattern: "keep"},
		{Pattern: "*"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules %+v, want %+v", got, want)
	}
	// "!" drops what came before it, flags included.
	f := mustFilter(t, plan.FilterOptions{Rules: append([]plan.Rule{{Pattern: "keep"}}, got...), MinSize: -1, MaxSize: -1})
	for p, want := range map[string]bool{"keep": true, "a.o": false, "src": false} {
		if f.Match(plan.Entry{Path: p, Type: plan.TypeFile}) != want {
			t.Errorf("after a clear, %s included = %v, want %v", p, !want, want)
		}
	}

	if rules, err := plan.ParseFilterFile(strings.NewReader(""), "empty"); err != nil || len(rules) != 0 {
		t.Errorf("empty file: %v, %v", rules, err)
	}
	errCases := []struct{ in, want string }{
		{"- a\n\n*.txt\n", `filter file f line 3: rule "*.txt": want "+ PATTERN"`},
		{"# c\r\n- [x\r\n", `filter file f line 2: rule "- [x": unterminated character class`},
		{" - a\n", `filter file f line 1: rule " - a"`},
		{"!!\n", `filter file f line 1: rule "!!": a clear ("!") takes no pattern`},
	}
	for _, c := range errCases {
		_, err := plan.ParseFilterFile(strings.NewReader(c.in), "f")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ParseFilterFile(%q) error = %v, want %q...", c.in, err, c.want)
		}
	}
	_, err = plan.ParseFilterFile(iotest.ErrReader(errors.New("disk on fire")), "f")
	if err == nil || err.Error() != "filter file f line 1: disk on fire" {
		t.Errorf("read error: %v", err)
	}
}

func TestNewFilterValidates(t *testing.T) {
	cases := []struct {
		opt  plan.FilterOptions
		want string
	}{
		{plan.FilterOptions{Rules: []plan.Rule{{Pattern: "ok"}, {Pattern: "[x"}}, MinSize: -1, MaxSize: -1}, `filter rule 2 (- [x): unterminated character class`},
		{plan.FilterOptions{Rules: []plan.Rule{{Include: true}}, MinSize: -1, MaxSize: -1}, `filter rule 1 (+ ): empty pattern`},
		{plan.FilterOptions{MinSize: 10, MaxSize: 5}, "minimum size 10 exceeds maximum size 5"},
		{plan.FilterOptions{MinSize: -2, MaxSize: -1}, "minimum size -2"},
		{plan.FilterOptions{MinSize: -1, MaxSize: -7}, "maximum size -7"},
		{plan.FilterOptions{MinSize: -1, MaxSize: -1, MinAge: -time.Second}, "minimum age -1s"},
		{plan.FilterOptions{MinSize: -1, MaxSize: -1, MaxAge: -time.Second}, "maximum age -1s"},
		{plan.FilterOptions{MinSize: -1, MaxSize: -1, MinAge: 2 * time.Hour, MaxAge: time.Hour}, "minimum age 2h0m0s exceeds maximum age 1h0m0s"},
	}
	for _, c := range cases {
		if _, err := plan.NewFilter(c.opt); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("NewFilter(%+v) error = %v, want %q...", c.opt, err, c.want)
		}
	}
	empties := []plan.FilterOptions{
		{MinSize: -1, MaxSize: -1},
		{Rules: []plan.Rule{{Pattern: "x"}, {Clear: true}}, MinSize: -1, MaxSize: -1},
	}
	for _, o := range empties {
		if f, err := plan.NewFilter(o); err != nil || !f.Empty() {
			t.Errorf("NewFilter(%+v): Empty() false or error %v", o, err)
		}
	}
	if f, _ := plan.NewFilter(plan.FilterOptions{MinSize: -1, MaxSize: 1}); f.Empty() {
		t.Error("a filter with a size limit is Empty")
	}
	var nilFilter *plan.Filter
	if !nilFilter.Empty() || !nilFilter.Match(plan.Entry{Path: "x", Type: plan.TypeFile}) {
		t.Error("a nil filter must include everything")
	}
}

func TestFilterOptionsJSON(t *testing.T) {
	in := plan.FilterOptions{Rules: []plan.Rule{{Pattern: "*.o"}, {Clear: true}, {Include: true, Pattern: "x"}}, MinSize: -1, MaxSize: 0, MaxAge: time.Hour, Now: time.Now()}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out plan.FilterOptions
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Rules, in.Rules) || out.MinSize != -1 || out.MaxSize != 0 || out.MaxAge != time.Hour || !out.Now.IsZero() {
		t.Errorf("round trip of %s: %+v", b, out)
	}
	// Sizes left out mean no bound, not "empty files only".
	if err := json.Unmarshal([]byte(`{"rules":[{"pattern":"*.o"}]}`), &out); err != nil {
		t.Fatal(err)
	}
	if out.MinSize != -1 || out.MaxSize != -1 || len(out.Rules) != 1 {
		t.Errorf("decoded %+v, want sizes -1", out)
	}
	if err := json.Unmarshal([]byte(`{"min_size":"x"}`), &out); err == nil {
		t.Error("bad JSON accepted")
	}
}

// Flags keep their command-line order across --include, --exclude and
// --filter-from.
func TestRuleArgs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules")
	if err := os.WriteFile(file, []byte("+ *.go\n- *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ra plan.RuleArgs
	fs := flag.NewFlagSet("xfer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(ra.Include(), "include", "")
	fs.Var(ra.Exclude(), "exclude", "")
	fs.Var(ra.FilterFrom(), "filter-from", "")
	if !ra.Empty() {
		t.Error("Empty before any flag")
	}
	if err := fs.Parse([]string{"-exclude", "/vendor/", "-include", "main.c", "-filter-from", file, "-exclude", "*.c"}); err != nil {
		t.Fatal(err)
	}
	rules, err := ra.Rules(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Rule{{Pattern: "/vendor/"}, {Include: true, Pattern: "main.c"}, {Include: true, Pattern: "*.go"}, {Pattern: "*"}, {Pattern: "*.c"}}
	if !slices.Equal(rules, want) {
		t.Errorf("rules %+v, want %+v", rules, want)
	}
	if got := fs.Lookup("include").Value.(plan.RuleFlag).Args(); got != &ra {
		t.Error("RuleFlag.Args does not lead back to its RuleArgs")
	}

	if err := fs.Parse([]string{"-exclude", "[oops"}); err == nil || !strings.Contains(err.Error(), "unterminated character class") {
		t.Errorf("bad pattern on the command line: %v", err)
	}
	var missing plan.RuleArgs
	missing.FilterFrom().Set(filepath.Join(dir, "nope"))
	if _, err := missing.Rules(nil); err == nil || !strings.HasPrefix(err.Error(), "filter file "+filepath.Join(dir, "nope")+": ") {
		t.Errorf("missing filter file: %v", err)
	}
	var bad plan.RuleArgs
	bad.FilterFrom().Set("rules")
	_, err = bad.Rules(func(string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("- ok\nbad\n")), nil })
	if err == nil || !strings.HasPrefix(err.Error(), `filter file rules line 2: rule "bad"`) {
		t.Errorf("bad filter file: %v", err)
	}
}

func TestParseAge(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"2w3d12h", (17*24 + 12) * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"", 0, false},
		{"10", 0, false},
		{"-1d", 0, false},
		{"3y", 0, false},
		{"1 d", 0, false},
		{"d", 0, false},
		{"99999999w", 0, false},
	}
	for _, c := range cases {
		got, err := plan.ParseAge(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}

// On the patterns both understand (no "**", "\", "[!", POSIX classes or
// "/" inside a class), the matcher agrees with path.Match.
func TestFilterAgreesWithPathMatch(t *testing.T) {
	patterns := []string{"*", "*.go", "a?c", "[a-c]*", "[^a]*", "*/*.go", "a/*", "?/?", "日?", "*c", "a*b*c"}
	names := []string{"a", "abc", "a/b.go", "x.go", "a/b/c.go", "ä", "日本", "aXbYc", "a/c", "b/c", ".go"}
	for _, p := range patterns {
		f := mustFilter(t, plan.FilterOptions{Rules: []plan.Rule{{Pattern: "/" + p}}, MinSize: -1, MaxSize: -1})
		for _, n := range names {
			want, err := path.Match(p, n)
			if err != nil {
				t.Fatal(err)
			}
			// An excluded parent would hide the answer: look at the last
			// component's own decision by checking the parent too.
			e := plan.Entry{Path: n, Type: plan.TypeFile}
			parentOut := plan.Dir(n) != "" && !f.Match(plan.Entry{Path: plan.Dir(n), Type: plan.TypeDir})
			if got := !f.Match(e); got != want && !parentOut {
				t.Errorf("pattern %q on %q: xfer matches %v, path.Match %v", p, n, got, want)
			}
		}
	}
}

// TestFilterLists: Lists is what Filter.Lister passes (the rules, on the
// entry and the directories above it), whatever the size and age limits
// say; Match applies both.
func TestFilterLists(t *testing.T) {
	var rules []plan.Rule
	for _, s := range []string{"- skip/", "- *.tmp"} {
		r, err := plan.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	f, err := plan.NewFilter(plan.FilterOptions{Rules: rules, MinSize: 10, MaxSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e            plan.Entry
		lists, match bool
	}{
		{plan.Entry{Path: "a/big", Type: plan.TypeFile, Size: 20}, true, true},
		{plan.Entry{Path: "a/small", Type: plan.TypeFile, Size: 1}, true, false},
		{plan.Entry{Path: "a/x.tmp", Type: plan.TypeFile, Size: 20}, false, false},
		{plan.Entry{Path: "skip", Type: plan.TypeDir}, false, false},
		{plan.Entry{Path: "skip/deep/big", Type: plan.TypeFile, Size: 20}, false, false},
		{plan.Entry{Path: "skip", Type: plan.TypeFile, Size: 20}, true, true},
	} {
		if got := f.Lists(c.e); got != c.lists {
			t.Errorf("Lists(%s %v) = %v, want %v", c.e.Path, c.e.Type, got, c.lists)
		}
		if got := f.Match(c.e); got != c.match {
			t.Errorf("Match(%s %v) = %v, want %v", c.e.Path, c.e.Type, got, c.match)
		}
	}
	var none *plan.Filter
	if !none.Lists(plan.Entry{Path: "x", Type: plan.TypeFile}) {
		t.Error("a nil filter lists nothing")
	}
}
