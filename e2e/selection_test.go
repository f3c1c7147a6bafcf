package e2e

// --max-transfer against rclone, and the short forms (-n, -c, -u, -v,
// -vv, -P, --stats) of copy and sync. The selection flags that rsync has
// (--update, --ignore-existing, --size-only, --delete-excluded,
// --files-from, --exclude-from, --include-from) are differential cases
// of TestDifferential (selectionCases).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// selectionDirections are the directions of the tests here.
var selectionDirections = []string{"local-local", "local-peer", "peer-local", "peer-peer"}

// maxTransferCases: rclone copy --max-transfer 5M --cutoff-mode MODE (one
// transfer at a time) on six 2 MiB files, and xfer on the same tree.
func maxTransferCases() []diffCase {
	var out []diffCase
	for _, mode := range []string{"hard", "soft", "cautious"} {
		out = append(out, diffCase{name: mode, dirs: selectionDirections,
			custom: func(t *testing.T, env *diffEnv, d diffDirection, key string) { maxTransferCheck(t, env, d, key, mode) }})
	}
	return out
}

// maxTransferFiles is the tree of the --max-transfer cases.
func maxTransferFiles() []ent {
	var files []ent
	for i := 1; i <= 6; i++ {
		files = append(files, fileE(fmt.Sprintf("f%d", i), rnd(2<<20, uint64(i))))
	}
	return files
}

// completeFiles counts the files of tree got that are the source's,
// whole.
func completeFiles(src, got ftree) int {
	n := 0
	for p, s := range src {
		if g, ok := got[p]; ok && s.Type == "file" && g.Type == "file" && g.Sum == s.Sum {
			n++
		}
	}
	return n
}

