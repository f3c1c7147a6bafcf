package e2e

// The tree builder and tree comparer of the differential suite
// (diff_test.go). Both work with file descriptors relative to the tree's
// top (openat, mkdirat, fstatat, ...), so paths longer than PATH_MAX can be
// built and compared, and names are bytes: nothing here decodes them.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/pattern"
)

// entKind is what a tree entry is.
type entKind uint8

const (
	eFile   entKind = iota
	eDir            // a directory (parents of other entries are created implicitly)
	eLink           // a symlink; data is the target, verbatim
	eHard           // a hard link; data is the path of the file it links to
	eFifo           // a named pipe
	eSparse         // a regular file with holes: size bytes, data only in spans
)

// span is a data region of a sparse file.
type span struct{ off, n int64 }

// ent is one entry of a tree to build. Without m the mode is the default
// (0644 files and fifos, 0755 directories); a zero mtime means one derived
// from the path, so that the same path gets the same mtime in every tree
// built from a spec.
type ent struct {
	path    string // slash-separated bytes, relative; "." is the top itself
	kind    entKind
	data    string
	size    int64
	spans   []span
	mode    uint32
	hasMode bool
	mtime   int64
	owner   *owner // nil: the tree's
}

func fileE(p, content string) ent { return ent{path: p, kind: eFile, data: content} }
func dirE(p string) ent           { return ent{path: p, kind: eDir} }
func linkE(p, target string) ent  { return ent{path: p, kind: eLink, data: target} }
func hardE(p, existing string) ent {
	return ent{path: p, kind: eHard, data: existing}
}
func fifoE(p string) ent { return ent{path: p, kind: eFifo} }
func sparseE(p string, size int64, spans ...span) ent {
	return ent{path: p, kind: eSparse, size: size, spans: spans}
}

// m sets the permission bits (with setuid, setgid and sticky).
func (e ent) m(mode uint32) ent { e.mode, e.hasMode = mode, true; return e }

// by sets the owner of the entry.
func (e ent) by(uid, gid int) ent { e.owner = &owner{uid, gid}; return e }

// at sets the mtime, in nanoseconds since the epoch.
func (e ent) at(ns int64) ent { e.mtime = ns; return e }

// defaultMtime is a fixed mtime with a nanosecond part, distinct per path.
func defaultMtime(p string) int64 {
	h := fnv.New64a()
	h.Write([]byte(p))
	x := h.Sum64()
	return time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano() +
		int64(x%5_000_000)*int64(time.Second) + int64(x>>32%999_999_999) + 1
}

// rnd is n deterministic bytes that do not compress, as a file's content.
func rnd(n int, seed uint64) string { return string(pattern.Bytes(n, seed)) }

// owner is who the built tree belongs to; nil keeps the builder's (root).
type owner struct{ uid, gid int }

// builder creates a tree below the directory open as root.
type builder struct {
	t    *testing.T
	root int
	own  *owner
	salt string         // varies the default mtimes of directories
	dirs map[string]ent // every directory to finish, "." included
}

// buildTree creates dir (which must not exist) and the entries in it, in
// order; directory modes and mtimes are applied last, deepest first, so
// that creating entries does not disturb them. A salt gives directories
// (the top included) default mtimes other than those of an unsalted tree
// of the same spec, so that a destination's directories never match the
// source's by accident; files keep theirs.
func buildTree(t *testing.T, dir string, ents []ent, own *owner, salt string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
	must(t, os.Mkdir(dir, 0o700))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	b := &builder{t: t, root: fd, own: own, salt: salt, dirs: map[string]ent{".": dirE(".")}}
	b.chown(fd, "")
	for _, e := range ents {
		b.add(e)
	}
	b.finish()
}

func (b *builder) fail(what, p string, err error) {
	b.t.Helper()
	b.t.Fatalf("building the tree: %s %s: %v", what, showPath(p), err)
}

// chown gives name in dirfd (or dirfd itself when name is "") to own, or
// to the tree's owner.
func (b *builder) chown(dirfd int, name string, own ...*owner) {
	o := b.own
	if len(own) > 0 && own[0] != nil {
		o = own[0]
	}
	if o == nil {
		return
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fchownat(dirfd, name, o.uid, o.gid, flags); err != nil {
		b.fail("chown", name, err)
	}
}

// parent opens the directory holding p, creating missing directories on
// the way; the caller closes the descriptor.
func (b *builder) parent(p string) (int, string) {
	comps := strings.Split(p, "/")
	fd, err := unix.Dup(b.root)
	if err != nil {
		b.fail("dup", p, err)
	}
	for i, c := range comps[:len(comps)-1] {
		sub := strings.Join(comps[:i+1], "/")
		if err := unix.Mkdirat(fd, c, 0o700); err == nil {
			b.chown(fd, c)
			if _, ok := b.dirs[sub]; !ok {
				b.dirs[sub] = dirE(sub)
			}
		} else if !errors.Is(err, unix.EEXIST) {
			b.fail("mkdir", sub, err)
		}
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			b.fail("open", sub, err)
		}
		fd = next
	}
	return fd, comps[len(comps)-1]
}

