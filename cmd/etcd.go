package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/location"
	"github.com/xfer-io/xfer/internal/membership"
	"github.com/xfer-io/xfer/transfer"
)

// etcdFlags adds the flags that say how to reach etcd and which cluster.
func etcdFlags(f *pflag.FlagSet) {
	f.StringSlice("etcd", nil, "etcd client URLs (comma-separated) of the cluster's membership (see docs/etcd.md)")
	f.String("cluster", "", "with --etcd: the name of the cluster")
	f.String("etcd-cacert", "", "with --etcd: verify etcd's TLS certificate against this CA (PEM)")
	f.String("etcd-cert", "", "with --etcd: client certificate (PEM) for etcd")
	f.String("etcd-key", "", "with --etcd: private key (PEM) of --etcd-cert")
}

// etcdTTLFlag adds --etcd-ttl, the lease TTL of a registration.
func etcdTTLFlag(f *pflag.FlagSet) {
	f.Duration("etcd-ttl", membership.DefaultTTL, "with --etcd: lease TTL of the registration (a killed member leaves the cluster this long after)")
}

// etcdConfig reads the etcd flags of cmd; nil without --etcd.
func etcdConfig(fl *pflag.FlagSet) (*location.Etcd, error) {
	eps, _ := fl.GetStringSlice("etcd")
	name, _ := fl.GetString("cluster")
	if len(eps) == 0 {
		if name != "" {
			return nil, exitcode.Usagef("--cluster goes with --etcd URL")
		}
		return nil, nil
	}
	if !location.ValidName(name) {
		return nil, exitcode.Usagef("--etcd needs --cluster NAME (letters, digits, '.', '_' and '-')")
	}
	e := &location.Etcd{Endpoints: eps, Cluster: name}
	e.CACert, _ = fl.GetString("etcd-cacert")
	e.Cert, _ = fl.GetString("etcd-cert")
	e.Key, _ = fl.GetString("etcd-key")
	if (e.Cert == "") != (e.Key == "") {
		return nil, exitcode.Usagef("--etcd-cert and --etcd-key go together")
	}
	return e, nil
}

func membershipConfig(e *location.Etcd) membership.Config {
	return membership.Config{Endpoints: e.Endpoints, Cluster: e.Cluster, CACert: e.CACert, Cert: e.Cert, Key: e.Key}
}

// serveRegister registers the agent listening on ln and serving root in
// the cluster of e (as a holder of objects too when it serves a store,
// cas; with no root, as a holder alone), and keeps the registration alive
// in the background until ctx ends (then it deregisters; wait waits for
// that).
func (a *app) serveRegister(ctx context.Context, e *location.Etcd, ln net.Listener, root string, cas bool, protos []string, ttl time.Duration) (wait func(), err error) {
	if root == "" && !cas {
		return nil, exitcode.Usagef("--etcd goes with --root (a cluster's members serve one tree) or --cas (a holder of objects)")
	}
	tree := ""
	if root != "" {
		if tree, err = membership.TreeID(root); err != nil {
			return nil, exitcode.Usagef("%v", err)
		}
	}
	addr := ln.Addr().String()
	return a.register(ctx, e, membership.Member{ID: addr, Addr: addr, Transports: offeredList(protos), RDMA: rdmaDevices(),
		TreeID: tree, CAS: cas, Version: version, Protocol: transfer.ProtocolVersion, Started: time.Now().UTC()}, ttl)
}

// register registers m in the cluster of e and keeps the registration
// alive in the background until ctx ends (then it deregisters; wait waits
// for that).
func (a *app) register(ctx context.Context, e *location.Etcd, m membership.Member, ttl time.Duration) (wait func(), err error) {
	c, err := membership.Dial(membershipConfig(e))
	if err != nil {
		return nil, exitcode.Usagef("%v", err)
	}
	reg, err := c.Register(ctx, m, ttl)
	if err != nil {
		c.Close()
		if errors.Is(err, membership.ErrForeignTree) {
			return nil, exitcode.Usagef("%v", err)
		}
		return nil, exitcode.Peerf("%v", err)
	}
	what := "tree " + m.TreeID
	switch {
	case m.TreeID == "":
		what = "content-addressed store"
	case m.CAS:
		what += " and content-addressed store"
	}
	fmt.Fprintf(a.stderr, "registered %s in cluster %s (etcd %s, %s, lease %s)\n", m.Addr, e.Cluster, strings.Join(e.Endpoints, ","), what, ttl)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.Close()
		if err := reg.Keep(ctx, func(msg string) { fmt.Fprintf(a.stderr, "xfer: %s\n", msg) }); err != nil {
			fmt.Fprintf(a.stderr, "xfer: %v\n", err)
		}
	}()
	return func() { <-done }, nil
}

