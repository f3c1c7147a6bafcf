package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Safer syncs (issue 16): --max-delete, the empty-source guard and
// --backup-dir/--suffix, against rsync on the same trees in every
// direction (the differential suite runs each case in all of them).

// safetyTrees are a source and a destination holding eleven entries
// more, as rsync counts deletions (extra-dir with a, b and c is four).
func safetyTrees() (src, dst []ent) {
	src = []ent{fileE("keep", "k"), fileE("dir/keep", "k"), dirE("empty")}
	dst = append(append([]ent{}, src...),
		fileE("extra-file", "x"), fileE("dir/extra", "x"), fileE("extra-dir/a/b/c", "x"), dirE("extra-empty"),
		linkE("extra-link", "keep"), linkE("dir/extra-dirlink", "../dir"), fifoE("extra-fifo"),
		fileE("empty/extra-inside", "x"))
	return src, dst
}

// dstPaths lists the paths of a tree's entries (and their parents).
func dstPaths(es []ent) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range es {
		for p := e.path; p != "." && p != ""; p = parentOf(p) {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func parentOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

func safetyCases() []diffCase {
	src, dst := safetyTrees()
	all := dstPaths(dst)
	inSrc := map[string]bool{}
	for _, p := range dstPaths(src) {
		inSrc[p] = true
	}
	var extras []string
	for _, p := range all {
		if !inSrc[p] {
			extras = append(extras, p)
		}
	}
	// The backup case: a changed file, a changed symlink, a file replaced
	// by a directory and a directory by a file, deleted entries (a tree
	// among them), and a backup directory an earlier run left, whose
	// files are neither deleted nor replaced.
	bsrc := []ent{fileE("changed", "new content"), fileE("same", "s"), linkE("link", "same"),
		fileE("was-dir", "now a file"), fileE("was-file/inner", "now a directory"), fileE("sub/changed", "new 2")}
	bdst := []ent{fileE("changed", "old content").at(ns(2003, 1, 1, 0, 0, 0, 0)), fileE("same", "s"), linkE("link", "changed"),
		fileE("was-dir/x", "a file in a directory"), fileE("was-file", "was a file"),
		fileE("sub/changed", "old 2").at(ns(2004, 1, 1, 0, 0, 0, 0)),
		fileE("gone", "deleted"), fileE("gone-dir/a/f", "deleted deep"), linkE("gone-link", "same"),
		fileE(".bak/earlier.old", "a backup of an earlier run"), fileE(".bak/gone.old", "replaced by this run's")}
	backupFlags := []string{"--backup-dir", ".bak", "--suffix", ".old"}
	rsyncBackup := []string{"--backup", "--backup-dir=.bak", "--suffix=.old", "--filter=P /.bak/"}
	// rsync makes the backup directories as it needs them; their times
	// are left unspecified.
	bakDirs := []string{".bak", ".bak/sub", ".bak/was-dir", ".bak/gone-dir", ".bak/gone-dir/a"}
	// A backup directory beneath a directory the source does not have,
	// or has as a file: that directory is kept whole (rsync, protecting
	// the backup directory alone, deletes the rest of it and fails to
	// remove it, "cannot delete non-empty directory").
	asrc := []ent{fileE("a", "new"), fileE("b", "b")}
	adst := []ent{fileE("a", "old").at(ns(2005, 1, 1, 0, 0, 0, 0)), fileE("gone", "g"),
		fileE("old/run0/x", "an earlier run's backup"), fileE("old/run1/y", "this directory's earlier backup")}
	// rsync moves old/run0 into the backup directory; xfer leaves it.
	oldPaths := []string{"old/run0", "old/run0/x", "old/run1/old", "old/run1/old/run0", "old/run1/old/run0/x"}
	ancestorFlags := []string{"--backup-dir", "old/run1"}
	rsyncAncestor := []string{"--backup", "--backup-dir=old/run1", "--filter=P /old/run1/"}
	return []diffCase{
		{name: "backup-dir-ancestor-kept", cmd: "sync", xflags: ancestorFlags, rflags: rsyncAncestor, src: asrc, dst: adst,
			adjust: keepPre(oldPaths...), notices: []string{"old"}, lenient: []string{"old", "old/run1"}},
		{name: "backup-dir-ancestor-replaced", cmd: "sync", xflags: ancestorFlags, rflags: rsyncAncestor,
			src: append(append([]ent{}, asrc...), fileE("old", "a file where the backups are")), dst: adst,
			// After the error xfer deletes nothing (docs/differences.md).
			adjust: keepPre(append([]string{"gone", "old/run1/gone"}, oldPaths...)...), errPaths: []string{"old"}, lenient: []string{"old", "old/run1"}},
		// Within the limit (rsync counts a directory and what is beneath
		// it): both delete everything.
		{name: "max-delete-within", cmd: "sync", xflags: []string{"--max-delete", "11"}, rflags: []string{"--max-delete=11"},
			src: src, dst: dst},
		// One more than the limit: rsync deletes up to it and exits 25;
		// xfer deletes none (the transfers are made) and exits 5.
		{name: "max-delete-exceeded", cmd: "sync", xflags: []string{"--max-delete", "10"}, rflags: []string{"--max-delete=10"},
			src: append(append([]ent{}, src...), fileE("new", "still transferred")), dst: dst,
			exit: code(5), adjust: keepPre(extras...)},
		{name: "max-delete-zero", cmd: "sync", xflags: []string{"--max-delete", "0"}, rflags: []string{"--max-delete=0"},
			src: src, dst: dst, exit: code(5), adjust: keepPre(extras...)},
		// An empty source into a destination that is not: rsync empties
		// it; xfer refuses (exit 5) and deletes nothing.
		{name: "empty-source-refused", cmd: "sync", src: []ent{dirE(".")}, dst: dst,
			exit: code(5), adjust: keepPre(all...)},
		{name: "empty-source-allowed", cmd: "sync", xflags: []string{"--allow-empty-source"}, src: []ent{dirE(".")}, dst: dst},
		{name: "empty-source-max-delete", cmd: "sync", xflags: []string{"--allow-empty-source", "--max-delete", "15"},
			rflags: []string{"--max-delete=15"}, src: []ent{dirE(".")}, dst: dst},
		{name: "backup-dir-sync", cmd: "sync", xflags: backupFlags, rflags: rsyncBackup, src: bsrc, dst: bdst, lenient: bakDirs},
		{name: "backup-dir-copy", cmd: "copy", xflags: backupFlags, rflags: rsyncBackup, src: bsrc, dst: bdst, lenient: bakDirs},
		{name: "backup-dir-nested", cmd: "sync", xflags: []string{"--backup-dir", "./old/run1/"}, rflags: []string{"--backup", "--backup-dir=old/run1", "--filter=P /old/run1/"},
			src: append(append([]ent{}, bsrc...), fileE("old/kept-by-source", "o")), dst: bdst,
			lenient: []string{"old", "old/run1", "old/run1/.bak", "old/run1/sub", "old/run1/was-dir", "old/run1/gone-dir", "old/run1/gone-dir/a"}},
	}
}

// TestSyncGuards: an empty or missing source, and more deletions than
// --max-delete, into a destination that holds entries are refused with
// one line saying why, and nothing at the destination is deleted (the
// transfers of a --max-delete run are still made); --allow-empty-source
// lets an empty source empty the destination. Local to peer and peer to
// local.
func TestSyncGuards(t *testing.T) {
	root := t.TempDir()
	srv := startServer(t, root)
	local := t.TempDir()
	type guardCase struct {
		name   string
		src    []string // files of the source; nil: no source at all
		flags  []string
		code   int
		line   string   // the one line on stderr (a regular expression); "": a summary only
		gone   []string // destination entries deleted
		arrive []string // files that arrive
	}
	cases := []guardCase{
		{name: "empty", src: []string{}, code: 5,
			line: `^xfer: ERROR refusing to delete 3 entries at the destination: the source is empty \(the empty-source guard; --allow-empty-source syncs it anyway\); nothing deleted$`},
		{name: "empty-dry-run", src: []string{}, flags: []string{"--dry-run"}, code: 5,
			line: `^xfer: ERROR refusing to delete 3 entries at the destination: the source is empty .*; nothing would be deleted$`},
		{name: "missing", code: 2, line: `^xfer: ERROR source \S+ does not exist$`},
		{name: "missing-allowed", flags: []string{"--allow-empty-source"}, code: 2, line: `^xfer: ERROR source \S+ does not exist$`},
		{name: "empty-allowed", src: []string{}, flags: []string{"--allow-empty-source"}, gone: []string{"a", "d", "d/b"}},
		{name: "max-delete", src: []string{"a", "new"}, flags: []string{"--max-delete", "1"}, code: 5, arrive: []string{"a", "new"},
			line: `^xfer: ERROR refusing to delete 2 entries at the destination: more than --max-delete 1; nothing deleted$`},
		{name: "max-delete-enough", src: []string{"a", "new"}, flags: []string{"--max-delete", "2"}, gone: []string{"d", "d/b"}, arrive: []string{"a", "new"}},
	}
	for _, dir := range []string{"local-peer", "peer-local"} {
		for _, c := range cases {
			t.Run(dir+"/"+c.name, func(t *testing.T) {
				key := dir + "-" + c.name
				srcDir, dstDir := filepath.Join(local, key, "src"), filepath.Join(root, key, "dst")
				srcArg, dstArg := srcDir, srv.url(key+"/dst")
				if dir == "peer-local" {
					srcDir, dstDir = filepath.Join(root, key, "src"), filepath.Join(local, key, "dst")
					srcArg, dstArg = srv.url(key+"/src"), dstDir
				}
				for _, f := range []string{"a", "d/b"} {
					writeFile(t, filepath.Join(dstDir, f), "destination's "+f, 0o644)
				}
				if c.src != nil {
					must(t, os.MkdirAll(srcDir, 0o755))
				}
				for _, f := range c.src {
					writeFile(t, filepath.Join(srcDir, f), "destination's "+f, 0o644)
				}
				before := scanTree(t, dstDir)
				r := xfer(t, append(append([]string{"sync"}, c.flags...), srcArg, dstArg)...)
				if r.code != c.code {
					t.Fatalf("exit %d, want %d\n%s", r.code, c.code, r)
				}
				lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
				switch {
				case c.line == "" && strings.TrimSpace(r.stderr) != "":
					t.Errorf("stderr, want nothing:\n%s", r.stderr)
				case c.line != "" && (len(lines) != 1 || !regexp.MustCompile(c.line).MatchString(lines[0])):
					t.Errorf("stderr, want one line matching %s:\n%s", c.line, r.stderr)
				}
				after := scanTree(t, dstDir)
				for _, p := range c.gone {
					if _, ok := after[p]; !ok {
						delete(before, p)
					}
				}
				for _, p := range c.arrive {
					if _, ok := after[p]; !ok {
						t.Errorf("%s did not arrive", p)
					}
					delete(after, p)
					delete(before, p)
				}
				// The destination's own attributes follow the source's.
				delete(before, ".")
				delete(after, ".")
				if diffs := diffTrees(before, after, cmpOpts{ref: "before", got: "after", inodes: true}); len(diffs) > 0 {
					t.Errorf("the destination changed:%s", report(diffs))
				}
			})
		}
	}
}

// TestBackupKeepsDelta: a large file replaced under --backup-dir is still
// sent as the chunks that changed (the old file stays in place, hard-linked
// into the backup directory), and the backup holds the old content, in
// both directions between this machine and a peer.
func TestBackupKeepsDelta(t *testing.T) {
	srv := startServer(t, t.TempDir())
	for _, dir := range []string{"local-peer", "peer-local"} {
		t.Run(dir, func(t *testing.T) {
			src, dst, srcArg, dstArg := directionPaths(t, srv, dir)
			f := filepath.Join(src, "big.bin")
			writeRandom(t, f, 8<<20, 61)
			old, err := os.ReadFile(f)
			must(t, err)
			args := []string{"sync", "--chunk-size", "1M", "--backup-dir", ".bak", "--suffix", ".old", "--json", srcArg, dstArg}
			if r := xfer(t, args...); r.code != 0 {
				t.Fatal(r)
			}
			fh, err := os.OpenFile(f, os.O_WRONLY, 0)
			must(t, err)
			_, err = fh.WriteAt([]byte("changed"), 5<<20+7)
			must(t, err)
			must(t, fh.Close())
			r := xfer(t, args...)
			if _, sum := jsonRun(t, r); r.code != 0 || sum.FilesTransferred != 1 || sum.BytesSent != 16<<10 {
				t.Errorf("files_transferred %d, bytes_sent %d; want 1 file and one 16 KiB leaf of a chunk\n%s", sum.FilesTransferred, sum.BytesSent, r)
			}
			cur, err := os.ReadFile(f)
			must(t, err)
			if got, err := os.ReadFile(filepath.Join(dst, "big.bin")); err != nil || !bytes.Equal(got, cur) {
				t.Errorf("the destination does not hold the new content (%v)", err)
			}
			if got, err := os.ReadFile(filepath.Join(dst, ".bak", "big.bin.old")); err != nil || !bytes.Equal(got, old) {
				t.Errorf("the backup does not hold the old content (%v)", err)
			}
		})
	}
}
