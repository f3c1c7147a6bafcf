package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/mover"
)

const (
	// readBuf is a connection's initial read buffer; one grown for a large
	// request is shrunk back to it afterwards.
	readBuf = 64 << 10
	// skipMax is the most data of a refused request the daemon reads and
	// drops to keep the connection; with more it closes the connection.
	skipMax = 64 << 10
	// inlineWrite is the largest WRITE buffered whole; larger ones stream
	// into the store.
	inlineWrite = cas.MaxPacked
	// streamBudget is what a streaming WRITE holds of the memory budget
	// (the store's two 8 MiB batches).
	streamBudget = 16 << 20
	// sockBuf is the socket buffer size asked for each connection, so that
	// a batch response leaves in few writes.
	sockBuf = 4 << 20
)

// conn is one client connection.
type conn struct {
	s    *Server
	c    *net.UnixConn
	rd   *mover.Reader
	busy atomic.Bool // a request has been received and is being served
	hdr  []byte      // response headers
	iov  net.Buffers // response pieces
	out  []byte      // small responses, assembled
}

func (s *Server) newConn(uc *net.UnixConn) (*conn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	uc.SetReadBuffer(sockBuf)
	uc.SetWriteBuffer(sockBuf)
	poll := s.cfg.Poll
	if poll < 0 {
		poll = 0
	}
	c := &conn{s: s, c: uc, rd: mover.NewReader(rc, readBuf, poll), hdr: make([]byte, 0, 64), out: make([]byte, 0, 16<<10)}
	c.rd.Stop = func() bool { return !c.busy.Load() && s.draining.Load() }
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return nil, fmt.Errorf("shutting down")
	}
	s.conns[c] = struct{}{}
	return c, nil
}

// wake interrupts a connection waiting for its next request, so that a
// drain does not wait for idle clients. A request being served is not
// disturbed.
func (c *conn) wake() {
	if !c.busy.Load() {
		c.c.SetReadDeadline(time.Now())
	}
}

// serveConn serves requests on c, one at a time, until the client leaves,
// sends a frame that cannot be answered, or the daemon drains.
func (s *Server) serveConn(c *conn) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.Error("internal error serving a connection; closed it", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.c.Close()
	}()
	for {
		c.busy.Store(false)
		if s.draining.Load() {
			return
		}
		if err := c.rd.Fill(3); err != nil {
			c.readFailed(err)
			return
		}
		idLen := int(binary.LittleEndian.Uint16(c.rd.Buffered()[1:3]))
		if idLen > mover.MaxIDLen {
			c.busy.Store(true)
			c.replyText(mover.StatusError, fmt.Sprintf("malformed request: id_len %d exceeds %d", idLen, mover.MaxIDLen))
			return
		}
		if err := c.rd.Fill(mover.RequestHeaderSize + idLen); err != nil {
			c.readFailed(err)
			return
		}
		h, err := mover.ParseHeader(c.rd.Buffered())
		if err != nil { // cannot happen after the checks above
			c.replyText(mover.StatusError, err.Error())
			return
		}
		c.busy.Store(true)
		start := time.Now()
		keep := c.serve(h)
		s.cfg.Metrics.ObserveDaemonOp(h.Op.String(), time.Since(start))
		if !keep {
			return
		}
		c.rd.Shrink(readBuf)
	}
}

