package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The inspect commands (ls, lsf, size, cat, check) against rclone's of
// the same names, on every kind of location: a local path, a served peer,
// a named remote and a cluster remote (ssh:// in TestInspectSSH).

// inspectFiles is the tree the differential tests list: names with
// spaces, unicode and glob characters, nested and empty directories, an
// empty file and one larger than an OpRead answer.
var inspectFiles = map[string]string{
	"a.txt":                 "alpha\n",
	"with space.txt":        "space",
	"ünïcødé/日本語.txt":       "unicode",
	"deep/a/b/c.txt":        "deep",
	"empty-file":            "",
	"pct%20and#hash*star":   "glob",
	"dir/one":               "1",
	"dir/two":               "22",
	"dir/sub/three":         "333",
	"exactly4096":           strings.Repeat("q", 4096),
	"UPPER/lower/MiXeD.txt": "case",
	"trailing.dot.":         "dot",
}

// inspectTree builds inspectFiles, an empty directory and a 2.5 MiB file
// in a new directory; every mtime is fixed so that listings are stable.
func inspectTree(t *testing.T) string {
	t.Helper()
	dir := fileTree(t, inspectFiles)
	must(t, os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755))
	writeRandom(t, filepath.Join(dir, "big/large.bin"), 5<<19, 7)
	return dir
}

// inspectEnv is a tree and the locations that name it.
type inspectEnv struct {
	dir    string
	agents []*server         // the two peers serving dir
	cfg    string            // config file with the named and cluster remotes
	locs   map[string]string // kind -> location of dir
}

// newInspectEnv serves dir from two read-only peers (the agents of a
// cluster remote; the first is also a plain named remote) and names it
// in every way xfer can.
func newInspectEnv(t *testing.T, dir string) *inspectEnv {
	t.Helper()
	locs, remotes, agents := serveInspect(t, dir, "nodea")
	return &inspectEnv{dir: dir, cfg: writeConfig(t, "remotes:\n"+remotes), locs: locs, agents: agents}
}

// serveInspect serves dir from two read-only peers and returns the
// locations of dir by kind, with the config lines of the remotes NAME
// (the first peer) and NAMEc (the cluster of both) they use, and the
// peers.
func serveInspect(t *testing.T, dir, name string) (map[string]string, string, []*server) {
	t.Helper()
	a := startServer(t, dir, "--read-only")
	b := startServer(t, dir, "--read-only")
	remotes := fmt.Sprintf("  %s:\n    url: xfer://%s\n  %sc:\n    agents: [%s, %s]\n", name, a.addr, name, a.addr, b.addr)
	return map[string]string{"local": dir, "peer": a.url(""), "named": name + ":/", "cluster": name + "c:/"}, remotes, []*server{a, b}
}

// kinds lists the location kinds in a stable order.
func (env *inspectEnv) kinds() []string { return []string{"local", "peer", "named", "cluster"} }

// loc is the location of rel beneath the tree, in kind's form.
func (env *inspectEnv) loc(kind, rel string) string {
	l := env.locs[kind]
	if rel == "" {
		return l
	}
	if kind == "local" {
		return filepath.Join(l, rel)
	}
	return strings.TrimSuffix(l, "/") + "/" + rel
}

// run runs xfer with the env's config, in UTC.
func (env *inspectEnv) run(t *testing.T, args ...string) result {
	t.Helper()
	return xferEnv(t, []string{"TZ=UTC"}, append([]string{"--config", env.cfg}, args...)...)
}

// rclone runs rclone with an empty config, in UTC.
func rclone(t *testing.T, args ...string) result {
	t.Helper()
	needRclone(t)
	cfg := filepath.Join(t.TempDir(), "rclone.conf")
	return runCmd(t, func(c *exec.Cmd) { c.Env = append(baseEnv(t), "TZ=UTC", "RCLONE_CONFIG="+cfg) }, "rclone", args...)
}

// sortedLines is the lines of s, sorted (rclone lists in its own order).
func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	slices.Sort(lines)
	return lines
}

