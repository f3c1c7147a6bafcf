package e2e

// The cases of TestDifferential (diff_test.go), by group. Each runs in
// every direction unless it says otherwise; its subtests are
// TestDifferential/GROUP/CASE/DIRECTION.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const mib = 1 << 20

// diffGroup is a named list of cases.
type diffGroup struct {
	name  string
	cases []diffCase
}

func diffGroups() []diffGroup {
	return []diffGroup{
		{"names", nameCases()},
		{"types", typeCases()},
		{"hardlinks", hardLinkCases()},
		{"replace", replaceCases()},
		{"deletions", deletionCases()},
		{"filters", filterCases()},
		{"selection", selectionCases()},
		{"maxtransfer", maxTransferCases()},
		{"dryrun", dryRunCases()},
		{"perms", permCases()},
		{"semantics", semanticsCases()},
		{"safety", safetyCases()},
	}
}

func ns(y int, mo time.Month, d, h, mi, s, n int) int64 {
	return time.Date(y, mo, d, h, mi, s, n, time.UTC).UnixNano()
}

func nameCases() []diffCase {
	n255 := strings.Repeat("n", 251) + ".txt"
	d255 := strings.Repeat("d", 255)
	var deep []string
	for i := 0; i < 60; i++ {
		deep = append(deep, fmt.Sprintf("d%d", i))
	}
	deepPath := strings.Join(deep, "/")
	// 17 components of 250 bytes: 4267 bytes, beyond PATH_MAX (4096).
	var long []string
	for i := 0; i < 17; i++ {
		long = append(long, strings.Repeat(string(rune('a'+i)), 250))
	}
	longPath := strings.Join(long, "/")
	return []diffCase{
		{name: "nonutf8", cmd: "sync",
			src: []ent{
				fileE("caf\xe9", "latin-1 name"), fileE("caf\xc3\xa9", "utf-8 name, same word"),
				dirE("\xff\xfe dir"), fileE("\xff\xfe dir/in\x80side", "inside a non-UTF-8 directory"),
				linkE("link\xe9", "caf\xe9"), linkE("target-nonutf8", "\xff\xfe dir/in\x80side"),
				fileE("ok.txt", "ok"),
			},
			dst: []ent{
				fileE("caf\xe9", "latin-1 name"),
				fileE("caf\xef\xbf\xbd", "U+FFFD is another name"), // what a lossy decoder makes of caf\xe9
				fileE("stale\xfe", "an extra to delete"),
			}},
		{name: "newline", cmd: "sync",
			src: []ent{
				fileE("new\nline", "a"), fileE("\n", "only a newline"), fileE("trailing\n", "t"),
				fileE("dir\nwith/newline/f\n", "b"), linkE("link\n", "new\nline"), fileE("cr\rname", "c"),
			},
			dst: []ent{fileE("stale\nextra", "delete me")}},
		{name: "255-byte", cmd: "sync",
			src: []ent{
				fileE(n255, "255-byte name"), fileE(d255+"/"+n255, "in a 255-byte directory"),
				linkE(strings.Repeat("l", 255), n255), fileE(strings.Repeat("日", 85), "255 bytes of CJK"),
			}},
		{name: "nfc-nfd", cmd: "sync",
			src: []ent{
				fileE("caf\u00e9", "NFC"), fileE("cafe\u0301", "NFD, a different name"),
				fileE("\u00c5ngstr\u00f6m/nfc", "1"), fileE("A\u030angstro\u0308m/nfd", "2"),
			},
			dst: []ent{fileE("caf\u00e9", "NFC"), fileE("ge\u0301ne\u0301", "NFD extra")}},
		{name: "beyond-path-max", cmd: "sync", pathMax: true,
			src: []ent{
				fileE("short", "short path"), fileE(strings.Join(long[:10], "/")+"/mid", "2.5 KB deep"),
				fileE(longPath+"/deepest", "4.3 KB deep"),
			}},
		{name: "odd-ascii", cmd: "sync",
			src: []ent{
				fileE("with space", "1"), fileE(" leading space", "2"), fileE("trailing space ", "3"),
				fileE("-dash", "4"), fileE("--double-dash", "5"), fileE("back\\slash", "6"), fileE("tab\tname", "7"),
				fileE("star*", "8"), fileE("q?", "9"), fileE("[brackets]", "10"), fileE("100%", "11"),
				fileE("semi;colon", "12"), fileE(`quote"s`, "13"), fileE("apos'", "14"), fileE("trailing.dot.", "15"),
				fileE("...", "16"), fileE("..a", "17"), fileE(".hidden", "18"), fileE("~tilde", "19"),
				fileE("a:b", "20"), fileE("#hash", "21"), fileE("$dollar", "22"), fileE("\x01ctrl", "23"),
			}},
		{name: "xfer-prefix", cmd: "sync",
			src: []ent{
				fileE(".xfer-lock", "a user's file named like xfer's old lock"), fileE(".xfer-notes", "n"),
				fileE(".xfer-0123456789ABCDEF.part", "upper-case hex: not xfer's"),
				fileE(".xfer-0123456789abcdef.part.bak", "suffix: not xfer's"), fileE(".xfer-12345.part", "short: not xfer's"),
				fileE(".xfer-", "bare prefix"), fileE(".xfer-dir/.xfer-inner", "i"), linkE(".xfer-link", ".xfer-notes"),
			},
			dst: []ent{fileE(".xfer-stale", "a user's extra: deleted by sync"), fileE(".xfer-lock", "older, longer content")}},
		{name: "xfer-prefix-copy", cmd: "copy",
			src: []ent{fileE(".xfer-new", "new")},
			dst: []ent{fileE(".xfer-keep", "kept by copy"), fileE(".xfer-0123456789abcdef.journal.txt", "kept")}},
		{name: "case", cmd: "sync",
			src: []ent{fileE("README", "upper"), fileE("readme", "lower"), fileE("ReadMe", "mixed"), fileE("Dir/f", "1"), fileE("dir/f", "2")},
			dst: []ent{fileE("README", "upper"), fileE("rEADME", "extra")}},
		{name: "unicode", cmd: "sync",
			src: []ent{
				fileE("日本語/ファイル.txt", "ja"), fileE("emoji 🎉.txt", "e"), fileE("Ωmega", "o"),
				fileE("zero\u200bwidth", "z"), fileE("rtl \u202e txt", "r"), fileE("\ufeffbom", "b"),
			}},
		{name: "deep", cmd: "sync",
			src: []ent{fileE(deepPath+"/bottom", "60 levels down"), fileE(strings.Join(deep[:30], "/")+"/middle", "m")},
			dst: []ent{fileE(strings.Join(deep[:40], "/")+"/extra", "x")}},
	}
}