func (c *conn) readFailed(err error) {
	if err == io.EOF || err == mover.ErrStopped {
		return
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() && c.s.draining.Load() {
		return
	}
	c.s.cfg.Log.Debug("connection ended", "err", err)
}

// dataLimit is the most data a request of op may carry.
func (s *Server) dataLimit(op mover.Op) uint64 {
	switch op {
	case mover.OpSend, mover.OpFetch:
		return mover.MaxRemoteLen
	case mover.OpWrite:
		return mover.MaxData
	case mover.OpBatch:
		return uint64(s.cfg.MaxBatch)
	}
	return 0
}

// serve executes the request whose header h is buffered and answers it. It
// returns false when the connection must be closed.
func (c *conn) serve(h mover.Header) bool {
	s := c.s
	hs := h.Size()
	dataLen := int(h.DataLen)
	if limit := s.dataLimit(h.Op); uint64(h.DataLen) > limit {
		msg := fmt.Sprintf("%s request with %d bytes of data (limit %d)", h.Op, h.DataLen, limit)
		if !known(h.Op) {
			msg = fmt.Sprintf("unknown op 0x%02x", uint8(h.Op))
		}
		if dataLen > skipMax {
			c.replyText(mover.StatusError, msg+"; closing the connection")
			return false
		}
		if err := c.rd.Fill(hs + dataLen); err != nil {
			return false
		}
		c.rd.Discard(hs + dataLen)
		return c.replyText(mover.StatusError, msg) == nil
	}
	if h.Op == mover.OpWrite && dataLen > inlineWrite {
		return c.streamWrite(h)
	}
	if dataLen > skipMax {
		return c.serveLarge(h)
	}
	if err := c.rd.Fill(hs + dataLen); err != nil {
		c.readFailed(err)
		return false
	}
	// Fill may have moved the buffered bytes: decode again.
	h, _ = mover.ParseHeader(c.rd.Buffered())
	keep := c.execute(h, c.rd.Buffered()[hs:hs+dataLen])
	c.rd.Discard(hs + dataLen)
	return keep
}

// serveLarge serves a request whose data is too large for the connection's
// buffer: the data is read into a buffer of its own (pooled up to 1 MiB),
// counted against the memory budget.
func (c *conn) serveLarge(h mover.Header) bool {
	s := c.s
	dataLen := int(h.DataLen)
	if err := s.mem.acquire(s.reqCtx, int64(dataLen)); err != nil {
		return false
	}
	defer s.mem.release(int64(dataLen))
	var buf []byte
	if dataLen <= inlineWrite {
		p := s.data.Get().(*[]byte)
		defer s.data.Put(p)
		buf = (*p)[:dataLen]
	} else {
		buf = make([]byte, dataLen)
	}
	var id [mover.MaxIDLen]byte
	h.ID = id[:copy(id[:], h.ID)]
	c.rd.Discard(h.Size())
	if h.Op == mover.OpWrite {
		return c.writeHashing(h, buf)
	}
	if _, err := io.ReadFull(c.rd, buf); err != nil {
		c.readFailed(err)
		return false
	}
	return c.execute(h, buf)
}

const (
	// hashPiece is the piece of a WRITE's data hashed as soon as it has
	// arrived, while it is still in the CPU's cache.
	hashPiece = 64 << 10
	// hashRead is the most a WRITE's data read asks for at once, so that
	// what it returns is hashed before it leaves the cache.
	hashRead = 256 << 10
)

// writeHashing serves a WRITE whose data (read into buf, which it fills)
// fits a pack: each piece is hashed as soon as it has arrived, so the hash
// overlaps the client's sending and reads bytes still in the cache, and the
// store is given the computed ID instead of hashing the data again. A
// WRITE that names its id must hash to it, as PutBytesVerified checks.
func (c *conn) writeHashing(h mover.Header, buf []byte) bool {
	s := c.s
	var want cas.ID
	if len(h.ID) > 0 && !parseID(h.ID, &want) {
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			c.readFailed(err)
			return false
		}
		r := errResult(mover.StatusError, errNoID)
		return c.reply(&r) == nil
	}
	st := hashtree.NewStream(hashPiece, 1, nil)
	hashed := 0
	for got := 0; got < len(buf); {
		k, err := c.rd.Read(buf[got:min(got+hashRead, len(buf))])
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			c.readFailed(err)
			return false
		}
		got += k
		if whole := (got - hashed) / hashPiece * hashPiece; whole > 0 && got < len(buf) {
			st.Add(buf[hashed : hashed+whole])
			hashed += whole
		}
	}
	st.Add(buf[hashed:])
	sum, _ := st.Sum()
	id := cas.ID(sum)
	var r result
	switch {
	case len(h.ID) > 0 && id != want:
		r = errResult(mover.StatusCorrupt, fmt.Errorf("cas: put %s: content hashes to %s: %w", want, id, cas.ErrCorrupt))
	default:
		if err := s.store.PutBytesSummed(s.reqCtx, id, buf); err != nil {
			r = errResult(statusOf(err), err)
		} else {
			r = idResult(id)
		}
	}
	return c.reply(&r) == nil
}

