package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/hashtree"
)

// Data-plane message kinds (first byte of a stream message header).
const (
	mChunk    byte = 1 // a chunk of a large file
	mAck      byte = 2 // the receiver's verdict on a chunk
	mBatch    byte = 3 // several small files, whole
	mBatchAck byte = 4 // per-file verdicts on a batch
	// 5-9 are the content-addressed store's (see cas.go).
	mCASFirst byte = 5
	mCASLast  byte = 9
	// 10-14 are `xfer bench`'s (see bench.go).
	mBenchFirst byte = 10
	mBenchLast  byte = 14
)

// Chunk verdicts.
const (
	ackOK       byte = 0
	ackMismatch byte = 1 // digest did not match: send again
	ackFailed   byte = 2 // the file cannot be written: give up on it
)

// MaxChunkSize bounds --chunk-size and every chunk payload a receiver accepts.
const MaxChunkSize = 64 << 20

// maxBatchPayload bounds a small-file batch message.
const maxBatchPayload = 16 << 20

// laneWindow is how many chunks a lane keeps unacknowledged.
const laneWindow = 4

// lane is one data stream of a session, used in both directions: the
// sending side writes chunks and batches and reads verdicts; the receiving
// side reads chunks and batches, writes them through the session's
// receiver and answers with verdicts.
type lane struct {
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
	pending    bool
	pendingTag [tagLen]byte

	mu      sync.Mutex
	chunks  map[[2]uint64]func(status byte, msg string)
	batches map[uint64]func(errs []string, err error)
	nextB   uint64
	err     error

	window chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newLane(s *Session, idx int, st backends.Stream) *lane {
	l := &lane{
		s: s, idx: idx, st: st,
		chunks:  map[[2]uint64]func(byte, string){},
		batches: map[uint64]func([]string, error){},
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
const maxHeaderBody = backends.MaxHeader - tagLen

// tag returns hdr with the message's tag appended when the lane's messages
// are authenticated; payload is covered where payloadCovered says so.
// n is the payload's length (payload itself may be nil when it is not
// covered). The caller holds smu.
func (l *lane) tag(hdr, payload []byte, n int) []byte {
	if l.out == nil || len(hdr) == 0 {
		return hdr
	}
	l.out.dataBegin(l.idx, hdr, n)
	if payloadCovered(hdr[0]) {
		l.out.write(payload)
	}
	out := make([]byte, len(hdr), len(hdr)+tagLen)
	copy(out, hdr)
	return l.out.sum(out)
}

func (l *lane) close(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		chunks, batches := l.chunks, l.batches
		l.chunks, l.batches = map[[2]uint64]func(byte, string){}, map[uint64]func([]string, error){}
		l.mu.Unlock()
		close(l.closed)
		l.st.Close()
		msg := fmt.Sprintf("data stream %d to %s closed: %v", l.idx, l.s.peer, err)
		for _, cb := range chunks {
			cb(ackFailed, msg)
		}
		for _, cb := range batches {
			cb(nil, errors.New(msg))
		}
	})
}

func (l *lane) send(hdr, payload []byte) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	if err := l.st.Send(l.tag(hdr, payload, len(payload)), payload); err != nil {
		err = fmt.Errorf("data stream %d to %s: %w", l.idx, l.s.peer, err)
		l.s.laneLost(err)
		return err
	}
	return nil
}