func typeCases() []diffCase {
	zeros := string(make([]byte, mib))
	modes := []ent{
		fileE("0600", "a").m(0o600), fileE("0640", "b").m(0o640), fileE("0755", "c").m(0o755),
		fileE("0444", "d").m(0o444), fileE("0000", "e").m(0o000), fileE("04755-setuid", "f").m(0o4755),
		fileE("02755-setgid", "g").m(0o2755), fileE("01644-sticky", "s").m(0o1644), dirE("d0700").m(0o700), dirE("d0750").m(0o750),
		fileE("d0555/in", "h"), dirE("d0555").m(0o555), dirE("d1777-sticky").m(0o1777), dirE("d2775-setgid").m(0o2775),
	}

	big := rnd(6*mib+100, 21)
	bigOld := big[:3*mib] + rnd(4096, 22) + big[3*mib+4096:]
	return []diffCase{
		{name: "regular", cmd: "sync",
			src: []ent{
				fileE("1", "x"), fileE("4095", rnd(4095, 1)), fileE("4096", rnd(4096, 2)), fileE("4097", rnd(4097, 3)),
				fileE("64k", rnd(64<<10, 4)), fileE("1m", rnd(mib, 5)), fileE("1m+1", rnd(mib+1, 6)),
				fileE("sub/5m+3", rnd(5*mib+3, 7)),
			},
			dst: []ent{fileE("1m", rnd(mib, 50)).at(ns(2020, 1, 1, 0, 0, 0, 0)), fileE("4096", rnd(100, 51))}},
		{name: "empty-files", cmd: "sync",
			src: []ent{fileE("empty", ""), fileE("a/b/empty", ""), fileE("was-full", "")},
			dst: []ent{fileE("was-full", "not empty before")}},
		{name: "empty-dirs", cmd: "sync",
			src: []ent{dirE("e1"), dirE("e2/e3/e4"), dirE("e5").m(0o700), dirE("e6").at(ns(1999, 9, 9, 9, 9, 9, 999))},
			dst: []ent{dirE("extra-empty"), dirE("e1")}},
		{name: "symlink-file-dir", cmd: "sync",
			src: []ent{
				fileE("f", "file"), dirE("d"), fileE("d/in", "in d"),
				linkE("to-file", "f"), linkE("to-dir", "d"), linkE("to-link", "to-file"), linkE("d/up", "../f"),
			}},
		{name: "symlink-dangling-absolute", cmd: "sync",
			src: []ent{
				linkE("dangling", "nowhere"), linkE("abs-existing", "/etc/hostname"), linkE("abs-dir", "/etc"),
				linkE("abs-dangling", "/nonexistent/x"), linkE("escape", "../../outside"), linkE("self", "self"),
			}},
		{name: "symlink-odd-targets", cmd: "sync",
			src: []ent{
				linkE("slashes", "a//b/./c/"), linkE("long", strings.Repeat("x/", 1000)+"end"),
				linkE("spaces", " t "), linkE("nl", "new\nline"), linkE("nonutf8", "\xff\xfe"), linkE("dotdot", ".."),
			}},
		{name: "symlink-update", cmd: "sync",
			src: []ent{linkE("l1", "new-target"), linkE("l2", "same"), fileE("new-target", "n")},
			dst: []ent{linkE("l1", "old-target").at(ns(2000, 1, 1, 0, 0, 0, 0)), linkE("l2", "same"), fileE("new-target", "n")}},
		{name: "fifo", cmd: "sync",
			// rsync -a (-D) recreates fifos; so does xfer (--specials).
			src: []ent{fifoE("pipe"), fileE("f", "f")}},
		{name: "modes", cmd: "sync", servedModes: true, src: modes},
		{name: "modes-allow-setid", cmd: "sync", setidPeer: true, dirs: []string{"local-peer"}, src: modes},
		{name: "mtimes", cmd: "sync",
			src: []ent{
				fileE("epoch+1ns", "a").at(1), fileE("y2100", "b").at(ns(2100, 1, 1, 0, 0, 0, 999999999)),
				fileE("pre-1970", "c").at(ns(1969, 7, 20, 20, 17, 40, 123456789)), fileE("now-ish", "d").at(ns(2025, 5, 5, 5, 5, 5, 5)),
				linkE("link", "a").at(ns(2011, 11, 11, 11, 11, 11, 111111111)),
				fileE("d1/d2/f", "e"), dirE("d1/d2").at(ns(2003, 3, 3, 3, 3, 3, 3)), dirE("d1").at(ns(2002, 2, 2, 2, 2, 2, 2)),
			}},
		// rsync -a as root keeps owners (-o -g), and so does xfer when its
		// receiver runs as root (--owners auto).
		{name: "ownership", cmd: "sync",
			src: []ent{fileE("f", "f").by(65534, 65534), fileE("d/g", "g"), dirE("d").by(65534, 0), linkE("l", "f").by(0, 65534)}},
		{name: "top-dir-new", cmd: "sync",
			src: []ent{dirE(".").m(0o700).at(ns(2005, 5, 5, 5, 5, 5, 555)), fileE("f", "f")}},
		{name: "top-dir-existing", cmd: "copy",
			src: []ent{dirE(".").m(0o750).at(ns(2006, 6, 6, 6, 6, 6, 666)), fileE("f", "f")},
			dst: []ent{dirE(".").m(0o755), fileE("other", "o")}},
		{name: "sparse-small", cmd: "sync", sparse: true,
			src: []ent{
				sparseE("64k-two-blocks", 64<<10, span{0, 4096}, span{60 << 10, 4096}),
				sparseE("1m-hole-only", mib), sparseE("1m-tail", mib, span{mib - 4096, 4096}),
				sparseE("300k-head", 300<<10, span{0, 8192}),
			}},
		{name: "sparse-large", cmd: "sync", sparse: true,
			src: []ent{
				sparseE("8m", 8*mib, span{0, 64 << 10}, span{4 * mib, 64 << 10}, span{8*mib - 4096, 4096}),
				sparseE("16m-hole-only", 16*mib),
			}},
		{name: "sparse-update", cmd: "sync", sparse: true,
			src: []ent{sparseE("s", 2*mib, span{0, 4096}, span{2*mib - 4096, 4096})},
			dst: []ent{fileE("s", rnd(2*mib, 9)).at(ns(2019, 1, 1, 0, 0, 0, 0))}},
		// A large file with one changed 4 KiB block: xfer sends the changed
		// chunk (--delta), the result is the source's file all the same.
		{name: "delta-update", cmd: "sync",
			src: []ent{fileE("big", big)},
			dst: []ent{fileE("big", bigOld).at(ns(2018, 1, 1, 0, 0, 0, 0))}},
		{name: "zeros-not-sparse", cmd: "sync",
			// Allocated zeros stay allocated: the source has no holes (rsync without -S).
			src: []ent{fileE("zeros-1m", zeros), fileE("zeros-8k", zeros[:8192]), fileE("zeros-2m", zeros+zeros)}},
	}
}

