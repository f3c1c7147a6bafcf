// Package casnet is the content-addressed store over a session: a Client
// of the peer's store, and Serve, which offers a local store to the peer.
package casnet

// The content-addressed store over a session: requests cas.*, control
// frames fCASFirst..fCASLast and data messages mCASFirst..mCASLast.
//
// Control requests carry their arguments in Req.CAS (wire.CASArgs) and
// their results in Resp.CAS (wire.CASResult):
//
//	cas.has   {ids}      -> {sizes}: each object's size, -1 if absent
//	cas.stat  {}         -> {stats}
//	cas.get   {id, tid}  -> {size}, after the object's bytes were sent as
//	                        mCASGet messages on a data lane
//
// Object bytes travel on the data lanes (one lane per transfer, chosen by
// transfer id, so a transfer's messages arrive in order):
//
//	mCASPut    (5) uvarint tid, u8 flags, uvarint offset, [uvarint size], [32]id, [string msg]; payload
//	mCASPutAck (6) uvarint tid, u8 status (0 ok, 1 corrupt, 2 failed, 3 refused), string msg, [32]id, uvarint size
//	mCASGet    (7) uvarint tid, u8 flags, uvarint offset, [uvarint size], [string msg]; payload
//
// A put is started by the sender with no control request: its first message
// carries the size (when known) and the id the content must hash to (when
// known); the receiver streams the bytes into its store (Store.PutVerified
// with an id, Store.Put without) and answers with one mCASPutAck. A get is a
// cas.get request naming a transfer id the requester allocated; the server
// sends the bytes straight from its pack or object file (sendfile where the
// transport can) and then answers the request. The receiving side always
// verifies: PutVerified for puts and fetches, an on-the-fly BLAKE3 for gets
// into a writer. Transfer ids are allocated from the session's request ids;
// a put's receiver keys it with the top bit set, so the two directions never
// collide.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"

	"lukechampine.com/blake3"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/exitcode"
)

const (
	// casMaxPayload bounds one mCASPut/mCASGet payload.
	casMaxPayload = 4 << 20
	// casMaxPuts bounds the multi-message puts a session receives at once;
	// each holds the store's streaming buffers (16 MiB).
	casMaxPuts = 8
	// casMaxHas bounds the ids of one cas.has request.
	casMaxHas = 16384
	// peerTID marks a transfer id allocated by the peer.
	peerTID = 1 << 63
)

// Client uses the store of the peer at the other end of a session.
type Client struct{ *session.Session }

// NewClient returns a client of the store served at the other end of s.
func NewClient(s *session.Session) *Client { return &Client{s} }

// casState is a session's store bookkeeping: transfers in progress in both
// directions. It lives in the session's call table under casStateKey (a key
// no request id reaches), so that it shares the session's life and lock
// without a field of its own in Session.
type casState struct {
	mu    sync.Mutex
	recvs map[uint64]*casRecv    // incoming bytes: peer's puts (peerTID|tid), our gets (tid)
	acks  map[uint64]chan casAck // our puts waiting for their verdict
	puts  int                    // multi-message puts being received
	slots chan struct{}          // our multi-message puts being sent
	store *cas.Store             // served to the peer (nil: none)
	ro    bool                   // the served store refuses puts
}

// casKey keys a session's casState (Session.State).
type casKey struct{}

// casOf returns the session's store state, registering the store's data
// messages on the session when it is first made.
func casOf(s *session.Session) *casState {
	return s.State(casKey{}, func() any {
		st := &casState{recvs: map[uint64]*casRecv{}, acks: map[uint64]chan casAck{}, slots: make(chan struct{}, casMaxPuts)}
		for k := wire.MsgCASPut; k <= wire.MsgCASGet; k++ {
			s.HandleData(k, st.handle)
		}
		return st
	}).(*casState)
}

// Serve offers store (nil: none; ro: read-only) to the peer of s: the
// cas.* requests and the puts it starts.
func Serve(s *session.Session, store *cas.Store, ro bool) {
	st := casOf(s)
	st.mu.Lock()
	st.store, st.ro = store, ro
	st.mu.Unlock()
	for _, op := range []string{wire.OpCASHas, wire.OpCASStat, wire.OpCASGet} {
		s.Handle(op, func(r *wire.Req) { st.serve(s, r) })
	}
}

