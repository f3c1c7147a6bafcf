// Package membership keeps the members of an xfer cluster in etcd: an
// `xfer serve --etcd URL --cluster NAME` agent registers itself under
// Prefix(NAME) with a lease and keeps it alive (registering again when
// etcd comes back after an outage), and clients list the live members to
// use them as a cluster remote's agents. The keys and values are
// documented in docs/etcd.md; nothing secret is stored.
package membership

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/xfer-io/xfer/plan"
)

// TreeIDFile is the file at the root of a served tree that holds its
// identity: agents of one cluster must serve trees with the same one.
// (It is never copied: plan's walk leaves it out at the root.)
const TreeIDFile = plan.TreeIDFile

// DefaultTTL is the lease TTL of a registration when none is given.
const DefaultTTL = 10 * time.Second

// ErrForeignTree is wrapped by Register's error when the agent's tree is
// not the cluster's.
var ErrForeignTree = errors.New("tree is not the cluster's")

// Config says how to reach etcd and which cluster to use.
type Config struct {
	Endpoints []string // etcd client URLs
	Cluster   string
	CACert    string // PEM CA to verify etcd's certificate (TLS)
	Cert, Key string // client certificate and key (mutual TLS)
	// DialTimeout bounds connecting to etcd (default 5s).
	DialTimeout time.Duration
}

// Member is the value stored for one agent (JSON; see docs/etcd.md).
type Member struct {
	ID         string   `json:"id"`
	Addr       string   `json:"addr"`
	Transports []string `json:"transports"`
	RDMA       []string `json:"rdma_devices,omitempty"`
	// TreeID is the identity of the tree the member serves; empty for a
	// member that serves no tree (a store only: a CAS holder such as
	// `xfer daemon --listen`), which is never given a share of a cluster
	// transfer.
	TreeID string `json:"tree_id,omitempty"`
	// CAS says the member serves a content-addressed store (xfer serve
	// --cas, xfer daemon --listen): it is asked for objects by Holders'
	// users.
	CAS      bool      `json:"cas,omitempty"`
	Version  string    `json:"version"`
	Protocol int       `json:"protocol"`
	Started  time.Time `json:"started"`
	// TTLLeft is the time left on the member's lease when listed (not
	// stored).
	TTLLeft time.Duration `json:"-"`
}

// Prefix is the key prefix of a cluster's keys.
func Prefix(cluster string) string { return "/xfer/clusters/" + cluster + "/" }

func membersPrefix(cluster string) string { return Prefix(cluster) + "members/" }
func treeKey(cluster string) string       { return Prefix(cluster) + "tree-id" }

// Client is a connection to etcd for one cluster.
type Client struct {
	cfg Config
	cli *clientv3.Client
}

// Dial connects to etcd.
func Dial(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 || cfg.Cluster == "" {
		return nil, errors.New("etcd: need endpoints and a cluster name")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         tc,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return &Client{cfg: cfg, cli: cli}, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.CACert == "" && cfg.Cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("etcd CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA certificate %s: no PEM certificate in it", cfg.CACert)
		}
		tc.RootCAs = pool
	}
	if cfg.Cert != "" || cfg.Key != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cli.Close() }

func (c *Client) where() string {
	return fmt.Sprintf("etcd %s, cluster %s", strings.Join(c.cfg.Endpoints, ","), c.cfg.Cluster)
}

// List returns the live members, by address.
func (c *Client) List(ctx context.Context) ([]Member, error) {
	ms, _, err := c.Snapshot(ctx)
	return ms, err
}

