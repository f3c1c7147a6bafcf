// Package cmd holds xfer's cobra command tree: one file per command, each
// translating flags and configuration into calls on the packages that do the
// work. Nothing here moves data itself.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/xfer-io/xfer/exitcode"
)

// app is the state shared by the commands of one invocation: the viper
// instance that merges flags, XFER_* environment variables and the config
// file, and the output streams. It is built anew by newRootCmd, so tests can
// run several invocations in one process.
type app struct {
	v      *viper.Viper
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// configUsed is the config file that was read, if any.
	configUsed string
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
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{v: viper.New(), stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.Code(err)
	var fe *flagError
	if errors.As(err, &fe) {
		code = exitcode.Usage
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "xfer: %v\n", err)
	}
	return code
}

// errSilent marks an error whose message was already printed.
var errSilent = errors.New("error reported")

// silent wraps err so that run does not print it again but keeps its code.
func silent(code int) error { return exitcode.WithCode(code, errSilent) }

// usageArgs makes a cobra argument check report a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &flagError{fmt.Errorf("%s: %w (see 'xfer %s --help')", cmd.Name(), err, cmd.Name())}
		}
		return nil
	}
}

type flagError struct{ err error }

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
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.init(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (default $XDG_CONFIG_HOME/xfer/xfer.yaml)")
	pf.Bool("json", false, "print one JSON object per line; the last is the summary")
	pf.BoolP("quiet", "q", false, "print errors only")
	pf.BoolP("verbose", "v", false, "log more detail to stderr")
	pf.String("log-format", "text", "log format on stderr: text or json")

	for _, c := range []*cobra.Command{
		newServeCmd(a),
		newCopyCmd(a),
		newSyncCmd(a),
		newHashCmd(a),
		newVersionCmd(a),
		newConfigCmd(a),
		newRemoteCmd(a),
		newBenchCmd(a),
		newCASCmd(a),
		newDaemonCmd(a),
	} {
		root.AddCommand(c)
	}
	return root
}

// init binds the invoked command's flags to viper, reads the config file and
// sets up logging. Flags win over XFER_* environment variables, which win
// over the config file.
func (a *app) init(cmd *cobra.Command) error {
	a.v.SetEnvPrefix("XFER")
	a.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	a.v.AutomaticEnv()
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err := a.v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return bindErr
	}
	if err := a.readConfig(); err != nil {
		return err
	}
	level := slog.LevelWarn
	if a.v.GetBool("verbose") {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
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

func (a *app) readConfig() error {
	path := a.v.GetString("config")
	explicit := path != ""
	if !explicit {
		path = defaultConfigPath()
	}
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		if explicit {
			return exitcode.Usagef("config file %s: %v", path, err)
		}
		return nil
	}
	a.v.SetConfigFile(path)
	a.v.SetConfigType("yaml")
	if err := a.v.ReadInConfig(); err != nil {
		return exitcode.Usagef("reading config file %s: %v", path, err)
	}
	a.configUsed = path
	return nil
}
