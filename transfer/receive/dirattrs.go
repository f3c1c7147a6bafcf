package receive

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/xfer-io/xfer/transfer/wire"
)

// dirSpillAt is how many directory records a receiver holds in memory
// before it writes them to a spill file: about 6 MiB of records with
// their paths, whatever the number of directories in the tree.
const dirSpillAt = 1 << 16

// dirAttrs holds the attributes of the directories a run applies at
// finish, deepest first. Up to spillAt records stay in memory; beyond
// that each full batch is sorted deepest first and appended to an
// unlinked temporary file as one run, and finish merges the runs, so that
// the receiver's memory does not grow with the number of directories.
// When no temporary file can be made the records stay in memory (the
// attributes are never dropped).
type dirAttrs struct {
	spillAt int
	mem     []dirAttr
	f       *os.File
	runs    []dirRun
	end     int64 // where the next run starts in f
	n       int   // records held, in memory and spilled
}

// dirRun is a sorted run of records in the spill file.
type dirRun struct{ off, size int64 }

func depth(p string) int { return strings.Count(p, "/") }

func deeperFirst(a, b dirAttr) int { return depth(b.path) - depth(a.path) }

// add holds d until drain.
func (l *dirAttrs) add(d dirAttr) {
	l.mem = append(l.mem, d)
	l.n++
	limit := l.spillAt
	if limit <= 0 {
		limit = dirSpillAt
	}
	if len(l.mem) >= limit && l.spill() == nil {
		l.mem = l.mem[:0]
	}
}

// spill writes the records in memory to the spill file as one sorted run.
func (l *dirAttrs) spill() error {
	if l.f == nil {
		f, err := os.CreateTemp("", "xfer-dirattrs-*")
		if err != nil {
			return err
		}
		os.Remove(f.Name()) // unlinked: nothing is left behind, whatever ends the run
		l.f = f
	}
	slices.SortStableFunc(l.mem, deeperFirst)
	w := bufio.NewWriterSize(io.NewOffsetWriter(l.f, l.end), 64<<10)
	var size int64
	var b []byte
	for _, d := range l.mem {
		b = appendDirAttr(b[:0], d)
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("spill directory attributes: %w", err)
		}
		size += int64(len(b))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("spill directory attributes: %w", err)
	}
	l.runs = append(l.runs, dirRun{l.end, size})
	l.end += size
	return nil
}

// drain calls fn for every record held, deepest first, and empties l. An
// error reading the spill file back ends it early and is returned.
func (l *dirAttrs) drain(fn func(dirAttr)) error {
	defer l.reset()
	slices.SortStableFunc(l.mem, deeperFirst)
	if len(l.runs) == 0 {
		for _, d := range l.mem {
			fn(d)
		}
		return nil
	}
	h := &runHeap{}
	if len(l.mem) > 0 {
		h.add(&memRun{recs: l.mem})
	}
	for _, r := range l.runs {
		h.add(&fileRun{r: bufio.NewReaderSize(io.NewSectionReader(l.f, r.off, r.size), 16<<10)})
	}
	for h.Len() > 0 {
		fn(h.pop())
	}
	return h.err
}

// reset forgets every record and closes the spill file.
func (l *dirAttrs) reset() {
	if l.f != nil {
		l.f.Close()
	}
	*l = dirAttrs{spillAt: l.spillAt}
}

// appendDirAttr encodes d: path, mode, mtime, then the owner if any.
func appendDirAttr(b []byte, d dirAttr) []byte {
	b = binary.AppendUvarint(b, uint64(len(d.path)))
	b = append(b, d.path...)
	b = binary.AppendUvarint(b, uint64(d.mode))
	b = binary.AppendVarint(b, d.mtimeNs)
	if d.owner == nil {
		return append(b, 0)
	}
	o := d.owner
	flags := byte(1)
	if o.Numeric {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(o.Uid))
	b = binary.AppendUvarint(b, uint64(o.Gid))
	b = binary.AppendUvarint(b, uint64(len(o.User)))
	b = append(b, o.User...)
	b = binary.AppendUvarint(b, uint64(len(o.Group)))
	return append(b, o.Group...)
}

// readDirAttr decodes one record of appendDirAttr; io.EOF at a record's
// start ends the run.
func readDirAttr(r *bufio.Reader) (dirAttr, error) {
	var d dirAttr
	str := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		if n > 1<<20 {
			return "", errors.New("a record longer than any path")
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	p, err := str()
	if err != nil {
		return d, err
	}
	d.path = p
	fail := func(err error) (dirAttr, error) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dirAttr{}, err
	}
	mode, err := binary.ReadUvarint(r)
	if err != nil {
		return fail(err)
	}
	d.mode = uint32(mode)
	if d.mtimeNs, err = binary.ReadVarint(r); err != nil {
		return fail(err)
	}
	flags, err := r.ReadByte()
	if err != nil || flags == 0 {
		if err != nil {
			return fail(err)
		}
		return d, nil
	}
	o := &wire.Owner{Numeric: flags&2 != 0}
	uid, err := binary.ReadUvarint(r)
	if err != nil {
		return fail(err)
	}
	gid, err := binary.ReadUvarint(r)
	if err != nil {
		return fail(err)
	}
	o.Uid, o.Gid = uint32(uid), uint32(gid)
	if o.User, err = str(); err != nil {
		return fail(err)
	}
	if o.Group, err = str(); err != nil {
		return fail(err)
	}
	d.owner = o
	return d, nil
}

// run is one sorted source of records in the merge.
type run interface {
	// next moves to the following record (the first, on the first call);
	// false at the end or on an error, which err then returns.
	next() bool
	record() dirAttr
	err() error
}

type memRun struct {
	recs []dirAttr
	i    int // the current record plus one
}

func (m *memRun) next() bool      { m.i++; return m.i <= len(m.recs) }
func (m *memRun) record() dirAttr { return m.recs[m.i-1] }
func (m *memRun) err() error      { return nil }

type fileRun struct {
	r   *bufio.Reader
	cur dirAttr
	e   error
}

func (f *fileRun) next() bool {
	f.cur, f.e = readDirAttr(f.r)
	return f.e == nil
}
func (f *fileRun) record() dirAttr { return f.cur }
func (f *fileRun) err() error {
	if f.e == io.EOF {
		return nil
	}
	return f.e
}

// runHeap merges runs, the run whose current record is deepest on top.
type runHeap struct {
	heads []run
	err   error // the first error reading a run
}

// add puts src on the heap at its first record.
func (h *runHeap) add(src run) {
	if src.next() {
		heap.Push(h, src)
	} else {
		h.keep(src.err())
	}
}

// pop returns the deepest current record and moves its run on.
func (h *runHeap) pop() dirAttr {
	top := h.heads[0]
	d := top.record()
	if top.next() {
		heap.Fix(h, 0)
	} else {
		h.keep(top.err())
		heap.Pop(h)
	}
	return d
}

func (h *runHeap) keep(err error) {
	if err != nil && h.err == nil {
		h.err = fmt.Errorf("read back directory attributes: %w", err)
	}
}

func (h *runHeap) Len() int { return len(h.heads) }
func (h *runHeap) Less(i, j int) bool {
	return depth(h.heads[i].record().path) > depth(h.heads[j].record().path)
}
func (h *runHeap) Swap(i, j int) { h.heads[i], h.heads[j] = h.heads[j], h.heads[i] }
func (h *runHeap) Push(x any)    { h.heads = append(h.heads, x.(run)) }
func (h *runHeap) Pop() any {
	x := h.heads[len(h.heads)-1]
	h.heads = h.heads[:len(h.heads)-1]
	return x
}
