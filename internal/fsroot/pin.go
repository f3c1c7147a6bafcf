package fsroot

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pinned is a handle on one inode beneath a root, taken without following
// a final symlink and without opening the file for reading or writing
// (O_PATH): its attributes are read and changed through the handle, so a
// name swapped meanwhile changes nothing, and the caller can look at the
// inode (its type, its link count) before it changes anything.
type Pinned struct {
	f   *os.File
	rel string
}

// Pin takes a handle on rel, never following a final symlink (a symlink
// is pinned itself).
func (r *Root) Pin(rel string) (*Pinned, error) {
	f, p, err := r.open("pin", rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	return &Pinned{f: f, rel: p}, nil
}

// Info returns the fstat(2) information of the pinned inode.
func (p *Pinned) Info() (Info, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(int(p.f.Fd()), &st) }); err != nil {
		return Info{}, &fs.PathError{Op: "fstat", Path: p.rel, Err: err}
	}
	return infoFromStat(filepath.Base(p.f.Name()), &st), nil
}

// procPath names the pinned inode through /proc, for the calls that take
// no empty path on older kernels.
func (p *Pinned) procPath() string { return "/proc/self/fd/" + strconv.Itoa(int(p.f.Fd())) }

// Chmod sets the permission bits (perm & 07777) of the pinned inode. On a
// symlink it fails (Linux has no link modes): check the type first.
func (p *Pinned) Chmod(perm uint32) error {
	fd := int(p.f.Fd())
	err := ignoringEINTR(func() error { return unix.Fchmodat(fd, "", perm&0o7777, unix.AT_EMPTY_PATH) })
	if err == unix.EOPNOTSUPP || err == unix.EINVAL || err == unix.ENOSYS {
		// No fchmodat2 (before Linux 6.6): through the descriptor's
		// /proc link, which leads to this very inode.
		err = ignoringEINTR(func() error { return unix.Fchmodat(unix.AT_FDCWD, p.procPath(), perm&0o7777, 0) })
	}
	if err != nil {
		return &fs.PathError{Op: "chmod", Path: p.rel, Err: err}
	}
	return nil
}

// Chtimes sets the access and modification times of the pinned inode
// (nanoseconds since the Unix epoch, or TimeOmit).
func (p *Pinned) Chtimes(atimeNs, mtimeNs int64) error {
	ts := []unix.Timespec{timespec(atimeNs), timespec(mtimeNs)}
	fd := int(p.f.Fd())
	err := ignoringEINTR(func() error { return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH) })
	if err == unix.EINVAL {
		err = ignoringEINTR(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p.procPath(), ts, 0) })
	}
	if err != nil {
		return &fs.PathError{Op: "chtimes", Path: p.rel, Err: err}
	}
	return nil
}

// Close releases the handle.
func (p *Pinned) Close() error { return p.f.Close() }
