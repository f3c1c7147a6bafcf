// Package watch keeps a destination in step with a local directory tree
// for `xfer sync --watch`: it runs a sync, then watches the tree with
// inotify (through github.com/fsnotify/fsnotify) and runs the sync again
// after each burst of changes has settled. Where notifications cannot be
// trusted (the inotify watch limit was reached, the event queue overflowed,
// a directory could not be watched) it falls back to periodic full reruns.
//
// The sync callback always does a full pass; the watcher only decides when
// to call it.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/xfer-io/xfer/internal/defaults"
	"github.com/xfer-io/xfer/plan"
)

// Defaults for the zero values of Options.
const (
	DefaultDebounce = 2 * time.Second  // Options.Debounce
	DefaultMaxWait  = 30 * time.Second // Options.MaxWait
	// DefaultFallbackRescan is the rescan interval once notifications
	// are incomplete and Options.Rescan is 0.
	DefaultFallbackRescan = time.Minute
)

// Options tune Run. The zero value is usable.
type Options struct {
	// Debounce is the quiet period after the last event before a run
	// (default 2s).
	Debounce time.Duration
	// Rescan is a periodic full rerun even without events (default 0:
	// only after an event-queue overflow or when watching failed; then
	// every Rescan, or every minute if Rescan is 0).
	Rescan time.Duration
	// MaxWait bounds the wait under a continuous stream of events: a run
	// starts at most this long after the first unsynced event (default 30s).
	MaxWait time.Duration
	// Log receives what the watcher does; nil discards it. Sync errors
	// after the first pass are logged at Error, the switch to periodic
	// rescans at Warn.
	Log *slog.Logger
}

// Run calls sync once, then watches dir recursively (new directories are
// added as they appear; removed ones dropped) and calls sync again after
// each debounced burst of changes, until ctx is done. The watches are set
// up before the first sync, so changes made while it runs are not lost:
// they cause another run.
//
// The inotify watch limit (ENOSPC from inotify_add_watch), an event-queue
// overflow (fsnotify.ErrEventOverflow) or a directory that cannot be
// watched switch Run to periodic rescans, every Options.Rescan or every
// minute, with the reason logged at Warn; notifications that still arrive
// keep triggering runs.
//
// Events on xfer's own partial files and journals (plan.IsInternal) are
// ignored. Sync is never called concurrently with itself. A sync error
// after the first pass is logged and the loop continues: the next change
// or rescan retries.
//
// Run returns nil when ctx is done, after the sync in progress (which gets
// ctx) has returned. It returns an error if the first sync fails (also
// when it fails because ctx was cancelled during it), or if dir cannot be
// watched at all and Options.Rescan is 0; with Rescan set it polls instead.
func Run(ctx context.Context, dir string, o Options, sync func(ctx context.Context) error) error {
	l, err := newLoop(dir, o, sync)
	if err != nil {
		return err
	}
	defer l.close()
	if err := l.open(); err != nil {
		return err
	}
	return l.run(ctx)
}

// loop is the state of one Run. Everything but syncFn runs on the
// goroutine that called run.
type loop struct {
	root     string
	o        Options // defaults applied
	fallback time.Duration
	log      *slog.Logger
	syncFn   func(context.Context) error

	w        *fsnotify.Watcher
	addWatch func(path string) error // w.Add; tests replace it to fake failures
	events   <-chan fsnotify.Event
	errs     <-chan error
	dirs     map[string]struct{} // watched directories, cleaned paths

	degraded   string // why periodic rescans are on; "" while notifications are trusted
	incomplete bool   // some directories may lack a watch: rewalk before the next run

	running  bool
	due      bool      // a run is owed as soon as the current one ends
	pending  bool      // changes seen since the last run started
	first    time.Time // first of the pending changes
	debounce *time.Timer
	rescan   *time.Timer
	rescanOn bool
}