func (st *casState) recv(key uint64) *casRecv {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.recvs[key]
}

func (st *casState) dropRecv(key uint64, r *casRecv) {
	st.mu.Lock()
	if st.recvs[key] == r {
		delete(st.recvs, key)
	}
	st.mu.Unlock()
}

// casAck is a put's verdict.
type casAck struct {
	status byte
	msg    string
	id     cas.ID
	size   int64
}

// casRecv receives the bytes of one object into w, in order. Only the lane
// carrying the transfer delivers to it; mu lets the waiting side abandon it
// without racing a delivery in progress.
type casRecv struct {
	mu    sync.Mutex
	w     io.Writer
	end   func(err error) // called once: nil when the bytes are complete
	next  int64
	size  int64 // -1 while unknown
	err   error // first failure; later bytes are dropped
	ended bool
	done  chan struct{} // closed once the transfer ended (not when abandoned)
}

func newCASRecv(w io.Writer, size int64, end func(error)) *casRecv {
	return &casRecv{w: w, end: end, size: size, done: make(chan struct{})}
}

// finish ends the transfer; r.mu is held.
func (r *casRecv) finish(err error) {
	if r.ended {
		return
	}
	r.ended = true
	if r.err == nil {
		r.err = err
	}
	if r.end != nil {
		r.end(r.err)
	}
	close(r.done)
}

// abandon stops deliveries to w; once it returns, w is not written again.
func (r *casRecv) abandon() {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
}

// result returns the bytes received and the failure, once done is closed.
func (r *casRecv) result() (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next, r.err
}

// deliver handles one message of the transfer. An error is a protocol
// violation by the peer.
func (r *casRecv) deliver(off uint64, flags byte, size int64, msg string, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return nil
	}
	if flags&wire.CASAbort != 0 {
		r.finish(fmt.Errorf("the sender gave up: %s", msg))
		return nil
	}
	if flags&wire.CASSize != 0 {
		if r.size >= 0 && r.size != size {
			return fmt.Errorf("transfer announced %d bytes, then %d", r.size, size)
		}
		r.size = size
	}
	if int64(off) != r.next {
		return fmt.Errorf("transfer bytes at offset %d, expected %d", off, r.next)
	}
	r.next += int64(len(p))
	if r.size >= 0 && r.next > r.size {
		return fmt.Errorf("transfer of %d bytes sent %d", r.size, r.next)
	}
	if r.err == nil && len(p) > 0 {
		if _, err := r.w.Write(p); err != nil {
			r.err = err
		}
	}
	if flags&wire.CASLast != 0 {
		if r.size >= 0 && r.next != r.size {
			r.finish(fmt.Errorf("transfer ended after %d of %d bytes", r.next, r.size))
		} else {
			r.finish(nil)
		}
	}
	return nil
}

// casHeader encodes the header of an mCASPut or mCASGet message.
func casHeader(kind byte, tid uint64, flags byte, off, size int64, id *cas.ID, msg string) []byte {
	e := wire.Enc{Buf: make([]byte, 0, 64)}
	e.U8(kind)
	e.Uvar(tid)
	e.U8(flags)
	e.Uvar(uint64(off))
	if flags&wire.CASSize != 0 {
		e.Uvar(uint64(size))
	}
	if flags&wire.CASHasID != 0 {
		e.Raw(id[:])
	}
	if flags&wire.CASAbort != 0 {
		e.Str(msg)
	}
	return e.Buf
}

func casLane(s *session.Session, tid uint64) (*session.Lane, error) {
	if len(s.Lanes()) == 0 {
		return nil, fmt.Errorf("session with %s has no data streams", s.Peer())
	}
	return s.Lanes()[tid%uint64(len(s.Lanes()))], nil
}

