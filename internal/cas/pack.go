package cas

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// Each object in a pack file is preceded by a 64-byte header, so that the
// index could be rebuilt from the packs alone:
//
//	[0:4]    "XCP1"
//	[4:8]    0
//	[8:16]   content length, little endian
//	[16:48]  object ID
//	[48:60]  0
//	[60:64]  CRC-32C of bytes [0:60]
//
// The content follows immediately; index records point at the content.
const packHeaderSize = 64

func packHeader(id ID, size int64) []byte {
	b := make([]byte, packHeaderSize)
	copy(b, "XCP1")
	binary.LittleEndian.PutUint64(b[8:], uint64(size))
	copy(b[16:48], id[:])
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// getSmall returns a pooled buffer of length n <= MaxPacked.
func (s *Store) getSmall(n int) *[]byte {
	if p, ok := s.small.Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, MaxPacked)
	return &b
}

func (s *Store) putSmall(p *[]byte) { s.small.Put(p) }

// overlapMin is the smallest object whose bytes putBytes writes to the pack
// while it hashes them, instead of after: from about this size on, the
// write (a copy into the page cache) and the hash take long enough for
// running them side by side to pay for the goroutine.
const overlapMin = 256 << 10

// putBytes stores data (<= MaxPacked bytes) in a pack and returns its ID;
// with want, the content must hash to *want (ErrCorrupt otherwise: nothing
// is stored).
func (s *Store) putBytes(ctx context.Context, data []byte, want *ID) (ID, error) {
	if len(data) >= overlapMin && !s.hasPacked(want) {
		return s.putPackedOverlap(ctx, data, want)
	}
	id := s.sum(data)
	if want != nil && id != *want {
		return ID{}, fmt.Errorf("cas: put %s: content hashes to %s: %w", *want, id, ErrCorrupt)
	}
	return id, s.putPacked(ctx, id, data)
}

// hasPacked reports whether id is non-nil and known as a packed object (a
// put of content expected to be stored already is only hashed).
func (s *Store) hasPacked(id *ID) bool {
	if id == nil {
		return false
	}
	_, ok, err := s.lookup(*id)
	return ok && err == nil
}

// putPackedOverlap is putPacked for content not hashed yet: under the lock
// it writes the content to the end of the pack on another goroutine while it
// hashes it, then writes the entry's header. If the content turns out to be
// stored already (or not to match want), the pack is cut back to its size
// before: those bytes lay past every object, no index record named them, and
// nobody else appends while the lock is held. A writer dying before that
// leaves them as dead space, like any put dying before its index record.
func (s *Store) putPackedOverlap(ctx context.Context, data []byte, want *ID) (ID, error) {
	unlock, err := s.lockScanned(ctx)
	if err != nil {
		return ID{}, err
	}
	defer unlock()
	need := int64(packHeaderSize + len(data))
	f, off, err := s.packForAppend(need)
	if err != nil {
		return ID{}, err
	}
	fd := int(f.Fd())
	written := make(chan error, 1)
	go func() { written <- pwriteAll(fd, data, off+packHeaderSize) }()
	id := ID(hashtree.SumWorkers(data, 1)) // on this goroutine, beside the write
	werr := <-written
	undo := func() {
		// Best effort: bytes left past the end are dead space.
		f.Truncate(off)
	}
	if werr != nil {
		undo()
		return ID{}, fmt.Errorf("cas: put %s: write %s at %d: %w", id, f.Name(), off+packHeaderSize, werr)
	}
	if want != nil && id != *want {
		undo()
		return ID{}, fmt.Errorf("cas: put %s: content hashes to %s: %w", *want, id, ErrCorrupt)
	}
	if _, exists := s.entry(id); exists {
		undo()
		return id, s.appendRecord(record{kind: recDedup, id: id, size: int64(len(data))}, false)
	}
	err = pwriteAll(fd, packHeader(id, int64(len(data))), off)
	if err == nil {
		s.at("pack-written")
		err = s.syncFile(f)
	}
	if err != nil {
		return ID{}, fmt.Errorf("cas: put %s: write %s at %d: %w", id, f.Name(), off, err)
	}
	s.at("pack-synced")
	if err := s.appendRecord(record{kind: recPut, pack: s.curPack, off: off + packHeaderSize, size: int64(len(data)), id: id}, true); err != nil {
		return ID{}, err
	}
	s.at("packed-indexed")
	return id, nil
}

