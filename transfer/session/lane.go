package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/hashtree"
)

// pendingBatch is a batch sent and waiting for its verdicts, which may
// come in several messages.
type pendingBatch struct {
	count int
	errs  []string // per file, filled in as verdict pieces arrive
	next  int      // verdicts come in file order: the lowest index still possible
	cb    func(errs []string, err error)
}

// laneWindow is how many chunks a lane keeps unacknowledged.
const laneWindow = 4

// lane is one data stream of a session, used in both directions: the
// sending side writes chunks and batches and reads verdicts; the receiving
// side reads chunks and batches, writes them through the session's
// receiver and answers with verdicts.
type Lane struct {
	s   *Session
	idx int
	st  backends.Stream

	smu sync.Mutex // serialises Send on the stream
	// out and in authenticate the lane's messages by direction when the
	// data streams are not inside TLS (nil when they are); out is used
	// under smu, in by the reader alone.
	out, in *streamMAC
	// pending holds the tag of the message being received while its
	// payload, which the tag covers, is still to be read.
	pending     bool
	pendingKind byte // the kind of that message
	pendingTag  [wire.TagLen]byte

	mu      sync.Mutex
	chunks  map[[2]uint64]func(status byte, msg string)
	batches map[uint64]*pendingBatch
	nextB   uint64
	err     error

	window chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newLane(s *Session, idx int, st backends.Stream) *Lane {
	l := &Lane{
		s: s, idx: idx, st: st,
		chunks:  map[[2]uint64]func(byte, string){},
		batches: map[uint64]*pendingBatch{},
		window:  make(chan struct{}, laneWindow),
		closed:  make(chan struct{}),
	}
	if s.dataMAC {
		l.out, l.in = newStreamMAC(s.keys.dataSend), newStreamMAC(s.keys.dataRecv)
	}
	return l
}

// maxHeaderBody is the largest message header a caller may hand the lane:
// the transport's limit less the room for a tag.
const maxHeaderBody = backends.MaxHeader - wire.TagLen

// tag returns hdr with the message's tag appended when the lane's messages
// are authenticated; payload is covered where payloadCovered says so.
// n is the payload's length (payload itself may be nil when it is not
// covered). The caller holds smu.
func (l *Lane) tag(hdr, payload []byte, n int) []byte {
	if l.out == nil || len(hdr) == 0 {
		return hdr
	}
	l.out.dataBegin(l.idx, hdr, n)
	if wire.PayloadCovered(hdr[0]) {
		l.cover(hdr[0], payload, l.out)
	}
	out := make([]byte, len(hdr), len(hdr)+wire.TagLen)
	copy(out, hdr)
	return l.out.sum(out)
}

// cover puts the payload of a message of this kind through m: all of it,
// but for a small-file batch on a session that checks every file, all but
// the files' data, which their covered digests bind (wire.BatchTagged;
// the receiver checks them as wire.BatchWhole).
func (l *Lane) cover(kind byte, payload []byte, m *streamMAC) {
	if kind == wire.MsgBatch && l.s.verify {
		wire.BatchTagged(payload, m.write)
		return
	}
	m.write(payload)
}

// batchCheck is how the files of a batch received on this lane are
// checked against their digests.
func (l *Lane) batchCheck() wire.BatchCheck {
	switch {
	case !l.s.verify:
		return wire.BatchUnchecked
	case l.in != nil:
		return wire.BatchWhole // the tag left the data to the digests
	default:
		return wire.BatchPerFile
	}
}

func (l *Lane) close(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		chunks, batches := l.chunks, l.batches
		l.chunks, l.batches = map[[2]uint64]func(byte, string){}, map[uint64]*pendingBatch{}
		l.mu.Unlock()
		close(l.closed)
		l.st.Close()
		msg := fmt.Sprintf("data stream %d to %s closed: %v", l.idx, l.s.peer, err)
		for _, cb := range chunks {
			cb(wire.AckFailed, msg)
		}
		for _, b := range batches {
			b.cb(nil, errors.New(msg))
		}
	})
}

func (l *Lane) Send(hdr, payload []byte) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	if err := l.st.Send(l.tag(hdr, payload, len(payload)), payload); err != nil {
		err = fmt.Errorf("data stream %d to %s: %w", l.idx, l.s.peer, err)
		l.s.laneLost(err)
		return err
	}
	return nil
}

