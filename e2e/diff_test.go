package e2e

// TestDifferential syncs the same trees with rsync (the reference; rclone
// for the cases where rclone's semantics are the documented ones) and with
// xfer in every direction, and compares the results entry by entry: names
// (as bytes), types, contents, link targets, modes, mtimes (ns), hard-link
// groups, allocated blocks, and what was deleted. Every xfer run is run
// twice; the second must change nothing. The cases are in
// diffcases_test.go; the builder and comparer in difftree_test.go; the
// deliberate differences from rsync and rclone in docs/differences.md.
//
// The mapping of invocations (docs/differences.md):
//
//	xfer sync SRC DST             rsync -a --delete-after SRC/ DST/    rclone sync --links --create-empty-src-dirs SRC DST
//	xfer sync --delete=false ...  rsync -a SRC/ DST/
//	xfer copy SRC DST             rsync -a SRC/ DST/                 rclone copy --links --create-empty-src-dirs SRC DST
//	... --hard-links              ... -H
//	a sparse source               ... -S (xfer always keeps holes)
//	--exclude/--include P         the same --exclude/--include P
//	--filter-from FILE            --filter='merge FILE'
//	--checksum                    -c
//	--dry-run                     (xfer's own counts are compared with its real run)
//
// Run one group, case or direction with
// -run 'TestDifferential/names', 'TestDifferential/names/nfc-nfd/peer-peer'.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// side is where one end of a transfer is.
type side int

const (
	sideLocal   side = iota
	sidePeerA        // xfer://A/...
	sidePeerB        // xfer://B/...
	sideCluster      // cl:/... (two agents serving one tree)
)

// diffDirection is one pair of sides, named as in the subtests.
type diffDirection struct {
	name     string
	src, dst side
}

// allDirections are the directions every case runs in by default.
func allDirections() []diffDirection {
	return []diffDirection{
		{"local-local", sideLocal, sideLocal},
		{"local-peer", sideLocal, sidePeerA},
		{"peer-local", sidePeerA, sideLocal},
		{"peer-peer", sidePeerA, sidePeerB},
		{"local-cluster", sideLocal, sideCluster},
		{"cluster-local", sideCluster, sideLocal},
	}
}

// diffCase is one row of the table: two trees, one command, and what is
// known to differ from rsync on purpose.
type diffCase struct {
	name   string
	src    []ent    // the source tree
	dst    []ent    // the destination before the run; nil: it does not exist
	cmd    string   // "sync" (rsync --delete) or "copy"
	flags  []string // given to both xfer and rsync (filters)
	xflags []string // xfer only
	rflags []string // rsync only
	hard   bool     // xfer --hard-links, rsync -H
	sparse bool     // rsync -S (xfer keeps the holes of any sparse source)
	user   bool     // run clients, servers and rsync as an unprivileged user
	dry    bool     // run --dry-run first: nothing changes, counts equal the real run's
	dirs   []string // direction names; nil: all (all but the cluster ones for user cases)

	srcSub   string // SRC is this entry of the source tree rather than the tree
	srcSlash bool   // give SRC with a trailing slash
	dstLink  bool   // DST is a symlink to the directory holding the destination tree
	filters  string // rules for xfer --filter-from / rsync --filter='merge FILE'
	// listFlag FILE is given to both tools, FILE holding listText
	// (--files-from, --exclude-from, --include-from).
	listFlag, listText string

	rclone   []string             // also compare with `rclone ARGS SRC DST` (what rclone keeps)
	adjust   func(ref, pre ftree) // a documented difference: turns rsync's result into xfer's
	exit     *int                 // xfer's exit code where it differs from rsync's on purpose
	lenient  []string             // entries whose own existence and attributes are left unspecified
	notices  []string             // paths xfer must name in a notice on each run
	errPaths []string             // paths xfer must report as failed, once per run
	pathMax  bool                 // entries beyond 3000 bytes: transferred exactly or reported (exit 1)

	// servedModes: a served DST narrows modes by the server's umask (022
	// here) and drops set-uid, set-gid and, on files, sticky bits
	// (docs/security.md); setidPeer: the peers are one started with
	// --umask 000 --allow-setid, which keeps them all, as rsync does.
	servedModes, setidPeer bool

	custom func(t *testing.T, env *diffEnv, d diffDirection, key string) // replaces the standard run
}

