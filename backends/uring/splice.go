package uring

import (
	"fmt"
	"io"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

const (
	opSpliceIn  = opCancel + 1 + iota // SPLICE file -> pipe
	opSpliceOut                       // SPLICE pipe -> socket
)

// pipeSize is the pipe capacity asked for with F_SETPIPE_SZ.
const pipeSize = 1 << 20

// txPipe returns the stream's pipe, made on first use.
func (s *stream) txPipe() (r, w, size int, err error) {
	t := &s.tx
	if t.pipeR > 0 {
		return t.pipeR, t.pipeW, t.pipeSz, nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, 0, 0, fmt.Errorf("pipe: %w", err)
	}
	sz, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		sz, _ = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	}
	t.pipeR, t.pipeW, t.pipeSz = p[0], p[1], sz
	return p[0], p[1], sz, nil
}

// spliceFile sends msg (prefix and header, in a staging buffer) and n bytes
// of file ffd from off: one link chain (IOSQE_IO_LINK) of the header SEND
// and, per pipe-sized chunk, SPLICE file -> pipe and SPLICE pipe ->
// socket, up to maxChain chunks per submission. Everything is in one chain
// because io_uring does not order requests on a socket otherwise. A short
// splice ends the chain (the rest complete with ECANCELED); the next chain
// first drains what the pipe holds, then goes on from the file offset
// reached.
func (s *stream) spliceFile(msg []byte, ffd int, off int64, n int) error {
	t := &s.tx
	rg := t.ring
	pr, pw, psz, err := s.txPipe()
	if err != nil {
		return err
	}
	hoff, in, out := 0, 0, 0          // header bytes sent, file bytes in the pipe so far, bytes out of it
	const maxChain = minEntries/2 - 2 // chunks per chain: the chain fits the smallest ring
	submit := func() error {
		var last *giouring.SubmissionQueueEntry
		link := func(e *giouring.SubmissionQueueEntry) {
			if last != nil {
				last.Flags |= giouring.SqeIOLink
			}
			last = e
			t.inflight++
		}
		if hoff < len(msg) {
			e, err := rg.sqe()
			if err != nil {
				return err
			}
			prepSend(e, 0, msg[hoff:], sendFlags|unix.MSG_MORE, ud(opSendHdr, 0))
			link(e)
		}
		if pending := in - out; pending > 0 {
			e, err := rg.sqe()
			if err != nil {
				return err
			}
			e.PrepareSplice(pr, -1, 0, -1, uint32(pending), 0)
			e.Flags = giouring.SqeFixedFile
			if in < n {
				e.OpcodeFlags |= unix.SPLICE_F_MORE
			}
			e.UserData = ud(opSpliceOut, 0)
			link(e)
		}
		for pos, k := in, 0; pos < n && k < maxChain; k++ {
			c := min(psz, n-pos)
			e, err := rg.sqe()
			if err != nil {
				return err
			}
			e.PrepareSplice(ffd, off+int64(pos), pw, -1, uint32(c), unix.SPLICE_F_MOVE)
			e.UserData = ud(opSpliceIn, 0)
			link(e)
			e, err = rg.sqe()
			if err != nil {
				return err
			}
			e.PrepareSplice(pr, -1, 0, -1, uint32(c), 0)
			e.Flags = giouring.SqeFixedFile
			if pos+c < n {
				e.OpcodeFlags |= unix.SPLICE_F_MORE
			}
			e.UserData = ud(opSpliceOut, 0)
			link(e)
			pos += c
		}
		return nil
	}
	if err := submit(); err != nil {
		return err
	}
	return s.txRun(func(op, _ int, res int32, _ uint32) error {
		switch {
		case res == -int32(unix.ECANCELED):
			// A request before it in the chain failed or came up short.
			t.rechains++
		case res < 0 && retryable(res):
		case res < 0 && op == opSendHdr:
			return fmt.Errorf("send header: %w", cqeErr(res))
		case res < 0 && op == opSpliceIn:
			return fmt.Errorf("read file: %w", cqeErr(res))
		case res < 0:
			return fmt.Errorf("send: %w", cqeErr(res))
		case op == opSendHdr:
			hoff += int(res)
		case op == opSpliceIn && res == 0:
			return fmt.Errorf("file ended %d bytes early: %w", n-in, io.ErrUnexpectedEOF)
		case op == opSpliceIn:
			in += int(res)
		default:
			out += int(res)
		}
		if t.inflight == 0 && (hoff < len(msg) || out < n) {
			return submit()
		}
		return nil
	}, func() bool { return hoff == len(msg) && out == n && t.inflight == 0 })
}