// keepPre is a documented difference: xfer leaves these destination
// entries as they were before the run where rsync changes or deletes them.
func keepPre(paths ...string) func(ref, pre ftree) {
	return func(ref, pre ftree) {
		for _, p := range paths {
			if n, ok := pre[p]; ok {
				ref[p] = n
			} else {
				delete(ref, p)
			}
		}
	}
}

func code(n int) *int { return &n }

func hardLinkCases() []diffCase {
	group := []ent{
		fileE("a", "group one"), hardE("b", "a"), hardE("sub/c", "a"),
		fileE("x", "group two"), hardE("sub/deeper/y", "x"), fileE("solo", "alone"),
	}
	var many []ent
	many = append(many, fileE("m0", "many names"))
	for i := 1; i < 10; i++ {
		many = append(many, hardE(fmt.Sprintf("d%d/m%d", i%3, i), "m0"))
	}
	return []diffCase{
		{name: "groups", cmd: "sync", hard: true, src: group},
		{name: "without-H", cmd: "sync", src: group}, // rsync -a without -H: separate copies
		{name: "join-existing-copies", cmd: "sync", hard: true,
			src: []ent{fileE("a", "same"), hardE("b", "a")},
			dst: []ent{fileE("a", "same"), fileE("b", "same").at(defaultMtime("a"))}},
		{name: "new-link-to-existing", cmd: "sync", hard: true,
			src: []ent{fileE("a", "same"), hardE("new", "a")},
			dst: []ent{fileE("a", "same")}},
		{name: "split-group", cmd: "sync", hard: true,
			src: []ent{fileE("a", "first"), fileE("b", "second!")},
			dst: []ent{fileE("a", "old"), hardE("b", "a")}},
		{name: "changed-group", cmd: "sync", hard: true,
			src: []ent{fileE("a", "new content"), hardE("b", "a")},
			dst: []ent{fileE("a", "old").at(ns(2010, 1, 1, 0, 0, 0, 0)), hardE("b", "a")}},
		{name: "many-names", cmd: "sync", hard: true, src: many},
		{name: "with-exclude", cmd: "sync", hard: true, flags: []string{"--exclude", "b"},
			src: []ent{fileE("a", "g"), hardE("b", "a"), hardE("c", "a")}},
		{name: "large-file", cmd: "sync", hard: true,
			src: []ent{fileE("big", rnd(5*mib+1, 11)), hardE("big-link", "big")}},
	}
}

