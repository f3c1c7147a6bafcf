package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/xfer-io/xfer/internal/logbuf"
)

const debounce = 250 * time.Millisecond

// counter is a sync function that counts its calls.
type counter struct {
	mu    sync.Mutex
	n     int                                    // calls started
	done  int                                    // calls returned
	calls chan int                               // n after each call
	do    func(ctx context.Context, n int) error // optional behaviour of call n
}

func newCounter() *counter { return &counter{calls: make(chan int, 1000)} }

func (c *counter) sync(ctx context.Context) error {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	var err error
	if c.do != nil {
		err = c.do(ctx, n)
	}
	c.mu.Lock()
	c.done++
	c.mu.Unlock()
	c.calls <- n
	return err
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// wait waits until sync has returned at least n times.
func (c *counter) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		if done >= n {
			return
		}
		select {
		case <-c.calls:
		case <-timeout:
			t.Fatalf("waited for sync call %d; have %d", n, c.count())
		}
	}
}

// logger is a debug logger writing to l.
func logger(l *logbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// running is a loop started the way Run starts it.
type running struct {
	l      *loop
	c      *counter
	log    *logbuf.Buffer
	cancel context.CancelFunc
	errc   chan error
}

// startLoop builds a loop like Run does, lets prep adjust it after the
// watches are set up, runs it and waits for the first sync.
func startLoop(t *testing.T, dir string, o Options, c *counter, prep func(*loop)) *running {
	t.Helper()
	lb := &logbuf.Buffer{}
	o.Log = logger(lb)
	l, err := newLoop(dir, o, c.sync)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.open(); err != nil {
		l.close()
		t.Fatal(err)
	}
	if prep != nil {
		prep(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{l: l, c: c, log: lb, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- l.run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	c.wait(t, 1)
	return r
}

// stop cancels the loop and returns what run returned; the loop's state
// may be read afterwards.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	defer r.l.close()
	select {
	case err := <-r.errc:
		return err
	case <-time.After(2 * time.Second):
		t.Fatal("loop did not return within 2s of cancel")
		return nil
	}
}

func write(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("data "+path), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		act   func(t *testing.T, dir string, c *counter)
		want  int // total sync calls, the first included
		check func(t *testing.T, dir string, l *loop)
	}{
		{
			name: "burst of 100 writes is one run",
			act: func(t *testing.T, dir string, c *counter) {
				for i := range 100 {
					write(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)))
				}
			},
			want: 2,
		},
		{
			name:  "write in an existing nested directory",
			setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "a", "b", "c")) },
			act: func(t *testing.T, dir string, c *counter) {
				write(t, filepath.Join(dir, "a", "b", "c", "f"))
			},
			want: 2,
		},
		{
			name: "file in a new subdirectory",
			act: func(t *testing.T, dir string, c *counter) {
				mkdir(t, filepath.Join(dir, "new", "x", "y")) // y may exist before x is watched
				c.wait(t, 2)
				write(t, filepath.Join(dir, "new", "x", "y", "f"))
			},
			want: 3,
			check: func(t *testing.T, dir string, l *loop) {
				for _, d := range []string{"new", "new/x", "new/x/y"} {
					if _, ok := l.dirs[filepath.Join(dir, d)]; !ok {
						t.Errorf("%s not watched", d)
					}
				}
			},
		},
		{
			name:  "xfer temporary files are ignored",
			setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "sub")) },
			act: func(t *testing.T, dir string, c *counter) {
				for _, d := range []string{dir, filepath.Join(dir, "sub")} {
					part := filepath.Join(d, ".xfer-00000000000000ab.part")
					write(t, part)
					f, err := os.OpenFile(part, os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.WriteString("more"); err != nil {
						t.Fatal(err)
					}
					if err := f.Close(); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(part, 0o600); err != nil {
						t.Fatal(err)
					}
					journal := filepath.Join(d, ".xfer-00000000000000ab.journal")
					if err := os.Rename(part, journal); err != nil {
						t.Fatal(err)
					}
					if err := os.Remove(journal); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: 1,
		},
		{
			name:  "removed directory is dropped",
			setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "gone", "inner")) },
			act: func(t *testing.T, dir string, c *counter) {
				if err := os.RemoveAll(filepath.Join(dir, "gone")); err != nil {
					t.Fatal(err)
				}
			},
			want: 2,
			check: func(t *testing.T, dir string, l *loop) {
				for d := range l.dirs {
					if within(d, filepath.Join(dir, "gone")) {
						t.Errorf("%s still watched", d)
					}
				}
				if _, ok := l.dirs[dir]; !ok || l.degraded != "" {
					t.Errorf("root watched %v, degraded %q; want watched, not degraded", ok, l.degraded)
				}
			},
		},
		{
			name:  "renamed directory is followed",
			setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "a", "b")) },
			act: func(t *testing.T, dir string, c *counter) {
				if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "z")); err != nil {
					t.Fatal(err)
				}
				c.wait(t, 2)
				write(t, filepath.Join(dir, "z", "b", "f"))
			},
			want: 3,
			check: func(t *testing.T, dir string, l *loop) {
				for _, d := range []string{"a", "a/b"} {
					if _, ok := l.dirs[filepath.Join(dir, d)]; ok {
						t.Errorf("old path %s still watched", d)
					}
				}
				for _, d := range []string{"z", "z/b"} {
					if _, ok := l.dirs[filepath.Join(dir, d)]; !ok {
						t.Errorf("new path %s not watched", d)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			c := newCounter()
			r := startLoop(t, dir, Options{Debounce: debounce}, c, nil)
			tt.act(t, dir, c)
			c.wait(t, tt.want)
			time.Sleep(3 * debounce) // room for a wrong extra run
			if err := r.stop(t); err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := c.count(); got != tt.want {
				t.Errorf("sync called %d times, want %d\nlog:\n%s", got, tt.want, r.log)
			}
			if tt.check != nil {
				tt.check(t, dir, r.l)
			}
		})
	}
}