// handle handles the store's data messages on lane l.
func (st *casState) handle(l *session.Lane, hdr []byte, n int, buf *[]byte) error {
	d := &wire.Dec{Buf: hdr[1:]}
	switch hdr[0] {
	case wire.MsgCASPut, wire.MsgCASGet:
		tid, flags, off := d.Uvar(), d.U8(), d.Uvar()
		size := int64(-1)
		if flags&wire.CASSize != 0 {
			size = int64(d.Uvar())
		}
		var id *cas.ID
		if flags&wire.CASHasID != 0 {
			id = new(cas.ID)
			copy(id[:], d.Raw(len(id)))
		}
		msg := ""
		if flags&wire.CASAbort != 0 {
			msg = d.Str()
		}
		if d.Err != nil || size < -1 || (flags&wire.CASAbort != 0 && n != 0) || (hdr[0] == wire.MsgCASGet && id != nil) {
			return fmt.Errorf("bad store message (kind %d)", hdr[0])
		}
		p, err := l.Payload(n, casMaxPayload, buf)
		if err != nil {
			return err
		}
		key := tid
		if hdr[0] == wire.MsgCASPut {
			key |= peerTID
		}
		r := st.recv(key)
		if r == nil {
			if hdr[0] == wire.MsgCASPut && flags&wire.CASFirst != 0 && flags&wire.CASAbort == 0 {
				return st.receivePut(l, tid, flags, size, id, p)
			}
			return nil // a transfer given up on this side: drop its bytes
		}
		if flags&wire.CASFirst != 0 && hdr[0] == wire.MsgCASPut {
			return fmt.Errorf("store transfer %d started twice", tid)
		}
		return r.deliver(off, flags, size, msg, p)
	case wire.MsgCASPutAck:
		tid, status, msg := d.Uvar(), d.U8(), d.Str()
		var a casAck
		copy(a.id[:], d.Raw(len(a.id)))
		a.size = int64(d.Uvar())
		if d.Err != nil || n != 0 {
			return errors.New("bad store verdict")
		}
		a.status, a.msg = status, msg
		st.mu.Lock()
		ch := st.acks[tid]
		delete(st.acks, tid)
		st.mu.Unlock()
		if ch != nil {
			ch <- a // buffered: one verdict per put
		}
		return nil
	}
	return fmt.Errorf("unknown data message kind %d", hdr[0])
}

// sendAck answers a peer's put.
func sendAck(l *session.Lane, tid uint64, a casAck) error {
	e := wire.Enc{Buf: make([]byte, 0, 80)}
	e.U8(wire.MsgCASPutAck)
	e.Uvar(tid)
	e.U8(a.status)
	e.Str(a.msg)
	e.Raw(a.id[:])
	e.Uvar(uint64(a.size))
	return l.Send(e.Buf, nil)
}

// ackFor turns the outcome of a put into its verdict.
func ackFor(id cas.ID, size int64, err error) casAck {
	switch {
	case err == nil:
		return casAck{status: wire.CASAckOK, id: id, size: size}
	case errors.Is(err, cas.ErrCorrupt):
		return casAck{status: wire.CASAckCorrupt, msg: err.Error()}
	}
	return casAck{status: wire.CASAckFailed, msg: err.Error()}
}

// receivePut starts receiving a put from the peer. A put that fits one
// message is stored right here; a longer one streams through a pipe into
// the store on its own goroutine, which answers when done.
func (st *casState) receivePut(l *session.Lane, tid uint64, flags byte, size int64, id *cas.ID, p []byte) error {
	st.mu.Lock()
	store, ro := st.store, st.ro
	st.mu.Unlock()
	switch {
	case store == nil:
		return sendAck(l, tid, casAck{status: wire.CASAckRefused, msg: "this peer exposes no content-addressed store (start it with --cas DIR)"})
	case ro:
		return sendAck(l, tid, casAck{status: wire.CASAckRefused, msg: "this peer's store is read-only (--cas-read-only)"})
	}
	if flags&wire.CASLast != 0 {
		if size >= 0 && size != int64(len(p)) {
			return fmt.Errorf("store transfer %d announced %d bytes, sent %d", tid, size, len(p))
		}
		var got cas.ID
		var err error
		if id != nil {
			got, err = *id, store.PutVerified(context.Background(), *id, bytes.NewReader(p))
		} else {
			got, err = store.PutBytes(context.Background(), p)
		}
		return sendAck(l, tid, ackFor(got, int64(len(p)), err))
	}
	st.mu.Lock()
	if st.puts >= casMaxPuts {
		st.mu.Unlock()
		return sendAck(l, tid, casAck{status: wire.CASAckFailed, msg: fmt.Sprintf("too many puts at once (limit %d per session)", casMaxPuts)})
	}
	st.puts++
	pr, pw := io.Pipe()
	key := tid | peerTID
	r := newCASRecv(pw, size, func(err error) { pw.CloseWithError(err) })
	st.recvs[key] = r
	st.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-l.Session().Done():
			// No more bytes will come: unblock the put.
			pw.CloseWithError(fmt.Errorf("session with %s ended", l.Session().Peer()))
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer cancel()
		var got cas.ID
		var n int64
		var err error
		if id != nil {
			got = *id
			err = store.PutVerified(ctx, *id, pr)
			n, _ = r.result()
		} else {
			got, n, err = store.Put(ctx, pr)
		}
		// Whatever happened, later bytes must not block the lane.
		pr.CloseWithError(errors.New("put finished"))
		st.mu.Lock()
		st.puts--
		if st.recvs[key] == r {
			delete(st.recvs, key)
		}
		st.mu.Unlock()
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			l.Session().Log().Debug("store put from peer failed", "peer", l.Session().Peer(), "err", err)
		}
		sendAck(l, tid, ackFor(got, n, err))
	}()
	return r.deliver(0, flags, size, "", p)
}

