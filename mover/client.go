package mover

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors a Client's methods return, wrapped in a *OpError; test with
// errors.Is.
var (
	// ErrNotFound: no object with that id (in the store, or on the peer).
	ErrNotFound = errors.New("mover: object not found")
	// ErrCorrupt: content does not hash to its id (stored content found
	// damaged, or content given with an id it does not match).
	ErrCorrupt = errors.New("mover: content does not match its id")
	// ErrPeer: the peer could not be reached, or refused or failed the
	// transfer.
	ErrPeer = errors.New("mover: peer failed")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("mover: client closed")
)

// OpError is a response other than OK, as an error.
type OpError struct {
	Op     Op
	ID     string
	Status Status
	Msg    string
}

func (e *OpError) Error() string {
	s := "mover: " + e.Op.String()
	if e.ID != "" {
		s += " " + e.ID
	}
	s += ": " + e.Status.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is makes errors.Is(err, ErrNotFound) and the like work.
func (e *OpError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == StatusNotFound
	case ErrCorrupt:
		return e.Status == StatusCorrupt
	case ErrPeer:
		return e.Status == StatusPeer
	}
	return false
}

// Err returns nil for OK and LOCATED, else a *OpError describing r as
// the answer to a request of op on id.
func (r *Response) Err(op Op, id string) error {
	if r.Status == StatusOK || r.Status == StatusLocated {
		return nil
	}
	return &OpError{Op: op, ID: id, Status: r.Status, Msg: string(r.Data)}
}

// Options tune a Client. The zero value is the default.
type Options struct {
	// MaxIdle is how many idle connections the Client keeps for reuse
	// (default 4). A request uses one connection; concurrent requests
	// open more.
	MaxIdle int
	// Spin is how long a request polls for its response before its thread
	// sleeps (default DefaultSpin; negative: sleep at once). Most requests
	// are answered within it, which spares them a sleep and wake-up (10 µs
	// or more on virtual machines) at the price of up to that much CPU.
	Spin time.Duration
	// NoMap makes ReadMapped always read bytes through the socket.
	NoMap bool
	// VerifyMapped makes ReadMapped hash what it returns on every call
	// (about 5 µs per 4 KiB), instead of trusting the daemon's verification
	// of the object.
	VerifyMapped bool
	// MapCache bounds the object locations ReadMapped remembers (default
	// 65536).
	MapCache int
}

// Client talks to an xfer daemon over its Unix socket. It is safe for
// concurrent use; each request takes a connection of its own from a pool.
type Client struct {
	path   string
	o      Options
	mu     sync.Mutex
	idle   []*clientConn
	closed bool
	maps   *fileMaps
	locs   *locCache
}

// Dial connects to the daemon listening on the Unix socket at path, with
// default options.
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path, Options{})
}

// DefaultSpin is Options.Spin's default.
const DefaultSpin = 20 * time.Microsecond

// DialContext connects to the daemon at path with options o.
func DialContext(ctx context.Context, path string, o Options) (*Client, error) {
	switch {
	case o.Spin == 0:
		o.Spin = DefaultSpin
	case o.Spin < 0:
		o.Spin = 0
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 4
	}
	if o.MapCache <= 0 {
		o.MapCache = 1 << 16
	}
	c := &Client{path: path, o: o, maps: newFileMaps(), locs: newLocCache(o.MapCache)}
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.put(cc)
	return c, nil
}

// clientConn is one connection to the daemon: a Unix socket in blocking
// mode, used by one request at a time. Waiting for an answer blocks the
// thread in read(2), which wakes quicker than the runtime's poller; a
// cancelled context interrupts it with shutdown(2).
type clientConn struct {
	fd int
	rd *Reader
	wb []byte
}

func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mover: socket: %w", err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: c.path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mover: connect to the daemon at %s: %w", c.path, err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	return &clientConn{fd: fd, rd: NewFDReader(fd, 64<<10, c.o.Spin), wb: make([]byte, 0, 64<<10)}, nil
}

func (cc *clientConn) close() { unix.Close(cc.fd) }

// write writes all of bufs.
func (cc *clientConn) write(bufs ...[]byte) error {
	for _, b := range bufs {
		for len(b) > 0 {
			n, err := unix.Write(cc.fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			b = b[n:]
		}
	}
	return nil
}

func (c *Client) get(ctx context.Context) (*clientConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(c.idle); n > 0 {
		cc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cc, nil
	}
	c.mu.Unlock()
	return c.dial(ctx)
}

func (c *Client) put(cc *clientConn) {
	cc.rd.Shrink(64 << 10)
	c.mu.Lock()
	if !c.closed && len(c.idle) < c.o.MaxIdle {
		c.idle = append(c.idle, cc)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	cc.close()
}

// Close closes the connections and unmaps the store's files: slices
// returned by ReadMapped must not be used afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cc := range idle {
		cc.close()
	}
	c.locs.Clear()
	return c.maps.close()
}

