package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/transfer"
)

// peers keeps one session open to each peer the daemon talks to, dialed on
// first use and again when it ends; requests to one peer share it.
type peers struct {
	resolve  Resolver
	log      *slog.Logger
	mu       sync.Mutex
	m        map[string]*peer // by address
	resolved map[string]target
	closed   bool
}

// target is a remote resolved: remotes are resolved once (reading token and
// CA files), then reused.
type target struct {
	addr string
	o    transfer.DialOptions
}

type peer struct {
	ready chan struct{} // closed once dialing ended
	s     *transfer.Session
	err   error
}

func newPeers(r Resolver, log *slog.Logger) *peers {
	return &peers{resolve: r, log: log, m: map[string]*peer{}, resolved: map[string]target{}}
}

// session returns an open session to the peer named remote.
func (p *peers) session(ctx context.Context, remote string) (*transfer.Session, string, error) {
	if p.resolve == nil {
		return nil, "", errors.New("this daemon talks to no peers")
	}
	p.mu.Lock()
	tg, ok := p.resolved[remote]
	p.mu.Unlock()
	if !ok {
		addr, o, err := p.resolve(remote)
		if err != nil {
			return nil, "", &resolveError{err}
		}
		tg = target{addr, o}
		p.mu.Lock()
		if len(p.resolved) >= 1024 {
			clear(p.resolved)
		}
		p.resolved[remote] = tg
		p.mu.Unlock()
	}
	addr, o := tg.addr, tg.o
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, addr, errors.New("daemon shutting down")
		}
		pe := p.m[addr]
		if pe == nil {
			pe = &peer{ready: make(chan struct{})}
			p.m[addr] = pe
			p.mu.Unlock()
			go p.dial(addr, o, pe)
		} else {
			p.mu.Unlock()
		}
		select {
		case <-pe.ready:
		case <-ctx.Done():
			return nil, addr, ctx.Err()
		}
		if pe.err != nil {
			p.forget(addr, pe)
			return nil, addr, pe.err
		}
		select {
		case <-pe.s.Done():
			// Ended since it was dialed: dial again.
			p.forget(addr, pe)
			continue
		default:
		}
		return pe.s, addr, nil
	}
}

// dial opens a session for pe. It does not use the caller's context: the
// session outlives the request that asked for it.
func (p *peers) dial(addr string, o transfer.DialOptions, pe *peer) {
	pe.s, pe.err = transfer.Dial(context.Background(), addr, o)
	if pe.err == nil {
		p.log.Info("session to peer opened", "peer", addr, "transport", pe.s.Transport())
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			pe.s.Close()
		}
	}
	close(pe.ready)
}

func (p *peers) forget(addr string, pe *peer) {
	p.mu.Lock()
	if p.m[addr] == pe {
		delete(p.m, addr)
	}
	p.mu.Unlock()
}

// do runs fn with a session to remote. If the session was lost (not the
// request refused), it is dialed again and fn retried once.
func (p *peers) do(ctx context.Context, remote string, fn func(*transfer.Session) error) error {
	for attempt := 0; ; attempt++ {
		s, addr, err := p.session(ctx, remote)
		if err != nil {
			var re *resolveError
			if errors.As(err, &re) {
				return re.err
			}
			return exitcode.WithCode(exitcode.Peer, fmt.Errorf("peer %s: %w", remote, err))
		}
		err = fn(s)
		var lost *transfer.LostError
		if err == nil || !errors.As(err, &lost) || attempt > 0 || ctx.Err() != nil {
			return err
		}
		p.log.Info("session to peer lost; dialing again", "peer", addr, "err", err)
		p.mu.Lock()
		if pe := p.m[addr]; pe != nil && pe.s == s {
			delete(p.m, addr)
		}
		p.mu.Unlock()
	}
}

func (p *peers) close() {
	p.mu.Lock()
	p.closed = true
	all := p.m
	p.m = map[string]*peer{}
	p.mu.Unlock()
	for _, pe := range all {
		<-pe.ready
		if pe.s != nil {
			pe.s.Close()
		}
	}
}

// resolveError is a remote that does not name a peer: the request's fault,
// not the peer's.
type resolveError struct{ err error }

func (e *resolveError) Error() string { return e.err.Error() }
func (e *resolveError) Unwrap() error { return e.err }
