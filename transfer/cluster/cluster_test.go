package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// call is one run the coordinator asked for: its pair and share (-1: the
// final pass).
type call struct {
	src, dst string
	share    int
	unit     string // the unit's directories, "|"-separated ("" for none)
	shallow  bool
}

// fakeRunner records the runs; a run on an agent in hang waits until its
// context ends (an agent that answers nothing), and onRun, when set, is
// told of each run as it starts.
type fakeRunner struct {
	mu    sync.Mutex
	calls []call
	// tree, when set, is the source's directories and their entries:
	// ListDir answers from it (without it the source is no directory).
	tree  map[string][]plan.Entry
	reads int
	hang  map[string]bool
	onRun func(call)
}

func (r *fakeRunner) Run(ctx context.Context, src, dst string, opt wire.Options, _ progress.Sink, tally *progress.Tally) error {
	c := call{src: src, dst: dst, share: -1}
	if opt.Shard != nil {
		c.share = opt.Shard.Index
	}
	if u := opt.Unit; u != nil {
		var dirs []string
		for _, d := range u.Dirs {
			dirs = append(dirs, d.Path)
		}
		c.unit, c.shallow = strings.Join(dirs, "|"), u.Shallow
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	hang, onRun := r.hang[src], r.onRun
	r.mu.Unlock()
	if onRun != nil {
		onRun(c)
	}
	if hang {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(10 * time.Second):
			return nil // the test fails on the time taken
		}
	}
	tally.Merge(progress.Summary{FilesTransferred: 1, BytesSent: 100})
	return nil
}

// ListDir answers from tree; without one it finds no directory, and the
// coordinator walks as without the distributed walk, one share per pair.
func (r *fakeRunner) ListDir(_ context.Context, _, dir string) ([]plan.Entry, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, ok := r.tree[dir]
	if ok {
		r.reads++
	}
	return entries, ok, nil
}

func (r *fakeRunner) SourceExists(context.Context, string) (bool, error) { return true, nil }
func (r *fakeRunner) Lock(context.Context, string) (func(), error)       { return func() {}, nil }

func (r *fakeRunner) shares() (out []call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if c.share >= 0 {
			out = append(out, c)
		}
	}
	return out
}

// fakeMembers hands the test the callbacks of the run's watch.
type fakeMembers struct {
	ready chan struct{}
	left  func(string)
	join  func(string)
}

func newFakeMembers() *fakeMembers { return &fakeMembers{ready: make(chan struct{})} }

func (m *fakeMembers) Watch(ctx context.Context, left, joined func(string)) error {
	m.left, m.join = left, joined
	close(m.ready)
	<-ctx.Done()
	return nil
}

// fakeJob is a recorded job of count shares of which done finished.
type fakeJob struct {
	count    int
	done     []int
	mu       sync.Mutex
	recorded []int
	finished bool
}

func (j *fakeJob) Begin(_ context.Context, p JobPlan) (int, []int, []int, error) {
	if j.count == 0 {
		j.count = p.Shares
	}
	return j.count, j.done, nil, nil
}

func (j *fakeJob) ShareDone(_ context.Context, k int, files, bytes int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recorded = append(j.recorded, k)
	return nil
}

func (j *fakeJob) UnitDone(context.Context, int, int64, int64) error { return nil }

func (j *fakeJob) Finish(context.Context) error {
	j.finished = true
	return nil
}

func (j *fakeJob) Lock(context.Context) (func(), error) { return func() {}, nil }

func runCluster(t *testing.T, src, dst Side, r Runner) (progress.Summary, []string) {
	t.Helper()
	var (
		mu      sync.Mutex
		notices []string
	)
	sink := progress.SinkFunc(func(e progress.Event) {
		if e.Event == progress.KindNotice {
			mu.Lock()
			notices = append(notices, e.Msg)
			mu.Unlock()
		}
	})
	tally := progress.NewTally()
	if err := Run(context.Background(), src, dst, wire.Options{}, r, sink, tally); err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return tally.Summary(), slices.Clone(notices)
}

func TestJobSkipsFinishedShares(t *testing.T) {
	for _, tt := range []struct {
		name       string
		agents     []string
		count      int
		done       []int
		wantShares []int
	}{
		{"new job", []string{"a", "b"}, 0, nil, []int{0, 1, 2, 3}},
		{"two of four done", []string{"a", "b"}, 4, []int{0, 2}, []int{1, 3}},
		// The recorded share count holds whatever the agents are now.
		{"recorded with more agents", []string{"a"}, 6, []int{5, 1}, []int{0, 2, 3, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{}
			job := &fakeJob{count: tt.count, done: tt.done}
			m := newFakeMembers()
			runCluster(t, Side{Name: "A", Agents: tt.agents, Members: m, Job: job}, Side{Name: "local"}, r)
			var got []int
			for _, c := range r.shares() {
				got = append(got, c.share)
			}
			slices.Sort(got)
			slices.Sort(job.recorded)
			if !slices.Equal(got, tt.wantShares) || !slices.Equal(job.recorded, tt.wantShares) {
				t.Errorf("shares run %v, recorded %v; want %v", got, job.recorded, tt.wantShares)
			}
			if !job.finished {
				t.Error("the job was not finished")
			}
		})
	}
}

