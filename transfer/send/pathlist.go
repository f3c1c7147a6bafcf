package send

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// pathList is an append-only list of paths (the deletions a sync applies
// after its transfers) that keeps the first spillAfter paths in memory and
// writes the rest to an unnamed temporary file, so that a sync removing
// millions of entries still runs in bounded memory.
type pathList struct {
	spillAfter int
	mem        []string
	f          *os.File
	w          *bufio.Writer
	n          int
}

// defaultSpillAfter paths (a few MiB) stay in memory.
const defaultSpillAfter = 16 << 10

func (l *pathList) add(p string) error {
	l.n++
	limit := l.spillAfter
	if limit <= 0 {
		limit = defaultSpillAfter
	}
	if l.f == nil && len(l.mem) < limit {
		l.mem = append(l.mem, p)
		return nil
	}
	if l.f == nil {
		f, err := os.CreateTemp("", "xfer-paths-")
		if err != nil {
			return fmt.Errorf("spilling the list of deletions to a temporary file: %w", err)
		}
		os.Remove(f.Name()) // unnamed: gone with the process
		l.f, l.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(len(p)))
	l.w.Write(hdr[:k])
	if _, err := l.w.WriteString(p); err != nil {
		return fmt.Errorf("spilling the list of deletions to %s: %w", l.f.Name(), err)
	}
	return nil
}

// len is the number of paths added.
func (l *pathList) len() int { return l.n }

// each calls fn with every path, in the order added.
func (l *pathList) each(fn func(string) error) error {
	for _, p := range l.mem {
		if err := fn(p); err != nil {
			return err
		}
	}
	if l.f == nil {
		return nil
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("writing the list of deletions to %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the list of deletions back: %w", err)
	}
	r := bufio.NewReaderSize(l.f, 64<<10)
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return nil
		}
		if err != nil || n > 1<<20 {
			return fmt.Errorf("reading the list of deletions back from %s: corrupt (%v)", l.f.Name(), err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("reading the list of deletions back from %s: %w", l.f.Name(), err)
		}
		if err := fn(string(b)); err != nil {
			return err
		}
	}
}

// close drops the temporary file, if any.
func (l *pathList) close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