// diffEnv is what every case shares: the servers and the binary.
type diffEnv struct {
	base    string // 0755, holds the local trees
	bin     string // the xfer binary, executable by the unprivileged user
	cfg     string // config file defining the cluster remote "cl"
	nobody  *owner
	a, b    *server // peers running as root
	na, nb  *server // peers running as the unprivileged user
	setid   *server // a peer started with --umask 000 --allow-setid
	cluster []*server
	clRoot  string
	slots   chan struct{} // bounds the directions running at once
}

func TestDifferential(t *testing.T) {
	needTool(t, "rsync", "the reference of the differential suite (make deps)")
	env := newDiffEnv(t)
	for _, g := range diffGroups() {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					env.runCase(t, g.name+"-"+c.name, c)
				})
			}
		})
	}
}

func newDiffEnv(t *testing.T) *diffEnv {
	base, err := os.MkdirTemp("", "xfer-diff-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	env := &diffEnv{base: base, slots: make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))}
	if os.Geteuid() == 0 {
		env.nobody = lookupNobody()
	}
	// A copy of the binary that the unprivileged user may run.
	data, err := os.ReadFile(xferBin)
	must(t, err)
	env.bin = filepath.Join(base, "bin", "xfer")
	must(t, os.MkdirAll(filepath.Dir(env.bin), 0o755))
	must(t, os.WriteFile(env.bin, data, 0o755))
	for _, h := range []string{"home", "home-nobody"} {
		must(t, os.Mkdir(filepath.Join(base, h), 0o755))
	}
	if env.nobody != nil {
		must(t, os.Chown(filepath.Join(base, "home-nobody"), env.nobody.uid, env.nobody.gid))
	}
	must(t, os.WriteFile(filepath.Join(base, "rclone.conf"), nil, 0o644))

	root := func(name string, own *owner) string {
		d := filepath.Join(base, name)
		must(t, os.Mkdir(d, 0o755))
		if own != nil {
			must(t, os.Chown(d, own.uid, own.gid))
		}
		return d
	}
	// The root servers let peers keep owners and groups, as an rsync
	// daemon run as root with "uid = root" does, so that an upload
	// compares with rsync -a; TestOwnersServerRefuses covers the default.
	env.a = env.startServer(t, "127.0.0.1", root("peer-a", nil), nil, "--allow-owners")
	env.b = env.startServer(t, "127.0.0.1", root("peer-b", nil), nil, "--allow-owners")
	env.clRoot = root("cluster", nil)
	env.cluster = []*server{
		env.startServer(t, "127.0.0.2", env.clRoot, nil, "--allow-owners"),
		env.startServer(t, "127.0.0.3", env.clRoot, nil, "--allow-owners"),
	}
	// A server that keeps every mode bit a peer asks for.
	env.setid = env.startServer(t, "127.0.0.1", root("peer-setid", nil), nil, "--umask", "000", "--allow-setid")
	if env.nobody != nil {
		env.na = env.startServer(t, "127.0.0.1", root("peer-a-nobody", env.nobody), env.nobody)
		env.nb = env.startServer(t, "127.0.0.1", root("peer-b-nobody", env.nobody), env.nobody)
	}
	env.cfg = filepath.Join(base, "xfer.yaml")
	must(t, os.WriteFile(env.cfg, []byte(fmt.Sprintf("remotes:\n  cl:\n    agents: %s\n", agentList(env.cluster))), 0o644))
	return env
}

// startServer runs `xfer serve` on host:0 with root (and extra flags), as
// own (nil: as root), until the test ends.
func (env *diffEnv) startServer(t *testing.T, host, root string, own *owner, extra ...string) *server {
	t.Helper()
	// An explicit umask, so that what a server narrows does not depend on
	// the umask the tests run with (docs/security.md).
	args := append([]string{"serve", "--listen", host + ":0", "--root", root, "--umask", "022"}, extra...)
	cmd := exec.Command(env.bin, args...)
	cmd.Env = env.environ(own != nil)
	if own != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred(own)}
	}
	s := startServerCmd(t, cmd, root)
	// Registered after s.stop, so it runs first: a server that died during
	// the suite is a failure of its own, with its log.
	t.Cleanup(func() {
		if !s.alive() {
			t.Errorf("xfer serve --root %s (%s) died during the suite (%v):\n%s", root, s.addr, cmd.ProcessState, s.logs)
		}
	})
	return s
}

