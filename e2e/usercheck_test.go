package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Defects found by trying the inspect, check and safety features as an
// rsync or rclone user would, each pinned by a test here.

// TestInspectSymlinkSize: lsf sizes a symlink by the length of its
// target, as `rclone lsf -l` does (where rclone names it NAME.rclonelink),
// on a local tree and on a peer's.
func TestInspectSymlinkSize(t *testing.T) {
	needRclone(t)
	dir := fileTree(t, map[string]string{"f": "content"})
	must(t, os.Symlink("a/target/of/17b", filepath.Join(dir, "link")))
	ref := rclone(t, "lsf", "-l", "--format", "ps", dir)
	want := strings.ReplaceAll(ref.stdout, ".rclonelink;", ";")
	if ref.code != 0 || !strings.Contains(want, "link;15\n") {
		t.Fatalf("rclone lsf -l: %s", ref)
	}
	srv := startServer(t, dir, "--read-only")
	for _, loc := range []string{dir, srv.url("")} {
		r := xfer(t, "lsf", "--format", "ps", loc)
		if r.code != 0 || strings.Join(sortedLines(r.stdout), "\n") != strings.Join(sortedLines(want), "\n") {
			t.Errorf("lsf --format ps %s: %q, rclone lsf -l printed %q\n%s", loc, r.stdout, want, r)
		}
	}
}

// TestCheckSummaryCount: check's summary line counts its differences in
// words that fit the number.
func TestCheckSummaryCount(t *testing.T) {
	a := fileTree(t, map[string]string{"f": "1", "g": "2"})
	for _, c := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"f": "1", "g": "2"}, ": identical ("},
		{map[string]string{"f": "1", "g": "x"}, ": 1 difference ("},
		{map[string]string{"f": "y", "g": "x"}, ": 2 differences ("},
	} {
		r := xfer(t, "check", a, fileTree(t, c.files))
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("check: want %q in the summary:\n%s", c.want, r)
		}
	}
}

// TestDeleteExcludedWithoutDelete: sync --delete-excluded with deletions
// turned off (--delete=false, or XFER_DELETE=false) is a contradiction
// that is refused (one line, exit 2) instead of deleting anyway; DST is
// untouched.
func TestDeleteExcludedWithoutDelete(t *testing.T) {
	src := fileTree(t, map[string]string{"keep": "k"})
	dst := fileTree(t, map[string]string{"keep": "k", "extra": "e", "x.log": "l"})
	before := scanTree(t, dst)
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--delete=false"}},
		{[]string{"XFER_DELETE=false"}, nil},
	} {
		r := xferEnv(t, c.env, append([]string{"sync", src, dst, "--delete-excluded", "--exclude", "*.log"}, c.args...)...)
		if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "--delete-excluded deletes at DST and --delete=false says not to") {
			t.Errorf("sync --delete-excluded %q %q: want one line and exit 2:\n%s", c.env, c.args, r)
		}
	}
	if d := diffTrees(before, scanTree(t, dst), cmpOpts{ref: "before", got: "after"}); len(d) > 0 {
		t.Errorf("a refused sync changed DST:\n%s", strings.Join(d, "\n"))
	}
	if r := xfer(t, "sync", src, dst, "--delete-excluded", "--exclude", "*.log", "-q"); r.code != 0 {
		t.Fatalf("sync --delete-excluded: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dst, "x.log")); !os.IsNotExist(err) {
		t.Errorf("sync --delete-excluded kept the excluded x.log: %v", err)
	}
}

