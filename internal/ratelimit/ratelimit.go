// Package ratelimit paces bytes with token buckets (golang.org/x/time/rate):
// the wait that the client's --bwlimit and the server's --bwlimit share,
// and Bandwidth, a full-duplex cap that wraps data-plane streams so that
// every session of one agent together stays within it (serve --bwlimit,
// standing in for one network interface per agent).
package ratelimit

import (
	"context"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/xfer-io/xfer/backends"
)

// NewLimiter returns a limiter of bps bytes a second in bursts of at most
// burst bytes that starts empty: no burst before the first byte.
func NewLimiter(bps, burst int64) *rate.Limiter {
	lim := rate.NewLimiter(rate.Limit(bps), int(burst))
	lim.AllowN(time.Now(), int(burst))
	return lim
}

// Wait waits until n more bytes fit lim's rate, in pieces of at most a
// burst; it returns ctx's cause if ctx is done first.
func Wait(ctx context.Context, lim *rate.Limiter, n int64) error {
	for n > 0 {
		k := min(n, int64(lim.Burst()))
		r := lim.ReserveN(time.Now(), int(k))
		t := time.NewTimer(r.Delay())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			return context.Cause(ctx)
		}
		n -= k
	}
	return nil
}

// Bandwidth caps what the streams it wraps send, all together, and what
// they receive, all together, at one rate each way (as a full-duplex
// network interface does). A nil *Bandwidth caps nothing.
type Bandwidth struct {
	bps        int64
	send, recv *rate.Limiter
}

// maxBurst bounds the bytes that pass at once: small against a second of
// any rate worth capping, so that the cap holds over short spans too.
const maxBurst = 1 << 20

// NewBandwidth returns a cap of bps bytes a second each way (bps > 0).
func NewBandwidth(bps int64) *Bandwidth {
	burst := min(max(bps/8, 64<<10), maxBurst)
	return &Bandwidth{bps: bps, send: NewLimiter(bps, burst), recv: NewLimiter(bps, burst)}
}

// Rate is the cap in bytes a second each way (0 for nil: none).
func (b *Bandwidth) Rate() int64 {
	if b == nil {
		return 0
	}
	return b.bps
}

// Wrap returns st with its sends and received payloads paced by b; st
// itself when b is nil. A send waits before it is written, a payload
// before it is read (so the peer's sends back up behind it); Close ends
// the waits.
func (b *Bandwidth) Wrap(st backends.Stream) backends.Stream {
	if b == nil {
		return st
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &stream{Stream: st, b: b, ctx: ctx, cancel: cancel}
}

// stream is a backends.Stream paced by a Bandwidth.
type stream struct {
	backends.Stream
	b      *Bandwidth
	ctx    context.Context // done once the stream is closed
	cancel context.CancelFunc
	once   sync.Once
}

func (s *stream) Send(hdr, payload []byte) error {
	if err := Wait(s.ctx, s.b.send, int64(len(hdr)+len(payload))); err != nil {
		return err
	}
	return s.Stream.Send(hdr, payload)
}

func (s *stream) SendFile(hdr []byte, f *os.File, off int64, n int) error {
	if err := Wait(s.ctx, s.b.send, int64(len(hdr)+n)); err != nil {
		return err
	}
	return s.Stream.SendFile(hdr, f, off, n)
}

func (s *stream) RecvPayload(p []byte) error {
	if err := Wait(s.ctx, s.b.recv, int64(len(p))); err != nil {
		return err
	}
	return s.Stream.RecvPayload(p)
}

func (s *stream) Close() error {
	s.once.Do(s.cancel)
	return s.Stream.Close()
}
