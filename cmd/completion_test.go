package cmd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// complete runs `xfer __complete ARGS...` in process, the request a shell
// completion script makes, and returns the candidates and the directive.
// copy and sync get completeLocations if they have no completion function
// of their own yet.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb}
	root := newRootCmd(a)
	for _, c := range root.Commands() {
		if (c.Name() == "copy" || c.Name() == "sync") && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = completeLocations
		}
	}
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("__complete %v: %v\n%s", args, err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "xfer.yaml")
	os.WriteFile(cfg, []byte("remotes:\n  nodeA: {url: \"xfer://10.0.0.1:7878\"}\n  nodeB: {agents: [h:1, h:2]}\n  gpu: {address: \"10.0.0.3:7878\"}\n"), 0o600)
	os.Mkdir(filepath.Join(dir, "nodes"), 0o755)
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".nohidden"), nil, 0o644)
	const (
		noSpace    = ":2"
		noFileComp = ":4"
		fileComp   = ":0"
	)
	tests := []struct {
		name string
		args []string
		want []string
		dir  string
	}{
		{"remote names for copy", []string{"copy", "--config", cfg, "nodeA"}, []string{"nodeA:\tremote 10.0.0.1:7878"}, noSpace},
		{"case-insensitive, sync's DST", []string{"sync", "--config", cfg, "/src", "GP"}, []string{"gpu:\tremote 10.0.0.3:7878"}, noSpace},
		{"a path with a slash is local", []string{"copy", "--config", cfg, dir + "/no"}, nil, fileComp},
		{"local entries beside remote names", []string{"copy", "--config", cfg, "n"},
			[]string{"nodeA:\tremote 10.0.0.1:7878", "nodeB:\tremote h:1,h:2", "nodes/", "notes.txt"}, noSpace},
		{"no remote matches: the shell completes files", []string{"copy", "--config", cfg, "zz"}, nil, fileComp},
		{"a path on a remote is not listed", []string{"copy", "--config", cfg, "nodeA:/da"}, nil, noFileComp},
		{"nor a url", []string{"copy", "--config", cfg, "xfer://h:1/"}, nil, noFileComp},
		{"no third argument", []string{"copy", "--config", cfg, "a", "b", ""}, nil, noFileComp},
		{"no config file: files", []string{"copy", "--config", filepath.Join(dir, "none.yaml"), "no"}, nil, fileComp},
		{"remote rm", []string{"remote", "rm", "--config", cfg, "g"}, []string{"gpu\t10.0.0.3:7878"}, noFileComp},
		{"remote rm takes one", []string{"remote", "rm", "--config", cfg, "gpu", ""}, nil, noFileComp},
		{"subcommands", []string{"config", "v"}, []string{"validate\tCheck the config file; exit 2 if xfer would refuse or misread it"}, noFileComp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(dir) // local entries are relative to the working directory
			got, directive := complete(t, tt.args...)
			if directive != tt.dir {
				t.Errorf("directive %s, want %s", directive, tt.dir)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("candidates\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestLocalCompletions(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "data"), 0o755)
	os.WriteFile(filepath.Join(dir, "dat.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".dotfile"), nil, 0o644)
	os.Symlink("data", filepath.Join(dir, "dlink"))
	tests := []struct {
		prefix string
		want   []string
	}{
		{dir + "/da", []string{dir + "/dat.txt", dir + "/data/"}},
		{dir + "/d", []string{dir + "/dat.txt", dir + "/data/", dir + "/dlink/"}},
		{dir + "/.d", []string{dir + "/.dotfile"}},
		{dir + "/x", nil},
		{dir + "/nodir/x", nil},
	}
	for _, tt := range tests {
		got := localCompletions(tt.prefix)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("localCompletions(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

// TestBashScript sources the committed completions/xfer.bash, as
// bash-completion would, and completes command lines with the real binary.
func TestBashScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skip("bash-completion is not installed (apt-get install bash-completion); cobra's script needs it")
	}
	bin := xferBinary(t)
	if filepath.Base(bin) != "xfer" {
		t.Skipf("binary %s is not named xfer; the script calls xfer", bin)
	}
	script, err := filepath.Abs("../completions/xfer.bash")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "xfer"), 0o700)
	os.WriteFile(filepath.Join(home, "xfer", "xfer.yaml"), []byte("remotes:\n  nodeA: {url: \"xfer://10.0.0.1:7878\"}\n"), 0o600)
	tests := []struct {
		line string // the command line, completed at its end
		want string // COMPREPLY, one per line
	}{
		{"xfer rem", "remote"},
		{"xfer config val", "validate"},
		{"xfer remote rm no", "nodeA"},
		{"xfer completion f", "fish"},
	}
	for _, tt := range tests {
		words := strings.Fields(tt.line)
		prog := `source ` + bashCompletion + `; source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$2"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); __start_xfer; printf '%s\n' "${COMPREPLY[@]}"`
		if strings.HasSuffix(tt.line, " ") {
			t.Fatalf("test lines end in a word")
		}
		c := exec.Command(bash, "-c", prog, "bash", script, tt.line)
		c.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "XDG_CONFIG_HOME="+home)
		var stderr bytes.Buffer
		c.Stderr = &stderr // compopt complains outside a real completion
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%q: %v\n%s%s", tt.line, err, out, stderr.Bytes())
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("completing %q (%d words) gave %q, want %q", tt.line, len(words), got, tt.want)
		}
	}
}