// serve answers the peer's cas.* requests against the served store.
func (st *casState) serve(s *session.Session, r *wire.Req) {
	st.mu.Lock()
	store := st.store
	st.mu.Unlock()
	if store == nil {
		s.Reply(&wire.Resp{ID: r.ID, Err: "this peer exposes no content-addressed store (start it with --cas DIR)", Kind: wire.KindUsage})
		return
	}
	var a wire.CASArgs
	if r.CAS != nil {
		a = *r.CAS
	}
	switch r.Op {
	case wire.OpCASHas:
		if len(a.IDs) > casMaxHas {
			s.Reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("cas.has: %d ids (limit %d)", len(a.IDs), casMaxHas), Kind: wire.KindUsage})
			return
		}
		res := wire.CASResult{Sizes: make([]int64, len(a.IDs))}
		for i, id := range a.IDs {
			n, err := store.Size(id)
			switch {
			case errors.Is(err, cas.ErrNotFound):
				n = -1
			case err != nil:
				s.Reply(wire.ErrResp(r.ID, err))
				return
			}
			res.Sizes[i] = n
		}
		s.Reply(casReply(r.ID, &res))
	case wire.OpCASStat:
		go func() {
			st, err := store.Stat()
			if err != nil {
				s.Reply(wire.ErrResp(r.ID, err))
				return
			}
			s.Reply(casReply(r.ID, &wire.CASResult{Stats: &st}))
		}()
	case wire.OpCASGet:
		if a.ID == nil || a.TID == 0 {
			s.Reply(&wire.Resp{ID: r.ID, Err: "cas.get: want an id and a transfer id", Kind: wire.KindUsage})
			return
		}
		ctx := s.Track(r.ID)
		go func() {
			defer s.Untrack(r.ID)
			n, err := sendObject(ctx, s, store, *a.ID, a.TID)
			if err != nil {
				resp := wire.ErrResp(r.ID, err)
				if errors.Is(err, cas.ErrNotFound) {
					resp.Kind = wire.KindNotFound
				}
				s.Reply(resp)
				return
			}
			s.Reply(casReply(r.ID, &wire.CASResult{Size: n}))
		}()
	default:
		s.Reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: wire.KindUsage})
	}
}

func casReply(id uint64, res *wire.CASResult) *wire.Resp {
	return &wire.Resp{ID: id, CAS: res}
}

// sendObject sends the bytes of id from store as the answer to the peer's
// cas.get tid, straight from the pack or object file.
func sendObject(ctx context.Context, s *session.Session, store *cas.Store, id cas.ID, tid uint64) (int64, error) {
	loc, err := store.Locate(id)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(loc.Path)
	if err != nil {
		return 0, fmt.Errorf("cas: open %s: %w", loc.Path, err)
	}
	defer f.Close()
	l, err := casLane(s, tid)
	if err != nil {
		return 0, err
	}
	return loc.Length, sendRange(ctx, l, wire.MsgCASGet, tid, f, loc.Offset, loc.Length, nil)
}