func TestAgentLeftLosesItsWork(t *testing.T) {
	m := newFakeMembers()
	r := &fakeRunner{hang: map[string]bool{"b": true}}
	var once sync.Once
	bStarted := make(chan struct{})
	r.onRun = func(c call) {
		switch c.src {
		case "a":
			// a takes no share before b has one
			select {
			case <-bStarted:
			case <-time.After(5 * time.Second):
			}
		case "b":
			once.Do(func() { close(bStarted) })
			<-m.ready
			go m.left("b") // its lease expired
		}
	}
	start := time.Now()
	s, notices := runCluster(t, Side{Name: "A", Agents: []string{"a", "b"}, Members: m}, Side{Name: "local"}, r)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s: the agent that left kept its work", took)
	}
	if !s.Agents["b"].Lost || s.Agents["a"].Lost {
		t.Errorf("agents %+v, want b lost", s.Agents)
	}
	var done []int
	for _, c := range r.shares() {
		if c.src == "a" {
			done = append(done, c.share)
		}
	}
	slices.Sort(done)
	if !slices.Equal(slices.Compact(done), []int{0, 1, 2, 3}) {
		t.Errorf("shares run on the survivor: %v, want all four", done)
	}
	if !slices.ContainsFunc(notices, func(n string) bool {
		return strings.Contains(n, "agent b lost (its registration in the cluster ended)")
	}) {
		t.Errorf("notices %q", notices)
	}
}

func TestAgentJoinedTakesShares(t *testing.T) {
	m := newFakeMembers()
	var once, cOnce sync.Once
	cStarted := make(chan struct{})
	r := &fakeRunner{}
	r.onRun = func(c call) {
		switch c.src {
		case "a":
			// The first agent's share waits until c joined and took the
			// other share.
			once.Do(func() {
				<-m.ready
				m.join("c")
			})
			select {
			case <-cStarted:
			case <-time.After(5 * time.Second):
			}
		case "c":
			cOnce.Do(func() { close(cStarted) })
		}
	}
	s, notices := runCluster(t, Side{Name: "A", Agents: []string{"a"}, Members: m}, Side{Name: "local"}, r)
	var byC int
	for _, c := range r.shares() {
		if c.src == "c" {
			byC++
		}
	}
	if byC == 0 || s.Agents["c"].Files == 0 {
		t.Errorf("the agent that joined ran no share: %+v, agents %+v", r.shares(), s.Agents)
	}
	if len(r.shares()) != 2 {
		t.Errorf("shares run %+v, want 2 (one pair, two shares each)", r.shares())
	}
	if !slices.ContainsFunc(notices, func(n string) bool { return strings.Contains(n, "agent c joined A; it takes shares still waiting") }) {
		t.Errorf("notices %q", notices)
	}
}

// fakeTree is a source of the directories dirs (parents before children)
// with, in each, files of the given size.
func fakeTree(size int64, files int, dirs ...string) map[string][]plan.Entry {
	tree := map[string][]plan.Entry{"": nil}
	for _, d := range dirs {
		tree[d] = nil
		parent, name := "", d
		if i := strings.LastIndex(d, "/"); i >= 0 {
			parent, name = d[:i], d[i+1:]
		}
		tree[parent] = append(tree[parent], plan.Entry{Path: name, Type: plan.TypeDir})
	}
	for d := range tree {
		for i := range files {
			tree[d] = append(tree[d], plan.Entry{Path: fmt.Sprintf("f%d", i), Type: plan.TypeFile, Size: size})
		}
	}
	return tree
}

func seq(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%02d", prefix, i))
	}
	return out
}

// TestDistributedWalkCut checks how the coordinator cuts trees: the
// directories it reads (expands), the subtrees it hands out as units
// (each run once, never a directory twice), whether the expanded
// directories' files go to shares, and the final pass over the expanded
// directories alone.
func TestDistributedWalkCut(t *testing.T) {
	agents := []string{"a1", "a2", "a3"}
	cases := []struct {
		name     string
		tree     map[string][]plan.Entry
		expanded string // "|"-separated
		units    []string
		shares   int
	}{
		{"wide", fakeTree(10, 1, seq("d", 20)...), "", seq("d", 20), 0},
		{"deep", fakeTree(10, 1, "a", "a/b", "a/c", "a/b/x", "a/b/y", "a/c/z"), "|a|a/b|a/c|a/b/x|a/b/y|a/c/z", nil, 0},
		{"two levels", fakeTree(10, 1, append([]string{"p", "q"}, append(seq("p/s", 6), seq("q/t", 6)...)...)...),
			"|p|q", append(seq("p/s", 6), seq("q/t", 6)...), 0},
		{"heavy top", fakeTree(8<<20, 2, seq("d", 12)...), "", seq("d", 12), 3},
		{"flat", fakeTree(8<<20, 4), "", nil, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{tree: tc.tree}
			runCluster(t, Side{Name: "src", Agents: agents}, Side{Name: "dst", Agents: []string{"b1", "b2", "b3"}}, r)
			var units []string
			shares := 0
			var final *call
			for _, c := range r.calls {
				switch {
				case c.share >= 0:
					shares++
					if !c.shallow || c.unit != tc.expanded {
						t.Errorf("share %+v: want the expanded directories %q alone", c, tc.expanded)
					}
				case c.unit != "" && !c.shallow:
					units = append(units, c.unit)
				default:
					final = &c
				}
			}
			slices.Sort(units)
			if !slices.Equal(units, tc.units) {
				t.Errorf("units %q, want %q", units, tc.units)
			}
			if shares != tc.shares {
				t.Errorf("%d shares, want %d", shares, tc.shares)
			}
			if final == nil || !final.shallow || final.unit != tc.expanded {
				t.Errorf("final pass %+v, want the expanded directories %q alone", final, tc.expanded)
			}
			if want := strings.Count(tc.expanded, "|") + 1; r.reads != want {
				t.Errorf("the coordinator read %d directories, want %d", r.reads, want)
			}
		})
	}
}
