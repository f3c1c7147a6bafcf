package session

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/internal/ratelimit"
	"github.com/xfer-io/xfer/plan"
)

// Session is one authenticated connection between two xfer peers: a control
// connection carrying framed requests in both directions, and the data
// streams of the negotiated transport. Either side may issue requests and
// either side may receive files, so the same type serves `xfer serve`, a
// client pushing files, and a client receiving a pull.
type Session struct {
	peer string // address of the other side, for messages
	conn net.Conn
	fr   *wire.FrameReader
	wmu  sync.Mutex
	id   string
	key  []byte
	// keys are derived from key for the frame MACs and ticket sealing.
	keys sessionKeys
	// ctlOut and ctlIn authenticate control frames after the handshake
	// when the control connection is not inside TLS (nil when it is).
	ctlOut, ctlIn *streamMAC
	// dataMAC: the data streams are not inside TLS, so their messages
	// carry tags too.
	dataMAC bool
	// verify: receivers check every chunk and small file against its
	// BLAKE3 digest, as negotiated in the handshake (always with dataMAC).
	verify     bool
	transport  string
	reason     string   // why this transport was chosen
	candidates []string // transports both ends could have used (Dial side)
	peerCapped bool     // the server paces its data streams (Dial side)
	// peerXattrs is what the peer said in the handshake it can store of
	// extended attributes (nil: not said).
	peerXattrs *wire.XattrSupport
	log        *slog.Logger
	idle       time.Duration

	// tables are the services registered on this session (Handle,
	// HandleData, HandleFrame, SetReceiver, OnClose).
	tables tables
	lanes  []*Lane

	nextID  atomic.Uint64
	mu      sync.Mutex
	calls   map[uint64]*call
	running map[uint64]context.CancelFunc // requests being served
	credits map[uint64]chan struct{}      // listings being served: their credit

	reqs     chan queuedReq
	readDone chan struct{} // closed when readLoop has returned
	// mem is the session's receive budget (payloads, large frames,
	// queued requests); ended stops waits for it when the session ends.
	mem   *sessionMem
	ended context.CancelCauseFunc
	// lostErr, once a data stream failed, is the cause the session ends
	// with unless the control connection brings the peer's own reason
	// (an abort frame) by lostBy. Guarded by mu.
	lostErr   error
	lostBy    time.Time
	closeOnce sync.Once
	done      chan struct{}
	err       error // why the session ended, set before done closes
}

// call is an outstanding request of ours.
type call struct {
	resp    chan *wire.Resp
	entries chan []plan.Entry // list: batches, bounded by the credit we give
	events  progress.Sink     // job: relayed events
}

// listCredit is how many entry batches a lister may have in flight; the
// receiving side's channel holds exactly that many, so the control reader
// never blocks on a slow consumer.
const listCredit = 4

