package plan_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/plan"
)

// randomWalkTree returns a random tree of about n nodes (dirs, files, symlinks
// including dangling ones, fifos and xfer's internal names), parents first.
func randomWalkTree(seed uint64, n, maxDepth int) []node {
	rng := rand.New(rand.NewPCG(seed, 7))
	dirs := []string{""}
	depth := map[string]int{"": 0}
	var out []node
	names := []string{"a", "b", "B", "a b", "a-b", "a.b", "a\nb", "ä", "x", "zz", "m0", "m1", "m2", "m10", ".hidden", ".xfer-01.part"}
	used := map[string]bool{}
	for len(out) < n {
		parent := dirs[rng.IntN(len(dirs))]
		name := names[rng.IntN(len(names))] + fmt.Sprint(rng.IntN(50))
		if rng.IntN(20) == 0 {
			name = fmt.Sprintf(".xfer-%016x.part", rng.IntN(99))
		}
		p := plan.Join(parent, name)
		if used[p] {
			continue
		}
		used[p] = true
		switch k := rng.IntN(10); {
		case k < 3 && depth[parent] < maxDepth:
			out = append(out, node{path: p, typ: plan.TypeDir, mode: 0o755})
			dirs = append(dirs, p)
			depth[p] = depth[parent] + 1
		case k < 8:
			out = append(out, node{path: p, typ: plan.TypeFile, mode: 0o644, data: strings.Repeat("x", rng.IntN(100))})
		case k < 9:
			target := "../nowhere"
			if rng.IntN(2) == 0 {
				target = name
			}
			out = append(out, node{path: p, typ: plan.TypeSymlink, target: target})
		default:
			out = append(out, node{path: p, typ: plan.TypeOther})
		}
	}
	return out
}

// wideTree: dirs directories, each with files files; deepTree: a chain.
func wideTree(dirs, files int) []node {
	var out []node
	for d := range dirs {
		dp := fmt.Sprintf("d%04d", d)
		out = append(out, node{path: dp, typ: plan.TypeDir, mode: 0o755})
		for f := range files {
			out = append(out, node{path: fmt.Sprintf("%s/f%03d", dp, f), typ: plan.TypeFile, mode: 0o644, data: "x"})
		}
		if d%7 == 0 {
			out = append(out, node{path: dp + "/l", typ: plan.TypeSymlink, target: "f000"})
			out = append(out, node{path: dp + "/empty", typ: plan.TypeDir, mode: 0o700})
		}
	}
	return out
}

func deepTree(depth int) []node {
	var out []node
	p := ""
	for i := range depth {
		p = plan.Join(p, fmt.Sprintf("lvl%d", i))
		out = append(out, node{path: p, typ: plan.TypeDir, mode: 0o755},
			node{path: p + "-sib", typ: plan.TypeFile, mode: 0o644, data: "s"},
			node{path: p + "/f", typ: plan.TypeFile, mode: 0o644, data: "f"})
	}
	return out
}

func flatTree(n int) []node {
	out := make([]node, 0, n)
	for i := range n {
		out = append(out, node{path: fmt.Sprintf("f%05d", (i*7919)%n), typ: plan.TypeFile, mode: 0o644})
	}
	return out
}

var parallelTrees = []struct {
	name  string
	nodes []node
}{
	{"empty", nil},
	{"random", randomWalkTree(1, 3000, 6)},
	{"random-deep", randomWalkTree(2, 1500, 30)},
	{"wide", wideTree(300, 5)},
	{"wide-dirs-only", wideTree(500, 0)},
	{"deep", deepTree(60)},
	{"flat-large", flatTree(5000)}, // the entries of one directory stat-ed on several threads
	{"walkTree", walkTree},
}

func walkN(t *testing.T, base, top string, checkers int, skip func(plan.Entry) bool) []plan.Entry {
	t.Helper()
	return walkWalker(t, plan.NewWalkerN(fsroottest.Open(t, base), top, checkers), checkers, skip)
}

// walkWalker is walkN on a Walker made by the caller.
func walkWalker(t *testing.T, w *plan.Walker, checkers int, skip func(plan.Entry) bool) []plan.Entry {
	t.Helper()
	return drain(t, fmt.Sprintf("checkers %d", checkers), w, func(e plan.Entry) {
		if skip != nil && e.Type == plan.TypeDir && skip(e) {
			w.SkipDir()
		}
	})
}

func sameWalk(t *testing.T, what string, serial, par []plan.Entry) {
	t.Helper()
	if reflect.DeepEqual(serial, par) {
		return
	}
	for i := range min(len(serial), len(par)) {
		if !reflect.DeepEqual(serial[i], par[i]) {
			t.Fatalf("%s: entry %d differs:\nserial   %+v\nparallel %+v", what, i, serial[i], par[i])
		}
	}
	t.Fatalf("%s: serial walk has %d entries, parallel %d", what, len(serial), len(par))
}