// execute runs a request whose data is in memory and answers it.
func (c *conn) execute(h mover.Header, data []byte) bool {
	s := c.s
	var r result
	if h.Op == mover.OpBatch {
		r = s.batch(data)
	} else {
		r = s.exec(s.reqCtx, s.view(), h.Op, h.ID, h.Offset, h.Len, data, false)
	}
	err := c.reply(&r)
	if r.release != nil {
		r.release()
	}
	return err == nil
}

func known(op mover.Op) bool {
	switch op {
	case mover.OpRead, mover.OpReadMapped, mover.OpWrite, mover.OpSend, mover.OpFetch, mover.OpBatch, mover.OpHas, mover.OpStat:
		return true
	}
	return false
}

// streamWrite serves a WRITE too large to buffer: the data streams from the
// socket into the store.
func (c *conn) streamWrite(h mover.Header) bool {
	s := c.s
	var id cas.ID
	hasID := len(h.ID) > 0
	badID := hasID && !parseID(h.ID, &id)
	c.rd.Discard(h.Size())
	if err := s.mem.acquire(s.reqCtx, streamBudget); err != nil {
		return false
	}
	defer s.mem.release(streamBudget)
	lr := &exactReader{r: c.rd, n: int64(h.DataLen)}
	var r result
	switch {
	case badID:
		r = errResult(mover.StatusError, fmt.Errorf("bad id: want %d hex digits", mover.IDLen))
	case hasID:
		if err := s.store.PutVerified(s.reqCtx, id, lr); err != nil {
			r = errResult(statusOf(err), err)
		} else {
			r = idResult(id)
		}
	default:
		got, _, err := s.store.Put(s.reqCtx, lr)
		if err != nil {
			r = errResult(statusOf(err), err)
		} else {
			r = idResult(got)
		}
	}
	if lr.err != nil {
		// The client went away mid-request: nothing to answer.
		return false
	}
	if lr.n > 0 {
		// Refused or failed before the end: read the rest to stay in step.
		if _, err := io.Copy(io.Discard, lr); err != nil || lr.n > 0 {
			return false
		}
	}
	return c.reply(&r) == nil
}

// exactReader reads exactly n bytes of a request's data: the stream ending
// sooner is errCutShort, never the end of a shorter object. (Not
// io.ErrUnexpectedEOF: io.ReadFull callers take that for the end.)
var errCutShort = errors.New("request data cut short")

type exactReader struct {
	r   io.Reader
	n   int64
	err error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	if err == io.EOF && e.n > 0 {
		err = errCutShort
	}
	if err != nil && err != io.EOF {
		e.err = err
	}
	return k, err
}

// replyText answers with a status and a message.
func (c *conn) replyText(st mover.Status, msg string) error {
	r := result{status: st, one: []byte(msg), n: len(msg)}
	return c.reply(&r)
}

// reply writes the response r: small ones assembled in one write, larger
// ones with writev straight from their buffers or mappings.
func (c *conn) reply(r *result) error {
	if r.n > mover.MaxData {
		*r = errResult(mover.StatusError, fmt.Errorf("response of %d bytes exceeds the protocol's limit", r.n))
	}
	if r.stream != nil {
		c.hdr = mover.AppendResponseHeader(c.hdr[:0], r.status, r.n)
		if _, err := c.c.Write(c.hdr); err != nil {
			return err
		}
		if err := r.stream(c.c); err != nil {
			// The status is already sent: only closing can say the bytes
			// are incomplete.
			c.s.cfg.Log.Warn("read failed after its answer began; closed the connection", "err", err)
			return err
		}
		return nil
	}
	if r.n+mover.ResponseHeaderSize <= cap(c.out) {
		c.out = mover.AppendResponseHeader(c.out[:0], r.status, r.n)
		c.out = append(c.out, r.one...)
		for _, p := range r.data {
			c.out = append(c.out, p...)
		}
		_, err := c.c.Write(c.out)
		return err
	}
	c.hdr = mover.AppendResponseHeader(c.hdr[:0], r.status, r.n)
	iov := append(c.iov[:0], c.hdr)
	if r.one != nil {
		iov = append(iov, r.one)
	}
	iov = append(iov, r.data...)
	c.iov = iov[:0]
	bufs := net.Buffers(iov)
	_, err := bufs.WriteTo(c.c)
	clear(iov)
	return err
}
