package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/xfer-io/xfer/internal/config"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/plural"
)

// newConfigTemplate is what `xfer config edit` starts a new file from.
const newConfigTemplate = `# xfer config file: see docs/remotes.md. Any flag can be set here by its
# name (streams: 8, chunk-size: 16M); flags on the command line and XFER_*
# environment variables win over this file. Check it with: xfer config validate
#
# remotes:
#   nodeA:
#     url: xfer://10.0.0.1:7878
#   pool:
#     agents: [10.0.0.2:7878, 10.0.0.3:7878]
#     token_file: /etc/xfer/token
`

func newConfigCmd(a *app) *cobra.Command {
	return commandGroup(&cobra.Command{
		Use:   "config",
		Short: "Show, check or edit the config file",
		Long: `The config file is $XDG_CONFIG_HOME/xfer/xfer.yaml (~/.config/xfer/xfer.yaml
when XDG_CONFIG_HOME is unset), or the file named by --config or XFER_CONFIG.
It holds the named remotes (see 'xfer remote') and defaults for any flag,
by the flag's name. Flags win over XFER_* environment variables, which win
over the file.

These commands still run when the file is missing or broken, so that they
can create or repair it.`,
		PersistentPreRunE: a.initTolerant,
	}, newConfigShowCmd(a), newConfigValidateCmd(a), newConfigEditCmd(a))
}

func newConfigShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the config file's path and content",
		Long: `Show prints the path of the config file this invocation uses, then its
content. Lines it adds are YAML comments, so the output is still a valid
config file. XFER_* environment variables that are set are listed by name
(not value) at the end, since they override the file.

With --json it prints one object: {"path", "exists", "content", "environment"}.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, explicit := a.configPath()
			data, err := os.ReadFile(path)
			exists := err == nil
			if err != nil && (explicit || !errors.Is(err, fs.ErrNotExist)) {
				return exitcode.Usagef("config file %s: %s", path, fileProblem(err))
			}
			env := xferEnvNames()
			if a.v.GetBool("json") {
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"path": path, "exists": exists, "content": string(data), "environment": env,
				})
			}
			if !exists {
				fmt.Fprintf(a.stdout, "# config file: %s (does not exist; 'xfer remote add' or 'xfer config edit' creates it)\n", path)
			} else {
				fmt.Fprintf(a.stdout, "# config file: %s\n", path)
				a.stdout.Write(data)
				if len(data) > 0 && data[len(data)-1] != '\n' {
					fmt.Fprintln(a.stdout)
				}
			}
			if len(env) > 0 {
				fmt.Fprintf(a.stdout, "# overridden by the environment: %s\n", strings.Join(env, " "))
			}
			return nil
		},
	}
}

func newConfigValidateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config file; exit 2 if xfer would refuse or misread it",
		Long: `Validate parses the config file and checks every remote (a valid name, and
url, address or agents of the form HOST:PORT) and every other key against
the flags of xfer's commands: a value of the wrong type (streams: many,
timeout: 30 without a unit) is an error, and so is a key no command knows
(with the nearest flag name as a hint). Every other command refuses a file
with errors the same way (exit 2). Problems are printed as FILE:LINE:
message on stderr. Warnings (a token_file that is relative or missing)
do not make the file invalid.

Exit status: 0 if the file is valid or there is no file at the default
path, 2 if it has errors or the file named by --config does not exist. With --json it prints one object: {"path", "valid", "remotes",
"errors", "warnings"}.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, explicit := a.configPath()
			data, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) && !explicit {
				if a.v.GetBool("json") {
					return json.NewEncoder(a.stdout).Encode(map[string]any{"path": path, "valid": true, "exists": false})
				}
				fmt.Fprintf(a.stdout, "no config file at %s (nothing to check)\n", path)
				return nil
			}
			if err != nil {
				return exitcode.Usagef("config file %s: %s", path, fileProblem(err))
			}
			rep := config.Validate(data, configKeys())
			if a.v.GetBool("json") {
				if err := json.NewEncoder(a.stdout).Encode(map[string]any{
					"path": path, "valid": rep.OK(), "exists": true, "remotes": rep.Remotes,
					"errors": nonNil(rep.Errors), "warnings": nonNil(rep.Warnings),
				}); err != nil {
					return err
				}
			} else {
				a.printReport(path, rep)
			}
			if !rep.OK() {
				return silent(exitcode.Usage)
			}
			return nil
		},
	}
}

func nonNil(p []config.Problem) []config.Problem {
	if p == nil {
		return []config.Problem{}
	}
	return p
}

