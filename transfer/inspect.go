package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Tree is a location opened to be looked at and never changed: what
// `xfer ls`, `lsf`, `size`, `cat` and `check` read. A local path is read
// in this process; a peer's tree (served, named, a cluster's first agent
// that answers, or ssh://) over one session, whose listing, hashing and
// reading run on the peer, within its root and its access policy.
type Tree struct {
	ep    Endpoint
	top   string // the location beneath the root: "" for a local directory
	entry plan.Entry
	local *receive.Handler // a local location
	s     *session.Session // a peer's
}

// OpenTree opens the location ep names. One that does not exist is a
// usage error, as a missing source of a copy is.
func OpenTree(ctx context.Context, ep Endpoint, dial DialOptions) (*Tree, error) {
	if !ep.IsRemote() {
		return openLocalTree(ep)
	}
	t := &Tree{ep: ep}
	var err error
	agents := ep.Agents
	if len(agents) == 0 {
		agents = []string{ep.Addr}
	}
	// The agents of a cluster remote serve the same tree: the first
	// that answers will do.
	for _, a := range agents {
		aep := ep
		if ep.SSH == nil {
			aep.Addr = a
		}
		if t.s, _, err = dialPeer(ctx, aep, dial); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	stat := send.NewRemote(t.s, 0).Stat
	top := strings.Trim(ep.Path, "/")
	// A location that is a symlink to a directory is followed, as copy
	// and sync follow such a source; a symlink to anything else is the
	// symlink itself, as on this machine.
	if rp, err := plan.FollowLinks(ctx, top, stat); err == nil {
		if re, err := stat(ctx, rp); err == nil && re != nil && re.Type == plan.TypeDir {
			top = rp
		}
	}
	e, err := stat(ctx, top)
	if err == nil && e == nil {
		err = exitcode.Usagef("%s does not exist", ep)
	}
	if err != nil {
		t.s.Close()
		return nil, err
	}
	t.top, t.entry = top, *e
	t.entry.Path = plan.Base(top)
	return t, nil
}

// openLocalTree opens the local path ep names: a directory (or a symlink
// to one) as the root, a file within its directory.
func openLocalTree(ep Endpoint) (*Tree, error) {
	info, err := os.Stat(ep.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(ep.Path); lerr != nil {
			return nil, exitcode.Usagef("%s does not exist", ep.Path)
		}
		info, err = os.Lstat(ep.Path) // a dangling symlink: itself
	}
	if err != nil {
		return nil, exitcode.Usagef("%s: %v", ep.Path, fsroot.Reason(err))
	}
	dir, top := ep.Path, ""
	if !info.IsDir() {
		dir, top = filepath.Dir(ep.Path), filepath.Base(ep.Path)
	}
	r, err := fsroot.Open(dir)
	if err != nil {
		return nil, exitcode.Usagef("%s: %v", ep.Path, fsroot.Reason(err))
	}
	t := &Tree{ep: ep, top: top, local: receive.NewHandler(r, receive.Options{ReadOnly: true})}
	fi, err := t.local.Lstat(top)
	if err != nil {
		t.Close()
		return nil, exitcode.Usagef("%s: %v", ep.Path, fsroot.Reason(err))
	}
	t.entry = plan.EntryFromInfo(filepath.Base(ep.Path), fi)
	if t.entry.Type == plan.TypeSymlink {
		if t.entry.Target, err = os.Readlink(ep.Path); err != nil {
			t.Close()
			return nil, exitcode.Usagef("%s: %v", ep.Path, fsroot.Reason(err))
		}
	}
	return t, nil
}

// Close ends the tree's session (or closes the local root).
func (t *Tree) Close() {
	if t.s != nil {
		t.s.Close()
	}
	if t.local != nil {
		t.local.Close()
	}
}

// String is the location as the user wrote it.
func (t *Tree) String() string { return t.ep.String() }

// Top is the location's own entry; its Path is the location's last name.
func (t *Tree) Top() plan.Entry { return t.entry }

// IsDir reports whether the location is a directory.
func (t *Tree) IsDir() bool { return t.entry.Type == plan.TypeDir }

// List yields the entries beneath the location in plan.Compare order,
// with paths relative to it; a location that is a file yields itself,
// named by its last name. With checksum every regular file carries its
// BLAKE3 digest, computed where the file is (on the peer for a peer's
// tree); a file that could not be hashed has none.
func (t *Tree) List(ctx context.Context, checksum bool, checkers int) plan.Lister {
	if !t.IsDir() {
		e := t.entry
		if checksum && e.Type == plan.TypeFile {
			if d, err := t.Hash(ctx, ""); err == nil {
				e.Digest = d[:]
			}
		}
		return &plan.SliceLister{Entries: []plan.Entry{e}}
	}
	if t.s != nil {
		return t.s.List(ctx, t.top, checksum, checkers)
	}
	w := plan.NewWalkerN(t.local.Tree(), t.top, checkers)
	if !checksum {
		return w
	}
	return &hashingLister{Walker: w, t: t}
}

// hashingLister adds the digest of every regular file of a local walk.
type hashingLister struct {
	*plan.Walker
	t *Tree
}

func (h *hashingLister) Next(ctx context.Context) (plan.Entry, error) {
	e, err := h.Walker.Next(ctx)
	if err == nil && e.Type == plan.TypeFile {
		if d, herr := h.t.Hash(ctx, e.Path); herr == nil {
			e.Digest = d[:]
		} else if ctx.Err() != nil {
			return e, ctx.Err()
		}
	}
	return e, err
}

// path is rel (relative to the location; "" for the location itself)
// beneath the root.
func (t *Tree) path(rel string) string {
	if rel == "" {
		return t.top
	}
	return plan.Join(t.top, rel)
}

// Hash is the BLAKE3 digest of the regular file rel (relative to the
// location, "" for the location itself), computed where the file is.
func (t *Tree) Hash(ctx context.Context, rel string) ([32]byte, error) {
	if !t.IsDir() && rel == t.entry.Path {
		rel = ""
	}
	if t.s != nil {
		d, err := send.NewRemote(t.s, 0).Hash(ctx, t.path(rel))
		return d, err
	}
	d, err := t.local.Hash(ctx, t.path(rel))
	return d, err
}

// catWindow is how many reads Cat keeps in flight, so that a peer's
// round trips overlap.
const catWindow = 4

// Cat writes count bytes (all when count < 0) of the regular file rel
// (relative to the location, "" for the location itself) from offset to
// w, reading it where it is a piece at a time, several pieces ahead.
func (t *Tree) Cat(ctx context.Context, rel string, offset, count int64, w io.Writer) error {
	if !t.IsDir() && rel == t.entry.Path {
		rel = ""
	}
	p := t.path(rel)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the reads still in flight once the file ended
	type done struct {
		res wire.ReadResult
		err error
	}
	type call struct {
		off, n int64
		done   chan done
	}
	var queue []call
	next, left := offset, count
	issue := func() {
		n := int64(wire.MaxRead)
		if left > 0 {
			n = min(n, left)
			left -= n
		}
		c := call{off: next, n: n, done: make(chan done, 1)}
		next += n
		go func() {
			res, err := t.read(ctx, p, wire.ReadArgs{Offset: c.off, Count: c.n})
			c.done <- done{res, err}
		}()
		queue = append(queue, c)
	}
	for len(queue) < catWindow && left != 0 {
		issue()
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		d := <-c.done
		if d.err != nil {
			return d.err
		}
		if _, err := w.Write(d.res.Data); err != nil {
			return &WriteError{Name: t.name(rel), Err: err}
		}
		if d.res.EOF {
			return nil
		}
		if int64(len(d.res.Data)) != c.n {
			return fmt.Errorf("read %s: %d bytes at offset %d where %d were asked, before its end: the file changed while it was read", t.name(rel), len(d.res.Data), c.off, c.n)
		}
		if left != 0 {
			issue()
		}
	}
	return nil
}

// WriteError is a failure of Cat to write what it read: the output's,
// not the file's.
type WriteError struct {
	Name string // the file being written out
	Err  error
}

func (e *WriteError) Error() string { return fmt.Sprintf("writing out %s: %v", e.Name, e.Err) }

func (e *WriteError) Unwrap() error { return e.Err }

// name is rel as the user would write it.
func (t *Tree) name(rel string) string {
	if rel == "" {
		return t.String()
	}
	return strings.TrimSuffix(t.String(), "/") + "/" + rel
}

func (t *Tree) read(ctx context.Context, p string, a wire.ReadArgs) (wire.ReadResult, error) {
	if t.s == nil {
		return t.local.Read(p, a)
	}
	resp, err := t.s.Call(ctx, &wire.Req{Op: wire.OpRead, Path: p, Read: &a})
	if err != nil {
		return wire.ReadResult{}, err
	}
	if resp.Read == nil || int64(len(resp.Read.Data)) > a.Count {
		return wire.ReadResult{}, exitcode.Peerf("%s answered a read of %s without its data", t.s.Peer(), p)
	}
	return *resp.Read, nil
}
