package uring

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// waitSlice bounds one wait for completions, so that a goroutine blocked in
// io_uring_enter notices Close even when no completion would wake it (a
// zero-copy notification held up by a peer that stopped acknowledging).
const waitSlice = 200 * time.Millisecond

// errSlice reports that a wait slice passed without a completion.
var errSlice = errors.New("uring: no completion within the wait slice")

// ring is one io_uring instance with its staging memory and file table. It
// is used by one goroutine at a time: io_uring's submission and completion
// queues are single-producer, single-consumer.
type ring struct {
	r     *giouring.Ring
	mem   []byte   // mmap'd staging memory
	bufs  [][]byte // views of mem; with fixed, bufs[i] is fixed buffer i
	fixed bool     // bufs are registered (io_uring_register_buffers)
	// fixedErr says why registering bufs failed (RLIMIT_MEMLOCK, usually);
	// the ring then reads into them with plain READ/RECV and sends without
	// IORING_RECVSEND_FIXED_BUF.
	fixedErr error
	files    []int32 // registered file table; -1 is an empty slot
	cqes     []*giouring.CompletionQueueEvent
	// evf is an eventfd registered with the ring (IORING_REGISTER_EVENTFD):
	// the kernel signals it as it posts completions. Waiting for a
	// completion reads it through Go's network poller, so the goroutine
	// parks like one waiting on a socket instead of blocking its thread in
	// io_uring_enter (which costs a thread hand-off on wake-up).
	evf *os.File
	// cqFlags is the completion ring's flags word, shared with the kernel
	// (IORING_CQ_EVENTFD_DISABLED). giouring's CqEventfdToggle refuses to
	// change it while it is 0 (it tests the value where liburing tests the
	// pointer), so the ring sets it through this pointer.
	cqFlags *uint32
}

// newRing sets up a ring of entries entries whose file table is sockfd
// followed by nfiles-1 empty slots, with staging buffers of the given sizes,
// registered as fixed buffers if register is set and the kernel lets us.
func newRing(entries uint32, sockfd, nfiles int, bufSizes []int, register bool) (_ *ring, err error) {
	r := giouring.NewRing()
	if err := r.QueueInit(entries, 0); err != nil {
		return nil, fmt.Errorf("io_uring_setup(%d entries): %w", entries, err)
	}
	rg := &ring{r: r}
	// giouring's PeekBatchCQE fills all of its slice whatever is ready
	// (it clamps the count after computing the loop's end), so reap
	// peeks in small batches.
	rg.cqes = make([]*giouring.CompletionQueueEvent, reapBatch)
	defer func() {
		if err != nil {
			rg.close()
		}
	}()

	page := unix.Getpagesize()
	total := 0
	for _, n := range bufSizes {
		total += (n + page - 1) &^ (page - 1)
	}
	if total > 0 {
		rg.mem, err = unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("mmap %d bytes of staging buffers: %w", total, err)
		}
		iovs := make([]syscall.Iovec, len(bufSizes))
		off := 0
		for i, n := range bufSizes {
			rg.bufs = append(rg.bufs, rg.mem[off:off+n:off+n])
			iovs[i].Base = &rg.mem[off]
			iovs[i].SetLen(n)
			off += (n + page - 1) &^ (page - 1)
		}
		if !register {
			rg.fixedErr = errors.New("fixed buffers not wanted")
		} else if _, err := r.RegisterBuffers(iovs); err != nil {
			rg.fixedErr = fmt.Errorf("register %d bytes of fixed buffers: %w", total, err)
		} else {
			rg.fixed = true
		}
	}

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	rg.evf = os.NewFile(uintptr(efd), "io_uring eventfd")
	efd32 := int32(efd)
	if errno := rg.register(giouring.RegisterEventFD, unsafe.Pointer(&efd32), 1); errno != 0 {
		return nil, fmt.Errorf("io_uring_register eventfd: %w", errno)
	}
	rg.cqFlags = (*uint32)(reflect.ValueOf(r).Elem().FieldByName("cqRing").Elem().FieldByName("flags").UnsafePointer())
	rg.eventfd(false) // on only while a goroutine waits (wait)

	rg.files = make([]int32, nfiles)
	for i := range rg.files {
		rg.files[i] = -1
	}
	rg.files[0] = int32(sockfd)
	if errno := rg.register(giouring.RegisterFiles, unsafe.Pointer(&rg.files[0]), uint32(nfiles)); errno != 0 {
		return nil, fmt.Errorf("io_uring_register files: %w", errno)
	}
	return rg, nil
}

