// Package cmd holds xfer's cobra command tree: one file per command, each
// translating flags and configuration into calls on the packages that do the
// work. Nothing here moves data itself.
package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/config"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/ui"
)

// app is the state shared by the commands of one invocation: the values of
// the invoked command's flags (filled from the command line, XFER_*
// environment variables and the config file by a.init), the config file
// and the output streams. It is built anew by newRootCmd, so tests can run
// several invocations in one process.
type app struct {
	v      flagValues
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// configUsed is the config file that was read, if any, and cfg its
	// content (nil without a file).
	configUsed string
	cfg        *config.File
}

// Execute runs xfer with os.Args and returns the process exit code.
func Execute() int {
	ctx, stop := signalContext(context.Background(), os.Stderr)
	defer stop()
	// XFER_CPUPROFILE=FILE writes a CPU profile of the run (for `go tool
	// pprof`), documented in docs/troubleshooting.md.
	if p := os.Getenv("XFER_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	// XFER_HEAPPROFILE=FILE writes a heap profile taken when the live heap
	// was largest (sampled every 50 ms), documented with the CPU profile.
	if p := os.Getenv("XFER_HEAPPROFILE"); p != "" {
		defer peakHeapProfile(ctx, p)()
	}
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// peakHeapProfile samples the live heap every 50 ms and keeps, in memory,
// the heap profile of the largest sample; the returned stop writes it to
// path. A diagnostic: the profile of the end of a run shows what has been
// freed already.
func peakHeapProfile(ctx context.Context, path string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var best bytes.Buffer
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var peak uint64
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
				best.Reset()
				pprof.Lookup("heap").WriteTo(&best, 0)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
		os.WriteFile(path, best.Bytes(), 0o644)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.Code(err)
	var fe *flagError
	if errors.As(err, &fe) {
		code = exitcode.Usage
	}
	if errors.Is(err, errSilent) {
		return code
	}
	msg := userMessage(err)
	fmt.Fprintf(stderr, "xfer: %s\n", msg)
	if jsonRequested(cmd, args) {
		// Once --json is given every run ends in JSON: the error as an
		// event, then the summary with the exit code.
		p := ui.New(ui.Options{Mode: ui.ModeJSON, Stdout: stdout, Stderr: stderr})
		p.Emit(progress.Event{Event: progress.KindError, Error: msg})
		p.Finish(progress.Summary{Errors: 1, ExitCode: code})
	}
	return code
}

// jsonRequested reports whether this invocation asked for --json, also
// when the command line or the settings failed to parse before the flag
// was read: --json among the arguments (before "--") or XFER_JSON.
func jsonRequested(cmd *cobra.Command, args []string) bool {
	if cmd != nil {
		if f := cmd.Flags().Lookup("json"); f != nil && f.Value.String() == "true" {
			return true
		}
	}
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if arg == "--json" {
			return true
		}
		if v, ok := strings.CutPrefix(arg, "--json="); ok {
			b, err := strconv.ParseBool(v)
			return err == nil && b
		}
	}
	b, err := strconv.ParseBool(os.Getenv("XFER_JSON"))
	return err == nil && b
}

// userMessage is err's text for a user. Errors from below cmd are worded
// where they arise; this only replaces the text of Go's context errors,
// which mean nothing to a user, by what happened.
func userMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		msg = strings.ReplaceAll(msg, context.DeadlineExceeded.Error(), "timed out")
	}
	if errors.Is(err, context.Canceled) {
		msg = strings.ReplaceAll(msg, context.Canceled.Error(), "interrupted")
	}
	return msg
}

// errSilent marks an error whose message was already printed.
var errSilent = errors.New("error reported")

// silent wraps err so that run does not print it again but keeps its code.
func silent(code int) error { return exitcode.WithCode(code, errSilent) }

// exitOf is the exit of a command that ended with err and whose failures
// (objects or files missing, corrupt, different or unreadable) are each
// reported already: err if there is one, else 1 (some failed) if failed,
// else nil.
func exitOf(err error, failed bool) error {
	if err != nil {
		return err
	}
	if failed {
		return silent(exitcode.Partial)
	}
	return nil
}

// usageArgs makes a cobra argument check report a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			path := cmd.CommandPath()
			return &flagError{fmt.Errorf("%s: %w (see '%s --help')", strings.TrimPrefix(path, cmd.Root().Name()+" "), err, path)}
		}
		return nil
	}
}

