// Package daemon is `xfer daemon`, the node-local mover: a long-running
// process that programs on the same host talk to over a Unix domain socket
// in the binary protocol of docs/protocol.md (encoded by package mover),
// and that reads and writes the local content-addressed store (package cas)
// and moves objects to and from `xfer serve --cas` peers on their behalf
// over xfer sessions it keeps open (package transfer).
//
// # Latency
//
// Each connection is served by one goroutine that reads a request, executes
// it and writes the response; a client wanting concurrency opens several
// connections or sends a BATCH, whose requests run in parallel. After a
// response the goroutine polls the socket for Config.Poll before parking in
// the runtime's poller, so back-to-back requests cost no sleep and wake-up.
// READ of a packed object (at most 1 MiB) is served from a read-only mapping
// of its pack file and written to the socket with writev, with no copy in
// the daemon.
//
// # Integrity
//
// Every byte a READ returns has been verified against its id by this
// process: a packed object is hashed on its first read, and then remembered
// as verified (Config.VerifiedCache entries; 0 hashes every read) for as long
// as it stays at the same place in the store; ranges of standalone objects
// are verified on every read against the object's outboard chaining values
// (cas.Store.ReadAt). Damage to a pack after an object was verified is found
// by `xfer cas verify`, which re-hashes everything. WRITE, FETCH and the
// peer's side of SEND hash what they store (cas.Store.PutVerified).
//
// # Lifecycle
//
// Serve returns when its context ends: it stops accepting, lets requests
// already received finish and answer (for up to Config.DrainTimeout, after
// which they are cancelled), closes the connections and returns nil.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xfer-io/xfer/internal/defaults"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/mover"
	"github.com/xfer-io/xfer/transfer"
)

// Defaults of Config.
const (
	DefaultPoll          = 50 * time.Microsecond
	DefaultVerifiedCache = 1 << 18
	DefaultMaxConns      = 1024
	DefaultMaxBatch      = 64 << 20
	DefaultMaxMemory     = 1 << 30
	DefaultDrainTimeout  = 25 * time.Second

	// locCacheSize bounds the packed objects whose location is remembered.
	locCacheSize = 1 << 18
)

// Resolver turns the remote named in SEND or FETCH (xfer://HOST:PORT or a
// remote NAME of the config file) into the address of an `xfer serve --cas`
// peer and how to dial it.
type Resolver func(remote string) (addr string, o transfer.DialOptions, err error)

// HolderLister returns the addresses of the `xfer serve --cas` peers
// registered as holders of objects in the daemon's cluster (its etcd), to
// ask for an object a FETCH without a remote names.
type HolderLister func(ctx context.Context) ([]string, error)

// Config configures a Server.
type Config struct {
	Store   *cas.Store
	Resolve Resolver // nil: SEND and FETCH fail
	// Holders lists the cluster's holders; nil: FETCH needs a remote.
	Holders HolderLister
	Log     *slog.Logger
	Metrics *metrics.Metrics // nil: no metrics
	// Poll is how long a connection polls for its next request before
	// sleeping (0: never). Default DefaultPoll; negative disables.
	Poll time.Duration
	// VerifiedCache bounds the packed objects remembered as verified.
	// Default DefaultVerifiedCache; negative: hash every read.
	VerifiedCache int
	// MaxConns bounds the connections served at once; more wait to be
	// accepted.
	MaxConns int
	// MaxBatch bounds the data of a BATCH request and the data of its
	// response, in bytes.
	MaxBatch int
	// MaxMemory bounds the request data and batch responses held in memory
	// at once, all connections together; requests wait for room.
	MaxMemory int64
	// DrainTimeout bounds how long Serve waits for requests in progress
	// once its context ends.
	DrainTimeout time.Duration
	// BatchWorkers bounds the requests of one BATCH run at once (default
	// GOMAXPROCS for reads and lookups; transfers and writes each get their
	// own goroutine).
	BatchWorkers int
}

