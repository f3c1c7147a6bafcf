package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/location"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/casnet"
	"github.com/xfer-io/xfer/ui"
)

func newCASCmd(a *app) *cobra.Command {
	c := commandGroup(&cobra.Command{
		Use:   "cas",
		Short: "Store and fetch content by its BLAKE3 id (content-addressed store)",
		Long: `cas keeps content in a content-addressed store: every object is named by
its id, the BLAKE3 digest of its content as b3sum prints it, and is stored
once however often it is put. Every get is verified against the id while it
is written out.

The local store is --cas (XFER_CAS), by default $XDG_DATA_HOME/xfer/cas
(~/.local/share/xfer/cas). REMOTE is a peer started with 'xfer serve --cas
DIR' (or 'xfer daemon --listen'), written xfer://HOST:PORT or as a remote
NAME of the config file; put, get, has and stat can work on it.

Exit codes: 0 success, 1 an object was missing or corrupt, 2 usage or
configuration error, 3 cannot reach or talk to the peer. See docs/cas.md.`,
	}, newCASPutCmd(a), newCASGetCmd(a), newCASHasCmd(a), newCASLsCmd(a),
		newCASRmCmd(a), newCASVerifyCmd(a), newCASStatCmd(a))
	c.PersistentFlags().String("cas", "", "local store directory (default $XDG_DATA_HOME/xfer/cas)")
	return c
}

// casPeerCmd gives c, a cas command that may work on a peer's store, the
// flags that reach it: --from (with usage fromUsage, unless empty: put
// names the peer as an argument) and addCASPeerFlags.
func casPeerCmd(c *cobra.Command, fromUsage string) *cobra.Command {
	if fromUsage != "" {
		c.Flags().String("from", "", fromUsage)
	}
	addCASPeerFlags(c)
	return c
}

// addCASPeerFlags declares how cas commands (and the daemon) reach a peer.
func addCASPeerFlags(c *cobra.Command) {
	addDialFlags(c, dialFlagSpec{
		protos: protoWords, protoUsage: "data transport to the peer: auto, tcp, tcp-zc, uring or rdma",
		streams: 2, streamsUsage: "data streams to the peer",
		peer: "the peer",
	})
}

func newCASPutCmd(a *app) *cobra.Command {
	return casPeerCmd(&cobra.Command{
		Use:   "put FILE|- [REMOTE]",
		Short: "Store a file (or standard input) and print its id",
		Long: `put stores the content of FILE ("-": standard input) and prints its id, the
64-hex-digit BLAKE3 digest, identical to what b3sum prints for the file.
Content already stored is not stored again (the saving shows in 'xfer cas
stat').

With REMOTE the content goes to that peer's store instead: a file is hashed
here first, not sent at all if the peer has it, and otherwise sent straight
from the file (sendfile where the transport allows) and verified by the
peer against the id; standard input is hashed while it is sent and the
peer's id checked against it.`,
		Example: `  xfer cas put model.bin
  tar c data | xfer cas put -
  xfer cas put model.bin xfer://10.0.0.2:7878`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: a.casPut,
	}, "")
}

func newCASGetCmd(a *app) *cobra.Command {
	c := casPeerCmd(&cobra.Command{
		Use:   "get ID [OUT|-] [--from REMOTE]",
		Short: "Write an object to a file or standard output, verified",
		Long: `get writes the content of object ID to OUT, or to standard output when OUT is
"-" or missing. The content is hashed while it is written: OUT is written
to a temporary file beside it and renamed into place only if the content
matches ID. On standard output a mismatch is reported at the end (exit 1),
after the bytes went out; do not use them then.

--from REMOTE reads the object from that peer's store instead of the local
one. --cluster NAME finds it in a cluster kept in etcd (docs/etcd.md):
NAME is a remote added with 'xfer remote add NAME --etcd URL --cluster
CLUSTER', or the cluster itself with --etcd URL; the stores registered there
('xfer serve --cas', 'xfer daemon --listen' with --etcd) are asked, 8 at a
time, and the object is read straight from the first that has it. Exit 1
if none has it, 3 if etcd or none of them answers.`,
		Example: `  xfer cas get 9f2a…c4 model.bin
  xfer cas get 9f2a…c4 - --from xfer://10.0.0.2:7878 | tar x
  xfer cas get 9f2a…c4 model.bin --cluster clusterA`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: a.casGet,
	}, "read from this peer's store (xfer://HOST:PORT or a remote name)")
	etcdFlags(c.Flags())
	c.Flags().Lookup("cluster").Usage = "find the object in this cluster: a remote kept in etcd, or the cluster of --etcd"
	return c
}

