package hashtree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"lukechampine.com/blake3/guts"
)

// HashFile returns the BLAKE3 hash (as b3sum prints it) of the first n bytes
// of r, typically an *os.File. Pieces of at most DefaultChunkSize bytes are
// hashed by workers goroutines (0 means GOMAXPROCS). When r is an *os.File
// the file is mapped from the page cache, without a copy, and each piece's
// pages are mapped in before it is hashed and dropped after (see mapping);
// a file that shrinks meanwhile is an error, not a crash. Otherwise, or
// where the file cannot be mapped, pieces are read with ReadAt (pread) into
// one buffer per worker. Either way memory stays below
// (workers+1)*DefaultChunkSize. Cancelling ctx stops the work after the
// pieces in flight and returns an error wrapping ctx.Err().
func HashFile(ctx context.Context, r io.ReaderAt, n int64, workers int) (Digest, error) {
	switch {
	case r == nil:
		return Digest{}, errors.New("hashtree: hash file: nil reader")
	case n < 0:
		return Digest{}, fmt.Errorf("hashtree: hash file: negative size %d", n)
	case workers < 0:
		return Digest{}, fmt.Errorf("hashtree: hash file: negative worker count %d", workers)
	case workers == 0:
		workers = runtime.GOMAXPROCS(0)
	}
	if err := ctx.Err(); err != nil {
		return Digest{}, fmt.Errorf("hashtree: hash file: %w", err)
	}
	p := pieceSize(n, workers, DefaultChunkSize)
	k := NumChunks(n, p)
	if k == 1 {
		buf := make([]byte, n)
		if err := readPiece(r, buf, 0); err != nil {
			return Digest{}, err
		}
		return rootDigest(node(buf, 0)), nil
	}
	workers = int(min(int64(workers), k))
	mapped := mapFile(r, n)
	defer mapped.close() // after the workers: results is closed once they are done

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		index int64
		cv    [8]uint32
		err   error
	}
	results := make(chan result, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte // for pread, made when first needed
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= k {
					return
				}
				off := i * p
				size := min(p, n-off)
				var (
					d   Digest
					err error
				)
				if mapped != nil {
					d, err = mapped.digest(off, size)
				} else {
					if buf == nil {
						buf = make([]byte, p)
					}
					piece := buf[:size]
					if err = readPiece(r, piece, off); err == nil {
						d = pieceDigest(piece, off)
					}
				}
				if err != nil {
					results <- result{index: i, err: err}
					return
				}
				results <- result{index: i, cv: digestCV(d)}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	// Merge in order; pieces finish at most a few places out of order.
	var (
		m        merger
		pending  = make(map[int64][8]uint32, 2*workers)
		merged   int64
		received int64
		firstErr error
	)
	for res := range results {
		if res.err != nil {
			if firstErr == nil {
				firstErr = res.err
				cancel()
			}
			continue
		}
		received++
		pending[res.index] = res.cv
		for ; merged < k-1; merged++ {
			cv, ok := pending[merged]
			if !ok {
				break
			}
			delete(pending, merged)
			m.push(cv)
		}
	}
	if firstErr != nil {
		return Digest{}, firstErr
	}
	if received != k {
		return Digest{}, fmt.Errorf("hashtree: hash file: %w", context.Cause(ctx))
	}
	return m.root(pending[k-1]), nil
}

// mapping is a whole file mapped read-only from the page cache, hashed
// piece by piece: each piece's pages are mapped in at once before it is
// hashed (MADV_POPULATE_READ: one call rather than a fault every 64 KiB)
// and dropped from the mapping after (MADV_DONTNEED: the page cache keeps
// them), so the resident set stays at the pieces in flight. One mapping
// for the whole file, rather than one per piece, spares the workers
// mmap/munmap calls, which serialize them on the process's memory map.
type mapping struct {
	b    []byte
	name string
}