func newSession(conn net.Conn, fr *wire.FrameReader, log *slog.Logger, idle time.Duration) *Session {
	if idle <= 0 {
		idle = wire.DefaultIdleTimeout
	}
	life, ended := context.WithCancelCause(context.Background())
	mem := newSessionMem(life, nil, DefaultMaxSessionMemory)
	fr.Mem = mem
	return &Session{
		mem:      mem,
		ended:    ended,
		peer:     conn.RemoteAddr().String(),
		conn:     conn,
		fr:       fr,
		log:      log,
		idle:     idle,
		calls:    map[uint64]*call{},
		running:  map[uint64]context.CancelFunc{},
		credits:  map[uint64]chan struct{}{},
		reqs:     make(chan queuedReq, 64),
		readDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// shareMemory makes the session's receive budget limit bytes of pool (a
// server's pool, shared by its sessions). Called before the session starts.
func (s *Session) shareMemory(pool *memPool, limit int64) {
	s.mem = newSessionMem(s.mem.ctx, pool, limit)
	s.fr.Mem = s.mem
}

// secure installs the session key and turns on message authentication
// where the connections are not inside TLS. dialer is true on the side
// that opened the control connection.
func (s *Session) secure(key []byte, dialer, controlMAC, dataMAC bool) {
	s.key = key
	s.keys = deriveSessionKeys(key, dialer)
	if controlMAC {
		s.ctlOut, s.ctlIn = newStreamMAC(s.keys.ctlSend), newStreamMAC(s.keys.ctlRecv)
		s.fr.Max += wire.TagLen
	}
	s.dataMAC = dataMAC
}

// writeFrameLocked writes one control frame, with its tag when control
// frames are authenticated. The caller holds wmu, or owns the connection
// during set-up.
func (s *Session) writeFrameLocked(typ byte, payload []byte) error {
	if s.ctlOut == nil {
		return wire.WriteFrame(s.conn, typ, payload)
	}
	b := make([]byte, wire.FrameHeaderLen, wire.FrameHeaderLen+len(payload)+wire.TagLen)
	b[0] = typ
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)+wire.TagLen))
	b = append(b, payload...)
	b = s.ctlOut.controlTag(b, typ, payload)
	_, err := s.conn.Write(b)
	return err
}

// readFrame reads the next control frame and checks its tag. The payload
// is valid until the next call.
func (s *Session) readFrame() (byte, []byte, error) {
	typ, p, err := s.fr.Read()
	if err != nil || s.ctlIn == nil {
		return typ, p, err
	}
	if len(p) < wire.TagLen {
		return 0, nil, errIntegrity
	}
	body, tag := p[:len(p)-wire.TagLen], p[len(p)-wire.TagLen:]
	s.ctlIn.begin()
	s.ctlIn.write([]byte{typ})
	s.ctlIn.write(body)
	if !s.ctlIn.check(tag) {
		return 0, nil, errIntegrity
	}
	return typ, body, nil
}

// Transport is the name of the data transport in use.
func (s *Session) Transport() string { return s.transport }

// TransportReason says why the transport was chosen (fallbacks).
func (s *Session) TransportReason() string { return s.reason }

// carrier is what a data stream may tell about the links beneath it; the
// rdma backend names the UCX transports of its endpoint's lanes.
type carrier interface {
	// Transports names, in UCX's order, the transports the stream's
	// endpoint runs over (posix, sysv, tcp, rc_mlx5, ...).
	Transports() []string
}

// Carriers names the transports beneath the data streams where the
// transport can say (UCX's lanes for rdma: sysv and posix on one host, tcp
// or verbs across hosts), nil otherwise.
func (s *Session) Carriers() []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range s.lanes {
		c, ok := l.st.(carrier)
		if !ok {
			continue
		}
		for _, t := range c.Transports() {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// Candidates lists the transports both ends could have used for this
// session, this side's most preferred first: what `--proto auto` may
// measure (see transfer/protoprobe). The slice is the caller's.
func (s *Session) Candidates() []string { return append([]string(nil), s.candidates...) }

// PeerCapped reports whether the server said in its welcome that it
// paces its data streams (serve --bwlimit).
func (s *Session) PeerCapped() bool { return s.peerCapped }

// SetTransportReason replaces the reason the transport was chosen, for
// the caller that chose it by measurement. Call it before the session
// is shared.
func (s *Session) SetTransportReason(r string) { s.reason = r }

// Peer is the address of the other side.
func (s *Session) Peer() string { return s.peer }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended (nil while it runs).
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// start runs the session's loops once the handshake and the transport
// set-up are complete.
func (s *Session) start() {
	go s.readLoop()
	go s.pingLoop()
	go s.serveLoop()
	for _, l := range s.lanes {
		go l.readLoop()
	}
}

// Close ends the session and everything blocked on it.
func (s *Session) Close() error {
	s.fail(errors.New("session closed"))
	return nil
}

// lostGrace is how long a session whose data stream broke waits for the
// peer's reason on the control connection before it ends with its own.
const lostGrace = time.Second

// laneLost ends the session because a data stream broke (the peer closed
// it, or writing to it failed). The peer may have closed it on purpose
// after sending its reason on the control connection: the control reader
// gets a moment to read it, so the user learns why.
func (s *Session) laneLost(err error) {
	s.mu.Lock()
	if s.lostErr == nil {
		s.lostErr, s.lostBy = err, time.Now().Add(lostGrace)
	}
	s.mu.Unlock()
	s.conn.SetReadDeadline(time.Now().Add(lostGrace))
}

// breaking reports whether a data stream broke and the session is about to
// end with it.
func (s *Session) Breaking() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostErr != nil
}

// readDeadline is the next control read's deadline: the idle timeout, or
// what remains of the grace after a data stream broke.
func (s *Session) readDeadline() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lostErr != nil {
		return s.lostBy, s.lostErr
	}
	return time.Now().Add(s.idle), nil
}

