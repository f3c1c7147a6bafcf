// Package protoprobe chooses the data transport of a session to a served
// peer when `--proto auto` is asked for. A fixed preference order is wrong
// where the environment tilts it (UCX_TLS set by an HPC module system makes
// rdma eligible even where UCX then runs over TCP, at half tcp-zc's speed),
// so the choice is made by measurement: a short probe, bounded in bytes and
// time, of every transport both ends offer, through the benchmark service
// every `xfer serve` runs. The result is kept per peer in a cache file, so
// that repeated runs to one peer pay for the probe once a day.
package protoprobe

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/bench"
	"github.com/xfer-io/xfer/transfer/session"
)

// Probe bounds per candidate transport: whichever is reached first ends
// its measurement.
const (
	DefaultBytes = 32 << 20
	DefaultTime  = 100 * time.Millisecond
	// probeSize is the message size of the probe: the chunk-sized
	// messages of a large file's copy.
	probeSize = 1 << 20
)

// Options tune Dial.
type Options struct {
	// Cache keeps probe results per peer; nil probes every time.
	Cache *Cache
	// Bytes and Time bound the probe of each candidate (0: the defaults).
	Bytes int64
	Time  time.Duration
	// Skip, when set, says why nothing is measured: auto then keeps the
	// preference order's choice (a run under --bwlimit).
	Skip string
}

// Dial opens a session to the xfer server at addr. With o.Proto "auto"
// and more than one transport both ends offer, it picks the transport by
// a probe (or the cached result of one) and says so in the session's
// transport reason and in the returned choice; a forced o.Proto is dialed
// as it is.
func Dial(ctx context.Context, addr string, o session.DialOptions, p Options) (*session.Session, *progress.ProtoChoice, error) {
	if o.Proto != "" && o.Proto != "auto" {
		s, err := session.Dial(ctx, addr, o)
		if err != nil {
			return nil, nil, err
		}
		if s.TransportReason() == "" {
			s.SetTransportReason("forced by --proto")
		}
		return s, &progress.ProtoChoice{Proto: s.Transport(), By: progress.ChosenForced}, nil
	}
	if p.Skip != "" {
		s, err := session.Dial(ctx, addr, o)
		if err != nil {
			return nil, nil, err
		}
		return unmeasured(s, progress.ChosenPreference, "preference order, not measured: "+p.Skip)
	}
	key := cacheKey(addr, o)
	stale := false
	if e, ok := p.Cache.Get(key); ok {
		fo := o
		fo.Proto = e.Proto
		s, err := session.Dial(ctx, addr, fo)
		if err == nil {
			s.SetTransportReason(fmt.Sprintf("cached: %s, measured %s: %s", e.Proto, e.MeasuredAt, describe(e.Rates)))
			return s, &progress.ProtoChoice{Proto: e.Proto, By: progress.ChosenCached, Rates: e.Rates, MeasuredAt: e.MeasuredAt}, nil
		}
		if ctx.Err() != nil {
			return nil, nil, err
		}
		stale = true
	}
	s, err := session.Dial(ctx, addr, o)
	if err != nil {
		return nil, nil, err // a peer that is down keeps its entry
	}
	if stale {
		// The peer changed (it no longer offers the cached transport, or
		// that fails now): measure afresh.
		p.Cache.Drop(key)
	}
	cands := s.Candidates()
	if len(cands) <= 1 {
		return unmeasured(s, progress.ChosenOnly, progress.ChosenOnly)
	}
	if s.PeerCapped() {
		// Every transport would meet the server's cap, and the probe's
		// bytes would spend the run's share of it.
		return unmeasured(s, progress.ChosenPreference, "preference order, not measured: the server caps its data rate (serve --bwlimit)")
	}
	return probe(ctx, addr, o, p, key, s, cands)
}

