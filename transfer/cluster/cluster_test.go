package cluster

import (
	"context"
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
}

// fakeRunner records the runs; a run on an agent in hang waits until its
// context ends (an agent that answers nothing), and onRun, when set, is
// told of each run as it starts.
type fakeRunner struct {
	mu    sync.Mutex
	calls []call
	hang  map[string]bool
	onRun func(call)
}

func (r *fakeRunner) Run(ctx context.Context, src, dst string, opt wire.Options, _ progress.Sink, tally *progress.Tally) error {
	c := call{src: src, dst: dst, share: -1}
	if opt.Shard != nil {
		c.share = opt.Shard.Index
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

// ListDir finds no directory: the coordinator walks as without the
// distributed walk, one share per pair.
func (r *fakeRunner) ListDir(context.Context, string, string) ([]plan.Entry, bool, error) {
	return nil, false, nil
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

func (j *fakeJob) Begin(_ context.Context, n int) (int, []int, error) {
	if j.count == 0 {
		j.count = n
	}
	return j.count, j.done, nil
}

func (j *fakeJob) ShareDone(_ context.Context, k int, files, bytes int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recorded = append(j.recorded, k)
	return nil
}

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
