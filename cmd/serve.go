package cmd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/location"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/internal/ratelimit"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/sshconn"
)

func newServeCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve --root DIR [--listen HOST:PORT]",
		Short: "Serve a directory tree to xfer peers",
		Long: `Serve runs the xfer peer on a node that holds data: clients copy and sync
to and from the tree beneath --root, and ask it to push to other servers
(third-party transfers). Every path a client names is confined beneath the
root. It prints "listening on HOST:PORT" on stderr once it accepts
connections (with port 0 the kernel picks a free port) and stops cleanly on
SIGINT or SIGTERM.

What peers upload gets the modes they ask for, narrowed by the server's
umask (--umask; by default the umask the server was started with), and
without set-uid, set-gid or (on files) sticky bits unless --allow-setid or
the export's setid option allows them. Files and directories belong to the
user the server runs as.`,
		Example: `  xfer serve --listen 127.0.0.1:7878 --root /data`,
		Args:    usageArgs(cobra.NoArgs),
		RunE:    a.runServe,
	}
	f := c.Flags()
	f.String("listen", "127.0.0.1:7878", "address to listen on (HOST:PORT; port 0 picks a free port)")
	f.String("root", "", "directory to serve (required)")
	f.StringSlice("protos", nil, "transports to offer, in any order (default: every usable one)")
	etcdFlags(f)
	etcdTTLFlag(f)
	f.Bool("no-fsync", false, "do not flush received files to stable storage (scratch data only)")
	durationFlag(f, "timeout", transfer.DefaultIdleTimeout, 1, "drop a peer that stays silent this long (above 0)")
	f.StringArray("export", nil, "serve a named tree instead of --root: NAME=/path[:OPTS] with OPTS ro or rw, and setid to keep set-id bits, comma-separated (repeatable); clients name it as the first path component")
	f.Bool("read-only", false, "with --root: refuse every write and delete (and, with --cas, every put and remove)")
	f.String("umask", "", "permission bits (octal) taken from every file and directory a peer uploads (default: the umask the server was started with)")
	f.Bool("allow-owners", false, "as root: set the owners and groups that clients ask for on what they upload (by default uploads belong to the server's user)")
	f.Bool("allow-devices", false, "as root: create the device files that clients upload (by default they are skipped; fifos and sockets are always created)")
	f.Bool("allow-setid", false, "with --root: keep the set-uid, set-gid and sticky bits of uploaded files (dropped by default)")
	f.String("token-file", "", "require clients to prove knowledge of the token in this file (HMAC challenge-response; the token never crosses the wire)")
	f.Bool("insecure-listen", false, "allow listening beyond loopback without --token-file (anyone who can reach the port can read and write the tree)")
	f.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	f.String("tls-key", "", "private key (PEM) of --tls-cert")
	f.String("tls-client-ca", "", "require client certificates signed by this CA (mutual TLS)")
	f.Bool("tls-data", true, "keep data streams inside TLS; false lets clients that ask for it send bulk data outside TLS (control stays encrypted)")
	uringFlag(f)
	f.String("cas", "", "expose this content-addressed store (xfer cas) to peers")
	f.Bool("cas-read-only", false, "with --cas: refuse puts and removes from peers")
	f.String("metrics-listen", "", "serve Prometheus metrics on /metrics and a health check on /healthz at HOST:PORT")
	f.Int("max-sessions", transfer.DefaultMaxSessions, "most concurrent authenticated sessions in all")
	f.Int("max-sessions-per-client", transfer.DefaultMaxSessionsPerClient, "most concurrent authenticated sessions from one client address")
	f.Int("max-handshakes", transfer.DefaultMaxHandshakes, "most connections in all that have not authenticated yet (they never count as sessions)")
	f.Int("max-handshakes-per-client", transfer.DefaultMaxHandshakesPerClient, "most connections from one client address that have not authenticated yet")
	f.Duration("handshake-timeout", transfer.DefaultHandshakeTimeout, "drop a connection that has not authenticated within this long")
	f.Int("max-open-files", transfer.DefaultMaxOpenFiles, "most files one session may hold open for writing at once")
	sizeRangeFlag(f, "max-frame", "8M", 64<<10, 0, "largest control frame a client may send (at least 64K)")
	sizeRangeFlag(f, "max-session-memory", "256M", 64<<20, 0, "receive-buffer memory one session may use (caps its data streams; at least 64M)")
	sizeRangeFlag(f, "max-memory", "1G", 64<<20, 0, "receive-buffer memory of all sessions together; messages wait for room beyond it (at least --max-session-memory)")
	f.Bool("stdio", false, "serve one session on standard input and output (what ssh:// locations start through ssh); --root defaults to the home directory, ~ and relative paths are in it; data streams connect to an ephemeral port that admits only this run; what the run uploads keeps its modes, set-id bits, owners and devices as rsync --server keeps them (--umask and the --allow-* flags default to rsync's policy; see docs/ssh.md)")
	f.String("stdio-listen", "", "with --stdio: the address to accept this run's data streams on (default: the one the ssh client reached, from SSH_CONNECTION), or unix for a Unix socket in a private directory (no network port; data only through ssh)")
	f.String("stdio-relay", "", "carry one inline data stream between standard input and output and ADDR (started by ssh:// clients)")
	f.MarkHidden("stdio-relay")
	sizeFlag(f, "bwlimit", "", "cap the data this agent sends, and separately what it receives, at this many bytes per second over all sessions together (third-party pushes included), with an optional K, M or G suffix (e.g. 100M): one network interface's worth per agent")
	f.StringSlice("push-allow", nil, "servers third-party jobs may push to: CIDR, IP, IP:PORT or HOST:PORT (comma-separated or repeated), or none (default: any server that accepts the job's ticket)")
	return c
}