func (l *lane) sendFile(hdr []byte, f *os.File, off int64, n int) error {
	if l.out != nil && len(hdr) > 0 && payloadCovered(hdr[0]) {
		// The tag covers the bytes: read them once, and send exactly
		// what was authenticated.
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		return l.send(hdr, buf)
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
func (l *lane) acquire(ctx context.Context) error {
	select {
	case l.window <- struct{}{}:
		return nil
	case <-l.closed:
		return l.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *lane) release() { <-l.window }

func (l *lane) closedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Errorf("data stream %d to %s closed: %v", l.idx, l.s.peer, l.err)
}

// chunkHeader encodes a chunk message's header. Whether the receiver
// checks the digest is the session's decision (Session.verify), never the
// message's.
func chunkHeader(fid, idx uint64, off int64, digest hashtree.Digest) []byte {
	e := enc{b: make([]byte, 0, 64+tagLen)}
	e.u8(mChunk)
	e.uvar(fid)
	e.uvar(idx)
	e.uvar(uint64(off))
	e.raw(digest[:])
	return e.b
}

// sendChunk sends a chunk and arranges for cb to get the receiver's
// verdict. The caller must hold a window slot; cb releases it. cb runs
// exactly once unless sendChunk returns an error, in which case it never
// runs and the caller cleans up. The data is
// either data (when f is nil) or n bytes of f at off.
func (l *lane) sendChunk(fid, idx uint64, off int64, verify bool, digest hashtree.Digest, data []byte, f *os.File, n int, cb func(status byte, msg string)) error {
	k := [2]uint64{fid, idx}
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.closedErr()
	}
	l.chunks[k] = cb
	l.mu.Unlock()
	hdr := chunkHeader(fid, idx, off, digest)
	var err error
	if f != nil {
		err = l.sendFile(hdr, f, off, n)
	} else {
		err = l.send(hdr, data)
	}
	if err != nil {
		// Report the error only if the callback has not run (close runs
		// every pending callback): cb must run exactly once.
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
func (l *lane) sendBatch(count int, payload []byte, cb func(errs []string, err error)) error {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.closedErr()
	}
	l.nextB++
	id := l.nextB
	l.batches[id] = cb
	l.mu.Unlock()
	e := enc{}
	e.u8(mBatch)
	e.uvar(id)
	e.uvar(uint64(count))
	if err := l.send(e.b, payload); err != nil {
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
func (l *lane) readLoop() {
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
func (l *lane) open(hdr *[]byte, n int) error {
	if l.in == nil {
		return nil
	}
	h := *hdr
	if len(h) < 1+tagLen {
		return errIntegrity
	}
	h, tag := h[:len(h)-tagLen], h[len(h)-tagLen:]
	*hdr = h
	l.in.dataBegin(l.idx, h, n)
	if payloadCovered(h[0]) && n > 0 {
		l.pending = true
		copy(l.pendingTag[:], tag)
		return nil
	}
	if !l.in.check(tag) {
		return errIntegrity
	}
	return nil
}

func (l *lane) payload(n, max int, buf *[]byte) ([]byte, error) {
	if n < 0 || n > max {
		return nil, fmt.Errorf("payload of %d bytes exceeds the limit of %d", n, max)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if err := l.st.RecvPayload(p); err != nil {
		return nil, err
	}
	if l.pending {
		l.pending = false
		l.in.write(p)
		if !l.in.check(l.pendingTag[:]) {
			return nil, errIntegrity
		}
	}
	return p, nil
}

func (l *lane) handle(hdr []byte, n int, buf *[]byte) error {
	if len(hdr) == 0 {
		return errors.New("empty message header")
	}
	d := &dec{b: hdr[1:]}
	switch hdr[0] {
	case mChunk:
		fid, idx, off := d.uvar(), d.uvar(), d.uvar()
		verify := l.s.verify
		var dg hashtree.Digest
		copy(dg[:], d.raw(32))
		if d.err != nil {
			return fmt.Errorf("bad chunk header: %w", d.err)
		}
		p, err := l.payload(n, MaxChunkSize, buf)
		if err != nil {
			return err
		}
		status, msg := ackFailed, "this peer accepts no files"
		if r := l.s.receiver(); r != nil {
			status, msg = r.writeChunk(fid, idx, int64(off), p, dg, verify)
		}
		e := enc{}
		e.u8(mAck)
		e.uvar(fid)
		e.uvar(idx)
		e.u8(status)
		e.str(msg)
		return l.send(e.b, nil)
	case mBatch:
		id, count := d.uvar(), d.uvar()
		if d.err != nil {
			return fmt.Errorf("bad batch header: %w", d.err)
		}
		p, err := l.payload(n, maxBatchPayload, buf)
		if err != nil {
			return err
		}
		var errs []string
		if r := l.s.receiver(); r != nil {
			errs, err = r.writeBatch(p, int(count), l.s.verify)
			if err != nil {
				return err
			}
		} else {
			errs = make([]string, count)
			for i := range errs {
				errs[i] = "this peer accepts no files"
			}
		}
		e := enc{}
		e.u8(mBatchAck)
		e.uvar(id)
		e.uvar(uint64(len(errs)))
		for _, s := range errs {
			e.str(s)
		}
		return l.send(e.b, nil)
	case mAck:
		fid, idx := d.uvar(), d.uvar()
		status := d.u8()
		msg := d.str()
		if d.err != nil || n != 0 {
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
	case mBatchAck:
		id, count := d.uvar(), d.uvar()
		if d.err != nil || n != 0 || count > 1<<20 {
			return errors.New("bad batch verdict")
		}
		errs := make([]string, 0, count)
		for i := uint64(0); i < count; i++ {
			errs = append(errs, d.str())
		}
		if d.err != nil {
			return errors.New("bad batch verdict")
		}
		l.mu.Lock()
		cb := l.batches[id]
		delete(l.batches, id)
		l.mu.Unlock()
		if cb == nil {
			return fmt.Errorf("verdict for unknown batch %d", id)
		}
		cb(errs, nil)
		return nil
	}
	if hdr[0] >= mCASFirst && hdr[0] <= mCASLast {
		return l.handleCAS(hdr, n, buf)
	}
	if hdr[0] >= mBenchFirst && hdr[0] <= mBenchLast {
		return l.handleBench(hdr, n, buf)
	}
	return fmt.Errorf("unknown data message kind %d", hdr[0])
}
