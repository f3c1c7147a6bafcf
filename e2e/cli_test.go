package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a config file and returns its path.
func writeConfig(t *testing.T, content string) string { return writePrivate(t, "xfer.yaml", content) }

// goInternal are fragments of Go's own error text that must never reach a
// user: parser packages, viper, context errors.
var goInternal = []string{"strconv.", "While parsing config", "context deadline exceeded", "context canceled",
	"time: invalid duration", "time: missing unit", ": yaml: ", "invalid syntax", "goroutine ", "panic", "stat /", "open /"}

func noGoInternal(t *testing.T, name string, r result) {
	t.Helper()
	for _, frag := range goInternal {
		if strings.Contains(r.stderr, frag) || strings.Contains(r.stdout, frag) {
			t.Errorf("%s: output carries Go-internal text %q\n%s", name, frag, r)
		}
	}
}

// TestExitCodeTable runs one case (or several) per row of the README's exit
// code table and checks the code and the message.
func TestExitCodeTable(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "ro"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "rw"), 0o755))
	a := startServer(t, "", "--export", "ro="+filepath.Join(root, "ro")+":ro", "--export", "rw="+filepath.Join(root, "rw"))
	closed := unusedAddr(t)
	other := fakePeer(t, "HTTP/1.0 400 Bad Request\r\n\r\n", true)

	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	// A directory where the source has the file f: copy never deletes, so
	// that one file fails and the rest (g) is done.
	must(t, os.WriteFile(filepath.Join(src, "g"), []byte("y"), 0o644))
	conflict := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(conflict, "f", "sub"), 0o755))
	fileDst := filepath.Join(t.TempDir(), "afile")
	must(t, os.WriteFile(fileDst, []byte("x"), 0o644))
	badValue := writeConfig(t, "streams: many\n")
	typo := writeConfig(t, "dryrun: true\n")

	tests := []struct {
		row  string // the README row
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"0", "success", nil, []string{"copy", src, t.TempDir()}, 0, ""},
		{"1", "one file failed", nil, []string{"copy", src, conflict}, 1, "stands at the destination"},
		{"2", "bad flag", nil, []string{"copy", "--frobnicate", src, t.TempDir()}, 2, "unknown flag: --frobnicate (see 'xfer copy --help')"},
		{"2", "bad flag value", nil, []string{"copy", src, t.TempDir(), "--streams", "abc"}, 2, `--streams "abc": want a whole number`},
		{"2", "bad argument count", nil, []string{"cas", "rm"}, 2, "see 'xfer cas rm --help'"},
		{"2", "unknown command", nil, []string{"frobnicate"}, 2, `unknown command "frobnicate" for "xfer"`},
		{"2", "bad XFER_ value", []string{"XFER_RETRIES=abc"}, []string{"copy", src, t.TempDir()}, 2, `XFER_RETRIES="abc": want a whole number`},
		{"2", "bad config value", nil, []string{"--config", badValue, "copy", src, t.TempDir()}, 2, `key "streams": "many": want a whole number`},
		{"2", "unknown config key", nil, []string{"--config", typo, "copy", src, t.TempDir()}, 2, `unknown key "dryrun": it is not a flag of any xfer command (did you mean "dry-run"?)`},
		{"2", "unknown remote", nil, []string{"copy", src, "nodeZ:/x"}, 2, `unknown remote "nodeZ"`},
		{"2", "missing source", nil, []string{"copy", "/nonexistent/xfer-src", t.TempDir()}, 2, "does not exist"},
		{"2", "missing source, sync --watch", nil, []string{"sync", "--watch", "/nonexistent/xfer-src", t.TempDir()}, 2, "source /nonexistent/xfer-src does not exist"},
		{"2", "destination not a directory", nil, []string{"copy", src, fileDst}, 2, "not a directory"},
		{"2", "port out of range", nil, []string{"copy", src, "xfer://127.0.0.1:99999/x"}, 2, "the port must be a number from 1 to 65535"},
		{"2", "path escapes the root", nil, []string{"copy", src, a.url("rw/../../etc")}, 2, "climbs out"},
		{"2", "unknown export", nil, []string{"copy", src, a.url("nope/x")}, 2, `no export named "nope"`},
		{"2", "read-only export", nil, []string{"copy", src, a.url("ro/x")}, 2, "the export is read-only"},
		// The port a.addr is taken (by the server a): the system's reason, without Go's "listen tcp ...: bind:".
		{"2", "listen address in use", nil, []string{"serve", "--listen", a.addr, "--root", t.TempDir()}, 2, "listen on " + a.addr + ": address already in use"},
		{"2", "metrics address in use", nil, []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", a.addr, "--root", t.TempDir()}, 2,
			"--metrics-listen " + a.addr + ": address already in use"},
		{"2", "daemon metrics address in use", nil, []string{"daemon", "--socket", filepath.Join(t.TempDir(), "m.sock"), "--cas", t.TempDir(), "--metrics-listen", a.addr}, 2,
			"--metrics-listen " + a.addr + ": address already in use"},
		{"3", "connection refused", nil, []string{"copy", src, "xfer://" + closed + "/x"}, 3, "cannot connect"},
		{"3", "not an xfer server", nil, []string{"copy", src, "xfer://" + other + "/x"}, 3, "not an xfer server"},
	}
	for _, tt := range tests {
		r := xferEnv(t, tt.env, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("row %s, %s: want exit %d and %q\n%s", tt.row, tt.name, tt.code, tt.msg, r)
		}
		noGoInternal(t, tt.name, r)
	}
	if _, err := os.Stat(filepath.Join(conflict, "g")); err != nil {
		t.Errorf("exit 1 must mean the rest was done: %v", err)
	}
}

