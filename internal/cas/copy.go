package cas

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// copySegment is the unit of PutFile's in-kernel copy; a multiple of
// GroupSize and of the page size.
const copySegment = 32 << 20

// errNoCopyRange means copy_file_range cannot copy between these files; the
// caller falls back to read/write.
var errNoCopyRange = errors.New("copy_file_range unsupported")

// putFileCopy stores the regular file src (size bytes) by copying it into a
// temporary file with copy_file_range (no user-space copy; a reflink where
// the file system does that) while hashing the copy, segment by segment,
// through a read-only mapping on several cores. Hashing the copy rather than
// the source means a source modified meanwhile cannot yield an object that
// does not match its ID.
func (s *Store) putFileCopy(ctx context.Context, src *os.File, size int64) (ID, error) {
	obj, err := s.createTmp()
	if err != nil {
		return ID{}, err
	}
	defer obj.close()
	ob, err := s.createTmp()
	if err != nil {
		return ID{}, err
	}
	defer ob.close()

	type segment struct {
		off, n int64
		err    error
	}
	segs, stop := runAhead(func(send func(segment) bool, _ <-chan struct{}) {
		rfd, wfd := int(src.Fd()), int(obj.f.Fd())
		for off := int64(0); off < size; off += copySegment {
			n := min(copySegment, size-off)
			roff, woff := off, off
			var err error
			for left := n; left > 0 && err == nil; {
				var c int
				c, err = unix.CopyFileRange(rfd, &roff, wfd, &woff, int(left), 0)
				switch {
				case err == unix.EINTR:
					err = nil
				case err != nil && off == 0 && roff == 0 && isNoCopyRange(err):
					err = errNoCopyRange
				case err != nil:
					err = fmt.Errorf("copy_file_range %s: %w", src.Name(), err)
				case c == 0:
					err = fmt.Errorf("%s shrank below %d bytes while being put", src.Name(), size)
				default:
					left -= int64(c)
				}
			}
			if !send(segment{off: off, n: n, err: err}) || err != nil {
				return
			}
		}
	})
	// Runs before the deferred closes above: the copier uses raw fds, which
	// must stay open until it has stopped.
	defer stop()

	obw := bufio.NewWriterSize(ob.f, 64<<10)
	h := s.newHasher(cvWriter(obw))
	for seg := range segs {
		if seg.err != nil {
			return ID{}, seg.err
		}
		if err := ctx.Err(); err != nil {
			return ID{}, err
		}
		if err := hashMapped(h, obj.f, seg.off, seg.n); err != nil {
			return ID{}, fmt.Errorf("cas: put %s: %w", src.Name(), err)
		}
	}
	if h.Len() != size {
		return ID{}, fmt.Errorf("cas: put %s: copied %d of %d bytes", src.Name(), h.Len(), size)
	}
	sum, err := h.Sum()
	id := ID(sum)
	if err := errors.Join(err, obw.Flush()); err != nil {
		return ID{}, fmt.Errorf("cas: put %s: write outboard: %w", id, err)
	}
	s.at("large-written")
	if err := s.commitLarge(ctx, id, size, obj, ob); err != nil {
		return ID{}, err
	}
	return id, nil
}

func isNoCopyRange(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EBADF)
}

// hashMapped maps [off, off+n) of f read-only and hashes it into h.
func hashMapped(h *hashtree.Stream, f *os.File, off, n int64) error {
	m, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	defer unix.Munmap(m)
	// The file is this put's unnamed temporary file: nothing else can
	// truncate it under the mapping.
	// An outboard error surfaces at h.Sum.
	h.Add(m)
	return nil
}
