package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	osuser "os/user"
	"strconv"
)

// ownersTree builds, as root, a source tree whose entries have owners
// and groups by name (daemon, bin, nobody/nogroup), by number only
// (4242:4343, no such user or group), a set-uid file, a symlink with its
// own owner, and a fifo, a socket and a character device.
func ownersTree(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "d", "e"), 0o755))
	files := []struct {
		rel, owner string
		mode       os.FileMode
	}{
		{"a", "daemon:bin", 0o4755},
		{"d/b", "4242:4343", 0o640},
		{"d/e/c", "bin:daemon", 0o600},
		{"big", "nobody:nogroup", 0o644},
	}
	for i, f := range files {
		p := filepath.Join(dir, f.rel)
		data := []byte(strings.Repeat(f.rel, 10+i))
		if f.rel == "big" {
			data = make([]byte, 3<<20) // a chunked file, not a batch
		}
		must(t, os.WriteFile(p, data, 0o600))
		chownName(t, p, f.owner)
		must(t, os.Chmod(p, f.mode))
	}
	chownName(t, filepath.Join(dir, "d"), "nobody:nogroup")
	chownName(t, filepath.Join(dir, "d", "e"), "4242:daemon")
	must(t, os.Symlink("a", filepath.Join(dir, "l")))
	must(t, os.Lchown(filepath.Join(dir, "l"), 2, 1))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	must(t, syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o644, 1<<8|3))
	must(t, syscall.Mknod(filepath.Join(dir, "sock"), syscall.S_IFSOCK|0o755, 0))
	chownName(t, filepath.Join(dir, "fifo"), "daemon:daemon")
	// Times in the past, with nanoseconds: rsync compares those of
	// directories and special files to the second, and would leave a
	// copy made within the same second as it is.
	for i, rel := range []string{"a", "d/b", "d/e/c", "big", "fifo", "null", "sock", "d/e", "d", "."} {
		mt := time.Unix(1_500_000_000+int64(i)*1000, int64(i)*7919+1)
		must(t, os.Chtimes(filepath.Join(dir, rel), mt, mt))
	}
}

// chownName sets the owner of p from "user:group" (names or numbers).
func chownName(t *testing.T, p, spec string) {
	t.Helper()
	u, g, _ := strings.Cut(spec, ":")
	id := func(s string, look func(string) (string, error)) int {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
		v, err := look(s)
		if err != nil {
			t.Skipf("no user or group %q here: %v", s, err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	uid := id(u, func(s string) (string, error) { x, err := osuser.Lookup(s); return uidOf(x), err })
	gid := id(g, func(s string) (string, error) { x, err := osuser.LookupGroup(s); return gidOf(x), err })
	must(t, os.Lchown(p, uid, gid))
}

func uidOf(u *osuser.User) string {
	if u == nil {
		return ""
	}
	return u.Uid
}

func gidOf(g *osuser.Group) string {
	if g == nil {
		return ""
	}
	return g.Gid
}

// ownerListing describes every entry beneath dir: type, mode, owner,
// group, device number, mtime (not of symlinks) and content.
func ownerListing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	walkBelow(t, dir, func(rel, p string) error {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("mode=%o uid=%d gid=%d rdev=%d", st.Mode, st.Uid, st.Gid, st.Rdev)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFLNK:
			target, _ := os.Readlink(p)
			s += " -> " + target
		case syscall.S_IFREG:
			data, _ := os.ReadFile(p)
			s += fmt.Sprintf(" mtime=%d len=%d data=%x", st.Mtim.Nano(), len(data), data[:min(len(data), 32)])
		case syscall.S_IFDIR:
			s += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		default:
			s += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		}
		out[rel] = s
		return nil
	})
	return out
}

// TestOwnersDifferential: as root, copy keeps owners and groups (by name,
// and with --numeric-ids by number), set-uid bits after the chown, and
// recreates fifos, sockets and devices, as rsync -a does, in every
// direction; a second run changes nothing.
func TestOwnersDifferential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	needTool(t, "rsync", "the reference (make deps)")
	base := t.TempDir()
	src := filepath.Join(base, "src")
	ownersTree(t, src)
	ref := filepath.Join(base, "rsync")
	if out, err := exec.Command("rsync", "-a", src+"/", ref+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync -a: %v\n%s", err, out)
	}
	want := ownerListing(t, ref)
	sameSnap(t, "rsync -a against its source", ownerListing(t, src), want)
	peerRoot := filepath.Join(base, "peers")
	must(t, os.MkdirAll(peerRoot, 0o755))
	a := startServer(t, peerRoot, "--allow-owners", "--allow-devices", "--umask", "000", "--allow-setid")
	b := startServer(t, peerRoot, "--allow-owners", "--allow-devices", "--umask", "000", "--allow-setid")
	if out, err := exec.Command("rsync", "-a", src+"/", filepath.Join(peerRoot, "src")+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync -a: %v\n%s", err, out)
	}
	for _, numeric := range []bool{false, true} {
		for _, d := range []struct{ name, from, to, got string }{
			{"local-local", src + "/", filepath.Join(base, "ll"), filepath.Join(base, "ll")},
			{"local-peer", src + "/", a.url("lp"), filepath.Join(peerRoot, "lp")},
			{"peer-local", a.url("src/"), filepath.Join(base, "pl"), filepath.Join(base, "pl")},
			{"peer-peer", a.url("src/"), b.url("pp"), filepath.Join(peerRoot, "pp")},
		} {
			name := fmt.Sprintf("%s numeric=%v", d.name, numeric)
			os.RemoveAll(d.got)
			args := []string{"copy", d.from, d.to}
			if numeric {
				args = append(args, "--numeric-ids")
			}
			for run := 1; run <= 2; run++ {
				r := xfer(t, append(args, "--json")...)
				if r.code != 0 {
					t.Fatalf("%s run %d: %s", name, run, r)
				}
				_, sum := jsonRun(t, r)
				if run == 2 && (sum.FilesTransferred != 0) {
					t.Errorf("%s: second run changed something: %s", name, r.stdout)
				}
				if strings.Contains(r.stdout, `"event":"notice"`) {
					t.Errorf("%s run %d: a notice as root: %s", name, run, r.stdout)
				}
				sameSnap(t, fmt.Sprintf("%s run %d", name, run), want, ownerListing(t, d.got))
			}
		}
	}
}

