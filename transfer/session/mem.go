package session

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// Receive memory. Every buffer that holds bytes a peer sent before they are
// written somewhere (chunk and batch payloads, large control frames, the
// requests queued for the serve loop) is taken from a session's budget,
// and the sessions of a server share one pool with a global limit: a peer
// can make a server hold at most what its budget allows, and all peers
// together at most the pool's limit. Memory is reserved before it is
// allocated; a reader that finds no room waits until another message
// finishes (or its session ends) instead of allocating.

// Defaults for the receive-memory limits.
const (
	// DefaultMaxMemory is the pool of a server: all sessions' receive
	// buffers together (`xfer serve --max-memory`).
	DefaultMaxMemory = 1 << 30
	// DefaultMaxSessionMemory is what one session may hold of it
	// (`--max-session-memory`); a client session's own limit too.
	DefaultMaxSessionMemory = 256 << 20
)

// minBufClass is the smallest pooled buffer; smaller payloads still take
// a buffer of this size, so a peer cannot make many tiny allocations.
const minBufClass = 64 << 10

// idleTrim is how long buffers stay idle in a pool, kept for reuse,
// before they are dropped and their memory can go back to the system.
// Within it a burst reuses what the one before left, so the process
// holds little more than the pool's limit.
const idleTrim = 30 * time.Second

// errNoMemory is returned for a reservation larger than a limit: it can
// never be granted, so waiting would hang.
var errNoMemory = errors.New("message larger than the receive memory limit")

// memPool is the global pool: bytes reserved for buffers in use, plus
// idle buffers kept for reuse, never exceed limit. Safe for concurrent use.
type memPool struct {
	limit int64

	waiting                    // guards the fields below
	held      int64            // reserved: in use + idle in free
	freeBytes int64            // of held, idle in free
	free      map[int][][]byte // idle buffers by class (log2 of the size)
	trim      *time.Timer      // drops the idle buffers once none was returned for idleTrim
}

func newMemPool(limit int64) *memPool {
	return &memPool{limit: limit, free: map[int][][]byte{}, waiting: waiting{changed: make(chan struct{})}}
}

// waiting is a mutex with a broadcast of changes, for reservations that
// wait for room: a waiter tries under the lock and, failing, waits for the
// next change to try again.
type waiting struct {
	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when room may have appeared
}

// until calls try, with the lock held, until it returns true, waiting for a
// change between tries; it gives up with ctx's cause once ctx ends.
func (w *waiting) until(ctx context.Context, try func() bool) error {
	for {
		w.mu.Lock()
		if try() {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// wakeLocked tells waiters to look again (the lock held).
func (w *waiting) wakeLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// classOf is the size class (log2) of a buffer holding n bytes.
func classOf(n int) int {
	if n <= minBufClass {
		return bits.Len(uint(minBufClass - 1))
	}
	return bits.Len(uint(n - 1))
}

// reserveLocked takes n bytes of the limit, dropping idle buffers to make
// room; false when even that does not make enough.
func (p *memPool) reserveLocked(n int64) bool {
	for p.held+n > p.limit && p.freeBytes > 0 {
		for c, list := range p.free {
			if len(list) == 0 {
				continue
			}
			p.free[c] = list[:len(list)-1]
			size := int64(cap(list[len(list)-1]))
			p.held -= size
			p.freeBytes -= size
			break
		}
	}
	if p.held+n > p.limit {
		return false
	}
	p.held += n
	return true
}

// reserve takes n bytes, waiting for room until ctx ends.
func (p *memPool) reserve(ctx context.Context, n int64) error {
	if n > p.limit {
		return errNoMemory
	}
	return p.until(ctx, func() bool { return p.reserveLocked(n) })
}

// unreserve gives back n bytes reserved without a buffer.
func (p *memPool) unreserve(n int64) {
	p.mu.Lock()
	p.held -= n
	p.wakeLocked()
	p.mu.Unlock()
}

// get returns a buffer of length n (a reused idle one of its class, or a
// new one once its size is reserved), waiting for room until ctx ends.
func (p *memPool) get(ctx context.Context, n int) ([]byte, error) {
	c := classOf(n)
	size := int64(1) << c
	if size > p.limit {
		return nil, errNoMemory
	}
	var b []byte
	err := p.until(ctx, func() bool {
		if list := p.free[c]; len(list) > 0 {
			b = list[len(list)-1][:n]
			p.free[c] = list[:len(list)-1]
			p.freeBytes -= size
			return true
		}
		if p.reserveLocked(size) {
			b = make([]byte, n, size)
			return true
		}
		return false
	})
	return b, err
}

// put returns a buffer from get; it stays reserved, idle, for reuse.
func (p *memPool) put(b []byte) {
	size := int64(cap(b))
	c := classOf(cap(b))
	p.mu.Lock()
	p.free[c] = append(p.free[c], b[:0])
	p.freeBytes += size
	if p.trim == nil {
		p.trim = time.AfterFunc(idleTrim, p.dropIdle)
	} else {
		p.trim.Reset(idleTrim)
	}
	p.wakeLocked()
	p.mu.Unlock()
}

// dropIdle lets go of every idle buffer.
func (p *memPool) dropIdle() {
	p.mu.Lock()
	p.held -= p.freeBytes
	p.freeBytes = 0
	clear(p.free)
	p.wakeLocked()
	p.mu.Unlock()
}

// sessionMem is one session's share of a pool: at most limit bytes in use
// at once. Reservations wait for the session's own messages first, then
// for the pool.
type sessionMem struct {
	pool  *memPool
	limit int64
	ctx   context.Context // ends with the session: waiting stops

	waiting // guards used
	used    int64
}

// newSessionMem gives a session limit bytes of pool (a pool of its own
// when pool is nil); ctx ends with the session.
func newSessionMem(ctx context.Context, pool *memPool, limit int64) *sessionMem {
	if pool == nil {
		pool = newMemPool(limit)
	}
	return &sessionMem{pool: pool, limit: limit, ctx: ctx, waiting: waiting{changed: make(chan struct{})}}
}

// take counts n bytes against the session's limit, waiting while the
// session's other messages hold it.
func (m *sessionMem) take(n int64) error {
	if n > m.limit {
		return fmt.Errorf("%w (%d bytes, limit %d per session)", errNoMemory, n, m.limit)
	}
	return m.until(m.ctx, func() bool {
		if m.used+n > m.limit {
			return false
		}
		m.used += n
		return true
	})
}

func (m *sessionMem) give(n int64) {
	m.mu.Lock()
	m.used -= n
	m.wakeLocked()
	m.mu.Unlock()
}

// get returns a receive buffer of n bytes counted against the session and
// the pool; release it with put.
func (m *sessionMem) Get(n int) ([]byte, error) {
	size := int64(1) << classOf(n)
	if err := m.take(size); err != nil {
		return nil, err
	}
	b, err := m.pool.get(m.ctx, n)
	if err != nil {
		m.give(size)
		return nil, err
	}
	return b, nil
}

func (m *sessionMem) Put(b []byte) {
	m.pool.put(b)
	m.give(int64(cap(b)))
}

// reserve counts n bytes of memory held outside a pooled buffer (decoded
// requests waiting to be served) against the session and the pool.
func (m *sessionMem) reserve(n int64) error {
	if err := m.take(n); err != nil {
		return err
	}
	err := m.pool.reserve(m.ctx, n)
	if err != nil {
		m.give(n)
	}
	return err
}

func (m *sessionMem) unreserve(n int64) {
	m.pool.unreserve(n)
	m.give(n)
}
