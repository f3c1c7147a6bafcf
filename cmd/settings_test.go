package cmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/exitcode"
)

// settleFor parses args for the command at path (e.g. "copy") the way
// Execute does, with env set and cfg as the config file, then settles the
// flags. It returns the app (whose a.v reads the values) and the error.
func settleFor(t *testing.T, path []string, args []string, env map[string]string, cfg string) (*app, error) {
	t.Helper()
	return settleWith(t, io.Discard, path, args, env, cfg)
}

// settleWith is settleFor with the app's stderr (notices, warnings) going
// to stderr.
func settleWith(t *testing.T, stderr io.Writer, path []string, args []string, env map[string]string, cfg string) (*app, error) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "XFER_") || name == "IOURING_ENTRIES" || name == "MOVER_SOCKET" {
			t.Setenv(name, "")
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	if cfg != "" {
		must(t, os.MkdirAll(filepath.Join(home, "xfer"), 0o700))
		must(t, os.WriteFile(filepath.Join(home, "xfer", "xfer.yaml"), []byte(cfg), 0o600))
	}
	a := &app{stdout: io.Discard, stderr: stderr}
	root := newRootCmd(a)
	cmd, _, err := root.Find(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		return a, flagErrorFunc(cmd, err)
	}
	return a, a.settle(cmd, false)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSettle: one parser for the command line, XFER_* and the config file.
func TestSettle(t *testing.T) {
	copyCmd := []string{"copy"}
	tests := []struct {
		name string
		cmd  []string
		args []string
		env  map[string]string
		cfg  string
		// err is a substring of the usage error; empty: no error, and
		// then get(a) must equal want.
		err  string
		get  func(a *app) any
		want any
	}{
		// bool
		{name: "bool flag", cmd: copyCmd, args: []string{"--dry-run"}, get: dryRun, want: true},
		{name: "bool env true", cmd: copyCmd, env: map[string]string{"XFER_DRY_RUN": "true"}, get: dryRun, want: true},
		{name: "bool env 1", cmd: copyCmd, env: map[string]string{"XFER_DRY_RUN": "1"}, get: dryRun, want: true},
		{name: "bool file", cmd: copyCmd, cfg: "dry-run: true\n", get: dryRun, want: true},
		{name: "bool flag yes", cmd: copyCmd, args: []string{"--dry-run=yes"}, err: `--dry-run "yes": want true or false`},
		{name: "bool env yes", cmd: copyCmd, env: map[string]string{"XFER_DRY_RUN": "yes"}, err: `XFER_DRY_RUN="yes": want true or false`},
		{name: "bool file yes", cmd: copyCmd, cfg: "dry-run: yes\n", err: `xfer.yaml:1: key "dry-run": "yes": want true or false`},
		{name: "bool file on", cmd: copyCmd, cfg: "dry-run: on\n", err: `key "dry-run": "on": want true or false`},
		// int
		{name: "int env", cmd: copyCmd, env: map[string]string{"XFER_STREAMS": "12"}, get: streams, want: 12},
		{name: "int file", cmd: copyCmd, cfg: "streams: 12\n", get: streams, want: 12},
		{name: "int flag abc", cmd: copyCmd, args: []string{"--streams", "abc"}, err: `--streams "abc": want a whole number from 1 to 64`},
		{name: "int env abc", cmd: copyCmd, env: map[string]string{"XFER_STREAMS": "abc"}, err: `XFER_STREAMS="abc": want a whole number from 1 to 64`},
		{name: "int file abc", cmd: copyCmd, cfg: "streams: abc\n", err: `key "streams": "abc": want a whole number from 1 to 64`},
		{name: "int file float", cmd: copyCmd, cfg: "streams: 8.0\n", err: `key "streams": "8.0": want a whole number`},
		{name: "int env out of range", cmd: copyCmd, env: map[string]string{"XFER_STREAMS": "0"}, err: `XFER_STREAMS="0": want a whole number from 1 to 64`},
		{name: "retries negative", cmd: copyCmd, args: []string{"--retries=-1"}, err: `--retries "-1": want a whole number, 0 or more`},
		{name: "uring entries negative", cmd: copyCmd, args: []string{"--uring-entries=-5"}, err: `--uring-entries "-5": want a whole number from 0 to 32768`},
		{name: "uring entries alias", cmd: copyCmd, env: map[string]string{"IOURING_ENTRIES": "512"}, get: func(a *app) any { return a.uringEntries() }, want: 512},
		{name: "uring entries alias bad", cmd: copyCmd, env: map[string]string{"IOURING_ENTRIES": "lots"}, err: `IOURING_ENTRIES="lots": want a whole number`},
		{name: "XFER_ beats the alias", cmd: copyCmd, env: map[string]string{"IOURING_ENTRIES": "512", "XFER_URING_ENTRIES": "64"}, get: func(a *app) any { return a.uringEntries() }, want: 64},
		// duration
		{name: "duration env", cmd: copyCmd, env: map[string]string{"XFER_TIMEOUT": "30s"}, get: timeout, want: 30 * time.Second},
		{name: "duration file", cmd: copyCmd, cfg: "timeout: 2m\n", get: timeout, want: 2 * time.Minute},
		{name: "duration flag no unit", cmd: copyCmd, args: []string{"--timeout", "30"}, err: `--timeout "30": want a duration with a unit, such as 30s or 30m`},
		{name: "duration env no unit", cmd: copyCmd, env: map[string]string{"XFER_TIMEOUT": "30"}, err: `XFER_TIMEOUT="30": want a duration with a unit, such as 30s or 30m`},
		{name: "duration file no unit", cmd: copyCmd, cfg: "timeout: 30\n", err: `key "timeout": "30": want a duration with a unit, such as 30s or 30m`},
		{name: "duration garbage", cmd: copyCmd, args: []string{"--timeout", "soon"}, err: `--timeout "soon": want a duration such as 30s, 5m or 1h30m`},
		{name: "timeout 0", cmd: copyCmd, args: []string{"--timeout", "0"}, err: `--timeout "0": want a duration above 0`},
		{name: "max-duration 0 is no limit", cmd: copyCmd, args: []string{"--max-duration", "0"}, get: func(a *app) any { return a.v.GetDuration("max-duration") }, want: time.Duration(0)},
		{name: "max-duration negative", cmd: copyCmd, args: []string{"--max-duration=-1s"}, err: `--max-duration "-1s": want a duration of 0 or more`},
		// size
		{name: "size env", cmd: copyCmd, env: map[string]string{"XFER_CHUNK_SIZE": "16M"}, get: func(a *app) any { return a.v.GetSize("chunk-size") }, want: int64(16 << 20)},
		{name: "size file", cmd: copyCmd, cfg: "chunk-size: 1GiB\n", get: func(a *app) any { return a.v.GetSize("chunk-size") }, want: int64(1 << 30)},
		{name: "size env bad", cmd: copyCmd, env: map[string]string{"XFER_CHUNK_SIZE": "big"}, err: `XFER_CHUNK_SIZE="big": want a size such as 4096, 64K, 4M or 1G`},
		{name: "size range", cmd: []string{"serve"}, args: []string{"--max-frame", "1K"}, err: `--max-frame "1K": want a size of at least 64K`},
		// choices
		{name: "proto", cmd: copyCmd, env: map[string]string{"XFER_PROTO": "foo"}, err: `XFER_PROTO="foo": want auto, tcp, tcp-zc, uring or rdma`},
		{name: "bench takes proto all", cmd: []string{"bench"}, args: []string{"--proto", "all"}, get: func(a *app) any { return a.v.GetString("proto") }, want: "all"},
		{name: "copy refuses proto all", cmd: copyCmd, args: []string{"--proto", "all"}, err: `want auto, tcp, tcp-zc, uring or rdma`},
		// precedence and empties
		{name: "flag beats env and file", cmd: copyCmd, args: []string{"--streams", "3"}, env: map[string]string{"XFER_STREAMS": "5"}, cfg: "streams: 7\n", get: streams, want: 3},
		{name: "env beats file", cmd: copyCmd, env: map[string]string{"XFER_STREAMS": "5"}, cfg: "streams: 7\n", get: streams, want: 5},
		{name: "empty env is unset", cmd: copyCmd, env: map[string]string{"XFER_STREAMS": ""}, cfg: "streams: 7\n", get: streams, want: 7},
		{name: "file keys fold case", cmd: copyCmd, cfg: "Streams: 9\n", get: streams, want: 9},
		{name: "a flag beats a file's bad value", cmd: copyCmd, args: []string{"--streams", "3"}, cfg: "streams: many\n", err: `key "streams": "many"`},
		// lists
		{name: "list from file", cmd: []string{"serve"}, cfg: "protos: [tcp, uring]\n", get: protos, want: "[tcp uring]"},
		{name: "list from env", cmd: []string{"serve"}, env: map[string]string{"XFER_PROTOS": "tcp,uring"}, get: protos, want: "[tcp uring]"},
		{name: "a flag's list is not extended by the file", cmd: []string{"serve"}, args: []string{"--protos", "tcp"}, cfg: "protos: [uring]\n", get: protos, want: "[tcp]"},
		{name: "a list where one value goes", cmd: copyCmd, cfg: "streams: [1, 2]\n", err: `key "streams": want a single value, not a list`},
		// the file as a whole
		{name: "unknown key", cmd: copyCmd, cfg: "dryrun: true\n", err: `unknown key "dryrun": it is not a flag of any xfer command (did you mean "dry-run"?)`},
		{name: "underscore key", cmd: copyCmd, cfg: "chunk_size: 8M\n", err: `did you mean "chunk-size"? flag names keep their dashes`},
		{name: "another command's bad value", cmd: copyCmd, cfg: "max-frame: 1K\n", err: `key "max-frame": "1K": want a size of at least 64K`},
		{name: "several errors", cmd: copyCmd, cfg: "a: 1\nb: 2\n", err: `(and 1 more error; see 'xfer config validate')`},
		{name: "remotes differing in case", cmd: copyCmd, cfg: "remotes:\n  lab: {url: \"xfer://h:1\"}\n  Lab: {url: \"xfer://h:2\"}\n", err: `remote "Lab" repeats the remote on line 2`},
		{name: "no value", cmd: copyCmd, cfg: "streams:\n", err: `key "streams": has no value`},
		// the daemon's mover names
		{name: "daemon alias", cmd: []string{"daemon"}, env: map[string]string{"MOVER_SOCKET": "/tmp/m.sock"}, get: func(a *app) any { return a.v.GetString("socket") }, want: "/tmp/m.sock"},
		// config and remote edits read their own flags from the command line only
		{name: "remote add ignores XFER_TOKEN_FILE", cmd: []string{"remote", "add"}, env: map[string]string{"XFER_TOKEN_FILE": "/t"}, get: func(a *app) any { return a.v.GetString("token-file") }, want: ""},
		{name: "remote add takes XFER_JSON", cmd: []string{"remote", "add"}, env: map[string]string{"XFER_JSON": "true"}, get: func(a *app) any { return a.v.GetBool("json") }, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := settleFor(t, tt.cmd, tt.args, tt.env, tt.cfg)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if code := usageCode(err); code != exitcode.Usage {
					t.Errorf("exit code %d, want 2", code)
				}
				for _, frag := range []string{"strconv", "time: ", "invalid syntax", " yaml: "} {
					if strings.Contains(err.Error(), frag) {
						t.Errorf("error %q carries Go-internal text %q", err, frag)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(a); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func usageCode(err error) int {
	if _, ok := err.(*flagError); ok {
		return exitcode.Usage
	}
	return exitcode.Code(err)
}

func dryRun(a *app) any  { return a.v.GetBool("dry-run") }
func streams(a *app) any { return a.v.GetInt("streams") }
func timeout(a *app) any { return a.v.GetDuration("timeout") }
func protos(a *app) any  { return a.v.GetStringSlice("protos") }

// TestConfigKeysCoverFlags: every flag a command reads from the config file
// is a key config validate knows, with a parser.
func TestConfigKeysCoverFlags(t *testing.T) {
	keys := configKeys()
	for _, name := range []string{"streams", "dry-run", "timeout", "chunk-size", "protos", "export", "include", "json", "socket"} {
		if k, ok := keys[name]; !ok || k.Parse == nil {
			t.Errorf("key %q: %+v, %v", name, k, ok)
		}
	}
	for _, name := range []string{"config", "help", "force", "agents"} {
		if _, ok := keys[name]; ok {
			t.Errorf("key %q must not be settable in the file", name)
		}
	}
	if !keys["include"].List || !keys["protos"].List || keys["streams"].List {
		t.Error("List: include and protos repeat, streams does not")
	}
}

// TestRunMessages: what run prints for usage errors, in process.
func TestRunMessages(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, 2, `xfer: unknown command "bogus" for "xfer"; see 'xfer --help'`},
		{[]string{"copi"}, 2, `(did you mean "copy"?)`},
		{[]string{"cas", "rm"}, 2, `xfer: cas rm: requires at least 1 arg(s), only received 0 (see 'xfer cas rm --help')`},
		{[]string{"remote", "rm"}, 2, `(see 'xfer remote rm --help')`},
		{[]string{"copy", "--nope", "a", "b"}, 2, `xfer: unknown flag: --nope (see 'xfer copy --help')`},
		{[]string{"copy", "a", "xfer://127.0.0.1:0/x"}, 2, `the port must be a number from 1 to 65535`},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("xfer %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errb.String(), tt.code, tt.want)
		}
	}
}

// TestUserMessage: Go's context errors never reach a user as such.
func TestUserMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("peer h:1: cannot connect: %w", context.DeadlineExceeded), "peer h:1: cannot connect: timed out"},
		{fmt.Errorf("listing /x: %w", context.Canceled), "listing /x: interrupted"},
		{exitcode.Usagef("plain"), "plain"},
	}
	for _, tt := range tests {
		if got := userMessage(tt.err); got != tt.want {
			t.Errorf("userMessage(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
