package cas

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Put stores the content read from r and returns its ID and size. Memory use
// is bounded (two 8 MiB batches) whatever the size; content larger than
// MaxPacked is hashed on several cores while it is written.
func (s *Store) Put(ctx context.Context, r io.Reader) (ID, int64, error) {
	return s.put(ctx, nil, r)
}

// PutVerified stores the content read from r, which must hash to id. If it
// does not, nothing is stored and the error wraps ErrCorrupt. If id is
// already stored the content is still read and checked, but not written.
func (s *Store) PutVerified(ctx context.Context, id ID, r io.Reader) error {
	_, _, err := s.put(ctx, &id, r)
	return err
}

// PutBytes stores b and returns its ID.
func (s *Store) PutBytes(ctx context.Context, b []byte) (ID, error) {
	if err := s.check(); err != nil {
		return ID{}, err
	}
	if len(b) <= MaxPacked {
		return s.putBytes(ctx, b, nil)
	}
	id, _, err := s.put(ctx, nil, bytes.NewReader(b))
	return id, err
}

// PutBytesVerified stores b, which must hash to id: PutVerified for content
// already in memory (nothing is copied).
func (s *Store) PutBytesVerified(ctx context.Context, id ID, b []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(b) <= MaxPacked {
		_, err := s.putBytes(ctx, b, &id)
		return err
	}
	_, _, err := s.put(ctx, &id, bytes.NewReader(b))
	return err
}

// PutBytesSummed stores b (at most MaxPacked bytes) whose BLAKE3 hash the
// caller computed itself as id, so that the store does not hash it again
// (the mover daemon hashes a WRITE while its bytes arrive). id must be that
// computed hash, never an ID claimed by someone else: content from
// elsewhere with a claimed ID goes through PutBytesVerified. It is as
// durable as PutBytes.
func (s *Store) PutBytesSummed(ctx context.Context, id ID, b []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(b) > MaxPacked {
		return fmt.Errorf("cas: put %s: %d bytes exceed the %d of a packed object", id, len(b), MaxPacked)
	}
	return s.putPacked(ctx, id, b)
}

func (s *Store) put(ctx context.Context, want *ID, r io.Reader) (ID, int64, error) {
	if err := s.check(); err != nil {
		return ID{}, 0, err
	}
	p := s.getBatch()
	n, err := io.ReadFull(r, (*p)[:MaxPacked+1])
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		defer s.putBatchBuf(p)
		id, err := s.putBytes(ctx, (*p)[:n], want)
		if err != nil {
			return ID{}, 0, err
		}
		return id, int64(n), nil
	case err != nil:
		s.putBatchBuf(p)
		return ID{}, 0, fmt.Errorf("cas: put: read: %w", err)
	}
	m, err := io.ReadFull(r, (*p)[n:])
	last := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !last {
		s.putBatchBuf(p)
		return ID{}, 0, fmt.Errorf("cas: put: read: %w", err)
	}
	return s.putLarge(ctx, want, p, n+m, last, readerFill(r))
}