func newCASHasCmd(a *app) *cobra.Command {
	return casPeerCmd(&cobra.Command{
		Use:   "has ID...",
		Short: "Tell which objects are stored",
		Long: `has prints, for each ID, "ID  SIZE" if the store holds it and "ID  missing"
if not, and exits 1 if any is missing (0 if all are there). --from REMOTE
asks that peer's store.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: a.casHas,
	}, "ask this peer's store (xfer://HOST:PORT or a remote name)")
}

func newCASLsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the objects of the local store",
		Long:  `ls prints "ID  SIZE" for every object of the local store, in id order.`,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON := a.v.GetBool("json")
			enc := json.NewEncoder(a.stdout)
			return a.withStore(func(store *cas.Store) error {
				return store.List(cmd.Context(), func(id cas.ID, size int64) error {
					if asJSON {
						return enc.Encode(casObject{ID: id.String(), Size: &size})
					}
					_, err := fmt.Fprintf(a.stdout, "%s  %d\n", id, size)
					return err
				})
			})
		},
	}
}

func newCASRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID...",
		Short: "Remove objects from the local store",
		Long: `rm removes each ID from the local store. A missing ID is reported and makes
the exit code 1; the others are still removed.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			return a.withStore(func(store *cas.Store) error {
				failed := false
				for _, id := range ids {
					if err := store.Remove(cmd.Context(), id); err != nil {
						fmt.Fprintf(a.stderr, "xfer: %v\n", err)
						failed = true
					}
				}
				return exitOf(nil, failed)
			})
		},
	}
}

func newCASVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every object; quarantine corrupt ones",
		Long: `verify re-hashes every object of the local store. Each corrupt object is
reported ("ID: CORRUPT ...") and moved to the store's quarantine/ directory,
so that it is no longer served and putting the content again stores it
afresh. The summary line gives the objects checked and found corrupt; the
exit code is 1 if any was.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON := a.v.GetBool("json")
			enc := json.NewEncoder(a.stdout)
			return a.withStore(func(store *cas.Store) error {
				checked, corrupt, err := store.Verify(cmd.Context(), func(id cas.ID, err error) {
					if err == nil {
						return
					}
					if asJSON {
						enc.Encode(map[string]any{"event": "corrupt", "id": id.String(), "error": err.Error(),
							"quarantined": errors.Is(err, cas.ErrCorrupt)})
						return
					}
					if errors.Is(err, cas.ErrCorrupt) {
						fmt.Fprintf(a.stdout, "%s: CORRUPT, quarantined (%v)\n", id, err)
					} else {
						fmt.Fprintf(a.stdout, "%s: FAILED (%v)\n", id, err)
					}
				})
				if asJSON {
					enc.Encode(map[string]any{"event": "summary", "checked": checked, "corrupt": corrupt})
				} else if !a.v.GetBool("quiet") {
					fmt.Fprintf(a.stdout, "verified %d objects: %d corrupt\n", checked, corrupt)
				}
				return exitOf(err, corrupt > 0)
			})
		},
	}
}

func newCASStatCmd(a *app) *cobra.Command {
	return casPeerCmd(&cobra.Command{
		Use:   "stat",
		Short: "Summarise a store: objects, bytes, dedup saved",
		Long: `stat prints the number of objects and their bytes (packed objects of at
most 1 MiB and standalone larger ones), the pack files' size on disk, and
the bytes put again but not stored again (dedup saved). --from REMOTE asks
that peer's store.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st cas.Stats
			err := a.onStore(cmd.Context(), a.v.GetString("from"), func(store *cas.Store) (err error) {
				st, err = store.Stat()
				return err
			}, func(c *casnet.Client) (err error) {
				st, err = c.Stat(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			if a.v.GetBool("json") {
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"objects": st.Objects, "bytes": st.Bytes,
					"packed_objects": st.PackedObjects, "packed_bytes": st.PackedBytes,
					"large_objects": st.LargeObjects, "large_bytes": st.LargeBytes,
					"packs": st.Packs, "pack_file_bytes": st.PackFileBytes, "dedup_saved": st.DedupSaved,
				})
			}
			fmt.Fprintf(a.stdout, "objects:      %d (%s)\n", st.Objects, casBytes(st.Bytes))
			fmt.Fprintf(a.stdout, "  packed:     %d (%s) in %d pack files of %s\n", st.PackedObjects, casBytes(st.PackedBytes), st.Packs, casBytes(st.PackFileBytes))
			fmt.Fprintf(a.stdout, "  standalone: %d (%s)\n", st.LargeObjects, casBytes(st.LargeBytes))
			fmt.Fprintf(a.stdout, "dedup saved:  %s\n", casBytes(st.DedupSaved))
			return nil
		},
	}, "ask this peer's store (xfer://HOST:PORT or a remote name)")
}

