package fsroot

import (
	"errors"
	"io/fs"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Xattr is one extended attribute: its full name (with its namespace,
// "user.", "trusted.", "security.", "system.") and its value.
type Xattr struct {
	Name  string
	Value []byte
}

// Bounds of extended attributes, Linux's own (XATTR_NAME_MAX,
// XATTR_SIZE_MAX, XATTR_LIST_MAX).
const (
	MaxXattrName  = 255
	MaxXattrValue = 64 << 10
	MaxXattrList  = 64 << 10
)

// XattrsUnsupported reports whether err says the file system (or the file's
// type) keeps no extended attributes.
func XattrsUnsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// Xattrs reads the extended attributes of the pinned inode whose names
// keep accepts, sorted by name. A symlink has none here (Linux allows no
// user attributes on links, and xfer keeps none of the others on them).
func (p *Pinned) Xattrs(keep func(name string) bool) ([]Xattr, error) {
	info, err := p.Info()
	if err != nil {
		return nil, err
	}
	if info.Type != TypeFile && info.Type != TypeDir {
		return nil, nil
	}
	path := p.procPath()
	buf := make([]byte, MaxXattrList)
	n, err := unix.Listxattr(path, buf)
	if err != nil {
		if XattrsUnsupported(err) {
			return nil, nil
		}
		return nil, &fs.PathError{Op: "list extended attributes of", Path: p.rel, Err: err}
	}
	var out []Xattr
	val := make([]byte, MaxXattrValue)
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || !keep(name) {
			continue
		}
		m, err := unix.Getxattr(path, name, val)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read extended attribute " + name + " of", Path: p.rel, Err: err}
		}
		out = append(out, Xattr{Name: name, Value: append([]byte{}, val[:m]...)})
	}
	sortXattrs(out)
	return out, nil
}

func sortXattrs(xs []Xattr) {
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
}

// SetXattr sets one extended attribute of the pinned inode.
func (p *Pinned) SetXattr(name string, value []byte) error {
	if err := unix.Setxattr(p.procPath(), name, value, 0); err != nil {
		return &fs.PathError{Op: "set extended attribute " + name + " of", Path: p.rel, Err: err}
	}
	return nil
}

// RemoveXattr removes one extended attribute of the pinned inode; one
// that is not there is no error.
func (p *Pinned) RemoveXattr(name string) error {
	if err := unix.Removexattr(p.procPath(), name); err != nil && !errors.Is(err, unix.ENODATA) {
		return &fs.PathError{Op: "remove extended attribute " + name + " of", Path: p.rel, Err: err}
	}
	return nil
}

// XattrSupport probes the file system of the directory dir: whether it
// takes user.* attributes and POSIX ACLs (a file system without them
// answers "not supported" for any name; one with them, "no such
// attribute" for an absent one).
func XattrSupport(dir string) (user, acls bool) {
	probe := func(name string) bool {
		_, err := unix.Getxattr(dir, name, nil)
		return !XattrsUnsupported(err)
	}
	return probe("user.xfer-probe"), probe("system.posix_acl_access")
}