// settingsCase is a sync given settings from each source: variables added
// to the environment, a config file, flags.
type settingsCase struct {
	name string
	env  []string
	cfg  string // the config file's text; "": no config file
	args []string
}

// sync runs `xfer sync SRC DST` with the case's settings, SRC holding the
// file "new", DST the file "extra" with content extra, and returns what
// the run did and DST.
func (c settingsCase) sync(t *testing.T, extra string) (result, string) {
	t.Helper()
	src, dst := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o644))
	must(t, os.WriteFile(filepath.Join(dst, "extra"), []byte(extra), 0o644))
	args := []string{"sync", src, dst}
	if c.cfg != "" {
		args = append([]string{"--config", writeConfig(t, c.cfg)}, args...)
	}
	return xferEnv(t, c.env, append(args, c.args...)...), dst
}

// TestLooseValuesRefused: a value that does not parse is a usage error
// (exit 2) naming its source, whether it comes from a flag, an XFER_*
// variable or the config file, and a sync given one changes nothing.
func TestLooseValuesRefused(t *testing.T) {
	tests := []struct {
		settingsCase
		msg string // what the error says
	}{
		{settingsCase{"XFER_DRY_RUN=yes", []string{"XFER_DRY_RUN=yes"}, "", nil}, `XFER_DRY_RUN="yes": want true or false`},
		{settingsCase{"XFER_DRYRUN=true (a typo of the name)", []string{"XFER_DRYRUN=true"}, "", nil}, `XFER_DRYRUN is not a setting of xfer (did you mean XFER_DRY_RUN?)`},
		{settingsCase{"dry-run: yes", nil, "dry-run: yes\n", nil}, `key "dry-run": "yes": want true or false`},
		{settingsCase{"--dry-run=yes", nil, "", []string{"--dry-run=yes"}}, `--dry-run "yes": want true or false`},
		{settingsCase{"XFER_STREAMS=abc", []string{"XFER_STREAMS=abc"}, "", nil}, `XFER_STREAMS="abc": want a whole number from 1 to 64`},
		{settingsCase{"streams: abc", nil, "streams: abc\n", nil}, `key "streams": "abc": want a whole number from 1 to 64`},
		{settingsCase{"XFER_TIMEOUT=30", []string{"XFER_TIMEOUT=30"}, "", nil}, `XFER_TIMEOUT="30": want a duration with a unit, such as 30s`},
		{settingsCase{"timeout: 30", nil, "timeout: 30\n", nil}, `key "timeout": "30": want a duration with a unit, such as 30s`},
		{settingsCase{"--timeout 30", nil, "", []string{"--timeout", "30"}}, `--timeout "30": want a duration with a unit, such as 30s`},
		{settingsCase{"XFER_CHUNK_SIZE=big", []string{"XFER_CHUNK_SIZE=big"}, "", nil}, `XFER_CHUNK_SIZE="big": want a size`},
		{settingsCase{"IOURING_ENTRIES=-5", []string{"IOURING_ENTRIES=-5"}, "", nil}, `IOURING_ENTRIES="-5": want a whole number from 0 to 32768`},
		{settingsCase{"--timeout 0", nil, "", []string{"--timeout", "0"}}, `--timeout "0": want a duration above 0`},
		{settingsCase{"--connect-timeout 0", nil, "", []string{"--connect-timeout", "0s"}}, `--connect-timeout "0s": want a duration above 0`},
		{settingsCase{"--max-duration -1s", nil, "", []string{"--max-duration", "-1s"}}, `--max-duration "-1s": want a duration of 0 or more`},
		{settingsCase{"--retries -1", nil, "", []string{"--retries", "-1"}}, `--retries "-1": want a whole number, 0 or more`},
		{settingsCase{"--uring-entries -5", nil, "", []string{"--uring-entries", "-5"}}, `--uring-entries "-5": want a whole number from 0 to 32768`},
		{settingsCase{"--proto foo, local", nil, "", []string{"--proto", "foo"}}, `--proto "foo": want auto, tcp, tcp-zc, uring or rdma`},
		{settingsCase{"two remotes differing in case", nil, "remotes:\n  lab: {url: \"xfer://127.0.0.1:1\"}\n  LAB: {url: \"xfer://127.0.0.1:2\"}\n", nil}, `remote "LAB" repeats the remote on line 2 (remote names are not case-sensitive)`},
	}
	for _, tt := range tests {
		r, dst := tt.sync(t, "keep me")
		if r.code != 2 || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%s: want exit 2 and %q\n%s", tt.name, tt.msg, r)
		}
		noGoInternal(t, tt.name, r)
		if b, err := os.ReadFile(filepath.Join(dst, "extra")); err != nil || string(b) != "keep me" {
			t.Errorf("%s: the sync deleted or changed dst/extra (%v)", tt.name, err)
		}
		if _, err := os.Stat(filepath.Join(dst, "new")); err == nil {
			t.Errorf("%s: the sync ran and copied a file", tt.name)
		}
	}
}