func (l *Lane) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	if l.out != nil && len(hdr) > 0 && wire.PayloadCovered(hdr[0]) {
		// The tag covers the bytes: read them once, and send exactly
		// what was authenticated.
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		return l.Send(hdr, buf)
	}
	l.smu.Lock()
	defer l.smu.Unlock()
	if err := l.st.SendFile(l.tag(hdr, nil, n), f, off, n); err != nil {
		err = fmt.Errorf("data stream %d to %s: %w", l.idx, l.s.peer, err)
		l.s.laneLost(err)
		return err
	}
	return nil
}

// acquire takes a window slot, so a lane never runs more than laneWindow
// chunks ahead of the receiver's verdicts.
func (l *Lane) Acquire(ctx context.Context) error {
	select {
	case l.window <- struct{}{}:
		return nil
	case <-l.closed:
		return l.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Lane) Release() { <-l.window }

func (l *Lane) closedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Errorf("data stream %d to %s closed: %v", l.idx, l.s.peer, l.err)
}

// sendChunk sends a chunk and arranges for cb to get the receiver's
// verdict. The caller must hold a window slot; cb releases it. cb runs
// exactly once unless sendChunk returns an error, in which case it never
// runs and the caller cleans up. The data is
// either data (when f is nil) or n bytes of f at off.
func (l *Lane) SendChunk(fid, idx uint64, off int64, verify bool, digest hashtree.Digest, data []byte, f *os.File, n int, cb func(status byte, msg string)) error {
	hdr := wire.ChunkHeader(fid, idx, off, digest)
	return l.tracked(fid, idx, cb, func() error {
		if f != nil {
			return l.SendFile(hdr, f, off, n)
		}
		return l.Send(hdr, data)
	})
}

// SendPatch sends chunk p.Index of file p.FID as the leaves that differ
// (their bytes in data), with SendChunk's contract: cb gets the verdict.
func (l *Lane) SendPatch(p wire.Patch, data []byte, cb func(status byte, msg string)) error {
	return l.tracked(p.FID, p.Index, cb, func() error { return l.Send(p.Header(), data) })
}

// tracked registers cb for the verdict on chunk idx of file fid and sends
// the chunk with send; an error is reported only if cb has not run (close
// runs every pending callback): cb runs exactly once, or never with an
// error returned.
func (l *Lane) tracked(fid, idx uint64, cb func(status byte, msg string), send func() error) error {
	k := [2]uint64{fid, idx}
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.closedErr()
	}
	l.chunks[k] = cb
	l.mu.Unlock()
	err := send()
	if err != nil {
		l.mu.Lock()
		_, pending := l.chunks[k]
		delete(l.chunks, k)
		l.mu.Unlock()
		if !pending {
			return nil
		}
	}
	return err
}

// sendBatch sends a batch of small files (already encoded) and arranges
// for cb to get the per-file verdicts.
func (l *Lane) SendBatch(count int, payload []byte, cb func(errs []string, err error)) error {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.closedErr()
	}
	l.nextB++
	id := l.nextB
	l.batches[id] = &pendingBatch{count: count, cb: cb}
	l.mu.Unlock()
	e := wire.Enc{}
	e.U8(wire.MsgBatch)
	e.Uvar(id)
	e.Uvar(uint64(count))
	if err := l.Send(e.Buf, payload); err != nil {
		l.mu.Lock()
		_, pending := l.batches[id]
		delete(l.batches, id)
		l.mu.Unlock()
		if pending {
			return err
		}
	}
	return nil
}

// readLoop handles every message arriving on the lane.
func (l *Lane) readLoop() {
	hbuf := make([]byte, backends.MaxHeader)
	var buf []byte
	for {
		hdr, n, err := l.st.Recv(hbuf)
		if err != nil {
			select {
			case <-l.s.done:
				l.close(l.s.err)
			default:
				l.s.laneLost(fmt.Errorf("data stream %d from %s: %w", l.idx, l.s.peer, err))
			}
			return
		}
		err = l.open(&hdr, n)
		if err == nil {
			err = l.handle(hdr, n, &buf)
		}
		if buf != nil {
			// The message is done with its payload: the memory goes back
			// to the session's budget.
			l.s.mem.Put(buf)
			buf = nil
		}
		if err == nil && l.pending {
			err = errors.New("message payload left unread")
		}
		if err != nil {
			l.s.abort(fmt.Errorf("protocol error on data stream %d from %s: %w", l.idx, l.s.peer, err))
			return
		}
	}
}

