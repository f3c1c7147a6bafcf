// Package cas is xfer's local content-addressed store: every object is named
// by the BLAKE3-256 digest of its content (its ID, identical to what b3sum
// prints) and is stored once however often it is put.
//
// # Layout
//
// A store is a directory (see docs/cas-layout.md for the byte-level format):
//
//	DIR/FORMAT                 "xfer-cas 1": format marker
//	DIR/lock                   flock(2)ed exclusively by whoever appends
//	DIR/index                  append-only log of 64-byte records (put, delete, dedup, quarantine)
//	DIR/packs/pack-NNNNNN.dat  append-only pack files holding objects <= MaxPacked bytes
//	DIR/objects/ab/cdef...     standalone objects > MaxPacked bytes, raw content, mode 0444
//	DIR/outboard/ab/cdef...    the 64 KiB-group chaining values of each standalone object
//	DIR/tmp/                   in-progress writes (O_TMPFILE: unnamed until complete)
//	DIR/quarantine/            corrupt objects moved aside by Verify
//
// Every object's bytes are contiguous and never rewritten, so a reader may
// mmap a pack or object file read-only and serve (path, offset, length) from
// Locate without copying.
//
// # Consistency
//
// Writers in any number of processes serialise appends with flock on
// DIR/lock. A packed object's bytes are written and fdatasync'ed before the
// index record naming them is appended (and synced), and every record carries
// a CRC-32C, so a write that dies leaves at most unreferenced bytes in a pack
// and a torn record at the index tail, which readers ignore and the next
// writer truncates. Standalone objects are written to an unnamed O_TMPFILE
// and linked into objects/ only when complete and synced, so they appear
// atomically. Readers in other processes notice new index records by checking
// the index size on every lookup.
//
// # Verification
//
// Get streams an object through BLAKE3 while copying it to the writer and
// returns an error wrapping ErrCorrupt at the end if the digest differs; a
// packed object (<= 1 MiB) is hashed before anything is written, so for those
// nothing reaches the writer on corruption. ReadAt verifies the whole object
// for packed objects and the 64 KiB groups covering the range (against the
// outboard chaining values, which are themselves checked against the ID) for
// standalone objects. Locate hands out raw locations: mmap readers verify
// themselves.
package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound reports that the store holds no object with the given ID.
	ErrNotFound = errors.New("cas: object not found")
	// ErrCorrupt reports that stored (or supplied) content does not hash to
	// its ID. Output already written by Get must then be discarded.
	ErrCorrupt = errors.New("cas: content does not match id")
	// ErrClosed reports use of a closed Store.
	ErrClosed = errors.New("cas: store closed")
)

const (
	// MaxPacked is the largest object stored in a pack file; larger objects
	// are stored as standalone files.
	MaxPacked = 1 << 20
	// DefaultPackSize is the size past which a pack file is not appended to.
	DefaultPackSize = 1 << 30

	formatLine = "xfer-cas 1\n"
)

// Options tune a Store. The zero value is the default.
type Options struct {
	// PackSize is the size past which a pack file receives no new objects
	// (default DefaultPackSize).
	PackSize int64
	// NoSync skips fdatasync/fsync. The store still survives the death of
	// any process at any point (the page cache outlives it) but not a power
	// loss.
	NoSync bool
	// Workers bounds the goroutines hashing one large object (default
	// GOMAXPROCS).
	Workers int
	// VerifiedCache, if positive, lets the Store remember up to that many
	// packed objects it has verified and serve later Get/ReadAt calls for
	// them without hashing again. Reads are then verified once per Store
	// (per entry lifetime) rather than every time: for a long-running
	// daemon that trades detection of later on-disk damage for latency.
	// Verify always re-hashes. Default 0: every read is verified.
	VerifiedCache int
}

// Location is where an object's bytes lie: Length bytes at Offset of the
// file at Path (a pack file or a standalone object file). The bytes are never
// modified while the object exists, so the file may be mapped read-only.
type Location struct {
	Path   string
	Offset int64
	Length int64
	Packed bool
}

// Stats summarises a store.
type Stats struct {
	Objects       int64 // live objects
	Bytes         int64 // their total content size
	PackedObjects int64
	PackedBytes   int64
	LargeObjects  int64
	LargeBytes    int64
	Packs         int   // pack files
	PackFileBytes int64 // on-disk size of pack files, headers and dead bytes included
	DedupSaved    int64 // bytes put again but not stored again, since the store was created
}