// sendRange sends size bytes of f from off as the messages of transfer tid,
// with sendfile where the transport can. If ctx ends first the receiver is
// told the transfer was abandoned.
func sendRange(ctx context.Context, l *session.Lane, kind byte, tid uint64, f *os.File, off, size int64, id *cas.ID) error {
	for pos := int64(0); ; {
		n := min(int64(casMaxPayload), size-pos)
		flags := byte(0)
		if pos == 0 {
			flags |= wire.CASFirst | wire.CASSize
			if id != nil {
				flags |= wire.CASHasID
			}
		}
		if pos+n == size {
			flags |= wire.CASLast
		}
		if err := ctx.Err(); err != nil {
			l.Send(casHeader(kind, tid, wire.CASAbort, pos, 0, nil, err.Error()), nil)
			return err
		}
		hdr := casHeader(kind, tid, flags, pos, size, id, "")
		var err error
		if n == 0 {
			err = l.Send(hdr, nil)
		} else {
			err = l.SendFile(hdr, f, off+pos, int(n))
		}
		if err != nil {
			return err
		}
		pos += n
		if pos == size {
			return nil
		}
	}
}

// CAS errors a caller can test with errors.Is besides cas.ErrNotFound and
// cas.ErrCorrupt.
var (
	// ErrNoStore means the peer exposes no store, or refuses to store.
	ErrNoStore = errors.New("peer store unavailable")
)

