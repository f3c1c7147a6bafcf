// Package fsroot confines file-system access to a directory tree.
//
// Every file that xfer reads or writes on behalf of a peer (xfer serve
// --root DIR) or of a local endpoint goes through a [Root]. Paths are
// slash-separated and relative to the root; "" and "." name the root itself.
//
// # Threat model
//
// Path names come from possibly hostile clients, and the tree beneath the
// root may contain symlinks planted by anyone who can write into it,
// including symlinks swapped in for directories while a transfer is running.
// No such name or link may cause a file outside the root to be read,
// written, created, renamed, removed, linked, chmod-ed or re-timed.
//
// Defences:
//   - [Clean] rejects absolute paths, NUL bytes and ".." components before
//     any system call is made.
//   - The parent directory of every target is resolved with openat2(2) using
//     RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS relative to the root's directory
//     descriptor, so the kernel refuses (EXDEV, reported as [ErrEscape]) any
//     resolution that would leave the root, including through symlinks that
//     are swapped in concurrently. Symlinks whose targets stay inside the
//     root are followed in intermediate components.
//   - The final component is then operated on with the *at system calls
//     relative to that pinned parent descriptor, never following a symlink
//     there (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, unlinkat, renameat, ...).
//     Symlink targets given to [Root.Symlink] are stored verbatim; they are
//     data and are never resolved by this package.
//
// Out of scope: an attacker who can write outside the root (for example to
// move a directory from inside the root to outside while it is being used)
// and privilege separation; the process still acts with its own
// credentials. Requires Linux 5.6 or later (openat2).
//
// All methods of a Root are safe for concurrent use. Each call opens and
// closes its own descriptors; the root descriptor is shared.
package fsroot

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrEscape reports that a path would leave the root: it is absolute,
// contains a NUL byte or a ".." component, or resolves (through symlinks)
// to a location outside the root.
var ErrEscape = errors.New("path escapes the root")

// TimeOmit may be passed to [Root.Lchtimes] to leave that timestamp unchanged.
const TimeOmit int64 = -1 << 63

// Type is the kind of a directory entry.
type Type uint8

// Kinds of directory entries.
const (
	TypeFile Type = iota + 1
	TypeDir
	TypeSymlink
	TypeOther // devices, FIFOs, sockets
)

// String returns a short name for the type: "other" for TypeOther and
// for any value that is no kind (a peer may send one).
func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return "other"
}

// Info is the lstat(2) information of one file.
type Info struct {
	Name    string // final path component; "." for the root itself
	Type    Type
	Size    int64
	Mode    uint32 // permission bits incl. setuid/setgid/sticky: st_mode & 07777
	MtimeNs int64  // modification time, nanoseconds since the Unix epoch
	// CtimeNs is the status change time: it moves with every write,
	// truncation or change of attributes, even when the mtime is set
	// back afterwards.
	CtimeNs int64
	Uid     uint32 // owner
	Gid     uint32 // group
	// Special says which kind of TypeOther this is; Rdev is the device
	// number of a block or character device.
	Special Special
	Rdev    uint64
	Ino     uint64
	Dev     uint64
	Nlink   uint64
	Blocks  int64 // allocated 512-byte blocks
}

// Root is an open directory beneath which all paths are confined.
type Root struct {
	dir  *os.File        // owns the root descriptor (O_RDONLY|O_DIRECTORY)
	rc   syscall.RawConn // reference-counted access to dir's descriptor
	path string
}

const (
	resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS
	maxRetries   = 128
)

// escapeError is returned for paths refused because they would leave the
// root. It matches ErrEscape and, if set, the underlying errno.
type escapeError struct {
	reason string
	errno  error
}

func (e *escapeError) Error() string { return ErrEscape.Error() + " (" + e.reason + ")" }

func (e *escapeError) Unwrap() []error {
	if e.errno == nil {
		return []error{ErrEscape}
	}
	return []error{ErrEscape, e.errno}
}