// TestInspectDifferentialRclone: ls, lsf (its formats, -R, --files-only,
// --dirs-only, --separator), size (and --json) and cat (whole, several
// files, a directory, --head, --tail, --offset/--count) print what
// rclone's commands print for the same local tree, on each kind of
// location; each run twice, and the tree is unchanged.
func TestInspectDifferentialRclone(t *testing.T) {
	needRclone(t)
	dir := inspectTree(t)
	before := scanTree(t, dir)
	env := newInspectEnv(t, dir)
	cases := []struct {
		name   string
		sorted bool     // compare sorted lines (rclone's listing order is its own)
		args   []string // after the command; LOC is the tree's location, LOC/x beneath it
	}{
		{"ls", true, []string{"ls", "LOC"}},
		{"ls-sub", true, []string{"ls", "LOC/dir"}},
		{"ls-file", true, []string{"ls", "LOC/a.txt"}},
		{"lsf", true, []string{"lsf", "LOC"}},
		{"lsf-R", true, []string{"lsf", "-R", "LOC"}},
		{"lsf-R-pst", true, []string{"lsf", "-R", "--format", "pst", "LOC"}},
		{"lsf-tsp-sep", true, []string{"lsf", "-R", "--format", "tsp", "--separator", " | ", "LOC"}},
		{"lsf-files-only", true, []string{"lsf", "-R", "--files-only", "LOC"}},
		{"lsf-dirs-only", true, []string{"lsf", "-R", "--dirs-only", "LOC"}},
		{"lsf-file", true, []string{"lsf", "--format", "ps", "LOC/dir/two"}},
		{"lsf-exclude", true, []string{"lsf", "-R", "--exclude", "*.bin", "LOC"}},
		{"ls-exclude", true, []string{"ls", "--exclude", "dir/**", "LOC"}},
		{"size", false, []string{"size", "LOC"}},
		{"size-json", false, []string{"size", "--json", "LOC"}},
		{"size-sub", false, []string{"size", "LOC/dir"}},
		{"size-max-size", false, []string{"size", "--max-size", "3B", "LOC"}},
		{"cat", false, []string{"cat", "LOC/a.txt"}},
		{"cat-large", false, []string{"cat", "LOC/big/large.bin"}},
		{"cat-dir", false, []string{"cat", "LOC/dir/sub"}},
		{"cat-unicode", false, []string{"cat", "LOC/ünïcødé/日本語.txt"}},
		{"cat-head", false, []string{"cat", "--head", "3", "LOC/a.txt"}},
		{"cat-tail", false, []string{"cat", "--tail", "4", "LOC/a.txt"}},
		{"cat-offset-count", false, []string{"cat", "--offset", "1048570", "--count", "20", "LOC/big/large.bin"}},
		{"cat-negative-offset", false, []string{"cat", "--offset", "-3", "LOC/exactly4096"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refArgs := make([]string, len(c.args))
			for i, a := range c.args {
				refArgs[i] = strings.Replace(strings.Replace(a, "LOC/", dir+"/", 1), "LOC", dir, 1)
			}
			ref := rclone(t, refArgs...)
			if ref.code != 0 {
				t.Fatalf("rclone %q: %s", refArgs, ref)
			}
			for _, kind := range env.kinds() {
				args := make([]string, len(c.args))
				for i, a := range c.args {
					switch {
					case strings.HasPrefix(a, "LOC/"):
						args[i] = env.loc(kind, a[4:])
					case a == "LOC":
						args[i] = env.loc(kind, "")
					default:
						args[i] = a
					}
				}
				for run := 1; run <= 2; run++ {
					r := env.run(t, args...)
					if r.code != 0 {
						t.Fatalf("%s (%s), run %d: %s", c.name, kind, run, r)
					}
					got, want := r.stdout, ref.stdout
					if c.sorted {
						got, want = strings.Join(sortedLines(got), "\n"), strings.Join(sortedLines(want), "\n")
					}
					if got != want {
						t.Fatalf("%s (%s), run %d: xfer %q printed\n%.2000q\nrclone %q printed\n%.2000q", c.name, kind, run, args, got, refArgs, want)
					}
				}
			}
		})
	}
	unchanged(t, "the inspect commands", before, dir)
}