// lookupNobody is the unprivileged user of the tests, nil if there is none.
func lookupNobody() *owner {
	u, err := osuser.Lookup("nobody")
	if err != nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &owner{uid, gid}
}

func cred(own *owner) *syscall.Credential {
	return &syscall.Credential{Uid: uint32(own.uid), Gid: uint32(own.gid), Groups: []uint32{}}
}

// environ is the environment of every command: no XFER_ settings, a config
// home of the user's own, an empty rclone config.
func (env *diffEnv) environ(unprivileged bool) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "XFER_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") ||
			strings.HasPrefix(kv, "RCLONE_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	home := filepath.Join(env.base, "home")
	if unprivileged {
		home = filepath.Join(env.base, "home-nobody")
	}
	return append(out, "HOME="+home, "XDG_CONFIG_HOME="+home, "RCLONE_CONFIG="+filepath.Join(env.base, "rclone.conf"))
}

// run runs a command (as the unprivileged user when asked) and returns what
// it did; a run that hangs fails the test.
func (env *diffEnv) run(t *testing.T, unprivileged bool, name string, args ...string) result {
	t.Helper()
	return runCmd(t, func(cmd *exec.Cmd) {
		cmd.Env = env.environ(unprivileged)
		cmd.Dir = env.base
		if unprivileged {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred(env.nobody)}
		}
	}, name, args...)
}

// where is one end of a run: the directory on this machine and the
// argument xfer is given for it.
type where struct{ dir, arg string }

// loc places rel (a relative path) on side s; for the unprivileged user the
// peers are the ones running as that user and the directories its own.
func (env *diffEnv) loc(t *testing.T, s side, rel string, c diffCase) where {
	var root string
	var arg func(string) string
	switch s {
	case sideLocal:
		root, arg = env.base, func(p string) string { return filepath.Join(env.base, p) }
	case sidePeerA, sidePeerB:
		srv := env.a
		if s == sidePeerB {
			srv = env.b
		}
		if c.user {
			srv = env.na
			if s == sidePeerB {
				srv = env.nb
			}
		}
		if c.setidPeer {
			srv = env.setid
		}
		root, arg = srv.root, srv.url
	case sideCluster:
		root, arg = env.clRoot, func(p string) string { return "cl:/" + p }
	}
	var own *owner
	if c.user {
		own = env.nobody
	}
	mkdirOwned(t, root, filepath.Dir(rel), own)
	return where{filepath.Join(root, rel), arg(rel)}
}

