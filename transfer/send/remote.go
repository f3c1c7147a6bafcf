package send

import (
	"context"
	"errors"
	"fmt"

	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Remote writes to a peer over a session.
type Remote struct {
	s        *session.Session
	checkers int // asked of the peer's walk (0: its default)
}

// NewRemote writes to the peer of s; checkers is asked of its walk (0:
// its default).
func NewRemote(s *session.Session, checkers int) *Remote { return &Remote{s: s, checkers: checkers} }

// List implements Destination.
func (d *Remote) List(ctx context.Context, path string, checksum bool) plan.Lister {
	return d.s.List(ctx, path, checksum, d.checkers)
}

// ListDir implements Destination.
func (d *Remote) ListDir(ctx context.Context, path string) plan.Lister {
	return d.s.ListDir(ctx, path, d.checkers)
}

// Stat implements Destination.
func (d *Remote) Stat(ctx context.Context, path string) (*plan.Entry, error) {
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

// Hash implements Destination.
func (d *Remote) Hash(ctx context.Context, path string) (hashtree.Digest, error) {
	r, err := d.s.Call(ctx, &wire.Req{Op: wire.OpHash, Path: path})
	if err != nil {
		return hashtree.Digest{}, err
	}
	return hashtree.ParseDigest(r.Digest)
}

// Mkroot implements Destination.
func (d *Remote) Mkroot(ctx context.Context, path string, lock bool) error {
	_, err := d.s.Call(ctx, &wire.Req{Op: wire.OpMkroot, Path: path, Lock: lock})
	return err
}

// verdicts calls r, which must answer n verdicts.
func (d *Remote) verdicts(ctx context.Context, r *wire.Req, n int) ([]string, error) {
	resp, err := d.s.Call(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(resp.Errs) != n {
		return nil, fmt.Errorf("peer %s answered %d verdicts for %d items", d.s.Peer(), len(resp.Errs), n)
	}
	return resp.Errs, nil
}

// Meta implements Destination.
func (d *Remote) Meta(ctx context.Context, ops []wire.MetaOp) ([]string, error) {
	return d.verdicts(ctx, &wire.Req{Op: wire.OpMeta, Meta: ops}, len(ops))
}

// Xattrs implements Destination.
func (d *Remote) Xattrs(ctx context.Context, scope wire.XattrScope, sets []wire.XattrSet) ([]wire.XattrResult, error) {
	resp, err := d.s.Call(ctx, &wire.Req{Op: wire.OpXattrs, Xattrs: sets, XattrScope: &scope})
	if err != nil {
		return nil, err
	}
	if len(resp.XattrResults) != len(sets) {
		return nil, fmt.Errorf("peer %s answered %d results for %d attribute sets", d.s.Peer(), len(resp.XattrResults), len(sets))
	}
	return resp.XattrResults, nil
}

// XattrSupport implements Destination.
func (d *Remote) XattrSupport() *wire.XattrSupport { return d.s.PeerXattrs() }

// Open implements Destination.
func (d *Remote) Open(ctx context.Context, spec wire.FileSpec) (FileWriter, error) {
	resp, err := d.s.Call(ctx, &wire.Req{Op: wire.OpOpen, Files: []wire.FileSpec{spec}})
	if err != nil {
		return nil, err
	}
	if len(resp.Errs) != 1 || (resp.Haves != nil && len(resp.Haves) != 1) || (resp.Done != nil && len(resp.Done) != 1) {
		return nil, fmt.Errorf("peer %s answered %d verdicts for 1 file", d.s.Peer(), len(resp.Errs))
	}
	if err := fileErr(resp.Errs[0]); err != nil {
		return nil, err
	}
	w := &remoteWriter{d: d, file: file{fid: spec.FID}}
	if resp.Haves != nil {
		w.have = resp.Haves[0]
	}
	if resp.Done != nil {
		w.done = resp.Done[0]
	}
	return w, nil
}

// Finish implements Destination.
func (d *Remote) Finish(ctx context.Context) (int64, *wire.OwnerReport, error) {
	resp, err := d.s.Call(ctx, &wire.Req{Op: wire.OpFinish})
	if err != nil {
		return 0, nil, err
	}
	return max(resp.Made, 0), resp.Owners, nil
}

// Lanes implements Destination: the session's data streams.
func (d *Remote) Lanes() []Lane {
	out := make([]Lane, len(d.s.Lanes()))
	for i, l := range d.s.Lanes() {
		out[i] = l
	}
	return out
}

// Verifies implements Destination.
func (d *Remote) Verifies() bool { return d.s.Verifies() }

// InProcess implements Destination.
func (d *Remote) InProcess() bool { return false }

// Gone implements Destination: the session has ended, or is ending
// because a data stream broke (it waits a moment for the peer's reason
// first).
func (d *Remote) Gone() bool { return d.s.Err() != nil || d.s.Breaking() }

// remoteWriter is a file of a Remote destination.
type remoteWriter struct {
	file
	d *Remote
}

func (w *remoteWriter) Adopt(ctx context.Context, chunks []wire.AdoptChunk, leafSize int64) ([]int64, []wire.ChunkLeaves, error) {
	resp, err := w.d.s.Call(ctx, &wire.Req{Op: wire.OpAdopt, FID: w.fid, Adopt: chunks, LeafSize: leafSize})
	if err != nil {
		return nil, nil, err
	}
	return resp.Missing, resp.Leaves, nil
}

func (w *remoteWriter) commit(ctx context.Context, do wire.CommitAction, digest string) error {
	errs, err := w.d.verdicts(ctx, &wire.Req{Op: wire.OpCommit, Commits: []wire.CommitSpec{{FID: w.fid, Do: do, Digest: digest}}}, 1)
	if err != nil {
		return err
	}
	return fileErr(errs[0])
}

func (w *remoteWriter) Commit(ctx context.Context, digest string) error {
	return w.commit(ctx, wire.CommitFinish, digest)
}
func (w *remoteWriter) Park(ctx context.Context) error  { return w.commit(ctx, wire.CommitPark, "") }
func (w *remoteWriter) Abort(ctx context.Context) error { return w.commit(ctx, wire.CommitAbandon, "") }
