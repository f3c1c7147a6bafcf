package cas

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The index (DIR/index) is a log of fixed 64-byte records:
//
//	[0]      kind (recPut, recDelete, recDedup, recQuarantine)
//	[1]      'x'
//	[2]      format version (1)
//	[3]      0
//	[4:8]    pack number, little endian
//	[8:16]   offset of the content in the pack
//	[16:24]  content length (recDedup: bytes not stored again)
//	[24:56]  object ID
//	[56:60]  0
//	[60:64]  CRC-32C (Castagnoli) of bytes [0:60]
//
// Records are only ever appended, by the holder of DIR/lock.

const recSize = 64

const (
	recPut        = 1
	recDelete     = 2
	recDedup      = 3
	recQuarantine = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type record struct {
	kind byte
	pack uint32
	off  int64
	size int64
	id   ID
}

func (r record) encode(b []byte) {
	b = b[:recSize]
	clear(b)
	b[0] = r.kind
	b[1] = 'x'
	b[2] = 1
	binary.LittleEndian.PutUint32(b[4:], r.pack)
	binary.LittleEndian.PutUint64(b[8:], uint64(r.off))
	binary.LittleEndian.PutUint64(b[16:], uint64(r.size))
	copy(b[24:56], r.id[:])
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

func decodeRecord(b []byte) (record, bool) {
	b = b[:recSize]
	if b[1] != 'x' || b[2] != 1 || b[0] < recPut || b[0] > recQuarantine ||
		binary.LittleEndian.Uint32(b[60:]) != crc32.Checksum(b[:60], castagnoli) {
		return record{}, false
	}
	r := record{
		kind: b[0],
		pack: binary.LittleEndian.Uint32(b[4:]),
		off:  int64(binary.LittleEndian.Uint64(b[8:])),
		size: int64(binary.LittleEndian.Uint64(b[16:])),
	}
	copy(r.id[:], b[24:56])
	return r, true
}

// apply folds r into the in-memory index. Caller holds s.mu.
func (s *Store) apply(r record) {
	switch r.kind {
	case recPut:
		s.entries[r.id] = loc{pack: r.pack, off: r.off, size: r.size}
	case recDelete, recQuarantine:
		if l, ok := s.entries[r.id]; ok && l.pack == r.pack && l.off == r.off {
			delete(s.entries, r.id)
		}
	case recDedup:
		s.dedupSaved += r.size
	}
}

func fileSize(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	return st.Size, nil
}

// scanLocked applies the index records past s.pos. It stops at the first
// invalid record: without the store lock that may be a record still being
// written, and it is retried on the next scan; with the lock (repair) it can
// only be the torn tail of a dead writer, and it is truncated away.
// Caller holds s.mu for writing.
func (s *Store) scanLocked(repair bool) error {
	size, err := fileSize(s.idx)
	if err != nil {
		return fmt.Errorf("cas: scan index: %w", err)
	}
	if size < s.pos {
		return fmt.Errorf("cas: scan index %s: shrank from %d to %d bytes", s.idx.Name(), s.pos, size)
	}
	var buf []byte
scan:
	for s.pos < size {
		n := min(size-s.pos, 1<<20)
		if n < recSize {
			break
		}
		n -= n % recSize
		if buf == nil {
			buf = make([]byte, min(size-s.pos, 1<<20))
		}
		m, err := s.idx.ReadAt(buf[:n], s.pos)
		if err != nil && err != io.EOF {
			return fmt.Errorf("cas: read index %s: %w", s.idx.Name(), err)
		}
		m -= m % recSize
		if m == 0 {
			break
		}
		for i := 0; i < m; i += recSize {
			r, ok := decodeRecord(buf[i : i+recSize])
			if !ok {
				break scan
			}
			s.apply(r)
			s.pos += recSize
		}
	}
	if repair && s.pos < size {
		if err := s.idx.Truncate(s.pos); err != nil {
			return fmt.Errorf("cas: truncate torn index tail: %w", err)
		}
		if err := s.syncFile(s.idx); err != nil {
			return fmt.Errorf("cas: truncate torn index tail: %w", err)
		}
	}
	return nil
}

// refresh applies records appended (by any process) since the last scan.
// It costs one fstat when nothing changed.
func (s *Store) refresh() error {
	if err := s.check(); err != nil {
		return err
	}
	size, err := fileSize(s.idx)
	if err != nil {
		return fmt.Errorf("cas: %w", err)
	}
	s.mu.RLock()
	pos := s.pos
	s.mu.RUnlock()
	if size == pos {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scanLocked(false)
}

// appendRecord appends r to the index. Caller holds the store lock and has
// called scanLocked(true), so s.pos is the end of the index.
func (s *Store) appendRecord(r record, sync bool) error {
	var b [recSize]byte
	r.encode(b[:])
	s.mu.RLock()
	end := s.pos
	s.mu.RUnlock()
	if _, err := s.idx.WriteAt(b[:], end); err != nil {
		return fmt.Errorf("cas: append index record for %s: %w", r.id, err)
	}
	if sync {
		if err := s.syncFile(s.idx); err != nil {
			return fmt.Errorf("cas: append index record for %s: %w", r.id, err)
		}
	}
	// Apply it by scanning (a concurrent refresh may already have done so).
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scanLocked(false)
}

// lookup returns the pack location of id, if it is packed.
func (s *Store) lookup(id ID) (loc, bool, error) {
	if err := s.refresh(); err != nil {
		return loc{}, false, err
	}
	l, ok := s.entry(id)
	return l, ok, nil
}

// entry returns the pack location of id as of the last scan.
func (s *Store) entry(id ID) (loc, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.entries[id]
	return l, ok
}