// casBytes prints n exactly and, from 1 KiB, also as the progress output
// does (ui.FormatBytes).
func casBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%d B, %s", n, ui.FormatBytes(n))
}

// casObject is a JSON output line.
type casObject struct {
	ID      string `json:"id"`
	Size    *int64 `json:"size,omitempty"`
	Present *bool  `json:"present,omitempty"`
}

// casDir is the local store directory: --cas, XFER_CAS, or the default.
func (a *app) casDir() string {
	if d := a.v.GetString("cas"); d != "" {
		return d
	}
	return cas.DefaultDir()
}

// withStore runs fn on the local store, closed when fn returns.
func (a *app) withStore(fn func(*cas.Store) error) error {
	dir := a.casDir()
	store, err := cas.Open(dir)
	if err != nil {
		return exitcode.Usagef("store %s: %v", dir, err)
	}
	defer store.Close()
	return fn(store)
}

// withPeer runs fn on a client of the store of REMOTE (see casPeer) over
// a session closed when fn returns.
func (a *app) withPeer(ctx context.Context, remote string, fn func(*casnet.Client) error) error {
	s, err := a.casSession(ctx, remote)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(casnet.NewClient(s))
}

// onStore runs peer on the store of REMOTE from (--from), or local on the
// local store when from is empty.
func (a *app) onStore(ctx context.Context, from string, local func(*cas.Store) error, peer func(*casnet.Client) error) error {
	if from != "" {
		return a.withPeer(ctx, from, peer)
	}
	return a.withStore(local)
}