// mkdirOwned creates root/rel, each directory created owned by own.
func mkdirOwned(t *testing.T, root, rel string, own *owner) {
	p := root
	for _, c := range strings.Split(rel, "/") {
		if c == "." || c == "" {
			continue
		}
		p = filepath.Join(p, c)
		if err := os.Mkdir(p, 0o755); err == nil && own != nil {
			must(t, os.Chown(p, own.uid, own.gid))
		} else if err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
}

func (c diffCase) directions() []diffDirection {
	if c.dirs == nil {
		var out []diffDirection
		for _, d := range allDirections() {
			if !c.user || (d.src != sideCluster && d.dst != sideCluster) {
				out = append(out, d)
			}
		}
		return out
	}
	var out []diffDirection
	for _, name := range c.dirs {
		for _, d := range allDirections() {
			if d.name == name {
				out = append(out, d)
			}
		}
	}
	return out
}

func (c diffCase) owner(env *diffEnv) *owner {
	if c.user {
		return env.nobody
	}
	return nil
}

// buildEnds builds the source and destination trees of c at src and dst.
func (env *diffEnv) buildEnds(t *testing.T, c diffCase, src, dst string) {
	buildTree(t, src, c.src, c.owner(env), "")
	if c.dst == nil {
		return
	}
	if !c.dstLink {
		buildTree(t, dst, c.dst, c.owner(env), "dst:")
		return
	}
	buildTree(t, dst+".real", c.dst, c.owner(env), "dst:")
	must(t, os.Symlink(filepath.Base(dst)+".real", dst))
	if c.user {
		must(t, os.Lchown(dst, env.nobody.uid, env.nobody.gid))
	}
	// The same mtime for the link in every tree.
	ts := []unix.Timespec{unix.NsecToTimespec(defaultMtime("DST")), unix.NsecToTimespec(defaultMtime("DST"))}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// rulesFile writes c's filter rules for both tools to dir/rules.
func (env *diffEnv) rulesFile(t *testing.T, c diffCase, dir string) string {
	return writeCaseFile(t, dir, "rules", c.filters)
}

// listArgs are c's listFlag and the file, written to dir/list, holding
// its listText; none without a listFlag.
func (env *diffEnv) listArgs(t *testing.T, c diffCase, dir string) []string {
	if c.listFlag == "" {
		return nil
	}
	return []string{c.listFlag, writeCaseFile(t, dir, "list", c.listText)}
}

// writeCaseFile writes text to dir/name and returns its path ("" and no
// file for no text).
func writeCaseFile(t *testing.T, dir, name, text string) string {
	if text == "" {
		return ""
	}
	p := filepath.Join(dir, name)
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// srcArg is the SRC of a run on tree top (arg for xfer), or for rsync,
// which needs a trailing slash to mean "the contents of".
func (c diffCase) srcArg(top string, rsync bool) string {
	if c.srcSub != "" {
		top += "/" + c.srcSub
		for _, e := range c.src {
			if e.path == c.srcSub && e.kind == eFile {
				return top // a single file
			}
		}
	}
	if rsync || c.srcSlash {
		return top + "/"
	}
	return top
}

// deletes reports whether c's xfer run deletes extras (rsync --delete).
func (c diffCase) deletes() bool {
	if c.cmd != "sync" {
		return false
	}
	for _, f := range c.xflags {
		if f == "--delete=false" {
			return false
		}
	}
	return true
}

// reference is what rsync (and rclone) made of a case.
type reference struct {
	rsync, rclone ftree
	pre           ftree // the destination before the run
	rsyncCode     int
	rsyncArgs     []string
	rsyncOut      string
}

func (env *diffEnv) reference(t *testing.T, key string, c diffCase) reference {
	dir := filepath.Join(env.base, key, "rsync")
	var own *owner
	if c.user {
		own = env.nobody
	}
	mkdirOwned(t, env.base, filepath.Join(key, "rsync"), own)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	env.buildEnds(t, c, src, dst)
	var ref reference
	ref.pre = scanTree(t, dst)
	// rsync -a [-H] [-S] [--delete-after] [filters] [rsync-only flags] SRC/ DST/
	args := []string{"-a"}
	if c.hard {
		args = append(args, "-H")
	}
	if c.sparse {
		args = append(args, "-S")
	}
	if c.deletes() {
		// Not rsync's default --delete-during: that deletes in a directory
		// before errors listing later ones are known, so whether a listing
		// error withholds a deletion is a race. --delete-after is what xfer
		// does (deletions after all transfers) and deterministic.
		args = append(args, "--delete-after")
	}
	args = append(args, env.listArgs(t, c, filepath.Join(env.base, key))...)
	args = append(args, c.flags...)
	if rules := env.rulesFile(t, c, filepath.Join(env.base, key)); rules != "" {
		args = append(args, "--filter=merge "+rules)
	}
	args = append(args, c.rflags...)
	args = append(args, c.srcArg(src, true), dst+"/")
	r := env.run(t, c.user, "rsync", args...)
	// 23, 24: some files not transferred; 25: --max-delete stopped the
	// deletions.
	if r.code != 0 && r.code != 23 && r.code != 24 && r.code != 25 {
		t.Fatalf("the reference run rsync %q failed: %s", args, r)
	}
	ref.rsync, ref.rsyncCode, ref.rsyncArgs, ref.rsyncOut = scanTree(t, dst), r.code, args, r.stderr
	if c.rclone != nil {
		needRclone(t)
		rdir := filepath.Join(env.base, key, "rclone")
		mkdirOwned(t, env.base, filepath.Join(key, "rclone"), own)
		rsrc, rdst := filepath.Join(rdir, "src"), filepath.Join(rdir, "dst")
		env.buildEnds(t, c, rsrc, rdst)
		// rclone ARGS SRC DST (e.g. sync --links --create-empty-src-dirs)
		rargs := append(append([]string{}, c.rclone...), c.srcArg(rsrc, false), rdst)
		r := env.run(t, c.user, "rclone", rargs...)
		if r.code != 0 {
			t.Fatalf("the reference run rclone %q failed: %s", rargs, r)
		}
		ref.rclone = scanTree(t, rdst)
	}
	return ref
}

// needRclone skips a case that compares with rclone where it is missing.
func needRclone(t *testing.T) {
	needTool(t, "rclone", "the reference this case compares with (make deps)")
}

// xevent is one --json event; the summary's counters are those of
// summary.
type xevent struct {
	summary
	Path   string `json:"path"`
	Action string `json:"action"`
	Error  string `json:"error"`
	Msg    string `json:"msg"`
}

// xrun is one xfer run: its output, events and summary.
type xrun struct {
	result
	events []xevent
	sum    *xevent // nil when the run printed no summary
	bad    string  // why the output is not a --json stream
}

func parseRun(r result) xrun {
	x := xrun{result: r}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l == "" {
			continue
		}
		var e xevent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			x.bad = fmt.Sprintf("stdout line %q is not JSON", l)
			continue
		}
		x.events = append(x.events, e)
		if e.Event == "summary" {
			x.sum = &e
		}
	}
	if x.sum == nil && x.bad == "" {
		x.bad = "no summary event"
	}
	return x
}

// brief is the run's output for a failure message, shortened.
func (x xrun) brief() string {
	s := x.result.String()
	if len(s) > 3000 {
		s = s[:1500] + "\n[...]\n" + s[len(s)-1500:]
	}
	return s
}

// runCase runs c in each of its directions (or its custom check).
func (env *diffEnv) runCase(t *testing.T, key string, c diffCase) {
	if c.user && env.nobody == nil {
		t.Skip("needs root, to run as the unprivileged user nobody")
	}
	var ref reference
	if c.custom == nil {
		ref = env.reference(t, key, c)
	}
	// The directions run at once, as many as env.slots allows over all
	// cases: they spend their time waiting for xfer processes, and -parallel
	// (GOMAXPROCS by default) would leave the cores idle.
	var wg sync.WaitGroup
	for _, d := range c.directions() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env.slots <- struct{}{}
			defer func() { <-env.slots }()
			t.Run(d.name, func(t *testing.T) {
				k := key + "/" + d.name
				if c.custom != nil {
					c.custom(t, env, d, k)
					return
				}
				env.runDirection(t, c, d, k, ref)
			})
		}()
	}
	wg.Wait()
}