// TestInspectHashes: lsf's h field is the BLAKE3 of each file, the digest
// `xfer hash` (b3sum's format) prints, computed by the peer for a peer's
// tree; directories have none.
func TestInspectHashes(t *testing.T) {
	dir := inspectTree(t)
	env := newInspectEnv(t, dir)
	want := map[string]string{}
	for p := range inspectFiles {
		r := xfer(t, "hash", filepath.Join(dir, p))
		if r.code != 0 {
			t.Fatal(r)
		}
		want[p] = strings.Fields(r.stdout)[0]
	}
	for _, kind := range env.kinds() {
		r := env.run(t, "lsf", "-R", "--format", "hp", "--separator", " ", env.loc(kind, ""))
		if r.code != 0 {
			t.Fatalf("%s: %s", kind, r)
		}
		seen := 0
		for _, l := range sortedLines(r.stdout) {
			h, p, _ := strings.Cut(l, " ")
			if strings.HasSuffix(p, "/") {
				if h != "" {
					t.Errorf("%s: directory %s has hash %q", kind, p, h)
				}
				continue
			}
			if w, ok := want[p]; ok {
				seen++
				if h != w {
					t.Errorf("%s: %s: lsf says %s, xfer hash %s", kind, p, h, w)
				}
			}
		}
		if seen != len(want) {
			t.Errorf("%s: lsf listed %d of the %d files:\n%s", kind, seen, len(want), r.stdout)
		}
	}
}

// checkTrees builds a source and a destination that differ in every way
// check reports: same, different content of the same size, different
// size, only in the source (a file and a whole directory), only in the
// destination.
func checkTrees(t *testing.T) (src, dst string) {
	src = fileTree(t, map[string]string{
		"same.txt":          "same",
		"deep/same/x":       "x",
		"content.txt":       "aaaa",
		"size.txt":          "short",
		"only-src.txt":      "s",
		"only-src-dir/f":    "f",
		"ünïcødé/日本語.txt":   "unicode",
		"nested/a/b/differ": "one",
	})
	dst = fileTree(t, map[string]string{
		"same.txt":          "same",
		"deep/same/x":       "x",
		"content.txt":       "aaab",
		"size.txt":          "longer",
		"only-dst.txt":      "d",
		"ünïcødé/日本語.txt":   "unicode",
		"nested/a/b/differ": "two",
		"nested/extra/e":    "e",
	})
	return src, dst
}

