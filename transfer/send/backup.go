package send

import (
	"context"
	"strings"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Backups (--backup-dir DIR, --suffix SUF): what a run replaces or deletes
// at the destination is moved to DIR (inside the destination directory)
// under its own path, with SUF appended to each name. The engine asks for
// the move (a "backup" operation) before the entry goes: a deletion
// becomes the move itself; a replaced regular file gets a hard link in
// DIR first (it stays in place until the new file is renamed over it); a
// replaced symlink or directory is moved before its replacement is made.
// DIR itself is left out of both listings, so the run never compares,
// replaces or deletes what it holds.

// backups reports whether the run keeps backups.
func (e *engine) backups() bool { return e.opt.BackupDir != "" }

// backupOp is the operation that moves the destination entry at rel
// (relative to the run's destination directory) aside; keep leaves a
// regular file in place (a hard link is the backup).
func (e *engine) backupOp(rel string, keep bool) wire.MetaOp {
	return wire.MetaOp{Op: "backup", Path: plan.Join(e.dstPath, rel),
		Target: plan.Join(e.dstPath, plan.Join(e.opt.BackupDir, rel)), Suffix: e.opt.Suffix, Keep: keep}
}

// replaces reports whether op replaces an entry at the destination: a
// file's content, a symlink, or an entry of another type in the way (a
// directory only where the run may replace one: sync; copy keeps a
// directory that is not empty and removes an empty one).
func (e *engine) replaces(op plan.Op) bool {
	if op.Dst != nil && op.Dst.Type == plan.TypeDir && op.Kind != plan.OpMkdir && !e.opt.ReplaceDirs {
		return false
	}
	switch op.Kind {
	case plan.OpPut, plan.OpSymlink, plan.OpSpecial:
		return op.Dst != nil
	case plan.OpMkdir:
		return op.Replace
	}
	return false
}

// backupFirst moves aside (a hard link, for a regular file replaced by a
// file) the destination entry op is about to replace, after every queued
// operation and before anything of op goes out. ok is false when the
// backup failed (reported as the entry's error): op must not be carried
// out, or the old entry would be lost.
func (e *engine) backupFirst(op plan.Op) (ok bool, err error) {
	if !e.backups() || !e.replaces(op) {
		return true, nil
	}
	if err := e.flushMeta(); err != nil {
		return false, err
	}
	keep := op.Kind == plan.OpPut && op.Dst.Type == plan.TypeFile
	errs, err := e.dst.Meta(e.ctx, []wire.MetaOp{e.backupOp(op.Src.Path, keep)})
	if err != nil {
		return false, err
	}
	if len(errs) > 0 && errs[0] != "" {
		e.fileError(op.Src.Path, errs[0]+" (not replaced)")
		return false, nil
	}
	return true, nil
}

// holdsBackups reports whether op would delete or replace a destination
// directory that holds the backup directory (DIR is old/run1, and the
// source has no old, or a file there).
func (e *engine) holdsBackups(op plan.Op) bool {
	if !e.backups() || !strings.HasPrefix(e.opt.BackupDir, op.Src.Path+"/") {
		return false
	}
	return op.Kind == plan.OpDelete || (op.Dst != nil && op.Dst.Type == plan.TypeDir && op.Kind != plan.OpMkdir)
}

// keepBackups keeps whole, instead of op, a directory that holds the
// backup directory, as a directory that holds an excluded entry is kept:
// a deletion is left out with a notice, a replacement is refused (the
// source's entry is not transferred; exit 1).
func (e *engine) keepBackups(op plan.Op) error {
	if op.Kind == plan.OpDelete {
		e.sink.Emit(progress.Event{Event: progress.KindNotice, Path: op.Src.Path,
			Msg: "not deleted: it holds the backup directory " + e.opt.BackupDir + " (--backup-dir)"})
		return nil
	}
	e.fileError(op.Src.Path, "not replaced: the directory at the destination holds the backup directory "+e.opt.BackupDir+" (--backup-dir)")
	return nil
}

// backupLister drops the backup directory (a path relative to the top of
// the listing) and everything beneath it from a listing.
type backupLister struct {
	l   plan.Lister
	dir string
}

// protectBackups keeps a run's backup directory out of l.
func (e *engine) protectBackups(l plan.Lister) plan.Lister {
	if !e.backups() {
		return l
	}
	return &backupLister{l: l, dir: e.opt.BackupDir}
}

// Next implements plan.Lister.
func (b *backupLister) Next(ctx context.Context) (plan.Entry, error) {
	for {
		en, err := b.l.Next(ctx)
		if err != nil || (en.Path != b.dir && !strings.HasPrefix(en.Path, b.dir+"/")) {
			return en, err
		}
		if en.Path == b.dir && en.Type == plan.TypeDir {
			b.SkipDir()
		}
	}
}

// SkipDir implements plan.DirSkipper when the wrapped listing does.
func (b *backupLister) SkipDir() {
	if s, ok := b.l.(plan.DirSkipper); ok {
		s.SkipDir()
	}
}