// A continuous stream of events still triggers runs, MaxWait apart.
func TestMaxWait(t *testing.T) {
	dir := t.TempDir()
	c := newCounter()
	startLoop(t, dir, Options{Debounce: 300 * time.Millisecond, MaxWait: 350 * time.Millisecond}, c, nil)
	for i := range 25 { // one write every 50ms for 1.25s: never quiet for 300ms
		write(t, filepath.Join(dir, fmt.Sprintf("f%d", i)))
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.count(); got < 3 {
		t.Errorf("sync called %d times during the stream, want at least 3", got)
	}
}

func TestRescan(t *testing.T) {
	tests := []struct {
		name    string
		rescan  time.Duration
		atLeast int
		atMost  int
	}{
		{"periodic rescan without events", 50 * time.Millisecond, 4, 100},
		{"no rescan by default", 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCounter()
			r := startLoop(t, t.TempDir(), Options{Debounce: debounce, Rescan: tt.rescan}, c, nil)
			time.Sleep(500 * time.Millisecond)
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			if got := c.count(); got < tt.atLeast || got > tt.atMost {
				t.Errorf("sync called %d times in 0.5s, want %d to %d", got, tt.atLeast, tt.atMost)
			}
		})
	}
}

// An event-queue overflow from inotify switches to periodic rescans.
func TestOverflowFallback(t *testing.T) {
	c := newCounter()
	errs := make(chan error)
	r := startLoop(t, t.TempDir(), Options{Debounce: debounce}, c, func(l *loop) {
		l.fallback = 60 * time.Millisecond // instead of a minute
		l.errs = errs                      // stands in for the watcher's Errors
	})
	time.Sleep(300 * time.Millisecond)
	if got := c.count(); got != 1 {
		t.Fatalf("sync called %d times before the overflow, want 1", got)
	}
	errs <- fsnotify.ErrEventOverflow
	c.wait(t, 5) // the run owed for lost events, then rescans
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.l.degraded, "overflow") {
		t.Errorf("degraded = %q, want the overflow as reason", r.l.degraded)
	}
	if log := r.log.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "overflow") {
		t.Errorf("overflow not logged as a warning:\n%s", log)
	}
}

