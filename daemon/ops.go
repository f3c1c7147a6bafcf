package daemon

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/packmap"
	"github.com/xfer-io/xfer/mover"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/casnet"
)

// result is the answer to one request.
type result struct {
	status mover.Status
	one    []byte   // the data, when in one piece: a buffer or a slice of a pack mapping
	data   [][]byte // else the data in pieces
	n      int      // total length of data
	// stream, if set, writes the n bytes of data itself (large reads of
	// standalone objects, verified piece by piece as they go).
	stream  func(w io.Writer) error
	release func() // returns memory held by data
}

func errResult(st mover.Status, err error) result {
	msg := err.Error()
	return result{status: st, one: []byte(msg), n: len(msg)}
}

func okResult(b []byte) result {
	return result{status: mover.StatusOK, one: b, n: len(b)}
}

func idResult(id cas.ID) result {
	b := make([]byte, mover.IDLen)
	hex.Encode(b, id[:])
	return okResult(b)
}

// statusOf classifies an error for the response.
func statusOf(err error) mover.Status {
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return mover.StatusNotFound
	case errors.Is(err, cas.ErrCorrupt):
		return mover.StatusCorrupt
	case errors.Is(err, casnet.ErrNoStore), exitcode.Code(err) == exitcode.Peer:
		return mover.StatusPeer
	}
	return mover.StatusError
}

// parseID decodes a hex id (either case).
func parseID(b []byte, id *cas.ID) bool {
	if len(b) != mover.IDLen {
		return false
	}
	_, err := hex.Decode(id[:], b)
	return err == nil
}

var errNoID = fmt.Errorf("bad id: want %d hex digits", mover.IDLen)

// streamPiece is the unit in which standalone objects are read (and
// verified) for a response.
const streamPiece = 1 << 20

// exec runs one request other than BATCH. inBatch makes every answer hold
// its bytes in memory (no streaming).
func (s *Server) exec(ctx context.Context, v *view, op mover.Op, idb []byte, off, length uint64, data []byte, inBatch bool) result {
	var id cas.ID
	switch op {
	case mover.OpRead, mover.OpReadMapped, mover.OpHas, mover.OpSend, mover.OpFetch:
		if !parseID(idb, &id) {
			return errResult(mover.StatusError, errNoID)
		}
		if op != mover.OpSend && op != mover.OpFetch && len(data) > 0 {
			return errResult(mover.StatusError, fmt.Errorf("%s takes no data", op))
		}
	case mover.OpWrite:
		if len(idb) > 0 && !parseID(idb, &id) {
			return errResult(mover.StatusError, errNoID)
		}
	case mover.OpStat:
		if len(idb) > 0 && !parseID(idb, &id) {
			return errResult(mover.StatusError, errNoID)
		}
	case mover.OpBatch:
		return errResult(mover.StatusError, errors.New("a BATCH cannot contain a BATCH"))
	default:
		return errResult(mover.StatusError, fmt.Errorf("unknown op 0x%02x", uint8(op)))
	}
	switch op {
	case mover.OpRead:
		return s.read(ctx, v, id, off, length, inBatch)
	case mover.OpReadMapped:
		return s.locate(ctx, v, id, off, length)
	case mover.OpWrite:
		var err error
		if len(idb) > 0 {
			err = s.store.PutBytesVerified(ctx, id, data)
		} else {
			id, err = s.store.PutBytes(ctx, data)
		}
		if err != nil {
			return errResult(statusOf(err), err)
		}
		return idResult(id)
	case mover.OpHas:
		loc, err := v.locate(id)
		if err != nil {
			return errResult(statusOf(err), err)
		}
		return okResult(binary.LittleEndian.AppendUint64(nil, uint64(loc.Length)))
	case mover.OpStat:
		if len(idb) == 0 {
			st, err := s.store.Stat()
			if err != nil {
				return errResult(statusOf(err), err)
			}
			ms := statsOf(st)
			return okResult(mover.AppendStats(make([]byte, 0, mover.StatsSize), &ms))
		}
		loc, err := v.locate(id)
		if err != nil {
			return errResult(statusOf(err), err)
		}
		kind := byte(mover.LocStandalone)
		if loc.Packed {
			kind = mover.LocPacked
		}
		return okResult(append(binary.LittleEndian.AppendUint64(make([]byte, 0, 9), uint64(loc.Length)), kind))
	case mover.OpSend, mover.OpFetch:
		return s.transfer(ctx, op, id, string(data))
	}
	panic("unreachable")
}

