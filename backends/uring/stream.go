package uring

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/internal/sockstream"
)

// Staging memory per stream: txSlots send buffers of headroom+slotSize
// bytes (the batcher's two batches; a message's prefix and header are
// written into the headroom of the first) and one receive buffer, about
// 0.8 MiB, pinned while registered.
const (
	txSlots  = 2
	slotSize = 256 << 10
	// headroom precedes each slot's data so that a message's prefix and
	// header can be sent in the same request as the first data block.
	headroom  = 8 << 10
	rxBufSize = 256 << 10
)

// user_data of a request: operation << 32 | block (or slot) index.
const (
	opSendStaged = iota + 1 // SEND from a staging buffer
	opSendHdr               // SEND of a header, linked to opSendUser
	opSendUser              // SEND_ZC of the caller's memory
	opRecv                  // socket receive
	opCancel                // ASYNC_CANCEL
)

func ud(op, idx int) uint64 { return uint64(op)<<32 | uint64(uint32(idx)) }

// sendFlags go with every socket send: whole buffers only (a short send
// fails a link instead of letting the next request go after a partial one),
// and EPIPE rather than SIGPIPE.
const sendFlags = unix.MSG_WAITALL | unix.MSG_NOSIGNAL

// errClosed is returned by every operation on a closed stream.
var errClosed = errors.New("uring: stream closed")

// stream is one uring data stream; see the package comment.
type stream struct {
	conn     net.Conn
	rc       syscall.RawConn
	zcMin    int
	alwaysZC bool // keep SEND_ZC even when the kernel reports copies
	state    sockstream.State

	tx struct {
		mu       sync.Mutex
		err      error // sticky: the byte stream is out of step after a failure
		ring     *ring
		inflight int  // requests whose completion has not arrived
		notifs   int  // SEND_ZC notifications not yet arrived
		broken   bool // the ring failed: requests may be in flight
		noZC     bool // send copies: see sendFailed and adapt
		noUsage  bool // the kernel refused IORING_SEND_ZC_REPORT_USAGE
		copied   bool // a notification said the kernel copied anyway
		pin      runtime.Pinner
		b        batcher // coalescing of small messages (batch.go)
		pipeR    int     // the pipe of SendFile's splices (splice.go), 0 until made
		pipeW    int
		pipeSz   int
		// rechains counts requests of SendFile's chains cancelled because
		// a splice before them came up short (tests).
		rechains int64
	}
	rx struct {
		sockstream.Rx // its Receiver reads from the staging buffer (fixed buffer 0 of the ring)
		ring          *ring
		broken        bool
		probe         bool // the stream is idle: receive with read(2) (recvNow)
		pin           runtime.Pinner
	}
}

// Send writes hdr and payload as one message.
func (s *stream) Send(hdr, payload []byte) error {
	if err := backends.CheckSizes(len(hdr), len(payload)); err != nil {
		return fmt.Errorf("uring: send: %w", err)
	}
	t := &s.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := s.txReady(); err != nil {
		return err
	}
	if s.small(hdr, len(payload)) {
		return s.sendSmall(hdr, payload)
	}
	if err := s.drainLocked(); err != nil {
		return err
	}
	buf := t.ring.bufs[0]
	hn := backends.PrefixLen + len(hdr)
	msg := buf[headroom-hn : headroom]
	backends.PutPrefix(msg, len(hdr), len(payload))
	copy(msg[backends.PrefixLen:], hdr)
	err := s.sendUser(msg, payload)
	if err != nil {
		return s.state.Fail(&t.err, "send", err)
	}
	return nil
}

// SendFile writes hdr and then n bytes of f from off, spliced from the
// page cache through a pipe (IORING_OP_SPLICE), like sendfile(2).
func (s *stream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	fc, err := sockstream.FileRange(Name, hdr, f, off, n)
	if err != nil {
		return err
	}
	t := &s.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := s.txReady(); err != nil {
		return err
	}
	if err := s.drainLocked(); err != nil {
		return err
	}
	var serr error
	if cerr := fc.Control(func(ffd uintptr) { serr = s.sendFile(hdr, int(ffd), off, n) }); cerr != nil {
		serr = cerr
	}
	if serr != nil {
		return s.state.Fail(&t.err, "sendfile "+f.Name(), serr)
	}
	return nil
}