// ENOSPC from inotify_add_watch switches to periodic rescans, or fails
// when the root cannot be watched and there is no Rescan.
func TestWatchLimit(t *testing.T) {
	tests := []struct {
		name    string
		full    string // directory whose watch fails with ENOSPC
		rescan  time.Duration
		wantErr bool
	}{
		{"limit on a subdirectory", "b", 0, false},
		{"limit on the root", ".", 0, true},
		{"limit on the root with rescan", ".", time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mkdir(t, filepath.Join(dir, "a"))
			mkdir(t, filepath.Join(dir, "b", "c"))
			full := filepath.Join(dir, tt.full)
			l, err := newLoop(dir, Options{Rescan: tt.rescan}, newCounter().sync)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			l.addWatch = func(p string) error {
				if p == full {
					return fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC)
				}
				return l.w.Add(p)
			}
			err = l.open()
			if tt.wantErr {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("open: %v, want ENOSPC", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if !strings.Contains(l.degraded, "max_user_watches") || !l.incomplete {
				t.Errorf("degraded %q, incomplete %v; want the watch limit as reason", l.degraded, l.incomplete)
			}
			if _, ok := l.dirs[full]; ok {
				t.Errorf("%s counted as watched", full)
			}
			if l.rescanEvery() == 0 {
				t.Error("no periodic rescan after the watch limit")
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		dir       func(t *testing.T) string
		o         Options
		fail      error // what the first sync returns
		wantIs    error
		wantCalls int
	}{
		{"first sync fails", func(t *testing.T) string { return t.TempDir() }, Options{}, errBoom, errBoom, 1},
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, Options{}, nil, os.ErrNotExist, 0},
		{"not a directory", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "file")
			write(t, f)
			return f
		}, Options{}, nil, nil, 0},
		{"missing directory with rescan: the first sync decides", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "nope")
		}, Options{Rescan: time.Minute}, errBoom, errBoom, 1},
		{"negative debounce", func(t *testing.T) string { return t.TempDir() }, Options{Debounce: -1}, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCounter()
			c.do = func(context.Context, int) error { return tt.fail }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := Run(ctx, tt.dir(t), tt.o, c.sync)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("Run = %v (ctx %v), want an error at once", err, ctx.Err())
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Run = %v, want %v", err, tt.wantIs)
			}
			if got := c.count(); got != tt.wantCalls {
				t.Errorf("sync called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

// A failing sync after the first is logged and the next change retries.
func TestSyncErrorContinues(t *testing.T) {
	dir := t.TempDir()
	c := newCounter()
	c.do = func(_ context.Context, n int) error {
		if n == 2 {
			return errors.New("peer unreachable")
		}
		return nil
	}
	r := startLoop(t, dir, Options{Debounce: debounce}, c, nil)
	write(t, filepath.Join(dir, "one"))
	c.wait(t, 2)
	write(t, filepath.Join(dir, "two"))
	c.wait(t, 3)
	if err := r.stop(t); err != nil {
		t.Fatalf("run = %v, want nil after a later sync failed", err)
	}
	if log := r.log.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "peer unreachable") {
		t.Errorf("sync error not logged:\n%s", log)
	}
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name    string
		block   int  // sync call that blocks until ctx is done, 0 for none
		trigger bool // write a file after the first sync
		wantErr bool
	}{
		{"while idle", 0, false, false},
		{"during a sync", 2, true, false},
		{"during the first sync", 1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := newCounter()
			started := make(chan struct{})
			c.do = func(ctx context.Context, n int) error {
				if n != tt.block {
					return nil
				}
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- Run(ctx, dir, Options{Debounce: 50 * time.Millisecond}, c.sync) }()
			if tt.block != 1 {
				c.wait(t, 1)
			}
			if tt.trigger {
				write(t, filepath.Join(dir, "f"))
			}
			if tt.block != 0 {
				select {
				case <-started:
				case <-time.After(5 * time.Second):
					t.Fatal("blocking sync never started")
				}
			}
			cancel()
			select {
			case err := <-errc:
				if tt.wantErr != (err != nil) {
					t.Errorf("Run = %v, want error %v", err, tt.wantErr)
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v, want it to wrap context.Canceled", err)
				}
			case <-time.After(time.Second):
				t.Fatal("Run did not return within 1s of cancel")
			}
		})
	}
}
