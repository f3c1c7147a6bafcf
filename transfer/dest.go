package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
)

// localDest writes into a tree on this machine, in process: the same
// receiver code as a server's, called directly instead of over the wire.
type localDest struct {
	h        *handler
	top      string // the destination as the user named it, for messages
	n        int
	checkers int // for list (0: the default)
}

func (d *localDest) setCheckers(n int) { d.checkers = n }

// name is how messages call path beneath the destination.
func (d *localDest) name(path string) string {
	if path == "" && d.top != "" {
		return d.top
	}
	return filepath.Join(d.top, path)
}

func (d *localDest) list(ctx context.Context, path string, checksum bool) plan.Lister {
	info, err := d.h.lstat(path)
	if err != nil || info.Type != 2 /* fsroot.TypeDir */ {
		return &plan.SliceLister{}
	}
	return plan.NewWalkerN(d.h.tree(), path, d.checkers)
}

func (d *localDest) stat(ctx context.Context, path string) (*plan.Entry, error) {
	info, err := d.h.lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stat destination %s: %w", path, err)
	}
	e := plan.EntryFromInfo(path, info)
	if e.Type == plan.TypeSymlink {
		e.Target, _ = d.h.tree().Readlink(path)
	}
	return &e, nil
}

func (d *localDest) hash(ctx context.Context, path string) (hashtree.Digest, error) {
	return d.h.hash(ctx, path)
}

func (d *localDest) mkroot(ctx context.Context, path string, lock bool) error {
	return d.h.mkroot(path, d.name(path), lock)
}

func (d *localDest) meta(ctx context.Context, ops []wire.MetaOp) ([]string, error) {
	return d.h.receiverIfBound().meta(ops), nil
}

func (d *localDest) open(ctx context.Context, specs []wire.FileSpec) ([]string, [][][2]int64, [][]wire.AdoptChunk, error) {
	errs, haves, done := d.h.receiverIfBound().open(specs)
	return errs, haves, done, nil
}

func (d *localDest) adopt(ctx context.Context, fid uint64, chunks []wire.AdoptChunk) ([]int64, error) {
	return d.h.receiverIfBound().adopt(fid, chunks)
}

func (d *localDest) commit(ctx context.Context, cs []wire.CommitSpec) ([]string, error) {
	return d.h.receiverIfBound().commit(cs), nil
}

func (d *localDest) finish(ctx context.Context) (int64, error) {
	r := d.h.receiverIfBound()
	return r.takeMade(), r.finish()
}

func (d *localDest) verifies() bool { return false }

func (d *localDest) lanes() []dataLane {
	out := make([]dataLane, d.n)
	for i := range out {
		out[i] = localLane{d.h.receiverIfBound()}
	}
	return out
}

// localLane hands chunks straight to the receiver.
type localLane struct{ r *receiver }

func (localLane) Acquire(ctx context.Context) error { return ctx.Err() }
func (localLane) Release()                          {}

func (l localLane) SendChunk(fid, idx uint64, off int64, verify bool, dg hashtree.Digest, data []byte, f *os.File, n int, cb func(byte, string)) error {
	cb(l.r.writeChunk(fid, idx, off, data, dg, verify))
	return nil
}

func (l localLane) SendBatch(count int, payload []byte, cb func([]string, error)) error {
	cb(l.r.writeBatch(payload, count, false)) // the very buffer that was hashed
	return nil
}

// remoteDest writes to a peer over a session.
type remoteDest struct {
	s        *session.Session
	checkers int // asked of the peer's walk (0: its default)
}

func (d *remoteDest) setCheckers(n int) { d.checkers = n }

func (d *remoteDest) list(ctx context.Context, path string, checksum bool) plan.Lister {
	return d.s.List(ctx, path, checksum, d.checkers)
}

func (d *remoteDest) stat(ctx context.Context, path string) (*plan.Entry, error) {
	r, err := d.s.Call(ctx, &wire.Req{Op: wire.OpStat, Path: path})
	if err != nil {
		var re *session.RemoteError
		if errors.As(err, &re) && re.Kind == wire.KindNotFound {
			return nil, nil
		}
		return nil, err
	}
	return r.Entry, nil
}

func (d *remoteDest) hash(ctx context.Context, path string) (hashtree.Digest, error) {
	r, err := d.s.Call(ctx, &wire.Req{Op: wire.OpHash, Path: path})
	if err != nil {
		return hashtree.Digest{}, err
	}
	return hashtree.ParseDigest(r.Digest)
}

func (d *remoteDest) mkroot(ctx context.Context, path string, lock bool) error {
	_, err := d.s.Call(ctx, &wire.Req{Op: wire.OpMkroot, Path: path, Lock: lock})
	return err
}

func (d *remoteDest) batch(ctx context.Context, r *wire.Req, n int) ([]string, error) {
	resp, err := d.s.Call(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(resp.Errs) != n {
		return nil, fmt.Errorf("peer %s answered %d verdicts for %d items", d.s.Peer(), len(resp.Errs), n)
	}
	return resp.Errs, nil
}

func (d *remoteDest) meta(ctx context.Context, ops []wire.MetaOp) ([]string, error) {
	return d.batch(ctx, &wire.Req{Op: wire.OpMeta, Meta: ops}, len(ops))
}

func (d *remoteDest) open(ctx context.Context, specs []wire.FileSpec) ([]string, [][][2]int64, [][]wire.AdoptChunk, error) {
	resp, err := d.s.Call(ctx, &wire.Req{Op: wire.OpOpen, Files: specs})
	if err != nil {
		return nil, nil, nil, err
	}
	if len(resp.Errs) != len(specs) || (resp.Haves != nil && len(resp.Haves) != len(specs)) ||
		(resp.Done != nil && len(resp.Done) != len(specs)) {
		return nil, nil, nil, fmt.Errorf("peer %s answered %d verdicts for %d files", d.s.Peer(), len(resp.Errs), len(specs))
	}
	if resp.Haves == nil {
		resp.Haves = make([][][2]int64, len(specs))
	}
	return resp.Errs, resp.Haves, resp.Done, nil
}

func (d *remoteDest) adopt(ctx context.Context, fid uint64, chunks []wire.AdoptChunk) ([]int64, error) {
	resp, err := d.s.Call(ctx, &wire.Req{Op: wire.OpAdopt, FID: fid, Adopt: chunks})
	if err != nil {
		return nil, err
	}
	return resp.Missing, nil
}

func (d *remoteDest) commit(ctx context.Context, cs []wire.CommitSpec) ([]string, error) {
	return d.batch(ctx, &wire.Req{Op: wire.OpCommit, Commits: cs}, len(cs))
}

func (d *remoteDest) finish(ctx context.Context) (int64, error) {
	resp, err := d.s.Call(ctx, &wire.Req{Op: wire.OpFinish})
	if err != nil {
		return 0, err
	}
	return max(resp.Made, 0), nil
}

func (d *remoteDest) verifies() bool { return d.s.Verifies() }

// gone reports whether the session has ended, or is ending because a data
// stream broke (it waits a moment for the peer's reason first).
func (d *remoteDest) gone() bool { return d.s.Err() != nil || d.s.Breaking() }

func (d *remoteDest) lanes() []dataLane {
	out := make([]dataLane, len(d.s.Lanes()))
	for i, l := range d.s.Lanes() {
		out[i] = l
	}
	return out
}