// etcdTTL reads --etcd-ttl.
func (a *app) etcdTTL() (time.Duration, error) {
	ttl := a.v.GetDuration("etcd-ttl")
	if ttl < time.Second {
		return 0, exitcode.Usagef("--etcd-ttl %s: want at least 1s", ttl)
	}
	return ttl, nil
}

// casHolders returns the addresses of the live content-addressed stores
// registered in the cluster of e.
func casHolders(ctx context.Context, e *location.Etcd) ([]string, error) {
	c, err := membership.Dial(membershipConfig(e))
	if err != nil {
		return nil, exitcode.Peerf("%v", err)
	}
	defer c.Close()
	return holderAddrs(ctx, c, "")
}

// holderAddrs returns the addresses of the live content-addressed stores
// registered with c, but self.
func holderAddrs(ctx context.Context, c *membership.Client, self string) ([]string, error) {
	ms, err := c.Holders(ctx)
	if err != nil {
		return nil, exitcode.Peerf("%v", err)
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.Addr != self {
			out = append(out, m.Addr)
		}
	}
	return out, nil
}

// etcdAgents returns the addresses of the live members of e's cluster,
// and its membership to watch during the run from the moment they were
// read.
func etcdAgents(ctx context.Context, e *location.Etcd) ([]string, transfer.Membership, error) {
	c, err := membership.Dial(membershipConfig(e))
	if err != nil {
		return nil, nil, exitcode.Peerf("%v", err)
	}
	defer c.Close()
	ms, rev, err := c.Agents(ctx)
	if err != nil {
		return nil, nil, exitcode.Peerf("%v", err)
	}
	if len(ms) == 0 {
		return nil, nil, exitcode.Peerf("cluster %s has no live members in etcd %s", e.Cluster, strings.Join(e.Endpoints, ","))
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Addr
	}
	return out, etcdMembers{e: e, rev: rev}, nil
}

// etcdMembers is the membership of a cluster kept in etcd, watched from
// the revision its members were listed at (transfer.Membership).
type etcdMembers struct {
	e   *location.Etcd
	rev int64
}

func (m etcdMembers) Watch(ctx context.Context, left, joined func(addr string)) error {
	c, err := membership.Dial(membershipConfig(m.e))
	if err != nil {
		return err
	}
	defer c.Close()
	// A member's ID is its address (serveRegister).
	// Stores alone are no agents.
	return c.Watch(ctx, m.rev, left, func(mb membership.Member) {
		if mb.IsAgent() {
			joined(mb.Addr)
		}
	})
}

// etcdJob records a cluster transfer in the etcd of one of its sides
// (transfer.Job); name gives it its identity before the run.
type etcdJob struct {
	e    *location.Etcd
	path string // the side's path in the cluster's tree

	id, src, dst string
	keep         time.Duration
	c            *membership.Client
	j            *membership.Job
}

// name identifies the job: the same command (locations, which transfer
// command, and the options that decide what moves) is the same job.
func (j *etcdJob) name(args []string, kind transferKind, opt transfer.Options, keep time.Duration) {
	o := opt
	// What does not change what the run moves is not part of the job.
	o.BwLimit, o.Streams, o.Checkers, o.Transfers, o.Proto, o.ProtoReason = 0, 0, 0, 0, "", ""
	o.ConnectTO, o.IdleTO, o.Retries, o.UringEntry, o.DryRun, o.Lock = 0, 0, 0, 0, false, false
	o.Filter, o.MaxDelete = nil, nil
	var flt any
	if opt.Filter != nil {
		flt = *opt.Filter
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%+v\x00%+v\x00%+v", args[0], args[1], kind, o, flt)))
	j.id, j.src, j.dst, j.keep = hex.EncodeToString(h[:12]), args[0], args[1], keep
}

func (j *etcdJob) client() (*membership.Client, error) {
	if j.c == nil {
		c, err := membership.Dial(membershipConfig(j.e))
		if err != nil {
			return nil, exitcode.Peerf("%v", err)
		}
		j.c = c
	}
	return j.c, nil
}

func (j *etcdJob) close() {
	if j.c != nil {
		j.c.Close()
	}
}

func (j *etcdJob) Begin(ctx context.Context, p transfer.JobPlan) (int, []int, []int, error) {
	c, err := j.client()
	if err != nil {
		return 0, nil, nil, err
	}
	job, count, done, err := c.OpenJob(ctx, j.id, j.src, j.dst, membership.Plan{Shares: p.Shares, Units: p.Units, Cut: p.Cut})
	if err != nil {
		return 0, nil, nil, exitcode.Peerf("%v", err)
	}
	j.j = job
	return count, slices.Collect(maps.Keys(done.Shares)), slices.Collect(maps.Keys(done.Units)), nil
}

func (j *etcdJob) ShareDone(ctx context.Context, k int, files, bytes int64) error {
	return j.j.ShareDone(ctx, k, files, bytes)
}

func (j *etcdJob) UnitDone(ctx context.Context, k int, files, bytes int64) error {
	return j.j.UnitDone(ctx, k, files, bytes)
}

func (j *etcdJob) Finish(ctx context.Context) error { return j.j.Finish(ctx, j.keep) }

// Lock takes the cluster's lock on the destination path.
func (j *etcdJob) Lock(ctx context.Context) (func(), error) {
	c, err := j.client()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(j.path))
	release, err := c.Lock(ctx, hex.EncodeToString(h[:12]))
	if errors.Is(err, membership.ErrLocked) {
		return nil, exitcode.WithCode(exitcode.Partial, err)
	}
	if err != nil {
		return nil, exitcode.Peerf("%v", err)
	}
	return release, nil
}