// TestInspectTextOnlyRefusesJSON: ls, lsf and cat, whose output is
// rclone's text, refuse --json (and XFER_JSON) with one line and exit 2
// instead of printing text to a script that asked for JSON; size --json
// answers in JSON.
func TestInspectTextOnlyRefusesJSON(t *testing.T) {
	dir := fileTree(t, map[string]string{"f": "content"})
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"ls", "--json", dir}},
		{nil, []string{"lsf", "--json", "-R", dir}},
		{nil, []string{"cat", "--json", filepath.Join(dir, "f")}},
		{[]string{"XFER_JSON=true"}, []string{"ls", dir}},
	} {
		r := xferEnv(t, c.env, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.args[0]+" has no --json output") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%q %q: want one line and exit 2:\n%s", c.env, c.args, r)
		}
		if strings.Contains(r.stdout, "content") || strings.Contains(r.stdout, "f\n") {
			t.Errorf("%q: printed the listing anyway:\n%s", c.args, r)
		}
	}
	if r := xfer(t, "lsf", "--json=false", dir); r.code != 0 || r.stdout != "f\n" {
		t.Errorf("lsf --json=false: %s", r)
	}
	if r := xfer(t, "size", "--json", dir); r.code != 0 || r.stdout != "{\"count\":1,\"bytes\":7,\"sizeless\":0}\n" {
		t.Errorf("size --json: %s", r)
	}
}

// TestCheckJSONFailure: a check --json that cannot finish (a location
// missing, two locations of different kinds, Ctrl-C while a peer hashes)
// still ends in check's own summary, with the exit code, after an error
// event: a script reads the same keys whatever happened.
func TestCheckJSONFailure(t *testing.T) {
	dir := fileTree(t, map[string]string{"f": "1"})
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"check", dir, filepath.Join(dir, "none"), "--json"}, 2},
		{[]string{"check", filepath.Join(dir, "f"), dir, "--json"}, 2},
	} {
		r := xfer(t, c.args...)
		events, sum := checkJSON(t, r)
		if r.code != c.code || sum.ExitCode != c.code || len(events) != 1 || events[0].Event != "error" || !strings.Contains(r.stdout, `"identical":0`) {
			t.Errorf("%q: want an error event and check's summary with exit_code %d:\n%s", c.args, c.code, r)
		}
	}
	// A sparse file large enough that hashing it outlasts the signal.
	big := t.TempDir()
	f, err := os.Create(filepath.Join(big, "huge"))
	must(t, err)
	must(t, f.Truncate(64<<30))
	f.Close()
	srv := startServer(t, big, "--read-only")
	run := startXfer(t, "check", srv.url(""), big, "--json")
	time.Sleep(500 * time.Millisecond)
	must(t, run.cmd.Process.Signal(os.Interrupt))
	r := run.wait(t)
	if _, sum := checkJSON(t, r); r.code != 130 || sum.ExitCode != 130 || !strings.Contains(r.stdout, `"identical":0`) {
		t.Errorf("check --json interrupted: want exit 130 and check's summary:\n%s", r)
	}
}

// TestDryRunOfGuardedSync: a dry run of a sync whose deletions a guard
// refuses (--max-delete, the empty-source guard) lists no deletion and
// counts none, as the real run makes none; where the guard lets them
// through it lists exactly the real run's. Its exit code is the real
// run's, and it changes nothing. Local and peer destinations.
func TestDryRunOfGuardedSync(t *testing.T) {
	srv := startServer(t, t.TempDir())
	srcBase := t.TempDir()
	srcSrv := startServer(t, srcBase) // the source of the peer to peer runs
	for _, c := range []struct {
		name  string
		src   map[string]string
		flags []string
	}{
		{"max-delete", map[string]string{"a": "1"}, []string{"--max-delete", "1"}},
		{"max-delete-enough", map[string]string{"a": "1"}, []string{"--max-delete", "3"}},
		{"empty-source", map[string]string{}, nil},
		{"empty-source-allowed", map[string]string{}, []string{"--allow-empty-source"}},
	} {
		for _, kind := range []string{"local", "peer", "peer-peer"} {
			t.Run(c.name+"/"+kind, func(t *testing.T) {
				src := fileTree(t, c.src)
				if kind == "peer-peer" {
					must(t, os.Rename(src, filepath.Join(srcBase, c.name)))
					src = srcSrv.url(c.name)
				}
				mkDst := func(name string) (string, string) {
					dir := filepath.Join(t.TempDir(), name)
					arg := dir
					if kind != "local" {
						dir, arg = filepath.Join(srv.root, c.name+"-"+kind, name), srv.url(c.name+"-"+kind+"/"+name)
					}
					for _, f := range []string{"a", "x", "d/y"} {
						writeFile(t, filepath.Join(dir, f), "dst "+f, 0o644)
					}
					return dir, arg
				}
				dryDir, dryArg := mkDst("dry")
				_, realArg := mkDst("real")
				before := scanTree(t, dryDir)
				dry := xfer(t, append([]string{"sync", src, dryArg, "--json", "-n"}, c.flags...)...)
				real := xfer(t, append([]string{"sync", src, realArg, "--json"}, c.flags...)...)
				dryEvents, drySum := jsonRun(t, dry)
				realEvents, realSum := jsonRun(t, real)
				deletes := func(events []map[string]any) (out []string) {
					for _, e := range events {
						if e["event"] == "delete" {
							out = append(out, e["path"].(string))
						}
					}
					return out
				}
				if dd, rd := deletes(dryEvents), deletes(realEvents); strings.Join(dd, ",") != strings.Join(rd, ",") {
					t.Errorf("the dry run lists deletions %q, the real run made %q\ndry:\n%s\nreal:\n%s", dd, rd, dry, real)
				}
				if drySum.FilesDeleted != realSum.FilesDeleted || dry.code != real.code {
					t.Errorf("dry run: %d deleted, exit %d; real run: %d deleted, exit %d\ndry:\n%s\nreal:\n%s",
						drySum.FilesDeleted, dry.code, realSum.FilesDeleted, real.code, dry, real)
				}
				if d := diffTrees(before, scanTree(t, dryDir), cmpOpts{ref: "before", got: "after the dry run", inodes: true}); len(d) > 0 {
					t.Errorf("the dry run changed the destination:\n%s", strings.Join(d, "\n"))
				}
			})
		}
	}
}