// Do sends one request and returns the daemon's response, whatever its
// status (the methods below turn statuses into errors). r.Data of a BATCH
// must hold whole encoded requests (see AppendRequest); prefer Batch.
func (c *Client) Do(ctx context.Context, r *Request) (Response, error) {
	return c.do(ctx, r, nil)
}

// do is Do reading the response data into buf when it fits.
func (c *Client) do(ctx context.Context, r *Request, buf []byte) (Response, error) {
	cc, err := c.get(ctx)
	if err != nil {
		return Response{}, err
	}
	resp, err := cc.roundTrip(ctx, r, buf)
	if err != nil {
		cc.close() // out of step with the daemon
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("mover: %s: %w", r.Op, err)
	}
	c.put(cc)
	return resp, nil
}

func (cc *clientConn) roundTrip(ctx context.Context, r *Request, buf []byte) (Response, error) {
	if ctx.Done() != nil {
		// A cancelled request shuts the socket down, which wakes the
		// thread blocked on it; the connection is then discarded.
		done := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			unix.Shutdown(cc.fd, unix.SHUT_RDWR)
			close(done)
		})
		defer func() {
			if !stop() {
				<-done // the fd must not be closed under it
			}
		}()
	}
	hdr, err := AppendHeader(cc.wb[:0], r.Op, r.ID, r.Offset, r.Len, len(r.Data))
	if err != nil {
		return Response{}, err
	}
	if len(hdr)+len(r.Data) <= cap(cc.wb) {
		err = cc.write(append(hdr, r.Data...))
	} else {
		err = cc.write(hdr, r.Data)
	}
	cc.wb = hdr[:0]
	if err != nil {
		return Response{}, err
	}
	if err := cc.rd.Fill(ResponseHeaderSize); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Response{}, err
	}
	b := cc.rd.Buffered()
	st := Status(b[0])
	n := int(binary.LittleEndian.Uint32(b[1:5]))
	cc.rd.Discard(ResponseHeaderSize)
	var data []byte
	if n <= cap(buf) {
		data = buf[:n]
	} else {
		data = make([]byte, n)
	}
	if _, err := io.ReadFull(cc.rd, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Response{}, err
	}
	return Response{Status: st, Data: data}, nil
}

func (c *Client) call(ctx context.Context, op Op, id string, off, n uint64, data []byte) (Response, error) {
	resp, err := c.Do(ctx, &Request{Op: op, ID: id, Offset: off, Len: n, Data: data})
	if err != nil {
		return resp, err
	}
	return resp, resp.Err(op, id)
}

func checkID(id string) error {
	if !ValidID([]byte(id)) {
		return fmt.Errorf("mover: bad id %q: want %d lower-case hex digits", id, IDLen)
	}
	return nil
}

// Read returns the content of object id, verified by the daemon.
func (c *Client) Read(ctx context.Context, id string) ([]byte, error) {
	return c.ReadRange(ctx, id, 0, 0)
}

// ReadRange returns n bytes of object id from offset off (n 0: to the end;
// fewer if the object ends sooner).
func (c *Client) ReadRange(ctx context.Context, id string, off, n int64) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("mover: read %s: negative offset or length", id)
	}
	resp, err := c.call(ctx, OpRead, id, uint64(off), uint64(n), nil)
	return resp.Data, err
}

// Write stores data and returns its id.
func (c *Client) Write(ctx context.Context, data []byte) (string, error) {
	resp, err := c.call(ctx, OpWrite, "", 0, 0, data)
	if err != nil {
		return "", err
	}
	if !ValidID(resp.Data) {
		return "", fmt.Errorf("mover: write: daemon answered %q, not an id", resp.Data)
	}
	return string(resp.Data), nil
}

// WriteID stores data, which must hash to id: otherwise nothing is stored
// and the error matches ErrCorrupt.
func (c *Client) WriteID(ctx context.Context, id string, data []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := c.call(ctx, OpWrite, id, 0, 0, data)
	return err
}