// replKind is an entry kind for the replacement cases, built at a path.
type replKind struct {
	name, typ string
	at        func(p, side string) []ent
}

func replKinds() []replKind {
	return []replKind{
		{"file", "file", func(p, side string) []ent { return []ent{fileE(p, "a file at the "+side)} }},
		{"dir", "dir", func(p, side string) []ent {
			return []ent{fileE(p+"/inner-"+side, side), fileE(p+"/sub/deeper-"+side, side)}
		}},
		{"emptydir", "dir", func(p, side string) []ent { return []ent{dirE(p)} }},
		{"symlink", "symlink", func(p, side string) []ent { return []ent{linkE(p, "target-file")} }},
		{"dirlink", "symlink", func(p, side string) []ent { return []ent{linkE(p, "target-dir")} }},
		{"dangling", "symlink", func(p, side string) []ent { return []ent{linkE(p, "nowhere-"+side)} }},
		{"fifo", "fifo", func(p, side string) []ent { return []ent{fifoE(p)} }},
	}
}

// replaceCases: for each kind at the destination, one case per command in
// which the source has every other type at paths named X-by-Y.
func replaceCases() []diffCase {
	common := []ent{fileE("target-file", "t"), fileE("target-dir/t", "t")}
	var out []diffCase
	for _, cmd := range []string{"sync", "copy"} {
		for _, x := range replKinds() {
			src := append([]ent{}, common...)
			dst := append([]ent{}, common...)
			for _, y := range replKinds() {
				if y.typ == x.typ {
					continue
				}
				p := "sub/" + x.name + "-by-" + y.name
				src = append(src, y.at(p, "source")...)
				dst = append(dst, x.at(p, "destination")...)
			}
			out = append(out, diffCase{name: cmd + "-" + x.name, cmd: cmd, src: src, dst: dst})
		}
	}
	return out
}

