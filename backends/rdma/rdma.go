//go:build rdma && cgo

package rdma

/*
#cgo pkg-config: ucx
#include <stdlib.h>
#include "ucx.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/xfer-io/xfer/backends"
)

const (
	// InlineMax is the largest payload copied through the registered
	// message slots; larger payloads move zero-copy as bulk fragments.
	InlineMax = 256 << 10
	// FragSize is the most payload one bulk tagged message carries. Larger
	// payloads are cut into fragments of this size, so a reader taking
	// the payload in pieces needs a bounce buffer of at most FragSize.
	FragSize = 4 << 20

	// Registered slots of one stream, in this order: a ring of message
	// slots in flight for messages of any size, a window of message
	// receives posted ahead, a ring of bulk slots for SendFile, one bulk
	// bounce buffer for partial reads, and a ring of small message slots
	// in flight for messages that fit smallSlot.
	msgSendSlots  = 8
	msgRecvSlots  = 8
	bulkSendSlots = 2
	smallSlots    = 128 // at least maxSyncs*syncUnits: the ring must not narrow the window

	msgHdr    = 16
	msgSlot   = msgHdr + backends.MaxHeader + InlineMax
	smallSlot = 8 << 10
	recvBase  = msgSendSlots
	bulkBase  = recvBase + msgRecvSlots
	bounce    = bulkBase + bulkSendSlots
	smallBase = bounce + 1
	nSlots    = smallBase + smallSlots

	// closeTimeout bounds how long Close waits for messages already sent
	// to be taken by the peer before it tears the endpoint down.
	closeTimeout = 5 * time.Second
	// openTimeout bounds the connection check of Open when ctx has no
	// deadline of its own.
	openTimeout = 30 * time.Second
	// waitSlice is how long one cgo wait lasts before Open re-checks ctx.
	waitSlice = 50 // ms
)

// Message kinds, first byte of the 16-byte header of every message.
const (
	kindMsg   = 1 // hdr, then the payload inline or as bulk fragments
	kindHello = 2 // connection check sent by Open
	kindFin   = 3 // orderly close: no more messages
	flagBulk  = 1 // second byte: the payload follows as bulk fragments
)

// Tags: stream index in the top 16 bits, then the class (0: messages
// through slots, 1: bulk fragments), then a 47-bit sequence number.
func tag(idx int, bulk bool, seq uint64) C.uint64_t {
	t := uint64(idx)<<48 | seq&(1<<47-1)
	if bulk {
		t |= 1 << 47
	}
	return C.uint64_t(t)
}

// blobMagic starts every rendezvous blob, before a byte saying whether
// addresses (1) or the reason the transport could not open (0) follow.
const blobMagic = "XFRDMA\x00\x01"

type transport struct{}

func init() { backends.Register(transport{}) }

func (transport) Name() string { return "rdma" }

// Probe initialises (and releases) a UCP context with the tag, RMA and
// wake-up features.
func (transport) Probe() error {
	var ctx C.ucp_context_h
	if st := ctxInit(&ctx); st != C.UCS_OK {
		return fmt.Errorf("rdma: ucp_init: %w", ucsError(st))
	}
	C.xs_ctx_cleanup(ctx)
	return nil
}

// ctxInit creates a UCP context allowed the transports of UCX_TLS less the
// single-copy ones (allowedTLS).
func ctxInit(ctx *C.ucp_context_h) C.ucs_status_t {
	tls := C.CString(allowedTLS(os.Getenv("UCX_TLS"), presentSingleCopy()))
	defer C.free(unsafe.Pointer(tls))
	var c C.ucp_context_h // ctx may point into a Go struct holding Go pointers
	st := C.xs_ctx_init(&c, tls)
	*ctx = c
	return st
}

// ucsError is a UCX status code; its text is ucs_status_string's.
type ucsError C.ucs_status_t

func (e ucsError) Error() string {
	return C.GoString(C.ucs_status_string(C.ucs_status_t(e)))
}

// session owns the UCP context shared by the streams of one Open; the
// last stream to close releases it.
type session struct {
	ctx  C.ucp_context_h
	refs atomic.Int32

	// live is the liveness socket of a same-host session (nil across
	// hosts): its endpoints run in UCX's error mode none, which reports no
	// peer failure, so the socket's hang-up does (watch). It is closed
	// after the context is released, so the peer sees it go only once
	// this side's UCX can no longer touch shared memory.
	live net.Conn
	mu   sync.Mutex
	open map[*stream]bool // streams not yet destroyed, for watch
}

func (s *session) release() {
	if s.refs.Add(-1) == 0 {
		C.xs_ctx_cleanup(s.ctx)
		if s.live != nil {
			s.live.Close()
		}
	}
}

// watch waits for the liveness socket to end (the peer's process ended or
// it released its UCX context; nothing is ever sent on it) and then fails
// the waits of every stream still open.
func (s *session) watch() {
	buf := make([]byte, 64)
	for {
		if _, err := s.live.Read(buf); err != nil {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.open {
		C.xs_peer_gone(st.s)
	}
}

// Open creates a UCP context and one worker per stream, swaps the worker
// addresses through one rv.Exchange, connects an endpoint per stream and
// checks each with a hello message before returning.
func (transport) Open(ctx context.Context, rv backends.Rendezvous, p backends.Params) ([]backends.Stream, error) {
	streams, addrs, err := prepare(p)
	host := hostIdentity()
	var blob []byte
	if err != nil {
		// Tell the peer why, so that it fails at once with the reason.
		blob = append(append([]byte(blobMagic), 0), err.Error()...)
	} else {
		blob = encodeAddrs(addrs, host)
	}
	peer, xerr := rv.Exchange(ctx, blob)
	if err != nil {
		return nil, err
	}
	fail := func(err error) ([]backends.Stream, error) {
		for _, st := range streams {
			st.destroy(0)
		}
		return nil, err
	}
	if xerr != nil {
		return fail(fmt.Errorf("rdma: exchanging worker addresses: %w", xerr))
	}
	peerAddrs, peerHost, err := decodeAddrs(peer)
	if err != nil {
		return fail(err)
	}
	if len(peerAddrs) != len(streams) {
		return fail(fmt.Errorf("rdma: peer opened %d streams, this side %d", len(peerAddrs), len(streams)))
	}
	// Both sides come to the same answer, from the same two identities.
	sameHost := host != "" && host == peerHost
	if sameHost {
		sess := streams[0].sess
		live, err := rv.Conn(ctx, 0)
		if err != nil {
			return fail(fmt.Errorf("rdma: opening the liveness socket of a same-host session: %w", err))
		}
		live.SetDeadline(time.Time{})
		sess.live = live
		go sess.watch()
	}
	for i, st := range streams {
		if err := st.connect(peerAddrs[i], !sameHost); err != nil {
			return fail(err)
		}
	}
	if err := hello(ctx, streams); err != nil {
		return fail(err)
	}
	out := make([]backends.Stream, len(streams))
	for i, st := range streams {
		out[i] = st
	}
	return out, nil
}

// prepare creates the streams of one session (workers and registered slots,
// not yet connected) and returns their worker addresses.
func prepare(p backends.Params) ([]*stream, [][]byte, error) {
	if p.Streams < 1 || p.Streams > 1<<16-1 {
		return nil, nil, fmt.Errorf("rdma: %d streams requested (want 1..65535)", p.Streams)
	}
	sess := &session{open: map[*stream]bool{}}
	if st := ctxInit(&sess.ctx); st != C.UCS_OK {
		return nil, nil, fmt.Errorf("rdma: ucp_init: %w", ucsError(st))
	}
	sess.refs.Store(1) // held by prepare until the streams exist
	defer sess.release()
	sizes := make([]C.size_t, nSlots)
	total := 0
	for i := range sizes {
		n := msgSlot
		switch {
		case i >= smallBase:
			n = smallSlot
		case i >= bulkBase:
			n = FragSize
		}
		sizes[i] = C.size_t(n)
		total += n
	}
	var streams []*stream
	var addrs [][]byte
	for i := 0; i < p.Streams; i++ {
		var cs *C.xs_stream
		var addr unsafe.Pointer
		var alen C.size_t
		if st := C.xs_stream_create(sess.ctx, nSlots, &sizes[0], &cs, &addr, &alen); st != C.UCS_OK {
			for _, s := range streams {
				s.destroy(0)
			}
			return nil, nil, fmt.Errorf("rdma: stream %d: creating worker and registering %d MiB: %w",
				i, total>>20, ucsError(st))
		}
		addrs = append(addrs, C.GoBytes(addr, C.int(alen)))
		C.free(addr)
		sess.refs.Add(1)
		st := &stream{s: cs, idx: i, sess: sess}
		sess.open[st] = true
		if err := st.openWaiter(); err != nil {
			st.destroy(0)
			for _, s := range streams {
				s.destroy(0)
			}
			return nil, nil, err
		}
		for j := range st.slots {
			st.slots[j] = unsafe.Slice((*byte)(C.xs_slot_buf(cs, C.int(j))), int(sizes[j]))
		}
		streams = append(streams, st)
	}
	return streams, addrs, nil
}

// hostIdentity names the host and the namespaces UCX's shared-memory
// transports need in common (kernel boot, UTS host name, IPC, mount and PID
// namespaces: posix and sysv segments, and cma's process_vm_readv by pid).
// Empty when any of it cannot be read: the peer is then taken to be on
// another host.
//
// XFER_RDMA_SAME_HOST=0 in the environment of either side makes every peer
// count as remote (endpoints in error mode peer, no shared memory).
func hostIdentity() string {
	if os.Getenv("XFER_RDMA_SAME_HOST") == "0" {
		return ""
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(boot)) + " " + name
	for _, ns := range []string{"ipc", "mnt", "pid"} {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			return ""
		}
		id += " " + l
	}
	return id
}

// encodeAddrs packs the worker addresses and, after them, the host identity
// (hostIdentity) into a rendezvous blob.
func encodeAddrs(addrs [][]byte, host string) []byte {
	b := append([]byte(blobMagic), 1)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(addrs)))
	for _, a := range addrs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(a)))
		b = append(b, a...)
	}
	return append(b, host...)
}

func decodeAddrs(b []byte) (addrs [][]byte, host string, err error) {
	if len(b) < len(blobMagic)+1 || string(b[:len(blobMagic)]) != blobMagic {
		return nil, "", errors.New("rdma: peer sent no rdma worker addresses (version mismatch?)")
	}
	b = b[len(blobMagic):]
	if b[0] != 1 {
		return nil, "", fmt.Errorf("rdma: peer could not open the transport: %s", b[1:])
	}
	b = b[1:]
	if len(b) < 2 {
		return nil, "", errors.New("rdma: truncated peer address blob")
	}
	n := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, "", errors.New("rdma: truncated peer address blob")
		}
		l := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if l == 0 || len(b) < l {
			return nil, "", errors.New("rdma: truncated peer address blob")
		}
		out = append(out, b[:l:l])
		b = b[l:]
	}
	return out, string(b), nil
}

// hello sends message 0 on every stream and waits for the peer's, which
// proves that both directions of every endpoint work.
func hello(ctx context.Context, streams []*stream) error {
	for _, st := range streams {
		buf := st.slots[0]
		putHdr(buf, kindHello, 0, 0, 0, uint64(st.idx))
		if s := C.xs_slot_send(st.s, 0, tag(st.idx, false, 0), msgHdr, 0); s != C.UCS_OK {
			return fmt.Errorf("rdma: stream %d: sending hello: %w", st.idx, ucsError(s))
		}
	}
	deadline := time.Now().Add(openTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	for _, st := range streams {
		for {
			var n C.size_t
			s := C.xs_slot_wait(st.s, recvBase, waitSlice, 0, &n)
			if s == C.UCS_OK {
				kind, _, _, _, v, err := getHdr(st.slots[recvBase][:n])
				if err != nil || kind != kindHello || v != uint64(st.idx) {
					return fmt.Errorf("rdma: stream %d: bad hello from peer", st.idx)
				}
				break
			}
			if s != C.UCS_ERR_TIMED_OUT {
				return fmt.Errorf("rdma: stream %d: waiting for the peer's hello: %w", st.idx, ucsError(s))
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("rdma: stream %d: waiting for the peer's hello: %w", st.idx, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rdma: stream %d: no hello from the peer by %v", st.idx, deadline.Format(time.TimeOnly))
			}
		}
		if err := st.advance(); err != nil {
			return err
		}
		st.sseq = 1
	}
	return nil
}

// putHdr writes the 16-byte message header: kind, flags, header length,
// payload bytes inline, and the whole payload length (or hello's index).
func putHdr(b []byte, kind, flags, hdrLen, n int, v uint64) {
	b[0] = byte(kind)
	b[1] = byte(flags)
	binary.LittleEndian.PutUint16(b[2:], uint16(hdrLen))
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	binary.LittleEndian.PutUint64(b[8:], v)
}

func getHdr(b []byte) (kind, flags, hdrLen, n int, v uint64, err error) {
	if len(b) < msgHdr {
		return 0, 0, 0, 0, 0, fmt.Errorf("short message (%d bytes)", len(b))
	}
	kind, flags = int(b[0]), int(b[1])
	hdrLen = int(binary.LittleEndian.Uint16(b[2:]))
	n = int(binary.LittleEndian.Uint32(b[4:]))
	v = binary.LittleEndian.Uint64(b[8:])
	if msgHdr+hdrLen+n != len(b) || hdrLen > backends.MaxHeader || n > InlineMax {
		return 0, 0, 0, 0, 0, fmt.Errorf("malformed message: %d bytes for header %d + payload %d", len(b), hdrLen, n)
	}
	return kind, flags, hdrLen, n, v, nil
}

// stream is one UCX worker and endpoint with its registered slots.
type stream struct {
	s     *C.xs_stream // nil once closed
	idx   int
	sess  *session
	slots [nSlots][]byte // registered memory
	// copySends: bulk payloads of Send go through the registered bulk
	// slots rather than zero-copy from the caller's memory. Set in error
	// mode none, where a zero-copy send in flight to a peer that went
	// never completes and so could never hand the caller's memory back.
	copySends bool

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	sendMu  sync.Mutex
	sseq    uint64 // next message
	bseq    uint64 // next bulk fragment
	bigSeq  uint64 // messages sent through the ring of msgSlot slots
	smSeq   uint64 // messages sent through the ring of small slots
	win     window // when a message goes as a synchronous send
	sendErr error  // sticky: the stream can send no more
	broken  bool   // a message was cut short: Close sends no FIN

	// rwait turns readable when a Recv parked in the Go poller (rather
	// than asleep in C, which would cost a thread hand-off per message)
	// should look again: a duplicate of xs_wait_fd's receive descriptor.
	rwait *os.File

	recvMu  sync.Mutex
	rseq    uint64 // message being read / awaited
	rbseq   uint64 // next bulk fragment
	bulk    bool   // the current payload comes as bulk fragments
	held    bool   // the slot of rseq holds unread inline payload
	cur     []byte // unread payload in a slot or the bounce buffer
	remain  int    // payload bytes of the current message not yet read
	recvErr error  // sticky
}

// connect creates the endpoint to the peer's worker, in UCX's error mode
// peer when peerErrors (across hosts) and error mode none otherwise.
func (st *stream) connect(peer []byte, peerErrors bool) error {
	pe := C.int(0)
	if peerErrors {
		pe = 1
	}
	st.copySends = !peerErrors
	if s := C.xs_stream_connect(st.s, unsafe.Pointer(&peer[0]), pe); s != C.UCS_OK {
		hint := ""
		if s == C.UCS_ERR_UNREACHABLE {
			hint = " (no UCX transport reaches the peer: check UCX_TLS and UCX_NET_DEVICES; across hosts tcp or InfiniBand/RoCE verbs are needed, UCX's shared memory serves only a peer on the same host)"
		}
		return fmt.Errorf("rdma: stream %d: ucp_ep_create: %w%s", st.idx, ucsError(s), hint)
	}
	for i := 0; i < msgRecvSlots; i++ {
		if s := C.xs_slot_recv(st.s, C.int(recvBase+i), tag(st.idx, false, uint64(i))); s != C.UCS_OK {
			return fmt.Errorf("rdma: stream %d: posting receive: %w", st.idx, ucsError(s))
		}
	}
	return nil
}

// Transports names the UCX transports the stream's endpoint runs over
// (posix, sysv, tcp, rc_mlx5, ...), from UCX's description of its lanes.
func (st *stream) Transports() []string {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	if st.s == nil {
		return nil
	}
	buf := make([]byte, 16<<10)
	n := C.xs_ep_info(st.s, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return laneTransports(string(buf[:n]))
}

func (st *stream) errorf(op string, err error) error {
	return fmt.Errorf("rdma: stream %d: %s: %w", st.idx, op, err)
}

// statusErr turns a failed UCX status into an error, telling a local Close
// from a peer that went away.
func (st *stream) statusErr(op string, s C.ucs_status_t) error {
	if st.closing.Load() {
		return st.errorf(op, net.ErrClosed)
	}
	if es := C.xs_ep_status(st.s); es != C.UCS_OK && es != C.UCS_ERR_CANCELED {
		return st.errorf(op, fmt.Errorf("peer endpoint failed: %w", ucsError(es)))
	}
	return st.errorf(op, ucsError(s))
}

// slotFree waits until send slot i is free; an earlier send from it that
// failed is reported here.
func (st *stream) slotFree(i int, timeoutMs int, cancelable bool) C.ucs_status_t {
	var n C.size_t
	c := C.int(0)
	if cancelable {
		c = 1
	}
	return C.xs_slot_wait(st.s, C.int(i), C.int(timeoutMs), c, &n)
}

// Send copies a payload of up to InlineMax bytes with hdr into a
// registered slot and returns once it is posted. A larger payload goes
// zero-copy: its memory is registered for the call and Send returns once
// the peer has taken it.
func (st *stream) Send(hdr, payload []byte) error {
	const op = "send"
	if len(hdr) > backends.MaxHeader {
		return st.errorf(op, fmt.Errorf("header of %d bytes exceeds %d", len(hdr), backends.MaxHeader))
	}
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	if err := st.sendable(op); err != nil {
		return err
	}
	n := len(payload)
	if n <= InlineMax {
		return st.sendMsg(op, hdr, n, func(dst []byte) error {
			copy(dst, payload)
			return nil
		})
	}
	if st.copySends {
		return st.sendBulk(op, hdr, n, func(dst []byte, at int) error {
			copy(dst, payload[at:])
			return nil
		})
	}
	if err := st.sendMsg(op, hdr, n, nil); err != nil {
		return err
	}
	s := C.xs_send_user(st.s, tag(st.idx, true, st.bseq), unsafe.Pointer(&payload[0]), C.size_t(n), FragSize, 1)
	st.bseq += uint64((n + FragSize - 1) / FragSize)
	if s != C.UCS_OK {
		return st.fail(op, s)
	}
	return nil
}

// SendFile reads n bytes of f at off into registered memory and sends
// them; it returns once the last fragment is posted. There is no
// file-to-NIC zero copy on this path: pread copies the data once, into
// buffers the NIC can DMA from.
func (st *stream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	const op = "sendfile"
	if len(hdr) > backends.MaxHeader {
		return st.errorf(op, fmt.Errorf("header of %d bytes exceeds %d", len(hdr), backends.MaxHeader))
	}
	if n < 0 {
		return st.errorf(op, fmt.Errorf("negative length %d", n))
	}
	read := func(dst []byte, at int) error {
		if _, err := f.ReadAt(dst, off+int64(at)); err != nil {
			return fmt.Errorf("reading %s at %d: %w", f.Name(), off+int64(at), err)
		}
		return nil
	}
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	if err := st.sendable(op); err != nil {
		return err
	}
	if n <= InlineMax {
		return st.sendMsg(op, hdr, n, func(dst []byte) error { return read(dst, 0) })
	}
	return st.sendBulk(op, hdr, n, read)
}

// sendBulk sends a message of n > InlineMax payload bytes as bulk fragments
// through the registered bulk slots, read(dst, at) filling each slot with
// the payload from byte at. Caller holds sendMu.
func (st *stream) sendBulk(op string, hdr []byte, n int, read func(dst []byte, at int) error) error {
	// Read the first fragment before announcing the message, so that a
	// source that cannot be read leaves the stream usable.
	for done, first := 0, true; done < n; first = false {
		i := bulkBase + int(st.bseq%bulkSendSlots)
		if s := st.slotFree(i, -1, true); s != C.UCS_OK {
			return st.fail(op, s)
		}
		k := min(n-done, FragSize)
		if err := read(st.slots[i][:k], done); err != nil {
			if !first {
				st.broken, st.sendErr = true, st.errorf(op, err)
			}
			return st.errorf(op, err)
		}
		if first {
			if err := st.sendMsg(op, hdr, n, nil); err != nil {
				return err
			}
		}
		if s := C.xs_slot_send(st.s, C.int(i), tag(st.idx, true, st.bseq), C.size_t(k), 1); s != C.UCS_OK {
			return st.fail(op, s)
		}
		st.bseq++
		done += k
	}
	return nil
}

func (st *stream) sendable(op string) error {
	if st.closing.Load() {
		return st.errorf(op, net.ErrClosed)
	}
	return st.sendErr
}

// fail records that the stream is unusable for sending, a message having
// been cut short.
func (st *stream) fail(op string, s C.ucs_status_t) error {
	st.broken = true
	st.sendErr = st.statusErr(op, s)
	return st.sendErr
}

// sendMsg sends one message: hdr and, with fill, n payload bytes inline;
// without fill, the announcement of n bytes of bulk fragments. A message
// that fits goes through the ring of small slots, any other through the
// ring of msgSlot slots.
func (st *stream) sendMsg(op string, hdr []byte, n int, fill func([]byte) error) error {
	inline, flags := n, 0
	if fill == nil {
		inline, flags = 0, flagBulk
	}
	size := msgHdr + len(hdr) + inline
	synced := st.win.sync(inline)
	if synced {
		if i, ok := st.win.full(); ok {
			if err := st.sendWait(op, i); err != nil {
				return err
			}
		}
	}
	i := int(st.bigSeq % msgSendSlots)
	if size <= smallSlot {
		i = smallBase + int(st.smSeq%smallSlots)
	}
	if err := st.sendWait(op, i); err != nil {
		return err
	}
	b := st.slots[i]
	putHdr(b, kindMsg, flags, len(hdr), inline, uint64(n))
	h := msgHdr + copy(b[msgHdr:], hdr)
	if fill != nil {
		if err := fill(b[h : h+n]); err != nil {
			return st.errorf(op, err)
		}
	}
	c := C.int(0)
	if synced {
		c = 1
	}
	if s := C.xs_slot_send(st.s, C.int(i), tag(st.idx, false, st.sseq), C.size_t(size), c); s != C.UCS_OK {
		return st.fail(op, s)
	}
	if i >= smallBase {
		st.smSeq++
	} else {
		st.bigSeq++
	}
	st.win.sent(inline, synced, i)
	st.sseq++
	return nil
}

// sendWait waits until send slot i is free, an error making the stream
// unusable for sending unless the wait was cancelled by Close.
func (st *stream) sendWait(op string, i int) error {
	s := st.slotFree(i, -1, true)
	if s == C.UCS_OK {
		return nil
	}
	err := st.statusErr(op, s)
	if s != C.UCS_ERR_CANCELED {
		st.sendErr = err
	}
	return err
}

// Flow control. UCX completes an eager send as soon as it leaves, and the
// receiving worker keeps what nobody has asked for yet in its unexpected
// queue, without limit: a sender faster than its reader would grow the
// reader's memory for ever, and a reader that closed would not make it
// fail. So every message that brings the units sent since the last
// synchronous send to syncUnits goes as one (it completes only once the
// peer has matched it with a posted receive), and at most maxSyncs of them
// are in flight: a new one waits for the oldest. The sender is thus at
// most (maxSyncs+1)*syncUnits units ahead of the receives the reader has
// posted (msgRecvSlots past the messages it has read), a unit being a
// message plus one per unitBytes of inline payload. The window is wide
// enough to keep small messages streaming across a round trip and narrow
// enough to bound the reader's memory to a few MiB.
const (
	syncUnits = 32
	maxSyncs  = 4
	unitBytes = 32 << 10
)

// window tracks the synchronous sends of a stream. Its zero value is
// ready for use.
type window struct {
	units int           // units sent since the last synchronous send
	slots [maxSyncs]int // send slots of the synchronous sends in flight
	head  int           // oldest of them
	n     int           // how many
}

func msgUnits(inline int) int { return 1 + inline/unitBytes }

// sync says whether the next message, of inline payload bytes, goes as a
// synchronous send.
func (w *window) sync(inline int) bool { return w.units+msgUnits(inline) >= syncUnits }

// full returns the slot of the oldest synchronous send in flight when
// maxSyncs are, which a new one must wait for.
func (w *window) full() (int, bool) {
	if w.n < maxSyncs {
		return 0, false
	}
	return w.slots[w.head], true
}

// sent records a message posted from slot i.
func (w *window) sent(inline int, sync bool, i int) {
	if !sync {
		w.units += msgUnits(inline)
		return
	}
	w.units = 0
	if w.n == maxSyncs {
		w.head = (w.head + 1) % maxSyncs
		w.n--
	}
	w.slots[(w.head+w.n)%maxSyncs] = i
	w.n++
}

// advance hands the slot of message rseq back to UCX, posted for message
// rseq+msgRecvSlots.
func (st *stream) advance() error {
	i := recvBase + int(st.rseq%msgRecvSlots)
	if s := C.xs_slot_recv(st.s, C.int(i), tag(st.idx, false, st.rseq+msgRecvSlots)); s != C.UCS_OK {
		st.recvErr = st.statusErr("posting receive", s)
		return st.recvErr
	}
	st.rseq++
	st.held, st.cur = false, nil
	return nil
}

func (st *stream) recvFailed(op string, s C.ucs_status_t) error {
	err := st.statusErr(op, s)
	if !st.closing.Load() {
		st.recvErr = err
	}
	return err
}

func (st *stream) protoErr(format string, a ...any) error {
	st.recvErr = st.errorf("recv", fmt.Errorf("protocol error: "+format, a...))
	return st.recvErr
}

// Recv waits for the next message and copies its header into hbuf.
func (st *stream) Recv(hbuf []byte) ([]byte, int, error) {
	const op = "recv"
	st.recvMu.Lock()
	defer st.recvMu.Unlock()
	if st.closing.Load() {
		return nil, 0, st.errorf(op, net.ErrClosed)
	}
	if st.recvErr != nil {
		return nil, 0, st.recvErr
	}
	if st.remain > 0 {
		return nil, 0, st.errorf(op, fmt.Errorf("%d payload bytes of the previous message not read", st.remain))
	}
	i := recvBase + int(st.rseq%msgRecvSlots)
	var ln C.size_t
	if s := st.waitRecv(i, &ln); s != C.UCS_OK {
		return nil, 0, st.recvFailed(op, s)
	}
	b := st.slots[i][:ln]
	kind, flags, hl, n, total, err := getHdr(b)
	if err != nil {
		return nil, 0, st.protoErr("%v", err)
	}
	bulk := flags&flagBulk != 0
	switch {
	case kind == kindFin:
		st.recvErr = io.EOF
		return nil, 0, io.EOF
	case kind != kindMsg:
		return nil, 0, st.protoErr("message %d is of kind %d", st.rseq, kind)
	case bulk && (n != 0 || total <= InlineMax), !bulk && uint64(n) != total:
		return nil, 0, st.protoErr("message %d: %d payload bytes inline of %d", st.rseq, n, total)
	case len(hbuf) < hl:
		return nil, 0, st.errorf(op, fmt.Errorf("header of %d bytes does not fit a %d-byte buffer", hl, len(hbuf)))
	}
	hdr := hbuf[:copy(hbuf, b[msgHdr:msgHdr+hl])]
	st.remain, st.bulk = int(total), bulk
	if n > 0 {
		st.held, st.cur = true, b[msgHdr+hl:]
	} else if err := st.advance(); err != nil {
		return nil, 0, err
	}
	return hdr, int(total), nil
}

// RecvPayload copies the next len(p) payload bytes of the current message.
// Whole bulk fragments land in p directly (zero copy); a read that ends
// inside a fragment takes it through the bounce buffer.
func (st *stream) RecvPayload(p []byte) error {
	const op = "recv payload"
	st.recvMu.Lock()
	defer st.recvMu.Unlock()
	if st.closing.Load() {
		return st.errorf(op, net.ErrClosed)
	}
	if st.recvErr != nil {
		return st.recvErr
	}
	if len(p) > st.remain {
		return st.errorf(op, fmt.Errorf("%d bytes asked, %d left in the message", len(p), st.remain))
	}
	for len(p) > 0 {
		if len(st.cur) > 0 {
			k := copy(p, st.cur)
			p, st.cur, st.remain = p[k:], st.cur[k:], st.remain-k
			if len(st.cur) == 0 && st.held {
				if err := st.advance(); err != nil {
					return err
				}
			}
			continue
		}
		if !st.bulk {
			return st.protoErr("inline payload exhausted with %d bytes left", st.remain)
		}
		// At a fragment boundary.
		whole := len(p) / FragSize * FragSize
		if len(p) == st.remain {
			whole = len(p)
		}
		if whole > 0 {
			s := C.xs_recv_user(st.s, tag(st.idx, true, st.rbseq), unsafe.Pointer(&p[0]), C.size_t(whole), FragSize, 1)
			if s != C.UCS_OK {
				return st.recvFailed(op, s)
			}
			st.rbseq += uint64((whole + FragSize - 1) / FragSize)
			p, st.remain = p[whole:], st.remain-whole
			continue
		}
		k := min(st.remain, FragSize)
		if s := C.xs_slot_recv(st.s, bounce, tag(st.idx, true, st.rbseq)); s != C.UCS_OK {
			return st.recvFailed(op, s)
		}
		var ln C.size_t
		if s := C.xs_slot_wait(st.s, bounce, -1, 1, &ln); s != C.UCS_OK {
			return st.recvFailed(op, s)
		}
		if int(ln) != k {
			return st.protoErr("bulk fragment %d of %d bytes, want %d", st.rbseq, ln, k)
		}
		st.rbseq++
		st.cur = st.slots[bounce][:k]
	}
	if st.remain == 0 {
		st.bulk = false
	}
	return nil
}

// Close unblocks a pending Send or Recv, sends the peer an end-of-stream
// marker after the messages already posted, waits up to closeTimeout for
// them to be taken, then releases the endpoint, worker and registered
// memory.
func (st *stream) Close() error {
	st.closeOnce.Do(func() {
		st.closing.Store(true)
		C.xs_cancel(st.s)
		st.sendMu.Lock()
		st.recvMu.Lock()
		defer st.recvMu.Unlock()
		defer st.sendMu.Unlock()
		C.xs_uncancel(st.s)
		closeMs := int(closeTimeout / time.Millisecond)
		if st.broken || st.sendErr != nil || C.xs_ep_status(st.s) != C.UCS_OK {
			closeMs = 0
		} else if err := st.fin(closeMs); err != nil {
			st.closeErr = err
		}
		st.destroy(closeMs)
	})
	return st.closeErr
}

// fin sends the end-of-stream marker and waits for every send to complete.
func (st *stream) fin(ms int) error {
	deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
	left := func() int { return max(0, int(time.Until(deadline)/time.Millisecond)) }
	i := smallBase + int(st.smSeq%smallSlots)
	s := st.slotFree(i, left(), false)
	if s == C.UCS_OK {
		putHdr(st.slots[i], kindFin, 0, 0, 0, 0)
		s = C.xs_slot_send(st.s, C.int(i), tag(st.idx, false, st.sseq), msgHdr, 0)
	}
	for j := 0; s == C.UCS_OK && j < nSlots; j++ {
		if j < recvBase || j >= bulkBase && j != bounce {
			s = st.slotFree(j, left(), false)
		}
	}
	if s != C.UCS_OK {
		return st.errorf("close: messages sent may not have reached the peer", ucsError(s))
	}
	return nil
}

// openWaiter sets up rwait.
func (st *stream) openWaiter() error {
	fd, err := syscall.Dup(int(C.xs_wait_fd(st.s, 1)))
	if err != nil {
		return fmt.Errorf("rdma: stream %d: wait descriptor: %w", st.idx, err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("rdma: stream %d: wait descriptor: %w", st.idx, err)
	}
	st.rwait = os.NewFile(uintptr(fd), fmt.Sprintf("rdma stream %d", st.idx))
	return nil
}

// waitRecv waits until receive slot i completes, progressing the worker
// in a bounded spin and then parking the goroutine in the Go poller on
// rwait, so that the thread is free and the goroutine that acts on the
// message runs without a hand-off to another thread.
func (st *stream) waitRecv(i int, ln *C.size_t) C.ucs_status_t {
	raw, err := st.rwait.SyscallConn()
	if err != nil {
		return C.xs_slot_wait(st.s, C.int(i), -1, 1, ln)
	}
	for {
		s := C.xs_slot_try(st.s, C.int(i), 1, ln)
		if s != C.UCS_ERR_NO_PROGRESS {
			return s
		}
		// The poller drops a readiness it saw before this wait starts,
		// so look at the descriptor once before waiting for it.
		first := true
		err := raw.Read(func(fd uintptr) bool {
			if first {
				first = false
				return C.xs_fd_ready(C.int(fd)) != 0
			}
			return true
		})
		if err != nil {
			return C.xs_slot_wait(st.s, C.int(i), -1, 1, ln)
		}
	}
}

func (st *stream) destroy(closeMs int) {
	if st.s == nil {
		return
	}
	if st.rwait != nil {
		st.rwait.Close()
	}
	st.sess.mu.Lock()
	delete(st.sess.open, st)
	st.sess.mu.Unlock()
	C.xs_stream_destroy(st.s, C.int(closeMs))
	st.s = nil
	st.sess.release()
}
