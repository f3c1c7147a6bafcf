// Package uring implements the "uring" data transport: TCP streams driven
// through io_uring (github.com/pawelgaczynski/giouring, pure Go, no cgo).
//
// Each stream has two rings of Params.UringEntries entries (default 256),
// one per direction, because the Stream contract lets one goroutine send
// while another receives and a ring's queues are single-producer,
// single-consumer. Each ring registers the data socket in its file table
// and its staging memory as fixed buffers (io_uring_register_buffers), so
// the kernel neither looks up the socket nor pins the staging pages per
// operation.
//
// Sending:
//   - SendFile sends the header (IORING_OP_SEND, MSG_MORE) linked
//     (IOSQE_IO_LINK) to, per pipe-sized chunk, IORING_OP_SPLICE file ->
//     pipe and IORING_OP_SPLICE pipe -> socket, one chain per submission:
//     io_uring's sendfile, page references from the page cache, no copy
//     into staging memory. Each stream has one pipe of up to 1 MiB
//     (F_SETPIPE_SZ), made on the first SendFile (splice.go).
//   - Send of a payload of ZeroCopyThreshold bytes or more sends the header
//     from a fixed buffer linked (IOSQE_IO_LINK) to an IORING_OP_SEND_ZC of
//     the caller's memory, in one submission, and returns after the
//     notification, so the caller may reuse the buffer at once.
//   - Smaller messages are coalesced (batch.go): Send copies them into a
//     staging batch, which one non-blocking IORING_OP_SEND sends; messages
//     sent back to back go to a flusher goroutine in batches while the
//     next ones collect, so one io_uring_enter carries many.
//   - Only one send is in flight per socket at a time: io_uring does not
//     order independent sends on a stream socket.
//
// Receiving reads into a fixed buffer (IORING_OP_READ_FIXED on the socket,
// RWF_NOWAIT), which serves the headers and small payloads of many
// messages per completion; payload reads of half its size or more go
// straight into the caller's buffer with IORING_OP_RECV. Small sends and
// all receives complete within their submission; while the socket is not
// ready the goroutine waits in Go's network poller. An idle stream (a
// request, a ping) sends its isolated message with write(2) and receives
// with read(2), which cost less than a one-request io_uring_enter. Requests that stay in
// flight are waited for with a bounded spin and then on an eventfd
// registered with the ring, read through the poller, so no thread blocks
// in io_uring_enter (docs/design.md, "io_uring from Go", says why
// receives are not kept posted).
//
// Close shuts the socket down, which completes pending socket requests; a
// wait that nothing completes (a zero-copy notification held by a peer that
// stopped acknowledging) gives up after a short slice and cancels with
// IORING_OP_ASYNC_CANCEL.
//
// giouring reaches runtime internals through go:linkname, which Go 1.23 and
// later refuse to link by default: build with -ldflags=-checklinkname=0.
package uring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/backends/internal/sockstream"
)

// Name is the transport's wire and command-line name.
const Name = "uring"

// DefaultEntries is the ring size when Params.UringEntries is 0.
const DefaultEntries = 256

// Ring sizes are clamped to [minEntries, maxEntries]: below minEntries a
// SendFile pipeline's submissions would not fit; maxEntries is the kernel's
// limit.
const (
	minEntries = 16
	maxEntries = 32768
)

// ZeroCopyThreshold is the payload size from which Send uses SEND_ZC from
// the caller's memory rather than copying into a fixed buffer.
const ZeroCopyThreshold = 64 << 10

// version is exchanged at Open so mismatched peers refuse each other.
const version = "xfer/uring/1"

type transport struct {
	zcMin    int  // payload size from which Send uses SEND_ZC
	alwaysZC bool // keep SEND_ZC even when the kernel reports copies
	noFixed  bool // do not register buffers (tests the fallback path)
}

func init() {
	backends.Register(&transport{zcMin: ZeroCopyThreshold})
}

func (t *transport) Name() string { return Name }