// TestCheckDifferentialRclone: check reports (in rclone check's
// --combined form) what rclone check reports on the same trees, between
// every pair of location kinds, with and without --size-only, with a
// filter, with --one-way; identical trees exit 0 and different ones 1, as
// rclone's; --match, --differ, --missing-on-dst, --missing-on-src and
// --error write the files rclone's write; the trees are unchanged.
func TestCheckDifferentialRclone(t *testing.T) {
	needRclone(t)
	src, dst := checkTrees(t)
	bs, bd := scanTree(t, src), scanTree(t, dst)
	sl, sr, _ := serveInspect(t, src, "srcnode")
	dl, dr, _ := serveInspect(t, dst, "dstnode")
	cfg := writeConfig(t, "remotes:\n"+sr+dr)
	kinds := []string{"local", "peer", "named", "cluster"}
	for _, flags := range [][]string{nil, {"--size-only"}, {"--exclude", "nested/**"}, {"--one-way"}} {
		for _, pair := range [][2]string{{src, dst}, {src, src}} {
			ref := rclone(t, append([]string{"check", pair[0], pair[1], "--combined", "-"}, flags...)...)
			if ref.code != 0 && ref.code != 1 {
				t.Fatalf("rclone check: %s", ref)
			}
			for _, sk := range kinds {
				for _, dk := range kinds {
					to := dl[dk]
					if pair[1] == src {
						to = sl[dk]
					}
					args := append([]string{"--config", cfg, "check", sl[sk], to, "--combined", "-", "-q"}, flags...)
					for run := 1; run <= 2; run++ {
						r := xferEnv(t, nil, args...)
						if r.code != ref.code {
							t.Fatalf("xfer %q exited %d, rclone check %d\n%s\nrclone:\n%s", args, r.code, ref.code, r, ref)
						}
						if got, want := sortedLines(r.stdout), sortedLines(ref.stdout); !slices.Equal(got, want) {
							t.Fatalf("xfer %q (run %d) reported\n%s\nrclone check reported\n%s", args, run, strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
					}
				}
			}
		}
	}
	// The report files of one kind each, as rclone's.
	reports := []string{"match", "differ", "missing-on-dst", "missing-on-src", "error"}
	outs := map[string]string{}
	for _, who := range []string{"rclone", "xfer"} {
		d := t.TempDir()
		args := []string{"check", src, dl["peer"]}
		if who == "rclone" {
			args[2] = dst
		}
		for _, r := range reports {
			args = append(args, "--"+r, filepath.Join(d, r))
		}
		res := rclone(t, args...)
		if who == "xfer" {
			res = xferEnv(t, nil, append([]string{"--config", cfg}, args...)...)
		}
		if res.code != 1 {
			t.Fatalf("%s %q: want exit 1:\n%s", who, args, res)
		}
		for _, r := range reports {
			b, err := os.ReadFile(filepath.Join(d, r))
			must(t, err)
			outs[who+" "+r] = strings.Join(sortedLines(string(b)), "\n")
		}
	}
	for _, r := range reports {
		if outs["xfer "+r] != outs["rclone "+r] {
			t.Errorf("--%s: xfer wrote\n%s\nrclone\n%s", r, outs["xfer "+r], outs["rclone "+r])
		}
	}
	unchanged(t, "the inspect commands", bs, src)
	unchanged(t, "the inspect commands", bd, dst)
}

// checkLine is one --json line of xfer check.
type checkLine struct {
	Event        string `json:"event"`
	Time         string `json:"time"`
	Result       string `json:"result"`
	Why          string `json:"why"`
	Path         string `json:"path"`
	PathB64      []byte `json:"path_b64"`
	Identical    int64  `json:"identical"`
	Differ       int64  `json:"differ"`
	MissingOnDst int64  `json:"missing_on_dst"`
	MissingOnSrc int64  `json:"missing_on_src"`
	Errors       int64  `json:"errors"`
	Checksum     bool   `json:"checksum"`
	ExitCode     int    `json:"exit_code"`
}

func checkJSON(t *testing.T, r result) ([]checkLine, checkLine) {
	t.Helper()
	var out []checkLine
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var c checkLine
		if err := json.Unmarshal([]byte(l), &c); err != nil || c.Time == "" {
			t.Fatalf("not a check event: %q\n%s", l, r)
		}
		out = append(out, c)
	}
	sum := out[len(out)-1]
	if sum.Event != "summary" {
		t.Fatalf("last line is not the summary\n%s", r)
	}
	return out[:len(out)-1], sum
}

// TestCheckJSON: --json prints one typed event per file that is not the
// same (result and why) and a summary with the counts and the exit code,
// between a served peer and a local tree in both orders; identical trees
// give no events and exit 0.
func TestCheckJSON(t *testing.T) {
	src, dst := checkTrees(t)
	srv := startServer(t, dst, "--read-only")
	r := xfer(t, "check", src, srv.url(""), "--json")
	if r.code != 1 {
		t.Fatalf("want exit 1:\n%s", r)
	}
	events, sum := checkJSON(t, r)
	got := map[string]string{}
	for _, e := range events {
		if e.Event != "check" {
			t.Errorf("event %q", e.Event)
		}
		got[e.Path] = e.Result + "/" + e.Why
	}
	want := map[string]string{
		"content.txt":       "differ/content",
		"size.txt":          "differ/size",
		"only-src.txt":      "missing_on_dst/",
		"only-src-dir/f":    "missing_on_dst/",
		"only-dst.txt":      "missing_on_src/",
		"nested/a/b/differ": "differ/content",
		"nested/extra/e":    "missing_on_src/",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events\n%v\nwant\n%v", got, want)
	}
	if sum.Identical != 3 || sum.Differ != 3 || sum.MissingOnDst != 2 || sum.MissingOnSrc != 2 || sum.Errors != 0 || !sum.Checksum || sum.ExitCode != 1 {
		t.Errorf("summary %+v", sum)
	}
	// --size-only: the same-size difference goes unnoticed.
	r = xfer(t, "check", srv.url(""), src, "--json", "--size-only")
	if _, sum := checkJSON(t, r); r.code != 1 || sum.Differ != 1 || sum.Checksum || sum.MissingOnDst != 2 {
		t.Errorf("--size-only, reversed: %+v\n%s", sum, r)
	}
	r = xfer(t, "check", dst, srv.url(""), "--json")
	if events, sum := checkJSON(t, r); r.code != 0 || len(events) != 0 || sum.Identical != 8 || sum.ExitCode != 0 {
		t.Errorf("identical trees: %+v\n%s", sum, r)
	}
}

// TestInspectNonUTF8: a name that is not valid UTF-8 is listed byte for
// byte by ls and lsf, read by cat on a peer, and reported by check --json
// with its exact bytes in path_b64.
func TestInspectNonUTF8(t *testing.T) {
	name := "caf\xe9/\xff\xfe.bin"
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "caf\xe9"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, name), []byte("latin1"), 0o644))
	srv := startServer(t, dir, "--read-only")
	for _, loc := range []string{dir, srv.url("")} {
		r := xfer(t, "ls", loc)
		if r.code != 0 || r.stdout != "        6 "+name+"\n" {
			t.Errorf("ls %s: %q\n%s", loc, r.stdout, r)
		}
		r = xfer(t, "lsf", "-R", loc)
		if r.code != 0 || r.stdout != "caf\xe9/\n"+name+"\n" {
			t.Errorf("lsf -R %s: %q\n%s", loc, r.stdout, r)
		}
	}
	r := xfer(t, "cat", srv.url(name))
	if r.code != 0 || r.stdout != "latin1" {
		t.Errorf("cat: %s", r)
	}
	r = xfer(t, "check", dir, srv.url(""), "--json")
	if _, sum := checkJSON(t, r); r.code != 0 || sum.Identical != 1 {
		t.Errorf("check of identical trees: %s", r)
	}
	r = xfer(t, "check", dir, t.TempDir(), "--json")
	events, _ := checkJSON(t, r)
	if r.code != 1 || len(events) != 1 || !bytes.Equal(events[0].PathB64, []byte(name)) || events[0].Path != `caf\xe9/\xff\xfe.bin` || events[0].Result != "missing_on_dst" {
		t.Errorf("check --json of a non-UTF-8 name: %+v\n%s", events, r)
	}
}

