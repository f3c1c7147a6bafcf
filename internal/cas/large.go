package cas

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// batchSize is the unit of streaming I/O for large objects: a whole number of
// 64 KiB groups, hashed on up to Options.Workers cores while the previous or
// next batch is read and written. Two batches are in flight per stream.
const batchSize = 8 << 20

func (s *Store) getBatch() *[]byte {
	if p, ok := s.batch.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, batchSize)
	return &b
}

func (s *Store) putBatchBuf(p *[]byte) { s.batch.Put(p) }

// fillFunc reads the next batch into b. It returns how many bytes it read
// and whether the stream ended with them.
type fillFunc func(b []byte) (n int, last bool, err error)

func readerFill(r io.Reader) fillFunc {
	return func(b []byte) (int, bool, error) {
		n, err := io.ReadFull(r, b)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, true, nil
		}
		return n, false, err
	}
}

// fileFill reads [off, size) of f.
func fileFill(f *os.File, off, size int64) fillFunc {
	return func(b []byte) (int, bool, error) {
		want := int(min(int64(len(b)), size-off))
		n, err := f.ReadAt(b[:want], off)
		off += int64(n)
		if n < want {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("%s shorter than its %d bytes: %w", f.Name(), size, io.ErrUnexpectedEOF)
			}
			return n, false, err
		}
		return n, off >= size, nil
	}
}

// pump reads a stream batch by batch with fill, one batch ahead, and hands
// the batches in order to consume. If first is non-nil it is the first
// batch, already read (firstN bytes, ending the stream if firstLast). Memory
// is bounded by two batches.
func (s *Store) pump(ctx context.Context, first *[]byte, firstN int, firstLast bool, fill fillFunc, consume func([]byte) error) error {
	type batch struct {
		p    *[]byte
		n    int
		last bool
		err  error
	}
	free := make(chan *[]byte, 2)
	full, stop := runAhead(func(send func(batch) bool, done <-chan struct{}) {
		allocated := 0
		if first != nil {
			allocated = 1
			if !send(batch{p: first, n: firstN, last: firstLast}) || firstLast {
				return
			}
		}
		for {
			var p *[]byte
			if allocated < cap(free) {
				p = s.getBatch()
				allocated++
			} else {
				select {
				case p = <-free:
				case <-done:
					return
				}
			}
			n, last, err := fill(*p)
			if !send(batch{p: p, n: n, last: last, err: err}) || last || err != nil {
				return
			}
		}
	})
	// On return, stop the reader and wait for it: the caller's reader must
	// not be used after Put returns (a fill in progress is finished first).
	defer stop()
	for b := range full {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.err != nil {
			return b.err
		}
		if err := consume((*b.p)[:b.n]); err != nil {
			return err
		}
		if b.last {
			s.putBatchBuf(b.p)
			for {
				select {
				case p := <-free:
					s.putBatchBuf(p)
				default:
					return nil
				}
			}
		}
		free <- b.p // never blocks: at most cap(free) buffers exist
	}
	return nil
}

// runAhead runs produce on a goroutine of its own, which hands its items to
// the caller through the returned channel (one may wait there) and closes
// it on return. send returns false once the caller has called stop; produce
// then returns, and selects on done where it waits for anything else. stop,
// which the caller must call once it stops receiving, returns when produce
// has.
func runAhead[T any](produce func(send func(T) bool, done <-chan struct{})) (<-chan T, func()) {
	items := make(chan T, 1)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(items)
		produce(func(v T) bool {
			select {
			case items <- v:
				return true
			case <-done:
				return false
			}
		}, done)
	}()
	return items, func() {
		close(done)
		<-exited
	}
}

// hashConsume returns a consume function that hashes each batch into h and,
// if w is non-nil, writes it to w concurrently.
func hashConsume(h *hashtree.Stream, w io.Writer) func([]byte) error {
	return func(b []byte) error {
		if w == nil {
			return h.Add(b)
		}
		var werr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, werr = w.Write(b)
		}()
		herr := h.Add(b)
		wg.Wait()
		return errors.Join(werr, herr)
	}
}

// tmpFile is a file being written in DIR/tmp: unnamed (O_TMPFILE) where
// the file system allows, so that nothing is left if the writer dies.
type tmpFile struct {
	f    *os.File
	name string // "" for O_TMPFILE
}

