package tcpzc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/internal/sockstream"
)

// rxBufSize is the receive buffer: small messages are read many at a time
// into it; payload reads of half its size or more bypass it.
const rxBufSize = 128 << 10

// errClosed is returned by every operation on a closed stream.
var errClosed = errors.New("tcp-zc: stream closed")

// stream is one tcp-zc data stream. The tx half is used by one sending
// goroutine and the rx half by one receiving goroutine at a time; their
// mutexes only guard against misuse and against Close.
type stream struct {
	conn  net.Conn
	rc    syscall.RawConn
	state sockstream.State

	tx struct {
		mu       sync.Mutex
		err      error // sticky: the byte stream is out of step after a failure
		zc       bool  // MSG_ZEROCOPY in use on this socket
		alwaysZC bool  // keep it even when the kernel reports copies
		zcMin    int
		// Zero-copy sends get consecutive ids from the kernel; completions
		// report ranges of them. Send waits until completed == issued.
		issued, completed uint32
		copied            bool        // a completion said the kernel copied anyway
		held              []byte      // payload abandoned to the kernel by a failed Send
		zcInFlight        atomic.Bool // the kernel may hold user pages: Close resets
		pre               [backends.PrefixLen + backends.MaxHeader]byte
		iov               [2]unix.Iovec
		msg               unix.Msghdr
		oob               [128]byte
	}
	rx sockstream.Rx
}

// Send writes hdr and payload as one message. Payloads of zcMin bytes or
// more go out with MSG_ZEROCOPY, and Send returns only after the kernel has
// released them.
func (s *stream) Send(hdr, payload []byte) error {
	if err := backends.CheckSizes(len(hdr), len(payload)); err != nil {
		return fmt.Errorf("tcp-zc: send: %w", err)
	}
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	if err := s.state.Ready(s.tx.err); err != nil {
		return err
	}
	backends.PutPrefix(s.tx.pre[:], len(hdr), len(payload))
	n := backends.PrefixLen + copy(s.tx.pre[backends.PrefixLen:], hdr)
	zc := s.tx.zc && len(payload) >= s.tx.zcMin
	flags := 0
	if zc {
		flags = unix.MSG_ZEROCOPY
		// Either this sees closed, or Close sees zcInFlight (both are
		// sequentially consistent) and resets the connection.
		s.tx.zcInFlight.Store(true)
		if s.state.Closed() {
			s.tx.zcInFlight.Store(false)
			return errClosed
		}
	}
	err := s.sendBufs(s.tx.pre[:n], payload, flags)
	if err == nil && zc {
		err = s.awaitCompletions()
	}
	// The kernel reads payload until its completions are in: keep it from
	// being collected (and its memory reused) before then, even if the
	// caller holds no other reference.
	runtime.KeepAlive(payload)
	if err != nil {
		if s.tx.issued != s.tx.completed {
			// Giving up with the kernel still holding payload's pages (the
			// peer stopped reading, or Close). Keep the memory alive for the
			// stream's lifetime; zcInFlight stays set so that Close resets
			// the connection and the unsent rest is dropped, not sent later.
			s.tx.held = payload
		} else {
			s.tx.zcInFlight.Store(false)
		}
		return s.state.Fail(&s.tx.err, "send", err)
	}
	s.tx.zcInFlight.Store(false)
	if s.tx.copied && !s.tx.alwaysZC {
		// The kernel copied anyway (loopback, or no scatter-gather on the
		// device): zero copy only adds pinning and completions. Stop.
		s.tx.zc = false
	}
	return nil
}

// SendFile writes hdr and then n bytes of f from off, which sendfile(2)
// moves from the page cache to the socket without a user-space copy.
func (s *stream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	fc, err := sockstream.FileRange(Name, hdr, f, off, n)
	if err != nil {
		return err
	}
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	if err := s.state.Ready(s.tx.err); err != nil {
		return err
	}
	backends.PutPrefix(s.tx.pre[:], len(hdr), n)
	hn := backends.PrefixLen + copy(s.tx.pre[backends.PrefixLen:], hdr)
	flags := 0
	if n > 0 {
		flags = unix.MSG_MORE // let the header share a segment with the data
	}
	err = s.sendBufs(s.tx.pre[:hn], nil, flags)
	if err == nil && n > 0 {
		var serr error
		if cerr := fc.Control(func(ffd uintptr) { serr = s.sendfile(int(ffd), off, n) }); cerr != nil {
			serr = cerr
		}
		err = serr
	}
	if err != nil {
		return s.state.Fail(&s.tx.err, "sendfile", err)
	}
	return nil
}