// TestInspectErrors: a missing location (local or on a peer), a path
// above the served root, a peer nobody serves, two locations of
// different kinds for check, and bad flags each give one clear line and
// their documented exit code.
func TestInspectErrors(t *testing.T) {
	dir := inspectTree(t)
	srv := startServer(t, dir, "--read-only")
	missing := filepath.Join(dir, "no-such")
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"ls missing", []string{"ls", missing}, 2, missing + " does not exist"},
		{"lsf missing on peer", []string{"lsf", srv.url("no-such")}, 2, srv.url("no-such") + " does not exist"},
		{"size above the root", []string{"size", srv.url("../etc")}, 2, "climbs out of the served root"},
		{"cat missing file", []string{"cat", srv.url("dir/none")}, 2, "does not exist"},
		{"cat of a missing second file", []string{"cat", filepath.Join(dir, "a.txt"), missing}, 2, missing + " does not exist"},
		{"check missing dst", []string{"check", dir, missing}, 2, missing + " does not exist"},
		{"check file against dir", []string{"check", filepath.Join(dir, "a.txt"), dir}, 2, "one is a directory and the other is not"},
		{"check unreachable peer", []string{"check", dir, "xfer://127.0.0.1:1/x", "--connect-timeout", "2s"}, 3, "127.0.0.1:1"},
		{"lsf bad format", []string{"lsf", "--format", "pz", dir}, 2, `unknown field 'z'`},
		{"lsf files and dirs only", []string{"lsf", "--files-only", "--dirs-only", dir}, 2, "do not go together"},
		{"cat head and tail", []string{"cat", "--head", "1", "--tail", "1", filepath.Join(dir, "a.txt")}, 2, "do not go together"},
		{"ls two args", []string{"ls", dir, dir}, 2, "accepts 1 arg"},
		{"lsf --json", []string{"lsf", "--json", dir}, 2, "lsf has no --json output"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := xfer(t, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.msg) {
				t.Errorf("want exit %d and %q:\n%s", c.code, c.msg, r)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n > 0 {
				t.Errorf("more than one line on stderr:\n%s", r)
			}
			noGoInternal(t, c.name, r)
		})
	}
	// check exits 0 for identical trees and 1 otherwise.
	if r := xfer(t, "check", dir, srv.url("")); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "identical") {
		t.Errorf("check of a tree against itself on a peer:\n%s", r)
	}
	other := inspectTree(t)
	must(t, os.WriteFile(filepath.Join(other, "dir/one"), []byte("2"), 0o644))
	if r := xfer(t, "check", srv.url(""), other); r.code != 1 || r.stdout != "* dir/one\n" {
		t.Errorf("check with one file changed:\n%s", r)
	}
}