func (s *Store) createTmp() (*tmpFile, error) {
	dir := filepath.Join(s.dir, "tmp")
	if !s.noTmpfile.Load() {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
		if err == nil {
			return &tmpFile{f: os.NewFile(uintptr(fd), filepath.Join(dir, "(O_TMPFILE)"))}, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("cas: create temporary file in %s: %w", dir, err)
		}
		s.noTmpfile.Store(true)
	}
	f, err := os.CreateTemp(dir, "put-*")
	if err != nil {
		return nil, fmt.Errorf("cas: create temporary file: %w", err)
	}
	// Held for the file's life: tells cleanTmp the writer is alive.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("cas: lock %s: %w", f.Name(), err)
	}
	return &tmpFile{f: f, name: f.Name()}, nil
}

// link gives the complete temporary file the name dst; it fails with an
// error matching fs.ErrExist if dst exists.
func (t *tmpFile) link(dst string) error {
	if t.name != "" {
		return os.Link(t.name, dst)
	}
	fd := int(t.f.Fd())
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) { // no /proc: needs CAP_DAC_READ_SEARCH
		err = unix.Linkat(fd, "", unix.AT_FDCWD, dst, unix.AT_EMPTY_PATH)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: t.f.Name(), New: dst, Err: err}
	}
	return nil
}

func (t *tmpFile) close() {
	if t == nil {
		return
	}
	t.f.Close()
	if t.name != "" {
		os.Remove(t.name)
	}
}

// mkdirSynced creates dir (one level) if missing, making its name durable.
func (s *Store) mkdirSynced(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return s.syncDir(filepath.Dir(dir))
}

// cvWriter returns an outboard sink writing group digests to w.
func cvWriter(w *bufio.Writer) func(hashtree.Digest) error {
	return func(d hashtree.Digest) error {
		_, err := w.Write(d[:])
		return err
	}
}

// putLarge stores a stream longer than MaxPacked as a standalone object.
// The stream starts with the batch first (firstN bytes) and continues with
// fill. If want is non-nil the content must hash to it.
func (s *Store) putLarge(ctx context.Context, want *ID, first *[]byte, firstN int, firstLast bool, fill fillFunc) (ID, int64, error) {
	if want != nil {
		if ok, err := s.Has(*want); err != nil {
			return ID{}, 0, err
		} else if ok {
			// Already stored: verify the content without writing it.
			h := s.newHasher(nil)
			if err := s.pump(ctx, first, firstN, firstLast, fill, hashConsume(h, nil)); err != nil {
				return ID{}, 0, fmt.Errorf("cas: put %s: %w", *want, err)
			}
			if got, _ := h.Sum(); ID(got) != *want {
				return ID{}, 0, fmt.Errorf("cas: put %s: content hashes to %s: %w", *want, got, ErrCorrupt)
			}
			return *want, h.Len(), s.noteDedup(ctx, *want, h.Len())
		}
	}
	obj, err := s.createTmp()
	if err != nil {
		return ID{}, 0, err
	}
	defer obj.close()
	ob, err := s.createTmp()
	if err != nil {
		return ID{}, 0, err
	}
	defer ob.close()
	obw := bufio.NewWriterSize(ob.f, 64<<10)
	h := s.newHasher(cvWriter(obw))
	if err := s.pump(ctx, first, firstN, firstLast, fill, hashConsume(h, obj.f)); err != nil {
		return ID{}, 0, fmt.Errorf("cas: put: %w", err)
	}
	sum, err := h.Sum()
	id := ID(sum)
	if err := errors.Join(err, obw.Flush()); err != nil {
		return ID{}, 0, fmt.Errorf("cas: put %s: write outboard: %w", id, err)
	}
	if want != nil && id != *want {
		return ID{}, 0, fmt.Errorf("cas: put %s: content hashes to %s: %w", *want, id, ErrCorrupt)
	}
	s.at("large-written")
	if err := s.commitLarge(ctx, id, h.Len(), obj, ob); err != nil {
		return ID{}, 0, err
	}
	return id, h.Len(), nil
}

