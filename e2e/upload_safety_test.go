package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// nobody is the unprivileged user the attacks of these tests run as.
const nobodyUID, nobodyGID = 65534, 65534

// processUmask is this test process's umask, which a server started by
// the tests inherits.
func processUmask(t *testing.T) uint32 {
	b, err := os.ReadFile("/proc/self/status")
	must(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			var m uint32
			fmt.Sscanf(strings.TrimSpace(v), "%o", &m)
			return m
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}

func modeOf(t *testing.T, p string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return st.Mode & 0o7777
}

// TestSetidUploadByUnprivilegedUser: an unprivileged local user uploads
// set-uid, set-gid and world-writable files to a server running as root.
// The server narrows every mode with its umask and drops set-id bits
// (and sticky bits on files), in new files large and small, directories
// and attribute updates, unless --allow-setid or the export's setid
// option keeps them; nothing becomes a set-uid root program.
func TestSetidUploadByUnprivilegedUser(t *testing.T) {
	u := asNobody(t) // skips unless root
	base, err := os.MkdirTemp("", "xfer-e2e-setid-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	src := filepath.Join(base, "src")
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	files := []struct {
		path string
		mode uint32
		size int64
	}{
		{"suid", 0o4755, 100},
		{"suid-big", 0o4755, 3 << 20}, // chunked, not batched
		{"sgid", 0o2755, 100},
		{"sticky-file", 0o1644, 100},
		{"wide", 0o777, 100},
		{"attr", 0o4777, 100}, // at the destination already, with other modes: an attribute update
		{"wide-dir/f", 0o666, 100},
	}
	for i, f := range files {
		writeRandom(t, filepath.Join(src, f.path), f.size, uint64(100+i))
	}
	must(t, os.MkdirAll(filepath.Join(src, "sgid-dir"), 0o755))
	// nobody's files (chown first: it clears set-id bits).
	must(t, filepath.Walk(src, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, nobodyUID, nobodyGID)
		}
		return err
	}))
	for _, d := range []struct {
		path string
		mode uint32
	}{{"", 0o755}, {"wide-dir", 0o777}, {"sgid-dir", 0o2775}} {
		must(t, syscall.Chmod(filepath.Join(src, d.path), d.mode))
	}
	for _, f := range files {
		must(t, syscall.Chmod(filepath.Join(src, f.path), f.mode))
		must(t, os.Chtimes(filepath.Join(src, f.path), old, old))
	}

	// want: the mode each entry must have at the destination.
	stripped022 := map[string]uint32{"suid": 0o755, "suid-big": 0o755, "sgid": 0o755, "sticky-file": 0o644,
		"wide": 0o755, "attr": 0o755, "wide-dir": 0o755, "wide-dir/f": 0o644, "sgid-dir": 0o755}
	kept022 := map[string]uint32{"suid": 0o4755, "suid-big": 0o4755, "sgid": 0o2755, "sticky-file": 0o1644,
		"wide": 0o755, "attr": 0o4755, "wide-dir": 0o755, "wide-dir/f": 0o644, "sgid-dir": 0o2755}
	cases := []struct {
		name    string
		args    func(root string) []string
		prefix  string // export name and slash, if any
		want    map[string]uint32
		umask22 bool // the case relies on the test's own umask being 022
	}{
		{"the server's own umask", func(string) []string { return nil }, "", stripped022, true},
		{"--umask 027", func(string) []string { return []string{"--umask", "027"} }, "",
			map[string]uint32{"suid": 0o750, "suid-big": 0o750, "sgid": 0o750, "sticky-file": 0o640,
				"wide": 0o750, "attr": 0o750, "wide-dir": 0o750, "wide-dir/f": 0o640, "sgid-dir": 0o750}, false},
		{"--allow-setid", func(string) []string { return []string{"--umask", "022", "--allow-setid"} }, "", kept022, false},
		{"export without setid", func(root string) []string { return []string{"--umask", "022", "--export", "up=" + root} }, "up/", stripped022, false},
		{"export with setid", func(root string) []string { return []string{"--umask", "022", "--export", "up=" + root + ":rw,setid"} }, "up/", kept022, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.umask22 && processUmask(t) != 0o022 {
				t.Skipf("the test runs with umask %03o, not 022", processUmask(t))
			}
			root, err := os.MkdirTemp(base, "root-")
			must(t, err)
			must(t, os.Chmod(root, 0o755))
			// "attr" is there already with the same content and mtime.
			dst := filepath.Join(root, "dst")
			must(t, os.MkdirAll(dst, 0o755))
			data, err := os.ReadFile(filepath.Join(src, "attr"))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dst, "attr"), data, 0o600))
			must(t, os.Chtimes(filepath.Join(dst, "attr"), old, old))
			rootArg := root
			if c.prefix != "" {
				rootArg = ""
			}
			s := startServer(t, rootArg, c.args(root)...)
			r := u.run(t, "sync", src, s.url(c.prefix+"dst"), "--chunk-size", "1M")
			if r.code != 0 {
				t.Fatalf("upload as nobody: %s", r)
			}
			for p, want := range c.want {
				if got := modeOf(t, filepath.Join(dst, p)); got != want {
					t.Errorf("%s: mode %04o, want %04o", p, got, want)
				}
			}
			for _, p := range []string{"suid", "suid-big", "attr"} {
				var st syscall.Stat_t
				must(t, syscall.Stat(filepath.Join(dst, p), &st))
				if st.Uid != 0 {
					t.Errorf("%s: owner %d, want the server's user (root)", p, st.Uid)
				}
			}
		})
	}
}

