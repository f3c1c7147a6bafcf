package backendtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
)

// maxBlob bounds one Exchange blob, like the control session does.
const maxBlob = 1 << 20

// Rendezvous is a real backends.Rendezvous for tests: data sockets come from
// a TCP listener on 127.0.0.1 (the dialing side dials, the other side
// accepts) and Exchange blobs travel length-prefixed over a separate TCP
// control connection. Each data socket starts with its 4-byte little-endian
// index, which the accepting side consumes, so Conn(ctx, i) returns the same
// connection on both sides whatever the accept order.
type Rendezvous struct {
	dialer bool
	addr   string           // data listener address, dialing side
	ln     *net.TCPListener // data listener, accepting side
	ctrl   net.Conn

	mu      sync.Mutex
	pending map[uint32]*net.TCPConn // accepted, not yet asked for
	handed  []*net.TCPConn          // returned by Conn, for Kill and cleanup
}

var _ backends.Rendezvous = (*Rendezvous)(nil)

// Pair returns the two ends of a fresh session on loopback. Everything it
// opens, including the data sockets it hands out, is closed when tb ends.
func Pair(tb testing.TB) (dialer, acceptor *Rendezvous) {
	tb.Helper()
	dataLn, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatalf("backendtest: listen for data sockets: %v", err)
	}
	ctrlLn, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		dataLn.Close()
		tb.Fatalf("backendtest: listen for control: %v", err)
	}
	defer ctrlLn.Close()

	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ctrlLn.Accept()
		ch <- accepted{c, err}
	}()
	dc, err := net.DialTimeout("tcp", ctrlLn.Addr().String(), 10*time.Second)
	if err != nil {
		dataLn.Close()
		tb.Fatalf("backendtest: dial control: %v", err)
	}
	a := <-ch
	if a.err != nil {
		dataLn.Close()
		dc.Close()
		tb.Fatalf("backendtest: accept control: %v", a.err)
	}
	dialer = &Rendezvous{dialer: true, addr: dataLn.Addr().String(), ctrl: dc}
	acceptor = &Rendezvous{ln: dataLn, ctrl: a.c, pending: map[uint32]*net.TCPConn{}}
	tb.Cleanup(func() {
		dialer.close()
		acceptor.close()
	})
	return dialer, acceptor
}

// Over returns a Rendezvous whose Exchange runs over c, a control
// connection to a peer in another process, and whose data sockets come
// from the accepting side's listener: the dialing side (dialer true) dials
// addr, the accepting side accepts on the listener it made for addr (pass
// it as ln; ln is then the Rendezvous's, closed with what it hands out by
// the caller's Close of ln). c is the caller's to close.
func Over(c net.Conn, dialer bool, addr string, ln *net.TCPListener) *Rendezvous {
	if dialer {
		return &Rendezvous{dialer: true, addr: addr, ctrl: c}
	}
	return &Rendezvous{ln: ln, ctrl: c, pending: map[uint32]*net.TCPConn{}}
}

// close releases everything the rendezvous opened or handed out.
func (r *Rendezvous) close() {
	r.ctrl.Close()
	if r.ln != nil {
		r.ln.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.pending {
		c.Close()
	}
	for _, c := range r.handed {
		c.Close() // the transport may have closed it already; that is fine
	}
}

// Kill makes the data sockets this side handed out vanish abruptly, the way
// a crashed process's sockets do: SO_LINGER 0 then close, so the kernel
// resets the connections once no other reference (a dup, an io_uring fixed
// file table) holds them open.
func (r *Rendezvous) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.handed {
		c.SetLinger(0)
		c.Close()
	}
}

// Conn implements backends.Rendezvous.
func (r *Rendezvous) Conn(ctx context.Context, i int) (net.Conn, error) {
	if i < 0 || i > 1<<16 {
		return nil, fmt.Errorf("backendtest: data socket index %d out of range", i)
	}
	var c *net.TCPConn
	var err error
	switch {
	case r.addr == "" && r.ln == nil:
		return nil, errors.New("backendtest: this rendezvous has no data sockets")
	case r.dialer:
		c, err = r.dial(ctx, uint32(i))
	default:
		c, err = r.accept(ctx, uint32(i))
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.handed = append(r.handed, c)
	r.mu.Unlock()
	return c, nil
}

func (r *Rendezvous) dial(ctx context.Context, i uint32) (*net.TCPConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, fmt.Errorf("backendtest: dial data socket %d: %w", i, err)
	}
	c := nc.(*net.TCPConn)
	var idx [4]byte
	binary.LittleEndian.PutUint32(idx[:], i)
	stop := deadlineFromContext(ctx, c)
	_, err = c.Write(idx[:])
	stop()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("backendtest: bind data socket %d: %w", i, err)
	}
	return c, nil
}

func (r *Rendezvous) accept(ctx context.Context, i uint32) (*net.TCPConn, error) {
	for {
		r.mu.Lock()
		c, ok := r.pending[i]
		delete(r.pending, i)
		r.mu.Unlock()
		if ok {
			return c, nil
		}
		stop := deadlineFromContext(ctx, r.ln)
		c, err := r.ln.AcceptTCP()
		stop()
		if err != nil {
			return nil, fmt.Errorf("backendtest: accept data socket %d: %w", i, err)
		}
		var idx [4]byte
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(c, idx[:])
		c.SetReadDeadline(time.Time{})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("backendtest: read data socket index: %w", err)
		}
		got := binary.LittleEndian.Uint32(idx[:])
		if got == i {
			return c, nil
		}
		r.mu.Lock()
		if old, dup := r.pending[got]; dup {
			old.Close()
		}
		r.pending[got] = c
		r.mu.Unlock()
	}
}

// Exchange implements backends.Rendezvous.
func (r *Rendezvous) Exchange(ctx context.Context, blob []byte) ([]byte, error) {
	if len(blob) > maxBlob {
		return nil, fmt.Errorf("backendtest: exchange blob of %d bytes exceeds %d", len(blob), maxBlob)
	}
	stop := deadlineFromContext(ctx, r.ctrl)
	defer stop()
	werr := make(chan error, 1)
	go func() {
		msg := make([]byte, 4+len(blob))
		binary.LittleEndian.PutUint32(msg, uint32(len(blob)))
		copy(msg[4:], blob)
		_, err := r.ctrl.Write(msg)
		werr <- err
	}()
	var n [4]byte
	_, rerr := io.ReadFull(r.ctrl, n[:])
	var peer []byte
	if rerr == nil {
		size := binary.LittleEndian.Uint32(n[:])
		if size > maxBlob {
			rerr = fmt.Errorf("peer blob of %d bytes exceeds %d", size, maxBlob)
		} else {
			peer = make([]byte, size)
			_, rerr = io.ReadFull(r.ctrl, peer)
		}
	}
	if rerr != nil {
		r.ctrl.SetDeadline(time.Unix(1, 0)) // unblock the writer
	}
	if err := <-werr; err != nil && rerr == nil {
		rerr = err
	}
	if rerr != nil {
		return nil, fmt.Errorf("backendtest: exchange: %w", rerr)
	}
	return peer, nil
}

type deadliner interface{ SetDeadline(time.Time) error }

// deadlineFromContext applies ctx's deadline to d and expires it at once if
// ctx is cancelled; the returned func undoes both.
func deadlineFromContext(ctx context.Context, d deadliner) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		d.SetDeadline(dl)
	}
	fired := make(chan struct{})
	unhook := context.AfterFunc(ctx, func() {
		d.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !unhook() {
			<-fired // let the expiry land before clearing it
		}
		d.SetDeadline(time.Time{})
	}
}