// commitLarge makes a complete standalone object visible: the outboard first,
// then the object, each synced and linked into place atomically.
func (s *Store) commitLarge(ctx context.Context, id ID, size int64, obj, ob *tmpFile) error {
	path := s.objectPath(id)
	if _, err := os.Stat(path); err == nil {
		return s.noteDedup(ctx, id, size)
	}
	if err := obj.f.Chmod(0o444); err != nil {
		return fmt.Errorf("cas: put %s: %w", id, err)
	}
	if err := errors.Join(s.syncFile(obj.f), s.syncFile(ob.f)); err != nil {
		return fmt.Errorf("cas: put %s: %w", id, err)
	}
	obPath := s.outboardPath(id)
	if err := errors.Join(s.mkdirSynced(filepath.Dir(path)), s.mkdirSynced(filepath.Dir(obPath))); err != nil {
		return fmt.Errorf("cas: put %s: %w", id, err)
	}
	if err := ob.link(obPath); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cas: put %s: %w", id, err)
	}
	s.at("outboard-linked")
	if err := obj.link(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return s.noteDedup(ctx, id, size)
		}
		return fmt.Errorf("cas: put %s: %w", id, err)
	}
	s.at("large-linked")
	if err := errors.Join(s.syncDir(filepath.Dir(obPath)), s.syncDir(filepath.Dir(path))); err != nil {
		return fmt.Errorf("cas: put %s: %w", id, err)
	}
	return nil
}

