package mover

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/cas"
)

// fileMaps maps the store's files read-only, once each (by device and
// inode). A pack that outgrows its mapping gets a larger one; the old one
// stays mapped until close, since slices of it may be in use.
type fileMaps struct {
	mu      sync.Mutex
	m       map[[2]uint64][]byte
	retired [][]byte
}

func newFileMaps() *fileMaps { return &fileMaps{m: map[[2]uint64][]byte{}} }

// mapSlack is how far past a pack's end a mapping reaches, so that objects
// appended later need no new mapping (pages past the end of the file are
// never touched).
const mapSlack = 64 << 20

// view returns the object's bytes at l from a mapping of its file, checking
// that the file at l.Path is the one the daemon saw.
func (fm *fileMaps) view(l *Location) ([]byte, error) {
	key := [2]uint64{l.Dev, l.Ino}
	end := l.Offset + l.Size
	if end < l.Offset {
		return nil, errors.New("mover: bad location")
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if fm.m == nil {
		return nil, ErrClosed
	}
	if m, ok := fm.m[key]; ok && uint64(len(m)) >= end {
		return m[l.Offset:end:end], nil
	}
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if uint64(st.Dev) != l.Dev || st.Ino != l.Ino {
		return nil, fmt.Errorf("mover: %s here is not the daemon's file", l.Path)
	}
	if uint64(st.Size) < end {
		return nil, fmt.Errorf("mover: %s is shorter than the location", l.Path)
	}
	size := int64(end)
	if l.Kind == LocPacked {
		size = (st.Size+mapSlack-1)/mapSlack*mapSlack + mapSlack
	}
	if size == 0 {
		return []byte{}, nil
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mover: mmap %s: %w", l.Path, err)
	}
	if old, ok := fm.m[key]; ok {
		fm.retired = append(fm.retired, old)
	}
	fm.m[key] = m
	return m[l.Offset:end:end], nil
}

func (fm *fileMaps) close() error {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	var errs []error
	for _, m := range fm.m {
		errs = append(errs, unix.Munmap(m))
	}
	for _, m := range fm.retired {
		errs = append(errs, unix.Munmap(m))
	}
	fm.m, fm.retired = nil, nil
	return errors.Join(errs...)
}

// locCache remembers mapped objects by id. When full, an eighth of the
// entries are dropped.
type locCache struct {
	mu  sync.RWMutex
	m   map[string][]byte
	max int
}

func newLocCache(max int) *locCache { return &locCache{m: map[string][]byte{}, max: max} }

func (lc *locCache) get(id string) ([]byte, bool) {
	lc.mu.RLock()
	b, ok := lc.m[id]
	lc.mu.RUnlock()
	return b, ok
}

func (lc *locCache) add(id string, b []byte) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.m) >= lc.max {
		drop := max(1, lc.max/8)
		for k := range lc.m {
			delete(lc.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	lc.m[id] = b
}

func (lc *locCache) clear() {
	lc.mu.Lock()
	clear(lc.m)
	lc.mu.Unlock()
}

// verifyBytes hashes mapped bytes against id; a fault reading the mapping
// is an error, not a crash.
func verifyBytes(id string, b []byte) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("mover: read %s: mapping failed: %v", id, r)
		}
	}()
	got := cas.Sum(b)
	if hex.EncodeToString(got[:]) != id {
		return &OpError{Op: OpReadMapped, ID: id, Status: StatusCorrupt, Msg: "mapped content hashes to " + hex.EncodeToString(got[:])}
	}
	return nil
}