// PutFile stores the content of the file at path. A large regular file is
// copied in the kernel (copy_file_range: a reflink where the file system
// supports it) while the copy is hashed on several cores; where that is not
// possible it is streamed like Put.
func (s *Store) PutFile(ctx context.Context, path string) (ID, int64, error) {
	if err := s.check(); err != nil {
		return ID{}, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return ID{}, 0, fmt.Errorf("cas: put: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ID{}, 0, fmt.Errorf("cas: put: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() <= MaxPacked {
		id, n, err := s.put(ctx, nil, f)
		if err != nil {
			return ID{}, 0, fmt.Errorf("cas: put %s: %w", path, err)
		}
		return id, n, nil
	}
	size := st.Size()
	id, err := s.putFileCopy(ctx, f, size)
	if errors.Is(err, errNoCopyRange) {
		var n int64
		id, n, err = s.putLarge(ctx, nil, nil, 0, false, fileFill(f, 0, size))
		size = n
	}
	if err != nil {
		return ID{}, 0, fmt.Errorf("cas: put %s: %w", path, err)
	}
	return id, size, nil
}

// Get writes the content of id to w, hashing it on the fly. If the content
// does not match id the error wraps ErrCorrupt; packed objects are checked
// before anything is written, larger ones only at the end, so the caller
// must then discard what w received (GetFile does).
func (s *Store) Get(ctx context.Context, id ID, w io.Writer) (int64, error) {
	l, ok, err := s.lookup(id)
	if err != nil {
		return 0, err
	}
	if ok {
		return s.getPacked(id, l, w)
	}
	return s.getLarge(ctx, id, w)
}

// GetFile writes the content of id to path: to a temporary file beside it,
// renamed over path only once the content is verified and synced.
func (s *Store) GetFile(ctx context.Context, id ID, path string) error {
	if err := s.check(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".xfer-*")
	if err != nil {
		return fmt.Errorf("cas: get %s: %w", id, err)
	}
	_, err = s.Get(ctx, id, tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = s.syncFile(tmp)
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cas: get %s: %w", id, cerr)
	}
	if err == nil {
		if err = os.Rename(tmp.Name(), path); err != nil {
			err = fmt.Errorf("cas: get %s: %w", id, err)
		}
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// ReadAt reads len(p) bytes of object id from offset off, like
// io.ReaderAt (n < len(p) only with an error, io.EOF past the end).
//
// Guarantee: every byte returned has been verified against id. For a packed
// object (<= MaxPacked) the whole object is hashed; for a standalone object
// the 64 KiB groups covering the range are hashed and compared with the
// object's outboard chaining values, which were checked against id (once per
// Store, and again on any mismatch). On ErrCorrupt the content of p is
// unspecified.
func (s *Store) ReadAt(ctx context.Context, id ID, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cas: read %s: negative offset %d", id, off)
	}
	l, ok, err := s.lookup(id)
	if err != nil {
		return 0, err
	}
	if ok {
		return s.readAtPacked(id, l, p, off)
	}
	return s.readAtLarge(ctx, id, p, off)
}

// Has reports whether id is stored.
func (s *Store) Has(id ID) (bool, error) {
	_, err := s.Size(id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Size returns the content size of id.
func (s *Store) Size(id ID) (int64, error) {
	loc, err := s.Locate(id)
	return loc.Length, err
}

// Locate returns where the bytes of id lie, for readers that map pack and
// object files read-only. Such readers do their own verification.
func (s *Store) Locate(id ID) (Location, error) {
	l, ok, err := s.lookup(id)
	if err != nil {
		return Location{}, err
	}
	if ok {
		return Location{Path: s.packPath(l.pack), Offset: l.off, Length: l.size, Packed: true}, nil
	}
	st, err := os.Stat(s.objectPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Location{}, fmt.Errorf("cas: %s: %w", id, ErrNotFound)
		}
		return Location{}, fmt.Errorf("cas: locate %s: %w", id, err)
	}
	return Location{Path: s.objectPath(id), Length: st.Size()}, nil
}

// Remove deletes id. A packed object gets a tombstone in the index (its
// bytes stay in the pack until a compaction); a standalone one is unlinked.
func (s *Store) Remove(ctx context.Context, id ID) error {
	_, ok, err := s.lookup(id)
	if err != nil {
		return err
	}
	if ok {
		return s.removePacked(ctx, id, recDelete, nil)
	}
	path := s.objectPath(id)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cas: remove %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("cas: remove %s: %w", id, err)
	}
	s.forgetOutboard(id)
	if err := os.Remove(s.outboardPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cas: remove outboard of %s: %w", id, err)
	}
	if err := s.syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("cas: remove %s: %w", id, err)
	}
	return nil
}

type idSize struct {
	id   ID
	size int64
}

// largeObjects lists the standalone objects.
func (s *Store) largeObjects(ctx context.Context) ([]idSize, error) {
	root := filepath.Join(s.dir, "objects")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("cas: list %s: %w", root, err)
	}
	var out []idSize
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("cas: list %s: %w", root, err)
		}
		for _, e := range ents {
			var id ID
			if len(e.Name()) != 62 {
				continue
			}
			if _, err := hex.Decode(id[:], []byte(d.Name()+e.Name())); err != nil {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, idSize{id, info.Size()})
		}
	}
	return out, nil
}

// packedObjects snapshots the packed objects.
func (s *Store) packedObjects() (map[ID]loc, error) {
	if err := s.refresh(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[ID]loc, len(s.entries))
	for id, l := range s.entries {
		m[id] = l
	}
	return m, nil
}

// List calls fn for every object, in ID order. An error from fn stops the
// listing and is returned.
func (s *Store) List(ctx context.Context, fn func(id ID, size int64) error) error {
	packed, err := s.packedObjects()
	if err != nil {
		return err
	}
	all, err := s.largeObjects(ctx)
	if err != nil {
		return err
	}
	for id, l := range packed {
		all = append(all, idSize{id, l.size})
	}
	sort.Slice(all, func(i, j int) bool { return bytes.Compare(all[i].id[:], all[j].id[:]) < 0 })
	for _, o := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(o.id, o.size); err != nil {
			return err
		}
	}
	return nil
}