// noteDedup records that size bytes of id were put again and not stored.
func (s *Store) noteDedup(ctx context.Context, id ID, size int64) error {
	unlock, err := s.lockScanned(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.appendRecord(record{kind: recDedup, id: id, size: size}, false)
}

// openLarge opens a standalone object and returns its size.
func (s *Store) openLarge(id ID) (*os.File, int64, error) {
	f, err := os.Open(s.objectPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("cas: %s: %w", id, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("cas: open object: %w", err)
	}
	size, err := fileSize(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("cas: %w", err)
	}
	return f, size, nil
}

// getLarge streams a standalone object to w, hashing it on the fly.
func (s *Store) getLarge(ctx context.Context, id ID, w io.Writer) (int64, error) {
	f, size, err := s.openLarge(id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cw := &countWriter{w: w}
	h := s.newHasher(nil)
	if err := s.pump(ctx, nil, 0, false, fileFill(f, 0, size), hashConsume(h, cw)); err != nil {
		return cw.n, fmt.Errorf("cas: get %s: %w", id, err)
	}
	if got, _ := h.Sum(); ID(got) != id {
		return cw.n, fmt.Errorf("cas: get %s: %s hashes to %s: %w", id, f.Name(), got, ErrCorrupt)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// hashLarge hashes the standalone object id, open as f, and writes its
// outboard to a new temporary file, which the caller closes. An object that
// does not hash to id is an ErrCorrupt error; other errors say they happened
// while doing (to id).
func (s *Store) hashLarge(ctx context.Context, doing string, id ID, f *os.File, size int64) (*tmpFile, error) {
	ob, err := s.createTmp()
	if err != nil {
		return nil, err
	}
	obw := bufio.NewWriterSize(ob.f, 64<<10)
	h := s.newHasher(cvWriter(obw))
	err = s.pump(ctx, nil, 0, false, fileFill(f, 0, size), hashConsume(h, nil))
	var got hashtree.Digest
	if err == nil {
		got, err = h.Sum()
		if err = errors.Join(err, obw.Flush()); err != nil {
			err = fmt.Errorf("write outboard: %w", err)
		}
	}
	switch {
	case err != nil:
		err = fmt.Errorf("cas: %s %s: %w", doing, id, err)
	case ID(got) != id:
		err = fmt.Errorf("cas: %s hashes to %s: %w", f.Name(), got, ErrCorrupt)
	default:
		return ob, nil
	}
	ob.close()
	return nil, err
}

// checkOutboard reports whether the outboard file at path holds the group
// CVs of an object of the given size and ID. It streams the file, so memory
// does not grow with the object.
func checkOutboard(path string, id ID, size int64) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	ng := (size + GroupSize - 1) / GroupSize
	if fsz, err := fileSize(f); err != nil || fsz != ng*cvSize || ng < 2 {
		return false, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var m hashtree.Merger
	var d hashtree.Digest
	for i := int64(0); i < ng; i++ {
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return false, fmt.Errorf("read %s: %w", path, err)
		}
		if i < ng-1 {
			m.Push(d)
		} else if ID(m.Root(d)) != id {
			return false, nil
		}
	}
	return true, nil
}

// ensureOutboard makes sure the outboard of a standalone object is present
// and matches its ID, rebuilding it from the object (which verifies the
// object) if not. Validated outboards are remembered per Store.
func (s *Store) ensureOutboard(ctx context.Context, id ID, f *os.File, size int64) error {
	s.omu.Lock()
	_, ok := s.verified[id]
	s.omu.Unlock()
	if ok {
		return nil
	}
	obPath := s.outboardPath(id)
	ok, err := checkOutboard(obPath, id, size)
	if err != nil {
		return fmt.Errorf("cas: check outboard of %s: %w", id, err)
	}
	if !ok {
		if err := s.rebuildOutboard(ctx, id, f, size); err != nil {
			return err
		}
	}
	s.omu.Lock()
	if len(s.verified) >= 4096 {
		clear(s.verified)
	}
	s.verified[id] = struct{}{}
	s.omu.Unlock()
	return nil
}

func (s *Store) forgetOutboard(id ID) {
	s.omu.Lock()
	delete(s.verified, id)
	s.omu.Unlock()
}

// rebuildOutboard hashes the object, and if it matches its ID replaces its
// outboard with a fresh one.
func (s *Store) rebuildOutboard(ctx context.Context, id ID, f *os.File, size int64) error {
	ob, err := s.hashLarge(ctx, "rebuild outboard of", id, f, size)
	if err != nil {
		return err
	}
	defer ob.close()
	if err := s.syncFile(ob.f); err != nil {
		return fmt.Errorf("cas: rebuild outboard of %s: %w", id, err)
	}
	return s.replaceOutboard(id, ob)
}

func (s *Store) replaceOutboard(id ID, ob *tmpFile) error {
	obPath := s.outboardPath(id)
	if err := s.mkdirSynced(filepath.Dir(obPath)); err != nil {
		return fmt.Errorf("cas: outboard of %s: %w", id, err)
	}
	if err := os.Remove(obPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cas: outboard of %s: %w", id, err)
	}
	if err := ob.link(obPath); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cas: outboard of %s: %w", id, err)
	}
	return s.syncDir(filepath.Dir(obPath))
}

// readAtLarge serves a range of a standalone object, verifying each 64 KiB
// group it touches against the object's (verified) outboard.
func (s *Store) readAtLarge(ctx context.Context, id ID, p []byte, off int64) (int, error) {
	f, size, err := s.openLarge(id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if len(p) == 0 {
		return 0, nil
	}
	if off >= size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	g0, g1 := off/GroupSize, (end-1)/GroupSize
	buf := s.getSmall(MaxPacked)
	defer s.putSmall(buf)
	const perRead = MaxPacked / GroupSize
	var cvb [perRead * cvSize]byte
	retried := false
	n := 0
	for g := g0; g <= g1; {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := s.ensureOutboard(ctx, id, f, size); err != nil {
			return n, err
		}
		k := min(g1-g+1, perRead)
		ob, err := os.Open(s.outboardPath(id))
		if err != nil {
			return n, fmt.Errorf("cas: read %s: %w", id, err)
		}
		_, err = ob.ReadAt(cvb[:k*cvSize], g*cvSize)
		ob.Close()
		if err != nil {
			s.forgetOutboard(id)
			return n, fmt.Errorf("cas: read outboard of %s: %w", id, err)
		}
		start, stop := g*GroupSize, min((g+k)*GroupSize, size)
		data := (*buf)[:stop-start]
		if _, err := f.ReadAt(data, start); err != nil {
			return n, fmt.Errorf("cas: read %s at %d: %w", f.Name(), start, err)
		}
		bad := int64(-1)
		for i := int64(0); i < k; i++ {
			gd := data[i*GroupSize : min((i+1)*GroupSize, int64(len(data)))]
			if hashtree.ChunkDigest(gd, (g+i)*GroupSize, size, GroupSize) != hashtree.Digest(cvb[i*cvSize:(i+1)*cvSize]) {
				bad = g + i
				break
			}
		}
		if bad >= 0 {
			// Either the object or the outboard changed since the outboard
			// was checked: re-check the outboard once, then blame the object.
			s.forgetOutboard(id)
			if !retried {
				retried = true
				continue
			}
			return n, fmt.Errorf("cas: %s: 64 KiB group %d at offset %d does not match the outboard: %w", f.Name(), bad, bad*GroupSize, ErrCorrupt)
		}
		lo, hi := max(off, start), min(end, stop)
		n += copy(p[n:], data[lo-start:hi-start])
		g += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