// maxTransferCheck: xfer stops where rclone stops (the same number of
// whole files, exit 8, a stopped event); a run without the limit then
// finishes the tree (in hard mode resuming the cut file, so it sends less
// than what was left), and a third run changes nothing.
func maxTransferCheck(t *testing.T, env *diffEnv, d diffDirection, key, mode string) {
	limit := []string{"--max-transfer", "5M", "--cutoff-mode", mode}
	rdir := filepath.Join(env.base, key, "rclone")
	buildTree(t, filepath.Join(rdir, "src"), maxTransferFiles(), nil, "")
	rargs := append([]string{"copy", "--transfers", "1", "--checkers", "1"}, limit...)
	rargs = append(rargs, filepath.Join(rdir, "src"), filepath.Join(rdir, "dst"))
	needRclone(t)
	ref := env.run(t, false, "rclone", rargs...)
	if ref.code != 8 {
		t.Fatalf("the reference run rclone %q: exit %d, want 8\n%s", rargs, ref.code, ref)
	}
	srcTree := scanTree(t, filepath.Join(rdir, "src"))
	want := completeFiles(srcTree, scanTree(t, filepath.Join(rdir, "dst")))

	src := env.loc(t, d.src, key+"/src", diffCase{})
	dst := env.loc(t, d.dst, key+"/dst", diffCase{})
	buildTree(t, src.dir, maxTransferFiles(), nil, "")
	run := func(extra ...string) xrun {
		args := append([]string{"--config", env.cfg, "copy", "--json", "--chunk-size", "256K"}, extra...)
		return parseRun(env.run(t, false, env.bin, append(args, src.arg, dst.arg)...))
	}
	x1 := run(limit...)
	if x1.code != 8 || !hasEvent(x1, "stopped", "") || !strings.Contains(x1.stdout, `"stopped":"max-transfer"`) {
		t.Errorf("xfer copy %s: exit %d, want 8 with a stopped event and \"stopped\":\"max-transfer\" in the summary\n%s",
			strings.Join(limit, " "), x1.code, x1.brief())
	}
	if got := completeFiles(srcTree, scanTree(t, dst.dir)); got != want {
		t.Errorf("xfer copy %s left %d whole files, rclone %q %d", strings.Join(limit, " "), got, rargs, want)
	}
	x2 := run()
	if x2.code != 0 || x2.sum == nil {
		t.Fatalf("the run without the limit: exit %d\n%s", x2.code, x2.brief())
	}
	left := int64(6-want) * 2 << 20
	var sum summary
	lines := strings.Split(strings.TrimSpace(x2.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if mode == "hard" && sum.BytesSent >= left {
		t.Errorf("the run after a hard cut sent %d bytes, want less than the %d left: the cut file resumes", sum.BytesSent, left)
	}
	if diffs := diffTrees(scanTree(t, src.dir), scanTree(t, dst.dir), cmpOpts{ref: "source", got: "destination"}); len(diffs) > 0 {
		t.Errorf("after the run without the limit the destination differs from the source:%s", report(diffs))
	}
	if x3 := run(limit...); x3.code != 0 || x3.sum == nil || x3.sum.FilesTransferred != 0 {
		t.Errorf("a third run with the limit: exit %d, want 0 and nothing transferred\n%s", x3.code, x3.brief())
	}
}

// TestShortForms: -n is --dry-run, -c is --checksum, -u is --update;
// -v lists each transferred file and says why the transport was chosen,
// -vv adds debug logs; --stats prints stats lines (stats events with
// --json) and -P prints them off a terminal; bad values of the new flags
// are one-line usage errors. Local to peer and peer to local.
func TestShortForms(t *testing.T) {
	peerRoot := t.TempDir()
	srv := startServer(t, peerRoot)
	for _, dir := range []string{"up", "down"} {
		t.Run(dir, func(t *testing.T) {
			local := t.TempDir()
			srcDir, dstDir := filepath.Join(local, "src"), filepath.Join(peerRoot, dir, "dst")
			srcArg, dstArg := srcDir, srv.url(dir+"/dst")
			if dir == "down" {
				srcDir, dstDir = filepath.Join(peerRoot, dir, "src"), filepath.Join(local, "dst")
				srcArg, dstArg = srv.url(dir+"/src"), dstDir
			}
			buildTree(t, srcDir, []ent{fileE("a", "aaaa").at(ns(2024, 1, 1, 0, 0, 0, 0)), fileE("big", rnd(3<<20, 7))}, nil, "")
			buildTree(t, dstDir, []ent{fileE("a", "bbbb").at(ns(2024, 1, 1, 0, 0, 0, 0))}, nil, "dst:")
			before := scanTree(t, dstDir)

			r := xfer(t, "copy", "-n", srcArg, dstArg)
			if r.code != 0 || !strings.Contains(r.stdout, "create big") {
				t.Errorf("copy -n: want the plan (create big), exit 0\n%s", r)
			}
			if diffs := diffTrees(before, scanTree(t, dstDir), cmpOpts{ref: "before", got: "after -n"}); len(diffs) > 0 {
				t.Errorf("copy -n changed the destination:%s", report(diffs))
			}
			// Same size and mtime: only -c sees that a differs.
			r = xfer(t, "copy", "-v", srcArg, dstArg)
			if r.code != 0 || !strings.Contains(r.stdout, "transferred big") || strings.Contains(r.stdout, "transferred a ") {
				t.Errorf("copy -v: want a line for big only (a looks current)\n%s", r)
			}
			if got := mustReadFile(t, filepath.Join(dstDir, "a")); got != "bbbb" {
				t.Errorf("copy without -c replaced a (%q)", got)
			}
			r = xfer(t, "copy", "-c", "-vv", srcArg, dstArg)
			if r.code != 0 || !strings.Contains(r.stdout, "transferred a ") || !strings.Contains(r.stderr, "level=DEBUG") {
				t.Errorf("copy -c -vv: want a transferred and debug logs on stderr\n%s", r)
			}
			if got := mustReadFile(t, filepath.Join(dstDir, "a")); got != "aaaa" {
				t.Errorf("copy -c left a as %q", got)
			}
			must(t, os.RemoveAll(dstDir))
			r = xfer(t, "copy", "--stats", "100ms", "--bwlimit", "4M", srcArg, dstArg)
			if r.code != 0 || !strings.Contains(r.stdout, "stats: ") || !strings.Contains(r.stdout, " files, ") {
				t.Errorf("copy --stats 100ms: want stats lines\n%s", r)
			}
			must(t, os.RemoveAll(dstDir))
			r = xfer(t, "copy", "--json", "--stats", "100ms", "--bwlimit", "4M", srcArg, dstArg)
			events, _ := jsonRun(t, r)
			stats := 0
			for _, e := range events {
				if e["event"] == "stats" {
					if _, ok := e["elapsed_s"].(float64); !ok {
						t.Errorf("stats event without elapsed_s: %v", e)
					}
					stats++
				}
			}
			if r.code != 0 || stats == 0 {
				t.Errorf("copy --json --stats: %d stats events, exit %d\n%s", stats, r.code, r)
			}
			must(t, os.RemoveAll(dstDir))
			r = xfer(t, "copy", "-P", "--bwlimit", "4M", srcArg, dstArg)
			if r.code != 0 || !strings.Contains(r.stdout, "stats: ") {
				t.Errorf("copy -P off a terminal: want stats lines\n%s", r)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "no-such-list")
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--cutoff-mode", "bogus"}, `--cutoff-mode "bogus": want hard, soft or cautious`},
		{[]string{"--max-transfer", "lots"}, `--max-transfer "lots"`},
		{[]string{"--files-from", missing}, "--files-from " + missing + ": no such file"},
		{[]string{"--exclude-from", missing}, "filter file " + missing + ": no such file or directory"},
		{[]string{"--stats", "5"}, "--stats"},
	} {
		r := xfer(t, append([]string{"copy", t.TempDir(), t.TempDir()}, bad.args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("copy %q: want exit 2 and one line naming %q\n%s", bad.args, bad.want, r)
		}
	}
}

// TestFilesFromStdin: --files-from - reads the list from standard input;
// pulled from a peer, only the listed file (and its directory) arrives,
// and a second run transfers nothing.
func TestFilesFromStdin(t *testing.T) {
	peerRoot := t.TempDir()
	srv := startServer(t, peerRoot)
	buildTree(t, filepath.Join(peerRoot, "src"), []ent{fileE("d/keep", "k"), fileE("d/skip", "s"), fileE("top", "t")}, nil, "")
	dst := filepath.Join(t.TempDir(), "dst")
	pull := func() result {
		return runCmd(t, func(cmd *exec.Cmd) { cmd.Stdin = strings.NewReader("# from stdin\nd/keep\n") },
			xferBin, "sync", "--json", "--files-from", "-", srv.url("src"), dst)
	}
	r := pull()
	_, sum := jsonRun(t, r)
	if r.code != 0 || sum.FilesTransferred != 1 {
		t.Fatalf("sync --files-from -: exit %d, %d files, want 0 and 1\n%s", r.code, sum.FilesTransferred, r)
	}
	got := scanTree(t, dst)
	if _, ok := got["d/keep"]; !ok || len(got) != 3 { // ".", "d", "d/keep"
		t.Errorf("destination holds %d entries, want ., d and d/keep: %v", len(got), got)
	}
	if _, sum := jsonRun(t, pull()); sum.FilesTransferred != 0 {
		t.Errorf("second run transferred %d files, want 0", sum.FilesTransferred)
	}
}

func mustReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}