func (b *builder) add(e ent) {
	if e.path == "." {
		b.dirs["."] = e
		return
	}
	pfd, name := b.parent(e.path)
	defer unix.Close(pfd)
	mtime := e.mtime
	if mtime == 0 {
		mtime = defaultMtime(e.path)
	}
	switch e.kind {
	case eDir:
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			b.fail("mkdir", e.path, err)
		}
		b.chown(pfd, name, e.owner)
		b.dirs[e.path] = e
		return
	case eFile, eSparse:
		fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != nil {
			b.fail("create", e.path, err)
		}
		f := os.NewFile(uintptr(fd), name)
		if e.kind == eFile {
			_, err = f.Write([]byte(e.data))
		} else {
			err = f.Truncate(e.size)
			for i, s := range e.spans {
				if err == nil {
					_, err = f.WriteAt(pattern.Bytes(int(s.n), uint64(i+7)), s.off)
				}
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.fail("write", e.path, err)
		}
		b.chown(pfd, name, e.owner)
		b.chmod(pfd, name, e, 0o644)
	case eLink:
		if err := unix.Symlinkat(e.data, pfd, name); err != nil {
			b.fail("symlink", e.path, err)
		}
		b.chown(pfd, name, e.owner)
	case eHard:
		ofd, oname := b.parent(e.data)
		err := unix.Linkat(ofd, oname, pfd, name, 0)
		unix.Close(ofd)
		if err != nil {
			b.fail("link", e.path, err)
		}
		return // the inode's mtime is the first name's
	case eFifo:
		if err := unix.Mkfifoat(pfd, name, 0o600); err != nil {
			b.fail("mkfifo", e.path, err)
		}
		b.chown(pfd, name, e.owner)
		b.chmod(pfd, name, e, 0o644)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		b.fail("set mtime of", e.path, err)
	}
}

func (b *builder) chmod(dirfd int, name string, e ent, def uint32) {
	mode := def
	if e.hasMode {
		mode = e.mode
	}
	if err := unix.Fchmodat(dirfd, name, mode, 0); err != nil {
		b.fail("chmod", e.path, err)
	}
}

// finish sets every directory's mtime and mode, deepest first.
func (b *builder) finish() {
	var paths []string
	for p := range b.dirs {
		paths = append(paths, p)
	}
	depth := func(p string) int {
		if p == "." {
			return 0
		}
		return strings.Count(p, "/") + 1
	}
	sort.Slice(paths, func(i, j int) bool {
		if di, dj := depth(paths[i]), depth(paths[j]); di != dj {
			return di > dj
		}
		return paths[i] < paths[j]
	})
	for _, p := range paths {
		e := b.dirs[p]
		mtime := e.mtime
		if mtime == 0 {
			mtime = defaultMtime(b.salt + p)
		}
		pfd, name := b.root, "."
		if p != "." {
			pfd, name = b.parent(p)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
		if err := unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			b.fail("set mtime of", p, err)
		}
		b.chmod(pfd, name, e, 0o755)
		if p != "." {
			unix.Close(pfd)
		}
	}
}

// fnode is what the comparer sees of one entry.
type fnode struct {
	Type   string // file, dir, symlink, fifo, other
	Mode   uint32 // st_mode & 07777
	Size   int64
	Sum    string // sha256 of the content (regular files)
	Head   string // the first bytes of the content, for messages
	Target string
	Mtime  int64
	Blocks int64 // st_blocks: allocated 512-byte blocks
	Data   int64 // bytes in data regions (SEEK_DATA/SEEK_HOLE): the rest are holes
	Ino    uint64
	Uid    uint32
	Gid    uint32
}

// ftree is a scanned tree by path ("." is the top).
type ftree map[string]fnode

