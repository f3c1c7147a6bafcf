package fsroot

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// Special is the kind of a file of TypeOther.
type Special uint8

// Kinds of special files.
const (
	SpecialNone   Special = iota // not a special file
	SpecialFIFO                  // named pipe
	SpecialSocket                // Unix-domain socket
	SpecialChar                  // character device
	SpecialBlock                 // block device
)

// String names the kind as messages show it.
func (s Special) String() string {
	switch s {
	case SpecialFIFO:
		return "fifo"
	case SpecialSocket:
		return "socket"
	case SpecialChar:
		return "character device"
	case SpecialBlock:
		return "block device"
	}
	return "special file"
}

// IsDevice reports whether s is a block or character device (whose
// creation needs privilege).
func (s Special) IsDevice() bool { return s == SpecialChar || s == SpecialBlock }

func specialOf(mode uint32) Special {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return SpecialFIFO
	case unix.S_IFSOCK:
		return SpecialSocket
	case unix.S_IFCHR:
		return SpecialChar
	case unix.S_IFBLK:
		return SpecialBlock
	}
	return SpecialNone
}

func (s Special) ifmt() uint32 {
	switch s {
	case SpecialFIFO:
		return unix.S_IFIFO
	case SpecialSocket:
		return unix.S_IFSOCK
	case SpecialChar:
		return unix.S_IFCHR
	case SpecialBlock:
		return unix.S_IFBLK
	}
	return 0
}

// Mknod creates rel as a special file of kind s with permission bits
// perm (less the umask) and, for a device, device number rdev.
func (r *Root) Mknod(rel string, s Special, perm uint32, rdev uint64) error {
	if s.ifmt() == 0 {
		return &fs.PathError{Op: "mknod", Path: rel, Err: unix.EINVAL}
	}
	return r.at("mknod", rel, unix.EEXIST, func(dirfd int, name string) error {
		return ignoringEINTR(func() error { return unix.Mknodat(dirfd, name, s.ifmt()|perm&0o7777, int(rdev)) })
	})
}

// Lchown sets the owner and group of rel without following a final
// symlink (-1 leaves one unchanged).
func (r *Root) Lchown(rel string, uid, gid int) error {
	return r.at("chown", rel, nil, func(dirfd int, name string) error {
		return ignoringEINTR(func() error { return unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW) })
	})
}

// Chown sets the owner and group of the pinned inode (-1 leaves one
// unchanged); on a symlink it changes the link itself.
func (p *Pinned) Chown(uid, gid int) error {
	err := ignoringEINTR(func() error { return unix.Fchownat(int(p.f.Fd()), "", uid, gid, unix.AT_EMPTY_PATH) })
	if err != nil {
		return &fs.PathError{Op: "chown", Path: p.rel, Err: err}
	}
	return nil
}