// parseExports parses NAME=/path[:OPTS] flags, OPTS being ro, rw and
// setid, comma-separated. A suffix that is not a list of those options
// is part of the path.
func parseExports(specs []string) (map[string]transfer.Export, func(), error) {
	out := map[string]transfer.Export{}
	closeAll := func() {
		for _, e := range out {
			e.Root.Close()
		}
	}
	for _, s := range specs {
		name, path, ok := strings.Cut(s, "=")
		if !ok || !location.ValidName(name) || path == "" {
			closeAll()
			return nil, nil, exitcode.Usagef("--export %q: want NAME=/path[:ro|:rw][,setid] with NAME of letters, digits, '.', '_', '-'", s)
		}
		ex := transfer.Export{}
		if i := strings.LastIndexByte(path, ':'); i >= 0 {
			if ro, setid, ok := exportOptions(path[i+1:]); ok {
				path, ex.ReadOnly, ex.AllowSetid = path[:i], ro, setid
			}
		}
		if _, dup := out[name]; dup {
			closeAll()
			return nil, nil, exitcode.Usagef("--export %q: %s exported twice", s, name)
		}
		r, err := fsroot.Open(path)
		if err != nil {
			closeAll()
			return nil, nil, exitcode.Usagef("--export %s: %v", name, err)
		}
		ex.Root = r
		out[name] = ex
	}
	return out, closeAll, nil
}

// exportOptions parses the options of an export (ro, rw, setid); ok is
// false unless opts is a list of them.
func exportOptions(opts string) (ro, setid, ok bool) {
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = false
		case "setid":
			setid = true
		default:
			return false, false, false
		}
	}
	return ro, setid, true
}