// wantExit is the xfer exit code that corresponds to rsync's.
func wantExit(rsyncCode int) int {
	if rsyncCode == 0 {
		return 0
	}
	return 1 // rsync 23/24: some files were not transferred
}

func (env *diffEnv) runDirection(t *testing.T, c diffCase, d diffDirection, key string, ref reference) {
	src := env.loc(t, d.src, key+"/src", c)
	dst := env.loc(t, d.dst, key+"/dst", c)
	env.buildEnds(t, c, src.dir, dst.dir)
	srcBefore := scanTree(t, src.dir)
	pre := scanTree(t, dst.dir)

	args := []string{"--config", env.cfg, c.cmd}
	args = append(args, c.xflags...)
	args = append(args, env.listArgs(t, c, filepath.Join(env.base, key))...)
	args = append(args, c.flags...)
	if rules := env.rulesFile(t, c, filepath.Join(env.base, key)); rules != "" {
		args = append(args, "--filter-from", rules)
	}
	if c.hard {
		args = append(args, "--hard-links")
	}
	args = append(args, "--json", c.srcArg(src.arg, false), dst.arg)
	invocation := "xfer " + strings.Join(args[2:], " ")
	want := wantExit(ref.rsyncCode)
	if c.exit != nil {
		want = *c.exit
	}
	if c.pathMax {
		want = -1 // checked below
	}
	xfer := func(extra ...string) xrun {
		a := append(append([]string{}, args[:len(args)-2]...), extra...)
		return parseRun(env.run(t, c.user, env.bin, append(a, args[len(args)-2:]...)...))
	}
	checkRun := func(what string, x xrun) {
		t.Helper()
		if want >= 0 && x.code != want {
			t.Errorf("%s: exit code %d, want %d (rsync %s exited %d)\n%s", what, x.code, want, strings.Join(ref.rsyncArgs, " "), ref.rsyncCode, x.brief())
		}
		if x.bad != "" {
			t.Errorf("%s: %s\n%s", what, x.bad, x.brief())
		}
		for _, p := range c.notices {
			if !hasEvent(x, "notice", p) {
				t.Errorf("%s: no notice names %s\n%s", what, showPath(p), x.brief())
			}
		}
		for _, p := range c.errPaths {
			if n := countEvents(x, "error", p); n != 1 {
				t.Errorf("%s: %d error events name %s, want 1\n%s", what, n, showPath(p), x.brief())
			}
		}
	}
	skip := func(p string) bool {
		for _, l := range c.lenient {
			if p == l {
				return true
			}
		}
		return c.pathMax && len(p) > 3000
	}

	// A dry run changes nothing; its counts are checked against run 1.
	var dry xrun
	if c.dry {
		dry = xfer("--dry-run")
		checkRun(invocation+" --dry-run", dry)
		if diffs := diffTrees(pre, scanTree(t, dst.dir), cmpOpts{ref: "before", got: "after the dry run", inodes: true}); len(diffs) > 0 {
			t.Errorf("%s --dry-run changed the destination:%s", invocation, report(diffs))
		}
	}

	// Run 1: the result must be rsync's (with the documented differences).
	x1 := xfer()
	checkRun(invocation+" (run 1)", x1)
	got1 := scanTree(t, dst.dir)
	want1 := ref.rsync
	if c.adjust != nil {
		want1 = cloneTree(want1)
		c.adjust(want1, pre)
	}
	if c.servedModes && d.dst != sideLocal && !c.setidPeer {
		want1 = cloneTree(want1)
		narrowModes(want1)
	}
	if diffs := diffTrees(want1, got1, cmpOpts{ref: "rsync", got: "xfer", pre: pre, skip: skip}); len(diffs) > 0 {
		said := ""
		if out := strings.TrimSpace(ref.rsyncOut); out != "" {
			said = "\n  (rsync exited " + strconv.Itoa(ref.rsyncCode) + ": " + strings.ReplaceAll(out, "\n", "; ") + ")"
		}
		t.Errorf("%s differs from rsync %s:%s%s", invocation, strings.Join(ref.rsyncArgs, " "), report(diffs), said)
	}
	if ref.rclone != nil {
		if diffs := diffTrees(ref.rclone, got1, cmpOpts{ref: "rclone", got: "xfer", pre: pre, skip: skip, rclone: true}); len(diffs) > 0 {
			t.Errorf("%s differs from rclone %s:%s", invocation, strings.Join(c.rclone, " "), report(diffs))
		}
	}
	if c.pathMax {
		env.checkPathMax(t, invocation, x1, srcBefore, got1, c)
	}
	if c.dry && dry.sum != nil && x1.sum != nil {
		compareDry(t, invocation, dry, x1, d.src == sideCluster || d.dst == sideCluster)
	}

	// Run 2: nothing to do, nothing changes.
	x2 := xfer()
	checkRun(invocation+" (run 2)", x2)
	if s := x2.sum; s != nil && (s.FilesTransferred != 0 || s.FilesDeleted != 0 || s.DirsCreated != 0) {
		t.Errorf("%s (run 2): files_transferred %d, files_deleted %d, dirs_created %d; want 0 for an unchanged source\n%s",
			invocation, s.FilesTransferred, s.FilesDeleted, s.DirsCreated, x2.brief())
	}
	if diffs := diffTrees(got1, scanTree(t, dst.dir), cmpOpts{ref: "run 1", got: "run 2", inodes: true}); len(diffs) > 0 {
		t.Errorf("%s (run 2) changed the destination:%s", invocation, report(diffs))
	}
	if diffs := diffTrees(srcBefore, scanTree(t, src.dir), cmpOpts{ref: "before", got: "after", inodes: true}); len(diffs) > 0 {
		t.Errorf("%s changed the source:%s", invocation, report(diffs))
	}
}

