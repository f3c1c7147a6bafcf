package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// xferBinary is the xfer binary under test: $XFER_BIN (make test sets it),
// else one built from this tree into a temporary directory.
func xferBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("XFER_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(t.TempDir(), "xfer")
	b := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", bin, "..")
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("building xfer: %v\n%s", err, out)
	}
	return bin
}

// invocation is one run of the binary.
type invocation struct {
	stdout, stderr string
	code           int
}

// runXfer runs bin in dir with a clean environment: no XFER_* variables
// from the caller, XDG_CONFIG_HOME=home, stdin empty (not a terminal).
func runXfer(t *testing.T, bin, dir, home string, env []string, args ...string) invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XFER_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") &&
			!strings.HasPrefix(kv, "EDITOR=") && !strings.HasPrefix(kv, "VISUAL=") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(append(c.Env, "XDG_CONFIG_HOME="+home), env...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running xfer %v: %v", args, err)
	}
	return invocation{so.String(), se.String(), code}
}

// editorScript writes a shell script that replaces the file it is given
// with content, for use as $EDITOR.
func editorScript(t *testing.T, dir, name, content string) string {
	t.Helper()
	data := filepath.Join(dir, name+".content")
	if err := os.WriteFile(data, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, name+".sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat '"+data+"' > \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestConfigAndRemote walks a user through the config and remote commands
// on one config file: every step runs the binary and checks what it
// printed, its exit code and the file it left.
func TestConfigAndRemote(t *testing.T) {
	bin := xferBinary(t)
	work := t.TempDir()
	home := filepath.Join(work, "home")
	cfg := filepath.Join(home, "xfer", "xfer.yaml")
	if err := os.WriteFile(filepath.Join(work, "token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	goodEdit := editorScript(t, work, "good", "streams: 6\nremotes:\n  lab: {url: \"xfer://127.0.0.1:7000\"}\n")
	badEdit := editorScript(t, work, "bad", "streams: many\n")
	unknownEdit := editorScript(t, work, "unknown", "remotes: {}\nchunk_size: 8M\n")
	write := func(content string) func(t *testing.T) {
		return func(t *testing.T) {
			if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	fileHas := func(want ...string) func(t *testing.T) {
		return func(t *testing.T) {
			data, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range want {
				if !strings.Contains(string(data), w) {
					t.Errorf("config file lacks %q:\n%s", w, data)
				}
			}
		}
	}
	steps := []struct {
		name   string
		before func(t *testing.T)
		env    []string
		args   []string
		code   int
		stdout []string // substrings
		stderr []string
		after  func(t *testing.T)
	}{
		{name: "ls without a file", args: []string{"remote", "ls"}, stderr: []string{"no remotes in " + cfg}},
		{name: "validate without a file", args: []string{"config", "validate"}, stdout: []string{"no config file at " + cfg}},
		{name: "show without a file", args: []string{"config", "show"}, stdout: []string{"# config file: " + cfg + " (does not exist"}},
		{name: "add", args: []string{"remote", "add", "nodeA", "xfer://10.0.0.1:7878"},
			stdout: []string{"remote nodeA -> 10.0.0.1:7878 saved in " + cfg},
			after: func(t *testing.T) {
				for p, want := range map[string]os.FileMode{cfg: 0o600, filepath.Dir(cfg): 0o700, home: 0o700} {
					if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
						t.Errorf("%s: %v, want mode %v", p, err, want)
					}
				}
			}},
		{name: "add again", args: []string{"remote", "add", "NODEA", "10.0.0.9:1"}, code: 2,
			stderr: []string{`remote "nodeA" in ` + cfg + ": remote already exists (use --force to replace it)"}},
		{name: "replace", args: []string{"remote", "add", "NodeA", "10.0.0.9:1", "--force"}, after: fileHas("NodeA:\n    url: xfer://10.0.0.9:1\n")},
		{name: "add agents", args: []string{"remote", "add", "pool", "--agents", "h1:1,h2:2", "--token-file", "token"},
			after: fileHas("pool:\n    agents:\n      - h1:1\n      - h2:2\n    token_file: " + filepath.Join(work, "token"))},
		{name: "add TLS", args: []string{"remote", "add", "sec", "h9:9", "--tls-ca", "/ca.pem", "--tls-cert", "c.pem", "--tls-key", "/k.pem",
			"--tls-server-name", "data.example.org", "--tls-data=false"},
			stderr: []string{"warning: --tls-ca: stat /ca.pem: no such file or directory (recorded anyway)"},
			after:  fileHas("sec:\n    url: xfer://h9:9\n    tls_ca: /ca.pem\n    tls_cert: " + filepath.Join(work, "c.pem") + "\n    tls_key: /k.pem\n    tls_server_name: data.example.org\n    tls_data: false\n")},
		{name: "cert without key", args: []string{"remote", "add", "x", "h:1", "--tls-cert", "/c.pem"}, code: 2, stderr: []string{"--tls-cert and --tls-key go together"}},
		{name: "bad name", args: []string{"remote", "add", "a/b", "h:1"}, code: 2, stderr: []string{`remote name "a/b"`}},
		{name: "no address", args: []string{"remote", "add", "x"}, code: 2, stderr: []string{"give the address"}},
		{name: "two addresses", args: []string{"remote", "add", "x", "h:1", "--agents", "h:2"}, code: 2, stderr: []string{"not both"}},
		{name: "address with path", args: []string{"remote", "add", "x", "xfer://h:1/data"}, code: 2, stderr: []string{"drop the path /data"}},
		{name: "not xfer url", args: []string{"remote", "add", "x", "http://h:1"}, code: 2, stderr: []string{"want xfer://HOST:PORT/PATH"}},
		{name: "bad agent", args: []string{"remote", "add", "x", "--agents", "h1"}, code: 2, stderr: []string{`address "h1": want HOST:PORT`}},
		{name: "too many args", args: []string{"remote", "add", "x", "h:1", "h:2"}, code: 2, stderr: []string{"accepts between 1 and 2 arg(s)"}},
		{name: "ls", args: []string{"remote", "ls"},
			stdout: []string{"NAME   AGENTS      TOKEN FILE", "NodeA  10.0.0.9:1  -  ", "pool   h1:1,h2:2   " + filepath.Join(work, "token") + "  -\n",
				"sec    h9:9        -  ", "/ca.pem+cert\n"}},
		{name: "validate", args: []string{"config", "validate"}, stdout: []string{cfg + ": valid (3 remotes, 3 warnings)"},
			stderr: []string{`remote "sec": tls_ca: stat /ca.pem`}},
		{name: "rm keeps the rest", before: func(t *testing.T) {
			f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("# tuned for the 100G link\nstreams: 8\n")
			f.Close()
		}, args: []string{"remote", "rm", "POOL"}, stdout: []string{"remote pool removed from " + cfg},
			after: func(t *testing.T) {
				fileHas("# tuned for the 100G link\nstreams: 8", "NodeA:")(t)
				if data, _ := os.ReadFile(cfg); strings.Contains(string(data), "pool") {
					t.Errorf("pool still in the file:\n%s", data)
				}
			}},
		{name: "rm unknown", args: []string{"remote", "rm", "pool"}, code: 2, stderr: []string{`no remote "pool" in ` + cfg}},
		{name: "show", env: []string{"XFER_STREAMS=3"}, args: []string{"config", "show"},
			stdout: []string{"# config file: " + cfg + "\n", "streams: 8\n", "# overridden by the environment: XFER_STREAMS\n"}},
		{name: "edit to invalid", env: []string{"EDITOR=" + badEdit}, args: []string{"config", "edit"}, code: 2,
			stderr: []string{cfg + `:1: error: key "streams": "many": want a whole number`, "unchanged; the edit was discarded"},
			after:  fileHas("streams: 8", "NodeA:")},
		{name: "edit to valid", env: []string{"VISUAL=" + goodEdit, "EDITOR=false"}, args: []string{"config", "edit"},
			stdout: []string{cfg + ": valid (1 remote, 0 warnings)", cfg + ": saved"}, after: fileHas("streams: 6\n", "lab:")},
		{name: "edit without change", env: []string{"EDITOR=true"}, args: []string{"config", "edit"}, stdout: []string{cfg + ": no changes"}},
		{name: "editor fails", env: []string{"EDITOR=false"}, args: []string{"config", "edit"}, code: 2,
			stderr: []string{`editor "false": exit status 1; config file ` + cfg + " unchanged"}},
		{name: "unknown keys are errors", env: []string{"EDITOR=" + unknownEdit}, args: []string{"config", "edit"}, code: 2,
			stderr: []string{cfg + `:2: error: unknown key "chunk_size": it is not a flag of any xfer command (did you mean "chunk-size"?`, "unchanged"},
			after:  fileHas("streams: 6\n")},
		{name: "broken: validate", before: write("remotes: [\nstreams: 1\n"), args: []string{"config", "validate"}, code: 2,
			stderr: []string{cfg + ":2: error: did not find expected", cfg + ": invalid (1 error)"}},
		{name: "broken: ls", args: []string{"remote", "ls"}, code: 2, stderr: []string{"config file " + cfg + ":2: did not find expected"}},
		{name: "broken: copy refuses", args: []string{"copy", "a", "b"}, code: 2, stderr: []string{"config file " + cfg + ":2: did not find expected"}},
		{name: "broken: show", args: []string{"config", "show"}, stdout: []string{"remotes: [\n"}},
		{name: "broken: edit repairs", env: []string{"EDITOR=" + goodEdit}, args: []string{"config", "edit"}, stdout: []string{": saved"}},
		{name: "repaired", args: []string{"config", "validate"}, stdout: []string{"valid (1 remote"}},
		{name: "bad remote entry", before: write("remotes:\n  ok: {url: \"xfer://h:1\"}\n  bad: {url: \"h:1\"}\n"),
			args: []string{"config", "validate"}, code: 2, stderr: []string{cfg + `:3: error: remote "bad": location "h:1"`}},
		{name: "validate --config missing", args: []string{"config", "validate", "--config", filepath.Join(work, "nope.yaml")}, code: 2,
			stderr: []string{"nope.yaml: no such file"}},
		{name: "add with --config creates it", args: []string{"remote", "add", "z", "h:1", "--config", filepath.Join(work, "other", "x.yaml")},
			after: func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(work, "other", "x.yaml")); err != nil {
					t.Error(err)
				}
			}},
		{name: "unknown subcommand", args: []string{"config", "bogus"}, code: 2, stderr: []string{`unknown command "bogus" for "xfer config"`}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before(t)
		}
		r := runXfer(t, bin, work, home, s.env, s.args...)
		if r.code != s.code {
			t.Errorf("%s: xfer %s: exit %d, want %d\nstdout: %s\nstderr: %s", s.name, strings.Join(s.args, " "), r.code, s.code, r.stdout, r.stderr)
		}
		for _, w := range s.stdout {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", s.name, w, r.stdout)
			}
		}
		for _, w := range s.stderr {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", s.name, w, r.stderr)
			}
		}
		if s.after != nil {
			s.after(t)
		}
		if t.Failed() {
			t.FailNow() // later steps build on this one
		}
	}
}

func TestJSONOutput(t *testing.T) {
	bin := xferBinary(t)
	home := t.TempDir()
	for _, args := range [][]string{
		{"remote", "add", "a", "xfer://h:1"},
		{"remote", "add", "b", "--agents", "h:2,h:3", "--token-file", "/etc/xfer/token"},
	} {
		if r := runXfer(t, bin, home, home, nil, args...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	r := runXfer(t, bin, home, home, nil, "remote", "ls", "--json")
	var got []remoteJSON
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var x remoteJSON
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, x)
	}
	if len(got) != 2 || got[0].Name != "a" || got[0].Agents[0] != "h:1" || got[1].TokenFile != "/etc/xfer/token" || len(got[1].Agents) != 2 {
		t.Errorf("remote ls --json = %+v", got)
	}
	r = runXfer(t, bin, home, home, nil, "config", "validate", "--json")
	var v struct {
		Path    string
		Valid   bool
		Remotes int
		Errors  []any
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || !v.Valid || v.Remotes != 2 || v.Errors == nil || r.code != 0 {
		t.Errorf("config validate --json = %q (%v), exit %d", r.stdout, err, r.code)
	}
}

// TestCheckEnvNames: an XFER_ variable that misses a setting's name by a
// letter or two is refused with the name it probably meant; settings and
// names that resemble none pass.
func TestCheckEnvNames(t *testing.T) {
	tests := []struct {
		env  []string
		want string // "" for no error
	}{
		{[]string{"XFER_DRY_RUN=true", "XFER_STREAMS=4", "PATH=/bin"}, ""},
		{[]string{"XFER_DRYRUN=true"}, "did you mean XFER_DRY_RUN?"},
		{[]string{"XFER_STREAM=4"}, "did you mean XFER_STREAMS?"},
		{[]string{"XFER_BIN=/tmp/xfer", "XFER_CPUPROFILE=/tmp/p", "XFER_HEAPPROFILE=/tmp/h", "XFER_=1"}, ""},
	}
	for _, tt := range tests {
		err := checkEnvNames(tt.env)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want %q", tt.env, err, tt.want)
		}
	}
}