func parseIDs(args []string) ([]cas.ID, error) {
	ids := make([]cas.ID, 0, len(args))
	for _, s := range args {
		id, err := cas.ParseID(s)
		if err != nil {
			return nil, exitcode.Usagef("%v", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// casPeer resolves REMOTE (xfer://HOST:PORT, or a remote NAME of the config
// file, with or without a trailing colon) into an address and how to dial
// it, with the invoked command's flags.
func (a *app) casPeer(remote string) (string, transfer.DialOptions, error) {
	var r *location.Remote
	var addr string
	if strings.HasPrefix(remote, "xfer://") {
		ad, p, err := location.ParseURL(remote)
		if err != nil {
			return "", transfer.DialOptions{}, exitcode.Usagef("%v", err)
		}
		if p != "" {
			return "", transfer.DialOptions{}, exitcode.Usagef("remote %q: a store is named xfer://HOST:PORT, without a path", remote)
		}
		addr = ad
	} else {
		remotes, err := a.remotes()
		if err != nil {
			return "", transfer.DialOptions{}, err
		}
		name := strings.TrimSuffix(remote, ":")
		rr, ok := remotes[strings.ToLower(name)]
		if !ok || !location.ValidName(name) {
			return "", transfer.DialOptions{}, exitcode.Usagef("unknown remote %q (define it with 'xfer remote add', or write xfer://HOST:PORT)", remote)
		}
		if len(rr.Agents) == 0 {
			return "", transfer.DialOptions{}, exitcode.Usagef("remote %q has no address", remote)
		}
		rr.Name = name
		r, addr = &rr, rr.Agents[0]
	}
	pa, err := a.peerAuth(r)
	if err != nil {
		return "", transfer.DialOptions{}, err
	}
	o, err := a.dialOptions(pa)
	if err != nil {
		return "", transfer.DialOptions{}, err
	}
	return addr, o, nil
}

func (a *app) casSession(ctx context.Context, remote string) (*transfer.Session, error) {
	addr, o, err := a.casPeer(remote)
	if err != nil {
		return nil, err
	}
	return transfer.Dial(ctx, addr, o)
}

func (a *app) printID(id cas.ID, size int64) {
	if a.v.GetBool("json") {
		json.NewEncoder(a.stdout).Encode(casObject{ID: id.String(), Size: &size})
		return
	}
	fmt.Fprintln(a.stdout, id)
}

func (a *app) casPut(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	name := args[0]
	var f *os.File
	if name == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(name); err != nil {
			return exitcode.Usagef("%s: %v", name, unwrapPathErr(err))
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.IsDir() {
			return exitcode.Usagef("%s: is a directory", name)
		}
	}
	if len(args) == 2 {
		return a.casPutRemote(ctx, f, name, args[1])
	}
	return a.withStore(func(store *cas.Store) error {
		var id cas.ID
		var n int64
		var err error
		if name == "-" {
			id, n, err = store.Put(ctx, f)
		} else {
			id, n, err = store.PutFile(ctx, name)
		}
		if err != nil {
			return err
		}
		a.printID(id, n)
		return nil
	})
}

func (a *app) casPutRemote(ctx context.Context, f *os.File, name, remote string) error {
	return a.withPeer(ctx, remote, func(c *casnet.Client) error {
		return a.casPutPeer(ctx, c, f, name)
	})
}

// casPutPeer puts f (named name) into c's store: a regular file only if
// the store lacks it, by sendfile; anything else streamed as it is hashed.
func (a *app) casPutPeer(ctx context.Context, c *casnet.Client, f *os.File, name string) error {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		id, n, err := c.PutReader(ctx, f, nil)
		if err != nil {
			return err
		}
		a.printID(id, n)
		return nil
	}
	size := st.Size()
	d, err := hashtree.HashFile(ctx, f, size, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	id := cas.ID(d)
	sizes, err := c.Has(ctx, []cas.ID{id})
	if err != nil {
		return err
	}
	if sizes[0] != size {
		if _, err := c.SendFile(ctx, f, 0, size, &id); err != nil {
			if errors.Is(err, cas.ErrCorrupt) {
				return fmt.Errorf("%w (was %s modified while it was put?)", err, name)
			}
			return err
		}
	}
	a.printID(id, size)
	return nil
}

func (a *app) casGet(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	ids, err := parseIDs(args[:1])
	if err != nil {
		return err
	}
	id := ids[0]
	out := "-"
	if len(args) == 2 {
		out = args[1]
	}
	fromPeer := func(c *casnet.Client) error {
		if out == "-" {
			_, err := c.Get(ctx, id, a.stdout)
			return err
		}
		return getFile(ctx, c, id, out)
	}
	e, err := a.casCluster(cmd)
	if err != nil {
		return err
	}
	if e != nil {
		return a.onHolder(ctx, e, id, fromPeer)
	}
	return a.onStore(ctx, a.v.GetString("from"), func(store *cas.Store) error {
		if out == "-" {
			_, err := store.Get(ctx, id, a.stdout)
			return err
		}
		return store.GetFile(ctx, id, out)
	}, fromPeer)
}

// casCluster reads --cluster (with or without --etcd) of a cas command:
// the etcd and cluster whose holders to ask, nil without --cluster.
func (a *app) casCluster(cmd *cobra.Command) (*location.Etcd, error) {
	fl := cmd.Flags()
	name, _ := fl.GetString("cluster")
	eps, _ := fl.GetStringSlice("etcd")
	if name == "" && len(eps) == 0 {
		return nil, nil
	}
	if a.v.GetString("from") != "" {
		return nil, exitcode.Usagef("--from and --cluster do not go together: read from one peer, or find a holder in a cluster")
	}
	if len(eps) > 0 {
		return etcdConfig(fl)
	}
	remotes, err := a.remotes()
	if err != nil {
		return nil, err
	}
	r, ok := remotes[strings.ToLower(name)]
	if !ok || r.Etcd == nil {
		return nil, exitcode.Usagef("--cluster %s: no remote of that name kept in etcd (add one with 'xfer remote add %s --etcd URL --cluster CLUSTER', or give --etcd URL)", name, name)
	}
	return r.Etcd, nil
}

// onHolder finds a holder of id among the stores registered in the
// cluster of e and runs fn on a client of the first that has it.
func (a *app) onHolder(ctx context.Context, e *location.Etcd, id cas.ID, fn func(*casnet.Client) error) error {
	addrs, err := casHolders(ctx, e)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	sessions := map[string]*transfer.Session{}
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	addr, _, err := casnet.Find(ctx, id, addrs, 0, func(ctx context.Context, addr string) (int64, error) {
		at, o, err := a.casPeer("xfer://" + addr)
		if err != nil {
			return 0, err
		}
		s, err := transfer.Dial(ctx, at, o)
		if err != nil {
			return 0, err
		}
		mu.Lock()
		sessions[addr] = s
		mu.Unlock()
		return casnet.NewClient(s).Lookup(ctx, id)
	})
	if casnet.IsUnreachable(err) {
		return exitcode.Peerf("cluster %s: %v", e.Cluster, err)
	}
	if err != nil {
		return fmt.Errorf("cluster %s: %w", e.Cluster, err)
	}
	a.log.Debug("object found", "id", id, "holder", addr, "cluster", e.Cluster)
	mu.Lock()
	s := sessions[addr]
	mu.Unlock()
	return fn(casnet.NewClient(s))
}

// getFile writes object id of c's store to the file out: to a temporary
// file beside it, renamed into place once the content is verified.
func getFile(ctx context.Context, c *casnet.Client, id cas.ID, out string) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".xfer-*")
	if err != nil {
		return exitcode.Usagef("%s: %v", out, unwrapPathErr(err))
	}
	_, err = c.Get(ctx, id, tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func (a *app) casHas(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	ids, err := parseIDs(args)
	if err != nil {
		return err
	}
	sizes := make([]int64, len(ids))
	err = a.onStore(ctx, a.v.GetString("from"), func(store *cas.Store) error {
		for i, id := range ids {
			n, err := store.Size(id)
			if errors.Is(err, cas.ErrNotFound) {
				n = -1
			} else if err != nil {
				return err
			}
			sizes[i] = n
		}
		return nil
	}, func(c *casnet.Client) (err error) {
		sizes, err = c.Has(ctx, ids)
		return err
	})
	if err != nil {
		return err
	}
	missing := false
	asJSON, quiet := a.v.GetBool("json"), a.v.GetBool("quiet")
	enc := json.NewEncoder(a.stdout)
	for i, id := range ids {
		present := sizes[i] >= 0
		missing = missing || !present
		switch {
		case asJSON:
			o := casObject{ID: id.String(), Present: &present}
			if present {
				o.Size = &sizes[i]
			}
			enc.Encode(o)
		case quiet:
		case present:
			fmt.Fprintf(a.stdout, "%s  %d\n", id, sizes[i])
		default:
			fmt.Fprintf(a.stdout, "%s  missing\n", id)
		}
	}
	return exitOf(nil, missing)
}