// abort ends the session for a protocol error found here, telling the
// peer why first (briefly: a peer that does not read is not waited for).
func (s *Session) abort(err error) {
	sent := make(chan struct{})
	go func() {
		b, _ := wire.Encode(wire.AbortMsg{Error: err.Error()})
		s.SendFrame(wire.FrameAbort, b)
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(lostGrace):
	case <-s.done:
	}
	s.fail(err)
}

// PeerAbortError is the cause of a session the peer ended because of an
// error it found (such as a message that failed its integrity check).
type PeerAbortError struct {
	Peer string
	Msg  string
}

func (e *PeerAbortError) Error() string {
	return fmt.Sprintf("%s ended the session: %s", e.Peer, e.Msg)
}

func (s *Session) fail(err error) {
	s.closeOnce.Do(func() {
		s.err = err
		close(s.done)
		s.ended(err)
		s.conn.Close()
		for _, l := range s.lanes {
			l.close(err)
		}
		s.mu.Lock()
		for _, c := range s.running {
			c()
		}
		s.mu.Unlock()
	})
}

func (s *Session) Send(typ byte, m wire.Message) error {
	b, err := wire.Encode(m)
	if err != nil {
		return err
	}
	return s.SendFrame(typ, b)
}

func (s *Session) SendFrame(typ byte, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.done:
		return s.EndErr()
	default:
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.idle))
	if err := s.writeFrameLocked(typ, payload); err != nil {
		s.fail(fmt.Errorf("writing to %s: %w", s.peer, err))
		return s.EndErr()
	}
	return nil
}

func (s *Session) EndErr() error {
	<-s.done
	return exitcode.WithCode(exitcode.Peer, &LostError{Peer: s.peer, Err: s.err})
}

// LostError means an established session ended unexpectedly: a transient
// failure that a rerun (resuming partial files) may overcome.
type LostError struct {
	Peer string
	Err  error
}

func (e *LostError) Error() string { return fmt.Sprintf("connection to %s lost: %v", e.Peer, e.Err) }
func (e *LostError) Unwrap() error { return e.Err }

func (s *Session) pingLoop() {
	t := time.NewTicker(s.idle / 3)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.SendFrame(wire.FramePing, nil)
		}
	}
}

// readLoop reads control frames until the connection ends. It never blocks
// on a consumer: responses go to buffered channels, entry batches are
// bounded by credit, requests queue for serveLoop.
func (s *Session) readLoop() {
	defer close(s.readDone)
	defer s.fr.Release()
	for {
		dl, lost := s.readDeadline()
		s.conn.SetReadDeadline(dl)
		typ, p, err := s.readFrame()
		if err != nil {
			switch {
			case errors.Is(err, errIntegrity):
				s.abort(fmt.Errorf("protocol error from %s: %w", s.peer, err))
				return
			case lost != nil:
				err = lost
			case errors.Is(err, io.EOF):
				err = errors.New("peer closed the connection")
			default:
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					err = fmt.Errorf("peer silent for %s", s.idle)
				}
			}
			s.fail(err)
			return
		}
		if typ == wire.FrameAbort {
			var m wire.AbortMsg
			wire.Decode(p, &m)
			s.fail(&PeerAbortError{Peer: s.peer, Msg: m.Error})
			return
		}
		if err := s.dispatch(typ, p); err != nil {
			s.abort(fmt.Errorf("protocol error from %s: %w", s.peer, err))
			return
		}
	}
}