// TestInspectUnreadable: a directory the lister may not read (the client
// for a local tree, the server for a peer's) is reported once with the
// system's reason, the rest is listed, and the exit code is 1; check
// reports it with "!" and does not call what lies beneath it missing.
func TestInspectUnreadable(t *testing.T) {
	nobody := lookupNobody()
	if os.Geteuid() != 0 || nobody == nil {
		t.Skip("needs root, to run as the unprivileged user nobody")
	}
	base, err := os.MkdirTemp("", "xfer-inspect-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	dir := filepath.Join(base, "tree")
	for p, c := range map[string]string{"ok/f": "f", "locked/secret": "s", "top.txt": "t"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "private.txt"), []byte("p"), 0o600))
	must(t, os.Chmod(filepath.Join(dir, "locked"), 0o000))
	copyOf := filepath.Join(base, "copy")
	must(t, exec.Command("cp", "-a", dir, copyOf).Run())
	must(t, os.Chmod(filepath.Join(copyOf, "locked"), 0o755))
	cmd := exec.Command(xferBin, "serve", "--listen", "127.0.0.1:0", "--root", dir, "--read-only")
	cmd.Env = append(baseEnv(t), "XDG_CONFIG_HOME=/nonexistent")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred(nobody)}
	srv := startServerCmd(t, cmd, dir)
	asNobody := func(args ...string) result {
		return runCmd(t, func(c *exec.Cmd) {
			c.Env = append(baseEnv(t), "XDG_CONFIG_HOME=/nonexistent")
			c.SysProcAttr = &syscall.SysProcAttr{Credential: cred(nobody)}
		}, xferBin, args...)
	}
	for _, loc := range []string{dir, srv.url("")} {
		r := asNobody("ls", loc)
		if r.code != 1 || !slices.Equal(sortedLines(r.stdout), []string{"        1 ok/f", "        1 private.txt", "        1 top.txt"}) {
			t.Errorf("ls %s:\n%s", loc, r)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "locked: cannot read: permission denied") {
			t.Errorf("ls %s: want one line naming locked and the reason:\n%s", loc, r)
		}
		noGoInternal(t, "ls "+loc, r)
		r = asNobody("check", loc, copyOf, "-q")
		if r.code != 1 || r.stdout != "! locked\n! private.txt\n" || !strings.Contains(r.stderr, "private.txt: hashing on") {
			t.Errorf("check %s %s: want \"! locked\" and \"! private.txt\":\n%s", loc, copyOf, r)
		}
		if want := strings.TrimSuffix(loc, "/") + "/locked: cannot read: permission denied\n"; !strings.Contains(r.stderr, want) {
			t.Errorf("check %s %s: want the unreadable directory named as ls names it, %q:\n%s", loc, copyOf, want, r)
		}
		r = asNobody("cat", loc)
		if r.code != 1 || r.stdout != "ft" || strings.Count(r.stderr, "\n") != 2 || !strings.Contains(r.stderr, "private.txt: read private.txt: permission denied") {
			t.Errorf("cat %s: want ok/f and top.txt, and private.txt and locked reported:\n%s", loc, r)
		}
		noGoInternal(t, "cat "+loc, r)
	}
}

