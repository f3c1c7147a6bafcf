package receive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
)

// The run lock of a destination directory is flock(2) LOCK_EX on a
// descriptor of the directory itself, held until the run (or the session
// that took it) ends. Nothing is created in the tree, and the kernel drops
// the lock when its holder exits, however it exits: no stale lock is ever
// left behind. See docs/design.md ("Run lock") for why, and for the file
// systems on which the lock is only host-wide.

// ErrLocked means another run holds the destination's lock.
var ErrLocked = errors.New("destination locked")

// lockDir takes the run lock of directory p beneath root (called name in
// messages) and returns the descriptor that holds it (closing it releases
// the lock).
func lockDir(root *fsroot.Root, p, name string) (*os.File, error) {
	f, err := root.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, fsroot.Reason(err))
	}
	err = ignoringEINTR(func() error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) })
	if errors.Is(err, unix.EWOULDBLOCK) {
		holder := lockHolder(f)
		f.Close()
		return nil, exitcode.WithCode(exitcode.Partial, fmt.Errorf("%w: another xfer run is working on %s (%s); try again later or pass --lock=false", ErrLocked, name, holder))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w (pass --lock=false on a file system without flock)", name, err)
	}
	return f, nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// lockHolder describes who holds the flock on the directory f: "pid N
// (command) on HOST since T" from /proc/locks and /proc/N, or what could be
// found of it. flock is kept by the kernel of the host whose process took
// it, so the holder runs on this host.
func lockHolder(f *os.File) string {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return "holder unknown"
	}
	pid := flockPid(st)
	if pid <= 0 {
		return "holder not visible from here"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", pid)
	if cmd := procCmdline(pid); cmd != "" {
		fmt.Fprintf(&b, " (%s)", cmd)
	}
	if host, err := os.Hostname(); err == nil {
		b.WriteString(" on " + host)
	}
	if t, ok := procStart(pid); ok {
		b.WriteString(" since " + t.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// flockPid finds in /proc/locks the process holding a flock on the inode
// of st ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"); 0 if none is
// listed (or its pid is in another pid namespace).
func flockPid(st unix.Stat_t) int {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" { // a waiter, not the holder
			continue
		}
		if fields[1] == "FLOCK" && fields[5] == id {
			pid, _ := strconv.Atoi(fields[4])
			return pid
		}
	}
	return 0
}

// procCmdline is the command line of pid, shortened for a message.
func procCmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// procStart is when pid started: its start time in clock ticks after boot
// (/proc/PID/stat field 22, USER_HZ = 100 on Linux) plus the boot time
// (/proc/stat btime).
func procStart(pid int) (time.Time, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return time.Time{}, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 { // fields 3.. of which starttime is field 22
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(boot, 0).Add(time.Duration(ticks) * 10 * time.Millisecond), true
		}
	}
	return time.Time{}, false
}