// callOf is the call waiting for what the peer sends for request id (nil if
// none), forgotten once answered when answered is set.
func (s *Session) callOf(id uint64, answered bool) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	if answered {
		delete(s.calls, id)
	}
	return c
}

func (s *Session) dispatch(typ byte, p []byte) error {
	switch typ {
	case wire.FramePing:
		return nil
	case wire.FrameResp:
		var r wire.Resp
		if err := wire.Decode(p, &r); err != nil {
			return fmt.Errorf("bad response: %w", err)
		}
		if c := s.callOf(r.ID, true); c != nil {
			c.resp <- &r
		}
		return nil
	case wire.FrameEntries:
		id, batch, err := wire.DecodeEntries(p)
		if err != nil {
			return err
		}
		c := s.callOf(id, false)
		if c == nil || c.entries == nil {
			return nil // cancelled listing
		}
		select {
		case c.entries <- batch:
			return nil
		default:
			return errors.New("peer sent entries beyond its credit")
		}
	case wire.FrameEvent:
		var ev wire.EventMsg
		if err := wire.Decode(p, &ev); err != nil {
			return fmt.Errorf("bad event: %w", err)
		}
		if c := s.callOf(ev.ID, false); c != nil && c.events != nil {
			c.events.Emit(ev.Event)
		}
		return nil
	case wire.FrameReq:
		var r wire.Req
		if err := wire.Decode(p, &r); err != nil {
			return fmt.Errorf("bad request: %w", err)
		}
		switch r.Op {
		case wire.OpMore:
			s.mu.Lock()
			c := s.runningCredit(r.Ref)
			s.mu.Unlock()
			if c != nil {
				select {
				case c <- struct{}{}:
				default:
				}
			}
			return nil
		case wire.OpCancel:
			s.mu.Lock()
			if c := s.running[r.Ref]; c != nil {
				c()
			}
			s.mu.Unlock()
			return nil
		}
		// A decoded request holds about as much memory as its frame
		// until it is served: counted against the budget, so a peer
		// cannot queue more than that.
		cost := int64(len(p))
		if err := s.mem.reserve(cost); err != nil {
			return fmt.Errorf("request %d: %w", r.ID, err)
		}
		select {
		case s.reqs <- queuedReq{&r, cost}:
		case <-s.done:
			s.mem.unreserve(cost)
		}
		return nil
	}
	if fn := s.tables.frame(typ); fn != nil {
		return fn(p)
	}
	return fmt.Errorf("unexpected frame type %d", typ)
}

// queuedReq is a request waiting for serveLoop, with the memory it was
// counted for.
type queuedReq struct {
	r    *wire.Req
	cost int64
}

// credits of listings being served, keyed by request id.
func (s *Session) runningCredit(id uint64) chan struct{} {
	return s.credits[id]
}

// serveLoop runs the peer's requests. Quick local operations run in order
// here; listings and jobs run in their own goroutines.
func (s *Session) serveLoop() {
	for {
		select {
		case <-s.done:
			s.tables.closed()
			<-s.readDone // nothing is queued after this
			for {
				select {
				case q := <-s.reqs:
					s.mem.unreserve(q.cost)
				default:
					return
				}
			}
		case q := <-s.reqs:
			r := q.r
			s.tables.serve(s, r)
			s.mem.unreserve(q.cost)
		}
	}
}

func (s *Session) Reply(r *wire.Resp) {
	s.Send(wire.FrameResp, r)
}