// mapFile maps the first n bytes of r when r is an *os.File at least that
// long; nil otherwise, or when it cannot be mapped (callers read with
// ReadAt, which reports a short file).
func mapFile(r io.ReaderAt, n int64) *mapping {
	f, ok := r.(*os.File)
	if !ok || n <= 0 || int64(int(n)) != n {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Size() < n {
		return nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return &mapping{b: b, name: f.Name()}
}

// close unmaps m; a nil m is a no-op.
func (m *mapping) close() {
	if m != nil {
		_ = unix.Munmap(m.b)
	}
}

// digest hashes the piece of n bytes at off. A fault while hashing (the
// file was truncated meanwhile) is an error, not a crash.
func (m *mapping) digest(off, n int64) (d Digest, err error) {
	b := m.b[off : off+n : off+n]
	// Errors only mean the pages come in by faults instead (an old
	// kernel), or that the file shrank, which the hash below reports.
	_ = unix.Madvise(b, unix.MADV_POPULATE_READ)
	defer func() { _ = unix.Madvise(b, unix.MADV_DONTNEED) }()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("hashtree: hash %s: bytes %d to %d vanished while they were hashed (the file shrank)", m.name, off, off+n)
		}
	}()
	return pieceDigest(b, off), nil
}

// readPiece fills buf from r at offset off.
func readPiece(r io.ReaderAt, buf []byte, off int64) error {
	got, err := r.ReadAt(buf, off)
	if got == len(buf) {
		return nil // io.ReaderAt may report io.EOF along with a full read
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("hashtree: read %d bytes at offset %d: got %d: %w", len(buf), off, got, err)
}

// HashReader hashes everything read from r until io.EOF and returns the
// BLAKE3 hash (as b3sum prints it) and the number of bytes read. It holds two
// DefaultChunkSize buffers, hashing one piece while reading the next. ctx is
// checked between reads; a Read blocked in r is not interrupted.
func HashReader(ctx context.Context, r io.Reader) (Digest, int64, error) {
	if r == nil {
		return Digest{}, 0, errors.New("hashtree: hash reader: nil reader")
	}
	const p = DefaultChunkSize
	bufs := [2][]byte{make([]byte, p), make([]byte, p)}
	got, err := readFull(ctx, r, bufs[0])
	total := int64(got)
	if err != nil {
		return Digest{}, total, err
	}
	if got < p {
		return rootDigest(node(bufs[0][:got], 0)), total, nil
	}

	// Invariant: bufs[cur] holds the full piece number index.
	var (
		m       merger
		held    [8]uint32 // chaining value of the previous full piece
		hasHeld bool
		cvCh    = make(chan [8]uint32, 1)
	)
	for cur, index := 0, int64(0); ; cur, index = 1-cur, index+1 {
		counter := uint64(index) * (p / guts.ChunkSize)
		go func(buf []byte) { cvCh <- guts.ChainingValue(node(buf, counter)) }(bufs[cur])
		got, err := readFull(ctx, r, bufs[1-cur])
		cv := <-cvCh
		total += int64(got)
		if err != nil {
			return Digest{}, total, err
		}
		if hasHeld {
			m.push(held)
		}
		held, hasHeld = cv, true
		switch {
		case got == p:
			continue
		case got > 0:
			m.push(held)
			last := node(bufs[1-cur][:got], counter+p/guts.ChunkSize)
			return m.root(guts.ChainingValue(last)), total, nil
		case index == 0:
			// The input is exactly one piece: its node is the root.
			return rootDigest(node(bufs[cur], 0)), total, nil
		default:
			return m.root(held), total, nil
		}
	}
}

// readFull reads into buf until it is full or r reports io.EOF, checking ctx
// between reads. Reaching io.EOF is not an error.
func readFull(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	got := 0
	for got < len(buf) {
		if err := ctx.Err(); err != nil {
			return got, fmt.Errorf("hashtree: hash reader: %w", err)
		}
		n, err := r.Read(buf[got:])
		got += n
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("hashtree: hash reader: read: %w", err)
		}
	}
	return got, nil
}
