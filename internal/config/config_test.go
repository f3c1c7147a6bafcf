package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/location"
)

// keys is a sample of the flag keys cmd passes to Validate (there, Parse
// is the flag's own pflag.Value.Set).
var keys = map[string]Key{
	"streams": {Parse: func(s string) error {
		if _, err := strconv.Atoi(s); err != nil {
			return errors.New("want a whole number")
		}
		return nil
	}},
	"chunk-size": {},
	"dry-run": {Parse: func(s string) error {
		if _, err := strconv.ParseBool(s); err != nil {
			return errors.New("want true or false")
		}
		return nil
	}},
	"timeout": {Parse: func(s string) error {
		if _, err := time.ParseDuration(s); err != nil {
			return errors.New("want a duration with a unit")
		}
		return nil
	}},
	"protos":     {List: true},
	"log-format": {},
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		errors   []string // substrings, one per expected error
		warnings []string
		remotes  int
	}{
		{name: "empty file", yaml: ""},
		{name: "comments only", yaml: "# nothing yet\n"},
		{name: "good", yaml: `
remotes:
  nodeA: {url: "xfer://10.0.0.1:7878"}
  nodeB: {address: "10.0.0.2:7878"}
  pool: {agents: [h1:1, h2:2], token_file: /nonexistent/xfer-token}
streams: 8
timeout: 90s
protos: [tcp, uring]
dry-run: false
`, remotes: 3, warnings: []string{`remote "pool": token_file: stat /nonexistent/xfer-token`}},
		{name: "tls keys", yaml: `
remotes:
  secure:
    url: xfer://h:1
    tls_ca: /nonexistent/ca.pem
    tls_server_name: data.example.org
    tls_data: false
  badtls: {url: "xfer://h:2", tls_data: "maybe"}
  relative: {url: "xfer://h:3", tls_cert: c.pem, tls_key: /etc/hostname}
`, remotes: 2, errors: []string{`line 8: remote "badtls": tls_data must be true or false`},
			warnings: []string{`line 5: remote "secure": tls_ca: stat /nonexistent/ca.pem`, `line 9: remote "relative": tls_cert "c.pem" is relative`}},
		{name: "upper-case keys fold", yaml: "Remotes:\n  X: {url: xfer://h:1}\nSTREAMS: 2\n", remotes: 1},
		{name: "syntax", yaml: "streams: 1\nremotes: [\n", errors: []string{"line 2: did not find expected node content"}},
		{name: "top level list", yaml: "- a\n- b\n", errors: []string{"line 1: the top level must be a mapping"}},
		{name: "unknown keys", yaml: "chunk_size: 8M\nfoo: 1\nremotes:\n  a:\n    url: xfer://h:1\n    colour: red\n    tokenfile: /t\nstream: 2\nDryRun: true\nremote: {}\n",
			remotes: 1,
			errors: []string{`line 1: unknown key "chunk_size": it is not a flag of any xfer command (did you mean "chunk-size"? flag names keep their dashes)`,
				`line 2: unknown key "foo": it is not a flag of any xfer command`, `line 6: remote "a": unknown key "colour" (want url`,
				`line 7: remote "a": unknown key "tokenfile" (did you mean "token_file"? want url`,
				`line 8: unknown key "stream": it is not a flag of any xfer command (did you mean "streams"?)`,
				`line 9: unknown key "DryRun": it is not a flag of any xfer command (did you mean "dry-run"?)`,
				`line 10: unknown key "remote": it is not a flag of any xfer command (did you mean "remotes"?)`}},
		{name: "no value", yaml: "streams:\n", errors: []string{`line 1: key "streams": has no value`}},
		{name: "bad remotes", yaml: `
remotes:
  "bad name": {url: xfer://h:1}
  noaddr: {token_file: /x}
  badurl: {url: "http://h:1"}
  badagent: {agents: [nohostport]}
  scalar: xfer://h:1
  ok: {url: xfer://h:1}
`, remotes: 1, errors: []string{`line 3: remote name "bad name"`, `line 4: remote "noaddr": needs url, address, agents or etcd`,
			`line 5: remote "badurl"`, `line 6: remote "badagent": address "nohostport"`, `line 7: remote "scalar": want a mapping`}},
		{name: "duplicates", yaml: "streams: 1\nStreams: 2\nremotes:\n  a: {url: xfer://h:1}\n  A: {url: xfer://h:2}\n",
			remotes: 1, errors: []string{`line 2: key "Streams" repeats the key on line 1`, `line 5: remote "A" repeats the remote on line 4`}},
		{name: "remotes not a mapping", yaml: "remotes: [a, b]\n", errors: []string{"line 1: remotes must be a mapping"}},
		{name: "bad types", yaml: "streams: many\ndry-run: perhaps\ntimeout: 30\nprotos: {a: b}\nlog-format: [a]\ndry-run: yes\n",
			errors: []string{`line 1: key "streams": "many": want a whole number`, `line 2: key "dry-run": "perhaps": want true or false`,
				`line 3: key "timeout": "30": want a duration with a unit`, `line 4: key "protos": want a single value or a list, not a mapping`,
				`line 5: key "log-format": want a single value, not a list`, `line 6: key "dry-run" repeats the key on line 2`}},
		{name: "yes is no bool", yaml: "dry-run: yes\n", errors: []string{`line 1: key "dry-run": "yes": want true or false`}},
		{name: "list items", yaml: "protos: [tcp, [uring]]\n", errors: []string{`line 1: key "protos": want a list of single values`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Validate([]byte(tt.yaml), keys)
			match(t, "error", rep.Errors, tt.errors)
			match(t, "warning", rep.Warnings, tt.warnings)
			if rep.Remotes != tt.remotes {
				t.Errorf("remotes = %d, want %d", rep.Remotes, tt.remotes)
			}
			if rep.OK() != (len(tt.errors) == 0) {
				t.Errorf("OK() = %v with errors %v", rep.OK(), rep.Errors)
			}
		})
	}
}