func newClusterCmd(a *app) *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls {REMOTE | --etcd URL --cluster NAME}",
		Short: "List the live members of a cluster kept in etcd",
		Long: `Ls prints the members registered in etcd for the cluster of the remote
REMOTE (added with 'xfer remote add NAME --etcd URL --cluster CLUSTER'), or
of --etcd and --cluster: address, lease time left, transports, RDMA
devices, tree id ("-" for a store alone), whether it holds objects (CAS:
'serve --cas', 'daemon --listen'), version and protocol. With --json it prints one object
per member and line (the stored value, docs/etcd.md, plus "ttl_left_s").
Exit status 3 if etcd does not answer.`,
		Example:           `  xfer cluster ls clusterA`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeRemoteNames,
		RunE:              a.clusterLs,
	}
	etcdFlags(ls.Flags())
	return commandGroup(&cobra.Command{
		Use:               "cluster",
		Short:             "Show clusters whose membership is kept in etcd",
		PersistentPreRunE: a.initTolerant,
	}, ls)
}

func (a *app) clusterLs(cmd *cobra.Command, args []string) error {
	e, err := etcdConfig(cmd.Flags())
	if err != nil {
		return err
	}
	switch {
	case e != nil && len(args) == 1:
		return exitcode.Usagef("cluster ls: give a remote or --etcd and --cluster, not both")
	case e == nil && len(args) == 0:
		return exitcode.Usagef("cluster ls: give a remote (xfer cluster ls REMOTE) or --etcd URL --cluster NAME")
	case e == nil:
		remotes, err := a.remotes()
		if err != nil {
			return err
		}
		r, ok := remotes[strings.ToLower(args[0])]
		if !ok || r.Etcd == nil {
			return exitcode.Usagef("no remote %q kept in etcd (see 'xfer remote ls')", args[0])
		}
		e = r.Etcd
	}
	c, err := membership.Dial(membershipConfig(e))
	if err != nil {
		return exitcode.Peerf("%v", err)
	}
	defer c.Close()
	ms, err := c.List(cmd.Context())
	if err != nil {
		return exitcode.Peerf("%v", err)
	}
	if a.v.GetBool("json") {
		enc := json.NewEncoder(a.stdout)
		for _, m := range ms {
			if err := enc.Encode(struct {
				membership.Member
				TTLLeft float64 `json:"ttl_left_s"`
			}{m, m.TTLLeft.Seconds()}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tTTL LEFT\tTRANSPORTS\tRDMA\tTREE\tCAS\tVERSION\tPROTOCOL")
	for _, m := range ms {
		cas := "no"
		if m.CAS {
			cas = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", m.Addr, m.TTLLeft, strings.Join(m.Transports, ","),
			orDash(strings.Join(m.RDMA, ",")), orDash(m.TreeID), cas, m.Version, m.Protocol)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ms) == 0 && !a.v.GetBool("quiet") {
		fmt.Fprintf(a.stderr, "cluster %s has no live members\n", e.Cluster)
	}
	return nil
}

// orDash is s, or "-" for nothing.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rdmaDevices names the RDMA devices of this host (none if it has none).
func rdmaDevices() []string {
	ents, _ := os.ReadDir("/sys/class/infiniband")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
