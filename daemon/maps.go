package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/cas"
)

// mapping is a read-only mapping of a pack file.
type mapping struct {
	data     []byte
	dev, ino uint64
}

// mapSlack is how far past a pack's current end a mapping reaches, so that
// objects appended later need no new mapping. Pages past the end of the
// file are never touched: an object is indexed only once its bytes are in
// the pack.
const mapSlack = 64 << 20

// packMaps maps pack files read-only, once each. When a pack outgrows its
// mapping a larger one replaces it; the old one stays until close, since
// responses in flight may still point into it.
type packMaps struct {
	mu      sync.RWMutex
	m       map[string]*mapping
	retired [][]byte
}

func newPackMaps() *packMaps { return &packMaps{m: map[string]*mapping{}} }

// get returns a mapping of the file at path covering at least need bytes.
func (p *packMaps) get(path string, need int64) (*mapping, error) {
	p.mu.RLock()
	m := p.m[path]
	p.mu.RUnlock()
	if m != nil && int64(len(m.data)) >= need {
		return m, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m = p.m[path]; m != nil && int64(len(m.data)) >= need {
		return m, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("fstat %s: %w", path, err)
	}
	if st.Size < need {
		return nil, fmt.Errorf("%s holds %d bytes, the index points to %d: %w", path, st.Size, need, cas.ErrCorrupt)
	}
	size := (st.Size+mapSlack-1)/mapSlack*mapSlack + mapSlack
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	if m != nil {
		p.retired = append(p.retired, m.data)
	}
	m = &mapping{data: data, dev: uint64(st.Dev), ino: st.Ino}
	p.m[path] = m
	return m, nil
}

func (p *packMaps) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for path, m := range p.m {
		errs = append(errs, unix.Munmap(m.data))
		delete(p.m, path)
	}
	for _, b := range p.retired {
		errs = append(errs, unix.Munmap(b))
	}
	p.retired = nil
	return errors.Join(errs...)
}

// sumMapped hashes mapped bytes; a fault (a pack truncated under the
// mapping) is an error, not a crash.
func sumMapped(b []byte) (id cas.ID, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the mapping failed (%v): %w", r, cas.ErrCorrupt)
		}
	}()
	return cas.Sum(b), nil
}

func fileID(path string) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return uint64(st.Dev), st.Ino, nil
}

// verifiedSet remembers packed objects this process has hashed, by id and
// place (the pack's mapping and the offset): an object removed and stored
// again elsewhere is hashed again. When full, an eighth of the entries are
// dropped.
type verifiedSet struct {
	mu  sync.RWMutex
	m   map[cas.ID]place
	max int
}

type place struct {
	m   *mapping
	off int64
}

func newVerifiedSet(max int) *verifiedSet {
	if max < 0 {
		max = 0
	}
	return &verifiedSet{m: map[cas.ID]place{}, max: max}
}

func (v *verifiedSet) has(id cas.ID, m *mapping, off int64) bool {
	if v.max == 0 {
		return false
	}
	v.mu.RLock()
	p, ok := v.m[id]
	v.mu.RUnlock()
	return ok && p == place{m, off}
}

func (v *verifiedSet) add(id cas.ID, m *mapping, off int64) {
	if v.max == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= v.max {
		drop := max(1, v.max/8)
		for k := range v.m {
			delete(v.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	v.m[id] = place{m, off}
}

// budget is a weighted semaphore bounding the bytes of request data and
// responses held in memory.
type budget struct {
	mu      sync.Mutex
	free    int64
	total   int64
	waiters []waiter
}

type waiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(total int64) *budget { return &budget{free: total, total: total} }

// acquire takes n bytes (at most the whole budget), waiting for room.
func (b *budget) acquire(ctx context.Context, n int64) error {
	n = min(n, b.total)
	b.mu.Lock()
	if b.free >= n && len(b.waiters) == 0 {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := waiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.free += n
			b.wakeLocked()
		default:
			for i := range b.waiters {
				if b.waiters[i].ready == w.ready {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
		}
		return ctx.Err()
	}
}

func (b *budget) release(n int64) {
	n = min(n, b.total)
	b.mu.Lock()
	b.free += n
	b.wakeLocked()
	b.mu.Unlock()
}

func (b *budget) wakeLocked() {
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}