// fnvHex is the 16 hex digits that xfer 1 (protocol version 1) named the
// partial file and journal of a target with.
func fnvHex(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("%016x", h.Sum64())
}

// journalHex is the 16 hex digits of the journal name of a target.
func journalHex(name string) string {
	sum := hashtree.Sum([]byte(name + "\x00journal"))
	return hex.EncodeToString(sum[:8])
}

// TestPlantedHardLinks: someone who can write into an export plants hard
// links (and symlinks) to a file outside it under the names xfer writes
// its partial files and journals to, and as a destination file whose
// attributes a sync would update. Transfers into the export never change
// the outside file's content, size or mode.
func TestPlantedHardLinks(t *testing.T) {
	cases := []struct {
		name string
		// plant makes the trap in dst, given the outside file.
		plant func(t *testing.T, src, dst, outside string)
		args  []string
		// check looks at the run's result (outside damage is checked for
		// every case).
		check func(t *testing.T, r result, src, dst string)
	}{
		{
			name: "hard links at the partial and journal names of a large upload",
			plant: func(t *testing.T, src, dst, outside string) {
				writeRandom(t, filepath.Join(src, "big.bin"), 3<<20, 7)
				for _, n := range []string{".xfer-" + fnvHex("big.bin") + ".part", ".xfer-" + fnvHex("big.bin") + ".journal",
					".xfer-" + journalHex("big.bin") + ".journal"} {
					must(t, os.Link(outside, filepath.Join(dst, n)))
				}
			},
			args:  []string{"copy"},
			check: wantOnly("big.bin"),
		},
		{
			name: "symlinks at the journal names of a large upload",
			plant: func(t *testing.T, src, dst, outside string) {
				writeRandom(t, filepath.Join(src, "big.bin"), 3<<20, 8)
				for _, n := range []string{".xfer-" + fnvHex("big.bin") + ".journal", ".xfer-" + journalHex("big.bin") + ".journal"} {
					must(t, os.Symlink(outside, filepath.Join(dst, n)))
				}
			},
			args:  []string{"copy"},
			check: wantOnly("big.bin"),
		},
		{
			name: "a hard link as the destination of an attribute update",
			plant: func(t *testing.T, src, dst, outside string) {
				// Same content and mtime as the outside file, another mode:
				// a sync only sets attributes.
				data, err := os.ReadFile(outside)
				must(t, err)
				info, err := os.Stat(outside)
				must(t, err)
				p := filepath.Join(src, "victim")
				must(t, os.WriteFile(p, data, 0o644))
				must(t, syscall.Chmod(p, 0o4777))
				must(t, os.Chtimes(p, info.ModTime(), info.ModTime()))
				must(t, os.Link(outside, filepath.Join(dst, "victim")))
			},
			args: []string{"sync"},
			check: func(t *testing.T, r result, src, dst string) {
				if r.code != 1 || !strings.Contains(r.stderr, "victim") || !strings.Contains(r.stderr, "hard links") {
					t.Errorf("want exit 1 and the refusal naming victim: %s", r)
				}
			},
		},
		{
			name: "a hard link as the destination of a --delta update",
			plant: func(t *testing.T, src, dst, outside string) {
				data, err := os.ReadFile(outside)
				must(t, err)
				p := filepath.Join(src, "linked.bin")
				must(t, os.WriteFile(p, append(data, bytes.Repeat([]byte("new tail "), 300000)...), 0o644))
				must(t, os.Link(outside, filepath.Join(dst, "linked.bin")))
			},
			args:  []string{"copy", "--delta"},
			check: wantCopied("linked.bin"),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir() // root and outside on one file system
			src, root := filepath.Join(base, "src"), filepath.Join(base, "root")
			dst := filepath.Join(root, "dst")
			must(t, os.MkdirAll(src, 0o755))
			must(t, os.MkdirAll(dst, 0o755))
			must(t, os.MkdirAll(filepath.Join(base, "outside"), 0o755))
			outside := filepath.Join(base, "outside/secret")
			secret := bytes.Repeat([]byte("top secret, outside the export\n"), 4096)
			must(t, os.WriteFile(outside, secret, 0o640))
			must(t, os.Chmod(outside, 0o640))
			c.plant(t, src, dst, outside)
			s := startServer(t, root)
			args := append(append([]string{}, c.args...), src, s.url("dst"), "--chunk-size", "1M")
			r := xfer(t, args...)
			c.check(t, r, src, dst)
			got, err := os.ReadFile(outside)
			must(t, err)
			if !bytes.Equal(got, secret) {
				t.Errorf("the file outside the export changed: %d bytes, want %d (%s)", len(got), len(secret), r)
			}
			if m := modeOf(t, outside); m != 0o640 {
				t.Errorf("the file outside the export has mode %04o, want 0640", m)
			}
		})
	}
}