// sendBufs writes a then b completely with sendmsg(2), waiting for socket
// space with the runtime poller. With MSG_ZEROCOPY in flags it counts the
// ids of the sends the kernel accepted.
func (s *stream) sendBufs(a, b []byte, flags int) error {
	bufs := [2][]byte{a, b}
	var opErr error
	err := s.rc.Write(func(fd uintptr) bool {
		for len(bufs[0])+len(bufs[1]) > 0 {
			niov := 0
			for _, p := range bufs {
				if len(p) > 0 {
					s.tx.iov[niov].Base = &p[0]
					s.tx.iov[niov].SetLen(len(p))
					niov++
				}
			}
			s.tx.msg.Iov = &s.tx.iov[0]
			s.tx.msg.SetIovlen(niov)
			n, err := sendmsg(int(fd), &s.tx.msg, flags|unix.MSG_NOSIGNAL)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				if flags&unix.MSG_ZEROCOPY != 0 {
					// Keep the error queue short while we wait.
					if _, err := s.reapCompletions(int(fd)); err != nil {
						opErr = err
						return true
					}
				}
				return false
			case err == unix.ENOBUFS && flags&unix.MSG_ZEROCOPY != 0:
				// Completions not read yet hold the socket's optmem budget.
				got, err := s.reapCompletions(int(fd))
				if err != nil {
					opErr = err
					return true
				}
				if got > 0 {
					continue
				}
				if s.tx.completed == s.tx.issued {
					flags &^= unix.MSG_ZEROCOPY // nothing to wait for: copy this one
					continue
				}
				return false // a completion wakes writers (EPOLLERR)
			case err != nil:
				opErr = err
				return true
			}
			if flags&unix.MSG_ZEROCOPY != 0 && n > 0 {
				s.tx.issued++
			}
			for i := range bufs {
				k := min(n, len(bufs[i]))
				bufs[i] = bufs[i][k:]
				n -= k
			}
		}
		return true
	})
	// Do not keep the caller's buffers reachable from the stream.
	s.tx.iov = [2]unix.Iovec{}
	s.tx.msg.Iov = nil
	if err != nil {
		return err
	}
	return opErr
}

// awaitCompletions waits until the kernel has released every zero-copy
// send issued so far. Completions arrive on the socket's error queue, which
// makes the socket report EPOLLERR; the runtime poller wakes writers on it.
func (s *stream) awaitCompletions() error {
	var opErr error
	err := s.rc.Write(func(fd uintptr) bool {
		if _, err := s.reapCompletions(int(fd)); err != nil {
			opErr = err
			return true
		}
		return s.tx.completed == s.tx.issued
	})
	if err != nil {
		return err
	}
	return opErr
}