// Snapshot returns the live members, by address, and the etcd revision
// they were read at (to Watch from).
func (c *Client) Snapshot(ctx context.Context) ([]Member, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, membersPrefix(c.cfg.Cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("listing members (%s): %w", c.where(), reason(err))
	}
	var out []Member
	for _, kv := range resp.Kvs {
		m, ok := decode(kv.Value)
		if !ok {
			continue // not ours
		}
		if kv.Lease != 0 {
			if ttl, err := c.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil && ttl.TTL > 0 {
				m.TTLLeft = time.Duration(ttl.TTL) * time.Second
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, resp.Header.Revision, nil
}

// Agents returns the live members that serve the cluster's tree (the
// agents a cluster transfer gives shares to), by address, and the etcd
// revision they were read at.
func (c *Client) Agents(ctx context.Context) ([]Member, int64, error) {
	ms, rev, err := c.Snapshot(ctx)
	return keep(ms, func(m Member) bool { return m.IsAgent() }), rev, err
}

// Holders returns the live members that serve a content-addressed store,
// by address.
func (c *Client) Holders(ctx context.Context) ([]Member, error) {
	ms, _, err := c.Snapshot(ctx)
	return keep(ms, func(m Member) bool { return m.CAS }), err
}

// IsAgent says m serves the cluster's tree (not a store alone).
func (m Member) IsAgent() bool { return m.TreeID != "" }

func keep(ms []Member, ok func(Member) bool) []Member {
	out := ms[:0]
	for _, m := range ms {
		if ok(m) {
			out = append(out, m)
		}
	}
	return out
}

// decode reads a member's value; ok is false for anything else.
func decode(v []byte) (Member, bool) {
	var m Member
	if err := json.Unmarshal(v, &m); err != nil || m.Addr == "" {
		return Member{}, false
	}
	return m, true
}

// Watch reports the changes to the membership after revision rev (0:
// from now) until ctx ends: left with the ID of every member whose key
// is deleted (deregistered, or its lease expired), joined with every
// member registered (again). It returns nil when ctx ends, and an error
// when etcd ends the watch (compacted past rev, no leader); a watch whose
// etcd is unreachable waits for it without returning.
func (c *Client) Watch(ctx context.Context, rev int64, left func(id string), joined func(Member)) error {
	p := membersPrefix(c.cfg.Cluster)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	for resp := range c.cli.Watch(clientv3.WithRequireLeader(ctx), p, opts...) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watching members (%s): %w", c.where(), reason(err))
		}
		for _, ev := range resp.Events {
			switch ev.Type {
			case clientv3.EventTypeDelete:
				left(strings.TrimPrefix(string(ev.Kv.Key), p))
			case clientv3.EventTypePut:
				if m, ok := decode(ev.Kv.Value); ok {
					joined(m)
				}
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watching members (%s): the watch ended", c.where())
}

// TreeID returns the identity of the tree at root, creating TreeIDFile
// with a random one if it is missing.
func TreeID(root string) (string, error) {
	p := filepath.Join(root, TreeIDFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("tree id %s: %w", p, err)
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return TreeID(root) // another agent created it first
	}
	if err != nil {
		return "", fmt.Errorf("creating tree id %s: %w", p, err)
	}
	_, err = f.WriteString(id + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("writing tree id %s: %w", p, err)
	}
	return id, nil
}

// Registration is a member's registration, kept alive by Keep.
type Registration struct {
	c     *Client
	m     Member
	ttl   time.Duration
	lease clientv3.LeaseID
}

// Register checks that m's tree is the cluster's (the first member to
// register sets the cluster's tree id; a member without a tree, a store
// alone, is not checked) and registers m under a lease of ttl. The error wraps ErrForeignTree if the tree is not the cluster's.
func (c *Client) Register(ctx context.Context, m Member, ttl time.Duration) (*Registration, error) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	r := &Registration{c: c, m: m, ttl: ttl}
	l, err := r.put(ctx)
	if err != nil {
		return nil, err
	}
	r.lease = l
	return r, nil
}

// put claims or checks the cluster's tree id and writes the member's key
// under a new lease, which it returns.
func (r *Registration) put(ctx context.Context) (clientv3.LeaseID, error) {
	c := r.c
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	if err := r.checkTree(ctx); err != nil {
		return 0, err
	}
	lease, err := c.cli.Grant(ctx, int64((r.ttl+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("registering %s (%s): %w", r.m.Addr, c.where(), reason(err))
	}
	val, _ := json.Marshal(r.m)
	if _, err := c.cli.Put(ctx, membersPrefix(c.cfg.Cluster)+r.m.ID, string(val), clientv3.WithLease(lease.ID)); err != nil {
		return 0, fmt.Errorf("registering %s (%s): %w", r.m.Addr, c.where(), reason(err))
	}
	return lease.ID, nil
}

// checkTree claims the cluster's tree id for r's tree, or checks that it
// is r's; a member without a tree passes.
func (r *Registration) checkTree(ctx context.Context) error {
	if !r.m.IsAgent() {
		return nil
	}
	c := r.c
	tk := treeKey(c.cfg.Cluster)
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(tk), "=", 0)).
		Then(clientv3.OpPut(tk, r.m.TreeID)).Else(clientv3.OpGet(tk)).Commit()
	if err != nil {
		return fmt.Errorf("registering %s (%s): %w", r.m.Addr, c.where(), reason(err))
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) > 0 && string(kvs[0].Value) != r.m.TreeID {
			return fmt.Errorf("registering %s in %s: %w: it serves tree %s, the cluster's members serve tree %s (see %s at the root; or use another --cluster)",
				r.m.Addr, c.where(), ErrForeignTree, r.m.TreeID, kvs[0].Value, TreeIDFile)
		}
	}
	return nil
}

// Keep keeps the registration alive until ctx ends, registering again
// (after a lost connection or an expired lease) every retry interval;
// notice is told of each loss and recovery. When ctx ends it revokes the
// lease, which deletes the member's key at once. It returns a non-nil
// error only if the tree is found not to be the cluster's.
func (r *Registration) Keep(ctx context.Context, notice func(string)) error {
	lease := r.lease
	retry := max(r.ttl/3, time.Second)
	for {
		if lease != 0 {
			ch, err := r.c.cli.KeepAlive(ctx, lease)
			if err == nil {
				for range ch {
				}
			}
			if ctx.Err() != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, _ = r.c.cli.Revoke(rctx, lease)
				cancel()
				return nil
			}
			notice(fmt.Sprintf("lost the registration in %s; registering again when etcd answers", r.c.where()))
			lease = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		l, err := r.put(ctx)
		if errors.Is(err, ErrForeignTree) {
			return err
		}
		if err == nil {
			lease = l
			notice(fmt.Sprintf("registered again in %s", r.c.where()))
		}
	}
}

// reason turns an etcd client error into a short one.
func reason(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("etcd does not answer")
	}
	return err
}
