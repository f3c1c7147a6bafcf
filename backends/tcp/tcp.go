// Package tcp is the plain TCP data transport: buffered sockets carrying
// length-prefixed messages. It works everywhere and is the fallback every
// other transport negotiates down to.
package tcp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/xfer-io/xfer/backends"
)

// MaxPayload bounds one message's payload.
const MaxPayload = backends.MaxPayload

func init() { backends.Register(Transport{}) }

// Transport is the "tcp" transport.
type Transport struct{}

// Name implements backends.Transport.
func (Transport) Name() string { return "tcp" }

// Probe implements backends.Transport: plain TCP is always usable.
func (Transport) Probe() error { return nil }

// Open implements backends.Transport.
func (Transport) Open(ctx context.Context, rv backends.Rendezvous, p backends.Params) ([]backends.Stream, error) {
	out := make([]backends.Stream, 0, p.Streams)
	for i := 0; i < p.Streams; i++ {
		c, err := rv.Conn(ctx, i)
		if err != nil {
			for _, s := range out {
				s.Close()
			}
			return nil, err
		}
		out = append(out, NewStream(c))
	}
	return out, nil
}

// Stream frames messages on a connected socket as
// [header length u32 LE][payload length u32 LE][header][payload].
type Stream struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	rem int // payload bytes of the current message not yet read
}

// NewStream wraps a connected socket.
func NewStream(c net.Conn) *Stream {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetReadBuffer(4 << 20)
		tc.SetWriteBuffer(4 << 20)
	}
	return &Stream{c: c, r: bufio.NewReaderSize(c, 256<<10), w: bufio.NewWriterSize(c, 256<<10)}
}

func prefix(hdr []byte, n int) ([backends.PrefixLen]byte, error) {
	var p [backends.PrefixLen]byte
	if err := backends.CheckSizes(len(hdr), n); err != nil {
		return p, err
	}
	backends.PutPrefix(p[:], len(hdr), n)
	return p, nil
}

// Send implements backends.Stream. Small messages are coalesced in a
// buffer; large payloads go to the socket directly.
func (s *Stream) Send(hdr, payload []byte) error {
	p, err := prefix(hdr, len(payload))
	if err != nil {
		return err
	}
	s.w.Write(p[:])
	s.w.Write(hdr)
	if len(payload) > s.w.Available() {
		if err := s.w.Flush(); err != nil {
			return err
		}
		if _, err := s.c.Write(payload); err != nil {
			return err
		}
		return nil
	}
	s.w.Write(payload)
	return s.w.Flush()
}

// SendFile implements backends.Stream by copying the range through the
// socket (io.Copy uses sendfile where the kernel can).
func (s *Stream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	p, err := prefix(hdr, n)
	if err != nil {
		return err
	}
	s.w.Write(p[:])
	s.w.Write(hdr)
	if err := s.w.Flush(); err != nil {
		return err
	}
	m, err := io.Copy(s.c, io.NewSectionReader(f, off, int64(n)))
	if err == nil && m != int64(n) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Recv implements backends.Stream.
func (s *Stream) Recv(hbuf []byte) ([]byte, int, error) {
	if s.rem != 0 {
		return nil, 0, fmt.Errorf("previous payload not consumed (%d bytes left)", s.rem)
	}
	var p [backends.PrefixLen]byte
	if _, err := io.ReadFull(s.r, p[:]); err != nil {
		return nil, 0, err
	}
	hl, pl, err := backends.ParsePrefix(p[:])
	if err != nil {
		return nil, 0, err
	}
	if hl > len(hbuf) {
		return nil, 0, fmt.Errorf("message header of %d bytes exceeds the %d-byte buffer", hl, len(hbuf))
	}
	if _, err := io.ReadFull(s.r, hbuf[:hl]); err != nil {
		return nil, 0, unexpected(err)
	}
	s.rem = pl
	return hbuf[:hl], pl, nil
}

// RecvPayload implements backends.Stream.
func (s *Stream) RecvPayload(b []byte) error {
	if len(b) > s.rem {
		return fmt.Errorf("asked for %d payload bytes, %d left", len(b), s.rem)
	}
	_, err := io.ReadFull(s.r, b)
	s.rem -= len(b)
	return unexpected(err)
}

// Close implements backends.Stream.
func (s *Stream) Close() error { return s.c.Close() }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