// loc is the in-memory index entry of a packed object.
type loc struct {
	pack uint32
	off  int64 // of the content, after the header
	size int64
}

// Store is an open content-addressed store. Its methods are safe for
// concurrent use by goroutines (Close excepted: call it when they are done),
// and any number of processes may use the same directory at once.
type Store struct {
	dir     string
	opts    Options
	workers int
	lockf   *os.File
	idx     *os.File
	closed  atomic.Bool

	// wmu serialises this process's writers; flock excludes other processes
	// but not other goroutines sharing lockf.
	wmu     sync.Mutex
	curPack uint32   // pack being appended to; guarded by wmu
	wpack   *os.File // write handle on curPack; guarded by wmu

	mu         sync.RWMutex // guards the fields below
	pos        int64        // index bytes applied
	entries    map[ID]loc
	dedupSaved int64

	pmu   sync.Mutex
	packs map[uint32]*os.File // read handles

	omu      sync.Mutex
	verified map[ID]struct{} // outboards checked against their ID

	vmu    sync.RWMutex
	readOK map[ID]loc // packed objects verified, if opts.VerifiedCache > 0

	// hook, if set (by tests), is called at the named points of a put; the
	// crash tests kill the process there.
	hook func(point string)

	small     sync.Pool // *[]byte, cap MaxPacked
	batch     sync.Pool // *[]byte, cap batchSize
	noTmpfile atomic.Bool
}

// DefaultDir returns the default store directory, $XDG_DATA_HOME/xfer/cas or
// ~/.local/share/xfer/cas. (XFER_CAS and --cas are the CLI's business.)
func DefaultDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "xfer", "cas")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "xfer-cas")
	}
	return filepath.Join(home, ".local", "share", "xfer", "cas")
}

// Open opens the store in dir with default options, creating it if needed.
func Open(dir string) (*Store, error) { return OpenOptions(dir, Options{}) }