// register is io_uring_register(2). (giouring's RegisterFiles passes Go ints
// where the kernel reads 32-bit fds, and drops errors; this does neither.)
func (rg *ring) register(op uint32, arg unsafe.Pointer, n uint32) syscall.Errno {
	for {
		_, errno := rg.r.Register(rg.r.RingFd(), op, arg, n)
		if errno != unix.EINTR {
			return errno
		}
	}
}

// unregisterFiles drops the ring's references to the files in its table.
func (rg *ring) unregisterFiles() {
	rg.register(giouring.UnregisterFiles, nil, 0)
}

// sqe returns a cleared submission queue entry, submitting what is queued
// if the queue is full.
func (rg *ring) sqe() (*giouring.SubmissionQueueEntry, error) {
	e := rg.r.GetSQE()
	if e == nil {
		if _, err := rg.r.Submit(); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("io_uring_enter: %w", err)
		}
		if e = rg.r.GetSQE(); e == nil {
			return nil, errors.New("io_uring submission queue full")
		}
	}
	*e = giouring.SubmissionQueueEntry{}
	return e, nil
}

// The prep functions fill an SQE. giouring's PrepareSendZC* pass the address
// of the slice header instead of the data, so the fields are set directly.
// File indexes are into the ring's registered file table.

// prepRW fills what every data operation sets: opcode op on the file,
// the bytes of p, the request's user data.
func prepRW(e *giouring.SubmissionQueueEntry, op uint8, file int, p []byte, ud uint64) {
	e.OpCode = op
	e.Flags = giouring.SqeFixedFile
	e.Fd = int32(file)
	e.Addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	e.Len = uint32(len(p))
	e.UserData = ud
}

func prepSend(e *giouring.SubmissionQueueEntry, file int, p []byte, msgFlags int, ud uint64) {
	prepRW(e, giouring.OpSend, file, p, ud)
	e.OpcodeFlags = uint32(msgFlags)
}

// prepSendZC prepares IORING_OP_SEND_ZC of p; buf is the fixed buffer p
// lies in, or -1.
func prepSendZC(e *giouring.SubmissionQueueEntry, file int, p []byte, buf int, msgFlags int, ud uint64) {
	prepSend(e, file, p, msgFlags, ud)
	e.OpCode = giouring.OpSendZC
	if buf >= 0 {
		e.IoPrio = giouring.RecvsendFixedBuf
		e.BufIG = uint16(buf)
	}
}

// prepRead prepares a read of len(p) bytes at off of the file (off 0 for a
// socket) into p, which lies in fixed buffer buf, or -1.
func prepRead(e *giouring.SubmissionQueueEntry, file int, p []byte, off int64, buf int, ud uint64) {
	op := giouring.OpRead
	if buf >= 0 {
		op = giouring.OpReadFixed
		e.BufIG = uint16(buf)
	}
	prepRW(e, op, file, p, ud)
	e.Off = uint64(off)
}

func prepRecv(e *giouring.SubmissionQueueEntry, file int, p []byte, msgFlags int, ud uint64) {
	prepSend(e, file, p, msgFlags, ud)
	e.OpCode = giouring.OpRecv
}