// TestValuesFromEverySource: the same text means the same from each source,
// and a flag beats XFER_*, which beats the file.
func TestValuesFromEverySource(t *testing.T) {
	tests := []struct {
		settingsCase
		dryRun bool // the settings make the sync a dry run
	}{
		{settingsCase{"XFER_DRY_RUN=true", []string{"XFER_DRY_RUN=true"}, "", nil}, true},
		{settingsCase{"XFER_DRY_RUN=1", []string{"XFER_DRY_RUN=1"}, "", nil}, true},
		{settingsCase{"dry-run: true", nil, "dry-run: true\n", nil}, true},
		{settingsCase{"flag beats env", []string{"XFER_DRY_RUN=true"}, "", []string{"--dry-run=false"}}, false},
		{settingsCase{"env beats file", []string{"XFER_DRY_RUN=false"}, "dry-run: true\n", nil}, false},
		{settingsCase{"empty env is unset", []string{"XFER_DRY_RUN="}, "dry-run: true\n", nil}, true},
		{settingsCase{"durations with units", []string{"XFER_TIMEOUT=90s"}, "connect-timeout: 5s\nmax-duration: 0\n", nil}, false},
	}
	for _, tt := range tests {
		r, dst := tt.sync(t, "x")
		if r.code != 0 {
			t.Errorf("%s: %s", tt.name, r)
			continue
		}
		_, errExtra := os.Stat(filepath.Join(dst, "extra"))
		_, errNew := os.Stat(filepath.Join(dst, "new"))
		if ran := errExtra != nil && errNew == nil; ran == tt.dryRun {
			t.Errorf("%s: dry run %v, but the sync ran=%v\n%s", tt.name, tt.dryRun, ran, r)
		}
	}
}

