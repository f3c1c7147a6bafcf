package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/cmd"
)

// generatedFiles lists the files generate owns under root, relative to it.
func generatedFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, s := range completionScripts {
		if _, err := os.Stat(filepath.Join(root, "completions", s.file)); err == nil {
			out = append(out, filepath.Join("completions", s.file))
		}
	}
	for _, g := range []struct{ dir, ext string }{{cliDir, cliExt}, {manDir, manExt}} {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(g.dir), "*"+g.ext))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel(root, f)
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out
}

// TestCommittedFilesAreCurrent regenerates into a temporary directory and
// compares with what is committed. When a command, flag or help text
// changes, this fails until someone runs `make generate`.
func TestCommittedFilesAreCurrent(t *testing.T) {
	fresh := t.TempDir()
	if err := generate(cmd.CommandTree(), fresh); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join("..", "..")
	want := generatedFiles(t, fresh)
	got := generatedFiles(t, repo)
	var problems []string
	for _, f := range want {
		a, _ := os.ReadFile(filepath.Join(fresh, f))
		b, err := os.ReadFile(filepath.Join(repo, f))
		switch {
		case err != nil:
			problems = append(problems, f+" is missing")
		case !bytes.Equal(a, b):
			problems = append(problems, f+" is stale")
		}
	}
	for _, f := range got {
		if _, err := os.Stat(filepath.Join(fresh, f)); err != nil {
			problems = append(problems, f+" is for a command that no longer exists")
		}
	}
	if len(problems) > 0 {
		t.Errorf("generated files do not match the command tree:\n  %s\nRun `make generate` (go generate ./...) and commit the result.",
			strings.Join(problems, "\n  "))
	}
}

// TestOutput checks what the pages hold: one of each per command, no date
// or generator stamp (they would make every regeneration a change), and
// completion scripts for each shell.
func TestOutput(t *testing.T) {
	dir := t.TempDir()
	root := cmd.CommandTree()
	if err := generate(root, dir); err != nil {
		t.Fatal(err)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		md := filepath.Join(dir, cliDir, strings.ReplaceAll(c.CommandPath(), " ", "_")+".md")
		man := filepath.Join(dir, manDir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		for _, p := range []string{md, man} {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%q: %v", c.CommandPath(), err)
				continue
			}
			if !strings.Contains(string(data), c.Short) {
				t.Errorf("%s lacks the command's summary %q", p, c.Short)
			}
			if strings.Contains(string(data), "Auto generated") {
				t.Errorf("%s carries a generator stamp", p)
			}
		}
		if data, err := os.ReadFile(man); err == nil {
			th := strings.SplitN(string(data), "\n", 3)[1]
			if want := `.TH "` + strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-")) + `" "1" "" "xfer" "xfer manual"`; th != want {
				t.Errorf("%s: %s, want %s", man, th, want)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, c := range []string{"remote", "config", "copy", "sync", "completion"} {
		if _, err := os.Stat(filepath.Join(dir, cliDir, "xfer_"+c+".md")); err != nil {
			t.Errorf("no page for %s: %v", c, err)
		}
	}
	for file, marker := range map[string]string{
		"xfer.bash": "__start_xfer", "_xfer": "#compdef xfer", "xfer.fish": "complete -c xfer", "xfer.ps1": "Register-ArgumentCompleter",
	} {
		data, err := os.ReadFile(filepath.Join(dir, "completions", file))
		if err != nil || !strings.Contains(string(data), marker) {
			t.Errorf("completions/%s: %v, want it to contain %q", file, err, marker)
		}
	}
	// A second run over the first changes nothing and leaves no extra file.
	before := generatedFiles(t, dir)
	snap := map[string][]byte{}
	for _, f := range before {
		snap[f], _ = os.ReadFile(filepath.Join(dir, f))
	}
	os.WriteFile(filepath.Join(dir, cliDir, "xfer_removed.md"), []byte("old"), 0o644)
	if err := generate(cmd.CommandTree(), dir); err != nil {
		t.Fatal(err)
	}
	after := generatedFiles(t, dir)
	if strings.Join(before, ",") != strings.Join(after, ",") {
		t.Errorf("second run: files %v, want %v", after, before)
	}
	for _, f := range after {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(b, snap[f]) {
			t.Errorf("%s differs between two runs", f)
		}
	}
}
