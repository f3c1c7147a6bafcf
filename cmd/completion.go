package cmd

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/config"
	"github.com/xfer-io/xfer/internal/location"
)

// Shell completion. The scripts come from cobra's `xfer completion SHELL`
// (committed under completions/ by tools/gendocs); they call the hidden
// `xfer __complete` command, which runs the functions below. Completion
// runs no PersistentPreRun, so the config file is found from the parsed
// --config flag, XFER_CONFIG or the default path directly, and any problem
// with it just means no remote names are offered.

// completionRemotes reads the remotes from the config file for completion.
func completionRemotes(cmd *cobra.Command) []location.Remote {
	path := defaultConfigPath()
	if p := os.Getenv("XFER_CONFIG"); p != "" {
		path = p
	}
	if fl := cmd.Flag("config"); fl != nil && fl.Changed {
		path = fl.Value.String()
	}
	f, err := config.Load(path)
	if err != nil {
		return nil
	}
	rs, err := f.Remotes()
	if err != nil {
		return nil
	}
	return rs
}

// completeRemoteNames offers the names of the configured remotes (for
// `remote rm`).
func completeRemoteNames(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range completionRemotes(cmd) {
		if hasPrefixFold(r.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(r.Name, strings.Join(r.Agents, ",")))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeLocations completes the SRC and DST of copy and sync: "NAME:" for
// each configured remote whose name starts with what was typed, together
// with the matching local files and directories, all without a trailing
// space so the path can go on. When no remote matches, the shell's own file
// completion takes over. Paths on a peer (NAME:PATH, xfer://...) are not
// listed: that would mean connecting to it.
func completeLocations(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) >= 2 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if i := strings.IndexByte(toComplete, ':'); i > 0 && !strings.HasPrefix(toComplete, "/") &&
		!strings.HasPrefix(toComplete, ".") && location.ValidName(toComplete[:i]) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range completionRemotes(cmd) {
		if hasPrefixFold(r.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(r.Name+":", "remote "+strings.Join(r.Agents, ",")))
		}
	}
	if len(out) == 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	out = append(out, localCompletions(toComplete)...)
	return out, cobra.ShellCompDirectiveNoSpace
}

// localCompletions lists the entries of prefix's directory whose names
// start with prefix's last element; directories end in "/". Hidden entries
// are offered only when the typed name starts with a dot.
func localCompletions(prefix string) []cobra.Completion {
	dir, base := filepath.Split(prefix)
	readDir := dir
	if readDir == "" {
		readDir = "."
	}
	ents, err := os.ReadDir(readDir)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, base) || strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		c := dir + name
		if st, err := os.Stat(filepath.Join(readDir, name)); err == nil && st.IsDir() {
			c += "/"
		}
		out = append(out, c)
	}
	return out
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
