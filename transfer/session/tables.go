package session

import (
	"context"
	"fmt"
	"sync"

	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Handler serves one request of the peer. It answers with Session.Reply,
// before it returns or later from a goroutine of its own (a long request
// tracks itself with Session.Track so that the peer can cancel it).
type Handler func(r *wire.Req)

// DataHandler handles one data message of a registered kind that arrived
// on lane l: hdr is its header (kind byte first, tag removed) and n the
// length of the payload that follows, which the handler reads with
// Lane.Payload into *buf (given back once it returns).
type DataHandler func(l *Lane, hdr []byte, n int, buf *[]byte) error

// FrameHandler handles one control frame of a registered type; an error
// ends the session as a protocol error.
type FrameHandler func(p []byte) error

// Receiver writes the chunks and small-file batches that arrive on the
// data streams. verify is the session's decision (negotiated in the
// handshake) whether digests are checked.
type Receiver interface {
	// WriteChunk writes one chunk of an opened large file and returns the
	// verdict the sender gets: wire.AckOK, AckMismatch (send it again) or
	// AckFailed (give up on the file), with a message for the last two.
	WriteChunk(fid, idx uint64, off int64, p []byte, dg hashtree.Digest, verify bool) (status byte, msg string)
	// WritePatch assembles a chunk from the old bytes the receiver holds
	// and the leaves of p (their bytes in data), checks it against the
	// chunk's digest whatever the session negotiated, and writes it; the
	// verdict is WriteChunk's.
	WritePatch(p wire.Patch, data []byte) (status byte, msg string)
	// WriteBatch writes a batch of count small files, checked against
	// their digests as check says, and returns one error message per file
	// ("" for success); an error ends the session (a malformed batch, or
	// wire.ErrBatchAltered under wire.BatchWhole).
	WriteBatch(p []byte, count int, check wire.BatchCheck) ([]string, error)
}

// tables are the services a session carries: the session dispatches
// requests, data messages and frames to what services registered, and
// knows none of them.
type tables struct {
	mu      sync.RWMutex
	ops     map[string]Handler
	kinds   [256]DataHandler
	frames  [256]FrameHandler
	recv    Receiver
	closers []func()
	values  map[any]any
}

// Handle registers fn for requests of operation op.
func (s *Session) Handle(op string, fn Handler) {
	t := &s.tables
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ops == nil {
		t.ops = map[string]Handler{}
	}
	t.ops[op] = fn
}

// HandleData registers fn for data messages of kind.
func (s *Session) HandleData(kind byte, fn DataHandler) {
	s.tables.mu.Lock()
	s.tables.kinds[kind] = fn
	s.tables.mu.Unlock()
}

// HandleFrame registers fn for control frames of type typ.
func (s *Session) HandleFrame(typ byte, fn FrameHandler) {
	s.tables.mu.Lock()
	s.tables.frames[typ] = fn
	s.tables.mu.Unlock()
}

// SetReceiver makes r write the chunks and batches the peer sends; without
// one they are refused, file by file.
func (s *Session) SetReceiver(r Receiver) {
	s.tables.mu.Lock()
	s.tables.recv = r
	s.tables.mu.Unlock()
}

// OnClose registers fn to run once the session has ended.
func (s *Session) OnClose(fn func()) {
	s.tables.mu.Lock()
	s.tables.closers = append(s.tables.closers, fn)
	s.tables.mu.Unlock()
}

// State returns the session's value for key, made by create on first use:
// the per-session state of a service (its transfers in flight, its open
// runs), which lives and ends with the session. Each service keys it with
// a type of its own.
func (s *Session) State(key any, create func() any) any {
	t := &s.tables
	t.mu.Lock()
	if v, ok := t.values[key]; ok {
		t.mu.Unlock()
		return v
	}
	if t.values == nil {
		t.values = map[any]any{}
	}
	t.mu.Unlock()
	// create may register handlers (which takes the lock): made outside
	// it, and the first one stored wins.
	v := create()
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.values[key]; ok {
		return old
	}
	t.values[key] = v
	return v
}

func (t *tables) data(kind byte) DataHandler {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.kinds[kind]
}

func (t *tables) frame(typ byte) FrameHandler {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.frames[typ]
}

func (t *tables) receiver() Receiver {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.recv
}

// serve runs the handler of r's operation, or refuses r.
func (t *tables) serve(s *Session, r *wire.Req) {
	t.mu.RLock()
	fn, any := t.ops[r.Op], len(t.ops) > 0
	t.mu.RUnlock()
	switch {
	case fn != nil:
		fn(r)
	case !any:
		s.Reply(&wire.Resp{ID: r.ID, Err: "this peer serves no requests", Kind: wire.KindUsage})
	default:
		s.Reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: wire.KindUsage})
	}
}

// closed runs the closers once the session has ended.
func (t *tables) closed() {
	t.mu.Lock()
	fns := t.closers
	t.closers = nil
	t.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Credit makes the flow-control credit of listing request id: the peer
// grants one more entry batch per OpMore; the channel starts with the
// batches a lister may have in flight. DropCredit forgets it.
func (s *Session) Credit(id uint64) chan struct{} {
	c := make(chan struct{}, listCredit)
	for i := 0; i < listCredit; i++ {
		c <- struct{}{}
	}
	s.mu.Lock()
	s.credits[id] = c
	s.mu.Unlock()
	return c
}

// DropCredit forgets the credit of listing request id.
func (s *Session) DropCredit(id uint64) {
	s.mu.Lock()
	delete(s.credits, id)
	s.mu.Unlock()
}

// Track registers a cancellable request of the peer; Untrack ends it.
func (s *Session) Track(id uint64) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	select {
	case <-s.done:
		cancel()
	default:
	}
	return ctx
}

// Untrack ends a request Track registered.
func (s *Session) Untrack(id uint64) {
	s.mu.Lock()
	if c := s.running[id]; c != nil {
		c()
	}
	delete(s.running, id)
	s.mu.Unlock()
}
