package cmd

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/membership"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/session"
)

func newDaemonCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "daemon --socket PATH --cas DIR [--listen HOST:PORT]",
		Short: "Run the node-local mover: a store and transfers for local programs",
		Long: `daemon runs the mover: a long-running process that programs on this host
talk to over the Unix socket --socket, in the binary protocol of
docs/protocol.md (the Go package github.com/xfer-io/xfer/mover speaks it).
It reads and writes the content-addressed store --cas and copies objects to
and from the stores of 'xfer serve --cas' peers on their behalf (SEND and
FETCH), keeping sessions to those peers open.

The socket has mode 0600 (only this user may connect); --socket-group
GROUP gives it to GROUP with mode 0660. A socket file left by a daemon that
died is replaced; one a running daemon serves is not (exit 2). Under
systemd socket activation (LISTEN_FDS) the socket passed as descriptor 3
is used and --socket is ignored.

--listen HOST:PORT also exposes the store to peers, as 'xfer serve --cas'
does (beyond loopback only with --token-file or --insecure-listen).

--etcd URL --cluster NAME joins a cluster kept in etcd (docs/etcd.md): the
daemon registers its --listen address there as a holder of objects, if it
has one, and a FETCH without a remote asks the cluster's registered
holders (8 at a time) and fetches the object from the first that has it.

SIGTERM or SIGINT: requests already received are completed and answered,
then the daemon exits 0. SIGHUP reopens --log-file. MOVER_SOCKET, CAS_PATH
and IOURING_ENTRIES are read as XFER_SOCKET, XFER_CAS and
XFER_URING_ENTRIES are (those win). --iouring-entries (XFER_IOURING_ENTRIES,
config key iouring-entries), the daemon's former name for --uring-entries,
still works, with a deprecation notice. It prints "listening on PATH" on
stderr once it accepts requests.`,
		Example: `  xfer daemon --socket /run/xfer/mover.sock --cas /srv/xfer/cas
  MOVER_SOCKET=/tmp/mover.sock CAS_PATH=/data/cas xfer daemon --listen 0.0.0.0:7879 --token-file /etc/xfer/token`,
		Args: usageArgs(cobra.NoArgs),
		RunE: a.runDaemon,
	}
	f := c.Flags()
	f.String("socket", "", "Unix socket to serve (default $XDG_RUNTIME_DIR/xfer/mover.sock, else /run/xfer/mover.sock)")
	f.String("socket-group", "", "give the socket to this group (name or number), mode 0660")
	f.String("cas", "", "store directory (default $XDG_DATA_HOME/xfer/cas)")
	f.Bool("no-fsync", false, "do not flush the store to stable storage (scratch stores only)")
	f.String("listen", "", "also serve the store to peers on HOST:PORT, like xfer serve --cas")
	f.Bool("cas-read-only", false, "with --listen: refuse puts from peers")
	f.Bool("insecure-listen", false, "allow --listen beyond loopback without --token-file")
	f.String("log-file", "", "log to this file instead of stderr (reopened on SIGHUP)")
	f.String("metrics-listen", "", "serve Prometheus metrics on HOST:PORT (/metrics, /healthz)")
	durationFlag(f, "poll", daemon.DefaultPoll, 0, "poll a connection this long for its next request before sleeping (0: never)")
	intFlag(f, "verified-cache", daemon.DefaultVerifiedCache, 0, math.MaxInt, "packed objects remembered as verified (0: hash every read)")
	intFlag(f, "max-conns", daemon.DefaultMaxConns, 1, math.MaxInt, "most client connections served at once")
	sizeRangeFlag(f, "max-batch", "64M", 1<<10, 0, "largest BATCH request and BATCH response (1K to 4G)")
	sizeRangeFlag(f, "max-memory", "1G", 16<<20, 0, "request data and batch responses held in memory at once, all clients together (at least 16M)")
	durationFlag(f, "drain-timeout", daemon.DefaultDrainTimeout, 0, "on SIGTERM, wait this long for requests in progress before cancelling them")
	etcdFlags(f)
	etcdTTLFlag(f)
	addCASPeerFlags(c)
	// --iouring-entries was the daemon's name for --uring-entries: kept
	// for the units and scripts that still give it.
	deprecatedAlias(c, a.stderr, "iouring-entries", "uring-entries")
	for flag, env := range daemonEnvAliases {
		f.SetAnnotation(flag, envAliasAnnotation, []string{env})
	}
	return c
}

// defaultSocket is $XDG_RUNTIME_DIR/xfer/mover.sock, else
// /run/xfer/mover.sock (where xfer-daemon.socket puts it).
func defaultSocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "xfer", "mover.sock")
	}
	return "/run/xfer/mover.sock"
}

// daemonEnvAliases are the environment names of the mover this daemon
// replaces, read after XFER_<FLAG>.
var daemonEnvAliases = map[string]string{
	"socket": "MOVER_SOCKET",
	"cas":    "CAS_PATH",
}