// scanTree reads the tree at dir without following symlinks below it (a
// top that is a symlink is recorded as one, ".", and followed: "./" is the
// directory it links to). It returns nil if dir does not exist.
func scanTree(t *testing.T, dir string) ftree {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		t.Fatalf("scanning %s: %v", dir, err)
	}
	out := ftree{}
	top := nodeOf(&st)
	if top.Type == "symlink" {
		top.Target, _ = os.Readlink(dir)
		out["."] = top
		if err := unix.Stat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return out
		}
		out["./"] = nodeOf(&st) // the directory the top links to
	} else {
		out["."] = top
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return out
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("scanning %s: %v", dir, err)
	}
	if err := scanDir(fd, "", out); err != nil {
		t.Fatalf("scanning %s: %v", dir, err)
	}
	return out
}

func nodeOf(st *unix.Stat_t) fnode {
	n := fnode{Mode: st.Mode & 0o7777, Size: st.Size, Mtime: st.Mtim.Nano(), Blocks: st.Blocks, Ino: st.Ino, Uid: st.Uid, Gid: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type = "file"
	case unix.S_IFDIR:
		n.Type = "dir"
	case unix.S_IFLNK:
		n.Type = "symlink"
	case unix.S_IFIFO:
		n.Type = "fifo"
	default:
		n.Type = "other"
	}
	return n
}

// scanDir adds the entries of the directory open as fd (closed on return)
// whose path is prefix.
func scanDir(fd int, prefix string, out ftree) error {
	f := os.NewFile(uintptr(fd), prefix)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("listing %s: %w", showPath(prefix), err)
	}
	sort.Strings(names)
	for _, name := range names {
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", showPath(p), err)
		}
		n := nodeOf(&st)
		switch n.Type {
		case "file":
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", showPath(p), err)
			}
			cf := os.NewFile(uintptr(cfd), name)
			h := sha256.New()
			head := make([]byte, 24)
			k, _ := cf.ReadAt(head, 0)
			n.Data, err = dataBytes(cfd, n.Size)
			if err == nil {
				_, err = cf.Seek(0, 0)
			}
			if err == nil {
				_, err = cf.WriteTo(h)
			}
			cf.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", showPath(p), err)
			}
			n.Sum, n.Head = hex.EncodeToString(h.Sum(nil)), string(head[:k])
		case "symlink":
			buf := make([]byte, 8192)
			k, err := unix.Readlinkat(fd, name, buf)
			if err != nil {
				return fmt.Errorf("readlink %s: %w", showPath(p), err)
			}
			n.Target = string(buf[:k])
		case "dir":
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", showPath(p), err)
			}
			out[p] = n
			if err := scanDir(sub, p, out); err != nil {
				return err
			}
			continue
		}
		out[p] = n
	}
	return nil
}

// dataBytes sums the data regions of the open file fd of size bytes.
func dataBytes(fd int, size int64) (int64, error) {
	var sum int64
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		} else if err != nil {
			return 0, err
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return 0, err
		}
		sum += end - start
		off = end
	}
	return sum, nil
}

// showPath quotes p for a message (non-UTF-8 bytes as \x.., newlines as
// \n) with long components shortened.
func showPath(p string) string {
	comps := strings.Split(p, "/")
	for i, c := range comps {
		if len(c) > 40 {
			comps[i] = fmt.Sprintf("%s…(%d bytes)", c[:12], len(c))
		}
	}
	s := strings.Join(comps, "/")
	if len(s) > 300 {
		s = fmt.Sprintf("%s…%s (%d bytes)", s[:120], s[len(s)-120:], len(p))
	}
	return fmt.Sprintf("%+q", s)
}

func showTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// linkMates is, for each regular file whose inode has other names in the
// tree, the sorted list of those names.
func linkMates(tr ftree) map[string][]string {
	byIno := map[uint64][]string{}
	for p, n := range tr {
		if n.Type == "file" {
			byIno[n.Ino] = append(byIno[n.Ino], p)
		}
	}
	out := map[string][]string{}
	for _, ps := range byIno {
		if len(ps) < 2 {
			continue
		}
		sort.Strings(ps)
		for _, p := range ps {
			var others []string
			for _, q := range ps {
				if q != p {
					others = append(others, q)
				}
			}
			out[p] = others
		}
	}
	return out
}

func showMates(m []string) string {
	if len(m) == 0 {
		return "no other name"
	}
	var s []string
	for _, p := range m {
		s = append(s, showPath(p))
	}
	return "linked with " + strings.Join(s, ", ")
}

// cmpOpts says how diffTrees compares.
type cmpOpts struct {
	ref, got string            // names of the two sides in messages ("rsync", "xfer")
	pre      ftree             // the destination before the run, to word deletions
	skip     func(string) bool // paths left out of the comparison
	rclone   bool              // only what rclone keeps: types, contents, link targets, file mtimes
	inodes   bool              // inode numbers too (a rerun must not recreate anything)
}