func deletionCases() []diffCase {
	src := []ent{fileE("keep", "k"), fileE("dir/keep", "k"), dirE("empty")}
	extras := []ent{
		fileE("keep", "k"), fileE("dir/keep", "k"), dirE("empty"),
		fileE("extra-file", "x"), fileE("dir/extra", "x"), fileE("extra-dir/a/b/c", "x"), dirE("extra-empty"),
		linkE("extra-link", "keep"), linkE("dir/extra-dirlink", "../dir"), fifoE("extra-fifo"),
		fileE("empty/extra-inside", "x"),
	}
	var deepExtra []ent
	p := "gone"
	for i := 0; i < 12; i++ {
		p += fmt.Sprintf("/l%d", i)
		deepExtra = append(deepExtra, fileE(p+"/f", "x"))
	}
	return []diffCase{
		{name: "sync-extras", cmd: "sync", src: src, dst: extras},
		{name: "copy-keeps-extras", cmd: "copy", src: src, dst: extras},
		{name: "sync-delete-false", cmd: "sync", xflags: []string{"--delete=false"}, src: src, dst: extras},
		{name: "sync-empty-source", cmd: "sync", xflags: []string{"--allow-empty-source"}, src: []ent{dirE(".")}, dst: extras},
		{name: "sync-deep-extras", cmd: "sync", src: src, dst: append(append([]ent{}, src...), deepExtra...)},
		{name: "sync-readonly-extras", cmd: "sync", src: src,
			dst: append(append([]ent{}, src...), fileE("ro/f", "x").m(0o444), fileE("ro/sub/g", "y"), dirE("ro/sub").m(0o555), dirE("ro").m(0o555))},
	}
}

func filterCases() []diffCase {
	tree := []ent{
		fileE("top.txt", "t"), fileE("a.log", "l"), fileE("src/main.c", "c"), fileE("src/main.o", "o"),
		fileE("src/lib/util.c", "u"), fileE("cache/blob", "b"), fileE("deep/cache", "a file named cache"),
		fileE("deep/top.txt", "t2"), fileE("a/x/y/b", "b"), fileE("keep/k1", "k"), fileE("kill/k2", "k"),
		fileE("1.tmp", "n"), fileE("ab.tmp", "n"), fileE("x.bak", "b"),
	}
	extras := append(append([]ent{}, tree...), fileE("old.log", "excluded at the destination: kept"),
		fileE("old.txt", "deleted"), fileE("cache/precious", "kept"))
	return []diffCase{
		{name: "exclude-glob", cmd: "sync", flags: []string{"--exclude", "*.log"}, src: tree, dst: extras},
		{name: "exclude-dir", cmd: "sync", flags: []string{"--exclude", "cache/"}, src: tree, dst: extras},
		{name: "include-only", cmd: "sync", flags: []string{"--include", "*/", "--include", "*.c", "--exclude", "*"}, src: tree},
		{name: "anchored", cmd: "sync", flags: []string{"--exclude", "/top.txt", "--exclude", "/src/lib"}, src: tree, dst: extras},
		{name: "double-star", cmd: "sync", flags: []string{"--exclude", "a/**/b", "--include", "keep/***", "--exclude", "k*"}, src: tree},
		{name: "char-class", cmd: "copy", flags: []string{"--exclude", "[0-9]*", "--exclude", "?.tmp"}, src: tree},
		{name: "filter-from", cmd: "sync", filters: "# comment\n- *.o\n+ /src/***\n- /cache/\n- *.bak\n", src: tree, dst: extras},
		{name: "protected-dir", cmd: "sync", flags: []string{"--exclude", "*.bak"},
			// The destination's directory holds an excluded file: rsync deletes
			// the rest of it, fails to remove it ("cannot delete non-empty
			// directory") and exits 23; xfer keeps it whole, skips the source's
			// file of that name and exits 0 (docs/filters.md, docs/differences.md).
			exit: code(0), adjust: keepPre("x", "x/other"),
			src: []ent{fileE("x", "a file at the source")},
			dst: []ent{fileE("x/keep.bak", "excluded"), fileE("x/other", "deletable")}},
	}
}

