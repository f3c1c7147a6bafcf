package mover

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/xfer-io/xfer/internal/packmap"
)

// fileMaps maps the store's files read-only, once each (by device and
// inode). A pack that outgrows its mapping gets a larger one; the old one
// stays mapped until close, since slices of it may be in use.
type fileMaps struct{ set *packmap.Set[[2]uint64] }

func newFileMaps() *fileMaps { return &fileMaps{set: packmap.NewSet[[2]uint64]()} }

// view returns the object's bytes at l from a mapping of its file, checking
// that the file at l.Path is the one the daemon saw.
func (fm *fileMaps) view(l *Location) ([]byte, error) {
	end := l.Offset + l.Size
	if end < l.Offset || end > 1<<62 {
		return nil, errors.New("mover: bad location")
	}
	m, err := fm.set.Get([2]uint64{l.Dev, l.Ino}, packmap.Want{
		Path: l.Path,
		Need: int64(end),
		Grow: l.Kind == LocPacked,
		Check: func(dev, ino uint64, size int64) error {
			if dev != l.Dev || ino != l.Ino {
				return fmt.Errorf("mover: %s here is not the daemon's file", l.Path)
			}
			if uint64(size) < end {
				return fmt.Errorf("mover: %s is shorter than the location", l.Path)
			}
			return nil
		},
	})
	if errors.Is(err, packmap.ErrClosed) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, err
	}
	return m.Data[l.Offset:end:end], nil
}

func (fm *fileMaps) close() error { return fm.set.Close() }

// locCache remembers mapped objects by id.
type locCache = packmap.Cache[string, []byte]

func newLocCache(max int) *locCache { return packmap.NewCache[string, []byte](max) }

// verifyBytes hashes mapped bytes against id; a fault reading the mapping
// is an error, not a crash.
func verifyBytes(id string, b []byte) error {
	got, err := packmap.Sum(b)
	if err != nil {
		return fmt.Errorf("mover: read %s: %w", id, err)
	}
	if hex.EncodeToString(got[:]) != id {
		return &OpError{Op: OpReadMapped, ID: id, Status: StatusCorrupt, Msg: "mapped content hashes to " + hex.EncodeToString(got[:])}
	}
	return nil
}