// unmeasured keeps the negotiated transport of s, chosen by (a
// progress.Chosen* value) for the reason why, followed by the
// negotiation's own reason.
func unmeasured(s *session.Session, by, why string) (*session.Session, *progress.ProtoChoice, error) {
	if s.TransportReason() != "" {
		why += "; " + s.TransportReason()
	}
	s.SetTransportReason(why)
	return s, &progress.ProtoChoice{Proto: s.Transport(), By: by}, nil
}

// probe measures each candidate, s (already open) included, keeps the
// session of the winner and closes the others.
func probe(ctx context.Context, addr string, o session.DialOptions, p Options, key string, s *session.Session, cands []string) (*session.Session, *progress.ProtoChoice, error) {
	bo := bench.Options{Mode: bench.ModeFile, Size: probeSize, Duration: p.Time, MaxBytes: p.Bytes}
	if bo.Duration <= 0 {
		bo.Duration = DefaultTime
	}
	if bo.MaxBytes <= 0 {
		bo.MaxBytes = DefaultBytes
	}
	open := map[string]*session.Session{s.Transport(): s}
	closeAll := func(keep *session.Session) {
		for _, cs := range open {
			if cs != keep {
				cs.Close()
			}
		}
	}
	ms := make([]backends.Measurement, len(cands))
	rates := make([]progress.ProtoRate, len(cands))
	for i, name := range cands {
		ms[i].Name, rates[i].Proto = name, name
		cs := open[name]
		if cs == nil {
			fo := o
			fo.Proto = name
			var err error
			if cs, err = session.Dial(ctx, addr, fo); err != nil {
				ms[i].Err, rates[i].Error = err, err.Error()
				continue
			}
			open[name] = cs
		}
		r, err := bench.Run(ctx, cs, bo)
		if err == nil && r.DurationS <= 0 {
			err = fmt.Errorf("probe over %s measured nothing", name)
		}
		if err != nil {
			ms[i].Err, rates[i].Error = err, err.Error()
			cs.Close()
			delete(open, name)
			continue
		}
		ms[i].BytesPerSec = float64(r.Bytes) / r.DurationS
		rates[i].Bytes, rates[i].GBs = r.Bytes, round3(ms[i].BytesPerSec/1e9)
	}
	if err := ctx.Err(); err != nil {
		closeAll(nil)
		return nil, nil, err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	name, ok := backends.Choose(ms)
	if !ok {
		// Nothing measured: the preference order, as before probes.
		closeAll(nil)
		fs, err := session.Dial(ctx, addr, o)
		if err != nil {
			// The peer answered a moment ago: it went away during the
			// probe, which a run retries like a session lost later.
			return nil, nil, &session.LostError{Peer: addr, Err: err}
		}
		fs.SetTransportReason("probe failed, preference order: " + describe(rates))
		return fs, &progress.ProtoChoice{Proto: fs.Transport(), By: progress.ChosenFallback, Rates: rates, MeasuredAt: now}, nil
	}
	win := open[name]
	closeAll(win)
	win.SetTransportReason("measured: " + describe(rates))
	if o.Log != nil {
		o.Log.Info("transport chosen by probe", "peer", addr, "transport", name, "reason", win.TransportReason())
	}
	p.Cache.Put(key, Entry{Proto: name, Rates: rates, MeasuredAt: now})
	return win, &progress.ProtoChoice{Proto: name, By: progress.ChosenMeasured, Rates: rates, MeasuredAt: now}, nil
}

// describe words a probe's figures: "tcp-zc 2.10 GB/s, rdma failed (...)".
func describe(rates []progress.ProtoRate) string {
	parts := make([]string, len(rates))
	for i, r := range rates {
		if r.Error != "" {
			parts[i] = fmt.Sprintf("%s failed (%s)", r.Proto, r.Error)
		} else {
			parts[i] = fmt.Sprintf("%s %.2f GB/s", r.Proto, r.GBs)
		}
	}
	return strings.Join(parts, ", ")
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
