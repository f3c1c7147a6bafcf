package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/packmap"
)

// locCache remembers where packed objects lie, so that a read costs a map
// lookup rather than cas.Store.Locate (an fstat of the index, a lock and a
// path built with fmt). It relies on the store's format (docs/cas-layout.md):
// a packed object's location changes only through a record appended to
// DIR/index, so the entries are valid for as long as the index file keeps
// its size and modification time, its generation. A request reads the
// generation once (one fstat, for a whole BATCH); when it differs from the
// one the entries were made under, they are all dropped. Standalone objects
// are not cached: they are files of their own, found by cas.Store.Locate.
type locCache struct {
	idx *os.File
	mu  sync.RWMutex
	gen generation
	m   map[cas.ID]cas.Location
	max int
}

// generation identifies a state of the index file.
type generation struct{ size, mtime int64 }

func newLocCache(dir string, max int) (*locCache, error) {
	f, err := os.Open(filepath.Join(dir, "index"))
	if err != nil {
		return nil, fmt.Errorf("daemon: open the store's index: %w", err)
	}
	return &locCache{idx: f, m: map[cas.ID]cas.Location{}, max: max}, nil
}

func (c *locCache) close() error { return c.idx.Close() }

// current returns the index's generation now; ok is false if it cannot be
// read (then nothing is served from the cache).
func (c *locCache) current() (generation, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(c.idx.Fd()), &st); err != nil {
		return generation{}, false
	}
	return generation{st.Size, st.Mtim.Nano()}, true
}

func (c *locCache) get(id cas.ID, g generation) (cas.Location, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.gen != g {
		return cas.Location{}, false
	}
	l, ok := c.m[id]
	return l, ok
}

func (c *locCache) put(id cas.ID, l cas.Location, g generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != g {
		clear(c.m)
		c.gen = g
	}
	packmap.MakeRoom(c.m, c.max)
	c.m[id] = l
}

// view is one request's view of the store: the index generation read when
// it first looked an object up (one fstat per request, or per BATCH).
type view struct {
	s    *Server
	once sync.Once
	gen  generation
	ok   bool
}

func (s *Server) view() *view { return &view{s: s} }

// locate finds id: from the cache if the index is unchanged, else from the
// store.
func (v *view) locate(id cas.ID) (cas.Location, error) {
	v.once.Do(func() { v.gen, v.ok = v.s.locs.current() })
	if v.ok {
		if l, ok := v.s.locs.get(id, v.gen); ok {
			return l, nil
		}
	}
	l, err := v.s.store.Locate(id)
	if err == nil && l.Packed && v.ok {
		v.s.locs.put(id, l, v.gen)
	}
	return l, err
}