func newLoop(dir string, o Options, sync func(context.Context) error) (*loop, error) {
	switch {
	case sync == nil:
		return nil, errors.New("watch: nil sync function")
	case dir == "":
		return nil, errors.New("watch: empty directory")
	case o.Debounce < 0 || o.Rescan < 0 || o.MaxWait < 0:
		return nil, fmt.Errorf("watch: negative duration in options (debounce %v, rescan %v, max wait %v)",
			o.Debounce, o.Rescan, o.MaxWait)
	}
	defaults.Zero(&o.Debounce, DefaultDebounce)
	defaults.Zero(&o.MaxWait, DefaultMaxWait)
	log := o.Log
	defaults.Log(&log)
	fallback := o.Rescan
	defaults.Zero(&fallback, DefaultFallbackRescan)
	return &loop{
		root:     filepath.Clean(dir),
		o:        o,
		fallback: fallback,
		log:      log,
		syncFn:   sync,
		dirs:     make(map[string]struct{}),
		debounce: stoppedTimer(),
		rescan:   stoppedTimer(),
	}, nil
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// open sets up the watches before the first run. It fails only if the
// root cannot be watched and there is no Rescan to fall back on.
func (l *loop) open() error {
	if err := l.watchAll(); err != nil {
		if l.o.Rescan == 0 {
			return fmt.Errorf("watch %s: %w", l.root, err)
		}
		l.degrade(err.Error())
	}
	l.log.Info("watching for changes", "dir", l.root, "directories", len(l.dirs),
		"debounce", l.o.Debounce, "rescan", l.o.Rescan)
	return nil
}

func (l *loop) close() {
	if l.w != nil {
		if err := l.w.Close(); err != nil {
			l.log.Debug("closing inotify", "err", err)
		}
	}
}

// watchAll starts inotify if needed and adds a watch for every directory
// of the tree that lacks one. It returns an error only if the root itself
// cannot be watched; other failures mark the watches incomplete.
func (l *loop) watchAll() error {
	l.incomplete = false
	if l.w == nil {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			l.incomplete = true
			return fmt.Errorf("start inotify: %w", err)
		}
		l.w, l.events, l.errs = w, w.Events, w.Errors
		if l.addWatch == nil {
			l.addWatch = w.Add
		}
	}
	if _, ok := l.dirs[l.root]; !ok {
		fi, err := os.Stat(l.root)
		if err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
		if err == nil {
			err = l.addWatch(l.root)
		}
		if err != nil {
			l.incomplete = true
			if errors.Is(err, syscall.ENOSPC) {
				err = fmt.Errorf("inotify watch limit reached (raise fs.inotify.max_user_watches): %w", err)
			}
			return err
		}
		l.dirs[l.root] = struct{}{}
	}
	l.watchBelow(l.root)
	return nil
}

// watchTree adds watches for dir, if it has none, and the directories
// below it. It reports false if the inotify watch limit was hit.
func (l *loop) watchTree(dir string) bool {
	if _, ok := l.dirs[dir]; !ok {
		if err := l.addWatch(dir); err != nil {
			return l.watchFailed(dir, err)
		}
		l.dirs[dir] = struct{}{}
	}
	return l.watchBelow(dir)
}

func (l *loop) watchBelow(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil && !l.watchFailed(dir, fmt.Errorf("read directory: %w", err)) {
		return false
	}
	for _, e := range ents { // what ReadDir read before any error
		if e.IsDir() && !ignored(e.Name()) && !l.watchTree(filepath.Join(dir, e.Name())) {
			return false
		}
	}
	return true
}

// watchFailed handles a directory that could not be watched or read. It
// reports false if the inotify watch limit was hit.
func (l *loop) watchFailed(dir string, err error) bool {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return true // gone already; its parent reports the removal
	case errors.Is(err, syscall.ENOSPC):
		l.incomplete = true
		l.degrade(fmt.Sprintf("inotify watch limit reached after %d directories (raise fs.inotify.max_user_watches)", len(l.dirs)))
		return false
	default:
		l.incomplete = true
		l.degrade(fmt.Sprintf("cannot watch %s: %v", dir, err))
		return true
	}
}

// unwatchTree drops the watches on dir and everything below it.
func (l *loop) unwatchTree(dir string) {
	if _, ok := l.dirs[dir]; !ok {
		return
	}
	for d := range l.dirs {
		if !within(d, dir) {
			continue
		}
		delete(l.dirs, d)
		// inotify drops the watch of a deleted directory by itself.
		if err := l.w.Remove(d); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
			l.log.Debug("removing watch", "dir", d, "err", err)
		}
	}
	if dir == l.root {
		l.incomplete = true
		l.degrade("the watched directory was removed or renamed")
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if path == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}