// open checks and strips the tag of a received message when the lane's
// messages are authenticated. A tag that covers the payload is checked
// once payload has read it; nothing of the message is acted on before.
func (l *Lane) open(hdr *[]byte, n int) error {
	if l.in == nil {
		return nil
	}
	h := *hdr
	if len(h) < 1+wire.TagLen {
		return errIntegrity
	}
	h, tag := h[:len(h)-wire.TagLen], h[len(h)-wire.TagLen:]
	*hdr = h
	l.in.dataBegin(l.idx, h, n)
	if wire.PayloadCovered(h[0]) && n > 0 {
		l.pending, l.pendingKind = true, h[0]
		copy(l.pendingTag[:], tag)
		return nil
	}
	if !l.in.check(tag) {
		return errIntegrity
	}
	return nil
}

// payloadPiece is how much of a payload is read between two checks that
// the peer is still sending.
const payloadPiece = 4 << 20

// payload reads the payload of the current message (n bytes, at most max)
// into a buffer of the session's receive budget, which it stores in *buf
// for readLoop to give back once the message is handled. It waits while
// the budget is spent by other messages; a peer that stops sending in the
// middle of a payload for the idle timeout ends the session, so a stalled
// message cannot hold its memory for long.
func (l *Lane) Payload(n, max int, buf *[]byte) ([]byte, error) {
	if n < 0 || n > max {
		return nil, fmt.Errorf("payload of %d bytes exceeds the limit of %d", n, max)
	}
	if n == 0 {
		return nil, nil
	}
	b, err := l.s.mem.Get(n)
	if err != nil {
		return nil, fmt.Errorf("receiving a %d-byte payload: %w", n, err)
	}
	*buf = b
	stall := time.AfterFunc(l.s.idle, func() {
		l.s.fail(fmt.Errorf("data stream %d from %s stalled in the middle of a message for %s", l.idx, l.s.peer, l.s.idle))
	})
	defer stall.Stop()
	for off := 0; off < n; {
		k := min(n-off, payloadPiece)
		stall.Reset(l.s.idle)
		if err := l.st.RecvPayload(b[off : off+k]); err != nil {
			return nil, err
		}
		off += k
	}
	if l.pending {
		l.pending = false
		l.cover(l.pendingKind, b, l.in)
		if !l.in.check(l.pendingTag[:]) {
			return nil, errIntegrity
		}
	}
	return b, nil
}

func (l *Lane) handle(hdr []byte, n int, buf *[]byte) error {
	if len(hdr) == 0 {
		return errors.New("empty message header")
	}
	d := &wire.Dec{Buf: hdr[1:]}
	switch hdr[0] {
	case wire.MsgChunk:
		fid, idx, off := d.Uvar(), d.Uvar(), d.Uvar()
		verify := l.s.verify
		var dg hashtree.Digest
		copy(dg[:], d.Raw(32))
		if d.Err != nil {
			return fmt.Errorf("bad chunk header: %w", d.Err)
		}
		p, err := l.Payload(n, wire.MaxChunkSize, buf)
		if err != nil {
			return err
		}
		status, msg := wire.AckFailed, "this peer accepts no files"
		if r := l.s.tables.receiver(); r != nil {
			status, msg = r.WriteChunk(fid, idx, int64(off), p, dg, verify)
		}
		return l.ack(fid, idx, status, msg)
	case wire.MsgPatch:
		pt, err := wire.DecodePatch(d)
		if err != nil {
			return err
		}
		p, err := l.Payload(n, wire.MaxChunkSize, buf)
		if err != nil {
			return err
		}
		status, msg := wire.AckFailed, "this peer accepts no files"
		if r := l.s.tables.receiver(); r != nil {
			status, msg = r.WritePatch(pt, p)
		}
		return l.ack(pt.FID, pt.Index, status, msg)
	case wire.MsgBatch:
		id, count := d.Uvar(), d.Uvar()
		if d.Err != nil {
			return fmt.Errorf("bad batch header: %w", d.Err)
		}
		// The count is checked against the payload actually announced
		// before anything is allocated for the files.
		if n < 1 || n > wire.MaxBatchPayload || count < 1 || count > wire.MaxBatchFiles || count > uint64((n-1)/wire.MinSmallEntry) {
			return fmt.Errorf("bad batch header: %d files in %d bytes", count, n)
		}
		p, err := l.Payload(n, wire.MaxBatchPayload, buf)
		if err != nil {
			return err
		}
		var errs []string
		if r := l.s.tables.receiver(); r != nil {
			errs, err = r.WriteBatch(p, int(count), l.batchCheck())
			if errors.Is(err, wire.ErrBatchAltered) {
				return errIntegrity
			}
			if err != nil {
				return err
			}
		} else {
			errs = make([]string, count)
			for i := range errs {
				errs[i] = "this peer accepts no files"
			}
		}
		return l.sendBatchVerdicts(id, errs)
	case wire.MsgAck:
		fid, idx := d.Uvar(), d.Uvar()
		status := d.U8()
		msg := d.Str()
		if d.Err != nil || n != 0 {
			return errors.New("bad chunk verdict")
		}
		k := [2]uint64{fid, idx}
		l.mu.Lock()
		cb := l.chunks[k]
		delete(l.chunks, k)
		l.mu.Unlock()
		if cb == nil {
			return fmt.Errorf("verdict for unknown chunk %d/%d", fid, idx)
		}
		cb(status, msg)
		return nil
	case wire.MsgBatchAck:
		return l.batchVerdicts(d, n)
	}
	if fn := l.s.tables.data(hdr[0]); fn != nil {
		return fn(l, hdr, n, buf)
	}
	return fmt.Errorf("unknown data message kind %d", hdr[0])
}

