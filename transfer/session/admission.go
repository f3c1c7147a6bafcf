package session

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Admission limits of `xfer serve`: what a connection may cost the server
// before and after it has proved who it is. Unauthenticated connections
// never count as sessions; they have their own, smaller budget and a short
// deadline, so a flood of them cannot lock out a token holder, and
// addresses that keep failing authentication are made to wait.
const (
	// DefaultHandshakeTimeout bounds the TLS handshake, hello and
	// authentication of one connection.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxHandshakes bounds the connections, in all, that have not
	// yet authenticated (control) or joined their session (data); beyond
	// it the oldest is dropped.
	DefaultMaxHandshakes = 256
	// DefaultMaxHandshakesPerClient bounds them per client address. It is
	// above the most data streams one session opens at once (64) plus its
	// control connection.
	DefaultMaxHandshakesPerClient = 96
	// DefaultMaxSessions and DefaultMaxSessionsPerClient bound
	// authenticated sessions.
	DefaultMaxSessions          = 256
	DefaultMaxSessionsPerClient = 64
	// DefaultMaxOpenFiles bounds the large files one session holds open
	// for writing at once.
	DefaultMaxOpenFiles = 256

	// authFreeFailures failed authentications from one address within
	// authFailWindow are answered at once; each one beyond that shuts the
	// address out for a penalty that doubles up to authMaxPenalty.
	authFreeFailures = 5
	authFailWindow   = time.Minute
	authMinPenalty   = time.Second
	authMaxPenalty   = 5 * time.Minute
	// authTracked bounds the addresses whose failures are remembered.
	authTracked = 4096
	// busyRetryAfter is the wait a busy server suggests to its clients.
	busyRetryAfter = 2 * time.Second
)

// BusyError is a server's refusal to start a session now, with the wait it
// suggests before trying again. Copies and syncs retry it (--retries).
type BusyError struct {
	Addr       string
	Msg        string
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("peer %s: %s (try again in %s)", e.Addr, e.Msg, e.RetryAfter.Round(time.Second))
}

// admission counts connections and sessions by client address and
// remembers failed authentications. Its zero value is not usable; see
// newAdmission.
type admission struct {
	maxPending, maxPendingPer   int
	maxSessions, maxSessionsPer int
	now                         func() time.Time

	mu         sync.Mutex
	waiting    map[*handshake]struct{}
	pendingBy  map[string]int
	sessions   int
	sessionsBy map[string]int
	fails      map[string]*authFailures
}

// authFailures is the recent failure record of one address.
type authFailures struct {
	n       int           // failures since first
	first   time.Time     // start of the window
	until   time.Time     // shut out until then
	penalty time.Duration // the last penalty given
}

func newAdmission(cfg ServerConfig) *admission {
	return &admission{
		maxPending: cfg.MaxHandshakes, maxPendingPer: cfg.MaxHandshakesPerClient,
		maxSessions: cfg.MaxSessions, maxSessionsPer: cfg.MaxSessionsPerClient,
		now:     time.Now,
		waiting: map[*handshake]struct{}{}, pendingBy: map[string]int{}, sessionsBy: map[string]int{}, fails: map[string]*authFailures{},
	}
}

// hostOf is the address part of a "host:port" peer address.
func hostOf(peer string) string {
	if h, _, err := net.SplitHostPort(peer); err == nil {
		return h
	}
	return peer
}