// wantCopied checks that a run succeeded and name arrived intact.
func wantCopied(name string) func(t *testing.T, r result, src, dst string) {
	return func(t *testing.T, r result, src, dst string) {
		t.Helper()
		if r.code != 0 {
			t.Errorf("want the copy to succeed: %s", r)
			return
		}
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, _ := os.ReadFile(filepath.Join(dst, name))
		if !bytes.Equal(want, got) {
			t.Errorf("%s arrived with other content than the source's (%d bytes, source %d)", name, len(got), len(want))
		}
	}
}

// wantOnly is wantCopied, and nothing else stays in dst: the planted
// names (xfer's own, and those an older xfer used) are gone too.
func wantOnly(name string) func(t *testing.T, r result, src, dst string) {
	return func(t *testing.T, r result, src, dst string) {
		t.Helper()
		wantCopied(name)(t, r, src, dst)
		ents, _ := os.ReadDir(dst)
		if len(ents) != 1 || ents[0].Name() != name {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("left in the destination: %q", names)
		}
	}
}

// TestSourceRewrittenDuringRead: a source file rewritten in place while it
// is sent, its mtime set back afterwards, fails with "changed during
// transfer" and exit 1, and the destination keeps its previous version;
// it never arrives as a mix of old and new content with exit 0.
func TestSourceRewrittenDuringRead(t *testing.T) {
	for _, served := range []bool{false, true} {
		name := "local"
		if served {
			name = "served"
		}
		t.Run(name, func(t *testing.T) {
			// The rewrite can land after xfer has read the whole file
			// (the reads run ahead of the rate limit): then exit 0 with
			// the whole first version is right, and the race is tried
			// again, a bounded number of times.
			for attempt := 1; ; attempt++ {
				if !rewriteDuringRead(t, served) {
					return
				}
				if attempt == 3 {
					t.Fatalf("in %d attempts the rewrite never landed while the file was read", attempt)
				}
				t.Logf("attempt %d: the rewrite landed after the last read; trying again", attempt)
			}
		})
	}
}