// txReady returns the error a send fails with before it starts, or nil.
// The ring is gone once Close has run.
func (s *stream) txReady() error {
	if s.tx.ring == nil {
		return errClosed
	}
	return s.state.Ready(s.tx.err)
}

// txRun submits what is queued on the send ring and hands each completion
// to handle until done reports true. Notification CQEs reach handle too
// (IORING_CQE_F_NOTIF in flags). After a failure (handle's error, a broken
// ring, Close) it cancels the requests in flight and returns once their
// completions are in; notifications still due are left to Close.
func (s *stream) txRun(handle func(op, idx int, res int32, flags uint32) error, done func() bool) error {
	t := &s.tx
	var failure error
	cancelled := false
	var giveUp time.Time
	cancel := func() {
		if cancelled || t.inflight == 0 {
			return
		}
		if e, err := t.ring.sqe(); err == nil {
			prepCancelAll(e, ud(opCancel, 0))
			cancelled = true
			giveUp = time.Now().Add(10 * time.Second)
		}
	}
	for {
		if failure == nil && done() {
			return nil
		}
		if failure != nil && t.inflight == 0 {
			return failure
		}
		err := t.ring.submitAndWait()
		if err == errSlice {
			if failure == nil && s.state.Closed() {
				failure = errClosed
			}
			if failure != nil {
				cancel() // again, if no entry was free before
			}
			if cancelled && time.Now().After(giveUp) {
				t.broken = true // cancellation did not complete: leave it to Close
				return failure
			}
			continue
		}
		if err != nil {
			t.broken = true
			if failure == nil {
				failure = err
			}
			return failure
		}
		t.ring.reap(func(u uint64, res int32, flags uint32) {
			op, idx := int(u>>32), int(uint32(u))
			if op == opCancel {
				return
			}
			if flags&giouring.CQEFNotif != 0 {
				t.notifs--
				if uint32(res)&giouring.NotifUsageZCCopied != 0 {
					t.copied = true
				}
			} else {
				t.inflight--
				if flags&giouring.CQEFMore != 0 {
					t.notifs++
				}
			}
			if failure != nil {
				return
			}
			if err := handle(op, idx, res, flags); err != nil {
				failure = err
				cancel()
			}
		})
	}
}

// sendStaged sends p, which lies in a staging buffer, with non-blocking
// IORING_OP_SEND (it completes within its submission), waiting in Go's
// network poller while the socket buffer is full (see recvNow for why).
func (s *stream) sendStaged(p []byte) error { return s.sendStagedHow(p, false) }