// selectionCases: --update, --ignore-existing, --size-only,
// --delete-excluded, --files-from, --exclude-from and --include-from, each
// as rsync has it.
func selectionCases() []diffCase {
	old, mid, fresh := ns(2020, 1, 2, 3, 4, 5, 6), ns(2022, 5, 6, 7, 8, 9, 10), ns(2024, 9, 8, 7, 6, 5, 4)
	src := []ent{
		fileE("same", "same content").at(mid),
		fileE("dst-newer", "source, older").at(old),
		fileE("dst-older", "source, newer").at(fresh),
		fileE("same-size", "AAAA").at(fresh),
		fileE("new/file", "only at the source").at(mid),
		fileE("sub/x.log", "log").at(mid), fileE("sub/keep.c", "c").at(mid),
		fileE("type", "a file at the source").at(mid),
	}
	dst := []ent{
		fileE("same", "same content").at(mid),
		fileE("dst-newer", "destination, newer!").at(fresh),
		fileE("dst-older", "destination, older!").at(old),
		fileE("same-size", "BBBB").at(old),
		fileE("sub/x.log", "old log").at(old), fileE("sub/gone.log", "excluded extra").at(old),
		fileE("sub/gone.txt", "extra").at(old), fileE("cache/blob", "excluded dir").at(old),
		dirE("type"),
	}
	return []diffCase{
		{name: "update", cmd: "sync", flags: []string{"--update"}, src: src, dst: dst},
		{name: "update-short", cmd: "copy", flags: []string{"-u"}, src: src, dst: dst},
		{name: "ignore-existing", cmd: "sync", flags: []string{"--ignore-existing"}, src: src, dst: dst},
		{name: "size-only", cmd: "sync", flags: []string{"--size-only"}, src: src, dst: dst},
		{name: "delete-excluded", cmd: "sync", flags: []string{"--delete-excluded", "--exclude", "*.log", "--exclude", "cache/"}, src: src, dst: dst},
		{name: "files-from", cmd: "copy", listFlag: "--files-from", listText: "# the list\nsame\n\n/new/file\n./sub/keep.c\ndst-older\nmissing-file\n",
			// rsync names the listed file that is missing and exits 23; xfer
			// lists the tree, so a listed path it lacks is simply not there
			// (docs/differences.md).
			exit: code(0), src: src, dst: dst},
		{name: "exclude-from", cmd: "sync", listFlag: "--exclude-from", listText: "# patterns\n*.log\n;c\n\ncache/\n", src: src, dst: dst},
		{name: "include-from", cmd: "sync", listFlag: "--include-from", listText: "*/\n*.c\nsame\n", flags: []string{"--exclude", "*"}, src: src, dst: dst},
	}
}

func dryRunCases() []diffCase {
	src := []ent{fileE("a", "a"), fileE("d/b", "b"), linkE("l", "a"), dirE("e"), fileE("changed", "new content")}
	return []diffCase{
		{name: "new-destination", cmd: "sync", dry: true, src: src},
		{name: "changes-and-deletions", cmd: "sync", dry: true, src: src,
			dst: []ent{fileE("a", "a"), fileE("changed", "old").at(ns(2001, 1, 1, 0, 0, 0, 0)), fileE("extra", "x"),
				fileE("extra-dir/f", "x"), fileE("d", "a file where the source has a directory")}},
		{name: "copy-update", cmd: "copy", dry: true, src: src,
			dst: []ent{fileE("changed", "old").at(ns(2001, 1, 1, 0, 0, 0, 0)), fileE("extra", "kept")}},
		{name: "unchanged", cmd: "sync", dry: true, src: src, dst: src},
		{name: "hard-links", cmd: "sync", dry: true, hard: true,
			src: []ent{fileE("a", "g"), hardE("b", "a")}, dst: []ent{fileE("a", "g")}},
	}
}