func (a *app) runDaemon(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	log := a.log
	if lf := a.v.GetString("log-file"); lf != "" {
		f, err := daemon.OpenLogFile(lf)
		if err != nil {
			return exitcode.Usagef("--log-file: %v", err)
		}
		defer f.Close()
		log = a.newLogger(f)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					if err := f.Reopen(); err != nil {
						fmt.Fprintf(a.stderr, "xfer: daemon: %v\n", err)
						continue
					}
					log.Info("log file reopened", "file", lf)
				case <-ctx.Done():
					return
				}
			}
		}()
	} else {
		// SIGHUP would otherwise end the process.
		signal.Ignore(syscall.SIGHUP)
	}
	maxBatch, err := parseSize(a.v.GetString("max-batch"))
	if err != nil || maxBatch < 1<<10 || maxBatch > 1<<32-1 {
		return exitcode.Usagef("--max-batch: want a size from 1K to 4G")
	}
	maxMem, err := parseSize(a.v.GetString("max-memory"))
	if err != nil || maxMem < 16<<20 {
		return exitcode.Usagef("--max-memory: want a size of at least 16M")
	}
	listenAddr := a.v.GetString("listen")
	var token []byte
	if tf := a.v.GetString("token-file"); tf != "" {
		if token, err = readToken(tf); err != nil {
			return err
		}
	}
	// The socket admits its owner alone (0600); a tokenless TCP listener,
	// even on loopback, would admit every local user: it needs a token,
	// or --insecure-listen to say that is meant.
	if listenAddr != "" && token == nil && !a.v.GetBool("insecure-listen") {
		return exitcode.Usagef("refusing to --listen on %s without --token-file: anyone who can reach it, every local user included, could read and write the store that the socket keeps to its owner (add --token-file, or --insecure-listen if that is meant)", listenAddr)
	}

	etcd, err := etcdConfig(cmd.Flags())
	if err != nil {
		return err
	}
	ttl, err := a.etcdTTL()
	if err != nil {
		return err
	}

	dir := a.casDir()
	store, err := cas.OpenOptions(dir, cas.Options{NoSync: a.v.GetBool("no-fsync")})
	if err != nil {
		return exitcode.Usagef("--cas %s: %v", dir, err)
	}
	defer store.Close()

	socket := a.v.GetString("socket")
	if socket == "" {
		socket = defaultSocket()
	}
	ln, err := daemon.Listen(socket, daemon.ListenOptions{Group: a.v.GetString("socket-group")})
	if err != nil {
		return exitcode.Usagef("daemon: %v", err)
	}
	defer ln.Close()
	where := ln.Addr().String()
	if ln.Activated {
		where += " (from systemd)"
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, stop := context.WithCancel(ctx)
	m, waitMetrics, err := a.serveMetrics(sctx, log)
	defer waitMetrics()
	defer stop()
	if err != nil {
		return err
	}

	// The listener for peers is opened before the daemon's server, so that
	// its address can be left out of the holders asked.
	var pln net.Listener
	if listenAddr != "" {
		if pln, err = net.Listen("tcp", listenAddr); err != nil {
			return exitcode.Usagef("--listen %s: %v", listenAddr, session.NetReason(err))
		}
		defer pln.Close()
	}
	var holders daemon.HolderLister
	if etcd != nil {
		ec, err := membership.Dial(membershipConfig(etcd))
		if err != nil {
			return exitcode.Usagef("%v", err)
		}
		defer ec.Close()
		self := ""
		if pln != nil {
			self = pln.Addr().String()
		}
		holders = func(ctx context.Context) ([]string, error) { return holderAddrs(ctx, ec, self) }
	}

	srv, err := daemon.New(daemon.Config{
		Store:         store,
		Resolve:       a.casPeer,
		Holders:       holders,
		Log:           log,
		Metrics:       m,
		Poll:          orOff(a.v.GetDuration("poll")),
		VerifiedCache: orOff(a.v.GetInt("verified-cache")),
		MaxConns:      a.v.GetInt("max-conns"),
		MaxBatch:      int(maxBatch),
		MaxMemory:     maxMem,
		DrainTimeout:  a.v.GetDuration("drain-timeout"),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	// Resolve peers once now, so that a bad flag fails here, not on the
	// first SEND.
	if _, _, err := a.casPeer("xfer://127.0.0.1:1"); err != nil {
		return err
	}

	also := ""
	if pln != nil {
		peer := transfer.NewServer(transfer.ServerConfig{
			ServerConfig: session.ServerConfig{Token: token, Log: log, Version: versionString()},
			Exports:      map[string]transfer.Export{},
			CAS:          store,
			CASReadOnly:  a.v.GetBool("cas-read-only"),
			NoFsync:      a.v.GetBool("no-fsync"),
			Dial:         a.serverDialOptions(log),
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := peer.Serve(sctx, pln); err != nil {
				log.Error("peer listener failed", "err", err)
			}
		}()
		also = ", peers on " + pln.Addr().String()
		if etcd != nil {
			addr := pln.Addr().String()
			wait, err := a.register(sctx, etcd, membership.Member{ID: addr, Addr: addr, Transports: offeredList(nil),
				RDMA: rdmaDevices(), CAS: true, Version: version, Protocol: transfer.ProtocolVersion, Started: time.Now().UTC()}, ttl)
			if err != nil {
				return err
			}
			defer wait()
		}
	}
	log.Info("daemon started", "socket", where, "cas", store.Dir())
	fmt.Fprintf(a.stderr, "listening on %s (cas %s%s)\n", where, store.Dir(), also)
	err = srv.Serve(ctx, ln)
	stop()
	log.Info("daemon stopped")
	if err != nil {
		return exitcode.WithCode(exitcode.Partial, err)
	}
	return nil
}

// orOff maps a flag's 0 ("off") to daemon.Config's negative.
func orOff[T int | time.Duration](v T) T {
	if v <= 0 {
		return -1
	}
	return v
}

func envName(key string) string {
	b := []byte(key)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// newLogger builds the logger for w with the invocation's --verbose and
// --log-format.
func (a *app) newLogger(w interface{ Write([]byte) (int, error) }) *slog.Logger {
	opts := &slog.HandlerOptions{Level: a.logLevel()}
	if a.v.GetString("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