func TestWalkerParallelMatchesSerial(t *testing.T) {
	for _, tc := range parallelTrees {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			buildTree(t, base, tc.nodes)
			serial := walkN(t, base, "", 1, nil)
			if tc.name != "empty" && len(serial) == 0 {
				t.Fatal("serial walk is empty")
			}
			for i := 1; i < len(serial); i++ {
				if plan.Compare(serial[i-1].Path, serial[i].Path) >= 0 {
					t.Fatalf("serial walk out of order at %q, %q", serial[i-1].Path, serial[i].Path)
				}
			}
			for _, n := range []int{0, 2, 3, 8, 64} {
				sameWalk(t, fmt.Sprintf("checkers %d", n), serial, walkN(t, base, "", n, nil))
			}
			// Skipping directories (an exclude filter) skips the same.
			skip := func(e plan.Entry) bool { return strings.Contains(e.Path, "1") }
			serial = walkN(t, base, "", 1, skip)
			for _, n := range []int{2, 8} {
				sameWalk(t, fmt.Sprintf("checkers %d with SkipDir", n), serial, walkN(t, base, "", n, skip))
			}
			// A subdirectory as the top.
			for _, e := range serial {
				if e.Type == plan.TypeDir {
					sameWalk(t, "top "+e.Path, walkN(t, base, e.Path, 1, nil), walkN(t, base, e.Path, 8, nil))
					break
				}
			}
		})
	}
}

// Entries that vanish between the listing of their parent and the read of
// their own contents or target are handled alike: a vanished directory is
// listed, empty; a vanished symlink is not listed.
func TestWalkerParallelVanishing(t *testing.T) {
	nodes := append(wideTree(60, 3), randomWalkTree(3, 800, 5)...)
	for _, tc := range []struct {
		name   string
		vanish func(op, rel string) bool
	}{
		{"dirs", func(op, rel string) bool { return op == "readdir" && strings.HasSuffix(rel, "3") }},
		{"symlinks", func(op, rel string) bool { return op == "readlink" }},
		{"some-of-each", func(op, rel string) bool { return len(rel)%3 == 0 && rel != "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var walks [][]plan.Entry
			var removed atomic.Int64
			for _, n := range []int{1, 2, 8} {
				base := t.TempDir()
				buildTree(t, base, nodes)
				w := plan.NewWalkerN(fsroottest.Open(t, base), "", n)
				plan.SetWalkHook(w, func(op, rel string) {
					if tc.vanish(op, rel) {
						if err := os.RemoveAll(filepath.Join(base, rel)); err != nil {
							t.Error(err)
						}
						removed.Add(1)
					}
				})
				walks = append(walks, stripStat(walkWalker(t, w, n, nil)))
			}
			if removed.Load() == 0 {
				t.Fatal("nothing vanished")
			}
			sameWalk(t, "checkers 2", walks[0], walks[1])
			sameWalk(t, "checkers 8", walks[0], walks[2])
		})
	}
}

// stripStat drops what differs between two builds of the same tree.
func stripStat(es []plan.Entry) []plan.Entry {
	for i := range es {
		es[i].MtimeNs, es[i].CtimeNs, es[i].Ino, es[i].Dev, es[i].Blocks = 0, 0, 0, 0, 0
		if es[i].Type == plan.TypeDir {
			es[i].Nlink = 0
		}
	}
	return es
}

// The read-ahead holds a bounded number of directories.
func TestWalkerParallelBounded(t *testing.T) {
	base := t.TempDir()
	buildTree(t, base, append(wideTree(400, 2), deepTree(40)...))
	for _, checkers := range []int{2, 4, 8} {
		var reads atomic.Int64
		w := plan.NewWalkerN(fsroottest.Open(t, base), "", checkers)
		plan.SetWalkHook(w, func(op, rel string) {
			if op == "readdir" {
				reads.Add(1)
			}
		})
		consumed := int64(1) // the top
		maxAhead := int64(0)
		for {
			e, err := w.Next(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Type == plan.TypeDir {
				consumed++
			}
			time.Sleep(time.Microsecond) // let the read-ahead run ahead
			maxAhead = max(maxAhead, reads.Load()-consumed)
		}
		if limit := int64(4 * checkers); maxAhead > limit {
			t.Errorf("checkers %d: %d directories read ahead, want at most %d", checkers, maxAhead, limit)
		}
		if maxAhead < 1 {
			t.Errorf("checkers %d: no read-ahead at all", checkers)
		}
	}
}

// Cancelling the context stops the walk, also while Next waits for a
// directory being read ahead.
func TestWalkerParallelCanceled(t *testing.T) {
	base := t.TempDir()
	buildTree(t, base, wideTree(50, 3))
	release := make(chan struct{})
	var once sync.Once
	w := plan.NewWalkerN(fsroottest.Open(t, base), "", 4)
	plan.SetWalkHook(w, func(op, rel string) {
		if op == "readdir" && rel == "d0010" {
			<-release // a directory that takes forever to read
		}
	})
	defer once.Do(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	errc := make(chan error, 1)
	go func() {
		for {
			e, err := w.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			n++
			if e.Path == "d0010" {
				errc <- errors.New("got the blocked directory")
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next = %v after %d entries, want context.Canceled", err, n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after cancel")
	}
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v, want context.Canceled", err)
	}
	once.Do(func() { close(release) })
}