// enterHandshake counts a new connection from host against the
// unauthenticated budget. A host over its own share is refused (ok false).
// When the budget in all is spent, the oldest waiting connection is
// dropped from the host that holds the most (drop is how to drop this
// one, should it be chosen), as sshd's MaxStartups drops early:
// connections that sit without
// authenticating give way to new ones, which need a millisecond to prove
// who they are. Otherwise release must be called once, when the
// connection has authenticated, joined its session or been closed
// (further calls do nothing).
func (a *admission) enterHandshake(host string, drop func()) (release func(), ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pendingBy[host] >= a.maxPendingPer {
		return nil, false
	}
	if len(a.waiting) >= a.maxPending {
		// The victim is the oldest connection of the host holding the
		// most: a flood from a few addresses gives way among itself,
		// and a client with one or two connections in flight (a token
		// holder mid-handshake) is the last to go, whatever order the
		// accept loop's goroutines reached this in.
		var victim *handshake
		for h := range a.waiting {
			if victim == nil {
				victim = h
				continue
			}
			n, m := a.pendingBy[h.host], a.pendingBy[victim.host]
			if n > m || (n == m && h.since.Before(victim.since)) {
				victim = h
			}
		}
		a.leaveLocked(victim)
		go victim.drop()
	}
	h := &handshake{host: host, since: a.now(), drop: drop}
	a.waiting[h] = struct{}{}
	a.pendingBy[host]++
	return func() {
		a.mu.Lock()
		a.leaveLocked(h)
		a.mu.Unlock()
	}, true
}

// handshake is a connection that has not authenticated yet.
type handshake struct {
	host  string
	since time.Time
	drop  func()
}

// leaveLocked takes h out of the handshake budget, once.
func (a *admission) leaveLocked(h *handshake) {
	if _, ok := a.waiting[h]; !ok {
		return
	}
	delete(a.waiting, h)
	if a.pendingBy[h.host]--; a.pendingBy[h.host] <= 0 {
		delete(a.pendingBy, h.host)
	}
}

// admitSession counts an authenticated session from host; release ends it.
func (a *admission) admitSession(host string) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.sessions >= a.maxSessions:
		return nil, &BusyError{Msg: fmt.Sprintf("server busy: %d sessions open (its --max-sessions)", a.sessions), RetryAfter: busyRetryAfter}
	case a.sessionsBy[host] >= a.maxSessionsPer:
		return nil, &BusyError{Msg: fmt.Sprintf("server busy: %d sessions open from %s (its --max-sessions-per-client)", a.sessionsBy[host], host), RetryAfter: busyRetryAfter}
	}
	a.sessions++
	a.sessionsBy[host]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.sessions--
			if a.sessionsBy[host]--; a.sessionsBy[host] <= 0 {
				delete(a.sessionsBy, host)
			}
			a.mu.Unlock()
		})
	}, nil
}

// shutOut reports how long host must still wait after too many failed
// authentications; 0 when it may try now.
func (a *admission) shutOut(host string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.fails[host]
	if f == nil {
		return 0
	}
	if d := f.until.Sub(a.now()); d > 0 {
		return d
	}
	return 0
}

// authFailed records a failed authentication from host and returns the
// penalty it now serves (0 while it is within its free failures).
func (a *admission) authFailed(host string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	f := a.fails[host]
	if f == nil {
		if len(a.fails) >= authTracked {
			a.forgetLocked(now)
		}
		f = &authFailures{first: now}
		a.fails[host] = f
	}
	if now.Sub(f.first) > authFailWindow && !now.Before(f.until) {
		// A quiet window: start counting again, but a repeat offender
		// keeps its last penalty as the floor.
		f.n, f.first = 0, now
	}
	f.n++
	if f.n <= authFreeFailures {
		return 0
	}
	switch {
	case f.penalty == 0:
		f.penalty = authMinPenalty
	case f.penalty < authMaxPenalty:
		f.penalty = min(2*f.penalty, authMaxPenalty)
	}
	f.until = now.Add(f.penalty)
	return f.penalty
}

// authSucceeded forgets host's failures.
func (a *admission) authSucceeded(host string) {
	a.mu.Lock()
	delete(a.fails, host)
	a.mu.Unlock()
}

// forgetLocked drops failure records that no longer matter, or, when all
// still do, the oldest one, so the table stays bounded.
func (a *admission) forgetLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for h, f := range a.fails {
		if now.Sub(f.first) > authFailWindow && !now.Before(f.until) {
			delete(a.fails, h)
			continue
		}
		if oldest == "" || f.first.Before(oldestAt) {
			oldest, oldestAt = h, f.first
		}
	}
	if len(a.fails) >= authTracked && oldest != "" {
		delete(a.fails, oldest)
	}
}
