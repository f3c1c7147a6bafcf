package daemon

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/packmap"
)

// mapping is a read-only mapping of a pack file.
type mapping = packmap.Mapping

// packMaps maps pack files read-only, once each (by path). When a pack
// outgrows its mapping a larger one replaces it; the old one stays until
// close, since responses in flight may still point into it.
type packMaps struct{ set *packmap.Set[string] }

func newPackMaps() *packMaps { return &packMaps{set: packmap.NewSet[string]()} }

// get returns a mapping of the file at path covering at least need bytes.
func (p *packMaps) get(path string, need int64) (*mapping, error) {
	return p.set.Get(path, packmap.Want{Path: path, Need: need, Grow: true,
		Check: func(_, _ uint64, size int64) error {
			if size < need {
				return fmt.Errorf("%s holds %d bytes, the index points to %d: %w", path, size, need, cas.ErrCorrupt)
			}
			return nil
		}})
}

func (p *packMaps) close() error { return p.set.Close() }

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
// dropped; a set of max 0 or less remembers nothing.
type verifiedSet struct{ c *packmap.Cache[cas.ID, place] }

type place struct {
	m   *mapping
	off int64
}

func newVerifiedSet(max int) *verifiedSet {
	return &verifiedSet{c: packmap.NewCache[cas.ID, place](max)}
}

func (v *verifiedSet) has(id cas.ID, m *mapping, off int64) bool {
	p, ok := v.c.Get(id)
	return ok && p == place{m, off}
}

func (v *verifiedSet) add(id cas.ID, m *mapping, off int64) { v.c.Put(id, place{m, off}) }

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