// ignored reports whether name is one of xfer's own partial files or
// journals (plan.IsInternal); events on them never trigger a sync. Other
// names starting with ".xfer-" are the user's and do.
func ignored(name string) bool { return plan.IsInternal(name) }

// degrade switches to periodic rescans, logging reason once.
func (l *loop) degrade(reason string) {
	if reason != l.degraded {
		l.log.Warn("file system notifications are incomplete; rescanning periodically",
			"dir", l.root, "reason", reason, "every", l.fallback)
	} else {
		l.log.Debug("notifications still incomplete", "dir", l.root, "reason", reason)
	}
	l.degraded = reason
	l.armRescan()
}

// rescanEvery is the current rescan interval, 0 for none.
func (l *loop) rescanEvery() time.Duration {
	if l.o.Rescan > 0 || l.degraded != "" {
		return l.fallback
	}
	return 0
}

// armRescan starts the rescan timer if rescans are on, no run is going
// and it is not already running.
func (l *loop) armRescan() {
	if iv := l.rescanEvery(); iv > 0 && !l.running && !l.rescanOn {
		l.rescan.Reset(iv)
		l.rescanOn = true
	}
}

// onEvent updates the watches for ev and reports whether it is a change
// worth a sync.
func (l *loop) onEvent(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if name != l.root && ignored(filepath.Base(name)) {
		return false
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		l.unwatchTree(name)
	}
	if ev.Has(fsnotify.Create) && within(name, l.root) {
		// Files made in a new directory before its watch was added are
		// covered by the run this event triggers.
		if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
			l.watchTree(name)
		}
	}
	return true
}

// onError handles an error from inotify. Every error may mean lost events.
func (l *loop) onError(err error) {
	l.incomplete = true
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		l.degrade("inotify event queue overflowed (raise fs.inotify.max_queued_events)")
	} else {
		l.degrade(fmt.Sprintf("inotify: %v", err))
	}
}

// changed notes a change at now and (re)arms the debounce timer: the run
// starts Debounce after the last change, or MaxWait after the first.
func (l *loop) changed(now time.Time) {
	if !l.pending {
		l.pending, l.first = true, now
	}
	deadline := now.Add(l.o.Debounce)
	if last := l.first.Add(l.o.MaxWait); last.Before(deadline) {
		deadline = last
	}
	l.debounce.Reset(deadline.Sub(now))
}

// run is the event loop: the first sync, then one run per debounced
// burst or rescan, until ctx is done.
func (l *loop) run(ctx context.Context) error {
	done := make(chan error, 1)
	start := func(why string) {
		if l.incomplete {
			if err := l.watchAll(); err != nil {
				l.degrade(err.Error())
			}
		}
		l.running, l.due, l.pending = true, false, false
		l.debounce.Stop()
		l.rescan.Stop()
		l.rescanOn = false
		l.log.Debug("sync", "dir", l.root, "why", why)
		go func() { done <- l.syncFn(ctx) }()
	}
	kick := func(why string) {
		if l.running {
			l.due = true
		} else {
			start(why)
		}
	}

	first := true
	start("first pass")
	for {
		select {
		case <-ctx.Done():
			if l.running {
				if err := <-done; first && err != nil {
					return fmt.Errorf("watch %s: first sync: %w", l.root, err)
				}
			}
			return nil

		case err := <-done:
			l.running = false
			switch {
			case first && err != nil:
				return fmt.Errorf("watch %s: first sync: %w", l.root, err)
			case err != nil && ctx.Err() == nil:
				l.log.Error("sync failed; retrying on the next change or rescan", "dir", l.root, "err", err)
			}
			first = false
			if l.due {
				start("changes during the last run")
			} else {
				l.armRescan()
			}

		case ev, ok := <-l.events:
			if !ok {
				l.events = nil
				l.onError(errors.New("event channel closed"))
				l.changed(time.Now())
				continue
			}
			if l.onEvent(ev) {
				l.changed(time.Now())
			}

		case err, ok := <-l.errs:
			if !ok {
				l.errs = nil
				continue
			}
			l.onError(err)
			l.changed(time.Now()) // events were probably lost: sync after a quiet period

		case <-l.debounce.C:
			kick("changes")

		case <-l.rescan.C:
			l.rescanOn = false
			kick("rescan")
		}
	}
}
