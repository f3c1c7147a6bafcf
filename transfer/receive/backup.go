package receive

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// maxBackupDepth bounds the directories backup descends into, as deep as
// a walk goes.
const maxBackupDepth = 4096

// backupOp carries out a "backup" operation (--backup-dir): the entry at
// op.Path is moved aside to op.Target with op.Suffix appended to its
// name, instead of being lost to a replacement or a deletion. Nothing at
// op.Path is nothing to keep.
func (r *Receiver) backupOp(op wire.MetaOp) string {
	target, err := r.rel(op.Target)
	if err != nil || target == "" {
		return fsroot.Describe("back up", op.Path, fsroot.ErrEscape)
	}
	if target == op.Path || strings.HasPrefix(target, op.Path+"/") {
		return fmt.Sprintf("back up %s: the backup %s would lie inside it", op.Path, op.Target)
	}
	return r.backup(op.Path, target, op.Suffix, op.Keep, 0)
}

// backup moves the entry at p to target+suffix, replacing what an older
// run left there. A directory is taken apart: each entry beneath it goes
// to the same path beneath target (the directories keep their names,
// files and links get the suffix, as rsync's backups do) and the emptied
// directory is removed. With keep, a regular file stays at p and the
// backup is a hard link to it (renamed when the file system refuses the
// link): the file about to replace it is renamed over p, so p is never
// missing.
func (r *Receiver) backup(p, target, suffix string, keep bool, depth int) string {
	info, err := r.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return fsroot.Describe("back up", p, err)
	}
	if info.Type == fsroot.TypeDir {
		if depth >= maxBackupDepth {
			return fsroot.Describe("back up", p, errors.New("directories nested too deep"))
		}
		if t, err := r.root.Lstat(target); err == nil && t.Type != fsroot.TypeDir {
			if err := r.root.RemoveAll(target); err != nil {
				return fsroot.Describe("replace old backup", target, err)
			}
		}
		if err := r.root.MkdirAll(target, 0o755); err != nil {
			return fsroot.Describe("mkdir", target, err)
		}
		entries, err := r.root.ReadDir(p)
		if err != nil {
			return fsroot.Describe("back up", p, err)
		}
		for _, en := range entries {
			if msg := r.backup(plan.Join(p, en.Name), plan.Join(target, en.Name), suffix, false, depth+1); msg != "" {
				return msg
			}
		}
		if err := r.root.Remove(p); err != nil {
			return fsroot.Describe("delete", p, err)
		}
		return ""
	}
	to := target + suffix
	if dir := plan.Dir(to); dir != "" {
		if err := r.root.MkdirAll(dir, 0o755); err != nil {
			return fsroot.Describe("mkdir", dir, err)
		}
	}
	if _, err := r.root.Lstat(to); err == nil {
		if err := r.root.RemoveAll(to); err != nil {
			return fsroot.Describe("replace old backup", to, err)
		}
	}
	if keep && info.Type == fsroot.TypeFile && r.root.Link(p, to) == nil {
		return ""
	}
	if err := r.root.Rename(p, to); err != nil {
		return fsroot.Describe("back up "+p+" to", to, err)
	}
	return ""
}