func permCases() []diffCase {
	private := []ent{dirE(".").m(0o700), fileE("p/secret", "s").m(0o600), dirE("p").m(0o700), fileE("p/q/r", "r").m(0o640), dirE("p/q").m(0o750)}
	readonly := []ent{
		fileE("ro-file", "r").m(0o444), fileE("ro-dir/f", "in a read-only dir").m(0o444),
		fileE("ro-dir/sub/g", "deeper").m(0o400), dirE("ro-dir/sub").m(0o555), dirE("ro-dir").m(0o555),
	}
	roDstSrc := []ent{fileE("ro/f", "new content").m(0o644), dirE("ro").m(0o555)}
	roDstDst := []ent{fileE("ro/f", "old").m(0o644).at(ns(2012, 1, 1, 0, 0, 0, 0)), fileE("ro/gone", "extra"), dirE("ro").m(0o555)}
	roFileSrc := []ent{fileE("f", "new content").m(0o444)}
	roFileDst := []ent{fileE("f", "old").m(0o444).at(ns(2012, 1, 1, 0, 0, 0, 0))}
	modeSrc := []ent{fileE("f", "same").m(0o640), dirE("d").m(0o711)}
	modeDst := []ent{fileE("f", "same").m(0o666), dirE("d").m(0o755)}
	var out []diffCase
	for _, user := range []bool{false, true} {
		who := "root"
		if user {
			who = "user"
		}
		out = append(out,
			diffCase{name: "private-" + who, cmd: "sync", user: user, src: private},
			diffCase{name: "readonly-source-" + who, cmd: "sync", user: user, src: readonly},
			diffCase{name: "readonly-dest-dir-" + who, cmd: "sync", user: user, src: roDstSrc, dst: roDstDst},
			diffCase{name: "readonly-dest-file-" + who, cmd: "sync", user: user, src: roFileSrc, dst: roFileDst},
			diffCase{name: "mode-only-" + who, cmd: "sync", user: user, src: modeSrc, dst: modeDst},
		)
	}
	return append(out,
		diffCase{name: "mtime-only-root", cmd: "sync",
			src: []ent{fileE("f", "same bytes").at(ns(2015, 1, 1, 0, 0, 0, 1))},
			dst: []ent{fileE("f", "same bytes").at(ns(2014, 1, 1, 0, 0, 0, 2))}},
		// As the unprivileged user, unreadable entries are reported and
		// skipped, everything else moves, exit 1 (rsync 23), and a sync
		// deletes nothing (rsync --delete-after: "IO error encountered --
		// skipping file deletion").
		diffCase{name: "unreadable-file-user", cmd: "sync", user: true, errPaths: []string{"secret"},
			src: []ent{fileE("secret", "s").m(0o000), fileE("ok", "o"), fileE("sub/ok2", "o2")},
			dst: []ent{fileE("extra", "kept: the run had errors")}},
		diffCase{name: "unreadable-dir-user", cmd: "sync", user: true, errPaths: []string{"locked"}, lenient: []string{"locked"},
			src: []ent{fileE("locked/f", "f"), dirE("locked").m(0o000), fileE("ok/a", "a"), fileE("z", "z")},
			dst: []ent{fileE("locked/old", "beneath an unreadable source dir: kept"), fileE("extra", "kept: the run had errors")}},
		diffCase{name: "untraversable-dir-user", cmd: "copy", user: true, errPaths: []string{"notrav"}, lenient: []string{"notrav"},
			src: []ent{fileE("notrav/f", "f"), dirE("notrav").m(0o600), fileE("ok", "o")}},
	)
}

func semanticsCases() []diffCase {
	tree := []ent{fileE("file.txt", "f"), fileE("d/g", "g"), linkE("l", "file.txt"), dirE("empty")}
	extras := append(append([]ent{}, tree...), fileE("extra", "x"), fileE("d/extra", "x"))
	syncLinks := []string{"sync", "--links", "--create-empty-src-dirs"}
	copyLinks := []string{"copy", "--links", "--create-empty-src-dirs"}
	return []diffCase{
		// xfer sync SRC DST == rsync -a --delete SRC/ DST/ == rclone sync SRC DST:
		// DST becomes SRC's contents; there is no DST/SRC (rsync's SRC without slash).
		{name: "sync-no-slash", cmd: "sync", src: tree, dst: extras, rclone: syncLinks},
		{name: "sync-trailing-slash", cmd: "sync", srcSlash: true, src: tree, dst: extras, rclone: syncLinks},
		{name: "copy-keeps-extras", cmd: "copy", src: tree, dst: extras, rclone: copyLinks},
		// A single-file SRC lands inside DST: rsync -a SRC/file.txt DST/.
		// DST itself is not a copy of anything: its mtime is when the file
		// arrived, on both sides.
		{name: "single-file-source", cmd: "copy", srcSub: "file.txt", src: tree, rclone: []string{"copy"}, lenient: []string{"."}},
		// A symlink to a directory as SRC is followed: rsync -a SRC/lnk/ DST/,
		// rclone copy SRC/lnk DST.
		{name: "symlinked-source-root", cmd: "copy", srcSub: "lnk",
			src: []ent{fileE("real/x", "x"), fileE("real/sub/y", "y"), linkE("lnk", "real")}, rclone: []string{"copy"}},
		// A DST that is a symlink to a directory: the directory is filled
		// (rsync -a SRC/ DST/ follows DST/), on every side.
		{name: "symlinked-destination", cmd: "sync", dstLink: true, src: tree, dst: []ent{fileE("old", "o")}},
		// Same size and mtime, different bytes: the quick check skips it
		// (rsync -a), --checksum (rsync -c) does not.
		{name: "quick-check", cmd: "copy", src: []ent{fileE("f", "new!")}, dst: []ent{fileE("f", "old!")}},
		{name: "checksum", cmd: "copy", xflags: []string{"--checksum"}, rflags: []string{"-c"},
			src: []ent{fileE("f", "new!")}, dst: []ent{fileE("f", "old!")}},
		// rsync -a replaces a newer destination file too (no -u).
		{name: "destination-newer", cmd: "sync",
			src: []ent{fileE("f", "older source").at(ns(2010, 1, 1, 0, 0, 0, 0))},
			dst: []ent{fileE("f", "newer destination").at(ns(2030, 1, 1, 0, 0, 0, 0))}},
		{name: "overlap", dirs: []string{"local-local", "peer-peer"}, custom: overlapCheck},
		{name: "missing-source", custom: missingSourceCheck},
	}
}