// call sends a request and waits for its response.
func (s *Session) Call(ctx context.Context, r *wire.Req) (*wire.Resp, error) {
	c := &call{resp: make(chan *wire.Resp, 1)}
	return s.roundTrip(ctx, r, c)
}

func (s *Session) roundTrip(ctx context.Context, r *wire.Req, c *call) (*wire.Resp, error) {
	r.ID = s.nextID.Add(1)
	s.mu.Lock()
	s.calls[r.ID] = c
	s.mu.Unlock()
	if err := s.Send(wire.FrameReq, r); err != nil {
		return nil, err
	}
	select {
	case resp := <-c.resp:
		if resp.Err != "" {
			return resp, respError(s.peer, resp)
		}
		return resp, nil
	case <-s.done:
		return nil, s.EndErr()
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.calls, r.ID)
		s.mu.Unlock()
		s.Send(wire.FrameReq, &wire.Req{Op: wire.OpCancel, Ref: r.ID})
		return nil, ctx.Err()
	}
}

// RemoteError is an error reported by the peer.
type RemoteError struct {
	Peer string
	Kind string
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

func respError(peer string, r *wire.Resp) error {
	err := &RemoteError{Peer: peer, Kind: r.Kind, Msg: r.Err}
	switch r.Kind {
	case wire.KindUsage, wire.KindNotFound, wire.KindEscape, wire.KindReadOnly:
		return exitcode.WithCode(exitcode.Usage, err)
	case wire.KindPeer:
		return exitcode.WithCode(exitcode.Peer, err)
	case wire.KindRefused:
		return exitcode.WithCode(exitcode.Refused, err)
	case wire.KindMaxTransfer:
		return exitcode.WithCode(exitcode.MaxTransfer, err)
	}
	return err
}

// listN streams the peer's listing of path, its walk reading checkers
// directories at once (0: the peer's default).
func (s *Session) List(ctx context.Context, path string, checksum bool, checkers int) *Lister {
	return s.list(&wire.Req{Op: wire.OpList, Path: path, Checksum: checksum, Checkers: checkers})
}

// ListDir streams the peer's listing of the directory path alone: its
// direct entries, nothing beneath them (one directory read).
func (s *Session) ListDir(ctx context.Context, path string, checkers int) *Lister {
	return s.list(&wire.Req{Op: wire.OpList, Path: path, Checkers: checkers, Shallow: true})
}

// list sends the listing request r and returns the Lister of its answer.
func (s *Session) list(r *wire.Req) *Lister {
	c := &call{resp: make(chan *wire.Resp, 1), entries: make(chan []plan.Entry, listCredit)}
	l := &Lister{s: s, c: c}
	r.ID = s.nextID.Add(1)
	l.id = r.ID
	s.mu.Lock()
	s.calls[r.ID] = c
	s.mu.Unlock()
	if err := s.Send(wire.FrameReq, r); err != nil {
		l.err = err
	}
	return l
}

// remoteLister is a plan.Lister over a peer's listing.
type Lister struct {
	s     *Session
	c     *call
	id    uint64
	batch []plan.Entry
	i     int
	err   error
	done  bool
}

func (l *Lister) Next(ctx context.Context) (plan.Entry, error) {
	for {
		if l.err != nil {
			return plan.Entry{}, l.err
		}
		if l.i < len(l.batch) {
			l.i++
			return l.batch[l.i-1], nil
		}
		if l.done {
			return plan.Entry{}, io.EOF
		}
		select {
		case b := <-l.c.entries:
			l.batch, l.i = b, 0
			// Grant credit for one more batch now that this one is ours.
			if err := l.s.Send(wire.FrameReq, &wire.Req{Op: wire.OpMore, Ref: l.id}); err != nil {
				l.err = err
			}
			continue
		default:
		}
		select {
		case b := <-l.c.entries:
			l.batch, l.i = b, 0
			if err := l.s.Send(wire.FrameReq, &wire.Req{Op: wire.OpMore, Ref: l.id}); err != nil {
				l.err = err
			}
		case r := <-l.c.resp:
			// The response follows the last batch on the same connection,
			// so anything still buffered comes first.
			for {
				select {
				case b := <-l.c.entries:
					l.batch = append(l.batch[l.i:], b...)
					l.i = 0
					continue
				default:
				}
				break
			}
			l.done = true
			if r.Err != "" {
				l.err = respError(l.s.peer, r)
			}
		case <-l.s.done:
			l.err = l.s.EndErr()
		case <-ctx.Done():
			l.err = ctx.Err()
			l.s.Send(wire.FrameReq, &wire.Req{Op: wire.OpCancel, Ref: l.id})
		}
	}
}

// sessionProof is the HMAC a data connection presents to join session id.
func sessionProof(key []byte, id string, stream int) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "xfer-data\x00%s\x00%d", id, stream)
	return hex.EncodeToString(m.Sum(nil))
}