// reapCompletions reads every zero-copy completion queued on the socket's
// error queue and returns how many it read.
func (s *stream) reapCompletions(fd int) (int, error) {
	got := 0
	for {
		oobn, err := recvmsgErrQueue(fd, s.tx.oob[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return got, nil
		case err != nil:
			return got, fmt.Errorf("read zerocopy completions: %w", err)
		}
		msgs, err := unix.ParseSocketControlMessage(s.tx.oob[:oobn])
		if err != nil {
			return got, fmt.Errorf("parse zerocopy completion: %w", err)
		}
		for _, m := range msgs {
			ipv4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
			ipv6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
			if !ipv4 && !ipv6 || len(m.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
				continue
			}
			ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
			if ee.Errno != 0 {
				return got, fmt.Errorf("socket error queue: %w", syscall.Errno(ee.Errno))
			}
			if ee.Origin != unix.SO_EE_ORIGIN_ZEROCOPY {
				continue
			}
			s.tx.completed += ee.Data - ee.Info + 1 // ids Info..Data, inclusive
			if ee.Code&unix.SO_EE_CODE_ZEROCOPY_COPIED != 0 {
				s.tx.copied = true
			}
			got++
		}
	}
}

// sendfile sends n (> 0) bytes of the file ffd from off on the socket.
func (s *stream) sendfile(ffd int, off int64, n int) error {
	return pollLoop(s.rc.Write,
		func(fd int) (int, error) { return unix.Sendfile(fd, ffd, &off, min(n, 1<<30)) },
		func(m int) bool { n -= m; return n > 0 },
		func() error { return fmt.Errorf("file ended %d bytes early: %w", n, io.ErrUnexpectedEOF) })
}

// pollLoop calls op, a nonblocking call on the socket, inside wait (the
// runtime poller's s.rc.Write or s.rawRead) until more, given the count op
// returned, says it is done: again at once on EINTR, once the poller
// reports the socket ready on EAGAIN. An error ends it, and so does a
// count of 0, with the error short makes.
func pollLoop(wait func(func(fd uintptr) bool) error, op func(fd int) (int, error), more func(n int) bool, short func() error) error {
	var opErr error
	err := wait(func(fd uintptr) bool {
		for {
			m, err := op(int(fd))
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				opErr = err
				return true
			case m == 0:
				opErr = short()
				return true
			}
			if !more(m) {
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

// Recv reads the next message's header into hbuf. Payload bytes of the
// previous message that were not consumed are skipped.
func (s *stream) Recv(hbuf []byte) ([]byte, int, error) { return s.rx.Recv(&s.state, nil, hbuf) }

// RecvPayload reads the next len(p) payload bytes of the current message.
func (s *stream) RecvPayload(p []byte) error { return s.rx.RecvPayload(&s.state, nil, p) }

// read reads at least one byte into p, waiting with the runtime poller.
func (s *stream) read(p []byte) (int, error) {
	var n int
	err := pollLoop(s.rawRead,
		func(fd int) (int, error) { return unix.Read(fd, p) },
		func(m int) bool { n = m; return false },
		func() error { return fmt.Errorf("connection closed by peer: %w", io.ErrUnexpectedEOF) })
	return n, err
}

// rawRead is s.rc.Read, made robust against one quirk of the runtime
// poller: when epoll reports EPOLLERR alone for a socket, Go marks it so
// that readers get an error ("not pollable") instead of waiting. A socket
// whose error queue holds MSG_ZEROCOPY completions while it is neither
// readable nor writable (send buffer full, nothing received: the usual state
// of a bulk sender) reports exactly that. Such a reader falls back to
// poll(2) until the next ordinary event clears the mark.
func (s *stream) rawRead(f func(fd uintptr) bool) error {
	for {
		err := s.rc.Read(f)
		if err == nil || s.state.Closed() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		done := false
		var perr error
		cerr := s.rc.Control(func(fd uintptr) {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 100)
			if err != nil && err != unix.EINTR {
				perr = fmt.Errorf("poll: %w", err)
				return
			}
			if n > 0 && pfd[0].Revents&(unix.POLLIN|unix.POLLHUP) == 0 {
				// Only the error queue (the sender's completions): give the
				// sender a moment to collect them rather than spin.
				unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
			}
			done = f(fd)
		})
		if cerr != nil {
			return cerr
		}
		if perr != nil {
			return perr
		}
		if done {
			return nil
		}
	}
}

// Close closes the socket, which unblocks a pending Send or Recv.
func (s *stream) Close() error {
	return s.state.Close(func() error {
		if s.tx.zcInFlight.Load() {
			if tc, ok := s.conn.(interface{ SetLinger(int) error }); ok {
				tc.SetLinger(0)
			}
		}
		if err := s.conn.Close(); err != nil {
			return fmt.Errorf("tcp-zc: close: %w", err)
		}
		return nil
	})
}

// sendmsg is sendmsg(2) without the allocations of the x/sys wrappers.
func sendmsg(fd int, msg *unix.Msghdr, flags int) (int, error) {
	n, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recvmsgErrQueue reads one message from the socket's error queue into oob
// and returns the control length.
func recvmsgErrQueue(fd int, oob []byte) (int, error) {
	var msg unix.Msghdr
	msg.Control = &oob[0]
	msg.SetControllen(len(oob))
	_, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_ERRQUEUE)
	if e != 0 {
		return 0, e
	}
	return int(msg.Controllen), nil
}