// stdioPolicy gives serve --stdio rsync's policy for what a run uploads:
// each of --allow-setid, --allow-owners and --allow-devices that was not
// set is turned on, and the umask of uploaded modes is 0 unless --umask
// was set (umask, the process's, stays the mask of what the server
// creates for itself).
func stdioPolicy(cmd *cobra.Command, umask uint32) (uint32, error) {
	for _, name := range []string{"allow-setid", "allow-owners", "allow-devices"} {
		if f := cmd.Flags().Lookup(name); f != nil && !f.Changed {
			if err := cmd.Flags().Set(name, "true"); err != nil {
				return 0, err
			}
		}
	}
	if f := cmd.Flags().Lookup("umask"); f != nil && f.Changed {
		return umask, nil
	}
	return 0, nil
}

// serveUmask is the umask of --umask, or of the process when unset (022
// where the kernel does not say).
func serveUmask(flag string) (uint32, error) {
	if flag != "" {
		v, err := strconv.ParseUint(flag, 8, 32)
		if err != nil || v > 0o777 {
			return 0, exitcode.Usagef("--umask %q: want octal permission bits such as 022 or 027", flag)
		}
		return uint32(v), nil
	}
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil && m <= 0o777 {
					return uint32(m), nil
				}
			}
		}
	}
	return 0o022, nil
}

