package send

import (
	"context"
	"os"
	"time"

	"golang.org/x/time/rate"

	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/transfer/wire"
)

// limitLanes holds what lanes carry, together, to bps bytes a second
// (--bwlimit), in bursts of at most burst bytes: a wrapper, so that the
// engine sends as it always does and only the pace changes.
func limitLanes(ctx context.Context, lanes []Lane, bps, burst int64) []Lane {
	lim := rate.NewLimiter(rate.Limit(bps), int(burst))
	lim.AllowN(time.Now(), int(burst)) // start empty: no burst before the first byte
	out := make([]Lane, len(lanes))
	for i, l := range lanes {
		out[i] = limited{Lane: l, ctx: ctx, lim: lim}
	}
	return out
}

// limited is a Lane whose payload waits for the shared rate limiter.
type limited struct {
	Lane
	ctx context.Context // the run's: a stopped run stops waiting
	lim *rate.Limiter
}

func (l limited) SendChunk(fid, idx uint64, off int64, verify bool, dg hashtree.Digest, data []byte, f *os.File, n int, cb func(byte, string)) error {
	if err := l.wait(int64(n)); err != nil {
		return err
	}
	return l.Lane.SendChunk(fid, idx, off, verify, dg, data, f, n, cb)
}

func (l limited) SendPatch(p wire.Patch, data []byte, cb func(byte, string)) error {
	if err := l.wait(int64(len(data))); err != nil {
		return err
	}
	return l.Lane.SendPatch(p, data, cb)
}

func (l limited) SendBatch(count int, payload []byte, cb func([]string, error)) error {
	if err := l.wait(int64(len(payload))); err != nil {
		return err
	}
	return l.Lane.SendBatch(count, payload, cb)
}

// wait waits until n more bytes fit the rate, in pieces of at most a
// burst; it returns the run's cause if the run stops first.
func (l limited) wait(n int64) error {
	for n > 0 {
		k := min(n, int64(l.lim.Burst()))
		r := l.lim.ReserveN(time.Now(), int(k))
		t := time.NewTimer(r.Delay())
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			r.Cancel()
			return context.Cause(l.ctx)
		}
		n -= k
	}
	return nil
}
