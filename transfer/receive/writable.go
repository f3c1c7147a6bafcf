package receive

import (
	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// makeWritable lets a receiver that is not root update the contents of a
// directory it owns but may not write into (a read-only directory of an
// earlier run), as rsync does: it adds owner write and search permission
// now, and remembers the mode the directory had. The directory's own
// attributes, applied at finish, give it its final mode; a run that ends
// before finish puts the old mode back (restoreWritable). A directory this
// process does not own is left as it is (its updates then fail with
// "permission denied", as they would have).
func (r *Receiver) makeWritable(p string, info fsroot.Info) {
	if info.Type != fsroot.TypeDir || info.Mode&0o300 == 0o300 || unix.Geteuid() == 0 {
		return
	}
	if err := r.root.Chmod(p, info.Mode|0o300); err != nil {
		return
	}
	r.mu.Lock()
	r.unlocked = append(r.unlocked, dirAttr{path: p, mode: info.Mode})
	r.mu.Unlock()
}

// restoreWritable gives the directories makeWritable opened up their old
// modes back, deepest first (a parent may be one of them).
func (r *Receiver) restoreWritable() {
	r.mu.Lock()
	dirs := r.unlocked
	r.unlocked = nil
	r.mu.Unlock()
	for i := len(dirs) - 1; i >= 0; i-- {
		r.root.Chmod(dirs[i].path, dirs[i].mode)
	}
}