// TestOwnersServerRefuses: a server without --allow-owners and
// --allow-devices leaves uploads to its own user and skips devices; with
// --owners yes the client says so once per run.
func TestOwnersServerRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := t.TempDir()
	src := filepath.Join(base, "src")
	ownersTree(t, src)
	peerRoot := filepath.Join(base, "peer")
	must(t, os.MkdirAll(peerRoot, 0o755))
	s := startServer(t, peerRoot)
	twiceSayingOnce(t, func() result {
		return xfer(t, "copy", src+"/", s.url("dst"), "--owners", "yes")
	}, "not kept: the server does not allow it", "skipped 1 device file")
	got := ownerListing(t, filepath.Join(peerRoot, "dst"))
	for rel, l := range got {
		if !strings.Contains(l, "uid=0 gid=0") {
			t.Errorf("%s: not the server's: %s", rel, l)
		}
	}
	if _, ok := got["null"]; ok {
		t.Errorf("a device was created by a server without --allow-devices")
	}
	if !strings.HasPrefix(got["fifo"], fmt.Sprintf("mode=%o", syscall.S_IFIFO|0o640)) {
		t.Errorf("fifo: %q", got["fifo"])
	}
}

// TestOwnersUnprivileged: a copy run as nobody keeps what it can (its own
// user, a group it is in), creates the fifo and the socket, skips the
// device, and says each once per run, with counts.
func TestOwnersUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (to run the copy as nobody)")
	}
	u, err := osuser.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	base, err := os.MkdirTemp("", "xfer-own-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	data, err := os.ReadFile(xferBin)
	must(t, err)
	bin := filepath.Join(base, "xfer")
	must(t, os.WriteFile(bin, data, 0o755))
	src := filepath.Join(base, "src")
	ownersTree(t, src)
	must(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink == 0 {
			err = os.Chmod(p, 0o755) // readable by nobody
		}
		return err
	}))
	dst := filepath.Join(base, "dst")
	must(t, os.Mkdir(dst, 0o755))
	must(t, os.Chown(dst, uid, gid))
	home := filepath.Join(base, "home")
	must(t, os.Mkdir(home, 0o755))
	must(t, os.Chown(home, uid, gid))
	twiceSayingOnce(t, func() result {
		return runCmd(t, func(cmd *exec.Cmd) {
			cmd.Env = append(baseEnv(t), "HOME="+home, "XDG_CONFIG_HOME="+home)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		}, bin, "copy", src+"/", dst, "--owners", "yes")
	}, "not kept: not running as root", "skipped 1 device file")
	got := ownerListing(t, dst)
	for rel, l := range got {
		if !strings.Contains(l, fmt.Sprintf("uid=%d gid=%d", uid, gid)) {
			t.Errorf("%s: not nobody's: %s", rel, l)
		}
	}
	if _, ok := got["null"]; ok {
		t.Errorf("an unprivileged run created a device")
	}
	for _, rel := range []string{"fifo", "sock"} {
		if _, ok := got[rel]; !ok {
			t.Errorf("%s not created", rel)
		}
	}
}

// twiceSayingOnce runs run twice; each run must succeed and say each of
// notices exactly once (a notice is per run, not per entry).
func twiceSayingOnce(t *testing.T, run func() result, notices ...string) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		r := run()
		if r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
		for _, notice := range notices {
			if n := strings.Count(r.stdout+r.stderr, notice); n != 1 {
				t.Errorf("run %d: %q said %d times, want once:\n%s", i, notice, n, r)
			}
		}
	}
}
