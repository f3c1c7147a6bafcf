package send

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Local writes into a tree on this machine, in process: the same receiver
// code as a server's, called directly instead of over the wire.
type Local struct {
	h        *receive.Handler
	top      string // the destination as the user named it, for messages
	lanes    int
	checkers int // of the destination's walk (0: the default)
}

// NewLocal writes into the tree h serves; top is how the user named it
// (for messages), lanes the number of senders, checkers the walk's
// parallelism (0: its default).
func NewLocal(h *receive.Handler, top string, lanes, checkers int) *Local {
	return &Local{h: h, top: top, lanes: max(lanes, 1), checkers: checkers}
}

// name is how messages call path beneath the destination.
func (d *Local) name(path string) string {
	if path == "" && d.top != "" {
		return d.top
	}
	return filepath.Join(d.top, path)
}

// List implements Destination.
func (d *Local) List(ctx context.Context, path string, checksum bool) plan.Lister {
	info, err := d.h.Lstat(path)
	if err != nil || info.Type != fsroot.TypeDir {
		return &plan.SliceLister{}
	}
	return plan.NewWalkerN(d.h.Tree(), path, d.checkers)
}

// ListDir implements Destination.
func (d *Local) ListDir(ctx context.Context, path string) plan.Lister {
	info, err := d.h.Lstat(path)
	if err != nil || info.Type != fsroot.TypeDir {
		return &plan.SliceLister{}
	}
	return plan.NewShallowWalker(d.h.Tree(), path, d.checkers)
}

// Stat implements Destination.
func (d *Local) Stat(ctx context.Context, path string) (*plan.Entry, error) {
	info, err := d.h.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stat destination %s: %w", path, err)
	}
	e := plan.EntryFromInfo(path, info)
	if e.Type == plan.TypeSymlink {
		e.Target, _ = d.h.Tree().Readlink(path)
	}
	return &e, nil
}

// Hash implements Destination.
func (d *Local) Hash(ctx context.Context, path string) (hashtree.Digest, error) {
	return d.h.Hash(ctx, path)
}

// Mkroot implements Destination.
func (d *Local) Mkroot(ctx context.Context, path string, lock bool) error {
	return d.h.Mkroot(path, d.name(path), lock)
}

// Meta implements Destination.
func (d *Local) Meta(ctx context.Context, ops []wire.MetaOp) ([]string, error) {
	return d.h.Receiver().Meta(ops), nil
}

// Xattrs implements Destination.
func (d *Local) Xattrs(ctx context.Context, scope wire.XattrScope, sets []wire.XattrSet) ([]wire.XattrResult, error) {
	return d.h.Receiver().Xattrs(scope, sets), nil
}

// XattrSupport implements Destination: a tree on this machine says what
// it could not keep entry by entry.
func (d *Local) XattrSupport() *wire.XattrSupport { return nil }

// Open implements Destination.
func (d *Local) Open(ctx context.Context, spec wire.FileSpec) (FileWriter, error) {
	r := d.h.Receiver()
	errs, haves, done := r.Open([]wire.FileSpec{spec})
	if err := fileErr(errs[0]); err != nil {
		return nil, err
	}
	w := &localWriter{r: r, file: file{fid: spec.FID, have: haves[0]}}
	if done != nil {
		w.done = done[0]
	}
	return w, nil
}

// Finish implements Destination.
func (d *Local) Finish(ctx context.Context) (int64, *wire.OwnerReport, error) {
	r := d.h.Receiver()
	made := r.TakeMade()
	err := r.Finish()
	return made, r.TakeOwners(), err
}

// Lanes implements Destination.
func (d *Local) Lanes() []Lane {
	out := make([]Lane, d.lanes)
	for i := range out {
		out[i] = localLane{d.h.Receiver()}
	}
	return out
}

// Verifies implements Destination: the receiver in process checks
// nothing the sender did not just compute itself.
func (d *Local) Verifies() bool { return false }

// InProcess implements Destination.
func (d *Local) InProcess() bool { return true }

// Gone implements Destination: a tree on this machine does not go away.
func (d *Local) Gone() bool { return false }

// localWriter is a file of a Local destination.
type localWriter struct {
	file
	r *receive.Receiver
}

func (w *localWriter) Adopt(ctx context.Context, chunks []wire.AdoptChunk, leafSize int64) ([]int64, []wire.ChunkLeaves, error) {
	return w.r.Adopt(w.fid, chunks, leafSize)
}

func (w *localWriter) commit(do wire.CommitAction, digest string) error {
	return fileErr(w.r.Commit([]wire.CommitSpec{{FID: w.fid, Do: do, Digest: digest}})[0])
}

func (w *localWriter) Commit(ctx context.Context, digest string) error {
	return w.commit(wire.CommitFinish, digest)
}
func (w *localWriter) Park(ctx context.Context) error  { return w.commit(wire.CommitPark, "") }
func (w *localWriter) Abort(ctx context.Context) error { return w.commit(wire.CommitAbandon, "") }

// localLane hands chunks straight to the receiver.
type localLane struct{ r *receive.Receiver }

func (localLane) Acquire(ctx context.Context) error { return ctx.Err() }
func (localLane) Release()                          {}

func (l localLane) SendChunk(fid, idx uint64, off int64, verify bool, dg hashtree.Digest, data []byte, f *os.File, n int, cb func(byte, string)) error {
	cb(l.r.WriteChunk(fid, idx, off, data, dg, verify))
	return nil
}

func (l localLane) SendPatch(p wire.Patch, data []byte, cb func(byte, string)) error {
	cb(l.r.WritePatch(p, data))
	return nil
}

func (l localLane) SendBatch(count int, payload []byte, cb func([]string, error)) error {
	cb(l.r.WriteBatch(payload, count, wire.BatchUnchecked)) // the very buffer that was hashed
	return nil
}