// TestInspectSymlinkLocation: a location that is a symlink is read the
// same way on a peer as on this machine, and as copy reads such a
// source: a symlink to a directory is followed, a symlink to a file is
// the symlink itself (lsf lists it sized by its target, cat refuses it).
func TestInspectSymlinkLocation(t *testing.T) {
	dir := fileTree(t, map[string]string{"f": "content", "d/g": "gg"})
	must(t, os.Symlink("f", filepath.Join(dir, "flink")))
	must(t, os.Symlink("d", filepath.Join(dir, "dlink")))
	srv := startServer(t, dir, "--read-only")
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"lsf", "--format", "ps", "LOC/flink"}, 0, "flink;1\n"},
		{[]string{"ls", "LOC/flink"}, 0, ""},
		{[]string{"cat", "LOC/flink"}, 1, ""},
		{[]string{"ls", "LOC/dlink"}, 0, "        2 g\n"},
		{[]string{"lsf", "LOC/dlink"}, 0, "g\n"},
	} {
		for _, loc := range []string{dir, srv.url("")} {
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.Replace(a, "LOC/", strings.TrimSuffix(loc, "/")+"/", 1)
			}
			if r := xfer(t, args...); r.code != c.code || r.stdout != c.out {
				t.Errorf("%q: want exit %d and %q:\n%s", args, c.code, c.out, r)
			}
		}
	}
}

// TestQuietWithVerbose: -q and -v on one command line are refused (one
// line, exit 2, nothing copied), as rclone refuses them; -q with
// XFER_VERBOSE from the environment is quiet (the command line wins).
func TestQuietWithVerbose(t *testing.T) {
	src := fileTree(t, map[string]string{"f": "1"})
	dst := filepath.Join(t.TempDir(), "d")
	for _, args := range [][]string{{"-q", "-v"}, {"-vv", "--quiet"}} {
		r := xfer(t, append([]string{"copy", src, dst}, args...)...)
		if r.code != 2 || strings.TrimSpace(r.stderr) != "xfer: -q (--quiet) and -v (--verbose) do not go together: choose one" {
			t.Errorf("copy %q: want one line and exit 2:\n%s", args, r)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Fatalf("copy %q was refused but created %s", args, dst)
		}
	}
	if r := xferEnv(t, []string{"XFER_VERBOSE=1"}, "copy", src, dst, "-q"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("XFER_VERBOSE=1 copy -q: want a quiet run:\n%s", r)
	}
}