// ack sends the verdict on chunk idx of file fid.
func (l *Lane) ack(fid, idx uint64, status byte, msg string) error {
	e := wire.Enc{}
	e.U8(wire.MsgAck)
	e.Uvar(fid)
	e.Uvar(idx)
	e.U8(status)
	e.Str(wire.VerdictMsg(msg))
	return l.Send(e.Buf, nil)
}

// Batch verdicts travel in pieces that each fit a message header: a piece
// is "uvarint batch id, uvarint file count, u8 last, uvarint n, n ×
// (uvarint file index, string error)" and lists only the files that
// failed, in file order; the last piece completes the batch. However many
// files fail, every verdict arrives and the stream stays usable.

// verdictRoom is what a piece may use of a header: below the room the
// tag leaves, with some to spare for the piece's own fields.
const verdictRoom = maxHeaderBody - 32

// sendBatchVerdicts answers batch id with the per-file errors errs ("" for
// success), in as many pieces as they need.
func (l *Lane) sendBatchVerdicts(id uint64, errs []string) error {
	var items wire.Enc
	n := 0
	flush := func(last bool) error {
		e := wire.Enc{Buf: make([]byte, 0, 32+len(items.Buf))}
		e.U8(wire.MsgBatchAck)
		e.Uvar(id)
		e.Uvar(uint64(len(errs)))
		if last {
			e.U8(1)
		} else {
			e.U8(0)
		}
		e.Uvar(uint64(n))
		e.Raw(items.Buf)
		items.Buf, n = items.Buf[:0], 0
		return l.Send(e.Buf, nil)
	}
	for i, msg := range errs {
		if msg == "" {
			continue
		}
		msg = wire.VerdictMsg(msg)
		if len(items.Buf)+binary.MaxVarintLen64*2+len(msg) > verdictRoom {
			if err := flush(false); err != nil {
				return err
			}
		}
		items.Uvar(uint64(i))
		items.Str(msg)
		n++
	}
	return flush(true)
}

// batchVerdicts takes one piece of a batch's verdicts (the header after
// its kind byte in d; n is the payload length, always 0).
func (l *Lane) batchVerdicts(d *wire.Dec, n int) error {
	id, count := d.Uvar(), d.Uvar()
	last := d.U8()
	k := d.Uvar()
	if d.Err != nil || n != 0 || last > 1 || k > uint64(len(d.Buf)) {
		return errors.New("bad batch verdict")
	}
	l.mu.Lock()
	b := l.batches[id]
	l.mu.Unlock()
	if b == nil {
		return fmt.Errorf("verdict for unknown batch %d", id)
	}
	// Only the lane's reader touches a pending batch's verdicts.
	if count != uint64(b.count) {
		return fmt.Errorf("batch %d of %d files answered for %d", id, b.count, count)
	}
	for range k {
		i, msg := d.Uvar(), d.Str()
		if d.Err != nil || i < uint64(b.next) || i >= count {
			return errors.New("bad batch verdict")
		}
		if b.errs == nil {
			b.errs = make([]string, b.count)
		}
		b.errs[i] = msg
		b.next = int(i) + 1
	}
	if len(d.Buf) != 0 {
		return errors.New("bad batch verdict")
	}
	if last == 0 {
		return nil
	}
	l.mu.Lock()
	delete(l.batches, id)
	l.mu.Unlock()
	errs := b.errs
	if errs == nil {
		errs = make([]string, b.count)
	}
	b.cb(errs, nil)
	return nil
}

// Session is the session the lane belongs to.
func (l *Lane) Session() *Session { return l.s }

// Index is the lane's stream number in its session.
func (l *Lane) Index() int { return l.idx }