// prepCancelAll prepares IORING_OP_ASYNC_CANCEL of every request in flight.
func prepCancelAll(e *giouring.SubmissionQueueEntry, ud uint64) {
	e.OpCode = giouring.OpAsyncCancel
	e.Fd = -1
	e.OpcodeFlags = giouring.AsyncCancelAny
	e.UserData = ud
}

// reapBatch is how many completions reap takes per peek.
const reapBatch = 16

// spinFor bounds the busy wait for a completion before the goroutine
// parks on the eventfd: a reply on loopback or a send the kernel finishes
// on another core comes within it, and a wait that long costs less than a
// park and a wake-up. It is short because this machine's cores are shared.
const spinFor = 4 * time.Microsecond

// submit submits the queued entries without waiting for completions.
func (rg *ring) submit() error {
	for {
		_, err := rg.r.Submit()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EBUSY):
			// Out of resources or completions to reap first: let the
			// caller reap, then come back.
			if rg.r.CQReady() > 0 {
				return nil
			}
			time.Sleep(50 * time.Microsecond)
		default:
			return fmt.Errorf("io_uring_enter: %w", err)
		}
	}
}

// submitAndWait submits the queued entries and waits for at least one
// completion; errSlice means the wait slice passed without one.
func (rg *ring) submitAndWait() error {
	if err := rg.submit(); err != nil {
		return err
	}
	return rg.wait(waitSlice)
}

// wait waits up to d for a completion: a bounded spin on the completion
// queue, then parked on the eventfd. errSlice means none came.
func (rg *ring) wait(d time.Duration) error {
	if rg.r.CQReady() > 0 {
		return nil
	}
	start := time.Now()
	for i := 0; i < 1000 && time.Since(start) < spinFor; i++ {
		if rg.r.CQReady() > 0 {
			return nil
		}
	}
	var b [8]byte
	deadline := start.Add(d)
	// The kernel signals the eventfd only while someone waits on it: a
	// signal per completion costs a wake-up of the eventfd's wait queue.
	rg.eventfd(true)
	defer rg.eventfd(false)
	for rg.r.CQReady() == 0 {
		if time.Now().After(deadline) {
			return errSlice
		}
		if err := rg.evf.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("eventfd deadline: %w", err)
		}
		// The count is only a wake-up: completions are read from the
		// queue, so a stale count merely loops once more.
		if _, err := rg.evf.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("eventfd read: %w", err)
		}
	}
	return nil
}

// eventfd turns the kernel's signalling of the eventfd on or off.
func (rg *ring) eventfd(on bool) {
	f := atomic.LoadUint32(rg.cqFlags)
	if on {
		f &^= giouring.CQEventFdDisabled
	} else {
		f |= giouring.CQEventFdDisabled
	}
	atomic.StoreUint32(rg.cqFlags, f)
}

// reap hands every available completion to f and marks them seen.
func (rg *ring) reap(f func(ud uint64, res int32, flags uint32)) {
	for {
		n := rg.r.PeekBatchCQE(rg.cqes)
		if n == 0 {
			return
		}
		for _, c := range rg.cqes[:n] {
			f(c.UserData, c.Res, c.Flags)
		}
		rg.r.CQAdvance(n)
	}
}

// close tears the ring down. Requests still in flight are cancelled by the
// kernel; pages it still holds (zero-copy sends) stay pinned until it is
// done, so unmapping the staging memory here is safe.
func (rg *ring) close() {
	if rg.r != nil {
		rg.r.QueueExit()
		rg.r = nil
	}
	if rg.evf != nil {
		rg.evf.Close()
		rg.evf = nil
	}
	if rg.mem != nil {
		unix.Munmap(rg.mem)
		rg.mem, rg.bufs = nil, nil
	}
}

// cqeErr turns a negative completion result into an error.
func cqeErr(res int32) error {
	return syscall.Errno(-res)
}

// retryable reports whether a failed request should simply be reissued.
func retryable(res int32) bool {
	e := syscall.Errno(-res)
	return e == unix.EAGAIN || e == unix.EINTR
}