// rewriteDuringRead runs one copy of TestSourceRewrittenDuringRead and
// checks its outcome; it reports whether the rewrite came too late (exit 0
// with the whole first version, a consistent copy) so the caller may retry.
func rewriteDuringRead(t *testing.T, served bool) (tooLate bool) {
	t.Helper()
	const size = 8 << 20
	src := t.TempDir()
	f := filepath.Join(src, "big.bin")
	writeRandom(t, f, size, 51)
	first, err := os.ReadFile(f)
	must(t, err)
	info, err := os.Stat(f)
	must(t, err)
	mtime := info.ModTime()
	root := t.TempDir()
	dst := filepath.Join(root, "d")
	writeRandom(t, filepath.Join(dst, "big.bin"), size, 52) // the previous version
	previous, err := os.ReadFile(filepath.Join(dst, "big.bin"))
	must(t, err)
	to := dst
	if served {
		to = startServer(t, root).url("d")
	}
	// Slow enough that the file is rewritten after its first
	// chunk has landed and before its last one is read.
	run := startXfer(t, "copy", src, to, "--chunk-size", "1M", "--bwlimit", "1M", "--streams", "2")
	landed := false
	for deadline := time.Now().Add(20 * time.Second); !landed && time.Now().Before(deadline); {
		parts, _ := filepath.Glob(filepath.Join(dst, ".xfer-*.part"))
		for _, p := range parts {
			b := make([]byte, 1<<20)
			if g, err := os.Open(p); err == nil {
				n, _ := g.ReadAt(b, 0)
				g.Close()
				landed = landed || (n == len(b) && bytes.Equal(b, first[:1<<20]))
			}
		}
		if !landed {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !landed {
		run.kill()
		t.Fatalf("the first chunk never landed in a partial file:\n%s", run.stderr.String())
	}
	w, err := os.OpenFile(f, os.O_WRONLY, 0)
	must(t, err)
	second := make([]byte, size)
	for i := range second {
		second[i] = byte(i*131 + 7)
	}
	_, err = w.WriteAt(second, 0)
	must(t, err)
	must(t, w.Close())
	must(t, os.Chtimes(f, mtime, mtime))
	r := run.wait(t)
	got, _ := os.ReadFile(filepath.Join(dst, "big.bin"))
	switch {
	case r.code == 0 && bytes.Equal(got, first):
		return true
	case r.code == 0 && !bytes.Equal(got, second):
		t.Fatalf("exit 0 with a mix of old and new content:\n%s", r.stderr)
	case r.code != 1 || !strings.Contains(r.stderr, "changed during transfer"):
		t.Errorf("want exit 1 and a changed-during-transfer error, got exit %d:\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(got, previous) {
		t.Errorf("the destination does not hold its previous version any more")
	}
	return false
}

// TestServeModeFlags: bad --umask values and --allow-setid with exports
// are usage errors (exit 2) with a one-line message naming the flag.
func TestServeModeFlags(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", root, "--umask", "9"}, `--umask "9": want octal permission bits`},
		{[]string{"--root", root, "--umask", "1022"}, `--umask "1022": want octal permission bits`},
		{[]string{"--root", root, "--umask", "u=rwx"}, `--umask "u=rwx": want octal permission bits`},
		{[]string{"--export", "up=" + root, "--allow-setid"}, "--allow-setid goes with --root"},
	} {
		r := xfer(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "strconv") {
			t.Errorf("%v: want exit 2 and %q: %s", c.args, c.want, r)
		}
	}
}