func match(t *testing.T, what string, got []Problem, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%ss = %q, want %d matching %q", what, got, len(want), want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i].String(), want[i]) {
			t.Errorf("%s %d = %q, want it to contain %q", what, i, got[i], want[i])
		}
	}
}

// writeConfig writes data (mode 0644) to xfer.yaml in a new directory and
// returns the file's path.
func writeConfig(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xfer.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadConfig loads data, written by writeConfig, and returns the file and
// its path.
func loadConfig(t *testing.T, data string) (*File, string) {
	t.Helper()
	path := writeConfig(t, data)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, path
}

// readBack reads path the way xfer's commands do: Load, then its
// Settings and Remotes.
func readBack(t *testing.T, path string) (map[string][]string, map[string]location.Remote) {
	t.Helper()
	f, err := Load(path)
	if err != nil {
		t.Fatalf("cannot read what was written: %v", err)
	}
	settings := map[string][]string{}
	for _, s := range f.Settings() {
		settings[s.Key] = s.Values
	}
	list, err := f.Remotes()
	if err != nil {
		t.Fatalf("remotes written are refused: %v", err)
	}
	rs := map[string]location.Remote{}
	for _, r := range list {
		rs[strings.ToLower(r.Name)] = r
	}
	return settings, rs
}

func TestAddRemoveKeepsTheRest(t *testing.T) {
	orig := `# my settings
streams: 8 # more streams for the 100G link
remotes:
  # the archive
  old: {url: "xfer://10.0.0.9:7878"}
custom_thing: {keep: me}
`
	f, path := loadConfig(t, orig)
	steps := []struct {
		name string
		do   func() error
	}{
		{"add one agent", func() error {
			return f.AddRemote(location.Remote{Name: "nodeA", Agents: []string{"10.0.0.1:7878"}}, false)
		}},
		{"add agents and token", func() error {
			return f.AddRemote(location.Remote{Name: "pool", Agents: []string{"h1:1", "h2:2"}, TokenFile: "/etc/xfer/token"}, false)
		}},
		{"add with TLS", func() error {
			no := false
			return f.AddRemote(location.Remote{Name: "tls", Agents: []string{"h3:3"}, TLSCA: "/ca.pem", TLSCert: "/c.pem",
				TLSKey: "/k.pem", TLSServerName: "data.example.org", TLSData: &no}, false)
		}},
		{"replace in other case", func() error {
			return f.AddRemote(location.Remote{Name: "NODEA", Agents: []string{"10.0.0.2:7878"}}, true)
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if err := f.AddRemote(location.Remote{Name: "Pool", Agents: []string{"h:1"}}, false); !errors.Is(err, ErrRemoteExists) {
		t.Errorf("adding an existing remote without replace: %v, want ErrRemoteExists", err)
	}
	for _, bad := range []location.Remote{{Name: "a b", Agents: []string{"h:1"}}, {Name: "x"}, {Name: "x", Agents: []string{"nope"}}} {
		if err := f.AddRemote(bad, true); err == nil {
			t.Errorf("AddRemote(%+v) accepted", bad)
		}
	}
	spelled, err := f.RemoveRemote("OLD")
	if err != nil || spelled != "old" {
		t.Errorf("RemoveRemote(OLD) = %q, %v; want old", spelled, err)
	}
	if s, _ := f.RemoveRemote("ghost"); s != "" {
		t.Errorf("RemoveRemote(ghost) = %q", s)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{"# my settings", "streams: 8 # more streams for the 100G link", "custom_thing:", "keep: me",
		"NODEA:\n    url: xfer://10.0.0.2:7878", "agents:\n      - h1:1\n      - h2:2\n", "token_file: /etc/xfer/token"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("saved file lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "10.0.0.9") || strings.Contains(string(data), "10.0.0.1:") {
		t.Errorf("removed or replaced remote still there:\n%s", data)
	}
	v, rs := readBack(t, path)
	tr := rs["tls"]
	if fmt.Sprint(v["streams"]) != "[8]" || len(rs) != 3 || rs["nodea"].Agents[0] != "10.0.0.2:7878" ||
		len(rs["pool"].Agents) != 2 || rs["pool"].TokenFile != "/etc/xfer/token" ||
		tr.TLSCA != "/ca.pem" || tr.TLSCert != "/c.pem" || tr.TLSKey != "/k.pem" || tr.TLSServerName != "data.example.org" ||
		tr.TLSData == nil || *tr.TLSData {
		t.Errorf("read back streams=%q remotes=%+v", v["streams"], rs)
	}
	list, err := f.Remotes()
	if err != nil || len(list) != 3 || list[0].Name != "NODEA" || list[1].Name != "pool" || list[2].Name != "tls" {
		t.Errorf("Remotes() = %+v, %v", list, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string // content "-" means no file
		wantErr       string
		remotes       int
	}{
		{"missing", "-", "", 0},
		{"empty", "", "", 0},
		{"null remotes", "remotes:\n", "", 0},
		{"top level scalar", "hello\n", "top level must be a mapping", 0},
		{"remotes list", "remotes: [a]\n", "remotes must be a mapping", 0},
		{"broken", "a: [\n", "yaml:", 0},
		{"one", "remotes: {a: {address: 'h:1'}}\n", "", 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			if tt.content != "-" {
				os.WriteFile(path, []byte(tt.content), 0o600)
			}
			f, err := Load(path)
			var rs []location.Remote
			if err == nil {
				rs, err = f.Remotes()
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("case %d: err = %v, want %q", i, err, tt.wantErr)
			}
			if err == nil && len(rs) != tt.remotes {
				t.Errorf("remotes = %+v", rs)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	base := t.TempDir()
	t.Run("creates directories 0700 and file 0600", func(t *testing.T) {
		path := filepath.Join(base, "new", "xfer", "xfer.yaml")
		if err := WriteFile(path, []byte("streams: 2\n")); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700, filepath.Join(base, "new"): 0o700} {
			st, err := os.Stat(p)
			if err != nil || st.Mode().Perm() != want {
				t.Errorf("%s: %v mode %v, want %v", p, err, st.Mode().Perm(), want)
			}
		}
		ents, _ := os.ReadDir(filepath.Dir(path))
		if len(ents) != 1 {
			t.Errorf("temporary files left behind: %v", ents)
		}
	})
	t.Run("replaces the target of a symlink", func(t *testing.T) {
		real := filepath.Join(base, "dotfiles", "xfer.yaml")
		os.MkdirAll(filepath.Dir(real), 0o755)
		os.WriteFile(real, []byte("old: 1\n"), 0o644)
		link := filepath.Join(base, "link.yaml")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(link, []byte("new: 1\n")); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
			t.Error("the symlink was replaced by a file")
		}
		if b, _ := os.ReadFile(real); string(b) != "new: 1\n" {
			t.Errorf("target holds %q", b)
		}
	})
	t.Run("unwritable directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			// root writes anywhere; use a path under a regular file instead.
			f := filepath.Join(base, "plainfile")
			os.WriteFile(f, nil, 0o600)
			err := WriteFile(filepath.Join(f, "xfer.yaml"), []byte("x: 1\n"))
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Errorf("err = %v, want one naming %s", err, f)
			}
			return
		}
		ro := filepath.Join(base, "ro")
		os.Mkdir(ro, 0o500)
		if err := WriteFile(filepath.Join(ro, "xfer.yaml"), []byte("x: 1\n")); err == nil {
			t.Error("writing into a read-only directory succeeded")
		}
	})
}

func TestSettings(t *testing.T) {
	data := "# defaults\nStreams: 8\nremotes:\n  a: {url: \"xfer://h:1\"}\nprotos: [tcp, uring]\ndry-run: yes\ntimeout: 30\nbad: {x: 1}\nempty:\n"
	f, _ := loadConfig(t, data)
	// Values are the text as written, for the flag to parse: yes stays yes
	// (and the flag refuses it), 30 stays 30.
	want := []Setting{
		{Key: "streams", Line: 2, Values: []string{"8"}},
		{Key: "protos", Line: 5, Values: []string{"tcp", "uring"}},
		{Key: "dry-run", Line: 6, Values: []string{"yes"}},
		{Key: "timeout", Line: 7, Values: []string{"30"}},
	}
	got := f.Settings()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Settings() =\n %v\nwant\n %v", got, want)
	}
}

func TestLoadSyntaxError(t *testing.T) {
	path := writeConfig(t, "streams: 1\nremotes: [\n")
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), "config file "+path+":2: ") || strings.Contains(err.Error(), " yaml: ") {
		t.Errorf("Load of a broken file: %v; want FILE:LINE: without the parser's prefix", err)
	}
}