// neededOps are the opcodes the transport issues, with the kernel release
// that brought each.
var neededOps = []struct {
	op    uint8
	name  string
	linux string
}{
	{giouring.OpReadFixed, "IORING_OP_READ_FIXED", "5.1"},
	{giouring.OpRead, "IORING_OP_READ", "5.6"},
	{giouring.OpSend, "IORING_OP_SEND", "5.6"},
	{giouring.OpRecv, "IORING_OP_RECV", "5.6"},
	{giouring.OpAsyncCancel, "IORING_OP_ASYNC_CANCEL", "5.5"},
	{giouring.OpSplice, "IORING_OP_SPLICE", "5.7"},
	{giouring.OpSendZC, "IORING_OP_SEND_ZC", "6.0"},
}

// Probe checks that io_uring is allowed here (kernel.io_uring_disabled,
// seccomp) and that the kernel knows every opcode the transport uses.
func (t *transport) Probe() error {
	disabled := ""
	if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil {
		disabled = strings.TrimSpace(string(b))
	}
	if disabled == "2" {
		return errors.New("uring: io_uring is disabled on this system (sysctl kernel.io_uring_disabled=2)")
	}
	r := giouring.NewRing()
	if err := r.QueueInit(4, 0); err != nil {
		switch {
		case errors.Is(err, unix.EPERM) && disabled == "1":
			return fmt.Errorf("uring: io_uring is restricted to root and the kernel.io_uring_group group (sysctl kernel.io_uring_disabled=1): %w", err)
		case errors.Is(err, unix.EPERM):
			return fmt.Errorf("uring: io_uring_setup not permitted (a seccomp profile, such as a container runtime's default, may block it): %w", err)
		case errors.Is(err, unix.ENOSYS):
			return fmt.Errorf("uring: kernel without io_uring (before 5.1, or CONFIG_IO_URING off): %w", err)
		case errors.Is(err, unix.ENOMEM):
			return fmt.Errorf("uring: io_uring_setup: out of locked memory (RLIMIT_MEMLOCK): %w", err)
		}
		return fmt.Errorf("uring: io_uring_setup: %w", err)
	}
	defer r.QueueExit()
	probe, err := r.GetProbeRing()
	if err != nil {
		return fmt.Errorf("uring: IORING_REGISTER_PROBE failed (kernel before 5.6?): %w", err)
	}
	var missing []string
	for _, o := range neededOps {
		if !probe.IsSupported(o.op) {
			missing = append(missing, fmt.Sprintf("%s (Linux %s)", o.name, o.linux))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("uring: kernel lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// Open takes the session's p.Streams data sockets from rv and sets up two
// rings of p.UringEntries entries for each.
func (t *transport) Open(ctx context.Context, rv backends.Rendezvous, p backends.Params) ([]backends.Stream, error) {
	entries := p.UringEntries
	if entries == 0 {
		entries = DefaultEntries
	}
	entries = min(max(entries, minEntries), maxEntries)
	return sockstream.Open(ctx, rv, p, Name, version, func(c net.Conn) (backends.Stream, error) {
		return newStream(c, uint32(entries), t)
	})
}

// newStream sets up the rings of one connected socket. The socket stays
// owned by c (Close closes it); the rings reference it through their file
// tables.
func newStream(c net.Conn, entries uint32, t *transport) (*stream, error) {
	rc, err := sockstream.RawConn(c)
	if err != nil {
		return nil, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	s := &stream{conn: c, rc: rc, zcMin: t.zcMin, alwaysZC: t.alwaysZC}
	s.state.Init(Name, errClosed)
	txBufs := make([]int, txSlots)
	for i := range txBufs {
		txBufs[i] = headroom + slotSize
	}
	if s.tx.ring, err = newRing(entries, fd, 2, txBufs, !t.noFixed); err != nil {
		return nil, fmt.Errorf("send ring: %w", err)
	}
	if s.rx.ring, err = newRing(entries, fd, 1, []int{rxBufSize}, !t.noFixed); err != nil {
		s.tx.ring.close()
		return nil, fmt.Errorf("receive ring: %w", err)
	}
	s.rx.In.Init(s.rx.ring.bufs[0], s.recv, s.recvDirect)
	s.startBatcher(s.tx.ring.bufs[0], s.tx.ring.bufs[1])
	return s, nil
}