// TestJSONOnUsageErrors: once --json is given, every run ends in JSON on
// stdout, usage errors included: an error event, then a summary with the
// exit code.
func TestJSONOnUsageErrors(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"bad value after --json", nil, []string{"copy", "--json", src, t.TempDir(), "--streams", "abc"}, 2, `--streams \"abc\"`},
		{"bad value before --json", nil, []string{"copy", "--streams", "abc", src, t.TempDir(), "--json"}, 2, `--streams \"abc\"`},
		{"unknown flag", nil, []string{"copy", "--bogus", "--json", src, t.TempDir()}, 2, "unknown flag"},
		{"unknown command", nil, []string{"--json", "bogus"}, 2, "unknown command"},
		{"missing argument", nil, []string{"cas", "rm", "--json"}, 2, "requires at least 1 arg"},
		{"XFER_JSON and a bad XFER_ value", []string{"XFER_JSON=true", "XFER_DRY_RUN=yes"}, []string{"sync", src, t.TempDir()}, 2, "XFER_DRY_RUN"},
		{"missing source", nil, []string{"copy", "--json", "/nonexistent/xfer-src", t.TempDir()}, 2, "does not exist"},
		{"port out of range", nil, []string{"copy", "--json", src, "xfer://127.0.0.1:99999/x"}, 2, "port"},
		{"success", nil, []string{"copy", "--json", src, t.TempDir()}, 0, ""},
	}
	for _, tt := range tests {
		r := xferEnv(t, tt.env, tt.args...)
		if r.code != tt.code {
			t.Errorf("%s: exit %d, want %d\n%s", tt.name, r.code, tt.code, r)
			continue
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var events []map[string]any
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Errorf("%s: stdout line is not JSON: %q\n%s", tt.name, l, r)
				continue
			}
			events = append(events, m)
		}
		if len(events) == 0 {
			t.Errorf("%s: no JSON on stdout\n%s", tt.name, r)
			continue
		}
		last := events[len(events)-1]
		if last["event"] != "summary" || last["exit_code"] != float64(tt.code) {
			t.Errorf("%s: last line %v, want a summary with exit_code %d", tt.name, last, tt.code)
		}
		if tt.code == 0 {
			continue
		}
		found := false
		for _, e := range events {
			if e["event"] == "error" && strings.Contains(str(e["error"]), strings.ReplaceAll(tt.msg, `\"`, `"`)) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no error event with %q\n%s", tt.name, tt.msg, r)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

// TestNoGoInternalText: bad settings of every kind are usage errors worded
// for users, and hints name real commands.
func TestNoGoInternalText(t *testing.T) {
	src := t.TempDir()
	broken := writeConfig(t, "streams: 1\nremotes: [\n")
	tests := []struct {
		name string
		env  []string
		args []string
		msg  string
	}{
		{"missing --config file", nil, []string{"--config", "/nonexistent/xfer.yaml", "copy", src, t.TempDir()}, "config file /nonexistent/xfer.yaml: no such file"},
		{"missing file for config validate", nil, []string{"config", "validate", "--config", "/nonexistent/xfer.yaml"}, "config file /nonexistent/xfer.yaml: no such file"},
		{"broken YAML", nil, []string{"--config", broken, "copy", src, t.TempDir()}, "config file " + broken + ":2: did not find expected node content"},
		{"bad size", nil, []string{"copy", src, t.TempDir(), "--bwlimit", "fast"}, `--bwlimit "fast": want a size such as 4096, 64K, 4M or 1G`},
		{"size below its minimum", nil, []string{"serve", "--root", src, "--max-frame", "1K"}, `--max-frame "1K": want a size of at least 64K`},
		{"duration without unit", nil, []string{"bench", "--to", "xfer://127.0.0.1:1", "--duration", "5"}, `--duration "5": want a duration with a unit, such as 5s or 5m`},
		{"daemon duration from env", []string{"XFER_POLL=fast"}, []string{"daemon", "--socket", filepath.Join(t.TempDir(), "s"), "--cas", t.TempDir()}, `XFER_POLL="fast": want a duration such as 30s, 5m or 1h30m`},
		{"bool from env", []string{"XFER_JSON=maybe"}, []string{"version"}, `XFER_JSON="maybe": want true or false`},
		{"hint names the real command", nil, []string{"cas", "rm"}, "(see 'xfer cas rm --help')"},
		{"hint for a nested unknown flag", nil, []string{"remote", "add", "--nope"}, "unknown flag: --nope (see 'xfer remote add --help')"},
		{"unknown command with a suggestion", nil, []string{"snyc"}, `unknown command "snyc" for "xfer" (did you mean "sync"?)`},
	}
	for _, tt := range tests {
		r := xferEnv(t, tt.env, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%s: want exit 2 and %q\n%s", tt.name, tt.msg, r)
		}
		noGoInternal(t, tt.name, r)
	}
}

// TestVersionFlag: xfer --version prints what the first line of xfer
// version prints.
func TestVersionFlag(t *testing.T) {
	r := xfer(t, "--version")
	full := xfer(t, "version")
	first, _, _ := strings.Cut(full.stdout, "\n")
	if r.code != 0 || full.code != 0 || r.stdout != first+"\n" || !strings.HasPrefix(first, "xfer ") {
		t.Errorf("--version:\n%s\nversion:\n%s", r, full)
	}
	// A broken config file stops real work, not the version.
	bad := writeConfig(t, "bogus: 1\n")
	for _, args := range [][]string{{"--config", bad, "--version"}, {"--config", bad, "version"}} {
		if r := xfer(t, args...); r.code != 0 || !strings.HasPrefix(r.stdout, first) {
			t.Errorf("xfer %v with a broken config file:\n%s", args, r)
		}
	}
}