// sendStagedHow is sendStaged; with plain it writes with write(2) instead,
// which costs less than an io_uring_enter for one isolated message (a
// request or a ping; see batch.go).
func (s *stream) sendStagedHow(p []byte, plain bool) error {
	t := &s.tx
	for off := 0; off < len(p); {
		var n int
		var err error
		if cerr := s.rc.Write(func(fd uintptr) bool {
			if plain {
				k, werr := unix.Write(int(fd), p[off:])
				switch {
				case werr == unix.EAGAIN || werr == unix.EINTR:
					return false
				case werr != nil:
					n, err = 0, fmt.Errorf("send: %w", werr)
				default:
					n, err = k, nil
				}
				return true
			}
			n, err = s.do(t.ring, &t.broken, opSendStaged, func(e *giouring.SubmissionQueueEntry) {
				prepSend(e, 0, p[off:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, ud(opSendStaged, 0))
			})
			return !errors.Is(err, errAgain)
		}); cerr != nil && err == nil {
			err = fmt.Errorf("send: %w", cerr)
		}
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}

// sendUser sends msg (prefix and header, in a staging buffer) linked to a
// send of payload, in one submission. With zero copy (SEND_ZC) it returns
// after the notification: the kernel reads payload, in place, until then.
func (s *stream) sendUser(msg, payload []byte) error {
	t := &s.tx
	t.pin.Pin(&payload[0]) // escapes and stays put until the kernel is done
	hoff, poff := 0, 0
	resubmit := false
	submit := func() error {
		if hoff < len(msg) {
			e, err := t.ring.sqe()
			if err != nil {
				return err
			}
			prepSend(e, 0, msg[hoff:], sendFlags|unix.MSG_MORE, ud(opSendHdr, 0))
			e.Flags |= giouring.SqeIOLink
			t.inflight++
		}
		e, err := t.ring.sqe()
		if err != nil {
			return err
		}
		s.prepSendOut(e, payload[poff:], -1, ud(opSendUser, 0))
		t.inflight++
		return nil
	}
	if err := submit(); err != nil {
		t.pin.Unpin()
		return err
	}
	err := s.txRun(func(op, _ int, res int32, flags uint32) error {
		if flags&giouring.CQEFNotif != 0 {
			return nil
		}
		switch {
		case res == -int32(unix.ECANCELED) && op == opSendUser && resubmit:
			// Its linked header send failed or came up short.
		case res < 0 && op == opSendHdr && retryable(res):
			resubmit = true
		case res < 0 && op == opSendHdr:
			return fmt.Errorf("send header: %w", cqeErr(res))
		case res < 0:
			if err := s.sendFailed(res); err != nil {
				return err
			}
			resubmit = true
		case op == opSendHdr:
			hoff += int(res)
			resubmit = resubmit || hoff < len(msg)
		default:
			poff += int(res)
			resubmit = resubmit || poff < len(payload)
		}
		if t.inflight == 0 && resubmit {
			resubmit = false
			return submit()
		}
		return nil
	}, func() bool {
		return hoff == len(msg) && poff == len(payload) && t.inflight == 0 && t.notifs == 0
	})
	if t.notifs == 0 && !t.broken {
		t.pin.Unpin()
	} // else the kernel may still read payload: Close unpins it.
	s.adapt()
	return err
}

// sendFile sends the message of a SendFile: the header from the staging
// buffer, the file range spliced through the stream's pipe (splice.go).
func (s *stream) sendFile(hdr []byte, ffd int, off int64, n int) error {
	rg := s.tx.ring
	hn := backends.PrefixLen + len(hdr)
	msg := rg.bufs[0][headroom-hn : headroom]
	backends.PutPrefix(msg, len(hdr), n)
	copy(msg[backends.PrefixLen:], hdr)
	if n == 0 {
		return s.sendStaged(msg)
	}
	return s.spliceFile(msg, ffd, off, n)
}

// prepSendOut prepares the send of p, which lies in fixed buffer buf (or
// -1 for memory that is not registered): SEND_ZC, or SEND once zero copy
// is off for the stream.
func (s *stream) prepSendOut(e *giouring.SubmissionQueueEntry, p []byte, buf int, ud uint64) {
	t := &s.tx
	if t.noZC {
		prepSend(e, 0, p, sendFlags, ud)
		return
	}
	prepSendZC(e, 0, p, buf, sendFlags, ud)
	if !t.noUsage {
		e.IoPrio |= giouring.SendZCReportUsage
	}
}

// sendFailed sorts out a failed send: nil means the send should simply be
// reissued (possibly in another form), otherwise the error to fail with.
func (s *stream) sendFailed(res int32) error {
	t := &s.tx
	switch {
	case retryable(res):
		return nil
	case res == -int32(unix.EOPNOTSUPP) && !t.noZC:
		// No zero copy on this socket (SOCK_SUPPORT_ZC unset; seen on
		// accepted sockets of some kernels): send copies instead.
		t.noZC = true
		return nil
	case res == -int32(unix.EINVAL) && !t.noZC && !t.noUsage:
		// IORING_SEND_ZC_REPORT_USAGE is Linux 6.2; do without.
		t.noUsage = true
		return nil
	}
	return fmt.Errorf("send: %w", cqeErr(res))
}

// adapt turns zero copy off for the stream once the kernel reported that
// it copied anyway (loopback, or a device without scatter-gather): then
// SEND_ZC only adds page pinning and a wait for the peer's acknowledgement
// before a buffer can be reused.
func (s *stream) adapt() {
	if s.tx.copied && !s.alwaysZC {
		s.tx.noZC = true
	}
}

// Recv reads the next message's header into hbuf. Payload bytes of the
// previous message that were not consumed are skipped.
func (s *stream) Recv(hbuf []byte) ([]byte, int, error) { return s.rx.Recv(&s.state, s.rxReady, hbuf) }

// RecvPayload reads the next len(p) payload bytes of the current message:
// from the staging buffer, or, for a large rest, straight into p with
// recvAll.
func (s *stream) RecvPayload(p []byte) error { return s.rx.RecvPayload(&s.state, s.rxReady, p) }

// rxReady returns errClosed once the receive ring is torn down (the
// half's own checks follow it).
func (s *stream) rxReady() error {
	if s.rx.ring == nil {
		return errClosed
	}
	return nil
}

// recv receives what the socket has, up to len(p) bytes, into p, which
// lies in the staging buffer (fixed buffer 0: READ_FIXED).
func (s *stream) recv(p []byte) (int, error) {
	r := &s.rx
	return s.recvNow(p, func(e *giouring.SubmissionQueueEntry) {
		if r.ring.fixed {
			prepRead(e, 0, p, 0, 0, ud(opRecv, 0))
			e.OpcodeFlags = unix.RWF_NOWAIT
		} else {
			prepRecv(e, 0, p, unix.MSG_DONTWAIT, ud(opRecv, 0))
		}
	})
}

// recvDirect receives what the socket has, up to len(p) bytes, into p,
// memory of the caller's.
func (s *stream) recvDirect(p []byte) (int, error) {
	r := &s.rx
	r.pin.Pin(&p[0]) // escapes and stays put while the kernel writes to it
	n, err := s.recvNow(p, func(e *giouring.SubmissionQueueEntry) {
		prepRecv(e, 0, p, unix.MSG_DONTWAIT, ud(opRecv, 0))
	})
	if !r.broken {
		r.pin.Unpin()
	}
	return n, err
}

// recvNow receives into p: with the non-blocking request prep prepares
// (MSG_DONTWAIT or RWF_NOWAIT: it completes within its submission), or
// with read(2) while the stream is idle (rx.probe), and, while the socket
// has nothing, waits for it to become readable in Go's network poller.
//
// A receive left posted in the ring would be completed by task work on the
// thread that submitted it, which then signals the eventfd for the
// goroutine parked elsewhere: two thread wake-ups per message where the
// poller needs one; on this machine that doubled the round-trip time (see
// docs/design.md).
func (s *stream) recvNow(p []byte, prep func(e *giouring.SubmissionQueueEntry)) (int, error) {
	r := &s.rx
	var n int
	var err error
	waited := false
	if cerr := s.rc.Read(func(fd uintptr) bool {
		if r.probe {
			// The last receive found nothing: the stream is idle (a
			// request, a ping), and the next receive is a plain read(2),
			// which costs less than a failing io_uring_enter and, once the
			// message is in, saves an io_uring_enter on the round trip.
			// A read that finds data without waiting means messages are
			// streaming: io_uring takes over again.
			k, rerr := unix.Read(int(fd), p)
			switch {
			case rerr == unix.EAGAIN || rerr == unix.EINTR:
				waited = true
				return false
			case rerr != nil:
				n, err = 0, fmt.Errorf("receive: %w", rerr)
			case s.state.Closed():
				n, err = 0, errClosed
			default:
				n, err = k, nil
			}
			r.probe = waited
			return true
		}
		n, err = s.do(r.ring, &r.broken, opRecv, prep)
		if errors.Is(err, errAgain) {
			r.probe, waited = true, true
			return false
		}
		return true
	}); cerr != nil && err == nil {
		err = fmt.Errorf("receive: %w", cerr)
	}
	switch {
	case err != nil:
		return 0, err
	case n == 0:
		return 0, fmt.Errorf("connection closed by peer: %w", io.ErrUnexpectedEOF)
	}
	return n, nil
}

// errAgain is do's report of a request that found nothing to do (EAGAIN).
var errAgain = errors.New("uring: would block")

// do submits one request, prepared by prep with user data of operation op,
// on rg and returns its result (bytes moved); a request the socket could
// not serve without waiting returns errAgain. It returns only once the
// request is complete (or cancelled), because the kernel uses its buffer
// until then; *broken is set when it gives up on a request still in
// flight.
func (s *stream) do(rg *ring, broken *bool, op int, prep func(e *giouring.SubmissionQueueEntry)) (int, error) {
	for {
		e, err := rg.sqe()
		if err != nil {
			return 0, err
		}
		prep(e)
		var res int32
		inflight, cancelled := true, false
		var giveUp time.Time
		for inflight {
			err := rg.submitAndWait()
			if err == errSlice {
				if s.state.Closed() && !cancelled {
					if e, err := rg.sqe(); err == nil {
						prepCancelAll(e, ud(opCancel, 0))
						cancelled = true
						giveUp = time.Now().Add(10 * time.Second)
					}
				} else if cancelled && time.Now().After(giveUp) {
					*broken = true
					return 0, errClosed
				}
				continue
			}
			if err != nil {
				*broken = true // the request may still be in flight
				return 0, err
			}
			rg.reap(func(u uint64, rs int32, _ uint32) {
				if int(u>>32) == op {
					res, inflight = rs, false
				}
			})
		}
		switch {
		case s.state.Closed():
			return 0, errClosed
		case res == -int32(unix.EAGAIN):
			return 0, errAgain
		case res < 0 && retryable(res):
			continue
		case res < 0 && op == opRecv:
			return 0, fmt.Errorf("receive: %w", cqeErr(res))
		case res < 0:
			return 0, fmt.Errorf("send: %w", cqeErr(res))
		}
		return int(res), nil
	}
}

// Close shuts the socket down, which completes the requests pending on it,
// waits for Send and Recv to give up, and tears the rings down.
func (s *stream) Close() error {
	s.drainBeforeClose()
	return s.state.Close(func() error {
		s.rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
		s.stopBatcher()
		t, r := &s.tx, &s.rx
		t.mu.Lock()
		defer t.mu.Unlock()
		r.Mu.Lock()
		defer r.Mu.Unlock()
		abandoned := t.notifs > 0 || t.broken
		if abandoned {
			// The kernel still holds pages of a SEND_ZC: reset rather than
			// linger, so the write queue is dropped, not sent later.
			if tc, ok := s.conn.(interface{ SetLinger(int) error }); ok {
				tc.SetLinger(0)
			}
		}
		// Drop the rings' references to the socket so that closing conn
		// closes (and, if abandoned, resets) the connection now.
		t.ring.unregisterFiles()
		r.ring.unregisterFiles()
		var closeErr error
		if err := s.conn.Close(); err != nil {
			closeErr = fmt.Errorf("uring: close: %w", err)
		}
		if t.notifs > 0 && !t.broken {
			// The reset freed the queued data: collect the notifications.
			for giveUp := time.Now().Add(2 * time.Second); t.notifs > 0 && time.Now().Before(giveUp); {
				if err := t.ring.submitAndWait(); err != nil && err != errSlice {
					break
				}
				t.ring.reap(func(_ uint64, _ int32, flags uint32) {
					if flags&giouring.CQEFNotif != 0 {
						t.notifs--
					}
				})
			}
		}
		t.ring.close()
		r.ring.close()
		if t.pipeR > 0 {
			unix.Close(t.pipeR)
			unix.Close(t.pipeW)
			t.pipeR, t.pipeW = 0, 0
		}
		t.ring, r.ring = nil, nil
		r.In.Release()
		// Unpinning lets the collector reuse memory a SEND_ZC still named
		// only if notifications never came; the connection was reset and
		// its queue dropped by then, so nothing reads it any more.
		t.pin.Unpin()
		r.pin.Unpin()
		return closeErr
	})
}

var _ backends.Stream = (*stream)(nil)