// locateSpan finds id in v and checks [off, off+length) against it (see
// span); on failure, st is the status to answer with.
func locateSpan(v *view, id cas.ID, off, length uint64) (loc cas.Location, n int64, st mover.Status, err error) {
	if loc, err = v.locate(id); err != nil {
		return loc, 0, statusOf(err), err
	}
	if n, err = span(loc.Length, off, length); err != nil {
		return loc, 0, mover.StatusError, err
	}
	return loc, n, mover.StatusOK, nil
}

// span checks [off, off+length) against an object of size bytes (length 0:
// to the end) and returns the number of bytes to serve.
func span(size int64, off, length uint64) (int64, error) {
	if off > uint64(size) {
		return 0, fmt.Errorf("offset %d beyond the end of the %d-byte object", off, size)
	}
	n := uint64(size) - off
	if length != 0 && length < n {
		n = length
	}
	if n > mover.MaxData {
		return 0, fmt.Errorf("range of %d bytes exceeds one response (%d): read it in ranges", n, int64(mover.MaxData))
	}
	return int64(n), nil
}

// packed returns the verified content of a packed object from its pack's
// mapping.
func (s *Server) packed(id cas.ID, loc cas.Location) ([]byte, *mapping, error) {
	m, err := s.maps.get(loc.Path, loc.Offset+loc.Length)
	if err != nil {
		return nil, nil, fmt.Errorf("cas: %s: %w", id, err)
	}
	obj := m.Data[loc.Offset : loc.Offset+loc.Length : loc.Offset+loc.Length]
	if s.ok.has(id, m, loc.Offset) {
		return obj, m, nil
	}
	got, err := packmap.Sum(obj) // a pack truncated under the mapping: an error, not a crash
	if err != nil {
		return nil, nil, fmt.Errorf("cas: object %s in %s: %w", id, loc.Path, err)
	}
	if got != id {
		return nil, nil, fmt.Errorf("cas: object %s in %s at %d hashes to %s: %w", id, loc.Path, loc.Offset, got, cas.ErrCorrupt)
	}
	s.ok.add(id, m, loc.Offset)
	return obj, m, nil
}

