package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenOptions say how to create the daemon's socket.
type ListenOptions struct {
	// Mode is the socket file's permission bits (default 0600: only the
	// daemon's user may connect).
	Mode os.FileMode
	// Group, a group name or number, is given the socket file (and mode
	// 0660 unless Mode says otherwise), to share the daemon with its
	// members.
	Group string
}

// ErrInUse means a live daemon already listens on the socket.
var ErrInUse = errors.New("socket in use")

// Listener is the daemon's listening socket.
type Listener struct {
	net.Listener
	// Activated reports that the socket came from systemd (LISTEN_FDS).
	Activated bool
	lock      *os.File
	once      sync.Once
	err       error
}

// Close closes the socket; one the daemon created is removed, and its lock
// released. Closing again does nothing.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.err = l.Listener.Close()
		if l.lock != nil {
			l.lock.Close()
		}
	})
	return l.err
}

// Listen returns the socket to serve on: the one systemd passed as file
// descriptor 3 (LISTEN_PID is this process and LISTEN_FDS at least 1),
// else a new one at path.
//
// A new socket replaces a stale file left at path by a daemon that died (no
// one accepts on it), but never a live one: a second daemon on the same
// path fails with an error wrapping ErrInUse. Daemons sharing a path
// serialise on a lock file beside it (path + ".lock", kept).
func Listen(path string, o ListenOptions) (*Listener, error) {
	if ln, ok, err := systemdListener(); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return &Listener{Listener: ln, Activated: true}, nil
	}
	if path == "" {
		return nil, errors.New("no socket path")
	}
	mode := o.Mode
	gid := -1
	if o.Group != "" {
		g, err := lookupGroup(o.Group)
		if err != nil {
			return nil, err
		}
		gid = g
		if mode == 0 {
			mode = 0o660
		}
	}
	if mode == 0 {
		mode = 0o600
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	// O_NOFOLLOW: a symlink planted at the lock's name must not make the
	// daemon create or lock a file elsewhere; nor may the name be a hard
	// link to someone else's file.
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("lock %s is a symbolic link: refusing it (remove it)", path+".lock")
		}
		return nil, fmt.Errorf("lock %s: %w", path+".lock", err)
	}
	if st, err := lock.Stat(); err != nil || !st.Mode().IsRegular() || linkCount(st) > 1 {
		lock.Close()
		return nil, fmt.Errorf("lock %s is not a plain file of its own: refusing it (remove it)", path+".lock")
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another xfer daemon serves %s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", path+".lock", err)
	}
	fail := func(err error) (*Listener, error) {
		lock.Close()
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return fail(err)
	}
	// Bind with a umask that leaves the socket no wider than mode from its
	// first instant; then set mode exactly.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", path, err))
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return fail(fmt.Errorf("socket group: %w", err))
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return fail(fmt.Errorf("socket mode: %w", err))
	}
	return &Listener{Listener: ln, lock: lock}, nil
}

// removeStale removes a socket file nobody accepts on.
func removeStale(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("a process accepts connections on %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("socket group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}

// systemdListener returns the socket of systemd socket activation, if this
// process was given one, and clears the variables so children do not
// inherit them.
func systemdListener() (net.Listener, bool, error) {
	pid, fds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	if pid == "" || fds == "" || pid != strconv.Itoa(os.Getpid()) {
		return nil, false, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	n, err := strconv.Atoi(fds)
	if err != nil || n < 1 {
		return nil, false, fmt.Errorf("LISTEN_FDS=%q: want the number of sockets passed", fds)
	}
	const first = 3 // SD_LISTEN_FDS_START
	f := os.NewFile(first, "systemd socket")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, false, fmt.Errorf("socket from systemd (fd %d): %w", first, err)
	}
	if _, ok := ln.(*net.UnixListener); !ok {
		ln.Close()
		return nil, false, fmt.Errorf("socket from systemd (fd %d) is not a Unix stream socket", first)
	}
	for i := first + 1; i < first+n; i++ {
		unix.CloseOnExec(i)
	}
	return ln, true, nil
}

// linkCount is the number of names of the file behind st.
func linkCount(st os.FileInfo) uint64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Nlink)
	}
	return 1
}
