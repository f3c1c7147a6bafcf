package backendtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
)

func TestPairConnsMatchByIndex(t *testing.T) {
	d, a := Pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 4
	// The dialer dials in reverse order; Conn(i) must still pair up.
	dc := make([]net.Conn, n)
	for i := n - 1; i >= 0; i-- {
		c, err := d.Conn(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		dc[i] = c
	}
	for i := 0; i < n; i++ {
		ac, err := a.Conn(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{byte(i)}
		if _, err := dc[i].Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(ac, got); err != nil || got[0] != byte(i) {
			t.Fatalf("conn %d: read %v, %v", i, got, err)
		}
	}
}

func TestPairExchange(t *testing.T) {
	d, a := Pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := make([]byte, maxBlob) // larger than socket buffers: both write at once
	fill(big, 3)
	tests := []struct{ fromD, fromA []byte }{
		{[]byte("hello"), []byte("world")},
		{nil, []byte("x")},
		{big, big},
	}
	for i, tc := range tests {
		ch := async(func() error {
			got, err := a.Exchange(ctx, tc.fromA)
			if err == nil && string(got) != string(tc.fromD) {
				err = fmt.Errorf("acceptor got %d bytes, want %d", len(got), len(tc.fromD))
			}
			return err
		})
		got, err := d.Exchange(ctx, tc.fromD)
		if err != nil || string(got) != string(tc.fromA) {
			t.Fatalf("case %d: dialer got %d bytes, %v", i, len(got), err)
		}
		if err := <-ch; err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
	}
}

func TestPairHonoursContext(t *testing.T) {
	d, a := Pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := within(t, quick, "Exchange", func() error { _, err := d.Exchange(ctx, []byte("x")); return err }); err == nil {
		t.Error("Exchange without a peer succeeded")
	}
	if err := within(t, quick, "Conn", func() error { _, err := a.Conn(ctx, 0); return err }); err == nil {
		t.Error("accepting Conn without a peer succeeded")
	}
}

// plain is a minimal, real transport (blocking reads and writes on the data
// sockets) used to check the suite itself.
type plain struct{}

func (plain) Name() string { return "tcp" }
func (plain) Probe() error { return nil }
func (plain) Open(ctx context.Context, rv backends.Rendezvous, p backends.Params) ([]backends.Stream, error) {
	var out []backends.Stream
	for i := 0; i < p.Streams; i++ {
		c, err := rv.Conn(ctx, i)
		if err != nil {
			for _, s := range out {
				s.Close()
			}
			return nil, err
		}
		out = append(out, &plainStream{c: c, r: bufio.NewReaderSize(c, 64<<10)})
	}
	return out, nil
}

type plainStream struct {
	c    net.Conn
	r    *bufio.Reader
	rem  int
	once sync.Once
}

func (s *plainStream) Send(hdr, payload []byte) error {
	if len(hdr) > backends.MaxHeader {
		return errors.New("header too large")
	}
	pre := make([]byte, 8, 8+len(hdr))
	binary.LittleEndian.PutUint32(pre, uint32(len(hdr)))
	binary.LittleEndian.PutUint32(pre[4:], uint32(len(payload)))
	bufs := net.Buffers{append(pre, hdr...), payload}
	_, err := bufs.WriteTo(s.c)
	return err
}

func (s *plainStream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return err
	}
	return s.Send(hdr, buf)
}

func (s *plainStream) Recv(hbuf []byte) ([]byte, int, error) {
	if _, err := s.r.Discard(s.rem); err != nil {
		return nil, 0, err
	}
	var pre [8]byte
	if _, err := io.ReadFull(s.r, pre[:]); err != nil {
		return nil, 0, err
	}
	hl, pl := binary.LittleEndian.Uint32(pre[:]), binary.LittleEndian.Uint32(pre[4:])
	if hl > uint32(len(hbuf)) {
		return nil, 0, errors.New("header too large")
	}
	if _, err := io.ReadFull(s.r, hbuf[:hl]); err != nil {
		return nil, 0, err
	}
	s.rem = int(pl)
	return hbuf[:hl], int(pl), nil
}

func (s *plainStream) RecvPayload(p []byte) error {
	if len(p) > s.rem {
		return errors.New("past the payload")
	}
	_, err := io.ReadFull(s.r, p)
	s.rem -= len(p)
	return err
}

func (s *plainStream) Close() error {
	err := net.ErrClosed
	s.once.Do(func() { err = s.c.Close() })
	return err
}

func TestSuiteAgainstPlainTransport(t *testing.T) {
	Run(t, plain{}, Options{})
}