func (s *Server) read(ctx context.Context, v *view, id cas.ID, off, length uint64, inBatch bool) result {
	loc, n, st, err := locateSpan(v, id, off, length)
	if err != nil {
		return errResult(st, err)
	}
	if loc.Packed {
		obj, _, err := s.packed(id, loc)
		if err != nil {
			return errResult(statusOf(err), err)
		}
		return result{status: mover.StatusOK, one: obj[off : int64(off)+n], n: int(n)}
	}
	// A standalone object: ranges verified by the store against the
	// outboard. The first piece is read before answering, so that a
	// failure there gets a proper status.
	first := min(n, streamPiece)
	if inBatch {
		first = n
	}
	if err := s.mem.acquire(ctx, first); err != nil {
		return errResult(mover.StatusError, err)
	}
	buf := make([]byte, first)
	release := func() { s.mem.release(first) }
	if _, err := s.store.ReadAt(ctx, id, buf, int64(off)); err != nil && !(err == io.EOF && first == n) {
		release()
		return errResult(statusOf(err), err)
	}
	r := result{status: mover.StatusOK, one: buf, n: int(n), release: release}
	if first == n {
		return r
	}
	r.one = nil
	r.stream = func(w io.Writer) error {
		if _, err := w.Write(buf); err != nil {
			return err
		}
		for pos := int64(off) + first; pos < int64(off)+n; {
			k := min(int64(len(buf)), int64(off)+n-pos)
			if _, err := s.store.ReadAt(ctx, id, buf[:k], pos); err != nil && err != io.EOF {
				return err
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			pos += k
		}
		return nil
	}
	return r
}

// locate answers READ|FlagMapped with where the object lies, once the bytes
// asked for are verified.
func (s *Server) locate(ctx context.Context, v *view, id cas.ID, off, length uint64) result {
	loc, n, st, err := locateSpan(v, id, off, length)
	if err != nil {
		return errResult(st, err)
	}
	l := mover.Location{Offset: uint64(loc.Offset), Size: uint64(loc.Length), Path: loc.Path}
	if loc.Packed {
		_, m, err := s.packed(id, loc)
		if err != nil {
			return errResult(statusOf(err), err)
		}
		l.Kind, l.Dev, l.Ino = mover.LocPacked, m.Dev, m.Ino
	} else {
		l.Kind = mover.LocStandalone
		if l.Dev, l.Ino, err = fileID(loc.Path); err != nil {
			return errResult(mover.StatusError, err)
		}
		k := min(n, streamPiece)
		if err := s.mem.acquire(ctx, k); err != nil {
			return errResult(mover.StatusError, err)
		}
		buf := make([]byte, k)
		for pos := int64(off); pos < int64(off)+n; {
			k := min(int64(len(buf)), int64(off)+n-pos)
			if _, err := s.store.ReadAt(ctx, id, buf[:k], pos); err != nil && err != io.EOF {
				s.mem.release(int64(len(buf)))
				return errResult(statusOf(err), err)
			}
			pos += k
		}
		s.mem.release(int64(len(buf)))
		// The object may have been removed and put again meanwhile.
		if d, i, err := fileID(loc.Path); err != nil || d != l.Dev || i != l.Ino {
			return errResult(mover.StatusError, fmt.Errorf("cas: %s changed while it was verified", id))
		}
	}
	if len(l.Path) > 0xffff {
		return errResult(mover.StatusError, fmt.Errorf("store path too long"))
	}
	return okLocated(&l)
}

func okLocated(l *mover.Location) result {
	b := mover.AppendLocation(make([]byte, 0, 40+len(l.Path)), l)
	return result{status: mover.StatusLocated, one: b, n: len(b)}
}

// transfer runs SEND and FETCH over a session to the peer.
func (s *Server) transfer(ctx context.Context, op mover.Op, id cas.ID, remote string) result {
	if remote == "" && op == mover.OpFetch && s.cfg.Holders != nil {
		return s.fetchFromCluster(ctx, id)
	}
	if remote == "" {
		return errResult(mover.StatusError, fmt.Errorf("%s needs the remote in its data (xfer://HOST:PORT or a remote name)", op))
	}
	if op == mover.OpSend {
		if ok, err := s.store.Has(id); err != nil {
			return errResult(statusOf(err), err)
		} else if !ok {
			return errResult(mover.StatusNotFound, fmt.Errorf("cas: %s: %w", id, cas.ErrNotFound))
		}
	}
	err := s.peers.do(ctx, remote, func(sess *transfer.Session) error {
		if op == mover.OpSend {
			return casnet.NewClient(sess).SendObject(ctx, s.store, id)
		}
		return casnet.NewClient(sess).Fetch(ctx, id, s.store)
	})
	if err != nil {
		return errResult(statusOf(err), fmt.Errorf("%s %s %s: %w", op, id, remote, err))
	}
	return result{status: mover.StatusOK}
}

// fetchFromCluster runs a FETCH without a remote: it asks the cluster's
// holders (casnet.FindParallel at a time) and fetches the object from the
// first that has it.
func (s *Server) fetchFromCluster(ctx context.Context, id cas.ID) result {
	if ok, err := s.store.Has(id); err != nil {
		return errResult(statusOf(err), err)
	} else if ok {
		return result{status: mover.StatusOK}
	}
	addrs, err := s.cfg.Holders(ctx)
	if err != nil {
		return errResult(mover.StatusPeer, fmt.Errorf("%s %s: %w", mover.OpFetch, id, err))
	}
	addr, _, err := casnet.Find(ctx, id, addrs, 0, func(ctx context.Context, addr string) (int64, error) {
		size := int64(-1)
		err := s.peers.do(ctx, "xfer://"+addr, func(sess *transfer.Session) (err error) {
			size, err = casnet.NewClient(sess).Lookup(ctx, id)
			return err
		})
		return size, err
	})
	if casnet.IsUnreachable(err) {
		return errResult(mover.StatusPeer, fmt.Errorf("%s %s: %w", mover.OpFetch, id, err))
	}
	if err != nil {
		return errResult(statusOf(err), fmt.Errorf("%s: %w", mover.OpFetch, err))
	}
	s.cfg.Log.Debug("fetching from the cluster", "id", id, "holder", addr)
	return s.transfer(ctx, mover.OpFetch, id, "xfer://"+addr)
}

// batch runs the requests of a BATCH concurrently and answers with their
// responses in order. Reads and lookups share BatchWorkers goroutines;
// writes and transfers each get their own (at most slowOps at once).
func (s *Server) batch(data []byte) result {
	reqs, err := splitBatch(data)
	if err != nil {
		return errResult(mover.StatusError, err)
	}
	res := make([]result, len(reqs))
	v := s.view()
	room := atomic.Int64{}
	room.Store(int64(s.cfg.MaxBatch))
	run := func(i int) {
		q := &reqs[i]
		r := s.exec(s.reqCtx, v, q.h.Op, q.h.ID, q.h.Offset, q.h.Len, q.data, true)
		if room.Add(-int64(r.n+mover.ResponseHeaderSize)) < 0 {
			if r.release != nil {
				r.release()
			}
			r = errResult(mover.StatusError, fmt.Errorf("batch response exceeds %d bytes", s.cfg.MaxBatch))
		}
		res[i] = r
	}
	var fast []int
	var wg sync.WaitGroup
	slow := make(chan struct{}, slowOps)
	for i := range reqs {
		switch reqs[i].h.Op {
		case mover.OpWrite, mover.OpSend, mover.OpFetch:
			wg.Add(1)
			slow <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-slow }()
				run(i)
			}()
		default:
			fast = append(fast, i)
		}
	}
	var next atomic.Int64
	workers := min(len(fast), s.cfg.BatchWorkers)
	work := func() {
		for {
			k := int(next.Add(1)) - 1
			if k >= len(fast) {
				return
			}
			run(fast[k])
		}
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); work() }()
	}
	if workers > 0 {
		work()
	}
	wg.Wait()

	hdrs := make([]byte, 0, mover.ResponseHeaderSize*len(res))
	out := result{status: mover.StatusOK, data: make([][]byte, 0, 2*len(res))}
	for i := range res {
		r := &res[i]
		hdrs = mover.AppendResponseHeader(hdrs, r.status, r.n)
		out.data = append(out.data, hdrs[len(hdrs)-mover.ResponseHeaderSize:])
		if r.one != nil {
			out.data = append(out.data, r.one)
		}
		out.data = append(out.data, r.data...)
		out.n += mover.ResponseHeaderSize + r.n
	}
	out.release = func() {
		for i := range res {
			if res[i].release != nil {
				res[i].release()
			}
		}
	}
	return out
}

