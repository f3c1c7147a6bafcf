package uring

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xfer-io/xfer/backends"
)

// Small messages are coalesced: Send copies the message into the pending
// batch (a staging buffer) and returns; the batch goes to the socket in one
// IORING_OP_SEND. A Send that comes streamGap or longer after the previous
// one returned (a request, a ping: someone may be waiting for it) sends the
// batch itself at once, as tcp does, and so does the first Send after a
// receive of the idle stream got a message (a reply: on a loaded machine
// the next request often arrives while the previous reply's write(2) is
// still returning, so the gap alone would hand the reply to the flusher, a
// goroutine hand-off on the round trip). A Send that follows the previous
// one closely (a stream of messages) hands the batch to the stream's flusher
// goroutine and returns; while the flusher sends one batch, the messages
// that follow collect in the other staging buffer, so that one system call
// carries as many messages as arrived during the previous one. A send
// error is kept and returned by the next Send (as a socket's write error
// surfaces on a later write), and Close sends what is pending first.
const (
	streamGap = 5 * time.Microsecond
	// drainFor bounds how long Close waits for the pending batch to reach
	// the socket (a peer that stopped reading would hold it forever).
	drainFor = time.Second
)

// batcher is the coalescing state of a stream's send half; tx.mu guards it.
type batcher struct {
	cond    sync.Cond // signalled when the flusher takes or finishes a batch
	pend    []byte    // staging buffer the next messages are appended to
	spare   []byte    // the other staging buffer (the flusher's batch)
	n       int       // bytes in pend
	busy    bool      // the flusher owns the ring: Send only appends
	last    time.Time // when the previous Send returned
	queued  atomic.Bool
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	batches int64 // batches sent (tests)
	handoff int64 // batches handed to the flusher by Send (tests)
	msgs    int64 // messages batched (tests)
}

// startBatcher sets up coalescing over staging buffers a and b and starts
// the flusher.
func (s *stream) startBatcher(a, b []byte) {
	t := &s.tx
	t.b.cond.L = &t.mu
	t.b.pend, t.b.spare = a, b
	t.b.kick = make(chan struct{}, 1)
	t.b.quit = make(chan struct{})
	t.b.done = make(chan struct{})
	go s.flusher()
}

// small reports whether a message of hdr and n payload bytes is batched.
func (s *stream) small(hdr []byte, n int) bool {
	return n < s.zcMin && backends.PrefixLen+len(hdr)+n <= len(s.tx.b.pend)
}

// sendSmall appends one message to the pending batch and sends or hands
// off the batch; tx.mu is held.
func (s *stream) sendSmall(hdr, payload []byte) error {
	t, b := &s.tx, &s.tx.b
	size := backends.PrefixLen + len(hdr) + len(payload)
	for b.n+size > len(b.pend) {
		if b.busy {
			b.cond.Wait()
			if err := s.txReady(); err != nil {
				return err
			}
			continue
		}
		if err := s.pushLocked(); err != nil {
			return err
		}
	}
	m := b.pend[b.n : b.n+size]
	backends.PutPrefix(m, len(hdr), len(payload))
	copy(m[backends.PrefixLen:], hdr)
	copy(m[backends.PrefixLen+len(hdr):], payload)
	b.n += size
	b.msgs++
	b.queued.Store(true)
	now := time.Now()
	defer func() { b.last = time.Now() }()
	reply := s.rx.woke.Swap(false)
	switch {
	case b.busy:
		return nil
	case now.Sub(b.last) < streamGap && !reply:
		b.busy = true
		b.handoff++
		b.kick <- struct{}{}
		return nil
	}
	// An isolated message: write(2) sends one message for less than an
	// io_uring_enter here, and someone may be waiting for it.
	p := b.pend[:b.n]
	b.n = 0
	b.queued.Store(false)
	b.batches++
	if err := s.sendStagedHow(p, true); err != nil {
		return s.state.Fail(&t.err, "send", err)
	}
	return nil
}

// drainLocked waits for the flusher and sends what is pending, so that
// the caller (a large Send, SendFile) may use the ring and the staging
// buffers; tx.mu is held.
func (s *stream) drainLocked() error {
	b := &s.tx.b
	for b.busy {
		b.cond.Wait()
	}
	if err := s.txReady(); err != nil {
		return err
	}
	if b.n > 0 {
		if err := s.pushLocked(); err != nil {
			return s.state.Fail(&s.tx.err, "send", err)
		}
	}
	return nil
}

// pushLocked sends the pending batch itself; the flusher is idle.
func (s *stream) pushLocked() error {
	b := &s.tx.b
	p := b.pend[:b.n]
	b.n = 0
	b.queued.Store(false)
	b.batches++
	return s.sendStaged(p)
}

// flusher sends the batches Send hands it until the stream closes.
func (s *stream) flusher() {
	t, b := &s.tx, &s.tx.b
	defer close(b.done)
	for {
		select {
		case <-b.kick:
		case <-b.quit:
			return
		}
		t.mu.Lock()
		for b.n > 0 && t.err == nil && !s.state.Closed() {
			p := b.pend[:b.n]
			b.pend, b.spare, b.n = b.spare, b.pend, 0
			b.batches++
			b.cond.Broadcast()
			t.mu.Unlock()
			err := s.sendStaged(p)
			t.mu.Lock()
			if err != nil {
				s.state.Fail(&t.err, "send", err)
			}
		}
		b.n = 0 // after a failure nothing more is sent
		b.busy = false
		b.queued.Store(false)
		b.cond.Broadcast()
		t.mu.Unlock()
	}
}

// drainBeforeClose gives what Send accepted up to drainFor to reach the
// socket before Close shuts it down.
func (s *stream) drainBeforeClose() {
	b := &s.tx.b
	if b.kick == nil {
		return
	}
	for giveUp := time.Now().Add(drainFor); b.queued.Load() && time.Now().Before(giveUp); {
		if s.tx.mu.TryLock() {
			if !b.busy && b.n > 0 && s.tx.err == nil && s.tx.ring != nil {
				b.busy = true
				b.kick <- struct{}{}
			}
			s.tx.mu.Unlock()
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// stopBatcher ends the flusher once the socket is shut down (its sends
// fail then); tx.mu is not held.
func (s *stream) stopBatcher() {
	b := &s.tx.b
	if b.quit == nil {
		return
	}
	close(b.quit)
	s.tx.mu.Lock()
	b.cond.Broadcast() // Sends waiting for room see the closed stream
	s.tx.mu.Unlock()
	<-b.done
}
