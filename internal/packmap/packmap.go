// Package packmap maps the files of a CAS store read-only, once each: the
// daemon serves packed objects from such mappings, and the mover client
// reads objects in place through its own. Beside the mappings both keep a
// bounded cache (Cache) and hash mapped bytes in a way that survives a file
// truncated under the mapping (Sum).
package packmap

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/cas"
)

// Slack is how far past a growing file's end (a pack's) its mapping
// reaches, so that objects appended later need no new mapping. Pages past
// the end of the file are never touched: an object is indexed only once
// its bytes are in the pack.
const Slack = 64 << 20

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("packmap: mappings closed")

// Mapping is a read-only mapping of a file, with the identity (device and
// inode) of the file it maps.
type Mapping struct {
	Data     []byte
	Dev, Ino uint64
}

// Want says what Get maps.
type Want struct {
	Path string
	Need int64 // bytes from the file's start the mapping must cover
	Grow bool  // the file is appended to (a pack): map Slack past its end
	// Check, when set, vets the opened file by its identity and size
	// before it is mapped; its error is Get's.
	Check func(dev, ino uint64, size int64) error
}

// Set maps files read-only, once each, under keys of type K. When a file
// outgrows its mapping a larger one replaces it; the old one stays mapped
// until Close, since slices of it may still be in use. It is safe for
// concurrent use.
type Set[K comparable] struct {
	mu      sync.RWMutex
	m       map[K]*Mapping
	retired [][]byte
	closed  bool
}

// NewSet returns an empty Set.
func NewSet[K comparable]() *Set[K] { return &Set[K]{m: map[K]*Mapping{}} }

// Get returns the mapping kept under key if it covers w.Need bytes, or maps
// w.Path anew and keeps that under key.
func (s *Set[K]) Get(key K, w Want) (*Mapping, error) {
	s.mu.RLock()
	m, closed := s.m[key], s.closed
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if m != nil && int64(len(m.Data)) >= w.Need {
		return m, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if m = s.m[key]; m != nil && int64(len(m.Data)) >= w.Need {
		return m, nil
	}
	f, err := os.Open(w.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("fstat %s: %w", w.Path, err)
	}
	if w.Check != nil {
		if err := w.Check(uint64(st.Dev), st.Ino, st.Size); err != nil {
			return nil, err
		}
	}
	size := w.Need
	if w.Grow {
		size = (st.Size+Slack-1)/Slack*Slack + Slack
	}
	if size == 0 {
		return &Mapping{Data: []byte{}, Dev: uint64(st.Dev), Ino: st.Ino}, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", w.Path, err)
	}
	if m != nil {
		s.retired = append(s.retired, m.Data)
	}
	m = &Mapping{Data: data, Dev: uint64(st.Dev), Ino: st.Ino}
	s.m[key] = m
	return m, nil
}

// Close unmaps everything; Get fails from then on.
func (s *Set[K]) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, m := range s.m {
		errs = append(errs, unix.Munmap(m.Data))
	}
	for _, b := range s.retired {
		errs = append(errs, unix.Munmap(b))
	}
	s.m, s.retired, s.closed = map[K]*Mapping{}, nil, true
	return errors.Join(errs...)
}

// Sum hashes mapped bytes. A fault reading them (the file truncated under
// the mapping) is an error wrapping cas.ErrCorrupt, not a crash.
func Sum(b []byte) (id cas.ID, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the mapping failed (%v): %w", r, cas.ErrCorrupt)
		}
	}()
	return cas.Sum(b), nil
}