func (c Config) withDefaults() Config {
	defaults.Log(&c.Log)
	defaults.Zero(&c.Poll, DefaultPoll)
	defaults.Zero(&c.VerifiedCache, DefaultVerifiedCache)
	defaults.Positive(&c.MaxConns, DefaultMaxConns)
	defaults.Positive(&c.MaxBatch, DefaultMaxBatch)
	defaults.Positive(&c.MaxMemory, DefaultMaxMemory)
	if int64(c.MaxBatch) > c.MaxMemory {
		c.MaxBatch = int(c.MaxMemory)
	}
	defaults.Positive(&c.DrainTimeout, DefaultDrainTimeout)
	defaults.Positive(&c.BatchWorkers, runtime.GOMAXPROCS(0))
	return c
}

// Server is the daemon. Create it with New.
type Server struct {
	cfg   Config
	store *cas.Store
	peers *peers
	maps  *packMaps
	locs  *locCache
	ok    *verifiedSet
	mem   *budget

	// reqCtx is the context of requests; cancelled when a drain times out
	// or Close is called.
	reqCtx    context.Context
	reqCancel context.CancelFunc

	// data holds buffers for request data of up to 1 MiB.
	data sync.Pool

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
	wg       sync.WaitGroup
}

// New creates a daemon serving cfg.Store.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("daemon: no store")
	}
	cfg = cfg.withDefaults()
	locs, err := newLocCache(cfg.Store.Dir(), locCacheSize)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		store:     cfg.Store,
		peers:     newPeers(cfg.Resolve, cfg.Log),
		maps:      newPackMaps(),
		locs:      locs,
		ok:        newVerifiedSet(cfg.VerifiedCache),
		mem:       newBudget(cfg.MaxMemory),
		reqCtx:    ctx,
		reqCancel: cancel,
		conns:     map[*conn]struct{}{},
	}
	s.data.New = func() any {
		b := make([]byte, inlineWrite)
		return &b
	}
	return s, nil
}

// Close releases the peer sessions and the mappings. Call it after Serve has
// returned.
func (s *Server) Close() error {
	s.reqCancel()
	s.peers.close()
	return errors.Join(s.maps.close(), s.locs.close())
}

// Serve accepts connections on ln (a Unix socket listener) until ctx ends,
// then drains and returns nil. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	slots := make(chan struct{}, s.cfg.MaxConns)
	var acceptErr error
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		c, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			acceptErr = fmt.Errorf("daemon: accept on %s: %w", ln.Addr(), err)
			break
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			<-slots
			continue
		}
		cn, err := s.newConn(uc)
		if err != nil {
			s.cfg.Log.Warn("dropped a connection", "err", err)
			uc.Close()
			<-slots
			continue
		}
		s.wg.Add(1)
		go func() {
			defer func() { <-slots }()
			defer s.wg.Done()
			s.serveConn(cn)
		}()
	}
	ln.Close()
	s.drain()
	return acceptErr
}

// drain lets the requests in progress finish, then closes every connection.
func (s *Server) drain() {
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.wake()
	}
	n := len(s.conns)
	s.mu.Unlock()
	if n > 0 {
		s.cfg.Log.Info("draining", "connections", n)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.DrainTimeout):
		s.cfg.Log.Warn("requests still running after the drain timeout; cancelling them", "timeout", s.cfg.DrainTimeout)
		s.reqCancel()
		s.mu.Lock()
		for c := range s.conns {
			c.c.Close()
		}
		s.mu.Unlock()
		<-done
	}
}

// Stats returns the store's statistics in the protocol's form.
func statsOf(st cas.Stats) mover.Stats {
	return mover.Stats{
		Objects: uint64(st.Objects), Bytes: uint64(st.Bytes),
		PackedObjects: uint64(st.PackedObjects), PackedBytes: uint64(st.PackedBytes),
		LargeObjects: uint64(st.LargeObjects), LargeBytes: uint64(st.LargeBytes),
		Packs: uint64(st.Packs), PackFileBytes: uint64(st.PackFileBytes), DedupSaved: uint64(st.DedupSaved),
	}
}
