package sockstream

import (
	"fmt"
	"sync"

	"github.com/xfer-io/xfer/backends"
)

// ReadFunc reads at least one byte into p (len(p) > 0) and returns how
// many, waiting for them as its transport does.
type ReadFunc func(p []byte) (int, error)

// Receiver is the receive side of a framed byte stream: a buffer that
// serves the prefixes, headers and small payloads of many messages per
// read, and payload reads of half its size or more that go straight into
// the caller's memory. It is not safe for concurrent use; the stream's
// receive lock guards it.
type Receiver struct {
	buf    []byte
	r, w   int // buffered bytes are buf[r:w]
	rem    int // payload bytes of the current message not yet consumed
	read   ReadFunc
	direct ReadFunc
}

// Init makes buf the receive buffer (it must hold a prefix and the largest
// header: backends.PrefixLen+backends.MaxHeader bytes or more). read fills
// the buffer; direct takes large payload reads into the caller's memory.
func (r *Receiver) Init(buf []byte, read, direct ReadFunc) {
	*r = Receiver{buf: buf, read: read, direct: direct}
}

// Release drops the buffer and the read functions, once the stream is
// closed.
func (r *Receiver) Release() { *r = Receiver{} }

// Next reads the next message's header into hbuf and returns it with the
// payload length. Payload bytes of the previous message that were not
// consumed are skipped.
func (r *Receiver) Next(hbuf []byte) ([]byte, int, error) {
	for r.rem > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return nil, 0, err
			}
		}
		k := min(r.rem, r.w-r.r)
		r.r += k
		r.rem -= k
	}
	if err := r.fill(backends.PrefixLen); err != nil {
		return nil, 0, err
	}
	hl, pl, err := backends.ParsePrefix(r.buf[r.r:])
	if err != nil {
		return nil, 0, err
	}
	if hl > len(hbuf) {
		return nil, 0, fmt.Errorf("%d-byte header does not fit a %d-byte buffer", hl, len(hbuf))
	}
	if err := r.fill(backends.PrefixLen + hl); err != nil {
		return nil, 0, err
	}
	r.r += backends.PrefixLen
	copy(hbuf, r.buf[r.r:r.r+hl])
	r.r += hl
	r.rem = pl
	return hbuf[:hl], pl, nil
}

// Overrun returns the error for a payload read of n bytes when fewer are
// left in the current message (name is the transport's), or nil. Such a
// read is refused before anything is read, so the stream stays in step.
func (r *Receiver) Overrun(name string, n int) error {
	if n > r.rem {
		return fmt.Errorf("%s: RecvPayload of %d bytes, but %d are left in the message", name, n, r.rem)
	}
	return nil
}

// Payload reads the next len(p) payload bytes of the current message; the
// caller has checked them with Overrun.
func (r *Receiver) Payload(p []byte) error {
	k := copy(p, r.buf[r.r:r.w])
	r.r += k
	r.rem -= k
	p = p[k:]
	for len(p) > 0 {
		if len(p) >= len(r.buf)/2 {
			n, err := r.direct(p) // large: straight into the caller's buffer
			if err != nil {
				return err
			}
			p = p[n:]
			r.rem -= n
			continue
		}
		if err := r.fill(1); err != nil {
			return err
		}
		k := copy(p, r.buf[r.r:r.w])
		r.r += k
		r.rem -= k
		p = p[k:]
	}
	return nil
}

// fill reads until at least n bytes are buffered (n <= len(buf)), taking
// as much as the stream has, to serve many small messages per read.
func (r *Receiver) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	if r.r == r.w {
		r.r, r.w = 0, 0
	} else if len(r.buf)-r.r < n {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	for r.w-r.r < n {
		k, err := r.read(r.buf[r.w:])
		if err != nil {
			return err
		}
		r.w += k
	}
	return nil
}

// Rx is a stream's receive half: its Receiver, the lock that the one
// receiving goroutine (and Close) holds, and the half's sticky error.
type Rx struct {
	Mu  sync.Mutex
	Err error // sticky: the byte stream is out of step after a failure
	In  Receiver
}

// Recv is backends.Stream's Recv over r, for the stream whose state is st.
// ready, when not nil, is called with the lock held and returns the error
// the stream fails a receive with before it starts (nil: it can receive).
func (r *Rx) Recv(st *State, ready func() error, hbuf []byte) ([]byte, int, error) {
	r.Mu.Lock()
	defer r.Mu.Unlock()
	if err := r.ready(st, ready); err != nil {
		return nil, 0, err
	}
	hdr, n, err := r.In.Next(hbuf)
	if err != nil {
		return nil, 0, st.Fail(&r.Err, "recv", err)
	}
	return hdr, n, nil
}

// RecvPayload is backends.Stream's RecvPayload over r: the next len(p)
// payload bytes of the current message (ready as for Recv).
func (r *Rx) RecvPayload(st *State, ready func() error, p []byte) error {
	r.Mu.Lock()
	defer r.Mu.Unlock()
	if err := r.ready(st, ready); err != nil {
		return err
	}
	if err := r.In.Overrun(st.name, len(p)); err != nil {
		return err
	}
	if err := r.In.Payload(p); err != nil {
		return st.Fail(&r.Err, "recv payload", err)
	}
	return nil
}

func (r *Rx) ready(st *State, ready func() error) error {
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	return st.Ready(r.Err)
}