// onlyOne words an entry that only one side has: w if inGot is false
// (got lacks it), else g; wasThere says the destination had it before the
// run.
func (o cmpOpts) onlyOne(w, g fnode, inGot, wasThere bool) string {
	switch {
	case !inGot && wasThere:
		return fmt.Sprintf("deleted by %s, kept by %s (a %s)", o.got, o.ref, w.Type)
	case !inGot:
		return fmt.Sprintf("missing after %s; %s has a %s", o.got, o.ref, w.Type)
	case wasThere:
		return fmt.Sprintf("kept by %s (a %s), deleted by %s", o.got, g.Type, o.ref)
	default:
		return fmt.Sprintf("a %s after %s, absent after %s", g.Type, o.got, o.ref)
	}
}

// diffTrees lists every difference between want (the reference) and got,
// one line each: path, attribute, got's value and want's.
func diffTrees(want, got ftree, o cmpOpts) []string {
	var out []string
	add := func(p, format string, args ...any) {
		out = append(out, showPath(p)+": "+fmt.Sprintf(format, args...))
	}
	if want == nil || got == nil {
		if (want == nil) != (got == nil) {
			exists := func(tr ftree) string {
				if tr == nil {
					return "does not exist"
				}
				return "exists"
			}
			out = append(out, fmt.Sprintf("the destination %s after %s, %s after %s", exists(got), o.got, exists(want), o.ref))
		}
		return out
	}
	paths := map[string]bool{}
	for p := range want {
		paths[p] = true
	}
	for p := range got {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		if o.skip == nil || !o.skip(p) {
			sorted = append(sorted, p)
		}
	}
	sort.Strings(sorted)
	wm, gm := linkMates(want), linkMates(got)
	for _, p := range sorted {
		w, inW := want[p]
		g, inG := got[p]
		_, wasThere := o.pre[p]
		switch {
		case !inG || !inW:
			add(p, "%s", o.onlyOne(w, g, inG, wasThere))
			continue
		case w.Type != g.Type:
			add(p, "type: %s %s, %s %s", o.got, g.Type, o.ref, w.Type)
			continue
		}
		if w.Type == "file" && (w.Sum != g.Sum || w.Size != g.Size) {
			add(p, "content: %s %d bytes %+q…, %s %d bytes %+q…", o.got, g.Size, g.Head, o.ref, w.Size, w.Head)
		}
		if w.Type == "symlink" && w.Target != g.Target {
			add(p, "link target: %s %+q, %s %+q", o.got, g.Target, o.ref, w.Target)
		}
		if w.Mtime != g.Mtime && (!o.rclone || w.Type == "file") {
			add(p, "mtime: %s %s, %s %s", o.got, showTime(g.Mtime), o.ref, showTime(w.Mtime))
		}
		if o.rclone {
			continue
		}
		if w.Mode != g.Mode && w.Type != "symlink" {
			add(p, "mode: %s %04o, %s %04o", o.got, g.Mode, o.ref, w.Mode)
		}
		if w.Uid != g.Uid || w.Gid != g.Gid {
			add(p, "owner: %s %d:%d, %s %d:%d", o.got, g.Uid, g.Gid, o.ref, w.Uid, w.Gid)
		}
		// Holes must match exactly; st_blocks may differ by the file
		// system's own extent blocks in files over 1 MiB. (A size that
		// differs is reported as content.)
		if d := g.Blocks - w.Blocks; w.Type == "file" && w.Size == g.Size && (w.Data != g.Data || (d != 0 && (w.Size <= 1<<20 || d > 16 || d < -16))) {
			add(p, "allocation (%d bytes): %s %d bytes of data, st_blocks %d; %s %d bytes of data, st_blocks %d",
				w.Size, o.got, g.Data, g.Blocks, o.ref, w.Data, w.Blocks)
		}
		if w.Type == "file" && strings.Join(wm[p], "\x00") != strings.Join(gm[p], "\x00") {
			add(p, "hard links: %s %s; %s %s", o.got, showMates(gm[p]), o.ref, showMates(wm[p]))
		}
		if o.inodes && w.Ino != g.Ino {
			add(p, "recreated (inode %d, was %d)", g.Ino, w.Ino)
		}
	}
	return out
}

// report turns difference lines into one message, at most 40 of them.
func report(lines []string) string {
	const max = 40
	if len(lines) > max {
		lines = append(lines[:max:max], fmt.Sprintf("... and %d more", len(lines)-max))
	}
	return "\n    " + strings.Join(lines, "\n    ")
}