// TestInspectSSH: ls, lsf -R with hashes, size, cat and check on an
// ssh:// location, and on a named remote of type ssh, print what they
// print for the same tree as a local path; the far side lists, hashes and
// reads its own files.
func TestInspectSSH(t *testing.T) {
	h := startSSHD(t)
	dir := inspectTree(t)
	before := scanTree(t, dir)
	for _, c := range [][]string{
		{"ls", "LOC"},
		{"lsf", "-R", "--format", "psth", "LOC"},
		{"size", "--json", "LOC"},
		{"cat", "LOC/big/large.bin", "LOC/a.txt"},
		{"cat", "--tail", "5", "LOC/exactly4096"},
		{"check", "LOC", dir, "--combined", "-"},
	} {
		local, far := make([]string, len(c)), make([]string, len(c))
		for i, a := range c {
			local[i] = strings.Replace(a, "LOC", dir, 1)
			far[i] = strings.Replace(a, "LOC", h.url(dir), 1)
		}
		want := xferEnv(t, []string{"TZ=UTC"}, local...)
		got := xferEnv(t, []string{"TZ=UTC"}, append(far, h.flags()...)...)
		if want.code != 0 || got.code != want.code || got.stdout != want.stdout {
			t.Errorf("%q over ssh:\n%.3000s\nlocally:\n%.3000s", c, got, want)
		}
	}
	// A named remote of type ssh: NAME: is its directory, NAME:SUB beneath.
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "TZ=UTC"}
	if r := xferEnv(t, env, "remote", "add", "lab", h.url(dir)); r.code != 0 {
		t.Fatal(r)
	}
	for _, c := range [][2][]string{
		{{"ls", "lab:"}, {"ls", dir}},
		{{"lsf", "-R", "lab:dir"}, {"lsf", "-R", filepath.Join(dir, "dir")}},
		{{"cat", "lab:dir/two"}, {"cat", filepath.Join(dir, "dir/two")}},
		{{"size", "lab:big"}, {"size", filepath.Join(dir, "big")}},
	} {
		got := xferEnv(t, env, append(c[0], h.flags()...)...)
		want := xferEnv(t, env, c[1]...)
		if want.code != 0 || got.code != 0 || got.stdout != want.stdout {
			t.Errorf("%q:\n%s\nwant what %q prints:\n%s", c[0], got, c[1], want)
		}
	}
	other := inspectTree(t)
	must(t, os.Remove(filepath.Join(other, "a.txt")))
	r := xfer(t, append([]string{"check", h.url(dir), other, "-q"}, h.flags()...)...)
	if r.code != 1 || r.stdout != "+ a.txt\n" {
		t.Errorf("check over ssh with a file missing on DST:\n%s", r)
	}
	unchanged(t, "the inspect commands", before, dir)
}

