package mover

import (
	"errors"
	"io"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reader buffers the bytes arriving on a stream socket for a frame decoder.
// When no bytes are waiting it first polls the socket for up to its spin
// time before it sleeps: on a busy connection the next frame then costs no
// sleep and wake-up (several microseconds each on virtual machines), on an
// idle one it costs only the spin time of CPU.
//
// The daemon reads with one over the runtime's poller (NewReader: deadlines
// set on the connection apply); Client with one over a blocking descriptor
// (NewFDReader), whose wake-up is a few microseconds quicker. It is not
// safe for concurrent use.
type Reader struct {
	rc  syscall.RawConn // NewReader
	fd  int             // NewFDReader
	buf []byte
	// One read through rc: arguments and results of rawRead, bound once
	// to rfn so that a read allocates no closure.
	rp     []byte
	rblock bool
	rn     int
	rerr   error
	rfn    func(fd uintptr) bool
	r, w   int
	spin   time.Duration
	// Stop, if non-nil, is checked while spinning; when it returns true
	// Fill gives up with ErrStopped instead of waiting for more bytes.
	Stop func() bool
}

// ErrStopped is returned by Fill when Reader.Stop said to stop waiting.
var ErrStopped = errors.New("mover: stopped waiting for the peer")

// NewReader returns a Reader of rc with a buffer of size bytes that polls
// for up to spin before sleeping (0: never polls).
func NewReader(rc syscall.RawConn, size int, spin time.Duration) *Reader {
	r := &Reader{rc: rc, fd: -1, buf: make([]byte, size), spin: spin}
	r.rfn = r.rawRead
	return r
}

func (r *Reader) rawRead(fd uintptr) bool {
	r.rn, r.rerr = unix.Read(int(fd), r.rp)
	if r.rerr == unix.EAGAIN {
		return !r.rblock
	}
	return true
}

// NewFDReader returns a Reader of the stream socket fd, which must be in
// blocking mode: waiting for bytes blocks the calling thread in read(2).
// Interrupt it with shutdown(2) on fd.
func NewFDReader(fd int, size int, spin time.Duration) *Reader {
	return &Reader{fd: fd, buf: make([]byte, size), spin: spin}
}

// Buffered returns the bytes read but not yet discarded. They stay valid
// until the next Fill, Read or Discard.
func (r *Reader) Buffered() []byte { return r.buf[r.r:r.w] }

// Discard drops the first n buffered bytes.
func (r *Reader) Discard(n int) {
	r.r += n
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
}

// Fill reads until at least n bytes are buffered, growing the buffer if it
// is smaller than n. It returns io.ErrUnexpectedEOF if the peer closes the
// connection with a partial frame buffered and io.EOF if it closes it
// between frames.
func (r *Reader) Fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	if n > len(r.buf) {
		nb := make([]byte, max(n, 2*len(r.buf)))
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r, r.buf = 0, nb
	} else if r.r+n > len(r.buf) {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	for r.w-r.r < n {
		k, err := r.readSpin(r.buf[r.w:], true)
		if err != nil {
			if err == io.EOF && r.w > r.r {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		r.w += k
	}
	return nil
}

// readSpin reads at least one byte into p, polling for up to the spin time
// before waiting in the poller.
func (r *Reader) readSpin(p []byte, stoppable bool) (int, error) {
	var spinUntil time.Time
	for {
		block := r.spin <= 0 || (!spinUntil.IsZero() && time.Now().After(spinUntil))
		k, err := r.readOnce(p, block)
		if err != nil || k > 0 {
			return k, err
		}
		// Nothing waiting, still polling. Yield the CPU to any other
		// thread ready to run on it (the peer, perhaps): polling pays
		// only with a core to spare.
		if spinUntil.IsZero() {
			spinUntil = time.Now().Add(r.spin)
		}
		// unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		if stoppable && r.Stop != nil && r.Stop() {
			return 0, ErrStopped
		}
	}
}

// Shrink replaces a buffer grown past size by one of size bytes, keeping
// what is buffered, so an idle connection does not hold a large buffer.
func (r *Reader) Shrink(size int) {
	if len(r.buf) <= size || r.w-r.r > size {
		return
	}
	nb := make([]byte, size)
	r.w = copy(nb, r.buf[r.r:r.w])
	r.r, r.buf = 0, nb
}

// Read implements io.Reader: buffered bytes first, then straight from the
// socket into p (for data too large to buffer). Stop is not consulted: a
// frame being read is read to its end.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.w > r.r {
		n := copy(p, r.buf[r.r:r.w])
		r.Discard(n)
		return n, nil
	}
	return r.readSpin(p, false)
}

// readOnce makes one read. Without block it returns 0, nil when nothing is
// waiting; with block it waits.
func (r *Reader) readOnce(p []byte, block bool) (int, error) {
	if r.rc == nil {
		return r.readFD(p, block)
	}
	for {
		r.rp, r.rblock = p, block
		err := r.rc.Read(r.rfn)
		n, rerr := r.rn, r.rerr
		r.rp = nil
		if err != nil {
			return 0, err
		}
		switch {
		case rerr == unix.EINTR:
			continue
		case rerr == unix.EAGAIN:
			return 0, nil
		case rerr != nil:
			return 0, rerr
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (r *Reader) readFD(p []byte, block bool) (int, error) {
	flags := 0
	if !block {
		flags = unix.MSG_DONTWAIT
	}
	for {
		k, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(r.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(flags), 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN && !block:
			return 0, nil
		case errno != 0:
			return 0, errno
		case k == 0:
			return 0, io.EOF
		}
		return int(k), nil
	}
}
