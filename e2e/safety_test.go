package e2e

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
	return []diffCase{
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
