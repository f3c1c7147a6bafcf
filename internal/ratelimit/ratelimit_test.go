package ratelimit

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/xfer-io/xfer/backends"
)

// nopStream is a backends.Stream that moves nothing.
type nopStream struct{ closed bool }

func (*nopStream) Send(hdr, payload []byte) error                          { return nil }
func (*nopStream) SendFile(hdr []byte, f *os.File, off int64, n int) error { return nil }
func (*nopStream) Recv(hbuf []byte) ([]byte, int, error)                   { return nil, 0, nil }
func (*nopStream) RecvPayload(p []byte) error                              { return nil }
func (s *nopStream) Close() error                                          { s.closed = true; return nil }

func TestBandwidthPaces(t *testing.T) {
	const bps = 8 << 20
	buf := make([]byte, 256<<10)
	cases := []struct {
		name string
		op   func(st backends.Stream) error
	}{
		{"send", func(st backends.Stream) error { return st.Send(nil, buf) }},
		{"send file", func(st backends.Stream) error { return st.SendFile(nil, nil, 0, len(buf)) }},
		{"receive", func(st backends.Stream) error { return st.RecvPayload(buf) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Two streams of one Bandwidth share its rate: 16 x 256 KiB
			// over both is 4 MiB, half a second at 8 MiB/s.
			b := NewBandwidth(bps)
			a, z := b.Wrap(&nopStream{}), b.Wrap(&nopStream{})
			start := time.Now()
			for i := range 16 {
				st := a
				if i%2 == 1 {
					st = z
				}
				if err := c.op(st); err != nil {
					t.Fatal(err)
				}
			}
			if took := time.Since(start); took < 400*time.Millisecond || took > 5*time.Second {
				t.Errorf("4 MiB at 8 MiB/s took %s, want about 500ms", took)
			}
		})
	}
}

func TestBandwidthNilAndClose(t *testing.T) {
	var none *Bandwidth
	st := &nopStream{}
	if none.Wrap(st) != backends.Stream(st) || none.Rate() != 0 {
		t.Fatal("a nil Bandwidth must leave the stream alone")
	}
	b := NewBandwidth(64 << 10)
	w := b.Wrap(st)
	done := make(chan error, 1)
	go func() { done <- w.Send(nil, make([]byte, 4<<20)) }() // a minute at the rate
	time.Sleep(50 * time.Millisecond)
	w.Close()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("send after close: %v, want canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting send")
	}
	if !st.closed {
		t.Error("Close did not close the stream")
	}
}
