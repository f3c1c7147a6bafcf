package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is a directory beneath a Root, resolved once, on whose entries a
// batch of operations can run without resolving the path again each time.
// Names given to its methods are single components (no '/', not "." or
// ".."), and final components are never followed, so the confinement of
// the Root carries over. (As with the Root itself, someone who can write
// outside the root could move the directory away while it is open.)
type Dir struct {
	f   *os.File
	rel string
}

// OpenDir resolves the directory rel beneath the root.
func (r *Root) OpenDir(rel string) (*Dir, error) {
	f, p, err := r.open("opendir", rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{f: f, rel: p}, nil
}

func (d *Dir) name(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return &fs.PathError{Op: op, Path: d.rel + "/" + name, Err: ErrEscape}
	}
	return nil
}

func (d *Dir) path(name string) string {
	if d.rel == "" {
		return name
	}
	return d.rel + "/" + name
}

// OpenFile opens the entry name with O_NOFOLLOW|O_CLOEXEC added.
func (d *Dir) OpenFile(name string, flag int, perm uint32) (*os.File, error) {
	if err := d.name("open", name); err != nil {
		return nil, err
	}
	var fd int
	var err error
	for i := 0; ; i++ {
		fd, err = unix.Openat(int(d.f.Fd()), name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm&0o7777)
		if (err == unix.EINTR || err == unix.EAGAIN) && i < maxRetries {
			continue
		}
		break
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path(name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.f.Name(), name)), nil
}

// Rename renames entry oldName to newName within the directory, replacing
// a file, symlink or empty directory at newName like rename(2).
func (d *Dir) Rename(oldName, newName string) error {
	if err := d.name("rename", oldName); err != nil {
		return err
	}
	if err := d.name("rename", newName); err != nil {
		return err
	}
	fd := int(d.f.Fd())
	if err := unix.Renameat(fd, oldName, fd, newName); err != nil {
		return &os.LinkError{Op: "rename", Old: d.path(oldName), New: d.path(newName), Err: err}
	}
	return nil
}

// Remove removes the file or symlink name (not following it).
func (d *Dir) Remove(name string) error {
	if err := d.name("remove", name); err != nil {
		return err
	}
	if err := unix.Unlinkat(int(d.f.Fd()), name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.path(name), Err: err}
	}
	return nil
}

// CreateTemp creates an unnamed regular file in the directory (O_TMPFILE),
// open for writing, with permission bits perm (less the umask, or as a
// default ACL of the directory says), and returns its descriptor, which
// the caller closes (a raw descriptor: batches of small files make many).
// Nothing can reach the file by a name until LinkTemp gives it one, and
// it vanishes when closed unnamed. File systems without O_TMPFILE fail
// with an error for which TempUnsupported is true.
func (d *Dir) CreateTemp(perm uint32) (int, error) {
	var fd int
	var err error
	for i := 0; ; i++ {
		fd, err = unix.Openat(int(d.f.Fd()), ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, perm&0o777)
		if (err == unix.EINTR || err == unix.EAGAIN) && i < maxRetries {
			continue
		}
		break
	}
	if err != nil {
		return -1, &fs.PathError{Op: "create", Path: dotIfRoot(d.rel), Err: err}
	}
	return fd, nil
}

// TempUnsupported says whether an error of CreateTemp means the file system
// (or kernel) has no O_TMPFILE, so that named temporary files are needed.
func TempUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL)
}

// LinkTemp gives the unnamed file open as fd, made by CreateTemp on this
// directory, the name name in it. Like link(2) it never replaces anything: an existing
// entry at name fails with EEXIST (replace with LinkTemp to another name
// and Rename). A file may be named more than once, in this directory only.
func (d *Dir) LinkTemp(fd int, name string) error {
	if err := d.name("link", name); err != nil {
		return err
	}
	dirfd := int(d.f.Fd())
	// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH before Linux 6.10 (ENOENT
	// without it); /proc/self/fd/N with AT_SYMLINK_FOLLOW needs /proc.
	err := ignoringEINTR(func() error { return unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH) })
	if err == unix.ENOENT || err == unix.EPERM {
		err = ignoringEINTR(func() error {
			return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
		})
	}
	if err != nil {
		return &fs.PathError{Op: "link", Path: d.path(name), Err: err}
	}
	return nil
}

// ErrChanged reports that a file changed while it was read: its size,
// mtime, ctime or inode differ between before and after the read. The
// ctime catches a rewrite whose mtime was set back.
var ErrChanged = errors.New("file changed while it was read")

// Unchanged reports whether after describes the same, unmodified file as
// before (an error matching ErrChanged if not).
func Unchanged(before, after Info) error {
	if before.Size != after.Size || before.MtimeNs != after.MtimeNs || before.CtimeNs != after.CtimeNs ||
		before.Ino != after.Ino || before.Dev != after.Dev {
		return ErrChanged
	}
	return nil
}

// ReadFile reads the file name (a symlink is refused with ELOOP) into buf,
// up to len(buf) bytes or its end, and returns the bytes read and the
// fstat(2) information of the open file. With listed, the file's lstat
// information from a walk, the file must still be as listed once it has
// been read (Unchanged): one fstat after the read covers all the time
// since the walk, and the information returned is that one. Without, the
// file must not change while it is read: an fstat before the read, whose
// information is returned, and one after. A file that changed fails with
// an error matching ErrChanged. The file is opened non-blocking, so that a
// FIFO put in its place is read as empty instead of waiting for a writer.
// It keeps no descriptor open and makes no *os.File: batches of small
// files make many such reads.
func (d *Dir) ReadFile(name string, buf []byte, listed *Info) (int, Info, error) {
	if err := d.name("open", name); err != nil {
		return 0, Info{}, err
	}
	var fd int
	var err error
	for i := 0; ; i++ {
		fd, err = unix.Openat(int(d.f.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if (err == unix.EINTR || err == unix.EAGAIN) && i < maxRetries {
			continue
		}
		break
	}
	if err != nil {
		return 0, Info{}, &fs.PathError{Op: "open", Path: d.path(name), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	before := listed
	if before == nil {
		if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
			return 0, Info{}, &fs.PathError{Op: "fstat", Path: d.path(name), Err: err}
		}
		info := infoFromStat(name, &st)
		before = &info
	}
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break // a FIFO without data: it is not the file listed
		}
		if err != nil {
			return n, Info{}, &fs.PathError{Op: "read", Path: d.path(name), Err: err}
		}
		if k == 0 {
			break
		}
		n += k
	}
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return n, Info{}, &fs.PathError{Op: "fstat", Path: d.path(name), Err: err}
	}
	after := infoFromStat(name, &st)
	info := *before // what the open file was: a walk's word is no fstat's
	if listed != nil {
		info = after
	}
	if err := Unchanged(*before, after); err != nil {
		return n, info, &fs.PathError{Op: "read", Path: d.path(name), Err: err}
	}
	return n, info, nil
}

// Close releases the directory.
func (d *Dir) Close() error {
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", d.rel, err)
	}
	return nil
}