// OpenOptions opens the store in dir, creating it if needed. It recovers from
// any crash of a previous user: a torn index tail is truncated and abandoned
// temporary files are removed.
func OpenOptions(dir string, opts Options) (*Store, error) {
	if opts.PackSize <= 0 {
		opts.PackSize = DefaultPackSize
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	for _, sub := range []string{"packs", "objects", "outboard", "tmp", "quarantine"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("cas: open %s: %w", dir, err)
		}
	}
	if err := ensureFormat(dir); err != nil {
		return nil, err
	}
	s := &Store{
		dir:      dir,
		opts:     opts,
		workers:  workers,
		entries:  make(map[ID]loc),
		packs:    make(map[uint32]*os.File),
		verified: make(map[ID]struct{}),
		readOK:   make(map[ID]loc),
	}
	var err error
	if s.lockf, err = os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("cas: open lock: %w", err)
	}
	if s.idx, err = os.OpenFile(filepath.Join(dir, "index"), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		s.lockf.Close()
		return nil, fmt.Errorf("cas: open index: %w", err)
	}
	// Make the names created above durable before anything refers to them.
	if err := s.syncDir(dir); err != nil {
		s.Close()
		return nil, fmt.Errorf("cas: open: %w", err)
	}
	if s.curPack, err = s.lastPack(); err != nil {
		s.Close()
		return nil, err
	}
	// Recovery: under the lock, load the index repairing a torn tail, and
	// clear abandoned temporary files.
	unlock, err := s.lockScanned(context.Background())
	if err == nil {
		err = s.cleanTmp()
		unlock()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the store's files. Locations handed out stay valid.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	s.wmu.Lock()
	if s.wpack != nil {
		errs = append(errs, s.wpack.Close())
		s.wpack = nil
	}
	s.wmu.Unlock()
	s.pmu.Lock()
	for n, f := range s.packs {
		errs = append(errs, f.Close())
		delete(s.packs, n)
	}
	s.pmu.Unlock()
	if s.idx != nil {
		errs = append(errs, s.idx.Close())
	}
	if s.lockf != nil {
		errs = append(errs, s.lockf.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cas: close %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) at(point string) {
	if s.hook != nil {
		s.hook(point)
	}
}

func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

func ensureFormat(dir string) error {
	path := filepath.Join(dir, "FORMAT")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createFormat(dir, path); err != nil {
			return err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("cas: read %s: %w", path, err)
	}
	if string(b) != formatLine {
		return fmt.Errorf("cas: %s: not an xfer cas store of a known format (%q)", dir, strings.TrimSpace(string(b)))
	}
	return nil
}

// createFormat writes the FORMAT file atomically: a temporary file linked
// into place (the link fails harmlessly if a concurrent Open won).
func createFormat(dir, path string) error {
	tmp, err := os.CreateTemp(filepath.Join(dir, "tmp"), "format-*")
	if err != nil {
		return fmt.Errorf("cas: create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(formatLine)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return fmt.Errorf("cas: create %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cas: create %s: %w", path, err)
	}
	return nil
}

// lock takes the store's write lock: wmu within the process, flock across
// processes. It honours ctx while waiting for another process.
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	s.wmu.Lock()
	fd := int(s.lockf.Fd())
	unlock = func() {
		unix.Flock(fd, unix.LOCK_UN)
		s.wmu.Unlock()
	}
	if ctx.Done() == nil {
		for {
			err = unix.Flock(fd, unix.LOCK_EX)
			if err != unix.EINTR {
				break
			}
		}
	} else {
		delay := 20 * time.Microsecond
		var t *time.Timer
		for {
			err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err != unix.EWOULDBLOCK && err != unix.EINTR {
				break
			}
			if t == nil {
				t = time.NewTimer(delay)
			} else {
				t.Reset(delay)
			}
			select {
			case <-ctx.Done():
				t.Stop()
				s.wmu.Unlock()
				return nil, fmt.Errorf("cas: lock %s: %w", s.dir, ctx.Err())
			case <-t.C:
			}
			delay = min(2*delay, 2*time.Millisecond)
		}
	}
	if err != nil {
		s.wmu.Unlock()
		return nil, fmt.Errorf("cas: lock %s: %w", s.dir, err)
	}
	return unlock, nil
}

// lockScanned takes the store's write lock (see lock) and applies the
// records appended since the last scan, repairing a torn tail, as every
// writer must before it appends. On error the lock is released.
func (s *Store) lockScanned(ctx context.Context) (unlock func(), err error) {
	unlock, err = s.lock(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	err = s.scanLocked(true)
	s.mu.Unlock()
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

func (s *Store) syncFile(f *os.File) error {
	if s.opts.NoSync {
		return nil
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
	}
	return nil
}

func (s *Store) syncDir(dir string) error {
	if s.opts.NoSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func (s *Store) packPath(n uint32) string {
	return filepath.Join(s.dir, "packs", fmt.Sprintf("pack-%06d.dat", n))
}

func (s *Store) objectPath(id ID) string {
	h := id.String()
	return filepath.Join(s.dir, "objects", h[:2], h[2:])
}

func (s *Store) outboardPath(id ID) string {
	h := id.String()
	return filepath.Join(s.dir, "outboard", h[:2], h[2:])
}

// packNumbers lists the pack files present, ascending.
func (s *Store) packNumbers() ([]uint32, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "packs"))
	if err != nil {
		return nil, fmt.Errorf("cas: list packs: %w", err)
	}
	var ns []uint32
	for _, e := range ents {
		var n uint32
		if _, err := fmt.Sscanf(e.Name(), "pack-%d.dat", &n); err == nil && n > 0 && e.Name() == fmt.Sprintf("pack-%06d.dat", n) {
			ns = append(ns, n)
		}
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	return ns, nil
}

func (s *Store) lastPack() (uint32, error) {
	ns, err := s.packNumbers()
	if err != nil || len(ns) == 0 {
		return 1, err
	}
	return ns[len(ns)-1], nil
}

// packFile returns a read handle on pack n.
func (s *Store) packFile(n uint32) (*os.File, error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if f, ok := s.packs[n]; ok {
		return f, nil
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	f, err := os.Open(s.packPath(n))
	if err != nil {
		return nil, fmt.Errorf("cas: open pack: %w", err)
	}
	s.packs[n] = f
	return f, nil
}

// cleanTmp removes temporary files abandoned by dead writers. Named
// temporary files (used only where O_TMPFILE is unsupported) are flock'ed
// by their writer for their whole life; one that can be locked and is older
// than a minute is abandoned. Called with the store lock held.
func (s *Store) cleanTmp() error {
	dir := filepath.Join(s.dir, "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cas: clean tmp: %w", err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(path)
		}
		f.Close()
	}
	return nil
}