// errRoot is returned by operations that would remove, rename or link the
// root directory itself.
var errRoot = fmt.Errorf("refusing to operate on the root itself: %w", syscall.EINVAL)

// Open opens dir as a Root. dir must exist and be a directory; if dir itself
// is a symlink it is followed.
func Open(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, err)
	}
	var fd int
	err = ignoringEINTR(func() (err error) {
		fd, err = unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open root", Path: abs, Err: err}
	}
	// Probe openat2 so that an unsupported kernel (or a seccomp filter that
	// blocks it) is reported up front rather than on the first request.
	pfd, err := openat2(fd, ".", unix.O_PATH|unix.O_DIRECTORY, 0, resolveFlags)
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("openat2 unavailable (Linux 5.6 or later required): %w", err)
		}
		return nil, &fs.PathError{Op: "open root", Path: abs, Err: err}
	}
	unix.Close(pfd)
	f := os.NewFile(uintptr(fd), abs)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "open root", Path: abs, Err: err}
	}
	return &Root{dir: f, rc: rc, path: abs}, nil
}

// Close releases the root descriptor. Calls already in progress finish
// normally; later calls fail with an error matching fs.ErrClosed.
func (r *Root) Close() error {
	if err := r.dir.Close(); err != nil {
		return fmt.Errorf("close root %s: %w", r.path, err)
	}
	return nil
}

// Path returns the absolute path the root was opened with.
func (r *Root) Path() string { return r.path }

// Fd returns the root directory descriptor (-1 once closed). It stays owned
// by the Root and must not be closed by the caller.
func (r *Root) Fd() int { return int(r.dir.Fd()) }

// Clean validates and normalises a root-relative path. It rejects absolute
// paths, NUL bytes and ".." components (the error wraps ErrEscape), drops
// "." and empty components, and returns "" for the root itself.
func Clean(rel string) (string, error) {
	p, err := clean(rel)
	if err != nil {
		return "", &fs.PathError{Op: "clean", Path: rel, Err: err}
	}
	return p, nil
}

func clean(rel string) (string, error) {
	if strings.HasPrefix(rel, "/") {
		return "", &escapeError{reason: "absolute path"}
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return "", &escapeError{reason: "NUL byte in path"}
	}
	// Fast path: already clean.
	ok := true
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			ok = false
			break
		}
	}
	if ok {
		return rel, nil
	}
	parts := make([]string, 0, strings.Count(rel, "/")+1)
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
		case "..":
			return "", &escapeError{reason: `".." component`}
		default:
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/"), nil
}

// split divides a clean path into its parent directory and final component.
// The root itself ("") yields ("", ".").
func split(p string) (dir, name string) {
	if p == "" {
		return "", "."
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// dotIfRoot turns the clean root path "" into "." for use with *at calls.
func dotIfRoot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// openat2 opens path relative to dirfd with O_CLOEXEC added, retrying on
// EINTR and EAGAIN. EXDEV (resolution left dirfd) is reported as an escape.
func openat2(dirfd int, path string, flags, mode, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, path, &how)
		switch {
		case err == nil:
			return fd, nil
		case (err == unix.EINTR || err == unix.EAGAIN) && i < maxRetries:
			continue
		case err == unix.EXDEV:
			return -1, &escapeError{reason: "resolves outside the root", errno: err}
		default:
			return -1, err
		}
	}
}

// pathPiece bounds the path handed to one openat2 call. The kernel refuses
// paths of PATH_MAX (4096) bytes or more with ENAMETOOLONG, so a longer
// path is resolved a piece at a time: each piece, cut at a slash, is
// resolved beneath the directory the previous piece reached, itself
// beneath the root, so the whole stays confined. (A symlink inside the
// tree whose target climbs above the start of its piece is then refused
// as an escape although it would stay beneath the root: a stricter rule,
// for paths that deep only.)
const pathPiece = 2048