// casErr classifies a failed cas.* request for errors.Is.
func casErr(err error, what string) error {
	var re *session.RemoteError
	if errors.As(err, &re) {
		switch re.Kind {
		case wire.KindNotFound:
			return fmt.Errorf("%s on %s: %w", what, re.Peer, cas.ErrNotFound)
		case wire.KindUsage:
			return exitcode.WithCode(exitcode.Usage, fmt.Errorf("%s on %s: %s: %w", what, re.Peer, re.Msg, ErrNoStore))
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (s *Client) casCall(ctx context.Context, op string, a *wire.CASArgs) (*wire.CASResult, error) {
	resp, err := s.Call(ctx, &wire.Req{Op: op, CAS: a})
	if err != nil {
		return nil, err
	}
	if resp.CAS == nil {
		return &wire.CASResult{}, nil
	}
	return resp.CAS, nil
}

// Has asks which of ids the peer's store holds: the size of each, or -1
// where it is absent.
func (s *Client) Has(ctx context.Context, ids []cas.ID) ([]int64, error) {
	out := make([]int64, 0, len(ids))
	for len(ids) > 0 {
		part := ids[:min(len(ids), casMaxHas)]
		ids = ids[len(part):]
		res, err := s.casCall(ctx, wire.OpCASHas, &wire.CASArgs{IDs: part})
		if err != nil {
			return nil, casErr(err, "cas has")
		}
		if len(res.Sizes) != len(part) {
			return nil, exitcode.Peerf("peer %s: cas.has answered %d sizes for %d ids", s.Peer(), len(res.Sizes), len(part))
		}
		out = append(out, res.Sizes...)
	}
	return out, nil
}

// Stat returns the statistics of the peer's store.
func (s *Client) Stat(ctx context.Context) (cas.Stats, error) {
	res, err := s.casCall(ctx, wire.OpCASStat, &wire.CASArgs{})
	if err != nil {
		return cas.Stats{}, casErr(err, "cas stat")
	}
	if res.Stats == nil {
		return cas.Stats{}, exitcode.Peerf("peer %s: cas.stat answered no statistics", s.Peer())
	}
	return *res.Stats, nil
}

// Get writes the object id from the peer's store to w, verifying it on
// the fly: if the bytes do not hash to id the error wraps cas.ErrCorrupt,
// and what w received must be discarded (as with cas.Store.Get). An absent
// object gives an error wrapping cas.ErrNotFound before anything is
// written.
func (s *Client) Get(ctx context.Context, id cas.ID, w io.Writer) (int64, error) {
	h := blake3.New(32, nil)
	n, err := s.casGet(ctx, id, io.MultiWriter(h, w))
	if err != nil {
		return n, err
	}
	var got cas.ID
	h.Sum(got[:0])
	if got != id {
		return n, fmt.Errorf("cas get %s from %s: content hashes to %s: %w", id, s.Peer(), got, cas.ErrCorrupt)
	}
	return n, nil
}

// Fetch copies the object id from the peer's store into store, which
// verifies it (cas.Store.PutVerified) before keeping it. An object store
// already holds is not fetched.
func (s *Client) Fetch(ctx context.Context, id cas.ID, store *cas.Store) error {
	if ok, err := store.Has(id); err != nil {
		return err
	} else if ok {
		return nil
	}
	pr, pw := io.Pipe()
	putErr := make(chan error, 1)
	go func() {
		err := store.PutVerified(ctx, id, pr)
		pr.CloseWithError(errors.New("put finished"))
		putErr <- err
	}()
	_, err := s.casGet(ctx, id, pw)
	pw.CloseWithError(err)
	perr := <-putErr
	if err != nil {
		return err
	}
	if perr != nil {
		if errors.Is(perr, cas.ErrCorrupt) {
			return fmt.Errorf("cas fetch %s from %s: %w", id, s.Peer(), perr)
		}
		return fmt.Errorf("cas fetch %s from %s: %w", id, s.Peer(), perr)
	}
	return nil
}

// casGet receives the bytes of id into w, unverified.
func (s *Client) casGet(ctx context.Context, id cas.ID, w io.Writer) (int64, error) {
	st := casOf(s.Session)
	tid := s.NewID()
	r := newCASRecv(w, -1, nil)
	st.mu.Lock()
	st.recvs[tid] = r
	st.mu.Unlock()
	defer st.dropRecv(tid, r)
	defer r.abandon()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		res *wire.CASResult
		err error
	}
	callDone := make(chan result, 1)
	go func() {
		res, err := s.casCall(cctx, wire.OpCASGet, &wire.CASArgs{ID: &id, TID: tid})
		callDone <- result{res, err}
	}()
	// The answer follows the bytes but travels on the control connection,
	// so it may arrive first: wait for both.
	var answer *wire.CASResult
	bytesDone := r.done
	for answer == nil || bytesDone != nil {
		select {
		case c := <-callDone:
			if c.err != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				return 0, casErr(c.err, "cas get "+id.String())
			}
			answer, callDone = c.res, nil
		case <-bytesDone:
			if n, err := r.result(); err != nil {
				return n, fmt.Errorf("cas get %s from %s: %w", id, s.Peer(), err)
			}
			bytesDone = nil
		case <-s.Done():
			return 0, s.EndErr()
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	n, _ := r.result()
	if n != answer.Size {
		return n, exitcode.Peerf("cas get %s from %s: received %d bytes, peer sent %d", id, s.Peer(), n, answer.Size)
	}
	return n, nil
}

// SendFile stores size bytes of f from offset off in the peer's store,
// sending them with sendfile where the transport can (no copy through this
// process). If id is non-nil the peer stores the bytes only if they hash to
// it (an error wrapping cas.ErrCorrupt otherwise); if nil, the peer's id is
// returned unchecked, so callers that need the id verified end to end
// should pass it.
func (s *Client) SendFile(ctx context.Context, f *os.File, off, size int64, id *cas.ID) (cas.ID, error) {
	return s.casPut(ctx, id, func(ctx context.Context, l *session.Lane, tid uint64) error {
		return sendRange(ctx, l, wire.MsgCASPut, tid, f, off, size, id)
	}, size > casMaxPayload)
}

// SendObject copies the object id from store to the peer's store, from
// the object's pack or standalone file with sendfile where the transport
// can. The peer verifies the bytes against id. An object larger than a
// packed one is first looked up on the peer and not sent if present.
func (s *Client) SendObject(ctx context.Context, store *cas.Store, id cas.ID) error {
	loc, err := store.Locate(id)
	if err != nil {
		return err
	}
	if !loc.Packed {
		sizes, err := s.Has(ctx, []cas.ID{id})
		if err != nil {
			return err
		}
		if sizes[0] == loc.Length {
			return nil
		}
	}
	f, err := os.Open(loc.Path)
	if err != nil {
		return fmt.Errorf("cas send %s: %w", id, err)
	}
	defer f.Close()
	_, err = s.SendFile(ctx, f, loc.Offset, loc.Length, &id)
	if errors.Is(err, cas.ErrCorrupt) {
		return fmt.Errorf("%w (the local copy may be damaged: run xfer cas verify)", err)
	}
	return err
}

// PutReader stores the content read from r in the peer's store and
// returns its id and size. The content is hashed here while it is sent, and
// the peer's id must match, so the returned id is verified end to end. If id
// is non-nil the peer also refuses content that does not hash to it.
func (s *Client) PutReader(ctx context.Context, r io.Reader, id *cas.ID) (cas.ID, int64, error) {
	h := blake3.New(32, nil)
	var sent int64
	got, err := s.casPut(ctx, id, func(ctx context.Context, l *session.Lane, tid uint64) error {
		buf := make([]byte, casMaxPayload)
		for pos := int64(0); ; {
			k, rerr := io.ReadFull(r, buf)
			last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
			if rerr != nil && !last {
				l.Send(casHeader(wire.MsgCASPut, tid, wire.CASAbort, pos, 0, nil, "read failed"), nil)
				return fmt.Errorf("cas put: read: %w", rerr)
			}
			if err := ctx.Err(); err != nil {
				l.Send(casHeader(wire.MsgCASPut, tid, wire.CASAbort, pos, 0, nil, err.Error()), nil)
				return err
			}
			flags := byte(0)
			if pos == 0 {
				flags |= wire.CASFirst
				if id != nil {
					flags |= wire.CASHasID
				}
				if last {
					flags |= wire.CASSize
				}
			}
			if last {
				flags |= wire.CASLast
			}
			h.Write(buf[:k])
			if err := l.Send(casHeader(wire.MsgCASPut, tid, flags, pos, int64(k), id, ""), buf[:k]); err != nil {
				return err
			}
			pos += int64(k)
			sent = pos
			if last {
				return nil
			}
		}
	}, true)
	if err != nil {
		return cas.ID{}, sent, err
	}
	var mine cas.ID
	h.Sum(mine[:0])
	if got != mine {
		return cas.ID{}, sent, fmt.Errorf("cas put to %s: peer stored %s but the content hashes to %s (damaged in transit): %w", s.Peer(), got, mine, cas.ErrCorrupt)
	}
	return got, sent, nil
}

// casPut runs one put: send transmits the bytes on the chosen lane, and the
// peer's verdict is awaited. A put of several messages takes one of the
// session's put slots, matching the receiver's limit. casPut returns only
// once send has returned, so the caller may then close what send reads.
func (s *Client) casPut(ctx context.Context, id *cas.ID, send func(ctx context.Context, l *session.Lane, tid uint64) error, long bool) (cas.ID, error) {
	st := casOf(s.Session)
	if long {
		select {
		case st.slots <- struct{}{}:
			defer func() { <-st.slots }()
		case <-ctx.Done():
			return cas.ID{}, ctx.Err()
		case <-s.Done():
			return cas.ID{}, s.EndErr()
		}
	}
	tid := s.NewID()
	l, err := casLane(s.Session, tid)
	if err != nil {
		return cas.ID{}, err
	}
	ch := make(chan casAck, 1)
	st.mu.Lock()
	st.acks[tid] = ch
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.acks, tid)
		st.mu.Unlock()
	}()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sendErr := make(chan error, 1)
	go func() { sendErr <- send(sctx, l, tid) }()
	var (
		a       casAck
		got     bool
		sending = true
		fail    error
	)
	for fail == nil && (!got || sending) {
		select {
		case err := <-sendErr:
			sending = false
			if err != nil && !got {
				fail = err
			}
		case a = <-ch:
			got = true
			if a.status != wire.CASAckOK && sending {
				stop() // refused early: stop sending
			}
		case <-s.Done():
			fail = s.EndErr()
		case <-ctx.Done():
			fail = ctx.Err()
		}
	}
	if sending {
		stop()
		<-sendErr
	}
	if fail != nil {
		return cas.ID{}, fail
	}
	switch a.status {
	case wire.CASAckOK:
		if id != nil && a.id != *id {
			return cas.ID{}, exitcode.Peerf("cas put to %s: peer stored %s, not %s", s.Peer(), a.id, *id)
		}
		return a.id, nil
	case wire.CASAckCorrupt:
		return cas.ID{}, fmt.Errorf("cas put to %s: peer refused the content: %s: %w", s.Peer(), a.msg, cas.ErrCorrupt)
	case wire.CASAckRefused:
		return cas.ID{}, exitcode.WithCode(exitcode.Usage, fmt.Errorf("cas put to %s: %s: %w", s.Peer(), a.msg, ErrNoStore))
	}
	return cas.ID{}, fmt.Errorf("cas put to %s: %s", s.Peer(), a.msg)
}