// printReport prints problems as FILE:LINE: on stderr and a verdict.
func (a *app) printReport(path string, rep config.Report) {
	at := func(p config.Problem) string {
		if p.Line > 0 {
			return fmt.Sprintf("%s:%d", path, p.Line)
		}
		return path
	}
	for _, p := range rep.Errors {
		fmt.Fprintf(a.stderr, "%s: error: %s\n", at(p), p.Msg)
	}
	for _, p := range rep.Warnings {
		fmt.Fprintf(a.stderr, "%s: warning: %s\n", at(p), p.Msg)
	}
	if rep.OK() {
		fmt.Fprintf(a.stdout, "%s: valid (%s, %s)\n", path, plural.Of(rep.Remotes, "remote"), plural.Of(len(rep.Warnings), "warning"))
	} else {
		fmt.Fprintf(a.stderr, "%s: invalid (%s)\n", path, plural.Of(len(rep.Errors), "error"))
	}
}

func newConfigEditCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "edit",
		Short: "Edit the config file in $VISUAL or $EDITOR, then validate it",
		Long: `Edit opens a copy of the config file (or, if there is none yet, a commented
template) in $VISUAL, else $EDITOR, else vi. When the editor exits, the copy
is validated as by 'xfer config validate'; only a valid copy replaces the
file, atomically and with mode 0600. On errors, an interactive session is
asked whether to edit again; otherwise the file is left unchanged and the
exit status is 2.`,
		Example: `  xfer config edit
  EDITOR="code --wait" xfer config edit`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := a.configPath()
			return a.editConfig(cmd, path)
		},
	}
}

func (a *app) editConfig(cmd *cobra.Command, path string) error {
	orig, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return exitcode.Usagef("config file %s: %s", path, fileProblem(err))
	}
	start := orig
	if !existed {
		start = []byte(newConfigTemplate)
	}
	// The copy lives beside the file, so a valid edit lands on the same
	// file system, and ends in .yaml so editors highlight it.
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return exitcode.Usagef("creating config directory %s: %s", dir, fileProblem(err))
	}
	tmp, err := os.CreateTemp(dir, ".xfer-edit-*.yaml")
	if err != nil {
		return exitcode.Usagef("config file %s: %s", path, fileProblem(err))
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(start)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return exitcode.Usagef("writing %s: %s", tmpName, fileProblem(err))
	}
	in := bufio.NewReader(cmd.InOrStdin())
	for {
		if err := runEditor(cmd, tmpName); err != nil {
			return exitcode.Usagef("%v; config file %s unchanged", err, path)
		}
		edited, err := os.ReadFile(tmpName)
		if err != nil {
			return exitcode.Usagef("reading the edited copy %s: %s", tmpName, fileProblem(err))
		}
		if bytes.Equal(edited, start) {
			if existed {
				fmt.Fprintf(a.stdout, "%s: no changes\n", path)
			} else {
				fmt.Fprintf(a.stdout, "%s: no changes, not created\n", path)
			}
			return nil
		}
		rep := config.Validate(edited, configKeys())
		a.printReport(path, rep)
		if rep.OK() {
			if err := config.WriteFile(path, edited); err != nil {
				return exitcode.Usagef("%v", err)
			}
			fmt.Fprintf(a.stdout, "%s: saved\n", path)
			return nil
		}
		if !interactive(cmd) {
			fmt.Fprintf(a.stderr, "%s: unchanged; the edit was discarded\n", path)
			return silent(exitcode.Usage)
		}
		fmt.Fprint(a.stderr, "Edit again? [Y/n] ")
		answer, _ := in.ReadString('\n')
		if ans := strings.ToLower(strings.TrimSpace(answer)); ans == "n" || ans == "no" {
			fmt.Fprintf(a.stderr, "%s: unchanged; the edit was discarded\n", path)
			return silent(exitcode.Usage)
		}
	}
}

// runEditor runs $VISUAL, $EDITOR or vi on file through the shell, so an
// editor given with arguments ("code --wait") works.
func runEditor(cmd *cobra.Command, file string) error {
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	e := exec.CommandContext(cmd.Context(), "/bin/sh", "-c", editor+` "$1"`, "xfer-config-edit", file)
	e.Stdin, e.Stdout, e.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := e.Run(); err != nil {
		return fmt.Errorf("editor %q: %w", editor, err)
	}
	return nil
}

// interactive reports whether stdin is a terminal someone can answer on.
func interactive(cmd *cobra.Command) bool {
	f, ok := cmd.InOrStdin().(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// configPath is the config file this invocation uses: --config or
// XFER_CONFIG if given (explicit), else the default path. It needs the
// flags bound, i.e. a.init or a.initTolerant has run.
func (a *app) configPath() (path string, explicit bool) {
	if p := a.v.GetString("config"); p != "" {
		return p, true
	}
	return defaultConfigPath(), false
}

// initTolerant is a.init for the config and remote commands: a config file
// that is missing, does not parse or does not validate is not an error for
// them, since they are how such a file gets created or repaired; it just
// gives no settings.
// It is their PersistentPreRunE.
func (a *app) initTolerant(cmd *cobra.Command, _ []string) error {
	if err := a.settle(cmd, true); err != nil {
		return err
	}
	return a.initLog()
}

// xferEnvNames lists the XFER_* environment variables that are set, sorted.
func xferEnvNames() []string {
	var out []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "XFER_") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