// checkPathMax: entries beyond 3000 bytes are either at the destination
// exactly as at the source, or missing with exit 1 and an error reported.
func (env *diffEnv) checkPathMax(t *testing.T, invocation string, x xrun, src, got ftree, c diffCase) {
	var missing []string
	for p, n := range src {
		if len(p) <= 3000 {
			continue
		}
		g, ok := got[p]
		if !ok {
			missing = append(missing, p)
			continue
		}
		if g.Type != n.Type || g.Sum != n.Sum || g.Mode != n.Mode || (g.Type != "dir" && g.Mtime != n.Mtime) {
			t.Errorf("%s: %s beyond PATH_MAX differs from the source: %+v, source %+v", invocation, showPath(p), g, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 && (x.code != 1 || countEvents(x, "error", "") == 0) {
		t.Errorf("%s: %d entries beyond PATH_MAX (first %s) not transferred, yet exit %d with %d error events; want them transferred, or reported with exit 1\n%s",
			invocation, len(missing), showPath(missing[0]), x.code, countEvents(x, "error", ""), x.brief())
	}
	if len(missing) == 0 && x.code != 0 {
		t.Errorf("%s: every entry transferred, yet exit %d\n%s", invocation, x.code, x.brief())
	}
}

// compareDry: a dry run's counts and events are the real run's.
// A cluster run's shares create the directories their files need without
// a mkdir event each (docs/differences.md): its summary counts them, so
// for a cluster compareDry (cluster set) compares mkdirs by dirs_created.
func compareDry(t *testing.T, invocation string, dry, real xrun, cluster bool) {
	d, r := dry.sum, real.sum
	for _, f := range []struct {
		name       string
		dry, wreal int64
	}{
		{"files_transferred", d.FilesTransferred, r.FilesTransferred},
		{"bytes_transferred", d.BytesTransferred, r.BytesTransferred},
		{"files_deleted", d.FilesDeleted, r.FilesDeleted},
		{"dirs_created", d.DirsCreated, r.DirsCreated},
	} {
		if f.dry != f.wreal {
			t.Errorf("%s --dry-run: %s %d, the real run's %d", invocation, f.name, f.dry, f.wreal)
		}
	}
	set := func(x xrun) map[string]bool {
		m := map[string]bool{}
		for _, e := range x.events {
			switch e.Event {
			case "mkdir":
				if !cluster {
					m[e.Event+" "+strconv.Quote(e.Path)] = true
				}
			case "transfer", "symlink", "delete", "plan":
				m[e.Event+" "+strconv.Quote(e.Path)] = true
			}
		}
		return m
	}
	ds, rs := set(dry), set(real)
	var only []string
	for k := range ds {
		if !rs[k] {
			only = append(only, "dry run only: "+k)
		}
	}
	for k := range rs {
		if !ds[k] {
			only = append(only, "real run only: "+k)
		}
	}
	sort.Strings(only)
	if len(only) > 0 {
		t.Errorf("%s --dry-run: events differ from the real run's:%s", invocation, report(only))
	}
}

func hasEvent(x xrun, kind, path string) bool { return countEvents(x, kind, path) > 0 }

// countEvents counts events of kind naming path (in their path or
// message); "" counts every event of kind.
func countEvents(x xrun, kind, path string) int {
	n := 0
	for _, e := range x.events {
		if e.Event == kind && (path == "" || e.Path == path || strings.Contains(e.Error, path) || strings.Contains(e.Msg, path)) {
			n++
		}
	}
	return n
}

// narrowModes is what a server started with --umask 022 and without
// --allow-setid makes of the modes a peer asks for.
func narrowModes(tr ftree) {
	for p, n := range tr {
		if n.Type == "symlink" {
			continue
		}
		n.Mode &^= 0o022 | 0o6000
		if n.Type != "dir" {
			n.Mode &^= 0o1000
		}
		tr[p] = n
	}
}

func cloneTree(tr ftree) ftree {
	if tr == nil {
		return nil
	}
	out := ftree{}
	for k, v := range tr {
		out[k] = v
	}
	return out
}