// Has reports whether the store holds id.
func (c *Client) Has(ctx context.Context, id string) (bool, error) {
	_, err := c.Size(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Size returns the size of object id (an error matching ErrNotFound if
// absent).
func (c *Client) Size(ctx context.Context, id string) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	resp, err := c.call(ctx, OpHas, id, 0, 0, nil)
	if err != nil {
		return 0, err
	}
	if len(resp.Data) != 8 {
		return 0, fmt.Errorf("mover: has %s: bad answer of %d bytes", id, len(resp.Data))
	}
	return int64(binary.LittleEndian.Uint64(resp.Data)), nil
}

// Stat returns the store's statistics.
func (c *Client) Stat(ctx context.Context) (Stats, error) {
	resp, err := c.call(ctx, OpStat, "", 0, 0, nil)
	if err != nil {
		return Stats{}, err
	}
	return DecodeStats(resp.Data)
}

// Send copies object id to the store of the peer remote (xfer://HOST:PORT
// or a remote name of the daemon's config file). The daemon sends it from
// its store's files without copying it through memory where the transport
// can; the peer verifies it.
func (c *Client) Send(ctx context.Context, id, remote string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := c.call(ctx, OpSend, id, 0, 0, []byte(remote))
	return err
}

// Fetch copies object id from the store of the peer remote into the
// daemon's store, verified. An empty remote, to a daemon started with
// --etcd and --cluster, fetches it from the first holder registered in
// that cluster that has it (an error matching ErrNotFound if none has).
func (c *Client) Fetch(ctx context.Context, id, remote string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := c.call(ctx, OpFetch, id, 0, 0, []byte(remote))
	return err
}

// Batch sends reqs as one BATCH, which the daemon runs concurrently, and
// returns their responses in order. The error reports a failure of the
// batch as a whole; each response has its own status (see Response.Err).
// The responses' Data share one buffer.
func (c *Client) Batch(ctx context.Context, reqs []Request) ([]Response, error) {
	return c.BatchInto(ctx, nil, reqs)
}

// BatchInto is Batch reading the responses into buf when they fit in its
// capacity (else into a new buffer): a caller that sends batch after batch
// can reuse one buffer, once done with the previous responses, instead of
// allocating one per batch.
func (c *Client) BatchInto(ctx context.Context, buf []byte, reqs []Request) ([]Response, error) {
	size := 0
	for i := range reqs {
		size += RequestHeaderSize + len(reqs[i].ID) + len(reqs[i].Data)
	}
	data := make([]byte, 0, size)
	for i := range reqs {
		var err error
		if data, err = AppendRequest(data, &reqs[i]); err != nil {
			return nil, err
		}
	}
	resp, err := c.do(ctx, &Request{Op: OpBatch, Data: data}, buf)
	if err != nil {
		return nil, err
	}
	if err := resp.Err(OpBatch, ""); err != nil {
		return nil, err
	}
	return DecodeBatchResponse(resp.Data, len(reqs))
}

// ReadMapped returns the content of object id without copying it through
// the socket: the daemon answers with where the object lies in its store,
// and the client maps that file read-only (once; mappings are shared) and
// returns a slice of the mapping. Where mapping is not possible (another
// host's file system, no permission, NoMap) it returns the bytes as Read
// does.
//
// The slice is read-only (writing to it faults) and valid until Close.
// Locations are remembered (MapCache), so reading the same object again
// costs no request at all. Integrity: the daemon verifies an object before
// it hands out its location, and an object's bytes never change while it
// exists, so a mapped read returns verified bytes; set VerifyMapped to hash
// them on every call as well. A location remembered here outlives the
// object's removal from the store (the bytes stay readable, as an unlinked
// file stays readable to those who have it open).
func (c *Client) ReadMapped(ctx context.Context, id string) ([]byte, error) {
	if b, ok := c.locs.Get(id); ok {
		return c.checkMapped(id, b)
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	if c.o.NoMap {
		return c.Read(ctx, id)
	}
	resp, err := c.call(ctx, OpReadMapped, id, 0, 0, nil)
	if err != nil {
		return nil, err
	}
	if resp.Status == StatusOK {
		return resp.Data, nil
	}
	loc, err := DecodeLocation(resp.Data)
	if err != nil {
		return nil, fmt.Errorf("mover: read %s: %w", id, err)
	}
	b, err := c.maps.view(&loc)
	if err != nil {
		// Not mappable from here: the bytes, through the socket.
		return c.Read(ctx, id)
	}
	c.locs.Put(id, b)
	return c.checkMapped(id, b)
}

func (c *Client) checkMapped(id string, b []byte) ([]byte, error) {
	if c.o.VerifyMapped {
		if err := verifyBytes(id, b); err != nil {
			return nil, err
		}
	}
	return b, nil
}