// overlapCheck: `xfer copy SRC SRC/inner` is refused (exit 2) and changes
// nothing, as rclone refuses `rclone sync SRC SRC/inner` ("can't sync or
// move files on overlapping remotes"); rsync has no such check.
func overlapCheck(t *testing.T, env *diffEnv, d diffDirection, key string) {
	c := diffCase{src: []ent{fileE("f", "f"), fileE("inner/g", "g")}}
	s := sideLocal
	if d.src != sideLocal {
		s = sidePeerA // one peer for both ends
	}
	src := env.loc(t, s, key+"/src", c)
	buildTree(t, src.dir, c.src, nil, "")
	before := scanTree(t, src.dir)
	needRclone(t)
	rcSrc := filepath.Join(env.base, key, "rclone")
	buildTree(t, rcSrc, c.src, nil, "")
	// rclone sync SRC SRC/inner
	rc := env.run(t, false, "rclone", "sync", rcSrc, filepath.Join(rcSrc, "inner"))
	if rc.code == 0 || !strings.Contains(rc.stderr, "overlapping") {
		t.Fatalf("rclone sync into its own subdirectory succeeded; the reference changed:\n%s", rc)
	}
	for _, cmd := range []string{"copy", "sync"} {
		for _, dst := range []string{src.arg + "/inner", src.arg + "/inner/new"} {
			x := parseRun(env.run(t, false, env.bin, "--config", env.cfg, cmd, "--json", src.arg, dst))
			if x.code != 2 {
				t.Errorf("xfer %s %s %s: exit %d, want 2 (overlapping source and destination, as rclone refuses)\n%s", cmd, src.arg, dst, x.code, x.brief())
			}
			if diffs := diffTrees(before, scanTree(t, src.dir), cmpOpts{ref: "before", got: "after", inodes: true}); len(diffs) > 0 {
				t.Errorf("xfer %s %s %s changed the tree:%s", cmd, src.arg, dst, report(diffs))
				before = scanTree(t, src.dir)
			}
		}
	}
}

// missingSourceCheck: a missing SRC is a usage error (exit 2) and does not
// create DST. rsync creates DST and exits 23 (docs/differences.md).
func missingSourceCheck(t *testing.T, env *diffEnv, d diffDirection, key string) {
	c := diffCase{}
	ref := filepath.Join(env.base, key, "rsync-dst")
	must(t, os.MkdirAll(filepath.Dir(ref), 0o755))
	r := env.run(t, false, "rsync", "-a", filepath.Join(env.base, key, "nonexistent")+"/", ref+"/")
	if r.code != 23 {
		t.Fatalf("rsync -a MISSING/ DST/: exit %d, want 23; the reference changed:\n%s", r.code, r)
	}
	src := env.loc(t, d.src, key+"/src", c)
	dst := env.loc(t, d.dst, key+"/dst", c)
	for _, cmd := range []string{"copy", "sync"} {
		x := parseRun(env.run(t, false, env.bin, "--config", env.cfg, cmd, "--json", src.arg+"/missing", dst.arg))
		if x.code != 2 {
			t.Errorf("xfer %s MISSING DST: exit %d, want 2 (rsync: 23)\n%s", cmd, x.code, x.brief())
		}
		if tr := scanTree(t, dst.dir); tr != nil {
			t.Errorf("xfer %s MISSING DST created the destination (%d entries); a failed run creates nothing", cmd, len(tr))
		}
	}
}