// pwriteAll writes all of b at off.
func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// putPacked stores data (<= MaxPacked bytes) whose ID is id in a pack.
func (s *Store) putPacked(ctx context.Context, id ID, data []byte) error {
	unlock, err := s.lockScanned(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, exists := s.entry(id); exists {
		return s.appendRecord(record{kind: recDedup, id: id, size: int64(len(data))}, false)
	}
	need := int64(packHeaderSize + len(data))
	f, off, err := s.packForAppend(need)
	if err != nil {
		return err
	}
	n, err := unix.Pwritev(int(f.Fd()), [][]byte{packHeader(id, int64(len(data))), data}, off)
	if err == nil && int64(n) != need {
		err = io.ErrShortWrite
	}
	if err == nil {
		s.at("pack-written")
		err = s.syncFile(f)
	}
	if err != nil {
		return fmt.Errorf("cas: put %s: write %s at %d: %w", id, f.Name(), off, err)
	}
	s.at("pack-synced")
	if err := s.appendRecord(record{kind: recPut, pack: s.curPack, off: off + packHeaderSize, size: int64(len(data)), id: id}, true); err != nil {
		return err
	}
	s.at("packed-indexed")
	return nil
}

// packForAppend returns the pack to append need bytes to and the offset to
// write them at. Every writer picks the lowest pack from its current one on
// whose size+need fits PackSize, so no shared "current pack" state is
// needed. Caller holds the store lock.
func (s *Store) packForAppend(need int64) (*os.File, int64, error) {
	for {
		if s.wpack == nil {
			path := s.packPath(s.curPack)
			_, statErr := os.Stat(path)
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return nil, 0, fmt.Errorf("cas: open pack for append: %w", err)
			}
			if statErr != nil {
				// A new pack: make its name durable before the index can
				// refer to it.
				if err := s.syncDir(filepath.Dir(path)); err != nil {
					f.Close()
					return nil, 0, fmt.Errorf("cas: create pack: %w", err)
				}
			}
			s.wpack = f
		}
		size, err := fileSize(s.wpack)
		if err != nil {
			return nil, 0, fmt.Errorf("cas: %w", err)
		}
		if size == 0 || size+need <= s.opts.PackSize {
			return s.wpack, size, nil
		}
		s.wpack.Close()
		s.wpack = nil
		s.curPack++
	}
}

// readPacked reads the whole content of a packed object into a pooled buffer
// and verifies it (unless cached says a verified-read cache may vouch for
// it). The caller must putSmall the buffer.
func (s *Store) readPacked(id ID, l loc, cached bool) (*[]byte, error) {
	f, err := s.packFile(l.pack)
	if err != nil {
		return nil, err
	}
	p := s.getSmall(int(l.size))
	if err := s.readPackedInto(id, f, l, *p, cached); err != nil {
		s.putSmall(p)
		return nil, err
	}
	return p, nil
}

// readPackedInto reads and verifies the content of a packed object into b
// (len(b) == l.size).
func (s *Store) readPackedInto(id ID, f *os.File, l loc, b []byte, cached bool) error {
	n, err := f.ReadAt(b, l.off)
	if err != nil && !(err == io.EOF && n == len(b)) {
		if err == io.EOF {
			return fmt.Errorf("cas: object %s: pack %s truncated at %d: %w", id, f.Name(), l.off+int64(n), ErrCorrupt)
		}
		return fmt.Errorf("cas: read object %s from %s: %w", id, f.Name(), err)
	}
	if cached && s.opts.VerifiedCache > 0 {
		s.vmu.RLock()
		ok := s.readOK[id] == l
		s.vmu.RUnlock()
		if ok {
			return nil
		}
	}
	if got := s.sum(b); got != id {
		return fmt.Errorf("cas: object %s in %s at %d hashes to %s: %w", id, f.Name(), l.off, got, ErrCorrupt)
	}
	if s.opts.VerifiedCache > 0 {
		s.vmu.Lock()
		if len(s.readOK) >= s.opts.VerifiedCache {
			clear(s.readOK)
		}
		s.readOK[id] = l
		s.vmu.Unlock()
	}
	return nil
}

// sum hashes b, in parallel when it is large enough to pay off.
func (s *Store) sum(b []byte) ID { return ID(hashtree.SumWorkers(b, s.workers)) }

// getPacked verifies a packed object before writing it to w.
func (s *Store) getPacked(id ID, l loc, w io.Writer) (int64, error) {
	p, err := s.readPacked(id, l, true)
	if err != nil {
		return 0, err
	}
	defer s.putSmall(p)
	n, err := w.Write(*p)
	if err != nil {
		return int64(n), fmt.Errorf("cas: get %s: write: %w", id, err)
	}
	return int64(n), nil
}

// readAtPacked serves a range of a packed object after verifying the whole
// object.
func (s *Store) readAtPacked(id ID, l loc, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off >= l.size {
		return 0, io.EOF
	}
	f, err := s.packFile(l.pack)
	if err != nil {
		return 0, err
	}
	if off == 0 && int64(len(p)) >= l.size {
		// Read straight into the caller's buffer.
		if err := s.readPackedInto(id, f, l, p[:l.size], true); err != nil {
			return 0, err
		}
		if int64(len(p)) > l.size {
			return int(l.size), io.EOF
		}
		return int(l.size), nil
	}
	buf, err := s.readPacked(id, l, true)
	if err != nil {
		return 0, err
	}
	n := copy(p, (*buf)[off:])
	s.putSmall(buf)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// removePacked appends a tombstone (or quarantine) record for id if it is
// still at l.
func (s *Store) removePacked(ctx context.Context, id ID, kind byte, check func(loc) bool) error {
	unlock, err := s.lockScanned(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	l, ok := s.entry(id)
	if !ok || (check != nil && !check(l)) {
		return fmt.Errorf("cas: remove %s: %w", id, ErrNotFound)
	}
	return s.appendRecord(record{kind: kind, pack: l.pack, off: l.off, size: l.size, id: id}, true)
}