// serveMetrics serves Prometheus metrics on --metrics-listen, when it is
// given, until ctx is done, logging a failure to log. It returns the
// metrics to record in (nil without the flag) and a wait that returns once
// serving has ended, after ctx is done.
func (a *app) serveMetrics(ctx context.Context, log *slog.Logger) (*metrics.Metrics, func(), error) {
	addr := a.v.GetString("metrics-listen")
	if addr == "" {
		return nil, func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, func() {}, exitcode.Usagef("--metrics-listen %s: %v", addr, session.NetReason(err))
	}
	m := metrics.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.ServeListener(ctx, ln, m); err != nil {
			log.Error("metrics server failed", "err", err)
		}
	}()
	fmt.Fprintf(a.stderr, "metrics on http://%s/metrics\n", ln.Addr())
	return m, func() { <-done }, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *app) runServe(cmd *cobra.Command, _ []string) error {
	if relay := a.v.GetString("stdio-relay"); relay != "" {
		ctx, stop := stdioSignals(cmd.Context())
		defer stop()
		return sshconn.Relay(ctx, relay, os.Stdin, os.Stdout)
	}
	stdio := a.v.GetBool("stdio")
	etcd, err := etcdConfig(cmd.Flags())
	if err != nil {
		return err
	}
	if etcd != nil && stdio {
		return exitcode.Usagef("--etcd does not go with --stdio")
	}
	rootDir := a.v.GetString("root")
	if stdio {
		var err error
		if rootDir, err = stdioRoot(rootDir); err != nil {
			return err
		}
	}
	// --export values contain '=', ':' and ','; read them from the flag
	// as given, and from XFER_EXPORT or the config file otherwise.
	exportSpecs := a.v.GetStringSlice("export")
	if f := cmd.Flags().Lookup("export"); f != nil && f.Changed {
		exportSpecs, _ = cmd.Flags().GetStringArray("export")
	}
	if rootDir == "" && len(exportSpecs) == 0 {
		return exitcode.Usagef("--root is required (or one or more --export NAME=/path)")
	}
	if len(exportSpecs) > 0 && a.v.GetBool("allow-setid") {
		return exitcode.Usagef("--allow-setid goes with --root; give an export the setid option instead (NAME=/path:rw,setid)")
	}
	if rootDir != "" && len(exportSpecs) > 0 {
		return exitcode.Usagef("--root and --export do not go together: serve one tree, or named exports")
	}
	var token []byte
	if tf := a.v.GetString("token-file"); tf != "" {
		var err error
		if token, err = readToken(tf); err != nil {
			return err
		}
	}
	if stdio && token == nil {
		token = stdioToken()
	}
	tlsConf, err := a.serverTLS()
	if err != nil {
		return err
	}
	for _, n := range []string{"max-sessions", "max-sessions-per-client", "max-handshakes", "max-handshakes-per-client", "max-open-files"} {
		if a.v.GetInt(n) < 1 {
			return exitcode.Usagef("--%s %d: want at least 1", n, a.v.GetInt(n))
		}
	}
	if d := a.v.GetDuration("handshake-timeout"); d < 100*time.Millisecond {
		return exitcode.Usagef("--handshake-timeout %s: want at least 100ms", d)
	}
	maxFrame, err := parseSize(a.v.GetString("max-frame"))
	if err != nil || maxFrame < 64<<10 {
		return exitcode.Usagef("--max-frame: want a size of at least 64K")
	}
	maxMem, err := parseSize(a.v.GetString("max-session-memory"))
	if err != nil || maxMem < 64<<20 {
		return exitcode.Usagef("--max-session-memory: want a size of at least 64M")
	}
	maxAll, err := parseSize(a.v.GetString("max-memory"))
	if err != nil || maxAll < maxMem {
		return exitcode.Usagef("--max-memory: want a size of at least --max-session-memory (%s)", a.v.GetString("max-session-memory"))
	}
	if maxFrame > maxMem {
		return exitcode.Usagef("--max-frame: at most --max-session-memory (%s)", a.v.GetString("max-session-memory"))
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Receive buffers given back are garbage until the collector
		// runs: near the cap it runs sooner, so the process stays close
		// to what the pool allows.
		debug.SetMemoryLimit(maxAll + 512<<20)
	}
	umask, err := serveUmask(a.v.GetString("umask"))
	if err != nil {
		return err
	}
	// Whatever the server creates itself (directories on the way to an
	// upload, partial files) gets no more than the umask allows either.
	unix.Umask(int(umask))
	if stdio {
		// The far side of an ssh:// location serves one run of the ssh
		// user's own, as rsync --server does for rsync -e ssh: it keeps
		// what rsync -a keeps (modes exactly, set-id bits and, where that
		// user is root, owners and devices). The kernel, not a policy,
		// holds it to that user's rights. What the far side's XFER_*
		// variables or config file set still wins.
		if umask, err = stdioPolicy(cmd, umask); err != nil {
			return err
		}
	}
	protos := a.v.GetStringSlice("protos")
	for _, p := range protos {
		if !backends.Known(p) {
			return exitcode.Usagef("--protos: unknown transport %q (want tcp, tcp-zc, uring or rdma)", p)
		}
	}
	var bandwidth *ratelimit.Bandwidth
	if bw, err := parseBwLimit(a.v.GetString("bwlimit")); err != nil {
		return err
	} else if bw > 0 {
		bandwidth = ratelimit.NewBandwidth(bw)
	}
	var pushAllow *transfer.PushPolicy
	if pa := a.v.GetStringSlice("push-allow"); len(pa) > 0 {
		if pushAllow, err = transfer.ParsePushAllow(pa); err != nil {
			return exitcode.Usagef("%v", err)
		}
	}
	var (
		root    *fsroot.Root
		exports map[string]transfer.Export
		what    string
	)
	if rootDir != "" {
		root, err = fsroot.Open(rootDir)
		if err != nil {
			return exitcode.Usagef("--root %s: %v", rootDir, err)
		}
		defer root.Close()
		what = "root " + root.Path()
		if a.v.GetBool("read-only") {
			what += " (read-only)"
		}
		if a.v.GetBool("allow-setid") {
			what += " (set-id bits kept)"
		}
	} else {
		var closeAll func()
		exports, closeAll, err = parseExports(exportSpecs)
		if err != nil {
			return err
		}
		defer closeAll()
		var names []string
		for n, e := range exports {
			mode := "rw"
			if e.ReadOnly {
				mode = "ro"
			}
			if e.AllowSetid {
				mode += ",setid"
			}
			names = append(names, n+"="+e.Root.Path()+":"+mode)
		}
		sort.Strings(names)
		what = "exports " + strings.Join(names, " ")
	}
	var store *cas.Store
	if dir := a.v.GetString("cas"); dir != "" {
		if store, err = cas.Open(dir); err != nil {
			return exitcode.Usagef("--cas %s: %v", dir, err)
		}
		defer store.Close()
		what += ", cas " + store.Dir()
	}
	addr := a.v.GetString("listen")
	var ln net.Listener
	if stdio {
		if ln, err = sshconn.DataListener(a.v.GetString("stdio-listen")); err != nil {
			return exitcode.Usagef("serve --stdio: %v", session.NetReason(err))
		}
	} else if token == nil && !isLoopback(addr) {
		if !a.v.GetBool("insecure-listen") {
			return exitcode.Usagef("refusing to listen on %s without --token-file: anyone who can reach it could read and write the tree (add --token-file, or --insecure-listen if the network is trusted)", addr)
		}
		a.log.Warn("listening beyond loopback without a token: anyone who can reach the port can read and write the tree", "listen", addr)
		fmt.Fprintf(a.stderr, "xfer: WARNING: --insecure-listen: no authentication on %s\n", addr)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return exitcode.Usagef("listen on %s: %v", addr, session.NetReason(err))
		}
	}
	mctx, stopMetrics := context.WithCancel(cmd.Context())
	m, waitMetrics, err := a.serveMetrics(mctx, a.log)
	defer waitMetrics()
	defer stopMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	srv := transfer.NewServer(transfer.ServerConfig{
		ServerConfig: session.ServerConfig{
			Metrics:                m,
			Token:                  token,
			TLS:                    tlsConf,
			AllowPlainData:         !a.v.GetBool("tls-data"),
			MaxSessions:            a.v.GetInt("max-sessions"),
			MaxSessionsPerClient:   a.v.GetInt("max-sessions-per-client"),
			MaxHandshakes:          a.v.GetInt("max-handshakes"),
			MaxHandshakesPerClient: a.v.GetInt("max-handshakes-per-client"),
			HandshakeTimeout:       a.v.GetDuration("handshake-timeout"),
			MaxFrame:               int(maxFrame),
			MaxSessionMemory:       maxMem,
			MaxMemory:              maxAll,
			Protos:                 protos,
			IdleTimeout:            a.v.GetDuration("timeout"),
			Log:                    a.log,
			Version:                versionString(),
			Bandwidth:              bandwidth,
		},
		Root:         root,
		Exports:      exports,
		ReadOnly:     a.v.GetBool("read-only"),
		Umask:        umask,
		AllowSetid:   a.v.GetBool("allow-setid"),
		AllowOwners:  a.v.GetBool("allow-owners"),
		AllowDevices: a.v.GetBool("allow-devices"),
		MaxOpenFiles: a.v.GetInt("max-open-files"),
		CAS:          store,
		CASReadOnly:  a.v.GetBool("cas-read-only") || a.v.GetBool("read-only"),
		NoFsync:      a.v.GetBool("no-fsync"),
		Dial:         a.serverDialOptions(a.log),
		PushAllow:    pushAllow,
	})
	if stdio {
		return a.serveStdio(cmd.Context(), srv, ln, token)
	}
	what += fmt.Sprintf(", umask %03o", umask)
	if bandwidth != nil {
		what += fmt.Sprintf(", data capped at %s/s each way", a.v.GetString("bwlimit"))
	}
	fmt.Fprintf(a.stderr, "listening on %s (%s, %s, transports %s)\n", ln.Addr(), what,
		describeAuth(token != nil, tlsConf), strings.Join(offeredList(protos), ","))
	if etcd != nil {
		ttl, err := a.etcdTTL()
		if err != nil {
			ln.Close()
			return err
		}
		wait, err := a.serveRegister(cmd.Context(), etcd, ln, rootDir, store != nil, protos, ttl)
		if err != nil {
			ln.Close()
			return err
		}
		defer wait()
	}
	return srv.Serve(cmd.Context(), ln)
}

func offeredList(protos []string) []string {
	return append([]string(nil), backends.Usable(protos)...)
}