// Stat summarises the store.
func (s *Store) Stat() (Stats, error) {
	packed, err := s.packedObjects()
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	for _, l := range packed {
		st.PackedObjects++
		st.PackedBytes += l.size
	}
	large, err := s.largeObjects(context.Background())
	if err != nil {
		return Stats{}, err
	}
	for _, o := range large {
		st.LargeObjects++
		st.LargeBytes += o.size
	}
	st.Objects = st.PackedObjects + st.LargeObjects
	st.Bytes = st.PackedBytes + st.LargeBytes
	ns, err := s.packNumbers()
	if err != nil {
		return Stats{}, err
	}
	for _, n := range ns {
		if info, err := os.Stat(s.packPath(n)); err == nil {
			st.Packs++
			st.PackFileBytes += info.Size()
		}
	}
	s.mu.RLock()
	st.DedupSaved = s.dedupSaved
	s.mu.RUnlock()
	return st, nil
}

// Verify re-hashes every object. It calls report (if non-nil) once per
// object, with a nil error if the object is intact. A corrupt object (error
// wrapping ErrCorrupt) is moved to DIR/quarantine and removed from the
// store, which keeps working; putting the same content again stores it
// afresh. Missing or damaged outboards of intact objects are rebuilt
// silently. The returned error reports I/O failures other than corruption.
func (s *Store) Verify(ctx context.Context, report func(id ID, err error)) (checked, corrupt int, err error) {
	if report == nil {
		report = func(ID, error) {}
	}
	var errs []error
	note := func(id ID, e error) {
		checked++
		if errors.Is(e, ErrCorrupt) {
			corrupt++
		} else if e != nil {
			errs = append(errs, e)
		}
		report(id, e)
	}
	packed, err := s.packedObjects()
	if err != nil {
		return 0, 0, err
	}
	type packedObj struct {
		id ID
		l  loc
	}
	order := make([]packedObj, 0, len(packed))
	for id, l := range packed {
		order = append(order, packedObj{id, l})
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i].l, order[j].l
		return a.pack < b.pack || (a.pack == b.pack && a.off < b.off)
	})
	for _, o := range order {
		if err := ctx.Err(); err != nil {
			return checked, corrupt, err
		}
		p, e := s.readPacked(o.id, o.l, false)
		if e == nil {
			s.putSmall(p)
		} else if errors.Is(e, ErrCorrupt) {
			if qerr := s.quarantinePacked(ctx, o.id, o.l); qerr != nil {
				e = errors.Join(e, qerr)
			}
		}
		note(o.id, e)
	}
	large, err := s.largeObjects(ctx)
	if err != nil {
		return checked, corrupt, err
	}
	for _, o := range large {
		if err := ctx.Err(); err != nil {
			return checked, corrupt, err
		}
		note(o.id, s.verifyLarge(ctx, o.id))
	}
	return checked, corrupt, errors.Join(errs...)
}

func (s *Store) verifyLarge(ctx context.Context, id ID) error {
	f, size, err := s.openLarge(id)
	if err != nil {
		return err
	}
	defer f.Close()
	ob, err := s.hashLarge(ctx, "verify", id, f, size)
	if errors.Is(err, ErrCorrupt) {
		s.forgetOutboard(id)
		if qerr := s.quarantineLarge(id); qerr != nil {
			err = errors.Join(err, qerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	defer ob.close()
	ok, err := checkOutboard(s.outboardPath(id), id, size)
	if err != nil || !ok {
		s.forgetOutboard(id)
		if err := errors.Join(s.syncFile(ob.f), s.replaceOutboard(id, ob)); err != nil {
			return fmt.Errorf("cas: verify %s: %w", id, err)
		}
	}
	return nil
}

func (s *Store) quarantineName(id ID) string {
	return filepath.Join(s.dir, "quarantine", id.String()+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
}

// quarantinePacked copies the bad bytes of a packed object to DIR/quarantine
// and tombstones it, if it is still at l.
func (s *Store) quarantinePacked(ctx context.Context, id ID, l loc) error {
	f, err := s.packFile(l.pack)
	if err != nil {
		return err
	}
	buf := make([]byte, l.size)
	n, _ := f.ReadAt(buf, l.off)
	if err := os.WriteFile(s.quarantineName(id), buf[:n], 0o444); err != nil {
		return fmt.Errorf("cas: quarantine %s: %w", id, err)
	}
	s.vmu.Lock()
	delete(s.readOK, id)
	s.vmu.Unlock()
	err = s.removePacked(ctx, id, recQuarantine, func(cur loc) bool { return cur == l })
	if errors.Is(err, ErrNotFound) {
		return nil // removed or replaced meanwhile
	}
	return err
}

// quarantineLarge moves a corrupt standalone object to DIR/quarantine.
func (s *Store) quarantineLarge(id ID) error {
	path := s.objectPath(id)
	if err := os.Rename(path, s.quarantineName(id)); err != nil {
		return fmt.Errorf("cas: quarantine %s: %w", id, err)
	}
	if err := os.Remove(s.outboardPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cas: quarantine %s: %w", id, err)
	}
	return s.syncDir(filepath.Dir(path))
}