// commandGroup makes c a command that only groups subs (cas, config,
// remote): it takes no arguments of its own and prints its help.
func commandGroup(c *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	c.Args = usageArgs(cobra.NoArgs)
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	c.AddCommand(subs...)
	return c
}

type flagError struct{ err error }

// flagErrorFunc words pflag's errors for users: an invalid value names the
// flag, the value and what the flag wants (never strconv's text).
func flagErrorFunc(cmd *cobra.Command, err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		f := ive.GetFlag()
		return &flagError{fmt.Errorf("--%s %q: %s", f.Name, ive.GetValue(), invalidValue(f, ive.GetValue(), ive.Unwrap()))}
	}
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		return &flagError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	}
	return &flagError{err}
}

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "xfer",
		Short: "Move data between nodes and clusters, fast and verified",
		Long: `xfer copies and syncs directory trees between local paths, served peers
(xfer serve) and named remotes, over the fastest transport both ends support,
and verifies every byte with BLAKE3.

Locations:
  /plain/path            a local path
  xfer://HOST:PORT/PATH  a path beneath the export root of an xfer serve peer
  NAME:PATH              a remote named in the config file

Exit codes: 0 success, 1 some files failed, 2 usage or config error,
3 cannot reach or talk to the peer, 4 stopped at --max-duration (rerun to
resume), 130/143 interrupted by SIGINT/SIGTERM (rerun to resume).`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.init(cmd)
		},
		SuggestionsMinimumDistance: 2,
		// Runnable, so that cobra hands an unknown command to Args (a
		// usage error, exit 2) instead of failing on its own.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return &flagError{fmt.Errorf("%s; see '%s --help'", msg, cmd.CommandPath())}
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// --version prints what the first line of `xfer version` does.
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetFlagErrorFunc(flagErrorFunc)
	root.Flags().Bool("version", false, "print the version (the first line 'xfer version' prints)")
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (default $XDG_CONFIG_HOME/xfer/xfer.yaml)")
	pf.Bool("json", false, "print one JSON object per line; the last is the summary")
	pf.BoolP("quiet", "q", false, "print errors only")
	verbosityFlag(pf)
	choiceFlag(pf, "log-format", "text", []string{"text", "json"}, "log format on stderr: text or json")

	for _, c := range []*cobra.Command{
		newServeCmd(a),
		newCopyCmd(a),
		newSyncCmd(a),
		newMoveCmd(a),
		newCopytoCmd(a),
		newMovetoCmd(a),
		newDeleteCmd(a),
		newPurgeCmd(a),
		newHashCmd(a),
		newLsCmd(a),
		newLsfCmd(a),
		newSizeCmd(a),
		newCatCmd(a),
		newCheckCmd(a),
		newVersionCmd(a),
		newConfigCmd(a),
		newRemoteCmd(a),
		newClusterCmd(a),
		newBenchCmd(a),
		newCASCmd(a),
		newDaemonCmd(a),
	} {
		root.AddCommand(c)
	}
	return root
}

// init gives the invoked command's flags their values from the command
// line, XFER_* environment variables and the config file (see settings.go)
// and sets up logging.
func (a *app) init(cmd *cobra.Command) error {
	if err := a.settle(cmd, reportsOnly(cmd)); err != nil {
		return err
	}
	return a.initLog()
}

// reportsOnly reports whether cmd only reports on xfer itself (version,
// completion scripts), so that a broken config file must not stop it.
func reportsOnly(cmd *cobra.Command) bool {
	for c := cmd; c.HasParent(); c = c.Parent() {
		if !c.Parent().HasParent() && (c.Name() == "version" || c.Name() == "completion") {
			return true
		}
	}
	return false
}

// initLog sets up the logger on stderr from --verbose and --log-format.
func (a *app) initLog() error {
	opts := &slog.HandlerOptions{Level: a.logLevel()}
	switch f := a.v.GetString("log-format"); f {
	case "text", "":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return exitcode.Usagef("--log-format %q: want text or json", f)
	}
	return nil
}

// verbosity is the -v level: 0, 1 (-v) or 2 (-vv).
func (a *app) verbosity() int { return a.v.GetInt("verbose") }

// logLevel is the level of the logs -v asks for: warnings by default,
// info with -v, debug with -vv.
func (a *app) logLevel() slog.Level {
	switch a.verbosity() {
	case 0:
		return slog.LevelWarn
	case 1:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// defaultConfigPath is $XDG_CONFIG_HOME/xfer/xfer.yaml, falling back to
// ~/.config/xfer/xfer.yaml.
func defaultConfigPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "xfer", "xfer.yaml")
}