// openBeneath is openat2 with the root's resolve flags for a clean path p
// of any length beneath rootfd.
func openBeneath(rootfd int, p string, flags, mode uint64) (int, error) {
	dirfd := rootfd
	defer func() {
		if dirfd != rootfd {
			unix.Close(dirfd)
		}
	}()
	for len(p) >= pathPiece {
		i := strings.LastIndexByte(p[:pathPiece], '/')
		if i <= 0 {
			return -1, unix.ENAMETOOLONG // a component longer than any file system allows
		}
		fd, err := openat2(dirfd, p[:i], unix.O_PATH|unix.O_DIRECTORY, 0, resolveFlags)
		if err != nil {
			return -1, err
		}
		if dirfd != rootfd {
			unix.Close(dirfd)
		}
		dirfd, p = fd, p[i+1:]
	}
	return openat2(dirfd, p, flags, mode, resolveFlags)
}

// do runs fn with the root descriptor, holding a reference so that a
// concurrent Close cannot release (and the kernel reuse) the descriptor.
func (r *Root) do(op, rel string, fn func(rootfd int) error) error {
	var ferr error
	if err := r.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return &fs.PathError{Op: op, Path: rel, Err: fs.ErrClosed}
	}
	return ferr
}

// withParent resolves the parent directory of the clean path p beneath
// rootfd and calls fn with a descriptor for it and p's final component.
func withParent(rootfd int, p string, fn func(dirfd int, name string) error) error {
	dir, name := split(p)
	if dir == "" {
		return fn(rootfd, name)
	}
	pfd, err := openBeneath(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return fn(pfd, name)
}

// at cleans rel, resolves its parent and calls fn on the final component.
// Errors are returned as *fs.PathError{Op: op, Path: rel}. If allowRoot is
// false, rel naming the root fails with rootErr.
func (r *Root) at(op, rel string, rootErr error, fn func(dirfd int, name string) error) error {
	p, err := clean(rel)
	if err == nil && p == "" && rootErr != nil {
		err = rootErr
	}
	if err == nil {
		err = r.do(op, rel, func(rootfd int) error { return withParent(rootfd, p, fn) })
	}
	return wrapPath(op, rel, err)
}

func wrapPath(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: rel, Err: err}
}