// openTransport sets up the session's data lanes with transport t.
// Its streams are paced by bw (nil: not paced).
func (s *Session) openTransport(ctx context.Context, t backends.Transport, rv backends.Rendezvous, p backends.Params, bw *ratelimit.Bandwidth) error {
	streams, err := t.Open(ctx, rv, p)
	if err != nil {
		return fmt.Errorf("setting up %s transport with %s: %w", t.Name(), s.peer, err)
	}
	for i, st := range streams {
		s.lanes = append(s.lanes, newLane(s, i, bw.Wrap(st)))
	}
	return nil
}

// controlRendezvous exchanges transport blobs over the control connection
// before the session's loops start.
type controlExchange struct{ s *Session }

func (x controlExchange) Exchange(ctx context.Context, blob []byte) ([]byte, error) {
	if err := x.s.writeFrameLocked(wire.FrameExchange, blob); err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		x.s.conn.SetReadDeadline(dl)
		defer x.s.conn.SetReadDeadline(time.Time{})
	}
	typ, p, err := x.s.readFrame()
	if err != nil {
		return nil, err
	}
	if typ != wire.FrameExchange {
		return nil, fmt.Errorf("expected transport exchange, got frame type %d", typ)
	}
	return append([]byte(nil), p...), nil
}

// Lanes are the session's data streams, in stream order.
func (s *Session) Lanes() []*Lane { return s.lanes }

// IdleTimeout is how long the session waits for a silent peer.
func (s *Session) IdleTimeout() time.Duration { return s.idle }

// Log is the session's logger.
func (s *Session) Log() *slog.Logger { return s.log }

// PeerXattrs is what the peer said in the handshake it can store of
// extended attributes where it receives; nil when it did not say.
func (s *Session) PeerXattrs() *wire.XattrSupport { return s.peerXattrs }

// Verifies says whether receivers on this session check every chunk and
// small file against its digest (negotiated in the handshake).
func (s *Session) Verifies() bool { return s.verify }

// NewID allocates an id unique in the session among request ids and the
// transfer ids services allocate from the same counter.
func (s *Session) NewID() uint64 { return s.nextID.Add(1) }

// SealTicket seals t for the peer of this session.
func (s *Session) SealTicket(t Ticket) (*wire.SealedTicket, error) { return s.keys.sealTicket(t) }

// OpenTicket opens a ticket the peer sealed for this session.
func (s *Session) OpenTicket(st *wire.SealedTicket) (Ticket, error) { return s.keys.openTicket(st) }

// CallEvents sends a request whose progress events go to sink while it
// runs (a job), and waits for its response.
func (s *Session) CallEvents(ctx context.Context, r *wire.Req, sink progress.Sink) (*wire.Resp, error) {
	return s.roundTrip(ctx, r, &call{resp: make(chan *wire.Resp, 1), events: sink})
}