// TestCheckFiles: check of two files (by any names, local or on a peer)
// compares them as one path: exit 0 when their content is the same, 1
// with "* NAME" when it is not, even at the same size.
func TestCheckFiles(t *testing.T) {
	dir := fileTree(t, map[string]string{"a": "same", "b": "same", "c": "sane", "d": "longer"})
	srv := startServer(t, dir, "--read-only")
	for _, c := range []struct {
		src, dst string
		code     int
		out      string
	}{
		{filepath.Join(dir, "a"), srv.url("b"), 0, ""},
		{srv.url("a"), filepath.Join(dir, "c"), 1, "* a\n"},
		{filepath.Join(dir, "a"), filepath.Join(dir, "d"), 1, "* a\n"},
	} {
		r := xfer(t, "check", c.src, c.dst)
		if r.code != c.code || r.stdout != c.out {
			t.Errorf("check %s %s: want exit %d and %q:\n%s", c.src, c.dst, c.code, c.out, r)
		}
	}
}

// TestInspectClusterFailover: a cluster remote's agents serve the same
// tree, so ls and check go on with the next agent when the first does not
// answer.
func TestInspectClusterFailover(t *testing.T) {
	dir := inspectTree(t)
	env := newInspectEnv(t, dir)
	want := env.run(t, "ls", dir)
	env.agents[0].stop()
	r := env.run(t, "ls", env.locs["cluster"])
	if r.code != 0 || r.stdout != want.stdout {
		t.Errorf("ls of the cluster with its first agent down:\n%s", r)
	}
	if r := env.run(t, "check", env.locs["cluster"], dir); r.code != 0 {
		t.Errorf("check of the cluster with its first agent down:\n%s", r)
	}
	if r := env.run(t, "ls", env.locs["peer"]); r.code != 3 {
		t.Errorf("ls of the stopped agent: want exit 3:\n%s", r)
	}
}

// TestReadOp: the read request, as docs/wire-protocol.md describes it,
// from a raw client: a read-only server answers it with the bytes, the
// size and eof; a count out of range, a directory, a fifo, a missing file
// and a path above the root are refused with their kinds.
func TestReadOp(t *testing.T) {
	dir := fileTree(t, map[string]string{"f": "0123456789", "d/g": "g"})
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	srv := startServer(t, dir, "--read-only")
	rc, err := dialRaw(srv.addr, nil)
	must(t, err)
	defer rc.close()
	read := func(path string, off, count int64) map[string]any {
		resp, err := rc.call(map[string]any{"op": "read", "path": path, "read": map[string]any{"offset": off, "count": count}})
		must(t, err)
		return resp
	}
	resp := read("f", 3, 4)
	res, _ := resp["read"].(map[string]any)
	if resp["err"] != nil || res["data"] != "MzQ1Ng==" || res["size"] != float64(10) || res["eof"] != nil {
		t.Errorf("read f 3+4: %v", resp)
	}
	resp = read("f", 8, 100)
	if res, _ := resp["read"].(map[string]any); res["data"] != "ODk=" || res["eof"] != true {
		t.Errorf("read f 8+100: %v", resp)
	}
	for _, c := range []struct {
		path       string
		off, count int64
		kind, msg  string
	}{
		{"f", 0, 0, "", "out of range"},
		{"f", 0, 1<<20 + 1, "", "out of range"},
		{"f", -1, 1, "", "out of range"},
		{"d", 0, 1, "", "not a regular file"},
		{"fifo", 0, 1, "", "not a regular file"},
		{"none", 0, 1, "notfound", "no such file"},
		{"../etc/passwd", 0, 1, "escape", ""},
	} {
		resp := read(c.path, c.off, c.count)
		msg, _ := resp["err"].(string)
		kind, _ := resp["kind"].(string)
		if msg == "" || !strings.Contains(msg, c.msg) || kind != c.kind || resp["read"] != nil {
			t.Errorf("read %s %d+%d: want kind %q and %q, got %v", c.path, c.off, c.count, c.kind, c.msg, resp)
		}
	}
}