// subRequest is one request of a BATCH; its id and data alias the BATCH's
// data.
type subRequest struct {
	h    mover.Header
	data []byte
}

// splitBatch splits the data of a BATCH into its requests, as
// mover.DecodeBatch does but without copying the ids.
func splitBatch(b []byte) ([]subRequest, error) {
	var out []subRequest
	for n := 0; len(b) > 0; n++ {
		if n >= mover.MaxBatchRequests {
			return nil, fmt.Errorf("%w: more than %d requests in a batch", mover.ErrFrame, mover.MaxBatchRequests)
		}
		h, err := mover.ParseHeader(b)
		if err != nil {
			if errors.Is(err, mover.ErrShort) {
				return nil, fmt.Errorf("%w: batch: request %d truncated", mover.ErrFrame, n)
			}
			return nil, fmt.Errorf("batch: request %d: %w", n, err)
		}
		end := uint64(h.Size()) + uint64(h.DataLen)
		if uint64(len(b)) < end {
			return nil, fmt.Errorf("%w: batch: request %d truncated", mover.ErrFrame, n)
		}
		out = append(out, subRequest{h: h, data: b[h.Size():end:end]})
		b = b[end:]
	}
	return out, nil
}

// slowOps bounds the writes and transfers of one BATCH running at once.
const slowOps = 64
