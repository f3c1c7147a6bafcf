package receive

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// meta applies metadata operations in order.
func (r *Receiver) Meta(ops []wire.MetaOp) []string {
	errs := make([]string, len(ops))
	for i, op := range ops {
		if r.readOnly {
			errs[i] = fsroot.Describe(op.Op, op.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(op.Path)
		if err == nil && rel == "" && (op.Op == "delete" || op.Op == "remove") {
			errs[i] = fmt.Sprintf("%s %s: refused: it is the root this side serves", op.Op, cmp.Or(op.Path, "/"))
			continue
		}
		if err != nil || (rel == "" && op.Op != "mkdir" && op.Op != "setattrs") {
			errs[i] = fsroot.Describe(op.Op, op.Path, fsroot.ErrEscape)
			continue
		}
		shown := op.Path
		op.Path = rel
		if msg := r.metaOne(op); msg != "" {
			errs[i] = strings.Replace(msg, " "+rel, " "+shown, 1)
		}
	}
	return errs
}

func (r *Receiver) metaOne(op wire.MetaOp) string {
	switch op.Op {
	case "mkdir":
		info, err := r.root.Lstat(op.Path)
		switch {
		case err == nil && info.Type == fsroot.TypeDir:
			r.makeWritable(op.Path, info)
		case err == nil:
			if err := r.root.Remove(op.Path); err != nil {
				return fsroot.Describe("replace", op.Path, err)
			}
			fallthrough
		default:
			if err := r.root.MkdirAll(op.Path, 0o755); err != nil {
				return fsroot.Describe("mkdir", op.Path, err)
			}
		}
		r.deferDir(op)
	case "symlink":
		if msg := r.mkParent(op.Path); msg != "" {
			return msg
		}
		part, err := freshName(op.Path, func(name string) error { return r.root.Symlink(op.Target, name) })
		if err != nil {
			return fsroot.Describe("symlink", op.Path, err)
		}
		r.chownPath(part, op.Owner)
		if msg := r.settle(part, op); msg != "" {
			return msg
		}
	case "special":
		return r.special(op)
	case "link":
		target, err := r.rel(op.Target)
		if err != nil || target == "" {
			return fsroot.Describe("link", op.Path, fsroot.ErrEscape)
		}
		part, err := freshName(op.Path, func(name string) error { return r.root.Link(target, name) })
		if err != nil {
			return fsroot.Describe("link", op.Path, err)
		}
		if msg := r.place(part, op.Path, op.ReplaceDir); msg != "" {
			r.root.Remove(part)
			return msg
		}
	case "delete":
		if err := r.root.RemoveAll(op.Path); err != nil {
			return fsroot.Describe("delete", op.Path, err)
		}
	case "remove":
		// One entry, never what lies beneath: a directory goes only if
		// it is empty (delete --rmdirs, move --delete-empty-src-dirs).
		if u := op.Unchanged; u != nil {
			info, err := r.root.Lstat(op.Path)
			if err != nil {
				return fsroot.Describe("remove", op.Path, err)
			}
			if info.Type == fsroot.TypeFile && (info.Size != u.Size || info.MtimeNs != u.MtimeNs) {
				return fmt.Sprintf("remove %s: kept: it changed after it was copied (size or mtime); the next run moves the new version", op.Path)
			}
		}
		if err := r.root.Remove(op.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fsroot.Describe("remove", op.Path, err)
		}
	case "setattrs":
		return r.setAttrs(op)
	case "backup":
		return r.backupOp(op)
	default:
		return fmt.Sprintf("unknown operation %q", op.Op)
	}
	return ""
}

// setAttrs sets the mode and mtime of an existing entry: through a
// handle on the inode found at the name (never following a symlink
// there), and, for a peer, never on a regular file with other hard links,
// which may lead outside the tree.
func (r *Receiver) setAttrs(op wire.MetaOp) string {
	pin, err := r.root.Pin(op.Path)
	if err != nil {
		return fsroot.Describe("stat", op.Path, err)
	}
	defer pin.Close()
	info, err := pin.Info()
	if err != nil {
		return fsroot.Describe("stat", op.Path, err)
	}
	switch info.Type {
	case fsroot.TypeDir:
		r.deferDir(op)
		return ""
	case fsroot.TypeSymlink:
		// Linux has no link modes; the times go on the link itself.
		r.chownPinned(pin, op.Owner)
		if err := r.root.Lchtimes(op.Path, op.MtimeNs, op.MtimeNs); err != nil {
			return fsroot.Describe("set mtime of", op.Path, err)
		}
		return ""
	}
	if r.peer != nil && info.Type == fsroot.TypeFile && info.Nlink > 1 {
		return fmt.Sprintf("set attributes of %s: refused: the file has %d hard links, and one may lead outside the export", op.Path, info.Nlink)
	}
	r.chownPinned(pin, op.Owner)
	if err := pin.Chmod(r.peer.fileMode(op.Mode)); err != nil {
		return fsroot.Describe("chmod", op.Path, err)
	}
	if err := pin.Chtimes(op.MtimeNs, op.MtimeNs); err != nil {
		return fsroot.Describe("set mtime of", op.Path, err)
	}
	return ""
}

func (r *Receiver) deferDir(op wire.MetaOp) {
	r.mu.Lock()
	r.dirs.add(dirAttr{path: op.Path, mode: r.peer.dirMode(op.Mode), mtimeNs: op.MtimeNs, owner: op.Owner})
	r.mu.Unlock()
}

// finish applies directory attributes, deepest first (creating entries in
// a directory changes its mtime, and a read-only directory must stay
// writable until its contents are in), then makes the renames durable.
func (r *Receiver) Finish() error {
	r.mu.Lock()
	dirs := r.dirs
	r.dirs = dirAttrs{spillAt: dirs.spillAt}
	r.mu.Unlock()
	r.restoreWritable() // then the directories' own attributes, where they come with the run
	var first error
	if err := dirs.drain(func(d dirAttr) {
		r.chownPath(d.path, d.owner) // before the mode: a chown may drop set-id bits
		if err := r.root.Chmod(d.path, d.mode); err != nil && first == nil {
			first = errors.New(fsroot.Describe("chmod", d.path, err))
		}
		if err := r.root.Lchtimes(d.path, d.mtimeNs, d.mtimeNs); err != nil && first == nil {
			first = errors.New(fsroot.Describe("set mtime of", d.path, err))
		}
	}); err != nil && first == nil {
		first = err
	}
	if !r.noFsync {
		if err := r.root.Syncfs(); err != nil && first == nil {
			first = fmt.Errorf("flush: %w", err)
		}
	}
	return first
}

// abort removes the partial files of transfers that did not finish.
func (r *Receiver) abort() {
	defer r.restoreWritable()
	r.mu.Lock()
	files := r.files
	r.files = map[uint64]*rfile{}
	r.dirs.reset()
	r.mu.Unlock()
	for _, rf := range files {
		rf.mu.Lock()
		if rf.failed == "" {
			rf.failed = "transfer interrupted"
			r.keep(rf)
		}
		rf.mu.Unlock()
	}
}

// mkParent makes the directories on the way to path.
func (r *Receiver) mkParent(path string) string {
	if dir := plan.Dir(path); dir != "" {
		if err := r.root.MkdirAll(dir, 0o755); err != nil {
			return fsroot.Describe("mkdir", dir, err)
		}
	}
	return ""
}

// settle gives the fresh entry part op's mtime and renames it into
// op.Path; on failure part is removed.
func (r *Receiver) settle(part string, op wire.MetaOp) string {
	if err := r.root.Lchtimes(part, op.MtimeNs, op.MtimeNs); err != nil {
		r.root.Remove(part)
		return fsroot.Describe("set mtime of", op.Path, err)
	}
	if msg := r.place(part, op.Path, op.ReplaceDir); msg != "" {
		r.root.Remove(part)
		return msg
	}
	return ""
}