func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	return ignoringEINTR(func() error {
		return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func infoFromStat(name string, st *unix.Stat_t) Info {
	var t Type
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		t = TypeFile
	case unix.S_IFDIR:
		t = TypeDir
	case unix.S_IFLNK:
		t = TypeSymlink
	default:
		t = TypeOther
	}
	return Info{
		Name:    name,
		Type:    t,
		Size:    st.Size,
		Mode:    st.Mode & 0o7777,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		Uid:     st.Uid,
		Gid:     st.Gid,
		Special: specialOf(st.Mode),
		Rdev:    st.Rdev,
		Ino:     st.Ino,
		Dev:     st.Dev,
		Nlink:   uint64(st.Nlink),
		Blocks:  st.Blocks,
	}
}

// Lstat returns information about rel without following a final symlink.
func (r *Root) Lstat(rel string) (Info, error) {
	var info Info
	err := r.at("lstat", rel, nil, func(dirfd int, name string) error {
		var st unix.Stat_t
		if err := fstatat(dirfd, name, &st); err != nil {
			return err
		}
		info = infoFromStat(name, &st)
		return nil
	})
	return info, err
}

// InfoFromFile returns the fstat(2) information of an open file. Name is
// the base name of f.Name().
func InfoFromFile(f *os.File) (Info, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return Info{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = ignoringEINTR(func() error { return unix.Fstat(int(fd), &st) })
	}); err != nil {
		return Info{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if serr != nil {
		return Info{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: serr}
	}
	return infoFromStat(filepath.Base(f.Name()), &st), nil
}

// readNames returns the names in the directory open as fd, without "." and
// "..", in directory order.
func readNames(fd int) ([]string, error) {
	buf := make([]byte, 64<<10)
	var names []string
	for {
		var n int
		err := ignoringEINTR(func() (err error) {
			n, err = unix.ReadDirent(fd, buf)
			return err
		})
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// ReadDir returns the lstat information of every entry of the directory rel,
// sorted by name bytewise. Entries removed while the directory is being read
// are skipped. A symlink as the final component of rel is not followed (the
// error matches syscall.ENOTDIR).
func (r *Root) ReadDir(rel string) ([]Info, error) {
	return r.ReadDirN(rel, nil)
}

// statSplit is the number of names from which ReadDirN stats the entries
// of one directory on several threads, and the least each thread takes.
const statSplit = 512

// ReadDirN is ReadDir that may stat the entries of a large directory on
// several threads: one more for every token it can put into helpers
// without blocking (taken back when done). nil helpers: one thread.
func (r *Root) ReadDirN(rel string, helpers chan struct{}) ([]Info, error) {
	p, err := clean(rel)
	if err != nil {
		return nil, wrapPath("readdir", rel, err)
	}
	var infos []Info
	err = r.do("readdir", rel, func(rootfd int) error {
		fd, err := openBeneath(rootfd, dotIfRoot(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		names, err := readNames(fd)
		if err != nil {
			return err
		}
		infos, err = statNames(fd, p, names, helpers)
		return err
	})
	if err != nil {
		return nil, wrapPath("readdir", rel, err)
	}
	slices.SortFunc(infos, func(a, b Info) int { return cmp.Compare(a.Name, b.Name) })
	return infos, nil
}

// statNames lstats names in the directory open as fd, skipping those that
// vanished, on up to one extra thread per token taken from helpers.
func statNames(fd int, p string, names []string, helpers chan struct{}) ([]Info, error) {
	parts := 1
	if helpers != nil && len(names) >= 2*statSplit {
		for parts < len(names)/statSplit {
			select {
			case helpers <- struct{}{}:
				parts++
				continue
			default:
			}
			break
		}
	}
	if parts == 1 {
		return statRange(fd, p, names, make([]Info, 0, len(names)))
	}
	defer func() {
		for range parts - 1 {
			<-helpers
		}
	}()
	outs := make([][]Info, parts)
	errs := make([]error, parts)
	per := (len(names) + parts - 1) / parts
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := i*per, min((i+1)*per, len(names))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = statRange(fd, p, names[lo:hi], make([]Info, 0, hi-lo))
		}()
	}
	wg.Wait()
	infos := make([]Info, 0, len(names))
	for i := range parts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		infos = append(infos, outs[i]...)
	}
	return infos, nil
}

func statRange(fd int, p string, names []string, infos []Info) ([]Info, error) {
	for _, name := range names {
		var st unix.Stat_t
		if err := fstatat(fd, name, &st); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return nil, &fs.PathError{Op: "lstat", Path: joinRel(p, name), Err: err}
		}
		infos = append(infos, infoFromStat(name, &st))
	}
	return infos, nil
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Open opens rel read-only. A symlink as the final component is refused with
// an error matching syscall.ELOOP. The open does not block: a FIFO put where
// a walk saw a regular file opens at once (and reads as empty) instead of
// waiting for a writer; regular files read as ever.
func (r *Root) Open(rel string) (*os.File, error) {
	return r.OpenFile(rel, os.O_RDONLY|unix.O_NONBLOCK, 0)
}

// OpenFile opens rel with the given open(2) flags (os.O_* values);
// O_NOFOLLOW and O_CLOEXEC are always added, so a symlink as the final
// component fails with ELOOP. perm (& 07777, subject to the umask) is used
// when a file is created.
func (r *Root) OpenFile(rel string, flag int, perm uint32) (*os.File, error) {
	var mode uint64
	if flag&unix.O_CREAT != 0 || flag&unix.O_TMPFILE == unix.O_TMPFILE {
		mode = uint64(perm & 0o7777)
	}
	f, _, err := r.open("open", rel, uint64(flag)|unix.O_NOFOLLOW, mode)
	return f, err
}

// open opens rel beneath the root with openat2 flags and mode, for the
// operation op (named in errors), and returns the file and rel cleaned.
func (r *Root) open(op, rel string, flags, mode uint64) (*os.File, string, error) {
	p, err := clean(rel)
	if err != nil {
		return nil, "", wrapPath(op, rel, err)
	}
	var fd int
	err = r.do(op, rel, func(rootfd int) (err error) {
		fd, err = openBeneath(rootfd, dotIfRoot(p), flags, mode)
		return err
	})
	if err != nil {
		return nil, "", wrapPath(op, rel, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(r.path, p)), p, nil
}

// Mkdir creates the directory rel with mode perm & 07777 (subject to the
// umask). The parent must exist.
func (r *Root) Mkdir(rel string, perm uint32) error {
	return r.at("mkdir", rel, syscall.EEXIST, func(dirfd int, name string) error {
		return ignoringEINTR(func() error { return unix.Mkdirat(dirfd, name, perm&0o7777) })
	})
}

// MkdirAll creates rel and any missing parents with mode perm & 07777
// (subject to the umask). Existing directories, including symlinks to
// directories inside the root, are accepted; anything else in the way is an
// error (ENOTDIR or EEXIST).
func (r *Root) MkdirAll(rel string, perm uint32) error {
	_, err := r.MkdirAllCount(rel, perm)
	return err
}

// MkdirAllCount is MkdirAll that also says how many directories it
// created (0 when rel was there already).
func (r *Root) MkdirAllCount(rel string, perm uint32) (int, error) {
	p, err := clean(rel)
	made := 0
	if err == nil && p != "" {
		err = r.do("mkdir", rel, func(rootfd int) error { return mkdirAll(rootfd, p, perm&0o7777, &made) })
	}
	return made, wrapPath("mkdir", rel, err)
}

func mkdirAll(rootfd int, p string, perm uint32, made *int) error {
	isDir := func() error {
		fd, err := openBeneath(rootfd, p, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	err := isDir()
	if err == nil || err != unix.ENOENT {
		return err
	}
	if dir, _ := split(p); dir != "" {
		if err := mkdirAll(rootfd, dir, perm, made); err != nil {
			return err
		}
	}
	err = withParent(rootfd, p, func(dirfd int, name string) error {
		return ignoringEINTR(func() error { return unix.Mkdirat(dirfd, name, perm) })
	})
	if err == unix.EEXIST {
		// Created concurrently, or something else is in the way.
		if err2 := isDir(); err2 != unix.ENOENT {
			return err2
		}
	}
	if err == nil {
		*made++
	}
	return err
}

// Symlink creates rel as a symlink whose target is stored verbatim. The
// target is data: it is never resolved here, but later path resolution
// through the link stays confined to the root.
func (r *Root) Symlink(target, rel string) error {
	return r.at("symlink", rel, syscall.EEXIST, func(dirfd int, name string) error {
		return ignoringEINTR(func() error { return unix.Symlinkat(target, dirfd, name) })
	})
}

// Readlink returns the target of the symlink rel.
func (r *Root) Readlink(rel string) (string, error) {
	var target string
	err := r.at("readlink", rel, nil, func(dirfd int, name string) error {
		for size := 256; ; size *= 2 {
			buf := make([]byte, size)
			var n int
			err := ignoringEINTR(func() (err error) {
				n, err = unix.Readlinkat(dirfd, name, buf)
				return err
			})
			if err != nil {
				return err
			}
			if n < size {
				target = string(buf[:n])
				return nil
			}
		}
	})
	return target, err
}

// twoPaths resolves the parents of oldRel and newRel and calls fn with them.
// Errors are returned as *os.LinkError.
func (r *Root) twoPaths(op, oldRel, newRel string, fn func(oldfd int, oldName string, newfd int, newName string) error) error {
	po, err := clean(oldRel)
	if err == nil {
		var pn string
		pn, err = clean(newRel)
		if err == nil && (po == "" || pn == "") {
			err = errRoot
		}
		if err == nil {
			err = r.do(op, oldRel, func(rootfd int) error {
				return withParent(rootfd, po, func(oldfd int, oldName string) error {
					return withParent(rootfd, pn, func(newfd int, newName string) error {
						return ignoringEINTR(func() error { return fn(oldfd, oldName, newfd, newName) })
					})
				})
			})
		}
	}
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) { // root closed
		err = pe.Err
	}
	return &os.LinkError{Op: op, Old: oldRel, New: newRel, Err: err}
}

// Link creates newRel as a hard link to oldRel. A symlink at oldRel is
// linked itself, not followed.
func (r *Root) Link(oldRel, newRel string) error {
	return r.twoPaths("link", oldRel, newRel, func(oldfd int, oldName string, newfd int, newName string) error {
		return unix.Linkat(oldfd, oldName, newfd, newName, 0)
	})
}

// Rename renames oldRel to newRel like rename(2): a file, symlink or empty
// directory at newRel is replaced. Neither path's final component is
// followed if it is a symlink.
func (r *Root) Rename(oldRel, newRel string) error {
	return r.twoPaths("rename", oldRel, newRel, func(oldfd int, oldName string, newfd int, newName string) error {
		return unix.Renameat(oldfd, oldName, newfd, newName)
	})
}

// Remove removes the file, symlink or empty directory rel.
func (r *Root) Remove(rel string) error {
	return r.at("remove", rel, errRoot, func(dirfd int, name string) error {
		return removeAt(dirfd, name)
	})
}

func removeAt(dirfd int, name string) error {
	err := ignoringEINTR(func() error { return unix.Unlinkat(dirfd, name, 0) })
	if err == nil {
		return nil
	}
	err1 := ignoringEINTR(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) })
	if err1 == nil {
		return nil
	}
	if err1 != unix.ENOTDIR {
		return err1
	}
	return err
}

// RemoveAll removes rel and everything beneath it. Symlinks are removed,
// never followed. A missing rel is not an error; rel naming the root is.
func (r *Root) RemoveAll(rel string) error {
	p, err := clean(rel)
	if err == nil && p == "" {
		err = errRoot
	}
	if err == nil {
		err = r.do("removeall", rel, func(rootfd int) error {
			err := withParent(rootfd, p, func(dirfd int, name string) error {
				return removeAllAt(dirfd, name, p)
			})
			if err == unix.ENOENT { // the parent is missing
				return nil
			}
			return err
		})
	}
	return wrapPath("removeall", rel, err)
}

// removeAllAt removes name (shown as p in errors) relative to the directory
// parent, recursing into directories through descriptors opened with
// O_NOFOLLOW, so no symlink is ever followed.
func removeAllAt(parent int, name, p string) error {
	opened := false // made readable to remove it, once
	for attempt := 0; ; attempt++ {
		err := ignoringEINTR(func() error { return unix.Unlinkat(parent, name, 0) })
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EISDIR && err != unix.EPERM {
			return &fs.PathError{Op: "unlink", Path: p, Err: err}
		}
		var fd int
		oerr := ignoringEINTR(func() (err error) {
			fd, err = unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
		switch {
		case oerr == unix.ENOENT:
			return nil
		case (oerr == unix.ENOTDIR || oerr == unix.ELOOP) && err == unix.EISDIR && attempt < maxRetries:
			continue // replaced by a non-directory meanwhile
		case oerr == unix.ENOTDIR || oerr == unix.ELOOP:
			return &fs.PathError{Op: "unlink", Path: p, Err: err}
		case oerr == unix.EACCES && !opened && chmodAt(parent, name, 0o700) == nil:
			// A directory of ours we may not read: it goes anyway, as
			// with rsync and rm -rf.
			opened = true
			continue
		case oerr != nil:
			// Unreadable directory: it can still be removed if empty.
			if rerr := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); rerr == nil || rerr == unix.ENOENT {
				return nil
			}
			return &fs.PathError{Op: "open", Path: p, Err: oerr}
		}
		// A read-only directory of ours is made writable, so that its
		// entries can go.
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&0o300 != 0o300 {
			unix.Fchmod(fd, st.Mode&0o7777|0o700)
		}
		names, rerr := readNames(fd)
		var firstErr error
		if rerr != nil {
			firstErr = &fs.PathError{Op: "readdir", Path: p, Err: rerr}
		}
		for _, child := range names {
			if err := removeAllAt(fd, child, joinRel(p, child)); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		unix.Close(fd)
		err = ignoringEINTR(func() error { return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR) })
		switch {
		case err == nil || err == unix.ENOENT:
			return nil
		case firstErr != nil:
			return firstErr
		case err == unix.ENOTEMPTY && attempt < maxRetries:
			continue // entries were added concurrently
		default:
			return &fs.PathError{Op: "rmdir", Path: p, Err: err}
		}
	}
}

// Chmod sets the permission bits (perm & 07777) of rel without following a
// final symlink. On a symlink it does nothing: Linux has no link modes.
func (r *Root) Chmod(rel string, perm uint32) error {
	return r.at("chmod", rel, nil, func(dirfd int, name string) error {
		return chmodAt(dirfd, name, perm&0o7777)
	})
}

func chmodAt(dirfd int, name string, perm uint32) error {
	// fchmodat2 (Linux 6.6+) honours AT_SYMLINK_NOFOLLOW and fails with
	// EOPNOTSUPP on a symlink; x/sys also maps a missing fchmodat2 to it.
	err := ignoringEINTR(func() error { return unix.Fchmodat(dirfd, name, perm, unix.AT_SYMLINK_NOFOLLOW) })
	if err != unix.EOPNOTSUPP {
		return err
	}
	// Pin the final component without following it, check its type, then
	// change the mode through the pinned descriptor.
	var fd int
	err = ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return ignoringEINTR(func() error {
		return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), perm, 0)
	})
}

func timespec(ns int64) unix.Timespec {
	if ns == TimeOmit {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(ns)
}

// Lchtimes sets the access and modification times of rel (nanoseconds since
// the Unix epoch, or TimeOmit) without following a final symlink.
func (r *Root) Lchtimes(rel string, atimeNs, mtimeNs int64) error {
	ts := []unix.Timespec{timespec(atimeNs), timespec(mtimeNs)}
	return r.at("chtimes", rel, nil, func(dirfd int, name string) error {
		return ignoringEINTR(func() error {
			return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
		})
	})
}

// Syncfs commits all buffered data of the root's file system to storage.
func (r *Root) Syncfs() error {
	err := r.do("syncfs", r.path, func(rootfd int) error {
		return ignoringEINTR(func() error { return unix.Syncfs(rootfd) })
	})
	return wrapPath("syncfs", r.path, err)
}

// Statfs returns the bytes available to unprivileged users and the total
// size of the root's file system.
func (r *Root) Statfs() (free, total uint64, err error) {
	var st unix.Statfs_t
	err = r.do("statfs", r.path, func(rootfd int) error {
		return ignoringEINTR(func() error { return unix.Fstatfs(rootfd, &st) })
	})
	if err != nil {
		return 0, 0, wrapPath("statfs", r.path, err)
	}
	bsize := uint64(st.Frsize)
	if bsize == 0 {
		bsize = uint64(st.Bsize)
	}
	return st.Bavail * bsize, st.Blocks * bsize, nil
}
